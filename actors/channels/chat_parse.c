/*  =========================================================================
    chat_parse - reading what Discord, Slack and WhatsApp send

    See chat_parse.h.  Bounds: ids and chats are at most 200 and 64 bytes
    (the store's keys stay small), the text is whatever json_in let through
    (the gateway's body limit, or the channel's CHAN_MAX_BODY).
    =========================================================================
*/
#include "chat_parse.h"

#include <string.h>

#define S_MAX_ID 200   //  Longest message id taken
#define S_MAX_CHAT 64  //  Longest chat, sender or guild id taken

static const char *
s_str (const cJSON *obj, const char *name)
{
    return cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (obj, name));
}

static bool
s_fits (const char *s, size_t max)
{
    return s && *s && strlen (s) <= max;
}

char *
chat_strip_tags (const char *text, const char *const *tags)
{
    size_t len = strlen (text);
    char *out = (char *) malloc (len + 1);
    if (!out)
        return NULL;
    //  One pass: a tag is taken out as soon as the output ends with it, so
    //  a tag that taking out another one forms ("<@1<@1>>") goes too.
    size_t k = 0;
    for (const char *p = text; *p;) {
        out[k++] = *p++;
        for (const char *const *t = tags; *t; t++) {
            size_t tlen = strlen (*t);
            if (tlen && k >= tlen && !memcmp (out + k - tlen, *t, tlen)) {
                k -= tlen;
                while (*p == ' ')
                    p++;
                break;
            }
        }
    }
    out[k] = 0;
    return out;
}

//  ---- WhatsApp ----------------------------------------------------------------------

//  The name WhatsApp gives wa_id in value.contacts, or "".
static const char *
s_contact_name (const cJSON *value, const char *wa_id)
{
    const cJSON *c;
    cJSON_ArrayForEach (c, cJSON_GetObjectItemCaseSensitive (value, "contacts"))
    {
        const char *id = s_str (c, "wa_id");
        const char *name =
            s_str (cJSON_GetObjectItemCaseSensitive (c, "profile"), "name");
        if (id && !strcmp (id, wa_id) && name)
            return name;
    }
    return "";
}

static void
s_statuses (const cJSON *value, wa_failed_fn *failed, void *arg)
{
    const cJSON *st;
    cJSON_ArrayForEach (st, cJSON_GetObjectItemCaseSensitive (value, "statuses"))
    {
        const char *status = s_str (st, "status");
        if (!failed || !status || strcmp (status, "failed"))
            continue;
        const cJSON *err =
            cJSON_GetArrayItem (cJSON_GetObjectItemCaseSensitive (st, "errors"), 0);
        const cJSON *code = cJSON_GetObjectItemCaseSensitive (err, "code");
        const char *title = s_str (err, "title");
        const char *id = s_str (st, "id");
        const char *to = s_str (st, "recipient_id");
        failed (arg, s_fits (id, S_MAX_ID) ? id : "", s_fits (to, S_MAX_CHAT) ? to : "",
                cJSON_IsNumber (code) && code->valuedouble >= 0 && code->valuedouble < 1e9
                    ? (int) code->valuedouble
                    : 0,
                title ? title : "");
    }
}

int
wa_parse_push (const cJSON *root, chat_msg_fn *fn, wa_failed_fn *failed, void *arg)
{
    int n = 0;
    const cJSON *entry, *change, *m;
    cJSON_ArrayForEach (entry, cJSON_GetObjectItemCaseSensitive (root, "entry"))
    {
        cJSON_ArrayForEach (change, cJSON_GetObjectItemCaseSensitive (entry, "changes"))
        {
            const char *field = s_str (change, "field");
            const cJSON *value = cJSON_GetObjectItemCaseSensitive (change, "value");
            if (!field || strcmp (field, "messages"))
                continue;
            s_statuses (value, failed, arg);
            cJSON_ArrayForEach (m, cJSON_GetObjectItemCaseSensitive (value, "messages"))
            {
                const char *id = s_str (m, "id");
                const char *from = s_str (m, "from");
                const char *type = s_str (m, "type");
                const char *body =
                    s_str (cJSON_GetObjectItemCaseSensitive (m, "text"), "body");
                //  Text only: images, audio, reactions... are skipped.
                if (!s_fits (id, S_MAX_ID) || !s_fits (from, S_MAX_CHAT) || !type
                    || strcmp (type, "text") || !body || !*body)
                    continue;
                inbound_t in = {.key = id,
                                .chat_id = from,
                                .sender_id = from,
                                .sender_name = s_contact_name (value, from),
                                .reply_to = id,
                                .text = body};
                if (fn (arg, &in))
                    return -1;
                n++;
            }
        }
    }
    return n;
}

//  ---- Slack -------------------------------------------------------------------------

int
sl_parse_event (const cJSON *envelope, const char *bot_user, chat_msg_fn *fn, void *arg)
{
    const cJSON *ev = cJSON_GetObjectItemCaseSensitive (envelope, "event");
    const char *type = s_str (ev, "type");
    const char *user = s_str (ev, "user");
    const char *channel = s_str (ev, "channel");
    const char *text = s_str (ev, "text");
    const char *ts = s_str (ev, "ts");
    const char *thread = s_str (ev, "thread_ts");
    const char *ctype = s_str (ev, "channel_type");
    bool mention = type && !strcmp (type, "app_mention");
    if (!type || !(mention || !strcmp (type, "message")) || !s_fits (user, S_MAX_CHAT)
        || !s_fits (channel, S_MAX_CHAT) || !text || !*text || !s_fits (ts, S_MAX_CHAT)
        || (thread && !s_fits (thread, S_MAX_CHAT)))
        return 0;
    //  Bots (this one too), edits, joins...: every subtype is skipped.
    if (cJSON_GetObjectItemCaseSensitive (ev, "subtype")
        || cJSON_GetObjectItemCaseSensitive (ev, "bot_id") || !strcmp (user, bot_user))
        return 0;
    bool group = mention || !ctype || strcmp (ctype, "im");
    char tag[S_MAX_CHAT + 4] = "";
    if (*bot_user && strlen (bot_user) <= S_MAX_CHAT)
        snprintf (tag, sizeof (tag), "<@%s>", bot_user);
    if (!mention && group && *tag && strstr (text, tag))
        mention = true;
    char key[2 * S_MAX_CHAT + 2];
    snprintf (key, sizeof (key), "%s:%s", channel, ts);
    const char *tags[] = {tag, NULL};
    char *clean = chat_strip_tags (text, tags);
    if (!clean)
        return -1;
    inbound_t in = {.key = key,
                    .chat_id = channel,
                    .sender_id = user,
                    .sender_name = "",
                    .reply_to = thread  ? thread
                                : group ? ts
                                        : "",
                    .text = clean,
                    .group = group,
                    .mentioned = mention};
    int rc = *clean ? fn (arg, &in) : 0;
    free (clean);
    return rc;
}

//  ---- Discord -----------------------------------------------------------------------

static bool
s_mentions_bot (const cJSON *d, const char *bot_id)
{
    if (!*bot_id)
        return false;
    const cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItemCaseSensitive (d, "mentions"))
    {
        const char *id = s_str (m, "id");
        if (id && !strcmp (id, bot_id))
            return true;
    }
    const cJSON *ref = cJSON_GetObjectItemCaseSensitive (d, "referenced_message");
    const char *to = s_str (cJSON_GetObjectItemCaseSensitive (ref, "author"), "id");
    return to && !strcmp (to, bot_id);
}

int
dc_parse_message (const cJSON *d, const char *bot_id, chat_msg_fn *fn, void *arg)
{
    const cJSON *author = cJSON_GetObjectItemCaseSensitive (d, "author");
    const char *id = s_str (d, "id");
    const char *channel = s_str (d, "channel_id");
    const char *guild = s_str (d, "guild_id");
    const char *content = s_str (d, "content");
    const char *who = s_str (author, "id");
    const char *name = s_str (author, "global_name");
    if (!name)
        name = s_str (author, "username");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive (d, "type");
    //  valueint: cJSON's clamped copy (a cast of a huge double is not C).
    int t = cJSON_IsNumber (type) ? type->valueint : 0;
    if (!s_fits (id, S_MAX_CHAT) || !s_fits (channel, S_MAX_CHAT)
        || !s_fits (who, S_MAX_CHAT) || (guild && !s_fits (guild, S_MAX_CHAT)) || !content
        || !*content)
        return 0;
    //  People only: bots (this one too), webhooks and system messages not.
    if (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (author, "bot"))
        || !strcmp (who, bot_id) || cJSON_GetObjectItemCaseSensitive (d, "webhook_id")
        || (t != 0 && t != 19))
        return 0;
    char a[S_MAX_CHAT + 4] = "", b[S_MAX_CHAT + 5] = "";
    if (*bot_id && strlen (bot_id) <= S_MAX_CHAT) {
        snprintf (a, sizeof (a), "<@%s>", bot_id);
        snprintf (b, sizeof (b), "<@!%s>", bot_id);
    }
    const char *tags[] = {a, b, NULL};
    char *clean = chat_strip_tags (content, tags);
    if (!clean)
        return -1;
    inbound_t in = {.key = id,
                    .chat_id = channel,
                    .sender_id = who,
                    .sender_name = name ? name : "",
                    .reply_to = id,
                    .text = clean,
                    .space = guild,
                    .group = guild != NULL,
                    .mentioned = guild && s_mentions_bot (d, bot_id)};
    int rc = *clean ? fn (arg, &in) : 0;
    free (clean);
    return rc;
}
