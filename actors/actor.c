/*  =========================================================================
    actor - zloop, pipe, bus worker and dispatch shared by every actor
    =========================================================================
*/
#include "actor.h"

#include "browser.h"
#include "channel.h"
#include "envelope.h"
#include "log.h"
#include "ratelimit.h"
#include "run.h"
#include "session.h"
#include "settings.h"
#include "system.h"

typedef struct {
    const actor_def_t *def;  //  What kind of actor
    void *state;             //  Its state
    bus_worker_t *worker;    //  Our connection to the broker
} loop_ctx_t;

static int
s_on_pipe (zloop_t *loop, zsock_t *pipe, void *arg)
{
    char *cmd = zstr_recv (pipe);
    int rc = 0;
    if (!cmd || streq (cmd, "$TERM"))
        rc = -1;  //  Ends zloop_start
    else
        log_warn ("actor", "unknown pipe command %s", cmd);
    zstr_free (&cmd);
    return rc;
}

//  Hands req to the route for its type.
static void
s_dispatch (loop_ctx_t *ctx, bus_request_t *req)
{
    for (const actor_route_t *r = ctx->def->routes; r->type; r++)
        if (streq (req->env.type, r->type)) {
            r->handle (ctx->state, ctx->worker, req);
            return;
        }
    char text[96];
    snprintf (text, sizeof (text), "Unknown %s request", ctx->def->service);
    bus_worker_error (ctx->worker, req, ENVELOPE_BAD_REQUEST, "invalid_request", text,
                      NULL);
}

static int
s_on_bus (zloop_t *loop, zsock_t *sock, void *arg)
{
    loop_ctx_t *ctx = (loop_ctx_t *) arg;
    //  Serve what is queued, but hand control back to the loop now and then
    //  so timers and other fds are not starved.
    for (int budget = 0; budget < 64; budget++) {
        bus_request_t req;
        int rc = bus_worker_recv (ctx->worker, &req);
        if (rc < 0)
            break;
        if (rc == 1) {
            s_dispatch (ctx, &req);
            bus_request_fini (&req);
        }
    }
    if (ctx->def->after_requests)
        ctx->def->after_requests (ctx->state);
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    bus_worker_tick (((loop_ctx_t *) arg)->worker);
    return 0;
}

//  Frees what init made in the state, then the state.
static void
s_state_free (const actor_def_t *def, void **state_p)
{
    if (*state_p && def->fini)
        def->fini (*state_p);
    free (*state_p);
    *state_p = NULL;
}

void
actor_run (zsock_t *pipe, actor_args_t *args, const actor_def_t *def)
{
    const actor_bus_settings_t *bus = &args->settings->bus;
    loop_ctx_t ctx = {def, NULL, NULL};
    //  Named for top -H, perf and gdb: "cg-" and the service, cut to the
    //  kernel's 15 characters.
    char name[16];
    snprintf (name, sizeof (name), "cg-%s", def->service);
    pthread_setname_np (pthread_self (), name);
    zloop_t *loop = zloop_new ();
    ctx.worker =
        bus_worker_new (args->broker, def->service, bus->heartbeat_ms, bus->liveness);
    if (ctx.worker)
        ctx.state = calloc (1, def->size);
    if (!ctx.state || def->init (ctx.state, args, loop, ctx.worker)) {
        log_error ("actor", "%s: could not start", def->service);
        s_state_free (def, &ctx.state);
        bus_worker_destroy (&ctx.worker);
        zloop_destroy (&loop);
        args->failed = true;
        zsock_signal (pipe, 1);
        return;
    }
    args->failed = false;
    zloop_set_nonstop (loop, true);  //  We stop on $TERM, not on signals
    zloop_reader (loop, pipe, s_on_pipe, &ctx);
    zloop_reader (loop, bus_worker_sock (ctx.worker), s_on_bus, &ctx);
    //  Half the heartbeat interval keeps us well inside the broker's window.
    int tick = bus->heartbeat_ms / 2 > 0 ? bus->heartbeat_ms / 2 : 1;
    zloop_timer (loop, (size_t) tick, 0, s_on_tick, &ctx);
    zsock_signal (pipe, 0);
    log_debug ("actor", "%s: serving", def->service);
    zloop_start (loop);
    s_state_free (def, &ctx.state);
    zloop_destroy (&loop);
    bus_worker_destroy (&ctx.worker);
}

void
actor_reply_begin (mp_writer_t *w)
{
    mp_writer_init (w);
    mp_map_begin (w);
}

void
actor_reply_map (bus_worker_t *worker, const bus_request_t *req, const char *type,
                 mp_writer_t *w)
{
    mp_map_end (w);
    bus_worker_reply (worker, req, type, ENVELOPE_OK, w->buf.data, w->buf.size);
    mp_writer_fini (w);
}

void
actor_front_drain (bus_front_t *front, zhashx_t *waiting, actor_front_fn *fn, void *arg)
{
    for (int budget = 0; budget < 64; budget++) {
        bus_msg_t msg;
        if (bus_front_recv (front, 0, &msg))
            break;
        char key[24];
        snprintf (key, sizeof (key), "%llu", (unsigned long long) msg.env.corr_id);
        fn (arg, &msg, key,
            msg.kind == BUS_MSG_REPLY ? zhashx_lookup (waiting, key) : NULL);
        bus_msg_fini (&msg);
    }
}

zlistx_t *
actor_hash_values (zhashx_t *table)
{
    zlistx_t *values = zlistx_new ();
    for (void *v = zhashx_first (table); v; v = zhashx_next (table))
        zlistx_add_end (values, v);
    return values;
}

//  ---- Registry of actors -----------------------------------------------------

typedef struct {
    const char *name;
    zactor_fn *fn;
} actor_entry_t;

static const actor_entry_t s_registry[] = {
    {"system", system_actor},
    {"run", run_actor},
    {"session", session_actor},
    {"ratelimit", ratelimit_actor},
    {"browser", browser_actor},
    {"channel", channel_actor},
    {NULL, NULL},
};

const char *const *
actor_names (void)
{
    static const char *names[sizeof (s_registry) / sizeof (s_registry[0])];
    for (size_t i = 0; s_registry[i].name; i++)
        names[i] = s_registry[i].name;
    return names;
}

zactor_t *
actor_start (const char *name, actor_args_t *args)
{
    for (const actor_entry_t *e = s_registry; e->name; e++)
        if (streq (e->name, name)) {
            zactor_t *actor = zactor_new (e->fn, args);
            if (actor && args->failed)
                zactor_destroy (&actor);
            return actor;
        }
    return NULL;
}
