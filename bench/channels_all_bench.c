/*  =========================================================================
    channels_all_bench - every chat channel: a message injected into a
    platform's stand-in until the gateway's reply lands in that stand-in's
    sent log, one platform at a time, then all five channels at once

    usage: channels_all_bench --phase single|all --pid GATEWAY_PID
                              --gw-port P --tg P --dc P --sl P --wa P
                              [--tg-floor P --dc-floor P --sl-floor P
                               --wa-floor P] [--hook NAME --hook-token T]
                              [--n N] [--rate R] [--chats C] [--seconds S]
                              [--settle S] [--timeout S]

    The gateway (dmPolicy open on every channel, model local/echo) talks
    to cg_tgstandin on --tg, cg_dcstandin on --dc (REST and the Gateway
    WebSocket), cg_slackstandin on --sl (Socket Mode) and cg_wastandin on
    --wa (Graph API; it also plays Meta pushing to the gateway's webhook).
    A message on each platform, chat k (0 .. C-1), text "cgb <p> <i>":

    - Telegram: POST /control/message {chat_id 100000+k}; the reply is the
      sendMessage with reply_to = its message_id.
    - Discord: POST /control/message {channel_id 500000+k, no guild: a
      DM}; the reply is the message whose message_reference is its id.
    - Slack: POST /control/event {kind dm, channel D5xxxxx} (via the
      socket); the reply is the chat.postMessage to that channel with the
      text (a DM reply has no thread).
    - WhatsApp: POST /control/inbound {from 1555000xxxx, wait false,
      target the gateway's /v1/channels/whatsapp/webhook}: the stand-in
      answers at once and its pusher thread posts the signed push; the
      reply is the message whose context is the push's wamid.
    - Webhook (phase all, --hook): POST /v1/hooks/NAME on the gateway with
      {message, idempotencyKey}, which answers with the run's reply; the
      delay is the response's arrival.

    delay = the reply's at_ms - the injection's CLOCK_REALTIME ms, taken
    just before the POST (the stand-ins stamp at_ms from the same clock,
    floored to the ms, so a delay reads 0 to 1 ms short, 0.5 ms on average:
    the schedule is dithered by 0-1 ms so that the injections do not all
    fall on the same fraction of a ms).  The webhook's delay is not
    floored.  Each reply's
    text must be the echo of ours and go to our chat, in reply to our
    message; lost: no reply; duplicated: replies beyond the first.

    Phase single: for each platform in turn (the others idle), N messages
    (500) at R a second (50) over C chats (100) on an absolute schedule,
    then a wait for every reply; gateway CPU per message (and per thread)
    over each platform's run.  With the --*-floor ports (stand-ins nobody
    polls or connects to), the floor first: 200 injections and 200 of the
    gateway's send calls on the stand-in alone, paced at R, each round
    trip on a kept-alive connection (the Slack stand-in closes every
    connection).  WhatsApp's injection floor is the push's arrival at a
    bare HTTP sink in this program (the stand-in's answer, its pusher's
    wake-up and a new connection), as the gateway's webhook sees it.

    Phase all: 2 s idle (fresh VmRSS), then R messages a second on each of
    the five channels (default 20, 100 in all) for S seconds (30): one
    thread per chat platform, four threads for the webhook (each POST
    waits for its run), the five schedules staggered.  A thread samples
    the gateway's VmRSS every 100 ms (peak); gateway CPU (utime + stime,
    and per thread by name) from the first injection to the last reply;
    then --settle (10) s idle and VmRSS again.

    Prints markdown tables on stdout, progress on stderr.  Exit 1 when it
    cannot set up (a control call fails); lost or duplicated replies are
    reported, not failed.
    =========================================================================
*/
#include <arpa/inet.h>
#include "bench_common.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define FLOOR_CALLS 200  //  Floor round trips of each kind, per platform
#define HOOK_THREADS 4   //  Webhook clients in phase all
#define TG_TOKEN "123456:TEST"
#define DC_TOKEN "dc-test-token"
#define SL_TOKEN "xoxb-test"
#define WA_TOKEN "wa-test-token"
#define WA_PHONE "1100000001"

typedef enum { P_TG, P_DC, P_SL, P_WA, P_HOOK, P_COUNT } plat_t;
#define P_CHAT 4  //  The chat platforms are 0 .. P_CHAT - 1

static const char *const s_name[P_COUNT] = {"Telegram", "Discord", "Slack", "WhatsApp",
                                            "webhook"};
static const char *const s_tag[P_COUNT] = {"tg", "dc", "sl", "wa", "hook"};

//  ---- Options --------------------------------------------------------------------

static const char *s_phase;
static int s_gw_pid;
static int s_gw_port;
static int s_port[P_CHAT];
static int s_floor[P_CHAT];
static const char *s_hook;
static const char *s_hook_token;
static int s_n = 500;
static int s_rate = 0;  //  0: 50 (single) or 20 (all)
static int s_chats = 100;
static int s_seconds = 30;
static int s_settle = 10;
static int s_timeout = 60;

//  ---- CPU, memory ---------------------------------------------------------------

//  CPU seconds of the threads called name between before and after.
static double
s_thread_delta (const bench_threads_t *before, const bench_threads_t *after,
                const char *name)
{
    double a = 0, b = 0;
    for (int i = 0; i < after->n; i++)
        if (!strcmp (after->name[i], name))
            a = after->cpu[i];
    for (int i = 0; i < before->n; i++)
        if (!strcmp (before->name[i], name))
            b = before->cpu[i];
    return a - b;
}

static bench_sampler_t s_rss;  //  The gateway's, while sampling

//  ---- A bare HTTP sink (WhatsApp's injection floor) -----------------------------

static int s_sink_fd = -1;
static int s_sink_port;
static atomic_long s_sink_hits;
static _Atomic double s_sink_at;  //  Wall ms of the last request read whole

//  Reads one request (headers, then Content-Length bytes), answers 200
//  and closes, one connection at a time.
static void *
s_sink (void *arg)
{
    (void) arg;
    while (true) {
        int fd = accept (s_sink_fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        char buf[16384];
        size_t have = 0;
        long want = -1;
        while (have < sizeof (buf) - 1) {
            ssize_t got = read (fd, buf + have, sizeof (buf) - 1 - have);
            if (got <= 0)
                break;
            have += (size_t) got;
            buf[have] = 0;
            char *end = strstr (buf, "\r\n\r\n");
            if (!end)
                continue;
            if (want < 0) {
                char *cl = strcasestr (buf, "content-length:");
                want = (long) (end + 4 - buf) + (cl ? atol (cl + 15) : 0);
            }
            if ((long) have >= want)
                break;
        }
        atomic_store (&s_sink_at, bench_wall_ms ());
        atomic_fetch_add (&s_sink_hits, 1);
        const char *answer = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n"
                             "Connection: close\r\n\r\n";
        if (write (fd, answer, strlen (answer)) < 0)
            perror ("channels_all_bench: sink");
        close (fd);
    }
}

static int
s_sink_start (void)
{
    s_sink_fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr = {.sin_family = AF_INET};
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof (addr);
    if (s_sink_fd < 0 || bind (s_sink_fd, (struct sockaddr *) &addr, len)
        || listen (s_sink_fd, 64)
        || getsockname (s_sink_fd, (struct sockaddr *) &addr, &len))
        return -1;
    s_sink_port = ntohs (addr.sin_port);
    pthread_t t;
    if (pthread_create (&t, NULL, s_sink, NULL))
        return -1;
    pthread_detach (t);
    return 0;
}

//  ---- Messages -------------------------------------------------------------------

typedef struct {
    plat_t p;            //  Its platform
    int chat;            //  0 .. C-1
    char text[48];       //  "cgb <tag> <index>" (the echo must match)
    char ref[64];        //  The platform's id of it (message id, ts, wamid)
    double inj_ms;       //  CLOCK_REALTIME ms just before the POST
    double post_us;      //  The injection's round trip
    bool failed;         //  The injection (or the hook call) failed
    int replies;         //  Replies to it in the sent log
    double reply_at;     //  The first one's at_ms
    bool wrong;          //  A reply with another text, chat or reference
    bool hook_repeated;  //  Webhook: answered "repeated": true
} msg_t;

//  The chat's id on p, as the sent log writes it.
static void
s_chat_id (plat_t p, int chat, char *buf, size_t cap)
{
    switch (p) {
    case P_TG: snprintf (buf, cap, "%d", 100000 + chat); break;
    case P_DC: snprintf (buf, cap, "%d", 500000 + chat); break;
    case P_SL: snprintf (buf, cap, "D5%05d", chat); break;
    case P_WA: snprintf (buf, cap, "1555%07d", chat); break;
    default: snprintf (buf, cap, "hook"); break;
    }
}

//  Injects m on its platform (port: the stand-in's, or the gateway's for
//  the webhook; target: WhatsApp's push URL).  Stamps inj_ms, post_us and
//  ref.  Returns 0, or -1 when the call failed.
static int
s_inject (bench_client_t *c, int port, msg_t *m, const char *target, int run)
{
    char body[512], chat[32];
    s_chat_id (m->p, m->chat, chat, sizeof (chat));
    const char *path = "/control/message";
    switch (m->p) {
    case P_TG:
        snprintf (body, sizeof (body), "{\"chat_id\":%s,\"from_id\":%s,\"text\":\"%s\"}",
                  chat, chat, m->text);
        break;
    case P_DC:
        snprintf (body, sizeof (body),
                  "{\"channel_id\":\"%s\",\"author_id\":\"%d\",\"content\":\"%s\"}", chat,
                  600000 + m->chat, m->text);
        break;
    case P_SL:
        path = "/control/event";
        snprintf (
            body, sizeof (body),
            "{\"kind\":\"dm\",\"channel\":\"%s\",\"user\":\"U6%05d\",\"text\":\"%s\"}",
            chat, m->chat, m->text);
        break;
    case P_WA:
        path = "/control/inbound";
        snprintf (body, sizeof (body),
                  "{\"target\":\"%s\",\"from\":\"%s\",\"text\":\"%s\",\"wait\":false}",
                  target, chat, m->text);
        break;
    default: {
        static char hook_path[128];
        snprintf (hook_path, sizeof (hook_path), "/v1/hooks/%s", s_hook);
        path = hook_path;
        snprintf (body, sizeof (body),
                  "{\"message\":\"%s\",\"idempotencyKey\":\"%d-%d-%s\"}", m->text,
                  getpid (), run, m->text);
        break;
    }
    }
    m->inj_ms = bench_wall_ms ();
    cJSON *root = bench_call (c, "channels_all_bench", port, path, body, &m->post_us);
    if (!root) {
        m->failed = true;
        return -1;
    }
    cJSON *id = NULL;
    switch (m->p) {
    case P_TG: id = cJSON_GetObjectItem (root, "message_id"); break;
    case P_DC: id = cJSON_GetObjectItem (root, "id"); break;
    case P_SL: id = cJSON_GetObjectItem (root, "ts"); break;
    case P_WA: id = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "ids"), 0); break;
    default: {
        //  The reply is the response: its arrival is the reply's time.
        m->reply_at = m->inj_ms + m->post_us / 1e3;
        m->replies = 1;
        const char *text = cJSON_GetStringValue (cJSON_GetObjectItem (root, "response"));
        m->wrong = !text || strcmp (text, m->text);
        m->hook_repeated = cJSON_IsTrue (cJSON_GetObjectItem (root, "repeated"));
        break;
    }
    }
    if (cJSON_IsNumber (id))
        snprintf (m->ref, sizeof (m->ref), "%lld", (long long) id->valuedouble);
    else if (cJSON_IsString (id))
        snprintf (m->ref, sizeof (m->ref), "%s", id->valuestring);
    cJSON_Delete (root);
    if (m->p != P_HOOK && !m->ref[0]) {
        m->failed = true;
        return -1;
    }
    return 0;
}

//  The stand-in's count of reply sends, -1 on failure.
static long
s_sends (bench_client_t *c, plat_t p)
{
    cJSON *root =
        bench_call (c, "channels_all_bench", s_port[p], "/control/calls", NULL, NULL);
    cJSON *item = NULL;
    switch (p) {
    case P_TG: item = cJSON_GetObjectItem (root, "sendMessage"); break;
    case P_DC: item = cJSON_GetObjectItem (root, "messages"); break;
    case P_SL:
        item = cJSON_GetObjectItem (cJSON_GetObjectItem (root, "methods"),
                                    "chat.postMessage");
        break;
    case P_WA: item = cJSON_GetObjectItem (root, "text"); break;
    default: break;
    }
    long n = !root ? -1 : cJSON_IsNumber (item) ? (long) item->valuedouble : 0;
    cJSON_Delete (root);
    return n;
}

//  Waits until the stand-in of p counts want sends, or the timeout.
//  Returns the count seen last.
static long
s_wait_sends (bench_client_t *c, plat_t p, long want)
{
    int64_t deadline = bench_mono_ns () + (int64_t) s_timeout * 1000000000LL;
    long have = 0;
    while (bench_mono_ns () < deadline) {
        have = s_sends (c, p);
        if (have >= want)
            break;
        usleep (50000);
    }
    return have;
}

//  Matches the sent log of p against msgs (whose texts are "cgb <tag> i",
//  i their index).  Returns the stray replies (to no message of ours).
static long
s_match (bench_client_t *c, plat_t p, msg_t *msgs, size_t n)
{
    cJSON *sent =
        bench_call (c, "channels_all_bench", s_port[p], "/control/sent", NULL, NULL);
    if (!sent) {
        fprintf (stderr, "channels_all_bench: no sent log from %s\n", s_name[p]);
        return -1;
    }
    static const char *const text_key[] = {"text", "content", "text", "body"};
    static const char *const chat_key[] = {"chat_id", "channel_id", "channel", "to"};
    static const char *const ref_key[] = {"reply_to", "message_reference", NULL,
                                          "context"};
    long stray = 0;
    cJSON *entry;
    cJSON_ArrayForEach (entry, cJSON_GetObjectItem (sent, "messages"))
    {
        const char *text =
            cJSON_GetStringValue (cJSON_GetObjectItem (entry, text_key[p]));
        const char *chat =
            cJSON_GetStringValue (cJSON_GetObjectItem (entry, chat_key[p]));
        char tag[8];
        int i = -1;
        if (!text || sscanf (text, "cgb %7s %d", tag, &i) != 2 || strcmp (tag, s_tag[p])
            || i < 0 || (size_t) i >= n) {
            stray++;
            continue;
        }
        msg_t *m = &msgs[i];
        char want_chat[32], ref[64] = "";
        s_chat_id (p, m->chat, want_chat, sizeof (want_chat));
        if (ref_key[p]) {
            cJSON *r = cJSON_GetObjectItem (entry, ref_key[p]);
            if (cJSON_IsNumber (r))
                snprintf (ref, sizeof (ref), "%lld", (long long) r->valuedouble);
            else if (cJSON_IsString (r))
                snprintf (ref, sizeof (ref), "%s", r->valuestring);
        }
        if (m->replies++ == 0)
            m->reply_at = cJSON_GetNumberValue (cJSON_GetObjectItem (entry, "at_ms"));
        if (strcmp (text, m->text) || !chat || strcmp (chat, want_chat)
            || (ref_key[p] && strcmp (ref, m->ref)))
            m->wrong = true;
    }
    cJSON_Delete (sent);
    return stray;
}

//  ---- Statistics -----------------------------------------------------------------

typedef struct {
    size_t lost, duplicated, wrong, failed, repeated;
    bench_stats_t delay;  //  reply at_ms - inj_ms, ms
    bench_stats_t post;   //  The injection's round trip, µs
} outcome_t;

static outcome_t
s_outcome (const msg_t *msgs, size_t n)
{
    outcome_t o;
    memset (&o, 0, sizeof (o));
    double *delay = (double *) calloc (n + 1, sizeof (double));
    double *post = (double *) calloc (n + 1, sizeof (double));
    size_t nd = 0, np = 0;
    for (size_t i = 0; i < n; i++) {
        const msg_t *m = &msgs[i];
        if (m->failed) {
            o.failed++;
            o.lost++;
            continue;
        }
        post[np++] = m->post_us;
        o.repeated += m->hook_repeated;
        if (!m->replies) {
            o.lost++;
            continue;
        }
        o.duplicated += (size_t) (m->replies - 1);
        o.wrong += m->wrong;
        delay[nd++] = m->reply_at - m->inj_ms;
    }
    o.delay = bench_stats (delay, nd);
    o.post = bench_stats (post, np);
    free (delay);
    free (post);
    return o;
}

static void
s_cells (bench_stats_t s, double scale)
{
    printf (" %.2f | %.2f | %.2f | %.2f |", s.p50 * scale, s.p90 * scale, s.p99 * scale,
            s.max * scale);
}

//  ---- Floor ----------------------------------------------------------------------

typedef struct {
    bench_stats_t inject;  //  The injection call (WhatsApp: until the push arrives), µs
    bench_stats_t send;    //  The gateway's send call, µs
    bool done;
} floor_t;

//  The stand-in alone: FLOOR_CALLS injections, then FLOOR_CALLS of the
//  calls the gateway makes to reply, paced at the rate.
static floor_t
s_floor_run (plat_t p, int64_t gap_ns)
{
    floor_t f;
    memset (&f, 0, sizeof (f));
    int port = s_floor[p];
    if (port <= 0)
        return f;
    static const char *const auth[] = {NULL, "Authorization: Bot " DC_TOKEN,
                                       "Authorization: Bearer " SL_TOKEN,
                                       "Authorization: Bearer " WA_TOKEN};
    bench_client_t inj, snd;
    bench_client_init (&inj, NULL, 60L);
    bench_client_init (&snd, auth[p], 60L);
    double in_us[FLOOR_CALLS], out_us[FLOOR_CALLS];
    msg_t *msgs = (msg_t *) calloc (FLOOR_CALLS, sizeof (msg_t));
    char target[96];
    snprintf (target, sizeof (target), "http://127.0.0.1:%d/hook", s_sink_port);
    int64_t t0 = bench_mono_ns ();
    for (int i = 0; i < FLOOR_CALLS; i++) {
        msg_t *m = &msgs[i];
        m->p = p;
        m->chat = i % s_chats;
        snprintf (m->text, sizeof (m->text), "cgb %s %d", s_tag[p], i);
        bench_sleep_until (t0 + (int64_t) i * gap_ns);
        long hits = atomic_load (&s_sink_hits);
        if (s_inject (&inj, port, m, p == P_WA ? target : NULL, 0)) {
            fprintf (stderr, "channels_all_bench: the %s floor stand-in failed\n",
                     s_name[p]);
            exit (1);
        }
        in_us[i] = m->post_us;
        if (p == P_WA) {
            //  Until the push reaches the sink, as the gateway's webhook.
            int64_t deadline = bench_mono_ns () + 2000000000LL;
            while (atomic_load (&s_sink_hits) == hits && bench_mono_ns () < deadline)
                usleep (50);
            in_us[i] = (atomic_load (&s_sink_at) - m->inj_ms) * 1e3;
        }
    }
    t0 = bench_mono_ns ();
    for (int i = 0; i < FLOOR_CALLS; i++) {
        msg_t *m = &msgs[i];
        char body[512], path[128], chat[32];
        s_chat_id (p, m->chat, chat, sizeof (chat));
        switch (p) {
        case P_TG:
            snprintf (path, sizeof (path), "/bot" TG_TOKEN "/sendMessage");
            snprintf (body, sizeof (body),
                      "{\"chat_id\":\"%s\",\"text\":\"%s\",\"reply_parameters\":"
                      "{\"message_id\":%s}}",
                      chat, m->text, m->ref);
            break;
        case P_DC:
            snprintf (path, sizeof (path), "/api/v10/channels/%s/messages", chat);
            snprintf (body, sizeof (body),
                      "{\"content\":\"%s\",\"nonce\":\"cgb%d\",\"enforce_nonce\":true,"
                      "\"message_reference\":{\"message_id\":\"%s\"},"
                      "\"allowed_mentions\":{\"parse\":[]}}",
                      m->text, i, m->ref);
            break;
        case P_SL:
            snprintf (path, sizeof (path), "/api/chat.postMessage");
            snprintf (body, sizeof (body), "{\"channel\":\"%s\",\"text\":\"%s\"}", chat,
                      m->text);
            break;
        default:
            snprintf (path, sizeof (path), "/v21.0/" WA_PHONE "/messages");
            snprintf (body, sizeof (body),
                      "{\"messaging_product\":\"whatsapp\",\"recipient_type\":"
                      "\"individual\",\"to\":\"%s\",\"type\":\"text\",\"text\":"
                      "{\"body\":\"%s\",\"preview_url\":false},\"context\":"
                      "{\"message_id\":\"%s\"}}",
                      chat, m->text, m->ref);
            break;
        }
        bench_sleep_until (t0 + (int64_t) i * gap_ns);
        cJSON *root =
            bench_call (&snd, "channels_all_bench", port, path, body, &out_us[i]);
        if (!root || (p == P_SL && !cJSON_IsTrue (cJSON_GetObjectItem (root, "ok")))) {
            fprintf (stderr, "channels_all_bench: the %s floor stand-in's send failed\n",
                     s_name[p]);
            exit (1);
        }
        cJSON_Delete (root);
    }
    f.inject = bench_stats (in_us, FLOOR_CALLS);
    f.send = bench_stats (out_us, FLOOR_CALLS);
    f.done = true;
    free (msgs);
    bench_client_fini (&inj);
    bench_client_fini (&snd);
    return f;
}

//  ---- Injection threads ----------------------------------------------------------

typedef struct {
    plat_t p;
    msg_t *msgs;      //  The platform's messages
    size_t n;         //  How many
    size_t first;     //  This thread's first index
    size_t step;      //  And its stride
    int64_t t0;       //  Schedule start (message i at t0 + i * gap_ns)
    int64_t gap_ns;   //  Between two messages of the platform
    int run;          //  For idempotency keys
    int64_t worst;    //  Largest lag behind the schedule, ns
    size_t failures;  //  Injections that failed
} injector_t;

static void *
s_injector (void *arg)
{
    injector_t *j = (injector_t *) arg;
    bench_client_t c;
    char auth[160], target[128];
    snprintf (auth, sizeof (auth), "Authorization: Bearer %s",
              s_hook_token ? s_hook_token : "");
    snprintf (target, sizeof (target), "http://127.0.0.1:%d/v1/channels/whatsapp/webhook",
              s_gw_port);
    bench_client_init (&c, j->p == P_HOOK ? auth : NULL, 60L);
    int port = j->p == P_HOOK ? s_gw_port : s_port[j->p];
    for (size_t i = j->first; i < j->n; i += j->step) {
        //  Dithered by 0-1 ms: at_ms is whole ms, and on a strict schedule
        //  every injection would fall on the same fraction of a ms.
        int64_t due =
            j->t0 + (int64_t) i * j->gap_ns + (int64_t) (i * 7919 % 1000) * 1000;
        bench_sleep_until (due);
        int64_t late = bench_mono_ns () - due;
        if (late > j->worst)
            j->worst = late;
        if (s_inject (&c, port, &j->msgs[i], target, j->run))
            j->failures++;
    }
    bench_client_fini (&c);
    return NULL;
}

static msg_t *
s_msgs_new (plat_t p, size_t n)
{
    msg_t *msgs = (msg_t *) calloc (n, sizeof (msg_t));
    for (size_t i = 0; i < n; i++) {
        msgs[i].p = p;
        msgs[i].chat = (int) (i % (size_t) s_chats);
        snprintf (msgs[i].text, sizeof (msgs[i].text), "cgb %s %zu", s_tag[p], i);
    }
    return msgs;
}

static void
s_thread_rows (const bench_threads_t *t0, const bench_threads_t *t1, double per)
{
    printf ("\n| gateway thread | CPU per message |\n|---|--:|\n");
    for (int i = 0; i < t1->n; i++) {
        double us = s_thread_delta (t0, t1, t1->name[i]) / per * 1e6;
        if (us >= 1)
            printf ("| %s | %.0f µs |\n", t1->name[i], us);
    }
}

//  ---- Phase single ---------------------------------------------------------------

static void
s_phase_single (void)
{
    int rate = s_rate > 0 ? s_rate : 50;
    int64_t gap_ns = 1000000000LL / rate;
    floor_t floors[P_CHAT];
    for (int p = 0; p < P_CHAT; p++) {
        floors[p] = s_floor_run ((plat_t) p, gap_ns);
        if (floors[p].done)
            fprintf (stderr,
                     "channels_all_bench: %s floor: injection p50 %.0f µs, send p50 "
                     "%.0f µs\n",
                     s_name[p], floors[p].inject.p50, floors[p].send.p50);
    }
    outcome_t out[P_CHAT];
    long stray[P_CHAT];
    double cpu[P_CHAT], chan_cpu[P_CHAT], secs[P_CHAT], worst[P_CHAT];
    bench_threads_t th0[P_CHAT], th1[P_CHAT];
    bench_client_t c;
    bench_client_init (&c, NULL, 60L);
    for (int p = 0; p < P_CHAT; p++) {
        msg_t *msgs = s_msgs_new ((plat_t) p, (size_t) s_n);
        long base = s_sends (&c, (plat_t) p);
        if (base < 0) {
            fprintf (stderr, "channels_all_bench: %s: GET /control/calls failed\n",
                     s_name[p]);
            exit (1);
        }
        bench_cpu_threads (s_gw_pid, &th0[p]);
        double cpu0 = bench_cpu_pid (s_gw_pid);
        int64_t t0 = bench_mono_ns () + 20000000;
        injector_t j = {(plat_t) p, msgs, (size_t) s_n, 0, 1, t0, gap_ns, 0, 0, 0};
        s_injector (&j);
        long have = s_wait_sends (&c, (plat_t) p, base + s_n);
        secs[p] = (double) (bench_mono_ns () - t0) / 1e9;
        cpu[p] = bench_cpu_pid (s_gw_pid) - cpu0;
        bench_cpu_threads (s_gw_pid, &th1[p]);
        chan_cpu[p] = s_thread_delta (&th0[p], &th1[p], "cg-channel");
        worst[p] = (double) j.worst / 1e6;
        fprintf (stderr,
                 "channels_all_bench: %s: %ld of %d replies counted after %.1f s"
                 " (worst lag %.1f ms)\n",
                 s_name[p], have - base, s_n, secs[p], worst[p]);
        //  Late replies (a resend) would still come: a moment for them.
        sleep (1);
        stray[p] = s_match (&c, (plat_t) p, msgs, (size_t) s_n);
        out[p] = s_outcome (msgs, (size_t) s_n);
        free (msgs);
    }
    bench_client_fini (&c);

    printf ("\n### One platform at a time: %d messages at %d/s over %d chats each\n", s_n,
            rate, s_chats);
    printf ("\n| injection -> reply at_ms (ms) | n | p50 | p90 | p99 | max |\n"
            "|---|--:|--:|--:|--:|--:|\n");
    for (int p = 0; p < P_CHAT; p++) {
        printf ("| %s | %zu |", s_name[p], out[p].delay.n);
        s_cells (out[p].delay, 1);
        printf ("\n");
    }
    printf ("\n| floor, stand-in alone (%d calls at %d/s; ms) | p50 | p90 | p99 | max |\n"
            "|---|--:|--:|--:|--:|\n",
            FLOOR_CALLS, rate);
    static const char *const inj_name[] = {
        "POST /control/message", "POST /control/message (DM)", "POST /control/event dm",
        "POST /control/inbound -> push at a bare sink"};
    static const char *const send_name[] = {"sendMessage", "POST channels/{id}/messages",
                                            "chat.postMessage (new connection)",
                                            "POST {phone}/messages"};
    for (int p = 0; p < P_CHAT; p++) {
        if (!floors[p].done)
            continue;
        printf ("| %s: %s |", s_name[p], inj_name[p]);
        s_cells (floors[p].inject, 1e-3);
        printf ("\n| %s: %s |", s_name[p], send_name[p]);
        s_cells (floors[p].send, 1e-3);
        printf ("\n");
    }
    printf ("\n| platform | lost | dup | stray | wrong | injection RTT p50 / p99 under "
            "load | worst lag | gateway CPU per message | of which cg-channel |\n"
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (int p = 0; p < P_CHAT; p++)
        printf ("| %s | %zu | %zu | %ld | %zu | %.2f / %.2f ms | %.1f ms | %.0f µs | "
                "%.0f µs |\n",
                s_name[p], out[p].lost, out[p].duplicated, stray[p], out[p].wrong,
                out[p].post.p50 / 1e3, out[p].post.p99 / 1e3, worst[p],
                cpu[p] / s_n * 1e6, chan_cpu[p] / s_n * 1e6);
    for (int p = 0; p < P_CHAT; p++) {
        printf ("\n%s:", s_name[p]);
        s_thread_rows (&th0[p], &th1[p], s_n);
    }
    for (int p = 0; p < P_CHAT; p++)
        printf ("channels_all_bench: single %s n=%d lost=%zu dup=%zu p50=%.1f p90=%.1f "
                "p99=%.1f max=%.1f ms cpu_per_msg=%.0f us\n",
                s_tag[p], s_n, out[p].lost, out[p].duplicated, out[p].delay.p50,
                out[p].delay.p90, out[p].delay.p99, out[p].delay.max, cpu[p] / s_n * 1e6);
}

//  ---- Phase all ------------------------------------------------------------------

static void
s_phase_all (void)
{
    int rate = s_rate > 0 ? s_rate : 20;
    int64_t gap_ns = 1000000000LL / rate;
    size_t n = (size_t) rate * (size_t) s_seconds;
    int platforms = s_hook ? P_COUNT : P_CHAT;

    //  Fresh.
    sleep (2);
    double fresh_rss, fresh_hwm;
    bench_mem (s_gw_pid, &fresh_rss, &fresh_hwm);
    fprintf (stderr, "channels_all_bench: fresh RSS %.1f MiB\n", fresh_rss);

    bench_client_t c;
    bench_client_init (&c, NULL, 60L);
    msg_t *msgs[P_COUNT];
    long base[P_COUNT];
    for (int p = 0; p < platforms; p++) {
        msgs[p] = s_msgs_new ((plat_t) p, n);
        if (p < P_CHAT && (base[p] = s_sends (&c, (plat_t) p)) < 0) {
            fprintf (stderr, "channels_all_bench: %s: GET /control/calls failed\n",
                     s_name[p]);
            exit (1);
        }
    }
    s_rss.pid = s_gw_pid;
    atomic_store (&s_rss.sampling, true);
    pthread_t sampler;
    pthread_create (&sampler, NULL, bench_sampler, &s_rss);
    bench_threads_t th0, th1;
    bench_cpu_threads (s_gw_pid, &th0);
    double cpu0 = bench_cpu_pid (s_gw_pid);
    int64_t t0 = bench_mono_ns () + 50000000;
    int nj = P_CHAT + (s_hook ? HOOK_THREADS : 0);
    injector_t jobs[P_CHAT + HOOK_THREADS];
    pthread_t threads[P_CHAT + HOOK_THREADS];
    for (int k = 0; k < nj; k++) {
        plat_t p = k < P_CHAT ? (plat_t) k : P_HOOK;
        //  Staggered: platform p starts p fifths of a gap after the first.
        injector_t j = {p,
                        msgs[p],
                        n,
                        k < P_CHAT ? 0 : (size_t) (k - P_CHAT),
                        k < P_CHAT ? 1 : HOOK_THREADS,
                        t0 + (int64_t) p * gap_ns / P_COUNT,
                        gap_ns,
                        1,
                        0,
                        0};
        jobs[k] = j;
        pthread_create (&threads[k], NULL, s_injector, &jobs[k]);
    }
    int64_t worst[P_COUNT] = {0};
    size_t failures[P_COUNT] = {0};
    for (int k = 0; k < nj; k++) {
        pthread_join (threads[k], NULL);
        if (jobs[k].worst > worst[jobs[k].p])
            worst[jobs[k].p] = jobs[k].worst;
        failures[jobs[k].p] += jobs[k].failures;
    }
    double inject_s = (double) (bench_mono_ns () - t0) / 1e9;
    fprintf (stderr, "channels_all_bench: injected in %.1f s\n", inject_s);
    long have[P_CHAT];
    for (int p = 0; p < P_CHAT; p++)
        have[p] = s_wait_sends (&c, (plat_t) p, base[p] + (long) n) - base[p];
    double run_s = (double) (bench_mono_ns () - t0) / 1e9;
    double cpu = bench_cpu_pid (s_gw_pid) - cpu0;
    bench_cpu_threads (s_gw_pid, &th1);
    atomic_store (&s_rss.sampling, false);
    pthread_join (sampler, NULL);
    double run_rss, run_hwm;
    bench_mem (s_gw_pid, &run_rss, &run_hwm);
    if (run_rss > s_rss.peak_rss)
        s_rss.peak_rss = run_rss;
    for (int p = 0; p < P_CHAT; p++)
        fprintf (stderr, "channels_all_bench: %s: %ld of %zu replies counted\n",
                 s_name[p], have[p], n);

    //  After.
    double idle0 = bench_cpu_pid (s_gw_pid);
    sleep ((unsigned) s_settle);
    double idle = bench_cpu_pid (s_gw_pid) - idle0;
    double after_rss, after_hwm;
    bench_mem (s_gw_pid, &after_rss, &after_hwm);

    outcome_t out[P_COUNT];
    long stray[P_COUNT] = {0};
    size_t total = 0;
    for (int p = 0; p < platforms; p++) {
        if (p < P_CHAT)
            stray[p] = s_match (&c, (plat_t) p, msgs[p], n);
        out[p] = s_outcome (msgs[p], n);
        total += n;
    }
    bench_client_fini (&c);

    printf ("\n### All at once: %d messages/s on each of %d channels (%d/s) for %d s\n",
            rate, platforms, rate * platforms, s_seconds);
    printf ("\n| channel | n | p50 | p90 | p99 | max | lost | dup | stray | wrong | "
            "worst lag |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
    for (int p = 0; p < platforms; p++) {
        printf ("| %s%s | %zu |", s_name[p],
                p == P_HOOK ? " (POST /v1/hooks round trip)" : "", out[p].delay.n);
        s_cells (out[p].delay, 1);
        printf (" %zu | %zu | %ld | %zu | %.1f ms |\n", out[p].lost, out[p].duplicated,
                stray[p], out[p].wrong, (double) worst[p] / 1e6);
    }
    printf ("\n| figure | value |\n|---|--:|\n");
    printf ("| messages / injection took / first injection to last reply counted | %zu "
            "/ %.1f s / %.1f s |\n",
            total, inject_s, run_s);
    printf ("| gateway CPU per message (utime+stime over %.1f s) | %.0f µs (%.0f %% of a "
            "core) |\n",
            run_s, cpu / (double) total * 1e6, cpu / run_s * 100);
    printf ("| of which cg-channel | %.0f µs (%.0f %% of a core) |\n",
            s_thread_delta (&th0, &th1, "cg-channel") / (double) total * 1e6,
            s_thread_delta (&th0, &th1, "cg-channel") / run_s * 100);
    printf ("| gateway CPU idle, the %d s after | %.1f %% of a core |\n", s_settle,
            s_settle ? idle / s_settle * 100 : 0);
    if (s_hook)
        printf ("| webhook: failed calls / answered \"repeated\" | %zu / %zu |\n",
                out[P_HOOK].failed, out[P_HOOK].repeated);
    for (int p = 0; p < platforms; p++)
        if (failures[p])
            printf ("| %s: injections that failed | %zu |\n", s_name[p], failures[p]);
    printf ("\n| gateway RSS | VmRSS | VmHWM |\n|---|--:|--:|\n");
    printf ("| fresh (idle 2 s) | %.1f MiB | %.1f MiB |\n", fresh_rss, fresh_hwm);
    printf ("| during the run (peak VmRSS sampled every 100 ms; VmHWM at the end) | "
            "%.1f MiB | %.1f MiB |\n",
            s_rss.peak_rss, run_hwm);
    printf ("| %d s after the last reply | %.1f MiB | %.1f MiB |\n", s_settle, after_rss,
            after_hwm);
    s_thread_rows (&th0, &th1, (double) total);
    printf ("channels_all_bench: all");
    for (int p = 0; p < platforms; p++)
        printf (" %s p50=%.1f p99=%.1f lost=%zu dup=%zu;", s_tag[p], out[p].delay.p50,
                out[p].delay.p99, out[p].lost, out[p].duplicated);
    printf (" rss fresh/peak/after=%.1f/%.1f/%.1f MiB cpu_per_msg=%.0f us\n", fresh_rss,
            s_rss.peak_rss, after_rss, cpu / (double) total * 1e6);
    for (int p = 0; p < platforms; p++)
        free (msgs[p]);
}

//  ---- Main -----------------------------------------------------------------------

static void
s_usage (void)
{
    fprintf (stderr, "usage: channels_all_bench --phase single|all --pid GATEWAY_PID"
                     " --gw-port P --tg P --dc P --sl P --wa P [--tg-floor P"
                     " --dc-floor P --sl-floor P --wa-floor P] [--hook NAME"
                     " --hook-token T] [--n N] [--rate R] [--chats C] [--seconds S]"
                     " [--settle S] [--timeout S]\n");
    exit (2);
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
        static const char *const ports[] = {"--tg", "--dc", "--sl", "--wa"};
        static const char *const floors[] = {"--tg-floor", "--dc-floor", "--sl-floor",
                                             "--wa-floor"};
        bool done = false;
        for (int p = 0; p < P_CHAT && !done; p++) {
            if (!strcmp (a, ports[p]))
                s_port[p] = n, done = true;
            else if (!strcmp (a, floors[p]))
                s_floor[p] = n, done = true;
        }
        if (done)
            continue;
        if (!strcmp (a, "--phase"))
            s_phase = v;
        else if (!strcmp (a, "--pid"))
            s_gw_pid = n;
        else if (!strcmp (a, "--gw-port"))
            s_gw_port = n;
        else if (!strcmp (a, "--hook"))
            s_hook = v;
        else if (!strcmp (a, "--hook-token"))
            s_hook_token = v;
        else if (!strcmp (a, "--n"))
            s_n = n;
        else if (!strcmp (a, "--rate"))
            s_rate = n;
        else if (!strcmp (a, "--chats"))
            s_chats = n;
        else if (!strcmp (a, "--seconds"))
            s_seconds = n;
        else if (!strcmp (a, "--settle"))
            s_settle = n;
        else if (!strcmp (a, "--timeout"))
            s_timeout = n;
        else
            s_usage ();
    }
    bool ports = true;
    for (int p = 0; p < P_CHAT; p++)
        ports = ports && s_port[p] > 0;
    if (!s_phase || s_gw_pid <= 0 || s_gw_port <= 0 || !ports || s_n < 1 || s_chats < 1
        || s_seconds < 1 || s_settle < 0 || s_rate < 0 || (s_hook && !s_hook_token))
        s_usage ();
    curl_global_init (CURL_GLOBAL_DEFAULT);
    if (s_sink_start ()) {
        perror ("channels_all_bench: sink");
        return 1;
    }
    char load[64] = "";
    bench_slurp ("/proc/loadavg", load, sizeof (load));
    fprintf (stderr, "channels_all_bench: phase %s, load average %.14s\n", s_phase, load);
    if (!strcmp (s_phase, "single"))
        s_phase_single ();
    else if (!strcmp (s_phase, "all"))
        s_phase_all ();
    else
        s_usage ();
    bench_slurp ("/proc/loadavg", load, sizeof (load));
    printf ("\nload average after the phase: %.14s\n", load);
    curl_global_cleanup ();
    return 0;
}
