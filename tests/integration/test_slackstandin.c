/*  =========================================================================
    test_slackstandin - cg_slackstandin, the Slack stand-in, checked on its
    own: Socket Mode (connections.open, hello, an event and its ack, a
    redelivery after the ack timeout, too_many_websockets, single-use
    tickets), the Events API driver (signatures checked by a small civetweb
    receiver here, retries on a 500), chat.postMessage with the sent log and
    its errors, the 429 knob, and the state file across a kill -9.
    =========================================================================
*/
#include <civetweb.h>
#include <criterion/criterion.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "slack.h"

static sl_standin_t s_sl;
static char s_dir[256];

static void
s_setup (void)
{
    harness_tmpdir (s_dir, sizeof (s_dir));
    mg_init_library (0);
}

static void
s_teardown (void)
{
    sl_stop (&s_sl, SIGTERM);
    harness_rmtree (s_dir);
}

TestSuite (slackstandin, .init = s_setup, .fini = s_teardown, .timeout = 30);

//  Starts the stand-in with a state file in s_dir and these options.
static void
s_start (const sl_options_t *opts)
{
    char state[300];
    snprintf (state, sizeof (state), "%s/slack.json", s_dir);
    cr_assert_eq (sl_start (&s_sl, state, opts), 0, "cg_slackstandin did not start");
}

//  A Web API call with token as Bearer and a JSON body.  Returns the
//  parsed answer (caller owns it); status and raw headers in *r_out when
//  it is not NULL (then the caller frees it).
static cJSON *
s_api (const char *method, const char *token, const char *json, http_resp_t *r_out)
{
    char url[256], auth[128];
    snprintf (url, sizeof (url), "%s/%s", s_sl.api, method);
    snprintf (auth, sizeof (auth), "Authorization: Bearer %s", token);
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    http_resp_t r;
    http_do ("POST", url, headers, json ? json : "{}", json ? strlen (json) : 2, &r);
    cJSON *root = cJSON_Parse (r.body);
    if (r_out)
        *r_out = r;
    else
        http_resp_free (&r);
    return root;
}

static const char *
s_str (cJSON *obj, const char *name)
{
    const char *v = cJSON_GetStringValue (cJSON_GetObjectItem (obj, name));
    return v ? v : "";
}

//  ---- A Socket Mode client -----------------------------------------------------------

#define WS_MAX 64

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char *texts[WS_MAX];  //  Text frames received, in order
    int count;
    int taken;  //  How many s_ws_next has returned
    int pings;  //  Ping frames seen
    bool closed;
    struct mg_connection *conn;
} ws_t;

static int
s_ws_data (struct mg_connection *conn, int bits, char *data, size_t len, void *arg)
{
    ws_t *ws = (ws_t *) arg;
    if ((bits & 0x0F) == MG_WEBSOCKET_OPCODE_PING) {
        pthread_mutex_lock (&ws->lock);
        ws->pings++;
        pthread_mutex_unlock (&ws->lock);
    }
    if ((bits & 0x0F) != MG_WEBSOCKET_OPCODE_TEXT)
        return 1;
    pthread_mutex_lock (&ws->lock);
    if (ws->count < WS_MAX)
        ws->texts[ws->count++] = strndup (data, len);
    pthread_cond_broadcast (&ws->changed);
    pthread_mutex_unlock (&ws->lock);
    return 1;
}

static void
s_ws_close (const struct mg_connection *conn, void *arg)
{
    ws_t *ws = (ws_t *) arg;
    pthread_mutex_lock (&ws->lock);
    ws->closed = true;
    pthread_cond_broadcast (&ws->changed);
    pthread_mutex_unlock (&ws->lock);
}

//  Asks apps.connections.open for a URL and returns its path (caller
//  frees it).
static char *
s_open_url (void)
{
    cJSON *root = s_api ("apps.connections.open", SL_APP_TOKEN, NULL, NULL);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (root, "ok")));
    const char *url = s_str (root, "url");
    char prefix[64];
    snprintf (prefix, sizeof (prefix), "ws://127.0.0.1:%d/link/?ticket=", s_sl.port);
    cr_assert (strncmp (url, prefix, strlen (prefix)) == 0, "url %s", url);
    char *path = strdup (strstr (url + 5, "/link/"));
    cJSON_Delete (root);
    return path;
}

//  Connects a WebSocket client to path.  Returns 0 or -1.
static int
s_ws_connect (ws_t *ws, const char *path)
{
    memset (ws, 0, sizeof (*ws));
    pthread_mutex_init (&ws->lock, NULL);
    pthread_cond_init (&ws->changed, NULL);
    char err[256] = "";
    ws->conn = mg_connect_websocket_client ("127.0.0.1", s_sl.port, 0, err, sizeof (err),
                                            path, NULL, s_ws_data, s_ws_close, ws);
    return ws->conn ? 0 : -1;
}

//  The next text frame as JSON (caller owns it), or NULL after timeout_ms.
static cJSON *
s_ws_next (ws_t *ws, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    pthread_mutex_lock (&ws->lock);
    while (ws->taken >= ws->count && harness_now_ms () < deadline) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_nsec += 20000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait (&ws->changed, &ws->lock, &until);
    }
    cJSON *root = ws->taken < ws->count ? cJSON_Parse (ws->texts[ws->taken++]) : NULL;
    pthread_mutex_unlock (&ws->lock);
    return root;
}

static bool
s_ws_wait_closed (ws_t *ws, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    pthread_mutex_lock (&ws->lock);
    while (!ws->closed && harness_now_ms () < deadline) {
        pthread_mutex_unlock (&ws->lock);
        usleep (10000);
        pthread_mutex_lock (&ws->lock);
    }
    bool closed = ws->closed;
    pthread_mutex_unlock (&ws->lock);
    return closed;
}

static void
s_ws_ack (ws_t *ws, const char *envelope_id)
{
    char text[128];
    snprintf (text, sizeof (text), "{\"envelope_id\":\"%s\"}", envelope_id);
    mg_websocket_client_write (ws->conn, MG_WEBSOCKET_OPCODE_TEXT, text, strlen (text));
}

static void
s_ws_free (ws_t *ws)
{
    if (ws->conn)
        mg_close_connection (ws->conn);
    ws->conn = NULL;
    for (int i = 0; i < ws->count; i++)
        free (ws->texts[i]);
}

//  Opens a socket and reads its hello.
static void
s_ws_open (ws_t *ws)
{
    char *path = s_open_url ();
    cr_assert_eq (s_ws_connect (ws, path), 0, "no upgrade for %s", path);
    free (path);
    cJSON *hello = s_ws_next (ws, 3000);
    cr_assert_str_eq (s_str (hello, "type"), "hello");
    cr_assert_str_eq (s_str (cJSON_GetObjectItem (hello, "connection_info"), "app_id"),
                      "A0001");
    cJSON_Delete (hello);
}

//  ---- Socket Mode ------------------------------------------------------------------

Test (slackstandin, hello_event_ack)
{
    s_start (&(sl_options_t){.ack_ms = 2000});
    cJSON *root = s_api ("auth.test", SL_BOT_TOKEN, NULL, NULL);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (root, "ok")));
    cr_assert_str_eq (s_str (root, "user_id"), SL_BOT_USER);
    cr_assert_str_eq (s_str (root, "bot_id"), SL_BOT_ID);
    cJSON_Delete (root);
    root = s_api ("auth.test", "xoxb-wrong", NULL, NULL);
    cr_assert_str_eq (s_str (root, "error"), "invalid_auth");
    cJSON_Delete (root);
    root = s_api ("apps.connections.open", SL_BOT_TOKEN, NULL, NULL);
    cr_assert_str_eq (s_str (root, "error"), "not_allowed_token_type");
    cJSON_Delete (root);

    char *path = s_open_url ();
    ws_t ws;
    cr_assert_eq (s_ws_connect (&ws, path), 0);
    cJSON *hello = s_ws_next (&ws, 3000);
    cr_assert_str_eq (s_str (hello, "type"), "hello");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (hello, "num_connections")),
                  1);
    cJSON_Delete (hello);
    //  The ticket is spent.
    ws_t again;
    cr_assert_neq (s_ws_connect (&again, path), 0);
    free (path);
    cr_assert_eq (sl_wait_sockets (&s_sl, 1, 2000), 0);

    char event_id[32];
    root = sl_event (
        &s_sl, "{\"kind\":\"dm\",\"channel\":\"D42\",\"user\":\"U7\",\"text\":\"hi\"}",
        event_id, sizeof (event_id));
    cr_assert (root && event_id[0] == 'E' && event_id[1] == 'v');
    char envelope_id[48];
    snprintf (envelope_id, sizeof (envelope_id), "%s", s_str (root, "envelope_id"));
    cJSON_Delete (root);

    cJSON *env = s_ws_next (&ws, 3000);
    cr_assert_str_eq (s_str (env, "type"), "events_api");
    cr_assert_str_eq (s_str (env, "envelope_id"), envelope_id);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (env, "retry_attempt")), 0);
    cJSON *payload = cJSON_GetObjectItem (env, "payload");
    cr_assert_str_eq (s_str (payload, "type"), "event_callback");
    cr_assert_str_eq (s_str (payload, "event_id"), event_id);
    cr_assert_str_eq (s_str (payload, "team_id"), SL_TEAM);
    cJSON *auth = cJSON_GetArrayItem (cJSON_GetObjectItem (payload, "authorizations"), 0);
    cr_assert_str_eq (s_str (auth, "user_id"), SL_BOT_USER);
    cJSON *event = cJSON_GetObjectItem (payload, "event");
    cr_assert_str_eq (s_str (event, "type"), "message");
    cr_assert_str_eq (s_str (event, "channel_type"), "im");
    cr_assert_str_eq (s_str (event, "channel"), "D42");
    cr_assert_str_eq (s_str (event, "user"), "U7");
    cr_assert_str_eq (s_str (event, "text"), "hi");
    cr_assert_str_eq (s_str (event, "ts"), s_str (event, "event_ts"));
    s_ws_ack (&ws, envelope_id);
    cJSON_Delete (env);
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 1, 2000), 0);
    cr_assert_eq (sl_count (&s_sl, "pending"), 0);
    cr_assert_eq (sl_count (&s_sl, "connections_open"), 2);

    //  A mention with both events: an app_mention and a message, same ts.
    root =
        sl_event (&s_sl, "{\"kind\":\"mention\",\"text\":\"yo\",\"both\":true}", NULL, 0);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (root, "event_ids")), 2);
    cJSON_Delete (root);
    cJSON *first = s_ws_next (&ws, 3000), *second = s_ws_next (&ws, 3000);
    cJSON *e1 = cJSON_GetObjectItem (cJSON_GetObjectItem (first, "payload"), "event");
    cJSON *e2 = cJSON_GetObjectItem (cJSON_GetObjectItem (second, "payload"), "event");
    cr_assert_str_eq (s_str (e1, "type"), "app_mention");
    cr_assert_str_eq (s_str (e1, "text"), "<@UBOT> yo");
    cr_assert_str_eq (s_str (e2, "type"), "message");
    cr_assert_str_eq (s_str (e1, "ts"), s_str (e2, "ts"));
    s_ws_ack (&ws, s_str (first, "envelope_id"));
    s_ws_ack (&ws, s_str (second, "envelope_id"));
    cJSON_Delete (first);
    cJSON_Delete (second);
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 3, 2000), 0);
    s_ws_free (&ws);
    cr_assert_eq (sl_wait_sockets (&s_sl, 0, 2000), 0);
}

Test (slackstandin, unacked_envelope_redelivered)
{
    s_start (&(sl_options_t){.ack_ms = 300});
    ws_t ws;
    s_ws_open (&ws);
    cJSON *root = sl_event (&s_sl, "{\"kind\":\"message\",\"text\":\"again\"}", NULL, 0);
    char envelope_id[48];
    snprintf (envelope_id, sizeof (envelope_id), "%s", s_str (root, "envelope_id"));
    cJSON_Delete (root);
    cJSON *env = s_ws_next (&ws, 2000);
    cr_assert_str_eq (s_str (env, "envelope_id"), envelope_id);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (env, "retry_attempt")), 0);
    cJSON_Delete (env);
    long long start = harness_now_ms ();
    env = s_ws_next (&ws, 2000);
    cr_assert (harness_now_ms () - start >= 200);
    cr_assert_str_eq (s_str (env, "envelope_id"), envelope_id);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (env, "retry_attempt")), 1);
    cr_assert_str_eq (s_str (env, "retry_reason"), "timeout");
    s_ws_ack (&ws, envelope_id);
    cJSON_Delete (env);
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 1, 2000), 0);
    cr_assert_eq (sl_count (&s_sl, "redeliveries"), 1);
    s_ws_free (&ws);
}

Test (slackstandin, too_many_websockets_and_disconnect)
{
    s_start (&(sl_options_t){.max_sockets = 1, .grace_ms = 200});
    ws_t one, two;
    s_ws_open (&one);
    char *path = s_open_url ();
    cr_assert_eq (s_ws_connect (&two, path), 0);
    free (path);
    cJSON *msg = s_ws_next (&two, 2000);
    cr_assert_str_eq (s_str (msg, "type"), "disconnect");
    cr_assert_str_eq (s_str (msg, "reason"), "too_many_websockets");
    cJSON_Delete (msg);
    cr_assert (s_ws_wait_closed (&two, 2000));
    cr_assert_eq (sl_count (&s_sl, "rejected_sockets"), 1);
    cr_assert_eq (sl_count (&s_sl, "sockets_open"), 1);

    //  A warning, then the close once the grace is over.
    cr_assert_eq (sl_fault (&s_sl, "{\"kind\":\"warning\"}"), 0);
    msg = s_ws_next (&one, 2000);
    cr_assert_str_eq (s_str (msg, "type"), "disconnect");
    cr_assert_str_eq (s_str (msg, "reason"), "warning");
    cJSON_Delete (msg);
    cr_assert (s_ws_wait_closed (&one, 3000));
    cr_assert_eq (sl_wait_sockets (&s_sl, 0, 2000), 0);
    s_ws_free (&one);
    s_ws_free (&two);
}

Test (slackstandin, deaf_socket_eats_then_redelivered)
{
    s_start (&(sl_options_t){.ack_ms = 300, .ping_ms = 100});
    ws_t deaf, live;
    s_ws_open (&deaf);
    cr_assert_eq (sl_fault (&s_sl, "{\"kind\":\"deaf\",\"socket\":1}"), 0);
    s_ws_open (&live);
    usleep (400000);
    pthread_mutex_lock (&live.lock);
    int live_pings = live.pings;
    pthread_mutex_unlock (&live.lock);
    pthread_mutex_lock (&deaf.lock);
    int deaf_pings = deaf.pings;
    pthread_mutex_unlock (&deaf.lock);
    cr_assert_eq (deaf_pings, 0);
    cr_assert (live_pings >= 2, "%d pings", live_pings);

    //  To the deaf socket: eaten; then dropped, the redelivery goes to the other.
    cJSON *root = sl_event (&s_sl, "{\"kind\":\"dm\",\"socket\":1}", NULL, 0);
    char envelope_id[48];
    snprintf (envelope_id, sizeof (envelope_id), "%s", s_str (root, "envelope_id"));
    cJSON_Delete (root);
    cr_assert_eq (sl_wait_count (&s_sl, "delivered", 1, 2000), 0);
    cr_assert_eq (sl_fault (&s_sl, "{\"kind\":\"drop\",\"socket\":1}"), 0);
    cr_assert (s_ws_wait_closed (&deaf, 2000));
    cJSON *env = s_ws_next (&live, 3000);
    cr_assert_str_eq (s_str (env, "envelope_id"), envelope_id);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (env, "retry_attempt")), 1);
    cJSON_Delete (env);
    s_ws_ack (&live, envelope_id);
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 1, 2000), 0);
    cr_assert_eq (sl_count (&s_sl, "sockets_open"), 1);
    s_ws_free (&deaf);
    s_ws_free (&live);
}

//  ---- Events API driver ------------------------------------------------------------

typedef struct {
    pthread_mutex_t lock;
    int fail_first;   //  Answer 500 to this many requests
    int slow_first;   //  Sleep this many ms before the first answer
    long long at[8];  //  When each request came (monotonic ms)
    int requests;
    bool signature_ok[8];
    int retry_num[8];
    char retry_reason[8][32];
    char body[8][2048];
} receiver_t;

static int
s_receive (struct mg_connection *conn, void *arg)
{
    receiver_t *rx = (receiver_t *) arg;
    char body[2048] = "";
    int len = mg_read (conn, body, sizeof (body) - 1);
    body[len > 0 ? len : 0] = 0;
    const char *ts = mg_get_header (conn, "X-Slack-Request-Timestamp");
    const char *sig = mg_get_header (conn, "X-Slack-Signature");
    const char *num = mg_get_header (conn, "X-Slack-Retry-Num");
    const char *reason = mg_get_header (conn, "X-Slack-Retry-Reason");
    char want[72] = "";
    if (ts)
        sl_signature (SL_SIGNING_SECRET, ts, body, strlen (body), want);
    pthread_mutex_lock (&rx->lock);
    int i = rx->requests++;
    bool fail = i < rx->fail_first;
    int slow = i == 0 ? rx->slow_first : 0;
    if (i < 8)
        rx->at[i] = harness_now_ms ();
    if (i < 8) {
        rx->signature_ok[i] = ts && sig && strcmp (sig, want) == 0
                              && labs (atol (ts) - (long) time (NULL)) < 300;
        rx->retry_num[i] = num ? atoi (num) : 0;
        snprintf (rx->retry_reason[i], 32, "%s", reason ? reason : "");
        snprintf (rx->body[i], 2048, "%s", body);
    }
    pthread_mutex_unlock (&rx->lock);
    if (slow)
        usleep ((useconds_t) slow * 1000);
    if (fail) {
        mg_printf (conn, "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n"
                         "Connection: close\r\n\r\nfail");
        return 500;
    }
    if (strstr (body, "url_verification")) {
        cJSON *root = cJSON_Parse (body);
        char answer[256];
        snprintf (answer, sizeof (answer), "{\"challenge\":\"%s\"}",
                  s_str (root, "challenge"));
        cJSON_Delete (root);
        mg_printf (conn,
                   "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                   "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                   strlen (answer), answer);
        return 200;
    }
    mg_printf (conn,
               "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
    return 200;
}

static struct mg_context *
s_receiver_start (receiver_t *rx, int *port)
{
    pthread_mutex_init (&rx->lock, NULL);
    const char *options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "8", NULL};
    struct mg_callbacks callbacks;
    memset (&callbacks, 0, sizeof (callbacks));
    struct mg_context *ctx = mg_start (&callbacks, NULL, options);
    cr_assert (ctx);
    mg_set_request_handler (ctx, "/hook", s_receive, rx);
    struct mg_server_port sp[2];
    cr_assert (mg_get_server_ports (ctx, 2, sp) > 0);
    *port = sp[0].port;
    return ctx;
}

Test (slackstandin, http_driver_signs_and_retries)
{
    receiver_t rx;
    memset (&rx, 0, sizeof (rx));
    rx.fail_first = 1;
    int port = 0;
    struct mg_context *ctx = s_receiver_start (&rx, &port);
    char target[128];
    snprintf (target, sizeof (target), "http://127.0.0.1:%d/hook", port);
    s_start (&(sl_options_t){.retry_delays = "0,100,200", .target = target});

    cJSON *root = sl_event (&s_sl,
                            "{\"kind\":\"message\",\"text\":\"pushed\",\"via\":\"http\","
                            "\"wait\":true}",
                            NULL, 0);
    cr_assert (root);
    cJSON *push = cJSON_GetObjectItem (root, "push");
    cr_assert_str_eq (s_str (push, "outcome"), "ok");
    cJSON *attempts = cJSON_GetObjectItem (push, "attempts");
    cr_assert_eq (cJSON_GetArraySize (attempts), 2);
    cr_assert_eq (cJSON_GetNumberValue (
                      cJSON_GetObjectItem (cJSON_GetArrayItem (attempts, 0), "status")),
                  500);
    cJSON_Delete (root);
    cr_assert_eq (rx.requests, 2);
    cr_assert (rx.signature_ok[0] && rx.signature_ok[1]);
    cr_assert_eq (rx.retry_num[0], 0);
    cr_assert_eq (rx.retry_num[1], 1);
    cr_assert_str_eq (rx.retry_reason[1], "http_error");
    cr_assert_str_eq (rx.body[0], rx.body[1]);
    cr_assert (strstr (rx.body[0], "\"type\":\"event_callback\""));

    //  A forged signature and a stale timestamp do not verify.
    root = sl_event (&s_sl,
                     "{\"kind\":\"dm\",\"via\":\"http\",\"forge\":true,\"wait\":true}",
                     NULL, 0);
    cJSON_Delete (root);
    root = sl_event (&s_sl,
                     "{\"kind\":\"dm\",\"via\":\"http\",\"stale\":true,\"wait\":true}",
                     NULL, 0);
    cJSON_Delete (root);
    cr_assert_eq (rx.requests, 4);
    cr_assert (!rx.signature_ok[2] && !rx.signature_ok[3]);

    //  url_verification: the driver hands back the target's answer.
    root = sl_event (&s_sl, "{\"kind\":\"url_verification\",\"challenge\":\"abc123\"}",
                     NULL, 0);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (root, "status")), 200);
    cr_assert_str_eq (s_str (root, "body"), "{\"challenge\":\"abc123\"}");
    cJSON_Delete (root);
    cr_assert (rx.signature_ok[4]);
    mg_stop (ctx);
}

Test (slackstandin, http_timeout_retry_overlaps)
{
    receiver_t rx;
    memset (&rx, 0, sizeof (rx));
    rx.slow_first = 800;
    int port = 0;
    struct mg_context *ctx = s_receiver_start (&rx, &port);
    char target[128];
    snprintf (target, sizeof (target), "http://127.0.0.1:%d/hook", port);
    s_start (&(sl_options_t){.http_timeout_ms = 300, .retry_delays = "0,100,200"});
    char body[256];
    snprintf (body, sizeof (body),
              "{\"kind\":\"dm\",\"via\":\"http\",\"target\":\"%s\",\"wait\":true}",
              target);
    cJSON *root = sl_event (&s_sl, body, NULL, 0);
    cJSON *push = cJSON_GetObjectItem (root, "push");
    cr_assert_str_eq (s_str (push, "outcome"), "ok");
    cr_assert_eq (rx.requests, 2);
    cr_assert_eq (rx.retry_num[1], 1);
    cr_assert_str_eq (rx.retry_reason[1], "http_timeout");
    cr_assert (rx.at[1] - rx.at[0] < 700, "the retry waited for the first: %lld ms",
               rx.at[1] - rx.at[0]);
    cJSON *slow = cJSON_GetArrayItem (cJSON_GetObjectItem (push, "attempts"), 1);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (slow, "timed_out")));
    cJSON_Delete (root);
    mg_stop (ctx);
}

//  ---- Web API ------------------------------------------------------------------

Test (slackstandin, post_message_sent_log_and_429)
{
    s_start (&(sl_options_t){.max_text = 100});
    http_resp_t r;
    cJSON *root =
        s_api ("chat.postMessage", SL_BOT_TOKEN,
               "{\"channel\":\"C9\",\"text\":\"one\",\"thread_ts\":\"111.000001\"}", &r);
    cr_assert_eq (r.status, 200);
    http_resp_free (&r);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (root, "ok")));
    char ts[32];
    snprintf (ts, sizeof (ts), "%s", s_str (root, "ts"));
    cr_assert (strchr (ts, '.'));
    cJSON_Delete (root);
    root = s_api ("chat.postMessage", SL_BOT_TOKEN,
                  "{\"channel\":\"C9\",\"text\":\"two\"}", NULL);
    cr_assert (strcmp (s_str (root, "ts"), ts) != 0);
    cJSON_Delete (root);

    char long_text[200];
    memset (long_text, 'x', 150);
    long_text[150] = 0;
    char body[300];
    snprintf (body, sizeof (body), "{\"channel\":\"C9\",\"text\":\"%s\"}", long_text);
    root = s_api ("chat.postMessage", SL_BOT_TOKEN, body, NULL);
    cr_assert_str_eq (s_str (root, "error"), "msg_too_long");
    cJSON_Delete (root);

    cr_assert_eq (sl_fault (&s_sl,
                            "{\"method\":\"chat.postMessage\",\"kind\":\"ratelimited\","
                            "\"retry_after\":7}"),
                  0);
    root = s_api ("chat.postMessage", SL_BOT_TOKEN, "{\"channel\":\"C9\",\"text\":\"x\"}",
                  &r);
    cr_assert_eq (r.status, 429);
    cr_assert_eq (http_header_long (r.headers, "Retry-After"), 7);
    cr_assert_str_eq (s_str (root, "error"), "ratelimited");
    http_resp_free (&r);
    cJSON_Delete (root);
    cr_assert_eq (sl_fault (&s_sl, "{\"method\":\"chat.postMessage\",\"kind\":"
                                   "\"channel_not_found\"}"),
                  0);
    root = s_api ("chat.postMessage", SL_BOT_TOKEN, "{\"channel\":\"C9\",\"text\":\"x\"}",
                  &r);
    cr_assert_eq (r.status, 200);
    cr_assert_str_eq (s_str (root, "error"), "channel_not_found");
    http_resp_free (&r);
    cJSON_Delete (root);

    cr_assert_eq (sl_wait_sent (&s_sl, "C9", NULL, 2, 1000), 0);
    cJSON *sent = sl_sent (&s_sl, "C9", "111.000001");
    cJSON *messages = cJSON_GetObjectItem (sent, "messages");
    cr_assert_eq (cJSON_GetArraySize (messages), 1);
    cr_assert_str_eq (s_str (cJSON_GetArrayItem (messages, 0), "text"), "one");
    cJSON_Delete (sent);
    cr_assert_eq (sl_count (&s_sl, "chat.postMessage"), 5);
}

Test (slackstandin, state_survives_kill)
{
    s_start (&(sl_options_t){.ack_ms = 5000});
    cJSON *root = s_api ("chat.postMessage", SL_BOT_TOKEN,
                         "{\"channel\":\"C5\",\"text\":\"kept\"}", NULL);
    char ts[32];
    snprintf (ts, sizeof (ts), "%s", s_str (root, "ts"));
    cJSON_Delete (root);
    //  No socket: the envelope waits, unacked.
    root = sl_event (&s_sl, "{\"kind\":\"dm\",\"text\":\"waiting\"}", NULL, 0);
    char envelope_id[48];
    snprintf (envelope_id, sizeof (envelope_id), "%s", s_str (root, "envelope_id"));
    cJSON_Delete (root);

    sl_stop (&s_sl, SIGKILL);
    cr_assert_eq (sl_restart (&s_sl), 0);
    cJSON *sent = sl_sent (&s_sl, "C5", NULL);
    cJSON *first = cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0);
    cr_assert_str_eq (s_str (first, "text"), "kept");
    cJSON_Delete (sent);
    root = s_api ("chat.postMessage", SL_BOT_TOKEN,
                  "{\"channel\":\"C5\",\"text\":\"new\"}", NULL);
    cr_assert (strcmp (s_str (root, "ts"), ts) > 0, "ts went back");
    cJSON_Delete (root);

    ws_t ws;
    s_ws_open (&ws);
    cJSON *env = s_ws_next (&ws, 3000);
    cr_assert_str_eq (s_str (env, "envelope_id"), envelope_id);
    cJSON_Delete (env);
    s_ws_ack (&ws, envelope_id);
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 1, 2000), 0);
    s_ws_free (&ws);
}
