/*  =========================================================================
    botapi - the Bot API methods cg_tgstandin answers: getMe, getUpdates,
    sendMessage, sendChatAction, editMessageText, setWebhook,
    deleteWebhook, getWebhookInfo

    Part of cg_tgstandin (see tgstandin.c).  Parameters arrive as one cJSON
    object whatever their source (query, form or JSON body), so a number
    may be a JSON number or a string; the s_param_* helpers read either.
    =========================================================================
*/
#include "tgstandin.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CONFLICT_POLL                                                                    \
    "Conflict: terminated by other getUpdates request; make sure that only one bot "     \
    "instance is running"
#define CONFLICT_WEBHOOK                                                                 \
    "Conflict: can't use getUpdates method while webhook is active; use "                \
    "deleteWebhook to delete the webhook first"
#define NOT_MODIFIED                                                                     \
    "Bad Request: message is not modified: specified new message content and reply "     \
    "markup are exactly the same as a current content and reply markup of the "          \
    "message"

//  The methods we answer, with the spelling the call counters use.
static const char *s_methods[] = {"getMe",          "getUpdates",      "sendMessage",
                                  "sendChatAction", "editMessageText", "setWebhook",
                                  "deleteWebhook",  "getWebhookInfo",  NULL};

//  ---- Parameters -----------------------------------------------------------------

//  A parameter as text (integers without a fraction), or NULL if absent.
static const char *
s_param_str (cJSON *params, const char *name, char *buf, size_t cap)
{
    cJSON *item = cJSON_GetObjectItem (params, name);
    if (cJSON_IsString (item))
        return item->valuestring;
    if (cJSON_IsNumber (item)) {
        snprintf (buf, cap, "%lld", (long long) item->valuedouble);
        return buf;
    }
    if (cJSON_IsBool (item))
        return cJSON_IsTrue (item) ? "true" : "false";
    return NULL;
}

static long long
s_param_long (cJSON *params, const char *name, long long fallback)
{
    char buf[32];
    const char *text = s_param_str (params, name, buf, sizeof (buf));
    if (!text || !*text)
        return fallback;
    char *end;
    long long value = strtoll (text, &end, 10);
    return *end ? fallback : value;
}

static bool
s_param_bool (cJSON *params, const char *name)
{
    char buf[32];
    const char *text = s_param_str (params, name, buf, sizeof (buf));
    return text && (strcmp (text, "true") == 0 || strcmp (text, "1") == 0);
}

//  A parameter that is JSON: an object/array, or a string holding one (as
//  form bodies send them).  Caller owns return value (may be NULL).
static cJSON *
s_param_json (cJSON *params, const char *name)
{
    cJSON *item = cJSON_GetObjectItem (params, name);
    if (cJSON_IsString (item))
        return cJSON_Parse (item->valuestring);
    return item ? cJSON_Duplicate (item, true) : NULL;
}

//  ---- Shapes ---------------------------------------------------------------------

size_t
botapi_utf16_len (const char *text)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p; p++) {
        if ((*p & 0xC0) != 0x80)
            n++;  //  A lead byte starts a code point
        if ((*p & 0xF8) == 0xF0)
            n++;  //  Four bytes: outside the BMP, a surrogate pair
    }
    return n;
}

cJSON *
botapi_user (tg_t *self)
{
    cJSON *user = cJSON_CreateObject ();
    cJSON_AddNumberToObject (user, "id", (double) self->bot_id);
    cJSON_AddBoolToObject (user, "is_bot", true);
    cJSON_AddStringToObject (user, "first_name", "Clawgate Test");
    cJSON_AddStringToObject (user, "username", self->bot_username);
    return user;
}

//  A Chat for a chat_id parameter: integers by sign and "-100" prefix,
//  "@name" as a channel.
static cJSON *
s_chat (const char *chat_id)
{
    cJSON *chat = cJSON_CreateObject ();
    if (chat_id[0] == '@') {
        cJSON_AddNumberToObject (chat, "id", -1001000000000.0);
        cJSON_AddStringToObject (chat, "type", "channel");
        cJSON_AddStringToObject (chat, "username", chat_id + 1);
        return chat;
    }
    long long id = strtoll (chat_id, NULL, 10);
    cJSON_AddNumberToObject (chat, "id", (double) id);
    cJSON_AddStringToObject (chat, "type",
                             id > 0 ? "private"
                             : strncmp (chat_id, "-100", 4) == 0 && strlen (chat_id) >= 14
                                 ? "supergroup"
                                 : "group");
    return chat;
}

static cJSON *
s_message (tg_t *self, long long message_id, const char *chat_id, const char *text,
           long long reply_to, long long thread)
{
    cJSON *msg = cJSON_CreateObject ();
    cJSON_AddNumberToObject (msg, "message_id", (double) message_id);
    if (thread) {
        cJSON_AddNumberToObject (msg, "message_thread_id", (double) thread);
        cJSON_AddBoolToObject (msg, "is_topic_message", true);
    }
    cJSON_AddItemToObject (msg, "from", botapi_user (self));
    cJSON_AddItemToObject (msg, "chat", s_chat (chat_id));
    cJSON_AddNumberToObject (msg, "date", (double) time (NULL));
    cJSON_AddStringToObject (msg, "text", text);
    if (reply_to) {
        cJSON *reply = cJSON_AddObjectToObject (msg, "reply_to_message");
        cJSON_AddNumberToObject (reply, "message_id", (double) reply_to);
        cJSON_AddItemToObject (reply, "chat", s_chat (chat_id));
    }
    return msg;
}

//  Checks text and parse_mode as sendMessage and editMessageText do.
//  Returns the error sent, or 0 when they are fine.
static int
s_check_text (tg_req_t *req, const char *text, const char *parse_mode)
{
    if (!text || !*text)
        return tg_send_error (req, 400, "Bad Request: message text is empty", NULL);
    if (parse_mode && *parse_mode && strcasecmp (parse_mode, "HTML") != 0
        && strcasecmp (parse_mode, "MarkdownV2") != 0
        && strcasecmp (parse_mode, "Markdown") != 0)
        return tg_send_error (req, 400, "Bad Request: unsupported parse_mode", NULL);
    if (botapi_utf16_len (text) > TG_MAX_TEXT)
        return tg_send_error (req, 400, "Bad Request: message is too long", NULL);
    return 0;
}

//  ---- Methods --------------------------------------------------------------------

static int
s_get_me (tg_req_t *req, cJSON *params)
{
    cJSON *user = botapi_user (req->self);
    cJSON_AddBoolToObject (user, "can_join_groups", true);
    cJSON_AddBoolToObject (user, "can_read_all_group_messages", false);
    cJSON_AddBoolToObject (user, "supports_inline_queries", false);
    return tg_send_ok (req, user);
}

//  Whether getUpdates may return an update of this type under the sticky
//  allowed_updates (empty or never set: all but the opt-in kinds).
static bool
s_allowed (tg_t *self, const char *type)
{
    if (cJSON_GetArraySize (self->allowed) > 0) {
        cJSON *item;
        cJSON_ArrayForEach (item, self->allowed)
        {
            if (cJSON_IsString (item) && strcmp (item->valuestring, type) == 0)
                return true;
        }
        return false;
    }
    return strcmp (type, "chat_member") != 0 && strcmp (type, "message_reaction") != 0
           && strcmp (type, "message_reaction_count") != 0;
}

//  Confirms by offset: drops updates below it (a positive offset) or all
//  but the last -offset (a negative one).  A duplicate enqueued with its
//  own id is kept until it has been returned once.
static bool
s_confirm (tg_t *self, long long offset)
{
    bool changed = false;
    if (offset < 0) {
        size_t keep = (size_t) (-offset);
        while (self->queue_len > keep) {
            store_remove (self, 0);
            changed = true;
        }
        return changed;
    }
    for (size_t i = 0; offset > 0 && i < self->queue_len;) {
        update_t *u = &self->queue[i];
        if (u->id < offset && !(u->dup && !u->delivered)) {
            store_remove (self, i);
            changed = true;
        }
        else
            i++;
    }
    return changed;
}

//  The updates to return now (a JSON array text), or NULL if none.  Drops
//  the ones allowed_updates filters out.  Caller owns return value.
static char *
s_collect (tg_t *self, long long offset, long limit, bool *changed)
{
    cJSON *result = NULL;
    long n = 0;
    for (size_t i = 0; i < self->queue_len && n < limit;) {
        update_t *u = &self->queue[i];
        if (!s_allowed (self, u->type)) {
            store_remove (self, i);
            *changed = true;
            continue;
        }
        if (u->id >= offset || (u->dup && !u->delivered)) {
            if (!result)
                result = cJSON_CreateArray ();
            cJSON_AddItemToArray (result, cJSON_Parse (u->json));
            if (u->dup && !u->delivered) {
                u->delivered = true;
                *changed = true;
            }
            n++;
        }
        i++;
    }
    if (!result)
        return NULL;
    char *text = cJSON_PrintUnformatted (result);
    cJSON_Delete (result);
    return text;
}

static long long
s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
s_get_updates (tg_req_t *req, cJSON *params)
{
    tg_t *self = req->self;
    long long offset = s_param_long (params, "offset", 0);
    long long limit = s_param_long (params, "limit", 100);
    long long timeout = s_param_long (params, "timeout", 0);
    limit = limit < 1 ? 1 : limit > 100 ? 100 : limit;
    timeout = timeout < 0 ? 0 : timeout > TG_POLL_CLAMP ? TG_POLL_CLAMP : timeout;
    cJSON *allowed = s_param_json (params, "allowed_updates");

    pthread_mutex_lock (&self->lock);
    if (self->webhook_url) {
        pthread_mutex_unlock (&self->lock);
        cJSON_Delete (allowed);
        return tg_send_error (req, 409, CONFLICT_WEBHOOK, NULL);
    }
    if (cJSON_IsArray (allowed)) {
        cJSON_Delete (self->allowed);
        self->allowed = allowed;
    }
    else
        cJSON_Delete (allowed);
    bool changed = s_confirm (self, offset);
    if (offset < 0)
        offset = LLONG_MIN;
    long long gen = ++self->poll_gen;
    pthread_cond_broadcast (&self->changed);
    long long deadline = s_mono_ms () + timeout * 1000;
    char *result = NULL;
    const char *conflict = NULL;
    bool gone = false;
    while (true) {
        result = s_collect (self, offset, (long) limit, &changed);
        if (result)
            break;
        if (self->poll_gen != gen) {
            conflict = self->webhook_url ? "Conflict: terminated by setWebhook request"
                                         : CONFLICT_POLL;
            break;
        }
        long long left = deadline - s_mono_ms ();
        if (left <= 0 || atomic_load (&self->stopping))
            break;
        if (left > TG_SLICE_MS)
            left = TG_SLICE_MS;
        struct timespec until;
        clock_gettime (CLOCK_MONOTONIC, &until);
        until.tv_sec += left / 1000;
        until.tv_nsec += (left % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait (&self->changed, &self->lock, &until);
        pthread_mutex_unlock (&self->lock);
        gone = tg_pause (req, 0) != 0;
        pthread_mutex_lock (&self->lock);
        if (gone)
            break;
    }
    if (changed)
        store_save (self);
    pthread_mutex_unlock (&self->lock);
    if (conflict)
        return tg_send_error (req, 409, conflict, NULL);
    if (gone)
        return 499;
    char *body = malloc (strlen (result ? result : "[]") + 32);
    sprintf (body, "{\"ok\":true,\"result\":%s}", result ? result : "[]");
    int status = tg_send_json (req, 200, body);
    free (body);
    cJSON_free (result);
    return status;
}

static int
s_send_message (tg_req_t *req, cJSON *params)
{
    tg_t *self = req->self;
    char chat_buf[32], text_buf[32], mode_buf[32];
    const char *chat = s_param_str (params, "chat_id", chat_buf, sizeof (chat_buf));
    const char *text = s_param_str (params, "text", text_buf, sizeof (text_buf));
    const char *mode = s_param_str (params, "parse_mode", mode_buf, sizeof (mode_buf));
    if (!chat || !*chat)
        return tg_send_error (req, 400, "Bad Request: chat_id is empty", NULL);
    int error = s_check_text (req, text, mode);
    if (error)
        return error;
    long long reply_to = 0;
    cJSON *reply = s_param_json (params, "reply_parameters");
    if (cJSON_IsObject (reply))
        reply_to =
            (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (reply, "message_id"));
    else
        reply_to = s_param_long (params, "reply_to_message_id", 0);
    cJSON_Delete (reply);
    if (reply_to < 0)
        reply_to = 0;
    long long thread = s_param_long (params, "message_thread_id", 0);

    pthread_mutex_lock (&self->lock);
    long long message_id = self->next_message_id++;
    cJSON *entry = cJSON_CreateObject ();
    cJSON_AddNumberToObject (entry, "seq", (double) self->next_seq++);
    cJSON_AddStringToObject (entry, "chat_id", chat);
    cJSON_AddStringToObject (entry, "text", text);
    cJSON_AddNumberToObject (entry, "reply_to", (double) reply_to);
    cJSON_AddNumberToObject (entry, "message_id", (double) message_id);
    cJSON_AddNumberToObject (entry, "at_ms", (double) tg_wall_ms ());
    if (mode && *mode)
        cJSON_AddStringToObject (entry, "parse_mode", mode);
    if (thread)
        cJSON_AddNumberToObject (entry, "message_thread_id", (double) thread);
    cJSON_AddItemToArray (self->sent, entry);
    store_save (self);
    pthread_mutex_unlock (&self->lock);
    return tg_send_ok (req, s_message (self, message_id, chat, text, reply_to, thread));
}

static int
s_edit_message_text (tg_req_t *req, cJSON *params)
{
    tg_t *self = req->self;
    char chat_buf[32], text_buf[32], mode_buf[32];
    const char *chat = s_param_str (params, "chat_id", chat_buf, sizeof (chat_buf));
    const char *text = s_param_str (params, "text", text_buf, sizeof (text_buf));
    const char *mode = s_param_str (params, "parse_mode", mode_buf, sizeof (mode_buf));
    long long message_id = s_param_long (params, "message_id", 0);
    if (!chat || !*chat)
        return tg_send_error (req, 400, "Bad Request: chat_id is empty", NULL);
    int error = s_check_text (req, text, mode);
    if (error)
        return error;
    pthread_mutex_lock (&self->lock);
    cJSON *found = NULL, *entry;
    cJSON_ArrayForEach (entry, self->sent)
    {
        if (strcmp (cJSON_GetStringValue (cJSON_GetObjectItem (entry, "chat_id")), chat)
                == 0
            && (long long) cJSON_GetNumberValue (
                   cJSON_GetObjectItem (entry, "message_id"))
                   == message_id)
            found = entry;
    }
    const char *problem = NULL;
    long long reply_to = 0;
    if (!found)
        problem = "Bad Request: message to edit not found";
    else if (strcmp (cJSON_GetStringValue (cJSON_GetObjectItem (found, "text")), text)
             == 0)
        problem = NOT_MODIFIED;
    else {
        cJSON_ReplaceItemInObject (found, "text", cJSON_CreateString (text));
        cJSON *edits = cJSON_GetObjectItem (found, "edits");
        if (edits)
            cJSON_SetNumberValue (edits, edits->valuedouble + 1);
        else
            cJSON_AddNumberToObject (found, "edits", 1);
        reply_to =
            (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (found, "reply_to"));
        store_save (self);
    }
    pthread_mutex_unlock (&self->lock);
    if (problem)
        return tg_send_error (req, 400, problem, NULL);
    cJSON *msg = s_message (self, message_id, chat, text, reply_to, 0);
    cJSON_AddNumberToObject (msg, "edit_date", (double) time (NULL));
    return tg_send_ok (req, msg);
}

static int
s_send_chat_action (tg_req_t *req, cJSON *params)
{
    char chat_buf[32], action_buf[32];
    const char *chat = s_param_str (params, "chat_id", chat_buf, sizeof (chat_buf));
    const char *action = s_param_str (params, "action", action_buf, sizeof (action_buf));
    if (!chat || !*chat)
        return tg_send_error (req, 400, "Bad Request: chat_id is empty", NULL);
    if (!action || !*action)
        return tg_send_error (req, 400, "Bad Request: wrong parameter action in request",
                              NULL);
    return tg_send_ok (req, cJSON_CreateTrue ());
}

//  Sets (url not empty) or removes the webhook.  Either way a held
//  getUpdates is ended.
static void
s_set_webhook (tg_t *self, const char *url, const char *secret, bool drop)
{
    pthread_mutex_lock (&self->lock);
    free (self->webhook_url);
    free (self->webhook_secret);
    self->webhook_url = url && *url ? strdup (url) : NULL;
    self->webhook_secret = secret && *secret ? strdup (secret) : NULL;
    self->webhook_error[0] = 0;
    self->webhook_error_date = 0;
    if (drop) {
        store_clear_queue (self);
        store_save (self);
    }
    if (self->webhook_url)
        self->poll_gen++;
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
}

static int
s_webhook_set (tg_req_t *req, cJSON *params)
{
    char url_buf[32], secret_buf[32];
    const char *url = s_param_str (params, "url", url_buf, sizeof (url_buf));
    const char *secret =
        s_param_str (params, "secret_token", secret_buf, sizeof (secret_buf));
    if (!url)
        return tg_send_error (req, 400, "Bad Request: bad webhook: URL is empty", NULL);
    s_set_webhook (req->self, url, secret, s_param_bool (params, "drop_pending_updates"));
    return tg_send_ok (req, cJSON_CreateTrue ());
}

static int
s_webhook_delete (tg_req_t *req, cJSON *params)
{
    s_set_webhook (req->self, NULL, NULL, s_param_bool (params, "drop_pending_updates"));
    return tg_send_ok (req, cJSON_CreateTrue ());
}

static int
s_webhook_info (tg_req_t *req, cJSON *params)
{
    tg_t *self = req->self;
    cJSON *info = cJSON_CreateObject ();
    pthread_mutex_lock (&self->lock);
    cJSON_AddStringToObject (info, "url", self->webhook_url ? self->webhook_url : "");
    cJSON_AddBoolToObject (info, "has_custom_certificate", false);
    cJSON_AddNumberToObject (info, "pending_update_count", (double) self->queue_len);
    if (self->webhook_url)
        cJSON_AddNumberToObject (info, "max_connections", 40);
    if (self->webhook_error[0]) {
        cJSON_AddNumberToObject (info, "last_error_date",
                                 (double) self->webhook_error_date);
        cJSON_AddStringToObject (info, "last_error_message", self->webhook_error);
    }
    pthread_mutex_unlock (&self->lock);
    return tg_send_ok (req, info);
}

//  ---- Dispatch -------------------------------------------------------------------

//  Answers a call as a fault rule says.
static int
s_fault (tg_req_t *req, fault_t *f)
{
    char text[128];
    cJSON *parameters;
    switch (f->kind) {
    case FAULT_429:
        snprintf (text, sizeof (text), "Too Many Requests: retry after %d",
                  f->retry_after);
        parameters = cJSON_CreateObject ();
        cJSON_AddNumberToObject (parameters, "retry_after", f->retry_after);
        return tg_send_error (req, 429, text, parameters);
    case FAULT_409: return tg_send_error (req, 409, CONFLICT_POLL, NULL);
    case FAULT_500: return tg_send_error (req, 500, "Internal Server Error", NULL);
    case FAULT_502: return tg_send_error (req, 502, "Bad Gateway", NULL);
    case FAULT_403:
        return tg_send_error (req, 403, "Forbidden: bot was blocked by the user", NULL);
    case FAULT_401: return tg_send_error (req, 401, "Unauthorized", NULL);
    case FAULT_TOO_LONG:
        return tg_send_error (req, 400, "Bad Request: message is too long", NULL);
    case FAULT_MIGRATE:
        parameters = cJSON_CreateObject ();
        cJSON_AddNumberToObject (parameters, "migrate_to_chat_id",
                                 (double) f->migrate_to);
        return tg_send_error (req, 400,
                              "Bad Request: group chat was upgraded to a supergroup chat",
                              parameters);
    case FAULT_HANG:
        tg_pause (req, -1);
        tg_hang_up (req);
        return 499;
    case FAULT_DROP:
    default: tg_hang_up (req); return 499;
    }
}

int
botapi_call (tg_req_t *req, const char *method, cJSON *params)
{
    tg_t *self = req->self;
    int index = 0;
    while (s_methods[index] && strcasecmp (s_methods[index], method) != 0)
        index++;
    const char *name = s_methods[index] ? s_methods[index] : method;
    char chat_buf[32];
    const char *chat = s_param_str (params, "chat_id", chat_buf, sizeof (chat_buf));
    fault_t fault;
    pthread_mutex_lock (&self->lock);
    store_count (self, name);
    bool faulted = store_take_fault (self, name, chat ? chat : "", &fault);
    pthread_mutex_unlock (&self->lock);
    if (faulted)
        return s_fault (req, &fault);
    switch (index) {
    case 0: return s_get_me (req, params);
    case 1: return s_get_updates (req, params);
    case 2: return s_send_message (req, params);
    case 3: return s_send_chat_action (req, params);
    case 4: return s_edit_message_text (req, params);
    case 5: return s_webhook_set (req, params);
    case 6: return s_webhook_delete (req, params);
    case 7: return s_webhook_info (req, params);
    default: return tg_send_error (req, 404, "Not Found", NULL);
    }
}

//  Zeroes the counters of every method, so /control/calls lists them all.
void
botapi_zero_calls (tg_t *self)
{
    cJSON_Delete (self->calls);
    self->calls = cJSON_CreateObject ();
    for (int i = 0; s_methods[i]; i++)
        cJSON_AddNumberToObject (self->calls, s_methods[i], 0);
}
