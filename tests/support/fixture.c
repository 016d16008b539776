/*  =========================================================================
    fixture - a broker and real actors in the test's own process

    The configuration and the actors' arguments are made in one function,
    s_actor_start: when actors take their settings another way, that is
    the one place to change.
    =========================================================================
*/
#include "fixture.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <unistd.h>

#include "actor.h"
#include "broker.h"
#include "config.h"
#include "harness.h"
#include "mpjson.h"
#include "msg.h"
#include "runs.h"

#define FIXTURE_HEARTBEAT_MS 100  //  Broker and workers, unless given
#define FIXTURE_LIVENESS 10
#define FIXTURE_WAIT_MS 5000  //  Longest wait for a worker to be live
#define FIXTURE_ASK_MS 3000   //  Longest wait for the reply to fixture_ask

//  The fixture of this test process, for fixture_fini.
static fixture_t *s_current;

struct fixture_t {
    char endpoint[64];    //  Broker requests endpoint
    char state_dir[256];  //  Temporary, removed at the end
    char *config_text;    //  The test's JSON plus our defaults
    cg_config_t *config;  //  Loaded at the first actor's start
    zactor_t *broker;
    zactor_t *actors[FIXTURE_MAX_ACTORS];   //  NULL once stopped
    actor_args_t args[FIXTURE_MAX_ACTORS];  //  Each actor's own
    int n_actors;
    bus_front_t *front;  //  The test's client
};

//  The test's JSON with the broker's pace added where it says none, so a
//  dead worker is noticed in a second rather than in three.  Caller owns
//  the return value.
static char *
s_config_text (const char *config_json)
{
    cJSON *root = cJSON_Parse (config_json && *config_json ? config_json : "{}");
    cr_assert (cJSON_IsObject (root),
               "the fixture's config is not a JSON "
               "object: %s",
               config_json);
    cJSON *broker = cJSON_GetObjectItemCaseSensitive (root, "broker");
    if (!broker)
        broker = cJSON_AddObjectToObject (root, "broker");
    if (!cJSON_GetObjectItemCaseSensitive (broker, "heartbeatMs"))
        cJSON_AddNumberToObject (broker, "heartbeatMs", FIXTURE_HEARTBEAT_MS);
    if (!cJSON_GetObjectItemCaseSensitive (broker, "liveness"))
        cJSON_AddNumberToObject (broker, "liveness", FIXTURE_LIVENESS);
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    cr_assert_not_null (text);
    return text;
}

//  Loads the configuration (once) and starts actor name with arguments of
//  its own, kept in self until the actor stops.  The only place that knows
//  how an actor gets its settings.
static zactor_t *
s_actor_start (fixture_t *self, const char *name)
{
    cr_assert_lt (self->n_actors, FIXTURE_MAX_ACTORS, "too many actors");
    if (!self->config) {
        char err[512] = "";
        cfg_flags_t flags = {.config_text = self->config_text,
                             .config_len = strlen (self->config_text),
                             .port = -1,
                             .state_dir = self->state_dir,
                             .broker = self->endpoint};
        self->config = config_load (&flags, err, sizeof (err));
        cr_assert_not_null (self->config, "config: %s", err);
    }
    actor_args_t *args = &self->args[self->n_actors];
    *args = (actor_args_t){self->config->requests_ep, &self->config->actors, false};
    zactor_t *actor = actor_start (name, args);
    cr_assert_not_null (actor, "actor %s did not start", name);
    return actor;
}

fixture_t *
fixture_new (const char *config_json, const char *const names[])
{
    fixture_t *self = (fixture_t *) calloc (1, sizeof (fixture_t));
    cr_assert_not_null (self);
    s_current = self;  //  From here fixture_fini cleans up
    //  Criterion forks each test: the pid makes the endpoint ours alone.
    snprintf (self->endpoint, sizeof (self->endpoint), "inproc://fixture-%d",
              (int) getpid ());
    harness_tmpdir (self->state_dir, sizeof (self->state_dir));
    cr_assert (self->state_dir[0], "no temporary state directory");
    unsetenv ("CLAWGATE_CONFIG");  //  The text given is the whole file
    self->config_text = s_config_text (config_json);

    broker_config_t bc = {.requests = self->endpoint,
                          .heartbeat_ms = FIXTURE_HEARTBEAT_MS,
                          .liveness = FIXTURE_LIVENESS};
    self->broker = zactor_new (broker_actor, &bc);
    cr_assert (self->broker && !bc.failed, "broker could not bind %s", self->endpoint);
    self->front = bus_front_new (self->endpoint);
    cr_assert_not_null (self->front);
    for (int i = 0; names && names[i]; i++)
        fixture_start_actor (self, names[i]);
    return self;
}

fixture_t *
fixture_new_echo (int delay_ms, const char *const names[])
{
    char config[128];
    snprintf (config, sizeof (config), "{\"providers\":{\"local\":{\"echoDelayMs\":%d}}}",
              delay_ms);
    return fixture_new (config, names);
}

void
fixture_destroy (fixture_t **self_p)
{
    fixture_t *self = *self_p;
    if (!self)
        return;
    bus_front_destroy (&self->front);
    for (int i = self->n_actors - 1; i >= 0; i--)
        zactor_destroy (&self->actors[i]);
    zactor_destroy (&self->broker);
    config_destroy (&self->config);
    free (self->config_text);
    harness_rmtree (self->state_dir);
    if (s_current == self)
        s_current = NULL;
    free (self);
    *self_p = NULL;
}

void
fixture_fini (void)
{
    fixture_destroy (&s_current);
}

bus_front_t *
fixture_front (fixture_t *self)
{
    return self->front;
}

const char *
fixture_endpoint (fixture_t *self)
{
    return self->endpoint;
}

const char *
fixture_state_dir (fixture_t *self)
{
    return self->state_dir;
}

int
fixture_start_actor (fixture_t *self, const char *name)
{
    int index = self->n_actors;
    self->actors[index] = s_actor_start (self, name);
    self->n_actors++;
    fixture_wait_live (self, name, -1);
    //  The session actor serves lists and gets through readers of its own.
    if (streq (name, "session"))
        fixture_wait_live (self, "session.read", -1);
    return index;
}

void
fixture_stop_actor (fixture_t *self, int index)
{
    cr_assert (index >= 0 && index < self->n_actors);
    zactor_destroy (&self->actors[index]);
}

int
fixture_live (fixture_t *self, const char *service)
{
    return fixture_front_live (self->front, service);
}

void
fixture_wait_live (fixture_t *self, const char *service, int count)
{
    fixture_front_wait_live (self->front, service, count);
}

int
fixture_front_live (bus_front_t *front, const char *service)
{
    envelope_t env;
    envelope_init (&env, "MMI_SERVICES");
    bus_msg_t reply;
    if (bus_front_call (front, BUS_SERVICE_BROKER, &env, "\x80", 1, 1000, &reply))
        return -1;
    int64_t n = 0;
    if (!mp_get_int (mp_get (reply.body.root, "services"), service, &n))
        n = 0;
    bus_msg_fini (&reply);
    return (int) n;
}

//  count -1: at least one.
void
fixture_front_wait_live (bus_front_t *front, const char *service, int count)
{
    int64_t deadline = zclock_mono () + FIXTURE_WAIT_MS;
    int live = -1;
    while (zclock_mono () < deadline) {
        live = fixture_front_live (front, service);
        if (count < 0 ? live > 0 : live == count)
            return;
        zclock_sleep (5);
    }
    cr_assert_fail ("%s has %d live workers, not %d", service, live, count);
}

uint64_t
fixture_send (fixture_t *self, const char *service, const char *type, const char *key,
              const char *body_json)
{
    cJSON *body = cJSON_Parse (body_json ? body_json : "{}");
    cr_assert_not_null (body, "body is not JSON: %s", body_json);
    mp_writer_t w;
    mp_writer_init (&w);
    cr_assert_eq (mpjson_pack (&w.pk, body), 0);
    cJSON_Delete (body);
    envelope_t env;
    envelope_init (&env, type);
    if (key)
        snprintf (env.session_key, sizeof (env.session_key), "%s", key);
    cr_assert_eq (bus_front_send (self->front, service, &env, w.buf.data, w.buf.size), 0,
                  "%s not sent", type);
    mp_writer_fini (&w);
    return env.corr_id;
}

void
fixture_call (fixture_t *self, const char *service, const char *type, const char *key,
              const char *body_json, int timeout_ms, bus_msg_t *reply)
{
    uint64_t corr = fixture_send (self, service, type, key, body_json);
    int64_t deadline = zclock_mono () + timeout_ms;
    while (true) {
        int64_t left = deadline - zclock_mono ();
        cr_assert_gt (left, 0, "no reply to %s within %d ms", type, timeout_ms);
        if (bus_front_recv (self->front, (int) left, reply))
            continue;
        if (reply->kind == BUS_MSG_REPLY && reply->env.corr_id == corr)
            return;
        bus_msg_fini (reply);
    }
}

int
fixture_recv (fixture_t *self, int timeout_ms, bus_msg_t *msg)
{
    return bus_front_recv (self->front, timeout_ms, msg);
}

const char *
fixture_event_type (const bus_msg_t *msg)
{
    if (msg->kind != BUS_MSG_EVENT)
        return "";
    const char *slash = strrchr (msg->topic, '/');
    return slash ? slash + 1 : msg->topic;
}

//  The strict check the bus makes in checked builds (msg_check_out), made
//  here too so that a test fails on a broken body in any build: a reply
//  against its type's declaration, an event against its wire name's.
void
fixture_assert_valid (const bus_msg_t *msg)
{
    const msg_def_t *def;
    const char *what;
    if (msg->kind == BUS_MSG_REPLY) {
        what = msg->env.type;
        def = msg_lookup (what);
    }
    else {
        what = fixture_event_type (msg);
        def = msg_lookup_name (MSG_SERVICE_EVENT, what);
    }
    cr_assert_not_null (def, "%s is declared nowhere", what);
    char err[256] = "";
    cr_assert_eq (msg_check_out (def, zmq_msg_data ((zmq_msg_t *) &msg->raw),
                                 zmq_msg_size ((zmq_msg_t *) &msg->raw), err,
                                 sizeof (err)),
                  0, "%s breaks its declaration: %s", what, err);
}

cJSON *
fixture_ask (fixture_t *self, const char *service, const char *type,
             const char *body_json, const char *want)
{
    bus_msg_t reply;
    fixture_call (self, service, type, NULL, body_json, FIXTURE_ASK_MS, &reply);
    cr_assert_str_eq (reply.env.type, want, "%s answered %s (%d)", type, reply.env.type,
                      reply.env.status);
    cr_assert_eq (reply.env.status, 200);
    fixture_assert_valid (&reply);
    cJSON *j = fixture_json (&reply);
    bus_msg_fini (&reply);
    return j;
}

void
fixture_ask_error (fixture_t *self, const char *service, const char *type,
                   const char *body_json, int status, const char *code)
{
    bus_msg_t reply;
    fixture_call (self, service, type, NULL, body_json, FIXTURE_ASK_MS, &reply);
    fixture_assert_error (&reply, status, code);
    bus_msg_fini (&reply);
}

void
fixture_ask_error_param (fixture_t *self, const char *service, const char *type,
                         const char *body_json, int status, const char *code,
                         const char *param)
{
    bus_msg_t reply;
    fixture_call (self, service, type, NULL, body_json, FIXTURE_ASK_MS, &reply);
    fixture_assert_error (&reply, status, code);
    char got[32] = "";
    mp_copy_str (reply.body.root, "param", got, sizeof (got));
    cr_assert_str_eq (got, param ? param : "", "%s %s", type, body_json);
    bus_msg_fini (&reply);
}

void
fixture_assert_error (const bus_msg_t *reply, int status, const char *code)
{
    cr_assert_eq (reply->kind, BUS_MSG_REPLY);
    cr_assert_str_eq (reply->env.type, "ERROR");
    cr_assert_eq (reply->env.status, status, "status %d, not %d", reply->env.status,
                  status);
    char got[64] = "";
    cr_assert_eq (mp_copy_str (reply->body.root, "code", got, sizeof (got)), 0);
    cr_assert_str_eq (got, code);
    fixture_assert_valid (reply);
}

cJSON *
fixture_json (const bus_msg_t *msg)
{
    cJSON *j = mpjson_to_json (msg->body.root);
    cr_assert_not_null (j);
    return j;
}

//  ---- Runs --------------------------------------------------------------------

void
fixture_run_wait (fixture_t *self, const char *run_id, int timeout_ms, fixture_run_t *run)
{
    memset (run, 0, sizeof (*run));
    int64_t deadline = zclock_mono () + timeout_ms;
    size_t len = 0;
    bool first = true;
    while (!run->end[0]) {
        int64_t left = deadline - zclock_mono ();
        cr_assert_gt (left, 0,
                      "%s did not end within %d ms (%d deltas, "
                      "text '%s')",
                      run_id, timeout_ms, run->deltas, run->text);
        bus_msg_t msg;
        if (bus_front_recv (self->front, (int) left, &msg))
            continue;
        char id[96] = "";
        if (msg.kind != BUS_MSG_EVENT
            || mp_copy_str (msg.body.root, "runId", id, sizeof (id))
            || strcmp (id, run_id)) {
            bus_msg_fini (&msg);
            continue;
        }
        fixture_assert_valid (&msg);
        const char *type = fixture_event_type (&msg);
        int64_t seq = -1;
        cr_assert (mp_get_int (msg.body.root, "seq", &seq));
        if (first)
            run->first_seq = seq;
        else
            cr_assert_eq (seq, run->last_seq + 1,
                          "%s: %s has seq %lld after "
                          "%lld",
                          run_id, type, (long long) seq, (long long) run->last_seq);
        first = false;
        run->last_seq = seq;
        if (streq (type, "chat.delta")) {
            cr_assert_str_eq (run->end, "", "a delta after the end");
            size_t n = 0;
            const char *d = mp_get_str (msg.body.root, "delta", &n);
            cr_assert (d && len + n < sizeof (run->text));
            memcpy (run->text + len, d, n);
            len += n;
            run->text[len] = 0;
            run->deltas++;
        }
        else if (streq (type, "chat.done") || streq (type, "chat.error")) {
            snprintf (run->end, sizeof (run->end), "%.15s", type);
            run->body = fixture_json (&msg);
        }
        bus_msg_fini (&msg);
    }
}

void
fixture_run_fini (fixture_run_t *run)
{
    cJSON_Delete (run->body);
    run->body = NULL;
}

void
fixture_run_done (fixture_t *self, const char *run_id, int timeout_ms, const char *reason,
                  fixture_run_t *run)
{
    fixture_run_wait (self, run_id, timeout_ms, run);
    cr_assert_str_eq (run->end, "chat.done");
    cr_assert_str_eq (fixture_str (run->body, "finishReason"), reason);
}

//  The JSON accessors are the runs harness's (runs.h): a key is a path of
//  one step.
const char *
fixture_str (const cJSON *obj, const char *key)
{
    return runs_str (obj, key);
}

double
fixture_num (const cJSON *obj, const char *key)
{
    return runs_at_num (obj, key);
}
