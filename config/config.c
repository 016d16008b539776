/*  =========================================================================
    config - load, merge and check clawgate's configuration

    Built-in defaults < JSON file (or its text) < environment < flags.  The
    scalar keys, their defaults, variables, flags and bounds are the rows
    of config/keys.c's table; this file walks the file's sections in the
    table's order and hands the structured ones (auth.tokens[], providers,
    agents, channels, ready) to config/sections.c.  The state directory
    and the serving checks are config/state.c.
    =========================================================================
*/
#include "config.h"

#include "json_in.h"
#include "keys.h"
#include "log.h"
#include "sections.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CFG_MAX_FILE (1024 * 1024)

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

//  The parts of the file a hand-written parser reads after the table's
//  rows of that section (see config/sections.h for why).
static const struct {
    const char *name;
    int (*load) (cg_config_t *self, const cJSON *item, char *err, size_t errlen);
} s_hooks[] = {{"auth", sections_auth},     {"providers", sections_providers},
               {"agents", sections_agents}, {"channels", sections_channels},
               {"ready", sections_ready},   {NULL, NULL}};

static int
s_hook (cg_config_t *self, const char *name, const cJSON *item, char *err, size_t errlen)
{
    for (int i = 0; s_hooks[i].name; i++)
        if (!strcmp (s_hooks[i].name, name))
            return s_hooks[i].load (self, item, err, errlen);
    return 0;
}

//  Reads the part of root that row k opens: a top-level key, or a whole
//  section (an object: its unknown keys, its rows, then its hook).
static int
s_load_part (cg_config_t *self, const cJSON *root, const config_key_t *k, char *err,
             size_t errlen)
{
    char name[32];
    size_t len = strcspn (k->key, ".[");
    snprintf (name, sizeof (name), "%.*s", (int) len, k->key);
    const cJSON *item = cJSON_GetObjectItemCaseSensitive (root, name);
    if (!item)
        return 0;
    if (!k->key[len])  //  A top-level key
        return k->at == KEY_BY_HAND ? s_hook (self, name, item, err, errlen)
                                    : keys_read_row (k, root, "", self, err, errlen);
    if (!cJSON_IsObject (item)) {
        keys_err (err, errlen, "%s: must be an object", name);
        return -1;
    }
    char where[40];
    snprintf (where, sizeof (where), "%s.", name);
    if (keys_check_known (item, KEY_IN_CONFIG, name, where, err, errlen)
        || keys_read (item, KEY_IN_CONFIG, name, where, self, err, errlen))
        return -1;
    return s_hook (self, name, item, err, errlen);
}

//  Walks the table: each top-level key, and each section at its first row,
//  in the table's order.
static int
s_load_root (cg_config_t *self, const cJSON *root, char *err, size_t errlen)
{
    if (keys_check_known (root, KEY_IN_CONFIG, NULL, "", err, errlen))
        return -1;
    for (const config_key_t *k = config_keys; k->key; k++) {
        size_t len = strcspn (k->key, ".[");
        bool seen = false;
        for (const config_key_t *e = config_keys; e < k && !seen; e++)
            seen = strcspn (e->key, ".[") == len && !strncmp (e->key, k->key, len);
        bool top = !k->key[len];
        if ((!seen || top) && s_load_part (self, root, k, err, errlen))
            return -1;
    }
    return 0;
}

static int
s_load_text (cg_config_t *self, const char *text, size_t n, const char *path, char *err,
             size_t errlen)
{
    json_in_rc_t why;
    size_t at;
    cJSON *root = json_in_parse (text, n, CFG_MAX_FILE, 0, &why, &at);
    if (!root) {
        if (why == JSON_IN_MALFORMED)
            keys_err (err, errlen, "config file %s: not valid JSON near byte %zu", path,
                      at);
        else if (why == JSON_IN_TOO_LARGE)
            keys_err (err, errlen, "config file %s: larger than 1 MiB", path);
        else
            keys_err (err, errlen, "config file %s: %s", path, json_in_reason (why));
        return -1;
    }
    int rc = -1;
    if (!cJSON_IsObject (root))
        keys_err (err, errlen, "config file %s: must hold a JSON object", path);
    else
        rc = s_load_root (self, root, err, errlen);
    cJSON_Delete (root);
    return rc;
}

static int
s_load_file (cg_config_t *self, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen (path, "rb");
    if (!f) {
        keys_err (err, errlen, "config file %s: %s", path, strerror (errno));
        return -1;
    }
    char *text = (char *) malloc (CFG_MAX_FILE + 1);
    size_t n = text ? fread (text, 1, CFG_MAX_FILE + 1, f) : 0;
    fclose (f);
    if (!text) {
        keys_err (err, errlen, "config file %s: out of memory", path);
        return -1;
    }
    int rc = s_load_text (self, text, n, path, err, errlen);
    free (text);
    return rc;
}

//  ---- Load ------------------------------------------------------------------

//  The configured providers, models and agents as the actors see them.
static catalog_t
s_catalog (const cg_config_t *self)
{
    return (catalog_t){self->providers, self->n_providers, self->models,
                       self->n_models,  self->agents,      self->n_agents};
}

//  What holds only for the merged result.
static int
s_check (const cg_config_t *self, char *err, size_t errlen)
{
    if (log_level_parse (self->log_level) < 0) {
        keys_err (err, errlen, "logLevel: must be debug, info, warn or error");
        return -1;
    }
    if (!*self->bind || strchr (self->bind, ',') || strchr (self->bind, ' ')) {
        keys_err (err, errlen, "bind: must be one address");
        return -1;
    }
    return 0;
}

cg_config_t *
config_load (const cfg_flags_t *flags, char *err, size_t errlen)
{
    cg_config_t *self = (cg_config_t *) calloc (1, sizeof (cg_config_t));
    if (!self) {
        keys_err (err, errlen, "out of memory");
        return NULL;
    }
    keys_defaults (KEY_IN_CONFIG, self);
    sections_defaults (self);
    self->started_at = (long long) time (NULL);
    const char *path =
        flags && flags->config_path ? flags->config_path : getenv ("CLAWGATE_CONFIG");
    if (flags && flags->config_text) {
        if (s_load_text (self, flags->config_text, flags->config_len,
                         path ? path : "(text)", err, errlen))
            goto fail;
    }
    else if (path && *path && s_load_file (self, path, err, errlen))
        goto fail;
    if (keys_env (self, err, errlen))
        goto fail;
    sections_env (self);
    if (sections_check_agents (self, err, errlen)
        || sections_check_channels (self, err, errlen))
        goto fail;
    if (flags)
        keys_flags (self, flags);
    if (s_check (self, err, errlen))
        goto fail;
    //  What the actors read: the keys several places read, then what the
    //  sections built, lent.
    keys_spread (self);
    self->actors.catalog = s_catalog (self);
    self->actors.system = (system_settings_t){self->channels, self->n_channels};
    self->actors.channel =
        (channel_settings_t){self->channels, self->n_channels, self->state_dir,
                             self->request_timeout_ms, CHANNEL_MAX_RUNS};
    return self;
fail:
    config_destroy (&self);
    return NULL;
}

void
config_destroy (cg_config_t **self_p)
{
    cg_config_t *self = *self_p;
    if (!self)
        return;
    keys_free (KEY_IN_CONFIG, self);
    sections_free (self);
    free (self);
    *self_p = NULL;
}

//  ---- Look-ups ----------------------------------------------------------------

const cfg_provider_t *
config_find_model (const cg_config_t *self, const char *id, const char **model)
{
    catalog_t catalog = s_catalog (self);
    return catalog_find_model (&catalog, id, model);
}

const cfg_agent_t *
config_find_agent (const cg_config_t *self, const char *id)
{
    catalog_t catalog = s_catalog (self);
    return catalog_find_agent (&catalog, id);
}

int
config_reserved_threads (const cg_config_t *self)
{
    int reserve =
        self->reserved_threads >= 0 ? self->reserved_threads : self->threads / 8;
    if (reserve < 1 && self->threads > 1)
        reserve = 1;
    return reserve < self->threads ? reserve : self->threads - 1;
}
