/*  =========================================================================
    wire - what goes to the client: heads, bodies, SSE chunks, pauses,
    hang-ups, and the knobs that bend them (stall, slow, split, garbage)

    Part of cg_standin (see standin.c for what it answers and how).
    =========================================================================
*/
#include "standin.h"
#include "common.h"

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  Waits ms milliseconds, watching the client.  Returns 0 when the time is
//  up (or the server is stopping), -1 as soon as the client hangs up.
int
wire_pause (req_t *req, int ms)
{
    if (req->fd < 0)
        req->fd = standin_socket (req->conn, req->self->port);
    int64_t deadline = s_now_ms () + ms;
    short events = POLLIN | POLLRDHUP;
    while (!atomic_load (&req->self->stopping)) {
        int64_t left = deadline - s_now_ms ();
        if (left <= 0)
            return 0;
        if (left > POLL_SLICE_MS)
            left = POLL_SLICE_MS;
        if (req->fd < 0) {
            usleep ((useconds_t) left * 1000);
            continue;
        }
        struct pollfd item = {req->fd, events, 0};
        if (poll (&item, 1, (int) left) <= 0)
            continue;
        if (item.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
            return -1;
        if (item.revents & POLLIN) {
            char byte;
            ssize_t rc = recv (req->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (rc == 0
                || (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                return -1;
            //  The client sent more (a pipelined request): from now on only
            //  a hang-up wakes us, or poll would return at once forever.
            events = POLLRDHUP;
        }
    }
    return 0;
}

//  Ends the connection from our side, after what has been written.
static void
s_hang_up (req_t *req)
{
    if (req->fd < 0)
        req->fd = standin_socket (req->conn, req->self->port);
    if (req->fd >= 0)
        shutdown (req->fd, SHUT_RDWR);
}

int
wire_write (req_t *req, const char *bytes, size_t len)
{
    if (req->failed)
        return -1;
    if (len && mg_write (req->conn, bytes, len) != (int) len) {
        req->failed = true;
        return -1;
    }
    return 0;
}

//  Formats a response head into head.  A content_length below 0 means a
//  chunked body.  Returns the head's length.
size_t
wire_format_head (req_t *req, char *head, size_t size, int status,
                  const char *content_type, long long content_length, const char *extra)
{
    //  Hooks (/_stats, /_last) have no response id and send no id header.
    char length[48], id[32] = "";
    const char *id_name = "";
    if (req->id) {
        snprintf (id, sizeof (id), "req_standin_%ld", req->id);
        id_name = req->provider == ANTHROPIC ? "request-id: " : "x-request-id: ";
    }
    if (content_length >= 0)
        snprintf (length, sizeof (length), "Content-Length: %lld\r\n", content_length);
    else
        snprintf (length, sizeof (length), "Transfer-Encoding: chunked\r\n");
    int len =
        snprintf (head, size,
                  "HTTP/1.1 %d %s\r\n"
                  "Content-Type: %s\r\n"
                  "%s"
                  "%s"
                  "%s%s%s"
                  "%s"
                  "Connection: %s\r\n"
                  "\r\n",
                  status, mg_get_response_code_text (req->conn, status), content_type,
                  length, content_length < 0 ? "Cache-Control: no-cache\r\n" : "",
                  id_name, id, req->id ? "\r\n" : "", extra ? extra : "",
                  req->keep_alive ? "keep-alive" : "close");
    assert (len > 0 && (size_t) len < size);
    return (size_t) len;
}

//  Writes bytes 1, 2 or 3 at a time, each piece its own chunk if chunked.
static int
s_write_split (req_t *req, const char *bytes, size_t len, bool chunked)
{
    size_t done = 0;
    while (done < len) {
        size_t piece = 1 + req->split_at++ % 3;
        //  Cut every multi-byte character after its first byte, so the
        //  reader always sees a character split across reads.
        if ((unsigned char) bytes[done] >= 0xc0)
            piece = 1;
        if (piece > len - done)
            piece = len - done;
        char frame[16];
        int frame_len = 0;
        if (chunked)
            frame_len = snprintf (frame, sizeof (frame), "%zx\r\n%.*s\r\n", piece,
                                  (int) piece, bytes + done);
        else {
            memcpy (frame, bytes + done, piece);
            frame_len = (int) piece;
        }
        if (wire_write (req, frame, (size_t) frame_len) != 0)
            return -1;
        done += piece;
    }
    return 0;
}

//  Sends req->out as the whole body of a response, headers and body in one
//  write.  Returns status.
static int
s_respond (req_t *req, int status, const char *content_type, const char *extra)
{
    buf_t *out = &req->out;
    if (out->failed) {
        buf_fini (out);
        buf_init (out, HEAD_ROOM);
        buf_puts (out, "{\"error\":\"out of memory\"}");
        status = 500;
    }
    char head[HEAD_ROOM];
    size_t head_len = wire_format_head (req, head, sizeof (head), status, content_type,
                                        (long long) (out->end - out->start), extra);
    if (req->knob == KNOB_SPLIT) {
        if (wire_write (req, head, head_len) == 0)
            s_write_split (req, out->data + out->start, out->end - out->start, false);
        return status;
    }
    buf_prepend (out, head, head_len);
    wire_write (req, out->data + out->start, out->end - out->start);
    return status;
}

int
wire_respond_json (req_t *req, int status, const char *extra)
{
    return s_respond (req, status, "application/json", extra);
}

int
wire_reply_json (req_t *req)
{
    buf_t *out = &req->out;
    if (req->knob == KNOB_STALL) {
        char head[HEAD_ROOM];
        size_t head_len =
            wire_format_head (req, head, sizeof (head), 200, "application/json",
                              (long long) (out->end - out->start), NULL);
        if (wire_write (req, head, head_len) == 0)
            wire_stall (req);
        return 200;
    }
    return wire_respond_json (req, 200, NULL);
}

//  Prepares the head of a 200 SSE response; the first event carries it.
void
wire_stream_start (req_t *req)
{
    req->head_len = wire_format_head (req, req->head, sizeof (req->head), 200,
                                      "text/event-stream; charset=utf-8", -1, NULL);
}

void
wire_event_begin (req_t *req)
{
    buf_reset (&req->out, HEAD_ROOM + CHUNK_ROOM);
}

//  Sends the event in req->out as one chunk, with the head if it is still
//  pending, in one write.
int
wire_event_end (req_t *req)
{
    buf_t *out = &req->out;
    if (req->failed)
        return -1;
    if (out->failed) {
        req->failed = true;
        return -1;
    }
    if (req->knob == KNOB_SPLIT) {
        if (req->head_len && wire_write (req, req->head, req->head_len) != 0)
            return -1;
        req->head_len = 0;
        return s_write_split (req, out->data + out->start, out->end - out->start, true);
    }
    char line[CHUNK_ROOM];
    int line_len = snprintf (line, sizeof (line), "%zx\r\n", out->end - out->start);
    buf_prepend (out, line, (size_t) line_len);
    buf_append (out, "\r\n", 2);
    if (req->head_len) {
        buf_prepend (out, req->head, req->head_len);
        req->head_len = 0;
    }
    return wire_write (req, out->data + out->start, out->end - out->start);
}

//  Ends the chunked body.
int
wire_stream_end (req_t *req)
{
    return wire_write (req, "0\r\n\r\n", 5);
}

//  Holds the connection open without writing until the client leaves
//  (aborted) or STALL_MS pass (then we hang up).
void
wire_stall (req_t *req)
{
    if (wire_pause (req, STALL_MS) != 0)
        req->failed = true;
    else
        s_hang_up (req);
}

//  Runs after each delta: "stall" stops here, "slow" waits here.  Returns
//  -1 when the stream must not go on.
int
wire_delta_done (req_t *req)
{
    if (req->failed)
        return -1;
    if (req->knob == KNOB_STALL) {
        wire_stall (req);
        return -1;
    }
    if (req->knob == KNOB_SLOW && wire_pause (req, SLOW_DELTA_MS) != 0) {
        req->failed = true;
        return -1;
    }
    return 0;
}

//  "garbage": a 200 whose body no parser accepts.  A stream is cut after
//  one broken event, with Connection: close.
int
wire_garbage (req_t *req)
{
    buf_t *out = &req->out;
    buf_reset (out, HEAD_ROOM);
    if (!req->stream) {
        buf_puts (out, "{\"id\":\"garbage\",\"choices\":[{not json");
        return wire_respond_json (req, 200, NULL);
    }
    if (req->provider == ANTHROPIC)
        buf_puts (out, "event: message_start\n");
    buf_puts (out, "data: {not json\n\n");
    req->fd = standin_socket (req->conn, req->self->port);
    if (req->fd < 0) {
        //  Cannot hang up: send the broken event in a well-framed stream.
        wire_stream_start (req);
        wire_event_begin (req);
        buf_puts (out, "data: {not json\n\n");
        if (wire_event_end (req) == 0)
            wire_stream_end (req);
        return 200;
    }
    req->keep_alive = false;
    char head[HEAD_ROOM];
    int len = snprintf (head, sizeof (head),
                        "HTTP/1.1 200 OK\r\n"
                        "Content-Type: text/event-stream; charset=utf-8\r\n"
                        "Cache-Control: no-cache\r\n"
                        "Connection: close\r\n\r\n");
    buf_prepend (out, head, (size_t) len);
    wire_write (req, out->data + out->start, out->end - out->start);
    s_hang_up (req);
    return 200;
}
