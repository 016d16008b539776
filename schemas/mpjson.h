/*  =========================================================================
    mpjson - the JSON mapping of message bodies (cJSON <-> msgpack)

    Field names map one to one.  Integral JSON numbers within int64 become
    msgpack integers, others doubles; msgpack bin/ext have no JSON form and
    become null.  More than MPJSON_MAX_DEPTH nested containers are refused.
    =========================================================================
*/
#ifndef CG_MPJSON_H
#define CG_MPJSON_H

#include <cjson/cJSON.h>
#include <msgpack.h>

#include "mp.h"

//  At most this many nested objects/arrays (what mp_check accepts).
#define MPJSON_MAX_DEPTH MP_MAX_DEPTH

//  Packs json into pk.  Returns 0, or -1 if it nests too deep (pk then holds
//  a partial value and must be discarded).
int
mpjson_pack (msgpack_packer *pk, const cJSON *json);

//  Builds a cJSON tree from obj.  Caller owns the return value and must
//  cJSON_Delete it.  Returns NULL if obj nests too deep or memory runs out.
cJSON *
mpjson_to_json (const msgpack_object *obj);

//  Writes obj as JSON text straight into a buffer, the same text
//  cJSON_PrintUnformatted (mpjson_to_json (obj)) gives except that integers
//  print exactly (not through a double) and a string's NUL bytes are
//  escaped instead of ending it.  No tree, one growing buffer: a reply of
//  fifty messages is one allocation instead of over a thousand.  Returns
//  the NUL-terminated text (caller frees) with its length in *len, or NULL
//  if obj nests too deep or memory runs out.
char *
mpjson_write (const msgpack_object *obj, size_t *len);

#endif
