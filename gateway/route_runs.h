/*  =========================================================================
    route_runs - what the HTTP run routes share: starting a run_call from a
    request, waiting for its events on the thread's socket, and answering
    its failures

    The routes themselves are route_openai.c (POST /v1/chat/completions,
    OpenAI's format) and route_agent.c (POST /v1/agent/run and /stream,
    OpenClaw's).  Runs are started and read by runs/run_call.h, which the
    WebSocket front and the channels use too; this module adds what only
    HTTP has: a civetweb thread that blocks on its run, SSE keep-alives,
    and the gateway's drain.
    Nothing is sent to the client until the first event, so a run that
    fails before any output is answered with a real HTTP status.  While
    streaming, an SSE comment every sseKeepaliveMs finds clients that went
    away; a failed write aborts the run, which closes the upstream
    transfer.
    =========================================================================
*/
#ifndef CG_ROUTE_RUNS_H
#define CG_ROUTE_RUNS_H

#include "routes.h"
#include "run_call.h"

//  Readies c for a run of r's (on r's thread socket, with the configured
//  request timeout).
void
route_runs_init (http_req_t *r, run_call_t *c);

//  Sends the refusal of a run_check, if any.  Returns its status or 0.
int
route_runs_refuse (http_req_t *r, const run_check_t *chk);

//  Sends c's packed start.  Returns 0, or the status of the 503 it sent.
int
route_runs_start (http_req_t *r, run_call_t *c);

//  Asks the run actor to stop c's run (client gone, or we gave up), and
//  logs why.
void
route_runs_abort (http_req_t *r, run_call_t *c);

//  Waits for the end of a run, collecting its text.  Returns RUN_EV_DONE
//  or RUN_EV_ERROR (a 503 after giving up at the deadline, or when the
//  gateway's drain budget is spent).
run_ev_t
route_runs_collect (http_req_t *r, run_call_t *c);

//  The next event of a streamed run.  While idle it sends an SSE comment
//  every sseKeepaliveMs: that keeps proxies from timing out and shows us a
//  client that left, whose run is then aborted (RUN_EV_GONE).  A run
//  silent for a whole interval before its first event begins the stream
//  (*begun) so that a client gone early is noticed too; failures before
//  that still get real HTTP statuses.  Gives up at the deadline
//  (RUN_EV_ERROR).
run_ev_t
route_runs_stream_next (http_req_t *r, run_call_t *c, bool *begun);

//  Answers c's error as an HTTP error (Retry-After on a 429).  Returns
//  its status.
int
route_runs_send_error (http_req_t *r, const run_call_t *c);

#endif
