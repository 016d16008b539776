/*  =========================================================================
    msg - tables built from messages.def, and body validation
    =========================================================================
*/
#include "msg.h"

#include "mp.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  The three named forms share CG_MSG's tables; their service says which
//  form they are.
#define CG_EVENT(type, name, doc) CG_MSG_NAMED (type, MSG_SERVICE_EVENT, name, doc)
#define CG_FRAME(type, name, doc) CG_MSG_NAMED (type, MSG_SERVICE_FRAME, name, doc)
#define CG_METHOD(type, name, doc) CG_MSG_NAMED (type, MSG_SERVICE_METHOD, name, doc)
#define CG_MSG(type, service, doc) CG_MSG_NAMED (type, service, #type, doc)

//  First pass: one field array per message.
#define CG_MSG_NAMED(type, service, name, doc)                                           \
    static const msg_field_t s_fields_##type[] = {
#define CG_FIELD(name, kind, req, doc) {#name, MSG_KIND_##kind, req, doc},
#define CG_MSG_END                                                                       \
    {                                                                                    \
        NULL, MSG_KIND_ANY, 0, NULL                                                      \
    }                                                                                    \
    }                                                                                    \
    ;
#include "messages.def"
#undef CG_MSG_NAMED
#undef CG_FIELD
#undef CG_MSG_END

//  Second pass: one definition per message.
#define CG_MSG_NAMED(type, service, name, doc)                                           \
    static const msg_def_t s_def_##type = {#type, service, name, doc, s_fields_##type};
#define CG_FIELD(name, kind, req, doc)
#define CG_MSG_END
#include "messages.def"
#undef CG_MSG_NAMED

//  Third pass: the table of all.
#define CG_MSG_NAMED(type, service, name, doc) &s_def_##type,
static const msg_def_t *const s_all[] = {
#include "messages.def"
    NULL};
#undef CG_MSG_NAMED
#undef CG_MSG
#undef CG_EVENT
#undef CG_FRAME
#undef CG_METHOD
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

const msg_def_t *
msg_lookup_name (const char *service, const char *name)
{
    if (!service || !name)
        return NULL;
    for (const msg_def_t *const *d = s_all; *d; d++)
        if (!strcmp ((*d)->service, service) && !strcmp ((*d)->name, name))
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
msg_validate (const char *type, const msgpack_object *body, char *err, size_t errlen,
              char *param, size_t paramlen)
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
        //  A nil counts as absent, except where any value (nil too) is
        //  declared: the rule msg_check_out applies to what we send.
        if ((!v || (v->type == MSGPACK_OBJECT_NIL && f->kind != MSG_KIND_ANY))
            && f->required) {
            snprintf (err, errlen, "'%s' is required", f->name);
            if (param && paramlen)
                snprintf (param, paramlen, "%s", f->name);
            return -1;
        }
        if (v && v->type != MSGPACK_OBJECT_NIL && !s_kind_matches (f->kind, v)) {
            snprintf (err, errlen, "'%s' must be %s", f->name, s_kind_name (f->kind));
            if (param && paramlen)
                snprintf (param, paramlen, "%s", f->name);
            return -1;
        }
    }
    return 0;
}

//  ---- Outgoing checks ----------------------------------------------------------

static const msg_field_t *
s_field (const msg_def_t *def, const char *name, size_t len)
{
    for (const msg_field_t *f = def->fields; f->name; f++)
        if (strlen (f->name) == len && !memcmp (f->name, name, len))
            return f;
    return NULL;
}

//  A decoded body against def, strictly.
static int
s_check_map (const msg_def_t *def, const msgpack_object *body, char *err, size_t errlen)
{
    if (body->type != MSGPACK_OBJECT_MAP) {
        snprintf (err, errlen, "%s body is not a map", def->type);
        return -1;
    }
    for (uint32_t i = 0; i < body->via.map.size; i++) {
        const msgpack_object *k = &body->via.map.ptr[i].key;
        const msgpack_object *v = &body->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) {
            snprintf (err, errlen, "%s has a key that is not a string", def->type);
            return -1;
        }
        const msg_field_t *f = s_field (def, k->via.str.ptr, k->via.str.size);
        if (!f) {
            snprintf (err, errlen, "%s carries an undeclared field '%.*s'", def->type,
                      (int) k->via.str.size, k->via.str.ptr);
            return -1;
        }
        if (v->type == MSGPACK_OBJECT_NIL ? f->required && f->kind != MSG_KIND_ANY
                                          : !s_kind_matches (f->kind, v)) {
            snprintf (err, errlen, "%s: '%s' must be %s", def->type, f->name,
                      s_kind_name (f->kind));
            return -1;
        }
    }
    for (const msg_field_t *f = def->fields; f->name; f++)
        if (f->required && !mp_get (body, f->name)) {
            snprintf (err, errlen, "%s: '%s' is required", def->type, f->name);
            return -1;
        }
    return 0;
}

int
msg_check_out (const msg_def_t *def, const void *data, size_t size, char *err,
               size_t errlen)
{
    msgpack_object empty = {.type = MSGPACK_OBJECT_MAP};
    if (size == 0)
        return s_check_map (def, &empty, err, errlen);
    mp_reader_t r;
    int rc = -1;
    if (mp_reader_init (&r, data, size) == 0)
        rc = s_check_map (def, r.root, err, errlen);
    else
        snprintf (err, errlen, "%s body is not one well-formed msgpack object",
                  def->type);
    mp_reader_fini (&r);
    return rc;
}

static int
s_json_kind_matches (msg_kind_t kind, const cJSON *v)
{
    switch (kind) {
    case MSG_KIND_STR: return cJSON_IsString (v);
    case MSG_KIND_INT:
        return cJSON_IsNumber (v) && v->valuedouble == (double) (int64_t) v->valuedouble;
    case MSG_KIND_BOOL: return cJSON_IsBool (v);
    case MSG_KIND_MAP: return cJSON_IsObject (v);
    case MSG_KIND_ARRAY: return cJSON_IsArray (v);
    default: return 1;
    }
}

int
msg_check_json_out (const msg_def_t *def, const cJSON *obj, char *err, size_t errlen)
{
    if (!cJSON_IsObject (obj)) {
        snprintf (err, errlen, "%s is not a JSON object", def->type);
        return -1;
    }
    for (const cJSON *v = obj->child; v; v = v->next) {
        const msg_field_t *f =
            v->string ? s_field (def, v->string, strlen (v->string)) : NULL;
        if (!f) {
            snprintf (err, errlen, "%s carries an undeclared field '%s'", def->type,
                      v->string ? v->string : "?");
            return -1;
        }
        if (cJSON_IsNull (v) ? f->required && f->kind != MSG_KIND_ANY
                             : !s_json_kind_matches (f->kind, v)) {
            snprintf (err, errlen, "%s: '%s' must be %s", def->type, f->name,
                      s_kind_name (f->kind));
            return -1;
        }
    }
    for (const msg_field_t *f = def->fields; f->name; f++)
        if (f->required && !cJSON_GetObjectItemCaseSensitive (obj, f->name)) {
            snprintf (err, errlen, "%s: '%s' is required", def->type, f->name);
            return -1;
        }
    return 0;
}

static atomic_bool s_check_off;

void
msg_check_enable (bool on)
{
    atomic_store (&s_check_off, !on);
}

void
msg_check_failed (const char *what, const char *err)
{
    if (!MSG_CHECKED || atomic_load (&s_check_off))
        return;
    fprintf (stderr,
             "clawgate: %s breaks its declaration in "
             "schemas/messages.def: %s\n",
             what, err);
    abort ();
}

void
msg_check_send (const char *type, const char *service, const void *body, size_t size)
{
    if (!MSG_CHECKED || atomic_load (&s_check_off))
        return;
    char err[256];
    const msg_def_t *def = msg_lookup (type);
    if (!def || !strcmp (def->service, MSG_SERVICE_EVENT)
        || !strcmp (def->service, MSG_SERVICE_FRAME)
        || !strcmp (def->service, MSG_SERVICE_METHOD)) {
        msg_check_failed (type ? type : "(null)", "no such bus message");
        return;
    }
    const char *want = service ? service : "reply";
    if (strcmp (def->service, want)) {
        snprintf (err, sizeof (err), "sent to %s, declared for %s", want, def->service);
        msg_check_failed (type, err);
    }
    else if (msg_check_out (def, body, size, err, sizeof (err)))
        msg_check_failed (type, err);
}

void
msg_check_event (const char *topic, const void *body, size_t size)
{
    if (!MSG_CHECKED || atomic_load (&s_check_off))
        return;
    const char *slash = topic ? strrchr (topic, '/') : NULL;
    const char *name = slash ? slash + 1 : topic;
    const msg_def_t *def = msg_lookup_name (MSG_SERVICE_EVENT, name);
    char err[256];
    if (!def)
        msg_check_failed (topic ? topic : "(null)", "no such event");
    else if (msg_check_out (def, body, size, err, sizeof (err)))
        msg_check_failed (def->name, err);
}

void
msg_check_frame (const char *text, size_t len)
{
    if (!MSG_CHECKED || atomic_load (&s_check_off))
        return;
    cJSON *j = cJSON_ParseWithLength (text, len);
    const cJSON *type = cJSON_GetObjectItemCaseSensitive (j, "type");
    const msg_def_t *def = NULL;
    char err[256];
    if (cJSON_IsString (type)) {
        def = msg_lookup_name (MSG_SERVICE_FRAME, type->valuestring);
        const msg_def_t *event = msg_lookup_name (MSG_SERVICE_EVENT, type->valuestring);
        if (!def && event) {
            //  {"type":<event>,"data":<its body>}: the frame's shape, then
            //  the body against the event's own declaration.
            def = msg_lookup_name (MSG_SERVICE_FRAME, "event");
            const cJSON *data = cJSON_GetObjectItemCaseSensitive (j, "data");
            if (data && msg_check_json_out (event, data, err, sizeof (err)))
                msg_check_failed (event->name, err);
        }
    }
    if (!def)
        msg_check_failed ("a WebSocket frame", "no declared type");
    else if (msg_check_json_out (def, j, err, sizeof (err)))
        msg_check_failed (def->name, err);
    cJSON_Delete (j);
}
