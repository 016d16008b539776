/*  =========================================================================
    route_system - /health, /ready, /status and /v1/models

    /status and /ready cross the broker (front -> broker -> system actor ->
    front); /health answers from the front alone, so it stays true while
    the process lives.  /v1/models comes from the configuration.
    =========================================================================
*/
#include "routes.h"
#include "msg_names.h"

#include "mpjson.h"
#include "ws.h"

#include <string.h>

//  An empty msgpack map: the body of requests that carry no fields.
static const unsigned char s_empty_map = 0x80;

int
route_health (http_req_t *r)
{
    static const char body[] = "{\"ok\":true}";
    return http_send_raw (r, 200, body, sizeof (body) - 1, NULL);
}

//  Which enabled channels are broken (status "error"), as a sentence in
//  buf ("" if none, or none configured).
static void
s_broken_channels (http_req_t *r, char *buf, size_t cap)
{
    bool any = false;
    for (size_t i = 0; i < r->config->n_channels; i++)
        any |= r->config->channels[i].enabled;
    if (!any)
        return;
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_map_end (&w);
    envelope_t env;
    envelope_init (&env, MT_CHANNEL_LIST);
    bus_msg_t reply;
    int timeout =
        r->config->control_timeout_ms < 2000 ? r->config->control_timeout_ms : 2000;
    int rc = bus_front_call (r->bus, MS_CHANNEL_LIST, &env, w.buf.data, w.buf.size,
                             timeout, &reply);
    mp_writer_fini (&w);
    if (rc) {
        snprintf (buf, cap, "the channel actor does not answer");
        return;
    }
    const msgpack_object *arr = mp_get (reply.body.root, MK_channels);
    for (uint32_t i = 0;
         arr && arr->type == MSGPACK_OBJECT_ARRAY && i < arr->via.array.size; i++) {
        const msgpack_object *ch = &arr->via.array.ptr[i];
        char id[32], st[32], err[200] = "";
        if (mp_copy_str (ch, MK_id, id, sizeof (id))
            || mp_copy_str (ch, MK_status, st, sizeof (st)) || strcmp (st, "error"))
            continue;
        mp_copy_str (ch, MK_lastError, err, sizeof (err));
        size_t used = strlen (buf);
        snprintf (buf + used, cap - used, "%schannel %s is broken (%s)", used ? "; " : "",
                  id, err[0] ? err : "error");
    }
    bus_msg_fini (&reply);
}

int
route_ready (http_req_t *r)
{
    if (server_draining (r->server))
        return http_send_error (r, 503, "service_unavailable",
                                "Not ready: the gateway is shutting down", NULL);
    envelope_t env;
    envelope_init (&env, MT_MMI_SERVICES);
    bus_msg_t reply;
    int timeout =
        r->config->control_timeout_ms < 2000 ? r->config->control_timeout_ms : 2000;
    if (bus_front_call (r->bus, BUS_SERVICE_BROKER, &env, &s_empty_map, 1, timeout,
                        &reply))
        return http_send_error (r, 503, "service_unavailable",
                                "Not ready: the broker does not answer", NULL);
    const msgpack_object *services = mp_get (reply.body.root, MK_services);
    char missing[256] = "";
    for (char **s = r->config->ready_services; s && *s; s++) {
        int64_t n = 0;
        if (!mp_get_int (services, *s, &n) || n < 1) {
            size_t used = strlen (missing);
            snprintf (missing + used, sizeof (missing) - used, "%s%s", used ? ", " : "",
                      *s);
        }
    }
    int status;
    char broken[400] = "";
    if (!missing[0])
        s_broken_channels (r, broken, sizeof (broken));
    if (missing[0]) {
        char msg[320];
        snprintf (msg, sizeof (msg), "Not ready: no live worker for %s", missing);
        status = http_send_error (r, 503, "service_unavailable", msg, NULL);
    }
    else if (broken[0]) {
        char msg[480];
        snprintf (msg, sizeof (msg), "Not ready: %s", broken);
        status = http_send_error (r, 503, "service_unavailable", msg, NULL);
    }
    else {
        cJSON *root = cJSON_CreateObject ();
        cJSON_AddBoolToObject (root, "ready", true);
        cJSON *svc = services ? mpjson_to_json (services) : NULL;
        cJSON_AddItemToObject (root, "services", svc ? svc : cJSON_CreateObject ());
        status = http_send_json (r, 200, root);
        cJSON_Delete (root);
    }
    bus_msg_fini (&reply);
    return status;
}

int
route_status (http_req_t *r)
{
    envelope_t env;
    envelope_init (&env, MT_SYSTEM_STATUS);
    env.timeout_ms = r->config->control_timeout_ms;
    bus_msg_t reply;
    if (bus_front_call (r->bus, "system", &env, &s_empty_map, 1,
                        r->config->control_timeout_ms, &reply))
        return http_send_error (r, 503, "service_unavailable",
                                "The system actor did not answer in time", NULL);
    int status;
    if (reply.env.status != 200)
        status = http_send_bus_error (r, &reply);
    else {
        //  docs/websocket.md: system.status over WebSocket sends the same
        //  body, made by the same function.
        cJSON *root = ws_status_body (reply.body.root, r->config, r->server);
        if (root) {
            status = http_send_json (r, 200, root);
            cJSON_Delete (root);
        }
        else
            status = http_send_error (r, 500, "internal_error",
                                      "Malformed status from the system actor", NULL);
    }
    bus_msg_fini (&reply);
    return status;
}

int
route_models (http_req_t *r)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "object", "list");
    cJSON *data = cJSON_AddArrayToObject (root, "data");
    for (size_t i = 0; i < r->config->n_models; i++) {
        const cfg_model_t *m = &r->config->models[i];
        cJSON *item = cJSON_CreateObject ();
        cJSON_AddStringToObject (item, "id", m->id);
        cJSON_AddStringToObject (item, "object", "model");
        cJSON_AddNumberToObject (item, "created", (double) r->config->started_at);
        cJSON_AddStringToObject (item, "owned_by", m->owned_by);
        if (m->description)
            cJSON_AddStringToObject (item, "description", m->description);
        cJSON_AddItemToArray (data, item);
    }
    int status = http_send_json (r, 200, root);
    cJSON_Delete (root);
    return status;
}
