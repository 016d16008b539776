/*  =========================================================================
    provider - OpenAI and Anthropic requests and responses
    =========================================================================
*/
#include "provider.h"
#include "envelope.h"

#include "json_in.h"
#include "sse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROVIDER_MAX_BODY (16u * 1024u * 1024u)
#define PROVIDER_MAX_EVENT (4u * 1024u * 1024u)

//  ---- Building requests ------------------------------------------------------

static const char *
s_str (const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

static bool
s_thinking_on (const char *thinking)
{
    return thinking && *thinking && strcmp (thinking, "off") != 0;
}

static cJSON *
s_openai_body (const provider_request_t *req)
{
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddStringToObject (body, "model", req->model);
    cJSON *messages = cJSON_AddArrayToObject (body, "messages");
    bool has_system = false;
    for (const cJSON *m = req->messages ? req->messages->child : NULL; m; m = m->next) {
        const char *role = s_str (m, "role");
        has_system |= role && !strcmp (role, "system");
    }
    if (req->system && !has_system) {
        cJSON *sys = cJSON_CreateObject ();
        cJSON_AddStringToObject (sys, "role", "system");
        cJSON_AddStringToObject (sys, "content", req->system);
        cJSON_AddItemToArray (messages, sys);
    }
    for (const cJSON *m = req->messages ? req->messages->child : NULL; m; m = m->next)
        cJSON_AddItemToArray (messages, cJSON_Duplicate (m, true));
    if (req->stream) {
        cJSON_AddBoolToObject (body, "stream", true);
        cJSON *so = cJSON_AddObjectToObject (body, "stream_options");
        cJSON_AddBoolToObject (so, "include_usage", true);
    }
    if (req->temperature)
        cJSON_AddItemToObject (body, "temperature",
                               cJSON_Duplicate (req->temperature, true));
    if (req->max_tokens > 0)
        cJSON_AddNumberToObject (body, "max_tokens", (double) req->max_tokens);
    if (req->tools)
        cJSON_AddItemToObject (body, "tools", cJSON_Duplicate (req->tools, true));
    if (req->tool_choice)
        cJSON_AddItemToObject (body, "tool_choice",
                               cJSON_Duplicate (req->tool_choice, true));
    //  OpenAI's reasoning models take reasoning_effort; "off" sends nothing.
    if (s_thinking_on (req->thinking))
        cJSON_AddStringToObject (body, "reasoning_effort", req->thinking);
    return body;
}

//  Text of an OpenAI content value: a string, or the text parts of an array.
static char *
s_content_text (const cJSON *content)
{
    if (cJSON_IsString (content))
        return strdup (content->valuestring);
    size_t len = 0;
    for (const cJSON *p = cJSON_IsArray (content) ? content->child : NULL; p;
         p = p->next) {
        const char *t = s_str (p, "text");
        len += t ? strlen (t) : 0;
    }
    char *text = (char *) malloc (len + 1);
    if (!text)
        return NULL;
    text[0] = 0;
    for (const cJSON *p = cJSON_IsArray (content) ? content->child : NULL; p;
         p = p->next) {
        const char *t = s_str (p, "text");
        if (t)
            strcat (text, t);
    }
    return text;
}

static int
s_thinking_budget (const char *thinking)
{
    if (!strcmp (thinking, "minimal"))
        return 1024;
    if (!strcmp (thinking, "low"))
        return 2048;
    if (!strcmp (thinking, "medium"))
        return 8192;
    return 16384;  //  high
}

//  Appends block to the last message if it has role, else a new message.
static void
s_anthropic_append (cJSON *messages, const char *role, cJSON *block)
{
    cJSON *last = cJSON_GetArrayItem (messages, cJSON_GetArraySize (messages) - 1);
    const char *lrole = last ? s_str (last, "role") : NULL;
    if (!lrole || strcmp (lrole, role) != 0) {
        last = cJSON_CreateObject ();
        cJSON_AddStringToObject (last, "role", role);
        cJSON_AddArrayToObject (last, "content");
        cJSON_AddItemToArray (messages, last);
    }
    cJSON_AddItemToArray (cJSON_GetObjectItem (last, "content"), block);
}

static cJSON *
s_text_block (const char *text)
{
    cJSON *b = cJSON_CreateObject ();
    cJSON_AddStringToObject (b, "type", "text");
    cJSON_AddStringToObject (b, "text", text);
    return b;
}

//  Longer than 100 lines on purpose: it maps the OpenAI request onto the
//  Anthropic body in one pass, field after field as the body lists them
//  (model, system prompts, messages with their tool calls and results,
//  thinking, temperature, max_tokens, stream, tools, tool_choice), each
//  mapping a few lines that read best next to the others.
static cJSON *
s_anthropic_body (const provider_request_t *req)
{
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddStringToObject (body, "model", req->model);
    int64_t max_tokens = req->max_tokens > 0 ? req->max_tokens : req->agent_max_tokens;
    if (max_tokens <= 0)
        max_tokens = 1024;
    //  System prompts: the agent's, then any system messages, joined.
    size_t syslen = req->system ? strlen (req->system) + 2 : 0;
    for (const cJSON *m = req->messages->child; m; m = m->next) {
        const char *role = s_str (m, "role");
        if (role && !strcmp (role, "system")) {
            char *t = s_content_text (cJSON_GetObjectItem (m, "content"));
            syslen += t ? strlen (t) + 2 : 0;
            free (t);
        }
    }
    char *system = (char *) calloc (1, syslen + 1);
    if (system && req->system)
        strcat (system, req->system);
    cJSON *messages = cJSON_CreateArray ();
    for (const cJSON *m = req->messages->child; m; m = m->next) {
        const char *role = s_str (m, "role");
        if (!role)
            continue;
        const cJSON *content = cJSON_GetObjectItem (m, "content");
        if (!strcmp (role, "system")) {
            char *t = s_content_text (content);
            if (system && t) {
                if (*system)
                    strcat (system, "\n\n");
                strcat (system, t);
            }
            free (t);
        }
        else if (!strcmp (role, "tool")) {
            cJSON *b = cJSON_CreateObject ();
            cJSON_AddStringToObject (b, "type", "tool_result");
            const char *id = s_str (m, "tool_call_id");
            cJSON_AddStringToObject (b, "tool_use_id", id ? id : "");
            char *t = s_content_text (content);
            cJSON_AddStringToObject (b, "content", t ? t : "");
            free (t);
            s_anthropic_append (messages, "user", b);
        }
        else {
            const char *arole = !strcmp (role, "assistant") ? "assistant" : "user";
            char *t = s_content_text (content);
            if (t && *t)
                s_anthropic_append (messages, arole, s_text_block (t));
            free (t);
            const cJSON *calls = cJSON_GetObjectItem (m, "tool_calls");
            for (const cJSON *c = cJSON_IsArray (calls) ? calls->child : NULL; c;
                 c = c->next) {
                const cJSON *fn = cJSON_GetObjectItem (c, "function");
                cJSON *b = cJSON_CreateObject ();
                cJSON_AddStringToObject (b, "type", "tool_use");
                const char *id = s_str (c, "id");
                const char *name = s_str (fn, "name");
                const char *args = s_str (fn, "arguments");
                cJSON_AddStringToObject (b, "id", id ? id : "");
                cJSON_AddStringToObject (b, "name", name ? name : "");
                cJSON *input = args ? json_in_parse (args, strlen (args), 0,
                                                     JSON_IN_NUL_OK, NULL, NULL)
                                    : NULL;
                cJSON_AddItemToObject (
                    b, "input", cJSON_IsObject (input) ? input : cJSON_CreateObject ());
                if (input && !cJSON_IsObject (input))
                    cJSON_Delete (input);
                s_anthropic_append (messages, "assistant", b);
            }
        }
    }
    if (system && *system)
        cJSON_AddStringToObject (body, "system", system);
    free (system);
    cJSON_AddItemToObject (body, "messages", messages);
    if (s_thinking_on (req->thinking)) {
        int budget = s_thinking_budget (req->thinking);
        cJSON *th = cJSON_AddObjectToObject (body, "thinking");
        cJSON_AddStringToObject (th, "type", "enabled");
        cJSON_AddNumberToObject (th, "budget_tokens", budget);
        if (max_tokens <= budget)
            max_tokens = budget + 1024;
    }
    else if (req->temperature)
        //  Anthropic refuses a temperature together with thinking.
        cJSON_AddItemToObject (body, "temperature",
                               cJSON_Duplicate (req->temperature, true));
    cJSON_AddNumberToObject (body, "max_tokens", (double) max_tokens);
    if (req->stream)
        cJSON_AddBoolToObject (body, "stream", true);
    if (req->tools) {
        cJSON *tools = cJSON_AddArrayToObject (body, "tools");
        for (const cJSON *t = req->tools->child; t; t = t->next) {
            const cJSON *fn = cJSON_GetObjectItem (t, "function");
            const char *name = s_str (fn, "name");
            if (!name)
                continue;
            cJSON *at = cJSON_CreateObject ();
            cJSON_AddStringToObject (at, "name", name);
            const char *desc = s_str (fn, "description");
            if (desc)
                cJSON_AddStringToObject (at, "description", desc);
            const cJSON *params = cJSON_GetObjectItem (fn, "parameters");
            cJSON *schema = params ? cJSON_Duplicate (params, true) : NULL;
            if (!schema) {
                schema = cJSON_CreateObject ();
                cJSON_AddStringToObject (schema, "type", "object");
            }
            cJSON_AddItemToObject (at, "input_schema", schema);
            cJSON_AddItemToArray (tools, at);
        }
    }
    if (req->tool_choice) {
        const cJSON *tc = req->tool_choice;
        cJSON *out = NULL;
        if (cJSON_IsString (tc) && !strcmp (tc->valuestring, "auto")) {
            out = cJSON_CreateObject ();
            cJSON_AddStringToObject (out, "type", "auto");
        }
        else if (cJSON_IsString (tc) && !strcmp (tc->valuestring, "required")) {
            out = cJSON_CreateObject ();
            cJSON_AddStringToObject (out, "type", "any");
        }
        else if (cJSON_IsObject (tc)) {
            const char *name = s_str (cJSON_GetObjectItem (tc, "function"), "name");
            if (name) {
                out = cJSON_CreateObject ();
                cJSON_AddStringToObject (out, "type", "tool");
                cJSON_AddStringToObject (out, "name", name);
            }
        }
        if (out)
            cJSON_AddItemToObject (body, "tool_choice", out);
    }
    return body;
}

int
provider_build (const cfg_provider_t *provider, const provider_request_t *req, char **url,
                struct curl_slist **headers, char **body, char *err, size_t errlen)
{
    *url = NULL;
    *headers = NULL;
    *body = NULL;
    if (!cJSON_IsArray (req->messages) || !req->messages->child) {
        snprintf (err, errlen, "messages must be a non-empty array");
        return -1;
    }
    cJSON *json = provider->type == PROVIDER_ANTHROPIC ? s_anthropic_body (req)
                                                       : s_openai_body (req);
    *body = json ? cJSON_PrintUnformatted (json) : NULL;
    cJSON_Delete (json);
    const char *path =
        provider->type == PROVIDER_ANTHROPIC ? "/v1/messages" : "/chat/completions";
    size_t ulen = strlen (provider->base_url) + strlen (path) + 1;
    *url = (char *) malloc (ulen);
    if (!*body || !*url) {
        free (*body);
        free (*url);
        *body = *url = NULL;
        snprintf (err, errlen, "out of memory");
        return -1;
    }
    snprintf (*url, ulen, "%s%s", provider->base_url, path);
    struct curl_slist *h = curl_slist_append (NULL, "Content-Type: application/json");
    h = curl_slist_append (h, req->stream ? "Accept: text/event-stream"
                                          : "Accept: application/json");
    //  libcurl would send "Expect: 100-continue" for large bodies: a round
    //  trip for nothing.
    h = curl_slist_append (h, "Expect:");
    char line[1024];
    if (provider->type == PROVIDER_ANTHROPIC) {
        h = curl_slist_append (h, "anthropic-version: 2023-06-01");
        if (provider->api_key) {
            snprintf (line, sizeof (line), "x-api-key: %s", provider->api_key);
            h = curl_slist_append (h, line);
        }
    }
    else if (provider->api_key) {
        snprintf (line, sizeof (line), "Authorization: Bearer %s", provider->api_key);
        h = curl_slist_append (h, line);
    }
    *headers = h;
    return 0;
}

//  ---- Parsing responses ------------------------------------------------------

struct provider_parser_t {
    provider_type_t type;         //  Which wire format
    bool stream;                  //  SSE, or one JSON body
    const provider_sink_t *sink;  //  Where results go
    void *arg;                    //  Sink's argument
    sse_parser_t *sse;            //  Stream parser
    char *buf;                    //  Non-streamed body so far
    size_t len, cap;
    bool finished;          //  sink->finish was called
    bool failed;            //  sink->error was called
    bool done_marker;       //  OpenAI [DONE] or Anthropic message_stop
    int64_t prompt_tokens;  //  Anthropic: from message_start
    int tool_index;         //  Anthropic: next tool-call index
    int block_tool[64];     //  Anthropic: block index -> tool index+1
};

static void
s_fail (provider_parser_t *self, int status, const char *code, const char *msg)
{
    if (self->failed || self->finished)
        return;
    self->failed = true;
    self->sink->error (self->arg, status, code, msg);
}

static void
s_finish (provider_parser_t *self, const char *reason)
{
    if (self->failed || self->finished)
        return;
    self->finished = true;
    self->sink->finish (self->arg, reason);
}

static const char *
s_anthropic_reason (const char *stop)
{
    if (!stop || !strcmp (stop, "end_turn") || !strcmp (stop, "stop_sequence"))
        return "stop";
    if (!strcmp (stop, "max_tokens"))
        return "length";
    if (!strcmp (stop, "tool_use"))
        return "tool_calls";
    if (!strcmp (stop, "refusal"))
        return "content_filter";
    return "stop";
}

static int64_t
s_int (const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    return cJSON_IsNumber (v) && v->valuedouble >= 0 && v->valuedouble < 1e15
               ? (int64_t) v->valuedouble
               : 0;
}

//  An error object inside a 200 response (OpenAI streams, Anthropic events).
static void
s_inline_error (provider_parser_t *self, const cJSON *err)
{
    const char *msg = s_str (err, "message");
    const char *type = s_str (err, "type");
    int status = ENVELOPE_UNAVAILABLE;
    const char *code = "service_unavailable";
    if (type
        && (!strcmp (type, "rate_limit_error")
            || !strcmp (type, "rate_limit_exceeded"))) {
        status = ENVELOPE_RATE_LIMITED;
        code = "rate_limited";
    }
    else if (type && !strcmp (type, "invalid_request_error")) {
        status = ENVELOPE_BAD_REQUEST;
        code = "invalid_request";
    }
    char text[512];
    snprintf (text, sizeof (text), "Provider error: %s", msg ? msg : "unknown");
    s_fail (self, status, code, text);
}

static void
s_openai_chunk (provider_parser_t *self, const cJSON *j)
{
    const cJSON *err = cJSON_GetObjectItem (j, "error");
    if (err) {
        s_inline_error (self, err);
        return;
    }
    const cJSON *choice = cJSON_GetArrayItem (cJSON_GetObjectItem (j, "choices"), 0);
    if (choice) {
        const cJSON *delta = cJSON_GetObjectItem (choice, "delta");
        const char *text = s_str (delta, "content");
        const cJSON *calls = cJSON_GetObjectItem (delta, "tool_calls");
        if ((text && *text) || cJSON_IsArray (calls))
            self->sink->delta (self->arg, text ? text : "", text ? strlen (text) : 0,
                               cJSON_IsArray (calls) ? calls : NULL);
    }
    const cJSON *usage = cJSON_GetObjectItem (j, "usage");
    if (cJSON_IsObject (usage))
        self->sink->usage (self->arg, s_int (usage, "prompt_tokens"),
                           s_int (usage, "completion_tokens"));
    const char *reason = choice ? s_str (choice, "finish_reason") : NULL;
    //  The finish reason is reported as soon as it comes; usage may follow
    //  in a later chunk and is reported when it does.
    if (reason && !self->finished) {
        self->finished = true;
        self->sink->finish (self->arg, reason);
    }
}

//  An Anthropic tool_use block as the OpenAI tool call at index, with
//  arguments (JSON text).  Caller owns the return value.
static cJSON *
s_anthropic_tool_call (const cJSON *block, int index, const char *arguments)
{
    cJSON *c = cJSON_CreateObject ();
    cJSON_AddNumberToObject (c, "index", index);
    const char *id = s_str (block, "id");
    cJSON_AddStringToObject (c, "id", id ? id : "");
    cJSON_AddStringToObject (c, "type", "function");
    cJSON *fn = cJSON_AddObjectToObject (c, "function");
    const char *name = s_str (block, "name");
    cJSON_AddStringToObject (fn, "name", name ? name : "");
    cJSON_AddStringToObject (fn, "arguments", arguments);
    return c;
}

static void
s_anthropic_event (provider_parser_t *self, const cJSON *j)
{
    const char *type = s_str (j, "type");
    if (!type)
        return;
    if (!strcmp (type, "message_start")) {
        const cJSON *usage =
            cJSON_GetObjectItem (cJSON_GetObjectItem (j, "message"), "usage");
        self->prompt_tokens = s_int (usage, "input_tokens");
        self->sink->usage (self->arg, self->prompt_tokens, 0);
    }
    else if (!strcmp (type, "content_block_start")) {
        const cJSON *block = cJSON_GetObjectItem (j, "content_block");
        int index = (int) s_int (j, "index");
        const char *btype = s_str (block, "type");
        if (btype && !strcmp (btype, "tool_use") && index >= 0 && index < 64) {
            int k = self->tool_index++;
            self->block_tool[index] = k + 1;
            cJSON *calls = cJSON_CreateArray ();
            //  Its arguments come in the deltas that follow.
            cJSON_AddItemToArray (calls, s_anthropic_tool_call (block, k, ""));
            self->sink->delta (self->arg, "", 0, calls);
            cJSON_Delete (calls);
        }
    }
    else if (!strcmp (type, "content_block_delta")) {
        const cJSON *delta = cJSON_GetObjectItem (j, "delta");
        const char *dtype = s_str (delta, "type");
        int index = (int) s_int (j, "index");
        if (dtype && !strcmp (dtype, "text_delta")) {
            const char *text = s_str (delta, "text");
            if (text)
                self->sink->delta (self->arg, text, strlen (text), NULL);
        }
        else if (dtype && !strcmp (dtype, "input_json_delta") && index >= 0 && index < 64
                 && self->block_tool[index]) {
            const char *part = s_str (delta, "partial_json");
            cJSON *calls = cJSON_CreateArray ();
            cJSON *c = cJSON_CreateObject ();
            cJSON_AddNumberToObject (c, "index", self->block_tool[index] - 1);
            cJSON *fn = cJSON_AddObjectToObject (c, "function");
            cJSON_AddStringToObject (fn, "arguments", part ? part : "");
            cJSON_AddItemToArray (calls, c);
            self->sink->delta (self->arg, "", 0, calls);
            cJSON_Delete (calls);
        }
        //  thinking_delta and signature_delta are the model's private
        //  reasoning: not part of the answer.
    }
    else if (!strcmp (type, "message_delta")) {
        const cJSON *usage = cJSON_GetObjectItem (j, "usage");
        if (usage)
            self->sink->usage (self->arg, self->prompt_tokens,
                               s_int (usage, "output_tokens"));
        const char *stop = s_str (cJSON_GetObjectItem (j, "delta"), "stop_reason");
        if (stop)
            s_finish (self, s_anthropic_reason (stop));
    }
    else if (!strcmp (type, "message_stop"))
        self->done_marker = true;
    else if (!strcmp (type, "error"))
        s_inline_error (self, cJSON_GetObjectItem (j, "error"));
}

static int
s_on_sse (void *arg, const char *event, const char *data, size_t len)
{
    provider_parser_t *self = (provider_parser_t *) arg;
    if (self->failed)
        return 1;
    if (self->type == PROVIDER_OPENAI && len == 6 && !memcmp (data, "[DONE]", 6)) {
        self->done_marker = true;
        return 0;
    }
    cJSON *j = json_in_parse (data, len, 0, JSON_IN_NUL_OK, NULL, NULL);
    if (!cJSON_IsObject (j)) {
        cJSON_Delete (j);
        s_fail (self, ENVELOPE_UNAVAILABLE, "service_unavailable",
                "Provider sent a malformed stream event");
        return 1;
    }
    if (self->type == PROVIDER_ANTHROPIC)
        s_anthropic_event (self, j);
    else
        s_openai_chunk (self, j);
    cJSON_Delete (j);
    return self->failed ? 1 : 0;
}

provider_parser_t *
provider_parser_new (provider_type_t type, bool stream, const provider_sink_t *sink,
                     void *arg)
{
    provider_parser_t *self = (provider_parser_t *) calloc (1, sizeof (*self));
    if (!self)
        return NULL;
    self->type = type;
    self->stream = stream;
    self->sink = sink;
    self->arg = arg;
    if (stream) {
        self->sse = sse_parser_new (PROVIDER_MAX_EVENT, s_on_sse, self);
        if (!self->sse) {
            free (self);
            return NULL;
        }
    }
    return self;
}

void
provider_parser_destroy (provider_parser_t **self_p)
{
    provider_parser_t *self = *self_p;
    if (!self)
        return;
    sse_parser_destroy (&self->sse);
    free (self->buf);
    free (self);
    *self_p = NULL;
}

int
provider_parser_feed (provider_parser_t *self, const char *data, size_t len)
{
    if (self->failed)
        return -1;
    if (self->stream) {
        int rc = sse_parser_feed (self->sse, data, len);
        if (rc == -1)
            s_fail (self, ENVELOPE_UNAVAILABLE, "service_unavailable",
                    "Provider sent an oversized stream event");
        return self->failed ? -1 : 0;
    }
    if (self->len + len > PROVIDER_MAX_BODY) {
        s_fail (self, ENVELOPE_UNAVAILABLE, "service_unavailable",
                "Provider response is larger than 16 MiB");
        return -1;
    }
    if (self->len + len + 1 > self->cap) {
        size_t cap = self->cap ? self->cap : 4096;
        while (cap < self->len + len + 1)
            cap *= 2;
        char *grown = (char *) realloc (self->buf, cap);
        if (!grown) {
            s_fail (self, ENVELOPE_INTERNAL, "internal_error", "Out of memory");
            return -1;
        }
        self->buf = grown;
        self->cap = cap;
    }
    memcpy (self->buf + self->len, data, len);
    self->len += len;
    self->buf[self->len] = 0;
    return 0;
}

static void
s_openai_whole (provider_parser_t *self, const cJSON *j)
{
    const cJSON *choice = cJSON_GetArrayItem (cJSON_GetObjectItem (j, "choices"), 0);
    const cJSON *msg = cJSON_GetObjectItem (choice, "message");
    if (!cJSON_IsObject (msg)) {
        s_fail (self, ENVELOPE_UNAVAILABLE, "service_unavailable",
                "Provider response has no choices[0].message");
        return;
    }
    const char *text = s_str (msg, "content");
    const cJSON *calls = cJSON_GetObjectItem (msg, "tool_calls");
    cJSON *indexed = NULL;
    if (cJSON_IsArray (calls)) {
        indexed = cJSON_Duplicate (calls, true);
        int i = 0;
        for (cJSON *c = indexed->child; c; c = c->next, i++)
            if (!cJSON_GetObjectItem (c, "index"))
                cJSON_AddNumberToObject (c, "index", i);
    }
    self->sink->delta (self->arg, text ? text : "", text ? strlen (text) : 0, indexed);
    cJSON_Delete (indexed);
    const cJSON *usage = cJSON_GetObjectItem (j, "usage");
    self->sink->usage (self->arg, s_int (usage, "prompt_tokens"),
                       s_int (usage, "completion_tokens"));
    const char *reason = s_str (choice, "finish_reason");
    s_finish (self, reason ? reason : "stop");
}

static void
s_anthropic_whole (provider_parser_t *self, const cJSON *j)
{
    const cJSON *content = cJSON_GetObjectItem (j, "content");
    if (!cJSON_IsArray (content)) {
        s_fail (self, ENVELOPE_UNAVAILABLE, "service_unavailable",
                "Provider response has no content array");
        return;
    }
    cJSON *calls = cJSON_CreateArray ();
    int k = 0;
    for (const cJSON *b = content->child; b; b = b->next) {
        const char *type = s_str (b, "type");
        if (type && !strcmp (type, "text")) {
            const char *text = s_str (b, "text");
            if (text)
                self->sink->delta (self->arg, text, strlen (text), NULL);
        }
        else if (type && !strcmp (type, "tool_use")) {
            char *args = cJSON_PrintUnformatted (cJSON_GetObjectItem (b, "input"));
            cJSON_AddItemToArray (calls,
                                  s_anthropic_tool_call (b, k++, args ? args : "{}"));
            cJSON_free (args);
        }
    }
    if (k)
        self->sink->delta (self->arg, "", 0, calls);
    cJSON_Delete (calls);
    const cJSON *usage = cJSON_GetObjectItem (j, "usage");
    self->sink->usage (self->arg, s_int (usage, "input_tokens"),
                       s_int (usage, "output_tokens"));
    s_finish (self, s_anthropic_reason (s_str (j, "stop_reason")));
}

int
provider_parser_finish (provider_parser_t *self)
{
    if (self->failed)
        return -1;
    if (self->stream) {
        if (!self->finished)
            s_fail (self, ENVELOPE_UNAVAILABLE, "service_unavailable",
                    "Provider stream ended before the answer did");
        return self->failed ? -1 : 0;
    }
    cJSON *j = self->buf
                   ? json_in_parse (self->buf, self->len, 0, JSON_IN_NUL_OK, NULL, NULL)
                   : NULL;
    if (!cJSON_IsObject (j))
        s_fail (self, ENVELOPE_UNAVAILABLE, "service_unavailable",
                "Provider sent a response that is not JSON");
    else if (cJSON_GetObjectItem (j, "error"))
        s_inline_error (self, cJSON_GetObjectItem (j, "error"));
    else if (self->type == PROVIDER_ANTHROPIC)
        s_anthropic_whole (self, j);
    else
        s_openai_whole (self, j);
    cJSON_Delete (j);
    return self->failed ? -1 : 0;
}

bool
provider_map_error (const cfg_provider_t *provider, long http_status, const char *body,
                    size_t len, int *status, char *code, size_t code_cap, char *message,
                    size_t message_cap)
{
    cJSON *j =
        body && len ? json_in_parse (body, len, 0, JSON_IN_NUL_OK, NULL, NULL) : NULL;
    const cJSON *err = cJSON_GetObjectItem (j, "error");
    const char *detail = s_str (err, "message");
    bool retry = true;
    const char *c = "service_unavailable";
    *status = ENVELOPE_UNAVAILABLE;
    if (http_status == 400 || http_status == 413 || http_status == 422) {
        *status = ENVELOPE_BAD_REQUEST;
        c = "invalid_request";
        retry = false;
    }
    else if (http_status == 404) {
        *status = ENVELOPE_NOT_FOUND;
        c = "not_found";
    }
    else if (http_status == 429) {
        *status = ENVELOPE_RATE_LIMITED;
        c = "rate_limited";
    }
    snprintf (code, code_cap, "%s", c);
    if (http_status == 401 || http_status == 403)
        snprintf (message, message_cap,
                  "Provider %s refused the gateway's API key (HTTP %ld)", provider->name,
                  http_status);
    else
        snprintf (message, message_cap, "Provider %s answered HTTP %ld%s%.300s",
                  provider->name, http_status, detail ? ": " : "", detail ? detail : "");
    cJSON_Delete (j);
    return retry;
}

//  ---- Catalog ----------------------------------------------------------------

const cfg_provider_t *
catalog_find_model (const catalog_t *self, const char *id, const char **model)
{
    const char *slash = id ? strchr (id, '/') : NULL;
    if (!slash)
        return NULL;
    for (size_t i = 0; i < self->n_models; i++)
        if (!strcmp (self->models[i].id, id)) {
            size_t plen = (size_t) (slash - id);
            for (size_t k = 0; k < self->n_providers; k++)
                if (strlen (self->providers[k].name) == plen
                    && !strncmp (self->providers[k].name, id, plen)) {
                    *model = slash + 1;
                    return &self->providers[k];
                }
        }
    return NULL;
}

const cfg_agent_t *
catalog_find_agent (const catalog_t *self, const char *id)
{
    for (size_t i = 0; id && i < self->n_agents; i++)
        if (!strcmp (self->agents[i].id, id))
            return &self->agents[i];
    return NULL;
}
