/*  =========================================================================
    test_memory - per-session and per-run tables follow what is live, not
    what was ever seen (docs/architecture.md#guarantees: memory stays flat under load)

    Issue 16, defect 8: the run actor kept a seq counter for every stateless
    run it ever served ("run:<id>"), ~140 bytes each, up to 100,000 of them.
    RSS is a poor judge on a shared machine or under ASan, so the test
    counts entries instead: at stop, the run and session actors log the
    largest size each of their tables reached.  Runs here go one at a time,
    so a table that follows live runs never holds more than a few entries;
    one that keeps every run or session seen holds thousands.
    =========================================================================
*/
#include "runs.h"

#define N_RUNS 1500  //  Per kind: enough to tell 2 from N
#define LIVE_MAX 16  //  Generous: one run at a time is sent

static served_t s_mem;

static size_t
s_mem_sink (char *data, size_t size, size_t n, void *arg)
{
    (void) data;
    (void) arg;
    return size * n;
}

//  Posts body to path on one kept-alive connection; returns the status.
static long
s_mem_post (CURL *c, const char *path, const char *body, struct curl_slist *headers)
{
    char url[192];
    snprintf (url, sizeof (url), "%s%s", s_mem.base, path);
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_mem_sink);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 15000L);
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    if (curl_easy_perform (c) == CURLE_OK)
        curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

//  Finds the line of the stopped gateway's stderr holding needle and reads
//  the n numbers after "largest tables: " into v.  Returns 0 or -1.
static int
s_tables_line (const char *needle, size_t *v, int n)
{
    FILE *f = fopen (s_mem.proc.err_path, "r");
    if (!f)
        return -1;
    char line[1024];
    int rc = -1;
    while (fgets (line, sizeof (line), f)) {
        const char *at = strstr (line, needle);
        const char *tables = at ? strstr (at, "largest tables: ") : NULL;
        if (!tables)
            continue;
        //  The numbers in order, whatever the words between them.
        const char *p = tables + strlen ("largest tables: ");
        int got = 0;
        while (got < n && *p) {
            if (*p < '0' || *p > '9') {
                p++;
                continue;
            }
            char *end;
            v[got++] = (size_t) strtoull (p, &end, 10);
            p = end;
        }
        rc = got == n ? 0 : -1;
    }
    fclose (f);
    return rc;
}

static void
s_setup (void)
{
    curl_global_init (CURL_GLOBAL_ALL);
    //  local/echo only: no upstream needed.  Limits off: this counts
    //  tables, not the limiter.
    const char *config = "{\"limits\":{\"rateLimit\":0,\"maxConcurrent\":0}}";
    const char *env[] = {
        "CLAWGATE_LOG_LEVEL=info", "OPENAI_API_KEY=",     "OPENAI_BASE_URL=",
        "ANTHROPIC_API_KEY=",      "ANTHROPIC_BASE_URL=", NULL};
    cr_assert_eq (served_start (&s_mem, config, env), 0, "clawgate serve did not start");
}

static void
s_teardown (void)
{
    if (s_mem.proc.pid > 0)
        proc_stop (&s_mem.proc, SIGKILL, 2000);
    if (s_mem.proc.err_path[0])
        unlink (s_mem.proc.err_path);
    if (s_mem.state[0])
        harness_rmtree (s_mem.state);
    curl_global_cleanup ();
}

TestSuite (memory, .init = s_setup, .fini = s_teardown, .timeout = 240);

//  Stateless completions (plain and streamed) and agent runs, each agent
//  run on a session of its own: the run actor's tables (runs, session seq
//  counters, tool calls) and the session actor's (live sessions, runs, runs
//  at the run actor) stay at what is live.
Test (memory, tables_follow_live_runs_not_runs_seen)
{
    CURL *c = curl_easy_init ();
    cr_assert (c);
    char auth[192];
    snprintf (auth, sizeof (auth), "Authorization: Bearer %s", s_mem.token);
    struct curl_slist *h = curl_slist_append (NULL, auth);
    h = curl_slist_append (h, "Content-Type: application/json");
    for (int i = 0; i < N_RUNS; i++) {
        char body[256];
        snprintf (body, sizeof (body),
                  "{\"model\":\"local/echo\",\"stream\":%s,"
                  "\"messages\":[{\"role\":\"user\",\"content\":\"hi %d\"}]}",
                  i % 2 ? "true" : "false", i);
        long st = s_mem_post (c, "/v1/chat/completions", body, h);
        cr_assert_eq (st, 200, "completion %d: status %ld", i, st);
        snprintf (body, sizeof (body),
                  "{\"message\":\"hi %d\",\"sessionKey\":\"mem-%d\"}", i, i);
        st = s_mem_post (c, "/v1/agent/run", body, h);
        cr_assert_eq (st, 200, "agent run %d: status %ld", i, st);
    }
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
    //  proc_stop, not served_stop: that one removes the stderr file.
    cr_assert_eq (proc_stop (&s_mem.proc, SIGTERM, 20000), 0,
                  "the gateway did not stop cleanly");
    s_mem.proc.pid = 0;

    size_t run[6], session[6];
    cr_assert_eq (s_tables_line ("run: stopping", run, 6), 0,
                  "no table sizes from the run actor at stop");
    cr_assert_eq (s_tables_line ("session: stopping", session, 6), 0,
                  "no table sizes from the session actor at stop");
    cr_log_info ("run actor peaks: %zu runs, %zu counters, %zu tool calls; "
                 "session actor peaks: %zu live, %zu runs, %zu inflight",
                 run[0], run[1], run[2], session[0], session[1], session[2]);
    cr_expect_leq (run[0], LIVE_MAX, "run actor held %zu runs at once", run[0]);
    //  No run here names a session without replyTo: no counter at all.
    cr_expect_eq (run[1], 0, "run actor kept %zu seq counters", run[1]);
    cr_expect_eq (run[2], 0, "run actor kept %zu tool calls", run[2]);
    cr_expect_leq (session[0], LIVE_MAX, "session actor kept %zu sessions", session[0]);
    cr_expect_leq (session[1], LIVE_MAX, "session actor kept %zu runs", session[1]);
    cr_expect_leq (session[2], LIVE_MAX, "session actor kept %zu dispatched", session[2]);
    //  And nothing is left once the runs are over.
    for (int i = 3; i < 6; i++) {
        cr_expect_eq (run[i], 0, "run actor table %d not empty at stop", i - 3);
        cr_expect_eq (session[i], 0, "session actor table %d not empty at stop", i - 3);
    }
}
