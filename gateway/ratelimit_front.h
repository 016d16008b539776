/*  =========================================================================
    ratelimit_front - a gateway process's side of the limits: leases of
    quota from the ratelimit actor, failed-auth blocks, connections per
    address

    One ratelimit_front_t per gateway process, shared by all its civetweb
    threads: every function here is thread-safe.  It never shares a ZeroMQ
    socket between threads: a caller that may have to ask the actor passes
    its own thread's bus_front_t, and the one background thread it starts
    (the keeper) makes its own.

    Leases.  Per credential principal the front holds a few rate tokens
    (taken from the actor's bucket in batches, so the hot path is a mutex
    and two counters) and a number of concurrency slots.  It asks the actor
    only when it runs out of either: rate tokens come in batches of up to
    max(1, rateLimit/20) (at most 256), never more than half of what the
    bucket still holds, so fronts sharing one bucket end with little unused
    quota each; slots come one at a time, only when every held slot is in
    use, so the sum of slots held by all fronts never exceeds
    maxConcurrent.  A freed slot stays cached for the next request; the
    keeper renews held slots every leaseMs/4 and then keeps at most as many
    as were in use at once during the last quarter lease, giving the rest
    (and tokens unused for that long) back.  Slots lapse at the actor leaseMs after the last
    renewal, so a gateway that dies frees them within one lease time.

    Actor unreachable: fail open.  A lease call that fails (no live
    ratelimit worker, or no answer in 1 s) lets the request through and
    opens the way for that principal for 1 s, with one warning line per
    principal per minute; /ready reports the missing actor.

    WebSocket (gateway/ws_methods.c): ratelimit_front_acquire when a
    counted method call arrives, ratelimit_front_ws_error when it is
    refused, and ratelimit_front_release when the call is over (a run: when
    the run ends, gateway/ws_hub.c).
    =========================================================================
*/
#ifndef CG_RATELIMIT_FRONT_H
#define CG_RATELIMIT_FRONT_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "config.h"
#include "bus_front.h"

typedef struct ratelimit_front_t ratelimit_front_t;

typedef enum {
    RL_OK = 0,            //  Allowed
    RL_RATE = 1,          //  Over the rate limit
    RL_CONCURRENCY = 2,   //  Over the concurrency limit
    RL_AUTH_BLOCKED = 3,  //  Too many failed authentications
} rl_verdict_t;

//  One request's dealings with the limits.  Lives on the caller's stack.
typedef struct {
    rl_verdict_t verdict;  //  RL_OK or why refused
    int retry_after;       //  Seconds, when refused
    void *slot;            //  Slot to give back (NULL: none held)
    char headers[256];     //  X-RateLimit-* (and Retry-After when
                           //  refused) as "Name: value\r\n" lines
} rl_ticket_t;

//  Makes the front's state for cfg's credentials and starts the keeper
//  thread when any limit is on.  cfg must outlive it.  Caller owns the
//  return value and must ratelimit_front_destroy it.  NULL on failure.
ratelimit_front_t *
ratelimit_front_new (const cg_config_t *cfg);

//  Stops the keeper, which first gives back every unused token and idle
//  slot, then frees.  Call when no request is in flight any more.
void
ratelimit_front_destroy (ratelimit_front_t **self_p);

//  Checks principal's rate and concurrency limits and takes a rate token
//  and a slot.  bus is the calling thread's own socket (may be NULL: no
//  lease can be asked for then, which fails open), and must carry nothing
//  else the caller waits for: a lease call drops whatever else arrives on
//  it meanwhile (the WebSocket hub keeps a socket for leases alone).  Fills t (headers
//  included, for allowed and refused alike).  Returns 0 if allowed (then
//  ratelimit_front_release (t) when the request or run is over), or 429.
int
ratelimit_front_acquire (ratelimit_front_t *self, bus_front_t *bus, const char *principal,
                         rl_ticket_t *t);

//  Gives back the slot t holds, if any.  Safe to call twice.
void
ratelimit_front_release (ratelimit_front_t *self, rl_ticket_t *t);

//  If addr is blocked after failed authentications, fills t (verdict
//  RL_AUTH_BLOCKED, Retry-After) and returns 429; else 0.  No I/O.
int
ratelimit_front_check_address (ratelimit_front_t *self, const char *addr, rl_ticket_t *t);

//  Counts one failed authentication from addr at the actor (one round trip
//  on bus).  Returns 429 with t filled when addr is now over its limit,
//  else 0 (also when the actor cannot be asked: fail open).
int
ratelimit_front_auth_failed (ratelimit_front_t *self, bus_front_t *bus, const char *addr,
                             rl_ticket_t *t);

//  One sentence for the client about a refusal.
const char *
ratelimit_front_message (const rl_ticket_t *t);

//  The WebSocket error reply for a refused call:
//  {"type":"error","id":<id>,"error":{code:"rate_limited",message,
//  type:"client_error",param:null,retryAfter:<s>}}.  id is copied (NULL:
//  null).  Caller owns the return value (cJSON_Delete).
cJSON *
ratelimit_front_ws_error (const rl_ticket_t *t, const cJSON *id);

#endif
