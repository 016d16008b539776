/*  =========================================================================
    route_channels - the channel API, platform webhooks, pairing and hooks

    GET  /v1/channels                         CHANNEL_LIST       channels
    GET  /v1/channels/{id}/status             CHANNEL_STATUS     channels
    POST /v1/channels/{id}/enable | disable   CHANNEL_ENABLE     channels
    GET  /v1/channels/{id}/pairing            CHANNEL_PAIRING_LIST    admin
    POST /v1/channels/{id}/pairing/{code}     CHANNEL_PAIRING_APPROVE admin
    POST /v1/channels/{id}/webhook            CHANNEL_WEBHOOK    the platform's
                                                                 own secret
    POST /v1/hooks/{name}                     HOOK_RUN           the hook's
                                                                 own token

    The channel actor answers all of them (docs/channels.md).  The two
    public routes carry their own credential to the actor, which checks
    it; a hook's wrong token counts against the address like a wrong
    gateway token.  A hook's call waits for its run (the request timeout
    plus a margin), sliced so a stopping front lets go of its thread.
    =========================================================================
*/
#include "routes.h"
#include "msg_names.h"

#include "auth.h"
#include "channel.h"
#include "log.h"
#include "mpjson.h"
#include "ratelimit_front.h"
#include "run_call.h"

#include <string.h>

#define CHANNELS_WAIT_SLICE_MS 250

int
route_ask (http_req_t *r, const char *service, const char *type, const mp_writer_t *w,
           int timeout_ms, const char *who, bus_msg_t *reply)
{
    envelope_t env;
    envelope_init (&env, type);
    env.timeout_ms = timeout_ms;
    if (bus_front_send (r->bus, service, &env, w->buf.data, w->buf.size))
        return http_send_error (r, 503, "service_unavailable",
                                "The broker is not taking requests", NULL);
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0 || server_stopping (r->server))
            break;
        if (bus_front_recv (
                r->bus,
                (int) (left < CHANNELS_WAIT_SLICE_MS ? left : CHANNELS_WAIT_SLICE_MS),
                reply))
            continue;
        if (reply->kind == BUS_MSG_REPLY && reply->env.corr_id == env.corr_id)
            return 0;
        bus_msg_fini (reply);  //  Stale or stray: drop it
    }
    char msg[128];
    snprintf (msg, sizeof (msg), "The %s did not answer in time", who);
    return http_send_error (r, 503, "service_unavailable", msg, NULL);
}

//  The path segment after prefix (up to the next '/'), into buf.  False if
//  it is empty or longer than cap - 1.
static bool
s_segment (const char *path, const char *prefix, int skip, char *buf, size_t cap)
{
    const char *p = path + strlen (prefix);
    for (int i = 0; i < skip; i++) {
        p = strchr (p, '/');
        if (!p)
            return false;
        p++;
    }
    size_t n = strcspn (p, "/");
    if (n == 0 || n >= cap)
        return false;
    memcpy (buf, p, n);
    buf[n] = 0;
    return true;
}

//  Asks the channel actor with the body in w and relays its answer.
static int
s_relay (http_req_t *r, const char *type, mp_writer_t *w)
{
    bus_msg_t reply;
    int status = route_ask (r, "channel", type, w, r->config->control_timeout_ms,
                            "channel actor", &reply);
    mp_writer_fini (w);
    if (status)
        return status;
    status = http_send_bus_reply (r, &reply, "channel actor");
    bus_msg_fini (&reply);
    return status;
}

//  A body with the channel id of the path (and more from the caller).
static bool
s_channel_body (http_req_t *r, mp_writer_t *w)
{
    char id[32];
    if (!s_segment (r->ri->local_uri, "/v1/channels/", 0, id, sizeof (id))) {
        http_send_error (r, 404, "not_found", "No such channel", NULL);
        return false;
    }
    mp_writer_init (w);
    mp_map_begin (w);
    mp_kv_str (w, MK_channelId, id);
    return true;
}

int
route_channels_list (http_req_t *r)
{
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_map_end (&w);
    return s_relay (r, MT_CHANNEL_LIST, &w);
}

int
route_channel_status (http_req_t *r)
{
    mp_writer_t w;
    if (!s_channel_body (r, &w))
        return 404;
    mp_map_end (&w);
    return s_relay (r, MT_CHANNEL_STATUS, &w);
}

int
route_channel_enable (http_req_t *r)
{
    const char *uri = r->ri->local_uri;
    size_t n = strlen (uri);
    bool on = n > 7 && !strcmp (uri + n - 7, "/enable");
    mp_writer_t w;
    if (!s_channel_body (r, &w))
        return 404;
    mp_kv_bool (&w, MK_enabled, on);
    mp_map_end (&w);
    return s_relay (r, MT_CHANNEL_ENABLE, &w);
}

int
route_channel_pairing_list (http_req_t *r)
{
    mp_writer_t w;
    if (!s_channel_body (r, &w))
        return 404;
    mp_map_end (&w);
    return s_relay (r, MT_CHANNEL_PAIRING_LIST, &w);
}

int
route_channel_pairing_approve (http_req_t *r)
{
    char code[16];
    if (!s_segment (r->ri->local_uri, "/v1/channels/", 2, code, sizeof (code)))
        return http_send_error (r, 404, "not_found",
                                "No pending pairing request with that code", "code");
    mp_writer_t w;
    if (!s_channel_body (r, &w))
        return 404;
    mp_kv_str (&w, MK_code, code);
    mp_map_end (&w);
    return s_relay (r, MT_CHANNEL_PAIRING_APPROVE, &w);
}

//  A 429 for t's refusal (its headers with it).
static int
s_limited (http_req_t *r, rl_ticket_t *t)
{
    r->limit_headers = t->headers;
    return http_send_error (r, 429, "rate_limited", ratelimit_front_message (t), NULL);
}

int
route_channel_webhook (http_req_t *r)
{
    //  A platform's secret is checked by the channel actor; a wrong one
    //  counts against the address like a wrong gateway token.
    ratelimit_front_t *limits = server_limits (r->server);
    rl_ticket_t ticket;
    memset (&ticket, 0, sizeof (ticket));
    if (ratelimit_front_check_address (limits, r->ri->remote_addr, &ticket))
        return s_limited (r, &ticket);
    mp_writer_t w;
    if (!s_channel_body (r, &w))
        return 404;
    //  What the platforms sign and verify with: their headers, the query
    //  of a verification GET.  The actor checks them.
    static const struct {
        const char *header, *key;
    } fields[] = {
        {"X-Telegram-Bot-Api-Secret-Token", MK_secret},
        {"X-Hub-Signature-256", MK_signature},
        {"X-Slack-Signature", MK_signature},
        {"X-Slack-Request-Timestamp", MK_timestamp},
    };
    bool signed_ = false;  //  One signature: WhatsApp's, or else Slack's
    for (size_t i = 0; i < sizeof (fields) / sizeof (fields[0]); i++) {
        const char *v = mg_get_header (r->conn, fields[i].header);
        bool sig = !strcmp (fields[i].key, MK_signature);
        if (v && !(sig && signed_))
            mp_kv_str (&w, fields[i].key, v);
        signed_ = signed_ || (v && sig);
    }
    bool get = !strcmp (r->ri->request_method, "GET");
    mp_kv_str (&w, MK_method, get ? "GET" : "POST");
    if (r->ri->query_string)
        mp_kv_str (&w, MK_query, r->ri->query_string);
    mp_key (&w, MK_body);
    mp_put_strn (&w, r->body ? r->body : "", r->body_len);
    mp_map_end (&w);
    bus_msg_t reply;
    int status = route_ask (r, "channel", MT_CHANNEL_WEBHOOK, &w,
                            r->config->control_timeout_ms, "channel actor", &reply);
    mp_writer_fini (&w);
    if (status)
        return status;
    if (reply.env.status == 401
        && ratelimit_front_auth_failed (limits, r->bus, r->ri->remote_addr, &ticket)) {
        bus_msg_fini (&reply);
        return s_limited (r, &ticket);
    }
    //  A verification's answer is the whole body, as the platform wants it.
    size_t clen = 0;
    const char *challenge = reply.env.status == 200
                                ? mp_get_str (reply.body.root, MK_challenge, &clen)
                                : NULL;
    if (challenge)
        status = http_send_text (r, 200, challenge, clen);
    else
        status = http_send_bus_reply (r, &reply, "channel actor");
    bus_msg_fini (&reply);
    return status;
}

//  The hook's token: Authorization: Bearer <t>, or X-OpenClaw-Token.  Never
//  the query string.
static const char *
s_hook_token (http_req_t *r)
{
    const char *auth = mg_get_header (r->conn, "Authorization");
    if (auth && !strncasecmp (auth, "Bearer ", 7))
        return auth + 7;
    return mg_get_header (r->conn, "X-OpenClaw-Token");
}

//  The hook of that name in this front's configuration, or NULL.
static const cfg_hook_t *
s_hook (const cg_config_t *cfg, const char *name)
{
    const cfg_channel_t *ch =
        channel_config_find (cfg->channels, cfg->n_channels, "webhook");
    for (size_t i = 0; ch && i < ch->n_hooks; i++)
        if (streq (ch->hooks[i].name, name))
            return &ch->hooks[i];
    return NULL;
}

//  Asks the channel actor to run the hook and answers as docs/channels.md
//  says.
static int
s_hook_run (http_req_t *r, const char *name, const char *token)
{
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_name, name);
    mp_kv_str (&w, MK_token, token);
    mp_key (&w, MK_body);
    mp_put_strn (&w, r->body ? r->body : "", r->body_len);
    mp_map_end (&w);
    bus_msg_t reply;
    int status = route_ask (r, "channel", MT_HOOK_RUN, &w,
                            r->config->request_timeout_ms + RUN_CALL_GRACE_MS,
                            "channel actor", &reply);
    mp_writer_fini (&w);
    if (status)
        return status;
    char state[16] = "";
    if (reply.env.status == 200)
        mp_copy_str (reply.body.root, MK_status, state, sizeof (state));
    if (streq (state, "failed")) {
        char message[512] = "The run failed";
        const msgpack_object *e = mp_get (reply.body.root, MK_error);
        if (e)
            mp_copy_str (e, MK_message, message, sizeof (message));
        status = http_send_error (r, 502, "run_failed", message, NULL);
    }
    else if (streq (state, "accepted")) {
        size_t len = 0;
        char *text = mpjson_write (reply.body.root, &len);
        status =
            text ? http_send_raw (r, 202, text, len, NULL)
                 : http_send_error (r, 500, "internal_error", "Malformed reply", NULL);
        free (text);
    }
    else
        status = http_send_bus_reply (r, &reply, "channel actor");
    bus_msg_fini (&reply);
    return status;
}

int
route_hook (http_req_t *r)
{
    char name[80];
    const cfg_hook_t *hook =
        s_segment (r->ri->local_uri, "/v1/hooks/", 0, name, sizeof (name))
            ? s_hook (r->config, name)
            : NULL;
    if (!hook)
        return http_send_error (r, 404, "not_found", "No such hook", NULL);
    //  The hook's token is checked here, before anything is asked of an
    //  actor, like the gateway's own: a wrong one counts against the
    //  address, a right one against the hook's rate and concurrency.  (The
    //  channel actor checks it again: it is the authority when a front's
    //  configuration differs.)
    ratelimit_front_t *limits = server_limits (r->server);
    const char *addr = r->ri->remote_addr;
    rl_ticket_t ticket;
    memset (&ticket, 0, sizeof (ticket));
    if (ratelimit_front_check_address (limits, addr, &ticket))
        return s_limited (r, &ticket);
    const char *token = s_hook_token (r);
    if (!token || !auth_equal (token, strlen (token), hook->token)) {
        if (token && ratelimit_front_auth_failed (limits, r->bus, addr, &ticket))
            return s_limited (r, &ticket);
        return http_send_error (r, 401, "unauthorized",
                                "Wrong or missing hook token (Authorization: Bearer, or "
                                "X-OpenClaw-Token)",
                                NULL);
    }
    //  Cut as ratelimit_front cuts its entries' names (both 64 bytes).
    snprintf (r->auth.principal, sizeof (r->auth.principal), "hook:%.58s", name);
    if (ratelimit_front_acquire (limits, r->bus, r->auth.principal, &ticket))
        return s_limited (r, &ticket);
    r->limit_headers = ticket.headers[0] ? ticket.headers : NULL;
    int status = s_hook_run (r, name, token);
    ratelimit_front_release (limits, &ticket);
    return status;
}
