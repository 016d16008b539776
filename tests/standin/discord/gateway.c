/*  =========================================================================
    gateway - cg_dcstandin's Gateway WebSocket: /gateway and /resume

    Part of cg_dcstandin (see dcstandin.c).  Each connection gets op 10
    Hello when it opens (after the hello_delay knob, if set).  The client's
    op 1 gets op 11 (unless the zombie knob swallows it), op 2 Identify
    makes a new session and answers READY (s=1), op 6 Resume replays the
    events after its seq and then RESUMED, or answers op 9 false.  Closes
    follow Discord's codes: 4001 unknown opcode, 4002 undecodable or > 4096
    bytes (or encoding other than json), 4003 not authenticated, 4004 bad
    token, 4005 already authenticated, 4007 bad seq, 4012 v other than 10,
    4013/4014 intents.  The client's close 1000/1001 (and our 4004, 4007,
    4009, 4010-4014) end the session; other closes and drops keep it for a
    Resume, with every event since kept for the replay.  civetweb runs each
    connection on its own worker thread; the handlers take the lock, and
    frames from other threads (control messages, faults) are written with
    the lock held, so one session's frames go out in s order.
    =========================================================================
*/
#include "dcstandin.h"
#include "common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

//  ---- Writing ------------------------------------------------------------------

//  Writes a text frame.  Lock held.
static void
s_write (dc_conn_t *c, const char *text)
{
    if (c->closing)
        return;
    if (mg_websocket_write (c->conn, MG_WEBSOCKET_OPCODE_TEXT, text, strlen (text)) <= 0)
        c->closing = true;
}

//  Writes {"op":op,"d":d,"s":null,"t":null} (takes d; NULL: null).
static void
s_write_op (dc_conn_t *c, int op, cJSON *d)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "op", op);
    cJSON_AddItemToObject (root, "d", d ? d : cJSON_CreateNull ());
    cJSON_AddNullToObject (root, "s");
    cJSON_AddNullToObject (root, "t");
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    s_write (c, text);
    cJSON_free (text);
}

//  A dispatch frame's text (takes d).  Caller owns return value.
static char *
s_dispatch_text (const char *t, long long s, cJSON *d)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "t", t);
    cJSON_AddNumberToObject (root, "s", (double) s);
    cJSON_AddNumberToObject (root, "op", 0);
    cJSON_AddItemToObject (root, "d", d);
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    return text;
}

//  Sends a close frame with code and reason; no more frames follow.  From
//  a thread other than the connection's, also shuts our side for writing
//  so the client sees the end even if it never answers the close.
static void
s_close (dc_conn_t *c, int code, const char *reason, bool other_thread)
{
    if (c->closing)
        return;
    char payload[128];
    payload[0] = (char) ((code >> 8) & 0xff);
    payload[1] = (char) (code & 0xff);
    size_t len = strlen (reason);
    if (len > sizeof (payload) - 2)
        len = sizeof (payload) - 2;
    memcpy (payload + 2, reason, len);
    mg_websocket_write (c->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, payload, len + 2);
    c->closing = true;
    if (other_thread && c->fd >= 0)
        shutdown (c->fd, SHUT_WR);
}

//  Close codes after which Discord will not resume the session.
static bool
s_kills_session (int code)
{
    return code == 1000 || code == 1001 || code == 4004 || code == 4007 || code == 4009
           || (code >= 4010 && code <= 4014);
}

//  Ends the session: no resume from now on.
static void
s_invalidate (dc_t *self)
{
    self->session_valid = false;
    for (dc_conn_t *c = self->conns; c; c = c->next)
        c->live = false;
    store_save (self);
}

//  ---- Messages ---------------------------------------------------------------

//  Whether msg mentions the bot.
static bool
s_mentions_bot (dc_t *self, cJSON *msg)
{
    cJSON *user;
    cJSON_ArrayForEach (user, cJSON_GetObjectItem (msg, "mentions"))
    {
        const char *id = cJSON_GetStringValue (cJSON_GetObjectItem (user, "id"));
        if (id && strcmp (id, self->bot_id) == 0)
            return true;
    }
    return false;
}

//  The MESSAGE_CREATE frame of msg for this session (its content blanked
//  as Discord does without MESSAGE_CONTENT).  Caller owns return value.
static char *
s_message_frame (dc_t *self, cJSON *msg, long long s)
{
    cJSON *d = cJSON_Duplicate (msg, true);
    bool dm = cJSON_GetObjectItem (d, "guild_id") == NULL;
    const char *author = cJSON_GetStringValue (
        cJSON_GetObjectItem (cJSON_GetObjectItem (d, "author"), "id"));
    bool own = author && strcmp (author, self->bot_id) == 0;
    if (!(self->intents & DC_MESSAGE_CONTENT) && !dm && !own && !s_mentions_bot (self, d))
        cJSON_ReplaceItemInObject (d, "content", cJSON_CreateString (""));
    return s_dispatch_text ("MESSAGE_CREATE", s, d);
}

//  The session's live connection, or NULL.
static dc_conn_t *
s_live (dc_t *self)
{
    for (dc_conn_t *c = self->conns; c; c = c->next)
        if (c->live && !c->closing)
            return c;
    return NULL;
}

long long
gateway_message (dc_t *self, cJSON *msg, bool *written)
{
    *written = false;
    if (!self->session_id[0] || !self->session_valid) {
        cJSON_AddItemToArray (self->pending, msg);
        store_save (self);
        return 0;
    }
    long long s = ++self->seq;
    char *frame = s_message_frame (self, msg, s);
    cJSON_Delete (msg);
    dc_conn_t *live = s_live (self);
    if (live) {
        s_write (live, frame);
        *written = !live->closing;
    }
    store_add_event (self, s, frame);
    store_save (self);
    return s;
}

//  ---- Client ops -------------------------------------------------------------

static const char *
s_str (cJSON *obj, const char *name)
{
    return cJSON_GetStringValue (cJSON_GetObjectItem (obj, name));
}

//  Whether the token of an Identify or Resume is ours (with or without
//  the "Bot " prefix).
static bool
s_token_ok (dc_t *self, const char *token)
{
    if (!token)
        return false;
    if (strncmp (token, "Bot ", 4) == 0)
        token += 4;
    return strcmp (token, self->token) == 0;
}

static void
s_resume_url (dc_t *self, char *buf, size_t cap)
{
    if (self->tls_port)
        snprintf (buf, cap, "wss://127.0.0.1:%d/resume", self->tls_port);
    else
        snprintf (buf, cap, "ws://127.0.0.1:%d/resume", self->port);
}

//  Op 2.  Returns 0 to close the connection (after a close frame).
static int
s_identify (dc_t *self, dc_conn_t *c, cJSON *d)
{
    self->identify++;
    if (c->on_resume)
        self->identify_on_resume++;
    else
        self->identify_on_gateway++;
    if (c->identified) {
        s_close (c, 4005, "Already authenticated.", false);
        return 0;
    }
    if (!s_token_ok (self, s_str (d, "token"))) {
        s_close (c, 4004, "Authentication failed.", false);
        return 0;
    }
    cJSON *intents_item = cJSON_GetObjectItem (d, "intents");
    int intents = cJSON_IsNumber (intents_item) ? (int) intents_item->valuedouble : 0;
    if (self->invalid_intents != 0 || !cJSON_IsNumber (intents_item)) {
        if (self->invalid_intents > 0)
            self->invalid_intents--;
        s_close (c, 4013, "Invalid intent(s).", false);
        return 0;
    }
    int need = DC_GUILD_MESSAGES | DC_DIRECT_MESSAGES | DC_MESSAGE_CONTENT;
    if (self->require_intents && (intents & need) != need) {
        s_close (c, 4014, "Disallowed intent(s).", false);
        return 0;
    }
    if (self->no_ready != 0) {
        //  Taken and never answered: heartbeats still get their ACKs.
        if (self->no_ready > 0)
            self->no_ready--;
        return 1;
    }

    //  A new session replaces the old one, whose connections stop
    //  getting its events.
    for (dc_conn_t *other = self->conns; other; other = other->next)
        other->live = false;
    for (int i = 0; i < 32; i++)
        self->session_id[i] = "0123456789abcdef"[rand () % 16];
    self->session_id[32] = 0;
    self->session_valid = true;
    self->intents = intents;
    self->seq = 0;
    store_clear_events (self);
    c->identified = true;
    c->live = true;

    char url[96];
    s_resume_url (self, url, sizeof (url));
    cJSON *ready = cJSON_CreateObject ();
    cJSON_AddNumberToObject (ready, "v", 10);
    cJSON *user = cJSON_AddObjectToObject (ready, "user");
    cJSON_AddStringToObject (user, "id", self->bot_id);
    cJSON_AddStringToObject (user, "username", self->bot_name);
    cJSON_AddStringToObject (user, "discriminator", "0");
    cJSON_AddNullToObject (user, "global_name");
    cJSON_AddNullToObject (user, "avatar");
    cJSON_AddBoolToObject (user, "bot", true);
    cJSON_AddBoolToObject (user, "verified", true);
    cJSON_AddNumberToObject (user, "flags", 0);
    cJSON_AddArrayToObject (ready, "guilds");
    cJSON_AddStringToObject (ready, "session_id", self->session_id);
    cJSON_AddStringToObject (ready, "session_type", "normal");
    cJSON_AddStringToObject (ready, "resume_gateway_url", url);
    cJSON *shard = cJSON_GetObjectItem (d, "shard");
    if (cJSON_IsArray (shard))
        cJSON_AddItemToObject (ready, "shard", cJSON_Duplicate (shard, true));
    cJSON *app = cJSON_AddObjectToObject (ready, "application");
    cJSON_AddStringToObject (app, "id", self->bot_id);
    cJSON_AddNumberToObject (app, "flags", 0);
    char *text = s_dispatch_text ("READY", ++self->seq, ready);
    s_write (c, text);
    store_add_event (self, self->seq, text);

    //  Messages enqueued while there was no session go to this one.
    cJSON *msg;
    while ((msg = cJSON_DetachItemFromArray (self->pending, 0)) != NULL) {
        bool written;
        gateway_message (self, msg, &written);
    }
    store_save (self);
    return 1;
}

//  Op 6.  Returns 0 to close the connection.
static int
s_resume (dc_t *self, dc_conn_t *c, cJSON *d)
{
    self->resume++;
    snprintf (self->last_resume_path, sizeof (self->last_resume_path), "%s",
              c->on_resume ? "/resume" : "/gateway");
    if (c->on_resume)
        self->resume_on_resume++;
    else
        self->resume_on_gateway++;
    if (c->identified) {
        s_close (c, 4005, "Already authenticated.", false);
        return 0;
    }
    if (!s_token_ok (self, s_str (d, "token"))) {
        s_close (c, 4004, "Authentication failed.", false);
        return 0;
    }
    const char *sid = s_str (d, "session_id");
    if (!sid || !self->session_valid || strcmp (sid, self->session_id) != 0) {
        s_write_op (c, 9, cJSON_CreateFalse ());
        return 1;
    }
    cJSON *seq_item = cJSON_GetObjectItem (d, "seq");
    long long seq = cJSON_IsNumber (seq_item) ? (long long) seq_item->valuedouble : 0;
    if (seq > self->seq || seq < 0) {
        s_close (c, 4007, "Invalid seq.", false);
        s_invalidate (self);
        return 0;
    }
    for (dc_conn_t *other = self->conns; other; other = other->next)
        other->live = false;
    c->identified = true;
    c->live = true;
    for (size_t i = 0; i < self->events_len; i++)
        if (self->events[i].s > seq)
            s_write (c, self->events[i].frame);
    char *text = s_dispatch_text ("RESUMED", ++self->seq, cJSON_CreateObject ());
    s_write (c, text);
    cJSON_free (text);
    store_save (self);
    return 1;
}

//  Keeps the last client frames for /control/received (token hidden).
static void
s_remember (dc_t *self, dc_conn_t *c, cJSON *frame)
{
    cJSON *entry = cJSON_CreateObject ();
    cJSON_AddNumberToObject (entry, "at_ms", (double) store_wall_ms ());
    cJSON_AddNumberToObject (entry, "conn", c->number);
    cJSON_AddStringToObject (entry, "path", c->on_resume ? "/resume" : "/gateway");
    cJSON *copy = cJSON_Duplicate (frame, true);
    cJSON *d = cJSON_GetObjectItem (copy, "d");
    if (cJSON_GetObjectItem (d, "token"))
        cJSON_ReplaceItemInObject (d, "token", cJSON_CreateString ("***"));
    cJSON_AddItemToObject (entry, "frame", copy);
    cJSON_AddItemToArray (self->received, entry);
    if (cJSON_GetArraySize (self->received) > DC_MAX_RECEIVED)
        cJSON_DeleteItemFromArray (self->received, 0);
}

//  One text frame.  Returns 0 to close.  Lock held.
static int
s_frame (dc_t *self, dc_conn_t *c, const char *data, size_t len)
{
    if (len > DC_MAX_FRAME) {
        s_close (c, 4002, "Error while decoding payload.", false);
        return 0;
    }
    cJSON *frame = cJSON_ParseWithLength (data, len);
    cJSON *op_item = cJSON_GetObjectItem (frame, "op");
    if (!cJSON_IsObject (frame) || !cJSON_IsNumber (op_item)) {
        cJSON_Delete (frame);
        s_close (c, frame ? 4001 : 4002,
                 frame ? "Unknown opcode." : "Error while decoding payload.", false);
        return 0;
    }
    s_remember (self, c, frame);
    int op = (int) op_item->valuedouble;
    cJSON *d = cJSON_GetObjectItem (frame, "d");
    int rc = 1;
    if (op == 1) {
        self->heartbeats++;
        if (self->zombie != 0) {
            self->acks_skipped++;
            if (self->zombie > 0)
                self->zombie--;
        }
        else
            s_write_op (c, 11, NULL);
    }
    else if (op == 2)
        rc = s_identify (self, c, d);
    else if (op == 6)
        rc = s_resume (self, c, d);
    else if (op == 3 || op == 4 || op == 8 || op == 31) {
        if (!c->identified) {
            s_close (c, 4003, "Not authenticated.", false);
            rc = 0;
        }
    }
    else {
        s_close (c, 4001, "Unknown opcode.", false);
        rc = 0;
    }
    cJSON_Delete (frame);
    return rc;
}

//  ---- civetweb handlers ------------------------------------------------------

static int
s_on_connect (const struct mg_connection *conn, void *cbdata)
{
    dc_t *self = (dc_t *) cbdata;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    dc_conn_t *c = calloc (1, sizeof (dc_conn_t));
    if (!c)
        return 1;
    c->conn = (struct mg_connection *) conn;
    c->fd = -1;
    c->on_resume = ri->local_uri && strcmp (ri->local_uri, "/resume") == 0;
    snprintf (c->query, sizeof (c->query), "%s",
              ri->query_string ? ri->query_string : "");
    pthread_mutex_lock (&self->lock);
    snprintf (self->last_query, sizeof (self->last_query), "%s", c->query);
    c->number = ++self->conn_number;
    self->connections_total++;
    c->next = self->conns;
    self->conns = c;
    pthread_mutex_unlock (&self->lock);
    mg_set_user_connection_data (conn, c);
    return 0;
}

static void
s_on_ready (struct mg_connection *conn, void *cbdata)
{
    dc_t *self = (dc_t *) cbdata;
    dc_conn_t *c = (dc_conn_t *) mg_get_user_connection_data (conn);
    if (!c)
        return;
    int fd = standin_socket (conn, self->port);
    if (fd < 0 && self->tls_port)
        fd = standin_socket (conn, self->tls_port);
    pthread_mutex_lock (&self->lock);
    c->fd = fd;
    int delay = 0;
    if (self->hello_delays != 0) {
        delay = self->hello_delay_ms;
        if (self->hello_delays > 0)
            self->hello_delays--;
    }
    int heartbeat = self->heartbeat_ms;
    pthread_mutex_unlock (&self->lock);
    if (delay > 0)
        usleep ((useconds_t) delay * 1000);
    cJSON *d = cJSON_CreateObject ();
    cJSON_AddNumberToObject (d, "heartbeat_interval", heartbeat);
    pthread_mutex_lock (&self->lock);
    s_write_op (c, 10, d);
    //  Only API v10 and JSON are spoken here (no v: Discord's default).
    char v[16] = "", encoding[16] = "";
    mg_get_var (c->query, strlen (c->query), "v", v, sizeof (v));
    mg_get_var (c->query, strlen (c->query), "encoding", encoding, sizeof (encoding));
    if (v[0] && strcmp (v, "10") != 0)
        s_close (c, 4012, "Invalid API version.", true);
    else if (encoding[0] && strcmp (encoding, "json") != 0)
        s_close (c, 4002, "Error while decoding payload.", true);
    pthread_mutex_unlock (&self->lock);
}

static int
s_on_data (struct mg_connection *conn, int flags, char *data, size_t len, void *cbdata)
{
    dc_t *self = (dc_t *) cbdata;
    dc_conn_t *c = (dc_conn_t *) mg_get_user_connection_data (conn);
    if (!c)
        return 0;
    int opcode = flags & 0x0f;
    int rc = 1;
    pthread_mutex_lock (&self->lock);
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
        //  The client closes: answer with its code; 1000/1001 end the
        //  session as on Discord.
        int code =
            len >= 2 ? ((unsigned char) data[0] << 8) | (unsigned char) data[1] : 1005;
        if (!c->closing) {
            mg_websocket_write (conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, data,
                                len >= 2 ? 2 : 0);
            c->closing = true;
        }
        if (c->live && s_kills_session (code))
            s_invalidate (self);
        rc = 0;
    }
    else if (c->closing)
        rc = 1;  //  Said goodbye: ignore what else comes until the close
    else if (opcode == MG_WEBSOCKET_OPCODE_TEXT || opcode == MG_WEBSOCKET_OPCODE_BINARY)
        rc = s_frame (self, c, data, len);
    pthread_mutex_unlock (&self->lock);
    return rc;
}

static void
s_on_close (const struct mg_connection *conn, void *cbdata)
{
    dc_t *self = (dc_t *) cbdata;
    dc_conn_t *c = (dc_conn_t *) mg_get_user_connection_data (conn);
    if (!c)
        return;
    pthread_mutex_lock (&self->lock);
    for (dc_conn_t **p = &self->conns; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    pthread_mutex_unlock (&self->lock);
    mg_set_user_connection_data (conn, NULL);
    free (c);
}

void
gateway_register (dc_t *self)
{
    mg_set_websocket_handler (self->ctx, "/gateway", s_on_connect, s_on_ready, s_on_data,
                              s_on_close, self);
    mg_set_websocket_handler (self->ctx, "/resume", s_on_connect, s_on_ready, s_on_data,
                              s_on_close, self);
}

int
gateway_open_count (dc_t *self)
{
    int n = 0;
    for (dc_conn_t *c = self->conns; c; c = c->next)
        n++;
    return n;
}

//  ---- Faults -----------------------------------------------------------------

int
gateway_fault (dc_t *self, cJSON *body)
{
    const char *kind = s_str (body, "kind");
    cJSON *count_item = cJSON_GetObjectItem (body, "count");
    int count = cJSON_IsNumber (count_item) ? (int) count_item->valuedouble : -1;
    if (!kind)
        return -1;
    //  Knobs for what comes later.
    if (strcmp (kind, "zombie") == 0) {
        self->zombie = count;
        return 0;
    }
    if (strcmp (kind, "zombie_off") == 0) {
        self->zombie = 0;
        return 0;
    }
    if (strcmp (kind, "hello_delay") == 0) {
        self->hello_delay_ms =
            (int) cJSON_GetNumberValue (cJSON_GetObjectItem (body, "ms"));
        self->hello_delays = count;
        return 0;
    }
    if (strcmp (kind, "no_ready") == 0) {
        self->no_ready = count < 0 ? 1 : count;
        return 0;
    }
    if (strcmp (kind, "invalid_intents") == 0) {
        self->invalid_intents = count < 0 ? 1 : count;
        return 0;
    }
    if (strcmp (kind, "expire_session") == 0) {
        s_invalidate (self);
        return 0;
    }
    //  Acts on the open connections: the live one, or all when none is.
    bool live_only = s_live (self) != NULL;
    bool invalid = strcmp (kind, "invalid_session") == 0;
    bool resumable = cJSON_IsTrue (cJSON_GetObjectItem (body, "resumable"))
                     || cJSON_IsTrue (cJSON_GetObjectItem (body, "d"));
    int code = (int) cJSON_GetNumberValue (cJSON_GetObjectItem (body, "code"));
    const char *reason = s_str (body, "reason");
    if (strcmp (kind, "heartbeat_request") != 0 && strcmp (kind, "reconnect") != 0
        && !invalid && strcmp (kind, "close") != 0 && strcmp (kind, "drop") != 0)
        return -1;
    if (strcmp (kind, "close") == 0 && (code < 1000 || code > 4999))
        return -1;
    int touched = 0;
    bool kill = false;
    for (dc_conn_t *c = self->conns; c; c = c->next) {
        if (c->closing || (live_only && !c->live))
            continue;
        touched++;
        if (strcmp (kind, "heartbeat_request") == 0)
            s_write_op (c, 1, NULL);
        else if (strcmp (kind, "reconnect") == 0)
            s_write_op (c, 7, NULL);
        else if (invalid) {
            s_write_op (c, 9, cJSON_CreateBool (resumable));
            kill = kill || (!resumable && c->live);
            c->live = false;
            c->identified = false;
        }
        else if (strcmp (kind, "close") == 0) {
            kill = kill || (c->live && s_kills_session (code));
            s_close (c, code, reason ? reason : "", true);
        }
        else {
            //  A dead network: no close frame, the TCP connection just ends.
            c->closing = true;
            if (c->fd >= 0)
                shutdown (c->fd, SHUT_RDWR);
        }
    }
    if (kill)
        s_invalidate (self);
    return touched;
}
