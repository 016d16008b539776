/*  =========================================================================
    test_ratelimit (unit) - the token bucket the ratelimit actor keeps, and
    the limits keys of the configuration
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ratelimit.h"

Test (bucket, starts_full_and_refills_at_the_rate)
{
    rl_bucket_t b;
    rl_bucket_init (&b, 100, 0, 1000);
    //  Burst 0 means a bucket of one minute's worth.
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 100, false, 1000), 100);
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 1, false, 1000), 0);
    //  100 a minute is one per 600 ms.
    cr_assert_eq (rl_bucket_wait_ms (&b, 100), 600);
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 1, false, 1599), 0);
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 1, false, 1600), 1);
    //  A minute later it is full again, and never fuller.
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 1000, false, 600000), 100);
    cr_assert_eq (rl_bucket_reset_ms (&b, 100, 0), 60000);
}

Test (bucket, burst_caps_the_bucket_not_the_rate)
{
    rl_bucket_t b;
    rl_bucket_init (&b, 60, 5, 0);
    cr_assert_eq (rl_bucket_take (&b, 60, 5, 10, false, 0), 5);
    cr_assert_eq (rl_bucket_wait_ms (&b, 60), 1000);
    cr_assert_eq (rl_bucket_reset_ms (&b, 60, 5), 5000);
    //  An hour idle still gives only 5.
    cr_assert_eq (rl_bucket_take (&b, 60, 5, 10, false, 3600000), 5);
}

Test (bucket, fair_grants_leave_some_for_other_fronts)
{
    rl_bucket_t b;
    rl_bucket_init (&b, 100, 0, 0);
    //  Plenty left: the whole batch.
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 5, true, 0), 5);
    b.tokens = 6;
    //  Low: at most half of what is left...
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 5, true, 0), 3);
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 5, true, 0), 1);
    //  ...but at least one while any is left.
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 5, true, 0), 1);
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 5, true, 0), 1);
    cr_assert_eq (rl_bucket_take (&b, 100, 0, 5, true, 0), 0);
}

Test (bucket, handed_out_tokens_never_exceed_burst_plus_refill)
{
    //  Many takers drawing in batches for ten simulated minutes get at most
    //  the burst plus what dripped in: the invariant the leases rely on.
    rl_bucket_t b;
    rl_bucket_init (&b, 100, 0, 0);
    long total = 0;
    for (int64_t t = 0; t <= 600000; t += 37)
        total += rl_bucket_take (&b, 100, 0, 1 + (int) (t % 7), t % 2 == 0, t);
    cr_assert_leq (total, 100 + 1000, "%ld", total);
    cr_assert_geq (total, 100 + 1000 - 1, "%ld", total);
}

Test (bucket, given_back_tokens_return_up_to_burst)
{
    rl_bucket_t b;
    rl_bucket_init (&b, 10, 0, 0);
    cr_assert_eq (rl_bucket_take (&b, 10, 0, 4, false, 0), 4);
    rl_bucket_give (&b, 10, 0, 3);
    cr_assert_eq (rl_bucket_take (&b, 10, 0, 100, false, 0), 9);
    rl_bucket_give (&b, 10, 0, 500);
    cr_assert_eq (rl_bucket_take (&b, 10, 0, 100, false, 0), 10);
}

//  ---- Configuration ----------------------------------------------------------

static cg_config_t *
s_load (const char *json, char *err, size_t cap)
{
    char path[] = "/tmp/clawgate-rl-config-XXXXXX";
    int fd = mkstemp (path);
    cr_assert_geq (fd, 0);
    cr_assert_eq (write (fd, json, strlen (json)), (ssize_t) strlen (json));
    close (fd);
    cfg_flags_t flags = {.config_path = path, .port = -1};
    cg_config_t *cfg = config_load (&flags, err, cap);
    unlink (path);
    return cfg;
}

Test (limits_config, defaults_match_the_spec)
{
    unsetenv ("CLAWGATE_RATE_LIMIT");
    unsetenv ("CLAWGATE_MAX_CONCURRENT");
    char err[256];
    cg_config_t *cfg = s_load ("{}", err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_eq (cfg->rate_limit, 100);
    cr_assert_eq (cfg->burst, 0);
    cr_assert_eq (cfg->max_concurrent, 10);
    cr_assert_eq (cfg->auth_failures, 10,
                  "on by default (docs/limits.md#failed-authentications)");
    cr_assert_eq (cfg->max_conns_per_addr, 256,
                  "on by default (docs/limits.md#connections)");
    cr_assert_eq (cfg->max_body, 10LL * 1024 * 1024);
    cr_assert_eq (cfg->request_timeout_ms, 300000);
    cr_assert_eq (cfg->max_frame_bytes, 1024 * 1024);
    cr_assert_eq (cfg->lease_ms, 5000);
    bool ready = false;
    for (char **s = cfg->ready_services; s && *s; s++)
        ready |= !strcmp (*s, "ratelimit");
    cr_assert (ready, "ratelimit is in the default ready list");
    config_destroy (&cfg);
}

Test (limits_config, keys_tokens_and_env)
{
    char err[256];
    cg_config_t *cfg =
        s_load ("{\"limits\":{\"rateLimit\":0,\"burst\":7,\"maxConcurrent\":0,"
                "\"authFailures\":0,\"maxConnectionsPerAddress\":3,\"leaseMs\":900},"
                "\"gateway\":{\"maxFrameBytes\":65536},"
                "\"auth\":{\"tokens\":[{\"token\":\"abcdefghijklmnopq\",\"name\":\"a\","
                "\"rateLimit\":5,\"burst\":2,\"maxConcurrent\":1},"
                "{\"token\":\"bcdefghijklmnopqr\"}]}}",
                err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_eq (cfg->rate_limit, 0);
    cr_assert_eq (cfg->burst, 7);
    cr_assert_eq (cfg->max_concurrent, 0);
    cr_assert_eq (cfg->auth_failures, 0);
    cr_assert_eq (cfg->max_conns_per_addr, 3);
    cr_assert_eq (cfg->lease_ms, 900);
    cr_assert_eq (cfg->max_frame_bytes, 65536);
    cr_assert_eq (cfg->tokens[0].rate_limit, 5);
    cr_assert_eq (cfg->tokens[0].burst, 2);
    cr_assert_eq (cfg->tokens[0].max_concurrent, 1);
    cr_assert_eq (cfg->tokens[1].rate_limit, -1, "inherits");
    cr_assert_eq (cfg->tokens[1].max_concurrent, -1, "inherits");
    config_destroy (&cfg);

    setenv ("CLAWGATE_RATE_LIMIT", "42", 1);
    setenv ("CLAWGATE_MAX_CONCURRENT", "0", 1);
    cfg = s_load ("{\"limits\":{\"rateLimit\":7}}", err, sizeof (err));
    cr_assert_not_null (cfg, "%s", err);
    cr_assert_eq (cfg->rate_limit, 42, "env overrides the file");
    cr_assert_eq (cfg->max_concurrent, 0, "0 = off");
    config_destroy (&cfg);
    unsetenv ("CLAWGATE_RATE_LIMIT");
    unsetenv ("CLAWGATE_MAX_CONCURRENT");
}

Test (limits_config, bad_values_are_errors_naming_the_key)
{
    struct {
        const char *json;
        const char *key;
    } bad[] = {
        {"{\"limits\":{\"perHour\":5}}", "limits.perHour: unknown key"},
        {"{\"limits\":{\"rateLimit\":-1}}", "limits.rateLimit"},
        {"{\"limits\":{\"burst\":\"x\"}}", "limits.burst"},
        {"{\"limits\":{\"leaseMs\":10}}", "limits.leaseMs"},
        {"{\"limits\":{\"authFailures\":1.5}}", "limits.authFailures"},
        {"{\"gateway\":{\"maxFrameBytes\":1}}", "gateway.maxFrameBytes"},
        {"{\"auth\":{\"tokens\":[{\"token\":\"abcdefghijklmnopq\","
         "\"maxConcurrent\":-2}]}}",
         "auth.tokens[0].maxConcurrent"},
        {"{\"auth\":{\"tokens\":[{\"token\":\"abcdefghijklmnopq\","
         "\"perDay\":1}]}}",
         "auth.tokens[0].perDay: unknown key"},
    };
    for (size_t i = 0; i < sizeof (bad) / sizeof (bad[0]); i++) {
        char err[256] = "";
        cg_config_t *cfg = s_load (bad[i].json, err, sizeof (err));
        cr_assert_null (cfg, "accepted %s", bad[i].json);
        cr_assert (strstr (err, bad[i].key), "%s: %s", bad[i].json, err);
    }
}
