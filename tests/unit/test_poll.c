/*  =========================================================================
    test_poll - bus_poll, the zmq_poll replacement of the broker and the
    run actor, on real inproc ZeroMQ sockets and a real pipe
    =========================================================================
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "bus_poll.h"

typedef struct {
    zsock_t *a, *b;  //  A connected PAIR: send on b, poll a
} pair_t;

static pair_t
s_pair (const char *name)
{
    char endpoint[64];
    snprintf (endpoint, sizeof (endpoint), "inproc://test-poll-%s-%d", name,
              (int) getpid ());
    char bind[80], connect[80];
    snprintf (bind, sizeof (bind), "@%s", endpoint);
    snprintf (connect, sizeof (connect), ">%s", endpoint);
    pair_t p;
    p.a = zsock_new_pair (bind);
    p.b = zsock_new_pair (connect);
    cr_assert (p.a && p.b);
    return p;
}

static void
s_pair_destroy (pair_t *p)
{
    zsock_destroy (&p->a);
    zsock_destroy (&p->b);
}

Test (bus_poll, times_out_with_nothing_to_read)
{
    pair_t p = s_pair ("timeout");
    zmq_pollitem_t item = {zsock_resolve (p.a), 0, ZMQ_POLLIN, 0};
    int64_t start = zclock_mono ();
    cr_assert_eq (bus_poll (&item, 1, 0, 60), 0);
    int64_t took = zclock_mono () - start;
    cr_assert_geq (took, 55, "returned after %lld ms", (long long) took);
    cr_assert_lt (took, 1000);
    cr_assert_eq (item.revents, 0);
    s_pair_destroy (&p);
}

Test (bus_poll, pending_message_is_reported_without_sleeping)
{
    pair_t p = s_pair ("pending");
    zstr_send (p.b, "hello");
    //  Let the message land; then an unvouched socket is checked first.
    zclock_sleep (20);
    zmq_pollitem_t item = {zsock_resolve (p.a), 0, ZMQ_POLLIN, 0};
    int64_t start = zclock_mono ();
    cr_assert_eq (bus_poll (&item, 1, 0, 5000), 1);
    cr_assert_lt (zclock_mono () - start, 1000);
    cr_assert (item.revents & ZMQ_POLLIN);
    char *msg = zstr_recv (p.a);
    cr_assert_str_eq (msg, "hello");
    zstr_free (&msg);
    s_pair_destroy (&p);
}

typedef struct {
    zsock_t *sock;
    int delay_ms;
} late_t;

static void *
s_send_late (void *arg)
{
    late_t *late = (late_t *) arg;
    zclock_sleep (late->delay_ms);
    zstr_send (late->sock, "late");
    return NULL;
}

//  The socket is read until EAGAIN, vouched for as drained, and a message
//  sent from another thread while bus_poll sleeps must still wake it:
//  its ZMQ_FD is all bus_poll watches then.
Test (bus_poll, drained_socket_wakes_on_a_new_message)
{
    pair_t p = s_pair ("wake");
    zstr_send (p.b, "first");
    char *first = zstr_recv (p.a);
    cr_assert_str_eq (first, "first");
    zstr_free (&first);
    zmq_msg_t m;
    zmq_msg_init (&m);
    cr_assert_eq (zmq_msg_recv (&m, zsock_resolve (p.a), ZMQ_DONTWAIT), -1);
    cr_assert_eq (zmq_errno (), EAGAIN);
    zmq_msg_close (&m);

    late_t late = {p.b, 80};
    pthread_t thread;
    pthread_create (&thread, NULL, s_send_late, &late);
    zmq_pollitem_t item = {zsock_resolve (p.a), 0, ZMQ_POLLIN, 0};
    int64_t start = zclock_mono ();
    int rc = bus_poll (&item, 1, 1u, 5000);
    int64_t took = zclock_mono () - start;
    pthread_join (thread, NULL);
    cr_assert_eq (rc, 1);
    cr_assert (item.revents & ZMQ_POLLIN);
    cr_assert_geq (took, 60, "woke after %lld ms, before the send", (long long) took);
    cr_assert_lt (took, 2000);
    char *msg = zstr_recv (p.a);
    cr_assert_str_eq (msg, "late");
    zstr_free (&msg);
    s_pair_destroy (&p);
}

Test (bus_poll, plain_fd_and_socket_together)
{
    pair_t p = s_pair ("mixed");
    int fds[2];
    cr_assert_eq (pipe (fds), 0);
    zmq_pollitem_t items[2] = {
        {zsock_resolve (p.a), 0, ZMQ_POLLIN, 0},
        {NULL, fds[0], ZMQ_POLLIN, 0},
    };
    cr_assert_eq (bus_poll (items, 2, 0, 30), 0);
    cr_assert_eq (write (fds[1], "x", 1), 1);
    cr_assert_eq (bus_poll (items, 2, 0, 5000), 1);
    cr_assert_eq (items[0].revents, 0);
    cr_assert (items[1].revents & ZMQ_POLLIN);
    //  A closed writer is reported too, never slept through.
    char c;
    cr_assert_eq (read (fds[0], &c, 1), 1);
    close (fds[1]);
    cr_assert_eq (bus_poll (items, 2, 0, 5000), 1);
    cr_assert (items[1].revents != 0);
    close (fds[0]);
    s_pair_destroy (&p);
}

//  A socket with a message waiting must not hide a ready plain fd: the
//  run actor's upstream sockets would starve while the bus is busy.
Test (bus_poll, ready_socket_does_not_hide_a_ready_fd)
{
    pair_t p = s_pair ("both");
    int fds[2];
    cr_assert_eq (pipe (fds), 0);
    zstr_send (p.b, "busy");
    zclock_sleep (20);
    cr_assert_eq (write (fds[1], "x", 1), 1);
    zmq_pollitem_t items[2] = {
        {zsock_resolve (p.a), 0, ZMQ_POLLIN, 0},
        {NULL, fds[0], ZMQ_POLLIN, 0},
    };
    cr_assert_eq (bus_poll (items, 2, 0, 5000), 2);
    cr_assert (items[0].revents & ZMQ_POLLIN);
    cr_assert (items[1].revents & ZMQ_POLLIN);
    char *msg = zstr_recv (p.a);
    zstr_free (&msg);
    close (fds[0]);
    close (fds[1]);
    s_pair_destroy (&p);
}

//  The run actor polls one item per upstream stream: a thousand streams
//  must not fail the call (past the stack array, it takes the heap).
Test (bus_poll, many_items)
{
    int fds[2];
    cr_assert_eq (pipe (fds), 0);
    enum { N = 900 };  //  Past the stack array, under a 1024 fd limit
    zmq_pollitem_t *items = calloc (N, sizeof (*items));
    cr_assert (items);
    for (int i = 0; i < N; i++)
        items[i] = (zmq_pollitem_t){NULL, fds[0], ZMQ_POLLIN, 0};
    cr_assert_eq (bus_poll (items, N, 0, 20), 0);
    cr_assert_eq (write (fds[1], "x", 1), 1);
    cr_assert_eq (bus_poll (items, N, 0, 5000), N);
    cr_assert (items[N - 1].revents & ZMQ_POLLIN);
    free (items);
    close (fds[0]);
    close (fds[1]);
}

Test (bus_poll, refuses_a_negative_count)
{
    zmq_pollitem_t item = {NULL, 0, ZMQ_POLLIN, 0};
    cr_assert_eq (bus_poll (&item, -1, 0, 0), -1);
    cr_assert_eq (errno, EINVAL);
}
