/*  =========================================================================
    sections - the configuration's structured sections, parsed by hand

    auth.tokens[], providers, agents, channels and ready are lists or maps
    of entries, not scalar keys: an entry is created before its keys are
    read (a provider's type decides its default URL), entries refer to each
    other (an agent's models), and lists are whole values.  Each entry's
    scalar keys still come from the key table (config/keys.c, rows of kind
    KEY_IN_TOKEN, KEY_IN_PROVIDER...); only what a table row cannot say is
    written here.  Internal to config/.
    =========================================================================
*/
#ifndef CG_CONFIG_SECTIONS_H
#define CG_CONFIG_SECTIONS_H

#include "config.h"

#include <cjson/cJSON.h>

//  Each reads its part of the file (item, present) into self: 0, or -1
//  with one sentence naming the key in err.
int
sections_auth (cg_config_t *self, const cJSON *item, char *err, size_t errlen);
int
sections_providers (cg_config_t *self, const cJSON *item, char *err, size_t errlen);
int
sections_agents (cg_config_t *self, const cJSON *item, char *err, size_t errlen);
int
sections_channels (cg_config_t *self, const cJSON *item, char *err, size_t errlen);
int
sections_ready (cg_config_t *self, const cJSON *item, char *err, size_t errlen);

//  The built-in catalogue: provider local with model local/echo, agent
//  default on it, and the services /ready requires.
void
sections_defaults (cg_config_t *self);

//  OPENAI_* and ANTHROPIC_* fill in (or create) those providers;
//  TELEGRAM_BOT_TOKEN fills in a configured channels.telegram.
void
sections_env (cg_config_t *self);

//  Every agent's model and fallbacks must name a configured model.
int
sections_check_agents (const cg_config_t *self, char *err, size_t errlen);

//  Channels: policies and modes by name, credentials where enabled, agents
//  known.
int
sections_check_channels (const cg_config_t *self, char *err, size_t errlen);

//  Frees the sections' entries.
void
sections_free (cg_config_t *self);

#endif
