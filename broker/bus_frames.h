/*  =========================================================================
    frames - receive and inspect multipart ZeroMQ messages, bounded

    Shared by the broker, the worker side and the front side of the bus
    protocol.  Not thread-safe beyond what the socket itself allows: call on
    the socket's owning thread.
    =========================================================================
*/
#ifndef CG_FRAMES_H
#define CG_FRAMES_H

#include <stdbool.h>
#include <zmq.h>

//  Receives one whole multipart message into frames[max].  The first frame
//  is received with first_flags (0: wait up to the socket's ZMQ_RCVTIMEO;
//  ZMQ_DONTWAIT: don't wait); later frames never wait, since ZeroMQ delivers
//  a message's frames together.  Frames past max are read off and dropped.
//  Returns the message's total frame count, of which the first
//  min (count, max) are initialised and owned by the caller (release them
//  with bus_frames_close), or -1 when nothing could be read (nothing owned).
int
bus_frames_recv (void *handle, zmq_msg_t *frames, int max, int first_flags);

//  Closes the initialised frames of a message bus_frames_recv returned.
void
bus_frames_close (zmq_msg_t *frames, int count, int max);

//  True if frame m holds exactly the string s.
bool
bus_frame_is (zmq_msg_t *m, const char *s);

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
