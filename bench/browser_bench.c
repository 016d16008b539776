/*  =========================================================================
    browser_bench - navigate + screenshot latency, through the gateway and
    over raw CDP, on a local page

    usage: browser_bench --gateway http://127.0.0.1:PORT [--token T]
                         [--chromium /usr/bin/chromium] [-n 50]

    Serves one small page itself (civetweb on loopback), then:
    - raw: starts its own headless Chromium with the gateway's flags, speaks
      CDP to it directly (actors/cdp.c: civetweb's WebSocket client, the
      same transport the actor uses), and times Page.navigate + waiting for
      the "load" lifecycle event and Runtime.evaluate of url and title (the
      actor's navigate), then Page.captureScreenshot (viewport PNG);
    - gateway: POST /v1/browser/navigate then POST /v1/browser/screenshot
      with libcurl (keep-alive), the same page, the same number of times.
    Prints p50/p99 of each step and of the pair for both, and the overhead
    (gateway minus raw).  Chromium is warm in both (one untimed round first).
    =========================================================================
*/
#include "browser.h"
#include "cdp.h"

#include <civetweb.h>
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int s_port;

static double
s_now (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static int
s_page (struct mg_connection *conn, void *cbdata)
{
    static const char body[] =
        "<!doctype html><html><head><title>Bench Page</title></head>"
        "<body><h1>Bench</h1><div style=\"width:300px;height:200px;"
        "background:red\"></div><p>Some text to lay out.</p></body></html>";
    mg_printf (conn,
               "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n"
               "Content-Length: %zu\r\n\r\n%s",
               sizeof (body) - 1, body);
    return 200;
}

static int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

static void
s_report (const char *what, double *v, int n)
{
    qsort (v, (size_t) n, sizeof (double), s_cmp);
    int p99 = (int) (n * 0.99);
    if (p99 >= n)
        p99 = n - 1;
    printf ("%-28s p50 %7.1f ms   p99 %7.1f ms   (n=%d)\n", what, v[n / 2], v[p99], n);
}

//  ---- Raw CDP ------------------------------------------------------------------

typedef struct {
    cdp_t *cdp;
    char session[128];
    char target[128];
} raw_t;

//  Waits for the reply to id (events seen on the way go to on_event).
//  Caller deletes the reply.  NULL on timeout.
static cJSON *
s_wait (raw_t *r, int id, const char *want_event, const char *loader, bool *event_seen)
{
    double until = s_now () + 30000;
    while (s_now () < until) {
        cJSON *m = cdp_recv (r->cdp);
        if (!m) {
            struct pollfd p = {cdp_fd (r->cdp), POLLIN, 0};
            poll (&p, 1, 100);
            continue;
        }
        cJSON *jid = cJSON_GetObjectItem (m, "id");
        if (id && cJSON_IsNumber (jid) && (int) jid->valuedouble == id)
            return m;
        const cJSON *method = cJSON_GetObjectItem (m, "method");
        if (want_event && cJSON_IsString (method)
            && !strcmp (method->valuestring, want_event)) {
            const cJSON *params = cJSON_GetObjectItem (m, "params");
            const cJSON *name = cJSON_GetObjectItem (params, "name");
            const cJSON *lid = cJSON_GetObjectItem (params, "loaderId");
            if (cJSON_IsString (name) && !strcmp (name->valuestring, "load")
                && cJSON_IsString (lid)
                && (!loader || !strcmp (lid->valuestring, loader))) {
                *event_seen = true;
                if (!id) {
                    cJSON_Delete (m);
                    return NULL;
                }
            }
        }
        cJSON_Delete (m);
    }
    fprintf (stderr, "browser_bench: timed out waiting for CDP\n");
    exit (1);
}

static cJSON *
s_cmd (raw_t *r, const char *method, cJSON *params, bool session)
{
    int id = cdp_send (r->cdp, method, params, session ? r->session : NULL);
    cJSON_Delete (params);
    if (id < 0) {
        fprintf (stderr, "browser_bench: CDP send failed\n");
        exit (1);
    }
    bool seen = false;
    return s_wait (r, id, NULL, NULL, &seen);
}

static pid_t
s_chromium_start (const char *bin, int *port, char *path, size_t cap, char *dir)
{
    snprintf (dir, 64, "/tmp/browser-bench-XXXXXX");
    if (!mkdtemp (dir))
        exit (1);
    char ud[128];
    snprintf (ud, sizeof (ud), "--user-data-dir=%s", dir);
    char *argv[BROWSER_CHROMIUM_ARGS];
    browser_chromium_argv (argv, bin, ud, "--window-size=1280,800");
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC))
        exit (1);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_adddup2 (&fa, fds[1], 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init (&attr);
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSID);
    extern char **environ;
    pid_t pid;
    if (posix_spawn (&pid, bin, &fa, &attr, argv, environ)) {
        fprintf (stderr, "browser_bench: cannot start %s\n", bin);
        exit (1);
    }
    close (fds[1]);
    FILE *f = fdopen (fds[0], "r");
    char line[1024];
    *port = 0;
    while (fgets (line, sizeof (line), f)) {
        char *ws = strstr (line, "DevTools listening on ws://");
        if (ws
            && sscanf (ws, "DevTools listening on ws://%*[^:]:%d%255s", port, path) == 2)
            break;
    }
    //  Keep draining its stderr so it never blocks on a full pipe.
    if (fork () == 0) {
        while (fgets (line, sizeof (line), f))
            ;
        _exit (0);
    }
    fclose (f);
    if (!*port) {
        fprintf (stderr, "browser_bench: Chromium did not report DevTools\n");
        exit (1);
    }
    (void) cap;
    return pid;
}

static void
s_raw_round (raw_t *r, const char *url, double *nav_ms, double *shot_ms)
{
    double t0 = s_now ();
    cJSON *p = cJSON_CreateObject ();
    cJSON_AddStringToObject (p, "url", url);
    int id = cdp_send (r->cdp, "Page.navigate", p, r->session);
    cJSON_Delete (p);
    bool loaded = false;
    //  The load event may come before or after the reply.
    cJSON *reply = s_wait (r, id, "Page.lifecycleEvent", NULL, &loaded);
    char loader[128] = "";
    const cJSON *lid =
        cJSON_GetObjectItem (cJSON_GetObjectItem (reply, "result"), "loaderId");
    if (cJSON_IsString (lid))
        snprintf (loader, sizeof (loader), "%s", lid->valuestring);
    cJSON_Delete (reply);
    while (!loaded)
        s_wait (r, 0, "Page.lifecycleEvent", loader, &loaded);
    //  What the actor does after the load: read the final url and title.
    p = cJSON_CreateObject ();
    cJSON_AddStringToObject (p, "expression",
                             "({url: location.href, title: document.title})");
    cJSON_AddBoolToObject (p, "returnByValue", true);
    cJSON_Delete (s_cmd (r, "Runtime.evaluate", p, true));
    double t1 = s_now ();
    p = cJSON_CreateObject ();
    cJSON_AddStringToObject (p, "format", "png");
    reply = s_cmd (r, "Page.captureScreenshot", p, true);
    double t2 = s_now ();
    if (!cJSON_IsString (
            cJSON_GetObjectItem (cJSON_GetObjectItem (reply, "result"), "data"))) {
        fprintf (stderr, "browser_bench: no screenshot data\n");
        exit (1);
    }
    cJSON_Delete (reply);
    *nav_ms = t1 - t0;
    *shot_ms = t2 - t1;
}

static void
s_bench_raw (const char *bin, int n, double *nav, double *shot)
{
    int port;
    char path[256], dir[64];
    pid_t pid = s_chromium_start (bin, &port, path, sizeof (path), dir);
    char err[256];
    raw_t r = {0};
    r.cdp = cdp_connect (port, path, 64u << 20, err, sizeof (err));
    if (!r.cdp) {
        fprintf (stderr, "browser_bench: %s\n", err);
        exit (1);
    }
    cJSON *p = cJSON_CreateObject ();
    cJSON_AddStringToObject (p, "url", "about:blank");
    cJSON *res = s_cmd (&r, "Target.createTarget", p, false);
    snprintf (r.target, sizeof (r.target), "%s",
              cJSON_GetObjectItem (cJSON_GetObjectItem (res, "result"), "targetId")
                  ->valuestring);
    cJSON_Delete (res);
    p = cJSON_CreateObject ();
    cJSON_AddStringToObject (p, "targetId", r.target);
    cJSON_AddBoolToObject (p, "flatten", true);
    res = s_cmd (&r, "Target.attachToTarget", p, false);
    snprintf (r.session, sizeof (r.session), "%s",
              cJSON_GetObjectItem (cJSON_GetObjectItem (res, "result"), "sessionId")
                  ->valuestring);
    cJSON_Delete (res);
    cJSON_Delete (s_cmd (&r, "Page.enable", NULL, true));
    cJSON_Delete (s_cmd (&r, "Network.enable", NULL, true));
    p = cJSON_CreateObject ();
    cJSON_AddBoolToObject (p, "enabled", true);
    cJSON_Delete (s_cmd (&r, "Page.setLifecycleEventsEnabled", p, true));
    p = cJSON_CreateObject ();
    cJSON_AddNumberToObject (p, "width", 1280);
    cJSON_AddNumberToObject (p, "height", 800);
    cJSON_AddNumberToObject (p, "deviceScaleFactor", 1);
    cJSON_AddBoolToObject (p, "mobile", false);
    cJSON_Delete (s_cmd (&r, "Emulation.setDeviceMetricsOverride", p, true));
    char url[128];
    double a, b;
    snprintf (url, sizeof (url), "http://127.0.0.1:%d/page?warm", s_port);
    s_raw_round (&r, url, &a, &b);
    for (int i = 0; i < n; i++) {
        snprintf (url, sizeof (url), "http://127.0.0.1:%d/page?raw=%d", s_port, i);
        s_raw_round (&r, url, &nav[i], &shot[i]);
    }
    kill (-pid, SIGTERM);
    waitpid (pid, NULL, 0);
    cdp_destroy (&r.cdp);
    char cmd[128];
    snprintf (cmd, sizeof (cmd), "rm -rf %s", dir);
    if (system (cmd)) {
    }
}

//  ---- Through the gateway ------------------------------------------------------

static size_t
s_sink (char *data, size_t size, size_t n, void *arg)
{
    size_t *total = (size_t *) arg;
    *total += size * n;
    return size * n;
}

static double
s_post (CURL *c, const char *url, const char *body, struct curl_slist *h)
{
    size_t total = 0;
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_sink);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, &total);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 60000L);
    double t0 = s_now ();
    CURLcode rc = curl_easy_perform (c);
    long status = 0;
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
    if (rc != CURLE_OK || status != 200) {
        fprintf (stderr, "browser_bench: %s -> %ld (%s)\n", url, status,
                 curl_easy_strerror (rc));
        exit (1);
    }
    return s_now () - t0;
}

static void
s_bench_gateway (const char *base, const char *token, int n, double *nav, double *shot)
{
    CURL *c = curl_easy_init ();
    struct curl_slist *h = curl_slist_append (NULL, "Content-Type: application/json");
    char auth[256];
    if (token && *token) {
        snprintf (auth, sizeof (auth), "Authorization: Bearer %s", token);
        h = curl_slist_append (h, auth);
    }
    char nav_url[256], shot_url[256], body[256];
    snprintf (nav_url, sizeof (nav_url), "%s/v1/browser/navigate", base);
    snprintf (shot_url, sizeof (shot_url), "%s/v1/browser/screenshot", base);
    snprintf (body, sizeof (body), "{\"url\":\"http://127.0.0.1:%d/page?warm\"}", s_port);
    s_post (c, nav_url, body, h);  //  Starts Chromium: not timed
    s_post (c, shot_url, "{}", h);
    for (int i = 0; i < n; i++) {
        snprintf (body, sizeof (body), "{\"url\":\"http://127.0.0.1:%d/page?gw=%d\"}",
                  s_port, i);
        nav[i] = s_post (c, nav_url, body, h);
        shot[i] = s_post (c, shot_url, "{}", h);
    }
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
}

int
main (int argc, char **argv)
{
    const char *gateway = NULL, *token = getenv ("CLAWGATE_TOKEN");
    const char *bin = "/usr/bin/chromium";
    int n = 50;
    for (int i = 1; i < argc; i++) {
        if (!strcmp (argv[i], "--gateway") && i + 1 < argc)
            gateway = argv[++i];
        else if (!strcmp (argv[i], "--token") && i + 1 < argc)
            token = argv[++i];
        else if (!strcmp (argv[i], "--chromium") && i + 1 < argc)
            bin = argv[++i];
        else if (!strcmp (argv[i], "-n") && i + 1 < argc)
            n = atoi (argv[++i]);
        else {
            fprintf (stderr, "usage: browser_bench --gateway URL [--token T] "
                             "[--chromium PATH] [-n N]\n");
            return 2;
        }
    }
    if (n < 2 || n > 100000 || !gateway) {
        fprintf (stderr, "browser_bench: --gateway and -n >= 2 are required\n");
        return 2;
    }
    signal (SIGPIPE, SIG_IGN);
    curl_global_init (CURL_GLOBAL_ALL);
    mg_init_library (0);
    const char *options[] = {"listening_ports",   "127.0.0.1:0", "num_threads", "8",
                             "enable_keep_alive", "yes",         NULL};
    struct mg_callbacks cb;
    memset (&cb, 0, sizeof (cb));
    struct mg_context *ctx = mg_start (&cb, NULL, options);
    if (!ctx)
        return 1;
    mg_set_request_handler (ctx, "/page$", s_page, NULL);
    struct mg_server_port ports[1];
    mg_get_server_ports (ctx, 1, ports);
    s_port = ports[0].port;

    double *rn = calloc ((size_t) n, sizeof (double)),
           *rs = calloc ((size_t) n, sizeof (double));
    double *gn = calloc ((size_t) n, sizeof (double)),
           *gs = calloc ((size_t) n, sizeof (double));
    double *rt = calloc ((size_t) n, sizeof (double)),
           *gt = calloc ((size_t) n, sizeof (double));
    s_bench_raw (bin, n, rn, rs);
    s_bench_gateway (gateway, token, n, gn, gs);
    for (int i = 0; i < n; i++) {
        rt[i] = rn[i] + rs[i];
        gt[i] = gn[i] + gs[i];
    }
    s_report ("raw CDP navigate", rn, n);
    s_report ("raw CDP screenshot", rs, n);
    s_report ("raw CDP navigate+screenshot", rt, n);
    s_report ("gateway navigate", gn, n);
    s_report ("gateway screenshot", gs, n);
    s_report ("gateway navigate+screenshot", gt, n);
    //  Sorted by s_report.
    printf ("overhead (gateway - raw) p50: navigate %+.1f ms, screenshot %+.1f ms, "
            "pair %+.1f ms\n",
            gn[n / 2] - rn[n / 2], gs[n / 2] - rs[n / 2], gt[n / 2] - rt[n / 2]);
    free (rn);
    free (rs);
    free (gn);
    free (gs);
    free (rt);
    free (gt);
    mg_stop (ctx);
    mg_exit_library ();
    curl_global_cleanup ();
    return 0;
}
