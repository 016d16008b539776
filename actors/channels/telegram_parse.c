/*  =========================================================================
    telegram_parse - Telegram updates into inbound messages (telegram_parse.h)
    =========================================================================
*/
#include "telegram_parse.h"
#include "json_in.h"

#include <inttypes.h>
#include <string.h>
#include <strings.h>

size_t
tg_utf16_to_byte (const char *utf8, size_t len, size_t units)
{
    size_t i = 0, u = 0;
    while (i < len && u < units) {
        unsigned char c = (unsigned char) utf8[i];
        size_t n = c < 0x80         ? 1
                   : (c >> 5) == 6  ? 2
                   : (c >> 4) == 14 ? 3
                   : (c >> 3) == 30 ? 4
                                    : 1;
        if (i + n > len)
            n = len - i;
        u += n == 4 ? 2 : 1;
        i += n;
    }
    return i;
}

//  A JSON integer (Telegram ids fit in 52 bits) into buf as text.
static bool
s_id (const cJSON *n, char *buf, size_t cap, int64_t *out)
{
    if (!cJSON_IsNumber (n) || n->valuedouble != n->valuedouble
        || n->valuedouble > 9007199254740992.0 || n->valuedouble < -9007199254740992.0)
        return false;
    int64_t v = (int64_t) n->valuedouble;
    if (buf)
        snprintf (buf, cap, "%" PRId64, v);
    if (out)
        *out = v;
    return true;
}

static const char *
s_str (const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

//  True if an entity of text names the bot.
static bool
s_entity_mentions (const cJSON *e, const char *text, size_t len, const tg_bot_t *bot)
{
    const char *type = s_str (e, "type");
    int64_t off, n;
    if (!type || !s_id (cJSON_GetObjectItemCaseSensitive (e, "offset"), NULL, 0, &off)
        || !s_id (cJSON_GetObjectItemCaseSensitive (e, "length"), NULL, 0, &n) || off < 0
        || n <= 0 || off > (int64_t) len * 2 || n > (int64_t) len * 2)
        return false;
    if (!strcmp (type, "text_mention")) {
        int64_t uid;
        const cJSON *user = cJSON_GetObjectItemCaseSensitive (e, "user");
        return bot->id
               && s_id (cJSON_GetObjectItemCaseSensitive (user, "id"), NULL, 0, &uid)
               && uid == bot->id;
    }
    if (!bot->username || !*bot->username)
        return false;
    size_t from = tg_utf16_to_byte (text, len, (size_t) off);
    size_t to = tg_utf16_to_byte (text, len, (size_t) (off + n));
    const char *slice = text + from;
    size_t slen = to - from;
    size_t ulen = strlen (bot->username);
    if (!strcmp (type, "mention"))
        return slen == ulen + 1 && slice[0] == '@'
               && !strncasecmp (slice + 1, bot->username, ulen);
    if (!strcmp (type, "bot_command")) {
        const char *at = memchr (slice, '@', slen);
        return at && (size_t) (slice + slen - at - 1) == ulen
               && !strncasecmp (at + 1, bot->username, ulen);
    }
    return false;
}

//  One Update: a message handed to fn, or skipped.  1 if handed.
static int
s_update (const cJSON *u, const tg_bot_t *bot, tg_update_fn *fn, void *arg, int *stop)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive (u, "message");
    if (!cJSON_IsObject (m))
        return 0;  //  Edits, channel posts, member updates: not for the agent
    const cJSON *chat = cJSON_GetObjectItemCaseSensitive (m, "chat");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive (m, "from");
    char chat_id[32], sender[32], msg_id[32], key[72];
    if (!s_id (cJSON_GetObjectItemCaseSensitive (chat, "id"), chat_id, sizeof (chat_id),
               NULL)
        || !s_id (cJSON_GetObjectItemCaseSensitive (m, "message_id"), msg_id,
                  sizeof (msg_id), NULL))
        return 0;
    const char *text = s_str (m, "text");
    const cJSON *entities = cJSON_GetObjectItemCaseSensitive (m, "entities");
    if (!text) {
        text = s_str (m, "caption");
        entities = cJSON_GetObjectItemCaseSensitive (m, "caption_entities");
    }
    if (!text || !*text || strlen (text) > CHAN_MAX_TEXT)
        return 0;
    if (!s_id (cJSON_GetObjectItemCaseSensitive (from, "id"), sender, sizeof (sender),
               NULL))
        snprintf (sender, sizeof (sender), "%s", chat_id);  //  Anonymous admin
    const cJSON *is_bot = cJSON_GetObjectItemCaseSensitive (from, "is_bot");
    if (cJSON_IsTrue (is_bot))
        return 0;  //  Bots (and our own messages) are not answered
    const char *type = s_str (chat, "type");
    bool group = type && strcmp (type, "private");
    size_t len = strlen (text);
    bool mentioned = false;
    const cJSON *e;
    if (cJSON_IsArray (entities))
        cJSON_ArrayForEach (e, entities)
        {
            if (s_entity_mentions (e, text, len, bot)) {
                mentioned = true;
                break;
            }
        }
    const cJSON *replied = cJSON_GetObjectItemCaseSensitive (m, "reply_to_message");
    int64_t rid;
    if (!mentioned && bot->id
        && s_id (cJSON_GetObjectItemCaseSensitive (
                     cJSON_GetObjectItemCaseSensitive (replied, "from"), "id"),
                 NULL, 0, &rid)
        && rid == bot->id)
        mentioned = true;
    char name[160] = "";
    const char *first = s_str (from, "first_name");
    const char *last = s_str (from, "last_name");
    const char *uname = s_str (from, "username");
    snprintf (name, sizeof (name), "%.60s%s%.60s",
              first   ? first
              : uname ? uname
                      : "",
              last ? " " : "", last ? last : "");
    snprintf (key, sizeof (key), "%s:%s", chat_id, msg_id);
    inbound_t in = {.key = key,
                    .chat_id = chat_id,
                    .sender_id = sender,
                    .sender_name = name,
                    .reply_to = msg_id,
                    .text = text,
                    .group = group,
                    .mentioned = mentioned};
    *stop = fn (arg, &in);
    return 1;
}

int
tg_parse_updates (const char *body, size_t len, bool list, const tg_bot_t *bot,
                  tg_update_fn *fn, void *arg, int64_t *last_id, char *err, size_t cap)
{
    if (last_id)
        *last_id = -1;
    json_in_rc_t rc;
    cJSON *root = json_in_parse (body, len, CHAN_MAX_BODY,
                                 JSON_IN_OBJECT | JSON_IN_NUL_OK, &rc, NULL);
    if (!root) {
        snprintf (err, cap, "Telegram's answer%s", json_in_reason (rc));
        return -1;
    }
    const cJSON *updates = root;
    if (list) {
        updates = cJSON_GetObjectItemCaseSensitive (root, "result");
        if (!cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (root, "ok"))
            || !cJSON_IsArray (updates)) {
            snprintf (err, cap, "Telegram's answer has no list of updates");
            cJSON_Delete (root);
            return -1;
        }
    }
    int handed = 0, stop = 0;
    const cJSON *u = list ? updates->child : updates;
    for (; u && !stop; u = list ? u->next : NULL) {
        int64_t id;
        if (!cJSON_IsObject (u)
            || !s_id (cJSON_GetObjectItemCaseSensitive (u, "update_id"), NULL, 0, &id)
            || id < 0)
            continue;  //  Not an update Telegram sends (ids count up from 0)
        if (last_id && id > *last_id)
            *last_id = id;
        handed += s_update (u, bot, fn, arg, &stop);
    }
    cJSON_Delete (root);
    return handed;
}
