/*  =========================================================================
    pidcache - getpid () without a system call, for libzmq's fork checks

    libzmq (built with HAVE_FORK, as Debian ships it) calls getpid () on
    every mailbox wait and receive to notice a forked child, and glibc
    stopped caching the pid in 2.25, so each call is a system call.  That
    is two to four system calls per message per thread: on this gateway's
    request path about seven per request, and on a paravirtualised VM a
    system call costs 15-40 µs.

    The executable defines getpid () itself; the dynamic linker binds
    libzmq's (and every other library's) calls to it ahead of libc's.  The
    pid is read once and cached; a pthread_atfork child handler clears the
    cache, so a forked child reads its own.  posix_spawn and vfork children
    run no atfork handlers, but they only exec, and never call getpid ()
    before that.  glibc's own internal uses (raise, abort) call the kernel
    directly and are not affected.

    Only the clawgate executable links this file; libraries and unit tests
    keep libc's getpid ().
    =========================================================================
*/

#include <pthread.h>
#include <stdatomic.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <unistd.h>

static _Atomic pid_t s_pid;

static void
s_forget (void)
{
    atomic_store_explicit (&s_pid, 0, memory_order_relaxed);
}

__attribute__ ((constructor)) static void
s_pidcache_init (void)
{
    pthread_atfork (NULL, NULL, s_forget);
}

pid_t
getpid (void)
{
    pid_t pid = atomic_load_explicit (&s_pid, memory_order_relaxed);
    if (pid == 0) {
        pid = (pid_t) syscall (SYS_getpid);
        atomic_store_explicit (&s_pid, pid, memory_order_relaxed);
    }
    return pid;
}
