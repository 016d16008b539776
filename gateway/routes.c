/*  =========================================================================
    routes - the route table of the HTTP API
    =========================================================================
*/
#include "routes.h"

static const route_t s_routes[] = {
    //  path                  prefix public local  scope
    {"/health", false, true, true, 0, route_health, NULL, NULL},
    {"/ready", false, true, false, 0, route_ready, NULL, NULL},
    {"/status", false, false, false, 0, route_status, NULL, NULL},
    {"/v1/models", false, false, true, SCOPE_CHAT, route_models, NULL, NULL},
    {"/v1/chat/completions", false, false, false, SCOPE_CHAT, NULL,
     route_chat_completions, NULL},
    {"/v1/agent/run", false, false, false, SCOPE_CHAT, NULL, route_agent_run, NULL},
    {"/v1/agent/run/stream", false, false, false, SCOPE_CHAT, NULL,
     route_agent_run_stream, NULL},
    {"/v1/sessions", false, false, false, SCOPE_SESSIONS, route_sessions_list, NULL,
     NULL},
    {"/v1/sessions/", true, false, false, SCOPE_SESSIONS, route_session_get, NULL,
     route_session_delete},
    {"/v1/browser/status", false, false, false, SCOPE_BROWSER, route_browser_status, NULL,
     NULL},
    {"/v1/browser/navigate", false, false, false, SCOPE_BROWSER, NULL,
     route_browser_navigate, NULL},
    {"/v1/browser/screenshot", false, false, false, SCOPE_BROWSER, NULL,
     route_browser_screenshot, NULL},
    {"/v1/channels", false, false, false, SCOPE_CHANNELS, route_channels_list, NULL,
     NULL},
    {"/v1/channels/*/status", false, false, false, SCOPE_CHANNELS, route_channel_status,
     NULL, NULL},
    {"/v1/channels/*/enable", false, false, false, SCOPE_CHANNELS, NULL,
     route_channel_enable, NULL},
    {"/v1/channels/*/disable", false, false, false, SCOPE_CHANNELS, NULL,
     route_channel_enable, NULL},
    {"/v1/channels/*/pairing", false, false, false, SCOPE_ADMIN,
     route_channel_pairing_list, NULL, NULL},
    {"/v1/channels/*/pairing/*", false, false, false, SCOPE_ADMIN, NULL,
     route_channel_pairing_approve, NULL},
    //  Authenticated by the platform's secret and the hook's token, which
    //  the channel actor checks.
    {"/v1/channels/*/webhook", false, true, false, 0, route_channel_webhook,
     route_channel_webhook, NULL},
    {"/v1/hooks/*", false, true, false, 0, NULL, route_hook, NULL},
    {NULL, false, false, false, 0, NULL, NULL, NULL},
};

const route_t *
routes_table (void)
{
    return s_routes;
}
