/*  =========================================================================
    test_http_json - the pure parts of the HTTP front

    json_in_utf8_valid over every class of malformed UTF-8, and
    http_json_object's verdicts on request bodies.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <string.h>

#include "http.h"
#include "json_in.h"

//  Checks s (given with its length, so NULs and stray bytes are exact).
#define UTF8_OK(lit)                                                                     \
    cr_assert (json_in_utf8_valid (lit, sizeof (lit) - 1), "refused: %s", #lit)
#define UTF8_BAD(lit)                                                                    \
    cr_assert_not (json_in_utf8_valid (lit, sizeof (lit) - 1), "accepted: %s", #lit)

Test (utf8, accepts_well_formed)
{
    UTF8_OK ("");
    UTF8_OK ("plain ASCII, with \t and \n");
    UTF8_OK ("nul \0 inside");
    UTF8_OK ("\xc2\x80");          //  U+0080, smallest 2-byte
    UTF8_OK ("caf\xc3\xa9");       //  é
    UTF8_OK ("\xdf\xbf");          //  U+07FF, largest 2-byte
    UTF8_OK ("\xe0\xa0\x80");      //  U+0800, smallest 3-byte
    UTF8_OK ("\xe2\x82\xac");      //  €
    UTF8_OK ("\xed\x9f\xbf");      //  U+D7FF, just below surrogates
    UTF8_OK ("\xee\x80\x80");      //  U+E000, just above them
    UTF8_OK ("\xef\xbf\xbf");      //  U+FFFF
    UTF8_OK ("\xf0\x90\x80\x80");  //  U+10000, smallest 4-byte
    UTF8_OK ("\xf0\x9f\xa6\x80");  //  🦀
    UTF8_OK ("\xf4\x8f\xbf\xbf");  //  U+10FFFF, the last code point
    UTF8_OK ("a\xc3\xa9\xe2\x82\xac\xf0\x9f\xa6\x80z");
}

Test (utf8, refuses_overlongs)
{
    UTF8_BAD ("\xc0\x80");          //  NUL in two bytes
    UTF8_BAD ("\xc1\xbf");          //  U+007F in two bytes
    UTF8_BAD ("\xe0\x80\x80");      //  NUL in three bytes
    UTF8_BAD ("\xe0\x9f\xbf");      //  U+07FF in three bytes
    UTF8_BAD ("\xf0\x80\x80\x80");  //  NUL in four bytes
    UTF8_BAD ("\xf0\x8f\xbf\xbf");  //  U+FFFF in four bytes
}

Test (utf8, refuses_surrogates_and_out_of_range)
{
    UTF8_BAD ("\xed\xa0\x80");              //  U+D800
    UTF8_BAD ("\xed\xbf\xbf");              //  U+DFFF
    UTF8_BAD ("\xed\xa0\xbd\xed\xb8\x80");  //  A CESU-8 pair
    UTF8_BAD ("\xf4\x90\x80\x80");          //  U+110000
    UTF8_BAD ("\xf5\x80\x80\x80");
    UTF8_BAD ("\xf7\xbf\xbf\xbf");
    UTF8_BAD ("\xf8\x88\x80\x80\x80");  //  Old 5-byte form
    UTF8_BAD ("\xfe");
    UTF8_BAD ("\xff");
}

Test (utf8, refuses_truncated_and_stray)
{
    UTF8_BAD ("\xc3");
    UTF8_BAD ("abc\xc3");
    UTF8_BAD ("\xe2\x82");
    UTF8_BAD ("\xf0\x9f\xa6");
    UTF8_BAD ("\xf0\x9f");
    UTF8_BAD ("\xe2\x82x");     //  Continuation replaced by ASCII
    UTF8_BAD ("\xc3\xc3\xa9");  //  Lead followed by a lead
    UTF8_BAD ("\x80");          //  Stray continuations
    UTF8_BAD ("a\xbf"
              "b");
    UTF8_BAD ("\xc3\xa9\xa9");  //  One continuation too many

    //  The length is honoured: a valid sequence cut by len is refused,
    //  and bytes past len are never looked at.
    const char *euro = "\xe2\x82\xac";
    cr_assert_not (json_in_utf8_valid (euro, 2));
    cr_assert (json_in_utf8_valid (euro, 0));
    cr_assert (json_in_utf8_valid ("ok\xff", 2));
}

//  Parses text (exactly len bytes, in a heap copy so ASan sees over-reads).
static cJSON *
s_parse (const char *text, size_t len, char *msg, size_t cap)
{
    char *copy = malloc (len ? len : 1);
    memcpy (copy, text, len);
    msg[0] = 0;
    cJSON *json = http_json_object (copy, len, msg, cap);
    free (copy);
    return json;
}

//  Asserts lit is refused with a message containing needle.
static void
s_refused (const char *text, size_t len, const char *needle)
{
    char msg[128];
    cJSON *json = s_parse (text, len, msg, sizeof (msg));
    cr_assert_null (json, "accepted: %.*s", (int) len, text);
    cr_assert_neq (msg[0], 0, "no message for: %.*s", (int) len, text);
    cr_assert (strstr (msg, needle), "message '%s' lacks '%s'", msg, needle);
}

#define REFUSED(lit, needle) s_refused (lit, sizeof (lit) - 1, needle)

Test (json_object, refuses_bad_bodies)
{
    REFUSED ("", "empty");
    REFUSED ("{\"a\":", "JSON");
    REFUSED ("{\"a\" 1}", "JSON");
    REFUSED ("{'a':1}", "JSON");
    REFUSED ("nope", "JSON");
    REFUSED ("   ", "empty");
    REFUSED ("{\"a\":\"\xc3\"}", "UTF-8");
    REFUSED ("{\"a\":\"\xed\xa0\x80\"}", "UTF-8");
    REFUSED ("{\"a\":\"\xc0\xaf\"}", "UTF-8");
    REFUSED ("{\"a\":1}x", "after");
    REFUSED ("{\"a\":1}{\"b\":2}", "after");
    REFUSED ("{\"a\":1} \n,", "after");
    REFUSED ("{\"a\":1}\0", "NUL");
    REFUSED ("{\"a\":\"x\\u0000y\"}", "NUL");
    REFUSED ("[1,2]", "object");
    REFUSED ("\"text\"", "object");
    REFUSED ("42", "object");
    REFUSED ("null", "object");

    char msg[64] = "unset";
    cr_assert_null (http_json_object (NULL, 0, msg, sizeof (msg)));
    cr_assert_str_neq (msg, "unset");
}

Test (json_object, accepts_objects)
{
    char msg[128];
    const char *text = "{\"model\":\"local/echo\",\"n\":-3,\"s\":\"caf\xc3\xa9\","
                       "\"nested\":{\"list\":[1,true,null]}}";
    cJSON *json = s_parse (text, strlen (text), msg, sizeof (msg));
    cr_assert_not_null (json, "refused: %s", msg);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (json, "model");
    cr_assert (cJSON_IsString (model));
    cr_assert_str_eq (model->valuestring, "local/echo");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive (json, "s");
    cr_assert_str_eq (s->valuestring, "caf\xc3\xa9");
    cr_assert_eq (cJSON_GetObjectItemCaseSensitive (json, "n")->valueint, -3);
    cJSON_Delete (json);

    const char *spaced[] = {"{}", "{} ", "{}\r\n", " \t{\"a\":1}\n\t \r\n",
                            "{\"a\":[]}\n"};
    for (size_t i = 0; i < sizeof (spaced) / sizeof (spaced[0]); i++) {
        json = s_parse (spaced[i], strlen (spaced[i]), msg, sizeof (msg));
        cr_assert_not_null (json, "refused '%s': %s", spaced[i], msg);
        cr_assert (cJSON_IsObject (json));
        cJSON_Delete (json);
    }
}

Test (json_object, length_bounds_the_parse)
{
    //  Bytes past len are not part of the body: a valid object cut short is
    //  refused, and garbage after len does not matter.
    char msg[128];
    const char *text = "{\"a\":1}garbage";
    cJSON *json = s_parse (text, 7, msg, sizeof (msg));
    cr_assert_not_null (json, "refused: %s", msg);
    cJSON_Delete (json);
    cr_assert_null (s_parse (text, 6, msg, sizeof (msg)));
    cr_assert_neq (msg[0], 0);
}

//  Text of n opening brackets, an inner value, then n closers (caller frees).
static char *
s_nested (size_t n, const char *open, const char *inner, const char *close, size_t *len)
{
    size_t lo = strlen (open), li = strlen (inner), lc = strlen (close);
    char *text = malloc (n * (lo + lc) + li + 1);
    size_t at = 0;
    for (size_t i = 0; i < n; i++, at += lo)
        memcpy (text + at, open, lo);
    memcpy (text + at, inner, li);
    at += li;
    for (size_t i = 0; i < n; i++, at += lc)
        memcpy (text + at, close, lc);
    text[at] = 0;
    *len = at;
    return text;
}

//  The request of issue 16 that took the gateway down: 100,000 brackets
//  made cJSON recurse off the end of a 100 KiB worker stack.
Test (json_object, refuses_deep_nesting_before_parsing)
{
    size_t len;
    char *deep = s_nested (100000, "[", "", "]", &len);
    cr_assert_eq (json_in_check (deep, len, 0, 0), JSON_IN_TOO_DEEP);
    free (deep);
    deep = s_nested (100000, "{\"a\":", "1", "}", &len);
    s_refused (deep, len, "deeper than 128");
    free (deep);
    //  Objects and arrays both count: 127 pairs of {"a":[ are 254 levels.
    json_in_rc_t rc;
    char *ok = s_nested (JSON_IN_MAX_DEPTH - 1, "{\"a\":[", "1", "]}", &len);
    cJSON *j = json_in_parse (ok, len, 0, 0, &rc, NULL);
    cr_assert_null (j);
    cr_assert_eq (rc, JSON_IN_TOO_DEEP, "254 levels are too deep");
    free (ok);
    //  128 levels are the limit, inclusive.
    ok = s_nested (JSON_IN_MAX_DEPTH - 1, "[", "{}", "]", &len);
    j = json_in_parse (ok, len, 0, 0, &rc, NULL);
    cr_assert_not_null (j, "128 levels are allowed (rc %d)", rc);
    cJSON_Delete (j);
    free (ok);
    ok = s_nested (JSON_IN_MAX_DEPTH, "[", "{}", "]", &len);
    cr_assert_eq (json_in_check (ok, len, 0, 0), JSON_IN_TOO_DEEP);
    free (ok);
}

Test (json_object, brackets_in_strings_do_not_count)
{
    size_t len;
    char *inner = s_nested (1000, "[", "", "{", &len);
    size_t total = len + 16;
    char *text = malloc (total);
    int n = snprintf (text, total, "{\"a\":\"%s\"}", inner);
    char msg[128];
    cJSON *j = s_parse (text, (size_t) n, msg, sizeof (msg));
    cr_assert_not_null (j, "%s", msg);
    cJSON_Delete (j);
    free (inner);
    free (text);
    //  An escaped quote does not end the string; an escaped backslash does
    //  not make the following "u0000" an escape.
    j = s_parse ("{\"a\":\"\\\"[[[\"}", 13, msg, sizeof (msg));
    cr_assert_not_null (j, "%s", msg);
    cJSON_Delete (j);
    j = s_parse ("{\"a\":\"\\\\u0000\"}", 15, msg, sizeof (msg));
    cr_assert_not_null (j, "%s", msg);
    cr_assert_str_eq (cJSON_GetObjectItem (j, "a")->valuestring, "\\u0000");
    cJSON_Delete (j);
}

Test (json_in, size_bound_and_nul_flag)
{
    cr_assert_eq (json_in_check ("[1]", 3, 2, 0), JSON_IN_TOO_LARGE);
    cr_assert_eq (json_in_check ("[1]", 3, 3, 0), JSON_IN_OK);
    cr_assert_eq (json_in_check ("\"\\u0000\"", 8, 0, 0), JSON_IN_NUL);
    cr_assert_eq (json_in_check ("\"\\u0000\"", 8, 0, JSON_IN_NUL_OK), JSON_IN_OK);
    cr_assert_eq (json_in_check ("\"a\0\"", 4, 0, JSON_IN_NUL_OK), JSON_IN_NUL);
}

Test (json_in, deeper_than_counts_containers)
{
    cJSON *j = cJSON_Parse ("{\"a\":[{\"b\":[1]}],\"c\":2}");
    cr_assert_not_null (j);
    cr_assert_not (json_in_deeper_than (j, 4));
    cr_assert (json_in_deeper_than (j, 3));
    cr_assert_not (json_in_deeper_than (cJSON_GetObjectItem (j, "c"), 0));
    cr_assert (json_in_deeper_than (cJSON_GetObjectItem (j, "a"), 2));
    cr_assert_not (json_in_deeper_than (cJSON_GetObjectItem (j, "a"), 3));
    cr_assert_not (json_in_deeper_than (NULL, 0));
    cJSON_Delete (j);
}
