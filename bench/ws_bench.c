/*  =========================================================================
    ws_bench - WebSocket fan-out: N clients subscribed to one streaming
    session, on one epoll thread with raw non-blocking sockets

    usage: ws_bench --port P --token T --clients N [--session KEY]
                    [--words W] [--events tcp://HOST:PORT] [--pid GATEWAY_PID]
                    [--timeout S]

    1. Opens N WebSocket connections (handshake by hand, at most 64 in
       flight) plus one driver connection, and subscribes the N to KEY.
    2. Probes: the driver runs short runs on KEY until every subscriber
       (and the tap, with --events) has seen one end.  PUB/SUB joins late,
       so nothing is measured before that.
    3. The driver starts one run of W words (local/echo: one delta per
       word, paced by the gateway's providers.local.echoDelayMs) and every
       subscriber's frames are timed as they are read.

    Delay: with --events, a ZeroMQ SUB on the broker's event bus (a tap,
    in its own thread) stamps the moment each chat.delta is published by
    the run actor, i.e. when the provider's delta left the actor; a
    client's delay for that delta is (client read time - tap time), both
    CLOCK_MONOTONIC in this process.  It includes one ZeroMQ TCP hop on the
    tap's side (so it slightly under-states the true provider-to-client
    delay, by the tap hop, tens of µs).  Without --events, the reference
    is the first subscriber to read that seq ("spread" only).  Both
    figures are printed when available.  Read time is taken once per
    recv() batch, after epoll_wait returns.

    Prints one line:
      N=… words=… deltas=… rate_in=…/s delivered=…/s loss=… gaps=… lagged=…
      closed=… delay_p50=…ms delay_p99=…ms delay_max=…ms spread_p99=…ms
      rss=…MB hwm=…MB window=…s gw_cpu=…% bench_cpu=…%
    rate_in: the provider's delta rate (tap stamps of the first and last
    delta); delivered: deltas read by all N subscribers / window, the time
    from the first delta any subscriber read to the last chat.done read;
    loss: W*N - deltas read; gaps: seq jumps seen by a client; spread: read
    time - the first subscriber's read time of that seq; rss/hwm: the
    gateway's VmRSS / VmHWM at the end; gw_cpu / bench_cpu: CPU time of the
    gateway / of this program over the measured run, in % of one core (the
    two share the machine).
    Exit 1 if the set-up failed (connect, subscribe, probe, run).
    =========================================================================
*/
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define MAX_SEQ (4 * 1024 * 1024)  //  Tap stamps by seq

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void
s_die (const char *fmt, const char *arg)
{
    fprintf (stderr, "ws_bench: ");
    fprintf (stderr, fmt, arg);
    fprintf (stderr, "\n");
    exit (1);
}

//  ---- Options ------------------------------------------------------------------

static int s_port;
static const char *s_token;
static int s_n = 1;
static const char *s_key = "bench-fanout";
static int s_words = 2000;
static const char *s_events;
static int s_gw_pid;
static int s_timeout_s = 300;

//  ---- The tap: stamps each chat.delta's publication ---------------------------------------

static atomic_llong *s_tap_stamp;    //  seq -> ns (0: not seen)
static atomic_llong s_tap_done_seq;  //  Highest chat.done seq seen
static atomic_bool s_tap_stop;
static atomic_bool s_tap_ready;

static int64_t
s_mp_seq (const char *data, size_t len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init (&u);
    int64_t seq = -1;
    if (msgpack_unpack_next (&u, data, len, NULL) == MSGPACK_UNPACK_SUCCESS
        && u.data.type == MSGPACK_OBJECT_MAP) {
        for (uint32_t i = 0; i < u.data.via.map.size; i++) {
            msgpack_object_kv *kv = &u.data.via.map.ptr[i];
            if (kv->key.type == MSGPACK_OBJECT_STR && kv->key.via.str.size == 3
                && !memcmp (kv->key.via.str.ptr, "seq", 3)) {
                if (kv->val.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
                    seq = (int64_t) kv->val.via.u64;
                break;
            }
        }
    }
    msgpack_unpacked_destroy (&u);
    return seq;
}

static void *
s_tap_thread (void *arg)
{
    void *ctx = zmq_ctx_new ();
    void *sub = zmq_socket (ctx, ZMQ_SUB);
    int hwm = 1000000;
    zmq_setsockopt (sub, ZMQ_RCVHWM, &hwm, sizeof (hwm));
    char prefix[256];
    snprintf (prefix, sizeof (prefix), "%s/", s_key);
    zmq_setsockopt (sub, ZMQ_SUBSCRIBE, prefix, strlen (prefix));
    if (zmq_connect (sub, s_events))
        s_die ("cannot connect the tap to %s", s_events);
    atomic_store (&s_tap_ready, true);
    while (!atomic_load (&s_tap_stop)) {
        zmq_pollitem_t it = {sub, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&it, 1, 100) <= 0)
            continue;
        while (true) {
            zmq_msg_t topic, body;
            zmq_msg_init (&topic);
            if (zmq_msg_recv (&topic, sub, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close (&topic);
                break;
            }
            int64_t now = s_now_ns ();
            zmq_msg_init (&body);
            bool two = zmq_msg_more (&topic) && zmq_msg_recv (&body, sub, 0) >= 0;
            size_t tl = zmq_msg_size (&topic);
            const char *t = (const char *) zmq_msg_data (&topic);
            if (two && tl > 11 && !memcmp (t + tl - 11, "/chat.delta", 11)) {
                int64_t seq =
                    s_mp_seq ((const char *) zmq_msg_data (&body), zmq_msg_size (&body));
                if (seq > 0 && seq < MAX_SEQ)
                    atomic_store (&s_tap_stamp[seq], now);
            }
            else if (two && tl > 10 && !memcmp (t + tl - 10, "/chat.done", 10)) {
                int64_t seq =
                    s_mp_seq ((const char *) zmq_msg_data (&body), zmq_msg_size (&body));
                if (seq > atomic_load (&s_tap_done_seq))
                    atomic_store (&s_tap_done_seq, seq);
            }
            zmq_msg_close (&topic);
            zmq_msg_close (&body);
        }
    }
    zmq_close (sub);
    zmq_ctx_term (ctx);
    return NULL;
}

//  ---- Connections ---------------------------------------------------------------------

typedef enum { C_NEW, C_CONNECTING, C_HANDSHAKE, C_OPEN, C_CLOSED } cstate_t;

typedef struct {
    int fd;
    int index;  //  0..N-1 subscribers, N the driver
    cstate_t state;
    char *buf;
    size_t len, cap;
    bool connected;            //  Got {"type":"connected"}
    bool subscribed;           //  Got the subscribe reply
    long long probe_done_seq;  //  Seq of the last probe chat.done seen
    bool lagged;
    bool run_done;  //  Saw the measured run's chat.done
    int64_t done_ns;
    long deltas;  //  Measured run's deltas read
    long gaps;    //  seq != previous + 1
    long long last_seq;
    float *recv_ms;  //  Per delta index: read time - t0 (ms)
} conn_t;

static conn_t *s_conns;
static int s_epfd;
static int64_t s_t0;

//  Measured run
static char s_run_id[96];
static long long s_base_seq;  //  Deltas are base+1 .. base+W
static bool s_measuring;
static long long s_last_probe_seq;  //  Driver's last probe chat.done seq
static char s_probe_run[96];
static bool s_probe_pending;
static int s_next_id = 1;
static int s_run_req_id;  //  id of the measured chat.run
static int s_probe_req_id;

static void
s_send_frame (conn_t *c, const char *text)
{
    size_t len = strlen (text);
    unsigned char hdr[14];
    size_t hl = 0;
    hdr[hl++] = 0x81;
    if (len < 126)
        hdr[hl++] = (unsigned char) (0x80 | len);
    else if (len < 65536) {
        hdr[hl++] = 0x80 | 126;
        hdr[hl++] = (unsigned char) (len >> 8);
        hdr[hl++] = (unsigned char) len;
    }
    else {
        hdr[hl++] = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            hdr[hl++] = (unsigned char) ((uint64_t) len >> (8 * i));
    }
    static const unsigned char mask[4] = {0x5a, 0xa5, 0x3c, 0xc3};
    memcpy (hdr + hl, mask, 4);
    hl += 4;
    unsigned char *out = (unsigned char *) malloc (hl + len);
    memcpy (out, hdr, hl);
    for (size_t i = 0; i < len; i++)
        out[hl + i] = (unsigned char) text[i] ^ mask[i % 4];
    size_t off = 0;
    int64_t until = s_now_ns () + 10000000000LL;
    while (off < hl + len) {
        ssize_t n = send (c->fd, out + off, hl + len - off, MSG_NOSIGNAL);
        if (n > 0)
            off += (size_t) n;
        else if (n < 0 && (errno == EAGAIN || errno == EINTR) && s_now_ns () < until)
            usleep (100);
        else {
            fprintf (stderr, "ws_bench: send to client %d failed\n", c->index);
            c->state = C_CLOSED;
            break;
        }
    }
    free (out);
}

static void
s_start_connect (conn_t *c)
{
    c->fd = socket (AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0)
        s_die ("socket: %s", strerror (errno));
    int one = 1;
    setsockopt (c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons ((uint16_t) s_port);
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (connect (c->fd, (struct sockaddr *) &a, sizeof (a)) && errno != EINPROGRESS)
        s_die ("connect: %s", strerror (errno));
    c->state = C_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.ptr = c};
    epoll_ctl (s_epfd, EPOLL_CTL_ADD, c->fd, &ev);
}

static void
s_send_handshake (conn_t *c)
{
    char req[1024];
    int n = snprintf (req, sizeof (req),
                      "GET /?token=%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n\r\n",
                      s_token, s_port);
    if (send (c->fd, req, (size_t) n, MSG_NOSIGNAL) != n)
        s_die ("handshake send failed%s", "");
    c->state = C_HANDSHAKE;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    epoll_ctl (s_epfd, EPOLL_CTL_MOD, c->fd, &ev);
}

static void
s_send_request (conn_t *c, int id, const char *method, const char *params)
{
    char text[4096];
    snprintf (text, sizeof (text), "{\"method\":\"%s\",\"params\":%s,\"id\":%d}", method,
              params, id);
    s_send_frame (c, text);
}

static char *s_message;  //  The measured run's message

static void
s_start_probe (void)
{
    conn_t *d = &s_conns[s_n];
    s_probe_req_id = s_next_id++;
    char params[512];
    snprintf (params, sizeof (params), "{\"message\":\"probe\",\"sessionKey\":\"%s\"}",
              s_key);
    s_send_request (d, s_probe_req_id, "chat.run", params);
    s_probe_pending = true;
}

static void
s_start_run (void)
{
    conn_t *d = &s_conns[s_n];
    s_run_req_id = s_next_id++;
    size_t cap = strlen (s_message) + 256;
    char *params = (char *) malloc (cap);
    snprintf (params, cap, "{\"message\":\"%s\",\"sessionKey\":\"%s\"}", s_message,
              s_key);
    size_t tcap = cap + 128;
    char *text = (char *) malloc (tcap);
    snprintf (text, tcap, "{\"method\":\"chat.run\",\"params\":%s,\"id\":%d}", params,
              s_run_req_id);
    s_send_frame (d, text);
    free (text);
    free (params);
    s_base_seq = s_last_probe_seq;
    s_measuring = true;
}

//  A string member "key":"…" after p; copies it into out.
static bool
s_find_str (const char *p, size_t len, const char *key, char *out, size_t cap)
{
    char pat[64];
    int pl = snprintf (pat, sizeof (pat), "\"%s\":\"", key);
    const char *hit = (const char *) memmem (p, len, pat, (size_t) pl);
    if (!hit)
        return false;
    hit += pl;
    const char *end = (const char *) memchr (hit, '"', len - (size_t) (hit - p));
    if (!end || (size_t) (end - hit) >= cap)
        return false;
    memcpy (out, hit, (size_t) (end - hit));
    out[end - hit] = 0;
    return true;
}

static long long
s_find_int (const char *p, size_t len, const char *key)
{
    char pat[64];
    int pl = snprintf (pat, sizeof (pat), "\"%s\":", key);
    const char *hit = (const char *) memmem (p, len, pat, (size_t) pl);
    return hit ? strtoll (hit + pl, NULL, 10) : -1;
}

static void
s_on_text (conn_t *c, const char *p, size_t len, int64_t now)
{
    static const char delta[] = "{\"type\":\"chat.delta\"";
    static const char done[] = "{\"type\":\"chat.done\"";
    char rid[96];
    if (len > sizeof (delta) && !memcmp (p, delta, sizeof (delta) - 1)) {
        //  By seq, not runId: a subscriber may read deltas before the
        //  driver has read the reply that names the run.  Only the
        //  measured run follows the probes on the session.
        long long seq = s_find_int (p, len, "seq");
        if (!s_measuring || seq <= s_base_seq)
            return;
        if (c->last_seq && seq != c->last_seq + 1)
            c->gaps++;
        c->last_seq = seq;
        long long idx = seq - s_base_seq - 1;
        if (c->recv_ms && idx >= 0 && idx < s_words)
            c->recv_ms[idx] = (float) ((double) (now - s_t0) / 1e6);
        c->deltas++;
        return;
    }
    if (len > sizeof (done) && !memcmp (p, done, sizeof (done) - 1)) {
        if (!s_find_str (p, len, "runId", rid, sizeof (rid)))
            return;
        long long seq = s_find_int (p, len, "seq");
        if (s_measuring && seq > s_base_seq) {
            if (c->last_seq && seq != c->last_seq + 1)
                c->gaps++;
            c->last_seq = seq;
            c->run_done = true;
            c->done_ns = now;
        }
        else if (!strcmp (rid, s_probe_run) || c->index < s_n) {
            if (seq > c->probe_done_seq)
                c->probe_done_seq = seq;
            if (c->index == s_n && !strcmp (rid, s_probe_run)) {
                s_probe_pending = false;
                s_last_probe_seq = seq;
            }
        }
        return;
    }
    cJSON *j = cJSON_ParseWithLength (p, len);
    const cJSON *type = cJSON_GetObjectItem (j, "type");
    const char *t = cJSON_IsString (type) ? type->valuestring : "";
    if (!strcmp (t, "connected"))
        c->connected = true;
    else if (!strcmp (t, "lagged"))
        c->lagged = true;
    else if (!strcmp (t, "response")) {
        const cJSON *id = cJSON_GetObjectItem (j, "id");
        const cJSON *res = cJSON_GetObjectItem (j, "result");
        const cJSON *r = cJSON_GetObjectItem (res, "runId");
        if (c->index < s_n)
            c->subscribed = true;
        else if (cJSON_IsNumber (id) && id->valueint == s_probe_req_id
                 && cJSON_IsString (r))
            snprintf (s_probe_run, sizeof (s_probe_run), "%s", r->valuestring);
        else if (cJSON_IsNumber (id) && id->valueint == s_run_req_id
                 && cJSON_IsString (r))
            snprintf (s_run_id, sizeof (s_run_id), "%s", r->valuestring);
    }
    else if (!strcmp (t, "error")) {
        char *dump = cJSON_PrintUnformatted (j);
        fprintf (stderr, "ws_bench: client %d got %s\n", c->index, dump);
        free (dump);
    }
    cJSON_Delete (j);
}

static void
s_close (conn_t *c)
{
    if (c->state != C_CLOSED) {
        epoll_ctl (s_epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close (c->fd);
        c->state = C_CLOSED;
    }
}

static void
s_on_readable (conn_t *c)
{
    while (true) {
        if (c->cap - c->len < 65536) {
            c->cap = c->len + 262144;
            c->buf = (char *) realloc (c->buf, c->cap);
        }
        ssize_t n = recv (c->fd, c->buf + c->len, c->cap - c->len, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
            s_close (c);
            return;
        }
        if (n < 0)
            break;
        c->len += (size_t) n;
        if ((size_t) n < 65536)
            break;
    }
    int64_t now = s_now_ns ();
    size_t off = 0;
    if (c->state == C_HANDSHAKE) {
        char *end = (char *) memmem (c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            return;
        if (strncmp (c->buf, "HTTP/1.1 101", 12)) {
            fprintf (stderr, "ws_bench: client %d refused: %.*s\n", c->index,
                     (int) (end - c->buf), c->buf);
            exit (1);
        }
        off = (size_t) (end - c->buf) + 4;
        c->state = C_OPEN;
    }
    while (c->len - off >= 2) {
        const unsigned char *b = (const unsigned char *) c->buf + off;
        size_t avail = c->len - off;
        uint64_t pl = b[1] & 0x7f;
        size_t hl = 2;
        if (pl == 126) {
            if (avail < 4)
                break;
            pl = ((uint64_t) b[2] << 8) | b[3];
            hl = 4;
        }
        else if (pl == 127) {
            if (avail < 10)
                break;
            pl = 0;
            for (int i = 0; i < 8; i++)
                pl = (pl << 8) | b[2 + i];
            hl = 10;
        }
        if (avail < hl + pl)
            break;
        int opcode = b[0] & 0x0f;
        if (opcode == 1)
            s_on_text (c, (const char *) b + hl, (size_t) pl, now);
        else if (opcode == 8) {
            off += hl + (size_t) pl;
            s_close (c);
            return;
        }
        off += hl + (size_t) pl;
    }
    memmove (c->buf, c->buf + off, c->len - off);
    c->len -= off;
}

//  ---- Percentiles ------------------------------------------------------------------------

static int
s_cmp_float (const void *a, const void *b)
{
    float x = *(const float *) a, y = *(const float *) b;
    return x < y ? -1 : x > y;
}

static float
s_pct (float *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t) (p * (double) (n - 1) + 0.5);
    return v[i];
}

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

//  CPU seconds (user + system) of this process, and of pid.
static double s_cpu_at_run, s_gw_cpu_at_run;

static double
s_cpu_self (void)
{
    struct rusage ru;
    getrusage (RUSAGE_SELF, &ru);
    return (double) ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6
           + (double) ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static double
s_cpu_pid (int pid)
{
    char path[64], buf[2048];
    snprintf (path, sizeof (path), "/proc/%d/stat", pid);
    FILE *f = fopen (path, "r");
    if (!f)
        return 0;
    size_t n = fread (buf, 1, sizeof (buf) - 1, f);
    fclose (f);
    buf[n] = 0;
    //  Fields after the ")" of comm: state is 3rd; utime 14th, stime 15th.
    char *p = strrchr (buf, ')');
    unsigned long ut = 0, st = 0;
    if (p
        && sscanf (p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st)
               == 2)
        return (double) (ut + st) / (double) sysconf (_SC_CLK_TCK);
    return 0;
}

//  ---- Main -------------------------------------------------------------------------------------

static void
s_usage (void)
{
    fprintf (stderr, "usage: ws_bench --port P --token T --clients N [--session KEY]"
                     " [--words W] [--events EP] [--pid PID] [--timeout S]\n");
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
        if (!strcmp (a, "--port"))
            s_port = atoi (v);
        else if (!strcmp (a, "--token"))
            s_token = v;
        else if (!strcmp (a, "--clients"))
            s_n = atoi (v);
        else if (!strcmp (a, "--session"))
            s_key = v;
        else if (!strcmp (a, "--words"))
            s_words = atoi (v);
        else if (!strcmp (a, "--events"))
            s_events = v;
        else if (!strcmp (a, "--pid"))
            s_gw_pid = atoi (v);
        else if (!strcmp (a, "--timeout"))
            s_timeout_s = atoi (v);
        else
            s_usage ();
    }
    if (s_port <= 0 || !s_token || s_n < 1 || s_words < 1)
        s_usage ();
    //  N sockets + ours: raise the descriptor limit to the hard limit.
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit (RLIMIT_NOFILE, &rl);
    }
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t) s_n + 64)
        s_die ("RLIMIT_NOFILE is too low for the clients%s", "");
    //  The message: W words, one delta each.
    s_message = (char *) malloc ((size_t) s_words * 8 + 1);
    size_t ml = 0;
    for (int i = 0; i < s_words; i++)
        ml += (size_t) sprintf (s_message + ml, "%sw%d", i ? " " : "", i % 10000);
    pthread_t tap;
    if (s_events) {
        s_tap_stamp = (atomic_llong *) calloc (MAX_SEQ, sizeof (atomic_llong));
        pthread_create (&tap, NULL, s_tap_thread, NULL);
        while (!atomic_load (&s_tap_ready))
            usleep (1000);
    }
    s_epfd = epoll_create1 (EPOLL_CLOEXEC);
    s_conns = (conn_t *) calloc ((size_t) s_n + 1, sizeof (conn_t));
    for (int i = 0; i <= s_n; i++) {
        s_conns[i].index = i;
        s_conns[i].fd = -1;
        if (i < s_n)
            s_conns[i].recv_ms = (float *) calloc ((size_t) s_words, sizeof (float));
    }
    s_t0 = s_now_ns ();
    int64_t deadline = s_t0 + (int64_t) s_timeout_s * 1000000000LL;
    enum { P_CONNECT, P_SUBSCRIBE, P_PROBE, P_RUN, P_DRAIN, P_END } phase = P_CONNECT;
    int next_connect = 0;
    int64_t run_started = 0, drain_until = 0, connect_started = s_now_ns ();
    int probes = 0;
    struct epoll_event evs[256];
    while (phase != P_END) {
        if (s_now_ns () > deadline) {
            fprintf (stderr, "ws_bench: timed out in phase %d\n", phase);
            exit (1);
        }
        //  Phase work
        if (phase == P_CONNECT) {
            int in_flight = 0, open = 0;
            for (int i = 0; i < next_connect; i++) {
                conn_t *c = &s_conns[i];
                if (c->state == C_CONNECTING || c->state == C_HANDSHAKE
                    || (c->state == C_OPEN && !c->connected))
                    in_flight++;
                else if (c->state == C_OPEN)
                    open++;
                else if (c->state == C_CLOSED)
                    s_die ("a connection closed during set-up%s", "");
            }
            while (next_connect <= s_n && in_flight < 64) {
                s_start_connect (&s_conns[next_connect++]);
                in_flight++;
            }
            if (open == s_n + 1) {
                fprintf (stderr, "ws_bench: %d connections in %.2f s\n", s_n + 1,
                         (double) (s_now_ns () - connect_started) / 1e9);
                char params[256];
                snprintf (params, sizeof (params), "{\"sessionKey\":\"%s\"}", s_key);
                for (int i = 0; i < s_n; i++)
                    s_send_request (&s_conns[i], s_next_id, "session.subscribe", params);
                s_next_id++;
                phase = P_SUBSCRIBE;
            }
        }
        else if (phase == P_SUBSCRIBE) {
            int n = 0;
            for (int i = 0; i < s_n; i++)
                n += s_conns[i].subscribed;
            if (n == s_n) {
                phase = P_PROBE;
                s_start_probe ();
                probes++;
            }
        }
        else if (phase == P_PROBE && !s_probe_pending) {
            //  The driver saw the probe end: did everyone?
            int n = 0;
            for (int i = 0; i < s_n; i++)
                n += s_conns[i].probe_done_seq >= s_last_probe_seq;
            bool tap_ok = !s_events || atomic_load (&s_tap_done_seq) >= s_last_probe_seq;
            if (n == s_n && tap_ok) {
                fprintf (stderr, "ws_bench: subscriptions live after %d probes\n",
                         probes);
                phase = P_RUN;
                run_started = s_now_ns ();
                s_cpu_at_run = s_cpu_self ();
                s_gw_cpu_at_run = s_gw_pid > 0 ? s_cpu_pid (s_gw_pid) : 0;
                s_start_run ();
            }
            else {
                //  Give stragglers a moment to read, then probe again.
                static int64_t wait_until;
                if (!wait_until)
                    wait_until = s_now_ns () + 300000000LL;
                if (s_now_ns () > wait_until) {
                    wait_until = 0;
                    s_start_probe ();
                    probes++;
                }
            }
        }
        else if (phase == P_RUN) {
            int n = 0, closed = 0;
            for (int i = 0; i < s_n; i++) {
                n += s_conns[i].run_done;
                closed += s_conns[i].state == C_CLOSED;
            }
            if (n + closed == s_n && s_conns[s_n].run_done) {
                phase = P_DRAIN;
                drain_until = s_now_ns () + 200000000LL;
            }
        }
        else if (phase == P_DRAIN && s_now_ns () > drain_until)
            phase = P_END;
        int k = epoll_wait (s_epfd, evs, 256, 50);
        for (int i = 0; i < k; i++) {
            conn_t *c = (conn_t *) evs[i].data.ptr;
            if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof (err);
                getsockopt (c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err)
                    s_die ("connect failed: %s", strerror (err));
                s_send_handshake (c);
            }
            else if (c->state != C_CLOSED)
                s_on_readable (c);
        }
    }
    int64_t end = s_now_ns ();
    double bench_cpu = s_cpu_self () - s_cpu_at_run;
    double gw_cpu = s_gw_pid > 0 ? s_cpu_pid (s_gw_pid) - s_gw_cpu_at_run : 0;
    if (s_events) {
        atomic_store (&s_tap_stop, true);
        pthread_join (tap, NULL);
    }
    //  ---- Figures --------------------------------------------------------------------
    long total = 0, lost = 0, gaps = 0;
    int lagged = 0, closed = 0;
    int64_t last_done = 0;
    for (int i = 0; i < s_n; i++) {
        conn_t *c = &s_conns[i];
        total += c->deltas;
        lost += s_words - c->deltas;
        gaps += c->gaps;
        lagged += c->lagged;
        closed += c->state == C_CLOSED;
        if (c->done_ns > last_done)
            last_done = c->done_ns;
    }
    //  Window: from the first delta any subscriber read to the last done.
    float first_ms = -1;
    for (int i = 0; i < s_n; i++)
        for (int w = 0; w < s_words; w++)
            if (s_conns[i].recv_ms[w] > 0
                && (first_ms < 0 || s_conns[i].recv_ms[w] < first_ms))
                first_ms = s_conns[i].recv_ms[w];
    double window_s = ((double) (last_done - s_t0) / 1e6 - first_ms) / 1000.0;
    //  Provider rate: from the tap stamps (or the first reader's times).
    float *first_read = (float *) calloc ((size_t) s_words, sizeof (float));
    for (int w = 0; w < s_words; w++) {
        float m = 0;
        for (int i = 0; i < s_n; i++) {
            float t = s_conns[i].recv_ms[w];
            if (t > 0 && (m == 0 || t < m))
                m = t;
        }
        first_read[w] = m;
    }
    double rate_in = 0;
    if (s_events) {
        int64_t a = atomic_load (&s_tap_stamp[s_base_seq + 1]);
        int64_t b = atomic_load (&s_tap_stamp[s_base_seq + s_words]);
        if (a && b > a)
            rate_in = (double) (s_words - 1) / ((double) (b - a) / 1e9);
    }
    else if (first_read[s_words - 1] > first_read[0])
        rate_in = (s_words - 1) / ((first_read[s_words - 1] - first_read[0]) / 1000.0);
    //  Delays
    size_t nd = (size_t) total, di = 0, si = 0;
    float *delay = (float *) malloc ((nd + 1) * sizeof (float));
    float *spread = (float *) malloc ((nd + 1) * sizeof (float));
    for (int i = 0; i < s_n; i++)
        for (int w = 0; w < s_words; w++) {
            float t = s_conns[i].recv_ms[w];
            if (t <= 0)
                continue;
            if (si < nd)
                spread[si++] = t - first_read[w];
            if (s_events && di < nd) {
                int64_t st = atomic_load (&s_tap_stamp[s_base_seq + 1 + w]);
                if (st)
                    delay[di++] = t - (float) ((double) (st - s_t0) / 1e6);
            }
        }
    qsort (delay, di, sizeof (float), s_cmp_float);
    qsort (spread, si, sizeof (float), s_cmp_float);
    double rss = 0, hwm = 0;
    if (s_gw_pid > 0)
        s_mem (s_gw_pid, &rss, &hwm);
    printf ("N=%d words=%d deltas=%ld rate_in=%.0f/s delivered=%.0f/s loss=%ld "
            "gaps=%ld lagged=%d closed=%d",
            s_n, s_words, total, rate_in, window_s > 0 ? (double) total / window_s : 0,
            lost, gaps, lagged, closed);
    if (s_events)
        printf (" delay_p50=%.2fms delay_p99=%.2fms delay_max=%.2fms",
                s_pct (delay, di, 0.5), s_pct (delay, di, 0.99), di ? delay[di - 1] : 0);
    double run_s = (double) (end - run_started) / 1e9;
    printf (" spread_p99=%.2fms rss=%.1fMB hwm=%.1fMB window=%.2fs"
            " gw_cpu=%.0f%% bench_cpu=%.0f%%\n",
            s_pct (spread, si, 0.99), rss, hwm, window_s,
            run_s > 0 ? 100 * gw_cpu / run_s : 0,
            run_s > 0 ? 100 * bench_cpu / run_s : 0);
    for (int i = 0; i <= s_n; i++) {
        if (s_conns[i].state != C_CLOSED && s_conns[i].fd >= 0)
            close (s_conns[i].fd);
        free (s_conns[i].buf);
        free (s_conns[i].recv_ms);
    }
    free (s_conns);
    free (delay);
    free (spread);
    free (first_read);
    free (s_message);
    free (s_tap_stamp);
    close (s_epfd);
    return 0;
}
