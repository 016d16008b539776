/*  =========================================================================
    test_multiprocess - the multi-host shape on loopback: one broker, two
    gateways and workers as separate processes over tcp://.  /status works
    through both gateways; a dead or hung worker turns into 503 within
    seconds; a new worker restores service with no gateway restart.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "harness.h"

#define TOKEN "multi-host-token-0123456789abcdef"

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
static const char *s_auth[] = {"Authorization: Bearer " TOKEN, NULL};

static void
s_start_worker (proc_t *p)
{
    char state[160];
    snprintf (state, sizeof (state), "%s/worker", s_c.dir);
    cr_assert_eq (worker_start (p, s_c.requests, "all", s_c.config, state, s_env), 0,
                  "worker did not start");
}

static void
s_setup (void)
{
    memset (&s_c, 0, sizeof (s_c));
    harness_tmpdir (s_c.dir, sizeof (s_c.dir));
    snprintf (s_c.config, sizeof (s_c.config), "%s/cluster.json", s_c.dir);
    //  Fast heartbeats so a hung worker is noticed in well under a second.
    harness_write (s_c.config, "{\"broker\":{\"heartbeatMs\":200,\"liveness\":3},"
                               "\"gateway\":{\"controlTimeoutMs\":2000},"
                               //  Polling /status every 50 ms for seconds is not what
                               //  this suite tests: no rate limit here.
                               "\"limits\":{\"rateLimit\":0}}");
    cr_assert_eq (broker_start (&s_c.broker, s_c.config, s_env, s_c.requests, s_c.events),
                  0, "broker did not start");
    s_start_worker (&s_c.worker);
    for (int i = 0; i < 2; i++) {
        char state[160];
        snprintf (state, sizeof (state), "%s/gw%d", s_c.dir, i);
        char err[4096];
        int rc = gateway_start (&s_c.gw[i], s_c.requests, state, s_c.config, s_env,
                                s_c.base[i], sizeof (s_c.base[i]), err, sizeof (err));
        cr_assert_eq (rc, 0, "gateway %d did not start: %s", i, err);
    }
}

static void
s_teardown (void)
{
    proc_t *all[] = {&s_c.gw[0], &s_c.gw[1], &s_c.worker, &s_c.broker};
    for (int i = 0; i < 4; i++)
        if (all[i]->pid > 0)
            proc_stop (all[i], SIGKILL, 5000);
}

static long
s_status (int gw, char *body, size_t cap)
{
    char url[128];
    snprintf (url, sizeof (url), "%s/status", s_c.base[gw]);
    http_resp_t r;
    http_do ("GET", url, s_auth, NULL, 0, &r);
    if (body)
        snprintf (body, cap, "%s", r.body);
    long status = r.status;
    http_resp_free (&r);
    return status;
}

static int
s_wait_status (int gw, const char *path, long want, int timeout_ms)
{
    char url[128];
    snprintf (url, sizeof (url), "%s%s", s_c.base[gw], path);
    return http_wait_status (url, s_auth, want, timeout_ms);
}

TestSuite (multi, .init = s_setup, .fini = s_teardown, .timeout = 120);

Test (multi, status_through_both_gateways_and_recovery_after_worker_death)
{
    for (int i = 0; i < 2; i++) {
        cr_assert_geq (s_wait_status (i, "/status", 200, 10000), 0,
                       "gateway %d never served /status", i);
        char body[2048];
        cr_assert_eq (s_status (i, body, sizeof (body)), 200);
        //  Each gateway reports its own port; the worker is the same process.
        char port[32];
        snprintf (port, sizeof (port), "\"port\":%s", strrchr (s_c.base[i], ':') + 1);
        cr_assert (strstr (body, port), "%s", body);
        cr_assert (strstr (body, "\"status\":\"ok\""), "%s", body);
    }
    cr_assert_geq (s_wait_status (0, "/ready", 200, 5000), 0);

    //  Kill the only worker: both gateways answer 503 within a few seconds.
    proc_stop (&s_c.worker, SIGKILL, 5000);
    for (int i = 0; i < 2; i++) {
        int ms = s_wait_status (i, "/status", 503, 5000);
        cr_assert_geq (ms, 0, "gateway %d did not turn to 503", i);
        char body[1024];
        cr_assert_eq (s_status (i, body, sizeof (body)), 503);
        cr_assert (strstr (body, "\"code\":\"service_unavailable\""), "%s", body);
        cr_assert (strstr (body, "\"type\":\"server_error\""), "%s", body);
    }
    cr_assert_geq (s_wait_status (0, "/ready", 503, 5000), 0);
    //  /health stays true: the gateway process itself is fine.
    cr_assert_geq (s_wait_status (1, "/health", 200, 2000), 0);

    //  A new worker restores service, no gateway restart.
    s_start_worker (&s_c.worker);
    for (int i = 0; i < 2; i++)
        cr_assert_geq (s_wait_status (i, "/status", 200, 5000), 0,
                       "gateway %d did not recover", i);
    cr_assert_geq (s_wait_status (1, "/ready", 200, 5000), 0);
}

Test (multi, hung_worker_is_noticed_by_heartbeat_and_rejoins)
{
    cr_assert_geq (s_wait_status (0, "/status", 200, 10000), 0);
    //  A stopped process keeps its TCP connection open: only the missed
    //  heartbeats can tell the broker it is gone.
    kill (s_c.worker.pid, SIGSTOP);
    int ms = s_wait_status (0, "/status", 503, 8000);
    cr_assert_geq (ms, 0, "hung worker never gave 503");
    //  Once expired, the broker answers at once instead of waiting.
    struct timespec a, b;
    clock_gettime (CLOCK_MONOTONIC, &a);
    cr_assert_eq (s_status (1, NULL, 0), 503);
    clock_gettime (CLOCK_MONOTONIC, &b);
    long elapsed = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    cr_assert_lt (elapsed, 1000, "503 took %ld ms", elapsed);
    //  Woken up, it is told to register again and serves once more.
    kill (s_c.worker.pid, SIGCONT);
    cr_assert_geq (s_wait_status (0, "/status", 200, 5000), 0, "worker did not rejoin");
}

Test (multi, every_process_stops_cleanly_on_sigterm)
{
    cr_assert_geq (s_wait_status (0, "/status", 200, 10000), 0);
    cr_assert_eq (proc_stop (&s_c.gw[0], SIGTERM, 20000), 0);
    cr_assert_eq (proc_stop (&s_c.gw[1], SIGTERM, 20000), 0);
    cr_assert_eq (proc_stop (&s_c.worker, SIGTERM, 20000), 0);
    cr_assert_eq (proc_stop (&s_c.broker, SIGTERM, 20000), 0);
}
