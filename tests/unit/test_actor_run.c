/*  =========================================================================
    test_actor_run - the run actor in-process, on the fixture

    RUN_START and RUN_ABORT (schemas/messages.def) with the built-in
    local/echo provider, which answers the last user message word by word
    (providers.local.echoDelayMs apart): the deltas and the end event with
    their topics and seq, the RUN_RESULT of a run that names replyTo, an
    abort, a deadline, and the refusals.
    =========================================================================
*/
#include <criterion/criterion.h>

#include "fixture.h"

TestSuite (actor_run, .fini = fixture_fini, .timeout = 60);

static const char *const s_run_only[] = {"run", NULL};

//  Sends a RUN_START of one user message, on session key (NULL for none),
//  extra ("" or ",\"k\":v...") added.  Returns its corr_id.
static uint64_t
s_start (fixture_t *fx, const char *id, const char *key, const char *text,
         const char *extra)
{
    char session[128] = "";
    if (key)
        snprintf (session, sizeof (session), ",\"sessionKey\":\"%s\"", key);
    char body[2048];
    snprintf (body, sizeof (body),
              "{\"runId\":\"%s\"%s,\"messages\":[{\"role\":\"user\","
              "\"content\":\"%s\"}]%s}",
              id, session, text, extra);
    return fixture_send (fx, "run", "RUN_START", key, body);
}

//  Waits for the next event and checks its topic; returns it in msg.
static void
s_next_event (fixture_t *fx, const char *topic, bus_msg_t *msg)
{
    int64_t deadline = zclock_mono () + 5000;
    while (true) {
        cr_assert_lt (zclock_mono (), deadline, "no %s", topic);
        if (fixture_recv (fx, 500, msg))
            continue;
        cr_assert_eq (msg->kind, BUS_MSG_EVENT, "a reply %s (%d) came", msg->env.type,
                      msg->env.status);
        cr_assert_str_eq (msg->topic, topic);
        fixture_assert_valid (msg);
        return;
    }
}

static void
s_assert_error (fixture_t *fx, const char *body, int status, const char *code,
                const char *param)
{
    fixture_ask_error_param (fx, "run", "RUN_START", body, status, code, param);
}

//  A run without a session has a topic of its own, seq from 1: each word
//  is a delta, then chat.done carries the whole text and the usage.
Test (actor_run, stateless_stream_deltas_then_done)
{
    fixture_t *fx = fixture_new (NULL, s_run_only);
    s_start (fx, "run-s", NULL, "alpha beta gamma", ",\"stream\":true");
    const char *words[] = {"alpha", " beta", " gamma"};
    bus_msg_t msg;
    for (int i = 0; i < 3; i++) {
        s_next_event (fx, "run:run-s/chat.delta", &msg);
        char delta[32] = "";
        mp_copy_str (msg.body.root, "delta", delta, sizeof (delta));
        cr_assert_str_eq (delta, words[i]);
        int64_t seq = 0;
        mp_get_int (msg.body.root, "seq", &seq);
        cr_assert_eq (seq, i + 1);
        bus_msg_fini (&msg);
    }
    s_next_event (fx, "run:run-s/chat.done", &msg);
    cJSON *done = fixture_json (&msg);
    bus_msg_fini (&msg);
    cr_assert_eq (fixture_num (done, "seq"), 4);
    cr_assert_str_eq (fixture_str (done, "sessionKey"), "");
    cr_assert_str_eq (fixture_str (done, "finishReason"), "stop");
    cr_assert_str_eq (fixture_str (done, "response"), "alpha beta gamma");
    cr_assert_str_eq (fixture_str (done, "model"), "local/echo");
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive (done, "usage");
    cr_assert_eq (fixture_num (usage, "promptTokens"), 3);
    cr_assert_eq (fixture_num (usage, "completionTokens"), 3);
    cr_assert_eq (fixture_num (usage, "totalTokens"), 6);
    cJSON_Delete (done);
    //  No reply to the RUN_START: the events were the answer.
    cr_assert_neq (fixture_recv (fx, 200, &msg), 0, "something more came");
    fixture_destroy (&fx);
}

//  A front that asked for no stream gets only chat.done, whole.
Test (actor_run, no_stream_gets_done_only)
{
    fixture_t *fx = fixture_new (NULL, s_run_only);
    s_start (fx, "run-n", NULL, "one two", "");
    fixture_run_t r;
    fixture_run_wait (fx, "run-n", 5000, &r);
    cr_assert_str_eq (r.end, "chat.done");
    cr_assert_eq (r.deltas, 0);
    cr_assert_str_eq (fixture_str (r.body, "response"), "one two");
    //  The deltas still took their seq (the bus saw them).
    cr_assert_eq (r.last_seq, 3);
    fixture_run_fini (&r);
    fixture_destroy (&fx);
}

//  Runs that name a session (and no replyTo) share its counter.
Test (actor_run, session_runs_share_a_seq)
{
    fixture_t *fx = fixture_new (NULL, s_run_only);
    s_start (fx, "run-1", "k1", "a b", ",\"stream\":true");
    bus_msg_t msg;
    s_next_event (fx, "k1/chat.delta", &msg);
    bus_msg_fini (&msg);
    fixture_run_t r;
    fixture_run_wait (fx, "run-1", 5000, &r);
    cr_assert_eq (r.last_seq, 3);
    fixture_run_fini (&r);
    s_start (fx, "run-2", "k1", "c", ",\"stream\":true");
    fixture_run_wait (fx, "run-2", 5000, &r);
    cr_assert_eq (r.first_seq, 4, "the session's seq went back or jumped");
    cr_assert_eq (r.last_seq, 5);
    fixture_run_fini (&r);
    fixture_destroy (&fx);
}

//  With replyTo, the deltas go to that front numbered from seqBase + 1, and
//  the end comes back to the asker as a RUN_RESULT reply, not an event.
Test (actor_run, reply_to_gets_run_result)
{
    fixture_t *fx = fixture_new (NULL, s_run_only);
    char extra[256];
    snprintf (extra, sizeof (extra), ",\"stream\":true,\"replyTo\":\"%s\",\"seqBase\":10",
              bus_front_id (fixture_front (fx)));
    uint64_t corr = s_start (fx, "run-r", "k2", "x y", extra);
    bus_msg_t msg;
    for (int i = 0; i < 2; i++) {
        s_next_event (fx, "k2/chat.delta", &msg);
        int64_t seq = 0;
        mp_get_int (msg.body.root, "seq", &seq);
        cr_assert_eq (seq, 11 + i);
        bus_msg_fini (&msg);
    }
    cr_assert_eq (fixture_recv (fx, 5000, &msg), 0, "no RUN_RESULT");
    cr_assert_eq (msg.kind, BUS_MSG_REPLY, "the end came as event %s", msg.topic);
    cr_assert_eq (msg.env.corr_id, corr);
    cr_assert_str_eq (msg.env.type, "RUN_RESULT");
    cr_assert_eq (msg.env.status, 200);
    fixture_assert_valid (&msg);
    cJSON *res = fixture_json (&msg);
    bus_msg_fini (&msg);
    cr_assert_str_eq (fixture_str (res, "event"), "chat.done");
    cr_assert_str_eq (fixture_str (res, "runId"), "run-r");
    cr_assert_eq (fixture_num (res, "seq"), 13);
    cr_assert_str_eq (fixture_str (res, "response"), "x y");
    cJSON_Delete (res);
    fixture_destroy (&fx);
}

//  RUN_ABORT stops a run in flight: RUN_ABORTED true, then chat.done with
//  finishReason aborted before the words ran out; a second abort finds
//  nothing.
Test (actor_run, abort_in_flight)
{
    fixture_t *fx = fixture_new_echo (200, s_run_only);
    s_start (fx, "run-x", NULL, "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10", ",\"stream\":true");
    bus_msg_t msg;
    s_next_event (fx, "run:run-x/chat.delta", &msg);
    bus_msg_fini (&msg);
    fixture_call (fx, "run", "RUN_ABORT", NULL, "{\"runId\":\"run-x\"}", 3000, &msg);
    cr_assert_str_eq (msg.env.type, "RUN_ABORTED");
    fixture_assert_valid (&msg);
    bool aborted = false;
    cr_assert (mp_get_bool (msg.body.root, "aborted", &aborted));
    cr_assert (aborted);
    bus_msg_fini (&msg);
    fixture_run_t r;
    fixture_run_done (fx, "run-x", 3000, "aborted", &r);
    cr_assert_lt (r.deltas, 9, "the run went on after its abort");
    fixture_run_fini (&r);
    fixture_call (fx, "run", "RUN_ABORT", NULL, "{\"runId\":\"run-x\"}", 3000, &msg);
    cr_assert (mp_get_bool (msg.body.root, "aborted", &aborted));
    cr_assert_not (aborted);
    bus_msg_fini (&msg);
    fixture_destroy (&fx);
}

//  Past timeoutMs a run ends with finishReason timeout.
Test (actor_run, deadline_ends_with_timeout)
{
    fixture_t *fx = fixture_new_echo (200, s_run_only);
    int64_t t0 = zclock_mono ();
    s_start (fx, "run-t", NULL, "a b c d e f g h i j", ",\"timeoutMs\":300");
    fixture_run_t r;
    fixture_run_wait (fx, "run-t", 3000, &r);
    cr_assert_str_eq (fixture_str (r.body, "finishReason"), "timeout");
    cr_assert_lt (zclock_mono () - t0, 1500, "the deadline was not kept");
    fixture_run_fini (&r);
    fixture_destroy (&fx);
}

Test (actor_run, refusals)
{
    fixture_t *fx = fixture_new_echo (100, s_run_only);
    s_assert_error (fx,
                    "{\"runId\":\"run-1\",\"model\":\"local/nothing\","
                    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                    404, "not_found", "model");
    s_assert_error (fx,
                    "{\"runId\":\"run-1\",\"model\":\"nowhere/echo\","
                    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                    404, "not_found", "model");
    s_assert_error (fx,
                    "{\"runId\":\"run-1\",\"agentId\":\"nobody\","
                    "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                    404, "not_found", "agentId");
    s_assert_error (fx, "{\"runId\":\"run-1\",\"messages\":[]}", 400, "invalid_request",
                    "messages");
    s_assert_error (fx,
                    "{\"runId\":\"\",\"messages\":[{\"role\":\"user\","
                    "\"content\":\"hi\"}]}",
                    400, "invalid_request", "runId");
    //  A runId already in flight (20 words, 100 ms apart).
    s_start (fx, "run-d", NULL, "a b c d e f g h i j k l m n o p q r s t",
             ",\"timeoutMs\":60000");
    s_assert_error (fx,
                    "{\"runId\":\"run-d\",\"messages\":[{\"role\":\"user\","
                    "\"content\":\"hi\"}]}",
                    400, "invalid_request", "runId");
    fixture_destroy (&fx);
}

//  A provider nobody listens for (port 1 on loopback refuses at once).
#define DEAD_PROVIDER                                                                    \
    "\"providers\":{\"dead\":{\"type\":\"openai\",\"baseUrl\":"                          \
    "\"http://127.0.0.1:1/v1\",\"apiKey\":\"k\",\"models\":[\"x\"]}}"

//  A run whose model cannot be reached before its first delta moves on to
//  the agent's fallbacks; without one it ends in chat.error 503.
Test (actor_run, unreachable_model_falls_back_or_fails)
{
    fixture_t *fx = fixture_new ("{" DEAD_PROVIDER ",\"agents\":{"
                                 "\"fb\":{\"model\":\"dead/x\","
                                 "\"fallbacks\":[\"local/echo\"]},"
                                 "\"alone\":{\"model\":\"dead/x\"}}}",
                                 s_run_only);
    s_start (fx, "run-fb", NULL, "still answered", ",\"agentId\":\"fb\"");
    fixture_run_t r;
    fixture_run_wait (fx, "run-fb", 10000, &r);
    cr_assert_str_eq (r.end, "chat.done", "no fallback: %s",
                      fixture_str (r.body, "model"));
    cr_assert_str_eq (fixture_str (r.body, "model"), "local/echo");
    cr_assert_str_eq (fixture_str (r.body, "response"), "still answered");
    fixture_run_fini (&r);

    s_start (fx, "run-alone", NULL, "lost", ",\"agentId\":\"alone\"");
    fixture_run_wait (fx, "run-alone", 10000, &r);
    cr_assert_str_eq (r.end, "chat.error");
    cr_assert_eq (fixture_num (r.body, "status"), 503);
    const cJSON *e = cJSON_GetObjectItemCaseSensitive (r.body, "error");
    cr_assert_str_eq (fixture_str (e, "code"), "service_unavailable");
    cr_assert_str_eq (fixture_str (e, "type"), "server_error");
    fixture_run_fini (&r);
    fixture_destroy (&fx);
}
