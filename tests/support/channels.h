/*  =========================================================================
    channels - a `clawgate serve` with channels configured, for the channel
    tests (test_channels_*.c)

    ch_gw_start runs serve on a free port with a state dir that outlives
    the process, so a test can kill it (SIGKILL too) and start it again on
    the same state and configuration.  Then JSON helpers over HTTP with the
    gateway's token, the channel status, a one-shot WebSocket call, and
    counts over cg_tgstandin's sent log.

    As with harness.h, use these inside a test (criterion forks each test).
    =========================================================================
*/
#ifndef CG_CHANNELS_H
#define CG_CHANNELS_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "harness.h"
#include "telegram.h"

typedef struct {
    proc_t proc;       //  The gateway process
    int port;          //  Its port
    char base[64];     //  "http://127.0.0.1:PORT"
    char state[256];   //  Its state dir (kept across restarts)
    char config[300];  //  Its config file, inside state
    char token[128];   //  The gateway token
    char auth[192];    //  "Authorization: Bearer <token>"
} ch_gw_t;

//  Writes config_json into a fresh state dir and starts serve on it;
//  waits until /health answers.  Returns 0 or -1.
int
ch_gw_start (ch_gw_t *g, const char *config_json);

//  Starts serve again on the same state dir, config file and port (after
//  ch_gw_stop), so that platforms' pushes reach it at the same URL.  Returns 0 or -1.
int
ch_gw_restart (ch_gw_t *g);

//  Stops it with sig; returns the exit status (128+signal if killed).
int
ch_gw_stop (ch_gw_t *g, int sig);

//  Stops it if it runs and removes its state dir.
void
ch_gw_destroy (ch_gw_t *g);

//  The Telegram channel's configuration text pointed at t, with extra
//  key/value text (e.g. "\"dmPolicy\":\"open\"", may be NULL) added to
//  the telegram object and more top-level channel objects in more (e.g.
//  "\"webhook\":{...}", may be NULL).  Into buf.
void
ch_tg_config (char *buf, size_t cap, tg_standin_t *t, const char *extra,
              const char *more);

//  A request to the gateway with its token (auth false: no token) and a
//  JSON body (may be NULL); headers are more "K: V" lines (may be NULL).
//  Returns the status; the parsed body in *out (may be NULL; caller owns
//  it; NULL if not JSON).
long
ch_http (ch_gw_t *g, const char *method, const char *path, const char *body, bool auth,
         const char *const headers[], cJSON **out);

//  GET /v1/channels/<id>/status.  Caller owns return value; NULL on error.
cJSON *
ch_status (ch_gw_t *g, const char *id);

//  A number field of the channel's status (-1 if absent).
long
ch_status_num (ch_gw_t *g, const char *id, const char *field);

//  Polls until the channel's status is want or timeout_ms passes.
//  Returns 0 or -1.
int
ch_wait_status (ch_gw_t *g, const char *id, const char *want, int timeout_ms);

//  POST /control/message to the stand-in; returns the update_id (-1 on
//  error), the message_id in *message_id.
long
ch_tg_message (tg_standin_t *t, const char *json_fields, long *message_id);

//  A DM from chat (the sender is the chat) with text; returns its
//  message_id, -1 on error.
long
ch_tg_dm (tg_standin_t *t, long chat, const char *text);

//  How many messages the stand-in has sent to chat (NULL: any) replying
//  to message reply_to (0: any).
int
ch_tg_count (tg_standin_t *t, const char *chat, long reply_to);

//  Polls until some sent message to chat replies to reply_to; returns
//  the first one's text (caller frees), NULL on timeout.
char *
ch_tg_wait_reply (tg_standin_t *t, const char *chat, long reply_to, int timeout_ms);

//  Polls until the stand-in's call count of method reaches n.
int
ch_tg_wait_calls (tg_standin_t *t, const char *method, long n, int timeout_ms);

//  One WebSocket call {"method","params","id":1} on a fresh connection
//  with the gateway's token.  Returns the reply frame (caller owns it),
//  NULL if none came within timeout_ms.
cJSON *
ch_ws_call (ch_gw_t *g, const char *method, const char *params, int timeout_ms);

//  ---- Small helpers ------------------------------------------------------

//  A string member of obj, or NULL.
const char *
ch_str (const cJSON *obj, const char *name);

//  A number member of obj, or NAN.
double
ch_num (const cJSON *obj, const char *name);

//  The pairing code in a notice ("Pairing code: XXXXXXXX", 8 characters
//  of A-Z without I and O, and 2-9) into code (9 bytes).  False if none.
bool
ch_code_in (const char *text, char *code);

#endif
