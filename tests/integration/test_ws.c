/*  =========================================================================
    test_ws - the WebSocket control channel (docs/websocket.md) against the
    real `clawgate serve`, with two real clients:

    - civetweb's WebSocket client (mg_connect_websocket_client): frames are
      parsed on its callback thread into a mutex-protected log that the
      test waits on with deadlines;
    - a raw-socket client that does the handshake by hand, for custom
      headers, ping / close frames, and a client that stops reading.

    Each test starts its own gateway (and, where needed, the OpenAI
    stand-in or a tap) inside the test: criterion forks each test.  No
    fixed sleeps for readiness: everything is awaited with a deadline, and
    PUB/SUB subscriptions (session.subscribe, the tap) are probed with short
    runs until they deliver.
    =========================================================================
*/
#include "runs.h"

#include <arpa/inet.h>
#include <assert.h>
#include <civetweb.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/time.h>

#define MAIN_TOKEN "ws-main-token-0123456789abcdef"
#define CHAT_TOKEN "ws-chat-only-token-0123456789"
#define PASSWORD "correct horse battery staple"
#define PASSWORD_Q "correct%20horse%20battery%20staple"
#define WAIT_MS 30000  //  Generous deadline for one reply/event

//  ---- The gateway ------------------------------------------------------------------

typedef struct {
    const char *websocket;  //  Body of "websocket":{…} or NULL
    const char *gateway;    //  More "gateway":{…} members, or NULL
    const char *limits;     //  Body of "limits":{…}, or NULL
    int echo_delay_ms;
    bool standin;     //  Also start the OpenAI stand-in
    int events_port;  //  > 0: broker.events on that TCP port
    int threads;      //  gateway.threads (0: default)
} opts_t;

static void
s_start (const opts_t *o)
{
    mg_init_library (0);
    char providers[1024];
    if (o->standin) {
        runs_standin_start ();
        snprintf (providers, sizeof (providers),
                  "\"local\":{\"echoDelayMs\":%d},"
                  "\"openai\":{\"type\":\"openai\",\"baseUrl\":\"%s/v1\","
                  "\"apiKey\":\"" OPENAI_KEY "\",\"models\":[\"gpt-4o-mini\","
                  "\"stall\",\"slow\"],\"stallTimeoutMs\":120000}",
                  o->echo_delay_ms, runs_env.sbase);
    }
    else
        snprintf (providers, sizeof (providers), "\"local\":{\"echoDelayMs\":%d}",
                  o->echo_delay_ms);
    char broker[128] = "";
    if (o->events_port > 0)
        snprintf (broker, sizeof (broker),
                  "\"broker\":{\"events\":\"tcp://127.0.0.1:%d\"},", o->events_port);
    char threads[256] = "";
    if (o->threads > 0)
        snprintf (threads, sizeof (threads), "\"threads\":%d,", o->threads);
    if (o->gateway)
        snprintf (threads + strlen (threads), sizeof (threads) - strlen (threads), "%s,",
                  o->gateway);
    char config[4096];
    snprintf (config, sizeof (config),
              "{\"auth\":{\"mode\":\"token+password\",\"token\":\"" MAIN_TOKEN
              "\",\"password\":\"" PASSWORD "\",\"tokens\":[{\"token\":\"" CHAT_TOKEN
              "\",\"name\":\"chatonly\",\"scopes\":[\"chat\"]}]},"
              "\"gateway\":{%s\"drainTimeoutMs\":3000},"
              "\"limits\":{%s},%s"
              "\"websocket\":{%s},"
              "\"providers\":{%s}}",
              threads,
              o->limits ? o->limits
                        : "\"rateLimit\":0,\"maxConcurrent\":1000,"
                          "\"authFailures\":1000",
              broker, o->websocket ? o->websocket : "", providers);
    const char *env[] = {"OPENAI_API_KEY=",    "OPENAI_BASE_URL=",
                         "ANTHROPIC_API_KEY=", "ANTHROPIC_BASE_URL=",
                         "CLAWGATE_TOKEN=",    "CLAWGATE_PASSWORD=",
                         "CLAWGATE_AUTH=",     NULL};
    cr_assert_eq (served_start (&runs_env.srv, config, env), 0,
                  "clawgate serve did not start");
    snprintf (runs_env.srv.token, sizeof (runs_env.srv.token), "%s", MAIN_TOKEN);
    snprintf (runs_env.auth, sizeof (runs_env.auth), "Authorization: Bearer %s",
              MAIN_TOKEN);
}

//  The multi-process shape, for the tests that need two session workers.
static struct {
    proc_t broker, others, session[2], gw;
    char dir[128];
} s_cluster;

static void
s_fini (void)
{
    proc_t *all[] = {&s_cluster.gw, &s_cluster.session[0], &s_cluster.session[1],
                     &s_cluster.others, &s_cluster.broker};
    for (size_t i = 0; i < sizeof (all) / sizeof (all[0]); i++)
        if (all[i]->pid > 0) {
            proc_stop (all[i], SIGKILL, 5000);
            unlink (all[i]->err_path);
        }
    if (s_cluster.dir[0])
        harness_rmtree (s_cluster.dir);
    runs_stop_all ();
    mg_exit_library ();
}

//  GET /v1/sessions/{key} over HTTP; NULL unless 200.  Caller deletes.
static cJSON *
s_http_session (const char *key)
{
    char path[256];
    snprintf (path, sizeof (path), "/v1/sessions/%s", key);
    http_resp_t r;
    runs_get (path, &r);
    cJSON *j = r.status == 200 ? cJSON_Parse (r.body) : NULL;
    http_resp_free (&r);
    return j;
}

//  Assistant messages of a stored session that belong to run_id.
static int
s_stored_replies (const cJSON *session, const char *run_id, const cJSON **last)
{
    int n = 0;
    const cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItemCaseSensitive (session, "messages"))
    {
        const char *role = runs_str (m, "role"), *rid = runs_str (m, "runId");
        if (role && !strcmp (role, "assistant") && rid && !strcmp (rid, run_id)) {
            n++;
            if (last)
                *last = m;
        }
    }
    return n;
}

//  Polls the stored session until run_id's reply is there; returns it
//  (the session, caller deletes) or NULL after timeout_ms.
static cJSON *
s_wait_stored (const char *key, const char *run_id, int timeout_ms)
{
    long long until = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *j = s_http_session (key);
        if (j && s_stored_replies (j, run_id, NULL) > 0)
            return j;
        cJSON_Delete (j);
        if (harness_now_ms () >= until)
            return NULL;
        usleep (50000);
    }
}

//  "w0 w1 … w(n-1)" with a prefix on every word.  Caller frees.
static char *
s_words (const char *prefix, int n)
{
    size_t cap = (size_t) n * (strlen (prefix) + 12) + 1;
    char *s = (char *) malloc (cap);
    cr_assert_not_null (s);
    size_t len = 0;
    s[0] = 0;
    for (int i = 0; i < n; i++)
        len += (size_t) snprintf (s + len, cap - len, "%s%s%d", i ? " " : "", prefix, i);
    return s;
}

//  ---- civetweb WebSocket client ------------------------------------------------------

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    cJSON **frames;  //  Every text frame, parsed (NULL: not JSON)
    int *opcodes;
    size_t n, cap;
    bool closed;  //  Close frame received or connection gone
    int pongs;
    //  Summary mode: chat.delta frames are counted, not kept.
    bool summarize;
    long deltas;         //  chat.delta frames seen (summary mode)
    long long last_seq;  //  Last seq of any event (summary mode)
    long seq_gaps;       //  Events whose seq != last + 1
    struct mg_connection *conn;
} wsc_t;

static const char *
s_type (const cJSON *f)
{
    return f ? runs_str (f, "type") : NULL;
}

static void
s_wsc_add (wsc_t *c, int opcode, cJSON *j)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 256;
        c->frames = (cJSON **) realloc (c->frames, c->cap * sizeof (cJSON *));
        c->opcodes = (int *) realloc (c->opcodes, c->cap * sizeof (int));
        assert (c->frames && c->opcodes);
    }
    c->frames[c->n] = j;
    c->opcodes[c->n] = opcode;
    c->n++;
}

static int
s_wsc_on_data (struct mg_connection *conn, int bits, char *data, size_t len, void *arg)
{
    wsc_t *c = (wsc_t *) arg;
    int opcode = bits & 0x0f;
    pthread_mutex_lock (&c->lock);
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
        c->closed = true;
    else if (opcode == MG_WEBSOCKET_OPCODE_PONG)
        c->pongs++;
    else if (opcode == MG_WEBSOCKET_OPCODE_TEXT) {
        cJSON *j = cJSON_ParseWithLength (data, len);
        const char *type = s_type (j);
        if (c->summarize && j) {
            const cJSON *seq =
                cJSON_GetObjectItemCaseSensitive (cJSON_GetObjectItem (j, "data"), "seq");
            if (cJSON_IsNumber (seq)) {
                long long s = (long long) seq->valuedouble;
                if (c->last_seq && s != c->last_seq + 1)
                    c->seq_gaps++;
                c->last_seq = s;
            }
        }
        if (c->summarize && type && !strcmp (type, "chat.delta")) {
            c->deltas++;
            cJSON_Delete (j);
        }
        else
            s_wsc_add (c, opcode, j);
    }
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
    return opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE ? 0 : 1;
}

static void
s_wsc_on_close (const struct mg_connection *conn, void *arg)
{
    wsc_t *c = (wsc_t *) arg;
    pthread_mutex_lock (&c->lock);
    c->closed = true;
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
}

//  Connects to path ("/?token=…"); NULL if refused (err says why).
static wsc_t *
wsc_open (const char *path, char *err, size_t errcap)
{
    wsc_t *c = (wsc_t *) calloc (1, sizeof (wsc_t));
    cr_assert_not_null (c);
    pthread_mutex_init (&c->lock, NULL);
    pthread_cond_init (&c->cond, NULL);
    char ebuf[256] = "";
    c->conn = mg_connect_websocket_client ("127.0.0.1", runs_env.srv.port, 0, ebuf,
                                           sizeof (ebuf), path, NULL, s_wsc_on_data,
                                           s_wsc_on_close, c);
    if (err)
        snprintf (err, errcap, "%s", ebuf);
    if (!c->conn) {
        pthread_cond_destroy (&c->cond);
        pthread_mutex_destroy (&c->lock);
        free (c);
        return NULL;
    }
    return c;
}

//  Connects with the main token and checks the `connected` frame.
static wsc_t *
wsc_open_main (void)
{
    char err[256];
    wsc_t *c = wsc_open ("/?token=" MAIN_TOKEN, err, sizeof (err));
    cr_assert_not_null (c, "WebSocket connect failed: %s", err);
    return c;
}

static void
wsc_send_raw (wsc_t *c, int opcode, const char *data, size_t len)
{
    int rc = mg_websocket_client_write (c->conn, opcode, data, len);
    cr_assert (rc > 0, "mg_websocket_client_write failed (%d)", rc);
}

static void
wsc_send (wsc_t *c, const char *text)
{
    wsc_send_raw (c, MG_WEBSOCKET_OPCODE_TEXT, text, strlen (text));
}

typedef bool (match_fn) (const cJSON *frame, const void *arg);

//  The first frame from index *from on that matches; waits up to
//  timeout_ms.  Borrowed (the log owns it).  *from is set past it.
static const cJSON *
wsc_wait (wsc_t *c, size_t *from, match_fn *match, const void *arg, int timeout_ms)
{
    long long until = harness_now_ms () + timeout_ms;
    size_t i = from ? *from : 0;
    pthread_mutex_lock (&c->lock);
    while (true) {
        for (; i < c->n; i++)
            if (c->frames[i] && match (c->frames[i], arg)) {
                const cJSON *f = c->frames[i];
                pthread_mutex_unlock (&c->lock);
                if (from)
                    *from = i + 1;
                return f;
            }
        long long left = until - harness_now_ms ();
        if (left <= 0 || c->closed)
            break;
        struct timespec ts;
        clock_gettime (CLOCK_REALTIME, &ts);
        long long ns = ts.tv_nsec + (left < 100 ? left : 100) * 1000000LL;
        ts.tv_sec += ns / 1000000000LL;
        ts.tv_nsec = ns % 1000000000LL;
        pthread_cond_timedwait (&c->cond, &c->lock, &ts);
    }
    pthread_mutex_unlock (&c->lock);
    return NULL;
}

static bool
s_match_type (const cJSON *f, const void *arg)
{
    const char *t = s_type (f);
    return t && !strcmp (t, (const char *) arg);
}

//  A response or error whose id is the number *arg.
static bool
s_match_id (const cJSON *f, const void *arg)
{
    const char *t = s_type (f);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive (f, "id");
    return t && (!strcmp (t, "response") || !strcmp (t, "error")) && cJSON_IsNumber (id)
           && id->valueint == *(const int *) arg;
}

//  An error with id null.
static bool
s_match_null_error (const cJSON *f, const void *arg)
{
    const char *t = s_type (f);
    const cJSON *id = cJSON_GetObjectItemCaseSensitive (f, "id");
    return t && !strcmp (t, "error") && cJSON_IsNull (id);
}

typedef struct {
    const char *type;  //  NULL: chat.done or chat.error
    const char *run_id;
} run_match_t;

static bool
s_match_run (const cJSON *f, const void *arg)
{
    const run_match_t *m = (const run_match_t *) arg;
    const char *t = s_type (f);
    const char *rid = runs_at_str (f, "data.runId");
    if (!t || !rid || strcmp (rid, m->run_id))
        return false;
    if (m->type)
        return !strcmp (t, m->type);
    return !strcmp (t, "chat.done") || !strcmp (t, "chat.error");
}

//  Sends {"method":method,"params":params,"id":id} and returns the reply
//  (borrowed), failing the test if none comes.
static const cJSON *
wsc_call (wsc_t *c, int id, const char *method, const char *params)
{
    char *text = NULL;
    size_t need = strlen (method) + (params ? strlen (params) : 2) + 64;
    text = (char *) malloc (need);
    snprintf (text, need, "{\"method\":\"%s\",\"params\":%s,\"id\":%d}", method,
              params ? params : "{}", id);
    wsc_send (c, text);
    free (text);
    const cJSON *r = wsc_wait (c, NULL, s_match_id, &id, WAIT_MS);
    cr_assert_not_null (r, "no reply to %s (id %d)", method, id);
    return r;
}

//  Same, and the reply must be a response: returns its result.
static const cJSON *
wsc_result (wsc_t *c, int id, const char *method, const char *params)
{
    const cJSON *r = wsc_call (c, id, method, params);
    char *text = cJSON_PrintUnformatted (r);
    cr_assert_str_eq (s_type (r), "response", "%s -> %s", method, text);
    free (text);
    const cJSON *res = cJSON_GetObjectItemCaseSensitive (r, "result");
    cr_assert (cJSON_IsObject (res), "%s: no result object", method);
    return res;
}

//  Checks an error reply has the shape of docs/errors.md#the-error-object.
static void
s_assert_ws_error (const cJSON *r, const char *code, const char *type, const char *param)
{
    char *text = cJSON_PrintUnformatted (r);
    cr_assert_str_eq (s_type (r), "error", "%s", text);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive (r, "error");
    cr_assert (cJSON_IsObject (e), "%s", text);
    cr_assert_str_eq (runs_str (e, "code") ? runs_str (e, "code") : "(none)", code, "%s",
                      text);
    cr_assert (runs_str (e, "message") && *runs_str (e, "message"), "%s", text);
    cr_assert_str_eq (runs_str (e, "type") ? runs_str (e, "type") : "(none)", type, "%s",
                      text);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive (e, "param");
    cr_assert_not_null (p, "no param: %s", text);
    if (param)
        cr_assert (cJSON_IsString (p) && !strcmp (p->valuestring, param),
                   "param should be %s: %s", param, text);
    else
        cr_assert (cJSON_IsNull (p), "param should be null: %s", text);
    free (text);
}

//  Starts a run; returns its runId (copied into run_id).
static void
wsc_run (wsc_t *c, int id, const char *key, const char *message, const char *extra,
         char *run_id, size_t cap)
{
    cJSON *p = cJSON_CreateObject ();
    cJSON_AddStringToObject (p, "message", message);
    if (key)
        cJSON_AddStringToObject (p, "sessionKey", key);
    char *params = cJSON_PrintUnformatted (p);
    cJSON_Delete (p);
    if (extra) {
        //  extra: more members, e.g. "\"idempotencyKey\":\"k\""
        size_t n = strlen (params);
        char *more = (char *) malloc (n + strlen (extra) + 4);
        snprintf (more, n + strlen (extra) + 4, "%.*s,%s}", (int) (n - 1), params, extra);
        free (params);
        params = more;
    }
    const cJSON *res = wsc_result (c, id, "chat.run", params);
    free (params);
    const char *rid = runs_str (res, "runId");
    cr_assert (rid && !strncmp (rid, "run-", 4), "bad runId");
    if (key)
        cr_assert_str_eq (runs_str (res, "sessionKey"), key);
    snprintf (run_id, cap, "%s", rid);
}

//  Waits for run_id's chat.done / chat.error; returns it (borrowed).
static const cJSON *
wsc_wait_end (wsc_t *c, const char *run_id, int timeout_ms)
{
    run_match_t m = {NULL, run_id};
    return wsc_wait (c, NULL, s_match_run, &m, timeout_ms);
}

//  The run's events as a new array of duplicates (caller deletes).
static cJSON *
wsc_run_events (wsc_t *c, const char *run_id)
{
    cJSON *out = cJSON_CreateArray ();
    pthread_mutex_lock (&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        const cJSON *f = c->frames[i];
        const char *rid = f ? runs_at_str (f, "data.runId") : NULL;
        const char *t = s_type (f);
        if (rid && !strcmp (rid, run_id) && t && strcmp (t, "response"))
            cJSON_AddItemToArray (out, cJSON_Duplicate (f, 1));
    }
    pthread_mutex_unlock (&c->lock);
    return out;
}

//  Sends a close frame, waits for the echo, then frees the client.
static void
wsc_close (wsc_t **cp)
{
    wsc_t *c = *cp;
    if (!c)
        return;
    pthread_mutex_lock (&c->lock);
    bool closed = c->closed;
    pthread_mutex_unlock (&c->lock);
    if (!closed) {
        mg_websocket_client_write (c->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE,
                                   "\x03\xe8", 2);
        long long until = harness_now_ms () + 10000;
        pthread_mutex_lock (&c->lock);
        while (!c->closed && harness_now_ms () < until) {
            struct timespec ts;
            clock_gettime (CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50000000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait (&c->cond, &c->lock, &ts);
        }
        pthread_mutex_unlock (&c->lock);
    }
    mg_close_connection (c->conn);
    for (size_t i = 0; i < c->n; i++)
        cJSON_Delete (c->frames[i]);
    free (c->frames);
    free (c->opcodes);
    pthread_cond_destroy (&c->cond);
    pthread_mutex_destroy (&c->lock);
    free (c);
    *cp = NULL;
}

//  ---- Raw-socket client ---------------------------------------------------------------

typedef struct {
    int fd;
    char *buf;  //  Bytes read, not yet consumed
    size_t len, cap;
    bool eof;
} raw_t;

static void
s_raw_fill (raw_t *r, size_t want)
{
    if (r->cap < want) {
        r->cap = want;
        r->buf = (char *) realloc (r->buf, r->cap);
        cr_assert_not_null (r->buf);
    }
}

//  Reads what is there within timeout_ms; returns bytes read, 0 on
//  timeout, -1 on EOF/error.
static ssize_t
s_raw_read (raw_t *r, int timeout_ms)
{
    if (r->eof)
        return -1;
    struct pollfd p = {r->fd, POLLIN, 0};
    int pr = poll (&p, 1, timeout_ms < 0 ? 0 : timeout_ms);
    if (pr <= 0)
        return 0;
    s_raw_fill (r, r->len + 65536);
    ssize_t n = recv (r->fd, r->buf + r->len, r->cap - r->len, 0);
    if (n <= 0) {
        r->eof = true;
        return -1;
    }
    r->len += (size_t) n;
    return n;
}

static void
s_raw_consume (raw_t *r, size_t n)
{
    memmove (r->buf, r->buf + n, r->len - n);
    r->len -= n;
}

//  Connects and sends the upgrade request with extra header lines
//  ("K: V\r\n…" or ""); rcvbuf > 0 sets SO_RCVBUF first.  Returns the HTTP
//  status; the response head is copied into head, and for a non-101 the
//  body (Content-Length) into body.
static int
raw_open (raw_t *r, const char *path, const char *headers, int rcvbuf, char *head,
          size_t headcap, char *body, size_t bodycap)
{
    memset (r, 0, sizeof (*r));
    r->fd = socket (AF_INET, SOCK_STREAM, 0);
    cr_assert (r->fd >= 0);
    if (rcvbuf > 0)
        setsockopt (r->fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof (rcvbuf));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons ((uint16_t) runs_env.srv.port);
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    cr_assert_eq (connect (r->fd, (struct sockaddr *) &a, sizeof (a)), 0, "connect: %s",
                  strerror (errno));
    char req[2048];
    int n = snprintf (req, sizeof (req),
                      "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
                      "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                      "Sec-WebSocket-Version: 13\r\n%s\r\n",
                      path, runs_env.srv.port, headers ? headers : "");
    cr_assert_eq (send (r->fd, req, (size_t) n, MSG_NOSIGNAL), n);
    long long until = harness_now_ms () + WAIT_MS;
    char *end = NULL;
    while (!(end = r->len ? memmem (r->buf, r->len, "\r\n\r\n", 4) : NULL)) {
        cr_assert (harness_now_ms () < until, "no response head");
        cr_assert (s_raw_read (r, 100) >= 0, "connection closed before a head");
    }
    size_t hl = (size_t) (end - r->buf) + 4;
    if (head)
        snprintf (head, headcap, "%.*s", (int) hl, r->buf);
    int status = 0;
    sscanf (r->buf, "HTTP/1.%*d %d", &status);
    char *h = strndup (r->buf, hl);
    s_raw_consume (r, hl);
    if (status != 101 && body) {
        //  Content-Length body (the JSON error)
        long cl = -1;
        for (char *line = h; line && *line; line = strstr (line, "\r\n")) {
            while (*line == '\r' || *line == '\n')
                line++;
            if (!strncasecmp (line, "Content-Length:", 15))
                cl = atol (line + 15);
        }
        while (cl >= 0 && r->len < (size_t) cl && harness_now_ms () < until)
            if (s_raw_read (r, 100) < 0)
                break;
        size_t bl = cl >= 0 && (size_t) cl < r->len ? (size_t) cl : r->len;
        snprintf (body, bodycap, "%.*s", (int) bl, r->buf);
        s_raw_consume (r, bl);
    }
    free (h);
    return status;
}

//  Sends one masked frame (FIN set).
static void
raw_send (raw_t *r, int opcode, const void *data, size_t len)
{
    unsigned char hdr[14];
    size_t hl = 0;
    hdr[hl++] = (unsigned char) (0x80 | opcode);
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
    const unsigned char mask[4] = {0x12, 0x34, 0x56, 0x78};
    memcpy (hdr + hl, mask, 4);
    hl += 4;
    unsigned char *out = (unsigned char *) malloc (hl + len);
    memcpy (out, hdr, hl);
    for (size_t i = 0; i < len; i++)
        out[hl + i] = ((const unsigned char *) data)[i] ^ mask[i % 4];
    size_t off = 0;
    while (off < hl + len) {
        ssize_t n = send (r->fd, out + off, hl + len - off, MSG_NOSIGNAL);
        cr_assert (n > 0, "send: %s", strerror (errno));
        off += (size_t) n;
    }
    free (out);
}

static void
raw_send_text (raw_t *r, const char *text)
{
    raw_send (r, 0x1, text, strlen (text));
}

//  One frame from the server (unmasked).  Returns 0 and sets *opcode,
//  *payload (malloc'd, NUL-terminated) and *len; -1 on timeout, -2 on EOF.
static int
raw_recv (raw_t *r, int *opcode, char **payload, size_t *len, int timeout_ms)
{
    long long until = harness_now_ms () + timeout_ms;
    while (true) {
        if (r->len >= 2) {
            const unsigned char *b = (const unsigned char *) r->buf;
            cr_assert ((b[1] & 0x80) == 0, "server frames must not be masked");
            uint64_t pl = b[1] & 0x7f;
            size_t hl = 2;
            if (pl == 126 && r->len >= 4) {
                pl = ((uint64_t) b[2] << 8) | b[3];
                hl = 4;
            }
            else if (pl == 127 && r->len >= 10) {
                pl = 0;
                for (int i = 0; i < 8; i++)
                    pl = (pl << 8) | b[2 + i];
                hl = 10;
            }
            else if (pl >= 126)
                hl = 0;  //  Need more header bytes
            if (hl && r->len >= hl + pl) {
                *opcode = b[0] & 0x0f;
                *payload = (char *) malloc (pl + 1);
                memcpy (*payload, r->buf + hl, pl);
                (*payload)[pl] = 0;
                *len = (size_t) pl;
                s_raw_consume (r, hl + (size_t) pl);
                return 0;
            }
        }
        long long left = until - harness_now_ms ();
        if (left <= 0)
            return -1;
        if (s_raw_read (r, (int) (left < 100 ? left : 100)) < 0)
            return -2;
    }
}

//  The next text frame whose JSON type is type (others skipped); returns
//  it parsed (caller deletes) or NULL on timeout/EOF.
static cJSON *
raw_wait_type (raw_t *r, const char *type, int timeout_ms)
{
    long long until = harness_now_ms () + timeout_ms;
    while (true) {
        int op;
        char *p;
        size_t n;
        long long left = until - harness_now_ms ();
        if (left <= 0 || raw_recv (r, &op, &p, &n, (int) left))
            return NULL;
        cJSON *j = op == 1 ? cJSON_ParseWithLength (p, n) : NULL;
        free (p);
        if (j && s_type (j) && !strcmp (s_type (j), type))
            return j;
        cJSON_Delete (j);
    }
}

static void
raw_close (raw_t *r)
{
    if (r->fd >= 0)
        close (r->fd);
    r->fd = -1;
    free (r->buf);
    r->buf = NULL;
}

//  ---- The tap --------------------------------------------------------------------------------

typedef struct {
    proc_t proc;
    char *buf;  //  stdout read so far, not yet split
    size_t len, cap;
    cJSON *lines;  //  Every line, parsed
} tap_t;

//  Reads the tap's stdout for up to timeout_ms, appending parsed lines.
static void
s_tap_pump (tap_t *t, int timeout_ms)
{
    struct pollfd p = {t->proc.out_fd, POLLIN, 0};
    if (poll (&p, 1, timeout_ms) <= 0)
        return;
    if (t->cap - t->len < 65536) {
        t->cap = t->len + 131072;
        t->buf = (char *) realloc (t->buf, t->cap);
    }
    ssize_t n = read (t->proc.out_fd, t->buf + t->len, t->cap - t->len - 1);
    if (n <= 0)
        return;
    t->len += (size_t) n;
    char *start = t->buf, *nl;
    while ((nl = memchr (start, '\n', t->len - (size_t) (start - t->buf)))) {
        cJSON *j = cJSON_ParseWithLength (start, (size_t) (nl - start));
        cr_assert (cJSON_IsObject (j), "tap line is not JSON: %.*s", (int) (nl - start),
                   start);
        cJSON_AddItemToArray (t->lines, j);
        start = nl + 1;
    }
    size_t rest = t->len - (size_t) (start - t->buf);
    memmove (t->buf, start, rest);
    t->len = rest;
}

//  The tap's line with topic and data.runId run_id; waits up to timeout_ms.
static const cJSON *
s_tap_wait (tap_t *t, const char *topic, const char *run_id, int timeout_ms)
{
    long long until = harness_now_ms () + timeout_ms;
    while (true) {
        const cJSON *l;
        cJSON_ArrayForEach (l, t->lines)
        {
            const char *tp = runs_str (l, "topic"), *rid = runs_at_str (l, "data.runId");
            if (tp && !strcmp (tp, topic) && rid && !strcmp (rid, run_id))
                return l;
        }
        long long left = until - harness_now_ms ();
        if (left <= 0)
            return NULL;
        s_tap_pump (t, (int) (left < 100 ? left : 100));
    }
}

//  ---- Tests ------------------------------------------------------------------------------------

TestSuite (ws, .fini = s_fini, .timeout = 240);

//  A uuid: 8-4-4-4-12 lower-case hex.
static bool
s_is_uuid (const char *s)
{
    if (!s || strlen (s) != 36)
        return false;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-')
                return false;
        }
        else if (!strchr ("0123456789abcdef", s[i]))
            return false;
    }
    return true;
}

static void
s_assert_connected (const cJSON *f, char *client_id, size_t cap)
{
    cr_assert_not_null (f, "no connected frame");
    char *text = cJSON_PrintUnformatted (f);
    cr_assert_str_eq (s_type (f), "connected", "%s", text);
    const char *id = runs_at_str (f, "data.clientId");
    cr_assert (s_is_uuid (id), "clientId is not a uuid: %s", text);
    cr_assert_str_eq (runs_at_str (f, "data.gatewayVersion"), "0.1.0", "%s", text);
    const cJSON *caps = runs_at (f, "data.capabilities");
    cr_assert (cJSON_IsArray (caps) && cJSON_GetArraySize (caps) == 3, "%s", text);
    cr_assert_str_eq (cJSON_GetArrayItem (caps, 0)->valuestring, "chat");
    cr_assert_str_eq (cJSON_GetArrayItem (caps, 1)->valuestring, "channels");
    cr_assert_str_eq (cJSON_GetArrayItem (caps, 2)->valuestring, "browser");
    if (client_id)
        snprintf (client_id, cap, "%s", id);
    free (text);
}

//  The very first frame of a civetweb client must be `connected`.
static void
s_assert_first_connected (wsc_t *c, char *client_id, size_t cap)
{
    size_t from = 0;
    const cJSON *f = wsc_wait (c, &from, s_match_type, "connected", WAIT_MS);
    cr_assert_not_null (f, "no connected frame");
    cr_assert_eq (from, 1, "connected was not the first frame");
    s_assert_connected (f, client_id, cap);
}

Test (ws, query_token_gets_connected_then_replies)
{
    opts_t o = {0};
    s_start (&o);
    wsc_t *a = wsc_open_main ();
    wsc_t *b = wsc_open_main ();
    char ida[64], idb[64];
    s_assert_first_connected (a, ida, sizeof (ida));
    s_assert_first_connected (b, idb, sizeof (idb));
    cr_assert_str_neq (ida, idb, "two clients got the same clientId");
    //  system.status: GET /status's body, which counts WebSocket clients.
    const cJSON *st = wsc_result (a, 1, "system.status", NULL);
    cr_assert_str_eq (runs_str (st, "status"), "ok");
    cr_assert (cJSON_IsString (cJSON_GetObjectItem (st, "version")));
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (st, "uptime")));
    cr_assert (cJSON_IsObject (cJSON_GetObjectItem (st, "channels")));
    cr_assert_eq ((int) runs_at_num (st, "gateway.port"), runs_env.srv.port);
    cr_assert_str_eq (runs_at_str (st, "gateway.auth"), "token+password");
    cr_assert_eq ((int) runs_at_num (st, "gateway.websocketClients"), 2);
    wsc_close (&b);
    //  The count follows the clients (the close handler runs a little later).
    long long until = harness_now_ms () + WAIT_MS;
    int id = 2, clients = -1;
    while (harness_now_ms () < until) {
        st = wsc_result (a, id++, "system.status", NULL);
        clients = (int) runs_at_num (st, "gateway.websocketClients");
        if (clients == 1)
            break;
        usleep (20000);
    }
    cr_assert_eq (clients, 1, "websocketClients stayed at %d", clients);
    wsc_close (&a);
}

Test (ws, password_and_header_credentials_are_accepted)
{
    opts_t o = {0};
    s_start (&o);
    //  ?password= (URL-encoded)
    char err[256];
    wsc_t *c = wsc_open ("/?password=" PASSWORD_Q, err, sizeof (err));
    cr_assert_not_null (c, "?password= refused: %s", err);
    s_assert_first_connected (c, NULL, 0);
    cr_assert_str_eq (runs_str (wsc_result (c, 1, "system.status", NULL), "status"),
                      "ok");
    wsc_close (&c);
    //  A scoped token in the query
    c = wsc_open ("/?token=" CHAT_TOKEN, err, sizeof (err));
    cr_assert_not_null (c, "scoped ?token= refused: %s", err);
    s_assert_first_connected (c, NULL, 0);
    wsc_close (&c);
    //  Authorization: Bearer and X-OpenClaw-Password on the upgrade request
    const char *headers[] = {"Authorization: Bearer " MAIN_TOKEN "\r\n",
                             "Authorization: Bearer " CHAT_TOKEN "\r\n",
                             "X-OpenClaw-Password: " PASSWORD "\r\n", NULL};
    for (int i = 0; headers[i]; i++) {
        raw_t r;
        char head[2048];
        int status = raw_open (&r, "/", headers[i], 0, head, sizeof (head), NULL, 0);
        cr_assert_eq (status, 101, "%s-> %s", headers[i], head);
        cr_assert (strcasestr (head, "Sec-WebSocket-Accept: "
                                     "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
                   "%s", head);
        cJSON *f = raw_wait_type (&r, "connected", WAIT_MS);
        s_assert_connected (f, NULL, 0);
        cJSON_Delete (f);
        //  And the connection serves requests.
        raw_send_text (&r, "{\"method\":\"system.status\",\"id\":\"h\"}");
        cJSON *resp = raw_wait_type (&r, "response", WAIT_MS);
        cr_assert_not_null (resp);
        cr_assert_str_eq (runs_str (resp, "id"), "h");
        cr_assert_str_eq (runs_at_str (resp, "result.status"), "ok");
        cJSON_Delete (resp);
        raw_close (&r);
    }
}

Test (ws, bad_or_missing_credentials_get_401_and_no_upgrade)
{
    opts_t o = {0};
    s_start (&o);
    struct {
        const char *path, *headers;
    } cases[] = {
        {"/", ""},
        {"/?token=wrong-token-0123456789abcdef", ""},
        {"/?password=wrong%20password", ""},
        {"/", "Authorization: Bearer wrong-token-0123456789abcdef\r\n"},
        {"/", "X-OpenClaw-Password: wrong password\r\n"},
        //  A wrong header is not rescued by a right query parameter.
        {"/?token=" MAIN_TOKEN, "Authorization: Bearer nope-nope-nope-nope\r\n"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        raw_t r;
        char head[2048], body[2048] = "";
        int status = raw_open (&r, cases[i].path, cases[i].headers, 0, head,
                               sizeof (head), body, sizeof (body));
        cr_assert_eq (status, 401, "case %zu: %s", i, head);
        cr_assert (!strcasestr (head, "Sec-WebSocket-Accept"), "%s", head);
        cJSON *j = cJSON_Parse (body);
        cr_assert_not_null (j, "case %zu: error body is not JSON: '%s'", i, body);
        cr_assert_str_eq (runs_at_str (j, "error.code"), "unauthorized", "%s", body);
        cr_assert_str_eq (runs_at_str (j, "error.type"), "client_error", "%s", body);
        cr_assert (runs_at_str (j, "error.message"), "%s", body);
        cJSON_Delete (j);
        //  Nothing else comes: no WebSocket frame, the server hangs up.
        long long until = harness_now_ms () + 10000;
        while (!r.eof && harness_now_ms () < until)
            s_raw_read (&r, 100);
        cr_assert (r.eof, "case %zu: connection left open after a 401", i);
        cr_assert_eq (r.len, 0, "case %zu: bytes after the 401: %.*s", i, (int) r.len,
                      r.buf);
        raw_close (&r);
    }
    //  civetweb's client is refused too.
    char err[256];
    wsc_t *c = wsc_open ("/?token=wrong-token-0123456789abcdef", err, sizeof (err));
    cr_assert_null (c, "a wrong token got a WebSocket");
    //  And none of them counts as a client.
    http_resp_t r;
    runs_get ("/status", &r);
    cr_assert_eq (r.status, 200);
    cr_assert (strstr (r.body, "\"status\":\"ok\""), "%s", r.body);
    http_resp_free (&r);
}

Test (ws, repeated_auth_failures_on_the_upgrade_get_429)
{
    opts_t o = {.limits = "\"rateLimit\":0,\"maxConcurrent\":1000,"
                          "\"authFailures\":3"};
    s_start (&o);
    int first_429 = 0;
    for (int i = 1; i <= 4 && !first_429; i++) {
        raw_t r;
        char head[2048], body[2048] = "";
        int status = raw_open (&r, "/?token=wrong-token-0123456789abcdef", "", 0, head,
                               sizeof (head), body, sizeof (body));
        raw_close (&r);
        if (status == 429)
            first_429 = i;
        else
            cr_assert_eq (status, 401, "attempt %d: %s", i, head);
    }
    cr_assert (first_429 >= 3, "blocked after only %d failures", first_429);
    //  Now even the right token is turned away, with Retry-After.
    raw_t r;
    char head[2048], body[2048] = "";
    int status = raw_open (&r, "/?token=" MAIN_TOKEN, "", 0, head, sizeof (head), body,
                           sizeof (body));
    cr_assert_eq (status, 429, "after %d failures: %s", first_429, head);
    cr_assert (strcasestr (head, "Retry-After: "), "%s", head);
    cJSON *j = cJSON_Parse (body);
    cr_assert_not_null (j, "%s", body);
    cr_assert_str_eq (runs_at_str (j, "error.code"), "rate_limited", "%s", body);
    cJSON_Delete (j);
    raw_close (&r);
}

Test (ws, every_method_replies_once)
{
    opts_t o = {0};
    s_start (&o);
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    //  A run to have a session to look at.
    char run_id[80];
    wsc_run (c, 1, "ws-methods", "hello methods", NULL, run_id, sizeof (run_id));
    const cJSON *done = wsc_wait_end (c, run_id, WAIT_MS);
    cr_assert_not_null (done);
    cr_assert_str_eq (s_type (done), "chat.done");
    //  session.list
    const cJSON *res = wsc_result (c, 2, "session.list", "{\"limit\":10}");
    const cJSON *sessions = cJSON_GetObjectItem (res, "sessions");
    cr_assert (cJSON_IsArray (sessions) && cJSON_GetArraySize (sessions) == 1);
    cr_assert_str_eq (runs_str (cJSON_GetArrayItem (sessions, 0), "sessionKey"),
                      "ws-methods");
    cr_assert_eq ((int) runs_at_num (cJSON_GetArrayItem (sessions, 0), "messageCount"),
                  2);
    cr_assert_not_null (cJSON_GetObjectItem (res, "nextCursor"));
    //  session.get
    res = wsc_result (c, 3, "session.get", "{\"sessionKey\":\"ws-methods\"}");
    cr_assert_str_eq (runs_str (res, "sessionKey"), "ws-methods");
    const cJSON *msgs = cJSON_GetObjectItem (res, "messages");
    cr_assert (cJSON_IsArray (msgs) && cJSON_GetArraySize (msgs) == 2);
    cr_assert_str_eq (runs_str (cJSON_GetArrayItem (msgs, 0), "role"), "user");
    cr_assert_str_eq (runs_str (cJSON_GetArrayItem (msgs, 0), "content"),
                      "hello methods");
    cr_assert_str_eq (runs_str (cJSON_GetArrayItem (msgs, 1), "role"), "assistant");
    cr_assert_str_eq (runs_str (cJSON_GetArrayItem (msgs, 1), "runId"), run_id);
    s_assert_ws_error (
        wsc_call (c, 4, "session.get", "{\"sessionKey\":\"ws-no-such-session\"}"),
        "not_found", "client_error", "sessionKey");
    s_assert_ws_error (wsc_call (c, 5, "session.get", "{\"sessionKey\":\"bad key!\"}"),
                       "invalid_request", "client_error", "sessionKey");
    //  subscribe / unsubscribe
    res = wsc_result (c, 6, "session.subscribe", "{\"sessionKey\":\"ws-methods\"}");
    cr_assert_str_eq (runs_str (res, "sessionKey"), "ws-methods");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (res, "subscribed")));
    res = wsc_result (c, 7, "session.unsubscribe", "{\"sessionKey\":\"ws-methods\"}");
    cr_assert_str_eq (runs_str (res, "sessionKey"), "ws-methods");
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (res, "subscribed")));
    //  system.status
    res = wsc_result (c, 8, "system.status", NULL);
    cr_assert_str_eq (runs_str (res, "status"), "ok");
    //  The channel actor answers: five channels, none configured here
    res = wsc_result (c, 9, "channel.list", NULL);
    const cJSON *list = cJSON_GetObjectItem (res, "channels");
    cr_assert_eq (cJSON_GetArraySize (list), 5);
    cr_assert_str_eq (runs_str (cJSON_GetArrayItem (list, 1), "id"), "telegram");
    res = wsc_result (c, 10, "channel.status", "{\"channelId\":\"telegram\"}");
    cr_assert_str_eq (runs_str (res, "status"), "not_configured");
    s_assert_ws_error (wsc_call (c, 30, "channel.status", "{}"), "invalid_request",
                       "client_error", "channelId");
    s_assert_ws_error (wsc_call (c, 31, "channel.status", "{\"channelId\":\"irc\"}"),
                       "not_found", "client_error", "channelId");
    //  The browser actor answers (refused here, so no Chromium starts;
    //  tests/integration/test_browser.c drives the real one).
    s_assert_ws_error (wsc_call (c, 11, "browser.screenshot",
                                 "{\"fullPage\":true,\"profile\":\"../x\"}"),
                       "invalid_request", "client_error", "profile");
    //  Unknown method, bad params
    s_assert_ws_error (wsc_call (c, 12, "nope.nothing", NULL), "invalid_request",
                       "client_error", "method");
    s_assert_ws_error (wsc_call (c, 13, "chat.run", "{\"sessionKey\":\"ws-x\"}"),
                       "invalid_request", "client_error", "message");
    s_assert_ws_error (
        wsc_call (c, 14, "chat.run", "{\"message\":\"hi\",\"sessionKey\":\"no spaces\"}"),
        "invalid_request", "client_error", "sessionKey");
    s_assert_ws_error (wsc_call (c, 15, "chat.abort", NULL), "invalid_request",
                       "client_error", "runId");
    res = wsc_result (c, 16, "chat.abort", "{\"runId\":\"run-unknown\"}");
    cr_assert_str_eq (runs_str (res, "runId"), "run-unknown");
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (res, "aborted")));
    //  A string id comes back as that string.
    wsc_send (c, "{\"method\":\"system.status\",\"id\":\"str-id\"}");
    size_t from = 0;
    const cJSON *r = NULL;
    long long until = harness_now_ms () + WAIT_MS;
    while (!r && harness_now_ms () < until) {
        const cJSON *f = wsc_wait (c, &from, s_match_type, "response", 100);
        if (f && cJSON_IsString (cJSON_GetObjectItem (f, "id"))
            && !strcmp (cJSON_GetObjectItem (f, "id")->valuestring, "str-id"))
            r = f;
    }
    cr_assert_not_null (r, "no reply to the string id");
    //  A request without a method keeps its id.
    wsc_send (c, "{\"params\":{},\"id\":17}");
    int id17 = 17;
    s_assert_ws_error (wsc_wait (c, NULL, s_match_id, &id17, WAIT_MS), "invalid_request",
                       "client_error", "method");
    //  Exactly one reply per id, even after a last round trip.
    wsc_result (c, 18, "system.status", NULL);
    for (int id = 1; id <= 18; id++) {
        int n = 0;
        pthread_mutex_lock (&c->lock);
        for (size_t i = 0; i < c->n; i++)
            n += c->frames[i] && s_match_id (c->frames[i], &id);
        pthread_mutex_unlock (&c->lock);
        cr_assert_eq (n, 1, "id %d got %d replies", id, n);
    }
    wsc_close (&c);
}

Test (ws, scopes_are_enforced)
{
    opts_t o = {0};
    s_start (&o);
    char err[256];
    wsc_t *c = wsc_open ("/?token=" CHAT_TOKEN, err, sizeof (err));
    cr_assert_not_null (c, "%s", err);
    s_assert_first_connected (c, NULL, 0);
    s_assert_ws_error (wsc_call (c, 1, "session.list", NULL), "forbidden", "client_error",
                       NULL);
    s_assert_ws_error (wsc_call (c, 2, "session.get", "{\"sessionKey\":\"ws-a\"}"),
                       "forbidden", "client_error", NULL);
    s_assert_ws_error (wsc_call (c, 3, "session.subscribe", "{\"sessionKey\":\"ws-a\"}"),
                       "forbidden", "client_error", NULL);
    //  chat is in scope
    char run_id[80];
    wsc_run (c, 4, "ws-a", "scoped run", NULL, run_id, sizeof (run_id));
    const cJSON *done = wsc_wait_end (c, run_id, WAIT_MS);
    cr_assert_not_null (done);
    cr_assert_str_eq (s_type (done), "chat.done");
    wsc_close (&c);
}

//  Checks one run's events as one client saw them: deltas in order with
//  strictly increasing seq, then chat.done whose response is their text.
//  Returns the events (caller deletes).
static cJSON *
s_check_run (wsc_t *c, const char *key, const char *run_id, const char *message,
             int words, const char *finish)
{
    const cJSON *end = wsc_wait_end (c, run_id, WAIT_MS * 2);
    cr_assert_not_null (end, "no end for %s", run_id);
    cJSON *events = wsc_run_events (c, run_id);
    char *dump = cJSON_PrintUnformatted (end);
    cr_assert_str_eq (s_type (end), "chat.done", "%s", dump);
    free (dump);
    size_t cap = strlen (message) + 1024, tl = 0;
    char *text = (char *) calloc (1, cap);
    long long last_seq = 0;
    int deltas = 0;
    bool ended = false;
    const cJSON *f;
    cJSON_ArrayForEach (f, events)
    {
        const char *t = s_type (f);
        cr_assert (!ended, "%s after the end", t);
        cr_assert_str_eq (runs_at_str (f, "data.sessionKey"), key);
        long long seq = (long long) runs_at_num (f, "data.seq");
        cr_assert (seq > last_seq, "seq %lld after %lld", seq, last_seq);
        last_seq = seq;
        if (!strcmp (t, "chat.delta")) {
            const char *d = runs_at_str (f, "data.delta");
            cr_assert_not_null (d);
            cr_assert (tl + strlen (d) < cap, "more text than the message");
            memcpy (text + tl, d, strlen (d));
            tl += strlen (d);
            deltas++;
        }
        else if (!strcmp (t, "chat.done"))
            ended = true;
    }
    cr_assert (ended);
    cr_assert_eq (deltas, words, "%d deltas for %d words", deltas, words);
    cr_assert_str_eq (text, message, "deltas do not add up to the echo");
    cr_assert_str_eq (runs_at_str (end, "data.response"), text);
    cr_assert_str_eq (runs_at_str (end, "data.finishReason"), finish);
    cr_assert_str_eq (runs_at_str (end, "data.model"), "local/echo");
    double pt = runs_at_num (end, "data.usage.promptTokens");
    double ct = runs_at_num (end, "data.usage.completionTokens");
    cr_assert_eq ((int) ct, words);
    cr_assert (pt >= words, "promptTokens %g", pt);
    cr_assert_eq ((int) runs_at_num (end, "data.usage.totalTokens"), (int) (pt + ct));
    free (text);
    return events;
}

Test (ws, streamed_run_deltas_in_order_then_done)
{
    opts_t o = {.echo_delay_ms = 5};
    s_start (&o);
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    char *message = s_words ("word", 40);
    char run_id[80];
    long long t0 = harness_now_ms ();
    wsc_run (c, 1, "ws-stream", message, NULL, run_id, sizeof (run_id));
    //  The reply comes at once, before the run's events.
    size_t from = 0;
    int one = 1;
    cr_assert_not_null (wsc_wait (c, &from, s_match_id, &one, 0));
    run_match_t any = {"chat.delta", run_id};
    size_t first_delta = 0;
    cr_assert_not_null (wsc_wait (c, &first_delta, s_match_run, &any, WAIT_MS));
    cr_assert (first_delta > from - 1, "a delta came before the reply");
    cJSON *events = s_check_run (c, "ws-stream", run_id, message, 40, "stop");
    //  40 words 5 ms apart: it streamed, it was not sent in one go.
    cr_assert (harness_now_ms () - t0 >= 150, "too fast for 40 paced deltas");
    long long done_seq = (long long) runs_at_num (
        cJSON_GetArrayItem (events, cJSON_GetArraySize (events) - 1), "data.seq");
    cJSON_Delete (events);
    //  Stored in the session
    cJSON *s = s_wait_stored ("ws-stream", run_id, WAIT_MS);
    cr_assert_not_null (s, "the run was not stored");
    const cJSON *m = NULL;
    cr_assert_eq (s_stored_replies (s, run_id, &m), 1);
    cr_assert_str_eq (runs_str (m, "content"), message);
    cr_assert_str_eq (runs_str (m, "finishReason"), "stop");
    cJSON_Delete (s);
    //  A second run on the session goes on with higher seqs.
    char run2[80];
    wsc_run (c, 2, "ws-stream", "second run here", NULL, run2, sizeof (run2));
    events = s_check_run (c, "ws-stream", run2, "second run here", 3, "stop");
    long long first2 =
        (long long) runs_at_num (cJSON_GetArrayItem (events, 0), "data.seq");
    cr_assert (first2 > done_seq, "seq went back: %lld after %lld", first2, done_seq);
    cJSON_Delete (events);
    free (message);
    wsc_close (&c);
}

Test (ws, abort_mid_stream_ends_aborted_and_closes_upstream)
{
    opts_t o = {.standin = true};
    s_start (&o);
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    runs_stats_t before = runs_stats ();
    char run_id[80];
    wsc_run (c, 1, "ws-abort", "please stall", "\"options\":{\"model\":\"openai/stall\"}",
             run_id, sizeof (run_id));
    //  "stall" sends its first delta, then holds the transfer open.
    run_match_t delta = {"chat.delta", run_id};
    const cJSON *d = wsc_wait (c, NULL, s_match_run, &delta, WAIT_MS);
    cr_assert_not_null (d, "no first delta from the stalling provider");
    runs_stats_t st;
    RUNS_POLL_STATS (st, st.active == 1, WAIT_MS);
    cr_assert_eq (st.active, 1, "the upstream transfer is not open");
    cr_assert_eq (st.aborted, before.aborted);
    //  No end yet: it is stalled.
    cr_assert_null (wsc_wait_end (c, run_id, 0), "the run ended on its own");
    char params[160];
    snprintf (params, sizeof (params), "{\"runId\":\"%s\"}", run_id);
    long long t0 = harness_now_ms ();
    const cJSON *res = wsc_result (c, 2, "chat.abort", params);
    cr_assert_str_eq (runs_str (res, "runId"), run_id);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (res, "aborted")));
    const cJSON *end = wsc_wait_end (c, run_id, WAIT_MS);
    cr_assert_not_null (end, "no chat.done after the abort");
    char *dump = cJSON_PrintUnformatted (end);
    cr_assert_str_eq (s_type (end), "chat.done", "%s", dump);
    cr_assert_str_eq (runs_at_str (end, "data.finishReason"), "aborted", "%s", dump);
    cr_assert (runs_at_num (end, "data.seq") > runs_at_num (d, "data.seq"), "%s", dump);
    free (dump);
    //  Well before the stand-in's 60 s stall would end it.
    cr_assert (harness_now_ms () - t0 < 30000);
    //  The upstream transfer was closed: the stand-in saw the client leave.
    RUNS_POLL_STATS (st, st.active == 0 && st.aborted == before.aborted + 1, WAIT_MS);
    cr_assert_eq (st.active, 0, "upstream transfer still open");
    cr_assert_eq (st.aborted, before.aborted + 1, "stand-in aborted %ld (was %ld)",
                  st.aborted, before.aborted);
    //  Stored as aborted; a second abort finds nothing to abort.
    cJSON *s = s_wait_stored ("ws-abort", run_id, WAIT_MS);
    cr_assert_not_null (s);
    const cJSON *m = NULL;
    s_stored_replies (s, run_id, &m);
    cr_assert_str_eq (runs_str (m, "finishReason"), "aborted");
    cJSON_Delete (s);
    res = wsc_result (c, 3, "chat.abort", params);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (res, "aborted")));
    wsc_close (&c);
}

//  Runs short probe runs from starter on key until watcher sees one end:
//  then watcher's subscription is in effect.  Returns the probes run.
static int
s_probe_subscription (wsc_t *starter, int *id, wsc_t *watcher, const char *key)
{
    long long until = harness_now_ms () + 60000;
    for (int probes = 1; harness_now_ms () < until; probes++) {
        char run_id[80];
        wsc_run (starter, (*id)++, key, "probe", NULL, run_id, sizeof (run_id));
        cr_assert_not_null (wsc_wait_end (starter, run_id, WAIT_MS));
        if (wsc_wait_end (watcher, run_id, 500))
            return probes;
    }
    cr_assert_fail ("the subscriber never saw an event of %s", key);
    return 0;
}

Test (ws, subscriber_gets_the_same_events_as_the_starter)
{
    opts_t o = {.echo_delay_ms = 3};
    s_start (&o);
    wsc_t *a = wsc_open_main ();
    wsc_t *b = wsc_open_main ();
    wsc_t *other = wsc_open_main ();
    s_assert_first_connected (a, NULL, 0);
    s_assert_first_connected (b, NULL, 0);
    s_assert_first_connected (other, NULL, 0);
    const cJSON *res =
        wsc_result (b, 1, "session.subscribe", "{\"sessionKey\":\"ws-shared\"}");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (res, "subscribed")));
    //  Another session's watcher must see none of it.
    wsc_result (other, 1, "session.subscribe", "{\"sessionKey\":\"ws-elsewhere\"}");
    int id = 10;
    s_probe_subscription (a, &id, b, "ws-shared");
    char *message = s_words ("shared", 30);
    char run_id[80];
    wsc_run (a, id++, "ws-shared", message, NULL, run_id, sizeof (run_id));
    cJSON *ea = s_check_run (a, "ws-shared", run_id, message, 30, "stop");
    cJSON *eb = s_check_run (b, "ws-shared", run_id, message, 30, "stop");
    //  The very same events: same types, seqs and deltas in the same order.
    cr_assert_eq (cJSON_GetArraySize (ea), cJSON_GetArraySize (eb));
    for (int i = 0; i < cJSON_GetArraySize (ea); i++) {
        const cJSON *x = cJSON_GetArrayItem (ea, i), *y = cJSON_GetArrayItem (eb, i);
        cr_assert_str_eq (s_type (x), s_type (y));
        cr_assert_eq ((long long) runs_at_num (x, "data.seq"),
                      (long long) runs_at_num (y, "data.seq"));
        if (!strcmp (s_type (x), "chat.delta"))
            cr_assert_str_eq (runs_at_str (x, "data.delta"),
                              runs_at_str (y, "data.delta"));
    }
    cJSON_Delete (ea);
    cJSON_Delete (eb);
    //  The other session's watcher got nothing of ws-shared.
    wsc_result (other, 2, "system.status", NULL);
    pthread_mutex_lock (&other->lock);
    for (size_t i = 0; i < other->n; i++) {
        const char *k =
            other->frames[i] ? runs_at_str (other->frames[i], "data.sessionKey") : NULL;
        cr_assert (!k || strcmp (k, "ws-shared"), "leaked an event of ws-shared");
    }
    pthread_mutex_unlock (&other->lock);
    //  After unsubscribing, b gets no more of the session's events.
    res = wsc_result (b, 2, "session.unsubscribe", "{\"sessionKey\":\"ws-shared\"}");
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (res, "subscribed")));
    char run2[80];
    wsc_run (a, id++, "ws-shared", "after unsubscribe", NULL, run2, sizeof (run2));
    cr_assert_not_null (wsc_wait_end (a, run2, WAIT_MS));
    wsc_result (b, 3, "system.status", NULL);
    run_match_t any = {"chat.delta", run2};
    cr_assert_null (wsc_wait (b, NULL, s_match_run, &any, 300),
                    "an unsubscribed client got an event");
    free (message);
    wsc_close (&a);
    wsc_close (&b);
    wsc_close (&other);
}

Test (ws, stalled_client_is_dropped_while_a_fast_one_streams_on)
{
    //  echoDelayMs 0: each run's 1000 deltas come in one burst, which the
    //  hub queues faster than a writer sends them, well past a queueFrames
    //  of 256.  A client that keeps reading is not dropped for that (its
    //  writer makes progress); only the stuck one is.
    opts_t o = {.websocket = "\"queueFrames\":256", .echo_delay_ms = 0};
    s_start (&o);
    wsc_t *fast = wsc_open_main ();
    s_assert_first_connected (fast, NULL, 0);
    //  The slow one: a tiny receive buffer, subscribed to the session.
    raw_t slow;
    char head[2048];
    cr_assert_eq (
        raw_open (&slow, "/?token=" MAIN_TOKEN, "", 2048, head, sizeof (head), NULL, 0),
        101, "%s", head);
    cJSON *f = raw_wait_type (&slow, "connected", WAIT_MS);
    cr_assert_not_null (f);
    cJSON_Delete (f);
    raw_send_text (&slow, "{\"method\":\"session.subscribe\","
                          "\"params\":{\"sessionKey\":\"ws-lag\"},\"id\":1}");
    f = raw_wait_type (&slow, "response", WAIT_MS);
    cr_assert (f && cJSON_IsTrue (runs_at (f, "result.subscribed")));
    cJSON_Delete (f);
    //  Probe until the slow client's subscription delivers.
    int id = 10;
    bool seen = false;
    long long until = harness_now_ms () + 60000;
    while (!seen && harness_now_ms () < until) {
        char run_id[80];
        wsc_run (fast, id++, "ws-lag", "probe", NULL, run_id, sizeof (run_id));
        cr_assert_not_null (wsc_wait_end (fast, run_id, WAIT_MS));
        cJSON *e = raw_wait_type (&slow, "chat.done", 500);
        seen = e != NULL;
        cJSON_Delete (e);
    }
    cr_assert (seen, "the slow client never saw an event");
    //  Drain what the probes left, then stop reading for good.
    while (true) {
        cJSON *e = raw_wait_type (&slow, "never", 300);
        if (!e)
            break;
        cJSON_Delete (e);
    }
    //  The fast client now counts deltas instead of keeping them.
    pthread_mutex_lock (&fast->lock);
    fast->summarize = true;
    fast->last_seq = 0;
    fast->seq_gaps = 0;
    fast->deltas = 0;
    pthread_mutex_unlock (&fast->lock);
    //  Long runs (each delta ~120 bytes of frame) until the gateway drops
    //  the slow client; loopback buffers hold several MB, so this takes a
    //  few runs.  Every run must reach the fast client whole.
    const int words = 1000;
    char *message = s_words ("x", words);
    long expected = 0;
    int runs = 0;
    bool lagged = false;
    until = harness_now_ms () + 120000;
    while (!lagged && runs < 2000 && harness_now_ms () < until) {
        char run_id[80];
        wsc_run (fast, id++, "ws-lag", message, NULL, run_id, sizeof (run_id));
        const cJSON *end = wsc_wait_end (fast, run_id, WAIT_MS * 2);
        cr_assert_not_null (end, "run %d did not end for the fast client%s", runs,
                            fast->closed ? " (it was closed)" : "");
        cr_assert_str_eq (s_type (end), "chat.done");
        cr_assert_eq (strlen (runs_at_str (end, "data.response")), strlen (message));
        expected += words;
        runs++;
        char err[65536];
        proc_stderr (&runs_env.srv.proc, err, sizeof (err));
        lagged = strstr (err, "lagged") != NULL;
    }
    cr_assert (lagged, "the stalled client was never dropped (%d runs, %ld deltas)", runs,
               expected);
    cr_log_info ("slow client dropped after %d runs (%ld deltas)", runs, expected);
    //  One more run after the drop: the fast client still streams it all.
    char run_id[80];
    wsc_run (fast, id++, "ws-lag", message, NULL, run_id, sizeof (run_id));
    const cJSON *end = wsc_wait_end (fast, run_id, WAIT_MS * 2);
    cr_assert_not_null (end);
    cr_assert_str_eq (s_type (end), "chat.done");
    expected += words;
    runs++;
    pthread_mutex_lock (&fast->lock);
    long got = fast->deltas, gaps = fast->seq_gaps;
    pthread_mutex_unlock (&fast->lock);
    cr_assert_eq (got, expected, "fast client got %ld of %ld deltas", got, expected);
    cr_assert_eq (gaps, 0, "fast client saw %ld seq gaps", gaps);
    //  Now the slow client reads: some deltas, then lagged, then a close.
    long slow_deltas = 0;
    bool saw_lagged = false, saw_close = false, after_close = false;
    long long last_seq = 0, seq_at_lag = 0;
    until = harness_now_ms () + 60000;
    while (harness_now_ms () < until) {
        int op;
        char *p;
        size_t n;
        int rc = raw_recv (&slow, &op, &p, &n, 10000);
        if (rc)
            break;  //  Timeout or EOF
        if (saw_close)
            after_close = true;
        if (op == 0x8)
            saw_close = true;
        else if (op == 0x1) {
            cJSON *j = cJSON_ParseWithLength (p, n);
            const char *t = s_type (j);
            if (t && !strcmp (t, "chat.delta")) {
                cr_assert (!saw_lagged, "a delta after the lagged notice");
                slow_deltas++;
                last_seq = (long long) runs_at_num (j, "data.seq");
            }
            else if (t && !strcmp (t, "lagged")) {
                saw_lagged = true;
                seq_at_lag = last_seq;
                cr_assert_str_eq (p, "{\"type\":\"lagged\"}");
            }
            cJSON_Delete (j);
        }
        free (p);
        if (saw_close && !after_close) {
            //  Keep reading a little: nothing else may follow.
        }
    }
    cr_assert (saw_lagged, "the slow client got no lagged notice (%ld deltas)",
               slow_deltas);
    cr_assert (saw_close, "no close frame after the lagged notice");
    cr_assert (!after_close, "frames after the close frame");
    cr_assert (slow_deltas < expected, "the slow client got everything (%ld)",
               slow_deltas);
    cr_assert (seq_at_lag > 0 || slow_deltas == 0);
    cr_log_info ("slow client read %ld deltas before the lagged notice", slow_deltas);
    raw_close (&slow);
    //  The fast client is unharmed and still answers.
    cr_assert_str_eq (runs_str (wsc_result (fast, id++, "system.status", NULL), "status"),
                      "ok");
    free (message);
    wsc_close (&fast);
}

Test (ws, bad_frames_get_an_error_with_null_id_and_the_connection_stays)
{
    opts_t o = {.gateway = "\"maxFrameBytes\":1024"};
    s_start (&o);
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    size_t from = 0;
    //  Malformed JSON
    wsc_send (c, "{\"method\":\"system.status\",\"id\":");
    const cJSON *e = wsc_wait (c, &from, s_match_null_error, NULL, WAIT_MS);
    cr_assert_not_null (e, "no error for malformed JSON");
    s_assert_ws_error (e, "invalid_request", "client_error", NULL);
    //  Not an object
    wsc_send (c, "[1,2,3]");
    e = wsc_wait (c, &from, s_match_null_error, NULL, WAIT_MS);
    cr_assert_not_null (e, "no error for a JSON array");
    s_assert_ws_error (e, "invalid_request", "client_error", NULL);
    //  Binary
    wsc_send_raw (c, MG_WEBSOCKET_OPCODE_BINARY, "\x00\x01\x02\xff", 4);
    e = wsc_wait (c, &from, s_match_null_error, NULL, WAIT_MS);
    cr_assert_not_null (e, "no error for a binary frame");
    s_assert_ws_error (e, "invalid_request", "client_error", NULL);
    //  Over maxFrameBytes: valid JSON with an id, still id null.
    char big[4096];
    int n = snprintf (big, sizeof (big),
                      "{\"method\":\"system.status\",\"id\":99,\"pad\":\"");
    memset (big + n, 'p', 3000);
    snprintf (big + n + 3000, sizeof (big) - (size_t) n - 3000, "\"}");
    wsc_send (c, big);
    e = wsc_wait (c, &from, s_match_null_error, NULL, WAIT_MS);
    cr_assert_not_null (e, "no error for an oversized frame");
    s_assert_ws_error (e, "invalid_request", "client_error", NULL);
    cr_assert (strstr (runs_at_str (e, "error.message"), "1024"), "%s",
               runs_at_str (e, "error.message"));
    //  Broken UTF-8 is malformed too.
    wsc_send (c, "{\"method\":\"\xc3\x28\",\"id\":1}");
    e = wsc_wait (c, &from, s_match_null_error, NULL, WAIT_MS);
    cr_assert_not_null (e, "no error for broken UTF-8");
    s_assert_ws_error (e, "invalid_request", "client_error", NULL);
    //  The connection still answers, and id 99 was never answered.
    const cJSON *st = wsc_result (c, 2, "system.status", NULL);
    cr_assert_str_eq (runs_str (st, "status"), "ok");
    int id99 = 99;
    cr_assert_null (wsc_wait (c, NULL, s_match_id, &id99, 0),
                    "the oversized frame was executed");
    //  Five bad frames, five null-id errors, nothing for id 1.
    int nulls = 0;
    pthread_mutex_lock (&c->lock);
    for (size_t i = 0; i < c->n; i++)
        nulls += c->frames[i] && s_match_null_error (c->frames[i], NULL);
    pthread_mutex_unlock (&c->lock);
    cr_assert_eq (nulls, 5, "%d null-id errors for 5 bad frames", nulls);
    int id1 = 1;
    cr_assert_null (wsc_wait (c, NULL, s_match_id, &id1, 0));
    wsc_close (&c);
    //  A frame just under the limit is served.
    c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    n = snprintf (big, sizeof (big), "{\"method\":\"system.status\",\"id\":7,\"pad\":\"");
    memset (big + n, 'p', 900);
    snprintf (big + n + 900, sizeof (big) - (size_t) n - 900, "\"}");
    cr_assert (strlen (big) <= 1024);
    wsc_send (c, big);
    int id7 = 7;
    e = wsc_wait (c, NULL, s_match_id, &id7, WAIT_MS);
    cr_assert_not_null (e);
    cr_assert_str_eq (s_type (e), "response");
    wsc_close (&c);
}

Test (ws, ping_gets_pong_and_close_is_echoed)
{
    opts_t o = {0};
    s_start (&o);
    raw_t r;
    char head[2048];
    cr_assert_eq (
        raw_open (&r, "/?token=" MAIN_TOKEN, "", 0, head, sizeof (head), NULL, 0), 101);
    cJSON *f = raw_wait_type (&r, "connected", WAIT_MS);
    cr_assert_not_null (f);
    cJSON_Delete (f);
    const char *payloads[] = {"probe-123", "", "\x01\x02\x03 binary ok", NULL};
    for (int i = 0; payloads[i]; i++) {
        size_t pl = strlen (payloads[i]);
        raw_send (&r, 0x9, payloads[i], pl);
        int op = 0;
        char *p = NULL;
        size_t n = 0;
        long long until = harness_now_ms () + WAIT_MS;
        bool pong = false;
        while (!pong && harness_now_ms () < until) {
            int rc = raw_recv (&r, &op, &p, &n, 1000);
            cr_assert_neq (rc, -2, "connection closed after a ping");
            if (rc == 0) {
                if (op == 0xA) {
                    pong = true;
                    cr_assert_eq (n, pl, "pong payload length %zu", n);
                    cr_assert_eq (memcmp (p, payloads[i], pl), 0);
                }
                free (p);
            }
        }
        cr_assert (pong, "no pong for ping %d", i);
    }
    //  Still serving requests
    raw_send_text (&r, "{\"method\":\"system.status\",\"id\":3}");
    f = raw_wait_type (&r, "response", WAIT_MS);
    cr_assert_not_null (f);
    cJSON_Delete (f);
    //  Close with 1001 "bye": the server echoes the status and hangs up.
    raw_send (&r, 0x8,
              "\x03\xe9"
              "bye",
              5);
    int op = 0;
    char *p = NULL;
    size_t n = 0;
    bool close_seen = false;
    long long until = harness_now_ms () + WAIT_MS;
    while (!close_seen && harness_now_ms () < until) {
        int rc = raw_recv (&r, &op, &p, &n, 1000);
        cr_assert_neq (rc, -2, "EOF without a close frame");
        if (rc == 0) {
            if (op == 0x8) {
                close_seen = true;
                cr_assert (n >= 2, "close frame without a status");
                cr_assert_eq ((unsigned char) p[0], 0x03);
                cr_assert_eq ((unsigned char) p[1], 0xe9);
            }
            free (p);
        }
    }
    cr_assert (close_seen, "no close frame echoed");
    until = harness_now_ms () + 10000;
    while (!r.eof && harness_now_ms () < until)
        if (s_raw_read (&r, 100) > 0) {
            //  Only more close-handshake bytes may come; drop them.
            r.len = 0;
        }
    cr_assert (r.eof, "the server did not hang up after the close");
    raw_close (&r);
}

Test (ws, heartbeat_comes_every_interval)
{
    opts_t o = {.websocket = "\"heartbeatMs\":200"};
    s_start (&o);
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    struct timeval tv;
    gettimeofday (&tv, NULL);
    long long wall = (long long) tv.tv_sec * 1000 + tv.tv_usec / 1000;
    size_t from = 0;
    double last = 0;
    long long t0 = harness_now_ms ();
    for (int i = 0; i < 4; i++) {
        const cJSON *h = wsc_wait (c, &from, s_match_type, "heartbeat", WAIT_MS);
        cr_assert_not_null (h, "heartbeat %d missing", i);
        cr_assert_str_eq (runs_at_str (h, "data.status"), "ok");
        double ts = runs_at_num (h, "data.timestamp");
        cr_assert (ts > wall - 60000 && ts < wall + 600000,
                   "timestamp %.0f is not ms since the epoch (now %lld)", ts, wall);
        cr_assert (ts > last, "timestamps do not increase");
        last = ts;
    }
    //  4 heartbeats 200 ms apart take at least ~600 ms: a period, not a burst.
    cr_assert (harness_now_ms () - t0 >= 500, "4 heartbeats in %lld ms",
               harness_now_ms () - t0);
    wsc_close (&c);
}

Test (ws, idempotency_key_returns_the_first_run)
{
    opts_t o = {.echo_delay_ms = 20};
    s_start (&o);
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    const char *msg = "one two three four five six seven eight nine ten";
    char r1[80], r1b[80], r1c[80], r2[80], r3[80];
    wsc_run (c, 1, "ws-idem", msg, "\"idempotencyKey\":\"key-1\"", r1, sizeof (r1));
    //  Repeat while the first is still running
    const cJSON *res = wsc_result (c, 2, "chat.run",
                                   "{\"message\":\"one two three four five six "
                                   "seven eight nine ten\",\"sessionKey\":"
                                   "\"ws-idem\",\"idempotencyKey\":\"key-1\"}");
    snprintf (r1b, sizeof (r1b), "%s", runs_str (res, "runId"));
    cr_assert_str_eq (r1b, r1, "a repeat started a new run");
    cr_assert_str_eq (runs_str (res, "sessionKey"), "ws-idem");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (res, "duplicate")));
    cJSON *e = s_check_run (c, "ws-idem", r1, msg, 10, "stop");
    cJSON_Delete (e);
    //  And after it ended
    res = wsc_result (c, 3, "chat.run",
                      "{\"message\":\"different text\",\"idempotencyKey\":\"key-1\"}");
    snprintf (r1c, sizeof (r1c), "%s", runs_str (res, "runId"));
    cr_assert_str_eq (r1c, r1);
    cr_assert_str_eq (runs_str (res, "sessionKey"), "ws-idem");
    //  Another key: another run
    wsc_run (c, 4, "ws-idem", "second key", "\"idempotencyKey\":\"key-2\"", r2,
             sizeof (r2));
    cr_assert_str_neq (r2, r1);
    e = s_check_run (c, "ws-idem", r2, "second key", 2, "stop");
    cJSON_Delete (e);
    //  The same key from another credential is its own.
    char err[256];
    wsc_t *d = wsc_open ("/?token=" CHAT_TOKEN, err, sizeof (err));
    cr_assert_not_null (d, "%s", err);
    s_assert_first_connected (d, NULL, 0);
    wsc_run (d, 1, "ws-idem", "other credential", "\"idempotencyKey\":\"key-1\"", r3,
             sizeof (r3));
    cr_assert_str_neq (r3, r1);
    cr_assert_not_null (wsc_wait_end (d, r3, WAIT_MS));
    //  Exactly one stored run per runId: 3 runs, 6 messages.
    cJSON *s = s_wait_stored ("ws-idem", r3, WAIT_MS);
    cr_assert_not_null (s);
    cr_assert_eq (s_stored_replies (s, r1, NULL), 1);
    cr_assert_eq (s_stored_replies (s, r2, NULL), 1);
    cr_assert_eq (s_stored_replies (s, r3, NULL), 1);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (s, "messages")), 6);
    //  The repeats started nothing: r1 got one chat.done only.
    int ends = 0;
    pthread_mutex_lock (&c->lock);
    run_match_t m = {"chat.done", r1};
    for (size_t i = 0; i < c->n; i++)
        ends += c->frames[i] && s_match_run (c->frames[i], &m);
    pthread_mutex_unlock (&c->lock);
    cr_assert_eq (ends, 1);
    cJSON_Delete (s);
    wsc_close (&d);
    wsc_close (&c);
}

Test (ws, a_client_that_leaves_does_not_kill_its_run)
{
    opts_t o = {.echo_delay_ms = 25};
    s_start (&o);
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    char *message = s_words ("gone", 40);
    char run_id[80];
    wsc_run (c, 1, "ws-gone", message, NULL, run_id, sizeof (run_id));
    //  40 words 25 ms apart need a second: leave at once.
    wsc_close (&c);
    //  It was not over when we left.
    cJSON *s = s_http_session ("ws-gone");
    if (s)
        cr_assert_eq (s_stored_replies (s, run_id, NULL), 0,
                      "the run ended before the client left: test is vacuous");
    cJSON_Delete (s);
    s = s_wait_stored ("ws-gone", run_id, WAIT_MS * 2);
    cr_assert_not_null (s, "the run of a client that left was not stored");
    const cJSON *m = NULL;
    cr_assert_eq (s_stored_replies (s, run_id, &m), 1);
    cr_assert_str_eq (runs_str (m, "finishReason"), "stop", "the run was cut short");
    cr_assert_str_eq (runs_str (m, "content"), message, "the reply is not whole");
    cJSON_Delete (s);
    //  A new client can read it back.
    c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    const cJSON *res = wsc_result (c, 1, "session.get", "{\"sessionKey\":\"ws-gone\"}");
    const cJSON *msgs = cJSON_GetObjectItem (res, "messages");
    cr_assert_eq (cJSON_GetArraySize (msgs), 2);
    cr_assert_str_eq (runs_str (cJSON_GetArrayItem (msgs, 1), "content"), message);
    free (message);
    wsc_close (&c);
}

Test (ws, tap_sees_the_same_events_as_the_client)
{
    int events_port = harness_free_port ();
    opts_t o = {.echo_delay_ms = 3, .events_port = events_port};
    s_start (&o);
    char ep[64];
    snprintf (ep, sizeof (ep), "tcp://127.0.0.1:%d", events_port);
    tap_t tap = {0};
    tap.lines = cJSON_CreateArray ();
    const char *args[] = {"tap", "--events", ep, "--session", "ws-tap", "--json", NULL};
    cr_assert_eq (proc_start (&tap.proc, args, NULL), 0);
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    //  Probe until the tap's subscription delivers.
    int id = 1;
    bool seen = false;
    long long until = harness_now_ms () + 60000;
    while (!seen && harness_now_ms () < until) {
        char run_id[80];
        wsc_run (c, id++, "ws-tap", "probe", NULL, run_id, sizeof (run_id));
        cr_assert_not_null (wsc_wait_end (c, run_id, WAIT_MS));
        seen = s_tap_wait (&tap, "ws-tap/chat.done", run_id, 500) != NULL;
    }
    cr_assert (seen, "the tap never saw an event");
    char *message = s_words ("tapped", 25);
    char run_id[80];
    wsc_run (c, id++, "ws-tap", message, NULL, run_id, sizeof (run_id));
    cJSON *events = s_check_run (c, "ws-tap", run_id, message, 25, "stop");
    cr_assert_not_null (s_tap_wait (&tap, "ws-tap/chat.done", run_id, WAIT_MS),
                        "the tap did not see the run end");
    //  The tap's lines for the run, in order, against the client's events.
    cJSON *lines = cJSON_CreateArray ();
    const cJSON *l;
    cJSON_ArrayForEach (l, tap.lines)
    {
        const char *rid = runs_at_str (l, "data.runId");
        if (rid && !strcmp (rid, run_id))
            cJSON_AddItemToArray (lines, cJSON_Duplicate (l, 1));
    }
    cr_assert_eq (cJSON_GetArraySize (lines), cJSON_GetArraySize (events),
                  "tap %d lines, client %d events", cJSON_GetArraySize (lines),
                  cJSON_GetArraySize (events));
    for (int i = 0; i < cJSON_GetArraySize (events); i++) {
        const cJSON *ev = cJSON_GetArrayItem (events, i);
        const cJSON *tl = cJSON_GetArrayItem (lines, i);
        char topic[128];
        snprintf (topic, sizeof (topic), "ws-tap/%s", s_type (ev));
        cr_assert_str_eq (runs_str (tl, "topic"), topic);
        cr_assert_eq ((long long) runs_at_num (tl, "data.seq"),
                      (long long) runs_at_num (ev, "data.seq"));
        if (!strcmp (s_type (ev), "chat.delta"))
            cr_assert_str_eq (runs_at_str (tl, "data.delta"),
                              runs_at_str (ev, "data.delta"));
        else {
            cr_assert_str_eq (runs_at_str (tl, "data.response"), message);
            cr_assert_str_eq (runs_at_str (tl, "data.finishReason"), "stop");
            cr_assert_eq ((int) runs_at_num (tl, "data.usage.totalTokens"),
                          (int) runs_at_num (ev, "data.usage.totalTokens"));
        }
    }
    cJSON_Delete (lines);
    cJSON_Delete (events);
    free (message);
    wsc_close (&c);
    cr_assert_eq (proc_stop (&tap.proc, SIGTERM, 10000), 0, "tap did not exit 0");
    unlink (tap.proc.err_path);
    cJSON_Delete (tap.lines);
    free (tap.buf);
}

//  Issue 16: under the default limits (maxConcurrent 10, rateLimit 100)
//  every chat.run past the first few made the hub ask the ratelimit actor
//  for one more concurrency slot, and that round trip on the hub's own
//  socket threw away every event of the runs already streaming.  Eight
//  clients start eight 300-word runs at once, each on its own session:
//  every one must get its response, all 300 deltas in order (adding up to
//  the echo) and exactly one chat.done.
#define CONCURRENT_CLIENTS 8
#define CONCURRENT_WORDS 300

Test (ws, concurrent_runs_under_default_limits_get_every_event)
{
    //  "limits":{} leaves every limit at its default: the concurrency
    //  lease path is the one under test.
    opts_t o = {.limits = ""};
    s_start (&o);
    wsc_t *c[CONCURRENT_CLIENTS];
    char *message[CONCURRENT_CLIENTS];
    char key[CONCURRENT_CLIENTS][32];
    for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
        c[i] = wsc_open_main ();
        s_assert_first_connected (c[i], NULL, 0);
        char prefix[16];
        snprintf (prefix, sizeof (prefix), "c%dw", i);
        message[i] = s_words (prefix, CONCURRENT_WORDS);
        snprintf (key[i], sizeof (key[i]), "ws-conc-%d", i);
    }
    //  All the requests leave before any reply is read, so the hub takes
    //  them in one go while the first runs already stream.
    for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
        cJSON *req = cJSON_CreateObject ();
        cJSON_AddStringToObject (req, "method", "chat.run");
        cJSON *p = cJSON_AddObjectToObject (req, "params");
        cJSON_AddStringToObject (p, "message", message[i]);
        cJSON_AddStringToObject (p, "sessionKey", key[i]);
        cJSON_AddNumberToObject (req, "id", 1);
        char *text = cJSON_PrintUnformatted (req);
        wsc_send (c[i], text);
        free (text);
        cJSON_Delete (req);
    }
    char run_id[CONCURRENT_CLIENTS][80];
    int one = 1;
    for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
        const cJSON *r = wsc_wait (c[i], NULL, s_match_id, &one, WAIT_MS);
        cr_assert_not_null (r, "client %d: no reply to chat.run", i);
        char *dump = cJSON_PrintUnformatted (r);
        cr_assert_str_eq (s_type (r), "response", "client %d: %s", i, dump);
        free (dump);
        const char *rid = runs_at_str (r, "result.runId");
        cr_assert (rid && !strncmp (rid, "run-", 4), "client %d: bad runId", i);
        snprintf (run_id[i], sizeof (run_id[i]), "%s", rid);
    }
    //  Every client: its end, then the whole stream checked.  The end is
    //  awaited first so that a lost stream fails with a count, not a hang.
    for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
        const cJSON *end = wsc_wait_end (c[i], run_id[i], WAIT_MS * 2);
        if (!end) {
            cJSON *events = wsc_run_events (c[i], run_id[i]);
            cr_assert_fail ("client %d (%s): no chat.done after %d events", i, run_id[i],
                            cJSON_GetArraySize (events));
        }
        cJSON *events =
            s_check_run (c[i], key[i], run_id[i], message[i], CONCURRENT_WORDS, "stop");
        cJSON_Delete (events);
    }
    //  Exactly one chat.done each, even after a last round trip on every
    //  client (a late duplicate would be in by then).
    for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
        wsc_result (c[i], 2, "system.status", NULL);
        int ends = 0;
        run_match_t m = {"chat.done", run_id[i]};
        pthread_mutex_lock (&c[i]->lock);
        for (size_t k = 0; k < c[i]->n; k++)
            ends += c[i]->frames[k] && s_match_run (c[i]->frames[k], &m);
        pthread_mutex_unlock (&c[i]->lock);
        cr_assert_eq (ends, 1, "client %d got %d chat.done", i, ends);
    }
    for (int i = 0; i < CONCURRENT_CLIENTS; i++) {
        free (message[i]);
        wsc_close (&c[i]);
    }
}

//  Fails unless a and b have the same keys, and so on down every object
//  they share (values may differ: uptime and inflight move).
static void
s_assert_same_keys (const cJSON *a, const cJSON *b, const char *where)
{
    cr_assert_eq (cJSON_GetArraySize (a), cJSON_GetArraySize (b),
                  "%s: %d keys against %d", where, cJSON_GetArraySize (a),
                  cJSON_GetArraySize (b));
    const cJSON *x;
    cJSON_ArrayForEach (x, a)
    {
        const cJSON *y = cJSON_GetObjectItemCaseSensitive (b, x->string);
        cr_assert_not_null (y, "%s: %s is in one body only", where, x->string);
        cr_assert_eq (x->type & 0xff, y->type & 0xff, "%s.%s: types differ", where,
                      x->string);
        if (cJSON_IsObject (x)) {
            char inner[128];
            snprintf (inner, sizeof (inner), "%s.%s", where, x->string);
            s_assert_same_keys (x, y, inner);
        }
    }
}

Test (ws, system_status_has_the_body_of_get_status)
{
    opts_t o = {.limits = "\"rateLimit\":250,\"maxConcurrent\":7,"
                          "\"authFailures\":1000"};
    s_start (&o);
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    const cJSON *ws = wsc_result (c, 1, "system.status", NULL);
    http_resp_t r;
    runs_get ("/status", &r);
    cr_assert_eq (r.status, 200, "GET /status: %ld %s", r.status, r.body);
    cJSON *http = cJSON_Parse (r.body);
    cr_assert (cJSON_IsObject (http), "%s", r.body);
    char *dump = cJSON_PrintUnformatted (ws);
    //  The limits block that the WebSocket body once lacked, with the
    //  configured values in both.
    const cJSON *lim = cJSON_GetObjectItemCaseSensitive (ws, "limits");
    cr_assert (cJSON_IsObject (lim), "no limits in system.status: %s", dump);
    cr_assert_eq ((int) runs_at_num (ws, "limits.rateLimit"), 250, "%s", dump);
    cr_assert_eq ((int) runs_at_num (ws, "limits.maxConcurrent"), 7, "%s", dump);
    cr_assert_eq ((int) runs_at_num (http, "limits.maxConcurrent"), 7, "%s", r.body);
    //  The client count in both: this client is connected.
    cr_assert_eq ((int) runs_at_num (ws, "gateway.websocketClients"), 1, "%s", dump);
    cr_assert_eq ((int) runs_at_num (http, "gateway.websocketClients"), 1, "%s", r.body);
    s_assert_same_keys (http, ws, "status");
    //  Values that do not move are equal, not just present.
    const char *same[] = {"status", "version", "gateway.bind", "gateway.auth", NULL};
    for (int i = 0; same[i]; i++)
        cr_assert_str_eq (runs_at_str (ws, same[i]), runs_at_str (http, same[i]),
                          "%s differs", same[i]);
    cr_assert_eq ((int) runs_at_num (ws, "gateway.port"),
                  (int) runs_at_num (http, "gateway.port"));
    cJSON *wl = cJSON_Duplicate (lim, 1),
          *hl = cJSON_Duplicate (cJSON_GetObjectItemCaseSensitive (http, "limits"), 1);
    cr_assert (cJSON_Compare (wl, hl, true), "limits differ");
    cJSON_Delete (wl);
    cJSON_Delete (hl);
    free (dump);
    cJSON_Delete (http);
    http_resp_free (&r);
    wsc_close (&c);
}

//  A broker, one worker for system, ratelimit and run, two session workers
//  (each with its own store) and a gateway, as separate processes over
//  tcp://.  runs_env.srv.port is the gateway's, for wsc_open.
static void
s_cluster_start (void)
{
    mg_init_library (0);
    harness_tmpdir (s_cluster.dir, sizeof (s_cluster.dir));
    char path[256], requests[64], events[64];
    snprintf (path, sizeof (path), "%s/cluster.json", s_cluster.dir);
    //  40 words 50 ms apart: every run is still going when it is aborted.
    harness_write (path, "{\"auth\":{\"mode\":\"token\",\"token\":\"" MAIN_TOKEN "\"},"
                         "\"broker\":{\"heartbeatMs\":200,\"liveness\":3},"
                         "\"limits\":{\"rateLimit\":0,\"maxConcurrent\":100},"
                         "\"providers\":{\"local\":{\"echoDelayMs\":50}}}");
    static const char *const env[] = {"CLAWGATE_TOKEN=", "CLAWGATE_PASSWORD=",
                                      "CLAWGATE_AUTH=", "CLAWGATE_LOG_LEVEL=warn", NULL};
    cr_assert_eq (broker_start (&s_cluster.broker, path, env, requests, events), 0,
                  "broker did not start");
    char state[192];
    snprintf (state, sizeof (state), "%s/others", s_cluster.dir);
    cr_assert_eq (worker_start (&s_cluster.others, requests, "system,ratelimit,run", path,
                                state, env),
                  0, "the system/ratelimit/run worker did not start");
    for (int i = 0; i < 2; i++) {
        snprintf (state, sizeof (state), "%s/session%d", s_cluster.dir, i);
        cr_assert_eq (
            worker_start (&s_cluster.session[i], requests, "session", path, state, env),
            0, "session worker %d did not start", i);
    }
    char base[64], err[4096];
    snprintf (state, sizeof (state), "%s/gw", s_cluster.dir);
    cr_assert_eq (gateway_start (&s_cluster.gw, requests, state, path, env, base,
                                 sizeof (base), err, sizeof (err)),
                  0, "gateway did not start: %s", err);
    runs_env.srv.port = atoi (strrchr (base, ':') + 1);
    char url[128];
    snprintf (url, sizeof (url), "%s/ready", base);
    const char *auth[] = {"Authorization: Bearer " MAIN_TOKEN, NULL};
    cr_assert_geq (http_wait_status (url, auth, 200, 10000), 0,
                   "the cluster never became ready");
}

//  With two session workers a run lives on one of them.  The WebSocket
//  front sent its chat.run and chat.abort without a routing key, so they
//  went round-robin: an abort that reached the other worker answered
//  aborted:false and the run went on.  Five runs on five sessions,
//  aborted in the order they started: round-robin alone would send
//  every abort to the worker after the one that has the run.
Test (ws, abort_reaches_the_session_worker_that_has_the_run)
{
    s_cluster_start ();
    wsc_t *c = wsc_open_main ();
    s_assert_first_connected (c, NULL, 0);
    enum { RUNS = 5 };
    char *message = s_words ("slow", 40);
    char run_id[RUNS][80];
    int id = 1;
    for (int i = 0; i < RUNS; i++) {
        char key[32];
        snprintf (key, sizeof (key), "ws-keyed-%d", i);
        wsc_run (c, id++, key, message, NULL, run_id[i], sizeof (run_id[i]));
        run_match_t delta = {"chat.delta", run_id[i]};
        cr_assert_not_null (wsc_wait (c, NULL, s_match_run, &delta, WAIT_MS),
                            "run %d never started", i);
    }
    for (int i = 0; i < RUNS; i++) {
        char params[RUNS * 80 + 16];
        snprintf (params, sizeof (params), "{\"runId\":\"%s\"}", run_id[i]);
        const cJSON *res = wsc_result (c, id++, "chat.abort", params);
        cr_assert_str_eq (runs_str (res, "runId"), run_id[i]);
        cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (res, "aborted")),
                   "run %d: the abort missed its run's worker", i);
    }
    for (int i = 0; i < RUNS; i++) {
        const cJSON *end = wsc_wait_end (c, run_id[i], WAIT_MS);
        cr_assert_not_null (end, "run %d: no end", i);
        cr_assert_str_eq (s_type (end), "chat.done");
        cr_assert_str_eq (runs_at_str (end, "data.finishReason"), "aborted",
                          "run %d was not aborted", i);
    }
    //  Over now: a second abort of each is a response with aborted:false
    //  (docs/websocket.md#chatabort), from whichever worker it reaches.
    for (int i = 0; i < RUNS; i++) {
        char params[RUNS * 80 + 16];
        snprintf (params, sizeof (params), "{\"runId\":\"%s\"}", run_id[i]);
        const cJSON *res = wsc_result (c, id++, "chat.abort", params);
        cr_assert_str_eq (runs_str (res, "runId"), run_id[i]);
        cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (res, "aborted")),
                   "run %d: a finished run was aborted again", i);
    }
    free (message);
    wsc_close (&c);
}

//  Each WebSocket client holds a civetweb worker for as long as it stays:
//  clients may take all but gateway.reservedThreads, which stay for plain
//  HTTP (issue 16: WebSocket clients must not make HTTP unavailable).
Test (ws, websocket_clients_leave_the_reserved_workers_to_http)
{
    opts_t o = {0};
    o.threads = 8;
    o.gateway = "\"reservedThreads\":3";
    s_start (&o);
    wsc_t *held[5];
    for (int i = 0; i < 5; i++) {
        held[i] = wsc_open_main ();
        char id[64];
        s_assert_first_connected (held[i], id, sizeof (id));
    }
    //  The sixth is refused before the handshake, with a readable 503.
    raw_t r;
    char head[2048], body[2048] = "";
    int status = raw_open (&r, "/?token=" MAIN_TOKEN, "", 0, head, sizeof (head), body,
                           sizeof (body));
    cr_assert_eq (status, 503, "%s", head);
    cr_assert (!strcasestr (head, "Sec-WebSocket-Accept"), "%s", head);
    cr_assert (strstr (body, "service_unavailable"), "%s", body);
    raw_close (&r);
    //  HTTP still gets a worker at once, several times over.
    for (int i = 0; i < 20; i++) {
        http_resp_t resp;
        long long t0 = harness_now_ms ();
        runs_get ("/status", &resp);
        cr_assert_eq (resp.status, 200);
        cr_assert_lt (harness_now_ms () - t0, 5000, "/status took %lld ms",
                      harness_now_ms () - t0);
        http_resp_free (&resp);
    }
    //  A place that frees is taken again.
    wsc_close (&held[0]);
    long long until = harness_now_ms () + WAIT_MS;
    wsc_t *again = NULL;
    while (!again && harness_now_ms () < until) {
        again = wsc_open ("/?token=" MAIN_TOKEN, NULL, 0);
        if (!again)
            usleep (50000);
    }
    cr_assert_not_null (again, "the freed place was never given back");
    wsc_close (&again);
    for (int i = 1; i < 5; i++)
        wsc_close (&held[i]);
}
