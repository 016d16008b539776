/*  =========================================================================
    gate - the connection gate in front of civetweb's worker threads

    civetweb serves each connection on one worker thread from the moment it
    accepts it, so a socket that never finishes its request head holds a
    thread for the whole request timeout: 70 such sockets silenced a 64-thread
    front.  The gate takes that wait off the threads.  It owns the listening
    socket and an epoll set of its own: a new connection waits there, costing
    a file descriptor and a few bytes, until its request head has arrived
    whole (read with MSG_PEEK, so civetweb still reads it from the start).
    Only then is it handed to civetweb.  On the way:

    - a head not complete within headerTimeoutMs is closed (half-open,
      silent and trickling sockets never reach a thread);
    - bytes that cannot start an HTTP request (a TLS ClientHello, binary)
      get a 400 at once;
    - one address holds at most maxConnectionsPerAddress open connections
      (more get 429 and are closed), and at most threads - reservedThreads
      of the workers: its other ready connections wait in the gate, so no
      one address can take the last workers from everyone else.

    How civetweb is made to take connections from the gate: civetweb polls
    its listening descriptor and calls accept () on it.  gate_attach moves
    the real listener to a descriptor of its own and puts the gate's epoll
    set in its place (readable when a connection arrives, bytes come on a
    waiting one, a connection is ready to hand over, or a deadline ticks);
    the gate defines accept (), which for that one descriptor does the
    gate's work on civetweb's master thread and returns the next ready
    connection, and for every other descriptor is the C library's.  No
    thread of its own, no extra hop: a connection whose head came with it
    goes from accept to a worker as it did without the gate.  civetweb's
    own options still apply once a connection is handed over (keep-alive
    and request timeouts).

    Threads: gate_attach and gate_destroy are called by the thread that
    owns the server; gate_release and gate_websocket from any civetweb
    worker; accept () from civetweb's master thread.  All state is under
    one mutex.
    =========================================================================
*/
#ifndef CG_GATE_H
#define CG_GATE_H

#include "config.h"

typedef struct gate_t gate_t;

//  Puts a gate in front of civetweb's listener on port (found among this
//  process's descriptors).  Returns the gate (caller owns, gate_destroy
//  after mg_stop), or NULL with a sentence in err.
gate_t *
gate_attach (const cg_config_t *cfg, int port, char *err, size_t errlen);

//  A connection that the gate handed to civetweb has closed: its address
//  gets its worker and connection back.  addr as civetweb writes it.
void
gate_release (gate_t *self, const char *addr);

//  A connection from addr became a WebSocket (open true) or the WebSocket
//  ended (false, before civetweb closes it and gate_release follows).  A
//  WebSocket holds its worker as long as it stays: it is counted against
//  the WebSocket places (gateway/ws.c), not its address's share of workers,
//  so an address's WebSocket clients never keep its HTTP requests waiting.
void
gate_websocket (gate_t *self, const char *addr, bool open);

//  Figures for /status and the log.
typedef struct {
    int waiting;          //  Connections in the gate now
    int active;           //  Handed to civetweb, still open, not
                          //  WebSockets
    long long refused;    //  Closed for the per-address cap, or
                          //  for not speaking HTTP
    long long timed_out;  //  Closed for an unfinished head, or for
                          //  no worker in time
} gate_stats_t;

void
gate_stats (gate_t *self, gate_stats_t *out);

//  Stops the gate thread and closes every connection still in it.  Call
//  after mg_stop (civetweb no longer accepts).
void
gate_destroy (gate_t **self_p);

#endif
