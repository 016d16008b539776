/*  =========================================================================
    session_internal - what the files of the session actor share

    The session actor is one thread and one state (self_t) spread over
    three files: session.c (requests, replies from the run actor, deadlines,
    life cycle), session_runs.c (live sessions, a run's dispatch to the run
    actor and its end) and session_read.c (lists and gets, served by the
    session actor and by the session.read actors on read connections of
    their own).  Nothing here is for other modules: they use session.h.
    =========================================================================
*/
#ifndef CG_SESSION_INTERNAL_H
#define CG_SESSION_INTERNAL_H

#include <czmq.h>

#include "bus_front.h"
#include "bus_worker.h"
#include "mp.h"
#include "provider.h"
#include "session.h"
#include "store.h"

#define SESSION_GRACE_MS 5000  //  Past a run's deadline: run actor lost
#define SESSION_TICK_MS 250    //  Deadline checks
#define SESSION_PAGE_MAX 1000  //  Largest page of sessions or messages
#define SESSION_MAX_READERS 16
#define SESSION_STATS_MS 10000   //  Store write times logged this often
#define SESSION_STATS_RUNS 4096  //  Runs whose times a line covers, at most

typedef struct live_t live_t;

//  One run from its arrival to its end.
typedef struct {
    live_t *live;  //  Its session (not owned)
    char run_id[80];
    bus_request_t origin;  //  Asking front and envelope (front/env
                           //  only: raw and body are not used)
    uint8_t *body;         //  The SESSION_RUN body (owned)
    size_t body_len;
    char model[256];   //  As asked, or the agent's
    int64_t deadline;  //  zclock_mono () past which: timeout
    int64_t run_seq;   //  Position in the session
    char corr[24];     //  Our RUN_START's corr id, once sent
    bool dispatched;   //  Went to the run actor
    bool interrupted;  //  Aborted because the gateway stops
    int64_t store_us;  //  Spent in the store on its arrival
} pending_t;

//  A session with runs queued or going.
struct live_t {
    char key[ENVELOPE_KEY_MAX + 1];
    int64_t id;          //  Store row id
    int64_t seq;         //  Last event seq published
    int64_t next_run;    //  run_seq of the next arrival
    pending_t *running;  //  At the run actor, or NULL
    zlistx_t *queue;     //  pending_t waiting, in arrival order
    bool detached;       //  Session deleted; not in lives
};

//  The last SESSION_STATS_RUNS timings of a window (us).
typedef struct {
    uint32_t us[SESSION_STATS_RUNS];
    size_t n;  //  Taken in the window (may be more)
} timings_t;

typedef struct {
    const session_settings_t *settings;  //  Read only, not owned
    const catalog_t *catalog;            //  Read only, not owned
    bus_worker_t *worker;                //  Our service socket (not owned)
    bus_front_t *front;                  //  Our requests to the run actor
    store_t *store;
    zhashx_t *lives;                         //  key -> live_t (index only)
    zhashx_t *runs;                          //  runId -> pending_t (index only)
    zhashx_t *inflight;                      //  RUN_START corr id -> pending_t
    zactor_t *readers[SESSION_MAX_READERS];  //  session.read actors
    int n_readers;
    //  Logged every SESSION_STATS_MS (session_runs_stats_log): the
    //  storage write path's time per run (its arrival's transaction plus
    //  its end's, without the context read), and the context reads made in
    //  the arrival's transaction.
    timings_t writes, reads;
    int64_t stats_at;  //  zclock_mono () of the next line
    //  Largest size each table reached, logged at stop: they must follow
    //  the sessions and runs that are live, not every one ever seen.
    size_t peak_lives, peak_runs, peak_inflight;
} self_t;

//  ---- session.c -------------------------------------------------------------

void
session_peak (size_t *peak, zhashx_t *table);

int64_t
session_now_ms (void);

void
session_kv_time (mp_writer_t *w, const char *key, int64_t ms);

//  Characters (code points) of UTF-8 text: bytes that do not continue one.
int64_t
session_chars (const char *s, size_t len);

//  Packs JSON text as its msgpack value (nil if it does not parse).
void
session_pack_json_text (mp_writer_t *w, const char *text);

//  Packs every pair of map except the keys in skip (NULL-terminated), into
//  the map the caller opened (mp_map_begin).
void
session_pack_map_except (mp_writer_t *w, const msgpack_object *map,
                         const char *const *skip);

//  ---- session_read.c --------------------------------------------------------

//  Answers a store call that did not return 0: 1 is an unknown session
//  (404), anything else a store failure (500).
void
session_read_reply_store_rc (bus_worker_t *worker, bus_request_t *req, int rc);

void
session_read_list (store_t *store, bus_worker_t *worker, bus_request_t *req);

void
session_read_get (store_t *store, bus_worker_t *worker, bus_request_t *req);

void
session_read_store_url (const session_settings_t *cfg, char *url, size_t cap);

void
session_read_actor (zsock_t *pipe, void *args);

//  ---- session_runs.c --------------------------------------------------------

//  The live session for key, loading or creating its row.  NULL on a store
//  failure.
live_t *
session_runs_live_get (self_t *self, const char *key, const char *agent_id,
                       const char *channel);

//  Frees live once nothing is queued or going.
void
session_runs_live_release (self_t *self, live_t *live);

//  Forgets p everywhere and frees it.  Does not pump its session.
void
session_runs_pending_end (self_t *self, pending_t *p);

void
session_runs_timing_add (timings_t *t, int64_t us);

//  One line per SESSION_STATS_MS with runs recorded in it: what the
//  storage writes (a run's arrival transaction plus its end transaction,
//  without the context read) added to each, and the context reads made in
//  arrival transactions; median and p99 over the window's last
//  SESSION_STATS_RUNS.  At stop (final), the window so far.
void
session_runs_stats_log (self_t *self, int64_t now, bool final);

//  Ends a run that never reached (or never came back from) the run actor:
//  finish is "aborted" or "timeout" (chat.done), or NULL for a failure
//  (chat.error with status, code, message).
void
session_runs_end_local (self_t *self, pending_t *p, const char *finish, int status,
                        const char *code, const char *message);

//  The run actor's RUN_RESULT: commit the reply, then tell the front.
void
session_runs_on_result (self_t *self, pending_t *p, const msgpack_object *b);

//  Packs p's RUN_START body into w (an initialised writer): the client's
//  fields, the context read from the store, where the deltas go.  left is
//  the run's time left (ms).  -1 if p's stored body cannot be read.
int
session_runs_start_body (self_t *self, pending_t *p, int64_t left, mp_writer_t *w);

//  Sends p's RUN_START (body in w) to the run actor; p is then the
//  session's running run, or ended if the broker refuses it.
void
session_runs_start_send (self_t *self, pending_t *p, int64_t left, const mp_writer_t *w);

//  Sends the next queued runs of live while it is idle; frees live when
//  nothing is left.  live must not be used after this.
void
session_runs_pump (self_t *self, live_t *live);

#endif
