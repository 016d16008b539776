/*  =========================================================================
    test_channels_discord - the Discord channel of the real `clawgate
    serve` against cg_dcstandin: DMs and the shape of a reply (reference,
    nonce, no mentions), split replies, guild channels and guilds with
    mentions and replies to the bot, bots skipped, pairing, allowlist and
    disabled DMs; the gateway's session resumed after a drop, op 7, op 9,
    a zombie connection, close codes and a restart, identified anew when
    it cannot be; fatal closes stop it until enabled; REST 429s (float,
    global), buckets, 403 and 500; TLS with the test CA and with another
    CA's certificate; disable and enable.  The model is the built-in
    local/echo, so a reply's text is the message's (the bot's mention
    taken out).

    Messages meant to be replayed are sent while the gateway has no live
    connection: the stand-in's hello_delay holds the next connection's
    Hello, so what is sent meanwhile can only arrive through the Resume's
    replay (the stand-in says so: "written" false).
    =========================================================================
*/
#include <criterion/criterion.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "channels.h"
#include "discord.h"
#include "harness.h"

#define WAIT_MS 15000     //  Generous: the suite also runs under ASan
#define QUIET_MS 1500     //  How long "nothing more is sent" is watched
#define HEARTBEAT_MS 400  //  The stand-in's heartbeat interval

//  Snowflakes: DM channels, guild channels, guilds, users.
#define DM1 "1100000000000000001"
#define DM2 "1100000000000000002"
#define DM3 "1100000000000000003"
#define CH1 "1200000000000000001"  //  In guild G1, listed by channel id
#define CH2 "1200000000000000002"  //  In guild G1, not listed
#define CH3 "1200000000000000003"  //  In guild G2, listed by guild id
#define CH4 "1200000000000000004"  //  In guild G9, not listed
#define G1 "1300000000000000001"
#define G2 "1300000000000000002"
#define G9 "1300000000000000009"
#define U1 "2000000000000000002"  //  The stand-in's default author
#define U2 "2000000000000000003"
#define U3 "2000000000000000004"
#define BOT2 "2900000000000000001"  //  Another bot

static dc_standin_t s_dc;
static ch_gw_t s_gw;
static char s_dir[256];

static void
s_setup (void)
{
    harness_tmpdir (s_dir, sizeof (s_dir));
}

static void
s_teardown (void)
{
    //  A clean stop exits 0; under ASan a leak or a bad free makes it not.
    if (s_gw.proc.pid > 0)
        cr_expect_eq (ch_gw_stop (&s_gw, SIGTERM), 0, "clawgate serve did not exit 0");
    ch_gw_destroy (&s_gw);
    dc_stop (&s_dc, SIGTERM);
    harness_rmtree (s_dir);
}

TestSuite (channels_discord, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  ---- Helpers -----------------------------------------------------------------------

//  Starts the stand-in (opt may be NULL: the defaults with a short
//  heartbeat), with a state file when state is not NULL.
static void
s_standin (dc_options_t *opt, const char *state)
{
    dc_options_t defaults = {.heartbeat_ms = HEARTBEAT_MS};
    if (!opt)
        opt = &defaults;
    if (!opt->heartbeat_ms)
        opt->heartbeat_ms = HEARTBEAT_MS;
    cr_assert_eq (dc_start (&s_dc, state, opt), 0, "cg_dcstandin did not start");
}

//  The gateway's configuration: the Discord channel on base (NULL: the
//  stand-in's plain API) with extra keys (may be NULL).
static void
s_config (char *buf, size_t cap, const char *base, const char *extra)
{
    snprintf (buf, cap,
              "{\"channels\":{\"discord\":{\"botToken\":\"%s\",\"baseUrl\":\"%s\","
              "\"pollTimeoutS\":2,\"retryMinMs\":100,\"retryMaxMs\":1000%s%s}}}",
              s_dc.token, base ? base : s_dc.api, extra ? "," : "", extra ? extra : "");
}

//  Starts the gateway on the stand-in's API at base (NULL: the plain one)
//  with extra keys and waits until the channel is connected.
static void
s_start_on (const char *base, const char *extra)
{
    char config[4096];
    s_config (config, sizeof (config), base, extra);
    cr_assert_eq (ch_gw_start (&s_gw, config), 0, "clawgate serve did not start");
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "connected", WAIT_MS), 0,
                  "discord never connected");
}

//  The same on the plain API.
static void
s_start (const char *extra)
{
    s_start_on (NULL, extra);
}

//  Milliseconds on the wall clock (the stand-in's at_ms are).
static long long
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  POST /control/message: a message in channel (guild NULL: a DM) from
//  author (NULL: U1) with content, plus the fields of extra (a JSON object
//  text, may be NULL).  Its id into id (32 bytes); *written (may be NULL)
//  whether it went out on a live connection.  Returns its s (0: held for
//  the next session).
static long
s_post (const char *channel, const char *guild, const char *author, const char *content,
        const char *extra, char *id, bool *written)
{
    cJSON *body = extra ? cJSON_Parse (extra) : cJSON_CreateObject ();
    cr_assert_not_null (body, "bad extra fields: %s", extra);
    cJSON_AddStringToObject (body, "channel_id", channel);
    if (guild)
        cJSON_AddStringToObject (body, "guild_id", guild);
    cJSON_AddStringToObject (body, "author_id", author ? author : U1);
    cJSON_AddStringToObject (body, "content", content);
    char *json = cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    char url[256];
    snprintf (url, sizeof (url), "%s/control/message", s_dc.base);
    const char *headers[] = {"Content-Type: application/json", NULL};
    http_resp_t r;
    http_do ("POST", url, headers, json, strlen (json), &r);
    cJSON_free (json);
    cJSON *root = r.status == 200 ? cJSON_Parse (r.body) : NULL;
    http_resp_free (&r);
    cr_assert_not_null (root, "the stand-in refused a message");
    snprintf (id, 32, "%s", ch_str (root, "id") ? ch_str (root, "id") : "");
    if (written)
        *written = cJSON_IsTrue (cJSON_GetObjectItem (root, "written"));
    long s = (long) cJSON_GetNumberValue (cJSON_GetObjectItem (root, "s"));
    cJSON_Delete (root);
    return s;
}

//  A DM from U1 in channel; its id into id.
static void
s_dm (const char *channel, const char *text, char *id)
{
    s_post (channel, NULL, NULL, text, NULL, id, NULL);
}

//  A DM sent while the gateway has no live connection: the stand-in must
//  keep it for a replay (or the next session).
static void
s_dm_offline (const char *channel, const char *text, char *id)
{
    bool written = true;
    s_post (channel, NULL, NULL, text, NULL, id, &written);
    cr_assert (!written, "'%s' went out on a live connection", text);
}

//  The messages sent to channel (NULL: any).  Caller owns return value.
static cJSON *
s_sent (const char *channel)
{
    cJSON *root = dc_sent (&s_dc, channel);
    cr_assert_not_null (root, "no answer from /control/sent");
    return root;
}

//  How many messages went to channel (NULL: any) replying to ref (NULL:
//  any).
static int
s_count (const char *channel, const char *ref)
{
    cJSON *root = s_sent (channel);
    int n = 0;
    cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItem (root, "messages"))
    {
        const char *r = ch_str (m, "message_reference");
        if (!ref || (r && strcmp (r, ref) == 0))
            n++;
    }
    cJSON_Delete (root);
    return n;
}

//  Waits for the message sent to channel replying to ref.  Caller owns
//  return value (a copy of the stand-in's sent-log entry).
static cJSON *
s_wait_reply (const char *channel, const char *ref)
{
    long long deadline = harness_now_ms () + WAIT_MS;
    while (true) {
        cJSON *root = s_sent (channel);
        cJSON *found = NULL, *m;
        cJSON_ArrayForEach (m, cJSON_GetObjectItem (root, "messages"))
        {
            const char *r = ch_str (m, "message_reference");
            if (r && strcmp (r, ref) == 0) {
                found = cJSON_Duplicate (m, true);
                break;
            }
        }
        cJSON_Delete (root);
        if (found)
            return found;
        cr_assert_lt (harness_now_ms (), deadline, "no reply in %s to message %s",
                      channel, ref);
        usleep (50000);
    }
}

//  Waits for the echo of message ref in channel and checks its text;
//  returns the wall-clock time the stand-in took it.
static long long
s_expect_echo (const char *channel, const char *ref, const char *text)
{
    cJSON *m = s_wait_reply (channel, ref);
    cr_assert_str_eq (ch_str (m, "content"), text, "reply to %s: '%s'", ref,
                      ch_str (m, "content"));
    long long at = (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (m, "at_ms"));
    cJSON_Delete (m);
    return at;
}

//  Asserts that, over QUIET_MS, channel (NULL: any) holds have messages.
static void
s_assert_quiet (const char *channel, int have)
{
    usleep (QUIET_MS * 1000);
    int now = s_count (channel, NULL);
    cr_assert_eq (now, have, "expected %d messages to %s, got %d", have,
                  channel ? channel : "any channel", now);
}

//  Asserts that each of the ids (NULL ended) got exactly one reply.
static void
s_assert_once (const char *channel, const char *const ids[])
{
    for (int i = 0; ids[i]; i++) {
        int n = s_count (channel, ids[i]);
        cr_assert_eq (n, 1, "message %s answered %d times", ids[i], n);
    }
}

static long
s_calls (const char *name)
{
    long n = dc_call (&s_dc, name);
    cr_assert_geq (n, 0, "no answer from /control/calls");
    return n;
}

static void
s_fault (const char *json)
{
    cr_assert_geq (dc_fault (&s_dc, json), 0, "the stand-in refused fault %s", json);
}

//  A gateway fault that acts on the live connection.
static void
s_fault_live (const char *json)
{
    cr_assert_eq (dc_fault (&s_dc, json), 1, "fault %s touched no connection", json);
}

//  The channel's lastError ("" if none), into buf.
static const char *
s_last_error (char *buf, size_t cap)
{
    cJSON *st = ch_status (&s_gw, "discord");
    const char *e = ch_str (st, "lastError");
    snprintf (buf, cap, "%s", e ? e : "");
    cJSON_Delete (st);
    return buf;
}

//  Waits until the stand-in has no gateway connection open.
static void
s_wait_no_connection (void)
{
    long long deadline = harness_now_ms () + WAIT_MS;
    while (s_calls ("connections") > 0 && harness_now_ms () < deadline)
        usleep (50000);
    cr_assert_eq (s_calls ("connections"), 0, "a gateway connection stayed open");
}

static void
s_post_api (const char *path)
{
    cJSON *r = NULL;
    cr_assert_eq (ch_http (&s_gw, "POST", path, NULL, true, NULL, &r), 200, "POST %s",
                  path);
    cJSON_Delete (r);
}

//  Text of n characters: words of varying length, the last one 'z'.
static char *
s_long_text (size_t n)
{
    char *text = malloc (n + 1);
    size_t len = 0;
    for (int i = 0; len < n; i++) {
        char word[32];
        int k = snprintf (word, sizeof (word), "w%d%s", i, i % 7 ? " " : "abcdefg ");
        for (int j = 0; j < k && len < n; j++)
            text[len++] = word[j];
    }
    text[n - 1] = 'z';
    text[n] = 0;
    return text;
}

//  ---- DMs and replies ---------------------------------------------------------------

Test (channels_discord, dm_reply_shape_split_and_bots_skipped)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");

    //  The status: connected as the stand-in's bot, with a session.
    cJSON *st = ch_status (&s_gw, "discord");
    cr_assert_str_eq (ch_str (st, "status"), "connected");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (st, "resumable")), "not resumable");
    cJSON *bot = cJSON_GetObjectItem (st, "bot");
    cr_assert (ch_str (bot, "id") && !strcmp (ch_str (bot, "id"), DC_BOT_ID),
               "bot.id: %s", ch_str (bot, "id") ? ch_str (bot, "id") : "(none)");
    cJSON_Delete (st);

    //  Identify asked for 37377, over ?v=10&encoding=json.
    cJSON *rec = dc_received (&s_dc);
    cJSON *f, *identify = NULL;
    cJSON_ArrayForEach (f, cJSON_GetObjectItem (rec, "frames"))
    {
        cJSON *frame = cJSON_GetObjectItem (f, "frame");
        if (cJSON_GetNumberValue (cJSON_GetObjectItem (frame, "op")) == 2)
            identify = cJSON_GetObjectItem (frame, "d");
    }
    cr_assert_not_null (identify, "no Identify received");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (identify, "intents")),
                  DC_INTENTS);
    cJSON_Delete (rec);
    cr_assert_eq (s_calls ("identify"), 1);
    cJSON *calls = dc_calls (&s_dc);
    const char *query = ch_str (calls, "last_query");
    cr_assert (query && strstr (query, "v=10") && strstr (query, "encoding=json"),
               "query: %s", query ? query : "(none)");
    cJSON_Delete (calls);

    //  A DM: answered in its channel, replying to it, with a nonce it
    //  enforces and no mentions allowed.
    char m1[32];
    s_dm (DM1, "hello over dm", m1);
    cJSON *r = s_wait_reply (DM1, m1);
    cr_assert_str_eq (ch_str (r, "content"), "hello over dm");
    const char *nonce = ch_str (r, "nonce");
    cr_assert (nonce && *nonce, "no nonce");
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (r, "enforce_nonce")),
               "enforce_nonce not true");
    cJSON *parse =
        cJSON_GetObjectItem (cJSON_GetObjectItem (r, "allowed_mentions"), "parse");
    cr_assert (cJSON_IsArray (parse) && cJSON_GetArraySize (parse) == 0,
               "allowed_mentions.parse is not an empty list");
    char first_nonce[64];
    snprintf (first_nonce, sizeof (first_nonce), "%s", nonce);
    cJSON_Delete (r);

    //  Another bot's message and the bot's own: not answered.
    char skip1[32], skip2[32];
    s_post (DM1, NULL, BOT2, "from another bot", "{\"bot\":true}", skip1, NULL);
    s_post (DM1, NULL, DC_BOT_ID, "from myself", NULL, skip2, NULL);

    //  4,500 characters: three parts of at most 2000, in order, only the
    //  first replying to the message, each with its own nonce.
    char *text = s_long_text (4500);
    char m2[32];
    s_dm (DM1, text, m2);
    cr_assert_eq (dc_wait_sent (&s_dc, DM1, 4, WAIT_MS), 0, "fewer than 3 parts");
    s_assert_quiet (DM1, 4);
    cJSON *sent = s_sent (DM1);
    cJSON *msgs = cJSON_GetObjectItem (sent, "messages");
    char *joined = calloc (1, 9000), *want = calloc (1, 9000);
    size_t jl = 0, wl = 0;
    for (const char *c = text; *c; c++)
        if (!isspace ((unsigned char) *c))
            want[wl++] = *c;
    double last_seq =
        cJSON_GetNumberValue (cJSON_GetObjectItem (cJSON_GetArrayItem (msgs, 0), "seq"));
    for (int i = 1; i < 4; i++) {
        cJSON *p = cJSON_GetArrayItem (msgs, i);
        const char *t = ch_str (p, "content");
        cr_assert (t && strlen (t) <= 2000, "part %d has %zu chars", i, strlen (t));
        double seq = cJSON_GetNumberValue (cJSON_GetObjectItem (p, "seq"));
        cr_assert_gt (seq, last_seq);
        last_seq = seq;
        const char *ref = ch_str (p, "message_reference");
        if (i == 1)
            cr_assert (ref && !strcmp (ref, m2), "the first part replies to %s",
                       ref ? ref : "nothing");
        else
            cr_assert_null (ref, "part %d replies to %s", i, ref);
        cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (p, "enforce_nonce")));
        const char *n = ch_str (p, "nonce");
        cr_assert (n && strcmp (n, first_nonce) != 0, "part %d nonce %s", i, n);
        for (int k = 1; k < i; k++)
            cr_assert_str_neq (n, ch_str (cJSON_GetArrayItem (msgs, k), "nonce"),
                               "parts %d and %d share a nonce", k, i);
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
    cr_assert_eq (s_count (DM1, skip1) + s_count (DM1, skip2), 0, "a bot was answered");
}

//  Writes the stand-in's state file with two messages held for the next
//  session, each replying to a message in CH1: to one of the bot's (in
//  reply_bot) and to another user's (in reply_user), neither mentioning
//  the bot.  Discord sends referenced_message with a reply; the control
//  API builds only message_reference, so these come through the state.
//  One held message of the seed, replying to message ref of author
//  (name, and bot_field: "" or ",\"bot\":true").
#define SEED_FORMAT                                                                      \
    "{\"type\":19,\"tts\":false,\"pinned\":false,\"mentions\":[],"                       \
    "\"mention_roles\":[],\"mention_everyone\":false,\"attachments\":[],"                \
    "\"embeds\":[],\"components\":[],\"flags\":0,\"edited_timestamp\":null,"             \
    "\"timestamp\":\"2026-12-03T10:00:00.000000+00:00\","                                \
    "\"author\":{\"id\":\"" U2 "\",\"username\":\"ann\",\"global_name\":\"Ann\","        \
    "\"discriminator\":\"0\",\"avatar\":null},"                                          \
    "\"content\":\"%s\",\"id\":\"%s\",\"channel_id\":\"" CH1 "\","                       \
    "\"guild_id\":\"" G1 "\",\"member\":{\"roles\":[],\"nick\":null,"                    \
    "\"joined_at\":\"2026-01-01T00:00:00+00:00\"},"                                      \
    "\"message_reference\":{\"type\":0,\"message_id\":\"%s\",\"channel_id\":\"" CH1      \
    "\",\"guild_id\":\"" G1 "\"},"                                                       \
    "\"referenced_message\":{\"type\":0,\"id\":\"%s\",\"channel_id\":\"" CH1 "\","       \
    "\"content\":\"earlier\",\"mentions\":[],\"author\":{\"id\":\"%s\","                 \
    "\"username\":\"%s\",\"discriminator\":\"0\",\"avatar\":null%s}}}"

//  Writes the stand-in's state file with two messages held for the next
//  session, each replying to a message in CH1: to one of the bot's (id
//  REPLY_BOT) and to another user's (REPLY_USER), neither mentioning the
//  bot.  Discord sends referenced_message with a reply; the control API
//  builds only message_reference, so these come through the state file.
#define REPLY_BOT "1400000000000000001"
#define REPLY_USER "1400000000000000002"
static void
s_seed_replies (const char *state)
{
    char to_bot[2048], to_user[2048], text[4600];
    snprintf (to_bot, sizeof (to_bot), SEED_FORMAT, "replying to the bot", REPLY_BOT,
              "1400000000000000091", "1400000000000000091", DC_BOT_ID, DC_BOT_NAME,
              ",\"bot\":true");
    snprintf (to_user, sizeof (to_user), SEED_FORMAT, "replying to a person", REPLY_USER,
              "1400000000000000092", "1400000000000000092", U3, "bob", "");
    snprintf (text, sizeof (text),
              "{\"last_id\":\"1400000000000000100\",\"session\":{\"id\":\"\","
              "\"valid\":false,\"seq\":0,\"intents\":0,\"events\":[]},"
              "\"pending\":[%s,%s],\"sent\":[]}",
              to_bot, to_user);
    harness_write (state, text);
}

Test (channels_discord, guild_mentions_groups_and_replies_to_the_bot)
{
    char state[300];
    snprintf (state, sizeof (state), "%s/dc.json", s_dir);
    s_seed_replies (state);
    s_standin (NULL, state);
    //  groups: CH1 by its channel id, every channel of G2 by the guild id.
    s_start ("\"groupPolicy\":\"allowlist\",\"groups\":[\"" CH1 "\",\"" G2 "\"]");

    //  The held replies came with READY: the one to the bot is answered.
    s_expect_echo (CH1, REPLY_BOT, "replying to the bot");

    char plain[32], listed[32], in_guild[32], other_channel[32], other_guild[32];
    s_post (CH1, G1, U2, "nobody called you", NULL, plain, NULL);
    s_post (CH2, G1, U2, "wrong channel", "{\"mention_bot\":true}", other_channel, NULL);
    s_post (CH4, G9, U2, "wrong guild", "{\"mention_bot\":true}", other_guild, NULL);
    s_post (CH1, G1, U2, "in the listed channel", "{\"mention_bot\":true}", listed, NULL);
    s_post (CH3, G2, U2, "anywhere in the listed guild",
            "{\"mentions\":[\"" DC_BOT_ID "\"]}", in_guild, NULL);
    //  The mention is taken out of the text.
    s_expect_echo (CH1, listed, "in the listed channel");
    s_expect_echo (CH3, in_guild, "anywhere in the listed guild");
    s_assert_quiet (NULL, 3);
    cr_assert_eq (s_count (CH1, REPLY_USER), 0, "a reply to a person answered");
    cr_assert_eq (s_count (CH1, plain), 0, "answered without a mention");
    cr_assert_eq (s_count (CH2, NULL), 0, "answered in a channel not listed");
    cr_assert_eq (s_count (CH4, NULL), 0, "answered in a guild not listed");
}

//  ---- Access ------------------------------------------------------------------------

Test (channels_discord, pairing_code_approve_then_answered)
{
    s_standin (NULL, NULL);
    s_start (NULL);  //  dmPolicy defaults to pairing
    char m1[32];
    s_dm (DM2, "let me in", m1);
    cr_assert_eq (dc_wait_sent (&s_dc, DM2, 1, WAIT_MS), 0, "no pairing notice");
    cJSON *sent = s_sent (DM2);
    const char *notice = ch_str (
        cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0), "content");
    char code[9];
    cr_assert (ch_code_in (notice, code), "no valid code in '%s'", notice);
    cr_assert (strstr (notice, U1), "the notice does not name the user id: %s", notice);
    cr_assert (!strstr (notice, "let me in"), "the message was run");
    cJSON_Delete (sent);

    char path[128];
    snprintf (path, sizeof (path), "/v1/channels/discord/pairing/%s", code);
    cJSON *ok = NULL;
    cr_assert_eq (ch_http (&s_gw, "POST", path, NULL, true, NULL, &ok), 200);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (ok, "approved")));
    cr_assert_str_eq (ch_str (ok, "senderId"), U1);
    cJSON_Delete (ok);

    char m2[32];
    s_dm (DM2, "now you know me", m2);
    s_expect_echo (DM2, m2, "now you know me");
    s_assert_quiet (DM2, 2);
    //  The message before the approval got the notice only (which
    //  replies to it), and was not run afterwards.
    cr_assert_eq (s_count (DM2, m1), 1, "the message before the approval was run");
}

Test (channels_discord, allowlist_and_groups_disabled)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"allowlist\",\"allowFrom\":[\"discord:" U1 "\",\"" U2
             "\"],\"groupPolicy\":\"disabled\",\"groups\":[\"" CH1 "\"]");
    char stranger[32], group[32], a[32], b[32];
    s_post (DM3, NULL, U3, "not on the list", NULL, stranger, NULL);
    s_post (CH1, G1, U1, "groups are off", "{\"mention_bot\":true}", group, NULL);
    s_post (DM1, NULL, U1, "listed as discord:id", NULL, a, NULL);
    s_post (DM2, NULL, U2, "listed by id", NULL, b, NULL);
    //  Messages are taken in order: once these are answered, the two
    //  before them were turned away (no reply, no pairing code).
    s_expect_echo (DM1, a, "listed as discord:id");
    s_expect_echo (DM2, b, "listed by id");
    s_assert_quiet (NULL, 2);
}

Test (channels_discord, dm_disabled_groups_open_without_mention)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"disabled\",\"allowFrom\":[\"" U1
             "\"],\"groupPolicy\":\"open\",\"requireMention\":false");
    char dm[32], stranger[32], group[32];
    s_post (DM1, NULL, U1, "even me", NULL, dm, NULL);
    s_post (DM3, NULL, U3, "anyone there", NULL, stranger, NULL);
    s_post (CH4, G9, U2, "any group, no mention needed", NULL, group, NULL);
    s_expect_echo (CH4, group, "any group, no mention needed");
    s_assert_quiet (NULL, 1);
}

//  ---- Resuming ----------------------------------------------------------------------

//  Holds the Hello of the next connection, so what is sent until then can
//  only come through the replay.
static void
s_hold_hello (void)
{
    s_fault ("{\"kind\":\"hello_delay\",\"ms\":1200,\"count\":1}");
}

//  Waits until the stand-in's counter name reaches n, then checks it
//  stays there (not more).
static void
s_wait_exactly (const char *name, long n)
{
    cr_assert_eq (dc_wait_call (&s_dc, name, n, WAIT_MS), 0, "%s never reached %ld (%ld)",
                  name, n, s_calls (name));
    cr_assert_eq (s_calls (name), n, "%s: %ld, want %ld", name, s_calls (name), n);
}

Test (channels_discord, drop_resumed_and_missed_messages_replayed)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    char m1[32], m2[32], m3[32];
    s_dm (DM1, "before the drop", m1);
    s_expect_echo (DM1, m1, "before the drop");

    s_hold_hello ();
    s_fault_live ("{\"kind\":\"drop\"}");
    s_dm_offline (DM1, "while you were gone", m2);
    s_dm_offline (DM1, "and this too", m3);
    long long first = s_expect_echo (DM1, m2, "while you were gone");
    long long second = s_expect_echo (DM1, m3, "and this too");
    cr_assert_leq (first, second, "the replayed messages were answered out of order");

    s_wait_exactly ("resume", 1);
    cr_assert_eq (s_calls ("resume_on_resume"), 1, "the Resume did not go to /resume");
    cr_assert_eq (s_calls ("identify"), 1, "identified anew instead of resuming");
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "connected", WAIT_MS), 0);
    cr_assert_geq (ch_status_num (&s_gw, "discord", "reconnects"), 1);
    s_assert_quiet (DM1, 3);
    const char *ids[] = {m1, m2, m3, NULL};
    s_assert_once (DM1, ids);
}

Test (channels_discord, op7_reconnect_and_op9_resumable_resumed)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    char m1[32], m2[32], m3[32], m4[32];

    //  op 7 Reconnect.  The old connection ends, and the new one waits
    //  for its Hello.
    long total = s_calls ("connections_total");
    s_hold_hello ();
    s_fault_live ("{\"kind\":\"reconnect\"}");
    long long deadline = harness_now_ms () + WAIT_MS;
    while ((s_calls ("connections_total") == total || s_calls ("connections") > 1)
           && harness_now_ms () < deadline)
        usleep (20000);
    cr_assert_eq (s_calls ("connections"), 1, "the old connection did not end");
    s_dm_offline (DM1, "after op 7", m1);
    s_dm_offline (DM2, "after op 7, elsewhere", m2);
    s_expect_echo (DM1, m1, "after op 7");
    s_expect_echo (DM2, m2, "after op 7, elsewhere");
    s_wait_exactly ("resume", 1);
    cr_assert_eq (s_calls ("identify"), 1);

    //  op 9 Invalid Session, resumable.
    s_hold_hello ();
    s_fault_live ("{\"kind\":\"invalid_session\",\"resumable\":true}");
    s_dm_offline (DM1, "after op 9", m3);
    s_dm_offline (DM1, "after op 9 again", m4);
    s_expect_echo (DM1, m3, "after op 9");
    s_expect_echo (DM1, m4, "after op 9 again");
    s_wait_exactly ("resume", 2);
    cr_assert_eq (s_calls ("resume_on_resume"), 2);
    cr_assert_eq (s_calls ("identify"), 1, "identified anew after a resumable op 9");
    s_assert_quiet (NULL, 4);
    const char *ids1[] = {m1, m3, m4, NULL}, *ids2[] = {m2, NULL};
    s_assert_once (DM1, ids1);
    s_assert_once (DM2, ids2);
}

Test (channels_discord, op9_not_resumable_and_expired_session_identify_anew)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    char m1[32], m2[32], m3[32];

    //  op 9 false: a new session; what is sent until its READY is held
    //  for it.
    s_fault_live ("{\"kind\":\"invalid_session\",\"resumable\":false}");
    s_dm_offline (DM1, "after op 9 false", m1);
    s_expect_echo (DM1, m1, "after op 9 false");
    s_wait_exactly ("identify", 2);
    cr_assert_eq (s_calls ("resume"), 0, "a Resume was tried after op 9 false");

    //  The session expires while the connection is down: the Resume gets
    //  op 9 false, then Identify.
    s_fault ("{\"kind\":\"expire_session\"}");
    s_fault_live ("{\"kind\":\"drop\"}");
    s_dm_offline (DM1, "after the session expired", m2);
    s_expect_echo (DM1, m2, "after the session expired");
    s_wait_exactly ("identify", 3);
    cr_assert_eq (s_calls ("resume"), 1, "no Resume tried after the drop");
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "connected", WAIT_MS), 0);
    s_dm (DM1, "on the new session", m3);
    s_expect_echo (DM1, m3, "on the new session");
    s_assert_quiet (DM1, 3);
}

Test (channels_discord, zombie_connection_dropped_and_resumed)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    char m1[32], m2[32];
    s_dm (DM1, "before the zombie", m1);
    s_expect_echo (DM1, m1, "before the zombie");
    long conns = s_calls ("connections_total");

    long long t0 = harness_now_ms ();
    s_fault ("{\"kind\":\"zombie\",\"count\":1}");
    cr_assert_eq (dc_wait_call (&s_dc, "resume", 1, WAIT_MS), 0, "never resumed");
    long long took = harness_now_ms () - t0;
    //  The unACKed beat, then the next one finds it so: two intervals,
    //  and some slack for the reconnection.
    cr_assert_leq (took, 5 * HEARTBEAT_MS + 1500, "resumed %lld ms after", took);
    cr_assert_geq (s_calls ("acks_skipped"), 1);
    cr_assert_gt (s_calls ("connections_total"), conns, "the connection was not dropped");
    cr_assert_eq (s_calls ("identify"), 1);
    char err[512];
    cr_assert (strstr (s_last_error (err, sizeof (err)), "heartbeat"), "lastError: %s",
               err);
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "connected", WAIT_MS), 0);
    s_dm (DM1, "after the zombie", m2);
    s_expect_echo (DM1, m2, "after the zombie");
    s_assert_quiet (DM1, 2);
}

Test (channels_discord, no_ready_connection_replaced)
{
    //  Identify taken, READY never sent (heartbeats still ACKed): after
    //  pollTimeoutS (2 s) the connection is given up and a new one made.
    s_standin (NULL, NULL);
    s_fault ("{\"kind\":\"no_ready\",\"count\":1}");
    long long t0 = harness_now_ms ();
    s_start ("\"dmPolicy\":\"open\"");
    long long took = harness_now_ms () - t0;
    cr_assert_geq (took, 1500, "connected after %lld ms: READY was not waited for", took);
    cr_assert_eq (s_calls ("identify"), 2);
    cr_assert_geq (s_calls ("connections_total"), 2);
    char err[512];
    cr_assert (strstr (s_last_error (err, sizeof (err)), "no READY"), "lastError: %s",
               err);
    char m1[32];
    s_dm (DM1, "after no READY", m1);
    s_expect_echo (DM1, m1, "after no READY");
}

Test (channels_discord, close_codes_resume_or_identify)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    char m1[32], m2[32], m3[32];

    s_hold_hello ();
    s_fault_live ("{\"kind\":\"close\",\"code\":4000,\"reason\":\"Unknown error.\"}");
    s_dm_offline (DM1, "after 4000", m1);
    s_expect_echo (DM1, m1, "after 4000");
    s_wait_exactly ("resume", 1);
    cr_assert_eq (s_calls ("identify"), 1, "identified anew after 4000");

    s_fault_live ("{\"kind\":\"close\",\"code\":4009,\"reason\":\"Session timed out.\"}");
    s_dm_offline (DM1, "after 4009", m2);
    s_expect_echo (DM1, m2, "after 4009");
    s_wait_exactly ("identify", 2);
    cr_assert_eq (s_calls ("resume"), 1, "a Resume was tried after 4009");

    s_fault_live ("{\"kind\":\"close\",\"code\":4007,\"reason\":\"Invalid seq.\"}");
    s_dm_offline (DM1, "after 4007", m3);
    s_expect_echo (DM1, m3, "after 4007");
    s_wait_exactly ("identify", 3);
    cr_assert_eq (s_calls ("resume"), 1, "a Resume was tried after 4007");
    s_assert_quiet (DM1, 3);
}

//  After a fatal close: status error naming why, and nothing tried over
//  a while; then disable and enable try again.
static void
s_fatal_close (int code, const char *why)
{
    char fault[128];
    snprintf (fault, sizeof (fault), "{\"kind\":\"close\",\"code\":%d}", code);
    s_fault_live (fault);
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "error", WAIT_MS), 0,
                  "status never went error after %d", code);
    char err[512];
    cr_assert (strstr (s_last_error (err, sizeof (err)), why), "lastError after %d: %s",
               code, err);
    long conns = s_calls ("connections_total"), ids = s_calls ("identify");
    usleep (2000 * 1000);
    cr_assert_eq (s_calls ("connections_total"), conns, "reconnected after %d", code);
    cr_assert_eq (s_calls ("identify"), ids, "identified after %d", code);
    cr_assert_eq (s_calls ("connections"), 0);
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "error", 0), 0,
                  "status left error by itself");

    s_post_api ("/v1/channels/discord/disable");
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "disabled", WAIT_MS), 0);
    s_post_api ("/v1/channels/discord/enable");
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "connected", WAIT_MS), 0,
                  "not connected again after enable (after %d)", code);
    cr_assert_gt (s_calls ("connections_total"), conns);
}

Test (channels_discord, fatal_closes_stop_until_enabled)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    s_fatal_close (4004, "authentication");
    s_fatal_close (4014, "intents");
    char m[32];
    s_dm (DM1, "working again", m);
    s_expect_echo (DM1, m, "working again");
}

//  ---- REST --------------------------------------------------------------------------

//  The 429s the gateway got on messages (it logs each wait).
static int
s_logged_429s (void)
{
    static char text[1 << 20];
    proc_stderr (&s_gw.proc, text, sizeof (text));
    int n = 0;
    for (const char *p = text; (p = strstr (p, "messages: HTTP 429")); p++)
        n++;
    return n;
}

Test (channels_discord, rest_429_float_and_global_retry_after)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    char m1[32], m2[32], m3[32];

    //  retry_after 0.8 (a float): the reply waits for it, and goes once.
    s_fault ("{\"kind\":\"429\",\"route\":\"messages\",\"retry_after\":0.8,\"count\":1}");
    long long t0 = s_wall_ms ();
    s_dm (DM1, "not so fast", m1);
    long long took = s_expect_echo (DM1, m1, "not so fast") - t0;
    cr_assert_geq (took, 750, "the reply came %lld ms after, before retry_after", took);
    cr_assert_eq (s_calls ("rest_429"), 1);
    //  The gateway logs the wait (rest_bucket_waited_not_hit counts these).
    cr_assert_eq (s_logged_429s (), 1);

    //  Global: every channel waits.
    s_fault ("{\"kind\":\"429\",\"route\":\"messages\",\"retry_after\":0.8,"
             "\"global\":true,\"channel_id\":\"" DM2 "\",\"count\":1}");
    t0 = s_wall_ms ();
    s_dm (DM2, "everyone slow down", m2);
    cr_assert_eq (dc_wait_call (&s_dc, "rest_429", 2, WAIT_MS), 0, "no global 429");
    long long t429 = s_wall_ms ();
    s_dm (DM3, "me too", m3);
    took = s_expect_echo (DM2, m2, "everyone slow down") - t0;
    cr_assert_geq (took, 750, "the reply came %lld ms after, before retry_after", took);
    took = s_expect_echo (DM3, m3, "me too") - t429;
    cr_assert_geq (took, 500, "another channel's reply came %lld ms after a global 429",
                   took);
    s_assert_quiet (NULL, 3);
    cr_assert_eq (s_calls ("rest_429"), 2);
}

Test (channels_discord, rest_bucket_waited_not_hit)
{
    dc_options_t opt = {.bucket_limit = 2, .bucket_window_ms = 1000};
    s_standin (&opt, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    char ids[5][32];
    for (int i = 0; i < 5; i++) {
        char text[32];
        snprintf (text, sizeof (text), "burst %d", i);
        s_dm (DM1, text, ids[i]);
    }
    cr_assert_eq (dc_wait_sent (&s_dc, DM1, 5, WAIT_MS), 0, "not all 5 delivered");
    cJSON *sent = s_sent (DM1);
    cJSON *msgs = cJSON_GetObjectItem (sent, "messages");
    cr_assert_eq (cJSON_GetArraySize (msgs), 5);
    //  Two per window of 1 s: the fifth goes in the third window.
    double spread =
        cJSON_GetNumberValue (cJSON_GetObjectItem (cJSON_GetArrayItem (msgs, 4), "at_ms"))
        - cJSON_GetNumberValue (
            cJSON_GetObjectItem (cJSON_GetArrayItem (msgs, 0), "at_ms"));
    cr_assert_geq (spread, 1500, "5 replies within %.0f ms: the bucket did not hold",
                   spread);
    for (int i = 0; i < 5; i++) {
        cJSON *m = cJSON_GetArrayItem (msgs, i);
        char text[32];
        snprintf (text, sizeof (text), "burst %d", i);
        cr_assert_str_eq (ch_str (m, "content"), text, "reply %d out of order", i);
        cr_assert_str_eq (ch_str (m, "message_reference"), ids[i]);
    }
    cJSON_Delete (sent);
    //  Remaining 0 and Reset-After were waited on: at most one call refused
    //  (the stand-in also 429s typing, which is not waited on).
    int refused = s_logged_429s ();
    cr_assert_leq (refused, 1, "%d sends got 429", refused);
    s_assert_quiet (DM1, 5);
}

Test (channels_discord, rest_403_given_up_500_retried)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    long failed = ch_status_num (&s_gw, "discord", "failed");
    s_fault ("{\"kind\":\"403\",\"route\":\"messages\",\"channel_id\":\"" DM2
             "\",\"count\":1}");
    s_fault ("{\"kind\":\"500\",\"route\":\"messages\",\"channel_id\":\"" DM3
             "\",\"count\":1}");
    char m1[32], m2[32];
    s_dm (DM2, "you cannot answer", m1);
    s_dm (DM3, "answer after a 500", m2);
    s_expect_echo (DM3, m2, "answer after a 500");
    long long deadline = harness_now_ms () + WAIT_MS;
    while (ch_status_num (&s_gw, "discord", "failed") <= failed
           && harness_now_ms () < deadline)
        usleep (50000);
    cr_assert_eq (ch_status_num (&s_gw, "discord", "failed"), failed + 1,
                  "the 403 was not given up");
    char err[512];
    s_last_error (err, sizeof (err));
    cr_assert (strstr (err, "403") && strstr (err, "50001") && strstr (err, DM2),
               "lastError: %s", err);
    //  Not retried: a retry would have gone through (one 403 only).
    s_assert_quiet (DM2, 0);
    cr_assert_eq (s_count (DM3, NULL), 1);
    cr_assert_eq (ch_status_num (&s_gw, "discord", "failed"), failed + 1);
}

//  ---- Restart, disable and enable ---------------------------------------------------

Test (channels_discord, restart_resumes_stored_session)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    char m1[32], m2[32], m3[32];
    s_dm (DM1, "before the restart", m1);
    s_expect_echo (DM1, m1, "before the restart");

    cr_assert_eq (ch_gw_stop (&s_gw, SIGTERM), 0, "clawgate serve did not exit 0");
    s_wait_no_connection ();
    s_dm_offline (DM1, "while you were down", m2);
    s_dm_offline (DM2, "me as well", m3);
    cr_assert_eq (ch_gw_restart (&s_gw), 0, "clawgate serve did not start again");
    s_expect_echo (DM1, m2, "while you were down");
    s_expect_echo (DM2, m3, "me as well");
    s_wait_exactly ("resume", 1);
    cr_assert_eq (s_calls ("identify"), 1, "identified anew after a restart");
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "connected", WAIT_MS), 0);
    s_assert_quiet (NULL, 3);
    const char *ids[] = {m1, m2, NULL};
    s_assert_once (DM1, ids);
}

Test (channels_discord, disable_closes_enable_resumes)
{
    s_standin (NULL, NULL);
    s_start ("\"dmPolicy\":\"open\"");
    char m1[32], m2[32];
    s_dm (DM1, "while enabled", m1);
    s_expect_echo (DM1, m1, "while enabled");

    s_post_api ("/v1/channels/discord/disable");
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "disabled", WAIT_MS), 0);
    s_wait_no_connection ();
    s_dm_offline (DM1, "while disabled", m2);
    s_assert_quiet (DM1, 1);
    cr_assert_eq (s_calls ("connections"), 0, "connected while disabled");

    s_post_api ("/v1/channels/discord/enable");
    cr_assert_eq (ch_wait_status (&s_gw, "discord", "connected", WAIT_MS), 0);
    s_expect_echo (DM1, m2, "while disabled");
    s_wait_exactly ("resume", 1);
    cr_assert_eq (s_calls ("identify"), 1, "identified anew after enable");
    s_assert_quiet (DM1, 2);
}

//  ---- TLS ---------------------------------------------------------------------------

//  The stand-in with TLS (certificates in s_dir/tls); the CA's path into
//  ca.
static void
s_standin_tls (char *ca, size_t cap)
{
    char dir[300];
    snprintf (dir, sizeof (dir), "%s/tls", s_dir);
    cr_assert_eq (mkdir (dir, 0700), 0);
    cr_assert_eq (dc_make_certs (dir, ca, cap), 0, "dc_make_certs failed");
    dc_options_t opt = {.tls_dir = dir};
    s_standin (&opt, NULL);
    cr_assert_gt (s_dc.tls_port, 0);
}

Test (channels_discord, tls_with_the_test_ca)
{
    char ca[400];
    s_standin_tls (ca, sizeof (ca));
    //  The gateway inherits it: REST (on the TLS port) and the WebSocket
    //  (wss://, which /gateway/bot answers) trust the test CA.
    setenv ("SSL_CERT_FILE", ca, 1);
    s_start_on (s_dc.api_tls, "\"dmPolicy\":\"open\"");
    char m[32];
    s_dm (DM1, "over tls", m);
    s_expect_echo (DM1, m, "over tls");
    cr_assert_eq (s_calls ("identify"), 1);
}

//  Watches the channel for a while: never connected, lastError names the
//  certificate, no Identify.
static void
s_assert_untrusted (const char *what)
{
    long long deadline = harness_now_ms () + 2500;
    while (harness_now_ms () < deadline) {
        cr_assert_neq (ch_wait_status (&s_gw, "discord", "connected", 0), 0,
                       "%s: connected to a server it cannot trust", what);
        usleep (100000);
    }
    char err[512];
    s_last_error (err, sizeof (err));
    cr_assert (strcasestr (err, "certificate"), "%s: lastError: %s", what, err);
    cr_assert_eq (s_calls ("identify"), 0, "%s: identified", what);
}

Test (channels_discord, tls_certificate_of_another_ca_refused)
{
    char ca[400], other[400], dir[300];
    s_standin_tls (ca, sizeof (ca));
    snprintf (dir, sizeof (dir), "%s/other", s_dir);
    cr_assert_eq (mkdir (dir, 0700), 0);
    cr_assert_eq (dc_make_certs (dir, other, sizeof (other)), 0);
    setenv ("SSL_CERT_FILE", other, 1);
    //  REST on the plain port: the WebSocket's TLS refuses the server.
    char config[4096];
    s_config (config, sizeof (config), NULL, "\"dmPolicy\":\"open\"");
    cr_assert_eq (ch_gw_start (&s_gw, config), 0, "clawgate serve did not start");
    s_assert_untrusted ("wss");
    cr_assert_gt (s_calls ("rest_calls"), 0, "GET /gateway/bot never made");

    //  REST on the TLS port: GET /gateway/bot refuses it.
    cr_assert_eq (ch_gw_stop (&s_gw, SIGTERM), 0, "clawgate serve did not exit 0");
    s_config (config, sizeof (config), s_dc.api_tls, "\"dmPolicy\":\"open\"");
    harness_write (s_gw.config, config);
    cr_assert_eq (dc_reset (&s_dc), 0);
    cr_assert_eq (ch_gw_restart (&s_gw), 0, "clawgate serve did not start again");
    s_assert_untrusted ("https");
    cr_assert_eq (s_calls ("rest_calls"), 0, "a REST call went through");
}
