/*  =========================================================================
    bus_front - send requests to the broker and wait for replies and events
    =========================================================================
*/
#include "bus_front.h"

#include "bus_frames.h"
#include "log.h"
#include "msg.h"

#include <string.h>

struct bus_front_t {
    zsock_t *sock;       //  DEALER to the broker
    void *handle;        //  Raw libzmq handle
    char id[40];         //  Our routing identity (a uuid)
    uint64_t next_corr;  //  Next correlation id
};

bus_front_t *
bus_front_new (const char *endpoint)
{
    bus_front_t *self = (bus_front_t *) calloc (1, sizeof (bus_front_t));
    if (!self)
        return NULL;
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock) {
        free (self);
        return NULL;
    }
    zuuid_t *uuid = zuuid_new ();
    snprintf (self->id, sizeof (self->id), "%s", zuuid_str (uuid));
    zuuid_destroy (&uuid);
    zsock_set_identity (self->sock, self->id);
    zsock_set_sndhwm (self->sock, 10000);
    zsock_set_rcvhwm (self->sock, 100000);
    zsock_set_linger (self->sock, 0);
    if (zsock_connect (self->sock, "%s", endpoint) < 0) {
        log_error ("front", "cannot connect to broker %s", endpoint);
        zsock_destroy (&self->sock);
        free (self);
        return NULL;
    }
    self->handle = zsock_resolve (self->sock);
    self->next_corr = 1;
    return self;
}

void
bus_front_destroy (bus_front_t **self_p)
{
    bus_front_t *self = *self_p;
    if (!self)
        return;
    zsock_destroy (&self->sock);
    free (self);
    *self_p = NULL;
}

const char *
bus_front_id (bus_front_t *self)
{
    return self->id;
}

zsock_t *
bus_front_sock (bus_front_t *self)
{
    return self->sock;
}

int
bus_front_send (bus_front_t *self, const char *service, envelope_t *env, const void *body,
                size_t size)
{
    msg_check_send (env->type, service, body, size);
    env->corr_id = self->next_corr++;
    env->status = 0;
    msgpack_sbuffer ebuf;
    msgpack_sbuffer_init (&ebuf);
    if (envelope_pack (env, &ebuf)) {
        msgpack_sbuffer_destroy (&ebuf);
        return -1;
    }
    const void *data[] = {BUS_FRONT, BUS_REQUEST, service, ebuf.data, body};
    size_t sizes[] = {strlen (BUS_FRONT), strlen (BUS_REQUEST), strlen (service),
                      ebuf.size, size};
    int rc = 0;
    for (int i = 0; i < 5 && rc == 0; i++)
        if (zmq_send (self->handle, data[i], sizes[i],
                      ZMQ_DONTWAIT | (i < 4 ? ZMQ_SNDMORE : 0))
            < 0)
            rc = -1;
    msgpack_sbuffer_destroy (&ebuf);
    return rc;
}

void
bus_msg_fini (bus_msg_t *msg)
{
    mp_reader_fini (&msg->body);
    zmq_msg_close (&msg->raw);
}

//  Reads one message, waiting up to timeout_ms for its first frame (a
//  blocking receive with ZMQ_RCVTIMEO: cheaper than zmq_poll, which costs an
//  extra poll and getpid syscall before it sleeps).  Returns 0 with msg
//  filled; -1 on timeout, or if the message was malformed (dropped, logged).
static int
s_read (bus_front_t *self, int timeout_ms, bus_msg_t *msg)
{
    zsock_set_rcvtimeo (self->sock, timeout_ms);
    zmq_msg_t f[4];
    int rc = -1;
    int count = bus_frames_recv (self->handle, f, 4, 0);
    if (count < 0)
        return -1;  //  Timed out or interrupted
    int kept = count < 4 ? count : 4;
    if (count != 4 || !bus_frame_is (&f[0], BUS_FRONT))
        goto done;
    memset (msg, 0, sizeof (*msg));
    if (bus_frame_is (&f[1], BUS_REPLY)) {
        msg->kind = BUS_MSG_REPLY;
        if (envelope_unpack (&msg->env, zmq_msg_data (&f[2]), zmq_msg_size (&f[2])))
            goto done;
    }
    else if (bus_frame_is (&f[1], BUS_EVENT) && zmq_msg_size (&f[2]) <= BUS_MAX_TOPIC) {
        msg->kind = BUS_MSG_EVENT;
        memcpy (msg->topic, zmq_msg_data (&f[2]), zmq_msg_size (&f[2]));
        msg->topic[zmq_msg_size (&f[2])] = 0;
    }
    else
        goto done;
    zmq_msg_init (&msg->raw);
    zmq_msg_move (&msg->raw, &f[3]);
    if (mp_reader_init (&msg->body, zmq_msg_data (&msg->raw), zmq_msg_size (&msg->raw))) {
        bus_msg_fini (msg);
        goto done;
    }
    rc = 0;
done:
    if (rc)
        log_warn ("front", "dropped a malformed message from the broker");
    bus_frames_close (f, kept, 4);
    return rc;
}

int
bus_front_recv (bus_front_t *self, int timeout_ms, bus_msg_t *msg)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (s_read (self, left > 0 ? (int) left : 0, msg) == 0)
            return 0;
        if (deadline - zclock_mono () <= 0)
            return -1;
    }
}

int
bus_front_call (bus_front_t *self, const char *service, envelope_t *env, const void *body,
                size_t size, int timeout_ms, bus_msg_t *reply)
{
    if (bus_front_send (self, service, env, body, size))
        return -1;
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return -1;
        if (bus_front_recv (self, (int) left, reply))
            return -1;
        if (reply->kind == BUS_MSG_REPLY && reply->env.corr_id == env->corr_id)
            return 0;
        bus_msg_fini (reply);  //  Stale or stray: drop it
    }
}
