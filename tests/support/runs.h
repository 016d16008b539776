/*  =========================================================================
    runs - the runs harness: a stand-in provider and a served gateway

    For the tests that drive runs through the real binary (test_runs_*.c,
    test_sessions.c, test_ws.c and others).  runs_standin_start starts
    cg_standin, a local OpenAI + Anthropic stand-in ($CLAWGATE_STANDIN,
    tests/standin/); runs_start_with starts it and a `clawgate serve` whose
    providers point at it.  Then HTTP helpers that carry the gateway's
    token, the stand-in's hooks (/_last, /_stats), JSON accessors and
    parsers of the two SSE formats.

    State lives in runs_env, one per test process: criterion forks each
    test, so call these from the test or its .init, never at file scope.
    Every helper fails the test (cr_assert) rather than return an error.
    =========================================================================
*/
#ifndef CG_RUNS_H
#define CG_RUNS_H

//  What the suites that used runs_common.h got from it.
#include <criterion/criterion.h>
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"

#define OPENAI_KEY "sk-test-openai"
#define ANTHROPIC_KEY "sk-test-anthropic"
#define OPENAI_HELLO "Hello from the openai stand-in. You said: "
#define ANTHROPIC_HELLO "Hello from the anthropic stand-in. You said: "

typedef struct {
    proc_t standin;  //  The stand-in process
    char sbase[64];  //  "http://127.0.0.1:PORT" of the stand-in
    served_t srv;    //  The gateway
    char auth[192];  //  "Authorization: Bearer <token>"
} runs_env_t;

//  This test process's stand-in and gateway.
extern runs_env_t runs_env;

//  ---- Fixture ------------------------------------------------------------------

//  Starts the stand-in alone (runs_env.standin, runs_env.sbase).
void
runs_standin_start (void);

//  Starts stand-in and gateway.  request_timeout_ms 0 keeps the default;
//  stall_ms is both providers' stallTimeoutMs; keepalive_ms the gateway's
//  sseKeepaliveMs.  A stream that stays silent for one keep-alive interval
//  begins (200) so that a client gone early is noticed; failures before
//  that get real HTTP statuses.  Suites that check those statuses use a
//  roomy interval, so a loaded machine cannot turn them into streams.
void
runs_start_with (int request_timeout_ms, int stall_ms, int keepalive_ms);

//  Stops both; the gateway must exit 0 (under ASan a leak makes it
//  non-zero).  The stand-in is stopped before any assertion can end us.
void
runs_stop_all (void);

//  ---- HTTP to the gateway, with its token ---------------------------------------

//  POST a body to the gateway (and one extra header line, or NULL).
void
runs_post_raw (const char *path, const char *body, size_t len, const char *extra,
               http_resp_t *r);

void
runs_post (const char *path, const char *body, http_resp_t *r);

void
runs_get (const char *path, http_resp_t *r);

//  Checks an error response: status, and the body
//  {"error":{code,message,type,param}}.  param NULL: JSON null expected.
void
runs_assert_error (const http_resp_t *r, long status, const char *code,
                   const char *param);

//  ---- JSON -----------------------------------------------------------------------

//  Parses a response body; fails the test if it is not JSON.  Caller
//  deletes.
cJSON *
runs_json (const http_resp_t *r);

//  A string member (NULL if absent or not a string).
const char *
runs_str (const cJSON *obj, const char *key);

//  Walks a path like "choices.0.message.content" (numbers index arrays).
const cJSON *
runs_at (const cJSON *j, const char *path);

//  The string at path, or NULL.
const char *
runs_at_str (const cJSON *j, const char *path);

//  A number at path; fails the test if there is none.
double
runs_at_num (const cJSON *j, const char *path);

//  ---- The stand-in's hooks -------------------------------------------------------

//  GET /_last: {path, body, headers} of the last request it took.  Caller
//  deletes.
cJSON *
runs_last (void);

typedef struct {
    long requests, active, completed, aborted;
} runs_stats_t;

//  GET /_stats.
runs_stats_t
runs_stats (void);

//  Reads the stand-in's stats into st until cond (an expression on st)
//  holds or timeout_ms pass; st keeps the last stats read.
#define RUNS_POLL_STATS(st, cond, timeout_ms)                                            \
    do {                                                                                 \
        long long until_ = harness_now_ms () + (timeout_ms);                             \
        while (true) {                                                                   \
            st = runs_stats ();                                                          \
            if ((cond) || harness_now_ms () >= until_)                                   \
                break;                                                                   \
            usleep (50000);                                                              \
        }                                                                                \
    } while (0)

//  ---- Server-Sent Events ----------------------------------------------------------

//  An OpenAI-format stream, checked line by line: every line is "data: …",
//  an SSE comment (": keep-alive", which the gateway may send whenever the
//  stream idles for sseKeepaliveMs) or blank; the last data line is [DONE].
typedef struct {
    cJSON *chunks;     //  Array of the parsed chunk objects, in order
    char text[65536];  //  Concatenated choices[0].delta.content
    size_t text_len;
    int content_chunks;  //  Chunks with non-empty delta.content
    bool done;           //  The last data line was [DONE]
} runs_oai_stream_t;

//  Parses body into s, failing the test on a line that breaks the format.
//  Caller deletes s->chunks.
void
runs_parse_oai_stream (const char *body, runs_oai_stream_t *s);

//  The OpenClaw stream: frames of "event: X" / "data: {json}" lines.
//  Returns an array of {"event":X,"data":{…}}; comments are skipped.
//  Caller deletes.
cJSON *
runs_parse_frames (const char *body);

#endif
