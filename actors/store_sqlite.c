/*  =========================================================================
    store_sqlite - the embedded store: one SQLite file in WAL mode

    Durability: WAL with synchronous=NORMAL.  A committed transaction is in
    the WAL file before COMMIT returns, so it survives the process being
    killed (kill -9, a crash); on power loss the last few commits may be
    lost, which is SQLite's documented trade for NORMAL.  Set the URL
    parameter ?sync=full for power-loss durability at the cost of an fsync
    per commit.

    Schema: versioned in schema_version, upgraded at open by the migrations
    below, each in its own transaction.  The SQL sticks to what SQLite and
    PostgreSQL both accept (BIGINT, ON CONFLICT DO NOTHING, CASE instead of
    MAX(a, b)), so the PostgreSQL backend can reuse most of it with $n
    placeholders.  Not the message ids: a message's rowid places it next to
    its session's others (session id * 2^24 + its number; above 2^62 when
    that number is taken or past 2^24), which a PostgreSQL backend would
    leave to its own clustering.  Statements are prepared once per
    connection.
    =========================================================================
*/
#include "store.h"
#include "store_vfs.h"

#include "log.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <pthread.h>
#include <time.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  Each migration moves the schema from version i to i + 1.
static const char *const s_migrations[] = {
    //  1: sessions, runs, messages.
    "CREATE TABLE sessions ("
    " id INTEGER PRIMARY KEY,"
    " session_key TEXT NOT NULL UNIQUE,"
    " agent_id TEXT NOT NULL,"
    " channel TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL,"
    " message_count BIGINT NOT NULL DEFAULT 0,"
    " last_seq BIGINT NOT NULL DEFAULT 0,"
    " next_run BIGINT NOT NULL DEFAULT 0);"
    "CREATE INDEX sessions_by_update ON sessions (updated_at, id);"
    "CREATE INDEX sessions_by_channel ON sessions (channel, updated_at, id);"
    "CREATE INDEX sessions_by_agent ON sessions (agent_id, updated_at, id);"
    "CREATE TABLE runs ("
    " run_id TEXT PRIMARY KEY,"
    " session_id BIGINT NOT NULL,"
    " run_seq BIGINT NOT NULL,"
    " status TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " ended_at BIGINT);"
    "CREATE INDEX runs_by_session ON runs (session_id);"
    "CREATE INDEX runs_open ON runs (status) WHERE status = 'open';"
    "CREATE TABLE messages ("
    " id INTEGER PRIMARY KEY,"
    " session_id BIGINT NOT NULL,"
    " pos BIGINT NOT NULL,"
    " role TEXT NOT NULL,"
    " content TEXT NOT NULL,"
    " run_id TEXT,"
    " created_at BIGINT NOT NULL,"
    " model TEXT,"
    " finish_reason TEXT,"
    " prompt_tokens BIGINT,"
    " completion_tokens BIGINT,"
    " tool_calls TEXT,"
    " tool_call_id TEXT,"
    " error TEXT,"
    " in_context INTEGER NOT NULL DEFAULT 0,"
    " UNIQUE (session_id, pos));",
    //  2: a run is its user message (run_status), not a row of a table of
    //  its own: each index a commit touches costs a WAL page, about 12 us
    //  here, and runs are the write path.  Session ids are never reused (a
    //  late end of a deleted session's run must not land in a new one).
    "CREATE TABLE sessions2 ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT,"
    " session_key TEXT NOT NULL UNIQUE,"
    " agent_id TEXT NOT NULL,"
    " channel TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL,"
    " message_count BIGINT NOT NULL DEFAULT 0,"
    " last_seq BIGINT NOT NULL DEFAULT 0,"
    " next_run BIGINT NOT NULL DEFAULT 0);"
    "INSERT INTO sessions2 SELECT id, session_key, agent_id, channel, created_at,"
    " updated_at, message_count, last_seq, next_run FROM sessions;"
    "DROP TABLE sessions;"
    "ALTER TABLE sessions2 RENAME TO sessions;"
    "CREATE INDEX sessions_by_update ON sessions (updated_at, id);"
    "CREATE INDEX sessions_by_channel ON sessions (channel, updated_at, id);"
    "CREATE INDEX sessions_by_agent ON sessions (agent_id, updated_at, id);"
    "ALTER TABLE messages ADD COLUMN run_status TEXT;"
    "UPDATE messages SET run_status = (SELECT r.status FROM runs r"
    " WHERE r.run_id = messages.run_id)"
    " WHERE role = 'user' AND pos % 65536 = 0;"
    "DROP TABLE runs;"
    "CREATE INDEX messages_open ON messages (run_status)"
    " WHERE run_status = 'open';"
    "CREATE VIEW runs AS SELECT run_id, session_id, pos / 65536 AS run_seq,"
    " run_status AS status, created_at FROM messages"
    " WHERE run_status IS NOT NULL;",
    //  3: messages clustered by session: a message's rowid is its session's
    //  id times 2^24 plus its number in the session, so a session's
    //  messages share a few pages instead of one page each wherever the
    //  file was when they were written.  Rows up to ~4 KB stay in the page.
    //  Open runs are counted in their session's row, which every run's
    //  commits write anyway, instead of in an index of their own, which
    //  cost two more WAL pages per run; recovery looks for them in the
    //  sessions that count some.
    "ALTER TABLE sessions ADD COLUMN open_runs BIGINT NOT NULL DEFAULT 0;"
    "UPDATE sessions SET open_runs = (SELECT count(*) FROM messages m"
    " WHERE m.session_id = sessions.id AND m.run_status = 'open')"
    " WHERE id IN (SELECT session_id FROM messages WHERE run_status = 'open');"
    "DROP VIEW runs;"
    "CREATE TABLE messages2 ("
    " id INTEGER PRIMARY KEY,"
    " session_id BIGINT NOT NULL,"
    " pos BIGINT NOT NULL,"
    " role TEXT NOT NULL,"
    " content TEXT NOT NULL,"
    " run_id TEXT,"
    " created_at BIGINT NOT NULL,"
    " model TEXT,"
    " finish_reason TEXT,"
    " prompt_tokens BIGINT,"
    " completion_tokens BIGINT,"
    " tool_calls TEXT,"
    " tool_call_id TEXT,"
    " error TEXT,"
    " in_context INTEGER NOT NULL DEFAULT 0,"
    " run_status TEXT,"
    " UNIQUE (session_id, pos));"
    "INSERT INTO messages2 SELECT session_id * 16777216 + row_number() OVER"
    " (PARTITION BY session_id ORDER BY pos) - 1, session_id, pos, role,"
    " content, run_id, created_at, model, finish_reason, prompt_tokens,"
    " completion_tokens, tool_calls, tool_call_id, error, in_context,"
    " run_status FROM messages ORDER BY session_id, pos;"
    "DROP TABLE messages;"
    "ALTER TABLE messages2 RENAME TO messages;"
    "CREATE VIEW runs AS SELECT run_id, session_id, pos / 65536 AS run_seq,"
    " run_status AS status, created_at FROM messages"
    " WHERE run_status IS NOT NULL;",
};
#define S_VERSION ((int) (sizeof (s_migrations) / sizeof (s_migrations[0])))

#define S_SESSION_COLS                                                        \
    "id, session_key, agent_id, channel, created_at, updated_at, "            \
    "message_count, last_seq, next_run"
#define S_MESSAGE_COLS                                                        \
    "pos, role, content, run_id, created_at, model, finish_reason, "          \
    "prompt_tokens, completion_tokens, tool_calls, tool_call_id, error"

enum {
    Q_BEGIN, Q_COMMIT, Q_ROLLBACK,
    Q_SESSION_INSERT, Q_SESSION_GET, Q_SESSION_DELETE,
    Q_SESSION_MESSAGES_DELETE, Q_SESSION_BUMP, Q_SESSION_END, Q_SESSION_COUNT,
    Q_RUN_CLOSE, Q_RUNS_OPEN,
    Q_MESSAGE_INSERT, Q_MESSAGES, Q_CONTEXT,
    Q_COUNT
};

static const char *const s_sql[Q_COUNT] = {
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
    [Q_RUNS_OPEN] =
        "SELECT m.session_id, m.pos, m.run_id FROM sessions s CROSS JOIN "
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

//  Session lists: one statement per filter combination (channel, agent,
//  cursor), so each can use its index.
#define S_LIST_VARIANTS 8

struct store_t {
    sqlite3 *db;                             //  The connection
    sqlite3_stmt *q[Q_COUNT];                //  Prepared statements
    sqlite3_stmt *list[S_LIST_VARIANTS];     //  Made on first use
    char path[4096];                         //  File, for logs
    //  The writer's checkpointer: WAL checkpoints fsync, so they run on a
    //  thread of their own (own connection) instead of inside a commit,
    //  where SQLite's auto-checkpoint would put a ~10 ms stall every 1000
    //  pages into some run's write path.
    pthread_t ckpt_thread;
    sqlite3 *ckpt_db;                //  The checkpointer's own connection
    pthread_mutex_t ckpt_lock;
    pthread_cond_t ckpt_cond;
    pthread_cond_t ckpt_done;        //  A RESTART ended (ckpt_restarting)
    bool ckpt_running, ckpt_stop;
    bool ckpt_wanted;                //  The writer added S_WAL_COPY_FRAMES
    _Atomic bool ckpt_restarting;    //  A RESTART runs: the writer waits
    int hook_frames;                 //  WAL length at the last wake (writer's)
    char *row;                       //  store_session_get's strings (lent)
    size_t row_cap;
    bool batch;                      //  store_batch_begin's transaction is open
    bool batch_failed;               //  A call inside it failed: roll back
    int64_t last_stamp;              //  Last updated_at written (s_stamp)
};

#define S_CHECKPOINT_MS 500
//  Past this many WAL frames (4 KiB pages; 64 MiB), the checkpointer also
//  runs a RESTART checkpoint so the WAL is rewound, and the WAL file is cut
//  back to S_WAL_LIMIT when it is (see s_checkpointer).
#define S_WAL_RESTART_FRAMES 16384
//  Every this many new frames, a commit wakes the checkpointer at once
//  instead of leaving it to its next round (a fast writer adds 30 MiB in
//  500 ms).
#define S_WAL_COPY_FRAMES 4096
//  Checkpointer rounds without a RESTART after one was refused (5 s).
#define S_RESTART_BACKOFF 10
#define S_WAL_LIMIT "67108864"

//  ---- Helpers ---------------------------------------------------------------------

//  Busy handler for both connections: SQLite's own sleeps 1, 2, 5, 10 ms
//  and more between tries, so a writer that meets the checkpointer's lock
//  for 1 ms waits 3 ms or more.  This one retries after 50 us, doubling to
//  1 ms, for up to the milliseconds in arg.
static int
s_busy (void *arg, int tries)
{
    static const int64_t waits_us[] = {50, 100, 200, 400, 800};
    int64_t limit_ms = (int64_t) (intptr_t) arg;
    //  Time waited so far, from the schedule below (tries counts from 0).
    int64_t waited = tries > 5 ? (int64_t) (tries - 5) * 1000 : 0;
    for (int i = 0; i < tries && i < 5; i++)
        waited += waits_us[i];
    if (waited >= limit_ms * 1000)
        return 0;
    int64_t wait = tries < 5 ? waits_us[tries] : 1000;
    struct timespec ts = {0, (long) wait * 1000};
    nanosleep (&ts, NULL);
    return 1;
}

static int64_t
s_usecs (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

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
    return s_step_done (self, s_stmt (self, which), s_sql[which]);
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

static void
s_read_session (sqlite3_stmt *st, store_session_t *out)
{
    out->id = sqlite3_column_int64 (st, 0);
    out->key = s_col_text (st, 1);
    out->agent_id = s_col_text (st, 2);
    out->channel = s_col_text (st, 3);
    out->created_at = sqlite3_column_int64 (st, 4);
    out->updated_at = sqlite3_column_int64 (st, 5);
    out->message_count = sqlite3_column_int64 (st, 6);
    out->last_seq = sqlite3_column_int64 (st, 7);
    out->next_run = sqlite3_column_int64 (st, 8);
}

static void
s_read_message (sqlite3_stmt *st, store_message_t *m)
{
    memset (m, 0, sizeof (*m));
    m->pos = sqlite3_column_int64 (st, 0);
    m->role = s_col_text (st, 1);
    m->content = s_col_text (st, 2);
    m->content_len = (size_t) sqlite3_column_bytes (st, 2);
    if (!m->content)
        m->content = "";
    m->run_id = s_col_text (st, 3);
    m->created_at = sqlite3_column_int64 (st, 4);
    m->model = s_col_text (st, 5);
    m->finish_reason = s_col_text (st, 6);
    m->prompt_tokens = sqlite3_column_int64 (st, 7);
    m->completion_tokens = sqlite3_column_int64 (st, 8);
    m->tool_calls = s_col_text (st, 9);
    m->tool_call_id = s_col_text (st, 10);
    m->error = s_col_text (st, 11);
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
    if (session_id <= 0 || session_id >= (INT64_C (1) << (62 - S_MSG_BITS))
        || number < 0 || number >= (INT64_C (1) << S_MSG_BITS))
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
    if (sqlite3_prepare_v2 (self->db, "SELECT max (id) FROM messages", -1, &st,
                            NULL)
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
                  const store_message_t *m, bool in_context,
                  const char *run_status)
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
        log_warn ("store", "%s: message id %lld of session %lld is taken (its "
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
s_update_count (store_t *self, sqlite3_stmt *st, int64_t session_id,
                const char *what)
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

//  ---- Open, migrate, close ---------------------------------------------------------------

static int
s_version (store_t *self)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2 (self->db, "SELECT version FROM schema_version", -1,
                            &st, NULL)
        == SQLITE_OK) {
        version = sqlite3_step (st) == SQLITE_ROW ? sqlite3_column_int (st, 0)
                                                  : 0;
        sqlite3_finalize (st);
    }
    return version;
}

static int
s_migrate (store_t *self, char *err, size_t errlen)
{
    char *msg = NULL;
    if (sqlite3_exec (self->db,
                      "CREATE TABLE IF NOT EXISTS schema_version "
                      "(version INTEGER NOT NULL)",
                      NULL, NULL, &msg)
        != SQLITE_OK)
        goto fail;
    int version = s_version (self);
    if (version > S_VERSION) {
        snprintf (err, errlen,
                  "store %s: schema version %d is newer than this clawgate "
                  "(%d)",
                  self->path, version, S_VERSION);
        return -1;
    }
    for (int v = version; v < S_VERSION; v++) {
        char bump[128];
        snprintf (bump, sizeof (bump),
                  "DELETE FROM schema_version; "
                  "INSERT INTO schema_version (version) VALUES (%d);",
                  v + 1);
        if (sqlite3_exec (self->db, "BEGIN IMMEDIATE", NULL, NULL, &msg)
            != SQLITE_OK)
            goto fail;
        //  Another process may have migrated while we waited for the lock.
        if (s_version (self) > v) {
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
            continue;
        }
        if (sqlite3_exec (self->db, s_migrations[v], NULL, NULL, &msg) != SQLITE_OK
            || sqlite3_exec (self->db, bump, NULL, NULL, &msg) != SQLITE_OK
            || sqlite3_exec (self->db, "COMMIT", NULL, NULL, &msg) != SQLITE_OK) {
            sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
            goto fail;
        }
        log_info ("store", "%s: migrated to schema version %d", self->path,
                  v + 1);
    }
    return 0;
fail:
    snprintf (err, errlen, "store %s: %s", self->path,
              msg ? msg : sqlite3_errmsg (self->db));
    sqlite3_free (msg);
    return -1;
}

//  Creates the directory holding path (one level, mode 0700) if missing.
static void
s_make_parent (const char *path)
{
    char dir[4096];
    snprintf (dir, sizeof (dir), "%s", path);
    char *slash = strrchr (dir, '/');
    if (!slash || slash == dir)
        return;
    *slash = 0;
    if (mkdir (dir, 0700) && errno != EEXIST)
        log_warn ("store", "cannot create %s: %s", dir, strerror (errno));
}

//  The writer's WAL hook, called after each commit with the WAL's length
//  in frames: every S_WAL_COPY_FRAMES more, it wakes the checkpointer.
static int
s_wal_hook (void *arg, sqlite3 *db, const char *name, int frames)
{
    (void) db;
    (void) name;
    store_t *self = (store_t *) arg;
    if (frames < self->hook_frames)
        self->hook_frames = 0;          //  Rewound
    //  Frames added since the last wake, not the WAL's length: a long WAL
    //  stays long until it is rewound, and waking on every commit then
    //  would run checkpoints (and their fsyncs) back to back.
    if (frames - self->hook_frames >= S_WAL_COPY_FRAMES) {
        self->hook_frames = frames;
        pthread_mutex_lock (&self->ckpt_lock);
        self->ckpt_wanted = true;
        pthread_cond_signal (&self->ckpt_cond);
        pthread_mutex_unlock (&self->ckpt_lock);
    }
    return SQLITE_OK;
}

//  Opens the checkpointer's connection (on the opening thread, so that a
//  failure leaves SQLite's in-commit checkpoints on instead of a WAL that
//  nothing copies back).  Returns NULL on failure, logged.
static sqlite3 *
s_checkpointer_open (const char *path)
{
    sqlite3 *db = NULL;
    char *msg = NULL;
    if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                         store_vfs_name ())
            != SQLITE_OK
        //  A connection learns that the file is in WAL mode only when it
        //  first reads it; until then a checkpoint on it does nothing and
        //  reports a log of -1 frames.  This one never reads anything else,
        //  so read the mode now (it was not: the WAL grew without bound,
        //  never copied back).
        || sqlite3_exec (db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg)
               != SQLITE_OK) {
        log_error ("store", "%s: checkpointer: %s", path,
                   msg ? msg : sqlite3_errmsg (db));
        sqlite3_free (msg);
        sqlite3_close (db);
        return NULL;
    }
    //  Only RESTART waits on locks here (PASSIVE never does), and while it
    //  waits for readers it holds the writer off: so a short budget, and
    //  after a refusal, some rounds without (S_RESTART_BACKOFF).
    sqlite3_busy_handler (db, s_busy, (void *) (intptr_t) 20);
    return db;
}

static void *
s_checkpointer (void *arg)
{
    store_t *self = (store_t *) arg;
    pthread_setname_np (pthread_self (), "cg-checkpoint");
    sqlite3 *db = self->ckpt_db;     //  Opened by s_checkpointer_open
    int restart_skip = 0;
    pthread_mutex_lock (&self->ckpt_lock);
    while (!self->ckpt_stop) {
        struct timespec until;
        clock_gettime (CLOCK_REALTIME, &until);
        until.tv_nsec += S_CHECKPOINT_MS * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        while (!self->ckpt_stop && !self->ckpt_wanted)
            if (pthread_cond_timedwait (&self->ckpt_cond, &self->ckpt_lock, &until))
                break;      //  The round is due
        self->ckpt_wanted = false;
        pthread_mutex_unlock (&self->ckpt_lock);
        int wal = 0, done = 0;
        int rc = sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_PASSIVE,
                                            &wal, &done);
        if (rc == SQLITE_BUSY)
            log_debug ("store", "checkpoint: busy, next round");
        else if (rc != SQLITE_OK)
            log_warn ("store", "checkpoint: %s", sqlite3_errmsg (db));
        //  A PASSIVE checkpoint copies the WAL into the database but never
        //  rewinds it: the writer rewinds only when it begins a transaction
        //  at a moment the whole WAL is copied, which under steady writes
        //  is never, and the WAL grew by gigabytes (every write then
        //  extending the file).  Past S_WAL_RESTART_FRAMES, a RESTART
        //  checkpoint copies the little written since the PASSIVE one,
        //  holding off the writer for that long, and waits for readers to
        //  leave the WAL; the writer's next transaction rewinds it.
        else if (restart_skip > 0)
            restart_skip--;
        else if (wal >= S_WAL_RESTART_FRAMES) {
            int64_t started = s_usecs ();
            atomic_store (&self->ckpt_restarting, true);
            rc = sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_RESTART,
                                            &wal, &done);
            pthread_mutex_lock (&self->ckpt_lock);
            atomic_store (&self->ckpt_restarting, false);
            pthread_cond_broadcast (&self->ckpt_done);
            pthread_mutex_unlock (&self->ckpt_lock);
            int64_t took = s_usecs () - started;
            if (rc != SQLITE_OK) {
                //  A reader holds the WAL (a long read, a backup, a shell).
                log_warn ("store", "restart checkpoint (%lld us): %s; retrying in %d rounds",
                          (long long) took, sqlite3_errmsg (db), S_RESTART_BACKOFF);
                restart_skip = S_RESTART_BACKOFF;
            }
            else
                log_debug ("store", "WAL rewound (%lld us)", (long long) took);
        }
        pthread_mutex_lock (&self->ckpt_lock);
    }
    pthread_mutex_unlock (&self->ckpt_lock);
    //  A last full pass, so a clean stop leaves a short WAL.
    sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    sqlite3_close (db);
    return NULL;
}

static store_t *s_open (const char *url, bool writer, char *err, size_t errlen);

store_t *
store_open (const char *url, char *err, size_t errlen)
{
    return s_open (url, true, err, errlen);
}

store_t *
store_open_reader (const char *url, char *err, size_t errlen)
{
    return s_open (url, false, err, errlen);
}

static store_t *
s_open (const char *url, bool writer, char *err, size_t errlen)
{
    bool full_sync = false;
    const char *path = url;
    if (!strncmp (url, "postgres://", 11) || !strncmp (url, "postgresql://", 13)) {
        snprintf (err, errlen,
                  "store %s: the PostgreSQL backend is not built yet; use "
                  "sqlite:PATH",
                  url);
        return NULL;
    }
    if (!strncmp (url, "sqlite:", 7))
        path = url + 7;
    store_t *self = (store_t *) calloc (1, sizeof (store_t));
    if (!self) {
        snprintf (err, errlen, "store: out of memory");
        return NULL;
    }
    snprintf (self->path, sizeof (self->path), "%s", path);
    char *query = strchr (self->path, '?');
    if (query) {
        *query++ = 0;
        full_sync = strstr (query, "sync=full") != NULL;
    }
    if (!self->path[0]) {
        snprintf (err, errlen, "store %s: no file name", url);
        free (self);
        return NULL;
    }
    s_make_parent (self->path);
    if (sqlite3_open_v2 (self->path, &self->db,
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE
                             | SQLITE_OPEN_NOMUTEX,
                         store_vfs_name ())
        != SQLITE_OK) {
        snprintf (err, errlen, "store %s: %s", self->path,
                  self->db ? sqlite3_errmsg (self->db) : "cannot open");
        goto fail;
    }
    chmod (self->path, 0600);
    sqlite3_busy_handler (self->db, s_busy, (void *) (intptr_t) 5000);
    char *msg = NULL;
    //  A 16 MiB page cache per connection.  No mmap: it made no measurable
    //  difference to list/get latency here, but every mapped page counts in
    //  RSS (327 MiB against 64 MiB peak on the 10k-session bench).
    const char *pragmas = full_sync ? "PRAGMA journal_mode=WAL; "
                                      "PRAGMA synchronous=FULL; "
                                      "PRAGMA foreign_keys=OFF; "
                                      "PRAGMA mmap_size=0; "
                                      "PRAGMA cache_size=-16384;"
                                    : "PRAGMA journal_mode=WAL; "
                                      "PRAGMA synchronous=NORMAL; "
                                      "PRAGMA foreign_keys=OFF; "
                                      "PRAGMA mmap_size=0; "
                                      "PRAGMA cache_size=-16384;";
    if (sqlite3_exec (self->db, pragmas, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf (err, errlen, "store %s: %s", self->path, msg ? msg : "pragma");
        sqlite3_free (msg);
        goto fail;
    }
    if (writer && s_migrate (self, err, errlen))
        goto fail;
    if (!writer && s_version (self) != S_VERSION) {
        snprintf (err, errlen, "store %s: schema version %d, expected %d",
                  self->path, s_version (self), S_VERSION);
        goto fail;
    }
    for (int i = 0; i < Q_COUNT; i++)
        if (sqlite3_prepare_v3 (self->db, s_sql[i], -1, SQLITE_PREPARE_PERSISTENT,
                                &self->q[i], NULL)
            != SQLITE_OK) {
            snprintf (err, errlen, "store %s: %s", self->path,
                      sqlite3_errmsg (self->db));
            goto fail;
        }
    if (writer) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2 (self->db, "SELECT max(updated_at) FROM sessions", -1,
                                &st, NULL)
                == SQLITE_OK
            && sqlite3_step (st) == SQLITE_ROW)
            self->last_stamp = sqlite3_column_int64 (st, 0);
        sqlite3_finalize (st);
        sqlite3_exec (self->db, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL);
        //  A rewound WAL is cut back to this size (S_WAL_RESTART_FRAMES).
        sqlite3_exec (self->db, "PRAGMA journal_size_limit=" S_WAL_LIMIT, NULL,
                      NULL, NULL);
        pthread_mutex_init (&self->ckpt_lock, NULL);
        pthread_cond_init (&self->ckpt_cond, NULL);
        pthread_cond_init (&self->ckpt_done, NULL);
        self->ckpt_db = s_checkpointer_open (self->path);
        self->ckpt_running
            = self->ckpt_db
              && pthread_create (&self->ckpt_thread, NULL, s_checkpointer, self) == 0;
        if (self->ckpt_running)
            sqlite3_wal_hook (self->db, s_wal_hook, self);
        if (!self->ckpt_running) {
            //  No thread: let SQLite checkpoint inside commits after all.
            sqlite3_close (self->ckpt_db);
            self->ckpt_db = NULL;
            sqlite3_exec (self->db, "PRAGMA wal_autocheckpoint=1000", NULL, NULL,
                          NULL);
            pthread_cond_destroy (&self->ckpt_cond);
            pthread_cond_destroy (&self->ckpt_done);
            pthread_mutex_destroy (&self->ckpt_lock);
        }
    }
    return self;
fail:
    store_close (&self);
    return NULL;
}

void
store_close (store_t **self_p)
{
    store_t *self = *self_p;
    if (!self)
        return;
    if (self->ckpt_running) {
        pthread_mutex_lock (&self->ckpt_lock);
        self->ckpt_stop = true;
        pthread_cond_signal (&self->ckpt_cond);
        pthread_mutex_unlock (&self->ckpt_lock);
        pthread_join (self->ckpt_thread, NULL);
        self->ckpt_db = NULL;        //  Closed by the thread
        pthread_cond_destroy (&self->ckpt_cond);
        pthread_cond_destroy (&self->ckpt_done);
        pthread_mutex_destroy (&self->ckpt_lock);
    }
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize (self->q[i]);
    for (int i = 0; i < S_LIST_VARIANTS; i++)
        sqlite3_finalize (self->list[i]);
    sqlite3_close (self->db);
    free (self->row);
    free (self);
    *self_p = NULL;
}

int
store_schema_version (store_t *self)
{
    return s_version (self);
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
    //  WAL, which then cannot restart (see s_checkpointer).
    s_read_session (st, out);
    const char *text[3] = {out->key ? out->key : "",
                           out->agent_id ? out->agent_id : "",
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
                  q->after ? " AND (updated_at, id) < (?, ?)"
                           : "");
        if (sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &st, NULL)
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
    int n = 0, rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        store_session_t s;
        s_read_session (st, &s);
        n++;
        if (fn (arg, &s))
            break;
    }
    bool failed = rc != SQLITE_ROW && rc != SQLITE_DONE;
    sqlite3_reset (st);
    return failed ? s_fail (self, "list sessions") : n;
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
        if (s_step_done (self, st, "delete session")) {
            s_rollback (self);
            return -1;
        }
    }
    return s_commit (self) ? (s_rollback (self), -1) : 0;
}

//  ---- Runs ------------------------------------------------------------------------------------

int
store_run_begin (store_t *self, int64_t session_id, const char *run_id,
                 int64_t run_seq, const store_message_t *user, int64_t now)
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
    if (count < 1)
        goto fail;
    if (s_insert_message (self, s_message_id (session_id, count - 1), session_id,
                          run_seq * STORE_POS_RUN, &m, false, "open"))
        goto fail;
    if (s_commit (self))
        goto fail;
    return 0;
fail:
    s_rollback (self);
    return -1;
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
               const store_message_t *steps, size_t n_steps,
               const store_message_t *reply, int64_t last_seq, int64_t now)
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
        goto fail;
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
    if (count < 0)
        goto fail;
    //  The count now includes this run's steps and reply: they are numbers
    //  count - n_steps - 1 .. count - 1.
    int64_t number = count - (int64_t) n_steps - 1;
    for (size_t i = 0; i < n_steps; i++)
        if (s_insert_message (self, s_message_id (session_id, number + (int64_t) i),
                              session_id, run_seq * STORE_POS_RUN + 1 + (int64_t) i,
                              &steps[i], false, NULL))
            goto fail;
    if (s_insert_message (self, s_message_id (session_id, number + (int64_t) n_steps),
                          session_id, run_seq * STORE_POS_RUN + 1 + (int64_t) n_steps,
                          reply, ctx, NULL))
        goto fail;
    if (s_commit (self))
        goto fail;
    return 0;
fail:
    s_rollback (self);
    return -1;
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
        store_message_t reply = {.role = "assistant", .content = "",
                                 .run_id = open[i].run_id[0] ? open[i].run_id
                                                             : NULL,
                                 .created_at = now,
                                 .finish_reason = "interrupted",
                                 .error = "{\"code\":\"service_unavailable\","
                                          "\"message\":\"The gateway stopped "
                                          "during the run\"}"};
        if (store_run_end (self, open[i].session_id, open[i].run_seq, NULL, 0,
                           &reply, 0, now)
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
    int n = 0, rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        store_message_t m;
        s_read_message (st, &m);
        n++;
        if (fn (arg, &m))
            break;
    }
    bool failed = rc != SQLITE_ROW && rc != SQLITE_DONE;
    sqlite3_reset (st);
    return failed ? s_fail (self, "read messages") : n;
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
store_context (store_t *self, int64_t session_id, int limit,
               store_message_fn *fn, void *arg)
{
    sqlite3_stmt *st = s_stmt (self, Q_CONTEXT);
    sqlite3_bind_int64 (st, 1, session_id);
    sqlite3_bind_int (st, 2, limit);
    return s_each_message (self, st, fn, arg);
}
