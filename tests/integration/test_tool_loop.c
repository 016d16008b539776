/*  =========================================================================
    test_tool_loop - the agent's tool loop end to end: model -> tool.call ->
    browser (real headless Chromium) -> tool.result -> model -> final text,
    over SSE and over the WebSocket, with the steps stored in the session

    The model is the OpenAI stand-in's "tool" model: it calls the first tool
    it is offered (browser_navigate) with the user's message as arguments
    when that message is a JSON object, and answers "Tool said: <result>"
    once the tool result comes back.  The page is served by this test on
    loopback.
    =========================================================================
*/
#include "runs.h"

#include <civetweb.h>
#include <pthread.h>

#define PAGE_TITLE "Tool Loop Page"

static struct mg_context *s_pages;  //  The test's own web server
static int s_page_port;

static int
s_page (struct mg_connection *conn, void *cbdata)
{
    static const char body[] =
        "<!doctype html><html><head><title>" PAGE_TITLE "</title></head>"
        "<body><h1 id=\"hello\">Hello, tools</h1></body></html>";
    mg_printf (conn,
               "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
               "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
               sizeof (body) - 1, body);
    return 200;
}

static void
s_setup (void)
{
    curl_global_init (CURL_GLOBAL_ALL);
    const char *options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "4", NULL};
    struct mg_callbacks cb;
    memset (&cb, 0, sizeof (cb));
    s_pages = mg_start (&cb, NULL, options);
    cr_assert_not_null (s_pages, "the page server did not start");
    mg_set_request_handler (s_pages, "/page", s_page, NULL);
    struct mg_server_port ports[2];
    cr_assert (mg_get_server_ports (s_pages, 2, ports) >= 1);
    s_page_port = ports[0].port;
    cr_assert (access ("/usr/bin/chromium", X_OK) == 0,
               "/usr/bin/chromium is missing: `make test` installs it");
    runs_standin_start ();
    char config[2048];
    snprintf (config, sizeof (config),
              "{\"gateway\":{\"drainTimeoutMs\":3000},"
              "\"limits\":{\"rateLimit\":0,\"maxConcurrent\":100},"
              "\"providers\":{\"openai\":{\"type\":\"openai\",\"baseUrl\":"
              "\"%s/v1\",\"apiKey\":\"" OPENAI_KEY "\",\"models\":[\"tool\"]}},"
              "\"agents\":{\"web\":{\"model\":\"openai/tool\","
              "\"tools\":[\"browser\"],\"maxToolSteps\":3}}}",
              runs_env.sbase);
    const char *env[] = {"OPENAI_API_KEY=", "OPENAI_BASE_URL=", "ANTHROPIC_API_KEY=",
                         "ANTHROPIC_BASE_URL=", NULL};
    cr_assert_eq (served_start (&runs_env.srv, config, env), 0,
                  "clawgate serve did not start");
    snprintf (runs_env.auth, sizeof (runs_env.auth), "Authorization: Bearer %s",
              runs_env.srv.token);
}

static void
s_teardown (void)
{
    runs_stop_all ();
    if (s_pages)
        mg_stop (s_pages);
    s_pages = NULL;
}

TestSuite (tool_loop, .init = s_setup, .fini = s_teardown, .timeout = 120);

//  The message that makes the "tool" model navigate to our page.
static void
s_message (char *buf, size_t cap)
{
    snprintf (buf, cap, "{\\\"url\\\":\\\"http://127.0.0.1:%d/page\\\"}", s_page_port);
}

//  The stored transcript: question, the tool-call turn, the tool result,
//  the answer.
static void
s_assert_stored (const char *key, const char *run_id)
{
    char path[128];
    snprintf (path, sizeof (path), "/v1/sessions/%s", key);
    http_resp_t r;
    runs_get (path, &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    cJSON *s = runs_json (&r);
    http_resp_free (&r);
    cr_assert_eq ((int) runs_at_num (s, "messageCount"), 4, "%s",
                  cJSON_PrintUnformatted (s));
    cr_assert_str_eq (runs_at_str (s, "messages.0.role"), "user");
    cr_assert_str_eq (runs_at_str (s, "messages.1.role"), "assistant");
    cr_assert_str_eq (runs_at_str (s, "messages.1.toolCalls.0.function.name"),
                      "browser_navigate");
    cr_assert_str_eq (runs_at_str (s, "messages.2.role"), "tool");
    cr_assert (strstr (runs_at_str (s, "messages.2.content"), PAGE_TITLE),
               "tool message: %s", runs_at_str (s, "messages.2.content"));
    cr_assert_str_eq (runs_at_str (s, "messages.2.toolCallId"),
                      runs_at_str (s, "messages.1.toolCalls.0.id"));
    cr_assert_str_eq (runs_at_str (s, "messages.3.role"), "assistant");
    cr_assert_str_eq (runs_at_str (s, "messages.3.finishReason"), "stop");
    cr_assert (strstr (runs_at_str (s, "messages.3.content"), PAGE_TITLE));
    for (int i = 0; i < 4; i++) {
        char p[48];
        snprintf (p, sizeof (p), "messages.%d.runId", i);
        cr_assert_str_eq (runs_at_str (s, p), run_id);
    }
    cJSON_Delete (s);
}

Test (tool_loop, sse_model_tool_browser_model_in_order_and_stored)
{
    char msg[256], body[512];
    s_message (msg, sizeof (msg));
    snprintf (body, sizeof (body),
              "{\"message\":\"%s\",\"sessionKey\":\"tl-sse\",\"agentId\":\"web\"}", msg);
    http_resp_t r;
    runs_post ("/v1/agent/run/stream", body, &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    cJSON *frames = runs_parse_frames (r.body);
    http_resp_free (&r);
    int at_call = -1, at_result = -1, at_delta = -1, at_done = -1, i = 0;
    char text[4096] = "";
    const char *run_id = NULL;
    for (const cJSON *f = frames->child; f; f = f->next, i++) {
        const char *ev = runs_str (f, "event");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive (f, "data");
        run_id = runs_str (d, "runId") ? runs_str (d, "runId") : run_id;
        if (!strcmp (ev, "tool.call")) {
            cr_assert_eq (at_call, -1, "two tool.call frames");
            at_call = i;
            cr_assert_str_eq (runs_str (d, "tool"), "browser_navigate");
            char want[96];
            snprintf (want, sizeof (want), "http://127.0.0.1:%d/page", s_page_port);
            cr_assert_str_eq (runs_at_str (d, "params.url"), want);
            cr_assert (runs_str (d, "callId") && *runs_str (d, "callId"));
        }
        else if (!strcmp (ev, "tool.result")) {
            at_result = i;
            cr_assert_str_eq (runs_str (d, "tool"), "browser_navigate");
            cr_assert_str_eq (runs_at_str (d, "result.title"), PAGE_TITLE, "result: %s",
                              cJSON_PrintUnformatted (d));
            cr_assert_eq ((int) runs_at_num (d, "result.status"), 200);
        }
        else if (!strcmp (ev, "delta")) {
            if (at_delta < 0)
                at_delta = i;
            strncat (text, runs_str (d, "delta"), sizeof (text) - strlen (text) - 1);
        }
        else if (!strcmp (ev, "done"))
            at_done = i;
        else
            cr_assert_fail ("unexpected frame %s", ev);
    }
    cr_assert (at_call >= 0 && at_result > at_call && at_delta > at_result
                   && at_done > at_delta,
               "order: call %d, result %d, first delta %d, done %d", at_call, at_result,
               at_delta, at_done);
    cr_assert (strstr (text, "Tool said:") && strstr (text, PAGE_TITLE), "final text: %s",
               text);
    //  The model's second request carried the call and its result.
    cJSON *last = runs_last ();
    const cJSON *msgs = runs_at (last, "body.messages");
    int n = cJSON_GetArraySize (msgs);
    cr_assert (n >= 3);
    cr_assert_str_eq (runs_str (cJSON_GetArrayItem (msgs, n - 1), "role"), "tool");
    cr_assert (
        strstr (runs_str (cJSON_GetArrayItem (msgs, n - 1), "content"), PAGE_TITLE));
    cr_assert (cJSON_IsArray (runs_at (cJSON_GetArrayItem (msgs, n - 2), "tool_calls")));
    cJSON_Delete (last);
    s_assert_stored ("tl-sse", run_id);
    cJSON_Delete (frames);
}

//  ---- The same over the WebSocket ----------------------------------------------------

typedef struct {
    pthread_mutex_t lock;
    cJSON *frames;  //  Every text frame, parsed
} ws_log_t;

static int
s_ws_data (struct mg_connection *conn, int bits, char *data, size_t len, void *arg)
{
    ws_log_t *log = (ws_log_t *) arg;
    if ((bits & 0x0f) != MG_WEBSOCKET_OPCODE_TEXT)
        return 1;
    cJSON *j = cJSON_ParseWithLength (data, len);
    if (j) {
        pthread_mutex_lock (&log->lock);
        cJSON_AddItemToArray (log->frames, j);
        pthread_mutex_unlock (&log->lock);
    }
    return 1;
}

static void
s_ws_close (const struct mg_connection *conn, void *arg)
{
}

//  Waits until a frame of type (and runId, if given) arrived; returns its
//  index in log->frames, or -1.
static int
s_ws_wait (ws_log_t *log, const char *type, int timeout_ms)
{
    long long until = harness_now_ms () + timeout_ms;
    while (harness_now_ms () < until) {
        pthread_mutex_lock (&log->lock);
        int i = 0, found = -1;
        for (const cJSON *f = log->frames->child; f; f = f->next, i++)
            if (runs_str (f, "type") && !strcmp (runs_str (f, "type"), type)) {
                found = i;
                break;
            }
        pthread_mutex_unlock (&log->lock);
        if (found >= 0)
            return found;
        usleep (20000);
    }
    return -1;
}

Test (tool_loop, websocket_sees_tool_events_in_order)
{
    ws_log_t log;
    pthread_mutex_init (&log.lock, NULL);
    log.frames = cJSON_CreateArray ();
    char path[256], err[256] = "";
    snprintf (path, sizeof (path), "/?token=%s", runs_env.srv.token);
    struct mg_connection *ws =
        mg_connect_websocket_client ("127.0.0.1", runs_env.srv.port, 0, err, sizeof (err),
                                     path, NULL, s_ws_data, s_ws_close, &log);
    cr_assert_not_null (ws, "WebSocket connect: %s", err);
    cr_assert_geq (s_ws_wait (&log, "connected", 10000), 0);
    char msg[256], req[512];
    s_message (msg, sizeof (msg));
    snprintf (req, sizeof (req),
              "{\"method\":\"chat.run\",\"id\":1,\"params\":{\"message\":\"%s\","
              "\"sessionKey\":\"tl-ws\",\"options\":{\"agentId\":\"web\"}}}",
              msg);
    mg_websocket_client_write (ws, MG_WEBSOCKET_OPCODE_TEXT, req, strlen (req));
    int done = s_ws_wait (&log, "chat.done", 60000);
    cr_assert_geq (done, 0, "no chat.done");
    pthread_mutex_lock (&log.lock);
    int call = -1, result = -1, delta = -1, i = 0;
    long long last_seq = 0;
    const char *run_id = NULL;
    for (const cJSON *f = log.frames->child; f; f = f->next, i++) {
        const char *t = runs_str (f, "type");
        const cJSON *d = cJSON_GetObjectItemCaseSensitive (f, "data");
        if (!strcmp (t, "response"))
            run_id = runs_at_str (f, "result.runId");
        if (!strncmp (t, "chat.", 5) || !strncmp (t, "tool.", 5)) {
            long long seq = (long long) runs_at_num (f, "data.seq");
            cr_assert_gt (seq, last_seq, "%s seq %lld after %lld", t, seq, last_seq);
            last_seq = seq;
            cr_assert_str_eq (runs_str (d, "runId"), run_id);
        }
        if (!strcmp (t, "tool.call") && call < 0)
            call = i;
        if (!strcmp (t, "tool.result") && result < 0) {
            result = i;
            cr_assert_str_eq (runs_at_str (d, "result.title"), PAGE_TITLE);
        }
        if (!strcmp (t, "chat.delta") && delta < 0 && runs_str (d, "delta")
            && *runs_str (d, "delta") && result >= 0)
            delta = i;
    }
    cr_assert (call >= 0 && result > call && delta > result && done > delta,
               "order: call %d, result %d, delta %d, done %d", call, result, delta, done);
    const cJSON *d =
        cJSON_GetObjectItemCaseSensitive (cJSON_GetArrayItem (log.frames, done), "data");
    cr_assert (strstr (runs_str (d, "response"), PAGE_TITLE));
    char rid[80];
    snprintf (rid, sizeof (rid), "%s", run_id);
    pthread_mutex_unlock (&log.lock);
    mg_close_connection (ws);
    s_assert_stored ("tl-ws", rid);
    cJSON_Delete (log.frames);
    pthread_mutex_destroy (&log.lock);
}
