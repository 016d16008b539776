/*  =========================================================================
    run_internal - what the files of the run actor share

    The run actor is one thread and one state (self_t) spread over five
    files: run.c (requests, runs, session counters, its hooks on actor_run's
    loop, life cycle), run_events.c (the events a run emits and the provider
    sink that feeds them), run_curl.c (starting a candidate; libcurl
    transfers), run_echo.c (the built-in local/echo provider) and
    run_tools.c (the tool loop).  Nothing here is for other modules: they
    use run.h.  Every function runs on the actor's thread.
    =========================================================================
*/
#ifndef CG_RUN_INTERNAL_H
#define CG_RUN_INTERNAL_H

#include <czmq.h>
#include <curl/curl.h>

#include "bus_front.h"
#include "bus_worker.h"
#include "curl_loop.h"
#include "mp.h"
#include "provider.h"
#include "run.h"

#define RUN_MAX_CANDIDATES 8
#define RUN_MAX_ERROR_BODY (64 * 1024)
//  Session counters (see seq_t) kept once their session has no run, and
//  how many of those at most: the table holds the sessions that are live,
//  not every one ever seen.
#define RUN_SEQ_IDLE_MS 60000
#define RUN_MAX_IDLE_SEQS 10000
#define RUN_TIDY_MS 1000  //  Idle counters, lost tool calls
//  A tool reply later than its run's deadline plus this is lost.
#define RUN_TOOL_GRACE_MS 5000
#define RUN_SPARE_EASY 256  //  Easy handles kept for reuse

typedef struct self_t self_t;

typedef struct {
    self_t *self;                              //  Actor (not owned)
    char id[80];                               //  runId
    char session[ENVELOPE_KEY_MAX + 1];        //  sessionKey, may be empty
    char topic_prefix[ENVELOPE_KEY_MAX + 90];  //  "<session>" or "run:<id>"
    uint8_t front[BUS_MAX_ID];                 //  Front the events go to
    size_t front_len;
    //  Session runs (RUN_START with replyTo): the end goes back as a
    //  RUN_RESULT reply to the asker, and seq counts from seqBase.
    bool result_mode;
    bus_request_t asker;  //  front and env only
    int64_t seq;          //  Last seq used (result_mode, and
                          //  stateless runs: own topic)
    bool seq_held;        //  Holds its session's seq_t
    //  The request, kept for fallbacks.
    cJSON *messages;  //  OpenAI-format conversation
    cJSON *tools, *tool_choice, *temperature;
    char thinking[16];
    int64_t max_tokens;
    bool stream;
    const cfg_agent_t *agent;              //  Config (not owned)
    char *candidates[RUN_MAX_CANDIDATES];  //  Model ids to try, in order
    int n_candidates, candidate;
    const cfg_provider_t *provider;  //  Of the current candidate
    //  The transfer in flight.
    CURL *easy;
    struct curl_slist *headers;
    char *url, *body;
    provider_parser_t *parser;
    long http_status;   //  0 until known
    int retry_after;    //  Upstream Retry-After (s), 0 if none
    int64_t last_byte;  //  zclock_mono () of the last byte in
    char *error_body;   //  Body of a non-2xx answer
    size_t error_len;
    //  The answer so far.
    bool got_output;  //  A delta reached the client
    char *text;
    size_t text_len, text_cap;
    cJSON *tool_calls;  //  Accumulated OpenAI tool_calls
    int64_t prompt_tokens, completion_tokens;
    char finish[24];  //  Finish reason, once known
    //  Failure of the current candidate.
    int err_status;
    char err_code[48];
    char err_message[512];
    bool err_retry;
    //  local/echo.
    char **words;
    int n_words, next_word;
    int64_t echo_next;  //  zclock_mono () of the next word
    int64_t deadline;   //  zclock_mono () past which: timeout
    //  The tool loop (agents with tools: ["browser"]).
    bool builtin_tools;      //  We offered browser_* ourselves
    int steps;               //  Model -> tools rounds done
    cJSON *log;              //  Those rounds' messages, for the
                             //  session (owned)
    cJSON *calls;            //  Tool calls being carried out (owned)
    cJSON *results;          //  Their results, by index (owned)
    int pending;             //  Results still awaited
    int64_t earlier_prompt;  //  Usage of the earlier rounds
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
    int64_t seq;         //  Last seq used
    int runs;            //  Live runs holding it
    int64_t idle_since;  //  zclock_mono () runs fell to 0
} seq_t;

//  A tool call sent to the browser actor, until its reply.
typedef struct {
    char run_id[80];  //  Run that asked
    int index;        //  Its place in the round
    int64_t expires;  //  zclock_mono () past which the
                      //  reply is taken as lost
} tool_wait_t;

struct self_t {
    zloop_t *loop;                   //  actor_run's loop (not owned)
    bus_worker_t *worker;            //  actor_run's worker (not owned)
    const run_settings_t *settings;  //  Read only, not owned
    const catalog_t *catalog;        //  Read only, not owned
    char *broker;                    //  Broker endpoint (owned), for
                                     //  the tool calls' front
    curl_loop_t *curl;               //  Provider calls (made on the first one)
    zhashx_t *runs;                  //  runId -> run_t (owned)
    zhashx_t *seqs;                  //  sessionKey -> seq_t (owned)
    int64_t seq_floor;               //  Highest seq of a dropped seq_t
    size_t idle_seqs;                //  seq_t with no run
    int64_t tidy_at;                 //  zclock_mono () of the next tidy
    //  Largest size each table reached, logged at stop: the check that
    //  they follow what is live, not what was ever seen.
    size_t peak_runs, peak_seqs, peak_tool_calls;
    int64_t sweep_at;             //  zclock_mono () of the next sweep
    int due_timer;                //  zloop timer for both, or -1
    int64_t due_at;               //  When it goes off
    CURL *spare[RUN_SPARE_EASY];  //  Reset easy handles kept for reuse
    int n_spare;
    bus_front_t *front;    //  Our requests (the browser actor)
    zhashx_t *tool_calls;  //  corr id -> tool_wait_t (owned)
};

//  ---- run.c ----------------------------------------------------------------

//  Raises *peak to the size of table if it is larger.
void
run_peak (size_t *peak, zhashx_t *table);

//  Ends a run with chat.done and forgets it (frees run).
void
run_finish (run_t *run, const char *reason);

//  The current candidate failed: starts the next one if allowed, else ends
//  the run with chat.error (then frees run).
void
run_next_or_fail (run_t *run);

//  Arms the actor's timer for sweep_at; call after moving it earlier.
void
run_schedule (self_t *self);

//  The DEALER of our tool calls, made (and added to the loop) on first use.
//  NULL if the broker cannot be reached.  Lent.
bus_front_t *
run_front (self_t *self);

//  ---- run_events.c ---------------------------------------------------------

//  Opens an event's map with the fields every event shares; the caller adds
//  its own and run_events_publish closes the map.
void
run_events_head (mp_writer_t *w, run_t *run);

//  Sends an event of run (or, for a run in result mode, its end as the
//  RUN_RESULT reply).
void
run_events_publish (run_t *run, const char *type, mp_writer_t *w);

void
run_events_done (run_t *run, const char *reason);

void
run_events_error (run_t *run);

//  Output of the provider: kept for chat.done and sent as chat.delta.
void
run_events_delta (void *arg, const char *text, size_t len, const cJSON *calls);

//  The sink provider parsers feed, with the run as its argument.
extern const provider_sink_t run_events_sink;

//  ---- run_curl.c -----------------------------------------------------------

//  Starts the current candidate: echo runs at once, others on libcurl.
//  Returns 0, or -1 with the run's err_* set.
int
run_curl_start_transfer (run_t *run);

//  Ends the run's transfer, if any, and frees what it held.
void
run_curl_transfer_end (run_t *run);

//  Loads and sets up libcurl on first use; false if it could not.
bool
run_curl_ready (self_t *self);

//  ---- run_echo.c -----------------------------------------------------------

void
run_echo_prepare (run_t *run);

//  Emits the echo words that are due; returns false if the run ended.
bool
run_echo_step (run_t *run);

//  ---- run_tools.c ----------------------------------------------------------

//  The tools an agent with tools: ["browser"] offers (OpenAI JSON text).
extern const char *const run_tools_offered;

bool
run_tools_wanted (run_t *run);

//  The model asked for tools: carries them out (the round goes on when the
//  replies come back).
void
run_tools_round (run_t *run);

//  Reads the browser actor's replies to our tool calls.
void
run_tools_on_reply (self_t *self);

#endif
