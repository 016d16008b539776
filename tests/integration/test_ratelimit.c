/*  =========================================================================
    test_ratelimit - the API limits against the real `clawgate serve`:
    100 requests a minute per credential (the 101st gets 429 with a sane
    Retry-After), 10 concurrent streaming runs (the 11th gets 429 until one
    ends), per-token overrides, failed authentications limited per address
    (on by default), connections per address, the X-RateLimit-* headers and
    the limits block of /status.
    =========================================================================
*/
#include <cjson/cJSON.h>
#include <signal.h>

#include "quota.h"

#define MAIN_TOKEN "main-token-0123456789abcdef"
#define SMALL_TOKEN "small-token-0123456789abcdef"
#define SOLO_TOKEN "solo-token-0123456789abcdef"
#define BURSTY_TOKEN "bursty-token-0123456789abcdef"
#define FREE_TOKEN "free-token-0123456789abcdef"

static served_t s_srv;

//  Starts serve with MAIN_TOKEN, the given limits object (JSON text) and
//  extra tokens (JSON array text, or NULL), and local/echo streaming one
//  word every 100 ms.
static void
s_start (const char *limits, const char *tokens)
{
    char config[2048];
    snprintf (config, sizeof (config),
              "{\"auth\":{\"token\":\"" MAIN_TOKEN "\"%s%s},"
              "\"limits\":%s,"
              "\"gateway\":{\"drainTimeoutMs\":3000},"
              "\"providers\":{\"local\":{\"echoDelayMs\":100}}}",
              tokens ? ",\"tokens\":" : "", tokens ? tokens : "", limits);
    cr_assert_eq (served_start (&s_srv, config, NULL), 0, "clawgate serve did not start");
}

//  Every test ends with a clean exit: under ASan a leak makes it non-zero.
static void
s_teardown (void)
{
    if (s_srv.proc.pid > 0) {
        char err[16384];
        int rc = proc_stop (&s_srv.proc, SIGTERM, 20000);
        proc_stderr (&s_srv.proc, err, sizeof (err));
        unlink (s_srv.proc.err_path);
        size_t n = strlen (err);
        cr_assert_eq (rc, 0, "serve exited %d:\n%s", rc, n > 6000 ? err + n - 6000 : err);
    }
}

TestSuite (ratelimit, .fini = s_teardown, .timeout = 180);

Test (ratelimit, the_101st_request_in_a_minute_gets_429_with_retry_after)
{
    //  The defaults: 100 a minute, a bucket of 100.
    served_t *s = &s_srv;
    cr_assert_eq (served_start (s, "{\"auth\":{\"token\":\"" MAIN_TOKEN "\"}}", NULL), 0);
    long long start = harness_now_ms ();
    int ok = 0;
    long last_remaining = 1000;
    http_resp_t r;
    while (true) {
        long status = http_get_bearer (s->base, "/status", MAIN_TOKEN, &r);
        if (status != 200)
            break;
        ok++;
        //  Every authenticated answer says where the credential stands.
        cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Limit"), 100, "%s",
                      r.headers);
        long remaining = http_header_long (r.headers, "X-RateLimit-Remaining");
        cr_assert (remaining >= 0 && remaining <= last_remaining,
                   "remaining %ld after %ld", remaining, last_remaining);
        last_remaining = remaining;
        cr_assert (http_header_long (r.headers, "X-RateLimit-Reset") >= 0);
        http_resp_free (&r);
        cr_assert_lt (ok, 1000, "never limited");
    }
    double elapsed_s = (harness_now_ms () - start) / 1000.0;
    //  The bucket holds 100; a token drips in every 0.6 s while we ask.
    cr_assert_geq (ok, 100, "only %d requests before the first refusal", ok);
    cr_assert_leq (ok, 100 + (int) (elapsed_s * 100 / 60) + 1, "%d requests in %.1f s",
                   ok, elapsed_s);
    quota_assert_429 (&r, 2);  //  One token is 0.6 s away
    cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Limit"), 100);
    cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Remaining"), 0);
    long reset = http_header_long (r.headers, "X-RateLimit-Reset");
    cr_assert (reset >= 1 && reset <= 60, "reset %ld", reset);
    http_resp_free (&r);
    //  Unauthenticated routes are not limited; refused ones carry no quota.
    cr_assert_eq (http_get_bearer (s->base, "/health", NULL, NULL), 200);
    //  After Retry-After the credential may ask again.
    long long until = harness_now_ms () + 10000;
    long status = 429;
    while (status == 429 && harness_now_ms () < until) {
        usleep (200000);
        status = http_get_bearer (s->base, "/status", MAIN_TOKEN, NULL);
    }
    cr_assert_eq (status, 200, "still refused after 10 s");
}

Test (ratelimit, the_11th_concurrent_stream_gets_429_until_one_ends)
{
    //  Rate off here: only the concurrency limit (default 10) is tested.
    s_start ("{\"rateLimit\":0}", NULL);
    curl_global_init (CURL_GLOBAL_ALL);
    quota_stream_t streams[11];
    for (int i = 0; i < 10; i++) {
        long status =
            quota_stream_start (&streams[i], s_srv.base, MAIN_TOKEN, 600, 20000);
        cr_assert_eq (status, 200, "stream %d: %ld", i, status);
    }
    //  The 11th, streaming or not, is refused while ten run.
    long status = quota_stream_start (&streams[10], s_srv.base, MAIN_TOKEN, 600, 20000);
    quota_stream_stop (&streams[10]);
    cr_assert_eq (status, 429, "11th stream: %ld", status);
    cr_assert (http_header_long (streams[10].headers, "Retry-After") >= 1, "%s",
               streams[10].headers);
    http_resp_t r;
    http_get_bearer (s_srv.base, "/status", MAIN_TOKEN, &r);
    quota_assert_429 (&r, 5);
    cr_assert (strstr (r.body, "concurrent"), "%s", r.body);
    http_resp_free (&r);
    //  One ends (its client hangs up, which aborts the run): the next
    //  succeeds, within a short while.
    quota_stream_stop (&streams[0]);
    long long until = harness_now_ms () + 15000;
    status = 0;
    while (status != 200 && harness_now_ms () < until) {
        status = quota_stream_start (&streams[10], s_srv.base, MAIN_TOKEN, 600, 20000);
        if (status != 200) {
            cr_assert_eq (status, 429);
            quota_stream_stop (&streams[10]);
            usleep (100000);
        }
    }
    cr_assert_eq (status, 200, "no slot came free after a stream ended");
    //  And we are at ten again.
    cr_assert_eq (http_get_bearer (s_srv.base, "/status", MAIN_TOKEN, NULL), 429);
    for (int i = 1; i < 11; i++)
        quota_stream_stop (&streams[i]);
    //  All gone: plain requests work again (their slots are free).
    until = harness_now_ms () + 15000;
    while (http_get_bearer (s_srv.base, "/status", MAIN_TOKEN, NULL) != 200
           && harness_now_ms () < until)
        usleep (100000);
    cr_assert_eq (http_get_bearer (s_srv.base, "/status", MAIN_TOKEN, NULL), 200);
}

Test (ratelimit, per_token_overrides)
{
    s_start ("{\"rateLimit\":100,\"maxConcurrent\":10}",
             "[{\"token\":\"" SMALL_TOKEN "\",\"name\":\"small\","
             "\"rateLimit\":3},"
             "{\"token\":\"" SOLO_TOKEN "\",\"name\":\"solo\","
             "\"maxConcurrent\":1},"
             "{\"token\":\"" BURSTY_TOKEN "\",\"name\":\"bursty\","
             "\"rateLimit\":60,\"burst\":2},"
             "{\"token\":\"" FREE_TOKEN "\",\"name\":\"free\","
             "\"rateLimit\":0,\"maxConcurrent\":0}]");
    curl_global_init (CURL_GLOBAL_ALL);
    http_resp_t r;
    //  small: 3 a minute, its own bucket.
    for (int i = 0; i < 3; i++) {
        cr_assert_eq (http_get_bearer (s_srv.base, "/status", SMALL_TOKEN, &r), 200,
                      "request %d: %s", i, r.body);
        cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Limit"), 3);
        cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Remaining"), 2 - i);
        http_resp_free (&r);
    }
    http_get_bearer (s_srv.base, "/status", SMALL_TOKEN, &r);
    quota_assert_429 (&r, 20);  //  One token in 20 s
    cr_assert_geq (http_header_long (r.headers, "Retry-After"), 15, "%s", r.headers);
    http_resp_free (&r);
    //  The main token is untouched by small's exhaustion.
    cr_assert_eq (http_get_bearer (s_srv.base, "/status", MAIN_TOKEN, &r), 200);
    cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Limit"), 100);
    http_resp_free (&r);
    //  bursty: 60 a minute but only 2 at once; the next token is 1 s away.
    for (int i = 0; i < 2; i++)
        cr_assert_eq (http_get_bearer (s_srv.base, "/status", BURSTY_TOKEN, NULL), 200);
    http_get_bearer (s_srv.base, "/status", BURSTY_TOKEN, &r);
    quota_assert_429 (&r, 1);
    cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Limit"), 60);
    http_resp_free (&r);
    //  free: no limits at all, so no X-RateLimit headers.
    for (int i = 0; i < 120; i++) {
        cr_assert_eq (http_get_bearer (s_srv.base, "/v1/models", FREE_TOKEN, &r), 200);
        cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Limit"), -1);
        http_resp_free (&r);
    }
    //  solo: one at a time; the others are not held back by it.
    quota_stream_t a, b;
    cr_assert_eq (quota_stream_start (&a, s_srv.base, SOLO_TOKEN, 600, 20000), 200);
    cr_assert_eq (quota_stream_start (&b, s_srv.base, SOLO_TOKEN, 600, 20000), 429);
    quota_stream_stop (&b);
    cr_assert_eq (quota_stream_start (&b, s_srv.base, MAIN_TOKEN, 600, 20000), 200);
    quota_stream_stop (&b);
    quota_stream_stop (&a);
    long long until = harness_now_ms () + 15000;
    while (http_get_bearer (s_srv.base, "/status", SOLO_TOKEN, NULL) != 200
           && harness_now_ms () < until)
        usleep (100000);
    cr_assert_eq (http_get_bearer (s_srv.base, "/status", SOLO_TOKEN, NULL), 200);
}

Test (ratelimit, failed_authentications_are_limited_per_address_by_default)
{
    cr_assert_eq (
        served_start (&s_srv, "{\"auth\":{\"token\":\"" MAIN_TOKEN "\"}}", NULL), 0);
    http_resp_t r;
    //  Missing credentials are not guesses: never limited.
    for (int i = 0; i < 30; i++)
        cr_assert_eq (http_get_bearer (s_srv.base, "/status", NULL, NULL), 401);
    //  Ten wrong guesses a minute are answered 401, the eleventh 429.
    for (int i = 0; i < 10; i++) {
        http_get_bearer (s_srv.base, "/status", "wrong-token-0123456789abcdef", &r);
        cr_assert_eq (r.status, 401, "guess %d: %ld", i, r.status);
        //  Not authenticated: no quota headers.
        cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Limit"), -1);
        http_resp_free (&r);
    }
    http_get_bearer (s_srv.base, "/status", "wrong-token-0123456789abcdef", &r);
    quota_assert_429 (&r, 10);  //  One failure drips back every 6 s
    cr_assert (strstr (r.body, "failed authentications"), "%s", r.body);
    long retry = http_header_long (r.headers, "Retry-After");
    http_resp_free (&r);
    //  While blocked, the address gets 429 even with the right token:
    //  guessing must not be able to tell a right guess.
    http_get_bearer (s_srv.base, "/status", MAIN_TOKEN, &r);
    quota_assert_429 (&r, 10);
    http_resp_free (&r);
    //  Once the block lapses, the right token works again.
    long long until = harness_now_ms () + (retry + 10) * 1000;
    long status = 429;
    while (status == 429 && harness_now_ms () < until) {
        usleep (250000);
        status = http_get_bearer (s_srv.base, "/status", MAIN_TOKEN, NULL);
    }
    cr_assert_eq (status, 200);
}

//  Starts a stream, again while it is refused: a connection the previous
//  request closed may not have been noticed as closed yet.
static long
s_stream_start_retry (quota_stream_t *st, const char *token)
{
    long long until = harness_now_ms () + 10000;
    while (true) {
        long status = quota_stream_start (st, s_srv.base, token, 600, 20000);
        if (status != 429 || harness_now_ms () >= until)
            return status;
        quota_stream_stop (st);
        usleep (100000);
    }
}

Test (ratelimit, connection_limit_and_auth_failure_limit_are_configurable)
{
    s_start ("{\"authFailures\":2,\"maxConnectionsPerAddress\":2}", NULL);
    //  Two streams hold two connections from 127.0.0.1; a third connection
    //  is refused (whatever it asks), until one closes.
    curl_global_init (CURL_GLOBAL_ALL);
    quota_stream_t a, b;
    cr_assert_eq (s_stream_start_retry (&a, MAIN_TOKEN), 200);
    cr_assert_eq (s_stream_start_retry (&b, MAIN_TOKEN), 200);
    http_resp_t r;
    http_get_bearer (s_srv.base, "/health", NULL, &r);
    quota_assert_429 (&r, 5);
    cr_assert (strstr (r.body, "connections"), "%s", r.body);
    http_resp_free (&r);
    quota_stream_stop (&a);
    //  The gate counts a connection until the server has seen it close,
    //  which can be just after the client's next connect: poll.
    long long until = harness_now_ms () + 15000;
    int health;
    while ((health = http_get_bearer (s_srv.base, "/health", NULL, NULL)) != 200
           && harness_now_ms () < until)
        usleep (100000);
    cr_assert_eq (health, 200);
    quota_stream_stop (&b);
    //  Two failures a minute, then 429.
    int answers[3];
    for (int i = 0; i < 3; i++) {
        //  A refusal for connections is not what we test here: retry it.
        until = harness_now_ms () + 10000;
        do {
            http_get_bearer (s_srv.base, "/status", "nope-0123456789abcdef", &r);
            answers[i] = (int) r.status;
            bool conn = r.status == 429 && strstr (r.body, "connections");
            http_resp_free (&r);
            if (!conn)
                break;
            usleep (100000);
        } while (harness_now_ms () < until);
    }
    cr_assert_eq (answers[0], 401);
    cr_assert_eq (answers[1], 401);
    cr_assert_eq (answers[2], 429);
}

Test (ratelimit, status_reports_the_limits)
{
    s_start ("{\"rateLimit\":250,\"burst\":50,\"maxConcurrent\":7,"
             "\"authFailures\":4,\"maxConnectionsPerAddress\":9,"
             "\"leaseMs\":3000}",
             NULL);
    http_resp_t r;
    cr_assert_eq (http_get_bearer (s_srv.base, "/status", MAIN_TOKEN, &r), 200);
    cJSON *j = cJSON_Parse (r.body);
    cJSON *lim = cJSON_GetObjectItem (j, "limits");
    cr_assert (cJSON_IsObject (lim), "%s", r.body);
    struct {
        const char *key;
        double want;
    } want[] = {{"rateLimit", 250},
                {"burst", 50},
                {"maxConcurrent", 7},
                {"authFailures", 4},
                {"maxConnectionsPerAddress", 9},
                {"maxBodyBytes", 10485760},
                {"requestTimeoutMs", 300000},
                {"maxFrameBytes", 1048576},
                {"leaseMs", 3000}};
    for (size_t i = 0; i < sizeof (want) / sizeof (want[0]); i++) {
        cJSON *v = cJSON_GetObjectItem (lim, want[i].key);
        cr_assert (cJSON_IsNumber (v) && v->valuedouble == want[i].want, "%s in %s",
                   want[i].key, r.body);
    }
    cJSON_Delete (j);
    http_resp_free (&r);
    //  /ready waits for the ratelimit actor too.
    cr_assert_eq (http_get_bearer (s_srv.base, "/ready", NULL, &r), 200);
    cr_assert (strstr (r.body, "\"ratelimit\":1"), "%s", r.body);
    http_resp_free (&r);
}
