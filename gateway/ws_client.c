/*  =========================================================================
    ws_client - client queues and the writers that send them (see
    ws_client.h)
    =========================================================================
*/
#include "ws_client.h"

#include "ids.h"
#include "log.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

struct ws_qitem_t {
    ws_frame_t *frame;  //  One reference, owned
    ws_qitem_t *next;
};

//  A queue past queueFrames is a lagging client only if its writer has
//  made no progress for this long: a burst (a fast model, thousands of
//  deltas at once) briefly outruns any writer while the client reads fine.
#define WS_LAG_MS 1000
//  ... and past this many times queueFrames it is dropped regardless, so
//  memory stays bounded.
#define WS_HARD_FACTOR 16

struct ws_writers_t {
    pthread_mutex_t lock;  //  Guards everything below
    pthread_cond_t cond;   //  Work arrived, or stopping
    int idle;              //  Writers waiting on cond
    zlistx_t *work;        //  ws_client_t * (each holds a user)
    bool stopping;
    int queue_frames;  //  The lag limit
    pthread_t *threads;
    int n_threads;
};

//  ---- Clients ----------------------------------------------------------------

ws_client_t *
ws_client_new (uint64_t id, struct mg_connection *conn, const auth_ctx_t *auth)
{
    ws_client_t *c = (ws_client_t *) calloc (1, sizeof (ws_client_t));
    if (!c)
        return NULL;
    c->id = id;
    c->conn = conn;
    c->auth = *auth;
    pthread_mutex_init (&c->lock, NULL);
    pthread_cond_init (&c->idle, NULL);
    ids_uuid (c->client_id, sizeof (c->client_id), "");
    return c;
}

//  Drops the queue; lock held.
static void
s_flush (ws_client_t *c)
{
    while (c->head) {
        ws_qitem_t *q = c->head;
        c->head = q->next;
        ws_frame_unref (q->frame);
        free (q);
    }
    c->tail = NULL;
    c->queued = 0;
}

void
ws_client_destroy (ws_client_t **self_p)
{
    ws_client_t *c = *self_p;
    if (!c)
        return;
    s_flush (c);
    pthread_cond_destroy (&c->idle);
    pthread_mutex_destroy (&c->lock);
    ws_client_frag_reset (c);
    free (c);
    *self_p = NULL;
}

void
ws_client_use (ws_client_t *c)
{
    pthread_mutex_lock (&c->lock);
    c->users++;
    pthread_mutex_unlock (&c->lock);
}

void
ws_client_put (ws_client_t *c)
{
    pthread_mutex_lock (&c->lock);
    if (--c->users == 0)
        pthread_cond_broadcast (&c->idle);
    pthread_mutex_unlock (&c->lock);
}

bool
ws_client_kill (ws_client_t *c)
{
    pthread_mutex_lock (&c->lock);
    bool dead = c->dead;
    c->dead = true;
    s_flush (c);
    pthread_mutex_unlock (&c->lock);
    return dead;
}

void
ws_client_close (ws_client_t *c)
{
    pthread_mutex_lock (&c->lock);
    c->dead = true;
    s_flush (c);
    while (c->users > 0)
        pthread_cond_wait (&c->idle, &c->lock);
    pthread_mutex_unlock (&c->lock);
}

void
ws_client_frag_reset (ws_client_t *c)
{
    free (c->frag);
    c->frag = NULL;
    c->frag_len = 0;
    c->frag_opcode = 0;
    c->frag_over = false;
}

//  ---- Queueing ---------------------------------------------------------------

void
ws_writers_flush (ws_writers_t *self, ws_batch_t *s)
{
    if (!s->n)
        return;
    pthread_mutex_lock (&self->lock);
    for (int i = 0; i < s->n; i++)
        zlistx_add_end (self->work, s->c[i]);
    //  A busy writer comes back for more by itself: wake only those that
    //  sleep, all of them when there is work enough to share.
    if (self->idle > 0) {
        if (s->n > 1)
            pthread_cond_broadcast (&self->cond);
        else
            pthread_cond_signal (&self->cond);
    }
    pthread_mutex_unlock (&self->lock);
    s->n = 0;
}

void
ws_writers_send (ws_writers_t *self, ws_client_t *c, ws_frame_t *f, ws_batch_t *batch)
{
    if (!f)
        return;
    pthread_mutex_lock (&c->lock);
    if (c->dead || c->closing) {
        pthread_mutex_unlock (&c->lock);
        return;
    }
    ws_frame_t *add = f;
    int64_t now = zclock_mono ();
    if (c->queued == 0)
        c->progress = now;
    int limit = self->queue_frames;
    if (c->queued >= limit
        && (now - c->progress >= WS_LAG_MS || c->queued >= limit * WS_HARD_FACTOR)) {
        log_warn ("ws", "client %llu lagged %d frames behind: dropping it",
                  (unsigned long long) c->id, c->queued);
        s_flush (c);
        add = ws_frame_text ("{\"type\":\"lagged\"}");
        c->closing = true;
    }
    else
        ws_frame_ref (add);
    ws_qitem_t *q = add ? (ws_qitem_t *) calloc (1, sizeof (ws_qitem_t)) : NULL;
    if (q) {
        q->frame = add;
        if (c->tail)
            c->tail->next = q;
        else
            c->head = q;
        c->tail = q;
        c->queued++;
    }
    else
        ws_frame_unref (add);
    bool wake = !c->scheduled;
    if (wake) {
        c->scheduled = true;
        c->users++;  //  The work list's
    }
    pthread_mutex_unlock (&c->lock);
    if (wake) {
        ws_batch_t one = {.n = 0};
        ws_batch_t *s = batch ? batch : &one;
        s->c[s->n++] = c;
        if (s->n == WS_BATCH_MAX || !batch)
            ws_writers_flush (self, s);
    }
}

//  ---- Writers ----------------------------------------------------------------

//  Sends c's queue until it is empty (the calling writer owns c's sending
//  meanwhile: c->scheduled).
static void
s_write_queue (ws_client_t *c)
{
    while (true) {
        pthread_mutex_lock (&c->lock);
        ws_qitem_t *q = c->dead ? NULL : c->head;
        if (q) {
            c->head = q->next;
            if (!c->head)
                c->tail = NULL;
            c->queued--;
        }
        bool close_now = !q && c->closing && !c->dead;
        if (!q)
            c->scheduled = false;
        pthread_mutex_unlock (&c->lock);
        if (close_now) {
            //  After the lagged notice: a close frame, then silence.
            mg_websocket_write (c->conn, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "\x03\xe8",
                                2);
            ws_client_kill (c);
        }
        if (!q)
            break;
        //  civetweb's own writes to this connection (pongs, close
        //  answers) take the same lock.
        mg_lock_connection (c->conn);
        int rc = mg_write (c->conn, q->frame->wire, q->frame->wire_len);
        mg_unlock_connection (c->conn);
        if (rc >= 0 && (size_t) rc < q->frame->wire_len)
            rc = -1;  //  Cut short: the stream is no longer framed
        ws_frame_unref (q->frame);
        free (q);
        pthread_mutex_lock (&c->lock);
        c->progress = zclock_mono ();
        pthread_mutex_unlock (&c->lock);
        if (rc <= 0) {
            pthread_mutex_lock (&c->lock);
            c->dead = true;
            s_flush (c);
            c->scheduled = false;
            pthread_mutex_unlock (&c->lock);
            break;
        }
    }
}

static void *
s_writer (void *arg)
{
    ws_writers_t *self = (ws_writers_t *) arg;
    pthread_setname_np (pthread_self (), "cg-ws-writer");
    while (true) {
        pthread_mutex_lock (&self->lock);
        while (!self->stopping && zlistx_size (self->work) == 0) {
            self->idle++;
            pthread_cond_wait (&self->cond, &self->lock);
            self->idle--;
        }
        //  One client at a time: a writer blocked on a slow client's
        //  socket must not hold others that another writer could serve.
        ws_client_t *c = (ws_client_t *) zlistx_first (self->work);
        if (c)
            zlistx_delete (self->work, zlistx_cursor (self->work));
        bool stop = !c && self->stopping;
        pthread_mutex_unlock (&self->lock);
        if (stop)
            break;
        if (c) {
            s_write_queue (c);
            ws_client_put (c);
        }
    }
    return NULL;
}

ws_writers_t *
ws_writers_new (int n, int queue_frames)
{
    ws_writers_t *self = (ws_writers_t *) calloc (1, sizeof (ws_writers_t));
    if (!self)
        return NULL;
    pthread_mutex_init (&self->lock, NULL);
    pthread_cond_init (&self->cond, NULL);
    self->queue_frames = queue_frames;
    self->work = zlistx_new ();
    self->threads = (pthread_t *) calloc ((size_t) n, sizeof (pthread_t));
    if (!self->work || !self->threads) {
        ws_writers_destroy (&self);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        if (pthread_create (&self->threads[i], NULL, s_writer, self) == 0)
            self->n_threads++;
    return self;
}

void
ws_writers_destroy (ws_writers_t **self_p)
{
    ws_writers_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock (&self->lock);
    self->stopping = true;
    pthread_cond_broadcast (&self->cond);
    pthread_mutex_unlock (&self->lock);
    for (int i = 0; i < self->n_threads; i++)
        pthread_join (self->threads[i], NULL);
    zlistx_destroy (&self->work);
    free (self->threads);
    pthread_cond_destroy (&self->cond);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}
