/*  =========================================================================
    test_openai_sdk - the official OpenAI SDK (Node), unmodified, pointed at
    the gateway's /v1 with the gateway token as API key (docs/openai-api.md#using-an-openai-sdk):
    models.list, a completion, a stream with usage, a 404 it understands.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness.h"

Test (openai_sdk, completions_and_streams_just_work, .timeout = 120)
{
    const char *dir = getenv ("CLAWGATE_CLIENTS");
    cr_assert_not_null (dir);
    char script[512], modules[512];
    snprintf (script, sizeof (script), "%s/openai_client.mjs", dir);
    snprintf (modules, sizeof (modules), "%s/node_modules/openai", dir);
    cr_assert_eq (access (modules, F_OK), 0,
                  "run `make test-deps` (npm install in tests/clients) first");
    served_t s;
    cr_assert_eq (served_start (&s, NULL, NULL), 0);
    char cmd[1024];
    snprintf (cmd, sizeof (cmd), "node %s %s/v1 %s local/echo 2>&1", script, s.base,
              s.token);
    FILE *p = popen (cmd, "r");
    cr_assert_not_null (p);
    char out[4096] = "";
    size_t n = fread (out, 1, sizeof (out) - 1, p);
    out[n] = 0;
    int rc = pclose (p);
    cr_assert_eq (WEXITSTATUS (rc), 0, "SDK run failed: %s", out);
    cr_assert (strstr (out, "\"text\":\"the quick brown fox\""), "%s", out);
    cr_assert (strstr (out, "\"finish\":\"stop\""), "%s", out);
    cr_assert_eq (served_stop (&s), 0);
}
