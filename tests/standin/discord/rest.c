/*  =========================================================================
    rest - cg_dcstandin's REST API under /api/v10: GET /gateway,
    GET /gateway/bot, GET /users/@me, POST /channels/{id}/messages and
    POST /channels/{id}/typing

    Part of cg_dcstandin (see dcstandin.c).  Every answer but 401s carries
    the X-RateLimit-* headers of its bucket (route and channel).  Errors
    have Discord's shape {"message","code"[,"errors"]}; a 429 has
    {"message","retry_after" (float seconds),"global"} with Retry-After
    (whole seconds, rounded up) and X-RateLimit-Scope.
    =========================================================================
*/
#include "dcstandin.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

//  ---- Buckets ----------------------------------------------------------------

typedef struct {
    char key[96];        //  Route and major parameter
    char headers[512];   //  The X-RateLimit-* lines of this answer
    char limited[512];   //  The same with Remaining 0, for a 429
    bool exceeded;       //  Over an enforced limit
    double reset_after;  //  Seconds until the window ends
} bucket_t;

//  A stable bucket hash per route, as Discord shows one.
static void
s_bucket_hash (const char *route, char *buf)
{
    unsigned long h = 1469598103934665603UL;
    for (const char *p = route; *p; p++)
        h = (h ^ (unsigned char) *p) * 1099511628211UL;
    sprintf (buf, "%016lx", h);
}

//  Counts this call in its bucket and fills b->headers.  Lock held.
static void
s_bucket (dc_t *self, const char *route, const char *major, bucket_t *b)
{
    snprintf (b->key, sizeof (b->key), "%s:%s", route, major);
    int limit = self->bucket_limit > 0 ? self->bucket_limit : 5;
    int window = self->bucket_window_ms > 0 ? self->bucket_window_ms : 5000;
    long long now = store_wall_ms ();
    cJSON *entry = cJSON_GetObjectItem (self->buckets, b->key);
    if (!entry) {
        entry = cJSON_AddObjectToObject (self->buckets, b->key);
        cJSON_AddNumberToObject (entry, "start", (double) now);
        cJSON_AddNumberToObject (entry, "used", 0);
    }
    cJSON *start = cJSON_GetObjectItem (entry, "start");
    cJSON *used = cJSON_GetObjectItem (entry, "used");
    if (now - (long long) start->valuedouble >= window) {
        cJSON_SetNumberValue (start, (double) now);
        cJSON_SetNumberValue (used, 0);
    }
    int n = (int) used->valuedouble;
    b->exceeded = self->bucket_limit > 0 && n >= limit;
    if (!b->exceeded)
        cJSON_SetNumberValue (used, ++n);
    long long end = (long long) start->valuedouble + window;
    b->reset_after = (double) (end - now) / 1000.0;
    int remaining = limit - n < 0 ? 0 : limit - n;
    char hash[24];
    s_bucket_hash (route, hash);
    const char *format = "X-RateLimit-Limit: %d\r\n"
                         "X-RateLimit-Remaining: %d\r\n"
                         "X-RateLimit-Reset: %lld.%03lld\r\n"
                         "X-RateLimit-Reset-After: %.3f\r\n"
                         "X-RateLimit-Bucket: %s\r\n";
    snprintf (b->headers, sizeof (b->headers), format, limit, remaining, end / 1000,
              end % 1000, b->reset_after, hash);
    snprintf (b->limited, sizeof (b->limited), format, limit, 0, end / 1000, end % 1000,
              b->reset_after, hash);
}

//  ---- Answers ----------------------------------------------------------------

static int
s_error (dc_req_t *req, int status, const char *headers, int code, const char *message)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "message", message);
    cJSON_AddNumberToObject (root, "code", code);
    return dc_send_root (req, status, headers, root);
}

//  400 Invalid Form Body for field with one error.
static int
s_form_error (dc_req_t *req, const char *headers, const char *field, const char *code,
              const char *message)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "code", 50035);
    cJSON *errors = cJSON_AddObjectToObject (root, "errors");
    cJSON *f = cJSON_AddObjectToObject (errors, field);
    cJSON *list = cJSON_AddArrayToObject (f, "_errors");
    cJSON *e = cJSON_CreateObject ();
    cJSON_AddStringToObject (e, "code", code);
    cJSON_AddStringToObject (e, "message", message);
    cJSON_AddItemToArray (list, e);
    cJSON_AddStringToObject (root, "message", "Invalid Form Body");
    return dc_send_root (req, 400, headers, root);
}

static int
s_429 (dc_req_t *req, const char *bucket_headers, double retry_after, bool global,
       const char *scope)
{
    dc_t *self = req->self;
    pthread_mutex_lock (&self->lock);
    self->rest_429++;
    pthread_mutex_unlock (&self->lock);
    char headers[1024];
    snprintf (headers, sizeof (headers),
              "%sRetry-After: %d\r\nX-RateLimit-Scope: %s\r\n%s",
              global ? "" : bucket_headers, (int) ceil (retry_after),
              scope && *scope ? scope : (global ? "global" : "user"),
              global ? "X-RateLimit-Global: true\r\n" : "");
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "message", "You are being rate limited.");
    cJSON_AddNumberToObject (root, "retry_after", retry_after);
    cJSON_AddBoolToObject (root, "global", global);
    return dc_send_root (req, 429, headers, root);
}

//  Answers a scripted fault.
static int
s_fault (dc_req_t *req, const dc_fault_t *f, const bucket_t *b)
{
    const char *headers = b->headers;
    switch (f->kind) {
    case DC_FAULT_429:
        return s_429 (req, b->limited, f->retry_after, f->global, f->scope);
    case DC_FAULT_500:
        return s_error (req, 500, headers, 0, "500: Internal Server Error");
    case DC_FAULT_502: {
        //  What Cloudflare answers: not JSON.
        const char *html = "<html><head><title>502 Bad Gateway</title></head>"
                           "<body>502 Bad Gateway</body></html>";
        mg_printf (req->conn,
                   "HTTP/1.1 502 Bad Gateway\r\n%sContent-Type: text/html\r\n"
                   "Content-Length: %zu\r\n\r\n%s",
                   headers, strlen (html), html);
        return 502;
    }
    case DC_FAULT_403: return s_error (req, 403, headers, 50001, "Missing Access");
    case DC_FAULT_404: return s_error (req, 404, headers, 10003, "Unknown Channel");
    case DC_FAULT_400:
        return s_form_error (req, headers, "content", "BASE_TYPE_MAX_LENGTH",
                             "Must be 2000 or fewer in length.");
    default: return s_error (req, 500, headers, 0, "500: Internal Server Error");
    }
}

//  ---- Shapes -----------------------------------------------------------------

size_t
rest_code_points (const char *text)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return n;
}

static cJSON *
s_bot_user (dc_t *self)
{
    cJSON *user = cJSON_CreateObject ();
    cJSON_AddStringToObject (user, "id", self->bot_id);
    cJSON_AddStringToObject (user, "username", self->bot_name);
    cJSON_AddNullToObject (user, "avatar");
    cJSON_AddStringToObject (user, "discriminator", "0");
    cJSON_AddNumberToObject (user, "public_flags", 0);
    cJSON_AddNumberToObject (user, "flags", 0);
    cJSON_AddBoolToObject (user, "bot", true);
    cJSON_AddNullToObject (user, "global_name");
    return user;
}

//  ---- Routes -----------------------------------------------------------------

static int
s_gateway_bot (dc_req_t *req, bool bot, const char *headers)
{
    dc_t *self = req->self;
    char url[80];
    if (self->tls_port)
        snprintf (url, sizeof (url), "wss://127.0.0.1:%d/gateway", self->tls_port);
    else
        snprintf (url, sizeof (url), "ws://127.0.0.1:%d/gateway", self->port);
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "url", url);
    if (bot) {
        cJSON_AddNumberToObject (root, "shards", 1);
        cJSON *limit = cJSON_AddObjectToObject (root, "session_start_limit");
        cJSON_AddNumberToObject (limit, "total", 1000);
        pthread_mutex_lock (&self->lock);
        long left = 1000 - self->identify;
        pthread_mutex_unlock (&self->lock);
        cJSON_AddNumberToObject (limit, "remaining", left < 0 ? 0 : (double) left);
        cJSON_AddNumberToObject (limit, "reset_after", 86400000);
        cJSON_AddNumberToObject (limit, "max_concurrency", 1);
    }
    return dc_send_root (req, 200, headers, root);
}

//  The sent-log entry with this nonce for channel in the last few
//  minutes, or NULL.  Lock held.
static cJSON *
s_nonce_seen (dc_t *self, const char *channel, const char *nonce)
{
    long long now = store_wall_ms ();
    cJSON *entry;
    cJSON_ArrayForEach (entry, self->sent)
    {
        const char *n = cJSON_GetStringValue (cJSON_GetObjectItem (entry, "nonce"));
        const char *ch = cJSON_GetStringValue (cJSON_GetObjectItem (entry, "channel_id"));
        double at = cJSON_GetNumberValue (cJSON_GetObjectItem (entry, "at_ms"));
        if (n && ch && strcmp (n, nonce) == 0 && strcmp (ch, channel) == 0
            && now - (long long) at < DC_NONCE_MS)
            return entry;
    }
    return NULL;
}

static int
s_post_message (dc_req_t *req, const char *channel, const char *body, size_t len,
                const char *headers)
{
    dc_t *self = req->self;
    cJSON *in = body ? cJSON_ParseWithLength (body, len) : NULL;
    if (!cJSON_IsObject (in)) {
        cJSON_Delete (in);
        return s_error (req, 400, headers, 50109,
                        "The request body contains invalid JSON.");
    }
    cJSON *content_item = cJSON_GetObjectItem (in, "content");
    const char *content = cJSON_GetStringValue (content_item);
    if (content_item && !cJSON_IsString (content_item) && !cJSON_IsNull (content_item)) {
        cJSON_Delete (in);
        return s_form_error (req, headers, "content", "STRING_TYPE_CONVERT",
                             "Could not interpret the value as string.");
    }
    bool embeds = cJSON_GetArraySize (cJSON_GetObjectItem (in, "embeds")) > 0;
    if ((!content || !*content) && !embeds) {
        cJSON_Delete (in);
        return s_error (req, 400, headers, 50006, "Cannot send an empty message");
    }
    if (!content)
        content = "";
    if (rest_code_points (content) > DC_MAX_CONTENT) {
        cJSON_Delete (in);
        return s_form_error (req, headers, "content", "BASE_TYPE_MAX_LENGTH",
                             "Must be 2000 or fewer in length.");
    }
    char nonce_buf[40];
    const char *nonce = NULL;
    cJSON *nonce_item = cJSON_GetObjectItem (in, "nonce");
    if (cJSON_IsString (nonce_item))
        nonce = nonce_item->valuestring;
    else if (cJSON_IsNumber (nonce_item)) {
        snprintf (nonce_buf, sizeof (nonce_buf), "%.0f", nonce_item->valuedouble);
        nonce = nonce_buf;
    }
    if (nonce && strlen (nonce) > 25) {
        cJSON_Delete (in);
        return s_form_error (req, headers, "nonce", "BASE_TYPE_MAX_LENGTH",
                             "Must be 25 or fewer in length.");
    }
    bool enforce = cJSON_IsTrue (cJSON_GetObjectItem (in, "enforce_nonce"));
    const char *ref = NULL;
    char ref_buf[40];
    cJSON *ref_id =
        cJSON_GetObjectItem (cJSON_GetObjectItem (in, "message_reference"), "message_id");
    if (cJSON_IsString (ref_id))
        ref = ref_id->valuestring;
    else if (cJSON_IsNumber (ref_id)) {
        snprintf (ref_buf, sizeof (ref_buf), "%.0f", ref_id->valuedouble);
        ref = ref_buf;
    }

    pthread_mutex_lock (&self->lock);
    cJSON *seen = nonce && enforce ? s_nonce_seen (self, channel, nonce) : NULL;
    char id[32], stamp[40];
    if (seen)
        snprintf (id, sizeof (id), "%s",
                  cJSON_GetStringValue (cJSON_GetObjectItem (seen, "id")));
    else
        store_snowflake (self, id);
    const char *text = content;
    if (seen) {
        //  The first message, as it was made.
        text = cJSON_GetStringValue (cJSON_GetObjectItem (seen, "content"));
        ref = cJSON_GetStringValue (cJSON_GetObjectItem (seen, "message_reference"));
    }
    store_timestamp (stamp);
    cJSON *msg = cJSON_CreateObject ();
    cJSON_AddNumberToObject (msg, "type", ref ? 19 : 0);
    cJSON_AddStringToObject (msg, "content", text ? text : "");
    cJSON_AddArrayToObject (msg, "mentions");
    cJSON_AddArrayToObject (msg, "mention_roles");
    cJSON_AddArrayToObject (msg, "attachments");
    cJSON_AddArrayToObject (msg, "embeds");
    cJSON_AddStringToObject (msg, "timestamp", stamp);
    cJSON_AddNullToObject (msg, "edited_timestamp");
    cJSON_AddNumberToObject (msg, "flags", 0);
    cJSON_AddArrayToObject (msg, "components");
    cJSON_AddStringToObject (msg, "id", id);
    cJSON_AddStringToObject (msg, "channel_id", channel);
    cJSON_AddItemToObject (msg, "author", s_bot_user (self));
    cJSON_AddBoolToObject (msg, "pinned", false);
    cJSON_AddBoolToObject (msg, "mention_everyone", false);
    cJSON_AddBoolToObject (msg, "tts", false);
    if (nonce)
        cJSON_AddStringToObject (msg, "nonce", nonce);
    if (ref) {
        cJSON *r = cJSON_AddObjectToObject (msg, "message_reference");
        cJSON_AddNumberToObject (r, "type", 0);
        cJSON_AddStringToObject (r, "channel_id", channel);
        cJSON_AddStringToObject (r, "message_id", ref);
    }
    if (!seen) {
        cJSON *entry = cJSON_CreateObject ();
        cJSON_AddNumberToObject (entry, "seq", cJSON_GetArraySize (self->sent) + 1);
        cJSON_AddStringToObject (entry, "id", id);
        cJSON_AddStringToObject (entry, "channel_id", channel);
        cJSON_AddStringToObject (entry, "content", content);
        if (ref)
            cJSON_AddStringToObject (entry, "message_reference", ref);
        else
            cJSON_AddNullToObject (entry, "message_reference");
        if (nonce)
            cJSON_AddStringToObject (entry, "nonce", nonce);
        else
            cJSON_AddNullToObject (entry, "nonce");
        cJSON_AddBoolToObject (entry, "enforce_nonce", enforce);
        if (embeds)
            cJSON_AddItemToObject (
                entry, "embeds",
                cJSON_Duplicate (cJSON_GetObjectItem (in, "embeds"), true));
        cJSON *allowed = cJSON_GetObjectItem (in, "allowed_mentions");
        if (allowed)
            cJSON_AddItemToObject (entry, "allowed_mentions",
                                   cJSON_Duplicate (allowed, true));
        cJSON_AddNumberToObject (entry, "at_ms", (double) store_wall_ms ());
        cJSON_AddItemToArray (self->sent, entry);
        store_save (self);
    }
    pthread_mutex_unlock (&self->lock);
    cJSON_Delete (in);
    return dc_send_root (req, 200, headers, msg);
}

int
rest_call (dc_req_t *req, const char *path, const char *body, size_t body_len)
{
    dc_t *self = req->self;
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    bool get = strcmp (ri->request_method, "GET") == 0;
    bool post = strcmp (ri->request_method, "POST") == 0;

    //  Which route, and its major parameter.
    const char *route = NULL;
    char channel[32] = "";
    if (strcmp (path, "/gateway") == 0 && get)
        route = "gateway";
    else if (strcmp (path, "/gateway/bot") == 0 && get)
        route = "gateway_bot";
    else if (strcmp (path, "/users/@me") == 0 && get)
        route = "users";
    else if (strncmp (path, "/channels/", 10) == 0 && post) {
        const char *id = path + 10;
        size_t n = strspn (id, "0123456789");
        if (n > 0 && n < sizeof (channel)) {
            memcpy (channel, id, n);
            channel[n] = 0;
            if (strcmp (id + n, "/messages") == 0)
                route = "messages";
            else if (strcmp (id + n, "/typing") == 0)
                route = "typing";
        }
    }
    if (!route)
        return s_error (req, 404, NULL, 0, "404: Not Found");
    if (strcmp (route, "gateway") != 0) {
        const char *auth = mg_get_header (req->conn, "Authorization");
        if (!auth || strncmp (auth, "Bot ", 4) != 0
            || strcmp (auth + 4, self->token) != 0)
            return s_error (req, 401, NULL, 0, "401: Unauthorized");
    }

    bucket_t b;
    dc_fault_t fault;
    pthread_mutex_lock (&self->lock);
    self->rest_calls++;
    s_bucket (self, route, channel, &b);
    bool faulted = store_take_fault (self, route, channel, &fault);
    if (!faulted && !b.exceeded && strcmp (route, "typing") == 0)
        self->typing++;
    pthread_mutex_unlock (&self->lock);
    if (faulted)
        return s_fault (req, &fault, &b);
    if (b.exceeded)
        return s_429 (req, b.limited, b.reset_after, false, "user");
    if (strcmp (route, "gateway") == 0 || strcmp (route, "gateway_bot") == 0)
        return s_gateway_bot (req, strcmp (route, "gateway_bot") == 0, b.headers);
    if (strcmp (route, "users") == 0)
        return dc_send_root (req, 200, b.headers, s_bot_user (self));
    if (strcmp (route, "typing") == 0) {
        mg_printf (req->conn, "HTTP/1.1 204 No Content\r\n%sContent-Length: 0\r\n\r\n",
                   b.headers);
        return 204;
    }
    return s_post_message (req, channel, body, body_len, b.headers);
}
