/*  =========================================================================
    dcstandin - what the modules of cg_dcstandin share

    cg_dcstandin is one small program in five files: dcstandin.c (the
    server, the control API, main), rest.c (the REST API under /api/v10),
    gateway.c (the Gateway WebSocket on /gateway and /resume), store.c
    (the session and its event log, the sent log, ids and the state file)
    and tls.c (the TLS port, relayed to the plain one).
    This header is private to the program.  One lock guards all of dc_t;
    frames are written to WebSockets with it held, so every frame of a
    session goes out in s order.
    =========================================================================
*/
#ifndef CG_DCSTANDIN_H
#define CG_DCSTANDIN_H

#include <civetweb.h>
#include <cjson/cJSON.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define DC_MAX_BODY (1024 * 1024)  //  Largest REST body accepted
#define DC_MAX_CONTENT 2000        //  Longest content, in code points
#define DC_MAX_FRAME 4096          //  Largest client frame (else 4002)
#define DC_MAX_FAULTS 64           //  REST fault rules held at once
#define DC_MAX_EVENTS 5000         //  Events a session keeps for resumes
#define DC_NONCE_MS (5 * 60000)    //  How long enforce_nonce remembers
#define DC_MAX_RECEIVED 500        //  Client frames kept for /control/received
#define DC_EPOCH_MS 1420070400000LL

//  Intents the Identify must hold under --require-intents.
#define DC_GUILD_MESSAGES (1 << 9)
#define DC_DIRECT_MESSAGES (1 << 12)
#define DC_MESSAGE_CONTENT (1 << 15)

//  What a REST fault rule makes the matching calls answer.
typedef enum {
    DC_FAULT_NONE,
    DC_FAULT_429,
    DC_FAULT_500,
    DC_FAULT_502,
    DC_FAULT_403,
    DC_FAULT_400,
    DC_FAULT_404
} dc_fault_kind_t;

typedef struct {
    char route[32];        //  "messages", "typing", "gateway", "users", or "*"
    char channel_id[32];   //  Only calls for this channel ("" = any)
    dc_fault_kind_t kind;  //  What to answer
    int count;             //  Calls left to fault
    double retry_after;    //  429: seconds (float)
    bool global;           //  429: a global limit
    char scope[16];        //  429: X-RateLimit-Scope (user, global, shared)
} dc_fault_t;

//  One dispatch of the session, as written on the wire.
typedef struct {
    long long s;  //  Its sequence number
    char *frame;  //  {"op":0,...} (owned)
} dc_event_t;

//  One Gateway WebSocket connection (user data of its civetweb conn).
typedef struct dc_conn_t {
    struct mg_connection *conn;  //  civetweb's; valid until the close handler
    int fd;                      //  Its socket (for drops), -1 if not found
    bool on_resume;              //  Opened on /resume rather than /gateway
    bool identified;             //  Sent Identify or Resume that took
    bool closing;                //  We sent a close frame or dropped it
    bool live;                   //  The session's connection
    char query[128];             //  Its query string ("v=10&encoding=json")
    int number;                  //  1, 2, ... in opening order
    struct dc_conn_t *next;
} dc_conn_t;

typedef struct {
    struct mg_context *ctx;  //  civetweb
    int port;                //  Plain port (REST, control, ws://)
    int tls_port;            //  TLS port (the same, over TLS), 0 if none
    const char *token;       //  Bot token
    const char *bot_id;      //  The bot's user id (snowflake text)
    const char *bot_name;    //  Its username
    const char *state_path;  //  --state FILE, or NULL
    int heartbeat_ms;        //  Hello's heartbeat_interval
    bool require_intents;    //  Identify without the three intents: 4014
    int bucket_limit;        //  Enforced per-route bucket size, 0 = not enforced
    int bucket_window_ms;    //  Its window
    atomic_bool stopping;    //  Set on SIGINT/SIGTERM

    //  Everything below is guarded by lock.
    pthread_mutex_t lock;
    long long last_id;  //  Last snowflake handed out

    //  The session (one shard, one session at a time; a new Identify
    //  replaces it).
    char session_id[40];  //  "" when there is none
    bool session_valid;   //  Resumable
    long long seq;        //  Last s handed out
    int intents;          //  Its Identify's intents
    dc_event_t *events;   //  Its dispatches, oldest first
    size_t events_len, events_cap;
    cJSON *pending;  //  Message objects enqueued while no session existed

    dc_conn_t *conns;  //  Open WebSocket connections
    int conn_number;   //  Last dc_conn_t number

    cJSON *sent;      //  Every message the bot POSTed (array)
    cJSON *received;  //  Last client frames (array)
    cJSON *buckets;   //  Bucket key -> {start, used}

    //  Counters (not kept in the state file).
    long identify, identify_on_gateway, identify_on_resume;
    long resume, resume_on_gateway, resume_on_resume, heartbeats;
    long acks_skipped, typing, connections_total, rest_429, rest_calls;
    char last_resume_path[16];
    char last_query[128];  //  The last connection's query string

    //  Gateway fault knobs.
    int zombie;           //  Heartbeats left unanswered; -1 = all
    int hello_delay_ms;   //  Hold Hello this long on new connections
    int hello_delays;     //  How many connections more; -1 = all
    int invalid_intents;  //  Identifies left to close with 4013
    int no_ready;         //  Identifies left to answer with nothing at all
    dc_fault_t faults[DC_MAX_FAULTS];
    int fault_count;
} dc_t;

//  A REST or control request being answered.
typedef struct {
    dc_t *self;
    struct mg_connection *conn;
} dc_req_t;

//  ---- store.c -----------------------------------------------------------

//  Loads the state file if there is one.  Returns 0 or -1.
int
store_load (dc_t *self);

//  Writes the state file (atomically) when --state was given.  Lock held.
void
store_save (dc_t *self);

//  A new snowflake id as text into buf (at least 24 bytes).  Lock held.
const char *
store_snowflake (dc_t *self, char *buf);

//  ISO 8601 time of now (UTC, microseconds, +00:00) into buf (40 bytes).
const char *
store_timestamp (char *buf);

//  Forgets the session's events.  Lock held.
void
store_clear_events (dc_t *self);

//  Appends a dispatch frame to the session's event log (takes frame).
//  Lock held.
void
store_add_event (dc_t *self, long long s, char *frame);

//  Wall clock, milliseconds.
long long
store_wall_ms (void);

//  Parses a REST fault kind name; DC_FAULT_NONE if unknown.
dc_fault_kind_t
store_fault_kind (const char *name);

//  Takes the next REST fault for route and channel (may be ""), if any:
//  copies it into fault and returns true.  Lock held.
bool
store_take_fault (dc_t *self, const char *route, const char *channel, dc_fault_t *fault);

//  ---- rest.c ------------------------------------------------------------

//  Answers path (after "/api/v10", or after "/api") with the body (may be
//  NULL).  Returns the HTTP status sent.
int
rest_call (dc_req_t *req, const char *path, const char *body, size_t body_len);

//  Number of Unicode code points in UTF-8 text.
size_t
rest_code_points (const char *text);

//  ---- gateway.c ---------------------------------------------------------

//  Registers the WebSocket handlers for /gateway and /resume.
void
gateway_register (dc_t *self);

//  Delivers a MESSAGE_CREATE for the message object msg (takes it): to
//  the session (written at once if it has a live connection, else kept
//  for a resume), or held until the next READY when there is no session.
//  Returns its s (0 when held).  Lock held.
long long
gateway_message (dc_t *self, cJSON *msg, bool *written);

//  Applies a gateway fault ({"kind":...}) to the open connections.
//  Returns how many it touched, or -1 for an unknown kind.  Lock held.
int
gateway_fault (dc_t *self, cJSON *body);

//  How many WebSocket connections are open.  Lock held.
int
gateway_open_count (dc_t *self);

//  ---- tls.c -------------------------------------------------------------

//  Listens on 127.0.0.1:port (0: any) for TLS with the PEM certificate
//  (chain) and key files, relaying each connection to self->port; sets
//  self->tls_port.  Returns 0 or -1 (said on stderr).
int
tls_start (dc_t *self, const char *cert, const char *key, int port);

//  Stops accepting (after self->stopping is set).
void
tls_stop (dc_t *self);

//  ---- dcstandin.c ------------------------------------------------------

//  Sends body (NULL: "{}") with status, content type JSON and extra
//  header lines (each ending in CRLF, may be NULL).  Returns status.
int
dc_send (dc_req_t *req, int status, const char *extra_headers, const char *body);

//  Sends root as the body and deletes it.
int
dc_send_root (dc_req_t *req, int status, const char *extra_headers, cJSON *root);

#endif
