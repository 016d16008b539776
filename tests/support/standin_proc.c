/*  =========================================================================
    standin_proc - run and call the chat-platform stand-ins (see the header)
    =========================================================================
*/
#include "standin_proc.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  ---- The process --------------------------------------------------------

int
standin_proc_path (const char *who, const char *name, char *bin, size_t cap)
{
    const char *dir = getenv ("CLAWGATE_STANDIN_DIR");
    if (!dir || !*dir) {
        fprintf (stderr, "%s: CLAWGATE_STANDIN_DIR is not set (run under ctest)\n", who);
        return -1;
    }
    snprintf (bin, cap, "%s/%s", dir, name);
    return 0;
}

//  proc_start runs $CLAWGATE_BIN, so point that at the stand-in for the one
//  fork.
int
standin_proc_start (proc_t *proc, const char *bin, const char *const args[])
{
    char saved[1024] = "";
    const char *cur = getenv ("CLAWGATE_BIN");
    bool had = cur != NULL;
    if (had)
        snprintf (saved, sizeof (saved), "%s", cur);
    setenv ("CLAWGATE_BIN", bin, 1);
    int rc = proc_start (proc, args, NULL);
    if (had)
        setenv ("CLAWGATE_BIN", saved, 1);
    else
        unsetenv ("CLAWGATE_BIN");
    if (rc != 0)
        return -1;
    char line[256];
    if (proc_wait_line (proc, "listening on 127.0.0.1:", 15000, line, sizeof (line))
        != 0) {
        proc_stop (proc, SIGKILL, 1000);
        unlink (proc->err_path);
        return -1;
    }
    int port = atoi (strrchr (line, ':') + 1);
    return port > 0 ? port : -1;
}

void
standin_proc_stop (proc_t *proc, int sig)
{
    if (proc->pid <= 0)
        return;
    proc_stop (proc, sig, 10000);
    unlink (proc->err_path);
}

int
standin_proc_restart (proc_t *proc, int (*launch) (void *arg), void *arg)
{
    if (proc->pid > 0)
        standin_proc_stop (proc, SIGKILL);
    long long deadline = harness_now_ms () + 5000;
    while (true) {
        if (launch (arg) == 0)
            return 0;
        if (harness_now_ms () > deadline)
            return -1;
        usleep (100000);
    }
}

//  ---- Control API --------------------------------------------------------

cJSON *
standin_control (const char *base, const char *method, const char *path, const char *body)
{
    char url[512];
    snprintf (url, sizeof (url), "%s/control/%s", base, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    http_resp_t r;
    http_do (method, url, body ? headers : NULL, body, body ? strlen (body) : 0, &r);
    cJSON *root = r.status == 200 ? cJSON_Parse (r.body) : NULL;
    http_resp_free (&r);
    return root;
}

cJSON *
standin_control_list (const char *base, const char *path, const char *name)
{
    cJSON *root = standin_control (base, "GET", path, NULL);
    if (root && !cJSON_IsArray (cJSON_GetObjectItem (root, name))) {
        cJSON_Delete (root);
        root = NULL;
    }
    return root;
}

int
standin_wait_items (const char *base, const char *path, const char *name, int n,
                    int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *root = standin_control_list (base, path, name);
        int have = cJSON_GetArraySize (cJSON_GetObjectItem (root, name));
        cJSON_Delete (root);
        if (have >= n)
            return 0;
        if (harness_now_ms () >= deadline)
            return -1;
        usleep (50000);
    }
}

void
standin_query_path (char *path, size_t cap, const char *endpoint, const char *key,
                    const char *value)
{
    snprintf (path, cap, "%s", endpoint);
    if (value) {
        char *escaped = curl_easy_escape (NULL, value, 0);
        snprintf (path, cap, "%s?%s=%s", endpoint, key, escaped ? escaped : "");
        curl_free (escaped);
    }
}
