/*  =========================================================================
    test_sessions - sessions over HTTP against the real binary

    Covers issue 4's list: list/get/delete, paging, filters, validation,
    the context the provider receives (read back from the stand-in's
    /_last), the order of concurrent runs on one session and the
    parallelism of runs on different sessions.
    =========================================================================
*/
#include "runs.h"

#include <pthread.h>

//  Gateway config: the stand-in as "openai", the echo provider, two
//  agents, and the given sessions block.
static void
s_start_sessions (const char *sessions_json)
{
    runs_standin_start ();
    char config[4096];
    snprintf (config, sizeof (config),
              "{\"gateway\":{\"drainTimeoutMs\":3000},"
              "\"limits\":{\"rateLimit\":0,\"maxConcurrent\":100},"
              "\"sessions\":%s,"
              "\"providers\":{"
              "\"openai\":{\"type\":\"openai\",\"baseUrl\":\"%s/v1\","
              "\"apiKey\":\"" OPENAI_KEY "\",\"models\":[\"gpt-4o-mini\","
              "\"slow\",\"error-500\"]}},"
              "\"agents\":{\"default\":{\"model\":\"local/echo\"},"
              "\"gpt\":{\"model\":\"openai/gpt-4o-mini\"},"
              "\"slow\":{\"model\":\"openai/slow\"}}}",
              sessions_json, runs_env.sbase);
    const char *env[] = {"OPENAI_API_KEY=", "OPENAI_BASE_URL=", "ANTHROPIC_API_KEY=",
                         "ANTHROPIC_BASE_URL=", NULL};
    cr_assert_eq (served_start (&runs_env.srv, config, env), 0,
                  "clawgate serve did not start");
    snprintf (runs_env.auth, sizeof (runs_env.auth), "Authorization: Bearer %s",
              runs_env.srv.token);
}

static void
s_setup (void)
{
    curl_global_init (CURL_GLOBAL_ALL);
    s_start_sessions ("{}");
}

static void
s_setup_budget (void)
{
    curl_global_init (CURL_GLOBAL_ALL);
    s_start_sessions ("{\"contextMessages\":2}");
}

static void
s_setup_queue (void)
{
    curl_global_init (CURL_GLOBAL_ALL);
    s_start_sessions ("{\"maxQueued\":2}");
}

//  One timeout for all three suites: with differing ones, criterion 2.4's
//  runner leaks 48 bytes (seen under LeakSanitizer), failing the ASan run.
TestSuite (sessions, .init = s_setup, .fini = runs_stop_all, .timeout = 90);
TestSuite (sessions_budget, .init = s_setup_budget, .fini = runs_stop_all, .timeout = 90);
TestSuite (sessions_queue, .init = s_setup_queue, .fini = runs_stop_all, .timeout = 90);

//  ---- Helpers ------------------------------------------------------------------------

//  POST /v1/agent/run; asserts 200 and returns the parsed body.
static cJSON *
s_run (const char *key, const char *agent, const char *message)
{
    char body[1024];
    snprintf (body, sizeof (body),
              "{\"message\":\"%s\",\"sessionKey\":\"%s\",\"agentId\":\"%s\"}", message,
              key, agent);
    http_resp_t r;
    runs_post ("/v1/agent/run", body, &r);
    cr_assert_eq (r.status, 200, "run on %s: %ld %s", key, r.status, r.body);
    cJSON *j = runs_json (&r);
    http_resp_free (&r);
    return j;
}

static void
s_run_drop (const char *key, const char *agent, const char *message)
{
    cJSON_Delete (s_run (key, agent, message));
}

//  GET path; asserts the status and returns the parsed body.
static cJSON *
s_get_json (const char *path, long want)
{
    http_resp_t r;
    runs_get (path, &r);
    cr_assert_eq (r.status, want, "GET %s: %ld %s", path, r.status, r.body);
    cJSON *j = runs_json (&r);
    http_resp_free (&r);
    return j;
}

static void
s_get_error (const char *path, long status, const char *code, const char *param)
{
    http_resp_t r;
    runs_get (path, &r);
    runs_assert_error (&r, status, code, param);
    http_resp_free (&r);
}

static int
s_count (const cJSON *j, const char *path)
{
    const cJSON *a = runs_at (j, path);
    cr_assert (cJSON_IsArray (a), "no array at %s", path);
    return cJSON_GetArraySize (a);
}

//  ---- List, get, delete -------------------------------------------------------------------

Test (sessions, get_returns_the_transcript_with_run_ids)
{
    cJSON *a = s_run ("conv-1", "default", "first words");
    cJSON *b = s_run ("conv-1", "default", "second words");
    cJSON *s = s_get_json ("/v1/sessions/conv-1", 200);
    cr_assert_str_eq (runs_str (s, "sessionKey"), "conv-1");
    cr_assert_str_eq (runs_str (s, "agentId"), "default");
    cr_assert_str_eq (runs_str (s, "channel"), "api");
    cr_assert_eq ((int) runs_at_num (s, "messageCount"), 4);
    cr_assert_eq (s_count (s, "messages"), 4);
    const char *want_roles[] = {"user", "assistant", "user", "assistant"};
    const char *want_text[] = {"first words", "first words", "second words",
                               "second words"};
    const cJSON *runs[] = {a, a, b, b};
    for (int i = 0; i < 4; i++) {
        char path[64];
        snprintf (path, sizeof (path), "messages.%d.role", i);
        cr_assert_str_eq (runs_at_str (s, path), want_roles[i]);
        snprintf (path, sizeof (path), "messages.%d.content", i);
        cr_assert_str_eq (runs_at_str (s, path), want_text[i]);
        snprintf (path, sizeof (path), "messages.%d.runId", i);
        cr_assert_str_eq (runs_at_str (s, path), runs_str (runs[i], "runId"));
        snprintf (path, sizeof (path), "messages.%d.createdAt", i);
        const char *t = runs_at_str (s, path);
        //  ISO-8601 UTC: 2026-11-24T03:07:55.123Z
        cr_assert (t && strlen (t) == 24 && t[10] == 'T' && t[23] == 'Z', "createdAt %s",
                   t ? t : "(none)");
    }
    cr_assert_str_eq (runs_at_str (s, "messages.1.finishReason"), "stop");
    cr_assert_str_eq (runs_at_str (s, "messages.1.model"), "local/echo");
    cr_assert (runs_at_num (s, "messages.3.usage.totalTokens") > 0);
    cr_assert (cJSON_IsNull (runs_at (s, "nextCursor")));
    cJSON_Delete (a);
    cJSON_Delete (b);
    cJSON_Delete (s);
}

Test (sessions, generated_key_is_a_session_uuid_and_is_listed)
{
    http_resp_t r;
    runs_post ("/v1/agent/run", "{\"message\":\"no key given\"}", &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    cJSON *j = runs_json (&r);
    http_resp_free (&r);
    const char *key = runs_str (j, "sessionKey");
    cr_assert (key && !strncmp (key, "session-", 8) && strlen (key) == 44,
               "generated key %s", key ? key : "(none)");
    cJSON *list = s_get_json ("/v1/sessions", 200);
    cr_assert_eq (s_count (list, "sessions"), 1);
    cr_assert_str_eq (runs_at_str (list, "sessions.0.sessionKey"), key);
    cr_assert_eq ((int) runs_at_num (list, "sessions.0.messageCount"), 2);
    cJSON_Delete (list);
    cJSON_Delete (j);
}

Test (sessions, delete_forgets_the_session)
{
    s_run_drop ("gone-1", "default", "to be deleted");
    s_run_drop ("kept-1", "default", "to be kept");
    char url[256];
    snprintf (url, sizeof (url), "%s/v1/sessions/gone-1", runs_env.srv.base);
    const char *headers[] = {runs_env.auth, NULL};
    http_resp_t r;
    http_do ("DELETE", url, headers, NULL, 0, &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    cJSON *j = runs_json (&r);
    cr_assert (cJSON_IsTrue (runs_at (j, "deleted")));
    cJSON_Delete (j);
    http_resp_free (&r);
    s_get_error ("/v1/sessions/gone-1", 404, "not_found", "sessionKey");
    http_do ("DELETE", url, headers, NULL, 0, &r);
    runs_assert_error (&r, 404, "not_found", "sessionKey");
    http_resp_free (&r);
    cJSON *list = s_get_json ("/v1/sessions", 200);
    cr_assert_eq (s_count (list, "sessions"), 1);
    cr_assert_str_eq (runs_at_str (list, "sessions.0.sessionKey"), "kept-1");
    cJSON_Delete (list);
    //  A new run on the deleted key starts a new, empty conversation.
    s_run_drop ("gone-1", "default", "fresh start");
    cJSON *s = s_get_json ("/v1/sessions/gone-1", 200);
    cr_assert_eq ((int) runs_at_num (s, "messageCount"), 2);
    cr_assert_str_eq (runs_at_str (s, "messages.0.content"), "fresh start");
    cJSON_Delete (s);
}

Test (sessions, list_pages_newest_first_with_a_cursor)
{
    const char *keys[] = {"p-a", "p-b", "p-c", "p-d", "p-e"};
    for (int i = 0; i < 5; i++)
        s_run_drop (keys[i], "default", "paging");
    //  Touch p-b again: it becomes the newest.
    s_run_drop ("p-b", "default", "again");
    const char *want[] = {"p-b", "p-e", "p-d", "p-c", "p-a"};
    int seen = 0;
    char path[512] = "/v1/sessions?limit=2";
    for (int page = 0; page < 4; page++) {
        cJSON *j = s_get_json (path, 200);
        int n = s_count (j, "sessions");
        cr_assert (n <= 2, "page of %d", n);
        for (int i = 0; i < n; i++) {
            char p[64];
            snprintf (p, sizeof (p), "sessions.%d.sessionKey", i);
            cr_assert (seen < 5, "more sessions than made");
            cr_assert_str_eq (runs_at_str (j, p), want[seen], "position %d", seen);
            seen++;
        }
        const cJSON *next = runs_at (j, "nextCursor");
        if (cJSON_IsNull (next)) {
            cJSON_Delete (j);
            break;
        }
        cr_assert (cJSON_IsString (next), "nextCursor is neither null nor a "
                                          "string");
        snprintf (path, sizeof (path), "/v1/sessions?limit=2&cursor=%s",
                  next->valuestring);
        cJSON_Delete (j);
    }
    cr_assert_eq (seen, 5, "pages gave %d sessions", seen);
}

Test (sessions, list_filters_by_channel_and_agent)
{
    s_run_drop ("f-api", "default", "from the api");
    s_run_drop ("f-gpt", "gpt", "from the gpt agent");
    //  An OpenAI call with the session header records on channel "openai".
    http_resp_t r;
    const char *oai = "{\"model\":\"local/echo\",\"messages\":[{\"role\":"
                      "\"user\",\"content\":\"from openai\"}]}";
    runs_post_raw ("/v1/chat/completions", oai, strlen (oai),
                   "X-OpenClaw-Session-Key: f-oai", &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    http_resp_free (&r);
    cJSON *j = s_get_json ("/v1/sessions?channel=openai", 200);
    cr_assert_eq (s_count (j, "sessions"), 1);
    cr_assert_str_eq (runs_at_str (j, "sessions.0.sessionKey"), "f-oai");
    cr_assert_str_eq (runs_at_str (j, "sessions.0.channel"), "openai");
    cJSON_Delete (j);
    j = s_get_json ("/v1/sessions?agentId=gpt", 200);
    cr_assert_eq (s_count (j, "sessions"), 1);
    cr_assert_str_eq (runs_at_str (j, "sessions.0.sessionKey"), "f-gpt");
    cJSON_Delete (j);
    j = s_get_json ("/v1/sessions?channel=api&agentId=default", 200);
    cr_assert_eq (s_count (j, "sessions"), 1);
    cr_assert_str_eq (runs_at_str (j, "sessions.0.sessionKey"), "f-api");
    cJSON_Delete (j);
    j = s_get_json ("/v1/sessions?channel=telegram", 200);
    cr_assert_eq (s_count (j, "sessions"), 0);
    cr_assert (cJSON_IsNull (runs_at (j, "nextCursor")));
    cJSON_Delete (j);
}

Test (sessions, messages_page_with_a_cursor)
{
    for (int i = 0; i < 3; i++)
        s_run_drop ("m-1", "default", "paged message");
    cJSON *j = s_get_json ("/v1/sessions/m-1?limit=4", 200);
    cr_assert_eq (s_count (j, "messages"), 4);
    cr_assert_eq ((int) runs_at_num (j, "messageCount"), 6);
    const char *cursor = runs_at_str (j, "nextCursor");
    cr_assert_not_null (cursor);
    char path[256];
    snprintf (path, sizeof (path), "/v1/sessions/m-1?limit=4&cursor=%s", cursor);
    cJSON *k = s_get_json (path, 200);
    cr_assert_eq (s_count (k, "messages"), 2);
    cr_assert_str_eq (runs_at_str (k, "messages.0.role"), "user");
    cr_assert_str_eq (runs_at_str (k, "messages.1.role"), "assistant");
    cr_assert (cJSON_IsNull (runs_at (k, "nextCursor")));
    cJSON_Delete (j);
    cJSON_Delete (k);
}

Test (sessions, stateless_openai_calls_are_not_recorded)
{
    http_resp_t r;
    const char *body = "{\"model\":\"local/echo\",\"messages\":[{\"role\":\"user\","
                       "\"content\":\"not recorded\"}]}";
    runs_post ("/v1/chat/completions", body, &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    http_resp_free (&r);
    cJSON *j = s_get_json ("/v1/sessions", 200);
    cr_assert_eq (s_count (j, "sessions"), 0);
    cJSON_Delete (j);
}

//  ---- Validation -----------------------------------------------------------------------

Test (sessions, bad_keys_limits_and_cursors_are_400)
{
    http_resp_t r;
    const char *bad[] = {
        "{\"message\":\"x\",\"sessionKey\":\"has space\"}",
        "{\"message\":\"x\",\"sessionKey\":\"slash/inside\"}",
        "{\"message\":\"x\",\"sessionKey\":\"\"}",
        "{\"message\":\"x\",\"sessionKey\":42}",
        "{\"message\":\"x\",\"sessionKey\":\"caf\\u00e9\"}",
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        runs_post ("/v1/agent/run", bad[i], &r);
        runs_assert_error (&r, 400, "invalid_request", "sessionKey");
        http_resp_free (&r);
    }
    char body[512], key[200];
    memset (key, 'k', 129);
    key[129] = 0;
    snprintf (body, sizeof (body), "{\"message\":\"x\",\"sessionKey\":\"%s\"}", key);
    runs_post ("/v1/agent/run", body, &r);
    runs_assert_error (&r, 400, "invalid_request", "sessionKey");
    http_resp_free (&r);
    key[128] = 0;  //  128 is the longest allowed
    snprintf (body, sizeof (body), "{\"message\":\"x\",\"sessionKey\":\"%s\"}", key);
    runs_post ("/v1/agent/run", body, &r);
    cr_assert_eq (r.status, 200, "128-character key: %s", r.body);
    http_resp_free (&r);
    const char *oai = "{\"model\":\"local/echo\",\"messages\":[{\"role\":"
                      "\"user\",\"content\":\"x\"}]}";
    runs_post_raw ("/v1/chat/completions", oai, strlen (oai),
                   "X-OpenClaw-Session-Key: no good", &r);
    runs_assert_error (&r, 400, "invalid_request", "sessionKey");
    http_resp_free (&r);
    s_get_error ("/v1/sessions/has%20space", 400, "invalid_request", "sessionKey");
    s_get_error ("/v1/sessions/", 400, "invalid_request", "sessionKey");
    s_get_error ("/v1/sessions/never-made", 404, "not_found", "sessionKey");
    s_get_error ("/v1/sessions?limit=0", 400, "invalid_request", "limit");
    s_get_error ("/v1/sessions?limit=1001", 400, "invalid_request", "limit");
    s_get_error ("/v1/sessions?limit=ten", 400, "invalid_request", "limit");
    s_get_error ("/v1/sessions?cursor=bogus", 400, "invalid_request", "cursor");
    s_get_error ("/v1/sessions?cursor=", 400, "invalid_request", "cursor");
    s_run_drop ("v-1", "default", "exists");
    s_get_error ("/v1/sessions/v-1?cursor=-5", 400, "invalid_request", "cursor");
    s_get_error ("/v1/sessions/v-1?limit=-1", 400, "invalid_request", "limit");
    //  Nothing the refused requests carried was stored.
    cJSON *j = s_get_json ("/v1/sessions", 200);
    cr_assert_eq (s_count (j, "sessions"), 2);
    cJSON_Delete (j);
}

Test (sessions, unknown_agent_or_model_records_nothing)
{
    http_resp_t r;
    runs_post ("/v1/agent/run",
               "{\"message\":\"x\",\"sessionKey\":\"u-1\",\"agentId\":\"nobody\"}", &r);
    runs_assert_error (&r, 404, "not_found", "agentId");
    http_resp_free (&r);
    runs_post ("/v1/agent/run",
               "{\"message\":\"x\",\"sessionKey\":\"u-1\",\"options\":"
               "{\"model\":\"openai/nope\"}}",
               &r);
    runs_assert_error (&r, 404, "not_found", "model");
    http_resp_free (&r);
    s_get_error ("/v1/sessions/u-1", 404, "not_found", "sessionKey");
}

//  ---- Context -------------------------------------------------------------------------------

//  The messages array of the last request the stand-in got.  Caller deletes.
static cJSON *
s_upstream_messages (void)
{
    cJSON *last = runs_last ();
    cJSON *m = cJSON_DetachItemFromObject (
        cJSON_GetObjectItemCaseSensitive (last, "body"), "messages");
    cJSON_Delete (last);
    cr_assert (cJSON_IsArray (m), "the stand-in saw no messages");
    return m;
}

static void
s_assert_message (const cJSON *msgs, int i, const char *role, const char *text)
{
    const cJSON *m = cJSON_GetArrayItem (msgs, i);
    cr_assert_not_null (m, "no message %d", i);
    cr_assert_str_eq (runs_str (m, "role"), role, "message %d", i);
    const char *c = runs_str (m, "content");
    cr_assert (c && strstr (c, text), "message %d is '%s', want '%s'", i,
               c ? c : "(none)", text);
}

Test (sessions, earlier_exchanges_are_sent_as_context)
{
    s_run_drop ("ctx-1", "gpt", "my name is Ada");
    s_run_drop ("ctx-1", "gpt", "what is my name");
    cJSON *m = s_upstream_messages ();
    cr_assert_eq (cJSON_GetArraySize (m), 3, "upstream got %d messages",
                  cJSON_GetArraySize (m));
    s_assert_message (m, 0, "user", "my name is Ada");
    s_assert_message (m, 1, "assistant", "You said: my name is Ada");
    s_assert_message (m, 2, "user", "what is my name");
    cJSON_Delete (m);
    //  Another session shares none of it.
    s_run_drop ("ctx-2", "gpt", "unrelated");
    m = s_upstream_messages ();
    cr_assert_eq (cJSON_GetArraySize (m), 1);
    s_assert_message (m, 0, "user", "unrelated");
    cJSON_Delete (m);
}

Test (sessions, failed_runs_are_recorded_but_not_context)
{
    s_run_drop ("fail-1", "gpt", "good one");
    http_resp_t r;
    runs_post ("/v1/agent/run",
               "{\"message\":\"the failing one\",\"sessionKey\":\"fail-1\","
               "\"options\":{\"model\":\"openai/error-500\"}}",
               &r);
    runs_assert_error (&r, 503, "service_unavailable", NULL);
    http_resp_free (&r);
    cJSON *s = s_get_json ("/v1/sessions/fail-1", 200);
    cr_assert_eq ((int) runs_at_num (s, "messageCount"), 4);
    cr_assert_str_eq (runs_at_str (s, "messages.2.content"), "the failing one");
    cr_assert_str_eq (runs_at_str (s, "messages.3.role"), "assistant");
    cr_assert_str_eq (runs_at_str (s, "messages.3.finishReason"), "error");
    cr_assert_str_eq (runs_at_str (s, "messages.3.error.code"), "service_unavailable");
    cJSON_Delete (s);
    //  The next run's context skips the failed exchange.
    s_run_drop ("fail-1", "gpt", "after the failure");
    cJSON *m = s_upstream_messages ();
    cr_assert_eq (cJSON_GetArraySize (m), 3, "upstream got %d messages",
                  cJSON_GetArraySize (m));
    s_assert_message (m, 0, "user", "good one");
    s_assert_message (m, 2, "user", "after the failure");
    cJSON_Delete (m);
}

Test (sessions_budget, only_the_newest_messages_fit_the_budget)
{
    s_run_drop ("b-1", "gpt", "one");
    s_run_drop ("b-1", "gpt", "two");
    s_run_drop ("b-1", "gpt", "three");
    cJSON *m = s_upstream_messages ();
    //  contextMessages 2: the newest exchange, then the new message.
    cr_assert_eq (cJSON_GetArraySize (m), 3, "upstream got %d messages",
                  cJSON_GetArraySize (m));
    s_assert_message (m, 0, "user", "two");
    s_assert_message (m, 1, "assistant", "You said: two");
    s_assert_message (m, 2, "user", "three");
    cJSON_Delete (m);
    //  The transcript itself keeps everything.
    cJSON *s = s_get_json ("/v1/sessions/b-1", 200);
    cr_assert_eq ((int) runs_at_num (s, "messageCount"), 6);
    cJSON_Delete (s);
}

//  ---- Order and parallelism ------------------------------------------------------------------

typedef struct {
    char key[64];
    char message[64];
    long status;
    long long started, ended;
} job_t;

static void *
s_job (void *arg)
{
    job_t *job = (job_t *) arg;
    char body[256];
    snprintf (body, sizeof (body),
              "{\"message\":\"%s\",\"sessionKey\":\"%s\",\"agentId\":\"slow\"}",
              job->message, job->key);
    char url[128];
    snprintf (url, sizeof (url), "%s/v1/agent/run", runs_env.srv.base);
    const char *headers[] = {runs_env.auth, "Content-Type: application/json", NULL};
    http_resp_t r;
    job->started = harness_now_ms ();
    http_do ("POST", url, headers, body, strlen (body), &r);
    job->ended = harness_now_ms ();
    job->status = r.status;
    http_resp_free (&r);
    return NULL;
}

//  Waits until the gateway has the first n_in of jobs' user messages
//  committed on key, so arrival order is the order we started them in.
static void
s_wait_messages (const char *key, int n_messages)
{
    char path[128];
    snprintf (path, sizeof (path), "/v1/sessions/%s", key);
    long long until = harness_now_ms () + 20000;
    while (harness_now_ms () < until) {
        http_resp_t r;
        runs_get (path, &r);
        cJSON *j = r.status == 200 ? cJSON_Parse (r.body) : NULL;
        http_resp_free (&r);
        int n = j ? (int) cJSON_GetNumberValue (runs_at (j, "messageCount")) : 0;
        cJSON_Delete (j);
        if (n >= n_messages)
            return;
        usleep (10000);
    }
    cr_assert_fail ("session %s never reached %d messages", key, n_messages);
}

Test (sessions, runs_on_one_session_go_one_after_another_in_arrival_order)
{
    //  "slow" answers after 500 ms.  Three runs, started so that each
    //  arrives after the one before was recorded.
    job_t jobs[3];
    pthread_t th[3];
    for (int i = 0; i < 3; i++) {
        memset (&jobs[i], 0, sizeof (jobs[i]));
        snprintf (jobs[i].key, sizeof (jobs[i].key), "order-1");
        snprintf (jobs[i].message, sizeof (jobs[i].message), "turn %d", i);
        pthread_create (&th[i], NULL, s_job, &jobs[i]);
        //  Its user message is committed at arrival: 1, then 2 with the
        //  first reply still pending, ...
        s_wait_messages ("order-1", i + 1);
    }
    for (int i = 0; i < 3; i++)
        pthread_join (th[i], NULL);
    for (int i = 0; i < 3; i++)
        cr_assert_eq (jobs[i].status, 200, "run %d: %ld", i, jobs[i].status);
    //  Serialized: each ended at least ~500 ms after the one before.
    for (int i = 1; i < 3; i++)
        cr_assert (jobs[i].ended - jobs[i - 1].ended >= 400,
                   "run %d ended %lld ms after run %d", i,
                   jobs[i].ended - jobs[i - 1].ended, i - 1);
    //  The last run's upstream request holds both earlier exchanges, so it
    //  started only after they were answered and recorded.
    cJSON *m = s_upstream_messages ();
    cr_assert_eq (cJSON_GetArraySize (m), 5, "upstream got %d messages",
                  cJSON_GetArraySize (m));
    s_assert_message (m, 0, "user", "turn 0");
    s_assert_message (m, 1, "assistant", "You said: turn 0");
    s_assert_message (m, 2, "user", "turn 1");
    s_assert_message (m, 3, "assistant", "You said: turn 1");
    s_assert_message (m, 4, "user", "turn 2");
    cJSON_Delete (m);
    //  The transcript pairs each reply with its own question.
    cJSON *s = s_get_json ("/v1/sessions/order-1", 200);
    cr_assert_eq (s_count (s, "messages"), 6);
    for (int i = 0; i < 3; i++) {
        char p[64], want[64];
        snprintf (want, sizeof (want), "turn %d", i);
        snprintf (p, sizeof (p), "messages.%d.content", 2 * i);
        cr_assert_str_eq (runs_at_str (s, p), want);
        snprintf (p, sizeof (p), "messages.%d.content", 2 * i + 1);
        cr_assert (strstr (runs_at_str (s, p), want), "reply %d: %s", i,
                   runs_at_str (s, p));
    }
    cJSON_Delete (s);
}

Test (sessions, runs_on_different_sessions_run_in_parallel)
{
    //  Four slow runs (500 ms each) on four sessions: in parallel they take
    //  about 500 ms together; one after another they would take 2 s.
    job_t jobs[4];
    pthread_t th[4];
    long long t0 = harness_now_ms ();
    for (int i = 0; i < 4; i++) {
        memset (&jobs[i], 0, sizeof (jobs[i]));
        snprintf (jobs[i].key, sizeof (jobs[i].key), "par-%d", i);
        snprintf (jobs[i].message, sizeof (jobs[i].message), "parallel %d", i);
        pthread_create (&th[i], NULL, s_job, &jobs[i]);
    }
    for (int i = 0; i < 4; i++)
        pthread_join (th[i], NULL);
    long long took = harness_now_ms () - t0;
    for (int i = 0; i < 4; i++)
        cr_assert_eq (jobs[i].status, 200, "run %d: %ld", i, jobs[i].status);
    cr_assert (took < 1700, "four slow runs on four sessions took %lld ms", took);
}

Test (sessions_queue, a_full_session_queue_answers_429)
{
    //  maxQueued 2: one running and one waiting; the third is refused.
    job_t jobs[2];
    pthread_t th[2];
    for (int i = 0; i < 2; i++) {
        memset (&jobs[i], 0, sizeof (jobs[i]));
        snprintf (jobs[i].key, sizeof (jobs[i].key), "q-1");
        snprintf (jobs[i].message, sizeof (jobs[i].message), "queued %d", i);
        pthread_create (&th[i], NULL, s_job, &jobs[i]);
        s_wait_messages ("q-1", i + 1);
    }
    http_resp_t r;
    runs_post ("/v1/agent/run", "{\"message\":\"one too many\",\"sessionKey\":\"q-1\"}",
               &r);
    runs_assert_error (&r, 429, "rate_limited", NULL);
    http_resp_free (&r);
    for (int i = 0; i < 2; i++)
        pthread_join (th[i], NULL);
    for (int i = 0; i < 2; i++)
        cr_assert_eq (jobs[i].status, 200);
    //  Once they are done the session takes runs again.
    runs_post ("/v1/agent/run", "{\"message\":\"room again\",\"sessionKey\":\"q-1\"}",
               &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    http_resp_free (&r);
}

Test (sessions, openai_calls_with_the_header_record_the_last_exchange)
{
    //  The client sends its own history; it goes upstream as given (no
    //  context added), and the session records the new user turn and reply.
    const char *body = "{\"model\":\"openai/gpt-4o-mini\",\"stream\":true,\"messages\":["
                       "{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"earlier question\"},"
                       "{\"role\":\"assistant\",\"content\":\"earlier answer\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
                       "\"the new \"},{\"type\":\"text\",\"text\":\"question\"}]}]}";
    http_resp_t r;
    runs_post_raw ("/v1/chat/completions", body, strlen (body),
                   "X-OpenClaw-Session-Key: oai-1", &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    runs_oai_stream_t st;
    runs_parse_oai_stream (r.body, &st);
    cr_assert (st.done);
    http_resp_free (&r);
    cJSON *m = s_upstream_messages ();
    cr_assert_eq (cJSON_GetArraySize (m), 4, "upstream got %d messages",
                  cJSON_GetArraySize (m));
    s_assert_message (m, 1, "user", "earlier question");
    cJSON_Delete (m);
    cJSON *s = s_get_json ("/v1/sessions/oai-1", 200);
    cr_assert_eq ((int) runs_at_num (s, "messageCount"), 2);
    cr_assert_str_eq (runs_at_str (s, "channel"), "openai");
    cr_assert_str_eq (runs_at_str (s, "messages.0.content"), "the new question");
    cr_assert_str_eq (runs_at_str (s, "messages.1.content"), st.text);
    cr_assert_str_eq (runs_at_str (s, "messages.1.model"), "openai/gpt-4o-mini");
    cJSON_Delete (st.chunks);
    cJSON_Delete (s);
}
