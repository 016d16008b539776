/*  =========================================================================
    gate - the connection gate in front of civetweb's worker threads
    =========================================================================
*/
#include "gate.h"

#include "error.h"
#include "log.h"

#include <arpa/inet.h>
#include <czmq.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

//  civetweb's default max_request_size: a head this long is handed over
//  unfinished, and civetweb answers it (431) itself.
#define GATE_HEAD_MAX 16384

//  Connections the gate holds at most, whatever the addresses; beyond it
//  new ones are closed at once (the descriptors are the resource).
#define GATE_MAX_WAITING 16384

typedef struct conn_s conn_t;
typedef struct addr_s addr_t;

struct addr_s {
    char key[INET6_ADDRSTRLEN];  //  As civetweb writes it
    int open;                    //  In the gate + handed over
    int active;                  //  Handed over, not yet closed, not
                                 //  WebSockets
    int websockets;              //  Handed over, now WebSockets
};

struct conn_s {
    int fd;
    struct sockaddr_storage sa;  //  Peer, returned by accept ()
    socklen_t salen;
    addr_t *addr;         //  Not owned (the table's)
    int64_t deadline;     //  zclock_mono (): head due by then
    bool ready;           //  Head complete, waiting for a worker
    bool watched;         //  In the epoll set
    conn_t *prev, *next;  //  The waiting list, in accept order
                          //  (so also in deadline order)
    conn_t *hnext;        //  The hand-over queue
};

struct gate_t {
    pthread_mutex_t lock;           //  Guards everything below
    int listener;                   //  The real listening socket (ours)
    int epoll_fd;                   //  The listener, every waiting
                                    //  connection, ready_fd and timer_fd
    int civet_fd;                   //  Where civetweb's listener was: now
                                    //  a twin of epoll_fd; civetweb's
    int ready_fd;                   //  eventfd, one count per connection
                                    //  in the hand-over queue (so epoll_fd
                                    //  stays readable while one is)
    int timer_fd;                   //  Ticks while connections wait, so
                                    //  deadlines pass with no other event
    bool ticking;                   //  timer_fd armed
    zhashx_t *addrs;                //  key -> addr_t (owned)
    conn_t *head, *tail;            //  Waiting connections (owned)
    conn_t *hand_head, *hand_tail;  //  Handed over, not yet accepted
    int waiting;                    //  Length of head..tail
    int active;                     //  Handed over and open
    int threads;                    //  civetweb's workers
    int per_addr_active;            //  Workers one address may hold
    int max_open;                   //  Open connections per address, 0 off
    int header_ms;
    long long refused, timed_out;
};

//  The gates accept () answers for (one per server in this process), and
//  the descriptor each answers for: every accept () in the process looks
//  here, so it compares descriptors without touching a gate that may be
//  going (the fd is cleared before its gate is freed).
#define GATE_SLOTS 8
static gate_t *_Atomic s_gates[GATE_SLOTS];
static atomic_int s_gate_fds[GATE_SLOTS] = {-1, -1, -1, -1, -1, -1, -1, -1};

//  ---- Canned answers ---------------------------------------------------------
//  Sent without blocking and without waiting for the client: a socket the
//  gate refuses gets one try at reading why.

static void
s_refuse (int fd, int status, const char *reason, const char *code, const char *message)
{
    char body[256], text[512];
    int blen = snprintf (body, sizeof (body),
                         "{\"error\":{\"code\":\"%s\",\"message\":\"%s\","
                         "\"type\":\"%s\",\"param\":null}}",
                         code, message, error_type (status));
    int n = snprintf (text, sizeof (text),
                      "HTTP/1.1 %d %s\r\nContent-Type: application/json; "
                      "charset=utf-8\r\nContent-Length: %d\r\n%sConnection: "
                      "close\r\n\r\n%s",
                      status, reason, blen,
                      status == 429 || status == 503 ? "Retry-After: 1\r\n" : "", body);
    if (n > 0 && (size_t) n < sizeof (text))
        (void) !send (fd, text, (size_t) n, MSG_NOSIGNAL | MSG_DONTWAIT);
}

//  ---- Addresses and connections ---------------------------------------------------

static void
s_addr_free (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

static addr_t *
s_addr_get (gate_t *self, const char *key)
{
    addr_t *a = (addr_t *) zhashx_lookup (self->addrs, key);
    if (!a && (a = (addr_t *) calloc (1, sizeof (addr_t)))) {
        snprintf (a->key, sizeof (a->key), "%s", key);
        zhashx_insert (self->addrs, key, a);
    }
    return a;
}

//  One connection of a's fewer; the entry goes when none is left, so the
//  table holds only addresses with open connections.
static void
s_addr_put (gate_t *self, addr_t *a)
{
    if (--a->open <= 0 && a->active <= 0 && a->websockets <= 0)
        zhashx_delete (self->addrs, a->key);
}

static void
s_unlink (gate_t *self, conn_t *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        self->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        self->tail = c->prev;
    c->prev = c->next = NULL;
    self->waiting--;
}

//  Closes a connection still in the gate (not handed over).
static void
s_drop (gate_t *self, conn_t *c)
{
    s_unlink (self, c);
    close (c->fd);  //  Also takes it out of the epoll set
    s_addr_put (self, c->addr);
    free (c);
}

static void
s_addr_text (const struct sockaddr_storage *sa, char *out, size_t cap)
{
    out[0] = 0;
    if (sa->ss_family == AF_INET)
        inet_ntop (AF_INET, &((const struct sockaddr_in *) sa)->sin_addr, out,
                   (socklen_t) cap);
    else if (sa->ss_family == AF_INET6)
        inet_ntop (AF_INET6, &((const struct sockaddr_in6 *) sa)->sin6_addr, out,
                   (socklen_t) cap);
}

//  True if c's address may have one more worker now.  An address never
//  takes the reserved workers while it holds one already: those are for
//  addresses that have none.
static bool
s_may_hand_over (gate_t *self, const conn_t *c)
{
    int share = self->per_addr_active;
    if (c->addr->active >= share)
        return false;
    return self->active < share || c->addr->active == 0;
}

static void
s_hand_over (gate_t *self, conn_t *c)
{
    s_unlink (self, c);
    int flags = fcntl (c->fd, F_GETFL);
    if (flags >= 0)
        fcntl (c->fd, F_SETFL, flags & ~O_NONBLOCK);
    c->addr->active++;
    self->active++;
    c->hnext = NULL;
    if (self->hand_tail)
        self->hand_tail->hnext = c;
    else
        self->hand_head = c;
    self->hand_tail = c;
    uint64_t one = 1;
    (void) !write (self->ready_fd, &one, sizeof (one));
}

//  Hands over every ready connection that may go now, oldest first.
static void
s_pump (gate_t *self)
{
    conn_t *c = self->head;
    while (c) {
        conn_t *next = c->next;
        if (c->ready && s_may_hand_over (self, c))
            s_hand_over (self, c);
        c = next;
    }
}

//  Could this byte start an HTTP/1.x request line (a method token)?
static bool
s_method_byte (unsigned char b)
{
    return b >= 'A' && b <= 'Z';
}

//  New bytes on a waiting connection: is its head complete?  Returns -1
//  if c was closed (and freed), 1 if its head is whole (c handed over or
//  queued for a worker), 0 if it waits for more.
static int
s_readable (gate_t *self, conn_t *c)
{
    if (c->ready)
        return 1;
    char buf[GATE_HEAD_MAX];
    ssize_t n = recv (c->fd, buf, sizeof (buf), MSG_PEEK | MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
        s_drop (self, c);
        return -1;
    }
    if (n < 0)
        return 0;
    //  Empty lines before the request line are allowed (RFC 9112 2.2).
    ssize_t lead = 0;
    while (lead < n && (buf[lead] == '\r' || buf[lead] == '\n'))
        lead++;
    if (lead == n && n < (ssize_t) sizeof (buf))
        return 0;
    if (!s_method_byte ((unsigned char) buf[lead])) {
        s_refuse (c->fd, 400, "Bad Request", "invalid_request",
                  "This port speaks plain HTTP/1.1");
        self->refused++;
        s_drop (self, c);
        return -1;
    }
    if (n < (ssize_t) sizeof (buf) && !memmem (buf, (size_t) n, "\r\n\r\n", 4)
        && !memmem (buf, (size_t) n, "\n\n", 2))
        return 0;
    c->ready = true;
    if (c->watched)
        epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
    c->watched = false;
    if (s_may_hand_over (self, c))
        s_hand_over (self, c);
    return 1;
}

static void
s_accept_all (gate_t *self)
{
    while (true) {
        conn_t probe;
        probe.salen = sizeof (probe.sa);
        int fd = accept4 (self->listener, (struct sockaddr *) &probe.sa, &probe.salen,
                          SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE)
                log_warn ("gate",
                          "out of file descriptors: %d connections "
                          "waiting, %d active",
                          self->waiting, self->active);
            return;
        }
        char key[INET6_ADDRSTRLEN];
        s_addr_text (&probe.sa, key, sizeof (key));
        addr_t *a = self->waiting < GATE_MAX_WAITING ? s_addr_get (self, key) : NULL;
        if (!a || (self->max_open > 0 && a->open >= self->max_open)) {
            s_refuse (fd, 429, "Too Many Requests", "rate_limited",
                      "Too many connections from this address");
            close (fd);
            self->refused++;
            continue;
        }
        conn_t *c = (conn_t *) calloc (1, sizeof (conn_t));
        if (!c) {
            close (fd);
            if (a->open == 0 && a->active == 0 && a->websockets == 0)
                zhashx_delete (self->addrs, key);
            continue;
        }
        c->fd = fd;
        c->sa = probe.sa;
        c->salen = probe.salen;
        c->addr = a;
        c->deadline = zclock_mono () + self->header_ms;
        a->open++;
        c->prev = self->tail;
        if (self->tail)
            self->tail->next = c;
        else
            self->head = c;
        self->tail = c;
        self->waiting++;
        //  A head that came with the handshake needs no epoll set.
        if (s_readable (self, c) != 0)
            continue;
        //  Adding a descriptor that is already readable reports it, edge
        //  or not: no byte that came since the peek is missed.
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLET, .data.ptr = c};
        if (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &ev) == 0)
            c->watched = true;
        else
            s_drop (self, c);
    }
}

//  Closes what waited past its deadline: an unfinished head (408), or a
//  finished one whose address never got a worker in time (503).
static void
s_expire (gate_t *self, int64_t now)
{
    while (self->head && self->head->deadline <= now) {
        conn_t *c = self->head;
        if (c->ready)
            s_refuse (c->fd, 503, "Service Unavailable", "service_unavailable",
                      "Too many connections from this address are being "
                      "served");
        else
            s_refuse (c->fd, 408, "Request Timeout", "invalid_request",
                      "The request head did not arrive in time");
        self->timed_out++;
        s_drop (self, c);
    }
}

//  Keeps timer_fd ticking exactly while connections wait.
static void
s_tick (gate_t *self)
{
    bool want = self->waiting > 0;
    if (want == self->ticking)
        return;
    struct itimerspec its;
    memset (&its, 0, sizeof (its));
    if (want)
        its.it_value.tv_nsec = its.it_interval.tv_nsec = 250 * 1000000L;
    if (timerfd_settime (self->timer_fd, 0, &its, NULL) == 0)
        self->ticking = want;
}

//  Everything that happened since the last call: new connections, new
//  bytes, deadlines.  Called with the lock held, on civetweb's master
//  thread, which polls epoll_fd (in its listener's place) and calls
//  accept () when it is readable.
static void
s_process (gate_t *self)
{
    struct epoll_event evs[64];
    int n;
    do {
        n = epoll_wait (self->epoll_fd, evs, 64, 0);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &self->listener)
                s_accept_all (self);
            else if (p == &self->timer_fd) {
                uint64_t ticks;
                (void) !read (self->timer_fd, &ticks, sizeof (ticks));
            }
            else if (p != &self->ready_fd)
                s_readable (self, (conn_t *) p);
        }
    } while (n == 64);
    s_expire (self, zclock_mono ());
    s_tick (self);
}

//  ---- accept () -----------------------------------------------------------------

static gate_t *
s_gate_for (int fd)
{
    for (int i = 0; i < GATE_SLOTS; i++)
        if (atomic_load (&s_gate_fds[i]) == fd)
            return atomic_load (&s_gates[i]);
    return NULL;
}

//  civetweb's master thread calls this when the epoll set in its
//  listener's place is readable: the gate does its work there, on that
//  thread (no thread of its own, no extra hop for a connection whose head
//  came with it), and hands over the oldest ready connection, if any.
//  Every other accept () in the process goes straight to accept4.
int
accept (int fd, __SOCKADDR_ARG addr, socklen_t *__restrict len)
{
    gate_t *self = s_gate_for (fd);
    if (!self)
        return accept4 (fd, addr, len, 0);
    pthread_mutex_lock (&self->lock);
    s_process (self);
    conn_t *c = self->hand_head;
    uint64_t one;
    if (c && read (self->ready_fd, &one, sizeof (one)) == sizeof (one)) {
        self->hand_head = c->hnext;
        if (!self->hand_head)
            self->hand_tail = NULL;
    }
    else
        c = NULL;
    pthread_mutex_unlock (&self->lock);
    if (!c) {
        errno = EAGAIN;
        return -1;
    }
    int out = c->fd;
    if (addr.__sockaddr__ && len) {
        socklen_t n = *len < c->salen ? *len : c->salen;
        memcpy (addr.__sockaddr__, &c->sa, n);
        *len = c->salen;
    }
    free (c);
    return out;
}

//  ---- Life cycle -------------------------------------------------------------------

//  civetweb's listening socket for port, found among our descriptors.
static int
s_find_listener (int port)
{
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return -1;
    int found = -1;
    struct dirent *de;
    while (found < 0 && (de = readdir (dir))) {
        int fd = atoi (de->d_name);
        if (de->d_name[0] < '0' || de->d_name[0] > '9' || fd == dirfd (dir))
            continue;
        int on = 0;
        socklen_t len = sizeof (on);
        struct sockaddr_storage sa;
        socklen_t salen = sizeof (sa);
        if (getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) || !on
            || getsockname (fd, (struct sockaddr *) &sa, &salen))
            continue;
        int p = sa.ss_family == AF_INET ? ntohs (((struct sockaddr_in *) &sa)->sin_port)
                : sa.ss_family == AF_INET6
                    ? ntohs (((struct sockaddr_in6 *) &sa)->sin6_port)
                    : -1;
        if (p == port)
            found = fd;
    }
    closedir (dir);
    return found;
}

gate_t *
gate_attach (const cg_config_t *cfg, int port, char *err, size_t errlen)
{
    gate_t *self = (gate_t *) calloc (1, sizeof (gate_t));
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    self->listener = self->ready_fd = self->epoll_fd = self->timer_fd = -1;
    self->threads = cfg->threads;
    int share = cfg->threads - config_reserved_threads (cfg);
    self->per_addr_active = share > 0 ? share : 1;
    self->max_open = cfg->max_conns_per_addr;
    self->header_ms = cfg->header_timeout_ms;
    self->addrs = zhashx_new ();
    if (self->addrs)
        zhashx_set_destructor (self->addrs, s_addr_free);
    self->civet_fd = s_find_listener (port);
    int slot = -1;
    for (int i = 0; i < GATE_SLOTS && slot < 0; i++) {
        gate_t *none = NULL;
        if (atomic_compare_exchange_strong (&s_gates[i], &none, self))
            slot = i;
    }
    const char *why = !self->addrs         ? "out of memory"
                      : self->civet_fd < 0 ? "civetweb's listening socket not "
                                             "found"
                      : slot < 0           ? "too many servers in one process"
                                           : NULL;
    if (!why) {
        //  The real listener moves to a descriptor of ours; the gate's
        //  epoll set takes its number.  civetweb's master thread may be in
        //  poll () on the old one right now: that poll ends within its
        //  quantum, and an accept () that comes of it finds the gate
        //  (EAGAIN if nothing is ready).
        self->listener = fcntl (self->civet_fd, F_DUPFD_CLOEXEC, 0);
        self->ready_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC | EFD_SEMAPHORE);
        self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
        self->timer_fd = timerfd_create (CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
        if (self->listener < 0 || self->ready_fd < 0 || self->epoll_fd < 0
            || self->timer_fd < 0)
            why = strerror (errno);
    }
    if (!why) {
        int flags = fcntl (self->listener, F_GETFL);
        fcntl (self->listener, F_SETFL, flags | O_NONBLOCK);

        struct epoll_event lev = {.events = EPOLLIN, .data.ptr = &self->listener};
        struct epoll_event rev = {.events = EPOLLIN, .data.ptr = &self->ready_fd};
        struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &self->timer_fd};
        if (epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, self->listener, &lev)
            || epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, self->ready_fd, &rev)
            || epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, self->timer_fd, &tev))
            why = strerror (errno);
    }
    if (!why) {
        //  Published before civetweb can poll the new descriptor.
        atomic_store (&s_gate_fds[slot], self->civet_fd);
        if (dup3 (self->epoll_fd, self->civet_fd, O_CLOEXEC) < 0) {
            why = strerror (errno);
            atomic_store (&s_gate_fds[slot], -1);
        }
    }
    if (why) {
        snprintf (err, errlen, "connection gate: %s", why);
        if (slot >= 0)
            atomic_store (&s_gates[slot], NULL);
        //  civet_fd is civetweb's (or, after dup3, the eventfd it polls).
        self->civet_fd = -1;
        gate_destroy (&self);
        return NULL;
    }
    return self;
}

void
gate_release (gate_t *self, const char *addr)
{
    if (!self || !addr)
        return;
    pthread_mutex_lock (&self->lock);
    addr_t *a = (addr_t *) zhashx_lookup (self->addrs, addr);
    //  A connection civetweb accepted before the gate was attached has no
    //  entry: nothing to give back.
    if (a && a->active > 0) {
        a->active--;
        self->active--;
        s_addr_put (self, a);
        s_pump (self);
    }
    pthread_mutex_unlock (&self->lock);
}

void
gate_websocket (gate_t *self, const char *addr, bool open)
{
    if (!self || !addr)
        return;
    pthread_mutex_lock (&self->lock);
    addr_t *a = (addr_t *) zhashx_lookup (self->addrs, addr);
    if (a && open && a->active > 0) {
        a->active--;
        a->websockets++;
        self->active--;
        s_pump (self);
    }
    else if (a && !open && a->websockets > 0) {
        a->websockets--;
        a->active++;
        self->active++;
    }
    pthread_mutex_unlock (&self->lock);
}

void
gate_stats (gate_t *self, gate_stats_t *out)
{
    memset (out, 0, sizeof (*out));
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    out->waiting = self->waiting;
    out->active = self->active;
    out->refused = self->refused;
    out->timed_out = self->timed_out;
    pthread_mutex_unlock (&self->lock);
}

void
gate_destroy (gate_t **self_p)
{
    gate_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < GATE_SLOTS; i++)
        if (atomic_load (&s_gates[i]) == self) {
            atomic_store (&s_gate_fds[i], -1);
            atomic_store (&s_gates[i], NULL);
        }
    while (self->head)
        s_drop (self, self->head);
    while (self->hand_head) {
        conn_t *c = self->hand_head;
        self->hand_head = c->hnext;
        close (c->fd);
        free (c);
    }
    int fds[] = {self->listener, self->ready_fd, self->epoll_fd, self->timer_fd};
    for (size_t i = 0; i < sizeof (fds) / sizeof (fds[0]); i++)
        if (fds[i] >= 0)
            close (fds[i]);
    zhashx_destroy (&self->addrs);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}
