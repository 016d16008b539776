/*  =========================================================================
    route_agent - POST /v1/agent/run and /v1/agent/run/stream: a run in
    OpenClaw's format, whole ({runId, sessionKey, response, finishReason,
    usage}) or as server-sent events (delta, tool.call, tool.result, done,
    error)

    Every agent run is on a session (given, or made here): a SESSION_RUN
    to the session actor, through runs/run_call.h as WebSocket chat.run.
    =========================================================================
*/
#include "route_runs.h"
#include "msg_names.h"

#include "error.h"
#include "mpjson.h"

#include <stdlib.h>
#include <string.h>

//  Parses and checks an agent run body, starts the run.  Returns 0 when the
//  run started, else the status of the error sent.
static int
s_start (http_req_t *r, run_call_t *c, bool stream)
{
    cJSON *req = http_parse_json (r);
    if (!req)
        return r->status;
    run_catalog_t cat = http_run_catalog (r->config);
    run_check_t chk;
    run_call_agent (c, &cat, req, cJSON_GetObjectItemCaseSensitive (req, "agentId"),
                    "api", stream, &chk);
    cJSON_Delete (req);
    int status = route_runs_refuse (r, &chk);
    return status ? status : route_runs_start (r, c);
}

static cJSON *
s_usage (const run_call_t *c)
{
    cJSON *u = cJSON_CreateObject ();
    cJSON_AddNumberToObject (u, "promptTokens", (double) c->prompt);
    cJSON_AddNumberToObject (u, "completionTokens", (double) c->completion);
    cJSON_AddNumberToObject (u, "totalTokens", (double) (c->prompt + c->completion));
    return u;
}

int
route_agent_run (http_req_t *r)
{
    run_call_t c;
    route_runs_init (r, &c);
    int status = s_start (r, &c, false);
    if (!status && route_runs_collect (r, &c) == RUN_EV_ERROR)
        status = route_runs_send_error (r, &c);
    else if (!status) {
        cJSON *j = cJSON_CreateObject ();
        cJSON_AddStringToObject (j, "runId", c.run_id);
        cJSON_AddStringToObject (j, "sessionKey", c.session);
        cJSON_AddStringToObject (j, "response", c.text ? c.text : "");
        cJSON_AddStringToObject (j, "finishReason", c.finish[0] ? c.finish : "stop");
        cJSON_AddItemToObject (j, "usage", s_usage (&c));
        status = http_send_json (r, 200, j);
        cJSON_Delete (j);
    }
    run_call_fini (&c);
    return status;
}

//  tool.call / tool.result: {runId, tool, callId, params | result} as the
//  bus carries it.  Returns false if the client is gone.
static bool
s_stream_tool (http_req_t *r, const run_call_t *c)
{
    cJSON *t = mpjson_to_json (c->msg.body.root);
    if (!t)
        return true;
    cJSON_DeleteItemFromObjectCaseSensitive (t, "sessionKey");
    cJSON_DeleteItemFromObjectCaseSensitive (t, "seq");
    return http_sse_json (r, c->tool_event, t);  //  Takes t
}

//  chat.delta as event: delta.  Returns false if the client is gone.
static bool
s_stream_delta (http_req_t *r, const run_call_t *c)
{
    size_t len;
    const char *text = mp_get_str (c->msg.body.root, MK_delta, &len);
    if (!text || !len)
        return true;  //  Nothing to show (a tool call being streamed)
    cJSON *d = cJSON_CreateObject ();
    cJSON_AddStringToObject (d, "runId", c->run_id);
    char *copy = strndup (text, len);
    cJSON_AddStringToObject (d, "delta", copy ? copy : "");
    free (copy);
    return http_sse_json (r, "delta", d);
}

//  The run's end, done or error, and the stream's.
static void
s_stream_end (http_req_t *r, const run_call_t *c, run_ev_t ev)
{
    cJSON *d = cJSON_CreateObject ();
    cJSON_AddStringToObject (d, "runId", c->run_id);
    if (ev == RUN_EV_DONE) {
        cJSON_AddStringToObject (d, "sessionKey", c->session);
        cJSON_AddStringToObject (d, "finishReason", c->finish[0] ? c->finish : "stop");
        cJSON_AddItemToObject (d, "usage", s_usage (c));
    }
    else
        cJSON_AddItemToObject (
            d, "error", error_json_event (c->err.status, c->err.code, c->err.message));
    if (http_sse_json (r, ev == RUN_EV_DONE ? "done" : "error", d))
        http_sse_end (r);
}

int
route_agent_run_stream (http_req_t *r)
{
    run_call_t c;
    route_runs_init (r, &c);
    c.want_tools = true;  //  docs/http-api.md: tool.call / tool.result too
    int status = s_start (r, &c, true);
    bool begun = false;
    while (!status) {
        run_ev_t ev = route_runs_stream_next (r, &c, &begun);
        if (ev == RUN_EV_GONE)
            break;
        if (ev == RUN_EV_ERROR && !begun) {
            status = route_runs_send_error (r, &c);
            break;
        }
        if (!begun) {
            http_stream_begin (r);
            begun = true;
        }
        bool alive = true;
        if (ev == RUN_EV_TOOL)
            alive = s_stream_tool (r, &c);
        else if (ev == RUN_EV_DELTA)
            alive = s_stream_delta (r, &c);
        else {
            s_stream_end (r, &c, ev);
            break;
        }
        if (!alive) {
            route_runs_abort (r, &c);
            break;
        }
    }
    run_call_fini (&c);
    return begun ? 200 : status;
}
