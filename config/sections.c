/*  =========================================================================
    sections - auth.tokens[], providers, agents, channels and ready

    See sections.h for why these are parsed by hand.  Errors keep the
    sentences the loader has always written ("agents.x.model: unknown
    model y").
    =========================================================================
*/
#include "sections.h"

#include "keys.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

//  Replaces *out with the names in arr (a NULL-terminated copy).
static int
s_string_list (char ***out, const cJSON *arr, const char *where, char *err, size_t errlen)
{
    if (!cJSON_IsArray (arr)) {
        keys_err (err, errlen, "%s: must be an array of strings", where);
        return -1;
    }
    size_t n = (size_t) cJSON_GetArraySize (arr);
    char **list = (char **) calloc (n + 1, sizeof (char *));
    if (!list)
        return -1;
    size_t i = 0;
    for (const cJSON *c = arr->child; c; c = c->next) {
        if (!cJSON_IsString (c) || !*c->valuestring || strlen (c->valuestring) > 200) {
            keys_err (err, errlen, "%s: must be an array of names", where);
            for (size_t j = 0; j < i; j++)
                free (list[j]);
            free (list);
            return -1;
        }
        list[i++] = strdup (c->valuestring);
    }
    for (char **p = *out; p && *p; p++)
        free (*p);
    free (*out);
    *out = list;
    return 0;
}

//  ---- auth.tokens[] -------------------------------------------------------------

static unsigned
s_parse_scopes (const cJSON *arr, const char *where, char *err, size_t errlen)
{
    if (!cJSON_IsArray (arr)) {
        keys_err (err, errlen, "%sscopes: must be an array of scope names", where);
        return 0;
    }
    unsigned bits = 0;
    for (const cJSON *c = arr->child; c; c = c->next) {
        unsigned bit = cJSON_IsString (c) ? config_scope_bit (c->valuestring) : 0;
        if (!bit) {
            keys_err (err, errlen,
                      "%sscopes: unknown scope (use chat, sessions, channels, "
                      "browser, admin)",
                      where);
            return 0;
        }
        bits |= bit;
    }
    if (!bits)
        keys_err (err, errlen, "%sscopes: must name at least one scope", where);
    return bits;
}

static int
s_token (cg_config_t *self, const cJSON *t, char *err, size_t errlen)
{
    char where[48];
    snprintf (where, sizeof (where), "auth.tokens[%zu].", self->n_tokens);
    cfg_token_t *tok = &self->tokens[self->n_tokens++];
    keys_defaults (KEY_IN_TOKEN, tok);
    tok->scopes = SCOPE_ALL;
    if (!cJSON_IsObject (t)) {
        keys_err (err, errlen, "%s must be an object", where);
        return -1;
    }
    if (keys_check_known (t, KEY_IN_TOKEN, NULL, where, err, errlen)
        || keys_read (t, KEY_IN_TOKEN, NULL, where, tok, err, errlen))
        return -1;
    if (!tok->token || strlen (tok->token) < 16) {
        keys_err (err, errlen, "%stoken: required, at least 16 characters", where);
        return -1;
    }
    const cJSON *scopes = cJSON_GetObjectItemCaseSensitive (t, "scopes");
    if (scopes && !(tok->scopes = s_parse_scopes (scopes, where, err, errlen)))
        return -1;
    if (!tok->name) {
        char name[32];
        snprintf (name, sizeof (name), "token-%zu", self->n_tokens - 1);
        tok->name = strdup (name);
    }
    return 0;
}

int
sections_auth (cg_config_t *self, const cJSON *auth, char *err, size_t errlen)
{
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive (auth, "tokens");
    if (!tokens)
        return 0;
    if (!cJSON_IsArray (tokens)) {
        keys_err (err, errlen, "auth.tokens: must be an array");
        return -1;
    }
    size_t n = (size_t) cJSON_GetArraySize (tokens);
    self->tokens = (cfg_token_t *) calloc (n ? n : 1, sizeof (cfg_token_t));
    if (!self->tokens)
        return -1;
    for (const cJSON *t = tokens->child; t; t = t->next)
        if (s_token (self, t, err, errlen))
            return -1;
    return 0;
}

//  ---- providers -------------------------------------------------------------------

static int
s_add_model (cg_config_t *self, const char *provider, const char *model,
             const char *description)
{
    cfg_model_t *grown = (cfg_model_t *) realloc (
        self->models, (self->n_models + 1) * sizeof (cfg_model_t));
    if (!grown)
        return -1;
    self->models = grown;
    cfg_model_t *m = &self->models[self->n_models++];
    size_t len = strlen (provider) + strlen (model) + 2;
    m->id = (char *) malloc (len);
    if (m->id)
        snprintf (m->id, len, "%s/%s", provider, model);
    m->owned_by = strdup (provider);
    m->description = description ? strdup (description) : NULL;
    return 0;
}

static cfg_provider_t *
s_add_provider (cg_config_t *self, const char *name, provider_type_t type)
{
    cfg_provider_t *grown = (cfg_provider_t *) realloc (
        self->providers, (self->n_providers + 1) * sizeof (cfg_provider_t));
    if (!grown)
        return NULL;
    self->providers = grown;
    cfg_provider_t *p = &self->providers[self->n_providers++];
    memset (p, 0, sizeof (*p));
    keys_defaults (KEY_IN_PROVIDER, p);
    keys_defaults (KEY_IN_LOCAL, p);
    p->name = strdup (name);
    p->type = type;
    if (type == PROVIDER_OPENAI && !strcmp (name, "openai"))
        p->base_url = strdup ("https://api.openai.com/v1");
    else if (type == PROVIDER_ANTHROPIC)
        p->base_url = strdup ("https://api.anthropic.com");
    return p;
}

static cfg_provider_t *
s_provider (cg_config_t *self, const char *name)
{
    for (size_t i = 0; i < self->n_providers; i++)
        if (!strcmp (self->providers[i].name, name))
            return &self->providers[i];
    return NULL;
}

static void
s_trim_slash (char *url)
{
    size_t n = url ? strlen (url) : 0;
    while (n && url[n - 1] == '/')
        url[--n] = 0;
}

//  The type a provider's entry asks for (by default, its name's).
static int
s_provider_type (const cJSON *p, const char *where, provider_type_t *type, char *err,
                 size_t errlen)
{
    *type = !strcmp (p->string, "anthropic") ? PROVIDER_ANTHROPIC : PROVIDER_OPENAI;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (p, "type");
    if (!v)
        return 0;
    if (!cJSON_IsString (v) || !v->valuestring) {
        keys_err (err, errlen, "%stype: must be a string", where);
        return -1;
    }
    if (!strcmp (v->valuestring, "anthropic"))
        *type = PROVIDER_ANTHROPIC;
    else if (!strcmp (v->valuestring, "openai"))
        *type = PROVIDER_OPENAI;
    else {
        keys_err (err, errlen, "%stype: must be openai or anthropic", where);
        return -1;
    }
    return 0;
}

static int
s_provider_entry (cg_config_t *self, const cJSON *p, const char *where, char *err,
                  size_t errlen)
{
    provider_type_t type;
    if (keys_check_known (p, KEY_IN_PROVIDER, NULL, where, err, errlen)
        || s_provider_type (p, where, &type, err, errlen))
        return -1;
    cfg_provider_t *prov = s_add_provider (self, p->string, type);
    if (!prov || keys_read (p, KEY_IN_PROVIDER, NULL, where, prov, err, errlen))
        return -1;
    if (!prov->base_url
        || (strncmp (prov->base_url, "http://", 7)
            && strncmp (prov->base_url, "https://", 8))) {
        keys_err (err, errlen, "%sbaseUrl: required, an http(s):// URL", where);
        return -1;
    }
    s_trim_slash (prov->base_url);
    const cJSON *models = cJSON_GetObjectItemCaseSensitive (p, "models");
    if (!cJSON_IsArray (models) || cJSON_GetArraySize (models) == 0) {
        keys_err (err, errlen, "%smodels: must be a non-empty array of names", where);
        return -1;
    }
    for (const cJSON *m = models->child; m; m = m->next) {
        if (!cJSON_IsString (m) || !*m->valuestring) {
            keys_err (err, errlen, "%smodels: must hold model names", where);
            return -1;
        }
        s_add_model (self, p->string, m->valuestring, NULL);
    }
    return 0;
}

int
sections_providers (cg_config_t *self, const cJSON *providers, char *err, size_t errlen)
{
    for (const cJSON *p = providers->child; p; p = p->next) {
        char where[96];
        snprintf (where, sizeof (where), "providers.%.64s.", p->string);
        if (!cJSON_IsObject (p)) {
            keys_err (err, errlen, "providers.%s: must be an object", p->string);
            return -1;
        }
        if (!*p->string || strchr (p->string, '/')) {
            keys_err (err, errlen, "providers.%s: name must be non-empty, no '/'",
                      p->string);
            return -1;
        }
        //  The built-in local provider: only its pace can be set.
        int rc = strcmp (p->string, "local")
                     ? s_provider_entry (self, p, where, err, errlen)
                     : keys_check_known (p, KEY_IN_LOCAL, NULL, where, err, errlen)
                           || keys_read (p, KEY_IN_LOCAL, NULL, where,
                                         s_provider (self, "local"), err, errlen);
        if (rc)
            return -1;
    }
    return 0;
}

//  OPENAI_* and ANTHROPIC_* fill in (or create) one provider.
static void
s_provider_env (cg_config_t *self, const char *name, provider_type_t type,
                const char *key_env, const char *url_env, const char *default_model)
{
    const char *key = getenv (key_env);
    const char *url = getenv (url_env);
    cfg_provider_t *p = s_provider (self, name);
    if (!p && !(key && *key))
        return;
    if (!p) {
        p = s_add_provider (self, name, type);
        if (!p)
            return;
        s_add_model (self, name, default_model, NULL);
    }
    if (key && *key)
        keys_set (&p->api_key, key);
    if (url && *url) {
        keys_set (&p->base_url, url);
        s_trim_slash (p->base_url);
    }
}

void
sections_env (cg_config_t *self)
{
    s_provider_env (self, "openai", PROVIDER_OPENAI, "OPENAI_API_KEY", "OPENAI_BASE_URL",
                    "gpt-4o-mini");
    s_provider_env (self, "anthropic", PROVIDER_ANTHROPIC, "ANTHROPIC_API_KEY",
                    "ANTHROPIC_BASE_URL", "claude-3-5-haiku-latest");
    //  A channel's credentials: for a configured channel only.
    static const struct {
        const char *channel, *env;
        size_t at;
    } env[] = {
        {"telegram", "TELEGRAM_BOT_TOKEN", offsetof (cfg_channel_t, bot_token)},
        {"discord", "DISCORD_BOT_TOKEN", offsetof (cfg_channel_t, bot_token)},
        {"slack", "SLACK_BOT_TOKEN", offsetof (cfg_channel_t, bot_token)},
        {"slack", "SLACK_APP_TOKEN", offsetof (cfg_channel_t, app_token)},
        {"slack", "SLACK_SIGNING_SECRET", offsetof (cfg_channel_t, signing_secret)},
        {"whatsapp", "WHATSAPP_ACCESS_TOKEN", offsetof (cfg_channel_t, access_token)},
        {"whatsapp", "WHATSAPP_APP_SECRET", offsetof (cfg_channel_t, app_secret)},
    };
    for (size_t e = 0; e < sizeof (env) / sizeof (env[0]); e++) {
        const char *value = getenv (env[e].env);
        for (size_t i = 0; i < self->n_channels && value && *value; i++)
            if (!strcmp (self->channels[i].id, env[e].channel))
                keys_set ((char **) ((char *) &self->channels[i] + env[e].at), value);
    }
}

//  ---- agents --------------------------------------------------------------------

static cfg_agent_t *
s_add_agent (cg_config_t *self, const char *id)
{
    cfg_agent_t *grown = (cfg_agent_t *) realloc (
        self->agents, (self->n_agents + 1) * sizeof (cfg_agent_t));
    if (!grown)
        return NULL;
    self->agents = grown;
    cfg_agent_t *agent = &self->agents[self->n_agents++];
    memset (agent, 0, sizeof (*agent));
    keys_defaults (KEY_IN_AGENT, agent);
    agent->id = strdup (id);
    return agent;
}

static int
s_agent_lists (cfg_agent_t *agent, const cJSON *a, const char *where, char *err,
               size_t errlen)
{
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive (a, "tools");
    if (tools) {
        bool ok = cJSON_IsArray (tools);
        for (const cJSON *t = ok ? tools->child : NULL; t; t = t->next)
            ok = ok && cJSON_IsString (t) && !strcmp (t->valuestring, "browser");
        if (!ok) {
            keys_err (err, errlen,
                      "%stools: must be an array of tool sets "
                      "(known: \"browser\")",
                      where);
            return -1;
        }
        agent->browser_tools = cJSON_GetArraySize (tools) > 0;
    }
    const cJSON *fb = cJSON_GetObjectItemCaseSensitive (a, "fallbacks");
    if (fb) {
        char key[128];
        snprintf (key, sizeof (key), "%sfallbacks", where);
        if (s_string_list (&agent->fallbacks, fb, key, err, errlen))
            return -1;
    }
    return 0;
}

int
sections_agents (cg_config_t *self, const cJSON *agents, char *err, size_t errlen)
{
    for (const cJSON *a = agents->child; a; a = a->next) {
        char where[96];
        snprintf (where, sizeof (where), "agents.%.64s.", a->string);
        if (!cJSON_IsObject (a)) {
            keys_err (err, errlen, "agents.%s: must be an object", a->string);
            return -1;
        }
        if (keys_check_known (a, KEY_IN_AGENT, NULL, where, err, errlen))
            return -1;
        cfg_agent_t *agent = (cfg_agent_t *) config_find_agent (self, a->string);
        if (!agent && !(agent = s_add_agent (self, a->string)))
            return -1;
        if (keys_read (a, KEY_IN_AGENT, NULL, where, agent, err, errlen)
            || s_agent_lists (agent, a, where, err, errlen))
            return -1;
    }
    return 0;
}

int
sections_check_agents (const cg_config_t *self, char *err, size_t errlen)
{
    for (size_t i = 0; i < self->n_agents; i++) {
        const cfg_agent_t *a = &self->agents[i];
        const char *m;
        if (!a->model) {
            keys_err (err, errlen, "agents.%s.model: required", a->id);
            return -1;
        }
        if (!config_find_model (self, a->model, &m)) {
            keys_err (err, errlen, "agents.%s.model: unknown model %s", a->id, a->model);
            return -1;
        }
        for (char **f = a->fallbacks; f && *f; f++)
            if (!config_find_model (self, *f, &m)) {
                keys_err (err, errlen, "agents.%s.fallbacks: unknown model %s", a->id,
                          *f);
                return -1;
            }
    }
    return 0;
}

//  ---- channels, ready ---------------------------------------------------------------

//  A list of sender or group ids: strings, or integers (Telegram's ids are
//  numbers, and people write them so).
static int
s_id_list (char ***out, const cJSON *arr, const char *where, char *err, size_t errlen)
{
    if (!cJSON_IsArray (arr)) {
        keys_err (err, errlen, "%s: must be an array of ids", where);
        return -1;
    }
    size_t n = (size_t) cJSON_GetArraySize (arr), i = 0;
    char **list = (char **) calloc (n + 1, sizeof (char *));
    if (!list)
        return -1;
    for (const cJSON *c = arr->child; c; c = c->next) {
        char buf[64];
        const char *v = NULL;
        if (cJSON_IsString (c) && *c->valuestring && strlen (c->valuestring) <= 200)
            v = c->valuestring;
        else if (cJSON_IsNumber (c)
                 && c->valuedouble == (double) (long long) c->valuedouble) {
            snprintf (buf, sizeof (buf), "%lld", (long long) c->valuedouble);
            v = buf;
        }
        if (!v) {
            keys_err (err, errlen, "%s: must be an array of ids (strings or integers)",
                      where);
            for (size_t j = 0; j < i; j++)
                free (list[j]);
            free (list);
            return -1;
        }
        list[i++] = strdup (v);
    }
    *out = list;
    return 0;
}

static bool
s_name_ok (const char *s, size_t max)
{
    size_t n = strlen (s);
    if (n < 1 || n > max)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum ((unsigned char) s[i]) && s[i] != '_' && s[i] != '-')
            return false;
    return true;
}

//  channels.webhook.hooks: {"<name>": {token, callbackUrl?, agentId?}}.
static int
s_hooks (cfg_channel_t *ch, const cJSON *hooks, char *err, size_t errlen)
{
    if (!cJSON_IsObject (hooks)) {
        keys_err (err, errlen, "channels.webhook.hooks: must be an object of hooks");
        return -1;
    }
    size_t n = (size_t) cJSON_GetArraySize (hooks);
    ch->hooks = (cfg_hook_t *) calloc (n ? n : 1, sizeof (cfg_hook_t));
    if (!ch->hooks)
        return -1;
    for (const cJSON *h = hooks->child; h; h = h->next) {
        if (!s_name_ok (h->string, 64)) {
            keys_err (
                err, errlen,
                "channels.webhook.hooks.%.64s: a hook name is 1-64 of A-Z a-z 0-9 _ -",
                h->string);
            return -1;
        }
        cfg_hook_t *hook = &ch->hooks[ch->n_hooks++];
        hook->name = strdup (h->string);
        const cJSON *token = cJSON_GetObjectItemCaseSensitive (h, "token");
        const cJSON *url = cJSON_GetObjectItemCaseSensitive (h, "callbackUrl");
        const cJSON *agent = cJSON_GetObjectItemCaseSensitive (h, "agentId");
        for (const cJSON *k = cJSON_IsObject (h) ? h->child : NULL; k; k = k->next)
            if (strcmp (k->string, "token") && strcmp (k->string, "callbackUrl")
                && strcmp (k->string, "agentId")) {
                keys_err (err, errlen, "channels.webhook.hooks.%s.%.64s: unknown key",
                          h->string, k->string);
                return -1;
            }
        if (!cJSON_IsString (token) || strlen (token->valuestring) < 16) {
            keys_err (err, errlen,
                      "channels.webhook.hooks.%s.token: required, at least 16 characters",
                      h->string);
            return -1;
        }
        if (url
            && (!cJSON_IsString (url)
                || (strncmp (url->valuestring, "http://", 7)
                    && strncmp (url->valuestring, "https://", 8)))) {
            keys_err (err, errlen,
                      "channels.webhook.hooks.%s.callbackUrl: must be an http(s) URL",
                      h->string);
            return -1;
        }
        if (agent && !cJSON_IsString (agent)) {
            keys_err (err, errlen, "channels.webhook.hooks.%s.agentId: must be a string",
                      h->string);
            return -1;
        }
        hook->token = strdup (token->valuestring);
        hook->callback_url = url ? strdup (url->valuestring) : NULL;
        hook->agent_id = agent ? strdup (agent->valuestring) : NULL;
    }
    return 0;
}

int
sections_channels (cg_config_t *self, const cJSON *channels, char *err, size_t errlen)
{
    size_t n = (size_t) cJSON_GetArraySize (channels);
    self->channels = (cfg_channel_t *) calloc (n ? n : 1, sizeof (cfg_channel_t));
    if (!self->channels)
        return -1;
    for (const cJSON *c = channels->child; c; c = c->next) {
        bool known = false;
        for (int i = 0; channel_ids[i]; i++)
            known |= !strcmp (channel_ids[i], c->string);
        if (!known) {
            keys_err (err, errlen,
                      "channels.%.64s: unknown channel (use whatsapp, telegram, "
                      "discord, slack, webhook)",
                      c->string);
            return -1;
        }
        if (!cJSON_IsObject (c)) {
            keys_err (err, errlen, "channels.%s: must be an object", c->string);
            return -1;
        }
        char where[96];
        snprintf (where, sizeof (where), "channels.%s.", c->string);
        if (keys_check_known (c, KEY_IN_CHANNEL, NULL, where, err, errlen))
            return -1;
        cfg_channel_t *ch = &self->channels[self->n_channels++];
        ch->id = strdup (c->string);
        keys_defaults (KEY_IN_CHANNEL, ch);
        if (keys_read (c, KEY_IN_CHANNEL, NULL, where, ch, err, errlen))
            return -1;
        char key[128];
        const cJSON *allow = cJSON_GetObjectItemCaseSensitive (c, "allowFrom");
        snprintf (key, sizeof (key), "%sallowFrom", where);
        if (allow && s_id_list (&ch->allow_from, allow, key, err, errlen))
            return -1;
        const cJSON *groups = cJSON_GetObjectItemCaseSensitive (c, "groups");
        snprintf (key, sizeof (key), "%sgroups", where);
        if (groups && s_id_list (&ch->groups, groups, key, err, errlen))
            return -1;
        const cJSON *hooks = cJSON_GetObjectItemCaseSensitive (c, "hooks");
        if (hooks && strcmp (ch->id, "webhook")) {
            keys_err (err, errlen, "%shooks: only the webhook channel has hooks", where);
            return -1;
        }
        if (hooks && s_hooks (ch, hooks, err, errlen))
            return -1;
    }
    return 0;
}

static bool
s_one_of (const char *v, const char *const *names)
{
    for (; *names; names++)
        if (!strcmp (v, *names))
            return true;
    return false;
}

//  What an enabled Discord, Slack or WhatsApp channel cannot start without.
static int
s_check_credentials (const cfg_channel_t *ch, char *err, size_t errlen)
{
    const char *missing = NULL;
    if (!strcmp (ch->id, "discord") && !ch->bot_token)
        missing = "botToken: required (or DISCORD_BOT_TOKEN)";
    else if (!strcmp (ch->id, "slack")) {
        bool http = ch->mode && !strcmp (ch->mode, "http");
        if (!ch->bot_token)
            missing = "botToken: required (or SLACK_BOT_TOKEN)";
        else if (!http && !ch->app_token)
            missing = "appToken: required in socket mode (or SLACK_APP_TOKEN)";
        else if (http && !ch->signing_secret)
            missing = "signingSecret: required in http mode (or SLACK_SIGNING_SECRET)";
    }
    else if (!strcmp (ch->id, "whatsapp")) {
        if (!ch->access_token)
            missing = "accessToken: required (or WHATSAPP_ACCESS_TOKEN)";
        else if (!ch->phone_number_id)
            missing = "phoneNumberId: required";
        else if (!ch->app_secret)
            missing = "appSecret: required (or WHATSAPP_APP_SECRET)";
        else if (!ch->verify_token)
            missing = "verifyToken: required";
    }
    if (!missing)
        return 0;
    keys_err (err, errlen, "channels.%s.%s", ch->id, missing);
    return -1;
}

int
sections_check_channels (const cg_config_t *self, char *err, size_t errlen)
{
    static const char *const dm[] = {"pairing", "allowlist", "open", "disabled", NULL};
    static const char *const group[] = {"allowlist", "open", "disabled", NULL};
    static const char *const modes[] = {"polling", "webhook", NULL};
    static const char *const slack_modes[] = {"socket", "http", NULL};
    for (size_t i = 0; i < self->n_channels; i++) {
        const cfg_channel_t *ch = &self->channels[i];
        if (ch->dm_policy && !s_one_of (ch->dm_policy, dm)) {
            keys_err (
                err, errlen,
                "channels.%s.dmPolicy: must be pairing, allowlist, open or disabled",
                ch->id);
            return -1;
        }
        if (ch->group_policy && !s_one_of (ch->group_policy, group)) {
            keys_err (err, errlen,
                      "channels.%s.groupPolicy: must be allowlist, open or disabled",
                      ch->id);
            return -1;
        }
        bool slack = !strcmp (ch->id, "slack");
        if (ch->mode && !s_one_of (ch->mode, slack ? slack_modes : modes)) {
            keys_err (err, errlen, "channels.%s.mode: must be %s", ch->id,
                      slack ? "socket or http" : "polling or webhook");
            return -1;
        }
        int limit = !strcmp (ch->id, "discord") ? 2000 : slack ? 4000 : 4096;
        if (ch->text_chunk_limit > limit) {
            keys_err (err, errlen, "channels.%s.textChunkLimit: at most %d", ch->id,
                      limit);
            return -1;
        }
        if (ch->enabled && s_check_credentials (ch, err, errlen))
            return -1;
        if (ch->base_url && strncmp (ch->base_url, "http://", 7)
            && strncmp (ch->base_url, "https://", 8)) {
            keys_err (err, errlen, "channels.%s.baseUrl: must be an http(s) URL", ch->id);
            return -1;
        }
        if (ch->retry_max_ms < ch->retry_min_ms) {
            keys_err (err, errlen, "channels.%s.retryMaxMs: must be at least retryMinMs",
                      ch->id);
            return -1;
        }
        if (ch->agent_id && !config_find_agent (self, ch->agent_id)) {
            keys_err (err, errlen, "channels.%s.agentId: unknown agent %s", ch->id,
                      ch->agent_id);
            return -1;
        }
        for (size_t h = 0; h < ch->n_hooks; h++)
            if (ch->hooks[h].agent_id
                && !config_find_agent (self, ch->hooks[h].agent_id)) {
                keys_err (err, errlen,
                          "channels.webhook.hooks.%s.agentId: unknown agent %s",
                          ch->hooks[h].name, ch->hooks[h].agent_id);
                return -1;
            }
        if (!strcmp (ch->id, "telegram") && ch->enabled) {
            if (!ch->bot_token) {
                keys_err (err, errlen,
                          "channels.telegram.botToken: required (or TELEGRAM_BOT_TOKEN)");
                return -1;
            }
            bool webhook = ch->mode && !strcmp (ch->mode, "webhook");
            if (webhook
                && (!ch->webhook_secret || !s_name_ok (ch->webhook_secret, 256))) {
                keys_err (err, errlen,
                          "channels.telegram.webhookSecret: required in webhook mode, "
                          "1-256 of A-Z a-z 0-9 _ -");
                return -1;
            }
        }
    }
    return 0;
}

int
sections_ready (cg_config_t *self, const cJSON *ready, char *err, size_t errlen)
{
    return s_string_list (&self->ready_services, ready, "ready", err, errlen);
}

//  ---- Defaults and teardown ------------------------------------------------------------

void
sections_defaults (cg_config_t *self)
{
    s_add_provider (self, "local", PROVIDER_ECHO);
    cfg_agent_t *agent = s_add_agent (self, "default");
    if (agent)
        agent->model = strdup ("local/echo");
    s_add_model (self, "local", "echo",
                 "Built-in test/demo provider: deterministic, echoes the last "
                 "message back word by word. Not a real model.");
    self->ready_services = (char **) calloc (5, sizeof (char *));
    if (self->ready_services) {
        self->ready_services[0] = strdup ("system");
        self->ready_services[1] = strdup ("run");
        self->ready_services[2] = strdup ("session");
        self->ready_services[3] = strdup ("ratelimit");
    }
}

void
sections_free (cg_config_t *self)
{
    for (size_t i = 0; i < self->n_tokens; i++)
        keys_free (KEY_IN_TOKEN, &self->tokens[i]);
    free (self->tokens);
    for (char **p = self->ready_services; p && *p; p++)
        free (*p);
    free (self->ready_services);
    for (size_t i = 0; i < self->n_models; i++) {
        free (self->models[i].id);
        free (self->models[i].owned_by);
        free (self->models[i].description);
    }
    free (self->models);
    for (size_t i = 0; i < self->n_providers; i++) {
        free (self->providers[i].name);
        keys_free (KEY_IN_PROVIDER, &self->providers[i]);
    }
    free (self->providers);
    for (size_t i = 0; i < self->n_agents; i++) {
        free (self->agents[i].id);
        keys_free (KEY_IN_AGENT, &self->agents[i]);
        for (char **f = self->agents[i].fallbacks; f && *f; f++)
            free (*f);
        free (self->agents[i].fallbacks);
    }
    free (self->agents);
    for (size_t i = 0; i < self->n_channels; i++) {
        cfg_channel_t *ch = &self->channels[i];
        free (ch->id);
        keys_free (KEY_IN_CHANNEL, ch);
        for (char **p = ch->allow_from; p && *p; p++)
            free (*p);
        free (ch->allow_from);
        for (char **p = ch->groups; p && *p; p++)
            free (*p);
        free (ch->groups);
        for (size_t h = 0; h < ch->n_hooks; h++) {
            free (ch->hooks[h].name);
            free (ch->hooks[h].token);
            free (ch->hooks[h].callback_url);
            free (ch->hooks[h].agent_id);
        }
        free (ch->hooks);
    }
    free (self->channels);
}
