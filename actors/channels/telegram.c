/*  =========================================================================
    telegram - the Telegram channel: Bot API over libcurl

    Start: getMe (who the bot is, and whether the token works), then long
    polling getUpdates (mode "polling", the default) or, in mode
    "webhook", setWebhook when webhookUrl is given, after which Telegram
    pushes to POST /v1/channels/telegram/webhook with the secret header.
    Polling confirms updates by asking for offset = last update_id + 1,
    and only once the updates are stored (chan_ingest): an update the
    gateway never stored is delivered again.

    Failures: a transport failure or 5xx marks the channel disconnected
    and polls again after a backoff with jitter; 429 waits retry_after;
    409 (another poller, or a webhook set) is not a reconnect: a webhook
    is deleted, another poller is waited out and reported in lastError;
    401/404 (a bad token) is an error, tried again at the slowest pace.
    A poll that never returns is cut at its timeout plus half of it
    (2 to 15 s).

    Replies: sendMessage, the first part replying to the user's message;
    429 retry_after, 5xx and the network are retried, 403 (blocked) and
    400 (too long, bad request) are permanent, a migrate_to_chat_id is
    followed.  sendChatAction "typing" while a run goes.  The bot token is
    in every URL: URLs are never logged.
    =========================================================================
*/
#include "telegram_parse.h"
#include "ids.h"
#include "json_in.h"
#include "log.h"
#include "msg_names.h"

#include <string.h>

#define TG_DEFAULT_BASE "https://api.telegram.org"
#define TG_CALL_MS 30000            //  A call other than a poll
#define TG_POLL_GRACE_MIN_MS 2000   //  A poll's grace past its timeout:
#define TG_POLL_GRACE_MAX_MS 15000  //  half the timeout, within these
#define TG_CONFLICT_MS 3000         //  Telegram answers 409 once per 3 s at most

typedef struct {
    chan_t *ch;
    char base[1024];    //  <baseUrl>/bot<token>/ (secret: never logged)
    chan_http_t *call;  //  getMe / getUpdates / setWebhook / deleteWebhook
    int64_t offset;     //  Next getUpdates offset, 0: none yet
    int64_t bot_id;
    char username[80];
    char name[160];
    bool have_me;
    int failures;  //  Transport failures in a row
} tg_t;

static tg_t *
s_tg (chan_t *ch)
{
    return (tg_t *) ch->transport;
}

static bool
s_polling (const chan_t *ch)
{
    return !ch->cfg->mode || strcmp (ch->cfg->mode, "webhook");
}

//  An answer's description and parameters.
typedef struct {
    bool ok;
    char description[200];
    int64_t retry_after;  //  s, 0 if none
    char migrate_to[32];  //  Chat id, "" if none
    char why[320];        //  For lastError: method, status, description
    cJSON *root;          //  Owned
} tg_answer_t;

static void
s_why (char *buf, size_t cap, const char *method, long status, const tg_answer_t *a,
       const char *error);

//  Reads a call's answer into a (s_answer_fini frees it), and says in
//  a->why what went wrong, if anything, never naming the URL.
static void
s_answer (tg_answer_t *a, const char *method, long status, const char *body, size_t len,
          const char *error)
{
    memset (a, 0, sizeof (*a));
    a->root = json_in_parse (body, len, CHAN_MAX_BODY, JSON_IN_OBJECT | JSON_IN_NUL_OK,
                             NULL, NULL);
    if (!a->root) {
        s_why (a->why, sizeof (a->why), method, status, a, error);
        return;
    }
    a->ok = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (a->root, "ok"));
    const cJSON *d = cJSON_GetObjectItemCaseSensitive (a->root, "description");
    if (cJSON_IsString (d))
        snprintf (a->description, sizeof (a->description), "%s", d->valuestring);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive (a->root, "parameters");
    const cJSON *ra = cJSON_GetObjectItemCaseSensitive (p, "retry_after");
    if (cJSON_IsNumber (ra) && ra->valuedouble > 0 && ra->valuedouble < 86400)
        a->retry_after = (int64_t) ra->valuedouble;
    const cJSON *mig = cJSON_GetObjectItemCaseSensitive (p, "migrate_to_chat_id");
    if (cJSON_IsNumber (mig) && mig->valuedouble > -1e16 && mig->valuedouble < 1e16)
        snprintf (a->migrate_to, sizeof (a->migrate_to), "%lld",
                  (long long) mig->valuedouble);
    s_why (a->why, sizeof (a->why), method, status, a, error);
}

static void
s_answer_fini (tg_answer_t *a)
{
    cJSON_Delete (a->root);
    a->root = NULL;
}

//  A sentence for lastError: status and description (never the URL).
static void
s_why (char *buf, size_t cap, const char *method, long status, const tg_answer_t *a,
       const char *error)
{
    if (!status)
        snprintf (buf, cap, "%s: %s", method, error ? error : "no answer");
    else
        snprintf (buf, cap, "%s: HTTP %ld %s", method, status,
                  a->description[0] ? a->description : "");
}

//  Calls method with body (NULL: {}; not taken); fn (arg) gets the answer.
//  Returns the call, or NULL if it could not start (fn is not called).
static chan_http_t *
s_call (chan_t *ch, const char *method, const cJSON *body, int timeout_ms,
        chan_http_fn *fn, void *arg)
{
    char url[1200];
    snprintf (url, sizeof (url), "%s%s", s_tg (ch)->base, method);
    char *text = body ? cJSON_PrintUnformatted (body) : NULL;
    chan_http_t *c =
        chan_http_post (ch->self, url, text ? text : "{}", NULL, timeout_ms, fn, arg);
    free (text);
    return c;
}

//  s_call for the transport's own calls: the call in *slot (may be NULL),
//  and a call that cannot start answered to fn as a failure.
static void
s_post (chan_t *ch, const char *method, cJSON *body, int timeout_ms, chan_http_fn *fn,
        void *arg, chan_http_t **slot)
{
    chan_http_t *c = s_call (ch, method, body, timeout_ms, fn, arg);
    if (slot)
        *slot = c;
    if (!c && fn)
        fn (arg, 0, "", 0, "the call could not start", NULL);
}

//  A transport failure (no answer, 5xx): disconnected, next after a backoff.
static void
s_failed (chan_t *ch, const char *why, void (*next) (chan_t *))
{
    tg_t *tg = s_tg (ch);
    tg->failures++;
    chan_set_status (ch, "disconnected", why);
    chan_later (ch, chan_backoff_ms (ch, tg->failures), next);
}

static void
s_get_me (chan_t *ch);
static void
s_poll (chan_t *ch);

//  ---- Polling -------------------------------------------------------------------

typedef struct {
    inbound_t *items;
    char **strings;  //  Owned copies the items point into
    size_t n, cap, n_strings;
} batch_t;

static char *
s_keep (batch_t *b, const char *s)
{
    char *copy = strdup (s ? s : "");
    if (copy)
        b->strings[b->n_strings++] = copy;
    return copy ? copy : (char *) "";
}

static int
s_collect (void *arg, const inbound_t *in)
{
    batch_t *b = (batch_t *) arg;
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;
        inbound_t *items = (inbound_t *) realloc (b->items, cap * sizeof (inbound_t));
        char **strings = (char **) realloc (b->strings, cap * 6 * sizeof (char *));
        if (items)
            b->items = items;
        if (strings)
            b->strings = strings;
        if (!items || !strings)
            return -1;
        b->cap = cap;
    }
    inbound_t *it = &b->items[b->n++];
    *it = *in;
    it->key = s_keep (b, in->key);
    it->chat_id = s_keep (b, in->chat_id);
    it->sender_id = s_keep (b, in->sender_id);
    it->sender_name = s_keep (b, in->sender_name);
    it->reply_to = s_keep (b, in->reply_to);
    it->text = s_keep (b, in->text);
    return 0;
}

static void
s_batch_fini (batch_t *b)
{
    for (size_t i = 0; i < b->n_strings; i++)
        free (b->strings[i]);
    free (b->strings);
    free (b->items);
}

//  Reads updates from body and stores them, with the poll's next offset
//  when list (a getUpdates answer) in the same transaction.  0, or -1 if
//  not stored (err says why; parsed is false if the body was not
//  Telegram's).
static int
s_take (chan_t *ch, const char *body, size_t len, bool list, int64_t *last_id,
        int *stored, bool *parsed, char *err, size_t cap)
{
    tg_t *tg = s_tg (ch);
    tg_bot_t bot = {tg->bot_id, tg->username};
    batch_t b = {0};
    int64_t last = -1;
    int n = tg_parse_updates (body, len, list, &bot, s_collect, &b, &last, err, cap);
    if (last_id)
        *last_id = last;
    if (parsed)
        *parsed = n >= 0;
    int rc =
        n < 0 ? -1
              : chan_ingest (ch, b.items, b.n, list && last >= 0 ? last + 1 : -1, stored);
    if (n >= 0 && rc)
        snprintf (err, cap, "the channel store failed");
    s_batch_fini (&b);
    return rc;
}

static void
s_on_poll (void *arg, long status, const char *body, size_t len, const char *error,
           const char *retry_after)
{
    chan_t *ch = (chan_t *) arg;
    tg_t *tg = s_tg (ch);
    tg->call = NULL;
    if (status == 200) {
        //  The usual answer is read once, by the update parser.
        int64_t last = -1;
        bool parsed = false;
        char err[200];
        if (s_take (ch, body, len, true, &last, NULL, &parsed, err, sizeof (err)) == 0) {
            tg->failures = 0;
            if (last >= 0)
                tg->offset = last + 1;  //  Stored with the updates
            chan_set_status (ch, "connected", NULL);
            s_poll (ch);
            return;
        }
        if (parsed) {
            //  Not stored: not confirmed either; Telegram sends them again.
            s_failed (ch, err, s_poll);
            return;
        }
    }
    tg_answer_t a;
    s_answer (&a, "getUpdates", status, body, len, error);
    const char *why = a.why;
    s_answer_fini (&a);
    if (status == 409) {
        //  Not a reconnect: a webhook is in the way, or another poller.
        chan_set_status (ch, "connected", why);
        if (strstr (why, "webhook")) {
            log_warn ("channel", "telegram: a webhook is set; deleting it to poll");
            s_post (ch, "deleteWebhook", NULL, TG_CALL_MS, NULL, NULL, NULL);
        }
        chan_later (ch, TG_CONFLICT_MS, s_poll);
    }
    else if (status == 429)
        chan_later (ch, (int) (a.retry_after > 0 ? a.retry_after * 1000 : 1000), s_poll);
    else if (status == 401 || status == 404) {
        chan_set_status (ch, "error", why);
        chan_later (ch, ch->cfg->retry_max_ms, s_get_me);
    }
    else
        s_failed (ch, why, s_poll);
    (void) retry_after;
}

static void
s_poll (chan_t *ch)
{
    tg_t *tg = s_tg (ch);
    if (tg->call || !ch->running)
        return;
    cJSON *body = cJSON_CreateObject ();
    if (tg->offset)
        cJSON_AddNumberToObject (body, "offset", (double) tg->offset);
    cJSON_AddNumberToObject (body, "timeout", ch->cfg->poll_timeout_s);
    cJSON *allowed = cJSON_AddArrayToObject (body, "allowed_updates");
    cJSON_AddItemToArray (allowed, cJSON_CreateString ("message"));
    //  A poll that never returns is cut after its timeout and a grace.
    int timeout = ch->cfg->poll_timeout_s * 1000;
    int grace = timeout / 2 < TG_POLL_GRACE_MIN_MS   ? TG_POLL_GRACE_MIN_MS
                : timeout / 2 > TG_POLL_GRACE_MAX_MS ? TG_POLL_GRACE_MAX_MS
                                                     : timeout / 2;
    s_post (ch, "getUpdates", body, timeout + grace, s_on_poll, ch, &tg->call);
    cJSON_Delete (body);
}

//  ---- Start: getMe, then poll or set the webhook ------------------------------------

static void
s_on_set_webhook (void *arg, long status, const char *body, size_t len, const char *error,
                  const char *retry_after)
{
    chan_t *ch = (chan_t *) arg;
    tg_t *tg = s_tg (ch);
    tg->call = NULL;
    tg_answer_t a;
    s_answer (&a, "setWebhook", status, body, len, error);
    const char *why = a.why;
    bool ok = status == 200 && a.ok;
    s_answer_fini (&a);
    if (ok) {
        tg->failures = 0;
        chan_set_status (ch, "connected", NULL);
    }
    else
        s_failed (ch, why, s_get_me);
    (void) retry_after;
}

static void
s_on_me (void *arg, long status, const char *body, size_t len, const char *error,
         const char *retry_after)
{
    chan_t *ch = (chan_t *) arg;
    tg_t *tg = s_tg (ch);
    tg->call = NULL;
    tg_answer_t a;
    s_answer (&a, "getMe", status, body, len, error);
    const char *why = a.why;
    const cJSON *me = cJSON_GetObjectItemCaseSensitive (a.root, "result");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive (me, "id");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive (me, "username");
    const cJSON *first = cJSON_GetObjectItemCaseSensitive (me, "first_name");
    if (status == 200 && a.ok && cJSON_IsNumber (id)) {
        tg->bot_id = (int64_t) id->valuedouble;
        snprintf (tg->username, sizeof (tg->username), "%s",
                  cJSON_IsString (user) ? user->valuestring : "");
        snprintf (tg->name, sizeof (tg->name), "%s",
                  cJSON_IsString (first) ? first->valuestring : "");
        tg->have_me = true;
        s_answer_fini (&a);
        log_info ("channel", "telegram: bot @%s (%lld), %s", tg->username,
                  (long long) tg->bot_id, s_polling (ch) ? "long polling" : "webhook");
        if (s_polling (ch)) {
            tg->failures = 0;
            chan_set_status (ch, "connected", NULL);
            s_poll (ch);
        }
        else if (ch->cfg->webhook_url) {
            cJSON *b = cJSON_CreateObject ();
            cJSON_AddStringToObject (b, "url", ch->cfg->webhook_url);
            cJSON_AddStringToObject (b, "secret_token", ch->cfg->webhook_secret);
            cJSON *allowed = cJSON_AddArrayToObject (b, "allowed_updates");
            cJSON_AddItemToArray (allowed, cJSON_CreateString ("message"));
            s_post (ch, "setWebhook", b, TG_CALL_MS, s_on_set_webhook, ch, &tg->call);
            cJSON_Delete (b);
        }
        else {
            tg->failures = 0;
            chan_set_status (ch, "connected", NULL);
        }
        return;
    }
    s_answer_fini (&a);
    if (status == 401 || status == 404) {
        chan_set_status (ch, "error", why);
        chan_later (ch, ch->cfg->retry_max_ms, s_get_me);
    }
    else if (status == 429)
        chan_later (ch, (int) (a.retry_after > 0 ? a.retry_after * 1000 : 1000),
                    s_get_me);
    else
        s_failed (ch, why, s_get_me);
    (void) retry_after;
}

static void
s_get_me (chan_t *ch)
{
    tg_t *tg = s_tg (ch);
    if (!tg->call && ch->running)
        s_post (ch, "getMe", NULL, TG_CALL_MS, s_on_me, ch, &tg->call);
}

static void
s_start (chan_t *ch)
{
    tg_t *tg = s_tg (ch);
    if (!tg) {
        tg = (tg_t *) calloc (1, sizeof (tg_t));
        if (!tg) {
            chan_set_status (ch, "error", "out of memory");
            return;
        }
        ch->transport = tg;
        tg->ch = ch;
    }
    const char *base;
    int blen = chan_base_url (ch, &base);
    snprintf (tg->base, sizeof (tg->base), "%.*s/bot%s/", blen, base,
              ch->cfg->bot_token ? ch->cfg->bot_token : "");
    int64_t offset;
    if (chanstore_cursor (ch->self->store, ch->platform->id, &offset) == 1)
        tg->offset = offset;
    s_get_me (ch);
}

static void
s_stop (chan_t *ch)
{
    tg_t *tg = s_tg (ch);
    if (!tg)
        return;
    chan_http_cancel (ch->self, &tg->call);
}

static void
s_fini (chan_t *ch)
{
    free (ch->transport);
    ch->transport = NULL;
}

//  ---- Webhook ---------------------------------------------------------------------

static int
s_webhook (chan_t *ch, const webhook_in_t *in, webhook_out_t *out)
{
    if (s_polling (ch) || in->get) {
        snprintf (out->err, sizeof (out->err),
                  s_polling (ch) ? "The Telegram channel polls; it takes no webhook"
                                 : "Telegram pushes with POST");
        return 404;
    }
    const char *want = ch->cfg->webhook_secret;
    const char *secret = in->secret;
    if (!want || !*want || !secret || !ids_secret_equal (secret, strlen (secret), want)) {
        log_warn ("channel",
                  "telegram: webhook push with a wrong or missing secret refused");
        snprintf (out->err, sizeof (out->err),
                  "Wrong or missing X-Telegram-Bot-Api-Secret-Token");
        return 401;
    }
    if (s_take (ch, in->body, in->len, false, NULL, &out->stored, NULL, out->err,
                sizeof (out->err))) {
        //  Not stored: Telegram retries a push that is not answered 2xx.
        return strstr (out->err, "store") ? 503 : 400;
    }
    return 200;
}

//  ---- Sending -----------------------------------------------------------------------

//  chat_id as Telegram takes it: a number, or "@channelname".
static cJSON *
s_chat (const char *chat_id)
{
    char *end;
    long long v = strtoll (chat_id, &end, 10);
    if (*chat_id && !*end)
        return cJSON_CreateNumber ((double) v);
    return cJSON_CreateString (chat_id);
}

static void
s_on_sent (void *arg, long status, const char *body, size_t len, const char *error,
           const char *retry_after)
{
    job_t *job = (job_t *) arg;
    chan_t *ch = job->ch;
    job->platform_data = NULL;
    tg_answer_t a;
    s_answer (&a, "sendMessage", status, body, len, error);
    const char *why = a.why;
    if (status == 200 && a.ok)
        chan_sent (ch, job, SEND_OK, 0, NULL);
    else if (status == 429)
        chan_sent (ch, job, SEND_RETRY,
                   (int) (a.retry_after > 0 ? a.retry_after : 1) * 1000, why);
    else if (status == 400 && a.migrate_to[0]) {
        free (job->new_chat);
        job->new_chat = strdup (a.migrate_to);
        chan_sent (ch, job, SEND_MIGRATE, 0, why);
    }
    else if (status == 400 || status == 403)
        chan_sent (ch, job, SEND_PERMANENT, 0, why);
    else
        chan_sent (ch, job, SEND_RETRY, 0, why);
    s_answer_fini (&a);
    (void) retry_after;
}

static int
s_send (chan_t *ch, job_t *job)
{
    cJSON *b = cJSON_CreateObject ();
    cJSON_AddItemToObject (b, "chat_id", s_chat (job->chat_id));
    cJSON_AddStringToObject (b, "text", chan_part (job));
    char *end;
    long long reply_to = strtoll (job->reply_to, &end, 10);
    if (job->parts_sent == 0 && *job->reply_to && !*end) {
        cJSON *rp = cJSON_AddObjectToObject (b, "reply_parameters");
        cJSON_AddNumberToObject (rp, "message_id", (double) reply_to);
        cJSON_AddBoolToObject (rp, "allow_sending_without_reply", true);
    }
    job->platform_data = s_call (ch, "sendMessage", b, TG_CALL_MS, s_on_sent, job);
    cJSON_Delete (b);
    return job->platform_data ? 0 : -1;
}

static int
s_typing (chan_t *ch, const char *chat_id)
{
    cJSON *b = cJSON_CreateObject ();
    cJSON_AddItemToObject (b, "chat_id", s_chat (chat_id));
    cJSON_AddStringToObject (b, "action", "typing");
    chan_http_t *c = s_call (ch, "sendChatAction", b, TG_CALL_MS, chan_call_done, ch);
    cJSON_Delete (b);
    return c ? 0 : -1;
}

static void
s_status (chan_t *ch, mp_writer_t *w)
{
    tg_t *tg = s_tg (ch);
    if (!tg || !tg->have_me)
        return;
    mp_key (w, MK_bot);
    mp_map_begin (w);
    mp_kv_int (w, MK_id, tg->bot_id);
    mp_kv_str (w, "username", tg->username);
    mp_kv_str (w, MK_name, tg->name);
    mp_map_end (w);
}

const platform_t platform_telegram = {.id = "telegram",
                                      .name = "Telegram",
                                      .default_base_url = TG_DEFAULT_BASE,
                                      .limit = 4096,
                                      .unit = SPLIT_UTF16,
                                      .default_mode = "polling",
                                      .people = true,
                                      .start = s_start,
                                      .stop = s_stop,
                                      .fini = s_fini,
                                      .webhook = s_webhook,
                                      .send = s_send,
                                      .typing = s_typing,
                                      .status = s_status};
