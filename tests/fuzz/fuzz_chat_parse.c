/*  =========================================================================
    fuzz_chat_parse - actors/channels/chat_parse.h: what Discord (a
    MESSAGE_CREATE), Slack (an event_callback) and WhatsApp (a Cloud API
    push) send, read after json_in's checks as the channel actor reads it

    The first byte picks the platform and whether the bot is known (its
    id, for mentions); the rest is the JSON body, without a terminator.
    Promises checked: every message handed on has a non-empty key, chat
    id, sender and text, all NUL-terminated and bounded; a Slack key is
    "<chat>:<ts>"; a stripped text holds no mention of the bot; a WhatsApp
    failed status has a terminated title; chat_strip_tags never grows.
    =========================================================================
*/
#include <string.h>

#include "chat_parse.h"
#include "fuzz.h"
#include "json_in.h"

static const char *s_bot;

static int
s_check (void *arg, const inbound_t *in)
{
    size_t *n = (size_t *) arg;
    if (!in->key || !*in->key || !in->chat_id || !*in->chat_id || !in->sender_id
        || !*in->sender_id || !in->text || !*in->text || !in->reply_to || !in->sender_name
        || strlen (in->key) > 300 || strlen (in->chat_id) > 64
        || strlen (in->sender_id) > 64)
        abort ();
    if (*s_bot) {
        char tag[80];
        snprintf (tag, sizeof (tag), "<@%s>", s_bot);
        if (strstr (in->text, tag))
            abort ();
    }
    (*n)++;
    return 0;
}

static void
s_failed (void *arg, const char *id, const char *to, int code, const char *title)
{
    if (!title || !id || !to || code < 0 || strlen (id) > 200 || strlen (to) > 64)
        abort ();
    (void) arg;
    (void) strlen (title);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t how = fuzz_take (&data, &size);
    char *body = (char *) fuzz_copy (data, size);
    if (!body)
        return 0;
    cJSON *root = json_in_parse (body, size, 1u << 20, JSON_IN_OBJECT, NULL, NULL);
    free (body);
    s_bot = (how & 4) ? "1000000000000000001" : "";
    size_t n = 0;
    if (root) {
        switch (how % 3) {
        case 0:
            if (wa_parse_push (root, s_check, s_failed, &n) < 0)
                abort ();
            break;
        case 1:
            s_bot = (how & 4) ? "UBOT" : "";
            if (sl_parse_event (root, s_bot, s_check, &n) < 0)
                abort ();
            break;
        default:
            if (dc_parse_message (cJSON_GetObjectItem (root, "d")
                                      ? cJSON_GetObjectItem (root, "d")
                                      : root,
                                  s_bot, s_check, &n)
                < 0)
                abort ();
            break;
        }
        cJSON_Delete (root);
    }
    //  The strip on raw bytes: never longer than its input.
    char *text = (char *) malloc (size + 1);
    if (text) {
        memcpy (text, data, size);
        text[size] = 0;
        const char *tags[] = {"<@UBOT>", "", "<@!1>", NULL};
        char *out = chat_strip_tags (text, tags);
        if (out && strlen (out) > strlen (text))
            abort ();
        free (out);
        free (text);
    }
    return 0;
}
