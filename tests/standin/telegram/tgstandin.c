/*  =========================================================================
    cg_tgstandin - stand-in for the Telegram Bot API, for tests

    Answers /bot<TOKEN>/<method> (GET or POST; parameters from the query
    string, a form body or a JSON body) in the Bot API's own wire format:
    {"ok":true,"result":...} or {"ok":false,"error_code":N,"description":
    "...","parameters":{...}} with HTTP status N.  A wrong token gets 401
    Unauthorized, an unknown method 404 Not Found.  Methods: getMe,
    getUpdates (offset confirms, negative offset, limit, long poll held up
    to 50 s, a newer poll ends the older with 409, sticky allowed_updates),
    sendMessage, sendChatAction, editMessageText, setWebhook,
    deleteWebhook and getWebhookInfo.  While a webhook is set a pusher
    thread POSTs each queued update to it (with the secret header), and
    retries every 500 ms until a 2xx, 50 attempts at most.

    Control API for tests (JSON, no token):
        POST /control/update    an Update; without update_id one is given,
                                with one it is enqueued as is (a duplicate,
                                returned once even if below the offset)
                                -> {"update_id":N}
        POST /control/message   {chat_id, chat_type?, from_id?, from_name?,
                                username?, text, message_id?, mention?,
                                reply_to_bot?, edited?, message_thread_id?,
                                entities?} builds a real Update
                                -> {"update_id":N,"message_id":M}
        GET  /control/sent[?chat_id=X]  {"messages":[{seq, chat_id, text,
                                reply_to, message_id, at_ms, ...}]}
        GET  /control/calls     per-method call counts, "pending",
                                "webhook_url", "webhook_last_error"
        POST /control/fault     {method, kind, count?, retry_after?,
                                migrate_to_chat_id?, chat_id?}
        POST /control/reset     clears faults, sent log and counters
        POST /control/webhook   {secret_override?: "..." | "" | null, url?}

    usage: cg_tgstandin [--port N] [--token T] [--bot-id N]
                        [--bot-username NAME] [--state FILE]
    Prints "listening on 127.0.0.1:PORT" and serves until SIGINT or SIGTERM.
    =========================================================================
*/
#include "tgstandin.h"
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

//  ---- Responses ------------------------------------------------------------------

long long
tg_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
tg_send_json (tg_req_t *req, int status, const char *body)
{
    return standin_send (req->conn, status, "application/json", NULL, body);
}

//  Sends root as the body and deletes it.
static int
s_send_root (tg_req_t *req, int status, cJSON *root)
{
    return standin_send_root (req->conn, status, "application/json", NULL, root);
}

int
tg_send_ok (tg_req_t *req, cJSON *result)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddBoolToObject (root, "ok", true);
    cJSON_AddItemToObject (root, "result", result);
    return s_send_root (req, 200, root);
}

int
tg_send_error (tg_req_t *req, int code, const char *description, cJSON *parameters)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddBoolToObject (root, "ok", false);
    cJSON_AddNumberToObject (root, "error_code", code);
    cJSON_AddStringToObject (root, "description", description);
    if (parameters)
        cJSON_AddItemToObject (root, "parameters", parameters);
    return s_send_root (req, code, root);
}

//  A control API error: {"error":"..."}.
static int
s_control_error (tg_req_t *req, int status, const char *error)
{
    return standin_control_error (req->conn, status, error);
}

//  ---- The client's socket --------------------------------------------------------

int
tg_pause (tg_req_t *req, int ms)
{
    return standin_pause (req->conn, req->self->port, &req->fd, &req->self->stopping, ms,
                          TG_SLICE_MS);
}

void
tg_hang_up (tg_req_t *req)
{
    standin_hang_up (req->conn, req->self->port, &req->fd);
}

//  ---- Parameters -----------------------------------------------------------------

//  All parameters of a request: the query string's, then the body's (a
//  JSON object, or a form when the Content-Type says so).  Returns NULL when the body cannot be read.
//  Caller owns return value.  *json_body is the parsed JSON body if any
//  (caller owns it too).
static cJSON *
s_params (struct mg_connection *conn, cJSON **json_body)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    cJSON *params = cJSON_CreateObject ();
    *json_body = NULL;
    if (ri->query_string)
        standin_add_form (params, ri->query_string, strlen (ri->query_string));
    char *body = NULL;
    size_t len = 0;
    if (standin_read_body (conn, TG_MAX_BODY, &body, &len) != 0) {
        cJSON_Delete (params);
        return NULL;
    }
    //  The control API takes JSON whatever the Content-Type says.
    const char *type = mg_get_header (conn, "Content-Type");
    bool form = type && strcasestr (type, "application/x-www-form-urlencoded");
    if (len)
        *json_body = cJSON_ParseWithLength (body, len);
    if (!form && cJSON_IsObject (*json_body)) {
        cJSON *item;
        cJSON_ArrayForEach (item, *json_body)
        {
            cJSON_DeleteItemFromObject (params, item->string);
            cJSON_AddItemToObject (params, item->string, cJSON_Duplicate (item, true));
        }
    }
    else if (len)
        standin_add_form (params, body, len);
    free (body);
    return params;
}

//  ---- Control API ----------------------------------------------------------------

static const char *
s_str (cJSON *obj, const char *name, const char *fallback)
{
    const char *value = cJSON_GetStringValue (cJSON_GetObjectItem (obj, name));
    return value ? value : fallback;
}

static long long
s_num (cJSON *obj, const char *name, long long fallback)
{
    cJSON *item = cJSON_GetObjectItem (obj, name);
    if (cJSON_IsNumber (item))
        return (long long) item->valuedouble;
    if (cJSON_IsString (item) && *item->valuestring)
        return strtoll (item->valuestring, NULL, 10);
    return fallback;
}

static int
s_control_update (tg_req_t *req, cJSON *body)
{
    if (!cJSON_IsObject (body))
        return s_control_error (req, 400, "body must be an Update object");
    tg_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    long long id = store_enqueue (self, cJSON_Duplicate (body, true));
    pthread_mutex_unlock (&self->lock);
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "update_id", (double) id);
    return s_send_root (req, 200, root);
}

//  A message from a user, as Telegram delivers it.  Lock held.
static cJSON *
s_user_message (tg_t *self, cJSON *body, long long *message_id)
{
    long long chat_id = s_num (body, "chat_id", 0);
    char chat_text[32];
    snprintf (chat_text, sizeof (chat_text), "%lld", chat_id);
    const char *chat_type = s_str (
        body, "chat_type",
        chat_id > 0                                                       ? "private"
        : strncmp (chat_text, "-100", 4) == 0 && strlen (chat_text) >= 14 ? "supergroup"
                                                                          : "group");
    bool group = strcmp (chat_type, "private") != 0;
    long long from_id = s_num (body, "from_id", chat_id > 0 ? chat_id : 1001);
    const char *from_name = s_str (body, "from_name", "Tester");
    const char *username = s_str (body, "username", NULL);
    const char *text = s_str (body, "text", "");
    long long thread = s_num (body, "message_thread_id", 0);
    *message_id = s_num (body, "message_id", 0);
    if (*message_id <= 0)
        *message_id = self->next_message_id++;
    else if (*message_id >= self->next_message_id)
        self->next_message_id = *message_id + 1;

    cJSON *msg = cJSON_CreateObject ();
    cJSON_AddNumberToObject (msg, "message_id", (double) *message_id);
    if (thread) {
        cJSON_AddNumberToObject (msg, "message_thread_id", (double) thread);
        cJSON_AddBoolToObject (msg, "is_topic_message", true);
    }
    cJSON *from = cJSON_AddObjectToObject (msg, "from");
    cJSON_AddNumberToObject (from, "id", (double) from_id);
    cJSON_AddBoolToObject (from, "is_bot", false);
    cJSON_AddStringToObject (from, "first_name", from_name);
    if (username)
        cJSON_AddStringToObject (from, "username", username);
    cJSON *chat = cJSON_AddObjectToObject (msg, "chat");
    cJSON_AddNumberToObject (chat, "id", (double) chat_id);
    cJSON_AddStringToObject (chat, "type", chat_type);
    if (group)
        cJSON_AddStringToObject (chat, "title", s_str (body, "title", "Test Group"));
    else {
        cJSON_AddStringToObject (chat, "first_name", from_name);
        if (username)
            cJSON_AddStringToObject (chat, "username", username);
    }
    long long now = (long long) time (NULL);
    cJSON_AddNumberToObject (msg, "date", (double) now);
    bool edited = cJSON_IsTrue (cJSON_GetObjectItem (body, "edited"));
    if (edited)
        cJSON_AddNumberToObject (msg, "edit_date", (double) now);

    cJSON *entities = cJSON_CreateArray ();
    size_t text_len = strlen (text);
    char *full = malloc (strlen (self->bot_username) + text_len + 3);
    if (cJSON_IsTrue (cJSON_GetObjectItem (body, "mention"))) {
        sprintf (full, "@%s %s", self->bot_username, text);
        cJSON *entity = cJSON_CreateObject ();
        cJSON_AddStringToObject (entity, "type", "mention");
        cJSON_AddNumberToObject (entity, "offset", 0);
        cJSON_AddNumberToObject (entity, "length",
                                 (double) (1 + botapi_utf16_len (self->bot_username)));
        cJSON_AddItemToArray (entities, entity);
    }
    else {
        strcpy (full, text);
        if (text[0] == '/') {
            //  A command: its first word.
            size_t n = strcspn (text, " \n");
            char *word = strndup (text, n);
            cJSON *entity = cJSON_CreateObject ();
            cJSON_AddStringToObject (entity, "type", "bot_command");
            cJSON_AddNumberToObject (entity, "offset", 0);
            cJSON_AddNumberToObject (entity, "length", (double) botapi_utf16_len (word));
            cJSON_AddItemToArray (entities, entity);
            free (word);
        }
    }
    cJSON *extra;
    cJSON_ArrayForEach (extra, cJSON_GetObjectItem (body, "entities"))
    {
        cJSON_AddItemToArray (entities, cJSON_Duplicate (extra, true));
    }
    cJSON_AddStringToObject (msg, "text", full);
    free (full);
    if (cJSON_GetArraySize (entities))
        cJSON_AddItemToObject (msg, "entities", entities);
    else
        cJSON_Delete (entities);

    if (cJSON_IsTrue (cJSON_GetObjectItem (body, "reply_to_bot"))) {
        //  The bot's last message to this chat, or a made-up one.
        long long replied = 1;
        const char *replied_text = "";
        cJSON *entry;
        cJSON_ArrayForEach (entry, self->sent)
        {
            if (strcmp (s_str (entry, "chat_id", ""), chat_text) == 0) {
                replied = s_num (entry, "message_id", 1);
                replied_text = s_str (entry, "text", "");
            }
        }
        cJSON *reply = cJSON_AddObjectToObject (msg, "reply_to_message");
        cJSON_AddNumberToObject (reply, "message_id", (double) replied);
        cJSON_AddItemToObject (reply, "from", botapi_user (self));
        cJSON_AddItemToObject (reply, "chat", cJSON_Duplicate (chat, true));
        cJSON_AddNumberToObject (reply, "date", (double) now);
        cJSON_AddStringToObject (reply, "text", replied_text);
    }
    cJSON *update = cJSON_CreateObject ();
    cJSON_AddItemToObject (update, edited ? "edited_message" : "message", msg);
    return update;
}

static int
s_control_message (tg_req_t *req, cJSON *body)
{
    if (!cJSON_IsObject (body) || s_num (body, "chat_id", 0) == 0
        || !cJSON_IsString (cJSON_GetObjectItem (body, "text")))
        return s_control_error (req, 400, "need chat_id (int) and text");
    tg_t *self = req->self;
    long long message_id = 0;
    pthread_mutex_lock (&self->lock);
    cJSON *update = s_user_message (self, body, &message_id);
    long long id = store_enqueue (self, update);
    pthread_mutex_unlock (&self->lock);
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "update_id", (double) id);
    cJSON_AddNumberToObject (root, "message_id", (double) message_id);
    return s_send_root (req, 200, root);
}

static int
s_control_sent (tg_req_t *req, cJSON *params)
{
    tg_t *self = req->self;
    const char *chat = s_str (params, "chat_id", NULL);
    cJSON *root = cJSON_CreateObject ();
    cJSON *messages = cJSON_AddArrayToObject (root, "messages");
    pthread_mutex_lock (&self->lock);
    cJSON *entry;
    cJSON_ArrayForEach (entry, self->sent)
    {
        if (!chat || strcmp (s_str (entry, "chat_id", ""), chat) == 0)
            cJSON_AddItemToArray (messages, cJSON_Duplicate (entry, true));
    }
    pthread_mutex_unlock (&self->lock);
    return s_send_root (req, 200, root);
}

static int
s_control_calls (tg_req_t *req)
{
    tg_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    cJSON *root = cJSON_Duplicate (self->calls, true);
    cJSON_AddNumberToObject (root, "pending", (double) self->queue_len);
    if (self->webhook_url)
        cJSON_AddStringToObject (root, "webhook_url", self->webhook_url);
    else
        cJSON_AddNullToObject (root, "webhook_url");
    if (self->webhook_error[0])
        cJSON_AddStringToObject (root, "webhook_last_error", self->webhook_error);
    else
        cJSON_AddNullToObject (root, "webhook_last_error");
    pthread_mutex_unlock (&self->lock);
    return s_send_root (req, 200, root);
}

static int
s_control_fault (tg_req_t *req, cJSON *body)
{
    tg_t *self = req->self;
    fault_t f;
    memset (&f, 0, sizeof (f));
    snprintf (f.method, sizeof (f.method), "%s", s_str (body, "method", "*"));
    f.kind = store_fault_kind (s_str (body, "kind", ""));
    f.count = (int) s_num (body, "count", 1);
    f.retry_after = (int) s_num (body, "retry_after", 1);
    f.migrate_to = s_num (body, "migrate_to_chat_id", 0);
    cJSON *chat = cJSON_GetObjectItem (body, "chat_id");
    if (cJSON_IsNumber (chat))
        snprintf (f.chat_id, sizeof (f.chat_id), "%lld", (long long) chat->valuedouble);
    else if (cJSON_IsString (chat))
        snprintf (f.chat_id, sizeof (f.chat_id), "%s", chat->valuestring);
    if (f.kind == FAULT_NONE || f.count < 1)
        return s_control_error (req, 400, "unknown fault kind or bad count");
    pthread_mutex_lock (&self->lock);
    bool room = self->fault_count < TG_MAX_FAULTS;
    if (room)
        self->faults[self->fault_count++] = f;
    int held = self->fault_count;
    pthread_mutex_unlock (&self->lock);
    if (!room)
        return s_control_error (req, 400, "too many fault rules");
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "faults", held);
    return s_send_root (req, 200, root);
}

static int
s_control_reset (tg_req_t *req)
{
    tg_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    self->fault_count = 0;
    cJSON_Delete (self->sent);
    self->sent = cJSON_CreateArray ();
    botapi_zero_calls (self);
    store_save (self);
    pthread_mutex_unlock (&self->lock);
    return tg_send_json (req, 200, "{\"ok\":true}");
}

static int
s_control_webhook (tg_req_t *req, cJSON *body)
{
    tg_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    cJSON *secret = cJSON_GetObjectItem (body, "secret_override");
    if (secret) {
        free (self->secret_override);
        self->secret_override = NULL;
        self->has_override = cJSON_IsString (secret);
        if (self->has_override)
            self->secret_override = strdup (secret->valuestring);
    }
    cJSON *url = cJSON_GetObjectItem (body, "url");
    if (cJSON_IsString (url)) {
        free (self->webhook_url);
        self->webhook_url = *url->valuestring ? strdup (url->valuestring) : NULL;
        pthread_cond_broadcast (&self->changed);
    }
    pthread_mutex_unlock (&self->lock);
    return tg_send_json (req, 200, "{\"ok\":true}");
}

static int
s_control (tg_req_t *req, const char *what, bool get, cJSON *params, cJSON *body)
{
    if (!get && strcmp (what, "update") == 0)
        return s_control_update (req, body);
    if (!get && strcmp (what, "message") == 0)
        return s_control_message (req, body);
    if (get && strcmp (what, "sent") == 0)
        return s_control_sent (req, params);
    if (get && strcmp (what, "calls") == 0)
        return s_control_calls (req);
    if (!get && strcmp (what, "fault") == 0)
        return s_control_fault (req, body);
    if (!get && strcmp (what, "reset") == 0)
        return s_control_reset (req);
    if (!get && strcmp (what, "webhook") == 0)
        return s_control_webhook (req, body);
    return s_control_error (req, 404, "no such control endpoint");
}

//  ---- Routes ---------------------------------------------------------------------

static int
s_handler (struct mg_connection *conn, void *cbdata)
{
    tg_t *self = (tg_t *) cbdata;
    tg_req_t req = {self, conn, -1};
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *path = ri->local_uri ? ri->local_uri : "/";
    bool get = strcmp (ri->request_method, "GET") == 0;
    bool post = strcmp (ri->request_method, "POST") == 0;
    cJSON *body = NULL;
    cJSON *params = (get || post) ? s_params (conn, &body) : NULL;
    int status;
    if (!params)
        status = tg_send_error (&req, 400, "Bad Request: invalid request", NULL);
    else if (strncmp (path, "/control/", 9) == 0)
        status = s_control (&req, path + 9, get, params, body);
    else if (strncmp (path, "/bot", 4) == 0 && strchr (path + 4, '/')) {
        const char *slash = strchr (path + 4, '/');
        size_t token_len = (size_t) (slash - path - 4);
        if (token_len != strlen (self->token)
            || strncmp (path + 4, self->token, token_len))
            status = tg_send_error (&req, 401, "Unauthorized", NULL);
        else
            status = botapi_call (&req, slash + 1, params);
    }
    else
        status = tg_send_error (&req, 404, "Not Found", NULL);
    cJSON_Delete (params);
    cJSON_Delete (body);
    return status;
}

//  ---- Main -----------------------------------------------------------------------

static int
s_usage (void)
{
    fprintf (stderr, "usage: cg_tgstandin [--port N] [--token TOKEN] [--bot-id N] "
                     "[--bot-username NAME] [--state FILE]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    int port = 0;
    tg_t *self = calloc (1, sizeof (tg_t));
    if (!self)
        return 1;
    self->token = "123456:TEST";
    self->bot_id = 4242;
    self->bot_username = "clawgate_test_bot";
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return s_usage ();
        if (strcmp (argv[i], "--port") == 0)
            port = atoi (argv[++i]);
        else if (strcmp (argv[i], "--token") == 0)
            self->token = argv[++i];
        else if (strcmp (argv[i], "--bot-id") == 0)
            self->bot_id = strtoll (argv[++i], NULL, 10);
        else if (strcmp (argv[i], "--bot-username") == 0)
            self->bot_username = argv[++i];
        else if (strcmp (argv[i], "--state") == 0)
            self->state_path = argv[++i];
        else
            return s_usage ();
    }
    if (port < 0 || port > 65535)
        return s_usage ();

    sigset_t signals = standin_signals ();

    pthread_mutex_init (&self->lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init (&attr);
    pthread_condattr_setclock (&attr, CLOCK_MONOTONIC);
    pthread_cond_init (&self->changed, &attr);
    pthread_condattr_destroy (&attr);
    self->next_update_id = 1;
    self->next_message_id = 1;
    self->next_seq = 1;
    self->sent = cJSON_CreateArray ();
    botapi_zero_calls (self);
    if (store_load (self) != 0) {
        fprintf (stderr, "cg_tgstandin: cannot read state file %s\n", self->state_path);
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
                             "60000",
                             "decode_url",
                             "yes",
                             "tcp_nodelay",
                             "1",
                             NULL};
    self->port = port;
    self->ctx = standin_listen ("cg_tgstandin", options, self, s_handler, &self->port);
    if (!self->ctx)
        return 1;
    if (store_pusher_start (self) != 0) {
        fprintf (stderr, "cg_tgstandin: cannot start the webhook pusher\n");
        mg_stop (self->ctx);
        return 1;
    }
    printf ("listening on 127.0.0.1:%d\n", self->port);
    fflush (stdout);

    int sig = 0;
    sigwait (&signals, &sig);
    atomic_store (&self->stopping, true);
    store_pusher_stop (self);
    mg_stop (self->ctx);
    mg_exit_library ();
    curl_global_cleanup ();

    store_clear_queue (self);
    free (self->queue);
    cJSON_Delete (self->allowed);
    cJSON_Delete (self->sent);
    cJSON_Delete (self->calls);
    free (self->webhook_url);
    free (self->webhook_secret);
    free (self->secret_override);
    pthread_cond_destroy (&self->changed);
    pthread_mutex_destroy (&self->lock);
    free (self);
    return 0;
}
