/*  =========================================================================
    telegram_parse - reading the Telegram Bot API's updates (the pure part)

    tg_parse_updates reads a getUpdates answer ({ok, result:[Update]}) or
    one pushed Update and hands each text message to fn as an inbound_t:
    its key ("<chat id>:<message id>"), chat, sender, text, whether it
    came from a group and whether the bot was mentioned there (a
    `mention` entity naming the bot, a `text_mention` of it, a
    `/command@bot`, or a reply to one of its messages; entity offsets are
    UTF-16 units).  Edits, channel posts and updates without text are
    skipped, but still counted in *last_id so the poll moves past them.
    Bounded: the body is checked by json_in (size, UTF-8, nesting) before
    cJSON reads it.  The fuzz target tests/fuzz/fuzz_telegram.c drives it.
    =========================================================================
*/
#ifndef CG_TELEGRAM_PARSE_H
#define CG_TELEGRAM_PARSE_H

#include "channel_internal.h"

typedef struct {
    int64_t id;            //  getMe's id, 0 until known
    const char *username;  //  getMe's username, "" until known
} tg_bot_t;

//  Called per message; strings lent for the call.  Non-zero stops.
typedef int (tg_update_fn) (void *arg, const inbound_t *in);

//  Reads body (len bytes): a getUpdates answer if list, else one Update.
//  *last_id (may be NULL) gets the highest update_id seen (-1: none).
//  Returns the messages handed to fn, or -1 with a sentence in err if the
//  body is not what the Bot API sends.
int
tg_parse_updates (const char *body, size_t len, bool list, const tg_bot_t *bot,
                  tg_update_fn *fn, void *arg, int64_t *last_id, char *err, size_t cap);

//  Byte offset in utf8 (len bytes) of UTF-16 unit offset units; len if
//  past the end.
size_t
tg_utf16_to_byte (const char *utf8, size_t len, size_t units);

#endif
