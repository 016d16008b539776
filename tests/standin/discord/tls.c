/*  =========================================================================
    tls - cg_dcstandin's TLS port: a TLS terminator in front of the plain
    port

    Part of cg_dcstandin (see dcstandin.c).  civetweb's own TLS cannot be
    used here: Debian's civetweb 1.15 loads libssl at run time and looks up
    SSL_get_peer_certificate, which OpenSSL 3 no longer exports (it is a
    macro for SSL_get1_peer_certificate), so the first TLS request calls a
    NULL pointer in a civetweb worker.  Instead each TLS connection gets a
    thread that does the handshake with OpenSSL (linked normally) and then
    relays bytes both ways to the plain port, so REST, control and the
    Gateway all work over TLS unchanged.  When the plain side ends (a close,
    or the drop knob's shutdown) the TLS side ends too.
    =========================================================================
*/
#include "dcstandin.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
    SSL_CTX *ctx;       //  The server context (never freed: relays use it)
    int listen_fd;      //  The TLS port's socket
    int plain_port;     //  Where relays connect
    atomic_bool *stop;  //  The program's stopping flag
    pthread_t acceptor;
} tls_t;

typedef struct {
    SSL_CTX *ctx;
    int fd;          //  The client's socket
    int plain_port;  //  Where to relay
} relay_t;

static tls_t s_tls;

//  Writes all of data to the TLS side; waits on the socket as OpenSSL asks.
//  Returns 0 or -1.
static int
s_ssl_write_all (SSL *ssl, int fd, const char *data, size_t len)
{
    while (len > 0) {
        int n = SSL_write (ssl, data, (int) len);
        if (n > 0) {
            data += n;
            len -= (size_t) n;
            continue;
        }
        int err = SSL_get_error (ssl, n);
        short events = err == SSL_ERROR_WANT_READ    ? POLLIN
                       : err == SSL_ERROR_WANT_WRITE ? POLLOUT
                                                     : 0;
        if (!events)
            return -1;
        struct pollfd item = {fd, events, 0};
        if (poll (&item, 1, 10000) <= 0)
            return -1;
    }
    return 0;
}

static int
s_send_all (int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = send (fd, data, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        data += n;
        len -= (size_t) n;
    }
    return 0;
}

static void *
s_relay (void *arg)
{
    relay_t *r = (relay_t *) arg;
    SSL *ssl = SSL_new (r->ctx);
    int inner = -1;
    struct timeval tv = {10, 0};
    setsockopt (r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof (tv));
    if (!ssl || SSL_set_fd (ssl, r->fd) != 1 || SSL_accept (ssl) != 1)
        goto done;
    inner = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in addr;
    memset (&addr, 0, sizeof (addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons ((uint16_t) r->plain_port);
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    if (inner < 0 || connect (inner, (struct sockaddr *) &addr, sizeof (addr)) != 0)
        goto done;
    int one = 1;
    setsockopt (inner, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    setsockopt (r->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof (one));
    fcntl (r->fd, F_SETFL, fcntl (r->fd, F_GETFL) | O_NONBLOCK);

    char buf[16384];
    bool tls_open = true;
    while (tls_open) {
        struct pollfd items[2] = {{r->fd, POLLIN, 0}, {inner, POLLIN, 0}};
        int timeout = SSL_pending (ssl) > 0 ? 0 : 1000;
        int rc = poll (items, 2, timeout);
        if (rc < 0 && errno != EINTR)
            break;
        if (SSL_pending (ssl) > 0 || (items[0].revents & (POLLIN | POLLHUP | POLLERR))) {
            int n = SSL_read (ssl, buf, sizeof (buf));
            if (n > 0) {
                if (s_send_all (inner, buf, (size_t) n) != 0)
                    break;
            }
            else {
                int err = SSL_get_error (ssl, n);
                if (err != SSL_ERROR_WANT_READ && err != SSL_ERROR_WANT_WRITE)
                    tls_open = false;
            }
        }
        if (items[1].revents & (POLLIN | POLLHUP | POLLERR)) {
            ssize_t n = recv (inner, buf, sizeof (buf), 0);
            if (n <= 0) {
                //  The plain side ended: so does the TLS side.
                SSL_shutdown (ssl);
                break;
            }
            if (s_ssl_write_all (ssl, r->fd, buf, (size_t) n) != 0)
                break;
        }
    }
done:
    if (inner >= 0)
        close (inner);
    if (ssl)
        SSL_free (ssl);
    close (r->fd);
    free (r);
    return NULL;
}

static void *
s_acceptor (void *arg)
{
    tls_t *t = (tls_t *) arg;
    while (!atomic_load (t->stop)) {
        struct pollfd item = {t->listen_fd, POLLIN, 0};
        if (poll (&item, 1, 250) <= 0)
            continue;
        int fd = accept (t->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        relay_t *r = calloc (1, sizeof (relay_t));
        pthread_t thread;
        if (!r) {
            close (fd);
            continue;
        }
        r->ctx = t->ctx;
        r->fd = fd;
        r->plain_port = t->plain_port;
        if (pthread_create (&thread, NULL, s_relay, r) != 0) {
            close (fd);
            free (r);
            continue;
        }
        pthread_detach (thread);
    }
    return NULL;
}

int
tls_start (dc_t *self, const char *cert, const char *key, int port)
{
    SSL_CTX *ctx = SSL_CTX_new (TLS_server_method ());
    if (!ctx)
        return -1;
    SSL_CTX_set_min_proto_version (ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file (ctx, cert) != 1
        || SSL_CTX_use_PrivateKey_file (ctx, key ? key : cert, SSL_FILETYPE_PEM) != 1
        || SSL_CTX_check_private_key (ctx) != 1) {
        unsigned long err = ERR_get_error ();
        fprintf (stderr, "cg_dcstandin: TLS certificate or key: %s\n",
                 err ? ERR_error_string (err, NULL) : "unusable");
        SSL_CTX_free (ctx);
        return -1;
    }
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt (fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof (one));
    struct sockaddr_in addr;
    memset (&addr, 0, sizeof (addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons ((uint16_t) port);
    addr.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof (addr);
    if (fd < 0 || bind (fd, (struct sockaddr *) &addr, sizeof (addr)) != 0
        || listen (fd, 128) != 0
        || getsockname (fd, (struct sockaddr *) &addr, &len) != 0) {
        fprintf (stderr, "cg_dcstandin: cannot listen on 127.0.0.1:%d: %s\n", port,
                 strerror (errno));
        if (fd >= 0)
            close (fd);
        SSL_CTX_free (ctx);
        return -1;
    }
    s_tls.ctx = ctx;
    s_tls.listen_fd = fd;
    s_tls.plain_port = self->port;
    s_tls.stop = &self->stopping;
    if (pthread_create (&s_tls.acceptor, NULL, s_acceptor, &s_tls) != 0) {
        close (fd);
        SSL_CTX_free (ctx);
        return -1;
    }
    self->tls_port = ntohs (addr.sin_port);
    return 0;
}

void
tls_stop (dc_t *self)
{
    if (!self->tls_port)
        return;
    pthread_join (s_tls.acceptor, NULL);
    close (s_tls.listen_fd);
}
