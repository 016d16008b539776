/*  =========================================================================
    telegram - drive cg_tgstandin, the Telegram Bot API stand-in, from tests

    tg_start runs $CLAWGATE_TG_STANDIN (set by cg_test) on a free port with
    the default token "123456:TEST", bot id 4242 and username
    clawgate_test_bot.  Point the gateway's Telegram API base at t->base
    (the stand-in answers base + "/bot<token>/<method>").  The other calls
    talk to its control API; see tests/standin/telegram/tgstandin.c for
    every endpoint and fault kind.

    As with harness.h, use these inside a test (criterion forks each test).
    The stand-in dies with the test process if a test ends early.
    =========================================================================
*/
#ifndef CG_TELEGRAM_H
#define CG_TELEGRAM_H

#include <cjson/cJSON.h>

#include "harness.h"

#define TG_TOKEN "123456:TEST"
#define TG_BOT_ID 4242
#define TG_BOT_USERNAME "clawgate_test_bot"

typedef struct {
    proc_t proc;      //  The stand-in process
    int port;         //  Its port
    char base[64];    //  "http://127.0.0.1:PORT"
    char token[64];   //  The bot token it wants
    char state[256];  //  Its --state file, "" if none
} tg_standin_t;

//  Starts the stand-in and waits until it listens.  state_file (may be
//  NULL) keeps the queue and the sent log across restarts.  Returns 0 or
//  -1.
int
tg_start (tg_standin_t *t, const char *state_file);

//  Starts it again on the same port with the same state file, after
//  tg_stop (any signal, SIGKILL too).  Retries for a few seconds while the
//  port is still taken.  Returns 0 or -1.
int
tg_restart (tg_standin_t *t);

//  Stops it with sig (SIGTERM for a clean exit, SIGKILL for a crash) and
//  reaps it.  Safe to call twice.
void
tg_stop (tg_standin_t *t, int sig);

//  POST /control/message: json_fields is the body object's text, e.g.
//  "{\"chat_id\":77,\"text\":\"hi\"}".  Returns the update_id, or -1.
long
tg_message (tg_standin_t *t, const char *json_fields);

//  POST /control/update with an Update object's text (update_id optional:
//  one given means a re-delivery).  Returns the update_id, or -1.
long
tg_update (tg_standin_t *t, const char *update_json);

//  POST /control/fault, e.g. "{\"method\":\"sendMessage\",\"kind\":\"429\",
//  \"retry_after\":2}".  Returns 0 or -1.
int
tg_fault (tg_standin_t *t, const char *json);

//  GET /control/sent, only chat_id's when it is not NULL.  Caller owns
//  return value (cJSON_Delete it); its "messages" array belongs to it.
//  NULL on error.
cJSON *
tg_sent (tg_standin_t *t, const char *chat_id);

//  GET /control/calls: how many calls of method (e.g. "sendMessage", or
//  "pending" for the queued updates) the stand-in has had.  -1 on error.
long
tg_calls (tg_standin_t *t, const char *method);

//  Polls until at least n messages were sent to chat_id (NULL: any chat)
//  or timeout_ms passes.  Returns 0 or -1.
int
tg_wait_sent (tg_standin_t *t, const char *chat_id, int n, int timeout_ms);

#endif
