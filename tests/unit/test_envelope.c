/*  =========================================================================
    test_envelope - envelope_pack / envelope_unpack

    Round trips at the field limits, every truncation of a packed envelope,
    items of the wrong kind or count, trailing bytes, and deterministic
    pseudo-random garbage.  Pure code: no ZeroMQ here.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "envelope.h"

//  True if every byte of the envelope is zero (what a failed unpack leaves).
static bool
s_is_zeroed (const envelope_t *env)
{
    envelope_t zero;
    memset (&zero, 0, sizeof (zero));
    return memcmp (env, &zero, sizeof (zero)) == 0;
}

//  Fills s with len copies of c and terminates it.
static void
s_fill (char *s, char c, size_t len)
{
    memset (s, c, len);
    s[len] = 0;
}

//  Packs the reference envelope cut or padded to items items.
static void
s_pack_items (msgpack_sbuffer *buf, size_t items)
{
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, items);
    if (items > 0)
        msgpack_pack_str_with_body (&pk, "SYSTEM_PING", 11);
    if (items > 1)
        msgpack_pack_uint64 (&pk, 7);
    if (items > 2)
        msgpack_pack_nil (&pk);
    if (items > 3)
        msgpack_pack_int (&pk, 200);
    if (items > 4)
        msgpack_pack_int64 (&pk, 1000);
    for (size_t i = 5; i < items; i++)
        msgpack_pack_nil (&pk);
}

//  Unpacks buf and asserts it is refused and leaves the envelope zeroed.
static void
s_assert_refused (const msgpack_sbuffer *buf, const char *what)
{
    envelope_t env;
    memset (&env, 0xab, sizeof (env));
    cr_assert_eq (envelope_unpack (&env, buf->data, buf->size), -1, "%s was accepted",
                  what);
    cr_assert (s_is_zeroed (&env), "%s left the envelope dirty", what);
}

//  Packs in, unpacks it into out, and asserts both succeeded.
static void
s_round_trip (const envelope_t *in, envelope_t *out)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (envelope_pack (in, &buf), 0);
    memset (out, 0xab, sizeof (*out));
    cr_assert_eq (envelope_unpack (out, buf.data, buf.size), 0);
    msgpack_sbuffer_destroy (&buf);
}

Test (envelope, round_trip_all_fields)
{
    envelope_t in, out;
    envelope_init (&in, "SYSTEM_STATUS");
    in.corr_id = UINT64_MAX;
    snprintf (in.session_key, sizeof (in.session_key), "agent:main:user-42");
    in.status = 503;
    in.timeout_ms = INT64_MAX;
    s_round_trip (&in, &out);
    cr_assert_str_eq (out.type, "SYSTEM_STATUS");
    cr_assert_eq (out.corr_id, UINT64_MAX);
    cr_assert_str_eq (out.session_key, "agent:main:user-42");
    cr_assert_eq (out.status, 503);
    cr_assert_eq (out.timeout_ms, INT64_MAX);

    //  Both strings at their limits.
    envelope_init (&in, NULL);
    s_fill (in.type, 'T', ENVELOPE_TYPE_MAX);
    s_fill (in.session_key, 'k', ENVELOPE_KEY_MAX);
    in.corr_id = 1;
    in.status = 999;
    s_round_trip (&in, &out);
    cr_assert_eq (strlen (out.type), ENVELOPE_TYPE_MAX);
    cr_assert_eq (strlen (out.session_key), ENVELOPE_KEY_MAX);
    cr_assert_eq (memcmp (&in, &out, sizeof (in)), 0);
}

Test (envelope, nil_session_key)
{
    envelope_t in;
    envelope_init (&in, "SYSTEM_PING");
    in.corr_id = 42;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (envelope_pack (&in, &buf), 0);
    //  [fixarray 5][fixstr 11]SYSTEM_PING[42][nil][0][0]
    cr_assert_eq (buf.size, 17);
    cr_assert_eq ((unsigned char) buf.data[14], 0xc0, "empty key not nil");

    envelope_t out;
    memset (&out, 0xab, sizeof (out));
    cr_assert_eq (envelope_unpack (&out, buf.data, buf.size), 0);
    cr_assert_str_eq (out.session_key, "");
    cr_assert_eq (out.corr_id, 42);
    cr_assert_eq (out.status, 0);
    cr_assert_eq (out.timeout_ms, 0);
    msgpack_sbuffer_destroy (&buf);
}

Test (envelope, pack_refuses_out_of_limits)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    envelope_t env;
    envelope_init (&env, NULL);
    cr_assert_eq (envelope_pack (&env, &buf), -1, "empty type packed");

    //  A type filling its whole buffer has no terminator: too long.
    envelope_init (&env, NULL);
    memset (env.type, 'T', sizeof (env.type));
    cr_assert_eq (envelope_pack (&env, &buf), -1, "unterminated type packed");

    envelope_init (&env, "SYSTEM_PING");
    memset (env.session_key, 'k', sizeof (env.session_key));
    cr_assert_eq (envelope_pack (&env, &buf), -1, "unterminated key packed");
    cr_assert_eq (buf.size, 0, "a refused envelope wrote bytes");
    msgpack_sbuffer_destroy (&buf);

    //  envelope_init cuts a long type to what pack accepts.
    char longer[ENVELOPE_TYPE_MAX + 20];
    s_fill (longer, 'X', sizeof (longer) - 1);
    envelope_init (&env, longer);
    cr_assert_eq (strlen (env.type), ENVELOPE_TYPE_MAX);
}

Test (envelope, every_truncation_refused)
{
    envelope_t in;
    envelope_init (&in, "SYSTEM_STATUS");
    in.corr_id = 0x0123456789abcdefULL;
    snprintf (in.session_key, sizeof (in.session_key), "session-key");
    in.status = 200;
    in.timeout_ms = 300000;
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    cr_assert_eq (envelope_pack (&in, &buf), 0);

    for (size_t len = 0; len < buf.size; len++) {
        //  A fresh copy of exactly len bytes, so ASan sees any over-read.
        char *copy = malloc (len ? len : 1);
        memcpy (copy, buf.data, len);
        envelope_t out;
        cr_assert_eq (envelope_unpack (&out, copy, len), -1,
                      "truncation at %zu of %zu accepted", len, buf.size);
        cr_assert (s_is_zeroed (&out));
        free (copy);
    }
    envelope_t out;
    cr_assert_eq (envelope_unpack (&out, NULL, 10), -1);
    cr_assert_eq (envelope_unpack (&out, buf.data, buf.size), 0);
    msgpack_sbuffer_destroy (&buf);
}

typedef enum { K_INT, K_STR, K_NUL_STR, K_NIL, K_DOUBLE, K_BOOL } kind_t;

typedef struct {
    const char *what;  //  For the failure message
    int item;          //  Which of the five items to replace
    kind_t kind;       //  What to put there instead
    int64_t num;       //  K_INT value, or K_STR length
    bool valid;        //  True if this one is within the limits
} bad_item_t;

//  Packs the reference envelope with one item replaced as c says.
static void
s_pack_bad (msgpack_sbuffer *buf, const bad_item_t *c)
{
    static char text[ENVELOPE_KEY_MAX + 2];
    memset (text, 'x', sizeof (text));
    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 5);
    for (int item = 0; item < 5; item++) {
        if (item != c->item) {
            if (item == 0)
                msgpack_pack_str_with_body (&pk, "SYSTEM_PING", 11);
            else if (item == 2)
                msgpack_pack_nil (&pk);
            else
                msgpack_pack_uint64 (&pk, item == 3 ? 200 : 5);
        }
        else if (c->kind == K_INT)
            msgpack_pack_int64 (&pk, c->num);
        else if (c->kind == K_STR)
            msgpack_pack_str_with_body (&pk, text, (size_t) c->num);
        else if (c->kind == K_NUL_STR)
            msgpack_pack_str_with_body (&pk, "SYSTEM\0PING", 11);
        else if (c->kind == K_NIL)
            msgpack_pack_nil (&pk);
        else if (c->kind == K_DOUBLE)
            msgpack_pack_double (&pk, 1.0);
        else
            msgpack_pack_true (&pk);
    }
}

Test (envelope, wrong_item_kinds)
{
    bad_item_t cases[] = {
        {"type as integer", 0, K_INT, 1, false},
        {"type too long", 0, K_STR, ENVELOPE_TYPE_MAX + 1, false},
        {"type nil", 0, K_NIL, 0, false},
        {"NUL inside type", 0, K_NUL_STR, 0, false},
        {"corr_id negative", 1, K_INT, -1, false},
        {"corr_id as string", 1, K_STR, 1, false},
        {"corr_id as double", 1, K_DOUBLE, 0, false},
        {"key as integer", 2, K_INT, 3, false},
        {"key too long", 2, K_STR, ENVELOPE_KEY_MAX + 1, false},
        {"NUL inside key", 2, K_NUL_STR, 0, false},
        {"status 1000", 3, K_INT, 1000, false},
        {"status negative", 3, K_INT, -200, false},
        {"status as string", 3, K_STR, 3, false},
        {"timeout negative", 4, K_INT, -5, false},
        {"timeout nil", 4, K_NIL, 0, false},
        {"timeout as bool", 4, K_BOOL, 0, false},
        //  The limits themselves pass, so the cases above test the bounds.
        {"status 999", 3, K_INT, 999, true},
        {"key at its limit", 2, K_STR, ENVELOPE_KEY_MAX, true},
        {"type at its limit", 0, K_STR, ENVELOPE_TYPE_MAX, true},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        s_pack_bad (&buf, &cases[i]);
        envelope_t env;
        if (cases[i].valid)
            cr_assert_eq (envelope_unpack (&env, buf.data, buf.size), 0, "%s refused",
                          cases[i].what);
        else
            s_assert_refused (&buf, cases[i].what);
        msgpack_sbuffer_destroy (&buf);
    }
}

Test (envelope, wrong_shapes)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    s_pack_items (&buf, 5);
    envelope_t env;
    cr_assert_eq (envelope_unpack (&env, buf.data, buf.size), 0,
                  "the reference envelope is refused");
    cr_assert_eq (env.status, 200);
    cr_assert_eq (env.timeout_ms, 1000);
    msgpack_sbuffer_destroy (&buf);

    size_t counts[] = {0, 1, 4, 6};
    for (size_t i = 0; i < sizeof (counts) / sizeof (counts[0]); i++) {
        msgpack_sbuffer_init (&buf);
        s_pack_items (&buf, counts[i]);
        s_assert_refused (&buf, "an array of the wrong size");
        msgpack_sbuffer_destroy (&buf);
    }
    //  A map holding the same five items.
    msgpack_sbuffer_init (&buf);
    msgpack_packer pk;
    msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
    msgpack_pack_map (&pk, 1);
    msgpack_pack_str_with_body (&pk, "type", 4);
    msgpack_pack_str_with_body (&pk, "SYSTEM_PING", 11);
    s_assert_refused (&buf, "a map");
    msgpack_sbuffer_destroy (&buf);
}

Test (envelope, trailing_bytes_and_oversize)
{
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    s_pack_items (&buf, 5);
    msgpack_sbuffer_write (&buf, "\xc0", 1);
    s_assert_refused (&buf, "trailing nil");
    msgpack_sbuffer_destroy (&buf);

    //  Two whole envelopes back to back.
    msgpack_sbuffer_init (&buf);
    s_pack_items (&buf, 5);
    s_pack_items (&buf, 5);
    s_assert_refused (&buf, "two envelopes");
    msgpack_sbuffer_destroy (&buf);

    //  Over the 1 KiB bound, even with a valid envelope in front.
    msgpack_sbuffer_init (&buf);
    s_pack_items (&buf, 5);
    char pad[1100];
    memset (pad, 0xc0, sizeof (pad));
    msgpack_sbuffer_write (&buf, pad, sizeof (pad));
    envelope_t env;
    cr_assert_eq (envelope_unpack (&env, buf.data, buf.size), -1);
    msgpack_sbuffer_destroy (&buf);
}

Test (envelope, empty_type_refused)
{
    bad_item_t empty = {"type empty", 0, K_STR, 0, false};
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    s_pack_bad (&buf, &empty);
    s_assert_refused (&buf, empty.what);
    msgpack_sbuffer_destroy (&buf);
}

Test (envelope, huge_claimed_count_refused)
{
    //  Array32 and map32 headers claiming far more items than follow.
    const char *cases[] = {"\xdd\xff\xff\xff\xff", "\xdf\xff\xff\xff\xff",
                           "\xdd\x00\x10\x00\x00\xc0",
                           "\x95\xa1T\x01\xdd\xff\xff\xff\xff"};
    size_t sizes[] = {5, 5, 6, 9};
    for (size_t i = 0; i < 4; i++) {
        envelope_t env;
        cr_assert_eq (envelope_unpack (&env, cases[i], sizes[i]), -1);
        cr_assert (s_is_zeroed (&env));
    }
}

//  xorshift64: deterministic, so a failure reproduces.
static uint64_t
s_next (uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

Test (envelope, garbage_never_crashes)
{
    uint64_t seed = 0x9e3779b97f4a7c15ULL;
    msgpack_sbuffer valid;
    msgpack_sbuffer_init (&valid);
    envelope_t in;
    envelope_init (&in, "SYSTEM_STATUS");
    in.corr_id = 99;
    snprintf (in.session_key, sizeof (in.session_key), "k");
    cr_assert_eq (envelope_pack (&in, &valid), 0);

    int accepted = 0;
    for (int i = 0; i < 2000; i++) {
        size_t len;
        unsigned char *data;
        if (i % 2) {
            //  Pure noise, often starting with an array header.
            len = s_next (&seed) % 64;
            data = malloc (len ? len : 1);
            for (size_t k = 0; k < len; k++)
                data[k] = (unsigned char) s_next (&seed);
            if (len && i % 4 == 1)
                data[0] = 0x95;
        }
        else {
            //  A valid envelope with a few bytes flipped.
            len = valid.size;
            data = malloc (len);
            memcpy (data, valid.data, len);
            int flips = 1 + (int) (s_next (&seed) % 3);
            for (int k = 0; k < flips; k++)
                data[s_next (&seed) % len] = (unsigned char) s_next (&seed);
        }
        envelope_t out;
        int rc = envelope_unpack (&out, data, len);
        cr_assert (rc == 0 || rc == -1);
        if (rc == 0) {
            //  Whatever was accepted is within its limits and repacks.
            accepted++;
            cr_assert (out.type[0] != 0);
            cr_assert (strlen (out.type) <= ENVELOPE_TYPE_MAX);
            cr_assert (out.status >= 0 && out.status <= 999);
            cr_assert (out.timeout_ms >= 0);
            msgpack_sbuffer again;
            msgpack_sbuffer_init (&again);
            cr_assert_eq (envelope_pack (&out, &again), 0);
            msgpack_sbuffer_destroy (&again);
        }
        else
            cr_assert (s_is_zeroed (&out));
        free (data);
    }
    //  Some flips land in values and still decode: the fuzz reached past
    //  the header checks.
    cr_assert_gt (accepted, 0);
    msgpack_sbuffer_destroy (&valid);
}
