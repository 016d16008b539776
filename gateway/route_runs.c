/*  =========================================================================
    route_runs - what the HTTP run routes share (see route_runs.h)
    =========================================================================
*/
#include "route_runs.h"

#include "log.h"

#include <stdio.h>
#include <string.h>

void
route_runs_init (http_req_t *r, run_call_t *c)
{
    run_call_init (c, r->bus, r->config->request_timeout_ms);
}

int
route_runs_refuse (http_req_t *r, const run_check_t *chk)
{
    if (!chk->status)
        return 0;
    return http_send_error (r, chk->status, chk->code, chk->message,
                            chk->param[0] ? chk->param : NULL);
}

int
route_runs_start (http_req_t *r, run_call_t *c)
{
    if (run_call_send (c, r->config->request_timeout_ms))
        return http_send_error (r, 503, "service_unavailable",
                                "The broker is not taking requests", NULL);
    return 0;
}

void
route_runs_abort (http_req_t *r, run_call_t *c)
{
    //  While the gateway shuts down, the session records it as interrupted.
    bool shutdown = server_draining (r->server);
    run_call_abort (c, shutdown, r->config->control_timeout_ms);
    log_info ("http", "%s aborted: %s", c->run_id,
              shutdown ? "the gateway is stopping" : "the client went away");
}

//  The drain budget is spent: interrupt our run and answer 503.
static run_ev_t
s_interrupt (http_req_t *r, run_call_t *c)
{
    route_runs_abort (r, c);
    return run_call_fail (c, 503, "service_unavailable",
                          "The gateway stopped before the run finished");
}

//  We stop waiting for a run: abort it and answer 503.
static run_ev_t
s_give_up (http_req_t *r, run_call_t *c)
{
    route_runs_abort (r, c);
    return run_call_fail (c, 503, "service_unavailable",
                          "The run did not finish in time");
}

run_ev_t
route_runs_collect (http_req_t *r, run_call_t *c)
{
    while (true) {
        int64_t left = run_call_left (c);
        if (left <= 0)
            return s_give_up (r, c);
        //  Wake now and then to notice a gateway that is stopping.
        run_ev_t ev = run_call_next (c, left < 250 ? (int) left : 250);
        if (ev == RUN_EV_DONE || ev == RUN_EV_ERROR)
            return ev;
        if (ev == RUN_EV_IDLE && server_stopping (r->server))
            return s_interrupt (r, c);
    }
}

run_ev_t
route_runs_stream_next (http_req_t *r, run_call_t *c, bool *begun)
{
    int keepalive = r->config->sse_keepalive_ms;
    while (true) {
        if (run_call_left (c) <= 0)
            return s_give_up (r, c);
        int slice = keepalive < 250 ? keepalive : 250;
        int64_t idle_until = zclock_mono () + keepalive;
        run_ev_t ev = RUN_EV_IDLE;
        while (ev == RUN_EV_IDLE && zclock_mono () < idle_until
               && run_call_left (c) > 0) {
            if (server_stopping (r->server))
                return s_interrupt (r, c);
            int64_t rest = idle_until - zclock_mono ();
            ev = run_call_next (c, rest < slice ? (int) (rest > 0 ? rest : 1) : slice);
        }
        if (ev != RUN_EV_IDLE)
            return ev;
        if (run_call_left (c) <= 0)
            continue;  //  The loop's head gives up
        if (!*begun) {
            http_stream_begin (r);
            *begun = true;
        }
        if (!http_stream_chunk (r, ": keep-alive\n\n", 14)) {
            route_runs_abort (r, c);
            return RUN_EV_GONE;
        }
    }
}

int
route_runs_send_error (http_req_t *r, const run_call_t *c)
{
    char headers[64] = "";
    if (c->err.status == 429)
        snprintf (headers, sizeof (headers), "Retry-After: %lld\r\n",
                  (long long) (c->retry_after > 0 ? c->retry_after : 1));
    return http_send_error_h (r, c->err.status, c->err.code, c->err.message,
                              c->err.param[0] ? c->err.param : NULL,
                              headers[0] ? headers : NULL);
}
