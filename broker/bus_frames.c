/*  =========================================================================
    bus_frames - bounded multipart receive
    =========================================================================
*/
#include "bus_frames.h"

#include <czmq.h>
#include <string.h>

int
bus_frames_recv (void *handle, zmq_msg_t *frames, int max, int first_flags)
{
    int count = 0;
    int more = 1;
    while (more) {
        zmq_msg_t scratch;
        zmq_msg_t *m = count < max ? &frames[count] : &scratch;
        zmq_msg_init (m);
        if (zmq_msg_recv (m, handle, count ? ZMQ_DONTWAIT : first_flags) < 0) {
            zmq_msg_close (m);
            bus_frames_close (frames, count, max);
            return -1;
        }
        more = zmq_msg_more (m);
        if (m == &scratch)
            zmq_msg_close (m);
        count++;
    }
    return count;
}

void
bus_frames_close (zmq_msg_t *frames, int count, int max)
{
    for (int i = 0; i < count && i < max; i++)
        zmq_msg_close (&frames[i]);
}

bool
bus_frame_is (zmq_msg_t *m, const char *s)
{
    size_t n = strlen (s);
    return zmq_msg_size (m) == n && memcmp (zmq_msg_data (m), s, n) == 0;
}
