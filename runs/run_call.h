/*  =========================================================================
    run_call - one agent run, as any front starts and follows it

    HTTP (POST /v1/agent/run and /stream, POST /v1/chat/completions),
    WebSocket chat.run and the chat channels all start runs the same way:
    the request is checked (run_check.h), a run id and (when absent) a
    session key are chosen, and the body of a SESSION_RUN (a run on a
    session, recorded by the session actor) or a RUN_START (a stateless
    OpenAI call, straight to the run actor) is packed and sent on the
    caller's own bus_front_t.  The session actor or run actor replies only
    to refuse (ERROR); otherwise the run's events are the answer:
    chat.delta*, then chat.done or chat.error, routed to the asking socket
    directly (no subscription), and tool.call / tool.result between them.

    Three ways to follow the events:
    - A caller that waits on its socket for this run alone (an HTTP
      handler) calls run_call_next, which reads the next event of this
      run, drops what is not its own, and records what the run said
      (text, finish reason, usage, tool calls, error).
    - A caller that polls its socket in its own loop (a channel actor's
      zloop) reads each message itself and hands it to run_call_take,
      which records it if it is this run's.
    - A caller that multiplexes many runs on one socket (the WebSocket
      hub) sends with run_call_send, keeps the run id and corr id, and
      matches events itself; run_event_ends tells which end a run.

    Threads: a run_call_t is used by one thread, with that thread's socket.
    It lives on the caller's stack or in its state: run_call_init, then
    run_call_fini on every path.  Reads no configuration: timeouts and the
    catalog of agents and models come from the caller.
    =========================================================================
*/
#ifndef CG_RUN_CALL_H
#define CG_RUN_CALL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "bus_front.h"
#include "run_check.h"

//  The run deadline a follower gives up at is the run's timeout plus this
//  grace, so that the run actor's own timeout (finishReason "timeout")
//  reaches the client first.
#define RUN_CALL_GRACE_MS 5000

//  A field of a request that goes into a run's message may nest this deep
//  at most: the message body around it is one level more, and a message on
//  the bus nests at most MP_MAX_DEPTH (msgpack-c decodes no deeper).
#define RUN_FIELD_MAX_DEPTH (MP_MAX_DEPTH - 1)

//  What run_call_next found.
typedef enum {
    RUN_EV_IDLE = 0,  //  Nothing within the wait
    RUN_EV_DELTA,     //  chat.delta (its text appended)
    RUN_EV_DONE,      //  chat.done (results recorded)
    RUN_EV_ERROR,     //  chat.error, or the start refused
    RUN_EV_TOOL,      //  tool.call / tool.result (want_tools)
    RUN_EV_GONE,      //  Never returned here: for a front
                      //  whose client went away
} run_ev_t;

typedef struct {
    bus_front_t *bus;                    //  The caller's own socket (lent)
    int timeout_ms;                      //  The run's timeout (in its body)
    char run_id[80];                     //  "run-<32 hex>", chosen here
    char session[ENVELOPE_KEY_MAX + 1];  //  Its session; "" for stateless
    char model[256];                     //  As the client named it, or ""
    bool stream;                         //  Deltas asked for
    mp_writer_t body;                    //  The packed SESSION_RUN / RUN_START
    uint64_t corr_id;                    //  Of the start, once sent
    int64_t deadline;                    //  zclock_mono () to give up at
    //  The event just read by run_call_next (until its next call).
    bus_msg_t msg;
    bool have_msg;
    //  Results, filled by events.
    char *text;  //  Deltas so far; chat.done's response
    size_t text_len, text_cap;
    cJSON *tool_calls;           //  From chat.done (owned), or NULL
    char finish[24];             //  finishReason, "" until chat.done
    int64_t prompt, completion;  //  Usage, from chat.done
    error_info_t err;            //  What chat.error or a refusal said
    int64_t retry_after;         //  Seconds, from chat.error
    bool want_tools;             //  Return tool.call / tool.result
    char tool_event[16];         //  Type of the RUN_EV_TOOL just read
} run_call_t;

//  Readies c for one run on bus (the calling thread's socket), whose
//  timeout is timeout_ms.
void
run_call_init (run_call_t *c, bus_front_t *bus, int timeout_ms);

//  Frees what c holds.  Safe on an initialised c at any stage.
void
run_call_fini (run_call_t *c);

//  An agent run (HTTP /v1/agent/run, WebSocket chat.run, a channel):
//  checks req with run_check_agent (agent is the agentId node the front
//  reads, or NULL), chooses the run id, takes sessionKey or makes
//  "session-<uuid>", and packs the SESSION_RUN body {runId, sessionKey,
//  agentId, channel, message, stream, timeoutMs[, model][, thinking]}.
//  Returns 0, or the refusal's status with chk filled.
int
run_call_agent (run_call_t *c, const run_catalog_t *cat, const cJSON *req,
                const cJSON *agent, const char *channel, bool stream, run_check_t *chk);

//  An OpenAI Chat Completions call: checks req with run_check_openai,
//  then session_key (the X-OpenClaw-Session-Key header, or NULL for a
//  stateless call), and packs a SESSION_RUN (channel "openai") or a
//  RUN_START with the conversation and the sampling fields.  A field
//  nested deeper than RUN_FIELD_MAX_DEPTH is refused.  Returns 0, or the
//  refusal's status with chk filled.
int
run_call_openai (run_call_t *c, const run_catalog_t *cat, const cJSON *req,
                 const char *session_key, run_check_t *chk);

//  The envelope key of c's start and abort, which must be the same: the
//  broker routes a key to one worker, so an abort reaches the actor that
//  has the run.  A stateless run's id stands in for a session.
const char *
run_call_key (const run_call_t *c);

//  Sends the packed body (SESSION_RUN to "session" when c has a session,
//  else RUN_START to "run") with env_timeout_ms in its envelope, and sets
//  the deadline.  Returns 0 (c->corr_id set), or -1 if the broker does not
//  take it (the caller answers 503 service_unavailable).
int
run_call_send (run_call_t *c, int env_timeout_ms);

//  Reads msg, received on c->bus by a caller that polls the socket itself
//  (a channel actor's loop): if it is an event of c's run, or the refusal
//  of its start, records what it says and returns its kind; else returns
//  RUN_EV_IDLE (not this run's, or an event type not relayed).  msg stays
//  the caller's.
run_ev_t
run_call_take (run_call_t *c, const bus_msg_t *msg);

//  Waits up to idle_ms for the run's next event on c->bus, dropping
//  events of other runs and stray replies.  Records what a done or error
//  event (or a refusal of the start) says.  The event stays in c->msg
//  until the next call.  Returns RUN_EV_IDLE if none came.
run_ev_t
run_call_next (run_call_t *c, int idle_ms);

//  Milliseconds left before the deadline (<= 0: past it).
int64_t
run_call_left (const run_call_t *c);

//  Asks the actor that has the run to stop it (SESSION_ABORT or
//  RUN_ABORT, one round trip of at most timeout_ms).  shutdown: the
//  gateway is stopping (the session records the run as interrupted).
void
run_call_abort (run_call_t *c, bool shutdown, int timeout_ms);

//  Records an error the caller decided on (it gave up, it is stopping)
//  and returns RUN_EV_ERROR.
run_ev_t
run_call_fail (run_call_t *c, int status, const char *code, const char *message);

//  Packs the body of SESSION_ABORT / RUN_ABORT: {runId[, reason:
//  "shutdown"]}.
void
run_call_pack_abort (mp_writer_t *w, const char *run_id, bool shutdown);

//  True if an event of that type ("chat.done", "chat.error") ends a run.
bool
run_event_ends (const char *type);

#endif
