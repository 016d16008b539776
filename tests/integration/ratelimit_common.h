/*  =========================================================================
    ratelimit_common - helpers shared by test_ratelimit*.c: plain requests
    that keep their headers, and streaming runs held open on a thread of
    their own until the test ends them (the client hangs up, which aborts
    the run and frees its slot).

    Header-only, like runs_common.h: tests/CMakeLists.txt compiles only
    support/harness.c into the support library.
    =========================================================================
*/
#ifndef CG_RATELIMIT_COMMON_H
#define CG_RATELIMIT_COMMON_H

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define RL_UNUSED __attribute__ ((unused))

static RL_UNUSED long long
rl_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  GET base+path with token as Bearer; returns the status (0: no answer).
//  Headers and body land in r when it is not NULL (then http_resp_free).
static RL_UNUSED long
rl_get (const char *base, const char *path, const char *token, http_resp_t *r)
{
    char url[512], auth[256] = "";
    snprintf (url, sizeof (url), "%s%s", base, path);
    if (token)
        snprintf (auth, sizeof (auth), "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    http_resp_t own;
    http_resp_t *out = r ? r : &own;
    http_do ("GET", url, token ? headers : NULL, NULL, 0, out);
    long status = out->status;
    if (!r)
        http_resp_free (&own);
    return status;
}

//  The integer value of header name in raw response headers, or -1.
static RL_UNUSED long
rl_header (const char *headers, const char *name)
{
    size_t n = strlen (name);
    for (const char *p = headers; p && *p;) {
        if (!strncasecmp (p, name, n) && p[n] == ':')
            return strtol (p + n + 1, NULL, 10);
        const char *nl = strchr (p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return -1;
}

//  Checks a 429 from the limits: code rate_limited, a sane Retry-After.
static RL_UNUSED void
rl_assert_429 (const http_resp_t *r, long max_retry_after)
{
    cr_assert_eq (r->status, 429, "status %ld, body %s", r->status, r->body);
    cr_assert (strstr (r->body, "\"code\":\"rate_limited\""), "%s", r->body);
    cr_assert (strstr (r->body, "\"type\":\"client_error\""), "%s", r->body);
    long ra = rl_header (r->headers, "Retry-After");
    cr_assert (ra >= 1 && ra <= max_retry_after,
               "Retry-After %ld not in 1..%ld:\n%s", ra, max_retry_after,
               r->headers);
}

//  ---- Streaming runs held open ----------------------------------------------------

typedef struct {
    char url[160];
    char auth[200];
    char body[8192];
    pthread_t thread;
    bool running;                    //  Thread made, not joined
    atomic_bool stop;                //  Set: hang up
    atomic_bool started;             //  First body bytes arrived
    atomic_bool finished;            //  The transfer is over
    atomic_long status;              //  From the status line
    char headers[2048];              //  Response headers
} rl_stream_t;

static size_t
rl_stream_header (char *ptr, size_t size, size_t nmemb, void *arg)
{
    rl_stream_t *s = (rl_stream_t *) arg;
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
rl_stream_body (char *ptr, size_t size, size_t nmemb, void *arg)
{
    rl_stream_t *s = (rl_stream_t *) arg;
    atomic_store (&s->started, true);
    return atomic_load (&s->stop) ? 0 : size * nmemb;
}

static int
rl_stream_progress (void *arg, curl_off_t a, curl_off_t b, curl_off_t c,
                    curl_off_t d)
{
    return atomic_load (&((rl_stream_t *) arg)->stop) ? 1 : 0;
}

static void *
rl_stream_run (void *arg)
{
    rl_stream_t *s = (rl_stream_t *) arg;
    CURL *c = curl_easy_init ();
    struct curl_slist *h = curl_slist_append (NULL, s->auth);
    h = curl_slist_append (h, "Content-Type: application/json");
    curl_easy_setopt (c, CURLOPT_URL, s->url);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, s->body);
    curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, rl_stream_header);
    curl_easy_setopt (c, CURLOPT_HEADERDATA, s);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, rl_stream_body);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt (c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt (c, CURLOPT_XFERINFOFUNCTION, rl_stream_progress);
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
//  answer in time).  A 200 stream stays open until rl_stream_stop.
static RL_UNUSED long
rl_stream_start (rl_stream_t *s, const char *base, const char *token,
                 int words, int timeout_ms)
{
    memset (s, 0, sizeof (*s));
    snprintf (s->url, sizeof (s->url), "%s/v1/agent/run/stream", base);
    snprintf (s->auth, sizeof (s->auth), "Authorization: Bearer %s", token);
    size_t n = (size_t) snprintf (s->body, sizeof (s->body),
                                  "{\"message\":\"");
    for (int i = 0; i < words && n + 16 < sizeof (s->body); i++)
        n += (size_t) snprintf (s->body + n, sizeof (s->body) - n, "%sw%d",
                                i ? " " : "", i);
    snprintf (s->body + n, sizeof (s->body) - n, "\"}");
    cr_assert_eq (pthread_create (&s->thread, NULL, rl_stream_run, s), 0);
    s->running = true;
    long long until = rl_now_ms () + timeout_ms;
    while (!atomic_load (&s->started) && !atomic_load (&s->finished)
           && rl_now_ms () < until)
        usleep (10000);
    return atomic_load (&s->status);
}

//  Hangs up (if still open) and joins the thread.
static RL_UNUSED void
rl_stream_stop (rl_stream_t *s)
{
    if (!s->running)
        return;
    atomic_store (&s->stop, true);
    pthread_join (s->thread, NULL);
    s->running = false;
}

#endif
