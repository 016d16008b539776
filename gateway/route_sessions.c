/*  =========================================================================
    route_sessions - /v1/sessions and /v1/sessions/{key}

    GET /v1/sessions?limit=&cursor=&channel=&agentId=   -> SESSION_LIST
    GET /v1/sessions/{key}?limit=&cursor=               -> SESSION_GET
    DELETE /v1/sessions/{key}                           -> SESSION_DELETE

    The session actor answers; its msgpack replies map one to one onto the
    JSON bodies (schemas/messages.def).  Control requests: they wait at most
    controlTimeoutMs and never queue behind runs (the session actor does no
    provider work).
    =========================================================================
*/
#include "routes.h"
#include "msg_names.h"

#include "ids.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S_PREFIX "/v1/sessions/"

//  Reads query parameter name into buf.  Returns its length, or -1 when
//  absent (or too long, which is then refused by the caller's check).
static int
s_query (http_req_t *r, const char *name, char *buf, size_t cap)
{
    const char *q = r->ri->query_string;
    if (!q)
        return -1;
    int n = mg_get_var (q, strlen (q), name, buf, cap);
    return n >= 0 ? n : (n == -2 ? -2 : -1);
}

//  Packs the optional query parameters listed in names (strings) and limit
//  (an integer) as one map.  Returns 0, or the status of the 400 it sent.
static int
s_pack_query (http_req_t *r, mp_writer_t *w, const char *key, const char *const *names)
{
    char values[4][256];
    const char *present[4];
    size_t np = 0;
    int64_t limit = 0;
    bool has_limit = false;
    char buf[32];
    int len = s_query (r, "limit", buf, sizeof (buf));
    if (len != -1) {
        char *end;
        errno = 0;
        long long v = strtoll (buf, &end, 10);
        if (len <= 0 || *end || errno)
            return http_send_error (r, 400, "invalid_request",
                                    "limit must be an integer from 1 to 1000", "limit");
        limit = v;
        has_limit = true;
    }
    for (int i = 0; names[i] && i < 4; i++) {
        int got = s_query (r, names[i], values[np], sizeof (values[np]));
        if (got == -2 || got == 0) {
            char msg[96];
            snprintf (msg, sizeof (msg),
                      "%s must be a non-empty string of at "
                      "most 255 bytes",
                      names[i]);
            return http_send_error (r, 400, "invalid_request", msg, names[i]);
        }
        if (got > 0)
            present[np++] = names[i];
    }
    mp_map_begin (w);
    if (key)
        mp_kv_str (w, MK_sessionKey, key);
    if (has_limit)
        mp_kv_int (w, MK_limit, limit);
    for (size_t i = 0; i < np; i++)
        mp_kv_str (w, present[i], values[i]);
    mp_map_end (w);
    return 0;
}

//  Sends type with body to the session actor and relays its answer.
static int
s_call (http_req_t *r, const char *type, const char *key, mp_writer_t *w)
{
    envelope_t env;
    envelope_init (&env, type);
    //  Reads go to the session.read actors, which never wait on commits.
    bool write = strcmp (type, MT_SESSION_DELETE) == 0;
    const char *service = write ? MS_SESSION_DELETE : MS_SESSION_GET;
    //  The key routes (the broker keeps a key on one worker): a delete
    //  goes where the session's runs go; reads carry none, so they spread
    //  round-robin over the readers, which any of them can serve, instead
    //  of by hash, which can queue concurrent gets unevenly.
    if (key && write)
        snprintf (env.session_key, sizeof (env.session_key), "%s", key);
    env.timeout_ms = r->config->control_timeout_ms;
    bus_msg_t reply;
    if (bus_front_call (r->bus, service, &env, w->buf.data, w->buf.size,
                        r->config->control_timeout_ms, &reply))
        return http_send_error (r, 503, "service_unavailable",
                                "The session actor did not answer in time", NULL);
    int status = http_send_bus_reply (r, &reply, "session actor");
    bus_msg_fini (&reply);
    return status;
}

int
route_sessions_list (http_req_t *r)
{
    static const char *const names[] = {"cursor", "channel", "agentId", NULL};
    mp_writer_t w;
    mp_writer_init (&w);
    int status = s_pack_query (r, &w, NULL, names);
    if (!status)
        status = s_call (r, MT_SESSION_LIST, NULL, &w);
    mp_writer_fini (&w);
    return status;
}

//  The {key} of /v1/sessions/{key}, checked (docs/sessions.md).  NULL after
//  sending 400.
static const char *
s_key (http_req_t *r)
{
    const char *key = r->ri->local_uri + strlen (S_PREFIX);
    bool ok = ids_session_key_valid (key);
    if (!ok)
        http_send_error (r, 400, "invalid_request", "Invalid session key", "sessionKey");
    return ok ? key : NULL;
}

int
route_session_get (http_req_t *r)
{
    const char *key = s_key (r);
    if (!key)
        return r->status;
    static const char *const names[] = {"cursor", NULL};
    mp_writer_t w;
    mp_writer_init (&w);
    int status = s_pack_query (r, &w, key, names);
    if (!status)
        status = s_call (r, MT_SESSION_GET, key, &w);
    mp_writer_fini (&w);
    return status;
}

int
route_session_delete (http_req_t *r)
{
    const char *key = s_key (r);
    if (!key)
        return r->status;
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_sessionKey, key);
    mp_map_end (&w);
    int status = s_call (r, MT_SESSION_DELETE, key, &w);
    mp_writer_fini (&w);
    return status;
}
