/*  =========================================================================
    telegram - drive cg_tgstandin from tests (see telegram.h)
    =========================================================================
*/
#include "telegram.h"
#include "standin_proc.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int
s_launch (tg_standin_t *t, int port)
{
    const char *bin = getenv ("CLAWGATE_TG_STANDIN");
    if (!bin || !*bin) {
        fprintf (stderr, "telegram: CLAWGATE_TG_STANDIN is not set (run under ctest)\n");
        return -1;
    }
    char port_text[16];
    snprintf (port_text, sizeof (port_text), "%d", port);
    const char *args[] = {"--port", port_text, "--token", t->token, NULL, NULL, NULL};
    if (t->state[0]) {
        args[4] = "--state";
        args[5] = t->state;
    }
    int got = standin_proc_start (&t->proc, bin, args);
    if (got < 0)
        return -1;
    t->port = got;
    snprintf (t->base, sizeof (t->base), "http://127.0.0.1:%d", t->port);
    return 0;
}

static int
s_relaunch (void *t)
{
    return s_launch ((tg_standin_t *) t, ((tg_standin_t *) t)->port);
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
    return standin_proc_restart (&t->proc, s_relaunch, t);
}

void
tg_stop (tg_standin_t *t, int sig)
{
    standin_proc_stop (&t->proc, sig);
}

static cJSON *
s_control (tg_standin_t *t, const char *method, const char *path, const char *body)
{
    return standin_control (t->base, method, path, body);
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
    char path[256];
    standin_query_path (path, sizeof (path), "sent", "chat_id", chat_id);
    return standin_control_list (t->base, path, "messages");
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
    char path[256];
    standin_query_path (path, sizeof (path), "sent", "chat_id", chat_id);
    return standin_wait_items (t->base, path, "messages", n, timeout_ms);
}
