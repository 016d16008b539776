/*  =========================================================================
    hooks - the generic webhook channel: POST /v1/hooks/{name}

    channels.webhook.hooks.<name> = {token, callbackUrl?, agentId?}.  A
    caller POSTs {message, sessionKey?, idempotencyKey?} with the hook's
    own token in a header (the front never takes it from the query).  The
    message is stored (unique by hook and idempotencyKey), then run on
    sessionKey, or on a session of its own ("webhook:<hook>:<id>").  The
    reply comes back in the response (HOOK_RUN_OK once the run ends), or,
    when the hook has a callbackUrl, the response says "accepted" at once
    and the reply is POSTed there (retried like any channel's send).  A
    repeated idempotencyKey gets the first run's result (waiting for it
    if it is still going), never a second run.
    =========================================================================
*/
#include "channel_internal.h"
#include "ids.h"
#include "json_in.h"
#include "log.h"
#include "msg_names.h"

#include <string.h>

#define HOOK_CALL_MS 30000

static chan_t *
s_chan (self_t *self)
{
    for (size_t i = 0; i < self->n_chans; i++)
        if (self->chans[i].platform == &platform_webhook)
            return &self->chans[i];
    return NULL;
}

static const cfg_hook_t *
s_hook (const chan_t *ch, const char *name)
{
    for (size_t i = 0; ch->cfg && i < ch->cfg->n_hooks; i++)
        if (streq (ch->cfg->hooks[i].name, name))
            return &ch->cfg->hooks[i];
    return NULL;
}

//  The hook a job belongs to: its chat id is the hook's name.
static const cfg_hook_t *
s_job_hook (const job_t *job)
{
    return s_hook (job->ch, job->chat_id);
}

static const char *
s_agent (const job_t *job)
{
    const cfg_hook_t *hook = s_job_hook (job);
    return hook && hook->agent_id ? hook->agent_id : job->ch->agent;
}

//  Packs a HOOK_RUN_OK for a finished (or accepted) run and sends it.
static void
s_reply (self_t *self, const bus_request_t *req, const char *run_id, const char *session,
         const char *status, const char *response, bool repeated)
{
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_kv_str (&w, MK_runId, run_id);
    mp_kv_str (&w, MK_sessionKey, session);
    mp_kv_str (&w, MK_status, status);
    if (streq (status, "done")) {
        mp_kv_str (&w, MK_response, response);
        mp_kv_str (&w, MK_finishReason, "stop");
    }
    else if (streq (status, "failed")) {
        mp_key (&w, MK_error);
        mp_map_begin (&w);
        mp_kv_str (&w, MK_code, "run_failed");
        mp_kv_str (&w, MK_message, response);
        mp_map_end (&w);
    }
    if (repeated)
        mp_kv_bool (&w, MK_repeated, true);
    actor_reply_map (self->worker, req, MT_HOOK_RUN_OK, &w);
}

//  Keeps who asks, to answer when the run ends.
static void
s_wait (job_t *job, const bus_request_t *req)
{
    bus_request_t *copy = (bus_request_t *) calloc (1, sizeof (bus_request_t));
    if (!copy)
        return;
    memcpy (copy->front, req->front, req->front_len);
    copy->front_len = req->front_len;
    copy->env = req->env;
    if (!job->waiters)
        job->waiters = zlistx_new ();
    zlistx_add_end (job->waiters, copy);
}

//  A job is over: its callers get the result (the platform's finished).
static void
s_answer (chan_t *ch, job_t *job)
{
    self_t *self = ch->self;
    if (!job->waiters)
        return;
    const char *reply = job->reply ? job->reply : "";
    for (bus_request_t *r = (bus_request_t *) zlistx_first (job->waiters); r;
         r = (bus_request_t *) zlistx_next (job->waiters)) {
        s_reply (self, r, job->run_id, job->session, job->failed ? "failed" : "done",
                 reply, false);
        free (r);
    }
    zlistx_destroy (&job->waiters);
}

//  A repeat of a stored key: the first run's result, now or when it ends.
typedef struct {
    self_t *self;
    const bus_request_t *req;
    bool callback;
    bool repeated;  //  A repeat of the key (not the first call)
} repeat_t;

static int
s_repeat (void *arg, const chan_msg_t *m)
{
    repeat_t *r = (repeat_t *) arg;
    if (streq (m->state, "done") || streq (m->state, "failed")) {
        bool failed = streq (m->state, "failed");
        s_reply (r->self, r->req, m->run_id, m->session, failed ? "failed" : "done",
                 failed && *m->error ? m->error : m->reply, r->repeated);
        return 1;
    }
    char key[24];
    snprintf (key, sizeof (key), "%lld", (long long) m->id);
    job_t *job = (job_t *) zhashx_lookup (r->self->jobs, key);
    if (r->callback || !job)
        s_reply (r->self, r->req, m->run_id, m->session, "accepted", NULL, r->repeated);
    else
        s_wait (job, r->req);
    return 1;
}

//  The hook a HOOK_RUN names, its credential checked; NULL after answering
//  404 or 401.
static const cfg_hook_t *
s_hook_checked (self_t *self, bus_request_t *req, char *name, size_t cap)
{
    chan_t *ch = s_chan (self);
    mp_copy_str (req->body.root, MK_name, name, cap);
    const cfg_hook_t *hook = ch && ch->enabled ? s_hook (ch, name) : NULL;
    if (!hook) {
        bus_worker_error (self->worker, req, ENVELOPE_NOT_FOUND, "not_found",
                          ch && ch->cfg && !ch->enabled
                              ? "The webhook channel is disabled"
                              : "No such hook",
                          NULL);
        return NULL;
    }
    size_t tlen = 0;
    const char *token = mp_get_str (req->body.root, MK_token, &tlen);
    if (!token || !*hook->token || !ids_secret_equal (token, tlen, hook->token)) {
        log_warn ("channel", "webhook: hook %s refused a wrong or missing token", name);
        bus_worker_error (self->worker, req, ENVELOPE_UNAUTHORIZED, "unauthorized",
                          "Wrong or missing hook token (Authorization: Bearer, or "
                          "X-OpenClaw-Token)",
                          NULL);
        return NULL;
    }
    return hook;
}

//  The body {message, sessionKey?, idempotencyKey?} of a HOOK_RUN, parsed
//  and checked; NULL after answering 400.  Caller owns the return value.
static cJSON *
s_body_checked (self_t *self, bus_request_t *req)
{
    size_t blen = 0;
    const char *body = mp_get_str (req->body.root, MK_body, &blen);
    json_in_rc_t rc;
    cJSON *j = body ? json_in_parse (body, blen, 0, JSON_IN_OBJECT, &rc, NULL) : NULL;
    const cJSON *message = cJSON_GetObjectItemCaseSensitive (j, "message");
    const cJSON *session = cJSON_GetObjectItemCaseSensitive (j, "sessionKey");
    const cJSON *idem = cJSON_GetObjectItemCaseSensitive (j, "idempotencyKey");
    const char *bad = NULL, *param = NULL;
    char why[160];
    if (!j) {
        snprintf (why, sizeof (why), "Request body%s",
                  body ? json_in_reason (rc) : " is missing");
        bad = why;
    }
    else if (!cJSON_IsString (message) || !*message->valuestring)
        bad = "'message' must be a non-empty string", param = "message";
    else if (strlen (message->valuestring) > CHAN_MAX_TEXT)
        bad = "'message' is too long", param = "message";
    else if (session && !cJSON_IsNull (session)
             && (!cJSON_IsString (session)
                 || !ids_session_key_valid (session->valuestring)))
        bad = "Invalid session key", param = "sessionKey";
    else if (idem && !cJSON_IsNull (idem)
             && (!cJSON_IsString (idem) || !*idem->valuestring
                 || strlen (idem->valuestring) > 200))
        bad = "'idempotencyKey' must be a string of 1 to 200 characters",
        param = "idempotencyKey";
    if (!bad)
        return j;
    cJSON_Delete (j);
    bus_worker_error (self->worker, req, ENVELOPE_BAD_REQUEST, "invalid_request", bad,
                      param);
    return NULL;
}

void
hooks_run (self_t *self, bus_request_t *req)
{
    char name[80] = "";
    const cfg_hook_t *hook = s_hook_checked (self, req, name, sizeof (name));
    cJSON *j = hook ? s_body_checked (self, req) : NULL;
    if (!j)
        return;
    const cJSON *session = cJSON_GetObjectItemCaseSensitive (j, "sessionKey");
    const cJSON *idem = cJSON_GetObjectItemCaseSensitive (j, "idempotencyKey");
    char id[48], key[300], sess[ENVELOPE_KEY_MAX + 1];
    ids_random (id, sizeof (id), "");
    bool has_idem = cJSON_IsString (idem);
    snprintf (key, sizeof (key), "%s:%s", name, has_idem ? idem->valuestring : id);
    if (cJSON_IsString (session))
        snprintf (sess, sizeof (sess), "%s", session->valuestring);
    else
        snprintf (sess, sizeof (sess), "webhook:%s:%.16s", name, id);
    repeat_t r = {self, req, hook->callback_url != NULL, true};
    int found = has_idem ? chanstore_find (self->store, "webhook", key, s_repeat, &r) : 0;
    if (found) {
        cJSON_Delete (j);
        if (found < 0)
            bus_worker_error (self->worker, req, ENVELOPE_INTERNAL, "internal_error",
                              "The channel store could not be read", NULL);
        return;
    }
    chan_msg_t m = {.channel = "webhook",
                    .key = key,
                    .chat_id = name,
                    .sender_id = name,
                    .sender_name = "",
                    .reply_to = "",
                    .text = cJSON_GetObjectItemCaseSensitive (j, "message")->valuestring,
                    .kind = "run",
                    .state = "queued",
                    .session = sess,
                    .reply = ""};
    bool dup;
    job_t *job = chan_ingest_one (s_chan (self), &m, &dup);
    cJSON_Delete (j);
    //  Stored, and already over (a run refused at once): its result.
    r.repeated = false;
    if (!job && chanstore_find (self->store, "webhook", key, s_repeat, &r) > 0)
        return;
    if (!job)
        bus_worker_error (self->worker, req, ENVELOPE_UNAVAILABLE, "service_unavailable",
                          "The channel store is not taking messages now", NULL);
    else if (hook->callback_url)
        s_reply (self, req, job->run_id, job->session, "accepted", NULL, false);
    else
        s_wait (job, req);
}

//  ---- The platform: a reply goes to the callback URL, if any ----------------------

static void
s_on_callback (void *arg, long status, const char *body, size_t len, const char *error,
               const char *retry_after)
{
    job_t *job = (job_t *) arg;
    job->platform_data = NULL;
    char why[200];
    if (status)
        snprintf (why, sizeof (why), "callback: HTTP %ld", status);
    else
        snprintf (why, sizeof (why), "callback: %s", error ? error : "no answer");
    if (status >= 200 && status < 300)
        chan_sent (job->ch, job, SEND_OK, 0, NULL);
    else if (status == 429 || status >= 500 || status == 0)
        chan_sent (job->ch, job, SEND_RETRY, chan_retry_after_ms (retry_after, 0), why);
    else
        chan_sent (job->ch, job, SEND_PERMANENT, 0, why);
}

static int
s_send (chan_t *ch, job_t *job)
{
    const cfg_hook_t *hook = s_job_hook (job);
    if (!hook || !hook->callback_url) {
        //  The reply goes in the response (hooks_answer, when it ends).
        chan_sent (ch, job, SEND_OK, 0, NULL);
        return 0;
    }
    cJSON *b = cJSON_CreateObject ();
    cJSON_AddStringToObject (b, "hook", hook->name);
    cJSON_AddStringToObject (b, "runId", job->run_id);
    cJSON_AddStringToObject (b, "sessionKey", job->session);
    cJSON_AddStringToObject (b, "status", job->failed ? "failed" : "done");
    cJSON_AddStringToObject (b, "response", job->reply ? job->reply : "");
    const char *colon = strchr (job->key, ':');
    cJSON_AddStringToObject (b, "idempotencyKey", colon ? colon + 1 : job->key);
    char *text = cJSON_PrintUnformatted (b);
    cJSON_Delete (b);
    chan_http_t *c = text ? chan_http_post (ch->self, hook->callback_url, text, NULL,
                                            HOOK_CALL_MS, s_on_callback, job)
                          : NULL;
    free (text);
    job->platform_data = c;
    return c ? 0 : -1;
}

static void
s_start (chan_t *ch)
{
    chan_set_status (ch, "connected", NULL);
}

static void
s_stop (chan_t *ch)
{
}

const platform_t platform_webhook = {.id = "webhook",
                                     .name = "Webhook",
                                     .limit = (size_t) 1 << 30,
                                     .unit = SPLIT_CODEPOINTS,
                                     .start = s_start,
                                     .stop = s_stop,
                                     .send = s_send,
                                     .agent = s_agent,
                                     .finished = s_answer};
