/*  =========================================================================
    test_multiprocess_runs - runs in the multi-host shape, with two run
    actors: one broker, a worker for the other actors, two `worker --actors
    run` processes and a gateway, as separate processes over tcp://, in
    front of the stand-in.

    A client that hangs up mid-stream must stop its run's upstream call
    whichever run actor has it: the broker sends the abort where it sent
    the start (it once went round-robin like any request, so with two run
    actors it always reached the one without the run, and the upstream call
    went on until its stall timeout).
    =========================================================================
*/
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runs.h"

#define TOKEN "multi-host-runs-token-0123456789abcdef"

static struct {
    proc_t broker, others, run[2], gw;
    char requests[64], events[64], base[64], dir[128], config[256];
    int port;
} s_c;

static const char *s_env[] = {"CLAWGATE_TOKEN=" TOKEN, "CLAWGATE_LOG_LEVEL=warn",
                              "OPENAI_API_KEY=", "OPENAI_BASE_URL=", NULL};

static void
s_worker (proc_t *p, const char *actors, const char *name)
{
    char state[192];
    snprintf (state, sizeof (state), "%s/%s", s_c.dir, name);
    cr_assert_eq (worker_start (p, s_c.requests, actors, s_c.config, state, s_env), 0,
                  "worker %s did not start", name);
}

static void
s_setup (void)
{
    memset (&s_c, 0, sizeof (s_c));
    runs_standin_start ();
    harness_tmpdir (s_c.dir, sizeof (s_c.dir));
    snprintf (s_c.config, sizeof (s_c.config), "%s/cluster.json", s_c.dir);
    char config[1024];
    //  The stall model holds its stream for 60 s: only an abort ends the
    //  upstream call within the test's few seconds.  A silent stream is
    //  written to (a comment) every 300 ms, which is how the gateway
    //  notices a client gone.
    snprintf (config, sizeof (config),
              "{\"broker\":{\"heartbeatMs\":200,\"liveness\":3},"
              "\"gateway\":{\"sseKeepaliveMs\":300},"
              "\"limits\":{\"rateLimit\":0,\"maxConcurrent\":100},"
              "\"providers\":{\"openai\":{\"type\":\"openai\","
              "\"baseUrl\":\"%s/v1\",\"apiKey\":\"" OPENAI_KEY "\","
              "\"models\":[\"stall\"],\"stallTimeoutMs\":60000}}}",
              runs_env.sbase);
    harness_write (s_c.config, config);
    cr_assert_eq (broker_start (&s_c.broker, s_c.config, s_env, s_c.requests, s_c.events),
                  0, "broker did not start");
    s_worker (&s_c.others, "system,session,ratelimit", "others");
    s_worker (&s_c.run[0], "run", "run0");
    s_worker (&s_c.run[1], "run", "run1");
    char state[192], err[4096];
    snprintf (state, sizeof (state), "%s/gw", s_c.dir);
    cr_assert_eq (gateway_start (&s_c.gw, s_c.requests, state, s_c.config, s_env,
                                 s_c.base, sizeof (s_c.base), err, sizeof (err)),
                  0, "gateway did not start: %s", err);
    s_c.port = atoi (strrchr (s_c.base, ':') + 1);
    char url[128];
    snprintf (url, sizeof (url), "%s/ready", s_c.base);
    const char *auth[] = {"Authorization: Bearer " TOKEN, NULL};
    cr_assert_geq (http_wait_status (url, auth, 200, 10000), 0,
                   "the cluster never became ready");
}

static void
s_teardown (void)
{
    proc_t *all[] = {&s_c.gw,     &s_c.run[0], &s_c.run[1],
                     &s_c.others, &s_c.broker, &runs_env.standin};
    for (size_t i = 0; i < sizeof (all) / sizeof (all[0]); i++)
        if (all[i]->pid > 0)
            proc_stop (all[i], SIGKILL, 5000);
}

TestSuite (multi_runs, .init = s_setup, .fini = s_teardown, .timeout = 120);

//  POSTs a streaming chat completion on a raw socket and reads until the
//  first delta; returns the socket, still open.
static int
s_stream_started (void)
{
    static const char body[] = "{\"model\":\"openai/stall\",\"stream\":true,"
                               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    int fd = http_raw_post (s_c.port, "/v1/chat/completions",
                            "Authorization: Bearer " TOKEN, body);
    cr_assert (fd >= 0, "could not post");
    char got[8192];
    cr_assert_eq (
        http_raw_read_until (fd, "\"content\":\"Hello\"", 15000, got, sizeof (got)), 0,
        "no first delta: %s", got);
    cr_assert (strstr (got, "HTTP/1.1 200"), "%s", got);
    return fd;
}

Test (multi_runs, a_hang_up_stops_the_upstream_call_on_either_run_actor)
{
    //  Four runs in a row: started on the run actors in turn, so with the
    //  abort sent anywhere but to its run's actor at least one would miss.
    for (int i = 0; i < 4; i++) {
        runs_stats_t before;
        RUNS_POLL_STATS (before, before.active == 0, 5000);
        cr_assert_eq (before.active, 0, "run %d: an upstream call is left over", i);
        int fd = s_stream_started ();
        runs_stats_t mid = runs_stats ();
        cr_assert_eq (mid.active, 1, "run %d: upstream call not in flight", i);
        close (fd);
        runs_stats_t after;
        RUNS_POLL_STATS (after, after.aborted > before.aborted && after.active == 0,
                         5000);
        cr_assert_eq (after.aborted, before.aborted + 1,
                      "run %d: the upstream call went on after the client left", i);
        cr_assert_eq (after.active, 0);
    }
}
