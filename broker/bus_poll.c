/*  =========================================================================
    bus_poll - zmq_poll with fewer system calls
    =========================================================================
*/
#include "bus_poll.h"

#include <czmq.h>
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

//  Items up to this many poll from the stack; more from a heap array for
//  the call.
#define BUS_POLL_STACK 256

static int
s_poll (zmq_pollitem_t *items, int count, unsigned drained, long timeout_ms,
        struct pollfd *fds);

//  A plain fd's poll () result as zmq_poll reports it.
static void
s_fd_revents (zmq_pollitem_t *item, short revents)
{
    if (revents & POLLIN)
        item->revents |= ZMQ_POLLIN;
    if (revents & POLLOUT)
        item->revents |= ZMQ_POLLOUT;
    if (revents & (POLLERR | POLLHUP | POLLNVAL))
        item->revents |= ZMQ_POLLERR;
}

//  Reads a ZeroMQ socket's pending events into item->revents; -1 on error.
static int
s_socket_events (zmq_pollitem_t *item)
{
    uint32_t events = 0;
    size_t size = sizeof (events);
    if (zmq_getsockopt (item->socket, ZMQ_EVENTS, &events, &size))
        return -1;
    item->revents =
        (short) (events & (uint32_t) item->events & (ZMQ_POLLIN | ZMQ_POLLOUT));
    return 0;
}

int
bus_poll (zmq_pollitem_t *items, int count, unsigned drained, long timeout_ms)
{
    if (count < 0) {
        errno = EINVAL;
        return -1;
    }
    struct pollfd stack_fds[BUS_POLL_STACK];
    struct pollfd *fds = stack_fds;
    if (count > BUS_POLL_STACK) {
        fds = (struct pollfd *) malloc ((size_t) count * sizeof (*fds));
        if (!fds) {
            errno = ENOMEM;
            return -1;
        }
    }
    int rc = s_poll (items, count, drained, timeout_ms, fds);
    if (fds != stack_fds)
        free (fds);
    return rc;
}

static int
s_poll (zmq_pollitem_t *items, int count, unsigned drained, long timeout_ms,
        struct pollfd *fds)
{
    int ready = 0;
    for (int i = 0; i < count; i++) {
        items[i].revents = 0;
        if (!items[i].socket) {
            fds[i] = (struct pollfd){items[i].fd, 0, 0};
            if (items[i].events & ZMQ_POLLIN)
                fds[i].events |= POLLIN;
            if (items[i].events & ZMQ_POLLOUT)
                fds[i].events |= POLLOUT;
            continue;
        }
        size_t size = sizeof (fds[i].fd);
        if (zmq_getsockopt (items[i].socket, ZMQ_FD, &fds[i].fd, &size))
            return -1;
        fds[i].events = POLLIN;
        bool vouched = i < 32 && (drained & (1u << i));
        if (!vouched) {
            if (s_socket_events (&items[i]))
                return -1;
            if (items[i].revents)
                ready++;
        }
    }
    if (ready) {
        //  Plain fds get their look too, as zmq_poll gives them: a busy
        //  socket must not starve them.
        bool plain = false;
        for (int i = 0; i < count && !plain; i++)
            plain = items[i].socket == NULL;
        if (plain && poll (fds, (nfds_t) count, 0) > 0)
            for (int i = 0; i < count; i++)
                if (!items[i].socket && fds[i].revents) {
                    s_fd_revents (&items[i], fds[i].revents);
                    ready++;
                }
        return ready;
    }

    int64_t end = timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
    while (true) {
        int wait = -1;
        if (end >= 0) {
            int64_t left = end - zclock_mono ();
            wait = left > 0 ? (int) (left < INT32_MAX ? left : INT32_MAX) : 0;
        }
        int rc = poll (fds, (nfds_t) count, wait);
        if (rc < 0)
            return -1;
        for (int i = 0; rc > 0 && i < count; i++) {
            if (!fds[i].revents)
                continue;
            if (items[i].socket) {
                //  The fd only says the mailbox has commands; whether they
                //  made a message readable, ZMQ_EVENTS tells.
                if (s_socket_events (&items[i]))
                    return -1;
            }
            else
                s_fd_revents (&items[i], fds[i].revents);
            if (items[i].revents)
                ready++;
        }
        if (ready || wait == 0)
            return ready;
    }
}
