/*  =========================================================================
    test_channels_slack - the Slack channel of the real `clawgate serve`
    against cg_slackstandin: Socket Mode DMs and channel mentions (one
    reply, threaded, the mention taken out), split replies, pairing,
    allowlist and disabled policies, bot messages and edits skipped but
    acknowledged, unacknowledged envelopes redelivered and answered once,
    the disconnect warning and refresh_requested (the next socket first),
    too_many_websockets (backoff, then back), a deaf socket replaced,
    chat.postMessage's 429, permanent errors and a bad token, the Events
    API over HTTP (url_verification, signatures, stale timestamps,
    retries), and disable/enable over the API.  The model is the built-in
    local/echo, so a reply's text is the message's.
    =========================================================================
*/
#include <civetweb.h>
#include <criterion/criterion.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "channels.h"
#include "harness.h"
#include "slack.h"

#define WAIT_MS 15000  //  Generous: the suite also runs under ASan
#define QUIET_MS 1500  //  How long "nothing more is sent" is watched

static sl_standin_t s_sl;
static ch_gw_t s_gw;

static void
s_teardown (void)
{
    //  A clean stop exits 0; under ASan a leak or a bad free makes it not.
    if (s_gw.proc.pid > 0)
        cr_expect_eq (ch_gw_stop (&s_gw, SIGTERM), 0, "clawgate serve did not exit 0");
    ch_gw_destroy (&s_gw);
    //  The stand-in is not under test: SIGKILL, as its clean stop takes
    //  over a second.
    sl_stop (&s_sl, SIGKILL);
}

TestSuite (channels_slack, .fini = s_teardown, .timeout = 90);

//  Starts the stand-in with short timings; opts overrides them (may be
//  NULL).
static void
s_standin (const sl_options_t *opts)
{
    sl_options_t o = {.ack_ms = 1000,
                      .ping_ms = 500,
                      .http_timeout_ms = 1000,
                      .retry_delays = "0,200,400"};
    if (opts) {
        if (opts->ack_ms)
            o.ack_ms = opts->ack_ms;
        o.max_sockets = opts->max_sockets;
        o.grace_ms = opts->grace_ms;
    }
    cr_assert_eq (sl_start (&s_sl, NULL, &o), 0, "cg_slackstandin did not start");
}

//  The gateway's configuration: the slack channel pointed at the stand-in,
//  with extra keys (may be NULL).
static void
s_config (char *buf, size_t cap, const char *extra)
{
    snprintf (buf, cap,
              "{\"channels\":{\"slack\":{\"botToken\":\"%s\",\"appToken\":\"%s\","
              "\"baseUrl\":\"%s\",\"pollTimeoutS\":2,\"retryMinMs\":100,"
              "\"retryMaxMs\":1000%s%s}}}",
              SL_BOT_TOKEN, SL_APP_TOKEN, s_sl.api, extra ? "," : "", extra ? extra : "");
}

//  Starts the gateway (the stand-in runs) and waits until the channel is
//  connected on one socket.
static void
s_start (const char *extra)
{
    char config[4096];
    s_config (config, sizeof (config), extra);
    cr_assert_eq (ch_gw_start (&s_gw, config), 0, "clawgate serve did not start");
    cr_assert_eq (ch_wait_status (&s_gw, "slack", "connected", WAIT_MS), 0,
                  "slack never connected");
    cr_assert_eq (sl_wait_sockets (&s_sl, 1, WAIT_MS), 0, "no socket open");
}

//  POST /control/event with body (taken); its ts into ts (32 bytes, may be
//  NULL), its (first) event_id into event_id (32 bytes, may be NULL).
static void
s_event (cJSON *body, char *ts, char *event_id)
{
    char *json = cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    cJSON *root = sl_event (&s_sl, json, NULL, 0);
    cr_assert_not_null (root, "/control/event refused %s", json);
    free (json);
    if (ts)
        snprintf (ts, 32, "%s", ch_str (root, "ts") ? ch_str (root, "ts") : "");
    if (event_id)
        snprintf (event_id, 32, "%s",
                  ch_str (root, "event_id") ? ch_str (root, "event_id") : "");
    cJSON_Delete (root);
}

//  An event of kind in channel from user with text (thread_ts may be NULL).
static void
s_msg (const char *kind, const char *channel, const char *user, const char *text,
       const char *thread_ts, char *ts)
{
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddStringToObject (body, "kind", kind);
    cJSON_AddStringToObject (body, "channel", channel);
    cJSON_AddStringToObject (body, "user", user);
    cJSON_AddStringToObject (body, "text", text);
    if (thread_ts)
        cJSON_AddStringToObject (body, "thread_ts", thread_ts);
    s_event (body, ts, NULL);
}

//  How many messages were posted to channel (NULL: any).
static int
s_count (const char *channel)
{
    cJSON *root = sl_sent (&s_sl, channel, NULL);
    cr_assert_not_null (root, "no /control/sent");
    int n = cJSON_GetArraySize (cJSON_GetObjectItem (root, "messages"));
    cJSON_Delete (root);
    return n;
}

//  Waits for a message posted to channel with text; returns a copy of it
//  (caller owns it).
static cJSON *
s_wait_text (const char *channel, const char *text)
{
    long long deadline = harness_now_ms () + WAIT_MS;
    while (true) {
        cJSON *root = sl_sent (&s_sl, channel, NULL);
        cJSON *m, *found = NULL;
        cJSON_ArrayForEach (m, cJSON_GetObjectItem (root, "messages"))
        {
            const char *t = ch_str (m, "text");
            if (t && !strcmp (t, text)) {
                found = cJSON_Duplicate (m, true);
                break;
            }
        }
        cJSON_Delete (root);
        if (found)
            return found;
        cr_assert (harness_now_ms () < deadline, "no '%s' posted to %s", text, channel);
        usleep (50000);
    }
}

//  Waits for the echo of text in channel, in thread thread_ts (NULL: not
//  in a thread).
static void
s_expect_echo (const char *channel, const char *thread_ts, const char *text)
{
    cJSON *m = s_wait_text (channel, text);
    const char *t = ch_str (m, "thread_ts");
    if (thread_ts)
        cr_assert (t && !strcmp (t, thread_ts), "'%s' in thread %s, not %s", text,
                   t ? t : "(none)", thread_ts);
    else
        cr_assert_null (t, "'%s' in thread %s, not in the channel", text, t);
    cJSON_Delete (m);
}

//  Asserts that, over QUIET_MS, channel (NULL: any) holds have messages.
static void
s_assert_quiet (const char *channel, int have)
{
    usleep (QUIET_MS * 1000);
    int now = s_count (channel);
    cr_assert_eq (now, have, "expected %d messages in %s, got %d", have,
                  channel ? channel : "any channel", now);
}

//  A string field of the channel's status ("" if absent); into buf.
static const char *
s_status_str (const char *field, char *buf, size_t cap)
{
    cJSON *st = ch_status (&s_gw, "slack");
    const char *v = ch_str (st, field);
    snprintf (buf, cap, "%s", v ? v : "");
    cJSON_Delete (st);
    return buf;
}

//  Waits until the channel's lastError holds needle.
static void
s_wait_last_error (const char *needle)
{
    long long deadline = harness_now_ms () + WAIT_MS;
    char err[512];
    while (!strstr (s_status_str ("lastError", err, sizeof (err)), needle)) {
        cr_assert (harness_now_ms () < deadline, "lastError '%s' never named %s", err,
                   needle);
        usleep (50000);
    }
}

//  True if the gateway's log holds needle.
static bool
s_gw_logged (const char *needle)
{
    FILE *f = fopen (s_gw.proc.err_path, "r");
    if (!f)
        return false;
    char line[2048];
    bool found = false;
    while (!found && fgets (line, sizeof (line), f))
        found = strstr (line, needle) != NULL;
    fclose (f);
    return found;
}

//  ---- Socket Mode: DMs and channels ------------------------------------------------

Test (channels_slack, socket_dm_answered_in_channel)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"open\"");
    cJSON *st = ch_status (&s_gw, "slack");
    cr_assert_str_eq (ch_str (st, "status"), "connected");
    cr_assert_str_eq (ch_str (st, "mode"), "socket");
    cJSON *bot = cJSON_GetObjectItem (st, "bot");
    cr_assert_str_eq (ch_str (bot, "id") ? ch_str (bot, "id") : "", SL_BOT_USER);
    cr_assert_str_eq (ch_str (bot, "botId") ? ch_str (bot, "botId") : "", SL_BOT_ID);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (st, "sockets")), 1);
    cJSON_Delete (st);
    cr_assert_eq (sl_count (&s_sl, "auth.test"), 1);
    cr_assert_eq (sl_count (&s_sl, "connections_open"), 1);

    char ts[32];
    s_msg ("dm", "D0101", "U0101", "hello slack", NULL, ts);
    s_expect_echo ("D0101", NULL, "hello slack");
    //  A DM in a thread is answered in that thread.
    s_msg ("dm", "D0101", "U0101", "in a thread", ts, NULL);
    s_expect_echo ("D0101", ts, "in a thread");
    s_assert_quiet ("D0101", 2);
    cr_assert_eq (sl_count (&s_sl, "acks"), 2);
    cr_assert_eq (sl_count (&s_sl, "redeliveries"), 0);
    cr_assert_eq (ch_status_num (&s_gw, "slack", "inbound"), 2);
    cr_assert_eq (ch_status_num (&s_gw, "slack", "outbound"), 2);
    //  Socket Mode takes no pushes.
    cr_assert_eq (
        ch_http (&s_gw, "POST", "/v1/channels/slack/webhook", "{}", false, NULL, NULL),
        404);
    //  Tokens and socket tickets stay out of the log.
    cr_assert (s_gw_logged ("slack: bot UBOT"), "no start line in the gateway's log");
    cr_assert (!s_gw_logged (SL_BOT_TOKEN) && !s_gw_logged (SL_APP_TOKEN),
               "a token in the log");
    cr_assert (!s_gw_logged ("ticket="), "a socket URL in the log");
}

Test (channels_slack, channel_mention_once_in_thread)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"open\",\"groups\":[\"C0201\"]");
    //  app_mention and message for the same ts: one reply, in its thread,
    //  without the mention.
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddStringToObject (body, "kind", "mention");
    cJSON_AddStringToObject (body, "channel", "C0201");
    cJSON_AddStringToObject (body, "user", "U0201");
    cJSON_AddStringToObject (body, "text", "what is up");
    cJSON_AddBoolToObject (body, "both", true);
    char ts[32];
    s_event (body, ts, NULL);
    s_expect_echo ("C0201", ts, "what is up");
    //  A message event that mentions the bot counts as a mention.
    char ts2[32];
    s_msg ("message", "C0201", "U0202", "<@UBOT> and you", NULL, ts2);
    s_expect_echo ("C0201", ts2, "and you");
    //  A mention inside a thread: the reply goes in that thread.
    char ts3[32];
    s_msg ("mention", "C0201", "U0203", "in the thread", ts, ts3);
    s_expect_echo ("C0201", ts, "in the thread");
    //  No mention: nothing.  A channel not in groups: nothing.
    s_msg ("message", "C0201", "U0201", "just chatting", NULL, NULL);
    s_msg ("mention", "C0299", "U0201", "other channel", NULL, NULL);
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 6, WAIT_MS), 0);
    s_assert_quiet (NULL, 3);
    cr_assert_eq (s_count ("C0299"), 0);
    cr_assert_eq (ch_status_num (&s_gw, "slack", "inbound"), 3);
}

Test (channels_slack, long_reply_split_in_thread)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"open\",\"groups\":[\"C0301\"],\"textChunkLimit\":4000");
    //  9,000 characters of words of varying length.
    enum { LEN = 9000 };
    char *text = malloc (LEN + 1);
    size_t len = 0;
    for (int i = 0; len < LEN; i++) {
        char word[32];
        int n = snprintf (word, sizeof (word), "w%d%s", i, i % 7 ? " " : "abcdefg ");
        for (int k = 0; k < n && len < LEN; k++)
            text[len++] = word[k];
    }
    text[LEN - 1] = 'z';
    text[LEN] = 0;
    char ts[32];
    s_msg ("mention", "C0301", "U0301", text, NULL, ts);
    cr_assert_eq (sl_wait_sent (&s_sl, "C0301", NULL, 3, WAIT_MS), 0,
                  "fewer than 3 parts");
    usleep (1000 * 1000);
    cJSON *sent = sl_sent (&s_sl, "C0301", NULL);
    cJSON *msgs = cJSON_GetObjectItem (sent, "messages");
    int parts = cJSON_GetArraySize (msgs);
    cr_assert_eq (parts, 3, "parts: %d", parts);
    //  In order, in the thread, each under the limit; concatenated without
    //  whitespace, the text without it.
    char *joined = calloc (1, 2 * LEN), *want = calloc (1, 2 * LEN);
    size_t jl = 0, wl = 0, total = 0;
    for (size_t i = 0; i < len; i++)
        if (!isspace ((unsigned char) text[i]))
            want[wl++] = text[i];
    double last_seq = -1;
    for (int i = 0; i < parts; i++) {
        cJSON *p = cJSON_GetArrayItem (msgs, i);
        const char *t = ch_str (p, "text");
        cr_assert (strlen (t) <= 4000, "part %d has %zu chars", i, strlen (t));
        total += strlen (t);
        double seq = cJSON_GetNumberValue (cJSON_GetObjectItem (p, "seq"));
        cr_assert_gt (seq, last_seq);
        last_seq = seq;
        cr_assert_str_eq (ch_str (p, "thread_ts") ? ch_str (p, "thread_ts") : "", ts,
                          "part %d is not in the thread", i);
        for (const char *c = t; *c; c++)
            if (!isspace ((unsigned char) *c))
                joined[jl++] = *c;
    }
    cr_assert (total >= LEN - 10 && total <= LEN, "the parts hold %zu chars", total);
    cr_assert_eq (jl, wl, "joined %zu chars, want %zu", jl, wl);
    cr_assert (memcmp (joined, want, wl) == 0, "the parts are not the text in order");
    free (joined);
    free (want);
    free (text);
    cJSON_Delete (sent);
}

//  ---- Access -------------------------------------------------------------------------

Test (channels_slack, pairing_code_approve_then_answered)
{
    s_standin (NULL);
    s_start (NULL);  //  dmPolicy defaults to pairing
    s_msg ("dm", "D0401", "U0401", "let me in", NULL, NULL);
    cr_assert_eq (sl_wait_sent (&s_sl, "D0401", NULL, 1, WAIT_MS), 0,
                  "no pairing notice");
    cJSON *sent = sl_sent (&s_sl, "D0401", NULL);
    cJSON *notice = cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0);
    const char *text = ch_str (notice, "text");
    char code[9];
    cr_assert (ch_code_in (text, code), "no valid code in '%s'", text);
    cr_assert (strstr (text, "U0401") && strstr (text, "Slack"), "notice: %s", text);
    cr_assert (!strstr (text, "let me in"), "the message was run");
    cJSON_Delete (sent);

    //  The same sender again: no second code, no run (the chat holds one
    //  notice and one reply at the end).
    s_msg ("dm", "D0401", "U0401", "again", NULL, NULL);
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 2, WAIT_MS), 0);

    char path[128];
    snprintf (path, sizeof (path), "/v1/channels/slack/pairing/%s", code);
    cr_assert_eq (ch_http (&s_gw, "POST", path, NULL, false, NULL, NULL), 401);
    cJSON *ok = NULL;
    cr_assert_eq (ch_http (&s_gw, "POST", path, NULL, true, NULL, &ok), 200);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (ok, "approved")));
    cr_assert_str_eq (ch_str (ok, "senderId") ? ch_str (ok, "senderId") : "", "U0401");
    cJSON_Delete (ok);

    s_msg ("dm", "D0401", "U0401", "now you know me", NULL, NULL);
    s_expect_echo ("D0401", NULL, "now you know me");
    s_assert_quiet ("D0401", 2);
}

Test (channels_slack, allowlist)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"allowlist\",\"allowFrom\":[\"U0501\",\"slack:U0502\"]");
    s_msg ("dm", "D0503", "U0503", "not listed", NULL, NULL);
    s_msg ("dm", "D0501", "U0501", "listed plainly", NULL, NULL);
    s_msg ("dm", "D0502", "U0502", "listed with a prefix", NULL, NULL);
    s_expect_echo ("D0501", NULL, "listed plainly");
    s_expect_echo ("D0502", NULL, "listed with a prefix");
    s_assert_quiet ("D0503", 0);  //  No reply, no pairing code
    cr_assert_eq (sl_count (&s_sl, "acks"), 3);
}

Test (channels_slack, disabled_answers_nobody)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"disabled\",\"allowFrom\":[\"U0601\"],"
             "\"groupPolicy\":\"disabled\",\"groups\":[\"C0601\"]");
    s_msg ("dm", "D0601", "U0601", "even me", NULL, NULL);
    s_msg ("dm", "D0602", "U0602", "anyone there", NULL, NULL);
    s_msg ("mention", "C0601", "U0601", "in the channel", NULL, NULL);
    //  Acknowledged (no redelivery), and not answered.
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 3, WAIT_MS), 0);
    s_assert_quiet (NULL, 0);
    cr_assert_eq (sl_count (&s_sl, "redeliveries"), 0);
    cr_assert_eq (ch_status_num (&s_gw, "slack", "inbound"), 0);
}

//  ---- Skipped events, redeliveries ---------------------------------------------------

Test (channels_slack, bots_own_and_edits_skipped_but_acked)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"open\",\"groups\":[\"C0701\"],\"requireMention\":false");
    //  Another bot (subtype bot_message), in the DM and in the channel.
    s_event (cJSON_Parse ("{\"kind\":\"bot\",\"channel\":\"D0701\",\"channel_type\":"
                          "\"im\",\"text\":\"a bot speaks\"}"),
             NULL, NULL);
    s_event (cJSON_Parse ("{\"kind\":\"bot\",\"channel\":\"C0701\",\"user\":\"U0799\","
                          "\"text\":\"a bot in the channel\"}"),
             NULL, NULL);
    //  A message with a bot_id and no subtype.
    s_event (cJSON_Parse ("{\"kind\":\"raw\",\"event\":{\"type\":\"message\","
                          "\"channel\":\"D0701\",\"user\":\"U0798\",\"bot_id\":\"B0X\","
                          "\"text\":\"an app's user\",\"ts\":\"1700000000.000100\","
                          "\"channel_type\":\"im\"}}"),
             NULL, NULL);
    //  The bot's own message.
    s_msg ("dm", "D0701", SL_BOT_USER, "my own words", NULL, NULL);
    s_msg ("message", "C0701", SL_BOT_USER, "my own words in the channel", NULL, NULL);
    //  A user's message, then its edit.
    s_msg ("dm", "D0701", "U0701", "before the edit", NULL, NULL);
    s_event (cJSON_Parse ("{\"kind\":\"edit\",\"channel\":\"D0701\",\"user\":\"U0701\","
                          "\"channel_type\":\"im\",\"text\":\"after the edit\"}"),
             NULL, NULL);
    s_expect_echo ("D0701", NULL, "before the edit");
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 7, WAIT_MS), 0, "acks: %ld",
                  sl_count (&s_sl, "acks"));
    s_assert_quiet (NULL, 1);
    cr_assert_eq (sl_count (&s_sl, "redeliveries"), 0);
    cr_assert_eq (sl_count (&s_sl, "pending"), 0);
    cr_assert_eq (ch_status_num (&s_gw, "slack", "inbound"), 1);
}

//  The gateway never sees the first delivery (the socket is deaf, then
//  dropped): the stand-in sends the envelope again on the next socket,
//  and it is answered once.  A resend of an answered event is acked and
//  not answered again.
Test (channels_slack, unacked_envelope_redelivered_answered_once)
{
    s_standin (&(sl_options_t){.ack_ms = 500});
    s_start ("\"dmPolicy\":\"open\"");
    cr_assert_eq (sl_fault (&s_sl, "{\"kind\":\"deaf\"}"), 0);
    char ts[32], event_id[32];
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddStringToObject (body, "kind", "dm");
    cJSON_AddStringToObject (body, "channel", "D0801");
    cJSON_AddStringToObject (body, "user", "U0801");
    cJSON_AddStringToObject (body, "text", "say it once");
    s_event (body, ts, event_id);
    cr_assert_eq (sl_wait_count (&s_sl, "delivered", 1, WAIT_MS), 0);
    cr_assert_eq (sl_fault (&s_sl, "{\"kind\":\"drop\"}"), 0);
    s_expect_echo ("D0801", NULL, "say it once");
    cr_assert_geq (sl_count (&s_sl, "redeliveries"), 1, "it was not redelivered");
    cr_assert_eq (sl_count (&s_sl, "acks"), 1);

    //  Slack's redelivery of an event already acked and answered.
    char resend[128];
    snprintf (resend, sizeof (resend), "{\"event_id\":\"%s\",\"retry_num\":1}", event_id);
    cJSON *r = sl_control (&s_sl, "POST", "resend", resend);
    cr_assert_not_null (r, "resend refused");
    cJSON_Delete (r);
    cr_assert_eq (sl_wait_count (&s_sl, "acks", 2, WAIT_MS), 0, "the resend not acked");
    s_assert_quiet ("D0801", 1);
    cr_assert_eq (sl_count (&s_sl, "dropped"), 0);
    cr_assert_eq (sl_count (&s_sl, "pending"), 0);
    cr_assert_eq (ch_status_num (&s_gw, "slack", "inbound"), 1);
}

//  ---- Socket lifecycle ----------------------------------------------------------------

//  Sends kind (warning, refresh_requested) to the socket in use; the
//  gateway opens the next one (at most two: the stand-in refuses a third)
//  and closes this one before the stand-in would, and a message sent at
//  the switch is answered.  n: sockets opened so far.
static void
s_switch (const char *kind, long n, const char *channel)
{
    char fault[64];
    snprintf (fault, sizeof (fault), "{\"kind\":\"%s\"}", kind);
    long long t0 = harness_now_ms ();
    cr_assert_eq (sl_fault (&s_sl, fault), 0);
    s_msg ("dm", channel, "U0901", kind, NULL, NULL);
    cr_assert_eq (sl_wait_count (&s_sl, "sockets_opened", n + 1, WAIT_MS), 0,
                  "no next socket after %s", kind);
    cr_assert_eq (sl_wait_count (&s_sl, "sockets_closed", n, WAIT_MS), 0);
    long long took = harness_now_ms () - t0;
    //  The stand-in closes a warned socket after 4 s: before that, the
    //  gateway closed it itself.
    cr_assert_lt (took, 3500, "the switch took %lld ms", took);
    cr_assert_eq (sl_wait_sockets (&s_sl, 1, WAIT_MS), 0);
    cr_assert_eq (sl_count (&s_sl, "rejected_sockets"), 0, "more than 2 sockets");
    s_expect_echo (channel, NULL, kind);
    char after[64];
    snprintf (after, sizeof (after), "after %s", kind);
    s_msg ("dm", channel, "U0901", after, NULL, NULL);
    s_expect_echo (channel, NULL, after);
    cr_assert_eq (ch_status_num (&s_gw, "slack", "sockets"), 1);
    cr_assert_eq (sl_count (&s_sl, "sockets_opened"), n + 1);
}

Test (channels_slack, disconnect_warning_next_socket_first)
{
    s_standin (&(sl_options_t){.max_sockets = 2, .grace_ms = 4000});
    s_start ("\"dmPolicy\":\"open\"");
    s_switch ("warning", 1, "D0901");
    s_switch ("refresh_requested", 2, "D0902");
    //  The old one was closed when the new one said hello, not before.
    cr_assert (s_gw_logged ("the new socket is up; closing the old one"),
               "the gateway did not report the overlap");
    //  An envelope the stand-in wrote on the old socket as the gateway
    //  closed it comes again on the new one: answered once all the same.
    s_assert_quiet (NULL, 4);
    cr_assert_eq (sl_count (&s_sl, "dropped"), 0);
    cr_assert_eq (sl_count (&s_sl, "pending"), 0);
    cJSON *st = ch_status (&s_gw, "slack");
    cr_assert_str_eq (ch_str (st, "status"), "connected");
    cJSON_Delete (st);
}

//  A Socket Mode client of the test's own, to hold the stand-in's only
//  socket.
typedef struct {
    struct mg_connection *conn;
} held_t;

static int
s_held_data (struct mg_connection *conn, int bits, char *data, size_t len, void *arg)
{
    (void) conn;
    (void) data;
    (void) len;
    (void) arg;
    return (bits & 0x0f) == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE ? 0 : 1;
}

static void
s_hold (held_t *h)
{
    mg_init_library (0);
    char url[256], auth[128];
    snprintf (url, sizeof (url), "%s/apps.connections.open", s_sl.api);
    snprintf (auth, sizeof (auth), "Authorization: Bearer %s", SL_APP_TOKEN);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    http_resp_t r;
    http_do ("POST", url, headers, "{}", 2, &r);
    cJSON *root = cJSON_Parse (r.body);
    http_resp_free (&r);
    const char *ws = ch_str (root, "url");
    cr_assert (ws && strstr (ws, "/link/"), "apps.connections.open: no url");
    char err[256] = "";
    h->conn =
        mg_connect_websocket_client ("127.0.0.1", s_sl.port, 0, err, sizeof (err),
                                     strstr (ws, "/link/"), NULL, s_held_data, NULL, h);
    cJSON_Delete (root);
    cr_assert_not_null (h->conn, "no socket of our own: %s", err);
    cr_assert_eq (sl_wait_sockets (&s_sl, 1, WAIT_MS), 0);
}

static void
s_release (held_t *h)
{
    mg_close_connection (h->conn);
    h->conn = NULL;
    mg_exit_library ();
}

Test (channels_slack, too_many_websockets_backoff_then_back)
{
    s_standin (&(sl_options_t){.max_sockets = 1});
    held_t held;
    s_hold (&held);
    char config[4096];
    s_config (config, sizeof (config), "\"dmPolicy\":\"open\"");
    cr_assert_eq (ch_gw_start (&s_gw, config), 0, "clawgate serve did not start");
    s_wait_last_error ("too_many_websockets");
    char st[64];
    cr_assert_str_neq (s_status_str ("status", st, sizeof (st)), "connected");
    //  Backs off (100 ms doubling to 1 s): a handful of tries in 2 s, not
    //  a tight loop.
    long before = sl_count (&s_sl, "connections_open");
    long refused = sl_count (&s_sl, "rejected_sockets");
    usleep (2000 * 1000);
    long tries = sl_count (&s_sl, "connections_open") - before;
    cr_assert (tries >= 1 && tries <= 10, "%ld apps.connections.open in 2 s", tries);
    refused = sl_count (&s_sl, "rejected_sockets") - refused;
    cr_assert (refused >= 1 && refused <= tries + 1, "%ld sockets refused, %ld tries",
               refused, tries);

    //  Room again: connected and answering.
    s_release (&held);
    cr_assert_eq (ch_wait_status (&s_gw, "slack", "connected", WAIT_MS), 0,
                  "not back after the socket was freed");
    s_msg ("dm", "D1001", "U1001", "room again", NULL, NULL);
    s_expect_echo ("D1001", NULL, "room again");
    cr_assert_eq (ch_status_num (&s_gw, "slack", "sockets"), 1);

    //  Slack says it of our own socket: closed, backed off, back.
    long opened = sl_count (&s_sl, "sockets_opened");
    cr_assert_eq (sl_fault (&s_sl, "{\"kind\":\"too_many_websockets\"}"), 0);
    cr_assert_eq (sl_wait_count (&s_sl, "sockets_opened", opened + 1, WAIT_MS), 0);
    cr_assert_eq (ch_wait_status (&s_gw, "slack", "connected", WAIT_MS), 0);
    s_msg ("dm", "D1001", "U1001", "and again", NULL, NULL);
    s_expect_echo ("D1001", NULL, "and again");
}

//  link_disabled: the channel is in error, and tries again (here the
//  stand-in allows it at once).
Test (channels_slack, link_disabled_error_then_back)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"open\"");
    cr_assert_eq (sl_fault (&s_sl, "{\"kind\":\"link_disabled\"}"), 0);
    cr_assert_eq (ch_wait_status (&s_gw, "slack", "error", WAIT_MS), 0,
                  "link_disabled did not mark the channel error");
    s_wait_last_error ("Socket Mode is disabled");
    cr_assert_eq (ch_wait_status (&s_gw, "slack", "connected", WAIT_MS), 0);
    s_msg ("dm", "D1601", "U1601", "back", NULL, NULL);
    s_expect_echo ("D1601", NULL, "back");
    cr_assert_eq (sl_count (&s_sl, "connections_open"), 2);
}

//  A socket that stays open and hears nothing is replaced within about
//  pollTimeoutS; the eaten message comes again there and is answered once.
Test (channels_slack, deaf_socket_replaced)
{
    s_standin (&(sl_options_t){.ack_ms = 1500});
    s_start ("\"dmPolicy\":\"open\"");
    long long t0 = harness_now_ms ();
    cr_assert_eq (sl_fault (&s_sl, "{\"kind\":\"deaf\"}"), 0);
    s_msg ("dm", "D1101", "U1101", "eaten first", NULL, NULL);
    cr_assert_eq (sl_wait_count (&s_sl, "delivered", 1, WAIT_MS), 0);
    cr_assert_eq (sl_wait_count (&s_sl, "sockets_opened", 2, WAIT_MS), 0,
                  "the deaf socket was never replaced");
    long long took = harness_now_ms () - t0;
    cr_assert_lt (took, 2000 + 2500, "replaced after %lld ms (pollTimeoutS 2)", took);
    //  The stand-in still counts the deaf one; Slack would drop it: so do we.
    cr_assert_eq (sl_fault (&s_sl, "{\"kind\":\"drop\",\"socket\":1}"), 0);
    s_expect_echo ("D1101", NULL, "eaten first");
    s_msg ("dm", "D1101", "U1101", "heard now", NULL, NULL);
    s_expect_echo ("D1101", NULL, "heard now");
    s_assert_quiet ("D1101", 2);
    cr_assert_eq (ch_status_num (&s_gw, "slack", "sockets"), 1);
    char st[64];
    cr_assert_str_eq (s_status_str ("status", st, sizeof (st)), "connected");
}

//  ---- chat.postMessage faults ---------------------------------------------------------

Test (channels_slack, post_429_waits_retry_after_and_5xx_retried)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"open\"");
    cr_assert_eq (sl_fault (&s_sl, "{\"method\":\"chat.postMessage\",\"kind\":"
                                   "\"ratelimited\",\"retry_after\":1,\"count\":1}"),
                  0);
    long long t0 = harness_now_ms ();
    s_msg ("dm", "D1201", "U1201", "slow down", NULL, NULL);
    s_expect_echo ("D1201", NULL, "slow down");
    long long took = harness_now_ms () - t0;
    cr_assert_geq (took, 900, "the reply came %lld ms after, before Retry-After", took);
    cr_assert_eq (sl_count (&s_sl, "chat.postMessage"), 2);

    cr_assert_eq (sl_fault (&s_sl, "{\"method\":\"chat.postMessage\",\"kind\":\"503\","
                                   "\"count\":2}"),
                  0);
    s_msg ("dm", "D1201", "U1201", "through trouble", NULL, NULL);
    s_expect_echo ("D1201", NULL, "through trouble");
    cr_assert_eq (sl_count (&s_sl, "chat.postMessage"), 5);
    s_assert_quiet ("D1201", 2);
    cr_assert_eq (ch_status_num (&s_gw, "slack", "failed"), 0);
}

Test (channels_slack, post_permanent_errors_given_up)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"open\"");
    cr_assert_eq (sl_fault (&s_sl, "{\"method\":\"chat.postMessage\",\"kind\":"
                                   "\"channel_not_found\",\"channel\":\"D1301\","
                                   "\"count\":5}"),
                  0);
    cr_assert_eq (sl_fault (&s_sl, "{\"method\":\"chat.postMessage\",\"kind\":"
                                   "\"invalid_auth\",\"channel\":\"D1302\","
                                   "\"count\":5}"),
                  0);
    s_msg ("dm", "D1301", "U1301", "nowhere to go", NULL, NULL);
    long long deadline = harness_now_ms () + WAIT_MS;
    while (ch_status_num (&s_gw, "slack", "failed") < 1) {
        cr_assert (harness_now_ms () < deadline, "the reply was never given up");
        usleep (50000);
    }
    s_wait_last_error ("channel_not_found");
    char st[64];
    cr_assert_str_eq (s_status_str ("status", st, sizeof (st)), "connected");

    //  A bad token: given up too, and the channel is in error.
    s_msg ("dm", "D1302", "U1302", "bad token", NULL, NULL);
    cr_assert_eq (ch_wait_status (&s_gw, "slack", "error", WAIT_MS), 0,
                  "invalid_auth did not mark the channel error");
    s_wait_last_error ("invalid_auth");
    usleep (QUIET_MS * 1000);
    cr_assert_eq (sl_count (&s_sl, "chat.postMessage"), 2, "a permanent error retried");
    cr_assert_eq (ch_status_num (&s_gw, "slack", "failed"), 2);
    cr_assert_eq (s_count (NULL), 0);
}

//  ---- Events API over HTTP ------------------------------------------------------------

//  The push record of an http event (its first push).  Caller owns it.
static cJSON *
s_push (const char *json)
{
    cJSON *root = sl_event (&s_sl, json, NULL, 0);
    cr_assert_not_null (root, "/control/event refused %s", json);
    cJSON *push = cJSON_DetachItemFromObject (root, "push");
    cJSON_Delete (root);
    cr_assert_not_null (push, "no push record for %s", json);
    return push;
}

static long
s_push_status (const char *json)
{
    cJSON *push = s_push (json);
    long status = (long) cJSON_GetNumberValue (cJSON_GetObjectItem (push, "status"));
    cJSON_Delete (push);
    return status;
}

Test (channels_slack, http_mode_events_api)
{
    s_standin (NULL);
    char config[4096];
    s_config (
        config, sizeof (config),
        "\"dmPolicy\":\"open\",\"mode\":\"http\",\"signingSecret\":\"" SL_SIGNING_SECRET
        "\"");
    cr_assert_eq (ch_gw_start (&s_gw, config), 0, "clawgate serve did not start");
    cr_assert_eq (ch_wait_status (&s_gw, "slack", "connected", WAIT_MS), 0);
    char target[256];
    snprintf (target, sizeof (target), "{\"url\":\"%s/v1/channels/slack/webhook\"}",
              s_gw.base);
    cJSON *ok = sl_control (&s_sl, "POST", "target", target);
    cr_assert_not_null (ok);
    cJSON_Delete (ok);
    char st[64];
    cr_assert_str_eq (s_status_str ("mode", st, sizeof (st)), "http");

    //  URL verification: the challenge comes back.
    cJSON *v = sl_event (
        &s_sl, "{\"kind\":\"url_verification\",\"challenge\":\"ch4llenge\"}", NULL, 0);
    cr_assert_not_null (v);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (v, "status")), 200);
    cr_assert (ch_str (v, "body") && strstr (ch_str (v, "body"), "ch4llenge"),
               "verification answered '%s'", ch_str (v, "body"));
    cJSON_Delete (v);

    //  A signed event: 200 at once, and a reply.
    cJSON *push = s_push ("{\"kind\":\"dm\",\"channel\":\"D1401\",\"user\":\"U1401\","
                          "\"text\":\"over http\",\"via\":\"http\",\"wait\":true}");
    cr_assert_str_eq (ch_str (push, "outcome"), "ok");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (push, "status")), 200);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (push, "attempts")), 1);
    const char *event_id = ch_str (push, "event_id");
    char resend[160];
    snprintf (resend, sizeof (resend),
              "{\"event_id\":\"%s\",\"via\":\"http\",\"retry_num\":1,\"wait\":true}",
              event_id ? event_id : "");
    cJSON_Delete (push);
    s_expect_echo ("D1401", NULL, "over http");

    //  Slack's retry of it (X-Slack-Retry-Num: 1): 200, not run again.
    cJSON *r = sl_control (&s_sl, "POST", "resend", resend);
    cr_assert_not_null (r, "resend refused");
    cr_assert_eq (cJSON_GetNumberValue (
                      cJSON_GetObjectItem (cJSON_GetObjectItem (r, "push"), "status")),
                  200);
    cJSON_Delete (r);

    //  Forged, stale, unsigned: 401, nothing run.
    cr_assert_eq (s_push_status ("{\"kind\":\"dm\",\"channel\":\"D1402\",\"text\":"
                                 "\"forged\",\"via\":\"http\",\"forge\":true,"
                                 "\"no_retry\":true,\"wait\":true}"),
                  401);
    cr_assert_eq (s_push_status ("{\"kind\":\"dm\",\"channel\":\"D1402\",\"text\":"
                                 "\"stale\",\"via\":\"http\",\"stale\":true,"
                                 "\"no_retry\":true,\"wait\":true}"),
                  401);
    cr_assert_eq (s_push_status ("{\"kind\":\"dm\",\"channel\":\"D1402\",\"text\":"
                                 "\"unsigned\",\"via\":\"http\",\"unsigned\":true,"
                                 "\"no_retry\":true,\"wait\":true}"),
                  401);
    //  Without the stand-in: no signature header at all.
    const char *body = "{\"type\":\"event_callback\",\"event\":{\"type\":\"message\","
                       "\"channel\":\"D1402\",\"user\":\"U1402\",\"text\":\"bare\","
                       "\"ts\":\"1700000000.000200\",\"channel_type\":\"im\"}}";
    char stamp[64];
    snprintf (stamp, sizeof (stamp), "X-Slack-Request-Timestamp: %ld",
              (long) time (NULL));
    const char *headers[] = {stamp, NULL};
    cr_assert_eq (
        ch_http (&s_gw, "POST", "/v1/channels/slack/webhook", body, false, headers, NULL),
        401);

    s_assert_quiet (NULL, 1);
    cr_assert_eq (s_count ("D1402"), 0, "a refused push was run");
    cr_assert_eq (ch_status_num (&s_gw, "slack", "inbound"), 1);
    cr_assert_eq (sl_count (&s_sl, "connections_open"), 0, "Socket Mode in http mode");
}

//  ---- Enable / disable -----------------------------------------------------------------

Test (channels_slack, disable_closes_socket_enable_answers)
{
    s_standin (NULL);
    s_start ("\"dmPolicy\":\"open\"");
    cJSON *r = NULL;
    cr_assert_eq (
        ch_http (&s_gw, "POST", "/v1/channels/slack/disable", NULL, true, NULL, &r), 200);
    cJSON_Delete (r);
    cr_assert_eq (ch_wait_status (&s_gw, "slack", "disabled", WAIT_MS), 0);
    cr_assert_eq (sl_wait_sockets (&s_sl, 0, WAIT_MS), 0, "the socket stayed open");
    cJSON *st = ch_status (&s_gw, "slack");
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (st, "enabled")));
    cJSON_Delete (st);
    //  Sent while disabled: Slack keeps it until a socket comes.
    s_msg ("dm", "D1501", "U1501", "are you off", NULL, NULL);
    usleep (QUIET_MS * 1000);
    cr_assert_eq (s_count ("D1501"), 0, "answered while disabled");
    cr_assert_eq (sl_count (&s_sl, "sockets_open"), 0, "a socket while disabled");

    cr_assert_eq (
        ch_http (&s_gw, "POST", "/v1/channels/slack/enable", NULL, true, NULL, &r), 200);
    cJSON_Delete (r);
    cr_assert_eq (ch_wait_status (&s_gw, "slack", "connected", WAIT_MS), 0);
    cr_assert_eq (sl_wait_sockets (&s_sl, 1, WAIT_MS), 0);
    s_expect_echo ("D1501", NULL, "are you off");
    s_msg ("dm", "D1501", "U1501", "back on", NULL, NULL);
    s_expect_echo ("D1501", NULL, "back on");
    s_assert_quiet ("D1501", 2);
}
