/*  =========================================================================
    test_config - loading, merging and checking the configuration

    Errors name the offending key; env overrides the file and flags override
    env; serving checks; the generated token file; every key of the table
    (config/keys.c) at its bounds, from its environment variable, and in
    every place that reads it.  Each test sets its own
    environment (criterion runs each test in its own process).
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "harness.h"
#include "keys.h"

static char s_dir[64];    //  This test's temporary directory
static char s_path[128];  //  Its config file

static void
s_setup (void)
{
    const char *vars[] = {"CLAWGATE_CONFIG",    "CLAWGATE_TOKEN",
                          "CLAWGATE_PASSWORD",  "CLAWGATE_AUTH",
                          "CLAWGATE_BIND",      "CLAWGATE_PORT",
                          "CLAWGATE_STATE_DIR", "CLAWGATE_LOG_LEVEL",
                          "CLAWGATE_THREADS",   NULL};
    for (int i = 0; vars[i]; i++)
        unsetenv (vars[i]);
    harness_tmpdir (s_dir, sizeof (s_dir));
    cr_assert_neq (s_dir[0], 0);
    snprintf (s_path, sizeof (s_path), "%s/config.json", s_dir);
}

static void
s_teardown (void)
{
    char cmd[128];
    snprintf (cmd, sizeof (cmd), "rm -rf '%s'", s_dir);
    cr_assert_eq (system (cmd), 0);
}

TestSuite (config, .init = s_setup, .fini = s_teardown);

//  Loads json from the test's file; on success returns the config.
static cg_config_t *
s_load (const char *json, char *err, size_t cap)
{
    harness_write (s_path, json);
    cfg_flags_t flags = {.config_path = s_path, .port = -1};
    err[0] = 0;
    return config_load (&flags, err, cap);
}

//  Asserts json is refused with an error starting with prefix.
static void
s_refused (const char *json, const char *prefix)
{
    char err[256];
    cg_config_t *cfg = s_load (json, err, sizeof (err));
    cr_assert_null (cfg, "accepted: %s", json);
    cr_assert_eq (strncmp (err, prefix, strlen (prefix)), 0,
                  "error '%s' does not start with '%s'", err, prefix);
}

Test (config, errors_name_the_key)
{
    s_refused ("{\"prot\":8080}", "prot: unknown key");
    s_refused ("{\"port\":70000}", "port: must be an integer from 0 to 65535");
    s_refused ("{\"port\":-1}", "port:");
    s_refused ("{\"port\":80.5}", "port:");
    s_refused ("{\"port\":\"8080\"}", "port:");
    s_refused ("{\"bind\":5}", "bind: must be a string");
    s_refused ("{\"auth\":{\"mode\":\"magic\"}}", "auth.mode:");
    s_refused ("{\"auth\":{\"modes\":\"token\"}}", "auth.modes: unknown key");
    s_refused ("{\"auth\":\"token\"}", "auth: must be an object");
    s_refused ("{\"auth\":{\"tokens\":[{\"token\":\"0123456789abcdef\","
               "\"scopes\":[\"root\"]}]}}",
               "auth.tokens[0].scopes: unknown scope");
    s_refused ("{\"auth\":{\"tokens\":[{\"token\":\"0123456789abcdef\","
               "\"scopes\":[]}]}}",
               "auth.tokens[0].scopes:");
    s_refused ("{\"auth\":{\"tokens\":[{\"token\":\"0123456789abcdef\"},"
               "{\"token\":\"short\"}]}}",
               "auth.tokens[1].token:");
    s_refused ("{\"channels\":{\"foo\":{}}}", "channels.foo: unknown channel");
    s_refused ("{\"channels\":{\"slack\":{\"enabled\":1}}}", "channels.slack.enabled:");
    s_refused ("{\"channels\":{\"telegram\":{}}}",
               "channels.telegram.botToken: required (or TELEGRAM_BOT_TOKEN)");
    s_refused (
        "{\"channels\":{\"telegram\":{\"botToken\":\"1:a\",\"dmPolicy\":\"all\"}}}",
        "channels.telegram.dmPolicy: must be pairing, allowlist, open or disabled");
    s_refused (
        "{\"channels\":{\"telegram\":{\"botToken\":\"1:a\",\"mode\":\"webhook\"}}}",
        "channels.telegram.webhookSecret: required in webhook mode");
    s_refused ("{\"channels\":{\"telegram\":{\"botToken\":\"1:a\",\"tokn\":1}}}",
               "channels.telegram.tokn: unknown key");
    s_refused ("{\"channels\":{\"telegram\":{\"botToken\":\"1:a\",\"allowFrom\":[{}]}}}",
               "channels.telegram.allowFrom: must be an array of ids");
    s_refused ("{\"channels\":{\"telegram\":{\"botToken\":\"1:a\",\"agentId\":\"x\"}}}",
               "channels.telegram.agentId: unknown agent x");
    s_refused (
        "{\"channels\":{\"telegram\":{\"botToken\":\"1:a\",\"baseUrl\":\"ftp://x\"}}}",
        "channels.telegram.baseUrl: must be an http(s) URL");
    s_refused ("{\"channels\":{\"webhook\":{\"hooks\":{\"a "
               "b\":{\"token\":\"0123456789abcdef\"}}}}}",
               "channels.webhook.hooks.a b: a hook name is");
    s_refused ("{\"channels\":{\"webhook\":{\"hooks\":{\"ci\":{\"token\":\"short\"}}}}}",
               "channels.webhook.hooks.ci.token: required, at least 16 characters");
    s_refused ("{\"channels\":{\"telegram\":{\"botToken\":\"1:a\",\"hooks\":{}}}}",
               "channels.telegram.hooks: only the webhook channel has hooks");
    s_refused ("{\"gateway\":{\"threads\":0}}", "gateway.threads:");
    s_refused ("{\"broker\":{\"heartbeatMs\":10}}", "broker.heartbeatMs:");
    s_refused ("{\"ready\":[\"\"]}", "ready:");
    s_refused ("{\"logLevel\":\"loud\"}", "logLevel:");
    s_refused ("{\"bind\":\"a,b\"}", "bind:");
}

Test (config, malformed_and_missing_files)
{
    char err[256];
    cg_config_t *cfg = s_load ("{\"port\": 80,", err, sizeof (err));
    cr_assert_null (cfg);
    cr_assert (strstr (err, s_path), "error '%s' lacks the path", err);
    cr_assert (strstr (err, "not valid JSON"), "error '%s'", err);

    cfg = s_load ("[1, 2]", err, sizeof (err));
    cr_assert_null (cfg);
    cr_assert (strstr (err, "JSON object"), "error '%s'", err);

    char missing[160];
    snprintf (missing, sizeof (missing), "%s/absent.json", s_dir);
    cfg_flags_t flags = {.config_path = missing, .port = -1};
    cfg = config_load (&flags, err, sizeof (err));
    cr_assert_null (cfg);
    cr_assert (strstr (err, missing), "error '%s' lacks the path", err);

    //  CLAWGATE_CONFIG names the file when no flag does.
    setenv ("CLAWGATE_CONFIG", missing, 1);
    cfg_flags_t none = {.port = -1};
    cfg = config_load (&none, err, sizeof (err));
    cr_assert_null (cfg);
    cr_assert (strstr (err, missing), "error '%s'", err);
}

Test (config, defaults_and_file_values)
{
    char err[256];
    cg_config_t *cfg = s_load (
        "{\"bind\":\"0.0.0.0\",\"port\":0,\"auth\":{\"mode\":\"both\","
        "\"password\":\"pw\",\"tokens\":[{\"token\":\"0123456789abcdef\"}]},"
        "\"channels\":{\"telegram\":{\"botToken\":\"1:a\",\"allowFrom\":[77,\"tg:8\"]},"
        "\"slack\":{\"enabled\":false}},"
        "\"ready\":[\"system\",\"run\"]}",
        err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_str_eq (cfg->bind, "0.0.0.0");
    cr_assert_eq (cfg->port, 0);
    cr_assert_eq (cfg->auth_mode, AUTH_BOTH);
    cr_assert_str_eq (cfg->password, "pw");
    cr_assert_eq (cfg->n_tokens, 1);
    cr_assert_eq (cfg->tokens[0].scopes, SCOPE_ALL);
    cr_assert_str_eq (cfg->tokens[0].name, "token-0");
    cr_assert_eq (cfg->n_channels, 2);
    cr_assert (cfg->channels[0].enabled);
    cr_assert_not (cfg->channels[1].enabled);
    //  Channel keys take their defaults; integer ids become text.
    const cfg_channel_t *tg = &cfg->channels[0];
    cr_assert_str_eq (tg->dm_policy, "pairing");
    cr_assert_str_eq (tg->group_policy, "allowlist");
    cr_assert (tg->require_mention);
    cr_assert_eq (tg->poll_timeout_s, 30);
    cr_assert_null (tg->mode);
    cr_assert_str_eq (tg->allow_from[0], "77");
    cr_assert_str_eq (tg->allow_from[1], "tg:8");
    cr_assert_null (tg->allow_from[2]);
    cr_assert_str_eq (cfg->ready_services[1], "run");
    cr_assert_null (cfg->ready_services[2]);
    cr_assert_eq (cfg->heartbeat_ms, 1000, "untouched default");
    config_destroy (&cfg);
    cr_assert_null (cfg);
}

Test (config, env_overrides_file_and_flags_override_env)
{
    char err[256];
    harness_write (s_path, "{\"port\":1111,\"bind\":\"127.0.0.2\","
                           "\"auth\":{\"token\":\"file-token-0123456789\"}}");
    cfg_flags_t flags = {.config_path = s_path, .port = -1};
    cg_config_t *cfg = config_load (&flags, err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_eq (cfg->port, 1111);
    cr_assert_str_eq (cfg->token, "file-token-0123456789");
    config_destroy (&cfg);

    setenv ("CLAWGATE_PORT", "2222", 1);
    setenv ("CLAWGATE_BIND", "127.0.0.3", 1);
    setenv ("CLAWGATE_TOKEN", "env-token-0123456789", 1);
    cfg = config_load (&flags, err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_eq (cfg->port, 2222);
    cr_assert_str_eq (cfg->bind, "127.0.0.3");
    cr_assert_str_eq (cfg->token, "env-token-0123456789");
    config_destroy (&cfg);

    flags.port = 3333;
    flags.bind = "127.0.0.4";
    cfg = config_load (&flags, err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_eq (cfg->port, 3333);
    cr_assert_str_eq (cfg->bind, "127.0.0.4");
    config_destroy (&cfg);

    //  A bad env value is named.
    setenv ("CLAWGATE_PORT", "22x", 1);
    cfg = config_load (&flags, err, sizeof (err));
    cr_assert_null (cfg);
    cr_assert (strstr (err, "CLAWGATE_PORT"), "error '%s'", err);
    setenv ("CLAWGATE_PORT", "65536", 1);
    cr_assert_null (config_load (&flags, err, sizeof (err)));
    setenv ("CLAWGATE_PORT", "2222", 1);
    setenv ("CLAWGATE_AUTH", "sometimes", 1);
    cr_assert_null (config_load (&flags, err, sizeof (err)));
    cr_assert (strstr (err, "CLAWGATE_AUTH"), "error '%s'", err);
}

Test (config, check_serving)
{
    char err[256];
    cg_config_t *cfg =
        s_load ("{\"bind\":\"0.0.0.0\",\"auth\":{\"mode\":\"none\"}}", err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    err[0] = 0;
    cr_assert_eq (config_check_serving (cfg, err, sizeof (err)), -1);
    cr_assert (strstr (err, "none"), "error '%s'", err);
    cr_assert (strstr (err, "0.0.0.0"), "error '%s'", err);
    config_destroy (&cfg);

    const char *loopback[] = {"127.0.0.1", "::1", "localhost"};
    for (int i = 0; i < 3; i++) {
        setenv ("CLAWGATE_BIND", loopback[i], 1);
        cfg = s_load ("{\"auth\":{\"mode\":\"none\"}}", err, sizeof (err));
        cr_assert_not_null (cfg, "%s", err);
        cr_assert_eq (config_check_serving (cfg, err, sizeof (err)), 0, "%s refused: %s",
                      loopback[i], err);
        config_destroy (&cfg);
    }
    unsetenv ("CLAWGATE_BIND");

    //  A password mode needs a password; a token must be long enough.
    cfg = s_load ("{\"auth\":{\"mode\":\"password\"}}", err, sizeof (err));
    cr_assert_not_null (cfg);
    cr_assert_eq (config_check_serving (cfg, err, sizeof (err)), -1);
    cr_assert (strstr (err, "auth.password"), "error '%s'", err);
    config_destroy (&cfg);
    cfg = s_load ("{\"auth\":{\"token\":\"short\"}}", err, sizeof (err));
    cr_assert_not_null (cfg);
    cr_assert_eq (config_check_serving (cfg, err, sizeof (err)), -1);
    cr_assert (strstr (err, "auth.token"), "error '%s'", err);
    config_destroy (&cfg);
}

Test (config, prepare_state_generates_then_reads_token)
{
    char err[256], state[128], token_path[160];
    snprintf (state, sizeof (state), "%s/state", s_dir);
    snprintf (token_path, sizeof (token_path), "%s/token", state);
    setenv ("CLAWGATE_STATE_DIR", state, 1);

    cg_config_t *cfg = s_load ("{}", err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_null (cfg->token);
    cr_assert_eq (config_prepare_state (cfg, err, sizeof (err)), 0, "%s", err);
    cr_assert (cfg->token_generated);
    cr_assert_not_null (cfg->token);
    cr_assert_eq (strlen (cfg->token), 64);
    cr_assert_eq (strspn (cfg->token, "0123456789abcdef"), 64);

    struct stat st;
    cr_assert_eq (stat (state, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0700, "state dir mode %o", st.st_mode & 0777);
    cr_assert_eq (stat (token_path, &st), 0);
    cr_assert (S_ISREG (st.st_mode));
    cr_assert_eq (st.st_mode & 0777, 0600, "token mode %o", st.st_mode & 0777);
    char first[65];
    snprintf (first, sizeof (first), "%s", cfg->token);
    config_destroy (&cfg);

    //  A second start reads the same token and does not rewrite it.
    cfg = s_load ("{}", err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_eq (config_prepare_state (cfg, err, sizeof (err)), 0, "%s", err);
    cr_assert_not (cfg->token_generated);
    cr_assert_str_eq (cfg->token, first);
    cr_assert_eq (config_check_serving (cfg, err, sizeof (err)), 0, "%s", err);
    config_destroy (&cfg);

    //  A configured token needs no file; an unusable file is an error.
    cr_assert_eq (unlink (token_path), 0);
    setenv ("CLAWGATE_TOKEN", "env-token-0123456789", 1);
    cfg = s_load ("{}", err, sizeof (err));
    cr_assert_eq (config_prepare_state (cfg, err, sizeof (err)), 0, "%s", err);
    cr_assert_eq (access (token_path, F_OK), -1, "token file written");
    config_destroy (&cfg);
    unsetenv ("CLAWGATE_TOKEN");
    harness_write (token_path, "short\n");
    cfg = s_load ("{}", err, sizeof (err));
    cr_assert_eq (config_prepare_state (cfg, err, sizeof (err)), -1);
    cr_assert (strstr (err, token_path), "error '%s'", err);
    config_destroy (&cfg);
}

//  ---- The key table (config/keys.c) ------------------------------------------

//  {"section":{"leaf":value}}, or {"key":value} for a top-level key.
static void
s_json_for (const config_key_t *k, const char *value, char *json, size_t cap)
{
    const char *dot = strchr (k->key, '.');
    if (dot)
        snprintf (json, cap, "{\"%.*s\":{\"%s\":%s}}", (int) (dot - k->key), k->key,
                  dot + 1, value);
    else
        snprintf (json, cap, "{\"%s\":%s}", k->key, value);
}

static long long
s_number_at (const cg_config_t *cfg, const config_key_t *k, size_t at)
{
    const char *p = (const char *) cfg + at;
    return k->type == KEY_LONG ? *(const long long *) p : *(const int *) p;
}

//  Every number in the table is read at its bounds, lands where the table
//  says (and in each other place that reads it), and is refused one past
//  them with the sentence naming the key.
Test (config, every_number_at_and_past_its_bounds)
{
    int checked = 0;
    for (const config_key_t *k = config_keys; k->key; k++) {
        if (k->in != KEY_IN_CONFIG || k->at == KEY_BY_HAND
            || (k->type != KEY_INT && k->type != KEY_LONG))
            continue;
        char json[256], value[32], err[256], want[256];
        long long edges[] = {k->min, k->max};
        for (int i = 0; i < 2; i++) {
            snprintf (value, sizeof (value), "%lld", edges[i]);
            s_json_for (k, value, json, sizeof (json));
            cg_config_t *cfg = s_load (json, err, sizeof (err));
            cr_assert_not_null (cfg, "%s: %s", json, err);
            cr_assert_eq (s_number_at (cfg, k, k->at), edges[i], "%s", json);
            for (int j = 0; j < 2 && k->also[j]; j++)
                cr_assert_eq (s_number_at (cfg, k, k->also[j]), edges[i],
                              "%s: other reader %d", json, j);
            config_destroy (&cfg);
        }
        snprintf (want, sizeof (want), "%s: must be an integer from %lld to %lld", k->key,
                  k->min, k->max);
        snprintf (value, sizeof (value), "%lld", k->max + 1);
        s_json_for (k, value, json, sizeof (json));
        s_refused (json, want);
        snprintf (value, sizeof (value), "%lld", k->min - 1);
        s_json_for (k, value, json, sizeof (json));
        s_refused (json, want);
        checked++;
    }
    cr_assert_geq (checked, 29, "only %d numeric keys in the table", checked);
}

//  Every environment variable of the table reaches its key; a number out
//  of bounds is refused naming the variable.
Test (config, every_environment_variable_lands)
{
    int checked = 0;
    for (const config_key_t *k = config_keys; k->key; k++) {
        if (!k->env || k->in != KEY_IN_CONFIG || k->at == KEY_BY_HAND)
            continue;
        char value[32], err[256];
        const char *p;
        cg_config_t *cfg;
        switch (k->type) {
        case KEY_INT:
            snprintf (value, sizeof (value), "%lld", k->max);
            setenv (k->env, value, 1);
            cfg = s_load ("{}", err, sizeof (err));
            cr_assert_not_null (cfg, "%s: %s", k->env, err);
            cr_assert_eq (s_number_at (cfg, k, k->at), k->max, "%s", k->env);
            config_destroy (&cfg);
            snprintf (value, sizeof (value), "%lld", k->max + 1);
            setenv (k->env, value, 1);
            cr_assert_null (s_load ("{}", err, sizeof (err)), "%s", k->env);
            cr_assert (strstr (err, k->env), "error '%s'", err);
            break;
        case KEY_AUTH:
            setenv (k->env, "none", 1);
            cfg = s_load ("{}", err, sizeof (err));
            cr_assert_not_null (cfg, "%s: %s", k->env, err);
            cr_assert_eq (*(auth_mode_t *) ((char *) cfg + k->at), AUTH_NONE);
            config_destroy (&cfg);
            break;
        default:
            cr_assert_eq (k->type, KEY_STRING, "%s", k->key);
            p = strcmp (k->key, "logLevel") ? "x-0123456789abcdef" : "warn";
            setenv (k->env, p, 1);
            cfg = s_load ("{}", err, sizeof (err));
            cr_assert_not_null (cfg, "%s: %s", k->env, err);
            cr_assert_str_eq (*(char **) ((char *) cfg + k->at), p, "%s", k->env);
            config_destroy (&cfg);
            break;
        }
        unsetenv (k->env);
        checked++;
    }
    cr_assert_eq (checked, 11, "environment variables in the table: %d", checked);
}

//  A value several places read is one key that fills each of them, from
//  the file and from a flag alike; keys only an actor reads land in its
//  settings.
Test (config, one_key_fills_every_reader)
{
    char err[256];
    cg_config_t *cfg =
        s_load ("{\"stateDir\":\"/tmp/cg-s\",\"gateway\":{\"requestTimeoutMs\":1234},"
                "\"broker\":{\"heartbeatMs\":77,\"liveness\":9},"
                "\"limits\":{\"leaseMs\":999},"
                "\"sessions\":{\"store\":\"sqlite:/tmp/x.db\",\"contextMessages\":7,"
                "\"contextChars\":8,\"maxQueued\":9,\"readers\":3},"
                "\"browser\":{\"chromium\":\"/c\",\"navigateTimeoutMs\":4321,"
                "\"viewportWidth\":100,\"viewportHeight\":200}}",
                err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    const actor_settings_t *a = &cfg->actors;
    cr_assert_str_eq (a->session.state_dir, "/tmp/cg-s");
    cr_assert_str_eq (a->browser.state_dir, "/tmp/cg-s");
    cr_assert_eq (a->run.request_timeout_ms, 1234);
    cr_assert_eq (a->session.request_timeout_ms, 1234);
    cr_assert_eq (cfg->request_timeout_ms, 1234);
    cr_assert_eq (a->bus.heartbeat_ms, 77);
    cr_assert_eq (a->bus.liveness, 9);
    cr_assert_eq (cfg->heartbeat_ms, 77);
    cr_assert_eq (a->ratelimit.lease_ms, 999);
    cr_assert_eq (cfg->lease_ms, 999);
    cr_assert_str_eq (a->session.store, "sqlite:/tmp/x.db");
    cr_assert_eq (a->session.context_messages, 7);
    cr_assert_eq (a->session.context_chars, 8);
    cr_assert_eq (a->session.max_queued, 9);
    cr_assert_eq (a->session.readers, 3);
    cr_assert_str_eq (a->browser.chromium, "/c");
    cr_assert_eq (a->browser.navigate_timeout_ms, 4321);
    cr_assert_eq (cfg->browser_navigate_timeout_ms, 4321);
    cr_assert_eq (a->browser.viewport_width, 100);
    cr_assert_eq (a->browser.viewport_height, 200);
    cr_assert_eq (a->catalog.n_agents, cfg->n_agents);
    cr_assert_eq (a->system.channels, cfg->channels);
    config_destroy (&cfg);

    cfg_flags_t flags = {.config_path = s_path,
                         .port = -1,
                         .state_dir = "/tmp/cg-flag",
                         .store = "sqlite:/f.db"};
    cfg = config_load (&flags, err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_str_eq (cfg->actors.session.state_dir, "/tmp/cg-flag");
    cr_assert_str_eq (cfg->actors.browser.state_dir, "/tmp/cg-flag");
    cr_assert_str_eq (cfg->actors.session.store, "sqlite:/f.db");
    config_destroy (&cfg);
}

//  The reference: a header, then one row per key of the table.
Test (config, reference_has_a_row_per_key)
{
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream (&text, &len);
    cr_assert_not_null (out);
    cr_assert_eq (config_print_reference (out), 0);
    fclose (out);
    int rows = 0, keys = 0;
    for (const char *p = text; (p = strchr (p, '\n')); p++)
        rows++;
    for (const config_key_t *k = config_keys; k->key; k++) {
        char cell[128];
        snprintf (cell, sizeof (cell), "\n| `%s` |", k->key);
        cr_assert (strstr (text, cell), "no row for %s", k->key);
        keys++;
    }
    cr_assert_eq (rows, keys + 2);
    free (text);
}
