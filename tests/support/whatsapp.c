/*  =========================================================================
    whatsapp - drive cg_wastandin from tests (see whatsapp.h)
    =========================================================================
*/
#include "whatsapp.h"
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

//  ---- Process --------------------------------------------------------------------

static int
s_launch (wa_standin_t *w, int port)
{
    char bin[1024];
    if (standin_proc_path ("whatsapp", "cg_wastandin", bin, sizeof (bin)) != 0)
        return -1;
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
    int got = standin_proc_start (&w->proc, bin, args);
    if (got < 0)
        return -1;
    w->port = got;
    snprintf (w->base, sizeof (w->base), "http://127.0.0.1:%d", w->port);
    snprintf (w->graph, sizeof (w->graph), "%s/%s", w->base, WA_VERSION);
    snprintf (w->messages, sizeof (w->messages), "%s/%s/messages", w->graph,
              WA_PHONE_NUMBER_ID);
    return 0;
}

static int
s_relaunch (void *w)
{
    return s_launch ((wa_standin_t *) w, ((wa_standin_t *) w)->port);
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
    return standin_proc_restart (&w->proc, s_relaunch, w);
}

void
wa_stop (wa_standin_t *w, int sig)
{
    standin_proc_stop (&w->proc, sig);
}

//  ---- Control API ----------------------------------------------------------------

cJSON *
wa_control (wa_standin_t *w, const char *path, const char *body)
{
    return standin_control (w->base, body ? "POST" : "GET", path, body);
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

cJSON *
wa_sent (wa_standin_t *w, const char *wa_id)
{
    char path[256];
    standin_query_path (path, sizeof (path), "sent", "to", wa_id);
    return standin_control_list (w->base, path, "messages");
}

cJSON *
wa_reads (wa_standin_t *w)
{
    return standin_control_list (w->base, "reads", "reads");
}

cJSON *
wa_pushes (wa_standin_t *w)
{
    return standin_control_list (w->base, "pushes", "pushes");
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

int
wa_wait_sent (wa_standin_t *w, const char *wa_id, int n, int timeout_ms)
{
    char path[256];
    standin_query_path (path, sizeof (path), "sent", "to", wa_id);
    return standin_wait_items (w->base, path, "messages", n, timeout_ms);
}

int
wa_wait_reads (wa_standin_t *w, int n, int timeout_ms)
{
    return standin_wait_items (w->base, "reads", "reads", n, timeout_ms);
}

//  ---- HMAC-SHA256 (libcrypto) ---------------------------------------------------

void
wa_signature (const char *secret, const void *body, size_t len, char *out)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    strcpy (out, "sha256=");
    if (!HMAC (EVP_sha256 (), secret, (int) strlen (secret), (const unsigned char *) body,
               len, mac, &mac_len))
        return;
    for (unsigned int i = 0; i < mac_len && i < 32; i++)
        sprintf (out + 7 + 2 * i, "%02x", mac[i]);
}
