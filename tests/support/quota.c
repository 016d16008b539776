/*  =========================================================================
    quota - helpers for the rate-limit and concurrency tests (see quota.h)

    Moved here from tests/integration/ratelimit_common.h.
    =========================================================================
*/
#include "quota.h"

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Checks a 429 from the limits: code rate_limited, a sane Retry-After.
void
quota_assert_429 (const http_resp_t *r, long max_retry_after)
{
    cr_assert_eq (r->status, 429, "status %ld, body %s", r->status, r->body);
    cr_assert (strstr (r->body, "\"code\":\"rate_limited\""), "%s", r->body);
    cr_assert (strstr (r->body, "\"type\":\"client_error\""), "%s", r->body);
    long ra = http_header_long (r->headers, "Retry-After");
    cr_assert (ra >= 1 && ra <= max_retry_after, "Retry-After %ld not in 1..%ld:\n%s", ra,
               max_retry_after, r->headers);
}

//  ---- Streaming runs held open ----------------------------------------------------

static size_t
s_stream_header (char *ptr, size_t size, size_t nmemb, void *arg)
{
    quota_stream_t *s = (quota_stream_t *) arg;
    size_t n = size * nmemb;
    if (n > 9 && !strncmp (ptr, "HTTP/", 5)) {
        const char *sp = memchr (ptr, ' ', n);
        if (sp)
            atomic_store (&s->status, strtol (sp + 1, NULL, 10));
    }
    size_t have = strlen (s->headers);
    if (have + n < sizeof (s->headers)) {
        memcpy (s->headers + have, ptr, n);
        s->headers[have + n] = 0;
    }
    return n;
}

static size_t
s_stream_body (char *ptr, size_t size, size_t nmemb, void *arg)
{
    quota_stream_t *s = (quota_stream_t *) arg;
    atomic_store (&s->started, true);
    return atomic_load (&s->stop) ? 0 : size * nmemb;
}

static int
s_stream_progress (void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    return atomic_load (&((quota_stream_t *) arg)->stop) ? 1 : 0;
}

static void *
s_stream_run (void *arg)
{
    quota_stream_t *s = (quota_stream_t *) arg;
    CURL *c = curl_easy_init ();
    struct curl_slist *h = curl_slist_append (NULL, s->auth);
    h = curl_slist_append (h, "Content-Type: application/json");
    curl_easy_setopt (c, CURLOPT_URL, s->url);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, s_stream_header);
    curl_easy_setopt (c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_stream_body);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt (c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (c, CURLOPT_XFERINFOFUNCTION, s_stream_progress);
    curl_easy_setopt (c, CURLOPT_XFERINFODATA, s);
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 120000L);
    curl_easy_perform (c);
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
    atomic_store (&s->finished, true);
    return NULL;
}

//  Starts POST base/v1/agent/run/stream echoing `words` words (with the
//  local/echo provider's delay each) on a thread of its own, and waits up
//  to timeout_ms for its answer to begin.  Returns the HTTP status (0: no
//  answer in time).  A 200 stream stays open until quota_stream_stop.
long
quota_stream_start (quota_stream_t *s, const char *base, const char *token, int words,
                    int timeout_ms)
{
    memset (s, 0, sizeof (*s));
    snprintf (s->url, sizeof (s->url), "%s/v1/agent/run/stream", base);
    snprintf (s->auth, sizeof (s->auth), "Authorization: Bearer %s", token);
    size_t n = (size_t) snprintf (s->body, sizeof (s->body), "{\"message\":\"");
    for (int i = 0; i < words && n + 16 < sizeof (s->body); i++)
        n += (size_t) snprintf (s->body + n, sizeof (s->body) - n, "%sw%d", i ? " " : "",
                                i);
    snprintf (s->body + n, sizeof (s->body) - n, "\"}");
    cr_assert_eq (pthread_create (&s->thread, NULL, s_stream_run, s), 0);
    s->running = true;
    long long until = harness_now_ms () + timeout_ms;
    while (!atomic_load (&s->started) && !atomic_load (&s->finished)
           && harness_now_ms () < until)
        usleep (10000);
    return atomic_load (&s->status);
}

//  Hangs up (if still open) and joins the thread.
void
quota_stream_stop (quota_stream_t *s)
{
    if (!s->running)
        return;
    atomic_store (&s->stop, true);
    pthread_join (s->thread, NULL);
    s->running = false;
}
