/*  =========================================================================
    test_actor_session - the session actor in-process, on the fixture

    The session and run actors against a broker of the test's own, with
    the built-in local/echo provider (it answers the last user message word
    by word, echoDelayMs apart, and counts the words of every message it is
    sent as prompt tokens).  SESSION_RUN, SESSION_ABORT, SESSION_LIST,
    SESSION_GET and SESSION_DELETE (schemas/messages.def); every reply and
    event is checked against its declaration.
    =========================================================================
*/
#include <criterion/criterion.h>

#include "fixture.h"

TestSuite (actor_session, .fini = fixture_fini, .timeout = 60);

static const char *const s_actors[] = {"session", "run", NULL};

//  The SESSION_RUN body of run id on session key with message text.
static void
s_run_body (char *buf, size_t cap, const char *id, const char *key, const char *text)
{
    snprintf (buf, cap,
              "{\"runId\":\"%s\",\"sessionKey\":\"%s\",\"message\":\"%s\","
              "\"stream\":true}",
              id, key, text);
}

//  Sends a SESSION_RUN (no reply comes when it is taken).
static void
s_run (fixture_t *fx, const char *id, const char *key, const char *text)
{
    char body[1024];
    s_run_body (body, sizeof (body), id, key, text);
    fixture_send (fx, "session", "SESSION_RUN", key, body);
}

//  The SESSION_GET_OK of session key, as JSON.  Caller deletes.
static cJSON *
s_get (fixture_t *fx, const char *key)
{
    char body[256];
    snprintf (body, sizeof (body), "{\"sessionKey\":\"%s\"}", key);
    return fixture_ask (fx, "session.read", "SESSION_GET", body, "SESSION_GET_OK");
}

//  Fails the test unless session key holds count messages, and the one at
//  index has want as its field.
static void
s_assert_message (fixture_t *fx, const char *key, int count, int index, const char *field,
                  const char *want)
{
    cJSON *j = s_get (fx, key);
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive (j, "messages");
    cr_assert_eq (cJSON_GetArraySize (msgs), count);
    cr_assert_str_eq (fixture_str (cJSON_GetArrayItem (msgs, index), field), want);
    cJSON_Delete (j);
}

Test (actor_session, run_is_committed_and_gets_its_context)
{
    fixture_t *fx = fixture_new (NULL, s_actors);
    s_run (fx, "run-1", "s1", "hello there world");
    fixture_run_t r;
    fixture_run_wait (fx, "run-1", 10000, &r);
    cr_assert_str_eq (r.end, "chat.done");
    cr_assert_str_eq (r.text, "hello there world");
    cr_assert_eq (r.deltas, 3, "one delta per word");
    cr_assert_eq (r.first_seq, 1, "a new session's events start at seq 1");
    cr_assert_str_eq (fixture_str (r.body, "finishReason"), "stop");
    cr_assert_str_eq (fixture_str (r.body, "response"), "hello there world");
    cr_assert_str_eq (fixture_str (r.body, "model"), "local/echo");
    cr_assert_str_eq (fixture_str (r.body, "sessionKey"), "s1");
    int64_t last = r.last_seq;
    fixture_run_fini (&r);

    //  Committed before chat.done: a get right after finds both messages.
    cJSON *got = s_get (fx, "s1");
    const cJSON *msgs = cJSON_GetObjectItemCaseSensitive (got, "messages");
    cr_assert_eq (cJSON_GetArraySize (msgs), 2);
    const cJSON *user = cJSON_GetArrayItem (msgs, 0);
    const cJSON *reply = cJSON_GetArrayItem (msgs, 1);
    cr_assert_str_eq (fixture_str (user, "role"), "user");
    cr_assert_str_eq (fixture_str (user, "content"), "hello there world");
    cr_assert_str_eq (fixture_str (user, "runId"), "run-1");
    cr_assert_str_eq (fixture_str (reply, "role"), "assistant");
    cr_assert_str_eq (fixture_str (reply, "content"), "hello there world");
    cr_assert_str_eq (fixture_str (reply, "finishReason"), "stop");
    cr_assert (cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (got, "nextCursor")));
    cJSON_Delete (got);

    //  The next run carries the earlier exchange as context (3 + 3 words)
    //  plus its own two, and its events go on from the session's seq.
    s_run (fx, "run-2", "s1", "again now");
    fixture_run_wait (fx, "run-2", 10000, &r);
    cr_assert_str_eq (r.end, "chat.done");
    cr_assert_str_eq (r.text, "again now");
    cr_assert_eq (r.first_seq, last + 1, "seq went from %lld to %lld", (long long) last,
                  (long long) r.first_seq);
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive (r.body, "usage");
    cr_assert_eq (fixture_num (usage, "promptTokens"), 8,
                  "prompt of %g words, not 3 + 3 + 2",
                  fixture_num (usage, "promptTokens"));
    cr_assert_eq (fixture_num (usage, "completionTokens"), 2);
    fixture_run_fini (&r);
    fixture_destroy (&fx);
}

//  Runs on one session go one at a time, in arrival order: every event of
//  a run comes before the first of the next, and seq never skips.
Test (actor_session, runs_on_one_session_keep_their_order)
{
    fixture_t *fx = fixture_new_echo (20, s_actors);
    const char *ids[] = {"run-a", "run-b", "run-c"};
    for (int i = 0; i < 3; i++)
        s_run (fx, ids[i], "ordered", "one two three four");
    int current = 0;
    int64_t seq = 0;
    int64_t deadline = zclock_mono () + 15000;
    while (current < 3) {
        cr_assert_lt (zclock_mono (), deadline, "stuck at %s", ids[current]);
        bus_msg_t msg;
        if (fixture_recv (fx, 500, &msg))
            continue;
        cr_assert_eq (msg.kind, BUS_MSG_EVENT, "unexpected reply %s", msg.env.type);
        fixture_assert_valid (&msg);
        char id[32] = "";
        mp_copy_str (msg.body.root, "runId", id, sizeof (id));
        cr_assert_str_eq (id, ids[current], "%s of %s while %s was going",
                          fixture_event_type (&msg), id, ids[current]);
        int64_t s = 0;
        cr_assert (mp_get_int (msg.body.root, "seq", &s));
        cr_assert_eq (s, seq + 1, "seq %lld after %lld", (long long) s, (long long) seq);
        seq = s;
        if (streq (fixture_event_type (&msg), "chat.done"))
            current++;
        bus_msg_fini (&msg);
    }
    cr_assert_eq (seq, 3 * 5, "4 deltas and a done per run");
    fixture_destroy (&fx);
}

//  More than sessions.maxQueued runs (running included) on one session:
//  the extra one is refused with 429 at once; another session is not.
Test (actor_session, queue_limit_refuses_with_429)
{
    fixture_t *fx = fixture_new ("{\"sessions\":{\"maxQueued\":2},"
                                 "\"providers\":{\"local\":{\"echoDelayMs\":"
                                 "200}}}",
                                 s_actors);
    s_run (fx, "run-1", "full", "a b c d e f g h");
    s_run (fx, "run-2", "full", "a b c d e f g h");
    char body[512];
    s_run_body (body, sizeof (body), "run-3", "full", "refused");
    bus_msg_t reply;
    fixture_call (fx, "session", "SESSION_RUN", "full", body, 3000, &reply);
    fixture_assert_error (&reply, 429, "rate_limited");
    bus_msg_fini (&reply);
    //  The refused run left nothing behind: aborting it finds nothing.
    cJSON *j = fixture_ask (fx, "session", "SESSION_ABORT", "{\"runId\":\"run-3\"}",
                            "RUN_ABORTED");
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItemCaseSensitive (j, "aborted")));
    cJSON_Delete (j);
    //  Another session has a queue of its own.
    s_run (fx, "run-4", "other", "fine");
    fixture_run_t r;
    fixture_run_wait (fx, "run-4", 10000, &r);
    cr_assert_str_eq (r.end, "chat.done");
    cr_assert_str_eq (r.text, "fine");
    fixture_run_fini (&r);
    fixture_destroy (&fx);
}

//  A queued run aborted ends as aborted at once, without running; the run
//  ahead of it goes on.
Test (actor_session, abort_of_a_queued_run)
{
    fixture_t *fx = fixture_new_echo (100, s_actors);
    s_run (fx, "run-1", "ab", "one two three");
    s_run (fx, "run-2", "ab", "never said");
    cJSON *j = fixture_ask (fx, "session", "SESSION_ABORT", "{\"runId\":\"run-2\"}",
                            "RUN_ABORTED");
    cr_assert_str_eq (fixture_str (j, "runId"), "run-2");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (j, "aborted")));
    cJSON_Delete (j);
    fixture_run_t r;
    fixture_run_done (fx, "run-2", 5000, "aborted", &r);
    cr_assert_eq (r.deltas, 0);
    fixture_run_fini (&r);
    //  (Its first deltas went by while run-2 was awaited: its end says it
    //  all.)
    fixture_run_wait (fx, "run-1", 10000, &r);
    cr_assert_str_eq (fixture_str (r.body, "finishReason"), "stop");
    cr_assert_str_eq (fixture_str (r.body, "response"), "one two three");
    fixture_run_fini (&r);
    //  Unknown run: answered, nothing aborted.
    j = fixture_ask (fx, "session", "SESSION_ABORT", "{\"runId\":\"run-none\"}",
                     "RUN_ABORTED");
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItemCaseSensitive (j, "aborted")));
    cJSON_Delete (j);
    fixture_destroy (&fx);
}

Test (actor_session, list_get_and_delete)
{
    fixture_t *fx = fixture_new (NULL, s_actors);
    fixture_run_t r;
    s_run (fx, "run-1", "first", "one");
    fixture_run_wait (fx, "run-1", 10000, &r);
    fixture_run_fini (&r);
    //  updatedAt has millisecond resolution: keep the order unambiguous.
    zclock_sleep (5);
    char body[512];
    snprintf (body, sizeof (body),
              "{\"runId\":\"run-2\",\"sessionKey\":\"second\",\"message\":"
              "\"two\",\"channel\":\"telegram\"}");
    fixture_send (fx, "session", "SESSION_RUN", "second", body);
    fixture_run_wait (fx, "run-2", 10000, &r);
    fixture_run_fini (&r);

    //  Newest updated first, a page at a time.
    cJSON *page = fixture_ask (fx, "session.read", "SESSION_LIST", "{\"limit\":1}",
                               "SESSION_LIST_OK");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive (page, "sessions");
    cr_assert_eq (cJSON_GetArraySize (list), 1);
    const cJSON *s = cJSON_GetArrayItem (list, 0);
    cr_assert_str_eq (fixture_str (s, "sessionKey"), "second");
    cr_assert_str_eq (fixture_str (s, "channel"), "telegram");
    cr_assert_str_eq (fixture_str (s, "agentId"), "default");
    cr_assert_eq (fixture_num (s, "messageCount"), 2);
    const char *cursor = fixture_str (page, "nextCursor");
    cr_assert_not_null (cursor, "no cursor though a session is left");
    char next[128];
    snprintf (next, sizeof (next), "{\"limit\":1,\"cursor\":\"%s\"}", cursor);
    cJSON_Delete (page);
    page = fixture_ask (fx, "session.read", "SESSION_LIST", next, "SESSION_LIST_OK");
    list = cJSON_GetObjectItemCaseSensitive (page, "sessions");
    cr_assert_eq (cJSON_GetArraySize (list), 1);
    cr_assert_str_eq (fixture_str (cJSON_GetArrayItem (list, 0), "sessionKey"), "first");
    cr_assert (cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (page, "nextCursor")));
    cJSON_Delete (page);
    //  The channel filter.
    page = fixture_ask (fx, "session.read", "SESSION_LIST", "{\"channel\":\"telegram\"}",
                        "SESSION_LIST_OK");
    list = cJSON_GetObjectItemCaseSensitive (page, "sessions");
    cr_assert_eq (cJSON_GetArraySize (list), 1);
    cr_assert_str_eq (fixture_str (cJSON_GetArrayItem (list, 0), "sessionKey"), "second");
    cJSON_Delete (page);
    //  Bad requests.
    fixture_ask_error (fx, "session.read", "SESSION_LIST", "{\"limit\":0}", 400,
                       "invalid_request");
    fixture_ask_error (fx, "session.read", "SESSION_LIST", "{\"cursor\":\"x\"}", 400,
                       "invalid_request");
    fixture_ask_error (fx, "session.read", "SESSION_GET", "{\"sessionKey\":\"nobody\"}",
                       404, "not_found");
    fixture_ask_error (fx, "session.read", "SESSION_GET", "{\"sessionKey\":\"bad key!\"}",
                       400, "invalid_request");

    //  Delete: gone from gets and lists; a second delete is a 404.
    cJSON *del = fixture_ask (fx, "session", "SESSION_DELETE",
                              "{\"sessionKey\":\"first\"}", "SESSION_DELETED");
    cr_assert_str_eq (fixture_str (del, "sessionKey"), "first");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (del, "deleted")));
    cJSON_Delete (del);
    fixture_ask_error (fx, "session.read", "SESSION_GET", "{\"sessionKey\":\"first\"}",
                       404, "not_found");
    fixture_ask_error (fx, "session", "SESSION_DELETE", "{\"sessionKey\":\"first\"}", 404,
                       "not_found");
    page = fixture_ask (fx, "session.read", "SESSION_LIST", NULL, "SESSION_LIST_OK");
    list = cJSON_GetObjectItemCaseSensitive (page, "sessions");
    cr_assert_eq (cJSON_GetArraySize (list), 1);
    cr_assert_str_eq (fixture_str (cJSON_GetArrayItem (list, 0), "sessionKey"), "second");
    cJSON_Delete (page);
    fixture_destroy (&fx);
}

Test (actor_session, refusals)
{
    fixture_t *fx = fixture_new (NULL, s_actors);
    fixture_ask_error (fx, "session", "SESSION_RUN",
                       "{\"runId\":\"run-1\",\"sessionKey\":\"s\",\"message\":\"hi\","
                       "\"model\":\"local/none\"}",
                       404, "not_found");
    fixture_ask_error (fx, "session", "SESSION_RUN",
                       "{\"runId\":\"run-1\",\"sessionKey\":\"s\",\"message\":\"hi\","
                       "\"agentId\":\"nobody\"}",
                       404, "not_found");
    fixture_ask_error (fx, "session", "SESSION_RUN",
                       "{\"runId\":\"run-1\",\"sessionKey\":\"s\",\"message\":\"\"}", 400,
                       "invalid_request");
    fixture_ask_error (fx, "session", "SESSION_RUN",
                       "{\"runId\":\"run-1\",\"sessionKey\":\"no spaces\","
                       "\"message\":\"hi\"}",
                       400, "invalid_request");
    //  None of them made a session.
    cJSON *page =
        fixture_ask (fx, "session.read", "SESSION_LIST", NULL, "SESSION_LIST_OK");
    cr_assert_eq (
        cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (page, "sessions")), 0);
    cJSON_Delete (page);
    fixture_destroy (&fx);
}

//  Aborting the run that is going: the run actor stops it, and the end is
//  recorded and sent as chat.done aborted, with what was said so far.
Test (actor_session, abort_of_the_running_run)
{
    fixture_t *fx = fixture_new_echo (150, s_actors);
    s_run (fx, "run-1", "go", "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10");
    bus_msg_t msg;
    int64_t deadline = zclock_mono () + 5000;
    while (true) {
        cr_assert_lt (zclock_mono (), deadline, "no first delta");
        if (fixture_recv (fx, 500, &msg))
            continue;
        bool delta = streq (fixture_event_type (&msg), "chat.delta");
        bus_msg_fini (&msg);
        if (delta)
            break;
    }
    cJSON *j = fixture_ask (fx, "session", "SESSION_ABORT", "{\"runId\":\"run-1\"}",
                            "RUN_ABORTED");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (j, "aborted")));
    cJSON_Delete (j);
    fixture_run_t r;
    fixture_run_done (fx, "run-1", 5000, "aborted", &r);
    const char *said = fixture_str (r.body, "response");
    cr_assert (said && !strncmp (said, "w1", 2)
                   && strlen (said) < strlen ("w1 w2 w3 w4 w5 w6 w7 w8 w9 w10"),
               "response '%s'", said ? said : "(none)");
    fixture_run_fini (&r);
    s_assert_message (fx, "go", 2, 1, "finishReason", "aborted");
    fixture_destroy (&fx);
}

//  Deleting a session with a run going and one queued: the queued one ends
//  at once as aborted, the running one is stopped and ends too, and the
//  session stays gone.
Test (actor_session, delete_with_runs_in_flight)
{
    fixture_t *fx = fixture_new_echo (150, s_actors);
    s_run (fx, "run-1", "doomed", "w1 w2 w3 w4 w5 w6 w7 w8 w9 w10");
    s_run (fx, "run-2", "doomed", "never");
    cJSON *j = fixture_ask (fx, "session", "SESSION_DELETE",
                            "{\"sessionKey\":\"doomed\"}", "SESSION_DELETED");
    cJSON_Delete (j);
    fixture_run_t r;
    fixture_run_done (fx, "run-2", 5000, "aborted", &r);
    cr_assert_eq (r.deltas, 0);
    fixture_run_fini (&r);
    fixture_run_done (fx, "run-1", 5000, "aborted", &r);
    fixture_run_fini (&r);
    fixture_ask_error (fx, "session.read", "SESSION_GET", "{\"sessionKey\":\"doomed\"}",
                       404, "not_found");
    //  The key can be used again, from a fresh start.
    s_run (fx, "run-3", "doomed", "again");
    fixture_run_wait (fx, "run-3", 5000, &r);
    cr_assert_str_eq (fixture_str (r.body, "response"), "again");
    fixture_run_fini (&r);
    j = s_get (fx, "doomed");
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (j, "messages")),
                  2, "the new session holds only its own exchange");
    cJSON_Delete (j);
    fixture_destroy (&fx);
}

//  A run given a whole conversation (messages) is sent it as given, no
//  context added; its last user message is what the session records.
Test (actor_session, messages_are_sent_as_given)
{
    fixture_t *fx = fixture_new (NULL, s_actors);
    s_run (fx, "run-1", "conv", "one two");
    fixture_run_t r;
    fixture_run_wait (fx, "run-1", 5000, &r);
    fixture_run_fini (&r);
    fixture_send (fx, "session", "SESSION_RUN", "conv",
                  "{\"runId\":\"run-2\",\"sessionKey\":\"conv\",\"messages\":["
                  "{\"role\":\"system\",\"content\":\"be brief\"},"
                  "{\"role\":\"user\",\"content\":[{\"type\":\"text\","
                  "\"text\":\"parts\"},{\"type\":\"text\",\"text\":\" joined\"}]},"
                  "{\"role\":\"assistant\",\"content\":\"ok\"},"
                  "{\"role\":\"user\",\"content\":\"last words here\"}]}");
    fixture_run_wait (fx, "run-2", 5000, &r);
    cr_assert_str_eq (fixture_str (r.body, "response"), "last words here");
    //  be brief (2) + ok (1) + last words here (3); the parts are not
    //  strings, so the echo provider does not count them; no context.
    const cJSON *usage = cJSON_GetObjectItemCaseSensitive (r.body, "usage");
    cr_assert_eq (fixture_num (usage, "promptTokens"), 6, "prompt of %g words",
                  fixture_num (usage, "promptTokens"));
    fixture_run_fini (&r);
    s_assert_message (fx, "conv", 4, 2, "content", "last words here");
    fixture_destroy (&fx);
}

//  A run still queued when its timeoutMs passes ends as timeout without
//  running; the one ahead of it is not disturbed.
Test (actor_session, queued_run_past_its_deadline_times_out)
{
    fixture_t *fx = fixture_new_echo (100, s_actors);
    s_run (fx, "run-1", "slow", "a b c d e f g h i j");
    fixture_send (fx, "session", "SESSION_RUN", "slow",
                  "{\"runId\":\"run-2\",\"sessionKey\":\"slow\",\"message\":"
                  "\"late\",\"stream\":true,\"timeoutMs\":300}");
    int64_t t0 = zclock_mono ();
    fixture_run_t r;
    fixture_run_wait (fx, "run-2", 5000, &r);
    cr_assert_str_eq (fixture_str (r.body, "finishReason"), "timeout");
    cr_assert_eq (r.deltas, 0);
    cr_assert_lt (zclock_mono () - t0, 1500, "not ended near its deadline");
    fixture_run_fini (&r);
    fixture_run_wait (fx, "run-1", 5000, &r);
    cr_assert_str_eq (fixture_str (r.body, "finishReason"), "stop");
    cr_assert_str_eq (fixture_str (r.body, "response"), "a b c d e f g h i j");
    fixture_run_fini (&r);
    fixture_destroy (&fx);
}
