/*  =========================================================================
    ws_client - one WebSocket client's queue of frames, and the writer
    threads that send every client's queue

    A client is made by the connect handler and freed by the close handler
    (ws.c) once no other thread holds it: every thread that keeps a pointer
    to it past a lock counts itself in users (the hub while it queues, the
    work list while a writer has it to do).  The hub queues frames with
    ws_writers_send; a few writers send them, one client at a time each, so
    a slow client delays only itself.  A client whose queue passes
    websocket.queueFrames and makes no progress is lagged: its queue is
    replaced by {"type":"lagged"}, a close frame follows, and nothing more
    is written to it.
    =========================================================================
*/
#ifndef CG_WS_CLIENT_H
#define CG_WS_CLIENT_H

#include <civetweb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "ws_frame.h"

typedef struct ws_qitem_t ws_qitem_t;

typedef struct {
    uint64_t id;
    char client_id[40];          //  uuid sent in `connected`
    struct mg_connection *conn;  //  civetweb's (valid until close)
    auth_ctx_t auth;             //  Who, and which scopes
    pthread_mutex_t lock;        //  Guards everything below
    pthread_cond_t idle;         //  users fell to 0
    ws_qitem_t *head, *tail;     //  Frames to send
    int queued;
    int64_t progress;  //  zclock_mono () the queue last moved
                       //  (a write done, or queued onto empty)
    int users;         //  Threads holding a pointer
    bool scheduled;    //  On the writers' work list
    bool dead;         //  Closed, lagged or failed: no writes
    bool closing;      //  Send a close frame after the queue
    bool upgraded;     //  Told the gate it is a WebSocket
    char addr[48];     //  Its address, as the gate keys it
    //  A message arriving in fragments (RFC 6455 5.4), put together on the
    //  connection's own civetweb thread (no lock: only it touches these).
    char *frag;  //  What came so far (owned), or NULL
    size_t frag_len;
    int frag_opcode;  //  Its first frame's opcode; 0: none
    bool frag_over;   //  Past the limit: the rest is dropped
} ws_client_t;

//  A client of conn, authenticated as auth.  Caller owns the return value
//  (ws_client_destroy).  NULL if out of memory.
ws_client_t *
ws_client_new (uint64_t id, struct mg_connection *conn, const auth_ctx_t *auth);

//  Frees a client no thread uses any more (see ws_client_close).
void
ws_client_destroy (ws_client_t **self_p);

//  Counts the caller as a user (call under the lock that found c).
void
ws_client_use (ws_client_t *c);

//  Drops the caller's use.
void
ws_client_put (ws_client_t *c);

//  Marks c dead (no more writes) and drops its queue.  Returns true if it
//  was dead already.
bool
ws_client_kill (ws_client_t *c);

//  Kills c, then waits until no other thread uses it: the close handler's
//  last step before ws_client_destroy.
void
ws_client_close (ws_client_t *c);

//  Forgets a fragmented message in progress.
void
ws_client_frag_reset (ws_client_t *c);

//  ---- Writers ------------------------------------------------------------------

typedef struct ws_writers_t ws_writers_t;

//  Clients that ws_writers_send found off the work list, put on it
//  together: a fan-out to 1,000 clients then takes the writers' lock and
//  wakes them some 16 times, not 1,000.
#define WS_BATCH_MAX 64
typedef struct {
    ws_client_t *c[WS_BATCH_MAX];  //  Each holds a user for the work list
    int n;
} ws_batch_t;

//  Starts n writer threads; queue_frames is the lag limit.  Caller owns
//  the return value.  NULL on failure.
ws_writers_t *
ws_writers_new (int n, int queue_frames);

//  Lets the writers finish the work list, then joins them and frees.
void
ws_writers_destroy (ws_writers_t **self_p);

//  Queues f on c (adds a reference; f NULL is ignored) and has a writer
//  send it: through batch when given (the caller flushes it), else at
//  once.  A client whose queue is over the limit and stuck is lagged.
void
ws_writers_send (ws_writers_t *self, ws_client_t *c, ws_frame_t *f, ws_batch_t *batch);

//  Puts batch's clients on the work list and wakes writers for them.
void
ws_writers_flush (ws_writers_t *self, ws_batch_t *batch);

#endif
