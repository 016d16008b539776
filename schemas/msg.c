/*  =========================================================================
    msg - tables built from messages.def, and body validation
    =========================================================================
*/
#include "msg.h"

#include "mp.h"

#include <stdio.h>
#include <string.h>

//  First pass: one field array per message.
#define CG_MSG(type, service, doc) static const msg_field_t s_fields_##type[] = {
#define CG_FIELD(name, kind, req, doc) {#name, MSG_KIND_##kind, req, doc},
#define CG_MSG_END {NULL, MSG_KIND_ANY, 0, NULL}};
#include "messages.def"
#undef CG_MSG
#undef CG_FIELD
#undef CG_MSG_END

//  Second pass: one definition per message.
#define CG_MSG(type, service, doc)                                            \
    static const msg_def_t s_def_##type = {#type, service, doc, s_fields_##type};
#define CG_FIELD(name, kind, req, doc)
#define CG_MSG_END
#include "messages.def"
#undef CG_MSG

//  Third pass: the table of all.
#define CG_MSG(type, service, doc) &s_def_##type,
static const msg_def_t *const s_all[] = {
#include "messages.def"
    NULL};
#undef CG_MSG
#undef CG_FIELD
#undef CG_MSG_END

const msg_def_t *const *
msg_all (void)
{
    return s_all;
}

const msg_def_t *
msg_lookup (const char *type)
{
    if (!type)
        return NULL;
    for (const msg_def_t *const *d = s_all; *d; d++)
        if (strcmp ((*d)->type, type) == 0)
            return *d;
    return NULL;
}

static const char *
s_kind_name (msg_kind_t kind)
{
    switch (kind) {
    case MSG_KIND_STR: return "a string";
    case MSG_KIND_INT: return "an integer";
    case MSG_KIND_BOOL: return "a boolean";
    case MSG_KIND_MAP: return "an object";
    case MSG_KIND_ARRAY: return "an array";
    default: return "any value";
    }
}

static int
s_kind_matches (msg_kind_t kind, const msgpack_object *v)
{
    switch (kind) {
    case MSG_KIND_STR: return v->type == MSGPACK_OBJECT_STR;
    case MSG_KIND_INT:
        return v->type == MSGPACK_OBJECT_POSITIVE_INTEGER
               || v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
    case MSG_KIND_BOOL: return v->type == MSGPACK_OBJECT_BOOLEAN;
    case MSG_KIND_MAP: return v->type == MSGPACK_OBJECT_MAP;
    case MSG_KIND_ARRAY: return v->type == MSGPACK_OBJECT_ARRAY;
    default: return 1;
    }
}

int
msg_validate (const char *type, const msgpack_object *body, char *err,
              size_t errlen, char *param, size_t paramlen)
{
    if (param && paramlen)
        param[0] = 0;
    const msg_def_t *def = msg_lookup (type);
    if (!def) {
        snprintf (err, errlen, "unknown message type");
        return -1;
    }
    msgpack_object empty = {.type = MSGPACK_OBJECT_MAP};
    if (!body || body->type == MSGPACK_OBJECT_NIL)
        body = &empty;
    if (body->type != MSGPACK_OBJECT_MAP) {
        snprintf (err, errlen, "%s body is not a map", def->type);
        return -1;
    }
    for (const msg_field_t *f = def->fields; f->name; f++) {
        const msgpack_object *v = mp_get (body, f->name);
        if ((!v || v->type == MSGPACK_OBJECT_NIL) && f->required) {
            snprintf (err, errlen, "'%s' is required", f->name);
            if (param && paramlen)
                snprintf (param, paramlen, "%s", f->name);
            return -1;
        }
        if (v && v->type != MSGPACK_OBJECT_NIL && !s_kind_matches (f->kind, v)) {
            snprintf (err, errlen, "'%s' must be %s", f->name,
                      s_kind_name (f->kind));
            if (param && paramlen)
                snprintf (param, paramlen, "%s", f->name);
            return -1;
        }
    }
    return 0;
}
