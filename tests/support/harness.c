/*  =========================================================================
    harness - process and HTTP helpers for the integration tests
    =========================================================================
*/
#include "harness.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

long long
harness_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
s_rm_entry (const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove (path);
}

void
harness_rmtree (const char *path)
{
    if (path && *path)
        nftw (path, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
harness_bin (void)
{
    const char *bin = getenv ("CLAWGATE_BIN");
    return bin && *bin ? bin : "clawgate";
}

void
harness_tmpdir (char *buf, size_t cap)
{
    snprintf (buf, cap, "/tmp/clawgate-test-XXXXXX");
    if (!mkdtemp (buf))
        buf[0] = 0;
}

void
harness_write (const char *path, const char *text)
{
    FILE *f = fopen (path, "w");
    if (f) {
        fputs (text, f);
        fclose (f);
    }
}

int
harness_free_port (void)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof (a);
    int port = -1;
    if (bind (fd, (struct sockaddr *) &a, sizeof (a)) == 0
        && getsockname (fd, (struct sockaddr *) &a, &len) == 0)
        port = ntohs (a.sin_port);
    close (fd);
    return port;
}

int
proc_start (proc_t *p, const char *const args[], const char *const env[])
{
    memset (p, 0, sizeof (*p));
    int fds[2];
    if (pipe (fds))
        return -1;
    snprintf (p->err_path, sizeof (p->err_path), "/tmp/clawgate-err-XXXXXX");
    int err_fd = mkstemp (p->err_path);
    pid_t pid = fork ();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        //  Die with the test process, even when an assertion ends it early.
        prctl (PR_SET_PDEATHSIG, SIGKILL);
        dup2 (fds[1], 1);
        dup2 (err_fd, 2);
        close (fds[0]);
        close (fds[1]);
        close (err_fd);
        for (int i = 0; env && env[i]; i++)
            putenv ((char *) env[i]);
        const char *argv[64];
        int n = 0;
        argv[n++] = harness_bin ();
        for (int i = 0; args[i] && n < 63; i++)
            argv[n++] = args[i];
        argv[n] = NULL;
        execv (argv[0], (char *const *) argv);
        _exit (127);
    }
    close (fds[1]);
    close (err_fd);
    p->pid = pid;
    p->out_fd = fds[0];
    fcntl (p->out_fd, F_SETFL, O_NONBLOCK);
    return 0;
}

int
proc_wait_line (proc_t *p, const char *needle, int timeout_ms, char *line, size_t cap)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        p->out[p->out_len] = 0;
        char *hit = strstr (p->out, needle);
        if (hit) {
            char *start = hit;
            while (start > p->out && start[-1] != '\n')
                start--;
            char *end = strchr (hit, '\n');
            if (end) {
                size_t n = (size_t) (end - start);
                if (line && cap) {
                    if (n >= cap)
                        n = cap - 1;
                    memcpy (line, start, n);
                    line[n] = 0;
                }
                return 0;
            }
        }
        long long left = deadline - harness_now_ms ();
        if (left <= 0 || p->out_len >= sizeof (p->out) - 1)
            return -1;
        struct pollfd pfd = {p->out_fd, POLLIN, 0};
        if (poll (&pfd, 1, (int) (left < 100 ? left : 100)) > 0) {
            ssize_t n =
                read (p->out_fd, p->out + p->out_len, sizeof (p->out) - 1 - p->out_len);
            if (n == 0)
                return -1;  //  Child closed stdout: it exited
            if (n > 0)
                p->out_len += (size_t) n;
        }
    }
}

int
proc_stop (proc_t *p, int sig, int timeout_ms)
{
    if (p->pid <= 0)
        return -1;
    kill (p->pid, sig);
    long long deadline = harness_now_ms () + timeout_ms;
    int status = 0;
    pid_t rc;
    while ((rc = waitpid (p->pid, &status, WNOHANG)) == 0 && harness_now_ms () < deadline)
        usleep (10000);
    if (rc == 0) {
        kill (p->pid, SIGKILL);
        waitpid (p->pid, &status, 0);
    }
    p->pid = 0;
    close (p->out_fd);
    if (WIFEXITED (status))
        return WEXITSTATUS (status);
    if (WIFSIGNALED (status))
        return 128 + WTERMSIG (status);
    return -1;
}

void
proc_stderr (proc_t *p, char *buf, size_t cap)
{
    buf[0] = 0;
    FILE *f = fopen (p->err_path, "r");
    if (!f)
        return;
    size_t n = fread (buf, 1, cap - 1, f);
    buf[n] = 0;
    fclose (f);
}

int
proc_run (const char *const args[], const char *const env[], char *err, size_t cap,
          int timeout_ms)
{
    proc_t p;
    if (proc_start (&p, args, env))
        return -1;
    long long deadline = harness_now_ms () + timeout_ms;
    int status = 0;
    pid_t rc;
    while ((rc = waitpid (p.pid, &status, WNOHANG)) == 0 && harness_now_ms () < deadline)
        usleep (5000);
    if (rc == 0) {
        kill (p.pid, SIGKILL);
        waitpid (p.pid, &status, 0);
    }
    if (err)
        proc_stderr (&p, err, cap);
    close (p.out_fd);
    unlink (p.err_path);
    return WIFEXITED (status) ? WEXITSTATUS (status) : -1;
}

//  ---- HTTP ---------------------------------------------------------------------

typedef struct {
    char *data;
    size_t len;
} buf_t;

static size_t
s_on_body (char *ptr, size_t size, size_t nmemb, void *arg)
{
    buf_t *b = (buf_t *) arg;
    size_t n = size * nmemb;
    char *grown = (char *) realloc (b->data, b->len + n + 1);
    if (!grown)
        return 0;
    b->data = grown;
    memcpy (b->data + b->len, ptr, n);
    b->len += n;
    b->data[b->len] = 0;
    return n;
}

static size_t
s_on_header (char *ptr, size_t size, size_t nmemb, void *arg)
{
    http_resp_t *r = (http_resp_t *) arg;
    size_t n = size * nmemb;
    size_t have = strlen (r->headers);
    if (have + n < sizeof (r->headers)) {
        memcpy (r->headers + have, ptr, n);
        r->headers[have + n] = 0;
    }
    return n;
}

int
http_do (const char *method, const char *url, const char *const headers[],
         const char *body, size_t body_len, http_resp_t *resp)
{
    memset (resp, 0, sizeof (*resp));
    CURL *c = curl_easy_init ();
    if (!c)
        return -1;
    struct curl_slist *h = NULL;
    for (int i = 0; headers && headers[i]; i++)
        h = curl_slist_append (h, headers[i]);
    buf_t b = {NULL, 0};
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (c, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t) body_len);
    }
    CURLcode rc = curl_easy_perform (c);
    if (rc == CURLE_OK)
        curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &resp->status);
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
    resp->body = b.data ? b.data : strdup ("");
    resp->body_len = b.len;
    return rc == CURLE_OK ? 0 : -1;
}

void
http_resp_free (http_resp_t *resp)
{
    free (resp->body);
    resp->body = NULL;
}

long
http_get_bearer (const char *base, const char *path, const char *token, http_resp_t *r)
{
    char url[512], auth[256] = "";
    snprintf (url, sizeof (url), "%s%s", base, path);
    if (token)
        snprintf (auth, sizeof (auth), "Authorization: Bearer %s", token);
    const char *headers[] = {auth, NULL};
    http_resp_t own;
    http_resp_t *out = r ? r : &own;
    http_do ("GET", url, token ? headers : NULL, NULL, 0, out);
    long status = out->status;
    if (!r)
        http_resp_free (&own);
    return status;
}

long
http_header_long (const char *headers, const char *name)
{
    size_t n = strlen (name);
    for (const char *p = headers; p && *p;) {
        if (!strncasecmp (p, name, n) && p[n] == ':')
            return strtol (p + n + 1, NULL, 10);
        const char *nl = strchr (p, '\n');
        p = nl ? nl + 1 : NULL;
    }
    return -1;
}

int
http_wait_status (const char *url, const char *const headers[], long want, int timeout_ms)
{
    long long start = harness_now_ms ();
    while (harness_now_ms () - start < timeout_ms) {
        http_resp_t r;
        int rc = http_do ("GET", url, headers, NULL, 0, &r);
        long status = r.status;
        http_resp_free (&r);
        if (rc == 0 && status == want)
            return (int) (harness_now_ms () - start);
        usleep (50000);
    }
    return -1;
}

//  ---- A served gateway ------------------------------------------------------------

//  Waits for a serve or gateway process's "listening on http://..." line;
//  writes "http://127.0.0.1:PORT" into base.  Returns the port, or -1.
static int
s_wait_listening (proc_t *p, char *base, size_t cap)
{
    char line[512];
    if (proc_wait_line (p, "listening on http://", 20000, line, sizeof (line)))
        return -1;
    char *colon = strrchr (strstr (line, "http://") + 7, ':');
    int port = colon ? atoi (colon + 1) : 0;
    snprintf (base, cap, "http://127.0.0.1:%d", port);
    return port > 0 ? port : -1;
}

int
gateway_start (proc_t *p, const char *requests, const char *state, const char *config,
               const char *const env[], char *base, size_t cap, char *err, size_t errcap)
{
    const char *args[] = {"gateway",     "--broker", requests,   "--port", "0",
                          "--state-dir", state,      "--config", config,   NULL};
    err[0] = 0;
    if (proc_start (p, args, env))
        return -1;
    if (s_wait_listening (p, base, cap) < 0) {
        proc_stderr (p, err, errcap);
        return -1;
    }
    return 0;
}

int
http_raw_post (int port, const char *path, const char *header, const char *body)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_port = htons ((uint16_t) port);
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    char req[4096];
    int n =
        snprintf (req, sizeof (req),
                  "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s%s"
                  "Content-Type: application/json\r\nContent-Length: %zu\r\n"
                  "\r\n%s",
                  path, header ? header : "", header ? "\r\n" : "", strlen (body), body);
    if (n <= 0 || (size_t) n >= sizeof (req)
        || connect (fd, (struct sockaddr *) &a, sizeof (a)) != 0
        || send (fd, req, (size_t) n, MSG_NOSIGNAL) != n) {
        close (fd);
        return -1;
    }
    return fd;
}

int
http_raw_read_until (int fd, const char *needle, int timeout_ms, char *got, size_t cap)
{
    size_t len = 0;
    got[0] = 0;
    struct timespec start, now;
    clock_gettime (CLOCK_MONOTONIC, &start);
    while (!strstr (got, needle)) {
        clock_gettime (CLOCK_MONOTONIC, &now);
        long left = timeout_ms
                    - ((now.tv_sec - start.tv_sec) * 1000
                       + (now.tv_nsec - start.tv_nsec) / 1000000);
        if (left <= 0 || len + 1 >= cap)
            return -1;
        struct pollfd pfd = {fd, POLLIN, 0};
        if (poll (&pfd, 1, (int) left) > 0) {
            ssize_t k = recv (fd, got + len, cap - 1 - len, 0);
            if (k <= 0)
                return -1;
            len += (size_t) k;
            got[len] = 0;
        }
    }
    return 0;
}

int
broker_start (proc_t *p, const char *config, const char *const env[], char *requests,
              char *events)
{
    snprintf (requests, 32, "tcp://127.0.0.1:%d", harness_free_port ());
    snprintf (events, 32, "tcp://127.0.0.1:%d", harness_free_port ());
    const char *args[] = {"broker", "--requests", requests, "--events",
                          events,   "--config",   config,   NULL};
    if (proc_start (p, args, env))
        return -1;
    return proc_wait_line (p, "requests on", 20000, NULL, 0);
}

int
worker_start (proc_t *p, const char *requests, const char *actors, const char *config,
              const char *state_dir, const char *const env[])
{
    //  Always a state dir: without one the worker would keep its sessions in
    //  the invoking user's ~/.clawgate.
    char own[64] = "";
    if (!state_dir)
        harness_tmpdir (own, sizeof (own));
    const char *args[] = {"worker",   "--broker",    requests,
                          "--actors", actors,        "--config",
                          config,     "--state-dir", state_dir ? state_dir : own,
                          NULL};
    if (proc_start (p, args, env))
        return -1;
    return proc_wait_line (p, "serving via", 20000, NULL, 0);
}

int
served_start (served_t *s, const char *config_json, const char *const env[])
{
    memset (s, 0, sizeof (*s));
    harness_tmpdir (s->state, sizeof (s->state));
    char cfg_path[300] = "";
    const char *args[12];
    int n = 0;
    args[n++] = "serve";
    args[n++] = "--port";
    args[n++] = "0";
    args[n++] = "--state-dir";
    args[n++] = s->state;
    if (config_json) {
        snprintf (cfg_path, sizeof (cfg_path), "%s/config.json", s->state);
        harness_write (cfg_path, config_json);
        args[n++] = "--config";
        args[n++] = cfg_path;
    }
    args[n] = NULL;
    if (proc_start (&s->proc, args, env))
        return -1;
    s->port = s_wait_listening (&s->proc, s->base, sizeof (s->base));
    if (s->port <= 0)
        return -1;
    char tok_path[300];
    snprintf (tok_path, sizeof (tok_path), "%s/token", s->state);
    FILE *f = fopen (tok_path, "r");
    if (f) {
        if (fgets (s->token, sizeof (s->token), f))
            s->token[strcspn (s->token, "\r\n")] = 0;
        fclose (f);
    }
    char url[128];
    snprintf (url, sizeof (url), "%s/health", s->base);
    return http_wait_status (url, NULL, 200, 10000) >= 0 ? 0 : -1;
}

int
served_stop (served_t *s)
{
    int rc = proc_stop (&s->proc, SIGTERM, 20000);
    unlink (s->proc.err_path);
    return rc;
}

int
served_get (served_t *s, const char *path, const char *token, http_resp_t *r)
{
    return http_get_bearer (s->base, path, token, r) ? 0 : -1;
}
