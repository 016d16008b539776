/*  =========================================================================
    discord - the Discord channel: the Gateway WebSocket in, REST out

    Start: GET /gateway/bot (the gateway's URL; a bad token stops here),
    then the WebSocket (?v=10&encoding=json).  Hello gives the heartbeat
    interval: the first beat goes after a random part of it, then one per
    interval carrying the last sequence number; a beat whose ACK has not
    come by the next one means a dead ("zombie") connection, dropped
    without a close frame so that its session can be resumed; so is a
    connection with no Hello, or no READY/RESUMED, within pollTimeoutS.
    Identify
    asks for guild messages, direct messages and message content
    (intents 37377); READY gives the session id and resume_gateway_url.

    Resuming is the rule, identifying anew the exception (a new session
    loses what was sent meanwhile): a drop, op 7 Reconnect, a resumable
    op 9, or any close but the fatal ones reconnect to resume_gateway_url
    and send Resume with the session id and the last sequence; Discord
    replays what was missed, then RESUMED.  Only op 9 "not resumable",
    4007/4009, or three Resumes that failed in a row identify anew.  The
    session id, resume URL and the sequence of the last stored message are
    kept in the channel store, so a restart (kill -9 too) resumes as well
    while Discord keeps the session (a few minutes).  4004 (bad token),
    4010-4014 (shard, API version, intents: enable "Message Content Intent"
    in the Developer Portal) stop the channel with that error, and it is
    not tried again until enabled again: no crash loop, no Identify spent.

    Messages: MESSAGE_CREATE of type 0 or 19 (reply) with text; the bot's
    own, other bots' and webhooks' are skipped.  A DM has no guild_id; in a
    guild the bot is "mentioned" when its id is in mentions or the message
    replies to one of its own.  groups may list channel ids or guild ids.
    Each message is stored (with its sequence number as the cursor) before
    anything else: a message Discord replays is answered once.

    Replies: POST /channels/{id}/messages, split under 2000, the first part
    replying to the user's message, no mentions pinged (allowed_mentions
    empty), and a nonce per part with enforce_nonce, so that a part sent
    again after a crash or a timeout is not posted twice.  Rate limits: a
    route whose X-RateLimit-Remaining is 0 waits its Reset-After before the
    next send (no call made to be refused); a 429 waits retry_after (float
    seconds), for every channel when global.  5xx and the network are
    retried; 400/403/404 are permanent; 401 marks the channel error.
    Typing: POST /channels/{id}/typing.  The token is in a header only.
    =========================================================================
*/
#include "channel_internal.h"
#include "chat_parse.h"
#include "json_in.h"
#include "log.h"
#include "msg_names.h"
#include "wsclient.h"

#include <math.h>
#include <string.h>

#define DC_DEFAULT_BASE "https://discord.com/api/v10"
#define DC_CALL_MS 30000
#define DC_INTENTS 37377      //  GUILDS, GUILD_MESSAGES, DIRECT_MESSAGES, MESSAGE_CONTENT
#define DC_RESUME_TRIES 3     //  Failed Resumes in a row before a new session
#define DC_MAX_BUCKETS 10000  //  Routes whose rate limit is tracked
#define DC_MAX_FRAME (4u << 20)  //  Largest gateway message taken

typedef struct {
    chan_t *ch;
    char api[1024];     //  baseUrl without its trailing '/'
    char auth[600];     //  "Authorization: Bot <token>" (secret)
    chan_http_t *call;  //  GET /gateway/bot
    int failures;       //  Connections that failed in a row
    //  The gateway.
    char gateway_url[512];  //  From /gateway/bot, "" until asked
    char session_id[128];   //  "" when there is no session to resume
    char resume_url[512];
    int64_t seq;  //  Last sequence number, -1: none
    int resume_fails;
    bool resuming;  //  Resume sent, RESUMED not yet come
    bool stopped;   //  A fatal close: not tried again until enabled
    wsc_t *ws;
    int beat;  //  Heartbeat (or Hello deadline) timer, or -1
    int interval;
    bool acked;  //  The last beat's ACK came
    bool hello;
    //  The bot.
    char bot_id[32];
    char bot_name[100];
    //  Rate limits: route (channel id) -> until (zclock_mono ms).
    zhashx_t *buckets;
    int64_t global_until;
} dc_t;

static dc_t *
s_dc (chan_t *ch)
{
    return (dc_t *) ch->transport;
}

static void
s_connect (chan_t *ch);
static void
s_gateway_bot (chan_t *ch);

//  The session is gone: the next connection identifies.
static void
s_forget_session (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    dc->session_id[0] = 0;
    dc->resume_url[0] = 0;
    dc->seq = -1;
    dc->resume_fails = 0;
    chanstore_set_transport (ch->self->store, ch->platform->id, "");
}

static void
s_beat_end (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    if (dc->beat >= 0)
        zloop_timer_end (ch->self->loop, dc->beat);
    dc->beat = -1;
}

//  Drops the connection (no close frame: the session stays resumable) and
//  connects again after delay_ms.
static void
s_reconnect (chan_t *ch, const char *why, int delay_ms)
{
    dc_t *dc = s_dc (ch);
    s_beat_end (ch);
    wsc_destroy (&dc->ws);
    if (dc->resuming && ++dc->resume_fails >= DC_RESUME_TRIES) {
        log_warn ("channel", "discord: %d resumes failed: identifying anew",
                  dc->resume_fails);
        s_forget_session (ch);
    }
    dc->resuming = false;
    dc->hello = false;
    dc->failures++;
    chan_set_status (ch, "disconnected", why);
    chan_later (ch, delay_ms >= 0 ? delay_ms : chan_backoff_ms (ch, dc->failures),
                s_connect);
}

//  ---- Sending on the gateway ----------------------------------------------------------

static void
s_send_json (chan_t *ch, cJSON *frame)
{
    dc_t *dc = s_dc (ch);
    char *text = cJSON_PrintUnformatted (frame);
    cJSON_Delete (frame);
    if (text && dc->ws)
        wsc_send_text (dc->ws, text, strlen (text));
    free (text);
}

static void
s_heartbeat (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    cJSON *f = cJSON_CreateObject ();
    cJSON_AddNumberToObject (f, "op", 1);
    if (dc->seq >= 0)
        cJSON_AddNumberToObject (f, "d", (double) dc->seq);
    else
        cJSON_AddNullToObject (f, "d");
    dc->acked = false;
    s_send_json (ch, f);
}

static int
s_on_beat (zloop_t *loop, int timer_id, void *arg)
{
    chan_t *ch = (chan_t *) arg;
    dc_t *dc = s_dc (ch);
    dc->beat = -1;
    if (!dc->hello) {
        s_reconnect (ch, "Discord sent no Hello", -1);
        return 0;
    }
    if (!dc->acked) {
        log_warn ("channel",
                  "discord: no heartbeat ACK: the connection is dead; resuming");
        s_reconnect (ch, "no heartbeat ACK (zombie connection)", 0);
        return 0;
    }
    s_heartbeat (ch);
    dc->beat = zloop_timer (loop, (size_t) dc->interval, 1, s_on_beat, ch);
    return 0;
}

static void
s_identify (chan_t *ch)
{
    cJSON *f = cJSON_CreateObject ();
    cJSON_AddNumberToObject (f, "op", 2);
    cJSON *d = cJSON_AddObjectToObject (f, "d");
    cJSON_AddStringToObject (d, "token", ch->cfg->bot_token ? ch->cfg->bot_token : "");
    cJSON_AddNumberToObject (d, "intents", DC_INTENTS);
    cJSON *p = cJSON_AddObjectToObject (d, "properties");
    cJSON_AddStringToObject (p, "os", "linux");
    cJSON_AddStringToObject (p, "browser", "clawgate");
    cJSON_AddStringToObject (p, "device", "clawgate");
    log_info ("channel", "discord: identifying (a new session)");
    s_send_json (ch, f);
}

static void
s_resume (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    cJSON *f = cJSON_CreateObject ();
    cJSON_AddNumberToObject (f, "op", 6);
    cJSON *d = cJSON_AddObjectToObject (f, "d");
    cJSON_AddStringToObject (d, "token", ch->cfg->bot_token ? ch->cfg->bot_token : "");
    cJSON_AddStringToObject (d, "session_id", dc->session_id);
    if (dc->seq >= 0)
        cJSON_AddNumberToObject (d, "seq", (double) dc->seq);
    else
        cJSON_AddNullToObject (d, "seq");
    dc->resuming = true;
    log_info ("channel", "discord: resuming session from sequence %lld",
              (long long) dc->seq);
    s_send_json (ch, f);
}

//  ---- Receiving -------------------------------------------------------------------------

typedef struct {
    chan_t *ch;
    int64_t seq;
} dc_take_t;

static int
s_store (void *arg, const inbound_t *in)
{
    dc_take_t *t = (dc_take_t *) arg;
    return chan_ingest (t->ch, in, 1, t->seq, NULL);
}

//  A MESSAGE_CREATE of sequence seq: stored if it is for us.  The
//  sequence is stored with it (the cursor a restart resumes from).
static void
s_message (chan_t *ch, const cJSON *d, int64_t seq)
{
    dc_take_t t = {ch, seq};
    if (dc_parse_message (d, s_dc (ch)->bot_id, s_store, &t) < 0) {
        //  Not stored: the Resume asks from just before it, so Discord
        //  replays it.
        if (seq > 0)
            s_dc (ch)->seq = seq - 1;
        s_reconnect (ch, "the channel store failed", -1);
    }
}

static void
s_dispatch (chan_t *ch, const char *t, const cJSON *d, int64_t seq)
{
    dc_t *dc = s_dc (ch);
    if (streq (t, "READY")) {
        const char *sid =
            cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (d, "session_id"));
        const char *rurl = cJSON_GetStringValue (
            cJSON_GetObjectItemCaseSensitive (d, "resume_gateway_url"));
        const cJSON *user = cJSON_GetObjectItemCaseSensitive (d, "user");
        const char *uid =
            cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (user, "id"));
        const char *uname =
            cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (user, "username"));
        snprintf (dc->session_id, sizeof (dc->session_id), "%s", sid ? sid : "");
        snprintf (dc->resume_url, sizeof (dc->resume_url), "%s",
                  rurl ? rurl : dc->gateway_url);
        snprintf (dc->bot_id, sizeof (dc->bot_id), "%s", uid ? uid : "");
        snprintf (dc->bot_name, sizeof (dc->bot_name), "%s", uname ? uname : "");
        char saved[700];
        snprintf (saved, sizeof (saved), "%s\t%s\t%s", dc->session_id, dc->resume_url,
                  dc->bot_id);
        chanstore_set_transport (ch->self->store, ch->platform->id, saved);
        log_info ("channel", "discord: ready as %s (%s)", dc->bot_name, dc->bot_id);
    }
    else if (streq (t, "RESUMED"))
        log_info ("channel", "discord: session resumed");
    else if (streq (t, "MESSAGE_CREATE"))
        s_message (ch, d, seq);
    if (streq (t, "READY") || streq (t, "RESUMED")) {
        chan_later_end (ch);
        dc->resuming = false;
        dc->resume_fails = 0;
        dc->failures = 0;
        chan_set_status (ch, "connected", NULL);
    }
}

static void
s_invalid_session (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    //  Discord asks for a wait of 1 to 5 s before the next try.
    int wait_ms = 1000 + (int) randof (4000);
    if (ch->cfg->retry_min_ms < 1000)
        wait_ms = ch->cfg->retry_min_ms;
    s_beat_end (ch);
    wsc_destroy (&dc->ws);
    dc->hello = false;
    dc->resuming = false;
    chan_later (ch, wait_ms, s_connect);
}

static void
s_no_ready (chan_t *ch)
{
    s_reconnect (ch, "Discord sent no READY", -1);
}

static void
s_frame (chan_t *ch, const char *data, size_t len)
{
    dc_t *dc = s_dc (ch);
    cJSON *root = json_in_parse (data, len, DC_MAX_FRAME, JSON_IN_OBJECT, NULL, NULL);
    const cJSON *op = cJSON_GetObjectItemCaseSensitive (root, "op");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive (root, "d");
    if (!cJSON_IsNumber (op)) {
        log_warn ("channel", "discord: a gateway frame that is not Discord's skipped");
        cJSON_Delete (root);
        return;
    }
    switch (op->valueint) {
    case 10: {  //  Hello
        const cJSON *hb = cJSON_GetObjectItemCaseSensitive (d, "heartbeat_interval");
        int interval =
            cJSON_IsNumber (hb) && hb->valuedouble >= 100 && hb->valuedouble <= 600000
                ? (int) hb->valuedouble
                : 0;
        if (interval < 100 || interval > 600000) {
            cJSON_Delete (root);
            s_reconnect (ch, "Discord's Hello had no usable heartbeat_interval", -1);
            return;
        }
        dc->interval = interval;
        dc->hello = true;
        dc->acked = true;
        s_beat_end (ch);
        //  The first beat after a random part of the interval (jitter).
        dc->beat = zloop_timer (ch->self->loop, (size_t) (randof (interval) + 1), 1,
                                s_on_beat, ch);
        if (dc->session_id[0])
            s_resume (ch);
        else
            s_identify (ch);
        //  Hello, but no READY (or RESUMED) in time: heartbeats alone say
        //  nothing of a session, so the connection is of no use.
        chan_later (ch, ch->cfg->poll_timeout_s * 1000, s_no_ready);
        break;
    }
    case 11:  //  Heartbeat ACK
        dc->acked = true;
        break;
    case 1:  //  Discord asks for a beat now
        s_heartbeat (ch);
        break;
    case 0: {  //  Dispatch
        const cJSON *s = cJSON_GetObjectItemCaseSensitive (root, "s");
        const char *t =
            cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "t"));
        int64_t seq = cJSON_IsNumber (s) && s->valuedouble >= 0 && s->valuedouble < 9e15
                          ? (int64_t) s->valuedouble
                          : -1;
        if (seq > dc->seq)
            dc->seq = seq;
        if (t)
            s_dispatch (ch, t, d, seq);
        break;
    }
    case 7:  //  Reconnect
        log_info ("channel", "discord: asked to reconnect; resuming");
        s_reconnect (ch, NULL, 0);
        break;
    case 9:  //  Invalid Session: d says whether it can be resumed
        if (!cJSON_IsTrue (d)) {
            log_warn ("channel",
                      "discord: the session cannot be resumed: identifying anew");
            s_forget_session (ch);
        }
        else
            log_info ("channel", "discord: invalid session (resumable): resuming");
        s_invalid_session (ch);
        break;
    default: break;
    }
    cJSON_Delete (root);
}

//  Close codes after which trying again cannot help.
static const char *
s_fatal (int code)
{
    switch (code) {
    case 4004: return "authentication failed: check botToken";
    case 4010: return "invalid shard";
    case 4011: return "sharding required";
    case 4012: return "invalid API version";
    case 4013: return "invalid intents";
    case 4014:
        return "disallowed intents: enable the Message Content Intent for the bot in "
               "the Developer Portal";
    default: return NULL;
    }
}

static void
s_ws_event (wsc_t *ws, wsc_event_t event, const char *data, size_t len, int code,
            void *arg)
{
    chan_t *ch = (chan_t *) arg;
    dc_t *dc = s_dc (ch);
    if (ws != dc->ws)
        return;
    if (event == WSC_OPEN) {
        //  Hello is due now; without it the connection is of no use.
        s_beat_end (ch);
        dc->beat = zloop_timer (ch->self->loop, (size_t) ch->cfg->poll_timeout_s * 1000,
                                1, s_on_beat, ch);
        return;
    }
    if (event == WSC_TEXT) {
        s_frame (ch, data, len);
        return;
    }
    char why[300];
    const char *fatal = s_fatal (code);
    snprintf (why, sizeof (why), "Discord closed the gateway: %d %s", code,
              fatal  ? fatal
              : data ? data
                     : "");
    if (fatal) {
        chan_later_end (ch);
        s_beat_end (ch);
        wsc_destroy (&dc->ws);
        dc->stopped = true;
        chan_set_status (ch, "error", why);
        return;
    }
    if (code == 4007 || code == 4009) {
        //  Invalid sequence, session timed out: a new session.
        s_forget_session (ch);
    }
    s_reconnect (ch, why, -1);
}

//  ---- Connecting ----------------------------------------------------------------------

static void
s_connect (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    if (!ch->running || dc->stopped || dc->ws)
        return;
    const char *base =
        dc->session_id[0] && dc->resume_url[0] ? dc->resume_url : dc->gateway_url;
    if (!*base) {
        s_gateway_bot (ch);
        return;
    }
    //  "wss://host" or "wss://host/path": the version and encoding added.
    char url[700];
    const char *host = strstr (base, "://");
    bool has_path = host && strchr (host + 3, '/');
    snprintf (url, sizeof (url), "%s%s%cv=10&encoding=json", base, has_path ? "" : "/",
              strchr (base, '?') ? '&' : '?');
    wsc_opts_t opts = {.max_message = DC_MAX_FRAME,
                       .connect_timeout_ms = 10000,
                       .user_agent = "DiscordBot (https://github.com/clawgate, 1.0)"};
    dc->hello = false;
    dc->ws = wsc_connect (ch->self->loop, url, &opts, s_ws_event, ch);
    if (!dc->ws) {
        dc->gateway_url[0] = 0;
        s_reconnect (ch, "a gateway URL we cannot use", -1);
    }
}

static void
s_on_gateway_bot (void *arg, long status, const char *body, size_t len, const char *error,
                  const char *retry_after)
{
    chan_t *ch = (chan_t *) arg;
    dc_t *dc = s_dc (ch);
    dc->call = NULL;
    cJSON *root = json_in_parse (body, len, CHAN_MAX_BODY, JSON_IN_OBJECT, NULL, NULL);
    const char *url =
        cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "url"));
    const char *message =
        cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "message"));
    char why[300];
    if (!status)
        snprintf (why, sizeof (why), "GET /gateway/bot: %s", error ? error : "no answer");
    else
        snprintf (why, sizeof (why), "GET /gateway/bot: HTTP %ld %s", status,
                  message ? message : "");
    if (status == 200 && url && strlen (url) < sizeof (dc->gateway_url)
        && (!strncmp (url, "wss://", 6) || !strncmp (url, "ws://", 5))) {
        snprintf (dc->gateway_url, sizeof (dc->gateway_url), "%s", url);
        cJSON_Delete (root);
        s_connect (ch);
        return;
    }
    cJSON_Delete (root);
    dc->failures++;
    if (status == 401 || status == 403) {
        chan_set_status (ch, "error", why);
        chan_later (ch, ch->cfg->retry_max_ms, s_connect);
    }
    else if (status == 429)
        chan_later (ch, chan_retry_after_ms (retry_after, 1000), s_connect);
    else {
        chan_set_status (ch, "disconnected", why);
        chan_later (ch, chan_backoff_ms (ch, dc->failures), s_connect);
    }
}

static void
s_gateway_bot (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    if (dc->call)
        return;
    char url[1200];
    snprintf (url, sizeof (url), "%s/gateway/bot", dc->api);
    const char *headers[] = {dc->auth, NULL};
    dc->call =
        chan_http_call (ch->self, url, NULL, headers, DC_CALL_MS, s_on_gateway_bot, ch);
    if (!dc->call)
        s_on_gateway_bot (ch, 0, "", 0, "the call could not start", NULL);
}

static void
s_start (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    if (!dc) {
        dc = (dc_t *) calloc (1, sizeof (dc_t));
        if (!dc || !(dc->buckets = zhashx_new ())) {
            free (dc);
            chan_set_status (ch, "error", "out of memory");
            return;
        }
        zhashx_set_destructor (dc->buckets, (zhashx_destructor_fn *) zstr_free);
        ch->transport = dc;
        dc->ch = ch;
    }
    dc->beat = -1;
    dc->stopped = false;
    dc->failures = 0;
    const char *base;
    int blen = chan_base_url (ch, &base);
    snprintf (dc->api, sizeof (dc->api), "%.*s", blen, base);
    snprintf (dc->auth, sizeof (dc->auth), "Authorization: Bot %s",
              ch->cfg->bot_token ? ch->cfg->bot_token : "");
    //  A session the last run left (a restart resumes it), and its sequence.
    char saved[700];
    dc->seq = -1;
    if (chanstore_transport (ch->self->store, ch->platform->id, saved, sizeof (saved))
        == 1) {
        char *tab = strchr (saved, '\t');
        char *tab2 = tab ? strchr (tab + 1, '\t') : NULL;
        if (tab && tab2 && tab != saved
            && (size_t) (tab - saved) < sizeof (dc->session_id)
            && (size_t) (tab2 - tab - 1) < sizeof (dc->resume_url)
            && strlen (tab2 + 1) < sizeof (dc->bot_id)) {
            *tab = *tab2 = 0;
            memcpy (dc->session_id, saved, (size_t) (tab - saved) + 1);
            memcpy (dc->resume_url, tab + 1, (size_t) (tab2 - tab));
            memcpy (dc->bot_id, tab2 + 1, strlen (tab2 + 1) + 1);
            int64_t cursor;
            if (chanstore_cursor (ch->self->store, ch->platform->id, &cursor) == 1)
                dc->seq = cursor;
        }
    }
    s_connect (ch);
}

static void
s_stop (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    if (!dc)
        return;
    chan_http_cancel (ch->self, &dc->call);
    s_beat_end (ch);
    //  No close frame: the session stays resumable for the next start.
    wsc_destroy (&dc->ws);
    dc->hello = false;
    dc->resuming = false;
}

static void
s_fini (chan_t *ch)
{
    dc_t *dc = s_dc (ch);
    if (dc)
        zhashx_destroy (&dc->buckets);
    free (dc);
    ch->transport = NULL;
}

//  ---- REST ----------------------------------------------------------------------------

static int
s_hold (chan_t *ch, const char *chat_id)
{
    dc_t *dc = s_dc (ch);
    int64_t now = zclock_mono ();
    int64_t until = dc->global_until;
    const char *b = (const char *) zhashx_lookup (dc->buckets, chat_id);
    if (b) {
        int64_t u = strtoll (b, NULL, 10);
        if (u <= now)
            zhashx_delete (dc->buckets, chat_id);
        else if (u > until)
            until = u;
    }
    return until > now ? (int) (until - now) : 0;
}

static void
s_bucket_wait (dc_t *dc, const char *chat_id, int64_t ms)
{
    if (zhashx_size (dc->buckets) >= DC_MAX_BUCKETS
        && !zhashx_lookup (dc->buckets, chat_id))
        return;
    char until[24];
    snprintf (until, sizeof (until), "%lld", (long long) (zclock_mono () + ms));
    zhashx_update (dc->buckets, chat_id, strdup (until));
}

static void
s_on_sent (void *arg, long status, const char *body, size_t len, const char *error,
           const char *retry_after)
{
    job_t *job = (job_t *) arg;
    chan_t *ch = job->ch;
    dc_t *dc = s_dc (ch);
    job->platform_data = NULL;
    //  The route's bucket: spent, it waits Reset-After before the next.
    char remaining[16], reset[32];
    if (chan_http_header (ch->self, "X-RateLimit-Remaining", remaining,
                          sizeof (remaining))
        && !strcmp (remaining, "0")
        && chan_http_header (ch->self, "X-RateLimit-Reset-After", reset,
                             sizeof (reset))) {
        double s = atof (reset);
        if (s > 0 && s < 3600)
            s_bucket_wait (dc, job->chat_id, (int64_t) ceil (s * 1000));
    }
    cJSON *root = json_in_parse (body, len, CHAN_MAX_BODY, JSON_IN_OBJECT, NULL, NULL);
    const char *message =
        cJSON_GetStringValue (cJSON_GetObjectItemCaseSensitive (root, "message"));
    const cJSON *code = cJSON_GetObjectItemCaseSensitive (root, "code");
    char why[300];
    if (!status)
        snprintf (why, sizeof (why), "messages: %s", error ? error : "no answer");
    else
        snprintf (why, sizeof (why), "messages: HTTP %ld, code %d: %s", status,
                  cJSON_IsNumber (code) ? code->valueint : 0, message ? message : "");
    if (status == 200)
        chan_sent (ch, job, SEND_OK, 0, NULL);
    else if (status == 429) {
        const cJSON *ra = cJSON_GetObjectItemCaseSensitive (root, "retry_after");
        double s = cJSON_IsNumber (ra) && ra->valuedouble > 0 && ra->valuedouble < 3600
                       ? ra->valuedouble
                       : chan_retry_after_ms (retry_after, 1000) / 1000.0;
        int64_t ms = (int64_t) ceil ((s > 0 ? s : 1) * 1000);
        if (cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (root, "global")))
            dc->global_until = zclock_mono () + ms;
        else
            s_bucket_wait (dc, job->chat_id, ms);
        chan_sent (ch, job, SEND_RETRY, (int) ms, why);
    }
    else if (status == 0 || status >= 500)
        chan_sent (ch, job, SEND_RETRY, 0, why);
    else
        chan_sent (ch, job, status == 401 ? SEND_REFUSED : SEND_PERMANENT, 0, why);
    cJSON_Delete (root);
}

static int
s_send (chan_t *ch, job_t *job)
{
    dc_t *dc = s_dc (ch);
    cJSON *b = cJSON_CreateObject ();
    cJSON_AddStringToObject (b, "content", chan_part (job));
    cJSON_AddArrayToObject (cJSON_AddObjectToObject (b, "allowed_mentions"), "parse");
    if (job->parts_sent == 0 && *job->reply_to) {
        cJSON *ref = cJSON_AddObjectToObject (b, "message_reference");
        cJSON_AddStringToObject (ref, "message_id", job->reply_to);
        cJSON_AddBoolToObject (ref, "fail_if_not_exists", false);
    }
    //  One nonce per part (at most 25 characters): Discord posts a part
    //  sent again (a timeout, a restart) once.
    char nonce[26];
    snprintf (nonce, sizeof (nonce), "cg%lld.%d", (long long) job->row, job->parts_sent);
    cJSON_AddStringToObject (b, "nonce", nonce);
    cJSON_AddBoolToObject (b, "enforce_nonce", true);
    char *body = cJSON_PrintUnformatted (b);
    cJSON_Delete (b);
    char url[1200];
    snprintf (url, sizeof (url), "%s/channels/%s/messages", dc->api, job->chat_id);
    const char *headers[] = {dc->auth, NULL};
    job->platform_data =
        body ? chan_http_post (ch->self, url, body, headers, DC_CALL_MS, s_on_sent, job)
             : NULL;
    free (body);
    return job->platform_data ? 0 : -1;
}

static int
s_typing (chan_t *ch, const char *chat_id)
{
    dc_t *dc = s_dc (ch);
    char url[1200];
    snprintf (url, sizeof (url), "%s/channels/%s/typing", dc->api, chat_id);
    const char *headers[] = {dc->auth, NULL};
    return chan_http_post (ch->self, url, "", headers, DC_CALL_MS, chan_call_done, ch)
               ? 0
               : -1;
}

static void
s_status (chan_t *ch, mp_writer_t *w)
{
    dc_t *dc = s_dc (ch);
    if (!dc)
        return;
    if (dc->bot_id[0]) {
        mp_key (w, MK_bot);
        mp_map_begin (w);
        mp_kv_str (w, MK_id, dc->bot_id);
        mp_kv_str (w, "username", dc->bot_name);
        mp_map_end (w);
    }
    mp_kv_bool (w, "resumable", dc->session_id[0] != 0);
}

const platform_t platform_discord = {.id = "discord",
                                     .name = "Discord",
                                     .default_base_url = DC_DEFAULT_BASE,
                                     .limit = 2000,
                                     .unit = SPLIT_CODEPOINTS,
                                     .people = true,
                                     .start = s_start,
                                     .stop = s_stop,
                                     .fini = s_fini,
                                     .send = s_send,
                                     .hold = s_hold,
                                     .typing = s_typing,
                                     .status = s_status};
