/*  =========================================================================
    run_tools - the tool loop of the run actor
    =========================================================================
*/
#include "run_internal.h"
#include "msg_names.h"

#include "actor.h"
#include "json_in.h"
#include "log.h"
#include "mpjson.h"

#include <string.h>

//  ---- The tool loop ----------------------------------------------------------------
//
//  An agent with tools: ["browser"] offers browser_navigate and
//  browser_screenshot to the model (unless the request brings tools of its
//  own).  When the model answers with tool calls, each goes to the browser
//  actor as a request on this actor's own DEALER; tool.call and tool.result
//  events go out as for deltas; the assistant turn and the results join the
//  conversation, and the model is called again, up to maxToolSteps rounds.
//  The rounds travel with chat.done as "steps" so the session stores them.

const char *const run_tools_offered =
    "[{\"type\":\"function\",\"function\":{\"name\":\"browser_navigate\","
    "\"description\":\"Open a web page in the gateway's headless browser and "
    "wait until it has loaded. Returns the final url, the page title and the "
    "HTTP status.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"url\":"
    "{\"type\":\"string\",\"description\":\"An http:// or https:// URL\"}},"
    "\"required\":[\"url\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"browser_screenshot\","
    "\"description\":\"Take a PNG screenshot of the page open in the browser "
    "(the viewport, the full page, or one element). The user sees the image; "
    "you get its size.\",\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"selector\":{\"type\":\"string\",\"description\":\"CSS selector of one "
    "element\"},\"fullPage\":{\"type\":\"boolean\"}}}}}]";

bool
run_tools_wanted (run_t *run)
{
    return run->builtin_tools && run->agent && run->tool_calls
           && cJSON_GetArraySize (run->tool_calls) > 0
           && run->steps < run->agent->max_tool_steps;
}

//  tool.call / tool.result: {sessionKey, runId, seq, tool, callId, key:value}
static void
s_emit_tool (run_t *run, const char *type, const char *tool, const char *call_id,
             const char *key, const cJSON *value)
{
    mp_writer_t w;
    mp_writer_init (&w);
    run_events_head (&w, run);
    mp_kv_str (&w, MK_tool, tool);
    mp_kv_str (&w, MK_callId, call_id);
    mp_key (&w, key);
    if (!value || mpjson_pack (&w.pk, value))
        msgpack_pack_nil (&w.pk);
    run_events_publish (run, type, &w);
    mp_writer_fini (&w);
}

//  {"error":{code,message}}.  Caller owns the return value.
static cJSON *
s_tool_error (const char *code, const char *message)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON *e = cJSON_AddObjectToObject (j, "error");
    cJSON_AddStringToObject (e, "code", code);
    cJSON_AddStringToObject (e, "message", message);
    return j;
}

static const char *
s_json_str (const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

//  Every result is in: tell the clients, show the model, call it again.
static void
s_tool_round_done (run_t *run)
{
    int n = cJSON_GetArraySize (run->calls);
    for (int i = 0; i < n; i++) {
        const cJSON *call = cJSON_GetArrayItem (run->calls, i);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive (call, "function");
        const char *name = s_json_str (fn, "name");
        const char *id = s_json_str (call, "id");
        const cJSON *result = cJSON_GetArrayItem (run->results, i);
        s_emit_tool (run, MN_TOOL_RESULT, name ? name : "", id ? id : "", MK_result,
                     result);
        //  The model gets the result as JSON text, without the pixels of a
        //  screenshot (they would fill its context; the user has them).
        cJSON *brief = cJSON_Duplicate (result, 1);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive (brief, "data");
        if (cJSON_IsString (data)) {
            double bytes = (double) strlen (data->valuestring) * 3 / 4;
            cJSON_DeleteItemFromObjectCaseSensitive (brief, "data");
            cJSON_AddNumberToObject (brief, "bytes", bytes);
        }
        char *text = brief ? cJSON_PrintUnformatted (brief) : NULL;
        cJSON_Delete (brief);
        cJSON *msg = cJSON_CreateObject ();
        cJSON_AddStringToObject (msg, "role", "tool");
        cJSON_AddStringToObject (msg, "tool_call_id", id ? id : "");
        cJSON_AddStringToObject (msg, "content", text ? text : "null");
        cJSON_free (text);
        cJSON_AddItemToArray (run->messages, cJSON_Duplicate (msg, 1));
        cJSON_AddStringToObject (msg, "tool", name ? name : "");
        cJSON_AddItemToArray (run->log, msg);
    }
    cJSON_Delete (run->calls);
    cJSON_Delete (run->results);
    run->calls = run->results = NULL;
    log_info ("run", "%s: tool round %d done, asking the model again", run->id,
              run->steps);
    if (run_curl_start_transfer (run))
        run_next_or_fail (run);
}

//  Records the result of call index (takes result); the last one ends the
//  round.  run may be gone when this returns.
static void
s_tool_result (run_t *run, int index, cJSON *result)
{
    if (!run->results || index >= cJSON_GetArraySize (run->results)
        || !cJSON_IsNull (cJSON_GetArrayItem (run->results, index))) {
        cJSON_Delete (result);
        return;
    }
    cJSON_ReplaceItemInArray (run->results, index, result ? result : cJSON_CreateNull ());
    if (--run->pending == 0)
        s_tool_round_done (run);
}

//  Sends one tool call to the browser actor.  Returns 0, or an error result
//  (caller owns) to answer the model with at once.
static cJSON *
s_tool_send (run_t *run, int index, const char *name, const cJSON *args)
{
    self_t *self = run->self;
    const char *type = !strcmp (name, "browser_navigate")     ? "BROWSER_NAVIGATE"
                       : !strcmp (name, "browser_screenshot") ? "BROWSER_SCREENSHOT"
                                                              : NULL;
    if (!type)
        return s_tool_error ("not_found", "No such tool");
    if (!cJSON_IsObject (args))
        return s_tool_error ("invalid_request", "The arguments are not a JSON object");
    const char *url = s_json_str (args, "url");
    const char *selector = s_json_str (args, "selector");
    const cJSON *full = cJSON_GetObjectItemCaseSensitive (args, "fullPage");
    if (!strcmp (type, MT_BROWSER_NAVIGATE) && !url)
        return s_tool_error ("invalid_request", "'url' is required");
    if (!run_front (self))
        return s_tool_error ("service_unavailable", "No broker connection");
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    if (url)
        mp_kv_str (&w, MK_url, url);
    if (!url && selector)
        mp_kv_str (&w, MK_selector, selector);
    if (!url && cJSON_IsBool (full))
        mp_kv_bool (&w, MK_fullPage, cJSON_IsTrue (full));
    mp_map_end (&w);
    envelope_t env;
    envelope_init (&env, type);
    snprintf (env.session_key, sizeof (env.session_key), "%s", run->session);
    int64_t left = run->deadline - zclock_mono ();
    env.timeout_ms = left > 0 ? left : 1;
    int rc =
        bus_front_send (self->front, MS_BROWSER_STATUS, &env, w.buf.data, w.buf.size);
    mp_writer_fini (&w);
    if (rc)
        return s_tool_error ("service_unavailable", "The broker is not taking requests");
    tool_wait_t *t = (tool_wait_t *) calloc (1, sizeof (tool_wait_t));
    if (!t)
        return s_tool_error ("internal_error", "Out of memory");
    snprintf (t->run_id, sizeof (t->run_id), "%s", run->id);
    t->index = index;
    //  Past this, the run has ended anyway: a reply that never comes must
    //  not hold the entry (the tidy drops it).
    t->expires = run->deadline + RUN_TOOL_GRACE_MS;
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) env.corr_id);
    zhashx_insert (self->tool_calls, key, t);
    run_peak (&self->peak_tool_calls, self->tool_calls);
    return NULL;
}

//  The model asked for tools: carry them out (s_tool_round_done goes on).
void
run_tools_round (run_t *run)
{
    run_curl_transfer_end (run);
    cJSON *calls = run->tool_calls;
    run->tool_calls = NULL;
    //  The assistant turn that asked, as the model must see it again.
    cJSON *turn = cJSON_CreateObject ();
    cJSON_AddStringToObject (turn, "role", "assistant");
    if (run->text_len)
        cJSON_AddStringToObject (turn, "content", run->text);
    else
        cJSON_AddNullToObject (turn, "content");
    cJSON_AddItemToObject (turn, "tool_calls", cJSON_Duplicate (calls, 1));
    cJSON_AddItemToArray (run->messages, cJSON_Duplicate (turn, 1));
    if (!run->log)
        run->log = cJSON_CreateArray ();
    cJSON_AddItemToArray (run->log, turn);
    run->earlier_prompt += run->prompt_tokens;
    run->earlier_completion += run->completion_tokens;
    run->prompt_tokens = run->completion_tokens = 0;
    run->text_len = 0;
    if (run->text)
        run->text[0] = 0;
    run->finish[0] = 0;
    run->steps++;
    int n = cJSON_GetArraySize (calls);
    run->calls = calls;
    run->results = cJSON_CreateArray ();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray (run->results, cJSON_CreateNull ());
    run->pending = n;
    log_info ("run", "%s: the model called %d tool(s), round %d", run->id, n, run->steps);
    for (int i = 0; i < n; i++) {
        const cJSON *call = cJSON_GetArrayItem (calls, i);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive (call, "function");
        const char *name = s_json_str (fn, "name");
        const char *id = s_json_str (call, "id");
        const char *argtext = s_json_str (fn, "arguments");
        //  The model's text: through the intake like any outside JSON.
        cJSON *args = argtext ? json_in_parse (argtext, strlen (argtext), 0,
                                               JSON_IN_NUL_OK, NULL, NULL)
                              : NULL;
        s_emit_tool (run, MN_TOOL_CALL, name ? name : "", id ? id : "", MK_params, args);
        cJSON *error = s_tool_send (run, i, name ? name : "", args);
        cJSON_Delete (args);
        //  The last of these may end the round (and the run): nothing of
        //  run is used after it.
        if (error)
            s_tool_result (run, i, error);
    }
}

//  One reply of the browser actor to a tool call (t), as actor_front_drain
//  hands it.
static void
s_on_tool_reply (void *arg, bus_msg_t *msg, const char *key, void *waiter)
{
    self_t *self = (self_t *) arg;
    tool_wait_t *t = (tool_wait_t *) waiter;
    if (!t)
        return;
    char run_id[80];
    snprintf (run_id, sizeof (run_id), "%s", t->run_id);
    int index = t->index;
    zhashx_delete (self->tool_calls, key);  //  Frees t
    run_t *run = (run_t *) zhashx_lookup (self->runs, run_id);
    if (run && index >= 0) {
        cJSON *result;
        if (msg->env.status == 200)
            result = mpjson_to_json (msg->body.root);
        else {
            char code[48] = "internal_error", message[512] = "Tool failed";
            mp_copy_str (msg->body.root, MK_code, code, sizeof (code));
            mp_copy_str (msg->body.root, MK_message, message, sizeof (message));
            result = s_tool_error (code, message);
        }
        s_tool_result (run, index, result);
    }
}

//  Replies of the browser actor to our tool calls.
void
run_tools_on_reply (self_t *self)
{
    actor_front_drain (self->front, self->tool_calls, s_on_tool_reply, self);
}
