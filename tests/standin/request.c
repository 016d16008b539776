/*  =========================================================================
    request - one API request: its state, body, record for /_last, the
    reply text, the knob its model picks and the errors that knob sends

    Part of cg_standin (see standin.c for what it answers and how).
    =========================================================================
*/
#include "standin.h"

//  Arguments of every tool call, and the pieces they are streamed in.
static const char *s_tool_args = "{\"url\":\"http://127.0.0.1/\"}";
const char *req_tool_pieces[] = {"{\"url\":", "\"http://127.0.0.1/", "\"}", NULL};

//  Request headers /_last reports, in lower case as they appear there.
const char *req_kept_headers[] = {"authorization", "x-api-key", "anthropic-version",
                                  "anthropic-beta", NULL};

//  Scripted tool calls: when the last user message is itself a JSON object,
//  the "tool" model calls its tool with that object as the arguments (so a
//  test can make the model ask for any page); otherwise with s_tool_args.
void
req_pick_tool_args (req_t *req, const cJSON *user_content)
{
    snprintf (req->tool_args, sizeof (req->tool_args), "%s", s_tool_args);
    req->custom_args = false;
    if (!cJSON_IsString (user_content) || user_content->valuestring[0] != '{')
        return;
    cJSON *j = cJSON_Parse (user_content->valuestring);
    char *text = cJSON_IsObject (j) ? cJSON_PrintUnformatted (j) : NULL;
    if (text && strlen (text) < sizeof (req->tool_args)) {
        snprintf (req->tool_args, sizeof (req->tool_args), "%s", text);
        req->custom_args = true;
    }
    cJSON_free (text);
    cJSON_Delete (j);
}

//  Sends the error the knob error-NNN asks for, in the provider's format.
int
req_knob_error (req_t *req)
{
    int status = req->error_status;
    const char *extra = status == 429 ? "Retry-After: 7\r\n" : NULL;
    if (status == 401)
        req->keep_alive = false;  //  civetweb closes after any 401
    if (req->provider == OPENAI) {
        switch (status) {
        case 400:
            return openai_error (req, status, "Invalid request (stand-in error-400)",
                                 "invalid_request_error", NULL, extra);
        case 401:
            return openai_error (req, status, "Incorrect API key provided",
                                 "invalid_request_error", "invalid_api_key", extra);
        case 429:
            return openai_error (req, status,
                                 "Rate limit reached for requests (stand-in error-429)",
                                 "requests", "rate_limit_exceeded", extra);
        case 500:
            return openai_error (req, status,
                                 "The server had an error while "
                                 "processing your request. Sorry "
                                 "about that!",
                                 "server_error", NULL, extra);
        case 503:
            return openai_error (req, status,
                                 "The server is overloaded or not "
                                 "ready yet.",
                                 "server_error", NULL, extra);
        default:
            return openai_error (req, status, "Stand-in error",
                                 status >= 500 ? "server_error" : "invalid_request_error",
                                 NULL, extra);
        }
    }
    switch (status) {
    case 400:
        return anthropic_error (req, status, "invalid_request_error",
                                "Invalid request (stand-in error-400)", extra);
    case 401:
        return anthropic_error (req, status, "authentication_error", "invalid x-api-key",
                                extra);
    case 403:
        return anthropic_error (req, status, "permission_error", "Permission denied",
                                extra);
    case 404: return anthropic_error (req, status, "not_found_error", "Not found", extra);
    case 429:
        return anthropic_error (req, status, "rate_limit_error",
                                "Number of requests has exceeded your rate limit "
                                "(stand-in error-429)",
                                extra);
    case 503:
    case 529:
        return anthropic_error (req, status, "overloaded_error", "Overloaded", extra);
    default:
        return anthropic_error (
            req, status, status >= 500 ? "api_error" : "invalid_request_error",
            status >= 500 ? "Internal server error" : "Stand-in error", extra);
    }
}

knob_t
req_knob (const char *model, int *status)
{
    const char *name = strrchr (model, '/');
    name = name ? name + 1 : model;
    if (strncmp (name, "error-", 6) == 0) {
        int code = atoi (name + 6);
        if (code >= 400 && code <= 599) {
            *status = code;
            return KNOB_ERROR;
        }
    }
    if (strcmp (name, "garbage") == 0)
        return KNOB_GARBAGE;
    if (strcmp (name, "stall") == 0)
        return KNOB_STALL;
    if (strcmp (name, "slow") == 0)
        return KNOB_SLOW;
    if (strcmp (name, "split") == 0)
        return KNOB_SPLIT;
    if (strcmp (name, "long") == 0)
        return KNOB_LONG;
    if (strcmp (name, "tool") == 0)
        return KNOB_TOOL;
    return KNOB_NORMAL;
}

//  Mirrors civetweb's keep-alive rule, so the Connection header we write
//  tells the truth.
static bool
s_keep_alive (struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *header = mg_get_header (conn, "Connection");
    if (header)
        return strcasestr (header, "keep-alive") != NULL;
    return ri->http_version && strcmp (ri->http_version, "1.1") == 0;
}

void
req_init (req_t *req, self_t *self, struct mg_connection *conn, int provider)
{
    req->self = self;
    req->conn = conn;
    req->provider = provider;
    req->id = 0;
    req->created = (long) time (NULL);
    req->root = NULL;
    req->model = "";
    req->knob = KNOB_NORMAL;
    req->error_status = 0;
    req->stream = req->include_usage = req->thinking = false;
    req->tool_call = req->tool_result = false;
    req->tool_name = NULL;
    req->prompt_tokens = req->completion_tokens = 0;
    req->keep_alive = s_keep_alive (conn);
    req->failed = false;
    req->fd = -1;
    req->split_at = 0;
    req->head_len = 0;
    buf_init (&req->reply, 0);
    buf_init (&req->out, HEAD_ROOM);
}

void
req_fini (req_t *req)
{
    cJSON_Delete (req->root);
    req->root = NULL;
    buf_fini (&req->reply);
    buf_fini (&req->out);
}

//  Reads the request body into a fresh NUL-terminated buffer.  Returns 0,
//  -1 if the client went away, -2 if the body is larger than MAX_BODY.
int
req_read_body (struct mg_connection *conn, char **body_p, size_t *len_p)
{
    long long expected = mg_get_request_info (conn)->content_length;
    if (expected > MAX_BODY)
        return -2;
    size_t cap = expected >= 0 ? (size_t) expected + 1 : 4096;
    size_t len = 0;
    char *body = malloc (cap);
    if (!body)
        return -1;
    while (expected < 0 || len < (size_t) expected) {
        if (len + 1 == cap) {
            if (cap > MAX_BODY) {
                free (body);
                return -2;
            }
            char *bigger = realloc (body, cap * 2);
            if (!bigger) {
                free (body);
                return -1;
            }
            body = bigger;
            cap *= 2;
        }
        int got = mg_read (conn, body + len, cap - 1 - len);
        if (got <= 0) {
            if (expected < 0)
                break;
            free (body);
            return -1;
        }
        len += (size_t) got;
    }
    if (len > MAX_BODY) {
        free (body);
        return -2;
    }
    body[len] = '\0';
    *body_p = body;
    *len_p = len;
    return 0;
}

//  Keeps the POST for /_last, taking the body (*body_p becomes NULL).
void
req_record (self_t *self, struct mg_connection *conn, const char *path, char **body_p,
            size_t len)
{
    kept_header_t headers[KEPT_HEADERS];
    for (int i = 0; i < KEPT_HEADERS; i++) {
        const char *value = mg_get_header (conn, req_kept_headers[i]);
        headers[i].present = value != NULL;
        if (value)
            snprintf (headers[i].value, sizeof (headers[i].value), "%s", value);
    }
    char *old = NULL;
    pthread_mutex_lock (&self->last_lock);
    self->last_seen = true;
    snprintf (self->last_path, sizeof (self->last_path), "%s", path);
    old = self->last_body;
    self->last_body = body_p ? *body_p : NULL;
    self->last_len = body_p ? len : 0;
    for (int i = 0; i < KEPT_HEADERS; i++) {
        self->last_headers[i].present = headers[i].present;
        if (headers[i].present)
            memcpy (self->last_headers[i].value, headers[i].value,
                    strlen (headers[i].value) + 1);
    }
    pthread_mutex_unlock (&self->last_lock);
    if (body_p)
        *body_p = NULL;
    free (old);
}

//  Builds the reply text and counts its tokens.  user_content is the last
//  user message's content (or the tool result's).
void
req_build_reply (req_t *req, const cJSON *user_content)
{
    buf_t *reply = &req->reply;
    if (req->tool_result) {
        buf_puts (reply, "Tool said: ");
        words_append_content (reply, user_content, req->provider == ANTHROPIC);
    }
    else {
        buf_puts (reply, req->provider == OPENAI ? "Hello from the openai stand-in. "
                                                 : "Hello from the anthropic stand-in. ");
        if (req->knob == KNOB_SPLIT)
            buf_puts (reply, "h\xc3\xa9llo\xe2\x86\x92 ");
        buf_puts (reply, "You said: ");
        if (user_content)
            words_append_content (reply, user_content, false);
    }
    long words = words_count (reply->data + reply->start, reply->end - reply->start);
    if (req->knob == KNOB_LONG)
        for (; words < LONG_DELTAS; words++)
            buf_printf (reply, " w%ld", words + 1);
    req->completion_tokens = req->tool_call ? TOOL_TOKENS : words;
    if (req->thinking)
        req->completion_tokens += words_count (THINKING_TEXT, strlen (THINKING_TEXT));
}

void
req_take_model (req_t *req, const cJSON *model)
{
    req->model = model->valuestring;
    req->knob = req_knob (req->model, &req->error_status);
    req->stream = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (req->root, "stream"));
}

const cJSON *
req_read_messages (req_t *req, const cJSON *messages)
{
    const cJSON *message, *user_content = NULL;
    cJSON_ArrayForEach (message, messages)
    {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive (message, "content");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive (message, "role");
        const char *name = cJSON_IsString (role) ? role->valuestring : "";
        req->prompt_tokens += words_count_content (content);
        bool user = strcmp (name, "user") == 0;
        req->tool_result = req->provider == OPENAI
                               ? strcmp (name, "tool") == 0
                               : user && words_has_tool_result (content);
        if (user || req->tool_result)
            user_content = content;
    }
    return user_content;
}

int
req_answer (req_t *req, const cJSON *user_content, req_send_fn *stream,
            req_send_fn *reply)
{
    req->tool_call = req->knob == KNOB_TOOL && req->tool_name && !req->tool_result;
    req_pick_tool_args (req, user_content);

    if (req->knob == KNOB_ERROR)
        return req_knob_error (req);
    if (req->knob == KNOB_GARBAGE)
        return wire_garbage (req);
    req_build_reply (req, user_content);
    if (req->reply.failed)
        return req->provider == OPENAI
                   ? openai_error (req, 500, "Out of memory", "server_error", NULL, NULL)
                   : anthropic_error (req, 500, "api_error", "Out of memory", NULL);
    if (req->stream)
        return stream (req);
    if (req->knob == KNOB_SLOW && wire_pause (req, SLOW_REPLY_MS) != 0) {
        req->failed = true;
        return 200;
    }
    return reply (req);
}

//  True if the Authorization header is "Bearer <key>".
bool
req_bearer_ok (req_t *req, const char *key)
{
    const char *header = mg_get_header (req->conn, "Authorization");
    if (!header || strncasecmp (header, "Bearer ", 7) != 0)
        return false;
    header += 7;
    while (*header == ' ')
        header++;
    size_t len = strlen (header);
    while (len && header[len - 1] == ' ')
        len--;
    return len == strlen (key) && memcmp (header, key, len) == 0;
}
