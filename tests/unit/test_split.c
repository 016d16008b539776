/*  =========================================================================
    test_split - cutting a chat reply into parts under a platform limit

    Every split is checked against the promises of actors/channels/split.h:
    each part within the limit and not blank, and the text's
    non-whitespace content given back in order once the fence lines the
    splitter added are taken out.  Then the choices: where long prose
    breaks (paragraph, line, space, at least half full), a hard cut in a
    long word, a 4-byte character at the cut in UTF-16 mode, code fences
    kept whole or closed and reopened with their language, blank texts and
    invalid UTF-8.  Pure code: no ZeroMQ here.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "split.h"

#define TELEGRAM 4096
#define DISCORD 2000

//  Parts in a split.
static size_t
s_count (char **parts)
{
    size_t n = 0;
    while (parts[n])
        n++;
    return n;
}

//  True if c is whitespace as the splitter sees it.
static bool
s_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

//  Appends the non-whitespace bytes of s[len] to out at *at.
static void
s_content (const char *s, size_t len, char *out, size_t *at)
{
    for (size_t i = 0; i < len; i++)
        if (!s_space (s[i]))
            out[(*at)++] = s[i];
}

//  Checks what every split promises: at most limit units and not blank
//  for each part; and, taking out a reopening line "```<lang>\n" at the
//  start of each part but the first and a closing "\n```" at the end of
//  each but the last where the split added them (added says for which
//  gaps), the text's non-whitespace content, in order.
static void
s_check (const char *text, size_t limit, split_unit_t unit, char **parts,
         const char *lang, const bool *added)
{
    size_t len = strlen (text);
    char *want = (char *) malloc (len + 1);
    char *got = (char *) malloc (len + 1);
    cr_assert (want && got);
    size_t want_len = 0, got_len = 0;
    s_content (text, len, want, &want_len);
    size_t count = s_count (parts);
    for (size_t i = 0; i < count; i++) {
        const char *part = parts[i];
        size_t part_len = strlen (part);
        cr_assert_leq (split_units (part, part_len, unit), limit, "part %zu: %zu units",
                       i, split_units (part, part_len, unit));
        size_t blank = 0;
        while (blank < part_len && s_space (part[blank]))
            blank++;
        cr_assert_lt (blank, part_len, "part %zu is blank", i);
        if (added && i > 0 && added[i - 1]) {
            char open[64];
            snprintf (open, sizeof (open), "```%s\n", lang);
            cr_assert_eq (strncmp (part, open, strlen (open)), 0, "part %zu: no %s", i,
                          open);
            part += strlen (open);
            part_len -= strlen (open);
        }
        if (added && i + 1 < count && added[i]) {
            cr_assert_geq (part_len, 4);
            cr_assert_str_eq (part + part_len - 4, "\n```", "part %zu is not closed", i);
            part_len -= 4;
        }
        cr_assert_leq (got_len + part_len, len + 1);
        s_content (part, part_len, got, &got_len);
    }
    cr_assert_eq (got_len, want_len, "content: %zu bytes, want %zu", got_len, want_len);
    cr_assert_eq (memcmp (got, want, want_len), 0, "content differs");
    free (want);
    free (got);
}

//  Deterministic prose: sentences of words 2-9 letters long, a line break
//  every few sentences and a blank line every few lines, len bytes.
static char *
s_prose (size_t len, unsigned seed)
{
    char *text = (char *) malloc (len + 1);
    cr_assert_not_null (text);
    size_t at = 0, words = 0, sentences = 0, lines = 0;
    while (at < len) {
        seed = seed * 1103515245u + 12345u;
        size_t word = 2 + (seed >> 16) % 8;
        for (size_t i = 0; i < word && at < len; i++)
            text[at++] = (char) ('a' + (seed >> (i + 3)) % 26);
        if (at >= len)
            break;
        if (++words % 12)
            text[at++] = ' ';
        else if (++sentences % 4)
            text[at++] = ' ';
        else if (++lines % 3) {
            text[at++] = '\n';
        }
        else {
            text[at++] = '\n';
            if (at < len)
                text[at++] = '\n';
        }
    }
    text[at] = 0;
    return text;
}

Test (split, short_text_one_part)
{
    const char *text = "  Hello, world!\nHow are you?  \n\n";
    char **parts = split_text (text, strlen (text), TELEGRAM, SPLIT_UTF16);
    cr_assert_not_null (parts);
    cr_assert_eq (s_count (parts), 1);
    cr_assert_str_eq (parts[0], "  Hello, world!\nHow are you?");
    split_free (&parts);
    cr_assert_null (parts);
    split_free (&parts);
    split_free (NULL);
}

Test (split, exactly_the_limit_one_part)
{
    char text[DISCORD + 2];
    memset (text, 'x', DISCORD);
    text[DISCORD] = 0;
    char **parts = split_text (text, DISCORD, DISCORD, SPLIT_CODEPOINTS);
    cr_assert_eq (s_count (parts), 1);
    cr_assert_eq (strlen (parts[0]), DISCORD);
    split_free (&parts);
    text[DISCORD] = 'y';
    text[DISCORD + 1] = 0;
    parts = split_text (text, DISCORD + 1, DISCORD, SPLIT_CODEPOINTS);
    cr_assert_eq (s_count (parts), 2);
    cr_assert_eq (strlen (parts[0]), DISCORD);
    cr_assert_str_eq (parts[1], "y");
    split_free (&parts);
}

Test (split, long_prose_full_parts_at_boundaries)
{
    char *text = s_prose (10000, 7);
    size_t limits[] = {DISCORD, 4000, TELEGRAM, 500, 137, 16};
    for (size_t l = 0; l < sizeof (limits) / sizeof (limits[0]); l++) {
        size_t limit = limits[l];
        char **parts = split_text (text, strlen (text), limit, SPLIT_CODEPOINTS);
        cr_assert_not_null (parts);
        size_t count = s_count (parts);
        cr_assert_geq (count, 10000 / limit);
        cr_assert_leq (count, 2 * 10000 / limit + 1, "limit %zu: %zu parts", limit,
                       count);
        s_check (text, limit, SPLIT_CODEPOINTS, parts, "", NULL);
        const char *seen = text;
        for (size_t i = 0; i < count; i++) {
            size_t n = strlen (parts[i]);
            if (i + 1 < count)
                cr_assert_geq (n * 2, limit, "limit %zu: part %zu has %zu", limit, i, n);
            //  Parts are the text's own bytes, in order.
            const char *found = strstr (seen, parts[i]);
            cr_assert_not_null (found, "limit %zu: part %zu is not in the text", limit,
                                i);
            cr_assert_leq (found - seen, 2, "limit %zu: part %zu skips text", limit, i);
            if (i + 1 < count && limit >= DISCORD) {
                //  Prose has paragraph breaks often enough: each part ends
                //  at one (the text goes on with a blank line).
                cr_assert_eq (strncmp (found + n, "\n\n", 2), 0,
                              "limit %zu: part %zu does not end at a paragraph", limit,
                              i);
            }
            else if (i + 1 < count && limit > 16) {
                //  (At 16, a space may leave a part under half: cut.)
                cr_assert (s_space (found[n]), "limit %zu: part %zu cut in a word", limit,
                           i);
            }
            seen = found + n;
        }
        split_free (&parts);
    }
    free (text);
}

Test (split, line_break_preferred_to_space)
{
    //  No blank line: the parts end at line breaks, not mid-line.
    char text[4000] = "";
    for (int i = 0; i < 60; i++)
        strcat (text, "the quick brown fox jumps over the lazy dog\n");
    char **parts = split_text (text, strlen (text), 200, SPLIT_CODEPOINTS);
    size_t count = s_count (parts);
    cr_assert_gt (count, 10);
    for (size_t i = 0; i < count; i++) {
        size_t n = strlen (parts[i]);
        cr_assert_eq (strncmp (parts[i], "the quick", 9), 0, "part %zu", i);
        cr_assert_eq (strcmp (parts[i] + n - 8, "lazy dog"), 0, "part %zu", i);
        if (i + 1 < count)
            cr_assert_geq (n, 100);
    }
    s_check (text, 200, SPLIT_CODEPOINTS, parts, "", NULL);
    split_free (&parts);
}

Test (split, long_word_hard_cut)
{
    char text[200];
    memset (text, 'w', 100);
    strcpy (text + 100, " tail");
    char **parts = split_text (text, strlen (text), 40, SPLIT_CODEPOINTS);
    cr_assert_eq (s_count (parts), 3);
    cr_assert_eq (strlen (parts[0]), 40);
    cr_assert_eq (strlen (parts[1]), 40);
    cr_assert_str_eq (parts[2], "wwwwwwwwwwwwwwwwwwww tail");
    s_check (text, 40, SPLIT_CODEPOINTS, parts, "", NULL);
    split_free (&parts);
}

Test (split, short_break_not_taken)
{
    //  A space early in the part would leave it under half: hard cut.
    char text[200] = "ab ";
    memset (text + 3, 'z', 100);
    text[103] = 0;
    char **parts = split_text (text, strlen (text), 40, SPLIT_CODEPOINTS);
    cr_assert_eq (strlen (parts[0]), 40);
    cr_assert_eq (strncmp (parts[0], "ab z", 4), 0);
    s_check (text, 40, SPLIT_CODEPOINTS, parts, "", NULL);
    split_free (&parts);
}

Test (split, emoji_at_boundary_utf16)
{
    //  15 letters, then U+1F600 (4 bytes, a surrogate pair in UTF-16).
    const char *emoji = "\xF0\x9F\x98\x80";
    char text[64];
    memset (text, 'a', 15);
    strcpy (text + 15, emoji);
    strcat (text, "bcdefghij");
    cr_assert_eq (split_units (text, strlen (text), SPLIT_UTF16), 26);
    cr_assert_eq (split_units (text, strlen (text), SPLIT_CODEPOINTS), 25);

    char **parts = split_text (text, strlen (text), 16, SPLIT_UTF16);
    cr_assert_eq (s_count (parts), 2);
    cr_assert_eq (strlen (parts[0]), 15, "the pair was split");
    cr_assert_eq (strncmp (parts[1], emoji, 4), 0);
    s_check (text, 16, SPLIT_UTF16, parts, "", NULL);
    split_free (&parts);

    //  Counting code points, the emoji is one unit and fits.
    parts = split_text (text, strlen (text), 16, SPLIT_CODEPOINTS);
    cr_assert_eq (s_count (parts), 2);
    cr_assert_eq (strlen (parts[0]), 19);
    split_free (&parts);
}

Test (split, multibyte_never_cut)
{
    //  Only 3-byte characters (U+20AC), no spaces: each cut between two.
    char text[3 * 100 + 1] = "";
    for (int i = 0; i < 100; i++)
        strcat (text, "\xE2\x82\xAC");
    char **parts = split_text (text, strlen (text), 30, SPLIT_UTF16);
    cr_assert_eq (s_count (parts), 4);
    for (size_t i = 0; parts[i]; i++)
        cr_assert_eq (strlen (parts[i]) % 3, 0);
    cr_assert_eq (strlen (parts[0]), 90);
    s_check (text, 30, SPLIT_UTF16, parts, "", NULL);
    split_free (&parts);
}

Test (split, fence_that_fits_kept_whole)
{
    char text[1024];
    char *prose = s_prose (70, 3);
    snprintf (text, sizeof (text),
              "%s\n```c\nint\nmain (void)\n{\n    return 0;\n}\n```\nThat is all.",
              prose);
    free (prose);
    //  The fence (49 units) fits in 100 but not after the prose.
    char **parts = split_text (text, strlen (text), 100, SPLIT_CODEPOINTS);
    cr_assert_eq (s_count (parts), 2);
    cr_assert_eq (strchr (parts[0], '`'), NULL);
    cr_assert_str_eq (parts[1],
                      "```c\nint\nmain (void)\n{\n    return 0;\n}\n```\nThat is all.");
    s_check (text, 100, SPLIT_CODEPOINTS, parts, "", NULL);
    split_free (&parts);
}

Test (split, fence_kept_whole_even_if_part_is_short)
{
    //  The only break outside the fence leaves a short part: taken anyway.
    char text[1024] = "Look:\n```sh\n";
    for (int i = 0; i < 7; i++)
        strcat (text, "echo one two three\n");
    strcat (text, "```");
    size_t fence = strlen (text) - 6;
    cr_assert_leq (fence, 145);
    char **parts = split_text (text, strlen (text), 145, SPLIT_CODEPOINTS);
    cr_assert_eq (s_count (parts), 2);
    cr_assert_str_eq (parts[0], "Look:");
    cr_assert_str_eq (parts[1], text + 6);
    split_free (&parts);
}

Test (split, long_fence_closed_and_reopened)
{
    char text[4096] = "Here is the script:\n\n```python\n";
    for (int i = 0; i < 40; i++) {
        char line[64];
        snprintf (line, sizeof (line), "print (%d)  # line %d\n", i, i);
        strcat (text, line);
    }
    strcat (text, "```\n\nDone.");
    size_t limit = 200;
    char **parts = split_text (text, strlen (text), limit, SPLIT_UTF16);
    size_t count = s_count (parts);
    cr_assert_geq (count, 4);
    //  The first part holds the start of the block; the last one its end.
    bool added[64] = {false};
    cr_assert_lt (count, 64);
    for (size_t i = 0; i + 1 < count; i++) {
        size_t n = strlen (parts[i]);
        added[i] =
            i + 2 < count || strstr (parts[count - 1], "```python\n") == parts[count - 1];
        if (added[i]) {
            cr_assert_str_eq (parts[i] + n - 4, "\n```", "part %zu", i);
            cr_assert_eq (strncmp (parts[i + 1], "```python\nprint (", 17), 0, "part %zu",
                          i + 1);
            cr_assert_geq (split_units (parts[i], n, SPLIT_UTF16) * 2, limit);
            //  Cut at a line break: whole lines of code on each side.
            cr_assert (isdigit ((unsigned char) parts[i][n - 5]), "part %zu: %s", i,
                       parts[i]);
        }
    }
    cr_assert_eq (strncmp (parts[0], "Here is the script:\n\n```python\nprint (0)", 40),
                  0);
    cr_assert_not_null (strstr (parts[count - 1], "Done."));
    s_check (text, limit, SPLIT_UTF16, parts, "python", added);
    split_free (&parts);
}

Test (split, fence_opening_line_not_left_empty)
{
    //  A long block starting near the end of a part: the part ends before
    //  its opening line, not just after it.
    char text[4096];
    char *prose = s_prose (150, 11);
    snprintf (text, sizeof (text), "%s\n```js\n", prose);
    free (prose);
    for (int i = 0; i < 30; i++)
        strcat (text, "let x = 1;\n");
    strcat (text, "```");
    char **parts = split_text (text, strlen (text), 160, SPLIT_CODEPOINTS);
    cr_assert_geq (s_count (parts), 3);
    cr_assert_null (strchr (parts[0], '`'), "%s", parts[0]);
    cr_assert_eq (strncmp (parts[1], "```js\nlet x", 11), 0);
    for (size_t i = 1; parts[i]; i++)
        cr_assert_null (strstr (parts[i], "```js\n\n```"));
    split_free (&parts);
}

Test (split, blank_texts_give_no_parts)
{
    const char *blanks[] = {"", " ", "\n\n\n", " \t\r\n \n\v\f "};
    for (size_t i = 0; i < sizeof (blanks) / sizeof (blanks[0]); i++) {
        char **parts = split_text (blanks[i], strlen (blanks[i]), TELEGRAM, SPLIT_UTF16);
        cr_assert_not_null (parts);
        cr_assert_null (parts[0], "blank text %zu", i);
        split_free (&parts);
    }
    char **parts = split_text (NULL, 0, TELEGRAM, SPLIT_UTF16);
    cr_assert_not_null (parts);
    cr_assert_null (parts[0]);
    split_free (&parts);
    //  Stops at a NUL.
    parts = split_text ("\0abc", 4, TELEGRAM, SPLIT_UTF16);
    cr_assert_null (parts[0]);
    split_free (&parts);
}

Test (split, small_limit_raised)
{
    const char *text = "abcdefghijklmnopqrstuvwxyz";
    char **parts = split_text (text, strlen (text), 3, SPLIT_CODEPOINTS);
    cr_assert_eq (s_count (parts), 2);
    cr_assert_eq (strlen (parts[0]), 16);
    split_free (&parts);
}

Test (split, invalid_utf8_copied)
{
    //  Stray continuation bytes, a truncated sequence, an overlong form, a
    //  surrogate, bytes past U+10FFFF: one unit each, copied as they are.
    const char text[] = "\x80\xBF\xE2\x82 \xC0\xAF\xED\xA0\x80\xF5\x80\x80\x80\xFF"
                        "\xF0\x9F\x98";
    size_t len = sizeof (text) - 1;
    cr_assert_eq (split_units (text, len, SPLIT_UTF16), len);
    char **parts = split_text (text, len, 16, SPLIT_UTF16);
    cr_assert_not_null (parts);
    s_check (text, 16, SPLIT_UTF16, parts, "", NULL);
    size_t total = 0;
    for (size_t i = 0; parts[i]; i++)
        total += strlen (parts[i]);
    cr_assert_geq (total, len - 1);  //  At most the space went
    split_free (&parts);

    //  Random bytes at many limits: the promises hold.
    unsigned seed = 1;
    char noise[3000];
    for (int round = 0; round < 50; round++) {
        for (size_t i = 0; i < sizeof (noise) - 1; i++) {
            seed = seed * 1103515245u + 12345u;
            unsigned char c = (unsigned char) (seed >> 16);
            noise[i] = c ? (char) c : '`';
        }
        noise[sizeof (noise) - 1] = 0;
        size_t limit = 16 + (size_t) round * 37;
        split_unit_t unit = round % 2 ? SPLIT_UTF16 : SPLIT_CODEPOINTS;
        parts = split_text (noise, strlen (noise), limit, unit);
        cr_assert_not_null (parts);
        s_check (noise, limit, unit, parts, "", NULL);
        split_free (&parts);
    }
}

Test (split, content_preserved_mixed)
{
    //  Prose, lists, indented lines, CRLF and short fences, at several
    //  limits: what s_check promises, and no fence line was added (every
    //  block fits).
    char text[8192] = "";
    for (int i = 0; i < 20; i++) {
        char chunk[512];
        snprintf (chunk, sizeof (chunk),
                  "Step %d: do the thing.\r\n  - item one\r\n  - item two\r\n\r\n"
                  "```\nx = %d\n```\n\n\tindented line %d with tab\n",
                  i, i, i);
        strcat (text, chunk);
    }
    size_t limits[] = {16, 40, 100, 333, DISCORD};
    for (size_t l = 0; l < sizeof (limits) / sizeof (limits[0]); l++) {
        char **parts = split_text (text, strlen (text), limits[l], SPLIT_CODEPOINTS);
        cr_assert_not_null (parts);
        s_check (text, limits[l], SPLIT_CODEPOINTS, parts, "", NULL);
        size_t ticks = 0, want = 0;
        for (size_t i = 0; parts[i]; i++)
            for (const char *c = parts[i]; *c; c++)
                ticks += *c == '`';
        for (const char *c = text; *c; c++)
            want += *c == '`';
        cr_assert_eq (ticks, want, "limit %zu: fence lines added", limits[l]);
        split_free (&parts);
    }
}
