/*  =========================================================================
    test_cli - the command line: roles, --help, config errors, first start
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <string.h>
#include <sys/stat.h>

#include "harness.h"

Test (cli, version_and_help)
{
    char err[4096];
    const char *v[] = {"version", NULL};
    cr_assert_eq (proc_run (v, NULL, err, sizeof (err), 30000), 0);
    const char *roles[] = {"serve", "broker", "gateway", "worker", "tap", NULL};
    for (int i = 0; roles[i]; i++) {
        const char *args[] = {roles[i], "--help", NULL};
        cr_assert_eq (proc_run (args, NULL, err, sizeof (err), 30000), 0, "%s --help",
                      roles[i]);
    }
    const char *bad[] = {"frobnicate", NULL};
    cr_assert_eq (proc_run (bad, NULL, err, sizeof (err), 30000), 2);
    cr_assert (strstr (err, "unknown role"));
    const char *badopt[] = {"serve", "--actors", "x", NULL};
    cr_assert_eq (proc_run (badopt, NULL, err, sizeof (err), 30000), 2);
}

//  Each bad config exits 2 with one line naming the key.
Test (cli, bad_config_names_the_key, .timeout = 60)
{
    char dir[128], path[256], err[4096];
    harness_tmpdir (dir, sizeof (dir));
    snprintf (path, sizeof (path), "%s/c.json", dir);
    struct {
        const char *json, *expect;
    } cases[] = {
        {"{\"prot\": 1}", "prot: unknown key"},
        {"{\"port\": \"x\"}", "port: must be an integer"},
        {"{\"port\": 70000}", "port: must be an integer"},
        {"{\"auth\": {\"mode\": \"maybe\"}}", "auth.mode"},
        {"{\"auth\": {\"tokens\": [{\"token\": \"short\"}]}}", "auth.tokens[0].token"},
        {"{\"gateway\": {\"threads\": 0}}", "gateway.threads"},
        {"{\"channels\": {\"icq\": {}}}", "channels.icq"},
        {"{\"port\": 1,,}", "not valid JSON"},
        {"[1,2]", "must hold a JSON object"},
    };
    for (size_t i = 0; i < sizeof (cases) / sizeof (cases[0]); i++) {
        harness_write (path, cases[i].json);
        const char *args[] = {"serve", "--config", path, "--state-dir", dir, NULL};
        int rc = proc_run (args, NULL, err, sizeof (err), 30000);
        cr_assert_eq (rc, 2, "case %zu exit %d: %s", i, rc, err);
        cr_assert (strstr (err, cases[i].expect), "case %zu: %s", i, err);
        cr_assert (strstr (err, "config error"), "case %zu: %s", i, err);
        cr_assert_eq (strchr (err, '\n'), err + strlen (err) - 1,
                      "case %zu: more than one line: %s", i, err);
    }
    const char *env[] = {"CLAWGATE_PORT=abc", NULL};
    const char *args[] = {"serve", "--state-dir", dir, NULL};
    cr_assert_eq (proc_run (args, env, err, sizeof (err), 30000), 2);
    cr_assert (strstr (err, "CLAWGATE_PORT"), "%s", err);
}

Test (cli, auth_none_refused_off_loopback)
{
    char dir[128], err[4096];
    harness_tmpdir (dir, sizeof (dir));
    const char *env[] = {"CLAWGATE_AUTH=none", NULL};
    const char *args[] = {"serve", "--bind",      "0.0.0.0", "--port",
                          "0",     "--state-dir", dir,       NULL};
    cr_assert_eq (proc_run (args, env, err, sizeof (err), 30000), 2);
    cr_assert (strstr (err, "none"), "%s", err);
}

Test (cli, first_start_generates_a_private_token, .timeout = 60)
{
    served_t s;
    cr_assert_eq (served_start (&s, NULL, NULL), 0);
    char path[300];
    snprintf (path, sizeof (path), "%s/token", s.state);
    struct stat st;
    cr_assert_eq (stat (path, &st), 0);
    cr_assert_eq (st.st_mode & 0777, 0600);
    cr_assert_eq (strlen (s.token), 64);
    cr_assert (strstr (s.proc.out, s.token), "token printed once at start");
    http_resp_t r;
    cr_assert_eq (served_get (&s, "/status", s.token, &r), 0);
    cr_assert_eq (r.status, 200);
    http_resp_free (&r);
    cr_assert_eq (served_stop (&s), 0);

    //  Second start: same token, not printed again.
    char old[128];
    snprintf (old, sizeof (old), "%s", s.token);
    proc_t p;
    const char *args[] = {"serve", "--port", "0", "--state-dir", s.state, NULL};
    cr_assert_eq (proc_start (&p, args, NULL), 0);
    char line[512];
    cr_assert_eq (proc_wait_line (&p, "listening on", 20000, line, sizeof (line)), 0);
    cr_assert_null (strstr (p.out, old));
    cr_assert_eq (proc_stop (&p, SIGTERM, 20000), 0);
}
