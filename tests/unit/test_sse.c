/*  =========================================================================
    test_sse - the incremental Server-Sent Events parser

    Every stream is checked against the exact list of (event, data) pairs it
    must yield, and most streams are fed every way we can think of: whole,
    cut in two at every byte, one byte at a time and in pseudo-random chunks
    from fixed seeds.  Each way must give the same list.  Also: line endings
    (CRLF, CR, the CR|LF cut), field syntax, the BOM, the event size limit
    and its error state, a callback that stops the parser, and truncated
    streams.  Pure code: no ZeroMQ here.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"

//  Event limit for the tests that do not test the limit.
#define BIG_LIMIT (1u << 20)

//  Seeds tried by the random-chunk feeds.
#define RANDOM_SEEDS 64

typedef struct {
    char *event;      //  Owned copy of the event name
    char *data;       //  Owned copy of the data, NUL-terminated
    size_t data_len;  //  Bytes in data, without the NUL
} s_event_t;

typedef struct {
    s_event_t *items;  //  Owned array of collected events
    size_t count;      //  Events collected
    size_t cap;        //  Slots allocated in items
    size_t stop_at;    //  Count at which to stop; 0 = never
    int stop_rc;       //  What to return when stopping
} s_log_t;

typedef struct {
    const char *event;  //  Expected event name
    const char *data;   //  Expected data (no NUL inside)
} s_want_t;

//  Callback: copies the event into the log, after checking what the parser
//  promises about NUL terminators.
static int
s_collect (void *arg, const char *event, const char *data, size_t data_len)
{
    s_log_t *log = (s_log_t *) arg;
    cr_assert_not_null (event);
    cr_assert_not_null (data);
    cr_assert_eq (data[data_len], 0, "data is not NUL-terminated");
    if (log->count == log->cap) {
        log->cap = log->cap ? log->cap * 2 : 16;
        log->items = (s_event_t *) realloc (log->items, log->cap * sizeof (s_event_t));
        cr_assert_not_null (log->items);
    }
    s_event_t *item = &log->items[log->count++];
    item->event = strdup (event);
    item->data = (char *) malloc (data_len + 1);
    cr_assert_not_null (item->event);
    cr_assert_not_null (item->data);
    memcpy (item->data, data, data_len + 1);
    item->data_len = data_len;
    if (log->stop_at && log->count == log->stop_at)
        return log->stop_rc;
    return 0;
}

//  Frees the copies and empties the log.
static void
s_log_clear (s_log_t *log)
{
    for (size_t i = 0; i < log->count; i++) {
        free (log->items[i].event);
        free (log->items[i].data);
    }
    free (log->items);
    memset (log, 0, sizeof (*log));
}

//  Asserts that the log holds exactly the n events of want, in order.
static void
s_assert_events (const s_log_t *log, const s_want_t *want, size_t n, const char *how)
{
    cr_assert_eq (log->count, n, "%s: %zu events, wanted %zu", how, log->count, n);
    for (size_t i = 0; i < n; i++) {
        const s_event_t *got = &log->items[i];
        cr_assert_str_eq (got->event, want[i].event, "%s: event %zu name", how, i);
        size_t len = strlen (want[i].data);
        cr_assert_eq (got->data_len, len, "%s: event %zu is %zu bytes, not %zu", how, i,
                      got->data_len, len);
        cr_assert_eq (memcmp (got->data, want[i].data, len), 0,
                      "%s: event %zu data \"%s\", wanted \"%s\"", how, i, got->data,
                      want[i].data);
    }
}

//  Small deterministic generator (an LCG), so that failures reproduce.
static uint32_t
s_random (uint64_t *state)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t) (*state >> 33);
}

//  Feeds input cut at the n offsets in cuts (ascending), asserts that each
//  feed returns 0, then finishes.  Returns what sse_parser_finish said.
static int
s_feed_cuts (const char *input, size_t len, const size_t *cuts, size_t n, s_log_t *log)
{
    sse_parser_t *parser = sse_parser_new (BIG_LIMIT, s_collect, log);
    cr_assert_not_null (parser);
    size_t from = 0;
    for (size_t i = 0; i <= n; i++) {
        size_t to = i < n ? cuts[i] : len;
        cr_assert_eq (sse_parser_feed (parser, input + from, to - from), 0,
                      "feed [%zu, %zu) failed", from, to);
        from = to;
    }
    int truncated = sse_parser_finish (parser);
    sse_parser_destroy (&parser);
    cr_assert_null (parser);
    return truncated;
}

//  (a) The whole stream in one feed.
static void
s_check_whole (const char *input, size_t len, const s_want_t *want, size_t n,
               int truncated)
{
    s_log_t log = {0};
    cr_assert_eq (s_feed_cuts (input, len, NULL, 0, &log), truncated, "whole: finish");
    s_assert_events (&log, want, n, "whole");
    s_log_clear (&log);
}

//  (b) Two feeds, cut at every offset from 0 to len.
static void
s_check_every_cut (const char *input, size_t len, const s_want_t *want, size_t n,
                   int truncated)
{
    for (size_t cut = 0; cut <= len; cut++) {
        s_log_t log = {0};
        char how[64];
        snprintf (how, sizeof (how), "cut at %zu", cut);
        cr_assert_eq (s_feed_cuts (input, len, &cut, 1, &log), truncated, "%s: finish",
                      how);
        s_assert_events (&log, want, n, how);
        s_log_clear (&log);
    }
}

//  (c) One byte per feed.
static void
s_check_bytewise (const char *input, size_t len, const s_want_t *want, size_t n,
                  int truncated)
{
    size_t *cuts = (size_t *) malloc ((len + 1) * sizeof (size_t));
    cr_assert_not_null (cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    s_log_t log = {0};
    size_t ncuts = len ? len - 1 : 0;
    cr_assert_eq (s_feed_cuts (input, len, cuts, ncuts, &log), truncated,
                  "bytewise: finish");
    s_assert_events (&log, want, n, "bytewise");
    s_log_clear (&log);
    free (cuts);
}

//  (d) Chunks of 1 to 40 bytes, sizes drawn from each fixed seed.
static void
s_check_random (const char *input, size_t len, const s_want_t *want, size_t n,
                int truncated)
{
    size_t *cuts = (size_t *) malloc ((len + 1) * sizeof (size_t));
    cr_assert_not_null (cuts);
    for (uint64_t seed = 1; seed <= RANDOM_SEEDS; seed++) {
        uint64_t state = seed;
        size_t ncuts = 0, at = 0;
        while (1) {
            at += 1 + s_random (&state) % 40;
            if (at >= len)
                break;
            cuts[ncuts++] = at;
        }
        s_log_t log = {0};
        char how[64];
        snprintf (how, sizeof (how), "random seed %u", (unsigned) seed);
        cr_assert_eq (s_feed_cuts (input, len, cuts, ncuts, &log), truncated,
                      "%s: finish", how);
        s_assert_events (&log, want, n, how);
        s_log_clear (&log);
    }
    free (cuts);
}

//  All four ways at once, for the streams that are not the headline ones.
static void
s_check_all (const char *input, size_t len, const s_want_t *want, size_t n, int truncated)
{
    s_check_whole (input, len, want, n, truncated);
    s_check_every_cut (input, len, want, n, truncated);
    s_check_bytewise (input, len, want, n, truncated);
    s_check_random (input, len, want, n, truncated);
}

//  Same, for a NUL-free stream given as a string.
#define CHECK_ALL(input, want)                                                           \
    s_check_all ((input), strlen (input), (want), sizeof (want) / sizeof ((want)[0]), 0)

//  An OpenAI chat.completion.chunk stream, as the API sends it.
#define OPENAI_CHUNK(delta, finish)                                                      \
    "data: {\"id\":\"chatcmpl-A1b2C3\",\"object\":\"chat.completion.chunk\","            \
    "\"created\":1718000000,\"model\":\"gpt-4o-mini-2024-07-18\","                       \
    "\"system_fingerprint\":\"fp_0ba0d124f1\",\"choices\":[{\"index\":0,"                \
    "\"delta\":" delta ",\"logprobs\":null,\"finish_reason\":" finish "}]}"

//  A delta with two-, three- and four-byte UTF-8 sequences.
#define OPENAI_UTF8 "{\"content\":\" \xe2\x80\x94 caf\xc3\xa9 \xf0\x9f\x8e\x89\"}"

//  One SSE chunk a line, as the API sends them (left as written).
// clang-format off
static const char s_openai[] =
    OPENAI_CHUNK ("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}",
                  "null") "\n\n"
    OPENAI_CHUNK ("{\"content\":\"Hel\"}", "null") "\n\n"
    OPENAI_CHUNK ("{\"content\":\"lo, w\\u00f6rld\"}", "null") "\n\n"
    OPENAI_CHUNK (OPENAI_UTF8, "null") "\n\n"
    OPENAI_CHUNK ("{}", "\"stop\"") "\n\n"
    "data: [DONE]\n\n";
// clang-format on

static const s_want_t s_openai_want[] = {
    {"message",
     &OPENAI_CHUNK ("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}",
                    "null")[6]},
    {"message", &OPENAI_CHUNK ("{\"content\":\"Hel\"}", "null")[6]},
    {"message", &OPENAI_CHUNK ("{\"content\":\"lo, w\\u00f6rld\"}", "null")[6]},
    {"message", &OPENAI_CHUNK (OPENAI_UTF8, "null")[6]},
    {"message", &OPENAI_CHUNK ("{}", "\"stop\"")[6]},
    {"message", "[DONE]"},
};

#define S_OPENAI_N (sizeof (s_openai_want) / sizeof (s_openai_want[0]))

//  An Anthropic Messages stream, as the API sends it, ping included (it
//  carries data, so it is an event; dropping it is the caller's business).
#define ANTHROPIC_START                                                                  \
    "{\"type\":\"message_start\",\"message\":{"                                          \
    "\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\","                                           \
    "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],"                        \
    "\"model\":\"claude-3-5-sonnet-20241022\",\"stop_reason\":null,"                     \
    "\"stop_sequence\":null,\"usage\":{\"input_tokens\":25,"                             \
    "\"output_tokens\":1}}}"
#define ANTHROPIC_BLOCK_START                                                            \
    "{\"type\":\"content_block_start\",\"index\":0,"                                     \
    "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"
#define ANTHROPIC_PING "{\"type\": \"ping\"}"
#define ANTHROPIC_DELTA_1                                                                \
    "{\"type\":\"content_block_delta\",\"index\":0,"                                     \
    "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hello\"}}"
#define ANTHROPIC_DELTA_2                                                                \
    "{\"type\":\"content_block_delta\",\"index\":0,"                                     \
    "\"delta\":{\"type\":\"text_delta\","                                                \
    "\"text\":\" \xe4\xb8\x96\xe7\x95\x8c!\"}}"
#define ANTHROPIC_BLOCK_STOP "{\"type\":\"content_block_stop\",\"index\":0}"
#define ANTHROPIC_MESSAGE_DELTA                                                          \
    "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","               \
    "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}"
#define ANTHROPIC_STOP "{\"type\":\"message_stop\"}"

static const char s_anthropic[] =
    "event: message_start\ndata: " ANTHROPIC_START "\n\n"
    "event: content_block_start\ndata: " ANTHROPIC_BLOCK_START "\n\n"
    "event: ping\ndata: " ANTHROPIC_PING "\n\n"
    "event: content_block_delta\ndata: " ANTHROPIC_DELTA_1 "\n\n"
    "event: content_block_delta\ndata: " ANTHROPIC_DELTA_2 "\n\n"
    "event: content_block_stop\ndata: " ANTHROPIC_BLOCK_STOP "\n\n"
    "event: message_delta\ndata: " ANTHROPIC_MESSAGE_DELTA "\n\n"
    "event: message_stop\ndata: " ANTHROPIC_STOP "\n\n";

static const s_want_t s_anthropic_want[] = {
    {"message_start", ANTHROPIC_START},
    {"content_block_start", ANTHROPIC_BLOCK_START},
    {"ping", ANTHROPIC_PING},
    {"content_block_delta", ANTHROPIC_DELTA_1},
    {"content_block_delta", ANTHROPIC_DELTA_2},
    {"content_block_stop", ANTHROPIC_BLOCK_STOP},
    {"message_delta", ANTHROPIC_MESSAGE_DELTA},
    {"message_stop", ANTHROPIC_STOP},
};

#define S_ANTHROPIC_N (sizeof (s_anthropic_want) / sizeof (s_anthropic_want[0]))

Test (sse, openai_whole)
{
    s_check_whole (s_openai, strlen (s_openai), s_openai_want, S_OPENAI_N, 0);
}

Test (sse, openai_every_cut)
{
    s_check_every_cut (s_openai, strlen (s_openai), s_openai_want, S_OPENAI_N, 0);
}

Test (sse, openai_bytewise)
{
    s_check_bytewise (s_openai, strlen (s_openai), s_openai_want, S_OPENAI_N, 0);
}

Test (sse, openai_random_chunks)
{
    s_check_random (s_openai, strlen (s_openai), s_openai_want, S_OPENAI_N, 0);
}

Test (sse, anthropic_whole)
{
    s_check_whole (s_anthropic, strlen (s_anthropic), s_anthropic_want, S_ANTHROPIC_N, 0);
}

Test (sse, anthropic_every_cut)
{
    s_check_every_cut (s_anthropic, strlen (s_anthropic), s_anthropic_want, S_ANTHROPIC_N,
                       0);
}

Test (sse, anthropic_bytewise)
{
    s_check_bytewise (s_anthropic, strlen (s_anthropic), s_anthropic_want, S_ANTHROPIC_N,
                      0);
}

Test (sse, anthropic_random_chunks)
{
    s_check_random (s_anthropic, strlen (s_anthropic), s_anthropic_want, S_ANTHROPIC_N,
                    0);
}

//  Replaces every LF of src with eol; caller frees the result.
static char *
s_with_eol (const char *src, const char *eol)
{
    size_t eol_len = strlen (eol);
    char *out = (char *) malloc (strlen (src) * eol_len + 1);
    cr_assert_not_null (out);
    char *dst = out;
    for (; *src; src++)
        if (*src == '\n') {
            memcpy (dst, eol, eol_len);
            dst += eol_len;
        }
        else
            *dst++ = *src;
    *dst = 0;
    return out;
}

//  Multi-line events make a CR|LF cut read as a blank line visible: the
//  event would be split in two.
static const char s_multiline[] = "event: delta\n"
                                  "data: first line\n"
                                  "data: second line\n"
                                  "data:\n"
                                  "data: after an empty one\n"
                                  "\n"
                                  ": keep-alive\n"
                                  "data: {\"a\":1}\n"
                                  "data: {\"b\":2}\n"
                                  "\n";

static const s_want_t s_multiline_want[] = {
    {"delta", "first line\nsecond line\n\nafter an empty one"},
    {"message", "{\"a\":1}\n{\"b\":2}"},
};

Test (sse, lf_multiline_joined)
{
    CHECK_ALL (s_multiline, s_multiline_want);
}

Test (sse, crlf_every_split)
{
    char *input = s_with_eol (s_multiline, "\r\n");
    CHECK_ALL (input, s_multiline_want);
    free (input);

    input = s_with_eol (s_anthropic, "\r\n");
    CHECK_ALL (input, s_anthropic_want);
    free (input);
}

Test (sse, cr_only_every_split)
{
    char *input = s_with_eol (s_multiline, "\r");
    CHECK_ALL (input, s_multiline_want);
    free (input);

    input = s_with_eol (s_openai, "\r");
    CHECK_ALL (input, s_openai_want);
    free (input);
}

Test (sse, mixed_line_endings)
{
    static const s_want_t want[] = {
        {"message", "a\nb\nc\nd"},
        {"x", "e"},
    };
    CHECK_ALL ("data: a\r\ndata: b\rdata: c\ndata: d\r\n\r"
               "event: x\rdata: e\n\r\n",
               want);
}

//  The classic bug, spelled out: a CR ends one feed, its LF starts the next.
Test (sse, cr_lf_across_feeds_is_one_line_ending)
{
    s_log_t log = {0};
    sse_parser_t *parser = sse_parser_new (BIG_LIMIT, s_collect, &log);
    cr_assert_not_null (parser);
    cr_assert_eq (sse_parser_feed (parser, "data: a\r", 8), 0);
    cr_assert_eq (log.count, 0);
    cr_assert_eq (sse_parser_feed (parser, "\ndata: b\r", 9), 0);
    cr_assert_eq (log.count, 0, "the LF after a CR was read as a blank line");
    cr_assert_eq (sse_parser_feed (parser, "\n", 1), 0);
    cr_assert_eq (sse_parser_feed (parser, "\r", 1), 0);
    static const s_want_t want[] = {{"message", "a\nb"}};
    s_assert_events (&log, want, 1, "after CR");
    //  A CR then another CR is two line endings (a blank line).
    cr_assert_eq (sse_parser_feed (parser, "\ndata: c\r", 9), 0);
    cr_assert_eq (sse_parser_feed (parser, "\r", 1), 0);
    static const s_want_t want2[] = {{"message", "a\nb"}, {"message", "c"}};
    s_assert_events (&log, want2, 2, "CR CR");
    cr_assert_eq (sse_parser_finish (parser), 0);
    sse_parser_destroy (&parser);
    s_log_clear (&log);
}

Test (sse, comments_and_empty_pings_ignored)
{
    static const s_want_t want[] = {
        {"message", "a\nb"},
        {"done", "{}"},
    };
    CHECK_ALL (":\n\n"
               ": ping\n\n"
               ":OPENROUTER PROCESSING\n\n"
               "event: ping\n\n"
               ": comment before\n"
               "data: a\n"
               ": comment between\n"
               "data: b\n"
               ":data: not data\n"
               "\n"
               "\n\n\n"
               "event: done\n"
               "data: {}\n"
               "\n",
               want);
}

Test (sse, field_without_colon)
{
    static const s_want_t want[] = {
        {"message", ""},  {"message", "\n\nx"}, {"message", "y"},
        {"message", "z"}, {"message", "w"},
    };
    CHECK_ALL ("data\n\n"
               "data\ndata\ndata: x\n\n"
               "event\ndata: y\n\n"
               "event: foo\nevent\ndata: z\n\n"
               "bogus\nid\nretry\ndata: w\n\n",
               want);
}

Test (sse, value_spaces_and_colons)
{
    static const s_want_t want[] = {
        {"message", "x"},     {"message", " x"},     {"message", ""},
        {" spaced", "v"},     {"message", "x:y: z"}, {"message", "tail  "},
        {"message", "\ttab"},
    };
    CHECK_ALL ("data:x\n\n"
               "data:  x\n\n"
               "data: \n\n"
               "event:  spaced\ndata: v\n\n"
               "data: x:y: z\n\n"
               "data : not data\n\n"
               "DATA: not data either\n\n"
               "data: tail  \n\n"
               "data:\ttab\n\n",
               want);
}

Test (sse, id_retry_and_unknown_fields_ignored)
{
    static const s_want_t want[] = {{"message", "a"}, {"update", "b"}};
    CHECK_ALL ("id: 42\nretry: 3000\ndata: a\n\n"
               "retry: x\nid\nfoo: bar\nevent: update\nid: 7\ndata: b\n\n"
               "id: 8\n\nretry: 1\n\n",
               want);
}

Test (sse, bom_at_start_skipped)
{
    static const s_want_t want[] = {{"message", "a"}, {"e", "b"}};
    CHECK_ALL ("\xef\xbb\xbf"
               "data: a\n\nevent: e\ndata: b\n\n",
               want);
    CHECK_ALL ("\xef\xbb\xbf"
               ": comment\ndata: a\n\nevent: e\ndata: b\n\n",
               want);
    CHECK_ALL ("\xef\xbb\xbf"
               "\ndata: a\r\n\r\nevent: e\rdata: b\r\r",
               want);
}

Test (sse, bom_only_once_and_only_whole)
{
    static const s_want_t none[] = {{"", ""}};
    //  A second BOM is part of the first field's name: no "data" field.
    const char *twice = "\xef\xbb\xbf\xef\xbb\xbf"
                        "data: a\n\n";
    s_check_all (twice, strlen (twice), none, 0, 0);
    //  Part of a BOM is not a BOM: it stays in the field name.
    const char *part = "\xef"
                       "data: a\n\n";
    s_check_all (part, strlen (part), none, 0, 0);
    part = "\xef\xbb"
           "data: a\n\n";
    s_check_all (part, strlen (part), none, 0, 0);
    //  And does not swallow what follows it.
    static const s_want_t want[] = {{"message", "a"}};
    CHECK_ALL ("\xef\xbb\ndata: a\n\n", want);
    CHECK_ALL ("\xef\r\ndata: a\n\n", want);
    //  A BOM later in the stream is not special either.
    CHECK_ALL ("data: a\n\n\xef\xbb\xbf"
               "data: b\n\n",
               want);
}

Test (sse, empty_data_with_event_name_dispatches_nothing)
{
    static const s_want_t want[] = {{"message", "x"}, {"named", ""}};
    CHECK_ALL ("event: foo\n\n"
               "event: bar\nid: 1\n\n"
               "data: x\n\n"
               "event: named\ndata\n\n",
               want);
}

Test (sse, utf8_split_mid_code_point_arrives_intact)
{
    //  Two-, three- and four-byte sequences, in the data and in the name.
    static const s_want_t want[] = {
        {"d\xc3\xa9lta", "h\xc3\xa9llo w\xc3\xb6rld"},
        {"message", "\xe4\xb8\x96\xe7\x95\x8c \xe2\x80\x94 \xf0\x9f\x8e\x89\n"
                    "\xf0\x9f\x98\x80\xf0\x9f\x98\x80"},
    };
    CHECK_ALL ("event: d\xc3\xa9lta\ndata: h\xc3\xa9llo w\xc3\xb6rld\n\n"
               "data: \xe4\xb8\x96\xe7\x95\x8c "
               "\xe2\x80\x94 \xf0\x9f\x8e\x89\r\n"
               "data: \xf0\x9f\x98\x80\xf0\x9f\x98\x80\r\n\r\n",
               want);
}

Test (sse, nul_bytes_pass_through)
{
    static const char input[] = "data: a\0b\n\n";
    s_log_t log = {0};
    cr_assert_eq (s_feed_cuts (input, sizeof (input) - 1, NULL, 0, &log), 0);
    cr_assert_eq (log.count, 1);
    cr_assert_str_eq (log.items[0].event, "message");
    cr_assert_eq (log.items[0].data_len, 3);
    cr_assert_eq (memcmp (log.items[0].data, "a\0b", 4), 0);
    s_log_clear (&log);
}

Test (sse, max_event_exceeded_until_reset)
{
    s_log_t log = {0};
    sse_parser_t *parser = sse_parser_new (16, s_collect, &log);
    cr_assert_not_null (parser);

    //  A 16-byte line fits a 16-byte limit.
    cr_assert_eq (sse_parser_feed (parser, "data: 0123456789\n\n", 18), 0);
    //  Data plus the current line: 6 + 10 fits, one more byte does not.
    cr_assert_eq (sse_parser_feed (parser, "data: 01234\ndata: 0123\n\n", 24), 0);
    static const s_want_t want[] = {
        {"message", "0123456789"},
        {"message", "01234\n0123"},
    };
    s_assert_events (&log, want, 2, "within limit");
    cr_assert_eq (sse_parser_feed (parser, "data: 01234\ndata: 01234\n\n", 25), -1);

    //  Error state: everything is refused, even a small event.
    cr_assert_eq (sse_parser_feed (parser, "data: x\n\n", 9), -1);
    cr_assert_eq (sse_parser_feed (parser, "", 0), -1);
    cr_assert_eq (sse_parser_finish (parser), 1);
    cr_assert_eq (sse_parser_feed (parser, "data: x\n\n", 9), -1);
    s_assert_events (&log, want, 2, "in error");

    sse_parser_reset (parser);
    cr_assert_eq (sse_parser_feed (parser, "data: x\n\n", 9), 0);
    static const s_want_t want2[] = {
        {"message", "0123456789"},
        {"message", "01234\n0123"},
        {"message", "x"},
    };
    s_assert_events (&log, want2, 3, "after reset");

    //  The limit is per event: many small events add up to far more.
    for (int i = 0; i < 1000; i++)
        cr_assert_eq (sse_parser_feed (parser, "data: 0123456789\n\n", 18), 0);
    cr_assert_eq (log.count, 1003);
    cr_assert_eq (sse_parser_finish (parser), 0);
    sse_parser_destroy (&parser);
    s_log_clear (&log);
}

Test (sse, max_event_counts_the_line_being_read)
{
    s_log_t log = {0};
    sse_parser_t *parser = sse_parser_new (16, s_collect, &log);
    cr_assert_not_null (parser);
    //  Fed byte by byte, the 17th byte of an unfinished line is refused,
    //  before any line ending: a comment or an endless line counts too.
    const char *line = ": a comment that goes on and on";
    for (size_t i = 0; i < 16; i++)
        cr_assert_eq (sse_parser_feed (parser, line + i, 1), 0, "byte %zu", i);
    cr_assert_eq (sse_parser_feed (parser, line + 16, 1), -1);
    cr_assert_eq (sse_parser_feed (parser, "\n\n", 2), -1);

    //  After reset, a line cut across feeds counts as a whole.
    sse_parser_reset (parser);
    cr_assert_eq (sse_parser_feed (parser, "data: 01234", 11), 0);
    cr_assert_eq (sse_parser_feed (parser, "56789", 5), 0);
    cr_assert_eq (sse_parser_feed (parser, "X", 1), -1);

    //  A limit of zero only allows blank lines.
    sse_parser_destroy (&parser);
    parser = sse_parser_new (0, s_collect, &log);
    cr_assert_not_null (parser);
    cr_assert_eq (sse_parser_feed (parser, "\n\r\n\r", 4), 0);
    cr_assert_eq (sse_parser_feed (parser, "d", 1), -1);
    cr_assert_eq (log.count, 0);
    sse_parser_destroy (&parser);
    s_log_clear (&log);
}

Test (sse, callback_stop_is_returned)
{
    s_log_t log = {0};
    log.stop_at = 2;
    log.stop_rc = 7;
    sse_parser_t *parser = sse_parser_new (BIG_LIMIT, s_collect, &log);
    cr_assert_not_null (parser);
    const char *input = "data: a\n\ndata: b\r\n\r\ndata: c\n\n";
    cr_assert_eq (sse_parser_feed (parser, input, strlen (input)), 7);
    static const s_want_t want[] = {{"message", "a"}, {"message", "b"}};
    s_assert_events (&log, want, 2, "stopped");

    //  The rest of that feed was dropped; the parser goes on from the event
    //  boundary (the LF of the CRLF it stopped on ends no further line).
    cr_assert_eq (sse_parser_feed (parser, "\ndata: d\n", 9), 0);
    cr_assert_eq (sse_parser_feed (parser, "data: e\n\n", 9), 0);
    static const s_want_t want2[] = {
        {"message", "a"},
        {"message", "b"},
        {"message", "d\ne"},
    };
    s_assert_events (&log, want2, 3, "went on");
    cr_assert_eq (sse_parser_finish (parser), 0);
    sse_parser_destroy (&parser);
    s_log_clear (&log);
}

Test (sse, callback_stop_on_a_cut_line)
{
    s_log_t log = {0};
    log.stop_at = 1;
    log.stop_rc = 1;
    sse_parser_t *parser = sse_parser_new (BIG_LIMIT, s_collect, &log);
    cr_assert_not_null (parser);
    cr_assert_eq (sse_parser_feed (parser, "event: x\ndata: hel", 18), 0);
    cr_assert_eq (sse_parser_feed (parser, "lo\n", 3), 0);
    cr_assert_eq (sse_parser_feed (parser, "\ndata: never\n\n", 14), 1);
    static const s_want_t want[] = {{"x", "hello"}};
    s_assert_events (&log, want, 1, "stopped");
    cr_assert_eq (sse_parser_finish (parser), 0);
    sse_parser_destroy (&parser);
    s_log_clear (&log);
}

//  Feeds input whole, finishes, and checks both the events and the verdict.
static void
s_check_finish (const char *input, const s_want_t *want, size_t n, int truncated)
{
    s_check_all (input, strlen (input), want, n, truncated);
}

Test (sse, finish_reports_truncated_event)
{
    static const s_want_t a[] = {{"message", "a"}};
    static const s_want_t none[] = {{"", ""}};
    s_check_finish ("data: a\n\n", a, 1, 0);
    s_check_finish ("data: a\n\ndata: b", a, 1, 1);
    s_check_finish ("data: a\n\ndata: b\n", a, 1, 1);
    s_check_finish ("data: a\n\ndata: b\r", a, 1, 1);
    s_check_finish ("data: a\n\nevent: x\n", a, 1, 1);
    s_check_finish ("data: a\n\n: trailing comment\n", a, 1, 0);
    s_check_finish ("data: a\r\n\r\n", a, 1, 0);
    s_check_finish ("data: a\r\r", a, 1, 0);
    s_check_finish ("", none, 0, 0);
    s_check_finish ("\xef\xbb\xbf", none, 0, 0);
    s_check_finish ("\xef\xbb", none, 0, 1);
    s_check_finish ("data: [DONE]", none, 0, 1);
}

Test (sse, finish_starts_a_new_stream)
{
    s_log_t log = {0};
    sse_parser_t *parser = sse_parser_new (BIG_LIMIT, s_collect, &log);
    cr_assert_not_null (parser);
    cr_assert_eq (sse_parser_feed (parser, "event: x\ndata: lost", 19), 0);
    cr_assert_eq (sse_parser_finish (parser), 1);
    //  Nothing of the discarded event leaks into the next stream, which
    //  may start with its own BOM.
    cr_assert_eq (sse_parser_feed (parser,
                                   "\xef\xbb\xbf"
                                   "data: kept\n\n",
                                   15),
                  0);
    static const s_want_t want[] = {{"message", "kept"}};
    s_assert_events (&log, want, 1, "new stream");
    cr_assert_eq (sse_parser_finish (parser), 0);
    cr_assert_eq (sse_parser_finish (parser), 0);
    sse_parser_destroy (&parser);
    s_log_clear (&log);
}

Test (sse, reset_discards_partial_event)
{
    s_log_t log = {0};
    sse_parser_t *parser = sse_parser_new (BIG_LIMIT, s_collect, &log);
    cr_assert_not_null (parser);
    cr_assert_eq (sse_parser_feed (parser, "event: x\ndata: a\ndata: par", 26), 0);
    sse_parser_reset (parser);
    cr_assert_eq (sse_parser_feed (parser, "data: b\n\n", 9), 0);
    static const s_want_t want[] = {{"message", "b"}};
    s_assert_events (&log, want, 1, "after reset");
    sse_parser_destroy (&parser);
    s_log_clear (&log);
}

Test (sse, large_event_grows_buffers)
{
    //  2000 data lines of 99 bytes, and a long event name, well past the
    //  first allocation; a limit exactly the size of the biggest need.
    const size_t lines = 2000, width = 99;
    const size_t name_len = 1000;
    size_t cap = 8 + name_len + 1 + lines * (6 + width + 1) + 2;
    char *input = (char *) malloc (cap);
    char *want_data = (char *) malloc (lines * (width + 1));
    char *name = (char *) malloc (name_len + 1);
    cr_assert (input && want_data && name);
    memset (name, 'n', name_len);
    name[name_len] = 0;
    size_t at = (size_t) sprintf (input, "event: %s\n", name);
    size_t data_at = 0;
    for (size_t i = 0; i < lines; i++) {
        memcpy (input + at, "data: ", 6);
        at += 6;
        for (size_t j = 0; j < width; j++) {
            char c = (char) ('a' + (i * 7 + j) % 26);
            input[at++] = c;
            want_data[data_at++] = c;
        }
        input[at++] = '\n';
        want_data[data_at++] = '\n';
    }
    input[at++] = '\n';
    want_data[--data_at] = 0;  //  The last LF goes
    cr_assert (at <= cap);

    s_want_t want[] = {{name, want_data}};
    s_check_whole (input, at, want, 1, 0);
    s_check_random (input, at, want, 1, 0);

    //  Data before the last line, plus that line: exactly the limit.
    size_t limit = (lines - 1) * (width + 1) + 6 + width;
    s_log_t log = {0};
    sse_parser_t *parser = sse_parser_new (limit, s_collect, &log);
    cr_assert_not_null (parser);
    cr_assert_eq (sse_parser_feed (parser, input, at), 0);
    s_assert_events (&log, want, 1, "at the limit");
    sse_parser_destroy (&parser);
    s_log_clear (&log);

    parser = sse_parser_new (limit - 1, s_collect, &log);
    cr_assert_not_null (parser);
    cr_assert_eq (sse_parser_feed (parser, input, at), -1);
    cr_assert_eq (log.count, 0);
    sse_parser_destroy (&parser);

    free (input);
    free (want_data);
    free (name);
}

Test (sse, destroy_accepts_null)
{
    sse_parser_destroy (NULL);
    sse_parser_t *parser = NULL;
    sse_parser_destroy (&parser);
    cr_assert_null (parser);

    s_log_t log = {0};
    parser = sse_parser_new (BIG_LIMIT, s_collect, &log);
    cr_assert_not_null (parser);
    cr_assert_eq (sse_parser_feed (parser, NULL, 0), 0);
    cr_assert_eq (sse_parser_finish (parser), 0);
    sse_parser_destroy (&parser);
    cr_assert_null (parser);
    sse_parser_destroy (&parser);
    cr_assert_eq (log.count, 0);
}
