/*  =========================================================================
    cg_standin - stand-in for the OpenAI and Anthropic chat APIs

    Answers POST /v1/chat/completions (OpenAI Chat Completions) and
    POST /v1/messages (Anthropic Messages) in the providers' own wire
    formats, streaming (SSE over chunked transfer encoding) or not, so the
    gateway and its HTTP client cannot tell it from the real services.
    Replies are deterministic:

        "Hello from the <openai|anthropic> stand-in. You said: <last user text>"

    split into one delta per word, or "Tool said: <result>" when the last
    message is a tool result.  Token counts are word counts.

    The requested model name picks a behaviour (the part after the last
    '/', so "openai/stall" works too):
        error-NNN   that HTTP status with the provider's error body
                    (error-429 also sends Retry-After: 7)
        garbage     200 with a body that is not JSON / not valid SSE
        stall       headers (and the first delta), then silence until the
                    client leaves (counted as aborted) or 60 s pass
        slow        50 ms between deltas, 500 ms before a non-streamed reply
        split       body written 1-3 bytes at a time; reply has "héllo→"
        long        200 deltas, no delay
        tool        a call to the first tool in "tools" (arguments: the last
                    user message when it is a JSON object, else a fixed url)
        anything else: the normal reply

    Test hooks: GET /_last returns the last POST (path, parsed body and the
    headers a gateway sets), GET /_stats the request counters, POST /_reset
    zeroes them.

    usage: cg_standin --port N [--threads N] [--openai-key K]
                      [--anthropic-key K]
    Prints "listening on 127.0.0.1:PORT" and serves until SIGINT or SIGTERM.
    =========================================================================
*/
#include "standin.h"
#include "common.h"

//  ---- API routes -------------------------------------------------------------

static int
s_api_serve (req_t *req, const char *path)
{
    char *body = NULL;
    size_t len = 0;
    int rc = req_read_body (req->conn, &body, &len);
    if (rc == -2) {
        req_record (req->self, req->conn, path, NULL, 0);
        req->keep_alive = false;
        if (req->provider == OPENAI)
            return openai_error (req, 413, "Request body too large (limit 10 MB)",
                                 "invalid_request_error", NULL, NULL);
        return anthropic_error (req, 413, "request_too_large",
                                "Request exceeds the maximum allowed "
                                "number of bytes.",
                                NULL);
    }
    if (rc != 0) {
        req->failed = true;
        return 400;
    }
    req->root = cJSON_ParseWithLength (body, len);
    req_record (req->self, req->conn, path, &body, len);
    if (req->provider == OPENAI)
        return openai_serve (req);
    return anthropic_serve (req);
}

static int
s_api (self_t *self, struct mg_connection *conn, const char *path, int provider)
{
    req_t req;
    req_init (&req, self, conn, provider);
    req.id = atomic_fetch_add (&self->next_id, 1) + 1;
    atomic_fetch_add (&self->requests, 1);
    atomic_fetch_add (&self->active, 1);
    int status = s_api_serve (&req, path);
    atomic_fetch_add (req.failed ? &self->aborted : &self->completed, 1);
    atomic_fetch_sub (&self->active, 1);
    req_fini (&req);
    return status;
}

//  ---- Test hooks -------------------------------------------------------------

static int
s_last (self_t *self, req_t *req)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON *headers = cJSON_CreateObject ();
    pthread_mutex_lock (&self->last_lock);
    if (self->last_seen)
        cJSON_AddStringToObject (root, "path", self->last_path);
    else
        cJSON_AddNullToObject (root, "path");
    cJSON *body = NULL;
    if (self->last_body) {
        body = cJSON_ParseWithLength (self->last_body, self->last_len);
        if (!body)
            body = cJSON_CreateString (self->last_body);
    }
    cJSON_AddItemToObject (root, "body", body ? body : cJSON_CreateNull ());
    for (int i = 0; i < KEPT_HEADERS; i++)
        if (self->last_seen && self->last_headers[i].present)
            cJSON_AddStringToObject (headers, req_kept_headers[i],
                                     self->last_headers[i].value);
        else
            cJSON_AddNullToObject (headers, req_kept_headers[i]);
    pthread_mutex_unlock (&self->last_lock);
    cJSON_AddItemToObject (root, "headers", headers);
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    buf_puts (&req->out, text ? text : "{}");
    cJSON_free (text);
    return wire_respond_json (req, 200, NULL);
}

static int
s_stats (self_t *self, req_t *req)
{
    buf_printf (&req->out,
                "{\"requests\":%ld,\"active\":%ld,\"completed\":%ld,"
                "\"aborted\":%ld}",
                atomic_load (&self->requests), atomic_load (&self->active),
                atomic_load (&self->completed), atomic_load (&self->aborted));
    return wire_respond_json (req, 200, NULL);
}

//  Zeroes the counters; "active" is a gauge of what is running and stays.
static int
s_reset (self_t *self, req_t *req)
{
    atomic_store (&self->requests, 0);
    atomic_store (&self->completed, 0);
    atomic_store (&self->aborted, 0);
    return s_stats (self, req);
}

static int
s_handler (struct mg_connection *conn, void *cbdata)
{
    self_t *self = (self_t *) cbdata;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *path = ri->local_uri ? ri->local_uri : "/";
    bool get = strcmp (ri->request_method, "GET") == 0;
    bool post = strcmp (ri->request_method, "POST") == 0;
    int provider = strcmp (path, "/v1/chat/completions") == 0 ? OPENAI
                   : strcmp (path, "/v1/messages") == 0       ? ANTHROPIC
                                                              : -1;
    if (provider >= 0 && post)
        return s_api (self, conn, path, provider);

    req_t *req = malloc (sizeof (req_t));
    if (!req) {
        mg_send_http_error (conn, 500, "Out of memory");
        return 500;
    }
    req_init (req, self, conn, provider == ANTHROPIC ? ANTHROPIC : OPENAI);
    int status;
    if (provider >= 0)
        status = openai_error (req, 405, "Method not allowed", "invalid_request_error",
                               NULL, "Allow: POST\r\n");
    else if (get && strcmp (path, "/_last") == 0)
        status = s_last (self, req);
    else if (get && strcmp (path, "/_stats") == 0)
        status = s_stats (self, req);
    else if (post && strcmp (path, "/_reset") == 0)
        status = s_reset (self, req);
    else {
        if (post) {
            char *body = NULL;
            size_t len = 0;
            if (req_read_body (conn, &body, &len) == 0)
                req_record (self, conn, path, &body, len);
            else
                req_record (self, conn, path, NULL, 0);
            free (body);
        }
        char message[320];
        snprintf (message, sizeof (message), "Invalid URL (%s %.256s)",
                  ri->request_method, path);
        status = openai_error (req, 404, message, "invalid_request_error", NULL, NULL);
    }
    req_fini (req);
    free (req);
    return status;
}

//  ---- Main -------------------------------------------------------------------

static int
s_usage (void)
{
    fprintf (stderr, "usage: cg_standin --port N [--threads N] "
                     "[--openai-key K] [--anthropic-key K]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    int port = -1, threads = 64;
    const char *openai_key = NULL, *anthropic_key = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return s_usage ();
        if (strcmp (argv[i], "--port") == 0)
            port = atoi (argv[++i]);
        else if (strcmp (argv[i], "--threads") == 0)
            threads = atoi (argv[++i]);
        else if (strcmp (argv[i], "--openai-key") == 0)
            openai_key = argv[++i];
        else if (strcmp (argv[i], "--anthropic-key") == 0)
            anthropic_key = argv[++i];
        else
            return s_usage ();
    }
    if (port < 0 || port > 65535 || threads < 1 || threads > 4096) {
        fprintf (stderr, "cg_standin: need --port 0-65535 and 1-4096 "
                         "threads\n");
        return s_usage ();
    }

    sigset_t signals = standin_signals ();

    self_t *self = calloc (1, sizeof (self_t));
    if (!self)
        return 1;
    self->openai_key = openai_key;
    self->anthropic_key = anthropic_key;
    pthread_mutex_init (&self->last_lock, NULL);

    //  tcp_nodelay matters: without it Nagle holds back each SSE event
    //  (and the body after the head) for up to 40 ms.
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
    self->port = port;
    self->ctx = standin_listen ("cg_standin", options, self, s_handler, &self->port);
    if (!self->ctx) {
        pthread_mutex_destroy (&self->last_lock);
        free (self);
        return 1;
    }
    printf ("listening on 127.0.0.1:%d\n", self->port);
    fflush (stdout);

    int sig = 0;
    sigwait (&signals, &sig);
    atomic_store (&self->stopping, true);
    mg_stop (self->ctx);
    mg_exit_library ();
    pthread_mutex_destroy (&self->last_lock);
    free (self->last_body);
    free (self);
    return 0;
}
