/*  =========================================================================
    direct_status - GET /status answered by civetweb alone, no broker

    The baseline for bench/status_bench.sh.  It starts civetweb with the
    options gateway/server.c uses, checks the Bearer token in constant time,
    builds the body clawgate's /status returns with cJSON on every request
    and sends it with the same headers.  The only work it leaves out is the
    round trip through the broker and the system actor.

    usage: direct_status [--port N] [--threads N] [--token T]
    (the token may also come from CLAWGATE_TOKEN).  Prints
    "listening on 127.0.0.1:PORT" and serves until SIGINT or SIGTERM.
    =========================================================================
*/
#include "common.h"

#include <civetweb.h>
#include <cjson/cJSON.h>

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#ifndef CLAWGATE_VERSION
#define CLAWGATE_VERSION "0.0.0"
#endif

#define MAX_SECRET 512  //  Longest credential we look at

static const char *s_channels[] = {"whatsapp", "telegram", "discord",
                                   "slack",    "webhook",  NULL};

typedef struct {
    struct mg_context *ctx;  //  civetweb
    const char *token;       //  Bearer token expected (not owned)
    int port;                //  Bound port
    int64_t started;         //  Monotonic ms at start
    char worker_name[128];   //  "<host>:<pid>", as the system actor
    atomic_int inflight;     //  Requests being handled
} self_t;

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  ---- Responses --------------------------------------------------------------

//  Sends body with the headers of gateway/http.c http_send_raw.
static int
s_send (struct mg_connection *conn, int status, const char *body,
        const char *extra_headers)
{
    size_t len = strlen (body);
    char clen[32];
    snprintf (clen, sizeof (clen), "%zu", len);
    mg_response_header_start (conn, status);
    mg_response_header_add (conn, "Content-Type", "application/json; charset=utf-8", -1);
    mg_response_header_add (conn, "Content-Length", clen, -1);
    mg_response_header_add (conn, "Cache-Control", "no-store", -1);
    mg_response_header_add (conn, "Access-Control-Allow-Origin", "*", -1);
    if (extra_headers)
        mg_response_header_add_lines (conn, extra_headers);
    mg_response_header_send (conn);
    if (len)
        mg_write (conn, body, len);
    return status;
}

//  Sends {"error":{code,message,type,param}} as clawgate does.
static int
s_send_error (struct mg_connection *conn, int status, const char *code,
              const char *message, const char *extra_headers)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON *err = cJSON_AddObjectToObject (root, "error");
    cJSON_AddStringToObject (err, "code", code);
    cJSON_AddStringToObject (err, "message", message);
    cJSON_AddStringToObject (err, "type",
                             status >= 500 ? "server_error" : "client_error");
    cJSON_AddNullToObject (err, "param");
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    int rc = s_send (conn, status, text ? text : "{}", extra_headers);
    cJSON_free (text);
    return rc;
}

//  ---- Auth -------------------------------------------------------------------

//  Compares a candidate with the secret touching every byte of the
//  candidate, as gateway/auth.c auth_equal does.
static bool
s_token_equal (const char *a, size_t alen, const char *secret)
{
    size_t slen = strlen (secret);
    volatile unsigned char diff = (unsigned char) (alen != slen);
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char) (a[i] ^ (slen ? secret[i % slen] : 0));
    return diff == 0;
}

//  True if the Authorization header carries our Bearer token.
static bool
s_authorized (const self_t *self, struct mg_connection *conn)
{
    const char *h = mg_get_header (conn, "Authorization");
    if (!h)
        return false;
    while (*h == ' ')
        h++;
    if (strncasecmp (h, "Bearer ", 7) != 0)
        return false;
    const char *tok = h + 7;
    while (*tok == ' ')
        tok++;
    size_t len = strlen (tok);
    while (len && tok[len - 1] == ' ')
        len--;
    if (len == 0 || len > MAX_SECRET)
        return false;
    return s_token_equal (tok, len, self->token);
}

//  ---- /status ----------------------------------------------------------------

static int
s_status (self_t *self, struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *path = ri->local_uri ? ri->local_uri : "/";
    if (strcmp (path, "/status") != 0)
        return s_send_error (conn, 404, "not_found", "No route", NULL);
    if (strcmp (ri->request_method, "GET") != 0)
        return s_send_error (conn, 405, "invalid_request", "Method not allowed",
                             "Allow: OPTIONS, GET\r\n");
    if (!s_authorized (self, conn))
        return s_send_error (conn, 401, "unauthorized", "Invalid credentials",
                             "WWW-Authenticate: Bearer realm=\"clawgate\"\r\n");

    //  The system actor's part (actors/system.c s_status) ...
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "status", "ok");
    cJSON_AddStringToObject (root, "version", CLAWGATE_VERSION);
    cJSON_AddNumberToObject (root, "uptime",
                             (double) ((s_now_ms () - self->started) / 1000));
    cJSON *channels = cJSON_AddObjectToObject (root, "channels");
    for (int i = 0; s_channels[i]; i++)
        cJSON_AddStringToObject (channels, s_channels[i], "not_configured");
    cJSON_AddStringToObject (root, "worker", self->worker_name);
    //  ... and the front's (gateway/route_system.c s_status).
    cJSON *gw = cJSON_AddObjectToObject (root, "gateway");
    cJSON_AddNumberToObject (gw, "port", self->port);
    cJSON_AddStringToObject (gw, "bind", "127.0.0.1");
    cJSON_AddStringToObject (gw, "auth", "token");
    cJSON_AddNumberToObject (gw, "inflight", atomic_load (&self->inflight));
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    int status = text ? s_send (conn, 200, text, NULL)
                      : s_send_error (conn, 500, "internal_error", "Out of memory", NULL);
    cJSON_free (text);
    return status;
}

static int
s_handler (struct mg_connection *conn, void *cbdata)
{
    self_t *self = (self_t *) cbdata;
    atomic_fetch_add (&self->inflight, 1);
    int status = s_status (self, conn);
    atomic_fetch_sub (&self->inflight, 1);
    return status;
}

//  ---- Main -------------------------------------------------------------------

static int
s_usage (void)
{
    fprintf (stderr, "usage: direct_status [--port N] [--threads N] [--token T]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    int port = 0, threads = 64;
    const char *token = getenv ("CLAWGATE_TOKEN");
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return s_usage ();
        if (strcmp (argv[i], "--port") == 0)
            port = atoi (argv[++i]);
        else if (strcmp (argv[i], "--threads") == 0)
            threads = atoi (argv[++i]);
        else if (strcmp (argv[i], "--token") == 0)
            token = argv[++i];
        else
            return s_usage ();
    }
    if (!token || strlen (token) < 16 || port < 0 || port > 65535 || threads < 1
        || threads > 4096) {
        fprintf (stderr, "direct_status: need a token of 16+ characters, "
                         "a port 0-65535 and 1-4096 threads\n");
        return s_usage ();
    }

    sigset_t signals = standin_signals ();

    self_t self;
    memset (&self, 0, sizeof (self));
    self.token = token;
    self.started = s_now_ms ();
    char host[64] = "localhost";
    gethostname (host, sizeof (host) - 1);
    snprintf (self.worker_name, sizeof (self.worker_name), "%s:%d", host,
              (int) getpid ());

    //  The options of gateway/server.c server_start: keep the two in step,
    //  or the benchmark compares configurations instead of paths.
    char ports[32], nthreads[16];
    snprintf (ports, sizeof (ports), "127.0.0.1:%d", port);
    snprintf (nthreads, sizeof (nthreads), "%d", threads);
    const char *options[] = {"listening_ports",
                             ports,
                             "num_threads",
                             nthreads,
                             "enable_keep_alive",
                             "yes",
                             "keep_alive_timeout_ms",
                             "30000",
                             "request_timeout_ms",
                             "30000",
                             "listen_backlog",
                             "1024",
                             "connection_queue",
                             "1024",
                             "decode_url",
                             "yes",
                             "tcp_nodelay",
                             "1",
                             NULL};
    self.port = port;
    self.ctx = standin_listen ("direct_status", options, &self, s_handler, &self.port);
    if (!self.ctx)
        return 1;
    printf ("listening on 127.0.0.1:%d\n", self.port);
    fflush (stdout);

    int sig = 0;
    sigwait (&signals, &sig);
    mg_stop (self.ctx);
    mg_exit_library ();
    return 0;
}
