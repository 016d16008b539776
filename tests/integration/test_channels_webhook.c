/*  =========================================================================
    test_channels_webhook - the generic webhook channel of the real
    `clawgate serve`: POST /v1/hooks/{name} with the hook's own token (a
    header, never the query), the reply in the response or POSTed to the
    hook's callbackUrl, idempotent repeats, sessionKey, and the errors.
    The model is the built-in local/echo.
    =========================================================================
*/
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "channels.h"
#include "harness.h"

#define WAIT_MS 15000
#define HOOK_TOKEN "at-least-16-chars-token"
#define CB_TOKEN "callback-hook-token-0123"

static ch_gw_t s_gw;

//  ---- A callback receiver: one thread, one socket, every POST body kept ----------

typedef struct {
    int fd;  //  Listening socket
    int port;
    pthread_t thread;
    pthread_mutex_t lock;
    char bodies[8][4096];  //  Bodies received
    char paths[8][256];    //  Their request lines
    int n;
    volatile bool stop;
} receiver_t;

static receiver_t s_rx;

static void *
s_rx_run (void *arg)
{
    receiver_t *rx = (receiver_t *) arg;
    while (!rx->stop) {
        struct pollfd p = {rx->fd, POLLIN, 0};
        if (poll (&p, 1, 100) <= 0)
            continue;
        int c = accept (rx->fd, NULL, NULL);
        if (c < 0)
            continue;
        char buf[16384];
        size_t len = 0;
        long long deadline = harness_now_ms () + 5000;
        long want = -1;
        while (len < sizeof (buf) - 1 && harness_now_ms () < deadline) {
            struct pollfd q = {c, POLLIN, 0};
            if (poll (&q, 1, 100) <= 0)
                continue;
            ssize_t n = recv (c, buf + len, sizeof (buf) - 1 - len, 0);
            if (n <= 0)
                break;
            len += (size_t) n;
            buf[len] = 0;
            char *end = strstr (buf, "\r\n\r\n");
            if (end && want < 0) {
                char *cl = strcasestr (buf, "Content-Length:");
                want = (long) (end + 4 - buf) + (cl ? atol (cl + 15) : 0);
            }
            if (want >= 0 && (long) len >= want)
                break;
        }
        const char *ok =
            "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        send (c, ok, strlen (ok), MSG_NOSIGNAL);
        close (c);
        char *end = strstr (buf, "\r\n\r\n");
        pthread_mutex_lock (&rx->lock);
        if (end && rx->n < 8) {
            snprintf (rx->bodies[rx->n], sizeof (rx->bodies[0]), "%s", end + 4);
            snprintf (rx->paths[rx->n], sizeof (rx->paths[0]), "%.*s",
                      (int) strcspn (buf, "\r\n"), buf);
            rx->n++;
        }
        pthread_mutex_unlock (&rx->lock);
    }
    return NULL;
}

static void
s_rx_start (receiver_t *rx)
{
    memset (rx, 0, sizeof (*rx));
    pthread_mutex_init (&rx->lock, NULL);
    rx->fd = socket (AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt (rx->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    cr_assert_eq (bind (rx->fd, (struct sockaddr *) &a, sizeof (a)), 0);
    socklen_t alen = sizeof (a);
    getsockname (rx->fd, (struct sockaddr *) &a, &alen);
    rx->port = ntohs (a.sin_port);
    cr_assert_eq (listen (rx->fd, 16), 0);
    pthread_create (&rx->thread, NULL, s_rx_run, rx);
}

static void
s_rx_stop (receiver_t *rx)
{
    if (!rx->fd)
        return;
    rx->stop = true;
    pthread_join (rx->thread, NULL);
    close (rx->fd);
    rx->fd = 0;
}

//  ---- Fixture --------------------------------------------------------------------

static void
s_setup (void)
{
    s_rx_start (&s_rx);
    char config[2048];
    snprintf (
        config, sizeof (config),
        "{\"gateway\":{\"maxBodyBytes\":65536},\"channels\":{\"webhook\":{\"hooks\":{"
        "\"ci\":{\"token\":\"" HOOK_TOKEN "\"},"
        "\"cb\":{\"token\":\"" CB_TOKEN "\",\"callbackUrl\":"
        "\"http://127.0.0.1:%d/cb\"}}}}}",
        s_rx.port);
    cr_assert_eq (ch_gw_start (&s_gw, config), 0, "clawgate serve did not start");
}

static void
s_teardown (void)
{
    //  A clean stop exits 0; under ASan a leak or a bad free makes it not.
    if (s_gw.proc.pid > 0)
        cr_expect_eq (ch_gw_stop (&s_gw, SIGTERM), 0, "clawgate serve did not exit 0");
    ch_gw_destroy (&s_gw);
    s_rx_stop (&s_rx);
}

TestSuite (channels_webhook, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  POSTs body to path with one header line (NULL: none).  Returns the
//  status and the parsed answer in *out.
static long
s_hook (const char *path, const char *header, const char *body, cJSON **out)
{
    const char *headers[] = {header, NULL};
    return ch_http (&s_gw, "POST", path, body, false, header ? headers : NULL, out);
}

static const char *
s_str (const cJSON *obj, const char *name)
{
    return cJSON_GetStringValue (cJSON_GetObjectItem (obj, name));
}

static const char *
s_error_param (const cJSON *root)
{
    return s_str (cJSON_GetObjectItem (root, "error"), "param");
}

//  The number of messages of role in session key.
static int
s_session_count (const char *key, const char *role)
{
    char *escaped = curl_easy_escape (NULL, key, 0);
    char path[512];
    snprintf (path, sizeof (path), "/v1/sessions/%s", escaped);
    curl_free (escaped);
    cJSON *s = NULL;
    long status = ch_http (&s_gw, "GET", path, NULL, true, NULL, &s);
    cr_assert_eq (status, 200, "GET %s: %ld", path, status);
    int n = 0;
    cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItem (s, "messages"))
    {
        if (!strcmp (s_str (m, "role") ? s_str (m, "role") : "", role))
            n++;
    }
    cJSON_Delete (s);
    return n;
}

Test (channels_webhook, bearer_token_runs_and_answers)
{
    cJSON *r = NULL;
    long st = s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN,
                      "{\"message\":\"build is green\"}", &r);
    char *text = cJSON_PrintUnformatted (r);
    cr_assert_eq (st, 200, "%ld %s", st, text);
    cr_assert (s_str (r, "runId"), "%s", text);
    cr_assert (s_str (r, "sessionKey"), "%s", text);
    cr_assert_str_eq (s_str (r, "status"), "done", "%s", text);
    cr_assert_str_eq (s_str (r, "response"), "build is green", "%s", text);
    cr_assert_eq (s_session_count (s_str (r, "sessionKey"), "user"), 1);
    free (text);
    cJSON_Delete (r);
}

Test (channels_webhook, openclaw_token_header)
{
    cJSON *r = NULL;
    long st = s_hook ("/v1/hooks/ci", "X-OpenClaw-Token: " HOOK_TOKEN,
                      "{\"message\":\"other header\"}", &r);
    cr_assert_eq (st, 200);
    cr_assert_str_eq (s_str (r, "response"), "other header");
    cJSON_Delete (r);
}

Test (channels_webhook, wrong_missing_query_tokens_refused)
{
    const char *body = "{\"message\":\"let me in\"}";
    cr_assert_eq (s_hook ("/v1/hooks/ci", "Authorization: Bearer wrong-token-wrong-token",
                          body, NULL),
                  401);
    cr_assert_eq (s_hook ("/v1/hooks/ci", NULL, body, NULL), 401);
    cr_assert_eq (s_hook ("/v1/hooks/ci?token=" HOOK_TOKEN, NULL, body, NULL), 401);
    //  Another hook's token does not open this one.
    cr_assert_eq (s_hook ("/v1/hooks/ci", "Authorization: Bearer " CB_TOKEN, body, NULL),
                  401);
    //  The gateway token is not a hook token either.
    cr_assert_eq (ch_http (&s_gw, "POST", "/v1/hooks/ci", body, true, NULL, NULL), 401);
}

Test (channels_webhook, unknown_hook_bad_body_oversize)
{
    cr_assert_eq (s_hook ("/v1/hooks/nope", "Authorization: Bearer " HOOK_TOKEN,
                          "{\"message\":\"x\"}", NULL),
                  404);
    cJSON *r = NULL;
    cr_assert_eq (s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN,
                          "{\"text\":\"no message\"}", &r),
                  400);
    cr_assert_str_eq (s_error_param (r) ? s_error_param (r) : "", "message");
    cJSON_Delete (r);
    cr_assert_eq (
        s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN, "not json", NULL),
        400);
    size_t n = 100000;
    char *big = malloc (n + 32);
    int k = sprintf (big, "{\"message\":\"");
    memset (big + k, 'a', n);
    strcpy (big + k + n, "\"}");
    cr_assert_eq (s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN, big, NULL),
                  413);
    free (big);
}

Test (channels_webhook, idempotency_key_one_run)
{
    const char *body = "{\"message\":\"deploy once\",\"idempotencyKey\":\"deploy-42\"}";
    cJSON *a = NULL, *b = NULL;
    cr_assert_eq (s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN, body, &a),
                  200);
    cr_assert_eq (s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN, body, &b),
                  200);
    cr_assert_str_eq (s_str (a, "runId"), s_str (b, "runId"));
    cr_assert_str_eq (s_str (b, "response"), "deploy once");
    cr_assert (!cJSON_IsTrue (cJSON_GetObjectItem (a, "repeated")));
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (b, "repeated")));
    cr_assert_eq (s_session_count (s_str (a, "sessionKey"), "user"), 1);
    //  Another key: another run.
    cJSON *c = NULL;
    cr_assert_eq (
        s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN,
                "{\"message\":\"deploy once\",\"idempotencyKey\":\"deploy-43\"}", &c),
        200);
    cr_assert_str_neq (s_str (a, "runId"), s_str (c, "runId"));
    cJSON_Delete (a);
    cJSON_Delete (b);
    cJSON_Delete (c);
}

Test (channels_webhook, session_key_given)
{
    cJSON *r = NULL;
    cr_assert_eq (s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN,
                          "{\"message\":\"first\",\"sessionKey\":\"ci-builds\"}", &r),
                  200);
    cr_assert_str_eq (s_str (r, "sessionKey"), "ci-builds");
    cJSON_Delete (r);
    cr_assert_eq (s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN,
                          "{\"message\":\"second\",\"sessionKey\":\"ci-builds\"}", &r),
                  200);
    cr_assert_str_eq (s_str (r, "response"), "second");
    cJSON_Delete (r);
    cr_assert_eq (s_session_count ("ci-builds", "user"), 2);
    cr_assert_eq (s_session_count ("ci-builds", "assistant"), 2);
}

Test (channels_webhook, callback_url_gets_the_reply)
{
    cJSON *r = NULL;
    long st = s_hook ("/v1/hooks/cb", "Authorization: Bearer " CB_TOKEN,
                      "{\"message\":\"call me back\"}", &r);
    cr_assert_eq (st, 202);
    cr_assert_str_eq (s_str (r, "status"), "accepted");
    char run_id[128];
    snprintf (run_id, sizeof (run_id), "%s",
              s_str (r, "runId") ? s_str (r, "runId") : "");
    cJSON_Delete (r);
    long long deadline = harness_now_ms () + WAIT_MS;
    while (harness_now_ms () < deadline) {
        pthread_mutex_lock (&s_rx.lock);
        int n = s_rx.n;
        pthread_mutex_unlock (&s_rx.lock);
        if (n > 0)
            break;
        usleep (50000);
    }
    usleep (500 * 1000);
    pthread_mutex_lock (&s_rx.lock);
    int n = s_rx.n;
    cJSON *cb = n ? cJSON_Parse (s_rx.bodies[0]) : NULL;
    char line[256];
    snprintf (line, sizeof (line), "%s", s_rx.paths[0]);
    pthread_mutex_unlock (&s_rx.lock);
    cr_assert_eq (n, 1, "callbacks received: %d", n);
    cr_assert (strncmp (line, "POST /cb", 8) == 0, "request: %s", line);
    cr_assert_not_null (cb, "callback body is not JSON");
    if (*run_id)
        cr_assert_str_eq (s_str (cb, "runId"), run_id);
    cr_assert (s_str (cb, "sessionKey"));
    cr_assert_str_eq (s_str (cb, "status"), "done");
    cr_assert_str_eq (s_str (cb, "response"), "call me back");
    cJSON_Delete (cb);
}

//  A hook is a credential like any other: its calls count against the
//  rate limit (its own bucket, "hook:<name>"), and wrong tokens against
//  the address's failed-authentication limit.
Test (channels_webhook, hook_rate_and_failed_tokens_limited)
{
    cr_assert_eq (ch_gw_stop (&s_gw, SIGTERM), 0);
    ch_gw_destroy (&s_gw);
    memset (&s_gw, 0, sizeof (s_gw));
    cr_assert_eq (ch_gw_start (&s_gw,
                               "{\"limits\":{\"rateLimit\":3,\"burst\":3,"
                               "\"authFailures\":3},\"channels\":{\"webhook\":"
                               "{\"hooks\":{\"ci\":{\"token\":\"" HOOK_TOKEN "\"}}}}}"),
                  0);
    const char *body = "{\"message\":\"count me\"}";
    for (int i = 0; i < 3; i++)
        cr_assert_eq (
            s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN, body, NULL), 200,
            "call %d", i + 1);
    cJSON *r = NULL;
    cr_assert_eq (s_hook ("/v1/hooks/ci", "Authorization: Bearer " HOOK_TOKEN, body, &r),
                  429, "the fourth call in the minute");
    cr_assert_str_eq (s_str (cJSON_GetObjectItem (r, "error"), "code"), "rate_limited");
    cJSON_Delete (r);
    //  Wrong tokens: refused, then the address is blocked, the right token too.
    int refused = 0;
    for (int i = 0; i < 6; i++)
        refused += s_hook ("/v1/hooks/ci",
                           "Authorization: Bearer wrong-token-wrong-token", body, NULL)
                   == 429;
    cr_assert_gt (refused, 0, "wrong hook tokens were never limited");
}
