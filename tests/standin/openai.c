/*  =========================================================================
    openai - the OpenAI Chat Completions stand-in (POST /v1/chat/completions)

    Part of cg_standin (see standin.c for what it answers and how).
    =========================================================================
*/
#include "standin.h"

//  Sends {"error":{"message","type","param","code"}} as OpenAI does.
int
openai_error (req_t *req, int status, const char *message, const char *type,
              const char *code, const char *extra)
{
    buf_t *out = &req->out;
    buf_reset (out, HEAD_ROOM);
    buf_puts (out, "{\"error\":{\"message\":");
    buf_json_str (out, message);
    buf_puts (out, ",\"type\":");
    buf_json_str (out, type);
    buf_puts (out, ",\"param\":null,\"code\":");
    if (code)
        buf_json_str (out, code);
    else
        buf_puts (out, "null");
    buf_puts (out, "}}");
    return wire_respond_json (req, status, extra);
}

//  Appends the start of a completion object of type object (a reply or a
//  chunk): its id, object, created and model members.
static void
s_object_head (req_t *req, const char *object)
{
    buf_t *out = &req->out;
    buf_printf (out,
                "{\"id\":\"chatcmpl-standin-%ld\",\"object\":\"%s\",\"created\":%ld,"
                "\"model\":",
                req->id, object, req->created);
    buf_json_str (out, req->model);
}

//  Appends the start of a chunk event, up to "delta":.
static void
s_chunk_head (req_t *req)
{
    buf_puts (&req->out, "data: ");
    s_object_head (req, "chat.completion.chunk");
}

//  Sends one chunk whose delta is the JSON given (ending with a brace).
static int
s_delta (req_t *req, const char *delta_open, const char *text, size_t len,
         const char *delta_close, const char *finish)
{
    buf_t *out = &req->out;
    wire_event_begin (req);
    s_chunk_head (req);
    buf_puts (out, ",\"choices\":[{\"index\":0,\"delta\":");
    buf_puts (out, delta_open);
    if (text)
        buf_json (out, text, len);
    buf_puts (out, delta_close);
    buf_puts (out, ",\"logprobs\":null,\"finish_reason\":");
    buf_puts (out, finish);
    buf_puts (out, "}]}\n\n");
    return wire_event_end (req);
}

static void
s_usage (req_t *req)
{
    buf_printf (&req->out,
                "\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,"
                "\"total_tokens\":%ld}",
                req->prompt_tokens, req->completion_tokens,
                req->prompt_tokens + req->completion_tokens);
}

static void
s_tool_call (req_t *req, bool with_arguments)
{
    buf_t *out = &req->out;
    buf_puts (out, "\"tool_calls\":[{");
    if (!with_arguments)
        buf_puts (out, "\"index\":0,");
    buf_puts (out, "\"id\":\"" TOOL_CALL_ID "\",\"type\":\"function\","
                   "\"function\":{\"name\":");
    buf_json_str (out, req->tool_name);
    buf_puts (out, ",\"arguments\":");
    if (with_arguments)
        buf_json_str (out, req->tool_args);
    else
        buf_puts (out, "\"\"");
    buf_puts (out, "}}]");
}

static int
s_reply (req_t *req)
{
    buf_t *out = &req->out;
    buf_reset (out, HEAD_ROOM);
    s_object_head (req, "chat.completion");
    buf_puts (out, ",\"choices\":[{\"index\":0,\"message\":"
                   "{\"role\":\"assistant\",\"content\":");
    if (req->tool_call) {
        buf_puts (out, "null,");
        s_tool_call (req, true);
    }
    else
        buf_json (out, req->reply.data + req->reply.start,
                  req->reply.end - req->reply.start);
    buf_puts (out, "},\"logprobs\":null,\"finish_reason\":");
    buf_puts (out, req->tool_call ? "\"tool_calls\"}]," : "\"stop\"}],");
    s_usage (req);
    buf_puts (out, "}");
    return wire_reply_json (req);
}

static int
s_stream (req_t *req)
{
    wire_stream_start (req);
    if (req->tool_call) {
        wire_event_begin (req);
        s_chunk_head (req);
        buf_puts (&req->out, ",\"choices\":[{\"index\":0,\"delta\":"
                             "{\"role\":\"assistant\",\"content\":null,");
        s_tool_call (req, false);
        buf_puts (&req->out, "},\"logprobs\":null,\"finish_reason\":null}]}"
                             "\n\n");
        if (wire_event_end (req) != 0 || wire_delta_done (req) != 0)
            return 200;
        const char *mine[] = {req->tool_args, NULL};
        const char **pieces = req->custom_args ? mine : req_tool_pieces;
        for (int i = 0; pieces[i]; i++) {
            const char *piece = pieces[i];
            if (s_delta (req,
                         "{\"tool_calls\":[{\"index\":0,\"function\":"
                         "{\"arguments\":",
                         piece, strlen (piece), "}}]}", "null")
                    != 0
                || wire_delta_done (req) != 0)
                return 200;
        }
    }
    else {
        if (s_delta (req, "{\"role\":\"assistant\",\"content\":\"\"}", NULL, 0, "",
                     "null")
            != 0)
            return 200;
        const char *text = req->reply.data + req->reply.start;
        size_t len = req->reply.end - req->reply.start;
        while (len) {
            size_t token = words_token_len (text, len);
            if (s_delta (req, "{\"content\":", text, token, "}", "null") != 0
                || wire_delta_done (req) != 0)
                return 200;
            text += token;
            len -= token;
        }
    }
    if (s_delta (req, "{}", NULL, 0, "", req->tool_call ? "\"tool_calls\"" : "\"stop\"")
        != 0)
        return 200;
    if (req->include_usage) {
        wire_event_begin (req);
        s_chunk_head (req);
        buf_puts (&req->out, ",\"choices\":[],");
        s_usage (req);
        buf_puts (&req->out, "}\n\n");
        if (wire_event_end (req) != 0)
            return 200;
    }
    wire_event_begin (req);
    buf_puts (&req->out, "data: [DONE]\n\n");
    if (wire_event_end (req) == 0)
        wire_stream_end (req);
    return 200;
}

int
openai_serve (req_t *req)
{
    const char *key = req->self->openai_key;
    if (key && !req_bearer_ok (req, key)) {
        req->keep_alive = false;  //  civetweb closes after any 401
        return openai_error (req, 401, "Incorrect API key provided",
                             "invalid_request_error", "invalid_api_key", NULL);
    }
    cJSON *root = req->root;
    if (!cJSON_IsObject (root))
        return openai_error (
            req, 400,
            "We could not parse the JSON body of your request. (HINT: This "
            "likely means you aren't using your HTTP library correctly. The "
            "OpenAI API expects a JSON payload, but what was sent was not "
            "valid JSON.)",
            "invalid_request_error", NULL, NULL);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (root, "model");
    if (!cJSON_IsString (model))
        return openai_error (req, 400, "you must provide a model parameter",
                             "invalid_request_error", NULL, NULL);
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive (root, "messages");
    if (!cJSON_IsArray (messages))
        return openai_error (req, 400, "Missing required parameter: 'messages'.",
                             "invalid_request_error", NULL, NULL);
    if (cJSON_GetArraySize (messages) == 0)
        return openai_error (req, 400,
                             "Invalid 'messages': empty array. Expected an "
                             "array with minimum length 1, but got an "
                             "empty array instead.",
                             "invalid_request_error", NULL, NULL);
    req_take_model (req, model);
    const cJSON *options = cJSON_GetObjectItemCaseSensitive (root, "stream_options");
    req->include_usage =
        cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (options, "include_usage"));

    //  Tokens, the last user message, and whether a tool result ends it.
    const cJSON *user_content = req_read_messages (req, messages);
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive (root, "tools");
    const cJSON *function =
        cJSON_GetObjectItemCaseSensitive (cJSON_GetArrayItem (tools, 0), "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive (function, "name");
    if (cJSON_IsString (name))
        req->tool_name = name->valuestring;
    return req_answer (req, user_content, s_stream, s_reply);
}
