/*  =========================================================================
    browser_ops - a navigate or a screenshot, as a sequence of CDP calls on
    a profile's page, from its request to its reply
    =========================================================================
*/
#include "browser_internal.h"
#include "envelope.h"
#include "msg_names.h"

#include "actor.h"
#include "log.h"

#include <string.h>

//  ---- Small helpers ----------------------------------------------------------

const char *
browser_ops_jstr (const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

static bool
s_jnum (const cJSON *obj, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    if (!cJSON_IsNumber (v))
        return false;
    *out = v->valuedouble;
    return true;
}

//  A copy of s cut to at most max bytes on a UTF-8 character boundary.
//  Caller owns the return value (NULL if s is NULL or memory is short).
static char *
s_dup_cut (const char *s, size_t max)
{
    if (!s)
        return NULL;
    size_t n = strnlen (s, max + 1);
    if (n > max) {
        n = max;
        while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
            n--;
    }
    char *copy = (char *) malloc (n + 1);
    if (copy) {
        memcpy (copy, s, n);
        copy[n] = 0;
    }
    return copy;
}

//  The host of url, for logs (the path and query may carry secrets).
static void
s_url_host (const char *url, char *buf, size_t cap)
{
    const char *h = strstr (url, "://");
    h = h ? h + 3 : url;
    size_t n = strcspn (h, "/?#@");
    if (h[n] == '@') {  //  user:password@host: skip the credentials
        h += n + 1;
        n = strcspn (h, "/?#");
    }
    snprintf (buf, cap, "%.*s", (int) (n < 200 ? n : 200), h);
}

static int
s_b64_value (unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

//  Width and height from the IHDR of a base64 PNG, decoding only its first
//  24 bytes.  Returns 0, or -1 if it is not a PNG.
static int
s_png_size (const char *b64, size_t len, int64_t *width, int64_t *height)
{
    unsigned char raw[24];
    if (len < 32)
        return -1;
    for (int i = 0; i < 8; i++) {
        int v[4];
        for (int k = 0; k < 4; k++)
            if ((v[k] = s_b64_value ((unsigned char) b64[i * 4 + k])) < 0)
                return -1;
        raw[i * 3] = (unsigned char) (v[0] << 2 | v[1] >> 4);
        raw[i * 3 + 1] = (unsigned char) ((v[1] & 15) << 4 | v[2] >> 2);
        raw[i * 3 + 2] = (unsigned char) ((v[2] & 3) << 6 | v[3]);
    }
    static const unsigned char sig[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
    if (memcmp (raw, sig, 8) || memcmp (raw + 12, "IHDR", 4))
        return -1;
    *width = (int64_t) raw[16] << 24 | raw[17] << 16 | raw[18] << 8 | raw[19];
    *height = (int64_t) raw[20] << 24 | raw[21] << 16 | raw[22] << 8 | raw[23];
    return 0;
}

//  ---- Ops ------------------------------------------------------------------------

static void
s_op_free (op_t **op_p)
{
    op_t *op = *op_p;
    if (!op)
        return;
    free (op->url);
    free (op->selector);
    free (op);
    *op_p = NULL;
}

//  Replies with an ERROR and frees the op.
void
browser_ops_fail (self_t *self, op_t **op_p, int status, const char *code,
                  const char *message, const char *param)
{
    op_t *op = *op_p;
    bus_worker_error (self->worker, &op->origin, status, code, message, param);
    s_op_free (op_p);
}

//  The op in flight is over (replied): forget it and start the next.
void
browser_ops_end (profile_t *p)
{
    s_op_free (&p->op);
    browser_chromium_pump (p);
}

void
browser_ops_end_error (profile_t *p, int status, const char *code, const char *message,
                       const char *param)
{
    bus_worker_error (p->self->worker, &p->op->origin, status, code, message, param);
    browser_ops_end (p);
}

//  Sends a command on the page session for the op in flight, which then
//  waits for its reply.  On a dead connection the profile goes down (and
//  the op gets its 503 there).  Returns 0 or -1.
static int
s_op_send (profile_t *p, op_step_t step, const char *method, cJSON *params)
{
    int id = p->cdp ? cdp_send (p->cdp, method, params, p->session_id) : -1;
    cJSON_Delete (params);
    if (id < 0) {
        browser_chromium_profile_down (p, "the DevTools connection failed", false);
        return -1;
    }
    p->op->step = step;
    p->op->wait_id = id;
    return 0;
}

static void
s_nav_eval (profile_t *p)
{
    cJSON *params = cJSON_CreateObject ();
    cJSON_AddStringToObject (params, "expression",
                             "({url: location.href, title: document.title})");
    cJSON_AddBoolToObject (params, "returnByValue", true);
    s_op_send (p, ST_NAV_EVAL, "Runtime.evaluate", params);
}

static void
s_shot_capture (profile_t *p, const double clip[4])
{
    cJSON *params = cJSON_CreateObject ();
    cJSON_AddStringToObject (params, "format", "png");
    if (clip) {
        cJSON_AddBoolToObject (params, "captureBeyondViewport", true);
        cJSON *c = cJSON_AddObjectToObject (params, "clip");
        cJSON_AddNumberToObject (c, "x", clip[0]);
        cJSON_AddNumberToObject (c, "y", clip[1]);
        cJSON_AddNumberToObject (c, "width", clip[2]);
        cJSON_AddNumberToObject (c, "height", clip[3]);
        cJSON_AddNumberToObject (c, "scale", 1);
    }
    s_op_send (p, ST_SHOT_CAPTURE, "Page.captureScreenshot", params);
}

void
browser_ops_start (profile_t *p)
{
    op_t *op = p->op;
    if (op->kind == OP_NAVIGATE) {
        cJSON *params = cJSON_CreateObject ();
        cJSON_AddStringToObject (params, "url", op->url);
        s_op_send (p, ST_NAV_SENT, "Page.navigate", params);
    }
    else if (op->selector) {
        //  The selector goes in as a JSON string literal: no injection.
        cJSON *sel = cJSON_CreateString (op->selector);
        char *lit = sel ? cJSON_PrintUnformatted (sel) : NULL;
        cJSON_Delete (sel);
        if (!lit) {
            browser_ops_end_error (p, ENVELOPE_INTERNAL, "internal_error",
                                   "Out of memory", NULL);
            return;
        }
        size_t cap = strlen (lit) + 256;
        char *expr = (char *) malloc (cap);
        if (expr)
            snprintf (expr, cap,
                      "(() => { const e = document.querySelector(%s); "
                      "if (!e) return null; const r = e.getBoundingClientRect(); "
                      "return {x: r.left + scrollX, y: r.top + scrollY, "
                      "w: r.width, h: r.height}; })()",
                      lit);
        cJSON_free (lit);
        if (!expr) {
            browser_ops_end_error (p, ENVELOPE_INTERNAL, "internal_error",
                                   "Out of memory", NULL);
            return;
        }
        cJSON *params = cJSON_CreateObject ();
        cJSON_AddStringToObject (params, "expression", expr);
        cJSON_AddBoolToObject (params, "returnByValue", true);
        free (expr);
        s_op_send (p, ST_SHOT_ELEMENT, "Runtime.evaluate", params);
    }
    else if (op->full_page)
        s_op_send (p, ST_SHOT_METRICS, "Page.getLayoutMetrics", NULL);
    else
        s_shot_capture (p, NULL);
}

//  The reply to the op's awaited command.
//  Longer than 100 lines on purpose: one case per step of the op's state
//  machine (navigate: sent, eval; screenshot: element, metrics, capture),
//  each a few lines that read the reply and send the next command; split
//  up, a reader would lose the sequence that the switch shows in order.
void
browser_ops_reply (profile_t *p, const cJSON *msg)
{
    self_t *self = p->self;
    op_t *op = p->op;
    op->wait_id = 0;
    const cJSON *error = cJSON_GetObjectItemCaseSensitive (msg, "error");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive (msg, "result");
    const char *emsg = browser_ops_jstr (error, "message");
    char text[640];
    if (error || !cJSON_IsObject (result)) {
        if (op->step == ST_NAV_SENT && emsg && strstr (emsg, "invalid URL")) {
            browser_ops_end_error (p, ENVELOPE_BAD_REQUEST, "invalid_request",
                                   "Chromium refused the url", "url");
            return;
        }
        snprintf (text, sizeof (text), "Chromium refused the request: %.500s",
                  emsg ? emsg : "no result");
        browser_ops_end_error (p, ENVELOPE_UNAVAILABLE, "service_unavailable", text,
                               NULL);
        return;
    }
    switch (op->step) {
    case ST_NAV_SENT: {
        const char *etext = browser_ops_jstr (result, "errorText");
        //  A 4xx/5xx with an empty body shows Chromium's own error page: a
        //  load with a status, not a failure to reach the server.
        if (etext && *etext && !streq (etext, "net::ERR_HTTP_RESPONSE_CODE_FAILURE")) {
            snprintf (text, sizeof (text), "Navigation failed: %.300s", etext);
            browser_ops_end_error (p, ENVELOPE_UNAVAILABLE, "service_unavailable", text,
                                   NULL);
            return;
        }
        const char *loader = browser_ops_jstr (result, "loaderId");
        if (!loader || !*loader) {
            s_nav_eval (p);  //  Same document (a #fragment): no new load
            return;
        }
        snprintf (op->loader_id, sizeof (op->loader_id), "%s", loader);
        if (streq (op->loaded, op->loader_id))
            s_nav_eval (p);
        else
            op->step = ST_NAV_LOAD;
        return;
    }
    case ST_NAV_EVAL: {
        const cJSON *value = cJSON_GetObjectItemCaseSensitive (
            cJSON_GetObjectItemCaseSensitive (result, "result"), "value");
        free (p->url);
        free (p->title);
        const char *url = browser_ops_jstr (value, "url");
        p->url = s_dup_cut (url ? url : op->url, BROWSER_MAX_URL);
        const char *title = browser_ops_jstr (value, "title");
        p->title = s_dup_cut (title ? title : "", BROWSER_MAX_TITLE);
        int status =
            op->loader_id[0] && streq (op->status_loader, op->loader_id) ? op->status : 0;
        mp_writer_t w;
        actor_reply_begin (&w);
        mp_kv_str (&w, MK_url, p->url ? p->url : "");
        mp_kv_str (&w, MK_title, p->title ? p->title : "");
        mp_kv_int (&w, MK_status, status);
        actor_reply_map (self->worker, &op->origin, MT_BROWSER_NAVIGATED, &w);
        char host[256];
        s_url_host (p->url ? p->url : "", host, sizeof (host));
        log_debug ("browser", "%s: loaded %s (status %d)", p->name, host, status);
        browser_ops_end (p);
        return;
    }
    case ST_SHOT_ELEMENT: {
        if (cJSON_GetObjectItemCaseSensitive (result, "exceptionDetails")) {
            browser_ops_end_error (p, ENVELOPE_BAD_REQUEST, "invalid_request",
                                   "Invalid CSS selector", "selector");
            return;
        }
        const cJSON *value = cJSON_GetObjectItemCaseSensitive (
            cJSON_GetObjectItemCaseSensitive (result, "result"), "value");
        double box[4];
        if (!cJSON_IsObject (value) || !s_jnum (value, "x", &box[0])
            || !s_jnum (value, "y", &box[1]) || !s_jnum (value, "w", &box[2])
            || !s_jnum (value, "h", &box[3])) {
            browser_ops_end_error (p, ENVELOPE_NOT_FOUND, "not_found",
                                   "No element matches the selector", "selector");
            return;
        }
        if (box[2] < 1 || box[3] < 1 || box[2] > 100000 || box[3] > 100000) {
            browser_ops_end_error (
                p, ENVELOPE_NOT_FOUND, "not_found",
                "The element matching the selector has no visible size", "selector");
            return;
        }
        s_shot_capture (p, box);
        return;
    }
    case ST_SHOT_METRICS: {
        const cJSON *size = cJSON_GetObjectItemCaseSensitive (result, "cssContentSize");
        if (!size)
            size = cJSON_GetObjectItemCaseSensitive (result, "contentSize");
        double box[4] = {0, 0, 0, 0};
        if (!s_jnum (size, "width", &box[2]) || !s_jnum (size, "height", &box[3])
            || box[2] < 1 || box[3] < 1) {
            browser_ops_end_error (p, ENVELOPE_UNAVAILABLE, "service_unavailable",
                                   "Chromium did not report the page size", NULL);
            return;
        }
        box[2] = box[2] > 100000 ? 100000 : (double) (int64_t) (box[2] + 0.999);
        box[3] = box[3] > BROWSER_MAX_FULL_HEIGHT ? BROWSER_MAX_FULL_HEIGHT
                                                  : (double) (int64_t) (box[3] + 0.999);
        s_shot_capture (p, box);
        return;
    }
    case ST_SHOT_CAPTURE: {
        const char *data = browser_ops_jstr (result, "data");
        size_t len = data ? strlen (data) : 0;
        int64_t width = 0, height = 0;
        if (!data || s_png_size (data, len, &width, &height)) {
            browser_ops_end_error (p, ENVELOPE_UNAVAILABLE, "service_unavailable",
                                   "Chromium did not return a PNG", NULL);
            return;
        }
        if (len > BROWSER_MAX_PNG_B64) {
            snprintf (text, sizeof (text),
                      "The screenshot (%lld x %lld) is larger "
                      "than the %u MiB a reply may carry; capture an element or "
                      "the viewport",
                      (long long) width, (long long) height, BROWSER_MAX_PNG_B64 >> 20);
            browser_ops_end_error (p, ENVELOPE_INTERNAL, "internal_error", text, NULL);
            return;
        }
        mp_writer_t w;
        actor_reply_begin (&w);
        mp_kv_str (&w, MK_format, "png");
        mp_key (&w, MK_data);
        mp_put_strn (&w, data, len);
        mp_kv_int (&w, MK_width, width);
        mp_kv_int (&w, MK_height, height);
        actor_reply_map (self->worker, &op->origin, MT_BROWSER_SCREENSHOT_OK, &w);
        log_debug ("browser", "%s: screenshot %lld x %lld, %zu base64 bytes", p->name,
                   (long long) width, (long long) height, len);
        browser_ops_end (p);
        return;
    }
    default: return;
    }
}

//  An event on the page session while an op is in flight.
void
browser_ops_event (profile_t *p, const char *method, const cJSON *params)
{
    op_t *op = p->op;
    if (op->kind != OP_NAVIGATE)
        return;
    const char *frame = browser_ops_jstr (params, "frameId");
    if (!frame || strcmp (frame, p->target_id))
        return;  //  Not the main frame
    const char *loader = browser_ops_jstr (params, "loaderId");
    if (streq (method, "Page.lifecycleEvent")) {
        const char *name = browser_ops_jstr (params, "name");
        if (!name || !streq (name, "load") || !loader)
            return;
        snprintf (op->loaded, sizeof (op->loaded), "%s", loader);
        if (op->step == ST_NAV_LOAD && streq (op->loaded, op->loader_id))
            s_nav_eval (p);
    }
    else if (streq (method, "Network.responseReceived")) {
        const char *type = browser_ops_jstr (params, "type");
        double status;
        if (type && streq (type, "Document") && loader
            && s_jnum (cJSON_GetObjectItemCaseSensitive (params, "response"), "status",
                       &status)
            && status >= 0 && status < 1000) {
            op->status = (int) status;
            snprintf (op->status_loader, sizeof (op->status_loader), "%s", loader);
        }
    }
}
