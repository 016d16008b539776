/*  =========================================================================
    bus_worker - register, heartbeat, receive requests, reply, publish
    =========================================================================
*/
#include "bus_worker.h"
#include "envelope.h"
#include "msg_names.h"

#include "bus_frames.h"
#include "error.h"
#include "log.h"
#include "msg.h"

#include <string.h>

struct bus_worker_t {
    zsock_t *sock;                      //  DEALER to the broker
    void *handle;                       //  Its raw libzmq handle
    char service[BUS_MAX_SERVICE + 1];  //  Service we serve
    int heartbeat_ms;                   //  Heartbeat interval
    int liveness;                       //  Silent intervals before we re-register
    int64_t heartbeat_at;               //  When to send the next heartbeat
    int64_t broker_expires;             //  Broker is presumed gone past this
};

static int
s_send_parts (bus_worker_t *self, const void *const data[], const size_t size[],
              int count)
{
    for (int i = 0; i < count; i++) {
        int flags = ZMQ_DONTWAIT | (i < count - 1 ? ZMQ_SNDMORE : 0);
        if (zmq_send (self->handle, data[i], size[i], flags) < 0) {
            //  Only the first frame can fail: later ones are queued with it.
            if (i > 0)
                log_error ("worker", "partial send to the broker");
            return -1;
        }
    }
    return 0;
}

static void
s_send_cmd (bus_worker_t *self, const char *cmd, const char *arg)
{
    const void *data[] = {BUS_WORKER, cmd, arg};
    size_t size[] = {strlen (BUS_WORKER), strlen (cmd), arg ? strlen (arg) : 0};
    s_send_parts (self, data, size, arg ? 3 : 2);
}

static void
s_register (bus_worker_t *self)
{
    s_send_cmd (self, BUS_READY, self->service);
    self->broker_expires = zclock_mono () + (int64_t) self->heartbeat_ms * self->liveness;
}

bus_worker_t *
bus_worker_new (const char *endpoint, const char *service, int heartbeat_ms, int liveness)
{
    if (!service || strlen (service) > BUS_MAX_SERVICE)
        return NULL;
    bus_worker_t *self = (bus_worker_t *) calloc (1, sizeof (bus_worker_t));
    if (!self)
        return NULL;
    snprintf (self->service, sizeof (self->service), "%s", service);
    self->heartbeat_ms = heartbeat_ms > 0 ? heartbeat_ms : 1000;
    self->liveness = liveness > 0 ? liveness : 3;
    self->sock = zsock_new (ZMQ_DEALER);
    if (!self->sock) {
        free (self);
        return NULL;
    }
    //  A stable identity lets the broker recognise us across reconnects.
    zuuid_t *uuid = zuuid_new ();
    zsock_set_identity (self->sock, zuuid_str (uuid));
    zuuid_destroy (&uuid);
    zsock_set_sndhwm (self->sock, 100000);
    zsock_set_rcvhwm (self->sock, 100000);
    zsock_set_linger (self->sock, 0);
    if (zsock_connect (self->sock, "%s", endpoint) < 0) {
        log_error ("worker", "cannot connect to broker %s", endpoint);
        zsock_destroy (&self->sock);
        free (self);
        return NULL;
    }
    self->handle = zsock_resolve (self->sock);
    s_register (self);
    self->heartbeat_at = zclock_mono () + self->heartbeat_ms;
    return self;
}

void
bus_worker_destroy (bus_worker_t **self_p)
{
    bus_worker_t *self = *self_p;
    if (!self)
        return;
    s_send_cmd (self, BUS_DISCONNECT, NULL);
    zsock_destroy (&self->sock);
    free (self);
    *self_p = NULL;
}

zsock_t *
bus_worker_sock (bus_worker_t *self)
{
    return self->sock;
}

int
bus_worker_tick (bus_worker_t *self)
{
    int64_t now = zclock_mono ();
    if (now >= self->broker_expires) {
        log_warn ("worker", "broker silent for %d ms; registering %s again",
                  self->heartbeat_ms * self->liveness, self->service);
        s_register (self);
    }
    if (now >= self->heartbeat_at) {
        s_send_cmd (self, BUS_HEARTBEAT, NULL);
        self->heartbeat_at = now + self->heartbeat_ms;
    }
    int64_t wait = self->heartbeat_at - now;
    return wait > 0 ? (int) wait : 0;
}

void
bus_request_fini (bus_request_t *req)
{
    mp_reader_fini (&req->body);
    zmq_msg_close (&req->raw);
}

int
bus_worker_recv (bus_worker_t *self, bus_request_t *req)
{
    zmq_msg_t f[6];
    int count = bus_frames_recv (self->handle, f, 6, ZMQ_DONTWAIT);
    if (count < 0)
        return -1;
    int kept = count < 6 ? count : 6;
    int result = 0;
    self->broker_expires = zclock_mono () + (int64_t) self->heartbeat_ms * self->liveness;

    if (count < 2 || !bus_frame_is (&f[0], BUS_WORKER)) {
        log_warn ("worker", "%s: dropped a malformed message", self->service);
        goto done;
    }
    if (bus_frame_is (&f[1], BUS_HEARTBEAT))
        goto done;
    if (bus_frame_is (&f[1], BUS_DISCONNECT)) {
        log_info ("worker", "%s: broker asked us to register again", self->service);
        s_register (self);
        goto done;
    }
    //  [CGW1][REQUEST][front][envelope][body]
    if (!bus_frame_is (&f[1], BUS_REQUEST) || count != 5
        || zmq_msg_size (&f[2]) > BUS_MAX_ID) {
        log_warn ("worker", "%s: dropped a malformed request", self->service);
        goto done;
    }
    memset (req, 0, sizeof (*req));
    req->front_len = zmq_msg_size (&f[2]);
    memcpy (req->front, zmq_msg_data (&f[2]), req->front_len);
    zmq_msg_init (&req->raw);
    zmq_msg_move (&req->raw, &f[4]);
    msgpack_unpacked_init (&req->body.up);
    if (envelope_unpack (&req->env, zmq_msg_data (&f[3]), zmq_msg_size (&f[3]))) {
        log_warn ("worker", "%s: dropped a request with a bad envelope", self->service);
        bus_request_fini (req);
        goto done;
    }
    char err[160], param[64];
    if (mp_reader_init (&req->body, zmq_msg_data (&req->raw), zmq_msg_size (&req->raw))) {
        log_warn ("worker", "%s: %s body is not valid msgpack", self->service,
                  req->env.type);
        bus_worker_error (self, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "Message body is not valid msgpack", NULL);
        bus_request_fini (req);
        goto done;
    }
    const msg_def_t *def = msg_lookup (req->env.type);
    if (!def || strcmp (def->service, self->service) != 0) {
        log_warn ("worker", "%s: refused unknown message type %s", self->service,
                  req->env.type);
        bus_worker_error (self, req, ENVELOPE_BAD_REQUEST, "invalid_request",
                          "Unknown message type for this service", NULL);
        bus_request_fini (req);
        goto done;
    }
    if (msg_validate (req->env.type, req->body.root, err, sizeof (err), param,
                      sizeof (param))) {
        log_warn ("worker", "%s: refused %s: %s", self->service, req->env.type, err);
        bus_worker_error (self, req, ENVELOPE_BAD_REQUEST, "invalid_request", err,
                          param[0] ? param : NULL);
        bus_request_fini (req);
        goto done;
    }
    result = 1;
done:
    bus_frames_close (f, kept, 6);
    return result;
}

int
bus_worker_reply (bus_worker_t *self, const bus_request_t *req, const char *type,
                  int status, const void *body, size_t size)
{
    msg_check_send (type, NULL, body, size);
    envelope_t env = req->env;
    snprintf (env.type, sizeof (env.type), "%s", type);
    env.status = status;
    msgpack_sbuffer ebuf;
    msgpack_sbuffer_init (&ebuf);
    envelope_pack (&env, &ebuf);
    const void *data[] = {BUS_WORKER, BUS_REPLY, req->front, ebuf.data, body};
    size_t sizes[] = {strlen (BUS_WORKER), strlen (BUS_REPLY), req->front_len, ebuf.size,
                      size};
    int rc = s_send_parts (self, data, sizes, 5);
    msgpack_sbuffer_destroy (&ebuf);
    if (rc)
        log_warn ("worker", "%s: reply %s dropped: broker not taking it", self->service,
                  type);
    return rc;
}

int
bus_worker_error (bus_worker_t *self, const bus_request_t *req, int status,
                  const char *code, const char *message, const char *param)
{
    mp_writer_t w;
    mp_writer_init (&w);
    error_pack (&w, code, message, param);
    int rc = bus_worker_reply (self, req, MT_ERROR, status, w.buf.data, w.buf.size);
    mp_writer_fini (&w);
    return rc;
}

int
bus_worker_event (bus_worker_t *self, const uint8_t *front, size_t front_len,
                  const char *topic, const void *body, size_t size)
{
    msg_check_event (topic, body, size);
    size_t tlen = strlen (topic);
    if (tlen > BUS_MAX_TOPIC || front_len > BUS_MAX_ID)
        return -1;
    const void *data[] = {BUS_WORKER, BUS_EVENT, front ? (const void *) front : "", topic,
                          body};
    size_t sizes[] = {strlen (BUS_WORKER), strlen (BUS_EVENT), front ? front_len : 0,
                      tlen, size};
    return s_send_parts (self, data, sizes, 5);
}
