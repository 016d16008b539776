/*  =========================================================================
    stream_load - holds N concurrent streaming chat completions and measures
    time to first delta and total time, with libcurl multi on one thread

    usage: stream_load URL TOKEN MODEL CONCURRENCY TOTAL [HOLD_MS]
      URL          e.g. http://127.0.0.1:18789/v1/chat/completions
      CONCURRENCY  streams kept open at once
      TOTAL        streams to run in all
    Prints one line: streams, failures, ttfd p50/p99 (µs), total p50/p99 (µs),
    peak concurrency.  Exit 1 if any stream failed.
    =========================================================================
*/
#include <curl/curl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef struct {
    CURL *easy;
    double started;    //  Seconds (monotonic)
    double first;      //  First "content" delta seen, 0 until then
    bool done_marker;  //  Saw data: [DONE]
    char tail[16];     //  Last bytes, to find [DONE] across writes
} stream_t;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t
s_on_data (char *data, size_t size, size_t nmemb, void *arg)
{
    stream_t *s = (stream_t *) arg;
    size_t len = size * nmemb;
    if (!s->first && memmem (data, len, "\"content\":\"", 11)) {
        //  The role chunk carries "content":"" -- a real delta has text.
        const char *p = data;
        size_t left = len;
        const char *hit;
        while ((hit = memmem (p, left, "\"content\":\"", 11))) {
            if (hit + 11 < data + len && hit[11] != '"') {
                s->first = s_now ();
                break;
            }
            left -= (size_t) (hit + 11 - p);
            p = hit + 11;
        }
    }
    if (memmem (data, len, "[DONE]", 6))
        s->done_marker = true;
    return len;
}

static int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static double
s_pct (double *v, int n, double p)
{
    if (n == 0)
        return 0;
    qsort (v, (size_t) n, sizeof (double), s_cmp);
    int i = (int) (p * (n - 1) + 0.5);
    return v[i];
}

int
main (int argc, char **argv)
{
    if (argc < 6) {
        fprintf (stderr, "usage: stream_load URL TOKEN MODEL CONCURRENCY TOTAL\n");
        return 2;
    }
    const char *url = argv[1], *token = argv[2], *model = argv[3];
    int conc = atoi (argv[4]), total = atoi (argv[5]);
    curl_global_init (CURL_GLOBAL_DEFAULT);
    CURLM *multi = curl_multi_init ();
    curl_multi_setopt (multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long) conc);
    char auth[512], body[512];
    snprintf (auth, sizeof (auth), "Authorization: Bearer %s", token);
    snprintf (body, sizeof (body),
              "{\"model\":\"%s\",\"stream\":true,\"messages\":[{\"role\":"
              "\"user\",\"content\":\"one two three four five six seven "
              "eight\"}]}",
              model);
    struct curl_slist *h = curl_slist_append (NULL, auth);
    h = curl_slist_append (h, "Content-Type: application/json");
    stream_t *streams = calloc ((size_t) total, sizeof (stream_t));
    double *ttfd = calloc ((size_t) total, sizeof (double));
    double *whole = calloc ((size_t) total, sizeof (double));
    int started = 0, finished = 0, failed = 0, n_ttfd = 0, n_whole = 0;
    int running = 0, peak = 0;
    long connects = 0;  //  New connections opened (reuse check)
    while (finished < total) {
        while (started < total && running < conc) {
            stream_t *s = &streams[started++];
            s->easy = curl_easy_init ();
            curl_easy_setopt (s->easy, CURLOPT_URL, url);
            curl_easy_setopt (s->easy, CURLOPT_HTTPHEADER, h);
            curl_easy_setopt (s->easy, CURLOPT_POSTFIELDS, body);
            curl_easy_setopt (s->easy, CURLOPT_WRITEFUNCTION, s_on_data);
            curl_easy_setopt (s->easy, CURLOPT_WRITEDATA, s);
            curl_easy_setopt (s->easy, CURLOPT_PRIVATE, s);
            curl_easy_setopt (s->easy, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt (s->easy, CURLOPT_TIMEOUT, 120L);
            curl_easy_setopt (s->easy, CURLOPT_TCP_NODELAY, 1L);
            s->started = s_now ();
            curl_multi_add_handle (multi, s->easy);
            running++;
        }
        if (running > peak)
            peak = running;
        int still;
        curl_multi_perform (multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read (multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            stream_t *s;
            curl_easy_getinfo (msg->easy_handle, CURLINFO_PRIVATE, (char **) &s);
            long code = 0, made = 0;
            curl_easy_getinfo (msg->easy_handle, CURLINFO_RESPONSE_CODE, &code);
            curl_easy_getinfo (msg->easy_handle, CURLINFO_NUM_CONNECTS, &made);
            connects += made;
            if (msg->data.result != CURLE_OK || code != 200 || !s->done_marker)
                failed++;
            else {
                whole[n_whole++] = (s_now () - s->started) * 1e6;
                if (s->first)
                    ttfd[n_ttfd++] = (s->first - s->started) * 1e6;
            }
            curl_multi_remove_handle (multi, msg->easy_handle);
            curl_easy_cleanup (msg->easy_handle);
            running--;
            finished++;
        }
        curl_multi_poll (multi, NULL, 0, 100, NULL);
    }
    printf ("streams %d failed %d ttfd_p50_us %.0f ttfd_p99_us %.0f "
            "total_p50_us %.0f total_p99_us %.0f peak %d connects %ld\n",
            total, failed, s_pct (ttfd, n_ttfd, 0.5), s_pct (ttfd, n_ttfd, 0.99),
            s_pct (whole, n_whole, 0.5), s_pct (whole, n_whole, 0.99), peak, connects);
    curl_slist_free_all (h);
    curl_multi_cleanup (multi);
    free (streams);
    free (ttfd);
    free (whole);
    curl_global_cleanup ();
    return failed ? 1 : 0;
}
