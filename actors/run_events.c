/*  =========================================================================
    run_events - what a run emits: chat.delta, chat.done, chat.error (or the
    RUN_RESULT reply of a session run), and the provider sink that feeds them
    =========================================================================
*/
#include "run_internal.h"
#include "envelope.h"
#include "msg_names.h"

#include "error.h"
#include "log.h"
#include "mpjson.h"

#include <string.h>

//  The next seq of run's events: its own count for a session run with
//  replyTo (from seqBase) and for a stateless one (its topic "run:<id>"
//  is its alone); its session's counter otherwise.
static uint64_t
s_next_seq (self_t *self, run_t *run)
{
    seq_t *c = run->seq_held ? (seq_t *) zhashx_lookup (self->seqs, run->session) : NULL;
    if (!c)
        return (uint64_t) ++run->seq;
    return (uint64_t) ++c->seq;
}

//  Opens an event's map with the fields every event shares; the caller adds
//  its own, and run_events_publish closes the map.
void
run_events_head (mp_writer_t *w, run_t *run)
{
    mp_map_begin (w);
    mp_kv_str (w, MK_sessionKey, run->session);
    mp_kv_str (w, MK_runId, run->id);
    mp_kv_int (w, MK_seq, (int64_t) s_next_seq (run->self, run));
}

//  Head of chat.done / chat.error: in result mode the body is a RUN_RESULT
//  and says which event it stands for.
static void
s_end_head (mp_writer_t *w, run_t *run, const char *type)
{
    run_events_head (w, run);
    if (run->result_mode)
        mp_kv_str (w, MK_event, type);
}

void
run_events_publish (run_t *run, const char *type, mp_writer_t *w)
{
    mp_map_end (w);
    if (run->result_mode
        && (!strcmp (type, MN_CHAT_DONE) || !strcmp (type, MN_CHAT_ERROR))) {
        //  The session actor commits the reply, then publishes the end.
        if (bus_worker_reply (run->self->worker, &run->asker, MT_RUN_RESULT, ENVELOPE_OK,
                              w->buf.data, w->buf.size))
            log_warn ("run", "%s: result dropped: broker not taking it", run->id);
        return;
    }
    char topic[BUS_MAX_TOPIC + 1];
    snprintf (topic, sizeof (topic), "%s/%s", run->topic_prefix, type);
    if (bus_worker_event (run->self->worker, run->front_len ? run->front : NULL,
                          run->front_len, topic, w->buf.data, w->buf.size))
        log_warn ("run", "%s: event %s dropped: broker not taking it", run->id, type);
}

static void
s_emit_delta (run_t *run, const char *text, size_t len, const cJSON *calls)
{
    //  A front that did not ask for a stream gets the whole text in
    //  chat.done; the bus (taps, watchers) still sees every delta.
    size_t front_len = run->front_len;
    if (!run->stream)
        run->front_len = 0;
    mp_writer_t w;
    mp_writer_init (&w);
    run_events_head (&w, run);
    mp_key (&w, MK_delta);
    mp_put_strn (&w, text, len);
    if (calls) {
        mp_key (&w, MK_toolCalls);
        mpjson_pack (&w.pk, calls);
    }
    run_events_publish (run, MN_CHAT_DELTA, &w);
    mp_writer_fini (&w);
    run->front_len = front_len;
}

void
run_events_done (run_t *run, const char *reason)
{
    mp_writer_t w;
    mp_writer_init (&w);
    bool calls = run->tool_calls && cJSON_GetArraySize (run->tool_calls) > 0;
    bool steps = run->log && cJSON_GetArraySize (run->log) > 0;
    s_end_head (&w, run, MN_CHAT_DONE);
    mp_kv_str (&w, MK_finishReason, reason);
    mp_key (&w, MK_usage);
    mp_map_begin (&w);
    int64_t prompt = run->prompt_tokens + run->earlier_prompt;
    int64_t completion = run->completion_tokens + run->earlier_completion;
    mp_kv_int (&w, "promptTokens", prompt);
    mp_kv_int (&w, "completionTokens", completion);
    mp_kv_int (&w, "totalTokens", prompt + completion);
    mp_map_end (&w);
    mp_key (&w, MK_response);
    mp_put_strn (&w, run->text ? run->text : "", run->text_len);
    mp_kv_str (&w, MK_model, run->candidates[run->candidate]);
    if (calls) {
        mp_key (&w, MK_toolCalls);
        mpjson_pack (&w.pk, run->tool_calls);
    }
    if (steps) {
        //  The tool rounds, for the session to store (OpenAI message format
        //  plus "tool" on tool results).
        mp_key (&w, MK_steps);
        mpjson_pack (&w.pk, run->log);
    }
    run_events_publish (run, MN_CHAT_DONE, &w);
    mp_writer_fini (&w);
    log_info ("run", "%s done: %s, model %s, %lld+%lld tokens", run->id, reason,
              run->candidates[run->candidate], (long long) run->prompt_tokens,
              (long long) run->completion_tokens);
}

void
run_events_error (run_t *run)
{
    mp_writer_t w;
    mp_writer_init (&w);
    s_end_head (&w, run, MN_CHAT_ERROR);
    if (run->retry_after)
        mp_kv_int (&w, MK_retryAfter, run->retry_after);
    mp_key (&w, MK_error);
    error_pack_event (&w, run->err_status, run->err_code, run->err_message);
    mp_kv_int (&w, MK_status, run->err_status);
    run_events_publish (run, MN_CHAT_ERROR, &w);
    mp_writer_fini (&w);
    log_warn ("run", "%s failed: %d %s: %s", run->id, run->err_status, run->err_code,
              run->err_message);
}

//  ---- Provider sink -------------------------------------------------------------

static void
s_append_text (run_t *run, const char *text, size_t len)
{
    if (run->text_len + len + 1 > run->text_cap) {
        size_t cap = run->text_cap ? run->text_cap : 256;
        while (cap < run->text_len + len + 1)
            cap *= 2;
        char *grown = (char *) realloc (run->text, cap);
        if (!grown)
            return;
        run->text = grown;
        run->text_cap = cap;
    }
    memcpy (run->text + run->text_len, text, len);
    run->text_len += len;
    run->text[run->text_len] = 0;
}

//  Folds OpenAI chunk-format tool-call deltas into complete tool calls.
static void
s_merge_tool_calls (run_t *run, const cJSON *deltas)
{
    if (!run->tool_calls)
        run->tool_calls = cJSON_CreateArray ();
    for (const cJSON *d = deltas->child; d; d = d->next) {
        const cJSON *ix = cJSON_GetObjectItem (d, "index");
        int index = cJSON_IsNumber (ix) ? ix->valueint : 0;
        if (index < 0 || index > 127)
            continue;
        while (cJSON_GetArraySize (run->tool_calls) <= index) {
            cJSON *c = cJSON_CreateObject ();
            cJSON_AddStringToObject (c, "id", "");
            cJSON_AddStringToObject (c, "type", "function");
            cJSON *fn = cJSON_AddObjectToObject (c, "function");
            cJSON_AddStringToObject (fn, "name", "");
            cJSON_AddStringToObject (fn, "arguments", "");
            cJSON_AddItemToArray (run->tool_calls, c);
        }
        cJSON *call = cJSON_GetArrayItem (run->tool_calls, index);
        const cJSON *id = cJSON_GetObjectItem (d, "id");
        if (cJSON_IsString (id) && *id->valuestring)
            cJSON_ReplaceItemInObject (call, "id", cJSON_CreateString (id->valuestring));
        const cJSON *fn = cJSON_GetObjectItem (d, "function");
        cJSON *cfn = cJSON_GetObjectItem (call, "function");
        const cJSON *name = cJSON_GetObjectItem (fn, "name");
        if (cJSON_IsString (name) && *name->valuestring)
            cJSON_ReplaceItemInObject (cfn, "name",
                                       cJSON_CreateString (name->valuestring));
        const cJSON *args = cJSON_GetObjectItem (fn, "arguments");
        if (cJSON_IsString (args) && *args->valuestring) {
            const char *old = cJSON_GetObjectItem (cfn, "arguments")->valuestring;
            size_t n = strlen (old) + strlen (args->valuestring) + 1;
            char *joined = (char *) malloc (n);
            if (joined) {
                snprintf (joined, n, "%s%s", old, args->valuestring);
                cJSON_ReplaceItemInObject (cfn, "arguments", cJSON_CreateString (joined));
                free (joined);
            }
        }
    }
}

void
run_events_delta (void *arg, const char *text, size_t len, const cJSON *calls)
{
    run_t *run = (run_t *) arg;
    run->got_output = true;
    s_append_text (run, text, len);
    if (calls)
        s_merge_tool_calls (run, calls);
    s_emit_delta (run, text, len, calls);
}

static void
s_sink_usage (void *arg, int64_t prompt, int64_t completion)
{
    run_t *run = (run_t *) arg;
    run->prompt_tokens = prompt;
    if (completion)
        run->completion_tokens = completion;
}

static void
s_sink_finish (void *arg, const char *reason)
{
    run_t *run = (run_t *) arg;
    snprintf (run->finish, sizeof (run->finish), "%s", reason);
}

static void
s_sink_error (void *arg, int status, const char *code, const char *message)
{
    run_t *run = (run_t *) arg;
    run->err_status = status;
    snprintf (run->err_code, sizeof (run->err_code), "%s", code);
    snprintf (run->err_message, sizeof (run->err_message), "%s", message);
    run->err_retry = status != ENVELOPE_BAD_REQUEST;
}

const provider_sink_t run_events_sink = {run_events_delta, s_sink_usage, s_sink_finish,
                                         s_sink_error};
