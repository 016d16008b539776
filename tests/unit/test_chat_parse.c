/*  =========================================================================
    test_chat_parse - what Discord, Slack and WhatsApp send, as the channel
    actor reads it (actors/channels/chat_parse.h), and the small helpers
    their webhooks use: query strings, signatures, Retry-After
    =========================================================================
*/
#include <criterion/criterion.h>
#include <string.h>

#include "chat_parse.h"
#include "json_in.h"

typedef struct {
    int n;
    char key[8][80], chat[8][32], sender[8][32], name[8][64], text[8][128], reply[8][64],
        space[8][32];
    bool group[8], mentioned[8];
    int failed_code;
    char failed_title[64];
} got_t;

static int
s_got (void *arg, const inbound_t *in)
{
    got_t *g = (got_t *) arg;
    int i = g->n++;
    if (i >= 8)
        return 0;
    snprintf (g->key[i], sizeof (g->key[i]), "%s", in->key);
    snprintf (g->chat[i], sizeof (g->chat[i]), "%s", in->chat_id);
    snprintf (g->sender[i], sizeof (g->sender[i]), "%s", in->sender_id);
    snprintf (g->name[i], sizeof (g->name[i]), "%s", in->sender_name);
    snprintf (g->text[i], sizeof (g->text[i]), "%s", in->text);
    snprintf (g->reply[i], sizeof (g->reply[i]), "%s", in->reply_to);
    snprintf (g->space[i], sizeof (g->space[i]), "%s", in->space ? in->space : "");
    g->group[i] = in->group;
    g->mentioned[i] = in->mentioned;
    return 0;
}

static void
s_failed (void *arg, const char *id, const char *to, int code, const char *title)
{
    got_t *g = (got_t *) arg;
    cr_assert_str_eq (id, "wamid.X");
    cr_assert_str_eq (to, "1555");
    g->failed_code = code;
    snprintf (g->failed_title, sizeof (g->failed_title), "%s", title);
}

static cJSON *
s_json (const char *text)
{
    cJSON *root =
        json_in_parse (text, strlen (text), 1 << 20, JSON_IN_OBJECT, NULL, NULL);
    cr_assert_not_null (root, "not JSON: %s", text);
    return root;
}

//  ---- WhatsApp ----------------------------------------------------------------------

Test (chat_parse, whatsapp_batch_statuses_and_skips)
{
    cJSON *root =
        s_json ("{\"object\":\"whatsapp_business_account\",\"entry\":["
                "{\"id\":\"1\",\"changes\":[{\"field\":\"messages\",\"value\":{"
                "\"contacts\":[{\"profile\":{\"name\":\"Ann\"},\"wa_id\":\"1555\"}],"
                "\"messages\":[{\"from\":\"1555\",\"id\":\"wamid.A\",\"type\":\"text\","
                "\"text\":{\"body\":\"first\"}},"
                "{\"from\":\"1555\",\"id\":\"wamid.I\",\"type\":\"image\",\"image\":{}},"
                "{\"from\":\"1555\",\"id\":\"wamid.B\",\"type\":\"text\",\"text\":{"
                "\"body\":\"second\"}}],"
                "\"statuses\":[{\"id\":\"wamid.X\",\"recipient_id\":\"1555\",\"status\":"
                "\"failed\",\"errors\":[{"
                "\"code\":131047,"
                "\"title\":\"Re-engagement message\"}]}]}},"
                "{\"field\":\"account_update\",\"value\":{\"messages\":[{\"from\":\"9\","
                "\"id\":\"x\","
                "\"type\":\"text\",\"text\":{\"body\":\"not a message change\"}}]}}]},"
                "{\"id\":\"2\",\"changes\":[{\"field\":\"messages\",\"value\":{"
                "\"messages\":[{\"from\":\"1666\",\"id\":\"wamid.C\",\"type\":\"text\","
                "\"text\":{\"body\":\"third\"}}]}}]}]}");
    got_t g = {0};
    cr_assert_eq (wa_parse_push (root, s_got, s_failed, &g), 3);
    cr_assert_str_eq (g.key[0], "wamid.A");
    cr_assert_str_eq (g.chat[0], "1555");
    cr_assert_str_eq (g.name[0], "Ann");
    cr_assert_str_eq (g.reply[0], "wamid.A");
    cr_assert_str_eq (g.text[1], "second");
    cr_assert_str_eq (g.chat[2], "1666");
    cr_assert_str_eq (g.name[2], "");
    cr_assert (!g.group[0] && !g.mentioned[0]);
    cr_assert_eq (g.failed_code, 131047);
    cr_assert_str_eq (g.failed_title, "Re-engagement message");
    cJSON_Delete (root);

    //  Status only: nothing handed on.
    root = s_json ("{\"entry\":[{\"changes\":[{\"field\":\"messages\",\"value\":"
                   "{\"statuses\":[{\"id\":\"w\",\"status\":\"delivered\"}]}}]}]}");
    got_t h = {0};
    cr_assert_eq (wa_parse_push (root, s_got, s_failed, &h), 0);
    cr_assert_eq (h.failed_code, 0);
    cJSON_Delete (root);
}

//  ---- Slack -------------------------------------------------------------------------

Test (chat_parse, slack_dm_mention_and_skips)
{
    got_t g = {0};
    cJSON *dm =
        s_json ("{\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":"
                "\"im\",\"user\":\"U1\",\"text\":\"hello\",\"ts\":\"1.5\"}}");
    cr_assert_eq (sl_parse_event (dm, "UBOT", s_got, &g), 0);
    cr_assert_eq (g.n, 1);
    cr_assert_str_eq (g.key[0], "D1:1.5");
    cr_assert_str_eq (g.reply[0], "", "a DM is not answered in a thread");
    cr_assert (!g.group[0]);
    cJSON_Delete (dm);

    //  app_mention and the message event of the same mention: one key.
    cJSON *m =
        s_json ("{\"event\":{\"type\":\"app_mention\",\"channel\":\"C1\",\"user\":\"U1\","
                "\"text\":\"<@UBOT> what now\",\"ts\":\"2.5\"}}");
    cJSON *m2 =
        s_json ("{\"event\":{\"type\":\"message\",\"channel\":\"C1\",\"channel_type\":"
                "\"channel\",\"user\":\"U1\",\"text\":\"<@UBOT> what now\","
                "\"ts\":\"2.5\"}}");
    cr_assert_eq (sl_parse_event (m, "UBOT", s_got, &g), 0);
    cr_assert_eq (sl_parse_event (m2, "UBOT", s_got, &g), 0);
    cr_assert_eq (g.n, 3);
    cr_assert_str_eq (g.key[1], "C1:2.5");
    cr_assert_str_eq (g.key[2], g.key[1]);
    cr_assert_str_eq (g.text[1], "what now");
    cr_assert (g.group[1] && g.mentioned[1] && g.group[2] && g.mentioned[2]);
    cr_assert_str_eq (g.reply[1], "2.5", "a channel message is answered in its thread");
    cJSON_Delete (m);
    cJSON_Delete (m2);

    //  In a thread: the thread's ts.  Not mentioned: group, not mentioned.
    cJSON *t =
        s_json ("{\"event\":{\"type\":\"message\",\"channel\":\"C1\",\"channel_type\":"
                "\"channel\",\"user\":\"U2\",\"text\":\"plain\",\"ts\":\"3.5\","
                "\"thread_ts\":\"3.1\"}}");
    cr_assert_eq (sl_parse_event (t, "UBOT", s_got, &g), 0);
    cr_assert_str_eq (g.reply[3], "3.1");
    cr_assert (g.group[3] && !g.mentioned[3]);
    cJSON_Delete (t);

    //  Skipped: bots, the bot itself, edits, a mention alone (no text).
    const char *skips[] = {
        "{\"event\":{\"type\":\"message\",\"subtype\":\"bot_message\",\"bot_id\":\"B1\","
        "\"channel\":\"C1\",\"user\":\"U3\",\"text\":\"x\",\"ts\":\"4\"}}",
        "{\"event\":{\"type\":\"message\",\"bot_id\":\"B1\",\"channel\":\"C1\",\"user\":"
        "\"U3\","
        "\"text\":\"x\",\"ts\":\"4\"}}",
        "{\"event\":{\"type\":\"message\",\"channel\":\"D1\",\"channel_type\":\"im\","
        "\"user\":\"UBOT\",\"text\":\"mine\",\"ts\":\"4\"}}",
        "{\"event\":{\"type\":\"message\",\"subtype\":\"message_changed\",\"channel\":"
        "\"C1\","
        "\"user\":\"U1\",\"text\":\"x\",\"ts\":\"4\"}}",
        "{\"event\":{\"type\":\"app_mention\",\"channel\":\"C1\",\"user\":\"U1\","
        "\"text\":\"<@UBOT>\",\"ts\":\"4\"}}",
        "{\"event\":{\"type\":\"reaction_added\",\"user\":\"U1\"}}",
        NULL};
    for (const char **s = skips; *s; s++) {
        cJSON *e = s_json (*s);
        cr_assert_eq (sl_parse_event (e, "UBOT", s_got, &g), 0);
        cJSON_Delete (e);
    }
    cr_assert_eq (g.n, 4, "a skipped event was handed on");
}

//  ---- Discord -----------------------------------------------------------------------

Test (chat_parse, discord_dm_guild_and_skips)
{
    got_t g = {0};
    const char *bot = "1000";
    cJSON *dm =
        s_json ("{\"id\":\"11\",\"channel_id\":\"22\",\"author\":{\"id\":\"44\","
                "\"username\":\"ann\",\"global_name\":\"Ann\"},\"content\":\"hi\","
                "\"type\":0}");
    cr_assert_eq (dc_parse_message (dm, bot, s_got, &g), 0);
    cr_assert_eq (g.n, 1);
    cr_assert_str_eq (g.key[0], "11");
    cr_assert_str_eq (g.name[0], "Ann");
    cr_assert (!g.group[0]);
    cJSON_Delete (dm);

    cJSON *gm = s_json ("{\"id\":\"12\",\"channel_id\":\"23\",\"guild_id\":\"99\","
                        "\"author\":{\"id\":\"44\",\"username\":\"ann\"},"
                        "\"content\":\"<@!1000> and <@1000> go\",\"type\":0,"
                        "\"mentions\":[{\"id\":\"1000\"}]}");
    cr_assert_eq (dc_parse_message (gm, bot, s_got, &g), 0);
    cr_assert_str_eq (g.text[1], "and go");
    cr_assert_str_eq (g.space[1], "99");
    cr_assert (g.group[1] && g.mentioned[1]);
    cJSON_Delete (gm);

    //  A reply to the bot counts as a mention; a plain guild message not.
    cJSON *re = s_json ("{\"id\":\"13\",\"channel_id\":\"23\",\"guild_id\":\"99\","
                        "\"author\":{\"id\":\"45\"},\"content\":\"ok\",\"type\":19,"
                        "\"referenced_message\":{\"author\":{\"id\":\"1000\"}}}");
    cJSON *plain = s_json ("{\"id\":\"14\",\"channel_id\":\"23\",\"guild_id\":\"99\","
                           "\"author\":{\"id\":\"45\"},\"content\":\"ok\",\"type\":0}");
    cr_assert_eq (dc_parse_message (re, bot, s_got, &g), 0);
    cr_assert_eq (dc_parse_message (plain, bot, s_got, &g), 0);
    cr_assert (g.mentioned[2] && !g.mentioned[3]);
    cJSON_Delete (re);
    cJSON_Delete (plain);

    const char *skips[] = {
        "{\"id\":\"15\",\"channel_id\":\"22\",\"author\":{\"id\":\"46\",\"bot\":true},"
        "\"content\":\"a bot\",\"type\":0}",
        "{\"id\":\"16\",\"channel_id\":\"22\",\"author\":{\"id\":\"1000\"},"
        "\"content\":\"mine\",\"type\":0}",
        "{\"id\":\"17\",\"channel_id\":\"22\",\"author\":{\"id\":\"46\"},"
        "\"content\":\"joined\",\"type\":7}",
        "{\"id\":\"18\",\"channel_id\":\"22\",\"author\":{\"id\":\"46\"},\"webhook_id\":"
        "\"7\","
        "\"content\":\"hook\",\"type\":0}",
        "{\"id\":\"19\",\"channel_id\":\"22\",\"author\":{\"id\":\"46\"},\"content\":"
        "\"\","
        "\"type\":0}",
        "{\"id\":\"20\",\"channel_id\":\"22\",\"author\":{\"id\":\"46\"},"
        "\"content\":\"x\",\"type\":1e300}",
        NULL};
    for (const char **s = skips; *s; s++) {
        cJSON *e = s_json (*s);
        cr_assert_eq (dc_parse_message (e, bot, s_got, &g), 0);
        cJSON_Delete (e);
    }
    cr_assert_eq (g.n, 4, "a skipped message was handed on");
}

Test (chat_parse, strip_tags_formed_by_stripping)
{
    const char *tags[] = {"<@1>", "", NULL};
    char *out = chat_strip_tags ("<@<@1>1> hi <@1>", tags);
    cr_assert_str_eq (out, "hi ");
    free (out);
}

//  ---- Webhook helpers -----------------------------------------------------------------

Test (chat_parse, query_strings)
{
    char buf[32];
    const char *q =
        "hub.mode=subscribe&hub.challenge=a%20b+c&hub.verify_token=t%3D1&x=%00";
    cr_assert_str_eq (chan_query_get (q, "hub.mode", buf, sizeof (buf)), "subscribe");
    cr_assert_str_eq (chan_query_get (q, "hub.challenge", buf, sizeof (buf)), "a b c");
    cr_assert_str_eq (chan_query_get (q, "hub.verify_token", buf, sizeof (buf)), "t=1");
    cr_assert_null (chan_query_get (q, "hub", buf, sizeof (buf)));
    cr_assert_null (chan_query_get (q, "x", buf, sizeof (buf)), "a NUL was let through");
    cr_assert_null (chan_query_get (q, "hub.mode", buf, 4), "too long for buf");
    cr_assert_str_eq (chan_query_get ("a=%4", "a", buf, sizeof (buf)), "%4");
}

Test (chat_parse, signatures)
{
    //  RFC 4231 test case 2: key "Jefe".
    const char *data = "what do ya want for nothing?";
    const char *mac = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
    cr_assert (chan_signature_ok ("Jefe", NULL, 0, data, strlen (data), mac));
    char upper[65];
    for (int i = 0; i < 65; i++)
        upper[i] = (char) (mac[i] >= 'a' && mac[i] <= 'f' ? mac[i] - 32 : mac[i]);
    cr_assert (chan_signature_ok ("Jefe", NULL, 0, data, strlen (data), upper));
    //  A prefix is signed with the data (Slack's "v0:<ts>:").
    cr_assert (chan_signature_ok ("Jefe", "what do ya ", 11, data + 11,
                                  strlen (data) - 11, mac));
    cr_assert (!chan_signature_ok ("Jeff", NULL, 0, data, strlen (data), mac));
    cr_assert (!chan_signature_ok ("Jefe", NULL, 0, data, strlen (data) - 1, mac));
    cr_assert (!chan_signature_ok ("Jefe", NULL, 0, data, strlen (data), "5bdc"));
    cr_assert (!chan_signature_ok (NULL, NULL, 0, data, strlen (data), mac));
}

Test (chat_parse, retry_after)
{
    cr_assert_eq (chan_retry_after_ms ("2", 7), 2001);
    cr_assert_eq (chan_retry_after_ms ("0.75", 7), 751);
    cr_assert_eq (chan_retry_after_ms (NULL, 7), 7);
    cr_assert_eq (chan_retry_after_ms ("soon", 7), 7);
    cr_assert_eq (chan_retry_after_ms ("-1", 7), 7);
    cr_assert_eq (chan_retry_after_ms ("1e300", 7), 7);
    cr_assert_eq (chan_retry_after_ms ("nan", 7), 7);
}
