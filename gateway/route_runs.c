/*  =========================================================================
    route_runs - agent runs over HTTP: /v1/chat/completions (OpenAI format),
    /v1/agent/run and /v1/agent/run/stream (OpenClaw format)

    A run on a session (every agent run; an OpenAI call only with
    X-OpenClaw-Session-Key) becomes a SESSION_RUN to the session actor, which
    records it and passes it on to the run actor in the session's order; a
    stateless OpenAI call is a RUN_START straight to the run actor.  Either
    way the events come back on this thread's own broker socket (the direct
    path, no subscription).
    Nothing is sent to the client until the first event, so a run that fails
    before any output is answered with a real HTTP status.  While streaming,
    an SSE comment every sseKeepaliveMs finds clients that went away; a
    failed write aborts the run, which closes the upstream transfer.
    =========================================================================
*/
#include "routes.h"

#include "ids.h"
#include "json_in.h"
#include "log.h"
#include "mpjson.h"
#include "run_check.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef enum { EV_DELTA = 1, EV_DONE, EV_ERROR, EV_IDLE, EV_GONE, EV_TOOL } ev_kind_t;

//  One run as the front sees it.
typedef struct {
    http_req_t *r;
    char run_id[80];                     //  "run-<32 hex>"
    char session[ENVELOPE_KEY_MAX + 1];  //  May be empty
    char model[256];                     //  As the client named it
    uint64_t corr_id;                    //  Of our RUN_START
    int64_t deadline;                    //  zclock_mono () past which we give up
    //  The event just read.
    bus_msg_t msg;
    bool have_msg;
    //  Results, filled by events.
    char *text;
    size_t text_len, text_cap;
    cJSON *tool_calls;                   //  From chat.done (owned)
    char finish[24];
    int64_t prompt, completion;
    int err_status;
    char err_code[48];
    char err_message[512];
    char err_param[64];
    int64_t retry_after;                 //  Seconds, from chat.error
    bool want_tools;                     //  Relay tool.call / tool.result
    char tool_event[16];                 //  Type of the EV_TOOL just read
} run_call_t;

static void
s_call_fini (run_call_t *c)
{
    if (c->have_msg)
        bus_msg_fini (&c->msg);
    c->have_msg = false;
    free (c->text);
    cJSON_Delete (c->tool_calls);
}

//  The envelope key of c's start and abort, which must be the same: the
//  broker routes a key to one worker, so an abort reaches the run actor
//  that has the run.  A stateless run's id stands in for a session.
static const char *
s_route_key (const run_call_t *c)
{
    return c->session[0] ? c->session : c->run_id;
}

//  Sends RUN_START with the packed body.  The actor replies only to refuse
//  (ERROR); otherwise the run's events are the answer, read by s_next.
//  Returns 0, or the status of the error response it sent.
static int
s_start (run_call_t *c, mp_writer_t *body)
{
    http_req_t *r = c->r;
    //  Runs on a session go through the session actor (recorded, queued
    //  behind the session's earlier runs); stateless ones straight to run.
    bool recorded = c->session[0] != 0;
    envelope_t env;
    envelope_init (&env, recorded ? "SESSION_RUN" : "RUN_START");
    snprintf (env.session_key, sizeof (env.session_key), "%s", s_route_key (c));
    env.timeout_ms = r->config->request_timeout_ms;
    c->deadline = zclock_mono () + r->config->request_timeout_ms + 5000;
    if (bus_front_send (r->bus, recorded ? "session" : "run", &env,
                        body->buf.data, body->buf.size))
        return http_send_error (r, 503, "service_unavailable",
                                "The broker is not taking requests", NULL);
    c->corr_id = env.corr_id;
    return 0;
}

//  Asks the run actor to stop our run (client gone, or we gave up).  While
//  the gateway shuts down, the session records it as interrupted.
static void
s_abort (run_call_t *c)
{
    bool shutdown = server_draining (c->r->server);
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, shutdown ? 2 : 1);
    mp_kv_str (&w, "runId", c->run_id);
    if (shutdown)
        mp_kv_str (&w, "reason", "shutdown");
    bool recorded = c->session[0] != 0;
    envelope_t env;
    envelope_init (&env, recorded ? "SESSION_ABORT" : "RUN_ABORT");
    snprintf (env.session_key, sizeof (env.session_key), "%s", s_route_key (c));
    bus_msg_t reply;
    if (bus_front_call (c->r->bus, recorded ? "session" : "run", &env, w.buf.data, w.buf.size,
                        c->r->config->control_timeout_ms, &reply) == 0)
        bus_msg_fini (&reply);
    mp_writer_fini (&w);
    log_info ("http", "%s aborted: %s", c->run_id,
              shutdown ? "the gateway is stopping" : "the client went away");
}

//  The drain budget is spent: interrupt our run and answer 503.
static ev_kind_t
s_interrupt (run_call_t *c)
{
    s_abort (c);
    c->err_status = 503;
    snprintf (c->err_code, sizeof (c->err_code), "service_unavailable");
    snprintf (c->err_message, sizeof (c->err_message),
              "The gateway stopped before the run finished");
    return EV_ERROR;
}

static void
s_append (run_call_t *c, const char *text, size_t len)
{
    if (c->text_len + len + 1 > c->text_cap) {
        size_t cap = c->text_cap ? c->text_cap * 2 : 1024;
        while (cap < c->text_len + len + 1)
            cap *= 2;
        char *grown = (char *) realloc (c->text, cap);
        if (!grown)
            return;
        c->text = grown;
        c->text_cap = cap;
    }
    memcpy (c->text + c->text_len, text, len);
    c->text_len += len;
    c->text[c->text_len] = 0;
}

//  Waits up to idle_ms for our run's next event.  Records what a done or
//  error event says.  The event stays in c->msg until the next call.
static ev_kind_t
s_next (run_call_t *c, int idle_ms)
{
    if (c->have_msg) {
        bus_msg_fini (&c->msg);
        c->have_msg = false;
    }
    int64_t until = zclock_mono () + idle_ms;
    while (true) {
        int64_t left = until - zclock_mono ();
        if (left <= 0 || bus_front_recv (c->r->bus, (int) left, &c->msg))
            return EV_IDLE;
        const msgpack_object *b = c->msg.body.root;
        if (c->msg.kind == BUS_MSG_REPLY && c->msg.env.corr_id == c->corr_id
            && c->msg.env.status != 200) {
            //  The run was refused (or no run actor is alive).
            c->have_msg = true;
            c->err_status = c->msg.env.status >= 400 && c->msg.env.status <= 599
                                ? c->msg.env.status
                                : 500;
            snprintf (c->err_code, sizeof (c->err_code), "internal_error");
            snprintf (c->err_message, sizeof (c->err_message), "Run refused");
            mp_copy_str (b, "code", c->err_code, sizeof (c->err_code));
            mp_copy_str (b, "message", c->err_message, sizeof (c->err_message));
            mp_copy_str (b, "param", c->err_param, sizeof (c->err_param));
            return EV_ERROR;
        }
        size_t idlen;
        const char *id = mp_get_str (b, "runId", &idlen);
        const char *slash = strrchr (c->msg.topic, '/');
        //  Events of earlier runs on this socket, and stray replies: drop.
        if (c->msg.kind != BUS_MSG_EVENT || !slash || !id
            || idlen != strlen (c->run_id) || memcmp (id, c->run_id, idlen)) {
            bus_msg_fini (&c->msg);
            continue;
        }
        c->have_msg = true;
        const char *type = slash + 1;
        if (!strcmp (type, "chat.delta")) {
            size_t len;
            const char *d = mp_get_str (b, "delta", &len);
            if (d)
                s_append (c, d, len);
            return EV_DELTA;
        }
        if (!strcmp (type, "chat.done")) {
            mp_copy_str (b, "finishReason", c->finish, sizeof (c->finish));
            //  The full text is authoritative (deltas go only to streams).
            size_t rlen;
            const char *resp = mp_get_str (b, "response", &rlen);
            c->text_len = 0;
            if (resp)
                s_append (c, resp, rlen);
            const msgpack_object *u = mp_get (b, "usage");
            mp_get_int (u, "promptTokens", &c->prompt);
            mp_get_int (u, "completionTokens", &c->completion);
            const msgpack_object *calls = mp_get (b, "toolCalls");
            if (calls && calls->type == MSGPACK_OBJECT_ARRAY)
                c->tool_calls = mpjson_to_json (calls);
            return EV_DONE;
        }
        if (!strcmp (type, "chat.error")) {
            const msgpack_object *e = mp_get (b, "error");
            int64_t status = 500;
            mp_get_int (b, "status", &status);
            mp_get_int (b, "retryAfter", &c->retry_after);
            c->err_status = status >= 400 && status <= 599 ? (int) status : 500;
            snprintf (c->err_code, sizeof (c->err_code), "internal_error");
            snprintf (c->err_message, sizeof (c->err_message), "Run failed");
            mp_copy_str (e, "code", c->err_code, sizeof (c->err_code));
            mp_copy_str (e, "message", c->err_message, sizeof (c->err_message));
            return EV_ERROR;
        }
        if (c->want_tools
            && (!strcmp (type, "tool.call") || !strcmp (type, "tool.result"))) {
            snprintf (c->tool_event, sizeof (c->tool_event), "%s", type);
            return EV_TOOL;
        }
        bus_msg_fini (&c->msg);   //  Other event types: not ours to relay
        c->have_msg = false;
    }
}

//  We stop waiting for a run: abort it and answer 503.
static ev_kind_t
s_give_up (run_call_t *c)
{
    s_abort (c);
    c->err_status = 503;
    snprintf (c->err_code, sizeof (c->err_code), "service_unavailable");
    snprintf (c->err_message, sizeof (c->err_message),
              "The run did not finish in time");
    return EV_ERROR;
}

//  Waits for the end of a run, collecting its text.  Returns EV_DONE or
//  EV_ERROR (a 503 after giving up at the deadline).
static ev_kind_t
s_collect (run_call_t *c)
{
    while (true) {
        int64_t left = c->deadline - zclock_mono ();
        if (left <= 0)
            return s_give_up (c);
        //  Wake now and then to notice a gateway that is stopping.
        ev_kind_t ev = s_next (c, left < 250 ? (int) left : 250);
        if (ev == EV_DONE || ev == EV_ERROR)
            return ev;
        if (ev == EV_IDLE && server_stopping (c->r->server))
            return s_interrupt (c);
    }
}

//  The next event of a streamed run.  While idle it sends an SSE comment
//  every sseKeepaliveMs: that keeps proxies from timing out and shows us a
//  client that left, whose run is then aborted (EV_GONE).  A run silent for
//  a whole interval before its first event begins the stream (*begun) so
//  that a client gone early is noticed too; failures before that still get
//  real HTTP statuses.  Gives up at the deadline (EV_ERROR).
static ev_kind_t
s_stream_next (run_call_t *c, bool *begun)
{
    int keepalive = c->r->config->sse_keepalive_ms;
    while (true) {
        int64_t left = c->deadline - zclock_mono ();
        if (left <= 0)
            return s_give_up (c);
        int slice = keepalive < 250 ? keepalive : 250;
        int64_t idle_until = zclock_mono () + keepalive;
        ev_kind_t ev = EV_IDLE;
        while (ev == EV_IDLE && zclock_mono () < idle_until
               && zclock_mono () < c->deadline) {
            if (server_stopping (c->r->server))
                return s_interrupt (c);
            int64_t rest = idle_until - zclock_mono ();
            ev = s_next (c, rest < slice ? (int) (rest > 0 ? rest : 1) : slice);
        }
        if (ev != EV_IDLE)
            return ev;
        if (zclock_mono () >= c->deadline)
            continue;   //  The loop's head gives up
        if (!*begun) {
            http_stream_begin (c->r);
            *begun = true;
        }
        if (!http_stream_chunk (c->r, ": keep-alive\n\n", 14)) {
            s_abort (c);
            return EV_GONE;
        }
    }
}

static int
s_send_run_error (run_call_t *c)
{
    char headers[64] = "";
    if (c->err_status == 429)
        snprintf (headers, sizeof (headers), "Retry-After: %lld\r\n",
                  (long long) (c->retry_after > 0 ? c->retry_after : 1));
    return http_send_error_h (c->r, c->err_status, c->err_code, c->err_message,
                              c->err_param[0] ? c->err_param : NULL,
                              headers[0] ? headers : NULL);
}

//  ---- SSE -----------------------------------------------------------------------

//  Writes one SSE frame (after *pending, a frame held back, if any: the two
//  then share one write); false if the client is gone.
static bool
s_sse_write_after (http_req_t *r, char **pending, const char *event,
                   const char *data)
{
    char head[64] = "";
    if (event)
        snprintf (head, sizeof (head), "event: %s\n", event);
    size_t pl = pending && *pending ? strlen (*pending) : 0;
    size_t hl = strlen (head), dl = strlen (data);
    char *frame = (char *) malloc (pl + hl + dl + 9);
    if (!frame)
        return false;
    int n = snprintf (frame, pl + hl + dl + 9, "%s%sdata: %s\n\n",
                      pl ? *pending : "", head, data);
    bool ok = http_stream_chunk (r, frame, (size_t) n);
    free (frame);
    if (pending) {
        free (*pending);
        *pending = NULL;
    }
    return ok;
}

static bool
s_sse_write (http_req_t *r, const char *event, const char *data)
{
    return s_sse_write_after (r, NULL, event, data);
}

static bool
s_sse_json_after (http_req_t *r, char **pending, const char *event, cJSON *json)
{
    char *text = cJSON_PrintUnformatted (json);
    bool ok = text && s_sse_write_after (r, pending, event, text);
    cJSON_free (text);
    cJSON_Delete (json);
    return ok;
}

static bool
s_sse_json (http_req_t *r, const char *event, cJSON *json)
{
    return s_sse_json_after (r, NULL, event, json);
}

static void
s_sse_end (http_req_t *r)
{
    http_stream_chunk (r, "", 0);
}

//  ---- OpenAI Chat Completions --------------------------------------------------------

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
s_chunk (const run_call_t *c, const char *id, long created)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "id", id);
    cJSON_AddStringToObject (j, "object", "chat.completion.chunk");
    cJSON_AddNumberToObject (j, "created", (double) created);
    cJSON_AddStringToObject (j, "model", c->model);
    cJSON_AddNullToObject (j, "system_fingerprint");
    return j;
}

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

//  Checks the OpenAI request; sends 400 and returns its status on a problem.
//  Sends the refusal of a run_check, if any.  Returns its status or 0.
static int
s_send_check (http_req_t *r, const run_check_t *chk)
{
    if (!chk->status)
        return 0;
    return http_send_error (r, chk->status, chk->code, chk->message,
                            chk->param[0] ? chk->param : NULL);
}

static int
s_check_openai (http_req_t *r, const cJSON *req)
{
    run_check_t chk;
    run_check_openai (r->config, req, &chk);
    return s_send_check (r, &chk);
}

//  A field of a request that goes into a run's message may nest this deep
//  at most: the message body around it is one level more, and a message on
//  the bus nests at most MP_MAX_DEPTH (msgpack-c decodes no deeper).
#define RUN_FIELD_MAX_DEPTH (MP_MAX_DEPTH - 1)

//  Packs key and v; returns -1 (w to be discarded) if v nests deeper than
//  RUN_FIELD_MAX_DEPTH.
static int
s_pack_json_field (mp_writer_t *w, const char *key, const cJSON *v)
{
    if (json_in_deeper_than (v, RUN_FIELD_MAX_DEPTH))
        return -1;
    mp_key (w, key);
    return mpjson_pack (&w->pk, v);
}

int
route_chat_completions (http_req_t *r)
{
    cJSON *req = http_parse_json (r);
    if (!req)
        return r->status;
    int status = s_check_openai (r, req);
    if (status) {
        cJSON_Delete (req);
        return status;
    }
    run_call_t c;
    memset (&c, 0, sizeof (c));
    c.r = r;
    ids_random (c.run_id, sizeof (c.run_id), "run-");
    const char *key = mg_get_header (r->conn, "X-OpenClaw-Session-Key");
    if (key) {
        if (!ids_session_key_valid (key)) {
            cJSON_Delete (req);
            return http_send_error (r, 400, "invalid_request",
                                    "Invalid session key", "sessionKey");
        }
        snprintf (c.session, sizeof (c.session), "%s", key);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (req, "model");
    snprintf (c.model, sizeof (c.model), "%s", model->valuestring);
    bool stream = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (req, "stream"));
    bool include_usage = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (
        cJSON_GetObjectItemCaseSensitive (req, "stream_options"),
        "include_usage"));
    const cJSON *fields[] = {
        cJSON_GetObjectItemCaseSensitive (req, "temperature"),
        cJSON_GetObjectItemCaseSensitive (req, "tools"),
        cJSON_GetObjectItemCaseSensitive (req, "tool_choice"),
        cJSON_GetObjectItemCaseSensitive (req, "reasoning_effort"),
    };
    const cJSON *max = cJSON_GetObjectItemCaseSensitive (req, "max_completion_tokens");
    if (!cJSON_IsNumber (max))
        max = cJSON_GetObjectItemCaseSensitive (req, "max_tokens");
    size_t n = c.session[0] ? 7 : 6;
    for (int i = 0; i < 4; i++)
        n += fields[i] && !cJSON_IsNull (fields[i]);
    n += cJSON_IsNumber (max);
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, n);
    mp_kv_str (&w, "runId", c.run_id);
    mp_kv_str (&w, "sessionKey", c.session);
    if (c.session[0])
        mp_kv_str (&w, "channel", "openai");
    mp_kv_str (&w, "model", c.model);
    const char *too_deep = NULL;
    if (s_pack_json_field (&w, "messages",
                           cJSON_GetObjectItemCaseSensitive (req, "messages")))
        too_deep = "messages";
    mp_kv_bool (&w, "stream", stream);
    mp_kv_int (&w, "timeoutMs", r->config->request_timeout_ms);
    const char *names[] = {"temperature", "tools", "toolChoice", "thinking"};
    const char *params[] = {"temperature", "tools", "tool_choice",
                            "reasoning_effort"};
    for (int i = 0; i < 4; i++)
        if (fields[i] && !cJSON_IsNull (fields[i])
            && s_pack_json_field (&w, names[i], fields[i]) && !too_deep)
            too_deep = params[i];
    if (cJSON_IsNumber (max))
        mp_kv_int (&w, "maxTokens", (int64_t) max->valuedouble);
    cJSON_Delete (req);
    if (too_deep) {
        mp_writer_fini (&w);
        char msg[160];
        snprintf (msg, sizeof (msg),
                  "'%s' is nested deeper than the %d levels a run can carry",
                  too_deep, RUN_FIELD_MAX_DEPTH);
        return http_send_error (r, 400, "invalid_request", msg, too_deep);
    }
    status = s_start (&c, &w);
    mp_writer_fini (&w);
    if (status)
        return status;

    char id[96];
    snprintf (id, sizeof (id), "chatcmpl-%.60s", c.run_id + 4);
    long created = (long) time (NULL);
    if (!stream) {
        ev_kind_t ev = s_collect (&c);
        if (ev == EV_ERROR) {
            status = s_send_run_error (&c);
            s_call_fini (&c);
            return status;
        }
        cJSON *j = cJSON_CreateObject ();
        cJSON_AddStringToObject (j, "id", id);
        cJSON_AddStringToObject (j, "object", "chat.completion");
        cJSON_AddNumberToObject (j, "created", (double) created);
        cJSON_AddStringToObject (j, "model", c.model);
        cJSON *choices = cJSON_AddArrayToObject (j, "choices");
        cJSON *ch = cJSON_CreateObject ();
        cJSON_AddNumberToObject (ch, "index", 0);
        cJSON *m = cJSON_AddObjectToObject (ch, "message");
        cJSON_AddStringToObject (m, "role", "assistant");
        bool calls = c.tool_calls && cJSON_GetArraySize (c.tool_calls) > 0;
        if (calls && !c.text_len)
            cJSON_AddNullToObject (m, "content");
        else
            cJSON_AddStringToObject (m, "content", c.text ? c.text : "");
        if (calls) {
            //  Complete tool calls carry no "index" in OpenAI's message form.
            for (cJSON *tc = c.tool_calls->child; tc; tc = tc->next)
                cJSON_DeleteItemFromObject (tc, "index");
            cJSON_AddItemToObject (m, "tool_calls", c.tool_calls);
            c.tool_calls = NULL;
        }
        cJSON_AddNullToObject (m, "refusal");
        cJSON_AddNullToObject (ch, "logprobs");
        cJSON_AddStringToObject (ch, "finish_reason", c.finish[0] ? c.finish : "stop");
        cJSON_AddItemToArray (choices, ch);
        cJSON_AddItemToObject (j, "usage", s_usage_json (&c));
        cJSON_AddNullToObject (j, "system_fingerprint");
        status = http_send_json (r, 200, j);
        cJSON_Delete (j);
        s_call_fini (&c);
        return status;
    }

    bool begun = false, alive = true;
    char *pending = NULL;     //  Role chunk, sent with the first frame
    bool role_sent = false;
    while (alive) {
        ev_kind_t ev = s_stream_next (&c, &begun);
        if (ev == EV_GONE)
            break;
        if (ev == EV_ERROR && !begun) {
            status = s_send_run_error (&c);
            s_call_fini (&c);
            return status;
        }
        if (!begun) {
            http_stream_begin (r);
            begun = true;
        }
        if (!role_sent) {
            //  The role chunk waits for the first real frame: head, role
            //  and first delta leave in one packet.
            role_sent = true;
            cJSON *d = cJSON_CreateObject ();
            cJSON_AddStringToObject (d, "role", "assistant");
            cJSON_AddStringToObject (d, "content", "");
            cJSON *role = s_chunk_choice (s_chunk (&c, id, created), d, NULL);
            char *text = cJSON_PrintUnformatted (role);
            cJSON_Delete (role);
            size_t cap = text ? strlen (text) + 9 : 0;
            pending = text ? (char *) malloc (cap) : NULL;
            if (pending)
                snprintf (pending, cap, "data: %s\n\n", text);
            cJSON_free (text);
        }
        if (ev == EV_DELTA) {
            size_t len;
            const char *text = mp_get_str (c.msg.body.root, "delta", &len);
            const msgpack_object *calls = mp_get (c.msg.body.root, "toolCalls");
            if ((!text || !len) && !calls)
                continue;
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
            alive = s_sse_json_after (r, &pending, NULL, s_chunk_choice (s_chunk (&c, id, created),
                                                         d, NULL));
            if (!alive)
                s_abort (&c);
        }
        else if (ev == EV_DONE) {
            alive = s_sse_json_after (r, &pending, NULL,
                                s_chunk_choice (s_chunk (&c, id, created),
                                                cJSON_CreateObject (),
                                                c.finish[0] ? c.finish : "stop"));
            if (alive && include_usage) {
                cJSON *u = s_chunk (&c, id, created);
                cJSON_AddArrayToObject (u, "choices");
                cJSON_AddItemToObject (u, "usage", s_usage_json (&c));
                alive = s_sse_json_after (r, &pending, NULL, u);
            }
            if (alive && s_sse_write (r, NULL, "[DONE]"))
                s_sse_end (r);
            break;
        }
        else {   //  EV_ERROR after output began
            cJSON *e = cJSON_CreateObject ();
            cJSON *err = cJSON_AddObjectToObject (e, "error");
            cJSON_AddStringToObject (err, "message", c.err_message);
            cJSON_AddStringToObject (err, "type", c.err_status >= 500
                                                      ? "server_error"
                                                      : "invalid_request_error");
            cJSON_AddStringToObject (err, "code", c.err_code);
            if (s_sse_json_after (r, &pending, NULL, e) && s_sse_write (r, NULL, "[DONE]"))
                s_sse_end (r);
            break;
        }
    }
    free (pending);
    s_call_fini (&c);
    return 200;
}

//  ---- OpenClaw agent runs ---------------------------------------------------------------

//  Parses and checks an agent run body, starts the run.  Returns 0 when the
//  run started, else the status of the error sent.
static int
s_agent_start (http_req_t *r, run_call_t *c, bool stream)
{
    cJSON *req = http_parse_json (r);
    if (!req)
        return r->status;
    const cJSON *message = cJSON_GetObjectItemCaseSensitive (req, "message");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive (req, "sessionKey");
    const cJSON *agent = cJSON_GetObjectItemCaseSensitive (req, "agentId");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive (req, "options");
    const cJSON *thinking = cJSON_GetObjectItemCaseSensitive (opts, "thinking");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (opts, "model");
    run_check_t chk;
    run_check_agent (r->config, req, agent, &chk);
    int status = s_send_check (r, &chk);
    if (status) {
        cJSON_Delete (req);
        return status;
    }
    ids_random (c->run_id, sizeof (c->run_id), "run-");
    if (cJSON_IsString (key))
        snprintf (c->session, sizeof (c->session), "%s", key->valuestring);
    else {
        ids_uuid (c->session, sizeof (c->session), "session-");
    }
    mp_writer_t w;
    mp_writer_init (&w);
    bool has_model = cJSON_IsString (model), has_thinking = cJSON_IsString (thinking);
    msgpack_pack_map (&w.pk, 7 + has_model + has_thinking);
    mp_kv_str (&w, "runId", c->run_id);
    mp_kv_str (&w, "sessionKey", c->session);
    mp_kv_str (&w, "agentId", cJSON_IsString (agent) ? agent->valuestring
                                                      : "default");
    mp_kv_str (&w, "channel", "api");
    mp_kv_str (&w, "message", message->valuestring);
    mp_kv_bool (&w, "stream", stream);
    mp_kv_int (&w, "timeoutMs", r->config->request_timeout_ms);
    if (has_model) {
        mp_kv_str (&w, "model", model->valuestring);
        snprintf (c->model, sizeof (c->model), "%s", model->valuestring);
    }
    if (has_thinking)
        mp_kv_str (&w, "thinking", thinking->valuestring);
    cJSON_Delete (req);
    status = s_start (c, &w);
    mp_writer_fini (&w);
    return status;
}

static cJSON *
s_agent_usage (const run_call_t *c)
{
    cJSON *u = cJSON_CreateObject ();
    cJSON_AddNumberToObject (u, "promptTokens", (double) c->prompt);
    cJSON_AddNumberToObject (u, "completionTokens", (double) c->completion);
    cJSON_AddNumberToObject (u, "totalTokens", (double) (c->prompt + c->completion));
    return u;
}

int
route_agent_run (http_req_t *r)
{
    run_call_t c;
    memset (&c, 0, sizeof (c));
    c.r = r;
    int status = s_agent_start (r, &c, false);
    if (status)
        return status;
    if (s_collect (&c) == EV_ERROR) {
        status = s_send_run_error (&c);
        s_call_fini (&c);
        return status;
    }
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "runId", c.run_id);
    cJSON_AddStringToObject (j, "sessionKey", c.session);
    cJSON_AddStringToObject (j, "response", c.text ? c.text : "");
    cJSON_AddStringToObject (j, "finishReason", c.finish[0] ? c.finish : "stop");
    cJSON_AddItemToObject (j, "usage", s_agent_usage (&c));
    status = http_send_json (r, 200, j);
    cJSON_Delete (j);
    s_call_fini (&c);
    return status;
}

int
route_agent_run_stream (http_req_t *r)
{
    run_call_t c;
    memset (&c, 0, sizeof (c));
    c.r = r;
    c.want_tools = true;   //  SPEC: event: tool.call / tool.result too
    int status = s_agent_start (r, &c, true);
    if (status)
        return status;
    bool begun = false;
    while (true) {
        ev_kind_t ev = s_stream_next (&c, &begun);
        if (ev == EV_GONE)
            break;
        if (ev == EV_ERROR && !begun) {
            status = s_send_run_error (&c);
            break;
        }
        if (!begun) {
            http_stream_begin (r);
            begun = true;
        }
        if (ev == EV_TOOL) {
            //  {runId, tool, callId, params | result} as the bus carries it.
            cJSON *t = mpjson_to_json (c.msg.body.root);
            if (t) {
                cJSON_DeleteItemFromObjectCaseSensitive (t, "sessionKey");
                cJSON_DeleteItemFromObjectCaseSensitive (t, "seq");
            }
            bool ok = !t || s_sse_json (r, c.tool_event, t);   //  Takes t
            if (!ok) {
                s_abort (&c);
                break;
            }
            continue;
        }
        cJSON *d = cJSON_CreateObject ();
        cJSON_AddStringToObject (d, "runId", c.run_id);
        if (ev == EV_DELTA) {
            size_t len;
            const char *text = mp_get_str (c.msg.body.root, "delta", &len);
            if (!text || !len) {
                //  Nothing to show (a tool call being streamed).
                cJSON_Delete (d);
                continue;
            }
            char *copy = strndup (text ? text : "", text ? len : 0);
            cJSON_AddStringToObject (d, "delta", copy ? copy : "");
            free (copy);
            if (!s_sse_json (r, "delta", d)) {
                s_abort (&c);
                break;
            }
            continue;
        }
        if (ev == EV_DONE) {
            cJSON_AddStringToObject (d, "sessionKey", c.session);
            cJSON_AddStringToObject (d, "finishReason",
                                     c.finish[0] ? c.finish : "stop");
            cJSON_AddItemToObject (d, "usage", s_agent_usage (&c));
            if (s_sse_json (r, "done", d))
                s_sse_end (r);
            break;
        }
        cJSON *e = cJSON_AddObjectToObject (d, "error");
        cJSON_AddStringToObject (e, "code", c.err_code);
        cJSON_AddStringToObject (e, "message", c.err_message);
        cJSON_AddStringToObject (e, "type", c.err_status >= 500 ? "server_error"
                                                                : "client_error");
        if (s_sse_json (r, "error", d))
            s_sse_end (r);
        break;
    }
    s_call_fini (&c);
    return begun ? 200 : status;
}
