/*  =========================================================================
    test_browser - the browser actor end to end: real headless Chromium
    (Debian's /usr/bin/chromium, installed by `make test`) driven by a real
    `clawgate serve`, over HTTP and the WebSocket

    The pages are served by this test process itself, on loopback, by a
    small civetweb server: a titled page with a 300x200 red div, a long
    page, a 404 page with a body, a redirect, and a page that never
    finishes loading.  Each test starts its own gateway (criterion forks
    each test); every wait has a deadline; nothing sleeps for readiness.
    A missing /usr/bin/chromium fails every test with a clear message.
    =========================================================================
*/
#include "runs.h"

#include <civetweb.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/stat.h>

#define CHROMIUM "/usr/bin/chromium"
#define PAGE_TITLE "Browser Test Page"
#define LONG_TITLE "Long Page"
#define VIEW_W 1280
#define VIEW_H 800

static struct mg_context *s_pages;  //  The test's own web server
static int s_page_port;
static atomic_int s_hang_seen;      //  /hang requests received
static atomic_bool s_hang_release;  //  Lets /hang handlers return

//  ---- The page server --------------------------------------------------------

static void
s_send_page (struct mg_connection *conn, int status, const char *body)
{
    mg_printf (conn,
               "HTTP/1.1 %d %s\r\nContent-Type: text/html\r\n"
               "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
               status, status == 200 ? "OK" : "Not Found", strlen (body), body);
}

static int
s_page (struct mg_connection *conn, void *cbdata)
{
    s_send_page (conn, 200,
                 "<!doctype html><html><head><title>" PAGE_TITLE "</title>"
                 "</head><body style=\"margin:0\"><div id=\"box\" style=\""
                 "position:absolute;left:40px;top:30px;width:300px;"
                 "height:200px;background:#ff0000\"></div>"
                 "<span id=\"empty\"></span></body></html>");
    return 200;
}

static int
s_long (struct mg_connection *conn, void *cbdata)
{
    s_send_page (conn, 200,
                 "<!doctype html><html><head><title>" LONG_TITLE "</title>"
                 "</head><body style=\"margin:0\"><div style=\"height:3000px;"
                 "background:linear-gradient(#fff,#00f)\">top</div>"
                 "<p id=\"bottom\">bottom</p></body></html>");
    return 200;
}

static int
s_missing (struct mg_connection *conn, void *cbdata)
{
    s_send_page (conn, 404,
                 "<!doctype html><html><head><title>Not Here"
                 "</title></head><body>no such page</body></html>");
    return 404;
}

static int
s_redirect (struct mg_connection *conn, void *cbdata)
{
    mg_printf (conn, "HTTP/1.1 302 Found\r\nLocation: /page\r\n"
                     "Content-Length: 0\r\nConnection: close\r\n\r\n");
    return 302;
}

//  Headers and half a page, then nothing: the load never ends (until the
//  test lets go, or 30 s, so the server can always stop).
static int
s_hang (struct mg_connection *conn, void *cbdata)
{
    mg_printf (conn, "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
                     "Content-Length: 100000\r\nConnection: close\r\n\r\n"
                     "<!doctype html><html><head><title>Hanging</title>");
    atomic_fetch_add (&s_hang_seen, 1);
    for (int i = 0; i < 600 && !atomic_load (&s_hang_release); i++)
        usleep (50 * 1000);
    return 200;
}

static void
s_pages_start (void)
{
    atomic_store (&s_hang_seen, 0);
    atomic_store (&s_hang_release, false);
    const char *options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "8", NULL};
    struct mg_callbacks cb;
    memset (&cb, 0, sizeof (cb));
    s_pages = mg_start (&cb, NULL, options);
    cr_assert_not_null (s_pages, "the page server did not start");
    mg_set_request_handler (s_pages, "/page$", s_page, NULL);
    mg_set_request_handler (s_pages, "/long$", s_long, NULL);
    mg_set_request_handler (s_pages, "/missing$", s_missing, NULL);
    mg_set_request_handler (s_pages, "/redirect$", s_redirect, NULL);
    mg_set_request_handler (s_pages, "/hang$", s_hang, NULL);
    struct mg_server_port ports[2];
    cr_assert (mg_get_server_ports (s_pages, 2, ports) >= 1);
    s_page_port = ports[0].port;
}

static void
s_setup (void)
{
    cr_assert (access (CHROMIUM, X_OK) == 0,
               CHROMIUM " is missing: the browser tests need Debian's chromium "
                        "(`make test` installs it via deploy/install-deps.sh --test)");
    curl_global_init (CURL_GLOBAL_ALL);
    mg_init_library (0);
    s_pages_start ();
}

static void
s_teardown (void)
{
    atomic_store (&s_hang_release, true);
    runs_stop_all ();
    if (s_pages)
        mg_stop (s_pages);
    s_pages = NULL;
    mg_exit_library ();
}

TestSuite (browser, .init = s_setup, .fini = s_teardown, .timeout = 150);

//  Starts the gateway; browser_extra is more "browser":{…} members or NULL.
static void
s_start_gw (int navigate_timeout_ms, const char *browser_extra)
{
    char config[2048];
    snprintf (config, sizeof (config),
              "{\"gateway\":{\"drainTimeoutMs\":3000},"
              "\"limits\":{\"rateLimit\":0,\"maxConcurrent\":100},"
              "\"browser\":{\"navigateTimeoutMs\":%d,\"viewportWidth\":%d,"
              "\"viewportHeight\":%d,\"headless\":true%s%s}}",
              navigate_timeout_ms, VIEW_W, VIEW_H, browser_extra ? "," : "",
              browser_extra ? browser_extra : "");
    const char *env[] = {"OPENAI_API_KEY=",
                         "OPENAI_BASE_URL=",
                         "ANTHROPIC_API_KEY=",
                         "ANTHROPIC_BASE_URL=",
                         "CLAWGATE_TOKEN=",
                         "CLAWGATE_AUTH=",
                         NULL};
    cr_assert_eq (served_start (&runs_env.srv, config, env), 0,
                  "clawgate serve did not start");
    snprintf (runs_env.auth, sizeof (runs_env.auth), "Authorization: Bearer %s",
              runs_env.srv.token);
}

static void
s_url (char *buf, size_t cap, const char *path)
{
    snprintf (buf, cap, "http://127.0.0.1:%d%s", s_page_port, path);
}

//  POST /v1/browser/navigate; the parsed reply (caller deletes) and status.
static cJSON *
s_navigate (const char *path, const char *extra, long *status)
{
    char url[256], body[512];
    s_url (url, sizeof (url), path);
    snprintf (body, sizeof (body), "{\"url\":\"%s\"%s%s}", url, extra ? "," : "",
              extra ? extra : "");
    http_resp_t r;
    runs_post ("/v1/browser/navigate", body, &r);
    *status = r.status;
    cJSON *j = runs_json (&r);
    http_resp_free (&r);
    return j;
}

//  Navigates and asserts a 200 with the title given.
static void
s_navigate_ok (const char *path, const char *extra, const char *title)
{
    long status;
    cJSON *j = s_navigate (path, extra, &status);
    char *text = cJSON_PrintUnformatted (j);
    cr_assert_eq (status, 200, "navigate %s: %s", path, text);
    cr_assert_str_eq (runs_str (j, "title"), title, "%s", text);
    free (text);
    cJSON_Delete (j);
}

static cJSON *
s_status (const char *profile)
{
    char path[128] = "/v1/browser/status";
    if (profile)
        snprintf (path, sizeof (path), "/v1/browser/status?profile=%s", profile);
    http_resp_t r;
    runs_get (path, &r);
    cr_assert_eq (r.status, 200, "status: %ld %s", r.status, r.body);
    cJSON *j = runs_json (&r);
    http_resp_free (&r);
    return j;
}

static int
s_b64v (unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

//  Decodes the whole base64 text (checking it all) and reads the PNG's
//  signature and IHDR.  Returns the decoded length, or -1.
static long
s_png_decode (const char *b64, int *w, int *h)
{
    size_t n = strlen (b64);
    if (n % 4 || n < 32)
        return -1;
    unsigned char *raw = malloc (n / 4 * 3);
    size_t k = 0;
    for (size_t i = 0; i < n; i += 4) {
        int v[4];
        int pad = 0;
        for (int j = 0; j < 4; j++) {
            if (b64[i + j] == '=' && i + 4 == n && j >= 2) {
                v[j] = 0;
                pad++;
            }
            else if ((v[j] = s_b64v ((unsigned char) b64[i + j])) < 0) {
                free (raw);
                return -1;
            }
        }
        raw[k++] = (unsigned char) (v[0] << 2 | v[1] >> 4);
        if (pad < 2)
            raw[k++] = (unsigned char) ((v[1] & 15) << 4 | v[2] >> 2);
        if (pad < 1)
            raw[k++] = (unsigned char) ((v[2] & 3) << 6 | v[3]);
    }
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    long ok =
        k >= 24 && !memcmp (raw, sig, 8) && !memcmp (raw + 12, "IHDR", 4) ? (long) k : -1;
    if (ok > 0) {
        *w = raw[16] << 24 | raw[17] << 16 | raw[18] << 8 | raw[19];
        *h = raw[20] << 24 | raw[21] << 16 | raw[22] << 8 | raw[23];
        //  The last chunk of a whole PNG is IEND.
        if (k < 12 || memcmp (raw + k - 8, "IEND", 4))
            ok = -1;
    }
    free (raw);
    return ok;
}

//  Checks a screenshot result: png, a real PNG whose IHDR matches the
//  width and height reported.  Returns the PNG's size through w and h.
static void
s_assert_png (const cJSON *j, int *w, int *h)
{
    char *text = cJSON_PrintUnformatted (j);
    size_t tl = strlen (text);
    if (tl > 300)
        text[300] = 0;
    cr_assert_str_eq (runs_str (j, "format"), "png", "%s", text);
    const char *data = runs_str (j, "data");
    cr_assert_not_null (data, "%s", text);
    long len = s_png_decode (data, w, h);
    cr_assert (len > 0, "data is not a whole base64 PNG: %s", text);
    cr_assert_eq ((int) runs_at_num (j, "width"), *w, "reported width vs IHDR: %s", text);
    cr_assert_eq ((int) runs_at_num (j, "height"), *h, "reported height vs IHDR: %s",
                  text);
    free (text);
}

static cJSON *
s_screenshot (const char *body, long *status)
{
    http_resp_t r;
    runs_post ("/v1/browser/screenshot", body, &r);
    *status = r.status;
    cJSON *j = runs_json (&r);
    http_resp_free (&r);
    return j;
}

//  Polls status until running is want (or timeout_ms); returns the last.
static cJSON *
s_wait_running (const char *profile, bool want, int timeout_ms)
{
    long long until = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *j = s_status (profile);
        bool running = cJSON_IsTrue (cJSON_GetObjectItem (j, "running"));
        if (running == want || harness_now_ms () >= until)
            return j;
        cJSON_Delete (j);
        usleep (50 * 1000);
    }
}

//  ---- Tests --------------------------------------------------------------------------

Test (browser, navigate_reports_title_final_url_and_status)
{
    s_start_gw (20000, NULL);
    cJSON *st = s_status (NULL);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (st, "running")),
               "Chromium must start lazily");
    cJSON_Delete (st);
    long long t0 = harness_now_ms ();
    long status;
    cJSON *j = s_navigate ("/page", NULL, &status);
    cr_log_info ("first navigate (Chromium start included): %lld ms",
                 harness_now_ms () - t0);
    char url[256];
    s_url (url, sizeof (url), "/page");
    cr_assert_eq (status, 200, "%s", cJSON_PrintUnformatted (j));
    cr_assert_str_eq (runs_str (j, "title"), PAGE_TITLE);
    cr_assert_str_eq (runs_str (j, "url"), url);
    cr_assert_eq ((int) runs_at_num (j, "status"), 200);
    cJSON_Delete (j);
    //  A redirect ends on the page it points to.
    t0 = harness_now_ms ();
    j = s_navigate ("/redirect", NULL, &status);
    cr_log_info ("warm navigate: %lld ms", harness_now_ms () - t0);
    cr_assert_eq (status, 200);
    cr_assert_str_eq (runs_str (j, "url"), url);
    cr_assert_str_eq (runs_str (j, "title"), PAGE_TITLE);
    cr_assert_eq ((int) runs_at_num (j, "status"), 200);
    cJSON_Delete (j);
    //  A 404 page loads, with its status.
    j = s_navigate ("/missing", NULL, &status);
    cr_assert_eq (status, 200, "%s", cJSON_PrintUnformatted (j));
    cr_assert_str_eq (runs_str (j, "title"), "Not Here");
    cr_assert_eq ((int) runs_at_num (j, "status"), 404);
    cJSON_Delete (j);
    //  Status tells where we are.
    st = s_status (NULL);
    char *text = cJSON_PrintUnformatted (st);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (st, "running")), "%s", text);
    cr_assert_str_eq (runs_str (st, "profile"), "default", "%s", text);
    cr_assert_str_eq (runs_str (st, "title"), "Not Here", "%s", text);
    s_url (url, sizeof (url), "/missing");
    cr_assert_str_eq (runs_str (st, "url"), url, "%s", text);
    cr_assert_str_eq (runs_at_str (st, "profiles.0"), "default", "%s", text);
    cr_assert (runs_at_num (st, "pid") > 0, "%s", text);
    free (text);
    cJSON_Delete (st);
}

Test (browser, screenshots_of_viewport_element_and_full_page)
{
    s_start_gw (20000, NULL);
    s_navigate_ok ("/page", NULL, PAGE_TITLE);
    int w, h;
    long status;
    //  Viewport: the configured size.
    long long t0 = harness_now_ms ();
    cJSON *j = s_screenshot ("{}", &status);
    cr_log_info ("viewport screenshot: %lld ms", harness_now_ms () - t0);
    cr_assert_eq (status, 200);
    s_assert_png (j, &w, &h);
    cr_assert_eq (w, VIEW_W);
    cr_assert_eq (h, VIEW_H);
    cJSON_Delete (j);
    //  Element: the div's own size.
    j = s_screenshot ("{\"selector\":\"#box\"}", &status);
    cr_assert_eq (status, 200);
    s_assert_png (j, &w, &h);
    cr_assert (abs (w - 300) <= 1 && abs (h - 200) <= 1, "element is %dx%d", w, h);
    cJSON_Delete (j);
    //  No match: 404 on selector; a broken selector: 400; an empty element.
    http_resp_t r;
    runs_post ("/v1/browser/screenshot", "{\"selector\":\"#nope\"}", &r);
    runs_assert_error (&r, 404, "not_found", "selector");
    http_resp_free (&r);
    runs_post ("/v1/browser/screenshot", "{\"selector\":\"#box[\"}", &r);
    runs_assert_error (&r, 400, "invalid_request", "selector");
    http_resp_free (&r);
    runs_post ("/v1/browser/screenshot", "{\"selector\":\"#empty\"}", &r);
    runs_assert_error (&r, 404, "not_found", "selector");
    http_resp_free (&r);
    //  Full page of a long page: taller than the viewport, as wide.
    s_navigate_ok ("/long", NULL, LONG_TITLE);
    t0 = harness_now_ms ();
    j = s_screenshot ("{\"fullPage\":true}", &status);
    cr_log_info ("full-page screenshot: %lld ms", harness_now_ms () - t0);
    cr_assert_eq (status, 200);
    s_assert_png (j, &w, &h);
    cr_assert_eq (w, VIEW_W);
    cr_assert (h > VIEW_H, "full page is only %d high", h);
    cr_assert (h >= 3000, "full page is %d high, the page is over 3000", h);
    cJSON_Delete (j);
    //  And the viewport is the viewport again afterwards.
    j = s_screenshot ("{\"fullPage\":false}", &status);
    cr_assert_eq (status, 200);
    s_assert_png (j, &w, &h);
    cr_assert_eq (w, VIEW_W);
    cr_assert_eq (h, VIEW_H);
    cJSON_Delete (j);
}

Test (browser, bad_schemes_and_bad_types_get_400_without_starting_chromium)
{
    s_start_gw (20000, NULL);
    static const char *const bad_urls[] = {"{\"url\":\"file:///etc/passwd\"}",
                                           "{\"url\":\"javascript:alert(1)\"}",
                                           "{\"url\":\"data:text/html,<p>x</p>\"}",
                                           "{\"url\":\"ftp://127.0.0.1/\"}",
                                           "{\"url\":\"chrome://version\"}",
                                           "{\"url\":\"http://a b/\"}",
                                           "{\"url\":\"\"}",
                                           "{\"url\":42}",
                                           "{\"profile\":\"default\"}",
                                           NULL};
    for (int i = 0; bad_urls[i]; i++) {
        http_resp_t r;
        runs_post ("/v1/browser/navigate", bad_urls[i], &r);
        runs_assert_error (&r, 400, "invalid_request", "url");
        http_resp_free (&r);
    }
    static const struct {
        const char *path, *body, *param;
    } bad[] = {
        {"/v1/browser/navigate", "{\"url\":\"http://127.0.0.1/\",\"profile\":\"../etc\"}",
         "profile"},
        {"/v1/browser/navigate", "{\"url\":\"http://127.0.0.1/\",\"profile\":7}",
         "profile"},
        {"/v1/browser/navigate", "{\"url\":\"http://127.0.0.1/\",\"timeoutMs\":\"x\"}",
         "timeoutMs"},
        {"/v1/browser/navigate", "{\"url\":\"http://127.0.0.1/\",\"timeoutMs\":5}",
         "timeoutMs"},
        {"/v1/browser/screenshot", "{\"fullPage\":\"yes\"}", "fullPage"},
        {"/v1/browser/screenshot", "{\"selector\":5}", "selector"},
        {"/v1/browser/screenshot", "{\"selector\":\"\"}", "selector"},
        {"/v1/browser/screenshot", "{\"selector\":\"#a\",\"fullPage\":true}", "fullPage"},
        {"/v1/browser/screenshot", "{\"profile\":\"\"}", "profile"},
        {"/v1/browser/screenshot", "{\"profile\":\"..\"}", "profile"},
        {NULL, NULL, NULL}};
    for (int i = 0; bad[i].path; i++) {
        http_resp_t r;
        runs_post (bad[i].path, bad[i].body, &r);
        runs_assert_error (&r, 400, "invalid_request", bad[i].param);
        http_resp_free (&r);
    }
    http_resp_t r;
    runs_post ("/v1/browser/navigate", "{not json", &r);
    cr_assert_eq (r.status, 400);
    http_resp_free (&r);
    runs_get ("/v1/browser/status?profile=a/b", &r);
    runs_assert_error (&r, 400, "invalid_request", "profile");
    http_resp_free (&r);
    //  Nothing above got far enough to start Chromium.
    cJSON *st = s_status (NULL);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (st, "running")));
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (st, "profiles")), 0);
    cJSON_Delete (st);
}

Test (browser, unreachable_host_gets_503_with_chromiums_error)
{
    s_start_gw (20000, NULL);
    int port = harness_free_port ();  //  Probed and closed again: refused
    char body[256];
    snprintf (body, sizeof (body), "{\"url\":\"http://127.0.0.1:%d/\"}", port);
    http_resp_t r;
    runs_post ("/v1/browser/navigate", body, &r);
    runs_assert_error (&r, 503, "service_unavailable", NULL);
    cr_assert (strstr (r.body, "net::ERR_CONNECTION_REFUSED"), "%s", r.body);
    http_resp_free (&r);
    //  The browser is fine afterwards.
    s_navigate_ok ("/page", NULL, PAGE_TITLE);
}

typedef struct {
    const char *path;
    const char *extra;
    long status;
    char body[1024];
    long long ms;
} nav_job_t;

static void *
s_nav_thread (void *arg)
{
    nav_job_t *job = (nav_job_t *) arg;
    char url[256], body[512];
    s_url (url, sizeof (url), job->path);
    snprintf (body, sizeof (body), "{\"url\":\"%s\"%s%s}", url, job->extra ? "," : "",
              job->extra ? job->extra : "");
    long long t0 = harness_now_ms ();
    http_resp_t r;
    runs_post ("/v1/browser/navigate", body, &r);
    job->ms = harness_now_ms () - t0;
    job->status = r.status;
    snprintf (job->body, sizeof (job->body), "%s", r.body ? r.body : "");
    http_resp_free (&r);
    return NULL;
}

Test (browser, navigation_timeout_gets_503_while_status_still_answers)
{
    s_start_gw (2000, NULL);
    //  Chromium's start must not eat this test's 2 s budget: warm it up
    //  with a request of its own, longer, budget.
    s_navigate_ok ("/page", "\"timeoutMs\":30000", PAGE_TITLE);
    nav_job_t job = {"/hang", NULL, 0, "", 0};
    pthread_t t;
    pthread_create (&t, NULL, s_nav_thread, &job);
    long long until = harness_now_ms () + 10000;
    while (atomic_load (&s_hang_seen) == 0 && harness_now_ms () < until)
        usleep (10 * 1000);
    cr_assert (atomic_load (&s_hang_seen) > 0, "Chromium never asked for /hang");
    //  While the navigation waits, status is answered at once.
    long long t0 = harness_now_ms ();
    cJSON *st = s_status (NULL);
    long long status_ms = harness_now_ms () - t0;
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (st, "running")));
    cJSON_Delete (st);
    cr_assert (status_ms < 1000, "status took %lld ms behind a navigation", status_ms);
    pthread_join (t, NULL);
    cr_log_info ("timed-out navigation answered after %lld ms; status in %lld ms", job.ms,
                 status_ms);
    cr_assert_eq (job.status, 503, "%s", job.body);
    cr_assert (strstr (job.body, "Navigation did not finish in 2000 ms"), "%s", job.body);
    cr_assert (job.ms >= 1500 && job.ms < 7000, "answered after %lld ms", job.ms);
    atomic_store (&s_hang_release, true);
    //  The next navigation works.
    s_navigate_ok ("/page", NULL, PAGE_TITLE);
}

//  True if pid is gone or a zombie that is not ours to reap.
static bool
s_pid_gone (pid_t pid)
{
    return kill (pid, 0) != 0 && errno == ESRCH;
}

Test (browser, chromium_killed_between_requests_is_restarted)
{
    s_start_gw (20000, NULL);
    s_navigate_ok ("/page", NULL, PAGE_TITLE);
    cJSON *st = s_status (NULL);
    pid_t pid = (pid_t) runs_at_num (st, "pid");
    cJSON_Delete (st);
    cr_assert (pid > 0);
    cr_assert_eq (kill (pid, SIGKILL), 0);
    st = s_wait_running (NULL, false, 10000);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (st, "running")),
               "status still says running after kill -9");
    cJSON_Delete (st);
    //  Reaped by the gateway: no zombie left behind.
    long long until = harness_now_ms () + 5000;
    while (!s_pid_gone (pid) && harness_now_ms () < until)
        usleep (20 * 1000);
    cr_assert (s_pid_gone (pid), "pid %d was not reaped", (int) pid);
    //  The next request starts a new Chromium.
    s_navigate_ok ("/page", NULL, PAGE_TITLE);
    st = s_status (NULL);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (st, "running")));
    cr_assert ((pid_t) runs_at_num (st, "pid") != pid);
    cJSON_Delete (st);
    long status;
    cJSON *j = s_screenshot ("{\"selector\":\"#box\"}", &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (j);
}

Test (browser, chromium_killed_mid_navigation_fails_it_with_503)
{
    s_start_gw (12000, NULL);
    s_navigate_ok ("/page", NULL, PAGE_TITLE);
    cJSON *st = s_status (NULL);
    pid_t pid = (pid_t) runs_at_num (st, "pid");
    cJSON_Delete (st);
    nav_job_t job = {"/hang", NULL, 0, "", 0};
    pthread_t t;
    pthread_create (&t, NULL, s_nav_thread, &job);
    long long until = harness_now_ms () + 10000;
    while (atomic_load (&s_hang_seen) == 0 && harness_now_ms () < until)
        usleep (10 * 1000);
    cr_assert (atomic_load (&s_hang_seen) > 0, "Chromium never asked for /hang");
    long long t0 = harness_now_ms ();
    kill (pid, SIGKILL);
    pthread_join (t, NULL);
    long long after_kill = harness_now_ms () - t0;
    cr_log_info ("in-flight navigation failed %lld ms after the kill", after_kill);
    cr_assert_eq (job.status, 503, "%s", job.body);
    cr_assert (strstr (job.body, "Chromium"), "%s", job.body);
    cr_assert (after_kill < 5000, "the failure took %lld ms (the budget is 12 s)",
               after_kill);
    atomic_store (&s_hang_release, true);
    s_navigate_ok ("/page", NULL, PAGE_TITLE);
}

Test (browser, profiles_run_separate_chromiums)
{
    s_start_gw (20000, NULL);
    s_navigate_ok ("/page", "\"profile\":\"alpha\"", PAGE_TITLE);
    s_navigate_ok ("/long", "\"profile\":\"beta\"", LONG_TITLE);
    cJSON *a = s_status ("alpha");
    cJSON *b = s_status ("beta");
    cJSON *d = s_status (NULL);
    pid_t pa = (pid_t) runs_at_num (a, "pid"), pb = (pid_t) runs_at_num (b, "pid");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (a, "running")));
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (b, "running")));
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (d, "running")),
               "the default profile was never used");
    cr_assert (pa > 0 && pb > 0 && pa != pb, "pids %d and %d", (int) pa, (int) pb);
    cr_assert_str_eq (runs_str (a, "title"), PAGE_TITLE);
    cr_assert_str_eq (runs_str (b, "title"), LONG_TITLE);
    cr_assert_str_eq (runs_at_str (a, "profiles.0"), "alpha");
    cr_assert_str_eq (runs_at_str (a, "profiles.1"), "beta");
    char dir[512];
    struct stat sb;
    snprintf (dir, sizeof (dir), "%s/browser/alpha", runs_env.srv.state);
    cr_assert (stat (dir, &sb) == 0 && S_ISDIR (sb.st_mode), "%s", dir);
    cJSON_Delete (a);
    cJSON_Delete (b);
    cJSON_Delete (d);
    //  Screenshots follow the profile's own page.
    long status;
    cJSON *j = s_screenshot ("{\"profile\":\"alpha\",\"selector\":\"#box\"}", &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (j);
    j = s_screenshot ("{\"profile\":\"beta\",\"selector\":\"#box\"}", &status);
    cr_assert_eq (status, 404, "beta shows the long page, which has no #box");
    cJSON_Delete (j);
    //  Stopping the gateway stops and reaps both.
    runs_stop_all ();
    cr_assert (s_pid_gone (pa) && s_pid_gone (pb), "a Chromium outlived the gateway");
}

Test (browser, missing_chromium_gets_503)
{
    s_start_gw (20000, "\"chromium\":\"/nonexistent/chromium\"");
    http_resp_t r;
    runs_post ("/v1/browser/navigate", "{\"url\":\"http://127.0.0.1:9/\"}", &r);
    runs_assert_error (&r, 503, "service_unavailable", NULL);
    cr_assert (strstr (r.body, "not installed")
                   && strstr (r.body, "/nonexistent/chromium"),
               "%s", r.body);
    http_resp_free (&r);
    runs_post ("/v1/browser/screenshot", "{}", &r);
    runs_assert_error (&r, 503, "service_unavailable", NULL);
    http_resp_free (&r);
}

//  ---- WebSocket -------------------------------------------------------------------------

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    cJSON *frames;  //  Array of parsed text frames
    bool closed;
} wsc_t;

static int
s_ws_data (struct mg_connection *conn, int bits, char *data, size_t len, void *arg)
{
    wsc_t *c = (wsc_t *) arg;
    if ((bits & 0x0f) != MG_WEBSOCKET_OPCODE_TEXT)
        return (bits & 0x0f) != MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE;
    cJSON *j = cJSON_ParseWithLength (data, len);
    pthread_mutex_lock (&c->lock);
    if (j)
        cJSON_AddItemToArray (c->frames, j);
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
    return 1;
}

static void
s_ws_close (const struct mg_connection *conn, void *arg)
{
    wsc_t *c = (wsc_t *) arg;
    pthread_mutex_lock (&c->lock);
    c->closed = true;
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
}

//  Sends a request and waits for the frame answering id; a copy the
//  caller deletes, or NULL after timeout_ms.
static cJSON *
s_ws_call (struct mg_connection *conn, wsc_t *c, int id, const char *method,
           const char *params, int timeout_ms)
{
    char req[1024];
    snprintf (req, sizeof (req), "{\"id\":%d,\"method\":\"%s\",\"params\":%s}", id,
              method, params);
    mg_websocket_client_write (conn, MG_WEBSOCKET_OPCODE_TEXT, req, strlen (req));
    long long until = harness_now_ms () + timeout_ms;
    cJSON *found = NULL;
    pthread_mutex_lock (&c->lock);
    while (!found && harness_now_ms () < until) {
        const cJSON *f;
        cJSON_ArrayForEach (f, c->frames)
        {
            const cJSON *fid = cJSON_GetObjectItem (f, "id");
            if (cJSON_IsNumber (fid) && (int) fid->valuedouble == id)
                found = cJSON_Duplicate (f, 1);
        }
        if (!found && !c->closed) {
            struct timespec ts;
            clock_gettime (CLOCK_REALTIME, &ts);
            ts.tv_nsec += 50 * 1000 * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait (&c->cond, &c->lock, &ts);
        }
    }
    pthread_mutex_unlock (&c->lock);
    return found;
}

Test (browser, websocket_navigate_screenshot_and_status)
{
    s_start_gw (20000, NULL);
    wsc_t c = {.frames = cJSON_CreateArray ()};
    pthread_mutex_init (&c.lock, NULL);
    pthread_cond_init (&c.cond, NULL);
    char path[256], err[256] = "";
    snprintf (path, sizeof (path), "/?token=%s", runs_env.srv.token);
    struct mg_connection *conn =
        mg_connect_websocket_client ("127.0.0.1", runs_env.srv.port, 0, err, sizeof (err),
                                     path, NULL, s_ws_data, s_ws_close, &c);
    cr_assert_not_null (conn, "WebSocket connect: %s", err);
    char params[512], url[256];
    s_url (url, sizeof (url), "/page");
    snprintf (params, sizeof (params), "{\"url\":\"%s\"}", url);
    cJSON *r = s_ws_call (conn, &c, 1, "browser.navigate", params, 30000);
    cr_assert_not_null (r, "no reply to browser.navigate");
    char *text = cJSON_PrintUnformatted (r);
    cr_assert_str_eq (runs_str (r, "type"), "response", "%s", text);
    cr_assert_str_eq (runs_at_str (r, "result.title"), PAGE_TITLE, "%s", text);
    cr_assert_str_eq (runs_at_str (r, "result.url"), url, "%s", text);
    free (text);
    cJSON_Delete (r);
    //  browser.screenshot: the same shape as over HTTP.
    r = s_ws_call (conn, &c, 2, "browser.screenshot", "{\"selector\":\"#box\"}", 30000);
    cr_assert_not_null (r, "no reply to browser.screenshot");
    cr_assert_str_eq (runs_str (r, "type"), "response");
    int w, h;
    s_assert_png (cJSON_GetObjectItem (r, "result"), &w, &h);
    cr_assert (abs (w - 300) <= 1 && abs (h - 200) <= 1, "element is %dx%d", w, h);
    cJSON_Delete (r);
    r = s_ws_call (conn, &c, 3, "browser.screenshot", "{}", 30000);
    cr_assert_not_null (r);
    s_assert_png (cJSON_GetObjectItem (r, "result"), &w, &h);
    cr_assert (w == VIEW_W && h == VIEW_H, "viewport is %dx%d", w, h);
    cJSON_Delete (r);
    r = s_ws_call (conn, &c, 4, "browser.status", "{}", 10000);
    cr_assert_not_null (r);
    cr_assert (cJSON_IsTrue (runs_at (r, "result.running")));
    cr_assert_str_eq (runs_at_str (r, "result.title"), PAGE_TITLE);
    cJSON_Delete (r);
    //  Errors: wrong type, bad scheme, no match.
    r = s_ws_call (conn, &c, 5, "browser.screenshot", "{\"fullPage\":1}", 10000);
    cr_assert_not_null (r);
    cr_assert_str_eq (runs_str (r, "type"), "error");
    cr_assert_str_eq (runs_at_str (r, "error.param"), "fullPage");
    cJSON_Delete (r);
    r = s_ws_call (conn, &c, 6, "browser.navigate", "{\"url\":\"file:///etc/passwd\"}",
                   10000);
    cr_assert_not_null (r);
    cr_assert_str_eq (runs_at_str (r, "error.code"), "invalid_request");
    cr_assert_str_eq (runs_at_str (r, "error.param"), "url");
    cJSON_Delete (r);
    r = s_ws_call (conn, &c, 7, "browser.screenshot", "{\"selector\":\"#nope\"}", 10000);
    cr_assert_not_null (r);
    cr_assert_str_eq (runs_at_str (r, "error.code"), "not_found");
    cJSON_Delete (r);
    mg_close_connection (conn);
    cJSON_Delete (c.frames);
}
