/*  =========================================================================
    test_http - the HTTP front driven over real sockets against the real
    `clawgate serve`: auth forms, scopes, the error format, 404/405/413,
    /health, /ready, /status, /v1/models, CORS preflight, clean SIGTERM.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <cjson/cJSON.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

#define SCOPED_TOKEN "sessions-only-token-0123456789"
#define PASSWORD "correct horse battery staple"

static const char *s_config =
    "{\"auth\":{\"mode\":\"token+password\",\"token\":"
    "\"main-token-0123456789abcdef\",\"password\":\"" PASSWORD "\","
    "\"tokens\":[{\"token\":\"" SCOPED_TOKEN "\",\"name\":\"ci\","
    "\"scopes\":[\"sessions\"]}]},"
    "\"gateway\":{\"maxBodyBytes\":4096},"
    "\"channels\":{\"telegram\":{\"enabled\":true,\"botToken\":\"1:x\","
    "\"baseUrl\":\"http://127.0.0.1:1\"},\"slack\":{\"enabled\":false}},"
    "\"providers\":{\"openai\":{\"models\":[\"gpt-4o-mini\"]}}}";

static served_t s_srv;

static void
s_setup (void)
{
    cr_assert_eq (served_start (&s_srv, s_config, NULL), 0,
                  "clawgate serve did not start");
    snprintf (s_srv.token, sizeof (s_srv.token), "main-token-0123456789abcdef");
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
        cr_assert_eq (rc, 0, "serve exited %d:\n%s", rc, err);
    }
}

//  Parses an error body and checks it has the shape of docs/errors.md#the-error-object.
static void
s_assert_error (const http_resp_t *r, long status, const char *code)
{
    cr_assert_eq (r->status, status, "status %ld, body %s", r->status, r->body);
    cJSON *j = cJSON_Parse (r->body);
    cr_assert_not_null (j, "error body is not JSON: %s", r->body);
    cJSON *e = cJSON_GetObjectItem (j, "error");
    cr_assert (cJSON_IsObject (e));
    cr_assert_str_eq (cJSON_GetObjectItem (e, "code")->valuestring, code);
    cr_assert (cJSON_IsString (cJSON_GetObjectItem (e, "message")));
    cr_assert_str_eq (cJSON_GetObjectItem (e, "type")->valuestring,
                      status >= 500 ? "server_error" : "client_error");
    cr_assert_not_null (cJSON_GetObjectItem (e, "param"));
    cJSON_Delete (j);
}

static void
s_request (const char *method, const char *path, const char *h1, const char *body,
           size_t len, http_resp_t *r)
{
    char url[512];
    snprintf (url, sizeof (url), "%s%s", s_srv.base, path);
    const char *headers[] = {h1, NULL};
    http_do (method, url, h1 ? headers : NULL, body, len, r);
}

TestSuite (http, .init = s_setup, .fini = s_teardown, .timeout = 60);

Test (http, health_and_ready_need_no_auth)
{
    http_resp_t r;
    s_request ("GET", "/health", NULL, NULL, 0, &r);
    cr_assert_eq (r.status, 200);
    cr_assert_str_eq (r.body, "{\"ok\":true}");
    http_resp_free (&r);
    s_request ("GET", "/ready", NULL, NULL, 0, &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    cr_assert (strstr (r.body, "\"system\":1"), "%s", r.body);
    http_resp_free (&r);
}

Test (http, status_has_the_full_body)
{
    http_resp_t r;
    cr_assert_eq (served_get (&s_srv, "/status", s_srv.token, &r), 0);
    cr_assert_eq (r.status, 200, "%s", r.body);
    cJSON *j = cJSON_Parse (r.body);
    cr_assert_str_eq (cJSON_GetObjectItem (j, "status")->valuestring, "ok");
    cr_assert (cJSON_IsString (cJSON_GetObjectItem (j, "version")));
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (j, "uptime")));
    cJSON *gw = cJSON_GetObjectItem (j, "gateway");
    cr_assert_eq (cJSON_GetObjectItem (gw, "port")->valueint, s_srv.port);
    cr_assert_str_eq (cJSON_GetObjectItem (gw, "bind")->valuestring, "127.0.0.1");
    cr_assert_str_eq (cJSON_GetObjectItem (gw, "auth")->valuestring, "token+password");
    cJSON *ch = cJSON_GetObjectItem (j, "channels");
    cr_assert_str_eq (cJSON_GetObjectItem (ch, "telegram")->valuestring, "disconnected");
    cr_assert_str_eq (cJSON_GetObjectItem (ch, "slack")->valuestring, "disabled");
    cr_assert_str_eq (cJSON_GetObjectItem (ch, "discord")->valuestring, "not_configured");
    cJSON_Delete (j);
    http_resp_free (&r);
}

Test (http, every_credential_form_is_accepted)
{
    char bearer[160], query[256], basic[256], pwq[256];
    snprintf (bearer, sizeof (bearer), "Authorization: Bearer %s", s_srv.token);
    snprintf (query, sizeof (query), "/status?token=%s", s_srv.token);
    //  base64("user:correct horse battery staple")
    snprintf (basic, sizeof (basic),
              "Authorization: Basic "
              "dXNlcjpjb3JyZWN0IGhvcnNlIGJhdHRlcnkgc3RhcGxl");
    snprintf (pwq, sizeof (pwq),
              "/status?password=correct%%20horse%%20battery%%20staple");
    struct {
        const char *path, *header;
    } forms[] = {{"/status", bearer},
                 {query, NULL},
                 {"/status", basic},
                 {"/status", "X-OpenClaw-Password: " PASSWORD},
                 {pwq, NULL}};
    for (size_t i = 0; i < sizeof (forms) / sizeof (forms[0]); i++) {
        http_resp_t r;
        s_request ("GET", forms[i].path, forms[i].header, NULL, 0, &r);
        cr_assert_eq (r.status, 200, "form %zu: %ld %s", i, r.status, r.body);
        http_resp_free (&r);
    }
}

Test (http, wrong_and_missing_credentials_get_401)
{
    const char *bad[] = {"Authorization: Bearer wrong-token-0000000000000",
                         "Authorization: Basic dXNlcjp3cm9uZw==",
                         "Authorization: Basic !!!notbase64",
                         "Authorization: Digest abc",
                         "X-OpenClaw-Password: wrong",
                         NULL};
    for (int i = 0; bad[i]; i++) {
        http_resp_t r;
        s_request ("GET", "/status", bad[i], NULL, 0, &r);
        s_assert_error (&r, 401, "unauthorized");
        cr_assert (strstr (r.headers, "WWW-Authenticate: Bearer"));
        http_resp_free (&r);
    }
    http_resp_t r;
    s_request ("GET", "/status", NULL, NULL, 0, &r);
    s_assert_error (&r, 401, "unauthorized");
    http_resp_free (&r);
    s_request ("GET", "/status?token=nope", NULL, NULL, 0, &r);
    s_assert_error (&r, 401, "unauthorized");
    http_resp_free (&r);
}

Test (http, scopes_give_403)
{
    http_resp_t r;
    s_request ("GET", "/v1/models", "Authorization: Bearer " SCOPED_TOKEN, NULL, 0, &r);
    s_assert_error (&r, 403, "forbidden");
    http_resp_free (&r);
    //  /status needs no particular scope: the same token reads it.
    s_request ("GET", "/status", "Authorization: Bearer " SCOPED_TOKEN, NULL, 0, &r);
    cr_assert_eq (r.status, 200);
    http_resp_free (&r);
}

Test (http, models_come_from_config)
{
    http_resp_t r;
    cr_assert_eq (served_get (&s_srv, "/v1/models", s_srv.token, &r), 0);
    cr_assert_eq (r.status, 200);
    cJSON *j = cJSON_Parse (r.body);
    cr_assert_str_eq (cJSON_GetObjectItem (j, "object")->valuestring, "list");
    cJSON *data = cJSON_GetObjectItem (j, "data");
    cr_assert_eq (cJSON_GetArraySize (data), 2);
    cJSON *echo = cJSON_GetArrayItem (data, 0);
    cr_assert_str_eq (cJSON_GetObjectItem (echo, "id")->valuestring, "local/echo");
    cr_assert_str_eq (cJSON_GetObjectItem (echo, "owned_by")->valuestring, "local");
    cJSON *oa = cJSON_GetArrayItem (data, 1);
    cr_assert_str_eq (cJSON_GetObjectItem (oa, "id")->valuestring, "openai/gpt-4o-mini");
    cr_assert_str_eq (cJSON_GetObjectItem (oa, "object")->valuestring, "model");
    cr_assert (cJSON_IsNumber (cJSON_GetObjectItem (oa, "created")));
    cJSON_Delete (j);
    http_resp_free (&r);
}

Test (http, unknown_route_404_wrong_method_405)
{
    char auth[160];
    snprintf (auth, sizeof (auth), "Authorization: Bearer %s", s_srv.token);
    http_resp_t r;
    s_request ("GET", "/v1/nothing-here", auth, NULL, 0, &r);
    s_assert_error (&r, 404, "not_found");
    http_resp_free (&r);
    s_request ("DELETE", "/status", auth, NULL, 0, &r);
    s_assert_error (&r, 405, "invalid_request");
    cr_assert (strstr (r.headers, "Allow: OPTIONS, GET"), "%s", r.headers);
    http_resp_free (&r);
    s_request ("PUT", "/v1/models", auth, "{}", 2, &r);
    s_assert_error (&r, 405, "invalid_request");
    http_resp_free (&r);
}

Test (http, oversized_body_gets_413_before_it_is_read)
{
    char auth[160];
    snprintf (auth, sizeof (auth), "Authorization: Bearer %s", s_srv.token);
    size_t len = 64 * 1024;  //  Limit is 4096 in this config
    char *big = malloc (len);
    memset (big, 'x', len);
    http_resp_t r;
    s_request ("POST", "/status", auth, big, len, &r);
    s_assert_error (&r, 413, "invalid_request");
    cr_assert (strstr (r.body, "4096"), "%s", r.body);
    http_resp_free (&r);
    free (big);
    //  The server is still fine afterwards.
    cr_assert_eq (served_get (&s_srv, "/status", s_srv.token, &r), 0);
    cr_assert_eq (r.status, 200);
    http_resp_free (&r);
}

Test (http, options_preflight_is_not_authenticated)
{
    http_resp_t r;
    s_request ("OPTIONS", "/status", "Origin: http://example.test", NULL, 0, &r);
    cr_assert_eq (r.status, 204);
    cr_assert (strstr (r.headers, "Access-Control-Allow-Methods: OPTIONS, GET"), "%s",
               r.headers);
    cr_assert (strstr (r.headers, "Access-Control-Allow-Headers:"));
    http_resp_free (&r);
}

Test (http, malformed_requests_do_not_hurt_the_server)
{
    char auth[160];
    snprintf (auth, sizeof (auth), "Authorization: Bearer %s", s_srv.token);
    //  Binary and broken UTF-8 in the path and query; a huge header.
    const char *paths[] = {"/status?token=%ff%fe%00", "/%c3%28", "/v1/%00",
                           "/status?x=%zz", NULL};
    for (int i = 0; paths[i]; i++) {
        http_resp_t r;
        s_request ("GET", paths[i], NULL, NULL, 0, &r);
        cr_assert (r.status == 401 || r.status == 404 || r.status == 400, "%s -> %ld",
                   paths[i], r.status);
        http_resp_free (&r);
    }
    char *huge = malloc (70000);
    memset (huge, 'a', 69999);
    memcpy (huge, "X-Big: ", 7);
    huge[69999] = 0;
    http_resp_t r;
    s_request ("GET", "/status", huge, NULL, 0, &r);
    cr_assert_neq (r.status, 200);
    http_resp_free (&r);
    free (huge);
    cr_assert_eq (served_get (&s_srv, "/status", s_srv.token, &r), 0);
    cr_assert_eq (r.status, 200);
    http_resp_free (&r);
}

Test (http, sigterm_exits_zero_and_logs_each_request_without_secrets)
{
    http_resp_t r;
    char path[256];
    snprintf (path, sizeof (path), "/status?token=%s", s_srv.token);
    cr_assert_eq (served_get (&s_srv, path, NULL, &r), 0);
    cr_assert_eq (r.status, 200);
    http_resp_free (&r);
    char err[65536];
    int rc = proc_stop (&s_srv.proc, SIGTERM, 20000);
    proc_stderr (&s_srv.proc, err, sizeof (err));
    cr_assert_eq (rc, 0, "exit %d, stderr:\n%s", rc, err);
    cr_assert (strstr (err, "INFO http: GET /status 200"), "%s", err);
    cr_assert_null (strstr (err, s_srv.token), "token leaked into the log");
    cr_assert (strstr (err, "stopped cleanly"), "%s", err);
}
