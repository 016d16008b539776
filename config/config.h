/*  =========================================================================
    config - clawgate's configuration: defaults < JSON file < env < flags

    One cg_config_t is built at start-up on the main thread and then only
    read, from any thread, until it is destroyed at exit.  Every string in it
    is owned by it.

    Every scalar key is declared once, in config/keys.c's table (key, type,
    default, environment variable, flag, bounds, where it lands, one line of
    help); the loader, the defaults, the environment, the flags and the
    unknown-key checks are driven from it, and `clawgate config-keys`
    prints it as the README's configuration reference.  A value several
    places read (stateDir, gateway.requestTimeoutMs, broker.heartbeatMs...)
    is one key that fills each of them.
    =========================================================================
*/
#ifndef CG_CONFIG_H
#define CG_CONFIG_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "settings.h"

typedef enum {
    AUTH_TOKEN = 1,     //  Bearer token (or ?token=)
    AUTH_PASSWORD = 2,  //  Password (Basic, header or ?password=)
    AUTH_BOTH = 3,      //  Either credential
    AUTH_NONE = 4,      //  Anyone (loopback binds only)
} auth_mode_t;

//  Token scopes (bit set).
#define SCOPE_CHAT 0x01u
#define SCOPE_SESSIONS 0x02u
#define SCOPE_CHANNELS 0x04u
#define SCOPE_BROWSER 0x08u
#define SCOPE_ADMIN 0x10u
#define SCOPE_ALL 0x1fu

typedef struct {
    char *token;         //  Secret
    char *name;          //  Shown in logs instead of the secret
    unsigned scopes;     //  SCOPE_* bits
    int rate_limit;      //  Own requests/minute, -1 = limits.rateLimit
    int burst;           //  Own bucket size, -1 = limits.burst
    int max_concurrent;  //  Own in-flight cap, -1 = limits.maxConcurrent
} cfg_token_t;

typedef struct {
    //  Where and how we listen.
    char *bind;       //  Address, default 127.0.0.1
    int port;         //  Default 18789; 0 picks a free port
    char *state_dir;  //  Default ~/.clawgate
    char *log_level;  //  debug|info|warn|error
    //  Authentication.
    auth_mode_t auth_mode;
    char *token;          //  Main token (all scopes), may be NULL
    char *password;       //  Password (all scopes), may be NULL
    cfg_token_t *tokens;  //  Extra tokens with scopes
    size_t n_tokens;
    bool token_generated;  //  True if this start generated the token
    //  HTTP front.
    int threads;                //  civetweb worker threads
    long long max_body;         //  Bytes; larger bodies get 413
    int request_timeout_ms;     //  Run / request deadline
    int control_timeout_ms;     //  Deadline of control requests (status)
    int drain_timeout_ms;       //  How long SIGTERM waits for in-flight work
    int sse_keepalive_ms;       //  SSE comment this often while idle: it
                                //  also finds clients that went away
    int max_frame_bytes;        //  WebSocket frame limit (for the WS front)
    int header_timeout_ms;      //  A request head must arrive within this
                                //  (the gate); also civetweb's read timeout
    int keep_alive_timeout_ms;  //  Idle keep-alive connections closed after
    int reserved_threads;       //  Workers no address that holds one
                                //  already may take; -1 = threads / 8
    //  Limits, enforced by the ratelimit actor through leases (see
    //  gateway/ratelimit_front.h).  Per-token overrides sit in tokens[].
    int rate_limit;          //  Requests per minute per credential, 0 off
    int burst;               //  Token bucket size, 0 = rate_limit
    int max_concurrent;      //  In-flight per credential, 0 off
    int auth_failures;       //  Failed auths per address per minute, 0 off
    int max_conns_per_addr;  //  Open connections per address, 0 off
    int lease_ms;            //  Life of a front's lease on quota
    //  Broker.
    char *requests_ep;  //  Broker ROUTER endpoint
    char *events_ep;    //  Broker XPUB endpoint
    int heartbeat_ms;
    int liveness;
    //  Sessions.
    char *store;  //  Store URL; NULL: SQLite in the state dir
    //  (contextMessages, contextChars, maxQueued, readers: only the
    //  session actor reads them, so they land in actors.session.)
    //  WebSocket.
    int ws_heartbeat_ms;  //  heartbeat event this often
    int ws_queue_frames;  //  Frames queued per client before "lagged"
    int ws_writers;       //  Threads writing to WebSocket clients
    //  Browser actor (Chromium is always headless).
    char *browser_chromium;           //  Chromium binary, default /usr/bin/chromium
    int browser_navigate_timeout_ms;  //  Default load deadline of a navigation
    //  (viewportWidth, viewportHeight land in actors.browser.)
    //  What /ready and /v1/models report.
    char **ready_services;  //  NULL-terminated
    cfg_model_t *models;
    size_t n_models;
    cfg_provider_t *providers;
    size_t n_providers;
    cfg_agent_t *agents;
    size_t n_agents;
    cfg_channel_t *channels;
    size_t n_channels;
    long long started_at;  //  Unix seconds at load (model "created")
    //  What the actors read.  A number only actors read lands here
    //  directly; one the front reads too is copied here at the end of
    //  config_load.  Strings are owned by the fields above even when only
    //  an actor reads them (store, browser_chromium) and lent here, as are
    //  the providers, models, agents and channels.
    actor_settings_t actors;
} cg_config_t;

//  Command-line overrides; NULL/-1 fields are not set.  Each but the
//  first three is the flag of a key in config/keys.c (its flag_at).
typedef struct {
    const char *config_path;
    const char *config_text;  //  The file's text itself (config_len
    size_t config_len;        //  bytes, not terminated): no file read
    const char *bind;
    int port;
    const char *state_dir;
    const char *broker;  //  --broker / --requests
    const char *events;  //  --events
    const char *store;   //  --store
} cfg_flags_t;

//  Builds the configuration.  On error returns NULL and writes one sentence
//  naming the offending key into err.  Caller owns the return value and
//  must config_destroy it.  Does not touch the state directory.
cg_config_t *
config_load (const cfg_flags_t *flags, char *err, size_t errlen);

//  Creates the state directory (0700) and, when token auth is on and no
//  token is configured, reads or generates <state>/token (0600).  Returns 0,
//  or -1 with a sentence in err.
int
config_prepare_state (cg_config_t *self, char *err, size_t errlen);

//  Checks what only makes sense once all sources are merged (auth none on a
//  non-loopback bind, a token mode with no token).  0, or -1 and err.
int
config_check_serving (const cg_config_t *self, char *err, size_t errlen);

void
config_destroy (cg_config_t **self_p);

//  The provider serving model id "<provider>/<model>" (it must be listed in
//  its models), with *model set to the part after the slash.  NULL if none.
const cfg_provider_t *
config_find_model (const cg_config_t *self, const char *id, const char **model);

//  Workers that no address holding one already may take, and that
//  WebSocket clients never take: gateway.reservedThreads, or threads / 8
//  (at least 1 when there are 2 threads or more).
int
config_reserved_threads (const cg_config_t *self);

//  The agent with this id, or NULL.
const cfg_agent_t *
config_find_agent (const cg_config_t *self, const char *id);

//  Name of an auth mode, as config and /status spell it.
const char *
config_auth_name (auth_mode_t mode);

//  Parses a scope name list ("chat,sessions") or array; 0 on error.
unsigned
config_scope_bit (const char *name);

//  True if addr is a loopback address (127.0.0.0/8, ::1, localhost).
bool
config_is_loopback (const char *addr);

//  Prints the configuration reference, a Markdown table of every key
//  (key, type, default, environment variable or flag, bounds, meaning),
//  generated from the key table: what README.md holds between its
//  config-reference markers.  Returns 0, or -1 if out could not be written.
int
config_print_reference (FILE *out);

#endif
