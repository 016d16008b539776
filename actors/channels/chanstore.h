/*  =========================================================================
    chanstore - what the channels must not forget: inbound messages and
    their replies, pairing requests, approved senders, enabled flags and
    transport cursors

    One SQLite file, <state_dir>/channels.db, apart from the sessions'
    store: its schema moves with the channels alone.  WAL mode; a commit
    survives a kill -9 of the process.  The channel actor is the one
    writer; `clawgate pairing` opens it too (SQLite's lock serialises).

    Inbound messages are the durable ingress: a row is written (and
    committed) before the platform is told the message was received, and
    it is unique by (channel, key), the platform's message id, so a
    message delivered twice is stored once.  Its state walks
    queued -> running -> replying -> done | failed; at start the actor
    takes every row not done or failed and carries it on.

    Threads: a chanstore_t is used by one thread.  Strings handed to
    callbacks are lent until the callback returns.
    =========================================================================
*/
#ifndef CG_CHANSTORE_H
#define CG_CHANSTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct chanstore_t chanstore_t;

//  An inbound message and what became of it.
typedef struct {
    int64_t id;               //  Row id (set by chanstore_insert)
    const char *channel;      //  "telegram", "webhook:<hook>", ...
    const char *key;          //  Platform message id, unique per channel
    const char *chat_id;      //  Where the reply goes
    const char *sender_id;    //  Who wrote it
    const char *sender_name;  //  Display name, or ""
    const char *reply_to;     //  Platform message id to reply to, or ""
    const char *text;         //  What they wrote
    const char *kind;         //  "run" (answered by a run) or "notice"
                              //  (answered by reply, e.g. a pairing code)
    const char *state;        //  queued|running|replying|done|failed
    const char *session;      //  Session key of its run
    const char *run_id;       //  Its run, once started, or ""
    const char *reply;        //  The reply, once known, or ""
    int parts_sent;           //  Reply parts sent so far
    const char *error;        //  Why it failed, or ""
    int64_t created_at;       //  Unix ms
} chan_msg_t;

typedef int (chan_msg_fn) (void *arg, const chan_msg_t *msg);

//  A pending pairing request.
typedef struct {
    const char *code;
    const char *sender_id;
    const char *sender_name;
    int64_t created_at, expires_at;  //  Unix ms
} chan_pairing_t;

typedef int (chan_pairing_fn) (void *arg, const chan_pairing_t *req);

//  Opens (creating or migrating) the store at path.  Returns it (caller
//  owns, chanstore_close) or NULL with a sentence in err.
chanstore_t *
chanstore_open (const char *path, char *err, size_t errlen);

void
chanstore_close (chanstore_t **self_p);

//  The store's file under state_dir, into buf.
void
chanstore_path (const char *state_dir, char *buf, size_t cap);

//  One transaction around the calls until chanstore_commit (a batch of
//  messages costs one commit).  0 or -1.
int
chanstore_begin (chanstore_t *self);
int
chanstore_commit (chanstore_t *self);
void
chanstore_rollback (chanstore_t *self);

//  Stores msg (id, parts_sent, created_at and error ignored) unless
//  (channel, key) is there already.  Returns 1 stored (msg->id set through
//  id_out), 0 a duplicate (id_out: the first one's row), -1 on error.
int
chanstore_insert (chanstore_t *self, const chan_msg_t *msg, int64_t now, int64_t *id_out);

//  Calls fn with the row of (channel, key), if any.  Returns fn's value,
//  0 if there is none, -1 on error.
int
chanstore_find (chanstore_t *self, const char *channel, const char *key, chan_msg_fn *fn,
                void *arg);

//  Calls fn with each row not done or failed, oldest first.  0 or -1.
int
chanstore_each_open (chanstore_t *self, chan_msg_fn *fn, void *arg);

//  State changes of row id.  0 or -1.
int
chanstore_set_run (chanstore_t *self, int64_t id, const char *run_id);
int
chanstore_set_reply (chanstore_t *self, int64_t id, const char *reply);
int
chanstore_set_sent (chanstore_t *self, int64_t id, int parts_sent);
int
chanstore_set_chat (chanstore_t *self, int64_t id, const char *chat_id);
//  state "done" or "failed" (error: why, or NULL).
int
chanstore_end (chanstore_t *self, int64_t id, const char *state, const char *error);
//  Back to queued (a run that must start again).
int
chanstore_requeue (chanstore_t *self, int64_t id);

//  Rows of channel not done or failed.  -1 on error.
int64_t
chanstore_open_count (chanstore_t *self, const char *channel);

//  Enabled flag set through the API: 1 and *enabled, or 0 when never set.
int
chanstore_enabled (chanstore_t *self, const char *channel, bool *enabled);
int
chanstore_set_enabled (chanstore_t *self, const char *channel, bool enabled);

//  A transport's cursor (Telegram's next offset): 1 and *value, or 0.
int
chanstore_cursor (chanstore_t *self, const char *channel, int64_t *value);
int
chanstore_set_cursor (chanstore_t *self, const char *channel, int64_t value);

//  A transport's own state as text (Discord: its gateway session, to
//  resume after a restart): 1 and buf, 0 if none (or over cap), -1.
int
chanstore_transport (chanstore_t *self, const char *channel, char *buf, size_t cap);
int
chanstore_set_transport (chanstore_t *self, const char *channel, const char *value);

//  Pairing: requests not expired at now.
int
chanstore_pairing_add (chanstore_t *self, const char *channel, const chan_pairing_t *req);
//  Pending requests of channel (of sender_id, if not NULL).  -1 on error.
int
chanstore_pairing_count (chanstore_t *self, const char *channel, const char *sender_id,
                         int64_t now);
int
chanstore_pairing_list (chanstore_t *self, const char *channel, int64_t now,
                        chan_pairing_fn *fn, void *arg);
//  Approves code: deletes the request, allows its sender (copied into
//  sender, cap bytes).  Returns 1, 0 if no such pending code, -1 on error.
int
chanstore_pairing_approve (chanstore_t *self, const char *channel, const char *code,
                           int64_t now, char *sender, size_t cap);

//  1 if sender was approved on channel, 0 if not, -1 on error.
int
chanstore_allowed (chanstore_t *self, const char *channel, const char *sender_id);

#endif
