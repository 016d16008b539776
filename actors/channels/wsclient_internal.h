/*  =========================================================================
    wsclient_internal - what wsclient.c (the connection: DNS, connect, TLS,
    the upgrade, timers, the API) and wsframes.c (the open connection's
    bytes: the write queue, reading, frames and messages) share

    Every function here is called on the owner's loop thread, with a
    client that is not destroyed (see wsclient.c's top for how handlers
    find that out).  Private to the client.
    =========================================================================
*/
#ifndef CG_WSCLIENT_INTERNAL_H
#define CG_WSCLIENT_INTERNAL_H

#include "wsclient.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdint.h>

#include "ssl_lazy.h"

#define S_LOG "ws"
#define S_DEFAULT_MAX (1u << 20)
#define S_DEFAULT_CONNECT_MS 10000
#define S_CLOSE_WAIT_MS 1000  //  For the server's close, or our last frame to go
#define S_READ_CHUNK 16384
#define S_READ_BUDGET (1u << 20)  //  Bytes read per wake-up, then the others' turn

typedef enum {
    S_RESOLVE,
    S_CONNECT,
    S_TLS,
    S_UPGRADE,
    S_OPEN,
    S_CLOSING,
    S_DRAIN,
    S_DONE
} s_state_t;

//  One getaddrinfo_a request, with everything glibc's thread reads.
typedef struct s_dns_t {
    struct gaicb cb;        //  The request; cb.ar_result the answer
    struct gaicb *list[1];  //  getaddrinfo_a takes a list
    struct addrinfo hints;  //  TCP, any family
    char service[8];        //  The port, in digits
    struct s_dns_t *next;   //  On the list of abandoned requests
    char name[];            //  The host looked up
} s_dns_t;

struct wsc_t {
    zloop_t *loop;    //  The owner's loop (not ours)
    wsc_fn *fn;       //  The owner's callback
    void *arg;        //  Its argument
    uintptr_t id;     //  Our handlers' argument (see top)
    wsc_t *next;      //  In the registry of live clients
    s_state_t state;  //  See top
    bool *gone;       //  While a callback runs: set if it destroyed us
    //  What we connect to
    bool tls;           //  wss://
    char *host;         //  Name or address (no brackets)
    char *host_header;  //  Host: value (port when not the default)
    char *target;       //  Path and query
    char *where;        //  host:port/path, for logs (no query)
    int port;           //  TCP port
    //  Settings
    size_t max_message;  //  Largest message taken
    int connect_ms;      //  Deadline to be open
    int ping_ms;         //  Ping interval, 0 never
    int idle_ms;         //  Idle timeout, 0 never
    char *user_agent;    //  Or NULL
    //  Connection
    s_dns_t *dns;                //  Resolving, or NULL
    struct addrinfo *addrs;      //  Addresses to try (freeaddrinfo)
    struct addrinfo *next_addr;  //  The next one to try
    bool addrs_dns;              //  addrs came from getaddrinfo_a (else getaddrinfo)
    int fd;                      //  Socket, or -1
    int events;                  //  What the poller waits for (0: no poller)
    ssl_conn_t *ssl;             //  TLS, or NULL
    char key[25];                //  Our Sec-WebSocket-Key
    char accept[29];             //  The Sec-WebSocket-Accept it must bring
    //  Timers
    int tick_id;        //  Repeating, -1 when none
    int tick_ms;        //  Its period
    int kick_id;        //  Zero-delay one-shot, -1 when none
    int64_t started;    //  When wsc_connect ran (monotonic ms)
    int64_t last_rx;    //  When bytes last came in
    int64_t last_ping;  //  When we last pinged
    int64_t deadline;   //  CLOSING/DRAIN: when we give up
    //  Buffers
    unsigned char *in;  //  Bytes read, not yet parsed
    size_t in_len, in_cap;
    unsigned char *out;  //  Bytes to write, from out_off
    size_t out_len, out_off, out_cap;
    char *msg;  //  Text message being reassembled (+ NUL)
    size_t msg_len, msg_cap;
    int msg_opcode;  //  1 text, 2 binary, 0 none in progress
    //  The end, once decided
    int end_code;          //  Reported code
    char end_reason[160];  //  Reported reason
    bool end_pending;      //  The kick must report the end
    bool close_requested;  //  wsc_close was called
};

//  Polls for what the state needs now.
void
wsc_rearm (wsc_t *self);

//  Writes what the socket takes.  0, or -1 with a reason in err.
int
wsc_flush (wsc_t *self, char *err, size_t errlen);

//  Queues a close frame with code (none if 0).
int
wsc_queue_close (wsc_t *self, int code);

//  Queues one masked frame.  0 or -1.
int
wsc_queue_frame (wsc_t *self, int opcode, const void *data, size_t len);

//  Room for n more bytes in the write queue.  0 or -1.
int
wsc_out_reserve (wsc_t *self, size_t n);

//  Reads what the socket holds into the read buffer.  1 if bytes came,
//  0 if none, -1 when the connection ended (reported).
int
wsc_read (wsc_t *self, size_t *budget);

//  Parses the frames in the read buffer.  0, or -1 to stop.
int
wsc_parse_frames (wsc_t *self);

//  Ends the connection now: everything stops, then WSC_CLOSED.  Always -1
//  (the caller stops too).
int
wsc_finish (wsc_t *self, int code, const char *reason);

//  Runs the tick every ms (0: none).
void
wsc_tick_set (wsc_t *self, int ms);

//  Calls the owner.  -1 if it destroyed us meanwhile.
int
wsc_emit (wsc_t *self, wsc_event_t event, const char *data, size_t len, int code);

int64_t
wsc_now (void);

//  Polls the socket for events (0: no poller).
void
wsc_want (wsc_t *self, int events);

#endif
