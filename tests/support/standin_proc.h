/*  =========================================================================
    standin_proc - what the chat-platform drivers (telegram, discord,
    slack, whatsapp) share: running a stand-in binary, restarting it on
    the same port, stopping it, and calling its control API

    Every stand-in prints "listening on 127.0.0.1:PORT" once it listens and
    answers GET/POST base + "/control/<path>" with JSON.  As with harness.h,
    use these inside a test, from the test's own (single) thread.
    =========================================================================
*/
#ifndef CG_STANDIN_PROC_H
#define CG_STANDIN_PROC_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "harness.h"

//  ---- The process --------------------------------------------------------

//  $CLAWGATE_STANDIN_DIR/name into bin.  When that is not set, prints
//  "<who>: CLAWGATE_STANDIN_DIR is not set" and returns -1, else 0.
int
standin_proc_path (const char *who, const char *name, char *bin, size_t cap);

//  Runs bin with args (NULL-ended) and waits up to 15 s for its
//  "listening on 127.0.0.1:PORT".  Returns PORT; -1 when it does not
//  start or say so (then it is killed and reaped).
int
standin_proc_start (proc_t *proc, const char *bin, const char *const args[]);

//  Stops it with sig (SIGTERM for a clean exit, SIGKILL for a crash),
//  reaps it and removes its stderr file.  Safe to call twice.
void
standin_proc_stop (proc_t *proc, int sig);

//  Kills proc if it runs, then calls launch (arg) until it returns 0,
//  every 100 ms for 5 s (the port may still be taken).  Returns 0 or -1.
int
standin_proc_restart (proc_t *proc, int (*launch) (void *arg), void *arg);

//  ---- Control API --------------------------------------------------------

//  One control call: method base/control/path with body (JSON, or NULL
//  for none).  Returns the parsed answer of a 200, or NULL.  Caller owns
//  return value.
cJSON *
standin_control (const char *base, const char *method, const char *path,
                 const char *body);

//  GET base/control/path; NULL unless the answer has an array name.
//  Caller owns return value.
cJSON *
standin_control_list (const char *base, const char *path, const char *name);

//  Polls GET base/control/path every 50 ms until its array name holds at
//  least n items or timeout_ms passes.  Returns 0 or -1.
int
standin_wait_items (const char *base, const char *path, const char *name, int n,
                    int timeout_ms);

//  endpoint, or "endpoint?key=<value escaped>" when value is not NULL,
//  into path.
void
standin_query_path (char *path, size_t cap, const char *endpoint, const char *key,
                    const char *value);

#endif
