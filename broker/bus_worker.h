/*  =========================================================================
    bus_worker - the worker side of the broker protocol, for actors

    One bus_worker_t owns one DEALER connected to the broker and serves one
    service.  It is not thread-safe: create, use and destroy it on the actor's
    own thread.  Add bus_worker_sock () to the actor's poller, call
    bus_worker_recv () when it is readable and bus_worker_tick () at least
    every heartbeat interval.
    =========================================================================
*/
#ifndef CG_BUS_WORKER_H
#define CG_BUS_WORKER_H

#include <czmq.h>

#include "bus_proto.h"
#include "envelope.h"
#include "mp.h"

typedef struct bus_worker_t bus_worker_t;

typedef struct {
    uint8_t front[BUS_MAX_ID];  //  Routing identity of the asking front
    size_t front_len;           //  Its length
    envelope_t env;             //  Decoded envelope
    zmq_msg_t raw;              //  Body bytes (owned; body points into it)
    mp_reader_t body;           //  Decoded body; body.root is a map or NULL
} bus_request_t;

//  Connects to the broker and registers for service.  Caller owns the return
//  value and must bus_worker_destroy it.  Returns NULL on a bad endpoint.
bus_worker_t *
bus_worker_new (const char *endpoint, const char *service, int heartbeat_ms,
                int liveness);

void
bus_worker_destroy (bus_worker_t **self_p);

zsock_t *
bus_worker_sock (bus_worker_t *self);

//  Reads one message.  Returns 1 with req filled when a valid request
//  arrived (call bus_request_fini when done), 0 when the message was
//  protocol traffic or was refused (a request that fails its schema gets a
//  400 ERROR reply from here, and is logged), -1 when nothing could be read
//  (zmq_errno () is EAGAIN when nothing was waiting).
int
bus_worker_recv (bus_worker_t *self, bus_request_t *req);

void
bus_request_fini (bus_request_t *req);

//  Sends heartbeats and re-registers when the broker has been silent too
//  long.  Returns the milliseconds until it next needs calling.
int
bus_worker_tick (bus_worker_t *self);

//  Replies to req with type, status and a packed body (copied).  Returns 0,
//  or -1 if the broker could not take it now (the reply is dropped).
int
bus_worker_reply (bus_worker_t *self, const bus_request_t *req, const char *type,
                  int status, const void *body, size_t size);

//  Replies with an ERROR message; param may be NULL.
int
bus_worker_error (bus_worker_t *self, const bus_request_t *req, int status,
                  const char *code, const char *message, const char *param);

//  Publishes an event: to the front named (may be NULL for none) and to the
//  event bus under topic.  Body is copied.  Returns 0 or -1.
int
bus_worker_event (bus_worker_t *self, const uint8_t *front, size_t front_len,
                  const char *topic, const void *body, size_t size);

#endif
