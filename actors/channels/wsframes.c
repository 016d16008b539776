/*  =========================================================================
    wsframes - the open WebSocket connection's bytes, for wsclient.c: the
    write queue (masked client frames, partial writes), reading with a
    budget per wake-up, and the server's frames (fragments reassembled,
    pings answered, close codes read), bounded before anything is stored
    =========================================================================
*/
#include "wsclient_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

//  Room for n more bytes in the write queue.  0 or -1.
int
wsc_out_reserve (wsc_t *self, size_t n)
{
    if (self->out_off > 0 && self->out_off == self->out_len)
        self->out_off = self->out_len = 0;
    if (self->out_cap - self->out_len >= n)
        return 0;
    if (self->out_off > 0) {
        memmove (self->out, self->out + self->out_off, self->out_len - self->out_off);
        self->out_len -= self->out_off;
        self->out_off = 0;
        if (self->out_cap - self->out_len >= n)
            return 0;
    }
    size_t cap = self->out_cap ? self->out_cap : 4096;
    while (cap - self->out_len < n)
        cap *= 2;
    unsigned char *out = (unsigned char *) realloc (self->out, cap);
    if (!out)
        return -1;
    self->out = out;
    self->out_cap = cap;
    return 0;
}

//  Queues one masked frame.  0 or -1.
int
wsc_queue_frame (wsc_t *self, int opcode, const void *data, size_t len)
{
    if (wsc_out_reserve (self, len + 14))
        return -1;
    unsigned char *p = self->out + self->out_len;
    *p++ = (unsigned char) (0x80 | opcode);
    if (len < 126)
        *p++ = (unsigned char) (0x80 | len);
    else if (len <= 0xFFFF) {
        *p++ = 0x80 | 126;
        *p++ = (unsigned char) (len >> 8);
        *p++ = (unsigned char) len;
    }
    else {
        *p++ = 0x80 | 127;
        for (int i = 7; i >= 0; i--)
            *p++ = (unsigned char) ((uint64_t) len >> (8 * i));
    }
    unsigned char mask[4];
    if (ssl_random (mask, sizeof (mask)))
        return -1;
    memcpy (p, mask, 4);
    p += 4;
    const unsigned char *src = (const unsigned char *) data;
    for (size_t i = 0; i < len; i++)
        p[i] = src[i] ^ mask[i & 3];
    self->out_len = (size_t) (p + len - self->out);
    return 0;
}

//  Queues a close frame with code (none if 0).
int
wsc_queue_close (wsc_t *self, int code)
{
    unsigned char payload[2] = {(unsigned char) (code >> 8), (unsigned char) code};
    return wsc_queue_frame (self, 8, payload, code ? 2 : 0);
}

//  Writes what the socket takes.  0, or -1 with a reason in err.
int
wsc_flush (wsc_t *self, char *err, size_t errlen)
{
    while (self->out_off < self->out_len) {
        const unsigned char *at = self->out + self->out_off;
        size_t n = self->out_len - self->out_off;
        ssize_t rc;
        if (self->ssl) {
            rc = ssl_conn_write (self->ssl, at, n, err, errlen);
            if (rc == SSL_CONN_WANT_READ || rc == SSL_CONN_WANT_WRITE)
                return 0;
        }
        else {
            rc = send (self->fd, at, n, MSG_NOSIGNAL);
            if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                return 0;
            if (rc < 0)
                snprintf (err, errlen, "write: %s", strerror (errno));
        }
        if (rc <= 0)
            return -1;
        self->out_off += (size_t) rc;
    }
    self->out_off = self->out_len = 0;
    return 0;
}

//  Polls for what the state needs now.
void
wsc_rearm (wsc_t *self)
{
    bool pending = self->out_off < self->out_len;
    if (self->state == S_DRAIN)
        wsc_want (self, ZMQ_POLLOUT);
    else if (self->state == S_UPGRADE || self->state == S_OPEN
             || self->state == S_CLOSING)
        wsc_want (self, ZMQ_POLLIN | (pending ? ZMQ_POLLOUT : 0));
}

//  Fails the connection (1002, 1009, ...): our close frame goes out, then
//  WSC_CLOSED with code.  -1 (stop reading).
static int
s_fail (wsc_t *self, int code, const char *reason)
{
    self->end_code = code;
    snprintf (self->end_reason, sizeof (self->end_reason), "%s", reason);
    if (wsc_queue_close (self, code))
        return wsc_finish (self, code, self->end_reason);
    self->state = S_DRAIN;
    self->deadline = wsc_now () + S_CLOSE_WAIT_MS;
    self->in_len = 0;
    wsc_tick_set (self, 50);
    wsc_rearm (self);
    return -1;
}

//  --------------------------------------------------------------------------
//  Reading frames

//  Handles a close frame's payload.  -1 (the connection ends).
static int
s_on_close_frame (wsc_t *self, const unsigned char *p, size_t len)
{
    int code = 1005;
    if (len == 1)
        return s_fail (self, 1002, "close frame of one byte");
    if (len >= 2) {
        code = p[0] << 8 | p[1];
        if (code < 1000 || (code >= 1004 && code <= 1006) || (code >= 1015 && code < 3000)
            || code > 4999)
            return s_fail (self, 1002, "close frame with an invalid code");
    }
    char reason[124];
    size_t rlen = len > 2 ? len - 2 : 0;
    memcpy (reason, p + 2 * (len >= 2), rlen);
    reason[rlen] = 0;
    for (size_t i = 0; i < rlen; i++)
        if ((unsigned char) reason[i] < 0x20)
            reason[i] = ' ';
    if (self->state == S_CLOSING)  //  The answer to ours
        return wsc_finish (self, code, rlen ? reason : "closed");
    //  The server's: answer it, then report once it is written.
    self->end_code = code;
    snprintf (self->end_reason, sizeof (self->end_reason), "%s",
              rlen ? reason : "closed by the server");
    if (wsc_queue_close (self, len >= 2 ? code : 0))
        return wsc_finish (self, code, self->end_reason);
    self->state = S_DRAIN;
    self->deadline = wsc_now () + S_CLOSE_WAIT_MS;
    self->in_len = 0;
    wsc_tick_set (self, 50);
    wsc_rearm (self);
    return -1;
}

//  Handles one whole frame.  0, or -1 to stop (ended or destroyed).
static int
s_on_frame (wsc_t *self, const wsc_frame_t *f, const unsigned char *p)
{
    size_t len = (size_t) f->length;
    if (f->opcode == 8)
        return s_on_close_frame (self, p, len);
    if (f->opcode == 9) {
        if (wsc_queue_frame (self, 10, p, len))
            return wsc_finish (self, 1006, "out of memory");
        return 0;
    }
    if (f->opcode == 10)
        return 0;
    if (f->opcode == 0 && self->msg_opcode == 0)
        return s_fail (self, 1002, "continuation frame with no message");
    if (f->opcode != 0 && self->msg_opcode != 0)
        return s_fail (self, 1002, "new message inside a fragmented one");
    if (f->opcode != 0) {
        self->msg_opcode = f->opcode;
        self->msg_len = 0;
    }
    if (self->msg_opcode == 1) {
        if (len > self->max_message - self->msg_len) {
            char reason[80];
            snprintf (reason, sizeof (reason), "message over %zu bytes",
                      self->max_message);
            return s_fail (self, 1009, reason);
        }
        if (self->msg_len + len + 1 > self->msg_cap) {
            size_t cap = self->msg_cap ? self->msg_cap : 4096;
            while (cap < self->msg_len + len + 1)
                cap *= 2;
            char *msg = (char *) realloc (self->msg, cap);
            if (!msg)
                return s_fail (self, 1009, "out of memory");
            self->msg = msg;
            self->msg_cap = cap;
        }
        if (len)
            memcpy (self->msg + self->msg_len, p, len);
        self->msg_len += len;
    }
    if (!f->fin)
        return 0;
    int opcode = self->msg_opcode;
    self->msg_opcode = 0;
    if (opcode != 1 || self->state != S_OPEN)
        return 0;  //  Binary messages, and messages after wsc_close, are dropped
    self->msg[self->msg_len] = 0;
    return wsc_emit (self, WSC_TEXT, self->msg, self->msg_len, 0);
}

//  Parses the frames in the read buffer.  0, or -1 to stop.
int
wsc_parse_frames (wsc_t *self)
{
    size_t at = 0;
    int rc = 0;
    while (rc == 0 && (self->state == S_OPEN || self->state == S_CLOSING)) {
        wsc_frame_t f;
        int n = wsc_parse_frame (self->in + at, self->in_len - at, self->max_message, &f);
        if (n == 0)
            break;
        if (n == -1)
            return s_fail (self, 1002, "protocol error");
        if (n == -2) {
            char reason[80];
            snprintf (reason, sizeof (reason), "message over %zu bytes",
                      self->max_message);
            return s_fail (self, 1009, reason);
        }
        rc = s_on_frame (self, &f, self->in + at + f.header);
        if (rc == 0)
            at += (size_t) n;
    }
    if (rc == 0 && at > 0) {
        memmove (self->in, self->in + at, self->in_len - at);
        self->in_len -= at;
    }
    return rc;
}

//  Reads what the socket holds into the read buffer.  1 if bytes came,
//  0 if none, -1 when the connection ended (reported).
int
wsc_read (wsc_t *self, size_t *budget)
{
    if (self->in_cap - self->in_len < S_READ_CHUNK / 4) {
        size_t cap = self->in_cap ? self->in_cap * 2 : S_READ_CHUNK;
        while (cap - self->in_len < S_READ_CHUNK / 4)
            cap *= 2;
        unsigned char *in = (unsigned char *) realloc (self->in, cap);
        if (!in)
            return wsc_finish (self, 1006, "out of memory");
        self->in = in;
        self->in_cap = cap;
    }
    size_t room = self->in_cap - self->in_len;
    if (room > *budget)
        room = *budget > 0 ? *budget : 1;
    char err[160] = "";
    ssize_t rc;
    if (self->ssl) {
        rc = ssl_conn_read (self->ssl, self->in + self->in_len, room, err, sizeof (err));
        if (rc == SSL_CONN_WANT_READ || rc == SSL_CONN_WANT_WRITE)
            return 0;
    }
    else {
        rc = recv (self->fd, self->in + self->in_len, room, 0);
        if (rc < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (rc < 0)
            snprintf (err, sizeof (err), "read: %s", strerror (errno));
    }
    if (rc == 0)
        return wsc_finish (self, 1006,
                           self->state == S_UPGRADE
                               ? "connection closed during the upgrade"
                               : "connection dropped by the server");
    if (rc < 0)
        return wsc_finish (self, 1006, err);
    self->in_len += (size_t) rc;
    *budget -= *budget > (size_t) rc ? (size_t) rc : *budget;
    self->last_rx = wsc_now ();
    return 1;
}

//  --------------------------------------------------------------------------
//  Connecting
