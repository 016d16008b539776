/*  =========================================================================
    reference - the key table as the README's configuration reference

    `clawgate config-keys` prints this; tests/config_reference.cmake fails
    when README.md's copy between its config-reference markers differs.
    =========================================================================
*/
#include "config.h"

#include "keys.h"

#include <stdio.h>
#include <string.h>

static const char *
s_type_name (key_type_t type)
{
    switch (type) {
    case KEY_STRING: return "string";
    case KEY_INT:
    case KEY_LONG: return "integer";
    case KEY_BOOL:
    case KEY_TRUE: return "boolean";
    case KEY_AUTH: return "name";
    case KEY_LIST: return "list";
    }
    return "?";
}

static void
s_default (FILE *out, const config_key_t *k)
{
    if (k->shown)
        fprintf (out, "%s", k->shown);
    else if ((k->type == KEY_STRING || k->type == KEY_LIST) && k->def_text)
        fprintf (out, "`%s`", k->def_text);
    else if (k->type == KEY_STRING || k->type == KEY_LIST)
        fprintf (out, "–");
    else if (k->type == KEY_INT || k->type == KEY_LONG)
        fprintf (out, "`%lld`", k->def);
    else if (k->type == KEY_AUTH)
        fprintf (out, "`%s`", config_auth_name ((auth_mode_t) k->def));
    else
        fprintf (out, "`%s`", k->def ? "true" : "false");
}

//  Each name of a comma-separated list in backticks.
static void
s_names (FILE *out, const char *list, const char *sep)
{
    while (*list) {
        size_t len = strcspn (list, ",");
        fprintf (out, "%s`%.*s`", sep, (int) len, list);
        list += len;
        list += strspn (list, ", ");
        sep = ", ";
    }
}

static void
s_sources (FILE *out, const config_key_t *k)
{
    if (k->env)
        s_names (out, k->env, "");
    if (k->flag)
        s_names (out, k->flag, k->env ? ", " : "");
    if (!k->env && !k->flag)
        fprintf (out, "–");
}

static void
s_bounds (FILE *out, const config_key_t *k)
{
    if (k->type == KEY_INT || k->type == KEY_LONG)
        fprintf (out, "%lld to %lld", k->min, k->max);
    else if (k->values)
        fprintf (out, "%s", k->values);
    else if (k->not_empty)
        fprintf (out, "not empty");
    else if (k->type == KEY_TRUE)
        fprintf (out, "`true`");
    else
        fprintf (out, "–");
}

//  ---------------------------------------------------------------------------
//  Prints one Markdown row per key of the table.

int
config_print_reference (FILE *out)
{
    fprintf (out, "| key | type | default | environment, flag | bounds | "
                  "meaning |\n|---|---|---|---|---|---|\n");
    for (const config_key_t *k = config_keys; k->key; k++) {
        fprintf (out, "| `%s` | %s | ", k->key, s_type_name (k->type));
        s_default (out, k);
        fprintf (out, " | ");
        s_sources (out, k);
        fprintf (out, " | ");
        s_bounds (out, k);
        fprintf (out, " | %s |\n", k->help);
    }
    return fflush (out) == 0 && !ferror (out) ? 0 : -1;
}
