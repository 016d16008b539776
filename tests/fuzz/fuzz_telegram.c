/*  =========================================================================
    fuzz_telegram - actors/channels/telegram_parse.h tg_parse_updates: a
    getUpdates answer (or one pushed Update) from Telegram, the platform
    payload the channel actor reads most

    The first byte picks list or single and whether the bot is known (its
    id and username, for mentions); the rest is the body, without a
    terminator.  Promises checked: every message handed on has a
    non-empty key, chat id, sender and text, all NUL-terminated; the key is
    "<chat id>:<message id>"; a failure says why in a terminated sentence;
    tg_utf16_to_byte never goes past the text.
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "telegram_parse.h"

static int
s_check (void *arg, const inbound_t *in)
{
    size_t *n = (size_t *) arg;
    if (!in->key || !*in->key || !in->chat_id || !*in->chat_id || !in->sender_id
        || !*in->sender_id || !in->text || !*in->text || !in->reply_to
        || !in->sender_name)
        abort ();
    size_t clen = strlen (in->chat_id);
    if (strncmp (in->key, in->chat_id, clen) || in->key[clen] != ':'
        || strcmp (in->key + clen + 1, in->reply_to))
        abort ();
    size_t len = strlen (in->text);
    for (size_t u = 0; u < len * 2 + 2; u += 1 + u / 3)
        if (tg_utf16_to_byte (in->text, len, u) > len)
            abort ();
    (*n)++;
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t how = fuzz_take (&data, &size);
    char *body = (char *) fuzz_copy (data, size);
    if (!body)
        return 0;
    tg_bot_t bot = {(how & 2) ? 4242 : 0, (how & 4) ? "clawgate_test_bot" : ""};
    size_t handed = 0;
    int64_t last = 0;
    char err[64];
    memset (err, 'x', sizeof (err));
    int n = tg_parse_updates (body, size, (how & 1) != 0, &bot, s_check, &handed, &last,
                              err, sizeof (err));
    if (n < 0 && !memchr (err, 0, sizeof (err)))
        abort ();
    if (n >= 0 && (size_t) n != handed)
        abort ();
    if (n > 0 && last < 0)
        abort ();
    free (body);
    return 0;
}
