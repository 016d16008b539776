/*  =========================================================================
    bus_front - the front side of the broker protocol, for gateway threads

    One bus_front_t owns one DEALER connected to the broker.  It is not
    thread-safe: each civetweb worker thread makes its own in init_thread and
    destroys it in exit_thread.  Every wait takes a deadline.
    =========================================================================
*/
#ifndef CG_BUS_FRONT_H
#define CG_BUS_FRONT_H

#include <czmq.h>

#include "bus_proto.h"
#include "envelope.h"
#include "mp.h"

typedef struct bus_front_t bus_front_t;

typedef enum { BUS_MSG_REPLY = 1, BUS_MSG_EVENT = 2 } bus_msg_kind_t;

typedef struct {
    bus_msg_kind_t kind;            //  REPLY or EVENT
    envelope_t env;                 //  Of a REPLY
    char topic[BUS_MAX_TOPIC + 1];  //  Of an EVENT
    zmq_msg_t raw;                  //  Body bytes (owned)
    mp_reader_t body;               //  Decoded body, points into raw
} bus_msg_t;

//  Connects a DEALER to the broker's requests endpoint.  Caller owns the
//  return value and must bus_front_destroy it.  NULL on a bad endpoint.
bus_front_t *
bus_front_new (const char *endpoint);

void
bus_front_destroy (bus_front_t **self_p);

//  Routing identity the broker knows us by (for events routed to us).
const char *
bus_front_id (bus_front_t *self);

//  The DEALER itself, for an actor that polls it in its own loop (then
//  read with bus_front_recv (self, 0, ...) when it is readable).  Lent.
zsock_t *
bus_front_sock (bus_front_t *self);

//  Sends a request.  Assigns env->corr_id.  Body is copied.  Returns 0, or
//  -1 if the broker cannot take it now.
int
bus_front_send (bus_front_t *self, const char *service, envelope_t *env, const void *body,
                size_t size);

//  Waits up to timeout_ms for the next REPLY or EVENT.  Returns 0 with msg
//  filled (call bus_msg_fini), or -1 on timeout, interrupt or a malformed
//  message (which is dropped and logged).
int
bus_front_recv (bus_front_t *self, int timeout_ms, bus_msg_t *msg);

//  Sends a request and waits up to timeout_ms for its reply; stale replies
//  to earlier, timed-out requests and stray events are dropped.  Returns 0
//  with reply filled (call bus_msg_fini), or -1 on timeout or send failure.
int
bus_front_call (bus_front_t *self, const char *service, envelope_t *env, const void *body,
                size_t size, int timeout_ms, bus_msg_t *reply);

void
bus_msg_fini (bus_msg_t *msg);

#endif
