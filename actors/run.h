/*  =========================================================================
    run - owns every agent run in flight

    Service "run".  Accepts RUN_START (-> RUN_ACCEPTED | ERROR, then the
    events chat.delta*, chat.done | chat.error) and RUN_ABORT (->
    RUN_ABORTED); see schemas/messages.def.  Events go to the front that
    started the run and to the event bus.  Provider calls go through one
    libcurl multi handle driven by this actor's own poll loop, so one thread
    carries thousands of upstream streams.  A run that fails before its first
    delta moves on to the agent's fallback models.
    Start: zactor_new (run_actor, &actor_args).
    =========================================================================
*/
#ifndef CG_RUN_H
#define CG_RUN_H

#include <czmq.h>

//  What the run actor reads (besides the catalog of actors/provider.h).
typedef struct {
    int request_timeout_ms;          //  Longest run deadline a request may ask
} run_settings_t;

void
run_actor (zsock_t *pipe, void *args);

#endif
