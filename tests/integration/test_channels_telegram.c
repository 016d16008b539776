/*  =========================================================================
    test_channels_telegram - the Telegram channel of the real `clawgate
    serve` against cg_tgstandin: pairing (API and CLI), allowlist, open and
    disabled DMs, groups and mentions, split replies, 429, 409, 403 and
    migrate, the stand-in killed and back, enable/disable persisted, the
    channel API over HTTP and WebSocket, webhook mode and its secret,
    duplicates and edits.  The model is the built-in local/echo, so a
    reply's text is the message's.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <ctype.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channels.h"
#include "harness.h"
#include "telegram.h"

#define WAIT_MS 15000  //  Generous: the suite also runs under ASan
#define QUIET_MS 2500  //  How long "nothing more is sent" is watched

static tg_standin_t s_tg;
static ch_gw_t s_gw;
static char s_dir[256];

static void
s_setup (void)
{
    harness_tmpdir (s_dir, sizeof (s_dir));
    char state[300];
    snprintf (state, sizeof (state), "%s/tg.json", s_dir);
    cr_assert_eq (tg_start (&s_tg, state), 0, "cg_tgstandin did not start");
}

static void
s_teardown (void)
{
    //  A clean stop exits 0; under ASan a leak or a bad free makes it not.
    if (s_gw.proc.pid > 0)
        cr_expect_eq (ch_gw_stop (&s_gw, SIGTERM), 0, "clawgate serve did not exit 0");
    ch_gw_destroy (&s_gw);
    tg_stop (&s_tg, SIGTERM);
    harness_rmtree (s_dir);
}

TestSuite (channels_telegram, .init = s_setup, .fini = s_teardown, .timeout = 90);

//  Starts the gateway with the telegram channel (extra keys, more
//  channels) and waits until the channel is connected.
static void
s_start (const char *extra, const char *more)
{
    char config[4096];
    ch_tg_config (config, sizeof (config), &s_tg, extra, more);
    cr_assert_eq (ch_gw_start (&s_gw, config), 0, "clawgate serve did not start");
    cr_assert_eq (ch_wait_status (&s_gw, "telegram", "connected", WAIT_MS), 0,
                  "telegram never connected");
}

//  Asserts that, over QUIET_MS, nothing more is sent to chat (NULL: any).
static void
s_assert_quiet (const char *chat, int have)
{
    usleep (QUIET_MS * 1000);
    int now = ch_tg_count (&s_tg, chat, 0);
    cr_assert_eq (now, have, "expected %d messages to %s, got %d", have,
                  chat ? chat : "any chat", now);
}

//  Waits for the echo reply to message_id in chat and checks it.
static void
s_expect_echo (const char *chat, long message_id, const char *text)
{
    char *got = ch_tg_wait_reply (&s_tg, chat, message_id, WAIT_MS);
    cr_assert_not_null (got, "no reply in chat %s to message %ld", chat, message_id);
    cr_assert_str_eq (got, text, "reply to %ld: '%s'", message_id, got);
    free (got);
}

//  ---- Pairing ---------------------------------------------------------------------

Test (channels_telegram, pairing_code_approve_then_answered)
{
    s_start ("\"dmPolicy\":\"pairing\"", NULL);
    long m1 = ch_tg_dm (&s_tg, 501, "hello there");
    cr_assert_gt (m1, 0);
    cr_assert_eq (tg_wait_sent (&s_tg, "501", 1, WAIT_MS), 0, "no pairing notice");
    cJSON *sent = tg_sent (&s_tg, "501");
    cJSON *notice = cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0);
    char code[9];
    cr_assert (ch_code_in (ch_str (notice, "text"), code), "no valid code in '%s'",
               ch_str (notice, "text"));
    cr_assert (!strstr (ch_str (notice, "text"), "hello there"), "the message was run");
    cJSON_Delete (sent);

    //  The same sender again: no second code, no run.
    long m2 = ch_tg_dm (&s_tg, 501, "again");
    cr_assert_gt (m2, 0);
    s_assert_quiet ("501", 1);

    //  Listed with the sender.
    cJSON *list = NULL;
    cr_assert_eq (
        ch_http (&s_gw, "GET", "/v1/channels/telegram/pairing", NULL, true, NULL, &list),
        200);
    cJSON *reqs = cJSON_GetObjectItem (list, "requests");
    cr_assert_eq (cJSON_GetArraySize (reqs), 1, "requests: %d",
                  cJSON_GetArraySize (reqs));
    cJSON *req = cJSON_GetArrayItem (reqs, 0);
    cr_assert_str_eq (ch_str (req, "code"), code);
    cr_assert_str_eq (ch_str (req, "senderId"), "501");
    cr_assert_str_eq (ch_str (req, "senderName"), "Tester");
    cr_assert (cJSON_GetObjectItem (req, "createdAt"));
    cr_assert (cJSON_GetObjectItem (req, "expiresAt"));
    cJSON_Delete (list);

    //  Without a token: refused.
    cr_assert_eq (
        ch_http (&s_gw, "GET", "/v1/channels/telegram/pairing", NULL, false, NULL, NULL),
        401);

    //  A wrong code: 404.
    cr_assert_eq (ch_http (&s_gw, "POST", "/v1/channels/telegram/pairing/ABCDEFGH", NULL,
                           true, NULL, NULL),
                  404);
    //  The right one.
    char path[128];
    snprintf (path, sizeof (path), "/v1/channels/telegram/pairing/%s", code);
    cJSON *ok = NULL;
    cr_assert_eq (ch_http (&s_gw, "POST", path, NULL, true, NULL, &ok), 200);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (ok, "approved")));
    cr_assert_str_eq (ch_str (ok, "senderId"), "501");
    cJSON_Delete (ok);
    //  Used up.
    cr_assert_eq (ch_http (&s_gw, "POST", path, NULL, true, NULL, NULL), 404);
    cr_assert_eq (
        ch_http (&s_gw, "GET", "/v1/channels/telegram/pairing", NULL, true, NULL, &list),
        200);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (list, "requests")), 0);
    cJSON_Delete (list);

    //  Now answered, replying to the user's message.
    long m3 = ch_tg_dm (&s_tg, 501, "now you know me");
    s_expect_echo ("501", m3, "now you know me");
    //  The messages sent before the approval are not run afterwards: the
    //  chat holds the notice and the one reply.
    s_assert_quiet ("501", 2);
    cr_assert_eq (ch_tg_count (&s_tg, "501", m2), 0);

    //  Approved senders persist across a restart.
    cr_assert_eq (ch_gw_stop (&s_gw, SIGTERM), 0);
    cr_assert_eq (ch_gw_restart (&s_gw), 0);
    long m4 = ch_tg_dm (&s_tg, 501, "still me");
    s_expect_echo ("501", m4, "still me");
}

//  Runs the CLI with args; stdout into out.  Returns the exit status.
static int
s_cli (const char *const args[], char *out, size_t cap)
{
    proc_t p;
    if (proc_start (&p, args, NULL))
        return -1;
    fcntl (p.out_fd, F_SETFL, 0);  //  proc_start made it non-blocking
    size_t len = 0;
    ssize_t n;
    while (len + 1 < cap && (n = read (p.out_fd, out + len, cap - 1 - len)) > 0)
        len += (size_t) n;
    out[len] = 0;
    int rc = proc_stop (&p, 0, 15000);  //  Signal 0: only waits
    unlink (p.err_path);
    return rc;
}

Test (channels_telegram, pairing_cli_list_and_approve)
{
    s_start (NULL, NULL);  //  dmPolicy defaults to pairing
    ch_tg_dm (&s_tg, 502, "who am i");
    cr_assert_eq (tg_wait_sent (&s_tg, "502", 1, WAIT_MS), 0, "no pairing notice");
    cJSON *sent = tg_sent (&s_tg, "502");
    char code[9];
    cr_assert (ch_code_in (
        ch_str (cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0), "text"),
        code));
    cJSON_Delete (sent);

    char out[16384];
    const char *list[] = {"pairing", "list", "telegram", "--state-dir", s_gw.state, NULL};
    cr_assert_eq (s_cli (list, out, sizeof (out)), 0, "pairing list failed: %s", out);
    cr_assert (strstr (out, code) && strstr (out, "502"), "list: %s", out);

    const char *bad[] = {"pairing",     "approve",  "telegram", "ZZZZZZZZ",
                         "--state-dir", s_gw.state, NULL};
    cr_assert_neq (s_cli (bad, out, sizeof (out)), 0, "a wrong code was approved");

    const char *approve[] = {"pairing",     "approve",  "telegram", code,
                             "--state-dir", s_gw.state, NULL};
    cr_assert_eq (s_cli (approve, out, sizeof (out)), 0, "approve failed: %s", out);

    long m = ch_tg_dm (&s_tg, 502, "approved by the cli");
    s_expect_echo ("502", m, "approved by the cli");
}

//  ---- Policies --------------------------------------------------------------------

Test (channels_telegram, allowlist)
{
    s_start ("\"dmPolicy\":\"allowlist\",\"allowFrom\":[\"777\"]", NULL);
    long other = ch_tg_dm (&s_tg, 778, "not me");
    long m = ch_tg_dm (&s_tg, 777, "allowed one");
    s_expect_echo ("777", m, "allowed one");
    cr_assert (other > 0);
    s_assert_quiet ("778", 0);  //  No reply, no pairing code
}

Test (channels_telegram, open_answers_anyone)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    long a = ch_tg_dm (&s_tg, 601, "first stranger");
    long b = ch_tg_dm (&s_tg, 602, "second stranger");
    s_expect_echo ("601", a, "first stranger");
    s_expect_echo ("602", b, "second stranger");
}

Test (channels_telegram, disabled_answers_nobody)
{
    s_start ("\"dmPolicy\":\"disabled\",\"allowFrom\":[\"777\"]", NULL);
    ch_tg_dm (&s_tg, 603, "anyone there");
    ch_tg_dm (&s_tg, 777, "even me");
    cr_assert_eq (ch_tg_wait_calls (&s_tg, "getUpdates", 3, WAIT_MS), 0);
    s_assert_quiet (NULL, 0);
}

Test (channels_telegram, groups_need_mention_and_allowed_group)
{
    s_start (
        "\"dmPolicy\":\"open\",\"groupPolicy\":\"allowlist\",\"groups\":[\"-100123\"],"
        "\"requireMention\":true",
        NULL);
    long plain, mention, reply, other;
    ch_tg_message (&s_tg,
                   "{\"chat_id\":-100123,\"chat_type\":\"supergroup\",\"from_id\":91,"
                   "\"text\":\"no mention here\"}",
                   &plain);
    ch_tg_message (&s_tg,
                   "{\"chat_id\":-100123,\"chat_type\":\"supergroup\",\"from_id\":91,"
                   "\"text\":\"mentioned you\",\"mention\":true}",
                   &mention);
    char *got = ch_tg_wait_reply (&s_tg, "-100123", mention, WAIT_MS);
    cr_assert_not_null (got, "a mention was not answered");
    cr_assert (strstr (got, "mentioned you"), "reply: %s", got);
    free (got);
    ch_tg_message (&s_tg,
                   "{\"chat_id\":-100123,\"chat_type\":\"supergroup\",\"from_id\":92,"
                   "\"text\":\"replying to the bot\",\"reply_to_bot\":true}",
                   &reply);
    s_expect_echo ("-100123", reply, "replying to the bot");
    ch_tg_message (&s_tg,
                   "{\"chat_id\":-100999,\"chat_type\":\"supergroup\",\"from_id\":91,"
                   "\"text\":\"other group\",\"mention\":true}",
                   &other);
    s_assert_quiet (NULL, 2);
    cr_assert_eq (ch_tg_count (&s_tg, "-100123", plain), 0);
    cr_assert_eq (ch_tg_count (&s_tg, "-100999", 0), 0);
}

//  ---- Replies ---------------------------------------------------------------------

Test (channels_telegram, long_reply_split_in_order)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    //  10,000 characters of words of varying length.
    size_t cap = 10001;
    char *text = malloc (cap);
    size_t len = 0;
    for (int i = 0; len < 10000; i++) {
        char word[32];
        int n = snprintf (word, sizeof (word), "w%d%s", i, i % 7 ? " " : "abcdefg ");
        for (int k = 0; k < n && len < 10000; k++)
            text[len++] = word[k];
    }
    text[9999] = 'z';
    text[10000] = 0;
    long m = ch_tg_dm (&s_tg, 604, text);
    cr_assert_gt (m, 0);
    cr_assert_eq (tg_wait_sent (&s_tg, "604", 3, WAIT_MS * 2), 0, "fewer than 3 parts");
    usleep (1000 * 1000);
    cJSON *sent = tg_sent (&s_tg, "604");
    cJSON *msgs = cJSON_GetObjectItem (sent, "messages");
    int parts = cJSON_GetArraySize (msgs);
    cr_assert (parts >= 3 && parts <= 4, "parts: %d", parts);
    //  Concatenated without whitespace, equal to the text without it.
    char *joined = calloc (1, 20000), *want = calloc (1, 20000);
    size_t jl = 0, wl = 0;
    for (size_t i = 0; i < len; i++)
        if (!isspace ((unsigned char) text[i]))
            want[wl++] = text[i];
    double last_seq = -1;
    for (int i = 0; i < parts; i++) {
        cJSON *p = cJSON_GetArrayItem (msgs, i);
        const char *t = ch_str (p, "text");
        cr_assert (strlen (t) <= 4096, "part %d has %zu chars", i, strlen (t));
        double seq = cJSON_GetNumberValue (cJSON_GetObjectItem (p, "seq"));
        cr_assert_gt (seq, last_seq);
        last_seq = seq;
        if (i == 0)
            cr_assert_eq (
                (long) cJSON_GetNumberValue (cJSON_GetObjectItem (p, "reply_to")), m,
                "the first part does not reply to the message");
        for (const char *c = t; *c; c++)
            if (!isspace ((unsigned char) *c))
                joined[jl++] = *c;
    }
    cr_assert_eq (jl, wl, "joined %zu chars, want %zu", jl, wl);
    cr_assert (memcmp (joined, want, wl) == 0, "the parts are not the text in order");
    free (joined);
    free (want);
    free (text);
    cJSON_Delete (sent);
}

Test (channels_telegram, retry_after_429_honoured)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    cr_assert_eq (tg_fault (&s_tg, "{\"method\":\"sendMessage\",\"kind\":\"429\","
                                   "\"retry_after\":2,\"count\":1}"),
                  0);
    long long t0 = harness_now_ms ();
    long m = ch_tg_dm (&s_tg, 605, "slow down");
    s_expect_echo ("605", m, "slow down");
    long long took = harness_now_ms () - t0;
    cr_assert_geq (took, 1900, "the reply came %lld ms after, before retry_after", took);
    //  The 429'd call and one retry.
    cr_assert_eq (tg_calls (&s_tg, "sendMessage"), 2);
    s_assert_quiet ("605", 1);
}

Test (channels_telegram, conflict_409_survived)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    long before = ch_status_num (&s_gw, "telegram", "reconnects");
    cr_assert_eq (
        tg_fault (&s_tg, "{\"method\":\"getUpdates\",\"kind\":\"409\",\"count\":5}"), 0);
    long polls = tg_calls (&s_tg, "getUpdates");
    cr_assert_eq (ch_tg_wait_calls (&s_tg, "getUpdates", polls + 6, WAIT_MS * 2), 0,
                  "polling stopped after 409s");
    long m = ch_tg_dm (&s_tg, 606, "after the conflict");
    s_expect_echo ("606", m, "after the conflict");
    cJSON *st = ch_status (&s_gw, "telegram");
    const char *status = ch_str (st, "status");
    cr_assert (status && strcmp (status, "error") != 0, "status: %s", status);
    long after = (long) cJSON_GetNumberValue (cJSON_GetObjectItem (st, "reconnects"));
    cr_assert_lt (after - before, 5, "reconnects went from %ld to %ld", before, after);
    cJSON_Delete (st);
}

Test (channels_telegram, forbidden_403_given_up)
{
    s_start ("\"dmPolicy\":\"open\",\"sendAttempts\":12", NULL);
    long failed = ch_status_num (&s_gw, "telegram", "failed");
    cr_assert_eq (tg_fault (&s_tg, "{\"method\":\"sendMessage\",\"kind\":\"403\","
                                   "\"chat_id\":607,\"count\":50}"),
                  0);
    ch_tg_dm (&s_tg, 607, "you blocked me");
    long long deadline = harness_now_ms () + WAIT_MS;
    while (ch_status_num (&s_gw, "telegram", "failed") <= failed
           && harness_now_ms () < deadline)
        usleep (50000);
    cr_assert_gt (ch_status_num (&s_gw, "telegram", "failed"), failed,
                  "the failed counter did not move");
    //  The status says why.
    cJSON *st = ch_status (&s_gw, "telegram");
    const cJSON *err = cJSON_GetObjectItem (st, "lastError");
    cr_assert (cJSON_IsString (err) && strstr (err->valuestring, "607")
                   && strstr (err->valuestring, "403"),
               "lastError: %s", cJSON_IsString (err) ? err->valuestring : "(none)");
    cJSON_Delete (st);
    //  Another chat still works.
    long m = ch_tg_dm (&s_tg, 608, "i did not block you");
    s_expect_echo ("608", m, "i did not block you");
    //  No retry storm for the blocked chat.
    long calls = tg_calls (&s_tg, "sendMessage");
    cr_assert_leq (calls, 3, "sendMessage calls: %ld", calls);
    usleep (QUIET_MS * 1000);
    cr_assert_eq (tg_calls (&s_tg, "sendMessage"), calls, "still retrying");
}

Test (channels_telegram, migrate_to_supergroup_followed)
{
    s_start ("\"dmPolicy\":\"open\",\"groupPolicy\":\"open\"", NULL);
    cr_assert_eq (tg_fault (&s_tg, "{\"method\":\"sendMessage\",\"kind\":\"migrate\","
                                   "\"migrate_to_chat_id\":-1009876543210,\"count\":1}"),
                  0);
    long m;
    ch_tg_message (&s_tg,
                   "{\"chat_id\":-4455,\"chat_type\":\"group\",\"from_id\":93,"
                   "\"text\":\"we moved\",\"mention\":true}",
                   &m);
    char *got = ch_tg_wait_reply (&s_tg, "-1009876543210", m, WAIT_MS);
    cr_assert_not_null (got, "no reply in the new chat");
    cr_assert (strstr (got, "we moved"), "reply: %s", got);
    free (got);
    cr_assert_eq (ch_tg_count (&s_tg, "-4455", 0), 0);
}

//  ---- Transport ---------------------------------------------------------------------

Test (channels_telegram, standin_killed_and_back)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    long m1 = ch_tg_dm (&s_tg, 609, "before the outage");
    s_expect_echo ("609", m1, "before the outage");
    long reconnects = ch_status_num (&s_gw, "telegram", "reconnects");

    tg_stop (&s_tg, SIGKILL);
    cr_assert_eq (ch_wait_status (&s_gw, "telegram", "disconnected", WAIT_MS), 0,
                  "status never went disconnected");
    cJSON *st = ch_status (&s_gw, "telegram");
    cr_assert (ch_str (st, "lastError"), "no lastError while down");
    cJSON_Delete (st);

    cr_assert_eq (tg_restart (&s_tg), 0);
    long m2 = ch_tg_dm (&s_tg, 609, "while you were away");
    cr_assert_eq (ch_wait_status (&s_gw, "telegram", "connected", WAIT_MS), 0,
                  "status never came back to connected");
    s_expect_echo ("609", m2, "while you were away");
    cr_assert_gt (ch_status_num (&s_gw, "telegram", "reconnects"), reconnects);
    s_assert_quiet ("609", 2);
}

Test (channels_telegram, reply_held_while_standin_down)
{
    s_start ("\"dmPolicy\":\"open\",\"sendAttempts\":100", NULL);
    //  The message is taken, then sendMessage hangs up; the stand-in dies
    //  with the reply unsent.
    cr_assert_eq (tg_fault (&s_tg, "{\"method\":\"sendMessage\",\"kind\":\"500\","
                                   "\"count\":1000}"),
                  0);
    long m = ch_tg_dm (&s_tg, 610, "answer me later");
    cr_assert_eq (ch_tg_wait_calls (&s_tg, "sendMessage", 1, WAIT_MS), 0);
    tg_stop (&s_tg, SIGKILL);
    usleep (1500 * 1000);
    cr_assert_eq (tg_restart (&s_tg), 0);  //  Faults do not survive a restart
    s_expect_echo ("610", m, "answer me later");
    s_assert_quiet ("610", 1);
}

//  A long poll that never returns is cut (its timeout plus a grace of
//  max (2 s, half the timeout)), counted as a transport failure, and
//  polling goes on: the message sent meanwhile is answered.
Test (channels_telegram, hung_poll_cut_and_resumed)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    long polls = tg_calls (&s_tg, "getUpdates");
    cr_assert_eq (tg_fault (&s_tg, "{\"method\":\"getUpdates\",\"kind\":\"hang\","
                                   "\"count\":1}"),
                  0);
    //  The poll held now ends (timeout 1 s); the next one hangs.
    cr_assert_eq (ch_tg_wait_calls (&s_tg, "getUpdates", polls + 2, WAIT_MS), 0);
    long m = ch_tg_dm (&s_tg, 612, "still there?");
    s_expect_echo ("612", m, "still there?");
    cJSON *st = ch_status (&s_gw, "telegram");
    cr_assert (
        ch_str (st, "lastError") && strstr (ch_str (st, "lastError"), "getUpdates"),
        "lastError: %s", ch_str (st, "lastError") ? ch_str (st, "lastError") : "-");
    cJSON_Delete (st);
}

//  A send whose connection drops without an answer is sent again.
Test (channels_telegram, dropped_send_retried)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    cr_assert_eq (tg_fault (&s_tg, "{\"method\":\"sendMessage\",\"kind\":\"drop\","
                                   "\"count\":2}"),
                  0);
    long m = ch_tg_dm (&s_tg, 613, "through a bad line");
    s_expect_echo ("613", m, "through a bad line");
    cr_assert_eq (tg_calls (&s_tg, "sendMessage"), 3, "two dropped, one delivered");
    s_assert_quiet ("613", 1);
}

Test (channels_telegram, duplicate_update_answered_once)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    const char *update =
        "{\"update_id\":900001,\"message\":{\"message_id\":5001,\"from\":{\"id\":611,"
        "\"is_bot\":false,\"first_name\":\"Dup\"},\"chat\":{\"id\":611,\"type\":"
        "\"private\",\"first_name\":\"Dup\"},\"date\":1700000000,\"text\":\"say it "
        "once\"}}";
    cr_assert_eq (tg_update (&s_tg, update), 900001);
    s_expect_echo ("611", 5001, "say it once");
    cr_assert_eq (tg_update (&s_tg, update), 900001);
    //  The same message under another update_id is the same message too.
    const char *again =
        "{\"update_id\":900002,\"message\":{\"message_id\":5001,\"from\":{\"id\":611,"
        "\"is_bot\":false,\"first_name\":\"Dup\"},\"chat\":{\"id\":611,\"type\":"
        "\"private\",\"first_name\":\"Dup\"},\"date\":1700000000,\"text\":\"say it "
        "once\"}}";
    cr_assert_eq (tg_update (&s_tg, again), 900002);
    long m = ch_tg_dm (&s_tg, 611, "a new one");
    s_expect_echo ("611", m, "a new one");
    s_assert_quiet ("611", 2);
    cr_assert_eq (ch_tg_count (&s_tg, "611", 5001), 1);
}

Test (channels_telegram, edits_not_answered)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    long e;
    ch_tg_message (&s_tg, "{\"chat_id\":612,\"text\":\"edited text\",\"edited\":true}",
                   &e);
    long m = ch_tg_dm (&s_tg, 612, "plain text");
    s_expect_echo ("612", m, "plain text");
    s_assert_quiet ("612", 1);
    cr_assert_eq (ch_tg_count (&s_tg, "612", e), 0);
}

//  ---- Enable / disable ------------------------------------------------------------

Test (channels_telegram, disable_enable_persisted)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    cJSON *r = NULL;
    cr_assert_eq (
        ch_http (&s_gw, "POST", "/v1/channels/telegram/disable", NULL, true, NULL, &r),
        200);
    cJSON_Delete (r);
    cr_assert_eq (ch_wait_status (&s_gw, "telegram", "disabled", WAIT_MS), 0);
    cJSON *st = ch_status (&s_gw, "telegram");
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (st, "enabled")));
    cJSON_Delete (st);
    usleep (1500 * 1000);  //  Let a poll in flight end
    long polls = tg_calls (&s_tg, "getUpdates");
    long m1 = ch_tg_dm (&s_tg, 613, "are you off");
    usleep (QUIET_MS * 1000);
    cr_assert_eq (ch_tg_count (&s_tg, "613", 0), 0, "answered while disabled");
    cr_assert_leq (tg_calls (&s_tg, "getUpdates"), polls + 1, "still polling");

    //  Still disabled after a restart.
    cr_assert_eq (ch_gw_stop (&s_gw, SIGTERM), 0);
    cr_assert_eq (ch_gw_restart (&s_gw), 0);
    cr_assert_eq (ch_wait_status (&s_gw, "telegram", "disabled", WAIT_MS), 0,
                  "the disable did not persist");
    usleep (QUIET_MS * 1000);
    cr_assert_eq (ch_tg_count (&s_tg, "613", 0), 0, "answered while disabled");

    cr_assert_eq (
        ch_http (&s_gw, "POST", "/v1/channels/telegram/enable", NULL, true, NULL, &r),
        200);
    cJSON_Delete (r);
    cr_assert_eq (ch_wait_status (&s_gw, "telegram", "connected", WAIT_MS), 0);
    s_expect_echo ("613", m1, "are you off");
    s_assert_quiet ("613", 1);

    //  Enabled persists too.
    cr_assert_eq (ch_gw_stop (&s_gw, SIGTERM), 0);
    cr_assert_eq (ch_gw_restart (&s_gw), 0);
    cr_assert_eq (ch_wait_status (&s_gw, "telegram", "connected", WAIT_MS), 0);
}

//  ---- The channel API ----------------------------------------------------------------

Test (channels_telegram, channel_api_http_and_ws)
{
    s_start ("\"dmPolicy\":\"open\"", NULL);
    cJSON *list = NULL;
    cr_assert_eq (ch_http (&s_gw, "GET", "/v1/channels", NULL, true, NULL, &list), 200);
    cJSON *chans = cJSON_GetObjectItem (list, "channels");
    cr_assert_eq (cJSON_GetArraySize (chans), 5);
    const char *ids[] = {"whatsapp", "telegram", "discord", "slack", "webhook"};
    for (int i = 0; i < 5; i++) {
        bool found = false;
        cJSON *c;
        cJSON_ArrayForEach (c, chans)
        {
            cr_assert (ch_str (c, "id") && ch_str (c, "name") && ch_str (c, "status"));
            cr_assert (cJSON_IsBool (cJSON_GetObjectItem (c, "enabled")));
            if (strcmp (ch_str (c, "id"), ids[i]) == 0) {
                found = true;
                if (i == 1)
                    cr_assert_str_eq (ch_str (c, "status"), "connected");
                if (i == 2)
                    cr_assert_str_eq (ch_str (c, "status"), "not_configured");
            }
        }
        cr_assert (found, "channel %s not listed", ids[i]);
    }
    cJSON_Delete (list);
    cr_assert_eq (ch_http (&s_gw, "GET", "/v1/channels", NULL, false, NULL, NULL), 401);
    cr_assert_eq (
        ch_http (&s_gw, "GET", "/v1/channels/nosuch/status", NULL, true, NULL, NULL),
        404);

    cJSON *status = NULL;
    cr_assert_eq (ch_http (&s_gw, "GET", "/status", NULL, true, NULL, &status), 200);
    cJSON *tg =
        cJSON_GetObjectItem (cJSON_GetObjectItem (status, "channels"), "telegram");
    cr_assert_not_null (tg, "/status has no channels.telegram");
    const char *st = cJSON_IsString (tg) ? tg->valuestring : ch_str (tg, "status");
    cr_assert (st && !strcmp (st, "connected"), "/status telegram: %s", st);
    cJSON_Delete (status);

    cJSON *ws = ch_ws_call (&s_gw, "channel.list", NULL, WAIT_MS);
    cr_assert_not_null (ws, "no channel.list reply");
    cJSON *res = cJSON_GetObjectItem (ws, "result");
    char *text = cJSON_PrintUnformatted (ws);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (res, "channels")), 5, "%s",
                  text);
    free (text);
    cJSON_Delete (ws);
    ws = ch_ws_call (&s_gw, "channel.status", "{\"channelId\":\"telegram\"}", WAIT_MS);
    cr_assert_not_null (ws, "no channel.status reply");
    res = cJSON_GetObjectItem (ws, "result");
    text = cJSON_PrintUnformatted (ws);
    cr_assert_str_eq (ch_str (res, "status") ? ch_str (res, "status") : "", "connected",
                      "%s", text);
    free (text);
    cJSON_Delete (ws);
}

//  ---- Webhook mode ------------------------------------------------------------------

static long
s_push (const char *secret, const char *update)
{
    char header[128];
    snprintf (header, sizeof (header), "X-Telegram-Bot-Api-Secret-Token: %s",
              secret ? secret : "");
    const char *headers[] = {header, NULL};
    return ch_http (&s_gw, "POST", "/v1/channels/telegram/webhook", update, false,
                    secret ? headers : NULL, NULL);
}

Test (channels_telegram, webhook_mode_secret)
{
    char config[4096];
    ch_tg_config (
        config, sizeof (config), &s_tg,
        "\"dmPolicy\":\"open\",\"mode\":\"webhook\",\"webhookSecret\":\"s3cret_x\"",
        NULL);
    cr_assert_eq (ch_gw_start (&s_gw, config), 0);
    const char *update =
        "{\"update_id\":700001,\"message\":{\"message_id\":6001,\"from\":{\"id\":614,"
        "\"is_bot\":false,\"first_name\":\"Hook\"},\"chat\":{\"id\":614,\"type\":"
        "\"private\",\"first_name\":\"Hook\"},\"date\":1700000000,\"text\":\"pushed "
        "in\"}}";
    const char *forged =
        "{\"update_id\":700002,\"message\":{\"message_id\":6002,\"from\":{\"id\":614,"
        "\"is_bot\":false,\"first_name\":\"Hook\"},\"chat\":{\"id\":614,\"type\":"
        "\"private\",\"first_name\":\"Hook\"},\"date\":1700000000,\"text\":\"forged\"}}";
    cr_assert_eq (s_push ("wrong_secret", forged), 401);
    cr_assert_eq (s_push (NULL, forged), 401);
    cr_assert_eq (s_push ("", forged), 401);
    cr_assert_eq (s_push ("s3cret_x", update), 200);
    s_expect_echo ("614", 6001, "pushed in");
    cr_assert_eq (s_push ("s3cret_x", update), 200);  //  A re-delivery
    s_assert_quiet ("614", 1);
    cr_assert_eq (ch_tg_count (&s_tg, "614", 6002), 0, "a forged update was answered");
    cr_assert_eq (tg_calls (&s_tg, "getUpdates"), 0, "polled in webhook mode");
}

Test (channels_telegram, webhook_mode_via_setwebhook)
{
    //  The gateway's own port is not known before it starts: take a free
    //  one and give it as the webhook URL.  The gateway registers it with
    //  setWebhook; the stand-in pushes updates to it.
    char extra[512];
    int port = harness_free_port ();
    snprintf (extra, sizeof (extra),
              "\"dmPolicy\":\"open\",\"mode\":\"webhook\",\"webhookSecret\":\"s3cret_x\","
              "\"webhookUrl\":\"http://127.0.0.1:%d/v1/channels/telegram/webhook\"",
              port);
    char config[4096];
    ch_tg_config (config, sizeof (config), &s_tg, extra, NULL);
    memset (&s_gw, 0, sizeof (s_gw));
    harness_tmpdir (s_gw.state, sizeof (s_gw.state));
    snprintf (s_gw.config, sizeof (s_gw.config), "%s/config.json", s_gw.state);
    harness_write (s_gw.config, config);
    const char *args[] = {"serve",    "--port",   "",          "--state-dir",
                          s_gw.state, "--config", s_gw.config, NULL};
    char port_text[16];
    snprintf (port_text, sizeof (port_text), "%d", port);
    args[2] = port_text;
    cr_assert_eq (proc_start (&s_gw.proc, args, NULL), 0);
    char line[512];
    cr_assert_eq (
        proc_wait_line (&s_gw.proc, "listening on http://", 20000, line, sizeof (line)),
        0);
    cr_assert_eq (ch_tg_wait_calls (&s_tg, "setWebhook", 1, WAIT_MS), 0,
                  "setWebhook never called");
    long m = ch_tg_dm (&s_tg, 615, "pushed by telegram");
    s_expect_echo ("615", m, "pushed by telegram");
    s_assert_quiet ("615", 1);
}
