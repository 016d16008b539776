/*  =========================================================================
    ws_hub - the WebSocket front's insides, shared by its files (not a
    public header: the rest of the gateway uses ws.h)

    ws.c         civetweb's callbacks on the connection threads
    ws_hub.c     the hub thread: its sockets, calls, runs, subscriptions,
                 heartbeats; the client registry and the inbox
    ws_methods.c the method table and each method
    ws_client.c  client queues and the writer threads
    ws_frame.c   frames as they go on the wire
    =========================================================================
*/
#ifndef CG_WS_HUB_H
#define CG_WS_HUB_H

#include <czmq.h>
#include <pthread.h>
#include <stdatomic.h>

#include "bus_front.h"
#include "ratelimit_front.h"
#include "ws.h"
#include "ws_client.h"

struct ws_hub_t {
    const cg_config_t *config;
    server_t *server;  //  Lent
    //  Clients by id (registry_lock).
    pthread_mutex_t registry_lock;
    zhashx_t *clients;  //  "id" -> ws_client_t
    atomic_uint_fast64_t next_id;
    atomic_int admitted;  //  Upgrades accepted and not yet closed:
                          //  each holds a civetweb worker
    //  Requests from the connection threads to the hub.
    pthread_mutex_t inbox_lock;
    zlistx_t *inbox;        //  ws_inbox_t *
    int inbox_fd;           //  eventfd: the inbox has items
    ws_writers_t *writers;  //  Send the clients' queues
    atomic_bool stopping;   //  The hub thread should return
    pthread_t thread;
    bool started;  //  thread is to be joined
};

typedef struct ws_method_t ws_method_t;

//  A request of a client's that went to an actor, until its reply.
typedef struct {
    uint64_t client;
    cJSON *id;                       //  Request id (owned)
    const ws_method_t *method;       //  Its row in the method table
    char key[ENVELOPE_KEY_MAX + 1];  //  chat.run: its session
    char run_id[80];                 //  chat.run: the run
    char corr[24];                   //  Its key in calls
} ws_call_t;

//  A run a client of this hub started, until a while after its end.
typedef struct {
    uint64_t client;   //  Who started it
    bool ended;        //  Its end went out (kept a while so
                       //  its bus copies are still recognised)
    int64_t ended_at;  //  zclock_mono ()
    char key[ENVELOPE_KEY_MAX + 1];
    char corr[24];       //  Its SESSION_RUN's entry in calls
    int64_t started;     //  zclock_mono ()
    rl_ticket_t ticket;  //  Its concurrency slot, held to its end
} ws_run_t;

//  A chat.run idempotency key's first run.
typedef struct {
    char run_id[80];
    char key[ENVELOPE_KEY_MAX + 1];
    int64_t expires;  //  zclock_mono ()
} ws_idem_t;

//  The hub thread's own state: only that thread touches it.
typedef struct {
    ws_hub_t *hub;
    bus_front_t *front;    //  Requests; direct events of our runs
    bus_front_t *lease;    //  The limiter's round trips, and
                           //  nothing else (see ws_methods.c)
    zsock_t *sub;          //  Events of subscribed sessions
    zhashx_t *calls;       //  corr id -> ws_call_t (owned)
    zhashx_t *runs;        //  runId -> ws_run_t (owned)
    zhashx_t *subs;        //  sessionKey -> zlistx of client ids
    zhashx_t *idem;        //  principal + key -> ws_idem_t (owned)
    zlistx_t *idem_order;  //  Its keys, oldest first (owned
                           //  copies; = expiry order)
    int64_t next_heartbeat;
    int64_t next_sweep;
} ws_hub_self_t;

//  ---- The hub (ws_hub.c) -----------------------------------------------------

//  The front's rate limits (lent).
ratelimit_front_t *
ws_hub_limits (ws_hub_t *hub);

//  Adds cl to the registry (the ready handler), or removes it (close).
void
ws_hub_add_client (ws_hub_t *hub, ws_client_t *cl);
void
ws_hub_remove_client (ws_hub_t *hub, ws_client_t *cl);

//  Clients in the registry now, from any thread (one hub per process).
int
ws_hub_clients_now (void);

//  Client id with a use counted (ws_client_put it), or NULL if gone.
ws_client_t *
ws_hub_client_get (ws_hub_t *hub, uint64_t id);

//  Hands a parsed request of client's to the hub thread (takes request);
//  NULL: the client closed.  Any thread.
void
ws_hub_push (ws_hub_t *hub, uint64_t client, cJSON *request);

//  Queues f on client id, if it is still there (through batch, if given).
void
ws_hub_send_to (ws_hub_t *hub, uint64_t id, ws_frame_t *f, ws_batch_t *batch);

//  {"type":"response","id":id,"result":result} to client; takes result.
void
ws_hub_reply (ws_hub_t *hub, uint64_t client, const cJSON *id, cJSON *result);

//  {"type":"error","id":id,"error":{...}}.  Caller owns the return value.
cJSON *
ws_hub_error_json (const cJSON *id, int status, const char *code, const char *message,
                   const char *param);

//  Sends ws_hub_error_json (...) to client.
void
ws_hub_reply_error (ws_hub_t *hub, uint64_t client, const cJSON *id, int status,
                    const char *code, const char *message, const char *param);

//  Sends method's request (type, to service) for client; the reply
//  finds its way back by corr id.  key, when not NULL, is the routing
//  key: the broker sends every request with one key to the same worker
//  of service (a session's runs, and the abort of a run to the worker
//  that has it).  body's bytes are copied.  Returns the call, or NULL
//  after replying 503 itself.
ws_call_t *
ws_hub_call (ws_hub_self_t *h, uint64_t client, const cJSON *id,
             const ws_method_t *method, const char *service, const char *type,
             const char *key, const mp_writer_t *body);

//  Registers a request already sent with corr_id as client's call.
//  Returns it, or NULL if out of memory.
ws_call_t *
ws_hub_track (ws_hub_self_t *h, uint64_t client, const cJSON *id,
              const ws_method_t *method, uint64_t corr_id);

//  The destructor of h->runs' items: gives the run's slot back.
void
ws_hub_run_free (void **item);

//  ---- Methods (ws_methods.c) -------------------------------------------------

//  Checks and runs one request of cl's (the method table).
void
ws_methods_dispatch (ws_hub_self_t *h, ws_client_t *cl, const cJSON *req);

//  Answers call c with its reply msg, as its method does.
void
ws_methods_answer (ws_hub_self_t *h, ws_call_t *c, bus_msg_t *msg);

//  Drops cl's subscriptions (it closed).  Its runs go on.
void
ws_methods_forget_client (ws_hub_self_t *h, uint64_t client);

//  Checked builds: stops the process (msg_check_failed) if a method of the
//  table is not declared in schemas/messages.def or passes on a param its
//  declaration lacks.  No-op otherwise.
void
ws_methods_check (void);

#endif
