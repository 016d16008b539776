/*  =========================================================================
    server - civetweb set-up and the dispatch every request goes through:
    route -> preflight -> auth -> limits -> scope -> handler -> log line
    =========================================================================
*/
#include "server.h"

#include "gate.h"
#include "log.h"
#include "ratelimit_front.h"
#include "ws.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

struct server_t {
    struct mg_context *ctx;     //  civetweb
    const cg_config_t *config;  //  Read only
    const route_t *routes;      //  Route table (not owned)
    int port;                   //  Bound port
    atomic_int inflight;        //  Requests being handled
    atomic_bool draining;       //  Shutdown begun: no new requests
    atomic_bool stopping;       //  Drain window over: end what is left
    ws_hub_t *ws;               //  WebSocket side
    ratelimit_front_t *limits;  //  Leases, auth blocks
    gate_t *gate;               //  Connections before civetweb's threads
};

static int64_t
s_now_us (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

//  ---- Threads ----------------------------------------------------------------

//  What each civetweb worker thread owns.  Its broker socket is made on
//  the thread's first request, not at start: most of a large thread pool
//  sits idle, and an idle thread then holds no socket.
typedef struct {
    server_t *server;  //  Not owned
    bus_front_t *bus;  //  This thread's socket, or NULL
} thread_t;

static void *
s_init_thread (const struct mg_context *ctx, int thread_type)
{
    if (thread_type != 1)
        return NULL;  //  Only request workers talk to the broker
    thread_t *t = (thread_t *) calloc (1, sizeof (thread_t));
    if (t)
        t->server = (server_t *) mg_get_user_data (ctx);
    return t;
}

static void
s_exit_thread (const struct mg_context *ctx, int thread_type, void *ptr)
{
    thread_t *t = (thread_t *) ptr;
    if (t) {
        bus_front_destroy (&t->bus);
        free (t);
    }
}

//  civetweb closes a connection (every one the gate handed it, WebSocket
//  or not): its address gets its worker back.
static void
s_conn_close (const struct mg_connection *conn)
{
    server_t *self = (server_t *) mg_get_user_data (mg_get_context (conn));
    const struct mg_request_info *ri = mg_get_request_info (conn);
    if (self && ri)
        gate_release (self->gate, ri->remote_addr);
}

//  This thread's broker socket, made on first use.  NULL if it cannot be.
bus_front_t *
server_thread_bus (struct mg_connection *conn)
{
    thread_t *t = (thread_t *) mg_get_thread_pointer (conn);
    if (!t)
        return NULL;
    if (!t->bus) {
        t->bus = bus_front_new (t->server->config->requests_ep);
        if (!t->bus)
            log_error ("http", "worker thread could not connect to the broker");
    }
    return t->bus;
}

//  ---- Dispatch ---------------------------------------------------------------

//  True if path matches pattern, where each "*" stands for one non-empty
//  path segment (no '/').
static bool
s_path_matches (const char *pattern, const char *path)
{
    while (*pattern) {
        if (*pattern == '*') {
            size_t n = strcspn (path, "/");
            if (n == 0)
                return false;
            path += n;
            pattern++;
        }
        else if (*pattern++ != *path++)
            return false;
    }
    return *path == 0;
}

static const route_t *
s_route_find (const route_t *routes, const char *path)
{
    for (const route_t *rt = routes; rt->path; rt++) {
        if (rt->prefix ? strncmp (path, rt->path, strlen (rt->path)) == 0
                       : s_path_matches (rt->path, path))
            return rt;
    }
    return NULL;
}

static void
s_methods (const route_t *rt, char *buf, size_t cap)
{
    snprintf (buf, cap, "OPTIONS%s%s%s", rt->get ? ", GET" : "", rt->post ? ", POST" : "",
              rt->del ? ", DELETE" : "");
}

//  Copies path for the log with anything unprintable replaced.
static void
s_log_path (char *dest, size_t cap, const char *path)
{
    size_t i = 0;
    for (; path && path[i] && i + 1 < cap; i++) {
        unsigned char c = (unsigned char) path[i];
        dest[i] = c < 0x20 || c == 0x7f || c == '"' ? '?' : (char) c;
    }
    dest[i] = 0;
}

//  429 rate_limited for a refusal by the limits; t's headers (Retry-After
//  among them) go with it.
static int
s_send_limited (http_req_t *r, rl_ticket_t *t)
{
    r->limit_headers = t->headers;
    return http_send_error (r, 429, "rate_limited", ratelimit_front_message (t), NULL);
}

static int
s_dispatch_inner (server_t *self, http_req_t *r, rl_ticket_t *ticket)
{
    const struct mg_request_info *ri = r->ri;
    const char *method = ri->request_method;
    const char *path = ri->local_uri ? ri->local_uri : "/";
    const route_t *rt = s_route_find (self->routes, path);
    if (!rt) {
        char msg[160];
        snprintf (msg, sizeof (msg), "No route for %.16s %.100s", method, path);
        return http_send_error (r, 404, "not_found", msg, NULL);
    }
    //  An oversized body is refused from its declared length alone, before
    //  anything else is read, whatever the route and credential.
    if (ri->content_length > self->config->max_body)
        return http_send_too_large (r);
    char methods[64], allow[96];
    s_methods (rt, methods, sizeof (methods));
    snprintf (allow, sizeof (allow), "Allow: %s\r\n", methods);
    if (strcmp (method, "OPTIONS") == 0) {
        //  CORS preflight: never authenticated (docs/authentication.md).
        char headers[512];
        snprintf (headers, sizeof (headers),
                  "%sAccess-Control-Allow-Methods: %s\r\n"
                  "Access-Control-Allow-Headers: Authorization, Content-Type, "
                  "X-OpenClaw-Password, X-OpenClaw-Session-Key\r\n"
                  "Access-Control-Max-Age: 600\r\n",
                  allow, methods);
        return http_send_raw (r, 204, "", 0, headers);
    }
    route_fn *fn = NULL;
    if (strcmp (method, "GET") == 0)
        fn = rt->get;
    else if (strcmp (method, "POST") == 0)
        fn = rt->post;
    else if (strcmp (method, "DELETE") == 0)
        fn = rt->del;
    if (!fn) {
        char msg[160];
        snprintf (msg, sizeof (msg), "Method %.16s is not allowed on %.100s", method,
                  path);
        return http_send_error_h (r, 405, "invalid_request", msg, NULL, allow);
    }
    if (!rt->public_) {
        //  An address blocked after failed authentications is refused
        //  before its credential is even looked at.
        if (ratelimit_front_check_address (self->limits, ri->remote_addr, ticket))
            return s_send_limited (r, ticket);
        auth_input_t in = {mg_get_header (r->conn, "Authorization"),
                           mg_get_header (r->conn, "X-OpenClaw-Password"),
                           ri->query_string};
        auth_rc_t rc = auth_check (self->config, &in, &r->auth);
        if (rc != AUTH_OK)
            snprintf (r->auth.principal, sizeof (r->auth.principal), "-");
        //  A wrong credential counts against the address (docs/authentication.md);
        //  a missing one is not a guess.
        if (rc == AUTH_INVALID
            && ratelimit_front_auth_failed (self->limits, r->bus, ri->remote_addr,
                                            ticket))
            return s_send_limited (r, ticket);
        if (rc != AUTH_OK)
            return http_send_error_h (
                r, 401, "unauthorized",
                rc == AUTH_MISSING
                    ? "Authentication required: send Authorization: Bearer "
                      "<token>"
                    : "Invalid credentials",
                NULL, "WWW-Authenticate: Bearer realm=\"clawgate\"\r\n");
        //  Rate and concurrency per credential.  The slot is held until
        //  the handler returns, so a streaming run holds it to its end.
        if (ratelimit_front_acquire (self->limits, r->bus, r->auth.principal, ticket))
            return s_send_limited (r, ticket);
        r->limit_headers = ticket->headers[0] ? ticket->headers : NULL;
        if (rt->scope && !(r->auth.scopes & rt->scope))
            return http_send_error (r, 403, "forbidden",
                                    "This credential lacks the scope this "
                                    "endpoint needs",
                                    NULL);
    }
    if (!rt->public_ && atomic_load (&self->draining)) {
        http_close (r);
        return http_send_error (r, 503, "service_unavailable",
                                "The gateway is shutting down", NULL);
    }
    if (!r->bus && !rt->local)
        return http_send_error (r, 503, "service_unavailable",
                                "This front has no broker connection", NULL);
    if (fn == rt->post) {
        int rc = http_read_body (r);
        if (rc)
            return rc;
    }
    return fn (r);
}

static int
s_dispatch (struct mg_connection *conn, void *cbdata)
{
    server_t *self = (server_t *) cbdata;
    int64_t started = s_now_us ();
    atomic_fetch_add (&self->inflight, 1);
    http_req_t r = {0};
    r.conn = conn;
    r.ri = mg_get_request_info (conn);
    r.config = self->config;
    r.server = self;
    r.bus = server_thread_bus (conn);
    snprintf (r.auth.principal, sizeof (r.auth.principal), "-");
    rl_ticket_t ticket;
    memset (&ticket, 0, sizeof (ticket));
    int status = s_dispatch_inner (self, &r, &ticket);
    ratelimit_front_release (self->limits, &ticket);
    free (r.body);
    free (r.stream_head);
    atomic_fetch_sub (&self->inflight, 1);
    if (log_get_level () <= CG_LOG_INFO) {
        char path[256];
        s_log_path (path, sizeof (path), r.ri->local_uri);
        log_info ("http", "%s %s %d %lldus %s", r.ri->request_method, path, status,
                  (long long) (s_now_us () - started), r.auth.principal);
    }
    return status;
}

//  civetweb's own errors (malformed request line, headers too large, ...)
//  in our error format rather than its HTML page.
static int
s_http_error (struct mg_connection *conn, int status, const char *msg)
{
    http_req_t r = {0};
    r.conn = conn;
    r.ri = mg_get_request_info (conn);
    static const struct mg_request_info empty = {.request_method = "GET"};
    if (!r.ri || !r.ri->request_method)
        r.ri = &empty;
    const char *code = status == 404   ? "not_found"
                       : status == 413 ? "invalid_request"
                       : status >= 500 ? "internal_error"
                                       : "invalid_request";
    http_send_error (&r, status, code, msg && *msg ? msg : "Bad request", NULL);
    return 0;
}

//  ---- Life cycle -------------------------------------------------------------

//  Authentication is the routes' own (auth.c, docs/authentication.md).  Without
//  an auth handler civetweb falls back to looking for a .htpasswd file,
//  a stat () of "/.htpasswd" on every request, since no document root is
//  served: this handler lets every request through to the routes instead.
//  civetweb's own password files (global_auth_file, .htpasswd) are
//  therefore never consulted; clawgate sets neither.
static int
s_auth_pass (struct mg_connection *conn, void *cbdata)
{
    (void) conn;
    (void) cbdata;
    return 1;
}

server_t *
server_start (const cg_config_t *cfg, const route_t *routes, char *err, size_t errlen)
{
    server_t *self = (server_t *) calloc (1, sizeof (server_t));
    if (!self)
        return NULL;
    self->config = cfg;
    self->routes = routes;
    self->limits = ratelimit_front_new (cfg);
    if (!self->limits) {
        snprintf (err, errlen, "cannot set up the rate limits");
        free (self);
        return NULL;
    }
    char ports[128], threads[16], header_ms[16], idle_ms[16];
    const char *bind = strcmp (cfg->bind, "localhost") == 0 ? "127.0.0.1" : cfg->bind;
    snprintf (ports, sizeof (ports), "%s:%d", bind, cfg->port);
    snprintf (threads, sizeof (threads), "%d", cfg->threads);
    snprintf (header_ms, sizeof (header_ms), "%d", cfg->header_timeout_ms);
    snprintf (idle_ms, sizeof (idle_ms), "%d", cfg->keep_alive_timeout_ms);
    //  The gate bounds a connection's first head; civetweb's own timeouts
    //  bound the rest: the heads of later requests on a kept-alive
    //  connection, each read of a body, and the idle time between requests.
    //  WebSocket clients stay as long as they like (the hub's heartbeats
    //  and civetweb's 30 s read quantum find the dead ones).
    const char *options[] = {"listening_ports", ports, "num_threads", threads,
                             "enable_keep_alive", "yes", "keep_alive_timeout_ms", idle_ms,
                             "request_timeout_ms", header_ms, "websocket_timeout_ms",
                             "30000", "listen_backlog", "1024", "connection_queue",
                             "1024", "decode_url", "yes",
                             //  civetweb writes headers and body apart; with
                             //  Nagle on, the body would wait ~40 ms for the
                             //  client's delayed ACK on keep-alive connections.
                             "tcp_nodelay", "1", NULL};
    struct mg_callbacks callbacks;
    memset (&callbacks, 0, sizeof (callbacks));
    callbacks.init_thread = s_init_thread;
    callbacks.exit_thread = s_exit_thread;
    callbacks.http_error = s_http_error;
    callbacks.connection_close = s_conn_close;
    struct mg_init_data init = {&callbacks, self, options};
    char cw_err[256] = "";
    unsigned code = 0;
    struct mg_error_data error = {&code, cw_err, sizeof (cw_err)};
    self->ctx = mg_start2 (&init, &error);
    if (!self->ctx) {
        snprintf (err, errlen, "cannot listen on %s: %s", ports,
                  cw_err[0] ? cw_err : "civetweb failed to start");
        ratelimit_front_destroy (&self->limits);
        free (self);
        return NULL;
    }
    struct mg_server_port sp[4];
    int n = mg_get_server_ports (self->ctx, 4, sp);
    self->port = n > 0 ? sp[0].port : cfg->port;
    self->gate = gate_attach (cfg, self->port, err, errlen);
    if (!self->gate) {
        mg_stop (self->ctx);
        ratelimit_front_destroy (&self->limits);
        free (self);
        return NULL;
    }
    mg_set_auth_handler (self->ctx, "/", s_auth_pass, NULL);
    mg_set_request_handler (self->ctx, "/", s_dispatch, self);
    self->ws = ws_hub_new (cfg, self);
    if (!self->ws) {
        snprintf (err, errlen, "cannot start the WebSocket hub");
        mg_stop (self->ctx);
        gate_destroy (&self->gate);
        ratelimit_front_destroy (&self->limits);
        free (self);
        return NULL;
    }
    ws_register (self->ws, self->ctx, "/");
    return self;
}

int
server_port (const server_t *self)
{
    return self->port;
}

int
server_inflight (const server_t *self)
{
    return atomic_load (&self->inflight);
}

bool
server_draining (const server_t *self)
{
    return atomic_load (&self->draining);
}

gate_t *
server_gate (server_t *self)
{
    return self->gate;
}

ratelimit_front_t *
server_limits (server_t *self)
{
    return self->limits;
}

bool
server_stopping (const server_t *self)
{
    return atomic_load (&self->stopping);
}

typedef struct {
    char host[64];
    int port;
} wake_t;

//  civetweb's master thread sees mg_stop only when its poll of the
//  listening socket ends: up to 2 s when nobody connects, on every stop.
//  One connection, made just after mg_stop begins, ends that wait.
static void *
s_wake_master (void *arg)
{
    wake_t *w = (wake_t *) arg;
    usleep (20000);
    struct sockaddr_storage addr;
    memset (&addr, 0, sizeof (addr));
    struct sockaddr_in *v4 = (struct sockaddr_in *) &addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *) &addr;
    socklen_t len = 0;
    if (inet_pton (AF_INET, w->host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons ((uint16_t) w->port);
        if (v4->sin_addr.s_addr == htonl (INADDR_ANY))
            v4->sin_addr.s_addr = htonl (INADDR_LOOPBACK);
        len = sizeof (*v4);
    }
    else if (inet_pton (AF_INET6, w->host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons ((uint16_t) w->port);
        if (IN6_IS_ADDR_UNSPECIFIED (&v6->sin6_addr))
            v6->sin6_addr = in6addr_loopback;
        len = sizeof (*v6);
    }
    int fd = len ? socket (addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0) : -1;
    if (fd >= 0) {
        if (connect (fd, (struct sockaddr *) &addr, len) == 0)
            usleep (1000);
        close (fd);
    }
    free (w);
    return NULL;
}

void
server_stop (server_t **self_p)
{
    server_t *self = *self_p;
    if (!self)
        return;
    atomic_store (&self->draining, true);
    //  Drain: new requests get 503 while those in flight run to their end,
    //  for up to the drain budget.  (mg_stop at once would fail every
    //  stream's next write, which reads as a client that left.)
    int64_t until = s_now_us () + (int64_t) self->config->drain_timeout_ms * 1000;
    while (atomic_load (&self->inflight) > 0 && s_now_us () < until)
        usleep (20000);
    if (atomic_load (&self->inflight) > 0)
        log_warn ("http",
                  "drain budget spent with %d request(s) in flight: "
                  "interrupting them",
                  atomic_load (&self->inflight));
    atomic_store (&self->stopping, true);
    wake_t *wake = (wake_t *) calloc (1, sizeof (wake_t));
    pthread_t waker;
    bool waking = false;
    if (wake) {
        const char *bind = self->config->bind;
        if (!strcmp (bind, "localhost"))
            bind = "127.0.0.1";
        if (bind[0] == '[') {
            snprintf (wake->host, sizeof (wake->host), "%s", bind + 1);
            wake->host[strcspn (wake->host, "]")] = 0;
        }
        else
            snprintf (wake->host, sizeof (wake->host), "%s", bind);
        wake->port = self->port;
        waking = pthread_create (&waker, NULL, s_wake_master, wake) == 0;
        if (!waking)
            free (wake);
    }
    //  mg_stop closes the listener and joins every thread, whose
    //  exit_thread closes that thread's broker socket; handlers still
    //  waiting on runs see `stopping` within a poll slice and return.
    mg_stop (self->ctx);
    if (waking)
        pthread_join (waker, NULL);
    //  After mg_stop: civetweb accepts no more, and its close handlers
    //  (WebSocket clients' among them) use the hub and the gate.
    gate_destroy (&self->gate);
    ws_hub_destroy (&self->ws);
    //  No request is in flight now: the limits give back what they hold.
    ratelimit_front_destroy (&self->limits);
    free (self);
    *self_p = NULL;
}
