/*  =========================================================================
    platform_bench - what this machine charges for the gateway's primitives

    The latency targets are sums of a few primitives: a system call, one
    thread waking another, a ZeroMQ inproc hand-off, a loopback TCP send.
    This measures each, so a figure like "the session path adds 300 us" can
    be read against the floor the machine sets (README, Benchmarks):

      syscall          getpid (), a system call that does nothing
      eventfd hop      one thread wakes another through an eventfd: half
                       the round trip of a ping-pong
      zmq inproc hop   the same through a pair of ZeroMQ inproc sockets
                       (what one step front -> broker -> actor costs)
      zmq broker hop   front -> forwarding thread -> echo thread and back,
                       DEALER/ROUTER as clawgate wires them: a quarter of
                       the round trip is one hop through a broker
      tcp send         one 200-byte send on a loopback TCP connection whose
                       reader is busy (the WebSocket fan-out's unit)
      tcp fan-out      one 120-byte frame to each of 1,000 loopback TCP
                       connections, sent by two threads, read by one epoll
                       thread: a sample is one connection's read time after
                       the round began (issue 5's delay, with no gateway)

    Each is given as median and p99 of ROUNDS samples (the fan-out: of
    its 100 rounds x 1,000 connections, whatever ROUNDS says).  usage:
    platform_bench [ROUNDS] (default 20000).
    =========================================================================
*/
#include <zmq.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static int s_rounds = 20000;

static double
s_now_ns (void)
{
    struct timespec t;
    clock_gettime (CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e9 + t.tv_nsec;
}

static int
s_cmp (const void *a, const void *b)
{
    double x = *(const double *) a, y = *(const double *) b;
    return x < y ? -1 : x > y;
}

//  Prints median and p99 of samples (ns), each divided by per.
static void
s_report (const char *name, double *ns, int n, double per)
{
    qsort (ns, (size_t) n, sizeof (double), s_cmp);
    printf ("result: %-16s median %8.2f us   p99 %8.2f us\n", name, ns[n / 2] / per / 1e3,
            ns[n * 99 / 100] / per / 1e3);
}

//  ---- eventfd ping-pong ----------------------------------------------------

static int s_efd[2];

static void *
s_efd_echo (void *arg)
{
    uint64_t v;
    for (int i = 0; i < s_rounds; i++) {
        if (read (s_efd[0], &v, 8) != 8 || write (s_efd[1], &v, 8) != 8)
            break;
    }
    return NULL;
}

//  ---- ZeroMQ ------------------------------------------------------------------

static void *s_ctx;

static void *
s_pair_echo (void *arg)
{
    void *s = zmq_socket (s_ctx, ZMQ_PAIR);
    zmq_connect (s, "inproc://pair");
    char buf[64];
    for (int i = 0; i < s_rounds; i++) {
        int n = zmq_recv (s, buf, sizeof (buf), 0);
        if (n < 0 || zmq_send (s, buf, (size_t) n, 0) < 0)
            break;
    }
    zmq_close (s);
    return NULL;
}

//  The broker: ROUTER for fronts and one for the worker, forwarding
//  [identity][payload] both ways, as broker/broker.c routes (simplified).
static void *
s_broker (void *arg)
{
    void *front = zmq_socket (s_ctx, ZMQ_ROUTER);
    void *back = zmq_socket (s_ctx, ZMQ_DEALER);
    zmq_bind (front, "inproc://front");
    zmq_bind (back, "inproc://back");
    zmq_pollitem_t items[2] = {{front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}};
    int moved = 0;
    while (moved < 2 * s_rounds) {
        if (zmq_poll (items, 2, -1) < 0)
            break;
        for (int k = 0; k < 2; k++) {
            if (!(items[k].revents & ZMQ_POLLIN))
                continue;
            void *from = k ? back : front, *to = k ? front : back;
            int more = 1;
            while (more) {
                zmq_msg_t m;
                zmq_msg_init (&m);
                if (zmq_msg_recv (&m, from, 0) < 0)
                    return NULL;
                more = zmq_msg_more (&m);
                zmq_msg_send (&m, to, more ? ZMQ_SNDMORE : 0);
            }
            moved++;
        }
    }
    zmq_close (front);
    zmq_close (back);
    return NULL;
}

static void *
s_worker (void *arg)
{
    void *s = zmq_socket (s_ctx, ZMQ_DEALER);
    zmq_connect (s, "inproc://back");
    for (int i = 0; i < s_rounds; i++) {
        zmq_msg_t id, body;
        zmq_msg_init (&id);
        zmq_msg_init (&body);
        if (zmq_msg_recv (&id, s, 0) < 0 || zmq_msg_recv (&body, s, 0) < 0)
            break;
        zmq_msg_send (&id, s, ZMQ_SNDMORE);
        zmq_msg_send (&body, s, 0);
    }
    zmq_close (s);
    return NULL;
}

//  n round trips of a 16-byte message on sock (its peer echoes), each
//  into ns.
static void
s_round_trips (void *sock, double *ns, int n)
{
    char buf[64] = "0123456789abcdef";
    for (int i = 0; i < n; i++) {
        double t = s_now_ns ();
        zmq_send (sock, buf, 16, 0);
        zmq_recv (sock, buf, sizeof (buf), 0);
        ns[i] = s_now_ns () - t;
    }
}

//  ---- Loopback TCP --------------------------------------------------------------

static volatile int s_reading = 1;

static void *
s_tcp_reader (void *arg)
{
    int fd = *(int *) arg;
    char buf[65536];
    while (s_reading && read (fd, buf, sizeof (buf)) > 0)
        ;
    return NULL;
}

//  A listening socket on 127.0.0.1, port of the kernel's choosing; -1 on failure.
static int
s_tcp_listener (struct sockaddr_in *a)
{
    int l = socket (AF_INET, SOCK_STREAM, 0);
    *a = (struct sockaddr_in){.sin_family = AF_INET,
                              .sin_addr.s_addr = htonl (INADDR_LOOPBACK)};
    socklen_t len = sizeof (*a);
    if (l < 0 || bind (l, (struct sockaddr *) a, sizeof (*a)) || listen (l, 1024)
        || getsockname (l, (struct sockaddr *) a, &len)) {
        if (l >= 0)
            close (l);
        return -1;
    }
    return l;
}

//  One connection through listener l: the server's end sends without delay.
static int
s_tcp_connect (int l, const struct sockaddr_in *a, int *client, int *server)
{
    *client = socket (AF_INET, SOCK_STREAM, 0);
    if (*client < 0 || connect (*client, (const struct sockaddr *) a, sizeof (*a)))
        return -1;
    *server = accept (l, NULL, NULL);
    int one = 1;
    setsockopt (*server, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    return *server < 0 ? -1 : 0;
}

static int
s_tcp_pair (int *client, int *server)
{
    struct sockaddr_in a;
    int l = s_tcp_listener (&a);
    int rc = l < 0 ? -1 : s_tcp_connect (l, &a, client, server);
    if (l >= 0)
        close (l);
    return rc;
}

//  ---- Loopback TCP fan-out -------------------------------------------------------

#define FAN_N 1000      //  Connections, as issue 5's bench
#define FAN_SENDERS 2   //  Sending threads, one per core here
#define FAN_ROUNDS 100  //  Frames to each connection

typedef struct {
    int *fds;  //  Lent: server ends, every FAN_SENDERS-th
    int go;    //  eventfd: one count per round
} fan_sender_t;

static void *
s_fan_sender (void *arg)
{
    fan_sender_t *self = (fan_sender_t *) arg;
    char frame[120];
    memset (frame, 'x', sizeof (frame));
    uint64_t v;
    for (int r = 0; r < FAN_ROUNDS; r++) {
        if (read (self->go, &v, 8) != 8)
            break;
        for (int i = 0; i < FAN_N / FAN_SENDERS; i++)
            if (send (self->fds[i], frame, sizeof (frame), MSG_NOSIGNAL) < 0)
                return NULL;
    }
    return NULL;
}

//  Fills ns (FAN_N * FAN_ROUNDS samples) with each connection's read time
//  after its round began.  Returns 0, or -1 if it could not set up.
static int
s_fan_out (double *ns)
{
    struct rlimit rl;
    if (getrlimit (RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 2 * FAN_N + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit (RLIMIT_NOFILE, &rl);
    }
    static int client[FAN_N], server[FAN_SENDERS][FAN_N / FAN_SENDERS];
    struct sockaddr_in a;
    int l = s_tcp_listener (&a);
    int ep = epoll_create1 (0);
    if (l < 0 || ep < 0)
        return -1;
    for (int i = 0; i < FAN_N; i++) {
        if (s_tcp_connect (l, &a, &client[i], &server[i % FAN_SENDERS][i / FAN_SENDERS]))
            return -1;
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t) i};
        epoll_ctl (ep, EPOLL_CTL_ADD, client[i], &ev);
    }
    close (l);
    fan_sender_t senders[FAN_SENDERS];
    pthread_t th[FAN_SENDERS];
    for (int k = 0; k < FAN_SENDERS; k++) {
        senders[k] = (fan_sender_t){server[k], eventfd (0, 0)};
        pthread_create (&th[k], NULL, s_fan_sender, &senders[k]);
    }
    int n = 0;
    char buf[4096];
    for (int r = 0; r < FAN_ROUNDS; r++) {
        double t0 = s_now_ns ();
        for (int k = 0; k < FAN_SENDERS; k++) {
            uint64_t one = 1;
            if (write (senders[k].go, &one, 8) != 8)
                return -1;
        }
        struct epoll_event evs[256];
        for (int got = 0; got < FAN_N;) {
            int k = epoll_wait (ep, evs, 256, 1000);
            if (k <= 0)
                return -1;
            for (int j = 0; j < k; j++)
                if (recv (client[evs[j].data.u32], buf, sizeof (buf), 0) > 0) {
                    ns[n++] = s_now_ns () - t0;
                    got++;
                }
        }
        usleep (10000);  //  Idle between frames, as a stream is
    }
    for (int k = 0; k < FAN_SENDERS; k++) {
        pthread_join (th[k], NULL);
        close (senders[k].go);
        for (int i = 0; i < FAN_N / FAN_SENDERS; i++)
            close (server[k][i]);
    }
    for (int i = 0; i < FAN_N; i++)
        close (client[i]);
    close (ep);
    return 0;
}

int
main (int argc, char **argv)
{
    if (argc > 1)
        s_rounds = atoi (argv[1]) > 100 ? atoi (argv[1]) : 100;
    int n = s_rounds;
    double *ns = (double *) malloc (sizeof (double) * (size_t) n);
    if (!ns)
        return 1;
    printf ("platform_bench: %d rounds each, %ld CPUs\n", n,
            sysconf (_SC_NPROCESSORS_ONLN));

    //  A syscall: batches of 100, so the clock's own cost is amortised.
    for (int i = 0; i < n; i++) {
        double t = s_now_ns ();
        for (int k = 0; k < 100; k++)
            syscall (SYS_getpid);
        ns[i] = s_now_ns () - t;
    }
    s_report ("syscall", ns, n, 100);

    pthread_t th;
    s_efd[0] = eventfd (0, 0);
    s_efd[1] = eventfd (0, 0);
    pthread_create (&th, NULL, s_efd_echo, NULL);
    for (int i = 0; i < n; i++) {
        uint64_t v = 1;
        double t = s_now_ns ();
        if (write (s_efd[0], &v, 8) != 8 || read (s_efd[1], &v, 8) != 8)
            return 1;
        ns[i] = s_now_ns () - t;
    }
    pthread_join (th, NULL);
    s_report ("eventfd hop", ns, n, 2);

    s_ctx = zmq_ctx_new ();
    void *pair = zmq_socket (s_ctx, ZMQ_PAIR);
    zmq_bind (pair, "inproc://pair");
    pthread_create (&th, NULL, s_pair_echo, NULL);
    s_round_trips (pair, ns, n);
    pthread_join (th, NULL);
    zmq_close (pair);
    s_report ("zmq inproc hop", ns, n, 2);

    pthread_t broker, worker;
    pthread_create (&broker, NULL, s_broker, NULL);
    usleep (50000);  //  inproc: bind before connect
    pthread_create (&worker, NULL, s_worker, NULL);
    void *front = zmq_socket (s_ctx, ZMQ_DEALER);
    zmq_connect (front, "inproc://front");
    s_round_trips (front, ns, n);
    pthread_join (worker, NULL);
    pthread_join (broker, NULL);
    zmq_close (front);
    zmq_ctx_term (s_ctx);
    s_report ("zmq broker hop", ns, n, 4);

    int client, server;
    if (s_tcp_pair (&client, &server))
        return 1;
    pthread_t reader;
    pthread_create (&reader, NULL, s_tcp_reader, &client);
    char frame[200];
    memset (frame, 'x', sizeof (frame));
    for (int i = 0; i < n; i++) {
        double t = s_now_ns ();
        if (send (server, frame, sizeof (frame), 0) != (ssize_t) sizeof (frame))
            return 1;
        ns[i] = s_now_ns () - t;
    }
    s_reading = 0;
    shutdown (server, SHUT_RDWR);
    pthread_join (reader, NULL);
    close (client);
    close (server);
    s_report ("tcp send", ns, n, 1);
    free (ns);

    ns = (double *) malloc (sizeof (double) * FAN_N * FAN_ROUNDS);
    if (!ns || s_fan_out (ns))
        return 1;
    s_report ("tcp fan-out 1000", ns, FAN_N * FAN_ROUNDS, 1);
    free (ns);
    return 0;
}
