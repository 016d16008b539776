/*  =========================================================================
    store_sqlite - the embedded store: one SQLite file in WAL mode

    Durability: WAL with synchronous=NORMAL.  A committed transaction is in
    the WAL file before COMMIT returns, so it survives the process being
    killed (kill -9, a crash); on power loss the last few commits may be
    lost, which is SQLite's documented trade for NORMAL.  Set the URL
    parameter ?sync=full for power-loss durability at the cost of an fsync
    per commit.

    Schema: versioned in schema_version, upgraded at open by the migrations
    of store_sqlite_open.c, each in its own transaction.  The SQL sticks to
    what SQLite and PostgreSQL both accept (BIGINT, ON CONFLICT DO NOTHING,
    CASE instead of MAX(a, b)), so the PostgreSQL backend can reuse most of
    it with $n placeholders.  Not the message ids: a message's rowid places
    it next to its session's others (session id * 2^24 + its number; above
    2^62 when that number is taken or past 2^24), which a PostgreSQL backend
    would leave to its own clustering.  Statements are prepared once per
    connection.
    =========================================================================
*/
#include "store_sqlite_internal.h"
#include "store_vfs.h"

#include "log.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <time.h>
#include <sqlite3.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

const char *const store_sqlite_sql[Q_COUNT] = {
    [Q_BEGIN] = "BEGIN IMMEDIATE",
    [Q_COMMIT] = "COMMIT",
    [Q_ROLLBACK] = "ROLLBACK",
    [Q_SESSION_INSERT] =
        "INSERT INTO sessions (session_key, agent_id, channel, created_at, "
        "updated_at) VALUES (?, ?, ?, ?, ?) ON CONFLICT (session_key) DO NOTHING",
    [Q_SESSION_GET] = "SELECT " S_SESSION_COLS " FROM sessions WHERE session_key = ?",
    [Q_SESSION_DELETE] = "DELETE FROM sessions WHERE id = ?",
    [Q_SESSION_MESSAGES_DELETE] = "DELETE FROM messages WHERE session_id = ?",
    [Q_SESSION_BUMP] =
        "UPDATE sessions SET next_run = ?, message_count = message_count + 1, "
        "open_runs = open_runs + 1 WHERE id = ?",
    [Q_SESSION_END] =
        "UPDATE sessions SET message_count = message_count + 1 + ?, updated_at = ?, "
        "open_runs = open_runs - 1, "
        "last_seq = CASE WHEN last_seq > ? THEN last_seq ELSE ? END WHERE id = ?",
    //  A lookup by rowid: a seek whatever the planner's statistics say
    //  (UPDATE ... RETURNING cost 10 us more per run).
    [Q_SESSION_COUNT] = "SELECT message_count FROM sessions WHERE id = ?",
    [Q_RUN_CLOSE] =
        "UPDATE messages SET run_status = ?, in_context = ? WHERE session_id = ? "
        "AND pos = ? AND run_status = 'open'",
    [Q_RUNS_OPEN] = "SELECT m.session_id, m.pos, m.run_id FROM sessions s CROSS JOIN "
                    "messages m ON m.session_id = s.id WHERE s.open_runs > 0 AND "
                    "m.run_status = 'open'",
    [Q_MESSAGE_INSERT] =
        "INSERT INTO messages (id, session_id, pos, role, content, run_id, "
        "created_at, model, finish_reason, prompt_tokens, completion_tokens, "
        "tool_calls, tool_call_id, error, in_context, run_status) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [Q_MESSAGES] = "SELECT " S_MESSAGE_COLS " FROM messages WHERE session_id = ? "
                   "AND pos > ? ORDER BY pos LIMIT ?",
    [Q_CONTEXT] = "SELECT " S_MESSAGE_COLS " FROM messages WHERE session_id = ? "
                  "AND in_context = 1 ORDER BY pos DESC LIMIT ?",
};

//  ---- Helpers ---------------------------------------------------------------------

static int
s_fail (store_t *self, const char *what)
{
    log_error ("store", "%s: %s", what, sqlite3_errmsg (self->db));
    return -1;
}

//  Resets st for reuse (its bindings are rebound by each caller).
static sqlite3_stmt *
s_stmt (store_t *self, int which)
{
    sqlite3_stmt *st = self->q[which];
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    return st;
}

//  Runs a statement that returns no rows and resets it.  0, or -1 logged
//  as what.
static int
s_step_done (store_t *self, sqlite3_stmt *st, const char *what)
{
    int rc = sqlite3_step (st);
    sqlite3_reset (st);
    return rc == SQLITE_DONE ? 0 : s_fail (self, what);
}

static int
s_exec_one (store_t *self, int which)
{
    return s_step_done (self, s_stmt (self, which), store_sqlite_sql[which]);
}

static int
s_begin_now (store_t *self)
{
    //  SQLite's write lock is not fair: a writer that commits back to back
    //  takes it again before the checkpointer's RESTART ever gets it.  So
    //  the writer steps aside while a RESTART runs (it holds the writer
    //  off anyway); the wait is bounded by the RESTART's own lock budget.
    if (self->ckpt_running && atomic_load (&self->ckpt_restarting)) {
        pthread_mutex_lock (&self->ckpt_lock);
        while (atomic_load (&self->ckpt_restarting) && !self->ckpt_stop)
            pthread_cond_wait (&self->ckpt_done, &self->ckpt_lock);
        pthread_mutex_unlock (&self->ckpt_lock);
    }
    return s_exec_one (self, Q_BEGIN);
}

//  Inside a batch (store_batch_begin) the store_* calls join its
//  transaction: their begin and commit do nothing, and their rollback
//  dooms the batch, which store_batch_commit then rolls back.
static int
s_begin (store_t *self)
{
    return self->batch ? 0 : s_begin_now (self);
}

static int
s_commit (store_t *self)
{
    return self->batch ? 0 : s_exec_one (self, Q_COMMIT);
}

static int
s_rollback (store_t *self)
{
    if (self->batch) {
        self->batch_failed = true;
        return 0;
    }
    return s_exec_one (self, Q_ROLLBACK);
}

//  Ends the transaction a store_* call began: commits it if ok, else (or
//  if the commit fails) rolls it back.  0, or -1.
static int
s_end (store_t *self, bool ok)
{
    if (ok && s_commit (self) == 0)
        return 0;
    s_rollback (self);
    return -1;
}

int
store_batch_begin (store_t *self)
{
    assert (!self->batch);
    if (s_begin_now (self))
        return -1;
    self->batch = true;
    self->batch_failed = false;
    return 0;
}

int
store_batch_commit (store_t *self)
{
    assert (self->batch);
    self->batch = false;
    if (!self->batch_failed && s_exec_one (self, Q_COMMIT) == 0)
        return 0;
    s_exec_one (self, Q_ROLLBACK);
    return -1;
}

void
store_batch_abort (store_t *self)
{
    assert (self->batch);
    self->batch = false;
    s_exec_one (self, Q_ROLLBACK);
}

static void
s_bind_text (sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text (st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (st, i);
}

static const char *
s_col_text (sqlite3_stmt *st, int i)
{
    return (const char *) sqlite3_column_text (st, i);
}

//  Where a column of a row goes: a field of the struct read into, either
//  const char * (text, lent until the statement moves on) or int64_t.
typedef struct {
    size_t offset;  //  Of the field
    bool text;      //  const char * field (else int64_t)
} s_column_t;

// clang-format off
#define S_INT(type, field)  {offsetof (type, field), false}
#define S_TEXT(type, field) {offsetof (type, field), true}
// clang-format on

//  S_SESSION_COLS, in its order.
static const s_column_t s_session_columns[] = {S_INT (store_session_t, id),
                                               S_TEXT (store_session_t, key),
                                               S_TEXT (store_session_t, agent_id),
                                               S_TEXT (store_session_t, channel),
                                               S_INT (store_session_t, created_at),
                                               S_INT (store_session_t, updated_at),
                                               S_INT (store_session_t, message_count),
                                               S_INT (store_session_t, last_seq),
                                               S_INT (store_session_t, next_run)};

//  S_MESSAGE_COLS, in its order.
static const s_column_t s_message_columns[] = {S_INT (store_message_t, pos),
                                               S_TEXT (store_message_t, role),
                                               S_TEXT (store_message_t, content),
                                               S_TEXT (store_message_t, run_id),
                                               S_INT (store_message_t, created_at),
                                               S_TEXT (store_message_t, model),
                                               S_TEXT (store_message_t, finish_reason),
                                               S_INT (store_message_t, prompt_tokens),
                                               S_INT (store_message_t, completion_tokens),
                                               S_TEXT (store_message_t, tool_calls),
                                               S_TEXT (store_message_t, tool_call_id),
                                               S_TEXT (store_message_t, error)};

//  Reads st's row into out, column i into the field columns[i] names.
static void
s_read_columns (sqlite3_stmt *st, void *out, const s_column_t *columns, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char *field = (char *) out + columns[i].offset;
        if (columns[i].text)
            *(const char **) field = s_col_text (st, (int) i);
        else
            *(int64_t *) field = sqlite3_column_int64 (st, (int) i);
    }
}

static void
s_read_session (sqlite3_stmt *st, store_session_t *out)
{
    s_read_columns (st, out, s_session_columns,
                    sizeof (s_session_columns) / sizeof (s_session_columns[0]));
}

static void
s_read_message (sqlite3_stmt *st, store_message_t *m)
{
    memset (m, 0, sizeof (*m));
    s_read_columns (st, m, s_message_columns,
                    sizeof (s_message_columns) / sizeof (s_message_columns[0]));
    //  The text's length in bytes, asked after sqlite3_column_text (as
    //  SQLite advises).
    m->content_len = (size_t) sqlite3_column_bytes (st, 2);
    if (!m->content)
        m->content = "";
}

//  The caller's callback for a walk over rows: a session's or a message's.
typedef struct {
    store_session_fn *session;  //  For sessions, or NULL
    store_message_fn *message;  //  For messages, or NULL
    void *arg;                  //  Its argument
} s_visit_t;

static int
s_session_row (sqlite3_stmt *st, const s_visit_t *to)
{
    store_session_t s;
    s_read_session (st, &s);
    return to->session (to->arg, &s);
}

static int
s_message_row (sqlite3_stmt *st, const s_visit_t *to)
{
    store_message_t m;
    s_read_message (st, &m);
    return to->message (to->arg, &m);
}

//  Steps st through its rows, handing each to row until it returns
//  nonzero, then resets st.  The rows handed, or -1 logged as what.
static int
s_each_row (store_t *self, sqlite3_stmt *st,
            int (*row) (sqlite3_stmt *st, const s_visit_t *to), const s_visit_t *to,
            const char *what)
{
    int n = 0, rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        n++;
        if (row (st, to))
            break;
    }
    bool failed = rc != SQLITE_ROW && rc != SQLITE_DONE;
    sqlite3_reset (st);
    return failed ? s_fail (self, what) : n;
}

//  A message's rowid: its session's id * 2^24 + its number in the session
//  (number = the session's message_count before it), so that a session's
//  messages share pages.  Session ranges end below 2^62; 0 past either
//  range (the message then goes above 2^62, s_overflow_id).
#define S_MSG_BITS 24
#define S_OVERFLOW_ID (INT64_C (1) << 62)
static int64_t
s_message_id (int64_t session_id, int64_t number)
{
    if (session_id <= 0 || session_id >= (INT64_C (1) << (62 - S_MSG_BITS)) || number < 0
        || number >= (INT64_C (1) << S_MSG_BITS))
        return 0;
    return (session_id << S_MSG_BITS) + number;
}

//  A free rowid above every session's range, for a message whose own is
//  out of range or taken: never in another session's range, where it
//  would take a number that session will want.  0 (SQLite picks) if none.
static int64_t
s_overflow_id (store_t *self)
{
    sqlite3_stmt *st = NULL;
    int64_t top = 0;
    if (sqlite3_prepare_v2 (self->db, "SELECT max (id) FROM messages", -1, &st, NULL)
            == SQLITE_OK
        && sqlite3_step (st) == SQLITE_ROW)
        top = sqlite3_column_int64 (st, 0);
    sqlite3_finalize (st);
    if (top < S_OVERFLOW_ID)
        return S_OVERFLOW_ID;
    return top < INT64_MAX ? top + 1 : 0;
}

//  Inserts m into the session at pos, as rowid id (0: out of range).  A
//  count that drifted from the rows (a file edited by hand, say) can name
//  a taken rowid: the message then goes above every session's range.
static int
s_insert_message (store_t *self, int64_t id, int64_t session_id, int64_t pos,
                  const store_message_t *m, bool in_context, const char *run_status)
{
    sqlite3_stmt *st = s_stmt (self, Q_MESSAGE_INSERT);
    bool own = id > 0;
    if (!own)
        id = s_overflow_id (self);
    if (id > 0)
        sqlite3_bind_int64 (st, 1, id);
    else
        sqlite3_bind_null (st, 1);
    sqlite3_bind_int64 (st, 2, session_id);
    sqlite3_bind_int64 (st, 3, pos);
    s_bind_text (st, 4, m->role);
    sqlite3_bind_text (st, 5, m->content ? m->content : "",
                       m->content ? (int) m->content_len : 0, SQLITE_STATIC);
    s_bind_text (st, 6, m->run_id);
    sqlite3_bind_int64 (st, 7, m->created_at);
    s_bind_text (st, 8, m->model);
    s_bind_text (st, 9, m->finish_reason);
    sqlite3_bind_int64 (st, 10, m->prompt_tokens);
    sqlite3_bind_int64 (st, 11, m->completion_tokens);
    s_bind_text (st, 12, m->tool_calls);
    s_bind_text (st, 13, m->tool_call_id);
    s_bind_text (st, 14, m->error);
    sqlite3_bind_int (st, 15, in_context);
    s_bind_text (st, 16, run_status);
    int rc = sqlite3_step (st);
    sqlite3_reset (st);
    if (rc == SQLITE_CONSTRAINT && own
        && sqlite3_extended_errcode (self->db) == SQLITE_CONSTRAINT_PRIMARYKEY) {
        log_warn ("store",
                  "%s: message id %lld of session %lld is taken (its "
                  "message count is off); placed elsewhere",
                  self->path, (long long) id, (long long) session_id);
        id = s_overflow_id (self);
        if (id > 0)
            sqlite3_bind_int64 (st, 1, id);
        else
            sqlite3_bind_null (st, 1);
        rc = sqlite3_step (st);
        sqlite3_reset (st);
    }
    sqlite3_clear_bindings (st);
    return rc == SQLITE_DONE ? 0 : s_fail (self, "insert message");
}

//  Runs st, an UPDATE of one session row, then reads the session's
//  message count: the count after it, or -1 (logged as what; no row, a
//  session deleted meanwhile, is -1 too).
static int64_t
s_update_count (store_t *self, sqlite3_stmt *st, int64_t session_id, const char *what)
{
    if (s_step_done (self, st, what))
        return -1;
    sqlite3_stmt *q = s_stmt (self, Q_SESSION_COUNT);
    sqlite3_bind_int64 (q, 1, session_id);
    int rc = sqlite3_step (q);
    int64_t count = rc == SQLITE_ROW ? sqlite3_column_int64 (q, 0) : -1;
    sqlite3_reset (q);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        s_fail (self, what);
    return count;
}

//  ---- Sessions ------------------------------------------------------------------------------

int
store_session_get (store_t *self, const char *key, store_session_t *out)
{
    sqlite3_stmt *st = s_stmt (self, Q_SESSION_GET);
    s_bind_text (st, 1, key);
    int rc = sqlite3_step (st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset (st);
        return rc == SQLITE_DONE ? 1 : s_fail (self, "get session");
    }
    //  The strings are copied into the store's row buffer and the statement
    //  reset at once: an active statement is an open read transaction, and
    //  one left open (on an idle reader, or after a refused run) pins the
    //  WAL, which then cannot restart (see s_checkpointer in store_sqlite_open.c).
    s_read_session (st, out);
    const char *text[3] = {out->key ? out->key : "", out->agent_id ? out->agent_id : "",
                           out->channel ? out->channel : ""};
    size_t len[3], need = 0;
    for (int i = 0; i < 3; i++)
        need += (len[i] = strlen (text[i])) + 1;
    if (need > self->row_cap) {
        char *row = (char *) realloc (self->row, need);
        if (!row) {
            sqlite3_reset (st);
            return s_fail (self, "get session (out of memory)");
        }
        self->row = row;
        self->row_cap = need;
    }
    char *at = self->row;
    const char **dest[3] = {&out->key, &out->agent_id, &out->channel};
    for (int i = 0; i < 3; i++) {
        memcpy (at, text[i], len[i] + 1);
        *dest[i] = at;
        at += len[i] + 1;
    }
    sqlite3_reset (st);
    return 0;
}

//  The updated_at to write for an update at now: strictly later than the
//  last one this store wrote, so sessions updated in the same millisecond
//  still list in the order of their updates (newest first).
static int64_t
s_stamp (store_t *self, int64_t now)
{
    self->last_stamp = now > self->last_stamp ? now : self->last_stamp + 1;
    return self->last_stamp;
}

int
store_session_open (store_t *self, const char *key, const char *agent_id,
                    const char *channel, int64_t now, store_session_t *out)
{
    int rc = store_session_get (self, key, out);
    if (rc <= 0)
        return rc;
    sqlite3_stmt *st = s_stmt (self, Q_SESSION_INSERT);
    s_bind_text (st, 1, key);
    s_bind_text (st, 2, agent_id);
    s_bind_text (st, 3, channel);
    sqlite3_bind_int64 (st, 4, now);
    sqlite3_bind_int64 (st, 5, s_stamp (self, now));
    if (s_step_done (self, st, "create session"))
        return -1;
    return store_session_get (self, key, out) == 0 ? 0 : -1;
}

int
store_session_list (store_t *self, const store_query_t *q, store_session_fn *fn,
                    void *arg)
{
    int variant = (q->channel ? 1 : 0) | (q->agent_id ? 2 : 0) | (q->after ? 4 : 0);
    sqlite3_stmt *st = self->list[variant];
    if (!st) {
        char sql[512];
        snprintf (sql, sizeof (sql),
                  "SELECT " S_SESSION_COLS " FROM sessions WHERE 1 = 1%s%s%s "
                  "ORDER BY updated_at DESC, id DESC LIMIT ?",
                  q->channel ? " AND channel = ?" : "",
                  q->agent_id ? " AND agent_id = ?" : "",
                  q->after ? " AND (updated_at, id) < (?, ?)" : "");
        if (sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, NULL)
            != SQLITE_OK)
            return s_fail (self, "prepare session list");
        self->list[variant] = st;
    }
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    int i = 1;
    if (q->channel)
        s_bind_text (st, i++, q->channel);
    if (q->agent_id)
        s_bind_text (st, i++, q->agent_id);
    if (q->after) {
        //  A row value: SQLite (and PostgreSQL) seek the index to it.
        sqlite3_bind_int64 (st, i++, q->after_updated);
        sqlite3_bind_int64 (st, i++, q->after_id);
    }
    sqlite3_bind_int (st, i, q->limit);
    s_visit_t to = {.session = fn, .arg = arg};
    return s_each_row (self, st, s_session_row, &to, "list sessions");
}

int
store_session_delete (store_t *self, const char *key)
{
    store_session_t s;
    if (s_begin (self))
        return -1;
    int rc = store_session_get (self, key, &s);
    if (rc) {
        //  Nothing written: end our transaction, but a batch's "not
        //  found" is no failure of the batch.
        if (rc < 0 || !self->batch)
            s_rollback (self);
        return rc;
    }
    int64_t id = s.id;
    sqlite3_reset (self->q[Q_SESSION_GET]);
    static const int order[] = {Q_SESSION_MESSAGES_DELETE, Q_SESSION_DELETE};
    for (size_t i = 0; i < sizeof (order) / sizeof (order[0]); i++) {
        sqlite3_stmt *st = s_stmt (self, order[i]);
        sqlite3_bind_int64 (st, 1, id);
        if (s_step_done (self, st, "delete session"))
            return s_end (self, false);
    }
    return s_end (self, true);
}

//  ---- Runs ------------------------------------------------------------------------------------

int
store_run_begin (store_t *self, int64_t session_id, const char *run_id, int64_t run_seq,
                 const store_message_t *user, int64_t now)
{
    if (s_begin (self))
        return -1;
    store_message_t m = *user;
    m.run_id = run_id;
    //  Not updated_at: its three indexes would cost three more WAL pages;
    //  a session counts as updated when a run ends (store.h).
    sqlite3_stmt *st = s_stmt (self, Q_SESSION_BUMP);
    sqlite3_bind_int64 (st, 1, run_seq + 1);
    sqlite3_bind_int64 (st, 2, session_id);
    int64_t count = s_update_count (self, st, session_id, "bump session");
    bool ok = count >= 1
              && s_insert_message (self, s_message_id (session_id, count - 1), session_id,
                                   run_seq * STORE_POS_RUN, &m, false, "open")
                     == 0;
    return s_end (self, ok);
}

//  Whether an ended run's exchange is sent to the model with later runs:
//  finished answers are; cut-off answers only if some text came; failed
//  and interrupted runs are not (they are kept in the transcript).
static bool
s_counts_as_context (const store_message_t *reply)
{
    const char *f = reply->finish_reason ? reply->finish_reason : "";
    if (!strcmp (f, "stop") || !strcmp (f, "length") || !strcmp (f, "tool_calls"))
        return true;
    if (!strcmp (f, "aborted") || !strcmp (f, "timeout"))
        return reply->content_len > 0;
    return false;
}

int
store_run_end (store_t *self, int64_t session_id, int64_t run_seq,
               const store_message_t *steps, size_t n_steps, const store_message_t *reply,
               int64_t last_seq, int64_t now)
{
    if (s_begin (self))
        return -1;
    bool ctx = s_counts_as_context (reply);
    const char *finish = reply->finish_reason ? reply->finish_reason : "error";
    sqlite3_stmt *st = s_stmt (self, Q_RUN_CLOSE);
    s_bind_text (st, 1, finish);
    sqlite3_bind_int (st, 2, ctx);
    sqlite3_bind_int64 (st, 3, session_id);
    sqlite3_bind_int64 (st, 4, run_seq * STORE_POS_RUN);
    if (s_step_done (self, st, "close run"))
        return s_end (self, false);
    if (sqlite3_changes (self->db) == 0) {
        //  Session deleted meanwhile, or ended already: nothing to record.
        s_commit (self);
        return 0;
    }
    //  Tool rounds first, then the reply: positions +1 .. +n, +n+1.  The
    //  rounds are not context (a tool message without the call that asked
    //  for it is not a valid conversation for a model).
    if (n_steps > STORE_POS_RUN - 2)
        n_steps = STORE_POS_RUN - 2;
    st = s_stmt (self, Q_SESSION_END);
    sqlite3_bind_int64 (st, 1, (int64_t) n_steps);
    sqlite3_bind_int64 (st, 2, s_stamp (self, now));
    sqlite3_bind_int64 (st, 3, last_seq);
    sqlite3_bind_int64 (st, 4, last_seq);
    sqlite3_bind_int64 (st, 5, session_id);
    int64_t count = s_update_count (self, st, session_id, "end session run");
    //  The count now includes this run's steps and reply: they are numbers
    //  count - n_steps - 1 .. count - 1, the reply last.
    int64_t number = count - (int64_t) n_steps - 1;
    bool ok = count >= 0;
    for (size_t i = 0; ok && i <= n_steps; i++)
        ok = s_insert_message (self, s_message_id (session_id, number + (int64_t) i),
                               session_id, run_seq * STORE_POS_RUN + 1 + (int64_t) i,
                               i < n_steps ? &steps[i] : reply, i < n_steps ? false : ctx,
                               NULL)
             == 0;
    return s_end (self, ok);
}

int
store_recover (store_t *self, int64_t now)
{
    //  Collect first: store_run_end resets the statements we would iterate.
    typedef struct {
        int64_t session_id, run_seq;
        char run_id[80];
    } open_t;
    open_t *open = NULL;
    size_t n = 0, cap = 0;
    sqlite3_stmt *st = s_stmt (self, Q_RUNS_OPEN);
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            open_t *grown = (open_t *) realloc (open, cap * sizeof (open_t));
            if (!grown)
                break;
            open = grown;
        }
        open[n].session_id = sqlite3_column_int64 (st, 0);
        open[n].run_seq = sqlite3_column_int64 (st, 1) / STORE_POS_RUN;
        const char *id = s_col_text (st, 2);
        snprintf (open[n].run_id, sizeof (open[n].run_id), "%s", id ? id : "");
        n++;
    }
    sqlite3_reset (st);
    int done = 0;
    for (size_t i = 0; i < n; i++) {
        store_message_t reply = {.role = "assistant",
                                 .content = "",
                                 .run_id = open[i].run_id[0] ? open[i].run_id : NULL,
                                 .created_at = now,
                                 .finish_reason = "interrupted",
                                 .error = "{\"code\":\"service_unavailable\","
                                          "\"message\":\"The gateway stopped "
                                          "during the run\"}"};
        if (store_run_end (self, open[i].session_id, open[i].run_seq, NULL, 0, &reply, 0,
                           now)
            == 0)
            done++;
    }
    free (open);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? done : s_fail (self, "recover");
}

//  ---- Messages ----------------------------------------------------------------------------------

static int
s_each_message (store_t *self, sqlite3_stmt *st, store_message_fn *fn, void *arg)
{
    s_visit_t to = {.message = fn, .arg = arg};
    return s_each_row (self, st, s_message_row, &to, "read messages");
}

int
store_messages (store_t *self, int64_t session_id, int64_t after, int limit,
                store_message_fn *fn, void *arg)
{
    sqlite3_stmt *st = s_stmt (self, Q_MESSAGES);
    sqlite3_bind_int64 (st, 1, session_id);
    sqlite3_bind_int64 (st, 2, after);
    sqlite3_bind_int (st, 3, limit);
    return s_each_message (self, st, fn, arg);
}

int
store_context (store_t *self, int64_t session_id, int limit, store_message_fn *fn,
               void *arg)
{
    sqlite3_stmt *st = s_stmt (self, Q_CONTEXT);
    sqlite3_bind_int64 (st, 1, session_id);
    sqlite3_bind_int (st, 2, limit);
    return s_each_message (self, st, fn, arg);
}
