/*  =========================================================================
    run_check - the checks a request to start a run passes, whichever front
    it came in by

    POST /v1/agent/run (and /stream) and WebSocket chat.run take the same
    fields and must refuse them alike: one function checks them.  POST
    /v1/chat/completions has its own.  Both are pure (no I/O): the caller
    sends the refusal in its own form, and the fuzzers call them directly.
    =========================================================================
*/
#ifndef CG_RUN_CHECK_H
#define CG_RUN_CHECK_H

#include <cjson/cJSON.h>

#include "config.h"

//  A refusal: status 0 means the request passed.
typedef struct {
    int status;                  //  400, 404, or 0
    const char *code;            //  "invalid_request" | "not_found" (static)
    char message[400];           //  One sentence for the client
    char param[48];              //  The field at fault, "" if none
} run_check_t;

//  message (non-empty string), sessionKey (valid key or absent), options
//  (object or absent) with thinking (off|minimal|low|medium|high), model
//  (string) and stream (boolean), and agent (the agentId the front reads:
//  a known agent or absent).  Returns out->status.
int
run_check_agent (const cg_config_t *cfg, const cJSON *req, const cJSON *agent,
                 run_check_t *out);

//  An OpenAI Chat Completions body: model (a known model), messages (a
//  non-empty array of {role, content}), and the types of stream,
//  temperature, top_p, max_tokens, max_completion_tokens, tools,
//  stream_options and n (which must be 1).  Returns out->status.
int
run_check_openai (const cg_config_t *cfg, const cJSON *req, run_check_t *out);

#endif
