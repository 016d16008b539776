/*  =========================================================================
    run - the run actor: provider calls on libcurl multi, fallbacks, aborts,
    deadlines, and the built-in local/echo provider

    Built on actor_run (actors/actor.h), like every service actor: the
    skeleton owns the zloop, the pipe, the broker socket and the heartbeats.
    This actor adds libcurl's sockets as one epoll fd (a wake-up costs the
    same with one transfer or thousands), the DEALER of its tool calls, and
    one timer for libcurl's timeout and the runs' deadlines, stalls and echo
    pacing.
    =========================================================================
*/
#include "run.h"

#include "actor.h"
#include "settings.h"
#include "bus_front.h"
#include "json_in.h"
#include "log.h"
#include "mpjson.h"
#include "provider.h"

#include <curl/curl.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <unistd.h>

#define RUN_MAX_CANDIDATES 8
#define RUN_MAX_SOCKETS 4096
#define RUN_EPOLL_BATCH 256              //  Socket events taken per wake-up
#define RUN_MAX_ERROR_BODY (64 * 1024)
//  Session counters (see seq_t) kept once their session has no run, and
//  how many of those at most: the table holds the sessions that are live,
//  not every one ever seen.
#define RUN_SEQ_IDLE_MS 60000
#define RUN_MAX_IDLE_SEQS 10000
#define RUN_TIDY_MS 1000                 //  Idle counters, lost tool calls
#define RUN_TOOL_GRACE_MS 5000           //  A tool reply later than its run's
                                         //  deadline plus this is lost
#define RUN_SPARE_EASY 256               //  Easy handles kept for reuse

typedef struct self_t self_t;

typedef struct {
    self_t *self;                        //  Actor (not owned)
    char id[80];                         //  runId
    char session[ENVELOPE_KEY_MAX + 1];  //  sessionKey, may be empty
    char topic_prefix[ENVELOPE_KEY_MAX + 90];  //  "<session>" or "run:<id>"
    uint8_t front[BUS_MAX_ID];           //  Front the events go to
    size_t front_len;
    //  Session runs (RUN_START with replyTo): the end goes back as a
    //  RUN_RESULT reply to the asker, and seq counts from seqBase.
    bool result_mode;
    bus_request_t asker;                 //  front and env only
    int64_t seq;                         //  Last seq used (result_mode, and
                                         //  stateless runs: own topic)
    bool seq_held;                       //  Holds its session's seq_t
    //  The request, kept for fallbacks.
    cJSON *messages;                     //  OpenAI-format conversation
    cJSON *tools, *tool_choice, *temperature;
    char thinking[16];
    int64_t max_tokens;
    bool stream;
    const cfg_agent_t *agent;            //  Config (not owned)
    char *candidates[RUN_MAX_CANDIDATES];    //  Model ids to try, in order
    int n_candidates, candidate;
    const cfg_provider_t *provider;      //  Of the current candidate
    //  The transfer in flight.
    CURL *easy;
    struct curl_slist *headers;
    char *url, *body;
    provider_parser_t *parser;
    long http_status;                    //  0 until known
    int retry_after;                     //  Upstream Retry-After (s), 0 if none
    int64_t last_byte;                   //  zclock_mono () of the last byte in
    char *error_body;                    //  Body of a non-2xx answer
    size_t error_len;
    //  The answer so far.
    bool got_output;                     //  A delta reached the client
    char *text;
    size_t text_len, text_cap;
    cJSON *tool_calls;                   //  Accumulated OpenAI tool_calls
    int64_t prompt_tokens, completion_tokens;
    char finish[24];                     //  Finish reason, once known
    //  Failure of the current candidate.
    int err_status;
    char err_code[48];
    char err_message[512];
    bool err_retry;
    //  local/echo.
    char **words;
    int n_words, next_word;
    int64_t echo_next;                   //  zclock_mono () of the next word
    int64_t deadline;                    //  zclock_mono () past which: timeout
    //  The tool loop (agents with tools: ["browser"]).
    bool builtin_tools;                  //  We offered browser_* ourselves
    int steps;                           //  Model -> tools rounds done
    cJSON *log;                          //  Those rounds' messages, for the
                                         //  session (owned)
    cJSON *calls;                        //  Tool calls being carried out (owned)
    cJSON *results;                      //  Their results, by index (owned)
    int pending;                         //  Results still awaited
    int64_t earlier_prompt;              //  Usage of the earlier rounds
    int64_t earlier_completion;
} run_t;

//  The event counter of a session whose runs come without replyTo (a bus
//  client that bypasses the session actor; the gateway's own session runs
//  count from the session actor's seqBase, and a stateless run has a topic
//  of its own, so neither needs one).  Kept while the session has runs and
//  RUN_SEQ_IDLE_MS after; a counter made again later starts at seq_floor,
//  the highest seq any dropped counter reached, so a session's seq never
//  goes back for a subscriber that stayed (it may jump forward).
typedef struct {
    int64_t seq;                         //  Last seq used
    int runs;                            //  Live runs holding it
    int64_t idle_since;                  //  zclock_mono () runs fell to 0
} seq_t;

//  A tool call sent to the browser actor, until its reply.
typedef struct {
    char run_id[80];                     //  Run that asked
    int index;                           //  Its place in the round
    int64_t expires;                     //  zclock_mono () past which the
                                         //  reply is taken as lost
} tool_wait_t;

struct self_t {
    zloop_t *loop;                       //  actor_run's loop (not owned)
    bus_worker_t *worker;                //  actor_run's worker (not owned)
    const run_settings_t *settings;      //  Read only, not owned
    const catalog_t *catalog;            //  Read only, not owned
    char *broker;                        //  Broker endpoint (owned), for
                                         //  the tool calls' front
    CURLM *multi;
    zhashx_t *runs;                      //  runId -> run_t (owned)
    zhashx_t *seqs;                      //  sessionKey -> seq_t (owned)
    int64_t seq_floor;                   //  Highest seq of a dropped seq_t
    size_t idle_seqs;                    //  seq_t with no run
    int64_t tidy_at;                     //  zclock_mono () of the next tidy
    //  Largest size each table reached, logged at stop: the check that
    //  they follow what is live, not what was ever seen.
    size_t peak_runs, peak_seqs, peak_tool_calls;
    int epoll_fd;                        //  libcurl's sockets, or -1
    int n_socks;                         //  How many are in it
    int64_t curl_timeout_at;             //  -1: none
    int64_t sweep_at;                    //  zclock_mono () of the next sweep
    int due_timer;                       //  zloop timer for both, or -1
    int64_t due_at;                      //  When it goes off
    bool curl_inited;                    //  This actor called curl_global_init
    CURL *spare[RUN_SPARE_EASY];         //  Reset easy handles kept for reuse
    int n_spare;
    bus_front_t *front;                  //  Our requests (the browser actor)
    zhashx_t *tool_calls;                //  corr id -> tool_wait_t (owned)
};

static int s_run_start_transfer (run_t *run);
void run_schedule (self_t *self);
bus_front_t *run_front (self_t *self);
static bool s_wants_tool_round (run_t *run);
static void s_tool_round (run_t *run);
static bool s_curl_ready (self_t *self);
static void s_run_destroy (run_t **run_p);

//  ---- Events -----------------------------------------------------------------

//  Destructor of the tables whose items are one plain allocation.
static void
s_plain_free (void **item)
{
    free (*item);
    *item = NULL;
}

static void
s_peak (size_t *peak, zhashx_t *table)
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
        s_peak (&self->peak_seqs, self->seqs);
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
            zlistx_add_end (gone, strdup ((const char *) zhashx_cursor (
                                      self->tool_calls)));
    for (char *k = (char *) zlistx_first (gone); k; k = (char *) zlistx_next (gone))
        zhashx_delete (self->tool_calls, k);
    zlistx_destroy (&gone);
}

//  The next seq of run's events: its own count for a session run with
//  replyTo (from seqBase) and for a stateless one (its topic "run:<id>"
//  is its alone); its session's counter otherwise.
static uint64_t
s_next_seq (self_t *self, run_t *run)
{
    seq_t *c = run->seq_held
                   ? (seq_t *) zhashx_lookup (self->seqs, run->session)
                   : NULL;
    if (!c)
        return (uint64_t) ++run->seq;
    return (uint64_t) ++c->seq;
}

//  Packs the fields every event shares; the caller adds n_extra pairs.
static void
s_event_head (mp_writer_t *w, run_t *run, size_t n_extra)
{
    msgpack_pack_map (&w->pk, 3 + n_extra);
    mp_kv_str (w, "sessionKey", run->session);
    mp_kv_str (w, "runId", run->id);
    mp_kv_int (w, "seq", (int64_t) s_next_seq (run->self, run));
}

//  Head of chat.done / chat.error: in result mode the body is a RUN_RESULT
//  and says which event it stands for.
static void
s_end_head (mp_writer_t *w, run_t *run, const char *type, size_t n_extra)
{
    s_event_head (w, run, n_extra + (run->result_mode ? 1 : 0));
    if (run->result_mode)
        mp_kv_str (w, "event", type);
}

static void
s_publish (run_t *run, const char *type, mp_writer_t *w)
{
    if (run->result_mode
        && (!strcmp (type, "chat.done") || !strcmp (type, "chat.error"))) {
        //  The session actor commits the reply, then publishes the end.
        if (bus_worker_reply (run->self->worker, &run->asker, "RUN_RESULT", 200,
                              w->buf.data, w->buf.size))
            log_warn ("run", "%s: result dropped: broker not taking it",
                      run->id);
        return;
    }
    char topic[BUS_MAX_TOPIC + 1];
    snprintf (topic, sizeof (topic), "%s/%s", run->topic_prefix, type);
    if (bus_worker_event (run->self->worker,
                          run->front_len ? run->front : NULL, run->front_len,
                          topic,
                          w->buf.data, w->buf.size))
        log_warn ("run", "%s: event %s dropped: broker not taking it", run->id,
                  type);
}

static void
s_emit_delta (run_t *run, const char *text, size_t len, const cJSON *calls)
{
    //  A front that did not ask for a stream gets the whole text in
    //  chat.done; the bus (taps, watchers) still sees every delta.
    size_t front_len = run->front_len;
    if (!run->stream)
        run->front_len = 0;
    mp_writer_t w;
    mp_writer_init (&w);
    s_event_head (&w, run, calls ? 2 : 1);
    mp_key (&w, "delta");
    mp_put_strn (&w, text, len);
    if (calls) {
        mp_key (&w, "toolCalls");
        mpjson_pack (&w.pk, calls);
    }
    s_publish (run, "chat.delta", &w);
    mp_writer_fini (&w);
    run->front_len = front_len;
}

static void
s_emit_done (run_t *run, const char *reason)
{
    mp_writer_t w;
    mp_writer_init (&w);
    bool calls = run->tool_calls && cJSON_GetArraySize (run->tool_calls) > 0;
    bool steps = run->log && cJSON_GetArraySize (run->log) > 0;
    s_end_head (&w, run, "chat.done", (calls ? 5 : 4) + (steps ? 1 : 0));
    mp_kv_str (&w, "finishReason", reason);
    mp_key (&w, "usage");
    msgpack_pack_map (&w.pk, 3);
    int64_t prompt = run->prompt_tokens + run->earlier_prompt;
    int64_t completion = run->completion_tokens + run->earlier_completion;
    mp_kv_int (&w, "promptTokens", prompt);
    mp_kv_int (&w, "completionTokens", completion);
    mp_kv_int (&w, "totalTokens", prompt + completion);
    mp_key (&w, "response");
    mp_put_strn (&w, run->text ? run->text : "", run->text_len);
    mp_kv_str (&w, "model", run->candidates[run->candidate]);
    if (calls) {
        mp_key (&w, "toolCalls");
        mpjson_pack (&w.pk, run->tool_calls);
    }
    if (steps) {
        //  The tool rounds, for the session to store (OpenAI message format
        //  plus "tool" on tool results).
        mp_key (&w, "steps");
        mpjson_pack (&w.pk, run->log);
    }
    s_publish (run, "chat.done", &w);
    mp_writer_fini (&w);
    log_info ("run", "%s done: %s, model %s, %lld+%lld tokens", run->id, reason,
              run->candidates[run->candidate], (long long) run->prompt_tokens,
              (long long) run->completion_tokens);
}

static void
s_emit_error (run_t *run)
{
    mp_writer_t w;
    mp_writer_init (&w);
    s_end_head (&w, run, "chat.error", run->retry_after ? 3 : 2);
    if (run->retry_after)
        mp_kv_int (&w, "retryAfter", run->retry_after);
    mp_key (&w, "error");
    msgpack_pack_map (&w.pk, 3);
    mp_kv_str (&w, "code", run->err_code);
    mp_kv_str (&w, "message", run->err_message);
    mp_kv_str (&w, "type", run->err_status >= 500 ? "server_error"
                                                   : "client_error");
    mp_kv_int (&w, "status", run->err_status);
    s_publish (run, "chat.error", &w);
    mp_writer_fini (&w);
    log_warn ("run", "%s failed: %d %s: %s", run->id, run->err_status,
              run->err_code, run->err_message);
}

//  ---- Provider sink -------------------------------------------------------------

static void
s_append_text (run_t *run, const char *text, size_t len)
{
    if (run->text_len + len + 1 > run->text_cap) {
        size_t cap = run->text_cap ? run->text_cap : 256;
        while (cap < run->text_len + len + 1)
            cap *= 2;
        char *grown = (char *) realloc (run->text, cap);
        if (!grown)
            return;
        run->text = grown;
        run->text_cap = cap;
    }
    memcpy (run->text + run->text_len, text, len);
    run->text_len += len;
    run->text[run->text_len] = 0;
}

//  Folds OpenAI chunk-format tool-call deltas into complete tool calls.
static void
s_merge_tool_calls (run_t *run, const cJSON *deltas)
{
    if (!run->tool_calls)
        run->tool_calls = cJSON_CreateArray ();
    for (const cJSON *d = deltas->child; d; d = d->next) {
        const cJSON *ix = cJSON_GetObjectItem (d, "index");
        int index = cJSON_IsNumber (ix) ? ix->valueint : 0;
        if (index < 0 || index > 127)
            continue;
        while (cJSON_GetArraySize (run->tool_calls) <= index) {
            cJSON *c = cJSON_CreateObject ();
            cJSON_AddStringToObject (c, "id", "");
            cJSON_AddStringToObject (c, "type", "function");
            cJSON *fn = cJSON_AddObjectToObject (c, "function");
            cJSON_AddStringToObject (fn, "name", "");
            cJSON_AddStringToObject (fn, "arguments", "");
            cJSON_AddItemToArray (run->tool_calls, c);
        }
        cJSON *call = cJSON_GetArrayItem (run->tool_calls, index);
        const cJSON *id = cJSON_GetObjectItem (d, "id");
        if (cJSON_IsString (id) && *id->valuestring)
            cJSON_ReplaceItemInObject (call, "id", cJSON_CreateString (id->valuestring));
        const cJSON *fn = cJSON_GetObjectItem (d, "function");
        cJSON *cfn = cJSON_GetObjectItem (call, "function");
        const cJSON *name = cJSON_GetObjectItem (fn, "name");
        if (cJSON_IsString (name) && *name->valuestring)
            cJSON_ReplaceItemInObject (cfn, "name",
                                       cJSON_CreateString (name->valuestring));
        const cJSON *args = cJSON_GetObjectItem (fn, "arguments");
        if (cJSON_IsString (args) && *args->valuestring) {
            const char *old = cJSON_GetObjectItem (cfn, "arguments")->valuestring;
            size_t n = strlen (old) + strlen (args->valuestring) + 1;
            char *joined = (char *) malloc (n);
            if (joined) {
                snprintf (joined, n, "%s%s", old, args->valuestring);
                cJSON_ReplaceItemInObject (cfn, "arguments",
                                           cJSON_CreateString (joined));
                free (joined);
            }
        }
    }
}

static void
s_sink_delta (void *arg, const char *text, size_t len, const cJSON *calls)
{
    run_t *run = (run_t *) arg;
    run->got_output = true;
    s_append_text (run, text, len);
    if (calls)
        s_merge_tool_calls (run, calls);
    s_emit_delta (run, text, len, calls);
}

static void
s_sink_usage (void *arg, int64_t prompt, int64_t completion)
{
    run_t *run = (run_t *) arg;
    run->prompt_tokens = prompt;
    if (completion)
        run->completion_tokens = completion;
}

static void
s_sink_finish (void *arg, const char *reason)
{
    run_t *run = (run_t *) arg;
    snprintf (run->finish, sizeof (run->finish), "%s", reason);
}

static void
s_sink_error (void *arg, int status, const char *code, const char *message)
{
    run_t *run = (run_t *) arg;
    run->err_status = status;
    snprintf (run->err_code, sizeof (run->err_code), "%s", code);
    snprintf (run->err_message, sizeof (run->err_message), "%s", message);
    run->err_retry = status != 400;
}

static const provider_sink_t s_sink = {s_sink_delta, s_sink_usage,
                                       s_sink_finish, s_sink_error};

//  ---- libcurl glue ----------------------------------------------------------------

static size_t
s_on_write (char *data, size_t size, size_t nmemb, void *arg)
{
    run_t *run = (run_t *) arg;
    size_t len = size * nmemb;
    run->last_byte = zclock_mono ();
    if (!run->http_status)
        curl_easy_getinfo (run->easy, CURLINFO_RESPONSE_CODE, &run->http_status);
    if (run->http_status < 200 || run->http_status > 299) {
        //  Keep the start of an error body to explain the failure.
        size_t room = RUN_MAX_ERROR_BODY - run->error_len;
        size_t n = len < room ? len : room;
        char *grown = (char *) realloc (run->error_body, run->error_len + n + 1);
        if (grown) {
            run->error_body = grown;
            memcpy (run->error_body + run->error_len, data, n);
            run->error_len += n;
            run->error_body[run->error_len] = 0;
        }
        return len;
    }
    //  A parse failure stops the transfer at once (libcurl sees a short
    //  write and ends it with CURLE_WRITE_ERROR).
    return provider_parser_feed (run->parser, data, len) == 0 ? len : 0;
}

//  Keeps the upstream's Retry-After, so a 429 can pass it on.
static size_t
s_on_header (char *data, size_t size, size_t nmemb, void *arg)
{
    run_t *run = (run_t *) arg;
    size_t len = size * nmemb;
    run->last_byte = zclock_mono ();
    if (len > 12 && !strncasecmp (data, "Retry-After:", 12)) {
        long v = strtol (data + 12, NULL, 10);
        run->retry_after = v > 0 && v < 86400 ? (int) v : 0;
    }
    return len;
}

//  libcurl's sockets live in an epoll set, so a wake-up costs the same with
//  one transfer or thousands: a poll () over every socket was a fifth of the
//  actor's CPU at 64 connections.  curl_multi_assign marks a socket as added.
static int
s_on_socket (CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    self_t *self = (self_t *) arg;
    if (what == CURL_POLL_REMOVE) {
        //  libcurl says so before it closes the socket; the error of an
        //  already closed one (which epoll dropped by itself) is harmless.
        if (sockp) {
            epoll_ctl (self->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
            self->n_socks--;
        }
        return 0;
    }
    struct epoll_event ev = {0};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0)
                | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (sockp)
        return epoll_ctl (self->epoll_fd, EPOLL_CTL_MOD, fd, &ev) ? -1 : 0;
    if (self->n_socks == RUN_MAX_SOCKETS
        || epoll_ctl (self->epoll_fd, EPOLL_CTL_ADD, fd, &ev))
        return -1;
    self->n_socks++;
    curl_multi_assign (self->multi, fd, self);
    return 0;
}

static int
s_on_timer (CURLM *multi, long timeout_ms, void *arg)
{
    self_t *self = (self_t *) arg;
    self->curl_timeout_at = timeout_ms < 0 ? -1 : zclock_mono () + timeout_ms;
    return 0;
}

static void
s_transfer_end (run_t *run)
{
    if (run->easy) {
        self_t *self = run->self;
        curl_multi_remove_handle (self->multi, run->easy);
        //  Keep the handle (and its receive buffer) for the next run: one
        //  handle made and freed per run showed up as malloc churn.
        if (self->n_spare < RUN_SPARE_EASY) {
            curl_easy_reset (run->easy);
            self->spare[self->n_spare++] = run->easy;
        }
        else
            curl_easy_cleanup (run->easy);
        run->easy = NULL;
    }
    curl_slist_free_all (run->headers);
    run->headers = NULL;
    free (run->url);
    free (run->body);
    run->url = run->body = NULL;
    provider_parser_destroy (&run->parser);
    free (run->error_body);
    run->error_body = NULL;
    run->error_len = 0;
    run->http_status = 0;
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
    s_transfer_end (run);
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
static void
s_run_finish (run_t *run, const char *reason)
{
    s_transfer_end (run);
    s_emit_done (run, reason);
    zhashx_delete (run->self->runs, run->id);
}

static void
s_run_fail (run_t *run)
{
    s_transfer_end (run);
    s_emit_error (run);
    zhashx_delete (run->self->runs, run->id);
}

//  local/echo: the last user message, back word by word.
static void
s_echo_prepare (run_t *run)
{
    const cJSON *last = NULL;
    int64_t prompt_words = 0;
    for (const cJSON *m = run->messages->child; m; m = m->next) {
        const cJSON *role = cJSON_GetObjectItem (m, "role");
        const cJSON *content = cJSON_GetObjectItem (m, "content");
        if (cJSON_IsString (content)) {
            bool in_word = false;
            for (const char *p = content->valuestring; *p; p++) {
                bool space = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
                prompt_words += !space && !in_word;
                in_word = !space;
            }
            if (cJSON_IsString (role) && !strcmp (role->valuestring, "user"))
                last = content;
        }
    }
    run->prompt_tokens = prompt_words;
    const char *text = last ? last->valuestring : "";
    //  Split on spaces; every word but the first keeps its leading space.
    size_t n = strlen (text);
    run->words = (char **) calloc (n / 2 + 2, sizeof (char *));
    const char *p = text;
    while (run->words && *p) {
        const char *start = p;
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++;
        size_t len = (size_t) (p - start);
        if (!len)
            break;
        run->words[run->n_words] = strndup (start, len);
        if (!run->words[run->n_words])
            break;
        run->n_words++;
    }
    run->completion_tokens = run->n_words;
}

//  Emits the echo words that are due; finishes the run after the last one.
//  Returns false if the run ended.
static bool
s_echo_step (run_t *run)
{
    int delay = run->provider->echo_delay_ms;
    while (run->next_word < run->n_words && zclock_mono () >= run->echo_next) {
        const char *w = run->words[run->next_word++];
        s_sink_delta (run, w, strlen (w), NULL);
        run->echo_next = zclock_mono () + delay;
    }
    if (run->next_word < run->n_words)
        return true;
    s_run_finish (run, "stop");
    return false;
}

//  Starts the current candidate: echo runs at once, others on libcurl.
static int
s_run_start_transfer (run_t *run)
{
    const char *model = NULL;
    run->provider = catalog_find_model (run->self->catalog,
                                       run->candidates[run->candidate], &model);
    if (!run->provider) {
        run->err_status = 404;
        snprintf (run->err_code, sizeof (run->err_code), "not_found");
        snprintf (run->err_message, sizeof (run->err_message),
                  "Unknown model %s", run->candidates[run->candidate]);
        return -1;
    }
    run->err_status = 0;
    run->retry_after = 0;    //  A fallback must not inherit the last one's
    run->self->sweep_at = 0; //  Its deadline, stall and echo timers start now
    run_schedule (run->self);
    if (run->provider->type == PROVIDER_ECHO) {
        s_echo_prepare (run);
        run->echo_next = zclock_mono ();
        return 0;
    }
    provider_request_t req = {
        .model = model,
        .system = run->agent ? run->agent->system : NULL,
        .thinking = run->thinking[0] ? run->thinking : NULL,
        .messages = run->messages,
        .tools = run->tools,
        .tool_choice = run->tool_choice,
        .temperature = run->temperature,
        .max_tokens = run->max_tokens,
        .agent_max_tokens = run->agent ? run->agent->max_tokens : 1024,
        .stream = run->stream,
    };
    char err[256];
    if (provider_build (run->provider, &req, &run->url, &run->headers, &run->body,
                        err, sizeof (err))) {
        run->err_status = 400;
        snprintf (run->err_code, sizeof (run->err_code), "invalid_request");
        snprintf (run->err_message, sizeof (run->err_message), "%s", err);
        return -1;
    }
    if (!s_curl_ready (run->self)) {
        run->err_status = 500;
        snprintf (run->err_code, sizeof (run->err_code), "internal_error");
        snprintf (run->err_message, sizeof (run->err_message),
                  "libcurl could not be initialised");
        return -1;
    }
    run->parser = provider_parser_new (run->provider->type, run->stream, &s_sink,
                                       run);
    run->easy = run->self->n_spare ? run->self->spare[--run->self->n_spare]
                                   : curl_easy_init ();
    if (!run->parser || !run->easy) {
        run->err_status = 500;
        snprintf (run->err_code, sizeof (run->err_code), "internal_error");
        snprintf (run->err_message, sizeof (run->err_message), "Out of memory");
        return -1;
    }
    CURL *e = run->easy;
    curl_easy_setopt (e, CURLOPT_URL, run->url);
    curl_easy_setopt (e, CURLOPT_POSTFIELDS, run->body);
    curl_easy_setopt (e, CURLOPT_HTTPHEADER, run->headers);
    curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt (e, CURLOPT_WRITEDATA, run);
    curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (e, CURLOPT_HEADERDATA, run);
    curl_easy_setopt (e, CURLOPT_PRIVATE, run);
    curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
    curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS,
                      (long) run->provider->connect_timeout_ms);
    //  Stalls (no byte for stallTimeoutMs) are watched by s_sweep, to the
    //  millisecond: libcurl's low-speed check counts whole seconds and
    //  averages, so it fires late.
    run->last_byte = zclock_mono ();
    curl_easy_setopt (e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt (e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (curl_multi_add_handle (run->self->multi, e) != CURLM_OK) {
        run->err_status = 500;
        snprintf (run->err_code, sizeof (run->err_code), "internal_error");
        snprintf (run->err_message, sizeof (run->err_message),
                  "Could not start the provider call");
        return -1;
    }
    return 0;
}

//  The current candidate failed: try the next one if allowed, else fail.
static void
s_run_next_or_fail (run_t *run)
{
    while (!run->got_output && run->err_retry
           && run->candidate + 1 < run->n_candidates) {
        log_warn ("run", "%s: %s failed (%s); falling back to %s", run->id,
                  run->candidates[run->candidate], run->err_message,
                  run->candidates[run->candidate + 1]);
        s_transfer_end (run);
        run->candidate++;
        run->prompt_tokens = run->completion_tokens = 0;
        run->finish[0] = 0;
        if (s_run_start_transfer (run) == 0)
            return;
    }
    s_run_fail (run);
}

//  A libcurl transfer completed (well or not).
static void
s_transfer_done (self_t *self, CURL *easy, CURLcode result)
{
    run_t *run = NULL;
    curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &run);
    if (!run)
        return;
    if (!run->http_status)
        curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &run->http_status);
    if (run->err_status) {
        //  The parser already explained the failure.
    }
    else if (result != CURLE_OK) {
        run->err_status = 503;
        run->err_retry = true;
        snprintf (run->err_code, sizeof (run->err_code), "service_unavailable");
        snprintf (run->err_message, sizeof (run->err_message),
                  "Provider %s %s: %s", run->provider->name,
                  result == CURLE_OPERATION_TIMEDOUT ? "stalled or timed out"
                                                     : "unreachable",
                  curl_easy_strerror (result));
    }
    else if (run->http_status < 200 || run->http_status > 299) {
        run->err_retry = provider_map_error (
            run->provider, run->http_status, run->error_body, run->error_len,
            &run->err_status, run->err_code, sizeof (run->err_code),
            run->err_message, sizeof (run->err_message));
    }
    else
        provider_parser_finish (run->parser);
    if (run->err_status)
        s_run_next_or_fail (run);
    else if (!strcmp (run->finish, "tool_calls") && s_wants_tool_round (run))
        s_tool_round (run);
    else
        s_run_finish (run, run->finish[0] ? run->finish : "stop");
}

static void
s_curl_drain (self_t *self)
{
    CURLMsg *msg;
    int left;
    if (!self->multi)
        return;
    while ((msg = curl_multi_info_read (self->multi, &left)))
        if (msg->msg == CURLMSG_DONE)
            s_transfer_done (self, msg->easy_handle, msg->data.result);
}

//  ---- The tool loop ----------------------------------------------------------------
//
//  An agent with tools: ["browser"] offers browser_navigate and
//  browser_screenshot to the model (unless the request brings tools of its
//  own).  When the model answers with tool calls, each goes to the browser
//  actor as a request on this actor's own DEALER; tool.call and tool.result
//  events go out as for deltas; the assistant turn and the results join the
//  conversation, and the model is called again, up to maxToolSteps rounds.
//  The rounds travel with chat.done as "steps" so the session stores them.

static const char *s_browser_tools =
    "[{\"type\":\"function\",\"function\":{\"name\":\"browser_navigate\","
    "\"description\":\"Open a web page in the gateway's headless browser and "
    "wait until it has loaded. Returns the final url, the page title and the "
    "HTTP status.\",\"parameters\":{\"type\":\"object\",\"properties\":{\"url\":"
    "{\"type\":\"string\",\"description\":\"An http:// or https:// URL\"}},"
    "\"required\":[\"url\"]}}},"
    "{\"type\":\"function\",\"function\":{\"name\":\"browser_screenshot\","
    "\"description\":\"Take a PNG screenshot of the page open in the browser "
    "(the viewport, the full page, or one element). The user sees the image; "
    "you get its size.\",\"parameters\":{\"type\":\"object\",\"properties\":{"
    "\"selector\":{\"type\":\"string\",\"description\":\"CSS selector of one "
    "element\"},\"fullPage\":{\"type\":\"boolean\"}}}}}]";

static bool
s_wants_tool_round (run_t *run)
{
    return run->builtin_tools && run->agent && run->tool_calls
           && cJSON_GetArraySize (run->tool_calls) > 0
           && run->steps < run->agent->max_tool_steps;
}

//  tool.call / tool.result: {sessionKey, runId, seq, tool, callId, key:value}
static void
s_emit_tool (run_t *run, const char *type, const char *tool,
             const char *call_id, const char *key, const cJSON *value)
{
    mp_writer_t w;
    mp_writer_init (&w);
    s_event_head (&w, run, 3);
    mp_kv_str (&w, "tool", tool);
    mp_kv_str (&w, "callId", call_id);
    mp_key (&w, key);
    if (!value || mpjson_pack (&w.pk, value))
        msgpack_pack_nil (&w.pk);
    s_publish (run, type, &w);
    mp_writer_fini (&w);
}

//  {"error":{code,message}}.  Caller owns the return value.
static cJSON *
s_tool_error (const char *code, const char *message)
{
    cJSON *j = cJSON_CreateObject ();
    cJSON *e = cJSON_AddObjectToObject (j, "error");
    cJSON_AddStringToObject (e, "code", code);
    cJSON_AddStringToObject (e, "message", message);
    return j;
}

static const char *
s_json_str (const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

//  Every result is in: tell the clients, show the model, call it again.
static void
s_tool_round_done (run_t *run)
{
    int n = cJSON_GetArraySize (run->calls);
    for (int i = 0; i < n; i++) {
        const cJSON *call = cJSON_GetArrayItem (run->calls, i);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive (call, "function");
        const char *name = s_json_str (fn, "name");
        const char *id = s_json_str (call, "id");
        const cJSON *result = cJSON_GetArrayItem (run->results, i);
        s_emit_tool (run, "tool.result", name ? name : "", id ? id : "", "result",
                     result);
        //  The model gets the result as JSON text, without the pixels of a
        //  screenshot (they would fill its context; the user has them).
        cJSON *brief = cJSON_Duplicate (result, 1);
        const cJSON *data = cJSON_GetObjectItemCaseSensitive (brief, "data");
        if (cJSON_IsString (data)) {
            double bytes = (double) strlen (data->valuestring) * 3 / 4;
            cJSON_DeleteItemFromObjectCaseSensitive (brief, "data");
            cJSON_AddNumberToObject (brief, "bytes", bytes);
        }
        char *text = brief ? cJSON_PrintUnformatted (brief) : NULL;
        cJSON_Delete (brief);
        cJSON *msg = cJSON_CreateObject ();
        cJSON_AddStringToObject (msg, "role", "tool");
        cJSON_AddStringToObject (msg, "tool_call_id", id ? id : "");
        cJSON_AddStringToObject (msg, "content", text ? text : "null");
        cJSON_free (text);
        cJSON_AddItemToArray (run->messages, cJSON_Duplicate (msg, 1));
        cJSON_AddStringToObject (msg, "tool", name ? name : "");
        cJSON_AddItemToArray (run->log, msg);
    }
    cJSON_Delete (run->calls);
    cJSON_Delete (run->results);
    run->calls = run->results = NULL;
    log_info ("run", "%s: tool round %d done, asking the model again", run->id,
              run->steps);
    if (s_run_start_transfer (run))
        s_run_next_or_fail (run);
}

//  Records the result of call index (takes result); the last one ends the
//  round.  run may be gone when this returns.
static void
s_tool_result (run_t *run, int index, cJSON *result)
{
    if (!run->results || index >= cJSON_GetArraySize (run->results)
        || !cJSON_IsNull (cJSON_GetArrayItem (run->results, index))) {
        cJSON_Delete (result);
        return;
    }
    cJSON_ReplaceItemInArray (run->results, index, result ? result
                                                          : cJSON_CreateNull ());
    if (--run->pending == 0)
        s_tool_round_done (run);
}

//  Sends one tool call to the browser actor.  Returns 0, or an error result
//  (caller owns) to answer the model with at once.
static cJSON *
s_tool_send (run_t *run, int index, const char *name, const cJSON *args)
{
    self_t *self = run->self;
    const char *type = !strcmp (name, "browser_navigate")     ? "BROWSER_NAVIGATE"
                       : !strcmp (name, "browser_screenshot") ? "BROWSER_SCREENSHOT"
                                                               : NULL;
    if (!type)
        return s_tool_error ("not_found", "No such tool");
    if (!cJSON_IsObject (args))
        return s_tool_error ("invalid_request",
                             "The arguments are not a JSON object");
    const char *url = s_json_str (args, "url");
    const char *selector = s_json_str (args, "selector");
    const cJSON *full = cJSON_GetObjectItemCaseSensitive (args, "fullPage");
    if (!strcmp (type, "BROWSER_NAVIGATE") && !url)
        return s_tool_error ("invalid_request", "'url' is required");
    if (!run_front (self))
        return s_tool_error ("service_unavailable", "No broker connection");
    mp_writer_t w;
    mp_writer_init (&w);
    if (url) {
        msgpack_pack_map (&w.pk, 1);
        mp_kv_str (&w, "url", url);
    }
    else {
        msgpack_pack_map (&w.pk, (selector ? 1 : 0) + (cJSON_IsBool (full) ? 1 : 0));
        if (selector)
            mp_kv_str (&w, "selector", selector);
        if (cJSON_IsBool (full))
            mp_kv_bool (&w, "fullPage", cJSON_IsTrue (full));
    }
    envelope_t env;
    envelope_init (&env, type);
    snprintf (env.session_key, sizeof (env.session_key), "%s", run->session);
    int64_t left = run->deadline - zclock_mono ();
    env.timeout_ms = left > 0 ? left : 1;
    int rc = bus_front_send (self->front, "browser", &env, w.buf.data, w.buf.size);
    mp_writer_fini (&w);
    if (rc)
        return s_tool_error ("service_unavailable",
                             "The broker is not taking requests");
    tool_wait_t *t = (tool_wait_t *) calloc (1, sizeof (tool_wait_t));
    if (!t)
        return s_tool_error ("internal_error", "Out of memory");
    snprintf (t->run_id, sizeof (t->run_id), "%s", run->id);
    t->index = index;
    //  Past this, the run has ended anyway: a reply that never comes must
    //  not hold the entry (the tidy drops it).
    t->expires = run->deadline + RUN_TOOL_GRACE_MS;
    char key[24];
    snprintf (key, sizeof (key), "%llu", (unsigned long long) env.corr_id);
    zhashx_insert (self->tool_calls, key, t);
    s_peak (&self->peak_tool_calls, self->tool_calls);
    return NULL;
}

//  The model asked for tools: carry them out (s_tool_round_done goes on).
static void
s_tool_round (run_t *run)
{
    s_transfer_end (run);
    cJSON *calls = run->tool_calls;
    run->tool_calls = NULL;
    //  The assistant turn that asked, as the model must see it again.
    cJSON *turn = cJSON_CreateObject ();
    cJSON_AddStringToObject (turn, "role", "assistant");
    if (run->text_len)
        cJSON_AddStringToObject (turn, "content", run->text);
    else
        cJSON_AddNullToObject (turn, "content");
    cJSON_AddItemToObject (turn, "tool_calls", cJSON_Duplicate (calls, 1));
    cJSON_AddItemToArray (run->messages, cJSON_Duplicate (turn, 1));
    if (!run->log)
        run->log = cJSON_CreateArray ();
    cJSON_AddItemToArray (run->log, turn);
    run->earlier_prompt += run->prompt_tokens;
    run->earlier_completion += run->completion_tokens;
    run->prompt_tokens = run->completion_tokens = 0;
    run->text_len = 0;
    if (run->text)
        run->text[0] = 0;
    run->finish[0] = 0;
    run->steps++;
    int n = cJSON_GetArraySize (calls);
    run->calls = calls;
    run->results = cJSON_CreateArray ();
    for (int i = 0; i < n; i++)
        cJSON_AddItemToArray (run->results, cJSON_CreateNull ());
    run->pending = n;
    log_info ("run", "%s: the model called %d tool(s), round %d", run->id, n,
              run->steps);
    for (int i = 0; i < n; i++) {
        const cJSON *call = cJSON_GetArrayItem (calls, i);
        const cJSON *fn = cJSON_GetObjectItemCaseSensitive (call, "function");
        const char *name = s_json_str (fn, "name");
        const char *id = s_json_str (call, "id");
        const char *argtext = s_json_str (fn, "arguments");
        //  The model's text: through the intake like any outside JSON.
        cJSON *args = argtext ? json_in_parse (argtext, strlen (argtext), 0,
                                               JSON_IN_NUL_OK, NULL, NULL)
                              : NULL;
        s_emit_tool (run, "tool.call", name ? name : "", id ? id : "", "params",
                     args);
        cJSON *error = s_tool_send (run, i, name ? name : "", args);
        cJSON_Delete (args);
        //  The last of these may end the round (and the run): nothing of
        //  run is used after it.
        if (error)
            s_tool_result (run, i, error);
    }
}

//  Replies of the browser actor to our tool calls.
static void
s_handle_front (self_t *self)
{
    for (int budget = 0; budget < 64; budget++) {
        bus_msg_t msg;
        if (bus_front_recv (self->front, 0, &msg))
            break;
        char key[24];
        snprintf (key, sizeof (key), "%llu", (unsigned long long) msg.env.corr_id);
        tool_wait_t *t = msg.kind == BUS_MSG_REPLY
                             ? (tool_wait_t *) zhashx_lookup (self->tool_calls, key)
                             : NULL;
        if (t) {
            char run_id[80];
            snprintf (run_id, sizeof (run_id), "%s", t->run_id);
            int index = t->index;
            zhashx_delete (self->tool_calls, key);   //  Frees t
            run_t *run = (run_t *) zhashx_lookup (self->runs, run_id);
            if (run && index >= 0) {
                cJSON *result;
                if (msg.env.status == 200)
                    result = mpjson_to_json (msg.body.root);
                else {
                    char code[48] = "internal_error", message[512] = "Tool failed";
                    mp_copy_str (msg.body.root, "code", code, sizeof (code));
                    mp_copy_str (msg.body.root, "message", message,
                                 sizeof (message));
                    result = s_tool_error (code, message);
                }
                s_tool_result (run, index, result);
            }
        }
        bus_msg_fini (&msg);
    }
}

//  ---- Requests ----------------------------------------------------------------------

static cJSON *
s_json_field (const msgpack_object *body, const char *key)
{
    const msgpack_object *v = mp_get (body, key);
    return v && v->type != MSGPACK_OBJECT_NIL ? mpjson_to_json (v) : NULL;
}

static void
s_handle_start (self_t *self, bus_request_t *req)
{
    const msgpack_object *b = req->body.root;
    run_t *run = (run_t *) calloc (1, sizeof (run_t));
    if (!run) {
        bus_worker_error (self->worker, req, 500, "internal_error",
                          "Out of memory", NULL);
        return;
    }
    run->self = self;
    if (mp_copy_str (b, "runId", run->id, sizeof (run->id)) || !run->id[0]) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, 400, "invalid_request",
                          "runId is missing or too long", "runId");
        return;
    }
    if (zhashx_lookup (self->runs, run->id)) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, 400, "invalid_request",
                          "A run with this runId is already in flight", "runId");
        return;
    }
    mp_copy_str (b, "sessionKey", run->session, sizeof (run->session));
    if (run->session[0])
        snprintf (run->topic_prefix, sizeof (run->topic_prefix), "%s",
                  run->session);
    else
        snprintf (run->topic_prefix, sizeof (run->topic_prefix), "run:%s",
                  run->id);
    memcpy (run->front, req->front, req->front_len);
    run->front_len = req->front_len;
    size_t to_len = 0;
    const char *to = mp_get_str (b, "replyTo", &to_len);
    if (to && to_len <= BUS_MAX_ID) {
        run->result_mode = true;
        memcpy (run->asker.front, req->front, req->front_len);
        run->asker.front_len = req->front_len;
        run->asker.env = req->env;
        memcpy (run->front, to, to_len);
        run->front_len = to_len;
        mp_get_int (b, "seqBase", &run->seq);
    }
    //  A name given but too long for its buffer names nothing we know: it
    //  must not fall back to the default as if none had been given.
    size_t given;
    char agent_id[128] = "default";
    if (mp_get_str (b, "agentId", &given)
        && mp_copy_str (b, "agentId", agent_id, sizeof (agent_id)))
        agent_id[0] = 0;
    run->agent = catalog_find_agent (self->catalog, agent_id);
    if (!run->agent) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, 404, "not_found", "Unknown agent",
                          "agentId");
        return;
    }
    char model[256] = "";
    const char *asked = mp_get_str (b, "model", &given);
    if (asked && mp_copy_str (b, "model", model, sizeof (model))) {
        char msg[320];
        snprintf (msg, sizeof (msg), "The model '%.*s...' does not exist",
                  (int) (given < 200 ? given : 200), asked);
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, 404, "not_found", msg, "model");
        return;
    }
    run->candidates[run->n_candidates++] = strdup (model[0] ? model
                                                            : run->agent->model);
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
        bus_worker_error (self->worker, req, 404, "not_found", msg, "model");
        return;
    }
    run->messages = s_json_field (b, "messages");
    run->tools = s_json_field (b, "tools");
    if (run->agent->browser_tools && !run->tools) {
        run->tools = cJSON_Parse (s_browser_tools);
        run->builtin_tools = run->tools != NULL;
    }
    run->tool_choice = s_json_field (b, "toolChoice");
    run->temperature = s_json_field (b, "temperature");
    mp_copy_str (b, "thinking", run->thinking, sizeof (run->thinking));
    mp_get_int (b, "maxTokens", &run->max_tokens);
    mp_get_bool (b, "stream", &run->stream);
    int64_t timeout = self->settings->request_timeout_ms;
    mp_get_int (b, "timeoutMs", &timeout);
    if (timeout <= 0 || timeout > self->settings->request_timeout_ms)
        timeout = self->settings->request_timeout_ms;
    run->deadline = zclock_mono () + timeout;
    if (!cJSON_IsArray (run->messages) || !run->messages->child) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, 400, "invalid_request",
                          "messages must be a non-empty array", "messages");
        return;
    }
    if (run->session[0] && !run->result_mode && s_seq_hold (self, run)) {
        s_run_destroy (&run);
        bus_worker_error (self->worker, req, 500, "internal_error",
                          "Out of memory", NULL);
        return;
    }
    //  No reply on success: the run's events are the answer, and a reply
    //  would cost the front two more thread hand-offs per run.
    zhashx_insert (self->runs, run->id, run);
    s_peak (&self->peak_runs, self->runs);
    log_debug ("run", "%s started on %s for session %s", run->id,
               run->candidates[0], run->session[0] ? run->session : "-");
    if (s_run_start_transfer (run))
        s_run_next_or_fail (run);
}

static void
s_handle_abort (self_t *self, bus_request_t *req)
{
    char id[80] = "";
    mp_copy_str (req->body.root, "runId", id, sizeof (id));
    run_t *run = (run_t *) zhashx_lookup (self->runs, id);
    mp_writer_t w;
    mp_writer_init (&w);
    msgpack_pack_map (&w.pk, 2);
    mp_kv_str (&w, "runId", id);
    mp_kv_bool (&w, "aborted", run != NULL);
    bus_worker_reply (self->worker, req, "RUN_ABORTED", 200, w.buf.data,
                      w.buf.size);
    mp_writer_fini (&w);
    if (run) {
        log_info ("run", "%s aborted", id);
        s_run_finish (run, "aborted");
    }
}

//  One validated request (actor_run's dispatch).
static void
s_handle (void *state, bus_worker_t *worker, bus_request_t *req)
{
    self_t *self = (self_t *) state;
    if (streq (req->env.type, "RUN_START"))
        s_handle_start (self, req);
    else if (streq (req->env.type, "RUN_ABORT"))
        s_handle_abort (self, req);
    else
        bus_worker_error (worker, req, 400, "invalid_request",
                          "Unknown run request", NULL);
}

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
            s_run_finish (run, "timeout");
            continue;
        }
        if (run->provider && run->provider->type == PROVIDER_ECHO
            && !run->err_status && !s_echo_step (run))
            continue;
        //  "No byte for stallTimeoutMs" holds for every call: for a
        //  non-streamed one it bounds the whole answer (documented).
        if (run->easy) {
            int64_t stall = run->provider->stall_timeout_ms;
            if (now - run->last_byte >= stall) {
                run->err_status = 503;
                run->err_retry = true;
                snprintf (run->err_code, sizeof (run->err_code),
                          "service_unavailable");
                snprintf (run->err_message, sizeof (run->err_message),
                          "Provider %s stalled: no data for %lld ms",
                          run->provider->name, (long long) stall);
                s_run_next_or_fail (run);
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
//  this actor adds libcurl's epoll set (one fd however many transfers), the
//  DEALER of its tool calls once it has one, and one timer, always armed for
//  the earlier of the next sweep and libcurl's timeout.

static int s_on_due (zloop_t *loop, int timer_id, void *arg);

//  Arms the timer for the earlier of sweep_at and curl_timeout_at, unless it
//  is already armed for that time or earlier.
void
run_schedule (self_t *self)
{
    int64_t at = self->sweep_at;
    if (self->curl_timeout_at >= 0 && self->curl_timeout_at < at)
        at = self->curl_timeout_at;
    if (self->due_timer >= 0 && self->due_at <= at)
        return;
    if (self->due_timer >= 0)
        zloop_timer_end (self->loop, self->due_timer);
    int64_t delay = at - zclock_mono ();
    self->due_timer = zloop_timer (self->loop, delay > 0 ? (size_t) delay : 0,
                                   1, s_on_due, self);
    self->due_at = at;
}

//  libcurl's timeout and the sweep (deadlines, stalls and echo pacing need a
//  walk over every run: only when one of them is due, not on every wake-up;
//  with a thousand streams that walk would cost more than the deltas).
static int
s_on_due (zloop_t *loop, int timer_id, void *arg)
{
    self_t *self = (self_t *) arg;
    self->due_timer = -1;            //  A one-shot timer: zloop drops it
    if (self->curl_timeout_at >= 0 && zclock_mono () >= self->curl_timeout_at) {
        int running;
        self->curl_timeout_at = -1;
        curl_multi_socket_action (self->multi, CURL_SOCKET_TIMEOUT, 0,
                                  &running);
        s_curl_drain (self);
    }
    int64_t now = zclock_mono ();
    if (now >= self->sweep_at)
        self->sweep_at = now + s_sweep (self);
    run_schedule (self);
    return 0;
}

//  libcurl's sockets are ready: up to RUN_EPOLL_BATCH of them per wake-up.
static int
s_on_curl (zloop_t *loop, zmq_pollitem_t *item, void *arg)
{
    self_t *self = (self_t *) arg;
    struct epoll_event evs[RUN_EPOLL_BATCH];
    int running;
    int ready = epoll_wait (self->epoll_fd, evs, RUN_EPOLL_BATCH, 0);
    for (int i = 0; i < ready; i++) {
        int flags = ((evs[i].events & EPOLLIN) ? CURL_CSELECT_IN : 0)
                    | ((evs[i].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0)
                    | ((evs[i].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
        curl_multi_socket_action (self->multi, evs[i].data.fd, flags, &running);
    }
    s_curl_drain (self);
    return 0;
}

//  Replies of the browser actor to our tool calls (see run_front).
static int
s_on_front (zloop_t *loop, zsock_t *sock, void *arg)
{
    s_handle_front ((self_t *) arg);
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
            && zloop_reader (self->loop, bus_front_sock (self->front),
                             s_on_front, self))
            bus_front_destroy (&self->front);
    }
    return self->front;
}

//  libcurl is loaded (curl_lazy.c) and set up on the first provider call,
//  not at start: an idle or echo-only gateway never needs it.
//  curl_global_init is thread-safe from libcurl 7.84 on, which the build
//  requires.
static bool
s_curl_ready (self_t *self)
{
    if (self->multi)
        return true;
    if (curl_global_init (CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return false;
    self->curl_inited = true;
    self->multi = curl_multi_init ();
    if (!self->multi)
        return false;
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETFUNCTION, s_on_socket);
    curl_multi_setopt (self->multi, CURLMOPT_SOCKETDATA, self);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERFUNCTION, s_on_timer);
    curl_multi_setopt (self->multi, CURLMOPT_TIMERDATA, self);
    return true;
}

//  ---- Life cycle -------------------------------------------------------------------

//  The one teardown, for a stop and for a start that failed half-way.
static void
s_destroy (void **state_p)
{
    self_t *self = (self_t *) *state_p;
    if (!self)
        return;
    //  Shutting down: runs still in flight end as aborted, so their clients
    //  hear about it (the drain gave them their chance to finish).
    if (self->runs) {
        zlistx_t *left = zlistx_new ();
        for (run_t *run = (run_t *) zhashx_first (self->runs); run;
             run = (run_t *) zhashx_next (self->runs))
            zlistx_add_end (left, run);
        for (run_t *run = (run_t *) zlistx_first (left); run;
             run = (run_t *) zlistx_next (left))
            s_run_finish (run, "aborted");
        zlistx_destroy (&left);
        log_info ("run", "stopping; largest tables: %zu runs, %zu session "
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
    if (self->multi)
        curl_multi_cleanup (self->multi);
    if (self->curl_inited)
        curl_global_cleanup ();
    if (self->epoll_fd >= 0)
        close (self->epoll_fd);
    free (self->broker);
    free (self);
    *state_p = NULL;
}

static void *
s_create (const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    self_t *self = (self_t *) calloc (1, sizeof (self_t));
    if (!self)
        return NULL;
    self->loop = loop;
    self->worker = worker;
    self->settings = &args->settings->run;
    self->catalog = &args->settings->catalog;
    self->broker = strdup (args->broker);
    self->curl_timeout_at = -1;
    self->due_timer = -1;
    self->epoll_fd = epoll_create1 (EPOLL_CLOEXEC);
    self->runs = zhashx_new ();
    zhashx_set_destructor (self->runs, s_hash_run_free);
    self->seqs = zhashx_new ();
    zhashx_set_destructor (self->seqs, s_plain_free);
    self->tool_calls = zhashx_new ();
    zhashx_set_destructor (self->tool_calls, s_plain_free);
    self->tidy_at = zclock_mono () + RUN_TIDY_MS;
    zmq_pollitem_t curl = {NULL, self->epoll_fd, ZMQ_POLLIN, 0};
    if (!self->broker || self->epoll_fd < 0
        || zloop_poller (loop, &curl, s_on_curl, self)) {
        void *state = self;
        s_destroy (&state);
        return NULL;
    }
    run_schedule (self);
    return self;
}

static const actor_def_t s_def = {"run", s_create, s_handle, s_destroy};

void
run_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_def);
}
