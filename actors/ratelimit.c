/*  =========================================================================
    ratelimit - buckets, slots and leases, authoritative for every front
    =========================================================================
*/
#include "ratelimit.h"
#include "envelope.h"
#include "msg_names.h"

#include "actor.h"
#include "settings.h"
#include "log.h"

#include <math.h>

//  Idle state older than this is forgotten (a full bucket and no lease
//  is the same as no state at all).
#define RL_FORGET_MS 120000
//  How often expired leases and forgotten state are swept.
#define RL_SWEEP_MS 1000
//  Bounds on what fronts may make us hold.
#define RL_MAX_PRINCIPALS 100000
#define RL_MAX_ADDRESSES 100000
#define RL_MAX_HOLDERS 1024

//  ---- Token bucket ------------------------------------------------------------

static int
s_burst (int rate, int burst)
{
    return burst > 0 ? burst : rate;
}

void
rl_bucket_init (rl_bucket_t *b, int rate, int burst, int64_t now_ms)
{
    b->tokens = (double) s_burst (rate, burst);
    b->at_ms = now_ms;
}

void
rl_bucket_refill (rl_bucket_t *b, int rate, int burst, int64_t now_ms)
{
    if (now_ms > b->at_ms && rate > 0) {
        b->tokens += (double) (now_ms - b->at_ms) * rate / 60000.0;
        b->at_ms = now_ms;
    }
    double cap = (double) s_burst (rate, burst);
    if (b->tokens > cap)
        b->tokens = cap;
}

int
rl_bucket_take (rl_bucket_t *b, int rate, int burst, int want, bool fair, int64_t now_ms)
{
    rl_bucket_refill (b, rate, burst, now_ms);
    //  A hair under a whole token counts as one: floating-point drift must
    //  not cost the last token of a minute.
    int avail = (int) floor (b->tokens + 1e-9);
    if (want <= 0 || avail <= 0)
        return 0;
    int n = want < avail ? want : avail;
    if (fair && n > avail / 2)
        n = avail / 2 > 0 ? avail / 2 : 1;
    b->tokens -= n;
    if (b->tokens < 0)
        b->tokens = 0;
    return n;
}

void
rl_bucket_give (rl_bucket_t *b, int rate, int burst, int n)
{
    if (n <= 0)
        return;
    b->tokens += n;
    double cap = (double) s_burst (rate, burst);
    if (b->tokens > cap)
        b->tokens = cap;
}

int64_t
rl_bucket_wait_ms (const rl_bucket_t *b, int rate)
{
    if (b->tokens + 1e-9 >= 1.0 || rate <= 0)
        return 0;
    return (int64_t) ceil ((1.0 - b->tokens) * 60000.0 / rate);
}

int64_t
rl_bucket_reset_ms (const rl_bucket_t *b, int rate, int burst)
{
    double missing = (double) s_burst (rate, burst) - b->tokens;
    if (missing <= 0 || rate <= 0)
        return 0;
    return (int64_t) ceil (missing * 60000.0 / rate);
}

//  ---- State ---------------------------------------------------------------------

//  One front's hold on one principal's slots.
typedef struct lease_s {
    char holder[64];  //  Front process id
    int slots;        //  Slots it holds
    int64_t expires;  //  zclock_mono () when they lapse
    struct lease_s *next;
} lease_t;

//  One credential.
typedef struct {
    rl_bucket_t bucket;     //  Its rate bucket
    int rate, burst, conc;  //  Limits as the fronts last sent them
    int held;               //  Sum of its leases' slots
    lease_t *leases;        //  Owned list
    int64_t seen;           //  Last request about it
} principal_t;

//  One client address's allowance of failed authentications.
typedef struct {
    rl_bucket_t bucket;
    int limit;              //  Per minute, as last sent
    int64_t blocked_until;  //  For logging the start of a block once
} address_t;

typedef struct {
    zhashx_t *principals;  //  principal -> principal_t (owned)
    zhashx_t *addresses;   //  address -> address_t (owned)
    int ttl_ms;            //  Lease life
} self_t;

static void
s_principal_free (void **item)
{
    principal_t *p = (principal_t *) *item;
    if (!p)
        return;
    while (p->leases) {
        lease_t *next = p->leases->next;
        free (p->leases);
        p->leases = next;
    }
    free (p);
    *item = NULL;
}

static void
s_plain_free (void **item)
{
    free (*item);
    *item = NULL;
}

//  Drops p's lapsed leases, giving their slots back.
static void
s_expire (principal_t *p, int64_t now)
{
    for (lease_t **l = &p->leases; *l;) {
        if ((*l)->expires <= now) {
            lease_t *gone = *l;
            p->held -= gone->slots;
            if (gone->slots > 0)
                log_info ("ratelimit", "lease of %s on %d slot(s) lapsed", gone->holder,
                          gone->slots);
            *l = gone->next;
            free (gone);
        }
        else
            l = &(*l)->next;
    }
    if (p->held < 0)
        p->held = 0;
}

static int
s_sweep (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    int64_t now = zclock_mono ();
    zlistx_t *gone = zlistx_new ();
    zlistx_set_destructor (gone, s_plain_free);
    for (principal_t *p = (principal_t *) zhashx_first (self->principals); p;
         p = (principal_t *) zhashx_next (self->principals)) {
        s_expire (p, now);
        if (p->rate > 0)
            rl_bucket_refill (&p->bucket, p->rate, p->burst, now);
        bool full =
            p->rate <= 0 || rl_bucket_reset_ms (&p->bucket, p->rate, p->burst) == 0;
        if (!p->leases && full && now - p->seen > RL_FORGET_MS)
            zlistx_add_end (gone,
                            strdup ((const char *) zhashx_cursor (self->principals)));
    }
    for (char *k = (char *) zlistx_first (gone); k; k = (char *) zlistx_next (gone))
        zhashx_delete (self->principals, k);
    zlistx_purge (gone);
    for (address_t *a = (address_t *) zhashx_first (self->addresses); a;
         a = (address_t *) zhashx_next (self->addresses)) {
        rl_bucket_refill (&a->bucket, a->limit, 0, now);
        if (rl_bucket_reset_ms (&a->bucket, a->limit, 0) == 0)
            zlistx_add_end (gone,
                            strdup ((const char *) zhashx_cursor (self->addresses)));
    }
    for (char *k = (char *) zlistx_first (gone); k; k = (char *) zlistx_next (gone))
        zhashx_delete (self->addresses, k);
    zlistx_destroy (&gone);
    return 0;
}

static int
s_init (void *state, const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) state;
    const ratelimit_settings_t *settings = &args->settings->ratelimit;
    self->ttl_ms = settings->lease_ms > 0 ? settings->lease_ms : 5000;
    self->principals = zhashx_new ();
    self->addresses = zhashx_new ();
    if (!self->principals || !self->addresses)
        return -1;
    zhashx_set_destructor (self->principals, s_principal_free);
    zhashx_set_destructor (self->addresses, s_plain_free);
    zloop_timer (loop, RL_SWEEP_MS, 0, s_sweep, self);
    return 0;
}

static void
s_fini (void *state)
{
    self_t *self = (self_t *) state;
    zhashx_destroy (&self->principals);
    zhashx_destroy (&self->addresses);
}

//  ---- Requests --------------------------------------------------------------------

//  A non-negative integer field, clamped to max; 0 when absent.
static int
s_int (const msgpack_object *body, const char *key, int max)
{
    int64_t v = 0;
    if (!mp_get_int (body, key, &v) || v < 0)
        return 0;
    return v > max ? max : (int) v;
}

//  Longer than 100 lines on purpose: one lease answers a holder's rate
//  tokens and its concurrency slots in one reply, from one principal's
//  state: the principal's limits, its bucket, then the holder's lease,
//  each section a few lines in the order the reply lists them.
static void
s_lease (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    const msgpack_object *b = req->body.root;
    char holder[64], name[64];
    if (mp_copy_str (b, MK_holder, holder, sizeof (holder))
        || mp_copy_str (b, MK_principal, name, sizeof (name))) {
        bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "holder and principal must be short strings", NULL);
        return;
    }
    int rate = s_int (b, "rateLimit", 100000000);
    int burst = s_int (b, "burst", 100000000);
    int conc = s_int (b, "maxConcurrent", 1000000);
    int take = s_int (b, "take", 1000000);
    int give = s_int (b, "giveBack", 1000000);
    int want = s_int (b, "slots", 1000000);
    int64_t now = zclock_mono ();

    principal_t *p = (principal_t *) zhashx_lookup (self->principals, name);
    if (!p) {
        if (zhashx_size (self->principals) >= RL_MAX_PRINCIPALS) {
            bus_worker_error (worker, req, ENVELOPE_UNAVAILABLE, "service_unavailable",
                              "The rate limiter tracks too many credentials", NULL);
            return;
        }
        p = (principal_t *) calloc (1, sizeof (principal_t));
        if (!p) {
            bus_worker_error (worker, req, ENVELOPE_INTERNAL, "internal_error",
                              "Out of memory", NULL);
            return;
        }
        rl_bucket_init (&p->bucket, rate, burst, now);
        zhashx_insert (self->principals, name, p);
    }
    p->seen = now;
    //  The fronts' limits win (they read the token entries); a change of
    //  limit keeps the tokens already in the bucket, within the new size.
    p->rate = rate;
    p->burst = burst;
    p->conc = conc;
    s_expire (p, now);

    //  Rate tokens.
    int granted = take;
    if (rate > 0) {
        rl_bucket_refill (&p->bucket, rate, burst, now);
        rl_bucket_give (&p->bucket, rate, burst, give);
        granted = rl_bucket_take (&p->bucket, rate, burst, take, true, now);
    }

    //  Concurrency slots: want is what the holder means to hold from now.
    lease_t *l = p->leases;
    while (l && strcmp (l->holder, holder))
        l = l->next;
    if (!l && want > 0) {
        int holders = 0;
        for (lease_t *x = p->leases; x; x = x->next)
            holders++;
        l = holders < RL_MAX_HOLDERS ? (lease_t *) calloc (1, sizeof (lease_t)) : NULL;
        if (l) {
            snprintf (l->holder, sizeof (l->holder), "%s", holder);
            l->next = p->leases;
            p->leases = l;
        }
    }
    int slots = 0;
    if (l) {
        int others = p->held - l->slots;
        int room = conc > 0 ? conc - others : want;
        slots = want < room ? want : room;
        if (slots < 0)
            slots = 0;
        p->held = others + slots;
        l->slots = slots;
        l->expires = now + self->ttl_ms;
        if (slots == 0) {
            //  Nothing held: forget the lease.
            for (lease_t **pl = &p->leases; *pl; pl = &(*pl)->next)
                if (*pl == l) {
                    *pl = l->next;
                    free (l);
                    break;
                }
        }
    }

    mp_writer_t w;
    actor_reply_begin (&w);
    mp_kv_int (&w, MK_granted, granted);
    mp_kv_int (&w, MK_slots, slots);
    mp_kv_int (&w, MK_ttlMs, self->ttl_ms);
    mp_kv_int (&w, MK_remaining,
               rate > 0 ? (int64_t) floor (p->bucket.tokens + 1e-9) : 0);
    mp_kv_int (&w, MK_resetMs,
               rate > 0 ? rl_bucket_reset_ms (&p->bucket, rate, burst) : 0);
    mp_kv_int (&w, MK_retryAfterMs,
               rate > 0 && granted < take ? rl_bucket_wait_ms (&p->bucket, rate) : 0);
    actor_reply_map (worker, req, MT_RATELIMIT_LEASE_OK, &w);
}

static void
s_auth_fail (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    const msgpack_object *b = req->body.root;
    char addr[64];
    if (mp_copy_str (b, MK_address, addr, sizeof (addr))) {
        bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "address must be a short string", "address");
        return;
    }
    int limit = s_int (b, "limit", 1000000);
    int64_t now = zclock_mono ();
    bool blocked = false;
    int64_t retry = 0;
    if (limit > 0) {
        address_t *a = (address_t *) zhashx_lookup (self->addresses, addr);
        if (!a && zhashx_size (self->addresses) < RL_MAX_ADDRESSES) {
            a = (address_t *) calloc (1, sizeof (address_t));
            if (a) {
                rl_bucket_init (&a->bucket, limit, 0, now);
                zhashx_insert (self->addresses, addr, a);
            }
        }
        if (a) {
            a->limit = limit;
            blocked = rl_bucket_take (&a->bucket, limit, 0, 1, false, now) == 0;
            if (blocked) {
                retry = rl_bucket_wait_ms (&a->bucket, limit);
                if (a->blocked_until <= now)
                    log_warn ("ratelimit",
                              "address %s blocked for %lld ms: more than %d "
                              "failed authentications a minute",
                              addr, (long long) retry, limit);
                a->blocked_until = now + retry;
            }
        }
        else {
            //  Table full (a flood from many addresses): refuse them all
            //  for a moment rather than forget who failed.
            blocked = true;
            retry = 1000;
        }
    }
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_kv_bool (&w, MK_blocked, blocked);
    mp_kv_int (&w, MK_retryAfterMs, retry);
    actor_reply_map (worker, req, MT_RATELIMIT_AUTH_FAIL_OK, &w);
}

static const actor_route_t s_routes[] = {
    {MT_RATELIMIT_LEASE, s_lease}, {MT_RATELIMIT_AUTH_FAIL, s_auth_fail}, {NULL, NULL}};

static const actor_def_t s_def = {.service = "ratelimit",
                                  .size = sizeof (self_t),
                                  .init = s_init,
                                  .routes = s_routes,
                                  .fini = s_fini};

void
ratelimit_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
