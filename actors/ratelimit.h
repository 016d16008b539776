/*  =========================================================================
    ratelimit - the rate-limiter actor: one truth for every front

    Service "ratelimit".  Holds, per credential principal (auth's name for
    a credential, never the secret), the authoritative token bucket of its
    rate limit and the count of its concurrency slots; and, per client
    address, a bucket of allowed authentication failures.  Accepts
    RATELIMIT_LEASE (-> RATELIMIT_LEASE_OK) and RATELIMIT_AUTH_FAIL
    (-> RATELIMIT_AUTH_FAIL_OK); see schemas/messages.def.

    Fronts do not ask once per request: each gateway process holds a lease
    per principal (a few rate tokens and a number of slots) and comes back
    only when it runs out, to renew, or to give back what it does not use
    (gateway/ratelimit_front.h).  Tokens leave the bucket when granted, so
    the sum over all fronts never exceeds the limit.  Slots are held per
    lease until it lapses (limits.leaseMs after the holder's last word), so
    a gateway that dies frees its slots within one lease time.

    Run exactly one ratelimit actor per broker: two would split the state
    and each would allow the full limit.  State lives in memory; a restarted
    actor starts with full buckets and learns the leases again from the
    fronts' renewals.
    Start: zactor_new (ratelimit_actor, &actor_args).
    =========================================================================
*/
#ifndef CG_RATELIMIT_H
#define CG_RATELIMIT_H

#include <czmq.h>
#include <stdbool.h>
#include <stdint.h>

//  What the ratelimit actor reads.
typedef struct {
    int lease_ms;  //  Life of a front's lease (limits.leaseMs)
} ratelimit_settings_t;

void
ratelimit_actor (zsock_t *pipe, void *args);

//  ---- Token bucket (pure, for the actor and its tests) ----------------------
//  rate is tokens per minute (> 0), burst the bucket size (<= 0: rate).

typedef struct {
    double tokens;  //  Tokens in the bucket now
    int64_t at_ms;  //  When tokens was last brought up to date
} rl_bucket_t;

//  A full bucket at now_ms.
void
rl_bucket_init (rl_bucket_t *b, int rate, int burst, int64_t now_ms);

//  Adds what rate has dripped in since the last call, up to burst.
void
rl_bucket_refill (rl_bucket_t *b, int rate, int burst, int64_t now_ms);

//  Refills, then takes up to want whole tokens.  With fair set and the
//  bucket low, grants at most half of what is left (at least one), so that
//  several fronts drawing on one bucket end up holding few unused tokens
//  each.  Returns the number taken.
int
rl_bucket_take (rl_bucket_t *b, int rate, int burst, int want, bool fair, int64_t now_ms);

//  Puts n unused tokens back, up to burst.
void
rl_bucket_give (rl_bucket_t *b, int rate, int burst, int n);

//  Milliseconds until the bucket holds one whole token (0 if it does).
int64_t
rl_bucket_wait_ms (const rl_bucket_t *b, int rate);

//  Milliseconds until the bucket is full again.
int64_t
rl_bucket_reset_ms (const rl_bucket_t *b, int rate, int burst);

#endif
