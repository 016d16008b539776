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
    if (!data || size == 0 || size > MP_MAX_BODY)
        return -1;
    size_t off = 0;
    if (msgpack_unpack_next (&r->up, data, size, &off)
            != MSGPACK_UNPACK_SUCCESS
        || off != size)
        return -1;
    r->root = &r->up.data;
    return 0;
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
            && memcmp (k->via.str.ptr, key, klen) == 0)
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
mp_copy_str (const msgpack_object *map, const char *key, char *dest,
             size_t cap)
{
    size_t len;
    const char *s = mp_get_str (map, key, &len);
    if (!s || len >= cap)
        return -1;
    memcpy (dest, s, len);
    dest[len] = 0;
    return 0;
}
