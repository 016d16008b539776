/*  =========================================================================
    ws_methods - the WebSocket methods: one table (name, scope, whether
    the limits count it, handler, the bus request it makes, the params it
    passes on, how its reply is answered) and the handlers

    Every method runs on the hub thread (ws_hub.c) with the hub's state.
    A handler answers the client itself (a refusal, a subscription) or
    sends one request through ws_hub_call, whose reply comes back to
    ws_methods_answer by corr id.
    =========================================================================
*/
#include "ws_hub.h"
#include "envelope.h"
#include "msg_names.h"

#include "error.h"
#include "ids.h"
#include "json_in.h"
#include "mpjson.h"
#include "msg.h"
#include "run_call.h"
#include "server.h"

#define WS_IDEMPOTENCY_MS (5 * 60 * 1000)
//  Keys remembered at most: past it the oldest is forgotten before its
//  5 minutes (a flood of keys must not grow the hub without bound).
#define WS_IDEMPOTENCY_MAX 20000

//  How a param a method passes on to its actor is checked here (its value
//  is the actor's to check).
typedef enum {
    WS_PARAM_ANY = 0,  //  Anything not nested too deep
    WS_PARAM_STR,      //  A string, or absent
    WS_PARAM_NEEDED,   //  A non-empty string, required
    WS_PARAM_BOOL,     //  A boolean, or absent
    WS_PARAM_TIMEOUT,  //  An integer 100..600000, or absent
} ws_param_kind_t;

typedef struct {
    const char *name;  //  NULL ends a list
    ws_param_kind_t kind;
} ws_param_t;

typedef void (ws_method_fn) (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id,
                             const cJSON *params, const ws_method_t *m,
                             rl_ticket_t *ticket);
typedef void (ws_answer_fn) (ws_hub_self_t *h, ws_call_t *c, bus_msg_t *msg);

struct ws_method_t {
    const char *name;          //  "chat.run"
    unsigned scope;            //  SCOPE_* the credential needs (0: any)
    bool counted;              //  Takes a rate token (and a slot)
    ws_method_fn *handler;     //  Runs it
    const char *service;       //  Bus service it asks, or NULL
    const char *type;          //  Its request's message type
    bool keyed;                //  params.sessionKey required (packed
                               //  first)
    const ws_param_t *params;  //  params passed on as they are
    ws_answer_fn *answer;      //  Its reply to the client; NULL: an
                               //  error as such, else the body
};

//  ---- Answers ----------------------------------------------------------------

//  An ERROR reply as the error it describes, a 200 body as the result.
static void
s_answer (ws_hub_self_t *h, ws_call_t *c, bus_msg_t *msg)
{
    const msgpack_object *b = msg->body.root;
    if (msg->env.status != 200) {
        error_info_t e;
        error_read (b, msg->env.status, "Request failed", &e);
        ws_hub_reply_error (h->hub, c->client, c->id, msg->env.status, e.code, e.message,
                            e.param[0] ? e.param : NULL);
        return;
    }
    cJSON *result = b ? mpjson_to_json (b) : cJSON_CreateObject ();
    ws_hub_reply (h->hub, c->client, c->id, result);
}

//  chat.run: the client has its runId already, so a refusal ends the run
//  as an event.
static void
s_answer_run (ws_hub_self_t *h, ws_call_t *c, bus_msg_t *msg)
{
    if (msg->env.status == 200) {
        s_answer (h, c, msg);
        return;
    }
    error_info_t e;
    error_read (msg->body.root, msg->env.status, "Request failed", &e);
    cJSON *ev = cJSON_CreateObject ();
    cJSON_AddStringToObject (ev, MK_type, MN_CHAT_ERROR);
    cJSON *d = cJSON_AddObjectToObject (ev, MK_data);
    cJSON_AddStringToObject (d, MK_sessionKey, c->key);
    cJSON_AddStringToObject (d, MK_runId, c->run_id);
    cJSON_AddItemToObject (d, MK_error, error_json_event (e.status, e.code, e.message));
    cJSON_AddNumberToObject (d, MK_status, e.status);
    ws_frame_t *f = ws_frame_json (ev);
    cJSON_Delete (ev);
    ws_hub_send_to (h->hub, c->client, f, NULL);
    ws_frame_unref (f);
    zhashx_delete (h->runs, c->run_id);
}

//  system.status: the same body as GET /status, from the same function.
static void
s_answer_status (ws_hub_self_t *h, ws_call_t *c, bus_msg_t *msg)
{
    if (msg->env.status != 200) {
        s_answer (h, c, msg);
        return;
    }
    ws_hub_t *hub = h->hub;
    cJSON *result = ws_status_body (msg->body.root, hub->config, hub->server);
    if (result)
        ws_hub_reply (hub, c->client, c->id, result);
    else
        ws_hub_reply_error (hub, c->client, c->id, 500, "internal_error",
                            "Malformed status from the system actor", NULL);
}

void
ws_methods_answer (ws_hub_self_t *h, ws_call_t *c, bus_msg_t *msg)
{
    if (c->method->answer)
        c->method->answer (h, c, msg);
    else
        s_answer (h, c, msg);
}

//  ---- chat.run ---------------------------------------------------------------

//  A valid idempotencyKey's earlier run, answered as a duplicate: true.
//  A malformed key is refused: true.  Else false, with the key to record
//  in idem_key ("" if none).
static bool
s_idempotent (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
              char *idem_key, size_t cap)
{
    const cJSON *idem = cJSON_GetObjectItemCaseSensitive (params, "idempotencyKey");
    idem_key[0] = 0;
    if (idem && !cJSON_IsNull (idem)
        && (!cJSON_IsString (idem) || !*idem->valuestring
            || strlen (idem->valuestring) > 256)) {
        ws_hub_reply_error (h->hub, cl->id, id, 400, "invalid_request",
                            "idempotencyKey must be a string of 1-256 characters",
                            "idempotencyKey");
        return true;
    }
    if (!cJSON_IsString (idem))
        return false;
    snprintf (idem_key, cap, "%s\n%s", cl->auth.principal, idem->valuestring);
    ws_idem_t *seen = (ws_idem_t *) zhashx_lookup (h->idem, idem_key);
    if (!seen || seen->expires <= zclock_mono ())
        return false;
    cJSON *r = cJSON_CreateObject ();
    cJSON_AddStringToObject (r, "runId", seen->run_id);
    cJSON_AddStringToObject (r, "sessionKey", seen->key);
    cJSON_AddBoolToObject (r, "duplicate", true);
    ws_hub_reply (h->hub, cl->id, id, r);
    return true;
}

//  Remembers idem_key's run for WS_IDEMPOTENCY_MS.
static void
s_remember (ws_hub_self_t *h, const char *idem_key, const char *run_id, const char *key)
{
    ws_idem_t *i = (ws_idem_t *) calloc (1, sizeof (ws_idem_t));
    if (!i)
        return;
    snprintf (i->run_id, sizeof (i->run_id), "%s", run_id);
    snprintf (i->key, sizeof (i->key), "%s", key);
    i->expires = zclock_mono () + WS_IDEMPOTENCY_MS;
    while (zhashx_size (h->idem) >= WS_IDEMPOTENCY_MAX
           && zlistx_size (h->idem_order) > 0) {
        char *old = (char *) zlistx_detach (h->idem_order, NULL);
        zhashx_delete (h->idem, old);
        free (old);
    }
    zhashx_update (h->idem, idem_key, i);
    zlistx_add_end (h->idem_order, strdup (idem_key));
}

//  Starts the run of rc (checked and packed) for cl: it holds ticket's
//  slot until it ends.  Returns the run, or NULL (answered).
static ws_run_t *
s_run_start (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const ws_method_t *m,
             run_call_t *rc, rl_ticket_t *ticket)
{
    ws_run_t *run = (ws_run_t *) calloc (1, sizeof (ws_run_t));
    if (!run)
        return NULL;
    run->client = cl->id;
    //  The run holds the slot until it ends (ws_hub_run_free gives it back).
    run->ticket = *ticket;
    ticket->slot = NULL;
    snprintf (run->key, sizeof (run->key), "%s", rc->session);
    ws_call_t *call = NULL;
    if (run_call_send (rc, h->hub->config->control_timeout_ms))
        ws_hub_reply_error (h->hub, cl->id, id, 503, "service_unavailable",
                            "The broker is not taking requests", NULL);
    else
        call = ws_hub_track (h, cl->id, id, m, rc->corr_id);
    if (!call) {
        void *item = run;
        ws_hub_run_free (&item);
        return NULL;
    }
    snprintf (call->run_id, sizeof (call->run_id), "%s", rc->run_id);
    snprintf (call->key, sizeof (call->key), "%s", run->key);
    run->started = zclock_mono ();
    snprintf (run->corr, sizeof (run->corr), "%s", call->corr);
    zhashx_insert (h->runs, rc->run_id, run);
    return run;
}

static void
s_chat_run (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
            const ws_method_t *m, rl_ticket_t *ticket)
{
    ws_hub_t *hub = h->hub;
    const cJSON *opts = cJSON_GetObjectItemCaseSensitive (params, "options");
    const cJSON *agent = cJSON_GetObjectItemCaseSensitive (opts, "agentId");
    if (!agent)
        agent = cJSON_GetObjectItemCaseSensitive (params, "agentId");
    const cJSON *stream = cJSON_GetObjectItemCaseSensitive (opts, "stream");
    run_catalog_t cat = http_run_catalog (hub->config);
    run_call_t rc;
    run_call_init (&rc, h->front, hub->config->request_timeout_ms);
    run_check_t chk;
    char idem_key[400];
    //  Deltas are what a WebSocket client is for: stream unless told not to.
    if (run_call_agent (&rc, &cat, params, agent, "webchat", !cJSON_IsFalse (stream),
                        &chk))
        ws_hub_reply_error (hub, cl->id, id, chk.status, chk.code, chk.message,
                            chk.param[0] ? chk.param : NULL);
    else if (!s_idempotent (h, cl, id, params, idem_key, sizeof (idem_key))
             && s_run_start (h, cl, id, m, &rc, ticket)) {
        if (idem_key[0])
            s_remember (h, idem_key, rc.run_id, rc.session);
        //  The session actor answers only a refusal; the run's id is ours,
        //  so the client has it now and its events follow.
        cJSON *r = cJSON_CreateObject ();
        cJSON_AddStringToObject (r, "runId", rc.run_id);
        cJSON_AddStringToObject (r, "sessionKey", rc.session);
        ws_hub_reply (hub, cl->id, id, r);
    }
    run_call_fini (&rc);
}

//  ---- Other methods ----------------------------------------------------------

static void
s_chat_abort (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
              const ws_method_t *m, rl_ticket_t *ticket)
{
    const cJSON *run = cJSON_GetObjectItemCaseSensitive (params, "runId");
    if (!cJSON_IsString (run) || !*run->valuestring || strlen (run->valuestring) >= 80) {
        ws_hub_reply_error (h->hub, cl->id, id, 400, "invalid_request",
                            "'runId' is required", "runId");
        return;
    }
    //  The abort must reach the session worker that has the run: it goes
    //  with the run's session as its key, as the run's start did.  A run
    //  this hub did not start (or forgot, 10 s after its end) has no key
    //  here and goes to any worker; with one session worker that is the
    //  right one, and a run that is unknown or over gets aborted:false
    //  from any (docs/websocket.md).
    ws_run_t *known = (ws_run_t *) zhashx_lookup (h->runs, run->valuestring);
    mp_writer_t w;
    mp_writer_init (&w);
    run_call_pack_abort (&w, run->valuestring, false);
    ws_hub_call (h, cl->id, id, m, m->service, m->type, known ? known->key : NULL, &w);
    mp_writer_fini (&w);
}

//  Checks one param passed on; returns false after refusing it.
static bool
s_param_ok (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const ws_param_t *p,
            const cJSON *v)
{
    bool absent = !v || cJSON_IsNull (v);
    bool ok;
    switch (p->kind) {
    case WS_PARAM_ANY:
        if (!json_in_deeper_than (v, MP_MAX_DEPTH - 1))
            return true;
        //  More than a message on the bus can carry.
        ws_hub_reply_error (h->hub, cl->id, id, 400, "invalid_request",
                            "A parameter is nested too deep", p->name);
        return false;
    case WS_PARAM_BOOL: ok = absent || cJSON_IsBool (v); break;
    case WS_PARAM_TIMEOUT:
        ok = absent
             || (cJSON_IsNumber (v) && v->valuedouble >= 100 && v->valuedouble <= 600000
                 && v->valuedouble == (double) (int) v->valuedouble);
        break;
    case WS_PARAM_NEEDED: ok = cJSON_IsString (v) && *v->valuestring; break;
    default: ok = absent || cJSON_IsString (v); break;
    }
    if (!ok) {
        char msg[96];
        snprintf (msg, sizeof (msg), "'%s' has the wrong type or value", p->name);
        ws_hub_reply_error (h->hub, cl->id, id, 400, "invalid_request", msg, p->name);
    }
    return ok;
}

//  session.list / get, system.status, browser.*: the method's params
//  checked (each by its kind) and passed on as its request; the actor
//  checks their values and answers.
static void
s_pass (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
        const ws_method_t *m, rl_ticket_t *ticket)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive (params, "sessionKey");
    if (m->keyed
        && (!cJSON_IsString (key) || !ids_session_key_valid (key->valuestring))) {
        ws_hub_reply_error (h->hub, cl->id, id, 400, "invalid_request",
                            "Invalid session key", "sessionKey");
        return;
    }
    for (const ws_param_t *p = m->params; p && p->name; p++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive (params, p->name);
        if (!s_param_ok (h, cl, id, p, v))
            return;
    }
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    if (m->keyed)
        mp_kv_str (&w, MK_sessionKey, key->valuestring);
    for (const ws_param_t *p = m->params; p && p->name; p++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive (params, p->name);
        if (v && !cJSON_IsNull (v)) {
            mp_key (&w, p->name);
            mpjson_pack (&w.pk, v);
        }
    }
    mp_map_end (&w);
    ws_hub_call (h, cl->id, id, m, m->service, m->type, NULL, &w);
    mp_writer_fini (&w);
}

//  session.subscribe / unsubscribe: the hub's SUB follows the union of its
//  clients' sessions.
static void
s_subscription (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
                bool on)
{
    const cJSON *key = cJSON_GetObjectItemCaseSensitive (params, "sessionKey");
    if (!cJSON_IsString (key) || !ids_session_key_valid (key->valuestring)) {
        ws_hub_reply_error (h->hub, cl->id, id, 400, "invalid_request",
                            "Invalid session key", "sessionKey");
        return;
    }
    const char *k = key->valuestring;
    zlistx_t *list = (zlistx_t *) zhashx_lookup (h->subs, k);
    void *who = (void *) (uintptr_t) cl->id;
    char prefix[ENVELOPE_KEY_MAX + 2];
    snprintf (prefix, sizeof (prefix), "%s/", k);
    if (on && !(list && zlistx_find (list, who))) {
        if (!list) {
            list = zlistx_new ();
            zhashx_insert (h->subs, k, list);
            zsock_set_subscribe (h->sub, prefix);
        }
        zlistx_add_end (list, who);
    }
    else if (!on && list && zlistx_find (list, who)) {
        zlistx_delete (list, zlistx_find (list, who));
        if (zlistx_size (list) == 0) {
            zsock_set_unsubscribe (h->sub, prefix);
            zhashx_delete (h->subs, k);
        }
    }
    cJSON *r = cJSON_CreateObject ();
    cJSON_AddStringToObject (r, "sessionKey", k);
    cJSON_AddBoolToObject (r, "subscribed", on);
    ws_hub_reply (h->hub, cl->id, id, r);
}

static void
s_subscribe (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
             const ws_method_t *m, rl_ticket_t *ticket)
{
    s_subscription (h, cl, id, params, true);
}

static void
s_unsubscribe (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
               const ws_method_t *m, rl_ticket_t *ticket)
{
    s_subscription (h, cl, id, params, false);
}

static void
s_unknown (ws_hub_self_t *h, ws_client_t *cl, const cJSON *id, const cJSON *params,
           const ws_method_t *m, rl_ticket_t *ticket)
{
    char msg[96];
    snprintf (msg, sizeof (msg), "Unknown method '%.40s'", m->name);
    ws_hub_reply_error (h->hub, cl->id, id, 400, "invalid_request", msg, "method");
}

void
ws_methods_forget_client (ws_hub_self_t *h, uint64_t client)
{
    void *who = (void *) (uintptr_t) client;
    zlistx_t *empty = zlistx_new ();
    for (zlistx_t *list = (zlistx_t *) zhashx_first (h->subs); list;
         list = (zlistx_t *) zhashx_next (h->subs)) {
        void *handle = zlistx_find (list, who);
        if (handle)
            zlistx_delete (list, handle);
        if (zlistx_size (list) == 0)
            zlistx_add_end (empty, (void *) zhashx_cursor (h->subs));
    }
    for (const char *k = (const char *) zlistx_first (empty); k;
         k = (const char *) zlistx_next (empty)) {
        char prefix[ENVELOPE_KEY_MAX + 2];
        snprintf (prefix, sizeof (prefix), "%s/", k);
        zsock_set_unsubscribe (h->sub, prefix);
        zhashx_delete (h->subs, k);
    }
    zlistx_destroy (&empty);
}

//  ---- The table --------------------------------------------------------------

//  Optional paging and filters pass through; the session actor checks them.
static const ws_param_t s_session_params[] = {{MK_limit, WS_PARAM_ANY},
                                              {MK_cursor, WS_PARAM_ANY},
                                              {MK_channel, WS_PARAM_ANY},
                                              {MK_agentId, WS_PARAM_ANY},
                                              {NULL, 0}};
static const ws_param_t s_session_get_params[] = {
    {MK_limit, WS_PARAM_ANY}, {MK_cursor, WS_PARAM_ANY}, {NULL, 0}};
//  The browser's fields are checked for type here (param named on a 400),
//  their values by the browser actor, which answers every request itself,
//  at its deadline at the latest.
static const ws_param_t s_channel_status[] = {{MK_channelId, WS_PARAM_NEEDED}, {NULL, 0}};
static const ws_param_t s_browser_status[] = {{MK_profile, WS_PARAM_STR}, {NULL, 0}};
static const ws_param_t s_browser_navigate[] = {{MK_url, WS_PARAM_NEEDED},
                                                {MK_profile, WS_PARAM_STR},
                                                {MK_timeoutMs, WS_PARAM_TIMEOUT},
                                                {NULL, 0}};
static const ws_param_t s_browser_screenshot[] = {{MK_selector, WS_PARAM_STR},
                                                  {MK_fullPage, WS_PARAM_BOOL},
                                                  {MK_profile, WS_PARAM_STR},
                                                  {NULL, 0}};

//  Scopes follow docs/authentication.md; subscriptions and status are not counted
//  against the limits.
// clang-format off
static const ws_method_t s_methods[] = {
    //  name                 scope           counted handler
    //  service         type                  keyed params           answer
    {MN_WS_CHAT_RUN, SCOPE_CHAT, true, s_chat_run,
     MS_SESSION_RUN, MT_SESSION_RUN, false, NULL, s_answer_run},
    {MN_WS_CHAT_ABORT, SCOPE_CHAT, true, s_chat_abort,
     MS_SESSION_ABORT, MT_SESSION_ABORT, false, NULL, NULL},
    {MN_WS_SESSION_LIST, SCOPE_SESSIONS, true, s_pass,
     MS_SESSION_LIST, MT_SESSION_LIST, false, s_session_params, NULL},
    {MN_WS_SESSION_GET, SCOPE_SESSIONS, true, s_pass,
     MS_SESSION_GET, MT_SESSION_GET, true, s_session_get_params, NULL},
    {MN_WS_SESSION_SUBSCRIBE, SCOPE_SESSIONS, false, s_subscribe,
     NULL, NULL, false, NULL, NULL},
    {MN_WS_SESSION_UNSUBSCRIBE, SCOPE_SESSIONS, false, s_unsubscribe,
     NULL, NULL, false, NULL, NULL},
    {MN_WS_SYSTEM_STATUS, 0, false, s_pass,
     MS_SYSTEM_STATUS, MT_SYSTEM_STATUS, false, NULL, s_answer_status},
    {MN_WS_BROWSER_STATUS, SCOPE_BROWSER, true, s_pass,
     MS_BROWSER_STATUS, MT_BROWSER_STATUS, false, s_browser_status, NULL},
    {MN_WS_BROWSER_NAVIGATE, SCOPE_BROWSER, true, s_pass,
     MS_BROWSER_NAVIGATE, MT_BROWSER_NAVIGATE, false, s_browser_navigate, NULL},
    {MN_WS_BROWSER_SCREENSHOT, SCOPE_BROWSER, true, s_pass,
     MS_BROWSER_SCREENSHOT, MT_BROWSER_SCREENSHOT, false, s_browser_screenshot, NULL},
    {MN_WS_CHANNEL_LIST, SCOPE_CHANNELS, false, s_pass,
     MS_CHANNEL_LIST, MT_CHANNEL_LIST, false, NULL, NULL},
    {MN_WS_CHANNEL_STATUS, SCOPE_CHANNELS, false, s_pass,
     MS_CHANNEL_STATUS, MT_CHANNEL_STATUS, false, s_channel_status, NULL},
    {NULL, 0, false, NULL, NULL, NULL, false, NULL, NULL},
};
// clang-format on

void
ws_methods_check (void)
{
    //  Every method is declared (CG_METHOD in schemas/messages.def), and
    //  every param it passes on is one of its declared fields.
    for (const ws_method_t *m = s_methods; m->name; m++) {
        const msg_def_t *def = msg_lookup_name (MSG_SERVICE_METHOD, m->name);
        if (!def) {
            msg_check_failed (m->name, "WebSocket method not declared");
            continue;
        }
        for (const ws_param_t *p = m->params; p && p->name; p++) {
            const msg_field_t *f = def->fields;
            while (f->name && strcmp (f->name, p->name))
                f++;
            if (!f->name)
                msg_check_failed (m->name, "passes on a param it does not declare");
        }
    }
}

//  A method not in the table still needs its family's scope, and is
//  counted, before it is told it does not exist: a client without the
//  scope learns nothing of the family, and a flood of unknown names is
//  limited like any other.
static const struct {
    const char *prefix;
    unsigned scope;
} s_families[] = {{"chat.", SCOPE_CHAT},
                  {"session.", SCOPE_SESSIONS},
                  {"channel.", SCOPE_CHANNELS},
                  {"browser.", SCOPE_BROWSER},
                  {NULL, 0}};

//  The row of name; for an unknown name, *unknown filled as its row.
static const ws_method_t *
s_find (const char *name, ws_method_t *unknown)
{
    for (const ws_method_t *m = s_methods; m->name; m++)
        if (!strcmp (m->name, name))
            return m;
    memset (unknown, 0, sizeof (*unknown));
    unknown->name = name;
    unknown->counted = true;
    unknown->handler = s_unknown;
    for (int i = 0; s_families[i].prefix; i++)
        if (!strncmp (name, s_families[i].prefix, strlen (s_families[i].prefix)))
            unknown->scope = s_families[i].scope;
    return unknown;
}

void
ws_methods_dispatch (ws_hub_self_t *h, ws_client_t *cl, const cJSON *req)
{
    ws_hub_t *hub = h->hub;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive (req, "id");
    if (id && !cJSON_IsNumber (id) && !cJSON_IsString (id) && !cJSON_IsNull (id))
        id = NULL;
    const cJSON *name = cJSON_GetObjectItemCaseSensitive (req, "method");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive (req, "params");
    if (!cJSON_IsString (name)) {
        ws_hub_reply_error (hub, cl->id, id, 400, "invalid_request",
                            "'method' is required and must be a string", "method");
        return;
    }
    if (params && !cJSON_IsNull (params) && !cJSON_IsObject (params)) {
        ws_hub_reply_error (hub, cl->id, id, 400, "invalid_request",
                            "'params' must be an object", "params");
        return;
    }
    ws_method_t unknown;
    const ws_method_t *m = s_find (name->valuestring, &unknown);
    if (m->scope && !(cl->auth.scopes & m->scope)) {
        ws_hub_reply_error (hub, cl->id, id, 403, "forbidden",
                            "This credential lacks the scope this method needs", NULL);
        return;
    }
    //  Limits hold for WebSocket calls as for HTTP requests (one lease
    //  cache per front).  When the cache runs short (every new concurrent
    //  run needs one more slot) the limiter asks its actor with
    //  bus_front_call, which waits for its reply and drops whatever else
    //  arrives meanwhile.  On h->front that was the events of every run
    //  already streaming and the replies to other clients' calls (issue
    //  16: runs that never saw a delta or their chat.done), so the lease
    //  calls go on a socket of their own, on which nothing else ever
    //  arrives.
    rl_ticket_t ticket;
    memset (&ticket, 0, sizeof (ticket));
    if (m->counted
        && ratelimit_front_acquire (ws_hub_limits (hub), h->lease, cl->auth.principal,
                                    &ticket)) {
        cJSON *j = ratelimit_front_ws_error (&ticket, id);
        ws_frame_t *f = ws_frame_json (j);
        cJSON_Delete (j);
        ws_writers_send (hub->writers, cl, f, NULL);
        ws_frame_unref (f);
        return;
    }
    m->handler (h, cl, id, params, m, &ticket);
    ratelimit_front_release (ws_hub_limits (hub), &ticket);  //  No-op if taken
}
