/*  =========================================================================
    store_sqlite_internal - what the two files of the SQLite store share

    store_sqlite.c holds the statements and the queries (sessions, runs,
    messages, batches); store_sqlite_open.c the schema and its migrations,
    opening and closing a connection, and the writer's checkpointer thread.
    Nothing here is for other modules: they use store.h.
    =========================================================================
*/
#ifndef CG_STORE_SQLITE_INTERNAL_H
#define CG_STORE_SQLITE_INTERNAL_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "store.h"

#define S_SESSION_COLS                                                                   \
    "id, session_key, agent_id, channel, created_at, updated_at, "                       \
    "message_count, last_seq, next_run"
#define S_MESSAGE_COLS                                                                   \
    "pos, role, content, run_id, created_at, model, finish_reason, "                     \
    "prompt_tokens, completion_tokens, tool_calls, tool_call_id, error"

enum {
    Q_BEGIN,
    Q_COMMIT,
    Q_ROLLBACK,
    Q_SESSION_INSERT,
    Q_SESSION_GET,
    Q_SESSION_DELETE,
    Q_SESSION_MESSAGES_DELETE,
    Q_SESSION_BUMP,
    Q_SESSION_END,
    Q_SESSION_COUNT,
    Q_RUN_CLOSE,
    Q_RUNS_OPEN,
    Q_MESSAGE_INSERT,
    Q_MESSAGES,
    Q_CONTEXT,
    Q_COUNT
};

//  Session lists: one statement per filter combination (channel, agent,
//  cursor), so each can use its index.
#define S_LIST_VARIANTS 8

struct store_t {
    sqlite3 *db;                          //  The connection
    sqlite3_stmt *q[Q_COUNT];             //  Prepared statements
    sqlite3_stmt *list[S_LIST_VARIANTS];  //  Made on first use
    char path[4096];                      //  File, for logs
    //  The writer's checkpointer: WAL checkpoints fsync, so they run on a
    //  thread of their own (own connection) instead of inside a commit,
    //  where SQLite's auto-checkpoint would put a ~10 ms stall every 1000
    //  pages into some run's write path.
    pthread_t ckpt_thread;
    sqlite3 *ckpt_db;  //  The checkpointer's own connection
    pthread_mutex_t ckpt_lock;
    pthread_cond_t ckpt_cond;
    pthread_cond_t ckpt_done;  //  A RESTART ended (ckpt_restarting)
    bool ckpt_running, ckpt_stop;
    bool ckpt_wanted;              //  The writer added S_WAL_COPY_FRAMES
    _Atomic bool ckpt_restarting;  //  A RESTART runs: the writer waits
    int hook_frames;               //  WAL length at the last wake (writer's)
    char *row;                     //  store_session_get's strings (lent)
    size_t row_cap;
    bool batch;          //  store_batch_begin's transaction is open
    bool batch_failed;   //  A call inside it failed: roll back
    int64_t last_stamp;  //  Last updated_at written (s_stamp,
                         //  store_sqlite.c)
};

#define S_CHECKPOINT_MS 500
//  Past this many WAL frames (4 KiB pages; 64 MiB), the checkpointer also
//  runs a RESTART checkpoint so the WAL is rewound, and the WAL file is cut
//  back to S_WAL_LIMIT when it is (see s_checkpointer in store_sqlite_open.c).
#define S_WAL_RESTART_FRAMES 16384
//  Every this many new frames, a commit wakes the checkpointer at once
//  instead of leaving it to its next round (a fast writer adds 30 MiB in
//  500 ms).
#define S_WAL_COPY_FRAMES 4096
//  Checkpointer rounds without a RESTART after one was refused (5 s).
#define S_RESTART_BACKOFF 10
#define S_WAL_LIMIT "67108864"

//  The statement of each Q_ value, prepared once per connection.
extern const char *const store_sqlite_sql[Q_COUNT];

#endif
