/*  =========================================================================
    server - the HTTP front: civetweb, routing, auth, per-thread sockets

    Each civetweb worker thread owns one bus_front_t (made on the thread's
    first request, destroyed in exit_thread); handlers get it in r->bus and
    never share it.  server_* functions are called from the main thread.
    =========================================================================
*/
#ifndef CG_SERVER_H
#define CG_SERVER_H

#include "config.h"
#include "http.h"

typedef int (route_fn) (http_req_t *r);

#define ROUTE_GET 0x1u
#define ROUTE_POST 0x2u
#define ROUTE_DELETE 0x4u

typedef struct {
    const char *path;  //  Exact path ("*" = one segment), or a prefix ending in '/'
    bool prefix;       //  Match path as a prefix
    bool public_;      //  No authentication (health, ready)
    bool local;        //  Answered by the front alone, no broker
    unsigned scope;    //  SCOPE_* needed, 0 = any valid credential
    route_fn *get;     //  Handlers by method; NULL = 405
    route_fn *post;
    route_fn *del;
} route_t;

//  Starts civetweb with the routes (a table ending in a zeroed entry, which
//  must outlive the server).  Returns NULL and a sentence in err on failure.
//  Caller owns the return value and must server_stop it.
server_t *
server_start (const cg_config_t *cfg, const route_t *routes, char *err, size_t errlen);

//  Port actually bound (useful with port 0).
int
server_port (const server_t *self);

//  Requests in flight now.
int
server_inflight (const server_t *self);

//  True once shutdown has begun.
bool
server_draining (const server_t *self);

//  The calling civetweb thread's own broker socket, made on first use
//  (lent; the thread's exit closes it).  NULL if it cannot be made.
bus_front_t *
server_thread_bus (struct mg_connection *conn);

//  The front's connection gate (lent).
typedef struct gate_t gate_t;
gate_t *
server_gate (server_t *self);

//  The front's rate limits (lent).
typedef struct ratelimit_front_t ratelimit_front_t;
ratelimit_front_t *
server_limits (server_t *self);

//  True once the drain budget is spent: handlers still waiting on work
//  must interrupt it and return.
bool
server_stopping (const server_t *self);

//  Refuses new requests (503), waits up to drainTimeoutMs for those in
//  flight, interrupts the rest, stops civetweb, then frees.
void
server_stop (server_t **self_p);

#endif
