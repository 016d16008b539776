/*  =========================================================================
    store - durable sessions, runs and transcripts behind one small interface

    The session actor is the only caller.  A store_t is one connection to
    one backend, chosen by URL: "sqlite:PATH" (or a bare path) is the
    embedded default; "postgres://..." is reserved for the PostgreSQL
    backend a later issue adds behind the same functions.  The interface
    speaks in sessions, runs and messages, never in SQL, so a backend is a
    new file, chosen by store_open from the URL, not a change to the actor.
    Today store_open (store_sqlite_open.c) implements SQLite itself and
    refuses "postgres://" URLs; there is no table of backends yet.

    Threads: a store_t is used by one thread at a time (the actor's own).
    Several processes may open the same SQLite file (WAL mode); writes are
    serialised by SQLite's lock with a busy timeout.

    Lifetimes: strings in the structs handed to callbacks and filled by
    store_session_get/open are lent; they stay valid until the next call on
    the same store_t.  Copy what must outlive that.

    Positions: messages of a session are ordered by `pos`, which is
    run_seq * STORE_POS_RUN + index within the run (0 the user message,
    1 the reply, then tool messages).  A run's reply therefore sorts right
    after its own user message even when later runs' user messages were
    committed before it (they queue while it runs).  A run has no row of
    its own: its user message carries its status ('open' until it ends);
    the `runs` view shows them as a table.
    =========================================================================
*/
#ifndef CG_STORE_H
#define CG_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STORE_POS_RUN 65536  //  Positions per run

typedef struct store_t store_t;

typedef struct {
    int64_t id;             //  Backend row id
    const char *key;        //  sessionKey
    const char *agent_id;   //  Agent of the first run
    const char *channel;    //  "api", "openai", a channel id, ...
    int64_t created_at;     //  Unix ms
    int64_t updated_at;     //  Unix ms of the last message
    int64_t message_count;  //  Messages stored
    int64_t last_seq;       //  Last event seq published for it
    int64_t next_run;       //  run_seq the next run gets
} store_session_t;

typedef struct {
    int64_t pos;          //  Order in the session (see above)
    const char *role;     //  user | assistant | tool | system
    const char *content;  //  Text (may be empty, never NULL)
    size_t content_len;
    const char *run_id;  //  Run it belongs to
    int64_t created_at;  //  Unix ms
    //  Replies only (NULL / 0 otherwise).
    const char *model;          //  Model that answered
    const char *finish_reason;  //  stop|length|tool_calls|aborted|
                                //  timeout|error|interrupted
    int64_t prompt_tokens;
    int64_t completion_tokens;
    const char *tool_calls;    //  OpenAI tool_calls as JSON text
    const char *tool_call_id;  //  Tool messages: the call answered
    const char *error;         //  Failed runs: {code,message} JSON
} store_message_t;

//  Filters and cursor of store_session_list.  NULL filters match all.
typedef struct {
    const char *channel;
    const char *agent_id;
    bool after;  //  Resume after (updated_at, id) below
    int64_t after_updated;
    int64_t after_id;
    int limit;  //  Rows wanted (1..)
} store_query_t;

//  Callbacks return 0 to go on, non-zero to stop early.
typedef int (store_session_fn) (void *arg, const store_session_t *session);
typedef int (store_message_fn) (void *arg, const store_message_t *message);

//  Opens (creating and migrating as needed) the store at url, as the one
//  writer: WAL checkpoints then run on a thread of the store's own, not in
//  commits.  Returns the store (caller owns, store_close) or NULL with a
//  sentence in err.
store_t *
store_open (const char *url, char *err, size_t errlen);

//  Opens a second connection for reads only (session lists and gets on
//  other threads).  Does not migrate: the writer (store_open) must have.
//  Only the store_session_get/list and store_messages/context calls may be
//  used on it.  Caller owns the return value (store_close).
store_t *
store_open_reader (const char *url, char *err, size_t errlen);

//  Closes the store and sets *self_p to NULL; NULL is fine.
void
store_close (store_t **self_p);

//  Schema version the store is at (for tests and /status).
int
store_schema_version (store_t *self);

//  Opens one write transaction that the store_* calls that follow join,
//  until store_batch_commit: several steps then cost one commit, and
//  reads inside see the batch's own writes.  Batches do not nest.  Returns
//  0 or -1 (no batch is open then).
int
store_batch_begin (store_t *self);

//  Commits the batch, or rolls it back whole if a call inside it failed.
//  Returns 0 when committed, -1 when rolled back.
int
store_batch_commit (store_t *self);

//  Rolls the batch back whole.
void
store_batch_abort (store_t *self);

//  Finds the session key, creating it with agent_id and channel if absent
//  (those two are kept from creation).  Fills *out.  Returns 0 or -1.
int
store_session_open (store_t *self, const char *key, const char *agent_id,
                    const char *channel, int64_t now, store_session_t *out);

//  Fills *out with the session key.  Returns 0, 1 if there is none, -1 on
//  error.
int
store_session_get (store_t *self, const char *key, store_session_t *out);

//  Calls fn for sessions matching q, newest updated first (ties: newest
//  id first).  Returns the number of rows visited, or -1 on error.
int
store_session_list (store_t *self, const store_query_t *q, store_session_fn *fn,
                    void *arg);

//  Deletes the session with its runs and messages.  Returns 0, 1 if there
//  was none, -1 on error.
int
store_session_delete (store_t *self, const char *key);

//  Records a run's arrival in one transaction: its user message at pos
//  run_seq * STORE_POS_RUN, marked open (a run is its user message, see
//  above), and the session's counters (next_run = run_seq + 1,
//  message_count).  updated_at moves when the run ends.  Returns 0 or -1.
int
store_run_begin (store_t *self, int64_t session_id, const char *run_id, int64_t run_seq,
                 const store_message_t *user, int64_t now);

//  Records the end of run run_seq of session_id in one transaction: its
//  tool rounds (n_steps messages: assistant turns with tool_calls and tool
//  results, may be 0), its reply (reply->finish_reason says how it ended;
//  it becomes the run's status), whether the exchange counts as context
//  for later runs, and the session's last_seq/updated_at.  A run whose
//  session was deleted meanwhile, or that ended already, is ignored.
//  Returns 0 or -1.
int
store_run_end (store_t *self, int64_t session_id, int64_t run_seq,
               const store_message_t *steps, size_t n_steps, const store_message_t *reply,
               int64_t last_seq, int64_t now);

//  Marks every run still open as interrupted (crash or shutdown mid-run),
//  each with an empty reply whose finish_reason is "interrupted".  Returns
//  how many, or -1 on error.
int
store_recover (store_t *self, int64_t now);

//  Calls fn for the session's messages with pos > after, oldest first, at
//  most limit.  Returns rows visited or -1.
int
store_messages (store_t *self, int64_t session_id, int64_t after, int limit,
                store_message_fn *fn, void *arg);

//  Calls fn for the session's context messages (exchanges of runs that
//  ended with output), NEWEST first, at most limit; the caller stops early
//  (non-zero from fn) once its character budget is spent.  Returns rows
//  visited or -1.
int
store_context (store_t *self, int64_t session_id, int limit, store_message_fn *fn,
               void *arg);

#endif
