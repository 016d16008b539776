/*  =========================================================================
    ws - WebSocket clients, the hub that speaks to the broker for them, and
    the writers that send their frames (see ws.h for who owns what)
    =========================================================================
*/
#include "ws.h"

#include "auth.h"
#include "bus_front.h"
#include "gate.h"
#include "http.h"
#include "ids.h"
#include "json_in.h"
#include "log.h"
#include "mpjson.h"
#include "ratelimit_front.h"
#include "error.h"
#include "run_call.h"
#include "server.h"

#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WS_IDEMPOTENCY_MS (5 * 60 * 1000)
//  Keys remembered at most: past it the oldest is forgotten before its
//  5 minutes (a flood of keys must not grow the hub without bound).
#define WS_IDEMPOTENCY_MAX 20000
//  How long an ended run is remembered: its copies from the event bus
//  arrive within milliseconds, and are recognised (the starter skipped)
//  while it is.
#define WS_RUN_ENDED_KEEP_MS 3000

//  ---- Frames: reference-counted text shared by every client that gets it --------

typedef struct frame_t frame_t;
//  The frame is kept as it goes on the wire (RFC 6455 section 5.2: FIN and
//  opcode, the length, then the payload; a server's frames are not
//  masked), so a writer sends it in one write, and a fan-out to N clients
//  builds it once.  (mg_websocket_write makes two writes of every frame:
//  its header, then its payload.)
struct frame_t {
    atomic_int refs;
    int opcode;                      //  MG_WEBSOCKET_OPCODE_*
    size_t len;                      //  Payload bytes
    size_t wire_len;                 //  Header and payload bytes
    char wire[];                     //  Header, payload, NUL
};

//  Caller owns the return value (one reference).
static frame_t *
s_frame_new (int opcode, const char *data, size_t len)
{
    frame_t *f = (frame_t *) malloc (sizeof (frame_t) + 10 + len + 1);
    if (!f)
        return NULL;
    atomic_init (&f->refs, 1);
    f->opcode = opcode;
    f->len = len;
    unsigned char *h = (unsigned char *) f->wire;
    size_t hdr;
    h[0] = (unsigned char) (0x80 | (opcode & 0x0f));
    if (len < 126) {
        h[1] = (unsigned char) len;
        hdr = 2;
    }
    else if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char) (len >> 8);
        h[3] = (unsigned char) len;
        hdr = 4;
    }
    else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
        hdr = 10;
    }
    memcpy (f->wire + hdr, data, len);
    f->wire[hdr + len] = 0;
    f->wire_len = hdr + len;
    return f;
}

static void
s_frame_unref (frame_t *f)
{
    if (f && atomic_fetch_sub (&f->refs, 1) == 1)
        free (f);
}

//  Serialises json into a text frame.  Caller owns the return value.
static frame_t *
s_frame_json (const cJSON *json)
{
    char *text = cJSON_PrintUnformatted (json);
    frame_t *f = text ? s_frame_new (MG_WEBSOCKET_OPCODE_TEXT, text, strlen (text))
                      : NULL;
    cJSON_free (text);
    return f;
}

//  ---- Clients ------------------------------------------------------------------------------

typedef struct qitem_t qitem_t;
struct qitem_t {
    frame_t *frame;                  //  One reference, owned
    qitem_t *next;
};

typedef struct {
    uint64_t id;
    char client_id[40];              //  uuid sent in `connected`
    struct mg_connection *conn;      //  civetweb's (valid until close)
    auth_ctx_t auth;                 //  Who, and which scopes
    pthread_mutex_t lock;            //  Guards everything below
    pthread_cond_t idle;             //  users fell to 0
    qitem_t *head, *tail;            //  Frames to send
    int queued;
    int64_t progress;                //  zclock_mono () the queue last moved
                                     //  (a write done, or queued onto empty)
    int users;                       //  Threads holding a pointer
    bool scheduled;                  //  On the writers' work list
    bool dead;                       //  Closed, lagged or failed: no writes
    bool closing;                    //  Send a close frame after the queue
    bool upgraded;                   //  Told the gate it is a WebSocket
    char addr[48];                   //  Its address, as the gate keys it
    //  A message arriving in fragments (RFC 6455 5.4), put together on the
    //  connection's own civetweb thread (no lock: only it touches these).
    char *frag;                      //  What came so far (owned), or NULL
    size_t frag_len;
    int frag_opcode;                 //  Its first frame's opcode; 0: none
    bool frag_over;                  //  Past the limit: the rest is dropped
} ws_client_t;

struct ws_hub_t {
    const cg_config_t *config;
    server_t *server;                //  Lent
    //  Clients by id (registry_lock).
    pthread_mutex_t registry_lock;
    zhashx_t *clients;               //  "id" -> ws_client_t
    atomic_uint_fast64_t next_id;
    atomic_int admitted;             //  Upgrades accepted and not yet closed:
                                     //  each holds a civetweb worker
    //  Requests from the connection threads to the hub.
    pthread_mutex_t inbox_lock;
    zlistx_t *inbox;                 //  inbox_t *
    int inbox_fd;                    //  eventfd: the inbox has items
    //  Work for the writers.
    pthread_mutex_t work_lock;
    pthread_cond_t work_cond;
    int idle_writers;                //  Writers waiting on work_cond
    zlistx_t *work;                  //  ws_client_t * (each holds a user)
    bool stopping;
    pthread_t hub_thread;
    pthread_t *writers;
    int n_writers;
    bool hub_started;
};

typedef struct {
    uint64_t client;                 //  Client id
    cJSON *request;                  //  Parsed request (owned); NULL: closed
} inbox_t;

//  Clients in the registry, kept beside it (under registry_lock) so that
//  ws_status_body can report them from any thread without the hub: the
//  HTTP routes have the server, not the hub.  One hub per process.
static atomic_int s_clients_now;

//  A pointer to client id with a user counted, or NULL if it is gone.
static ws_client_t *
s_client_get (ws_hub_t *hub, uint64_t id)
{
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) id);
    pthread_mutex_lock (&hub->registry_lock);
    ws_client_t *c = (ws_client_t *) zhashx_lookup (hub->clients, key);
    if (c) {
        pthread_mutex_lock (&c->lock);
        c->users++;
        pthread_mutex_unlock (&c->lock);
    }
    pthread_mutex_unlock (&hub->registry_lock);
    return c;
}

static void
s_client_put (ws_client_t *c)
{
    pthread_mutex_lock (&c->lock);
    if (--c->users == 0)
        pthread_cond_broadcast (&c->idle);
    pthread_mutex_unlock (&c->lock);
}

//  Drops the queue; lock held.
static void
s_client_flush (ws_client_t *c)
{
    while (c->head) {
        qitem_t *q = c->head;
        c->head = q->next;
        s_frame_unref (q->frame);
        free (q);
    }
    c->tail = NULL;
    c->queued = 0;
}

//  A queue past queueFrames is a lagging client only if its writer has
//  made no progress for this long: a burst (a fast model, thousands of
//  deltas at once) briefly outruns any writer while the client reads fine.
#define WS_LAG_MS 1000
//  ... and past this many times queueFrames it is dropped regardless, so
//  memory stays bounded.
#define WS_HARD_FACTOR 16

//  Clients that s_send found off the work list, put on it together: a
//  fan-out to 1,000 clients then takes the writers' lock and wakes them
//  some 16 times, not 1,000.
#define WS_SCHED_BATCH 64
typedef struct {
    ws_client_t *c[WS_SCHED_BATCH];  //  Each holds a user for the work list
    int n;
} sched_t;

static void
s_schedule_flush (ws_hub_t *hub, sched_t *s)
{
    if (!s->n)
        return;
    pthread_mutex_lock (&hub->work_lock);
    for (int i = 0; i < s->n; i++)
        zlistx_add_end (hub->work, s->c[i]);
    //  A busy writer comes back for more by itself: wake only those that
    //  sleep, all of them when there is work enough to share.
    if (hub->idle_writers > 0) {
        if (s->n > 1)
            pthread_cond_broadcast (&hub->work_cond);
        else
            pthread_cond_signal (&hub->work_cond);
    }
    pthread_mutex_unlock (&hub->work_lock);
    s->n = 0;
}

//  Queues f on c (adds a reference) and has a writer send it: through
//  batch when given (the caller flushes it), else at once.  A client
//  whose queue is over the limit and stuck is lagged: queue replaced by
//  the notice, then closed.
static void
s_send_batched (ws_hub_t *hub, ws_client_t *c, frame_t *f, sched_t *batch)
{
    if (!f)
        return;
    pthread_mutex_lock (&c->lock);
    if (c->dead || c->closing) {
        pthread_mutex_unlock (&c->lock);
        return;
    }
    frame_t *add = f;
    int64_t now = zclock_mono ();
    if (c->queued == 0)
        c->progress = now;
    int limit = hub->config->ws_queue_frames;
    if (c->queued >= limit
        && (now - c->progress >= WS_LAG_MS
            || c->queued >= limit * WS_HARD_FACTOR)) {
        log_warn ("ws", "client %llu lagged %d frames behind: dropping it",
                  (unsigned long long) c->id, c->queued);
        s_client_flush (c);
        static const char lagged[] = "{\"type\":\"lagged\"}";
        add = s_frame_new (MG_WEBSOCKET_OPCODE_TEXT, lagged, sizeof (lagged) - 1);
        c->closing = true;
    }
    else
        atomic_fetch_add (&add->refs, 1);
    qitem_t *q = add ? (qitem_t *) calloc (1, sizeof (qitem_t)) : NULL;
    if (q) {
        q->frame = add;
        if (c->tail)
            c->tail->next = q;
        else
            c->head = q;
        c->tail = q;
        c->queued++;
    }
    else
        s_frame_unref (add);
    bool wake = !c->scheduled;
    if (wake) {
        c->scheduled = true;
        c->users++;   //  The work list's
    }
    pthread_mutex_unlock (&c->lock);
    if (wake) {
        sched_t one = {.n = 0};
        sched_t *s = batch ? batch : &one;
        s->c[s->n++] = c;
        if (s->n == WS_SCHED_BATCH || !batch)
            s_schedule_flush (hub, s);
    }
}

static void
s_send (ws_hub_t *hub, ws_client_t *c, frame_t *f)
{
    s_send_batched (hub, c, f, NULL);
}

//  Queues f on client id, if it is still there (through batch, if given).
static void
s_send_to (ws_hub_t *hub, uint64_t id, frame_t *f, sched_t *batch)
{
    ws_client_t *c = s_client_get (hub, id);
    if (c) {
        s_send_batched (hub, c, f, batch);
        s_client_put (c);
    }
}

//  ---- Writers ------------------------------------------------------------------------------

//  Sends c's queue until it is empty (the calling writer owns c's sending
//  meanwhile: c->scheduled).
static void
s_write_queue (ws_client_t *c)
{
    while (true) {
        pthread_mutex_lock (&c->lock);
        qitem_t *q = c->dead ? NULL : c->head;
        if (q) {
            c->head = q->next;
            if (!c->head)
                c->tail = NULL;
            c->queued--;
        }
        bool close_now = !q && c->closing && !c->dead;
        if (!q)
            c->scheduled = false;
        pthread_mutex_unlock (&c->lock);
        if (close_now) {
            //  After the lagged notice: a close frame, then silence.
            mg_websocket_write (c->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE,
                                "\x03\xe8", 2);
            pthread_mutex_lock (&c->lock);
            c->dead = true;
            s_client_flush (c);
            pthread_mutex_unlock (&c->lock);
        }
        if (!q)
            break;
        //  civetweb's own writes to this connection (pongs, close
        //  answers) take the same lock.
        mg_lock_connection (c->conn);
        int rc = mg_write (c->conn, q->frame->wire, q->frame->wire_len);
        mg_unlock_connection (c->conn);
        if (rc >= 0 && (size_t) rc < q->frame->wire_len)
            rc = -1;   //  Cut short: the stream is no longer framed
        s_frame_unref (q->frame);
        free (q);
        pthread_mutex_lock (&c->lock);
        c->progress = zclock_mono ();
        pthread_mutex_unlock (&c->lock);
        if (rc <= 0) {
            pthread_mutex_lock (&c->lock);
            c->dead = true;
            s_client_flush (c);
            c->scheduled = false;
            pthread_mutex_unlock (&c->lock);
            break;
        }
    }
}

static void *
s_writer (void *arg)
{
    ws_hub_t *hub = (ws_hub_t *) arg;
    pthread_setname_np (pthread_self (), "cg-ws-writer");
    while (true) {
        pthread_mutex_lock (&hub->work_lock);
        while (!hub->stopping && zlistx_size (hub->work) == 0) {
            hub->idle_writers++;
            pthread_cond_wait (&hub->work_cond, &hub->work_lock);
            hub->idle_writers--;
        }
        //  One client at a time: a writer blocked on a slow client's
        //  socket must not hold others that another writer could serve.
        ws_client_t *c = (ws_client_t *) zlistx_first (hub->work);
        if (c)
            zlistx_delete (hub->work, zlistx_cursor (hub->work));
        bool stop = !c && hub->stopping;
        pthread_mutex_unlock (&hub->work_lock);
        if (stop)
            break;
        if (c) {
            s_write_queue (c);
            s_client_put (c);
        }
    }
    return NULL;
}


//  ---- Replies --------------------------------------------------------------------------------

//  {"type":"response","id":id,"result":result}; takes result.
static void
s_reply (ws_hub_t *hub, uint64_t client, const cJSON *id, cJSON *result)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "type", "response");
    cJSON_AddItemToObject (j, "id", id ? cJSON_Duplicate (id, 1) : cJSON_CreateNull ());
    cJSON_AddItemToObject (j, "result", result ? result : cJSON_CreateObject ());
    frame_t *f = s_frame_json (j);
    cJSON_Delete (j);
    s_send_to (hub, client, f, NULL);
    s_frame_unref (f);
}

static cJSON *
s_error_json (const cJSON *id, int status, const char *code, const char *message,
              const char *param)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "type", "error");
    cJSON_AddItemToObject (j, "id", id ? cJSON_Duplicate (id, 1) : cJSON_CreateNull ());
    cJSON_AddItemToObject (j, "error", error_json (status, code, message, param));
    return j;
}

static void
s_reply_error (ws_hub_t *hub, uint64_t client, const cJSON *id, int status,
               const char *code, const char *message, const char *param)
{
    cJSON *j = s_error_json (id, status, code, message, param);
    frame_t *f = s_frame_json (j);
    cJSON_Delete (j);
    s_send_to (hub, client, f, NULL);
    s_frame_unref (f);
}

//  ---- The hub ------------------------------------------------------------------------------------

typedef struct {
    uint64_t client;
    cJSON *id;                       //  Request id (owned)
    char method[32];
    char key[ENVELOPE_KEY_MAX + 1];  //  chat.run: its session
    char run_id[80];                 //  chat.run / chat.abort: the run
    char corr[24];                   //  Its key in calls
} call_t;

typedef struct {
    uint64_t client;                 //  Who started it
    bool ended;                      //  Its end went out (kept a while so
                                     //  its bus copies are still recognised)
    int64_t ended_at;                //  zclock_mono ()
    char key[ENVELOPE_KEY_MAX + 1];
    char corr[24];                   //  Its SESSION_RUN's entry in calls
    int64_t started;                 //  zclock_mono ()
    rl_ticket_t ticket;              //  Its concurrency slot, held to its end
} run_t;

typedef struct {
    char run_id[80];
    char key[ENVELOPE_KEY_MAX + 1];
    int64_t expires;                 //  zclock_mono ()
} idem_t;

typedef struct {
    ws_hub_t *hub;
    bus_front_t *front;              //  Requests; direct events of our runs
    bus_front_t *lease;              //  The limiter's round trips, and
                                     //  nothing else (see s_dispatch)
    zsock_t *sub;                    //  Events of subscribed sessions
    zhashx_t *calls;                 //  corr id -> call_t (owned)
    zhashx_t *runs;                  //  runId -> run_t (owned)
    zhashx_t *subs;                  //  sessionKey -> zlistx of client ids
    zhashx_t *idem;                  //  principal + key -> idem_t (owned)
    zlistx_t *idem_order;            //  Its keys, oldest first (owned
                                     //  copies; = expiry order)
    int64_t next_heartbeat;
    int64_t next_sweep;
} hub_t;

static void
s_call_free (void **item)
{
    call_t *c = (call_t *) *item;
    if (c) {
        cJSON_Delete (c->id);
        free (c);
    }
    *item = NULL;
}

static ratelimit_front_t *s_limits_of (ws_hub_t *hub);

//  Frees a run_t, giving back its slot.  The hub is reached through a
//  file static set by the hub thread (one hub per process).
static ws_hub_t *s_run_hub;

static void
s_run_free (void **item)
{
    run_t *r = (run_t *) *item;
    if (r) {
        ratelimit_front_release (s_limits_of (s_run_hub), &r->ticket);
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

//  Sends a request for client; the reply finds its way back by corr id.
//  key, when not NULL, is the routing key: the broker sends every request
//  with one key to the same worker of service (a session's runs, and the
//  abort of a run to the worker that has it).  Takes body's bytes
//  (copied).  Returns 0 or replies 503 itself.
static int
s_call (hub_t *h, uint64_t client, const cJSON *id, const char *method,
        const char *service, const char *type, const char *key,
        mp_writer_t *body, call_t **call_out)
{
    envelope_t env;
    envelope_init (&env, type);
    env.timeout_ms = h->hub->config->control_timeout_ms;
    if (key)
        snprintf (env.session_key, sizeof (env.session_key), "%s", key);
    if (bus_front_send (h->front, service, &env, body->buf.data, body->buf.size)) {
        s_reply_error (h->hub, client, id, 503, "service_unavailable",
                       "The broker is not taking requests", NULL);
        return -1;
    }
    call_t *c = (call_t *) calloc (1, sizeof (call_t));
    if (!c)
        return -1;
    c->client = client;
    c->id = id ? cJSON_Duplicate (id, 1) : NULL;
    snprintf (c->method, sizeof (c->method), "%s", method);
    snprintf (c->corr, sizeof (c->corr), "%llu", (unsigned long long) env.corr_id);
    zhashx_insert (h->calls, c->corr, c);
    if (call_out)
        *call_out = c;
    return 0;
}

//  ---- Methods ----------------------------------------------------------------

static ratelimit_front_t *
s_limits_of (ws_hub_t *hub)
{
    return server_limits (hub->server);
}

static void
s_chat_run (hub_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
            rl_ticket_t *ticket)
{
    ws_hub_t *hub = h->hub;
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive (params, "options");
    const cJSON *idem = cJSON_GetObjectItemCaseSensitive (params, "idempotencyKey");
    const cJSON *agent = cJSON_GetObjectItemCaseSensitive (opts, "agentId");
    if (!agent)
        agent = cJSON_GetObjectItemCaseSensitive (params, "agentId");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive (opts, "stream");
    run_catalog_t cat = http_run_catalog (hub->config);
    run_call_t rc;
    run_call_init (&rc, h->front, hub->config->request_timeout_ms);
    run_check_t chk;
    //  Deltas are what a WebSocket client is for: stream unless told not to.
    if (run_call_agent (&rc, &cat, params, agent, "webchat",
                        !cJSON_IsFalse (stream), &chk)) {
        s_reply_error (hub, cl->id, id, chk.status, chk.code, chk.message,
                       chk.param[0] ? chk.param : NULL);
        run_call_fini (&rc);
        return;
    }
    if (idem && !cJSON_IsNull (idem)
        && (!cJSON_IsString (idem) || !*idem->valuestring
            || strlen (idem->valuestring) > 256)) {
        s_reply_error (hub, cl->id, id, 400, "invalid_request",
                       "idempotencyKey must be a string of 1-256 characters",
                       "idempotencyKey");
        run_call_fini (&rc);
        return;
    }

    char idem_key[400] = "";
    if (cJSON_IsString (idem)) {
        snprintf (idem_key, sizeof (idem_key), "%s\n%s", cl->auth.principal,
                  idem->valuestring);
        idem_t *seen = (idem_t *) zhashx_lookup (h->idem, idem_key);
        if (seen && seen->expires > zclock_mono ()) {
            cJSON *r = cJSON_CreateObject ();
            cJSON_AddStringToObject (r, "runId", seen->run_id);
            cJSON_AddStringToObject (r, "sessionKey", seen->key);
            cJSON_AddBoolToObject (r, "duplicate", true);
            s_reply (hub, cl->id, id, r);
            run_call_fini (&rc);
            return;
        }
    }
    run_t *run = (run_t *) calloc (1, sizeof (run_t));
    if (!run) {
        run_call_fini (&rc);
        return;
    }
    run->client = cl->id;
    //  The run holds the slot until it ends (s_run_free gives it back).
    run->ticket = *ticket;
    ticket->slot = NULL;
    char run_id[80];
    snprintf (run_id, sizeof (run_id), "%s", rc.run_id);
    snprintf (run->key, sizeof (run->key), "%s", rc.session);
    call_t *call = NULL;
    int sent = s_call (h, cl->id, id, "chat.run", "session", "SESSION_RUN",
                     run->key, &rc.body, &call);
    run_call_fini (&rc);
    if (sent) {
        void *item = run;
        s_run_free (&item);
        return;
    }
    snprintf (call->run_id, sizeof (call->run_id), "%s", run_id);
    snprintf (call->key, sizeof (call->key), "%s", run->key);
    run->started = zclock_mono ();
    snprintf (run->corr, sizeof (run->corr), "%s", call->corr);
    zhashx_insert (h->runs, run_id, run);
    if (idem_key[0]) {
        idem_t *i = (idem_t *) calloc (1, sizeof (idem_t));
        if (i) {
            snprintf (i->run_id, sizeof (i->run_id), "%s", run_id);
            snprintf (i->key, sizeof (i->key), "%s", run->key);
            i->expires = zclock_mono () + WS_IDEMPOTENCY_MS;
            while (zhashx_size (h->idem) >= WS_IDEMPOTENCY_MAX
                   && zlistx_size (h->idem_order) > 0) {
                char *old = (char *) zlistx_detach (h->idem_order, NULL);
                zhashx_delete (h->idem, old);
                free (old);
            }
            zhashx_update (h->idem, idem_key, i);
            zlistx_add_end (h->idem_order, strdup (idem_key));
        }
    }
    //  The session actor answers only a refusal; the run's id is ours, so
    //  the client has it now and its events follow.
    cJSON *r = cJSON_CreateObject ();
    cJSON_AddStringToObject (r, "runId", run_id);
    cJSON_AddStringToObject (r, "sessionKey", run->key);
    s_reply (hub, cl->id, id, r);
}

static void
s_chat_abort (hub_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive (params, "runId");
    if (!cJSON_IsString (run) || !*run->valuestring
        || strlen (run->valuestring) >= 80) {
        s_reply_error (h->hub, cl->id, id, 400, "invalid_request",
                       "'runId' is required", "runId");
        return;
    }
    //  The abort must reach the session worker that has the run: it goes
    //  with the run's session as its key, as the run's start did.  A run
    //  this hub did not start (or forgot, 10 s after its end) has no key
    //  here and goes to any worker; with one session worker that is the
    //  right one, and a run that is unknown or over gets aborted:false
    //  from any (SPEC section 2).
    run_t *known = (run_t *) zhashx_lookup (h->runs, run->valuestring);
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 1);
    mp_kv_str (&w, "runId", run->valuestring);
    s_call (h, cl->id, id, "chat.abort", "session", "SESSION_ABORT",
            known ? known->key : NULL, &w, NULL);
    mp_writer_fini (&w);
}

static void
s_session_call (hub_t *h, ws_client_t *cl, const cJSON *id, const char *method,
                const cJSON *params)
{
    bool get = streq (method, "session.get");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive (params, "sessionKey");
    if (get && (!cJSON_IsString (key) || !ids_session_key_valid (key->valuestring))) {
        s_reply_error (h->hub, cl->id, id, 400, "invalid_request",
                       "Invalid session key", "sessionKey");
        return;
    }
    //  Optional paging and filters pass through; the actor checks them.
    static const char *const names[] = {"limit", "cursor", "channel", "agentId",
                                        NULL};
    for (int i = 0; names[i]; i++)
        if (json_in_deeper_than (cJSON_GetObjectItemCaseSensitive (params, names[i]),
                                 MP_MAX_DEPTH - 1)) {
            //  More than a message on the bus can carry.
            s_reply_error (h->hub, cl->id, id, 400, "invalid_request",
                           "A parameter is nested too deep", names[i]);
            return;
        }
    mp_writer_t w;
    mp_writer_init (&w);
    size_t n = get ? 1 : 0;
    for (int i = 0; names[i]; i++)
        n += cJSON_GetObjectItemCaseSensitive (params, names[i]) != NULL
             && !cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (params, names[i]));
    msgpack_pack_map (&w.pk, n);
    if (get)
        mp_kv_str (&w, "sessionKey", key->valuestring);
    for (int i = 0; names[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive (params, names[i]);
        if (v && !cJSON_IsNull (v)) {
            mp_key (&w, names[i]);
            mpjson_pack (&w.pk, v);
        }
    }
    s_call (h, cl->id, id, method, "session.read", get ? "SESSION_GET" : "SESSION_LIST",
            NULL, &w, NULL);
    mp_writer_fini (&w);
}

static void
s_system_status (hub_t *h, ws_client_t *cl, const cJSON *id)
{
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 0);
    s_call (h, cl->id, id, "system.status", "system", "SYSTEM_STATUS", NULL, &w,
            NULL);
    mp_writer_fini (&w);
}

//  browser.status / navigate / screenshot: the fields are checked for type
//  here (param named on a 400), their values by the browser actor.  The
//  actor answers every request itself, at its deadline at the latest.
static void
s_browser_call (hub_t *h, ws_client_t *cl, const cJSON *id, const char *method,
                const cJSON *params)
{
    static const char *const status_f[] = {"profile", NULL};
    static const char *const nav_f[] = {"url", "profile", "timeoutMs", NULL};
    static const char *const shot_f[] = {"selector", "fullPage", "profile", NULL};
    const char *type;
    const char *const *names;
    if (streq (method, "browser.status"))
        type = "BROWSER_STATUS", names = status_f;
    else if (streq (method, "browser.navigate"))
        type = "BROWSER_NAVIGATE", names = nav_f;
    else
        type = "BROWSER_SCREENSHOT", names = shot_f;
    size_t n = 0;
    for (int i = 0; names[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive (params, names[i]);
        bool absent = !v || cJSON_IsNull (v);
        bool ok;
        if (streq (names[i], "fullPage"))
            ok = absent || cJSON_IsBool (v);
        else if (streq (names[i], "timeoutMs"))
            ok = absent || (cJSON_IsNumber (v) && v->valuedouble >= 100
                            && v->valuedouble <= 600000
                            && v->valuedouble == (double) (int) v->valuedouble);
        else if (streq (names[i], "url"))
            ok = cJSON_IsString (v) && *v->valuestring;
        else
            ok = absent || cJSON_IsString (v);
        if (!ok) {
            char msg[96];
            snprintf (msg, sizeof (msg), "'%s' has the wrong type or value",
                      names[i]);
            s_reply_error (h->hub, cl->id, id, 400, "invalid_request", msg,
                           names[i]);
            return;
        }
        n += !absent;
    }
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, n);
    for (int i = 0; names[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive (params, names[i]);
        if (v && !cJSON_IsNull (v)) {
            mp_key (&w, names[i]);
            mpjson_pack (&w.pk, v);
        }
    }
    s_call (h, cl->id, id, method, "browser", type, NULL, &w, NULL);
    mp_writer_fini (&w);
}

//  session.subscribe / unsubscribe: the hub's SUB follows the union of its
//  clients' sessions.
static void
s_subscribe (hub_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
             bool on)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive (params, "sessionKey");
    if (!cJSON_IsString (key) || !ids_session_key_valid (key->valuestring)) {
        s_reply_error (h->hub, cl->id, id, 400, "invalid_request",
                       "Invalid session key", "sessionKey");
        return;
    }
    const char *k = key->valuestring;
    zlistx_t *list = (zlistx_t *) zhashx_lookup (h->subs, k);
    void *who = (void *) (uintptr_t) cl->id;
    char prefix[ENVELOPE_KEY_MAX + 2];
    snprintf (prefix, sizeof (prefix), "%s/", k);
    if (on && !(list && zlistx_find (list, who))) {
        if (!list) {
            list = zlistx_new ();
            zhashx_insert (h->subs, k, list);
            zsock_set_subscribe (h->sub, prefix);
        }
        zlistx_add_end (list, who);
    }
    else if (!on && list && zlistx_find (list, who)) {
        zlistx_delete (list, zlistx_find (list, who));
        if (zlistx_size (list) == 0) {
            zsock_set_unsubscribe (h->sub, prefix);
            zhashx_delete (h->subs, k);
        }
    }
    cJSON *r = cJSON_CreateObject ();
    cJSON_AddStringToObject (r, "sessionKey", k);
    cJSON_AddBoolToObject (r, "subscribed", on);
    s_reply (h->hub, cl->id, id, r);
}

//  Drops everything the hub holds for a client that closed.  Its runs go
//  on (SPEC: a WebSocket client that disconnects does not kill its run).
static void
s_forget_client (hub_t *h, uint64_t client)
{
    void *who = (void *) (uintptr_t) client;
    zlistx_t *empty = zlistx_new ();
    for (zlistx_t *list = (zlistx_t *) zhashx_first (h->subs); list;
         list = (zlistx_t *) zhashx_next (h->subs)) {
        void *handle = zlistx_find (list, who);
        if (handle)
            zlistx_delete (list, handle);
        if (zlistx_size (list) == 0)
            zlistx_add_end (empty, (void *) zhashx_cursor (h->subs));
    }
    for (const char *k = (const char *) zlistx_first (empty); k;
         k = (const char *) zlistx_next (empty)) {
        char prefix[ENVELOPE_KEY_MAX + 2];
        snprintf (prefix, sizeof (prefix), "%s/", k);
        zsock_set_unsubscribe (h->sub, prefix);
        zhashx_delete (h->subs, k);
    }
    zlistx_destroy (&empty);
}

//  Scope each method needs (SPEC section 1).
static unsigned
s_scope (const char *method)
{
    if (!strncmp (method, "chat.", 5))
        return SCOPE_CHAT;
    if (!strncmp (method, "session.", 8))
        return SCOPE_SESSIONS;
    if (!strncmp (method, "channel.", 8))
        return SCOPE_CHANNELS;
    if (!strncmp (method, "browser.", 8))
        return SCOPE_BROWSER;
    return 0;
}

static void
s_dispatch (hub_t *h, ws_client_t *cl, const cJSON *req)
{
    ws_hub_t *hub = h->hub;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive (req, "id");
    if (id && !cJSON_IsNumber (id) && !cJSON_IsString (id) && !cJSON_IsNull (id))
        id = NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive (req, "method");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive (req, "params");
    if (!cJSON_IsString (m)) {
        s_reply_error (hub, cl->id, id, 400, "invalid_request",
                       "'method' is required and must be a string", "method");
        return;
    }
    if (params && !cJSON_IsNull (params) && !cJSON_IsObject (params)) {
        s_reply_error (hub, cl->id, id, 400, "invalid_request",
                       "'params' must be an object", "params");
        return;
    }
    const char *method = m->valuestring;
    unsigned scope = s_scope (method);
    if (scope && !(cl->auth.scopes & scope)) {
        s_reply_error (hub, cl->id, id, 403, "forbidden",
                       "This credential lacks the scope this method needs",
                       NULL);
        return;
    }
    //  Limits hold for WebSocket calls as for HTTP requests (one lease
    //  cache per front); subscriptions and status are not counted.  When
    //  the cache runs short (every new concurrent run needs one more slot)
    //  the limiter asks its actor with bus_front_call, which waits for its
    //  reply and drops whatever else arrives meanwhile.  On h->front that
    //  was the events of every run already streaming and the replies to
    //  other clients' calls (issue 16: runs that never saw a delta or their
    //  chat.done), so the lease calls go on a socket of their own, on
    //  which nothing else ever arrives.
    rl_ticket_t ticket;
    memset (&ticket, 0, sizeof (ticket));
    bool counted = strcmp (method, "session.subscribe")
                   && strcmp (method, "session.unsubscribe")
                   && strcmp (method, "system.status");
    if (counted && ratelimit_front_acquire (s_limits_of (hub), h->lease,
                                            cl->auth.principal, &ticket)) {
        cJSON *j = ratelimit_front_ws_error (&ticket, id);
        frame_t *f = s_frame_json (j);
        cJSON_Delete (j);
        s_send (hub, cl, f);
        s_frame_unref (f);
        return;
    }
    if (streq (method, "chat.run"))
        s_chat_run (h, cl, id, params, &ticket);
    else if (streq (method, "chat.abort"))
        s_chat_abort (h, cl, id, params);
    else if (streq (method, "session.list") || streq (method, "session.get"))
        s_session_call (h, cl, id, method, params);
    else if (streq (method, "session.subscribe"))
        s_subscribe (h, cl, id, params, true);
    else if (streq (method, "session.unsubscribe"))
        s_subscribe (h, cl, id, params, false);
    else if (streq (method, "system.status"))
        s_system_status (h, cl, id);
    else if (streq (method, "browser.screenshot")
             || streq (method, "browser.navigate")
             || streq (method, "browser.status"))
        s_browser_call (h, cl, id, method, params);
    else if (streq (method, "channel.list") || streq (method, "channel.status"))
        s_reply_error (hub, cl->id, id, 503, "service_unavailable",
                       "This gateway has no channel actor yet", NULL);
    else {
        char msg[96];
        snprintf (msg, sizeof (msg), "Unknown method '%.40s'", method);
        s_reply_error (hub, cl->id, id, 400, "invalid_request", msg, "method");
    }
    ratelimit_front_release (s_limits_of (hub), &ticket);   //  No-op if taken
}

//  ---- Bus traffic ------------------------------------------------------------------------------

//  {"type":type,"data":body} as a frame.  Caller owns it.
static frame_t *
s_event_frame (const char *type, const msgpack_object *body)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON_AddStringToObject (j, "type", type);
    cJSON *data = body ? mpjson_to_json (body) : NULL;
    cJSON_AddItemToObject (j, "data", data ? data : cJSON_CreateObject ());
    frame_t *f = s_frame_json (j);
    cJSON_Delete (j);
    return f;
}

static void
s_on_reply (hub_t *h, bus_msg_t *msg)
{
    ws_hub_t *hub = h->hub;
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) msg->env.corr_id);
    call_t *c = (call_t *) zhashx_lookup (h->calls, key);
    if (!c)
        return;
    const msgpack_object *b = msg->body.root;
    if (msg->env.status != 200) {
        char code[48] = "internal_error", message[512] = "Request failed",
             param[64] = "";
        mp_copy_str (b, "code", code, sizeof (code));
        mp_copy_str (b, "message", message, sizeof (message));
        mp_copy_str (b, "param", param, sizeof (param));
        if (streq (c->method, "chat.run")) {
            //  Refused after we answered with its runId: end it as an event.
            cJSON *ev = cJSON_CreateObject ();
            cJSON_AddStringToObject (ev, "type", "chat.error");
            cJSON *d = cJSON_AddObjectToObject (ev, "data");
            cJSON_AddStringToObject (d, "sessionKey", c->key);
            cJSON_AddStringToObject (d, "runId", c->run_id);
            cJSON_AddItemToObject (d, "error",
                                   error_json_event (msg->env.status, code,
                                                     message));
            frame_t *f = s_frame_json (ev);
            cJSON_Delete (ev);
            s_send_to (hub, c->client, f, NULL);
            s_frame_unref (f);
            zhashx_delete (h->runs, c->run_id);
        }
        else
            s_reply_error (hub, c->client, c->id, msg->env.status, code, message,
                           param[0] ? param : NULL);
    }
    else if (streq (c->method, "system.status")) {
        //  SPEC section 2: the same body as GET /status, from the same
        //  function.
        cJSON *result = ws_status_body (b, hub->config, hub->server);
        if (result)
            s_reply (hub, c->client, c->id, result);
        else
            s_reply_error (hub, c->client, c->id, 500, "internal_error",
                           "Malformed status from the system actor", NULL);
    }
    else {
        cJSON *result = b ? mpjson_to_json (b) : cJSON_CreateObject ();
        s_reply (hub, c->client, c->id, result);
    }
    zhashx_delete (h->calls, key);
}

//  An event of one of our clients' runs, routed to us directly.
static void
s_on_direct_event (hub_t *h, bus_msg_t *msg)
{
    const char *slash = strrchr (msg->topic, '/');
    char run_id[80];
    if (!slash || mp_copy_str (msg->body.root, "runId", run_id, sizeof (run_id)))
        return;
    run_t *run = (run_t *) zhashx_lookup (h->runs, run_id);
    if (!run)
        return;
    const char *type = slash + 1;
    //  The starter always gets its run's events this way, never from the
    //  bus (a subscription made just before could miss the first ones:
    //  PITFALLS 1); s_on_sub skips the starter for them.
    if (!run->ended) {
        frame_t *f = s_event_frame (type, msg->body.root);
        s_send_to (h->hub, run->client, f, NULL);
        s_frame_unref (f);
    }
    if (streq (type, "chat.done") || streq (type, "chat.error")) {
        zhashx_delete (h->calls, run->corr);   //  Its SESSION_RUN is over
        run->ended = true;
        run->ended_at = zclock_mono ();
        ratelimit_front_release (s_limits_of (h->hub), &run->ticket);
    }
}

static void
s_on_front (hub_t *h)
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

//  A session event from the bus: one frame for every subscriber.
static void
s_on_sub (hub_t *h)
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
        while (zmq_msg_more (two ? &body : &topic)) {   //  Drain extra parts
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
        if (slash && mp_reader_init (&rd, zmq_msg_data (&body), zmq_msg_size (&body)) == 0) {
            char key[ENVELOPE_KEY_MAX + 1];
            snprintf (key, sizeof (key), "%.*s", (int) (slash - t), t);
            zlistx_t *list = (zlistx_t *) zhashx_lookup (h->subs, key);
            if (list && zlistx_size (list)) {
                //  The starter of the run has it from the direct path.
                char run_id[80];
                run_t *run = mp_copy_str (rd.root, "runId", run_id, sizeof (run_id))
                                 ? NULL
                                 : (run_t *) zhashx_lookup (h->runs, run_id);
                uint64_t skip = run ? run->client : 0;
                frame_t *f = s_event_frame (slash + 1, rd.root);
                sched_t batch = {.n = 0};
                for (void *who = zlistx_first (list); who; who = zlistx_next (list))
                    if ((uint64_t) (uintptr_t) who != skip)
                        s_send_to (h->hub, (uint64_t) (uintptr_t) who, f, &batch);
                s_schedule_flush (h->hub, &batch);
                s_frame_unref (f);
            }
        }
        mp_reader_fini (&rd);
        zmq_msg_close (&topic);
        zmq_msg_close (&body);
    }
}

static void
s_heartbeat (hub_t *h)
{
    ws_hub_t *hub = h->hub;
    char text[128];
    snprintf (text, sizeof (text),
              "{\"type\":\"heartbeat\",\"data\":{\"timestamp\":%lld,"
              "\"status\":\"ok\"}}",
              (long long) zclock_time ());
    frame_t *f = s_frame_new (MG_WEBSOCKET_OPCODE_TEXT, text, strlen (text));
    pthread_mutex_lock (&hub->registry_lock);
    zlistx_t *ids = zlistx_new ();
    for (ws_client_t *c = (ws_client_t *) zhashx_first (hub->clients); c;
         c = (ws_client_t *) zhashx_next (hub->clients))
        zlistx_add_end (ids, (void *) (uintptr_t) c->id);
    pthread_mutex_unlock (&hub->registry_lock);
    sched_t batch = {.n = 0};
    for (void *id = zlistx_first (ids); id; id = zlistx_next (ids))
        s_send_to (hub, (uint64_t) (uintptr_t) id, f, &batch);
    s_schedule_flush (hub, &batch);
    zlistx_destroy (&ids);
    s_frame_unref (f);
}

//  Forgets idempotency keys past their 5 minutes.
static void
s_sweep (hub_t *h)
{
    int64_t now = zclock_mono ();
    //  Oldest first: stop at the first key still in its window.  (A key
    //  used again after it expired is in the list twice; its older copy
    //  stops the sweep until the newer entry expires, then goes too.)
    const char *first;
    while ((first = (const char *) zlistx_first (h->idem_order))) {
        idem_t *i = (idem_t *) zhashx_lookup (h->idem, first);
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
    for (run_t *r = (run_t *) zhashx_first (h->runs); r;
         r = (run_t *) zhashx_next (h->runs))
        if (r->started < too_old
            || (r->ended && now - r->ended_at > WS_RUN_ENDED_KEEP_MS))
            zlistx_add_end (lost, strdup ((const char *) zhashx_cursor (h->runs)));
    for (char *k = (char *) zlistx_first (lost); k; k = (char *) zlistx_next (lost)) {
        run_t *r = (run_t *) zhashx_lookup (h->runs, k);
        if (r)
            zhashx_delete (h->calls, r->corr);
        zhashx_delete (h->runs, k);
        free (k);
    }
    zlistx_destroy (&lost);
}

static void
s_on_inbox (hub_t *h)
{
    ws_hub_t *hub = h->hub;
    uint64_t n;
    if (read (hub->inbox_fd, &n, sizeof (n)) < 0)
        n = 0;
    while (true) {
        pthread_mutex_lock (&hub->inbox_lock);
        inbox_t *item = (inbox_t *) zlistx_first (hub->inbox);
        if (item)
            zlistx_delete (hub->inbox, zlistx_cursor (hub->inbox));
        pthread_mutex_unlock (&hub->inbox_lock);
        if (!item)
            break;
        if (!item->request)
            s_forget_client (h, item->client);
        else {
            ws_client_t *c = s_client_get (hub, item->client);
            if (c) {
                s_dispatch (h, c, item->request);
                s_client_put (c);
            }
            cJSON_Delete (item->request);
        }
        free (item);
    }
}

static void *
s_hub_thread (void *arg)
{
    ws_hub_t *hub = (ws_hub_t *) arg;
    pthread_setname_np (pthread_self (), "cg-ws-hub");
    hub_t h = {0};
    h.hub = hub;
    h.front = bus_front_new (hub->config->requests_ep);
    h.lease = bus_front_new (hub->config->requests_ep);
    h.sub = zsock_new (ZMQ_SUB);
    if (h.sub) {
        zsock_set_rcvhwm (h.sub, 100000);
        if (zsock_connect (h.sub, "%s", hub->config->events_ep) < 0)
            log_error ("ws", "cannot subscribe to %s", hub->config->events_ep);
    }
    h.calls = zhashx_new ();
    zhashx_set_destructor (h.calls, s_call_free);
    h.runs = zhashx_new ();
    s_run_hub = hub;
    zhashx_set_destructor (h.runs, s_run_free);
    h.subs = zhashx_new ();
    zhashx_set_destructor (h.subs, s_list_free);
    h.idem = zhashx_new ();
    zhashx_set_destructor (h.idem, (zhashx_destructor_fn *) zstr_free);
    h.idem_order = zlistx_new ();
    if (!h.front || !h.sub)
        log_error ("ws", "the WebSocket hub has no broker connection");
    //  Without it the limiter cannot ask its actor and fails open, as it
    //  does with no bus; it must never fall back on h.front.
    if (!h.lease)
        log_error ("ws", "the WebSocket hub has no socket for its leases");
    h.next_heartbeat = zclock_mono () + hub->config->ws_heartbeat_ms;
    h.next_sweep = zclock_mono () + 5000;
    while (true) {
        pthread_mutex_lock (&hub->work_lock);
        bool stop = hub->stopping;
        pthread_mutex_unlock (&hub->work_lock);
        if (stop)
            break;
        zmq_pollitem_t items[3] = {
            {NULL, hub->inbox_fd, ZMQ_POLLIN, 0},
            {h.front ? zsock_resolve (bus_front_sock (h.front)) : NULL, 0,
             ZMQ_POLLIN, 0},
            {h.sub ? zsock_resolve (h.sub) : NULL, 0, ZMQ_POLLIN, 0},
        };
        int n = h.front && h.sub ? 3 : 1;
        int64_t wait = h.next_heartbeat - zclock_mono ();
        if (wait > 200)
            wait = 200;   //  Notice `stopping` soon
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
    zhashx_destroy (&h.calls);
    zhashx_destroy (&h.runs);
    zhashx_destroy (&h.subs);
    zhashx_destroy (&h.idem);
    while (zlistx_size (h.idem_order))
        free (zlistx_detach (h.idem_order, NULL));
    zlistx_destroy (&h.idem_order);
    zsock_destroy (&h.sub);
    bus_front_destroy (&h.lease);
    bus_front_destroy (&h.front);
    return NULL;
}

//  ---- civetweb handlers (connection threads) -----------------------------------------------------

static void
s_inbox_push (ws_hub_t *hub, uint64_t client, cJSON *request)
{
    inbox_t *item = (inbox_t *) calloc (1, sizeof (inbox_t));
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

static int
s_on_connect (const struct mg_connection *conn, void *cbdata)
{
    ws_hub_t *hub = (ws_hub_t *) cbdata;
    struct mg_connection *c = (struct mg_connection *) conn;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    auth_ctx_t auth;
    auth_input_t in = {mg_get_header (conn, "Authorization"),
                       mg_get_header (conn, "X-OpenClaw-Password"),
                       ri->query_string};
    rl_ticket_t ticket;
    memset (&ticket, 0, sizeof (ticket));
    ratelimit_front_t *limits = s_limits_of (hub);
    bool blocked = ratelimit_front_check_address (limits, ri->remote_addr,
                                                  &ticket) != 0;
    auth_rc_t rc = blocked ? AUTH_INVALID : auth_check (hub->config, &in, &auth);
    if (!blocked && rc == AUTH_INVALID)
        blocked = ratelimit_front_auth_failed (limits, server_thread_bus (c),
                                               ri->remote_addr, &ticket) != 0;
    if (blocked) {
        http_req_t r = {0};
        r.conn = c;
        r.ri = ri;
        r.config = hub->config;
        r.close = true;
        http_send_error_h (&r, 429, "rate_limited", ratelimit_front_message (&ticket),
                           NULL, ticket.headers);
        log_info ("ws", "upgrade refused: 429");
        return 1;
    }
    if (rc != AUTH_OK || server_draining (hub->server)) {
        //  Refused before the handshake: a plain HTTP error, no event.
        http_req_t r = {0};
        r.conn = c;
        r.ri = ri;
        r.config = hub->config;
        r.close = true;
        if (rc != AUTH_OK)
            http_send_error_h (&r, 401, "unauthorized",
                               rc == AUTH_MISSING
                                   ? "Authentication required: ?token=<token> "
                                     "or Authorization: Bearer <token>"
                                   : "Invalid credentials",
                               NULL, "WWW-Authenticate: Bearer realm=\"clawgate\"\r\n");
        else
            http_send_error (&r, 503, "service_unavailable",
                             "The gateway is shutting down", NULL);
        log_info ("ws", "upgrade refused: %d", r.status);
        return 1;
    }
    //  A WebSocket client holds a civetweb worker for as long as it stays,
    //  so clients may take all but the reserved workers: those stay for
    //  plain HTTP, which WebSocket clients must never make unavailable.
    int cap = hub->config->threads - config_reserved_threads (hub->config);
    if (atomic_fetch_add (&hub->admitted, 1) >= cap) {
        atomic_fetch_sub (&hub->admitted, 1);
        http_req_t r = {0};
        r.conn = c;
        r.ri = ri;
        r.config = hub->config;
        r.close = true;
        char msg[160];
        snprintf (msg, sizeof (msg),
                  "All %d WebSocket places are taken (gateway.threads less "
                  "gateway.reservedThreads)",
                  cap);
        http_send_error_h (&r, 503, "service_unavailable", msg, NULL,
                           "Retry-After: 1\r\n");
        log_warn ("ws", "upgrade refused: %d WebSocket clients already", cap);
        return 1;
    }
    ws_client_t *cl = (ws_client_t *) calloc (1, sizeof (ws_client_t));
    if (!cl) {
        atomic_fetch_sub (&hub->admitted, 1);
        return 1;
    }
    cl->id = atomic_fetch_add (&hub->next_id, 1);
    cl->conn = c;
    cl->auth = auth;
    pthread_mutex_init (&cl->lock, NULL);
    pthread_cond_init (&cl->idle, NULL);
    ids_uuid (cl->client_id, sizeof (cl->client_id), "");
    mg_set_user_connection_data (c, cl);
    return 0;
}

static void
s_on_ready (struct mg_connection *conn, void *cbdata)
{
    ws_hub_t *hub = (ws_hub_t *) cbdata;
    ws_client_t *cl = (ws_client_t *) mg_get_user_connection_data (conn);
    if (!cl)
        return;
    //  From now on its worker is a WebSocket's, counted against the
    //  WebSocket places, not against its address's share of HTTP workers.
    snprintf (cl->addr, sizeof (cl->addr), "%s",
              mg_get_request_info (conn)->remote_addr);
    gate_websocket (server_gate (hub->server), cl->addr, true);
    cl->upgraded = true;
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) cl->id);
    pthread_mutex_lock (&hub->registry_lock);
    zhashx_insert (hub->clients, key, cl);
    atomic_store (&s_clients_now, (int) zhashx_size (hub->clients));
    pthread_mutex_unlock (&hub->registry_lock);
    char text[256];
    snprintf (text, sizeof (text),
              "{\"type\":\"connected\",\"data\":{\"clientId\":\"%s\","
              "\"gatewayVersion\":\"%s\",\"capabilities\":[\"chat\","
              "\"channels\",\"browser\"]}}",
              cl->client_id, CLAWGATE_VERSION);
    //  Queued like every frame, so it is first in line.
    frame_t *f = s_frame_new (MG_WEBSOCKET_OPCODE_TEXT, text, strlen (text));
    s_send (hub, cl, f);
    s_frame_unref (f);
    log_info ("ws", "client %llu connected (%s) as %s",
              (unsigned long long) cl->id, cl->client_id, cl->auth.principal);
}

static void
s_frag_reset (ws_client_t *cl)
{
    free (cl->frag);
    cl->frag = NULL;
    cl->frag_len = 0;
    cl->frag_opcode = 0;
    cl->frag_over = false;
}

static int
s_on_data (struct mg_connection *conn, int bits, char *data, size_t len,
           void *cbdata)
{
    ws_hub_t *hub = (ws_hub_t *) cbdata;
    ws_client_t *cl = (ws_client_t *) mg_get_user_connection_data (conn);
    int opcode = bits & 0x0f;
    if (!cl)
        return 0;
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
        //  RFC 6455 5.5.1: answer with a close frame echoing the status.
        pthread_mutex_lock (&cl->lock);
        bool dead = cl->dead;
        cl->dead = true;
        s_client_flush (cl);
        pthread_mutex_unlock (&cl->lock);
        if (!dead)
            mg_websocket_write (conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data,
                                len >= 2 ? 2 : 0);
        return 0;
    }
    if (opcode == MG_WEBSOCKET_OPCODE_PING) {
        //  RFC 6455 5.5.2: answer with the same payload.
        mg_websocket_write (conn, MG_WEBSOCKET_OPCODE_PONG, data,
                            len <= 125 ? len : 125);
        return 1;
    }
    if (opcode == MG_WEBSOCKET_OPCODE_PONG)
        return 1;
    const char *problem = NULL;
    char msg[160];
    cJSON *req = NULL;
    //  Fragments: gathered up to the frame limit, then taken as one message.
    bool fin = (bits & 0x80) != 0;
    bool whole = false;              //  data is cl->frag, freed below
    if (opcode == MG_WEBSOCKET_OPCODE_CONTINUATION || !fin) {
        if (opcode != MG_WEBSOCKET_OPCODE_CONTINUATION && cl->frag_opcode) {
            problem = "A new message began before the fragmented one ended";
            s_frag_reset (cl);
        }
        else if (opcode == MG_WEBSOCKET_OPCODE_CONTINUATION && !cl->frag_opcode)
            problem = "Continuation frame with no message to continue";
        else {
            if (!cl->frag_opcode)
                cl->frag_opcode = opcode;
            if (!cl->frag_over
                && (long long) (cl->frag_len + len) <= hub->config->max_frame_bytes) {
                char *grown = (char *) realloc (cl->frag, cl->frag_len + len + 1);
                if (grown) {
                    memcpy (grown + cl->frag_len, data, len);
                    cl->frag = grown;
                    cl->frag_len += len;
                }
                else
                    cl->frag_over = true;
            }
            else
                cl->frag_over = true;
            if (!fin)
                return 1;
            opcode = cl->frag_opcode;
            data = cl->frag;
            len = cl->frag_over ? (size_t) hub->config->max_frame_bytes + 1
                                : cl->frag_len;
            whole = true;
        }
    }
    if (!problem && opcode == MG_WEBSOCKET_OPCODE_BINARY)
        problem = "Binary frames are not accepted: send JSON text";
    else if (!problem && (long long) len > hub->config->max_frame_bytes) {
        snprintf (msg, sizeof (msg), "Message is larger than the %d-byte limit",
                  hub->config->max_frame_bytes);
        problem = msg;
    }
    else if (!problem && !(req = http_json_object (data, len, msg, sizeof (msg))))
        problem = msg;
    if (whole)
        s_frag_reset (cl);
    if (problem) {
        //  id null, and the connection stays open (SPEC section 2).
        const cJSON *id = NULL;
        cJSON *j = s_error_json (id, 400, "invalid_request", problem, NULL);
        frame_t *f = s_frame_json (j);
        cJSON_Delete (j);
        s_send (hub, cl, f);
        s_frame_unref (f);
        return 1;
    }
    s_inbox_push (hub, cl->id, req);
    return 1;
}

static void
s_on_close (const struct mg_connection *conn, void *cbdata)
{
    ws_hub_t *hub = (ws_hub_t *) cbdata;
    ws_client_t *cl = (ws_client_t *) mg_get_user_connection_data (conn);
    if (!cl)
        return;
    atomic_fetch_sub (&hub->admitted, 1);
    if (cl->upgraded)
        gate_websocket (server_gate (hub->server), cl->addr, false);
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) cl->id);
    pthread_mutex_lock (&hub->registry_lock);
    zhashx_delete (hub->clients, key);
    atomic_store (&s_clients_now, (int) zhashx_size (hub->clients));
    pthread_mutex_unlock (&hub->registry_lock);
    //  No new users can find it now; wait for the ones that have it.
    pthread_mutex_lock (&cl->lock);
    cl->dead = true;
    s_client_flush (cl);
    while (cl->users > 0)
        pthread_cond_wait (&cl->idle, &cl->lock);
    pthread_mutex_unlock (&cl->lock);
    s_inbox_push (hub, cl->id, NULL);
    log_info ("ws", "client %llu closed", (unsigned long long) cl->id);
    pthread_cond_destroy (&cl->idle);
    pthread_mutex_destroy (&cl->lock);
    mg_set_user_connection_data ((struct mg_connection *) conn, NULL);
    s_frag_reset (cl);
    free (cl);
}

//  ---- Life cycle ----------------------------------------------------------------------------------

ws_hub_t *
ws_hub_new (const cg_config_t *cfg, server_t *server)
{
    ws_hub_t *hub = (ws_hub_t *) calloc (1, sizeof (ws_hub_t));
    if (!hub)
        return NULL;
    hub->config = cfg;
    hub->server = server;
    atomic_init (&hub->next_id, 1);
    pthread_mutex_init (&hub->registry_lock, NULL);
    pthread_mutex_init (&hub->inbox_lock, NULL);
    pthread_mutex_init (&hub->work_lock, NULL);
    pthread_cond_init (&hub->work_cond, NULL);
    hub->clients = zhashx_new ();
    hub->inbox = zlistx_new ();
    hub->work = zlistx_new ();
    hub->inbox_fd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    hub->writers = (pthread_t *) calloc ((size_t) cfg->ws_writers, sizeof (pthread_t));
    if (hub->inbox_fd < 0 || !hub->writers
        || pthread_create (&hub->hub_thread, NULL, s_hub_thread, hub)) {
        ws_hub_destroy (&hub);
        return NULL;
    }
    hub->hub_started = true;
    for (int i = 0; i < cfg->ws_writers; i++)
        if (pthread_create (&hub->writers[i], NULL, s_writer, hub) == 0)
            hub->n_writers++;
    return hub;
}

void
ws_hub_destroy (ws_hub_t **self_p)
{
    ws_hub_t *hub = *self_p;
    if (!hub)
        return;
    pthread_mutex_lock (&hub->work_lock);
    hub->stopping = true;
    pthread_cond_broadcast (&hub->work_cond);
    pthread_mutex_unlock (&hub->work_lock);
    for (int i = 0; i < hub->n_writers; i++)
        pthread_join (hub->writers[i], NULL);
    if (hub->hub_started)
        pthread_join (hub->hub_thread, NULL);
    //  mg_stop has closed every client by now; drain what is left.
    for (inbox_t *i = (inbox_t *) zlistx_first (hub->inbox); i;
         i = (inbox_t *) zlistx_next (hub->inbox)) {
        cJSON_Delete (i->request);
        free (i);
    }
    zlistx_destroy (&hub->inbox);
    zlistx_destroy (&hub->work);
    zhashx_destroy (&hub->clients);
    if (hub->inbox_fd >= 0)
        close (hub->inbox_fd);
    free (hub->writers);
    pthread_cond_destroy (&hub->work_cond);
    pthread_mutex_destroy (&hub->work_lock);
    pthread_mutex_destroy (&hub->inbox_lock);
    pthread_mutex_destroy (&hub->registry_lock);
    free (hub);
    *self_p = NULL;
}

void
ws_register (ws_hub_t *self, struct mg_context *ctx, const char *path)
{
    mg_set_websocket_handler (ctx, path, s_on_connect, s_on_ready, s_on_data,
                              s_on_close, self);
}

int
ws_clients (ws_hub_t *self)
{
    pthread_mutex_lock (&self->registry_lock);
    int n = (int) zhashx_size (self->clients);
    pthread_mutex_unlock (&self->registry_lock);
    return n;
}

//  ---- Status ----------------------------------------------------------------------------------------

cJSON *
ws_status_body (const msgpack_object *status, const cg_config_t *cfg,
                server_t *server)
{
    cJSON *root = status ? mpjson_to_json (status) : NULL;
    if (!cJSON_IsObject (root)) {
        cJSON_Delete (root);
        return NULL;
    }
    //  Each front reports itself: port, bind and auth are its own.  The
    //  actor's fields of the same names give way to ours.
    cJSON_DeleteItemFromObjectCaseSensitive (root, "gateway");
    cJSON_DeleteItemFromObjectCaseSensitive (root, "limits");
    cJSON *gw = cJSON_AddObjectToObject (root, "gateway");
    cJSON_AddNumberToObject (gw, "port", server_port (server));
    cJSON_AddStringToObject (gw, "bind", cfg->bind);
    cJSON_AddStringToObject (gw, "auth", config_auth_name (cfg->auth_mode));
    cJSON_AddNumberToObject (gw, "inflight", server_inflight (server));
    cJSON_AddNumberToObject (gw, "websocketClients", atomic_load (&s_clients_now));
    //  The connection gate: what waits for a whole request head, what is
    //  being served, and what it has turned away since start.
    gate_stats_t gs;
    gate_stats (server_gate (server), &gs);
    cJSON *conns = cJSON_AddObjectToObject (gw, "connections");
    cJSON_AddNumberToObject (conns, "waiting", gs.waiting);
    cJSON_AddNumberToObject (conns, "served", gs.active);
    cJSON_AddNumberToObject (conns, "refused", (double) gs.refused);
    cJSON_AddNumberToObject (conns, "timedOut", (double) gs.timed_out);
    //  The limits this front enforces (0 = off); per-token overrides are
    //  not listed (they would name the tokens).
    cJSON *lim = cJSON_AddObjectToObject (root, "limits");
    cJSON_AddNumberToObject (lim, "rateLimit", cfg->rate_limit);
    cJSON_AddNumberToObject (lim, "burst", cfg->burst > 0 ? cfg->burst
                                                          : cfg->rate_limit);
    cJSON_AddNumberToObject (lim, "maxConcurrent", cfg->max_concurrent);
    cJSON_AddNumberToObject (lim, "authFailures", cfg->auth_failures);
    cJSON_AddNumberToObject (lim, "maxConnectionsPerAddress",
                             cfg->max_conns_per_addr);
    cJSON_AddNumberToObject (lim, "maxBodyBytes", (double) cfg->max_body);
    cJSON_AddNumberToObject (lim, "requestTimeoutMs", cfg->request_timeout_ms);
    cJSON_AddNumberToObject (lim, "maxFrameBytes", cfg->max_frame_bytes);
    cJSON_AddNumberToObject (lim, "leaseMs", cfg->lease_ms);
    return root;
}
