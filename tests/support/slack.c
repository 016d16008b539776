/*  =========================================================================
    slack - drive cg_slackstandin from tests (see slack.h)
    =========================================================================
*/
#include "slack.h"
#include "standin_proc.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  Adds "--name value" to args when value is set.
static int
s_arg (const char **args, int n, char store[][24], const char *name, int value)
{
    if (value <= 0)
        return n;
    snprintf (store[n / 2], 24, "%d", value);
    args[n] = name;
    args[n + 1] = store[n / 2];
    return n + 2;
}

static int
s_launch (sl_standin_t *s, int port)
{
    char bin[1024];
    if (standin_proc_path ("slack", "cg_slackstandin", bin, sizeof (bin)) != 0)
        return -1;

    const char *args[40] = {NULL};
    char numbers[20][24];
    int n = s_arg (args, 0, numbers, "--port", port > 0 ? port : 0);
    if (port <= 0) {
        args[n++] = "--port";
        args[n++] = "0";
    }
    const sl_options_t *o = &s->opts;
    n = s_arg (args, n, numbers, "--ack-ms", o->ack_ms);
    n = s_arg (args, n, numbers, "--max-sockets", o->max_sockets);
    n = s_arg (args, n, numbers, "--disconnect-grace-ms", o->grace_ms);
    n = s_arg (args, n, numbers, "--ping-ms", o->ping_ms);
    n = s_arg (args, n, numbers, "--http-timeout-ms", o->http_timeout_ms);
    n = s_arg (args, n, numbers, "--max-text", o->max_text);
    if (o->retry_delays) {
        args[n++] = "--retry-delays-ms";
        args[n++] = o->retry_delays;
    }
    if (o->target) {
        args[n++] = "--target";
        args[n++] = o->target;
    }
    if (o->seed) {
        args[n++] = "--seed";
        args[n++] = o->seed;
    }
    if (s->state[0]) {
        args[n++] = "--state";
        args[n++] = s->state;
    }
    args[n] = NULL;
    int got = standin_proc_start (&s->proc, bin, args);
    if (got < 0)
        return -1;
    s->port = got;
    snprintf (s->base, sizeof (s->base), "http://127.0.0.1:%d", s->port);
    snprintf (s->api, sizeof (s->api), "%s/api", s->base);
    return 0;
}

static int
s_relaunch (void *s)
{
    return s_launch ((sl_standin_t *) s, ((sl_standin_t *) s)->port);
}

int
sl_start (sl_standin_t *s, const char *state_file, const sl_options_t *opts)
{
    memset (s, 0, sizeof (*s));
    if (state_file)
        snprintf (s->state, sizeof (s->state), "%s", state_file);
    if (opts)
        s->opts = *opts;
    return s_launch (s, 0);
}

int
sl_restart (sl_standin_t *s)
{
    return standin_proc_restart (&s->proc, s_relaunch, s);
}

void
sl_stop (sl_standin_t *s, int sig)
{
    standin_proc_stop (&s->proc, sig);
}

cJSON *
sl_control (sl_standin_t *s, const char *method, const char *path, const char *body)
{
    return standin_control (s->base, method, path, body);
}

cJSON *
sl_event (sl_standin_t *s, const char *json, char *event_id, size_t cap)
{
    cJSON *root = sl_control (s, "POST", "event", json);
    const char *id = cJSON_GetStringValue (cJSON_GetObjectItem (root, "event_id"));
    if (event_id && cap)
        snprintf (event_id, cap, "%s", id ? id : "");
    return root;
}

int
sl_fault (sl_standin_t *s, const char *json)
{
    cJSON *root = sl_control (s, "POST", "fault", json);
    int rc = root ? 0 : -1;
    cJSON_Delete (root);
    return rc;
}

cJSON *
sl_sent (sl_standin_t *s, const char *channel, const char *thread_ts)
{
    char path[512] = "sent";
    char *c = channel ? curl_easy_escape (NULL, channel, 0) : NULL;
    char *t = thread_ts ? curl_easy_escape (NULL, thread_ts, 0) : NULL;
    snprintf (path, sizeof (path), "sent?channel=%s&thread_ts=%s", c ? c : "",
              t ? t : "");
    if (!c && !t)
        snprintf (path, sizeof (path), "sent");
    else if (!t)
        snprintf (path, sizeof (path), "sent?channel=%s", c);
    else if (!c)
        snprintf (path, sizeof (path), "sent?thread_ts=%s", t);
    curl_free (c);
    curl_free (t);
    return standin_control_list (s->base, path, "messages");
}

cJSON *
sl_calls (sl_standin_t *s)
{
    return sl_control (s, "GET", "calls", NULL);
}

long
sl_count (sl_standin_t *s, const char *name)
{
    cJSON *root = sl_calls (s);
    cJSON *n = cJSON_GetObjectItem (root, name);
    if (!n)
        n = cJSON_GetObjectItem (cJSON_GetObjectItem (root, "methods"), name);
    long result = root ? (cJSON_IsNumber (n) ? (long) n->valuedouble : 0) : -1;
    cJSON_Delete (root);
    return result;
}

cJSON *
sl_pushes (sl_standin_t *s)
{
    return sl_control (s, "GET", "pushes", NULL);
}

int
sl_wait_sent (sl_standin_t *s, const char *channel, const char *thread_ts, int n,
              int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *root = sl_sent (s, channel, thread_ts);
        int have = cJSON_GetArraySize (cJSON_GetObjectItem (root, "messages"));
        cJSON_Delete (root);
        if (have >= n)
            return 0;
        if (harness_now_ms () >= deadline)
            return -1;
        usleep (50000);
    }
}

int
sl_wait_sockets (sl_standin_t *s, int n, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        if (sl_count (s, "sockets_open") == n)
            return 0;
        if (harness_now_ms () >= deadline)
            return -1;
        usleep (20000);
    }
}

int
sl_wait_count (sl_standin_t *s, const char *name, long n, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        if (sl_count (s, name) >= n)
            return 0;
        if (harness_now_ms () >= deadline)
            return -1;
        usleep (20000);
    }
}

cJSON *
sl_wait_push (sl_standin_t *s, int id, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *root = sl_pushes (s);
        cJSON *record = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "pushes"), id - 1);
        const char *outcome =
            cJSON_GetStringValue (cJSON_GetObjectItem (record, "outcome"));
        if (outcome && strcmp (outcome, "running") != 0) {
            cJSON *copy = cJSON_Duplicate (record, true);
            cJSON_Delete (root);
            return copy;
        }
        cJSON_Delete (root);
        if (harness_now_ms () >= deadline)
            return NULL;
        usleep (20000);
    }
}

//  ---- HMAC-SHA256 (libcrypto), for checking signatures -------------------------

void
sl_signature (const char *secret, const char *ts, const char *body, size_t body_len,
              char out[72])
{
    size_t ts_len = strlen (ts);
    unsigned char *base = malloc (ts_len + body_len + 4);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    strcpy (out, "v0=");
    if (!base)
        return;
    memcpy (base, "v0:", 3);
    memcpy (base + 3, ts, ts_len);
    base[3 + ts_len] = ':';
    memcpy (base + 4 + ts_len, body, body_len);
    unsigned char *ok = HMAC (EVP_sha256 (), secret, (int) strlen (secret), base,
                              ts_len + body_len + 4, mac, &mac_len);
    free (base);
    if (!ok)
        return;
    for (unsigned int i = 0; i < mac_len && i < 32; i++)
        sprintf (out + 3 + 2 * i, "%02x", mac[i]);
}
