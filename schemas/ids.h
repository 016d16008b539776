/*  =========================================================================
    ids - the identifiers every side makes or checks, declared once

    Run ids are "run-" and 32 hex digits; generated session keys are
    "session-" and a version 4 UUID; a session key a client names is 1-128
    characters of [A-Za-z0-9._:-] (docs/sessions.md#session-keys).  Pure functions, safe
    on any thread.
    =========================================================================
*/
#ifndef CG_IDS_H
#define CG_IDS_H

#include <stdbool.h>
#include <stddef.h>

//  True if key is a session key docs/sessions.md#session-keys accepts.
bool
ids_session_key_valid (const char *key);

//  Constant-time equality of a (alen bytes) and the NUL-terminated secret:
//  every byte of a is touched whatever the secret's length, so timing says
//  nothing about how much matched.  For every credential from outside
//  (gateway tokens, hook tokens, platform secrets).
bool
ids_secret_equal (const char *a, size_t alen, const char *secret);

//  Writes prefix and 32 random hex digits into buf (cap bytes, truncated
//  to fit, always NUL-terminated).  Kernel randomness (getrandom), drawn
//  from a per-thread pool; thread-safe.  Not fork-safe: a forked child
//  that makes ids must not share its parent's pool (clawgate never forks
//  without exec).
void
ids_random (char *buf, size_t cap, const char *prefix);

//  Writes prefix and a random version 4 UUID into buf.
void
ids_uuid (char *buf, size_t cap, const char *prefix);

#endif
