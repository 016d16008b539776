/*  =========================================================================
    ids - run ids, session keys, client ids
    =========================================================================
*/
#include "ids.h"

#include <ctype.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

bool
ids_session_key_valid (const char *key)
{
    size_t n = key ? strlen (key) : 0;
    if (n < 1 || n > 128)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!isalnum ((unsigned char) key[i]) && !strchr ("._:-", key[i]))
            return false;
    return true;
}

//  libuuid (zuuid_new) spends five more syscalls gathering entropy per id.
void
ids_random (char *buf, size_t cap, const char *prefix)
{
    unsigned char raw[16];
    if (getrandom (raw, sizeof (raw), 0) != (ssize_t) sizeof (raw)) {
        //  Cannot happen for 16 bytes once the pool is ready; stay unique.
        static _Atomic unsigned long counter;
        unsigned long n = ++counter;
        memset (raw, 0, sizeof (raw));
        memcpy (raw, &n, sizeof (n));
    }
    size_t used = (size_t) snprintf (buf, cap, "%s", prefix);
    for (int i = 0; i < 16 && used + 2 < cap; i++, used += 2)
        snprintf (buf + used, cap - used, "%02x", raw[i]);
}

void
ids_uuid (char *buf, size_t cap, const char *prefix)
{
    char hex[40];
    ids_random (hex, sizeof (hex), "");
    hex[12] = '4';                                   //  Version 4
    hex[16] = "89ab"[(hex[16] - '0') & 3];           //  RFC 4122 variant
    snprintf (buf, cap, "%s%.8s-%.4s-%.4s-%.4s-%.12s", prefix, hex, hex + 8,
              hex + 12, hex + 16, hex + 20);
}
