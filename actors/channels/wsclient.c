/*  =========================================================================
    wsclient - a WebSocket client (RFC 6455) driven by an actor's zloop

    One wsc_t walks through these states, each bounded by the connect
    timeout until it is open:

        RESOLVE   getaddrinfo_a runs; a short repeating timer polls it
        CONNECT   non-blocking connect to each address in turn (POLLOUT)
        TLS       SSL_connect until done (POLLIN or POLLOUT, as it asks)
        UPGRADE   the GET is queued; the answer's head is read and checked
        OPEN      frames both ways; pings, idle check on the tick timer
        CLOSING   we sent a close; waiting (1 s) for the server's
        DRAIN     a close or failure is decided; flushing our last close
                  frame (1 s at most), then WSC_CLOSED
        DONE      WSC_CLOSED was reported; nothing more happens

    zloop hands each poller and timer handler an argument, and may call a
    handler of ours in the same iteration as one that destroyed the
    client (a timer and the poller both due, or the owner's own handler
    destroying it): so the argument is the client's id, not its address,
    and a handler whose id is no longer registered does nothing.
    Callbacks are never made from inside a wsc_* call: failures found
    there are deferred to a zero-delay timer (the kick).

    A DNS request that cannot be cancelled when the client is destroyed
    is kept on a list until glibc's thread is done with it.
    =========================================================================
*/
#include "wsclient.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "ssl_lazy.h"

#define S_LOG "ws"
#define S_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define S_DEFAULT_MAX (1u << 20)
#define S_DEFAULT_CONNECT_MS 10000
#define S_CLOSE_WAIT_MS 1000  //  For the server's close, or our last frame to go
#define S_READ_CHUNK 16384
#define S_READ_BUDGET (1u << 20)  //  Bytes read per wake-up, then the others' turn

typedef enum {
    S_RESOLVE,
    S_CONNECT,
    S_TLS,
    S_UPGRADE,
    S_OPEN,
    S_CLOSING,
    S_DRAIN,
    S_DONE
} s_state_t;

//  One getaddrinfo_a request, with everything glibc's thread reads.
typedef struct s_dns_t {
    struct gaicb cb;        //  The request; cb.ar_result the answer
    struct gaicb *list[1];  //  getaddrinfo_a takes a list
    struct addrinfo hints;  //  TCP, any family
    char service[8];        //  The port, in digits
    struct s_dns_t *next;   //  On the list of abandoned requests
    char name[];            //  The host looked up
} s_dns_t;

struct wsc_t {
    zloop_t *loop;    //  The owner's loop (not ours)
    wsc_fn *fn;       //  The owner's callback
    void *arg;        //  Its argument
    uintptr_t id;     //  Our handlers' argument (see top)
    wsc_t *next;      //  In the registry of live clients
    s_state_t state;  //  See top
    bool *gone;       //  While a callback runs: set if it destroyed us
    //  What we connect to
    bool tls;           //  wss://
    char *host;         //  Name or address (no brackets)
    char *host_header;  //  Host: value (port when not the default)
    char *target;       //  Path and query
    char *where;        //  host:port/path, for logs (no query)
    int port;           //  TCP port
    //  Settings
    size_t max_message;  //  Largest message taken
    int connect_ms;      //  Deadline to be open
    int ping_ms;         //  Ping interval, 0 never
    int idle_ms;         //  Idle timeout, 0 never
    char *user_agent;    //  Or NULL
    //  Connection
    s_dns_t *dns;                //  Resolving, or NULL
    struct addrinfo *addrs;      //  Addresses to try (freeaddrinfo)
    struct addrinfo *next_addr;  //  The next one to try
    bool addrs_dns;              //  addrs came from getaddrinfo_a (else getaddrinfo)
    int fd;                      //  Socket, or -1
    int events;                  //  What the poller waits for (0: no poller)
    ssl_conn_t *ssl;             //  TLS, or NULL
    char key[25];                //  Our Sec-WebSocket-Key
    char accept[29];             //  The Sec-WebSocket-Accept it must bring
    //  Timers
    int tick_id;        //  Repeating, -1 when none
    int tick_ms;        //  Its period
    int kick_id;        //  Zero-delay one-shot, -1 when none
    int64_t started;    //  When wsc_connect ran (monotonic ms)
    int64_t last_rx;    //  When bytes last came in
    int64_t last_ping;  //  When we last pinged
    int64_t deadline;   //  CLOSING/DRAIN: when we give up
    //  Buffers
    unsigned char *in;  //  Bytes read, not yet parsed
    size_t in_len, in_cap;
    unsigned char *out;  //  Bytes to write, from out_off
    size_t out_len, out_off, out_cap;
    char *msg;  //  Text message being reassembled (+ NUL)
    size_t msg_len, msg_cap;
    int msg_opcode;  //  1 text, 2 binary, 0 none in progress
    //  The end, once decided
    int end_code;          //  Reported code
    char end_reason[160];  //  Reported reason
    bool end_pending;      //  The kick must report the end
    bool close_requested;  //  wsc_close was called
};

static pthread_mutex_t s_lock = PTHREAD_MUTEX_INITIALIZER;
static wsc_t *s_live;  //  Live clients, by id
static uintptr_t s_next_id = 1;
static s_dns_t *s_abandoned;  //  DNS requests glibc still holds

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg);
static int
s_on_kick (zloop_t *loop, int timer_id, void *arg);
static int
s_on_io (zloop_t *loop, zmq_pollitem_t *item, void *arg);
static int
s_advance (wsc_t *self);

//  --------------------------------------------------------------------------
//  Small helpers

static int64_t
s_now (void)
{
    return zclock_mono ();
}

static wsc_t *
s_lookup (void *arg)
{
    uintptr_t id = (uintptr_t) arg;
    pthread_mutex_lock (&s_lock);
    wsc_t *self = s_live;
    while (self && self->id != id)
        self = self->next;
    pthread_mutex_unlock (&s_lock);
    return self;
}

//  Frees abandoned DNS requests glibc is done with.
static void
s_reap_dns (void)
{
    pthread_mutex_lock (&s_lock);
    s_dns_t **at = &s_abandoned;
    while (*at) {
        s_dns_t *dns = *at;
        if (gai_error (&dns->cb) != EAI_INPROGRESS) {
            *at = dns->next;
            if (dns->cb.ar_result)
                freeaddrinfo (dns->cb.ar_result);
            free (dns);
        }
        else
            at = &dns->next;
    }
    pthread_mutex_unlock (&s_lock);
}

//  "1.5 s", "30 s": a duration for a reason.
static void
s_seconds (char *buf, size_t cap, int ms)
{
    if (ms % 1000 == 0)
        snprintf (buf, cap, "%d s", ms / 1000);
    else
        snprintf (buf, cap, "%.1f s", ms / 1000.0);
}

static const char s_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

//  Base64 of src[len] into dst (4 * ceil (len / 3) + 1 bytes).
static void
s_base64 (const unsigned char *src, size_t len, char *dst)
{
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned) src[i] << 16 | (unsigned) src[i + 1] << 8 | src[i + 2];
        *dst++ = s_b64[v >> 18 & 63];
        *dst++ = s_b64[v >> 12 & 63];
        *dst++ = s_b64[v >> 6 & 63];
        *dst++ = s_b64[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned) src[i] << 16;
        if (i + 1 < len)
            v |= (unsigned) src[i + 1] << 8;
        *dst++ = s_b64[v >> 18 & 63];
        *dst++ = s_b64[v >> 12 & 63];
        *dst++ = i + 1 < len ? s_b64[v >> 6 & 63] : '=';
        *dst++ = '=';
    }
    *dst = 0;
}

//  --------------------------------------------------------------------------
//  Writes into accept the Sec-WebSocket-Accept for key.

int
wsc_accept_for (const char *key, char accept[29])
{
    char joined[128];
    int n = snprintf (joined, sizeof (joined), "%s%s", key, S_GUID);
    if (n < 0 || (size_t) n >= sizeof (joined))
        return -1;
    unsigned char digest[20];
    if (ssl_sha1 (joined, (size_t) n, digest))
        return -1;
    s_base64 (digest, sizeof (digest), accept);
    return 0;
}

//  --------------------------------------------------------------------------
//  Reads the server frame at buf[len].

int
wsc_parse_frame (const unsigned char *buf, size_t len, size_t max, wsc_frame_t *out)
{
    if (max > WSC_MAX_MESSAGE_LIMIT)
        max = WSC_MAX_MESSAGE_LIMIT;
    if (len < 2)
        return 0;
    memset (out, 0, sizeof (*out));
    out->fin = (buf[0] & 0x80) != 0;
    out->opcode = buf[0] & 0x0F;
    bool masked = (buf[1] & 0x80) != 0;
    uint64_t length = buf[1] & 0x7F;
    size_t header = 2;
    if (length == 126) {
        if (len < 4)
            return 0;
        length = (uint64_t) buf[2] << 8 | buf[3];
        header = 4;
    }
    else if (length == 127) {
        if (len < 10)
            return 0;
        length = 0;
        for (int i = 0; i < 8; i++)
            length = length << 8 | buf[2 + i];
        header = 10;
    }
    out->length = length;
    out->header = header;
    bool control = out->opcode >= 8;
    if ((buf[0] & 0x70) != 0  //  Reserved bits: no extension was agreed
        || (out->opcode > 2 && out->opcode < 8) || out->opcode > 10
        || masked  //  A server never masks (RFC 6455 5.1)
        || (control && (!out->fin || length > 125)) || (length >> 63) != 0)
        return -1;
    if (length > max)
        return -2;
    if (len - header < length)
        return 0;
    return (int) (header + length);
}

//  True if the header value (len bytes) holds token, case aside, in its
//  comma-separated list.
static bool
s_has_token (const char *value, size_t len, const char *token)
{
    size_t tlen = strlen (token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end - start == tlen && strncasecmp (value + start, token, tlen) == 0)
            return true;
    }
    return false;
}

//  --------------------------------------------------------------------------
//  Reads the server's answer to the upgrade.

int
wsc_parse_upgrade (const char *buf, size_t len, const char *accept, char *err,
                   size_t errlen)
{
    size_t scan = len < WSC_MAX_HEAD ? len : WSC_MAX_HEAD;
    const char *end = (const char *) memmem (buf, scan, "\r\n\r\n", 4);
    if (!end) {
        if (len >= WSC_MAX_HEAD) {
            snprintf (err, errlen, "upgrade response over %d bytes", WSC_MAX_HEAD);
            return -1;
        }
        return 0;
    }
    size_t head = (size_t) (end - buf) + 4;
    //  Status line: HTTP/1.x NNN reason
    const char *line = buf;
    const char *eol = (const char *) memmem (line, head, "\r\n", 2);
    size_t line_len = (size_t) (eol - line);
    if (line_len < 12 || memcmp (line, "HTTP/1.", 7) != 0 || line[8] != ' '
        || line[9] < '0' || line[9] > '9' || line[10] < '0' || line[10] > '9'
        || line[11] < '0' || line[11] > '9' || (line_len > 12 && line[12] != ' ')) {
        snprintf (err, errlen, "upgrade answered with no HTTP status line");
        return -1;
    }
    int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status != 101) {
        snprintf (err, errlen, "upgrade answered HTTP %d", status);
        return -1;
    }
    bool upgrade = false, connection = false, accepted = false;
    const char *at = eol + 2;
    const char *stop = buf + head - 2;  //  The blank line's CRLF
    while (at < stop) {
        eol = (const char *) memmem (at, (size_t) (stop + 2 - at), "\r\n", 2);
        const char *colon = (const char *) memchr (at, ':', (size_t) (eol - at));
        if (!colon || colon == at) {
            snprintf (err, errlen, "upgrade answered a malformed header line");
            return -1;
        }
        size_t name_len = (size_t) (colon - at);
        const char *value = colon + 1;
        while (value < eol && (*value == ' ' || *value == '\t'))
            value++;
        size_t value_len = (size_t) (eol - value);
        while (value_len > 0
               && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
            value_len--;
#define S_IS(name) (name_len == strlen (name) && strncasecmp (at, name, name_len) == 0)
        if (S_IS ("Upgrade"))
            upgrade = s_has_token (value, value_len, "websocket");
        else if (S_IS ("Connection"))
            connection = s_has_token (value, value_len, "upgrade");
        else if (S_IS ("Sec-WebSocket-Accept"))
            accepted =
                value_len == strlen (accept) && memcmp (value, accept, value_len) == 0;
        else if (S_IS ("Sec-WebSocket-Extensions") || S_IS ("Sec-WebSocket-Protocol")) {
            snprintf (err, errlen, "upgrade answered %.*s we did not offer",
                      (int) name_len, at);
            return -1;
        }
#undef S_IS
        at = eol + 2;
    }
    if (!upgrade || !connection) {
        snprintf (err, errlen, "upgrade answered without Upgrade: websocket");
        return -1;
    }
    if (!accepted) {
        snprintf (err, errlen, "upgrade answered a wrong Sec-WebSocket-Accept");
        return -1;
    }
    return (int) head;
}

//  Splits url into self's host, port, target and names.  0 or -1.
static int
s_parse_url (wsc_t *self, const char *url)
{
    const char *rest;
    if (strncasecmp (url, "ws://", 5) == 0)
        rest = url + 5;
    else if (strncasecmp (url, "wss://", 6) == 0) {
        rest = url + 6;
        self->tls = true;
    }
    else
        return -1;
    size_t auth_len = strcspn (rest, "/?#");
    const char *path = rest + auth_len;
    if (auth_len == 0 || memchr (rest, '@', auth_len))
        return -1;
    const char *host = rest;
    size_t host_len;
    const char *port = NULL;
    if (rest[0] == '[') {
        const char *close = (const char *) memchr (rest, ']', auth_len);
        if (!close || close == rest + 1)
            return -1;
        host = rest + 1;
        host_len = (size_t) (close - host);
        if (close + 1 < rest + auth_len) {
            if (close[1] != ':')
                return -1;
            port = close + 2;
        }
    }
    else {
        const char *colon = (const char *) memchr (rest, ':', auth_len);
        host_len = colon ? (size_t) (colon - rest) : auth_len;
        if (colon)
            port = colon + 1;
    }
    if (host_len == 0)
        return -1;
    self->port = self->tls ? 443 : 80;
    if (port) {
        size_t digits = (size_t) (rest + auth_len - port);
        if (digits == 0 || digits > 5 || strspn (port, "0123456789") < digits)
            return -1;
        self->port = atoi (port);
        if (self->port < 1 || self->port > 65535)
            return -1;
    }
    self->host = strndup (host, host_len);
    size_t target_len = strcspn (path, "#");
    bool no_path = target_len == 0 || path[0] == '?';
    size_t path_len = strcspn (path, "?#");
    bool default_port = self->port == (self->tls ? 443 : 80);
    bool v6 = rest[0] == '[';
    self->host_header =
        default_port ? zsys_sprintf ("%s%s%s", v6 ? "[" : "", self->host, v6 ? "]" : "")
                     : zsys_sprintf ("%s%s%s:%d", v6 ? "[" : "", self->host,
                                     v6 ? "]" : "", self->port);
    self->target = zsys_sprintf ("%s%.*s", no_path ? "/" : "", (int) target_len, path);
    self->where = zsys_sprintf ("%s%s%s:%d%s%.*s", v6 ? "[" : "",
                                self->host ? self->host : "", v6 ? "]" : "", self->port,
                                no_path ? "/" : "", (int) path_len, path);
    if (!self->host || !self->host_header || !self->target || !self->where)
        return -1;
    //  A request line must not be split by what the URL carries.
    if (strpbrk (self->target, " \r\n") || strpbrk (self->host, " \r\n/"))
        return -1;
    return 0;
}

//  --------------------------------------------------------------------------
//  Timers and poller

//  Runs the tick every ms (0: none).
static void
s_tick_set (wsc_t *self, int ms)
{
    if (ms == self->tick_ms && (ms == 0 || self->tick_id != -1))
        return;
    if (self->tick_id != -1)
        zloop_timer_end (self->loop, self->tick_id);
    self->tick_id = -1;
    self->tick_ms = ms;
    if (ms > 0)
        self->tick_id =
            zloop_timer (self->loop, (size_t) ms, 0, s_on_tick, (void *) self->id);
}

//  The tick's period while open: fine enough for the ping and idle
//  settings, and none if neither is set.
static int
s_open_tick (wsc_t *self)
{
    int base = 0;
    if (self->ping_ms > 0)
        base = self->ping_ms;
    if (self->idle_ms > 0 && (base == 0 || self->idle_ms < base))
        base = self->idle_ms;
    if (base == 0)
        return 0;
    int ms = base / 8;
    return ms < 10 ? 10 : ms > 1000 ? 1000 : ms;
}

static void
s_kick (wsc_t *self)
{
    if (self->kick_id == -1)
        self->kick_id = zloop_timer (self->loop, 0, 1, s_on_kick, (void *) self->id);
}

//  Polls the socket for events (0: no poller).
static void
s_want (wsc_t *self, int events)
{
    if (events == self->events)
        return;
    zmq_pollitem_t item = {NULL, self->fd, 0, 0};
    if (self->events)
        zloop_poller_end (self->loop, &item);
    self->events = 0;
    if (events && self->fd >= 0) {
        item.events = (short) events;
        if (zloop_poller (self->loop, &item, s_on_io, (void *) self->id) == 0) {
            zloop_poller_set_tolerant (self->loop, &item);
            self->events = events;
        }
    }
}

//  Closes the socket and TLS, poller first.
static void
s_drop_socket (wsc_t *self)
{
    s_want (self, 0);
    ssl_conn_destroy (&self->ssl);
    if (self->fd >= 0)
        close (self->fd);
    self->fd = -1;
}

//  Cancels the DNS request, or hands it to the abandoned list.
static void
s_drop_dns (wsc_t *self)
{
    s_dns_t *dns = self->dns;
    if (!dns)
        return;
    self->dns = NULL;
    if (gai_error (&dns->cb) == EAI_INPROGRESS && gai_cancel (&dns->cb) != EAI_CANCELED
        && gai_error (&dns->cb) == EAI_INPROGRESS) {
        pthread_mutex_lock (&s_lock);
        dns->next = s_abandoned;
        s_abandoned = dns;
        pthread_mutex_unlock (&s_lock);
        return;
    }
    if (dns->cb.ar_result)
        freeaddrinfo (dns->cb.ar_result);
    free (dns);
}

//  Calls the owner.  -1 if it destroyed us meanwhile.
static int
s_emit (wsc_t *self, wsc_event_t event, const char *data, size_t len, int code)
{
    bool gone = false;
    self->gone = &gone;
    self->fn (self, event, data, len, code, self->arg);
    if (gone)
        return -1;
    self->gone = NULL;
    return 0;
}

//  Ends the connection now: everything stops, then WSC_CLOSED.  Always -1
//  (the caller stops too).
static int
s_finish (wsc_t *self, int code, const char *reason)
{
    if (self->state == S_DONE)
        return -1;
    s_drop_dns (self);
    s_drop_socket (self);
    s_tick_set (self, 0);
    if (self->kick_id != -1)
        zloop_timer_end (self->loop, self->kick_id);
    self->kick_id = -1;
    self->state = S_DONE;
    self->end_pending = false;
    if (reason != self->end_reason)
        snprintf (self->end_reason, sizeof (self->end_reason), "%s", reason);
    if (code == 1000 || code == 1001)
        log_info (S_LOG, "%s: closed %d %s", self->where, code, self->end_reason);
    else
        log_warn (S_LOG, "%s: closed %d %s", self->where, code, self->end_reason);
    s_emit (self, WSC_CLOSED, self->end_reason, strlen (self->end_reason), code);
    return -1;
}

//  Ends the connection from inside a wsc_* call: reported by the kick.
static void
s_finish_later (wsc_t *self, int code, const char *reason)
{
    if (self->state == S_DONE || self->end_pending)
        return;
    self->end_pending = true;
    self->end_code = code;
    snprintf (self->end_reason, sizeof (self->end_reason), "%s", reason);
    s_kick (self);
}

//  --------------------------------------------------------------------------
//  Writing

//  Room for n more bytes in the write queue.  0 or -1.
static int
s_out_reserve (wsc_t *self, size_t n)
{
    if (self->out_off > 0 && self->out_off == self->out_len)
        self->out_off = self->out_len = 0;
    if (self->out_cap - self->out_len >= n)
        return 0;
    if (self->out_off > 0) {
        memmove (self->out, self->out + self->out_off, self->out_len - self->out_off);
        self->out_len -= self->out_off;
        self->out_off = 0;
        if (self->out_cap - self->out_len >= n)
            return 0;
    }
    size_t cap = self->out_cap ? self->out_cap : 4096;
    while (cap - self->out_len < n)
        cap *= 2;
    unsigned char *out = (unsigned char *) realloc (self->out, cap);
    if (!out)
        return -1;
    self->out = out;
    self->out_cap = cap;
    return 0;
}

//  Queues one masked frame.  0 or -1.
static int
s_queue_frame (wsc_t *self, int opcode, const void *data, size_t len)
{
    if (s_out_reserve (self, len + 14))
        return -1;
    unsigned char *p = self->out + self->out_len;
    *p++ = (unsigned char) (0x80 | opcode);
    if (len < 126)
        *p++ = (unsigned char) (0x80 | len);
    else if (len <= 0xFFFF) {
        *p++ = 0x80 | 126;
        *p++ = (unsigned char) (len >> 8);
        *p++ = (unsigned char) len;
    }
    else {
        *p++ = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            *p++ = (unsigned char) ((uint64_t) len >> (8 * i));
    }
    unsigned char mask[4];
    if (ssl_random (mask, sizeof (mask)))
        return -1;
    memcpy (p, mask, 4);
    p += 4;
    const unsigned char *src = (const unsigned char *) data;
    for (size_t i = 0; i < len; i++)
        p[i] = src[i] ^ mask[i & 3];
    self->out_len = (size_t) (p + len - self->out);
    return 0;
}

//  Queues a close frame with code (none if 0).
static int
s_queue_close (wsc_t *self, int code)
{
    unsigned char payload[2] = {(unsigned char) (code >> 8), (unsigned char) code};
    return s_queue_frame (self, 8, payload, code ? 2 : 0);
}

//  Writes what the socket takes.  0, or -1 with a reason in err.
static int
s_flush (wsc_t *self, char *err, size_t errlen)
{
    while (self->out_off < self->out_len) {
        const unsigned char *at = self->out + self->out_off;
        size_t n = self->out_len - self->out_off;
        ssize_t rc;
        if (self->ssl) {
            rc = ssl_conn_write (self->ssl, at, n, err, errlen);
            if (rc == SSL_CONN_WANT_READ || rc == SSL_CONN_WANT_WRITE)
                return 0;
        }
        else {
            rc = send (self->fd, at, n, MSG_NOSIGNAL);
            if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return 0;
            if (rc < 0)
                snprintf (err, errlen, "write: %s", strerror (errno));
        }
        if (rc <= 0)
            return -1;
        self->out_off += (size_t) rc;
    }
    self->out_off = self->out_len = 0;
    return 0;
}

//  Polls for what the state needs now.
static void
s_rearm (wsc_t *self)
{
    bool pending = self->out_off < self->out_len;
    if (self->state == S_DRAIN)
        s_want (self, ZMQ_POLLOUT);
    else if (self->state == S_UPGRADE || self->state == S_OPEN
             || self->state == S_CLOSING)
        s_want (self, ZMQ_POLLIN | (pending ? ZMQ_POLLOUT : 0));
}

//  Fails the connection (1002, 1009, ...): our close frame goes out, then
//  WSC_CLOSED with code.  -1 (stop reading).
static int
s_fail (wsc_t *self, int code, const char *reason)
{
    self->end_code = code;
    snprintf (self->end_reason, sizeof (self->end_reason), "%s", reason);
    if (s_queue_close (self, code))
        return s_finish (self, code, self->end_reason);
    self->state = S_DRAIN;
    self->deadline = s_now () + S_CLOSE_WAIT_MS;
    self->in_len = 0;
    s_tick_set (self, 50);
    s_rearm (self);
    return -1;
}

//  --------------------------------------------------------------------------
//  Reading frames

//  Handles a close frame's payload.  -1 (the connection ends).
static int
s_on_close_frame (wsc_t *self, const unsigned char *p, size_t len)
{
    int code = 1005;
    if (len == 1)
        return s_fail (self, 1002, "close frame of one byte");
    if (len >= 2) {
        code = p[0] << 8 | p[1];
        if (code < 1000 || (code >= 1004 && code <= 1006) || (code >= 1015 && code < 3000)
            || code > 4999)
            return s_fail (self, 1002, "close frame with an invalid code");
    }
    char reason[124];
    size_t rlen = len > 2 ? len - 2 : 0;
    memcpy (reason, p + 2 * (len >= 2), rlen);
    reason[rlen] = 0;
    for (size_t i = 0; i < rlen; i++)
        if ((unsigned char) reason[i] < 0x20)
            reason[i] = ' ';
    if (self->state == S_CLOSING)  //  The answer to ours
        return s_finish (self, code, rlen ? reason : "closed");
    //  The server's: answer it, then report once it is written.
    self->end_code = code;
    snprintf (self->end_reason, sizeof (self->end_reason), "%s",
              rlen ? reason : "closed by the server");
    if (s_queue_close (self, len >= 2 ? code : 0))
        return s_finish (self, code, self->end_reason);
    self->state = S_DRAIN;
    self->deadline = s_now () + S_CLOSE_WAIT_MS;
    self->in_len = 0;
    s_tick_set (self, 50);
    s_rearm (self);
    return -1;
}

//  Handles one whole frame.  0, or -1 to stop (ended or destroyed).
static int
s_on_frame (wsc_t *self, const wsc_frame_t *f, const unsigned char *p)
{
    size_t len = (size_t) f->length;
    if (f->opcode == 8)
        return s_on_close_frame (self, p, len);
    if (f->opcode == 9) {
        if (s_queue_frame (self, 10, p, len))
            return s_finish (self, 1006, "out of memory");
        return 0;
    }
    if (f->opcode == 10)
        return 0;
    if (f->opcode == 0 && self->msg_opcode == 0)
        return s_fail (self, 1002, "continuation frame with no message");
    if (f->opcode != 0 && self->msg_opcode != 0)
        return s_fail (self, 1002, "new message inside a fragmented one");
    if (f->opcode != 0) {
        self->msg_opcode = f->opcode;
        self->msg_len = 0;
    }
    if (self->msg_opcode == 1) {
        if (len > self->max_message - self->msg_len) {
            char reason[80];
            snprintf (reason, sizeof (reason), "message over %zu bytes",
                      self->max_message);
            return s_fail (self, 1009, reason);
        }
        if (self->msg_len + len + 1 > self->msg_cap) {
            size_t cap = self->msg_cap ? self->msg_cap : 4096;
            while (cap < self->msg_len + len + 1)
                cap *= 2;
            char *msg = (char *) realloc (self->msg, cap);
            if (!msg)
                return s_fail (self, 1009, "out of memory");
            self->msg = msg;
            self->msg_cap = cap;
        }
        if (len)
            memcpy (self->msg + self->msg_len, p, len);
        self->msg_len += len;
    }
    if (!f->fin)
        return 0;
    int opcode = self->msg_opcode;
    self->msg_opcode = 0;
    if (opcode != 1 || self->state != S_OPEN)
        return 0;  //  Binary messages, and messages after wsc_close, are dropped
    self->msg[self->msg_len] = 0;
    return s_emit (self, WSC_TEXT, self->msg, self->msg_len, 0);
}

//  Parses the frames in the read buffer.  0, or -1 to stop.
static int
s_parse_frames (wsc_t *self)
{
    size_t at = 0;
    int rc = 0;
    while (rc == 0 && (self->state == S_OPEN || self->state == S_CLOSING)) {
        wsc_frame_t f;
        int n = wsc_parse_frame (self->in + at, self->in_len - at, self->max_message, &f);
        if (n == 0)
            break;
        if (n == -1)
            return s_fail (self, 1002, "protocol error");
        if (n == -2) {
            char reason[80];
            snprintf (reason, sizeof (reason), "message over %zu bytes",
                      self->max_message);
            return s_fail (self, 1009, reason);
        }
        rc = s_on_frame (self, &f, self->in + at + f.header);
        if (rc == 0)
            at += (size_t) n;
    }
    if (rc == 0 && at > 0) {
        memmove (self->in, self->in + at, self->in_len - at);
        self->in_len -= at;
    }
    return rc;
}

//  Reads what the socket holds into the read buffer.  1 if bytes came,
//  0 if none, -1 when the connection ended (reported).
static int
s_read (wsc_t *self, size_t *budget)
{
    if (self->in_cap - self->in_len < S_READ_CHUNK / 4) {
        size_t cap = self->in_cap ? self->in_cap * 2 : S_READ_CHUNK;
        while (cap - self->in_len < S_READ_CHUNK / 4)
            cap *= 2;
        unsigned char *in = (unsigned char *) realloc (self->in, cap);
        if (!in)
            return s_finish (self, 1006, "out of memory");
        self->in = in;
        self->in_cap = cap;
    }
    size_t room = self->in_cap - self->in_len;
    if (room > *budget)
        room = *budget > 0 ? *budget : 1;
    char err[160] = "";
    ssize_t rc;
    if (self->ssl) {
        rc = ssl_conn_read (self->ssl, self->in + self->in_len, room, err, sizeof (err));
        if (rc == SSL_CONN_WANT_READ || rc == SSL_CONN_WANT_WRITE)
            return 0;
    }
    else {
        rc = recv (self->fd, self->in + self->in_len, room, 0);
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (rc < 0)
            snprintf (err, sizeof (err), "read: %s", strerror (errno));
    }
    if (rc == 0)
        return s_finish (self, 1006,
                         self->state == S_UPGRADE ? "connection closed during the upgrade"
                                                  : "connection dropped by the server");
    if (rc < 0)
        return s_finish (self, 1006, err);
    self->in_len += (size_t) rc;
    *budget -= *budget > (size_t) rc ? (size_t) rc : *budget;
    self->last_rx = s_now ();
    return 1;
}

//  --------------------------------------------------------------------------
//  Connecting

//  Queues the upgrade request.  0 or -1.
static int
s_queue_upgrade (wsc_t *self)
{
    unsigned char nonce[16];
    if (ssl_random (nonce, sizeof (nonce)))
        return -1;
    s_base64 (nonce, sizeof (nonce), self->key);
    if (wsc_accept_for (self->key, self->accept))
        return -1;
    char *req = zsys_sprintf ("GET %s HTTP/1.1\r\n"
                              "Host: %s\r\n"
                              "Upgrade: websocket\r\n"
                              "Connection: Upgrade\r\n"
                              "Sec-WebSocket-Key: %s\r\n"
                              "Sec-WebSocket-Version: 13\r\n"
                              "%s%s%s"
                              "\r\n",
                              self->target, self->host_header, self->key,
                              self->user_agent ? "User-Agent: " : "",
                              self->user_agent ? self->user_agent : "",
                              self->user_agent ? "\r\n" : "");
    if (!req)
        return -1;
    size_t len = strlen (req);
    int rc = s_out_reserve (self, len);
    if (rc == 0) {
        memcpy (self->out + self->out_len, req, len);
        self->out_len += len;
    }
    zstr_free (&req);
    return rc;
}

//  The socket is connected: TLS next, or the upgrade.  -1 if ended.
static int
s_connected (wsc_t *self)
{
    int one = 1;
    setsockopt (self->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    if (self->tls) {
        char err[160];
        self->ssl = ssl_conn_new (self->fd, self->host, err, sizeof (err));
        if (!self->ssl)
            return s_finish (self, 1006, err);
        self->state = S_TLS;
    }
    else {
        if (s_queue_upgrade (self))
            return s_finish (self, 1006, "cannot build the upgrade request");
        self->state = S_UPGRADE;
    }
    return s_advance (self);
}

//  Tries the next address.  -1 if ended.
static int
s_connect_next (wsc_t *self)
{
    int last = ECONNREFUSED;
    while (self->next_addr) {
        struct addrinfo *ai = self->next_addr;
        self->next_addr = ai->ai_next;
        int fd = socket (ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
                         ai->ai_protocol);
        if (fd < 0) {
            last = errno;
            continue;
        }
        self->fd = fd;
        int rc = connect (fd, ai->ai_addr, ai->ai_addrlen);
        if (rc == 0)
            return s_connected (self);
        if (errno == EINPROGRESS) {
            self->state = S_CONNECT;
            s_want (self, ZMQ_POLLOUT);
            return 0;
        }
        last = errno;
        close (fd);
        self->fd = -1;
    }
    char reason[120];
    snprintf (reason, sizeof (reason), "%s", strerror (last));
    reason[0] = (char) tolower ((unsigned char) reason[0]);
    return s_finish (self, 1006, reason);
}

//  Does what the state allows now.  -1 if ended.
static int
s_advance (wsc_t *self)
{
    char err[200] = "";
    if (self->state == S_CONNECT) {
        int so_error = 0;
        socklen_t len = sizeof (so_error);
        if (getsockopt (self->fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0)
            so_error = errno;
        if (so_error == EINPROGRESS)
            return 0;
        if (so_error) {
            s_drop_socket (self);
            errno = so_error;
            if (self->next_addr)
                return s_connect_next (self);
            snprintf (err, sizeof (err), "%s", strerror (so_error));
            err[0] = (char) tolower ((unsigned char) err[0]);
            return s_finish (self, 1006, err);
        }
        return s_connected (self);
    }
    if (self->state == S_TLS) {
        int rc = ssl_conn_handshake (self->ssl, err, sizeof (err));
        if (rc == SSL_CONN_WANT_READ)
            s_want (self, ZMQ_POLLIN);
        else if (rc == SSL_CONN_WANT_WRITE)
            s_want (self, ZMQ_POLLOUT);
        else if (rc < 0)
            return s_finish (self, 1006, err);
        else {
            if (s_queue_upgrade (self))
                return s_finish (self, 1006, "cannot build the upgrade request");
            self->state = S_UPGRADE;
        }
        if (self->state == S_TLS)
            return 0;
    }
    //  UPGRADE, OPEN, CLOSING, DRAIN: write, then read.
    if (s_flush (self, err, sizeof (err)))
        return s_finish (self, self->state == S_DRAIN ? self->end_code : 1006, err);
    if (self->state == S_DRAIN) {
        if (self->out_off == self->out_len)
            return s_finish (self, self->end_code, self->end_reason);
        return 0;
    }
    size_t budget = S_READ_BUDGET;
    while (budget > 0) {
        int rc = s_read (self, &budget);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        if (self->state == S_UPGRADE) {
            int head = wsc_parse_upgrade ((const char *) self->in, self->in_len,
                                          self->accept, err, sizeof (err));
            if (head < 0)
                return s_finish (self, 1006, err);
            if (head == 0)
                continue;
            memmove (self->in, self->in + head, self->in_len - (size_t) head);
            self->in_len -= (size_t) head;
            self->state = S_OPEN;
            self->last_ping = self->last_rx = s_now ();
            s_tick_set (self, s_open_tick (self));
            log_info (S_LOG, "%s: open", self->where);
            if (s_emit (self, WSC_OPEN, "", 0, 0))
                return -1;
            if (self->state != S_OPEN && self->state != S_CLOSING)
                return 0;
        }
        if (s_parse_frames (self))
            return -1;
    }
    //  Bytes OpenSSL holds do not make the socket readable: come back.
    if (budget == 0 || (self->ssl && ssl_conn_pending (self->ssl) > 0))
        s_kick (self);
    //  Pongs and closes queued while reading.
    if (s_flush (self, err, sizeof (err)))
        return s_finish (self, 1006, err);
    if (self->state == S_DRAIN && self->out_off == self->out_len)
        return s_finish (self, self->end_code, self->end_reason);
    s_rearm (self);
    return 0;
}

//  --------------------------------------------------------------------------
//  Handlers

static int
s_on_io (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    wsc_t *self = s_lookup (arg);
    if (self && self->state != S_DONE && self->fd == item->fd)
        s_advance (self);
    return 0;
}

static int
s_on_kick (zloop_t *loop, int timer_id, void *arg)
{
    wsc_t *self = s_lookup (arg);
    if (!self || self->kick_id != timer_id)
        return 0;
    self->kick_id = -1;  //  A one-shot: zloop frees it
    if (self->end_pending)
        s_finish (self, self->end_code, self->end_reason);
    else if (self->state == S_RESOLVE && !self->dns)
        s_connect_next (self);  //  An IP literal: no DNS
    else if (self->state != S_RESOLVE && self->state != S_DONE && self->fd >= 0)
        s_advance (self);
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    wsc_t *self = s_lookup (arg);
    if (!self || self->tick_id != timer_id || self->state == S_DONE)
        return 0;
    int64_t now = s_now ();
    char reason[80], span[24];
    if (self->state == S_CLOSING || self->state == S_DRAIN) {
        if (now >= self->deadline) {
            if (self->state == S_DRAIN)
                s_finish (self, self->end_code, self->end_reason);
            else
                s_finish (self, 1006, "no close answer from the server in 1 s");
        }
        return 0;
    }
    if (self->state != S_OPEN) {
        if (now - self->started >= self->connect_ms) {
            s_seconds (span, sizeof (span), self->connect_ms);
            snprintf (reason, sizeof (reason), "connect timed out after %s", span);
            s_finish (self, 1006, reason);
            return 0;
        }
        if (self->state == S_RESOLVE && self->dns) {
            int rc = gai_error (&self->dns->cb);
            if (rc == EAI_INPROGRESS)
                return 0;
            if (rc != 0) {
                snprintf (reason, sizeof (reason), "DNS: %s", gai_strerror (rc));
                s_finish (self, 1006, reason);
                return 0;
            }
            self->addrs = self->dns->cb.ar_result;
            self->dns->cb.ar_result = NULL;
            self->addrs_dns = true;
            free (self->dns);
            self->dns = NULL;
            self->next_addr = self->addrs;
            s_tick_set (self, self->connect_ms / 20 < 10 ? 10 : self->connect_ms / 20);
            s_connect_next (self);
        }
        return 0;
    }
    if (self->idle_ms > 0 && now - self->last_rx >= self->idle_ms) {
        s_seconds (span, sizeof (span), self->idle_ms);
        snprintf (reason, sizeof (reason), "no data for %s", span);
        s_finish (self, 1006, reason);
        return 0;
    }
    if (self->ping_ms > 0 && now - self->last_ping >= self->ping_ms) {
        self->last_ping = now;
        if (s_queue_frame (self, 9, "", 0) == 0)
            s_advance (self);
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Starts connecting to url on loop.

wsc_t *
wsc_connect (zloop_t *loop, const char *url, const wsc_opts_t *opts, wsc_fn *fn,
             void *arg)
{
    assert (loop);
    assert (fn);
    if (!url)
        return NULL;
    s_reap_dns ();
    wsc_t *self = (wsc_t *) calloc (1, sizeof (wsc_t));
    if (!self)
        return NULL;
    self->loop = loop;
    self->fn = fn;
    self->arg = arg;
    self->fd = -1;
    self->tick_id = self->kick_id = -1;
    self->state = S_RESOLVE;
    self->started = s_now ();
    wsc_opts_t o = {0, 0, 0, 0, NULL};
    if (opts)
        o = *opts;
    self->max_message = o.max_message ? o.max_message : S_DEFAULT_MAX;
    if (self->max_message > WSC_MAX_MESSAGE_LIMIT)
        self->max_message = WSC_MAX_MESSAGE_LIMIT;
    self->connect_ms =
        o.connect_timeout_ms > 0 ? o.connect_timeout_ms : S_DEFAULT_CONNECT_MS;
    self->ping_ms = o.ping_interval_ms > 0 ? o.ping_interval_ms : 0;
    self->idle_ms = o.idle_timeout_ms > 0 ? o.idle_timeout_ms : 0;
    if (o.user_agent && !strpbrk (o.user_agent, "\r\n"))
        self->user_agent = strdup (o.user_agent);
    if (s_parse_url (self, url) || (o.user_agent && !self->user_agent)) {
        free (self->host);
        free (self->host_header);
        free (self->target);
        free (self->where);
        free (self->user_agent);
        free (self);
        return NULL;
    }
    pthread_mutex_lock (&s_lock);
    self->id = s_next_id++;
    self->next = s_live;
    s_live = self;
    pthread_mutex_unlock (&s_lock);

    char service[8];
    snprintf (service, sizeof (service), "%d", self->port);
    struct addrinfo hints;
    memset (&hints, 0, sizeof (hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV;
    log_info (S_LOG, "%s: connecting", self->where);
    if (getaddrinfo (self->host, service, &hints, &self->addrs) == 0) {
        //  An IP literal: connect from the loop, at once.
        self->next_addr = self->addrs;
        s_tick_set (self, self->connect_ms / 20 < 10 ? 10 : self->connect_ms / 20);
        s_kick (self);
        return self;
    }
    self->addrs = NULL;
    size_t name_len = strlen (self->host);
    s_dns_t *dns = (s_dns_t *) calloc (1, sizeof (s_dns_t) + name_len + 1);
    if (dns) {
        memcpy (dns->name, self->host, name_len + 1);
        memcpy (dns->service, service, sizeof (service));
        dns->hints = hints;
        dns->hints.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG;
        dns->cb.ar_name = dns->name;
        dns->cb.ar_service = dns->service;
        dns->cb.ar_request = &dns->hints;
        dns->list[0] = &dns->cb;
        struct sigevent sev;
        memset (&sev, 0, sizeof (sev));
        sev.sigev_notify = SIGEV_NONE;
        if (getaddrinfo_a (GAI_NOWAIT, dns->list, 1, &sev) == 0)
            self->dns = dns;
        else
            free (dns);
    }
    s_tick_set (self, 10);  //  Polls the resolver
    if (!self->dns)
        s_finish_later (self, 1006, "DNS: cannot start the lookup");
    return self;
}

//  --------------------------------------------------------------------------
//  Queues one text message.

int
wsc_send_text (wsc_t *ws, const char *data, size_t len)
{
    if (!ws || ws->state != S_OPEN || ws->end_pending)
        return -1;
    if (s_queue_frame (ws, 1, data, len))
        return -1;
    char err[160];
    if (s_flush (ws, err, sizeof (err)))
        s_finish_later (ws, 1006, err);
    else
        s_rearm (ws);
    return 0;
}

//  --------------------------------------------------------------------------
//  Sends a close frame and waits for the server's.

void
wsc_close (wsc_t *ws, int code)
{
    if (!ws || ws->close_requested || ws->state == S_DONE || ws->end_pending)
        return;
    ws->close_requested = true;
    if (ws->state != S_OPEN) {
        if (ws->state != S_CLOSING && ws->state != S_DRAIN)
            s_finish_later (ws, 1006, "closed before the connection was open");
        return;
    }
    if (s_queue_close (ws, code)) {
        s_finish_later (ws, 1006, "out of memory");
        return;
    }
    ws->state = S_CLOSING;
    ws->deadline = s_now () + S_CLOSE_WAIT_MS;
    s_tick_set (ws, 50);
    char err[160];
    if (s_flush (ws, err, sizeof (err)))
        s_finish_later (ws, 1006, err);
    else
        s_rearm (ws);
}

//  --------------------------------------------------------------------------
//  Drops the connection at once and frees everything.

void
wsc_destroy (wsc_t **ws_p)
{
    if (!ws_p || !*ws_p)
        return;
    wsc_t *self = *ws_p;
    pthread_mutex_lock (&s_lock);
    wsc_t **at = &s_live;
    while (*at && *at != self)
        at = &(*at)->next;
    if (*at)
        *at = self->next;
    pthread_mutex_unlock (&s_lock);
    if (self->gone)
        *self->gone = true;
    s_drop_dns (self);
    s_drop_socket (self);
    s_tick_set (self, 0);
    if (self->kick_id != -1)
        zloop_timer_end (self->loop, self->kick_id);
    if (self->addrs)
        freeaddrinfo (self->addrs);
    free (self->in);
    free (self->out);
    free (self->msg);
    free (self->host);
    free (self->host_header);
    free (self->target);
    free (self->where);
    free (self->user_agent);
    free (self);
    *ws_p = NULL;
    s_reap_dns ();
}

//  --------------------------------------------------------------------------
//  Bytes queued and not yet written.

size_t
wsc_pending (const wsc_t *ws)
{
    return ws ? ws->out_len - ws->out_off : 0;
}
