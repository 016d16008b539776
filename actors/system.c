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

static const char *s_channels[] = {"whatsapp", "telegram", "discord",
                                   "slack",    "webhook",  NULL};

typedef struct {
    const system_settings_t *settings;  //  Read only, not owned
    int64_t started;                    //  zclock_mono () at start
    char worker_name[128];              //  "<host>:<pid>"
} self_t;

static int
s_init (void *state, const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) state;
    self->settings = &args->settings->system;
    self->started = zclock_mono ();
    char host[64] = "localhost";
    gethostname (host, sizeof (host) - 1);
    snprintf (self->worker_name, sizeof (self->worker_name), "%s:%d", host,
              (int) getpid ());
    return 0;
}

//  A channel's status until the channel actors exist: configured channels are
//  "disconnected" (enabled) or "disabled"; the rest "not_configured".
static const char *
s_channel_status (const system_settings_t *settings, const char *id)
{
    for (size_t i = 0; i < settings->n_channels; i++)
        if (streq (settings->channels[i].id, id))
            return settings->channels[i].enabled ? "disconnected" : "disabled";
    return "not_configured";
}

static void
s_status (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_kv_str (&w, MK_status, "ok");
    mp_kv_str (&w, MK_version, CLAWGATE_VERSION);
    mp_kv_int (&w, MK_uptime, (zclock_mono () - self->started) / 1000);
    mp_key (&w, MK_channels);
    mp_map_begin (&w);
    for (int i = 0; s_channels[i]; i++)
        mp_kv_str (&w, s_channels[i], s_channel_status (self->settings, s_channels[i]));
    mp_map_end (&w);
    mp_kv_str (&w, MK_worker, self->worker_name);
    actor_reply_map (worker, req, MT_SYSTEM_STATUS_OK, &w);
}

static void
s_ping (void *state, bus_worker_t *worker, bus_request_t *req)
{
    static const unsigned char empty_map = 0x80;
    bus_worker_reply (worker, req, MT_SYSTEM_PONG, ENVELOPE_OK, &empty_map, 1);
}

static const actor_route_t s_routes[] = {
    {MT_SYSTEM_STATUS, s_status}, {MT_SYSTEM_PING, s_ping}, {NULL, NULL}};

static const actor_def_t s_def = {
    .service = "system", .size = sizeof (self_t), .init = s_init, .routes = s_routes};

void
system_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
