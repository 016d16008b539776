/*  =========================================================================
    channels_bench - the Telegram channel path: a message injected into
    the Bot API stand-in (cg_tgstandin) until the gateway's sendMessage
    reply lands in the stand-in's sent log

    usage: channels_bench --tg-port P --pid GATEWAY_PID
                          [--floor-port P2] [--standin-pid PID]
                          [--rate R] [--chats C] [--seconds S]
                          [--burst B] [--settle S] [--timeout S]

    The gateway polls the stand-in on --tg-port (dmPolicy open, local/echo
    model).  --floor-port is a second stand-in nobody polls, for the floor.
    Phases, in this order:

    1. fresh: 2 s idle, then the gateway's VmRSS / VmHWM.
    2. floor (with --floor-port): the stand-in alone, R calls a second,
       500 POST /control/message, then 500 sendMessage (reply_parameters
       like the gateway's): round trip of each on a kept-alive connection.
    3. steady: R messages a second (default 100) for S seconds (30), to
       chat ids 100000 + (n % C) (C = 1000), message n at t0 + n / R on an
       absolute schedule.  Each one's injection time is CLOCK_REALTIME ms
       taken just before its POST /control/message (the stand-in stamps
       sendMessage's at_ms from the same clock, in whole ms).  Waits until
       the stand-in has counted a sendMessage per message; a thread samples
       the gateway's VmRSS every 100 ms meanwhile (peak).  Gateway CPU
       (utime + stime) from the first injection to the last reply counted.
    4. after: --settle (10) s idle, VmRSS / VmHWM.
    5. burst (--burst B, default 1000, 0: none): B messages, one per chat,
       posted back to back; time from the first injection to the last
       reply's at_ms, and each message's delay.
    6. GET /control/sent once; replies are matched to messages by
       (chat_id, reply_to = the message's message_id).  lost: a message
       with no reply; duplicated: replies beyond the first; stray: a
       reply to no message of ours; wrong text: the echo is not the text.

    delay = at_ms - injection ms.  at_ms is floored to the ms, so a delay
    reads up to 1 ms short; the injection stamp is taken before the POST,
    so the delay includes the stand-in's half of that round trip (see the
    floor).  Prints markdown tables on stdout, progress on stderr.  Exit 1
    if it cannot set up (a call to the stand-in fails); lost or duplicated
    replies are reported, not failed.
    =========================================================================
*/
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_CALLS 500    //  Floor round trips of each kind
#define FIRST_CHAT 100000  //  Chat ids FIRST_CHAT .. FIRST_CHAT + C - 1

//  ---- Options --------------------------------------------------------------------

static int s_tg_port;
static int s_floor_port;
static int s_gw_pid;
static int s_si_pid;
static int s_rate = 100;
static int s_chats = 1000;
static int s_seconds = 30;
static int s_burst = 1000;
static int s_settle = 10;
static int s_timeout = 120;

//  ---- Clocks, /proc -------------------------------------------------------------

static double
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (double) ts.tv_sec * 1e3 + (double) ts.tv_nsec / 1e6;
}

static int64_t
s_mono_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
s_sleep_until (int64_t mono_ns)
{
    struct timespec ts = {(time_t) (mono_ns / 1000000000LL),
                          (long) (mono_ns % 1000000000LL)};
    while (clock_nanosleep (CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
        ;
}

//  VmRSS and VmHWM of pid, MiB.
static void
s_mem (int pid, double *rss, double *hwm)
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

//  CPU seconds (utime + stime) of pid; 0 if pid is 0 or gone.
static double
s_cpu_pid (int pid)
{
    char path[64], buf[2048];
    if (pid <= 0)
        return 0;
    snprintf (path, sizeof (path), "/proc/%d/stat", pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return 0;
    size_t n = fread (buf, 1, sizeof (buf) - 1, f);
    fclose (f);
    buf[n] = 0;
    //  After the ")" of comm: state is field 3, utime 14, stime 15.
    char *p = strrchr (buf, ')');
    unsigned long ut = 0, st = 0;
    if (p
        && sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st)
               == 2)
        return (double) (ut + st) / (double) sysconf (_SC_CLK_TCK);
    return 0;
}

//  CPU seconds of pid's threads, summed by thread name.
#define MAX_NAMES 32
typedef struct {
    int n;
    char name[MAX_NAMES][20];
    double cpu[MAX_NAMES];
} by_name_t;

static void
s_cpu_threads (int pid, by_name_t *t)
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
        FILE *f = fopen (file, "r");
        if (!f)
            continue;
        size_t len = fread (buf, 1, sizeof (buf) - 1, f);
        fclose (f);
        buf[len] = 0;
        char *open = strchr (buf, '('), *close = strrchr (buf, ')');
        unsigned long ut = 0, st = 0;
        if (!open || !close || close < open
            || sscanf (close + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
                       &ut, &st)
                   != 2)
            continue;
        char name[20];
        snprintf (name, sizeof (name), "%.*s", (int) (close - open - 1), open + 1);
        int i = 0;
        while (i < t->n && strcmp (t->name[i], name))
            i++;
        if (i == t->n) {
            if (t->n == MAX_NAMES)
                continue;
            snprintf (t->name[t->n++], sizeof (t->name[0]), "%s", name);
        }
        t->cpu[i] += (double) (ut + st) / (double) sysconf (_SC_CLK_TCK);
    }
    closedir (dir);
}

static double
s_cpu_self (void)
{
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
           + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

//  ---- RSS sampler ----------------------------------------------------------------

static atomic_bool s_sampling;
static double s_peak_rss;  //  Largest VmRSS seen while sampling (MiB)

static void *
s_sampler (void *arg)
{
    while (atomic_load (&s_sampling)) {
        double rss, hwm;
        s_mem (s_gw_pid, &rss, &hwm);
        if (rss > s_peak_rss)
            s_peak_rss = rss;
        usleep (100000);
    }
    return NULL;
}

//  ---- HTTP (libcurl, kept-alive) ------------------------------------------------

typedef struct {
    char *data;
    size_t len, cap;
} buf_t;

static size_t
s_write_cb (char *ptr, size_t size, size_t nmemb, void *user)
{
    buf_t *b = (buf_t *) user;
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

typedef struct {
    CURL *easy;
    struct curl_slist *headers;
    buf_t body;
} client_t;

static void
s_client_init (client_t *c)
{
    memset (c, 0, sizeof (*c));
    c->easy = curl_easy_init ();
    c->headers = curl_slist_append (NULL, "Content-Type: application/json");
    curl_easy_setopt (c->easy, CURLOPT_WRITEFUNCTION, s_write_cb);
    curl_easy_setopt (c->easy, CURLOPT_WRITEDATA, &c->body);
    curl_easy_setopt (c->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt (c->easy, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt (c->easy, CURLOPT_NOSIGNAL, 1L);
}

static void
s_client_fini (client_t *c)
{
    curl_easy_cleanup (c->easy);
    curl_slist_free_all (c->headers);
    free (c->body.data);
}

//  GET (body NULL) or POST a JSON body to http://127.0.0.1:port/path.
//  Returns the answer parsed as JSON, or NULL (a failure, logged).
//  *rtt_us, if given, is the call's round trip.  Caller owns return value.
static cJSON *
s_call (client_t *c, int port, const char *path, const char *body, double *rtt_us)
{
    char url[256];
    snprintf (url, sizeof (url), "http://127.0.0.1:%d%s", port, path);
    curl_easy_setopt (c->easy, CURLOPT_URL, url);
    if (body) {
        curl_easy_setopt (c->easy, CURLOPT_HTTPHEADER, c->headers);
        curl_easy_setopt (c->easy, CURLOPT_POSTFIELDS, body);
    }
    else {
        curl_easy_setopt (c->easy, CURLOPT_HTTPHEADER, NULL);
        curl_easy_setopt (c->easy, CURLOPT_HTTPGET, 1L);
    }
    c->body.len = 0;
    int64_t t0 = s_mono_ns ();
    CURLcode rc = curl_easy_perform (c->easy);
    if (rtt_us)
        *rtt_us = (double) (s_mono_ns () - t0) / 1e3;
    long status = 0;
    curl_easy_getinfo (c->easy, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
        fprintf (stderr, "channels_bench: %s: %s, HTTP %ld\n", path,
                 curl_easy_strerror (rc), status);
        return NULL;
    }
    return cJSON_ParseWithLength (c->body.data ? c->body.data : "", c->body.len);
}

//  The stand-in's count of method calls, -1 on failure.
static long
s_calls (client_t *c, const char *method)
{
    cJSON *root = s_call (c, s_tg_port, "/control/calls", NULL, NULL);
    cJSON *item = cJSON_GetObjectItem (root, method);
    long n = cJSON_IsNumber (item) ? (long) item->valuedouble : -1;
    cJSON_Delete (root);
    return n;
}

//  ---- Messages -------------------------------------------------------------------

typedef struct {
    long long chat;        //  Chat id
    long long message_id;  //  The stand-in's message_id
    double inj_ms;         //  CLOCK_REALTIME ms just before the POST
    double post_us;        //  POST /control/message round trip
    char text[64];         //  What was sent (the echo must match)
    int replies;           //  sendMessage entries replying to it
    double reply_at;       //  The first one's at_ms
    bool wrong_text;       //  A reply whose text is not ours
} msg_t;

//  Posts message n of a set to chat; fills m.  Returns 0 or -1.
static int
s_inject (client_t *c, msg_t *m, long long chat, int n, const char *tag)
{
    char body[256];
    m->chat = chat;
    snprintf (m->text, sizeof (m->text), "%s %d to %lld", tag, n, chat);
    snprintf (body, sizeof (body), "{\"chat_id\":%lld,\"from_id\":%lld,\"text\":\"%s\"}",
              chat, chat, m->text);
    m->inj_ms = s_wall_ms ();
    cJSON *root = s_call (c, s_tg_port, "/control/message", body, &m->post_us);
    cJSON *id = cJSON_GetObjectItem (root, "message_id");
    m->message_id = cJSON_IsNumber (id) ? (long long) id->valuedouble : -1;
    cJSON_Delete (root);
    return m->message_id > 0 ? 0 : -1;
}

//  Waits until the stand-in has counted want sendMessage calls, or the
//  timeout.  Returns the count seen last.
static long
s_wait_replies (client_t *c, long want)
{
    int64_t deadline = s_mono_ns () + (int64_t) s_timeout * 1000000000LL;
    long have = 0;
    while (s_mono_ns () < deadline) {
        have = s_calls (c, "sendMessage");
        if (have >= want)
            break;
        usleep (100000);
    }
    return have;
}

//  ---- Statistics -----------------------------------------------------------------

static int
s_cmp_double (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  Nearest rank on a sorted array.
static double
s_pct (const double *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t) (p * (double) (n - 1) + 0.5);
    return v[i];
}

typedef struct {
    size_t n;
    double p50, p90, p99, max;
} stats_t;

//  Sorts v in place.
static stats_t
s_stats (double *v, size_t n)
{
    stats_t s = {n, 0, 0, 0, 0};
    if (!n)
        return s;
    qsort (v, n, sizeof (double), s_cmp_double);
    s.p50 = s_pct (v, n, 0.50);
    s.p90 = s_pct (v, n, 0.90);
    s.p99 = s_pct (v, n, 0.99);
    s.max = v[n - 1];
    return s;
}

static void
s_row (const char *what, stats_t s, double scale, const char *unit)
{
    printf ("| %s | %zu | %.2f %s | %.2f %s | %.2f %s | %.2f %s |\n", what, s.n,
            s.p50 * scale, unit, s.p90 * scale, unit, s.p99 * scale, unit, s.max * scale,
            unit);
}

//  ---- Matching -------------------------------------------------------------------

//  Matches the sent log against msgs (steady then burst, one array).
//  Returns the stray replies (to no message of ours).
static long
s_match (cJSON *sent, msg_t *msgs, size_t n)
{
    long long top = 0;
    for (size_t i = 0; i < n; i++)
        if (msgs[i].message_id > top)
            top = msgs[i].message_id;
    int *by_id = (int *) malloc (((size_t) top + 1) * sizeof (int));
    for (long long i = 0; i <= top; i++)
        by_id[i] = -1;
    for (size_t i = 0; i < n; i++)
        if (msgs[i].message_id > 0)
            by_id[msgs[i].message_id] = (int) i;
    long stray = 0;
    cJSON *entry;
    cJSON_ArrayForEach (entry, cJSON_GetObjectItem (sent, "messages"))
    {
        long long reply_to =
            (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (entry, "reply_to"));
        const char *chat = cJSON_GetStringValue (cJSON_GetObjectItem (entry, "chat_id"));
        const char *text = cJSON_GetStringValue (cJSON_GetObjectItem (entry, "text"));
        double at = cJSON_GetNumberValue (cJSON_GetObjectItem (entry, "at_ms"));
        int i = reply_to > 0 && reply_to <= top ? by_id[reply_to] : -1;
        if (i < 0 || !chat || strtoll (chat, NULL, 10) != msgs[i].chat) {
            stray++;
            continue;
        }
        msg_t *m = &msgs[i];
        if (m->replies++ == 0)
            m->reply_at = at;
        if (!text || strcmp (text, m->text))
            m->wrong_text = true;
    }
    free (by_id);
    return stray;
}

typedef struct {
    size_t lost, duplicated, wrong_text;
    double last_reply_at;  //  Largest first-reply at_ms
    stats_t delay;         //  at_ms - inj_ms, ms
    stats_t post;          //  POST /control/message, µs
} outcome_t;

static outcome_t
s_outcome (msg_t *msgs, size_t n)
{
    outcome_t o;
    memset (&o, 0, sizeof (o));
    double *delay = (double *) calloc (n + 1, sizeof (double));
    double *post = (double *) calloc (n + 1, sizeof (double));
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        msg_t *m = &msgs[i];
        post[i] = m->post_us;
        if (!m->replies) {
            o.lost++;
            continue;
        }
        o.duplicated += (size_t) (m->replies - 1);
        o.wrong_text += m->wrong_text;
        delay[nd++] = m->reply_at - m->inj_ms;
        if (m->reply_at > o.last_reply_at)
            o.last_reply_at = m->reply_at;
    }
    o.delay = s_stats (delay, nd);
    o.post = s_stats (post, n);
    free (delay);
    free (post);
    return o;
}

//  ---- Main -----------------------------------------------------------------------

static void
s_usage (void)
{
    fprintf (stderr,
             "usage: channels_bench --tg-port P --pid GATEWAY_PID [--floor-port P2]"
             " [--standin-pid PID] [--rate R] [--chats C] [--seconds S]"
             " [--burst B] [--settle S] [--timeout S]\n");
    exit (2);
}

static void
s_die (const char *what)
{
    fprintf (stderr, "channels_bench: %s\n", what);
    exit (1);
}

int
main (int argc, char **argv)
{
    //  Options come in pairs: --name value.
    for (int i = 1; i < argc; i += 2) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!v)
            s_usage ();
        int n = atoi (v);
        if (!strcmp (a, "--tg-port"))
            s_tg_port = n;
        else if (!strcmp (a, "--floor-port"))
            s_floor_port = n;
        else if (!strcmp (a, "--pid"))
            s_gw_pid = n;
        else if (!strcmp (a, "--standin-pid"))
            s_si_pid = n;
        else if (!strcmp (a, "--rate"))
            s_rate = n;
        else if (!strcmp (a, "--chats"))
            s_chats = n;
        else if (!strcmp (a, "--seconds"))
            s_seconds = n;
        else if (!strcmp (a, "--burst"))
            s_burst = n;
        else if (!strcmp (a, "--settle"))
            s_settle = n;
        else if (!strcmp (a, "--timeout"))
            s_timeout = n;
        else
            s_usage ();
    }
    if (s_tg_port <= 0 || s_gw_pid <= 0 || s_rate < 1 || s_chats < 1 || s_seconds < 1
        || s_burst < 0 || s_settle < 0)
        s_usage ();
    curl_global_init (CURL_GLOBAL_DEFAULT);
    client_t c, floor_c;
    s_client_init (&c);
    s_client_init (&floor_c);
    int64_t gap_ns = 1000000000LL / s_rate;

    //  1. Fresh.
    sleep (2);
    double fresh_rss, fresh_hwm;
    s_mem (s_gw_pid, &fresh_rss, &fresh_hwm);
    fprintf (stderr, "channels_bench: fresh RSS %.1f MiB\n", fresh_rss);

    //  2. Floor: the stand-in alone, paced like the steady phase.
    double floor_post[FLOOR_CALLS], floor_send[FLOOR_CALLS];
    stats_t fp = {0, 0, 0, 0, 0}, fs = {0, 0, 0, 0, 0};
    if (s_floor_port > 0) {
        int64_t t0 = s_mono_ns ();
        for (int i = 0; i < FLOOR_CALLS; i++) {
            char body[256];
            long long chat = FIRST_CHAT + i % s_chats;
            s_sleep_until (t0 + (int64_t) i * gap_ns);
            snprintf (body, sizeof (body),
                      "{\"chat_id\":%lld,\"from_id\":%lld,\"text\":\"floor %d to %lld\"}",
                      chat, chat, i, chat);
            cJSON *root =
                s_call (&floor_c, s_floor_port, "/control/message", body, &floor_post[i]);
            if (!root)
                s_die ("the floor stand-in failed");
            cJSON_Delete (root);
        }
        t0 = s_mono_ns ();
        for (int i = 0; i < FLOOR_CALLS; i++) {
            char body[256];
            long long chat = FIRST_CHAT + i % s_chats;
            s_sleep_until (t0 + (int64_t) i * gap_ns);
            snprintf (body, sizeof (body),
                      "{\"chat_id\":\"%lld\",\"text\":\"floor %d to %lld\","
                      "\"reply_parameters\":{\"message_id\":%d}}",
                      chat, i, chat, i + 1);
            cJSON *root = s_call (&floor_c, s_floor_port, "/bot123456:TEST/sendMessage",
                                  body, &floor_send[i]);
            if (!cJSON_IsTrue (cJSON_GetObjectItem (root, "ok")))
                s_die ("the floor stand-in's sendMessage failed");
            cJSON_Delete (root);
        }
        fp = s_stats (floor_post, FLOOR_CALLS);
        fs = s_stats (floor_send, FLOOR_CALLS);
        fprintf (stderr,
                 "channels_bench: floor POST p50 %.0f µs, sendMessage p50 %.0f µs\n",
                 fp.p50, fs.p50);
    }

    //  3. Steady.
    size_t steady = (size_t) s_rate * (size_t) s_seconds;
    size_t total = steady + (size_t) s_burst;
    msg_t *msgs = (msg_t *) calloc (total, sizeof (msg_t));
    long base_sends = s_calls (&c, "sendMessage");
    long base_typing = s_calls (&c, "sendChatAction");
    if (base_sends < 0)
        s_die ("GET /control/calls failed");
    atomic_store (&s_sampling, true);
    pthread_t sampler;
    pthread_create (&sampler, NULL, s_sampler, NULL);
    by_name_t threads0, threads1;
    s_cpu_threads (s_gw_pid, &threads0);
    double gw_cpu0 = s_cpu_pid (s_gw_pid), si_cpu0 = s_cpu_pid (s_si_pid);
    double self_cpu0 = s_cpu_self ();
    int64_t t0 = s_mono_ns ();
    int64_t worst_late = 0;  //  Largest lag behind the schedule
    for (size_t i = 0; i < steady; i++) {
        int64_t due = t0 + (int64_t) i * gap_ns;
        s_sleep_until (due);
        int64_t late = s_mono_ns () - due;
        if (late > worst_late)
            worst_late = late;
        if (s_inject (&c, &msgs[i], FIRST_CHAT + (long long) (i % (size_t) s_chats),
                      (int) i, "steady")
            != 0)
            s_die ("POST /control/message failed");
    }
    double inject_s = (double) (s_mono_ns () - t0) / 1e9;
    fprintf (stderr, "channels_bench: %zu injected in %.1f s (worst lag %.1f ms)\n",
             steady, inject_s, (double) worst_late / 1e6);
    long have = s_wait_replies (&c, base_sends + (long) steady);
    double steady_s = (double) (s_mono_ns () - t0) / 1e9;
    double gw_cpu = s_cpu_pid (s_gw_pid) - gw_cpu0;
    s_cpu_threads (s_gw_pid, &threads1);
    double si_cpu = s_cpu_pid (s_si_pid) - si_cpu0;
    double self_cpu = s_cpu_self () - self_cpu0;
    long typing = s_calls (&c, "sendChatAction") - base_typing;
    atomic_store (&s_sampling, false);
    pthread_join (sampler, NULL);
    double run_rss, run_hwm;
    s_mem (s_gw_pid, &run_rss, &run_hwm);
    if (run_rss > s_peak_rss)
        s_peak_rss = run_rss;
    fprintf (stderr, "channels_bench: %ld of %zu replies counted after %.1f s\n",
             have - base_sends, steady, steady_s);

    //  4. After.
    double idle_cpu0 = s_cpu_pid (s_gw_pid);
    sleep ((unsigned) s_settle);
    double idle_cpu = s_cpu_pid (s_gw_pid) - idle_cpu0;
    double after_rss, after_hwm;
    s_mem (s_gw_pid, &after_rss, &after_hwm);

    //  5. Burst.
    double burst_inject_ms = 0, burst_t0_wall = 0, burst_rss = 0, burst_hwm = 0;
    double burst_gw_cpu = 0;
    if (s_burst) {
        long before = s_calls (&c, "sendMessage");
        double cpu0 = s_cpu_pid (s_gw_pid);
        int64_t b0 = s_mono_ns ();
        burst_t0_wall = s_wall_ms ();
        for (size_t i = 0; i < (size_t) s_burst; i++)
            if (s_inject (&c, &msgs[steady + i],
                          FIRST_CHAT + (long long) (i % (size_t) s_chats), (int) i,
                          "burst")
                != 0)
                s_die ("POST /control/message failed");
        burst_inject_ms = (double) (s_mono_ns () - b0) / 1e6;
        long got = s_wait_replies (&c, before + s_burst);
        burst_gw_cpu = s_cpu_pid (s_gw_pid) - cpu0;
        fprintf (stderr, "channels_bench: burst: %ld of %d replies counted\n",
                 got - before, s_burst);
        sleep (2);
        s_mem (s_gw_pid, &burst_rss, &burst_hwm);
    }

    //  6. Match.
    cJSON *sent = s_call (&c, s_tg_port, "/control/sent", NULL, NULL);
    if (!sent)
        s_die ("GET /control/sent failed");
    long stray = s_match (sent, msgs, total);
    cJSON_Delete (sent);
    outcome_t so = s_outcome (msgs, steady);
    outcome_t bo = s_outcome (msgs + steady, (size_t) s_burst);

    printf ("\n# channels_bench: %zu messages at %d/s over %d chats, then a burst of %d;"
            " cores=%ld\n",
            steady, s_rate, s_chats, s_burst, sysconf (_SC_NPROCESSORS_ONLN));
    printf ("\n| path | n | p50 | p90 | p99 | max |\n|---|--:|--:|--:|--:|--:|\n");
    s_row ("steady: injection -> reply at_ms", so.delay, 1, "ms");
    if (s_burst)
        s_row ("burst: injection -> reply at_ms", bo.delay, 1, "ms");
    s_row ("steady: POST /control/message, under load", so.post, 1e-3, "ms");
    if (s_floor_port > 0) {
        s_row ("floor: POST /control/message, stand-in alone", fp, 1e-3, "ms");
        s_row ("floor: sendMessage, stand-in alone", fs, 1e-3, "ms");
    }
    printf ("\n| figure | value |\n|---|--:|\n");
    printf (
        "| steady: lost / duplicated / stray / wrong text | %zu / %zu / %ld / %zu |\n",
        so.lost, so.duplicated, stray, so.wrong_text);
    printf ("| steady: injection took, worst lag behind schedule | %.1f s, %.1f ms |\n",
            inject_s, (double) worst_late / 1e6);
    printf ("| steady: sendChatAction calls per message | %.2f |\n",
            (double) typing / (double) steady);
    printf (
        "| steady: gateway CPU per message (utime+stime over %.1f s) | %.0f µs (%.0f %% "
        "of a core) |\n",
        steady_s, gw_cpu / (double) steady * 1e6, gw_cpu / steady_s * 100);
    if (s_settle)
        printf (
            "| gateway CPU idle (the %d s after the last reply) | %.1f %% of a core |\n",
            s_settle, idle_cpu / s_settle * 100);
    if (s_si_pid > 0)
        printf ("| steady: stand-in CPU per message | %.0f µs |\n",
                si_cpu / (double) steady * 1e6);
    printf ("| steady: this bench's CPU per message | %.0f µs |\n",
            self_cpu / (double) steady * 1e6);
    if (s_burst) {
        printf ("| burst: lost / duplicated / wrong text | %zu / %zu / %zu |\n", bo.lost,
                bo.duplicated, bo.wrong_text);
        printf ("| burst: injection took | %.0f ms |\n", burst_inject_ms);
        printf ("| burst: first injection -> last reply | %.0f ms |\n",
                bo.last_reply_at > 0 ? bo.last_reply_at - burst_t0_wall : 0);
        printf ("| burst: gateway CPU per message | %.0f µs |\n",
                burst_gw_cpu / (double) s_burst * 1e6);
    }
    printf ("\n| gateway thread (steady phase) | CPU per message |\n|---|--:|\n");
    for (int i = 0; i < threads1.n; i++) {
        double before = 0;
        for (int j = 0; j < threads0.n; j++)
            if (!strcmp (threads0.name[j], threads1.name[i]))
                before = threads0.cpu[j];
        double us = (threads1.cpu[i] - before) / (double) steady * 1e6;
        if (us >= 1)
            printf ("| %s | %.0f µs |\n", threads1.name[i], us);
    }
    printf ("\n| gateway RSS | VmRSS | VmHWM |\n|---|--:|--:|\n");
    printf ("| fresh (idle 2 s) | %.1f MiB | %.1f MiB |\n", fresh_rss, fresh_hwm);
    printf (
        "| %d active chats (peak VmRSS sampled every 100 ms; VmHWM at the last reply) | "
        "%.1f MiB | %.1f MiB |\n",
        s_chats, s_peak_rss, run_hwm);
    printf ("| after load (%d s idle after the last reply) | %.1f MiB | %.1f MiB |\n",
            s_settle, after_rss, after_hwm);
    if (s_burst)
        printf ("| after the burst (2 s after its last reply) | %.1f MiB | %.1f MiB |\n",
                burst_rss, burst_hwm);
    printf (
        "\nchannels_bench: steady lost=%zu dup=%zu p50=%.1f p90=%.1f p99=%.1f max=%.1f ms"
        " peak_rss=%.1f MiB cpu_per_msg=%.0f us\n",
        so.lost, so.duplicated, so.delay.p50, so.delay.p90, so.delay.p99, so.delay.max,
        s_peak_rss, gw_cpu / (double) steady * 1e6);
    free (msgs);
    s_client_fini (&c);
    s_client_fini (&floor_c);
    curl_global_cleanup ();
    return 0;
}
