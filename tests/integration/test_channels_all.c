/*  =========================================================================
    test_channels_all - every channel in one gateway.

    The five at once (five_listed_and_independent): Telegram, Discord,
    Slack, WhatsApp and the generic webhook configured together show in
    GET /v1/channels, /status and WebSocket channel.list with their live
    status, each answers, and disabling one leaves the others answering.

    Nothing lost, nothing twice on Discord, Slack and WhatsApp at once
    (kill_with_queued_inbound_on_all_three): the real `clawgate serve`
    with the three channels
    (against their stand-ins, and a slow model so that messages queue) is
    killed with SIGKILL while inbound messages of all three wait for their
    runs, more messages arrive on all three while it is down, and it is
    started again on the same state dir.  Every message must be answered
    exactly once:

    - Discord: the restarted gateway resumes its stored session, so the
      stand-in replays what came while it was down; every part carries a
      nonce, so a part sent again is not posted twice (strict).
    - Slack: what was stored was acknowledged; what was not is redelivered
      to the new socket.
    - WhatsApp: a push not answered 200 is retried until it is.

    For Slack and WhatsApp, which have no idempotency key, a reply whose
    send the stand-in logged within a second before the kill may be sent
    again (the one at-least-once window, docs/channels.md).
    =========================================================================
*/
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channels.h"
#include "discord.h"
#include "harness.h"
#include "runs.h"
#include "slack.h"
#include "telegram.h"
#include "whatsapp.h"

#define WAIT_MS 60000  //  Generous: the suite also runs under ASan
#define PER_CHAT 4     //  Messages per chat before the kill
#define CHATS 2        //  Chats per platform
#define LATE 2         //  Messages per chat while the gateway is down
#define MAX_MSGS 64
#define IN_FLIGHT_MS 1000
#define HOOK_TOKEN "a-hook-token-of-some-length"

typedef enum { P_DISCORD, P_SLACK, P_WHATSAPP, P_COUNT } platform_t;
static const char *const s_names[] = {"discord", "slack", "whatsapp"};

typedef struct {
    platform_t p;
    char chat[32];
    char text[64];  //  Unique: the slow model's reply quotes it
} msg_t;

static tg_standin_t s_tg;
static dc_standin_t s_dc;
static sl_standin_t s_sl;
static wa_standin_t s_wa;
static ch_gw_t s_gw;
static char s_dir[256];
static msg_t s_msgs[MAX_MSGS];
static int s_n;
static long long s_killed_at;

static long long
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
s_setup (void)
{
    harness_tmpdir (s_dir, sizeof (s_dir));
    char state[300];
    runs_standin_start ();
    dc_options_t dopt = {.heartbeat_ms = 500};
    snprintf (state, sizeof (state), "%s/dc.json", s_dir);
    cr_assert_eq (dc_start (&s_dc, state, &dopt), 0, "cg_dcstandin did not start");
    sl_options_t sopt = {.ack_ms = 500, .ping_ms = 1000};
    snprintf (state, sizeof (state), "%s/sl.json", s_dir);
    cr_assert_eq (sl_start (&s_sl, state, &sopt), 0, "cg_slackstandin did not start");
    const char *wargs[] = {"--retry-ms",
                           "100,200,300,300,300,300,300,300,300,300",
                           "--push-attempts",
                           "200",
                           "--push-timeout-ms",
                           "2000",
                           NULL};
    snprintf (state, sizeof (state), "%s/wa.json", s_dir);
    cr_assert_eq (wa_start (&s_wa, state, wargs), 0, "cg_wastandin did not start");
    snprintf (state, sizeof (state), "%s/tg.json", s_dir);
    cr_assert_eq (tg_start (&s_tg, state), 0, "cg_tgstandin did not start");
    s_n = 0;
}

static void
s_teardown (void)
{
    if (s_gw.proc.pid > 0)
        cr_expect_eq (ch_gw_stop (&s_gw, SIGTERM), 0, "clawgate serve did not exit 0");
    ch_gw_destroy (&s_gw);
    dc_stop (&s_dc, SIGTERM);
    sl_stop (&s_sl, SIGTERM);
    wa_stop (&s_wa, SIGTERM);
    tg_stop (&s_tg, SIGTERM);
    proc_stop (&runs_env.standin, SIGTERM, 5000);
    harness_rmtree (s_dir);
}

TestSuite (channels_all, .init = s_setup, .fini = s_teardown, .timeout = 240);

//  Starts the gateway with Discord, Slack and WhatsApp (and, with five,
//  Telegram and the generic webhook too), the slow model answering when
//  slow (else local/echo), and waits until each is connected.
static void
s_start_gateway (bool slow, bool five)
{
    char config[6144], more[1024] = "";
    if (five)
        snprintf (more, sizeof (more),
                  ",\"telegram\":{\"botToken\":\"%s\",\"baseUrl\":\"%s\","
                  "\"pollTimeoutS\":1,\"dmPolicy\":\"open\"},"
                  "\"webhook\":{\"hooks\":{\"ci\":{\"token\":\"" HOOK_TOKEN "\"}}}",
                  s_tg.token, s_tg.base);
    const char *common = "\"dmPolicy\":\"open\",\"sendAttempts\":1000,\"retryMinMs\":100,"
                         "\"retryMaxMs\":300,\"pollTimeoutS\":3";
    snprintf (config, sizeof (config),
              "{\"providers\":{\"openai\":{\"type\":\"openai\",\"baseUrl\":\"%s/v1\","
              "\"apiKey\":\"" OPENAI_KEY "\",\"models\":[\"slow\"]}},"
              "\"agents\":{\"default\":{\"model\":\"%s\"}},"
              "\"channels\":{"
              "\"discord\":{\"botToken\":\"%s\",\"baseUrl\":\"%s\",%s},"
              "\"slack\":{\"botToken\":\"" SL_BOT_TOKEN "\",\"appToken\":\"" SL_APP_TOKEN
              "\",\"baseUrl\":\"%s\",%s},"
              "\"whatsapp\":{\"accessToken\":\"" WA_ACCESS_TOKEN
              "\",\"phoneNumberId\":\"" WA_PHONE_NUMBER_ID
              "\",\"appSecret\":\"" WA_APP_SECRET "\",\"verifyToken\":\"" WA_VERIFY_TOKEN
              "\",\"baseUrl\":\"%s\",%s}%s}}",
              runs_env.sbase, slow ? "openai/slow" : "local/echo", s_dc.token, s_dc.api,
              common, s_sl.api, common, s_wa.graph, common, more);
    cr_assert_eq (ch_gw_start (&s_gw, config), 0, "clawgate serve did not start");
    for (int p = 0; p < P_COUNT; p++)
        cr_assert_eq (ch_wait_status (&s_gw, s_names[p], "connected", WAIT_MS), 0,
                      "%s never connected", s_names[p]);
    if (five)
        cr_assert_eq (ch_wait_status (&s_gw, "telegram", "connected", WAIT_MS), 0,
                      "telegram never connected");
}

//  The gateway's webhook URL for WhatsApp's pushes.
static void
s_wa_target (char *buf, size_t cap)
{
    snprintf (buf, cap, "%s/v1/channels/whatsapp/webhook", s_gw.base);
}

//  One message on platform p, chat c; the stand-in takes it (WhatsApp:
//  its push goes on being retried until the gateway answers 200).
static void
s_inject (platform_t p, int c, const char *tag)
{
    cr_assert_lt (s_n, MAX_MSGS);
    msg_t *m = &s_msgs[s_n];
    m->p = p;
    snprintf (m->text, sizeof (m->text), "%s-%s-%d", tag, s_names[p], s_n);
    char json[512];
    if (p == P_DISCORD) {
        snprintf (m->chat, sizeof (m->chat), "%d", 77000 + c);
        snprintf (json, sizeof (json),
                  "{\"channel_id\":\"%s\",\"author_id\":\"%d\",\"content\":\"%s\"}",
                  m->chat, 88000 + c, m->text);
        cr_assert_geq (dc_message (&s_dc, json, NULL), 0, "discord took no message");
    }
    else if (p == P_SLACK) {
        snprintf (m->chat, sizeof (m->chat), "D%d", 100 + c);
        snprintf (json, sizeof (json),
                  "{\"kind\":\"dm\",\"channel\":\"%s\",\"user\":\"U%d\",\"text\":\"%s\"}",
                  m->chat, 100 + c, m->text);
        cJSON *r = sl_event (&s_sl, json, NULL, 0);
        cr_assert_not_null (r, "slack took no event");
        cJSON_Delete (r);
    }
    else {
        snprintf (m->chat, sizeof (m->chat), "1555000%03d", c);
        char target[160];
        s_wa_target (target, sizeof (target));
        snprintf (json, sizeof (json),
                  "{\"target\":\"%s\",\"from\":\"%s\",\"text\":\"%s\",\"wait\":false}",
                  target, m->chat, m->text);
        cr_assert_geq (wa_inbound (&s_wa, json, NULL, 0, NULL), 0,
                       "whatsapp took no push");
    }
    s_n++;
}

static void
s_inject_all (int per_chat, const char *tag)
{
    for (int k = 0; k < per_chat; k++)
        for (int c = 0; c < CHATS; c++)
            for (int p = 0; p < P_COUNT; p++)
                s_inject ((platform_t) p, c, tag);
}

//  The replies the stand-ins logged, as {text, at_ms} per platform.
static cJSON *
s_sent (platform_t p)
{
    cJSON *root = p == P_DISCORD ? dc_sent (&s_dc, NULL)
                  : p == P_SLACK ? sl_sent (&s_sl, NULL, NULL)
                                 : wa_sent (&s_wa, NULL);
    cr_assert_not_null (root, "no sent log from %s", s_names[p]);
    return root;
}

static const char *
s_text_of (platform_t p, const cJSON *e)
{
    const char *field = p == P_DISCORD ? "content" : p == P_SLACK ? "text" : "body";
    const char *t = cJSON_GetStringValue (cJSON_GetObjectItem (e, field));
    if (!t && p == P_WHATSAPP)
        t = cJSON_GetStringValue (
            cJSON_GetObjectItem (cJSON_GetObjectItem (e, "text"), "body"));
    return t ? t : "";
}

//  Replies per message (counts[i]); first[i] the first reply's at_ms.
//  Returns how many messages have one.
static int
s_tally (int *counts, long long *first)
{
    memset (counts, 0, sizeof (int) * (size_t) s_n);
    for (int p = 0; p < P_COUNT; p++) {
        cJSON *root = s_sent ((platform_t) p);
        cJSON *e;
        cJSON_ArrayForEach (e, cJSON_GetObjectItem (root, "messages"))
        {
            const char *t = s_text_of ((platform_t) p, e);
            long long at =
                (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (e, "at_ms"));
            for (int i = 0; i < s_n; i++) {
                //  "...: <text>" ends the reply; texts are unique, and none
                //  is the start of another of the same platform and length.
                size_t tl = strlen (t), ml = strlen (s_msgs[i].text);
                if (s_msgs[i].p != (platform_t) p || tl < ml
                    || strcmp (t + tl - ml, s_msgs[i].text))
                    continue;
                if (counts[i]++ == 0)
                    first[i] = at;
            }
        }
        cJSON_Delete (root);
    }
    int answered = 0;
    for (int i = 0; i < s_n; i++)
        answered += counts[i] > 0;
    return answered;
}

Test (channels_all, kill_with_queued_inbound_on_all_three)
{
    s_start_gateway (true, false);
    s_inject_all (PER_CHAT, "early");
    //  Killed once the gateway has stored every one (its status counts
    //  them), while most still wait for their runs.
    long long deadline = harness_now_ms () + WAIT_MS;
    long stored = 0;
    while (harness_now_ms () < deadline) {
        stored = 0;
        for (int p = 0; p < P_COUNT; p++)
            stored += (long) ch_status_num (&s_gw, s_names[p], "inbound");
        if (stored >= s_n)
            break;
        usleep (20000);
    }
    cr_assert_eq (stored, s_n, "stored %ld of %d before the kill", stored, s_n);
    int counts[MAX_MSGS];
    long long first[MAX_MSGS];
    int before = s_tally (counts, first);
    cr_assert_lt (before, s_n, "everything was answered before the kill: nothing queued");
    s_killed_at = s_wall_ms ();
    cr_assert_eq (ch_gw_stop (&s_gw, SIGKILL), 128 + SIGKILL);

    //  More on all three while it is down.
    s_inject_all (LATE, "late");
    cr_assert_eq (ch_gw_restart (&s_gw), 0, "clawgate serve did not start again");

    deadline = harness_now_ms () + WAIT_MS;
    int answered = 0;
    while ((answered = s_tally (counts, first)) < s_n && harness_now_ms () < deadline)
        usleep (200000);
    usleep (2500 * 1000);  //  Late duplicates
    answered = s_tally (counts, first);
    for (int i = 0; i < s_n; i++) {
        bool in_flight = s_msgs[i].p != P_DISCORD
                         && first[i] >= s_killed_at - IN_FLIGHT_MS
                         && first[i] <= s_killed_at + 200;
        cr_expect (counts[i] == 1 || (counts[i] == 2 && in_flight),
                   "%s message '%s' got %d replies (first %+lld ms from the kill)",
                   s_names[s_msgs[i].p], s_msgs[i].text, counts[i],
                   counts[i] ? first[i] - s_killed_at : 0);
    }
    cr_assert_eq (answered, s_n, "%d of %d messages answered (%d before the kill)",
                  answered, s_n, before);
    //  Discord resumed the session it had: no second Identify.
    cr_assert_eq (dc_call (&s_dc, "identify"), 1,
                  "Discord identified anew after the restart");
    cr_assert_geq (dc_call (&s_dc, "resume"), 1, "Discord did not resume");
}

//  ---- The five at once --------------------------------------------------------------

static const char *const s_five[] = {"whatsapp", "telegram", "discord", "slack",
                                     "webhook"};

//  Every channel's status from GET /v1/channels, /status and channel.list
//  is want, except except (may be NULL), which is except_want.
static void
s_assert_statuses (const char *except, const char *except_want)
{
    cJSON *list = NULL;
    cr_assert_eq (ch_http (&s_gw, "GET", "/v1/channels", NULL, true, NULL, &list), 200);
    cJSON *ws = ch_ws_call (&s_gw, "channel.list", NULL, WAIT_MS);
    cr_assert_not_null (ws, "no channel.list answer");
    cJSON *status = NULL;
    cr_assert_eq (ch_http (&s_gw, "GET", "/status", NULL, true, NULL, &status), 200);
    cJSON *map = cJSON_GetObjectItem (status, "channels");
    for (int i = 0; i < 5; i++) {
        const char *want =
            except && !strcmp (s_five[i], except) ? except_want : "connected";
        const cJSON *lists[] = {
            cJSON_GetObjectItem (list, "channels"),
            cJSON_GetObjectItem (cJSON_GetObjectItem (ws, "result"), "channels")};
        for (int l = 0; l < 2; l++) {
            const char *got = NULL;
            const cJSON *c;
            cJSON_ArrayForEach (c, lists[l])
            {
                const char *id = cJSON_GetStringValue (cJSON_GetObjectItem (c, "id"));
                if (id && !strcmp (id, s_five[i]))
                    got = cJSON_GetStringValue (cJSON_GetObjectItem (c, "status"));
            }
            cr_assert (got && !strcmp (got, want), "%s: %s is %s, not %s",
                       l ? "channel.list" : "GET /v1/channels", s_five[i],
                       got ? got : "missing", want);
        }
        const cJSON *s = cJSON_GetObjectItem (map, s_five[i]);
        const char *got = cJSON_IsString (s)
                              ? s->valuestring
                              : cJSON_GetStringValue (cJSON_GetObjectItem (s, "status"));
        cr_assert (got && !strcmp (got, want), "/status: %s is %s, not %s", s_five[i],
                   got ? got : "missing", want);
    }
    cJSON_Delete (list);
    cJSON_Delete (ws);
    cJSON_Delete (status);
}

//  One message on every channel but skip (may be NULL), each answered.
static void
s_each_answers (const char *tag, const char *skip)
{
    int before = s_n;
    for (int p = 0; p < P_COUNT; p++)
        if (!skip || strcmp (skip, s_names[p]))
            s_inject ((platform_t) p, 0, tag);
    char text[64];
    snprintf (text, sizeof (text), "%s-telegram", tag);
    long mid = ch_tg_dm (&s_tg, 6001, text);
    cr_assert_gt (mid, 0);
    char *got = ch_tg_wait_reply (&s_tg, "6001", mid, WAIT_MS);
    cr_assert (got && !strcmp (got, text), "telegram answered '%s'",
               got ? got : "nothing");
    free (got);
    const char *hdr[] = {"Authorization: Bearer " HOOK_TOKEN, NULL};
    char body[128];
    snprintf (body, sizeof (body), "{\"message\":\"%s-webhook\"}", tag);
    cJSON *r = NULL;
    cr_assert_eq (ch_http (&s_gw, "POST", "/v1/hooks/ci", body, false, hdr, &r), 200);
    const char *resp = cJSON_GetStringValue (cJSON_GetObjectItem (r, "response"));
    cr_assert (resp && strstr (resp, "-webhook"), "webhook answered '%s'",
               resp ? resp : "nothing");
    cJSON_Delete (r);
    int counts[MAX_MSGS];
    long long first[MAX_MSGS];
    long long deadline = harness_now_ms () + WAIT_MS;
    bool all = false;
    while (!all && harness_now_ms () < deadline) {
        s_tally (counts, first);
        all = true;
        for (int i = before; i < s_n; i++)
            all = all && counts[i] == 1;
        if (!all)
            usleep (100000);
    }
    for (int i = before; i < s_n; i++)
        cr_assert_eq (counts[i], 1, "%s: '%s' got %d replies", s_names[s_msgs[i].p],
                      s_msgs[i].text, counts[i]);
}

Test (channels_all, five_listed_and_independent)
{
    s_start_gateway (false, true);
    cr_assert_eq (ch_wait_status (&s_gw, "webhook", "connected", WAIT_MS), 0);
    s_assert_statuses (NULL, NULL);
    s_each_answers ("five", NULL);

    //  Discord off: listed as disabled everywhere, its gateway connection
    //  closed; the other four go on answering.
    cr_assert_eq (
        ch_http (&s_gw, "POST", "/v1/channels/discord/disable", "{}", true, NULL, NULL),
        200);
    long long deadline = harness_now_ms () + WAIT_MS;
    while (dc_call (&s_dc, "connections") != 0 && harness_now_ms () < deadline)
        usleep (50000);
    cr_assert_eq (dc_call (&s_dc, "connections"), 0, "Discord's connection stayed open");
    s_assert_statuses ("discord", "disabled");
    s_each_answers ("without-discord", "discord");

    //  A Discord message while it is off waits for its session; back on,
    //  the session resumes and the message is answered, once.
    int held = s_n;
    s_inject (P_DISCORD, 1, "while-off");
    usleep (1000 * 1000);
    int counts[MAX_MSGS];
    long long first[MAX_MSGS];
    s_tally (counts, first);
    cr_assert_eq (counts[held], 0, "a disabled Discord answered");
    cr_assert_eq (
        ch_http (&s_gw, "POST", "/v1/channels/discord/enable", "{}", true, NULL, NULL),
        200);
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "connected", WAIT_MS), 0);
    deadline = harness_now_ms () + WAIT_MS;
    while (s_tally (counts, first) < s_n && harness_now_ms () < deadline)
        usleep (100000);
    usleep (1500 * 1000);
    s_tally (counts, first);
    cr_assert_eq (counts[held], 1,
                  "the message sent while Discord was off got %d replies", counts[held]);
    cr_assert_eq (dc_call (&s_dc, "identify"), 1, "Discord identified anew");
    s_assert_statuses (NULL, NULL);
}
