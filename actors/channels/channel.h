/*  =========================================================================
    channel - the chat channels' actor: Telegram, the generic webhook, ...

    Service "channel" (schemas/messages.def, CHANNEL_* and HOOK_RUN).  One
    actor serves every channel: a shared core (access control, durable
    ingress, the runs, split replies, retries, status) and one file per
    platform's transport.  What reaches it is stored before the platform is
    told it was received, and answered once (docs/channels.md).

    Start: zactor_new (channel_actor, &actor_args) (actor_start "channel").
    Run one channel actor per deployment: two would both poll Telegram.
    =========================================================================
*/
#ifndef CG_CHANNEL_H
#define CG_CHANNEL_H

#include <czmq.h>
#include <stdbool.h>

//  A hook of the generic webhook channel (channels.webhook.hooks.<name>).
//  Strings owned by the configuration.
typedef struct {
    char *name;          //  [A-Za-z0-9_-], 1-64: POST /v1/hooks/<name>
    char *token;         //  Its own secret (Authorization: Bearer, or
                         //  X-OpenClaw-Token)
    char *callback_url;  //  Replies are POSTed there, or NULL: in the
                         //  response
    char *agent_id;      //  Or NULL: the channel's
} cfg_hook_t;

//  A chat channel as configured (channels.<id>).  Strings and lists owned by
//  the configuration; the key table (config/keys.c) documents each.
typedef struct {
    char *id;  //  "telegram", "webhook", ...
    bool enabled;
    char *base_url;         //  The platform's API root; NULL: its default
    char *bot_token;        //  Telegram, Discord, Slack (xoxb-): also <ID>_BOT_TOKEN
    char *app_token;        //  Slack Socket Mode (xapp-): also SLACK_APP_TOKEN
    char *signing_secret;   //  Slack HTTP mode: also SLACK_SIGNING_SECRET
    char *access_token;     //  WhatsApp: also WHATSAPP_ACCESS_TOKEN
    char *phone_number_id;  //  WhatsApp: the number replies come from
    char *app_secret;       //  WhatsApp: signs pushes; also WHATSAPP_APP_SECRET
    char *verify_token;     //  WhatsApp: the verification GET's token
    char *mode;             //  Telegram: polling | webhook; Slack: socket | http
    char *webhook_secret;   //  Telegram webhook mode: required
    char *webhook_url;      //  Telegram webhook mode: set at start if given
    char *dm_policy;        //  pairing (default) | allowlist | open | disabled
    char **allow_from;      //  Senders who need no pairing ("*": anyone)
    char *group_policy;     //  allowlist (default) | open | disabled
    char **groups;          //  Allowed group ids ("*": any)
    bool require_mention;   //  In groups, answer only when mentioned
    int text_chunk_limit;   //  Split size; 0: the platform's limit
    char *agent_id;         //  The agent that answers; NULL: "default"
    int poll_timeout_s;     //  Telegram long-poll timeout
    int retry_min_ms;       //  Reconnect / resend backoff, first step
    int retry_max_ms;       //  ... and largest step
    int send_attempts;      //  Tries of a reply part before giving up
    cfg_hook_t *hooks;      //  The webhook channel's hooks
    size_t n_hooks;
} cfg_channel_t;

//  Channel runs going at once; more wait, stored.
#define CHANNEL_MAX_RUNS 256

//  What the channel actor reads.
typedef struct {
    const cfg_channel_t *channels;  //  Lent by the configuration
    size_t n_channels;
    const char *state_dir;  //  Its store: <state_dir>/channels.db
    int run_timeout_ms;     //  Deadline of a channel's run
    int max_runs;           //  Runs in flight at most; the rest wait stored
} channel_settings_t;

//  The channel ids, in the order lists show them, NULL-terminated.
extern const char *const channel_ids[];

//  The configured channel id, or NULL.
const cfg_channel_t *
channel_config_find (const cfg_channel_t *channels, size_t n, const char *id);

void
channel_actor (zsock_t *pipe, void *args);

#endif
