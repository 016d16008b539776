/*  =========================================================================
    ws_hub - the WebSocket hub thread: the only owner of the WebSocket
    side's ZeroMQ sockets, and the client registry and inbox it serves

    The hub is one thread per front with a DEALER to the broker (requests,
    and the events of runs its clients started, routed to it directly), a
    second DEALER for the rate limiter's lease round trips alone, and a SUB
    on the event bus (sessions its clients subscribed to).  Requests come
    from civetweb's connection threads through the inbox (a list and an
    eventfd); replies and events become frames queued on the clients
    (ws_client.h).

    Why not actors/actor.c actor_run: that skeleton is a service worker's.
    It registers a service with the broker, answers its heartbeats and
    hands the actor validated requests to reply to; the hub is a front
    (it sends requests and reads replies and events, as a civetweb thread
    does, through bus_front_t), and its input is civetweb's threads, which
    may not share a ZeroMQ socket or pipe with it.  So it keeps its own
    loop, in the same shape as actor_run's: state in a self (ws_hub_self_t),
    made and freed in one place (s_self_new, s_self_destroy), one handler
    per input (s_on_inbox, s_on_front, s_on_sub) and timers checked at
    each turn (heartbeat, sweep).  It polls its stop flag at least every
    200 ms, which is how ws_hub_destroy ends it (there is no pipe for
    $TERM).
    =========================================================================
*/
#include "ws_hub.h"
#include "envelope.h"
#include "msg_names.h"

#include "error.h"
#include "log.h"
#include "mpjson.h"
#include "run_call.h"
#include "server.h"

#include <stdatomic.h>
#include <sys/eventfd.h>
#include <unistd.h>

//  How long an ended run is remembered: its copies from the event bus
//  arrive within milliseconds, and are recognised (the starter skipped)
//  while it is.
#define WS_RUN_ENDED_KEEP_MS 3000

typedef struct {
    uint64_t client;  //  Client id
    cJSON *request;   //  Parsed request (owned); NULL: closed
} ws_inbox_t;

//  Clients in the registry, kept beside it (under registry_lock) so that
//  ws_status_body can report them from any thread without the hub: the
//  HTTP routes have the server, not the hub.  One hub per process.
static atomic_int s_clients_now;

//  The hub whose runs s_run_free gives slots back to: set by the hub
//  thread (one hub per process).
static ws_hub_t *s_run_hub;

//  ---- Registry and inbox (any thread) ----------------------------------------

ratelimit_front_t *
ws_hub_limits (ws_hub_t *hub)
{
    return server_limits (hub->server);
}

void
ws_hub_add_client (ws_hub_t *hub, ws_client_t *cl)
{
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) cl->id);
    pthread_mutex_lock (&hub->registry_lock);
    zhashx_insert (hub->clients, key, cl);
    atomic_store (&s_clients_now, (int) zhashx_size (hub->clients));
    pthread_mutex_unlock (&hub->registry_lock);
}

void
ws_hub_remove_client (ws_hub_t *hub, ws_client_t *cl)
{
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) cl->id);
    pthread_mutex_lock (&hub->registry_lock);
    zhashx_delete (hub->clients, key);
    atomic_store (&s_clients_now, (int) zhashx_size (hub->clients));
    pthread_mutex_unlock (&hub->registry_lock);
}

ws_client_t *
ws_hub_client_get (ws_hub_t *hub, uint64_t id)
{
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) id);
    pthread_mutex_lock (&hub->registry_lock);
    ws_client_t *c = (ws_client_t *) zhashx_lookup (hub->clients, key);
    if (c)
        ws_client_use (c);
    pthread_mutex_unlock (&hub->registry_lock);
    return c;
}

int
ws_hub_clients_now (void)
{
    return atomic_load (&s_clients_now);
}

void
ws_hub_push (ws_hub_t *hub, uint64_t client, cJSON *request)
{
    ws_inbox_t *item = (ws_inbox_t *) calloc (1, sizeof (ws_inbox_t));
    if (!item) {
        cJSON_Delete (request);
        return;
    }
    item->client = client;
    item->request = request;
    pthread_mutex_lock (&hub->inbox_lock);
    zlistx_add_end (hub->inbox, item);
    pthread_mutex_unlock (&hub->inbox_lock);
    uint64_t one = 1;
    if (write (hub->inbox_fd, &one, sizeof (one)) < 0)
        log_warn ("ws", "cannot wake the hub");
}

void
ws_hub_send_to (ws_hub_t *hub, uint64_t id, ws_frame_t *f, ws_batch_t *batch)
{
    ws_client_t *c = ws_hub_client_get (hub, id);
    if (c) {
        ws_writers_send (hub->writers, c, f, batch);
        ws_client_put (c);
    }
}

//  ---- Replies ----------------------------------------------------------------

void
ws_hub_reply (ws_hub_t *hub, uint64_t client, const cJSON *id, cJSON *result)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "type", "response");
    cJSON_AddItemToObject (j, "id", id ? cJSON_Duplicate (id, 1) : cJSON_CreateNull ());
    cJSON_AddItemToObject (j, "result", result ? result : cJSON_CreateObject ());
    ws_frame_t *f = ws_frame_json (j);
    cJSON_Delete (j);
    ws_hub_send_to (hub, client, f, NULL);
    ws_frame_unref (f);
}

cJSON *
ws_hub_error_json (const cJSON *id, int status, const char *code, const char *message,
                   const char *param)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "type", "error");
    cJSON_AddItemToObject (j, "id", id ? cJSON_Duplicate (id, 1) : cJSON_CreateNull ());
    cJSON_AddItemToObject (j, "error", error_json (status, code, message, param));
    return j;
}

void
ws_hub_reply_error (ws_hub_t *hub, uint64_t client, const cJSON *id, int status,
                    const char *code, const char *message, const char *param)
{
    cJSON *j = ws_hub_error_json (id, status, code, message, param);
    ws_frame_t *f = ws_frame_json (j);
    cJSON_Delete (j);
    ws_hub_send_to (hub, client, f, NULL);
    ws_frame_unref (f);
}

//  ---- Calls and runs ---------------------------------------------------------

static void
s_call_free (void **item)
{
    ws_call_t *c = (ws_call_t *) *item;
    if (c) {
        cJSON_Delete (c->id);
        free (c);
    }
    *item = NULL;
}

void
ws_hub_run_free (void **item)
{
    ws_run_t *r = (ws_run_t *) *item;
    if (r) {
        ratelimit_front_release (ws_hub_limits (s_run_hub), &r->ticket);
        free (r);
    }
    *item = NULL;
}

static void
s_list_free (void **item)
{
    zlistx_t *l = (zlistx_t *) *item;
    zlistx_destroy (&l);
    *item = NULL;
}

ws_call_t *
ws_hub_call (ws_hub_self_t *h, uint64_t client, const cJSON *id,
             const ws_method_t *method, const char *service, const char *type,
             const char *key, const mp_writer_t *body)
{
    envelope_t env;
    envelope_init (&env, type);
    env.timeout_ms = h->hub->config->control_timeout_ms;
    if (key)
        snprintf (env.session_key, sizeof (env.session_key), "%s", key);
    if (bus_front_send (h->front, service, &env, body->buf.data, body->buf.size)) {
        ws_hub_reply_error (h->hub, client, id, 503, "service_unavailable",
                            "The broker is not taking requests", NULL);
        return NULL;
    }
    return ws_hub_track (h, client, id, method, env.corr_id);
}

ws_call_t *
ws_hub_track (ws_hub_self_t *h, uint64_t client, const cJSON *id,
              const ws_method_t *method, uint64_t corr_id)
{
    ws_call_t *c = (ws_call_t *) calloc (1, sizeof (ws_call_t));
    if (!c)
        return NULL;
    c->client = client;
    c->id = id ? cJSON_Duplicate (id, 1) : NULL;
    c->method = method;
    snprintf (c->corr, sizeof (c->corr), "%llu", (unsigned long long) corr_id);
    zhashx_insert (h->calls, c->corr, c);
    return c;
}

//  ---- Bus traffic ------------------------------------------------------------

//  {"type":type,"data":body} as a frame.  Caller owns it.
static ws_frame_t *
s_event_frame (const char *type, const msgpack_object *body)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "type", type);
    cJSON *data = body ? mpjson_to_json (body) : NULL;
    cJSON_AddItemToObject (j, "data", data ? data : cJSON_CreateObject ());
    ws_frame_t *f = ws_frame_json (j);
    cJSON_Delete (j);
    return f;
}

//  A reply to one of our calls: its method answers it.
static void
s_on_reply (ws_hub_self_t *h, bus_msg_t *msg)
{
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) msg->env.corr_id);
    ws_call_t *c = (ws_call_t *) zhashx_lookup (h->calls, key);
    if (!c)
        return;
    ws_methods_answer (h, c, msg);
    zhashx_delete (h->calls, key);
}

//  An event of one of our clients' runs, routed to us directly.
static void
s_on_direct_event (ws_hub_self_t *h, bus_msg_t *msg)
{
    const char *slash = strrchr (msg->topic, '/');
    char run_id[80];
    if (!slash || mp_copy_str (msg->body.root, MK_runId, run_id, sizeof (run_id)))
        return;
    ws_run_t *run = (ws_run_t *) zhashx_lookup (h->runs, run_id);
    if (!run)
        return;
    const char *type = slash + 1;
    //  The starter always gets its run's events this way, never from the
    //  bus (a subscription made just before could miss the first ones:
    //  PITFALLS 1); s_on_sub skips the starter for them.
    if (!run->ended) {
        ws_frame_t *f = s_event_frame (type, msg->body.root);
        ws_hub_send_to (h->hub, run->client, f, NULL);
        ws_frame_unref (f);
    }
    if (run_event_ends (type)) {
        zhashx_delete (h->calls, run->corr);  //  Its SESSION_RUN is over
        run->ended = true;
        run->ended_at = zclock_mono ();
        ratelimit_front_release (ws_hub_limits (h->hub), &run->ticket);
    }
}

static void
s_on_front (ws_hub_self_t *h)
{
    for (int budget = 0; budget < 256; budget++) {
        bus_msg_t msg;
        if (bus_front_recv (h->front, 0, &msg))
            break;
        if (msg.kind == BUS_MSG_REPLY)
            s_on_reply (h, &msg);
        else
            s_on_direct_event (h, &msg);
        bus_msg_fini (&msg);
    }
}

//  One session event from the bus (topic and body as received): a frame
//  for every subscriber but the run's starter, who has it already.
static void
s_fan_out (ws_hub_self_t *h, const char *topic, const msgpack_object *body)
{
    const char *slash = strrchr (topic, '/');
    char key[ENVELOPE_KEY_MAX + 1];
    snprintf (key, sizeof (key), "%.*s", (int) (slash - topic), topic);
    zlistx_t *list = (zlistx_t *) zhashx_lookup (h->subs, key);
    if (!list || !zlistx_size (list))
        return;
    //  The starter of the run has it from the direct path.
    char run_id[80];
    ws_run_t *run = mp_copy_str (body, MK_runId, run_id, sizeof (run_id))
                        ? NULL
                        : (ws_run_t *) zhashx_lookup (h->runs, run_id);
    uint64_t skip = run ? run->client : 0;
    ws_frame_t *f = s_event_frame (slash + 1, body);
    ws_batch_t batch = {.n = 0};
    for (void *who = zlistx_first (list); who; who = zlistx_next (list))
        if ((uint64_t) (uintptr_t) who != skip)
            ws_hub_send_to (h->hub, (uint64_t) (uintptr_t) who, f, &batch);
    ws_writers_flush (h->hub->writers, &batch);
    ws_frame_unref (f);
}

//  Session events from the bus.
static void
s_on_sub (ws_hub_self_t *h)
{
    for (int budget = 0; budget < 256; budget++) {
        zmq_msg_t topic, body;
        zmq_msg_init (&topic);
        zmq_msg_init (&body);
        void *sock = zsock_resolve (h->sub);
        if (zmq_msg_recv (&topic, sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close (&topic);
            zmq_msg_close (&body);
            break;
        }
        bool two = zmq_msg_more (&topic) && zmq_msg_recv (&body, sock, 0) >= 0;
        while (zmq_msg_more (two ? &body : &topic)) {  //  Drain extra parts
            zmq_msg_t extra;
            zmq_msg_init (&extra);
            zmq_msg_recv (&extra, sock, 0);
            bool more = zmq_msg_more (&extra);
            zmq_msg_close (&extra);
            if (!more)
                break;
        }
        char t[BUS_MAX_TOPIC + 1];
        size_t tl = zmq_msg_size (&topic);
        const char *slash = NULL;
        if (two && tl <= BUS_MAX_TOPIC) {
            memcpy (t, zmq_msg_data (&topic), tl);
            t[tl] = 0;
            slash = strrchr (t, '/');
        }
        mp_reader_t rd;
        memset (&rd, 0, sizeof (rd));
        if (slash
            && mp_reader_init (&rd, zmq_msg_data (&body), zmq_msg_size (&body)) == 0)
            s_fan_out (h, t, rd.root);
        mp_reader_fini (&rd);
        zmq_msg_close (&topic);
        zmq_msg_close (&body);
    }
}

//  ---- Timers -----------------------------------------------------------------

static void
s_heartbeat (ws_hub_self_t *h)
{
    ws_hub_t *hub = h->hub;
    char text[128];
    snprintf (text, sizeof (text),
              "{\"type\":\"heartbeat\",\"data\":{\"timestamp\":%lld,"
              "\"status\":\"ok\"}}",
              (long long) zclock_time ());
    ws_frame_t *f = ws_frame_text (text);
    pthread_mutex_lock (&hub->registry_lock);
    zlistx_t *ids = zlistx_new ();
    for (ws_client_t *c = (ws_client_t *) zhashx_first (hub->clients); c;
         c = (ws_client_t *) zhashx_next (hub->clients))
        zlistx_add_end (ids, (void *) (uintptr_t) c->id);
    pthread_mutex_unlock (&hub->registry_lock);
    ws_batch_t batch = {.n = 0};
    for (void *id = zlistx_first (ids); id; id = zlistx_next (ids))
        ws_hub_send_to (hub, (uint64_t) (uintptr_t) id, f, &batch);
    ws_writers_flush (hub->writers, &batch);
    zlistx_destroy (&ids);
    ws_frame_unref (f);
}

//  Forgets idempotency keys past their 5 minutes, and runs that ended.
static void
s_sweep (ws_hub_self_t *h)
{
    int64_t now = zclock_mono ();
    //  Oldest first: stop at the first key still in its window.  (A key
    //  used again after it expired is in the list twice; its older copy
    //  stops the sweep until the newer entry expires, then goes too.)
    const char *first;
    while ((first = (const char *) zlistx_first (h->idem_order))) {
        ws_idem_t *i = (ws_idem_t *) zhashx_lookup (h->idem, first);
        if (i && i->expires > now)
            break;
        if (i)
            zhashx_delete (h->idem, first);
        free (zlistx_detach (h->idem_order, NULL));
    }
    //  Runs ended a while ago (their bus copies are through by now), and
    //  runs whose end never reached us (a lost actor): forget them.
    int64_t too_old = now - h->hub->config->request_timeout_ms - 60000;
    zlistx_t *lost = zlistx_new ();
    for (ws_run_t *r = (ws_run_t *) zhashx_first (h->runs); r;
         r = (ws_run_t *) zhashx_next (h->runs))
        if (r->started < too_old
            || (r->ended && now - r->ended_at > WS_RUN_ENDED_KEEP_MS))
            zlistx_add_end (lost, strdup ((const char *) zhashx_cursor (h->runs)));
    for (char *k = (char *) zlistx_first (lost); k; k = (char *) zlistx_next (lost)) {
        ws_run_t *r = (ws_run_t *) zhashx_lookup (h->runs, k);
        if (r)
            zhashx_delete (h->calls, r->corr);
        zhashx_delete (h->runs, k);
        free (k);
    }
    zlistx_destroy (&lost);
}

//  ---- The loop ---------------------------------------------------------------

//  Requests (and closes) from the connection threads.
static void
s_on_inbox (ws_hub_self_t *h)
{
    ws_hub_t *hub = h->hub;
    uint64_t n;
    if (read (hub->inbox_fd, &n, sizeof (n)) < 0)
        n = 0;
    while (true) {
        pthread_mutex_lock (&hub->inbox_lock);
        ws_inbox_t *item = (ws_inbox_t *) zlistx_first (hub->inbox);
        if (item)
            zlistx_delete (hub->inbox, zlistx_cursor (hub->inbox));
        pthread_mutex_unlock (&hub->inbox_lock);
        if (!item)
            break;
        if (!item->request)
            ws_methods_forget_client (h, item->client);
        else {
            ws_client_t *c = ws_hub_client_get (hub, item->client);
            if (c) {
                ws_methods_dispatch (h, c, item->request);
                ws_client_put (c);
            }
            cJSON_Delete (item->request);
        }
        free (item);
    }
}

static void
s_self_new (ws_hub_self_t *h, ws_hub_t *hub)
{
    memset (h, 0, sizeof (*h));
    h->hub = hub;
    h->front = bus_front_new (hub->config->requests_ep);
    h->lease = bus_front_new (hub->config->requests_ep);
    h->sub = zsock_new (ZMQ_SUB);
    if (h->sub) {
        zsock_set_rcvhwm (h->sub, 100000);
        if (zsock_connect (h->sub, "%s", hub->config->events_ep) < 0)
            log_error ("ws", "cannot subscribe to %s", hub->config->events_ep);
    }
    h->calls = zhashx_new ();
    zhashx_set_destructor (h->calls, s_call_free);
    h->runs = zhashx_new ();
    s_run_hub = hub;
    zhashx_set_destructor (h->runs, ws_hub_run_free);
    h->subs = zhashx_new ();
    zhashx_set_destructor (h->subs, s_list_free);
    h->idem = zhashx_new ();
    zhashx_set_destructor (h->idem, (zhashx_destructor_fn *) zstr_free);
    h->idem_order = zlistx_new ();
    if (!h->front || !h->sub)
        log_error ("ws", "the WebSocket hub has no broker connection");
    //  Without it the limiter cannot ask its actor and fails open, as it
    //  does with no bus; it must never fall back on h->front.
    if (!h->lease)
        log_error ("ws", "the WebSocket hub has no socket for its leases");
    h->next_heartbeat = zclock_mono () + hub->config->ws_heartbeat_ms;
    h->next_sweep = zclock_mono () + 5000;
}

static void
s_self_destroy (ws_hub_self_t *h)
{
    zhashx_destroy (&h->calls);
    zhashx_destroy (&h->runs);
    zhashx_destroy (&h->subs);
    zhashx_destroy (&h->idem);
    while (zlistx_size (h->idem_order))
        free (zlistx_detach (h->idem_order, NULL));
    zlistx_destroy (&h->idem_order);
    zsock_destroy (&h->sub);
    bus_front_destroy (&h->lease);
    bus_front_destroy (&h->front);
}

static void *
s_hub_thread (void *arg)
{
    ws_hub_t *hub = (ws_hub_t *) arg;
    pthread_setname_np (pthread_self (), "cg-ws-hub");
    ws_hub_self_t h;
    s_self_new (&h, hub);
    while (!atomic_load (&hub->stopping)) {
        zmq_pollitem_t items[3] = {
            {NULL, hub->inbox_fd, ZMQ_POLLIN, 0},
            {h.front ? zsock_resolve (bus_front_sock (h.front)) : NULL, 0, ZMQ_POLLIN, 0},
            {h.sub ? zsock_resolve (h.sub) : NULL, 0, ZMQ_POLLIN, 0},
        };
        int n = h.front && h.sub ? 3 : 1;
        int64_t wait = h.next_heartbeat - zclock_mono ();
        if (wait > 200)
            wait = 200;  //  Notice `stopping` soon
        if (wait < 0)
            wait = 0;
        if (zmq_poll (items, n, (long) wait) < 0 && errno != EINTR)
            break;
        if (items[0].revents & ZMQ_POLLIN)
            s_on_inbox (&h);
        if (n > 1 && (items[1].revents & ZMQ_POLLIN))
            s_on_front (&h);
        if (n > 2 && (items[2].revents & ZMQ_POLLIN))
            s_on_sub (&h);
        int64_t now = zclock_mono ();
        if (now >= h.next_heartbeat) {
            s_heartbeat (&h);
            h.next_heartbeat = now + hub->config->ws_heartbeat_ms;
        }
        if (now >= h.next_sweep) {
            s_sweep (&h);
            h.next_sweep = now + 5000;
        }
    }
    s_self_destroy (&h);
    return NULL;
}

//  ---- Life cycle -------------------------------------------------------------

ws_hub_t *
ws_hub_new (const cg_config_t *cfg, server_t *server)
{
    ws_hub_t *hub = (ws_hub_t *) calloc (1, sizeof (ws_hub_t));
    if (!hub)
        return NULL;
    ws_methods_check ();
    hub->config = cfg;
    hub->server = server;
    atomic_init (&hub->next_id, 1);
    atomic_init (&hub->stopping, false);
    pthread_mutex_init (&hub->registry_lock, NULL);
    pthread_mutex_init (&hub->inbox_lock, NULL);
    hub->clients = zhashx_new ();
    hub->inbox = zlistx_new ();
    hub->inbox_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    //  The writers first: the hub queues frames from its first turn.
    hub->writers = ws_writers_new (cfg->ws_writers, cfg->ws_queue_frames);
    if (hub->inbox_fd < 0 || !hub->writers
        || pthread_create (&hub->thread, NULL, s_hub_thread, hub)) {
        ws_hub_destroy (&hub);
        return NULL;
    }
    hub->started = true;
    return hub;
}

void
ws_hub_destroy (ws_hub_t **self_p)
{
    ws_hub_t *hub = *self_p;
    if (!hub)
        return;
    //  The hub first (it queues work for the writers), then the writers,
    //  which finish the work list.
    atomic_store (&hub->stopping, true);
    if (hub->started)
        pthread_join (hub->thread, NULL);
    ws_writers_destroy (&hub->writers);
    //  mg_stop has closed every client by now; drain what is left.
    for (ws_inbox_t *i = (ws_inbox_t *) zlistx_first (hub->inbox); i;
         i = (ws_inbox_t *) zlistx_next (hub->inbox)) {
        cJSON_Delete (i->request);
        free (i);
    }
    zlistx_destroy (&hub->inbox);
    zhashx_destroy (&hub->clients);
    if (hub->inbox_fd >= 0)
        close (hub->inbox_fd);
    pthread_mutex_destroy (&hub->inbox_lock);
    pthread_mutex_destroy (&hub->registry_lock);
    free (hub);
    *self_p = NULL;
}
