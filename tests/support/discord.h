/*  =========================================================================
    discord - drive cg_dcstandin, the Discord stand-in, from tests

    dc_start runs $CLAWGATE_STANDIN_DIR/cg_dcstandin (set by cg_test) on a
    free port with the default token "dc-test-token", bot id
    1000000000000000001 and name clawgate_test_bot.  Point the gateway's
    Discord API base at d->api ("http://127.0.0.1:P/api/v10"), or at
    d->api_tls when it was started with TLS; GET /gateway/bot there gives
    the WebSocket URL (wss:// on the TLS port when TLS is on).  The other
    calls talk to its control API; see tests/standin/discord/dcstandin.c
    for every endpoint and fault kind.

    TLS: dc_make_certs (dir, ...) writes a CA and a server certificate for
    127.0.0.1 into dir (with the openssl command); start the stand-in with
    opt.tls_dir = dir, and give the gateway the CA file as SSL_CERT_FILE.
    Nothing is committed: the files are made at run time in the test's own
    directory.  With TLS on, GET /gateway/bot answers wss:// on whichever
    port it is asked, so a gateway whose REST base is the plain d->api
    still opens its WebSocket over TLS (its libcurl, unlike its WebSocket
    client, does not read SSL_CERT_FILE: a REST base of d->api_tls fails
    verification unless the gateway sets CURLOPT_CAINFO from it).

    dc_ws_* is a small Gateway client (civetweb's WebSocket client) for
    tests that check the stand-in itself or play a second bot.

    As with harness.h, use these inside a test (criterion forks each test).
    =========================================================================
*/
#ifndef CG_DISCORD_H
#define CG_DISCORD_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "harness.h"

#define DC_TOKEN "dc-test-token"
#define DC_BOT_ID "1000000000000000001"
#define DC_BOT_NAME "clawgate_test_bot"
//  GUILDS | GUILD_MESSAGES | DIRECT_MESSAGES | MESSAGE_CONTENT
#define DC_INTENTS 37377

typedef struct {
    int heartbeat_ms;      //  Hello's interval; 0: the stand-in's 41250
    bool require_intents;  //  Identify without the message intents: 4014
    int bucket_limit;      //  Enforce N calls per bucket window; 0: no
    int bucket_window_ms;  //  That window; 0: 1000
    const char *tls_dir;   //  Serve TLS too, with dc_make_certs' files here
    const char *token;     //  NULL: DC_TOKEN
} dc_options_t;

typedef struct {
    proc_t proc;        //  The stand-in process
    int port;           //  Plain port
    int tls_port;       //  TLS port, 0 without TLS
    char base[64];      //  "http://127.0.0.1:PORT" (control API)
    char api[80];       //  base + "/api/v10"
    char api_tls[80];   //  "https://127.0.0.1:TLS/api/v10", "" without TLS
    char token[64];     //  The bot token it wants
    char state[256];    //  Its --state file, "" if none
    char tls_dir[256];  //  Its certificates' directory, "" without TLS
    dc_options_t opt;   //  As started (tls_dir and token point above)
} dc_standin_t;

//  Starts the stand-in and waits until it listens.  state_file (may be
//  NULL) keeps the session, its events and the sent log across restarts;
//  opt may be NULL (defaults).  Returns 0 or -1.
int
dc_start (dc_standin_t *d, const char *state_file, const dc_options_t *opt);

//  Starts it again on the same ports with the same options and state
//  file, after dc_stop (any signal, SIGKILL too).  Retries for a few
//  seconds while a port is still taken.  Returns 0 or -1.
int
dc_restart (dc_standin_t *d);

//  Stops it with sig (SIGTERM for a clean exit, SIGKILL for a crash) and
//  reaps it.  Safe to call twice.
void
dc_stop (dc_standin_t *d, int sig);

//  Writes dir/ca.crt (a fresh CA), dir/server.crt and dir/server.key (for
//  IP 127.0.0.1 and localhost, signed by it) with the openssl command, and
//  the CA's path into ca (what SSL_CERT_FILE should name).  Returns 0 or
//  -1.
int
dc_make_certs (const char *dir, char *ca, size_t cap);

//  POST /control/message: json_fields is the body's text, e.g.
//  "{\"channel_id\":\"55\",\"content\":\"hi\"}".  The message's id goes
//  into id (may be NULL, else >= 32 bytes).  Returns its s (0: held for
//  the next READY), or -1.
long
dc_message (dc_standin_t *d, const char *json_fields, char *id);

//  POST /control/fault, e.g. "{\"kind\":\"429\",\"route\":\"messages\",
//  \"retry_after\":0.75}" or "{\"kind\":\"close\",\"code\":4000}".
//  Returns the number of rules held or connections touched, or -1.
int
dc_fault (dc_standin_t *d, const char *json);

//  POST /control/reset.  Returns 0 or -1.
int
dc_reset (dc_standin_t *d);

//  GET /control/sent, only channel_id's when it is not NULL.  Caller owns
//  return value (its "messages" array belongs to it).  NULL on error.
cJSON *
dc_sent (dc_standin_t *d, const char *channel_id);

//  GET /control/calls.  Caller owns return value.  NULL on error.
cJSON *
dc_calls (dc_standin_t *d);

//  GET /control/received: the last client frames the Gateway got, as
//  {"frames":[{at_ms, conn, path, frame}]} (tokens hidden).  Caller owns
//  return value.  NULL on error.
cJSON *
dc_received (dc_standin_t *d);

//  One counter of /control/calls (e.g. "identify", "resume",
//  "connections", "heartbeats", "rest_429").  -1 on error.
long
dc_call (dc_standin_t *d, const char *name);

//  Polls until at least n messages were sent to channel_id (NULL: any) or
//  timeout_ms passes.  Returns 0 or -1.
int
dc_wait_sent (dc_standin_t *d, const char *channel_id, int n, int timeout_ms);

//  Polls until counter name reaches at least n.  Returns 0 or -1.
int
dc_wait_call (dc_standin_t *d, const char *name, long n, int timeout_ms);

//  ---- A Gateway client -------------------------------------------------------

typedef struct dc_ws_t dc_ws_t;

//  Opens path (e.g. "/gateway?v=10&encoding=json") on the plain port, or
//  on the TLS port when tls.  NULL on failure (err gets why, may be NULL).
//  Caller owns return value (dc_ws_close).
dc_ws_t *
dc_ws_open (dc_standin_t *d, const char *path, bool tls, char *err, size_t cap);

//  Sends a text frame.  Returns 0 or -1.
int
dc_ws_send (dc_ws_t *w, const char *text);

//  Sends Identify {token, intents, properties}.  Returns 0 or -1.
int
dc_ws_identify (dc_ws_t *w, const char *token, int intents);

//  Sends Resume {token, session_id, seq}.  Returns 0 or -1.
int
dc_ws_resume (dc_ws_t *w, const char *token, const char *session_id, long seq);

//  Waits for the next frame (after the last one a wait returned) with this
//  op (-1: any) and, if t is not NULL, this t.  Frames passed over stay
//  for later waits only if they come after the match.  Caller owns return
//  value.  NULL on timeout.
cJSON *
dc_ws_wait (dc_ws_t *w, int op, const char *t, int timeout_ms);

//  Waits until the connection ends; returns the server's close code, 1006
//  when it ended without a close frame, -1 on timeout.
int
dc_ws_wait_closed (dc_ws_t *w, int timeout_ms);

//  Frames received so far.
int
dc_ws_count (dc_ws_t *w);

//  Closes with code (e.g. 1000, or 4000 to keep the session) and frees.
void
dc_ws_close (dc_ws_t **w, int code);

#endif
