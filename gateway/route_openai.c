/*  =========================================================================
    route_openai - POST /v1/chat/completions: a run in OpenAI's Chat
    Completions format, whole (chat.completion) or streamed
    (chat.completion.chunk SSE lines ending in data: [DONE])

    A call with X-OpenClaw-Session-Key is a run on that session (recorded);
    without it, a stateless RUN_START.  Starting and following the run is
    runs/run_call.h's; this file only speaks OpenAI's format.
    =========================================================================
*/
#include "route_runs.h"
#include "msg_names.h"

#include "error.h"
#include "mpjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

//  What every chunk and the completion share.
typedef struct {
    char id[96];         //  "chatcmpl-<run id's hex>"
    long created;        //  Unix seconds
    bool include_usage;  //  stream_options.include_usage
} openai_ids_t;

static cJSON *
s_usage_json (const run_call_t *c)
{
    cJSON *u = cJSON_CreateObject ();
    cJSON_AddNumberToObject (u, "prompt_tokens", (double) c->prompt);
    cJSON_AddNumberToObject (u, "completion_tokens", (double) c->completion);
    cJSON_AddNumberToObject (u, "total_tokens", (double) (c->prompt + c->completion));
    return u;
}

static cJSON *
s_chunk (const run_call_t *c, const openai_ids_t *ids)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "id", ids->id);
    cJSON_AddStringToObject (j, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject (j, "created", (double) ids->created);
    cJSON_AddStringToObject (j, "model", c->model);
    cJSON_AddNullToObject (j, "system_fingerprint");
    return j;
}

//  Adds choices [{index 0, delta, logprobs null, finish_reason}] to chunk
//  (takes delta).  Returns chunk.
static cJSON *
s_chunk_choice (cJSON *chunk, cJSON *delta, const char *finish)
{
    cJSON *choices = cJSON_AddArrayToObject (chunk, "choices");
    cJSON *ch = cJSON_CreateObject ();
    cJSON_AddNumberToObject (ch, "index", 0);
    cJSON_AddItemToObject (ch, "delta", delta);
    cJSON_AddNullToObject (ch, "logprobs");
    if (finish)
        cJSON_AddStringToObject (ch, "finish_reason", finish);
    else
        cJSON_AddNullToObject (ch, "finish_reason");
    cJSON_AddItemToArray (choices, ch);
    return chunk;
}

//  The whole answer: one chat.completion.  Returns the status sent.
static int
s_reply (http_req_t *r, run_call_t *c, const openai_ids_t *ids)
{
    if (route_runs_collect (r, c) == RUN_EV_ERROR)
        return route_runs_send_error (r, c);
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "id", ids->id);
    cJSON_AddStringToObject (j, "object", "chat.completion");
    cJSON_AddNumberToObject (j, "created", (double) ids->created);
    cJSON_AddStringToObject (j, "model", c->model);
    cJSON *choices = cJSON_AddArrayToObject (j, "choices");
    cJSON *ch = cJSON_CreateObject ();
    cJSON_AddNumberToObject (ch, "index", 0);
    cJSON *m = cJSON_AddObjectToObject (ch, "message");
    cJSON_AddStringToObject (m, "role", "assistant");
    bool calls = c->tool_calls && cJSON_GetArraySize (c->tool_calls) > 0;
    if (calls && !c->text_len)
        cJSON_AddNullToObject (m, "content");
    else
        cJSON_AddStringToObject (m, "content", c->text ? c->text : "");
    if (calls) {
        //  Complete tool calls carry no "index" in OpenAI's message form.
        for (cJSON *tc = c->tool_calls->child; tc; tc = tc->next)
            cJSON_DeleteItemFromObject (tc, "index");
        cJSON_AddItemToObject (m, "tool_calls", c->tool_calls);
        c->tool_calls = NULL;
    }
    cJSON_AddNullToObject (m, "refusal");
    cJSON_AddNullToObject (ch, "logprobs");
    cJSON_AddStringToObject (ch, "finish_reason", c->finish[0] ? c->finish : "stop");
    cJSON_AddItemToArray (choices, ch);
    cJSON_AddItemToObject (j, "usage", s_usage_json (c));
    cJSON_AddNullToObject (j, "system_fingerprint");
    int status = http_send_json (r, 200, j);
    cJSON_Delete (j);
    return status;
}

//  The role chunk, as SSE text to send with the first real frame (head,
//  role and first delta leave in one packet).  Caller owns the return
//  value (free); NULL if out of memory.
static char *
s_role_frame (const run_call_t *c, const openai_ids_t *ids)
{
    cJSON *d = cJSON_CreateObject ();
    cJSON_AddStringToObject (d, "role", "assistant");
    cJSON_AddStringToObject (d, "content", "");
    cJSON *role = s_chunk_choice (s_chunk (c, ids), d, NULL);
    char *text = cJSON_PrintUnformatted (role);
    cJSON_Delete (role);
    size_t cap = text ? strlen (text) + 9 : 0;
    char *frame = text ? (char *) malloc (cap) : NULL;
    if (frame)
        snprintf (frame, cap, "data: %s\n\n", text);
    cJSON_free (text);
    return frame;
}

//  A chat.delta as a chunk: its text and tool-call pieces.  Returns true
//  if the client is still there (or the delta had nothing to show).
static bool
s_stream_delta (http_req_t *r, const run_call_t *c, const openai_ids_t *ids,
                char **pending)
{
    size_t len;
    const char *text = mp_get_str (c->msg.body.root, MK_delta, &len);
    const msgpack_object *calls = mp_get (c->msg.body.root, MK_toolCalls);
    if ((!text || !len) && !calls)
        return true;
    cJSON *d = cJSON_CreateObject ();
    if (text && len) {
        char *copy = strndup (text, len);
        cJSON_AddStringToObject (d, "content", copy ? copy : "");
        free (copy);
    }
    if (calls) {
        cJSON *cj = mpjson_to_json (calls);
        if (cj)
            cJSON_AddItemToObject (d, "tool_calls", cj);
    }
    return http_sse_json_after (r, pending, NULL,
                                s_chunk_choice (s_chunk (c, ids), d, NULL));
}

//  chat.done: the finishing chunk, the usage chunk if asked, [DONE].
static void
s_stream_done (http_req_t *r, const run_call_t *c, const openai_ids_t *ids,
               char **pending)
{
    bool alive =
        http_sse_json_after (r, pending, NULL,
                             s_chunk_choice (s_chunk (c, ids), cJSON_CreateObject (),
                                             c->finish[0] ? c->finish : "stop"));
    if (alive && ids->include_usage) {
        cJSON *u = s_chunk (c, ids);
        cJSON_AddArrayToObject (u, "choices");
        cJSON_AddItemToObject (u, "usage", s_usage_json (c));
        alive = http_sse_json_after (r, pending, NULL, u);
    }
    if (alive && http_sse_write (r, NULL, "[DONE]"))
        http_sse_end (r);
}

//  The streamed answer.  Returns the status sent.
static int
s_stream (http_req_t *r, run_call_t *c, const openai_ids_t *ids)
{
    bool begun = false;
    char *pending = NULL;  //  Role chunk, sent with the first frame
    bool role_sent = false;
    while (true) {
        run_ev_t ev = route_runs_stream_next (r, c, &begun);
        if (ev == RUN_EV_GONE)
            break;
        if (ev == RUN_EV_ERROR && !begun)
            return route_runs_send_error (r, c);
        if (!begun) {
            http_stream_begin (r);
            begun = true;
        }
        if (!role_sent) {
            role_sent = true;
            pending = s_role_frame (c, ids);
        }
        if (ev == RUN_EV_DELTA) {
            if (!s_stream_delta (r, c, ids, &pending)) {
                route_runs_abort (r, c);
                break;
            }
            continue;
        }
        if (ev == RUN_EV_DONE)
            s_stream_done (r, c, ids, &pending);
        else {  //  RUN_EV_ERROR after output began
            cJSON *e = cJSON_CreateObject ();
            cJSON_AddItemToObject (
                e, "error",
                error_json_openai (c->err.status, c->err.code, c->err.message));
            if (http_sse_json_after (r, &pending, NULL, e)
                && http_sse_write (r, NULL, "[DONE]"))
                http_sse_end (r);
        }
        break;
    }
    free (pending);
    return 200;
}

int
route_chat_completions (http_req_t *r)
{
    cJSON *req = http_parse_json (r);
    if (!req)
        return r->status;
    run_call_t c;
    route_runs_init (r, &c);
    run_catalog_t cat = http_run_catalog (r->config);
    run_check_t chk;
    run_call_openai (&c, &cat, req, mg_get_header (r->conn, "X-OpenClaw-Session-Key"),
                     &chk);
    openai_ids_t ids;
    ids.include_usage = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (
        cJSON_GetObjectItemCaseSensitive (req, "stream_options"), "include_usage"));
    cJSON_Delete (req);
    int status = route_runs_refuse (r, &chk);
    if (!status)
        status = route_runs_start (r, &c);
    if (!status) {
        snprintf (ids.id, sizeof (ids.id), "chatcmpl-%.60s", c.run_id + 4);
        ids.created = (long) time (NULL);
        status = c.stream ? s_stream (r, &c, &ids) : s_reply (r, &c, &ids);
    }
    run_call_fini (&c);
    return status;
}
