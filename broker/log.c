/*  =========================================================================
    log - leveled one-line logging to stderr
    =========================================================================
*/
#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static atomic_int s_level = CG_LOG_INFO;

void
log_set_level (log_level_t level)
{
    atomic_store (&s_level, (int) level);
}

log_level_t
log_get_level (void)
{
    return (log_level_t) atomic_load (&s_level);
}

int
log_level_parse (const char *name)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    for (int i = 0; name && i < 4; i++)
        if (strcasecmp (name, names[i]) == 0)
            return i;
    return -1;
}

void
log_write (log_level_t level, const char *module, const char *fmt, ...)
{
    if ((int) level < atomic_load (&s_level))
        return;
    static const char *tags[] = {"DEBUG", "INFO", "WARN", "ERROR"};
    char line[2048];
    struct timeval tv;
    gettimeofday (&tv, NULL);
    struct tm tm;
    gmtime_r (&tv.tv_sec, &tm);
    int n = snprintf (line, sizeof (line),
                      "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %s: ",
                      tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                      tm.tm_min, tm.tm_sec, (int) (tv.tv_usec / 1000),
                      tags[level], module);
    va_list ap;
    va_start (ap, fmt);
    int m = vsnprintf (line + n, sizeof (line) - (size_t) n - 1, fmt, ap);
    va_end (ap);
    size_t len = (size_t) n + (m < 0 ? 0 : (size_t) m);
    if (len > sizeof (line) - 2)
        len = sizeof (line) - 2;
    //  One event, one line: fold any newline a message carried.
    for (size_t i = (size_t) n; i < len; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[len++] = '\n';
    ssize_t rc = write (STDERR_FILENO, line, len);
    (void) rc;
}

const char *
log_mask (const char *secret, char *buf, size_t cap)
{
    size_t len = secret ? strlen (secret) : 0;
    if (len < 12)
        snprintf (buf, cap, "***(%zu)", len);
    else
        snprintf (buf, cap, "%.4s***(%zu)", secret, len);
    return buf;
}
