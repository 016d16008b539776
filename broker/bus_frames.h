/*  =========================================================================
    bus_frames - receive and inspect multipart ZeroMQ messages, bounded

    Shared by the broker, the worker side and the front side of the bus
    protocol.  Not thread-safe beyond what the socket itself allows: call on
    the socket's owning thread.
    =========================================================================
*/
#ifndef CG_BUS_FRAMES_H
#define CG_BUS_FRAMES_H

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

#endif
