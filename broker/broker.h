/*  =========================================================================
    broker - routes requests to services and fans events out

    A czmq actor.  It binds a ROUTER on the requests endpoint, where fronts
    (gateway threads) and workers (actors) both connect with DEALERs, and an
    XPUB on the events endpoint for taps and watchers.  Requests are routed
    by service name to one of that service's live workers; a worker is live
    while it heartbeats.  A request with a session key goes to the worker
    ranked first for that key (rendezvous hashing), so a session's requests
    and a run's abort stay on one worker while the workers stay the same;
    a request without one goes round-robin.  A request for a service with
    no live worker is answered at once with status 503 service_unavailable.
    Wire protocol: schemas/bus_proto.h and schemas/README.md.

    Pipe commands: $TERM (stop).  The actor signals 0 once bound, or 1 if
    an endpoint could not be bound (it then returns at once, with
    config.failed set).
    =========================================================================
*/
#ifndef CG_BROKER_H
#define CG_BROKER_H

#include <czmq.h>

typedef struct {
    const char *requests;  //  ROUTER endpoint to bind (required)
    const char *events;    //  XPUB endpoint to bind, or NULL for none
    int heartbeat_ms;      //  Heartbeat interval to workers
    int liveness;          //  Missed heartbeats before a worker is dead
    bool failed;           //  Set by the actor before it signals, if it
                           //  could not bind; it has then already returned
} broker_config_t;

//  zactor_new (broker_actor, &config): config is read before the signal and
//  need not outlive the call; check config.failed after it returns.
void
broker_actor (zsock_t *pipe, void *args);

#endif
