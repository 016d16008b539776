/*  =========================================================================
    sse - incremental parser for Server-Sent Events (text/event-stream)

    The run actor reads model providers' streaming replies (OpenAI's
    chat.completion.chunk lines ending in "data: [DONE]", Anthropic's named
    events) through this parser.  Bytes go in as libcurl hands them over, cut
    anywhere: in the middle of a line, between the CR and the LF of a CRLF, or
    inside a UTF-8 code point.  Whole events come out, one callback per event,
    following the parsing rules of the WHATWG HTML standard's "server-sent
    events" section:

    * lines end in CRLF, LF or CR; a UTF-8 BOM at the very start is skipped;
    * a line starting with ':' is a comment and is ignored;
    * "name:value" sets field name, with one leading space of value removed;
      a line with no colon is a field with an empty value;
    * "event" names the event, "data" appends its value and a LF to the data,
      "id", "retry" and unknown fields are ignored;
    * a blank line dispatches: nothing if the data is empty, otherwise the
      data without its last LF, under the name given or "message".  The name
      and the data then start afresh.

    Bytes pass through unchanged: the parser neither checks nor repairs
    UTF-8, so the callback gets exactly what the server sent.

    Memory: one event (its data plus the line being read) may use at most
    max_event bytes; the buffers grow geometrically up to that bound and are
    kept across events, so a long stream allocates only while it warms up.
    Work is linear in the bytes fed.

    Thread: a parser belongs to one stream and one thread at a time.  Pure
    code: no ZeroMQ, no I/O here.
    =========================================================================
*/
#ifndef CG_SSE_H
#define CG_SSE_H

#include <stddef.h>

typedef struct sse_parser_t sse_parser_t;

//  Called once per dispatched event.  event is the event name ("message"
//  when the stream gave none), NUL-terminated.  data is the joined data
//  lines, data_len bytes followed by a NUL; it may hold any byte, NUL
//  included, but never a CR, and a LF only where two data lines were joined.
//  Both are lent for the duration of the call only.  Return 0 to go on,
//  non-zero to stop parsing (sse_parser_feed then returns that value; use a
//  positive value to tell it apart from the parser's own -1).  The callback
//  must not call back into the same parser.
typedef int (sse_event_fn) (void *arg, const char *event, const char *data,
                            size_t data_len);

//  Creates a parser that calls fn (with arg) for every event and refuses any
//  event larger than max_event bytes.  Caller owns return value and must
//  destroy it.  Returns NULL when out of memory.
sse_parser_t *
sse_parser_new (size_t max_event, sse_event_fn *fn, void *arg);

//  Destroys the parser and its buffers.  Accepts NULL (or *self_p NULL) and
//  sets *self_p to NULL.
void
sse_parser_destroy (sse_parser_t **self_p);

//  Feeds len bytes of the stream, cut anywhere.  Dispatches every event the
//  bytes complete, in order.  Returns 0 when all bytes were parsed; the
//  callback's non-zero value when it asked to stop (the rest of these bytes
//  is then dropped, and the parser stands just after that event's blank
//  line, ready for the next feed); or -1 if one event (its data plus the line
//  being read) would exceed max_event bytes, or memory ran out.  After -1 the
//  parser is in an error state: every later feed returns -1 until
//  sse_parser_reset.  bytes is only read during the call.
int
sse_parser_feed (sse_parser_t *self, const char *bytes, size_t len);

//  Marks the end of the stream.  As the standard says, an event that was not
//  ended by a blank line is discarded, not dispatched.  Returns 1 if bytes
//  were buffered and undispatched (a partial line, data or an event name:
//  the stream was truncated) or if the parser is in the error state, else 0.
//  Afterwards the parser expects a new stream (a BOM may lead it again); the
//  error state, if any, stays until sse_parser_reset.
int
sse_parser_finish (sse_parser_t *self);

//  Returns the parser to its new state, error state included, ready for a
//  new stream.  Keeps the buffers' memory for reuse.
void
sse_parser_reset (sse_parser_t *self);

#endif
