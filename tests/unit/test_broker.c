/*  =========================================================================
    test_broker - the real broker, fronts and workers, in-process

    Each test binds its own broker on inproc://test-broker-<pid>, talks to
    it through a bus_front_t, and serves "system" with echo workers (a
    bus_worker_t in a zactor of ours).  Waiting is done by bounded polling
    of mmi.services, never by bare sleeps.  Real actors are tested on the
    shared fixture (tests/support/fixture.h), one file each:
    test_actor_system.c holds the system actor's test that was here.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <czmq.h>
#include <unistd.h>

#include "broker.h"
#include "bus_front.h"
#include "msg.h"
#include "bus_worker.h"
#include "fixture.h"

#define EMPTY_MAP "\x80"

//  This file plays fake workers (SYSTEM_PONG carrying the worker's id) and
//  sends undeclared and malformed requests on purpose, to see the broker
//  route or refuse them: the outgoing checks of checked builds stay off.
__attribute__ ((constructor)) static void
s_unchecked (void)
{
    msg_check_enable (false);
}

//  ---- An echo worker: answers SYSTEM_PING with SYSTEM_PONG {"worker": id} --

typedef struct {
    const char *endpoint;  //  Broker requests endpoint
    int id;                //  Put in every reply
} echo_args_t;

static void
s_echo_actor (zsock_t *pipe, void *args)
{
    echo_args_t *echo = (echo_args_t *) args;
    int id = echo->id;
    bus_worker_t *worker = bus_worker_new (echo->endpoint, "system", 100, 10);
    zsock_signal (pipe, worker ? 0 : 1);
    if (!worker)
        return;
    zpoller_t *poller = zpoller_new (pipe, bus_worker_sock (worker), NULL);
    bool terminated = false;
    while (!terminated) {
        void *which = zpoller_wait (poller, bus_worker_tick (worker));
        if (which == pipe) {
            char *cmd = zstr_recv (pipe);
            terminated = !cmd || streq (cmd, "$TERM");
            zstr_free (&cmd);
        }
        else if (which) {
            bus_request_t req;
            int rc;
            while ((rc = bus_worker_recv (worker, &req)) >= 0) {
                if (rc == 0)
                    continue;  //  Protocol traffic, or refused with 400
                mp_writer_t w;
                mp_writer_init (&w);
                msgpack_pack_map (&w.pk, 1);
                mp_kv_int (&w, "worker", id);
                bus_worker_reply (worker, &req, "SYSTEM_PONG", 200, w.buf.data,
                                  w.buf.size);
                mp_writer_fini (&w);
                bus_request_fini (&req);
            }
        }
        else if (zpoller_terminated (poller))
            break;
    }
    zpoller_destroy (&poller);
    bus_worker_destroy (&worker);  //  Says DISCONNECT
}

//  ---- Fixture --------------------------------------------------------------

static char s_endpoint[64];  //  This test's broker endpoint

//  Starts a broker on this test's own endpoint.  The config lives on this
//  frame only, as broker.h allows: it must not be read after the signal.
static zactor_t *
s_broker_new (void)
{
    snprintf (s_endpoint, sizeof (s_endpoint), "inproc://test-broker-%d",
              (int) getpid ());
    broker_config_t bc = {.requests = s_endpoint, .heartbeat_ms = 100, .liveness = 10};
    zactor_t *broker = zactor_new (broker_actor, &bc);
    cr_assert_not_null (broker);
    cr_assert_not (bc.failed, "broker could not bind %s", s_endpoint);
    return broker;
}

static zactor_t *
s_echo_new (int id)
{
    echo_args_t args = {s_endpoint, id};
    zactor_t *echo = zactor_new (s_echo_actor, &args);
    cr_assert_not_null (echo);
    return echo;
}

//  Sends a SYSTEM_PING with body and waits up to 2 s for its reply.
static void
s_call (bus_front_t *front, const char *type, const void *body, size_t size,
        bus_msg_t *reply)
{
    envelope_t env;
    envelope_init (&env, type);
    cr_assert_eq (bus_front_call (front, "system", &env, body, size, 2000, reply), 0,
                  "no reply to %s", type);
    cr_assert_eq (reply->env.corr_id, env.corr_id);
}

//  Pings and returns the id of the echo worker that answered.
static int
s_ping (bus_front_t *front)
{
    bus_msg_t reply;
    s_call (front, "SYSTEM_PING", EMPTY_MAP, 1, &reply);
    cr_assert_eq (reply.env.status, 200);
    cr_assert_str_eq (reply.env.type, "SYSTEM_PONG");
    int64_t id = -1;
    cr_assert (mp_get_int (reply.body.root, "worker", &id));
    bus_msg_fini (&reply);
    return (int) id;
}

//  Asserts reply is an ERROR of status and code.
static void
s_assert_error (bus_msg_t *reply, int status, const char *code)
{
    cr_assert_str_eq (reply->env.type, "ERROR");
    cr_assert_eq (reply->env.status, status);
    char got[64] = "";
    cr_assert_eq (mp_copy_str (reply->body.root, "code", got, sizeof (got)), 0);
    cr_assert_str_eq (got, code);
    char err[128];
    cr_assert_eq (msg_validate ("ERROR", reply->body.root, err, sizeof (err), NULL, 0), 0,
                  "ERROR body: %s", err);
}

//  ---- Tests ------------------------------------------------------------------

Test (broker, mmi_services_lists_live_workers)
{
    zactor_t *broker = s_broker_new ();
    bus_front_t *front = bus_front_new (s_endpoint);
    cr_assert_eq (fixture_front_live (front, "system"), 0, "a worker before any started");
    zactor_t *echo = s_echo_new (1);
    fixture_front_wait_live (front, "system", 1);

    envelope_t env;
    envelope_init (&env, "MMI_SERVICES");
    bus_msg_t reply;
    cr_assert_eq (
        bus_front_call (front, BUS_SERVICE_BROKER, &env, EMPTY_MAP, 1, 1000, &reply), 0);
    cr_assert_str_eq (reply.env.type, "MMI_SERVICES_OK");
    cr_assert_eq (reply.env.status, 200);
    char err[128];
    cr_assert_eq (
        msg_validate ("MMI_SERVICES_OK", reply.body.root, err, sizeof (err), NULL, 0), 0,
        "%s", err);
    const msgpack_object *services = mp_get (reply.body.root, "services");
    cr_assert_eq (services->via.map.size, 1);
    bus_msg_fini (&reply);

    bus_front_destroy (&front);
    zactor_destroy (&echo);
    zactor_destroy (&broker);
}

Test (broker, no_worker_is_503_at_once)
{
    zactor_t *broker = s_broker_new ();
    bus_front_t *front = bus_front_new (s_endpoint);
    const char *services[] = {"nobody", "system"};
    for (int i = 0; i < 2; i++) {
        envelope_t env;
        envelope_init (&env, "SYSTEM_PING");
        bus_msg_t reply;
        int64_t start = zclock_mono ();
        cr_assert_eq (
            bus_front_call (front, services[i], &env, EMPTY_MAP, 1, 1000, &reply), 0,
            "no reply within 1 s");
        cr_assert_lt (zclock_mono () - start, 1000);
        cr_assert_eq (reply.env.corr_id, env.corr_id);
        s_assert_error (&reply, 503, "service_unavailable");
        bus_msg_fini (&reply);
    }
    //  A service name over the limit is a bad request.
    char name[BUS_MAX_SERVICE + 2];
    memset (name, 's', sizeof (name) - 1);
    name[sizeof (name) - 1] = 0;
    envelope_t env;
    envelope_init (&env, "SYSTEM_PING");
    bus_msg_t reply;
    cr_assert_eq (bus_front_call (front, name, &env, EMPTY_MAP, 1, 1000, &reply), 0);
    s_assert_error (&reply, 400, "invalid_request");
    bus_msg_fini (&reply);
    bus_front_destroy (&front);
    zactor_destroy (&broker);
}

Test (broker, round_robin_and_worker_loss)
{
    zactor_t *broker = s_broker_new ();
    bus_front_t *front = bus_front_new (s_endpoint);
    zactor_t *echo1 = s_echo_new (1);
    zactor_t *echo2 = s_echo_new (2);
    fixture_front_wait_live (front, "system", 2);

    int count[3] = {0, 0, 0};
    for (int i = 0; i < 20; i++) {
        int id = s_ping (front);
        cr_assert (id == 1 || id == 2, "answered by %d", id);
        count[id]++;
    }
    cr_assert_gt (count[1], 0, "worker 1 got none of 20");
    cr_assert_gt (count[2], 0, "worker 2 got none of 20");

    //  Worker 1 leaves (DISCONNECT): everything goes to worker 2.
    zactor_destroy (&echo1);
    fixture_front_wait_live (front, "system", 1);
    for (int i = 0; i < 10; i++)
        cr_assert_eq (s_ping (front), 2);

    //  Both gone: 503 again.
    zactor_destroy (&echo2);
    fixture_front_wait_live (front, "system", 0);
    bus_msg_t reply;
    s_call (front, "SYSTEM_PING", EMPTY_MAP, 1, &reply);
    s_assert_error (&reply, 503, "service_unavailable");
    bus_msg_fini (&reply);

    bus_front_destroy (&front);
    zactor_destroy (&broker);
}

//  Pings with a session key; returns the id of the worker that answered.
static int
s_ping_keyed (bus_front_t *front, const char *key)
{
    envelope_t env;
    envelope_init (&env, "SYSTEM_PING");
    snprintf (env.session_key, sizeof (env.session_key), "%s", key);
    bus_msg_t reply;
    cr_assert_eq (bus_front_call (front, "system", &env, EMPTY_MAP, 1, 2000, &reply), 0);
    int64_t id = -1;
    cr_assert (mp_get_int (reply.body.root, "worker", &id));
    bus_msg_fini (&reply);
    return (int) id;
}

Test (broker, a_keyed_request_goes_where_its_key_went_before)
{
    zactor_t *broker = s_broker_new ();
    bus_front_t *front = bus_front_new (s_endpoint);
    zactor_t *echo[3] = {s_echo_new (1), s_echo_new (2), s_echo_new (3)};
    fixture_front_wait_live (front, "system", 3);
    //  Forty keys: each always lands on one worker, whatever requests go
    //  between; together they reach every worker.
    int home[40], seen[4] = {0, 0, 0, 0};
    for (int k = 0; k < 40; k++) {
        char key[32];
        snprintf (key, sizeof (key), "run-%08x", k * 2654435761u);
        home[k] = s_ping_keyed (front, key);
        seen[home[k]]++;
    }
    for (int round = 0; round < 3; round++)
        for (int k = 0; k < 40; k++) {
            char key[32];
            snprintf (key, sizeof (key), "run-%08x", k * 2654435761u);
            s_ping (front);  //  Unkeyed traffic moves the round-robin cursor
            cr_assert_eq (s_ping_keyed (front, key), home[k], "key %d moved", k);
        }
    for (int w = 1; w <= 3; w++)
        cr_assert_gt (seen[w], 0, "worker %d was home to none of 40 keys", w);
    //  A worker leaves: only its keys move.
    zactor_destroy (&echo[1]);
    fixture_front_wait_live (front, "system", 2);
    for (int k = 0; k < 40; k++) {
        char key[32];
        snprintf (key, sizeof (key), "run-%08x", k * 2654435761u);
        int now = s_ping_keyed (front, key);
        if (home[k] != 2)
            cr_assert_eq (now, home[k], "key %d moved though its worker stayed", k);
        else
            cr_assert (now == 1 || now == 3);
    }
    zactor_destroy (&echo[0]);
    zactor_destroy (&echo[2]);
    bus_front_destroy (&front);
    zactor_destroy (&broker);
}

Test (broker, malformed_requests_get_400)
{
    zactor_t *broker = s_broker_new ();
    bus_front_t *front = bus_front_new (s_endpoint);
    zactor_t *echo = s_echo_new (7);
    fixture_front_wait_live (front, "system", 1);

    struct {
        const char *type;
        const char *body;
        size_t size;
    } bad[] = {
        {"NO_SUCH_MESSAGE", EMPTY_MAP, 1},  //  Undeclared
        {"MMI_SERVICES_OK", EMPTY_MAP, 1},  //  Declared, not for "system"
        {"SYSTEM_PING", "\xc1", 1},         //  Not msgpack
        {"SYSTEM_PING", "\x81\xa1k", 3},    //  Truncated msgpack
        {"SYSTEM_PING", "", 0},             //  No body at all
        {"SYSTEM_PING", "\x80\x80", 2},     //  Trailing bytes
        {"SYSTEM_PING", "\x91\x01", 2},     //  An array, not a map
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        bus_msg_t reply;
        s_call (front, bad[i].type, bad[i].body, bad[i].size, &reply);
        s_assert_error (&reply, 400, "invalid_request");
        bus_msg_fini (&reply);
        //  The worker is still serving.
        cr_assert_eq (s_ping (front), 7);
    }
    cr_assert_eq (fixture_front_live (front, "system"), 1);
    bus_front_destroy (&front);
    zactor_destroy (&echo);
    zactor_destroy (&broker);
}

//  Sends count frames (strings; "" for an empty frame) from raw.
static void
s_send_raw (zsock_t *raw, const char *const frames[], int count)
{
    zmsg_t *msg = zmsg_new ();
    for (int i = 0; i < count; i++)
        zmsg_addstr (msg, frames[i]);
    cr_assert_eq (zmsg_send (&msg, raw), 0);
}

//  Sends a front REQUEST for SYSTEM_PING from raw, with bodies body frames.
static void
s_send_raw_ping (zsock_t *raw, int bodies)
{
    msgpack_sbuffer ebuf;
    msgpack_sbuffer_init (&ebuf);
    envelope_t env;
    envelope_init (&env, "SYSTEM_PING");
    cr_assert_eq (envelope_pack (&env, &ebuf), 0);
    zmsg_t *msg = zmsg_new ();
    zmsg_addstr (msg, BUS_FRONT);
    zmsg_addstr (msg, BUS_REQUEST);
    zmsg_addstr (msg, "system");
    zmsg_addmem (msg, ebuf.data, ebuf.size);
    for (int i = 0; i < bodies; i++)
        zmsg_addmem (msg, EMPTY_MAP, 1);
    cr_assert_eq (zmsg_send (&msg, raw), 0);
    msgpack_sbuffer_destroy (&ebuf);
}

#define RAW(...)                                                                         \
    s_send_raw (raw, (const char *[]){__VA_ARGS__},                                      \
                sizeof ((const char *[]){__VA_ARGS__}) / sizeof (char *))

Test (broker, survives_raw_garbage)
{
    zactor_t *broker = s_broker_new ();
    bus_front_t *front = bus_front_new (s_endpoint);
    zactor_t *echo = s_echo_new (3);
    fixture_front_wait_live (front, "system", 1);
    zsock_t *raw = zsock_new (ZMQ_DEALER);
    zsock_set_linger (raw, 0);
    zsock_set_rcvtimeo (raw, 2000);
    cr_assert_eq (zsock_connect (raw, "%s", s_endpoint), 0);

    char longname[BUS_MAX_SERVICE + 8];
    memset (longname, 'w', sizeof (longname) - 1);
    longname[sizeof (longname) - 1] = 0;
    const char *many[20], *w_many[20];
    for (int i = 0; i < 20; i++) {
        many[i] = i == 0 ? "CGC1" : i == 1 ? "REQUEST" : "x";
        w_many[i] = i == 0 ? "CGW1" : i == 1 ? "REPLY" : "";
    }
    s_send_raw (raw, many, 20);  //  Too many frames
    s_send_raw (raw, w_many, 20);
    s_send_raw (raw, many, 9);
    RAW ("XXXX", "REQUEST", "system", "e", "b");  //  Unknown header
    RAW ("");                                     //  Empty frames
    RAW ("", "", "");
    RAW ("", "", "", "", "", "");
    RAW ("CGC1");
    RAW ("CGC1", "REQUEST", "system", "", "");  //  Empty envelope
    RAW ("CGC1", "REQUEST", "system", "\x95");  //  Frame missing
    RAW ("CGC1", "REPLY", "", "", "");
    RAW ("CGW1", "READY", "");  //  Each answered DISCONNECT
    RAW ("CGW1", "READY", longname);
    RAW ("CGW1", "REPLY", "", "", "");
    RAW ("CGW1", "READY");
    RAW ("CGW1", "EVENT", "", "t", "");
    RAW ("CGW1", "DISCONNECT");
    RAW ("CGW1", "BOGUS", "x");
    s_send_raw_ping (raw, 2);  //  A body too many

    //  An unknown peer's HEARTBEAT is told to register, as were the bad
    //  READYs and the unregistered REPLY above: four DISCONNECTs and
    //  nothing else come back.
    RAW ("CGW1", "HEARTBEAT");
    for (int i = 0; i < 4; i++) {
        zmsg_t *msg = zmsg_recv (raw);
        cr_assert_not_null (msg, "broker silent after the garbage (%d)", i);
        cr_assert_eq (zmsg_size (msg), 2);
        cr_assert (zframe_streq (zmsg_first (msg), "CGW1"));
        cr_assert (zframe_streq (zmsg_next (msg), "DISCONNECT"));
        zmsg_destroy (&msg);
    }
    //  A well-formed request from the same raw socket is served.
    s_send_raw_ping (raw, 1);
    zmsg_t *msg = zmsg_recv (raw);
    cr_assert_not_null (msg);
    cr_assert_eq (zmsg_size (msg), 4);
    cr_assert (zframe_streq (zmsg_first (msg), "CGC1"));
    cr_assert (zframe_streq (zmsg_next (msg), "REPLY"));
    zframe_t *eframe = zmsg_next (msg);
    envelope_t env;
    cr_assert_eq (envelope_unpack (&env, zframe_data (eframe), zframe_size (eframe)), 0);
    cr_assert_str_eq (env.type, "SYSTEM_PONG");
    cr_assert_eq (env.status, 200);
    zmsg_destroy (&msg);

    //  And so is the ordinary front, by the same worker.
    cr_assert_eq (s_ping (front), 3);
    cr_assert_eq (fixture_front_live (front, "system"), 1);
    zsock_destroy (&raw);
    bus_front_destroy (&front);
    zactor_destroy (&echo);
    zactor_destroy (&broker);
}
