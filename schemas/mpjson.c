/*  =========================================================================
    mpjson - convert between cJSON trees and msgpack objects
    =========================================================================
*/
#include "mpjson.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

//  depth counts the containers around j; j itself, if a container, makes
//  one more, so at most MPJSON_MAX_DEPTH nest.
static int
s_pack (msgpack_packer *pk, const cJSON *j, int depth)
{
    if ((cJSON_IsArray (j) || cJSON_IsObject (j)) && depth >= MPJSON_MAX_DEPTH)
        return -1;
    if (cJSON_IsNull (j) || cJSON_IsInvalid (j))
        return msgpack_pack_nil (pk), 0;
    if (cJSON_IsTrue (j))
        return msgpack_pack_true (pk), 0;
    if (cJSON_IsFalse (j))
        return msgpack_pack_false (pk), 0;
    if (cJSON_IsNumber (j)) {
        double d = j->valuedouble;
        //  2^63 is the first double past INT64_MAX.
        if (isfinite (d) && d == floor (d) && d >= -9223372036854775808.0
            && d < 9223372036854775808.0)
            msgpack_pack_int64 (pk, (int64_t) d);
        else
            msgpack_pack_double (pk, d);
        return 0;
    }
    if (cJSON_IsString (j)) {
        const char *s = j->valuestring ? j->valuestring : "";
        msgpack_pack_str_with_body (pk, s, strlen (s));
        return 0;
    }
    if (cJSON_IsArray (j)) {
        int n = cJSON_GetArraySize (j);
        msgpack_pack_array (pk, (size_t) n);
        for (const cJSON *c = j->child; c; c = c->next)
            if (s_pack (pk, c, depth + 1))
                return -1;
        return 0;
    }
    if (cJSON_IsObject (j)) {
        int n = cJSON_GetArraySize (j);
        msgpack_pack_map (pk, (size_t) n);
        for (const cJSON *c = j->child; c; c = c->next) {
            const char *k = c->string ? c->string : "";
            msgpack_pack_str_with_body (pk, k, strlen (k));
            if (s_pack (pk, c, depth + 1))
                return -1;
        }
        return 0;
    }
    msgpack_pack_nil (pk);
    return 0;
}

int
mpjson_pack (msgpack_packer *pk, const cJSON *json)
{
    return s_pack (pk, json, 0);
}

//  msgpack strings are not NUL-terminated: copy into a terminated buffer.
static char *
s_strdup_n (const char *s, size_t n)
{
    char *copy = malloc (n + 1);
    if (copy) {
        if (n)   //  msgpack-c may hand an empty string as a NULL pointer
            memcpy (copy, s, n);
        copy[n] = 0;
    }
    return copy;
}

static cJSON *
s_to_json (const msgpack_object *o, int depth)
{
    if ((o->type == MSGPACK_OBJECT_ARRAY || o->type == MSGPACK_OBJECT_MAP)
        && depth >= MPJSON_MAX_DEPTH)
        return NULL;
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN: return cJSON_CreateBool (o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return cJSON_CreateNumber ((double) o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return cJSON_CreateNumber ((double) o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return cJSON_CreateNumber (o->via.f64);
    case MSGPACK_OBJECT_STR: {
        char *s = s_strdup_n (o->via.str.ptr, o->via.str.size);
        if (!s)
            return NULL;
        cJSON *j = cJSON_CreateString (s);
        free (s);
        return j;
    }
    case MSGPACK_OBJECT_ARRAY: {
        cJSON *arr = cJSON_CreateArray ();
        for (uint32_t i = 0; arr && i < o->via.array.size; i++) {
            cJSON *item = s_to_json (&o->via.array.ptr[i], depth + 1);
            if (!item) {
                cJSON_Delete (arr);
                return NULL;
            }
            cJSON_AddItemToArray (arr, item);
        }
        return arr;
    }
    case MSGPACK_OBJECT_MAP: {
        cJSON *obj = cJSON_CreateObject ();
        for (uint32_t i = 0; obj && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type != MSGPACK_OBJECT_STR)
                continue;   //  JSON keys are strings; others have no form
            char *key = s_strdup_n (k->via.str.ptr, k->via.str.size);
            cJSON *item = key ? s_to_json (&o->via.map.ptr[i].val, depth + 1)
                              : NULL;
            if (!item) {
                free (key);
                cJSON_Delete (obj);
                return NULL;
            }
            cJSON_AddItemToObject (obj, key, item);
            free (key);
        }
        return obj;
    }
    default: return cJSON_CreateNull ();
    }
}

cJSON *
mpjson_to_json (const msgpack_object *obj)
{
    return s_to_json (obj, 0);
}
