/*  =========================================================================
    ws - the WebSocket control channel (docs/websocket.md)

    Threads and ownership:
    - civetweb serves each WebSocket connection on one of its worker threads
      for the connection's whole life.  That thread authenticates the
      upgrade (connect), sends `connected` (ready), parses frames (data) and
      hands each parsed request to the hub; it never touches ZeroMQ.
    - One hub thread per front owns every ZeroMQ socket of the WebSocket
      side: a DEALER to the broker (requests, and the events of runs its
      clients started, routed to it directly), a second DEALER for the
      rate limiter's lease round trips alone (a blocking call drops what
      else arrives on its socket), and a SUB on the event bus (sessions
      its clients subscribed to).  It turns replies and events into
      frames and queues them on the clients.
    - A few writer threads send the queued frames, so a slow client delays
      only itself.  A client whose queue passes websocket.queueFrames is
      told {"type":"lagged"}, sent a close frame and not written to again.
    - A frame fanned out to many clients is one reference-counted buffer.
    A ws_client_t (ws_client.h) is freed by the close handler once no
    writer uses it; the hub refers to clients by id, never by pointer.
    The files: ws.c (civetweb's callbacks), ws_hub.c (the hub thread),
    ws_methods.c (the method table), ws_client.c (queues and writers),
    ws_frame.c (frames); ws_hub.h is what they share.
    =========================================================================
*/
#ifndef CG_WS_H
#define CG_WS_H

#include <cjson/cJSON.h>
#include <civetweb.h>
#include <msgpack.h>

#include "config.h"

typedef struct ws_hub_t ws_hub_t;
typedef struct server_t server_t;

//  Starts the hub and writer threads.  server is lent (for /status data).
//  Returns NULL on failure.  Caller owns the return value: ws_hub_destroy
//  it after mg_stop (the close handlers still talk to it).
ws_hub_t *
ws_hub_new (const cg_config_t *cfg, server_t *server);

void
ws_hub_destroy (ws_hub_t **self_p);

//  Registers the WebSocket handlers on path ("/") of ctx.
void
ws_register (ws_hub_t *self, struct mg_context *ctx, const char *path);

//  The body of GET /status and of the WebSocket system.status (the same
//  body, docs/websocket.md): the system actor's status (a msgpack map),
//  then this front's own "gateway" block (port, bind, auth, inflight,
//  websocketClients) and "limits" block.  Both routes send what this
//  makes, so the two cannot drift apart.  It lives here because only this
//  module knows the WebSocket clients.  Any thread.  Returns NULL if
//  status is not a map.  Caller owns the return value (cJSON_Delete).
cJSON *
ws_status_body (const msgpack_object *status, const cg_config_t *cfg, server_t *server);

#endif
