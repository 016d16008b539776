/*  =========================================================================
    cg_slackstandin - stand-in for Slack (Web API, Socket Mode and the
    Events API), for tests

    Web API, POST /api/<method> with a JSON or form body (a query string
    works too), token as "Authorization: Bearer ..." or a token parameter.
    Answers are HTTP 200 with {"ok":true,...} or {"ok":false,"error":"..."}
    as Slack's are; no token is not_authed, a wrong one invalid_auth, the
    other kind of token not_allowed_token_type, an unknown method
    unknown_method (404).
        auth.test               (bot token) {ok,url,team,user,team_id,
                                user_id,bot_id}
        apps.connections.open   (app token) {ok,url:"ws://127.0.0.1:P/link/
                                ?ticket=T"}; each ticket opens one socket
        chat.postMessage        (bot token) {channel, text, thread_ts?,
                                reply_broadcast?} -> {ok,channel,ts,message};
                                no channel: channel_not_found, no text:
                                no_text, text over --max-text: msg_too_long
        chat.update             {channel, ts, text} -> {ok,channel,ts,text}
        reactions.add, reactions.remove, assistant.threads.setStatus: ok
    Fault rules (POST /control/fault with a "method") make the next calls
    answer ok:false with any error code (channel_not_found, not_in_channel,
    is_archived, invalid_auth, ...), "ratelimited" (HTTP 429 with
    Retry-After), "500"/"502"/"503" (that status, an HTML body), "hang"
    (no answer for 60 s) or "drop" (the connection cut, no answer).

    Socket Mode: GET /link/?ticket=T upgrades to a WebSocket (see
    socket.c): hello, then events_api envelopes that the client acks with
    {"envelope_id":"..."}; unacked ones come again after --ack-ms with
    retry_attempt+1 (3 times); --max-sockets live sockets at most (then
    too_many_websockets); a WebSocket ping every --ping-ms.

    Control API for tests (JSON, no token):
        POST /control/event     {kind: "dm"|"message"|"mention"|"bot"|"edit"|
                                "raw"|"url_verification", channel?, user?,
                                text?, thread_ts?, ts?, channel_type?,
                                both? (mention: an app_mention and then a
                                message event, same ts), bot_id?, username?
                                (bot), orig_ts? (edit: the message edited,
                                default the channel's last), event? (raw),
                                challenge? (url_verification),
                                via: "socket" (default) | "http", socket?
                                (an id: deliver there only), target? (push
                                URL, default --target or /control/target),
                                forge?, unsigned?, stale?, no_retry?,
                                retries? (default 3), wait? (http: answer
                                when the push is over)}
                                -> {event_id, event_ids, ts, envelope_id?
                                envelope_ids?, push_id?, push_ids?, push?}
                                url_verification -> {status, body} of the
                                target, at once (no retries)
        POST /control/resend    {event_id, via?, socket?, target?, retry_num?
                                forge?, stale?, ...}: the same payload again
                                (a fresh envelope, whose retry_attempt is
                                retry_num when given; an HTTP push whose first
                                request already carries X-Slack-Retry-Num:
                                retry_num and X-Slack-Retry-Reason:
                                http_timeout when retry_num is given)
        POST /control/fault     Web API: {method, kind, count?, retry_after?,
                                channel?}.  Sockets: {kind: "warning"|
                                "refresh_requested"|"link_disabled"|
                                "too_many_websockets"|"deaf"|"drop"|"close",
                                socket?: "all" (default)|"newest"|"oldest"|
                                id, grace_ms?}; {kind:"deaf_next", count?}
                                makes the next sockets deaf from their hello
                                -> {faults} or {sockets: hit}
        POST /control/target    {url}: the default push URL
        GET  /control/sent[?channel=C][&thread_ts=T]  {"messages":[{seq,
                                channel, text, thread_ts, ts, at_ms,
                                reply_broadcast}], "updates":[...]}
        GET  /control/calls     {methods: {name: n}, sockets_open,
                                sockets_opened, sockets_closed,
                                rejected_sockets, connections_open, acks,
                                delivered, redeliveries, dropped, pending,
                                pings, pongs, pushes, pushes_ok,
                                pushes_failed, sockets: [...], envelopes:
                                [{envelope_id, event_id, sends, socket}],
                                dropped_envelopes: [...]}
        GET  /control/pushes    {"pushes":[record...]} (see push.c)
        GET  /control/events    {"events":[{event_id, payload}]}
        POST /control/reset     clears faults, the sent log, counters,
                                unacked envelopes and unused tickets (not
                                the sockets or the push records)

    usage: cg_slackstandin [--port N] [--bot-token T] [--app-token T]
        [--signing-secret S] [--bot-user U] [--bot-id B] [--team T]
        [--state FILE] [--max-text N] [--ack-ms N] [--max-sockets N]
        [--disconnect-grace-ms N] [--ping-ms N] [--http-timeout-ms N]
        [--retry-delays-ms A,B,C] [--target URL] [--seed N]
    Prints "listening on 127.0.0.1:PORT" and serves until SIGINT or SIGTERM.
    =========================================================================
*/
#include "slstandin.h"
#include "common.h"

#include <curl/curl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define SL_APP_ID "A0001"
#define SL_VERIFICATION_TOKEN "slack-verification-token"

long long
sl_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

long long
sl_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  ---- Responses ------------------------------------------------------------------

//  Sends body with status; extra is more header lines ("K: V\r\n"), or "".
static int
s_send (struct mg_connection *conn, int status, const char *type, const char *body,
        const char *extra)
{
    size_t len = strlen (body);
    mg_printf (conn,
               "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
               "Connection: close\r\n\r\n",
               status, mg_get_response_code_text (conn, status), type, len, extra);
    mg_write (conn, body, len);
    return status;
}

//  Sends root (deleted here) as JSON.
static int
s_send_root (struct mg_connection *conn, int status, cJSON *root)
{
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    status =
        s_send (conn, status, "application/json; charset=utf-8", text ? text : "{}", "");
    cJSON_free (text);
    return status;
}

//  A Web API error: HTTP 200 {"ok":false,"error":error}.
static int
s_api_error (struct mg_connection *conn, int status, const char *error)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddBoolToObject (root, "ok", false);
    cJSON_AddStringToObject (root, "error", error);
    return s_send_root (conn, status, root);
}

static int
s_control_error (struct mg_connection *conn, int status, const char *error)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "error", error);
    return s_send_root (conn, status, root);
}

//  ---- Parameters -----------------------------------------------------------------

//  The request's parameters (query, then a form or JSON body) as one
//  object.  Caller owns return value; NULL for a bad body.
static cJSON *
s_params (struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    cJSON *params = cJSON_CreateObject ();
    if (ri->query_string)
        standin_add_form (params, ri->query_string, strlen (ri->query_string));
    char *data = NULL;
    size_t have = 0;
    if (standin_read_body (conn, SL_MAX_BODY, &data, &have) != 0) {
        cJSON_Delete (params);
        return NULL;
    }
    const char *p = data;
    while (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t')
        p++;
    if (*p == '{') {
        cJSON *body = cJSON_ParseWithLength (data, have);
        if (!cJSON_IsObject (body)) {
            cJSON_Delete (body);
            cJSON_Delete (params);
            params = NULL;
        }
        else {
            cJSON *item;
            while ((item = body->child) != NULL) {
                cJSON_DetachItemViaPointer (body, item);
                cJSON_DeleteItemFromObject (params, item->string);
                cJSON_AddItemToObject (params, item->string, item);
            }
            cJSON_Delete (body);
        }
    }
    else if (have)
        standin_add_form (params, data, have);
    free (data);
    return params;
}

//  A parameter as text (numbers as integers), or fallback.
static const char *
s_str (cJSON *params, const char *name, const char *fallback)
{
    cJSON *item = cJSON_GetObjectItem (params, name);
    return cJSON_IsString (item) ? item->valuestring : fallback;
}

static long long
s_num (cJSON *params, const char *name, long long fallback)
{
    cJSON *item = cJSON_GetObjectItem (params, name);
    if (cJSON_IsNumber (item))
        return (long long) item->valuedouble;
    if (cJSON_IsString (item) && *item->valuestring)
        return strtoll (item->valuestring, NULL, 10);
    return fallback;
}

static bool
s_flag (cJSON *params, const char *name)
{
    cJSON *item = cJSON_GetObjectItem (params, name);
    return cJSON_IsTrue (item)
           || (cJSON_IsString (item)
               && (strcmp (item->valuestring, "true") == 0
                   || strcmp (item->valuestring, "1") == 0))
           || (cJSON_IsNumber (item) && item->valuedouble != 0);
}

//  ---- Web API --------------------------------------------------------------------

//  The call's token: the Bearer header, else the token parameter, or "".
static const char *
s_token (struct mg_connection *conn, cJSON *params)
{
    const char *auth = mg_get_header (conn, "Authorization");
    if (auth && strncasecmp (auth, "Bearer ", 7) == 0)
        return auth + 7;
    return s_str (params, "token", "");
}

//  Checks the token against the kind wanted.  Returns the error sent, or 0.
static int
s_check_token (sl_t *self, struct mg_connection *conn, cJSON *params, bool app)
{
    const char *token = s_token (conn, params);
    const char *want = app ? self->app_token : self->bot_token;
    const char *other = app ? self->bot_token : self->app_token;
    if (!*token)
        return s_api_error (conn, 200, "not_authed");
    if (strcmp (token, want) == 0)
        return 0;
    if (strcmp (token, other) == 0
        || strncmp (token, app ? "xox" : "xapp-", app ? 3 : 5) == 0)
        return s_api_error (conn, 200, "not_allowed_token_type");
    return s_api_error (conn, 200, "invalid_auth");
}

//  Takes the next fault rule for method (and channel).  Lock held.
static bool
s_take_fault (sl_t *self, const char *method, const char *channel, sl_fault_t *fault)
{
    for (int i = 0; i < self->fault_count; i++) {
        sl_fault_t *f = &self->faults[i];
        if (strcmp (f->method, "*") != 0 && strcmp (f->method, method) != 0)
            continue;
        if (f->channel[0] && strcmp (f->channel, channel) != 0)
            continue;
        *fault = *f;
        if (--f->count <= 0) {
            memmove (f, f + 1,
                     (size_t) (self->fault_count - i - 1) * sizeof (sl_fault_t));
            self->fault_count--;
        }
        return true;
    }
    return false;
}

//  Plays a fault.  Returns the status sent.
static int
s_play_fault (sl_t *self, struct mg_connection *conn, sl_fault_t *f)
{
    if (strcmp (f->kind, "ratelimited") == 0 || strcmp (f->kind, "429") == 0) {
        char extra[64];
        snprintf (extra, sizeof (extra), "Retry-After: %d\r\n", f->retry_after);
        return s_send (conn, 429, "application/json; charset=utf-8",
                       "{\"ok\":false,\"error\":\"ratelimited\"}", extra);
    }
    if (f->kind[0] == '5' && strlen (f->kind) == 3) {
        int status = atoi (f->kind);
        return s_send (conn, status, "text/html",
                       "<html><body><h1>Slack is having trouble</h1></body></html>", "");
    }
    if (strcmp (f->kind, "hang") == 0 || strcmp (f->kind, "drop") == 0) {
        int fd = standin_socket (conn, self->port);
        if (strcmp (f->kind, "hang") == 0) {
            for (int i = 0; i < 240 && !atomic_load (&self->stopping); i++)
                usleep (250000);
        }
        if (fd >= 0)
            shutdown (fd, SHUT_RDWR);
        return 500;
    }
    return s_api_error (conn, 200, f->kind);
}

static cJSON *
s_bot_message (sl_t *self, const char *text, const char *ts, const char *thread_ts)
{
    cJSON *msg = cJSON_CreateObject ();
    cJSON_AddStringToObject (msg, "type", "message");
    cJSON_AddStringToObject (msg, "text", text);
    cJSON_AddStringToObject (msg, "user", self->bot_user);
    cJSON_AddStringToObject (msg, "bot_id", self->bot_id);
    cJSON_AddStringToObject (msg, "app_id", SL_APP_ID);
    cJSON_AddStringToObject (msg, "team", self->team);
    cJSON_AddStringToObject (msg, "ts", ts);
    if (thread_ts && *thread_ts)
        cJSON_AddStringToObject (msg, "thread_ts", thread_ts);
    return msg;
}

static int
s_post_message (sl_t *self, struct mg_connection *conn, cJSON *params)
{
    const char *channel = s_str (params, "channel", "");
    const char *text = s_str (params, "text", NULL);
    char num[32];
    const char *thread_ts = s_str (params, "thread_ts", NULL);
    if (!thread_ts && cJSON_IsNumber (cJSON_GetObjectItem (params, "thread_ts"))) {
        snprintf (num, sizeof (num), "%.6f",
                  cJSON_GetNumberValue (cJSON_GetObjectItem (params, "thread_ts")));
        thread_ts = num;
    }
    if (!*channel)
        return s_api_error (conn, 200, "channel_not_found");
    if (!text || !*text) {
        if (!cJSON_GetObjectItem (params, "blocks")
            && !cJSON_GetObjectItem (params, "attachments"))
            return s_api_error (conn, 200, "no_text");
        text = text ? text : "";
    }
    if ((long) strlen (text) > self->max_text)
        return s_api_error (conn, 200, "msg_too_long");
    char ts[32];
    pthread_mutex_lock (&self->lock);
    store_ts (self, ts);
    cJSON *entry = cJSON_CreateObject ();
    cJSON_AddNumberToObject (entry, "seq", cJSON_GetArraySize (self->sent) + 1);
    cJSON_AddStringToObject (entry, "channel", channel);
    cJSON_AddStringToObject (entry, "text", text);
    if (thread_ts && *thread_ts)
        cJSON_AddStringToObject (entry, "thread_ts", thread_ts);
    else
        cJSON_AddNullToObject (entry, "thread_ts");
    cJSON_AddStringToObject (entry, "ts", ts);
    cJSON_AddNumberToObject (entry, "at_ms", (double) sl_wall_ms ());
    cJSON_AddBoolToObject (entry, "reply_broadcast", s_flag (params, "reply_broadcast"));
    cJSON_AddItemToArray (self->sent, entry);
    store_save (self);
    pthread_mutex_unlock (&self->lock);
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddBoolToObject (root, "ok", true);
    cJSON_AddStringToObject (root, "channel", channel);
    cJSON_AddStringToObject (root, "ts", ts);
    cJSON_AddItemToObject (root, "message", s_bot_message (self, text, ts, thread_ts));
    return s_send_root (conn, 200, root);
}

static int
s_update (sl_t *self, struct mg_connection *conn, cJSON *params)
{
    const char *channel = s_str (params, "channel", "");
    const char *ts = s_str (params, "ts", "");
    const char *text = s_str (params, "text", "");
    if (!*channel)
        return s_api_error (conn, 200, "channel_not_found");
    if (!*ts)
        return s_api_error (conn, 200, "message_not_found");
    if ((long) strlen (text) > self->max_text)
        return s_api_error (conn, 200, "msg_too_long");
    pthread_mutex_lock (&self->lock);
    cJSON *entry = cJSON_CreateObject ();
    cJSON_AddStringToObject (entry, "channel", channel);
    cJSON_AddStringToObject (entry, "ts", ts);
    cJSON_AddStringToObject (entry, "text", text);
    cJSON_AddNumberToObject (entry, "at_ms", (double) sl_wall_ms ());
    cJSON_AddItemToArray (self->updates, entry);
    store_save (self);
    pthread_mutex_unlock (&self->lock);
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddBoolToObject (root, "ok", true);
    cJSON_AddStringToObject (root, "channel", channel);
    cJSON_AddStringToObject (root, "ts", ts);
    cJSON_AddStringToObject (root, "text", text);
    cJSON_AddItemToObject (root, "message", s_bot_message (self, text, ts, NULL));
    return s_send_root (conn, 200, root);
}

static int
s_api (sl_t *self, struct mg_connection *conn, const char *method, cJSON *params)
{
    static const char *known[] = {"auth.test",
                                  "apps.connections.open",
                                  "chat.postMessage",
                                  "chat.update",
                                  "reactions.add",
                                  "reactions.remove",
                                  "assistant.threads.setStatus",
                                  NULL};
    int k = 0;
    while (known[k] && strcmp (known[k], method) != 0)
        k++;
    if (!known[k])
        return s_api_error (conn, 404, "unknown_method");
    bool app = strcmp (method, "apps.connections.open") == 0;
    sl_fault_t fault;
    pthread_mutex_lock (&self->lock);
    store_count (self->methods, method, 1);
    if (app)
        store_count (self->counters, "connections_open", 1);
    bool faulted = s_take_fault (self, method, s_str (params, "channel", ""), &fault);
    pthread_mutex_unlock (&self->lock);
    if (faulted)
        return s_play_fault (self, conn, &fault);
    int rc = s_check_token (self, conn, params, app);
    if (rc)
        return rc;
    if (strcmp (method, "auth.test") == 0) {
        cJSON *root = cJSON_CreateObject ();
        cJSON_AddBoolToObject (root, "ok", true);
        cJSON_AddStringToObject (root, "url", "https://clawgate-test.slack.com/");
        cJSON_AddStringToObject (root, "team", "Clawgate Test");
        cJSON_AddStringToObject (root, "user", "clawgate");
        cJSON_AddStringToObject (root, "team_id", self->team);
        cJSON_AddStringToObject (root, "user_id", self->bot_user);
        cJSON_AddStringToObject (root, "bot_id", self->bot_id);
        cJSON_AddBoolToObject (root, "is_enterprise_install", false);
        return s_send_root (conn, 200, root);
    }
    if (app) {
        char ticket[33], url[128];
        store_random_text (ticket, 32);
        pthread_mutex_lock (&self->lock);
        cJSON_AddItemToArray (self->tickets, cJSON_CreateString (ticket));
        pthread_mutex_unlock (&self->lock);
        snprintf (url, sizeof (url), "ws://127.0.0.1:%d/link/?ticket=%s", self->port,
                  ticket);
        cJSON *root = cJSON_CreateObject ();
        cJSON_AddBoolToObject (root, "ok", true);
        cJSON_AddStringToObject (root, "url", url);
        return s_send_root (conn, 200, root);
    }
    if (strcmp (method, "chat.postMessage") == 0)
        return s_post_message (self, conn, params);
    if (strcmp (method, "chat.update") == 0)
        return s_update (self, conn, params);
    return s_send (conn, 200, "application/json; charset=utf-8", "{\"ok\":true}", "");
}

//  ---- Events ---------------------------------------------------------------------

//  The event_callback envelope around event (taken).  Caller owns return
//  value.  Lock held.
static cJSON *
s_callback (sl_t *self, cJSON *event, const char *event_id)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "token", SL_VERIFICATION_TOKEN);
    cJSON_AddStringToObject (root, "team_id", self->team);
    cJSON_AddStringToObject (root, "context_team_id", self->team);
    cJSON_AddStringToObject (root, "api_app_id", SL_APP_ID);
    cJSON_AddItemToObject (root, "event", event);
    cJSON_AddStringToObject (root, "type", "event_callback");
    cJSON_AddStringToObject (root, "event_id", event_id);
    cJSON_AddNumberToObject (root, "event_time", (double) time (NULL));
    cJSON *list = cJSON_AddArrayToObject (root, "authorizations");
    cJSON *auth = cJSON_CreateObject ();
    cJSON_AddNullToObject (auth, "enterprise_id");
    cJSON_AddStringToObject (auth, "team_id", self->team);
    cJSON_AddStringToObject (auth, "user_id", self->bot_user);
    cJSON_AddBoolToObject (auth, "is_bot", true);
    cJSON_AddBoolToObject (auth, "is_enterprise_install", false);
    cJSON_AddItemToArray (list, auth);
    cJSON_AddBoolToObject (root, "is_ext_shared_channel", false);
    return root;
}

//  The ts of the last event made for channel, or NULL.  Lock held.
static const char *
s_last_ts (sl_t *self, const char *channel, char *buf, size_t cap)
{
    const char *found = NULL;
    cJSON *entry;
    cJSON_ArrayForEach (entry, self->events)
    {
        cJSON *payload =
            cJSON_Parse (cJSON_GetStringValue (cJSON_GetObjectItem (entry, "payload")));
        cJSON *event = cJSON_GetObjectItem (payload, "event");
        const char *c = cJSON_GetStringValue (cJSON_GetObjectItem (event, "channel"));
        const char *ts = cJSON_GetStringValue (cJSON_GetObjectItem (event, "ts"));
        if (c && ts && strcmp (c, channel) == 0
            && !cJSON_GetObjectItem (event, "subtype")) {
            snprintf (buf, cap, "%s", ts);
            found = buf;
        }
        cJSON_Delete (payload);
    }
    return found;
}

//  Builds the events of a /control/event body (one, or two for a mention
//  with both) into events.  Returns NULL or the error text.  Lock held.
static const char *
s_build_events (sl_t *self, cJSON *body, cJSON *events, char ts_out[32])
{
    const char *kind = s_str (body, "kind", "message");
    bool dm = strcmp (kind, "dm") == 0;
    const char *channel = s_str (body, "channel", dm ? "D0001" : "C0001");
    const char *user = s_str (body, "user", "U0001");
    const char *text = s_str (body, "text", "hello");
    const char *thread_ts = s_str (body, "thread_ts", NULL);
    const char *type = s_str (body, "channel_type",
                              dm                  ? "im"
                              : channel[0] == 'G' ? "group"
                                                  : "channel");
    char ts[32];
    const char *given = s_str (body, "ts", NULL);
    if (given)
        snprintf (ts, sizeof (ts), "%s", given);
    else
        store_ts (self, ts);
    snprintf (ts_out, 32, "%s", ts);
    char client_id[40];
    store_uuid (client_id);

    if (strcmp (kind, "raw") == 0) {
        cJSON *event = cJSON_GetObjectItem (body, "event");
        if (!cJSON_IsObject (event))
            return "raw needs an event object";
        cJSON_AddItemToArray (events, cJSON_Duplicate (event, true));
        return NULL;
    }
    if (strcmp (kind, "mention") == 0) {
        size_t cap = strlen (text) + 64;
        char *full = malloc (cap);
        snprintf (full, cap, "<@%s> %s", self->bot_user, text);
        cJSON *event = cJSON_CreateObject ();
        cJSON_AddStringToObject (event, "type", "app_mention");
        cJSON_AddStringToObject (event, "user", user);
        cJSON_AddStringToObject (event, "text", full);
        cJSON_AddStringToObject (event, "ts", ts);
        cJSON_AddStringToObject (event, "channel", channel);
        cJSON_AddStringToObject (event, "event_ts", ts);
        if (thread_ts)
            cJSON_AddStringToObject (event, "thread_ts", thread_ts);
        cJSON_AddStringToObject (event, "client_msg_id", client_id);
        cJSON_AddItemToArray (events, event);
        if (s_flag (body, "both")) {
            event = cJSON_CreateObject ();
            cJSON_AddStringToObject (event, "type", "message");
            cJSON_AddStringToObject (event, "channel", channel);
            cJSON_AddStringToObject (event, "user", user);
            cJSON_AddStringToObject (event, "text", full);
            cJSON_AddStringToObject (event, "ts", ts);
            cJSON_AddStringToObject (event, "event_ts", ts);
            cJSON_AddStringToObject (event, "channel_type", type);
            if (thread_ts)
                cJSON_AddStringToObject (event, "thread_ts", thread_ts);
            cJSON_AddStringToObject (event, "client_msg_id", client_id);
            cJSON_AddItemToArray (events, event);
        }
        free (full);
        return NULL;
    }
    cJSON *event = cJSON_CreateObject ();
    cJSON_AddStringToObject (event, "type", "message");
    cJSON_AddStringToObject (event, "channel", channel);
    if (strcmp (kind, "bot") == 0) {
        cJSON_AddStringToObject (event, "subtype", "bot_message");
        cJSON_AddStringToObject (event, "bot_id", s_str (body, "bot_id", "B0OTHER"));
        cJSON_AddStringToObject (event, "username", s_str (body, "username", "otherbot"));
        if (s_str (body, "user", NULL))
            cJSON_AddStringToObject (event, "user", user);
        cJSON_AddStringToObject (event, "text", text);
    }
    else if (strcmp (kind, "edit") == 0) {
        char buf[32];
        const char *orig = s_str (body, "orig_ts", NULL);
        if (!orig)
            orig = s_last_ts (self, channel, buf, sizeof (buf));
        if (!orig)
            orig = ts;
        cJSON_AddStringToObject (event, "subtype", "message_changed");
        cJSON_AddBoolToObject (event, "hidden", true);
        cJSON *msg = cJSON_AddObjectToObject (event, "message");
        cJSON_AddStringToObject (msg, "type", "message");
        cJSON_AddStringToObject (msg, "user", user);
        cJSON_AddStringToObject (msg, "text", text);
        cJSON_AddStringToObject (msg, "ts", orig);
        if (thread_ts)
            cJSON_AddStringToObject (msg, "thread_ts", thread_ts);
        cJSON *edited = cJSON_AddObjectToObject (msg, "edited");
        cJSON_AddStringToObject (edited, "user", user);
        cJSON_AddStringToObject (edited, "ts", ts);
        cJSON *prev = cJSON_AddObjectToObject (event, "previous_message");
        cJSON_AddStringToObject (prev, "type", "message");
        cJSON_AddStringToObject (prev, "user", user);
        cJSON_AddStringToObject (prev, "text", s_str (body, "previous_text", ""));
        cJSON_AddStringToObject (prev, "ts", orig);
    }
    else if (strcmp (kind, "dm") == 0 || strcmp (kind, "message") == 0) {
        cJSON_AddStringToObject (event, "user", user);
        cJSON_AddStringToObject (event, "text", text);
        cJSON_AddStringToObject (event, "client_msg_id", client_id);
    }
    else {
        cJSON_Delete (event);
        return "unknown kind";
    }
    cJSON_AddStringToObject (event, "ts", ts);
    cJSON_AddStringToObject (event, "event_ts", ts);
    cJSON_AddStringToObject (event, "channel_type", type);
    if (thread_ts && strcmp (kind, "edit") != 0)
        cJSON_AddStringToObject (event, "thread_ts", thread_ts);
    cJSON_AddItemToArray (events, event);
    return NULL;
}

//  The push options of a control body.
static push_opts_t
s_push_opts (cJSON *body)
{
    push_opts_t opts;
    opts.forge = s_flag (body, "forge");
    opts.unsigned_ = s_flag (body, "unsigned");
    opts.stale = s_flag (body, "stale");
    opts.retries = s_flag (body, "no_retry") ? 0 : (int) s_num (body, "retries", 3);
    opts.retry_base = (int) s_num (body, "retry_num", 0);
    return opts;
}

//  Waits (lock held) until every push in ids is over, at most 60 s.
static void
s_wait_pushes (sl_t *self, cJSON *ids)
{
    long long deadline = sl_mono_ms () + 60000;
    while (sl_mono_ms () < deadline && !atomic_load (&self->stopping)) {
        bool running = false;
        cJSON *id;
        cJSON_ArrayForEach (id, ids)
        {
            cJSON *record = cJSON_GetArrayItem (self->pushes, (int) id->valuedouble - 1);
            const char *outcome =
                cJSON_GetStringValue (cJSON_GetObjectItem (record, "outcome"));
            running = running || (outcome && strcmp (outcome, "running") == 0);
        }
        if (!running)
            return;
        struct timespec until;
        clock_gettime (CLOCK_MONOTONIC, &until);
        until.tv_nsec += 50000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait (&self->changed, &self->lock, &until);
    }
}

//  Sends each payload (text) of list on its way and fills root with the
//  ids.  Returns NULL or the error text.  Lock held.
static const char *
s_dispatch (sl_t *self, cJSON *body, cJSON *payloads, cJSON *root)
{
    bool http = strcmp (s_str (body, "via", "socket"), "http") == 0;
    const char *url = s_str (body, "target", self->target);
    if (http && !url)
        return "no target: give one, or --target, or POST /control/target";
    push_opts_t opts = s_push_opts (body);
    cJSON *envelope_ids = cJSON_CreateArray ();
    cJSON *push_ids = cJSON_CreateArray ();
    cJSON_AddItemToObject (root, http ? "push_ids" : "envelope_ids",
                           http ? push_ids : envelope_ids);
    cJSON *payload;
    cJSON_ArrayForEach (payload, payloads)
    {
        cJSON *parsed = cJSON_Parse (payload->valuestring);
        const char *event_id =
            cJSON_GetStringValue (cJSON_GetObjectItem (parsed, "event_id"));
        if (http) {
            int id = push_start (self, url, event_id ? event_id : "",
                                 payload->valuestring, &opts);
            cJSON_AddItemToArray (push_ids, cJSON_CreateNumber (id));
        }
        else {
            char envelope[40];
            store_enqueue (self, event_id ? event_id : "", payload->valuestring,
                           (int) s_num (body, "socket", 0), envelope);
            if (opts.retry_base > 0 && self->envelope_len)
                self->envelopes[self->envelope_len - 1].sends = opts.retry_base;
            cJSON_AddItemToArray (envelope_ids, cJSON_CreateString (envelope));
        }
        cJSON_Delete (parsed);
    }
    if (http) {
        cJSON_AddItemToObject (root, "push_id",
                               cJSON_Duplicate (cJSON_GetArrayItem (push_ids, 0), true));
        if (s_flag (body, "wait")) {
            s_wait_pushes (self, push_ids);
            cJSON *records = cJSON_AddArrayToObject (root, "pushes");
            cJSON *id;
            cJSON_ArrayForEach (id, push_ids)
            {
                cJSON_AddItemToArray (
                    records,
                    cJSON_Duplicate (
                        cJSON_GetArrayItem (self->pushes, (int) id->valuedouble - 1),
                        true));
            }
            cJSON_AddItemToObject (
                root, "push", cJSON_Duplicate (cJSON_GetArrayItem (records, 0), true));
        }
    }
    else
        cJSON_AddItemToObject (
            root, "envelope_id",
            cJSON_Duplicate (cJSON_GetArrayItem (envelope_ids, 0), true));
    cJSON_Delete (http ? envelope_ids : push_ids);
    return NULL;
}

static int
s_control_url_verification (sl_t *self, struct mg_connection *conn, cJSON *body)
{
    pthread_mutex_lock (&self->lock);
    char *url = self->target ? strdup (self->target) : NULL;
    pthread_mutex_unlock (&self->lock);
    const char *target = s_str (body, "target", url);
    if (!target) {
        free (url);
        return s_control_error (conn, 400, "no target");
    }
    char challenge[48];
    store_random_text (challenge, 40);
    cJSON *msg = cJSON_CreateObject ();
    cJSON_AddStringToObject (msg, "token", SL_VERIFICATION_TOKEN);
    cJSON_AddStringToObject (msg, "challenge", s_str (body, "challenge", challenge));
    cJSON_AddStringToObject (msg, "type", "url_verification");
    char *text = cJSON_PrintUnformatted (msg);
    cJSON_Delete (msg);
    push_opts_t opts = s_push_opts (body);
    cJSON *root = push_once (self, target, text, &opts);
    cJSON_AddStringToObject (root, "challenge", s_str (body, "challenge", challenge));
    cJSON_free (text);
    free (url);
    return s_send_root (conn, 200, root);
}

static int
s_control_event (sl_t *self, struct mg_connection *conn, cJSON *body)
{
    if (strcmp (s_str (body, "kind", ""), "url_verification") == 0)
        return s_control_url_verification (self, conn, body);
    cJSON *events = cJSON_CreateArray ();
    cJSON *payloads = cJSON_CreateArray ();
    cJSON *root = cJSON_CreateObject ();
    char ts[32];
    pthread_mutex_lock (&self->lock);
    const char *error = s_build_events (self, body, events, ts);
    cJSON *event_ids = cJSON_CreateArray ();
    cJSON *event, *made = error ? NULL : events;
    cJSON_ArrayForEach (event, made)
    {
        char event_id[24];
        store_event_id (self, event_id);
        cJSON *payload = s_callback (self, cJSON_Duplicate (event, true), event_id);
        char *text = cJSON_PrintUnformatted (payload);
        cJSON_Delete (payload);
        store_keep_event (self, event_id, text);
        cJSON_AddItemToArray (payloads, cJSON_CreateString (text));
        cJSON_AddItemToArray (event_ids, cJSON_CreateString (event_id));
        cJSON_free (text);
    }
    if (!error) {
        cJSON_AddItemToObject (root, "event_id",
                               cJSON_Duplicate (cJSON_GetArrayItem (event_ids, 0), true));
        cJSON_AddItemToObject (root, "event_ids", event_ids);
        cJSON_AddStringToObject (root, "ts", ts);
        error = s_dispatch (self, body, payloads, root);
        store_save (self);
    }
    else
        cJSON_Delete (event_ids);
    pthread_mutex_unlock (&self->lock);
    cJSON_Delete (events);
    cJSON_Delete (payloads);
    if (error) {
        cJSON_Delete (root);
        return s_control_error (conn, 400, error);
    }
    return s_send_root (conn, 200, root);
}

static int
s_control_resend (sl_t *self, struct mg_connection *conn, cJSON *body)
{
    const char *event_id = s_str (body, "event_id", "");
    cJSON *root = cJSON_CreateObject ();
    pthread_mutex_lock (&self->lock);
    const char *payload = store_find_event (self, event_id);
    const char *error = payload ? NULL : "no such event_id";
    if (payload) {
        cJSON *payloads = cJSON_CreateArray ();
        cJSON_AddItemToArray (payloads, cJSON_CreateString (payload));
        cJSON_AddStringToObject (root, "event_id", event_id);
        error = s_dispatch (self, body, payloads, root);
        cJSON_Delete (payloads);
    }
    pthread_mutex_unlock (&self->lock);
    if (error) {
        cJSON_Delete (root);
        return s_control_error (conn, 400, error);
    }
    return s_send_root (conn, 200, root);
}

//  ---- Control API ------------------------------------------------------------------

static int
s_control_fault (sl_t *self, struct mg_connection *conn, cJSON *body)
{
    const char *kind = s_str (body, "kind", "");
    const char *method = s_str (body, "method", NULL);
    cJSON *root = cJSON_CreateObject ();
    pthread_mutex_lock (&self->lock);
    if (strcmp (kind, "deaf_next") == 0) {
        self->deaf_next += (int) s_num (body, "count", 1);
        cJSON_AddNumberToObject (root, "deaf_next", self->deaf_next);
    }
    else if (!method) {
        char which[32];
        cJSON *socket = cJSON_GetObjectItem (body, "socket");
        if (cJSON_IsNumber (socket))
            snprintf (which, sizeof (which), "%d", (int) socket->valuedouble);
        else
            snprintf (which, sizeof (which), "%s", s_str (body, "socket", "all"));
        int hit = socket_fault (self, kind, which, (int) s_num (body, "grace_ms", -1));
        cJSON_AddNumberToObject (root, "sockets", hit);
    }
    else if (*kind && self->fault_count < SL_MAX_FAULTS) {
        sl_fault_t *f = &self->faults[self->fault_count++];
        memset (f, 0, sizeof (*f));
        snprintf (f->method, sizeof (f->method), "%s", method);
        snprintf (f->kind, sizeof (f->kind), "%s", kind);
        f->count = (int) s_num (body, "count", 1);
        f->retry_after = (int) s_num (body, "retry_after", 1);
        snprintf (f->channel, sizeof (f->channel), "%s", s_str (body, "channel", ""));
        cJSON_AddNumberToObject (root, "faults", self->fault_count);
    }
    else {
        pthread_mutex_unlock (&self->lock);
        cJSON_Delete (root);
        return s_control_error (conn, 400, "need a kind (and room for the rule)");
    }
    pthread_mutex_unlock (&self->lock);
    return s_send_root (conn, 200, root);
}

static int
s_control_sent (sl_t *self, struct mg_connection *conn, cJSON *params)
{
    const char *channel = s_str (params, "channel", NULL);
    const char *thread_ts = s_str (params, "thread_ts", NULL);
    cJSON *root = cJSON_CreateObject ();
    cJSON *messages = cJSON_AddArrayToObject (root, "messages");
    pthread_mutex_lock (&self->lock);
    cJSON *entry;
    cJSON_ArrayForEach (entry, self->sent)
    {
        const char *c = s_str (entry, "channel", "");
        const char *t = s_str (entry, "thread_ts", "");
        if ((!channel || strcmp (c, channel) == 0)
            && (!thread_ts || strcmp (t, thread_ts) == 0))
            cJSON_AddItemToArray (messages, cJSON_Duplicate (entry, true));
    }
    cJSON_AddItemToObject (root, "updates", cJSON_Duplicate (self->updates, true));
    pthread_mutex_unlock (&self->lock);
    return s_send_root (conn, 200, root);
}

static int
s_control_calls (sl_t *self, struct mg_connection *conn)
{
    pthread_mutex_lock (&self->lock);
    cJSON *root = cJSON_Duplicate (self->counters, true);
    cJSON_AddItemToObject (root, "methods", cJSON_Duplicate (self->methods, true));
    cJSON_AddNumberToObject (root, "sockets_open", socket_live (self));
    cJSON_AddNumberToObject (root, "pending", (double) self->envelope_len);
    cJSON_AddItemToObject (root, "sockets", socket_list (self));
    cJSON *list = cJSON_AddArrayToObject (root, "envelopes");
    for (size_t i = 0; i < self->envelope_len; i++) {
        cJSON *entry = cJSON_CreateObject ();
        cJSON_AddStringToObject (entry, "envelope_id", self->envelopes[i].id);
        cJSON_AddStringToObject (entry, "event_id", self->envelopes[i].event_id);
        cJSON_AddNumberToObject (entry, "sends", self->envelopes[i].sends);
        cJSON_AddNumberToObject (entry, "socket", self->envelopes[i].socket);
        cJSON_AddItemToArray (list, entry);
    }
    cJSON_AddItemToObject (root, "dropped_envelopes",
                           cJSON_Duplicate (self->dropped, true));
    cJSON *statuses = cJSON_AddArrayToObject (root, "push_outcomes");
    cJSON *record;
    cJSON_ArrayForEach (record, self->pushes)
    {
        cJSON *entry = cJSON_CreateObject ();
        cJSON_AddItemToObject (
            entry, "id", cJSON_Duplicate (cJSON_GetObjectItem (record, "id"), true));
        cJSON_AddItemToObject (
            entry, "outcome",
            cJSON_Duplicate (cJSON_GetObjectItem (record, "outcome"), true));
        cJSON_AddItemToObject (
            entry, "status",
            cJSON_Duplicate (cJSON_GetObjectItem (record, "status"), true));
        cJSON_AddItemToArray (statuses, entry);
    }
    pthread_mutex_unlock (&self->lock);
    return s_send_root (conn, 200, root);
}

//  Zeroes the counters every /control/calls shows.  Lock held.
static void
s_zero_counters (sl_t *self)
{
    static const char *names[] = {"sockets_opened",
                                  "sockets_closed",
                                  "rejected_sockets",
                                  "refused_upgrades",
                                  "connections_open",
                                  "acks",
                                  "stray_acks",
                                  "other_messages",
                                  "delivered",
                                  "redeliveries",
                                  "dropped",
                                  "pings",
                                  "pongs",
                                  "pushes",
                                  "pushes_ok",
                                  "pushes_failed",
                                  NULL};
    cJSON_Delete (self->counters);
    self->counters = cJSON_CreateObject ();
    for (int i = 0; names[i]; i++)
        cJSON_AddNumberToObject (self->counters, names[i], 0);
    cJSON_Delete (self->methods);
    self->methods = cJSON_CreateObject ();
}

static int
s_control_reset (sl_t *self, struct mg_connection *conn)
{
    pthread_mutex_lock (&self->lock);
    self->fault_count = 0;
    self->deaf_next = 0;
    cJSON_Delete (self->sent);
    self->sent = cJSON_CreateArray ();
    cJSON_Delete (self->updates);
    self->updates = cJSON_CreateArray ();
    cJSON_Delete (self->dropped);
    self->dropped = cJSON_CreateArray ();
    cJSON_Delete (self->tickets);
    self->tickets = cJSON_CreateArray ();
    while (self->envelope_len)
        store_remove (self, self->envelope_len - 1);
    s_zero_counters (self);
    store_save (self);
    pthread_mutex_unlock (&self->lock);
    return s_send (conn, 200, "application/json", "{\"ok\":true}", "");
}

static int
s_control (sl_t *self, struct mg_connection *conn, const char *what, bool get,
           cJSON *params)
{
    if (!get && strcmp (what, "event") == 0)
        return s_control_event (self, conn, params);
    if (!get && strcmp (what, "resend") == 0)
        return s_control_resend (self, conn, params);
    if (!get && strcmp (what, "fault") == 0)
        return s_control_fault (self, conn, params);
    if (!get && strcmp (what, "target") == 0) {
        pthread_mutex_lock (&self->lock);
        free (self->target);
        const char *url = s_str (params, "url", "");
        self->target = *url ? strdup (url) : NULL;
        pthread_mutex_unlock (&self->lock);
        return s_send (conn, 200, "application/json", "{\"ok\":true}", "");
    }
    if (get && strcmp (what, "sent") == 0)
        return s_control_sent (self, conn, params);
    if (get && strcmp (what, "calls") == 0)
        return s_control_calls (self, conn);
    if (get && (strcmp (what, "pushes") == 0 || strcmp (what, "events") == 0)) {
        cJSON *root = cJSON_CreateObject ();
        pthread_mutex_lock (&self->lock);
        cJSON_AddItemToObject (
            root, what,
            cJSON_Duplicate (*what == 'p' ? self->pushes : self->events, true));
        pthread_mutex_unlock (&self->lock);
        return s_send_root (conn, 200, root);
    }
    if (!get && strcmp (what, "reset") == 0)
        return s_control_reset (self, conn);
    return s_control_error (conn, 404, "no such control endpoint");
}

//  ---- Routes ---------------------------------------------------------------------

static int
s_handler (struct mg_connection *conn, void *cbdata)
{
    sl_t *self = (sl_t *) cbdata;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *path = ri->local_uri ? ri->local_uri : "/";
    bool get = strcmp (ri->request_method, "GET") == 0;
    bool post = strcmp (ri->request_method, "POST") == 0;
    cJSON *params = (get || post) ? s_params (conn) : NULL;
    int status;
    if (!params)
        status = s_api_error (conn, 400, "invalid_json");
    else if (strncmp (path, "/control/", 9) == 0)
        status = s_control (self, conn, path + 9, get, params);
    else if (strncmp (path, "/api/", 5) == 0)
        status = s_api (self, conn, path + 5, params);
    else
        status = s_api_error (conn, 404, "not_found");
    cJSON_Delete (params);
    return status;
}

//  ---- Main -----------------------------------------------------------------------

//  Prints the usage and frees what main had made.  Returns 2.
static int
s_usage (sl_t *self)
{
    free (self->target);
    free (self);
    fprintf (stderr, "usage: cg_slackstandin [--port N] [--bot-token T] [--app-token T]\n"
                     "    [--signing-secret S] [--bot-user U] [--bot-id B] [--team T]\n"
                     "    [--state FILE] [--max-text N] [--ack-ms N] [--max-sockets N]\n"
                     "    [--disconnect-grace-ms N] [--ping-ms N] [--http-timeout-ms N]\n"
                     "    [--retry-delays-ms A,B,C] [--target URL] [--seed N]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    int port = 0;
    sl_t *self = calloc (1, sizeof (sl_t));
    if (!self)
        return 1;
    self->bot_token = "xoxb-test";
    self->app_token = "xapp-test";
    self->secret = "slack-test-secret";
    self->bot_user = "UBOT";
    self->bot_id = "BBOT";
    self->team = "T0001";
    self->max_text = 40000;
    self->ack_ms = 3000;
    self->max_sockets = 10;
    self->grace_ms = 10000;
    self->ping_ms = 5000;
    self->http_timeout_ms = 3000;
    self->retry_delays[0] = 0;
    self->retry_delays[1] = 1000;
    self->retry_delays[2] = 2000;
    self->seed = (unsigned) time (NULL) ^ (unsigned) getpid ();
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return s_usage (self);
        const char *opt = argv[i], *val = argv[++i];
        if (strcmp (opt, "--port") == 0)
            port = atoi (val);
        else if (strcmp (opt, "--bot-token") == 0)
            self->bot_token = val;
        else if (strcmp (opt, "--app-token") == 0)
            self->app_token = val;
        else if (strcmp (opt, "--signing-secret") == 0)
            self->secret = val;
        else if (strcmp (opt, "--bot-user") == 0)
            self->bot_user = val;
        else if (strcmp (opt, "--bot-id") == 0)
            self->bot_id = val;
        else if (strcmp (opt, "--team") == 0)
            self->team = val;
        else if (strcmp (opt, "--state") == 0)
            self->state_path = val;
        else if (strcmp (opt, "--max-text") == 0)
            self->max_text = atoi (val);
        else if (strcmp (opt, "--ack-ms") == 0)
            self->ack_ms = atoi (val);
        else if (strcmp (opt, "--max-sockets") == 0)
            self->max_sockets = atoi (val);
        else if (strcmp (opt, "--disconnect-grace-ms") == 0)
            self->grace_ms = atoi (val);
        else if (strcmp (opt, "--ping-ms") == 0)
            self->ping_ms = atoi (val);
        else if (strcmp (opt, "--http-timeout-ms") == 0)
            self->http_timeout_ms = atoi (val);
        else if (strcmp (opt, "--retry-delays-ms") == 0)
            sscanf (val, "%d,%d,%d", &self->retry_delays[0], &self->retry_delays[1],
                    &self->retry_delays[2]);
        else if (strcmp (opt, "--target") == 0)
            self->target = strdup (val);
        else if (strcmp (opt, "--seed") == 0)
            self->seed = (unsigned) strtoul (val, NULL, 10);
        else
            return s_usage (self);
    }
    if (port < 0 || port > 65535 || self->ack_ms < 1 || self->ping_ms < 1
        || self->http_timeout_ms < 1)
        return s_usage (self);

    sigset_t signals = standin_signals ();
    pthread_mutex_init (&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->changed, &attr);
    pthread_condattr_destroy (&attr);
    self->next_socket = 1;
    self->next_event = 1;
    self->tickets = cJSON_CreateArray ();
    self->events = cJSON_CreateArray ();
    self->sent = cJSON_CreateArray ();
    self->updates = cJSON_CreateArray ();
    self->dropped = cJSON_CreateArray ();
    self->pushes = cJSON_CreateArray ();
    s_zero_counters (self);
    if (store_load (self) != 0) {
        fprintf (stderr, "cg_slackstandin: cannot read state file %s\n",
                 self->state_path);
        return 1;
    }
    curl_global_init (CURL_GLOBAL_DEFAULT);

    char ports[32];
    snprintf (ports, sizeof (ports), "127.0.0.1:%d", port);
    const char *options[] = {"listening_ports",
                             ports,
                             "num_threads",
                             "64",
                             "request_timeout_ms",
                             "30000",
                             "websocket_timeout_ms",
                             "500",
                             "enable_websocket_ping_pong",
                             "no",
                             "decode_url",
                             "yes",
                             "tcp_nodelay",
                             "1",
                             NULL};
    self->port = port;
    self->ctx = standin_listen ("cg_slackstandin", options, self, s_handler, &self->port);
    if (!self->ctx)
        return 1;
    socket_register (self);
    if (socket_ticker_start (self) != 0) {
        fprintf (stderr, "cg_slackstandin: cannot start the ticker\n");
        mg_stop (self->ctx);
        return 1;
    }
    printf ("listening on 127.0.0.1:%d\n", self->port);
    fflush (stdout);

    int sig = 0;
    sigwait (&signals, &sig);
    atomic_store (&self->stopping, true);
    socket_ticker_stop (self);
    push_join_all (self);
    mg_stop (self->ctx);
    mg_exit_library ();
    curl_global_cleanup ();

    while (self->envelope_len)
        store_remove (self, self->envelope_len - 1);
    free (self->envelopes);
    while (self->sockets) {
        sl_socket_t *next = self->sockets->next;
        free (self->sockets);
        self->sockets = next;
    }
    cJSON_Delete (self->tickets);
    cJSON_Delete (self->events);
    cJSON_Delete (self->sent);
    cJSON_Delete (self->updates);
    cJSON_Delete (self->dropped);
    cJSON_Delete (self->pushes);
    cJSON_Delete (self->counters);
    cJSON_Delete (self->methods);
    free (self->push_threads);
    free (self->target);
    pthread_cond_destroy (&self->changed);
    pthread_mutex_destroy (&self->lock);
    free (self);
    return 0;
}
