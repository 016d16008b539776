/*  =========================================================================
    curl_loop - libcurl transfers driven by an actor's zloop

    A curl_loop_t is one libcurl multi handle whose sockets sit in an epoll
    set, and that set is one poller on the actor's zloop: a wake-up costs
    the same with one transfer or thousands.  libcurl's timeouts become one
    one-shot zloop timer.  When a transfer ends (well or not), the done
    callback gets its easy handle and result, on the loop's thread; the
    handle is already out of the multi handle then, and the callback owns
    it again (it may reuse it, curl_loop_add it again, or clean it up).

    The run actor's provider calls and the channel actor's platform calls
    both go through it.

    Threads: everything runs on the thread of the zloop.  libcurl itself is
    loaded on first use (curl_lazy.c): curl_loop_new calls
    curl_global_init.
    =========================================================================
*/
#ifndef CG_CURL_LOOP_H
#define CG_CURL_LOOP_H

#include <czmq.h>
#define CURL_DISABLE_TYPECHECK
#include <curl/curl.h>

typedef struct curl_loop_t curl_loop_t;

//  A transfer ended: easy (now the callback's), and libcurl's result.
typedef void (curl_loop_done_fn) (void *arg, CURL *easy, CURLcode result);

//  Sockets a loop holds at most; a transfer beyond fails to connect.
#define CURL_LOOP_MAX_SOCKETS 4096

//  Creates the loop's multi handle on loop.  Returns NULL if libcurl
//  cannot be loaded or set up.  Caller owns the return value
//  (curl_loop_destroy, before the zloop goes).
curl_loop_t *
curl_loop_new (zloop_t *loop, curl_loop_done_fn *done, void *arg);

//  Removes the transfers still going from the multi handle (the done
//  callback is not called; their easy handles are their callers' again,
//  to clean up) and frees the loop; sets *self_p to NULL.
void
curl_loop_destroy (curl_loop_t **self_p);

//  Starts easy's transfer; the loop owns easy until done hands it back.
//  Returns 0 or -1 (then easy stays the caller's).
int
curl_loop_add (curl_loop_t *self, CURL *easy);

//  Stops easy's transfer before it ends: the done callback is not called,
//  and easy is the caller's again.
void
curl_loop_remove (curl_loop_t *self, CURL *easy);

//  Does now what libcurl asked to be called for by now (typically a
//  transfer just added: libcurl wants a call at once to start it), rather
//  than after the loop polls again.  For an actor's after_requests hook.
void
curl_loop_due (curl_loop_t *self);

//  Transfers going now.
size_t
curl_loop_size (curl_loop_t *self);

#endif
