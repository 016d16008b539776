/*  =========================================================================
    session_runs - a session's runs: the live sessions that have runs, a
    run's dispatch to the run actor (with its context from the store), and
    its end (committed to the store, then published)
    =========================================================================
*/
#include "session_internal.h"
#include "envelope.h"
#include "msg_names.h"

#include "error.h"
#include "log.h"
#include "mpjson.h"

#include <string.h>

//  ---- Sessions in memory ---------------------------------------------------------

//  The live session for key, loading or creating its row.  NULL on a store
//  failure.
live_t *
session_runs_live_get (self_t *self, const char *key, const char *agent_id,
                       const char *channel)
{
    live_t *live = (live_t *) zhashx_lookup (self->lives, key);
    if (live)
        return live;
    store_session_t row;
    if (store_session_open (self->store, key, agent_id, channel, session_now_ms (), &row))
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
    session_peak (&self->peak_lives, self->lives);
    return live;
}

//  Frees live once nothing is queued or going.
void
session_runs_live_release (self_t *self, live_t *live)
{
    if (live->running || zlistx_size (live->queue))
        return;
    if (!live->detached)
        zhashx_delete (self->lives, live->key);
    zlistx_destroy (&live->queue);
    free (live);
}

//  Forgets p everywhere and frees it.  Does not pump its session.
void
session_runs_pending_end (self_t *self, pending_t *p)
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
    if (bus_worker_event (self->worker, p->origin.front, p->origin.front_len, topic,
                          w->buf.data, w->buf.size))
        log_warn ("session", "%s: %s dropped: broker not taking it", p->run_id, type);
}

void
session_runs_timing_add (timings_t *t, int64_t us)
{
    t->us[t->n++ % SESSION_STATS_RUNS] = us < 0            ? 0
                                         : us < UINT32_MAX ? (uint32_t) us
                                                           : UINT32_MAX;
}

static int
s_cmp_u32 (const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return (x > y) - (x < y);
}

static void
s_record_end (self_t *self, pending_t *p, const store_message_t *steps, size_t n_steps,
              const store_message_t *reply)
{
    int64_t t0 = zclock_usecs ();
    if (store_run_end (self->store, p->live->id, p->run_seq, steps, n_steps, reply,
                       p->live->seq, session_now_ms ()))
        log_error ("session",
                   "%s: could not record the end of the run "
                   "(%s); it will read as interrupted",
                   p->run_id, reply->finish_reason);
    session_runs_timing_add (&self->writes, p->store_us + zclock_usecs () - t0);
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
void
session_runs_stats_log (self_t *self, int64_t now, bool final)
{
    if (now < self->stats_at && !final)
        return;
    self->stats_at = now + SESSION_STATS_MS;
    if (!self->writes.n)
        return;
    size_t n = s_timings_sort (&self->writes);
    size_t r = s_timings_sort (&self->reads);
    const uint32_t *w = self->writes.us, *c = self->reads.us;
    log_info ("session",
              "%zu runs recorded in %s%d s; store writes per run: "
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
void
session_runs_end_local (self_t *self, pending_t *p, const char *finish, int status,
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
    store_message_t reply = {.role = "assistant",
                             .content = "",
                             .run_id = p->run_id,
                             .created_at = session_now_ms (),
                             .model = p->model,
                             .finish_reason = finish ? finish : "error",
                             .error = finish ? NULL : error};
    s_record_end (self, p, NULL, 0, &reply);
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    if (finish) {
        mp_kv_str (&w, MK_sessionKey, live->key);
        mp_kv_str (&w, MK_runId, p->run_id);
        mp_kv_int (&w, MK_seq, live->seq);
        mp_kv_str (&w, MK_finishReason, finish);
        mp_key (&w, MK_usage);
        mp_map_begin (&w);
        mp_kv_int (&w, "promptTokens", 0);
        mp_kv_int (&w, "completionTokens", 0);
        mp_kv_int (&w, "totalTokens", 0);
        mp_map_end (&w);
        mp_kv_str (&w, MK_response, "");
        mp_kv_str (&w, MK_model, p->model);
        mp_map_end (&w);
        s_emit (self, p, MN_CHAT_DONE, &w);
    }
    else {
        mp_kv_str (&w, MK_sessionKey, live->key);
        mp_kv_str (&w, MK_runId, p->run_id);
        mp_kv_int (&w, MK_seq, live->seq);
        mp_key (&w, MK_error);
        error_pack_event (&w, status, code, message);
        mp_kv_int (&w, MK_status, status);
        mp_map_end (&w);
        s_emit (self, p, MN_CHAT_ERROR, &w);
    }
    mp_writer_fini (&w);
    log_info ("session", "%s on %s ended here: %s", p->run_id, live->key,
              finish ? finish : message);
    session_runs_pending_end (self, p);
}

//  The run actor's RUN_RESULT: commit the reply, then tell the front.  Kept
//  whole (about 100 lines): reading the result, committing it and only
//  then publishing is the order that makes "done means stored" hold, and
//  it reads best in one place.
void
session_runs_on_result (self_t *self, pending_t *p, const msgpack_object *b)
{
    live_t *live = p->live;
    char event[16] = "", finish[24] = "error", model[256] = "";
    mp_copy_str (b, MK_event, event, sizeof (event));
    mp_copy_str (b, MK_finishReason, finish, sizeof (finish));
    mp_copy_str (b, MK_model, model, sizeof (model));
    //  Stopped by a shutdown, not by a user: say so.
    bool interrupted = p->interrupted && streq (finish, "aborted");
    if (interrupted)
        snprintf (finish, sizeof (finish), "interrupted");
    int64_t seq = live->seq + 1;
    mp_get_int (b, MK_seq, &seq);
    live->seq = seq > live->seq ? seq : live->seq + 1;
    bool done = streq (event, MN_CHAT_DONE);
    store_message_t reply = {.role = "assistant",
                             .content = "",
                             .run_id = p->run_id,
                             .created_at = session_now_ms (),
                             .model = model[0] ? model : p->model,
                             .finish_reason = done ? finish : "error"};
    size_t len = 0;
    const char *text = mp_get_str (b, MK_response, &len);
    if (text) {
        reply.content = text;
        reply.content_len = len;
    }
    const msgpack_object *u = mp_get (b, MK_usage);
    mp_get_int (u, "promptTokens", &reply.prompt_tokens);
    mp_get_int (u, "completionTokens", &reply.completion_tokens);
    char *calls = NULL, *error = NULL;
    const msgpack_object *tc = mp_get (b, MK_toolCalls);
    if (tc && tc->type == MSGPACK_OBJECT_ARRAY) {
        cJSON *j = mpjson_to_json (tc);
        calls = j ? cJSON_PrintUnformatted (j) : NULL;
        cJSON_Delete (j);
        reply.tool_calls = calls;
    }
    const msgpack_object *e = mp_get (b, MK_error);
    if (!done && e) {
        cJSON *j = mpjson_to_json (e);
        error = j ? cJSON_PrintUnformatted (j) : NULL;
        cJSON_Delete (j);
        reply.error = error;
    }
    //  The tool rounds, if the run had any: copies, as the store wants
    //  NUL-terminated text.
    const msgpack_object *steps = mp_get (b, MK_steps);
    size_t n_steps =
        steps && steps->type == MSGPACK_OBJECT_ARRAY ? steps->via.array.size : 0;
    store_message_t *step =
        n_steps ? (store_message_t *) calloc (n_steps, sizeof (store_message_t)) : NULL;
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
        step[i] = (store_message_t){.role = owned[4 * i],
                                    .content = owned[4 * i + 1],
                                    .content_len =
                                        owned[4 * i + 1] ? strlen (owned[4 * i + 1]) : 0,
                                    .run_id = p->run_id,
                                    .created_at = reply.created_at,
                                    .tool_calls = owned[4 * i + 2],
                                    .tool_call_id = owned[4 * i + 3]};
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
    static const char *const skip_finish[] = {"event", "seq", "finishReason", NULL};
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    session_pack_map_except (&w, b, interrupted ? skip_finish : skip);
    mp_kv_int (&w, MK_seq, live->seq);
    if (interrupted)
        mp_kv_str (&w, MK_finishReason, "interrupted");
    mp_map_end (&w);
    s_emit (self, p, done ? MN_CHAT_DONE : MN_CHAT_ERROR, &w);
    mp_writer_fini (&w);
    session_runs_pending_end (self, p);
    session_runs_pump (self, live);
}

//  ---- Dispatch to the run actor ----------------------------------------------------------

typedef struct {
    int64_t budget;         //  Characters left
    char **roles, **texts;  //  Collected, newest first (owned)
    size_t *lens;
    int n, cap;
} context_t;

static int
s_context_add (void *arg, const store_message_t *m)
{
    context_t *c = (context_t *) arg;
    if (!m->content_len && !strcmp (m->role, "assistant"))
        return 0;  //  Tool calls alone: no text to give back
    int64_t chars = session_chars (m->content, m->content_len);
    if (chars > c->budget)
        return 1;  //  Newest kept: stop at the first that does not fit
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
s_pack_messages (self_t *self, pending_t *p, const msgpack_object *b, mp_writer_t *w)
{
    mp_key (w, MK_messages);
    const msgpack_object *given = mp_get (b, MK_messages);
    if (given && given->type == MSGPACK_OBJECT_ARRAY) {
        msgpack_pack_object (&w->pk, *given);
        return;
    }
    size_t len = 0;
    const char *text = mp_get_str (b, MK_message, &len);
    context_t c = {.budget = self->settings->context_chars - session_chars (text, len)};
    if (self->settings->context_messages > 0 && c.budget > 0
        && store_context (self->store, p->live->id, self->settings->context_messages,
                          s_context_add, &c)
               < 0)
        log_warn ("session",
                  "%s: context unavailable, sending the message "
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
int
session_runs_start_body (self_t *self, pending_t *p, int64_t left, mp_writer_t *w)
{
    mp_reader_t rd;
    if (mp_reader_init (&rd, p->body, p->body_len)) {
        mp_reader_fini (&rd);
        return -1;
    }
    static const char *const skip[] = {"message", "messages", "channel", "timeoutMs",
                                       NULL};
    mp_map_begin (w);
    session_pack_map_except (w, rd.root, skip);
    s_pack_messages (self, p, rd.root, w);
    mp_key (w, MK_replyTo);
    mp_put_strn (w, (const char *) p->origin.front, p->origin.front_len);
    mp_kv_int (w, MK_seqBase, p->live->seq);
    mp_kv_int (w, MK_timeoutMs, left);
    mp_map_end (w);
    mp_reader_fini (&rd);
    return 0;
}

//  Sends p's RUN_START (body in w) to the run actor; p is then the
//  session's running run, or ended if the broker refuses it.
void
session_runs_start_send (self_t *self, pending_t *p, int64_t left, const mp_writer_t *w)
{
    live_t *live = p->live;
    envelope_t env;
    envelope_init (&env, MT_RUN_START);
    snprintf (env.session_key, sizeof (env.session_key), "%s", live->key);
    env.timeout_ms = left;
    if (bus_front_send (self->front, MS_RUN_START, &env, w->buf.data, w->buf.size)) {
        session_runs_end_local (self, p, NULL, ENVELOPE_UNAVAILABLE,
                                "service_unavailable",
                                "The broker is not taking requests");
        return;
    }
    snprintf (p->corr, sizeof (p->corr), "%llu", (unsigned long long) env.corr_id);
    zhashx_insert (self->inflight, p->corr, p);
    session_peak (&self->peak_inflight, self->inflight);
    p->dispatched = true;
    live->running = p;
    log_debug ("session", "%s on %s sent to the run actor", p->run_id, live->key);
}

//  Sends p to the run actor, or ends it if it can no longer run.
static void
s_dispatch (self_t *self, pending_t *p)
{
    int64_t left = p->deadline - zclock_mono ();
    if (left <= 0) {
        session_runs_end_local (self, p, "timeout", 0, NULL, NULL);
        return;
    }
    mp_writer_t w;
    mp_writer_init (&w);
    if (session_runs_start_body (self, p, left, &w))
        session_runs_end_local (self, p, NULL, ENVELOPE_INTERNAL, "internal_error",
                                "Run body lost");
    else
        session_runs_start_send (self, p, left, &w);
    mp_writer_fini (&w);
}

//  Sends the next queued runs of live while it is idle; frees live when
//  nothing is left.  live must not be used after this.
void
session_runs_pump (self_t *self, live_t *live)
{
    while (!live->running) {
        pending_t *p = (pending_t *) zlistx_first (live->queue);
        if (!p)
            break;
        zlistx_delete (live->queue, zlistx_cursor (live->queue));
        //  Not in the queue any more; session_runs_pending_end copes with that.
        s_dispatch (self, p);
    }
    session_runs_live_release (self, live);
}
