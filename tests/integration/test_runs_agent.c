/*  =========================================================================
    test_runs_agent - the OpenClaw run endpoints POST /v1/agent/run and
    /v1/agent/run/stream (docs/http-api.md#agent-run) through the real `clawgate serve`
    to cg_standin: the answer's shape, session keys, the SSE frames, agents'
    system prompts, options.thinking per provider (section 7), fallback
    models, and the run timeout (section 6).
    =========================================================================
*/
#include "runs.h"

#include <ctype.h>

static void
s_setup (void)
{
    runs_start_with (0, 1000, 1000);
}

TestSuite (runs_agent, .init = s_setup, .fini = runs_stop_all, .timeout = 60);

//  Checks an /v1/agent/run answer and returns it parsed.
static cJSON *
s_assert_run (const http_resp_t *r, const char *response)
{
    cr_assert_eq (r->status, 200, "%ld %s", r->status, r->body);
    cJSON *j = runs_json (r);
    const char *id = runs_str (j, "runId");
    cr_assert (id && !strncmp (id, "run-", 4) && strlen (id) > 8, "%s", r->body);
    cr_assert_str_eq (runs_str (j, "response") ? runs_str (j, "response") : "(none)",
                      response, "%s", r->body);
    cr_assert_str_eq (runs_str (j, "finishReason") ? runs_str (j, "finishReason")
                                                   : "(none)",
                      "stop", "%s", r->body);
    double p = runs_at_num (j, "usage.promptTokens");
    double c = runs_at_num (j, "usage.completionTokens");
    cr_assert (p > 0 && c > 0, "%s", r->body);
    cr_assert_eq (runs_at_num (j, "usage.totalTokens"), p + c, "%s", r->body);
    return j;
}

//  True if key is "session-" and a canonical UUID.
static bool
s_is_generated_key (const char *key)
{
    if (!key || strncmp (key, "session-", 8) || strlen (key) != 8 + 36)
        return false;
    for (int i = 0; i < 36; i++) {
        char ch = key[8 + i];
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? ch != '-' : !isxdigit ((unsigned char) ch))
            return false;
    }
    return true;
}

Test (runs_agent, run_answers_with_the_spec_shape)
{
    http_resp_t r;
    runs_post ("/v1/agent/run",
               "{\"message\":\"the quick brown fox\",\"sessionKey\":\"runs:test-1\"}",
               &r);
    //  The default agent is local/echo: the message comes back.
    cJSON *j = s_assert_run (&r, "the quick brown fox");
    cr_assert_str_eq (runs_str (j, "sessionKey"), "runs:test-1");
    cr_assert_eq (runs_at_num (j, "usage.promptTokens"), 4);
    cr_assert_eq (runs_at_num (j, "usage.completionTokens"), 4);
    char first[80];
    snprintf (first, sizeof (first), "%s", runs_str (j, "runId"));
    cJSON_Delete (j);
    http_resp_free (&r);

    //  Without a sessionKey: a generated session-<uuid>; a new runId.
    runs_post ("/v1/agent/run", "{\"message\":\"again\"}", &r);
    j = s_assert_run (&r, "again");
    cr_assert (s_is_generated_key (runs_str (j, "sessionKey")), "%s", r.body);
    cr_assert_str_neq (runs_str (j, "runId"), first);
    cJSON_Delete (j);
    http_resp_free (&r);

    //  An explicit null sessionKey is "absent", and agentId "default" works.
    runs_post ("/v1/agent/run",
               "{\"message\":\"x\",\"sessionKey\":null,\"agentId\":\"default\"}", &r);
    j = s_assert_run (&r, "x");
    cr_assert (s_is_generated_key (runs_str (j, "sessionKey")), "%s", r.body);
    cJSON_Delete (j);
    http_resp_free (&r);
}

Test (runs_agent, run_with_a_provider_model)
{
    http_resp_t r;
    runs_post ("/v1/agent/run",
               "{\"message\":\"via openai\",\"sessionKey\":\"k1\","
               "\"options\":{\"model\":\"openai/gpt-4o-mini\"}}",
               &r);
    cJSON *j = s_assert_run (&r, OPENAI_HELLO "via openai");
    cJSON_Delete (j);
    http_resp_free (&r);
    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_at_str (last, "body.model"), "gpt-4o-mini");
    //  The default agent has no system prompt: the user message is first.
    cr_assert_str_eq (runs_at_str (last, "body.messages.0.role"), "user");
    cr_assert_str_eq (runs_at_str (last, "body.messages.0.content"), "via openai");
    cJSON_Delete (last);
}

Test (runs_agent, stream_sends_delta_frames_then_done)
{
    const char *models[] = {NULL, "openai/gpt-4o-mini", "anthropic/claude-3-5-haiku"};
    const char *want[] = {"one two three four five", OPENAI_HELLO "s t",
                          ANTHROPIC_HELLO "s t"};
    for (int m = 0; m < 3; m++) {
        char body[512];
        if (models[m])
            snprintf (body, sizeof (body),
                      "{\"message\":\"s t\",\"sessionKey\":\"stream-%d\","
                      "\"options\":{\"model\":\"%s\"}}",
                      m, models[m]);
        else
            snprintf (body, sizeof (body),
                      "{\"message\":\"%s\",\"sessionKey\":\"stream-%d\"}", want[m], m);
        http_resp_t r;
        runs_post ("/v1/agent/run/stream", body, &r);
        cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
        cr_assert (strstr (r.headers, "Content-Type: text/event-stream"), "%s",
                   r.headers);
        cJSON *frames = runs_parse_frames (r.body);
        int n = cJSON_GetArraySize (frames);
        cr_assert (n >= 3, "%d frames: %s", n, r.body);
        char text[1024] = "", run_id[80] = "";
        int deltas = 0;
        for (int i = 0; i < n - 1; i++) {
            const cJSON *f = cJSON_GetArrayItem (frames, i);
            cr_assert_str_eq (runs_str (f, "event"), "delta", "frame %d: %s", i, r.body);
            const char *d = runs_at_str (f, "data.delta");
            const char *id = runs_at_str (f, "data.runId");
            cr_assert (d && id, "frame %d lacks delta or runId: %s", i, r.body);
            cr_assert (!strncmp (id, "run-", 4));
            if (!run_id[0])
                snprintf (run_id, sizeof (run_id), "%s", id);
            cr_assert_str_eq (id, run_id, "runId changed mid-stream");
            strncat (text, d, sizeof (text) - strlen (text) - 1);
            deltas++;
        }
        cr_assert (deltas > 1, "not streamed: %d deltas", deltas);
        cr_assert_str_eq (text, want[m]);
        const cJSON *done = cJSON_GetArrayItem (frames, n - 1);
        cr_assert_str_eq (runs_str (done, "event"), "done", "%s", r.body);
        cr_assert_str_eq (runs_at_str (done, "data.runId"), run_id);
        cr_assert_str_eq (runs_at_str (done, "data.finishReason"), "stop");
        cJSON_Delete (frames);
        http_resp_free (&r);
    }
}

Test (runs_agent, agent_system_prompt_is_the_first_message)
{
    http_resp_t r;
    runs_post ("/v1/agent/run", "{\"message\":\"who are you\",\"agentId\":\"sys\"}", &r);
    cJSON *j = s_assert_run (&r, OPENAI_HELLO "who are you");
    cJSON_Delete (j);
    http_resp_free (&r);
    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_str (last, "path"), "/v1/chat/completions");
    cr_assert_str_eq (runs_at_str (last, "body.messages.0.role"), "system");
    cr_assert_str_eq (runs_at_str (last, "body.messages.0.content"), "You are terse.");
    cr_assert_str_eq (runs_at_str (last, "body.messages.1.role"), "user");
    cr_assert_str_eq (runs_at_str (last, "body.messages.1.content"), "who are you");
    cr_assert_eq (cJSON_GetArraySize (runs_at (last, "body.messages")), 2);
    cJSON_Delete (last);
    //  Same agent, Anthropic model: the prompt goes to the top-level system.
    runs_post ("/v1/agent/run",
               "{\"message\":\"and now\",\"agentId\":\"sys\",\"options\":"
               "{\"model\":\"anthropic/claude-3-5-haiku\"}}",
               &r);
    j = s_assert_run (&r, ANTHROPIC_HELLO "and now");
    cJSON_Delete (j);
    http_resp_free (&r);
    last = runs_last ();
    cr_assert_str_eq (runs_at_str (last, "body.system"), "You are terse.");
    cr_assert_str_eq (runs_at_str (last, "body.messages.0.role"), "user");
    cJSON_Delete (last);
}

//  Runs message with options and returns the stand-in's /_last.
static cJSON *
s_run_with (const char *options, const char *want_prefix)
{
    char body[512];
    snprintf (body, sizeof (body), "{\"message\":\"think\",\"options\":%s}", options);
    http_resp_t r;
    runs_post ("/v1/agent/run", body, &r);
    char want[256];
    snprintf (want, sizeof (want), "%sthink", want_prefix);
    //  Anthropic's thinking blocks are private: never part of the answer.
    cJSON *j = s_assert_run (&r, want);
    cJSON_Delete (j);
    http_resp_free (&r);
    return runs_last ();
}

Test (runs_agent, thinking_maps_to_each_provider)
{
    cJSON *last = s_run_with ("{\"model\":\"openai/gpt-4o-mini\",\"thinking\":\"low\"}",
                              OPENAI_HELLO);
    cr_assert_str_eq (runs_at_str (last, "body.reasoning_effort"), "low");
    cr_assert_null (runs_at (last, "body.thinking"));
    cJSON_Delete (last);

    last = s_run_with ("{\"model\":\"openai/gpt-4o-mini\",\"thinking\":\"off\"}",
                       OPENAI_HELLO);
    cr_assert_null (runs_at (last, "body.reasoning_effort"),
                    "thinking off must send no reasoning_effort");
    cJSON_Delete (last);

    last = s_run_with ("{\"model\":\"anthropic/claude-3-5-haiku\","
                       "\"thinking\":\"medium\"}",
                       ANTHROPIC_HELLO);
    cr_assert_str_eq (runs_at_str (last, "body.thinking.type"), "enabled");
    double budget = runs_at_num (last, "body.thinking.budget_tokens");
    cr_assert_eq (budget, 8192);
    cr_assert (runs_at_num (last, "body.max_tokens") > budget,
               "max_tokens must exceed the thinking budget");
    cr_assert_null (runs_at (last, "body.reasoning_effort"));
    cr_assert_null (runs_at (last, "body.temperature"),
                    "Anthropic refuses temperature with thinking");
    cJSON_Delete (last);

    last = s_run_with ("{\"model\":\"anthropic/claude-3-5-haiku\","
                       "\"thinking\":\"off\"}",
                       ANTHROPIC_HELLO);
    cr_assert_null (runs_at (last, "body.thinking"));
    cJSON_Delete (last);
}

Test (runs_agent, thinking_in_a_streamed_anthropic_run_stays_private)
{
    http_resp_t r;
    runs_post ("/v1/agent/run/stream",
               "{\"message\":\"deep\",\"options\":{\"model\":"
               "\"anthropic/claude-3-5-haiku\",\"thinking\":\"high\"}}",
               &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    cJSON *frames = runs_parse_frames (r.body);
    char text[1024] = "";
    for (const cJSON *f = frames->child; f; f = f->next)
        if (!strcmp (runs_str (f, "event"), "delta"))
            strncat (text, runs_at_str (f, "data.delta"),
                     sizeof (text) - strlen (text) - 1);
    cr_assert_str_eq (text, ANTHROPIC_HELLO "deep");
    cJSON_Delete (frames);
    http_resp_free (&r);
    cJSON *last = runs_last ();
    cr_assert_eq (runs_at_num (last, "body.thinking.budget_tokens"), 16384);
    cr_assert (runs_at_num (last, "body.max_tokens") > 16384);
    cJSON_Delete (last);
}

Test (runs_agent, invalid_thinking_is_refused)
{
    const char *bad[] = {"\"extreme\"", "\"\"", "3", "true", "\"LOW\"", NULL};
    for (int i = 0; bad[i]; i++) {
        char body[256];
        snprintf (body, sizeof (body),
                  "{\"message\":\"x\",\"options\":{\"thinking\":%s}}", bad[i]);
        http_resp_t r;
        runs_post ("/v1/agent/run", body, &r);
        runs_assert_error (&r, 400, "invalid_request", "options.thinking");
        http_resp_free (&r);
        runs_post ("/v1/agent/run/stream", body, &r);
        runs_assert_error (&r, 400, "invalid_request", "options.thinking");
        http_resp_free (&r);
    }
}

Test (runs_agent, fallback_model_answers_when_the_first_fails)
{
    runs_stats_t before = runs_stats ();
    http_resp_t r;
    runs_post ("/v1/agent/run", "{\"message\":\"fall back\",\"agentId\":\"fb\"}", &r);
    cJSON *j = s_assert_run (&r, ANTHROPIC_HELLO "fall back");
    cJSON_Delete (j);
    http_resp_free (&r);
    runs_stats_t after = runs_stats ();
    cr_assert_eq (after.requests - before.requests, 2,
                  "expected the failing call and the fallback");
    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_str (last, "path"), "/v1/messages");
    cr_assert_str_eq (runs_at_str (last, "body.model"), "claude-3-5-haiku");
    cJSON_Delete (last);

    //  Streamed: the fallback is invisible too (no delta came before it).
    runs_post ("/v1/agent/run/stream", "{\"message\":\"fall back\",\"agentId\":\"fb\"}",
               &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    cJSON *frames = runs_parse_frames (r.body);
    char text[1024] = "";
    for (const cJSON *f = frames->child; f; f = f->next) {
        cr_assert_str_neq (runs_str (f, "event"), "error", "%s", r.body);
        if (!strcmp (runs_str (f, "event"), "delta"))
            strncat (text, runs_at_str (f, "data.delta"),
                     sizeof (text) - strlen (text) - 1);
    }
    cr_assert_str_eq (text, ANTHROPIC_HELLO "fall back");
    cJSON *done = cJSON_GetArrayItem (frames, cJSON_GetArraySize (frames) - 1);
    cr_assert_str_eq (runs_str (done, "event"), "done");
    cJSON_Delete (frames);
    http_resp_free (&r);
}

Test (runs_agent, failed_run_without_fallback_is_an_http_error)
{
    http_resp_t r;
    runs_post ("/v1/agent/run",
               "{\"message\":\"x\",\"options\":{\"model\":\"openai/error-500\"}}", &r);
    runs_assert_error (&r, 503, "service_unavailable", NULL);
    http_resp_free (&r);
    //  Nothing streamed yet: the stream endpoint answers with a status too.
    runs_post ("/v1/agent/run/stream",
               "{\"message\":\"x\",\"options\":{\"model\":\"openai/error-429\"}}", &r);
    runs_assert_error (&r, 429, "rate_limited", NULL);
    cr_assert (strstr (r.headers, "Retry-After: 7\r\n"), "%s", r.headers);
    http_resp_free (&r);
}

//  ---- The run timeout (docs/runs.md#deadlines) -------------------------------------

static void
s_setup_timeout (void)
{
    //  The stall would last 60 s: only the run's own deadline ends it.
    runs_start_with (1500, 60000, 300);
}

TestSuite (runs_timeout, .init = s_setup_timeout, .fini = runs_stop_all, .timeout = 60);

Test (runs_timeout, run_ends_with_finish_reason_timeout)
{
    runs_stats_t before = runs_stats ();
    long long t0 = harness_now_ms ();
    http_resp_t r;
    runs_post ("/v1/agent/run",
               "{\"message\":\"wait\",\"options\":{\"model\":\"openai/stall\"}}", &r);
    long long took = harness_now_ms () - t0;
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    cJSON *j = runs_json (&r);
    cr_assert_str_eq (runs_str (j, "finishReason"), "timeout", "%s", r.body);
    cr_assert (runs_str (j, "runId") && runs_str (j, "response"), "%s", r.body);
    cJSON_Delete (j);
    http_resp_free (&r);
    cr_assert (took >= 1400, "ended before the 1500 ms timeout: %lld ms", took);
    cr_assert (took < 5000, "took %lld ms for a 1500 ms timeout", took);
    //  The upstream transfer was closed, not left to stall.
    runs_stats_t after;
    RUNS_POLL_STATS (after, after.aborted >= before.aborted + 1 && after.active == 0,
                     5000);
    cr_assert_eq (after.aborted, before.aborted + 1, "upstream not cancelled");
    cr_assert_eq (after.active, 0);
}

Test (runs_timeout, stream_ends_with_a_timeout_done_frame)
{
    long long t0 = harness_now_ms ();
    http_resp_t r;
    runs_post ("/v1/agent/run/stream",
               "{\"message\":\"wait\",\"options\":{\"model\":\"openai/stall\"}}", &r);
    long long took = harness_now_ms () - t0;
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    cr_assert (took < 5000, "took %lld ms for a 1500 ms timeout", took);
    cJSON *frames = runs_parse_frames (r.body);
    int n = cJSON_GetArraySize (frames);
    cr_assert (n >= 2, "%s", r.body);
    //  The stand-in's first word got through before the stall.
    cr_assert_str_eq (runs_at_str (cJSON_GetArrayItem (frames, 0), "data.delta"),
                      "Hello");
    const cJSON *done = cJSON_GetArrayItem (frames, n - 1);
    cr_assert_str_eq (runs_str (done, "event"), "done", "%s", r.body);
    cr_assert_str_eq (runs_at_str (done, "data.finishReason"), "timeout");
    cJSON_Delete (frames);
    http_resp_free (&r);
}
