/*  =========================================================================
    outbound - replies split, sent in order, retried, given up on; and the
    HTTP calls every platform makes

    A reply is split at the channel's limit (split.h: paragraph, line,
    word; code fences whole) and queued on its chat's lane.  A lane sends
    one part at a time, so a chat's parts and replies arrive in order
    while other chats go on.  A part that fails is retried as the platform
    says (SEND_RETRY: its retry_after, else a backoff), until the
    channel's sendAttempts are spent; a permanent failure (blocked,
    refused) ends the reply at once.  Each part sent is recorded
    (parts_sent), so a restart resends only what was not sent; the part
    that was going when the process died may arrive twice (there is no
    way to ask Telegram whether it went).
    =========================================================================
*/
#include "channel_internal.h"
#include "log.h"

#include <string.h>
#include <strings.h>

//  ---- HTTP calls -----------------------------------------------------------------

struct chan_http_t {
    self_t *self;
    CURL *easy;
    struct curl_slist *headers;
    char *request;  //  The body sent (owned)
    char *body;     //  The response so far (owned)
    size_t len, cap;
    bool too_large;
    char retry_after[32];  //  Retry-After header, if any
    char rate[512];        //  X-RateLimit-* headers, "Name: value\n" each
    size_t rate_len;
    chan_http_fn *fn;
    void *arg;
    void *handle;  //  In self->calls
};

static size_t
s_on_write (char *data, size_t size, size_t nmemb, void *arg)
{
    chan_http_t *c = (chan_http_t *) arg;
    size_t n = size * nmemb;
    if (c->len + n > CHAN_MAX_BODY) {
        c->too_large = true;
        return 0;
    }
    if (c->len + n + 1 > c->cap) {
        size_t cap = c->cap ? c->cap : 4096;
        while (cap < c->len + n + 1)
            cap *= 2;
        char *grown = (char *) realloc (c->body, cap);
        if (!grown)
            return 0;
        c->body = grown;
        c->cap = cap;
    }
    memcpy (c->body + c->len, data, n);
    c->len += n;
    c->body[c->len] = 0;
    return n;
}

static size_t
s_on_header (char *data, size_t size, size_t nmemb, void *arg)
{
    chan_http_t *c = (chan_http_t *) arg;
    size_t n = size * nmemb;
    if (n > 12 && !strncasecmp (data, "Retry-After:", 12)) {
        size_t i = 12, k = 0;
        while (i < n && data[i] == ' ')
            i++;
        while (i < n && k < sizeof (c->retry_after) - 1 && data[i] != '\r'
               && data[i] != '\n')
            c->retry_after[k++] = data[i++];
        c->retry_after[k] = 0;
    }
    else if (n > 12 && !strncasecmp (data, "X-RateLimit-", 12)
             && c->rate_len + n < sizeof (c->rate)) {
        memcpy (c->rate + c->rate_len, data, n);
        c->rate_len += n;
        c->rate[c->rate_len] = 0;
    }
    return n;
}

const char *
chan_http_header (self_t *self, const char *name, char *buf, size_t cap)
{
    const chan_http_t *c = self->answering;
    size_t nlen = strlen (name);
    for (const char *p = c ? c->rate : ""; *p;) {
        const char *eol = strchr (p, '\n');
        if (!eol)
            break;
        if (!strncasecmp (p, name, nlen) && p[nlen] == ':') {
            const char *v = p + nlen + 1;
            while (*v == ' ')
                v++;
            size_t len = 0;
            while (v + len < eol && v[len] != '\r')
                len++;
            if (len >= cap)
                return NULL;
            memcpy (buf, v, len);
            buf[len] = 0;
            return buf;
        }
        p = eol + 1;
    }
    return NULL;
}

static void
s_call_free (chan_http_t *c)
{
    //  The handle is kept for the next call (its caches with it): a handle
    //  made and freed per call was a good part of the actor's CPU.
    self_t *self = c->self;
    if (c->easy && self->n_spare < CHAN_SPARE_EASY) {
        curl_easy_reset (c->easy);
        self->spare[self->n_spare++] = c->easy;
    }
    else if (c->easy)
        curl_easy_cleanup (c->easy);
    curl_slist_free_all (c->headers);
    free (c->request);
    free (c->body);
    free (c);
}

static void
s_http_done (void *arg, CURL *easy, CURLcode result)
{
    self_t *self = (self_t *) arg;
    chan_http_t *c = NULL;
    curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &c);
    if (!c)
        return;
    zlistx_delete (self->calls, c->handle);
    long status = 0;
    curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &status);
    const char *error = NULL;
    if (c->too_large) {
        status = 0;
        error = "the response was too large";
    }
    else if (result != CURLE_OK) {
        status = 0;
        error = curl_easy_strerror (result);
    }
    self->answering = c;
    if (c->fn)
        c->fn (c->arg, status, c->body ? c->body : "", c->len, error,
               c->retry_after[0] ? c->retry_after : NULL);
    self->answering = NULL;
    s_call_free (c);
}

static curl_loop_t *
s_curl (self_t *self)
{
    if (!self->curl) {
        self->curl = curl_loop_new (self->loop, s_http_done, self);
        //  Read once: the environment does not change under a gateway.
        const char *file = getenv ("SSL_CERT_FILE");
        const char *dir = getenv ("SSL_CERT_DIR");
        self->ca_file = file && *file ? file : NULL;
        self->ca_dir = dir && *dir ? dir : NULL;
        if (!self->curl)
            log_error ("channel", "libcurl could not be loaded: platforms unreachable");
        if (!self->calls)
            self->calls = zlistx_new ();
    }
    return self->curl;
}

chan_http_t *
chan_http_post (self_t *self, const char *url, const char *body,
                const char *const *headers, int timeout_ms, chan_http_fn *fn, void *arg)
{
    return chan_http_call (self, url, body ? body : "", headers, timeout_ms, fn, arg);
}

chan_http_t *
chan_http_call (self_t *self, const char *url, const char *body,
                const char *const *headers, int timeout_ms, chan_http_fn *fn, void *arg)
{
    curl_loop_t *loop = s_curl (self);
    if (!loop)
        return NULL;
    chan_http_t *c = (chan_http_t *) calloc (1, sizeof (chan_http_t));
    if (!c)
        return NULL;
    c->self = self;
    c->fn = fn;
    c->arg = arg;
    c->easy = self->n_spare ? self->spare[--self->n_spare] : curl_easy_init ();
    c->request = strdup (body ? body : "");
    c->headers = curl_slist_append (NULL, body ? "Content-Type: application/json"
                                               : "Accept: application/json");
    for (const char *const *h = headers; h && *h; h++)
        c->headers = curl_slist_append (c->headers, *h);
    if (!c->easy || !c->request || !c->headers) {
        s_call_free (c);
        return NULL;
    }
    CURL *e = c->easy;
    curl_easy_setopt (e, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt (e, CURLOPT_POST, 1L);
        curl_easy_setopt (e, CURLOPT_POSTFIELDS, c->request);
        curl_easy_setopt (e, CURLOPT_POSTFIELDSIZE, (long) strlen (c->request));
    }
    else
        curl_easy_setopt (e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt (e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt (e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt (e, CURLOPT_PRIVATE, c);
    curl_easy_setopt (e, CURLOPT_TIMEOUT_MS, (long) timeout_ms);
    curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (e, CURLOPT_USERAGENT, "clawgate");
    //  Platform APIs are https (or loopback stand-ins); no redirects.
    curl_easy_setopt (e, CURLOPT_PROTOCOLS_STR, "http,https");
    //  The CA store OpenSSL's own variables name, as for the WebSocket
    //  client (wsclient.c), so one setting serves every platform call.
    if (self->ca_file)
        curl_easy_setopt (e, CURLOPT_CAINFO, self->ca_file);
    if (self->ca_dir)
        curl_easy_setopt (e, CURLOPT_CAPATH, self->ca_dir);
    if (curl_loop_add (loop, e)) {
        s_call_free (c);
        return NULL;
    }
    c->handle = zlistx_add_end (self->calls, c);
    return c;
}

void
chan_http_cancel (self_t *self, chan_http_t **call_p)
{
    chan_http_t *c = *call_p;
    if (!c)
        return;
    curl_loop_remove (self->curl, c->easy);
    zlistx_delete (self->calls, c->handle);
    s_call_free (c);
    *call_p = NULL;
}

void
chan_http_fini (self_t *self)
{
    if (self->calls) {
        for (chan_http_t *c = (chan_http_t *) zlistx_first (self->calls); c;
             c = (chan_http_t *) zlistx_next (self->calls)) {
            curl_loop_remove (self->curl, c->easy);
            s_call_free (c);
        }
        zlistx_destroy (&self->calls);
    }
    while (self->n_spare)
        curl_easy_cleanup (self->spare[--self->n_spare]);
}

//  ---- Lanes ------------------------------------------------------------------------

static int
s_on_due (zloop_t *loop, int timer_id, void *arg)
{
    chan_lanes_kick ((chan_t *) arg);
    return 0;
}

//  Lanes of ch go again in delay_ms: a wait the platform named (429, a
//  spent bucket) ends on time, not on the next tick.
static void
s_due_in (chan_t *ch, int64_t delay_ms)
{
    zloop_timer (ch->self->loop, (size_t) (delay_ms > 0 ? delay_ms + 1 : 1), 1, s_on_due,
                 ch);
}

static void
s_lane_go (lane_t *lane);

//  job is over: recorded as done (or failed, with error), and freed.
static void
s_finish (chan_t *ch, job_t *job, const char *error)
{
    self_t *self = ch->self;
    bool failed = error || job->failed;
    if (chanstore_end (self->store, job->row, failed ? "failed" : "done",
                       error         ? error
                       : job->failed ? job->reply
                                     : NULL))
        log_error ("channel", "%s: the end of %s could not be stored", ch->platform->id,
                   job->key);
    if (error) {
        ch->failed++;
        snprintf (ch->last_error, sizeof (ch->last_error), "reply to %s given up: %s",
                  job->chat_id, error);
        ch->last_error_at = chan_now ();
        log_warn ("channel", "%s: reply to %s given up: %s", ch->platform->id, job->key,
                  error);
    }
    if (ch->platform->finished)
        ch->platform->finished (ch, job);
    lane_t *lane = job->lane;
    if (lane) {
        void *h = zlistx_find (lane->jobs, job);
        if (h)
            zlistx_delete (lane->jobs, h);
    }
    chan_job_free (self, job);
    if (lane)
        s_lane_go (lane);
}

static void
s_lane_free (lane_t *lane)
{
    if (lane->waiting)
        zlistx_delete (lane->ch->waiting, lane->waiting);
    zlistx_destroy (&lane->jobs);
    free (lane->chat_id);
    free (lane);
}

static void
s_lane_go (lane_t *lane)
{
    chan_t *ch = lane->ch;
    if (lane->sending || !ch->running)
        return;
    job_t *job = (job_t *) zlistx_first (lane->jobs);
    if (!job) {
        zhashx_delete (ch->lanes, lane->chat_id);  //  Frees it
        return;
    }
    if (job->retry_at > zclock_mono ())
        return;
    if (job->parts_sent >= job->n_parts) {
        s_finish (ch, job, NULL);
        return;
    }
    int hold = ch->platform->hold ? ch->platform->hold (ch, job->chat_id) : 0;
    if (hold > 0) {
        //  The platform's rate limit for this chat is spent: the tick
        //  sends it when due, with no call made to be refused.
        job->retry_at = zclock_mono () + hold;
        s_due_in (ch, hold);
        return;
    }
    if (ch->calls >= CHAN_MAX_CALLS) {
        //  No slot: wait in line for one (s_slots_free hands them out).
        if (!lane->waiting)
            lane->waiting = zlistx_add_end (ch->waiting, lane);
        return;
    }
    lane->sending = true;
    ch->calls++;
    if (ch->platform->send (ch, job)) {
        lane->sending = false;
        ch->calls--;
        job->retry_at = zclock_mono () + chan_backoff_ms (ch, ++job->attempts);
    }
}

//  A call ended: lanes waiting for a slot go, in the order they waited.
static void
s_slots_free (chan_t *ch)
{
    while (ch->calls < CHAN_MAX_CALLS && ch->waiting && zlistx_size (ch->waiting)) {
        lane_t *lane = (lane_t *) zlistx_first (ch->waiting);
        zlistx_delete (ch->waiting, lane->waiting);
        lane->waiting = NULL;
        s_lane_go (lane);
    }
}

void
chan_typing (chan_t *ch, const char *chat_id)
{
    if (!ch->platform->typing || ch->calls >= CHAN_MAX_CALLS / 2)
        return;
    ch->calls++;
    if (ch->platform->typing (ch, chat_id))
        ch->calls--;
}

void
chan_call_done (void *arg, long status, const char *body, size_t len, const char *error,
                const char *retry_after)
{
    chan_t *ch = (chan_t *) arg;
    ch->calls--;
    s_slots_free (ch);
}

static void
s_lane_destructor (void **item)
{
    if (*item) {
        s_lane_free ((lane_t *) *item);
        *item = NULL;
    }
}

void
chan_reply (chan_t *ch, job_t *job)
{
    if (!job->parts) {
        size_t len = job->reply ? strlen (job->reply) : 0;
        job->parts =
            split_text (job->reply ? job->reply : "", len, ch->limit, ch->platform->unit);
        job->n_parts = 0;
        while (job->parts && job->parts[job->n_parts])
            job->n_parts++;
    }
    if (!ch->lanes)
        return;
    if (!ch->waiting)
        ch->waiting = zlistx_new ();
    zhashx_set_destructor (ch->lanes, s_lane_destructor);
    lane_t *lane = (lane_t *) zhashx_lookup (ch->lanes, job->chat_id);
    if (!lane) {
        lane = (lane_t *) calloc (1, sizeof (lane_t));
        lane->ch = ch;
        lane->chat_id = strdup (job->chat_id);
        lane->jobs = zlistx_new ();
        zhashx_insert (ch->lanes, job->chat_id, lane);
    }
    job->lane = lane;
    zlistx_add_end (lane->jobs, job);
    s_lane_go (lane);
}

const char *
chan_part (const job_t *job)
{
    return job->parts && job->parts_sent < job->n_parts ? job->parts[job->parts_sent]
                                                        : "";
}

void
chan_sent (chan_t *ch, job_t *job, send_result_t result, int retry_ms, const char *error)
{
    self_t *self = ch->self;
    lane_t *lane = job->lane;
    lane->sending = false;
    ch->calls--;
    s_slots_free (ch);
    int64_t now = zclock_mono ();
    int attempts = ch->cfg ? ch->cfg->send_attempts : 10;
    if (result == SEND_REFUSED) {
        //  Given up like any permanent refusal, and the channel is in error
        //  until a send goes through again.
        const char *was = ch->status && !streq (ch->status, "error") ? ch->status : NULL;
        chan_set_status (ch, "error", error);
        ch->refused_from = was;
        result = SEND_PERMANENT;
    }
    switch (result) {
    case SEND_OK:
        //  Sending works again: an error a refused send caused is over.
        if (ch->refused_from && ch->status && streq (ch->status, "error"))
            chan_set_status (ch, ch->refused_from, NULL);
        job->parts_sent++;
        job->attempts = 0;
        ch->outbound++;
        ch->last_outbound_at = chan_now ();
        if (job->parts_sent >= job->n_parts) {
            //  The last part and the end: one commit.
            bool batch = chanstore_begin (self->store) == 0;
            chanstore_set_sent (self->store, job->row, job->parts_sent);
            s_finish (ch, job, NULL);  //  Records the end (in the batch)
            if (batch && chanstore_commit (self->store))
                log_error ("channel", "%s: a reply's end could not be recorded",
                           ch->platform->id);
            return;
        }
        if (chanstore_set_sent (self->store, job->row, job->parts_sent))
            log_error ("channel", "%s: a part sent to %s could not be recorded",
                       ch->platform->id, job->chat_id);
        break;
    case SEND_MIGRATE:
        if (job->new_chat) {
            log_info ("channel", "%s: chat %s moved to %s", ch->platform->id,
                      job->chat_id, job->new_chat);
            chanstore_set_chat (self->store, job->row, job->new_chat);
            free (job->chat_id);
            job->chat_id = job->new_chat;
            job->new_chat = NULL;
        }
        break;
    case SEND_RETRY:
        //  A wait the platform named is not a failure of ours.
        if (retry_ms <= 0 && ++job->attempts >= attempts) {
            s_finish (ch, job, error ? error : "the platform kept failing");
            return;
        }
        job->retry_at =
            now + (retry_ms > 0 ? retry_ms : chan_backoff_ms (ch, job->attempts));
        log_info ("channel", "%s: sending to %s again in %d ms: %s", ch->platform->id,
                  job->chat_id, (int) (job->retry_at - now), error ? error : "retry");
        if (retry_ms > 0)
            s_due_in (ch, retry_ms);
        return;  //  Else the tick sends it when due
    case SEND_PERMANENT:
    case SEND_REFUSED:  //  Made SEND_PERMANENT above
        s_finish (ch, job, error ? error : "the platform refused it");
        return;
    }
    s_lane_go (lane);
}

void
chan_lanes_kick (chan_t *ch)
{
    if (!ch->lanes || !ch->running)
        return;
    zlistx_t *lanes = actor_hash_values (ch->lanes);
    for (lane_t *l = (lane_t *) zlistx_first (lanes); l;
         l = (lane_t *) zlistx_next (lanes))
        s_lane_go (l);
    zlistx_destroy (&lanes);
}

void
chan_lanes_free (chan_t *ch)
{
    if (ch->lanes) {
        zhashx_set_destructor (ch->lanes, s_lane_destructor);
        zhashx_purge (ch->lanes);
    }
    zlistx_destroy (&ch->waiting);
}
