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

static char *
s_digits (char *p, unsigned v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        p[i] = (char) ('0' + v % 10);
        v /= 10;
    }
    return p + n;
}

char *
log_iso_time (char *buf, int64_t ms)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
    unsigned msec = (unsigned) (ms - secs * 1000);
    unsigned sod = (unsigned) (secs - days * 86400);
    //  The proleptic Gregorian date of a day count (H. Hinnant's
    //  civil_from_days): eras of 400 years from 0000-03-01.
    days += 719468;
    int64_t era = (days >= 0 ? days : days - 146096) / 146097;
    unsigned doe = (unsigned) (days - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    unsigned day = doy - (153 * mp + 2) / 5 + 1;
    unsigned month = mp < 10 ? mp + 3 : mp - 9;
    int64_t year = (int64_t) yoe + era * 400 + (month <= 2);
    if (year < 0 || year > 9999)
        year = year < 0 ? 0 : 9999;  //  Not a time this gateway records
    char *p = s_digits (buf, (unsigned) year, 4);
    *p++ = '-';
    p = s_digits (p, month, 2);
    *p++ = '-';
    p = s_digits (p, day, 2);
    *p++ = 'T';
    p = s_digits (p, sod / 3600, 2);
    *p++ = ':';
    p = s_digits (p, sod / 60 % 60, 2);
    *p++ = ':';
    p = s_digits (p, sod % 60, 2);
    *p++ = '.';
    p = s_digits (p, msec, 3);
    *p++ = 'Z';
    *p = 0;
    return buf;
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
    char when[LOG_ISO_TIME_LEN + 1];
    log_iso_time (when, (int64_t) tv.tv_sec * 1000 + tv.tv_usec / 1000);
    int n = snprintf (line, sizeof (line), "%s %s %s: ", when, tags[level], module);
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
