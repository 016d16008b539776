/*  =========================================================================
    ssl_lazy - OpenSSL (libcrypto, libssl), loaded on first use

    Like curl_lazy.c, and for the same reason (an idle gateway's RSS): the
    clawgate binary does not link OpenSSL.  The first call of any function
    here dlopen()s libcrypto.so.3 and libssl.so.3, once for the process
    (pthread_once), and looks up the functions below with dlsym; they stay
    loaded for the life of the process.  If either library or any function
    is missing, the reason is logged once, kept for ssl_error (), and every
    function fails.

    OpenSSL's headers are not included (libssl-dev is not a build
    dependency; libcurl's development package only suggests it): the types
    are opaque here, and the few constants we pass are copied from
    OpenSSL 3's headers, which fix them for the 3.x ABI.  Several of
    OpenSSL's documented calls are macros over a ctrl function
    (SSL_set_tlsext_host_name, SSL_CTX_set_min_proto_version,
    SSL_CTX_set_mode): we call the ctrl functions with those macros'
    arguments.

    Each connection gets its own SSL_CTX, so the CA store is read when a
    connection starts (a few milliseconds, for a channel that connects
    rarely) and freed with it: an idle gateway holds no certificates, and
    SSL_CERT_FILE / SSL_CERT_DIR are read at each connection.
    =========================================================================
*/
#include "ssl_lazy.h"

#include <arpa/inet.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define S_CRYPTO_LIBRARY "libcrypto.so.3"
#define S_SSL_LIBRARY "libssl.so.3"

//  OpenSSL's opaque types, as we hand them back and forth.
typedef struct s_ossl s_ossl_t;

//  Constants from OpenSSL 3's ssl.h, tls1.h, prov_ssl.h.
#define S_SSL_ERROR_SSL 1
#define S_SSL_ERROR_WANT_READ 2
#define S_SSL_ERROR_WANT_WRITE 3
#define S_SSL_ERROR_SYSCALL 5
#define S_SSL_ERROR_ZERO_RETURN 6
#define S_SSL_VERIFY_PEER 0x01
#define S_SSL_CTRL_MODE 33
#define S_SSL_MODE_ENABLE_PARTIAL_WRITE 0x1
#define S_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER 0x2
#define S_SSL_CTRL_SET_TLSEXT_HOSTNAME 55
#define S_TLSEXT_NAMETYPE_host_name 0
#define S_SSL_CTRL_SET_MIN_PROTO_VERSION 123
#define S_TLS1_2_VERSION 0x0303
#define S_SSL_OP_IGNORE_UNEXPECTED_EOF (1ULL << 7)
#define S_X509_V_OK 0

//  X (name, return type, parameters): libcrypto's functions we call.
#define S_CRYPTO_API(X)                                                                  \
    X (EVP_Q_mac, unsigned char *,                                                       \
       (s_ossl_t * libctx, const char *name, const char *propq, const char *subalg,      \
        const s_ossl_t *params, const void *key, size_t keylen,                          \
        const unsigned char *data, size_t datalen, unsigned char *out, size_t outsize,   \
        size_t *outlen))                                                                 \
    X (EVP_Digest, int,                                                                  \
       (const void *data, size_t count, unsigned char *md, unsigned int *size,           \
        const s_ossl_t *type, s_ossl_t *impl))                                           \
    X (EVP_sha1, const s_ossl_t *, (void) )                                              \
    X (RAND_bytes, int, (unsigned char *buf, int num))                                   \
    X (ERR_get_error, unsigned long, (void) )                                            \
    X (ERR_clear_error, void, (void) )                                                   \
    X (ERR_reason_error_string, const char *, (unsigned long e))                         \
    X (X509_verify_cert_error_string, const char *, (long n))                            \
    X (X509_VERIFY_PARAM_set1_ip_asc, int, (s_ossl_t * param, const char *ipasc))

//  libssl's.
#define S_SSL_API(X)                                                                     \
    X (TLS_client_method, const s_ossl_t *, (void) )                                     \
    X (SSL_CTX_new, s_ossl_t *, (const s_ossl_t *method))                                \
    X (SSL_CTX_free, void, (s_ossl_t * ctx))                                             \
    X (SSL_CTX_set_default_verify_paths, int, (s_ossl_t * ctx))                          \
    X (SSL_CTX_set_verify, void, (s_ossl_t * ctx, int mode, void *callback))             \
    X (SSL_CTX_set_options, uint64_t, (s_ossl_t * ctx, uint64_t op))                     \
    X (SSL_CTX_ctrl, long, (s_ossl_t * ctx, int cmd, long larg, void *parg))             \
    X (SSL_new, s_ossl_t *, (s_ossl_t * ctx))                                            \
    X (SSL_free, void, (s_ossl_t * ssl))                                                 \
    X (SSL_set_fd, int, (s_ossl_t * ssl, int fd))                                        \
    X (SSL_ctrl, long, (s_ossl_t * ssl, int cmd, long larg, void *parg))                 \
    X (SSL_set1_host, int, (s_ossl_t * ssl, const char *host))                           \
    X (SSL_get0_param, s_ossl_t *, (s_ossl_t * ssl))                                     \
    X (SSL_connect, int, (s_ossl_t * ssl))                                               \
    X (SSL_read, int, (s_ossl_t * ssl, void *buf, int num))                              \
    X (SSL_write, int, (s_ossl_t * ssl, const void *buf, int num))                       \
    X (SSL_get_error, int, (const s_ossl_t *ssl, int ret))                               \
    X (SSL_pending, int, (const s_ossl_t *ssl))                                          \
    X (SSL_get_verify_result, long, (const s_ossl_t *ssl))

static struct {
#define S_FIELD(name, ret, params) ret (*name) params;
    S_CRYPTO_API (S_FIELD)
    S_SSL_API (S_FIELD)
#undef S_FIELD
} s_api;

static pthread_once_t s_once = PTHREAD_ONCE_INIT;
static bool s_loaded;
static char s_error[256];  //  Why loading failed, "" if it did not

struct ssl_conn_t {
    s_ossl_t *ctx;  //  SSL_CTX: this connection's settings and CA store
    s_ossl_t *ssl;  //  SSL: the connection
};

//  Resolves every function of one list from lib; false (with s_error set)
//  if one is missing.  Through a union: ISO C has no cast from void * to a
//  function pointer.
#define S_RESOLVE(name, ret, params)                                                     \
    {                                                                                    \
        union {                                                                          \
            void *object;                                                                \
            ret (*function) params;                                                      \
        } sym;                                                                           \
        sym.object = dlsym (lib, #name);                                                 \
        if (!sym.object) {                                                               \
            snprintf (s_error, sizeof (s_error), "%s has no %s", library, #name);        \
            return false;                                                                \
        }                                                                                \
        s_api.name = sym.function;                                                       \
    }

static bool
s_load_crypto (void *lib, const char *library)
{
    S_CRYPTO_API (S_RESOLVE)
    return true;
}

static bool
s_load_ssl (void *lib, const char *library)
{
    S_SSL_API (S_RESOLVE)
    return true;
}
#undef S_RESOLVE

static void
s_load (void)
{
    void *crypto = dlopen (S_CRYPTO_LIBRARY, RTLD_NOW | RTLD_LOCAL);
    if (!crypto)
        snprintf (s_error, sizeof (s_error), "cannot load %s: %s", S_CRYPTO_LIBRARY,
                  dlerror ());
    else if (s_load_crypto (crypto, S_CRYPTO_LIBRARY)) {
        void *ssl = dlopen (S_SSL_LIBRARY, RTLD_NOW | RTLD_LOCAL);
        if (!ssl)
            snprintf (s_error, sizeof (s_error), "cannot load %s: %s", S_SSL_LIBRARY,
                      dlerror ());
        else if (s_load_ssl (ssl, S_SSL_LIBRARY))
            s_loaded = true;
    }
    if (!s_loaded)
        log_error ("ssl", "%s", s_error);
}

static bool
s_ready (void)
{
    pthread_once (&s_once, s_load);
    return s_loaded;
}

//  --------------------------------------------------------------------------
//  HMAC-SHA256 of data with key, through EVP_Q_mac (OpenSSL 3's one-shot
//  MAC; HMAC () is deprecated).

int
ssl_hmac_sha256 (const void *key, size_t key_len, const void *data, size_t len,
                 unsigned char out[32])
{
    if (!s_ready ())
        return -1;
    size_t out_len = 0;
    //  A NULL pointer with a zero length is still refused by some
    //  providers: hand them an empty string instead.
    unsigned char *done = s_api.EVP_Q_mac (
        NULL, "HMAC", NULL, "SHA256", NULL, key ? key : "", key_len,
        (const unsigned char *) (data ? data : ""), len, out, 32, &out_len);
    return done && out_len == 32 ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  SHA-1 of data.

int
ssl_sha1 (const void *data, size_t len, unsigned char out[20])
{
    if (!s_ready ())
        return -1;
    unsigned int out_len = 0;
    int rc =
        s_api.EVP_Digest (data ? data : "", len, out, &out_len, s_api.EVP_sha1 (), NULL);
    return rc == 1 && out_len == 20 ? 0 : -1;
}

//  --------------------------------------------------------------------------
//  Random bytes from OpenSSL's CSPRNG.

int
ssl_random (void *buf, size_t len)
{
    if (!s_ready ())
        return -1;
    unsigned char *at = (unsigned char *) buf;
    while (len > 0) {
        int chunk = len > INT_MAX ? INT_MAX : (int) len;
        if (s_api.RAND_bytes (at, chunk) != 1)
            return -1;
        at += chunk;
        len -= (size_t) chunk;
    }
    return 0;
}

//  --------------------------------------------------------------------------
//  Why loading failed.

const char *
ssl_error (void)
{
    s_ready ();
    return s_error;
}

//  Says in err what OpenSSL's error queue holds (its first error), after
//  "TLS: ", and the certificate check's verdict when there is one.
static void
s_tls_error (ssl_conn_t *self, int ssl_error, int ret, char *err, size_t errlen)
{
    unsigned long e = s_api.ERR_get_error ();
    const char *reason = e ? s_api.ERR_reason_error_string (e) : NULL;
    long verify = s_api.SSL_get_verify_result (self->ssl);
    if (ssl_error == S_SSL_ERROR_SYSCALL && !e)
        snprintf (err, errlen, "TLS: %s",
                  ret == 0 || errno == 0 ? "connection closed by the peer"
                                         : strerror (errno));
    else if (verify != S_X509_V_OK)
        snprintf (err, errlen, "TLS: %s (%s)",
                  reason ? reason : "certificate verify failed",
                  s_api.X509_verify_cert_error_string (verify));
    else
        snprintf (err, errlen, "TLS: %s", reason ? reason : "protocol error");
    s_api.ERR_clear_error ();
}

//  --------------------------------------------------------------------------
//  Starts a TLS client on fd for host.

ssl_conn_t *
ssl_conn_new (int fd, const char *host, char *err, size_t errlen)
{
    if (!s_ready ()) {
        snprintf (err, errlen, "TLS: %s", s_error);
        return NULL;
    }
    ssl_conn_t *self = (ssl_conn_t *) calloc (1, sizeof (ssl_conn_t));
    if (!self) {
        snprintf (err, errlen, "TLS: out of memory");
        return NULL;
    }
    s_api.ERR_clear_error ();
    const char *failed = NULL;
    unsigned char ip[16];
    bool literal =
        inet_pton (AF_INET, host, ip) == 1 || inet_pton (AF_INET6, host, ip) == 1;
    self->ctx = s_api.SSL_CTX_new (s_api.TLS_client_method ());
    if (!self->ctx)
        failed = "cannot create a context";
    else if (s_api.SSL_CTX_set_default_verify_paths (self->ctx) != 1)
        failed = "cannot load the CA store";
    else if (s_api.SSL_CTX_ctrl (self->ctx, S_SSL_CTRL_SET_MIN_PROTO_VERSION,
                                 S_TLS1_2_VERSION, NULL)
             != 1)
        failed = "cannot require TLS 1.2";
    if (!failed) {
        s_api.SSL_CTX_set_verify (self->ctx, S_SSL_VERIFY_PEER, NULL);
        //  A peer that closes without close_notify ends the stream (read
        //  returns 0), as a TCP close does: the WebSocket layer above has
        //  its own close handshake to tell a clean end from a drop.
        s_api.SSL_CTX_set_options (self->ctx, S_SSL_OP_IGNORE_UNEXPECTED_EOF);
        //  Writes go out of a queue that may grow (and move) between a
        //  write that wanted the socket and its retry.
        s_api.SSL_CTX_ctrl (self->ctx, S_SSL_CTRL_MODE,
                            S_SSL_MODE_ENABLE_PARTIAL_WRITE
                                | S_SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER,
                            NULL);
        self->ssl = s_api.SSL_new (self->ctx);
        if (!self->ssl)
            failed = "cannot create a connection";
        else if (s_api.SSL_set_fd (self->ssl, fd) != 1)
            failed = "cannot attach the socket";
        else if (literal) {
            //  No SNI for an address (RFC 6066 3); check the certificate's
            //  IP addresses.
            if (s_api.X509_VERIFY_PARAM_set1_ip_asc (s_api.SSL_get0_param (self->ssl),
                                                     host)
                != 1)
                failed = "cannot set the address to verify";
        }
        else if (s_api.SSL_ctrl (self->ssl, S_SSL_CTRL_SET_TLSEXT_HOSTNAME,
                                 S_TLSEXT_NAMETYPE_host_name, (void *) host)
                     != 1
                 || s_api.SSL_set1_host (self->ssl, host) != 1)
            failed = "cannot set the host name to verify";
    }
    if (failed) {
        snprintf (err, errlen, "TLS: %s", failed);
        s_api.ERR_clear_error ();
        ssl_conn_destroy (&self);
    }
    return self;
}

//  --------------------------------------------------------------------------
//  Frees the connection.

void
ssl_conn_destroy (ssl_conn_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    ssl_conn_t *self = *self_p;
    //  Only a loaded library ever made one.
    if (self->ssl)
        s_api.SSL_free (self->ssl);
    if (self->ctx)
        s_api.SSL_CTX_free (self->ctx);
    free (self);
    *self_p = NULL;
}

//  Maps a failed SSL_* call (ret <= 0) to our results.
static int
s_result (ssl_conn_t *self, int ret, char *err, size_t errlen)
{
    int e = s_api.SSL_get_error (self->ssl, ret);
    if (e == S_SSL_ERROR_WANT_READ)
        return SSL_CONN_WANT_READ;
    if (e == S_SSL_ERROR_WANT_WRITE)
        return SSL_CONN_WANT_WRITE;
    if (e == S_SSL_ERROR_ZERO_RETURN)
        return 0;
    s_tls_error (self, e, ret, err, errlen);
    return -1;
}

//  --------------------------------------------------------------------------
//  Advances the handshake.

int
ssl_conn_handshake (ssl_conn_t *self, char *err, size_t errlen)
{
    s_api.ERR_clear_error ();
    errno = 0;
    int ret = s_api.SSL_connect (self->ssl);
    if (ret == 1)
        return 0;
    int rc = s_result (self, ret, err, errlen);
    if (rc == 0) {
        snprintf (err, errlen, "TLS: connection closed during the handshake");
        rc = -1;
    }
    return rc;
}

//  --------------------------------------------------------------------------
//  Reads decrypted bytes.

ssize_t
ssl_conn_read (ssl_conn_t *self, void *buf, size_t len, char *err, size_t errlen)
{
    s_api.ERR_clear_error ();
    errno = 0;
    int ret = s_api.SSL_read (self->ssl, buf, len > INT_MAX ? INT_MAX : (int) len);
    return ret > 0 ? ret : s_result (self, ret, err, errlen);
}

//  --------------------------------------------------------------------------
//  Writes bytes.

ssize_t
ssl_conn_write (ssl_conn_t *self, const void *buf, size_t len, char *err, size_t errlen)
{
    s_api.ERR_clear_error ();
    errno = 0;
    int ret = s_api.SSL_write (self->ssl, buf, len > INT_MAX ? INT_MAX : (int) len);
    if (ret > 0)
        return ret;
    int rc = s_result (self, ret, err, errlen);
    if (rc == 0) {
        snprintf (err, errlen, "TLS: connection closed by the peer");
        rc = -1;
    }
    return rc;
}

//  --------------------------------------------------------------------------
//  Bytes OpenSSL has decrypted and not handed out yet.

size_t
ssl_conn_pending (const ssl_conn_t *self)
{
    int n = s_api.SSL_pending (self->ssl);
    return n > 0 ? (size_t) n : 0;
}
