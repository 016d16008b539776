/*  =========================================================================
    chanstore - the channels' durable state in SQLite (see the header)
    =========================================================================
*/
#include "chanstore.h"

#include <czmq.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_SCHEMA_VERSION 1

static const char s_schema[] =
    "CREATE TABLE IF NOT EXISTS inbound ("
    " id INTEGER PRIMARY KEY, channel TEXT NOT NULL, key TEXT NOT NULL,"
    " chat_id TEXT NOT NULL, sender_id TEXT NOT NULL, sender_name TEXT NOT NULL,"
    " reply_to TEXT NOT NULL, text TEXT NOT NULL, kind TEXT NOT NULL,"
    " state TEXT NOT NULL, session TEXT NOT NULL, run_id TEXT NOT NULL DEFAULT '',"
    " reply TEXT NOT NULL DEFAULT '', parts_sent INTEGER NOT NULL DEFAULT 0,"
    " error TEXT NOT NULL DEFAULT '', created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL, UNIQUE (channel, key));"
    "CREATE INDEX IF NOT EXISTS inbound_open ON inbound (state)"
    " WHERE state NOT IN ('done', 'failed');"
    "CREATE TABLE IF NOT EXISTS channel_state ("
    " channel TEXT PRIMARY KEY, enabled INTEGER, cursor INTEGER);"
    "CREATE TABLE IF NOT EXISTS transport_state ("
    " channel TEXT PRIMARY KEY, value TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS pairing_requests ("
    " channel TEXT NOT NULL, code TEXT NOT NULL, sender_id TEXT NOT NULL,"
    " sender_name TEXT NOT NULL, created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL, PRIMARY KEY (channel, code));"
    "CREATE TABLE IF NOT EXISTS allowed_senders ("
    " channel TEXT NOT NULL, sender_id TEXT NOT NULL, approved_at INTEGER NOT NULL,"
    " PRIMARY KEY (channel, sender_id));";

//  Statements, prepared once.
typedef enum {
    S_INSERT,
    S_FIND,
    S_OPEN,
    S_SET_RUN,
    S_SET_REPLY,
    S_SET_SENT,
    S_SET_CHAT,
    S_END,
    S_REQUEUE,
    S_OPEN_COUNT,
    S_ENABLED,
    S_SET_ENABLED,
    S_CURSOR,
    S_SET_CURSOR,
    S_TRANSPORT,
    S_SET_TRANSPORT,
    S_PAIR_ADD,
    S_PAIR_COUNT,
    S_PAIR_COUNT_SENDER,
    S_PAIR_LIST,
    S_PAIR_GET,
    S_PAIR_DEL,
    S_ALLOW,
    S_ALLOWED,
    S_PAIR_EXPIRE,
    S_COUNT
} stmt_id_t;

#define S_ROW                                                                            \
    "id, channel, key, chat_id, sender_id, sender_name, reply_to, text, kind, state,"    \
    " session, run_id, reply, parts_sent, error, created_at"

static const char *s_sql[S_COUNT] = {
    [S_INSERT] = "INSERT INTO inbound (channel, key, chat_id, sender_id, sender_name,"
                 " reply_to, text, kind, state, session, reply, created_at, updated_at)"
                 " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING",
    [S_FIND] = "SELECT " S_ROW " FROM inbound WHERE channel = ? AND key = ?",
    [S_OPEN] = "SELECT " S_ROW " FROM inbound WHERE state NOT IN ('done', 'failed')"
               " ORDER BY id",
    [S_SET_RUN] = "UPDATE inbound SET run_id = ?, state = 'running', updated_at = ?"
                  " WHERE id = ?",
    [S_SET_REPLY] = "UPDATE inbound SET reply = ?, state = 'replying', updated_at = ?"
                    " WHERE id = ?",
    [S_SET_SENT] = "UPDATE inbound SET parts_sent = ?, updated_at = ? WHERE id = ?",
    [S_SET_CHAT] = "UPDATE inbound SET chat_id = ?, updated_at = ? WHERE id = ?",
    [S_END] = "UPDATE inbound SET state = ?, error = ?, updated_at = ? WHERE id = ?",
    [S_REQUEUE] = "UPDATE inbound SET state = 'queued', run_id = '', updated_at = ?"
                  " WHERE id = ?",
    [S_OPEN_COUNT] = "SELECT count(*) FROM inbound WHERE channel = ?"
                     " AND state NOT IN ('done', 'failed')",
    [S_ENABLED] = "SELECT enabled FROM channel_state WHERE channel = ?"
                  " AND enabled IS NOT NULL",
    [S_SET_ENABLED] = "INSERT INTO channel_state (channel, enabled) VALUES (?, ?)"
                      " ON CONFLICT (channel) DO UPDATE SET enabled = excluded.enabled",
    [S_CURSOR] = "SELECT cursor FROM channel_state WHERE channel = ?"
                 " AND cursor IS NOT NULL",
    [S_SET_CURSOR] = "INSERT INTO channel_state (channel, cursor) VALUES (?, ?)"
                     " ON CONFLICT (channel) DO UPDATE SET cursor = excluded.cursor",
    [S_TRANSPORT] = "SELECT value FROM transport_state WHERE channel = ?",
    [S_SET_TRANSPORT] = "INSERT INTO transport_state VALUES (?, ?)"
                        " ON CONFLICT (channel) DO UPDATE SET value = excluded.value",
    [S_PAIR_ADD] = "INSERT INTO pairing_requests VALUES (?,?,?,?,?,?)",
    [S_PAIR_COUNT] = "SELECT count(*) FROM pairing_requests WHERE channel = ?"
                     " AND expires_at > ?",
    [S_PAIR_COUNT_SENDER] = "SELECT count(*) FROM pairing_requests WHERE channel = ?"
                            " AND expires_at > ? AND sender_id = ?",
    [S_PAIR_LIST] = "SELECT code, sender_id, sender_name, created_at, expires_at"
                    " FROM pairing_requests WHERE channel = ? AND expires_at > ?"
                    " ORDER BY created_at",
    [S_PAIR_GET] = "SELECT sender_id FROM pairing_requests WHERE channel = ?"
                   " AND code = ? AND expires_at > ?",
    [S_PAIR_DEL] = "DELETE FROM pairing_requests WHERE channel = ? AND code = ?",
    [S_ALLOW] = "INSERT INTO allowed_senders VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    [S_ALLOWED] = "SELECT 1 FROM allowed_senders WHERE channel = ? AND sender_id = ?",
    [S_PAIR_EXPIRE] = "DELETE FROM pairing_requests WHERE expires_at <= ?",
};

struct chanstore_t {
    sqlite3 *db;
    sqlite3_stmt *stmts[S_COUNT];
    bool in_batch;
};

//  The statement id, reset and with its bindings cleared; NULL on error.
static sqlite3_stmt *
s_stmt (chanstore_t *self, stmt_id_t id)
{
    sqlite3_stmt *st = self->stmts[id];
    if (!st) {
        if (sqlite3_prepare_v3 (self->db, s_sql[id], -1, SQLITE_PREPARE_PERSISTENT,
                                &self->stmts[id], NULL)
            != SQLITE_OK)
            return NULL;
        st = self->stmts[id];
    }
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    return st;
}

static void
s_text (sqlite3_stmt *st, int i, const char *s)
{
    sqlite3_bind_text (st, i, s ? s : "", -1, SQLITE_STATIC);
}

//  Runs a statement that returns no rows.  0 or -1.
static int
s_done (sqlite3_stmt *st)
{
    int rc = sqlite3_step (st);
    sqlite3_reset (st);
    return rc == SQLITE_DONE ? 0 : -1;
}

//  The first column of the first row as an integer; def if no row.
static int64_t
s_int (sqlite3_stmt *st, int64_t def)
{
    int rc = sqlite3_step (st);
    int64_t v = rc == SQLITE_ROW    ? sqlite3_column_int64 (st, 0)
                : rc == SQLITE_DONE ? def
                                    : -1;
    sqlite3_reset (st);
    return v;
}

static const char *
s_col (sqlite3_stmt *st, int i)
{
    const char *s = (const char *) sqlite3_column_text (st, i);
    return s ? s : "";
}

static void
s_read_row (sqlite3_stmt *st, chan_msg_t *m)
{
    m->id = sqlite3_column_int64 (st, 0);
    m->channel = s_col (st, 1);
    m->key = s_col (st, 2);
    m->chat_id = s_col (st, 3);
    m->sender_id = s_col (st, 4);
    m->sender_name = s_col (st, 5);
    m->reply_to = s_col (st, 6);
    m->text = s_col (st, 7);
    m->kind = s_col (st, 8);
    m->state = s_col (st, 9);
    m->session = s_col (st, 10);
    m->run_id = s_col (st, 11);
    m->reply = s_col (st, 12);
    m->parts_sent = sqlite3_column_int (st, 13);
    m->error = s_col (st, 14);
    m->created_at = sqlite3_column_int64 (st, 15);
}

//  Calls fn with each row st gives; stops at fn's non-zero value.
static int
s_each (sqlite3_stmt *st, chan_msg_fn *fn, void *arg)
{
    int rc, ret = 0;
    while (ret == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        chan_msg_t m;
        s_read_row (st, &m);
        ret = fn (arg, &m);
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = -1;
    sqlite3_reset (st);
    return ret;
}

void
chanstore_path (const char *state_dir, char *buf, size_t cap)
{
    snprintf (buf, cap, "%s/channels.db", state_dir);
}

chanstore_t *
chanstore_open (const char *path, char *err, size_t errlen)
{
    chanstore_t *self = (chanstore_t *) calloc (1, sizeof (chanstore_t));
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    int rc = sqlite3_open_v2 (
        path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
        NULL);
    char *msg = NULL;
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout (self->db, 5000);
        rc = sqlite3_exec (self->db,
                           "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                           " PRAGMA foreign_keys=OFF;",
                           NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK) {
        sqlite3_free (msg);
        msg = NULL;
        rc = sqlite3_exec (self->db, s_schema, NULL, NULL, &msg);
    }
    if (rc == SQLITE_OK) {
        char pragma[64];
        snprintf (pragma, sizeof (pragma), "PRAGMA user_version=%d", S_SCHEMA_VERSION);
        rc = sqlite3_exec (self->db, pragma, NULL, NULL, &msg);
    }
    if (rc != SQLITE_OK) {
        snprintf (err, errlen, "channel store %s: %s", path,
                  msg        ? msg
                  : self->db ? sqlite3_errmsg (self->db)
                             : "cannot open");
        sqlite3_free (msg);
        chanstore_close (&self);
        return NULL;
    }
    return self;
}

void
chanstore_close (chanstore_t **self_p)
{
    chanstore_t *self = *self_p;
    if (!self)
        return;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize (self->stmts[i]);
    sqlite3_close (self->db);
    free (self);
    *self_p = NULL;
}

int
chanstore_begin (chanstore_t *self)
{
    if (sqlite3_exec (self->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return -1;
    self->in_batch = true;
    return 0;
}

int
chanstore_commit (chanstore_t *self)
{
    self->in_batch = false;
    if (sqlite3_exec (self->db, "COMMIT", NULL, NULL, NULL) == SQLITE_OK)
        return 0;
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

void
chanstore_rollback (chanstore_t *self)
{
    self->in_batch = false;
    sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, NULL);
}

//  ---- Inbound ------------------------------------------------------------------

int
chanstore_insert (chanstore_t *self, const chan_msg_t *m, int64_t now, int64_t *id_out)
{
    sqlite3_stmt *st = s_stmt (self, S_INSERT);
    if (!st)
        return -1;
    s_text (st, 1, m->channel);
    s_text (st, 2, m->key);
    s_text (st, 3, m->chat_id);
    s_text (st, 4, m->sender_id);
    s_text (st, 5, m->sender_name);
    s_text (st, 6, m->reply_to);
    s_text (st, 7, m->text);
    s_text (st, 8, m->kind);
    s_text (st, 9, m->state);
    s_text (st, 10, m->session);
    s_text (st, 11, m->reply);
    sqlite3_bind_int64 (st, 12, now);
    sqlite3_bind_int64 (st, 13, now);
    if (s_done (st))
        return -1;
    if (sqlite3_changes (self->db) == 1) {
        if (id_out)
            *id_out = sqlite3_last_insert_rowid (self->db);
        return 1;
    }
    if (id_out) {
        st = s_stmt (self, S_FIND);
        if (!st)
            return -1;
        s_text (st, 1, m->channel);
        s_text (st, 2, m->key);
        *id_out = s_int (st, 0);
    }
    return 0;
}

int
chanstore_find (chanstore_t *self, const char *channel, const char *key, chan_msg_fn *fn,
                void *arg)
{
    sqlite3_stmt *st = s_stmt (self, S_FIND);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    s_text (st, 2, key);
    return s_each (st, fn, arg);
}

int
chanstore_each_open (chanstore_t *self, chan_msg_fn *fn, void *arg)
{
    sqlite3_stmt *st = s_stmt (self, S_OPEN);
    return st ? s_each (st, fn, arg) : -1;
}

//  UPDATE ... SET <text> = ?, updated_at = ? WHERE id = ?
static int
s_update_text (chanstore_t *self, stmt_id_t sid, int64_t id, const char *text)
{
    sqlite3_stmt *st = s_stmt (self, sid);
    if (!st)
        return -1;
    s_text (st, 1, text);
    sqlite3_bind_int64 (st, 2, (int64_t) zclock_time ());
    sqlite3_bind_int64 (st, 3, id);
    return s_done (st);
}

int
chanstore_set_run (chanstore_t *self, int64_t id, const char *run_id)
{
    return s_update_text (self, S_SET_RUN, id, run_id);
}

int
chanstore_set_reply (chanstore_t *self, int64_t id, const char *reply)
{
    return s_update_text (self, S_SET_REPLY, id, reply);
}

int
chanstore_set_chat (chanstore_t *self, int64_t id, const char *chat_id)
{
    return s_update_text (self, S_SET_CHAT, id, chat_id);
}

int
chanstore_set_sent (chanstore_t *self, int64_t id, int parts_sent)
{
    sqlite3_stmt *st = s_stmt (self, S_SET_SENT);
    if (!st)
        return -1;
    sqlite3_bind_int (st, 1, parts_sent);
    sqlite3_bind_int64 (st, 2, (int64_t) zclock_time ());
    sqlite3_bind_int64 (st, 3, id);
    return s_done (st);
}

int
chanstore_end (chanstore_t *self, int64_t id, const char *state, const char *error)
{
    sqlite3_stmt *st = s_stmt (self, S_END);
    if (!st)
        return -1;
    s_text (st, 1, state);
    s_text (st, 2, error);
    sqlite3_bind_int64 (st, 3, (int64_t) zclock_time ());
    sqlite3_bind_int64 (st, 4, id);
    return s_done (st);
}

int
chanstore_requeue (chanstore_t *self, int64_t id)
{
    sqlite3_stmt *st = s_stmt (self, S_REQUEUE);
    if (!st)
        return -1;
    sqlite3_bind_int64 (st, 1, (int64_t) zclock_time ());
    sqlite3_bind_int64 (st, 2, id);
    return s_done (st);
}

int64_t
chanstore_open_count (chanstore_t *self, const char *channel)
{
    sqlite3_stmt *st = s_stmt (self, S_OPEN_COUNT);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    return s_int (st, 0);
}

//  ---- Channel state ----------------------------------------------------------------

int
chanstore_enabled (chanstore_t *self, const char *channel, bool *enabled)
{
    sqlite3_stmt *st = s_stmt (self, S_ENABLED);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    int64_t v = s_int (st, -2);
    if (v == -2)
        return 0;
    if (v < 0)
        return -1;
    *enabled = v != 0;
    return 1;
}

int
chanstore_set_enabled (chanstore_t *self, const char *channel, bool enabled)
{
    sqlite3_stmt *st = s_stmt (self, S_SET_ENABLED);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    sqlite3_bind_int (st, 2, enabled ? 1 : 0);
    return s_done (st);
}

int
chanstore_cursor (chanstore_t *self, const char *channel, int64_t *value)
{
    sqlite3_stmt *st = s_stmt (self, S_CURSOR);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    int rc = sqlite3_step (st);
    int ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (ret == 1)
        *value = sqlite3_column_int64 (st, 0);
    sqlite3_reset (st);
    return ret;
}

int
chanstore_set_cursor (chanstore_t *self, const char *channel, int64_t value)
{
    sqlite3_stmt *st = s_stmt (self, S_SET_CURSOR);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    sqlite3_bind_int64 (st, 2, value);
    return s_done (st);
}

int
chanstore_transport (chanstore_t *self, const char *channel, char *buf, size_t cap)
{
    sqlite3_stmt *st = s_stmt (self, S_TRANSPORT);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    int rc = sqlite3_step (st);
    int ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (ret == 1) {
        const char *v = (const char *) sqlite3_column_text (st, 0);
        if (!v || strlen (v) >= cap)
            ret = 0;
        else
            memcpy (buf, v, strlen (v) + 1);
    }
    sqlite3_reset (st);
    return ret;
}

int
chanstore_set_transport (chanstore_t *self, const char *channel, const char *value)
{
    sqlite3_stmt *st = s_stmt (self, S_SET_TRANSPORT);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    s_text (st, 2, value);
    return s_done (st);
}

//  ---- Pairing ----------------------------------------------------------------------

int
chanstore_pairing_add (chanstore_t *self, const char *channel, const chan_pairing_t *req)
{
    sqlite3_stmt *st = s_stmt (self, S_PAIR_EXPIRE);
    if (!st)
        return -1;
    sqlite3_bind_int64 (st, 1, req->created_at);
    if (s_done (st) || !(st = s_stmt (self, S_PAIR_ADD)))
        return -1;
    s_text (st, 1, channel);
    s_text (st, 2, req->code);
    s_text (st, 3, req->sender_id);
    s_text (st, 4, req->sender_name);
    sqlite3_bind_int64 (st, 5, req->created_at);
    sqlite3_bind_int64 (st, 6, req->expires_at);
    return s_done (st);
}

int
chanstore_pairing_count (chanstore_t *self, const char *channel, const char *sender_id,
                         int64_t now)
{
    sqlite3_stmt *st = s_stmt (self, sender_id ? S_PAIR_COUNT_SENDER : S_PAIR_COUNT);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    sqlite3_bind_int64 (st, 2, now);
    if (sender_id)
        s_text (st, 3, sender_id);
    return (int) s_int (st, 0);
}

int
chanstore_pairing_list (chanstore_t *self, const char *channel, int64_t now,
                        chan_pairing_fn *fn, void *arg)
{
    sqlite3_stmt *st = s_stmt (self, S_PAIR_LIST);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    sqlite3_bind_int64 (st, 2, now);
    int rc, ret = 0;
    while (ret == 0 && (rc = sqlite3_step (st)) == SQLITE_ROW) {
        chan_pairing_t p = {s_col (st, 0), s_col (st, 1), s_col (st, 2),
                            sqlite3_column_int64 (st, 3), sqlite3_column_int64 (st, 4)};
        ret = fn (arg, &p);
    }
    if (ret == 0 && rc != SQLITE_DONE)
        ret = -1;
    sqlite3_reset (st);
    return ret;
}

int
chanstore_pairing_approve (chanstore_t *self, const char *channel, const char *code,
                           int64_t now, char *sender, size_t cap)
{
    if (chanstore_begin (self))
        return -1;
    sqlite3_stmt *st = s_stmt (self, S_PAIR_GET);
    int ret = -1;
    if (st) {
        s_text (st, 1, channel);
        s_text (st, 2, code);
        sqlite3_bind_int64 (st, 3, now);
        int rc = sqlite3_step (st);
        if (rc == SQLITE_ROW)
            snprintf (sender, cap, "%s", s_col (st, 0));
        ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
        sqlite3_reset (st);
    }
    if (ret == 1) {
        sqlite3_stmt *del = s_stmt (self, S_PAIR_DEL);
        sqlite3_stmt *allow = NULL;
        if (!del)
            ret = -1;
        else {
            s_text (del, 1, channel);
            s_text (del, 2, code);
            if (s_done (del) || !(allow = s_stmt (self, S_ALLOW)))
                ret = -1;
            else {
                s_text (allow, 1, channel);
                s_text (allow, 2, sender);
                sqlite3_bind_int64 (allow, 3, now);
                if (s_done (allow))
                    ret = -1;
            }
        }
    }
    if (ret < 0) {
        chanstore_rollback (self);
        return -1;
    }
    return chanstore_commit (self) ? -1 : ret;
}

int
chanstore_allowed (chanstore_t *self, const char *channel, const char *sender_id)
{
    sqlite3_stmt *st = s_stmt (self, S_ALLOWED);
    if (!st)
        return -1;
    s_text (st, 1, channel);
    s_text (st, 2, sender_id);
    return (int) s_int (st, 0);
}
