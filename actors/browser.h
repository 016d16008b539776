/*  =========================================================================
    browser - headless Chromium driven over the DevTools Protocol

    Service "browser".  Accepts BROWSER_STATUS (-> BROWSER_STATUS_OK),
    BROWSER_NAVIGATE (-> BROWSER_NAVIGATED | ERROR) and BROWSER_SCREENSHOT
    (-> BROWSER_SCREENSHOT_OK | ERROR); see schemas/messages.def.

    One Chromium process per named profile ([A-Za-z0-9._-]{1,64}, default
    "default", user data in <stateDir>/browser/<profile>), started on the
    profile's first navigate or screenshot and restarted on the next one
    after it dies.  Requests on one profile run one at a time in arrival
    order; status is answered at once, even while a navigation waits.
    Every Chromium is stopped (SIGTERM, then SIGKILL) and reaped on $TERM.

    Threads: the actor's own (zloop), plus one civetweb reader thread per
    DevTools connection that only queues parsed messages (actors/cdp.h).
    Start: zactor_new (browser_actor, &actor_args).
    =========================================================================
*/
#ifndef CG_BROWSER_H
#define CG_BROWSER_H

#include <czmq.h>

//  What the browser actor reads.  Strings lent by the configuration.
typedef struct {
    const char *chromium;     //  Chromium binary
    const char *state_dir;    //  Profiles live in <state_dir>/browser
    int navigate_timeout_ms;  //  Default load deadline of a navigation
    int viewport_width;       //  Viewport in CSS pixels (scale 1)
    int viewport_height;
} browser_settings_t;

void
browser_actor (zsock_t *pipe, void *args);

//  The command line every Chromium gets: bin, browser_chromium_flags,
//  "--user-data-dir=...", "--window-size=W,H", "about:blank", NULL, into
//  argv (BROWSER_CHROMIUM_ARGS entries).  The strings are lent, not copied.
//  Shared with bench/browser_bench.c, so the bench's direct Chromium is
//  started exactly as the actor starts its own.
#define BROWSER_CHROMIUM_ARGS 16
extern const char *const browser_chromium_flags[];
void
browser_chromium_argv (char **argv, const char *bin, const char *user_data,
                       const char *window_size);

#endif
