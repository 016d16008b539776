/*  =========================================================================
    ws - the WebSocket front's civetweb side: each connection's upgrade
    (authentication, limits, places), its `connected` frame, its frames
    parsed into requests for the hub, and its close; and the body of
    system.status and GET /status (see ws.h for who owns what, and
    ws_hub.h for the files of the WebSocket front)
    =========================================================================
*/
#include "ws_hub.h"

#include "auth.h"
#include "gate.h"
#include "http.h"
#include "log.h"
#include "mpjson.h"
#include "server.h"

#include <stdatomic.h>

//  ---- civetweb handlers (connection threads) -----------------------------------------------------

static int
s_on_connect (const struct mg_connection *conn, void *cbdata)
{
    ws_hub_t *hub = (ws_hub_t *) cbdata;
    struct mg_connection *c = (struct mg_connection *) conn;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    auth_ctx_t auth;
    auth_input_t in = {mg_get_header (conn, "Authorization"),
                       mg_get_header (conn, "X-OpenClaw-Password"), ri->query_string};
    rl_ticket_t ticket;
    memset (&ticket, 0, sizeof (ticket));
    ratelimit_front_t *limits = ws_hub_limits (hub);
    bool blocked = ratelimit_front_check_address (limits, ri->remote_addr, &ticket) != 0;
    auth_rc_t rc = blocked ? AUTH_INVALID : auth_check (hub->config, &in, &auth);
    if (!blocked && rc == AUTH_INVALID)
        blocked = ratelimit_front_auth_failed (limits, server_thread_bus (c),
                                               ri->remote_addr, &ticket)
                  != 0;
    if (blocked) {
        http_req_t r = {0};
        r.conn = c;
        r.ri = ri;
        r.config = hub->config;
        r.close = true;
        http_send_error_h (&r, 429, "rate_limited", ratelimit_front_message (&ticket),
                           NULL, ticket.headers);
        log_info ("ws", "upgrade refused: 429");
        return 1;
    }
    if (rc != AUTH_OK || server_draining (hub->server)) {
        //  Refused before the handshake: a plain HTTP error, no event.
        http_req_t r = {0};
        r.conn = c;
        r.ri = ri;
        r.config = hub->config;
        r.close = true;
        if (rc != AUTH_OK)
            http_send_error_h (&r, 401, "unauthorized",
                               rc == AUTH_MISSING
                                   ? "Authentication required: ?token=<token> "
                                     "or Authorization: Bearer <token>"
                                   : "Invalid credentials",
                               NULL, "WWW-Authenticate: Bearer realm=\"clawgate\"\r\n");
        else
            http_send_error (&r, 503, "service_unavailable",
                             "The gateway is shutting down", NULL);
        log_info ("ws", "upgrade refused: %d", r.status);
        return 1;
    }
    //  A WebSocket client holds a civetweb worker for as long as it stays,
    //  so clients may take all but the reserved workers: those stay for
    //  plain HTTP, which WebSocket clients must never make unavailable.
    int cap = hub->config->threads - config_reserved_threads (hub->config);
    if (atomic_fetch_add (&hub->admitted, 1) >= cap) {
        atomic_fetch_sub (&hub->admitted, 1);
        http_req_t r = {0};
        r.conn = c;
        r.ri = ri;
        r.config = hub->config;
        r.close = true;
        char msg[160];
        snprintf (msg, sizeof (msg),
                  "All %d WebSocket places are taken (gateway.threads less "
                  "gateway.reservedThreads)",
                  cap);
        http_send_error_h (&r, 503, "service_unavailable", msg, NULL,
                           "Retry-After: 1\r\n");
        log_warn ("ws", "upgrade refused: %d WebSocket clients already", cap);
        return 1;
    }
    ws_client_t *cl = ws_client_new (atomic_fetch_add (&hub->next_id, 1), c, &auth);
    if (!cl) {
        atomic_fetch_sub (&hub->admitted, 1);
        return 1;
    }
    mg_set_user_connection_data (c, cl);
    return 0;
}

static void
s_on_ready (struct mg_connection *conn, void *cbdata)
{
    ws_hub_t *hub = (ws_hub_t *) cbdata;
    ws_client_t *cl = (ws_client_t *) mg_get_user_connection_data (conn);
    if (!cl)
        return;
    //  From now on its worker is a WebSocket's, counted against the
    //  WebSocket places, not against its address's share of HTTP workers.
    snprintf (cl->addr, sizeof (cl->addr), "%s", mg_get_request_info (conn)->remote_addr);
    gate_websocket (server_gate (hub->server), cl->addr, true);
    cl->upgraded = true;
    ws_hub_add_client (hub, cl);
    char text[256];
    snprintf (text, sizeof (text),
              "{\"type\":\"connected\",\"data\":{\"clientId\":\"%s\","
              "\"gatewayVersion\":\"%s\",\"capabilities\":[\"chat\","
              "\"channels\",\"browser\"]}}",
              cl->client_id, CLAWGATE_VERSION);
    //  Queued like every frame, so it is first in line.
    ws_frame_t *f = ws_frame_text (text);
    ws_writers_send (hub->writers, cl, f, NULL);
    ws_frame_unref (f);
    log_info ("ws", "client %llu connected (%s) as %s", (unsigned long long) cl->id,
              cl->client_id, cl->auth.principal);
}

static int
s_on_data (struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
    ws_hub_t *hub = (ws_hub_t *) cbdata;
    ws_client_t *cl = (ws_client_t *) mg_get_user_connection_data (conn);
    int opcode = bits & 0x0f;
    if (!cl)
        return 0;
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
        //  RFC 6455 5.5.1: answer with a close frame echoing the status.
        if (!ws_client_kill (cl))
            mg_websocket_write (conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data,
                                len >= 2 ? 2 : 0);
        return 0;
    }
    if (opcode == MG_WEBSOCKET_OPCODE_PING) {
        //  RFC 6455 5.5.2: answer with the same payload.
        mg_websocket_write (conn, MG_WEBSOCKET_OPCODE_PONG, data, len <= 125 ? len : 125);
        return 1;
    }
    if (opcode == MG_WEBSOCKET_OPCODE_PONG)
        return 1;
    const char *problem = NULL;
    char msg[160];
    cJSON *req = NULL;
    //  Fragments: gathered up to the frame limit, then taken as one message.
    bool fin = (bits & 0x80) != 0;
    bool whole = false;  //  data is cl->frag, freed below
    if (opcode == MG_WEBSOCKET_OPCODE_CONTINUATION || !fin) {
        if (opcode != MG_WEBSOCKET_OPCODE_CONTINUATION && cl->frag_opcode) {
            problem = "A new message began before the fragmented one ended";
            ws_client_frag_reset (cl);
        }
        else if (opcode == MG_WEBSOCKET_OPCODE_CONTINUATION && !cl->frag_opcode)
            problem = "Continuation frame with no message to continue";
        else {
            if (!cl->frag_opcode)
                cl->frag_opcode = opcode;
            if (!cl->frag_over
                && (long long) (cl->frag_len + len) <= hub->config->max_frame_bytes) {
                char *grown = (char *) realloc (cl->frag, cl->frag_len + len + 1);
                if (grown) {
                    memcpy (grown + cl->frag_len, data, len);
                    cl->frag = grown;
                    cl->frag_len += len;
                }
                else
                    cl->frag_over = true;
            }
            else
                cl->frag_over = true;
            if (!fin)
                return 1;
            opcode = cl->frag_opcode;
            data = cl->frag;
            len =
                cl->frag_over ? (size_t) hub->config->max_frame_bytes + 1 : cl->frag_len;
            whole = true;
        }
    }
    if (!problem && opcode == MG_WEBSOCKET_OPCODE_BINARY)
        problem = "Binary frames are not accepted: send JSON text";
    else if (!problem && (long long) len > hub->config->max_frame_bytes) {
        snprintf (msg, sizeof (msg), "Message is larger than the %d-byte limit",
                  hub->config->max_frame_bytes);
        problem = msg;
    }
    else if (!problem && !(req = http_json_object (data, len, msg, sizeof (msg))))
        problem = msg;
    if (whole)
        ws_client_frag_reset (cl);
    if (problem) {
        //  id null, and the connection stays open (docs/websocket.md).
        const cJSON *id = NULL;
        cJSON *j = ws_hub_error_json (id, 400, "invalid_request", problem, NULL);
        ws_frame_t *f = ws_frame_json (j);
        cJSON_Delete (j);
        ws_writers_send (hub->writers, cl, f, NULL);
        ws_frame_unref (f);
        return 1;
    }
    ws_hub_push (hub, cl->id, req);
    return 1;
}

static void
s_on_close (const struct mg_connection *conn, void *cbdata)
{
    ws_hub_t *hub = (ws_hub_t *) cbdata;
    ws_client_t *cl = (ws_client_t *) mg_get_user_connection_data (conn);
    if (!cl)
        return;
    atomic_fetch_sub (&hub->admitted, 1);
    if (cl->upgraded)
        gate_websocket (server_gate (hub->server), cl->addr, false);
    ws_hub_remove_client (hub, cl);
    //  No new users can find it now; wait for the ones that have it.
    ws_client_close (cl);
    ws_hub_push (hub, cl->id, NULL);
    log_info ("ws", "client %llu closed", (unsigned long long) cl->id);
    mg_set_user_connection_data ((struct mg_connection *) conn, NULL);
    ws_client_destroy (&cl);
}

//  ---- Registration and status ----------------------------------------------------

void
ws_register (ws_hub_t *self, struct mg_context *ctx, const char *path)
{
    mg_set_websocket_handler (ctx, path, s_on_connect, s_on_ready, s_on_data, s_on_close,
                              self);
}

cJSON *
ws_status_body (const msgpack_object *status, const cg_config_t *cfg, server_t *server)
{
    cJSON *root = status ? mpjson_to_json (status) : NULL;
    if (!cJSON_IsObject (root)) {
        cJSON_Delete (root);
        return NULL;
    }
    //  Each front reports itself: port, bind and auth are its own.  The
    //  actor's fields of the same names give way to ours.
    cJSON_DeleteItemFromObjectCaseSensitive (root, "gateway");
    cJSON_DeleteItemFromObjectCaseSensitive (root, "limits");
    cJSON *gw = cJSON_AddObjectToObject (root, "gateway");
    cJSON_AddNumberToObject (gw, "port", server_port (server));
    cJSON_AddStringToObject (gw, "bind", cfg->bind);
    cJSON_AddStringToObject (gw, "auth", config_auth_name (cfg->auth_mode));
    cJSON_AddNumberToObject (gw, "inflight", server_inflight (server));
    cJSON_AddNumberToObject (gw, "websocketClients", ws_hub_clients_now ());
    //  The connection gate: what waits for a whole request head, what is
    //  being served, and what it has turned away since start.
    gate_stats_t gs;
    gate_stats (server_gate (server), &gs);
    cJSON *conns = cJSON_AddObjectToObject (gw, "connections");
    cJSON_AddNumberToObject (conns, "waiting", gs.waiting);
    cJSON_AddNumberToObject (conns, "served", gs.active);
    cJSON_AddNumberToObject (conns, "refused", (double) gs.refused);
    cJSON_AddNumberToObject (conns, "timedOut", (double) gs.timed_out);
    //  The limits this front enforces (0 = off); per-token overrides are
    //  not listed (they would name the tokens).
    cJSON *lim = cJSON_AddObjectToObject (root, "limits");
    cJSON_AddNumberToObject (lim, "rateLimit", cfg->rate_limit);
    cJSON_AddNumberToObject (lim, "burst", cfg->burst > 0 ? cfg->burst : cfg->rate_limit);
    cJSON_AddNumberToObject (lim, "maxConcurrent", cfg->max_concurrent);
    cJSON_AddNumberToObject (lim, "authFailures", cfg->auth_failures);
    cJSON_AddNumberToObject (lim, "maxConnectionsPerAddress", cfg->max_conns_per_addr);
    cJSON_AddNumberToObject (lim, "maxBodyBytes", (double) cfg->max_body);
    cJSON_AddNumberToObject (lim, "requestTimeoutMs", cfg->request_timeout_ms);
    cJSON_AddNumberToObject (lim, "maxFrameBytes", cfg->max_frame_bytes);
    cJSON_AddNumberToObject (lim, "leaseMs", cfg->lease_ms);
    return root;
}
