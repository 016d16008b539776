/*  =========================================================================
    cg_wastandin - stand-in for the WhatsApp Cloud API, for tests

    Graph API (graph.c): POST /<version>/<phone-number-id>/messages with
    "Authorization: Bearer <access token>" and a JSON body.
      - a message: {"messaging_product":"whatsapp","recipient_type":
        "individual","to":"<wa_id>","type":"text","text":{"body":"...",
        "preview_url":false},"context"?:{"message_id":"wamid..."}} -> 200
        {"messaging_product":"whatsapp","contacts":[{"input","wa_id"}],
        "messages":[{"id":"wamid..."}]}.  Other types (an object named as
        the type) are logged too; "template" is exempt from the window.
      - a read receipt, maybe with typing: {"messaging_product":
        "whatsapp","status":"read","message_id":"wamid...",
        "typing_indicator"?:{"type":"text"}} -> {"success":true}.
    Errors have Graph's shape {"error":{"message","type":"OAuthException",
    "code","error_data"?:{"messaging_product","details"},"error_subcode"?,
    "fbtrace_id"}}: a wrong or missing token 401 code 190; a wrong version
    400 code 2500; a wrong phone number id 400 code 100 subcode 33; no
    messaging_product, no "to", an empty body or one over 4096 code points
    400 code 100; a user who has not written through /control/inbound
    within --window-s 400 code 131047.

    Control API for tests (JSON, no token):
        POST /control/inbound  Plays Meta posting to the gateway's webhook:
                               {target, from, name?, text?, type? ("text",
                               "image": text is the caption), id? (reuse a
                               wamid: a duplicate), timestamp?, context_id?,
                               context_from?, message? (a raw message
                               object), status? ("sent", "delivered",
                               "read", "failed": a status about wamid id for
                               recipient_id, failed ones with error_code?,
                               error_title?, error_details?),
                               status_only? (every item is a status,
                               "delivered" unless it says), batch? [items
                               as above, each with entry? and change?
                               indexes], forge? (signed with a wrong key),
                               missing_sig?, raw? (this exact body), ascii?
                               (false: UTF-8 and '/' unescaped), attempts?
                               (most tries, else --push-attempts), wait?
                               (answer once delivered or given up)}
                               -> {push, ids [wamids], state, status (of the
                               last attempt, 0 none yet), attempts,
                               statuses}.  Messages signed right open their
                               sender's 24-hour window.
        POST /control/verify   {target, token? (default --verify-token),
                               mode? ("subscribe"), challenge?} does Meta's
                               GET target?hub.mode=&hub.challenge=
                               &hub.verify_token= -> {url, status, body,
                               challenge, echoed (200 and body ==
                               challenge), error}
        POST /control/fault    {kind: "131047" | "130429" | "131056" |
                               "190" | "131026" | "100" | "500" | "502" |
                               "503" | "hang" | "drop", count? (1), to?
                               (only sends to this wa_id), on? ("send":
                               message sends, the default; "read"; "any"),
                               http? (the HTTP status; 130429 and 131056
                               default to 429, 190 to 401, 5xx their own,
                               the rest 400), async? (answer 200 with a
                               wamid, then post a "failed" status with
                               that code to status_target, as Meta reports
                               many failures; not for hang, drop, 190)}
        GET  /control/sent[?to=WA_ID]  {"messages":[{seq, to, input, type,
                               body, context, preview_url, at_ms, wamid,
                               failed? (an async fault's code)}]}
        GET  /control/reads    {"reads":[{seq, message_id, typing, known,
                               wa_id, at_ms}]}
        GET  /control/calls    counters: messages (every call), text,
                               other, read, typing, denied (401), rejected
                               (131047 by the window), faulted, verify,
                               posts, attempts; and pending (pushes), faults
        GET  /control/pushes[?id=N]  {"pushes":[records; see push.c]}
        POST /control/window   {wa_id, open: true | false} opens the window
                               now or closes it
        POST /control/clock    {advance_s} moves the stand-in's clock (the
                               window, timestamps) -> {offset_ms}
        POST /control/config   {window_s?, push_timeout_ms?, push_attempts?,
                               retry_ms? [ms, ...], status_target? (URL
                               for status posts, "" for none),
                               auto_statuses? (e.g. ["sent","delivered"]:
                               after each message sent, one signed post
                               per status about its wamid to
                               status_target; none by default)}
        POST /control/reset    clears faults, the logs, counters and pushes
                               (keeps windows, ids and the clock)

    usage: cg_wastandin [--port N] [--access-token T] [--phone-number-id ID]
                        [--app-secret S] [--verify-token T] [--version V]
                        [--window-s N] [--push-timeout-ms N]
                        [--push-attempts N] [--retry-ms 200,500,1000]
                        [--state FILE]
    Prints "listening on 127.0.0.1:PORT" and serves until SIGINT or SIGTERM.
    --state keeps the logs, ids, pending pushes and windows (kill -9 too).
    =========================================================================
*/
#include "wastandin.h"
#include "common.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define WA_JSON "application/json; charset=UTF-8"

//  ---- Responses ------------------------------------------------------------------

long long
wa_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
wa_str (cJSON *object, const char *name, const char *fallback)
{
    const char *value = cJSON_GetStringValue (cJSON_GetObjectItem (object, name));
    return value ? value : fallback;
}

int
wa_send_json (wa_req_t *req, int status, const char *extra, const char *body)
{
    return standin_send (req->conn, status, WA_JSON, extra, body);
}

int
wa_send_root (wa_req_t *req, int status, cJSON *root)
{
    return standin_send_root (req->conn, status, WA_JSON, NULL, root);
}

int
wa_control_error (wa_req_t *req, int status, const char *error)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "error", error);
    return wa_send_root (req, status, root);
}

//  ---- The client's socket --------------------------------------------------------

int
wa_pause (wa_req_t *req, int ms)
{
    return standin_pause (req->conn, req->self->port, &req->fd, &req->self->stopping, ms,
                          WA_SLICE_MS);
}

void
wa_hang_up (wa_req_t *req)
{
    standin_hang_up (req->conn, req->self->port, &req->fd);
}

//  ---- Control API ----------------------------------------------------------------

//  A query string parameter into buf, or NULL.
static const char *
s_query (struct mg_connection *conn, const char *name, char *buf, size_t cap)
{
    const char *query = mg_get_request_info (conn)->query_string;
    if (!query || mg_get_var (query, strlen (query), name, buf, cap) < 0)
        return NULL;
    return buf;
}

static double
s_num (cJSON *object, const char *name, double fallback)
{
    cJSON *item = cJSON_GetObjectItem (object, name);
    return cJSON_IsNumber (item) ? item->valuedouble : fallback;
}

//  {name: [entries of log whose member key equals value (NULL: all)]}.
static int
s_control_log (wa_req_t *req, cJSON *log, const char *name, const char *key,
               const char *value)
{
    wa_t *self = req->self;
    cJSON *root = cJSON_CreateObject ();
    cJSON *out = cJSON_AddArrayToObject (root, name);
    pthread_mutex_lock (&self->lock);
    cJSON *entry;
    cJSON_ArrayForEach (entry, log)
    {
        cJSON *member = cJSON_GetObjectItem (entry, key);
        char text[64] = "";
        if (cJSON_IsNumber (member))
            snprintf (text, sizeof (text), "%lld", (long long) member->valuedouble);
        else if (cJSON_IsString (member))
            snprintf (text, sizeof (text), "%s", member->valuestring);
        if (!value || strcmp (text, value) == 0)
            cJSON_AddItemToArray (out, cJSON_Duplicate (entry, true));
    }
    pthread_mutex_unlock (&self->lock);
    return wa_send_root (req, 200, root);
}

static int
s_control_calls (wa_req_t *req)
{
    wa_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    cJSON *root = cJSON_Duplicate (self->calls, true);
    int pending = 0;
    cJSON *push;
    cJSON_ArrayForEach (push, self->pushes)
    {
        pending += strcmp (wa_str (push, "state", ""), "pending") == 0;
    }
    cJSON_AddNumberToObject (root, "pending", pending);
    cJSON_AddNumberToObject (root, "faults", self->fault_count);
    pthread_mutex_unlock (&self->lock);
    return wa_send_root (req, 200, root);
}

static int
s_control_fault (wa_req_t *req, cJSON *body)
{
    wa_t *self = req->self;
    fault_t f;
    memset (&f, 0, sizeof (f));
    f.kind = store_fault_kind (wa_str (body, "kind", ""));
    f.count = (int) s_num (body, "count", 1);
    f.http = (int) s_num (body, "http", 0);
    snprintf (f.on, sizeof (f.on), "%s", wa_str (body, "on", "send"));
    //  Faults match wa_ids: digits only, as sends are keyed.
    size_t n = 0;
    for (const char *p = wa_str (body, "to", ""); *p && n + 1 < sizeof (f.to); p++)
        if (*p >= '0' && *p <= '9')
            f.to[n++] = *p;
    f.async = cJSON_IsTrue (cJSON_GetObjectItem (body, "async"));
    if (f.async && (f.kind == FAULT_HANG || f.kind == FAULT_DROP || f.kind == FAULT_190))
        return wa_control_error (req, 400, "hang, drop and 190 cannot be async");
    if (f.kind == FAULT_NONE || f.count < 1)
        return wa_control_error (req, 400, "unknown fault kind or bad count");
    if (strcmp (f.on, "send") != 0 && strcmp (f.on, "read") != 0
        && strcmp (f.on, "any") != 0)
        return wa_control_error (req, 400, "on must be send, read or any");
    pthread_mutex_lock (&self->lock);
    bool room = self->fault_count < WA_MAX_FAULTS;
    if (room)
        self->faults[self->fault_count++] = f;
    int held = self->fault_count;
    pthread_mutex_unlock (&self->lock);
    if (!room)
        return wa_control_error (req, 400, "too many fault rules");
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "faults", held);
    return wa_send_root (req, 200, root);
}

static int
s_control_reset (wa_req_t *req)
{
    wa_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    self->fault_count = 0;
    cJSON_Delete (self->sent);
    self->sent = cJSON_CreateArray ();
    cJSON_Delete (self->reads);
    self->reads = cJSON_CreateArray ();
    cJSON_Delete (self->pushes);
    self->pushes = cJSON_CreateArray ();
    store_zero_calls (self);
    store_save (self);
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    return wa_send_json (req, 200, NULL, "{\"ok\":true}");
}

static int
s_control_window (wa_req_t *req, cJSON *body)
{
    wa_t *self = req->self;
    const char *wa_id = wa_str (body, "wa_id", NULL);
    if (!wa_id || !*wa_id)
        return wa_control_error (req, 400, "need wa_id");
    pthread_mutex_lock (&self->lock);
    if (cJSON_IsFalse (cJSON_GetObjectItem (body, "open")))
        cJSON_DeleteItemFromObject (self->windows, wa_id);
    else
        store_open_window (self, wa_id);
    store_save (self);
    pthread_mutex_unlock (&self->lock);
    return wa_send_json (req, 200, NULL, "{\"ok\":true}");
}

static int
s_control_clock (wa_req_t *req, cJSON *body)
{
    wa_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    self->clock_offset_ms += (long long) (s_num (body, "advance_s", 0) * 1000);
    long long offset = self->clock_offset_ms;
    store_save (self);
    pthread_mutex_unlock (&self->lock);
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "offset_ms", (double) offset);
    return wa_send_root (req, 200, root);
}

//  Parses "200,500,1000" into self's retry schedule.  Returns 0 or -1.
static int
s_retry_schedule (wa_t *self, const char *text)
{
    int len = 0;
    const char *p = text;
    while (*p && len < WA_MAX_RETRIES) {
        char *end;
        long ms = strtol (p, &end, 10);
        if (end == p || ms < 0)
            return -1;
        self->retry_ms[len++] = (int) ms;
        p = *end == ',' ? end + 1 : end;
        if (*end && *end != ',')
            return -1;
    }
    if (len == 0)
        return -1;
    self->retry_len = len;
    return 0;
}

static int
s_control_config (wa_req_t *req, cJSON *body)
{
    wa_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    if (cJSON_IsNumber (cJSON_GetObjectItem (body, "window_s")))
        self->window_ms = (long long) (s_num (body, "window_s", 0) * 1000);
    if (cJSON_IsNumber (cJSON_GetObjectItem (body, "push_timeout_ms")))
        self->push_timeout_ms = (int) s_num (body, "push_timeout_ms", 5000);
    if (cJSON_IsNumber (cJSON_GetObjectItem (body, "push_attempts")))
        self->push_attempts = (int) s_num (body, "push_attempts", 1);
    cJSON *retry = cJSON_GetObjectItem (body, "retry_ms");
    int len = 0;
    cJSON *ms;
    cJSON_ArrayForEach (ms, retry)
    {
        if (cJSON_IsNumber (ms) && len < WA_MAX_RETRIES)
            self->retry_ms[len++] = (int) ms->valuedouble;
    }
    if (len)
        self->retry_len = len;
    const char *target = wa_str (body, "status_target", NULL);
    if (target)
        snprintf (self->status_target, sizeof (self->status_target), "%s", target);
    cJSON *statuses = cJSON_GetObjectItem (body, "auto_statuses");
    if (cJSON_IsArray (statuses)) {
        memset (self->auto_statuses, 0, sizeof (self->auto_statuses));
        int i = 0;
        cJSON *status;
        cJSON_ArrayForEach (status, statuses)
        {
            if (cJSON_IsString (status) && i < 4)
                snprintf (self->auto_statuses[i++], sizeof (self->auto_statuses[0]), "%s",
                          status->valuestring);
        }
    }
    pthread_mutex_unlock (&self->lock);
    return wa_send_json (req, 200, NULL, "{\"ok\":true}");
}

static int
s_control (wa_req_t *req, const char *what, bool get, cJSON *body)
{
    char buf[128];
    if (!get && strcmp (what, "inbound") == 0)
        return push_control_inbound (req, body);
    if (!get && strcmp (what, "verify") == 0)
        return push_control_verify (req, body);
    if (!get && strcmp (what, "fault") == 0)
        return s_control_fault (req, body);
    if (get && strcmp (what, "sent") == 0)
        return s_control_log (req, req->self->sent, "messages", "to",
                              s_query (req->conn, "to", buf, sizeof (buf)));
    if (get && strcmp (what, "reads") == 0)
        return s_control_log (req, req->self->reads, "reads", "message_id",
                              s_query (req->conn, "message_id", buf, sizeof (buf)));
    if (get && strcmp (what, "pushes") == 0)
        return s_control_log (req, req->self->pushes, "pushes", "id",
                              s_query (req->conn, "id", buf, sizeof (buf)));
    if (get && strcmp (what, "calls") == 0)
        return s_control_calls (req);
    if (!get && strcmp (what, "window") == 0)
        return s_control_window (req, body);
    if (!get && strcmp (what, "clock") == 0)
        return s_control_clock (req, body);
    if (!get && strcmp (what, "config") == 0)
        return s_control_config (req, body);
    if (!get && strcmp (what, "reset") == 0)
        return s_control_reset (req);
    return wa_control_error (req, 404, "no such control endpoint");
}

//  ---- Routes ---------------------------------------------------------------------

static int
s_handler (struct mg_connection *conn, void *cbdata)
{
    wa_t *self = (wa_t *) cbdata;
    wa_req_t req = {self, conn, -1};
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *path = ri->local_uri ? ri->local_uri : "/";
    bool get = strcmp (ri->request_method, "GET") == 0;
    char *raw = NULL;
    size_t len = 0;
    if (standin_read_body (conn, WA_MAX_BODY, &raw, &len) != 0)
        return graph_error (&req, 413, 100, "(#100) Request body too large", NULL, 0);
    cJSON *body = len ? cJSON_ParseWithLength (raw, len) : NULL;
    int status;
    if (strncmp (path, "/control/", 9) == 0) {
        if (!get && !cJSON_IsObject (body))
            status = wa_control_error (&req, 400, "body must be a JSON object");
        else
            status = s_control (&req, path + 9, get, body);
    }
    else
        status = graph_call (&req, path, raw, body);
    cJSON_Delete (body);
    free (raw);
    return status;
}

//  ---- Main -----------------------------------------------------------------------

static int
s_usage (void)
{
    fprintf (stderr,
             "usage: cg_wastandin [--port N] [--access-token T] [--phone-number-id ID] "
             "[--app-secret S] [--verify-token T] [--version V] [--window-s N] "
             "[--push-timeout-ms N] [--push-attempts N] [--retry-ms MS,MS,...] "
             "[--state FILE]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    int port = 0;
    wa_t *self = calloc (1, sizeof (wa_t));
    if (!self)
        return 1;
    self->token = "wa-test-token";
    self->phone_id = "1100000001";
    self->app_secret = "wa-app-secret";
    self->verify_token = "wa-verify";
    self->version = "v21.0";
    self->display_phone = "15550001111";
    self->waba_id = "2200000002";
    self->window_ms = 86400LL * 1000;
    self->push_timeout_ms = 5000;
    self->push_attempts = 6;
    s_retry_schedule (self, "200,500,1000,2000,4000");
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return s_usage ();
        const char *name = argv[i], *value = argv[++i];
        if (strcmp (name, "--port") == 0)
            port = atoi (value);
        else if (strcmp (name, "--access-token") == 0)
            self->token = value;
        else if (strcmp (name, "--phone-number-id") == 0)
            self->phone_id = value;
        else if (strcmp (name, "--app-secret") == 0)
            self->app_secret = value;
        else if (strcmp (name, "--verify-token") == 0)
            self->verify_token = value;
        else if (strcmp (name, "--version") == 0)
            self->version = value;
        else if (strcmp (name, "--window-s") == 0)
            self->window_ms = strtoll (value, NULL, 10) * 1000;
        else if (strcmp (name, "--push-timeout-ms") == 0)
            self->push_timeout_ms = atoi (value);
        else if (strcmp (name, "--push-attempts") == 0)
            self->push_attempts = atoi (value);
        else if (strcmp (name, "--retry-ms") == 0) {
            if (s_retry_schedule (self, value) != 0)
                return s_usage ();
        }
        else if (strcmp (name, "--state") == 0)
            self->state_path = value;
        else
            return s_usage ();
    }
    if (port < 0 || port > 65535 || self->push_timeout_ms < 1 || self->push_attempts < 1)
        return s_usage ();

    sigset_t signals = standin_signals ();

    pthread_mutex_init (&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->changed, &attr);
    pthread_condattr_destroy (&attr);
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    srand ((unsigned) (now.tv_nsec ^ getpid ()));
    snprintf (self->salt, sizeof (self->salt), "%08X", (unsigned) rand ());
    self->next_id = 1;
    self->next_seq = 1;
    self->sent = cJSON_CreateArray ();
    self->reads = cJSON_CreateArray ();
    self->windows = cJSON_CreateObject ();
    self->inbound = cJSON_CreateObject ();
    self->pushes = cJSON_CreateArray ();
    store_zero_calls (self);
    if (store_load (self) != 0) {
        fprintf (stderr, "cg_wastandin: cannot read state file %s\n", self->state_path);
        return 1;
    }
    curl_global_init (CURL_GLOBAL_DEFAULT);

    char ports[32];
    snprintf (ports, sizeof (ports), "127.0.0.1:%d", port);
    const char *options[] = {"listening_ports",
                             ports,
                             "num_threads",
                             "32",
                             "enable_keep_alive",
                             "yes",
                             "keep_alive_timeout_ms",
                             "30000",
                             "request_timeout_ms",
                             "120000",
                             "decode_url",
                             "yes",
                             "tcp_nodelay",
                             "1",
                             NULL};
    self->port = port;
    self->ctx = standin_listen ("cg_wastandin", options, self, s_handler, &self->port);
    if (!self->ctx)
        return 1;
    if (push_start (self) != 0) {
        fprintf (stderr, "cg_wastandin: cannot start the webhook pusher\n");
        mg_stop (self->ctx);
        return 1;
    }
    printf ("listening on 127.0.0.1:%d\n", self->port);
    fflush (stdout);

    int sig = 0;
    sigwait (&signals, &sig);
    atomic_store (&self->stopping, true);
    push_stop (self);
    mg_stop (self->ctx);
    mg_exit_library ();
    curl_global_cleanup ();

    cJSON_Delete (self->sent);
    cJSON_Delete (self->reads);
    cJSON_Delete (self->calls);
    cJSON_Delete (self->windows);
    cJSON_Delete (self->inbound);
    cJSON_Delete (self->pushes);
    pthread_cond_destroy (&self->changed);
    pthread_mutex_destroy (&self->lock);
    free (self);
    return 0;
}
