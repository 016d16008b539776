/*  =========================================================================
    test_config - loading, merging and checking the configuration

    Errors name the offending key; env overrides the file and flags override
    env; serving checks; the generated token file.  Each test sets its own
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

static char s_dir[64];               //  This test's temporary directory
static char s_path[128];             //  Its config file

static void
s_setup (void)
{
    const char *vars[] = {"CLAWGATE_CONFIG", "CLAWGATE_TOKEN",
                          "CLAWGATE_PASSWORD", "CLAWGATE_AUTH", "CLAWGATE_BIND",
                          "CLAWGATE_PORT", "CLAWGATE_STATE_DIR",
                          "CLAWGATE_LOG_LEVEL", "CLAWGATE_THREADS", NULL};
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
    s_refused ("{\"channels\":{\"slack\":{\"enabled\":1}}}",
               "channels.slack.enabled:");
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
        "\"channels\":{\"telegram\":{},\"slack\":{\"enabled\":false}},"
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
    cg_config_t *cfg = s_load ("{\"bind\":\"0.0.0.0\",\"auth\":{\"mode\":\"none\"}}",
                               err, sizeof (err));
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
        cr_assert_eq (config_check_serving (cfg, err, sizeof (err)), 0,
                      "%s refused: %s", loopback[i], err);
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
    cr_assert_eq (st.st_mode & 0777, 0700, "state dir mode %o",
                  st.st_mode & 0777);
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
