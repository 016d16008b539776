/*  =========================================================================
    anthropic - the Anthropic Messages stand-in (POST /v1/messages)

    Part of cg_standin (see standin.c for what it answers and how).
    =========================================================================
*/
#include "standin.h"

static const char *s_thinking_pieces[] = {"Thinking", " about", " it.", NULL};

//  Sends {"type":"error","error":{"type","message"}} as Anthropic does.
int
anthropic_error (req_t *req, int status, const char *type, const char *message,
                 const char *extra)
{
    buf_t *out = &req->out;
    buf_reset (out, HEAD_ROOM);
    buf_puts (out, "{\"type\":\"error\",\"error\":{\"type\":");
    buf_json_str (out, type);
    buf_puts (out, ",\"message\":");
    buf_json_str (out, message);
    buf_puts (out, "}}");
    return wire_respond_json (req, status, extra);
}

static void
s_event_begin (req_t *req, const char *name)
{
    wire_event_begin (req);
    buf_puts (&req->out, "event: ");
    buf_puts (&req->out, name);
    buf_puts (&req->out, "\ndata: ");
}

static int
s_event_end (req_t *req)
{
    buf_puts (&req->out, "\n\n");
    return wire_event_end (req);
}

static int
s_delta (req_t *req, int index, const char *type, const char *field, const char *text,
         size_t len)
{
    s_event_begin (req, "content_block_delta");
    buf_printf (&req->out,
                "{\"type\":\"content_block_delta\",\"index\":%d,"
                "\"delta\":{\"type\":\"%s\",\"%s\":",
                index, type, field);
    buf_json (&req->out, text, len);
    buf_puts (&req->out, "}}");
    return s_event_end (req);
}

static int
s_block_stop (req_t *req, int index)
{
    s_event_begin (req, "content_block_stop");
    buf_printf (&req->out, "{\"type\":\"content_block_stop\",\"index\":%d}", index);
    return s_event_end (req);
}

//  Sends content_block_start, followed by a ping after the first block.
static int
s_block_start (req_t *req, int index, const char *block)
{
    s_event_begin (req, "content_block_start");
    buf_printf (&req->out,
                "{\"type\":\"content_block_start\",\"index\":%d,"
                "\"content_block\":",
                index);
    buf_puts (&req->out, block);
    buf_puts (&req->out, "}");
    if (s_event_end (req) != 0)
        return -1;
    if (index > 0)
        return 0;
    s_event_begin (req, "ping");
    buf_puts (&req->out, "{\"type\": \"ping\"}");
    return s_event_end (req);
}

static int
s_stream (req_t *req)
{
    buf_t *out = &req->out;
    wire_stream_start (req);
    s_event_begin (req, "message_start");
    buf_printf (out,
                "{\"type\":\"message_start\",\"message\":"
                "{\"id\":\"msg_standin_%ld\",\"type\":\"message\","
                "\"role\":\"assistant\",\"model\":",
                req->id);
    buf_json_str (out, req->model);
    buf_printf (out,
                ",\"content\":[],\"stop_reason\":null,"
                "\"stop_sequence\":null,\"usage\":{\"input_tokens\":%ld,"
                "\"output_tokens\":1}}}",
                req->prompt_tokens);
    if (s_event_end (req) != 0)
        return 200;

    int index = 0;
    if (req->thinking) {
        if (s_block_start (req, index,
                           "{\"type\":\"thinking\","
                           "\"thinking\":\"\"}")
            != 0)
            return 200;
        for (int i = 0; s_thinking_pieces[i]; i++) {
            const char *piece = s_thinking_pieces[i];
            if (s_delta (req, index, "thinking_delta", "thinking", piece, strlen (piece))
                    != 0
                || wire_delta_done (req) != 0)
                return 200;
        }
        if (s_delta (req, index, "signature_delta", "signature", SIGNATURE,
                     strlen (SIGNATURE))
                != 0
            || s_block_stop (req, index) != 0)
            return 200;
        index++;
    }
    if (req->tool_call) {
        s_event_begin (req, "content_block_start");
        buf_printf (out,
                    "{\"type\":\"content_block_start\",\"index\":%d,"
                    "\"content_block\":{\"type\":\"tool_use\","
                    "\"id\":\"" TOOL_USE_ID "\",\"name\":",
                    index);
        buf_json_str (out, req->tool_name);
        buf_puts (out, ",\"input\":{}}}");
        if (s_event_end (req) != 0)
            return 200;
        if (index == 0) {
            s_event_begin (req, "ping");
            buf_puts (out, "{\"type\": \"ping\"}");
            if (s_event_end (req) != 0)
                return 200;
        }
        if (s_delta (req, index, "input_json_delta", "partial_json", "", 0) != 0)
            return 200;
        const char *mine[] = {req->tool_args, NULL};
        const char **pieces = req->custom_args ? mine : req_tool_pieces;
        for (int i = 0; pieces[i]; i++) {
            const char *piece = pieces[i];
            if (s_delta (req, index, "input_json_delta", "partial_json", piece,
                         strlen (piece))
                    != 0
                || wire_delta_done (req) != 0)
                return 200;
        }
    }
    else {
        if (s_block_start (req, index, "{\"type\":\"text\",\"text\":\"\"}") != 0)
            return 200;
        const char *text = req->reply.data + req->reply.start;
        size_t len = req->reply.end - req->reply.start;
        while (len) {
            size_t token = words_token_len (text, len);
            if (s_delta (req, index, "text_delta", "text", text, token) != 0
                || wire_delta_done (req) != 0)
                return 200;
            text += token;
            len -= token;
        }
    }
    if (s_block_stop (req, index) != 0)
        return 200;
    s_event_begin (req, "message_delta");
    buf_printf (out,
                "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                "\"%s\",\"stop_sequence\":null},\"usage\":"
                "{\"output_tokens\":%ld}}",
                req->tool_call ? "tool_use" : "end_turn", req->completion_tokens);
    if (s_event_end (req) != 0)
        return 200;
    s_event_begin (req, "message_stop");
    buf_puts (out, "{\"type\":\"message_stop\"}");
    if (s_event_end (req) == 0)
        wire_stream_end (req);
    return 200;
}

static int
s_reply (req_t *req)
{
    buf_t *out = &req->out;
    buf_reset (out, HEAD_ROOM);
    buf_printf (out,
                "{\"id\":\"msg_standin_%ld\",\"type\":\"message\","
                "\"role\":\"assistant\",\"model\":",
                req->id);
    buf_json_str (out, req->model);
    buf_puts (out, ",\"content\":[");
    if (req->thinking)
        buf_puts (out, "{\"type\":\"thinking\",\"thinking\":\"" THINKING_TEXT
                       "\",\"signature\":\"" SIGNATURE "\"},");
    if (req->tool_call) {
        buf_puts (out, "{\"type\":\"tool_use\",\"id\":\"" TOOL_USE_ID "\",\"name\":");
        buf_json_str (out, req->tool_name);
        buf_puts (out, ",\"input\":");
        buf_puts (out, req->tool_args);
        buf_puts (out, "}");
    }
    else {
        buf_puts (out, "{\"type\":\"text\",\"text\":");
        buf_json (out, req->reply.data + req->reply.start,
                  req->reply.end - req->reply.start);
        buf_puts (out, "}");
    }
    buf_printf (out,
                "],\"stop_reason\":\"%s\",\"stop_sequence\":null,"
                "\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld}}",
                req->tool_call ? "tool_use" : "end_turn", req->prompt_tokens,
                req->completion_tokens);
    return wire_reply_json (req);
}

int
anthropic_serve (req_t *req)
{
    //  Anthropic's own SDK sends the key as x-api-key or, in its newer
    //  releases, as "Authorization: Bearer <key>"; the API takes both.
    const char *key = req->self->anthropic_key;
    if (key) {
        const char *given = mg_get_header (req->conn, "x-api-key");
        if (!(given && strcmp (given, key) == 0) && !req_bearer_ok (req, key)) {
            req->keep_alive = false;  //  civetweb closes after any 401
            return anthropic_error (req, 401, "authentication_error", "invalid x-api-key",
                                    NULL);
        }
    }
    if (!mg_get_header (req->conn, "anthropic-version"))
        return anthropic_error (req, 400, "invalid_request_error",
                                "anthropic-version: header is required", NULL);
    cJSON *root = req->root;
    if (!cJSON_IsObject (root))
        return anthropic_error (req, 400, "invalid_request_error",
                                "There was an issue with your request body: "
                                "it is not valid JSON",
                                NULL);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (root, "model");
    if (!cJSON_IsString (model))
        return anthropic_error (req, 400, "invalid_request_error",
                                "model: Field required", NULL);
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive (root, "messages");
    if (!cJSON_IsArray (messages))
        return anthropic_error (req, 400, "invalid_request_error",
                                "messages: Field required", NULL);
    if (!cJSON_IsNumber (cJSON_GetObjectItemCaseSensitive (root, "max_tokens")))
        return anthropic_error (req, 400, "invalid_request_error",
                                "max_tokens: Field required", NULL);
    req_take_model (req, model);
    const cJSON *thinking = cJSON_GetObjectItemCaseSensitive (root, "thinking");
    const cJSON *thinking_type = cJSON_GetObjectItemCaseSensitive (thinking, "type");
    req->thinking = cJSON_IsString (thinking_type)
                    && strcmp (thinking_type->valuestring, "disabled") != 0;

    req->prompt_tokens =
        words_count_content (cJSON_GetObjectItemCaseSensitive (root, "system"));
    const cJSON *user_content = req_read_messages (req, messages);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive (
        cJSON_GetArrayItem (cJSON_GetObjectItemCaseSensitive (root, "tools"), 0), "name");
    if (cJSON_IsString (name))
        req->tool_name = name->valuestring;
    return req_answer (req, user_content, s_stream, s_reply);
}
