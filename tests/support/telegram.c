/*  =========================================================================
    telegram - drive cg_tgstandin from tests (see telegram.h)
    =========================================================================
*/
#include "telegram.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  proc_start runs $CLAWGATE_BIN, so point that at the stand-in for the one
//  fork.  Tests call this from their own (single) thread.
static int
s_launch (tg_standin_t *t, int port)
{
    const char *bin = getenv ("CLAWGATE_TG_STANDIN");
    if (!bin || !*bin) {
        fprintf (stderr, "telegram: CLAWGATE_TG_STANDIN is not set (run under ctest)\n");
        return -1;
    }
    char saved[1024] = "";
    const char *cur = getenv ("CLAWGATE_BIN");
    bool had = cur != NULL;
    if (had)
        snprintf (saved, sizeof (saved), "%s", cur);
    setenv ("CLAWGATE_BIN", bin, 1);
    char port_text[16];
    snprintf (port_text, sizeof (port_text), "%d", port);
    const char *args[] = {"--port", port_text, "--token", t->token, NULL, NULL, NULL};
    if (t->state[0]) {
        args[4] = "--state";
        args[5] = t->state;
    }
    int rc = proc_start (&t->proc, args, NULL);
    if (had)
        setenv ("CLAWGATE_BIN", saved, 1);
    else
        unsetenv ("CLAWGATE_BIN");
    if (rc != 0)
        return -1;
    char line[256];
    if (proc_wait_line (&t->proc, "listening on 127.0.0.1:", 15000, line, sizeof (line))
        != 0) {
        proc_stop (&t->proc, SIGKILL, 1000);
        unlink (t->proc.err_path);
        return -1;
    }
    t->port = atoi (strrchr (line, ':') + 1);
    snprintf (t->base, sizeof (t->base), "http://127.0.0.1:%d", t->port);
    return t->port > 0 ? 0 : -1;
}

int
tg_start (tg_standin_t *t, const char *state_file)
{
    memset (t, 0, sizeof (*t));
    snprintf (t->token, sizeof (t->token), "%s", TG_TOKEN);
    if (state_file)
        snprintf (t->state, sizeof (t->state), "%s", state_file);
    return s_launch (t, 0);
}

int
tg_restart (tg_standin_t *t)
{
    if (t->proc.pid > 0)
        tg_stop (t, SIGKILL);
    long long deadline = harness_now_ms () + 5000;
    while (true) {
        if (s_launch (t, t->port) == 0)
            return 0;
        if (harness_now_ms () > deadline)
            return -1;
        usleep (100000);
    }
}

void
tg_stop (tg_standin_t *t, int sig)
{
    if (t->proc.pid <= 0)
        return;
    proc_stop (&t->proc, sig, 10000);
    unlink (t->proc.err_path);
}

//  One control call; returns the parsed JSON answer of a 200, or NULL.
//  Caller owns return value.
static cJSON *
s_control (tg_standin_t *t, const char *method, const char *path, const char *body)
{
    char url[512];
    snprintf (url, sizeof (url), "%s/control/%s", t->base, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    http_resp_t r;
    http_do (method, url, body ? headers : NULL, body, body ? strlen (body) : 0, &r);
    cJSON *root = r.status == 200 ? cJSON_Parse (r.body) : NULL;
    http_resp_free (&r);
    return root;
}

static long
s_enqueue (tg_standin_t *t, const char *path, const char *json)
{
    cJSON *root = s_control (t, "POST", path, json);
    cJSON *id = cJSON_GetObjectItem (root, "update_id");
    long result = cJSON_IsNumber (id) ? (long) id->valuedouble : -1;
    cJSON_Delete (root);
    return result;
}

long
tg_message (tg_standin_t *t, const char *json_fields)
{
    return s_enqueue (t, "message", json_fields);
}

long
tg_update (tg_standin_t *t, const char *update_json)
{
    return s_enqueue (t, "update", update_json);
}

int
tg_fault (tg_standin_t *t, const char *json)
{
    cJSON *root = s_control (t, "POST", "fault", json);
    int rc = root ? 0 : -1;
    cJSON_Delete (root);
    return rc;
}

cJSON *
tg_sent (tg_standin_t *t, const char *chat_id)
{
    char path[256] = "sent";
    if (chat_id) {
        char *escaped = curl_easy_escape (NULL, chat_id, 0);
        snprintf (path, sizeof (path), "sent?chat_id=%s", escaped ? escaped : "");
        curl_free (escaped);
    }
    cJSON *root = s_control (t, "GET", path, NULL);
    if (root && !cJSON_IsArray (cJSON_GetObjectItem (root, "messages"))) {
        cJSON_Delete (root);
        root = NULL;
    }
    return root;
}

long
tg_calls (tg_standin_t *t, const char *method)
{
    cJSON *root = s_control (t, "GET", "calls", NULL);
    cJSON *n = cJSON_GetObjectItem (root, method);
    long result = root ? (cJSON_IsNumber (n) ? (long) n->valuedouble : 0) : -1;
    cJSON_Delete (root);
    return result;
}

int
tg_wait_sent (tg_standin_t *t, const char *chat_id, int n, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *root = tg_sent (t, chat_id);
        int have = cJSON_GetArraySize (cJSON_GetObjectItem (root, "messages"));
        cJSON_Delete (root);
        if (have >= n)
            return 0;
        if (harness_now_ms () >= deadline)
            return -1;
        usleep (50000);
    }
}
