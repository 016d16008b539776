/*  =========================================================================
    soak - a mixed, steady load on a running gateway for bench/soak.sh

    usage: soak ramp PORT TOKEN SECONDS_PER_STEP
           soak run  PORT TOKEN RATE SECONDS [THREADS]

    ramp: runs the mix closed-loop (each thread starts its next operation
    when the last one ends) at 1, 2, 4, ... 64 threads and prints
    "capacity OPS_PER_S" for the best step (the last that gained >= 5%).
    run: starts operations at RATE per second (open loop, paced by one
    shared clock) for SECONDS, then checks that every session it used
    accepts a new run, and prints one line of counts per operation:
        op NAME ok N unexpected N
    and a last line "unexpected TOTAL".  Exit 1 if any was unexpected.

    The mix, by weight:
      chat        POST /v1/chat/completions, openai/gpt-4o-mini (stand-in)
      chat_stream the same, stream: true, must end in [DONE]
      agent_run   POST /v1/agent/run on one of 300 sessions (echo model)
      ws_run      WebSocket chat.run on a new session until chat.done
      ws_abort    WebSocket chat.run on openai/slow, chat.abort after the
                  first delta: chat.done with finishReason aborted
      hangup      POST /v1/agent/run/stream on openai/slow, hang up after
                  the first delta
      garbage     a random body to a random POST route (400), or random
                  bytes on a raw connection (4xx or a close)
    Loopback only; the load is bounded by RATE and SECONDS.
    =========================================================================
*/
#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define AGENT_SESSIONS 300
#define CHECK_THREADS 8
#define OP_TIMEOUT_MS 30000

enum {
    OP_CHAT,
    OP_CHAT_STREAM,
    OP_AGENT,
    OP_WS_RUN,
    OP_WS_ABORT,
    OP_HANGUP,
    OP_GARBAGE,
    OP_N
};
static const char *s_op_names[OP_N] = {"chat",     "chat_stream", "agent_run", "ws_run",
                                       "ws_abort", "hangup",      "garbage"};
static const int s_weights[OP_N] = {20, 20, 25, 12, 5, 8, 10};

static int s_port;
static const char *s_token;
static char s_auth[256];
static atomic_long s_ok[OP_N], s_bad[OP_N];
static atomic_bool s_stop;
static atomic_long s_next_slot;  //  Open-loop pacing (ns ticks)
static double s_interval_ns;     //  0: closed loop
static int64_t s_t0;

//  Sessions used outside the fixed 300, for the final check.
static pthread_mutex_t s_keys_lock = PTHREAD_MUTEX_INITIALIZER;
static char (*s_keys)[48];
static size_t s_nkeys, s_keys_cap;

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int64_t
s_now_ms (void)
{
    return s_now_ns () / 1000000;
}

static uint64_t
s_rand (uint64_t *st)
{
    *st ^= *st >> 12;
    *st ^= *st << 25;
    *st ^= *st >> 27;
    return *st * 2685821657736338717ULL;
}

static void
s_key_add (const char *key)
{
    pthread_mutex_lock (&s_keys_lock);
    if (s_nkeys == s_keys_cap) {
        size_t cap = s_keys_cap ? s_keys_cap * 2 : 65536;
        void *grown = realloc (s_keys, cap * sizeof (s_keys[0]));
        if (grown) {
            s_keys = grown;
            s_keys_cap = cap;
        }
    }
    if (s_nkeys < s_keys_cap)
        snprintf (s_keys[s_nkeys++], sizeof (s_keys[0]), "%s", key);
    pthread_mutex_unlock (&s_keys_lock);
}

static void
s_unexpected (int op, const char *fmt, ...)
{
    atomic_fetch_add (&s_bad[op], 1);
    static atomic_int shown;
    if (atomic_fetch_add (&shown, 1) < 30) {
        char msg[512];
        va_list ap;
        va_start (ap, fmt);
        vsnprintf (msg, sizeof (msg), fmt, ap);
        va_end (ap);
        fprintf (stderr, "soak: unexpected in %s at +%llds: %s\n", s_op_names[op],
                 (long long) ((s_now_ms () - s_t0) / 1000), msg);
    }
}

//  ---- HTTP through libcurl ------------------------------------------------------

typedef struct {
    char *data;
    size_t len, cap;
    size_t stop_at;       //  > 0: abort the transfer past this many
    const char *stop_on;  //  or once this string was received
} buf_t;

static size_t
s_on_body (char *p, size_t sz, size_t nm, void *arg)
{
    buf_t *b = (buf_t *) arg;
    size_t n = sz * nm;
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->data = (char *) realloc (b->data, b->cap);
    }
    memcpy (b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
    if (b->stop_on && strstr (b->data, b->stop_on))
        return 0;  //  Hang up
    return n;
}

//  One POST on the thread's own handle (keep-alive).  Returns the status,
//  0 if there was none; body into b.
static long
s_post (CURL *c, const char *path, const char *extra, const char *body, size_t len,
        buf_t *b)
{
    char url[256];
    snprintf (url, sizeof (url), "http://127.0.0.1:%d%s", s_port, path);
    struct curl_slist *h = curl_slist_append (NULL, s_auth);
    h = curl_slist_append (h, "Content-Type: application/json");
    if (extra)
        h = curl_slist_append (h, extra);
    curl_easy_reset (c);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE, (long) len);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, (long) OP_TIMEOUT_MS);
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
    CURLcode rc = curl_easy_perform (c);
    long status = 0;
    if (rc == CURLE_OK || rc == CURLE_WRITE_ERROR)
        curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all (h);
    return rc == CURLE_OK || rc == CURLE_WRITE_ERROR ? status : 0;
}

//  ---- WebSocket on a raw socket --------------------------------------------------

static int
s_connect (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons ((uint16_t) s_port);
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (fd >= 0 && connect (fd, (struct sockaddr *) &a, sizeof (a))) {
        close (fd);
        return -1;
    }
    return fd;
}

typedef struct {
    int fd;
    char buf[1 << 16];
    size_t len;
} ws_t;

//  Waits up to 1 s (and never past until) for bytes and appends them to
//  w->buf.  1: some came; 0: none yet; -1: timeout, close or error.
static int
s_ws_fill (ws_t *w, int64_t until)
{
    struct pollfd p = {w->fd, POLLIN, 0};
    int64_t left = until - s_now_ms ();
    if (left <= 0 || poll (&p, 1, (int) (left > 1000 ? 1000 : left)) < 0)
        return -1;
    if (!p.revents)
        return 0;
    ssize_t k = recv (w->fd, w->buf + w->len, sizeof (w->buf) - w->len, 0);
    if (k <= 0)
        return -1;
    w->len += (size_t) k;
    return 1;
}

static int
s_ws_open (ws_t *w)
{
    w->len = 0;
    w->fd = s_connect ();
    if (w->fd < 0)
        return -1;
    char req[512];
    int n = snprintf (req, sizeof (req),
                      "GET /?token=%s HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n",
                      s_token);
    if (send (w->fd, req, (size_t) n, MSG_NOSIGNAL) != n)
        return -1;
    int64_t until = s_now_ms () + OP_TIMEOUT_MS;
    char *end;
    while (!(end = memmem (w->buf, w->len, "\r\n\r\n", 4)))
        if (s_ws_fill (w, until) < 0)
            return -1;
    if (strncmp (w->buf, "HTTP/1.1 101", 12))
        return -1;
    size_t hl = (size_t) (end - w->buf) + 4;
    memmove (w->buf, w->buf + hl, w->len - hl);
    w->len -= hl;
    return 0;
}

static int
s_ws_send (ws_t *w, const char *text)
{
    size_t len = strlen (text);
    unsigned char hdr[14];
    size_t hl = 0;
    hdr[hl++] = 0x81;
    if (len < 126)
        hdr[hl++] = (unsigned char) (0x80 | len);
    else {
        hdr[hl++] = 0x80 | 126;
        hdr[hl++] = (unsigned char) (len >> 8);
        hdr[hl++] = (unsigned char) len;
    }
    static const unsigned char mask[4] = {1, 2, 3, 4};
    memcpy (hdr + hl, mask, 4);
    hl += 4;
    char *out = (char *) malloc (hl + len);
    memcpy (out, hdr, hl);
    for (size_t i = 0; i < len; i++)
        out[hl + i] = (char) (text[i] ^ mask[i % 4]);
    ssize_t n = send (w->fd, out, hl + len, MSG_NOSIGNAL);
    free (out);
    return n == (ssize_t) (hl + len) ? 0 : -1;
}

//  The next text frame (NUL ended into text); -1 on timeout or close.
static int
s_ws_recv (ws_t *w, char *text, size_t cap, int64_t until)
{
    while (true) {
        if (w->len >= 2) {
            const unsigned char *b = (const unsigned char *) w->buf;
            size_t pl = b[1] & 0x7f, hl = 2;
            if (pl == 126) {
                hl = 4;
                pl = w->len >= 4 ? ((size_t) b[2] << 8) | b[3] : 0;
            }
            else if (pl == 127)
                return -1;  //  Our frames stay small
            if (w->len >= hl && w->len >= hl + pl) {
                int op = b[0] & 0x0f;
                size_t n = pl < cap - 1 ? pl : cap - 1;
                memcpy (text, w->buf + hl, n);
                text[n] = 0;
                memmove (w->buf, w->buf + hl + pl, w->len - hl - pl);
                w->len -= hl + pl;
                if (op == 0x8)
                    return -1;
                if (op == 0x1)
                    return 0;
                continue;
            }
        }
        if (s_ws_fill (w, until) < 0)
            return -1;
    }
}

//  ---- Operations ------------------------------------------------------------------

typedef struct {
    CURL *curl;
    buf_t b;
    uint64_t rng;
    int id;
} worker_t;

static void
s_op_chat (worker_t *t, bool stream)
{
    int op = stream ? OP_CHAT_STREAM : OP_CHAT;
    char body[256];
    int n = snprintf (body, sizeof (body),
                      "{\"model\":\"openai/gpt-4o-mini\",\"stream\":%s,"
                      "\"messages\":[{\"role\":\"user\",\"content\":"
                      "\"soak %d\"}]}",
                      stream ? "true" : "false", t->id);
    long st = s_post (t->curl, "/v1/chat/completions", NULL, body, (size_t) n, &t->b);
    const char *d = t->b.data ? t->b.data : "";
    if (st != 200)
        s_unexpected (op, "status %ld %.200s", st, d);
    else if (stream ? !strstr (d, "data: [DONE]") : !strstr (d, "chat.completion"))
        s_unexpected (op, "body %.200s", d);
    else
        atomic_fetch_add (&s_ok[op], 1);
}

static void
s_op_agent (worker_t *t)
{
    char body[256];
    int k = (int) (s_rand (&t->rng) % AGENT_SESSIONS);
    int n = snprintf (body, sizeof (body),
                      "{\"message\":\"soak run on %d\",\"sessionKey\":"
                      "\"soak-agent-%d\"}",
                      k, k);
    long st = s_post (t->curl, "/v1/agent/run", NULL, body, (size_t) n, &t->b);
    if (st != 200 || !strstr (t->b.data, "soak run on"))
        s_unexpected (OP_AGENT, "status %ld %.200s", st, t->b.data ? t->b.data : "");
    else
        atomic_fetch_add (&s_ok[OP_AGENT], 1);
}

static void
s_op_ws (worker_t *t, bool abort_it)
{
    int op = abort_it ? OP_WS_ABORT : OP_WS_RUN;
    char key[48], req[512], text[8192];
    snprintf (key, sizeof (key), "soak-ws-%d-%llx", t->id,
              (unsigned long long) (s_rand (&t->rng) & 0xffffffffffULL));
    ws_t *w = (ws_t *) malloc (sizeof (ws_t));
    if (s_ws_open (w)) {
        s_unexpected (op, "no WebSocket");
        if (w->fd >= 0)
            close (w->fd);
        free (w);
        return;
    }
    s_key_add (key);
    snprintf (req, sizeof (req),
              "{\"method\":\"chat.run\",\"id\":1,\"params\":{\"message\":\"ws "
              "soak words to echo back\",\"sessionKey\":\"%s\"%s}}",
              key, abort_it ? ",\"options\":{\"model\":\"openai/slow\"}" : "");
    int64_t until = s_now_ms () + OP_TIMEOUT_MS;
    bool ok = false, aborted_sent = false;
    char run_id[96] = "";
    if (s_ws_send (w, req) == 0) {
        while (s_ws_recv (w, text, sizeof (text), until) == 0) {
            if (strstr (text, "\"type\":\"error\"") || strstr (text, "chat.error")) {
                s_unexpected (op, "%.200s", text);
                break;
            }
            char *rid = strstr (text, "\"runId\":\"");
            if (!run_id[0] && rid)
                sscanf (rid + 9, "%95[^\"]", run_id);
            if (abort_it && !aborted_sent && strstr (text, "chat.delta") && run_id[0]) {
                snprintf (req, sizeof (req),
                          "{\"method\":\"chat.abort\",\"id\":2,\"params\":{"
                          "\"runId\":\"%s\"}}",
                          run_id);
                s_ws_send (w, req);
                aborted_sent = true;
            }
            if (strstr (text, "chat.done")) {
                //  An abort may lose the race with the end of the run.
                ok = !abort_it || strstr (text, "\"aborted\"")
                     || strstr (text, "\"stop\"");
                if (!ok)
                    s_unexpected (op, "%.200s", text);
                break;
            }
        }
    }
    if (ok)
        atomic_fetch_add (&s_ok[op], 1);
    else if (!atomic_load (&s_stop) && s_now_ms () >= until)
        s_unexpected (op, "no chat.done in %d ms", OP_TIMEOUT_MS);
    close (w->fd);  //  No close frame: a hang-up, as clients do
    free (w);
}

static void
s_op_hangup (worker_t *t)
{
    char key[48], body[256];
    snprintf (key, sizeof (key), "soak-hup-%d-%llx", t->id,
              (unsigned long long) (s_rand (&t->rng) & 0xffffffffffULL));
    s_key_add (key);
    int n = snprintf (body, sizeof (body),
                      "{\"message\":\"hang up on me\",\"sessionKey\":\"%s\","
                      "\"options\":{\"model\":\"openai/slow\"}}",
                      key);
    t->b.stop_on = "event: delta";
    long st = s_post (t->curl, "/v1/agent/run/stream", NULL, body, (size_t) n, &t->b);
    t->b.stop_on = NULL;
    if (st != 200 || !strstr (t->b.data ? t->b.data : "", "event: delta"))
        s_unexpected (OP_HANGUP, "status %ld %.200s", st, t->b.data ? t->b.data : "");
    else
        atomic_fetch_add (&s_ok[OP_HANGUP], 1);
    //  The connection was cut mid-response: start the next one afresh.
    curl_easy_cleanup (t->curl);
    t->curl = curl_easy_init ();
}

static void
s_op_garbage (worker_t *t)
{
    static const char *paths[] = {"/v1/agent/run", "/v1/agent/run/stream",
                                  "/v1/chat/completions", "/v1/browser/navigate"};
    size_t len = 1 + s_rand (&t->rng) % 2048;
    char *g = (char *) malloc (len + 1);
    for (size_t i = 0; i < len; i++)
        g[i] = (char) (s_rand (&t->rng) & 0xff);
    g[0] = '{';  //  Past a first-byte check; never valid JSON this way
    g[len] = 0;
    if (s_rand (&t->rng) % 4) {
        const char *path = paths[s_rand (&t->rng) % 4];
        long st = s_post (t->curl, path, NULL, g, len, &t->b);
        if (st != 400)
            s_unexpected (OP_GARBAGE, "%s: status %ld %.200s", path, st,
                          t->b.data ? t->b.data : "");
        else
            atomic_fetch_add (&s_ok[OP_GARBAGE], 1);
    }
    else {
        //  Raw bytes where a request line should be.
        int fd = s_connect ();
        char resp[1024] = "";
        size_t got = 0;
        if (fd >= 0 && send (fd, g, len, MSG_NOSIGNAL) >= 0) {
            shutdown (fd, SHUT_WR);
            int64_t until = s_now_ms () + 10000;
            while (got < sizeof (resp) - 1 && s_now_ms () < until) {
                struct pollfd p = {fd, POLLIN, 0};
                if (poll (&p, 1, 500) <= 0)
                    continue;
                ssize_t k = recv (fd, resp + got, sizeof (resp) - 1 - got, 0);
                if (k <= 0)
                    break;
                got += (size_t) k;
            }
            resp[got] = 0;
        }
        int status = 0;
        sscanf (resp, "HTTP/1.%*d %d", &status);
        if (fd < 0 || (got && (status < 400 || status > 499)))
            s_unexpected (OP_GARBAGE, "raw: %.200s", fd < 0 ? "no connection" : resp);
        else
            atomic_fetch_add (&s_ok[OP_GARBAGE], 1);
        if (fd >= 0)
            close (fd);
    }
    free (g);
}

static int
s_pick (uint64_t *rng)
{
    int total = 0;
    for (int i = 0; i < OP_N; i++)
        total += s_weights[i];
    int r = (int) (s_rand (rng) % (uint64_t) total);
    for (int i = 0; i < OP_N; i++) {
        if (r < s_weights[i])
            return i;
        r -= s_weights[i];
    }
    return 0;
}

static void *
s_worker (void *arg)
{
    worker_t *t = (worker_t *) arg;
    t->curl = curl_easy_init ();
    while (!atomic_load (&s_stop)) {
        if (s_interval_ns > 0) {
            //  Take the next slot of the shared schedule and wait for it.
            long slot = atomic_fetch_add (&s_next_slot, 1);
            int64_t at = s_t0 * 1000000 + (int64_t) (slot * s_interval_ns);
            int64_t wait = at - s_now_ns ();
            if (wait > 0)
                usleep ((useconds_t) (wait / 1000));
            if (atomic_load (&s_stop))
                break;
        }
        switch (s_pick (&t->rng)) {
        case OP_CHAT: s_op_chat (t, false); break;
        case OP_CHAT_STREAM: s_op_chat (t, true); break;
        case OP_AGENT: s_op_agent (t); break;
        case OP_WS_RUN: s_op_ws (t, false); break;
        case OP_WS_ABORT: s_op_ws (t, true); break;
        case OP_HANGUP: s_op_hangup (t); break;
        default: s_op_garbage (t); break;
        }
    }
    curl_easy_cleanup (t->curl);
    free (t->b.data);
    return NULL;
}

//  Runs the mix on n threads for ms; returns operations done per second.
static double
s_phase (int n, int64_t ms)
{
    atomic_store (&s_stop, false);
    atomic_store (&s_next_slot, 0);
    long before = 0;
    for (int i = 0; i < OP_N; i++)
        before += atomic_load (&s_ok[i]) + atomic_load (&s_bad[i]);
    s_t0 = s_now_ms ();
    pthread_t *th = (pthread_t *) calloc ((size_t) n, sizeof (pthread_t));
    worker_t *w = (worker_t *) calloc ((size_t) n, sizeof (worker_t));
    for (int i = 0; i < n; i++) {
        w[i].id = i;
        w[i].rng = 0x9e3779b97f4a7c15ULL ^ ((uint64_t) (i + 1) * 0x100000001b3ULL)
                   ^ (uint64_t) s_now_ns ();
        pthread_create (&th[i], NULL, s_worker, &w[i]);
    }
    while (s_now_ms () - s_t0 < ms)
        usleep (100000);
    atomic_store (&s_stop, true);
    for (int i = 0; i < n; i++)
        pthread_join (th[i], NULL);
    double secs = (double) (s_now_ms () - s_t0) / 1000.0;
    free (th);
    free (w);
    long after = 0;
    for (int i = 0; i < OP_N; i++)
        after += atomic_load (&s_ok[i]) + atomic_load (&s_bad[i]);
    return (double) (after - before) / secs;
}

//  Every session used takes one more run, checked on CHECK_THREADS
//  threads; each takes every CHECK_THREADS-th session.
static atomic_long s_stuck, s_checked;

static void *
s_check_part (void *arg)
{
    size_t part = (size_t) (uintptr_t) arg;
    CURL *c = curl_easy_init ();
    buf_t b = {0};
    for (size_t i = part; i < AGENT_SESSIONS + s_nkeys; i += CHECK_THREADS) {
        char key[48], body[160];
        if (i < AGENT_SESSIONS)
            snprintf (key, sizeof (key), "soak-agent-%zu", i);
        else
            snprintf (key, sizeof (key), "%s", s_keys[i - AGENT_SESSIONS]);
        int n = snprintf (body, sizeof (body),
                          "{\"message\":\"final check\",\"sessionKey\":\"%s\"}", key);
        long st = s_post (c, "/v1/agent/run", NULL, body, (size_t) n, &b);
        atomic_fetch_add (&s_checked, 1);
        if (st != 200 || !strstr (b.data ? b.data : "", "final check")) {
            if (atomic_fetch_add (&s_stuck, 1) < 10)
                fprintf (stderr, "soak: session %s is stuck: %ld %.200s\n", key, st,
                         b.data ? b.data : "");
        }
    }
    curl_easy_cleanup (c);
    free (b.data);
    return NULL;
}

static long
s_check_sessions (void)
{
    pthread_t th[CHECK_THREADS];
    int64_t t0 = s_now_ms ();
    for (size_t i = 0; i < CHECK_THREADS; i++)
        pthread_create (&th[i], NULL, s_check_part, (void *) (uintptr_t) i);
    for (size_t i = 0; i < CHECK_THREADS; i++)
        pthread_join (th[i], NULL);
    printf ("sessions checked %ld stuck %ld in %.1f s\n", atomic_load (&s_checked),
            atomic_load (&s_stuck), (double) (s_now_ms () - t0) / 1000.0);
    return atomic_load (&s_stuck);
}

int
main (int argc, char **argv)
{
    if (argc < 5) {
        fprintf (stderr, "usage: soak ramp PORT TOKEN SECONDS_PER_STEP\n"
                         "       soak run PORT TOKEN RATE SECONDS [THREADS]\n");
        return 2;
    }
    s_port = atoi (argv[2]);
    s_token = argv[3];
    snprintf (s_auth, sizeof (s_auth), "Authorization: Bearer %s", s_token);
    curl_global_init (CURL_GLOBAL_ALL);
    if (!strcmp (argv[1], "ramp")) {
        int64_t step_ms = (int64_t) (atof (argv[4]) * 1000);
        double best = 0;
        for (int n = 1; n <= 64; n *= 2) {
            double rate = s_phase (n, step_ms);
            long bad = 0;
            for (int i = 0; i < OP_N; i++)
                bad += atomic_load (&s_bad[i]);
            printf ("ramp threads %d ops/s %.1f unexpected so far %ld\n", n, rate, bad);
            fflush (stdout);
            if (rate < best * 1.05) {
                if (rate > best)
                    best = rate;
                break;
            }
            best = rate;
        }
        printf ("capacity %.1f\n", best);
        return 0;
    }
    double rate = atof (argv[4]);
    int64_t secs = atoll (argv[5]);
    int threads = argc > 6 ? atoi (argv[6]) : 48;
    s_interval_ns = 1e9 / rate;
    double done = s_phase (threads, secs * 1000);
    long total_bad = 0;
    for (int i = 0; i < OP_N; i++) {
        printf ("op %s ok %ld unexpected %ld\n", s_op_names[i], atomic_load (&s_ok[i]),
                atomic_load (&s_bad[i]));
        total_bad += atomic_load (&s_bad[i]);
    }
    printf ("achieved ops/s %.1f (target %.1f)\n", done, rate);
    fflush (stdout);
    //  The sampler stops counting drift here: what follows is the check.
    if (getenv ("SOAK_LOAD_DONE"))
        fclose (fopen (getenv ("SOAK_LOAD_DONE"), "w"));
    long stuck = s_check_sessions ();
    printf ("unexpected %ld\n", total_bad);
    free (s_keys);
    curl_global_cleanup ();
    return total_bad || stuck ? 1 : 0;
}
