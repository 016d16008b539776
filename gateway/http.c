/*  =========================================================================
    http - responses, bodies and errors for the HTTP front
    =========================================================================
*/
#include "http.h"

#include "error.h"
#include "json_in.h"
#include "log.h"
#include "mpjson.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

void
http_close (http_req_t *r)
{
    r->close = true;
    mg_disable_keep_alive (r->conn);
}

//  RFC 9110 wants a Date on responses; formatting it once a second per
//  thread keeps it off the hot path.
static const char *
s_date (void)
{
    static __thread time_t last;
    static __thread char text[40];
    time_t now = time (NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r (&now, &tm);
        strftime (text, sizeof (text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return text;
}

static bool
s_keep_alive (http_req_t *r)
{
    if (r->close)
        return false;
    const char *conn = mg_get_header (r->conn, "Connection");
    if (conn && !strcasecmp (conn, "close"))
        return false;
    const char *v = r->ri->http_version;
    if (v && !strcmp (v, "1.0"))
        return conn && !strcasecmp (conn, "keep-alive");
    return true;
}

//  Formats the status line and headers into head; returns the length or -1.
static int
s_format_head (http_req_t *r, char *head, size_t cap, int status, const char *type,
               const char *framing, const char *extra)
{
    int n = snprintf (head, cap,
                      "HTTP/1.1 %d %s\r\nContent-Type: %s\r\n%s"
                      "Access-Control-Allow-Origin: *\r\nDate: %s\r\n"
                      "Connection: %s\r\n%s%s\r\n",
                      status, mg_get_response_code_text (r->conn, status), type, framing,
                      s_date (), s_keep_alive (r) ? "keep-alive" : "close",
                      r->limit_headers ? r->limit_headers : "", extra ? extra : "");
    return n < 0 || (size_t) n >= cap ? -1 : n;
}

//  Writes the status line and headers (and body, if any) in one write:
//  civetweb's header API sends every line as its own packet.
static bool
s_write_head (http_req_t *r, int status, const char *type, const char *framing,
              const char *extra, const char *body, size_t len)
{
    char head[2048];
    int n = s_format_head (r, head, sizeof (head), status, type, framing, extra);
    if (n < 0)
        return false;
    r->status = status;
    bool head_only = !strcmp (r->ri->request_method, "HEAD");
    if (head_only || len == 0)
        return mg_write (r->conn, head, (size_t) n) > 0;
    if ((size_t) n + len <= 16384) {
        char one[16384];
        memcpy (one, head, (size_t) n);
        memcpy (one + n, body, len);
        return mg_write (r->conn, one, (size_t) n + len) > 0;
    }
    return mg_write (r->conn, head, (size_t) n) > 0 && mg_write (r->conn, body, len) > 0;
}

int
http_send_raw (http_req_t *r, int status, const char *body, size_t len,
               const char *extra_headers)
{
    char framing[96];
    snprintf (framing, sizeof (framing),
              "Content-Length: %zu\r\nCache-Control: no-store\r\n", len);
    s_write_head (r, status, "application/json; charset=utf-8", framing, extra_headers,
                  body, len);
    return status;
}

int
http_send_text (http_req_t *r, int status, const char *body, size_t len)
{
    char framing[96];
    snprintf (framing, sizeof (framing),
              "Content-Length: %zu\r\nCache-Control: no-store\r\n", len);
    s_write_head (r, status, "text/plain; charset=utf-8", framing, NULL, body, len);
    return status;
}

void
http_stream_begin (http_req_t *r)
{
    char head[1024];
    int n = s_format_head (r, head, sizeof (head), 200, "text/event-stream",
                           "Transfer-Encoding: chunked\r\nCache-Control: "
                           "no-cache\r\nX-Accel-Buffering: no\r\n",
                           NULL);
    r->status = 200;
    free (r->stream_head);
    r->stream_head = n > 0 ? strndup (head, (size_t) n) : NULL;
    r->stream_head_len = r->stream_head ? (size_t) n : 0;
}

bool
http_stream_chunk (http_req_t *r, const char *data, size_t len)
{
    //  [held-back head] chunk size line, data, CRLF: one write, one packet.
    char small[4096];
    size_t need = r->stream_head_len + len + 32;
    char *buf = need <= sizeof (small) ? small : (char *) malloc (need);
    if (!buf)
        return false;
    size_t n = r->stream_head_len;
    if (n)
        memcpy (buf, r->stream_head, n);
    n += (size_t) snprintf (buf + n, 32, "%zx\r\n", len);
    memcpy (buf + n, data, len);
    memcpy (buf + n + len, "\r\n", 2);
    size_t total = n + len + 2;
    bool ok = mg_write (r->conn, buf, total) == (int) total;
    if (buf != small)
        free (buf);
    free (r->stream_head);
    r->stream_head = NULL;
    r->stream_head_len = 0;
    return ok;
}

//  ---- Server-sent events -------------------------------------------------------

bool
http_sse_write_after (http_req_t *r, char **pending, const char *event, const char *data)
{
    char head[64] = "";
    if (event)
        snprintf (head, sizeof (head), "event: %s\n", event);
    size_t pl = pending && *pending ? strlen (*pending) : 0;
    size_t hl = strlen (head), dl = strlen (data);
    char *frame = (char *) malloc (pl + hl + dl + 9);
    if (!frame)
        return false;
    int n = snprintf (frame, pl + hl + dl + 9, "%s%sdata: %s\n\n", pl ? *pending : "",
                      head, data);
    bool ok = http_stream_chunk (r, frame, (size_t) n);
    free (frame);
    if (pending) {
        free (*pending);
        *pending = NULL;
    }
    return ok;
}

bool
http_sse_write (http_req_t *r, const char *event, const char *data)
{
    return http_sse_write_after (r, NULL, event, data);
}

bool
http_sse_json_after (http_req_t *r, char **pending, const char *event, cJSON *json)
{
    char *text = cJSON_PrintUnformatted (json);
    bool ok = text && http_sse_write_after (r, pending, event, text);
    cJSON_free (text);
    cJSON_Delete (json);
    return ok;
}

bool
http_sse_json (http_req_t *r, const char *event, cJSON *json)
{
    return http_sse_json_after (r, NULL, event, json);
}

void
http_sse_end (http_req_t *r)
{
    http_stream_chunk (r, "", 0);
}

//  ---- JSON responses --------------------------------------------------------------

int
http_send_json (http_req_t *r, int status, const cJSON *json)
{
    char *text = cJSON_PrintUnformatted (json);
    if (!text)
        return http_send_error (r, 500, "internal_error", "Out of memory", NULL);
    int rc = http_send_raw (r, status, text, strlen (text), NULL);
    cJSON_free (text);
    return rc;
}

int
http_send_error_h (http_req_t *r, int status, const char *code, const char *message,
                   const char *param, const char *extra_headers)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddItemToObject (root, "error", error_json (status, code, message, param));
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    int rc = http_send_raw (r, status, text ? text : "{}", text ? strlen (text) : 2,
                            extra_headers);
    cJSON_free (text);
    return rc;
}

int
http_send_error (http_req_t *r, int status, const char *code, const char *message,
                 const char *param)
{
    return http_send_error_h (r, status, code, message, param, NULL);
}

int
http_send_bus_error (http_req_t *r, const bus_msg_t *reply)
{
    error_info_t e;
    error_read (reply->body.root, reply->env.status, "Internal error", &e);
    return http_send_error (r, e.status, e.code, e.message, e.param[0] ? e.param : NULL);
}

int
http_send_bus_reply (http_req_t *r, const bus_msg_t *reply, const char *from)
{
    if (reply->env.status != 200)
        return http_send_bus_error (r, reply);
    //  Straight from msgpack to JSON text: no cJSON tree in between.
    const msgpack_object *root = reply->body.root;
    size_t len = 0;
    char *text =
        root && root->type == MSGPACK_OBJECT_MAP ? mpjson_write (root, &len) : NULL;
    if (!text) {
        char msg[128];
        snprintf (msg, sizeof (msg), "Malformed reply from the %s", from);
        return http_send_error (r, 500, "internal_error", msg, NULL);
    }
    int status = http_send_raw (r, 200, text, len, NULL);
    free (text);
    return status;
}

//  After a 413, what the client still sends is read and thrown away, for at
//  most this long and this much (nginx's lingering close): a client that
//  writes its whole body before it reads (Node's http, the OpenAI SDKs)
//  would otherwise see its writes fail with EPIPE or ECONNRESET, never the
//  413.  Then the connection closes.
#define HTTP_LINGER_MS 10000
#define HTTP_LINGER_BYTES (64LL * 1024 * 1024)

int
http_send_too_large (http_req_t *r)
{
    char msg[128];
    snprintf (msg, sizeof (msg), "Request body is larger than the %lld-byte limit",
              r->config->max_body);
    http_close (r);
    int status = http_send_error (r, 413, "invalid_request", msg, NULL);
    struct timespec t0, t;
    clock_gettime (CLOCK_MONOTONIC, &t0);
    long long drained = 0;
    char sink[16384];
    while (drained < HTTP_LINGER_BYTES) {
        int n = mg_read (r->conn, sink, sizeof (sink));
        if (n <= 0)
            break;
        drained += n;
        clock_gettime (CLOCK_MONOTONIC, &t);
        if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000
            > HTTP_LINGER_MS)
            break;
    }
    return status;
}

int
http_read_body (http_req_t *r)
{
    long long max = r->config->max_body;
    long long declared = r->ri->content_length;
    if (declared > max)
        return http_send_too_large (r);
    size_t cap = declared >= 0 ? (size_t) declared : 64 * 1024;
    char *buf = (char *) malloc (cap + 1);
    if (!buf)
        return http_send_error (r, 500, "internal_error", "Out of memory", NULL);
    size_t len = 0;
    while (true) {
        if (len == cap) {
            if (declared >= 0)
                break;
            //  Chunked: grow, but never past the limit.
            if ((long long) cap > max) {
                free (buf);
                return http_send_too_large (r);
            }
            size_t next = cap * 2;
            if ((long long) next > max + 1)
                next = (size_t) max + 1;
            char *grown = (char *) realloc (buf, next + 1);
            if (!grown) {
                free (buf);
                return http_send_error (r, 500, "internal_error", "Out of memory", NULL);
            }
            buf = grown;
            cap = next;
        }
        int n = mg_read (r->conn, buf + len, cap - len);
        if (n <= 0)
            break;
        len += (size_t) n;
    }
    if (declared >= 0 && (long long) len < declared) {
        free (buf);
        http_close (r);
        return http_send_error (r, 400, "invalid_request",
                                "Request body ended before its Content-Length", NULL);
    }
    if ((long long) len > max) {
        free (buf);
        return http_send_too_large (r);
    }
    buf[len] = 0;
    r->body = buf;
    r->body_len = len;
    return 0;
}

cJSON *
http_json_object (const char *text, size_t len, char *msg, size_t cap)
{
    json_in_rc_t rc;
    size_t at;
    cJSON *json = json_in_parse (text, len, 0, JSON_IN_OBJECT, &rc, &at);
    if (!json && rc == JSON_IN_MALFORMED)
        snprintf (msg, cap, "Request body is not valid JSON (near byte %zu)", at);
    else if (!json)
        snprintf (msg, cap, "Request body %s", json_in_reason (rc));
    return json;
}

cJSON *
http_parse_json (http_req_t *r)
{
    char msg[128];
    cJSON *json = http_json_object (r->body, r->body_len, msg, sizeof (msg));
    if (!json)
        http_send_error (r, 400, "invalid_request", msg, NULL);
    return json;
}

//  ---- Runs --------------------------------------------------------------------

static bool
s_agent_known (const void *cfg, const char *id)
{
    return config_find_agent ((const cg_config_t *) cfg, id) != NULL;
}

static bool
s_model_known (const void *cfg, const char *id)
{
    const char *unused;
    return config_find_model ((const cg_config_t *) cfg, id, &unused) != NULL;
}

run_catalog_t
http_run_catalog (const cg_config_t *cfg)
{
    run_catalog_t cat = {s_agent_known, s_model_known, cfg};
    return cat;
}
