/*  =========================================================================
    run - the run actor: requests, runs and their fallbacks, aborts and
    deadlines, session counters, and its hooks on actor_run's loop

    Built on actor_run (actors/actor.h), like every service actor: the
    skeleton owns the zloop, the pipe, the broker socket and the heartbeats.
    This actor adds a curl_loop (libcurl's sockets as one epoll fd: a
    wake-up costs the same with one transfer or thousands, and libcurl's
    timeout as one timer), the DEALER of its tool calls, and one timer for
    the runs' deadlines, stalls and echo pacing.  The rest of the actor: run_events.c, run_curl.c, run_echo.c,
    run_tools.c (see run_internal.h).
    =========================================================================
*/
#include "run_internal.h"
#include "envelope.h"
#include "msg_names.h"

#include "actor.h"
#include "log.h"
#include "mpjson.h"
#include "settings.h"

#include <string.h>
#include <unistd.h>

static void
s_run_destroy (run_t **run_p);

//  ---- Session counters and tidying -------------------------------------------

//  Destructor of the tables whose items are one plain allocation.
static void
s_plain_free (void **item)
{
    free (*item);
    *item = NULL;
}

void
run_peak (size_t *peak, zhashx_t *table)
{
    if (zhashx_size (table) > *peak)
        *peak = zhashx_size (table);
}

//  Drops one idle counter, raising the floor that a later counter of any
//  session starts from.
static void
s_seq_drop (self_t *self, const char *key, seq_t *c)
{
    if (c->seq > self->seq_floor)
        self->seq_floor = c->seq;
    self->idle_seqs--;
    zhashx_delete (self->seqs, key);
}

//  Drops the idle counter idle longest (the count backstop).
static void
s_seq_drop_oldest (self_t *self)
{
    const char *oldest_key = NULL;
    seq_t *oldest = NULL;
    for (seq_t *c = (seq_t *) zhashx_first (self->seqs); c;
         c = (seq_t *) zhashx_next (self->seqs))
        if (!c->runs && (!oldest || c->idle_since < oldest->idle_since)) {
            oldest = c;
            oldest_key = (const char *) zhashx_cursor (self->seqs);
        }
    if (oldest) {
        char key[ENVELOPE_KEY_MAX + 1];
        snprintf (key, sizeof (key), "%s", oldest_key);
        s_seq_drop (self, key, oldest);
    }
}

//  run, which names a session and no replyTo, holds its session's counter
//  until it is destroyed.  -1 when out of memory.
static int
s_seq_hold (self_t *self, run_t *run)
{
    seq_t *c = (seq_t *) zhashx_lookup (self->seqs, run->session);
    if (!c) {
        if (self->idle_seqs >= RUN_MAX_IDLE_SEQS)
            s_seq_drop_oldest (self);
        c = (seq_t *) calloc (1, sizeof (seq_t));
        if (!c)
            return -1;
        c->seq = self->seq_floor;
        zhashx_insert (self->seqs, run->session, c);
        run_peak (&self->peak_seqs, self->seqs);
    }
    else if (!c->runs)
        self->idle_seqs--;
    c->runs++;
    run->seq_held = true;
    return 0;
}

static void
s_seq_release (self_t *self, run_t *run)
{
    seq_t *c = (seq_t *) zhashx_lookup (self->seqs, run->session);
    run->seq_held = false;
    if (c && --c->runs == 0) {
        c->idle_since = zclock_mono ();
        self->idle_seqs++;
    }
}

//  Once a second: counters idle past RUN_SEQ_IDLE_MS, and tool calls whose
//  reply never came (a lost reply would otherwise keep its entry forever).
static void
s_tidy (self_t *self, int64_t now)
{
    if (now < self->tidy_at)
        return;
    self->tidy_at = now + RUN_TIDY_MS;
    zlistx_t *gone = zlistx_new ();
    zlistx_set_destructor (gone, (zlistx_destructor_fn *) zstr_free);
    for (seq_t *c = (seq_t *) zhashx_first (self->seqs); c;
         c = (seq_t *) zhashx_next (self->seqs))
        if (!c->runs && now - c->idle_since >= RUN_SEQ_IDLE_MS)
            zlistx_add_end (gone, strdup ((const char *) zhashx_cursor (self->seqs)));
    for (char *k = (char *) zlistx_first (gone); k; k = (char *) zlistx_next (gone))
        s_seq_drop (self, k, (seq_t *) zhashx_lookup (self->seqs, k));
    zlistx_purge (gone);
    for (tool_wait_t *t = (tool_wait_t *) zhashx_first (self->tool_calls); t;
         t = (tool_wait_t *) zhashx_next (self->tool_calls))
        if (now >= t->expires)
            zlistx_add_end (gone,
                            strdup ((const char *) zhashx_cursor (self->tool_calls)));
    for (char *k = (char *) zlistx_first (gone); k; k = (char *) zlistx_next (gone))
        zhashx_delete (self->tool_calls, k);
    zlistx_destroy (&gone);
}

//  ---- Run life cycle --------------------------------------------------------------

static void
s_run_destroy (run_t **run_p)
{
    run_t *run = *run_p;
    if (!run)
        return;
    if (run->seq_held)
        s_seq_release (run->self, run);
    run_curl_transfer_end (run);
    cJSON_Delete (run->messages);
    cJSON_Delete (run->tools);
    cJSON_Delete (run->tool_choice);
    cJSON_Delete (run->temperature);
    cJSON_Delete (run->tool_calls);
    cJSON_Delete (run->log);
    cJSON_Delete (run->calls);
    cJSON_Delete (run->results);
    for (int i = 0; i < run->n_candidates; i++)
        free (run->candidates[i]);
    for (int i = 0; i < run->n_words; i++)
        free (run->words[i]);
    free (run->words);
    free (run->text);
    free (run);
    *run_p = NULL;
}

static void
s_hash_run_free (void **item)
{
    s_run_destroy ((run_t **) item);
}

//  Ends a run with chat.done and forgets it.
void
run_finish (run_t *run, const char *reason)
{
    run_curl_transfer_end (run);
    run_events_done (run, reason);
    zhashx_delete (run->self->runs, run->id);
}

static void
s_run_fail (run_t *run)
{
    run_curl_transfer_end (run);
    run_events_error (run);
    zhashx_delete (run->self->runs, run->id);
}

//  The current candidate failed: try the next one if allowed, else fail.
void
run_next_or_fail (run_t *run)
{
    while (!run->got_output && run->err_retry && run->candidate + 1 < run->n_candidates) {
        log_warn ("run", "%s: %s failed (%s); falling back to %s", run->id,
                  run->candidates[run->candidate], run->err_message,
                  run->candidates[run->candidate + 1]);
        run_curl_transfer_end (run);
        run->candidate++;
        run->prompt_tokens = run->completion_tokens = 0;
        run->finish[0] = 0;
        if (run_curl_start_transfer (run) == 0)
            return;
    }
    s_run_fail (run);
}

//  ---- Requests ----------------------------------------------------------------------

static cJSON *
s_json_field (const msgpack_object *body, const char *key)
{
    const msgpack_object *v = mp_get (body, key);
    return v && v->type != MSGPACK_OBJECT_NIL ? mpjson_to_json (v) : NULL;
}

//  Longer than 100 lines on purpose: a RUN_START's fields are read and
//  checked in order, and each refusal frees the half-built run and answers
//  its own status and param; the sequence of refusals is the contract
//  (schemas/messages.def), easiest to check against it in one place.
static void
s_handle_start (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    const msgpack_object *b = req->body.root;
    run_t *run = (run_t *) calloc (1, sizeof (run_t));
    if (!run) {
        bus_worker_error (self->worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "Out of memory", NULL);
        return;
    }
    run->self = self;
    if (mp_copy_str (b, MK_runId, run->id, sizeof (run->id)) || !run->id[0]) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "runId is missing or too long", "runId");
        return;
    }
    if (zhashx_lookup (self->runs, run->id)) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "A run with this runId is already in flight", "runId");
        return;
    }
    mp_copy_str (b, MK_sessionKey, run->session, sizeof (run->session));
    if (run->session[0])
        snprintf (run->topic_prefix, sizeof (run->topic_prefix), "%s", run->session);
    else
        snprintf (run->topic_prefix, sizeof (run->topic_prefix), "run:%s", run->id);
    memcpy (run->front, req->front, req->front_len);
    run->front_len = req->front_len;
    size_t to_len = 0;
    const char *to = mp_get_str (b, MK_replyTo, &to_len);
    if (to && to_len <= BUS_MAX_ID) {
        run->result_mode = true;
        memcpy (run->asker.front, req->front, req->front_len);
        run->asker.front_len = req->front_len;
        run->asker.env = req->env;
        memcpy (run->front, to, to_len);
        run->front_len = to_len;
        mp_get_int (b, MK_seqBase, &run->seq);
    }
    //  A name given but too long for its buffer names nothing we know: it
    //  must not fall back to the default as if none had been given.
    size_t given;
    char agent_id[128] = "default";
    if (mp_get_str (b, MK_agentId, &given)
        && mp_copy_str (b, MK_agentId, agent_id, sizeof (agent_id)))
        agent_id[0] = 0;
    run->agent = catalog_find_agent (self->catalog, agent_id);
    if (!run->agent) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, ENVELOPE_NOT_FOUND, "not_found",
                          "Unknown agent", "agentId");
        return;
    }
    char model[256] = "";
    const char *asked = mp_get_str (b, MK_model, &given);
    if (asked && mp_copy_str (b, MK_model, model, sizeof (model))) {
        char msg[320];
        snprintf (msg, sizeof (msg), "The model '%.*s...' does not exist",
                  (int) (given < 200 ? given : 200), asked);
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, ENVELOPE_NOT_FOUND, "not_found", msg,
                          "model");
        return;
    }
    run->candidates[run->n_candidates++] = strdup (model[0] ? model : run->agent->model);
    //  The agent's fallbacks follow whichever model was asked for.
    for (char **f = run->agent->fallbacks;
         f && *f && run->n_candidates < RUN_MAX_CANDIDATES; f++)
        if (strcmp (*f, run->candidates[0]) != 0)
            run->candidates[run->n_candidates++] = strdup (*f);
    const char *unused;
    if (!catalog_find_model (self->catalog, run->candidates[0], &unused)) {
        char msg[320];
        snprintf (msg, sizeof (msg), "The model '%.256s' does not exist",
                  run->candidates[0]);
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, ENVELOPE_NOT_FOUND, "not_found", msg,
                          "model");
        return;
    }
    run->messages = s_json_field (b, "messages");
    run->tools = s_json_field (b, "tools");
    if (run->agent->browser_tools && !run->tools) {
        run->tools = cJSON_Parse (run_tools_offered);
        run->builtin_tools = run->tools != NULL;
    }
    run->tool_choice = s_json_field (b, "toolChoice");
    run->temperature = s_json_field (b, "temperature");
    mp_copy_str (b, MK_thinking, run->thinking, sizeof (run->thinking));
    mp_get_int (b, MK_maxTokens, &run->max_tokens);
    mp_get_bool (b, MK_stream, &run->stream);
    int64_t timeout = self->settings->request_timeout_ms;
    mp_get_int (b, MK_timeoutMs, &timeout);
    if (timeout <= 0 || timeout > self->settings->request_timeout_ms)
        timeout = self->settings->request_timeout_ms;
    run->deadline = zclock_mono () + timeout;
    if (!cJSON_IsArray (run->messages) || !run->messages->child) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "messages must be a non-empty array", "messages");
        return;
    }
    if (run->session[0] && !run->result_mode && s_seq_hold (self, run)) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "Out of memory", NULL);
        return;
    }
    //  No reply on success: the run's events are the answer, and a reply
    //  would cost the front two more thread hand-offs per run.
    zhashx_insert (self->runs, run->id, run);
    run_peak (&self->peak_runs, self->runs);
    log_debug ("run", "%s started on %s for session %s", run->id, run->candidates[0],
               run->session[0] ? run->session : "-");
    if (run_curl_start_transfer (run))
        run_next_or_fail (run);
}

static void
s_handle_abort (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    char id[80] = "";
    mp_copy_str (req->body.root, MK_runId, id, sizeof (id));
    run_t *run = (run_t *) zhashx_lookup (self->runs, id);
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_kv_str (&w, MK_runId, id);
    mp_kv_bool (&w, MK_aborted, run != NULL);
    actor_reply_map (self->worker, req, MT_RUN_ABORTED, &w);
    if (run) {
        log_info ("run", "%s aborted", id);
        run_finish (run, "aborted");
    }
}

//  The requests actor_run dispatches to us.
static const actor_route_t s_routes[] = {
    {MT_RUN_START, s_handle_start}, {MT_RUN_ABORT, s_handle_abort}, {NULL, NULL}};

//  Timeouts and echo pacing; returns ms until the next thing is due.
static int64_t
s_sweep (self_t *self)
{
    int64_t now = zclock_mono ();
    int64_t next = 1000;
    s_tidy (self, now);
    zlistx_t *due = zlistx_new ();
    for (run_t *run = (run_t *) zhashx_first (self->runs); run;
         run = (run_t *) zhashx_next (self->runs))
        zlistx_add_end (due, run);
    for (run_t *run = (run_t *) zlistx_first (due); run;
         run = (run_t *) zlistx_next (due)) {
        if (now >= run->deadline) {
            log_warn ("run", "%s timed out", run->id);
            run_finish (run, "timeout");
            continue;
        }
        if (run->provider && run->provider->type == PROVIDER_ECHO && !run->err_status
            && !run_echo_step (run))
            continue;
        //  "No byte for stallTimeoutMs" holds for every call: for a
        //  non-streamed one it bounds the whole answer (documented).
        if (run->easy) {
            int64_t stall = run->provider->stall_timeout_ms;
            if (now - run->last_byte >= stall) {
                run->err_status = ENVELOPE_UNAVAILABLE;
                run->err_retry = true;
                snprintf (run->err_code, sizeof (run->err_code), "service_unavailable");
                snprintf (run->err_message, sizeof (run->err_message),
                          "Provider %s stalled: no data for %lld ms", run->provider->name,
                          (long long) stall);
                run_next_or_fail (run);
                continue;
            }
            int64_t until = run->last_byte + stall - now;
            next = until < next ? until : next;
        }
        int64_t wait = run->deadline - now;
        if (run->provider && run->provider->type == PROVIDER_ECHO)
            wait = run->echo_next - now < wait ? run->echo_next - now : wait;
        next = wait < next ? wait : next;
    }
    zlistx_destroy (&due);
    return next > 0 ? next : 0;
}

//  ---- On actor_run's loop ----------------------------------------------------------
//
//  actor_run owns the loop, the pipe, the broker socket and the heartbeats;
//  this actor adds its curl_loop (made on the first provider call), the
//  DEALER of its tool calls once it has one, and one timer, always armed for
//  the next sweep.

static int
s_on_due (zloop_t *loop, int timer_id, void *arg);

//  Arms the timer for sweep_at, unless it is already armed for that time or
//  earlier (and not for a moment already past while nothing is due: that
//  would only cost a wake-up).
void
run_schedule (self_t *self)
{
    int64_t at = self->sweep_at;
    int64_t now = zclock_mono ();
    bool stale = self->due_at <= now && at > now;
    if (self->due_timer >= 0 && self->due_at <= at && !stale)
        return;
    if (self->due_timer >= 0)
        zloop_timer_end (self->loop, self->due_timer);
    int64_t delay = at - now;
    self->due_timer =
        zloop_timer (self->loop, delay > 0 ? (size_t) delay : 0, 1, s_on_due, self);
    self->due_at = at;
}

//  Runs what is due: the sweep (deadlines, stalls and echo pacing need a
//  walk over every run: only when one of them is due, not on every
//  wake-up; with a thousand streams that walk would cost more than the
//  deltas); then arms the timer for what comes next.  Called by the timer
//  and after each batch of requests.
static void
s_run_due (self_t *self)
{
    int64_t now = zclock_mono ();
    if (now >= self->sweep_at)
        self->sweep_at = now + s_sweep (self);
    run_schedule (self);
}

static int
s_on_due (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    self->due_timer = -1;  //  A one-shot timer: zloop drops it
    s_run_due (self);
    return 0;
}

//  After each batch of requests (actor_run's after_requests hook): the
//  transfers they started begin now (libcurl asks to be called at once for
//  a new one), in the same turn of the loop, not after another poll.
static void
s_after_requests (void *state)
{
    self_t *self = (self_t *) state;
    curl_loop_due (self->curl);
    s_run_due (self);
}

//  Replies of the browser actor to our tool calls (see run_front).
static int
s_on_front (zloop_t *loop, zsock_t *sock, void *arg)
{
    run_tools_on_reply ((self_t *) arg);
    s_run_due ((self_t *) arg);
    return 0;
}

//  Our DEALER for tool calls, made on the first one and then read by the
//  loop.  NULL if the broker cannot be reached.
bus_front_t *
run_front (self_t *self)
{
    if (!self->front) {
        self->front = bus_front_new (self->broker);
        if (self->front
            && zloop_reader (self->loop, bus_front_sock (self->front), s_on_front, self))
            bus_front_destroy (&self->front);
    }
    return self->front;
}

//  ---- Life cycle -------------------------------------------------------------------

//  The one teardown, for a stop and for a start that failed half-way.
static void
s_fini (void *state)
{
    self_t *self = (self_t *) state;
    //  Shutting down: runs still in flight end as aborted, so their clients
    //  hear about it (the drain gave them their chance to finish).
    if (self->runs) {
        zlistx_t *left = actor_hash_values (self->runs);
        for (run_t *run = (run_t *) zlistx_first (left); run;
             run = (run_t *) zlistx_next (left))
            run_finish (run, "aborted");
        zlistx_destroy (&left);
        log_info ("run",
                  "stopping; largest tables: %zu runs, %zu session "
                  "counters, %zu tool calls (now %zu, %zu, %zu)",
                  self->peak_runs, self->peak_seqs, self->peak_tool_calls,
                  zhashx_size (self->runs), zhashx_size (self->seqs),
                  zhashx_size (self->tool_calls));
    }
    zhashx_destroy (&self->runs);
    zhashx_destroy (&self->seqs);
    zhashx_destroy (&self->tool_calls);
    bus_front_destroy (&self->front);
    while (self->n_spare)
        curl_easy_cleanup (self->spare[--self->n_spare]);
    curl_loop_destroy (&self->curl);
    free (self->broker);
}

static int
s_init (void *state, const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) state;
    self->loop = loop;
    self->worker = worker;
    self->settings = &args->settings->run;
    self->catalog = &args->settings->catalog;
    self->broker = strdup (args->broker);
    self->due_timer = -1;
    self->runs = zhashx_new ();
    zhashx_set_destructor (self->runs, s_hash_run_free);
    self->seqs = zhashx_new ();
    zhashx_set_destructor (self->seqs, s_plain_free);
    self->tool_calls = zhashx_new ();
    zhashx_set_destructor (self->tool_calls, s_plain_free);
    self->tidy_at = zclock_mono () + RUN_TIDY_MS;
    if (!self->broker)
        return -1;
    run_schedule (self);
    return 0;
}

static const actor_def_t s_def = {.service = "run",
                                  .size = sizeof (self_t),
                                  .init = s_init,
                                  .routes = s_routes,
                                  .fini = s_fini,
                                  .after_requests = s_after_requests};

void
run_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
