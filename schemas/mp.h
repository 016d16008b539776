/*  =========================================================================
    mp - small helpers over msgpack-c for message bodies

    Writer: an sbuffer plus packer, with key/value shorthands.
    Reader: a bounded decode of one msgpack object and map look-ups that
    check the value's type.  Pure encode/decode: no ZeroMQ here.
    =========================================================================
*/
#ifndef CG_MP_H
#define CG_MP_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

//  Deepest nesting of maps/arrays accepted (msgpack-c's own decoder stops
//  at 32; we stay below it so every body we accept can be decoded).
#define MP_MAX_DEPTH 30

//  The largest body any peer may send us; bigger bodies are rejected before
//  they are decoded (request bodies are bounded by the HTTP limit earlier).
#define MP_MAX_BODY (16u * 1024u * 1024u)

typedef struct {
    msgpack_sbuffer buf;           //  Owned bytes
    msgpack_packer pk;             //  Packs into buf
    int open;                      //  Counted maps open (mp_map_begin)
    size_t open_at[MP_MAX_DEPTH];  //  Where each one's entries start
} mp_writer_t;

//  Embedded writer: init, pack, read w->buf.data/size, then fini.
void
mp_writer_init (mp_writer_t *w);
void
mp_writer_fini (mp_writer_t *w);

void
mp_put_str (mp_writer_t *w, const char *s);
void
mp_put_strn (mp_writer_t *w, const char *s, size_t len);
void
mp_kv_str (mp_writer_t *w, const char *key, const char *val);
void
mp_kv_int (mp_writer_t *w, const char *key, int64_t val);
void
mp_kv_bool (mp_writer_t *w, const char *key, bool val);
void
mp_kv_nil (mp_writer_t *w, const char *key);
//  Packs key and leaves the caller to pack the value.
void
mp_key (mp_writer_t *w, const char *key);

//  A map whose size nobody counts by hand: mp_map_begin opens it, the
//  caller packs keys and values (with mp_kv_*, mp_key or the packer, nested
//  maps and arrays included), and mp_map_end writes how many pairs it got.
//  Always the 5-byte map32 header.  Opens and ends must pair, innermost
//  first.
void
mp_map_begin (mp_writer_t *w);
void
mp_map_end (mp_writer_t *w);

typedef struct {
    msgpack_unpacked up;   //  Owns the zone the objects live in
    msgpack_object *root;  //  Points into up; NULL until decoded
} mp_reader_t;

//  Decodes exactly one object spanning all of data[size].  Strings in the
//  result point into data, so data must outlive the reader.  Returns 0, or -1
//  if the bytes are malformed, trailing or larger than MP_MAX_BODY.  Call
//  mp_reader_fini on every path, success or not.
int
mp_reader_init (mp_reader_t *r, const void *data, size_t size);
void
mp_reader_fini (mp_reader_t *r);

//  Checks, without allocating, that data[size] is exactly one well-formed
//  msgpack object nested at most MP_MAX_DEPTH deep whose every claimed
//  count fits in the bytes that remain.  msgpack-c allocates a container's
//  items from its header before reading them, so this runs first: five bytes
//  could otherwise ask for gigabytes.  Returns 0 or -1.
int
mp_check (const void *data, size_t size);

//  Map look-ups.  Each returns NULL/false when map is not a map, the key is
//  absent, or the value has another type.  Strings are not NUL-terminated:
//  use the returned length.  Lent pointers live as long as the reader.
const msgpack_object *
mp_get (const msgpack_object *map, const char *key);
const char *
mp_get_str (const msgpack_object *map, const char *key, size_t *len);
bool
mp_get_int (const msgpack_object *map, const char *key, int64_t *out);
bool
mp_get_bool (const msgpack_object *map, const char *key, bool *out);

//  Copies a string value into dest (NUL-terminated).  Returns 0, or -1 if
//  absent, not a string, or too long for cap.
int
mp_copy_str (const msgpack_object *map, const char *key, char *dest, size_t cap);

#endif
