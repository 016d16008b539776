/*  =========================================================================
    push - cg_wastandin playing Meta calling the gateway's webhook: the
    verification GET, notification POSTs signed as Meta signs them, and
    the pusher thread that retries each POST until it gets a 200

    Part of cg_wastandin (see wastandin.c for the control API).  A post's
    body is written as Meta writes it: non-ASCII characters escaped as
    \uXXXX and '/' as "\/" (unless "ascii":false), so a receiver that
    checks the signature over anything but the raw bytes fails.  Its
    headers: Content-Type: application/json, X-Hub-Signature-256:
    sha256=<hex HMAC-SHA256(app secret, body)>, User-Agent:
    facebookexternalua (Meta's older sha1 X-Hub-Signature is not sent).

    Each post is a record in self->pushes (persisted, so pending ones
    survive a kill -9): {id, target, body, sig ("good", "forged",
    "missing"), state ("pending", "delivered", "failed"), attempts,
    max_attempts, statuses [HTTP status per attempt, 0: none], errors
    [per attempt, "" if it answered], ids [wamids], created_ms, next_ms,
    done_ms}.  One pusher thread posts them one at a time, the one due
    first next, so a target that hangs holds the others back for up to
    --push-timeout-ms per attempt.
    =========================================================================
*/
#include "wastandin.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FORGED_KEY "not-the-app-secret"

//  ---- Meta's JSON spelling ---------------------------------------------------

//  Decodes one UTF-8 sequence at p (n bytes left); returns its length
//  (1 for a stray byte, taken as U+FFFD) and the code point in *cp.
static int
s_utf8 (const unsigned char *p, size_t n, unsigned *cp)
{
    int len = p[0] >= 0xF0 ? 4 : p[0] >= 0xE0 ? 3 : p[0] >= 0xC0 ? 2 : 1;
    if (len == 1 || (size_t) len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    unsigned v = p[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (p[i] & 0x3F);
    }
    *cp = v;
    return len;
}

//  text (cJSON's output, where only strings hold '/' or bytes >= 0x80)
//  with non-ASCII as \uXXXX (surrogate pairs above U+FFFF) and '/' as
//  "\/".  Caller owns return value.
static char *
s_meta_escape (const char *text)
{
    size_t n = strlen (text);
    char *out = malloc (n * 6 + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    const unsigned char *p = (const unsigned char *) text;
    for (size_t i = 0; i < n;) {
        if (p[i] == '/') {
            out[o++] = '\\';
            out[o++] = '/';
            i++;
        }
        else if (p[i] == '\\' && i + 1 < n) {
            out[o++] = (char) p[i++];
            out[o++] = (char) p[i++];
        }
        else if (p[i] < 0x80)
            out[o++] = (char) p[i++];
        else {
            unsigned cp;
            i += (size_t) s_utf8 (p + i, n - i, &cp);
            if (cp >= 0x10000) {
                cp -= 0x10000;
                o += (size_t) sprintf (out + o, "\\u%04x\\u%04x", 0xD800 + (cp >> 10),
                                       0xDC00 + (cp & 0x3FF));
            }
            else
                o += (size_t) sprintf (out + o, "\\u%04x", cp);
        }
    }
    out[o] = 0;
    return out;
}

//  ---- HTTP ---------------------------------------------------------------------

typedef struct {
    char data[65536];
    size_t len;
} sink_t;

static size_t
s_sink (char *ptr, size_t size, size_t nmemb, void *arg)
{
    sink_t *s = (sink_t *) arg;
    size_t n = size * nmemb;
    size_t room = sizeof (s->data) - 1 - s->len;
    size_t take = n < room ? n : room;
    memcpy (s->data + s->len, ptr, take);
    s->len += take;
    s->data[s->len] = 0;
    return n;
}

//  One request; body NULL makes it a GET.  Returns the HTTP status, or 0
//  with error filled.
static long
s_http (const char *url, const char *body, struct curl_slist *headers, int timeout_ms,
        sink_t *sink, char *error, size_t cap)
{
    CURL *c = curl_easy_init ();
    if (!c) {
        snprintf (error, cap, "curl_easy_init failed");
        return 0;
    }
    curl_easy_setopt (c, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt (c, CURLOPT_POST, 1L);
        curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) strlen (body));
    }
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (c, CURLOPT_USERAGENT, "facebookexternalua");
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_sink);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, sink);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
    curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT_MS,
                      (long) (timeout_ms < 3000 ? timeout_ms : 3000));
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    CURLcode rc = curl_easy_perform (c);
    if (rc == CURLE_OK)
        curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf (error, cap, "%s",
                  rc == CURLE_OPERATION_TIMEDOUT ? "timeout" : curl_easy_strerror (rc));
    curl_easy_cleanup (c);
    return status;
}

//  Lowercase hex HMAC-SHA256 of data under key into hex (65 bytes).
static void
s_hmac_hex (const char *key, const void *data, size_t len, char hex[65])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    hex[0] = 0;
    if (!HMAC (EVP_sha256 (), key, (int) strlen (key), (const unsigned char *) data, len,
               mac, &mac_len))
        return;
    for (unsigned int i = 0; i < mac_len && i < 32; i++)
        sprintf (hex + 2 * i, "%02x", mac[i]);
}

//  POSTs body to url signed as sig says.  Returns the status, 0 if none.
static long
s_post (wa_t *self, const char *url, const char *body, const char *sig, char *error,
        size_t cap)
{
    struct curl_slist *h = curl_slist_append (NULL, "Content-Type: application/json");
    if (strcmp (sig, "missing") != 0) {
        const char *key = strcmp (sig, "forged") == 0 ? FORGED_KEY : self->app_secret;
        char hex[65], line[128];
        s_hmac_hex (key, body, strlen (body), hex);
        snprintf (line, sizeof (line), "X-Hub-Signature-256: sha256=%s", hex);
        h = curl_slist_append (h, line);
    }
    static sink_t sink;  //  Only the pusher thread posts
    sink.len = 0;
    long status = s_http (url, body, h, self->push_timeout_ms, &sink, error, cap);
    curl_slist_free_all (h);
    return status;
}

//  ---- Verification GET ---------------------------------------------------------

int
push_control_verify (wa_req_t *req, cJSON *body)
{
    wa_t *self = req->self;
    const char *target = wa_str (body, "target", NULL);
    if (!target || !*target)
        return wa_control_error (req, 400, "need target");
    const char *token = wa_str (body, "token", self->verify_token);
    const char *mode = wa_str (body, "mode", "subscribe");
    char challenge[32];
    const char *given = wa_str (body, "challenge", NULL);
    if (given)
        snprintf (challenge, sizeof (challenge), "%s", given);
    else
        snprintf (challenge, sizeof (challenge), "%u",
                  (unsigned) rand () % 900000000u + 100000000u);
    char *e_mode = curl_easy_escape (NULL, mode, 0);
    char *e_challenge = curl_easy_escape (NULL, challenge, 0);
    char *e_token = curl_easy_escape (NULL, token, 0);
    size_t cap =
        strlen (target) + strlen (e_mode) + strlen (e_challenge) + strlen (e_token) + 64;
    char *url = malloc (cap);
    snprintf (url, cap, "%s%chub.mode=%s&hub.challenge=%s&hub.verify_token=%s", target,
              strchr (target, '?') ? '&' : '?', e_mode, e_challenge, e_token);
    curl_free (e_mode);
    curl_free (e_challenge);
    curl_free (e_token);
    pthread_mutex_lock (&self->lock);
    store_count (self, "verify");
    pthread_mutex_unlock (&self->lock);

    sink_t *sink = calloc (1, sizeof (sink_t));
    char error[256] = "";
    long status =
        s_http (url, NULL, NULL, self->push_timeout_ms, sink, error, sizeof (error));
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "url", url);
    cJSON_AddNumberToObject (root, "status", (double) status);
    cJSON_AddStringToObject (root, "body", sink->data);
    cJSON_AddStringToObject (root, "challenge", challenge);
    cJSON_AddBoolToObject (root, "echoed",
                           status == 200 && strcmp (sink->data, challenge) == 0);
    cJSON_AddStringToObject (root, "error", error);
    free (sink);
    free (url);
    return wa_send_root (req, 200, root);
}

//  ---- Notifications ------------------------------------------------------------

//  The value object of entry e, change c, made (with the entries and
//  changes before them) if missing.
static cJSON *
s_value (wa_t *self, cJSON *entries, int e, int c)
{
    while (cJSON_GetArraySize (entries) <= e) {
        cJSON *entry = cJSON_CreateObject ();
        cJSON_AddStringToObject (entry, "id", self->waba_id);
        cJSON_AddArrayToObject (entry, "changes");
        cJSON_AddItemToArray (entries, entry);
    }
    cJSON *changes = cJSON_GetObjectItem (cJSON_GetArrayItem (entries, e), "changes");
    while (cJSON_GetArraySize (changes) <= c) {
        cJSON *change = cJSON_CreateObject ();
        cJSON *value = cJSON_AddObjectToObject (change, "value");
        cJSON_AddStringToObject (value, "messaging_product", "whatsapp");
        cJSON *metadata = cJSON_AddObjectToObject (value, "metadata");
        cJSON_AddStringToObject (metadata, "display_phone_number", self->display_phone);
        cJSON_AddStringToObject (metadata, "phone_number_id", self->phone_id);
        cJSON_AddStringToObject (change, "field", "messages");
        cJSON_AddItemToArray (changes, change);
    }
    return cJSON_GetObjectItem (cJSON_GetArrayItem (changes, c), "value");
}

//  The array name of value, made if missing.
static cJSON *
s_array (cJSON *value, const char *name)
{
    cJSON *array = cJSON_GetObjectItem (value, name);
    return array ? array : cJSON_AddArrayToObject (value, name);
}

static int
s_index (cJSON *item, const char *name)
{
    cJSON *n = cJSON_GetObjectItem (item, name);
    int i = cJSON_IsNumber (n) ? (int) n->valuedouble : 0;
    return i < 0 ? 0 : i > 16 ? 16 : i;
}

//  Adds a status item to value.  Lock held.
static void
s_add_status (wa_t *self, cJSON *value, cJSON *item, long long now_s)
{
    const char *state = wa_str (item, "status", "delivered");
    cJSON *status = cJSON_CreateObject ();
    cJSON_AddStringToObject (status, "id", wa_str (item, "id", "wamid.unknown"));
    cJSON_AddStringToObject (status, "status", state);
    char ts[32];
    snprintf (ts, sizeof (ts), "%lld", now_s);
    cJSON_AddStringToObject (status, "timestamp", wa_str (item, "timestamp", ts));
    cJSON_AddStringToObject (status, "recipient_id",
                             wa_str (item, "recipient_id", wa_str (item, "from", "")));
    if (strcmp (state, "failed") == 0) {
        cJSON *error = cJSON_CreateObject ();
        cJSON *code = cJSON_GetObjectItem (item, "error_code");
        cJSON_AddNumberToObject (error, "code",
                                 cJSON_IsNumber (code) ? code->valuedouble : 131047);
        const char *title = wa_str (item, "error_title", "Re-engagement message");
        cJSON_AddStringToObject (error, "title", title);
        cJSON_AddStringToObject (error, "message", title);
        cJSON *data = cJSON_AddObjectToObject (error, "error_data");
        cJSON_AddStringToObject (data, "details",
                                 wa_str (item, "error_details",
                                         "Message failed to send because more than 24 "
                                         "hours have passed since the customer last "
                                         "replied to this number."));
        cJSON_AddItemToArray (cJSON_AddArrayToObject (status, "errors"), error);
    }
    else if (strcmp (state, "read") != 0) {
        cJSON *conversation = cJSON_AddObjectToObject (status, "conversation");
        cJSON_AddStringToObject (conversation, "id", "conv-cg-wastandin");
        cJSON_AddStringToObject (cJSON_AddObjectToObject (conversation, "origin"), "type",
                                 "service");
        cJSON *pricing = cJSON_AddObjectToObject (status, "pricing");
        cJSON_AddBoolToObject (pricing, "billable", false);
        cJSON_AddStringToObject (pricing, "pricing_model", "PMP");
        cJSON_AddStringToObject (pricing, "category", "service");
    }
    cJSON_AddItemToArray (s_array (value, "statuses"), status);
}

//  Adds a message item to value, its wamid to ids.  Returns -1 when it
//  has no "from".  Lock held.
static int
s_add_message (wa_t *self, cJSON *value, cJSON *item, long long now_s, bool genuine,
               cJSON *ids)
{
    const char *from = wa_str (item, "from", NULL);
    if (!from || !*from)
        return -1;
    char wamid[96];
    const char *id = wa_str (item, "id", NULL);
    if (!id) {
        store_wamid (self, wamid, sizeof (wamid));
        id = wamid;
    }
    cJSON *contacts = s_array (value, "contacts");
    bool known = false;
    cJSON *contact;
    cJSON_ArrayForEach (contact, contacts)
    {
        known = known || strcmp (wa_str (contact, "wa_id", ""), from) == 0;
    }
    if (!known) {
        contact = cJSON_CreateObject ();
        cJSON_AddStringToObject (cJSON_AddObjectToObject (contact, "profile"), "name",
                                 wa_str (item, "name", "Test User"));
        cJSON_AddStringToObject (contact, "wa_id", from);
        cJSON_AddItemToArray (contacts, contact);
    }
    cJSON *raw = cJSON_GetObjectItem (item, "message");
    cJSON *msg =
        cJSON_IsObject (raw) ? cJSON_Duplicate (raw, true) : cJSON_CreateObject ();
    if (!cJSON_GetObjectItem (msg, "from"))
        cJSON_AddStringToObject (msg, "from", from);
    if (!cJSON_GetObjectItem (msg, "id"))
        cJSON_AddStringToObject (msg, "id", id);
    char ts[32];
    snprintf (ts, sizeof (ts), "%lld", now_s);
    if (!cJSON_GetObjectItem (msg, "timestamp"))
        cJSON_AddStringToObject (msg, "timestamp", wa_str (item, "timestamp", ts));
    const char *type = wa_str (item, "type", "text");
    if (!cJSON_IsObject (raw)) {
        const char *context = wa_str (item, "context_id", NULL);
        if (context) {
            cJSON *ctx = cJSON_AddObjectToObject (msg, "context");
            cJSON_AddStringToObject (ctx, "from",
                                     wa_str (item, "context_from", self->display_phone));
            cJSON_AddStringToObject (ctx, "id", context);
        }
        cJSON_AddStringToObject (msg, "type", type);
        if (strcmp (type, "image") == 0) {
            cJSON *image = cJSON_AddObjectToObject (msg, "image");
            const char *caption = wa_str (item, "text", NULL);
            if (caption)
                cJSON_AddStringToObject (image, "caption", caption);
            cJSON_AddStringToObject (image, "mime_type", "image/jpeg");
            cJSON_AddStringToObject (image, "sha256",
                                     "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
            char media[32];
            snprintf (media, sizeof (media), "%lld",
                      1000000000000000LL + self->next_id++);
            cJSON_AddStringToObject (image, "id", media);
        }
        else
            cJSON_AddStringToObject (cJSON_AddObjectToObject (msg, "text"), "body",
                                     wa_str (item, "text", ""));
    }
    cJSON_AddItemToArray (s_array (value, "messages"), msg);
    cJSON_AddItemToArray (ids, cJSON_CreateString (wa_str (msg, "id", id)));
    cJSON_DeleteItemFromObject (self->inbound, wa_str (msg, "id", id));
    cJSON_AddStringToObject (self->inbound, wa_str (msg, "id", id), from);
    if (genuine) {
        //  Windows are keyed by wa_id, as sends are: digits only.
        char wa_id[64];
        size_t n = 0;
        for (const char *p = from; *p && n + 1 < sizeof (wa_id); p++)
            if (*p >= '0' && *p <= '9')
                wa_id[n++] = *p;
        wa_id[n] = 0;
        store_open_window (self, wa_id);
    }
    return 0;
}

//  The push record with this id, or NULL.  Lock held.
static cJSON *
s_find (wa_t *self, long long id)
{
    cJSON *push;
    cJSON_ArrayForEach (push, self->pushes)
    {
        if ((long long) cJSON_GetNumberValue (cJSON_GetObjectItem (push, "id")) == id)
            return push;
    }
    return NULL;
}

static long long
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Queues a post of wire (the exact body) to target, signed as sig says;
//  takes ids.  Returns the record.  Lock held.
static cJSON *
s_enqueue (wa_t *self, const char *target, const char *wire, const char *sig, cJSON *ids,
           int max_attempts)
{
    cJSON *push = cJSON_CreateObject ();
    cJSON_AddNumberToObject (push, "id", (double) self->next_seq++);
    cJSON_AddStringToObject (push, "target", target);
    cJSON_AddStringToObject (push, "body", wire);
    cJSON_AddStringToObject (push, "sig", sig);
    cJSON_AddStringToObject (push, "state", "pending");
    cJSON_AddNumberToObject (push, "attempts", 0);
    cJSON_AddNumberToObject (push, "max_attempts", max_attempts);
    cJSON_AddArrayToObject (push, "statuses");
    cJSON_AddArrayToObject (push, "errors");
    cJSON_AddItemToObject (push, "ids", ids);
    cJSON_AddNumberToObject (push, "created_ms", (double) s_wall_ms ());
    cJSON_AddNumberToObject (push, "next_ms", (double) s_wall_ms ());
    cJSON_AddNumberToObject (push, "done_ms", 0);
    cJSON_AddItemToArray (self->pushes, push);
    store_count (self, "posts");
    store_save (self);
    pthread_cond_broadcast (&self->changed);
    return push;
}

void
push_statuses (wa_t *self, const char *wamid, const char *wa_id, int error_code,
               const char *error_title)
{
    if (!self->status_target[0])
        return;
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "object", "whatsapp_business_account");
    cJSON *entries = cJSON_AddArrayToObject (root, "entry");
    long long now_s = store_now_ms (self) / 1000;
    int n = 0;
    for (int i = 0; i < 4 && (error_code ? i < 1 : self->auto_statuses[i][0] != 0); i++) {
        cJSON *item = cJSON_CreateObject ();
        cJSON_AddStringToObject (item, "id", wamid);
        cJSON_AddStringToObject (item, "recipient_id", wa_id);
        cJSON_AddStringToObject (item, "status",
                                 error_code ? "failed" : self->auto_statuses[i]);
        if (error_code) {
            cJSON_AddNumberToObject (item, "error_code", error_code);
            cJSON_AddStringToObject (item, "error_title", error_title);
            cJSON_AddStringToObject (item, "error_details", error_title);
        }
        //  Meta sends each status in a post of its own.
        s_add_status (self, s_value (self, entries, 0, 0), item, now_s);
        cJSON_Delete (item);
        char *text = cJSON_PrintUnformatted (root);
        char *wire = s_meta_escape (text);
        cJSON_free (text);
        s_enqueue (self, self->status_target, wire, "good", cJSON_CreateArray (),
                   self->push_attempts);
        free (wire);
        cJSON_DeleteItemFromArray (entries, 0);
        n++;
    }
    cJSON_Delete (root);
}

int
push_control_inbound (wa_req_t *req, cJSON *body)
{
    wa_t *self = req->self;
    const char *target = wa_str (body, "target", NULL);
    if (!cJSON_IsObject (body) || !target || !*target)
        return wa_control_error (req, 400, "need target");
    const char *sig = cJSON_IsTrue (cJSON_GetObjectItem (body, "missing_sig")) ? "missing"
                      : cJSON_IsTrue (cJSON_GetObjectItem (body, "forge"))     ? "forged"
                                                                               : "good";
    bool genuine = strcmp (sig, "good") == 0;
    bool status_only = cJSON_IsTrue (cJSON_GetObjectItem (body, "status_only"));
    cJSON *batch = cJSON_GetObjectItem (body, "batch");
    cJSON *single = NULL;
    if (!cJSON_IsArray (batch)) {
        single = cJSON_CreateArray ();
        cJSON_AddItemReferenceToArray (single, body);
        batch = single;
    }
    pthread_mutex_lock (&self->lock);
    long long now_s = store_now_ms (self) / 1000;
    cJSON *ids = cJSON_CreateArray ();
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "object", "whatsapp_business_account");
    cJSON *entries = cJSON_AddArrayToObject (root, "entry");
    bool bad = false;
    cJSON *item;
    cJSON_ArrayForEach (item, batch)
    {
        cJSON *value =
            s_value (self, entries, s_index (item, "entry"), s_index (item, "change"));
        if (status_only || cJSON_IsString (cJSON_GetObjectItem (item, "status")))
            s_add_status (self, value, item, now_s);
        else if (s_add_message (self, value, item, now_s, genuine, ids) != 0)
            bad = true;
    }
    cJSON_Delete (single);
    const char *raw = wa_str (body, "raw", NULL);
    if (bad && !raw) {
        pthread_mutex_unlock (&self->lock);
        cJSON_Delete (root);
        cJSON_Delete (ids);
        return wa_control_error (req, 400, "every message needs from");
    }
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    char *wire = raw ? strdup (raw)
                 : cJSON_IsFalse (cJSON_GetObjectItem (body, "ascii"))
                     ? strdup (text)
                     : s_meta_escape (text);
    cJSON_free (text);

    cJSON *max = cJSON_GetObjectItem (body, "attempts");
    int max_attempts = cJSON_IsNumber (max) && max->valuedouble >= 1
                           ? (int) max->valuedouble
                           : self->push_attempts;
    cJSON *push = s_enqueue (self, target, wire, sig, ids, max_attempts);
    long long id = (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (push, "id"));
    free (wire);

    //  ids stays ours for the answer; push may go with a reset meanwhile.
    ids = cJSON_Duplicate (ids, true);
    bool wait = cJSON_IsTrue (cJSON_GetObjectItem (body, "wait"));
    while (wait && !atomic_load (&self->stopping) && push
           && strcmp (wa_str (push, "state", ""), "pending") == 0) {
        struct timespec until;
        clock_gettime (CLOCK_MONOTONIC, &until);
        until.tv_nsec += WA_SLICE_MS * 1000000L;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait (&self->changed, &self->lock, &until);
        push = s_find (self, id);
    }
    cJSON *answer = cJSON_CreateObject ();
    cJSON_AddNumberToObject (answer, "push", (double) id);
    cJSON_AddItemToObject (answer, "ids", ids);
    cJSON_AddStringToObject (answer, "state",
                             push ? wa_str (push, "state", "") : "reset");
    cJSON *statuses = cJSON_GetObjectItem (push, "statuses");
    int attempts = cJSON_GetArraySize (statuses);
    cJSON_AddNumberToObject (answer, "attempts", attempts);
    cJSON_AddNumberToObject (
        answer, "status",
        attempts ? cJSON_GetArrayItem (statuses, attempts - 1)->valuedouble : 0);
    cJSON_AddItemToObject (answer, "statuses", cJSON_Duplicate (statuses, true));
    pthread_mutex_unlock (&self->lock);
    return wa_send_root (req, 200, answer);
}

//  ---- Pusher -------------------------------------------------------------------

static double
s_num (cJSON *object, const char *name)
{
    return cJSON_GetNumberValue (cJSON_GetObjectItem (object, name));
}

static void
s_wait_ms (wa_t *self, long long ms)
{
    struct timespec until;
    clock_gettime (CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long) (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait (&self->changed, &self->lock, &until);
}

//  Posts the pending push that is due first, one at a time.
static void *
s_pusher (void *arg)
{
    wa_t *self = (wa_t *) arg;
    pthread_mutex_lock (&self->lock);
    while (!atomic_load (&self->stopping)) {
        cJSON *due = NULL, *push;
        cJSON_ArrayForEach (push, self->pushes)
        {
            if (strcmp (wa_str (push, "state", ""), "pending") == 0
                && (!due || s_num (push, "next_ms") < s_num (due, "next_ms")))
                due = push;
        }
        long long wait =
            due ? (long long) s_num (due, "next_ms") - s_wall_ms () : WA_SLICE_MS;
        if (wait > 0) {
            s_wait_ms (self, wait < WA_SLICE_MS ? wait : WA_SLICE_MS);
            continue;
        }
        double id = s_num (due, "id");
        char *url = strdup (wa_str (due, "target", ""));
        char *body = strdup (wa_str (due, "body", ""));
        char *sig = strdup (wa_str (due, "sig", "good"));
        pthread_mutex_unlock (&self->lock);

        char error[256] = "";
        long status = s_post (self, url, body, sig, error, sizeof (error));
        free (url);
        free (body);
        free (sig);

        pthread_mutex_lock (&self->lock);
        store_count (self, "attempts");
        cJSON_ArrayForEach (push, self->pushes)
        {
            if (s_num (push, "id") != id)
                continue;
            cJSON_AddItemToArray (cJSON_GetObjectItem (push, "statuses"),
                                  cJSON_CreateNumber ((double) status));
            cJSON_AddItemToArray (cJSON_GetObjectItem (push, "errors"),
                                  cJSON_CreateString (error));
            int attempts = cJSON_GetArraySize (cJSON_GetObjectItem (push, "statuses"));
            cJSON_SetNumberValue (cJSON_GetObjectItem (push, "attempts"), attempts);
            const char *state = status == 200 ? "delivered"
                                : attempts >= (int) s_num (push, "max_attempts")
                                    ? "failed"
                                    : NULL;
            if (state) {
                cJSON_ReplaceItemInObject (push, "state", cJSON_CreateString (state));
                cJSON_SetNumberValue (cJSON_GetObjectItem (push, "done_ms"),
                                      (double) s_wall_ms ());
            }
            else {
                int k =
                    attempts - 1 < self->retry_len ? attempts - 1 : self->retry_len - 1;
                cJSON_SetNumberValue (cJSON_GetObjectItem (push, "next_ms"),
                                      (double) (s_wall_ms () + self->retry_ms[k]));
            }
        }
        store_save (self);
        pthread_cond_broadcast (&self->changed);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

int
push_start (wa_t *self)
{
    return pthread_create (&self->pusher, NULL, s_pusher, self) == 0 ? 0 : -1;
}

void
push_stop (wa_t *self)
{
    pthread_mutex_lock (&self->lock);
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->pusher, NULL);
}
