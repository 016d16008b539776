/*  =========================================================================
    error - the error object, built once for JSON and once for msgpack

    Every error a client sees has the same four fields (docs/errors.md):
    {"code", "message", "type", "param"}.  code is one of the codes there
    (invalid_request, unauthorized, forbidden, not_found, rate_limited,
    internal_error, service_unavailable); type follows from the HTTP
    status by one rule, error_type; param names the field at fault, or is
    null.  On the bus an ERROR reply's body carries code,
    message and param (its status is the envelope's), and a chat.error
    event carries {code, message, type} beside its own status.

    Every gateway writer (HTTP bodies, WebSocket frames, SSE frames) builds
    its error object with error_json or error_json_event (and the OpenAI
    stream's with error_json_openai, in OpenAI's words); every actor packs
    its ERROR body with error_pack (through bus_worker_error) and the error
    of a chat.error with error_pack_event.  Pure: no I/O, any thread.
    =========================================================================
*/
#ifndef CG_ERROR_H
#define CG_ERROR_H

#include <cjson/cJSON.h>
#include <stdbool.h>

#include "mp.h"

//  "client_error" below 500, "server_error" from 500 on: the one rule.
//  Returns a static string.
const char *
error_type (int status);

//  The same rule in OpenAI's words, for the one error written in OpenAI's
//  own form (a /v1/chat/completions stream that fails after it began, see
//  docs/openai-api.md "Errors"): "invalid_request_error" below 500,
//  "server_error" from 500 on.  Returns a static string.
const char *
error_type_openai (int status);

//  A status a front may send for an error: status itself when it is in
//  400..599, else 500 (a peer that sent nonsense is a server fault).
int
error_status (int status);

//  {"code", "message", "type", "param"}; param null when NULL.  Caller
//  owns the return value (cJSON_Delete, or hand it to a parent object).
cJSON *
error_json (int status, const char *code, const char *message, const char *param);

//  {"code", "message", "type"}: the error of a chat.error event and of an
//  SSE error frame, which carry no param.  Caller owns the return value.
cJSON *
error_json_event (int status, const char *code, const char *message);

//  {"message", "type", "code"} in OpenAI's form (error_type_openai): the
//  error of a /v1/chat/completions stream after it began.  Caller owns the
//  return value.
cJSON *
error_json_openai (int status, const char *code, const char *message);

//  Packs the body of an ERROR reply: the map {code, message[, param]}
//  (param only when not NULL).  The status goes in the envelope.
void
error_pack (mp_writer_t *w, const char *code, const char *message, const char *param);

//  Packs the map {code, message, type} of a chat.error event's "error"
//  (the caller packs the key "error" before it, and the event's status
//  beside it).
void
error_pack_event (mp_writer_t *w, int status, const char *code, const char *message);

//  An error read back from the bus: an ERROR reply's body, or a
//  chat.error's "error".
typedef struct {
    int status;         //  400..599 (error_status of the wire's)
    char code[48];      //  "internal_error" when absent
    char message[512];  //  dflt when absent
    char param[128];    //  "" when absent
} error_info_t;

//  Fills out from body (a msgpack map, or NULL) and status; code and
//  message default to "internal_error" and dflt.  Returns out.
error_info_t *
error_read (const msgpack_object *body, int status, const char *dflt, error_info_t *out);

#endif
