/*  =========================================================================
    msg - validation of message bodies against schemas/messages.def
    =========================================================================
*/
#ifndef CG_MSG_H
#define CG_MSG_H

#include <msgpack.h>
#include <stddef.h>

typedef enum {
    MSG_KIND_STR,
    MSG_KIND_INT,
    MSG_KIND_BOOL,
    MSG_KIND_MAP,
    MSG_KIND_ARRAY,
    MSG_KIND_ANY,
} msg_kind_t;

typedef struct {
    const char *name;        //  Field name, as the JSON client sees it
    msg_kind_t kind;         //  Expected msgpack kind
    int required;            //  1 if the body must carry it
    const char *doc;         //  One sentence
} msg_field_t;

typedef struct {
    const char *type;        //  e.g. "SYSTEM_STATUS"
    const char *service;     //  Where it goes: a service, "reply" or "event"
    const char *doc;         //  Grammar and purpose
    const msg_field_t *fields;   //  NULL-terminated
} msg_def_t;

//  Returns the declaration of type, or NULL if no such message exists.
const msg_def_t *
msg_lookup (const char *type);

//  Checks body against the declaration of type.  A NULL body counts as an
//  empty map.  Returns 0, or -1 with a sentence in err naming the problem
//  (and the field in param, if one is at fault).
int
msg_validate (const char *type, const msgpack_object *body, char *err,
              size_t errlen, char *param, size_t paramlen);

//  Every declared message, NULL-terminated (for docs and tests).
const msg_def_t *const *
msg_all (void);

#endif
