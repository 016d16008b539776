/*  =========================================================================
    whatsapp - drive cg_wastandin from tests (see whatsapp.h)
    =========================================================================
*/
#include "whatsapp.h"

#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

//  ---- Process --------------------------------------------------------------------

//  proc_start runs $CLAWGATE_BIN, so point that at the stand-in for the one
//  fork.  Tests call this from their own (single) thread.
static int
s_launch (wa_standin_t *w, int port)
{
    const char *dir = getenv ("CLAWGATE_STANDIN_DIR");
    if (!dir || !*dir) {
        fprintf (stderr, "whatsapp: CLAWGATE_STANDIN_DIR is not set (run under ctest)\n");
        return -1;
    }
    char bin[1024];
    snprintf (bin, sizeof (bin), "%s/cg_wastandin", dir);
    char saved[1024] = "";
    const char *cur = getenv ("CLAWGATE_BIN");
    bool had = cur != NULL;
    if (had)
        snprintf (saved, sizeof (saved), "%s", cur);
    setenv ("CLAWGATE_BIN", bin, 1);
    char port_text[16];
    snprintf (port_text, sizeof (port_text), "%d", port);
    const char *args[20] = {"--port", port_text};
    int n = 2;
    if (w->state[0]) {
        args[n++] = "--state";
        args[n++] = w->state;
    }
    for (int i = 0; i < w->nargs; i++)
        args[n++] = w->args[i];
    args[n] = NULL;
    int rc = proc_start (&w->proc, args, NULL);
    if (had)
        setenv ("CLAWGATE_BIN", saved, 1);
    else
        unsetenv ("CLAWGATE_BIN");
    if (rc != 0)
        return -1;
    char line[256];
    if (proc_wait_line (&w->proc, "listening on 127.0.0.1:", 15000, line, sizeof (line))
        != 0) {
        proc_stop (&w->proc, SIGKILL, 1000);
        unlink (w->proc.err_path);
        return -1;
    }
    w->port = atoi (strrchr (line, ':') + 1);
    snprintf (w->base, sizeof (w->base), "http://127.0.0.1:%d", w->port);
    snprintf (w->graph, sizeof (w->graph), "%s/%s", w->base, WA_VERSION);
    snprintf (w->messages, sizeof (w->messages), "%s/%s/messages", w->graph,
              WA_PHONE_NUMBER_ID);
    return w->port > 0 ? 0 : -1;
}

int
wa_start (wa_standin_t *w, const char *state_file, const char *const args[])
{
    memset (w, 0, sizeof (*w));
    if (state_file)
        snprintf (w->state, sizeof (w->state), "%s", state_file);
    for (int i = 0; args && args[i] && w->nargs < 12; i++)
        snprintf (w->args[w->nargs++], sizeof (w->args[0]), "%s", args[i]);
    return s_launch (w, 0);
}

int
wa_restart (wa_standin_t *w)
{
    if (w->proc.pid > 0)
        wa_stop (w, SIGKILL);
    long long deadline = harness_now_ms () + 5000;
    while (true) {
        if (s_launch (w, w->port) == 0)
            return 0;
        if (harness_now_ms () > deadline)
            return -1;
        usleep (100000);
    }
}

void
wa_stop (wa_standin_t *w, int sig)
{
    if (w->proc.pid <= 0)
        return;
    proc_stop (&w->proc, sig, 10000);
    unlink (w->proc.err_path);
    w->proc.pid = 0;
}

//  ---- Control API ----------------------------------------------------------------

cJSON *
wa_control (wa_standin_t *w, const char *path, const char *body)
{
    char url[512];
    snprintf (url, sizeof (url), "%s/control/%s", w->base, path);
    const char *headers[] = {"Content-Type: application/json", NULL};
    http_resp_t r;
    http_do (body ? "POST" : "GET", url, body ? headers : NULL, body,
             body ? strlen (body) : 0, &r);
    cJSON *root = r.status == 200 ? cJSON_Parse (r.body) : NULL;
    http_resp_free (&r);
    return root;
}

typedef struct {
    char *data;
    size_t len;
} body_t;

static size_t
s_on_body (char *ptr, size_t size, size_t nmemb, void *arg)
{
    body_t *b = (body_t *) arg;
    size_t n = size * nmemb;
    char *grown = realloc (b->data, b->len + n + 1);
    if (!grown)
        return 0;
    memcpy (grown + b->len, ptr, n);
    b->len += n;
    grown[b->len] = 0;
    b->data = grown;
    return n;
}

//  POST /control/inbound with no timeout of ours: with wait it lasts as
//  long as the stand-in's attempts do, which may be more than http_do's
//  15 s.  Returns the parsed answer of a 200, or NULL.
static cJSON *
s_inbound_post (wa_standin_t *w, const char *json)
{
    char url[512];
    snprintf (url, sizeof (url), "%s/control/inbound", w->base);
    CURL *c = curl_easy_init ();
    if (!c)
        return NULL;
    struct curl_slist *h = curl_slist_append (NULL, "Content-Type: application/json");
    body_t b = {NULL, 0};
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_on_body);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform (c) == CURLE_OK)
        curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
    cJSON *root = status == 200 && b.data ? cJSON_Parse (b.data) : NULL;
    free (b.data);
    return root;
}

int
wa_inbound (wa_standin_t *w, const char *json, char *wamid, size_t cap, long *status)
{
    cJSON *body = cJSON_Parse (json);
    if (!cJSON_IsObject (body)) {
        cJSON_Delete (body);
        return -1;
    }
    if (!cJSON_GetObjectItem (body, "wait"))
        cJSON_AddBoolToObject (body, "wait", true);
    char *text = cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    cJSON *root = s_inbound_post (w, text);
    cJSON_free (text);
    if (!root)
        return -1;
    if (wamid && cap) {
        const char *id = cJSON_GetStringValue (
            cJSON_GetArrayItem (cJSON_GetObjectItem (root, "ids"), 0));
        snprintf (wamid, cap, "%s", id ? id : "");
    }
    if (status)
        *status = (long) cJSON_GetNumberValue (cJSON_GetObjectItem (root, "status"));
    int attempts = (int) cJSON_GetNumberValue (cJSON_GetObjectItem (root, "attempts"));
    cJSON_Delete (root);
    return attempts;
}

long
wa_inbound_text (wa_standin_t *w, const char *target, const char *from, const char *text,
                 char *wamid, size_t cap)
{
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddStringToObject (body, "target", target);
    cJSON_AddStringToObject (body, "from", from);
    cJSON_AddStringToObject (body, "text", text);
    char *json = cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    long status = 0;
    int attempts = wa_inbound (w, json, wamid, cap, &status);
    cJSON_free (json);
    return attempts < 0 ? -1 : status;
}

int
wa_verify (wa_standin_t *w, const char *target, const char *token, long *status)
{
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddStringToObject (body, "target", target);
    cJSON_AddStringToObject (body, "token", token ? token : WA_VERIFY_TOKEN);
    char *json = cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    cJSON *root = wa_control (w, "verify", json);
    cJSON_free (json);
    if (!root)
        return -1;
    if (status)
        *status = (long) cJSON_GetNumberValue (cJSON_GetObjectItem (root, "status"));
    int echoed = cJSON_IsTrue (cJSON_GetObjectItem (root, "echoed")) ? 1 : 0;
    cJSON_Delete (root);
    return echoed;
}

int
wa_fault (wa_standin_t *w, const char *json)
{
    cJSON *root = wa_control (w, "fault", json);
    int rc = root ? 0 : -1;
    cJSON_Delete (root);
    return rc;
}

int
wa_reset (wa_standin_t *w)
{
    cJSON *root = wa_control (w, "reset", "{}");
    int rc = root ? 0 : -1;
    cJSON_Delete (root);
    return rc;
}

//  GET path and check it holds an array named name.
static cJSON *
s_log (wa_standin_t *w, const char *path, const char *name)
{
    cJSON *root = wa_control (w, path, NULL);
    if (root && !cJSON_IsArray (cJSON_GetObjectItem (root, name))) {
        cJSON_Delete (root);
        root = NULL;
    }
    return root;
}

cJSON *
wa_sent (wa_standin_t *w, const char *wa_id)
{
    char path[256] = "sent";
    if (wa_id) {
        char *escaped = curl_easy_escape (NULL, wa_id, 0);
        snprintf (path, sizeof (path), "sent?to=%s", escaped ? escaped : "");
        curl_free (escaped);
    }
    return s_log (w, path, "messages");
}

cJSON *
wa_reads (wa_standin_t *w)
{
    return s_log (w, "reads", "reads");
}

cJSON *
wa_pushes (wa_standin_t *w)
{
    return s_log (w, "pushes", "pushes");
}

long
wa_calls (wa_standin_t *w, const char *name)
{
    cJSON *root = wa_control (w, "calls", NULL);
    cJSON *n = cJSON_GetObjectItem (root, name);
    long result = root ? (cJSON_IsNumber (n) ? (long) n->valuedouble : 0) : -1;
    cJSON_Delete (root);
    return result;
}

//  Polls until the array name of the log at path has n entries.
static int
s_wait_log (wa_standin_t *w, const char *path, const char *name, int n, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *root = s_log (w, path, name);
        int have = cJSON_GetArraySize (cJSON_GetObjectItem (root, name));
        cJSON_Delete (root);
        if (have >= n)
            return 0;
        if (harness_now_ms () >= deadline)
            return -1;
        usleep (50000);
    }
}

int
wa_wait_sent (wa_standin_t *w, const char *wa_id, int n, int timeout_ms)
{
    char path[256] = "sent";
    if (wa_id) {
        char *escaped = curl_easy_escape (NULL, wa_id, 0);
        snprintf (path, sizeof (path), "sent?to=%s", escaped ? escaped : "");
        curl_free (escaped);
    }
    return s_wait_log (w, path, "messages", n, timeout_ms);
}

int
wa_wait_reads (wa_standin_t *w, int n, int timeout_ms)
{
    return s_wait_log (w, "reads", "reads", n, timeout_ms);
}

//  ---- HMAC-SHA256 (FIPS 180-4, RFC 2104) -----------------------------------------

typedef struct {
    uint32_t h[8];
    unsigned char block[64];
    size_t used;     //  Bytes in block
    uint64_t total;  //  Bytes hashed
} sha256_t;

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

#define ROR(x, n) (((x) >> (n)) | ((x) << (32 - (n))))

static void
s_sha_block (sha256_t *s, const unsigned char *p)
{
    uint32_t w[64];
    for (int i = 0; i < 16; i++)
        w[i] = (uint32_t) p[4 * i] << 24 | (uint32_t) p[4 * i + 1] << 16
               | (uint32_t) p[4 * i + 2] << 8 | p[4 * i + 3];
    for (int i = 16; i < 64; i++) {
        uint32_t s0 = ROR (w[i - 15], 7) ^ ROR (w[i - 15], 18) ^ (w[i - 15] >> 3);
        uint32_t s1 = ROR (w[i - 2], 17) ^ ROR (w[i - 2], 19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    uint32_t a = s->h[0], b = s->h[1], c = s->h[2], d = s->h[3], e = s->h[4], f = s->h[5],
             g = s->h[6], h = s->h[7];
    for (int i = 0; i < 64; i++) {
        uint32_t t1 = h + (ROR (e, 6) ^ ROR (e, 11) ^ ROR (e, 25)) + ((e & f) ^ (~e & g))
                      + s_k[i] + w[i];
        uint32_t t2 =
            (ROR (a, 2) ^ ROR (a, 13) ^ ROR (a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
        h = g;
        g = f;
        f = e;
        e = d + t1;
        d = c;
        c = b;
        b = a;
        a = t1 + t2;
    }
    s->h[0] += a;
    s->h[1] += b;
    s->h[2] += c;
    s->h[3] += d;
    s->h[4] += e;
    s->h[5] += f;
    s->h[6] += g;
    s->h[7] += h;
}

static void
s_sha_init (sha256_t *s)
{
    static const uint32_t h0[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                                   0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
    memcpy (s->h, h0, sizeof (h0));
    s->used = 0;
    s->total = 0;
}

static void
s_sha_update (sha256_t *s, const void *data, size_t len)
{
    const unsigned char *p = (const unsigned char *) data;
    s->total += len;
    while (len) {
        size_t take = 64 - s->used < len ? 64 - s->used : len;
        memcpy (s->block + s->used, p, take);
        s->used += take;
        p += take;
        len -= take;
        if (s->used == 64) {
            s_sha_block (s, s->block);
            s->used = 0;
        }
    }
}

static void
s_sha_final (sha256_t *s, unsigned char out[32])
{
    uint64_t bits = s->total * 8;
    unsigned char pad = 0x80;
    s_sha_update (s, &pad, 1);
    pad = 0;
    while (s->used != 56)
        s_sha_update (s, &pad, 1);
    unsigned char length[8];
    for (int i = 0; i < 8; i++)
        length[i] = (unsigned char) (bits >> (56 - 8 * i));
    s_sha_update (s, length, 8);
    for (int i = 0; i < 8; i++) {
        out[4 * i] = (unsigned char) (s->h[i] >> 24);
        out[4 * i + 1] = (unsigned char) (s->h[i] >> 16);
        out[4 * i + 2] = (unsigned char) (s->h[i] >> 8);
        out[4 * i + 3] = (unsigned char) s->h[i];
    }
}

void
wa_signature (const char *secret, const void *body, size_t len, char *out)
{
    unsigned char key[64] = {0}, pad[64], inner[32], mac[32];
    size_t key_len = strlen (secret);
    sha256_t s;
    if (key_len > 64) {
        s_sha_init (&s);
        s_sha_update (&s, secret, key_len);
        s_sha_final (&s, key);
    }
    else
        memcpy (key, secret, key_len);
    for (int i = 0; i < 64; i++)
        pad[i] = key[i] ^ 0x36;
    s_sha_init (&s);
    s_sha_update (&s, pad, 64);
    s_sha_update (&s, body, len);
    s_sha_final (&s, inner);
    for (int i = 0; i < 64; i++)
        pad[i] = key[i] ^ 0x5c;
    s_sha_init (&s);
    s_sha_update (&s, pad, 64);
    s_sha_update (&s, inner, 32);
    s_sha_final (&s, mac);
    strcpy (out, "sha256=");
    for (int i = 0; i < 32; i++)
        sprintf (out + 7 + 2 * i, "%02x", mac[i]);
}
