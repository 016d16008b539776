/*  =========================================================================
    routes - the HTTP API's route table and its handlers
    =========================================================================
*/
#ifndef CG_ROUTES_H
#define CG_ROUTES_H

#include "server.h"

//  The route table, ending in a zeroed entry.  Static; never freed.
const route_t *
routes_table (void);

//  Handlers, one file per resource family.
int
route_health (http_req_t *r);
int
route_ready (http_req_t *r);
int
route_status (http_req_t *r);
int
route_models (http_req_t *r);
int
route_chat_completions (http_req_t *r);
int
route_agent_run (http_req_t *r);
int
route_agent_run_stream (http_req_t *r);
int
route_sessions_list (http_req_t *r);
int
route_session_get (http_req_t *r);
int
route_session_delete (http_req_t *r);
int
route_browser_status (http_req_t *r);
int
route_browser_navigate (http_req_t *r);
int
route_browser_screenshot (http_req_t *r);

int
route_channels_list (http_req_t *r);
int
route_channel_status (http_req_t *r);
int
route_channel_enable (http_req_t *r);
int
route_channel_pairing_list (http_req_t *r);
int
route_channel_pairing_approve (http_req_t *r);
int
route_channel_webhook (http_req_t *r);
int
route_hook (http_req_t *r);

//  Sends type with the body in w (not freed) to service and waits up to
//  timeout_ms for its reply, in slices so a stopping front lets go.
//  Returns 0 with reply filled (the caller bus_msg_fini's it), or the
//  status of the 503 it sent, naming who did not answer.
int
route_ask (http_req_t *r, const char *service, const char *type, const mp_writer_t *w,
           int timeout_ms, const char *who, bus_msg_t *reply);

#endif
