/*  =========================================================================
    session - the session actor (see session.h for the flow)

    Memory: a live_t exists only while its session has a run queued or
    going; a pending_t for each such run.  Both are freed by this file alone
    (s_pending_end, s_pump); the hash tables only index them.
    =========================================================================
*/
#include "session.h"

#include "actor.h"
#include "settings.h"
#include "bus_front.h"
#include "ids.h"
#include "json_in.h"
#include "log.h"
#include "mpjson.h"
#include "store.h"

#include <string.h>

#define SESSION_GRACE_MS 5000        //  Past a run's deadline: run actor lost
#define SESSION_TICK_MS 250          //  Deadline checks
#define SESSION_PAGE_MAX 1000        //  Largest page of sessions or messages
#define SESSION_MAX_READERS 16
#define SESSION_STATS_MS 10000       //  Store write times logged this often
#define SESSION_STATS_RUNS 4096      //  Runs whose times a line covers, at most

typedef struct live_t live_t;

//  One run from its arrival to its end.
typedef struct {
    live_t *live;                    //  Its session (not owned)
    char run_id[80];
    bus_request_t origin;            //  Asking front and envelope (front/env
                                     //  only: raw and body are not used)
    uint8_t *body;                   //  The SESSION_RUN body (owned)
    size_t body_len;
    char model[256];                 //  As asked, or the agent's
    int64_t deadline;                //  zclock_mono () past which: timeout
    int64_t run_seq;                 //  Position in the session
    char corr[24];                   //  Our RUN_START's corr id, once sent
    bool dispatched;                 //  Went to the run actor
    bool interrupted;                //  Aborted because the gateway stops
    int64_t store_us;                //  Spent in the store on its arrival
} pending_t;

//  A session with runs queued or going.
struct live_t {
    char key[ENVELOPE_KEY_MAX + 1];
    int64_t id;                      //  Store row id
    int64_t seq;                     //  Last event seq published
    int64_t next_run;                //  run_seq of the next arrival
    pending_t *running;              //  At the run actor, or NULL
    zlistx_t *queue;                 //  pending_t waiting, in arrival order
    bool detached;                   //  Session deleted; not in lives
};

//  The last SESSION_STATS_RUNS timings of a window (us).
typedef struct {
    uint32_t us[SESSION_STATS_RUNS];
    size_t n;                        //  Taken in the window (may be more)
} timings_t;

typedef struct {
    const session_settings_t *settings;  //  Read only, not owned
    const catalog_t *catalog;        //  Read only, not owned
    bus_worker_t *worker;            //  Our service socket (not owned)
    bus_front_t *front;              //  Our requests to the run actor
    store_t *store;
    zhashx_t *lives;                 //  key -> live_t (index only)
    zhashx_t *runs;                  //  runId -> pending_t (index only)
    zhashx_t *inflight;              //  RUN_START corr id -> pending_t
    zactor_t *readers[SESSION_MAX_READERS];  //  session.read actors
    int n_readers;
    //  Logged every SESSION_STATS_MS (s_stats_log): the storage write
    //  path's time per run (its arrival's transaction plus its end's,
    //  without the context read), and the context reads made in the
    //  arrival's transaction.
    timings_t writes, reads;
    int64_t stats_at;                //  zclock_mono () of the next line
    //  Largest size each table reached, logged at stop: they must follow
    //  the sessions and runs that are live, not every one ever seen.
    size_t peak_lives, peak_runs, peak_inflight;
} self_t;

static void s_pump (self_t *self, live_t *live);

static void
s_peak (size_t *peak, zhashx_t *table)
{
    if (zhashx_size (table) > *peak)
        *peak = zhashx_size (table);
}

//  ---- Small helpers -------------------------------------------------------------

static int64_t
s_now_ms (void)
{
    return zclock_time ();
}

static void
s_kv_time (mp_writer_t *w, const char *key, int64_t ms)
{
    char iso[LOG_ISO_TIME_LEN + 1];
    mp_kv_str (w, key, log_iso_time (iso, ms));
}

//  Characters (code points) of UTF-8 text: bytes that do not continue one.
static int64_t
s_chars (const char *s, size_t len)
{
    int64_t n = 0;
    for (size_t i = 0; i < len; i++)
        n += ((unsigned char) s[i] & 0xC0) != 0x80;
    return n;
}

//  Packs JSON text as its msgpack value (nil if it does not parse).
static void
s_pack_json_text (mp_writer_t *w, const char *text)
{
    cJSON *j = text ? json_in_parse (text, strlen (text), 0, JSON_IN_NUL_OK,
                                     NULL, NULL)
                     : NULL;
    if (!j || mpjson_pack (&w->pk, j))
        msgpack_pack_nil (&w->pk);
    cJSON_Delete (j);
}

//  Packs every pair of map except the keys in skip (NULL-terminated), after
//  a map header counting them plus n_extra pairs the caller adds.
static void
s_pack_map_except (mp_writer_t *w, const msgpack_object *map,
                   const char *const *skip, size_t n_extra)
{
    size_t n = 0;
    const msgpack_object_kv *kv = map->via.map.ptr;
    bool keep[map->via.map.size + 1];
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        keep[i] = true;
        if (kv[i].key.type == MSGPACK_OBJECT_STR)
            for (const char *const *s = skip; *s; s++)
                if (kv[i].key.via.str.size == strlen (*s)
                    && !memcmp (kv[i].key.via.str.ptr, *s, strlen (*s)))
                    keep[i] = false;
        n += keep[i];
    }
    msgpack_pack_map (&w->pk, n + n_extra);
    for (uint32_t i = 0; i < map->via.map.size; i++)
        if (keep[i]) {
            msgpack_pack_object (&w->pk, kv[i].key);
            msgpack_pack_object (&w->pk, kv[i].val);
        }
}

//  ---- Sessions in memory ---------------------------------------------------------

//  The live session for key, loading or creating its row.  NULL on a store
//  failure.
static live_t *
s_live_get (self_t *self, const char *key, const char *agent_id,
            const char *channel)
{
    live_t *live = (live_t *) zhashx_lookup (self->lives, key);
    if (live)
        return live;
    store_session_t row;
    if (store_session_open (self->store, key, agent_id, channel, s_now_ms (),
                            &row))
        return NULL;
    live = (live_t *) calloc (1, sizeof (live_t));
    if (!live)
        return NULL;
    snprintf (live->key, sizeof (live->key), "%s", key);
    live->id = row.id;
    live->seq = row.last_seq;
    live->next_run = row.next_run;
    live->queue = zlistx_new ();
    zhashx_insert (self->lives, live->key, live);
    s_peak (&self->peak_lives, self->lives);
    return live;
}

//  Frees live once nothing is queued or going.
static void
s_live_release (self_t *self, live_t *live)
{
    if (live->running || zlistx_size (live->queue))
        return;
    if (!live->detached)
        zhashx_delete (self->lives, live->key);
    zlistx_destroy (&live->queue);
    free (live);
}

//  Forgets p everywhere and frees it.  Does not pump its session.
static void
s_pending_end (self_t *self, pending_t *p)
{
    live_t *live = p->live;
    if (live->running == p)
        live->running = NULL;
    else {
        void *h = zlistx_find (live->queue, p);
        if (h)
            zlistx_delete (live->queue, h);
    }
    if (p->corr[0])
        zhashx_delete (self->inflight, p->corr);
    zhashx_delete (self->runs, p->run_id);
    free (p->body);
    free (p);
}

//  ---- Ends of runs -------------------------------------------------------------------

static void
s_emit (self_t *self, pending_t *p, const char *type, mp_writer_t *w)
{
    char topic[BUS_MAX_TOPIC + 1];
    snprintf (topic, sizeof (topic), "%s/%s", p->live->key, type);
    if (bus_worker_event (self->worker, p->origin.front, p->origin.front_len,
                          topic, w->buf.data, w->buf.size))
        log_warn ("session", "%s: %s dropped: broker not taking it", p->run_id,
                  type);
}

static void
s_timing_add (timings_t *t, int64_t us)
{
    t->us[t->n++ % SESSION_STATS_RUNS]
        = us < 0 ? 0 : us < UINT32_MAX ? (uint32_t) us : UINT32_MAX;
}

static int
s_cmp_u32 (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return (x > y) - (x < y);
}

static void
s_record_end (self_t *self, pending_t *p, const store_message_t *steps,
              size_t n_steps, const store_message_t *reply)
{
    int64_t t0 = zclock_usecs ();
    if (store_run_end (self->store, p->live->id, p->run_seq, steps, n_steps,
                       reply, p->live->seq, s_now_ms ()))
        log_error ("session", "%s: could not record the end of the run "
                              "(%s); it will read as interrupted",
                   p->run_id, reply->finish_reason);
    s_timing_add (&self->writes, p->store_us + zclock_usecs () - t0);
}

//  Sorts t's timings; returns how many there are (at most the last
//  SESSION_STATS_RUNS of the window).
static size_t
s_timings_sort (timings_t *t)
{
    size_t n = t->n < SESSION_STATS_RUNS ? t->n : SESSION_STATS_RUNS;
    qsort (t->us, n, sizeof (uint32_t), s_cmp_u32);
    return n;
}

//  One line per SESSION_STATS_MS with runs recorded in it: what the
//  storage writes (a run's arrival transaction plus its end transaction,
//  without the context read) added to each, and the context reads made in
//  arrival transactions; median and p99 over the window's last
//  SESSION_STATS_RUNS.  At stop (final), the window so far.
static void
s_stats_log (self_t *self, int64_t now, bool final)
{
    if (now < self->stats_at && !final)
        return;
    self->stats_at = now + SESSION_STATS_MS;
    if (!self->writes.n)
        return;
    size_t n = s_timings_sort (&self->writes);
    size_t r = s_timings_sort (&self->reads);
    const uint32_t *w = self->writes.us, *c = self->reads.us;
    log_info ("session", "%zu runs recorded in %s%d s; store writes per run: "
                         "median %u us, p99 %u us, max %u us; %zu context reads: "
                         "median %u us, p99 %u us",
              self->writes.n, final ? "up to " : "", SESSION_STATS_MS / 1000,
              w[(n - 1) / 2], w[(n - 1) * 99 / 100], w[n - 1], self->reads.n,
              r ? c[(r - 1) / 2] : 0, r ? c[(r - 1) * 99 / 100] : 0);
    self->writes.n = self->reads.n = 0;
}

//  Ends a run that never reached (or never came back from) the run actor:
//  finish is "aborted" or "timeout" (chat.done), or NULL for a failure
//  (chat.error with status, code, message).
static void
s_end_local (self_t *self, pending_t *p, const char *finish, int status,
             const char *code, const char *message)
{
    live_t *live = p->live;
    live->seq++;
    char error[768] = "";
    if (!finish) {
        cJSON *e = cJSON_CreateObject ();
        cJSON_AddStringToObject (e, "code", code);
        cJSON_AddStringToObject (e, "message", message);
        char *text = cJSON_PrintUnformatted (e);
        snprintf (error, sizeof (error), "%s", text ? text : "");
        free (text);
        cJSON_Delete (e);
    }
    store_message_t reply = {.role = "assistant", .content = "",
                             .run_id = p->run_id, .created_at = s_now_ms (),
                             .model = p->model,
                             .finish_reason = finish ? finish : "error",
                             .error = finish ? NULL : error};
    s_record_end (self, p, NULL, 0, &reply);
    mp_writer_t w;
    mp_writer_init (&w);
    if (finish) {
        msgpack_pack_map (&w.pk, 7);
        mp_kv_str (&w, "sessionKey", live->key);
        mp_kv_str (&w, "runId", p->run_id);
        mp_kv_int (&w, "seq", live->seq);
        mp_kv_str (&w, "finishReason", finish);
        mp_key (&w, "usage");
        msgpack_pack_map (&w.pk, 3);
        mp_kv_int (&w, "promptTokens", 0);
        mp_kv_int (&w, "completionTokens", 0);
        mp_kv_int (&w, "totalTokens", 0);
        mp_kv_str (&w, "response", "");
        mp_kv_str (&w, "model", p->model);
        s_emit (self, p, "chat.done", &w);
    }
    else {
        msgpack_pack_map (&w.pk, 5);
        mp_kv_str (&w, "sessionKey", live->key);
        mp_kv_str (&w, "runId", p->run_id);
        mp_kv_int (&w, "seq", live->seq);
        mp_key (&w, "error");
        msgpack_pack_map (&w.pk, 3);
        mp_kv_str (&w, "code", code);
        mp_kv_str (&w, "message", message);
        mp_kv_str (&w, "type", status >= 500 ? "server_error" : "client_error");
        mp_kv_int (&w, "status", status);
        s_emit (self, p, "chat.error", &w);
    }
    mp_writer_fini (&w);
    log_info ("session", "%s on %s ended here: %s", p->run_id, live->key,
              finish ? finish : message);
    s_pending_end (self, p);
}

//  The run actor's RUN_RESULT: commit the reply, then tell the front.
static void
s_on_result (self_t *self, pending_t *p, const msgpack_object *b)
{
    live_t *live = p->live;
    char event[16] = "", finish[24] = "error", model[256] = "";
    mp_copy_str (b, "event", event, sizeof (event));
    mp_copy_str (b, "finishReason", finish, sizeof (finish));
    mp_copy_str (b, "model", model, sizeof (model));
    //  Stopped by a shutdown, not by a user: say so.
    bool interrupted = p->interrupted && streq (finish, "aborted");
    if (interrupted)
        snprintf (finish, sizeof (finish), "interrupted");
    int64_t seq = live->seq + 1;
    mp_get_int (b, "seq", &seq);
    live->seq = seq > live->seq ? seq : live->seq + 1;
    bool done = streq (event, "chat.done");
    store_message_t reply = {.role = "assistant", .content = "",
                             .run_id = p->run_id, .created_at = s_now_ms (),
                             .model = model[0] ? model : p->model,
                             .finish_reason = done ? finish : "error"};
    size_t len = 0;
    const char *text = mp_get_str (b, "response", &len);
    if (text) {
        reply.content = text;
        reply.content_len = len;
    }
    const msgpack_object *u = mp_get (b, "usage");
    mp_get_int (u, "promptTokens", &reply.prompt_tokens);
    mp_get_int (u, "completionTokens", &reply.completion_tokens);
    char *calls = NULL, *error = NULL;
    const msgpack_object *tc = mp_get (b, "toolCalls");
    if (tc && tc->type == MSGPACK_OBJECT_ARRAY) {
        cJSON *j = mpjson_to_json (tc);
        calls = j ? cJSON_PrintUnformatted (j) : NULL;
        cJSON_Delete (j);
        reply.tool_calls = calls;
    }
    const msgpack_object *e = mp_get (b, "error");
    if (!done && e) {
        cJSON *j = mpjson_to_json (e);
        error = j ? cJSON_PrintUnformatted (j) : NULL;
        cJSON_Delete (j);
        reply.error = error;
    }
    //  The tool rounds, if the run had any: copies, as the store wants
    //  NUL-terminated text.
    const msgpack_object *steps = mp_get (b, "steps");
    size_t n_steps = steps && steps->type == MSGPACK_OBJECT_ARRAY
                         ? steps->via.array.size
                         : 0;
    store_message_t *step = n_steps ? (store_message_t *) calloc (
                                          n_steps, sizeof (store_message_t))
                                    : NULL;
    char **owned = n_steps ? (char **) calloc (n_steps * 4, sizeof (char *)) : NULL;
    if (!step || !owned)
        n_steps = 0;
    for (size_t i = 0; i < n_steps; i++) {
        const msgpack_object *m = &steps->via.array.ptr[i];
        size_t sl;
        const char *role = mp_get_str (m, "role", &sl);
        owned[4 * i] = role ? strndup (role, sl) : strdup ("assistant");
        const char *content = mp_get_str (m, "content", &sl);
        owned[4 * i + 1] = content ? strndup (content, sl) : strdup ("");
        const msgpack_object *stc = mp_get (m, "tool_calls");
        if (stc && stc->type == MSGPACK_OBJECT_ARRAY) {
            cJSON *j = mpjson_to_json (stc);
            owned[4 * i + 2] = j ? cJSON_PrintUnformatted (j) : NULL;
            cJSON_Delete (j);
        }
        const char *call_id = mp_get_str (m, "tool_call_id", &sl);
        owned[4 * i + 3] = call_id ? strndup (call_id, sl) : NULL;
        step[i] = (store_message_t) {
            .role = owned[4 * i], .content = owned[4 * i + 1],
            .content_len = owned[4 * i + 1] ? strlen (owned[4 * i + 1]) : 0,
            .run_id = p->run_id, .created_at = reply.created_at,
            .tool_calls = owned[4 * i + 2], .tool_call_id = owned[4 * i + 3]};
    }
    s_record_end (self, p, step, n_steps, &reply);
    for (size_t i = 0; owned && i < n_steps * 4; i++)
        free (owned[i]);
    free (owned);
    free (step);
    free (calls);
    free (error);
    //  The event is the run actor's body with our seq and without "event".
    static const char *const skip[] = {"event", "seq", NULL};
    static const char *const skip_finish[] = {"event", "seq", "finishReason",
                                              NULL};
    mp_writer_t w;
    mp_writer_init (&w);
    s_pack_map_except (&w, b, interrupted ? skip_finish : skip,
                       interrupted ? 2 : 1);
    mp_kv_int (&w, "seq", live->seq);
    if (interrupted)
        mp_kv_str (&w, "finishReason", "interrupted");
    s_emit (self, p, done ? "chat.done" : "chat.error", &w);
    mp_writer_fini (&w);
    s_pending_end (self, p);
    s_pump (self, live);
}

//  ---- Dispatch to the run actor ----------------------------------------------------------

typedef struct {
    int64_t budget;                  //  Characters left
    char **roles, **texts;           //  Collected, newest first (owned)
    size_t *lens;
    int n, cap;
} context_t;

static int
s_context_add (void *arg, const store_message_t *m)
{
    context_t *c = (context_t *) arg;
    if (!m->content_len && !strcmp (m->role, "assistant"))
        return 0;   //  Tool calls alone: no text to give back
    int64_t chars = s_chars (m->content, m->content_len);
    if (chars > c->budget)
        return 1;   //  Newest kept: stop at the first that does not fit
    if (c->n == c->cap) {
        int cap = c->cap ? c->cap * 2 : 16;
        char **r = (char **) realloc (c->roles, cap * sizeof (char *));
        if (r)
            c->roles = r;
        char **t = (char **) realloc (c->texts, cap * sizeof (char *));
        if (t)
            c->texts = t;
        size_t *l = (size_t *) realloc (c->lens, cap * sizeof (size_t));
        if (l)
            c->lens = l;
        if (!r || !t || !l)
            return 1;
        c->cap = cap;
    }
    c->roles[c->n] = strdup (m->role);
    c->texts[c->n] = (char *) malloc (m->content_len + 1);
    if (!c->roles[c->n] || !c->texts[c->n]) {
        free (c->roles[c->n]);
        free (c->texts[c->n]);
        return 1;
    }
    memcpy (c->texts[c->n], m->content, m->content_len);
    c->texts[c->n][m->content_len] = 0;
    c->lens[c->n] = m->content_len;
    c->n++;
    c->budget -= chars;
    return 0;
}

static void
s_context_fini (context_t *c)
{
    for (int i = 0; i < c->n; i++) {
        free (c->roles[i]);
        free (c->texts[i]);
    }
    free (c->roles);
    free (c->texts);
    free (c->lens);
}

//  Packs "messages": the session's context (oldest first) and the new user
//  message, or the conversation the client sent whole.
static void
s_pack_messages (self_t *self, pending_t *p, const msgpack_object *b,
                 mp_writer_t *w)
{
    mp_key (w, "messages");
    const msgpack_object *given = mp_get (b, "messages");
    if (given && given->type == MSGPACK_OBJECT_ARRAY) {
        msgpack_pack_object (&w->pk, *given);
        return;
    }
    size_t len = 0;
    const char *text = mp_get_str (b, "message", &len);
    context_t c = {.budget = self->settings->context_chars - s_chars (text, len)};
    if (self->settings->context_messages > 0 && c.budget > 0
        && store_context (self->store, p->live->id,
                          self->settings->context_messages, s_context_add, &c)
               < 0)
        log_warn ("session", "%s: context unavailable, sending the message "
                             "alone",
                  p->run_id);
    msgpack_pack_array (&w->pk, (size_t) c.n + 1);
    for (int i = c.n - 1; i >= 0; i--) {
        msgpack_pack_map (&w->pk, 2);
        mp_kv_str (w, "role", c.roles[i]);
        mp_key (w, "content");
        mp_put_strn (w, c.texts[i], c.lens[i]);
    }
    msgpack_pack_map (&w->pk, 2);
    mp_kv_str (w, "role", "user");
    mp_key (w, "content");
    mp_put_strn (w, text ? text : "", len);
    s_context_fini (&c);
}

//  Packs p's RUN_START body into w (an initialised writer): the client's
//  fields, the context read from the store, where the deltas go.  left is
//  the run's time left (ms).  -1 if p's stored body cannot be read.
static int
s_start_body (self_t *self, pending_t *p, int64_t left, mp_writer_t *w)
{
    mp_reader_t rd;
    if (mp_reader_init (&rd, p->body, p->body_len)) {
        mp_reader_fini (&rd);
        return -1;
    }
    static const char *const skip[] = {"message", "messages", "channel",
                                       "timeoutMs", NULL};
    s_pack_map_except (w, rd.root, skip, 4);
    s_pack_messages (self, p, rd.root, w);
    mp_key (w, "replyTo");
    mp_put_strn (w, (const char *) p->origin.front, p->origin.front_len);
    mp_kv_int (w, "seqBase", p->live->seq);
    mp_kv_int (w, "timeoutMs", left);
    mp_reader_fini (&rd);
    return 0;
}

//  Sends p's RUN_START (body in w) to the run actor; p is then the
//  session's running run, or ended if the broker refuses it.
static void
s_start_send (self_t *self, pending_t *p, int64_t left, const mp_writer_t *w)
{
    live_t *live = p->live;
    envelope_t env;
    envelope_init (&env, "RUN_START");
    snprintf (env.session_key, sizeof (env.session_key), "%s", live->key);
    env.timeout_ms = left;
    if (bus_front_send (self->front, "run", &env, w->buf.data, w->buf.size)) {
        s_end_local (self, p, NULL, 503, "service_unavailable",
                     "The broker is not taking requests");
        return;
    }
    snprintf (p->corr, sizeof (p->corr), "%llu",
              (unsigned long long) env.corr_id);
    zhashx_insert (self->inflight, p->corr, p);
    s_peak (&self->peak_inflight, self->inflight);
    p->dispatched = true;
    live->running = p;
    log_debug ("session", "%s on %s sent to the run actor", p->run_id,
               live->key);
}

//  Sends p to the run actor, or ends it if it can no longer run.
static void
s_dispatch (self_t *self, pending_t *p)
{
    int64_t left = p->deadline - zclock_mono ();
    if (left <= 0) {
        s_end_local (self, p, "timeout", 0, NULL, NULL);
        return;
    }
    mp_writer_t w;
    mp_writer_init (&w);
    if (s_start_body (self, p, left, &w))
        s_end_local (self, p, NULL, 500, "internal_error", "Run body lost");
    else
        s_start_send (self, p, left, &w);
    mp_writer_fini (&w);
}

//  Sends the next queued runs of live while it is idle; frees live when
//  nothing is left.  live must not be used after this.
static void
s_pump (self_t *self, live_t *live)
{
    while (!live->running) {
        pending_t *p = (pending_t *) zlistx_first (live->queue);
        if (!p)
            break;
        zlistx_delete (live->queue, zlistx_cursor (live->queue));
        //  Not in the queue any more; s_pending_end copes with that.
        s_dispatch (self, p);
    }
    s_live_release (self, live);
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
        for (uint32_t j = 0; parts && parts->type == MSGPACK_OBJECT_ARRAY
                             && j < parts->via.array.size;
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

static void
s_handle_run (self_t *self, bus_worker_t *worker, bus_request_t *req)
{
    const msgpack_object *b = req->body.root;
    char run_id[80] = "", key[ENVELOPE_KEY_MAX + 1] = "";
    char agent_id[128] = "default", channel[64] = "api", model[256] = "";
    if (mp_copy_str (b, "runId", run_id, sizeof (run_id)) || !run_id[0]) {
        bus_worker_error (worker, req, 400, "invalid_request",
                          "runId is missing or too long", "runId");
        return;
    }
    if (mp_copy_str (b, "sessionKey", key, sizeof (key)) || !ids_session_key_valid (key)) {
        bus_worker_error (worker, req, 400, "invalid_request",
                          "Invalid session key", "sessionKey");
        return;
    }
    mp_copy_str (b, "agentId", agent_id, sizeof (agent_id));
    mp_copy_str (b, "channel", channel, sizeof (channel));
    const cfg_agent_t *agent = catalog_find_agent (self->catalog, agent_id);
    if (!agent) {
        bus_worker_error (worker, req, 404, "not_found", "Unknown agent",
                          "agentId");
        return;
    }
    mp_copy_str (b, "model", model, sizeof (model));
    const char *unused;
    if (model[0] && !catalog_find_model (self->catalog, model, &unused)) {
        char msg[320];
        snprintf (msg, sizeof (msg), "The model '%.256s' does not exist", model);
        bus_worker_error (worker, req, 404, "not_found", msg, "model");
        return;
    }
    const msgpack_object *given = mp_get (b, "messages");
    size_t text_len = 0;
    const char *text = mp_get_str (b, "message", &text_len);
    if ((!given || !given->via.array.size) && (!text || !text_len)) {
        bus_worker_error (worker, req, 400, "invalid_request",
                          "A non-empty message is required", "message");
        return;
    }
    if (zhashx_lookup (self->runs, run_id)) {
        bus_worker_error (worker, req, 400, "invalid_request",
                          "A run with this runId is already in flight", "runId");
        return;
    }
    //  Checked before the batch: a refusal takes no write lock.  (A
    //  session not in memory has nothing queued.)
    live_t *known = (live_t *) zhashx_lookup (self->lives, key);
    if (known && (known->running ? 1 : 0) + zlistx_size (known->queue)
                     >= (size_t) self->settings->max_queued) {
        bus_worker_error (worker, req, 429, "rate_limited",
                          "Too many runs are waiting on this session", NULL);
        return;
    }
    //  One transaction for the session row, the user message and, when the
    //  session is idle, the context read for its RUN_START: one commit
    //  where there were two or three.
    int64_t t0 = zclock_usecs ();
    bool batch = store_batch_begin (self->store) == 0;
    live_t *live = s_live_get (self, key, agent_id, channel);
    if (!live) {
        if (batch)
            store_batch_abort (self->store);
        bus_worker_error (worker, req, 500, "internal_error",
                          "The session store is not answering", NULL);
        return;
    }
    char *user = given && !text ? s_last_user_text (given, &text_len)
                                : strndup (text, text_len);
    store_message_t m = {.role = "user", .content = user ? user : "",
                         .content_len = user ? text_len : 0, .run_id = run_id,
                         .created_at = s_now_ms ()};
    int rc = store_run_begin (self->store, live->id, run_id, live->next_run, &m,
                              m.created_at);
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
        snprintf (p->model, sizeof (p->model), "%s",
                  model[0] ? model : agent->model);
        memcpy (p->origin.front, req->front, req->front_len);
        p->origin.front_len = req->front_len;
        p->origin.env = req->env;
    }
    int64_t timeout = self->settings->request_timeout_ms;
    mp_get_int (b, "timeoutMs", &timeout);
    if (timeout <= 0 || timeout > self->settings->request_timeout_ms)
        timeout = self->settings->request_timeout_ms;
    //  An idle session's run starts now: its context is read in the batch.
    mp_writer_t start;
    mp_writer_init (&start);
    int64_t read_at = zclock_usecs ();
    bool ready = p && p->body && batch && !live->running
                 && !zlistx_size (live->queue)
                 && s_start_body (self, p, timeout, &start) == 0;
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
        bus_worker_error (worker, req, 500, "internal_error",
                          oom ? "Out of memory" : "Could not record the message",
                          NULL);
        s_live_release (self, live);
        return;
    }
    p->store_us = zclock_usecs () - t0 - (ready ? read_us : 0);
    if (ready)
        s_timing_add (&self->reads, read_us);
    live->next_run++;
    p->deadline = zclock_mono () + timeout;
    zhashx_insert (self->runs, p->run_id, p);
    s_peak (&self->peak_runs, self->runs);
    if (ready) {
        log_debug ("session", "%s on %s at %lld starts at once", p->run_id,
                   key, (long long) p->run_seq);
        s_start_send (self, p, timeout, &start);
        mp_writer_fini (&start);
        s_live_release (self, live);
        return;
    }
    mp_writer_fini (&start);
    zlistx_add_end (live->queue, p);
    log_debug ("session", "%s queued on %s at %lld (%zu waiting)", p->run_id,
               key, (long long) p->run_seq, zlistx_size (live->queue));
    s_pump (self, live);
}

//  Asks the run actor to stop p (its RUN_RESULT then ends it).
static void
s_abort_running (self_t *self, pending_t *p)
{
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 1);
    mp_kv_str (&w, "runId", p->run_id);
    envelope_t env;
    envelope_init (&env, "RUN_ABORT");
    //  Same key as its RUN_START: the broker routes both to one run actor.
    snprintf (env.session_key, sizeof (env.session_key), "%s", p->live->key);
    if (bus_front_send (self->front, "run", &env, w.buf.data, w.buf.size))
        log_warn ("session", "%s: abort not sent: broker not taking it",
                  p->run_id);
    mp_writer_fini (&w);
}

static void
s_handle_abort (self_t *self, bus_worker_t *worker, bus_request_t *req)
{
    char id[80] = "";
    mp_copy_str (req->body.root, "runId", id, sizeof (id));
    pending_t *p = (pending_t *) zhashx_lookup (self->runs, id);
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 2);
    mp_kv_str (&w, "runId", id);
    mp_kv_bool (&w, "aborted", p != NULL);
    bus_worker_reply (worker, req, "RUN_ABORTED", 200, w.buf.data, w.buf.size);
    mp_writer_fini (&w);
    if (!p)
        return;
    char reason[16] = "";
    mp_copy_str (req->body.root, "reason", reason, sizeof (reason));
    p->interrupted = streq (reason, "shutdown");
    log_info ("session", "%s %s", id, p->interrupted ? "interrupted" : "aborted");
    if (p->dispatched)
        s_abort_running (self, p);
    else {
        live_t *live = p->live;
        s_end_local (self, p, p->interrupted ? "interrupted" : "aborted", 0,
                     NULL, NULL);
        s_pump (self, live);
    }
}

//  Answers a store call that did not return 0: 1 is an unknown session
//  (404), anything else a store failure (500).
static void
s_reply_store_rc (bus_worker_t *worker, bus_request_t *req, int rc)
{
    if (rc > 0)
        bus_worker_error (worker, req, 404, "not_found", "Unknown session",
                          "sessionKey");
    else
        bus_worker_error (worker, req, 500, "internal_error",
                          "The session store failed", NULL);
}

//  The six fields of a session as the client sees them (no map header).
static void
s_pack_session_fields (mp_writer_t *w, const store_session_t *s)
{
    mp_kv_str (w, "sessionKey", s->key);
    mp_kv_str (w, "agentId", s->agent_id);
    mp_kv_str (w, "channel", s->channel);
    s_kv_time (w, "createdAt", s->created_at);
    s_kv_time (w, "updatedAt", s->updated_at);
    mp_kv_int (w, "messageCount", s->message_count);
}

static void
s_pack_session (mp_writer_t *w, const store_session_t *s)
{
    msgpack_pack_map (&w->pk, 6);
    s_pack_session_fields (w, s);
}

typedef struct {
    mp_writer_t items;               //  Packed items
    int n, limit;                    //  Packed so far, page size
    char next[64];                   //  Cursor after the last packed item
    bool more;                       //  A row past the page exists
} page_t;

static int
s_list_row (void *arg, const store_session_t *s)
{
    page_t *pg = (page_t *) arg;
    if (pg->n == pg->limit) {
        pg->more = true;
        return 1;
    }
    s_pack_session (&pg->items, s);
    snprintf (pg->next, sizeof (pg->next), "%lld-%lld",
              (long long) s->updated_at, (long long) s->id);
    pg->n++;
    return 0;
}

//  Reads limit (1..SESSION_PAGE_MAX, default dflt).  0 or the error sent.
static int
s_get_limit (bus_worker_t *worker, bus_request_t *req, int dflt, int *limit)
{
    int64_t v = dflt;
    const msgpack_object *o = mp_get (req->body.root, "limit");
    if (o && !mp_get_int (req->body.root, "limit", &v))
        v = -1;
    if (v < 1 || v > SESSION_PAGE_MAX) {
        bus_worker_error (worker, req, 400, "invalid_request",
                          "limit must be an integer from 1 to 1000", "limit");
        return 400;
    }
    *limit = (int) v;
    return 0;
}

static void
s_finish_page (mp_writer_t *w, page_t *pg)
{
    msgpack_sbuffer_write (&w->buf, pg->items.buf.data, pg->items.buf.size);
    mp_key (w, "nextCursor");
    if (pg->more)
        mp_put_str (w, pg->next);
    else
        msgpack_pack_nil (&w->pk);
}

static void
s_handle_list (store_t *store, bus_worker_t *worker, bus_request_t *req)
{
    const msgpack_object *b = req->body.root;
    page_t pg = {0};
    if (s_get_limit (worker, req, 50, &pg.limit))
        return;
    store_query_t q = {.limit = pg.limit + 1};
    char channel[64], agent[128], cursor[64];
    if (!mp_copy_str (b, "channel", channel, sizeof (channel)))
        q.channel = channel;
    if (!mp_copy_str (b, "agentId", agent, sizeof (agent)))
        q.agent_id = agent;
    if (mp_get (b, "cursor")) {
        long long u, id;
        char tail;
        if (mp_copy_str (b, "cursor", cursor, sizeof (cursor))
            || sscanf (cursor, "%lld-%lld%c", &u, &id, &tail) != 2) {
            bus_worker_error (worker, req, 400, "invalid_request",
                              "cursor is not one this gateway gave out",
                              "cursor");
            return;
        }
        q.after = true;
        q.after_updated = u;
        q.after_id = id;
    }
    mp_writer_init (&pg.items);
    int rc = store_session_list (store, &q, s_list_row, &pg);
    if (rc < 0) {
        mp_writer_fini (&pg.items);
        bus_worker_error (worker, req, 500, "internal_error",
                          "The session store failed", NULL);
        return;
    }
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 2);
    mp_key (&w, "sessions");
    msgpack_pack_array (&w.pk, (size_t) pg.n);
    s_finish_page (&w, &pg);
    bus_worker_reply (worker, req, "SESSION_LIST_OK", 200, w.buf.data,
                      w.buf.size);
    mp_writer_fini (&w);
    mp_writer_fini (&pg.items);
}

static int
s_message_row (void *arg, const store_message_t *m)
{
    page_t *pg = (page_t *) arg;
    if (pg->n == pg->limit) {
        pg->more = true;
        return 1;
    }
    mp_writer_t *w = &pg->items;
    bool reply = m->finish_reason != NULL;
    size_t n = 4 + (reply ? 3 : 0) + (m->tool_calls ? 1 : 0)
               + (m->tool_call_id ? 1 : 0) + (m->error ? 1 : 0);
    msgpack_pack_map (&w->pk, n);
    mp_kv_str (w, "role", m->role);
    mp_key (w, "content");
    mp_put_strn (w, m->content, m->content_len);
    s_kv_time (w, "createdAt", m->created_at);
    if (m->run_id)
        mp_kv_str (w, "runId", m->run_id);
    else
        mp_kv_nil (w, "runId");
    if (reply) {
        mp_kv_str (w, "model", m->model ? m->model : "");
        mp_kv_str (w, "finishReason", m->finish_reason);
        mp_key (w, "usage");
        msgpack_pack_map (&w->pk, 3);
        mp_kv_int (w, "promptTokens", m->prompt_tokens);
        mp_kv_int (w, "completionTokens", m->completion_tokens);
        mp_kv_int (w, "totalTokens", m->prompt_tokens + m->completion_tokens);
    }
    if (m->tool_calls) {
        mp_key (w, "toolCalls");
        s_pack_json_text (w, m->tool_calls);
    }
    if (m->tool_call_id)
        mp_kv_str (w, "toolCallId", m->tool_call_id);
    if (m->error) {
        mp_key (w, "error");
        s_pack_json_text (w, m->error);
    }
    snprintf (pg->next, sizeof (pg->next), "%lld", (long long) m->pos);
    pg->n++;
    return 0;
}

static void
s_handle_get (store_t *store, bus_worker_t *worker, bus_request_t *req)
{
    const msgpack_object *b = req->body.root;
    char key[ENVELOPE_KEY_MAX + 1] = "";
    if (mp_copy_str (b, "sessionKey", key, sizeof (key)) || !ids_session_key_valid (key)) {
        bus_worker_error (worker, req, 400, "invalid_request",
                          "Invalid session key", "sessionKey");
        return;
    }
    page_t pg = {0};
    if (s_get_limit (worker, req, 100, &pg.limit))
        return;
    int64_t after = -1;
    if (mp_get (b, "cursor")) {
        char cursor[32];
        long long pos;
        char tail;
        if (mp_copy_str (b, "cursor", cursor, sizeof (cursor))
            || sscanf (cursor, "%lld%c", &pos, &tail) != 1 || pos < 0) {
            bus_worker_error (worker, req, 400, "invalid_request",
                              "cursor is not one this gateway gave out",
                              "cursor");
            return;
        }
        after = pos;
    }
    store_session_t s;
    int rc = store_session_get (store, key, &s);
    if (rc) {
        s_reply_store_rc (worker, req, rc);
        return;
    }
    //  The row is lent until the next store call: pack it first.
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 8);
    s_pack_session_fields (&w, &s);
    int64_t id = s.id;
    mp_writer_init (&pg.items);
    rc = store_messages (store, id, after, pg.limit + 1, s_message_row,
                         &pg);
    if (rc < 0) {
        mp_writer_fini (&pg.items);
        mp_writer_fini (&w);
        bus_worker_error (worker, req, 500, "internal_error",
                          "The session store failed", NULL);
        return;
    }
    mp_key (&w, "messages");
    msgpack_pack_array (&w.pk, (size_t) pg.n);
    s_finish_page (&w, &pg);
    bus_worker_reply (worker, req, "SESSION_GET_OK", 200, w.buf.data,
                      w.buf.size);
    mp_writer_fini (&w);
    mp_writer_fini (&pg.items);
}

static void
s_handle_delete (self_t *self, bus_worker_t *worker, bus_request_t *req)
{
    char key[ENVELOPE_KEY_MAX + 1] = "";
    if (mp_copy_str (req->body.root, "sessionKey", key, sizeof (key))
        || !ids_session_key_valid (key)) {
        bus_worker_error (worker, req, 400, "invalid_request",
                          "Invalid session key", "sessionKey");
        return;
    }
    int rc = store_session_delete (self->store, key);
    if (rc) {
        s_reply_store_rc (worker, req, rc);
        return;
    }
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 2);
    mp_kv_str (&w, "sessionKey", key);
    mp_kv_bool (&w, "deleted", true);
    bus_worker_reply (worker, req, "SESSION_DELETED", 200, w.buf.data,
                      w.buf.size);
    mp_writer_fini (&w);
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
        s_end_local (self, p, "aborted", 0, NULL, NULL);
    if (live->running)
        s_abort_running (self, live->running);
    s_live_release (self, live);
}

static void
s_handle (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    const char *type = req->env.type;
    if (streq (type, "SESSION_RUN"))
        s_handle_run (self, worker, req);
    else if (streq (type, "SESSION_ABORT"))
        s_handle_abort (self, worker, req);
    else if (streq (type, "SESSION_LIST"))   //  Normally sent to session.read
        s_handle_list (self->store, worker, req);
    else if (streq (type, "SESSION_GET"))
        s_handle_get (self->store, worker, req);
    else if (streq (type, "SESSION_DELETE"))
        s_handle_delete (self, worker, req);
    else
        bus_worker_error (worker, req, 400, "invalid_request",
                          "Unknown session request", NULL);
}

//  ---- Replies from the run actor, deadlines ---------------------------------------------------

static int
s_on_front (zloop_t *loop, zsock_t *sock, void *arg)
{
    self_t *self = (self_t *) arg;
    for (int budget = 0; budget < 64; budget++) {
        bus_msg_t msg;
        if (bus_front_recv (self->front, 0, &msg))
            break;
        char corr[24];
        snprintf (corr, sizeof (corr), "%llu",
                  (unsigned long long) msg.env.corr_id);
        pending_t *p = msg.kind == BUS_MSG_REPLY
                           ? (pending_t *) zhashx_lookup (self->inflight, corr)
                           : NULL;
        if (!p)
            ;   //  RUN_ABORTED, or the answer to a run we gave up on
        else if (msg.env.status == 200 && streq (msg.env.type, "RUN_RESULT"))
            s_on_result (self, p, msg.body.root);
        else {
            //  Refused by the run actor (or none alive): the front waits
            //  for a reply to its SESSION_RUN, so it gets this one.
            char code[48] = "internal_error", message[512] = "Run refused";
            mp_copy_str (msg.body.root, "code", code, sizeof (code));
            mp_copy_str (msg.body.root, "message", message, sizeof (message));
            int status = msg.env.status >= 400 && msg.env.status <= 599
                             ? msg.env.status
                             : 500;
            bus_worker_reply (self->worker, &p->origin, "ERROR", status,
                              zmq_msg_data (&msg.raw), zmq_msg_size (&msg.raw));
            live_t *live = p->live;
            //  The front has its answer; watchers get chat.error.
            p->origin.front_len = 0;
            s_end_local (self, p, NULL, status, code, message);
            s_pump (self, live);
        }
        bus_msg_fini (&msg);
    }
    return 0;
}

static int
s_on_tick (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    int64_t now = zclock_mono ();
    s_stats_log (self, now, false);
    zlistx_t *due = zlistx_new ();
    for (pending_t *p = (pending_t *) zhashx_first (self->runs); p;
         p = (pending_t *) zhashx_next (self->runs))
        if (now >= p->deadline + (p->dispatched ? SESSION_GRACE_MS : 0))
            zlistx_add_end (due, p);
    for (pending_t *p = (pending_t *) zlistx_first (due); p;
         p = (pending_t *) zlistx_next (due)) {
        live_t *live = p->live;
        if (p->dispatched) {
            log_warn ("session", "%s: no result from the run actor %d ms "
                                 "past the deadline",
                      p->run_id, SESSION_GRACE_MS);
            s_end_local (self, p, NULL, 503, "service_unavailable",
                         "The run actor did not finish the run");
        }
        else
            s_end_local (self, p, "timeout", 0, NULL, NULL);
        s_pump (self, live);
    }
    zlistx_destroy (&due);
    return 0;
}

//  ---- Readers: session.read, lists and gets on connections of their own -------------------------
//
//  SQLite in WAL mode lets readers run beside the writer, so lists and gets
//  are served by sessionsReaders actors with a read connection each, never
//  queued behind the session actor's commits; the broker spreads requests
//  over them.  They see what the writer committed (a reply is committed
//  before its chat.done goes out, so a get after a done finds it).

static void
s_store_url (const session_settings_t *cfg, char *url, size_t cap)
{
    if (cfg->store && *cfg->store)
        snprintf (url, cap, "%s", cfg->store);
    else
        snprintf (url, cap, "sqlite:%s/clawgate.db", cfg->state_dir);
}

static void *
s_reader_create (const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    char url[4200], err[512];
    s_store_url (&args->settings->session, url, sizeof (url));
    store_t *store = store_open_reader (url, err, sizeof (err));
    if (!store)
        log_error ("session", "reader: %s", err);
    return store;
}

static void
s_reader_handle (void *state, bus_worker_t *worker, bus_request_t *req)
{
    store_t *store = (store_t *) state;
    if (streq (req->env.type, "SESSION_LIST"))
        s_handle_list (store, worker, req);
    else if (streq (req->env.type, "SESSION_GET"))
        s_handle_get (store, worker, req);
    else
        bus_worker_error (worker, req, 400, "invalid_request",
                          "Unknown session.read request", NULL);
}

static void
s_reader_destroy (void **state_p)
{
    store_close ((store_t **) state_p);
}

static const actor_def_t s_reader_def = {"session.read", s_reader_create,
                                         s_reader_handle, s_reader_destroy};

static void
s_reader_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_reader_def);
}

//  ---- Life cycle -------------------------------------------------------------------------------

static void s_destroy (void **state_p);

static void *
s_create (const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) calloc (1, sizeof (self_t));
    if (!self)
        return NULL;
    const session_settings_t *cfg = &args->settings->session;
    self->settings = cfg;
    self->catalog = &args->settings->catalog;
    self->worker = worker;
    self->lives = zhashx_new ();
    self->runs = zhashx_new ();
    self->inflight = zhashx_new ();
    char url[4200], err[512];
    s_store_url (cfg, url, sizeof (url));
    self->store = store_open (url, err, sizeof (err));
    if (!self->store) {
        log_error ("session", "%s", err);
        s_destroy ((void **) &self);
        return NULL;
    }
    int n = store_recover (self->store, s_now_ms ());
    if (n > 0)
        log_warn ("session", "%d run(s) left open by the last stop are now "
                             "marked interrupted",
                  n);
    self->front = bus_front_new (args->broker);
    if (!self->front) {
        s_destroy ((void **) &self);
        return NULL;
    }
    zloop_reader (loop, bus_front_sock (self->front), s_on_front, self);
    //  After store_open: the schema is migrated before any reader opens.
    actor_args_t reader_args = *args;
    for (int i = 0; i < cfg->readers && i < SESSION_MAX_READERS; i++) {
        zactor_t *r = zactor_new (s_reader_actor, &reader_args);
        if (r && reader_args.failed)
            zactor_destroy (&r);
        if (!r) {
            log_error ("session", "a session.read actor could not start");
            s_destroy ((void **) &self);
            return NULL;
        }
        self->readers[self->n_readers++] = r;
    }
    zloop_timer (loop, SESSION_TICK_MS, 0, s_on_tick, self);
    log_info ("session", "store %s, schema version %d", url,
              store_schema_version (self->store));
    return self;
}

static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (!self)
        return;
    //  Runs still queued or going are recorded as interrupted.
    zlistx_t *all = zlistx_new ();
    for (pending_t *p = (pending_t *) zhashx_first (self->runs); p;
         p = (pending_t *) zhashx_next (self->runs))
        zlistx_add_end (all, p);
    for (pending_t *p = (pending_t *) zlistx_first (all); p;
         p = (pending_t *) zlistx_next (all)) {
        live_t *live = p->live;
        s_pending_end (self, p);
        s_live_release (self, live);
    }
    zlistx_destroy (&all);
    s_stats_log (self, zclock_mono (), true);
    log_info ("session", "stopping; largest tables: %zu live sessions, %zu "
                         "runs, %zu at the run actor (now %zu, %zu, %zu)",
              self->peak_lives, self->peak_runs, self->peak_inflight,
              zhashx_size (self->lives), zhashx_size (self->runs),
              zhashx_size (self->inflight));
    if (self->store) {
        int n = store_recover (self->store, s_now_ms ());
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
    free (self);
    *state_p = NULL;
}

static const actor_def_t s_def = {"session", s_create, s_handle, s_destroy};

void
session_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
