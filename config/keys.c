/*  =========================================================================
    keys - the configuration's key table, and the loops it drives

    The table is the one place a scalar key is declared.  Its order is the
    order the loader reads the file in (so the first of several errors is
    the one reported), and the order of the README's reference.
    =========================================================================
*/
#include "keys.h"

#include "bus_proto.h"

#include <assert.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CFG(f) offsetof (cg_config_t, f)
#define ACT(f) offsetof (cg_config_t, actors.f)
#define FLAG(f) offsetof (cfg_flags_t, f)
#define TOK(f) offsetof (cfg_token_t, f)
#define PROV(f) offsetof (cfg_provider_t, f)
#define AGENT(f) offsetof (cfg_agent_t, f)
#define CHAN(f) offsetof (cfg_channel_t, f)
#define MIB (1024LL * 1024)

//  One row per key, a few fields a line: clang-format would put each field
//  on a line of its own and triple the table.
// clang-format off
const config_key_t config_keys[] = {
    //  ---- Top level ----
    {.key = "bind", .type = KEY_STRING, .at = CFG (bind),
     .def_text = "127.0.0.1", .env = "CLAWGATE_BIND", .flag_at = FLAG (bind),
     .flag = "--bind", .values = "one address",
     .help = "listen address"},
    {.key = "port", .type = KEY_INT, .at = CFG (port), .min = 0, .max = 65535,
     .def = 18789, .env = "CLAWGATE_PORT", .flag_at = FLAG (port),
     .flag = "--port",
     .help = "listen port (`0` picks a free one and prints it)"},
    {.key = "stateDir", .type = KEY_STRING, .at = CFG (state_dir),
     .also = {ACT (session.state_dir), ACT (browser.state_dir)},
     .def_text = "~/.clawgate", .env = "CLAWGATE_STATE_DIR",
     .flag_at = FLAG (state_dir), .flag = "--state-dir",
     .help = "state: token file, `clawgate.db` (sessions), browser profiles"},
    {.key = "logLevel", .type = KEY_STRING, .at = CFG (log_level),
     .def_text = "info", .env = "CLAWGATE_LOG_LEVEL",
     .values = "debug, info, warn or error", .help = "log level"},

    //  ---- auth ----
    {.key = "auth.mode", .type = KEY_AUTH, .at = CFG (auth_mode),
     .def = AUTH_TOKEN, .env = "CLAWGATE_AUTH",
     .values = "token, password, token+password or none",
     .help = "credentials a client shows (`both` = `token+password`); "
             "`none` only on a loopback bind"},
    {.key = "auth.token", .type = KEY_STRING, .at = CFG (token),
     .env = "CLAWGATE_TOKEN", .values = "at least 16 characters",
     .shown = "generated into `<stateDir>/token`",
     .help = "main token, all scopes"},
    {.key = "auth.password", .type = KEY_STRING, .at = CFG (password),
     .env = "CLAWGATE_PASSWORD",
     .help = "password, all scopes (needed by the password modes)"},
    {.key = "auth.tokens[].token", .type = KEY_STRING, .in = KEY_IN_TOKEN,
     .at = TOK (token), .values = "at least 16 characters",
     .help = "an extra token (required in each entry)"},
    {.key = "auth.tokens[].name", .type = KEY_STRING, .in = KEY_IN_TOKEN,
     .at = TOK (name), .shown = "`token-<index>`",
     .help = "shown in logs instead of the secret"},
    {.key = "auth.tokens[].scopes", .type = KEY_LIST, .in = KEY_IN_TOKEN,
     .at = KEY_BY_HAND, .shown = "all",
     .values = "chat, sessions, channels, browser, admin",
     .help = "what the token may call"},
    {.key = "auth.tokens[].rateLimit", .type = KEY_INT, .in = KEY_IN_TOKEN,
     .at = TOK (rate_limit), .min = 0, .max = 100000000, .def = -1,
     .shown = "`limits.rateLimit`", .help = "this token's own rate limit"},
    {.key = "auth.tokens[].burst", .type = KEY_INT, .in = KEY_IN_TOKEN,
     .at = TOK (burst), .min = 0, .max = 100000000, .def = -1,
     .shown = "`limits.burst`", .help = "this token's own bucket size"},
    {.key = "auth.tokens[].maxConcurrent", .type = KEY_INT,
     .in = KEY_IN_TOKEN, .at = TOK (max_concurrent), .min = 0,
     .max = 1000000, .def = -1, .shown = "`limits.maxConcurrent`",
     .help = "this token's own cap on requests in flight"},

    //  ---- gateway ----
    {.key = "gateway.threads", .type = KEY_INT, .at = CFG (threads), .min = 1,
     .max = 4096, .def = 64, .env = "CLAWGATE_THREADS",
     .help = "HTTP worker threads (one connection each)"},
    {.key = "gateway.maxBodyBytes", .type = KEY_LONG, .at = CFG (max_body),
     .min = 1024, .max = 1024 * MIB, .def = 10 * MIB,
     .help = "larger bodies get a 413 the client can read (see "
             "[docs/limits.md](docs/limits.md#bodies-and-frames))"},
    {.key = "gateway.requestTimeoutMs", .type = KEY_INT,
     .at = CFG (request_timeout_ms),
     .also = {ACT (run.request_timeout_ms), ACT (session.request_timeout_ms)},
     .min = 100, .max = 86400000, .def = 300000,
     .help = "run / request deadline"},
    {.key = "gateway.controlTimeoutMs", .type = KEY_INT,
     .at = CFG (control_timeout_ms), .min = 100, .max = 600000, .def = 5000,
     .help = "deadline of control requests (`/status`)"},
    {.key = "gateway.drainTimeoutMs", .type = KEY_INT,
     .at = CFG (drain_timeout_ms), .min = 0, .max = 3600000, .def = 10000,
     .help = "how long SIGTERM waits for in-flight work"},
    {.key = "gateway.sseKeepaliveMs", .type = KEY_INT,
     .at = CFG (sse_keepalive_ms), .min = 100, .max = 600000, .def = 5000,
     .help = "SSE comment while a stream is idle; also how fast a vanished "
             "client is noticed"},
    {.key = "gateway.maxFrameBytes", .type = KEY_INT,
     .at = CFG (max_frame_bytes), .min = 1024, .max = 1024 * MIB, .def = MIB,
     .help = "WebSocket frame limit"},
    {.key = "gateway.headerTimeoutMs", .type = KEY_INT,
     .at = CFG (header_timeout_ms), .min = 100, .max = 600000, .def = 10000,
     .help = "a connection's request head must be whole within this, or it "
             "is closed (408) without ever taking a thread; also civetweb's "
             "read timeout for later heads and bodies"},
    {.key = "gateway.keepAliveTimeoutMs", .type = KEY_INT,
     .at = CFG (keep_alive_timeout_ms), .min = 100, .max = 600000,
     .def = 5000, .help = "idle keep-alive connections are closed after this"},
    {.key = "gateway.reservedThreads", .type = KEY_INT,
     .at = CFG (reserved_threads), .min = 0, .max = 4096, .def = -1,
     .shown = "`threads / 8`",
     .help = "worker threads that no address already holding one, and no "
             "WebSocket client, may take"},

    //  ---- limits ----
    {.key = "limits.rateLimit", .type = KEY_INT, .at = CFG (rate_limit),
     .min = 0, .max = 100000000, .def = 100, .env = "CLAWGATE_RATE_LIMIT",
     .help = "requests/minute per credential, `0` = off (see "
             "[docs/limits.md](docs/limits.md))"},
    {.key = "limits.burst", .type = KEY_INT, .at = CFG (burst), .min = 0,
     .max = 100000000, .def = 0, .shown = "`0` = rateLimit",
     .help = "token-bucket size: requests a credential may make at once"},
    {.key = "limits.maxConcurrent", .type = KEY_INT,
     .at = CFG (max_concurrent), .min = 0, .max = 1000000, .def = 10,
     .env = "CLAWGATE_MAX_CONCURRENT",
     .help = "requests/runs in flight per credential, `0` = off"},
    {.key = "limits.authFailures", .type = KEY_INT, .at = CFG (auth_failures),
     .min = 0, .max = 1000000, .def = 10,
     .help = "failed authentications per client address per minute, "
             "`0` = off"},
    {.key = "limits.maxConnectionsPerAddress", .type = KEY_INT,
     .at = CFG (max_conns_per_addr), .min = 0, .max = 1000000, .def = 256,
     .help = "open connections one client address may hold on a gateway "
             "(more: 429 and closed), `0` = off; raise it behind a proxy"},
    {.key = "limits.leaseMs", .type = KEY_INT, .at = CFG (lease_ms),
     .also = {ACT (ratelimit.lease_ms)}, .min = 300, .max = 600000,
     .def = 5000,
     .help = "life of a gateway's lease on quota; a dead gateway's slots "
             "come back within it"},

    //  ---- broker ----
    {.key = "broker.requests", .type = KEY_STRING, .at = CFG (requests_ep),
     .def_text = BUS_INPROC_REQUESTS, .flag_at = FLAG (broker),
     .flag = "--broker, --requests", .help = "broker ROUTER endpoint"},
    {.key = "broker.events", .type = KEY_STRING, .at = CFG (events_ep),
     .def_text = BUS_INPROC_EVENTS, .flag_at = FLAG (events),
     .flag = "--events", .help = "broker XPUB endpoint (taps)"},
    {.key = "broker.heartbeatMs", .type = KEY_INT, .at = CFG (heartbeat_ms),
     .also = {ACT (bus.heartbeat_ms)}, .min = 50, .max = 60000, .def = 1000,
     .help = "heartbeat between the broker and its workers (worker "
             "liveness)"},
    {.key = "broker.liveness", .type = KEY_INT, .at = CFG (liveness),
     .also = {ACT (bus.liveness)}, .min = 1, .max = 100, .def = 3,
     .help = "heartbeats missed before a peer is dead"},

    //  ---- sessions ----
    {.key = "sessions.store", .type = KEY_STRING, .at = CFG (store),
     .also = {ACT (session.store)}, .env = "CLAWGATE_STORE",
     .flag_at = FLAG (store), .flag = "--store",
     .shown = "`sqlite:<stateDir>/clawgate.db`",
     .help = "session store URL; `sqlite:PATH[?sync=full]` (PostgreSQL: a "
             "later issue)"},
    {.key = "sessions.contextMessages", .type = KEY_INT,
     .at = ACT (session.context_messages), .min = 0, .max = 100000,
     .def = 50,
     .help = "earlier messages sent to the model with a session run, newest "
             "kept"},
    {.key = "sessions.contextChars", .type = KEY_INT,
     .at = ACT (session.context_chars), .min = 0, .max = 100000000,
     .def = 200000, .help = "… and at most this many characters of them"},
    {.key = "sessions.maxQueued", .type = KEY_INT,
     .at = ACT (session.max_queued), .min = 1, .max = 100000, .def = 32,
     .help = "runs waiting or going on one session; more get 429"},
    {.key = "sessions.readers", .type = KEY_INT, .at = ACT (session.readers),
     .min = 1, .max = 16, .def = 2,
     .help = "`session.read` actors serving session lists and gets"},

    //  ---- websocket ----
    {.key = "websocket.heartbeatMs", .type = KEY_INT,
     .at = CFG (ws_heartbeat_ms), .min = 100, .max = 3600000, .def = 30000,
     .help = "`heartbeat` event interval"},
    {.key = "websocket.queueFrames", .type = KEY_INT,
     .at = CFG (ws_queue_frames), .min = 1, .max = 1000000, .def = 4096,
     .help = "frames queued per WebSocket client before it may be dropped "
             "as lagged"},
    {.key = "websocket.writers", .type = KEY_INT, .at = CFG (ws_writers),
     .min = 1, .max = 64, .def = 4,
     .help = "threads writing to WebSocket clients"},

    //  ---- browser ----
    {.key = "browser.chromium", .type = KEY_STRING,
     .at = CFG (browser_chromium), .also = {ACT (browser.chromium)},
     .def_text = "/usr/bin/chromium", .not_empty = true,
     .help = "the Chromium binary; missing → 503"},
    {.key = "browser.navigateTimeoutMs", .type = KEY_INT,
     .at = CFG (browser_navigate_timeout_ms),
     .also = {ACT (browser.navigate_timeout_ms)}, .min = 100, .max = 600000,
     .def = 15000,
     .help = "a navigation's (and a screenshot's) budget from arrival; a "
             "request may bring its own `timeoutMs`"},
    {.key = "browser.viewportWidth", .type = KEY_INT,
     .at = ACT (browser.viewport_width), .min = 16, .max = 8192, .def = 1280,
     .help = "viewport width in CSS pixels (device scale 1)"},
    {.key = "browser.viewportHeight", .type = KEY_INT,
     .at = ACT (browser.viewport_height), .min = 16, .max = 8192, .def = 800,
     .help = "viewport height in CSS pixels"},
    {.key = "browser.headless", .type = KEY_TRUE, .def = 1,
     .must = "must be true (Chromium always runs headless here)",
     .help = "a server has no display: only `true` is accepted"},

    //  ---- providers ----
    {.key = "providers.<name>.type", .type = KEY_STRING,
     .in = KEY_IN_PROVIDER, .at = KEY_BY_HAND, .values = "openai or anthropic",
     .shown = "`anthropic` for the provider named so, else `openai`",
     .help = "`openai`: any OpenAI-compatible server (vLLM, Ollama, "
             "llama.cpp, LiteLLM…)"},
    {.key = "providers.<name>.baseUrl", .type = KEY_STRING,
     .in = KEY_IN_PROVIDER, .at = PROV (base_url),
     .env = "OPENAI_BASE_URL, ANTHROPIC_BASE_URL",
     .values = "an http(s):// URL",
     .shown = "OpenAI's for `openai`, Anthropic's for type `anthropic`",
     .help = "e.g. `http://127.0.0.1:11434/v1` for Ollama"},
    {.key = "providers.<name>.apiKey", .type = KEY_STRING,
     .in = KEY_IN_PROVIDER, .at = PROV (api_key),
     .env = "OPENAI_API_KEY, ANTHROPIC_API_KEY",
     .help = "sent as Bearer (OpenAI) or `x-api-key` (Anthropic); the "
             "variable alone creates the provider"},
    {.key = "providers.<name>.models", .type = KEY_LIST, .in = KEY_IN_PROVIDER,
     .at = KEY_BY_HAND, .values = "at least one name",
     .help = "listed by `/v1/models` as `<name>/<model>`; `local/echo` is "
             "built in"},
    {.key = "providers.<name>.connectTimeoutMs", .type = KEY_INT,
     .in = KEY_IN_PROVIDER, .at = PROV (connect_timeout_ms), .min = 100,
     .max = 600000, .def = 10000, .help = "TCP and TLS connect deadline"},
    {.key = "providers.<name>.stallTimeoutMs", .type = KEY_INT,
     .in = KEY_IN_PROVIDER, .at = PROV (stall_timeout_ms), .min = 100,
     .max = 3600000, .def = 120000,
     .help = "an upstream silent this long is dead (503, or the next "
             "fallback); a non-streamed call sends nothing until its answer "
             "is whole, so there it bounds the whole answer: raise it for "
             "slow models"},
    {.key = "providers.local.echoDelayMs", .type = KEY_INT,
     .in = KEY_IN_LOCAL, .at = PROV (echo_delay_ms), .min = 0, .max = 60000,
     .def = 0, .help = "pause between the echo provider's words"},

    //  ---- agents ----
    {.key = "agents.<id>.model", .type = KEY_STRING, .in = KEY_IN_AGENT,
     .at = AGENT (model), .values = "a configured `<provider>/<model>`",
     .shown = "`local/echo` for `default`",
     .help = "the agent's model, `<provider>/<model>` (required)"},
    {.key = "agents.<id>.system", .type = KEY_STRING, .in = KEY_IN_AGENT,
     .at = AGENT (system), .help = "system prompt"},
    {.key = "agents.<id>.fallbacks", .type = KEY_LIST, .in = KEY_IN_AGENT,
     .at = KEY_BY_HAND, .values = "configured models",
     .help = "models tried in order when one fails before its first delta"},
    {.key = "agents.<id>.maxTokens", .type = KEY_INT, .in = KEY_IN_AGENT,
     .at = AGENT (max_tokens), .min = 1, .max = 1000000, .def = 1024,
     .help = "default max tokens"},
    {.key = "agents.<id>.tools", .type = KEY_LIST, .in = KEY_IN_AGENT,
     .at = KEY_BY_HAND, .values = "browser",
     .help = "`[\"browser\"]` offers `browser_navigate` and "
             "`browser_screenshot` to the model ([the tool "
             "loop](docs/runs.md#the-tool-loop))"},
    {.key = "agents.<id>.maxToolSteps", .type = KEY_INT, .in = KEY_IN_AGENT,
     .at = AGENT (max_tool_steps), .min = 1, .max = 50, .def = 5,
     .help = "rounds of model → tools → model, at most"},

    //  ---- channels, ready ----
    {.key = "channels.<id>.enabled", .type = KEY_BOOL, .in = KEY_IN_CHANNEL,
     .at = CHAN (enabled), .def = 1,
     .help = "`<id>`: `whatsapp`, `telegram`, `discord`, `slack`, `webhook`; "
             "`POST /v1/channels/{id}/enable` and `.../disable` override it, stored "
             "([docs/channels.md](docs/channels.md))"},
    {.key = "channels.<id>.baseUrl", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (base_url), .values = "an http(s) URL",
     .shown = "the platform's (`https://api.telegram.org`, `https://discord.com/api/v10`, "
              "`https://slack.com/api`, `https://graph.facebook.com/v21.0`)",
     .help = "the platform's API root (a local stand-in in tests)"},
    {.key = "channels.<id>.botToken", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (bot_token), .not_empty = true, .values = "the bot's token",
     .help = "Telegram (BotFather), Discord (the Developer Portal), Slack (`xoxb-`); "
             "also `TELEGRAM_BOT_TOKEN`, `DISCORD_BOT_TOKEN`, `SLACK_BOT_TOKEN`; "
             "never logged"},
    {.key = "channels.<id>.appToken", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (app_token), .not_empty = true, .values = "an `xapp-` token",
     .help = "Slack Socket Mode: the app-level token (`connections:write`); "
             "also `SLACK_APP_TOKEN`; never logged"},
    {.key = "channels.<id>.signingSecret", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (signing_secret), .not_empty = true, .values = "the app's signing secret",
     .help = "Slack HTTP mode: checks `X-Slack-Signature`; also "
             "`SLACK_SIGNING_SECRET`; never logged"},
    {.key = "channels.<id>.accessToken", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (access_token), .not_empty = true, .values = "a Graph API token",
     .help = "WhatsApp: the system user's access token; also "
             "`WHATSAPP_ACCESS_TOKEN`; never logged"},
    {.key = "channels.<id>.phoneNumberId", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (phone_number_id), .not_empty = true, .values = "digits",
     .help = "WhatsApp: the business phone number's id (replies are sent from it)"},
    {.key = "channels.<id>.appSecret", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (app_secret), .not_empty = true, .values = "the Meta app's secret",
     .help = "WhatsApp: checks `X-Hub-Signature-256` on every push; also "
             "`WHATSAPP_APP_SECRET`; never logged"},
    {.key = "channels.<id>.verifyToken", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (verify_token), .not_empty = true, .values = "any text you choose",
     .help = "WhatsApp: the token Meta's verification `GET` must carry"},
    {.key = "channels.<id>.mode", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (mode), .values = "Telegram `polling` or `webhook`; Slack `socket` or `http`",
     .shown = "`polling`; Slack `socket`",
     .help = "Telegram: long polling, or pushes to "
             "`POST /v1/channels/telegram/webhook`; Slack: Socket Mode, or the "
             "Events API at `POST /v1/channels/slack/webhook`"},
    {.key = "channels.<id>.webhookSecret", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (webhook_secret), .values = "1-256 of A-Z a-z 0-9 _ -",
     .help = "Telegram webhook mode (required): the "
             "`X-Telegram-Bot-Api-Secret-Token` every push must carry"},
    {.key = "channels.<id>.webhookUrl", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (webhook_url), .values = "an https URL",
     .help = "Telegram webhook mode: the public URL registered with "
             "`setWebhook` at start (omit if you set it yourself)"},
    {.key = "channels.<id>.dmPolicy", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (dm_policy), .def_text = "pairing",
     .values = "pairing, allowlist, open or disabled",
     .help = "who may talk to the agent in direct messages"},
    {.key = "channels.<id>.allowFrom", .type = KEY_LIST, .in = KEY_IN_CHANNEL,
     .at = KEY_BY_HAND, .values = "sender ids as the platform writes them, or \"*\"",
     .shown = "`[]`", .help = "senders who need no pairing"},
    {.key = "channels.<id>.groupPolicy", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (group_policy), .def_text = "allowlist",
     .values = "allowlist, open or disabled",
     .help = "which groups the bot answers in (`allowlist`: those in `groups`)"},
    {.key = "channels.<id>.groups", .type = KEY_LIST, .in = KEY_IN_CHANNEL,
     .at = KEY_BY_HAND, .values = "group / chat ids, or \"*\"", .shown = "`[]`",
     .help = "the allowed groups"},
    {.key = "channels.<id>.requireMention", .type = KEY_BOOL, .in = KEY_IN_CHANNEL,
     .at = CHAN (require_mention), .def = 1,
     .help = "in groups, answer only when the bot is mentioned or replied to"},
    {.key = "channels.<id>.textChunkLimit", .type = KEY_INT, .in = KEY_IN_CHANNEL,
     .at = CHAN (text_chunk_limit), .min = 0, .max = 4096, .def = 0,
     .shown = "the platform's limit (Telegram and WhatsApp 4096, Discord 2000, Slack 4000)",
     .help = "replies are split into parts of at most this many characters"},
    {.key = "channels.<id>.agentId", .type = KEY_STRING, .in = KEY_IN_CHANNEL,
     .at = CHAN (agent_id), .def_text = "default", .values = "an agent id",
     .help = "the agent that answers this channel"},
    {.key = "channels.<id>.pollTimeoutS", .type = KEY_INT, .in = KEY_IN_CHANNEL,
     .at = CHAN (poll_timeout_s), .min = 1, .max = 50, .def = 30,
     .help = "Telegram: how long one getUpdates long poll waits; Slack Socket Mode: "
             "a socket that hears nothing this long is replaced (pings every third); "
             "Discord: the wait for Hello"},
    {.key = "channels.<id>.retryMinMs", .type = KEY_INT, .in = KEY_IN_CHANNEL,
     .at = CHAN (retry_min_ms), .min = 10, .max = 600000, .def = 1000,
     .help = "first reconnect / resend backoff step (doubles, 20% jitter)"},
    {.key = "channels.<id>.retryMaxMs", .type = KEY_INT, .in = KEY_IN_CHANNEL,
     .at = CHAN (retry_max_ms), .min = 10, .max = 3600000, .def = 60000,
     .help = "largest backoff step"},
    {.key = "channels.<id>.sendAttempts", .type = KEY_INT, .in = KEY_IN_CHANNEL,
     .at = CHAN (send_attempts), .min = 1, .max = 1000, .def = 12,
     .help = "failed tries of a reply part (5xx, network) before it is "
             "given up and recorded as failed; a 429's wait is not a failure"},
    {.key = "channels.webhook.hooks", .type = KEY_LIST, .in = KEY_IN_CHANNEL,
     .at = KEY_BY_HAND, .values = "a map of hook name to {token, callbackUrl?, agentId?}",
     .shown = "`{}`",
     .help = "the generic webhook channel's hooks: `POST /v1/hooks/<name>`"},
    {.key = "ready", .type = KEY_LIST, .at = KEY_BY_HAND,
     .values = "names of 1 to 200 characters",
     .shown = "`[\"system\",\"run\",\"session\",\"ratelimit\"]`",
     .help = "services `/ready` requires"},
    {.key = NULL}};
// clang-format on

//  ---- Helpers ---------------------------------------------------------------

void
keys_err (char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, errlen, fmt, ap);
    va_end (ap);
}

void
keys_set (char **field, const char *value)
{
    free (*field);
    *field = value ? strdup (value) : NULL;
}

const char *
keys_leaf (const config_key_t *key)
{
    const char *dot = strrchr (key->key, '.');
    return dot ? dot + 1 : key->key;
}

static void *
s_at (void *base, size_t at)
{
    return (char *) base + at;
}

//  True if the segment at seg (ended by '.', '[' or the end) is name.
static bool
s_segment_is (const char *seg, const char *name, size_t len)
{
    return !strncmp (seg, name, len)
           && (seg[len] == '.' || seg[len] == '[' || seg[len] == 0);
}

//  The segment after the first dot, or NULL.
static const char *
s_second (const char *key)
{
    const char *dot = strchr (key, '.');
    return dot ? dot + 1 : NULL;
}

//  True if key's first segment is section ("" = a top-level key).
static bool
s_in_section (const char *key, const char *section)
{
    if (!*section)
        return !strchr (key, '.') && !strchr (key, '[');
    return s_segment_is (key, section, strlen (section));
}

//  ---- Reading ---------------------------------------------------------------

//  Is name a key the table allows here: at the top level of the file (in
//  KEY_IN_CONFIG, section NULL), in one of its sections ("auth"; any name
//  in a section of named entries such as providers.<name>), or in an
//  entry of kind in (auth.tokens[], providers.<name>...)?
static bool
s_known (const char *name, key_in_t in, const char *section)
{
    size_t len = strlen (name);
    if (strpbrk (name, ".["))
        return false;  //  A segment, never a path
    for (const config_key_t *k = config_keys; k->key; k++) {
        const char *second = s_second (k->key);
        if (in != KEY_IN_CONFIG) {
            if (k->in == in && !strcmp (keys_leaf (k), name))
                return true;
        }
        else if (!section) {
            if (s_segment_is (k->key, name, len))
                return true;
        }
        else if (second && s_in_section (k->key, section)
                 && (*second == '<' || s_segment_is (second, name, len)))
            return true;
    }
    return false;
}

int
keys_check_known (const cJSON *obj, key_in_t in, const char *section, const char *where,
                  char *err, size_t errlen)
{
    for (const cJSON *c = obj->child; c; c = c->next)
        if (!s_known (c->string, in, section)) {
            keys_err (err, errlen, "%s%s: unknown key", where, c->string);
            return -1;
        }
    return 0;
}

//  Sets a string or auth-mode key from text; name is how errors call it.
static int
s_set_text (const config_key_t *k, const char *text, const char *name, void *base,
            char *err, size_t errlen)
{
    if (k->type == KEY_AUTH) {
        auth_mode_t mode;
        if (!strcmp (text, "token"))
            mode = AUTH_TOKEN;
        else if (!strcmp (text, "password"))
            mode = AUTH_PASSWORD;
        else if (!strcmp (text, "token+password") || !strcmp (text, "both"))
            mode = AUTH_BOTH;
        else if (!strcmp (text, "none"))
            mode = AUTH_NONE;
        else {
            keys_err (err, errlen, "%s: must be %s", name, k->values);
            return -1;
        }
        *(auth_mode_t *) s_at (base, k->at) = mode;
        return 0;
    }
    keys_set ((char **) s_at (base, k->at), text);
    return 0;
}

static void
s_set_number (const config_key_t *k, void *base, long long n)
{
    if (k->type == KEY_LONG)
        *(long long *) s_at (base, k->at) = n;
    else
        *(int *) s_at (base, k->at) = (int) n;
}

int
keys_read_row (const config_key_t *k, const cJSON *obj, const char *where, void *base,
               char *err, size_t errlen)
{
    const char *leaf = keys_leaf (k);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, leaf);
    if (!v || k->at == KEY_BY_HAND)
        return 0;
    char name[192];
    snprintf (name, sizeof (name), "%s%s", where, leaf);
    switch (k->type) {
    case KEY_STRING:
    case KEY_AUTH:
        if (!cJSON_IsString (v) || !v->valuestring) {
            keys_err (err, errlen, "%s: must be a string", name);
            return -1;
        }
        return s_set_text (k, v->valuestring, name, base, err, errlen);
    case KEY_INT:
    case KEY_LONG:
        //  Range first: casting an out-of-range double to an integer is
        //  undefined.
        if (!cJSON_IsNumber (v) || v->valuedouble < (double) k->min
            || v->valuedouble > (double) k->max
            || v->valuedouble != (double) (long long) v->valuedouble) {
            keys_err (err, errlen, "%s: must be an integer from %lld to %lld", name,
                      k->min, k->max);
            return -1;
        }
        s_set_number (k, base, (long long) v->valuedouble);
        return 0;
    case KEY_BOOL:
        if (!cJSON_IsBool (v)) {
            keys_err (err, errlen, "%s: must be true or false", name);
            return -1;
        }
        *(bool *) s_at (base, k->at) = cJSON_IsTrue (v);
        return 0;
    case KEY_TRUE:
        if (!cJSON_IsTrue (v)) {
            keys_err (err, errlen, "%s: %s", name, k->must);
            return -1;
        }
        return 0;
    case KEY_LIST: break;
    }
    return 0;
}

int
keys_read (const cJSON *obj, key_in_t in, const char *section, const char *where,
           void *base, char *err, size_t errlen)
{
    for (const config_key_t *k = config_keys; k->key; k++) {
        if (k->in != in || (in == KEY_IN_CONFIG && !s_in_section (k->key, section)))
            continue;
        if (keys_read_row (k, obj, where, base, err, errlen))
            return -1;
    }
    //  Once the whole part is read, as the loader always checked it.
    for (const config_key_t *k = config_keys; k->key; k++) {
        bool mine = k->not_empty && k->in == in
                    && (in != KEY_IN_CONFIG || s_in_section (k->key, section));
        const char *v = mine ? *(char **) s_at (base, k->at) : NULL;
        if (v && !*v) {
            keys_err (err, errlen, "%s%s: must not be empty", where, keys_leaf (k));
            return -1;
        }
    }
    return 0;
}

//  ---- Defaults, environment, flags -------------------------------------------

void
keys_defaults (key_in_t in, void *base)
{
    for (const config_key_t *k = config_keys; k->key; k++) {
        if (k->in != in || k->at == KEY_BY_HAND)
            continue;
        if (k->type == KEY_STRING && k->def_text && !strncmp (k->def_text, "~/", 2)) {
            const char *home = getenv ("HOME");
            char path[PATH_MAX];
            snprintf (path, sizeof (path), "%s%s", home && *home ? home : ".",
                      k->def_text + 1);
            keys_set ((char **) s_at (base, k->at), path);
        }
        else if (k->type == KEY_STRING)
            keys_set ((char **) s_at (base, k->at), k->def_text);
        else if (k->type == KEY_INT || k->type == KEY_LONG)
            s_set_number (k, base, k->def);
        else if (k->type == KEY_BOOL)
            *(bool *) s_at (base, k->at) = k->def != 0;
        else if (k->type == KEY_AUTH)
            *(auth_mode_t *) s_at (base, k->at) = (auth_mode_t) k->def;
    }
}

int
keys_env (cg_config_t *self, char *err, size_t errlen)
{
    for (const config_key_t *k = config_keys; k->key; k++) {
        const char *v = k->env && k->in == KEY_IN_CONFIG ? getenv (k->env) : NULL;
        if (!v || !*v || k->at == KEY_BY_HAND)
            continue;
        if (k->type == KEY_STRING || k->type == KEY_AUTH) {
            if (s_set_text (k, v, k->env, self, err, errlen))
                return -1;
            continue;
        }
        assert (k->type == KEY_INT || k->type == KEY_LONG);
        char *end;
        errno = 0;
        long long n = strtoll (v, &end, 10);
        if (errno || *end || n < k->min || n > k->max) {
            keys_err (err, errlen, "%s: must be an integer from %lld to %lld", k->env,
                      k->min, k->max);
            return -1;
        }
        s_set_number (k, self, n);
    }
    return 0;
}

void
keys_flags (cg_config_t *self, const cfg_flags_t *flags)
{
    for (const config_key_t *k = config_keys; k->key; k++) {
        if (!k->flag_at)
            continue;
        const void *flag = (const char *) flags + k->flag_at;
        if (k->type == KEY_STRING && *(const char *const *) flag)
            keys_set ((char **) s_at (self, k->at), *(const char *const *) flag);
        else if (k->type == KEY_INT && *(const int *) flag >= 0)
            s_set_number (k, self, *(const int *) flag);
    }
}

//  ---- After loading -----------------------------------------------------------

void
keys_spread (cg_config_t *self)
{
    for (const config_key_t *k = config_keys; k->key; k++)
        for (size_t i = 0; i < 2 && k->also[i]; i++) {
            assert (k->in == KEY_IN_CONFIG);
            if (k->type == KEY_STRING)
                *(const char **) s_at (self, k->also[i]) = *(char **) s_at (self, k->at);
            else {
                assert (k->type == KEY_INT);
                *(int *) s_at (self, k->also[i]) = *(int *) s_at (self, k->at);
            }
        }
}

void
keys_free (key_in_t in, void *base)
{
    for (const config_key_t *k = config_keys; k->key; k++)
        if (k->in == in && k->type == KEY_STRING && k->at != KEY_BY_HAND)
            keys_set ((char **) s_at (base, k->at), NULL);
}
