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
#include "bench_common.h"

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

//  ---- CPU, memory ---------------------------------------------------------------

static double
s_cpu_self (void)
{
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + (double) ru.ru_utime.tv_usec / 1e6
           + (double) ru.ru_stime.tv_sec + (double) ru.ru_stime.tv_usec / 1e6;
}

static bench_sampler_t s_rss;  //  The gateway's, while sampling

//  ---- The stand-in ---------------------------------------------------------------

//  The stand-in's count of method calls, -1 on failure.
static long
s_calls (bench_client_t *c, const char *method)
{
    cJSON *root =
        bench_call (c, "channels_bench", s_tg_port, "/control/calls", NULL, NULL);
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
s_inject (bench_client_t *c, msg_t *m, long long chat, int n, const char *tag)
{
    char body[256];
    m->chat = chat;
    snprintf (m->text, sizeof (m->text), "%s %d to %lld", tag, n, chat);
    snprintf (body, sizeof (body), "{\"chat_id\":%lld,\"from_id\":%lld,\"text\":\"%s\"}",
              chat, chat, m->text);
    m->inj_ms = bench_wall_ms ();
    cJSON *root = bench_call (c, "channels_bench", s_tg_port, "/control/message", body,
                              &m->post_us);
    cJSON *id = cJSON_GetObjectItem (root, "message_id");
    m->message_id = cJSON_IsNumber (id) ? (long long) id->valuedouble : -1;
    cJSON_Delete (root);
    return m->message_id > 0 ? 0 : -1;
}

//  Waits until the stand-in has counted want sendMessage calls, or the
//  timeout.  Returns the count seen last.
static long
s_wait_replies (bench_client_t *c, long want)
{
    int64_t deadline = bench_mono_ns () + (int64_t) s_timeout * 1000000000LL;
    long have = 0;
    while (bench_mono_ns () < deadline) {
        have = s_calls (c, "sendMessage");
        if (have >= want)
            break;
        usleep (100000);
    }
    return have;
}

//  ---- Statistics -----------------------------------------------------------------

static void
s_row (const char *what, bench_stats_t s, double scale, const char *unit)
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
    bench_stats_t delay;   //  at_ms - inj_ms, ms
    bench_stats_t post;    //  POST /control/message, µs
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
    o.delay = bench_stats (delay, nd);
    o.post = bench_stats (post, n);
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
    bench_client_t c, floor_c;
    bench_client_init (&c, NULL, 30L);
    bench_client_init (&floor_c, NULL, 30L);
    int64_t gap_ns = 1000000000LL / s_rate;

    //  1. Fresh.
    sleep (2);
    double fresh_rss, fresh_hwm;
    bench_mem (s_gw_pid, &fresh_rss, &fresh_hwm);
    fprintf (stderr, "channels_bench: fresh RSS %.1f MiB\n", fresh_rss);

    //  2. Floor: the stand-in alone, paced like the steady phase.
    double floor_post[FLOOR_CALLS], floor_send[FLOOR_CALLS];
    bench_stats_t fp = {0, 0, 0, 0, 0}, fs = {0, 0, 0, 0, 0};
    if (s_floor_port > 0) {
        int64_t t0 = bench_mono_ns ();
        for (int i = 0; i < FLOOR_CALLS; i++) {
            char body[256];
            long long chat = FIRST_CHAT + i % s_chats;
            bench_sleep_until (t0 + (int64_t) i * gap_ns);
            snprintf (body, sizeof (body),
                      "{\"chat_id\":%lld,\"from_id\":%lld,\"text\":\"floor %d to %lld\"}",
                      chat, chat, i, chat);
            cJSON *root = bench_call (&floor_c, "channels_bench", s_floor_port,
                                      "/control/message", body, &floor_post[i]);
            if (!root)
                s_die ("the floor stand-in failed");
            cJSON_Delete (root);
        }
        t0 = bench_mono_ns ();
        for (int i = 0; i < FLOOR_CALLS; i++) {
            char body[256];
            long long chat = FIRST_CHAT + i % s_chats;
            bench_sleep_until (t0 + (int64_t) i * gap_ns);
            snprintf (body, sizeof (body),
                      "{\"chat_id\":\"%lld\",\"text\":\"floor %d to %lld\","
                      "\"reply_parameters\":{\"message_id\":%d}}",
                      chat, i, chat, i + 1);
            cJSON *root =
                bench_call (&floor_c, "channels_bench", s_floor_port,
                            "/bot123456:TEST/sendMessage", body, &floor_send[i]);
            if (!cJSON_IsTrue (cJSON_GetObjectItem (root, "ok")))
                s_die ("the floor stand-in's sendMessage failed");
            cJSON_Delete (root);
        }
        fp = bench_stats (floor_post, FLOOR_CALLS);
        fs = bench_stats (floor_send, FLOOR_CALLS);
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
    s_rss.pid = s_gw_pid;
    atomic_store (&s_rss.sampling, true);
    pthread_t sampler;
    pthread_create (&sampler, NULL, bench_sampler, &s_rss);
    bench_threads_t threads0, threads1;
    bench_cpu_threads (s_gw_pid, &threads0);
    double gw_cpu0 = bench_cpu_pid (s_gw_pid), si_cpu0 = bench_cpu_pid (s_si_pid);
    double self_cpu0 = s_cpu_self ();
    int64_t t0 = bench_mono_ns ();
    int64_t worst_late = 0;  //  Largest lag behind the schedule
    for (size_t i = 0; i < steady; i++) {
        int64_t due = t0 + (int64_t) i * gap_ns;
        bench_sleep_until (due);
        int64_t late = bench_mono_ns () - due;
        if (late > worst_late)
            worst_late = late;
        if (s_inject (&c, &msgs[i], FIRST_CHAT + (long long) (i % (size_t) s_chats),
                      (int) i, "steady")
            != 0)
            s_die ("POST /control/message failed");
    }
    double inject_s = (double) (bench_mono_ns () - t0) / 1e9;
    fprintf (stderr, "channels_bench: %zu injected in %.1f s (worst lag %.1f ms)\n",
             steady, inject_s, (double) worst_late / 1e6);
    long have = s_wait_replies (&c, base_sends + (long) steady);
    double steady_s = (double) (bench_mono_ns () - t0) / 1e9;
    double gw_cpu = bench_cpu_pid (s_gw_pid) - gw_cpu0;
    bench_cpu_threads (s_gw_pid, &threads1);
    double si_cpu = bench_cpu_pid (s_si_pid) - si_cpu0;
    double self_cpu = s_cpu_self () - self_cpu0;
    long typing = s_calls (&c, "sendChatAction") - base_typing;
    atomic_store (&s_rss.sampling, false);
    pthread_join (sampler, NULL);
    double run_rss, run_hwm;
    bench_mem (s_gw_pid, &run_rss, &run_hwm);
    if (run_rss > s_rss.peak_rss)
        s_rss.peak_rss = run_rss;
    fprintf (stderr, "channels_bench: %ld of %zu replies counted after %.1f s\n",
             have - base_sends, steady, steady_s);

    //  4. After.
    double idle_cpu0 = bench_cpu_pid (s_gw_pid);
    sleep ((unsigned) s_settle);
    double idle_cpu = bench_cpu_pid (s_gw_pid) - idle_cpu0;
    double after_rss, after_hwm;
    bench_mem (s_gw_pid, &after_rss, &after_hwm);

    //  5. Burst.
    double burst_inject_ms = 0, burst_t0_wall = 0, burst_rss = 0, burst_hwm = 0;
    double burst_gw_cpu = 0;
    if (s_burst) {
        long before = s_calls (&c, "sendMessage");
        double cpu0 = bench_cpu_pid (s_gw_pid);
        int64_t b0 = bench_mono_ns ();
        burst_t0_wall = bench_wall_ms ();
        for (size_t i = 0; i < (size_t) s_burst; i++)
            if (s_inject (&c, &msgs[steady + i],
                          FIRST_CHAT + (long long) (i % (size_t) s_chats), (int) i,
                          "burst")
                != 0)
                s_die ("POST /control/message failed");
        burst_inject_ms = (double) (bench_mono_ns () - b0) / 1e6;
        long got = s_wait_replies (&c, before + s_burst);
        burst_gw_cpu = bench_cpu_pid (s_gw_pid) - cpu0;
        fprintf (stderr, "channels_bench: burst: %ld of %d replies counted\n",
                 got - before, s_burst);
        sleep (2);
        bench_mem (s_gw_pid, &burst_rss, &burst_hwm);
    }

    //  6. Match.
    cJSON *sent =
        bench_call (&c, "channels_bench", s_tg_port, "/control/sent", NULL, NULL);
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
        s_chats, s_rss.peak_rss, run_hwm);
    printf ("| after load (%d s idle after the last reply) | %.1f MiB | %.1f MiB |\n",
            s_settle, after_rss, after_hwm);
    if (s_burst)
        printf ("| after the burst (2 s after its last reply) | %.1f MiB | %.1f MiB |\n",
                burst_rss, burst_hwm);
    printf (
        "\nchannels_bench: steady lost=%zu dup=%zu p50=%.1f p90=%.1f p99=%.1f max=%.1f ms"
        " peak_rss=%.1f MiB cpu_per_msg=%.0f us\n",
        so.lost, so.duplicated, so.delay.p50, so.delay.p90, so.delay.p99, so.delay.max,
        s_rss.peak_rss, gw_cpu / (double) steady * 1e6);
    free (msgs);
    bench_client_fini (&c);
    bench_client_fini (&floor_c);
    curl_global_cleanup ();
    return 0;
}
