/*  =========================================================================
    msg - validation of message bodies against schemas/messages.def
    =========================================================================
*/
#ifndef CG_MSG_H
#define CG_MSG_H

#include <cjson/cJSON.h>
#include <msgpack.h>
#include <stdbool.h>
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
    const char *name;  //  Field name, as the JSON client sees it
    msg_kind_t kind;   //  Expected msgpack kind
    int required;      //  1 if the body must carry it
    const char *doc;   //  One sentence
} msg_field_t;

//  What service holds for the forms other than CG_MSG.
#define MSG_SERVICE_EVENT "event"       //  CG_EVENT: a bus event
#define MSG_SERVICE_FRAME "ws.frame"    //  CG_FRAME: a WebSocket frame we send
#define MSG_SERVICE_METHOD "ws.method"  //  CG_METHOD: a WebSocket method

typedef struct {
    const char *type;           //  e.g. "SYSTEM_STATUS"
    const char *service;        //  A service, "reply", or MSG_SERVICE_*
    const char *name;           //  Wire name: the type for CG_MSG, else e.g.
                                //  "chat.delta", "connected", "chat.run"
    const char *doc;            //  Grammar and purpose
    const msg_field_t *fields;  //  NULL-terminated
} msg_def_t;

//  Returns the declaration of type, or NULL if no such message exists.
const msg_def_t *
msg_lookup (const char *type);

//  Checks body against the declaration of type.  A NULL body counts as an
//  empty map.  Returns 0, or -1 with a sentence in err naming the problem
//  (and the field in param, if one is at fault).
int
msg_validate (const char *type, const msgpack_object *body, char *err, size_t errlen,
              char *param, size_t paramlen);

//  The declaration of an event, frame or method by its wire name (service
//  one of MSG_SERVICE_*), or NULL.
const msg_def_t *
msg_lookup_name (const char *service, const char *name);

//  ---- Outgoing checks ----------------------------------------------------------
//  Strict: besides msg_validate's rules, every field must be declared, and a
//  required field of kind ANY may be nil.  Each returns 0, or -1 with a
//  sentence in err.

//  size bytes of msgpack at data (one map, or nothing for an empty body)
//  against def.
int
msg_check_out (const msg_def_t *def, const void *data, size_t size, char *err,
               size_t errlen);

//  A JSON object against def (JSON numbers that are whole count as INT).
int
msg_check_json_out (const msg_def_t *def, const cJSON *obj, char *err, size_t errlen);

//  In checked builds (CLAWGATE_CHECK_MESSAGES: every build but Release),
//  logs the broken declaration and aborts: a body that breaks its
//  declaration must fail the test that sent it.  No-op otherwise.
//  what names the message for the log.
#ifdef CG_CHECK_MESSAGES
#define MSG_CHECKED 1
#else
#define MSG_CHECKED 0
#endif
void
msg_check_failed (const char *what, const char *err);

//  Turns the checks off (or on again) for the whole process: only for tests
//  that send broken messages on purpose to see them refused.
void
msg_check_enable (bool on);

//  What the bus calls before it sends; each is a no-op in unchecked builds
//  and otherwise calls msg_check_failed on a body that breaks its
//  declaration.  A request: type declared, going to its declared service
//  (service NULL: a reply), body as declared.
void
msg_check_send (const char *type, const char *service, const void *body, size_t size);
//  An event published under topic ".../<name>".
void
msg_check_event (const char *topic, const void *body, size_t size);
//  A WebSocket frame (JSON text) we are about to send.
void
msg_check_frame (const char *text, size_t len);

//  Every declared message, NULL-terminated (for docs and tests).
const msg_def_t *const *
msg_all (void);

#endif
