/*  =========================================================================
    run_check - the checks a request to start a run passes
    =========================================================================
*/
#include "run_check.h"

#include "ids.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

int
run_check_refuse (run_check_t *out, int status, const char *param, const char *fmt, ...)
{
    out->status = status;
    out->code = status == 404 ? "not_found" : "invalid_request";
    snprintf (out->param, sizeof (out->param), "%s", param ? param : "");
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (out->message, sizeof (out->message), fmt, ap);
    va_end (ap);
    return status;
}

static bool
s_absent (const cJSON *v)
{
    return !v || cJSON_IsNull (v);
}

static bool
s_one_of (const char *s, const char *const *names)
{
    for (; *names; names++)
        if (!strcmp (s, *names))
            return true;
    return false;
}

int
run_check_agent (const run_catalog_t *cat, const cJSON *req, const cJSON *agent,
                 run_check_t *out)
{
    memset (out, 0, sizeof (*out));
    static const char *const levels[] = {"off", "minimal", "low", "medium", "high", NULL};
    const cJSON *message = cJSON_GetObjectItemCaseSensitive (req, "message");
    const cJSON *key = cJSON_GetObjectItemCaseSensitive (req, "sessionKey");
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive (req, "options");
    const cJSON *thinking = cJSON_GetObjectItemCaseSensitive (opts, "thinking");
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (opts, "model");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive (opts, "stream");
    if (!cJSON_IsString (message) || !*message->valuestring)
        return run_check_refuse (out, 400, "message",
                                 "'message' is required and must be a non-empty string");
    if (!s_absent (key)
        && (!cJSON_IsString (key) || !ids_session_key_valid (key->valuestring)))
        return run_check_refuse (out, 400, "sessionKey", "Invalid session key");
    if (!s_absent (opts) && !cJSON_IsObject (opts))
        return run_check_refuse (out, 400, "options", "'options' must be an object");
    if (!s_absent (agent) && !cJSON_IsString (agent))
        return run_check_refuse (out, 400, "agentId", "Unknown agent");
    if (!s_absent (agent) && !cat->agent_known (cat->ctx, agent->valuestring))
        return run_check_refuse (out, 404, "agentId", "Unknown agent");
    if (!s_absent (thinking)
        && !(cJSON_IsString (thinking) && s_one_of (thinking->valuestring, levels)))
        return run_check_refuse (out, 400, "options.thinking",
                                 "options.thinking must be off, minimal, low, medium or "
                                 "high");
    if (!s_absent (model) && !cJSON_IsString (model))
        return run_check_refuse (out, 400, "options.model",
                                 "options.model must be a string");
    if (!s_absent (stream) && !cJSON_IsBool (stream))
        return run_check_refuse (out, 400, "options.stream",
                                 "options.stream must be a boolean");
    return 0;
}

int
run_check_openai (const run_catalog_t *cat, const cJSON *req, run_check_t *out)
{
    memset (out, 0, sizeof (*out));
    static const char *const roles[] = {"system",    "developer", "user",
                                        "assistant", "tool",      NULL};
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (req, "model");
    if (!cJSON_IsString (model) || !*model->valuestring)
        return run_check_refuse (out, 400, "model",
                                 "'model' is required and must be a string");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive (req, "messages");
    if (!cJSON_IsArray (msgs) || !msgs->child)
        return run_check_refuse (out, 400, "messages",
                                 "'messages' is required and must be a non-empty array");
    int i = 0;
    for (const cJSON *m = msgs->child; m; m = m->next, i++) {
        char param[48];
        snprintf (param, sizeof (param), "messages[%d]", i);
        const cJSON *role = cJSON_GetObjectItemCaseSensitive (m, "role");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive (m, "content");
        if (!cJSON_IsObject (m) || !cJSON_IsString (role)
            || !s_one_of (role->valuestring, roles))
            return run_check_refuse (out, 400, param,
                                     "Each message needs a role: system, developer, "
                                     "user, assistant or tool");
        if (content && !cJSON_IsString (content) && !cJSON_IsArray (content)
            && !cJSON_IsNull (content))
            return run_check_refuse (out, 400, param,
                                     "A message's content must be a string or an array "
                                     "of parts");
    }
    static const struct {
        const char *key;
        int type;  //  1 bool, 2 number, 3 int>0, 4 array, 5 object, 6 string
    } fields[] = {{"stream", 1},
                  {"temperature", 2},
                  {"top_p", 2},
                  {"max_tokens", 3},
                  {"max_completion_tokens", 3},
                  {"tools", 4},
                  {"stream_options", 5},
                  {"n", 3},
                  {"reasoning_effort", 6}};
    static const char *const what[] = {
        "",         "a boolean", "a number", "a positive integer",
        "an array", "an object", "a string"};
    for (size_t k = 0; k < sizeof (fields) / sizeof (fields[0]); k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive (req, fields[k].key);
        if (s_absent (v))
            continue;
        int type = fields[k].type;
        bool ok = type == 1   ? cJSON_IsBool (v)
                  : type == 2 ? cJSON_IsNumber (v)
                  : type == 3
                      ? cJSON_IsNumber (v) && v->valuedouble >= 1 && v->valuedouble <= 1e9
                            && v->valuedouble == (double) (long) v->valuedouble
                  : type == 4 ? cJSON_IsArray (v)
                  : type == 5 ? cJSON_IsObject (v)
                              : cJSON_IsString (v);
        if (!ok)
            return run_check_refuse (out, 400, fields[k].key, "'%s' must be %s",
                                     fields[k].key, what[type]);
    }
    const cJSON *n = cJSON_GetObjectItemCaseSensitive (req, "n");
    if (cJSON_IsNumber (n) && n->valuedouble != 1)
        return run_check_refuse (out, 400, "n", "Only n=1 is supported");
    if (!cat->model_known (cat->ctx, model->valuestring))
        return run_check_refuse (out, 404, "model",
                                 "The model '%.256s' does not exist (see GET /v1/models)",
                                 model->valuestring);
    return 0;
}
