/*  =========================================================================
    sse - incremental parser for Server-Sent Events

    The parser is a small state machine over three growable buffers: the
    line being read, the data of the current event and its name.  A line
    that arrives whole inside one feed is parsed straight from the caller's
    bytes; only a line cut by the end of a feed is copied, so most bytes are
    copied once, into the data buffer.  Two facts cross feed boundaries and
    live in flags: a CR just ended a line (a LF that follows is part of the
    same line ending), and how much of a leading BOM has been seen.
    =========================================================================
*/
#include "sse.h"

#include <assert.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

//  First allocation of a buffer; later ones double, up to the event limit.
#define SSE_MIN_BUFFER 256

//  The UTF-8 encoding of U+FEFF, skipped once at the start of a stream.
static const unsigned char s_bom[3] = {0xef, 0xbb, 0xbf};

typedef struct {
    char *data;   //  Owned bytes, NULL until first used
    size_t size;  //  Bytes in use
    size_t cap;   //  Bytes allocated
} s_buf_t;

struct sse_parser_t {
    size_t max_event;  //  Bound on data plus the current line
    sse_event_fn *fn;  //  Called for each dispatched event
    void *arg;         //  Passed to fn, not owned
    s_buf_t line;      //  Line cut by the end of a feed
    s_buf_t data;      //  Data lines so far, each ending in LF
    s_buf_t name;      //  Event name, NUL-terminated if size
    bool skip_lf;      //  Last line ended in CR: drop one LF
    bool at_start;     //  No byte of the stream parsed yet
    size_t bom_seen;   //  Leading BOM bytes matched so far
    bool failed;       //  Error state, until sse_parser_reset
};

//  Makes room for need bytes in buf.  Sizes double from SSE_MIN_BUFFER but
//  never pass max_event + 1 (the data and the name carry a NUL after at most
//  max_event bytes), so a capped parser cannot be made to allocate more.
static int
s_reserve (sse_parser_t *self, s_buf_t *buf, size_t need)
{
    if (need <= buf->cap)
        return 0;
    size_t limit = self->max_event < SIZE_MAX ? self->max_event + 1 : SIZE_MAX;
    assert (need <= limit);
    size_t cap = buf->cap ? buf->cap : SSE_MIN_BUFFER;
    while (cap < need)
        cap = cap > limit / 2 ? limit : cap * 2;
    if (cap > limit)
        cap = limit;
    char *grown = (char *) realloc (buf->data, cap);
    if (!grown)
        return -1;
    buf->data = grown;
    buf->cap = cap;
    return 0;
}

//  Appends len bytes to buf, which must have been checked against the limit.
static int
s_append (sse_parser_t *self, s_buf_t *buf, const char *bytes, size_t len)
{
    if (len == 0)
        return 0;
    if (s_reserve (self, buf, buf->size + len))
        return -1;
    memcpy (buf->data + buf->size, bytes, len);
    buf->size += len;
    return 0;
}

//  Forgets the event being built and the partial line, keeping the memory.
static void
s_clear (sse_parser_t *self)
{
    self->line.size = 0;
    self->data.size = 0;
    self->name.size = 0;
    self->skip_lf = false;
    self->at_start = true;
    self->bom_seen = 0;
}

//  Enters the error state; the buffered event is lost.
static int
s_fail (sse_parser_t *self)
{
    s_clear (self);
    self->failed = true;
    return -1;
}

//  True if the field name field[len] is the NUL-terminated word.
static bool
s_field_is (const char *field, size_t len, const char *word)
{
    return len == strlen (word) && memcmp (field, word, len) == 0;
}

//  Hands the finished event to the callback.  The data loses its last LF;
//  both buffers are emptied before the call so that the event is gone
//  whatever the callback returns, while their bytes stay valid through it.
static int
s_dispatch (sse_parser_t *self)
{
    if (self->data.size == 0) {
        self->name.size = 0;
        return 0;
    }
    size_t data_len = self->data.size - 1;
    self->data.data[data_len] = 0;  //  Overwrites the last LF
    const char *event = self->name.size ? self->name.data : "message";
    self->data.size = 0;
    self->name.size = 0;
    return self->fn (self->arg, event, self->data.data, data_len);
}

//  Acts on one complete line, without its line ending.  The caller has
//  checked that the data plus this line fit in max_event, which bounds what
//  a data or event line can add here.
static int
s_line (sse_parser_t *self, const char *line, size_t len)
{
    if (len == 0)
        return s_dispatch (self);
    if (line[0] == ':')
        return 0;  //  Comment, often a keep-alive

    const char *colon = (const char *) memchr (line, ':', len);
    size_t field_len = colon ? (size_t) (colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t value_len = len - (size_t) (value - line);
    if (value_len > 0 && value[0] == ' ') {
        value++;
        value_len--;
    }
    if (s_field_is (line, field_len, "data")) {
        //  value_len + 1 <= len, so the data stays within max_event and
        //  there is room for the NUL that dispatch writes over the last LF.
        if (s_append (self, &self->data, value, value_len)
            || s_append (self, &self->data, "\n", 1))
            return s_fail (self);
    }
    else if (s_field_is (line, field_len, "event")) {
        self->name.size = 0;
        if (s_reserve (self, &self->name, value_len + 1))
            return s_fail (self);
        memcpy (self->name.data, value, value_len);
        self->name.data[value_len] = 0;
        self->name.size = value_len;
    }
    //  "id" and "retry" matter to a browser that reconnects; we do not
    //  reconnect mid-reply, so they are ignored like unknown fields.
    return 0;
}

//  Parses bytes that follow the BOM check: splits them into lines and acts
//  on each.
static int
s_parse (sse_parser_t *self, const char *bytes, size_t len)
{
    size_t pos = 0;
    while (pos < len) {
        if (self->skip_lf) {
            //  The CR of a CRLF ended the previous feed, or the previous
            //  line: this LF belongs to it and is not a second (blank) line.
            self->skip_lf = false;
            if (bytes[pos] == '\n') {
                pos++;
                continue;
            }
        }
        size_t end = pos;
        while (end < len && bytes[end] != '\n' && bytes[end] != '\r')
            end++;
        size_t span = end - pos;
        //  Invariant: data.size + line.size <= max_event, so no overflow.
        if (span > self->max_event - self->data.size - self->line.size)
            return s_fail (self);
        if (end == len) {
            //  The line goes on in the next feed: keep what we have.
            if (s_append (self, &self->line, bytes + pos, span))
                return s_fail (self);
            break;
        }
        self->skip_lf = bytes[end] == '\r';
        int rc;
        if (self->line.size == 0)
            rc = s_line (self, bytes + pos, span);
        else {
            if (s_append (self, &self->line, bytes + pos, span))
                return s_fail (self);
            rc = s_line (self, self->line.data, self->line.size);
            self->line.size = 0;
        }
        pos = end + 1;
        if (rc)
            return rc;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Creates a parser; buffers are allocated on first use.

sse_parser_t *
sse_parser_new (size_t max_event, sse_event_fn *fn, void *arg)
{
    assert (fn);
    sse_parser_t *self = (sse_parser_t *) calloc (1, sizeof (sse_parser_t));
    if (!self)
        return NULL;
    self->max_event = max_event;
    self->fn = fn;
    self->arg = arg;
    s_clear (self);
    return self;
}

//  --------------------------------------------------------------------------
//  Frees the parser and its buffers and clears the caller's pointer.

void
sse_parser_destroy (sse_parser_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    sse_parser_t *self = *self_p;
    free (self->line.data);
    free (self->data.data);
    free (self->name.data);
    free (self);
    *self_p = NULL;
}

//  --------------------------------------------------------------------------
//  Parses the next bytes of the stream, dispatching each completed event.

int
sse_parser_feed (sse_parser_t *self, const char *bytes, size_t len)
{
    assert (self);
    assert (bytes || len == 0);
    if (self->failed)
        return -1;
    //  The BOM may itself be cut across feeds, so its bytes are matched one
    //  at a time and only replayed as text once they stop matching.
    while (self->at_start && len > 0) {
        if ((unsigned char) bytes[0] == s_bom[self->bom_seen]) {
            bytes++;
            len--;
            if (++self->bom_seen == sizeof (s_bom))
                self->at_start = false;
            continue;
        }
        self->at_start = false;
        size_t seen = self->bom_seen;
        self->bom_seen = 0;
        //  A partial BOM holds no CR or LF, so replaying it ends no line.
        int rc = s_parse (self, (const char *) s_bom, seen);
        if (rc)
            return rc;
    }
    return s_parse (self, bytes, len);
}

//  --------------------------------------------------------------------------
//  Ends the stream, discarding an unfinished event; 1 if there was one.

int
sse_parser_finish (sse_parser_t *self)
{
    assert (self);
    if (self->failed)
        return 1;
    int truncated = self->line.size > 0 || self->data.size > 0 || self->name.size > 0
                    || (self->at_start && self->bom_seen > 0);
    s_clear (self);
    return truncated;
}

//  --------------------------------------------------------------------------
//  Returns the parser to its new state, leaving any error state.

void
sse_parser_reset (sse_parser_t *self)
{
    assert (self);
    s_clear (self);
    self->failed = false;
}
