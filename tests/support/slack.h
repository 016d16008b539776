/*  =========================================================================
    slack - drive cg_slackstandin, the Slack stand-in, from tests

    sl_start runs $CLAWGATE_STANDIN_DIR/cg_slackstandin on a free port with
    the default bot token "xoxb-test", app token "xapp-test", signing
    secret "slack-test-secret", bot user UBOT and bot id BBOT.  Point the
    gateway's Slack API base at s->api ("http://127.0.0.1:PORT/api"; the
    stand-in answers base + "/<method>"); apps.connections.open hands out
    ws://127.0.0.1:PORT/link/?ticket=... URLs.  The other calls talk to its
    control API; see tests/standin/slack/slstandin.c for every endpoint,
    event kind and fault.

    As with harness.h, use these inside a test (criterion forks each test).
    The stand-in dies with the test process if a test ends early.
    =========================================================================
*/
#ifndef CG_SLACK_H
#define CG_SLACK_H

#include <cjson/cJSON.h>

#include "harness.h"

#define SL_BOT_TOKEN "xoxb-test"
#define SL_APP_TOKEN "xapp-test"
#define SL_SIGNING_SECRET "slack-test-secret"
#define SL_BOT_USER "UBOT"
#define SL_BOT_ID "BBOT"
#define SL_TEAM "T0001"

//  Options for sl_start; 0 or NULL keeps the stand-in's default.
typedef struct {
    int ack_ms;                //  --ack-ms (3000)
    int max_sockets;           //  --max-sockets (10)
    int grace_ms;              //  --disconnect-grace-ms (10000)
    int ping_ms;               //  --ping-ms (5000)
    int http_timeout_ms;       //  --http-timeout-ms (3000)
    int max_text;              //  --max-text (40000)
    const char *retry_delays;  //  --retry-delays-ms ("0,1000,2000")
    const char *target;        //  --target: the default push URL
    const char *seed;          //  --seed for the socket choice
} sl_options_t;

typedef struct {
    proc_t proc;        //  The stand-in process
    int port;           //  Its port
    char base[64];      //  "http://127.0.0.1:PORT"
    char api[80];       //  base + "/api"
    char state[256];    //  Its --state file, "" if none
    sl_options_t opts;  //  What it was started with (strings not copied)
} sl_standin_t;

//  Starts the stand-in and waits until it listens.  state_file (may be
//  NULL) keeps the unacked envelopes, the events and the sent log across
//  restarts; opts may be NULL.  Returns 0 or -1.
int
sl_start (sl_standin_t *s, const char *state_file, const sl_options_t *opts);

//  Starts it again on the same port with the same options and state file,
//  after sl_stop (any signal, SIGKILL too).  Retries for a few seconds
//  while the port is still taken.  Returns 0 or -1.
int
sl_restart (sl_standin_t *s);

//  Stops it with sig (SIGTERM for a clean exit, SIGKILL for a crash) and
//  reaps it.  Safe to call twice.
void
sl_stop (sl_standin_t *s, int sig);

//  One control call (path after "/control/", body JSON text or NULL).
//  Returns the parsed answer of a 200, else NULL.  Caller owns return
//  value.
cJSON *
sl_control (sl_standin_t *s, const char *method, const char *path, const char *body);

//  POST /control/event, e.g. "{\"kind\":\"dm\",\"text\":\"hi\"}".  Copies
//  the (first) event_id into event_id when it is not NULL.  Returns the
//  whole answer (caller owns it), or NULL.
cJSON *
sl_event (sl_standin_t *s, const char *json, char *event_id, size_t cap);

//  POST /control/fault, e.g. "{\"method\":\"chat.postMessage\",\"kind\":
//  \"ratelimited\",\"retry_after\":2}" or "{\"kind\":\"warning\"}".
//  Returns 0 or -1.
int
sl_fault (sl_standin_t *s, const char *json);

//  GET /control/sent filtered by channel and thread_ts (either may be
//  NULL).  Caller owns return value; its "messages" array belongs to it.
//  NULL on error.
cJSON *
sl_sent (sl_standin_t *s, const char *channel, const char *thread_ts);

//  GET /control/calls.  Caller owns return value.  NULL on error.
cJSON *
sl_calls (sl_standin_t *s);

//  One number of /control/calls ("acks", "sockets_open", ...), or a Web
//  API method's call count ("chat.postMessage").  -1 on error.
long
sl_count (sl_standin_t *s, const char *name);

//  GET /control/pushes.  Caller owns return value.  NULL on error.
cJSON *
sl_pushes (sl_standin_t *s);

//  Polls until at least n messages were posted to channel (NULL: any) in
//  thread_ts (NULL: any) or timeout_ms passes.  Returns 0 or -1.
int
sl_wait_sent (sl_standin_t *s, const char *channel, const char *thread_ts, int n,
              int timeout_ms);

//  Polls until exactly n sockets are open (live), or timeout_ms passes.
//  Returns 0 or -1.
int
sl_wait_sockets (sl_standin_t *s, int n, int timeout_ms);

//  Polls until sl_count (name) >= n, or timeout_ms passes.  Returns 0 or
//  -1.
int
sl_wait_count (sl_standin_t *s, const char *name, long n, int timeout_ms);

//  Polls until push id (1, 2, ...) is over; returns its record (caller
//  owns it), or NULL on timeout.
cJSON *
sl_wait_push (sl_standin_t *s, int id, int timeout_ms);

//  Slack's request signature, "v0=<hex HMAC-SHA256(secret, "v0:" ts ":"
//  body)>", computed with libcrypto's HMAC, into out.
void
sl_signature (const char *secret, const char *ts, const char *body, size_t body_len,
              char out[72]);

#endif
