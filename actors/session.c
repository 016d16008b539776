/*  =========================================================================
    session - the session actor (see session.h for the flow)

    Memory: a live_t exists only while its session has a run queued or
    going; a pending_t for each such run.  Both are freed by this file alone
    (session_runs_pending_end, session_runs_pump); the hash tables only index them.
    =========================================================================
*/
#include "session_internal.h"
#include "envelope.h"
#include "msg_names.h"

#include "actor.h"
#include "settings.h"
#include "ids.h"
#include "json_in.h"
#include "error.h"
#include "log.h"
#include "mpjson.h"

#include <string.h>

void
session_peak (size_t *peak, zhashx_t *table)
{
    if (zhashx_size (table) > *peak)
        *peak = zhashx_size (table);
}

//  ---- Small helpers -------------------------------------------------------------

int64_t
session_now_ms (void)
{
    return zclock_time ();
}

void
session_kv_time (mp_writer_t *w, const char *key, int64_t ms)
{
    char iso[LOG_ISO_TIME_LEN + 1];
    mp_kv_str (w, key, log_iso_time (iso, ms));
}

//  Characters (code points) of UTF-8 text: bytes that do not continue one.
int64_t
session_chars (const char *s, size_t len)
{
    int64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char) s[i] & 0xC0) != 0x80;
    return n;
}

//  Packs JSON text as its msgpack value (nil if it does not parse).
void
session_pack_json_text (mp_writer_t *w, const char *text)
{
    cJSON *j =
        text ? json_in_parse (text, strlen (text), 0, JSON_IN_NUL_OK, NULL, NULL) : NULL;
    if (!j || mpjson_pack (&w->pk, j))
        msgpack_pack_nil (&w->pk);
    cJSON_Delete (j);
}

//  Packs every pair of map except the keys in skip (NULL-terminated), into
//  the map the caller opened (mp_map_begin).
void
session_pack_map_except (mp_writer_t *w, const msgpack_object *map,
                         const char *const *skip)
{
    const msgpack_object_kv *kv = map->via.map.ptr;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        bool keep = true;
        if (kv[i].key.type == MSGPACK_OBJECT_STR)
            for (const char *const *s = skip; *s; s++)
                if (kv[i].key.via.str.size == strlen (*s)
                    && !memcmp (kv[i].key.via.str.ptr, *s, strlen (*s)))
                    keep = false;
        if (keep) {
            msgpack_pack_object (&w->pk, kv[i].key);
            msgpack_pack_object (&w->pk, kv[i].val);
        }
    }
}

//  ---- Requests ----------------------------------------------------------------------------

//  The text of the last user message of an OpenAI conversation (string
//  content, or its text parts joined).  Caller owns the return value.
static char *
s_last_user_text (const msgpack_object *messages, size_t *len)
{
    for (uint32_t i = messages->via.array.size; i-- > 0;) {
        const msgpack_object *m = &messages->via.array.ptr[i];
        size_t rl;
        const char *role = mp_get_str (m, "role", &rl);
        if (!role || rl != 4 || memcmp (role, "user", 4))
            continue;
        size_t cl;
        const char *content = mp_get_str (m, "content", &cl);
        if (content) {
            *len = cl;
            return strndup (content, cl);
        }
        const msgpack_object *parts = mp_get (m, "content");
        zchunk_t *buf = zchunk_new (NULL, 0);
        for (uint32_t j = 0;
             parts && parts->type == MSGPACK_OBJECT_ARRAY && j < parts->via.array.size;
             j++) {
            size_t tl;
            const char *t = mp_get_str (&parts->via.array.ptr[j], "text", &tl);
            if (t)
                zchunk_extend (buf, t, tl);
        }
        *len = zchunk_size (buf);
        char *out = strndup ((const char *) zchunk_data (buf), *len);
        zchunk_destroy (&buf);
        return out;
    }
    *len = 0;
    return strdup ("");
}

//  Longer than 100 lines on purpose: the checks of a SESSION_RUN, then its
//  one store transaction (session row, user message and, for an idle
//  session, the context read), then the queue or the dispatch; the
//  transaction's steps share their rollback path, which splitting would
//  spread over several functions.
static void
s_handle_run (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    const msgpack_object *b = req->body.root;
    char run_id[80] = "", key[ENVELOPE_KEY_MAX + 1] = "";
    char agent_id[128] = "default", channel[64] = "api", model[256] = "";
    if (mp_copy_str (b, MK_runId, run_id, sizeof (run_id)) || !run_id[0]) {
        bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "runId is missing or too long", "runId");
        return;
    }
    if (mp_copy_str (b, MK_sessionKey, key, sizeof (key))
        || !ids_session_key_valid (key)) {
        bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "Invalid session key", "sessionKey");
        return;
    }
    mp_copy_str (b, MK_agentId, agent_id, sizeof (agent_id));
    mp_copy_str (b, MK_channel, channel, sizeof (channel));
    const cfg_agent_t *agent = catalog_find_agent (self->catalog, agent_id);
    if (!agent) {
        bus_worker_error (worker, req, ENVELOPE_NOT_FOUND, "not_found", "Unknown agent",
                          "agentId");
        return;
    }
    mp_copy_str (b, MK_model, model, sizeof (model));
    const char *unused;
    if (model[0] && !catalog_find_model (self->catalog, model, &unused)) {
        char msg[320];
        snprintf (msg, sizeof (msg), "The model '%.256s' does not exist", model);
        bus_worker_error (worker, req, ENVELOPE_NOT_FOUND, "not_found", msg, "model");
        return;
    }
    const msgpack_object *given = mp_get (b, MK_messages);
    size_t text_len = 0;
    const char *text = mp_get_str (b, MK_message, &text_len);
    if ((!given || !given->via.array.size) && (!text || !text_len)) {
        bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "A non-empty message is required", "message");
        return;
    }
    if (zhashx_lookup (self->runs, run_id)) {
        bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "A run with this runId is already in flight", "runId");
        return;
    }
    //  Checked before the batch: a refusal takes no write lock.  (A
    //  session not in memory has nothing queued.)
    live_t *known = (live_t *) zhashx_lookup (self->lives, key);
    if (known
        && (known->running ? 1 : 0) + zlistx_size (known->queue)
               >= (size_t) self->settings->max_queued) {
        bus_worker_error (worker, req, ENVELOPE_RATE_LIMITED, "rate_limited",
                          "Too many runs are waiting on this session", NULL);
        return;
    }
    //  One transaction for the session row, the user message and, when the
    //  session is idle, the context read for its RUN_START: one commit
    //  where there were two or three.
    int64_t t0 = zclock_usecs ();
    bool batch = store_batch_begin (self->store) == 0;
    live_t *live = session_runs_live_get (self, key, agent_id, channel);
    if (!live) {
        if (batch)
            store_batch_abort (self->store);
        bus_worker_error (worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "The session store is not answering", NULL);
        return;
    }
    char *user =
        given && !text ? s_last_user_text (given, &text_len) : strndup (text, text_len);
    store_message_t m = {.role = "user",
                         .content = user ? user : "",
                         .content_len = user ? text_len : 0,
                         .run_id = run_id,
                         .created_at = session_now_ms ()};
    int rc =
        store_run_begin (self->store, live->id, run_id, live->next_run, &m, m.created_at);
    free (user);
    pending_t *p = rc ? NULL : (pending_t *) calloc (1, sizeof (pending_t));
    size_t size = zmq_msg_size (&req->raw);
    if (p)
        p->body = (uint8_t *) malloc (size);
    if (p && p->body) {
        memcpy (p->body, zmq_msg_data (&req->raw), size);
        p->body_len = size;
        p->live = live;
        p->run_seq = live->next_run;
        snprintf (p->run_id, sizeof (p->run_id), "%s", run_id);
        snprintf (p->model, sizeof (p->model), "%s", model[0] ? model : agent->model);
        memcpy (p->origin.front, req->front, req->front_len);
        p->origin.front_len = req->front_len;
        p->origin.env = req->env;
    }
    int64_t timeout = self->settings->request_timeout_ms;
    mp_get_int (b, MK_timeoutMs, &timeout);
    if (timeout <= 0 || timeout > self->settings->request_timeout_ms)
        timeout = self->settings->request_timeout_ms;
    //  An idle session's run starts now: its context is read in the batch.
    mp_writer_t start;
    mp_writer_init (&start);
    int64_t read_at = zclock_usecs ();
    bool ready = p && p->body && batch && !live->running && !zlistx_size (live->queue)
                 && session_runs_start_body (self, p, timeout, &start) == 0;
    int64_t read_us = zclock_usecs () - read_at;
    bool recorded = p && p->body && (!batch || store_batch_commit (self->store) == 0);
    if (!recorded) {
        bool oom = !rc && (!p || !p->body);
        if (batch && (!p || !p->body))
            store_batch_abort (self->store);
        mp_writer_fini (&start);
        if (p)
            free (p->body);
        free (p);
        bus_worker_error (worker, req, ENVELOPE_INTERNAL, "internal_error",
                          oom ? "Out of memory" : "Could not record the message", NULL);
        session_runs_live_release (self, live);
        return;
    }
    p->store_us = zclock_usecs () - t0 - (ready ? read_us : 0);
    if (ready)
        session_runs_timing_add (&self->reads, read_us);
    live->next_run++;
    p->deadline = zclock_mono () + timeout;
    zhashx_insert (self->runs, p->run_id, p);
    session_peak (&self->peak_runs, self->runs);
    if (ready) {
        log_debug ("session", "%s on %s at %lld starts at once", p->run_id, key,
                   (long long) p->run_seq);
        session_runs_start_send (self, p, timeout, &start);
        mp_writer_fini (&start);
        session_runs_live_release (self, live);
        return;
    }
    mp_writer_fini (&start);
    zlistx_add_end (live->queue, p);
    log_debug ("session", "%s queued on %s at %lld (%zu waiting)", p->run_id, key,
               (long long) p->run_seq, zlistx_size (live->queue));
    session_runs_pump (self, live);
}

//  Asks the run actor to stop p (its RUN_RESULT then ends it).
static void
s_abort_running (self_t *self, pending_t *p)
{
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_runId, p->run_id);
    envelope_t env;
    envelope_init (&env, MT_RUN_ABORT);
    //  Same key as its RUN_START: the broker routes both to one run actor.
    snprintf (env.session_key, sizeof (env.session_key), "%s", p->live->key);
    mp_map_end (&w);
    if (bus_front_send (self->front, MS_RUN_ABORT, &env, w.buf.data, w.buf.size))
        log_warn ("session", "%s: abort not sent: broker not taking it", p->run_id);
    mp_writer_fini (&w);
}

static void
s_handle_abort (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    char id[80] = "";
    mp_copy_str (req->body.root, MK_runId, id, sizeof (id));
    pending_t *p = (pending_t *) zhashx_lookup (self->runs, id);
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_kv_str (&w, MK_runId, id);
    mp_kv_bool (&w, MK_aborted, p != NULL);
    actor_reply_map (worker, req, MT_RUN_ABORTED, &w);
    if (!p)
        return;
    char reason[16] = "";
    mp_copy_str (req->body.root, MK_reason, reason, sizeof (reason));
    p->interrupted = streq (reason, "shutdown");
    log_info ("session", "%s %s", id, p->interrupted ? "interrupted" : "aborted");
    if (p->dispatched)
        s_abort_running (self, p);
    else {
        live_t *live = p->live;
        session_runs_end_local (self, p, p->interrupted ? "interrupted" : "aborted", 0,
                                NULL, NULL);
        session_runs_pump (self, live);
    }
}

static void
s_handle_delete (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    char key[ENVELOPE_KEY_MAX + 1] = "";
    if (mp_copy_str (req->body.root, MK_sessionKey, key, sizeof (key))
        || !ids_session_key_valid (key)) {
        bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "Invalid session key", "sessionKey");
        return;
    }
    int rc = store_session_delete (self->store, key);
    if (rc) {
        session_read_reply_store_rc (worker, req, rc);
        return;
    }
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_kv_str (&w, MK_sessionKey, key);
    mp_kv_bool (&w, MK_deleted, true);
    actor_reply_map (worker, req, MT_SESSION_DELETED, &w);
    log_info ("session", "%s deleted", key);
    //  Its runs end now: queued ones here, the running one at the run actor
    //  (whose result then finds no run row to write to).
    live_t *live = (live_t *) zhashx_lookup (self->lives, key);
    if (!live)
        return;
    zhashx_delete (self->lives, key);
    live->detached = true;
    pending_t *p;
    while ((p = (pending_t *) zlistx_first (live->queue)))
        session_runs_end_local (self, p, "aborted", 0, NULL, NULL);
    if (live->running)
        s_abort_running (self, live->running);
    session_runs_live_release (self, live);
}

//  Lists and gets are normally sent to session.read; served here too.
static void
s_handle_list (void *state, bus_worker_t *worker, bus_request_t *req)
{
    session_read_list (((self_t *) state)->store, worker, req);
}

static void
s_handle_get (void *state, bus_worker_t *worker, bus_request_t *req)
{
    session_read_get (((self_t *) state)->store, worker, req);
}

static const actor_route_t s_routes[] = {
    {MT_SESSION_RUN, s_handle_run},       {MT_SESSION_ABORT, s_handle_abort},
    {MT_SESSION_LIST, s_handle_list},     {MT_SESSION_GET, s_handle_get},
    {MT_SESSION_DELETE, s_handle_delete}, {NULL, NULL}};

//  ---- Replies from the run actor, deadlines ---------------------------------------------------

//  One reply of the run actor to a run we dispatched (p), as
//  actor_front_drain hands it.
static void
s_on_run_reply (void *arg, bus_msg_t *msg, const char *key, void *waiter)
{
    self_t *self = (self_t *) arg;
    pending_t *p = (pending_t *) waiter;
    if (!p)
        ;  //  RUN_ABORTED, or the answer to a run we gave up on
    else if (msg->env.status == 200 && streq (msg->env.type, MT_RUN_RESULT))
        session_runs_on_result (self, p, msg->body.root);
    else {
        //  Refused by the run actor (or none alive): the front waits
        //  for a reply to its SESSION_RUN, so it gets this one.
        char code[48] = "internal_error", message[512] = "Run refused";
        mp_copy_str (msg->body.root, MK_code, code, sizeof (code));
        mp_copy_str (msg->body.root, MK_message, message, sizeof (message));
        int status = error_status (msg->env.status);
        bus_worker_reply (self->worker, &p->origin, MT_ERROR, status,
                          zmq_msg_data (&msg->raw), zmq_msg_size (&msg->raw));
        live_t *live = p->live;
        //  The front has its answer; watchers get chat.error.
        p->origin.front_len = 0;
        session_runs_end_local (self, p, NULL, status, code, message);
        session_runs_pump (self, live);
    }
}

static int
s_on_front (zloop_t *loop, zsock_t *sock, void *arg)
{
    self_t *self = (self_t *) arg;
    actor_front_drain (self->front, self->inflight, s_on_run_reply, self);
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    int64_t now = zclock_mono ();
    session_runs_stats_log (self, now, false);
    zlistx_t *due = zlistx_new ();
    for (pending_t *p = (pending_t *) zhashx_first (self->runs); p;
         p = (pending_t *) zhashx_next (self->runs))
        if (now >= p->deadline + (p->dispatched ? SESSION_GRACE_MS : 0))
            zlistx_add_end (due, p);
    for (pending_t *p = (pending_t *) zlistx_first (due); p;
         p = (pending_t *) zlistx_next (due)) {
        live_t *live = p->live;
        if (p->dispatched) {
            log_warn ("session",
                      "%s: no result from the run actor %d ms "
                      "past the deadline",
                      p->run_id, SESSION_GRACE_MS);
            session_runs_end_local (self, p, NULL, ENVELOPE_UNAVAILABLE,
                                    "service_unavailable",
                                    "The run actor did not finish the run");
        }
        else
            session_runs_end_local (self, p, "timeout", 0, NULL, NULL);
        session_runs_pump (self, live);
    }
    zlistx_destroy (&due);
    return 0;
}

//  ---- Life cycle -------------------------------------------------------------------------------

static int
s_init (void *state, const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) state;
    const session_settings_t *cfg = &args->settings->session;
    self->settings = cfg;
    self->catalog = &args->settings->catalog;
    self->worker = worker;
    self->lives = zhashx_new ();
    self->runs = zhashx_new ();
    self->inflight = zhashx_new ();
    char url[4200], err[512];
    session_read_store_url (cfg, url, sizeof (url));
    self->store = store_open (url, err, sizeof (err));
    if (!self->store) {
        log_error ("session", "%s", err);
        return -1;
    }
    int n = store_recover (self->store, session_now_ms ());
    if (n > 0)
        log_warn ("session",
                  "%d run(s) left open by the last stop are now "
                  "marked interrupted",
                  n);
    self->front = bus_front_new (args->broker);
    if (!self->front)
        return -1;
    zloop_reader (loop, bus_front_sock (self->front), s_on_front, self);
    //  After store_open: the schema is migrated before any reader opens.
    actor_args_t reader_args = *args;
    for (int i = 0; i < cfg->readers && i < SESSION_MAX_READERS; i++) {
        zactor_t *r = zactor_new (session_read_actor, &reader_args);
        if (r && reader_args.failed)
            zactor_destroy (&r);
        if (!r) {
            log_error ("session", "a session.read actor could not start");
            return -1;
        }
        self->readers[self->n_readers++] = r;
    }
    zloop_timer (loop, SESSION_TICK_MS, 0, s_on_tick, self);
    log_info ("session", "store %s, schema version %d", url,
              store_schema_version (self->store));
    return 0;
}

static void
s_fini (void *state)
{
    self_t *self = (self_t *) state;
    //  Runs still queued or going are recorded as interrupted.
    zlistx_t *all = actor_hash_values (self->runs);
    for (pending_t *p = (pending_t *) zlistx_first (all); p;
         p = (pending_t *) zlistx_next (all)) {
        live_t *live = p->live;
        session_runs_pending_end (self, p);
        session_runs_live_release (self, live);
    }
    zlistx_destroy (&all);
    session_runs_stats_log (self, zclock_mono (), true);
    log_info ("session",
              "stopping; largest tables: %zu live sessions, %zu "
              "runs, %zu at the run actor (now %zu, %zu, %zu)",
              self->peak_lives, self->peak_runs, self->peak_inflight,
              zhashx_size (self->lives), zhashx_size (self->runs),
              zhashx_size (self->inflight));
    if (self->store) {
        int n = store_recover (self->store, session_now_ms ());
        if (n > 0)
            log_warn ("session", "stopping: %d run(s) marked interrupted", n);
    }
    for (int i = self->n_readers - 1; i >= 0; i--)
        zactor_destroy (&self->readers[i]);
    store_close (&self->store);
    bus_front_destroy (&self->front);
    zhashx_destroy (&self->lives);
    zhashx_destroy (&self->runs);
    zhashx_destroy (&self->inflight);
}

static const actor_def_t s_def = {.service = "session",
                                  .size = sizeof (self_t),
                                  .init = s_init,
                                  .routes = s_routes,
                                  .fini = s_fini};

void
session_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
