/*  =========================================================================
    buf - byte buffers with inline storage and room to prepend headers

    Part of cg_standin (see standin.c for what it answers and how).
    =========================================================================
*/
#include "standin.h"

void
buf_init (buf_t *self, size_t room)
{
    self->data = self->fixed;
    self->cap = sizeof (self->fixed);
    self->start = self->end = room;
    self->failed = false;
}

void
buf_fini (buf_t *self)
{
    if (self->data != self->fixed)
        free (self->data);
    self->data = self->fixed;
}

//  Empties the buffer, keeping room bytes in front for buf_prepend.
void
buf_reset (buf_t *self, size_t room)
{
    self->start = self->end = room;
}

static bool
s_reserve (buf_t *self, size_t more)
{
    if (self->failed)
        return false;
    if (self->end + more <= self->cap)
        return true;
    size_t cap = self->cap * 2;
    if (cap < self->end + more)
        cap = self->end + more + 4096;
    char *data = self->data == self->fixed ? malloc (cap) : realloc (self->data, cap);
    if (!data) {
        self->failed = true;
        return false;
    }
    if (self->data == self->fixed)
        memcpy (data, self->fixed, self->end);
    self->data = data;
    self->cap = cap;
    return true;
}

void
buf_append (buf_t *self, const char *bytes, size_t len)
{
    if (s_reserve (self, len)) {
        memcpy (self->data + self->end, bytes, len);
        self->end += len;
    }
}

void
buf_puts (buf_t *self, const char *text)
{
    buf_append (self, text, strlen (text));
}

void
buf_printf (buf_t *self, const char *format, ...)
{
    char line[256];
    va_list args;
    va_start (args, format);
    int len = vsnprintf (line, sizeof (line), format, args);
    va_end (args);
    assert (len >= 0 && (size_t) len < sizeof (line));
    buf_append (self, line, (size_t) len);
}

//  Appends text as a JSON string, quotes included.
void
buf_json (buf_t *self, const char *text, size_t len)
{
    buf_append (self, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        buf_append (self, text + run, i - run);
        run = i + 1;
        switch (c) {
        case '"': buf_append (self, "\\\"", 2); break;
        case '\\': buf_append (self, "\\\\", 2); break;
        case '\n': buf_append (self, "\\n", 2); break;
        case '\r': buf_append (self, "\\r", 2); break;
        case '\t': buf_append (self, "\\t", 2); break;
        default: buf_printf (self, "\\u%04x", c); break;
        }
    }
    buf_append (self, text + run, len - run);
    buf_append (self, "\"", 1);
}

void
buf_json_str (buf_t *self, const char *text)
{
    buf_json (self, text, strlen (text));
}

//  Puts bytes in front of the content; the room was kept by init or reset.
void
buf_prepend (buf_t *self, const char *bytes, size_t len)
{
    assert (len <= self->start);
    self->start -= len;
    memcpy (self->data + self->start, bytes, len);
}
