/*  =========================================================================
    run_check - the checks a request to start a run passes, whichever front
    it came in by

    POST /v1/agent/run (and /stream) and WebSocket chat.run take the same
    fields and must refuse them alike: one function checks them.  POST
    /v1/chat/completions has its own.  Both are pure (no I/O): the caller
    sends the refusal in its own form, and the fuzzers call them directly.
    run_call (run_call.h) calls them for every front; the agents and models
    a request may name come from the caller's configuration through a
    run_catalog_t, so this module reads no configuration of its own.
    =========================================================================
*/
#ifndef CG_RUN_CHECK_H
#define CG_RUN_CHECK_H

#include <cjson/cJSON.h>
#include <stdbool.h>

//  Which agents and models exist: asked of the caller's configuration.
typedef struct {
    //  True if an agent of that id is configured.
    bool (*agent_known) (const void *ctx, const char *id);
    //  True if a model of that "<provider>/<model>" id is configured.
    bool (*model_known) (const void *ctx, const char *id);
    const void *ctx;  //  Passed to both (lent)
} run_catalog_t;

//  A refusal: status 0 means the request passed.
typedef struct {
    int status;         //  400, 404, or 0
    const char *code;   //  "invalid_request" | "not_found" (static)
    char message[400];  //  One sentence for the client
    char param[48];     //  The field at fault, "" if none
} run_check_t;

//  Fills out as a refusal (code from status: "not_found" for 404, else
//  "invalid_request"; param may be NULL) and returns status.  For the
//  checks run_call adds to these (a session header, nesting).
int
run_check_refuse (run_check_t *out, int status, const char *param, const char *fmt, ...)
    __attribute__ ((format (printf, 4, 5)));

//  message (non-empty string), sessionKey (valid key or absent), options
//  (object or absent) with thinking (off|minimal|low|medium|high), model
//  (string) and stream (boolean), and agent (the agentId the front reads:
//  a known agent or absent).  Returns out->status.
int
run_check_agent (const run_catalog_t *cat, const cJSON *req, const cJSON *agent,
                 run_check_t *out);

//  An OpenAI Chat Completions body: model (a known model), messages (a
//  non-empty array of {role, content}), and the types of stream,
//  temperature, top_p, max_tokens, max_completion_tokens, tools,
//  stream_options and n (which must be 1).  Returns out->status.
int
run_check_openai (const run_catalog_t *cat, const cJSON *req, run_check_t *out);

#endif
