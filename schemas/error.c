/*  =========================================================================
    error - the error object, built once for JSON and once for msgpack
    =========================================================================
*/
#include "error.h"
#include "msg_names.h"

#include <stdio.h>

const char *
error_type (int status)
{
    return status >= 500 ? "server_error" : "client_error";
}

const char *
error_type_openai (int status)
{
    return status >= 500 ? "server_error" : "invalid_request_error";
}

int
error_status (int status)
{
    return status >= 400 && status <= 599 ? status : 500;
}

//  The common part: code, message and type, in the order every writer has
//  always sent them.
static cJSON *
s_json (int status, const char *code, const char *message)
{
    cJSON *e = cJSON_CreateObject ();
    if (!e)
        return NULL;
    cJSON_AddStringToObject (e, "code", code);
    cJSON_AddStringToObject (e, "message", message);
    cJSON_AddStringToObject (e, "type", error_type (status));
    return e;
}

cJSON *
error_json (int status, const char *code, const char *message, const char *param)
{
    cJSON *e = s_json (status, code, message);
    if (e && param)
        cJSON_AddStringToObject (e, "param", param);
    else if (e)
        cJSON_AddNullToObject (e, "param");
    return e;
}

cJSON *
error_json_event (int status, const char *code, const char *message)
{
    return s_json (status, code, message);
}

cJSON *
error_json_openai (int status, const char *code, const char *message)
{
    cJSON *e = cJSON_CreateObject ();
    if (!e)
        return NULL;
    cJSON_AddStringToObject (e, "message", message);
    cJSON_AddStringToObject (e, "type", error_type_openai (status));
    cJSON_AddStringToObject (e, "code", code);
    return e;
}

void
error_pack (mp_writer_t *w, const char *code, const char *message, const char *param)
{
    mp_map_begin (w);
    mp_kv_str (w, MK_code, code);
    mp_kv_str (w, MK_message, message);
    if (param)
        mp_kv_str (w, MK_param, param);
    mp_map_end (w);
}

void
error_pack_event (mp_writer_t *w, int status, const char *code, const char *message)
{
    mp_map_begin (w);
    mp_kv_str (w, MK_code, code);
    mp_kv_str (w, MK_message, message);
    mp_kv_str (w, MK_type, error_type (status));
    mp_map_end (w);
}

error_info_t *
error_read (const msgpack_object *body, int status, const char *dflt, error_info_t *out)
{
    out->status = error_status (status);
    snprintf (out->code, sizeof (out->code), "internal_error");
    snprintf (out->message, sizeof (out->message), "%s", dflt);
    out->param[0] = 0;
    mp_copy_str (body, MK_code, out->code, sizeof (out->code));
    mp_copy_str (body, MK_message, out->message, sizeof (out->message));
    mp_copy_str (body, MK_param, out->param, sizeof (out->param));
    return out;
}
