/*  =========================================================================
    fuzz_config - config/config.h config_load on a config file's text

    Each input is given as cfg_flags_t.config_text (what config_load parses
    after reading a file), with every CLAWGATE_* and provider key variable
    removed from the environment so that only the text decides.  Promises checked: NULL comes with a
    sentence in err; a configuration that loads answers its own look-ups
    (every model it lists is found, every agent too) and is destroyed
    cleanly; a key several places read holds one value in all of them.
    =========================================================================
*/
#include <string.h>

#include "config.h"
#include "fuzz.h"

int
LLVMFuzzerInitialize (int *argc, char ***argv);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    extern char **environ;
    //  Unset from a copy of the names: unsetenv shifts environ.
    char *names[256];
    int n = 0;
    for (char **e = environ; e && *e && n < 256; e++) {
        const char *eq = strchr (*e, '=');
        if (!eq)
            continue;
        if (!strncmp (*e, "CLAWGATE_", 9) || strstr (*e, "_API_KEY")
            || strstr (*e, "_BASE_URL"))
            names[n++] = strndup (*e, (size_t) (eq - *e));
    }
    for (int i = 0; i < n; i++) {
        unsetenv (names[i]);
        free (names[i]);
    }
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *text = (char *) fuzz_copy (data, size);
    if (!text)
        return 0;
    cfg_flags_t flags = {.config_text = text, .config_len = size, .port = -1};
    char err[256] = "";
    cg_config_t *cfg = config_load (&flags, err, sizeof (err));
    free (text);
    if (!cfg) {
        FUZZ_CHECK (err[0] != 0);
        return 0;
    }
    for (size_t i = 0; i < cfg->n_models; i++) {
        const char *model = NULL;
        FUZZ_CHECK (cfg->models[i].id != NULL);
        config_find_model (cfg, cfg->models[i].id, &model);
    }
    for (size_t i = 0; i < cfg->n_agents; i++)
        FUZZ_CHECK (config_find_agent (cfg, cfg->agents[i].id) == &cfg->agents[i]);
    //  A key several places read holds one value in all of them.
    FUZZ_CHECK (cfg->actors.session.state_dir == cfg->state_dir
                && cfg->actors.browser.state_dir == cfg->state_dir
                && cfg->actors.session.store == cfg->store
                && cfg->actors.run.request_timeout_ms == cfg->request_timeout_ms
                && cfg->actors.bus.heartbeat_ms == cfg->heartbeat_ms
                && cfg->actors.ratelimit.lease_ms == cfg->lease_ms);
    char err2[256];
    config_check_serving (cfg, err2, sizeof (err2));
    config_auth_name (cfg->auth_mode);
    config_destroy (&cfg);
    FUZZ_CHECK (cfg == NULL);
    return 0;
}
