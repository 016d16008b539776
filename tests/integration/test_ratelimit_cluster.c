/*  =========================================================================
    test_ratelimit_cluster - one truth across fronts: a broker, a worker
    (every actor, the ratelimit one among them) and two gateways as separate
    processes over tcp://.  The two gateways together keep one rate limit
    and one concurrency limit per credential, and a gateway killed with
    runs in flight gives its slots back within the lease time.
    =========================================================================
*/
#include <signal.h>

#include "quota.h"

#define TOKEN "cluster-token-0123456789abcdef"
#define LEASE_MS 2000
#define RATE 100
#define CONCURRENT 4

typedef struct {
    proc_t broker, worker, gw[2];
    char requests[64];
    char events[64];
    char base[2][64];
    char dir[128];
    char config[256];
} cluster_t;

static cluster_t s_c;
static const char *s_env[] = {"CLAWGATE_TOKEN=" TOKEN, "CLAWGATE_LOG_LEVEL=warn", NULL};

static void
s_setup (void)
{
    memset (&s_c, 0, sizeof (s_c));
    harness_tmpdir (s_c.dir, sizeof (s_c.dir));
    snprintf (s_c.config, sizeof (s_c.config), "%s/cluster.json", s_c.dir);
    char config[512];
    snprintf (config, sizeof (config),
              "{\"broker\":{\"heartbeatMs\":200,\"liveness\":3},"
              "\"gateway\":{\"controlTimeoutMs\":2000,\"drainTimeoutMs\":2000},"
              "\"limits\":{\"rateLimit\":%d,\"maxConcurrent\":%d,"
              "\"leaseMs\":%d},"
              "\"providers\":{\"local\":{\"echoDelayMs\":100}}}",
              RATE, CONCURRENT, LEASE_MS);
    harness_write (s_c.config, config);
    cr_assert_eq (broker_start (&s_c.broker, s_c.config, s_env, s_c.requests, s_c.events),
                  0, "broker did not start");
    cr_assert_eq (
        worker_start (&s_c.worker, s_c.requests, "all", s_c.config, NULL, s_env), 0,
        "worker did not start");
    for (int i = 0; i < 2; i++) {
        char state[160];
        snprintf (state, sizeof (state), "%s/gw%d", s_c.dir, i);
        char err[4096];
        int rc = gateway_start (&s_c.gw[i], s_c.requests, state, s_c.config, s_env,
                                s_c.base[i], sizeof (s_c.base[i]), err, sizeof (err));
        cr_assert_eq (rc, 0, "gateway %d did not start: %s", i, err);
        //  /ready is not limited: waiting on it spends no quota.
        char url[128];
        snprintf (url, sizeof (url), "%s/ready", s_c.base[i]);
        cr_assert_geq (http_wait_status (url, NULL, 200, 20000), 0,
                       "gateway %d never ready", i);
    }
    curl_global_init (CURL_GLOBAL_ALL);
}

static void
s_teardown (void)
{
    proc_t *all[] = {&s_c.gw[0], &s_c.gw[1], &s_c.worker, &s_c.broker};
    for (int i = 0; i < 4; i++)
        if (all[i]->pid > 0)
            proc_stop (all[i], SIGKILL, 5000);
}

TestSuite (ratelimit_cluster, .init = s_setup, .fini = s_teardown, .timeout = 180);

Test (ratelimit_cluster, two_gateways_keep_one_combined_rate_limit)
{
    long long start = harness_now_ms ();
    int ok[2] = {0, 0}, limited = 0;
    for (int i = 0; i < 2 * RATE; i++) {
        http_resp_t r;
        long status = http_get_bearer (s_c.base[i % 2], "/status", TOKEN, &r);
        if (status == 200)
            ok[i % 2]++;
        else {
            quota_assert_429 (&r, 5);
            limited++;
        }
        http_resp_free (&r);
    }
    double elapsed_s = (harness_now_ms () - start) / 1000.0;
    int total = ok[0] + ok[1];
    //  One bucket of RATE for both, plus what drips in while we ask.  The
    //  leases can leave a few tokens unused on one gateway (the slack,
    //  documented in the README), never add any.
    int ceiling = RATE + (int) (elapsed_s * RATE / 60) + 1;
    cr_log_info ("200s: %d + %d = %d of %d in %.2f s (ceiling %d)", ok[0], ok[1], total,
                 2 * RATE, elapsed_s, ceiling);
    cr_assert_leq (total, ceiling, "%d + %d = %d answered 200 in %.1f s", ok[0], ok[1],
                   total, elapsed_s);
    cr_assert_geq (total, RATE - 10, "%d + %d: too few", ok[0], ok[1]);
    cr_assert_geq (ok[0], RATE / 4, "gateway 0 got only %d", ok[0]);
    cr_assert_geq (ok[1], RATE / 4, "gateway 1 got only %d", ok[1]);
    cr_assert_eq (total + limited, 2 * RATE);
}

Test (ratelimit_cluster, one_concurrency_limit_and_a_killed_gateway_frees_its_slots)
{
    quota_stream_t st[2][CONCURRENT + 1];
    memset (st, 0, sizeof (st));
    //  Half the slots through each gateway.
    for (int g = 0; g < 2; g++)
        for (int i = 0; i < CONCURRENT / 2; i++)
            cr_assert_eq (quota_stream_start (&st[g][i], s_c.base[g], TOKEN, 900, 20000),
                          200, "gateway %d stream %d", g, i);
    //  Together they are at the limit: both refuse one more.
    for (int g = 0; g < 2; g++) {
        http_resp_t r;
        http_get_bearer (s_c.base[g], "/status", TOKEN, &r);
        quota_assert_429 (&r, 5);
        cr_assert (strstr (r.body, "concurrent"), "%s", r.body);
        http_resp_free (&r);
    }
    //  Gateway 0 dies with its runs in flight.  Its slots come back when
    //  its lease lapses at the actor (gateway 1's own leases are renewed
    //  all along, so its two streams keep theirs).
    long long killed = harness_now_ms ();
    proc_stop (&s_c.gw[0], SIGKILL, 5000);
    //  Well inside the lease the slots are still the dead gateway's: asked
    //  at once, before anything else (its client threads are stopped
    //  after), and the promptness is asserted, never assumed.
    long long first_at = harness_now_ms () - killed;
    long first_status = quota_stream_start (&st[1][2], s_c.base[1], TOKEN, 900, 20000);
    cr_assert_lt (first_at, LEASE_MS / 2,
                  "the first try came %lld ms after "
                  "the kill: too late to tell",
                  first_at);
    cr_assert_eq (first_status, 429, "free %lld ms after the kill", first_at);
    quota_stream_stop (&st[1][2]);
    for (int i = 0; i < CONCURRENT / 2; i++)
        quota_stream_stop (&st[0][i]);
    long status = 0;
    int tries = 1;
    long long freed = 0;
    while (harness_now_ms () - killed < 4 * LEASE_MS + 10000) {
        status = quota_stream_start (&st[1][2], s_c.base[1], TOKEN, 900, 20000);
        tries++;
        if (status == 200) {
            freed = harness_now_ms ();
            break;
        }
        cr_assert_eq (status, 429, "try %d: %ld", tries, status);
        quota_stream_stop (&st[1][2]);
        usleep (100000);
    }
    cr_assert_eq (status, 200, "slots never came back after %d tries", tries);
    cr_log_info ("slots freed %lld ms after the kill (lease %d ms)", freed - killed,
                 LEASE_MS);
    //  Freed within the lease time (plus the polling, on a busy machine).
    cr_assert_leq (freed - killed, 2 * LEASE_MS + 3000, "freed after %lld ms",
                   freed - killed);
    //  Both of the dead gateway's slots came back, and no more.
    cr_assert_eq (quota_stream_start (&st[1][3], s_c.base[1], TOKEN, 900, 20000), 200);
    cr_assert_eq (quota_stream_start (&st[1][4], s_c.base[1], TOKEN, 900, 20000), 429);
    for (int i = 0; i <= CONCURRENT; i++)
        quota_stream_stop (&st[1][i]);
}
