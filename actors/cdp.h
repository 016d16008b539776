/*  =========================================================================
    cdp - one Chrome DevTools Protocol connection, for the browser actor

    A cdp_t owns one civetweb WebSocket client connection to a Chromium's
    DevTools endpoint.  civetweb reads frames on a client thread of its own;
    that thread only parses each message (cJSON) and appends it to a queue
    guarded by a mutex, then bumps an eventfd.  The actor polls cdp_fd () in
    its zloop and pops messages with cdp_recv () on its own thread, so no
    actor state is ever touched from civetweb's thread.

    Threads: every cdp_* function is called from the owning (actor) thread
    only.  cdp_send writes on the connection from that thread; civetweb
    locks the connection for writes, and its reader thread never writes.

    Limits: a message (after reassembly of fragments) longer than the
    max_message given to cdp_connect is dropped; if its leading "id" can be
    read, an error reply {"id":N,"error":{"message":"..."}} is queued in its
    place so the command that asked for it fails instead of hanging.
    =========================================================================
*/
#ifndef CG_CDP_H
#define CG_CDP_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct cdp_t cdp_t;

//  Connects to ws://127.0.0.1:port<path> (blocking: a loopback handshake
//  with the Chromium we started).  Returns NULL with a sentence in err on
//  failure.  Caller owns the return value and must cdp_destroy it.
cdp_t *
cdp_connect (int port, const char *path, size_t max_message, char *err, size_t errlen);

//  Closes the connection and joins civetweb's reader thread (quick once
//  the peer is gone; up to civetweb's poll quantum, about 2 s, while it
//  lives, so stop Chromium first).  Frees queued messages.  Accepts NULL
//  and sets *self_p to NULL.
void
cdp_destroy (cdp_t **self_p);

//  The eventfd that is readable while messages (or the close) wait.  Lent.
int
cdp_fd (cdp_t *self);

//  Sends {"id":N,"method":method,"params":params,"sessionId":session_id}.
//  params is not consumed and may be NULL ({}); session_id may be NULL
//  (browser-level command).  Returns the id (> 0), or -1 if the connection
//  is closed or the write failed.
int
cdp_send (cdp_t *self, const char *method, const cJSON *params, const char *session_id);

//  Pops the next message: a response ({"id",...}) or an event
//  ({"method",...}).  Returns NULL when none is queued.  Caller owns the
//  return value and must cJSON_Delete it.  Clears the eventfd once the
//  queue is empty.
cJSON *
cdp_recv (cdp_t *self);

//  The id of a response popped by cdp_recv: true with *id set if msg has
//  an "id" that is an integer cdp_send could have given (1 .. INT_MAX);
//  false for events and for ids no command of ours carries (Chromium's
//  bytes are outside input: 1e3089 must not reach a cast to int).
bool
cdp_reply_id (const cJSON *msg, int *id);

//  True once the peer closed the connection (or it failed) and every
//  message queued before that was popped.
bool
cdp_closed (cdp_t *self);

#endif
