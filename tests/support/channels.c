/*  =========================================================================
    channels - a served gateway with channels, for tests (see channels.h)
    =========================================================================
*/
#include "channels.h"

#include <civetweb.h>
#include <ctype.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  ---- The gateway ----------------------------------------------------------------

static int
s_launch (ch_gw_t *g)
{
    //  A restart keeps the port: platforms go on pushing to the same URL
    //  (WhatsApp and Slack retry their webhooks there).
    char port[16];
    snprintf (port, sizeof (port), "%d", g->port > 0 ? g->port : 0);
    const char *args[] = {"serve",  "--port",   port,      "--state-dir",
                          g->state, "--config", g->config, NULL};
    char line[512];
    for (int attempt = 0;; attempt++) {
        if (proc_start (&g->proc, args, NULL))
            return -1;
        if (proc_wait_line (&g->proc, "listening on http://", 20000, line, sizeof (line))
            == 0)
            break;
        //  The old process's port may linger a moment: try again.
        proc_stop (&g->proc, SIGKILL, 2000);
        if (g->port <= 0 || attempt == 20)
            return -1;
        usleep (100000);
    }
    char *colon = strrchr (strstr (line, "http://") + 7, ':');
    g->port = colon ? atoi (colon + 1) : 0;
    if (g->port <= 0)
        return -1;
    snprintf (g->base, sizeof (g->base), "http://127.0.0.1:%d", g->port);
    char path[300];
    snprintf (path, sizeof (path), "%s/token", g->state);
    FILE *f = fopen (path, "r");
    if (f) {
        if (fgets (g->token, sizeof (g->token), f))
            g->token[strcspn (g->token, "\r\n")] = 0;
        fclose (f);
    }
    snprintf (g->auth, sizeof (g->auth), "Authorization: Bearer %s", g->token);
    char url[128];
    snprintf (url, sizeof (url), "%s/health", g->base);
    return http_wait_status (url, NULL, 200, 15000) >= 0 ? 0 : -1;
}

int
ch_gw_start (ch_gw_t *g, const char *config_json)
{
    memset (g, 0, sizeof (*g));
    harness_tmpdir (g->state, sizeof (g->state));
    snprintf (g->config, sizeof (g->config), "%s/config.json", g->state);
    harness_write (g->config, config_json);
    return s_launch (g);
}

int
ch_gw_restart (ch_gw_t *g)
{
    if (g->proc.pid > 0)
        ch_gw_stop (g, SIGKILL);
    return s_launch (g);
}

int
ch_gw_stop (ch_gw_t *g, int sig)
{
    if (g->proc.pid <= 0)
        return -1;
    int rc = proc_stop (&g->proc, sig, 20000);
    unlink (g->proc.err_path);
    g->proc.pid = 0;
    return rc;
}

void
ch_gw_destroy (ch_gw_t *g)
{
    if (g->proc.pid > 0)
        ch_gw_stop (g, SIGKILL);
    if (g->state[0])
        harness_rmtree (g->state);
}

void
ch_tg_config (char *buf, size_t cap, tg_standin_t *t, const char *extra, const char *more)
{
    snprintf (buf, cap,
              "{\"channels\":{\"telegram\":{\"botToken\":\"%s\",\"baseUrl\":\"%s\","
              "\"pollTimeoutS\":1,\"retryMinMs\":100,\"retryMaxMs\":1000%s%s}%s%s}}",
              t->token, t->base, extra ? "," : "", extra ? extra : "", more ? "," : "",
              more ? more : "");
}

//  ---- HTTP -----------------------------------------------------------------------

long
ch_http (ch_gw_t *g, const char *method, const char *path, const char *body, bool auth,
         const char *const headers[], cJSON **out)
{
    const char *all[16];
    int n = 0;
    if (auth)
        all[n++] = g->auth;
    if (body)
        all[n++] = "Content-Type: application/json";
    for (int i = 0; headers && headers[i] && n < 15; i++)
        all[n++] = headers[i];
    all[n] = NULL;
    char url[1024];
    snprintf (url, sizeof (url), "%s%s", g->base, path);
    http_resp_t r;
    http_do (method, url, all, body, body ? strlen (body) : 0, &r);
    if (out)
        *out = r.body ? cJSON_Parse (r.body) : NULL;
    long status = r.status;
    http_resp_free (&r);
    return status;
}

cJSON *
ch_status (ch_gw_t *g, const char *id)
{
    char path[128];
    snprintf (path, sizeof (path), "/v1/channels/%s/status", id);
    cJSON *root = NULL;
    if (ch_http (g, "GET", path, NULL, true, NULL, &root) != 200) {
        cJSON_Delete (root);
        return NULL;
    }
    return root;
}

long
ch_status_num (ch_gw_t *g, const char *id, const char *field)
{
    cJSON *root = ch_status (g, id);
    cJSON *item = cJSON_GetObjectItem (root, field);
    long value = cJSON_IsNumber (item) ? (long) item->valuedouble : -1;
    cJSON_Delete (root);
    return value;
}

int
ch_wait_status (ch_gw_t *g, const char *id, const char *want, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *root = ch_status (g, id);
        const char *s = cJSON_GetStringValue (cJSON_GetObjectItem (root, "status"));
        bool match = s && strcmp (s, want) == 0;
        cJSON_Delete (root);
        if (match)
            return 0;
        if (harness_now_ms () >= deadline)
            return -1;
        usleep (50000);
    }
}

//  ---- The stand-in ---------------------------------------------------------------

long
ch_tg_message (tg_standin_t *t, const char *json_fields, long *message_id)
{
    char url[256];
    snprintf (url, sizeof (url), "%s/control/message", t->base);
    const char *headers[] = {"Content-Type: application/json", NULL};
    http_resp_t r;
    http_do ("POST", url, headers, json_fields, strlen (json_fields), &r);
    cJSON *root = r.status == 200 ? cJSON_Parse (r.body) : NULL;
    http_resp_free (&r);
    cJSON *u = cJSON_GetObjectItem (root, "update_id");
    cJSON *m = cJSON_GetObjectItem (root, "message_id");
    long update = cJSON_IsNumber (u) ? (long) u->valuedouble : -1;
    if (message_id)
        *message_id = cJSON_IsNumber (m) ? (long) m->valuedouble : -1;
    cJSON_Delete (root);
    return update;
}

long
ch_tg_dm (tg_standin_t *t, long chat, const char *text)
{
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddNumberToObject (body, "chat_id", (double) chat);
    cJSON_AddStringToObject (body, "text", text);
    char *json = cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    long message_id = -1;
    ch_tg_message (t, json, &message_id);
    cJSON_free (json);
    return message_id;
}

int
ch_tg_count (tg_standin_t *t, const char *chat, long reply_to)
{
    cJSON *root = tg_sent (t, chat);
    int n = 0;
    cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItem (root, "messages"))
    {
        long r = (long) cJSON_GetNumberValue (cJSON_GetObjectItem (m, "reply_to"));
        if (reply_to == 0 || r == reply_to)
            n++;
    }
    cJSON_Delete (root);
    return n;
}

char *
ch_tg_wait_reply (tg_standin_t *t, const char *chat, long reply_to, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *root = tg_sent (t, chat);
        char *text = NULL;
        cJSON *m;
        cJSON_ArrayForEach (m, cJSON_GetObjectItem (root, "messages"))
        {
            long r = (long) cJSON_GetNumberValue (cJSON_GetObjectItem (m, "reply_to"));
            const char *s = cJSON_GetStringValue (cJSON_GetObjectItem (m, "text"));
            if (r == reply_to && s) {
                text = strdup (s);
                break;
            }
        }
        cJSON_Delete (root);
        if (text)
            return text;
        if (harness_now_ms () >= deadline)
            return NULL;
        usleep (50000);
    }
}

int
ch_tg_wait_calls (tg_standin_t *t, const char *method, long n, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (tg_calls (t, method) < n) {
        if (harness_now_ms () >= deadline)
            return -1;
        usleep (50000);
    }
    return 0;
}

//  ---- WebSocket ------------------------------------------------------------------

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    cJSON *reply;  //  The frame with id 1
    bool closed;
} s_ws_t;

static int
s_ws_data (struct mg_connection *conn, int bits, char *data, size_t len, void *arg)
{
    (void) conn;
    s_ws_t *c = (s_ws_t *) arg;
    int opcode = bits & 0x0f;
    pthread_mutex_lock (&c->lock);
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
        c->closed = true;
    else if (opcode == MG_WEBSOCKET_OPCODE_TEXT && !c->reply) {
        cJSON *j = cJSON_ParseWithLength (data, len);
        cJSON *id = cJSON_GetObjectItem (j, "id");
        if (cJSON_IsNumber (id) && id->valuedouble == 1)
            c->reply = j;
        else
            cJSON_Delete (j);
    }
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
    return opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE ? 0 : 1;
}

static void
s_ws_close (const struct mg_connection *conn, void *arg)
{
    (void) conn;
    s_ws_t *c = (s_ws_t *) arg;
    pthread_mutex_lock (&c->lock);
    c->closed = true;
    pthread_cond_broadcast (&c->cond);
    pthread_mutex_unlock (&c->lock);
}

cJSON *
ch_ws_call (ch_gw_t *g, const char *method, const char *params, int timeout_ms)
{
    mg_init_library (0);
    s_ws_t c;
    memset (&c, 0, sizeof (c));
    pthread_mutex_init (&c.lock, NULL);
    pthread_cond_init (&c.cond, NULL);
    char path[256], err[256] = "";
    snprintf (path, sizeof (path), "/?token=%s", g->token);
    struct mg_connection *conn =
        mg_connect_websocket_client ("127.0.0.1", g->port, 0, err, sizeof (err), path,
                                     NULL, s_ws_data, s_ws_close, &c);
    cJSON *reply = NULL;
    if (conn) {
        char text[1024];
        int n =
            snprintf (text, sizeof (text), "{\"method\":\"%s\",\"params\":%s,\"id\":1}",
                      method, params ? params : "{}");
        mg_websocket_client_write (conn, MG_WEBSOCKET_OPCODE_TEXT, text, (size_t) n);
        long long deadline = harness_now_ms () + timeout_ms;
        pthread_mutex_lock (&c.lock);
        while (!c.reply && !c.closed && harness_now_ms () < deadline) {
            pthread_mutex_unlock (&c.lock);
            usleep (20000);
            pthread_mutex_lock (&c.lock);
        }
        reply = c.reply;
        c.reply = NULL;
        pthread_mutex_unlock (&c.lock);
        mg_close_connection (conn);
    }
    pthread_cond_destroy (&c.cond);
    pthread_mutex_destroy (&c.lock);
    mg_exit_library ();
    return reply;
}

//  ---- Small helpers ------------------------------------------------------

const char *
ch_str (const cJSON *obj, const char *name)
{
    return cJSON_GetStringValue (cJSON_GetObjectItem (obj, name));
}

double
ch_num (const cJSON *obj, const char *name)
{
    return cJSON_GetNumberValue (cJSON_GetObjectItem (obj, name));
}

bool
ch_code_in (const char *text, char *code)
{
    const char *p = text ? strstr (text, "Pairing code: ") : NULL;
    if (!p)
        return false;
    p += strlen ("Pairing code: ");
    for (int i = 0; i < 8; i++) {
        char c = p[i];
        bool ok =
            (c >= 'A' && c <= 'Z' && c != 'I' && c != 'O') || (c >= '2' && c <= '9');
        if (!ok)
            return false;
        code[i] = c;
    }
    code[8] = 0;
    return !isalnum ((unsigned char) p[8]);
}
