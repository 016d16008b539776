/*  =========================================================================
    fuzz_run_check - a request to start a run through its checks
    (runs/run_check.h): the body of POST /v1/agent/run (and /stream)
    and of WebSocket chat.run through run_check_agent, and the body of POST
    /v1/chat/completions through run_check_openai, each after the JSON
    intake (http_json_object) as the fronts do.

    Promises checked: a verdict is 0, 400 or 404; a refusal names its code
    to match its status and carries a sentence; a pass carries neither.
    The configuration is the default one (agent "default", model
    local/echo) with no environment.
    =========================================================================
*/
#include <string.h>

#include "config.h"
#include "fuzz.h"
#include "http.h"
#include "run_check.h"

static cg_config_t *s_config;
static run_catalog_t s_catalog;  //  Its agents and models

int
LLVMFuzzerInitialize (int *argc, char ***argv);

int
LLVMFuzzerInitialize (int *argc, char ***argv)
{
    //  Only the text decides (no CLAWGATE_* or provider variables).
    static const char *const vars[] = {"CLAWGATE_CONFIG",    "OPENAI_API_KEY",
                                       "OPENAI_BASE_URL",    "ANTHROPIC_API_KEY",
                                       "ANTHROPIC_BASE_URL", NULL};
    for (int i = 0; vars[i]; i++)
        unsetenv (vars[i]);
    cfg_flags_t flags = {.config_text = "{}", .config_len = 2, .port = -1};
    char err[256];
    s_config = config_load (&flags, err, sizeof (err));
    if (!s_config) {
        fprintf (stderr, "fuzz_run_check: %s\n", err);
        abort ();
    }
    s_catalog = http_run_catalog (s_config);
    return 0;
}

static void
s_verdict (const run_check_t *chk, int rc)
{
    FUZZ_CHECK (rc == chk->status);
    FUZZ_CHECK (rc == 0 || rc == 400 || rc == 404);
    if (rc == 0) {
        FUZZ_CHECK (chk->message[0] == 0 && chk->code == NULL);
        return;
    }
    FUZZ_CHECK (chk->message[0] != 0);
    FUZZ_CHECK (memchr (chk->message, 0, sizeof (chk->message)) != NULL);
    FUZZ_CHECK (memchr (chk->param, 0, sizeof (chk->param)) != NULL);
    FUZZ_CHECK (!strcmp (chk->code, rc == 404 ? "not_found" : "invalid_request"));
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *text = (char *) fuzz_copy (data, size);
    if (!text)
        return 0;
    char msg[160];
    cJSON *req = http_json_object (text, size, msg, sizeof (msg));
    if (req) {
        run_check_t chk;
        //  The HTTP front reads agentId at the top, the WebSocket front in
        //  options first.
        const cJSON *top = cJSON_GetObjectItemCaseSensitive (req, "agentId");
        const cJSON *opt = cJSON_GetObjectItemCaseSensitive (
            cJSON_GetObjectItemCaseSensitive (req, "options"), "agentId");
        s_verdict (&chk, run_check_agent (&s_catalog, req, top, &chk));
        s_verdict (&chk, run_check_agent (&s_catalog, req, opt ? opt : top, &chk));
        s_verdict (&chk, run_check_openai (&s_catalog, req, &chk));
        cJSON_Delete (req);
    }
    else
        FUZZ_CHECK (msg[0] != 0);
    free (text);
    return 0;
}
