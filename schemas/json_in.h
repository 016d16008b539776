/*  =========================================================================
    json_in - the one way in for JSON from outside the process

    HTTP bodies, WebSocket frames, provider responses and stream events,
    CDP messages, channel payloads and the config file are all checked here
    before cJSON sees them: a size bound, no NUL byte (raw, or escaped as
    \u0000, which cJSON would turn into a cut-short C string), well-formed
    UTF-8, and nesting at most JSON_IN_MAX_DEPTH deep.  The check is one
    linear pass that neither allocates nor recurses, so the recursive parse
    (and every later recursive walk of the tree: printing, deleting,
    packing) is bounded before it starts.  A civetweb worker thread has a
    100 KiB stack; cJSON alone would recurse 1,000 levels.
    =========================================================================
*/
#ifndef CG_JSON_IN_H
#define CG_JSON_IN_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

//  Deepest nesting of arrays/objects accepted from outside.
#define JSON_IN_MAX_DEPTH 128

typedef enum {
    JSON_IN_OK = 0,
    JSON_IN_EMPTY,       //  No bytes, or only whitespace
    JSON_IN_TOO_LARGE,   //  Over the caller's size bound
    JSON_IN_NUL,         //  A NUL byte, raw or as \u0000
    JSON_IN_UTF8,        //  Not well-formed UTF-8
    JSON_IN_TOO_DEEP,    //  Nested deeper than JSON_IN_MAX_DEPTH
    JSON_IN_MALFORMED,   //  Not JSON
    JSON_IN_TRAILING,    //  Something after the value
    JSON_IN_NOT_OBJECT,  //  A value, but not the object required
} json_in_rc_t;

//  Flags for json_in_parse.
#define JSON_IN_OBJECT 0x01u  //  The value must be an object
//  Accept \u0000 (cJSON cuts the string there): for peers we only read
//  text from, never for requests we store.
#define JSON_IN_NUL_OK 0x02u

//  Checks text[len] without allocating or recursing: at most max bytes
//  (0: no bound), no NUL, UTF-8, nesting.  Does not check the grammar.
json_in_rc_t
json_in_check (const char *text, size_t len, size_t max, unsigned flags);

//  Checks, then parses exactly one JSON value spanning text[len]
//  (whitespace around it allowed).  text need not be NUL-terminated.
//  Returns the value (caller owns, cJSON_Delete) or NULL with *rc (may be
//  NULL) saying why, and *at (may be NULL) the byte near which the grammar
//  failed.
cJSON *
json_in_parse (const char *text, size_t len, size_t max, unsigned flags, json_in_rc_t *rc,
               size_t *at);

//  True if json holds more than max nested arrays/objects (json itself
//  counts, if it is one).  Recurses at most max + 1 deep.
bool
json_in_deeper_than (const cJSON *json, int max);

//  Why, as the end of a sentence whose subject the caller supplies
//  ("Request body" + " is not valid UTF-8").
const char *
json_in_reason (json_in_rc_t rc);

//  True if s[len] is well-formed UTF-8 (no overlongs, no surrogates, no
//  code point above U+10FFFF).
bool
json_in_utf8_valid (const char *s, size_t len);

#endif
