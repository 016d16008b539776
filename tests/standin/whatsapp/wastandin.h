/*  =========================================================================
    wastandin - what the modules of cg_wastandin share

    cg_wastandin is one small program in five files: wastandin.c (the
    server, its routes, the control API, main), graph.c (the Graph API's
    POST /<version>/<phone-number-id>/messages), push.c (the webhook
    driver: the verification GET, signed notification POSTs and the pusher
    thread that retries them) and store.c (ids, the clock, the 24-hour
    windows, fault rules and the state file).  This header is private to the program.
    =========================================================================
*/
#ifndef CG_WASTANDIN_H
#define CG_WASTANDIN_H

#include <civetweb.h>
#include <cjson/cJSON.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#define WA_MAX_BODY (1024 * 1024)  //  Largest request body accepted
#define WA_MAX_TEXT 4096           //  Longest text body, in code points
#define WA_SLICE_MS 250            //  Longest wait between checks
#define WA_MAX_FAULTS 64           //  Fault rules held at once
#define WA_MAX_RETRIES 16          //  Entries of the retry schedule

//  What a fault rule makes the matching calls do.
typedef enum {
    FAULT_NONE,
    FAULT_131047,  //  Re-engagement: the 24-hour window is closed
    FAULT_130429,  //  Throughput reached
    FAULT_131056,  //  Pair rate limit
    FAULT_190,     //  Access token expired (401)
    FAULT_131026,  //  Message undeliverable
    FAULT_100,     //  Invalid parameter
    FAULT_500,
    FAULT_502,
    FAULT_503,
    FAULT_HANG,  //  Never answer (until the client hangs up)
    FAULT_DROP   //  Close the socket without an answer
} fault_kind_t;

typedef struct {
    fault_kind_t kind;  //  What to do
    int count;          //  Calls left to fault
    int http;           //  HTTP status to answer with (0: the kind's own)
    char on[16];        //  "send" (text and other messages), "read", "any"
    char to[64];        //  Only sends to this wa_id ("" = any)
    bool async;         //  Answer 200, then post a failed status
} fault_t;

typedef struct {
    struct mg_context *ctx;        //  civetweb
    int port;                      //  Bound port
    const char *token;             //  --access-token
    const char *phone_id;          //  --phone-number-id
    const char *app_secret;        //  --app-secret (signs pushes)
    const char *verify_token;      //  --verify-token
    const char *version;           //  --version, e.g. "v21.0"
    const char *state_path;        //  --state FILE, or NULL
    const char *display_phone;     //  metadata.display_phone_number
    const char *waba_id;           //  entry[].id
    long long window_ms;           //  --window-s, in ms
    int push_timeout_ms;           //  --push-timeout-ms
    int push_attempts;             //  --push-attempts
    int retry_ms[WA_MAX_RETRIES];  //  --retry-ms: pause before retry k
    int retry_len;                 //  Entries in retry_ms
    atomic_bool stopping;          //  Set on SIGINT/SIGTERM

    //  Everything below is guarded by lock; changed wakes waiters.
    pthread_mutex_t lock;
    pthread_cond_t changed;
    char salt[12];              //  Per-state random part of every wamid
    long long next_id;          //  Next wamid / media id counter
    long long next_seq;         //  Next seq of the sent, reads, pushes logs
    long long clock_offset_ms;  //  /control/clock: added to the wall clock
    cJSON *sent;                //  Messages sent (array)
    cJSON *reads;               //  Read receipts and typing (array)
    cJSON *calls;               //  Counters (object)
    cJSON *windows;             //  wa_id -> last inbound, ms (object)
    cJSON *inbound;             //  wamid -> from, for what the driver posted
    cJSON *pushes;              //  Webhook posts and their outcome (array)
    fault_t faults[WA_MAX_FAULTS];
    int fault_count;
    char status_target[512];    //  Where status posts go ("" = nowhere)
    char auto_statuses[4][16];  //  Statuses posted per message sent
    pthread_t pusher;           //  Webhook pusher thread
} wa_t;

//  A request being answered.
typedef struct {
    wa_t *self;
    struct mg_connection *conn;
    int fd;  //  Its socket once looked up, else -1
} wa_req_t;

//  ---- store.c -------------------------------------------------------------

//  Loads the state file if there is one.  Returns 0 or -1.
int
store_load (wa_t *self);

//  Writes the state file (atomically) when --state was given.  Lock held.
void
store_save (wa_t *self);

//  Adds one to counter name.  Lock held.
void
store_count (wa_t *self, const char *name);

//  Resets every counter to zero.  Lock held.
void
store_zero_calls (wa_t *self);

//  A fresh wamid into buf ("wamid." + letters and digits).  Lock held.
void
store_wamid (wa_t *self, char *buf, size_t cap);

//  The stand-in's clock: the wall clock plus /control/clock's offset, ms.
//  Lock held.
long long
store_now_ms (wa_t *self);

//  Records an inbound from wa_id now: opens its 24-hour window.  Lock
//  held.
void
store_open_window (wa_t *self, const char *wa_id);

//  Whether wa_id wrote within the window.  Lock held.
bool
store_window_open (wa_t *self, const char *wa_id);

//  Takes the next fault for a call of kind on ("send" or "read") to
//  wa_id (may be ""), if any: copies it into fault and returns true.
//  Lock held.
bool
store_take_fault (wa_t *self, const char *on, const char *to, fault_t *fault);

//  Parses a fault kind name; FAULT_NONE if unknown.
fault_kind_t
store_fault_kind (const char *name);

//  ---- graph.c -------------------------------------------------------------

//  Answers a Graph API request to path (the URI) with body (may be NULL
//  when it did not parse; raw is the text).  Returns the HTTP status sent.
int
graph_call (wa_req_t *req, const char *path, const char *raw, cJSON *body);

//  Sends a Graph error: {"error":{"message","type","code","error_data"?,
//  "error_subcode"?,"fbtrace_id"}} with HTTP status.  details and
//  subcode (0) are left out when empty.
int
graph_error (wa_req_t *req, int status, int code, const char *message,
             const char *details, int subcode);

//  ---- push.c --------------------------------------------------------------

//  POST /control/verify and /control/inbound.  Return the status sent.
int
push_control_verify (wa_req_t *req, cJSON *body);
int
push_control_inbound (wa_req_t *req, cJSON *body);

//  Queues status posts about the message wamid sent to wa_id to the
//  status target (/control/config), if one is set: one post per status
//  in auto_statuses, or, with error_code, one "failed" status carrying
//  that error.  Lock held.
void
push_statuses (wa_t *self, const char *wamid, const char *wa_id, int error_code,
               const char *error_title);

//  Starts / stops the pusher thread.
int
push_start (wa_t *self);
void
push_stop (wa_t *self);

//  ---- wastandin.c ---------------------------------------------------------

//  Sends a JSON body (NULL: "{}") with status and extra header lines
//  (each ending in CRLF, may be NULL).  Returns status.
int
wa_send_json (wa_req_t *req, int status, const char *extra, const char *body);

//  Sends root as the body and deletes it.  Returns status.
int
wa_send_root (wa_req_t *req, int status, cJSON *root);

//  A control API error {"error":"..."}.  Returns status.
int
wa_control_error (wa_req_t *req, int status, const char *error);

//  Waits ms (< 0: forever) watching the client.  Returns 0 when the time
//  is up or the server stops, -1 as soon as the client hangs up.
int
wa_pause (wa_req_t *req, int ms);

//  Ends the connection from our side without a response.
void
wa_hang_up (wa_req_t *req);

//  Monotonic clock, ms.
long long
wa_mono_ms (void);

//  A string member, or fallback.
const char *
wa_str (cJSON *object, const char *name, const char *fallback);

#endif
