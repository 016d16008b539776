/*  =========================================================================
    bench_common - what channels_bench and channels_all_bench share: clocks,
    a process's memory and CPU from /proc, a gateway RSS sampler thread, a
    kept-alive libcurl JSON client, and nearest-rank percentiles
    =========================================================================
*/
#ifndef CG_BENCH_COMMON_H
#define CG_BENCH_COMMON_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

//  ---- Clocks, /proc ------------------------------------------------------

//  Milliseconds on the wall clock.
double
bench_wall_ms (void);

//  Nanoseconds on the monotonic clock.
int64_t
bench_mono_ns (void);

//  Sleeps until the monotonic clock reads mono_ns.
void
bench_sleep_until (int64_t mono_ns);

//  Reads a small file into buf (NUL ended).  Returns 0 or -1.
int
bench_slurp (const char *path, char *buf, size_t cap);

//  VmRSS and VmHWM of pid, MiB (0 when it is gone).
void
bench_mem (int pid, double *rss, double *hwm);

//  CPU seconds (utime + stime) of pid; 0 if pid is 0 or gone.
double
bench_cpu_pid (int pid);

//  CPU seconds of a process's threads, summed by thread name.
#define BENCH_MAX_NAMES 32
typedef struct {
    int n;
    char name[BENCH_MAX_NAMES][20];
    double cpu[BENCH_MAX_NAMES];
} bench_threads_t;

void
bench_cpu_threads (int pid, bench_threads_t *t);

//  ---- RSS sampler --------------------------------------------------------

//  Run bench_sampler on a thread with one of these: while sampling is
//  set it reads pid's VmRSS every 100 ms and keeps the largest in peak_rss.
typedef struct {
    atomic_bool sampling;
    int pid;
    double peak_rss;  //  MiB
} bench_sampler_t;

void *
bench_sampler (void *arg);

//  ---- HTTP (libcurl, kept-alive) ----------------------------------------

typedef struct {
    char *data;
    size_t len, cap;
} bench_buf_t;

typedef struct {
    CURL *easy;
    struct curl_slist *headers;  //  Content-Type, and auth if given
    bench_buf_t body;
    long status;  //  The last call's HTTP status
} bench_client_t;

//  auth: one more header line ("Authorization: ..."), or NULL.
void
bench_client_init (bench_client_t *c, const char *auth, long timeout_s);

void
bench_client_fini (bench_client_t *c);

//  GET (body NULL) or POST a JSON body to http://127.0.0.1:port/path.
//  Returns the answer parsed as JSON when it is a 200, else NULL (logged
//  on stderr after who).  *rtt_us, if given, is the call's round trip.
//  Caller owns return value.
cJSON *
bench_call (bench_client_t *c, const char *who, int port, const char *path,
            const char *body, double *rtt_us);

//  ---- Statistics --------------------------------------------------------

typedef struct {
    size_t n;
    double p50, p90, p99, max;
} bench_stats_t;

//  Nearest rank; sorts v in place.
bench_stats_t
bench_stats (double *v, size_t n);

#endif
