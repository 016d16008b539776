/*  =========================================================================
    browser_internal - what the files of the browser actor share

    The browser actor is one thread and one state (self_t) spread over three
    files: browser.c (requests, the tick, life cycle), browser_ops.c (a
    navigate or screenshot as a sequence of CDP calls) and
    browser_chromium.c (Chromium processes: launch, attach, stop, reap).
    Nothing here is for other modules: they use browser.h.  Every function
    runs on the actor's thread.
    =========================================================================
*/
#ifndef CG_BROWSER_INTERNAL_H
#define CG_BROWSER_INTERNAL_H

#include <czmq.h>
#include <cjson/cJSON.h>

#include "browser.h"
#include "bus_worker.h"
#include "cdp.h"

#define BROWSER_TICK_MS 50             //  Deadlines and reaping
#define BROWSER_LAUNCH_MS 30000        //  Spawn to a ready page, at most
#define BROWSER_STOP_MS 3000           //  SIGTERM grace before SIGKILL
#define BROWSER_MAX_QUEUE 32           //  Requests waiting per profile
#define BROWSER_MAX_PROFILES 16        //  Profiles known at once
#define BROWSER_PROFILE_MAX 64         //  Longest profile name
#define BROWSER_MAX_URL 8192           //  Longest url accepted or reported
#define BROWSER_MAX_TITLE 4096         //  Longest title reported
#define BROWSER_MAX_SELECTOR 1024      //  Longest CSS selector
#define BROWSER_MAX_FULL_HEIGHT 16384  //  Tallest full-page capture (px)
//  Largest DevTools message taken from Chromium (a screenshot's base64
//  is most of it), and the largest base64 PNG we reply with: the bus
//  carries bodies up to MP_MAX_BODY (16 MiB).
#define BROWSER_MAX_MESSAGE (48u * 1024u * 1024u)
#define BROWSER_MAX_PNG_B64 (15u * 1024u * 1024u)

typedef struct self_t self_t;

typedef enum { OP_NAVIGATE = 1, OP_SCREENSHOT } op_kind_t;

typedef enum {
    ST_QUEUED = 0,
    ST_NAV_SENT,      //  Page.navigate sent
    ST_NAV_LOAD,      //  Committed; waiting for "load"
    ST_NAV_EVAL,      //  Runtime.evaluate of url and title
    ST_SHOT_METRICS,  //  Page.getLayoutMetrics (full page)
    ST_SHOT_ELEMENT,  //  Runtime.evaluate of the element box
    ST_SHOT_CAPTURE,  //  Page.captureScreenshot
} op_step_t;

//  One navigate or screenshot, from its request to its reply.
typedef struct {
    op_kind_t kind;
    bus_request_t origin;  //  Asking front and envelope only (raw
                           //  and body unused, never finied)
    char *url;             //  Navigate: url asked (owned)
    char *selector;        //  Screenshot: CSS selector or NULL (owned)
    bool full_page;        //  Screenshot: whole page
    int timeout_ms;        //  Budget from arrival
    int64_t deadline;      //  zclock_mono () past which: 503
    op_step_t step;
    int wait_id;              //  CDP command whose reply we await
    char loader_id[128];      //  Navigate: the new document's loader
    char loaded[128];         //  Loader of the last main-frame "load"
    int status;               //  HTTP status of the main document
    char status_loader[128];  //  Loader that status belongs to
} op_t;

typedef enum { PR_DOWN = 0, PR_LAUNCHING, PR_ATTACHING, PR_READY } pr_state_t;

typedef enum { L_CREATE = 1, L_ATTACH, L_SETUP } launch_step_t;

//  One named profile and its Chromium.
typedef struct {
    self_t *self;  //  Back pointer (not owned)
    char name[BROWSER_PROFILE_MAX + 1];
    pr_state_t state;
    pid_t pid;        //  Chromium (leads its own process
                      //  group), 0 when none or reaped
    int64_t started;  //  zclock_mono () at spawn
    int err_fd;       //  Read end of its stderr, -1 if none
    char line[1024];  //  stderr line being read
    size_t line_len;
    char last_line[256];  //  Last stderr line (launch failures)
    cdp_t *cdp;           //  Browser-level DevTools connection
    launch_step_t launch_step;
    int wait_id;              //  Launch: CDP command awaited
    int64_t launch_deadline;  //  zclock_mono ()
    char target_id[128];      //  Our page (also its main frame id)
    char session_id[128];     //  Its flattened session
    op_t *op;                 //  In flight, or NULL (owned)
    zlistx_t *queue;          //  op_t * waiting, in order (owned)
    char *url;                //  Page now shown (owned), or NULL
    char *title;              //  Its title (owned), or NULL
} profile_t;

struct self_t {
    const browser_settings_t *settings;  //  Read only, not owned
    bus_worker_t *worker;                //  Our service socket (not owned)
    zloop_t *loop;                       //  The actor's loop (not owned)
    zhashx_t *profiles;                  //  name -> profile_t (index; freed here)
    zlistx_t *zombies;                   //  Killed pids not yet reaped
    bool mg_inited;                      //  We called mg_init_library
};

//  ---- browser_chromium.c ----------------------------------------------------

//  Signals Chromium's whole process group (its helpers too) while its
//  leader is not reaped, so the group id cannot have been reused.
void
browser_chromium_signal (profile_t *p, int sig);

//  Reaps p's Chromium if it exited.  Returns true if it did (pid is then 0).
bool
browser_chromium_reap (profile_t *p);

//  Takes the profile down: the op in flight gets 503, Chromium is killed
//  (and reaped, now or on a later tick), the connection closed.  Queued
//  requests either fail too (fail_queue: Chromium could not start) or
//  start a fresh Chromium.
void
browser_chromium_profile_down (profile_t *p, const char *reason, bool fail_queue);

//  Starts what can start: Chromium if a request waits and none runs, the
//  next request if Chromium is ready and idle.
void
browser_chromium_pump (profile_t *p);

//  ---- browser_ops.c ---------------------------------------------------------

//  The string member key of obj, or NULL.  Lent.
const char *
browser_ops_jstr (const cJSON *obj, const char *key);

//  Replies with an ERROR and frees the op.
void
browser_ops_fail (self_t *self, op_t **op_p, int status, const char *code,
                  const char *message, const char *param);

//  The op in flight is over (replied): forget it and start the next.
void
browser_ops_end (profile_t *p);

//  Ends the op in flight with an ERROR reply.
void
browser_ops_end_error (profile_t *p, int status, const char *code, const char *message,
                       const char *param);

//  Sends the first CDP call of p's op in flight.
void
browser_ops_start (profile_t *p);

//  The reply to the op's awaited command.
void
browser_ops_reply (profile_t *p, const cJSON *msg);

//  An event on the page session while an op is in flight.
void
browser_ops_event (profile_t *p, const char *method, const cJSON *params);

#endif
