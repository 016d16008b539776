/*  =========================================================================
    store_sqlite_open - the SQLite store's schema and migrations, opening
    and closing a connection, and the writer's checkpointer thread (see
    store_sqlite.c for durability and the schema's rules)
    =========================================================================
*/
#include "store_sqlite_internal.h"
#include "store_vfs.h"

#include "log.h"

#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <time.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

//  The columns after the id that migration 1 gave sessions and messages,
//  and that migrations 2 and 3 create again when they rebuild each table.
//  Frozen, as the migrations are: a new column is a new migration.
#define S_SESSIONS_COLUMNS                                                               \
    " session_key TEXT NOT NULL UNIQUE,"                                                 \
    " agent_id TEXT NOT NULL,"                                                           \
    " channel TEXT NOT NULL,"                                                            \
    " created_at BIGINT NOT NULL,"                                                       \
    " updated_at BIGINT NOT NULL,"                                                       \
    " message_count BIGINT NOT NULL DEFAULT 0,"                                          \
    " last_seq BIGINT NOT NULL DEFAULT 0,"                                               \
    " next_run BIGINT NOT NULL DEFAULT 0);"
#define S_MESSAGES_COLUMNS                                                               \
    " session_id BIGINT NOT NULL,"                                                       \
    " pos BIGINT NOT NULL,"                                                              \
    " role TEXT NOT NULL,"                                                               \
    " content TEXT NOT NULL,"                                                            \
    " run_id TEXT,"                                                                      \
    " created_at BIGINT NOT NULL,"                                                       \
    " model TEXT,"                                                                       \
    " finish_reason TEXT,"                                                               \
    " prompt_tokens BIGINT,"                                                             \
    " completion_tokens BIGINT,"                                                         \
    " tool_calls TEXT,"                                                                  \
    " tool_call_id TEXT,"                                                                \
    " error TEXT,"                                                                       \
    " in_context INTEGER NOT NULL DEFAULT 0,"

//  Each migration moves the schema from version i to i + 1.
static const char *const s_migrations[] = {
    //  1: sessions, runs, messages.
    "CREATE TABLE sessions ("
    " id INTEGER PRIMARY KEY," S_SESSIONS_COLUMNS
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
    " id INTEGER PRIMARY KEY," S_MESSAGES_COLUMNS " UNIQUE (session_id, pos));",
    //  2: a run is its user message (run_status), not a row of a table of
    //  its own: each index a commit touches costs a WAL page, about 12 us
    //  here, and runs are the write path.  Session ids are never reused (a
    //  late end of a deleted session's run must not land in a new one).
    "CREATE TABLE sessions2 ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT," S_SESSIONS_COLUMNS
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
    " id INTEGER PRIMARY KEY," S_MESSAGES_COLUMNS " run_status TEXT,"
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

//  ---- Open, migrate, close ---------------------------------------------------------------

static int
s_version (store_t *self)
{
    sqlite3_stmt *st = NULL;
    int version = -1;
    if (sqlite3_prepare_v2 (self->db, "SELECT version FROM schema_version", -1, &st, NULL)
        == SQLITE_OK) {
        version = sqlite3_step (st) == SQLITE_ROW ? sqlite3_column_int (st, 0) : 0;
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
        if (sqlite3_exec (self->db, "BEGIN IMMEDIATE", NULL, NULL, &msg) != SQLITE_OK)
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
        log_info ("store", "%s: migrated to schema version %d", self->path, v + 1);
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
        self->hook_frames = 0;  //  Rewound
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
        || sqlite3_exec (db, "PRAGMA journal_mode=WAL", NULL, NULL, &msg) != SQLITE_OK) {
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
    sqlite3 *db = self->ckpt_db;  //  Opened by s_checkpointer_open
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
                break;  //  The round is due
        self->ckpt_wanted = false;
        pthread_mutex_unlock (&self->ckpt_lock);
        int wal = 0, done = 0;
        int rc =
            sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_PASSIVE, &wal, &done);
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
            rc = sqlite3_wal_checkpoint_v2 (db, NULL, SQLITE_CHECKPOINT_RESTART, &wal,
                                            &done);
            pthread_mutex_lock (&self->ckpt_lock);
            atomic_store (&self->ckpt_restarting, false);
            pthread_cond_broadcast (&self->ckpt_done);
            pthread_mutex_unlock (&self->ckpt_lock);
            int64_t took = s_usecs () - started;
            if (rc != SQLITE_OK) {
                //  A reader holds the WAL (a long read, a backup, a shell).
                log_warn ("store",
                          "restart checkpoint (%lld us): %s; retrying in %d rounds",
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

static store_t *
s_open (const char *url, bool writer, char *err, size_t errlen);

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

//  Longer than 100 lines on purpose: URL parsing, opening, the PRAGMAs,
//  migration (writer), statement preparation and the checkpointer (writer)
//  share one failure path that closes what was opened so far.
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
                         SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
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
        snprintf (err, errlen, "store %s: schema version %d, expected %d", self->path,
                  s_version (self), S_VERSION);
        goto fail;
    }
    for (int i = 0; i < Q_COUNT; i++)
        if (sqlite3_prepare_v3 (self->db, store_sqlite_sql[i], -1,
                                SQLITE_PREPARE_PERSISTENT, &self->q[i], NULL)
            != SQLITE_OK) {
            snprintf (err, errlen, "store %s: %s", self->path, sqlite3_errmsg (self->db));
            goto fail;
        }
    if (writer) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2 (self->db, "SELECT max(updated_at) FROM sessions", -1, &st,
                                NULL)
                == SQLITE_OK
            && sqlite3_step (st) == SQLITE_ROW)
            self->last_stamp = sqlite3_column_int64 (st, 0);
        sqlite3_finalize (st);
        sqlite3_exec (self->db, "PRAGMA wal_autocheckpoint=0", NULL, NULL, NULL);
        //  A rewound WAL is cut back to this size (S_WAL_RESTART_FRAMES).
        sqlite3_exec (self->db, "PRAGMA journal_size_limit=" S_WAL_LIMIT, NULL, NULL,
                      NULL);
        pthread_mutex_init (&self->ckpt_lock, NULL);
        pthread_cond_init (&self->ckpt_cond, NULL);
        pthread_cond_init (&self->ckpt_done, NULL);
        self->ckpt_db = s_checkpointer_open (self->path);
        self->ckpt_running =
            self->ckpt_db
            && pthread_create (&self->ckpt_thread, NULL, s_checkpointer, self) == 0;
        if (self->ckpt_running)
            sqlite3_wal_hook (self->db, s_wal_hook, self);
        if (!self->ckpt_running) {
            //  No thread: let SQLite checkpoint inside commits after all.
            sqlite3_close (self->ckpt_db);
            self->ckpt_db = NULL;
            sqlite3_exec (self->db, "PRAGMA wal_autocheckpoint=1000", NULL, NULL, NULL);
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
        self->ckpt_db = NULL;  //  Closed by the thread
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
