/*  =========================================================================
    curl_lazy - libcurl, loaded on the first provider call

    libcurl brings twenty libraries with it (OpenSSL, GnuTLS through
    librtmp, Kerberos, LDAP, libssh2, ...), and their relocations and
    constructors cost an idle gateway 5.3 MiB of RSS, a third of it, though
    an idle or echo-only gateway never calls a provider.  So the clawgate
    binary does not link libcurl: this file defines the libcurl functions
    the actors call, and the first call of any of them dlopen()s
    libcurl.so.4 and forwards to it from then on.  The run actor is the
    only caller in the gateway (provider.c builds its requests).

    If libcurl cannot be loaded, every function fails the way libcurl does
    when it cannot start (CURLE_FAILED_INIT, NULL), the run actor answers
    503, and the reason is logged once.

    Binaries that link libcurl themselves (tests, benches) may get these
    definitions or libcurl's: both end up in the same library, since
    dlsym () on the library's own handle finds libcurl's definitions, never
    these.  Thread-safe: loading happens once (pthread_once).
    =========================================================================
*/
#define CURL_DISABLE_TYPECHECK  //  Plain prototypes, not the checking macros
#include <curl/curl.h>
#include <dlfcn.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>

#include "log.h"

#define S_CURL_LIBRARY "libcurl.so.4"

//  X (name, return type, parameters): every function forwarded.  The
//  variadic ones (setopt, getinfo) are written out below.
#define S_CURL_API(X)                                                                    \
    X (global_init, CURLcode, (long flags))                                              \
    X (global_cleanup, void, (void) )                                                    \
    X (version_info, curl_version_info_data *, (CURLversion v))                          \
    X (easy_init, CURL *, (void) )                                                       \
    X (easy_cleanup, void, (CURL * e))                                                   \
    X (easy_reset, void, (CURL * e))                                                     \
    X (easy_strerror, const char *, (CURLcode c))                                        \
    X (easy_setopt, CURLcode, (CURL * e, CURLoption o, ...))                             \
    X (easy_getinfo, CURLcode, (CURL * e, CURLINFO i, ...))                              \
    X (slist_append, struct curl_slist *, (struct curl_slist * l, const char *s))        \
    X (slist_free_all, void, (struct curl_slist * l))                                    \
    X (multi_init, CURLM *, (void) )                                                     \
    X (multi_cleanup, CURLMcode, (CURLM * m))                                            \
    X (multi_setopt, CURLMcode, (CURLM * m, CURLMoption o, ...))                         \
    X (multi_add_handle, CURLMcode, (CURLM * m, CURL * e))                               \
    X (multi_remove_handle, CURLMcode, (CURLM * m, CURL * e))                            \
    X (multi_socket_action, CURLMcode,                                                   \
       (CURLM * m, curl_socket_t s, int ev, int *running))                               \
    X (multi_info_read, CURLMsg *, (CURLM * m, int *left))                               \
    X (multi_assign, CURLMcode, (CURLM * m, curl_socket_t s, void *p))

static struct {
#define S_FIELD(name, ret, params) ret (*name) params;
    S_CURL_API (S_FIELD)
#undef S_FIELD
} s_api;

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static bool s_loaded;

static void
s_load (void)
{
    void *lib = dlopen (S_CURL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!lib) {
        log_error ("curl", "cannot load %s: %s", S_CURL_LIBRARY, dlerror ());
        return;
    }
    //  Through a union: ISO C has no cast from void * to a function pointer.
#define S_RESOLVE(name, ret, params)                                                     \
    {                                                                                    \
        union {                                                                          \
            void *object;                                                                \
            ret (*function) params;                                                      \
        } sym;                                                                           \
        sym.object = dlsym (lib, "curl_" #name);                                         \
        if (!sym.object) {                                                               \
            log_error ("curl", "%s has no curl_" #name, S_CURL_LIBRARY);                 \
            return;                                                                      \
        }                                                                                \
        s_api.name = sym.function;                                                       \
    }
    S_CURL_API (S_RESOLVE)
#undef S_RESOLVE
    s_loaded = true;
    //  The library stays loaded for the life of the process.
}

static bool
s_ready (void)
{
    pthread_once (&s_once, s_load);
    return s_loaded;
}

CURLcode
curl_global_init (long flags)
{
    return s_ready () ? s_api.global_init (flags) : CURLE_FAILED_INIT;
}

void
curl_global_cleanup (void)
{
    if (s_ready ())
        s_api.global_cleanup ();
}

curl_version_info_data *
curl_version_info (CURLversion v)
{
    return s_ready () ? s_api.version_info (v) : NULL;
}

CURL *
curl_easy_init (void)
{
    return s_ready () ? s_api.easy_init () : NULL;
}

void
curl_easy_cleanup (CURL *e)
{
    if (e && s_ready ())
        s_api.easy_cleanup (e);
}

void
curl_easy_reset (CURL *e)
{
    if (e && s_ready ())
        s_api.easy_reset (e);
}

const char *
curl_easy_strerror (CURLcode c)
{
    return s_ready () ? s_api.easy_strerror (c) : "libcurl is not available";
}

//  An option's number says its argument's type (curl.h, CURLOPTTYPE_*):
//  read it as that type and pass it on as that type.  Multi options use
//  the same ranges.
#define S_FORWARD_OPTION(fn, handle, opt, ap)                                             \
    ((opt) < CURLOPTTYPE_OBJECTPOINT     ? fn (handle, opt, va_arg (ap, long))            \
     : (opt) < CURLOPTTYPE_FUNCTIONPOINT ? fn (handle, opt, va_arg (ap, void *))          \
     : (opt) < CURLOPTTYPE_OFF_T         ? fn (handle, opt, va_arg (ap, void (*) (void))) \
     : (opt) < CURLOPTTYPE_BLOB          ? fn (handle, opt, va_arg (ap, curl_off_t))      \
                                         : fn (handle, opt, va_arg (ap, void *)))

//  The statements of a variadic function: failed if libcurl is not loaded, else
//  call's answer, call reading the one argument after last from ap.
#define S_FORWARD_VARIADIC(type, failed, last, call)                                     \
    {                                                                                    \
        if (!s_ready ())                                                                 \
            return failed;                                                               \
        va_list ap;                                                                      \
        va_start (ap, last);                                                             \
        type rc = call;                                                                  \
        va_end (ap);                                                                     \
        return rc;                                                                       \
    }

CURLcode
curl_easy_setopt (CURL *e, CURLoption opt, ...)
{
    S_FORWARD_VARIADIC (CURLcode, CURLE_FAILED_INIT, opt,
                        S_FORWARD_OPTION (s_api.easy_setopt, e, opt, ap));
}

CURLMcode
curl_multi_setopt (CURLM *m, CURLMoption opt, ...)
{
    S_FORWARD_VARIADIC (CURLMcode, CURLM_INTERNAL_ERROR, opt,
                        S_FORWARD_OPTION (s_api.multi_setopt, m, opt, ap));
}

//  Every getinfo takes a pointer to where the answer goes.
CURLcode
curl_easy_getinfo (CURL *e, CURLINFO info, ...)
{
    S_FORWARD_VARIADIC (CURLcode, CURLE_FAILED_INIT, info,
                        s_api.easy_getinfo (e, info, va_arg (ap, void *)));
}

struct curl_slist *
curl_slist_append (struct curl_slist *list, const char *s)
{
    return s_ready () ? s_api.slist_append (list, s) : NULL;
}

void
curl_slist_free_all (struct curl_slist *list)
{
    if (list && s_ready ())
        s_api.slist_free_all (list);
}

CURLM *
curl_multi_init (void)
{
    return s_ready () ? s_api.multi_init () : NULL;
}

CURLMcode
curl_multi_cleanup (CURLM *m)
{
    return s_ready () ? s_api.multi_cleanup (m) : CURLM_INTERNAL_ERROR;
}

CURLMcode
curl_multi_add_handle (CURLM *m, CURL *e)
{
    return s_ready () ? s_api.multi_add_handle (m, e) : CURLM_INTERNAL_ERROR;
}

CURLMcode
curl_multi_remove_handle (CURLM *m, CURL *e)
{
    return s_ready () ? s_api.multi_remove_handle (m, e) : CURLM_INTERNAL_ERROR;
}

CURLMcode
curl_multi_socket_action (CURLM *m, curl_socket_t s, int ev, int *running)
{
    return s_ready () ? s_api.multi_socket_action (m, s, ev, running)
                      : CURLM_INTERNAL_ERROR;
}

CURLMsg *
curl_multi_info_read (CURLM *m, int *left)
{
    return s_ready () ? s_api.multi_info_read (m, left) : NULL;
}

CURLMcode
curl_multi_assign (CURLM *m, curl_socket_t s, void *p)
{
    return s_ready () ? s_api.multi_assign (m, s, p) : CURLM_INTERNAL_ERROR;
}
