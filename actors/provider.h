/*  =========================================================================
    provider - what is provider-specific about a model call

    Builds the HTTP request for OpenAI Chat Completions (and compatible
    servers) or Anthropic Messages from a run's OpenAI-format conversation,
    and turns the response -- an SSE stream or one JSON body, fed in pieces
    of any size -- into calls on a sink: text and tool-call deltas, usage,
    finish reason, or an error with the gateway's status and code.  No I/O
    here: the run actor moves the bytes.  Not thread-safe; one per call.
    =========================================================================
*/
#ifndef CG_PROVIDER_H
#define CG_PROVIDER_H

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdbool.h>
#include <stdint.h>

//  ---- What is configured: providers, their models, agents -------------------
//  Filled by the configuration loader (config/), read by the run and
//  session actors and by the fronts.  Every string is owned by the
//  configuration that made it.

typedef enum {
    PROVIDER_ECHO = 1,       //  Built-in local/echo
    PROVIDER_OPENAI = 2,     //  OpenAI Chat Completions or compatible
    PROVIDER_ANTHROPIC = 3,  //  Anthropic Messages API
} provider_type_t;

typedef struct {
    char *name;  //  "openai", "anthropic", "vllm", "local"
    provider_type_t type;
    char *base_url;          //  Without trailing slash
    char *api_key;           //  May be NULL (local servers)
    int connect_timeout_ms;  //  TCP/TLS connect deadline
    int stall_timeout_ms;    //  No byte for this long: upstream stalled
    int echo_delay_ms;       //  local/echo only: pause between words
} cfg_provider_t;

typedef struct {
    char *id;           //  "<provider>/<model>"
    char *owned_by;     //  Provider name
    char *description;  //  Shown in /v1/models, may be NULL
} cfg_model_t;

typedef struct {
    char *id;            //  Agent id ("default")
    char *model;         //  "<provider>/<model>"
    char *system;        //  System prompt, may be NULL
    char **fallbacks;    //  Models tried in order, NULL-terminated
    int max_tokens;      //  Default max tokens (Anthropic needs one)
    bool browser_tools;  //  tools: ["browser"]: browser_navigate and
                         //  browser_screenshot offered to the model
    int max_tool_steps;  //  Model -> tools -> model rounds, at most
} cfg_agent_t;

//  The configured providers, models and agents, lent by the configuration
//  (not owned here).
typedef struct {
    const cfg_provider_t *providers;
    size_t n_providers;
    const cfg_model_t *models;
    size_t n_models;
    const cfg_agent_t *agents;
    size_t n_agents;
} catalog_t;

//  The provider serving model id "<provider>/<model>" (it must be listed in
//  its models), with *model set to the part after the slash.  NULL if none.
const cfg_provider_t *
catalog_find_model (const catalog_t *self, const char *id, const char **model);

//  The agent with this id, or NULL.
const cfg_agent_t *
catalog_find_agent (const catalog_t *self, const char *id);

//  Where a response goes.  Pointers are lent for the call only.
typedef struct {
    //  text may be empty; tool_calls is an OpenAI chunk-format tool_calls
    //  delta array (each item with "index"), or NULL.
    void (*delta) (void *arg, const char *text, size_t len, const cJSON *tool_calls);
    void (*usage) (void *arg, int64_t prompt, int64_t completion);
    //  reason in OpenAI's words: stop, length, tool_calls, content_filter.
    void (*finish) (void *arg, const char *reason);
    //  status and code as the gateway answers (docs/errors.md).
    void (*error) (void *arg, int status, const char *code, const char *message);
} provider_sink_t;

//  What a run asks of the model besides its messages.
typedef struct {
    const char *model;         //  Model name at the provider (no prefix)
    const char *system;        //  Agent's system prompt, or NULL
    const char *thinking;      //  off|minimal|low|medium|high, or NULL
    const cJSON *messages;     //  OpenAI-format conversation
    const cJSON *tools;        //  OpenAI-format tools, or NULL
    const cJSON *tool_choice;  //  OpenAI tool_choice, or NULL
    const cJSON *temperature;  //  Number, or NULL
    int64_t max_tokens;        //  0 = provider default / agent's
    int64_t agent_max_tokens;  //  Agent's default (Anthropic needs one)
    bool stream;               //  Ask for SSE
} provider_request_t;

//  Builds URL, headers and body.  Caller owns *url, *body (free) and
//  *headers (curl_slist_free_all).  Returns 0, or -1 with a sentence in err.
int
provider_build (const cfg_provider_t *provider, const provider_request_t *req, char **url,
                struct curl_slist **headers, char **body, char *err, size_t errlen);

typedef struct provider_parser_t provider_parser_t;

//  A parser for one response.  Caller owns it.  NULL on OOM.
provider_parser_t *
provider_parser_new (provider_type_t type, bool stream, const provider_sink_t *sink,
                     void *arg);

void
provider_parser_destroy (provider_parser_t **self_p);

//  Feeds body bytes of a 2xx response.  Returns 0, or -1 after reporting a
//  malformed response to the sink's error.
int
provider_parser_feed (provider_parser_t *self, const char *data, size_t len);

//  The body ended.  Parses a non-streamed body; checks a stream ended
//  properly.  Returns 0 when the sink got finish, -1 after error.
int
provider_parser_finish (provider_parser_t *self);

//  Maps a non-2xx upstream answer to the gateway's status, code and a
//  message (from the provider's error body when it has one).  Returns
//  whether a fallback model may be tried (false for request errors).
bool
provider_map_error (const cfg_provider_t *provider, long http_status, const char *body,
                    size_t len, int *status, char *code, size_t code_cap, char *message,
                    size_t message_cap);

#endif
