/*  =========================================================================
    bus_poll - zmq_poll with fewer system calls, for the broker's loop

    Call on the thread that owns the sockets polled.
    =========================================================================
*/
#ifndef CG_BUS_POLL_H
#define CG_BUS_POLL_H

#include <zmq.h>

//  zmq_poll with fewer system calls; same items, same result.  zmq_poll
//  checks every ZeroMQ socket twice around a poll (each check a poll
//  syscall of its own when the socket's mailbox is idle) and polls once
//  with no timeout first.  bus_poll checks a socket only when the caller
//  cannot vouch for it, then sleeps in one poll () on the sockets' ZMQ_FDs
//  and the plain fds, and checks again only the sockets whose fd fired.
//  Bit i of drained (i < 32) says item i is a ZeroMQ socket the caller has
//  received from until EAGAIN and not sent on since: nothing is waiting
//  that its ZMQ_FD would not announce, so it is not checked before the
//  sleep.  A send, even a failed one, may consume the socket's wake-up
//  signal, hence the second condition.  Pass 0 to have every socket
//  checked.  When a checked socket is ready, plain fds are still polled
//  (without waiting), so they are never starved.  Returns the
//  number of items with revents set, 0 on timeout, -1 on error (errno).
int
bus_poll (zmq_pollitem_t *items, int count, unsigned drained, long timeout_ms);

#endif
