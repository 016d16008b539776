/*  =========================================================================
    cdp - a DevTools WebSocket on civetweb's client, handed to one thread

    Memory: each queued message is a cJSON tree made on civetweb's reader
    thread and owned by the queue until cdp_recv hands it to the caller.
    The fragment buffer belongs to the reader thread alone.  The cdp_t
    itself outlives the reader thread: cdp_destroy joins that thread (in
    mg_close_connection) before freeing anything it could touch.
    =========================================================================
*/
#include "cdp.h"

#include "json_in.h"
#include "log.h"

#include <civetweb.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

typedef struct cdp_item_t cdp_item_t;
struct cdp_item_t {
    cJSON *msg;  //  Owned
    cdp_item_t *next;
};

struct cdp_t {
    struct mg_connection *conn;  //  civetweb's; freed by mg_close_connection
    int efd;                     //  eventfd: messages or the close wait
    size_t max_message;          //  Longest message we accept
    int next_id;                 //  Last command id (owner thread only)
    //  Shared with civetweb's reader thread, under lock.
    pthread_mutex_t lock;
    cdp_item_t *head, *tail;  //  Messages not yet popped
    bool closed;              //  The reader thread saw the end
    //  Reader thread only: a message arriving in several frames.
    char *frag;  //  Bytes so far (owned)
    size_t frag_len, frag_cap;
    bool frag_over;      //  Past max_message: being dropped
    char frag_head[32];  //  Its first bytes (for its "id")
};

static void
s_wake (cdp_t *self)
{
    uint64_t one = 1;
    if (write (self->efd, &one, sizeof (one)) < 0) {
        //  Only EAGAIN (counter saturated) is possible: it is readable.
    }
}

//  Queues msg (takes ownership).  Reader thread.
static void
s_push (cdp_t *self, cJSON *msg)
{
    cdp_item_t *item = (cdp_item_t *) calloc (1, sizeof (cdp_item_t));
    if (!item) {
        cJSON_Delete (msg);
        return;
    }
    item->msg = msg;
    pthread_mutex_lock (&self->lock);
    if (self->tail)
        self->tail->next = item;
    else
        self->head = item;
    self->tail = item;
    pthread_mutex_unlock (&self->lock);
    s_wake (self);
}

//  A message too big to keep: fail the command it answers, if we can tell
//  which from its first bytes ({"id":N,...}).  Reader thread.
static void
s_oversize (cdp_t *self, const char *head, size_t len, size_t total)
{
    char buf[32];
    size_t n = len < sizeof (buf) - 1 ? len : sizeof (buf) - 1;
    memcpy (buf, head, n);
    buf[n] = 0;
    int id = 0;
    if (sscanf (buf, "{\"id\":%d", &id) != 1 || id <= 0) {
        log_warn ("cdp", "dropped a %zu-byte message (limit %zu)", total,
                  self->max_message);
        return;
    }
    log_warn ("cdp", "reply to command %d is %zu bytes (limit %zu): failed", id, total,
              self->max_message);
    cJSON *err = cJSON_CreateObject ();
    cJSON_AddNumberToObject (err, "id", id);
    cJSON *e = cJSON_AddObjectToObject (err, "error");
    cJSON_AddNumberToObject (e, "code", -32000);
    cJSON_AddStringToObject (e, "message",
                             "Reply larger than the gateway "
                             "accepts from Chromium");
    s_push (self, err);
}

static void
s_parse_push (cdp_t *self, const char *data, size_t len)
{
    cJSON *msg =
        json_in_parse (data, len, 0, JSON_IN_OBJECT | JSON_IN_NUL_OK, NULL, NULL);
    if (!msg) {
        log_warn ("cdp", "dropped a malformed %zu-byte message", len);
        cJSON_Delete (msg);
        return;
    }
    s_push (self, msg);
}

//  civetweb's data callback, on its client thread.  Returns 1 to keep the
//  connection, 0 to close it.
static int
s_on_data (struct mg_connection *conn, int bits, char *data, size_t len, void *arg)
{
    cdp_t *self = (cdp_t *) arg;
    int opcode = bits & 0x0f;
    bool fin = (bits & 0x80) != 0;
    if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
        return 0;
    if (opcode != MG_WEBSOCKET_OPCODE_TEXT && opcode != MG_WEBSOCKET_OPCODE_BINARY
        && opcode != MG_WEBSOCKET_OPCODE_CONTINUATION)
        return 1;  //  Ping/pong: nothing for us
    if (opcode != MG_WEBSOCKET_OPCODE_CONTINUATION) {
        //  A new message starts; a fragment left over is abandoned.
        self->frag_len = 0;
        self->frag_over = false;
        if (fin) {
            if (len > self->max_message)
                s_oversize (self, data, len, len);
            else
                s_parse_push (self, data, len);
            return 1;
        }
        size_t n = len < sizeof (self->frag_head) ? len : sizeof (self->frag_head);
        memcpy (self->frag_head, data, n);
        if (n < sizeof (self->frag_head))
            self->frag_head[n] = 0;
    }
    //  Fragments: append, bounded by max_message.
    if (!self->frag_over && self->frag_len + len > self->max_message)
        self->frag_over = true;
    if (!self->frag_over) {
        if (self->frag_len + len > self->frag_cap) {
            size_t cap = self->frag_cap ? self->frag_cap : 65536;
            while (cap < self->frag_len + len)
                cap *= 2;
            char *grown = (char *) realloc (self->frag, cap);
            if (!grown)
                self->frag_over = true;
            else {
                self->frag = grown;
                self->frag_cap = cap;
            }
        }
        if (!self->frag_over) {
            memcpy (self->frag + self->frag_len, data, len);
            self->frag_len += len;
        }
    }
    else
        self->frag_len += len;  //  Counted only, for the log
    if (fin) {
        if (self->frag_over)
            s_oversize (self, self->frag_head,
                        strnlen (self->frag_head, sizeof (self->frag_head)),
                        self->frag_len);
        else
            s_parse_push (self, self->frag, self->frag_len);
        self->frag_len = 0;
        self->frag_over = false;
        //  A big buffer is not kept between messages.
        if (self->frag_cap > 1024 * 1024) {
            free (self->frag);
            self->frag = NULL;
            self->frag_cap = 0;
        }
    }
    return 1;
}

//  civetweb's close callback, on its client thread, once.
static void
s_on_close (const struct mg_connection *conn, void *arg)
{
    cdp_t *self = (cdp_t *) arg;
    pthread_mutex_lock (&self->lock);
    self->closed = true;
    pthread_mutex_unlock (&self->lock);
    s_wake (self);
}

cdp_t *
cdp_connect (int port, const char *path, size_t max_message, char *err, size_t errlen)
{
    cdp_t *self = (cdp_t *) calloc (1, sizeof (cdp_t));
    if (!self) {
        snprintf (err, errlen, "out of memory");
        return NULL;
    }
    self->max_message = max_message;
    self->efd = eventfd (0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (self->efd < 0) {
        snprintf (err, errlen, "eventfd failed");
        free (self);
        return NULL;
    }
    pthread_mutex_init (&self->lock, NULL);
    char ebuf[256] = "";
    self->conn = mg_connect_websocket_client ("127.0.0.1", port, 0, ebuf, sizeof (ebuf),
                                              path, NULL, s_on_data, s_on_close, self);
    if (!self->conn) {
        snprintf (err, errlen, "DevTools WebSocket on port %d: %s", port,
                  ebuf[0] ? ebuf : "connection failed");
        close (self->efd);
        pthread_mutex_destroy (&self->lock);
        free (self);
        return NULL;
    }
    return self;
}

void
cdp_destroy (cdp_t **self_p)
{
    cdp_t *self = *self_p;
    if (!self)
        return;
    //  Joins the reader thread: nothing below races with it.
    mg_close_connection (self->conn);
    while (self->head) {
        cdp_item_t *item = self->head;
        self->head = item->next;
        cJSON_Delete (item->msg);
        free (item);
    }
    free (self->frag);
    close (self->efd);
    pthread_mutex_destroy (&self->lock);
    free (self);
    *self_p = NULL;
}

int
cdp_fd (cdp_t *self)
{
    return self->efd;
}

int
cdp_send (cdp_t *self, const char *method, const cJSON *params, const char *session_id)
{
    pthread_mutex_lock (&self->lock);
    bool closed = self->closed;
    pthread_mutex_unlock (&self->lock);
    if (closed)
        return -1;
    int id = ++self->next_id;
    cJSON *cmd = cJSON_CreateObject ();
    cJSON_AddNumberToObject (cmd, "id", id);
    cJSON_AddStringToObject (cmd, "method", method);
    if (session_id && *session_id)
        cJSON_AddStringToObject (cmd, "sessionId", session_id);
    //  A reference: params stays the caller's.
    if (params)
        cJSON_AddItemReferenceToObject (cmd, "params", (cJSON *) params);
    else
        cJSON_AddObjectToObject (cmd, "params");
    char *text = cJSON_PrintUnformatted (cmd);
    cJSON_Delete (cmd);
    if (!text)
        return -1;
    int rc = mg_websocket_client_write (self->conn, MG_WEBSOCKET_OPCODE_TEXT, text,
                                        strlen (text));
    cJSON_free (text);
    return rc > 0 ? id : -1;
}

cJSON *
cdp_recv (cdp_t *self)
{
    pthread_mutex_lock (&self->lock);
    cdp_item_t *item = self->head;
    if (item) {
        self->head = item->next;
        if (!self->head)
            self->tail = NULL;
    }
    if (!self->head && !self->closed) {
        //  Cleared under the lock: a push after this sets it again.
        uint64_t count;
        if (read (self->efd, &count, sizeof (count)) < 0) {
            //  EAGAIN: already clear.
        }
    }
    pthread_mutex_unlock (&self->lock);
    if (!item)
        return NULL;
    cJSON *msg = item->msg;
    free (item);
    return msg;
}

bool
cdp_closed (cdp_t *self)
{
    pthread_mutex_lock (&self->lock);
    bool closed = self->closed && !self->head;
    pthread_mutex_unlock (&self->lock);
    return closed;
}

bool
cdp_reply_id (const cJSON *msg, int *id)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (msg, "id");
    if (!cJSON_IsNumber (v) || !(v->valuedouble >= 1 && v->valuedouble <= INT_MAX)
        || v->valuedouble != (double) (int) v->valuedouble)
        return false;
    *id = (int) v->valuedouble;
    return true;
}
