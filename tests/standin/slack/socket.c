/*  =========================================================================
    socket - cg_slackstandin's Socket Mode: the /link WebSocket, its
    tickets, and the ticker thread that delivers envelopes, redelivers the
    unacked ones, pings healthy sockets and closes warned ones

    Part of cg_slackstandin (see slstandin.c).  A ticket from
    apps.connections.open is good for one upgrade; an unknown or used one
    gets 401 and no upgrade.  Each envelope goes to one live socket chosen
    at random (as Slack does: a leaked or deaf socket eats events until the
    ack timeout sends them elsewhere), is redelivered with retry_attempt+1
    and retry_reason "timeout" when its ack does not come within --ack-ms,
    and is dropped after SL_MAX_RETRIES redeliveries.

    A deaf socket stays open and silent: civetweb's descriptor for it is
    swapped (dup2) for one end of a socketpair nobody writes, while we keep
    a copy of the TCP socket so that it stays up; nothing is read from the
    client (no pongs, no acks) and nothing is written to it (no pings, no
    events).  Closing it shuts the TCP copy and the socketpair down.
    =========================================================================
*/
#include "slstandin.h"
#include "common.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

//  ---- Writing ------------------------------------------------------------------

//  Writes text as one frame unless the socket is closed or deaf.  Lock held.
static void
s_write (sl_socket_t *sock, int opcode, const char *text, size_t len)
{
    if (!sock->conn || sock->deaf)
        return;
    mg_websocket_write (sock->conn, opcode, text, len);
}

static void
s_write_json (sl_socket_t *sock, cJSON *root)
{
    char *text = cJSON_PrintUnformatted (root);
    if (text)
        s_write (sock, MG_WEBSOCKET_OPCODE_TEXT, text, strlen (text));
    cJSON_free (text);
}

//  Sends {"type":"disconnect","reason":reason,"debug_info":{...}}.
static void
s_disconnect (sl_socket_t *sock, const char *reason)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "type", "disconnect");
    cJSON_AddStringToObject (root, "reason", reason);
    cJSON *debug = cJSON_AddObjectToObject (root, "debug_info");
    cJSON_AddStringToObject (debug, "host", "applink-standin");
    s_write_json (sock, root);
    cJSON_Delete (root);
}

//  Ends the connection: with a close frame (clean) or without (a drop).
//  civetweb then sees the end of the stream and calls the close handler.
static void
s_end (sl_socket_t *sock, bool clean)
{
    if (!sock->conn)
        return;
    if (sock->deaf) {
        if (sock->keep_fd >= 0)
            shutdown (sock->keep_fd, SHUT_RDWR);
        if (sock->pair_fd >= 0) {
            close (sock->pair_fd);
            sock->pair_fd = -1;
        }
        return;
    }
    if (clean)
        s_write (sock, MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE, "\x03\xe8", 2);
    if (sock->fd >= 0)
        shutdown (sock->fd, SHUT_RDWR);
}

//  Makes the socket deaf (see the banner).  Lock held.
static void
s_make_deaf (sl_socket_t *sock)
{
    if (sock->deaf || !sock->conn || sock->fd < 0)
        return;
    int pair[2];
    if (socketpair (AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0)
        return;
    int keep = dup (sock->fd);
    if (keep < 0) {
        close (pair[0]);
        close (pair[1]);
        return;
    }
    fcntl (pair[0], F_SETFL, fcntl (pair[0], F_GETFL) | O_NONBLOCK);
    dup2 (pair[0], sock->fd);
    close (pair[0]);
    sock->keep_fd = keep;
    sock->pair_fd = pair[1];
    sock->deaf = true;
}

int
socket_live (sl_t *self)
{
    int n = 0;
    for (sl_socket_t *s = self->sockets; s; s = s->next)
        if (s->conn && !s->rejected)
            n++;
    return n;
}

//  ---- Handlers -----------------------------------------------------------------

static int
s_connect (const struct mg_connection *conn, void *cbdata)
{
    sl_t *self = (sl_t *) cbdata;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    char ticket[128] = "";
    if (ri->query_string)
        mg_get_var (ri->query_string, strlen (ri->query_string), "ticket", ticket,
                    sizeof (ticket));
    bool found = false;
    pthread_mutex_lock (&self->lock);
    int i = 0;
    cJSON *item;
    cJSON_ArrayForEach (item, self->tickets)
    {
        if (ticket[0] && strcmp (cJSON_GetStringValue (item), ticket) == 0) {
            found = true;
            break;
        }
        i++;
    }
    if (found)
        cJSON_DeleteItemFromArray (self->tickets, i);
    else
        store_count (self->counters, "refused_upgrades", 1);
    pthread_mutex_unlock (&self->lock);
    if (found)
        return 0;
    //  civetweb sends nothing when we refuse; say why before it hangs up.
    mg_printf ((struct mg_connection *) conn,
               "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
               "Content-Length: 30\r\nConnection: close\r\n\r\n"
               "{\"ok\":false,\"error\":\"invalid\"}");
    return 1;
}

static void
s_ready (struct mg_connection *conn, void *cbdata)
{
    sl_t *self = (sl_t *) cbdata;
    sl_socket_t *sock = calloc (1, sizeof (sl_socket_t));
    if (!sock)
        return;
    int fd = standin_socket (conn, self->port);
    pthread_mutex_lock (&self->lock);
    sock->id = self->next_socket++;
    sock->conn = conn;
    sock->fd = fd;
    sock->keep_fd = -1;
    sock->pair_fd = -1;
    sock->opened_ms = sl_wall_ms ();
    sock->ping_at = sl_mono_ms () + self->ping_ms;
    int live = socket_live (self);
    sock->next = self->sockets;
    self->sockets = sock;
    mg_set_user_connection_data (conn, sock);
    if (live >= self->max_sockets) {
        sock->rejected = true;
        store_count (self->counters, "rejected_sockets", 1);
        s_disconnect (sock, "too_many_websockets");
        s_end (sock, true);
    }
    else {
        store_count (self->counters, "sockets_opened", 1);
        cJSON *hello = cJSON_CreateObject ();
        cJSON_AddStringToObject (hello, "type", "hello");
        cJSON_AddNumberToObject (hello, "num_connections", live + 1);
        cJSON *debug = cJSON_AddObjectToObject (hello, "debug_info");
        cJSON_AddStringToObject (debug, "host", "applink-standin");
        cJSON_AddNumberToObject (debug, "build_number", 1);
        cJSON_AddNumberToObject (debug, "approximate_connection_time", 3600);
        cJSON *info = cJSON_AddObjectToObject (hello, "connection_info");
        cJSON_AddStringToObject (info, "app_id", "A0001");
        s_write_json (sock, hello);
        cJSON_Delete (hello);
        if (self->deaf_next > 0) {
            self->deaf_next--;
            s_make_deaf (sock);
        }
    }
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
}

static int
s_data (struct mg_connection *conn, int bits, char *data, size_t len, void *cbdata)
{
    sl_t *self = (sl_t *) cbdata;
    sl_socket_t *sock = (sl_socket_t *) mg_get_user_connection_data (conn);
    int opcode = bits & 0x0F;
    if (!sock || opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE)
        return 0;
    pthread_mutex_lock (&self->lock);
    if (opcode == MG_WEBSOCKET_OPCODE_PONG)
        store_count (self->counters, "pongs", 1);
    else if (opcode == MG_WEBSOCKET_OPCODE_TEXT && !sock->deaf) {
        cJSON *root = cJSON_ParseWithLength (data, len);
        const char *id = cJSON_GetStringValue (cJSON_GetObjectItem (root, "envelope_id"));
        bool known = false;
        for (size_t i = 0; id && i < self->envelope_len; i++)
            if (strcmp (self->envelopes[i].id, id) == 0) {
                store_remove (self, i);
                known = true;
                break;
            }
        if (known) {
            sock->acks++;
            store_count (self->counters, "acks", 1);
            store_save (self);
        }
        else
            store_count (self->counters, id ? "stray_acks" : "other_messages", 1);
        cJSON_Delete (root);
    }
    pthread_mutex_unlock (&self->lock);
    return 1;
}

static void
s_close (const struct mg_connection *conn, void *cbdata)
{
    sl_t *self = (sl_t *) cbdata;
    sl_socket_t *sock = (sl_socket_t *) mg_get_user_connection_data (conn);
    if (!sock)
        return;
    pthread_mutex_lock (&self->lock);
    sock->conn = NULL;
    if (sock->keep_fd >= 0)
        close (sock->keep_fd);
    if (sock->pair_fd >= 0)
        close (sock->pair_fd);
    sock->keep_fd = sock->pair_fd = -1;
    if (!sock->rejected)
        store_count (self->counters, "sockets_closed", 1);
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
}

void
socket_register (sl_t *self)
{
    mg_set_websocket_handler (self->ctx, "/link", s_connect, s_ready, s_data, s_close,
                              self);
}

//  ---- Faults -------------------------------------------------------------------

int
socket_fault (sl_t *self, const char *kind, const char *which, int grace_ms)
{
    sl_socket_t *newest = NULL, *oldest = NULL;
    for (sl_socket_t *s = self->sockets; s; s = s->next)
        if (s->conn && !s->rejected) {
            if (!newest)
                newest = s;
            oldest = s;
        }
    int hit = 0;
    for (sl_socket_t *s = self->sockets; s; s = s->next) {
        if (!s->conn || s->rejected)
            continue;
        if (strcmp (which, "all") != 0 && !(strcmp (which, "newest") == 0 && s == newest)
            && !(strcmp (which, "oldest") == 0 && s == oldest) && atoi (which) != s->id)
            continue;
        hit++;
        if (strcmp (kind, "warning") == 0 || strcmp (kind, "refresh_requested") == 0) {
            s_disconnect (s, kind);
            s->close_at = sl_mono_ms () + (grace_ms >= 0 ? grace_ms : self->grace_ms);
        }
        else if (strcmp (kind, "link_disabled") == 0
                 || strcmp (kind, "too_many_websockets") == 0) {
            s_disconnect (s, kind);
            s->closing = true;
            s_end (s, true);
        }
        else if (strcmp (kind, "deaf") == 0)
            s_make_deaf (s);
        else if (strcmp (kind, "drop") == 0) {
            s->closing = true;
            s_end (s, false);
        }
        else if (strcmp (kind, "close") == 0) {
            s->closing = true;
            s_end (s, true);
        }
        else
            hit--;
    }
    pthread_cond_broadcast (&self->changed);
    return hit;
}

cJSON *
socket_list (sl_t *self)
{
    cJSON *list = cJSON_CreateArray ();
    for (sl_socket_t *s = self->sockets; s; s = s->next) {
        cJSON *entry = cJSON_CreateObject ();
        cJSON_AddNumberToObject (entry, "id", s->id);
        cJSON_AddStringToObject (entry, "state",
                                 s->rejected ? "rejected"
                                 : !s->conn  ? "closed"
                                 : s->deaf   ? "deaf"
                                             : "open");
        cJSON_AddBoolToObject (entry, "closing", s->closing || s->close_at);
        cJSON_AddNumberToObject (entry, "opened_ms", (double) s->opened_ms);
        cJSON_AddNumberToObject (entry, "delivered", s->delivered);
        cJSON_AddNumberToObject (entry, "acks", s->acks);
        cJSON_AddItemToArray (list, entry);
    }
    return list;
}

//  ---- Ticker -------------------------------------------------------------------

//  Writes envelope e to sock.  Lock held.
static void
s_deliver (sl_t *self, sl_envelope_t *e, sl_socket_t *sock)
{
    size_t cap = strlen (e->payload) + 256;
    char *text = malloc (cap);
    if (!text)
        return;
    snprintf (text, cap,
              "{\"type\":\"events_api\",\"envelope_id\":\"%s\",\"payload\":%s,"
              "\"accepts_response_payload\":false,\"retry_attempt\":%d,"
              "\"retry_reason\":\"%s\"}",
              e->id, e->payload, e->sends, e->sends ? "timeout" : "");
    s_write (sock, MG_WEBSOCKET_OPCODE_TEXT, text, strlen (text));
    free (text);
    if (e->sends)
        store_count (self->counters, "redeliveries", 1);
    e->sends++;
    e->socket = sock->id;
    e->sent_ms = sl_mono_ms ();
    sock->delivered++;
    store_count (self->counters, "delivered", 1);
}

//  A random live socket for e, or NULL.  Lock held.
static sl_socket_t *
s_pick (sl_t *self, sl_envelope_t *e)
{
    sl_socket_t *choice[256];
    int n = 0;
    for (sl_socket_t *s = self->sockets; s && n < 256; s = s->next)
        if (s->conn && !s->rejected && !s->closing)
            choice[n++] = s;
    if (e->want_socket)
        for (int i = 0; i < n; i++)
            if (choice[i]->id == e->want_socket)
                return choice[i];
    return n ? choice[rand_r (&self->seed) % (unsigned) n] : NULL;
}

//  One pass: timeouts, deliveries, pings, closes.  Returns the monotonic
//  ms of the next thing to do.  Lock held.
static long long
s_tick (sl_t *self)
{
    long long now = sl_mono_ms ();
    long long next = now + 250;
    bool changed = false;
    for (size_t i = 0; i < self->envelope_len;) {
        sl_envelope_t *e = &self->envelopes[i];
        if (e->sent_ms && now - e->sent_ms >= self->ack_ms) {
            if (e->sends > SL_MAX_RETRIES) {
                cJSON *entry = cJSON_CreateObject ();
                cJSON_AddStringToObject (entry, "envelope_id", e->id);
                cJSON_AddStringToObject (entry, "event_id", e->event_id);
                cJSON_AddNumberToObject (entry, "sends", e->sends);
                cJSON_AddItemToArray (self->dropped, entry);
                store_count (self->counters, "dropped", 1);
                store_remove (self, i);
                changed = true;
                continue;
            }
            e->sent_ms = 0;
        }
        if (!e->sent_ms) {
            sl_socket_t *sock = s_pick (self, e);
            if (sock) {
                s_deliver (self, e, sock);
                changed = true;
            }
        }
        if (e->sent_ms && e->sent_ms + self->ack_ms < next)
            next = e->sent_ms + self->ack_ms;
        i++;
    }
    for (sl_socket_t *s = self->sockets; s; s = s->next) {
        if (!s->conn || s->rejected)
            continue;
        if (s->close_at && now >= s->close_at) {
            s->close_at = 0;
            s->closing = true;
            s_end (s, true);
            continue;
        }
        if (s->close_at && s->close_at < next)
            next = s->close_at;
        if (!s->deaf && !s->closing && now >= s->ping_at) {
            s_write (s, MG_WEBSOCKET_OPCODE_PING, "", 0);
            store_count (self->counters, "pings", 1);
            s->ping_at = now + self->ping_ms;
        }
        if (!s->deaf && s->ping_at < next)
            next = s->ping_at;
    }
    if (changed)
        store_save (self);
    return next;
}

static void *
s_ticker (void *arg)
{
    sl_t *self = (sl_t *) arg;
    pthread_mutex_lock (&self->lock);
    while (!atomic_load (&self->stopping)) {
        long long next = s_tick (self);
        long long wait = next - sl_mono_ms ();
        if (wait < 1)
            wait = 1;
        struct timespec until;
        clock_gettime (CLOCK_MONOTONIC, &until);
        until.tv_sec += wait / 1000;
        until.tv_nsec += (long) (wait % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait (&self->changed, &self->lock, &until);
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

int
socket_ticker_start (sl_t *self)
{
    return pthread_create (&self->ticker, NULL, s_ticker, self) == 0 ? 0 : -1;
}

void
socket_ticker_stop (sl_t *self)
{
    pthread_mutex_lock (&self->lock);
    pthread_cond_broadcast (&self->changed);
    //  Close every socket so that mg_stop does not wait on them.
    for (sl_socket_t *s = self->sockets; s; s = s->next)
        s_end (s, true);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->ticker, NULL);
}
