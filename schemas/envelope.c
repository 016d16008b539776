/*  =========================================================================
    envelope - encode and decode the common request/reply header
    =========================================================================
*/
#include "envelope.h"

#include "mp.h"

#include <string.h>

//  --------------------------------------------------------------------------
//  Sets type and zeroes every other field.

void
envelope_init (envelope_t *self, const char *type)
{
    memset (self, 0, sizeof (*self));
    if (type)
        snprintf (self->type, sizeof (self->type), "%s", type);
}

//  --------------------------------------------------------------------------
//  Packs the envelope as a five-item array.

int
envelope_pack (const envelope_t *self, msgpack_sbuffer *buf)
{
    size_t type_len = strnlen (self->type, sizeof (self->type));
    size_t key_len = strnlen (self->session_key, sizeof (self->session_key));
    //  Refuse what envelope_unpack would refuse, so no peer ever sends an
    //  envelope the other side drops.
    if (type_len == 0 || type_len > ENVELOPE_TYPE_MAX || key_len > ENVELOPE_KEY_MAX
        || self->status < 0 || self->status > 999 || self->timeout_ms < 0)
        return -1;

    msgpack_packer pk;
    msgpack_packer_init (&pk, buf, msgpack_sbuffer_write);
    msgpack_pack_array (&pk, 5);
    msgpack_pack_str_with_body (&pk, self->type, type_len);
    msgpack_pack_uint64 (&pk, self->corr_id);
    if (key_len)
        msgpack_pack_str_with_body (&pk, self->session_key, key_len);
    else
        msgpack_pack_nil (&pk);
    msgpack_pack_int (&pk, self->status);
    msgpack_pack_int64 (&pk, self->timeout_ms);
    return 0;
}

//  --------------------------------------------------------------------------
//  Copies a msgpack string into a fixed buffer; -1 if it is not a string or
//  does not fit.

static int
s_copy_str (char *dest, size_t cap, const msgpack_object *obj)
{
    if (obj->type != MSGPACK_OBJECT_STR || obj->via.str.size >= cap)
        return -1;
    //  msgpack-c may hand an empty string as a NULL pointer.
    if (obj->via.str.size)
        memcpy (dest, obj->via.str.ptr, obj->via.str.size);
    dest[obj->via.str.size] = 0;
    //  A NUL inside a type or key would make two peers disagree on it.
    if (memchr (dest, 0, obj->via.str.size))
        return -1;
    return 0;
}

//  --------------------------------------------------------------------------
//  Decodes an envelope; every item is type-checked and bounded.

int
envelope_unpack (envelope_t *self, const void *data, size_t size)
{
    envelope_init (self, NULL);
    //  0x95 is a five-item array: anything else is refused before msgpack-c
    //  sees (and allocates for) it.
    if (!data || size == 0 || size > 1024 || *(const unsigned char *) data != 0x95
        || mp_check (data, size))
        return -1;

    msgpack_unpacked up;
    msgpack_unpacked_init (&up);
    size_t off = 0;
    int rc = -1;
    if (msgpack_unpack_next (&up, data, size, &off) != MSGPACK_UNPACK_SUCCESS
        || off != size)
        goto done;
    const msgpack_object *root = &up.data;
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size != 5)
        goto done;
    const msgpack_object *item = root->via.array.ptr;
    if (s_copy_str (self->type, sizeof (self->type), &item[0]) || !self->type[0])
        goto done;
    if (item[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        goto done;
    self->corr_id = item[1].via.u64;
    if (item[2].type != MSGPACK_OBJECT_NIL
        && s_copy_str (self->session_key, sizeof (self->session_key), &item[2]))
        goto done;
    if (item[3].type == MSGPACK_OBJECT_POSITIVE_INTEGER && item[3].via.u64 <= 999)
        self->status = (int) item[3].via.u64;
    else
        goto done;
    if (item[4].type == MSGPACK_OBJECT_POSITIVE_INTEGER && item[4].via.u64 <= INT64_MAX)
        self->timeout_ms = (int64_t) item[4].via.u64;
    else
        goto done;
    rc = 0;
done:
    msgpack_unpacked_destroy (&up);
    if (rc)
        envelope_init (self, NULL);
    return rc;
}
