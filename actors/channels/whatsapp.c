/*  =========================================================================
    whatsapp - the WhatsApp channel: the Cloud API (webhook in, Graph out)

    Meta pushes to /v1/channels/whatsapp/webhook.  Its verification GET
    (hub.mode=subscribe, hub.verify_token, hub.challenge) is answered with
    the challenge when the token is ours (compared in constant time), 403
    otherwise.  A POST must carry X-Hub-Signature-256: "sha256=" and the hex
    HMAC-SHA256 of the raw body with the app secret; it is checked before
    the body is parsed (401 and nothing read if it is wrong or missing).
    Then every text message of every entry and change is stored, unique on
    its wamid (a push Meta retries is answered once), and only then is
    the push answered 200.  Status-only pushes are answered 200 and store
    nothing; a "failed" status is recorded in lastError.

    Replies: POST <baseUrl>/<phoneNumberId>/messages with the access
    token, split under 4096, the first part in reply to the user's message
    (context).  Throughput errors (130429, 131056, 80007), 5xx and the
    network are retried; every other error is permanent and recorded: the
    24-hour window (131047: only a template may be sent), an undeliverable
    number (131026), a bad parameter (100), an expired token (190, which
    also marks the channel error).  "typing" marks the user's last message
    read and shows the typing indicator (one call, as Meta has it).

    There is no connection to keep: the channel is connected once started.
    The access token is in a header, never in a URL; nothing here logs it.
    =========================================================================
*/
#include "ids.h"
#include "channel_internal.h"
#include "chat_parse.h"
#include "json_in.h"
#include "log.h"
#include "msg_names.h"
#include "ssl_lazy.h"

#include <string.h>

#define WA_DEFAULT_BASE "https://graph.facebook.com/v21.0"
#define WA_CALL_MS 30000
#define WA_MAX_LAST 4096  //  Chats whose last message id is kept (for typing)
#define WA_MAX_SENT 8192  //  wamids of sent parts kept (forgotten all at once)

typedef struct {
    char url[1200];   //  <baseUrl>/<phoneNumberId>/messages
    char auth[1100];  //  "Authorization: Bearer <token>" (secret)
    zhashx_t *last;   //  Chat id -> its last inbound wamid (owned strings)
    zhashx_t *sent;   //  wamids of parts sent (a later failed status counts)
} wa_t;

static wa_t *
s_wa (chan_t *ch)
{
    return (wa_t *) ch->transport;
}

static void
s_start (chan_t *ch)
{
    wa_t *wa = s_wa (ch);
    if (!wa) {
        wa = (wa_t *) calloc (1, sizeof (wa_t));
        if (!wa || !(wa->last = zhashx_new ()) || !(wa->sent = zhashx_new ())) {
            if (wa)
                zhashx_destroy (&wa->last);
            free (wa);
            chan_set_status (ch, "error", "out of memory");
            return;
        }
        zhashx_set_destructor (wa->last, (zhashx_destructor_fn *) zstr_free);
        ch->transport = wa;
    }
    const char *base;
    int blen = chan_base_url (ch, &base);
    snprintf (wa->url, sizeof (wa->url), "%.*s/%s/messages", blen, base,
              ch->cfg->phone_number_id ? ch->cfg->phone_number_id : "");
    snprintf (wa->auth, sizeof (wa->auth), "Authorization: Bearer %s",
              ch->cfg->access_token ? ch->cfg->access_token : "");
    //  Meta pushes; nothing to connect to.
    chan_set_status (ch, "connected", NULL);
}

static void
s_stop (chan_t *ch)
{
    (void) ch;
}

static void
s_fini (chan_t *ch)
{
    wa_t *wa = s_wa (ch);
    if (wa) {
        zhashx_destroy (&wa->last);
        zhashx_destroy (&wa->sent);
    }
    free (wa);
    ch->transport = NULL;
}

//  ---- Webhook -------------------------------------------------------------------------

//  The verification GET: the challenge if the token is ours.
static int
s_verify (chan_t *ch, const webhook_in_t *in, webhook_out_t *out)
{
    char mode[32], token[300], challenge[sizeof (out->challenge)];
    const char *q = in->query ? in->query : "";
    const char *want = ch->cfg->verify_token;
    if (chan_query_get (q, "hub.mode", mode, sizeof (mode)) && streq (mode, "subscribe")
        && chan_query_get (q, "hub.verify_token", token, sizeof (token)) && want
        && ids_secret_equal (token, strlen (token), want)
        && chan_query_get (q, "hub.challenge", challenge, sizeof (challenge))
        && *challenge) {
        snprintf (out->challenge, sizeof (out->challenge), "%s", challenge);
        log_info ("channel", "whatsapp: webhook verified");
        return 200;
    }
    log_warn ("channel", "whatsapp: a verification with a wrong token or mode refused");
    snprintf (out->err, sizeof (out->err), "Wrong hub.mode or hub.verify_token");
    return 403;
}

//  A push's messages, gathered for one chan_ingest (strings lent by the
//  parsed push).
typedef struct {
    chan_t *ch;
    inbound_t *items;
    size_t n, cap;
} wa_batch_t;

static int
s_collect (void *arg, const inbound_t *in)
{
    wa_batch_t *b = (wa_batch_t *) arg;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 8;
        inbound_t *grown = (inbound_t *) realloc (b->items, cap * sizeof (inbound_t));
        if (!grown)
            return -1;
        b->items = grown;
        b->cap = cap;
    }
    b->items[b->n++] = *in;
    //  Its last message, for the read receipt while the run goes.
    wa_t *wa = s_wa (b->ch);
    if (zhashx_size (wa->last) < WA_MAX_LAST || zhashx_lookup (wa->last, in->chat_id))
        zhashx_update (wa->last, in->chat_id, strdup (in->key));
    return 0;
}

//  A failed delivery Meta reports later (statuses[].errors): counted and
//  in lastError once, and only for a part this gateway sent (statuses come
//  again, and for messages sent by other means).
static void
s_failed (void *arg, const char *id, const char *to, int code, const char *title)
{
    wa_batch_t *b = (wa_batch_t *) arg;
    wa_t *wa = s_wa (b->ch);
    if (!*id || !zhashx_lookup (wa->sent, id))
        return;
    zhashx_delete (wa->sent, id);
    char why[256];
    snprintf (why, sizeof (why), "a reply to %s was not delivered: %d %s", to, code,
              title);
    b->ch->failed++;
    chan_set_status (b->ch, b->ch->status ? b->ch->status : "connected", why);
}

static int
s_webhook (chan_t *ch, const webhook_in_t *in, webhook_out_t *out)
{
    if (in->get)
        return s_verify (ch, in, out);
    const char *secret = ch->cfg->app_secret;
    const char *sig = in->signature;
    if (!sig || strncmp (sig, "sha256=", 7) || !secret
        || !chan_signature_ok (secret, NULL, 0, in->body, in->len, sig + 7)) {
        log_warn ("channel",
                  "whatsapp: a push with a wrong or missing signature refused");
        snprintf (out->err, sizeof (out->err), "Wrong or missing X-Hub-Signature-256");
        return 401;
    }
    cJSON *root =
        json_in_parse (in->body, in->len, CHAN_MAX_BODY, JSON_IN_OBJECT, NULL, NULL);
    if (!root) {
        snprintf (out->err, sizeof (out->err), "The body is not a JSON object");
        return 400;
    }
    //  Meta batches: entries of changes of messages, stored in one go.
    wa_batch_t b = {.ch = ch};
    if (wa_parse_push (root, s_collect, s_failed, &b) < 0) {
        free (b.items);
        cJSON_Delete (root);
        snprintf (out->err, sizeof (out->err), "Out of memory");
        return 503;
    }
    int rc = chan_ingest (ch, b.items, b.n, -1, &out->stored);
    free (b.items);
    cJSON_Delete (root);
    if (rc) {
        //  Not stored: not answered 200 either; Meta delivers it again.
        snprintf (out->err, sizeof (out->err), "The channel store failed");
        return 503;
    }
    return 200;
}

//  ---- Sending ---------------------------------------------------------------------------

//  A Graph API error: its code, and a sentence for lastError.
static int
s_error (long status, const char *body, size_t len, const char *error, char *why,
         size_t cap)
{
    if (!status) {
        snprintf (why, cap, "messages: %s", error ? error : "no answer");
        return 0;
    }
    cJSON *root = json_in_parse (body, len, CHAN_MAX_BODY, JSON_IN_OBJECT, NULL, NULL);
    const cJSON *err = cJSON_GetObjectItemCaseSensitive (root, "error");
    const cJSON *code = cJSON_GetObjectItemCaseSensitive (err, "code");
    const cJSON *message = cJSON_GetObjectItemCaseSensitive (err, "message");
    const cJSON *details = cJSON_GetObjectItemCaseSensitive (
        cJSON_GetObjectItemCaseSensitive (err, "error_data"), "details");
    int c = cJSON_IsNumber (code) ? code->valueint : 0;
    snprintf (why, cap, "messages: HTTP %ld, code %d: %s%s%s", status, c,
              cJSON_IsString (message) ? message->valuestring : "",
              cJSON_IsString (details) ? " " : "",
              cJSON_IsString (details) ? details->valuestring : "");
    cJSON_Delete (root);
    return c;
}

static void
s_on_sent (void *arg, long status, const char *body, size_t len, const char *error,
           const char *retry_after)
{
    job_t *job = (job_t *) arg;
    chan_t *ch = job->ch;
    job->platform_data = NULL;
    if (status == 200) {
        //  Its wamid: a failed status Meta sends later is about it.
        wa_t *wa = s_wa (ch);
        cJSON *root =
            json_in_parse (body, len, CHAN_MAX_BODY, JSON_IN_OBJECT, NULL, NULL);
        const char *id = cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (
            cJSON_GetArrayItem (cJSON_GetObjectItemCaseSensitive (root, "messages"), 0),
            "id"));
        if (id && strlen (id) <= 200) {
            if (zhashx_size (wa->sent) >= WA_MAX_SENT)
                zhashx_purge (wa->sent);
            zhashx_insert (wa->sent, id, (void *) 1);
        }
        cJSON_Delete (root);
        chan_sent (ch, job, SEND_OK, 0, NULL);
        return;
    }
    char why[400];
    int code = s_error (status, body, len, error, why, sizeof (why));
    int wait_ms = chan_retry_after_ms (retry_after, 0);
    if (code == 130429 || code == 131056 || code == 80007 || code == 4 || status == 429)
        //  Throughput or pair rate: later.  131056 allows ~1 message per 6 s.
        chan_sent (ch, job, SEND_RETRY,
                   wait_ms > 0      ? wait_ms
                   : code == 131056 ? 6000
                                    : 0,
                   why);
    else if (status == 0 || status >= 500)
        chan_sent (ch, job, SEND_RETRY, 0, why);
    else
        chan_sent (ch, job, code == 190 || status == 401 ? SEND_REFUSED : SEND_PERMANENT,
                   0, why);
}

static int
s_send (chan_t *ch, job_t *job)
{
    wa_t *wa = s_wa (ch);
    cJSON *b = cJSON_CreateObject ();
    cJSON_AddStringToObject (b, "messaging_product", "whatsapp");
    cJSON_AddStringToObject (b, "recipient_type", "individual");
    cJSON_AddStringToObject (b, "to", job->chat_id);
    cJSON_AddStringToObject (b, "type", "text");
    cJSON *text = cJSON_AddObjectToObject (b, "text");
    cJSON_AddStringToObject (text, "body", chan_part (job));
    cJSON_AddBoolToObject (text, "preview_url", false);
    if (job->parts_sent == 0 && *job->reply_to)
        cJSON_AddStringToObject (cJSON_AddObjectToObject (b, "context"), "message_id",
                                 job->reply_to);
    char *body = cJSON_PrintUnformatted (b);
    cJSON_Delete (b);
    const char *headers[] = {wa->auth, NULL};
    job->platform_data = body ? chan_http_post (ch->self, wa->url, body, headers,
                                                WA_CALL_MS, s_on_sent, job)
                              : NULL;
    free (body);
    return job->platform_data ? 0 : -1;
}

//  Marks the chat's last message read and shows "typing" (up to 25 s).
static int
s_typing (chan_t *ch, const char *chat_id)
{
    wa_t *wa = s_wa (ch);
    const char *last = (const char *) zhashx_lookup (wa->last, chat_id);
    if (!last)
        return -1;  //  Not known since the start: nothing to mark
    cJSON *b = cJSON_CreateObject ();
    cJSON_AddStringToObject (b, "messaging_product", "whatsapp");
    cJSON_AddStringToObject (b, "status", "read");
    cJSON_AddStringToObject (b, "message_id", last);
    cJSON_AddStringToObject (cJSON_AddObjectToObject (b, "typing_indicator"), "type",
                             "text");
    char *body = cJSON_PrintUnformatted (b);
    cJSON_Delete (b);
    const char *headers[] = {wa->auth, NULL};
    chan_http_t *c = body ? chan_http_post (ch->self, wa->url, body, headers, WA_CALL_MS,
                                            chan_call_done, ch)
                          : NULL;
    free (body);
    return c ? 0 : -1;
}

static void
s_status (chan_t *ch, mp_writer_t *w)
{
    if (ch->cfg && ch->cfg->phone_number_id)
        mp_kv_str (w, "phoneNumberId", ch->cfg->phone_number_id);
}

const platform_t platform_whatsapp = {.id = "whatsapp",
                                      .name = "WhatsApp",
                                      .default_base_url = WA_DEFAULT_BASE,
                                      .limit = 4096,
                                      .unit = SPLIT_CODEPOINTS,
                                      .people = true,
                                      .start = s_start,
                                      .stop = s_stop,
                                      .fini = s_fini,
                                      .webhook = s_webhook,
                                      .send = s_send,
                                      .typing = s_typing,
                                      .status = s_status};
