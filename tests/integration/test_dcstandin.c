/*  =========================================================================
    test_dcstandin - cg_dcstandin, the Discord stand-in, checked on its own
    with a real WebSocket client and real HTTP: Hello, Identify, READY and
    dispatches; the MESSAGE_CONTENT rule; a dropped connection resumed on
    /resume with the missed events replayed; close codes; the fault knobs;
    REST shapes, rate-limit headers and 429s; the sent log; the state file
    across a kill -9; and TLS (https and wss) with a CA made at run time.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "discord.h"
#include "harness.h"

static dc_standin_t s_dc;
static char s_dir[256];

static void
s_setup (void)
{
    harness_tmpdir (s_dir, sizeof (s_dir));
    char state[300];
    snprintf (state, sizeof (state), "%s/dc.json", s_dir);
    dc_options_t opt = {.heartbeat_ms = 500};
    cr_assert_eq (dc_start (&s_dc, state, &opt), 0, "cg_dcstandin did not start");
}

static void
s_teardown (void)
{
    dc_stop (&s_dc, SIGTERM);
    harness_rmtree (s_dir);
}

TestSuite (dcstandin, .init = s_setup, .fini = s_teardown, .timeout = 30);

//  ---- Helpers ----------------------------------------------------------------

static const char *
s_str (cJSON *obj, const char *path1, const char *path2)
{
    cJSON *item = cJSON_GetObjectItem (obj, path1);
    if (path2)
        item = cJSON_GetObjectItem (item, path2);
    return cJSON_GetStringValue (item);
}

static double
s_num (cJSON *obj, const char *name)
{
    return cJSON_GetNumberValue (cJSON_GetObjectItem (obj, name));
}

//  Opens path, checks Hello.
static dc_ws_t *
s_open (const char *path, bool tls)
{
    char err[256];
    dc_ws_t *w = dc_ws_open (&s_dc, path, tls, err, sizeof (err));
    cr_assert_not_null (w, "connect %s: %s", path, err);
    cJSON *hello = dc_ws_wait (w, 10, NULL, 3000);
    cr_assert_not_null (hello, "no Hello");
    cr_assert (cJSON_IsNull (cJSON_GetObjectItem (hello, "s")));
    cr_assert (cJSON_IsNull (cJSON_GetObjectItem (hello, "t")));
    cJSON *d = cJSON_GetObjectItem (hello, "d");
    cr_assert_eq (s_num (d, "heartbeat_interval"), 500);
    cJSON_Delete (hello);
    return w;
}

//  Opens /gateway, identifies, checks READY; the session id into sid.
static dc_ws_t *
s_ready (int intents, char *sid)
{
    dc_ws_t *w = s_open ("/gateway?v=10&encoding=json", false);
    cr_assert_eq (dc_ws_identify (w, DC_TOKEN, intents), 0);
    cJSON *ready = dc_ws_wait (w, 0, "READY", 3000);
    cr_assert_not_null (ready, "no READY");
    cr_assert_eq (s_num (ready, "s"), 1);
    cJSON *d = cJSON_GetObjectItem (ready, "d");
    cr_assert_eq (s_num (d, "v"), 10);
    cr_assert_str_eq (s_str (d, "user", "id"), DC_BOT_ID);
    cr_assert (
        cJSON_IsTrue (cJSON_GetObjectItem (cJSON_GetObjectItem (d, "user"), "bot")));
    cr_assert (cJSON_IsArray (cJSON_GetObjectItem (d, "guilds")));
    char url[96];
    snprintf (url, sizeof (url), "ws://127.0.0.1:%d/resume", s_dc.port);
    cr_assert_str_eq (s_str (d, "resume_gateway_url", NULL), url);
    const char *id = s_str (d, "session_id", NULL);
    cr_assert (id && strlen (id) >= 16);
    if (sid)
        strcpy (sid, id);
    cJSON_Delete (ready);
    return w;
}

//  Waits for a MESSAGE_CREATE and checks its s.  Caller owns return value.
static cJSON *
s_expect_message (dc_ws_t *w, long s)
{
    cJSON *frame = dc_ws_wait (w, 0, "MESSAGE_CREATE", 3000);
    cr_assert_not_null (frame, "no MESSAGE_CREATE (s %ld)", s);
    cr_assert_eq ((long) s_num (frame, "s"), s);
    return frame;
}

//  A REST call with the bot token (auth NULL: none).  Returns the status;
//  the answer lands in r (http_resp_free it).
static long
s_rest (const char *method, const char *path, const char *body, const char *auth,
        http_resp_t *r)
{
    char url[512], header[128];
    snprintf (url, sizeof (url), "%s%s", s_dc.api, path);
    snprintf (header, sizeof (header), "Authorization: %s", auth ? auth : "");
    const char *headers[] = {"Content-Type: application/json", auth ? header : NULL,
                             NULL};
    http_do (method, url, headers, body, body ? strlen (body) : 0, r);
    return r->status;
}

static long
s_post (const char *channel, const char *body, http_resp_t *r)
{
    char path[128];
    snprintf (path, sizeof (path), "/channels/%s/messages", channel);
    return s_rest ("POST", path, body, "Bot " DC_TOKEN, r);
}

//  Waits until the stand-in has no WebSocket connection open.
static void
s_wait_closed_all (void)
{
    long long deadline = harness_now_ms () + 3000;
    while (dc_call (&s_dc, "connections") != 0 && harness_now_ms () < deadline)
        usleep (20000);
    cr_assert_eq (dc_call (&s_dc, "connections"), 0);
}

//  ---- Gateway ----------------------------------------------------------------

Test (dcstandin, hello_identify_ready_and_dispatches)
{
    dc_ws_t *w = s_ready (DC_INTENTS, NULL);
    cr_assert_eq (dc_ws_send (w, "{\"op\":1,\"d\":1}"), 0);
    cJSON *ack = dc_ws_wait (w, 11, NULL, 3000);
    cr_assert_not_null (ack, "no heartbeat ACK");
    cJSON_Delete (ack);

    char id[32];
    long s = dc_message (
        &s_dc,
        "{\"channel_id\":\"55\",\"guild_id\":\"77\",\"author_id\":\"9\","
        "\"author_name\":\"ann\",\"content\":\"hello\",\"mentions\":[\"" DC_BOT_ID "\"]}",
        id);
    cr_assert_eq (s, 2);
    cJSON *frame = s_expect_message (w, 2);
    cJSON *d = cJSON_GetObjectItem (frame, "d");
    cr_assert_str_eq (s_str (d, "id", NULL), id);
    cr_assert_str_eq (s_str (d, "channel_id", NULL), "55");
    cr_assert_str_eq (s_str (d, "guild_id", NULL), "77");
    cr_assert_str_eq (s_str (d, "content", NULL), "hello");
    cr_assert_str_eq (s_str (d, "author", "username"), "ann");
    cr_assert_eq (s_num (d, "type"), 0);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (d, "mention_everyone")));
    cr_assert (cJSON_IsArray (cJSON_GetObjectItem (d, "mention_roles")));
    cJSON *mention = cJSON_GetArrayItem (cJSON_GetObjectItem (d, "mentions"), 0);
    cr_assert_str_eq (s_str (mention, "id", NULL), DC_BOT_ID);
    cJSON_Delete (frame);

    //  A DM from a bot, replying: no guild_id, author.bot, a reference.
    dc_message (&s_dc,
                "{\"channel_id\":\"56\",\"author_id\":\"10\",\"bot\":true,"
                "\"content\":\"dm\",\"message_reference\":\"123\"}",
                NULL);
    frame = s_expect_message (w, 3);
    d = cJSON_GetObjectItem (frame, "d");
    cr_assert_null (cJSON_GetObjectItem (d, "guild_id"));
    cr_assert (
        cJSON_IsTrue (cJSON_GetObjectItem (cJSON_GetObjectItem (d, "author"), "bot")));
    cr_assert_str_eq (s_str (d, "message_reference", "message_id"), "123");
    cJSON_Delete (frame);

    cr_assert_eq (dc_call (&s_dc, "identify"), 1);
    cr_assert_eq (dc_call (&s_dc, "identify_on_gateway"), 1);
    cr_assert_eq (dc_call (&s_dc, "heartbeats"), 1);
    cr_assert_eq (dc_call (&s_dc, "connections"), 1);
    dc_ws_close (&w, 1000);
    s_wait_closed_all ();
}

Test (dcstandin, message_content_intent)
{
    //  GUILD_MESSAGES | DIRECT_MESSAGES, no MESSAGE_CONTENT.
    dc_ws_t *w = s_ready ((1 << 9) | (1 << 12), NULL);
    dc_message (&s_dc,
                "{\"channel_id\":\"55\",\"guild_id\":\"77\",\"content\":\"secret\"}",
                NULL);
    dc_message (&s_dc,
                "{\"channel_id\":\"55\",\"guild_id\":\"77\",\"content\":\"hey\","
                "\"mention_bot\":true}",
                NULL);
    dc_message (&s_dc, "{\"channel_id\":\"56\",\"content\":\"private\"}", NULL);
    cJSON *frame = s_expect_message (w, 2);
    cr_assert_str_eq (s_str (cJSON_GetObjectItem (frame, "d"), "content", NULL), "");
    cJSON_Delete (frame);
    frame = s_expect_message (w, 3);
    cr_assert_str_eq (s_str (cJSON_GetObjectItem (frame, "d"), "content", NULL),
                      "<@" DC_BOT_ID "> hey");
    cJSON_Delete (frame);
    frame = s_expect_message (w, 4);
    cr_assert_str_eq (s_str (cJSON_GetObjectItem (frame, "d"), "content", NULL),
                      "private");
    cJSON_Delete (frame);
    dc_ws_close (&w, 1000);
}

Test (dcstandin, drop_then_resume_replays_missed_events)
{
    char sid[64];
    dc_ws_t *w = s_ready (DC_INTENTS, sid);
    dc_message (&s_dc, "{\"channel_id\":\"55\",\"content\":\"one\"}", NULL);
    cJSON_Delete (s_expect_message (w, 2));

    //  The network dies: no close frame.
    cr_assert_eq (dc_fault (&s_dc, "{\"kind\":\"drop\"}"), 1);
    cr_assert_eq (dc_ws_wait_closed (w, 3000), 1006);
    dc_ws_close (&w, 1000);
    s_wait_closed_all ();

    //  Kept for the session while it is down.
    cr_assert_eq (dc_message (&s_dc, "{\"channel_id\":\"55\",\"content\":\"two\"}", NULL),
                  3);
    cr_assert_eq (
        dc_message (&s_dc, "{\"channel_id\":\"55\",\"content\":\"three\"}", NULL), 4);

    w = s_open ("/resume?v=10&encoding=json", false);
    cr_assert_eq (dc_ws_resume (w, DC_TOKEN, sid, 2), 0);
    cJSON *frame = s_expect_message (w, 3);
    cr_assert_str_eq (s_str (cJSON_GetObjectItem (frame, "d"), "content", NULL), "two");
    cJSON_Delete (frame);
    frame = s_expect_message (w, 4);
    cr_assert_str_eq (s_str (cJSON_GetObjectItem (frame, "d"), "content", NULL), "three");
    cJSON_Delete (frame);
    frame = dc_ws_wait (w, 0, NULL, 3000);
    cr_assert_not_null (frame);
    cr_assert_str_eq (s_str (frame, "t", NULL), "RESUMED");
    cr_assert_eq (s_num (frame, "s"), 5);
    cJSON_Delete (frame);

    //  Live again.
    dc_message (&s_dc, "{\"channel_id\":\"55\",\"content\":\"four\"}", NULL);
    cJSON_Delete (s_expect_message (w, 6));
    cr_assert_eq (dc_call (&s_dc, "resume"), 1);
    cr_assert_eq (dc_call (&s_dc, "resume_on_resume"), 1);
    cr_assert_eq (dc_call (&s_dc, "identify"), 1);

    //  An unknown session: op 9 false.
    dc_ws_t *other = s_open ("/resume?v=10&encoding=json", false);
    dc_ws_resume (other, DC_TOKEN, "nope", 1);
    frame = dc_ws_wait (other, 9, NULL, 3000);
    cr_assert_not_null (frame);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (frame, "d")));
    cJSON_Delete (frame);
    dc_ws_close (&other, 1000);
    dc_ws_close (&w, 4000);
}

//  Opens /gateway, sends text, expects the close code.
static void
s_expect_close (const char *first, const char *second, int code)
{
    dc_ws_t *w = s_open ("/gateway?v=10&encoding=json", false);
    dc_ws_send (w, first);
    if (second)
        dc_ws_send (w, second);
    cr_assert_eq (dc_ws_wait_closed (w, 3000), code, "after %s", first);
    dc_ws_close (&w, 1000);
}

Test (dcstandin, close_codes)
{
    char identify[256];
    snprintf (identify, sizeof (identify),
              "{\"op\":2,\"d\":{\"token\":\"%s\",\"intents\":%d,\"properties\":{}}}",
              DC_TOKEN, DC_INTENTS);
    s_expect_close ("{\"op\":2,\"d\":{\"token\":\"wrong\",\"intents\":1}}", NULL, 4004);
    s_expect_close ("{\"op\":3,\"d\":{}}", NULL, 4003);
    s_expect_close ("not json", NULL, 4002);
    s_expect_close ("{\"op\":99}", NULL, 4001);
    s_expect_close (identify, identify, 4005);
    char big[5000];
    memset (big, ' ', sizeof (big) - 1);
    big[0] = '{';
    big[sizeof (big) - 2] = '}';
    big[sizeof (big) - 1] = 0;
    s_expect_close (big, NULL, 4002);
    cr_assert_eq (dc_fault (&s_dc, "{\"kind\":\"invalid_intents\"}"), 0);
    s_expect_close (identify, NULL, 4013);
    dc_ws_t *w = s_open ("/gateway?v=9&encoding=json", false);
    cr_assert_eq (dc_ws_wait_closed (w, 3000), 4012);
    dc_ws_close (&w, 1000);
    cJSON *calls = dc_calls (&s_dc);
    cr_assert_str_eq (s_str (calls, "last_query", NULL), "v=9&encoding=json");
    cJSON_Delete (calls);

    //  --require-intents: GUILD_MESSAGES alone is not enough.
    dc_stop (&s_dc, SIGTERM);
    dc_options_t opt = {.heartbeat_ms = 500, .require_intents = true};
    cr_assert_eq (dc_start (&s_dc, NULL, &opt), 0);
    s_expect_close ("{\"op\":2,\"d\":{\"token\":\"" DC_TOKEN "\",\"intents\":512}}", NULL,
                    4014);
}

Test (dcstandin, gateway_fault_knobs)
{
    char sid[64];
    dc_ws_t *w = s_ready (DC_INTENTS, sid);

    //  Zombie: the heartbeat goes unanswered, once.
    dc_fault (&s_dc, "{\"kind\":\"zombie\",\"count\":1}");
    dc_ws_send (w, "{\"op\":1,\"d\":1}");
    cJSON *frame = dc_ws_wait (w, 11, NULL, 700);
    cr_assert_null (frame, "ACKed a zombie's heartbeat");
    dc_ws_send (w, "{\"op\":1,\"d\":1}");
    frame = dc_ws_wait (w, 11, NULL, 3000);
    cr_assert_not_null (frame);
    cJSON_Delete (frame);
    cr_assert_eq (dc_call (&s_dc, "acks_skipped"), 1);
    cJSON *received = dc_received (&s_dc);
    cJSON *frames = cJSON_GetObjectItem (received, "frames");
    cr_assert_eq (cJSON_GetArraySize (frames), 3);  //  Identify, two beats
    cJSON *identify = cJSON_GetObjectItem (cJSON_GetArrayItem (frames, 0), "frame");
    cr_assert_str_eq (s_str (cJSON_GetObjectItem (identify, "d"), "token", NULL), "***");
    cJSON *beat = cJSON_GetObjectItem (cJSON_GetArrayItem (frames, 2), "frame");
    cr_assert_eq (s_num (beat, "op"), 1);
    cr_assert_eq (s_num (beat, "d"), 1);
    cJSON_Delete (received);

    cr_assert_eq (dc_fault (&s_dc, "{\"kind\":\"heartbeat_request\"}"), 1);
    frame = dc_ws_wait (w, 1, NULL, 3000);
    cr_assert_not_null (frame);
    cJSON_Delete (frame);
    cr_assert_eq (dc_fault (&s_dc, "{\"kind\":\"reconnect\"}"), 1);
    frame = dc_ws_wait (w, 7, NULL, 3000);
    cr_assert_not_null (frame);
    cJSON_Delete (frame);
    cr_assert_eq (dc_fault (&s_dc, "{\"kind\":\"invalid_session\",\"resumable\":true}"),
                  1);
    frame = dc_ws_wait (w, 9, NULL, 3000);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (frame, "d")));
    cJSON_Delete (frame);
    dc_ws_close (&w, 4000);

    //  Close 4000 keeps the session; the resume goes to /gateway this time.
    w = s_open ("/gateway?v=10&encoding=json", false);
    dc_ws_resume (w, DC_TOKEN, sid, 1);
    frame = dc_ws_wait (w, 0, "RESUMED", 3000);
    cr_assert_not_null (frame);
    cJSON_Delete (frame);
    cr_assert_eq (dc_call (&s_dc, "resume_on_gateway"), 1);
    cr_assert_eq (dc_fault (&s_dc, "{\"kind\":\"close\",\"code\":4000}"), 1);
    cr_assert_eq (dc_ws_wait_closed (w, 3000), 4000);
    dc_ws_close (&w, 1000);

    //  Late Hello.
    dc_fault (&s_dc, "{\"kind\":\"hello_delay\",\"ms\":600,\"count\":1}");
    long long start = harness_now_ms ();
    w = s_open ("/resume?v=10&encoding=json", false);
    cr_assert (harness_now_ms () - start >= 550);
    dc_ws_resume (w, DC_TOKEN, sid, 1);
    frame = dc_ws_wait (w, 0, "RESUMED", 3000);
    cr_assert_not_null (frame);
    cJSON_Delete (frame);

    //  4009 ends the session: the next resume gets op 9 false.
    cr_assert_eq (dc_fault (&s_dc, "{\"kind\":\"close\",\"code\":4009}"), 1);
    cr_assert_eq (dc_ws_wait_closed (w, 3000), 4009);
    dc_ws_close (&w, 1000);
    w = s_open ("/resume?v=10&encoding=json", false);
    dc_ws_resume (w, DC_TOKEN, sid, 1);
    frame = dc_ws_wait (w, 9, NULL, 3000);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (frame, "d")));
    cJSON_Delete (frame);
    dc_ws_close (&w, 1000);
}

//  ---- REST -------------------------------------------------------------------

Test (dcstandin, rest_shapes_and_sent_log)
{
    http_resp_t r;
    cr_assert_eq (s_rest ("GET", "/gateway/bot", NULL, "Bot " DC_TOKEN, &r), 200);
    cJSON *root = cJSON_Parse (r.body);
    char url[96];
    snprintf (url, sizeof (url), "ws://127.0.0.1:%d/gateway", s_dc.port);
    cr_assert_str_eq (s_str (root, "url", NULL), url);
    cr_assert_eq (s_num (root, "shards"), 1);
    cr_assert_eq (
        s_num (cJSON_GetObjectItem (root, "session_start_limit"), "max_concurrency"), 1);
    cJSON_Delete (root);
    cr_assert (http_header_long (r.headers, "X-RateLimit-Limit") > 0, "%s", r.headers);
    http_resp_free (&r);

    cr_assert_eq (s_rest ("GET", "/gateway/bot", NULL, "Bot wrong", &r), 401);
    cr_assert (strstr (r.body, "\"401: Unauthorized\""), "%s", r.body);
    http_resp_free (&r);

    //  2000 code points pass, 2001 do not (two bytes each).
    char *body = malloc (8100);
    strcpy (body, "{\"content\":\"");
    for (int i = 0; i < 2000; i++)
        strcat (body, "\xc3\xa9");
    strcat (body, "\",\"nonce\":\"n1\",\"enforce_nonce\":true,"
                  "\"message_reference\":{\"message_id\":\"42\"}}");
    cr_assert_eq (s_post ("55", body, &r), 200, "%s", r.body);
    root = cJSON_Parse (r.body);
    char first[32];
    snprintf (first, sizeof (first), "%s", s_str (root, "id", NULL));
    cr_assert_str_eq (s_str (root, "channel_id", NULL), "55");
    cr_assert_str_eq (s_str (root, "author", "id"), DC_BOT_ID);
    cr_assert_str_eq (s_str (root, "message_reference", "message_id"), "42");
    cr_assert_not_null (s_str (root, "timestamp", NULL));
    cJSON_Delete (root);
    cr_assert (http_header_long (r.headers, "X-RateLimit-Remaining") >= 0);
    cr_assert (strstr (r.headers, "X-RateLimit-Bucket:"), "%s", r.headers);
    cr_assert (strstr (r.headers, "X-RateLimit-Reset-After:"), "%s", r.headers);
    http_resp_free (&r);

    //  The same nonce again: the first message, not a new one.
    cr_assert_eq (s_post ("55", body, &r), 200);
    root = cJSON_Parse (r.body);
    cr_assert_str_eq (s_str (root, "id", NULL), first);
    cJSON_Delete (root);
    http_resp_free (&r);

    strcpy (body + strlen (body)
                - strlen ("\",\"nonce\":\"n1\",\"enforce_nonce\":true,"
                          "\"message_reference\":{\"message_id\":\"42\"}}"),
            "x\"}");
    cr_assert_eq (s_post ("55", body, &r), 400);
    root = cJSON_Parse (r.body);
    cr_assert_eq (s_num (root, "code"), 50035);
    cr_assert_str_eq (s_str (root, "message", NULL), "Invalid Form Body");
    cr_assert_not_null (
        cJSON_GetObjectItem (cJSON_GetObjectItem (root, "errors"), "content"));
    cJSON_Delete (root);
    http_resp_free (&r);
    free (body);

    cr_assert_eq (s_post ("55", "{\"content\":\"\"}", &r), 400);
    cr_assert (strstr (r.body, "50006"), "%s", r.body);
    http_resp_free (&r);
    cr_assert_eq (s_post ("67", "{\"embeds\":[{\"title\":\"card\"}]}", &r), 200);
    http_resp_free (&r);
    cr_assert_eq (s_rest ("POST", "/channels/55/typing", NULL, "Bot " DC_TOKEN, &r), 204);
    http_resp_free (&r);

    cr_assert_eq (s_post ("66", "{\"content\":\"second\"}", &r), 200);
    http_resp_free (&r);
    cJSON *sent = dc_sent (&s_dc, NULL);
    cJSON *messages = cJSON_GetObjectItem (sent, "messages");
    cr_assert_eq (cJSON_GetArraySize (messages), 3);
    cJSON *m = cJSON_GetArrayItem (messages, 0);
    cr_assert_str_eq (s_str (m, "channel_id", NULL), "55");
    cr_assert_str_eq (s_str (m, "message_reference", NULL), "42");
    cr_assert_str_eq (s_str (m, "nonce", NULL), "n1");
    cr_assert (s_num (m, "at_ms") > 0);
    cr_assert_not_null (cJSON_GetObjectItem (cJSON_GetArrayItem (messages, 1), "embeds"));
    cr_assert_str_eq (s_str (cJSON_GetArrayItem (messages, 2), "content", NULL),
                      "second");
    cJSON_Delete (sent);
    sent = dc_sent (&s_dc, "66");
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (sent, "messages")), 1);
    cJSON_Delete (sent);
    cr_assert_eq (dc_wait_sent (&s_dc, "66", 1, 100), 0);
    cr_assert_eq (dc_call (&s_dc, "typing"), 1);
}

Test (dcstandin, rest_faults_and_429s)
{
    http_resp_t r;
    cr_assert_eq (
        dc_fault (
            &s_dc,
            "{\"kind\":\"429\",\"route\":\"messages\",\"retry_after\":0.75,\"count\":1}"),
        1);
    cr_assert_eq (s_post ("55", "{\"content\":\"hi\"}", &r), 429);
    cJSON *root = cJSON_Parse (r.body);
    cr_assert_str_eq (s_str (root, "message", NULL), "You are being rate limited.");
    cr_assert_float_eq (s_num (root, "retry_after"), 0.75, 1e-9);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (root, "global")));
    cJSON_Delete (root);
    cr_assert_eq (http_header_long (r.headers, "Retry-After"), 1);
    cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Remaining"), 0);
    cr_assert (strstr (r.headers, "X-RateLimit-Scope: user"), "%s", r.headers);
    cr_assert_null (strstr (r.headers, "X-RateLimit-Global"));
    http_resp_free (&r);
    cr_assert_eq (s_post ("55", "{\"content\":\"hi\"}", &r), 200);
    http_resp_free (&r);

    dc_fault (&s_dc, "{\"kind\":\"429\",\"retry_after\":2.5,\"global\":true}");
    cr_assert_eq (s_post ("55", "{\"content\":\"hi\"}", &r), 429);
    cr_assert (strstr (r.body, "\"global\":true"), "%s", r.body);
    cr_assert_eq (http_header_long (r.headers, "Retry-After"), 3);
    cr_assert (strstr (r.headers, "X-RateLimit-Global: true"), "%s", r.headers);
    cr_assert (strstr (r.headers, "X-RateLimit-Scope: global"), "%s", r.headers);
    http_resp_free (&r);

    dc_fault (&s_dc, "{\"kind\":\"403\",\"channel_id\":\"99\"}");
    cr_assert_eq (s_post ("55", "{\"content\":\"hi\"}", &r), 200);
    http_resp_free (&r);
    cr_assert_eq (s_post ("99", "{\"content\":\"hi\"}", &r), 403);
    cr_assert (strstr (r.body, "50001"), "%s", r.body);
    http_resp_free (&r);
    dc_fault (&s_dc, "{\"kind\":\"404\"}");
    cr_assert_eq (s_post ("55", "{\"content\":\"hi\"}", &r), 404);
    cr_assert (strstr (r.body, "10003"), "%s", r.body);
    http_resp_free (&r);
    dc_fault (&s_dc, "{\"kind\":\"502\"}");
    cr_assert_eq (s_post ("55", "{\"content\":\"hi\"}", &r), 502);
    http_resp_free (&r);
    cr_assert_eq (dc_call (&s_dc, "rest_429"), 2);
    cr_assert_eq (dc_call (&s_dc, "messages"), 2);

    //  An enforced bucket: the third call in the window is refused.
    dc_stop (&s_dc, SIGTERM);
    dc_options_t opt = {.bucket_limit = 2, .bucket_window_ms = 5000};
    cr_assert_eq (dc_start (&s_dc, NULL, &opt), 0);
    cr_assert_eq (s_post ("55", "{\"content\":\"a\"}", &r), 200);
    cr_assert_eq (http_header_long (r.headers, "X-RateLimit-Remaining"), 1);
    http_resp_free (&r);
    cr_assert_eq (s_post ("55", "{\"content\":\"b\"}", &r), 200);
    http_resp_free (&r);
    cr_assert_eq (s_post ("56", "{\"content\":\"other channel\"}", &r), 200);
    http_resp_free (&r);
    cr_assert_eq (s_post ("55", "{\"content\":\"c\"}", &r), 429);
    root = cJSON_Parse (r.body);
    cr_assert (s_num (root, "retry_after") > 0);
    cJSON_Delete (root);
    http_resp_free (&r);
}

//  ---- State and TLS ----------------------------------------------------------

Test (dcstandin, state_survives_kill_9)
{
    char sid[64];
    dc_ws_t *w = s_ready (DC_INTENTS, sid);
    dc_message (&s_dc, "{\"channel_id\":\"55\",\"content\":\"before\"}", NULL);
    cJSON_Delete (s_expect_message (w, 2));
    http_resp_t r;
    cr_assert_eq (s_post ("55", "{\"content\":\"kept\"}", &r), 200);
    http_resp_free (&r);

    dc_stop (&s_dc, SIGKILL);
    dc_ws_wait_closed (w, 3000);
    dc_ws_close (&w, 1000);
    cr_assert_eq (dc_restart (&s_dc), 0);

    cJSON *sent = dc_sent (&s_dc, "55");
    cJSON *m = cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0);
    cr_assert_str_eq (s_str (m, "content", NULL), "kept");
    cJSON_Delete (sent);

    //  The session lives on: a message while it is down, then a resume.
    cr_assert_eq (
        dc_message (&s_dc, "{\"channel_id\":\"55\",\"content\":\"after\"}", NULL), 3);
    w = s_open ("/resume?v=10&encoding=json", false);
    dc_ws_resume (w, DC_TOKEN, sid, 2);
    cJSON *frame = s_expect_message (w, 3);
    cr_assert_str_eq (s_str (cJSON_GetObjectItem (frame, "d"), "content", NULL), "after");
    cJSON_Delete (frame);
    frame = dc_ws_wait (w, 0, "RESUMED", 3000);
    cr_assert_not_null (frame);
    cJSON_Delete (frame);
    dc_ws_close (&w, 1000);
}

static size_t
s_collect (char *ptr, size_t size, size_t nmemb, void *arg)
{
    strncat ((char *) arg, ptr, size * nmemb < 1000 ? size * nmemb : 1000);
    return size * nmemb;
}

Test (dcstandin, tls_https_and_wss)
{
    char ca[400];
    cr_assert_eq (dc_make_certs (s_dir, ca, sizeof (ca)), 0, "openssl failed");
    dc_stop (&s_dc, SIGTERM);
    dc_options_t opt = {.heartbeat_ms = 500, .tls_dir = s_dir};
    cr_assert_eq (dc_start (&s_dc, NULL, &opt), 0, "no TLS stand-in");
    cr_assert (s_dc.tls_port > 0);

    //  https, verified against the CA made above.
    char url[200], got[2048] = "";
    snprintf (url, sizeof (url), "%s/gateway/bot", s_dc.api_tls);
    CURL *c = curl_easy_init ();
    struct curl_slist *h = curl_slist_append (NULL, "Authorization: Bot " DC_TOKEN);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_CAINFO, ca);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_collect);
    curl_easy_setopt (c, CURLOPT_WRITEDATA, got);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform (c);
    long status = 0;
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
    cr_assert_eq (rc, CURLE_OK, "https: %s", curl_easy_strerror (rc));
    cr_assert_eq (status, 200);
    char wss[96];
    snprintf (wss, sizeof (wss), "\"url\":\"wss://127.0.0.1:%d/gateway\"", s_dc.tls_port);
    cr_assert (strstr (got, wss), "%s", got);

    //  wss: Hello, Identify, READY with a wss resume URL.
    dc_ws_t *w = s_open ("/gateway?v=10&encoding=json", true);
    dc_ws_identify (w, DC_TOKEN, DC_INTENTS);
    cJSON *ready = dc_ws_wait (w, 0, "READY", 3000);
    cr_assert_not_null (ready);
    char resume[96];
    snprintf (resume, sizeof (resume), "wss://127.0.0.1:%d/resume", s_dc.tls_port);
    cr_assert_str_eq (
        s_str (cJSON_GetObjectItem (ready, "d"), "resume_gateway_url", NULL), resume);
    cJSON_Delete (ready);
    dc_message (&s_dc, "{\"channel_id\":\"55\",\"content\":\"over tls\"}", NULL);
    cJSON_Delete (s_expect_message (w, 2));
    dc_ws_close (&w, 1000);
}
