/*  =========================================================================
    browser_chromium - Chromium processes: launch in a process group of
    their own, read stderr for the DevTools endpoint, attach a page session,
    stop (SIGTERM, then SIGKILL) and reap
    =========================================================================
*/
#include "browser_internal.h"
#include "envelope.h"

#include "log.h"

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

//  ---- Chromium processes ----------------------------------------------------------

//  Signals Chromium's whole process group (its helpers too) while its
//  leader is not reaped, so the group id cannot have been reused.
void
browser_chromium_signal (profile_t *p, int sig)
{
    if (p->pid > 0 && kill (-p->pid, sig) && errno == ESRCH)
        kill (p->pid, sig);
}

//  Reaps p's Chromium if it exited.  Returns true if it did (pid is then 0).
bool
browser_chromium_reap (profile_t *p)
{
    if (p->pid <= 0)
        return false;
    int st = 0;
    pid_t r = waitpid (p->pid, &st, WNOHANG);
    if (r == 0 || (r < 0 && errno == EINTR))
        return false;
    if (r == p->pid) {
        if (WIFSIGNALED (st))
            log_warn ("browser", "%s: Chromium (pid %d) killed by signal %d", p->name,
                      (int) p->pid, WTERMSIG (st));
        else
            log_info ("browser", "%s: Chromium (pid %d) exited with status %d", p->name,
                      (int) p->pid, WEXITSTATUS (st));
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
void
browser_chromium_profile_down (profile_t *p, const char *reason, bool fail_queue)
{
    self_t *self = p->self;
    char text[512];
    snprintf (text, sizeof (text), "Chromium is not available: %s", reason);
    if (p->state != PR_DOWN)
        log_warn ("browser", "%s: down: %s", p->name, reason);
    if (p->op)
        browser_ops_fail (self, &p->op, ENVELOPE_UNAVAILABLE, "service_unavailable", text,
                          NULL);
    if (p->pid > 0 && !browser_chromium_reap (p)) {
        browser_chromium_signal (p, SIGKILL);
        if (!browser_chromium_reap (p))
            zlistx_add_end (self->zombies, (void *) (intptr_t) p->pid);
        p->pid = 0;
    }
    if (p->cdp) {
        s_poll_end (p, cdp_fd (p->cdp));
        cdp_destroy (&p->cdp);  //  Quick: Chromium is gone
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
            browser_ops_fail (self, &op, ENVELOPE_UNAVAILABLE, "service_unavailable",
                              text, NULL);
    }
    else
        browser_chromium_pump (p);
}

static int
s_on_cdp (zloop_t *loop, zmq_pollitem_t *item, void *arg);

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
        browser_chromium_profile_down (p, "the DevTools connection failed while starting",
                                       true);
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
    const char *emsg =
        browser_ops_jstr (cJSON_GetObjectItemCaseSensitive (msg, "error"), "message");
    if (emsg || !cJSON_IsObject (result)) {
        char text[400];
        snprintf (text, sizeof (text), "DevTools refused a start-up command: %.300s",
                  emsg ? emsg : "no result");
        browser_chromium_profile_down (p, text, true);
        return;
    }
    if (p->launch_step == L_CREATE) {
        const char *target = browser_ops_jstr (result, "targetId");
        if (!target || strlen (target) >= sizeof (p->target_id)) {
            browser_chromium_profile_down (p, "Target.createTarget gave no target", true);
            return;
        }
        snprintf (p->target_id, sizeof (p->target_id), "%s", target);
        s_launch_send (p, L_ATTACH);
    }
    else if (p->launch_step == L_ATTACH) {
        const char *session = browser_ops_jstr (result, "sessionId");
        if (!session || strlen (session) >= sizeof (p->session_id)) {
            browser_chromium_profile_down (p, "Target.attachToTarget gave no session",
                                           true);
            return;
        }
        snprintf (p->session_id, sizeof (p->session_id), "%s", session);
        s_launch_send (p, L_SETUP);
    }
    else {
        p->state = PR_READY;
        log_info ("browser", "%s: Chromium ready (pid %d) in %lld ms", p->name,
                  (int) p->pid, (long long) (zclock_mono () - p->started));
        browser_chromium_pump (p);
    }
}

//  Chromium said where DevTools listens: connect and set up the page.
static void
s_attach (profile_t *p, const char *line)
{
    const char *ws = strstr (line, "ws://");
    char host[64] = "", path[256] = "";
    int port = 0;
    if (!ws || sscanf (ws, "ws://%63[^:/]:%d%255s", host, &port, path) != 3 || port <= 0
        || port > 65535 || path[0] != '/') {
        browser_chromium_profile_down (p, "could not read the DevTools address", true);
        return;
    }
    char err[320];
    p->cdp = cdp_connect (port, path, BROWSER_MAX_MESSAGE, err, sizeof (err));
    if (!p->cdp) {
        browser_chromium_profile_down (p, err, true);
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
                browser_chromium_profile_down (p, text, true);
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
                    return 0;  //  Went down on the way
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
        const char *method = browser_ops_jstr (msg, "method");
        const char *sid = browser_ops_jstr (msg, "sessionId");
        int n;
        if (cdp_reply_id (msg, &n)) {
            if (p->state == PR_ATTACHING && n == p->wait_id)
                s_launch_reply (p, msg);
            else if (p->op && p->op->wait_id == n)
                browser_ops_reply (p, msg);
            //  Else: stale (an op that timed out) or fire-and-forget.
        }
        else if (method && p->state == PR_READY) {
            bool ours = sid && streq (sid, p->session_id);
            const cJSON *params = cJSON_GetObjectItemCaseSensitive (msg, "params");
            if (streq (method, "Target.detachedFromTarget")
                && streq (browser_ops_jstr (params, "sessionId")
                              ? browser_ops_jstr (params, "sessionId")
                              : "",
                          p->session_id))
                browser_chromium_profile_down (p, "the page was closed", false);
            else if (ours && streq (method, "Inspector.targetCrashed"))
                browser_chromium_profile_down (p, "the page crashed", false);
            else if (ours && p->op)
                browser_ops_event (p, method, params);
        }
        cJSON_Delete (msg);
    }
    if (p->cdp == cdp && cdp_closed (cdp)) {
        browser_chromium_reap (p);
        browser_chromium_profile_down (p, "Chromium closed the DevTools connection",
                                       false);
    }
    return 0;
}

//  Environment for Chromium: what it needs from ours, none of our secrets,
//  and the entries of own (NULL-terminated; lent, must outlive the spawn).
//  Caller frees the array, not its strings.
static char **
s_child_env (char *const own[])
{
    static const char *const keep[] = {
        "PATH=", "LANG=", "LC_", "TZ=", "TMPDIR=", "FONTCONFIG_", NULL};
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
                env[k++] = *e;  //  Lent from environ
                break;
            }
    for (char *const *o = own; *o; o++)
        env[k++] = *o;  //  Lent from the caller
    return env;
}

const char *const browser_chromium_flags[] = {"--headless=new",
                                              "--no-sandbox",
                                              "--disable-gpu",
                                              "--disable-dev-shm-usage",
                                              "--disable-background-networking",
                                              "--no-first-run",
                                              "--no-default-browser-check",
                                              "--hide-scrollbars",
                                              "--mute-audio",
                                              "--remote-debugging-port=0",
                                              NULL};

void
browser_chromium_argv (char **argv, const char *bin, const char *user_data,
                       const char *window_size)
{
    int n = 0;
    argv[n++] = (char *) bin;
    for (const char *const *f = browser_chromium_flags; *f; f++)
        argv[n++] = (char *) *f;
    argv[n++] = (char *) user_data;
    argv[n++] = (char *) window_size;
    argv[n++] = (char *) "about:blank";
    argv[n] = NULL;
}

//  Spawns Chromium for p.  On failure the profile fails its queue.  A
//  little over 100 lines: the argument vector, the environment and the
//  spawn read in the order Chromium gets them, each failure beside its step.
static void
s_launch (profile_t *p)
{
    self_t *self = p->self;
    const browser_settings_t *cfg = self->settings;
    const char *bin = cfg->chromium ? cfg->chromium : "/usr/bin/chromium";
    char text[600];
    if (access (bin, X_OK)) {
        snprintf (text, sizeof (text),
                  "Chromium is not installed: %.300s is "
                  "missing or not executable (install Debian's chromium package "
                  "or set browser.chromium)",
                  bin);
        log_error ("browser", "%s: %s", p->name, text);
        op_t *op;
        while ((op = (op_t *) zlistx_detach (p->queue, NULL)))
            browser_ops_fail (self, &op, ENVELOPE_UNAVAILABLE, "service_unavailable",
                              text, NULL);
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
    char *argv[BROWSER_CHROMIUM_ARGS];
    browser_chromium_argv (argv, bin, data_dir, size);
    int fds[2];
    if (pipe2 (fds, O_CLOEXEC)) {
        browser_chromium_profile_down (p, "could not make a pipe", true);
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
    char home_dir[4300], home[4400], cfg_home[4400], cache_home[4400], data_home[4400];
    snprintf (home_dir, sizeof (home_dir), "%s/home", dir);
    mkdir (home_dir, 0700);
    snprintf (home, sizeof (home), "HOME=%s", home_dir);
    snprintf (cfg_home, sizeof (cfg_home), "XDG_CONFIG_HOME=%s/.config", home_dir);
    snprintf (cache_home, sizeof (cache_home), "XDG_CACHE_HOME=%s/.cache", home_dir);
    snprintf (data_home, sizeof (data_home), "XDG_DATA_HOME=%s/.local/share", home_dir);
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
        snprintf (text, sizeof (text), "could not start %.300s: %s", bin, strerror (rc));
        browser_chromium_profile_down (p, text, true);
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
void
browser_chromium_pump (profile_t *p)
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
    browser_ops_start (p);
}
