/*  =========================================================================
    session - the session actor: durable conversations and their run queue

    Service "session".  Accepts SESSION_RUN, SESSION_ABORT, SESSION_LIST,
    SESSION_GET and SESSION_DELETE (schemas/messages.def).  It owns the
    store (actors/store.h) and the order of runs on each session:

      front --SESSION_RUN--> session: commit the user message, queue
      session --RUN_START (replyTo = front, seqBase)--> run actor
      run actor --chat.delta--> front (direct) and bus
      run actor --RUN_RESULT--> session: commit the reply
      session --chat.done | chat.error--> front and bus

    so a front sees chat.done only once the reply is on disk, and runs on
    one session go to the run actor one at a time, in arrival order, each
    with the session's earlier exchanges as context.  Runs of different
    sessions go out at once.  At start the actor marks runs left open by a
    crash as interrupted; at $TERM it does the same for runs still going.

    One session actor per store: two actors sharing a SQLite file would
    each queue only their own runs.
    Start: zactor_new (session_actor, &actor_args).
    =========================================================================
*/
#ifndef CG_SESSION_H
#define CG_SESSION_H

#include <czmq.h>

//  What the session actor reads.  Strings lent by the configuration.
typedef struct {
    const char *store;       //  Store URL; NULL: SQLite in state_dir
    const char *state_dir;   //  State directory
    int context_messages;    //  Earlier messages sent as context, at most
    int context_chars;       //  ... and at most this many characters
    int max_queued;          //  Runs waiting per session; more -> 429
    int readers;             //  session.read actors (lists and gets)
    int request_timeout_ms;  //  Longest run deadline a request may ask
} session_settings_t;

void
session_actor (zsock_t *pipe, void *args);

#endif
