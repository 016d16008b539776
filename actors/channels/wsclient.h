/*  =========================================================================
    wsclient - a WebSocket client (RFC 6455) driven by an actor's zloop

    The channel actor speaks the Discord Gateway and Slack Socket Mode,
    which are WebSockets, and Debian's libcurl has no WebSocket support: a
    wsc_t is one client connection, ws:// or wss://, that never blocks the
    loop.  DNS runs in glibc's resolver thread (getaddrinfo_a, polled from
    a timer; IP literals skip it), the connect is non-blocking, TLS comes
    from OpenSSL loaded on first use (ssl_lazy.h: the peer's chain and name
    are always verified), then the HTTP/1.1 upgrade, then frames.

    Events reach the owner through one callback, on the loop's thread, and
    never from inside a wsc_* call: WSC_OPEN once, WSC_TEXT per message,
    and WSC_CLOSED exactly once (unless the owner destroyed the client
    first), after which nothing follows.  The owner still destroys the
    client, inside the callback or later.

    Messages: text messages are reassembled from their fragments and
    handed over whole; binary messages are read and dropped (no platform
    we speak sends them); pings are answered with pongs.  A frame the RFC
    forbids (reserved bits, unknown opcode, a masked server frame, a
    control frame over 125 bytes or fragmented, a continuation with no
    message, a bad close code) closes the connection with 1002; a frame or
    message over max_message closes it with 1009, before any of it is
    stored.  Text is not checked to be UTF-8.

    Logs: one line per connection attempt, open and close, naming host,
    port and path only (a Slack URL carries a ?ticket= secret).

    Threads: every function is called on the loop's thread.  The process
    must ignore SIGPIPE (the gateway does): TLS writes go through write(2).
    =========================================================================
*/
#ifndef CG_WSCLIENT_H
#define CG_WSCLIENT_H

#include <czmq.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct wsc_t wsc_t;

typedef enum { WSC_OPEN, WSC_TEXT, WSC_CLOSED } wsc_event_t;

//  Called on the loop's thread.  WSC_OPEN: the handshake succeeded.
//  WSC_TEXT: one whole text message (fragments reassembled), data[len]
//  lent for the call, NUL-terminated.  WSC_CLOSED: the connection ended,
//  no more events follow: code is the close code the server sent (e.g.
//  1000, 4004; 1005 if its close frame had none), or 1006 when it ended
//  without a close frame (drop, connect refused, DNS, TLS or handshake
//  failure, timeouts), 1009 when a message exceeded max_message, 1002 when
//  the server broke the protocol; data (NUL-terminated) is a short reason
//  ("connection refused", "TLS: certificate verify failed (...)",
//  "upgrade answered HTTP 404", "no data for 30 s", the server's close
//  reason, ...).  The owner may call wsc_destroy from inside the callback.
typedef void (wsc_fn) (wsc_t *ws, wsc_event_t event, const char *data, size_t len,
                       int code, void *arg);

typedef struct {
    size_t max_message;      //  Largest message taken (0: 1 MiB; at most 1 GiB)
    int connect_timeout_ms;  //  DNS + TCP + TLS + upgrade (0: 10 s)
    int ping_interval_ms;    //  Send a ping this often (0: never)
    int idle_timeout_ms;     //  Nothing received for this long: closed 1006 (0: never)
    const char *user_agent;  //  May be NULL (copied)
} wsc_opts_t;

#define WSC_MAX_MESSAGE_LIMIT (1u << 30)  //  Largest max_message taken
#define WSC_MAX_HEAD 16384                //  Largest upgrade response head

//  Starts connecting to url (ws:// or wss://, host or IP literal ([v6]),
//  optional port, path and query; no user info) on loop.  opts may be
//  NULL (defaults).  Returns NULL only for a URL it cannot use (or out of
//  memory); every other failure arrives as WSC_CLOSED.  Caller owns the
//  return value and must wsc_destroy it (before the zloop goes).
wsc_t *
wsc_connect (zloop_t *loop, const char *url, const wsc_opts_t *opts, wsc_fn *fn,
             void *arg);

//  Queues one text message (masked, as a client must) and writes what the
//  socket takes now.  0, or -1 if not open (before WSC_OPEN, after
//  wsc_close, once closed) or out of memory.
int
wsc_send_text (wsc_t *ws, const char *data, size_t len);

//  Sends a close frame with code (1000, or 3000-4999) and waits (at most
//  1 s) for the server's; then WSC_CLOSED with the server's code, or 1006
//  if it did not answer.  Messages arriving meanwhile are dropped.  Before
//  the connection is open, ends the attempt: WSC_CLOSED 1006 follows (from
//  the loop, not from this call).  Does nothing once closing or closed.
void
wsc_close (wsc_t *ws, int code);

//  Drops the connection at once (no close frame, no callback) and frees
//  everything, timers and poller included.  Accepts NULL and sets *ws_p
//  to NULL.
void
wsc_destroy (wsc_t **ws_p);

//  Bytes queued and not yet written (for back-pressure).
size_t
wsc_pending (const wsc_t *ws);

//  --------------------------------------------------------------------------
//  Pure parsers (no I/O), for the client and its fuzz target

//  One frame's header, as wsc_parse_frame reads it.
typedef struct {
    bool fin;         //  Last frame of its message
    int opcode;       //  0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong
    uint64_t length;  //  Payload bytes
    size_t header;    //  Header bytes: the payload starts at buf + header
} wsc_frame_t;

//  Reads the server frame at buf[len], whose payload may be at most max
//  bytes (clamped to WSC_MAX_MESSAGE_LIMIT).  Returns the frame's size
//  (header + payload) once it is all in buf, 0 if more bytes are needed,
//  -1 if it breaks the protocol (see above: reserved bits, unknown
//  opcode, masked, a control frame over 125 bytes or not final, a 64-bit
//  length with its top bit set), -2 if its payload is over max.  The
//  verdicts -1 and -2 come as soon as the header is in buf.  out is
//  filled when the result is not 0.
int
wsc_parse_frame (const unsigned char *buf, size_t len, size_t max, wsc_frame_t *out);

//  Reads the server's answer to the upgrade at buf[len] (any bytes; not
//  NUL-terminated), accept being the Sec-WebSocket-Accept we expect.
//  Returns the head's size (the frames start after it) when the head is
//  whole and accepts the upgrade, 0 if more bytes are needed, or -1 with
//  a sentence in err (not 101, a missing or wrong header, a head over
//  WSC_MAX_HEAD bytes, an extension or subprotocol we did not offer).
int
wsc_parse_upgrade (const char *buf, size_t len, const char *accept, char *err,
                   size_t errlen);

//  Base64 of src[len] into dst (4 * ceil (len / 3) + 1 bytes, NUL-terminated).
void
wsc_base64 (const unsigned char *src, size_t len, char *dst);

//  Writes into accept the Sec-WebSocket-Accept for key (base64 of the
//  SHA-1 of key and the RFC's GUID), NUL-terminated.  0, or -1 if
//  libcrypto cannot be loaded.
int
wsc_accept_for (const char *key, char accept[29]);

#endif
