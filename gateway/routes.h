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

#endif
