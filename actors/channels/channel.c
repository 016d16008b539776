/*  =========================================================================
    channel - the channel actor's requests, status and life cycle

    Requests (schemas/messages.def): CHANNEL_LIST, CHANNEL_STATUS,
    CHANNEL_ENABLE, CHANNEL_WEBHOOK, CHANNEL_PAIRING_LIST,
    CHANNEL_PAIRING_APPROVE and HOOK_RUN.  The loop also waits on the
    actor's own DEALER (the runs' events), libcurl's sockets (platform
    calls) and one ticker (deadlines, retries, typing).

    A channel's status: not_configured (no channels.<id> entry),
    disabled (configured off, or disabled through the API: the stored
    choice wins over the file), else what its transport says
    (connected, disconnected while it reconnects, error when it gave up
    or the platform refused its credentials).
    =========================================================================
*/
#include "channel_internal.h"
#include "ids.h"
#include "log.h"
#include "ssl_lazy.h"
#include "msg_names.h"
#include "settings.h"

#include <string.h>

const char *const channel_ids[] = {"whatsapp", "telegram", "discord",
                                   "slack",    "webhook",  NULL};

static const platform_t *
s_platform (const char *id)
{
    static const platform_t *const all[] = {&platform_whatsapp, &platform_telegram,
                                            &platform_discord,  &platform_slack,
                                            &platform_webhook,  NULL};
    for (const platform_t *const *p = all; *p; p++)
        if (streq (id, (*p)->id))
            return *p;
    return NULL;
}

const cfg_channel_t *
channel_config_find (const cfg_channel_t *channels, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (streq (channels[i].id, id))
            return &channels[i];
    return NULL;
}

int64_t
chan_now (void)
{
    return (int64_t) zclock_time ();
}

void
chan_set_status (chan_t *ch, const char *status, const char *error)
{
    ch->refused_from = NULL;
    if (error) {
        snprintf (ch->last_error, sizeof (ch->last_error), "%s", error);
        ch->last_error_at = chan_now ();
    }
    if (ch->status != status && (!ch->status || strcmp (ch->status, status))) {
        if (streq (status, "connected")) {
            ch->last_connected_at = chan_now ();
            log_info ("channel", "%s: connected", ch->platform->id);
        }
        else if (streq (status, "disconnected") && ch->status
                 && streq (ch->status, "connected"))
            ch->reconnects++;
        if (!streq (status, "connected"))
            log_warn ("channel", "%s: %s%s%s", ch->platform->id, status,
                      error ? ": " : "", error ? error : "");
    }
    ch->status = status;
}

int
chan_backoff_ms (const chan_t *ch, int attempt)
{
    int lo = ch->cfg ? ch->cfg->retry_min_ms : 1000;
    int hi = ch->cfg ? ch->cfg->retry_max_ms : 60000;
    int64_t d = lo;
    for (int i = 1; i < attempt && d < hi; i++)
        d *= 2;
    if (d > hi)
        d = hi;
    //  Up to 20% less, so that channels (and gateways) do not retry in step.
    return (int) (d - (int64_t) (randof ((int) (d / 5) + 1)));
}

int
chan_base_url (const chan_t *ch, const char **base)
{
    const char *b =
        ch->cfg && ch->cfg->base_url ? ch->cfg->base_url : ch->platform->default_base_url;
    size_t len = b ? strlen (b) : 0;
    while (len > 0 && b[len - 1] == '/')
        len--;
    *base = b ? b : "";
    return (int) len;
}

static int
s_on_later (zloop_t *loop, int timer_id, void *arg)
{
    chan_t *ch = (chan_t *) arg;
    ch->timer = -1;
    if (ch->next && ch->running)
        ch->next (ch);
    return 0;
}

void
chan_later (chan_t *ch, int delay_ms, void (*next) (chan_t *ch))
{
    chan_later_end (ch);
    ch->next = next;
    ch->timer = zloop_timer (ch->self->loop, (size_t) (delay_ms > 0 ? delay_ms : 0), 1,
                             s_on_later, ch);
}

void
chan_later_end (chan_t *ch)
{
    if (ch->timer >= 0)
        zloop_timer_end (ch->self->loop, ch->timer);
    ch->timer = -1;
    ch->next = NULL;
}

int
chan_retry_after_ms (const char *value, int otherwise)
{
    char *end = NULL;
    double s = value ? strtod (value, &end) : 0;
    if (!value || end == value || !(s > 0 && s <= 3600))
        return otherwise;
    return (int) (s * 1000) + 1;
}

static int
s_hex (int c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

const char *
chan_query_get (const char *query, const char *name, char *buf, size_t cap)
{
    size_t nlen = strlen (name);
    for (const char *p = query; p && *p;) {
        const char *end = strchr (p, '&');
        if (!end)
            end = p + strlen (p);
        if ((size_t) (end - p) > nlen && !strncmp (p, name, nlen) && p[nlen] == '=') {
            size_t k = 0;
            for (const char *v = p + nlen + 1; v < end; v++) {
                int c = (unsigned char) *v;
                if (c == '+')
                    c = ' ';
                else if (c == '%' && v + 2 < end && s_hex (v[1]) >= 0
                         && s_hex (v[2]) >= 0) {
                    c = s_hex (v[1]) * 16 + s_hex (v[2]);
                    v += 2;
                }
                if (c == 0 || k + 1 >= cap)
                    return NULL;
                buf[k++] = (char) c;
            }
            buf[k] = 0;
            return buf;
        }
        p = *end ? end + 1 : end;
    }
    return NULL;
}

bool
chan_signature_ok (const char *key, const char *prefix, size_t prefix_len,
                   const char *data, size_t len, const char *hex)
{
    if (!key || !hex || strlen (hex) != 64)
        return false;
    unsigned char mac[32];
    char *joined = NULL;
    if (prefix_len) {
        if (len > SIZE_MAX - prefix_len
            || !(joined = (char *) malloc (prefix_len + len + 1)))
            return false;
        memcpy (joined, prefix, prefix_len);
        memcpy (joined + prefix_len, data, len);
    }
    int rc = ssl_hmac_sha256 (key, strlen (key), joined ? joined : data, prefix_len + len,
                              mac);
    free (joined);
    if (rc)
        return false;
    char want[65], got[65];
    for (int i = 0; i < 32; i++)
        snprintf (want + 2 * i, 3, "%02x", mac[i]);
    for (int i = 0; i < 64; i++)
        got[i] = (char) (hex[i] >= 'A' && hex[i] <= 'F' ? hex[i] - 'A' + 'a' : hex[i]);
    got[64] = 0;
    return ids_secret_equal (got, 64, want);
}

//  ---- Status ----------------------------------------------------------------

static const char *
s_status (const chan_t *ch)
{
    if (!ch->cfg)
        return "not_configured";
    if (!ch->enabled)
        return "disabled";
    return ch->status ? ch->status : "disconnected";
}

static void
s_kv_time (mp_writer_t *w, const char *key, int64_t ms)
{
    if (ms > 0) {
        char iso[LOG_ISO_TIME_LEN + 1];
        mp_kv_str (w, key, log_iso_time (iso, ms));
    }
}

//  Packs ch's fields (the inside of its map).
static void
s_pack_fields (mp_writer_t *w, chan_t *ch)
{
    mp_kv_str (w, MK_id, ch->platform->id);
    mp_kv_str (w, MK_name, ch->platform->name);
    mp_kv_bool (w, MK_enabled, ch->enabled);
    mp_kv_bool (w, MK_configured, ch->cfg != NULL);
    mp_kv_str (w, MK_status, s_status (ch));
    if (ch->cfg && ch->platform->default_mode)
        mp_kv_str (w, MK_mode,
                   ch->cfg->mode ? ch->cfg->mode : ch->platform->default_mode);
    if (ch->last_error[0])
        mp_kv_str (w, MK_lastError, ch->last_error);
    else
        mp_kv_nil (w, MK_lastError);
    s_kv_time (w, MK_lastErrorAt, ch->last_error_at);
    s_kv_time (w, MK_lastInboundAt, ch->last_inbound_at);
    s_kv_time (w, MK_lastOutboundAt, ch->last_outbound_at);
    s_kv_time (w, MK_lastConnectedAt, ch->last_connected_at);
    mp_kv_int (w, MK_reconnects, ch->reconnects);
    mp_kv_int (w, MK_inbound, ch->inbound);
    mp_kv_int (w, MK_outbound, ch->outbound);
    mp_kv_int (w, MK_pending, ch->pending);
    mp_kv_int (w, MK_failed, ch->failed);
    if (ch->cfg && ch->cfg->dm_policy && ch->platform->people) {
        mp_kv_str (w, MK_dmPolicy, ch->cfg->dm_policy);
        mp_kv_str (w, MK_groupPolicy, ch->cfg->group_policy);
    }
    if (ch->running && ch->platform->status)
        ch->platform->status (ch, w);
}

static chan_t *
s_find (self_t *self, const bus_request_t *req, bus_worker_t *worker)
{
    char id[32] = "";
    mp_copy_str (req->body.root, MK_channelId, id, sizeof (id));
    for (size_t i = 0; i < self->n_chans; i++)
        if (streq (self->chans[i].platform->id, id))
            return &self->chans[i];
    char msg[160];
    snprintf (msg, sizeof (msg),
              "No channel '%.40s' (use whatsapp, telegram, discord, "
              "slack or webhook)",
              id);
    bus_worker_error (worker, req, ENVELOPE_NOT_FOUND, "not_found", msg, "channelId");
    return NULL;
}

static void
s_list (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_key (&w, MK_channels);
    msgpack_pack_array (&w.pk, (uint32_t) self->n_chans);
    for (size_t i = 0; i < self->n_chans; i++) {
        mp_map_begin (&w);
        s_pack_fields (&w, &self->chans[i]);
        mp_map_end (&w);
    }
    actor_reply_map (worker, req, MT_CHANNEL_LIST_OK, &w);
}

static void
s_reply_status (bus_worker_t *worker, bus_request_t *req, chan_t *ch)
{
    mp_writer_t w;
    actor_reply_begin (&w);
    s_pack_fields (&w, ch);
    actor_reply_map (worker, req, MT_CHANNEL_STATUS_OK, &w);
}

static void
s_status_one (void *state, bus_worker_t *worker, bus_request_t *req)
{
    chan_t *ch = s_find ((self_t *) state, req, worker);
    if (ch)
        s_reply_status (worker, req, ch);
}

//  ---- Starting and stopping ----------------------------------------------------

static void
s_start (chan_t *ch)
{
    if (ch->running || !ch->enabled)
        return;
    if (!ch->platform->start) {
        chan_set_status (ch, "error", "This channel is not built yet");
        return;
    }
    ch->running = true;
    ch->status = "disconnected";  //  Until the transport says more
    ch->platform->start (ch);
    chan_lanes_kick (ch);
}

static void
s_stop (chan_t *ch)
{
    if (!ch->running)
        return;
    ch->platform->stop (ch);
    chan_later_end (ch);
    ch->running = false;
    ch->status = NULL;
}

static void
s_enable (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    chan_t *ch = s_find (self, req, worker);
    if (!ch)
        return;
    bool on = false;
    mp_get_bool (req->body.root, MK_enabled, &on);
    if (!ch->cfg) {
        char msg[128];
        snprintf (msg, sizeof (msg),
                  "Channel %s is not configured: add channels.%s to the configuration",
                  ch->platform->id, ch->platform->id);
        bus_worker_error (worker, req, ENVELOPE_CONFLICT, "conflict", msg, "channelId");
        return;
    }
    if (chanstore_set_enabled (self->store, ch->platform->id, on)) {
        bus_worker_error (worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "The channel store could not record it", NULL);
        return;
    }
    log_info ("channel", "%s: %s through the API", ch->platform->id,
              on ? "enabled" : "disabled");
    ch->enabled = on;
    if (on) {
        s_start (ch);
        chan_pump (self);  //  What waited while it was off
    }
    else
        s_stop (ch);
    s_reply_status (worker, req, ch);
}

//  ---- Webhooks and pairing ---------------------------------------------------------

//  Field key of req's body copied into buf (NUL-terminated); NULL if it is
//  missing or does not fit.
static const char *
s_field (bus_request_t *req, const char *key, char *buf, size_t cap)
{
    size_t len = 0;
    const char *v = mp_get_str (req->body.root, key, &len);
    if (!v || len >= cap)
        return NULL;
    memcpy (buf, v, len);
    buf[len] = 0;
    return buf;
}

static void
s_webhook (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    chan_t *ch = s_find (self, req, worker);
    if (!ch)
        return;
    if (!ch->cfg || !ch->enabled || !ch->platform->webhook) {
        bus_worker_error (worker, req, ENVELOPE_NOT_FOUND, "not_found",
                          "This channel takes no webhook now", NULL);
        return;
    }
    //  The request's strings are not NUL-terminated: copies, bounded.
    char method[8], query[2048], secret[300], signature[300], timestamp[32];
    webhook_in_t in = {
        .get =
            s_field (req, MK_method, method, sizeof (method)) && !strcmp (method, "GET"),
        .query = s_field (req, MK_query, query, sizeof (query)),
        .secret = s_field (req, MK_secret, secret, sizeof (secret)),
        .signature = s_field (req, MK_signature, signature, sizeof (signature)),
        .timestamp = s_field (req, MK_timestamp, timestamp, sizeof (timestamp)),
    };
    in.body = mp_get_str (req->body.root, MK_body, &in.len);
    if (!in.body)
        in.body = "";
    webhook_out_t out;
    memset (&out, 0, sizeof (out));
    int status = ch->platform->webhook (ch, &in, &out);
    if (status != 200) {
        bus_worker_error (worker, req, status,
                          status == 401   ? "unauthorized"
                          : status == 403 ? "forbidden"
                          : status == 404 ? "not_found"
                          : status == 503 ? "service_unavailable"
                                          : "invalid_request",
                          out.err, NULL);
        return;
    }
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_kv_bool (&w, MK_ok, true);
    mp_kv_int (&w, MK_stored, out.stored);
    if (*out.challenge)
        mp_kv_str (&w, MK_challenge, out.challenge);
    actor_reply_map (worker, req, MT_CHANNEL_WEBHOOK_OK, &w);
}

typedef struct {
    mp_writer_t items;
    uint32_t n;
} pairing_list_t;

static int
s_pack_pairing (void *arg, const chan_pairing_t *p)
{
    pairing_list_t *l = (pairing_list_t *) arg;
    mp_writer_t *w = &l->items;
    mp_map_begin (w);
    mp_kv_str (w, MK_code, p->code);
    mp_kv_str (w, MK_senderId, p->sender_id);
    mp_kv_str (w, "senderName", p->sender_name);
    s_kv_time (w, MK_createdAt, p->created_at);
    s_kv_time (w, "expiresAt", p->expires_at);
    mp_map_end (w);
    l->n++;
    return 0;
}

static void
s_pairing_list (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    chan_t *ch = s_find (self, req, worker);
    if (!ch)
        return;
    pairing_list_t l = {.n = 0};
    mp_writer_init (&l.items);
    if (self->store
        && chanstore_pairing_list (self->store, ch->platform->id, chan_now (),
                                   s_pack_pairing, &l)) {
        mp_writer_fini (&l.items);
        bus_worker_error (worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "The channel store could not be read", NULL);
        return;
    }
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_key (&w, MK_requests);
    msgpack_pack_array (&w.pk, l.n);
    msgpack_sbuffer_write (&w.buf, l.items.buf.data, l.items.buf.size);
    mp_writer_fini (&l.items);
    actor_reply_map (worker, req, MT_CHANNEL_PAIRING_LIST_OK, &w);
}

static void
s_pairing_approve (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    chan_t *ch = s_find (self, req, worker);
    if (!ch)
        return;
    char code[16] = "", sender[128] = "";
    size_t len = 0;
    const char *given = mp_get_str (req->body.root, MK_code, &len);
    for (size_t i = 0; given && i < len && i < sizeof (code) - 1; i++)
        code[i] = (char) toupper ((unsigned char) given[i]);
    int rc = self->store && len > 0 && len < sizeof (code)
                 ? chanstore_pairing_approve (self->store, ch->platform->id, code,
                                              chan_now (), sender, sizeof (sender))
                 : 0;
    if (rc < 0)
        bus_worker_error (worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "The channel store could not record it", NULL);
    else if (rc == 0)
        bus_worker_error (worker, req, ENVELOPE_NOT_FOUND, "not_found",
                          "No pending pairing request with that code (codes expire "
                          "after an hour)",
                          "code");
    else {
        log_info ("channel", "%s: sender %s approved (pairing)", ch->platform->id,
                  sender);
        mp_writer_t w;
        actor_reply_begin (&w);
        mp_kv_bool (&w, MK_approved, true);
        mp_kv_str (&w, MK_senderId, sender);
        actor_reply_map (worker, req, MT_CHANNEL_PAIRING_APPROVED, &w);
    }
}

static void
s_hook_run (void *state, bus_worker_t *worker, bus_request_t *req)
{
    hooks_run ((self_t *) state, req);
}

static const actor_route_t s_routes[] = {{MT_CHANNEL_LIST, s_list},
                                         {MT_CHANNEL_STATUS, s_status_one},
                                         {MT_CHANNEL_ENABLE, s_enable},
                                         {MT_CHANNEL_WEBHOOK, s_webhook},
                                         {MT_CHANNEL_PAIRING_LIST, s_pairing_list},
                                         {MT_CHANNEL_PAIRING_APPROVE, s_pairing_approve},
                                         {MT_HOOK_RUN, s_hook_run},
                                         {NULL, NULL}};

//  ---- Life cycle ------------------------------------------------------------------

static int
s_tick (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    chan_tick_runs (self);
    for (size_t i = 0; i < self->n_chans; i++)
        if (self->chans[i].running)
            chan_lanes_kick (&self->chans[i]);
    return 0;
}

static bool
s_agent_known (const void *ctx, const char *id)
{
    return catalog_find_agent ((const catalog_t *) ctx, id) != NULL;
}

static bool
s_model_known (const void *ctx, const char *id)
{
    const char *model;
    return catalog_find_model ((const catalog_t *) ctx, id, &model) != NULL;
}

static int
s_init (void *state, const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) state;
    const channel_settings_t *cfg = &args->settings->channel;
    self->settings = cfg;
    self->catalog = &args->settings->catalog;
    self->run_catalog = (run_catalog_t){s_agent_known, s_model_known, self->catalog};
    self->worker = worker;
    self->loop = loop;
    self->jobs = zhashx_new ();
    self->runs = zhashx_new ();
    self->starts = zhashx_new ();
    self->queue = zlistx_new ();
    //  With no channel configured there is nothing to store or run: the
    //  actor only answers the channel API (an idle gateway keeps no
    //  channels.db open).
    char path[4200], err[512];
    chanstore_path (cfg->state_dir, path, sizeof (path));
    if (cfg->n_channels) {
        self->store = chanstore_open (path, err, sizeof (err));
        if (!self->store) {
            log_error ("channel", "%s", err);
            return -1;
        }
        self->front = bus_front_new (args->broker);
        if (!self->front)
            return -1;
        zloop_reader (loop, bus_front_sock (self->front), chan_on_front, self);
    }
    size_t n = 0;
    while (channel_ids[n])
        n++;
    self->chans = (chan_t *) calloc (n, sizeof (chan_t));
    if (!self->chans)
        return -1;
    for (size_t i = 0; i < n; i++) {
        chan_t *ch = &self->chans[self->n_chans++];
        ch->self = self;
        ch->timer = -1;
        ch->platform = s_platform (channel_ids[i]);
        ch->cfg = channel_config_find (cfg->channels, cfg->n_channels, channel_ids[i]);
        ch->lanes = zhashx_new ();
        ch->limit = ch->platform->limit;
        ch->agent = "default";
        if (!ch->cfg)
            continue;
        if (ch->cfg->text_chunk_limit > 0
            && (size_t) ch->cfg->text_chunk_limit < ch->limit)
            ch->limit = (size_t) ch->cfg->text_chunk_limit;
        if (ch->cfg->agent_id)
            ch->agent = ch->cfg->agent_id;
        bool stored;
        ch->enabled = chanstore_enabled (self->store, ch->platform->id, &stored) == 1
                          ? stored
                          : ch->cfg->enabled;
    }
    if (!self->store)
        return 0;
    if (chan_recover (self))
        return -1;
    for (size_t i = 0; i < self->n_chans; i++)
        s_start (&self->chans[i]);
    zloop_timer (loop, CHAN_TICK_MS, 0, s_tick, self);
    chan_pump (self);
    log_info ("channel", "store %s", path);
    return 0;
}

static void
s_fini (void *state)
{
    self_t *self = (self_t *) state;
    for (size_t i = 0; i < self->n_chans; i++) {
        chan_t *ch = &self->chans[i];
        s_stop (ch);
        if (ch->platform->fini)
            ch->platform->fini (ch);
        chan_lanes_free (ch);
        zhashx_destroy (&ch->lanes);
    }
    //  Runs going are left to the session actor, which records them as
    //  interrupted when it stops; their rows stay open and start again.
    if (self->jobs) {
        zlistx_t *all = actor_hash_values (self->jobs);
        for (job_t *j = (job_t *) zlistx_first (all); j; j = (job_t *) zlistx_next (all))
            chan_job_free (self, j);
        zlistx_destroy (&all);
    }
    chan_http_fini (self);
    curl_loop_destroy (&self->curl);
    free (self->chans);
    zhashx_destroy (&self->jobs);
    zhashx_destroy (&self->runs);
    zhashx_destroy (&self->starts);
    zlistx_destroy (&self->queue);
    bus_front_destroy (&self->front);
    chanstore_close (&self->store);
}

static const actor_def_t s_def = {.service = "channel",
                                  .size = sizeof (self_t),
                                  .init = s_init,
                                  .routes = s_routes,
                                  .fini = s_fini};

void
channel_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
