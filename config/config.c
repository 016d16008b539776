/*  =========================================================================
    config - load, merge and check clawgate's configuration
    =========================================================================
*/
#include "config.h"

#include "bus_proto.h"
#include "json_in.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define CFG_MAX_FILE (1024 * 1024)

static int
s_load_string_list (char ***out, const cJSON *arr, const char *where, char *err,
                    size_t errlen);

static const char *s_channel_ids[] = {"whatsapp", "telegram", "discord",
                                      "slack", "webhook", NULL};

static void
s_err (char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    va_start (ap, fmt);
    vsnprintf (err, errlen, fmt, ap);
    va_end (ap);
}

static char *
s_dup (const char *s)
{
    return s ? strdup (s) : NULL;
}

static void
s_set (char **field, const char *value)
{
    free (*field);
    *field = s_dup (value);
}

const char *
config_auth_name (auth_mode_t mode)
{
    switch (mode) {
    case AUTH_TOKEN: return "token";
    case AUTH_PASSWORD: return "password";
    case AUTH_BOTH: return "token+password";
    case AUTH_NONE: return "none";
    }
    return "?";
}

static int
s_auth_parse (const char *name, auth_mode_t *mode)
{
    if (!strcmp (name, "token"))
        *mode = AUTH_TOKEN;
    else if (!strcmp (name, "password"))
        *mode = AUTH_PASSWORD;
    else if (!strcmp (name, "token+password") || !strcmp (name, "both"))
        *mode = AUTH_BOTH;
    else if (!strcmp (name, "none"))
        *mode = AUTH_NONE;
    else
        return -1;
    return 0;
}

unsigned
config_scope_bit (const char *name)
{
    static const struct {
        const char *name;
        unsigned bit;
    } scopes[] = {{"chat", SCOPE_CHAT},         {"sessions", SCOPE_SESSIONS},
                  {"channels", SCOPE_CHANNELS}, {"browser", SCOPE_BROWSER},
                  {"admin", SCOPE_ADMIN},       {NULL, 0}};
    for (int i = 0; scopes[i].name; i++)
        if (!strcmp (scopes[i].name, name))
            return scopes[i].bit;
    return 0;
}

bool
config_is_loopback (const char *addr)
{
    return addr
           && (!strncmp (addr, "127.", 4) || !strcmp (addr, "::1")
               || !strcmp (addr, "[::1]") || !strcmp (addr, "localhost"));
}

//  ---- JSON file ------------------------------------------------------------

//  Checks that obj has only keys from allowed; names the first other key.
static int
s_known_keys (const cJSON *obj, const char *where, const char *const allowed[],
              char *err, size_t errlen)
{
    for (const cJSON *c = obj->child; c; c = c->next) {
        bool ok = false;
        for (int i = 0; allowed[i] && !ok; i++)
            ok = !strcmp (c->string, allowed[i]);
        if (!ok) {
            s_err (err, errlen, "%s%s: unknown key", where, c->string);
            return -1;
        }
    }
    return 0;
}

static int
s_get_str (const cJSON *obj, const char *key, const char *where, char **out,
           char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    if (!v)
        return 0;
    if (!cJSON_IsString (v) || !v->valuestring) {
        s_err (err, errlen, "%s%s: must be a string", where, key);
        return -1;
    }
    s_set (out, v->valuestring);
    return 0;
}

static int
s_get_int (const cJSON *obj, const char *key, const char *where, long long min,
           long long max, long long *out, char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    if (!v)
        return 0;
    //  Range first: casting an out-of-range double to an integer is undefined.
    if (!cJSON_IsNumber (v) || v->valuedouble < (double) min
        || v->valuedouble > (double) max
        || v->valuedouble != (double) (long long) v->valuedouble) {
        s_err (err, errlen, "%s%s: must be an integer from %lld to %lld", where,
               key, min, max);
        return -1;
    }
    *out = (long long) v->valuedouble;
    return 0;
}

static int
s_get_intv (const cJSON *obj, const char *key, const char *where, long long min,
            long long max, int *out, char *err, size_t errlen)
{
    long long v = *out;
    if (s_get_int (obj, key, where, min, max, &v, err, errlen))
        return -1;
    *out = (int) v;
    return 0;
}

static const cJSON *
s_get_obj (const cJSON *obj, const char *key, const char *where, char *err,
           size_t errlen, int *rc)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    if (v && !cJSON_IsObject (v)) {
        s_err (err, errlen, "%s%s: must be an object", where, key);
        *rc = -1;
        return NULL;
    }
    return v;
}

static unsigned
s_parse_scopes (const cJSON *arr, const char *where, char *err, size_t errlen)
{
    if (!cJSON_IsArray (arr)) {
        s_err (err, errlen, "%sscopes: must be an array of scope names", where);
        return 0;
    }
    unsigned bits = 0;
    for (const cJSON *c = arr->child; c; c = c->next) {
        unsigned bit = cJSON_IsString (c) ? config_scope_bit (c->valuestring) : 0;
        if (!bit) {
            s_err (err, errlen,
                   "%sscopes: unknown scope (use chat, sessions, channels, "
                   "browser, admin)",
                   where);
            return 0;
        }
        bits |= bit;
    }
    if (!bits)
        s_err (err, errlen, "%sscopes: must name at least one scope", where);
    return bits;
}

static int
s_load_auth (cg_config_t *self, const cJSON *auth, char *err, size_t errlen)
{
    static const char *const keys[] = {"mode", "token", "password", "tokens",
                                       NULL};
    if (s_known_keys (auth, "auth.", keys, err, errlen))
        return -1;
    char *mode = NULL;
    if (s_get_str (auth, "mode", "auth.", &mode, err, errlen))
        return -1;
    if (mode && s_auth_parse (mode, &self->auth_mode)) {
        free (mode);
        s_err (err, errlen,
               "auth.mode: must be token, password, token+password or none");
        return -1;
    }
    free (mode);
    if (s_get_str (auth, "token", "auth.", &self->token, err, errlen)
        || s_get_str (auth, "password", "auth.", &self->password, err, errlen))
        return -1;
    const cJSON *tokens = cJSON_GetObjectItemCaseSensitive (auth, "tokens");
    if (!tokens)
        return 0;
    if (!cJSON_IsArray (tokens)) {
        s_err (err, errlen, "auth.tokens: must be an array");
        return -1;
    }
    size_t n = (size_t) cJSON_GetArraySize (tokens);
    self->tokens = (cfg_token_t *) calloc (n ? n : 1, sizeof (cfg_token_t));
    if (!self->tokens)
        return -1;
    for (const cJSON *t = tokens->child; t; t = t->next) {
        char where[48];
        snprintf (where, sizeof (where), "auth.tokens[%zu].", self->n_tokens);
        cfg_token_t *tok = &self->tokens[self->n_tokens++];
        tok->scopes = SCOPE_ALL;
        tok->rate_limit = tok->burst = tok->max_concurrent = -1;
        static const char *const tkeys[] = {"token",     "name",
                                            "scopes",    "rateLimit",
                                            "burst",     "maxConcurrent",
                                            NULL};
        if (!cJSON_IsObject (t)) {
            s_err (err, errlen, "%s must be an object", where);
            return -1;
        }
        if (s_known_keys (t, where, tkeys, err, errlen)
            || s_get_str (t, "token", where, &tok->token, err, errlen)
            || s_get_str (t, "name", where, &tok->name, err, errlen)
            || s_get_intv (t, "rateLimit", where, 0, 100000000,
                           &tok->rate_limit, err, errlen)
            || s_get_intv (t, "burst", where, 0, 100000000, &tok->burst, err,
                           errlen)
            || s_get_intv (t, "maxConcurrent", where, 0, 1000000,
                           &tok->max_concurrent, err, errlen))
            return -1;
        if (!tok->token || strlen (tok->token) < 16) {
            s_err (err, errlen, "%stoken: required, at least 16 characters",
                   where);
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
    }
    return 0;
}

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
    m->description = s_dup (description);
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
    p->name = strdup (name);
    p->type = type;
    p->connect_timeout_ms = 10000;
    p->stall_timeout_ms = 120000;
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

static int
s_load_providers (cg_config_t *self, const cJSON *providers, char *err,
                  size_t errlen)
{
    for (const cJSON *p = providers->child; p; p = p->next) {
        char where[96];
        snprintf (where, sizeof (where), "providers.%.64s.", p->string);
        if (!cJSON_IsObject (p)) {
            s_err (err, errlen, "providers.%s: must be an object", p->string);
            return -1;
        }
        if (!*p->string || strchr (p->string, '/')) {
            s_err (err, errlen, "providers.%s: name must be non-empty, no '/'",
                   p->string);
            return -1;
        }
        if (!strcmp (p->string, "local")) {
            static const char *const lkeys[] = {"echoDelayMs", NULL};
            cfg_provider_t *local = s_provider (self, "local");
            if (s_known_keys (p, where, lkeys, err, errlen)
                || s_get_intv (p, "echoDelayMs", where, 0, 60000,
                               &local->echo_delay_ms, err, errlen))
                return -1;
            continue;   //  Built in: only its pace can be set
        }
        static const char *const pkeys[] = {"type", "baseUrl", "apiKey",
                                            "models", "connectTimeoutMs",
                                            "stallTimeoutMs", NULL};
        if (s_known_keys (p, where, pkeys, err, errlen))
            return -1;
        char *type = NULL;
        if (s_get_str (p, "type", where, &type, err, errlen))
            return -1;
        provider_type_t t = !strcmp (p->string, "anthropic") ? PROVIDER_ANTHROPIC
                                                              : PROVIDER_OPENAI;
        if (type && !strcmp (type, "anthropic"))
            t = PROVIDER_ANTHROPIC;
        else if (type && !strcmp (type, "openai"))
            t = PROVIDER_OPENAI;
        else if (type) {
            free (type);
            s_err (err, errlen, "%stype: must be openai or anthropic", where);
            return -1;
        }
        free (type);
        cfg_provider_t *prov = s_add_provider (self, p->string, t);
        if (!prov
            || s_get_str (p, "baseUrl", where, &prov->base_url, err, errlen)
            || s_get_str (p, "apiKey", where, &prov->api_key, err, errlen)
            || s_get_intv (p, "connectTimeoutMs", where, 100, 600000,
                           &prov->connect_timeout_ms, err, errlen)
            || s_get_intv (p, "stallTimeoutMs", where, 100, 3600000,
                           &prov->stall_timeout_ms, err, errlen))
            return -1;
        if (!prov->base_url || (strncmp (prov->base_url, "http://", 7)
                                && strncmp (prov->base_url, "https://", 8))) {
            s_err (err, errlen, "%sbaseUrl: required, an http(s):// URL", where);
            return -1;
        }
        s_trim_slash (prov->base_url);
        const cJSON *models = cJSON_GetObjectItemCaseSensitive (p, "models");
        if (!cJSON_IsArray (models) || cJSON_GetArraySize (models) == 0) {
            s_err (err, errlen, "%smodels: must be a non-empty array of names",
                   where);
            return -1;
        }
        for (const cJSON *m = models->child; m; m = m->next) {
            if (!cJSON_IsString (m) || !*m->valuestring) {
                s_err (err, errlen, "%smodels: must hold model names", where);
                return -1;
            }
            s_add_model (self, p->string, m->valuestring, NULL);
        }
    }
    return 0;
}

static int
s_load_agents (cg_config_t *self, const cJSON *agents, char *err, size_t errlen)
{
    for (const cJSON *a = agents->child; a; a = a->next) {
        char where[96];
        snprintf (where, sizeof (where), "agents.%.64s.", a->string);
        static const char *const akeys[] = {"model", "system", "fallbacks",
                                            "maxTokens", "tools",
                                            "maxToolSteps", NULL};
        if (!cJSON_IsObject (a)) {
            s_err (err, errlen, "agents.%s: must be an object", a->string);
            return -1;
        }
        if (s_known_keys (a, where, akeys, err, errlen))
            return -1;
        cfg_agent_t *agent = (cfg_agent_t *) config_find_agent (self, a->string);
        if (!agent) {
            cfg_agent_t *grown = (cfg_agent_t *) realloc (
                self->agents, (self->n_agents + 1) * sizeof (cfg_agent_t));
            if (!grown)
                return -1;
            self->agents = grown;
            agent = &self->agents[self->n_agents++];
            memset (agent, 0, sizeof (*agent));
            agent->id = strdup (a->string);
            agent->max_tokens = 1024;
            agent->max_tool_steps = 5;
        }
        if (s_get_str (a, "model", where, &agent->model, err, errlen)
            || s_get_str (a, "system", where, &agent->system, err, errlen)
            || s_get_intv (a, "maxTokens", where, 1, 1000000, &agent->max_tokens,
                           err, errlen)
            || s_get_intv (a, "maxToolSteps", where, 1, 50,
                           &agent->max_tool_steps, err, errlen))
            return -1;
        const cJSON *tools = cJSON_GetObjectItemCaseSensitive (a, "tools");
        if (tools) {
            bool ok = cJSON_IsArray (tools);
            for (const cJSON *t = ok ? tools->child : NULL; t; t = t->next)
                ok = ok && cJSON_IsString (t) && !strcmp (t->valuestring, "browser");
            if (!ok) {
                s_err (err, errlen, "%stools: must be an array of tool sets "
                       "(known: \"browser\")", where);
                return -1;
            }
            agent->browser_tools = cJSON_GetArraySize (tools) > 0;
        }
        const cJSON *fb = cJSON_GetObjectItemCaseSensitive (a, "fallbacks");
        if (fb) {
            char key[128];
            snprintf (key, sizeof (key), "%sfallbacks", where);
            if (s_load_string_list (&agent->fallbacks, fb, key, err, errlen))
                return -1;
        }
    }
    return 0;
}

//  Every agent's model and fallbacks must name a configured model.
static int
s_check_agents (cg_config_t *self, char *err, size_t errlen)
{
    for (size_t i = 0; i < self->n_agents; i++) {
        cfg_agent_t *a = &self->agents[i];
        const char *m;
        if (!a->model) {
            s_err (err, errlen, "agents.%s.model: required", a->id);
            return -1;
        }
        if (!config_find_model (self, a->model, &m)) {
            s_err (err, errlen, "agents.%s.model: unknown model %s", a->id,
                   a->model);
            return -1;
        }
        for (char **f = a->fallbacks; f && *f; f++)
            if (!config_find_model (self, *f, &m)) {
                s_err (err, errlen, "agents.%s.fallbacks: unknown model %s",
                       a->id, *f);
                return -1;
            }
    }
    return 0;
}

//  OPENAI_* and ANTHROPIC_* fill in (or create) those providers.
static void
s_provider_env (cg_config_t *self, const char *name, provider_type_t type,
                const char *key_env, const char *url_env,
                const char *default_model)
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
        s_set (&p->api_key, key);
    if (url && *url) {
        s_set (&p->base_url, url);
        s_trim_slash (p->base_url);
    }
}

//  The configured providers, models and agents as the actors see them.
static catalog_t
s_catalog (const cg_config_t *self)
{
    return (catalog_t){self->providers, self->n_providers, self->models,
                       self->n_models, self->agents, self->n_agents};
}

const cfg_provider_t *
config_find_model (const cg_config_t *self, const char *id, const char **model)
{
    catalog_t catalog = s_catalog (self);
    return catalog_find_model (&catalog, id, model);
}

int
config_reserved_threads (const cg_config_t *self)
{
    int reserve = self->reserved_threads >= 0 ? self->reserved_threads
                                              : self->threads / 8;
    if (reserve < 1 && self->threads > 1)
        reserve = 1;
    return reserve < self->threads ? reserve : self->threads - 1;
}

const cfg_agent_t *
config_find_agent (const cg_config_t *self, const char *id)
{
    catalog_t catalog = s_catalog (self);
    return catalog_find_agent (&catalog, id);
}

static int
s_load_channels (cg_config_t *self, const cJSON *channels, char *err,
                 size_t errlen)
{
    size_t n = (size_t) cJSON_GetArraySize (channels);
    self->channels = (cfg_channel_t *) calloc (n ? n : 1, sizeof (cfg_channel_t));
    if (!self->channels)
        return -1;
    for (const cJSON *c = channels->child; c; c = c->next) {
        bool known = false;
        for (int i = 0; s_channel_ids[i]; i++)
            known |= !strcmp (s_channel_ids[i], c->string);
        if (!known) {
            s_err (err, errlen,
                   "channels.%.64s: unknown channel (use whatsapp, telegram, "
                   "discord, slack, webhook)",
                   c->string);
            return -1;
        }
        if (!cJSON_IsObject (c)) {
            s_err (err, errlen, "channels.%s: must be an object", c->string);
            return -1;
        }
        const cJSON *en = cJSON_GetObjectItemCaseSensitive (c, "enabled");
        if (en && !cJSON_IsBool (en)) {
            s_err (err, errlen, "channels.%s.enabled: must be true or false",
                   c->string);
            return -1;
        }
        cfg_channel_t *ch = &self->channels[self->n_channels++];
        ch->id = strdup (c->string);
        ch->enabled = !en || cJSON_IsTrue (en);
    }
    return 0;
}

static int
s_load_string_list (char ***out, const cJSON *arr, const char *where, char *err,
                    size_t errlen)
{
    if (!cJSON_IsArray (arr)) {
        s_err (err, errlen, "%s: must be an array of strings", where);
        return -1;
    }
    size_t n = (size_t) cJSON_GetArraySize (arr);
    char **list = (char **) calloc (n + 1, sizeof (char *));
    if (!list)
        return -1;
    size_t i = 0;
    for (const cJSON *c = arr->child; c; c = c->next) {
        if (!cJSON_IsString (c) || !*c->valuestring
            || strlen (c->valuestring) > 200) {
            s_err (err, errlen, "%s: must be an array of names", where);
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

static int
s_load_text (cg_config_t *self, const char *text, size_t n, const char *path,
             char *err, size_t errlen)
{
    json_in_rc_t why;
    size_t at;
    cJSON *root = json_in_parse (text, n, CFG_MAX_FILE, 0, &why, &at);
    if (!root) {
        if (why == JSON_IN_MALFORMED)
            s_err (err, errlen, "config file %s: not valid JSON near byte %zu",
                   path, at);
        else if (why == JSON_IN_TOO_LARGE)
            s_err (err, errlen, "config file %s: larger than 1 MiB", path);
        else
            s_err (err, errlen, "config file %s: %s", path, json_in_reason (why));
        return -1;
    }
    int rc = -1;
    if (!cJSON_IsObject (root)) {
        s_err (err, errlen, "config file %s: must hold a JSON object", path);
        goto done;
    }
    static const char *const keys[] = {
        "bind", "port", "stateDir", "logLevel", "auth", "gateway", "limits",
        "broker", "providers", "channels", "ready", "agents", "sessions",
        "websocket", "browser", NULL};
    if (s_known_keys (root, "", keys, err, errlen))
        goto done;
    long long port = self->port;
    if (s_get_str (root, "bind", "", &self->bind, err, errlen)
        || s_get_int (root, "port", "", 0, 65535, &port, err, errlen)
        || s_get_str (root, "stateDir", "", &self->state_dir, err, errlen)
        || s_get_str (root, "logLevel", "", &self->log_level, err, errlen))
        goto done;
    self->port = (int) port;

    int orc = 0;
    const cJSON *auth = s_get_obj (root, "auth", "", err, errlen, &orc);
    if (orc || (auth && s_load_auth (self, auth, err, errlen)))
        goto done;

    const cJSON *gw = s_get_obj (root, "gateway", "", err, errlen, &orc);
    if (orc)
        goto done;
    if (gw) {
        static const char *const gkeys[] = {
            "threads", "maxBodyBytes", "requestTimeoutMs", "controlTimeoutMs",
            "drainTimeoutMs", "sseKeepaliveMs", "maxFrameBytes",
            "headerTimeoutMs", "keepAliveTimeoutMs", "reservedThreads", NULL};
        if (s_known_keys (gw, "gateway.", gkeys, err, errlen)
            || s_get_intv (gw, "threads", "gateway.", 1, 4096, &self->threads,
                           err, errlen)
            || s_get_int (gw, "maxBodyBytes", "gateway.", 1024,
                          1024LL * 1024 * 1024, &self->max_body, err, errlen)
            || s_get_intv (gw, "requestTimeoutMs", "gateway.", 100, 86400000,
                           &self->request_timeout_ms, err, errlen)
            || s_get_intv (gw, "controlTimeoutMs", "gateway.", 100, 600000,
                           &self->control_timeout_ms, err, errlen)
            || s_get_intv (gw, "drainTimeoutMs", "gateway.", 0, 3600000,
                           &self->drain_timeout_ms, err, errlen)
            || s_get_intv (gw, "sseKeepaliveMs", "gateway.", 100, 600000,
                           &self->sse_keepalive_ms, err, errlen)
            || s_get_intv (gw, "maxFrameBytes", "gateway.", 1024,
                           1024 * 1024 * 1024, &self->max_frame_bytes, err,
                           errlen)
            || s_get_intv (gw, "headerTimeoutMs", "gateway.", 100, 600000,
                           &self->header_timeout_ms, err, errlen)
            || s_get_intv (gw, "keepAliveTimeoutMs", "gateway.", 100, 600000,
                           &self->keep_alive_timeout_ms, err, errlen)
            || s_get_intv (gw, "reservedThreads", "gateway.", 0, 4096,
                           &self->reserved_threads, err, errlen))
            goto done;
    }
    const cJSON *limits = s_get_obj (root, "limits", "", err, errlen, &orc);
    if (orc)
        goto done;
    if (limits) {
        static const char *const lkeys[] = {
            "rateLimit", "burst", "maxConcurrent", "authFailures",
            "maxConnectionsPerAddress", "leaseMs", NULL};
        if (s_known_keys (limits, "limits.", lkeys, err, errlen)
            || s_get_intv (limits, "rateLimit", "limits.", 0, 100000000,
                           &self->rate_limit, err, errlen)
            || s_get_intv (limits, "burst", "limits.", 0, 100000000,
                           &self->burst, err, errlen)
            || s_get_intv (limits, "maxConcurrent", "limits.", 0, 1000000,
                           &self->max_concurrent, err, errlen)
            || s_get_intv (limits, "authFailures", "limits.", 0, 1000000,
                           &self->auth_failures, err, errlen)
            || s_get_intv (limits, "maxConnectionsPerAddress", "limits.", 0,
                           1000000, &self->max_conns_per_addr, err, errlen)
            || s_get_intv (limits, "leaseMs", "limits.", 300, 600000,
                           &self->lease_ms, err, errlen))
            goto done;
    }
    const cJSON *broker = s_get_obj (root, "broker", "", err, errlen, &orc);
    if (orc)
        goto done;
    if (broker) {
        static const char *const bkeys[] = {"requests", "events", "heartbeatMs",
                                            "liveness", NULL};
        if (s_known_keys (broker, "broker.", bkeys, err, errlen)
            || s_get_str (broker, "requests", "broker.", &self->requests_ep,
                          err, errlen)
            || s_get_str (broker, "events", "broker.", &self->events_ep, err,
                          errlen)
            || s_get_intv (broker, "heartbeatMs", "broker.", 50, 60000,
                           &self->heartbeat_ms, err, errlen)
            || s_get_intv (broker, "liveness", "broker.", 1, 100,
                           &self->liveness, err, errlen))
            goto done;
    }
    const cJSON *sessions = s_get_obj (root, "sessions", "", err, errlen, &orc);
    if (orc)
        goto done;
    if (sessions) {
        static const char *const skeys[] = {"store", "contextMessages",
                                            "contextChars", "maxQueued",
                                            "readers", NULL};
        if (s_known_keys (sessions, "sessions.", skeys, err, errlen)
            || s_get_str (sessions, "store", "sessions.", &self->store, err,
                          errlen)
            || s_get_intv (sessions, "contextMessages", "sessions.", 0, 100000,
                           &self->context_messages, err, errlen)
            || s_get_intv (sessions, "contextChars", "sessions.", 0, 100000000,
                           &self->context_chars, err, errlen)
            || s_get_intv (sessions, "maxQueued", "sessions.", 1, 100000,
                           &self->max_queued, err, errlen)
            || s_get_intv (sessions, "readers", "sessions.", 1, 16,
                           &self->session_readers, err, errlen))
            goto done;
    }
    const cJSON *ws = s_get_obj (root, "websocket", "", err, errlen, &orc);
    if (orc)
        goto done;
    if (ws) {
        static const char *const wkeys[] = {"heartbeatMs", "queueFrames",
                                            "writers", NULL};
        if (s_known_keys (ws, "websocket.", wkeys, err, errlen)
            || s_get_intv (ws, "heartbeatMs", "websocket.", 100, 3600000,
                           &self->ws_heartbeat_ms, err, errlen)
            || s_get_intv (ws, "queueFrames", "websocket.", 1, 1000000,
                           &self->ws_queue_frames, err, errlen)
            || s_get_intv (ws, "writers", "websocket.", 1, 64,
                           &self->ws_writers, err, errlen))
            goto done;
    }
    const cJSON *browser = s_get_obj (root, "browser", "", err, errlen, &orc);
    if (orc)
        goto done;
    if (browser) {
        static const char *const brkeys[] = {"chromium", "navigateTimeoutMs",
                                             "viewportWidth", "viewportHeight",
                                             "headless", NULL};
        if (s_known_keys (browser, "browser.", brkeys, err, errlen)
            || s_get_str (browser, "chromium", "browser.",
                          &self->browser_chromium, err, errlen)
            || s_get_intv (browser, "navigateTimeoutMs", "browser.", 100,
                           600000, &self->browser_navigate_timeout_ms, err,
                           errlen)
            || s_get_intv (browser, "viewportWidth", "browser.", 16, 8192,
                           &self->browser_viewport_width, err, errlen)
            || s_get_intv (browser, "viewportHeight", "browser.", 16, 8192,
                           &self->browser_viewport_height, err, errlen))
            goto done;
        //  A server has no display: headless is forced, and saying
        //  otherwise is an error rather than silently ignored.
        const cJSON *headless = cJSON_GetObjectItemCaseSensitive (browser,
                                                                  "headless");
        if (headless && !cJSON_IsTrue (headless)) {
            s_err (err, errlen, "browser.headless: must be true (Chromium "
                   "always runs headless here)");
            goto done;
        }
        if (!*self->browser_chromium) {
            s_err (err, errlen, "browser.chromium: must not be empty");
            goto done;
        }
    }
    const cJSON *providers = s_get_obj (root, "providers", "", err, errlen, &orc);
    if (orc || (providers && s_load_providers (self, providers, err, errlen)))
        goto done;
    const cJSON *agents = s_get_obj (root, "agents", "", err, errlen, &orc);
    if (orc || (agents && s_load_agents (self, agents, err, errlen)))
        goto done;
    const cJSON *channels = s_get_obj (root, "channels", "", err, errlen, &orc);
    if (orc || (channels && s_load_channels (self, channels, err, errlen)))
        goto done;
    const cJSON *ready = cJSON_GetObjectItemCaseSensitive (root, "ready");
    if (ready
        && s_load_string_list (&self->ready_services, ready, "ready", err,
                               errlen))
        goto done;
    rc = 0;
done:
    cJSON_Delete (root);
    return rc;
}

static int
s_load_file (cg_config_t *self, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen (path, "rb");
    if (!f) {
        s_err (err, errlen, "config file %s: %s", path, strerror (errno));
        return -1;
    }
    char *text = (char *) malloc (CFG_MAX_FILE + 1);
    size_t n = text ? fread (text, 1, CFG_MAX_FILE + 1, f) : 0;
    fclose (f);
    if (!text) {
        s_err (err, errlen, "config file %s: out of memory", path);
        return -1;
    }
    int rc = s_load_text (self, text, n, path, err, errlen);
    free (text);
    return rc;
}

//  ---- Environment ----------------------------------------------------------

static int
s_env_int (const char *name, long long min, long long max, int *out, char *err,
           size_t errlen)
{
    const char *v = getenv (name);
    if (!v || !*v)
        return 0;
    char *end;
    errno = 0;
    long long n = strtoll (v, &end, 10);
    if (errno || *end || n < min || n > max) {
        s_err (err, errlen, "%s: must be an integer from %lld to %lld", name,
               min, max);
        return -1;
    }
    *out = (int) n;
    return 0;
}

static int
s_load_env (cg_config_t *self, char *err, size_t errlen)
{
    const char *v;
    if ((v = getenv ("CLAWGATE_TOKEN")) && *v)
        s_set (&self->token, v);
    if ((v = getenv ("CLAWGATE_PASSWORD")) && *v)
        s_set (&self->password, v);
    if ((v = getenv ("CLAWGATE_AUTH")) && *v
        && s_auth_parse (v, &self->auth_mode)) {
        s_err (err, errlen,
               "CLAWGATE_AUTH: must be token, password, token+password or none");
        return -1;
    }
    if ((v = getenv ("CLAWGATE_BIND")) && *v)
        s_set (&self->bind, v);
    if ((v = getenv ("CLAWGATE_STATE_DIR")) && *v)
        s_set (&self->state_dir, v);
    if ((v = getenv ("CLAWGATE_LOG_LEVEL")) && *v)
        s_set (&self->log_level, v);
    if ((v = getenv ("CLAWGATE_STORE")) && *v)
        s_set (&self->store, v);
    if (s_env_int ("CLAWGATE_PORT", 0, 65535, &self->port, err, errlen)
        || s_env_int ("CLAWGATE_RATE_LIMIT", 0, 100000000, &self->rate_limit,
                      err, errlen)
        || s_env_int ("CLAWGATE_MAX_CONCURRENT", 0, 1000000,
                      &self->max_concurrent, err, errlen)
        || s_env_int ("CLAWGATE_THREADS", 1, 4096, &self->threads, err, errlen))
        return -1;
    return 0;
}

//  ---- Load ------------------------------------------------------------------

static void
s_defaults (cg_config_t *self)
{
    self->bind = strdup ("127.0.0.1");
    self->port = 18789;
    const char *home = getenv ("HOME");
    char dir[PATH_MAX];
    snprintf (dir, sizeof (dir), "%s/.clawgate", home && *home ? home : ".");
    self->state_dir = strdup (dir);
    self->log_level = strdup ("info");
    self->auth_mode = AUTH_TOKEN;
    self->threads = 64;
    self->max_body = 10LL * 1024 * 1024;
    self->request_timeout_ms = 300000;
    self->control_timeout_ms = 5000;
    self->drain_timeout_ms = 10000;
    self->sse_keepalive_ms = 5000;
    self->max_frame_bytes = 1024 * 1024;
    self->rate_limit = 100;
    self->burst = 0;                 //  = rate_limit: a minute's worth
    self->max_concurrent = 10;
    self->auth_failures = 10;        //  SPEC: on by default
    //  Open connections per address, counted by the gate (gateway/gate.h)
    //  from accept: hundreds, not thousands, from one client; a proxy in
    //  front raises it.
    self->max_conns_per_addr = 256;
    self->header_timeout_ms = 10000;
    self->keep_alive_timeout_ms = 5000;
    self->reserved_threads = -1;     //  threads / 8
    self->lease_ms = 5000;
    self->requests_ep = strdup (BUS_INPROC_REQUESTS);
    self->events_ep = strdup (BUS_INPROC_EVENTS);
    self->heartbeat_ms = 1000;
    self->liveness = 3;
    self->context_messages = 50;
    self->context_chars = 200000;
    self->max_queued = 32;
    self->session_readers = 2;
    self->ws_heartbeat_ms = 30000;
    self->ws_queue_frames = 4096;
    self->ws_writers = 4;
    self->browser_chromium = strdup ("/usr/bin/chromium");
    self->browser_navigate_timeout_ms = 15000;
    self->browser_viewport_width = 1280;
    self->browser_viewport_height = 800;
    self->ready_services = (char **) calloc (5, sizeof (char *));
    if (self->ready_services) {
        self->ready_services[0] = strdup ("system");
        self->ready_services[1] = strdup ("run");
        self->ready_services[2] = strdup ("session");
        self->ready_services[3] = strdup ("ratelimit");
    }
    self->started_at = (long long) time (NULL);
}

//  What each actor reads, lent from the loaded configuration.
static void
s_lend_actor_settings (cg_config_t *self)
{
    actor_settings_t *a = &self->actors;
    a->bus = (actor_bus_settings_t){self->heartbeat_ms, self->liveness};
    a->catalog = s_catalog (self);
    a->run = (run_settings_t){self->request_timeout_ms};
    a->session = (session_settings_t){self->store, self->state_dir,
                                      self->context_messages, self->context_chars,
                                      self->max_queued, self->session_readers,
                                      self->request_timeout_ms};
    a->browser = (browser_settings_t){self->browser_chromium, self->state_dir,
                                      self->browser_navigate_timeout_ms,
                                      self->browser_viewport_width,
                                      self->browser_viewport_height};
    a->ratelimit = (ratelimit_settings_t){self->lease_ms};
    a->system = (system_settings_t){self->channels, self->n_channels};
}

cg_config_t *
config_load (const cfg_flags_t *flags, char *err, size_t errlen)
{
    cg_config_t *self = (cg_config_t *) calloc (1, sizeof (cg_config_t));
    if (!self) {
        s_err (err, errlen, "out of memory");
        return NULL;
    }
    s_defaults (self);
    s_add_provider (self, "local", PROVIDER_ECHO);
    self->agents = (cfg_agent_t *) calloc (1, sizeof (cfg_agent_t));
    if (self->agents) {
        self->n_agents = 1;
        self->agents[0].id = strdup ("default");
        self->agents[0].model = strdup ("local/echo");
        self->agents[0].max_tokens = 1024;
        self->agents[0].max_tool_steps = 5;
    }
    s_add_model (self, "local", "echo",
                 "Built-in test/demo provider: deterministic, echoes the last "
                 "message back word by word. Not a real model.");
    const char *path = flags && flags->config_path ? flags->config_path
                                                   : getenv ("CLAWGATE_CONFIG");
    if (flags && flags->config_text) {
        if (s_load_text (self, flags->config_text, flags->config_len,
                         path ? path : "(text)", err, errlen))
            goto fail;
    }
    else if (path && *path && s_load_file (self, path, err, errlen))
        goto fail;
    if (s_load_env (self, err, errlen))
        goto fail;
    s_provider_env (self, "openai", PROVIDER_OPENAI, "OPENAI_API_KEY",
                    "OPENAI_BASE_URL", "gpt-4o-mini");
    s_provider_env (self, "anthropic", PROVIDER_ANTHROPIC, "ANTHROPIC_API_KEY",
                    "ANTHROPIC_BASE_URL", "claude-3-5-haiku-latest");
    if (s_check_agents (self, err, errlen))
        goto fail;
    if (flags) {
        if (flags->bind)
            s_set (&self->bind, flags->bind);
        if (flags->port >= 0)
            self->port = flags->port;
        if (flags->state_dir)
            s_set (&self->state_dir, flags->state_dir);
        if (flags->broker)
            s_set (&self->requests_ep, flags->broker);
        if (flags->events)
            s_set (&self->events_ep, flags->events);
        if (flags->store)
            s_set (&self->store, flags->store);
    }
    if (log_level_parse (self->log_level) < 0) {
        s_err (err, errlen, "logLevel: must be debug, info, warn or error");
        goto fail;
    }
    if (!*self->bind || strchr (self->bind, ',') || strchr (self->bind, ' ')) {
        s_err (err, errlen, "bind: must be one address");
        goto fail;
    }
    s_lend_actor_settings (self);
    return self;
fail:
    config_destroy (&self);
    return NULL;
}

//  ---- State directory --------------------------------------------------------

static int
s_read_token (const char *path, char **token)
{
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    char buf[256] = {0};
    size_t n = fread (buf, 1, sizeof (buf) - 1, f);
    fclose (f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = 0;
    if (n < 16)
        return -1;
    *token = strdup (buf);
    return 0;
}

static int
s_generate_token (const char *path, char **token, char *err, size_t errlen)
{
    unsigned char raw[32];
    int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read (fd, raw, sizeof (raw)) != (ssize_t) sizeof (raw)) {
        if (fd >= 0)
            close (fd);
        s_err (err, errlen, "cannot read /dev/urandom to generate a token");
        return -1;
    }
    close (fd);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf (hex + 2 * i, 3, "%02x", raw[i]);
    fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        s_err (err, errlen, "cannot create %s: %s", path, strerror (errno));
        return -1;
    }
    bool ok = write (fd, hex, 64) == 64 && write (fd, "\n", 1) == 1;
    ok = (fsync (fd) == 0) && ok;
    close (fd);
    if (!ok) {
        unlink (path);
        s_err (err, errlen, "cannot write %s", path);
        return -1;
    }
    *token = strdup (hex);
    return 0;
}

int
config_prepare_state (cg_config_t *self, char *err, size_t errlen)
{
    if (mkdir (self->state_dir, 0700) && errno != EEXIST) {
        s_err (err, errlen, "stateDir %s: %s", self->state_dir, strerror (errno));
        return -1;
    }
    if (self->token || !(self->auth_mode & AUTH_TOKEN)
        || self->auth_mode == AUTH_NONE)
        return 0;
    char path[PATH_MAX];
    snprintf (path, sizeof (path), "%s/token", self->state_dir);
    if (s_read_token (path, &self->token) == 0)
        return 0;
    if (access (path, F_OK) == 0) {
        s_err (err, errlen, "%s: exists but holds no usable token", path);
        return -1;
    }
    if (s_generate_token (path, &self->token, err, errlen))
        return -1;
    self->token_generated = true;
    return 0;
}

int
config_check_serving (const cg_config_t *self, char *err, size_t errlen)
{
    if (self->auth_mode == AUTH_NONE && !config_is_loopback (self->bind)) {
        s_err (err, errlen,
               "auth: mode 'none' is refused on non-loopback bind %s; set a "
               "token or bind 127.0.0.1",
               self->bind);
        return -1;
    }
    if ((self->auth_mode == AUTH_PASSWORD || self->auth_mode == AUTH_BOTH)
        && (!self->password || !*self->password)) {
        s_err (err, errlen,
               "auth.password: required by auth mode %s (or CLAWGATE_PASSWORD)",
               config_auth_name (self->auth_mode));
        return -1;
    }
    if (self->token && strlen (self->token) < 16) {
        s_err (err, errlen, "auth.token: must be at least 16 characters");
        return -1;
    }
    return 0;
}

void
config_destroy (cg_config_t **self_p)
{
    cg_config_t *self = *self_p;
    if (!self)
        return;
    free (self->bind);
    free (self->state_dir);
    free (self->log_level);
    free (self->token);
    free (self->password);
    for (size_t i = 0; i < self->n_tokens; i++) {
        free (self->tokens[i].token);
        free (self->tokens[i].name);
    }
    free (self->tokens);
    free (self->requests_ep);
    free (self->events_ep);
    free (self->store);
    free (self->browser_chromium);
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
        free (self->providers[i].base_url);
        free (self->providers[i].api_key);
    }
    free (self->providers);
    for (size_t i = 0; i < self->n_agents; i++) {
        free (self->agents[i].id);
        free (self->agents[i].model);
        free (self->agents[i].system);
        for (char **f = self->agents[i].fallbacks; f && *f; f++)
            free (*f);
        free (self->agents[i].fallbacks);
    }
    free (self->agents);
    for (size_t i = 0; i < self->n_channels; i++)
        free (self->channels[i].id);
    free (self->channels);
    free (self);
    *self_p = NULL;
}
