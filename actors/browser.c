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
    BROWSER_MAX_PROFILES); an op from its request to its reply (browser_ops_end
    frees it).  cJSON messages popped from cdp_recv are freed by the
    handler that popped them; strings taken from them are copied.
    =========================================================================
*/
#include "browser_internal.h"
#include "envelope.h"
#include "msg_names.h"

#include "actor.h"
#include "settings.h"
#include "log.h"

#include <civetweb.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

//  ---- Small helpers ----------------------------------------------------------

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
    const msgpack_object *v = mp_get (req->body.root, MK_profile);
    if (v && v->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (v
        && (mp_copy_str (req->body.root, MK_profile, name, cap)
            || !s_valid_profile (name))) {
        bus_worker_error (self->worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "Invalid profile name: 1-64 of A-Z a-z 0-9 . _ -", "profile");
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
s_handle_status (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    char name[BROWSER_PROFILE_MAX + 1];
    if (s_req_profile (self, req, name, sizeof (name)))
        return;
    profile_t *p = s_profile (self, name, false);
    if (p && browser_chromium_reap (p))
        browser_chromium_profile_down (p, "Chromium exited", false);
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
    actor_reply_begin (&w);
    mp_kv_bool (&w, MK_running, running);
    mp_kv_str (&w, MK_profile, name);
    if (p && p->url && p->state == PR_READY)
        mp_kv_str (&w, MK_url, p->url);
    else
        mp_kv_nil (&w, MK_url);
    if (p && p->title && p->state == PR_READY)
        mp_kv_str (&w, MK_title, p->title);
    else
        mp_kv_nil (&w, MK_title);
    mp_key (&w, MK_profiles);
    msgpack_pack_array (&w.pk, n);
    for (size_t i = 0; i < n; i++) {
        mp_put_str (&w, names[i]);
        free (names[i]);
    }
    if (running)
        mp_kv_int (&w, MK_pid, p->pid);
    else
        mp_kv_nil (&w, MK_pid);
    static const char *const states[] = {"stopped", "starting", "starting", "ready"};
    mp_kv_str (&w, MK_state, states[p ? p->state : PR_DOWN]);
    actor_reply_map (self->worker, req, MT_BROWSER_STATUS_OK, &w);
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
        bus_worker_error (self->worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "Out of memory", NULL);
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
        const char *url = mp_get_str (b, MK_url, &len);
        if (!url || len == 0 || len > BROWSER_MAX_URL || memchr (url, 0, len)) {
            browser_ops_fail (self, &op, ENVELOPE_BAD_REQUEST, "invalid_request",
                              "url must be a non-empty string of at most 8192 bytes",
                              "url");
            return;
        }
        op->url = strndup (url, len);
        if (!op->url || !s_valid_url (op->url)) {
            browser_ops_fail (self, &op, ENVELOPE_BAD_REQUEST, "invalid_request",
                              "Only http:// and https:// urls can be opened", "url");
            return;
        }
        if (mp_get (b, MK_timeoutMs)) {
            if (!mp_get_int (b, MK_timeoutMs, &t) || t < 100 || t > 600000) {
                browser_ops_fail (self, &op, ENVELOPE_BAD_REQUEST, "invalid_request",
                                  "timeoutMs must be an integer from 100 to 600000",
                                  "timeoutMs");
                return;
            }
            op->timeout_ms = (int) t;
        }
    }
    else {
        size_t len = 0;
        const char *sel = mp_get_str (b, MK_selector, &len);
        if (sel) {
            if (len == 0 || len > BROWSER_MAX_SELECTOR || memchr (sel, 0, len)) {
                browser_ops_fail (
                    self, &op, ENVELOPE_BAD_REQUEST, "invalid_request",
                    "selector must be a non-empty string of at most 1024 bytes",
                    "selector");
                return;
            }
            op->selector = strndup (sel, len);
        }
        mp_get_bool (b, MK_fullPage, &op->full_page);
        if (op->selector && op->full_page) {
            browser_ops_fail (self, &op, ENVELOPE_BAD_REQUEST, "invalid_request",
                              "Give either selector or fullPage, not both", "fullPage");
            return;
        }
    }
    op->deadline = zclock_mono () + op->timeout_ms;
    profile_t *p = s_profile (self, name, true);
    if (!p) {
        browser_ops_fail (self, &op, ENVELOPE_UNAVAILABLE, "service_unavailable",
                          "Too many browser profiles in use", "profile");
        return;
    }
    if (zlistx_size (p->queue) >= BROWSER_MAX_QUEUE) {
        browser_ops_fail (self, &op, ENVELOPE_UNAVAILABLE, "service_unavailable",
                          "Too many browser requests are waiting on this profile", NULL);
        return;
    }
    //  A Chromium that died since the last tick is noticed now.
    if (browser_chromium_reap (p))
        browser_chromium_profile_down (p, "Chromium exited", false);
    zlistx_add_end (p->queue, op);
    browser_chromium_pump (p);
}

static void
s_handle_navigate (void *state, bus_worker_t *worker, bus_request_t *req)
{
    s_handle_op ((self_t *) state, req, OP_NAVIGATE);
}

static void
s_handle_screenshot (void *state, bus_worker_t *worker, bus_request_t *req)
{
    s_handle_op ((self_t *) state, req, OP_SCREENSHOT);
}

static const actor_route_t s_routes[] = {{MT_BROWSER_STATUS, s_handle_status},
                                         {MT_BROWSER_NAVIGATE, s_handle_navigate},
                                         {MT_BROWSER_SCREENSHOT, s_handle_screenshot},
                                         {NULL, NULL}};

//  ---- Deadlines and reaping -----------------------------------------------------------

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    int64_t now = zclock_mono ();
    //  Killed Chromiums whose exit we have not collected yet.
    if (zlistx_size (self->zombies)) {
        zlistx_t *left = zlistx_new ();
        for (void *z = zlistx_first (self->zombies); z; z = zlistx_next (self->zombies)) {
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
        if (browser_chromium_reap (p)) {
            browser_chromium_profile_down (p, "Chromium exited", false);
            continue;  //  browser_chromium_pump may have relaunched it: next tick
        }
        if ((p->state == PR_LAUNCHING || p->state == PR_ATTACHING)
            && now >= p->launch_deadline) {
            snprintf (text, sizeof (text), "Chromium did not start within %d ms",
                      BROWSER_LAUNCH_MS);
            browser_chromium_profile_down (p, text, true);
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
            browser_ops_end_error (p, ENVELOPE_UNAVAILABLE, "service_unavailable", text,
                                   NULL);
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
                browser_ops_fail (self, &op, ENVELOPE_UNAVAILABLE, "service_unavailable",
                                  text, NULL);
                //  The list's cursor moved: start over from the head.
                next = (op_t *) zlistx_first (p->queue);
            }
            op = next;
        }
    }
    return 0;
}

//  ---- Life cycle ---------------------------------------------------------------------

static int
s_init (void *state, const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) state;
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
               self->settings->viewport_height, self->settings->navigate_timeout_ms);
    return 0;
}

static void
s_fini (void *state)
{
    self_t *self = (self_t *) state;
    //  Everything waiting is answered, every Chromium asked to stop.
    zlistx_t *all = actor_hash_values (self->profiles);
    for (profile_t *p = (profile_t *) zlistx_first (all); p;
         p = (profile_t *) zlistx_next (all)) {
        if (p->op)
            browser_ops_fail (self, &p->op, ENVELOPE_UNAVAILABLE, "service_unavailable",
                              "The browser actor is stopping", NULL);
        op_t *op;
        while ((op = (op_t *) zlistx_detach (p->queue, NULL)))
            browser_ops_fail (self, &op, ENVELOPE_UNAVAILABLE, "service_unavailable",
                              "The browser actor is stopping", NULL);
        browser_chromium_signal (p, SIGTERM);
    }
    //  Up to BROWSER_STOP_MS for them to exit, then SIGKILL.
    int64_t until = zclock_mono () + BROWSER_STOP_MS;
    bool left = true;
    while (left && zclock_mono () < until) {
        left = false;
        for (profile_t *p = (profile_t *) zlistx_first (all); p;
             p = (profile_t *) zlistx_next (all))
            if (p->pid > 0 && !browser_chromium_reap (p))
                left = true;
        if (left)
            zclock_sleep (20);
    }
    for (profile_t *p = (profile_t *) zlistx_first (all); p;
         p = (profile_t *) zlistx_next (all)) {
        if (p->pid > 0) {
            log_warn ("browser", "%s: Chromium (pid %d) ignored SIGTERM: killed", p->name,
                      (int) p->pid);
            browser_chromium_signal (p, SIGKILL);
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
        waitpid ((pid_t) (intptr_t) z, NULL, 0);  //  SIGKILLed already
    zlistx_destroy (&self->zombies);
    zhashx_destroy (&self->profiles);
    if (self->mg_inited)
        mg_exit_library ();
}

static const actor_def_t s_def = {.service = "browser",
                                  .size = sizeof (self_t),
                                  .init = s_init,
                                  .routes = s_routes,
                                  .fini = s_fini};

void
browser_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
