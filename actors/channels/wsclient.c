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

    Files: this one holds the connection's life (DNS, connect, TLS, the
    upgrade, timers, the API); wsframes.c the open connection's bytes
    (write queue, reads, frames); wsproto.c the pure wire parsers;
    wsclient_internal.h what the first two share.
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
#include "wsclient_internal.h"

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

int64_t
wsc_now (void)
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
void
wsc_tick_set (wsc_t *self, int ms)
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
void
wsc_want (wsc_t *self, int events)
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
    wsc_want (self, 0);
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
int
wsc_emit (wsc_t *self, wsc_event_t event, const char *data, size_t len, int code)
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
int
wsc_finish (wsc_t *self, int code, const char *reason)
{
    if (self->state == S_DONE)
        return -1;
    s_drop_dns (self);
    s_drop_socket (self);
    wsc_tick_set (self, 0);
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
    wsc_emit (self, WSC_CLOSED, self->end_reason, strlen (self->end_reason), code);
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

//  Queues the upgrade request.  0 or -1.
static int
s_queue_upgrade (wsc_t *self)
{
    unsigned char nonce[16];
    if (ssl_random (nonce, sizeof (nonce)))
        return -1;
    wsc_base64 (nonce, sizeof (nonce), self->key);
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
    int rc = wsc_out_reserve (self, len);
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
            return wsc_finish (self, 1006, err);
        self->state = S_TLS;
    }
    else {
        if (s_queue_upgrade (self))
            return wsc_finish (self, 1006, "cannot build the upgrade request");
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
            wsc_want (self, ZMQ_POLLOUT);
            return 0;
        }
        last = errno;
        close (fd);
        self->fd = -1;
    }
    char reason[120];
    snprintf (reason, sizeof (reason), "%s", strerror (last));
    reason[0] = (char) tolower ((unsigned char) reason[0]);
    return wsc_finish (self, 1006, reason);
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
            return wsc_finish (self, 1006, err);
        }
        return s_connected (self);
    }
    if (self->state == S_TLS) {
        int rc = ssl_conn_handshake (self->ssl, err, sizeof (err));
        if (rc == SSL_CONN_WANT_READ)
            wsc_want (self, ZMQ_POLLIN);
        else if (rc == SSL_CONN_WANT_WRITE)
            wsc_want (self, ZMQ_POLLOUT);
        else if (rc < 0)
            return wsc_finish (self, 1006, err);
        else {
            if (s_queue_upgrade (self))
                return wsc_finish (self, 1006, "cannot build the upgrade request");
            self->state = S_UPGRADE;
        }
        if (self->state == S_TLS)
            return 0;
    }
    //  UPGRADE, OPEN, CLOSING, DRAIN: write, then read.
    if (wsc_flush (self, err, sizeof (err)))
        return wsc_finish (self, self->state == S_DRAIN ? self->end_code : 1006, err);
    if (self->state == S_DRAIN) {
        if (self->out_off == self->out_len)
            return wsc_finish (self, self->end_code, self->end_reason);
        return 0;
    }
    size_t budget = S_READ_BUDGET;
    while (budget > 0) {
        int rc = wsc_read (self, &budget);
        if (rc < 0)
            return -1;
        if (rc == 0)
            break;
        if (self->state == S_UPGRADE) {
            int head = wsc_parse_upgrade ((const char *) self->in, self->in_len,
                                          self->accept, err, sizeof (err));
            if (head < 0)
                return wsc_finish (self, 1006, err);
            if (head == 0)
                continue;
            memmove (self->in, self->in + head, self->in_len - (size_t) head);
            self->in_len -= (size_t) head;
            self->state = S_OPEN;
            self->last_ping = self->last_rx = wsc_now ();
            wsc_tick_set (self, s_open_tick (self));
            log_info (S_LOG, "%s: open", self->where);
            if (wsc_emit (self, WSC_OPEN, "", 0, 0))
                return -1;
            if (self->state != S_OPEN && self->state != S_CLOSING)
                return 0;
        }
        if (wsc_parse_frames (self))
            return -1;
    }
    //  Bytes OpenSSL holds do not make the socket readable: come back.
    if (budget == 0 || (self->ssl && ssl_conn_pending (self->ssl) > 0))
        s_kick (self);
    //  Pongs and closes queued while reading.
    if (wsc_flush (self, err, sizeof (err)))
        return wsc_finish (self, 1006, err);
    if (self->state == S_DRAIN && self->out_off == self->out_len)
        return wsc_finish (self, self->end_code, self->end_reason);
    wsc_rearm (self);
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
        wsc_finish (self, self->end_code, self->end_reason);
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
    int64_t now = wsc_now ();
    char reason[80], span[24];
    if (self->state == S_CLOSING || self->state == S_DRAIN) {
        if (now >= self->deadline) {
            if (self->state == S_DRAIN)
                wsc_finish (self, self->end_code, self->end_reason);
            else
                wsc_finish (self, 1006, "no close answer from the server in 1 s");
        }
        return 0;
    }
    if (self->state != S_OPEN) {
        if (now - self->started >= self->connect_ms) {
            s_seconds (span, sizeof (span), self->connect_ms);
            snprintf (reason, sizeof (reason), "connect timed out after %s", span);
            wsc_finish (self, 1006, reason);
            return 0;
        }
        if (self->state == S_RESOLVE && self->dns) {
            int rc = gai_error (&self->dns->cb);
            if (rc == EAI_INPROGRESS)
                return 0;
            if (rc != 0) {
                snprintf (reason, sizeof (reason), "DNS: %s", gai_strerror (rc));
                wsc_finish (self, 1006, reason);
                return 0;
            }
            self->addrs = self->dns->cb.ar_result;
            self->dns->cb.ar_result = NULL;
            self->addrs_dns = true;
            free (self->dns);
            self->dns = NULL;
            self->next_addr = self->addrs;
            wsc_tick_set (self, self->connect_ms / 20 < 10 ? 10 : self->connect_ms / 20);
            s_connect_next (self);
        }
        return 0;
    }
    if (self->idle_ms > 0 && now - self->last_rx >= self->idle_ms) {
        s_seconds (span, sizeof (span), self->idle_ms);
        snprintf (reason, sizeof (reason), "no data for %s", span);
        wsc_finish (self, 1006, reason);
        return 0;
    }
    if (self->ping_ms > 0 && now - self->last_ping >= self->ping_ms) {
        self->last_ping = now;
        if (wsc_queue_frame (self, 9, "", 0) == 0)
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
    self->started = wsc_now ();
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
        wsc_tick_set (self, self->connect_ms / 20 < 10 ? 10 : self->connect_ms / 20);
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
    wsc_tick_set (self, 10);  //  Polls the resolver
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
    if (wsc_queue_frame (ws, 1, data, len))
        return -1;
    char err[160];
    if (wsc_flush (ws, err, sizeof (err)))
        s_finish_later (ws, 1006, err);
    else
        wsc_rearm (ws);
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
    if (wsc_queue_close (ws, code)) {
        s_finish_later (ws, 1006, "out of memory");
        return;
    }
    ws->state = S_CLOSING;
    ws->deadline = wsc_now () + S_CLOSE_WAIT_MS;
    wsc_tick_set (ws, 50);
    char err[160];
    if (wsc_flush (ws, err, sizeof (err)))
        s_finish_later (ws, 1006, err);
    else
        wsc_rearm (ws);
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
    wsc_tick_set (self, 0);
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
