/*  =========================================================================
    quota - helpers for the rate-limit and concurrency tests

    A check of a 429 from the limits, and streaming runs held open on a
    thread of their own until the test ends them (the client hangs up,
    which aborts the run and frees its slot).  Used by test_ratelimit.c and
    test_ratelimit_cluster.c.
    =========================================================================
*/
#ifndef CG_QUOTA_H
#define CG_QUOTA_H

#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"

//  Checks a 429 from the limits: code rate_limited, type client_error, and
//  a Retry-After from 1 to max_retry_after seconds.
void
quota_assert_429 (const http_resp_t *r, long max_retry_after);

typedef struct {
    char url[160];
    char auth[200];
    char body[8192];
    pthread_t thread;
    bool running;          //  Thread made, not joined
    atomic_bool stop;      //  Set: hang up
    atomic_bool started;   //  First body bytes arrived
    atomic_bool finished;  //  The transfer is over
    atomic_long status;    //  From the status line
    char headers[2048];    //  Response headers
} quota_stream_t;

//  Starts POST base/v1/agent/run/stream echoing `words` words (with the
//  local/echo provider's delay each) on a thread of its own, and waits up
//  to timeout_ms for its answer to begin.  Returns the HTTP status (0: no
//  answer in time).  A 200 stream stays open until quota_stream_stop.
long
quota_stream_start (quota_stream_t *s, const char *base, const char *token, int words,
                    int timeout_ms);

//  Hangs up (if still open) and joins the thread.
void
quota_stream_stop (quota_stream_t *s);

#endif
