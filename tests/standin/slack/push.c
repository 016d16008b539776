/*  =========================================================================
    push - cg_slackstandin's Events API driver: POSTs an event_callback to
    the gateway's webhook signed as Slack signs, and retries as Slack does

    Part of cg_slackstandin (see slstandin.c).  Each push runs in its own
    thread with a curl multi handle, because Slack's timeout retry does not
    wait for the first request: when an attempt has no answer after
    --http-timeout-ms, retry n is sent --retry-delays-ms[n-1] later with
    X-Slack-Retry-Num: n and X-Slack-Retry-Reason: http_timeout while the
    first may still run.  A non-2xx answer (or a failed connection) is
    retried the same way with http_error (connection_failed), unless it
    carried X-Slack-No-Retry: 1.  Retries stop at the first 2xx.  Every
    request is signed afresh: X-Slack-Request-Timestamp and
    X-Slack-Signature: v0=<hex HMAC-SHA256(secret, "v0:" ts ":" body)>.

    A push record (in self->pushes) is {id, event_id, url, outcome
    ("running", "ok", "late" when the only 2xx came after the timeout,
    "failed"), status (last HTTP status, 0 = none), body (the body of the
    2xx, else of the last answer), attempts: [{retry_num, reason, status,
    body, ms, timed_out, no_retry}]}.
    =========================================================================
*/
#include "slstandin.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PUSH_BODY_CAP 4096  //  Answer bytes kept per attempt

void
push_sign (const char *secret, const char *ts, const char *body, char out[80])
{
    size_t len = strlen (ts) + strlen (body) + 5;
    char *base = malloc (len);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    if (base) {
        snprintf (base, len, "v0:%s:%s", ts, body);
        HMAC (EVP_sha256 (), secret, (int) strlen (secret), (unsigned char *) base,
              strlen (base), mac, &mac_len);
        free (base);
    }
    strcpy (out, "v0=");
    for (unsigned int i = 0; i < mac_len && i < 32; i++)
        sprintf (out + 3 + 2 * i, "%02x", mac[i]);
}

//  ---- One request --------------------------------------------------------------

typedef struct {
    CURL *easy;
    struct curl_slist *headers;
    int num;             //  0 for the first request, then the retry number
    const char *reason;  //  Its X-Slack-Retry-Reason
    long long start;     //  Monotonic ms
    bool timed_out;      //  No answer within the timeout (a retry followed)
    bool done;
    bool no_retry;  //  The answer had X-Slack-No-Retry: 1
    char body[PUSH_BODY_CAP + 1];
    size_t body_len;
} attempt_t;

static size_t
s_on_body (char *ptr, size_t size, size_t nmemb, void *arg)
{
    attempt_t *a = (attempt_t *) arg;
    size_t n = size * nmemb, room = PUSH_BODY_CAP - a->body_len;
    memcpy (a->body + a->body_len, ptr, n < room ? n : room);
    a->body_len += n < room ? n : room;
    a->body[a->body_len] = 0;
    return n;
}

static size_t
s_on_header (char *ptr, size_t size, size_t nmemb, void *arg)
{
    attempt_t *a = (attempt_t *) arg;
    size_t n = size * nmemb;
    if (n >= 18 && strncasecmp (ptr, "X-Slack-No-Retry:", 17) == 0) {
        const char *v = ptr + 17;
        while (*v == ' ')
            v++;
        a->no_retry = *v == '1';
    }
    return n;
}

//  Sets a up to POST body to url with fresh signature headers.
static int
s_prepare (sl_t *self, attempt_t *a, const char *url, const char *body,
           const push_opts_t *opts, long timeout_ms)
{
    a->easy = curl_easy_init ();
    if (!a->easy)
        return -1;
    char ts[32], line[160], sig[80];
    snprintf (ts, sizeof (ts), "%lld", (long long) time (NULL) - (opts->stale ? 600 : 0));
    push_sign (opts->forge ? "forged-secret" : self->secret, ts, body, sig);
    a->headers = curl_slist_append (NULL, "Content-Type: application/json");
    a->headers = curl_slist_append (a->headers, "Expect:");
    a->headers = curl_slist_append (
        a->headers, "User-Agent: Slackbot 1.0 (+https://api.slack.com/robots)");
    snprintf (line, sizeof (line), "X-Slack-Request-Timestamp: %s", ts);
    a->headers = curl_slist_append (a->headers, line);
    if (!opts->unsigned_) {
        snprintf (line, sizeof (line), "X-Slack-Signature: %s", sig);
        a->headers = curl_slist_append (a->headers, line);
    }
    if (a->num + opts->retry_base > 0) {
        snprintf (line, sizeof (line), "X-Slack-Retry-Num: %d",
                  a->num + opts->retry_base);
        a->headers = curl_slist_append (a->headers, line);
        snprintf (line, sizeof (line), "X-Slack-Retry-Reason: %s",
                  a->num ? a->reason : "http_timeout");
        a->headers = curl_slist_append (a->headers, line);
    }
    curl_easy_setopt (a->easy, CURLOPT_URL, url);
    curl_easy_setopt (a->easy, CURLOPT_POST, 1L);
    curl_easy_setopt (a->easy, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt (a->easy, CURLOPT_HTTPHEADER, a->headers);
    curl_easy_setopt (a->easy, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (a->easy, CURLOPT_WRITEDATA, a);
    curl_easy_setopt (a->easy, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (a->easy, CURLOPT_HEADERDATA, a);
    curl_easy_setopt (a->easy, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt (a->easy, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt (a->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (a->easy, CURLOPT_PRIVATE, a);
    a->start = sl_mono_ms ();
    return 0;
}

static void
s_release (attempt_t *a)
{
    if (a->easy)
        curl_easy_cleanup (a->easy);
    curl_slist_free_all (a->headers);
    a->easy = NULL;
    a->headers = NULL;
}

cJSON *
push_once (sl_t *self, const char *url, const char *body, const push_opts_t *opts)
{
    attempt_t *a = calloc (1, sizeof (attempt_t));
    cJSON *root = cJSON_CreateObject ();
    long status = 0;
    if (a && s_prepare (self, a, url, body, opts, self->http_timeout_ms + 10000L) == 0) {
        CURLcode rc = curl_easy_perform (a->easy);
        if (rc == CURLE_OK)
            curl_easy_getinfo (a->easy, CURLINFO_RESPONSE_CODE, &status);
        else
            cJSON_AddStringToObject (root, "error", curl_easy_strerror (rc));
    }
    cJSON_AddNumberToObject (root, "status", status);
    cJSON_AddStringToObject (root, "body", a ? a->body : "");
    if (a)
        s_release (a);
    free (a);
    return root;
}

//  ---- A push with retries ----------------------------------------------------------

typedef struct {
    sl_t *self;
    int index;  //  In self->pushes
    char *url;
    char *body;
    push_opts_t opts;
} push_job_t;

//  Appends attempt a's outcome to the record.  Lock held.
static void
s_record (cJSON *record, attempt_t *a, long status, const char *error)
{
    cJSON *entry = cJSON_CreateObject ();
    cJSON_AddNumberToObject (entry, "retry_num", a->num);
    cJSON_AddStringToObject (entry, "reason", a->reason);
    cJSON_AddNumberToObject (entry, "status", status);
    cJSON_AddStringToObject (entry, "body", a->body);
    cJSON_AddNumberToObject (entry, "ms", (double) (sl_mono_ms () - a->start));
    cJSON_AddBoolToObject (entry, "timed_out", a->timed_out);
    cJSON_AddBoolToObject (entry, "no_retry", a->no_retry);
    if (error)
        cJSON_AddStringToObject (entry, "error", error);
    cJSON_AddItemToArray (cJSON_GetObjectItem (record, "attempts"), entry);
    cJSON_ReplaceItemInObject (record, "status", cJSON_CreateNumber (status));
    cJSON *body = cJSON_GetObjectItem (record, "body");
    bool have_ok = cJSON_IsTrue (cJSON_GetObjectItem (record, "got_2xx"));
    if (!have_ok || !body)
        cJSON_ReplaceItemInObject (record, "body", cJSON_CreateString (a->body));
    if (status >= 200 && status <= 299) {
        cJSON_ReplaceItemInObject (record, "got_2xx", cJSON_CreateBool (true));
        if (!a->timed_out)
            cJSON_ReplaceItemInObject (record, "in_time", cJSON_CreateBool (true));
    }
}

static void *
s_push_run (void *arg)
{
    push_job_t *job = (push_job_t *) arg;
    sl_t *self = job->self;
    attempt_t attempts[1 + SL_MAX_RETRIES];
    memset (attempts, 0, sizeof (attempts));
    int made = 0, max = 1 + job->opts.retries, running = 0;
    long long next_at = sl_mono_ms ();
    const char *next_reason = "";
    bool success = false;
    CURLM *multi = curl_multi_init ();
    while (multi && !atomic_load (&self->stopping)) {
        long long now = sl_mono_ms ();
        if (next_at >= 0 && now >= next_at && made < max && !success) {
            attempt_t *a = &attempts[made];
            a->num = made;
            a->reason = next_reason;
            if (s_prepare (self, a, job->url, job->body, &job->opts,
                           self->http_timeout_ms + 10000L)
                == 0) {
                curl_multi_add_handle (multi, a->easy);
                running++;
            }
            made++;
            next_at = -1;
        }
        int still = 0;
        curl_multi_perform (multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read (multi, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            attempt_t *a = NULL;
            curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &a);
            long status = 0;
            const char *error = NULL;
            if (msg->data.result == CURLE_OK)
                curl_easy_getinfo (a->easy, CURLINFO_RESPONSE_CODE, &status);
            else
                error = curl_easy_strerror (msg->data.result);
            bool ok = status >= 200 && status <= 299;
            pthread_mutex_lock (&self->lock);
            s_record (cJSON_GetArrayItem (self->pushes, job->index), a, status, error);
            pthread_mutex_unlock (&self->lock);
            curl_multi_remove_handle (multi, a->easy);
            s_release (a);
            a->done = true;
            running--;
            if (ok)
                success = true;
            else if (!a->timed_out && !(status && a->no_retry) && next_at < 0
                     && made < max) {
                next_at = sl_mono_ms () + self->retry_delays[made - 1];
                next_reason = status ? "http_error" : "connection_failed";
            }
        }
        now = sl_mono_ms ();
        long long wake = now + 50;
        for (int i = 0; i < made; i++) {
            attempt_t *a = &attempts[i];
            if (a->done || a->timed_out || !a->easy)
                continue;
            long long due = a->start + self->http_timeout_ms;
            if (now >= due) {
                a->timed_out = true;
                if (!success && next_at < 0 && made < max) {
                    next_at = now + self->retry_delays[made - 1];
                    next_reason = "http_timeout";
                }
            }
            else if (due < wake)
                wake = due;
        }
        if (next_at >= 0 && next_at < wake)
            wake = next_at;
        if (running == 0 && (success || next_at < 0 || made >= max))
            break;
        int wait = (int) (wake - now);
        curl_multi_poll (multi, NULL, 0, wait < 1 ? 1 : wait, NULL);
    }
    for (int i = 0; i < made; i++)
        if (attempts[i].easy) {
            curl_multi_remove_handle (multi, attempts[i].easy);
            s_release (&attempts[i]);
        }
    curl_multi_cleanup (multi);
    pthread_mutex_lock (&self->lock);
    cJSON *record = cJSON_GetArrayItem (self->pushes, job->index);
    bool got = cJSON_IsTrue (cJSON_GetObjectItem (record, "got_2xx"));
    bool in_time = cJSON_IsTrue (cJSON_GetObjectItem (record, "in_time"));
    cJSON_ReplaceItemInObject (record, "outcome",
                               cJSON_CreateString (in_time ? "ok"
                                                   : got   ? "late"
                                                           : "failed"));
    store_count (self->counters, in_time ? "pushes_ok" : "pushes_failed", 1);
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    free (job->url);
    free (job->body);
    free (job);
    return NULL;
}

int
push_start (sl_t *self, const char *url, const char *event_id, const char *payload,
            const push_opts_t *opts)
{
    if (self->push_thread_len == self->push_thread_cap) {
        size_t cap = self->push_thread_cap ? self->push_thread_cap * 2 : 32;
        pthread_t *grown = realloc (self->push_threads, cap * sizeof (pthread_t));
        if (!grown)
            return -1;
        self->push_threads = grown;
        self->push_thread_cap = cap;
    }
    push_job_t *job = calloc (1, sizeof (push_job_t));
    if (!job)
        return -1;
    job->self = self;
    job->index = cJSON_GetArraySize (self->pushes);
    job->url = strdup (url);
    job->body = strdup (payload);
    job->opts = *opts;
    if (job->opts.retries < 0)
        job->opts.retries = 0;
    if (job->opts.retries > SL_MAX_RETRIES)
        job->opts.retries = SL_MAX_RETRIES;
    cJSON *record = cJSON_CreateObject ();
    cJSON_AddNumberToObject (record, "id", job->index + 1);
    cJSON_AddStringToObject (record, "event_id", event_id);
    cJSON_AddStringToObject (record, "url", url);
    cJSON_AddStringToObject (record, "outcome", "running");
    cJSON_AddNumberToObject (record, "status", 0);
    cJSON_AddStringToObject (record, "body", "");
    cJSON_AddBoolToObject (record, "got_2xx", false);
    cJSON_AddBoolToObject (record, "in_time", false);
    cJSON_AddArrayToObject (record, "attempts");
    cJSON_AddItemToArray (self->pushes, record);
    store_count (self->counters, "pushes", 1);
    if (pthread_create (&self->push_threads[self->push_thread_len], NULL, s_push_run, job)
        != 0) {
        cJSON_ReplaceItemInObject (record, "outcome", cJSON_CreateString ("failed"));
        free (job->url);
        free (job->body);
        free (job);
        return -1;
    }
    self->push_thread_len++;
    return job->index + 1;
}

void
push_join_all (sl_t *self)
{
    pthread_mutex_lock (&self->lock);
    size_t n = self->push_thread_len;
    pthread_mutex_unlock (&self->lock);
    for (size_t i = 0; i < n; i++)
        pthread_join (self->push_threads[i], NULL);
}
