/*  =========================================================================
    test_log - log_iso_time against the C library's own calendar
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"

//  What gmtime_r and strftime make of ms.
static void
s_libc_iso (char *buf, size_t cap, int64_t ms)
{
    time_t secs = (time_t) (ms / 1000);
    struct tm tm;
    gmtime_r (&secs, &tm);
    size_t n = strftime (buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf (buf + n, cap - n, ".%03dZ", (int) (ms % 1000));
}

static void
s_same (int64_t ms)
{
    char want[64], got[LOG_ISO_TIME_LEN + 8];
    memset (got, 'x', sizeof (got));
    s_libc_iso (want, sizeof (want), ms);
    cr_assert_eq (log_iso_time (got, ms), got);
    cr_assert_str_eq (got, want, "ms %lld", (long long) ms);
    cr_assert_eq (strlen (got), LOG_ISO_TIME_LEN);
}

Test (log, iso_time_matches_the_c_library_on_every_kind_of_day)
{
    //  The epoch, leap days (2000 is a leap year, 2100 is not), the ends
    //  of years and of days, and the last millisecond of 9999.
    static const int64_t fixed[] = {0,
                                    999,
                                    1000,
                                    86399999,
                                    86400000,
                                    951782400000,
                                    951868799999,
                                    951868800000,
                                    4107456000000,
                                    4107542399999,
                                    4107542400000,
                                    1735689599999,
                                    1735689600000,
                                    1795000000123,
                                    253402300799999};
    for (size_t i = 0; i < sizeof (fixed) / sizeof (fixed[0]); i++)
        s_same (fixed[i]);
    //  Every day from 1970 to 2200 at a time of day that moves.
    for (int64_t day = 0; day < 84000; day++)
        s_same (day * 86400000 + (day * 7919 % 86400) * 1000 + day % 1000);
}
