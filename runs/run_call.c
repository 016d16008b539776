/*  =========================================================================
    run_call - one agent run, as any front starts and follows it
    =========================================================================
*/
#include "run_call.h"
#include "msg_names.h"

#include "ids.h"
#include "json_in.h"
#include "mpjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void
run_call_init (run_call_t *c, bus_front_t *bus, int timeout_ms)
{
    memset (c, 0, sizeof (*c));
    c->bus = bus;
    c->timeout_ms = timeout_ms;
    mp_writer_init (&c->body);
}

void
run_call_fini (run_call_t *c)
{
    if (c->have_msg)
        bus_msg_fini (&c->msg);
    c->have_msg = false;
    free (c->text);
    c->text = NULL;
    c->text_len = c->text_cap = 0;
    cJSON_Delete (c->tool_calls);
    c->tool_calls = NULL;
    mp_writer_fini (&c->body);
    mp_writer_init (&c->body);
}

//  ---- Starting ---------------------------------------------------------------

int
run_call_agent (run_call_t *c, const run_catalog_t *cat, const cJSON *req,
                const cJSON *agent, const char *channel, bool stream, run_check_t *chk)
{
    if (run_check_agent (cat, req, agent, chk))
        return chk->status;
    const cJSON *message = cJSON_GetObjectItemCaseSensitive (req, "message");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive (req, "sessionKey");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive (req, "options");
    const cJSON *thinking = cJSON_GetObjectItemCaseSensitive (opts, "thinking");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (opts, "model");
    ids_random (c->run_id, sizeof (c->run_id), "run-");
    if (cJSON_IsString (key))
        snprintf (c->session, sizeof (c->session), "%s", key->valuestring);
    else
        ids_uuid (c->session, sizeof (c->session), "session-");
    c->stream = stream;
    mp_writer_t *w = &c->body;
    bool has_model = cJSON_IsString (model), has_thinking = cJSON_IsString (thinking);
    mp_map_begin (w);
    mp_kv_str (w, MK_runId, c->run_id);
    mp_kv_str (w, MK_sessionKey, c->session);
    mp_kv_str (w, MK_agentId, cJSON_IsString (agent) ? agent->valuestring : "default");
    mp_kv_str (w, MK_channel, channel);
    mp_kv_str (w, MK_message, message->valuestring);
    mp_kv_bool (w, MK_stream, stream);
    mp_kv_int (w, MK_timeoutMs, c->timeout_ms);
    if (has_model) {
        mp_kv_str (w, MK_model, model->valuestring);
        snprintf (c->model, sizeof (c->model), "%s", model->valuestring);
    }
    if (has_thinking)
        mp_kv_str (w, MK_thinking, thinking->valuestring);
    mp_map_end (w);
    return 0;
}

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
run_call_openai (run_call_t *c, const run_catalog_t *cat, const cJSON *req,
                 const char *session_key, run_check_t *chk)
{
    if (run_check_openai (cat, req, chk))
        return chk->status;
    ids_random (c->run_id, sizeof (c->run_id), "run-");
    if (session_key) {
        if (!ids_session_key_valid (session_key))
            return run_check_refuse (chk, 400, "sessionKey", "Invalid session key");
        snprintf (c->session, sizeof (c->session), "%s", session_key);
    }
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (req, "model");
    snprintf (c->model, sizeof (c->model), "%s", model->valuestring);
    c->stream = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (req, "stream"));
    //  Optional fields, under their names in the run's body; params are
    //  the client's names for them, for a refusal.
    static const char *const names[] = {MK_temperature, MK_tools, MK_toolChoice,
                                        MK_thinking};
    static const char *const params[] = {"temperature", "tools", "tool_choice",
                                         "reasoning_effort"};
    const cJSON *fields[4];
    for (int i = 0; i < 4; i++)
        fields[i] = cJSON_GetObjectItemCaseSensitive (req, params[i]);
    const cJSON *max = cJSON_GetObjectItemCaseSensitive (req, "max_completion_tokens");
    if (!cJSON_IsNumber (max))
        max = cJSON_GetObjectItemCaseSensitive (req, "max_tokens");
    mp_writer_t *w = &c->body;
    mp_map_begin (w);
    mp_kv_str (w, MK_runId, c->run_id);
    mp_kv_str (w, MK_sessionKey, c->session);
    if (c->session[0])
        mp_kv_str (w, MK_channel, "openai");
    mp_kv_str (w, MK_model, c->model);
    const char *too_deep = NULL;
    if (s_pack_json_field (w, MK_messages,
                           cJSON_GetObjectItemCaseSensitive (req, "messages")))
        too_deep = "messages";
    mp_kv_bool (w, MK_stream, c->stream);
    mp_kv_int (w, MK_timeoutMs, c->timeout_ms);
    for (int i = 0; i < 4; i++)
        if (fields[i] && !cJSON_IsNull (fields[i])
            && s_pack_json_field (w, names[i], fields[i]) && !too_deep)
            too_deep = params[i];
    if (cJSON_IsNumber (max))
        mp_kv_int (w, MK_maxTokens, (int64_t) max->valuedouble);
    mp_map_end (w);
    if (too_deep)
        return run_check_refuse (
            chk, 400, too_deep,
            "'%s' is nested deeper than the %d levels a run can carry", too_deep,
            RUN_FIELD_MAX_DEPTH);
    return 0;
}

const char *
run_call_key (const run_call_t *c)
{
    return c->session[0] ? c->session : c->run_id;
}

int
run_call_send (run_call_t *c, int env_timeout_ms)
{
    //  Runs on a session go through the session actor (recorded, queued
    //  behind the session's earlier runs); stateless ones straight to run.
    bool recorded = c->session[0] != 0;
    envelope_t env;
    envelope_init (&env, recorded ? MT_SESSION_RUN : MT_RUN_START);
    snprintf (env.session_key, sizeof (env.session_key), "%s", run_call_key (c));
    env.timeout_ms = env_timeout_ms;
    c->deadline = zclock_mono () + c->timeout_ms + RUN_CALL_GRACE_MS;
    if (bus_front_send (c->bus, recorded ? "session" : "run", &env, c->body.buf.data,
                        c->body.buf.size))
        return -1;
    c->corr_id = env.corr_id;
    return 0;
}

//  ---- Following --------------------------------------------------------------

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

//  Records what an event of that type with that body says.
static run_ev_t
s_record (run_call_t *c, const char *type, const msgpack_object *b)
{
    if (!strcmp (type, "chat.delta")) {
        size_t len;
        const char *d = mp_get_str (b, MK_delta, &len);
        if (d)
            s_append (c, d, len);
        return RUN_EV_DELTA;
    }
    if (!strcmp (type, "chat.done")) {
        mp_copy_str (b, MK_finishReason, c->finish, sizeof (c->finish));
        //  The full text is authoritative (deltas go only to streams).
        size_t rlen;
        const char *resp = mp_get_str (b, MK_response, &rlen);
        c->text_len = 0;
        if (resp)
            s_append (c, resp, rlen);
        const msgpack_object *u = mp_get (b, MK_usage);
        mp_get_int (u, "promptTokens", &c->prompt);
        mp_get_int (u, "completionTokens", &c->completion);
        const msgpack_object *calls = mp_get (b, MK_toolCalls);
        if (calls && calls->type == MSGPACK_OBJECT_ARRAY) {
            cJSON_Delete (c->tool_calls);
            c->tool_calls = mpjson_to_json (calls);
        }
        return RUN_EV_DONE;
    }
    if (!strcmp (type, "chat.error")) {
        int64_t status = 500;
        mp_get_int (b, MK_status, &status);
        mp_get_int (b, MK_retryAfter, &c->retry_after);
        error_read (mp_get (b, MK_error),
                    status >= 400 && status <= 599 ? (int) status : 500, "Run failed",
                    &c->err);
        return RUN_EV_ERROR;
    }
    if (c->want_tools && (!strcmp (type, "tool.call") || !strcmp (type, "tool.result"))) {
        snprintf (c->tool_event, sizeof (c->tool_event), "%s", type);
        return RUN_EV_TOOL;
    }
    return RUN_EV_IDLE;  //  Other event types: not ours to relay
}

run_ev_t
run_call_take (run_call_t *c, const bus_msg_t *msg)
{
    if (msg->kind == BUS_MSG_REPLY && msg->env.corr_id == c->corr_id
        && msg->env.status != 200) {
        //  The run was refused (or no actor is alive to take it).
        error_read (msg->body.root, msg->env.status, "Run refused", &c->err);
        return RUN_EV_ERROR;
    }
    size_t idlen;
    const char *id = mp_get_str (msg->body.root, MK_runId, &idlen);
    const char *slash = strrchr (msg->topic, '/');
    //  Events of earlier runs on this socket, and stray replies: not ours.
    if (msg->kind != BUS_MSG_EVENT || !slash || !id || idlen != strlen (c->run_id)
        || memcmp (id, c->run_id, idlen))
        return RUN_EV_IDLE;
    return s_record (c, slash + 1, msg->body.root);
}

run_ev_t
run_call_next (run_call_t *c, int idle_ms)
{
    if (c->have_msg) {
        bus_msg_fini (&c->msg);
        c->have_msg = false;
    }
    int64_t until = zclock_mono () + idle_ms;
    while (true) {
        int64_t left = until - zclock_mono ();
        if (left <= 0 || bus_front_recv (c->bus, (int) left, &c->msg))
            return RUN_EV_IDLE;
        run_ev_t ev = run_call_take (c, &c->msg);
        if (ev != RUN_EV_IDLE) {
            c->have_msg = true;
            return ev;
        }
        bus_msg_fini (&c->msg);
    }
}

int64_t
run_call_left (const run_call_t *c)
{
    return c->deadline - zclock_mono ();
}

void
run_call_pack_abort (mp_writer_t *w, const char *run_id, bool shutdown)
{
    mp_map_begin (w);
    mp_kv_str (w, MK_runId, run_id);
    if (shutdown)
        mp_kv_str (w, MK_reason, "shutdown");
    mp_map_end (w);
}

void
run_call_abort (run_call_t *c, bool shutdown, int timeout_ms)
{
    mp_writer_t w;
    mp_writer_init (&w);
    run_call_pack_abort (&w, c->run_id, shutdown);
    bool recorded = c->session[0] != 0;
    envelope_t env;
    envelope_init (&env, recorded ? MT_SESSION_ABORT : MT_RUN_ABORT);
    snprintf (env.session_key, sizeof (env.session_key), "%s", run_call_key (c));
    bus_msg_t reply;
    if (bus_front_call (c->bus, recorded ? "session" : "run", &env, w.buf.data,
                        w.buf.size, timeout_ms, &reply)
        == 0)
        bus_msg_fini (&reply);
    mp_writer_fini (&w);
}

run_ev_t
run_call_fail (run_call_t *c, int status, const char *code, const char *message)
{
    c->err.status = status;
    snprintf (c->err.code, sizeof (c->err.code), "%s", code);
    snprintf (c->err.message, sizeof (c->err.message), "%s", message);
    c->err.param[0] = 0;
    return RUN_EV_ERROR;
}

bool
run_event_ends (const char *type)
{
    return !strcmp (type, "chat.done") || !strcmp (type, "chat.error");
}
