/*  =========================================================================
    test_telegram_parse - Telegram updates as the channel actor reads them
    (actors/channels/telegram_parse.h): DMs and groups, who is mentioned (UTF-16
    entity offsets), what is skipped, and the offset to confirm
    =========================================================================
*/
#include <criterion/criterion.h>
#include <string.h>

#include "telegram_parse.h"

typedef struct {
    int n;
    char key[8][48], chat[8][32], sender[8][32], name[8][64], text[8][128];
    bool group[8], mentioned[8];
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
    g->group[i] = in->group;
    g->mentioned[i] = in->mentioned;
    return 0;
}

static const tg_bot_t s_bot = {4242, "clawgate_test_bot"};

static int
s_parse (const char *body, bool list, got_t *g, int64_t *last)
{
    char err[128];
    memset (g, 0, sizeof (*g));
    return tg_parse_updates (body, strlen (body), list, &s_bot, s_got, g, last, err,
                             sizeof (err));
}

#define FROM                                                                             \
    "\"from\":{\"id\":77,\"is_bot\":false,\"first_name\":\"Ann\",\"last_name\":\"Lee\"}"

Test (telegram_parse, a_direct_message)
{
    got_t g;
    int64_t last;
    int n =
        s_parse ("{\"ok\":true,\"result\":[{\"update_id\":10,\"message\":{"
                 "\"message_id\":5," FROM ",\"chat\":{\"id\":77,\"type\":\"private\"},"
                 "\"date\":1,\"text\":\"hello\"}}]}",
                 true, &g, &last);
    cr_assert_eq (n, 1);
    cr_assert_eq (last, 10);
    cr_assert_str_eq (g.key[0], "77:5");
    cr_assert_str_eq (g.chat[0], "77");
    cr_assert_str_eq (g.sender[0], "77");
    cr_assert_str_eq (g.name[0], "Ann Lee");
    cr_assert_str_eq (g.text[0], "hello");
    cr_assert_not (g.group[0]);
}

Test (telegram_parse, group_mentions_by_entity_command_text_mention_and_reply)
{
    got_t g;
    int64_t last;
    //  The emoji before the mention is two UTF-16 units: the offset counts them.
    const char *body =
        "{\"ok\":true,\"result\":["
        "{\"update_id\":1,\"message\":{\"message_id\":1," FROM
        ",\"chat\":{\"id\":-100123,\"type\":\"supergroup\"},\"date\":1,"
        "\"text\":\"\xf0\x9f\x98\x80 @Clawgate_Test_Bot hi\",\"entities\":[{\"type\":"
        "\"mention\",\"offset\":3,\"length\":18}]}},"
        "{\"update_id\":2,\"message\":{\"message_id\":2," FROM
        ",\"chat\":{\"id\":-100123,\"type\":\"supergroup\"},\"date\":1,"
        "\"text\":\"@someone_else hi\",\"entities\":[{\"type\":\"mention\",\"offset\":0,"
        "\"length\":13}]}},"
        "{\"update_id\":3,\"message\":{\"message_id\":3," FROM
        ",\"chat\":{\"id\":-5,\"type\":\"group\"},\"date\":1,"
        "\"text\":\"/ask@clawgate_test_bot x\",\"entities\":[{\"type\":\"bot_command\","
        "\"offset\":0,\"length\":22}]}},"
        "{\"update_id\":4,\"message\":{\"message_id\":4," FROM
        ",\"chat\":{\"id\":-5,\"type\":\"group\"},\"date\":1,\"text\":\"Bot, hi\","
        "\"entities\":[{\"type\":\"text_mention\",\"offset\":0,\"length\":3,\"user\":"
        "{\"id\":4242,\"is_bot\":true,\"first_name\":\"B\"}}]}},"
        "{\"update_id\":5,\"message\":{\"message_id\":6," FROM
        ",\"chat\":{\"id\":-5,\"type\":\"group\"},\"date\":1,\"text\":\"and you?\","
        "\"reply_to_message\":{\"message_id\":5,\"from\":{\"id\":4242,\"is_bot\":true,"
        "\"first_name\":\"B\"},\"chat\":{\"id\":-5,\"type\":\"group\"},\"date\":1}}}"
        "]}";
    int n = s_parse (body, true, &g, &last);
    cr_assert_eq (n, 5);
    cr_assert_eq (last, 5);
    bool want[] = {true, false, true, true, true};
    for (int i = 0; i < 5; i++) {
        cr_assert (g.group[i]);
        cr_assert_eq (g.mentioned[i], want[i], "update %d", i + 1);
    }
    cr_assert_str_eq (g.key[0], "-100123:1");
}

Test (telegram_parse, edits_bots_and_textless_updates_are_skipped_but_counted)
{
    got_t g;
    int64_t last;
    const char *body =
        "{\"ok\":true,\"result\":["
        "{\"update_id\":20,\"edited_message\":{\"message_id\":1," FROM
        ",\"chat\":{\"id\":77,\"type\":\"private\"},\"date\":1,\"text\":\"x\"}},"
        "{\"update_id\":21,\"message\":{\"message_id\":2,\"from\":{\"id\":9,\"is_bot\":"
        "true,"
        "\"first_name\":\"b\"},\"chat\":{\"id\":77,\"type\":\"private\"},\"date\":1,"
        "\"text\":\"x\"}},"
        "{\"update_id\":22,\"message\":{\"message_id\":3," FROM
        ",\"chat\":{\"id\":77,\"type\":\"private\"},\"date\":1,\"sticker\":{}}},"
        "{\"update_id\":-3,\"message\":{\"message_id\":4," FROM
        ",\"chat\":{\"id\":77,\"type\":\"private\"},\"date\":1,\"text\":\"x\"}},"
        "{\"update_id\":23,\"message\":{\"message_id\":5," FROM
        ",\"chat\":{\"id\":77,\"type\":\"private\"},\"date\":1,\"caption\":\"a photo\"}}"
        "]}";
    int n = s_parse (body, true, &g, &last);
    cr_assert_eq (n, 1);
    cr_assert_str_eq (g.text[0], "a photo");
    cr_assert_eq (last, 23, "the poll moves past what it skipped");
}

Test (telegram_parse, a_pushed_update_and_bad_bodies)
{
    got_t g;
    int64_t last;
    cr_assert_eq (s_parse ("{\"update_id\":7,\"message\":{\"message_id\":1," FROM
                           ",\"chat\":{\"id\":77,\"type\":\"private\"},\"date\":1,"
                           "\"text\":\"pushed\"}}",
                           false, &g, &last),
                  1);
    cr_assert_str_eq (g.text[0], "pushed");
    cr_assert_eq (s_parse ("{\"ok\":false,\"error_code\":409}", true, &g, &last), -1);
    cr_assert_eq (s_parse ("[1,2]", true, &g, &last), -1);
    cr_assert_eq (s_parse ("{\"ok\":true,\"result\":[", true, &g, &last), -1);
    cr_assert_eq (s_parse ("{\"ok\":true,\"result\":[]}", true, &g, &last), 0);
    cr_assert_eq (last, -1);
}

Test (telegram_parse, utf16_offsets_to_bytes)
{
    const char *t = "a\xc3\xa9\xf0\x9f\x98\x80z";  //  a é 😀 z
    size_t len = strlen (t);
    cr_assert_eq (tg_utf16_to_byte (t, len, 0), 0);
    cr_assert_eq (tg_utf16_to_byte (t, len, 1), 1);
    cr_assert_eq (tg_utf16_to_byte (t, len, 2), 3);
    cr_assert_eq (tg_utf16_to_byte (t, len, 4), 7);
    cr_assert_eq (tg_utf16_to_byte (t, len, 5), 8);
    cr_assert_eq (tg_utf16_to_byte (t, len, 99), len);
}
