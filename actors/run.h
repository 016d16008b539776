/*  =========================================================================
    run - owns every agent run in flight

    Service "run".  Accepts RUN_START (-> ERROR when refused; otherwise no
    reply: the events chat.delta*, tool.call/tool.result for the tool loop,
    then chat.done | chat.error, or, when the request named replyTo, a
    RUN_RESULT reply to the asker in place of the end event) and RUN_ABORT
    (-> RUN_ABORTED); see schemas/messages.def.  Events go to the front that
    started the run and to the event bus.  Provider calls go through one
    libcurl multi handle whose sockets this actor polls as one epoll fd on
    actor_run's loop, so one thread carries thousands of upstream streams.
    A run that fails before its first delta moves on to the agent's
    fallback models.
    Start: actor_start ("run", &actor_args), or zactor_new (run_actor,
    &actor_args).
    =========================================================================
*/
#ifndef CG_RUN_H
#define CG_RUN_H

#include <czmq.h>

//  What the run actor reads (besides the catalog of actors/provider.h).
typedef struct {
    int request_timeout_ms;  //  Longest run deadline a request may ask
} run_settings_t;

void
run_actor (zsock_t *pipe, void *args);

#endif
