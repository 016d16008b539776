/*  =========================================================================
    actor - the loop every service actor shares

    An actor is a czmq zactor that serves one service on the broker.  Its
    body calls actor_run () with a definition: the size of its state, init
    and fini for it, and a table of the request types it serves with their
    handlers.  actor_run owns the state's memory, the zloop, the pipe
    ($TERM), the bus_worker (registration, heartbeats) and the dispatch of
    validated requests by type.  Actors add what else they wait on to that
    loop from init: timers (zloop_timer), sockets of their own
    (zloop_reader) and raw fds (zloop_poller with a zmq_pollitem_t {NULL,
    fd}).  Every service actor is built on it: system, session and
    session.read, ratelimit, browser (Chromium's pipes as pollers), run (a
    curl_loop: libcurl's sockets as one epoll fd and its timeout as a
    timer; its tool-call DEALER as a reader, one one-shot timer re-armed
    for the runs' deadlines, and the after_requests hook to start at once
    the transfers its requests asked for) and channel (a curl_loop for the
    platforms' calls, its own DEALER for runs, a ticker).  The broker is not: it is the other end of the
    worker protocol (see broker/broker.c).

    One teardown: actor_run allocates an actor's state (zeroed) and frees
    it; fini is the only place what init made in it is freed.  fini runs
    after $TERM, while the worker and the loop still exist (so it may still
    publish, e.g. a run ending as aborted), and also when init fails, on
    what init made before it failed.

    Contract kept from czmq: the actor signals 0 once initialised (1 if it
    could not start, then returns at once), and returns when it gets $TERM.
    =========================================================================
*/
#ifndef CG_ACTOR_H
#define CG_ACTOR_H

#include <czmq.h>

#include "bus_front.h"
#include "bus_worker.h"
#include "mp.h"

typedef struct actor_settings actor_settings_t;  //  actors/settings.h

//  What every actor gets from its starter.  Read before the actor signals;
//  settings must outlive the actor.
typedef struct {
    const char *broker;                //  Broker requests endpoint
    const actor_settings_t *settings;  //  What the actors read (read only)
    bool failed;                       //  Set before signalling if start failed
} actor_args_t;

//  A request type an actor serves, and its handler, which must reply (or
//  arrange to) exactly once.
typedef struct {
    const char *type;  //  MT_* request type
    void (*handle) (void *state, bus_worker_t *worker, bus_request_t *req);
} actor_route_t;

typedef struct {
    const char *service;  //  Service name to register
    size_t size;          //  Bytes of state actor_run allocates, zeroed
    //  Fills in the state; 0, or -1 if the actor cannot start (fini then
    //  frees what it made).
    int (*init) (void *state, const actor_args_t *args, zloop_t *loop,
                 bus_worker_t *worker);
    //  The request types served, ending with {NULL, NULL}; any other is
    //  answered 400, "Unknown <service> request".
    const actor_route_t *routes;
    //  Optional: frees what init made in the state (actor_run frees the
    //  state itself); accepts a state that init filled only in part.
    void (*fini) (void *state);
    //  Optional: called after each batch of requests, before the loop polls
    //  again, for work the requests made due at once (the run actor starts
    //  libcurl's transfers there rather than after another poll).
    void (*after_requests) (void *state);
} actor_def_t;

//  Runs the actor until $TERM.  Call from the zactor body.
void
actor_run (zsock_t *pipe, actor_args_t *args, const actor_def_t *def);

//  Starts w as a reply's body: a map, ended by actor_reply_map.
void
actor_reply_begin (mp_writer_t *w);

//  Ends the map w holds, sends it to req as its reply of type with status
//  200 (ENVELOPE_OK), and frees w.
void
actor_reply_map (bus_worker_t *worker, const bus_request_t *req, const char *type,
                 mp_writer_t *w);

//  Handles a message on an actor's own DEALER: waiter is what the actor
//  filed under key, the message's correlation id, in the table it gave
//  actor_front_drain (NULL for an event, or a reply nobody waits for).
//  The message is freed after it.
typedef void (actor_front_fn) (void *arg, bus_msg_t *msg, const char *key, void *waiter);

//  Reads what is queued on front (a DEALER of the actor's own, on which it
//  asks other services), up to 64 messages so the loop is not starved,
//  and hands each to fn with the value waiting holds under its correlation
//  id (replies only).
void
actor_front_drain (bus_front_t *front, zhashx_t *waiting, actor_front_fn *fn, void *arg);

//  The values of table in a list of their own, in the table's order, to
//  walk while the walk removes them from table (which a zhashx cursor does
//  not survive).  Caller owns the list, not the values, and must destroy
//  it when done.
zlistx_t *
actor_hash_values (zhashx_t *table);

//  Starts a service actor by name ("system", ...).  Returns NULL if the name
//  is unknown or the actor could not start.  Caller owns the return value
//  and must zactor_destroy it.
zactor_t *
actor_start (const char *name, actor_args_t *args);

//  Names actor_start knows, NULL-terminated.
const char *const *
actor_names (void);

#endif
