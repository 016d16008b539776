/*  =========================================================================
    test_msg - message tables and validation, the mp helpers, mpjson

    msg_lookup over every declared message, msg_validate's verdicts, the
    bounded mp reader and its typed look-ups, and the JSON <-> msgpack
    mapping including its depth limit.  Pure code: no ZeroMQ here.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "mp.h"
#include "mpjson.h"
#include "msg.h"
#include "msg_names.h"

#include <signal.h>

//  Decodes w's bytes into r; asserts that succeeded.
static void
s_read (mp_reader_t *r, const mp_writer_t *w)
{
    cr_assert_eq (mp_reader_init (r, w->buf.data, w->buf.size), 0);
}

//  ---- msg tables ------------------------------------------------------------

//  Our own reading of messages.def, to check msg_all () against it.
#define CG_MSG(type, service, doc) {#type, service},
#define CG_EVENT(type, name, doc) {#type, MSG_SERVICE_EVENT},
#define CG_FRAME(type, name, doc) {#type, MSG_SERVICE_FRAME},
#define CG_METHOD(type, name, doc) {#type, MSG_SERVICE_METHOD},
#define CG_FIELD(name, kind, req, doc)
#define CG_MSG_END
static const struct {
    const char *type;     //  Declared type
    const char *service;  //  Declared service
} s_declared[] = {
#include "messages.def"
};
#undef CG_MSG
#undef CG_EVENT
#undef CG_FRAME
#undef CG_METHOD
#undef CG_FIELD
#undef CG_MSG_END
#define DECLARED (sizeof (s_declared) / sizeof (s_declared[0]))

Test (msg, lookup_every_declared_message)
{
    for (size_t i = 0; i < DECLARED; i++) {
        const msg_def_t *def = msg_lookup (s_declared[i].type);
        cr_assert_not_null (def, "%s not found", s_declared[i].type);
        cr_assert_str_eq (def->service, s_declared[i].service);
    }
    const msg_def_t *const *all = msg_all ();
    cr_assert_not_null (all);
    size_t count = 0;
    for (const msg_def_t *const *d = all; *d; d++, count++) {
        cr_assert_eq (msg_lookup ((*d)->type), *d, "lookup of %s", (*d)->type);
        cr_assert ((*d)->doc && *(*d)->doc, "%s has no doc", (*d)->type);
        cr_assert_not_null ((*d)->fields);
        for (const msg_field_t *f = (*d)->fields; f->name; f++)
            cr_assert (f->kind <= MSG_KIND_ANY && f->doc);
        //  No type is declared twice.
        for (const msg_def_t *const *e = d + 1; *e; e++)
            cr_assert_str_neq ((*d)->type, (*e)->type);
    }
    cr_assert_eq (count, DECLARED);
    cr_assert_null (msg_lookup ("NO_SUCH_MESSAGE"));
    cr_assert_null (msg_lookup ("system_ping"));
    cr_assert_null (msg_lookup (""));
    cr_assert_null (msg_lookup (NULL));
}

//  Validates w's bytes as type, then finishes w.  Returns the verdict, with
//  the sentence in err (128 bytes) and the field in param (32 bytes).
static int
s_validate (const char *type, mp_writer_t *w, char *err, char *param)
{
    mp_reader_t r;
    s_read (&r, w);
    strcpy (param, "stale");
    err[0] = 0;
    int rc = msg_validate (type, r.root, err, 128, param, 32);
    cr_assert (rc == 0 || err[0], "refused without a sentence");
    mp_reader_fini (&r);
    mp_writer_fini (w);
    return rc;
}

Test (msg, validate_missing_required)
{
    char err[128], param[32];
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 1);
    mp_kv_str (&w, "message", "it broke");
    cr_assert_eq (s_validate ("ERROR", &w, err, param), -1);
    cr_assert_str_eq (param, "code");
    cr_assert (strstr (err, "code"), "err '%s' does not name the field", err);

    //  A nil value counts as missing.
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 2);
    mp_kv_str (&w, "code", "internal_error");
    mp_kv_nil (&w, "message");
    cr_assert_eq (s_validate ("ERROR", &w, err, param), -1);
    cr_assert_str_eq (param, "message");
}

Test (msg, validate_wrong_kind)
{
    char err[128], param[32];
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 3);
    mp_kv_str (&w, "code", "internal_error");
    mp_kv_str (&w, "message", "m");
    mp_kv_int (&w, "param", 7);  //  Optional, but if present a string
    cr_assert_eq (s_validate ("ERROR", &w, err, param), -1);
    cr_assert_str_eq (param, "param");
    cr_assert (strstr (err, "string"), "err '%s'", err);

    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 1);
    mp_kv_str (&w, "services", "system");  //  Must be a map
    cr_assert_eq (s_validate ("MMI_SERVICES_OK", &w, err, param), -1);
    cr_assert_str_eq (param, "services");
}

Test (msg, validate_unknown_type_and_non_map)
{
    char err[128] = "", param[32] = "x";
    cr_assert_eq (
        msg_validate ("NO_SUCH", NULL, err, sizeof (err), param, sizeof (param)), -1);
    cr_assert_neq (err[0], 0);
    cr_assert_str_eq (param, "");
    cr_assert_eq (msg_validate (NULL, NULL, err, sizeof (err), NULL, 0), -1);

    msgpack_object arr = {.type = MSGPACK_OBJECT_ARRAY};
    msgpack_object num = {.type = MSGPACK_OBJECT_POSITIVE_INTEGER};
    err[0] = 0;
    cr_assert_eq (
        msg_validate ("SYSTEM_PING", &arr, err, sizeof (err), param, sizeof (param)), -1);
    cr_assert (strstr (err, "not a map"), "err '%s'", err);
    cr_assert_eq (msg_validate ("SYSTEM_PING", &num, err, sizeof (err), NULL, 0), -1);
}

Test (msg, validate_nil_body_is_empty_map)
{
    char err[128], param[32];
    msgpack_object nil = {.type = MSGPACK_OBJECT_NIL};
    cr_assert_eq (
        msg_validate ("SYSTEM_PING", NULL, err, sizeof (err), param, sizeof (param)), 0);
    cr_assert_eq (
        msg_validate ("SYSTEM_STATUS", &nil, err, sizeof (err), param, sizeof (param)),
        0);
    //  Empty still lacks what is required.
    cr_assert_eq (
        msg_validate ("SYSTEM_STATUS_OK", NULL, err, sizeof (err), param, sizeof (param)),
        -1);
    cr_assert_str_eq (param, "status");
    cr_assert_eq (msg_validate ("ERROR", &nil, err, sizeof (err), param, sizeof (param)),
                  -1);
    cr_assert_str_eq (param, "code");
}

Test (msg, validate_status_ok_body)
{
    char err[128], param[32];
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 6);
    mp_kv_str (&w, "status", "ok");
    mp_kv_str (&w, "version", "0.1.0");
    mp_kv_int (&w, "uptime", 12);
    mp_key (&w, "channels");
    msgpack_pack_map (&w.pk, 1);
    mp_kv_str (&w, "telegram", "disconnected");
    mp_kv_str (&w, "worker", "host:1");
    mp_kv_bool (&w, "extra", true);  //  Unknown fields are ignored
    cr_assert_eq (s_validate ("SYSTEM_STATUS_OK", &w, err, param), 0, "refused: %s", err);
    cr_assert_str_eq (param, "");

    //  Each required field's absence is caught.
    const char *required[] = {"status", "version", "uptime", "channels", "worker"};
    for (int skip = 0; skip < 5; skip++) {
        mp_writer_init (&w);
        msgpack_pack_map (&w.pk, 4);
        for (int i = 0; i < 5; i++)
            if (i != skip) {
                mp_key (&w, required[i]);
                if (i == 2)
                    msgpack_pack_int (&w.pk, 1);
                else if (i == 3)
                    msgpack_pack_map (&w.pk, 0);
                else
                    mp_put_str (&w, "x");
            }
        cr_assert_eq (s_validate ("SYSTEM_STATUS_OK", &w, err, param), -1);
        cr_assert_str_eq (param, required[skip]);
    }
}

//  ---- mp reader -------------------------------------------------------------

Test (mp, reader_refuses_bad_input)
{
    struct {
        const char *bytes;
        size_t size;
    } bad[] = {
        {"", 0},           //  Empty
        {NULL, 4},         //  No data
        {"\x80\xc0", 2},   //  An empty map and one byte more
        {"\x81\xa1k", 3},  //  One pair with only its key
        {"\xd9\x10"
         "abc",
         5},          //  str8 longer than what follows
        {"\xc1", 1},  //  Never used
    };
    mp_reader_t r;
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        cr_assert_eq (mp_reader_init (&r, bad[i].bytes, bad[i].size), -1,
                      "case %zu accepted", i);
        cr_assert_null (r.root);
        mp_reader_fini (&r);
    }
    cr_assert_eq (mp_reader_init (&r, "\x81\xa1k\x01", 4), 0);
    cr_assert_not_null (r.root);
    cr_assert_eq (r.root->type, MSGPACK_OBJECT_MAP);
    mp_reader_fini (&r);
    cr_assert_null (r.root);
}

Test (mp, reader_huge_claimed_count)
{
    mp_reader_t r;
    cr_assert_eq (mp_reader_init (&r, "\xdd\xff\xff\xff\xff", 5), -1);
    mp_reader_fini (&r);
    cr_assert_eq (mp_reader_init (&r, "\x81\xa1k\xdf\xff\xff\xff\xf0", 8), -1);
    mp_reader_fini (&r);
}

Test (mp, reader_every_truncation)
{
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 3);
    mp_kv_str (&w, "name", "clawgate");
    mp_kv_int (&w, "n", -123456789);
    mp_key (&w, "list");
    msgpack_pack_array (&w.pk, 2);
    msgpack_pack_double (&w.pk, 1.5);
    msgpack_pack_true (&w.pk);
    for (size_t len = 1; len < w.buf.size; len++) {
        char *copy = malloc (len);
        memcpy (copy, w.buf.data, len);
        mp_reader_t r;
        cr_assert_eq (mp_reader_init (&r, copy, len), -1, "cut at %zu", len);
        mp_reader_fini (&r);
        free (copy);
    }
    mp_writer_fini (&w);
}

Test (mp, typed_lookups)
{
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 6);
    mp_kv_str (&w, "s", "héllo");
    mp_kv_int (&w, "neg", -5);
    mp_kv_int (&w, "pos", 7);
    mp_kv_bool (&w, "b", false);
    mp_kv_nil (&w, "nil");
    mp_key (&w, "huge");
    msgpack_pack_uint64 (&w.pk, UINT64_MAX);
    mp_reader_t r;
    s_read (&r, &w);
    const msgpack_object *m = r.root;

    size_t len = 0;
    const char *s = mp_get_str (m, "s", &len);
    cr_assert_not_null (s);
    cr_assert_eq (len, strlen ("héllo"));
    cr_assert_eq (memcmp (s, "héllo", len), 0);
    cr_assert_null (mp_get_str (m, "neg", &len));
    cr_assert_null (mp_get_str (m, "nil", &len));
    cr_assert_null (mp_get_str (m, "absent", &len));
    cr_assert_null (mp_get_str (m, "S", &len), "keys are case-sensitive");

    int64_t n = 0;
    cr_assert (mp_get_int (m, "neg", &n));
    cr_assert_eq (n, -5);
    cr_assert (mp_get_int (m, "pos", &n));
    cr_assert_eq (n, 7);
    n = 99;
    cr_assert_not (mp_get_int (m, "s", &n));
    cr_assert_not (mp_get_int (m, "b", &n));
    cr_assert_not (mp_get_int (m, "huge", &n), "2^64-1 fits no int64");
    cr_assert_eq (n, 99, "a refused look-up wrote its output");

    bool b = true;
    cr_assert (mp_get_bool (m, "b", &b));
    cr_assert_not (b);
    cr_assert_not (mp_get_bool (m, "pos", &b));
    cr_assert_not (mp_get_bool (m, "nil", &b));

    char small[4], big[16];
    cr_assert_eq (mp_copy_str (m, "s", small, sizeof (small)), -1);
    cr_assert_eq (mp_copy_str (m, "s", big, sizeof (big)), 0);
    cr_assert_str_eq (big, "héllo");
    cr_assert_eq (mp_copy_str (m, "pos", big, sizeof (big)), -1);

    //  Look-ups in something that is not a map.
    cr_assert_null (mp_get (mp_get (m, "s"), "s"));
    cr_assert_null (mp_get (NULL, "s"));
    mp_reader_fini (&r);
    mp_writer_fini (&w);
}

//  ---- mpjson ----------------------------------------------------------------

Test (mpjson, round_trip_nested)
{
    const char *text =
        "{\"name\":\"Grüße ✓ 🦀\",\"n\":42,\"neg\":-17,\"big\":-9007199254740991,"
        "\"pi\":3.25,\"tiny\":-0.5,\"yes\":true,\"no\":false,\"nothing\":null,"
        "\"list\":[1,\"two\",[3,{\"four\":4}],[],{}],"
        "\"deep\":{\"a\":{\"b\":{\"c\":[null,true,-1.75]}}}}";
    cJSON *in = cJSON_Parse (text);
    cr_assert_not_null (in);
    mp_writer_t w;
    mp_writer_init (&w);
    cr_assert_eq (mpjson_pack (&w.pk, in), 0);

    mp_reader_t r;
    s_read (&r, &w);
    //  Integral numbers travel as integers, others as doubles.
    cr_assert_eq (mp_get (r.root, "n")->type, MSGPACK_OBJECT_POSITIVE_INTEGER);
    cr_assert_eq (mp_get (r.root, "neg")->type, MSGPACK_OBJECT_NEGATIVE_INTEGER);
    cr_assert_eq (mp_get (r.root, "pi")->type, MSGPACK_OBJECT_FLOAT64);
    cr_assert_eq (mp_get (r.root, "nothing")->type, MSGPACK_OBJECT_NIL);
    size_t len;
    const char *name = mp_get_str (r.root, "name", &len);
    cr_assert (name && len == strlen ("Grüße ✓ 🦀"));

    cJSON *out = mpjson_to_json (r.root);
    cr_assert_not_null (out);
    char *a = cJSON_PrintUnformatted (in);
    char *b = cJSON_PrintUnformatted (out);
    cr_assert (cJSON_Compare (in, out, true), "%s\n!=\n%s", a, b);
    cr_assert_str_eq (a, b);
    cJSON_free (a);
    cJSON_free (b);
    cJSON_Delete (out);
    cJSON_Delete (in);
    mp_reader_fini (&r);
    mp_writer_fini (&w);
}

Test (mpjson, round_trip_empty_strings)
{
    cJSON *in = cJSON_Parse ("{\"\":\"\",\"k\":[\"\",\"\"]}");
    cr_assert_not_null (in);
    mp_writer_t w;
    mp_writer_init (&w);
    cr_assert_eq (mpjson_pack (&w.pk, in), 0);
    mp_reader_t r;
    s_read (&r, &w);
    cJSON *out = mpjson_to_json (r.root);
    cr_assert_not_null (out);
    cr_assert (cJSON_Compare (in, out, true));
    cJSON_Delete (out);
    cJSON_Delete (in);
    mp_reader_fini (&r);
    mp_writer_fini (&w);
}

//  Builds depth nested one-element arrays around a null.
static cJSON *
s_deep_json (int depth)
{
    cJSON *json = cJSON_CreateNull ();
    for (int i = 0; i < depth; i++) {
        cJSON *arr = cJSON_CreateArray ();
        cJSON_AddItemToArray (arr, json);
        json = arr;
    }
    return json;
}

Test (mpjson, pack_refuses_deep_nesting)
{
    mp_writer_t w;
    mp_writer_init (&w);
    cJSON *ok = s_deep_json (MPJSON_MAX_DEPTH);
    cr_assert_eq (mpjson_pack (&w.pk, ok), 0);
    cJSON_Delete (ok);
    mp_writer_fini (&w);

    int depths[] = {MPJSON_MAX_DEPTH + 1, 2 * MPJSON_MAX_DEPTH, 500};
    for (size_t i = 0; i < sizeof (depths) / sizeof (depths[0]); i++) {
        mp_writer_init (&w);
        cJSON *deep = s_deep_json (depths[i]);
        cr_assert_eq (mpjson_pack (&w.pk, deep), -1, "depth %d", depths[i]);
        cJSON_Delete (deep);
        mp_writer_fini (&w);
    }
}

Test (mpjson, to_json_and_write_refuse_deep_nesting)
{
    //  msgpack-c's own decoder stops at 32 levels, so the tree is built in
    //  memory: obj[i] is a one-element array holding obj[i + 1].
    enum { DEEP = 3 * MPJSON_MAX_DEPTH };
    msgpack_object obj[DEEP + 1];
    for (int i = 0; i < DEEP; i++) {
        obj[i].type = MSGPACK_OBJECT_ARRAY;
        obj[i].via.array.size = 1;
        obj[i].via.array.ptr = &obj[i + 1];
    }
    obj[DEEP].type = MSGPACK_OBJECT_NIL;

    cJSON *json = mpjson_to_json (&obj[DEEP - MPJSON_MAX_DEPTH]);
    cr_assert_not_null (json, "depth %d refused", MPJSON_MAX_DEPTH);
    cJSON_Delete (json);
    cr_assert_null (mpjson_to_json (&obj[DEEP - MPJSON_MAX_DEPTH - 1]));
    cr_assert_null (mpjson_to_json (&obj[0]));

    //  The direct writer draws the same line.
    char *text = mpjson_write (&obj[DEEP - MPJSON_MAX_DEPTH], NULL);
    cr_assert_not_null (text);
    free (text);
    cr_assert_null (mpjson_write (&obj[DEEP - MPJSON_MAX_DEPTH - 1], NULL));
    cr_assert_null (mpjson_write (&obj[0], NULL));
}

//  mpjson_write gives the text the cJSON path gives (the HTTP replies
//  used that path before), for every kind of value and every escape.
Test (mpjson, write_matches_the_cjson_text)
{
    const char *texts[] = {
        ("{\"name\":\"Grüße ✓ 🦀\",\"n\":42,\"neg\":-17,\"pi\":3.25,"
         "\"tiny\":-0.5,\"third\":0.3333333333333333,\"e\":1e+300,"
         "\"ts\":1795500153669,\"yes\":true,\"no\":false,\"nothing\":null,"
         "\"list\":[1,\"two\",[3,{\"four\":4}],[],{}],"
         "\"deep\":{\"a\":{\"b\":{\"c\":[null,true,-1.75]}}}}"),
        ("{\"esc\":\"quote \\\" backslash \\\\ slash / nl \\n cr \\r tab \\t"
         " bs \\b ff \\f bell \\u0007 unit \\u001f del \\u007f\"}"),
        "{\"\":\"\",\"k\":[\"\",\"\"],\"\\\"key\\\"\":0}",
        "{}",
    };
    for (size_t i = 0; i < sizeof (texts) / sizeof (texts[0]); i++) {
        cJSON *in = cJSON_Parse (texts[i]);
        cr_assert_not_null (in, "%s", texts[i]);
        mp_writer_t w;
        mp_writer_init (&w);
        cr_assert_eq (mpjson_pack (&w.pk, in), 0);
        mp_reader_t r;
        s_read (&r, &w);
        cJSON *tree = mpjson_to_json (r.root);
        char *expected = cJSON_PrintUnformatted (tree);
        size_t len = 0;
        char *got = mpjson_write (r.root, &len);
        cr_assert_not_null (got);
        cr_assert_eq (len, strlen (got));
        cr_assert_str_eq (got, expected);
        free (got);
        cJSON_free (expected);
        cJSON_Delete (tree);
        cJSON_Delete (in);
        mp_reader_fini (&r);
        mp_writer_fini (&w);
    }
}

//  Every byte that needs an escape, and bytes next to those that do not,
//  at every position of strings of 1 to 40 bytes, come out escaped as
//  JSON wants (so a faster scan of plain runs cannot skip one).
Test (mpjson, write_escapes_at_every_position)
{
    static const unsigned char probes[] = {'"',  '\\', '\n', 0x01, 0x1f, 0x00, 0x20, 0x21,
                                           0x5b, 0x5d, 0x7f, 0x80, 0xc3, 0xff, '/'};
    for (size_t len = 1; len <= 40; len++)
        for (size_t at = 0; at < len; at++)
            for (size_t k = 0; k < sizeof (probes); k++) {
                char text[48];
                memset (text, 'a', sizeof (text));
                text[at] = (char) probes[k];
                mp_writer_t w;
                mp_writer_init (&w);
                msgpack_pack_str_with_body (&w.pk, text, len);
                mp_reader_t r;
                s_read (&r, &w);
                char *got = mpjson_write (r.root, NULL);
                //  The expected text, escaped byte by byte.
                char want[512];
                size_t n = 0;
                want[n++] = '"';
                for (size_t i = 0; i < len; i++) {
                    unsigned char c = (unsigned char) text[i];
                    const char *e = c == '"'    ? "\\\""
                                    : c == '\\' ? "\\\\"
                                    : c == '\n' ? "\\n"
                                                : NULL;
                    if (e)
                        n += (size_t) snprintf (want + n, sizeof (want) - n, "%s", e);
                    else if (c < 0x20)
                        n +=
                            (size_t) snprintf (want + n, sizeof (want) - n, "\\u%04x", c);
                    else
                        want[n++] = (char) c;
                }
                want[n++] = '"';
                want[n] = 0;
                cr_assert_not_null (got);
                cr_assert_eq (memcmp (got, want, n + 1), 0,
                              "len %zu, byte 0x%02x at %zu: %s", len, probes[k], at, got);
                free (got);
                mp_reader_fini (&r);
                mp_writer_fini (&w);
            }
}

//  Where the cJSON path lost data, mpjson_write does not: integers past
//  2^53 print exactly, a NUL inside a string is escaped, not an end.
Test (mpjson, write_is_exact_where_cjson_was_not)
{
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 4);
    mp_kv_int (&w, "big", 9007199254740993LL);
    mp_key (&w, "max");
    msgpack_pack_uint64 (&w.pk, UINT64_MAX);
    mp_key (&w, "nul");
    msgpack_pack_str_with_body (&w.pk, "a\0b", 3);
    mp_key (&w, "bin");
    msgpack_pack_bin_with_body (&w.pk, "xy", 2);
    mp_reader_t r;
    s_read (&r, &w);
    char *got = mpjson_write (r.root, NULL);
    cr_assert_str_eq (got, "{\"big\":9007199254740993,\"max\":18446744073709551615,"
                           "\"nul\":\"a\\u0000b\",\"bin\":null}");
    free (got);
    mp_reader_fini (&r);
    mp_writer_fini (&w);
}

Test (mp, check_bounds_claims_and_depth)
{
    //  Well-formed: scalars, a map, nested arrays at the depth limit.
    cr_assert_eq (mp_check ("\xc0", 1), 0);
    cr_assert_eq (mp_check ("\x81\xa1k\x01", 4), 0);
    unsigned char deep[MP_MAX_DEPTH + 2];
    memset (deep, 0x91, sizeof (deep));
    deep[MP_MAX_DEPTH] = 0xc0;
    cr_assert_eq (mp_check (deep, MP_MAX_DEPTH + 1), 0);
    //  One level more is refused.
    memset (deep, 0x91, sizeof (deep));
    deep[MP_MAX_DEPTH + 1] = 0xc0;
    cr_assert_eq (mp_check (deep, MP_MAX_DEPTH + 2), -1);
    //  Counts larger than the bytes left, alone or summed over levels.
    cr_assert_eq (mp_check ("\xdc\x00\x03\x01\x02", 5), -1);
    cr_assert_eq (mp_check ("\x92\x92\x01\x02", 4), -1);
    cr_assert_eq (mp_check ("\xdf\xff\xff\xff\xff", 5), -1);
    //  Lengths past the end, trailing bytes, the never-used 0xc1.
    cr_assert_eq (mp_check ("\xd9\x05"
                            "ab",
                            4),
                  -1);
    cr_assert_eq (mp_check ("\xcb\x00", 2), -1);
    cr_assert_eq (mp_check ("\x01\x02", 2), -1);
    cr_assert_eq (mp_check ("\xc1", 1), -1);
    cr_assert_eq (mp_check ("", 0), -1);
}

//  ---- Names made from messages.def -----------------------------------------

Test (msg, generated_names_follow_the_declarations)
{
    cr_assert_str_eq (MT_RUN_RESULT, "RUN_RESULT");
    cr_assert_str_eq (MS_SESSION_GET, "session.read");
    cr_assert_str_eq (MS_RUN_START, "run");
    cr_assert_str_eq (MN_CHAT_DELTA, "chat.delta");
    cr_assert_str_eq (MN_WS_CHAT_RUN, "chat.run");
    cr_assert_str_eq (MK_sessionKey, "sessionKey");
    const msg_def_t *d = msg_lookup (MT_CHAT_DONE);
    cr_assert_not_null (d);
    cr_assert_str_eq (d->service, MSG_SERVICE_EVENT);
    cr_assert_eq (msg_lookup_name (MSG_SERVICE_EVENT, MN_CHAT_DONE), d);
    cr_assert_eq (msg_lookup_name (MSG_SERVICE_METHOD, MN_WS_SYSTEM_STATUS),
                  msg_lookup (MT_WS_SYSTEM_STATUS));
    cr_assert_null (msg_lookup_name (MSG_SERVICE_EVENT, "chat.run"));
    cr_assert_null (msg_lookup_name (NULL, "chat.done"));
}

//  ---- Counted maps -----------------------------------------------------------

Test (mp, counted_maps_count_what_was_packed)
{
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, "a", "x");
    mp_key (&w, "nested");
    mp_map_begin (&w);
    for (int i = 0; i < 20; i++) {
        char k[8];
        snprintf (k, sizeof (k), "k%d", i);
        mp_kv_int (&w, k, i);
    }
    mp_map_end (&w);
    mp_key (&w, "counted by hand");
    msgpack_pack_map (&w.pk, 1);
    mp_kv_bool (&w, "inner", true);
    mp_key (&w, "empty");
    mp_map_begin (&w);
    mp_map_end (&w);
    mp_key (&w, "list");
    msgpack_pack_array (&w.pk, 2);
    msgpack_pack_nil (&w.pk);
    mp_put_str (&w, "y");
    mp_map_end (&w);
    mp_reader_t r;
    s_read (&r, &w);
    cr_assert_eq (r.root->type, MSGPACK_OBJECT_MAP);
    cr_assert_eq (r.root->via.map.size, 5);
    const msgpack_object *nested = mp_get (r.root, "nested");
    cr_assert_eq (nested->via.map.size, 20);
    int64_t v;
    cr_assert (mp_get_int (nested, "k19", &v) && v == 19);
    cr_assert_eq (mp_get (r.root, "counted by hand")->via.map.size, 1);
    cr_assert_eq (mp_get (r.root, "empty")->via.map.size, 0);
    cr_assert_eq (mp_get (r.root, "list")->via.array.size, 2);
    mp_reader_fini (&r);
    mp_writer_fini (&w);
}

//  ---- Outgoing checks --------------------------------------------------------

static int
s_check (const char *type, mp_writer_t *w, char *err)
{
    err[0] = 0;
    int rc = msg_check_out (msg_lookup (type), w->buf.data, w->buf.size, err, 256);
    cr_assert (rc == 0 || err[0], "refused without a sentence");
    mp_writer_fini (w);
    return rc;
}

Test (msg, check_out_is_strict)
{
    char err[256];
    mp_writer_t w;
    //  As declared, nil allowed where the kind is ANY.
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_key (&w, MK_sessions);
    msgpack_pack_array (&w.pk, 0);
    mp_kv_nil (&w, MK_nextCursor);
    mp_map_end (&w);
    cr_assert_eq (s_check (MT_SESSION_LIST_OK, &w, err), 0, "%s", err);
    //  An undeclared field.
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_key (&w, MK_sessions);
    msgpack_pack_array (&w.pk, 0);
    mp_kv_nil (&w, MK_nextCursor);
    mp_kv_int (&w, "sessionz", 1);
    mp_map_end (&w);
    cr_assert_eq (s_check (MT_SESSION_LIST_OK, &w, err), -1);
    cr_assert (strstr (err, "undeclared field 'sessionz'"), "%s", err);
    //  A required field missing, and one of the wrong kind.
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_nil (&w, MK_nextCursor);
    mp_map_end (&w);
    cr_assert_eq (s_check (MT_SESSION_LIST_OK, &w, err), -1);
    cr_assert (strstr (err, "'sessions' is required"), "%s", err);
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_sessions, "no");
    mp_kv_nil (&w, MK_nextCursor);
    mp_map_end (&w);
    cr_assert_eq (s_check (MT_SESSION_LIST_OK, &w, err), -1);
    cr_assert (strstr (err, "must be an array"), "%s", err);
    //  Nil where a required field is not ANY.
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_nil (&w, MK_blocked);
    mp_kv_int (&w, MK_retryAfterMs, 0);
    mp_map_end (&w);
    cr_assert_eq (s_check (MT_RATELIMIT_AUTH_FAIL_OK, &w, err), -1);
    //  A miscounted map is not one well-formed object.
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 3);
    mp_kv_bool (&w, MK_blocked, false);
    mp_kv_int (&w, MK_retryAfterMs, 0);
    cr_assert_eq (s_check (MT_RATELIMIT_AUTH_FAIL_OK, &w, err), -1);
    //  An empty body is an empty map.
    cr_assert_eq (msg_check_out (msg_lookup (MT_SYSTEM_PONG), NULL, 0, err, 256), 0);
    cr_assert_eq (msg_check_out (msg_lookup (MT_SESSION_DELETED), NULL, 0, err, 256), -1);
}

Test (msg, check_json_out_frames)
{
    char err[256];
    const msg_def_t *hb = msg_lookup_name (MSG_SERVICE_FRAME, MN_WS_HEARTBEAT);
    cJSON *j = cJSON_Parse ("{\"type\":\"heartbeat\",\"data\":{\"timestamp\":1,"
                            "\"status\":\"ok\"}}");
    cr_assert_eq (msg_check_json_out (hb, j, err, sizeof (err)), 0, "%s", err);
    cJSON_AddNumberToObject (j, "extra", 1);
    cr_assert_eq (msg_check_json_out (hb, j, err, sizeof (err)), -1);
    cr_assert (strstr (err, "'extra'"), "%s", err);
    cJSON_Delete (j);
    const msg_def_t *res = msg_lookup_name (MSG_SERVICE_FRAME, MN_WS_RESPONSE);
    j = cJSON_Parse ("{\"type\":\"response\",\"id\":null,\"result\":[]}");
    cr_assert_eq (msg_check_json_out (res, j, err, sizeof (err)), -1);
    cr_assert (strstr (err, "'result' must be an object"), "%s", err);
    cJSON_Delete (j);
}

#if MSG_CHECKED
//  In checked builds, a body that breaks its declaration stops the sender.
Test (msg, checked_build_aborts_on_a_broken_reply, .signal = SIGABRT)
{
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_code, "internal_error");
    mp_map_end (&w);  //  ERROR without its message
    msg_check_send (MT_ERROR, NULL, w.buf.data, w.buf.size);
}

Test (msg, checked_build_aborts_on_a_broken_event, .signal = SIGABRT)
{
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_sessionKey, "s");
    mp_kv_str (&w, MK_runId, "r");
    mp_kv_int (&w, MK_seq, 1);
    mp_kv_int (&w, MK_delta, 5);  //  delta is text
    mp_map_end (&w);
    msg_check_event ("s/chat.delta", w.buf.data, w.buf.size);
}

Test (msg, checked_build_aborts_on_the_wrong_service, .signal = SIGABRT)
{
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_sessionKey, "s");
    mp_map_end (&w);
    msg_check_send (MT_SESSION_GET, "session", w.buf.data, w.buf.size);
}

Test (msg, checked_build_aborts_on_a_broken_frame, .signal = SIGABRT)
{
    static const char text[] = "{\"type\":\"connected\"}";
    msg_check_frame (text, strlen (text));
}
#endif

Test (msg, checked_sends_pass_what_is_declared)
{
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_code, "internal_error");
    mp_kv_str (&w, MK_message, "It broke.");
    mp_map_end (&w);
    msg_check_send (MT_ERROR, NULL, w.buf.data, w.buf.size);
    mp_writer_fini (&w);
    static const char text[] = "{\"type\":\"chat.delta\",\"data\":{\"sessionKey\":"
                               "\"s\",\"runId\":\"r\",\"delta\":\"hi\",\"seq\":2}}";
    msg_check_frame (text, strlen (text));
}
