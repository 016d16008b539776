/*  =========================================================================
    store_bench - the storage write path alone: store_run_begin (run, user
    message, session counters: one transaction) plus store_run_end (reply,
    run status, context mark, session counters: one transaction), as the
    session actor calls them for every run, on a temporary SQLite file in
    WAL mode with synchronous=NORMAL (the embedded default).

      usage: store_bench [RUNS [SESSIONS [DIR]]]

    RUNS pairs (default 5000) spread round-robin over SESSIONS sessions
    (default 100), after a warm-up of 200.  Prints one line:
      store_bench: N begin+end pairs: median X us, p99 Y us (begin median
      B us, end median E us)
    DIR (default /tmp) is where the temporary file goes: put it on the disk
    the state directory will live on.
    =========================================================================
*/
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static int64_t
s_now_ns (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int64_t
s_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
s_cmp (const void *a, const void *b)
{
    int64_t x = *(const int64_t *) a, y = *(const int64_t *) b;
    return x < y ? -1 : x > y;
}

static double
s_pct (int64_t *v, int n, double p)
{
    qsort (v, (size_t) n, sizeof (int64_t), s_cmp);
    int i = (int) (p * (n - 1) + 0.5);
    return (double) v[i] / 1000.0;
}

int
main (int argc, char **argv)
{
    int runs = argc > 1 ? atoi (argv[1]) : 5000;
    int n_sessions = argc > 2 ? atoi (argv[2]) : 100;
    const char *dir = argc > 3 ? argv[3] : "/tmp";
    if (runs < 1 || n_sessions < 1) {
        fprintf (stderr, "usage: store_bench [RUNS [SESSIONS [DIR]]]\n");
        return 2;
    }
    char path[4096];
    snprintf (path, sizeof (path), "%s/store_bench-%d.db", dir, (int) getpid ());
    char err[512];
    store_t *store = store_open (path, err, sizeof (err));
    if (!store) {
        fprintf (stderr, "store_bench: %s\n", err);
        return 1;
    }
    int64_t *ids = (int64_t *) calloc ((size_t) n_sessions, sizeof (int64_t));
    int64_t *next = (int64_t *) calloc ((size_t) n_sessions, sizeof (int64_t));
    int64_t *pair = (int64_t *) calloc ((size_t) runs, sizeof (int64_t));
    int64_t *beg = (int64_t *) calloc ((size_t) runs, sizeof (int64_t));
    int64_t *end = (int64_t *) calloc ((size_t) runs, sizeof (int64_t));
    if (!ids || !next || !pair || !beg || !end)
        return 1;
    for (int s = 0; s < n_sessions; s++) {
        char key[64];
        snprintf (key, sizeof (key), "bench-%d", s);
        store_session_t row;
        if (store_session_open (store, key, "default", "api", s_wall_ms (), &row)) {
            fprintf (stderr, "store_bench: cannot create a session\n");
            return 1;
        }
        ids[s] = row.id;
    }
    //  A typical exchange: an 80-character question, a 300-character answer.
    const char *question = "What is the capital of France, and what is it "
                           "famous for? Please answer briefly.";
    char answer[320];
    memset (answer, 'x', sizeof (answer) - 1);
    answer[sizeof (answer) - 1] = 0;
    int warm = 200;
    for (int i = -warm; i < runs; i++) {
        int s = (i + warm) % n_sessions;
        char run_id[80];
        snprintf (run_id, sizeof (run_id), "run-%08x%024d", s, i + warm);
        int64_t now = s_wall_ms ();
        store_message_t user = {.role = "user",
                                .content = question,
                                .content_len = strlen (question),
                                .run_id = run_id,
                                .created_at = now};
        store_message_t reply = {.role = "assistant",
                                 .content = answer,
                                 .content_len = strlen (answer),
                                 .run_id = run_id,
                                 .created_at = now,
                                 .model = "local/echo",
                                 .finish_reason = "stop",
                                 .prompt_tokens = 14,
                                 .completion_tokens = 60};
        int64_t t0 = s_now_ns ();
        if (store_run_begin (store, ids[s], run_id, next[s], &user, now)) {
            fprintf (stderr, "store_bench: store_run_begin failed\n");
            return 1;
        }
        int64_t t1 = s_now_ns ();
        if (store_run_end (store, ids[s], next[s], NULL, 0, &reply, 0, now)) {
            fprintf (stderr, "store_bench: store_run_end failed\n");
            return 1;
        }
        int64_t t2 = s_now_ns ();
        next[s]++;
        if (i >= 0) {
            pair[i] = t2 - t0;
            beg[i] = t1 - t0;
            end[i] = t2 - t1;
        }
    }
    double p50 = s_pct (pair, runs, 0.5), p99 = s_pct (pair, runs, 0.99);
    double b50 = s_pct (beg, runs, 0.5), e50 = s_pct (end, runs, 0.5);
    printf ("store_bench: %d begin+end pairs over %d sessions: median %.1f us, "
            "p99 %.1f us (begin median %.1f us, end median %.1f us)\n",
            runs, n_sessions, p50, p99, b50, e50);
    store_close (&store);
    char side[4200];
    unlink (path);
    snprintf (side, sizeof (side), "%s-wal", path);
    unlink (side);
    snprintf (side, sizeof (side), "%s-shm", path);
    unlink (side);
    free (ids);
    free (next);
    free (pair);
    free (beg);
    free (end);
    return 0;
}
