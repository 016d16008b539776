/*  =========================================================================
    slack - drive cg_slackstandin from tests (see slack.h)
    =========================================================================
*/
#include "slack.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
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

//  proc_start runs $CLAWGATE_BIN, so point that at the stand-in for the one
//  fork.  Tests call this from their own (single) thread.
static int
s_launch (sl_standin_t *s, int port)
{
    const char *dir = getenv ("CLAWGATE_STANDIN_DIR");
    if (!dir || !*dir) {
        fprintf (stderr, "slack: CLAWGATE_STANDIN_DIR is not set (run under ctest)\n");
        return -1;
    }
    char bin[1024];
    snprintf (bin, sizeof (bin), "%s/cg_slackstandin", dir);
    char saved[1024] = "";
    const char *cur = getenv ("CLAWGATE_BIN");
    bool had = cur != NULL;
    if (had)
        snprintf (saved, sizeof (saved), "%s", cur);
    setenv ("CLAWGATE_BIN", bin, 1);

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
    int rc = proc_start (&s->proc, args, NULL);
    if (had)
        setenv ("CLAWGATE_BIN", saved, 1);
    else
        unsetenv ("CLAWGATE_BIN");
    if (rc != 0)
        return -1;
    char line[256];
    if (proc_wait_line (&s->proc, "listening on 127.0.0.1:", 15000, line, sizeof (line))
        != 0) {
        proc_stop (&s->proc, SIGKILL, 1000);
        unlink (s->proc.err_path);
        return -1;
    }
    s->port = atoi (strrchr (line, ':') + 1);
    snprintf (s->base, sizeof (s->base), "http://127.0.0.1:%d", s->port);
    snprintf (s->api, sizeof (s->api), "%s/api", s->base);
    return s->port > 0 ? 0 : -1;
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
    if (s->proc.pid > 0)
        sl_stop (s, SIGKILL);
    long long deadline = harness_now_ms () + 5000;
    while (true) {
        if (s_launch (s, s->port) == 0)
            return 0;
        if (harness_now_ms () > deadline)
            return -1;
        usleep (100000);
    }
}

void
sl_stop (sl_standin_t *s, int sig)
{
    if (s->proc.pid <= 0)
        return;
    proc_stop (&s->proc, sig, 10000);
    unlink (s->proc.err_path);
    s->proc.pid = 0;
}

cJSON *
sl_control (sl_standin_t *s, const char *method, const char *path, const char *body)
{
    char url[512];
    snprintf (url, sizeof (url), "%s/control/%s", s->base, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    http_resp_t r;
    http_do (method, url, body ? headers : NULL, body, body ? strlen (body) : 0, &r);
    cJSON *root = r.status == 200 ? cJSON_Parse (r.body) : NULL;
    http_resp_free (&r);
    return root;
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
    cJSON *root = sl_control (s, "GET", path, NULL);
    if (root && !cJSON_IsArray (cJSON_GetObjectItem (root, "messages"))) {
        cJSON_Delete (root);
        root = NULL;
    }
    return root;
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

//  ---- SHA-256 and HMAC (FIPS 180-4, RFC 2104), for checking signatures --------

typedef struct {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char block[64];
    size_t used;
} s_sha256_t;

static const uint32_t s_k[64] = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
    0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
    0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
    0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
    0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
    0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
    0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
    0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

#define S_ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
s_sha256_block (s_sha256_t *c, const unsigned char *p)
{
    uint32_t w[64], v[8];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t) p[4 * i] << 24 | (uint32_t) p[4 * i + 1] << 16
               | (uint32_t) p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = S_ROR (w[i - 15], 7) ^ S_ROR (w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = S_ROR (w[i - 2], 17) ^ S_ROR (w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    memcpy (v, c->h, sizeof (v));
    for (int i = 0; i < 64; i++) {
        uint32_t s1 = S_ROR (v[4], 6) ^ S_ROR (v[4], 11) ^ S_ROR (v[4], 25);
        uint32_t ch = (v[4] & v[5]) ^ (~v[4] & v[6]);
        uint32_t t1 = v[7] + s1 + ch + s_k[i] + w[i];
        uint32_t s0 = S_ROR (v[0], 2) ^ S_ROR (v[0], 13) ^ S_ROR (v[0], 22);
        uint32_t maj = (v[0] & v[1]) ^ (v[0] & v[2]) ^ (v[1] & v[2]);
        memmove (v + 1, v, 7 * sizeof (uint32_t));
        v[4] += t1;
        v[0] = t1 + s0 + maj;
    }
    for (int i = 0; i < 8; i++)
        c->h[i] += v[i];
}

static void
s_sha256_init (s_sha256_t *c)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy (c->h, h0, sizeof (h0));
    c->bytes = 0;
    c->used = 0;
}

static void
s_sha256_add (s_sha256_t *c, const void *data, size_t len)
{
    const unsigned char *p = (const unsigned char *) data;
    c->bytes += len;
    while (len) {
        size_t take = 64 - c->used < len ? 64 - c->used : len;
        memcpy (c->block + c->used, p, take);
        c->used += take;
        p += take;
        len -= take;
        if (c->used == 64) {
            s_sha256_block (c, c->block);
            c->used = 0;
        }
    }
}

static void
s_sha256_end (s_sha256_t *c, unsigned char out[32])
{
    uint64_t bits = c->bytes * 8;
    unsigned char pad = 0x80, zero = 0, len[8];
    s_sha256_add (c, &pad, 1);
    while (c->used != 56)
        s_sha256_add (c, &zero, 1);
    for (int i = 0; i < 8; i++)
        len[i] = (unsigned char) (bits >> (56 - 8 * i));
    s_sha256_add (c, len, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char) (c->h[i] >> 24);
        out[4 * i + 1] = (unsigned char) (c->h[i] >> 16);
        out[4 * i + 2] = (unsigned char) (c->h[i] >> 8);
        out[4 * i + 3] = (unsigned char) c->h[i];
    }
}

void
sl_signature (const char *secret, const char *ts, const char *body, size_t body_len,
              char out[72])
{
    unsigned char key[64] = {0}, pad[64], inner[32], mac[32];
    size_t key_len = strlen (secret);
    s_sha256_t c;
    if (key_len > 64) {
        s_sha256_init (&c);
        s_sha256_add (&c, secret, key_len);
        s_sha256_end (&c, key);
    }
    else
        memcpy (key, secret, key_len);
    for (int i = 0; i < 64; i++)
        pad[i] = key[i] ^ 0x36;
    s_sha256_init (&c);
    s_sha256_add (&c, pad, 64);
    s_sha256_add (&c, "v0:", 3);
    s_sha256_add (&c, ts, strlen (ts));
    s_sha256_add (&c, ":", 1);
    s_sha256_add (&c, body, body_len);
    s_sha256_end (&c, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = key[i] ^ 0x5c;
    s_sha256_init (&c);
    s_sha256_add (&c, pad, 64);
    s_sha256_add (&c, inner, 32);
    s_sha256_end (&c, mac);
    strcpy (out, "v0=");
    for (int i = 0; i < 32; i++)
        sprintf (out + 3 + 2 * i, "%02x", mac[i]);
}
