/*  =========================================================================
    tgstandin - what the modules of cg_tgstandin share

    cg_tgstandin is one small program in three files: tgstandin.c (the
    server, its routes, the control API, main), botapi.c (the Bot API
    methods) and store.c (the update queue, the sent log, faults, the state
    file and the webhook pusher).  This header is private to the program.
    =========================================================================
*/
#ifndef CG_TGSTANDIN_H
#define CG_TGSTANDIN_H

#include <civetweb.h>
#include <cjson/cJSON.h>

#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdatomic.h>

#define TG_MAX_BODY (1024 * 1024)  //  Largest request body accepted
#define TG_MAX_TEXT 4096           //  Longest message text, in UTF-16 units
#define TG_POLL_CLAMP 50           //  getUpdates timeout clamp, seconds
#define TG_SLICE_MS 250            //  Longest wait between checks
#define TG_PUSH_RETRY_MS 500       //  Webhook: pause before a retry
#define TG_PUSH_ATTEMPTS 50        //  Webhook: attempts before a drop
#define TG_MAX_FAULTS 64           //  Fault rules held at once

//  What a fault rule makes the matching calls do.
typedef enum {
    FAULT_NONE,
    FAULT_429,
    FAULT_409,
    FAULT_500,
    FAULT_502,
    FAULT_403,
    FAULT_401,
    FAULT_TOO_LONG,
    FAULT_MIGRATE,
    FAULT_HANG,
    FAULT_DROP
} fault_kind_t;

typedef struct {
    char method[48];       //  Method name, or "*"
    fault_kind_t kind;     //  What to do
    int count;             //  Calls left to fault
    int retry_after;       //  429: seconds
    long long migrate_to;  //  migrate: the supergroup id
    char chat_id[64];      //  Only calls for this chat ("" = any)
} fault_t;

//  One queued, unconfirmed update.
typedef struct {
    long long id;    //  Its update_id
    long long seq;   //  Unique per queue entry (duplicates share ids)
    char *type;      //  "message", "edited_message", ... (owned)
    char *json;      //  The Update, serialised (owned)
    bool dup;        //  Enqueued with its own id: delivered at least once
    bool delivered;  //  A dup that getUpdates has returned
    int attempts;    //  Webhook pushes tried
} update_t;

typedef struct {
    struct mg_context *ctx;    //  civetweb
    int port;                  //  Bound port
    const char *token;         //  Bot token the path must carry
    long long bot_id;          //  getMe id
    const char *bot_username;  //  getMe username (without '@')
    const char *state_path;    //  --state FILE, or NULL
    atomic_bool stopping;      //  Set on SIGINT/SIGTERM

    //  Everything below is guarded by lock; changed wakes waiters.
    pthread_mutex_t lock;
    pthread_cond_t changed;
    update_t *queue;  //  Pending updates, in delivery order
    size_t queue_len, queue_cap;
    long long next_update_id;   //  Next update_id handed out
    long long next_message_id;  //  Next message_id (bot and control)
    long long next_seq;         //  Next queue entry seq / sent-log seq
    long long poll_gen;         //  Bumped by each getUpdates
    cJSON *allowed;             //  Sticky allowed_updates (array) or NULL
    cJSON *sent;                //  The sent log (array of objects)
    cJSON *calls;               //  Per-method call counts (object)
    fault_t faults[TG_MAX_FAULTS];
    int fault_count;
    char *webhook_url;             //  Set webhook, or NULL
    char *webhook_secret;          //  Its secret_token, or NULL
    char *secret_override;         //  Forged secret, or NULL
    bool has_override;             //  Use secret_override ("" = no header)
    char webhook_error[256];       //  Last push failure, "" if none
    long long webhook_error_date;  //  Its unix time
    pthread_t pusher;              //  Webhook pusher thread
} tg_t;

//  A request being answered.
typedef struct {
    tg_t *self;
    struct mg_connection *conn;
    int fd;  //  Its socket once looked up, else -1
} tg_req_t;

//  ---- store.c -----------------------------------------------------------

//  Loads the state file if there is one.  Returns 0 or -1.
int
store_load (tg_t *self);

//  Writes the state file (atomically) when --state was given.  Call
//  with the lock held.
void
store_save (tg_t *self);

//  Enqueues update (takes ownership).  Without an update_id one is
//  assigned.  Returns its update_id.  Lock held.
long long
store_enqueue (tg_t *self, cJSON *update);

//  Removes the queue entry at index i.  Lock held.
void
store_remove (tg_t *self, size_t i);

//  Drops every queued update.  Lock held.
void
store_clear_queue (tg_t *self);

//  Counts one call of method.  Lock held.
void
store_count (tg_t *self, const char *method);

//  Takes the next fault for method (and chat, may be ""), if any: copies
//  it into fault and returns true.  Lock held.
bool
store_take_fault (tg_t *self, const char *method, const char *chat, fault_t *fault);

//  Parses a fault kind name; FAULT_NONE if unknown.
fault_kind_t
store_fault_kind (const char *name);

//  Starts / stops the webhook pusher thread.
int
store_pusher_start (tg_t *self);
void
store_pusher_stop (tg_t *self);

//  ---- botapi.c ----------------------------------------------------------

//  Answers /bot<token>/<method>; params holds every parameter (owned by
//  the caller).  Returns the HTTP status sent.
int
botapi_call (tg_req_t *req, const char *method, cJSON *params);

//  Resets the call counters to zero for every method.  Lock held.
void
botapi_zero_calls (tg_t *self);

//  The bot as a Bot API User object.  Caller owns return value.
cJSON *
botapi_user (tg_t *self);

//  The UTF-16 length of UTF-8 text.
size_t
botapi_utf16_len (const char *text);

//  ---- tgstandin.c -------------------------------------------------------

//  Sends a JSON body (NULL: "{}") with status.  Returns status.
int
tg_send_json (tg_req_t *req, int status, const char *body);

//  Sends a Bot API success {"ok":true,"result":result} (takes result).
int
tg_send_ok (tg_req_t *req, cJSON *result);

//  Sends a Bot API error.  parameters may be NULL (taken if not).
int
tg_send_error (tg_req_t *req, int code, const char *description, cJSON *parameters);

//  Waits ms (< 0: forever) watching the client.  Returns 0 when the time
//  is up or the server stops, -1 as soon as the client hangs up.
int
tg_pause (tg_req_t *req, int ms);

//  Ends the connection from our side without a response.
void
tg_hang_up (tg_req_t *req);

//  Wall clock, milliseconds.
long long
tg_wall_ms (void);

#endif
