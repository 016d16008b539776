/*  =========================================================================
    test_runs_openai - POST /v1/chat/completions against the OpenAI and
    Anthropic providers, through the real `clawgate serve` to cg_standin
    (docs/openai-api.md#chat-completions, docs/runs.md): non-streamed and streamed answers in OpenAI's
    format, what the provider receives (model prefix stripped, key, stream
    flags, system prompt placement), tool calls both ways, and an upstream
    SSE body written a few bytes at a time.
    =========================================================================
*/
#include "runs.h"

static void
s_setup (void)
{
    runs_start_with (0, 1000, 1000);
}

TestSuite (runs_openai, .init = s_setup, .fini = runs_stop_all, .timeout = 60);

static const char *s_tools =
    "[{\"type\":\"function\",\"function\":{\"name\":\"browser_navigate\","
    "\"parameters\":{\"type\":\"object\"}}}]";

//  A chat completion body for model with one user message.
static void
s_body (char *buf, size_t cap, const char *model, const char *text, const char *extra)
{
    snprintf (buf, cap,
              "{\"model\":\"%s\",\"messages\":[{\"role\":\"user\","
              "\"content\":\"%s\"}]%s%s}",
              model, text, extra ? "," : "", extra ? extra : "");
}

//  Checks a non-streamed chat.completion carrying text.
static void
s_assert_completion (const http_resp_t *r, const char *model, const char *text)
{
    cr_assert_eq (r->status, 200, "%ld %s", r->status, r->body);
    cr_assert (strstr (r->headers, "Content-Type: application/json"), "%s", r->headers);
    cJSON *j = runs_json (r);
    cr_assert_str_eq (runs_str (j, "object"), "chat.completion");
    cr_assert (runs_str (j, "id") && !strncmp (runs_str (j, "id"), "chatcmpl-", 9), "%s",
               r->body);
    cr_assert_str_eq (runs_str (j, "model"), model);
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (j, "created")));
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (j, "choices")), 1);
    cr_assert_eq (runs_at_num (j, "choices.0.index"), 0);
    cr_assert_str_eq (runs_at_str (j, "choices.0.message.role"), "assistant");
    cr_assert_str_eq (runs_at_str (j, "choices.0.message.content"), text, "%s", r->body);
    cr_assert_str_eq (runs_at_str (j, "choices.0.finish_reason"), "stop");
    double prompt = runs_at_num (j, "usage.prompt_tokens");
    double completion = runs_at_num (j, "usage.completion_tokens");
    cr_assert (prompt > 0 && completion > 0, "%s", r->body);
    cr_assert_eq (runs_at_num (j, "usage.total_tokens"), prompt + completion);
    cJSON_Delete (j);
}

//  Checks the invariants of a whole OpenAI-format stream: one id, the
//  chunk object, role first, a finish chunk with finish_reason, [DONE].
static void
s_assert_stream_shape (const runs_oai_stream_t *s, const char *model, const char *finish)
{
    cr_assert (s->done, "the stream did not end with data: [DONE]");
    int n = cJSON_GetArraySize (s->chunks);
    cr_assert (n >= 3, "only %d chunks", n);
    const char *id = runs_str (cJSON_GetArrayItem (s->chunks, 0), "id");
    cr_assert (id && !strncmp (id, "chatcmpl-", 9));
    int finishes = 0;
    for (int i = 0; i < n; i++) {
        const cJSON *c = cJSON_GetArrayItem (s->chunks, i);
        cr_assert_str_eq (runs_str (c, "object"), "chat.completion.chunk");
        cr_assert_str_eq (runs_str (c, "id"), id, "chunk %d has another id", i);
        cr_assert_str_eq (runs_str (c, "model"), model);
        const char *f = runs_at_str (c, "choices.0.finish_reason");
        if (f) {
            cr_assert_str_eq (f, finish);
            finishes++;
        }
    }
    cr_assert_eq (finishes, 1, "%d chunks had a finish_reason", finishes);
    cr_assert_str_eq (
        runs_at_str (cJSON_GetArrayItem (s->chunks, 0), "choices.0.delta.role"),
        "assistant");
}

//  True if the process has libcurl mapped.
static bool
s_maps_libcurl (pid_t pid)
{
    char path[64], line[512];
    snprintf (path, sizeof (path), "/proc/%d/maps", (int) pid);
    FILE *f = fopen (path, "r");
    cr_assert (f, "cannot read %s", path);
    bool found = false;
    while (!found && fgets (line, sizeof (line), f))
        found = strstr (line, "libcurl") != NULL;
    fclose (f);
    return found;
}

//  libcurl and its twenty libraries cost 5 MiB of RSS: the gateway loads
//  them on the first provider call (actors/curl_lazy.c), not before.
Test (runs_openai, libcurl_loaded_on_first_provider_call)
{
    http_resp_t r;
    runs_get ("/status", &r);
    cr_assert_eq (r.status, 200);
    http_resp_free (&r);
    cr_assert_not (s_maps_libcurl (runs_env.srv.proc.pid),
                   "an idle gateway has libcurl loaded");
    char body[512];
    s_body (body, sizeof (body), "openai/gpt-4o-mini", "load it", NULL);
    runs_post ("/v1/chat/completions", body, &r);
    s_assert_completion (&r, "openai/gpt-4o-mini", OPENAI_HELLO "load it");
    http_resp_free (&r);
    cr_assert (s_maps_libcurl (runs_env.srv.proc.pid),
               "a provider call worked without libcurl loaded?");
}

Test (runs_openai, openai_non_streamed)
{
    char body[512];
    s_body (body, sizeof (body), "openai/gpt-4o-mini", "ping one two", NULL);
    http_resp_t r;
    runs_post ("/v1/chat/completions", body, &r);
    s_assert_completion (&r, "openai/gpt-4o-mini", OPENAI_HELLO "ping one two");
    http_resp_free (&r);

    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_str (last, "path"), "/v1/chat/completions");
    cr_assert_str_eq (runs_at_str (last, "body.model"), "gpt-4o-mini");
    cr_assert_str_eq (runs_at_str (last, "headers.authorization"), "Bearer " OPENAI_KEY);
    const cJSON *stream = runs_at (last, "body.stream");
    cr_assert (!stream || cJSON_IsFalse (stream), "stream sent as true");
    cr_assert_str_eq (runs_at_str (last, "body.messages.0.role"), "user");
    cr_assert_str_eq (runs_at_str (last, "body.messages.0.content"), "ping one two");
    cJSON_Delete (last);
}

Test (runs_openai, openai_streamed_with_usage)
{
    char body[512];
    s_body (body, sizeof (body), "openai/gpt-4o-mini", "stream me",
            "\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    http_resp_t r;
    runs_post ("/v1/chat/completions", body, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    cr_assert (strstr (r.headers, "Content-Type: text/event-stream"), "%s", r.headers);
    runs_oai_stream_t s;
    runs_parse_oai_stream (r.body, &s);
    s_assert_stream_shape (&s, "openai/gpt-4o-mini", "stop");
    cr_assert_str_eq (s.text, OPENAI_HELLO "stream me");
    cr_assert (s.content_chunks > 1, "not streamed: %d content chunks", s.content_chunks);
    //  The usage chunk: choices [], usage, after the finish chunk.
    int n = cJSON_GetArraySize (s.chunks);
    const cJSON *u = cJSON_GetArrayItem (s.chunks, n - 1);
    const cJSON *choices = cJSON_GetObjectItem (u, "choices");
    cr_assert (cJSON_IsArray (choices) && cJSON_GetArraySize (choices) == 0,
               "last chunk is not the usage chunk");
    double prompt = runs_at_num (u, "usage.prompt_tokens");
    double completion = runs_at_num (u, "usage.completion_tokens");
    cr_assert (prompt > 0 && completion > 0);
    cr_assert_eq (runs_at_num (u, "usage.total_tokens"), prompt + completion);
    cr_assert_str_eq (
        runs_at_str (cJSON_GetArrayItem (s.chunks, n - 2), "choices.0.finish_reason"),
        "stop");
    cJSON_Delete (s.chunks);
    http_resp_free (&r);

    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_str (last, "path"), "/v1/chat/completions");
    cr_assert_str_eq (runs_at_str (last, "body.model"), "gpt-4o-mini");
    cr_assert (cJSON_IsTrue (runs_at (last, "body.stream")));
    cr_assert (cJSON_IsTrue (runs_at (last, "body.stream_options.include_usage")));
    cJSON_Delete (last);
}

Test (runs_openai, openai_streamed_without_usage_has_no_usage_chunk)
{
    char body[512];
    s_body (body, sizeof (body), "openai/gpt-4o-mini", "quiet", "\"stream\":true");
    http_resp_t r;
    runs_post ("/v1/chat/completions", body, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    runs_oai_stream_t s;
    runs_parse_oai_stream (r.body, &s);
    s_assert_stream_shape (&s, "openai/gpt-4o-mini", "stop");
    cr_assert_str_eq (s.text, OPENAI_HELLO "quiet");
    for (int i = 0; i < cJSON_GetArraySize (s.chunks); i++) {
        const cJSON *c = cJSON_GetArrayItem (s.chunks, i);
        const cJSON *u = cJSON_GetObjectItem (c, "usage");
        cr_assert (!u || cJSON_IsNull (u), "usage was not asked for");
        cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (c, "choices")), 1);
    }
    cJSON_Delete (s.chunks);
    http_resp_free (&r);
}

Test (runs_openai, anthropic_non_streamed_moves_system_to_top_level)
{
    const char *body = "{\"model\":\"anthropic/claude-3-5-haiku\",\"messages\":["
                       "{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"hi claude\"}]}";
    http_resp_t r;
    runs_post ("/v1/chat/completions", body, &r);
    s_assert_completion (&r, "anthropic/claude-3-5-haiku", ANTHROPIC_HELLO "hi claude");
    http_resp_free (&r);

    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_str (last, "path"), "/v1/messages");
    cr_assert_str_eq (runs_at_str (last, "headers.x-api-key"), ANTHROPIC_KEY);
    const char *version = runs_at_str (last, "headers.anthropic-version");
    cr_assert (version && *version, "no anthropic-version header");
    cr_assert_str_eq (runs_at_str (last, "body.model"), "claude-3-5-haiku");
    cr_assert (runs_at_num (last, "body.max_tokens") > 0);
    cr_assert_str_eq (runs_at_str (last, "body.system"), "Be brief.");
    const cJSON *msgs = runs_at (last, "body.messages");
    cr_assert_eq (cJSON_GetArraySize (msgs), 1, "system left in messages");
    for (const cJSON *m = msgs->child; m; m = m->next)
        cr_assert_str_neq (runs_str (m, "role"), "system");
    cr_assert_str_eq (runs_at_str (last, "body.messages.0.role"), "user");
    const cJSON *stream = runs_at (last, "body.stream");
    cr_assert (!stream || cJSON_IsFalse (stream));
    cJSON_Delete (last);
}

Test (runs_openai, anthropic_streamed)
{
    const char *body = "{\"model\":\"anthropic/claude-3-5-haiku\",\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},\"messages\":["
                       "{\"role\":\"system\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":\"stream claude\"}]}";
    http_resp_t r;
    runs_post ("/v1/chat/completions", body, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    runs_oai_stream_t s;
    runs_parse_oai_stream (r.body, &s);
    s_assert_stream_shape (&s, "anthropic/claude-3-5-haiku", "stop");
    cr_assert_str_eq (s.text, ANTHROPIC_HELLO "stream claude");
    cr_assert (s.content_chunks > 1);
    const cJSON *u = cJSON_GetArrayItem (s.chunks, cJSON_GetArraySize (s.chunks) - 1);
    double prompt = runs_at_num (u, "usage.prompt_tokens");
    double completion = runs_at_num (u, "usage.completion_tokens");
    cr_assert (prompt > 0 && completion > 0, "anthropic usage lost");
    cr_assert_eq (runs_at_num (u, "usage.total_tokens"), prompt + completion);
    cJSON_Delete (s.chunks);
    http_resp_free (&r);

    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_str (last, "path"), "/v1/messages");
    cr_assert (cJSON_IsTrue (runs_at (last, "body.stream")));
    cr_assert_str_eq (runs_at_str (last, "body.system"), "Be brief.");
    cr_assert_eq (cJSON_GetArraySize (runs_at (last, "body.messages")), 1);
    //  Anthropic has no stream_options: it must not be forwarded.
    cr_assert_null (runs_at (last, "body.stream_options"));
    cJSON_Delete (last);
}

//  Checks tool_calls[0] of a whole message: browser_navigate with JSON
//  arguments.
static void
s_assert_tool_call (const cJSON *call, const char *id)
{
    cr_assert_str_eq (runs_str (call, "id"), id);
    cr_assert_str_eq (runs_str (call, "type"), "function");
    cr_assert_str_eq (runs_at_str (call, "function.name"), "browser_navigate");
    const char *args = runs_at_str (call, "function.arguments");
    cr_assert_not_null (args, "arguments must be a JSON string");
    cJSON *a = cJSON_Parse (args);
    cr_assert (cJSON_IsObject (a), "arguments do not parse: %s", args);
    cr_assert_str_eq (runs_str (a, "url"), "http://127.0.0.1/");
    cJSON_Delete (a);
}

//  Runs one tool-calling model both ways and checks the OpenAI answers.
static void
s_tool_round (const char *model, const char *call_id)
{
    char body[1024], extra[512];
    snprintf (extra, sizeof (extra), "\"tools\":%s", s_tools);
    s_body (body, sizeof (body), model, "open the page", extra);
    http_resp_t r;
    runs_post ("/v1/chat/completions", body, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    cJSON *j = runs_json (&r);
    cr_assert_str_eq (runs_at_str (j, "choices.0.finish_reason"), "tool_calls", "%s",
                      r.body);
    const cJSON *calls = runs_at (j, "choices.0.message.tool_calls");
    cr_assert_eq (cJSON_GetArraySize (calls), 1, "%s", r.body);
    s_assert_tool_call (cJSON_GetArrayItem (calls, 0), call_id);
    cr_assert_str_eq (runs_at_str (j, "choices.0.message.role"), "assistant");
    cJSON_Delete (j);
    http_resp_free (&r);

    snprintf (extra, sizeof (extra), "\"stream\":true,\"tools\":%s", s_tools);
    s_body (body, sizeof (body), model, "open the page", extra);
    runs_post ("/v1/chat/completions", body, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    runs_oai_stream_t s;
    runs_parse_oai_stream (r.body, &s);
    s_assert_stream_shape (&s, model, "tool_calls");
    cr_assert_eq (s.text_len, 0, "text in a tool-call answer: %s", s.text);
    char args[1024] = "", name[128] = "", id[128] = "";
    int with_calls = 0;
    for (const cJSON *c = s.chunks->child; c; c = c->next) {
        const cJSON *tc = runs_at (c, "choices.0.delta.tool_calls");
        if (!tc)
            continue;
        cr_assert (cJSON_IsArray (tc));
        with_calls++;
        const cJSON *t = cJSON_GetArrayItem (tc, 0);
        cr_assert_eq (runs_at_num (t, "index"), 0, "streamed calls carry index");
        if (runs_str (t, "id"))
            snprintf (id, sizeof (id), "%s", runs_str (t, "id"));
        if (runs_at_str (t, "function.name") && *runs_at_str (t, "function.name"))
            snprintf (name, sizeof (name), "%s", runs_at_str (t, "function.name"));
        if (runs_at_str (t, "function.arguments"))
            strncat (args, runs_at_str (t, "function.arguments"),
                     sizeof (args) - strlen (args) - 1);
    }
    cr_assert (with_calls >= 2, "tool call not streamed (%d chunks)", with_calls);
    cr_assert_str_eq (name, "browser_navigate");
    cr_assert_str_eq (id, call_id);
    cJSON *a = cJSON_Parse (args);
    cr_assert (cJSON_IsObject (a), "streamed arguments do not parse: %s", args);
    cr_assert_str_eq (runs_str (a, "url"), "http://127.0.0.1/");
    cJSON_Delete (a);
    cJSON_Delete (s.chunks);
    http_resp_free (&r);
}

Test (runs_openai, openai_tool_calls_pass_through)
{
    s_tool_round ("openai/tool", "call_standin_1");
    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_str (last, "path"), "/v1/chat/completions");
    cr_assert_str_eq (runs_at_str (last, "body.tools.0.type"), "function");
    cr_assert_str_eq (runs_at_str (last, "body.tools.0.function.name"),
                      "browser_navigate");
    cr_assert_str_eq (runs_at_str (last, "body.tools.0.function.parameters.type"),
                      "object");
    cJSON_Delete (last);
}

Test (runs_openai, anthropic_tools_are_translated_both_ways)
{
    s_tool_round ("anthropic/tool", "toolu_standin_1");
    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_str (last, "path"), "/v1/messages");
    cr_assert_eq (cJSON_GetArraySize (runs_at (last, "body.tools")), 1);
    cr_assert_str_eq (runs_at_str (last, "body.tools.0.name"), "browser_navigate");
    cr_assert_str_eq (runs_at_str (last, "body.tools.0.input_schema.type"), "object");
    cr_assert_null (runs_at (last, "body.tools.0.function"),
                    "OpenAI tool format sent to Anthropic");
    cJSON_Delete (last);
}

Test (runs_openai, tool_result_goes_back_to_the_model)
{
    //  The second turn of a tool loop: the assistant's call and its result.
    const char *body = "{\"model\":\"anthropic/tool\",\"tools\":[{\"type\":\"function\","
                       "\"function\":{\"name\":\"browser_navigate\",\"parameters\":"
                       "{\"type\":\"object\"}}}],\"messages\":["
                       "{\"role\":\"user\",\"content\":\"open the page\"},"
                       "{\"role\":\"assistant\",\"content\":null,\"tool_calls\":[{\"id\":"
                       "\"toolu_standin_1\",\"type\":\"function\",\"function\":{\"name\":"
                       "\"browser_navigate\",\"arguments\":\"{\\\"url\\\":\\\"http://"
                       "127.0.0.1/\\\"}\"}}]},"
                       "{\"role\":\"tool\",\"tool_call_id\":\"toolu_standin_1\","
                       "\"content\":\"page loaded\"}]}";
    http_resp_t r;
    runs_post ("/v1/chat/completions", body, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    cJSON *j = runs_json (&r);
    cr_assert_str_eq (runs_at_str (j, "choices.0.message.content"),
                      "Tool said: page loaded", "%s", r.body);
    cr_assert_str_eq (runs_at_str (j, "choices.0.finish_reason"), "stop");
    cJSON_Delete (j);
    http_resp_free (&r);
    cJSON *last = runs_last ();
    cr_assert_str_eq (runs_at_str (last, "body.messages.1.role"), "assistant");
    cr_assert_str_eq (runs_at_str (last, "body.messages.1.content.0.type"), "tool_use");
    cr_assert_str_eq (runs_at_str (last, "body.messages.1.content.0.input.url"),
                      "http://127.0.0.1/");
    cr_assert_str_eq (runs_at_str (last, "body.messages.2.role"), "user");
    cr_assert_str_eq (runs_at_str (last, "body.messages.2.content.0.type"),
                      "tool_result");
    cr_assert_str_eq (runs_at_str (last, "body.messages.2.content.0.tool_use_id"),
                      "toolu_standin_1");
    cJSON_Delete (last);
}

Test (runs_openai, split_upstream_bytes_keep_utf8_intact)
{
    const char *want = "Hello from the openai stand-in. h\xc3\xa9llo\xe2\x86\x92 "
                       "You said: caf\xc3\xa9 \xe2\x9c\x93";
    char body[512];
    s_body (body, sizeof (body), "openai/split", "caf\xc3\xa9 \xe2\x9c\x93",
            "\"stream\":true");
    http_resp_t r;
    runs_post ("/v1/chat/completions", body, &r);
    cr_assert_eq (r.status, 200, "%ld %s", r.status, r.body);
    runs_oai_stream_t s;
    runs_parse_oai_stream (r.body, &s);
    s_assert_stream_shape (&s, "openai/split", "stop");
    cr_assert_eq (s.text_len, strlen (want), "got '%s'", s.text);
    cr_assert_eq (memcmp (s.text, want, s.text_len), 0, "got '%s'", s.text);
    cJSON_Delete (s.chunks);
    http_resp_free (&r);
    //  The same, non-streamed: the JSON body arrives 1-3 bytes at a time.
    s_body (body, sizeof (body), "openai/split", "caf\xc3\xa9 \xe2\x9c\x93", NULL);
    runs_post ("/v1/chat/completions", body, &r);
    s_assert_completion (&r, "openai/split", want);
    http_resp_free (&r);
}
