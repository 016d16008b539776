/*  =========================================================================
    mp - msgpack writer and reader helpers
    =========================================================================
*/
#include "mp.h"

#include <string.h>

void
mp_writer_init (mp_writer_t *w)
{
    msgpack_sbuffer_init (&w->buf);
    msgpack_packer_init (&w->pk, &w->buf, msgpack_sbuffer_write);
    w->open = 0;
}

void
mp_writer_fini (mp_writer_t *w)
{
    msgpack_sbuffer_destroy (&w->buf);
}

void
mp_put_strn (mp_writer_t *w, const char *s, size_t len)
{
    msgpack_pack_str_with_body (&w->pk, s, len);
}

void
mp_put_str (mp_writer_t *w, const char *s)
{
    if (s)
        mp_put_strn (w, s, strlen (s));
    else
        msgpack_pack_nil (&w->pk);
}

void
mp_key (mp_writer_t *w, const char *key)
{
    mp_put_str (w, key);
}

void
mp_kv_str (mp_writer_t *w, const char *key, const char *val)
{
    mp_key (w, key);
    mp_put_str (w, val);
}

void
mp_kv_int (mp_writer_t *w, const char *key, int64_t val)
{
    mp_key (w, key);
    msgpack_pack_int64 (&w->pk, val);
}

void
mp_kv_bool (mp_writer_t *w, const char *key, bool val)
{
    mp_key (w, key);
    if (val)
        msgpack_pack_true (&w->pk);
    else
        msgpack_pack_false (&w->pk);
}

void
mp_kv_nil (mp_writer_t *w, const char *key)
{
    mp_key (w, key);
    msgpack_pack_nil (&w->pk);
}

//  --------------------------------------------------------------------------
//  Decodes one object; the zone belongs to the reader.

int
mp_reader_init (mp_reader_t *r, const void *data, size_t size)
{
    msgpack_unpacked_init (&r->up);
    r->root = NULL;
    if (!data || size == 0 || size > MP_MAX_BODY || mp_check (data, size))
        return -1;
    size_t off = 0;
    if (msgpack_unpack_next (&r->up, data, size, &off) != MSGPACK_UNPACK_SUCCESS
        || off != size)
        return -1;
    r->root = &r->up.data;
    return 0;
}

//  Reads a big-endian length of n bytes at p[*pos]; -1 if it runs past size.
static int
s_len (const uint8_t *p, size_t size, size_t *pos, int n, uint64_t *out)
{
    if ((size_t) n > size - *pos)
        return -1;
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = (v << 8) | p[*pos + (size_t) i];
    *pos += (size_t) n;
    *out = v;
    return 0;
}

//  Walks one object from *pos without decoding it (no allocation, no
//  recursion): 0 with *pos past it, or -1 if it is malformed, deeper than
//  MP_MAX_DEPTH or runs past size.  Over 100 lines because it is one switch
//  over msgpack's type bytes with each length's bound check beside the
//  length it guards; split, the bounds would sit away from what they bound.
static int
s_skip (const uint8_t *p, size_t size, size_t *pos_p)
{
    uint64_t left[MP_MAX_DEPTH + 1];  //  Items still due at each level
    int depth = 1;
    left[0] = 1;           //  Level 0: the one object
    uint64_t pending = 1;  //  Items due at all levels together
    size_t pos = *pos_p;
    while (depth > 0) {
        if (pos >= size)
            return -1;
        left[depth - 1]--;
        pending--;
        uint8_t b = p[pos++];
        uint64_t skip = 0, items = 0, n = 0;
        bool container = false;
        if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3)
            skip = 0;
        else if (b >= 0x80 && b <= 0x8f)
            container = true, items = 2u * (b & 0x0fu);
        else if (b >= 0x90 && b <= 0x9f)
            container = true, items = b & 0x0fu;
        else if (b >= 0xa0 && b <= 0xbf)
            skip = b & 0x1fu;
        else
            switch (b) {
            case 0xc4:
            case 0xd9:
                if (s_len (p, size, &pos, 1, &skip))
                    return -1;
                break;
            case 0xc5:
            case 0xda:
                if (s_len (p, size, &pos, 2, &skip))
                    return -1;
                break;
            case 0xc6:
            case 0xdb:
                if (s_len (p, size, &pos, 4, &skip))
                    return -1;
                break;
            case 0xc7:
                if (s_len (p, size, &pos, 1, &skip))
                    return -1;
                skip += 1;
                break;
            case 0xc8:
                if (s_len (p, size, &pos, 2, &skip))
                    return -1;
                skip += 1;
                break;
            case 0xc9:
                if (s_len (p, size, &pos, 4, &skip))
                    return -1;
                skip += 1;
                break;
            case 0xca: skip = 4; break;
            case 0xcb: skip = 8; break;
            case 0xcc:
            case 0xd0: skip = 1; break;
            case 0xcd:
            case 0xd1: skip = 2; break;
            case 0xce:
            case 0xd2: skip = 4; break;
            case 0xcf:
            case 0xd3: skip = 8; break;
            case 0xd4: skip = 2; break;
            case 0xd5: skip = 3; break;
            case 0xd6: skip = 5; break;
            case 0xd7: skip = 9; break;
            case 0xd8: skip = 17; break;
            case 0xdc:
                if (s_len (p, size, &pos, 2, &n))
                    return -1;
                container = true, items = n;
                break;
            case 0xdd:
                if (s_len (p, size, &pos, 4, &n))
                    return -1;
                container = true, items = n;
                break;
            case 0xde:
                if (s_len (p, size, &pos, 2, &n))
                    return -1;
                container = true, items = 2 * n;
                break;
            case 0xdf:
                if (s_len (p, size, &pos, 4, &n))
                    return -1;
                container = true, items = 2 * n;
                break;
            default: return -1;  //  0xc1 is never used
            }
        if (container) {
            //  Every item takes at least one byte: a count the rest of the
            //  buffer cannot hold is a lie, refused before anything allocates.
            if (depth > MP_MAX_DEPTH || items > size - pos
                || pending + items > size - pos)
                return -1;
            left[depth++] = items;
            pending += items;
        }
        else {
            if (skip > size - pos)
                return -1;
            pos += (size_t) skip;
        }
        while (depth > 0 && left[depth - 1] == 0)
            depth--;
    }
    *pos_p = pos;
    return 0;
}

int
mp_check (const void *data, size_t size)
{
    size_t pos = 0;
    if (s_skip ((const uint8_t *) data, size, &pos))
        return -1;
    return pos == size ? 0 : -1;
}

//  ---- Counted maps -----------------------------------------------------------

void
mp_map_begin (mp_writer_t *w)
{
    static const char header[5] = {(char) 0xdf, 0, 0, 0, 0};
    if (w->open < MP_MAX_DEPTH)
        w->open_at[w->open] = w->buf.size + sizeof (header);
    w->open++;
    msgpack_sbuffer_write (&w->buf, header, sizeof (header));
}

void
mp_map_end (mp_writer_t *w)
{
    if (w->open == 0)
        return;
    w->open--;
    if (w->open >= MP_MAX_DEPTH)
        return;  //  Past the depth any message may have: left at 0, which
                 //  the receiver (and a checked build's send) refuses
    size_t at = w->open_at[w->open];
    const uint8_t *p = (const uint8_t *) w->buf.data;
    uint32_t items = 0;
    size_t pos = at;
    while (pos < w->buf.size && s_skip (p, w->buf.size, &pos) == 0)
        items++;
    uint32_t pairs = items / 2;
    uint8_t *n = (uint8_t *) w->buf.data + at - 4;
    n[0] = (uint8_t) (pairs >> 24);
    n[1] = (uint8_t) (pairs >> 16);
    n[2] = (uint8_t) (pairs >> 8);
    n[3] = (uint8_t) pairs;
}

void
mp_reader_fini (mp_reader_t *r)
{
    msgpack_unpacked_destroy (&r->up);
    r->root = NULL;
}

const msgpack_object *
mp_get (const msgpack_object *map, const char *key)
{
    if (!map || map->type != MSGPACK_OBJECT_MAP)
        return NULL;
    size_t klen = strlen (key);
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == klen
            && (klen == 0 || memcmp (k->via.str.ptr, key, klen) == 0))
            return &map->via.map.ptr[i].val;
    }
    return NULL;
}

const char *
mp_get_str (const msgpack_object *map, const char *key, size_t *len)
{
    const msgpack_object *v = mp_get (map, key);
    if (!v || v->type != MSGPACK_OBJECT_STR)
        return NULL;
    if (len)
        *len = v->via.str.size;
    return v->via.str.ptr;
}

bool
mp_get_int (const msgpack_object *map, const char *key, int64_t *out)
{
    const msgpack_object *v = mp_get (map, key);
    if (!v)
        return false;
    if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 <= INT64_MAX) {
        *out = (int64_t) v->via.u64;
        return true;
    }
    if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) {
        *out = v->via.i64;
        return true;
    }
    return false;
}

bool
mp_get_bool (const msgpack_object *map, const char *key, bool *out)
{
    const msgpack_object *v = mp_get (map, key);
    if (!v || v->type != MSGPACK_OBJECT_BOOLEAN)
        return false;
    *out = v->via.boolean;
    return true;
}

int
mp_copy_str (const msgpack_object *map, const char *key, char *dest, size_t cap)
{
    size_t len;
    const char *s = mp_get_str (map, key, &len);
    if (!s || len >= cap)
        return -1;
    if (len)
        memcpy (dest, s, len);
    dest[len] = 0;
    return 0;
}
