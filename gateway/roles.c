/*  =========================================================================
    roles - start-up and orderly shutdown of every role

    Order is always: config -> broker -> actors -> HTTP front, then wait for
    SIGINT/SIGTERM, then stop in reverse.  SIGINT and SIGTERM are blocked in
    every thread (threads inherit the mask) and taken with sigwait on the
    main thread, so no library's handler races ours.
    =========================================================================
*/
#include "roles.h"

#include "actor.h"
#include "broker.h"
#include "channel.h"
#include "chanstore.h"
#include "config.h"
#include "log.h"
#include "mpjson.h"
#include "routes.h"
#include "server.h"

#include <ctype.h>
#include <czmq.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_ACTORS 16

//  ---- Options shared by the roles ----------------------------------------------

typedef struct {
    cfg_flags_t flags;    //  Overrides for config_load
    const char *actors;   //  worker: --actors list
    const char *session;  //  tap: --session
    bool json;            //  tap: --json
    const char *args[4];  //  Words after the options (pairing)
    int n_args;
} opts_t;

enum {
    OPT_CONFIG = 1000,
    OPT_BIND,
    OPT_PORT,
    OPT_STATE,
    OPT_BROKER,
    OPT_EVENTS,
    OPT_REQUESTS,
    OPT_ACTORS,
    OPT_SESSION,
    OPT_JSON,
    OPT_STORE,
    OPT_HELP
};

static const struct option s_long[] = {
    {"config", required_argument, NULL, OPT_CONFIG},
    {"bind", required_argument, NULL, OPT_BIND},
    {"port", required_argument, NULL, OPT_PORT},
    {"state-dir", required_argument, NULL, OPT_STATE},
    {"broker", required_argument, NULL, OPT_BROKER},
    {"requests", required_argument, NULL, OPT_REQUESTS},
    {"events", required_argument, NULL, OPT_EVENTS},
    {"actors", required_argument, NULL, OPT_ACTORS},
    {"session", required_argument, NULL, OPT_SESSION},
    {"json", no_argument, NULL, OPT_JSON},
    {"store", required_argument, NULL, OPT_STORE},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0}};

//  Parses argv against the options this role allows (a string of OPT_
//  letters is clumsy in C; `allowed` is a NULL-terminated list of names).
//  Returns 0, 1 after printing help, or 2 after a usage error.
static int
s_parse (int argc, char **argv, const char *const allowed[], const char *usage, opts_t *o,
         int max_args)
{
    memset (o, 0, sizeof (*o));
    o->flags.port = -1;
    optind = 1;
    opterr = 0;
    int c, idx = 0;
    while ((c = getopt_long (argc, argv, "h", s_long, &idx)) != -1) {
        if (c == 'h' || c == OPT_HELP) {
            printf ("%s", usage);
            return 1;
        }
        const char *name = NULL;
        for (int i = 0; s_long[i].name; i++)
            if (s_long[i].val == c)
                name = s_long[i].name;
        bool ok = false;
        for (int i = 0; name && allowed[i]; i++)
            ok |= streq (allowed[i], name);
        if (!ok) {
            fprintf (stderr, "clawgate %s: unknown or misplaced option '%s'\n%s", argv[0],
                     optind > 1 ? argv[optind - 1] : "?", usage);
            return 2;
        }
        switch (c) {
        case OPT_CONFIG: o->flags.config_path = optarg; break;
        case OPT_BIND: o->flags.bind = optarg; break;
        case OPT_PORT: {
            char *end;
            long p = strtol (optarg, &end, 10);
            if (*end || p < 0 || p > 65535) {
                fprintf (stderr, "clawgate %s: --port must be 0-65535\n", argv[0]);
                return 2;
            }
            o->flags.port = (int) p;
            break;
        }
        case OPT_STATE: o->flags.state_dir = optarg; break;
        case OPT_BROKER:
        case OPT_REQUESTS: o->flags.broker = optarg; break;
        case OPT_EVENTS: o->flags.events = optarg; break;
        case OPT_ACTORS: o->actors = optarg; break;
        case OPT_SESSION: o->session = optarg; break;
        case OPT_JSON: o->json = true; break;
        case OPT_STORE: o->flags.store = optarg; break;
        }
    }
    while (optind < argc && o->n_args < max_args && o->n_args < 4)
        o->args[o->n_args++] = argv[optind++];
    if (optind < argc) {
        fprintf (stderr, "clawgate %s: unexpected argument '%s'\n%s", argv[0],
                 argv[optind], usage);
        return 2;
    }
    return 0;
}

//  Loads config and applies its log level; prints one line and returns NULL
//  on error.
static cg_config_t *
s_config (const opts_t *o, const char *role)
{
    char err[512];
    cg_config_t *cfg = config_load (&o->flags, err, sizeof (err));
    if (!cfg) {
        fprintf (stderr, "clawgate %s: config error: %s\n", role, err);
        return NULL;
    }
    log_set_level ((log_level_t) log_level_parse (cfg->log_level));
    //  Every HTTP thread owns a ZeroMQ socket: size the context for them
    //  (libzmq's default is 1,024) before any socket exists.
    zsys_set_max_sockets ((size_t) cfg->threads + 256);
    //  Sockets, their eventfds and client connections all need descriptors.
    struct rlimit lim;
    if (getrlimit (RLIMIT_NOFILE, &lim) == 0 && lim.rlim_cur < lim.rlim_max) {
        lim.rlim_cur = lim.rlim_max;
        setrlimit (RLIMIT_NOFILE, &lim);
    }
    return cfg;
}

//  ---- Signals and drain -----------------------------------------------------------

static sigset_t s_signals;

//  Call first thing in a role, before any thread exists.
static void
s_signals_block (void)
{
    signal (SIGPIPE, SIG_IGN);
    zsys_handler_set (NULL);  //  czmq must not install its own
    //  Initialise czmq here, on the main thread: left to the first zsock_new
    //  it would run on many civetweb threads at once, and zsys_init is not
    //  safe against that.
    zsys_init ();
    sigemptyset (&s_signals);
    sigaddset (&s_signals, SIGINT);
    sigaddset (&s_signals, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &s_signals, NULL);
}

static int
s_signals_wait (void)
{
    int sig = 0;
    sigwait (&s_signals, &sig);
    return sig;
}

typedef struct {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool done;       //  Shutdown finished in time
    int timeout_ms;  //  Drain budget
} watchdog_t;

static void *
s_watchdog (void *arg)
{
    watchdog_t *w = (watchdog_t *) arg;
    struct timespec until;
    clock_gettime (CLOCK_REALTIME, &until);
    until.tv_sec += w->timeout_ms / 1000;
    until.tv_nsec += (long) (w->timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock (&w->lock);
    int rc = 0;
    while (!w->done && rc == 0)
        rc = pthread_cond_timedwait (&w->cond, &w->lock, &until);
    bool done = w->done;
    pthread_mutex_unlock (&w->lock);
    if (!done) {
        log_warn ("main", "drain timeout of %d ms passed; exiting now", w->timeout_ms);
        _exit (0);
    }
    return NULL;
}

//  Starts the drain watchdog; s_watchdog_stop cancels it.
static void
s_watchdog_start (watchdog_t *w, pthread_t *thread, int timeout_ms)
{
    pthread_mutex_init (&w->lock, NULL);
    pthread_cond_init (&w->cond, NULL);
    w->done = false;
    w->timeout_ms = timeout_ms;
    pthread_create (thread, NULL, s_watchdog, w);
}

static void
s_watchdog_stop (watchdog_t *w, pthread_t thread)
{
    pthread_mutex_lock (&w->lock);
    w->done = true;
    pthread_cond_signal (&w->cond);
    pthread_mutex_unlock (&w->lock);
    pthread_join (thread, NULL);
    pthread_cond_destroy (&w->cond);
    pthread_mutex_destroy (&w->lock);
}

//  ---- Pieces the roles combine ------------------------------------------------------

static zactor_t *
s_broker_start (const char *requests, const char *events, const cg_config_t *cfg)
{
    broker_config_t bc = {requests, events, cfg->heartbeat_ms, cfg->liveness, false};
    zactor_t *broker = zactor_new (broker_actor, &bc);
    if (broker && bc.failed)
        zactor_destroy (&broker);
    return broker;
}

//  Starts the actors named in list ("a,b" or "all").  Returns how many, or
//  -1 after logging (already started ones are stopped).
static int
s_actors_start (zactor_t **actors, const char *list, actor_args_t *args)
{
    int n = 0;
    char *copy = strdup (list);
    char *save = NULL;
    for (char *name = strtok_r (copy, ",", &save); name;
         name = strtok_r (NULL, ",", &save)) {
        if (streq (name, "all")) {
            for (const char *const *a = actor_names (); *a && n < MAX_ACTORS; a++)
                if (!(actors[n++] = actor_start (*a, args)))
                    goto fail;
            continue;
        }
        bool known = false;
        for (const char *const *a = actor_names (); *a; a++)
            known |= streq (*a, name);
        if (!known) {
            fprintf (stderr, "clawgate: unknown actor '%s'\n", name);
            goto fail;
        }
        if (n >= MAX_ACTORS || !(actors[n++] = actor_start (name, args)))
            goto fail;
    }
    free (copy);
    return n;
fail:
    free (copy);
    for (int i = 0; i < n; i++)
        zactor_destroy (&actors[i]);
    return -1;
}

static void
s_actors_stop (zactor_t **actors, int n)
{
    for (int i = n - 1; i >= 0; i--)
        zactor_destroy (&actors[i]);
}

//  Prepares the state dir and checks the serving rules; prints and returns
//  -1 on error.
static int
s_prepare_front (cg_config_t *cfg, const char *role)
{
    char err[512];
    if (config_prepare_state (cfg, err, sizeof (err))
        || config_check_serving (cfg, err, sizeof (err))) {
        fprintf (stderr, "clawgate %s: config error: %s\n", role, err);
        return -1;
    }
    return 0;
}

static void
s_announce (const cg_config_t *cfg, const server_t *server, const char *role)
{
    if (cfg->token_generated)
        printf ("clawgate: generated a new token (stored in %s/token, mode "
                "0600): %s\n",
                cfg->state_dir, cfg->token);
    printf ("clawgate %s: listening on http://%s:%d (auth %s)\n", role, cfg->bind,
            server_port (server), config_auth_name (cfg->auth_mode));
    fflush (stdout);
    log_info ("main", "%s listening on %s:%d, %d threads, broker %s", role, cfg->bind,
              server_port (server), cfg->threads, cfg->requests_ep);
}

//  Stops the front, then actors, then the broker, within the drain budget.
static void
s_shutdown (const cg_config_t *cfg, server_t **server, zactor_t **actors, int n_actors,
            zactor_t **broker, int sig)
{
    log_info ("main", "%s received: draining (%d requests in flight, up to %d ms)",
              sig == SIGINT ? "SIGINT" : "SIGTERM",
              *server ? server_inflight (*server) : 0, cfg->drain_timeout_ms);
    watchdog_t w;
    pthread_t thread;
    //  The front waits up to the drain budget for requests in flight; the
    //  rest (interrupting what is left, stopping actors) gets 5 s more.
    s_watchdog_start (&w, &thread, cfg->drain_timeout_ms + 5000);
    server_stop (server);
    log_debug ("main", "front stopped");
    s_actors_stop (actors, n_actors);
    log_debug ("main", "actors stopped");
    zactor_destroy (broker);
    s_watchdog_stop (&w, thread);
    log_info ("main", "stopped cleanly");
}

//  ---- Roles -----------------------------------------------------------------------
//  Every role takes its options, blocks the signals, loads the configuration,
//  runs, and frees it all the same way: s_role does that around a role's run.

typedef struct {
    const char *name;            //  clawgate <name>
    const char *usage;           //  Printed by --help and on misuse
    const char *const *allowed;  //  Options it takes, NULL-terminated
    //  Runs with the loaded configuration until a signal or a failure;
    //  returns the exit status.  Does not free cfg.
    int (*run) (cg_config_t *cfg, const opts_t *o);
} role_def_t;

static int
s_role (int argc, char **argv, const role_def_t *def)
{
    opts_t o;
    int rc = s_parse (argc, argv, def->allowed, def->usage, &o, 0);
    if (rc)
        return rc == 1 ? 0 : 2;
    s_signals_block ();
    cg_config_t *cfg = s_config (&o, def->name);
    if (!cfg)
        return 2;
    int status = def->run (cfg, &o);
    config_destroy (&cfg);
    zsys_shutdown ();
    return status;
}

static bool
s_remote (const char *ep)
{
    return ep && strncmp (ep, "inproc://", 9) != 0;
}

static int
s_serve (cg_config_t *cfg, const opts_t *o)
{
    if (s_prepare_front (cfg, "serve"))
        return 2;
    int status = 1;
    zactor_t *actors[MAX_ACTORS];
    int n_actors = 0;
    server_t *server = NULL;
    zactor_t *broker = s_broker_start (cfg->requests_ep, cfg->events_ep, cfg);
    if (!broker)
        goto done;
    actor_args_t args = {cfg->requests_ep, &cfg->actors, false};
    if ((n_actors = s_actors_start (actors, "all", &args)) < 0) {
        n_actors = 0;
        goto done;
    }
    char err[512];
    server = server_start (cfg, routes_table (), err, sizeof (err));
    if (!server) {
        fprintf (stderr, "clawgate serve: %s\n", err);
        goto done;
    }
    s_announce (cfg, server, "serve");
    int sig = s_signals_wait ();
    s_shutdown (cfg, &server, actors, n_actors, &broker, sig);
    status = 0;
done:
    server_stop (&server);
    s_actors_stop (actors, n_actors);
    zactor_destroy (&broker);
    return status;
}

int
role_serve (int argc, char **argv)
{
    static const char *const allowed[] = {"config", "bind",  "port", "state-dir",
                                          "events", "store", NULL};
    static const role_def_t def = {
        "serve",
        "usage: clawgate serve [--config FILE] [--bind ADDR] [--port N]\n"
        "                      [--state-dir DIR] [--events tcp://ADDR:PORT]\n"
        "                      [--store sqlite:PATH]\n"
        "Runs the broker, every actor and the HTTP/WS front in one process.\n",
        allowed, s_serve};
    return s_role (argc, argv, &def);
}

static int
s_broker (cg_config_t *cfg, const opts_t *o)
{
    if (!s_remote (cfg->requests_ep)) {
        fprintf (stderr, "clawgate broker: config error: --requests must be a "
                         "tcp:// or ipc:// endpoint\n");
        return 2;
    }
    const char *events = s_remote (cfg->events_ep) ? cfg->events_ep : NULL;
    zactor_t *broker = s_broker_start (cfg->requests_ep, events, cfg);
    if (!broker)
        return 1;
    printf ("clawgate broker: requests on %s, events on %s\n", cfg->requests_ep,
            events ? events : "(off)");
    fflush (stdout);
    s_signals_wait ();
    log_info ("main", "broker stopping");
    zactor_destroy (&broker);
    return 0;
}

int
role_broker (int argc, char **argv)
{
    static const char *const allowed[] = {"config", "requests", "events", NULL};
    static const role_def_t def = {
        "broker",
        "usage: clawgate broker --requests tcp://ADDR:PORT [--events "
        "tcp://ADDR:PORT]\n"
        "                       [--config FILE]\n"
        "Routes requests between gateways and workers on other processes or "
        "hosts,\nand publishes events to taps.\n",
        allowed, s_broker};
    return s_role (argc, argv, &def);
}

static int
s_gateway (cg_config_t *cfg, const opts_t *o)
{
    if (!s_remote (cfg->requests_ep)) {
        fprintf (stderr, "clawgate gateway: config error: --broker must be a "
                         "tcp:// or ipc:// endpoint\n");
        return 2;
    }
    if (s_prepare_front (cfg, "gateway"))
        return 2;
    char err[512];
    server_t *server = server_start (cfg, routes_table (), err, sizeof (err));
    if (!server) {
        fprintf (stderr, "clawgate gateway: %s\n", err);
        return 1;
    }
    s_announce (cfg, server, "gateway");
    int sig = s_signals_wait ();
    zactor_t *none = NULL;
    s_shutdown (cfg, &server, NULL, 0, &none, sig);
    return 0;
}

int
role_gateway (int argc, char **argv)
{
    static const char *const allowed[] = {"config", "bind",   "port", "state-dir",
                                          "broker", "events", NULL};
    static const role_def_t def = {
        "gateway",
        "usage: clawgate gateway --broker tcp://ADDR:PORT [--bind ADDR] "
        "[--port N]\n"
        "                        [--config FILE] [--state-dir DIR]\n"
        "Serves the HTTP/WS API; every request goes to the broker.\n",
        allowed, s_gateway};
    return s_role (argc, argv, &def);
}

static int
s_worker (cg_config_t *cfg, const opts_t *o)
{
    if (!s_remote (cfg->requests_ep) || !o->actors) {
        fprintf (stderr, "clawgate worker: config error: %s\n",
                 o->actors ? "--broker must be a tcp:// or ipc:// endpoint"
                           : "--actors is required");
        return 2;
    }
    zactor_t *actors[MAX_ACTORS];
    actor_args_t args = {cfg->requests_ep, &cfg->actors, false};
    int n = s_actors_start (actors, o->actors, &args);
    if (n < 0)
        return 2;
    printf ("clawgate worker: %d actor(s) serving via %s\n", n, cfg->requests_ep);
    fflush (stdout);
    s_signals_wait ();
    log_info ("main", "worker stopping");
    s_actors_stop (actors, n);
    return 0;
}

int
role_worker (int argc, char **argv)
{
    static const char *const allowed[] = {"config", "broker",    "actors",
                                          "store",  "state-dir", NULL};
    static const role_def_t def = {
        "worker",
        "usage: clawgate worker --broker tcp://ADDR:PORT --actors "
        "NAME[,NAME...]|all\n"
        "                       [--config FILE] [--state-dir DIR] "
        "[--store sqlite:PATH]\n"
        "Runs actors that serve requests from a remote broker.\n",
        allowed, s_worker};
    return s_role (argc, argv, &def);
}

//  One published event, printed as "<topic> <json>" or, with --json, as
//  {"topic":...,"data":...}.
static void
s_tap_print (zmsg_t *msg, bool json_lines)
{
    char *topic = zmsg_popstr (msg);
    zframe_t *body = zmsg_pop (msg);
    mp_reader_t rd;
    cJSON *json = NULL;
    if (topic && body
        && mp_reader_init (&rd, zframe_data (body), zframe_size (body)) == 0)
        json = mpjson_to_json (rd.root);
    if (body)
        mp_reader_fini (&rd);
    char *text = json ? cJSON_PrintUnformatted (json) : NULL;
    if (text && json_lines)
        printf ("{\"topic\":\"%s\",\"data\":%s}\n", topic, text);
    else if (text)
        printf ("%s %s\n", topic, text);
    fflush (stdout);
    cJSON_free (text);
    cJSON_Delete (json);
    zstr_free (&topic);
    zframe_destroy (&body);
}

static int
s_tap (cg_config_t *cfg, const opts_t *o)
{
    const char *ep = s_remote (cfg->events_ep) ? cfg->events_ep : "tcp://127.0.0.1:18790";
    zsock_t *sub = zsock_new (ZMQ_SUB);
    if (sub)
        zsock_set_rcvhwm (sub, 100000);  //  Before connect, or it is not used
    if (!sub || zsock_connect (sub, "%s", ep) < 0) {
        fprintf (stderr, "clawgate tap: cannot connect to %s\n", ep);
        zsock_destroy (&sub);
        return 2;
    }
    char prefix[160] = "";
    if (o->session)
        snprintf (prefix, sizeof (prefix), "%s/", o->session);
    zsock_set_subscribe (sub, prefix);
    log_info ("tap", "listening to %s%s%s", ep, o->session ? " for session " : "",
              o->session ? o->session : "");
    void *handle = zsock_resolve (sub);
    while (true) {
        //  Poll in short steps so a pending SIGINT/SIGTERM is noticed.
        struct timespec zero = {0, 0};
        if (sigtimedwait (&s_signals, NULL, &zero) > 0)
            break;
        zmq_pollitem_t item = {handle, 0, ZMQ_POLLIN, 0};
        if (zmq_poll (&item, 1, 200) <= 0)
            continue;
        zmsg_t *msg = zmsg_recv (sub);
        if (msg)
            s_tap_print (msg, o->json);
        zmsg_destroy (&msg);
    }
    zsock_destroy (&sub);
    return 0;
}

int
role_tap (int argc, char **argv)
{
    static const char *const allowed[] = {"config", "events", "session", "json", NULL};
    static const role_def_t def = {
        "tap",
        "usage: clawgate tap [--events tcp://ADDR:PORT] [--session KEY] "
        "[--json]\n"
        "Prints every event the broker publishes, one per line.\n",
        allowed, s_tap};
    return s_role (argc, argv, &def);
}

//  ---- clawgate pairing ------------------------------------------------------------

static const char s_pairing_usage[] =
    "usage: clawgate pairing list [CHANNEL] [--state-dir DIR] [--config FILE]\n"
    "       clawgate pairing approve CHANNEL CODE [--state-dir DIR] [--config FILE]\n"
    "Lists the pending pairing requests of the chat channels, or approves one:\n"
    "its sender may then talk to the agent (docs/channels.md#pairing).  Works on\n"
    "the state directory's channels.db, with the gateway running or not.\n";

static int
s_print_pairing (void *arg, const chan_pairing_t *p)
{
    const char *channel = (const char *) arg;
    char created[LOG_ISO_TIME_LEN + 1], expires[LOG_ISO_TIME_LEN + 1];
    printf ("%-9s %-8s %-16s %-24s %s  %s\n", channel, p->code, p->sender_id,
            *p->sender_name ? p->sender_name : "-", log_iso_time (created, p->created_at),
            log_iso_time (expires, p->expires_at));
    return 0;
}

int
role_pairing (int argc, char **argv)
{
    static const char *const allowed[] = {"config", "state-dir", NULL};
    opts_t o;
    int rc = s_parse (argc, argv, allowed, s_pairing_usage, &o, 3);
    if (rc)
        return rc == 1 ? 0 : 2;
    bool list = o.n_args >= 1 && streq (o.args[0], "list") && o.n_args <= 2;
    bool approve = o.n_args == 3 && streq (o.args[0], "approve");
    if (!list && !approve) {
        fprintf (stderr, "%s", s_pairing_usage);
        return 2;
    }
    const char *channel = o.n_args >= 2 ? o.args[1] : NULL;
    bool known = !channel;
    for (int i = 0; channel && channel_ids[i]; i++)
        known |= streq (channel_ids[i], channel);
    if (!known) {
        fprintf (stderr,
                 "clawgate pairing: unknown channel '%s' (use whatsapp, telegram, "
                 "discord, slack or webhook)\n",
                 channel);
        return 2;
    }
    //  Only the state directory is needed: a flag or the environment spare
    //  loading a configuration whose credentials this shell may not have.
    char dir[4096];
    const char *state =
        o.flags.state_dir ? o.flags.state_dir : getenv ("CLAWGATE_STATE_DIR");
    if (state && *state)
        snprintf (dir, sizeof (dir), "%s", state);
    else {
        cg_config_t *cfg = s_config (&o, "pairing");
        if (!cfg)
            return 2;
        snprintf (dir, sizeof (dir), "%s", cfg->state_dir);
        config_destroy (&cfg);
    }
    char path[4200], err[512];
    chanstore_path (dir, path, sizeof (path));
    if (access (path, F_OK)) {
        fprintf (stderr,
                 "clawgate pairing: no channel store at %s (has the gateway run "
                 "with channels?)\n",
                 path);
        return 1;
    }
    chanstore_t *store = chanstore_open (path, err, sizeof (err));
    if (!store) {
        fprintf (stderr, "clawgate pairing: %s\n", err);
        return 1;
    }
    int status = 0;
    int64_t now = (int64_t) zclock_time ();
    if (list) {
        printf ("%-9s %-8s %-16s %-24s %-24s  %s\n", "CHANNEL", "CODE", "SENDER", "NAME",
                "REQUESTED", "EXPIRES");
        for (int i = 0; channel_ids[i]; i++)
            if (!channel || streq (channel, channel_ids[i]))
                if (chanstore_pairing_list (store, channel_ids[i], now, s_print_pairing,
                                            (void *) channel_ids[i]))
                    status = 1;
    }
    else {
        char code[16] = "", sender[128];
        for (size_t i = 0; o.args[2][i] && i < sizeof (code) - 1; i++)
            code[i] = (char) toupper ((unsigned char) o.args[2][i]);
        rc = strlen (o.args[2]) < sizeof (code) ? chanstore_pairing_approve (
                 store, channel, code, now, sender, sizeof (sender))
                                                : 0;
        if (rc == 1)
            printf ("approved: %s sender %s may now talk to the agent\n", channel,
                    sender);
        else {
            fprintf (stderr, "clawgate pairing: %s\n",
                     rc == 0 ? "no pending request with that code (codes expire after an "
                               "hour)"
                             : "the channel store could not record it");
            status = 1;
        }
    }
    chanstore_close (&store);
    return status;
}
