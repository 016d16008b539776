/*  =========================================================================
    broker - Majordomo-style service routing plus an event bus

    Every message is received into an array of zmq_msg_t frames and moved
    on, never copied, except an event that goes both to its front and to the
    XPUB.  Sends use ZMQ_DONTWAIT with ROUTER_MANDATORY: the broker never
    blocks on a slow or vanished peer; it drops and counts instead, or for a
    request picks the next worker.

    Not built on actor_run (actors/actor.h), the skeleton of every service
    actor: that skeleton is a worker of this broker (it registers with it,
    heartbeats it and is handed requests by it), and the broker is the
    other end of that protocol, so it has no bus_worker_t to build on.  Its
    loop is the skeleton's shape all the same (state, pipe, one handler per
    socket, a timer for heartbeats), but on bus_poll instead of a zloop: it
    wakes twice per request of the whole gateway, and bus_poll spares the
    system calls zmq_poll spends on sockets known to be drained.
    =========================================================================
*/
#include "broker.h"
#include "msg_names.h"

#include "bus_proto.h"
#include "envelope.h"
#include "bus_frames.h"
#include "bus_poll.h"
#include "error.h"
#include "log.h"
#include "mp.h"
#include "msg.h"

#include <string.h>

typedef struct service_t service_t;

typedef struct {
    char key[2 * BUS_MAX_ID + 1];  //  Hex of the routing identity
    uint8_t id[BUS_MAX_ID];        //  Routing identity
    size_t id_len;                 //  Its length
    service_t *service;            //  Service it serves (not owned)
    int64_t expires_at;            //  zclock_mono () past which it is dead
} worker_t;

struct service_t {
    char name[BUS_MAX_SERVICE + 1];  //  Service name
    worker_t **workers;              //  Live workers (not owned)
    size_t count;                    //  How many
    size_t cap;                      //  Slots allocated
    size_t next;                     //  Round-robin cursor
};

typedef struct {
    zsock_t *pipe;         //  Actor command pipe
    zsock_t *router;       //  Requests endpoint
    zsock_t *xpub;         //  Events endpoint, or NULL
    void *router_h;        //  Raw libzmq handle of router
    void *xpub_h;          //  Raw libzmq handle of xpub
    zhashx_t *services;    //  name -> service_t (owned)
    zhashx_t *workers;     //  key -> worker_t (owned)
    int heartbeat_ms;      //  Interval of heartbeats sent
    int liveness;          //  Heartbeats missed before expiry
    int64_t heartbeat_at;  //  Next time to send heartbeats
    bool terminated;       //  $TERM received
    uint64_t dropped;      //  Messages dropped (logged in batches)
} self_t;

typedef struct {
    zmq_msg_t part[BUS_MAX_FRAMES];  //  Received frames (identity first)
    int count;                       //  How many are initialised
} frames_t;

static void
s_frames_close (frames_t *f)
{
    for (int i = 0; i < f->count; i++)
        zmq_msg_close (&f->part[i]);
    f->count = 0;
}

//  Receives one whole multipart message.  Returns 0; -1 when nothing could
//  be read (errno EAGAIN when nothing was waiting); -2 when the message had
//  too many frames (read off and dropped).
static int
s_frames_recv (void *sock, frames_t *f)
{
    f->count = 0;
    int n = bus_frames_recv (sock, f->part, BUS_MAX_FRAMES, ZMQ_DONTWAIT);
    if (n < 0)
        return -1;
    if (n > BUS_MAX_FRAMES) {
        log_warn ("broker", "dropped a message of too many frames");
        bus_frames_close (f->part, n, BUS_MAX_FRAMES);
        return -2;
    }
    f->count = n;
    return 0;
}

static void
s_hex (char *dest, const uint8_t *data, size_t size)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < size; i++) {
        dest[2 * i] = digits[data[i] >> 4];
        dest[2 * i + 1] = digits[data[i] & 15];
    }
    dest[2 * size] = 0;
}

//  Sends count frames, moving each message (they are closed afterwards in
//  every case).  The first frame is the routing identity; if the peer is
//  unknown or full, nothing is sent and -1 is returned.
static int
s_send (void *sock, zmq_msg_t *parts[], int count)
{
    int rc = 0;
    for (int i = 0; i < count; i++) {
        if (rc == 0) {
            int flags = ZMQ_DONTWAIT | (i < count - 1 ? ZMQ_SNDMORE : 0);
            if (zmq_msg_send (parts[i], sock, flags) < 0)
                rc = -1;
        }
        zmq_msg_close (parts[i]);
    }
    return rc;
}

static void
s_msg_from (zmq_msg_t *m, const void *data, size_t size)
{
    zmq_msg_init_size (m, size);
    if (size)
        memcpy (zmq_msg_data (m), data, size);
}

static void
s_msg_str (zmq_msg_t *m, const char *s)
{
    s_msg_from (m, s, strlen (s));
}

//  ---- Services and workers -------------------------------------------------

static void
s_worker_free (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_service_destroy (void **item)
{
    service_t *service = (service_t *) *item;
    if (service) {
        free (service->workers);
        free (service);
        *item = NULL;
    }
}

static service_t *
s_service_require (self_t *self, const char *name)
{
    service_t *service = (service_t *) zhashx_lookup (self->services, name);
    if (!service) {
        service = (service_t *) calloc (1, sizeof (service_t));
        if (!service)
            return NULL;
        snprintf (service->name, sizeof (service->name), "%s", name);
        zhashx_insert (self->services, name, service);
    }
    return service;
}

static void
s_service_remove_worker (service_t *service, worker_t *worker)
{
    for (size_t i = 0; i < service->count; i++)
        if (service->workers[i] == worker) {
            memmove (&service->workers[i], &service->workers[i + 1],
                     (service->count - i - 1) * sizeof (worker_t *));
            service->count--;
            break;
        }
}

static void
s_worker_delete (self_t *self, worker_t *worker, const char *why)
{
    //  A worker that says goodbye stops on purpose: not worth a warning.
    if (!strcmp (why, "said goodbye"))
        log_info ("broker", "worker %.16s of service %s removed: %s", worker->key,
                  worker->service ? worker->service->name : "-", why);
    else
        log_warn ("broker", "worker %.16s of service %s removed: %s", worker->key,
                  worker->service ? worker->service->name : "-", why);
    if (worker->service)
        s_service_remove_worker (worker->service, worker);
    zhashx_delete (self->workers, worker->key);  //  Frees worker
}

static void
s_send_worker_cmd (self_t *self, const uint8_t *id, size_t id_len, const char *cmd)
{
    zmq_msg_t m[3];
    s_msg_from (&m[0], id, id_len);
    s_msg_str (&m[1], BUS_WORKER);
    s_msg_str (&m[2], cmd);
    zmq_msg_t *parts[] = {&m[0], &m[1], &m[2]};
    s_send (self->router_h, parts, 3);
}

//  ---- Replies the broker makes itself --------------------------------------

static void
s_reply (self_t *self, zmq_msg_t *front_id, const envelope_t *req_env, const char *type,
         int status, mp_writer_t *body)
{
    msg_check_send (type, NULL, body->buf.data, body->buf.size);
    envelope_t env = *req_env;
    snprintf (env.type, sizeof (env.type), "%s", type);
    env.status = status;
    msgpack_sbuffer ebuf;
    msgpack_sbuffer_init (&ebuf);
    envelope_pack (&env, &ebuf);

    zmq_msg_t m[4];
    zmq_msg_init (&m[0]);
    zmq_msg_copy (&m[0], front_id);
    s_msg_str (&m[1], BUS_FRONT);
    s_msg_str (&m[2], BUS_REPLY);
    s_msg_from (&m[3], ebuf.data, ebuf.size);
    zmq_msg_t body_msg;
    s_msg_from (&body_msg, body->buf.data, body->buf.size);
    zmq_msg_t *parts[] = {&m[0], &m[1], &m[2], &m[3], &body_msg};
    if (s_send (self->router_h, parts, 5))
        self->dropped++;
    msgpack_sbuffer_destroy (&ebuf);
}

static void
s_reply_error (self_t *self, zmq_msg_t *front_id, const envelope_t *env, int status,
               const char *code, const char *message)
{
    mp_writer_t w;
    mp_writer_init (&w);
    error_pack (&w, code, message, NULL);
    s_reply (self, front_id, env, MT_ERROR, status, &w);
    mp_writer_fini (&w);
}

static void
s_answer_mmi (self_t *self, zmq_msg_t *front_id, const envelope_t *env)
{
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_key (&w, MK_services);
    mp_map_begin (&w);
    for (service_t *s = (service_t *) zhashx_first (self->services); s;
         s = (service_t *) zhashx_next (self->services))
        mp_kv_int (&w, s->name, (int64_t) s->count);
    mp_map_end (&w);
    mp_map_end (&w);
    s_reply (self, front_id, env, MT_MMI_SERVICES_OK, ENVELOPE_OK, &w);
    mp_writer_fini (&w);
}

//  ---- Traffic from fronts --------------------------------------------------

//  FNV-1a over the key and the worker's identity, then a finalizer that
//  spreads the bits (splitmix64's), so that each key ranks the workers in
//  its own order.
static uint64_t
s_rank (const char *key, const worker_t *worker)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *k = key; *k; k++)
        h = (h ^ (uint8_t) *k) * 1099511628211ULL;
    for (size_t i = 0; i < worker->id_len; i++)
        h = (h ^ worker->id[i]) * 1099511628211ULL;
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 31);
}

//  The worker of service (which has at least one) for a request.  A request
//  with a session key goes where every request with that key goes while the
//  service's workers stay the same: to the worker ranked first for the key
//  (rendezvous hashing; a worker that comes or goes moves only the keys it
//  ranks first).  So an abort reaches the run actor that runs the run, and
//  a session's requests stay on one worker.  Requests without a key go
//  round-robin.
static worker_t *
s_pick (service_t *service, const envelope_t *env)
{
    if (env->session_key[0] && service->count > 1) {
        worker_t *best = service->workers[0];
        uint64_t top = s_rank (env->session_key, best);
        for (size_t i = 1; i < service->count; i++) {
            uint64_t r = s_rank (env->session_key, service->workers[i]);
            if (r > top) {
                top = r;
                best = service->workers[i];
            }
        }
        return best;
    }
    if (service->next >= service->count)
        service->next = 0;
    return service->workers[service->next++];
}

static void
s_handle_front (self_t *self, frames_t *f)
{
    //  [id][CGC1][REQUEST][service][envelope][body]
    if (f->count != 6 || !bus_frame_is (&f->part[2], BUS_REQUEST)) {
        log_warn ("broker", "dropped a malformed front message (%d frames)", f->count);
        return;
    }
    envelope_t env;
    if (envelope_unpack (&env, zmq_msg_data (&f->part[4]), zmq_msg_size (&f->part[4]))) {
        log_warn ("broker", "dropped a front request with a bad envelope");
        return;
    }
    size_t slen = zmq_msg_size (&f->part[3]);
    char name[BUS_MAX_SERVICE + 1];
    if (slen == 0 || slen > BUS_MAX_SERVICE) {
        s_reply_error (self, &f->part[0], &env, ENVELOPE_BAD_REQUEST, "invalid_request",
                       "Invalid service name");
        return;
    }
    memcpy (name, zmq_msg_data (&f->part[3]), slen);
    name[slen] = 0;
    if (strcmp (name, BUS_SERVICE_BROKER) == 0) {
        s_answer_mmi (self, &f->part[0], &env);
        return;
    }
    service_t *service = (service_t *) zhashx_lookup (self->services, name);
    while (service && service->count > 0) {
        worker_t *worker = s_pick (service, &env);
        zmq_msg_t m[3];
        s_msg_from (&m[0], worker->id, worker->id_len);
        s_msg_str (&m[1], BUS_WORKER);
        s_msg_str (&m[2], BUS_REQUEST);
        //  The front id, envelope and body move on untouched; copies are
        //  cheap references, so a failed send leaves f intact for a retry.
        zmq_msg_t fid, fenv, fbody;
        zmq_msg_init (&fid);
        zmq_msg_init (&fenv);
        zmq_msg_init (&fbody);
        zmq_msg_copy (&fid, &f->part[0]);
        zmq_msg_copy (&fenv, &f->part[4]);
        zmq_msg_copy (&fbody, &f->part[5]);
        zmq_msg_t *parts[] = {&m[0], &m[1], &m[2], &fid, &fenv, &fbody};
        if (s_send (self->router_h, parts, 6) == 0)
            return;
        //  Gone (its connection closed) or full: try the next one.
        s_worker_delete (self, worker,
                         errno == EAGAIN ? "send queue full" : "unreachable");
    }
    char message[160];
    snprintf (message, sizeof (message), "No worker is serving '%s' right now", name);
    s_reply_error (self, &f->part[0], &env, ENVELOPE_UNAVAILABLE, "service_unavailable",
                   message);
}

//  ---- Traffic from workers -------------------------------------------------

//  Longer than 100 lines on purpose: one branch per worker command (READY,
//  REPLY, EVENT, HEARTBEAT, DISCONNECT), each moving frames it received;
//  which frames were moved is tracked in f->count across the branches.
static void
s_handle_worker (self_t *self, frames_t *f)
{
    zmq_msg_t *cmd = &f->part[2];
    size_t id_len = zmq_msg_size (&f->part[0]);
    const uint8_t *id = (const uint8_t *) zmq_msg_data (&f->part[0]);
    if (id_len == 0 || id_len > BUS_MAX_ID)
        return;
    char key[2 * BUS_MAX_ID + 1];
    s_hex (key, id, id_len);
    worker_t *worker = (worker_t *) zhashx_lookup (self->workers, key);
    if (worker)
        worker->expires_at =
            zclock_mono () + (int64_t) self->heartbeat_ms * self->liveness;

    if (bus_frame_is (cmd, BUS_READY) && f->count == 4) {
        size_t slen = zmq_msg_size (&f->part[3]);
        if (slen == 0 || slen > BUS_MAX_SERVICE) {
            s_send_worker_cmd (self, id, id_len, BUS_DISCONNECT);
            return;
        }
        char name[BUS_MAX_SERVICE + 1];
        memcpy (name, zmq_msg_data (&f->part[3]), slen);
        name[slen] = 0;
        if (worker && worker->service && strcmp (worker->service->name, name) == 0)
            return;  //  A repeated READY only refreshes
        if (worker)
            s_worker_delete (self, worker, "re-registered");
        service_t *service = s_service_require (self, name);
        worker = (worker_t *) calloc (1, sizeof (worker_t));
        if (!service || !worker) {
            free (worker);
            return;
        }
        memcpy (worker->id, id, id_len);
        worker->id_len = id_len;
        memcpy (worker->key, key, sizeof (key));
        worker->service = service;
        worker->expires_at =
            zclock_mono () + (int64_t) self->heartbeat_ms * self->liveness;
        if (service->count == service->cap) {
            size_t cap = service->cap ? service->cap * 2 : 4;
            worker_t **grown =
                (worker_t **) realloc (service->workers, cap * sizeof (worker_t *));
            if (!grown) {
                free (worker);
                return;
            }
            service->workers = grown;
            service->cap = cap;
        }
        service->workers[service->count++] = worker;
        zhashx_insert (self->workers, key, worker);
        log_info ("broker", "worker %.16s ready for service %s (%zu live)", key, name,
                  service->count);
    }
    else if (bus_frame_is (cmd, BUS_REPLY) && f->count == 6) {
        //  [id][CGW1][REPLY][front][envelope][body] -> front
        zmq_msg_t m[2];
        s_msg_str (&m[0], BUS_FRONT);
        s_msg_str (&m[1], BUS_REPLY);
        zmq_msg_t *parts[] = {&f->part[3], &m[0], &m[1], &f->part[4], &f->part[5]};
        if (s_send (self->router_h, parts, 5))
            self->dropped++;
        f->count = 3;  //  Frames 3..5 were moved
        if (!worker)
            s_send_worker_cmd (self, id, id_len, BUS_DISCONNECT);
    }
    else if (bus_frame_is (cmd, BUS_EVENT) && f->count == 6) {
        //  [id][CGW1][EVENT][front|""][topic][body] -> front and XPUB
        if (zmq_msg_size (&f->part[4]) > BUS_MAX_TOPIC)
            return;
        if (zmq_msg_size (&f->part[3]) > 0) {
            zmq_msg_t m[2], topic, body;
            s_msg_str (&m[0], BUS_FRONT);
            s_msg_str (&m[1], BUS_EVENT);
            zmq_msg_init (&topic);
            zmq_msg_init (&body);
            zmq_msg_copy (&topic, &f->part[4]);
            zmq_msg_copy (&body, &f->part[5]);
            zmq_msg_t fid;
            zmq_msg_init (&fid);
            zmq_msg_copy (&fid, &f->part[3]);
            zmq_msg_t *parts[] = {&fid, &m[0], &m[1], &topic, &body};
            if (s_send (self->router_h, parts, 5))
                self->dropped++;
        }
        if (self->xpub_h) {
            zmq_msg_t *parts[] = {&f->part[4], &f->part[5]};
            //  PUB semantics: a subscriber at its high-water mark loses the
            //  event (taps may lag; the direct path above is the reliable one).
            for (int i = 0; i < 2; i++) {
                zmq_msg_send (parts[i], self->xpub_h,
                              ZMQ_DONTWAIT | (i == 0 ? ZMQ_SNDMORE : 0));
                zmq_msg_close (parts[i]);
            }
            f->count = 4;
        }
    }
    else if (bus_frame_is (cmd, BUS_HEARTBEAT)) {
        if (!worker)
            s_send_worker_cmd (self, id, id_len, BUS_DISCONNECT);
    }
    else if (bus_frame_is (cmd, BUS_DISCONNECT)) {
        if (worker)
            s_worker_delete (self, worker, "said goodbye");
    }
    else
        log_warn ("broker", "dropped a malformed worker message");
}

//  Returns true if the router was read until EAGAIN (nothing left that its
//  ZMQ_FD would not announce), false if the budget ran out first.
static bool
s_handle_router (self_t *self)
{
    //  Drain what is queued, but yield to the pipe and timers now and then.
    for (int budget = 0; budget < 256; budget++) {
        frames_t f;
        int rc = s_frames_recv (self->router_h, &f);
        if (rc == -1)
            return zmq_errno () == EAGAIN;
        if (rc == -2)
            continue;  //  Dropped: read on
        if (f.count >= 3 && bus_frame_is (&f.part[1], BUS_FRONT))
            s_handle_front (self, &f);
        else if (f.count >= 3 && bus_frame_is (&f.part[1], BUS_WORKER))
            s_handle_worker (self, &f);
        else
            log_warn ("broker", "dropped a message with an unknown header");
        s_frames_close (&f);
    }
    return false;
}

//  Returns true if it sent on the router.
static bool
s_heartbeat (self_t *self)
{
    int64_t now = zclock_mono ();
    if (now < self->heartbeat_at)
        return false;
    self->heartbeat_at = now + self->heartbeat_ms;
    zlistx_t *dead = zlistx_new ();
    for (worker_t *w = (worker_t *) zhashx_first (self->workers); w;
         w = (worker_t *) zhashx_next (self->workers)) {
        if (w->expires_at < now)
            zlistx_add_end (dead, w);
        else
            s_send_worker_cmd (self, w->id, w->id_len, BUS_HEARTBEAT);
    }
    for (worker_t *w = (worker_t *) zlistx_first (dead); w;
         w = (worker_t *) zlistx_next (dead))
        s_worker_delete (self, w, "missed its heartbeats");
    zlistx_destroy (&dead);
    //  Subscription notices from taps: nothing to do but read them off.
    for (int i = 0; self->xpub_h && i < 1000; i++) {
        zmq_msg_t sub;
        zmq_msg_init (&sub);
        int rc = zmq_msg_recv (&sub, self->xpub_h, ZMQ_DONTWAIT);
        zmq_msg_close (&sub);
        if (rc < 0)
            break;
    }
    if (self->dropped) {
        log_warn ("broker", "dropped %llu messages to vanished or full peers",
                  (unsigned long long) self->dropped);
        self->dropped = 0;
    }
    return true;
}

static void
s_handle_pipe (self_t *self)
{
    char *cmd = zstr_recv (self->pipe);
    if (!cmd || streq (cmd, "$TERM"))
        self->terminated = true;
    else
        log_warn ("broker", "unknown pipe command %s", cmd);
    zstr_free (&cmd);
}

static void
s_self_destroy (self_t **self_p)
{
    self_t *self = *self_p;
    if (!self)
        return;
    zhashx_destroy (&self->workers);
    zhashx_destroy (&self->services);
    zsock_destroy (&self->xpub);
    zsock_destroy (&self->router);
    free (self);
    *self_p = NULL;
}

static self_t *
s_self_new (zsock_t *pipe, const broker_config_t *cfg)
{
    self_t *self = (self_t *) calloc (1, sizeof (self_t));
    if (!self)
        return NULL;
    self->pipe = pipe;
    self->heartbeat_ms = cfg->heartbeat_ms > 0 ? cfg->heartbeat_ms : 1000;
    self->liveness = cfg->liveness > 0 ? cfg->liveness : 3;
    self->services = zhashx_new ();
    self->workers = zhashx_new ();
    zhashx_set_destructor (self->services, s_service_destroy);
    zhashx_set_destructor (self->workers, s_worker_free);
    self->router = zsock_new (ZMQ_ROUTER);
    if (!self->router)
        goto fail;
    zsock_set_router_mandatory (self->router, 1);
    zsock_set_sndhwm (self->router, 100000);
    zsock_set_rcvhwm (self->router, 100000);
    zsock_set_linger (self->router, 0);
    if (zsock_bind (self->router, "%s", cfg->requests) < 0) {
        log_error ("broker", "cannot bind requests endpoint %s: %s", cfg->requests,
                   zmq_strerror (zmq_errno ()));
        goto fail;
    }
    self->router_h = zsock_resolve (self->router);
    if (cfg->events && *cfg->events) {
        self->xpub = zsock_new (ZMQ_XPUB);
        zsock_set_sndhwm (self->xpub, 100000);
        zsock_set_linger (self->xpub, 0);
        if (!self->xpub || zsock_bind (self->xpub, "%s", cfg->events) < 0) {
            log_error ("broker", "cannot bind events endpoint %s: %s", cfg->events,
                       zmq_strerror (zmq_errno ()));
            goto fail;
        }
        self->xpub_h = zsock_resolve (self->xpub);
    }
    return self;
fail:
    s_self_destroy (&self);
    return NULL;
}

//  --------------------------------------------------------------------------
//  The actor body.

void
broker_actor (zsock_t *pipe, void *args)
{
    broker_config_t *cfg = (broker_config_t *) args;
    pthread_setname_np (pthread_self (), "cg-broker");
    self_t *self = s_self_new (pipe, cfg);
    cfg->failed = self == NULL;
    if (!self) {
        zsock_signal (pipe, 1);
        return;
    }
    //  cfg belongs to the caller's stack: read it before the signal, since
    //  the caller may return the moment it arrives.
    log_info ("broker", "routing requests on %s, events on %s", cfg->requests,
              self->xpub ? cfg->events : "(off)");
    cfg = NULL;
    zsock_signal (pipe, 0);

    //  The XPUB is not polled: it only yields subscription notices, which
    //  s_heartbeat reads off.  bus_poll, not zmq_poll: this loop wakes twice
    //  per request, and every avoidable system call shows in the request
    //  rate.  drained tracks which sockets need no check before a sleep
    //  (bit 0 the pipe, bit 1 the router; see bus_poll).
    void *pipe_h = zsock_resolve (pipe);
    unsigned drained = 0;
    self->heartbeat_at = zclock_mono () + self->heartbeat_ms;
    while (!self->terminated) {
        int64_t wait = self->heartbeat_at - zclock_mono ();
        zmq_pollitem_t items[2] = {
            {pipe_h, 0, ZMQ_POLLIN, 0},
            {self->router_h, 0, ZMQ_POLLIN, 0},
        };
        int rc = bus_poll (items, 2, drained, wait > 0 ? (long) wait : 0);
        if (rc < 0 && zmq_errno () != EINTR)
            break;
        drained = rc < 0 ? 0 : 3;
        if (items[0].revents & ZMQ_POLLIN) {
            s_handle_pipe (self);
            drained &= ~1u;
        }
        if ((items[1].revents & ZMQ_POLLIN) && !s_handle_router (self))
            drained &= ~2u;
        if (s_heartbeat (self))
            drained &= ~2u;
    }
    s_self_destroy (&self);
}
