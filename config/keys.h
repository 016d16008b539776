/*  =========================================================================
    keys - the configuration's key table, and what it drives

    One row per scalar key: its path in the JSON file, its type, default,
    environment variable and flag, bounds, the place it lands (an offset
    into the struct it belongs to) and further places that read the same
    value, and one line of help.  The loader reads a section's keys, checks
    for unknown ones, applies defaults, the environment and the flags, and
    frees strings, all by walking this table; config_print_reference prints
    it.  Rows marked KEY_BY_HAND are read by a hand-written parser in
    config/sections.c (lists, and values other keys depend on) but still
    declare the key for the unknown-key checks and the reference.

    Internal to config/: the public API is config.h.
    =========================================================================
*/
#ifndef CG_CONFIG_KEYS_H
#define CG_CONFIG_KEYS_H

#include "config.h"

#include <cjson/cJSON.h>
#include <stddef.h>

typedef enum {
    KEY_STRING,  //  char *, owned by the struct
    KEY_INT,     //  int from min to max
    KEY_LONG,    //  long long from min to max
    KEY_BOOL,    //  bool, JSON true or false
    KEY_AUTH,    //  auth_mode_t, by name (config_auth_name)
    KEY_TRUE,    //  Must be true; lands nowhere
    KEY_LIST,    //  Array of names (always KEY_BY_HAND)
} key_type_t;

//  The struct a row's offsets point into.
typedef enum {
    KEY_IN_CONFIG,    //  cg_config_t
    KEY_IN_TOKEN,     //  cfg_token_t, one per auth.tokens[] entry
    KEY_IN_PROVIDER,  //  cfg_provider_t, providers.<name>
    KEY_IN_LOCAL,     //  cfg_provider_t, the built-in providers.local
    KEY_IN_AGENT,     //  cfg_agent_t, agents.<id>
    KEY_IN_CHANNEL,   //  cfg_channel_t, channels.<id>
} key_in_t;

//  at of a row that a hand-written parser reads.
#define KEY_BY_HAND ((size_t) -1)

typedef struct {
    const char *key;  //  Path in the JSON file; NULL ends the table
    key_type_t type;
    key_in_t in;           //  What at and also point into
    size_t at;             //  Where the value lands (owner of a string)
    size_t also[2];        //  Other readers of the value, copied (a
                           //  string lent) after loading; 0 = none
    long long min, max;    //  Bounds of a number
    long long def;         //  Default of a number, bool or auth mode
    const char *def_text;  //  Default of a string ("~/" is $HOME); for
                           //  other types, how the reference shows it
    const char *env;       //  Environment variable, or NULL
    size_t flag_at;        //  Offset into cfg_flags_t, 0 = no flag
    const char *flag;      //  The flag's name, for the reference
    const char *values;    //  Accepted names ("debug, info, warn or
                           //  error"): a KEY_AUTH's error, the bounds
                           //  the reference shows for the others
    const char *must;      //  Error tail of a KEY_TRUE ("must be true
                           //  (...)")
    bool not_empty;        //  A string that must not be "" (checked
                           //  once its part of the file is read)
    const char *shown;     //  Default as the reference shows it, when
                           //  not the value itself ("threads / 8")
    const char *help;      //  One line of Markdown, for the reference
} config_key_t;

//  The table, ended by a row whose key is NULL.
extern const config_key_t config_keys[];

//  Writes one sentence into err (printf-style).
void
keys_err (char *err, size_t errlen, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

//  Replaces *field with a copy of value (NULL allowed).
void
keys_set (char **field, const char *value);

//  The key's last segment, as its JSON object spells it ("threads").
const char *
keys_leaf (const config_key_t *key);

//  Checks that obj holds only keys the table declares at this place.  For
//  KEY_IN_CONFIG, section NULL is the file's top level and "auth" that
//  section (whose keys are free when its entries are named, as in
//  providers.<name>); any other `in` is one entry of that kind
//  (auth.tokens[], providers.<name>...) and section is not used.  Names
//  the first other key after where.  0 or -1.
int
keys_check_known (const cJSON *obj, key_in_t in, const char *section, const char *where,
                  char *err, size_t errlen);

//  Reads one generic row from obj into base; where prefixes its key in
//  errors ("gateway.").  An absent key is left alone.  0 or -1 and err.
int
keys_read_row (const config_key_t *key, const cJSON *obj, const char *where, void *base,
               char *err, size_t errlen);

//  Reads the generic rows of kind `in` (and, for KEY_IN_CONFIG, of this
//  section; "" is the top level) from obj into base.  0 or -1 and err.
int
keys_read (const cJSON *obj, key_in_t in, const char *section, const char *where,
           void *base, char *err, size_t errlen);

//  Sets every generic row of kind `in` in base to its default.
void
keys_defaults (key_in_t in, void *base);

//  Applies the environment variables of the table.  0 or -1 and err.
int
keys_env (cg_config_t *self, char *err, size_t errlen);

//  Applies the flags that are set.
void
keys_flags (cg_config_t *self, const cfg_flags_t *flags);

//  Copies each key's value into the other places that read it.
void
keys_spread (cg_config_t *self);

//  Frees the strings of kind `in` in base.
void
keys_free (key_in_t in, void *base);

#endif
