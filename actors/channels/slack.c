/*  =========================================================================
    slack - the Slack channel: Socket Mode or the Events API, Web API out

    Start: auth.test with the bot token (who the bot is: its user id, to
    see mentions and skip its own messages).  Then, in mode "socket" (the
    default), apps.connections.open with the app token gives a one-time
    WebSocket URL; Slack says hello and sends envelopes.  Every envelope is
    acknowledged ({"envelope_id"}) once what it carries is stored, and not
    before: an envelope Slack does not see acknowledged within 3 s comes
    again (and is then answered once, the store being unique on the
    message).  A "disconnect" (Slack's warning before it closes a socket,
    or refresh_requested) opens the next socket first and closes the old
    one when the new one says hello, so there are never more than two, and
    never a gap.  too_many_websockets closes ours and backs off;
    link_disabled is an error.  A socket on which nothing arrives for
    pollTimeoutS (Slack pings; so do we, every third of it) is dead, and
    replaced: a socket that looks healthy but hears nothing is the failure
    Slack users report most.

    In mode "http", Slack POSTs to /v1/channels/slack/webhook:
    X-Slack-Signature v0 (HMAC-SHA256 of "v0:<timestamp>:<body>" with the
    signing secret, constant-time compare) within 5 minutes of
    X-Slack-Request-Timestamp, checked before the body is read;
    url_verification is answered with its challenge; an event is answered
    200 once stored.  Slack's retries (X-Slack-Retry-Num) carry the same
    message and are answered 200 without a second run.

    Messages: "message" in DMs (im) and groups, "app_mention" in channels.
    Both can arrive for one message: each is keyed on channel and ts, so
    one is stored.  Bot messages, the bot's own, edits and other subtypes
    are skipped.  In a channel the reply goes in the message's thread; in
    a DM, in its thread only if it was in one.

    Replies: chat.postMessage, split under 4000; 429 waits Retry-After;
    ratelimited, 5xx and Slack's transient errors are retried; the others
    (channel_not_found, not_in_channel, is_archived, msg_too_long, ...) are
    permanent, and a bad token marks the channel error.  Slack has no
    typing call for bots.  Tokens go in headers only; socket URLs carry a
    ticket and are never logged.
    =========================================================================
*/
#include "channel_internal.h"
#include "chat_parse.h"
#include "ids.h"
#include "json_in.h"
#include "log.h"
#include "msg_names.h"
#include "wsclient.h"

#include <string.h>

#define SL_DEFAULT_BASE "https://slack.com/api"
#define SL_CALL_MS 30000
#define SL_WINDOW_S 300  //  Signed requests older (or newer) than this: refused

typedef struct {
    chan_t *ch;
    char api[1024];      //  baseUrl without its trailing '/'
    char bot_auth[600];  //  "Authorization: Bearer xoxb-..." (secret)
    char app_auth[600];  //  "Authorization: Bearer xapp-..." (secret)
    char bot_user[64];   //  auth.test user_id ("" until known)
    char bot_id[64];     //  auth.test bot_id
    char team[128];
    bool have_me;
    chan_http_t *call;  //  auth.test or apps.connections.open
    int failures;       //  Failures in a row
    wsc_t *ws;          //  The socket in use (hello received) or being opened
    wsc_t *old;         //  The socket being replaced, until the new says hello
    bool old_closing;   //  Its close is asked for: it hears no more
    bool ws_hello;
    int64_t envelopes, acks;
} sl_t;

static sl_t *
s_sl (chan_t *ch)
{
    return (sl_t *) ch->transport;
}

static bool
s_socket_mode (const chan_t *ch)
{
    return !ch->cfg->mode || strcmp (ch->cfg->mode, "http");
}

//  A Web API answer: ok, error, and a sentence for lastError.
typedef struct {
    bool ok;
    char error[64];
    char why[200];
    cJSON *root;  //  Owned
} sl_answer_t;

static void
s_answer (sl_answer_t *a, const char *method, long status, const char *body, size_t len,
          const char *error)
{
    memset (a, 0, sizeof (*a));
    a->root = json_in_parse (body, len, CHAN_MAX_BODY, JSON_IN_OBJECT, NULL, NULL);
    a->ok = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (a->root, "ok"));
    const cJSON *e = cJSON_GetObjectItemCaseSensitive (a->root, "error");
    if (cJSON_IsString (e))
        snprintf (a->error, sizeof (a->error), "%s", e->valuestring);
    if (!status)
        snprintf (a->why, sizeof (a->why), "%s: %s", method, error ? error : "no answer");
    else
        snprintf (a->why, sizeof (a->why), "%s: HTTP %ld%s%s", method, status,
                  a->error[0] ? " " : "", a->error);
}

//  A bad token, a revoked app: nothing works until the owner acts.
static bool
s_auth_error (const char *error)
{
    static const char *const fatal[] = {
        "invalid_auth",     "not_authed",    "token_revoked",          "token_expired",
        "account_inactive", "missing_scope", "not_allowed_token_type", NULL};
    for (const char *const *f = fatal; *f; f++)
        if (streq (error, *f))
            return true;
    return false;
}

static void
s_failed (chan_t *ch, const char *why, void (*next) (chan_t *))
{
    sl_t *sl = s_sl (ch);
    sl->failures++;
    chan_set_status (ch, "disconnected", why);
    chan_later (ch, chan_backoff_ms (ch, sl->failures), next);
}

static void
s_auth_test (chan_t *ch);
static void
s_open (chan_t *ch);
static void
s_post (chan_t *ch, const char *method, const char *auth, chan_http_fn *fn);

//  ---- Messages ----------------------------------------------------------------------

typedef struct {
    chan_t *ch;
    int *stored;
} sl_take_t;

static int
s_store (void *arg, const inbound_t *in)
{
    sl_take_t *t = (sl_take_t *) arg;
    return chan_ingest (t->ch, in, 1, -1, t->stored);
}

//  Stores the message an event_callback carries, if it is one for us.
//  0 once stored (or not for us), -1 if the store failed.
static int
s_event (chan_t *ch, const cJSON *envelope, int *stored)
{
    if (stored)
        *stored = 0;
    sl_take_t t = {ch, stored};
    return sl_parse_event (envelope, s_sl (ch)->bot_user, s_store, &t) < 0 ? -1 : 0;
}

//  ---- Socket Mode ---------------------------------------------------------------------

static void
s_ws_event (wsc_t *ws, wsc_event_t event, const char *data, size_t len, int code,
            void *arg);

static void
s_ack (sl_t *sl, wsc_t *ws, const char *envelope_id)
{
    char ack[200];
    int n = snprintf (ack, sizeof (ack), "{\"envelope_id\":\"%s\"}", envelope_id);
    if (n > 0 && (size_t) n < sizeof (ack) && wsc_send_text (ws, ack, (size_t) n) == 0)
        sl->acks++;
}

//  The frame's envelope_id, if it is one we can echo as it is.
static const char *
s_envelope_id (const cJSON *root)
{
    const char *eid =
        cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "envelope_id"));
    static const char ok[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.";
    if (!eid || !*eid || strlen (eid) > 128 || strspn (eid, ok) != strlen (eid))
        return NULL;
    return eid;
}

//  One frame from Slack on ws.
static void
s_ws_text (chan_t *ch, wsc_t *ws, const char *data, size_t len)
{
    sl_t *sl = s_sl (ch);
    cJSON *root = json_in_parse (data, len, CHAN_MAX_BODY, JSON_IN_OBJECT, NULL, NULL);
    const char *type =
        cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "type"));
    if (!type) {
        log_warn ("channel", "slack: a frame that is not Slack's skipped");
        cJSON_Delete (root);
        return;
    }
    if (streq (type, "hello")) {
        if (ws == sl->ws) {
            sl->ws_hello = true;
            sl->failures = 0;
            chan_set_status (ch, "connected", NULL);
            if (sl->old && !sl->old_closing) {
                log_info ("channel", "slack: the new socket is up; closing the old one");
                wsc_close (sl->old, 1000);
                sl->old_closing = true;
            }
        }
    }
    else if (streq (type, "disconnect")) {
        const char *reason =
            cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "reason"));
        reason = reason ? reason : "";
        log_info ("channel", "slack: disconnect (%s)", reason);
        if (streq (reason, "too_many_websockets")) {
            //  Ours are counted with leaked ones elsewhere: close it, wait.
            if (ws == sl->ws) {
                wsc_destroy (&sl->ws);
                s_failed (ch, "Slack: too_many_websockets (another client holds sockets)",
                          s_open);
            }
            else if (ws == sl->old)
                wsc_destroy (&sl->old);
        }
        else if (streq (reason, "link_disabled")) {
            wsc_destroy (ws == sl->ws ? &sl->ws : &sl->old);
            chan_set_status (ch, "error", "Slack: Socket Mode is disabled for this app");
            chan_later (ch, ch->cfg->retry_max_ms, s_auth_test);
        }
        else if (ws == sl->ws) {
            //  A warning on the new socket while the old one still closes:
            //  that one is done with; the next replaces this one.
            if (sl->old)
                wsc_destroy (&sl->old);
            //  Slack closes this one soon: the next first, then this.
            sl->old = sl->ws;
            sl->old_closing = false;
            sl->ws = NULL;
            sl->ws_hello = false;
            s_open (ch);
        }
    }
    else if (streq (type, "events_api")) {
        sl->envelopes++;
        const char *eid = s_envelope_id (root);
        //  Acknowledged once stored; not stored: Slack sends it again.
        if (eid
            && s_event (ch, cJSON_GetObjectItemCaseSensitive (root, "payload"), NULL)
                   == 0)
            s_ack (sl, ws, eid);
    }
    else {
        //  slash_commands, interactive: not ours, but acknowledged.
        const char *eid = s_envelope_id (root);
        if (eid)
            s_ack (sl, ws, eid);
    }
    cJSON_Delete (root);
}

static void
s_ws_event (wsc_t *ws, wsc_event_t event, const char *data, size_t len, int code,
            void *arg)
{
    chan_t *ch = (chan_t *) arg;
    sl_t *sl = s_sl (ch);
    if (event == WSC_TEXT)
        s_ws_text (ch, ws, data, len);
    else if (event == WSC_CLOSED) {
        if (ws == sl->old) {
            wsc_destroy (&sl->old);
            return;
        }
        if (ws != sl->ws)
            return;
        char why[240];
        snprintf (why, sizeof (why), "Slack socket closed (%d%s%.180s)", code,
                  len ? ": " : "", data ? data : "");
        wsc_destroy (&sl->ws);
        sl->ws_hello = false;
        if (sl->old && !sl->old_closing) {
            //  The old one still hears: use it while the next is made.
            sl->ws = sl->old;
            sl->old = NULL;
            sl->ws_hello = true;
        }
        s_failed (ch, why, s_open);
    }
}

static void
s_on_open (void *arg, long status, const char *body, size_t len, const char *error,
           const char *retry_after)
{
    chan_t *ch = (chan_t *) arg;
    sl_t *sl = s_sl (ch);
    sl->call = NULL;
    sl_answer_t a;
    s_answer (&a, "apps.connections.open", status, body, len, error);
    const char *url =
        cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (a.root, "url"));
    if (status == 200 && a.ok && url
        && (!strncmp (url, "wss://", 6) || !strncmp (url, "ws://", 5))) {
        int idle = ch->cfg->poll_timeout_s * 1000;
        wsc_opts_t opts = {.max_message = CHAN_MAX_BODY,
                           .connect_timeout_ms = 10000,
                           .ping_interval_ms = idle / 3,
                           .idle_timeout_ms = idle,
                           .user_agent = "clawgate"};
        wsc_t *ws = wsc_connect (ch->self->loop, url, &opts, s_ws_event, ch);
        cJSON_Delete (a.root);
        if (!ws) {
            s_failed (ch, "apps.connections.open: a URL we cannot use", s_open);
            return;
        }
        //  A socket that still hears stays until the new one says hello.
        if (sl->ws && sl->ws_hello && !sl->old) {
            sl->old = sl->ws;
            sl->old_closing = false;
        }
        else
            wsc_destroy (&sl->ws);
        sl->ws = ws;
        sl->ws_hello = false;
        return;
    }
    cJSON_Delete (a.root);
    if (status == 429)
        chan_later (ch, chan_retry_after_ms (retry_after, 1000), s_open);
    else if (s_auth_error (a.error)) {
        chan_set_status (ch, "error", a.why);
        chan_later (ch, ch->cfg->retry_max_ms, s_open);
    }
    else
        s_failed (ch, a.why, s_open);
}

static void
s_open (chan_t *ch)
{
    sl_t *sl = s_sl (ch);
    if (sl->call || !ch->running)
        return;
    s_post (ch, "apps.connections.open", sl->app_auth, s_on_open);
}

//  ---- Start ------------------------------------------------------------------------------

static void
s_on_me (void *arg, long status, const char *body, size_t len, const char *error,
         const char *retry_after)
{
    chan_t *ch = (chan_t *) arg;
    sl_t *sl = s_sl (ch);
    sl->call = NULL;
    sl_answer_t a;
    s_answer (&a, "auth.test", status, body, len, error);
    const char *user =
        cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (a.root, "user_id"));
    if (status == 200 && a.ok && user) {
        const char *bot =
            cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (a.root, "bot_id"));
        const char *team =
            cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (a.root, "team"));
        snprintf (sl->bot_user, sizeof (sl->bot_user), "%s", user);
        snprintf (sl->bot_id, sizeof (sl->bot_id), "%s", bot ? bot : "");
        snprintf (sl->team, sizeof (sl->team), "%s", team ? team : "");
        sl->have_me = true;
        cJSON_Delete (a.root);
        log_info ("channel", "slack: bot %s in %s, %s", sl->bot_user, sl->team,
                  s_socket_mode (ch) ? "Socket Mode" : "Events API over HTTP");
        if (s_socket_mode (ch))
            s_open (ch);
        else {
            sl->failures = 0;
            chan_set_status (ch, "connected", NULL);
        }
        return;
    }
    cJSON_Delete (a.root);
    if (status == 429)
        chan_later (ch, chan_retry_after_ms (retry_after, 1000), s_auth_test);
    else if (s_auth_error (a.error)) {
        chan_set_status (ch, "error", a.why);
        chan_later (ch, ch->cfg->retry_max_ms, s_auth_test);
    }
    else
        s_failed (ch, a.why, s_auth_test);
}

//  POSTs method (JSON body, or {}) with auth; the call in sl->call.
static void
s_post (chan_t *ch, const char *method, const char *auth, chan_http_fn *fn)
{
    sl_t *sl = s_sl (ch);
    char url[1200];
    snprintf (url, sizeof (url), "%s/%s", sl->api, method);
    const char *headers[] = {auth, NULL};
    sl->call = chan_http_post (ch->self, url, "{}", headers, SL_CALL_MS, fn, ch);
    if (!sl->call)
        fn (ch, 0, "", 0, "the call could not start", NULL);
}

static void
s_auth_test (chan_t *ch)
{
    sl_t *sl = s_sl (ch);
    if (!sl->call && ch->running)
        s_post (ch, "auth.test", sl->bot_auth, s_on_me);
}

static void
s_start (chan_t *ch)
{
    sl_t *sl = s_sl (ch);
    if (!sl) {
        sl = (sl_t *) calloc (1, sizeof (sl_t));
        if (!sl) {
            chan_set_status (ch, "error", "out of memory");
            return;
        }
        ch->transport = sl;
        sl->ch = ch;
    }
    const char *base;
    int blen = chan_base_url (ch, &base);
    snprintf (sl->api, sizeof (sl->api), "%.*s", blen, base);
    snprintf (sl->bot_auth, sizeof (sl->bot_auth), "Authorization: Bearer %s",
              ch->cfg->bot_token ? ch->cfg->bot_token : "");
    snprintf (sl->app_auth, sizeof (sl->app_auth), "Authorization: Bearer %s",
              ch->cfg->app_token ? ch->cfg->app_token : "");
    s_auth_test (ch);
}

static void
s_stop (chan_t *ch)
{
    sl_t *sl = s_sl (ch);
    if (!sl)
        return;
    chan_http_cancel (ch->self, &sl->call);
    wsc_destroy (&sl->ws);
    wsc_destroy (&sl->old);
    sl->ws_hello = false;
}

static void
s_fini (chan_t *ch)
{
    free (ch->transport);
    ch->transport = NULL;
}

//  ---- Events API over HTTP -------------------------------------------------------------

static int
s_webhook (chan_t *ch, const webhook_in_t *in, webhook_out_t *out)
{
    if (s_socket_mode (ch) || in->get) {
        snprintf (out->err, sizeof (out->err),
                  s_socket_mode (ch) ? "The Slack channel uses Socket Mode; it takes no "
                                       "webhook"
                                     : "Slack posts its events");
        return 404;
    }
    //  The signature first: nothing of the body is read before.
    const char *ts = in->timestamp;
    const char *sig = in->signature;
    char *end = NULL;
    long long t = ts ? strtoll (ts, &end, 10) : 0;
    long long now = (long long) (chan_now () / 1000);
    if (!ts || !*ts || *end || t < now - SL_WINDOW_S || t > now + SL_WINDOW_S) {
        log_warn ("channel",
                  "slack: a request with a stale or missing timestamp refused");
        snprintf (out->err, sizeof (out->err),
                  "X-Slack-Request-Timestamp missing or more than 5 minutes off");
        return 401;
    }
    char prefix[48];
    int plen = snprintf (prefix, sizeof (prefix), "v0:%lld:", t);
    if (!sig || strncmp (sig, "v0=", 3)
        || !chan_signature_ok (ch->cfg->signing_secret, prefix, (size_t) plen, in->body,
                               in->len, sig + 3)) {
        log_warn ("channel",
                  "slack: a request with a wrong or missing signature refused");
        snprintf (out->err, sizeof (out->err), "Wrong or missing X-Slack-Signature");
        return 401;
    }
    cJSON *root =
        json_in_parse (in->body, in->len, CHAN_MAX_BODY, JSON_IN_OBJECT, NULL, NULL);
    const char *type =
        cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "type"));
    int status = 200;
    if (!type) {
        snprintf (out->err, sizeof (out->err), "Not a Slack event");
        status = 400;
    }
    else if (streq (type, "url_verification")) {
        const char *c =
            cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "challenge"));
        if (c && *c && strlen (c) < sizeof (out->challenge))
            snprintf (out->challenge, sizeof (out->challenge), "%s", c);
        else {
            snprintf (out->err, sizeof (out->err),
                      "url_verification without a challenge");
            status = 400;
        }
    }
    else if (streq (type, "event_callback") && s_event (ch, root, &out->stored)) {
        //  Not stored: not answered 200 either; Slack sends it again.
        snprintf (out->err, sizeof (out->err), "The channel store failed");
        status = 503;
    }
    cJSON_Delete (root);
    return status;
}

//  ---- Sending ----------------------------------------------------------------------------

static void
s_on_sent (void *arg, long status, const char *body, size_t len, const char *error,
           const char *retry_after)
{
    job_t *job = (job_t *) arg;
    chan_t *ch = job->ch;
    job->platform_data = NULL;
    sl_answer_t a;
    s_answer (&a, "chat.postMessage", status, body, len, error);
    cJSON_Delete (a.root);
    static const char *const transient[] = {"ratelimited",     "fatal_error",
                                            "internal_error",  "service_unavailable",
                                            "request_timeout", NULL};
    bool again = status == 0 || status >= 500 || status == 429;
    for (const char *const *t = transient; *t && !again; t++)
        again = streq (a.error, *t);
    if (status == 200 && a.ok)
        chan_sent (ch, job, SEND_OK, 0, NULL);
    else if (again)
        chan_sent (ch, job, SEND_RETRY, chan_retry_after_ms (retry_after, 0), a.why);
    else
        chan_sent (ch, job, s_auth_error (a.error) ? SEND_REFUSED : SEND_PERMANENT, 0,
                   a.why);
}

static int
s_send (chan_t *ch, job_t *job)
{
    sl_t *sl = s_sl (ch);
    cJSON *b = cJSON_CreateObject ();
    cJSON_AddStringToObject (b, "channel", job->chat_id);
    cJSON_AddStringToObject (b, "text", chan_part (job));
    if (*job->reply_to)
        cJSON_AddStringToObject (b, "thread_ts", job->reply_to);
    cJSON_AddBoolToObject (b, "unfurl_links", false);
    char *body = cJSON_PrintUnformatted (b);
    cJSON_Delete (b);
    char url[1200];
    snprintf (url, sizeof (url), "%s/chat.postMessage", sl->api);
    const char *headers[] = {sl->bot_auth, NULL};
    job->platform_data =
        body ? chan_http_post (ch->self, url, body, headers, SL_CALL_MS, s_on_sent, job)
             : NULL;
    free (body);
    return job->platform_data ? 0 : -1;
}

static void
s_status (chan_t *ch, mp_writer_t *w)
{
    sl_t *sl = s_sl (ch);
    if (!sl || !sl->have_me)
        return;
    mp_key (w, MK_bot);
    mp_map_begin (w);
    mp_kv_str (w, MK_id, sl->bot_user);
    mp_kv_str (w, "botId", sl->bot_id);
    mp_kv_str (w, "team", sl->team);
    mp_map_end (w);
    if (s_socket_mode (ch))
        mp_kv_int (w, "sockets", (sl->ws ? 1 : 0) + (sl->old ? 1 : 0));
}

const platform_t platform_slack = {.id = "slack",
                                   .name = "Slack",
                                   .default_base_url = SL_DEFAULT_BASE,
                                   .limit = 4000,
                                   .unit = SPLIT_CODEPOINTS,
                                   .default_mode = "socket",
                                   .people = true,
                                   .start = s_start,
                                   .stop = s_stop,
                                   .fini = s_fini,
                                   .webhook = s_webhook,
                                   .send = s_send,
                                   .status = s_status};
