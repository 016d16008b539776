/*  =========================================================================
    system - the status actor
    =========================================================================
*/
#include "system.h"
#include "envelope.h"
#include "msg_names.h"

#include "actor.h"
#include "settings.h"
#include "log.h"

#include <unistd.h>

//  How long a status waits for the channel actor's list.
#define SYSTEM_CHANNELS_WAIT_MS 1500

typedef struct {
    const system_settings_t *settings;  //  Read only, not owned
    int64_t started;                    //  zclock_mono () at start
    char worker_name[128];              //  "<host>:<pid>"
    bus_worker_t *worker;
    bus_front_t *front;  //  To ask the channel actor, when channels exist
    zhashx_t *waiting;   //  CHANNEL_LIST corr id -> waiting_t (owned)
} self_t;

//  A status request waiting for the channel actor's list.
typedef struct {
    bus_request_t origin;  //  Front and envelope (no body)
    int64_t deadline;      //  zclock_mono ()
} waiting_t;

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg);
static int
s_on_front (zloop_t *loop, zsock_t *sock, void *arg);

static int
s_init (void *state, const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) state;
    self->settings = &args->settings->system;
    self->started = zclock_mono ();
    self->worker = worker;
    char host[64] = "localhost";
    gethostname (host, sizeof (host) - 1);
    snprintf (self->worker_name, sizeof (self->worker_name), "%s:%d", host,
              (int) getpid ());
    if (self->settings->n_channels) {
        //  The channels' statuses are the channel actor's; ask it.
        self->front = bus_front_new (args->broker);
        self->waiting = zhashx_new ();
        if (!self->front || !self->waiting)
            return -1;
        zhashx_set_destructor (self->waiting, (zhashx_destructor_fn *) zstr_free);
        zloop_reader (loop, bus_front_sock (self->front), s_on_front, self);
        zloop_timer (loop, 250, 0, s_on_tick, self);
    }
    return 0;
}

static void
s_fini (void *state)
{
    self_t *self = (self_t *) state;
    zhashx_destroy (&self->waiting);
    bus_front_destroy (&self->front);
}

//  A channel's status when the channel actor cannot say: configured
//  channels are "error" (enabled: nobody serves them) or "disabled"; the
//  rest "not_configured".
static const char *
s_channel_fallback (const system_settings_t *settings, const char *id)
{
    for (size_t i = 0; i < settings->n_channels; i++)
        if (streq (settings->channels[i].id, id))
            return settings->channels[i].enabled ? "error" : "disabled";
    return "not_configured";
}

//  The status of id in a CHANNEL_LIST_OK body, or NULL.
static const char *
s_listed (const msgpack_object *list, const char *id, char *buf, size_t cap)
{
    const msgpack_object *arr = list ? mp_get (list, MK_channels) : NULL;
    if (!arr || arr->type != MSGPACK_OBJECT_ARRAY)
        return NULL;
    for (uint32_t i = 0; i < arr->via.array.size; i++) {
        const msgpack_object *ch = &arr->via.array.ptr[i];
        char cid[32] = "";
        if (ch->type == MSGPACK_OBJECT_MAP && !mp_copy_str (ch, MK_id, cid, sizeof (cid))
            && streq (cid, id) && !mp_copy_str (ch, MK_status, buf, cap))
            return buf;
    }
    return NULL;
}

//  Answers req: the status, with the channels from list (NULL: fallback).
static void
s_answer (self_t *self, const bus_request_t *req, const msgpack_object *list)
{
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_kv_str (&w, MK_status, "ok");
    mp_kv_str (&w, MK_version, CLAWGATE_VERSION);
    mp_kv_int (&w, MK_uptime, (zclock_mono () - self->started) / 1000);
    mp_key (&w, MK_channels);
    mp_map_begin (&w);
    for (int i = 0; channel_ids[i]; i++) {
        char buf[32];
        const char *st = s_listed (list, channel_ids[i], buf, sizeof (buf));
        mp_kv_str (&w, channel_ids[i],
                   st ? st : s_channel_fallback (self->settings, channel_ids[i]));
    }
    mp_map_end (&w);
    mp_kv_str (&w, MK_worker, self->worker_name);
    actor_reply_map (self->worker, req, MT_SYSTEM_STATUS_OK, &w);
}

static void
s_status (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    if (!self->front) {
        s_answer (self, req, NULL);
        return;
    }
    static const unsigned char empty_map = 0x80;
    envelope_t env;
    envelope_init (&env, MT_CHANNEL_LIST);
    env.timeout_ms = SYSTEM_CHANNELS_WAIT_MS;
    waiting_t *wait = (waiting_t *) calloc (1, sizeof (waiting_t));
    if (!wait || bus_front_send (self->front, "channel", &env, &empty_map, 1)) {
        free (wait);
        s_answer (self, req, NULL);
        return;
    }
    memcpy (wait->origin.front, req->front, req->front_len);
    wait->origin.front_len = req->front_len;
    wait->origin.env = req->env;
    wait->deadline = zclock_mono () + SYSTEM_CHANNELS_WAIT_MS;
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) env.corr_id);
    zhashx_insert (self->waiting, key, wait);
}

static void
s_on_list (void *arg, bus_msg_t *msg, const char *key, void *waiter)
{
    self_t *self = (self_t *) arg;
    waiting_t *wait = (waiting_t *) waiter;
    if (!wait)
        return;
    s_answer (self, &wait->origin, msg->env.status == 200 ? msg->body.root : NULL);
    zhashx_delete (self->waiting, key);
}

static int
s_on_front (zloop_t *loop, zsock_t *sock, void *arg)
{
    self_t *self = (self_t *) arg;
    actor_front_drain (self->front, self->waiting, s_on_list, self);
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    int64_t now = zclock_mono ();
    zlistx_t *late = zlistx_new ();
    for (waiting_t *w = (waiting_t *) zhashx_first (self->waiting); w;
         w = (waiting_t *) zhashx_next (self->waiting))
        if (now >= w->deadline)
            zlistx_add_end (late, (void *) zhashx_cursor (self->waiting));
    for (const char *k = (const char *) zlistx_first (late); k;
         k = (const char *) zlistx_next (late)) {
        waiting_t *w = (waiting_t *) zhashx_lookup (self->waiting, k);
        log_warn ("system", "the channel actor did not answer: channels reported as "
                            "configured");
        s_answer (self, &w->origin, NULL);
        zhashx_delete (self->waiting, k);
    }
    zlistx_destroy (&late);
    return 0;
}

static void
s_ping (void *state, bus_worker_t *worker, bus_request_t *req)
{
    static const unsigned char empty_map = 0x80;
    bus_worker_reply (worker, req, MT_SYSTEM_PONG, ENVELOPE_OK, &empty_map, 1);
}

static const actor_route_t s_routes[] = {
    {MT_SYSTEM_STATUS, s_status}, {MT_SYSTEM_PING, s_ping}, {NULL, NULL}};

static const actor_def_t s_def = {.service = "system",
                                  .size = sizeof (self_t),
                                  .init = s_init,
                                  .routes = s_routes,
                                  .fini = s_fini};

void
system_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
