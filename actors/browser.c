/*  =========================================================================
    browser - the browser actor (see browser.h for the contract)

    Life of a profile: DOWN -> (first request) LAUNCHING: Chromium spawned
    in a session of its own, its stderr piped to us; we read stderr until
    "DevTools listening on ws://127.0.0.1:PORT/devtools/browser/ID" ->
    ATTACHING: WebSocket to that browser endpoint, Target.createTarget,
    Target.attachToTarget (flatten), then Page/Network/lifecycle events and
    the viewport on the page session -> READY.  Any exit of Chromium (seen
    by waitpid (WNOHANG) on the tick or by the WebSocket closing) takes the
    profile back to DOWN: the request in flight gets 503, queued requests
    start it again.

    Every CDP call is asynchronous: an op waits for the reply to one
    command id (and for events), with a deadline the tick enforces.  Nothing
    here blocks for long; the two short blocking calls are the loopback
    WebSocket handshake with a Chromium that just said it listens, and the
    final reaping on $TERM.

    Memory: profile_t and op_t are owned by this file alone.  A profile
    lives from its first request to the actor's end (at most
    BROWSER_MAX_PROFILES); an op from its request to its reply (s_op_end
    frees it).  cJSON messages popped from cdp_recv are freed by the
    handler that popped them; strings taken from them are copied.
    =========================================================================
*/
#include "browser.h"

#include "actor.h"
#include "settings.h"
#include "cdp.h"
#include "log.h"

#include <civetweb.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define BROWSER_TICK_MS 50               //  Deadlines and reaping
#define BROWSER_LAUNCH_MS 30000          //  Spawn to a ready page, at most
#define BROWSER_STOP_MS 3000             //  SIGTERM grace before SIGKILL
#define BROWSER_MAX_QUEUE 32             //  Requests waiting per profile
#define BROWSER_MAX_PROFILES 16          //  Profiles known at once
#define BROWSER_PROFILE_MAX 64           //  Longest profile name
#define BROWSER_MAX_URL 8192             //  Longest url accepted or reported
#define BROWSER_MAX_TITLE 4096           //  Longest title reported
#define BROWSER_MAX_SELECTOR 1024        //  Longest CSS selector
#define BROWSER_MAX_FULL_HEIGHT 16384    //  Tallest full-page capture (px)
//  Largest DevTools message taken from Chromium (a screenshot's base64
//  is most of it), and the largest base64 PNG we reply with: the bus
//  carries bodies up to MP_MAX_BODY (16 MiB).
#define BROWSER_MAX_MESSAGE (48u * 1024u * 1024u)
#define BROWSER_MAX_PNG_B64 (15u * 1024u * 1024u)

typedef struct self_t self_t;

typedef enum { OP_NAVIGATE = 1, OP_SCREENSHOT } op_kind_t;

typedef enum {
    ST_QUEUED = 0,
    ST_NAV_SENT,                     //  Page.navigate sent
    ST_NAV_LOAD,                     //  Committed; waiting for "load"
    ST_NAV_EVAL,                     //  Runtime.evaluate of url and title
    ST_SHOT_METRICS,                 //  Page.getLayoutMetrics (full page)
    ST_SHOT_ELEMENT,                 //  Runtime.evaluate of the element box
    ST_SHOT_CAPTURE,                 //  Page.captureScreenshot
} op_step_t;

//  One navigate or screenshot, from its request to its reply.
typedef struct {
    op_kind_t kind;
    bus_request_t origin;            //  Asking front and envelope only (raw
                                     //  and body unused, never finied)
    char *url;                       //  Navigate: url asked (owned)
    char *selector;                  //  Screenshot: CSS selector or NULL (owned)
    bool full_page;                  //  Screenshot: whole page
    int timeout_ms;                  //  Budget from arrival
    int64_t deadline;                //  zclock_mono () past which: 503
    op_step_t step;
    int wait_id;                     //  CDP command whose reply we await
    char loader_id[128];             //  Navigate: the new document's loader
    char loaded[128];                //  Loader of the last main-frame "load"
    int status;                      //  HTTP status of the main document
    char status_loader[128];         //  Loader that status belongs to
} op_t;

typedef enum { PR_DOWN = 0, PR_LAUNCHING, PR_ATTACHING, PR_READY } pr_state_t;

typedef enum { L_CREATE = 1, L_ATTACH, L_SETUP } launch_step_t;

//  One named profile and its Chromium.
typedef struct {
    self_t *self;                    //  Back pointer (not owned)
    char name[BROWSER_PROFILE_MAX + 1];
    pr_state_t state;
    pid_t pid;                       //  Chromium (leads its own process
                                     //  group), 0 when none or reaped
    int64_t started;                 //  zclock_mono () at spawn
    int err_fd;                      //  Read end of its stderr, -1 if none
    char line[1024];                 //  stderr line being read
    size_t line_len;
    char last_line[256];             //  Last stderr line (launch failures)
    cdp_t *cdp;                      //  Browser-level DevTools connection
    launch_step_t launch_step;
    int wait_id;                     //  Launch: CDP command awaited
    int64_t launch_deadline;         //  zclock_mono ()
    char target_id[128];             //  Our page (also its main frame id)
    char session_id[128];            //  Its flattened session
    op_t *op;                        //  In flight, or NULL (owned)
    zlistx_t *queue;                 //  op_t * waiting, in order (owned)
    char *url;                       //  Page now shown (owned), or NULL
    char *title;                     //  Its title (owned), or NULL
} profile_t;

struct self_t {
    const browser_settings_t *settings;  //  Read only, not owned
    bus_worker_t *worker;            //  Our service socket (not owned)
    zloop_t *loop;                   //  The actor's loop (not owned)
    zhashx_t *profiles;              //  name -> profile_t (index; freed here)
    zlistx_t *zombies;               //  Killed pids not yet reaped
    bool mg_inited;                  //  We called mg_init_library
};

static void s_pump (profile_t *p);
static void s_profile_down (profile_t *p, const char *reason, bool fail_queue);

//  ---- Small helpers ----------------------------------------------------------

static const char *
s_jstr (const cJSON *obj, const char *key)
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

//  [A-Za-z0-9._-]{1,64}, and not "." or ".." (it names a directory).
static bool
s_valid_profile (const char *name)
{
    size_t n = strlen (name);
    if (n < 1 || n > BROWSER_PROFILE_MAX || streq (name, ".") || streq (name, ".."))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum ((unsigned char) name[i]) && !strchr ("._-", name[i]))
            return false;
    return true;
}

//  Only http:// and https:// urls, without control characters or spaces.
static bool
s_valid_url (const char *url)
{
    if (strncasecmp (url, "http://", 7) && strncasecmp (url, "https://", 8))
        return false;
    for (const unsigned char *c = (const unsigned char *) url; *c; c++)
        if (*c <= 0x20 || *c == 0x7f)
            return false;
    return true;
}

//  The host of url, for logs (the path and query may carry secrets).
static void
s_url_host (const char *url, char *buf, size_t cap)
{
    const char *h = strstr (url, "://");
    h = h ? h + 3 : url;
    size_t n = strcspn (h, "/?#@");
    if (h[n] == '@') {   //  user:password@host: skip the credentials
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
static void
s_op_fail (self_t *self, op_t **op_p, int status, const char *code,
           const char *message, const char *param)
{
    op_t *op = *op_p;
    bus_worker_error (self->worker, &op->origin, status, code, message, param);
    s_op_free (op_p);
}

//  The op in flight is over (replied): forget it and start the next.
static void
s_op_end (profile_t *p)
{
    s_op_free (&p->op);
    s_pump (p);
}

static void
s_op_end_error (profile_t *p, int status, const char *code,
                const char *message, const char *param)
{
    bus_worker_error (p->self->worker, &p->op->origin, status, code, message,
                      param);
    s_op_end (p);
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
        s_profile_down (p, "the DevTools connection failed", false);
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

static void
s_op_start (profile_t *p)
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
            s_op_end_error (p, 500, "internal_error", "Out of memory", NULL);
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
            s_op_end_error (p, 500, "internal_error", "Out of memory", NULL);
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
static void
s_op_reply (profile_t *p, const cJSON *msg)
{
    self_t *self = p->self;
    op_t *op = p->op;
    op->wait_id = 0;
    const cJSON *error = cJSON_GetObjectItemCaseSensitive (msg, "error");
    const cJSON *result = cJSON_GetObjectItemCaseSensitive (msg, "result");
    const char *emsg = s_jstr (error, "message");
    char text[640];
    if (error || !cJSON_IsObject (result)) {
        if (op->step == ST_NAV_SENT && emsg && strstr (emsg, "invalid URL")) {
            s_op_end_error (p, 400, "invalid_request", "Chromium refused the url",
                            "url");
            return;
        }
        snprintf (text, sizeof (text), "Chromium refused the request: %.500s",
                  emsg ? emsg : "no result");
        s_op_end_error (p, 503, "service_unavailable", text, NULL);
        return;
    }
    switch (op->step) {
    case ST_NAV_SENT: {
        const char *etext = s_jstr (result, "errorText");
        //  A 4xx/5xx with an empty body shows Chromium's own error page: a
        //  load with a status, not a failure to reach the server.
        if (etext && *etext && !streq (etext, "net::ERR_HTTP_RESPONSE_CODE_FAILURE")) {
            snprintf (text, sizeof (text), "Navigation failed: %.300s", etext);
            s_op_end_error (p, 503, "service_unavailable", text, NULL);
            return;
        }
        const char *loader = s_jstr (result, "loaderId");
        if (!loader || !*loader) {
            s_nav_eval (p);   //  Same document (a #fragment): no new load
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
        const char *url = s_jstr (value, "url");
        p->url = s_dup_cut (url ? url : op->url, BROWSER_MAX_URL);
        const char *title = s_jstr (value, "title");
        p->title = s_dup_cut (title ? title : "", BROWSER_MAX_TITLE);
        int status = op->loader_id[0] && streq (op->status_loader, op->loader_id)
                         ? op->status
                         : 0;
        mp_writer_t w;
        mp_writer_init (&w);
        msgpack_pack_map (&w.pk, 3);
        mp_kv_str (&w, "url", p->url ? p->url : "");
        mp_kv_str (&w, "title", p->title ? p->title : "");
        mp_kv_int (&w, "status", status);
        bus_worker_reply (self->worker, &op->origin, "BROWSER_NAVIGATED", 200,
                          w.buf.data, w.buf.size);
        mp_writer_fini (&w);
        char host[256];
        s_url_host (p->url ? p->url : "", host, sizeof (host));
        log_debug ("browser", "%s: loaded %s (status %d)", p->name, host, status);
        s_op_end (p);
        return;
    }
    case ST_SHOT_ELEMENT: {
        if (cJSON_GetObjectItemCaseSensitive (result, "exceptionDetails")) {
            s_op_end_error (p, 400, "invalid_request", "Invalid CSS selector",
                            "selector");
            return;
        }
        const cJSON *value = cJSON_GetObjectItemCaseSensitive (
            cJSON_GetObjectItemCaseSensitive (result, "result"), "value");
        double box[4];
        if (!cJSON_IsObject (value) || !s_jnum (value, "x", &box[0])
            || !s_jnum (value, "y", &box[1]) || !s_jnum (value, "w", &box[2])
            || !s_jnum (value, "h", &box[3])) {
            s_op_end_error (p, 404, "not_found", "No element matches the selector",
                            "selector");
            return;
        }
        if (box[2] < 1 || box[3] < 1 || box[2] > 100000 || box[3] > 100000) {
            s_op_end_error (p, 404, "not_found",
                            "The element matching the selector has no visible size",
                            "selector");
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
            s_op_end_error (p, 503, "service_unavailable",
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
        const char *data = s_jstr (result, "data");
        size_t len = data ? strlen (data) : 0;
        int64_t width = 0, height = 0;
        if (!data || s_png_size (data, len, &width, &height)) {
            s_op_end_error (p, 503, "service_unavailable",
                            "Chromium did not return a PNG", NULL);
            return;
        }
        if (len > BROWSER_MAX_PNG_B64) {
            snprintf (text, sizeof (text), "The screenshot (%lld x %lld) is larger "
                      "than the %u MiB a reply may carry; capture an element or "
                      "the viewport", (long long) width, (long long) height,
                      BROWSER_MAX_PNG_B64 >> 20);
            s_op_end_error (p, 500, "internal_error", text, NULL);
            return;
        }
        mp_writer_t w;
        mp_writer_init (&w);
        msgpack_pack_map (&w.pk, 4);
        mp_kv_str (&w, "format", "png");
        mp_key (&w, "data");
        mp_put_strn (&w, data, len);
        mp_kv_int (&w, "width", width);
        mp_kv_int (&w, "height", height);
        bus_worker_reply (self->worker, &op->origin, "BROWSER_SCREENSHOT_OK", 200,
                          w.buf.data, w.buf.size);
        mp_writer_fini (&w);
        log_debug ("browser", "%s: screenshot %lld x %lld, %zu base64 bytes",
                   p->name, (long long) width, (long long) height, len);
        s_op_end (p);
        return;
    }
    default:
        return;
    }
}

//  An event on the page session while an op is in flight.
static void
s_op_event (profile_t *p, const char *method, const cJSON *params)
{
    op_t *op = p->op;
    if (op->kind != OP_NAVIGATE)
        return;
    const char *frame = s_jstr (params, "frameId");
    if (!frame || strcmp (frame, p->target_id))
        return;   //  Not the main frame
    const char *loader = s_jstr (params, "loaderId");
    if (streq (method, "Page.lifecycleEvent")) {
        const char *name = s_jstr (params, "name");
        if (!name || !streq (name, "load") || !loader)
            return;
        snprintf (op->loaded, sizeof (op->loaded), "%s", loader);
        if (op->step == ST_NAV_LOAD && streq (op->loaded, op->loader_id))
            s_nav_eval (p);
    }
    else if (streq (method, "Network.responseReceived")) {
        const char *type = s_jstr (params, "type");
        double status;
        if (type && streq (type, "Document") && loader
            && s_jnum (cJSON_GetObjectItemCaseSensitive (params, "response"),
                       "status", &status)
            && status >= 0 && status < 1000) {
            op->status = (int) status;
            snprintf (op->status_loader, sizeof (op->status_loader), "%s", loader);
        }
    }
}

//  ---- Chromium processes ----------------------------------------------------------

//  Signals Chromium's whole process group (its helpers too) while its
//  leader is not reaped, so the group id cannot have been reused.
static void
s_signal (profile_t *p, int sig)
{
    if (p->pid > 0 && kill (-p->pid, sig) && errno == ESRCH)
        kill (p->pid, sig);
}

//  Reaps p's Chromium if it exited.  Returns true if it did (pid is then 0).
static bool
s_reap (profile_t *p)
{
    if (p->pid <= 0)
        return false;
    int st = 0;
    pid_t r = waitpid (p->pid, &st, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return false;
    if (r == p->pid) {
        if (WIFSIGNALED (st))
            log_warn ("browser", "%s: Chromium (pid %d) killed by signal %d",
                      p->name, (int) p->pid, WTERMSIG (st));
        else
            log_info ("browser", "%s: Chromium (pid %d) exited with status %d",
                      p->name, (int) p->pid, WEXITSTATUS (st));
    }
    p->pid = 0;
    return true;
}

static void
s_poll_end (profile_t *p, int fd)
{
    zmq_pollitem_t item = {NULL, fd, ZMQ_POLLIN, 0};
    zloop_poller_end (p->self->loop, &item);
}

//  Takes the profile down: the op in flight gets 503, Chromium is killed
//  (and reaped, now or on a later tick), the connection closed.  Queued
//  requests either fail too (fail_queue: Chromium could not start) or
//  start a fresh Chromium.
static void
s_profile_down (profile_t *p, const char *reason, bool fail_queue)
{
    self_t *self = p->self;
    char text[512];
    snprintf (text, sizeof (text), "Chromium is not available: %s", reason);
    if (p->state != PR_DOWN)
        log_warn ("browser", "%s: down: %s", p->name, reason);
    if (p->op)
        s_op_fail (self, &p->op, 503, "service_unavailable", text, NULL);
    if (p->pid > 0 && !s_reap (p)) {
        s_signal (p, SIGKILL);
        if (!s_reap (p))
            zlistx_add_end (self->zombies, (void *) (intptr_t) p->pid);
        p->pid = 0;
    }
    if (p->cdp) {
        s_poll_end (p, cdp_fd (p->cdp));
        cdp_destroy (&p->cdp);   //  Quick: Chromium is gone
    }
    if (p->err_fd >= 0) {
        s_poll_end (p, p->err_fd);
        close (p->err_fd);
        p->err_fd = -1;
    }
    p->state = PR_DOWN;
    p->line_len = 0;
    p->target_id[0] = p->session_id[0] = 0;
    p->wait_id = 0;
    free (p->url);
    free (p->title);
    p->url = p->title = NULL;
    if (fail_queue) {
        op_t *op;
        while ((op = (op_t *) zlistx_detach (p->queue, NULL)))
            s_op_fail (self, &op, 503, "service_unavailable", text, NULL);
    }
    else
        s_pump (p);
}

static int s_on_cdp (zloop_t *loop, zmq_pollitem_t *item, void *arg);

//  The next launch step's command (browser-level for the first two).
static void
s_launch_send (profile_t *p, launch_step_t step)
{
    const browser_settings_t *cfg = p->self->settings;
    int id = -1;
    cJSON *params = cJSON_CreateObject ();
    if (step == L_CREATE) {
        cJSON_AddStringToObject (params, "url", "about:blank");
        id = cdp_send (p->cdp, "Target.createTarget", params, NULL);
    }
    else if (step == L_ATTACH) {
        cJSON_AddStringToObject (params, "targetId", p->target_id);
        cJSON_AddBoolToObject (params, "flatten", true);
        id = cdp_send (p->cdp, "Target.attachToTarget", params, NULL);
    }
    else {
        //  Commands on one session run in order: waiting for the reply to
        //  the last one is waiting for them all.
        const char *sid = p->session_id;
        cJSON *none = cJSON_CreateObject ();
        bool ok = cdp_send (p->cdp, "Page.enable", none, sid) > 0
                  && cdp_send (p->cdp, "Network.enable", none, sid) > 0;
        cJSON_Delete (none);
        cJSON_AddBoolToObject (params, "enabled", true);
        ok = ok && cdp_send (p->cdp, "Page.setLifecycleEventsEnabled", params, sid) > 0;
        cJSON_Delete (params);
        params = cJSON_CreateObject ();
        cJSON_AddNumberToObject (params, "width", cfg->viewport_width);
        cJSON_AddNumberToObject (params, "height", cfg->viewport_height);
        cJSON_AddNumberToObject (params, "deviceScaleFactor", 1);
        cJSON_AddBoolToObject (params, "mobile", false);
        id = ok ? cdp_send (p->cdp, "Emulation.setDeviceMetricsOverride", params, sid)
                : -1;
    }
    cJSON_Delete (params);
    if (id < 0) {
        s_profile_down (p, "the DevTools connection failed while starting", true);
        return;
    }
    p->launch_step = step;
    p->wait_id = id;
}

//  The reply to a launch step's command.
static void
s_launch_reply (profile_t *p, const cJSON *msg)
{
    p->wait_id = 0;
    const cJSON *result = cJSON_GetObjectItemCaseSensitive (msg, "result");
    const char *emsg = s_jstr (cJSON_GetObjectItemCaseSensitive (msg, "error"),
                               "message");
    if (emsg || !cJSON_IsObject (result)) {
        char text[400];
        snprintf (text, sizeof (text), "DevTools refused a start-up command: %.300s",
                  emsg ? emsg : "no result");
        s_profile_down (p, text, true);
        return;
    }
    if (p->launch_step == L_CREATE) {
        const char *target = s_jstr (result, "targetId");
        if (!target || strlen (target) >= sizeof (p->target_id)) {
            s_profile_down (p, "Target.createTarget gave no target", true);
            return;
        }
        snprintf (p->target_id, sizeof (p->target_id), "%s", target);
        s_launch_send (p, L_ATTACH);
    }
    else if (p->launch_step == L_ATTACH) {
        const char *session = s_jstr (result, "sessionId");
        if (!session || strlen (session) >= sizeof (p->session_id)) {
            s_profile_down (p, "Target.attachToTarget gave no session", true);
            return;
        }
        snprintf (p->session_id, sizeof (p->session_id), "%s", session);
        s_launch_send (p, L_SETUP);
    }
    else {
        p->state = PR_READY;
        log_info ("browser", "%s: Chromium ready (pid %d) in %lld ms", p->name,
                  (int) p->pid, (long long) (zclock_mono () - p->started));
        s_pump (p);
    }
}

//  Chromium said where DevTools listens: connect and set up the page.
static void
s_attach (profile_t *p, const char *line)
{
    const char *ws = strstr (line, "ws://");
    char host[64] = "", path[256] = "";
    int port = 0;
    if (!ws || sscanf (ws, "ws://%63[^:/]:%d%255s", host, &port, path) != 3
        || port <= 0 || port > 65535 || path[0] != '/') {
        s_profile_down (p, "could not read the DevTools address", true);
        return;
    }
    char err[320];
    p->cdp = cdp_connect (port, path, BROWSER_MAX_MESSAGE, err, sizeof (err));
    if (!p->cdp) {
        s_profile_down (p, err, true);
        return;
    }
    zmq_pollitem_t item = {NULL, cdp_fd (p->cdp), ZMQ_POLLIN, 0};
    zloop_poller (p->self->loop, &item, s_on_cdp, p);
    zloop_poller_set_tolerant (p->self->loop, &item);
    p->state = PR_ATTACHING;
    s_launch_send (p, L_CREATE);
}

//  Chromium's stderr: the DevTools line while launching, then drained (it
//  logs a lot; a full pipe would stall it).  EOF: it is exiting.
static int
s_on_stderr (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    profile_t *p = (profile_t *) arg;
    if (p->err_fd < 0 || item->fd != p->err_fd)
        return 0;
    char buf[4096];
    for (int rounds = 0; rounds < 16; rounds++) {
        ssize_t n = read (p->err_fd, buf, sizeof (buf));
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        if (n <= 0) {
            s_poll_end (p, p->err_fd);
            close (p->err_fd);
            p->err_fd = -1;
            if (p->state == PR_LAUNCHING) {
                char text[400];
                snprintf (text, sizeof (text), "Chromium exited while starting%s%.256s",
                          p->last_line[0] ? ": " : "", p->last_line);
                s_profile_down (p, text, true);
            }
            return 0;
        }
        for (ssize_t i = 0; i < n; i++) {
            char c = buf[i];
            if (c != '\n') {
                if (p->line_len < sizeof (p->line) - 1)
                    p->line[p->line_len++] = c;
                continue;
            }
            p->line[p->line_len] = 0;
            p->line_len = 0;
            if (p->line[0])
                snprintf (p->last_line, sizeof (p->last_line), "%.255s", p->line);
            if (p->state == PR_LAUNCHING
                && strstr (p->line, "DevTools listening on ws://")) {
                s_attach (p, p->line);
                if (p->err_fd < 0)
                    return 0;   //  Went down on the way
            }
        }
    }
    return 0;
}

//  Messages from the DevTools connection.
static int
s_on_cdp (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    profile_t *p = (profile_t *) arg;
    cdp_t *cdp = p->cdp;
    if (!cdp || item->fd != cdp_fd (cdp))
        return 0;
    for (int budget = 0; budget < 256 && p->cdp == cdp; budget++) {
        cJSON *msg = cdp_recv (cdp);
        if (!msg)
            break;
        const char *method = s_jstr (msg, "method");
        const char *sid = s_jstr (msg, "sessionId");
        int n;
        if (cdp_reply_id (msg, &n)) {
            if (p->state == PR_ATTACHING && n == p->wait_id)
                s_launch_reply (p, msg);
            else if (p->op && p->op->wait_id == n)
                s_op_reply (p, msg);
            //  Else: stale (an op that timed out) or fire-and-forget.
        }
        else if (method && p->state == PR_READY) {
            bool ours = sid && streq (sid, p->session_id);
            const cJSON *params = cJSON_GetObjectItemCaseSensitive (msg, "params");
            if (streq (method, "Target.detachedFromTarget")
                && streq (s_jstr (params, "sessionId") ? s_jstr (params, "sessionId")
                                                       : "",
                          p->session_id))
                s_profile_down (p, "the page was closed", false);
            else if (ours && streq (method, "Inspector.targetCrashed"))
                s_profile_down (p, "the page crashed", false);
            else if (ours && p->op)
                s_op_event (p, method, params);
        }
        cJSON_Delete (msg);
    }
    if (p->cdp == cdp && cdp_closed (cdp)) {
        s_reap (p);
        s_profile_down (p, "Chromium closed the DevTools connection", false);
    }
    return 0;
}

//  Environment for Chromium: what it needs from ours, none of our secrets,
//  and the entries of own (NULL-terminated; lent, must outlive the spawn).
//  Caller frees the array, not its strings.
static char **
s_child_env (char *const own[])
{
    static const char *const keep[] = {"PATH=", "LANG=", "LC_", "TZ=",
                                       "TMPDIR=", "FONTCONFIG_", NULL};
    extern char **environ;
    size_t n = 0;
    for (char **e = environ; e && *e; e++)
        n++;
    for (char *const *o = own; *o; o++)
        n++;
    char **env = (char **) calloc (n + 1, sizeof (char *));
    if (!env)
        return NULL;
    size_t k = 0;
    for (char **e = environ; e && *e; e++)
        for (int i = 0; keep[i]; i++)
            if (!strncmp (*e, keep[i], strlen (keep[i]))) {
                env[k++] = *e;   //  Lent from environ
                break;
            }
    for (char *const *o = own; *o; o++)
        env[k++] = *o;           //  Lent from the caller
    return env;
}

//  Spawns Chromium for p.  On failure the profile fails its queue.
static void
s_launch (profile_t *p)
{
    self_t *self = p->self;
    const browser_settings_t *cfg = self->settings;
    const char *bin = cfg->chromium ? cfg->chromium
                                            : "/usr/bin/chromium";
    char text[600];
    if (access (bin, X_OK)) {
        snprintf (text, sizeof (text), "Chromium is not installed: %.300s is "
                  "missing or not executable (install Debian's chromium package "
                  "or set browser.chromium)", bin);
        log_error ("browser", "%s: %s", p->name, text);
        op_t *op;
        while ((op = (op_t *) zlistx_detach (p->queue, NULL)))
            s_op_fail (self, &op, 503, "service_unavailable", text, NULL);
        return;
    }
    char dir[4200], data_dir[4300], size[64];
    snprintf (dir, sizeof (dir), "%s/browser", cfg->state_dir);
    mkdir (cfg->state_dir, 0700);
    mkdir (dir, 0700);
    snprintf (data_dir, sizeof (data_dir), "--user-data-dir=%s/%s", dir, p->name);
    mkdir (data_dir + strlen ("--user-data-dir="), 0700);
    snprintf (size, sizeof (size), "--window-size=%d,%d", cfg->viewport_width,
              cfg->viewport_height);
    char *const argv[] = {(char *) bin, "--headless=new", "--no-sandbox",
                          "--disable-gpu", "--disable-dev-shm-usage",
                          "--disable-background-networking", "--no-first-run",
                          "--no-default-browser-check", "--hide-scrollbars",
                          "--mute-audio", "--remote-debugging-port=0",
                          data_dir, size, "about:blank", NULL};
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC)) {
        s_profile_down (p, "could not make a pipe", true);
        return;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init (&fa);
    posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen (&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_adddup2 (&fa, fds[1], 2);
    posix_spawnattr_init (&attr);
    sigset_t none, dflt;
    sigemptyset (&none);
    sigemptyset (&dflt);
    sigaddset (&dflt, SIGPIPE);
    sigaddset (&dflt, SIGINT);
    sigaddset (&dflt, SIGTERM);
    sigaddset (&dflt, SIGHUP);
    sigaddset (&dflt, SIGCHLD);
    posix_spawnattr_setsigmask (&attr, &none);
    posix_spawnattr_setsigdefault (&attr, &dflt);
    //  A session (and process group) of its own: one signal reaches every
    //  helper process, and a terminal's ^C does not.
    posix_spawnattr_setflags (&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK
                                         | POSIX_SPAWN_SETSIGDEF);
    //  Chromium writes crash reports and dconf state under HOME and the XDG
    //  directories whatever --user-data-dir says: they go under the state
    //  directory too, never into the user's own home.
    char home_dir[4300], home[4400], cfg_home[4400], cache_home[4400],
        data_home[4400];
    snprintf (home_dir, sizeof (home_dir), "%s/home", dir);
    mkdir (home_dir, 0700);
    snprintf (home, sizeof (home), "HOME=%s", home_dir);
    snprintf (cfg_home, sizeof (cfg_home), "XDG_CONFIG_HOME=%s/.config", home_dir);
    snprintf (cache_home, sizeof (cache_home), "XDG_CACHE_HOME=%s/.cache",
              home_dir);
    snprintf (data_home, sizeof (data_home), "XDG_DATA_HOME=%s/.local/share",
              home_dir);
    char *const own[] = {home, cfg_home, cache_home, data_home, NULL};
    char **env = s_child_env (own);
    pid_t pid = 0;
    int rc = env ? posix_spawn (&pid, bin, &fa, &attr, argv, env) : ENOMEM;
    free (env);
    posix_spawn_file_actions_destroy (&fa);
    posix_spawnattr_destroy (&attr);
    close (fds[1]);
    if (rc) {
        close (fds[0]);
        snprintf (text, sizeof (text), "could not start %.300s: %s", bin,
                  strerror (rc));
        s_profile_down (p, text, true);
        return;
    }
    fcntl (fds[0], F_SETFL, fcntl (fds[0], F_GETFL) | O_NONBLOCK);
    p->pid = pid;
    p->err_fd = fds[0];
    p->line_len = 0;
    p->last_line[0] = 0;
    p->state = PR_LAUNCHING;
    p->started = zclock_mono ();
    p->launch_deadline = p->started + BROWSER_LAUNCH_MS;
    zmq_pollitem_t item = {NULL, p->err_fd, ZMQ_POLLIN, 0};
    zloop_poller (self->loop, &item, s_on_stderr, p);
    zloop_poller_set_tolerant (self->loop, &item);
    log_info ("browser", "%s: started Chromium (pid %d)", p->name, (int) pid);
}

//  Starts what can start: Chromium if a request waits and none runs, the
//  next request if Chromium is ready and idle.
static void
s_pump (profile_t *p)
{
    if (p->op || zlistx_size (p->queue) == 0)
        return;
    if (p->state == PR_DOWN) {
        s_launch (p);
        return;
    }
    if (p->state != PR_READY)
        return;
    p->op = (op_t *) zlistx_detach (p->queue, NULL);
    s_op_start (p);
}

//  ---- Requests ---------------------------------------------------------------------

static profile_t *
s_profile (self_t *self, const char *name, bool create)
{
    profile_t *p = (profile_t *) zhashx_lookup (self->profiles, name);
    if (p || !create || zhashx_size (self->profiles) >= BROWSER_MAX_PROFILES)
        return p;
    p = (profile_t *) calloc (1, sizeof (profile_t));
    if (!p)
        return NULL;
    p->self = self;
    snprintf (p->name, sizeof (p->name), "%s", name);
    p->err_fd = -1;
    p->queue = zlistx_new ();
    zhashx_insert (self->profiles, p->name, p);
    return p;
}

//  Reads the optional profile field.  Returns 0, or -1 after replying 400.
static int
s_req_profile (self_t *self, bus_request_t *req, char *name, size_t cap)
{
    snprintf (name, cap, "default");
    const msgpack_object *v = mp_get (req->body.root, "profile");
    if (v && v->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (v && (mp_copy_str (req->body.root, "profile", name, cap)
              || !s_valid_profile (name))) {
        bus_worker_error (self->worker, req, 400, "invalid_request",
                          "Invalid profile name: 1-64 of A-Z a-z 0-9 . _ -",
                          "profile");
        return -1;
    }
    return 0;
}

static int
s_cmp_str (const void *a, const void *b)
{
    return strcmp (*(char *const *) a, *(char *const *) b);
}

static void
s_handle_status (self_t *self, bus_request_t *req)
{
    char name[BROWSER_PROFILE_MAX + 1];
    if (s_req_profile (self, req, name, sizeof (name)))
        return;
    profile_t *p = s_profile (self, name, false);
    if (p && s_reap (p))
        s_profile_down (p, "Chromium exited", false);
    //  Profiles with a user-data dir, sorted.
    char dir[4200];
    snprintf (dir, sizeof (dir), "%s/browser", self->settings->state_dir);
    char *names[BROWSER_MAX_PROFILES * 4];
    size_t n = 0;
    DIR *d = opendir (dir);
    struct dirent *e;
    while (d && (e = readdir (d)) && n < sizeof (names) / sizeof (names[0]))
        if (s_valid_profile (e->d_name)
            && (e->d_type == DT_DIR || e->d_type == DT_UNKNOWN)
            && (names[n] = strdup (e->d_name)))
            n++;
    if (d)
        closedir (d);
    qsort (names, n, sizeof (char *), s_cmp_str);
    bool running = p && p->pid > 0;
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 7);
    mp_kv_bool (&w, "running", running);
    mp_kv_str (&w, "profile", name);
    if (p && p->url && p->state == PR_READY)
        mp_kv_str (&w, "url", p->url);
    else
        mp_kv_nil (&w, "url");
    if (p && p->title && p->state == PR_READY)
        mp_kv_str (&w, "title", p->title);
    else
        mp_kv_nil (&w, "title");
    mp_key (&w, "profiles");
    msgpack_pack_array (&w.pk, n);
    for (size_t i = 0; i < n; i++) {
        mp_put_str (&w, names[i]);
        free (names[i]);
    }
    if (running)
        mp_kv_int (&w, "pid", p->pid);
    else
        mp_kv_nil (&w, "pid");
    static const char *const states[] = {"stopped", "starting", "starting", "ready"};
    mp_kv_str (&w, "state", states[p ? p->state : PR_DOWN]);
    bus_worker_reply (self->worker, req, "BROWSER_STATUS_OK", 200, w.buf.data,
                      w.buf.size);
    mp_writer_fini (&w);
}

//  Navigate and screenshot: checked, then queued on their profile.
static void
s_handle_op (self_t *self, bus_request_t *req, op_kind_t kind)
{
    const msgpack_object *b = req->body.root;
    char name[BROWSER_PROFILE_MAX + 1];
    if (s_req_profile (self, req, name, sizeof (name)))
        return;
    op_t *op = (op_t *) calloc (1, sizeof (op_t));
    if (!op) {
        bus_worker_error (self->worker, req, 500, "internal_error", "Out of memory",
                          NULL);
        return;
    }
    op->kind = kind;
    op->origin.front_len = req->front_len;
    memcpy (op->origin.front, req->front, req->front_len);
    op->origin.env = req->env;
    op->timeout_ms = self->settings->navigate_timeout_ms;
    int64_t t;
    if (kind == OP_NAVIGATE) {
        size_t len = 0;
        const char *url = mp_get_str (b, "url", &len);
        if (!url || len == 0 || len > BROWSER_MAX_URL || memchr (url, 0, len)) {
            s_op_fail (self, &op, 400, "invalid_request",
                       "url must be a non-empty string of at most 8192 bytes", "url");
            return;
        }
        op->url = strndup (url, len);
        if (!op->url || !s_valid_url (op->url)) {
            s_op_fail (self, &op, 400, "invalid_request",
                       "Only http:// and https:// urls can be opened", "url");
            return;
        }
        if (mp_get (b, "timeoutMs")) {
            if (!mp_get_int (b, "timeoutMs", &t) || t < 100 || t > 600000) {
                s_op_fail (self, &op, 400, "invalid_request",
                           "timeoutMs must be an integer from 100 to 600000",
                           "timeoutMs");
                return;
            }
            op->timeout_ms = (int) t;
        }
    }
    else {
        size_t len = 0;
        const char *sel = mp_get_str (b, "selector", &len);
        if (sel) {
            if (len == 0 || len > BROWSER_MAX_SELECTOR || memchr (sel, 0, len)) {
                s_op_fail (self, &op, 400, "invalid_request",
                           "selector must be a non-empty string of at most 1024 bytes",
                           "selector");
                return;
            }
            op->selector = strndup (sel, len);
        }
        mp_get_bool (b, "fullPage", &op->full_page);
        if (op->selector && op->full_page) {
            s_op_fail (self, &op, 400, "invalid_request",
                       "Give either selector or fullPage, not both", "fullPage");
            return;
        }
    }
    op->deadline = zclock_mono () + op->timeout_ms;
    profile_t *p = s_profile (self, name, true);
    if (!p) {
        s_op_fail (self, &op, 503, "service_unavailable",
                   "Too many browser profiles in use", "profile");
        return;
    }
    if (zlistx_size (p->queue) >= BROWSER_MAX_QUEUE) {
        s_op_fail (self, &op, 503, "service_unavailable",
                   "Too many browser requests are waiting on this profile", NULL);
        return;
    }
    //  A Chromium that died since the last tick is noticed now.
    if (s_reap (p))
        s_profile_down (p, "Chromium exited", false);
    zlistx_add_end (p->queue, op);
    s_pump (p);
}

static void
s_handle (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    if (streq (req->env.type, "BROWSER_STATUS"))
        s_handle_status (self, req);
    else if (streq (req->env.type, "BROWSER_NAVIGATE"))
        s_handle_op (self, req, OP_NAVIGATE);
    else if (streq (req->env.type, "BROWSER_SCREENSHOT"))
        s_handle_op (self, req, OP_SCREENSHOT);
    else
        bus_worker_error (worker, req, 400, "invalid_request",
                          "Unknown browser request", NULL);
}

//  ---- Deadlines and reaping -----------------------------------------------------------

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    int64_t now = zclock_mono ();
    //  Killed Chromiums whose exit we have not collected yet.
    if (zlistx_size (self->zombies)) {
        zlistx_t *left = zlistx_new ();
        for (void *z = zlistx_first (self->zombies); z;
             z = zlistx_next (self->zombies)) {
            pid_t pid = (pid_t) (intptr_t) z;
            pid_t r = waitpid (pid, NULL, WNOHANG);
            if (r == 0 || (r < 0 && errno == EINTR))
                zlistx_add_end (left, z);
        }
        zlistx_destroy (&self->zombies);
        self->zombies = left;
    }
    for (profile_t *p = (profile_t *) zhashx_first (self->profiles); p;
         p = (profile_t *) zhashx_next (self->profiles)) {
        char text[160];
        if (s_reap (p)) {
            s_profile_down (p, "Chromium exited", false);
            continue;   //  s_pump may have relaunched it: next tick
        }
        if ((p->state == PR_LAUNCHING || p->state == PR_ATTACHING)
            && now >= p->launch_deadline) {
            snprintf (text, sizeof (text), "Chromium did not start within %d ms",
                      BROWSER_LAUNCH_MS);
            s_profile_down (p, text, true);
            continue;
        }
        if (p->op && now >= p->op->deadline) {
            bool nav = p->op->kind == OP_NAVIGATE;
            snprintf (text, sizeof (text), "%s did not finish in %d ms",
                      nav ? "Navigation" : "Screenshot", p->op->timeout_ms);
            log_warn ("browser", "%s: %s", p->name, text);
            //  Stop the load, so the next request starts from a quiet page;
            //  the answer to what timed out is ignored when it comes.
            if (nav && p->cdp && p->state == PR_READY)
                cdp_send (p->cdp, "Page.stopLoading", NULL, p->session_id);
            s_op_end_error (p, 503, "service_unavailable", text, NULL);
        }
        //  Requests that waited in the queue past their own deadline.
        op_t *op = (op_t *) zlistx_first (p->queue);
        while (op) {
            op_t *next = (op_t *) zlistx_next (p->queue);
            if (now >= op->deadline) {
                void *handle = zlistx_find (p->queue, op);
                zlistx_detach (p->queue, handle);
                snprintf (text, sizeof (text), "%s did not finish in %d ms",
                          op->kind == OP_NAVIGATE ? "Navigation" : "Screenshot",
                          op->timeout_ms);
                s_op_fail (self, &op, 503, "service_unavailable", text, NULL);
                //  The list's cursor moved: start over from the head.
                next = (op_t *) zlistx_first (p->queue);
            }
            op = next;
        }
    }
    return 0;
}

//  ---- Life cycle ---------------------------------------------------------------------

static void s_destroy (void **state_p);

static void *
s_create (const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) calloc (1, sizeof (self_t));
    if (!self)
        return NULL;
    self->settings = &args->settings->browser;
    self->worker = worker;
    self->loop = loop;
    self->profiles = zhashx_new ();
    self->zombies = zlistx_new ();
    //  civetweb's client needs its library initialised (counted, so the
    //  HTTP front's own start and stop are unaffected).
    self->mg_inited = mg_init_library (0) != 0;
    zloop_timer (loop, BROWSER_TICK_MS, 0, s_on_tick, self);
    log_debug ("browser", "Chromium %s, viewport %dx%d, navigation timeout %d ms",
               self->settings->chromium, self->settings->viewport_width,
               self->settings->viewport_height,
               self->settings->navigate_timeout_ms);
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (!self)
        return;
    //  Everything waiting is answered, every Chromium asked to stop.
    zlistx_t *all = zlistx_new ();
    for (profile_t *p = (profile_t *) zhashx_first (self->profiles); p;
         p = (profile_t *) zhashx_next (self->profiles))
        zlistx_add_end (all, p);
    for (profile_t *p = (profile_t *) zlistx_first (all); p;
         p = (profile_t *) zlistx_next (all)) {
        if (p->op)
            s_op_fail (self, &p->op, 503, "service_unavailable",
                       "The browser actor is stopping", NULL);
        op_t *op;
        while ((op = (op_t *) zlistx_detach (p->queue, NULL)))
            s_op_fail (self, &op, 503, "service_unavailable",
                       "The browser actor is stopping", NULL);
        s_signal (p, SIGTERM);
    }
    //  Up to BROWSER_STOP_MS for them to exit, then SIGKILL.
    int64_t until = zclock_mono () + BROWSER_STOP_MS;
    bool left = true;
    while (left && zclock_mono () < until) {
        left = false;
        for (profile_t *p = (profile_t *) zlistx_first (all); p;
             p = (profile_t *) zlistx_next (all))
            if (p->pid > 0 && !s_reap (p))
                left = true;
        if (left)
            zclock_sleep (20);
    }
    for (profile_t *p = (profile_t *) zlistx_first (all); p;
         p = (profile_t *) zlistx_next (all)) {
        if (p->pid > 0) {
            log_warn ("browser", "%s: Chromium (pid %d) ignored SIGTERM: killed",
                      p->name, (int) p->pid);
            s_signal (p, SIGKILL);
            waitpid (p->pid, NULL, 0);
            p->pid = 0;
        }
        cdp_destroy (&p->cdp);
        if (p->err_fd >= 0)
            close (p->err_fd);
        zlistx_destroy (&p->queue);
        free (p->url);
        free (p->title);
        free (p);
    }
    zlistx_destroy (&all);
    for (void *z = zlistx_first (self->zombies); z; z = zlistx_next (self->zombies))
        waitpid ((pid_t) (intptr_t) z, NULL, 0);   //  SIGKILLed already
    zlistx_destroy (&self->zombies);
    zhashx_destroy (&self->profiles);
    if (self->mg_inited)
        mg_exit_library ();
    free (self);
    *state_p = NULL;
}

static const actor_def_t s_def = {"browser", s_create, s_handle, s_destroy};

void
browser_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
