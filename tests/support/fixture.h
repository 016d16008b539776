/*  =========================================================================
    fixture - a broker and real actors in the test's own process

    fixture_new starts a broker on an inproc:// endpoint of its own, loads a
    configuration from JSON text (with a fresh temporary state directory),
    starts the named actors (actors/actor.h) against that broker, waits
    until each serves, and connects one bus_front_t for the test to send
    requests and receive replies and events with.  fixture_destroy stops
    everything in reverse order and removes the state directory.

    Criterion runs each test in a process of its own: make the fixture
    inside the test (or its .init), never at file scope.  Every helper here
    fails the test (cr_assert) instead of returning an error, and every wait
    has a deadline.

    Bodies are written as JSON text and sent as msgpack (schemas/mpjson.h);
    what comes back is checked against schemas/messages.def by
    fixture_assert_valid, for replies and events alike.
    =========================================================================
*/
#ifndef CG_FIXTURE_H
#define CG_FIXTURE_H

#include <cjson/cJSON.h>
#include <czmq.h>

#include "bus_front.h"

#define FIXTURE_MAX_ACTORS 8

typedef struct fixture_t fixture_t;

//  Starts a broker, then the actors named in names (NULL-terminated, e.g.
//  {"session", "run", NULL}) with the configuration config_json (JSON
//  text of a config file; NULL or "" for the defaults).  Unless the text
//  says otherwise, the broker heartbeats every 100 ms with a liveness of
//  10.  Fails the test if anything does not start.  Caller owns the return
//  value and must fixture_destroy it.
fixture_t *
fixture_new (const char *config_json, const char *const names[]);

//  fixture_new with the built-in local/echo provider answering word by
//  word, delay_ms apart (providers.local.echoDelayMs), and no other
//  configuration.
fixture_t *
fixture_new_echo (int delay_ms, const char *const names[]);

//  Stops the front, the actors (in reverse order), the broker, and removes
//  the state directory.  Accepts NULL; sets *self_p to NULL.
void
fixture_destroy (fixture_t **self_p);

//  Destroys the fixture a test made and did not destroy (it failed an
//  assertion first), so its actors stop before the process exits: give it
//  as the suite's .fini.
void
fixture_fini (void);

//  The test's client on the broker (lent).
bus_front_t *
fixture_front (fixture_t *self);

//  The broker's requests endpoint ("inproc://...").
const char *
fixture_endpoint (fixture_t *self);

//  The state directory of this fixture (a fresh temporary directory).
const char *
fixture_state_dir (fixture_t *self);

//  Starts one more actor by name after fixture_new, and waits until its
//  service has a live worker.  Returns its index for fixture_stop_actor.
int
fixture_start_actor (fixture_t *self, const char *name);

//  Stops the actor at index (as returned by fixture_start_actor, or its
//  place in fixture_new's names) before the fixture ends.
void
fixture_stop_actor (fixture_t *self, int index);

//  Polls the broker (MMI_SERVICES) until service has count live workers,
//  for at most 5 s; fails the test otherwise.
void
fixture_wait_live (fixture_t *self, const char *service, int count);

//  The number of live workers of service as the broker sees them now.
int
fixture_live (fixture_t *self, const char *service);

//  fixture_live and fixture_wait_live for any client on a broker (a test
//  that starts its own broker): asks through front; -1 on no answer.
int
fixture_front_live (bus_front_t *front, const char *service);

void
fixture_front_wait_live (bus_front_t *front, const char *service, int count);

//  Sends a request of type to service with body_json (JSON text of an
//  object; NULL for {}) and session key key (NULL for none).  Returns the
//  request's corr_id.
uint64_t
fixture_send (fixture_t *self, const char *service, const char *type, const char *key,
              const char *body_json);

//  fixture_send, then waits up to timeout_ms for the reply with that
//  corr_id; events and stale replies that come first are dropped.  Fills
//  reply (call bus_msg_fini).  Fails the test on timeout.
void
fixture_call (fixture_t *self, const char *service, const char *type, const char *key,
              const char *body_json, int timeout_ms, bus_msg_t *reply);

//  fixture_call with 3 s to answer, then fails the test unless the reply
//  is of type want, status 200, and valid (fixture_assert_valid).  Returns
//  its body as JSON; caller owns the return value (cJSON_Delete).
cJSON *
fixture_ask (fixture_t *self, const char *service, const char *type,
             const char *body_json, const char *want);

//  fixture_call with 3 s to answer, then fixture_assert_error.
void
fixture_ask_error (fixture_t *self, const char *service, const char *type,
                   const char *body_json, int status, const char *code);

//  fixture_ask_error, and fails the test unless the error names param as
//  the field at fault (param NULL: names none).
void
fixture_ask_error_param (fixture_t *self, const char *service, const char *type,
                         const char *body_json, int status, const char *code,
                         const char *param);

//  Waits up to timeout_ms for the next message (reply or event).  Returns
//  0 with msg filled (call bus_msg_fini), or -1 on timeout.
int
fixture_recv (fixture_t *self, int timeout_ms, bus_msg_t *msg);

//  The event type of msg: what follows the last '/' of its topic
//  ("chat.delta"), or "" for a reply.  Lent (points into msg).
const char *
fixture_event_type (const bus_msg_t *msg);

//  Fails the test unless msg's body matches its declaration in
//  schemas/messages.def, strictly (msg_check_out: no undeclared field): a
//  reply against its envelope type, an event against its name ("chat.done").
void
fixture_assert_valid (const bus_msg_t *msg);

//  Fails the test unless reply is a valid ERROR with this status and code.
void
fixture_assert_error (const bus_msg_t *reply, int status, const char *code);

//  msg's body as JSON.  Caller owns the return value (cJSON_Delete).
cJSON *
fixture_json (const bus_msg_t *msg);

//  What one run sent the test's front, from its first event to its end.
typedef struct {
    char text[8192];    //  The deltas' text, joined
    int deltas;         //  chat.delta events
    int64_t first_seq;  //  seq of its first event
    int64_t last_seq;   //  seq of its last (the end)
    char end[16];       //  "chat.done" or "chat.error"
    cJSON *body;        //  The end's body (owned)
} fixture_run_t;

//  Receives events until run_id's chat.done or chat.error, for at most
//  timeout_ms; events of other runs and replies are dropped.  Fails the
//  test unless every event of the run is valid (fixture_assert_valid),
//  names the run, and takes the seq after the one before.  Call
//  fixture_run_fini.
void
fixture_run_wait (fixture_t *self, const char *run_id, int timeout_ms,
                  fixture_run_t *run);

void
fixture_run_fini (fixture_run_t *run);

//  fixture_run_wait, then fails the test unless the run ended with
//  chat.done and finishReason reason.  Call fixture_run_fini.
void
fixture_run_done (fixture_t *self, const char *run_id, int timeout_ms, const char *reason,
                  fixture_run_t *run);

//  A string member of a JSON object, or NULL (absent, not a string).
const char *
fixture_str (const cJSON *obj, const char *key);

//  A number member of a JSON object; fails the test if there is none.
double
fixture_num (const cJSON *obj, const char *key);

#endif
