/*  =========================================================================
    slstandin - what the modules of cg_slackstandin share

    cg_slackstandin is one small program in four files: slstandin.c (the
    server, the Web API, the control API, main), socket.c (Socket Mode:
    tickets, the WebSocket handlers and the ticker thread that delivers,
    redelivers and pings), push.c (the Events API HTTP driver: signed
    POSTs with Slack's retry rule) and store.c (events, envelopes, the
    sent log and the state file).  This header is private to the program.

    One lock (self->lock) guards everything mutable, WebSocket writes
    included: a connection's close handler takes the lock too, so a
    connection written under the lock is never one civetweb has freed.
    =========================================================================
*/
#ifndef CG_SLSTANDIN_H
#define CG_SLSTANDIN_H

#include <civetweb.h>
#include <cjson/cJSON.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define SL_MAX_BODY (1024 * 1024)  //  Largest request body accepted
#define SL_MAX_FAULTS 64           //  Web API fault rules held at once
#define SL_MAX_EVENTS 1000         //  Events kept for resends
#define SL_MAX_RETRIES 3           //  Redeliveries / HTTP retries at most
#define SL_TICK_MS 20              //  Longest ticker sleep

//  A Web API fault rule: the next count calls of method fail this way.
typedef struct {
    char method[48];   //  Method name ("chat.postMessage"), or "*"
    char kind[48];     //  "ratelimited", "500", "hang", "drop" or an error code
    int count;         //  Calls left to fault
    int retry_after;   //  ratelimited: the Retry-After seconds
    char channel[64];  //  Only calls for this channel ("" = any)
} sl_fault_t;

//  One Socket Mode connection, open or closed (kept for the counters).
typedef struct sl_socket_s {
    int id;                      //  1, 2, ... in opening order
    struct mg_connection *conn;  //  NULL once civetweb closed it
    int fd;                      //  Its TCP socket (-1 unknown)
    bool rejected;               //  Over --max-sockets: never live
    bool deaf;                   //  Open, but silent both ways
    bool closing;                //  A disconnect was sent: no deliveries
    int keep_fd;                 //  Deaf: our copy of the TCP socket
    int pair_fd;                 //  Deaf: the far end of civetweb's socketpair
    long long opened_ms;         //  Wall clock at open
    long long close_at;          //  Monotonic ms to close it at, 0 = never
    long long ping_at;           //  Monotonic ms of the next server ping
    int delivered;               //  Envelopes written to it
    int acks;                    //  Acks read from it
    struct sl_socket_s *next;    //  Next in self->sockets (newest first)
} sl_socket_t;

//  One events_api envelope waiting for its ack.
typedef struct {
    char id[40];        //  envelope_id (a UUID)
    char event_id[24];  //  Its payload's event_id
    char *payload;      //  The event_callback, serialised (owned)
    int sends;          //  Times written to a socket
    int socket;         //  Socket it went to last (0 = none yet)
    int want_socket;    //  Deliver only to this socket (0 = any)
    long long sent_ms;  //  Monotonic ms of the last write, 0 = waiting
} sl_envelope_t;

typedef struct {
    struct mg_context *ctx;            //  civetweb
    int port;                          //  Bound port
    const char *bot_token;             //  --bot-token
    const char *app_token;             //  --app-token
    const char *secret;                //  --signing-secret
    const char *bot_user;              //  --bot-user
    const char *bot_id;                //  --bot-id
    const char *team;                  //  --team
    const char *state_path;            //  --state FILE, or NULL
    int max_text;                      //  --max-text
    int ack_ms;                        //  --ack-ms
    int max_sockets;                   //  --max-sockets
    int grace_ms;                      //  --disconnect-grace-ms
    int ping_ms;                       //  --ping-ms
    int http_timeout_ms;               //  --http-timeout-ms
    int retry_delays[SL_MAX_RETRIES];  //  --retry-delays-ms
    atomic_bool stopping;              //  Set on SIGINT/SIGTERM

    //  Everything below is guarded by lock; changed wakes the ticker.
    pthread_mutex_t lock;
    pthread_cond_t changed;
    unsigned seed;             //  rand_r state for socket choice
    char *target;              //  Default push URL, or NULL
    sl_socket_t *sockets;      //  Every socket, newest first
    int next_socket;           //  Next socket id
    cJSON *tickets;            //  Unused tickets (array of strings)
    sl_envelope_t *envelopes;  //  Unacked envelopes, oldest first
    size_t envelope_len, envelope_cap;
    cJSON *events;              //  [{event_id, payload}] for resends
    long long next_event;       //  Next event_id number
    long long ts_sec, ts_usec;  //  Last ts handed out
    cJSON *sent;                //  chat.postMessage log
    cJSON *updates;             //  chat.update log
    cJSON *methods;             //  Web API calls per method (object)
    cJSON *counters;            //  Socket Mode counters (object)
    cJSON *dropped;             //  Envelopes given up after the retries
    sl_fault_t faults[SL_MAX_FAULTS];
    int fault_count;
    int deaf_next;            //  Make the next N sockets deaf
    cJSON *pushes;            //  Push records (array), see push.c
    pthread_t *push_threads;  //  One per push, joined at exit
    size_t push_thread_len, push_thread_cap;
    pthread_t ticker;  //  The ticker thread
} sl_t;

//  ---- store.c -----------------------------------------------------------

//  Loads the state file if there is one.  Returns 0 or -1.
int
store_load (sl_t *self);

//  Writes the state file (atomically) when --state was given.  Lock held.
void
store_save (sl_t *self);

//  A fresh ts "SSSSSSSSSS.UUUUUU", later than every earlier one.  Lock
//  held.
void
store_ts (sl_t *self, char out[32]);

//  A fresh event_id "Ev...".  Lock held.
void
store_event_id (sl_t *self, char out[24]);

//  Keeps payload (the event_callback text) under event_id for resends.
//  Lock held.
void
store_keep_event (sl_t *self, const char *event_id, const char *payload);

//  The payload kept for event_id, or NULL.  Lent.  Lock held.
const char *
store_find_event (sl_t *self, const char *event_id);

//  Queues an envelope of payload for Socket Mode delivery (to socket
//  want_socket only when it is not 0); writes its id into id.  Lock held.
void
store_enqueue (sl_t *self, const char *event_id, const char *payload, int want_socket,
               char id[40]);

//  Removes envelope i.  Lock held.
void
store_remove (sl_t *self, size_t i);

//  Adds n to counter name.  Lock held.
void
store_count (cJSON *counters, const char *name, int n);

//  A random UUID (v4) into out.
void
store_uuid (char out[40]);

//  Random letters and digits, len of them, NUL ended.
void
store_random_text (char *out, size_t len);

//  ---- socket.c ----------------------------------------------------------

//  Registers the /link WebSocket handlers.
void
socket_register (sl_t *self);

//  Starts / stops the ticker thread.  Returns 0 or -1.
int
socket_ticker_start (sl_t *self);
void
socket_ticker_stop (sl_t *self);

//  Applies a socket fault (warning, refresh_requested, link_disabled,
//  deaf, drop, close) to the sockets which selects ("all", "newest",
//  "oldest" or an id as text).  Returns how many sockets it hit.  Lock
//  held.
int
socket_fault (sl_t *self, const char *kind, const char *which, int grace_ms);

//  The sockets as JSON (id, state, delivered, acks).  Caller owns return
//  value.  Lock held.
cJSON *
socket_list (sl_t *self);

//  How many sockets are live (open, not rejected).  Lock held.
int
socket_live (sl_t *self);

//  ---- push.c ------------------------------------------------------------

//  What a push should look like on the wire.
typedef struct {
    bool forge;      //  Sign with the wrong secret
    bool unsigned_;  //  No X-Slack-Signature header
    bool stale;      //  Timestamp 10 minutes old
    int retries;     //  Retries allowed (0..3)
    int retry_base;  //  Added to X-Slack-Retry-Num (a resend posing as a retry)
} push_opts_t;

//  Starts pushing payload to url in its own thread; returns the push id
//  (its index in self->pushes + 1), or -1.  Lock held.
int
push_start (sl_t *self, const char *url, const char *event_id, const char *payload,
            const push_opts_t *opts);

//  One signed POST of body to url, no retries (the url_verification
//  handshake).  Returns {"status":N,"body":"..."}.  Caller owns return
//  value.  Call without the lock.
cJSON *
push_once (sl_t *self, const char *url, const char *body, const push_opts_t *opts);

//  "v0=<hex HMAC-SHA256(secret, "v0:" ts ":" body)>" into out.
void
push_sign (const char *secret, const char *ts, const char *body, char out[80]);

//  Joins every push thread (at exit, after stopping is set).
void
push_join_all (sl_t *self);

//  ---- slstandin.c -------------------------------------------------------

//  Wall clock and monotonic clock, milliseconds.
long long
sl_wall_ms (void);
long long
sl_mono_ms (void);

#endif
