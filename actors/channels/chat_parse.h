/*  =========================================================================
    chat_parse - reading what Discord, Slack and WhatsApp send (the pure
    part of discord.c, slack.c and whatsapp.c)

    Each parser takes a JSON value already checked by json_in (size, UTF-8,
    nesting) and hands every message meant for the agent to fn as an
    inbound_t, whose strings are lent for the call.  What is skipped, and
    why, is in each platform file's header: bots' and the bot's own
    messages, edits and other subtypes, messages without text, and
    anything with an id or a chat longer than the store takes.  The fuzz
    target tests/fuzz/fuzz_chat_parse.c drives all three.
    =========================================================================
*/
#ifndef CG_CHAT_PARSE_H
#define CG_CHAT_PARSE_H

#include "channel_internal.h"

//  Called per message; strings lent for the call.  Non-zero stops.
typedef int (chat_msg_fn) (void *arg, const inbound_t *in);

//  Called per failed delivery a WhatsApp push reports (statuses[] with
//  status "failed"): the message's wamid (may be ""), the recipient (may
//  be ""), its first error's code and title (may be "").
typedef void (wa_failed_fn) (void *arg, const char *id, const char *recipient, int code,
                             const char *title);

//  Reads a Cloud API push (root: {object, entry:[{changes:[{field,
//  value}]}]}): every text message of every "messages" change, in order,
//  to fn; failed statuses to failed (may be NULL).  The sender's name
//  comes from value.contacts.  Returns the messages handed to fn, or -1 if
//  fn stopped.
int
wa_parse_push (const cJSON *root, chat_msg_fn *fn, wa_failed_fn *failed, void *arg);

//  Reads a Slack event_callback envelope ({event:{...}}): a "message" or
//  "app_mention" from a person, with the bot's mention ("<@bot_user>",
//  bot_user may be "" until known) taken out of the text.  Its key is
//  "<channel>:<ts>"; it replies in the thread (thread_ts, or in a channel
//  the message's ts).  Returns fn's result, 0 if skipped, -1 if out of
//  memory.
int
sl_parse_event (const cJSON *envelope, const char *bot_user, chat_msg_fn *fn, void *arg);

//  Reads a Discord MESSAGE_CREATE's d: a person's message (type 0 or 19)
//  with text; a DM has no guild_id, and in a guild the bot (bot_id, may be
//  "") is mentioned when in mentions or replied to.  The bot's mentions
//  are taken out of the text.  Returns fn's result, 0 if skipped, -1 if
//  out of memory.
int
dc_parse_message (const cJSON *d, const char *bot_id, chat_msg_fn *fn, void *arg);

//  text with every occurrence of each tag (NULL-terminated list; empty
//  tags ignored) and the spaces after it taken out.  Caller owns the
//  return value; NULL if out of memory.
char *
chat_strip_tags (const char *text, const char *const *tags);

#endif
