/*  =========================================================================
    test_actor_system - the system actor in-process, on the fixture

    SYSTEM_STATUS and SYSTEM_PING through a real broker (tests/support/
    fixture.h).  The first test is the one test_broker.c had; it moved here
    with its assertions when the fixture became shared.
    =========================================================================
*/
#include <criterion/criterion.h>

#include "fixture.h"
#include "msg.h"

#define EMPTY_MAP "\x80"

TestSuite (actor_system, .fini = fixture_fini, .timeout = 60);

static const char *const s_system[] = {"system", NULL};

Test (actor_system, request_routed_to_system_actor)
{
    fixture_t *fx = fixture_new (NULL, s_system);
    bus_front_t *front = fixture_front (fx);
    char err[256];

    envelope_t env;
    envelope_init (&env, "SYSTEM_STATUS");
    snprintf (env.session_key, sizeof (env.session_key), "agent:main:t");
    env.timeout_ms = 1234;
    cr_assert_eq (bus_front_send (front, "system", &env, EMPTY_MAP, 1), 0);
    bus_msg_t reply;
    cr_assert_eq (bus_front_recv (front, 2000, &reply), 0);
    cr_assert_eq (reply.kind, BUS_MSG_REPLY);
    cr_assert_eq (reply.env.corr_id, env.corr_id);
    cr_assert_eq (reply.env.status, 200);
    cr_assert_str_eq (reply.env.type, "SYSTEM_STATUS_OK");
    cr_assert_str_eq (reply.env.session_key, "agent:main:t");
    cr_assert_eq (reply.env.timeout_ms, 1234);
    cr_assert_eq (
        msg_validate ("SYSTEM_STATUS_OK", reply.body.root, err, sizeof (err), NULL, 0), 0,
        "%s", err);
    char status[8];
    cr_assert_eq (mp_copy_str (reply.body.root, "status", status, sizeof (status)), 0);
    cr_assert_str_eq (status, "ok");
    bus_msg_fini (&reply);

    //  corr_ids keep increasing, and each reply carries its own.
    for (int i = 0; i < 5; i++) {
        envelope_init (&env, "SYSTEM_PING");
        cr_assert_eq (bus_front_call (front, "system", &env, EMPTY_MAP, 1, 2000, &reply),
                      0, "no reply to SYSTEM_PING");
        cr_assert_eq (reply.env.corr_id, env.corr_id);
        cr_assert_str_eq (reply.env.type, "SYSTEM_PONG");
        bus_msg_fini (&reply);
    }
    fixture_destroy (&fx);
}

//  Without a channel actor to ask, configured channels read "error"
//  (enabled: nobody serves them) or "disabled"; the others
//  "not_configured"; the worker names this process.
Test (actor_system, status_reports_channels_and_worker)
{
    fixture_t *fx = fixture_new ("{\"channels\":{\"telegram\":{\"enabled\":true,"
                                 "\"botToken\":\"1:x\"},"
                                 "\"slack\":{\"enabled\":false}}}",
                                 s_system);
    bus_msg_t reply;
    fixture_call (fx, "system", "SYSTEM_STATUS", NULL, NULL, 5000, &reply);
    cr_assert_eq (reply.env.status, 200);
    fixture_assert_valid (&reply);
    cJSON *j = fixture_json (&reply);
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive (j, "channels");
    struct {
        const char *id, *want;
    } expect[] = {{"telegram", "error"},
                  {"slack", "disabled"},
                  {"whatsapp", "not_configured"},
                  {"discord", "not_configured"},
                  {"webhook", "not_configured"}};
    for (size_t i = 0; i < sizeof (expect) / sizeof (expect[0]); i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive (ch, expect[i].id);
        cr_assert (cJSON_IsString (v), "no status for %s", expect[i].id);
        cr_assert_str_eq (v->valuestring, expect[i].want, "%s", expect[i].id);
    }
    char pid[32];
    snprintf (pid, sizeof (pid), ":%d", (int) getpid ());
    const cJSON *worker = cJSON_GetObjectItemCaseSensitive (j, "worker");
    cr_assert (cJSON_IsString (worker) && strstr (worker->valuestring, pid),
               "worker does not name this process");
    cJSON_Delete (j);
    bus_msg_fini (&reply);
    fixture_destroy (&fx);
}

//  With the channel actor, its statuses are the ones /status shows: a
//  Telegram whose API cannot be reached is "disconnected".
Test (actor_system, status_asks_the_channel_actor)
{
    static const char *const actors[] = {"system", "channel", NULL};
    fixture_t *fx = fixture_new ("{\"channels\":{\"telegram\":{\"botToken\":\"1:x\","
                                 "\"baseUrl\":\"http://127.0.0.1:1\"},"
                                 "\"webhook\":{\"hooks\":{\"ci\":"
                                 "{\"token\":\"0123456789abcdef\"}}}}}",
                                 actors);
    bus_msg_t reply;
    fixture_call (fx, "system", "SYSTEM_STATUS", NULL, NULL, 5000, &reply);
    cr_assert_eq (reply.env.status, 200);
    cJSON *j = fixture_json (&reply);
    const cJSON *ch = cJSON_GetObjectItemCaseSensitive (j, "channels");
    cr_assert_str_eq (cJSON_GetObjectItemCaseSensitive (ch, "telegram")->valuestring,
                      "disconnected");
    cr_assert_str_eq (cJSON_GetObjectItemCaseSensitive (ch, "webhook")->valuestring,
                      "connected");
    cr_assert_str_eq (cJSON_GetObjectItemCaseSensitive (ch, "slack")->valuestring,
                      "not_configured");
    cJSON_Delete (j);
    bus_msg_fini (&reply);
    fixture_destroy (&fx);
}
