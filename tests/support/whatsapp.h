/*  =========================================================================
    whatsapp - drive cg_wastandin, the WhatsApp Cloud API stand-in, from
    tests

    wa_start runs $CLAWGATE_STANDIN_DIR/cg_wastandin (set by cg_test) on a
    free port with the defaults below.  Point the gateway's Graph API base
    at w->graph (base + "/v21.0"; the stand-in answers graph +
    "/1100000001/messages", which w->messages holds), its app secret at
    WA_APP_SECRET and its verify token at WA_VERIFY_TOKEN.  The stand-in also plays Meta: the
    verification GET (wa_verify) and signed webhook POSTs, retried until
    the gateway answers 200 (wa_inbound).  The other calls talk to its
    control API; see tests/standin/whatsapp/wastandin.c for every endpoint,
    option and fault kind.

    As with harness.h, use these inside a test (criterion forks each test).
    The stand-in dies with the test process if a test ends early.
    =========================================================================
*/
#ifndef CG_WHATSAPP_H
#define CG_WHATSAPP_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "harness.h"

#define WA_ACCESS_TOKEN "wa-test-token"
#define WA_PHONE_NUMBER_ID "1100000001"
#define WA_APP_SECRET "wa-app-secret"
#define WA_VERIFY_TOKEN "wa-verify"
#define WA_VERSION "v21.0"
#define WA_DISPLAY_PHONE "15550001111"  //  metadata.display_phone_number
#define WA_WABA_ID "2200000002"         //  entry[].id

typedef struct {
    proc_t proc;         //  The stand-in process
    int port;            //  Its port
    char base[64];       //  "http://127.0.0.1:PORT"
    char graph[96];      //  base + "/v21.0": a Graph API base URL
    char messages[128];  //  base + "/v21.0/1100000001/messages"
    char state[256];     //  Its --state file, "" if none
    char args[12][64];   //  More options, kept for wa_restart
    int nargs;
} wa_standin_t;

//  Starts the stand-in and waits until it listens.  state_file (may be
//  NULL) keeps the logs, ids, windows and pending pushes across restarts.
//  args: more options (NULL-terminated, may be NULL), e.g. {"--window-s",
//  "2", "--retry-ms", "100,200", NULL}; at most 12.  Returns 0 or -1.
int
wa_start (wa_standin_t *w, const char *state_file, const char *const args[]);

//  Starts it again on the same port with the same options, after wa_stop
//  (any signal, SIGKILL too).  Retries for a few seconds while the port is
//  still taken.  Returns 0 or -1.
int
wa_restart (wa_standin_t *w);

//  Stops it with sig (SIGTERM for a clean exit, SIGKILL for a crash) and
//  reaps it.  Safe to call twice.
void
wa_stop (wa_standin_t *w, int sig);

//  One control call (path after "/control/", body NULL for a GET).
//  Returns the parsed answer of a 200, or NULL.  Caller owns return value.
cJSON *
wa_control (wa_standin_t *w, const char *path, const char *body);

//  POST /control/inbound with json, the body's text (e.g. "{\"target\":
//  \"http://...\",\"from\":\"15551234\",\"text\":\"hi\"}"); "wait":true is
//  added unless json says "wait", so this returns once the post was
//  delivered (200) or given up (with the defaults, 6 attempts of up to
//  5 s each: pass "attempts" or start the stand-in with shorter
//  --push-timeout-ms / --retry-ms for a gateway that is down).  The first wamid goes into wamid (may be
//  NULL), the HTTP status of the last attempt into *status (may be NULL;
//  0: no answer).  Returns the number of attempts, or -1.
int
wa_inbound (wa_standin_t *w, const char *json, char *wamid, size_t cap, long *status);

//  A text from `from` to target, as wa_inbound.  Returns the target's
//  last HTTP status (0: none), or -1.
long
wa_inbound_text (wa_standin_t *w, const char *target, const char *from, const char *text,
                 char *wamid, size_t cap);

//  POST /control/verify: Meta's verification GET of target with token
//  (NULL: WA_VERIFY_TOKEN).  *status gets the target's HTTP status (may be
//  NULL).  Returns 1 when it answered 200 with the challenge as its body,
//  0 when not, -1 on error.
int
wa_verify (wa_standin_t *w, const char *target, const char *token, long *status);

//  POST /control/fault, e.g. "{\"kind\":\"131047\",\"to\":\"15551234\"}".
//  Returns 0 or -1.
int
wa_fault (wa_standin_t *w, const char *json);

//  POST /control/reset.  Returns 0 or -1.
int
wa_reset (wa_standin_t *w);

//  GET /control/sent, only those to wa_id when it is not NULL.  Caller
//  owns return value; its "messages" array belongs to it.  NULL on error.
cJSON *
wa_sent (wa_standin_t *w, const char *wa_id);

//  GET /control/reads.  Caller owns return value ("reads" array).
cJSON *
wa_reads (wa_standin_t *w);

//  GET /control/pushes.  Caller owns return value ("pushes" array).
cJSON *
wa_pushes (wa_standin_t *w);

//  GET /control/calls: counter name ("text", "read", "typing", "denied",
//  "rejected", "pending", ...).  -1 on error.
long
wa_calls (wa_standin_t *w, const char *name);

//  Polls until at least n messages were sent to wa_id (NULL: anyone) or
//  timeout_ms passes.  Returns 0 or -1.
int
wa_wait_sent (wa_standin_t *w, const char *wa_id, int n, int timeout_ms);

//  Polls until at least n read receipts were recorded.  Returns 0 or -1.
int
wa_wait_reads (wa_standin_t *w, int n, int timeout_ms);

//  "sha256=" + hex HMAC-SHA256(secret, body): the X-Hub-Signature-256
//  value Meta sends, by libcrypto's HMAC; test_wastandin checks it against
//  RFC 4231 and the stand-in's signatures against it.  out must hold 72
//  bytes.
void
wa_signature (const char *secret, const void *body, size_t len, char *out);

#endif
