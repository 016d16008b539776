/*  =========================================================================
    log - one line per event, with a level and the module name first

    Lines go to stderr as one write(2) each, so lines from many threads never
    interleave.  Thread-safe.  Never pass a secret: use log_mask().
    =========================================================================
*/
#ifndef CG_LOG_H
#define CG_LOG_H

#include <stddef.h>
#include <stdint.h>

typedef enum { CG_LOG_DEBUG, CG_LOG_INFO, CG_LOG_WARN, CG_LOG_ERROR } log_level_t;

//  Sets the lowest level printed (default CG_LOG_INFO).  Reads nothing else.
void
log_set_level (log_level_t level);

//  Parses "debug|info|warn|error"; returns -1 if none.
int
log_level_parse (const char *name);

log_level_t
log_get_level (void);

//  Prints "<time> <LEVEL> <module>: <message>\n".
void
log_write (log_level_t level, const char *module, const char *fmt, ...)
    __attribute__ ((format (printf, 3, 4)));

#define log_debug(mod, ...)                                                              \
    do {                                                                                 \
        if (log_get_level () <= CG_LOG_DEBUG)                                            \
            log_write (CG_LOG_DEBUG, mod, __VA_ARGS__);                                  \
    } while (0)
#define log_info(mod, ...) log_write (CG_LOG_INFO, mod, __VA_ARGS__)
#define log_warn(mod, ...) log_write (CG_LOG_WARN, mod, __VA_ARGS__)
#define log_error(mod, ...) log_write (CG_LOG_ERROR, mod, __VA_ARGS__)

#define LOG_ISO_TIME_LEN 24  //  "2026-11-24T03:07:55.123Z"

//  Writes ms (Unix milliseconds) as ISO-8601 UTC with milliseconds, NUL
//  ended, into buf (at least LOG_ISO_TIME_LEN + 1 bytes).  Plain
//  arithmetic: no locale, no time zone, no formatted printing (it was a
//  twentieth of a session get's CPU, one per message).  Returns buf.
char *
log_iso_time (char *buf, int64_t ms);

//  Writes a masked form of secret into buf ("abcd…" plus its length), so a
//  log can tell two tokens apart without revealing either.  Returns buf.
const char *
log_mask (const char *secret, char *buf, size_t cap);

#endif
