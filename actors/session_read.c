/*  =========================================================================
    session_read - lists and gets of sessions and their messages, and the
    session.read actors that serve them on read connections of their own
    =========================================================================
*/
#include "session_internal.h"
#include "envelope.h"
#include "msg_names.h"

#include "actor.h"
#include "ids.h"
#include "log.h"
#include "settings.h"

#include <string.h>

//  Answers a store call that did not return 0: 1 is an unknown session
//  (404), anything else a store failure (500).
void
session_read_reply_store_rc (bus_worker_t *worker, bus_request_t *req, int rc)
{
    if (rc > 0)
        bus_worker_error (worker, req, ENVELOPE_NOT_FOUND, "not_found", "Unknown session",
                          "sessionKey");
    else
        bus_worker_error (worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "The session store failed", NULL);
}

//  The six fields of a session as the client sees them (no map header).
static void
s_pack_session_fields (mp_writer_t *w, const store_session_t *s)
{
    mp_kv_str (w, MK_sessionKey, s->key);
    mp_kv_str (w, MK_agentId, s->agent_id);
    mp_kv_str (w, MK_channel, s->channel);
    session_kv_time (w, "createdAt", s->created_at);
    session_kv_time (w, "updatedAt", s->updated_at);
    mp_kv_int (w, MK_messageCount, s->message_count);
}

static void
s_pack_session (mp_writer_t *w, const store_session_t *s)
{
    mp_map_begin (w);
    s_pack_session_fields (w, s);
    mp_map_end (w);
}

typedef struct {
    mp_writer_t items;  //  Packed items
    int n, limit;       //  Packed so far, page size
    char next[64];      //  Cursor after the last packed item
    bool more;          //  A row past the page exists
} page_t;

static int
s_list_row (void *arg, const store_session_t *s)
{
    page_t *pg = (page_t *) arg;
    if (pg->n == pg->limit) {
        pg->more = true;
        return 1;
    }
    s_pack_session (&pg->items, s);
    snprintf (pg->next, sizeof (pg->next), "%lld-%lld", (long long) s->updated_at,
              (long long) s->id);
    pg->n++;
    return 0;
}

//  Reads limit (1..SESSION_PAGE_MAX, default dflt).  0 or the error sent.
static int
s_get_limit (bus_worker_t *worker, bus_request_t *req, int dflt, int *limit)
{
    int64_t v = dflt;
    const msgpack_object *o = mp_get (req->body.root, MK_limit);
    if (o && !mp_get_int (req->body.root, MK_limit, &v))
        v = -1;
    if (v < 1 || v > SESSION_PAGE_MAX) {
        bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "limit must be an integer from 1 to 1000", "limit");
        return ENVELOPE_BAD_REQUEST;
    }
    *limit = (int) v;
    return 0;
}

static void
s_finish_page (mp_writer_t *w, page_t *pg)
{
    msgpack_sbuffer_write (&w->buf, pg->items.buf.data, pg->items.buf.size);
    mp_key (w, MK_nextCursor);
    if (pg->more)
        mp_put_str (w, pg->next);
    else
        msgpack_pack_nil (&w->pk);
}

void
session_read_list (store_t *store, bus_worker_t *worker, bus_request_t *req)
{
    const msgpack_object *b = req->body.root;
    page_t pg = {0};
    if (s_get_limit (worker, req, 50, &pg.limit))
        return;
    store_query_t q = {.limit = pg.limit + 1};
    char channel[64], agent[128], cursor[64];
    if (!mp_copy_str (b, MK_channel, channel, sizeof (channel)))
        q.channel = channel;
    if (!mp_copy_str (b, MK_agentId, agent, sizeof (agent)))
        q.agent_id = agent;
    if (mp_get (b, MK_cursor)) {
        long long u, id;
        char tail;
        if (mp_copy_str (b, MK_cursor, cursor, sizeof (cursor))
            || sscanf (cursor, "%lld-%lld%c", &u, &id, &tail) != 2) {
            bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                              "cursor is not one this gateway gave out", "cursor");
            return;
        }
        q.after = true;
        q.after_updated = u;
        q.after_id = id;
    }
    mp_writer_init (&pg.items);
    int rc = store_session_list (store, &q, s_list_row, &pg);
    if (rc < 0) {
        mp_writer_fini (&pg.items);
        bus_worker_error (worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "The session store failed", NULL);
        return;
    }
    mp_writer_t w;
    actor_reply_begin (&w);
    mp_key (&w, MK_sessions);
    msgpack_pack_array (&w.pk, (size_t) pg.n);
    s_finish_page (&w, &pg);
    actor_reply_map (worker, req, MT_SESSION_LIST_OK, &w);
    mp_writer_fini (&pg.items);
}

static int
s_message_row (void *arg, const store_message_t *m)
{
    page_t *pg = (page_t *) arg;
    if (pg->n == pg->limit) {
        pg->more = true;
        return 1;
    }
    mp_writer_t *w = &pg->items;
    bool reply = m->finish_reason != NULL;
    mp_map_begin (w);
    mp_kv_str (w, "role", m->role);
    mp_key (w, "content");
    mp_put_strn (w, m->content, m->content_len);
    session_kv_time (w, "createdAt", m->created_at);
    if (m->run_id)
        mp_kv_str (w, MK_runId, m->run_id);
    else
        mp_kv_nil (w, MK_runId);
    if (reply) {
        mp_kv_str (w, MK_model, m->model ? m->model : "");
        mp_kv_str (w, MK_finishReason, m->finish_reason);
        mp_key (w, MK_usage);
        mp_map_begin (w);
        mp_kv_int (w, "promptTokens", m->prompt_tokens);
        mp_kv_int (w, "completionTokens", m->completion_tokens);
        mp_kv_int (w, "totalTokens", m->prompt_tokens + m->completion_tokens);
        mp_map_end (w);
    }
    if (m->tool_calls) {
        mp_key (w, MK_toolCalls);
        session_pack_json_text (w, m->tool_calls);
    }
    if (m->tool_call_id)
        mp_kv_str (w, "toolCallId", m->tool_call_id);
    if (m->error) {
        mp_key (w, MK_error);
        session_pack_json_text (w, m->error);
    }
    mp_map_end (w);
    snprintf (pg->next, sizeof (pg->next), "%lld", (long long) m->pos);
    pg->n++;
    return 0;
}

void
session_read_get (store_t *store, bus_worker_t *worker, bus_request_t *req)
{
    const msgpack_object *b = req->body.root;
    char key[ENVELOPE_KEY_MAX + 1] = "";
    if (mp_copy_str (b, MK_sessionKey, key, sizeof (key))
        || !ids_session_key_valid (key)) {
        bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "Invalid session key", "sessionKey");
        return;
    }
    page_t pg = {0};
    if (s_get_limit (worker, req, 100, &pg.limit))
        return;
    int64_t after = -1;
    if (mp_get (b, MK_cursor)) {
        char cursor[32];
        long long pos;
        char tail;
        if (mp_copy_str (b, MK_cursor, cursor, sizeof (cursor))
            || sscanf (cursor, "%lld%c", &pos, &tail) != 1 || pos < 0) {
            bus_worker_error (worker, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                              "cursor is not one this gateway gave out", "cursor");
            return;
        }
        after = pos;
    }
    store_session_t s;
    int rc = store_session_get (store, key, &s);
    if (rc) {
        session_read_reply_store_rc (worker, req, rc);
        return;
    }
    //  The row is lent until the next store call: pack it first.
    mp_writer_t w;
    actor_reply_begin (&w);
    s_pack_session_fields (&w, &s);
    int64_t id = s.id;
    mp_writer_init (&pg.items);
    rc = store_messages (store, id, after, pg.limit + 1, s_message_row, &pg);
    if (rc < 0) {
        mp_writer_fini (&pg.items);
        mp_writer_fini (&w);
        bus_worker_error (worker, req, ENVELOPE_INTERNAL, "internal_error",
                          "The session store failed", NULL);
        return;
    }
    mp_key (&w, MK_messages);
    msgpack_pack_array (&w.pk, (size_t) pg.n);
    s_finish_page (&w, &pg);
    actor_reply_map (worker, req, MT_SESSION_GET_OK, &w);
    mp_writer_fini (&pg.items);
}

//  ---- Readers: session.read, lists and gets on connections of their own -------------------------
//
//  SQLite in WAL mode lets readers run beside the writer, so lists and gets
//  are served by sessionsReaders actors with a read connection each, never
//  queued behind the session actor's commits; the broker spreads requests
//  over them.  They see what the writer committed (a reply is committed
//  before its chat.done goes out, so a get after a done finds it).

void
session_read_store_url (const session_settings_t *cfg, char *url, size_t cap)
{
    if (cfg->store && *cfg->store)
        snprintf (url, cap, "%s", cfg->store);
    else
        snprintf (url, cap, "sqlite:%s/clawgate.db", cfg->state_dir);
}

//  A session.read actor's state: its read connection.
typedef struct {
    store_t *store;  //  Read connection to the store
} reader_t;

static int
s_reader_init (void *state, const actor_args_t *args, zloop_t *loop, bus_worker_t *worker)
{
    reader_t *self = (reader_t *) state;
    char url[4200], err[512];
    session_read_store_url (&args->settings->session, url, sizeof (url));
    self->store = store_open_reader (url, err, sizeof (err));
    if (!self->store) {
        log_error ("session", "reader: %s", err);
        return -1;
    }
    return 0;
}

static void
s_reader_list (void *state, bus_worker_t *worker, bus_request_t *req)
{
    session_read_list (((reader_t *) state)->store, worker, req);
}

static void
s_reader_get (void *state, bus_worker_t *worker, bus_request_t *req)
{
    session_read_get (((reader_t *) state)->store, worker, req);
}

static const actor_route_t s_reader_routes[] = {
    {MT_SESSION_LIST, s_reader_list}, {MT_SESSION_GET, s_reader_get}, {NULL, NULL}};

static void
s_reader_fini (void *state)
{
    store_close (&((reader_t *) state)->store);
}

static const actor_def_t s_reader_def = {.service = "session.read",
                                         .size = sizeof (reader_t),
                                         .init = s_reader_init,
                                         .routes = s_reader_routes,
                                         .fini = s_reader_fini};

void
session_read_actor (zsock_t *pipe, void *args)
{
    actor_run (pipe, (actor_args_t *) args, &s_reader_def);
}
