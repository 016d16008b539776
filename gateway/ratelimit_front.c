/*  =========================================================================
    ratelimit_front - leases of quota, failed-auth blocks and connection
    counts for one gateway process
    =========================================================================
*/
#include "ratelimit_front.h"
#include "channel.h"
#include "msg_names.h"

#include "error.h"
#include "log.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#define RL_CALL_TIMEOUT_MS 1000  //  A lease call gives up after this
#define RL_OPEN_MS 1000          //  Fail open this long after a failure
#define RL_WARN_EVERY_MS 60000   //  One fail-open warning per principal
#define RL_MAX_TRACKED 10000     //  Addresses blocked

//  What the front holds for one principal.  The lock guards the counters
//  and is never held across I/O; io serialises round trips to the actor
//  for the principal (lock order: io, then lock).
typedef struct {
    char principal[64];     //  "token:main", "token:<name>", ...
    int rate, burst, conc;  //  Its limits (0 = off)
    int batch;              //  Rate tokens asked for at a time
    pthread_mutex_t lock;
    pthread_mutex_t io;
    int tokens;            //  Rate tokens held
    int slots;             //  Slots leased
    int in_use;            //  Slots in use by requests
    int peak;              //  Most in use since the last keep
    int64_t valid_until;   //  Leased slots are ours until then
    int64_t renew_at;      //  Keeper renews the slots from then
    int remaining;         //  Bucket tokens at the last reply
    int64_t remaining_at;  //  When that was
    int64_t open_until;    //  Fail open until then
    int64_t warned_at;     //  Last fail-open warning
    int64_t last_used;     //  Last request
} rl_entry_t;

struct ratelimit_front_t {
    const cg_config_t *config;  //  Read only, not owned
    char holder[64];            //  Our id at the actor
    rl_entry_t *entries;        //  One per credential (owned)
    size_t n_entries;
    bool active;  //  Some rate or concurrency limit on
    //  Keeper thread.
    pthread_t keeper;
    bool keeper_started;
    pthread_mutex_t keeper_lock;
    pthread_cond_t keeper_cond;
    bool stopping;
    //  Addresses blocked after failed authentications.
    pthread_mutex_t addr_lock;
    zhashx_t *blocked;     //  addr -> int64_t until (owned)
    atomic_int n_blocked;  //  Its size, read without the lock
};

static int64_t
s_now (void)
{
    return zclock_mono ();
}

static void
s_free_item (void **item)
{
    free (*item);
    *item = NULL;
}

//  ---- Set-up --------------------------------------------------------------------

static void
s_entry_init (rl_entry_t *e, const char *principal, int rate, int burst, int conc)
{
    memset (e, 0, sizeof (*e));
    snprintf (e->principal, sizeof (e->principal), "%s", principal);
    e->rate = rate;
    e->burst = burst;
    e->conc = conc;
    e->batch = rate / 20;
    if (e->batch < 1)
        e->batch = 1;
    if (e->batch > 256)
        e->batch = 256;
    e->remaining = burst > 0 ? burst : rate;
    pthread_mutex_init (&e->lock, NULL);
    pthread_mutex_init (&e->io, NULL);
}

static void *
s_keeper (void *arg);

ratelimit_front_t *
ratelimit_front_new (const cg_config_t *cfg)
{
    ratelimit_front_t *self =
        (ratelimit_front_t *) calloc (1, sizeof (ratelimit_front_t));
    if (!self)
        return NULL;
    self->config = cfg;
    unsigned char raw[8] = {0};
    if (getrandom (raw, sizeof (raw), 0) != (ssize_t) sizeof (raw))
        memcpy (raw, &self, sizeof (raw) < sizeof (self) ? sizeof (raw) : sizeof (self));
    snprintf (self->holder, sizeof (self->holder),
              "gw-%d-%02x%02x%02x%02x%02x%02x%02x%02x", (int) getpid (), raw[0], raw[1],
              raw[2], raw[3], raw[4], raw[5], raw[6], raw[7]);
    //  Every principal auth can produce: the main token, each named token,
    //  the password and anonymous (auth none); and each generic webhook's
    //  hook ("hook:<name>", its own token, docs/channels.md#generic-webhook).
    const cfg_channel_t *hooks =
        channel_config_find (cfg->channels, cfg->n_channels, "webhook");
    size_t n_hooks = hooks ? hooks->n_hooks : 0;
    self->entries =
        (rl_entry_t *) calloc (cfg->n_tokens + 3 + n_hooks, sizeof (rl_entry_t));
    pthread_mutex_init (&self->keeper_lock, NULL);
    pthread_cond_init (&self->keeper_cond, NULL);
    pthread_mutex_init (&self->addr_lock, NULL);
    self->blocked = zhashx_new ();
    if (!self->entries || !self->blocked) {
        ratelimit_front_destroy (&self);
        return NULL;
    }
    zhashx_set_destructor (self->blocked, s_free_item);
    const char *shared[] = {"token:main", "password", "anonymous"};
    for (int i = 0; i < 3; i++)
        s_entry_init (&self->entries[self->n_entries++], shared[i], cfg->rate_limit,
                      cfg->burst, cfg->max_concurrent);
    for (size_t i = 0; i < cfg->n_tokens; i++) {
        const cfg_token_t *t = &cfg->tokens[i];
        //  Cut to the entry's size here, as auth cuts its principal, so
        //  the two still match for a long name.
        char name[sizeof (self->entries[0].principal)];
        snprintf (name, sizeof (name), "token:%s", t->name);
        //  A token's own rate without its own burst gets a bucket of its
        //  own rate, not the global burst.
        int rate = t->rate_limit >= 0 ? t->rate_limit : cfg->rate_limit;
        int burst = t->burst >= 0 ? t->burst : t->rate_limit >= 0 ? 0 : cfg->burst;
        int conc = t->max_concurrent >= 0 ? t->max_concurrent : cfg->max_concurrent;
        s_entry_init (&self->entries[self->n_entries++], name, rate, burst, conc);
    }
    for (size_t i = 0; i < n_hooks; i++) {
        char name[sizeof (self->entries[0].principal)];
        snprintf (name, sizeof (name), "hook:%.58s", hooks->hooks[i].name);
        s_entry_init (&self->entries[self->n_entries++], name, cfg->rate_limit,
                      cfg->burst, cfg->max_concurrent);
    }
    for (size_t i = 0; i < self->n_entries; i++)
        self->active |= self->entries[i].rate > 0 || self->entries[i].conc > 0;
    if (self->active) {
        if (pthread_create (&self->keeper, NULL, s_keeper, self)) {
            ratelimit_front_destroy (&self);
            return NULL;
        }
        self->keeper_started = true;
    }
    return self;
}

void
ratelimit_front_destroy (ratelimit_front_t **self_p)
{
    ratelimit_front_t *self = *self_p;
    if (!self)
        return;
    if (self->keeper_started) {
        pthread_mutex_lock (&self->keeper_lock);
        self->stopping = true;
        pthread_cond_signal (&self->keeper_cond);
        pthread_mutex_unlock (&self->keeper_lock);
        pthread_join (self->keeper, NULL);
    }
    for (size_t i = 0; i < self->n_entries; i++) {
        pthread_mutex_destroy (&self->entries[i].lock);
        pthread_mutex_destroy (&self->entries[i].io);
    }
    free (self->entries);
    zhashx_destroy (&self->blocked);
    pthread_mutex_destroy (&self->addr_lock);
    pthread_cond_destroy (&self->keeper_cond);
    pthread_mutex_destroy (&self->keeper_lock);
    free (self);
    *self_p = NULL;
}

static rl_entry_t *
s_find (ratelimit_front_t *self, const char *principal)
{
    for (size_t i = 0; i < self->n_entries; i++)
        if (!strcmp (self->entries[i].principal, principal))
            return &self->entries[i];
    return NULL;
}

//  ---- Talking to the actor --------------------------------------------------------

typedef struct {
    int take, give, slots;       //  Asked
    int64_t granted, held, ttl;  //  Answered
    int64_t remaining, reset_ms, retry_ms;
} rl_call_t;

//  Sends the request of type with body w (finished here) to the ratelimit
//  actor and waits RL_CALL_TIMEOUT_MS for its reply.  Returns 0 with reply
//  filled (bus_msg_fini it), or -1.
static int
s_ask (bus_front_t *bus, const char *type, mp_writer_t *w, bus_msg_t *reply)
{
    envelope_t env;
    envelope_init (&env, type);
    env.timeout_ms = RL_CALL_TIMEOUT_MS;
    int rc = bus_front_call (bus, "ratelimit", &env, w->buf.data, w->buf.size,
                             RL_CALL_TIMEOUT_MS, reply);
    mp_writer_fini (w);
    return rc;
}

//  One RATELIMIT_LEASE round trip on bus.  Called with e->io held and
//  e->lock free.  Returns 0 with the answer in c, or -1.
static int
s_call (ratelimit_front_t *self, bus_front_t *bus, rl_entry_t *e, rl_call_t *c)
{
    if (!bus)
        return -1;
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_holder, self->holder);
    mp_kv_str (&w, MK_principal, e->principal);
    mp_kv_int (&w, MK_rateLimit, e->rate);
    mp_kv_int (&w, MK_burst, e->burst);
    mp_kv_int (&w, MK_maxConcurrent, e->conc);
    mp_kv_int (&w, MK_take, c->take);
    mp_kv_int (&w, MK_giveBack, c->give);
    mp_kv_int (&w, MK_slots, c->slots);
    bus_msg_t reply;
    mp_map_end (&w);
    int rc = s_ask (bus, MT_RATELIMIT_LEASE, &w, &reply);
    if (rc)
        return -1;
    const msgpack_object *b = reply.body.root;
    rc = reply.env.status == 200 && mp_get_int (b, MK_granted, &c->granted)
                 && mp_get_int (b, MK_slots, &c->held)
                 && mp_get_int (b, MK_ttlMs, &c->ttl)
                 && mp_get_int (b, MK_remaining, &c->remaining)
                 && mp_get_int (b, MK_resetMs, &c->reset_ms)
                 && mp_get_int (b, MK_retryAfterMs, &c->retry_ms)
             ? 0
             : -1;
    bus_msg_fini (&reply);
    if (rc == 0
        && (c->granted < 0 || c->granted > c->take || c->held < 0 || c->held > c->slots
            || c->ttl <= 0))
        rc = -1;
    return rc;
}

//  Records an answer (with e->lock held).  sent is when the call left: the
//  actor counts the lease from when it got the call, a little later, so
//  counting from sent keeps our view on the safe side.
static void
s_apply (rl_entry_t *e, const rl_call_t *c, int64_t sent)
{
    e->tokens += (int) c->granted;
    e->slots = (int) c->held;
    e->valid_until = sent + c->ttl - c->ttl / 10;
    e->renew_at = sent + c->ttl / 4;
    e->remaining = (int) c->remaining;
    e->remaining_at = s_now ();
}

//  Drops slots whose lease may have lapsed at the actor (e->lock held).
static void
s_expire (rl_entry_t *e, int64_t now)
{
    if (e->slots && now >= e->valid_until)
        e->slots = 0;
}

//  ---- Requests ----------------------------------------------------------------------

//  True if a request can go ahead on what e holds (e->lock held).
static bool
s_fits (const rl_entry_t *e)
{
    return (e->rate <= 0 || e->tokens > 0) && (e->conc <= 0 || e->in_use < e->slots);
}

//  Takes a token and a slot (e->lock held).  Failing open may find
//  neither held: the slot is counted in use all the same, so release
//  stays balanced.
static void
s_consume (rl_entry_t *e, rl_ticket_t *t, int64_t now)
{
    if (e->rate > 0 && e->tokens > 0)
        e->tokens--;
    if (e->conc > 0) {
        e->in_use++;
        if (e->in_use > e->peak)
            e->peak = e->in_use;
        t->slot = e;
    }
    e->last_used = now;
}

//  The X-RateLimit-* lines (e->lock held), and Retry-After when refused.
static void
s_headers (const rl_entry_t *e, rl_ticket_t *t, int64_t now)
{
    size_t n = 0;
    t->headers[0] = 0;
    if (e->rate > 0) {
        //  What the bucket held at our last call, refilled since, plus what
        //  we hold: exact for one front, an estimate with several.
        int cap = e->burst > 0 ? e->burst : e->rate;
        double since = e->remaining_at ? (double) (now - e->remaining_at) : 0;
        double bucket = e->remaining + since * e->rate / 60000.0;
        if (bucket > cap)
            bucket = cap;
        long remaining = t->verdict == RL_RATE ? 0 : (long) bucket + e->tokens;
        if (remaining > cap)
            remaining = cap;
        long reset = (long) ((cap - bucket) * 60.0 / e->rate + 0.999);
        if (reset < 0)
            reset = 0;
        n = (size_t) snprintf (t->headers, sizeof (t->headers),
                               "X-RateLimit-Limit: %d\r\n"
                               "X-RateLimit-Remaining: %ld\r\n"
                               "X-RateLimit-Reset: %ld\r\n",
                               e->rate, remaining, reset);
    }
    if (t->verdict != RL_OK && n < sizeof (t->headers))
        snprintf (t->headers + n, sizeof (t->headers) - n, "Retry-After: %d\r\n",
                  t->retry_after);
}

//  Lets a request through because the actor cannot be asked.
static void
s_fail_open (rl_entry_t *e, rl_ticket_t *t, int64_t now)
{
    e->open_until = now + RL_OPEN_MS;
    if (now - e->warned_at >= RL_WARN_EVERY_MS || !e->warned_at) {
        e->warned_at = now;
        log_warn ("ratelimit",
                  "the ratelimit actor does not answer: letting "
                  "%s through unlimited (fail open)",
                  e->principal);
    }
    s_consume (e, t, now);
}

int
ratelimit_front_acquire (ratelimit_front_t *self, bus_front_t *bus, const char *principal,
                         rl_ticket_t *t)
{
    memset (t, 0, sizeof (*t));
    rl_entry_t *e = self ? s_find (self, principal) : NULL;
    if (!e || (e->rate <= 0 && e->conc <= 0))
        return 0;
    //  Fast path: what we hold is enough.
    int64_t now = s_now ();
    pthread_mutex_lock (&e->lock);
    s_expire (e, now);
    if (s_fits (e) || now < e->open_until) {
        s_consume (e, t, now);
        s_headers (e, t, now);
        pthread_mutex_unlock (&e->lock);
        return 0;
    }
    pthread_mutex_unlock (&e->lock);

    //  Slow path: one thread at a time asks the actor for this principal;
    //  the others find its answer when they get the io lock.
    pthread_mutex_lock (&e->io);
    pthread_mutex_lock (&e->lock);
    now = s_now ();
    s_expire (e, now);
    if (s_fits (e) || now < e->open_until) {
        s_consume (e, t, now);
        s_headers (e, t, now);
        pthread_mutex_unlock (&e->lock);
        pthread_mutex_unlock (&e->io);
        return 0;
    }
    //  Other threads keep spending what we hold while we ask (the fast
    //  path needs no io lock), so a shortfall after the answer may be in
    //  something we did not ask for: then ask again.  Only the actor's own
    //  no is a refusal.
    int status = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        rl_call_t c = {0};
        c.take = e->rate > 0 && e->tokens == 0 ? e->batch : 0;
        c.slots = e->conc > 0 ? (e->slots > e->in_use ? e->slots : e->in_use + 1) : 0;
        pthread_mutex_unlock (&e->lock);
        int64_t sent = s_now ();
        int rc = s_call (self, bus, e, &c);
        pthread_mutex_lock (&e->lock);
        now = s_now ();
        if (rc) {
            s_fail_open (e, t, now);
            break;
        }
        s_apply (e, &c, sent);
        if (s_fits (e)) {
            s_consume (e, t, now);
            break;
        }
        if (e->rate > 0 && e->tokens == 0 && c.take > 0 && c.granted == 0) {
            t->verdict = RL_RATE;
            t->retry_after = (int) ((c.retry_ms + 999) / 1000);
        }
        else if (e->conc > 0 && e->in_use >= e->slots && c.held < c.slots)
            t->verdict = RL_CONCURRENCY;
        else if (attempt == 3)
            t->verdict = e->rate > 0 && e->tokens == 0 ? RL_RATE : RL_CONCURRENCY;
        if (t->verdict != RL_OK) {
            if (t->retry_after < 1)
                t->retry_after = 1;
            status = 429;
            break;
        }
    }
    s_headers (e, t, now);
    pthread_mutex_unlock (&e->lock);
    pthread_mutex_unlock (&e->io);
    return status;
}

void
ratelimit_front_release (ratelimit_front_t *self, rl_ticket_t *t)
{
    rl_entry_t *e = (rl_entry_t *) t->slot;
    if (!e)
        return;
    pthread_mutex_lock (&e->lock);
    if (e->in_use > 0)
        e->in_use--;
    e->last_used = s_now ();
    pthread_mutex_unlock (&e->lock);
    t->slot = NULL;
}

//  ---- Keeper ------------------------------------------------------------------------

//  Renews e's slots when due, and gives back what e has not used for a
//  tick; with final set, gives back everything not in use.
static void
s_keep (ratelimit_front_t *self, bus_front_t *bus, rl_entry_t *e, int tick, bool final)
{
    if (e->rate <= 0 && e->conc <= 0)
        return;
    pthread_mutex_lock (&e->io);
    pthread_mutex_lock (&e->lock);
    int64_t now = s_now ();
    s_expire (e, now);
    bool idle = final || now - e->last_used >= tick;
    rl_call_t c = {0};
    c.give = idle ? e->tokens : 0;
    //  While busy keep what the last tick needed at most (and no more than
    //  we hold): the next burst then needs no call.  Idle slots go back.
    int keep = idle ? e->in_use : e->peak;
    if (keep < e->in_use)
        keep = e->in_use;
    if (keep > e->slots && e->slots >= e->in_use)
        keep = e->slots;
    c.slots = e->conc > 0 ? keep : 0;
    e->peak = e->in_use;
    bool due = (e->slots > 0 || e->in_use > 0) && now >= e->renew_at;
    bool change = c.give > 0 || (e->conc > 0 && c.slots != e->slots);
    if (!due && !change) {
        pthread_mutex_unlock (&e->lock);
        pthread_mutex_unlock (&e->io);
        return;
    }
    e->tokens -= c.give;  //  Given back whatever the answer: never twice
    //  Shrink here, before the call: requests on the fast path (which does
    //  not wait for io) must not take slots we are giving back.
    if (e->conc > 0 && c.slots < e->slots)
        e->slots = c.slots;
    pthread_mutex_unlock (&e->lock);
    int64_t sent = s_now ();
    int rc = s_call (self, bus, e, &c);
    pthread_mutex_lock (&e->lock);
    if (rc == 0)
        s_apply (e, &c, sent);
    pthread_mutex_unlock (&e->lock);
    pthread_mutex_unlock (&e->io);
}

static void *
s_keeper (void *arg)
{
    ratelimit_front_t *self = (ratelimit_front_t *) arg;
    int tick = self->config->lease_ms / 4;
    if (tick < 50)
        tick = 50;
    bus_front_t *bus = NULL;  //  Ours alone, made on first use
    pthread_mutex_lock (&self->keeper_lock);
    while (!self->stopping) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_sec += tick / 1000;
        until.tv_nsec += (long) (tick % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait (&self->keeper_cond, &self->keeper_lock, &until);
        if (self->stopping)
            break;
        pthread_mutex_unlock (&self->keeper_lock);
        if (!bus)
            bus = bus_front_new (self->config->requests_ep);
        for (size_t i = 0; bus && i < self->n_entries; i++)
            s_keep (self, bus, &self->entries[i], tick, false);
        pthread_mutex_lock (&self->keeper_lock);
    }
    pthread_mutex_unlock (&self->keeper_lock);
    //  Leaving: return what we hold so the other fronts can use it now.
    for (size_t i = 0; bus && i < self->n_entries; i++)
        s_keep (self, bus, &self->entries[i], tick, true);
    bus_front_destroy (&bus);
    return NULL;
}

//  ---- Addresses -------------------------------------------------------------------

int
ratelimit_front_check_address (ratelimit_front_t *self, const char *addr, rl_ticket_t *t)
{
    memset (t, 0, sizeof (*t));
    if (!self || atomic_load (&self->n_blocked) == 0)
        return 0;
    int64_t now = s_now ();
    int left = 0;
    pthread_mutex_lock (&self->addr_lock);
    int64_t *until = (int64_t *) zhashx_lookup (self->blocked, addr);
    if (until && *until > now)
        left = (int) ((*until - now + 999) / 1000);
    else if (until) {
        zhashx_delete (self->blocked, addr);
        atomic_store (&self->n_blocked, (int) zhashx_size (self->blocked));
    }
    pthread_mutex_unlock (&self->addr_lock);
    if (!left)
        return 0;
    t->verdict = RL_AUTH_BLOCKED;
    t->retry_after = left;
    snprintf (t->headers, sizeof (t->headers), "Retry-After: %d\r\n", left);
    return 429;
}

//  Drops lapsed blocks (addr_lock held) when the table is full.
static void
s_prune_blocked (ratelimit_front_t *self, int64_t now)
{
    zlistx_t *gone = zlistx_new ();
    zlistx_set_destructor (gone, s_free_item);
    for (int64_t *u = (int64_t *) zhashx_first (self->blocked); u;
         u = (int64_t *) zhashx_next (self->blocked))
        if (*u <= now)
            zlistx_add_end (gone, strdup ((const char *) zhashx_cursor (self->blocked)));
    for (char *k = (char *) zlistx_first (gone); k; k = (char *) zlistx_next (gone))
        zhashx_delete (self->blocked, k);
    zlistx_destroy (&gone);
}

int
ratelimit_front_auth_failed (ratelimit_front_t *self, bus_front_t *bus, const char *addr,
                             rl_ticket_t *t)
{
    memset (t, 0, sizeof (*t));
    if (!self || self->config->auth_failures <= 0 || !bus)
        return 0;
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_address, addr);
    mp_kv_int (&w, MK_limit, self->config->auth_failures);
    bus_msg_t reply;
    mp_map_end (&w);
    if (s_ask (bus, MT_RATELIMIT_AUTH_FAIL, &w, &reply))
        return 0;  //  Fail open: the 401 still goes out
    bool blocked = false;
    int64_t retry = 0;
    if (reply.env.status == 200) {
        mp_get_bool (reply.body.root, MK_blocked, &blocked);
        mp_get_int (reply.body.root, MK_retryAfterMs, &retry);
    }
    bus_msg_fini (&reply);
    if (!blocked)
        return 0;
    if (retry < 1000)
        retry = 1000;
    if (retry > 3600000)
        retry = 3600000;
    int64_t now = s_now ();
    pthread_mutex_lock (&self->addr_lock);
    if (zhashx_size (self->blocked) >= RL_MAX_TRACKED)
        s_prune_blocked (self, now);
    int64_t *until = (int64_t *) zhashx_lookup (self->blocked, addr);
    if (!until && zhashx_size (self->blocked) < RL_MAX_TRACKED
        && (until = (int64_t *) malloc (sizeof (int64_t))))
        zhashx_insert (self->blocked, addr, until);
    if (until)
        *until = now + retry;
    atomic_store (&self->n_blocked, (int) zhashx_size (self->blocked));
    pthread_mutex_unlock (&self->addr_lock);
    t->verdict = RL_AUTH_BLOCKED;
    t->retry_after = (int) ((retry + 999) / 1000);
    snprintf (t->headers, sizeof (t->headers), "Retry-After: %d\r\n", t->retry_after);
    return 429;
}

//  ---- Replies -------------------------------------------------------------------------

const char *
ratelimit_front_message (const rl_ticket_t *t)
{
    switch (t->verdict) {
    case RL_RATE: return "Rate limit exceeded for this credential";
    case RL_CONCURRENCY: return "Too many concurrent requests for this credential";
    case RL_AUTH_BLOCKED: return "Too many failed authentications from this address";
    case RL_OK: break;
    }
    return "OK";
}

cJSON *
ratelimit_front_ws_error (const rl_ticket_t *t, const cJSON *id)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "type", "error");
    cJSON *idc = id ? cJSON_Duplicate (id, true) : NULL;
    cJSON_AddItemToObject (root, "id", idc ? idc : cJSON_CreateNull ());
    cJSON *err = error_json (429, "rate_limited", ratelimit_front_message (t), NULL);
    cJSON_AddNumberToObject (err, "retryAfter", t->retry_after);
    cJSON_AddItemToObject (root, "error", err);
    return root;
}
