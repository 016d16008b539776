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

//  Fills raw from a per-thread pool of kernel randomness, refilled 256
//  bytes at a time: one getrandom syscall per 16 ids instead of one each
//  (libuuid's zuuid_new spends five).  The pool is the thread's own, so no
//  lock; a process that forks and keeps running (clawgate only spawns)
//  would repeat the child's ids, hence the note in ids.h.
static void
s_random_bytes (unsigned char *raw, size_t size)
{
    //  256 bytes: getrandom never returns short up to that size.
    static _Thread_local unsigned char pool[256];
    static _Thread_local size_t left;
    if (left < size) {
        if (getrandom (pool, sizeof (pool), 0) == (ssize_t) sizeof (pool))
            left = sizeof (pool);
        else {
            //  Cannot happen once the kernel's pool is ready; stay unique.
            static _Atomic unsigned long counter;
            unsigned long n = ++counter;
            memset (raw, 0, size);
            memcpy (raw, &n, sizeof (n) < size ? sizeof (n) : size);
            return;
        }
    }
    left -= size;
    memcpy (raw, pool + left, size);
    memset (pool + left, 0, size);  //  Never handed out twice
}

void
ids_random (char *buf, size_t cap, const char *prefix)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char raw[16];
    s_random_bytes (raw, sizeof (raw));
    size_t used = (size_t) snprintf (buf, cap, "%s", prefix);
    if (used >= cap)
        return;
    for (int i = 0; i < 16 && used + 2 < cap; i++) {
        buf[used++] = digits[raw[i] >> 4];
        buf[used++] = digits[raw[i] & 15];
    }
    buf[used] = 0;
}

void
ids_uuid (char *buf, size_t cap, const char *prefix)
{
    char hex[40];
    ids_random (hex, sizeof (hex), "");
    hex[12] = '4';                          //  Version 4
    hex[16] = "89ab"[(hex[16] - '0') & 3];  //  RFC 4122 variant
    snprintf (buf, cap, "%s%.8s-%.4s-%.4s-%.4s-%.12s", prefix, hex, hex + 8, hex + 12,
              hex + 16, hex + 20);
}

bool
ids_secret_equal (const char *a, size_t alen, const char *secret)
{
    size_t slen = strlen (secret);
    volatile unsigned char diff = (unsigned char) (alen != slen);
    for (size_t i = 0; i < alen; i++)
        diff |= (unsigned char) (a[i] ^ (slen ? secret[i % slen] : 0));
    return diff == 0;
}
