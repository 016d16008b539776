/*  =========================================================================
    ssl_lazy - OpenSSL (libcrypto, libssl), loaded on first use

    The clawgate binary does not link OpenSSL, for the same reason it does
    not link libcurl (see curl_lazy.c): an idle gateway must not pay its
    relocations and constructors.  The first call of any function here
    dlopen()s libcrypto.so.3 and libssl.so.3 and looks up the few
    functions we use with dlsym; from then on each call forwards to them.
    If the libraries cannot be loaded, every function fails (-1, NULL) and
    ssl_error () says why; the reason is logged once.

    Hashes and random bytes come from libcrypto; the TLS client (ssl_conn_t)
    from libssl.  The TLS client always verifies the server: its
    certificate chain against the system CA store (SSL_CERT_FILE and
    SSL_CERT_DIR, when set, replace it, as OpenSSL documents for
    SSL_CTX_set_default_verify_paths) and its name (DNS name, or IP address
    for an IP literal).  There is no way to turn verification off.  TLS 1.2
    is the lowest version offered.

    Threads: loading is thread-safe (pthread_once); the hash and random
    functions may be called from any thread.  One ssl_conn_t is used by one
    thread at a time.
    =========================================================================
*/
#ifndef CG_SSL_LAZY_H
#define CG_SSL_LAZY_H

#include <stddef.h>
#include <sys/types.h>

//  HMAC-SHA256 of data[len] with key[key_len] into out.  0, or -1 if
//  libcrypto cannot be loaded.
int
ssl_hmac_sha256 (const void *key, size_t key_len, const void *data, size_t len,
                 unsigned char out[32]);

//  SHA-1 of data[len] into out.  0 or -1.
int
ssl_sha1 (const void *data, size_t len, unsigned char out[20]);

//  len cryptographically random bytes into buf.  0 or -1.
int
ssl_random (void *buf, size_t len);

//  Why loading failed ("" if it did not).  Lent, static.
const char *
ssl_error (void);

//  --------------------------------------------------------------------------
//  TLS client over a connected non-blocking socket

typedef struct ssl_conn_t ssl_conn_t;

//  ssl_conn_read / ssl_conn_write results besides a byte count: call again
//  once the socket is readable (WANT_READ) or writable (WANT_WRITE).
#define SSL_CONN_WANT_READ (-2)
#define SSL_CONN_WANT_WRITE (-3)

//  Starts a TLS client on fd (connected, non-blocking; not taken: the
//  caller still closes it, after ssl_conn_destroy) for host, a DNS name
//  (sent as SNI and checked against the certificate) or an IP literal
//  (checked against the certificate's IP addresses).  Returns NULL with a
//  sentence in err if OpenSSL cannot be loaded or set up.  Caller owns the
//  return value and must ssl_conn_destroy it.
ssl_conn_t *
ssl_conn_new (int fd, const char *host, char *err, size_t errlen);

//  Frees the connection without a TLS close_notify (the socket is about
//  to be closed anyway).  Accepts NULL and sets *self_p to NULL.
void
ssl_conn_destroy (ssl_conn_t **self_p);

//  Advances the handshake: 0 once it is complete, SSL_CONN_WANT_READ or
//  SSL_CONN_WANT_WRITE to call again when the socket is ready, or -1 with
//  a sentence in err ("TLS: certificate verify failed (...)").
int
ssl_conn_handshake (ssl_conn_t *self, char *err, size_t errlen);

//  Reads up to len decrypted bytes: the count (> 0), 0 when the peer
//  closed the connection (close_notify or end of stream), a WANT code, or
//  -1 with a sentence in err.
ssize_t
ssl_conn_read (ssl_conn_t *self, void *buf, size_t len, char *err, size_t errlen);

//  Writes up to len bytes: the count taken (> 0), a WANT code (then call
//  again with the same bytes), or -1 with a sentence in err.
ssize_t
ssl_conn_write (ssl_conn_t *self, const void *buf, size_t len, char *err, size_t errlen);

//  Decrypted bytes OpenSSL holds already: read them now, since the socket
//  will not become readable for them.
size_t
ssl_conn_pending (const ssl_conn_t *self);

#endif
