/*  =========================================================================
    split - cut a chat reply into parts under a platform's message limit

    Chat platforms cap one message: Telegram at 4096 UTF-16 code units,
    Discord at 2000, Slack at 4000 and WhatsApp at 4096 code points.  A
    model's reply longer than that goes out as ordered parts, each within
    the limit.  Where a part ends is chosen, strongest first, at:

    * a paragraph boundary (a blank line),
    * a line break,
    * a run of spaces or tabs,
    * a hard cut at the limit, never inside a UTF-8 sequence (so never
      between the two UTF-16 units of a 4-byte character either).

    A break point must leave the part at least half the limit, else the next
    weaker kind is tried, so a long reply gives few, full parts.  The
    whitespace at a break is dropped (a line's indentation after a line
    break is kept); everything between breaks is copied unchanged.

    Markdown code fences (a line starting with ``` and an optional language
    tag; the block ends at a line of ``` and whitespace, or at the end of
    the text) are kept whole when the block fits in one part: no break falls
    inside it.  A longer block is cut like any text, the part ending inside
    it closed with "\n```" and the next part reopening it with "```<lang>\n";
    those lines count against the limit.  (A tag longer than 32 bytes or an
    eighth of the limit is not repeated: the block reopens with "```\n".)

    So, with the added fence lines taken out, joining the parts with "\n"
    gives back the text's non-whitespace content, in order.

    Thread: pure functions, no globals, no I/O; any thread may call them.
    =========================================================================
*/
#ifndef CG_SPLIT_H
#define CG_SPLIT_H

#include <stddef.h>

//  How a platform counts its limit.
typedef enum {
    SPLIT_UTF16,       //  UTF-16 code units (Telegram): a 4-byte character is 2
    SPLIT_CODEPOINTS,  //  Code points (Discord, Slack, WhatsApp)
} split_unit_t;

//  Splits text (len bytes of UTF-8, or up to its first NUL if sooner) into
//  parts of at most limit units each; a limit under 16 is raised to 16.
//  An invalid byte counts as one unit and is copied as it is.  Returns a
//  NULL-terminated array of NUL-terminated, non-empty parts, none of them
//  whitespace only; an empty or whitespace-only text gives the array with
//  just NULL.  Returns NULL if memory runs out (nothing is then left
//  allocated).  Caller owns return value and must free it with split_free.
//  Allocates only the array and its parts.  Each part costs one walk over
//  at most a limit's worth of text (and a look as far ahead at a fence).
char **
split_text (const char *text, size_t len, size_t limit, split_unit_t unit);

//  Frees an array split_text returned, and sets *parts_p to NULL.  Accepts
//  a NULL parts_p or *parts_p.
void
split_free (char ***parts_p);

//  Units in text (len bytes, or up to its first NUL if sooner) as a
//  platform counting in unit counts them: invalid bytes count one each.
size_t
split_units (const char *text, size_t len, split_unit_t unit);

#endif
