/*  =========================================================================
    bench_common - shared by the channel benchmarks (see the header)
    =========================================================================
*/
#include "bench_common.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  ---- Clocks, /proc ------------------------------------------------------

double
bench_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

int64_t
bench_mono_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

void
bench_sleep_until (int64_t mono_ns)
{
    struct timespec ts = {(time_t) (mono_ns / 1000000000LL),
                          (long) (mono_ns % 1000000000LL)};
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

int
bench_slurp (const char *path, char *buf, size_t cap)
{
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    size_t n = fread (buf, 1, cap - 1, f);
    fclose (f);
    buf[n] = 0;
    return 0;
}

void
bench_mem (int pid, double *rss, double *hwm)
{
    char path[64], line[256];
    snprintf (path, sizeof (path), "/proc/%d/status", pid);
    FILE *f = fopen (path, "r");
    *rss = *hwm = 0;
    if (!f)
        return;
    while (fgets (line, sizeof (line), f)) {
        if (!strncmp (line, "VmRSS:", 6))
            *rss = atof (line + 6) / 1024.0;
        else if (!strncmp (line, "VmHWM:", 6))
            *hwm = atof (line + 6) / 1024.0;
    }
    fclose (f);
}

//  utime + stime in seconds from the text of a /proc stat file.
static double
s_stat_cpu (const char *buf)
{
    //  After the ")" of comm: state is field 3, utime 14, stime 15.
    const char *p = strrchr (buf, ')');
    unsigned long ut = 0, st = 0;
    if (p
        && sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st)
               == 2)
        return (double) (ut + st) / (double) sysconf (_SC_CLK_TCK);
    return 0;
}

double
bench_cpu_pid (int pid)
{
    char path[64], buf[2048];
    if (pid <= 0)
        return 0;
    snprintf (path, sizeof (path), "/proc/%d/stat", pid);
    return bench_slurp (path, buf, sizeof (buf)) ? 0 : s_stat_cpu (buf);
}

void
bench_cpu_threads (int pid, bench_threads_t *t)
{
    memset (t, 0, sizeof (*t));
    char path[64];
    snprintf (path, sizeof (path), "/proc/%d/task", pid);
    DIR *dir = opendir (path);
    if (!dir)
        return;
    struct dirent *entry;
    while ((entry = readdir (dir)) != NULL) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        char file[320], buf[1024];
        snprintf (file, sizeof (file), "/proc/%d/task/%s/stat", pid, entry->d_name);
        if (bench_slurp (file, buf, sizeof (buf)))
            continue;
        char *open = strchr (buf, '('), *close = strrchr (buf, ')');
        if (!open || !close || close < open)
            continue;
        char name[20];
        snprintf (name, sizeof (name), "%.*s", (int) (close - open - 1), open + 1);
        int i = 0;
        while (i < t->n && strcmp (t->name[i], name))
            i++;
        if (i == t->n) {
            if (t->n == BENCH_MAX_NAMES)
                continue;
            snprintf (t->name[t->n++], sizeof (t->name[0]), "%s", name);
        }
        t->cpu[i] += s_stat_cpu (buf);
    }
    closedir (dir);
}

//  ---- RSS sampler --------------------------------------------------------

void *
bench_sampler (void *arg)
{
    bench_sampler_t *s = (bench_sampler_t *) arg;
    while (atomic_load (&s->sampling)) {
        double rss, hwm;
        bench_mem (s->pid, &rss, &hwm);
        if (rss > s->peak_rss)
            s->peak_rss = rss;
        usleep (100000);
    }
    return NULL;
}

//  ---- HTTP (libcurl, kept-alive) ----------------------------------------

static size_t
s_write_cb (char *ptr, size_t size, size_t nmemb, void *user)
{
    bench_buf_t *b = (bench_buf_t *) user;
    size_t n = size * nmemb;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *grown = (char *) realloc (b->data, cap);
        if (!grown)
            return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy (b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

void
bench_client_init (bench_client_t *c, const char *auth, long timeout_s)
{
    memset (c, 0, sizeof (*c));
    c->easy = curl_easy_init ();
    c->headers = curl_slist_append (NULL, "Content-Type: application/json");
    if (auth)
        c->headers = curl_slist_append (c->headers, auth);
    curl_easy_setopt (c->easy, CURLOPT_WRITEFUNCTION, s_write_cb);
    curl_easy_setopt (c->easy, CURLOPT_WRITEDATA, &c->body);
    curl_easy_setopt (c->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt (c->easy, CURLOPT_TIMEOUT, timeout_s);
    curl_easy_setopt (c->easy, CURLOPT_NOSIGNAL, 1L);
}

void
bench_client_fini (bench_client_t *c)
{
    curl_easy_cleanup (c->easy);
    curl_slist_free_all (c->headers);
    free (c->body.data);
}

cJSON *
bench_call (bench_client_t *c, const char *who, int port, const char *path,
            const char *body, double *rtt_us)
{
    char url[256];
    snprintf (url, sizeof (url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt (c->easy, CURLOPT_URL, url);
    curl_easy_setopt (c->easy, CURLOPT_HTTPHEADER, c->headers);
    if (body)
        curl_easy_setopt (c->easy, CURLOPT_POSTFIELDS, body);
    else
        curl_easy_setopt (c->easy, CURLOPT_HTTPGET, 1L);
    c->body.len = 0;
    int64_t t0 = bench_mono_ns ();
    CURLcode rc = curl_easy_perform (c->easy);
    if (rtt_us)
        *rtt_us = (double) (bench_mono_ns () - t0) / 1e3;
    c->status = 0;
    curl_easy_getinfo (c->easy, CURLINFO_RESPONSE_CODE, &c->status);
    if (rc != CURLE_OK || c->status != 200) {
        fprintf (stderr, "%s: :%d%s: %s, HTTP %ld\n", who, port, path,
                 curl_easy_strerror (rc), c->status);
        return NULL;
    }
    return cJSON_ParseWithLength (c->body.data ? c->body.data : "", c->body.len);
}

//  ---- Statistics --------------------------------------------------------

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

bench_stats_t
bench_stats (double *v, size_t n)
{
    bench_stats_t s = {n, 0, 0, 0, 0};
    if (!n)
        return s;
    qsort (v, n, sizeof (double), s_cmp_double);
    s.p50 = v[(size_t) (0.50 * (double) (n - 1) + 0.5)];
    s.p90 = v[(size_t) (0.90 * (double) (n - 1) + 0.5)];
    s.p99 = v[(size_t) (0.99 * (double) (n - 1) + 0.5)];
    s.max = v[n - 1];
    return s;
}
