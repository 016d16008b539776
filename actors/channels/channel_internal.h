/*  =========================================================================
    channel_internal - the channel actor's core, as its files share it

    self_t     the actor: its store, its own DEALER to ask the session
               actor for runs, libcurl on its loop, the channels
    chan_t     one channel (configured or not): its platform, its status,
               its transport's state, its reply lanes
    job_t      one inbound message being answered: its stored row, its
               run, its reply split into parts
    lane_t     the replies of one chat, sent one part at a time, in order

    A platform (telegram.c, hooks.c) fills a platform_t: it starts and
    stops its transport, turns the platform's pushes into inbound_t and
    hands them to chan_ingest, and sends reply parts, reporting each
    outcome with chan_sent.  The core (channel.c, ingress.c, outbound.c)
    does the rest the same way for every platform.

    Ownership: self_t owns the chans; a chan_t owns its lanes and its
    transport's state; jobs are owned by self->jobs (by row id) and lent to
    the runs and lanes tables that point at them.  Everything runs on the
    actor's thread.
    =========================================================================
*/
#ifndef CG_CHANNEL_INTERNAL_H
#define CG_CHANNEL_INTERNAL_H

#include "actor.h"
#include "channel.h"
#include "chanstore.h"
#include "curl_loop.h"
#include "provider.h"
#include "run_call.h"
#include "split.h"

#include <cjson/cJSON.h>

typedef struct self_t self_t;
typedef struct chan_t chan_t;
typedef struct job_t job_t;
typedef struct lane_t lane_t;
typedef struct chan_http_t chan_http_t;

#define CHAN_MAX_BODY (4u << 20)  //  Largest platform response we read
#define CHAN_TYPING_MS 4000       //  Typing indicator refresh
#define CHAN_TICK_MS 500          //  Deadlines, retries, pairing expiry
#define CHAN_PAIRING_MS (3600 * 1000)
#define CHAN_PAIRING_PENDING 3     //  Pending pairing requests per channel
#define CHAN_MAX_TEXT (64u << 10)  //  Longest inbound text we take
//  Calls to one platform in flight at most (reply parts and typing; the
//  transport's own poll is apart): a burst of replies queues here, on its
//  lanes, not in thousands of connections the platform will not serve
//  (Telegram takes about 30 messages a second per bot).  Typing uses at
//  most half, so replies always find room.
#define CHAN_MAX_CALLS 8
#define CHAN_SPARE_EASY 16  //  Easy handles kept for the next calls

//  A message as a platform hands it to chan_ingest (strings lent).
typedef struct {
    const char *key;          //  Unique per channel: the platform's id
    const char *chat_id;      //  Where the reply goes
    const char *sender_id;    //  Who wrote it
    const char *sender_name;  //  Display name, may be ""
    const char *reply_to;     //  Message to reply to, may be ""
    const char *text;         //  What they wrote
    const char *space;        //  A group's server (Discord guild), or NULL:
                              //  `groups` may list it instead of the group
    bool group;               //  Not a direct message
    bool mentioned;           //  The bot was mentioned (or replied to)
} inbound_t;

//  A platform's push as the front received it (CHANNEL_WEBHOOK; strings
//  lent, NUL-terminated, NULL when the request had none).
typedef struct {
    bool get;               //  GET (a verification), else POST
    const char *query;      //  Raw query string
    const char *secret;     //  X-Telegram-Bot-Api-Secret-Token
    const char *signature;  //  X-Hub-Signature-256 or X-Slack-Signature
    const char *timestamp;  //  X-Slack-Request-Timestamp
    const char *body;       //  Raw body (never NULL)
    size_t len;
} webhook_in_t;

//  What a push gets back.
typedef struct {
    int stored;           //  Messages newly stored
    char challenge[256];  //  A verification's answer, "" if none
    char err[256];        //  Why it was refused
} webhook_out_t;

//  How one send ended, as the platform reports it.
typedef enum {
    SEND_OK,         //  Delivered
    SEND_RETRY,      //  Try again (429, 5xx, network): after retry_ms
    SEND_PERMANENT,  //  Never (403 blocked, 400): give up, record why
    SEND_REFUSED,    //  Our credentials refused (401, a revoked token): as
                     //  permanent, and the channel is in error until a
                     //  send goes through again
    SEND_MIGRATE,    //  The chat moved: new_chat, send again at once
} send_result_t;

typedef struct {
    const char *id;    //  "telegram"
    const char *name;  //  "Telegram"
    const char *default_base_url;
    size_t limit;  //  Message size limit
    split_unit_t unit;
    const char *default_mode;  //  Its modes' default ("polling"), or NULL
    bool people;               //  Talks to people: dmPolicy and groupPolicy apply
    //  Starts the transport (connect, poll); sets the status as it goes.
    void (*start) (chan_t *ch);
    //  Stops it: ends its transfers and timers.
    void (*stop) (chan_t *ch);
    //  Frees what start made (after stop).
    void (*fini) (chan_t *ch);
    //  A push to /v1/channels/{id}/webhook: 200 once stored (out->stored
    //  new messages; out->challenge, if set, is the whole answer), or a
    //  refusal status with a sentence in out->err.  NULL: no webhook.
    int (*webhook) (chan_t *ch, const webhook_in_t *in, webhook_out_t *out);
    //  Sends part `part` of job's reply (chan_part gives its text); reports
    //  with chan_sent.  Returns 0, or -1 if it could not even start (then
    //  it is retried like a failed send).
    int (*send) (chan_t *ch, job_t *job);
    //  How long (ms) sends to chat_id must wait for the platform's rate
    //  limit, 0: none.  May be NULL.
    int (*hold) (chan_t *ch, const char *chat_id);
    //  Shows "typing" in chat_id; calls chan_call_done when the call ends.
    //  Returns 0, or -1 if the call could not start.  May be NULL.
    int (*typing) (chan_t *ch, const char *chat_id);
    //  Adds the platform's status fields (bot) to w.  May be NULL.
    void (*status) (chan_t *ch, mp_writer_t *w);
    //  The agent that answers job, when the platform chooses per message.
    //  May be NULL: the channel's agentId.
    const char *(*agent) (const job_t *job);
    //  job is over (recorded done or failed), just before it is freed.
    //  May be NULL.
    void (*finished) (chan_t *ch, job_t *job);
} platform_t;

struct chan_t {
    self_t *self;
    const platform_t *platform;
    const cfg_channel_t *cfg;  //  NULL: not configured
    bool enabled;              //  Configured, and not disabled
    bool running;              //  Transport started
    const char *status;        //  connected|disconnected|error (when running)
    const char *refused_from;  //  The status a refused send turned to error,
                               //  or NULL (any other status change clears it)
    char last_error[256];
    int64_t last_error_at, last_inbound_at, last_outbound_at, last_connected_at;
    int64_t reconnects, inbound, outbound, failed;
    int64_t pending;    //  Jobs not finished
    zhashx_t *lanes;    //  chat id -> lane_t (owned)
    int calls;          //  Calls in flight (CHAN_MAX_CALLS at most)
    zlistx_t *waiting;  //  Lanes waiting for a call slot (lent), in order
    void *transport;    //  The platform's state (platform->fini frees)
    int timer;          //  The transport's next step (chan_later), or -1
    void (*next) (chan_t *ch);
    const char *agent;  //  Agent id that answers
    size_t limit;       //  Split size
};

struct job_t {
    int64_t row;  //  Its row in chanstore
    chan_t *ch;
    char *key;       //  Platform message id (owned)
    char *chat_id;   //  Where the reply goes (owned)
    char *reply_to;  //  Message replied to (owned), may be ""
    char *session;   //  Session of the run (owned)
    char *text;      //  What they wrote (owned)
    bool notice;     //  Answered by reply alone (no run)
    void *queued;    //  Its handle in self->queue while it waits
    //  Its run, while it goes.
    bool running;
    run_call_t call;
    char run_id[80];    //  Its last run's id, "" before
    char corr[24];      //  The start's correlation id, for a refusal
    int64_t typing_at;  //  When typing was last shown
    //  Its reply.
    char *reply;   //  Owned, or NULL until the run is done
    char **parts;  //  split_text's parts (owned), NULL until split
    int n_parts;
    int parts_sent;
    int attempts;      //  Failed sends of the current part
    int64_t retry_at;  //  Not before (zclock_mono), when waiting
    bool failed;       //  The run failed: the reply is an error notice
    //  A hook's callers waiting for the result (bus_request_t, owned).
    zlistx_t *waiters;
    char *new_chat;       //  SEND_MIGRATE: the chat it moved to (owned)
    lane_t *lane;         //  Its lane, once it has a reply
    void *platform_data;  //  The platform's, while a send goes
};

struct lane_t {
    chan_t *ch;
    char *chat_id;     //  Owned
    zlistx_t *jobs;    //  Jobs with replies to send, in order (lent)
    bool sending;      //  A send of the head job is going
    void *waiting;     //  Its handle in ch->waiting, while it waits
    int64_t retry_at;  //  Head job waits until (zclock_mono), 0: no
};

struct self_t {
    const channel_settings_t *settings;
    const catalog_t *catalog;
    run_catalog_t run_catalog;
    bus_worker_t *worker;
    zloop_t *loop;
    chanstore_t *store;
    bus_front_t *front;            //  To ask the session actor for runs
    curl_loop_t *curl;             //  Platform calls (made on first use)
    zlistx_t *calls;               //  chan_http_t going (owned)
    const chan_http_t *answering;  //  The call whose callback runs, or NULL
    const char *ca_file, *ca_dir;  //  SSL_CERT_FILE, SSL_CERT_DIR (lent by the
                                   //  environment), or NULL
    CURL *spare[CHAN_SPARE_EASY];  //  Reset easy handles kept for reuse
    int n_spare;
    chan_t *chans;  //  One per channel_ids entry
    size_t n_chans;
    zhashx_t *jobs;    //  Row id (as text) -> job_t (owned)
    zhashx_t *runs;    //  Run id -> job_t (lent)
    zhashx_t *starts;  //  Start corr id -> job_t (lent)
    zlistx_t *queue;   //  Jobs waiting to start their run (lent)
    size_t running;    //  Runs going
};

//  ---- Core (channel.c) ---------------------------------------------------------

//  Unix ms now.
int64_t
chan_now (void);

//  Sets ch's transport status ("connected", "disconnected", "error"), and
//  its last error (NULL: leave it).  Logs changes.
void
chan_set_status (chan_t *ch, const char *status, const char *error);

//  The libcurl loop, made on first use; NULL if libcurl cannot load.
curl_loop_t *
chan_curl (self_t *self);

//  A backoff delay for attempt n (1...): retry_min_ms doubling up to
//  retry_max_ms, with up to 20% jitter.
int
chan_backoff_ms (const chan_t *ch, int attempt);

//  The channel's API root (baseUrl, else the platform's default) without
//  its trailing '/': its length, and the text in *base (lent).
int
chan_base_url (const chan_t *ch, const char **base);

//  Runs next (ch) on the loop after delay_ms (at most one step waits per
//  channel: a new one replaces it), unless the channel stops first.
void
chan_later (chan_t *ch, int delay_ms, void (*next) (chan_t *ch));

//  Drops the step chan_later set, if any.
void
chan_later_end (chan_t *ch);

//  A Retry-After header (seconds, integer or not) as ms, within an hour;
//  otherwise (missing, malformed, out of range) if it is not one.
int
chan_retry_after_ms (const char *value, int otherwise);

//  Value of name in a query string (a=b&c=d), %-decoded, into buf.  NULL
//  if it is not there, does not fit or decodes to a NUL.
const char *
chan_query_get (const char *query, const char *name, char *buf, size_t cap);

//  True if hex is the HMAC-SHA256 (lower- or upper-case hex) of prefix
//  then data with key, compared in constant time.  False too if
//  libcrypto cannot be loaded.
bool
chan_signature_ok (const char *key, const char *prefix, size_t prefix_len,
                   const char *data, size_t len, const char *hex);

//  ---- Ingress (ingress.c) ------------------------------------------------------

//  Takes n messages a platform received: access policy, then each new one
//  is stored (one transaction, with the transport's cursor when it is not
//  negative) and its answer started.  Returns 0 once they are stored (the
//  platform may then acknowledge them), -1 if the store failed (it must
//  not: the platform will deliver them again).  stored (may be NULL)
//  counts the new ones.
int
chan_ingest (chan_t *ch, const inbound_t *in, size_t n, int64_t cursor, int *stored);

//  Makes jobs of the rows the last stop left open, and starts them.
int
chan_recover (self_t *self);

//  Starts runs while there is room.
void
chan_pump (self_t *self);

//  The run actor's answers on self->front.
int
chan_on_front (zloop_t *loop, zsock_t *sock, void *arg);

//  Deadlines of runs, typing refresh, lane retries.
void
chan_tick_runs (self_t *self);

//  Frees job, forgetting it everywhere.
void
chan_job_free (self_t *self, job_t *job);

//  A job made by a platform (the generic webhook) rather than a push:
//  stores msg and returns the job (NULL on failure), *dup set if
//  (channel, key) was stored before (job NULL then, unless it is still
//  going, when it is that job).
job_t *
chan_ingest_one (chan_t *ch, const chan_msg_t *msg, bool *dup);

//  ---- Outbound (outbound.c) ----------------------------------------------------

//  job's reply is known (job->reply): split it and queue it on its lane.
void
chan_reply (chan_t *ch, job_t *job);

//  Text of the part job is sending now.
const char *
chan_part (const job_t *job);

//  The platform reports how the current part of job went.  retry_ms:
//  how long to wait (SEND_RETRY; <= 0: the backoff); error: a sentence
//  (SEND_RETRY, SEND_PERMANENT).
void
chan_sent (chan_t *ch, job_t *job, send_result_t result, int retry_ms, const char *error);

//  Sends what lanes of ch may send now (after enable, and on ticks).
void
chan_lanes_kick (chan_t *ch);

//  Shows typing in chat_id if a call slot is free (typing is a nicety: it
//  is skipped rather than queued).
void
chan_typing (chan_t *ch, const char *chat_id);

//  A typing call ended (its slot is free again): a chan_http_fn.
void
chan_call_done (void *arg, long status, const char *body, size_t len, const char *error,
                const char *retry_after);

//  Frees ch's lanes (not their jobs).
void
chan_lanes_free (chan_t *ch);

//  ---- HTTP calls to platforms (outbound.c) -------------------------------------

//  A call's outcome: HTTP status (0: no response), body (NUL-terminated,
//  lent for the callback), libcurl's sentence when status is 0.
typedef void (chan_http_fn) (void *arg, long status, const char *body, size_t len,
                             const char *error, const char *retry_after);

//  POSTs a JSON body (copied) to url; fn is called once, on the loop,
//  unless chan_http_cancel comes first.  timeout_ms bounds the whole
//  call.  headers: NULL-terminated "K: V" lines or NULL.  Returns the
//  call (owned by the loop until fn) or NULL if it could not start.
chan_http_t *
chan_http_post (self_t *self, const char *url, const char *body,
                const char *const *headers, int timeout_ms, chan_http_fn *fn, void *arg);

//  chan_http_post, or a GET when body is NULL.
chan_http_t *
chan_http_call (self_t *self, const char *url, const char *body,
                const char *const *headers, int timeout_ms, chan_http_fn *fn, void *arg);

//  Inside a chan_http_fn only: the answer's X-RateLimit-<...> header name
//  (e.g. "X-RateLimit-Remaining") copied into buf, or NULL if it had none
//  (or it does not fit).
const char *
chan_http_header (self_t *self, const char *name, char *buf, size_t cap);

//  Ends a call before it finishes; fn is not called.
void
chan_http_cancel (self_t *self, chan_http_t **call_p);

//  Frees the calls still going (at stop).
void
chan_http_fini (self_t *self);

//  ---- Platforms ------------------------------------------------------------------

extern const platform_t platform_telegram;
extern const platform_t platform_webhook;
extern const platform_t platform_whatsapp;
extern const platform_t platform_discord;
extern const platform_t platform_slack;

//  The generic webhook's HOOK_RUN (hooks.c).
void
hooks_run (self_t *self, bus_request_t *req);

#endif
