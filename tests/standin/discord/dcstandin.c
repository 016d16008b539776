/*  =========================================================================
    cg_dcstandin - stand-in for Discord (REST API v10 and the Gateway
    WebSocket), for tests

    REST, under /api/v10 (also /api), in Discord's wire format; every call
    but GET /gateway wants "Authorization: Bot <token>", else 401
    {"message":"401: Unauthorized","code":0}:
        GET  /gateway/bot      {url: ws[s]://127.0.0.1:P/gateway, shards:1,
                               session_start_limit:{...}}  (GET /gateway: url)
        GET  /users/@me        the bot user
        POST /channels/{id}/messages  {content, nonce?, enforce_nonce?,
                               message_reference?{message_id},
                               allowed_mentions?, embeds?} -> 200 message
                               object; 400 50006 empty (no content, no
                               embeds), 400 50035 content > 2000
                               code points (or nonce > 25), 400 50109 not
                               JSON; a nonce repeated with enforce_nonce
                               within 5 minutes returns the first message
        POST /channels/{id}/typing    -> 204
    Every answer (but 401/404) carries X-RateLimit-Limit/-Remaining/-Reset/
    -Reset-After/-Bucket of its bucket (route + channel id): 5 calls per
    --bucket-window-ms (default 1000), shown but not enforced.  With
    --bucket-limit N the bucket holds N and is enforced: the call past it
    gets a 429 (scope user) until the window ends.

    Gateway WebSocket on /gateway (new sessions) and /resume (READY's
    resume_gateway_url); see gateway.c for the protocol and close codes.

    Control API for tests (JSON, no token):
        POST /control/message   {channel_id, guild_id?, author_id?,
                                author_name?, bot?, content, mentions?[ids],
                                mention_bot?, message_reference?, id?}
                                builds a MESSAGE_CREATE; it goes to the live
                                session, or is kept for its RESUME, or (no
                                session yet) held for the next READY
                                -> {"id":"...","s":N (0: held),"written":bool}
        POST /control/fault     REST: {kind: "429"|"500"|"502"|"403"|"400"|
                                "404", route?: "messages"|"typing"|
                                "gateway_bot"|"gateway"|"users"|"*",
                                channel_id?, count?, retry_after? (float s),
                                global?, scope?}
                                Gateway, for what comes: {kind:"zombie",
                                count?} (heartbeats left unACKed; no count:
                                all), "zombie_off", {kind:"hello_delay",
                                ms, count?}, {kind:"no_ready", count?}
                                (Identify taken, READY never sent),
                                {kind:"invalid_intents",
                                count?} (Identify -> 4013),
                                "expire_session" (Resume -> op 9 false)
                                Gateway, now (on the live connection, else
                                on every open one): "heartbeat_request"
                                (op 1), "reconnect" (op 7),
                                {kind:"invalid_session", resumable: bool}
                                (op 9), {kind:"close", code, reason?},
                                "drop" (TCP ends, no close frame)
                                -> {"faults":N} or {"touched":N}
        GET  /control/sent[?channel_id=X]  {"messages":[{seq, id,
                                channel_id, content, message_reference,
                                nonce, enforce_nonce, allowed_mentions?, embeds?,
                                at_ms}]}
        GET  /control/calls     {identify, identify_on_gateway,
                                identify_on_resume, resume,
                                resume_on_gateway, resume_on_resume,
                                last_resume_path, last_query,
                                heartbeats, acks_skipped, typing,
                                connections (open now), connections_total,
                                rest_calls, rest_429, messages, session_id,
                                session_valid, seq, events, pending}
        GET  /control/received  {"frames":[{at_ms, conn, path, frame}]}
                                the last client frames (tokens hidden)
        POST /control/reset     clears faults, knobs, the sent log, the
                                received frames and the counters (the
                                session stays)

    usage: cg_dcstandin [--port N] [--tls-port N] [--token T] [--bot-id ID]
                        [--bot-name NAME] [--state FILE]
                        [--heartbeat-ms MS] [--require-intents]
                        [--bucket-limit N] [--bucket-window-ms MS]
                        [--tls-cert FILE --tls-key FILE]
    With --tls-cert (a PEM certificate or chain) and --tls-key, a second
    port (--tls-port, default any) serves everything (REST, control and
    the Gateway) over TLS, and the gateway URLs (GET /gateway/bot, READY's
    resume_gateway_url) become wss:// on it; the plain port keeps serving
    too (tls.c says why this is not civetweb's TLS).  Prints "listening
    on 127.0.0.1:PORT" (the plain port), then "tls on 127.0.0.1:PORT" when
    TLS is on, and serves until SIGINT or SIGTERM.  The state file keeps
    the session, its events, held messages, the sent log and the last id
    across a kill -9.
    =========================================================================
*/
#include "dcstandin.h"
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

//  ---- Responses ------------------------------------------------------------------

int
dc_send (dc_req_t *req, int status, const char *extra_headers, const char *body)
{
    return standin_send (req->conn, status, "application/json", extra_headers, body);
}

int
dc_send_root (dc_req_t *req, int status, const char *extra_headers, cJSON *root)
{
    return standin_send_root (req->conn, status, "application/json", extra_headers, root);
}

//  ---- Control API ----------------------------------------------------------------

static const char *
s_str (cJSON *obj, const char *name, const char *fallback)
{
    cJSON *item = cJSON_GetObjectItem (obj, name);
    return cJSON_IsString (item) ? item->valuestring : fallback;
}

//  An id field as text, whether a string or a number.  buf >= 32 bytes.
static const char *
s_id (cJSON *obj, const char *name, char *buf)
{
    cJSON *item = cJSON_GetObjectItem (obj, name);
    if (cJSON_IsString (item) && *item->valuestring)
        return item->valuestring;
    if (cJSON_IsNumber (item)) {
        sprintf (buf, "%.0f", item->valuedouble);
        return buf;
    }
    return NULL;
}

//  A user object {id, username, discriminator, global_name, avatar, bot?}.
static cJSON *
s_user (const char *id, const char *name, bool bot)
{
    cJSON *user = cJSON_CreateObject ();
    cJSON_AddStringToObject (user, "id", id);
    cJSON_AddStringToObject (user, "username", name);
    cJSON_AddStringToObject (user, "discriminator", "0");
    cJSON_AddStringToObject (user, "global_name", name);
    cJSON_AddNullToObject (user, "avatar");
    cJSON_AddNumberToObject (user, "public_flags", 0);
    if (bot)
        cJSON_AddBoolToObject (user, "bot", true);
    return user;
}

//  The MESSAGE_CREATE message object the body asks for.  Lock held.
//  Caller owns return value.
static cJSON *
s_user_message (dc_t *self, cJSON *body, const char *channel)
{
    char buf[4][32];
    const char *guild = s_id (body, "guild_id", buf[0]);
    const char *author = s_id (body, "author_id", buf[1]);
    if (!author)
        author = "2000000000000000002";
    const char *author_name = s_str (body, "author_name", "tester");
    bool mention_bot = cJSON_IsTrue (cJSON_GetObjectItem (body, "mention_bot"));
    const char *content = s_str (body, "content", "");
    char id[32], stamp[40];
    const char *given = s_id (body, "id", buf[2]);
    if (given) {
        snprintf (id, sizeof (id), "%s", given);
        long long n = strtoll (given, NULL, 10);
        if (n > self->last_id)
            self->last_id = n;
    }
    else
        store_snowflake (self, id);

    cJSON *msg = cJSON_CreateObject ();
    cJSON_AddNumberToObject (msg, "type", 0);
    cJSON_AddBoolToObject (msg, "tts", false);
    cJSON_AddStringToObject (msg, "timestamp", store_timestamp (stamp));
    cJSON_AddBoolToObject (msg, "pinned", false);
    cJSON *mentions = cJSON_AddArrayToObject (msg, "mentions");
    cJSON *item;
    cJSON_ArrayForEach (item, cJSON_GetObjectItem (body, "mentions"))
    {
        char num[32];
        const char *mid = cJSON_IsString (item) ? item->valuestring : NULL;
        if (cJSON_IsNumber (item)) {
            sprintf (num, "%.0f", item->valuedouble);
            mid = num;
        }
        if (mid)
            cJSON_AddItemToArray (mentions,
                                  strcmp (mid, self->bot_id) == 0
                                      ? s_user (self->bot_id, self->bot_name, true)
                                      : s_user (mid, "user", false));
    }
    char *text = NULL;
    if (mention_bot) {
        cJSON_AddItemToArray (mentions, s_user (self->bot_id, self->bot_name, true));
        text = malloc (strlen (content) + strlen (self->bot_id) + 8);
        sprintf (text, "<@%s> %s", self->bot_id, content);
    }
    cJSON_AddArrayToObject (msg, "mention_roles");
    cJSON_AddBoolToObject (msg, "mention_everyone",
                           cJSON_IsTrue (cJSON_GetObjectItem (body, "mention_everyone")));
    cJSON_AddItemToObject (
        msg, "author",
        s_user (author, author_name, cJSON_IsTrue (cJSON_GetObjectItem (body, "bot"))));
    cJSON_AddStringToObject (msg, "content", text ? text : content);
    free (text);
    cJSON_AddArrayToObject (msg, "attachments");
    cJSON_AddArrayToObject (msg, "embeds");
    cJSON_AddArrayToObject (msg, "components");
    cJSON_AddNullToObject (msg, "edited_timestamp");
    cJSON_AddNumberToObject (msg, "flags", 0);
    cJSON_AddStringToObject (msg, "id", id);
    cJSON_AddStringToObject (msg, "channel_id", channel);
    if (guild) {
        cJSON_AddStringToObject (msg, "guild_id", guild);
        cJSON *member = cJSON_AddObjectToObject (msg, "member");
        cJSON_AddArrayToObject (member, "roles");
        cJSON_AddStringToObject (member, "joined_at", stamp);
        cJSON_AddNullToObject (member, "nick");
    }
    cJSON *ref = cJSON_GetObjectItem (body, "message_reference");
    const char *ref_id = cJSON_IsObject (ref) ? s_id (ref, "message_id", buf[3])
                                              : s_id (body, "message_reference", buf[3]);
    if (ref_id) {
        cJSON_ReplaceItemInObject (msg, "type", cJSON_CreateNumber (19));
        cJSON *r = cJSON_AddObjectToObject (msg, "message_reference");
        cJSON_AddNumberToObject (r, "type", 0);
        cJSON_AddStringToObject (r, "channel_id", channel);
        cJSON_AddStringToObject (r, "message_id", ref_id);
        if (guild)
            cJSON_AddStringToObject (r, "guild_id", guild);
    }
    return msg;
}

static int
s_control_message (dc_req_t *req, cJSON *body)
{
    char buf[32];
    const char *channel = s_id (body, "channel_id", buf);
    if (!cJSON_IsObject (body) || !channel
        || !cJSON_IsString (cJSON_GetObjectItem (body, "content")))
        return standin_control_error (req->conn, 400,
                                      "need channel_id and content (string)");
    dc_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    cJSON *msg = s_user_message (self, body, channel);
    char id[32];
    snprintf (id, sizeof (id), "%s",
              cJSON_GetStringValue (cJSON_GetObjectItem (msg, "id")));
    bool written = false;
    long long s = gateway_message (self, msg, &written);
    pthread_mutex_unlock (&self->lock);
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "id", id);
    cJSON_AddNumberToObject (root, "s", (double) s);
    cJSON_AddBoolToObject (root, "written", written);
    return dc_send_root (req, 200, NULL, root);
}

static int
s_control_fault (dc_req_t *req, cJSON *body)
{
    dc_t *self = req->self;
    const char *kind = s_str (body, "kind", "");
    dc_fault_kind_t rest = store_fault_kind (kind);
    cJSON *root = cJSON_CreateObject ();
    if (rest == DC_FAULT_NONE) {
        pthread_mutex_lock (&self->lock);
        int touched = gateway_fault (self, body);
        pthread_mutex_unlock (&self->lock);
        if (touched < 0) {
            cJSON_Delete (root);
            return standin_control_error (req->conn, 400,
                                          "unknown fault kind or bad fields");
        }
        cJSON_AddNumberToObject (root, "touched", touched);
        return dc_send_root (req, 200, NULL, root);
    }
    dc_fault_t f;
    memset (&f, 0, sizeof (f));
    f.kind = rest;
    snprintf (f.route, sizeof (f.route), "%s", s_str (body, "route", "*"));
    char buf[32];
    const char *channel = s_id (body, "channel_id", buf);
    snprintf (f.channel_id, sizeof (f.channel_id), "%s", channel ? channel : "");
    cJSON *count = cJSON_GetObjectItem (body, "count");
    f.count = cJSON_IsNumber (count) ? (int) count->valuedouble : 1;
    cJSON *retry = cJSON_GetObjectItem (body, "retry_after");
    f.retry_after = cJSON_IsNumber (retry) ? retry->valuedouble : 1.0;
    f.global = cJSON_IsTrue (cJSON_GetObjectItem (body, "global"));
    snprintf (f.scope, sizeof (f.scope), "%s", s_str (body, "scope", ""));
    if (f.count < 1 || f.retry_after < 0) {
        cJSON_Delete (root);
        return standin_control_error (req->conn, 400, "bad count or retry_after");
    }
    pthread_mutex_lock (&self->lock);
    bool room = self->fault_count < DC_MAX_FAULTS;
    if (room)
        self->faults[self->fault_count++] = f;
    int held = self->fault_count;
    pthread_mutex_unlock (&self->lock);
    if (!room) {
        cJSON_Delete (root);
        return standin_control_error (req->conn, 400, "too many fault rules");
    }
    cJSON_AddNumberToObject (root, "faults", held);
    return dc_send_root (req, 200, NULL, root);
}

static int
s_control_sent (dc_req_t *req)
{
    dc_t *self = req->self;
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    char channel[64] = "";
    if (ri->query_string)
        mg_get_var (ri->query_string, strlen (ri->query_string), "channel_id", channel,
                    sizeof (channel));
    cJSON *root = cJSON_CreateObject ();
    cJSON *messages = cJSON_AddArrayToObject (root, "messages");
    pthread_mutex_lock (&self->lock);
    cJSON *entry;
    cJSON_ArrayForEach (entry, self->sent)
    {
        if (!channel[0] || strcmp (s_str (entry, "channel_id", ""), channel) == 0)
            cJSON_AddItemToArray (messages, cJSON_Duplicate (entry, true));
    }
    pthread_mutex_unlock (&self->lock);
    return dc_send_root (req, 200, NULL, root);
}

static int
s_control_calls (dc_req_t *req)
{
    dc_t *self = req->self;
    cJSON *root = cJSON_CreateObject ();
    pthread_mutex_lock (&self->lock);
    cJSON_AddNumberToObject (root, "identify", self->identify);
    cJSON_AddNumberToObject (root, "identify_on_gateway", self->identify_on_gateway);
    cJSON_AddNumberToObject (root, "identify_on_resume", self->identify_on_resume);
    cJSON_AddNumberToObject (root, "resume", self->resume);
    cJSON_AddNumberToObject (root, "resume_on_gateway", self->resume_on_gateway);
    cJSON_AddNumberToObject (root, "resume_on_resume", self->resume_on_resume);
    cJSON_AddStringToObject (root, "last_resume_path", self->last_resume_path);
    cJSON_AddStringToObject (root, "last_query", self->last_query);
    cJSON_AddNumberToObject (root, "heartbeats", self->heartbeats);
    cJSON_AddNumberToObject (root, "acks_skipped", self->acks_skipped);
    cJSON_AddNumberToObject (root, "typing", self->typing);
    cJSON_AddNumberToObject (root, "connections", gateway_open_count (self));
    cJSON_AddNumberToObject (root, "connections_total", self->connections_total);
    cJSON_AddNumberToObject (root, "rest_calls", self->rest_calls);
    cJSON_AddNumberToObject (root, "rest_429", self->rest_429);
    cJSON_AddNumberToObject (root, "messages", cJSON_GetArraySize (self->sent));
    cJSON_AddStringToObject (root, "session_id", self->session_id);
    cJSON_AddBoolToObject (root, "session_valid", self->session_valid);
    cJSON_AddNumberToObject (root, "seq", (double) self->seq);
    cJSON_AddNumberToObject (root, "events", (double) self->events_len);
    cJSON_AddNumberToObject (root, "pending", cJSON_GetArraySize (self->pending));
    pthread_mutex_unlock (&self->lock);
    return dc_send_root (req, 200, NULL, root);
}

static int
s_control_received (dc_req_t *req)
{
    dc_t *self = req->self;
    cJSON *root = cJSON_CreateObject ();
    pthread_mutex_lock (&self->lock);
    cJSON_AddItemToObject (root, "frames", cJSON_Duplicate (self->received, true));
    pthread_mutex_unlock (&self->lock);
    return dc_send_root (req, 200, NULL, root);
}

static int
s_control_reset (dc_req_t *req)
{
    dc_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    self->fault_count = 0;
    self->zombie = 0;
    self->hello_delays = 0;
    self->invalid_intents = 0;
    self->no_ready = 0;
    cJSON_Delete (self->sent);
    self->sent = cJSON_CreateArray ();
    cJSON_Delete (self->received);
    self->received = cJSON_CreateArray ();
    cJSON_Delete (self->buckets);
    self->buckets = cJSON_CreateObject ();
    self->identify = self->identify_on_gateway = self->identify_on_resume = 0;
    self->resume = self->resume_on_gateway = self->resume_on_resume = 0;
    self->heartbeats = self->acks_skipped = self->typing = self->rest_429 = 0;
    self->rest_calls = self->connections_total = 0;
    self->last_resume_path[0] = 0;
    store_save (self);
    pthread_mutex_unlock (&self->lock);
    return dc_send (req, 200, NULL, "{\"ok\":true}");
}

static int
s_control (dc_req_t *req, const char *what, bool get, cJSON *body)
{
    if (!get && strcmp (what, "message") == 0)
        return s_control_message (req, body);
    if (!get && strcmp (what, "fault") == 0)
        return s_control_fault (req, body);
    if (get && strcmp (what, "sent") == 0)
        return s_control_sent (req);
    if (get && strcmp (what, "calls") == 0)
        return s_control_calls (req);
    if (get && strcmp (what, "received") == 0)
        return s_control_received (req);
    if (!get && strcmp (what, "reset") == 0)
        return s_control_reset (req);
    return standin_control_error (req->conn, 404, "no such control endpoint");
}

//  ---- Routes ---------------------------------------------------------------------

static int
s_handler (struct mg_connection *conn, void *cbdata)
{
    dc_t *self = (dc_t *) cbdata;
    dc_req_t req = {self, conn};
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *path = ri->local_uri ? ri->local_uri : "/";
    bool get = strcmp (ri->request_method, "GET") == 0;
    char *body = NULL;
    size_t len = 0;
    if (standin_read_body (conn, DC_MAX_BODY, &body, &len) != 0)
        return dc_send (&req, 413, NULL,
                        "{\"message\":\"Request entity too large\",\"code\":40005}");
    int status;
    if (strncmp (path, "/control/", 9) == 0) {
        cJSON *json = len ? cJSON_ParseWithLength (body, len) : NULL;
        status = s_control (&req, path + 9, get, json);
        cJSON_Delete (json);
    }
    else if (strncmp (path, "/api/v10/", 9) == 0)
        status = rest_call (&req, path + 8, len ? body : NULL, len);
    else if (strncmp (path, "/api/", 5) == 0)
        status = rest_call (&req, path + 4, len ? body : NULL, len);
    else
        status = dc_send (&req, 404, NULL, "{\"message\":\"404: Not Found\",\"code\":0}");
    free (body);
    return status;
}

//  ---- Main -----------------------------------------------------------------------

static int
s_usage (void)
{
    fprintf (stderr,
             "usage: cg_dcstandin [--port N] [--tls-port N] [--token T] [--bot-id ID]\n"
             "                    [--bot-name NAME] [--state FILE] [--heartbeat-ms MS]\n"
             "                    [--require-intents] [--bucket-limit N]\n"
             "                    [--bucket-window-ms MS] [--tls-cert FILE --tls-key "
             "FILE]\n");
    return 2;
}

//  civetweb's master thread notices mg_stop only when its poll of the
//  listening socket ends, which takes up to 2 s when nothing connects: a
//  connection made just after mg_stop begins ends that wait at once.
static void *
s_wake_master (void *arg)
{
    int port = *(int *) arg;
    usleep (50000);
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset (&addr, 0, sizeof (addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons ((uint16_t) port);
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (fd >= 0) {
        connect (fd, (struct sockaddr *) &addr, sizeof (addr));
        close (fd);
    }
    return NULL;
}

int
main (int argc, char **argv)
{
    int port = 0, tls_port = 0;
    const char *tls_cert = NULL, *tls_key = NULL;
    dc_t *self = calloc (1, sizeof (dc_t));
    if (!self)
        return 1;
    self->token = "dc-test-token";
    self->bot_id = "1000000000000000001";
    self->bot_name = "clawgate_test_bot";
    self->heartbeat_ms = 41250;
    self->bucket_window_ms = 1000;
    for (int i = 1; i < argc; i++) {
        if (strcmp (argv[i], "--require-intents") == 0) {
            self->require_intents = true;
            continue;
        }
        if (i + 1 >= argc)
            return s_usage ();
        const char *opt = argv[i], *value = argv[++i];
        if (strcmp (opt, "--port") == 0)
            port = atoi (value);
        else if (strcmp (opt, "--tls-port") == 0)
            tls_port = atoi (value);
        else if (strcmp (opt, "--token") == 0)
            self->token = value;
        else if (strcmp (opt, "--bot-id") == 0)
            self->bot_id = value;
        else if (strcmp (opt, "--bot-name") == 0)
            self->bot_name = value;
        else if (strcmp (opt, "--state") == 0)
            self->state_path = value;
        else if (strcmp (opt, "--heartbeat-ms") == 0)
            self->heartbeat_ms = atoi (value);
        else if (strcmp (opt, "--bucket-limit") == 0)
            self->bucket_limit = atoi (value);
        else if (strcmp (opt, "--bucket-window-ms") == 0)
            self->bucket_window_ms = atoi (value);
        else if (strcmp (opt, "--tls-cert") == 0)
            tls_cert = value;
        else if (strcmp (opt, "--tls-key") == 0)
            tls_key = value;
        else
            return s_usage ();
    }
    if (port < 0 || port > 65535 || tls_port < 0 || tls_port > 65535
        || self->heartbeat_ms <= 0 || (tls_key && !tls_cert))
        return s_usage ();

    sigset_t signals = standin_signals ();
    srand ((unsigned) (store_wall_ms () ^ getpid ()));
    pthread_mutex_init (&self->lock, NULL);
    self->sent = cJSON_CreateArray ();
    self->pending = cJSON_CreateArray ();
    self->received = cJSON_CreateArray ();
    self->buckets = cJSON_CreateObject ();
    if (store_load (self) != 0) {
        fprintf (stderr, "cg_dcstandin: cannot read state file %s\n", self->state_path);
        return 1;
    }

    char ports[32];
    snprintf (ports, sizeof (ports), "127.0.0.1:%d", port);
    const char *options[] = {"listening_ports",
                             ports,
                             "num_threads",
                             "48",
                             "enable_keep_alive",
                             "yes",
                             "keep_alive_timeout_ms",
                             "30000",
                             "request_timeout_ms",
                             "60000",
                             "websocket_timeout_ms",
                             "3600000",
                             "decode_url",
                             "yes",
                             "tcp_nodelay",
                             "1",
                             NULL};
    self->port = port;
    self->ctx = standin_listen ("cg_dcstandin", options, self, s_handler, &self->port);
    if (!self->ctx)
        return 1;
    gateway_register (self);
    if (tls_cert && tls_start (self, tls_cert, tls_key, tls_port) != 0) {
        mg_stop (self->ctx);
        mg_exit_library ();
        return 1;
    }
    printf ("listening on 127.0.0.1:%d\n", self->port);
    if (self->tls_port)
        printf ("tls on 127.0.0.1:%d\n", self->tls_port);
    fflush (stdout);

    int sig = 0;
    sigwait (&signals, &sig);
    atomic_store (&self->stopping, true);
    tls_stop (self);
    pthread_t waker;
    bool woken = pthread_create (&waker, NULL, s_wake_master, &self->port) == 0;
    mg_stop (self->ctx);
    if (woken)
        pthread_join (waker, NULL);
    mg_exit_library ();

    store_clear_events (self);
    free (self->events);
    cJSON_Delete (self->pending);
    cJSON_Delete (self->sent);
    cJSON_Delete (self->received);
    cJSON_Delete (self->buckets);
    pthread_mutex_destroy (&self->lock);
    free (self);
    return 0;
}
