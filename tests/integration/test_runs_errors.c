/*  =========================================================================
    test_runs_errors - what goes wrong around agent runs, through the real
    `clawgate serve` to cg_standin: upstream failures mapped as docs/runs.md#upstream-errors says
    section 5's statuses and error body, bad request bodies, a client that
    hangs up mid-stream (the upstream transfer must be cancelled), and
    twenty streams at once.
    =========================================================================
*/
#include "runs.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>

static void
s_setup (void)
{
    runs_start_with (0, 1000, 1000);
}

TestSuite (runs_errors, .init = s_setup, .fini = runs_stop_all, .timeout = 60);

static void
s_chat (const char *model, bool stream, http_resp_t *r)
{
    char body[512];
    snprintf (body, sizeof (body),
              "{\"model\":\"%s\",\"stream\":%s,\"messages\":[{\"role\":\"user\","
              "\"content\":\"hi\"}]}",
              model, stream ? "true" : "false");
    runs_post ("/v1/chat/completions", body, r);
}

//  A normal request still gets its normal answer.
static void
s_assert_still_serving (void)
{
    http_resp_t r;
    runs_get ("/health", &r);
    cr_assert_eq (r.status, 200);
    http_resp_free (&r);
    s_chat ("openai/gpt-4o-mini", false, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    cJSON *j = runs_json (&r);
    cr_assert_str_eq (runs_at_str (j, "choices.0.message.content"), OPENAI_HELLO "hi");
    cJSON_Delete (j);
    http_resp_free (&r);
}

Test (runs_errors, upstream_errors_map_to_spec_statuses)
{
    struct {
        const char *model;
        long status;
        const char *code;
    } cases[] = {
        {"openai/error-400", 400, "invalid_request"},
        {"openai/error-401", 503, "service_unavailable"},
        {"openai/error-429", 429, "rate_limited"},
        {"openai/error-500", 503, "service_unavailable"},
        {"openai/garbage", 503, "service_unavailable"},
        {"anthropic/error-500", 503, "service_unavailable"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++)
        for (int stream = 0; stream < 2; stream++) {
            http_resp_t r;
            s_chat (cases[i].model, stream, &r);
            //  Nothing was streamed yet, so a stream gets a real status too.
            cr_assert (!strstr (r.headers, "text/event-stream"),
                       "%s (stream %d) began a stream: %s", cases[i].model, stream,
                       r.body);
            runs_assert_error (&r, cases[i].status, cases[i].code, NULL);
            //  The stand-in's 429 says Retry-After: 7; the client hears it.
            if (cases[i].status == 429)
                cr_assert (strstr (r.headers, "Retry-After: 7\r\n"),
                           "no Retry-After: 7: %s", r.headers);
            //  The client never sees the provider's key.
            cr_assert_null (strstr (r.body, OPENAI_KEY));
            http_resp_free (&r);
        }
    s_assert_still_serving ();
}

//  stallTimeoutMs is 1000 here: a provider that sends nothing for a second
//  is dead, and the client should hear so within a few seconds.
Test (runs_errors, upstream_stall_is_a_503_within_5_s)
{
    long long t0 = harness_now_ms ();
    http_resp_t r;
    s_chat ("openai/stall", false, &r);
    long long took = harness_now_ms () - t0;
    runs_assert_error (&r, 503, "service_unavailable", NULL);
    http_resp_free (&r);
    runs_stats_t st;
    RUNS_POLL_STATS (st, st.active == 0, 5000);
    cr_assert_eq (st.active, 0, "the stalled transfer was left open");
    cr_assert (took < 5000, "a 1000 ms stallTimeoutMs took %lld ms to fire", took);
}

Test (runs_errors, stream_that_fails_after_output_ends_with_an_error_chunk)
{
    //  openai/stall streams "Hello", then nothing: once output has begun the
    //  failure can only be told inside the stream.
    http_resp_t r;
    s_chat ("openai/stall", true, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    runs_oai_stream_t s;
    runs_parse_oai_stream (r.body, &s);
    cr_assert (s.done, "no [DONE] after the error: %s", r.body);
    cr_assert_str_eq (s.text, "Hello");
    const cJSON *last = cJSON_GetArrayItem (s.chunks, cJSON_GetArraySize (s.chunks) - 1);
    cr_assert (cJSON_IsObject (cJSON_GetObjectItem (last, "error")), "no error chunk: %s",
               r.body);
    cr_assert (runs_at_str (last, "error.message"));
    cJSON_Delete (s.chunks);
    http_resp_free (&r);
}

Test (runs_errors, bad_chat_completion_bodies_get_400s)
{
    struct {
        const char *body;
        long status;
        const char *code;
        const char *param;  //  NULL: JSON null
    } cases[] = {
        {"{\"model\":\"openai/gpt-4o-mini\",\"messages\":[", 400, "invalid_request",
         NULL},
        {"{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"\xc3\x28\xff\"}]}",
         400, "invalid_request", NULL},
        {"", 400, "invalid_request", NULL},
        {"[{\"model\":\"openai/gpt-4o-mini\"}]", 400, "invalid_request", NULL},
        {"{\"model\":\"openai/gpt-4o-mini\"} trailing", 400, "invalid_request", NULL},
        {"{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400,
         "invalid_request", "model"},
        {"{\"model\":42,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}", 400,
         "invalid_request", "model"},
        {"{\"model\":\"openai/gpt-4o-mini\"}", 400, "invalid_request", "messages"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"messages\":\"hi\"}", 400, "invalid_request",
         "messages"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"messages\":[]}", 400, "invalid_request",
         "messages"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{\"content\":\"hi\"}]}", 400,
         "invalid_request", "messages[0]"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"a\"},{\"role\":\"wizard\",\"content\":\"b\"}]}",
         400, "invalid_request", "messages[1]"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"messages\":[7]}", 400, "invalid_request",
         "messages[0]"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
         "\"content\":{\"x\":1}}]}",
         400, "invalid_request", "messages[0]"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"stream\":\"yes\",\"messages\":[{"
         "\"role\":\"user\",\"content\":\"hi\"}]}",
         400, "invalid_request", "stream"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"temperature\":\"hot\","
         "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         400, "invalid_request", "temperature"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"max_tokens\":-5,\"messages\":[{"
         "\"role\":\"user\",\"content\":\"hi\"}]}",
         400, "invalid_request", "max_tokens"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"max_tokens\":1e300,\"messages\":[{"
         "\"role\":\"user\",\"content\":\"hi\"}]}",
         400, "invalid_request", "max_tokens"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"n\":2,\"messages\":[{"
         "\"role\":\"user\",\"content\":\"hi\"}]}",
         400, "invalid_request", "n"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"tools\":{},\"messages\":[{"
         "\"role\":\"user\",\"content\":\"hi\"}]}",
         400, "invalid_request", "tools"},
        {"{\"model\":\"openai/gpt-4o-mini\",\"stream_options\":true,"
         "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
         400, "invalid_request", "stream_options"},
        {"{\"model\":\"nope/x\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}]}",
         404, "not_found", "model"},
        {"{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
         "\"content\":\"hi\"}]}",
         404, "not_found", "model"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        http_resp_t r;
        runs_post ("/v1/chat/completions", cases[i].body, &r);
        cr_assert_eq (r.status, cases[i].status, "case %zu (%s): %ld %s", i,
                      cases[i].body, r.status, r.body);
        runs_assert_error (&r, cases[i].status, cases[i].code, cases[i].param);
        http_resp_free (&r);
    }
    //  An invalid session key header.
    http_resp_t r;
    const char *ok_body = "{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{"
                          "\"role\":\"user\",\"content\":\"hi\"}]}";
    runs_post_raw ("/v1/chat/completions", ok_body, strlen (ok_body),
                   "X-OpenClaw-Session-Key: bad key!", &r);
    runs_assert_error (&r, 400, "invalid_request", "sessionKey");
    http_resp_free (&r);
    s_assert_still_serving ();
}

//  A body of a chat completion whose tools nest `depth` levels (caller
//  frees).
static char *
s_tools_body (int depth)
{
    char *body = malloc (256 + 2 * (size_t) depth);
    int n = sprintf (body, "{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{"
                           "\"role\":\"user\",\"content\":\"hi\"}],\"tools\":");
    for (int i = 0; i < depth; i++)
        body[n++] = '[';
    for (int i = 0; i < depth; i++)
        body[n++] = ']';
    strcpy (body + n, "}");
    return body;
}

//  JSON the intake accepts (up to 128 deep) may still be deeper than a
//  message on the bus can carry: the client is told which field, at the
//  front, instead of "Message body is not valid msgpack" from a worker.
Test (runs_errors, fields_too_deep_for_a_run_get_a_400_naming_them)
{
    char *body = s_tools_body (30);
    http_resp_t r;
    runs_post ("/v1/chat/completions", body, &r);
    free (body);
    runs_assert_error (&r, 400, "invalid_request", "tools");
    cr_assert (strstr (r.body, "nested deeper than the 29 levels"), "%s", r.body);
    http_resp_free (&r);
    //  29 levels reach the run (the stand-in answers; tools ignored there).
    body = s_tools_body (29);
    runs_post ("/v1/chat/completions", body, &r);
    free (body);
    cr_assert_neq (r.status, 400, "29 levels refused: %s", r.body);
    cr_assert (r.status < 500, "%ld %s", r.status, r.body);
    http_resp_free (&r);
    //  And 129 are refused by the intake before anything recurses.
    body = s_tools_body (129);
    runs_post ("/v1/chat/completions", body, &r);
    free (body);
    runs_assert_error (&r, 400, "invalid_request", NULL);
    cr_assert (strstr (r.body, "deeper than 128"), "%s", r.body);
    http_resp_free (&r);
    s_assert_still_serving ();
}

//  A raw control byte inside a JSON string makes the text invalid JSON
//  (RFC 8259 section 7: they must be escaped).  A raw NUL is the harmful
//  one: accepted, it silently cuts the message short at that byte.
Test (runs_errors, raw_nul_byte_in_a_json_string_is_refused)
{
    const char body[] = "{\"model\":\"openai/gpt-4o-mini\",\"messages\":[{"
                        "\"role\":\"user\",\"content\":\"keep\0all of this\"}]}";
    http_resp_t r;
    runs_post_raw ("/v1/chat/completions", body, sizeof (body) - 1, NULL, &r);
    //  Free the body before failing: a failed test must not leak either.
    bool refused = r.status == 400;
    char got[640];
    snprintf (got, sizeof (got), "%ld %.600s", r.status, r.body);
    if (refused)
        runs_assert_error (&r, 400, "invalid_request", NULL);
    http_resp_free (&r);
    cr_assert (refused, "accepted, and cut short at the NUL: %s", got);
    s_assert_still_serving ();
}

Test (runs_errors, bad_agent_run_bodies_get_4xx)
{
    char long_key[160];
    memset (long_key, 'k', 129);
    long_key[129] = 0;
    char long_body[256], ok_long_body[256];
    snprintf (long_body, sizeof (long_body), "{\"message\":\"x\",\"sessionKey\":\"%s\"}",
              long_key);
    long_key[128] = 0;
    snprintf (ok_long_body, sizeof (ok_long_body),
              "{\"message\":\"x\",\"sessionKey\":\"%s\"}", long_key);
    struct {
        const char *body;
        long status;
        const char *code;
        const char *param;
        const char *message;  //  Exact message, or NULL
    } cases[] = {
        {"{\"sessionKey\":\"k\"}", 400, "invalid_request", "message", NULL},
        {"{\"message\":42}", 400, "invalid_request", "message", NULL},
        {"{\"message\":\"\"}", 400, "invalid_request", "message", NULL},
        {"{\"message\":[\"x\"]}", 400, "invalid_request", "message", NULL},
        {"{\"message\":\"x\",\"sessionKey\":\"bad key!\"}", 400, "invalid_request",
         "sessionKey", "Invalid session key"},
        {"{\"message\":\"x\",\"sessionKey\":\"\"}", 400, "invalid_request", "sessionKey",
         "Invalid session key"},
        {"{\"message\":\"x\",\"sessionKey\":\"a/b\"}", 400, "invalid_request",
         "sessionKey", "Invalid session key"},
        {"{\"message\":\"x\",\"sessionKey\":\"caf\xc3\xa9\"}", 400, "invalid_request",
         "sessionKey", "Invalid session key"},
        {"{\"message\":\"x\",\"sessionKey\":7}", 400, "invalid_request", "sessionKey",
         "Invalid session key"},
        {long_body, 400, "invalid_request", "sessionKey", "Invalid session key"},
        {"{\"message\":\"x\",\"agentId\":\"nobody\"}", 404, "not_found", "agentId", NULL},
        {"{\"message\":\"x\",\"options\":\"fast\"}", 400, "invalid_request", "options",
         NULL},
        {"{\"message\":\"x\",\"options\":{\"model\":5}}", 400, "invalid_request",
         "options.model", NULL},
        {"{\"message\":\"x\",\"options\":{\"model\":\"nope/x\"}}", 404, "not_found",
         "model", NULL},
        {"{\"message\":\"x\"", 400, "invalid_request", NULL, NULL},
        {"[]", 400, "invalid_request", NULL, NULL},
    };
    const char *paths[] = {"/v1/agent/run", "/v1/agent/run/stream"};
    for (int p = 0; p < 2; p++)
        for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
            http_resp_t r;
            runs_post (paths[p], cases[i].body, &r);
            cr_assert_eq (r.status, cases[i].status, "%s case %zu (%s): %ld %s", paths[p],
                          i, cases[i].body, r.status, r.body);
            runs_assert_error (&r, cases[i].status, cases[i].code, cases[i].param);
            if (cases[i].message) {
                cJSON *j = runs_json (&r);
                cr_assert_str_eq (runs_at_str (j, "error.message"), cases[i].message);
                cJSON_Delete (j);
            }
            http_resp_free (&r);
        }
    //  128 characters of the allowed set is fine.
    http_resp_t r;
    runs_post ("/v1/agent/run", ok_long_body, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    http_resp_free (&r);
    runs_post ("/v1/agent/run", "{\"message\":\"x\",\"sessionKey\":\"A-z_0.9:x\"}", &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    http_resp_free (&r);
    s_assert_still_serving ();
}

//  ---- Twenty streams at once ------------------------------------------------

#define N_STREAMS 20

typedef struct {
    int index;
    http_resp_t r;
} stream_job_t;

static void *
s_stream_thread (void *arg)
{
    stream_job_t *job = (stream_job_t *) arg;
    char body[256];
    snprintf (body, sizeof (body),
              "{\"model\":\"openai/long\",\"stream\":true,\"messages\":[{"
              "\"role\":\"user\",\"content\":\"job %d\"}]}",
              job->index);
    runs_post ("/v1/chat/completions", body, &job->r);
    return NULL;
}

Test (runs_errors, twenty_concurrent_streams_all_complete)
{
    curl_global_init (CURL_GLOBAL_ALL);  //  Before any thread uses libcurl
    runs_stats_t before = runs_stats ();
    stream_job_t jobs[N_STREAMS];
    pthread_t threads[N_STREAMS];
    for (int i = 0; i < N_STREAMS; i++) {
        jobs[i].index = i;
        cr_assert_eq (pthread_create (&threads[i], NULL, s_stream_thread, &jobs[i]), 0);
    }
    for (int i = 0; i < N_STREAMS; i++)
        pthread_join (threads[i], NULL);
    for (int i = 0; i < N_STREAMS; i++) {
        http_resp_t *r = &jobs[i].r;
        cr_assert_eq (r->status, 200, "stream %d: %ld %s", i, r->status, r->body);
        runs_oai_stream_t s;
        runs_parse_oai_stream (r->body, &s);
        cr_assert (s.done, "stream %d did not finish", i);
        cr_assert_eq (s.content_chunks, 200, "stream %d: %d deltas", i, s.content_chunks);
        char want[64];
        snprintf (want, sizeof (want), OPENAI_HELLO "job %d w", i);
        cr_assert (!strncmp (s.text, want, strlen (want)), "stream %d: %.80s", i, s.text);
        cr_assert (strlen (s.text) > 5 && !strcmp (s.text + strlen (s.text) - 5, " w200"),
                   "stream %d ends wrong", i);
        //  Each stream carries its own id.
        const char *id = runs_str (cJSON_GetArrayItem (s.chunks, 0), "id");
        for (int k = 0; k < i; k++)
            cr_assert (!strstr (jobs[k].r.body, id), "id shared by %d, %d", k, i);
        cJSON_Delete (s.chunks);
    }
    for (int i = 0; i < N_STREAMS; i++)
        http_resp_free (&jobs[i].r);
    runs_stats_t after;
    RUNS_POLL_STATS (after,
                     after.completed >= before.completed + N_STREAMS && after.active == 0,
                     10000);
    cr_assert_eq (after.completed - before.completed, N_STREAMS);
    cr_assert_eq (after.aborted, before.aborted);
    cr_assert_eq (after.active, 0);
}

//  ---- A client that hangs up --------------------------------------------------

static void
s_setup_patient (void)
{
    //  The provider would hold a stall for 60 s and the run timeout is the
    //  default 300 s: only the client's leaving can end the transfer soon.
    runs_start_with (0, 60000, 300);
}

TestSuite (runs_disconnect, .init = s_setup_patient, .fini = runs_stop_all,
           .timeout = 60);

//  Sends a POST of body to path over a raw socket; returns the socket.
static int
s_connect_and_post (const char *path, const char *body)
{
    int fd = http_raw_post (runs_env.srv.port, path, runs_env.auth, body);
    cr_assert (fd >= 0, "could not post to %s", path);
    return fd;
}

//  Posts a streaming request and reads until the response holds needle;
//  returns the socket, still open.
static int
s_stream_until (const char *path, const char *body, const char *needle)
{
    int fd = s_connect_and_post (path, body);
    char got[16384];
    cr_assert_eq (http_raw_read_until (fd, needle, 15000, got, sizeof (got)), 0,
                  "no '%s' in the stream: %s", needle, got);
    cr_assert (strstr (got, "HTTP/1.1 200"), "%s", got);
    return fd;
}

static void
s_hang_up_and_expect_abort (const char *path, const char *body, const char *needle)
{
    runs_stats_t before;
    RUNS_POLL_STATS (before, before.active == 0, 5000);
    int fd = s_stream_until (path, body, needle);
    runs_stats_t mid = runs_stats ();
    cr_assert_eq (mid.active, before.active + 1, "upstream call not in flight");
    close (fd);
    runs_stats_t after;
    RUNS_POLL_STATS (after,
                     after.aborted >= before.aborted + 1 && after.active == before.active,
                     5000);
    cr_assert_eq (after.aborted, before.aborted + 1,
                  "the upstream transfer was not cancelled within 5 s");
    cr_assert_eq (after.active, before.active);
}

Test (runs_disconnect, hang_up_mid_stream_cancels_the_upstream_call)
{
    s_hang_up_and_expect_abort ("/v1/chat/completions",
                                "{\"model\":\"openai/stall\",\"stream\":true,"
                                "\"messages\":[{\"role\":\"user\","
                                "\"content\":\"hi\"}]}",
                                "\"content\":\"Hello\"");
    s_assert_still_serving ();
    //  And the agent stream endpoint does the same.
    s_hang_up_and_expect_abort ("/v1/agent/run/stream",
                                "{\"message\":\"hi\",\"options\":{\"model\":"
                                "\"anthropic/stall\"}}",
                                "\"delta\":\"Hello\"");
    s_assert_still_serving ();
}

Test (runs_disconnect, hang_up_before_any_output_cancels_the_upstream_call)
{
    //  Anthropic with thinking on: the stand-in sends a thinking delta (not
    //  part of the answer) and stalls, so the client gets no byte yet.  A
    //  reasoning model can think like this for minutes.
    runs_stats_t before;
    RUNS_POLL_STATS (before, before.active == 0, 5000);
    int fd = s_connect_and_post ("/v1/chat/completions",
                                 "{\"model\":\"anthropic/stall\",\"stream\":true,"
                                 "\"reasoning_effort\":\"low\",\"messages\":[{"
                                 "\"role\":\"user\",\"content\":\"hi\"}]}");
    runs_stats_t mid;
    RUNS_POLL_STATS (mid, mid.active >= before.active + 1, 10000);
    cr_assert_eq (mid.active, before.active + 1, "upstream call not made");
    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_at_str (last, "body.thinking.type"), "enabled");
    cJSON_Delete (last);
    close (fd);
    runs_stats_t after;
    RUNS_POLL_STATS (after, after.aborted >= before.aborted + 1, 5000);
    cr_assert_eq (after.aborted, before.aborted + 1,
                  "the client left before the first delta, and the upstream "
                  "transfer was still open 5 s later");
}
