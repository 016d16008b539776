/*  =========================================================================
    mpjson - convert between cJSON trees and msgpack objects
    =========================================================================
*/
#include "mpjson.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
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
        if (n)  //  msgpack-c may hand an empty string as a NULL pointer
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
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return cJSON_CreateNumber ((double) o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return cJSON_CreateNumber ((double) o->via.i64);
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
                continue;  //  JSON keys are strings; others have no form
            char *key = s_strdup_n (k->via.str.ptr, k->via.str.size);
            cJSON *item = key ? s_to_json (&o->via.map.ptr[i].val, depth + 1) : NULL;
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

//  ---- msgpack -> JSON text -------------------------------------------------------

typedef struct {
    char *data;
    size_t size, cap;
    bool failed;
} text_t;

static bool
s_reserve (text_t *t, size_t more)
{
    if (t->failed)
        return false;
    if (t->size + more + 1 <= t->cap)
        return true;
    size_t cap = t->cap ? t->cap : 256;
    while (cap < t->size + more + 1)
        cap *= 2;
    char *data = (char *) realloc (t->data, cap);
    if (!data) {
        t->failed = true;
        return false;
    }
    t->data = data;
    t->cap = cap;
    return true;
}

static void
s_put (text_t *t, const char *s, size_t n)
{
    //  An empty msgpack string may have no pointer at all.
    if (n > 0 && s_reserve (t, n)) {
        memcpy (t->data + t->size, s, n);
        t->size += n;
    }
}

//  As cJSON prints strings: the two specials and control characters
//  escaped, everything else (UTF-8 included) as is.
static void
s_put_string (text_t *t, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    if (!s_reserve (t, n + 2))
        return;
    t->data[t->size++] = '"';
    size_t run = 0;  //  Bytes since the last escape
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_put (t, s + run, i - run);
        run = i + 1;
        char esc[6] = {'\\', 0};
        size_t len = 2;
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default:
            memcpy (esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            len = 6;
        }
        s_put (t, esc, len);
    }
    if (n > run)  //  (an empty string may have no bytes: s NULL)
        s_put (t, s + run, n - run);
    s_put (t, "\"", 1);
}

//  As cJSON prints doubles: null for NaN and infinities, else the shorter
//  of 15 and 17 significant digits that reads back the same.
static void
s_put_double (text_t *t, double d)
{
    char num[32];
    if (isnan (d) || isinf (d)) {
        s_put (t, "null", 4);
        return;
    }
    int n;
    if (fabs (d) < 1e15 && d == (double) (long long) d)
        n = snprintf (num, sizeof (num), "%lld", (long long) d);
    else {
        n = snprintf (num, sizeof (num), "%1.15g", d);
        double back;
        if (sscanf (num, "%lg", &back) != 1 || back != d)
            n = snprintf (num, sizeof (num), "%1.17g", d);
    }
    s_put (t, num, (size_t) n);
}

static int
s_write (text_t *t, const msgpack_object *o, int depth)
{
    char num[32];
    switch (o->type) {
    case MSGPACK_OBJECT_BOOLEAN:
        if (o->via.boolean)
            s_put (t, "true", 4);
        else
            s_put (t, "false", 5);
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        s_put (t, num,
               (size_t) snprintf (num, sizeof (num), "%llu",
                                  (unsigned long long) o->via.u64));
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        s_put (t, num,
               (size_t) snprintf (num, sizeof (num), "%lld", (long long) o->via.i64));
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: s_put_double (t, o->via.f64); return 0;
    case MSGPACK_OBJECT_STR: s_put_string (t, o->via.str.ptr, o->via.str.size); return 0;
    case MSGPACK_OBJECT_ARRAY:
        if (depth >= MPJSON_MAX_DEPTH)
            return -1;
        s_put (t, "[", 1);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i)
                s_put (t, ",", 1);
            if (s_write (t, &o->via.array.ptr[i], depth + 1))
                return -1;
        }
        s_put (t, "]", 1);
        return 0;
    case MSGPACK_OBJECT_MAP: {
        if (depth >= MPJSON_MAX_DEPTH)
            return -1;
        s_put (t, "{", 1);
        bool first = true;
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (kv->key.type != MSGPACK_OBJECT_STR)
                continue;  //  JSON keys are strings; others have no form
            if (!first)
                s_put (t, ",", 1);
            first = false;
            s_put_string (t, kv->key.via.str.ptr, kv->key.via.str.size);
            s_put (t, ":", 1);
            if (s_write (t, &kv->val, depth + 1))
                return -1;
        }
        s_put (t, "}", 1);
        return 0;
    }
    default: s_put (t, "null", 4); return 0;
    }
}

char *
mpjson_write (const msgpack_object *obj, size_t *len)
{
    text_t t = {0};
    if (s_write (&t, obj, 0) || !s_reserve (&t, 0)) {
        free (t.data);
        return NULL;
    }
    t.data[t.size] = 0;
    if (len)
        *len = t.size;
    return t.data;
}
