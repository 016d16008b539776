/*  =========================================================================
    split - cut a chat reply into parts under a platform's message limit

    How it works.  Each part is found by one walk from where the part starts,
    character by character, until the next character would pass the limit.
    On the way the walk notes the cut points it passed: the latest of each
    kind of whitespace run (paragraph, line, space) that leaves the part at
    least half the limit, the latest whitespace run of any size, and the
    latest hard cut (any point just after a non-whitespace character).  The
    part then ends at the strongest of those, in the order the header gives.

    Code fences are followed by a small state machine (s_fence_t) stepped at
    every position the walk visits.  When it meets an opening line, it looks
    ahead, at most a limit's worth, for the closing line to learn whether
    the block fits in one part: cut points inside a block that fits are
    never used.  A cut inside a longer block costs the 4 units of "\n```",
    and the next part starts with the reopening line.

    Nothing is allocated but the returned array and its parts: the walk
    keeps its few candidates on the stack, so a part is found in time
    linear in the bytes it walks.
    =========================================================================
*/
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "split.h"

#define S_MIN_LIMIT 16   //  Smallest limit accepted
#define S_LANG_MAX 32    //  Longest language tag repeated on reopening
#define S_CLOSE "\n```"  //  Closes a block a part ends inside
#define S_CLOSE_UNITS 4  //  Units of S_CLOSE
#define S_OPEN_UNITS 4   //  Units of a reopening line without its tag
#define S_NONE SIZE_MAX  //  No position

//  Kinds of cut, strongest first.
typedef enum { S_PARA, S_LINE, S_SPACE, S_KINDS } s_kind_t;

//  The text as the walk sees it.
typedef struct {
    const unsigned char *text;  //  The reply
    size_t end;                 //  Bytes up to the last non-whitespace one
    size_t limit;               //  Units a part may hold
    split_unit_t unit;          //  How units are counted
} s_text_t;

//  Code fence state at one position of the text.
typedef struct {
    bool in;            //  A block is open (from its opening line on)
    bool fits;          //  That block fits whole in one part
    size_t open_start;  //  Offset of its opening line
    size_t opener_end;  //  Offset of the end of its opening line
    size_t close_at;    //  Offset just past its closing backticks, or S_NONE
    size_t lang_off;    //  Offset of the tag repeated on reopening
    size_t lang_len;    //  Bytes of that tag; 0 when none is repeated
} s_fence_t;

//  One cut point the walk passed.
typedef struct {
    size_t at;        //  Offset where the part would end, or S_NONE
    size_t units;     //  Units of that part, the close line included
    s_fence_t fence;  //  Fence state at that offset
} s_cut_t;

//  Whitespace, as far as breaks are concerned (ASCII only).
static bool
s_space (unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

//  Whitespace inside a line.
static bool
s_blank (unsigned char c)
{
    return s_space (c) && c != '\n';
}

//  Returns the bytes of the character at s[i] (1 for an invalid byte) and
//  stores its units.  Only well-formed UTF-8 is taken as a sequence:
//  overlong forms, surrogates and code points past U+10FFFF are bytes.
static size_t
s_char (const unsigned char *s, size_t len, size_t i, split_unit_t unit, size_t *units)
{
    unsigned char c = s[i];
    size_t n = c >= 0xC2 && c <= 0xDF   ? 2
               : c >= 0xE0 && c <= 0xEF ? 3
               : c >= 0xF0 && c <= 0xF4 ? 4
                                        : 1;
    *units = 1;
    if (n == 1 || n > len - i)
        return 1;
    unsigned char lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80;
    unsigned char hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
    if (s[i + 1] < lo || s[i + 1] > hi)
        return 1;
    for (size_t k = 2; k < n; k++)
        if ((s[i + k] & 0xC0) != 0x80)
            return 1;
    if (n == 4 && unit == SPLIT_UTF16)
        *units = 2;
    return n;
}

//  Units of s[from, to).
static size_t
s_units (const s_text_t *t, size_t from, size_t to)
{
    size_t units = 0, u;
    while (from < to) {
        from += s_char (t->text, to, from, t->unit, &u);
        units += u;
    }
    return units;
}

//  Offset of the end of the line holding p (its '\n', or the text's end).
static size_t
s_line_end (const s_text_t *t, size_t p)
{
    const unsigned char *nl =
        (const unsigned char *) memchr (t->text + p, '\n', t->end - p);
    return nl ? (size_t) (nl - t->text) : t->end;
}

//  Backticks at p (3 or more make a fence line), 0 if fewer.
static size_t
s_ticks (const s_text_t *t, size_t p)
{
    size_t n = 0;
    while (p + n < t->end && t->text[p + n] == '`')
        n++;
    return n >= 3 ? n : 0;
}

//  True if the line at p closes a block: backticks, then only whitespace.
static bool
s_closer (const s_text_t *t, size_t p, size_t *ticks)
{
    *ticks = s_ticks (t, p);
    if (!*ticks)
        return false;
    for (size_t q = p + *ticks; q < t->end && t->text[q] != '\n'; q++)
        if (!s_blank (t->text[q]))
            return false;
    return true;
}

//  True if the block opening at p fits whole in one part: its lines up to
//  the closing backticks, or to the text's end, hold at most limit units.
//  Looks at most a limit's worth ahead.
static bool
s_block_fits (const s_text_t *t, size_t p)
{
    size_t units = 0, u, ticks;
    for (size_t q = p; q < t->end;) {
        if (q > p && t->text[q - 1] == '\n' && s_closer (t, q, &ticks))
            return ticks <= t->limit - units;
        q += s_char (t->text, t->end, q, t->unit, &u);
        units += u;
        if (units > t->limit)
            return false;
    }
    return true;
}

//  Opens a block at p if its line is an opening fence: backticks, then an
//  info string without backticks whose first word is the language tag.
static void
s_open (const s_text_t *t, s_fence_t *f, size_t p)
{
    size_t ticks = s_ticks (t, p);
    if (!ticks)
        return;
    size_t eol = s_line_end (t, p);
    if (memchr (t->text + p + ticks, '`', eol - p - ticks))
        return;  //  Inline code at the start of a line, not a fence
    size_t lang = p + ticks;
    while (lang < eol && s_blank (t->text[lang]))
        lang++;
    size_t lang_end = lang;
    while (lang_end < eol && !s_space (t->text[lang_end]))
        lang_end++;
    f->in = true;
    f->open_start = p;
    f->opener_end = eol;
    f->close_at = S_NONE;
    f->lang_off = lang;
    f->lang_len = lang_end - lang;
    if (f->lang_len > S_LANG_MAX || s_units (t, lang, lang_end) > t->limit / 8)
        f->lang_len = 0;
    f->fits = s_block_fits (t, p);
}

//  Moves the fence state to position p: called for every position in
//  order, and harmless if called again at the same one.
static void
s_step (const s_text_t *t, s_fence_t *f, size_t p)
{
    size_t ticks;
    if (f->in && p == f->close_at)
        f->in = false;
    if (p > 0 && t->text[p - 1] != '\n')
        return;  //  Fences are seen at line starts only
    if (!f->in)
        s_open (t, f, p);
    else if (p > f->open_start && f->close_at == S_NONE && s_closer (t, p, &ticks))
        f->close_at = p + ticks;
}

//  True if a part ending at p ends inside an open block (p after step).
static bool
s_inside (const s_fence_t *f, size_t p)
{
    return f->in && p > f->open_start;
}

//  Units of the line reopening the block f is in.
static size_t
s_reopen_units (const s_text_t *t, const s_fence_t *f)
{
    return S_OPEN_UNITS + s_units (t, f->lang_off, f->lang_off + f->lang_len);
}

//  Where the part after a cut at p starts: past the whitespace at p, but at
//  the start of its line (indentation kept) if a line break was passed.
//  Stores the kind of the cut.
static size_t
s_next_start (const s_text_t *t, size_t p, s_kind_t *kind)
{
    size_t q = p, newlines = 0, line = S_NONE;
    while (q < t->end && s_space (t->text[q])) {
        if (t->text[q] == '\n') {
            newlines++;
            line = q + 1;
        }
        q++;
    }
    *kind = newlines >= 2 ? S_PARA : newlines == 1 ? S_LINE : S_SPACE;
    return line != S_NONE && q < t->end ? line : q;
}

//  Notes a cut point.
static void
s_cut_set (s_cut_t *cut, size_t at, size_t units, const s_fence_t *f)
{
    cut->at = at;
    cut->units = units;
    cut->fence = *f;
}

//  Finds the end of the part starting at pos, whose first non-whitespace
//  character is at content, the fence state being f before pos.  Returns
//  the part's end and stores the fence state there and whether the part
//  reopens a block.  The end is t->end for the last part.
static size_t
s_walk (const s_text_t *t, size_t pos, size_t content, s_fence_t *f, bool *reopen)
{
    size_t half = t->limit - t->limit / 2;
    s_cut_t best[S_KINDS], any_space, hard, hard_any;
    for (int k = 0; k < S_KINDS; k++)
        best[k].at = S_NONE;
    any_space.at = hard.at = hard_any.at = S_NONE;

    s_step (t, f, pos);
    *reopen = s_inside (f, pos);
    size_t units = *reopen ? s_reopen_units (t, f) : 0;
    size_t p = pos, u;
    while (true) {
        s_step (t, f, p);
        if (p == t->end)
            return p;  //  The rest fits: the last part
        bool inside = s_inside (f, p);
        size_t cost = units + (inside ? S_CLOSE_UNITS : 0);
        if (p > content && !s_space (t->text[p - 1]) && cost <= t->limit) {
            //  Not inside a block that fits, nor on the line opening one
            //  (which would leave an empty block behind).
            bool ok = !(inside && f->fits) && !(inside && p <= f->opener_end);
            s_cut_set (&hard_any, p, cost, f);
            if (ok)
                s_cut_set (&hard, p, cost, f);
            if (ok && s_space (t->text[p])) {
                s_kind_t kind;
                size_t next = s_next_start (t, p, &kind);
                size_t ticks;
                //  Not just before the closing line either.
                if (!(inside && kind != S_SPACE && s_closer (t, next, &ticks))) {
                    s_cut_set (&any_space, p, cost, f);
                    if (cost >= half)
                        s_cut_set (&best[kind], p, cost, f);
                }
            }
        }
        size_t n = s_char (t->text, t->end, p, t->unit, &u);
        if (u > t->limit - units)
            break;
        units += u;
        p += n;
    }
    const s_cut_t *cut = &hard_any;
    if (best[S_PARA].at != S_NONE)
        cut = &best[S_PARA];
    else if (best[S_LINE].at != S_NONE)
        cut = &best[S_LINE];
    else if (best[S_SPACE].at != S_NONE)
        cut = &best[S_SPACE];
    else if (hard.at != S_NONE && hard.units >= half)
        cut = &hard;
    else if (any_space.at != S_NONE)
        cut = &any_space;
    else if (hard.at != S_NONE)
        cut = &hard;
    *f = cut->fence;
    return cut->at;
}

//  Appends one part (reopening line, text[from, to), closing line) to the
//  array.  Returns 0, or -1 if memory runs out.
static int
s_append (char ***parts, size_t *count, size_t *cap, const s_text_t *t,
          const s_fence_t *f, bool reopen, size_t from, size_t to, bool close)
{
    if (*count + 1 >= *cap) {
        size_t cap_new = *cap * 2;
        char **grown = (char **) realloc (*parts, cap_new * sizeof (char *));
        if (!grown)
            return -1;
        *parts = grown;
        *cap = cap_new;
    }
    size_t lang = reopen ? f->lang_len : 0;
    size_t size = (reopen ? 4 + lang : 0) + (to - from) + (close ? strlen (S_CLOSE) : 0);
    char *part = (char *) malloc (size + 1);
    if (!part)
        return -1;
    char *w = part;
    if (reopen) {
        memcpy (w, "```", 3);
        memcpy (w + 3, t->text + f->lang_off, lang);
        w[3 + lang] = '\n';
        w += 4 + lang;
    }
    memcpy (w, t->text + from, to - from);
    w += to - from;
    if (close) {
        memcpy (w, S_CLOSE, strlen (S_CLOSE));
        w += strlen (S_CLOSE);
    }
    *w = 0;
    (*parts)[(*count)++] = part;
    (*parts)[*count] = NULL;
    return 0;
}

//  --------------------------------------------------------------------------
//  Splits text into parts of at most limit units.

char **
split_text (const char *text, size_t len, size_t limit, split_unit_t unit)
{
    size_t count = 0, cap = 8;
    char **parts = (char **) malloc (cap * sizeof (char *));
    if (!parts)
        return NULL;
    parts[0] = NULL;
    if (!text)
        return parts;

    s_text_t t = {(const unsigned char *) text, 0, limit, unit};
    const unsigned char *nul = (const unsigned char *) memchr (text, 0, len);
    t.end = nul ? (size_t) (nul - t.text) : len;
    while (t.end > 0 && s_space (t.text[t.end - 1]))
        t.end--;
    if (t.limit < S_MIN_LIMIT)
        t.limit = S_MIN_LIMIT;

    //  Blank lines before the text go; the first line's indentation stays.
    size_t pos = 0;
    for (size_t q = 0; q < t.end && s_space (t.text[q]); q++)
        if (t.text[q] == '\n')
            pos = q + 1;

    s_fence_t fence = {false, false, 0, 0, S_NONE, 0, 0};
    while (pos < t.end) {
        //  An indentation longer than a quarter of the limit goes, so that
        //  a part always has room for a character besides its fence lines.
        size_t content = pos;
        while (s_space (t.text[content]))
            content++;
        if (content - pos > t.limit / 4) {
            for (; pos < content; pos++)
                s_step (&t, &fence, pos);
        }
        bool reopen;
        s_fence_t at_start = fence;
        s_step (&t, &at_start, pos);
        size_t cut = s_walk (&t, pos, content, &fence, &reopen);
        bool last = cut == t.end;
        bool close = !last && s_inside (&fence, cut);
        if (s_append (&parts, &count, &cap, &t, &at_start, reopen, pos, cut, close)) {
            split_free (&parts);
            return NULL;
        }
        if (last)
            break;
        s_kind_t kind;
        size_t next = s_next_start (&t, cut, &kind);
        for (size_t p = cut + 1; p < next; p++)
            s_step (&t, &fence, p);
        pos = next;
    }
    return parts;
}

//  --------------------------------------------------------------------------
//  Frees an array of parts.

void
split_free (char ***parts_p)
{
    if (!parts_p || !*parts_p)
        return;
    for (char **part = *parts_p; *part; part++)
        free (*part);
    free (*parts_p);
    *parts_p = NULL;
}

//  --------------------------------------------------------------------------
//  Counts the units of text.

size_t
split_units (const char *text, size_t len, split_unit_t unit)
{
    if (!text)
        return 0;
    const unsigned char *nul = (const unsigned char *) memchr (text, 0, len);
    s_text_t t = {(const unsigned char *) text,
                  nul ? (size_t) (nul - (const unsigned char *) text) : len, 0, unit};
    return s_units (&t, 0, t.end);
}
