/*  =========================================================================
    runs - the runs harness (see runs.h)

    Moved here from tests/integration/runs_common.h, a header of static
    functions that every suite compiled again.
    =========================================================================
*/
#include "runs.h"

#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

runs_env_t runs_env;

//  ---- Fixture ------------------------------------------------------------------

//  proc_start runs $CLAWGATE_BIN, so point that at the stand-in for the
//  one fork.  We are single-threaded here (the test's own process).
void
runs_standin_start (void)
{
    const char *bin = getenv ("CLAWGATE_STANDIN");
    cr_assert (bin && *bin, "CLAWGATE_STANDIN is not set (run under ctest)");
    char saved[1024] = "";
    const char *cur = getenv ("CLAWGATE_BIN");
    bool had = cur != NULL;
    if (had)
        snprintf (saved, sizeof (saved), "%s", cur);
    setenv ("CLAWGATE_BIN", bin, 1);
    const char *args[] = {
        "--port",      "0", "--openai-key", OPENAI_KEY, "--anthropic-key",
        ANTHROPIC_KEY, NULL};
    int rc = proc_start (&runs_env.standin, args, NULL);
    if (had)
        setenv ("CLAWGATE_BIN", saved, 1);
    else
        unsetenv ("CLAWGATE_BIN");
    cr_assert_eq (rc, 0, "could not start the stand-in");
    char line[256];
    cr_assert_eq (proc_wait_line (&runs_env.standin, "listening on 127.0.0.1:", 15000,
                                  line, sizeof (line)),
                  0, "the stand-in did not say it was listening");
    int port = atoi (strrchr (line, ':') + 1);
    cr_assert (port > 0, "bad stand-in line: %s", line);
    snprintf (runs_env.sbase, sizeof (runs_env.sbase), "http://127.0.0.1:%d", port);
}

//  Starts stand-in and gateway.  request_timeout_ms 0 keeps the default;
//  stall_ms is both providers' stallTimeoutMs; keepalive_ms the gateway's
//  sseKeepaliveMs.  A stream that stays silent for one keep-alive interval
//  begins (200) so that a client gone early is noticed; failures before
//  that get real HTTP statuses.  Suites that check those statuses use a
//  roomy interval, so a loaded machine cannot turn them into streams.
void
runs_start_with (int request_timeout_ms, int stall_ms, int keepalive_ms)
{
    runs_standin_start ();
    char extra[64] = "";
    if (request_timeout_ms > 0)
        snprintf (extra, sizeof (extra), ",\"requestTimeoutMs\":%d", request_timeout_ms);
    char config[4096];
    snprintf (config, sizeof (config),
              "{\"gateway\":{\"sseKeepaliveMs\":%d,\"drainTimeoutMs\":3000%s},"
              "\"limits\":{\"rateLimit\":0,\"maxConcurrent\":100},"
              "\"providers\":{"
              "\"openai\":{\"type\":\"openai\",\"baseUrl\":\"%s/v1\","
              "\"apiKey\":\"" OPENAI_KEY "\",\"models\":[\"gpt-4o-mini\","
              "\"error-400\",\"error-401\",\"error-429\",\"error-500\","
              "\"garbage\",\"stall\",\"slow\",\"split\",\"long\",\"tool\"],"
              "\"stallTimeoutMs\":%d},"
              "\"anthropic\":{\"type\":\"anthropic\",\"baseUrl\":\"%s\","
              "\"apiKey\":\"" ANTHROPIC_KEY "\",\"models\":[\"claude-3-5-haiku\","
              "\"error-500\",\"tool\",\"stall\"],\"stallTimeoutMs\":%d}},"
              "\"agents\":{\"default\":{\"model\":\"local/echo\"},"
              "\"fb\":{\"model\":\"openai/error-500\","
              "\"fallbacks\":[\"anthropic/claude-3-5-haiku\"]},"
              "\"sys\":{\"model\":\"openai/gpt-4o-mini\","
              "\"system\":\"You are terse.\"}}}",
              keepalive_ms, extra, runs_env.sbase, stall_ms, runs_env.sbase, stall_ms);
    //  The providers come from the config alone.
    const char *env[] = {"OPENAI_API_KEY=", "OPENAI_BASE_URL=", "ANTHROPIC_API_KEY=",
                         "ANTHROPIC_BASE_URL=", NULL};
    cr_assert_eq (served_start (&runs_env.srv, config, env), 0,
                  "clawgate serve did not start");
    cr_assert (runs_env.srv.token[0], "no token in %s", runs_env.srv.state);
    snprintf (runs_env.auth, sizeof (runs_env.auth), "Authorization: Bearer %s",
              runs_env.srv.token);
}

//  Stops both; the gateway must exit 0 (under ASan a leak makes it
//  non-zero).  The stand-in is stopped before any assertion can end us.
void
runs_stop_all (void)
{
    int rc = 0;
    char err[16384] = "";
    bool had_gateway = runs_env.srv.proc.pid > 0;
    //  Both take a while to stop (civetweb): let them do it side by side.
    if (runs_env.standin.pid > 0)
        kill (runs_env.standin.pid, SIGTERM);
    if (had_gateway) {
        rc = proc_stop (&runs_env.srv.proc, SIGTERM, 20000);
        proc_stderr (&runs_env.srv.proc, err, sizeof (err));
        unlink (runs_env.srv.proc.err_path);
        harness_rmtree (runs_env.srv.state);
    }
    if (runs_env.standin.pid > 0) {
        proc_stop (&runs_env.standin, SIGTERM, 10000);
        unlink (runs_env.standin.err_path);
    }
    if (had_gateway) {
        //  Show the tail of the log: that is where the reason is.
        size_t n = strlen (err);
        cr_assert_eq (rc, 0, "serve exited %d:\n%s", rc, n > 6000 ? err + n - 6000 : err);
    }
}

//  ---- HTTP ---------------------------------------------------------------------

//  POST a body to the gateway with its token (and one extra header or NULL).
void
runs_post_raw (const char *path, const char *body, size_t len, const char *extra,
               http_resp_t *r)
{
    char url[512];
    snprintf (url, sizeof (url), "%s%s", runs_env.srv.base, path);
    const char *headers[] = {runs_env.auth, "Content-Type: application/json", extra,
                             NULL};
    http_do ("POST", url, headers, body, len, r);
}

void
runs_post (const char *path, const char *body, http_resp_t *r)
{
    runs_post_raw (path, body, strlen (body), NULL, r);
}

void
runs_get (const char *path, http_resp_t *r)
{
    char url[512];
    snprintf (url, sizeof (url), "%s%s", runs_env.srv.base, path);
    const char *headers[] = {runs_env.auth, NULL};
    http_do ("GET", url, headers, NULL, 0, r);
}

//  Parses a response body; fails the test if it is not JSON.
cJSON *
runs_json (const http_resp_t *r)
{
    cJSON *j = cJSON_Parse (r->body);
    cr_assert_not_null (j, "not JSON (status %ld): %s", r->status, r->body);
    return j;
}

//  A string member (NULL if absent or not a string).
const char *
runs_str (const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

//  Walks a path like "choices.0.message.content" (numbers index arrays).
const cJSON *
runs_at (const cJSON *j, const char *path)
{
    char buf[256];
    snprintf (buf, sizeof (buf), "%s", path);
    const cJSON *cur = j;
    for (char *save = NULL, *part = strtok_r (buf, ".", &save); part && cur;
         part = strtok_r (NULL, ".", &save)) {
        if (part[0] >= '0' && part[0] <= '9' && cJSON_IsArray (cur))
            cur = cJSON_GetArrayItem (cur, atoi (part));
        else
            cur = cJSON_GetObjectItemCaseSensitive (cur, part);
    }
    return cur;
}

const char *
runs_at_str (const cJSON *j, const char *path)
{
    const cJSON *v = runs_at (j, path);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

//  A number at path; fails the test if there is none.
double
runs_at_num (const cJSON *j, const char *path)
{
    const cJSON *v = runs_at (j, path);
    cr_assert (cJSON_IsNumber (v), "no number at %s", path);
    return v->valuedouble;
}

//  Checks an error response: status, and the body of docs/errors.md#the-error-object
//  {"error":{code,message,type,param}}.  param NULL: JSON null expected.
void
runs_assert_error (const http_resp_t *r, long status, const char *code, const char *param)
{
    cr_assert_eq (r->status, status, "status %ld (want %ld), body %s", r->status, status,
                  r->body);
    cJSON *j = cJSON_Parse (r->body);
    cr_assert_not_null (j, "error body is not JSON: %s", r->body);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive (j, "error");
    cr_assert (cJSON_IsObject (e), "no error object: %s", r->body);
    cr_assert_str_eq (runs_str (e, "code") ? runs_str (e, "code") : "(none)", code,
                      "body %s", r->body);
    cr_assert (runs_str (e, "message") && *runs_str (e, "message"), "%s", r->body);
    cr_assert_str_eq (runs_str (e, "type") ? runs_str (e, "type") : "(none)",
                      status >= 500 ? "server_error" : "client_error", "%s", r->body);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive (e, "param");
    cr_assert_not_null (p, "no param member: %s", r->body);
    if (param)
        cr_assert (cJSON_IsString (p) && !strcmp (p->valuestring, param),
                   "param should be %s: %s", param, r->body);
    else
        cr_assert (cJSON_IsNull (p), "param should be null: %s", r->body);
    cJSON_Delete (j);
}

//  ---- The stand-in's hooks ------------------------------------------------------

//  GET /_last: {path, body, headers}.  Caller deletes.
cJSON *
runs_last (void)
{
    char url[128];
    snprintf (url, sizeof (url), "%s/_last", runs_env.sbase);
    http_resp_t r;
    cr_assert_eq (http_do ("GET", url, NULL, NULL, 0, &r), 0);
    cr_assert_eq (r.status, 200);
    cJSON *j = runs_json (&r);
    http_resp_free (&r);
    return j;
}

runs_stats_t
runs_stats (void)
{
    char url[128];
    snprintf (url, sizeof (url), "%s/_stats", runs_env.sbase);
    http_resp_t r;
    cr_assert_eq (http_do ("GET", url, NULL, NULL, 0, &r), 0);
    cJSON *j = runs_json (&r);
    runs_stats_t s = {
        (long) runs_at_num (j, "requests"), (long) runs_at_num (j, "active"),
        (long) runs_at_num (j, "completed"), (long) runs_at_num (j, "aborted")};
    cJSON_Delete (j);
    http_resp_free (&r);
    return s;
}

//  ---- Server-Sent Events ----------------------------------------------------------

//  The next line of an SSE body at *p, without its line end: returns its
//  start, its length in *n, and moves *p past it; NULL at the body's end.
static const char *
s_sse_line (const char **p, size_t *n)
{
    const char *line = *p;
    if (!*line)
        return NULL;
    const char *nl = strchr (line, '\n');
    *n = nl ? (size_t) (nl - line) : strlen (line);
    if (*n && line[*n - 1] == '\r')
        (*n)--;
    *p = nl ? nl + 1 : line + *n;
    return line;
}

void
runs_parse_oai_stream (const char *body, runs_oai_stream_t *s)
{
    memset (s, 0, sizeof (*s));
    s->chunks = cJSON_CreateArray ();
    const char *next = body;
    const char *p;
    size_t n;
    while ((p = s_sse_line (&next, &n))) {
        if (n == 0 || p[0] == ':') {
            //  Blank line, or a comment
        }
        else {
            cr_assert (n > 6 && !strncmp (p, "data: ", 6), "not an SSE data line: '%.*s'",
                       (int) n, p);
            cr_assert (!s->done, "data after [DONE]: '%.*s'", (int) n, p);
            if (n - 6 == 6 && !strncmp (p + 6, "[DONE]", 6))
                s->done = true;
            else {
                cJSON *c = cJSON_ParseWithLength (p + 6, n - 6);
                cr_assert (cJSON_IsObject (c),
                           "chunk is not a JSON object: "
                           "'%.*s'",
                           (int) n, p);
                const char *t = runs_at_str (c, "choices.0.delta.content");
                if (t && *t) {
                    size_t tl = strlen (t);
                    cr_assert (s->text_len + tl < sizeof (s->text));
                    memcpy (s->text + s->text_len, t, tl);
                    s->text_len += tl;
                    s->content_chunks++;
                }
                cJSON_AddItemToArray (s->chunks, c);
            }
        }
    }
    s->text[s->text_len] = 0;
}

//  The OpenClaw stream: frames of "event: X" / "data: {json}" lines.
//  Returns an array of {"event":X,"data":{…}}; comments are skipped.
cJSON *
runs_parse_frames (const char *body)
{
    cJSON *frames = cJSON_CreateArray ();
    char event[64] = "";
    const char *next = body;
    const char *p;
    size_t n;
    while ((p = s_sse_line (&next, &n))) {
        if (n == 0)
            event[0] = 0;  //  End of a frame
        else if (p[0] == ':') {
        }
        else if (n > 7 && !strncmp (p, "event: ", 7))
            snprintf (event, sizeof (event), "%.*s", (int) (n - 7), p + 7);
        else {
            cr_assert (n > 6 && !strncmp (p, "data: ", 6), "not an SSE line: '%.*s'",
                       (int) n, p);
            cJSON *d = cJSON_ParseWithLength (p + 6, n - 6);
            cr_assert (cJSON_IsObject (d), "data is not a JSON object: '%.*s'", (int) n,
                       p);
            cJSON *f = cJSON_CreateObject ();
            cJSON_AddStringToObject (f, "event", event);
            cJSON_AddItemToObject (f, "data", d);
            cJSON_AddItemToArray (frames, f);
        }
    }
    return frames;
}
