/*  =========================================================================
    discord - drive cg_dcstandin from tests (see discord.h)
    =========================================================================
*/
#include "discord.h"
#include "standin_proc.h"

#include <civetweb.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  ---- The process ------------------------------------------------------------

static int
s_launch (dc_standin_t *d, int port, int tls_port)
{
    char bin[1100];
    if (standin_proc_path ("discord", "cg_dcstandin", bin, sizeof (bin)) != 0)
        return -1;

    char port_text[16], tls_text[16], heartbeat[16], limit[16], window[16];
    char cert[300], key[300];
    const char *args[32];
    int n = 0;
    snprintf (port_text, sizeof (port_text), "%d", port);
    args[n++] = "--port";
    args[n++] = port_text;
    args[n++] = "--token";
    args[n++] = d->token;
    if (d->state[0]) {
        args[n++] = "--state";
        args[n++] = d->state;
    }
    if (d->opt.heartbeat_ms > 0) {
        snprintf (heartbeat, sizeof (heartbeat), "%d", d->opt.heartbeat_ms);
        args[n++] = "--heartbeat-ms";
        args[n++] = heartbeat;
    }
    if (d->opt.require_intents)
        args[n++] = "--require-intents";
    if (d->opt.bucket_limit > 0) {
        snprintf (limit, sizeof (limit), "%d", d->opt.bucket_limit);
        args[n++] = "--bucket-limit";
        args[n++] = limit;
    }
    if (d->opt.bucket_window_ms > 0) {
        snprintf (window, sizeof (window), "%d", d->opt.bucket_window_ms);
        args[n++] = "--bucket-window-ms";
        args[n++] = window;
    }
    if (d->tls_dir[0]) {
        snprintf (cert, sizeof (cert), "%s/server.crt", d->tls_dir);
        snprintf (key, sizeof (key), "%s/server.key", d->tls_dir);
        snprintf (tls_text, sizeof (tls_text), "%d", tls_port);
        args[n++] = "--tls-cert";
        args[n++] = cert;
        args[n++] = "--tls-key";
        args[n++] = key;
        args[n++] = "--tls-port";
        args[n++] = tls_text;
    }
    args[n] = NULL;
    int got = standin_proc_start (&d->proc, bin, args);
    if (got < 0)
        return -1;
    if (d->tls_dir[0]
        && proc_wait_line (&d->proc, "tls on 127.0.0.1:", 5000, NULL, 0) != 0) {
        standin_proc_stop (&d->proc, SIGKILL);
        return -1;
    }
    d->port = got;
    snprintf (d->base, sizeof (d->base), "http://127.0.0.1:%d", d->port);
    snprintf (d->api, sizeof (d->api), "%s/api/v10", d->base);
    if (d->tls_dir[0]) {
        const char *tls = strstr (d->proc.out, "tls on 127.0.0.1:");
        d->tls_port = tls ? atoi (tls + strlen ("tls on 127.0.0.1:")) : 0;
        snprintf (d->api_tls, sizeof (d->api_tls), "https://127.0.0.1:%d/api/v10",
                  d->tls_port);
    }
    return d->port > 0 && (!d->tls_dir[0] || d->tls_port > 0) ? 0 : -1;
}

static int
s_relaunch (void *d)
{
    return s_launch ((dc_standin_t *) d, ((dc_standin_t *) d)->port,
                     ((dc_standin_t *) d)->tls_port);
}

int
dc_start (dc_standin_t *d, const char *state_file, const dc_options_t *opt)
{
    memset (d, 0, sizeof (*d));
    if (opt)
        d->opt = *opt;
    snprintf (d->token, sizeof (d->token), "%s", d->opt.token ? d->opt.token : DC_TOKEN);
    d->opt.token = d->token;
    if (state_file)
        snprintf (d->state, sizeof (d->state), "%s", state_file);
    if (d->opt.tls_dir)
        snprintf (d->tls_dir, sizeof (d->tls_dir), "%s", d->opt.tls_dir);
    d->opt.tls_dir = d->tls_dir[0] ? d->tls_dir : NULL;
    return s_launch (d, 0, 0);
}

int
dc_restart (dc_standin_t *d)
{
    return standin_proc_restart (&d->proc, s_relaunch, d);
}

void
dc_stop (dc_standin_t *d, int sig)
{
    standin_proc_stop (&d->proc, sig);
}

int
dc_make_certs (const char *dir, char *ca, size_t cap)
{
    char cmd[4096];
    snprintf (cmd, sizeof (cmd),
              "cd '%s' && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n"
              "basicConstraints=CA:FALSE\\nkeyUsage=digitalSignature,keyEncipherment\\n"
              "extendedKeyUsage=serverAuth\\n' > server.ext"
              " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1"
              " -nodes -keyout ca.key -out ca.crt -days 2 -subj '/CN=clawgate test CA'"
              " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
              " -keyout server.key -out server.csr -subj '/CN=127.0.0.1'"
              " && openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key"
              " -CAcreateserial -out server.crt -days 2 -extfile server.ext",
              dir);
    //  The first commands' chatter too.
    char quiet[4200];
    snprintf (quiet, sizeof (quiet), "( %s ) >/dev/null 2>&1", cmd);
    if (system (quiet) != 0)
        return -1;
    snprintf (ca, cap, "%s/ca.crt", dir);
    return access (ca, R_OK) == 0 ? 0 : -1;
}

//  ---- Control API ------------------------------------------------------------

static cJSON *
s_control (dc_standin_t *d, const char *method, const char *path, const char *body)
{
    return standin_control (d->base, method, path, body);
}

long
dc_message (dc_standin_t *d, const char *json_fields, char *id)
{
    cJSON *root = s_control (d, "POST", "message", json_fields);
    cJSON *s = cJSON_GetObjectItem (root, "s");
    long result = cJSON_IsNumber (s) ? (long) s->valuedouble : -1;
    if (id) {
        const char *text = cJSON_GetStringValue (cJSON_GetObjectItem (root, "id"));
        snprintf (id, 32, "%s", text ? text : "");
    }
    cJSON_Delete (root);
    return result;
}

int
dc_fault (dc_standin_t *d, const char *json)
{
    cJSON *root = s_control (d, "POST", "fault", json);
    cJSON *n = cJSON_GetObjectItem (root, "faults");
    if (!n)
        n = cJSON_GetObjectItem (root, "touched");
    int rc = cJSON_IsNumber (n) ? (int) n->valuedouble : -1;
    cJSON_Delete (root);
    return rc;
}

int
dc_reset (dc_standin_t *d)
{
    cJSON *root = s_control (d, "POST", "reset", "{}");
    int rc = root ? 0 : -1;
    cJSON_Delete (root);
    return rc;
}

cJSON *
dc_sent (dc_standin_t *d, const char *channel_id)
{
    char path[256];
    standin_query_path (path, sizeof (path), "sent", "channel_id", channel_id);
    return standin_control_list (d->base, path, "messages");
}

cJSON *
dc_calls (dc_standin_t *d)
{
    return s_control (d, "GET", "calls", NULL);
}

cJSON *
dc_received (dc_standin_t *d)
{
    return s_control (d, "GET", "received", NULL);
}

long
dc_call (dc_standin_t *d, const char *name)
{
    cJSON *root = dc_calls (d);
    cJSON *n = cJSON_GetObjectItem (root, name);
    long result = root ? (cJSON_IsNumber (n) ? (long) n->valuedouble : 0) : -1;
    cJSON_Delete (root);
    return result;
}

int
dc_wait_sent (dc_standin_t *d, const char *channel_id, int n, int timeout_ms)
{
    char path[256];
    standin_query_path (path, sizeof (path), "sent", "channel_id", channel_id);
    return standin_wait_items (d->base, path, "messages", n, timeout_ms);
}

int
dc_wait_call (dc_standin_t *d, const char *name, long n, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        if (dc_call (d, name) >= n)
            return 0;
        if (harness_now_ms () >= deadline)
            return -1;
        usleep (50000);
    }
}

//  ---- Gateway client ---------------------------------------------------------

struct dc_ws_t {
    struct mg_connection *conn;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    cJSON *frames;   //  Every text frame, parsed (array)
    int cursor;      //  Next frame a wait looks at
    bool closed;     //  The connection ended
    int close_code;  //  The server's close code, 1006 if none came
};

static int
s_ws_data (struct mg_connection *conn, int flags, char *data, size_t len, void *arg)
{
    dc_ws_t *w = (dc_ws_t *) arg;
    int opcode = flags & 0x0f;
    pthread_mutex_lock (&w->lock);
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
        w->close_code =
            len >= 2 ? ((unsigned char) data[0] << 8) | (unsigned char) data[1] : 1005;
    }
    else if (opcode == MG_WEBSOCKET_OPCODE_TEXT) {
        cJSON *frame = cJSON_ParseWithLength (data, len);
        cJSON_AddItemToArray (w->frames, frame ? frame : cJSON_CreateNull ());
    }
    pthread_cond_broadcast (&w->cond);
    pthread_mutex_unlock (&w->lock);
    return opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE ? 0 : 1;
}

static void
s_ws_close (const struct mg_connection *conn, void *arg)
{
    dc_ws_t *w = (dc_ws_t *) arg;
    pthread_mutex_lock (&w->lock);
    w->closed = true;
    if (!w->close_code)
        w->close_code = 1006;
    pthread_cond_broadcast (&w->cond);
    pthread_mutex_unlock (&w->lock);
}

dc_ws_t *
dc_ws_open (dc_standin_t *d, const char *path, bool tls, char *err, size_t cap)
{
    static bool library;
    if (!library) {
        mg_init_library (MG_FEATURES_TLS);
        library = true;
    }
    dc_ws_t *w = calloc (1, sizeof (dc_ws_t));
    if (!w)
        return NULL;
    pthread_mutex_init (&w->lock, NULL);
    pthread_cond_init (&w->cond, NULL);
    w->frames = cJSON_CreateArray ();
    char ebuf[256] = "";
    w->conn = mg_connect_websocket_client ("127.0.0.1", tls ? d->tls_port : d->port,
                                           tls ? 1 : 0, ebuf, sizeof (ebuf), path, NULL,
                                           s_ws_data, s_ws_close, w);
    if (err && cap)
        snprintf (err, cap, "%s", ebuf);
    if (!w->conn) {
        cJSON_Delete (w->frames);
        pthread_cond_destroy (&w->cond);
        pthread_mutex_destroy (&w->lock);
        free (w);
        return NULL;
    }
    return w;
}

int
dc_ws_send (dc_ws_t *w, const char *text)
{
    return mg_websocket_client_write (w->conn, MG_WEBSOCKET_OPCODE_TEXT, text,
                                      strlen (text))
                   > 0
               ? 0
               : -1;
}

int
dc_ws_identify (dc_ws_t *w, const char *token, int intents)
{
    char text[512];
    snprintf (text, sizeof (text),
              "{\"op\":2,\"d\":{\"token\":\"%s\",\"intents\":%d,\"properties\":"
              "{\"os\":\"linux\",\"browser\":\"clawgate\",\"device\":\"clawgate\"}}}",
              token, intents);
    return dc_ws_send (w, text);
}

int
dc_ws_resume (dc_ws_t *w, const char *token, const char *session_id, long seq)
{
    char text[512];
    snprintf (text, sizeof (text),
              "{\"op\":6,\"d\":{\"token\":\"%s\",\"session_id\":\"%s\",\"seq\":%ld}}",
              token, session_id, seq);
    return dc_ws_send (w, text);
}

//  Waits on the client's condition until ms from now.  Lock held.
static void
s_ws_wait_ms (dc_ws_t *w, int ms)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    ts.tv_nsec += (long) ms * 1000000;
    ts.tv_sec += ts.tv_nsec / 1000000000;
    ts.tv_nsec %= 1000000000;
    pthread_cond_timedwait (&w->cond, &w->lock, &ts);
}

cJSON *
dc_ws_wait (dc_ws_t *w, int op, const char *t, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    pthread_mutex_lock (&w->lock);
    while (true) {
        int n = cJSON_GetArraySize (w->frames);
        for (int i = w->cursor; i < n; i++) {
            cJSON *frame = cJSON_GetArrayItem (w->frames, i);
            cJSON *frame_op = cJSON_GetObjectItem (frame, "op");
            const char *frame_t = cJSON_GetStringValue (cJSON_GetObjectItem (frame, "t"));
            if ((op < 0 || (cJSON_IsNumber (frame_op) && frame_op->valuedouble == op))
                && (!t || (frame_t && strcmp (frame_t, t) == 0))) {
                w->cursor = i + 1;
                cJSON *copy = cJSON_Duplicate (frame, true);
                pthread_mutex_unlock (&w->lock);
                return copy;
            }
        }
        long long left = deadline - harness_now_ms ();
        if (left <= 0 || w->closed)
            break;
        s_ws_wait_ms (w, left > 50 ? 50 : (int) left);
    }
    pthread_mutex_unlock (&w->lock);
    return NULL;
}

int
dc_ws_wait_closed (dc_ws_t *w, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    pthread_mutex_lock (&w->lock);
    while (!w->closed && harness_now_ms () < deadline)
        s_ws_wait_ms (w, 50);
    int code = w->closed ? w->close_code : -1;
    pthread_mutex_unlock (&w->lock);
    return code;
}

int
dc_ws_count (dc_ws_t *w)
{
    pthread_mutex_lock (&w->lock);
    int n = cJSON_GetArraySize (w->frames);
    pthread_mutex_unlock (&w->lock);
    return n;
}

void
dc_ws_close (dc_ws_t **wp, int code)
{
    dc_ws_t *w = *wp;
    if (!w)
        return;
    *wp = NULL;
    pthread_mutex_lock (&w->lock);
    bool closed = w->closed;
    pthread_mutex_unlock (&w->lock);
    if (!closed) {
        char payload[2] = {(char) ((code >> 8) & 0xff), (char) (code & 0xff)};
        mg_websocket_client_write (w->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, payload,
                                   2);
        dc_ws_wait_closed (w, 3000);
    }
    mg_close_connection (w->conn);
    cJSON_Delete (w->frames);
    pthread_cond_destroy (&w->cond);
    pthread_mutex_destroy (&w->lock);
    free (w);
}
