/*  =========================================================================
    test_wsclient - the zloop WebSocket client (actors/channels/wsclient.h)
    and the lazily loaded OpenSSL it uses (actors/ssl_lazy.h)

    Real servers, in this process: civetweb's WebSocket server on
    127.0.0.1, port 0 (plain, and TLS with certificates made at run time
    by the openssl command in the test's own temporary directory, the CA
    given to the client through SSL_CERT_FILE), and, for what civetweb
    will not do (a wrong Sec-WebSocket-Accept, a drop without a close
    frame, checking the client's masks), a raw socket server on a thread.
    The client runs on a zloop in the test's thread.
    =========================================================================
*/
#include <arpa/inet.h>
#include <civetweb.h>
#include <criterion/criterion.h>
#include <czmq.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "ssl_lazy.h"
#include "wsclient.h"

//  --------------------------------------------------------------------------
//  What the client's callback saw

typedef struct {
    wsc_t *ws;
    int opened;
    int ntexts;
    char texts[8][256];
    size_t lens[8];
    bool closed;
    int code;
    char reason[256];
    const char *send_on_open;  //  Sent once open
    int close_on_open;         //  wsc_close with this code once open
    wsc_event_t destroy_on;    //  Destroy inside the callback on this event
    bool destroy;              //  ... if set
    int want_texts;            //  Stop the loop after this many texts
    int64_t closed_at;         //  When WSC_CLOSED came (zclock_mono)
} rec_t;

static void
s_on_event (wsc_t *ws, wsc_event_t event, const char *data, size_t len, int code,
            void *arg)
{
    rec_t *r = (rec_t *) arg;
    cr_assert_eq (ws, r->ws);
    cr_assert_not (r->closed, "no event after WSC_CLOSED");
    cr_assert_eq (data[len], 0, "data is NUL-terminated");
    if (event == WSC_OPEN) {
        r->opened++;
        if (r->send_on_open)
            cr_assert_eq (wsc_send_text (ws, r->send_on_open, strlen (r->send_on_open)),
                          0);
        if (r->close_on_open)
            wsc_close (ws, r->close_on_open);
    }
    else if (event == WSC_TEXT) {
        if (r->ntexts < 8) {
            snprintf (r->texts[r->ntexts], sizeof (r->texts[0]), "%s", data);
            r->lens[r->ntexts] = len;
        }
        r->ntexts++;
    }
    else {
        r->closed = true;
        r->code = code;
        r->closed_at = zclock_mono ();
        snprintf (r->reason, sizeof (r->reason), "%s", data);
    }
    if (r->destroy && r->destroy_on == event) {
        wsc_destroy (&r->ws);
        cr_assert_null (r->ws);
        r->closed = true;  //  Nothing more will come: stop the loop
    }
}

static int
s_check_done (zloop_t *loop, int timer_id, void *arg)
{
    rec_t *r = (rec_t *) arg;
    if (r->closed || (r->want_texts && r->ntexts >= r->want_texts))
        return -1;
    return 0;
}

static int
s_give_up (zloop_t *loop, int timer_id, void *arg)
{
    return -1;
}

//  Connects to url and runs the loop until the client closed (or the
//  wanted texts came, or 8 s passed).  Leaves r->ws for the caller.
static void
s_run (const char *url, const wsc_opts_t *opts, rec_t *r)
{
    zloop_t *loop = zloop_new ();
    r->ws = wsc_connect (loop, url, opts, s_on_event, r);
    cr_assert_not_null (r->ws, "wsc_connect takes %s", url);
    zloop_timer (loop, 5, 0, s_check_done, r);
    zloop_timer (loop, 8000, 1, s_give_up, NULL);
    zloop_start (loop);
    wsc_destroy (&r->ws);
    zloop_destroy (&loop);
}

//  --------------------------------------------------------------------------
//  A civetweb WebSocket server

typedef struct {
    struct mg_context *ctx;
    int port;
    pthread_mutex_t lock;
    char pong[64];     //  Payload of the last pong the client sent
    int client_close;  //  Code of the client's close frame, -1 none
    int pings;         //  Pings the client sent
} server_t;

static server_t s_server = {NULL, 0, PTHREAD_MUTEX_INITIALIZER, "", -1, 0};

//  Writes one unmasked server frame.
static void
s_frame (struct mg_connection *conn, int first, const char *data, size_t len)
{
    unsigned char head[4];
    size_t n = 0;
    head[n++] = (unsigned char) first;
    if (len < 126)
        head[n++] = (unsigned char) len;
    else {
        head[n++] = 126;
        head[n++] = (unsigned char) (len >> 8);
        head[n++] = (unsigned char) len;
    }
    mg_write (conn, head, n);
    if (len)
        mg_write (conn, data, len);
}

static int
s_ws_connect (const struct mg_connection *conn, void *cbdata)
{
    return 0;
}

static void
s_ws_ready (struct mg_connection *conn, void *cbdata)
{
    const char *mode = (const char *) cbdata;
    char big[200];
    memset (big, 'x', sizeof (big));
    if (streq (mode, "frag")) {
        s_frame (conn, 0x01, "Hel", 3);
        s_frame (conn, 0x89, "p", 1);  //  A ping between fragments
        s_frame (conn, 0x00, "lo, ", 4);
        s_frame (conn, 0x80, "world", 5);
    }
    else if (streq (mode, "ping"))
        s_frame (conn, 0x89, "hi!", 3);
    else if (streq (mode, "close"))
        s_frame (conn, 0x88, "\x0f\xa4gone for test", 15);  //  4004
    else if (streq (mode, "big"))
        s_frame (conn, 0x81, big, 200);
    else if (streq (mode, "bigfrag")) {
        s_frame (conn, 0x01, big, 60);
        s_frame (conn, 0x00, big, 60);
        s_frame (conn, 0x80, big, 60);
    }
}

static int
s_ws_data (struct mg_connection *conn, int flags, char *data, size_t len, void *cbdata)
{
    const char *mode = (const char *) cbdata;
    int opcode = flags & 0x0f;
    if (opcode == MG_WEBSOCKET_OPCODE_TEXT && streq (mode, "echo"))
        mg_websocket_write (conn, MG_WEBSOCKET_OPCODE_TEXT, data, len);
    else if (opcode == MG_WEBSOCKET_OPCODE_PING) {
        pthread_mutex_lock (&s_server.lock);
        s_server.pings++;
        pthread_mutex_unlock (&s_server.lock);
        mg_websocket_write (conn, MG_WEBSOCKET_OPCODE_PONG, data, len);
    }
    else if (opcode == MG_WEBSOCKET_OPCODE_PONG) {
        //  Echoed as text in "ping" mode only: in "frag" mode the pong to
        //  the ping between fragments would be a second text message, and
        //  the test could see it or not, as the loop's timing goes.
        char reply[80];
        pthread_mutex_lock (&s_server.lock);
        snprintf (s_server.pong, sizeof (s_server.pong), "%.*s", (int) len, data);
        pthread_mutex_unlock (&s_server.lock);
        int n = snprintf (reply, sizeof (reply), "pong:%.*s", (int) len, data);
        if (streq (mode, "ping"))
            mg_websocket_write (conn, MG_WEBSOCKET_OPCODE_TEXT, reply, (size_t) n);
    }
    else if (opcode == MG_WEBSOCKET_OPCODE_CONNECTION_CLOSE) {
        pthread_mutex_lock (&s_server.lock);
        s_server.client_close =
            len >= 2 ? ((unsigned char) data[0] << 8 | (unsigned char) data[1]) : 0;
        pthread_mutex_unlock (&s_server.lock);
        if (streq (mode, "echo"))  //  Answer the client's close
            s_frame (conn, 0x88, data, len < 2 ? len : 2);
        return 0;
    }
    return 1;
}

static void
s_ws_close (const struct mg_connection *conn, void *cbdata)
{
}

//  Starts civetweb on 127.0.0.1.
static void
s_server_start (void)
{
    signal (SIGPIPE, SIG_IGN);
    const char *options[] = {"listening_ports",      "127.0.0.1:0", "num_threads", "4",
                             "websocket_timeout_ms", "5000",        NULL};
    struct mg_callbacks cb;
    memset (&cb, 0, sizeof (cb));
    s_server.ctx = mg_start (&cb, NULL, options);
    cr_assert_not_null (s_server.ctx, "civetweb starts");
    static const char *modes[] = {"echo", "frag",    "ping",  "close",
                                  "big",  "bigfrag", "silent"};
    for (size_t i = 0; i < sizeof (modes) / sizeof (modes[0]); i++) {
        char uri[32];
        snprintf (uri, sizeof (uri), "/%s", modes[i]);
        mg_set_websocket_handler (s_server.ctx, uri, s_ws_connect, s_ws_ready, s_ws_data,
                                  s_ws_close, (void *) modes[i]);
    }
    struct mg_server_port ports[2];
    cr_assert_eq (mg_get_server_ports (s_server.ctx, 2, ports), 1);
    s_server.port = ports[0].port;
}

static void
s_server_stop (void)
{
    if (s_server.ctx)
        mg_stop (s_server.ctx);
    s_server.ctx = NULL;
}

static char *
s_url (const char *scheme, const char *host, const char *path)
{
    return zsys_sprintf ("%s://%s:%d%s", scheme, host, s_server.port, path);
}

//  --------------------------------------------------------------------------
//  Certificates, made in a temporary directory

static char s_dir[64];

//  Runs a shell command in s_dir; asserts it succeeds.
static void
s_sh (const char *cmd)
{
    char *line = zsys_sprintf ("cd '%s' && { %s ; } >/dev/null 2>&1", s_dir, cmd);
    cr_assert_eq (system (line), 0, "%s", cmd);
    zstr_free (&line);
}

//  A CA (name.pem, name.key).
static void
s_make_ca (const char *name)
{
    char *cmd =
        zsys_sprintf ("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 "
                      "-nodes -keyout %s.key -out %s.pem -days 2 -subj /CN=%s",
                      name, name, name);
    s_sh (cmd);
    zstr_free (&cmd);
}

//  A server certificate name.pem (certificate and key) signed by ca, for
//  the subjectAltName san.
static void
s_make_server (const char *name, const char *ca, const char *san)
{
    char *cmd = zsys_sprintf (
        "printf 'subjectAltName=%s\\n' > %s.ext && "
        "openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout %s.key "
        "-out %s.csr -subj /CN=%s && "
        "openssl x509 -req -in %s.csr -CA %s.pem -CAkey %s.key -CAcreateserial "
        "-out %s.crt -days 2 -extfile %s.ext && cat %s.crt %s.key > %s.pem",
        san, name, name, name, name, name, ca, ca, name, name, name, name, name);
    s_sh (cmd);
    zstr_free (&cmd);
}

static void
s_certs_init (void)
{
    snprintf (s_dir, sizeof (s_dir), "/tmp/cg-wsc-XXXXXX");
    cr_assert_not_null (mkdtemp (s_dir));
    s_make_ca ("ca");
    s_make_ca ("other");
    s_make_server ("good", "ca", "IP:127.0.0.1,DNS:localhost");
    s_make_server ("stranger", "other", "IP:127.0.0.1,DNS:localhost");
    s_make_server ("misnamed", "ca", "DNS:wrong.example");
    char *ca = zsys_sprintf ("%s/ca.pem", s_dir);
    setenv ("SSL_CERT_FILE", ca, 1);
    setenv ("SSL_CERT_DIR", s_dir, 1);  //  No system CA either
    zstr_free (&ca);
}

static void
s_certs_fini (void)
{
    s_server_stop ();
    if (s_dir[0]) {
        char *cmd = zsys_sprintf ("rm -rf '%s'", s_dir);
        cr_assert_eq (system (cmd), 0);
        zstr_free (&cmd);
    }
}

static char *
s_pem (const char *name)
{
    return zsys_sprintf ("%s/%s.pem", s_dir, name);
}

//  --------------------------------------------------------------------------
//  The raw server's TLS: OpenSSL's server side, through dlopen like the
//  client's (no OpenSSL headers or link flags for the tests either).
//  civetweb's own TLS does not work here: Debian's civetweb 1.15 crashes
//  once a TLS handshake succeeds with OpenSSL 3 (see the report).

typedef struct {
    void *(*server_method) (void);
    void *(*ctx_new) (void *method);
    void (*ctx_free) (void *ctx);
    int (*use_chain) (void *ctx, const char *file);
    int (*use_key) (void *ctx, const char *file, int type);
    void *(*ssl_new) (void *ctx);
    void (*ssl_free) (void *ssl);
    int (*set_fd) (void *ssl, int fd);
    int (*accept) (void *ssl);
    int (*read) (void *ssl, void *buf, int num);
    int (*write) (void *ssl, const void *buf, int num);
} tls_api_t;

static tls_api_t s_tls;

static void *
s_sym (void *lib, const char *name)
{
    void *sym = dlsym (lib, name);
    cr_assert_not_null (sym, "libssl has %s", name);
    return sym;
}

static void
s_tls_load (void)
{
    void *lib = dlopen ("libssl.so.3", RTLD_NOW);
    cr_assert_not_null (lib);
#define S_LOAD(field, name) *(void **) &s_tls.field = s_sym (lib, name)
    S_LOAD (server_method, "TLS_server_method");
    S_LOAD (ctx_new, "SSL_CTX_new");
    S_LOAD (ctx_free, "SSL_CTX_free");
    S_LOAD (use_chain, "SSL_CTX_use_certificate_chain_file");
    S_LOAD (use_key, "SSL_CTX_use_PrivateKey_file");
    S_LOAD (ssl_new, "SSL_new");
    S_LOAD (ssl_free, "SSL_free");
    S_LOAD (set_fd, "SSL_set_fd");
    S_LOAD (accept, "SSL_accept");
    S_LOAD (read, "SSL_read");
    S_LOAD (write, "SSL_write");
#undef S_LOAD
}

//  --------------------------------------------------------------------------
//  A raw server on a thread: one connection, scripted

typedef struct {
    int listener;
    int port;
    bool bad_accept;  //  Answer the upgrade with a wrong accept
    const char *pem;  //  TLS with this certificate and key, if set
    void *ctx, *ssl;  //  Its SSL_CTX and SSL
    bool masked;      //  The client's frame was masked
    char got[64];     //  Its text, unmasked
    pthread_t thread;
} raw_t;

static ssize_t
s_raw_read (raw_t *raw, int fd, void *buf, size_t len)
{
    if (raw->ssl)
        return s_tls.read (raw->ssl, buf, (int) len);
    return read (fd, buf, len);
}

static ssize_t
s_raw_write (raw_t *raw, int fd, const void *buf, size_t len)
{
    if (raw->ssl)
        return s_tls.write (raw->ssl, buf, (int) len);
    return write (fd, buf, len);
}

static void
s_raw_close (raw_t *raw, int fd)
{
    if (raw->ssl)
        s_tls.ssl_free (raw->ssl);
    raw->ssl = NULL;
    close (fd);
}

static void *
s_raw_main (void *arg)
{
    raw_t *raw = (raw_t *) arg;
    int fd = accept (raw->listener, NULL, NULL);
    if (fd < 0)
        return NULL;
    if (raw->pem) {
        raw->ssl = s_tls.ssl_new (raw->ctx);
        s_tls.set_fd (raw->ssl, fd);
        if (s_tls.accept (raw->ssl) != 1) {
            s_raw_close (raw, fd);
            return NULL;
        }
    }
    char head[4096];
    size_t len = 0;
    while (len < sizeof (head) - 1) {
        ssize_t n = s_raw_read (raw, fd, head + len, sizeof (head) - 1 - len);
        if (n <= 0)
            break;
        len += (size_t) n;
        head[len] = 0;
        if (strstr (head, "\r\n\r\n"))
            break;
    }
    char key[64] = "", accept[29] = "";
    const char *at = strstr (head, "Sec-WebSocket-Key: ");
    if (at)
        sscanf (at + 19, "%63[^\r]", key);
    wsc_accept_for (key, accept);
    if (raw->bad_accept)
        accept[3] ^= 1;
    char reply[256];
    int n = snprintf (reply, sizeof (reply),
                      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                      "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n",
                      accept);
    if (s_raw_write (raw, fd, reply, (size_t) n) != n || raw->bad_accept) {
        usleep (200 * 1000);
        s_raw_close (raw, fd);
        return NULL;
    }
    //  One client frame (short, masked), echoed; then a drop.
    unsigned char frame[128];
    size_t got = 0;
    while (got < 6 || got < 6 + (size_t) (frame[1] & 0x7f)) {
        ssize_t r = s_raw_read (raw, fd, frame + got, sizeof (frame) - got);
        if (r <= 0)
            break;
        got += (size_t) r;
    }
    if (got >= 6) {
        raw->masked = (frame[1] & 0x80) != 0;
        size_t plen = frame[1] & 0x7f;
        for (size_t i = 0; i < plen && i < sizeof (raw->got) - 1 && 6 + i < got; i++)
            raw->got[i] = (char) (frame[6 + i] ^ frame[2 + (i & 3)]);
        unsigned char echo[2 + 64] = {0x81, (unsigned char) plen};
        memcpy (echo + 2, raw->got, plen);
        if (s_raw_write (raw, fd, echo, 2 + plen) < 0)
            perror ("raw server write");
    }
    usleep (50 * 1000);
    s_raw_close (raw, fd);  //  No close frame
    return NULL;
}

static void
s_raw_start (raw_t *raw)
{
    signal (SIGPIPE, SIG_IGN);
    if (raw->pem) {
        s_tls_load ();
        raw->ctx = s_tls.ctx_new (s_tls.server_method ());
        cr_assert_eq (s_tls.use_chain (raw->ctx, raw->pem), 1);
        cr_assert_eq (s_tls.use_key (raw->ctx, raw->pem, 1), 1);  //  SSL_FILETYPE_PEM
    }
    raw->listener = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    cr_assert_eq (bind (raw->listener, (struct sockaddr *) &sa, sizeof (sa)), 0);
    cr_assert_eq (listen (raw->listener, 4), 0);
    socklen_t sl = sizeof (sa);
    getsockname (raw->listener, (struct sockaddr *) &sa, &sl);
    raw->port = ntohs (sa.sin_port);
    pthread_create (&raw->thread, NULL, s_raw_main, raw);
}

static void
s_raw_stop (raw_t *raw)
{
    pthread_join (raw->thread, NULL);
    close (raw->listener);
    if (raw->ctx)
        s_tls.ctx_free (raw->ctx);
}

//  --------------------------------------------------------------------------
//  ssl_lazy

Test (ssl_lazy, hmac_sha256_rfc4231_case_2)
{
    static const unsigned char want[32] = {
        0x5b, 0xdc, 0xc1, 0x46, 0xbf, 0x60, 0x75, 0x4e, 0x6a, 0x04, 0x24,
        0x26, 0x08, 0x95, 0x75, 0xc7, 0x5a, 0x00, 0x3f, 0x08, 0x9d, 0x27,
        0x39, 0x83, 0x9d, 0xec, 0x58, 0xb9, 0x64, 0xec, 0x38, 0x43};
    unsigned char out[32];
    const char *data = "what do ya want for nothing?";
    cr_assert_eq (ssl_hmac_sha256 ("Jefe", 4, data, strlen (data), out), 0);
    cr_assert_arr_eq (out, want, 32);
    cr_assert_str_empty (ssl_error ());
}

Test (ssl_lazy, sha1_and_random)
{
    static const unsigned char want[20] = {0xa9, 0x99, 0x3e, 0x36, 0x47, 0x06, 0x81,
                                           0x6a, 0xba, 0x3e, 0x25, 0x71, 0x78, 0x50,
                                           0xc2, 0x6c, 0x9c, 0xd0, 0xd8, 0x9d};
    unsigned char out[20];
    cr_assert_eq (ssl_sha1 ("abc", 3, out), 0);
    cr_assert_arr_eq (out, want, 20);
    unsigned char a[32] = {0}, b[32] = {0};
    cr_assert_eq (ssl_random (a, sizeof (a)), 0);
    cr_assert_eq (ssl_random (b, sizeof (b)), 0);
    cr_assert_neq (memcmp (a, b, sizeof (a)), 0);
}

//  --------------------------------------------------------------------------
//  Pure parsers

Test (wsclient, accept_for_rfc_6455_example)
{
    char accept[29];
    cr_assert_eq (wsc_accept_for ("dGhlIHNhbXBsZSBub25jZQ==", accept), 0);
    cr_assert_str_eq (accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
}

Test (wsclient, parse_frame_verdicts)
{
    wsc_frame_t f;
    const unsigned char text[] = {0x81, 0x03, 'a', 'b', 'c'};
    cr_assert_eq (wsc_parse_frame (text, 5, 100, &f), 5);
    cr_assert (f.fin);
    cr_assert_eq (f.opcode, 1);
    cr_assert_eq (f.length, 3);
    cr_assert_eq (f.header, 2);
    cr_assert_eq (wsc_parse_frame (text, 4, 100, &f), 0, "need more");
    cr_assert_eq (wsc_parse_frame (text, 1, 100, &f), 0, "need more");
    const unsigned char rsv[] = {0xC1, 0x00};
    cr_assert_eq (wsc_parse_frame (rsv, 2, 100, &f), -1, "reserved bit");
    const unsigned char op3[] = {0x83, 0x00};
    cr_assert_eq (wsc_parse_frame (op3, 2, 100, &f), -1, "unknown opcode");
    const unsigned char masked[] = {0x81, 0x80, 1, 2, 3, 4};
    cr_assert_eq (wsc_parse_frame (masked, 6, 100, &f), -1, "masked server frame");
    const unsigned char ping_frag[] = {0x09, 0x00};
    cr_assert_eq (wsc_parse_frame (ping_frag, 2, 100, &f), -1, "fragmented control");
    const unsigned char ping_big[] = {0x89, 126, 0, 126};
    cr_assert_eq (wsc_parse_frame (ping_big, 4, 1000, &f), -1, "control over 125");
    const unsigned char big[] = {0x81, 127, 0, 0, 0, 1, 0, 0, 0, 0};
    cr_assert_eq (wsc_parse_frame (big, 10, 1000, &f), -2, "too big, header only");
    const unsigned char top[] = {0x81, 127, 0x80, 0, 0, 0, 0, 0, 0, 1};
    cr_assert_eq (wsc_parse_frame (top, 10, 1000, &f), -1, "64-bit length top bit");
    const unsigned char mid[] = {0x82, 126, 0x01, 0x00};
    cr_assert_eq (wsc_parse_frame (mid, 4, 1000, &f), 0, "256 bytes to come");
    cr_assert_eq (wsc_parse_frame (mid, 4, 255, &f), -2);
}

Test (wsclient, parse_upgrade_verdicts)
{
    const char *accept = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
    char err[128];
    const char *ok = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                     "Connection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n\x81";
    size_t len = strlen (ok);
    cr_assert_eq (wsc_parse_upgrade (ok, len, accept, err, sizeof (err)), (int) len - 1);
    cr_assert_eq (wsc_parse_upgrade (ok, len - 3, accept, err, sizeof (err)), 0);
    const char *e404 = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    cr_assert_eq (wsc_parse_upgrade (e404, strlen (e404), accept, err, sizeof (err)), -1);
    cr_assert_str_eq (err, "upgrade answered HTTP 404");
    const char *wrong = "HTTP/1.1 101 OK\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
                        "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOO=\r\n\r\n";
    cr_assert_eq (wsc_parse_upgrade (wrong, strlen (wrong), accept, err, sizeof (err)),
                  -1);
    cr_assert_str_eq (err, "upgrade answered a wrong Sec-WebSocket-Accept");
    char *huge = (char *) calloc (1, WSC_MAX_HEAD + 10);
    memset (huge, 'a', WSC_MAX_HEAD + 9);
    cr_assert_eq (wsc_parse_upgrade (huge, WSC_MAX_HEAD + 9, accept, err, sizeof (err)),
                  -1);
    free (huge);
}

//  --------------------------------------------------------------------------
//  ws:// against civetweb

Test (wsclient, open_send_and_echo, .fini = s_server_stop)
{
    s_server_start ();
    rec_t r = {.send_on_open = "hello, server", .want_texts = 1};
    char *url = s_url ("ws", "127.0.0.1", "/echo?ticket=secret");
    s_run (url, NULL, &r);
    zstr_free (&url);
    cr_assert_eq (r.opened, 1);
    cr_assert_eq (r.ntexts, 1);
    cr_assert_str_eq (r.texts[0], "hello, server");
    cr_assert_eq (r.lens[0], 13);
}

Test (wsclient, fragments_reassembled_around_a_ping, .fini = s_server_stop)
{
    s_server_start ();
    rec_t r = {.want_texts = 1};
    char *url = s_url ("ws", "127.0.0.1", "/frag");
    s_run (url, NULL, &r);
    zstr_free (&url);
    cr_assert_eq (r.ntexts, 1);
    cr_assert_str_eq (r.texts[0], "Hello, world");
}

Test (wsclient, ping_answered_with_pong, .fini = s_server_stop)
{
    s_server_start ();
    rec_t r = {.want_texts = 1};
    char *url = s_url ("ws", "127.0.0.1", "/ping");
    s_run (url, NULL, &r);
    zstr_free (&url);
    cr_assert_eq (r.ntexts, 1);
    cr_assert_str_eq (r.texts[0], "pong:hi!");
    pthread_mutex_lock (&s_server.lock);
    cr_assert_str_eq (s_server.pong, "hi!");
    pthread_mutex_unlock (&s_server.lock);
}

Test (wsclient, server_close_code_and_reason, .fini = s_server_stop)
{
    s_server_start ();
    rec_t r = {0};
    char *url = s_url ("ws", "127.0.0.1", "/close");
    s_run (url, NULL, &r);
    zstr_free (&url);
    cr_assert_eq (r.opened, 1);
    cr_assert (r.closed);
    cr_assert_eq (r.code, 4004);
    cr_assert_str_eq (r.reason, "gone for test");
    usleep (100 * 1000);
    pthread_mutex_lock (&s_server.lock);
    cr_assert_eq (s_server.client_close, 4004, "the client echoed the close");
    pthread_mutex_unlock (&s_server.lock);
}

Test (wsclient, client_close_answered, .fini = s_server_stop)
{
    s_server_start ();
    rec_t r = {.close_on_open = 4321};
    char *url = s_url ("ws", "127.0.0.1", "/echo");
    s_run (url, NULL, &r);
    zstr_free (&url);
    cr_assert (r.closed);
    cr_assert_eq (r.code, 4321);
    pthread_mutex_lock (&s_server.lock);
    cr_assert_eq (s_server.client_close, 4321);
    pthread_mutex_unlock (&s_server.lock);
}

Test (wsclient, oversized_message_1009, .fini = s_server_stop)
{
    s_server_start ();
    wsc_opts_t opts = {.max_message = 100};
    rec_t r = {0};
    char *url = s_url ("ws", "127.0.0.1", "/big");
    s_run (url, &opts, &r);
    zstr_free (&url);
    cr_assert_eq (r.code, 1009);
    cr_assert_eq (r.ntexts, 0);
    rec_t r2 = {0};
    url = s_url ("ws", "127.0.0.1", "/bigfrag");
    s_run (url, &opts, &r2);
    zstr_free (&url);
    cr_assert_eq (r2.code, 1009, "fragments add up over max_message");
    cr_assert_eq (r2.ntexts, 0);
}

Test (wsclient, idle_timeout, .fini = s_server_stop)
{
    s_server_start ();
    wsc_opts_t opts = {.idle_timeout_ms = 300};
    rec_t r = {0};
    char *url = s_url ("ws", "127.0.0.1", "/silent");
    int64_t start = zclock_mono ();
    s_run (url, &opts, &r);
    zstr_free (&url);
    cr_assert_eq (r.opened, 1);
    cr_assert_eq (r.code, 1006);
    cr_assert_str_eq (r.reason, "no data for 0.3 s");
    cr_assert_geq (r.closed_at - start, 300);
    cr_assert_lt (r.closed_at - start, 2000);
}

Test (wsclient, pings_keep_an_idle_connection, .fini = s_server_stop)
{
    //  The server answers our pings: the pongs are data, so no idle close.
    s_server_start ();
    wsc_opts_t opts = {.idle_timeout_ms = 400, .ping_interval_ms = 100};
    rec_t r = {0};
    char *url = s_url ("ws", "127.0.0.1", "/silent");
    zloop_t *loop = zloop_new ();
    r.ws = wsc_connect (loop, url, &opts, s_on_event, &r);
    zloop_timer (loop, 5, 0, s_check_done, &r);
    zloop_timer (loop, 1000, 1, s_give_up, NULL);
    zloop_start (loop);
    cr_assert_eq (r.opened, 1);
    cr_assert_not (r.closed, "%d %s", r.code, r.reason);
    pthread_mutex_lock (&s_server.lock);
    cr_assert_geq (s_server.pings, 5);
    pthread_mutex_unlock (&s_server.lock);
    wsc_destroy (&r.ws);
    zloop_destroy (&loop);
    zstr_free (&url);
}

Test (wsclient, destroy_inside_the_callback, .fini = s_server_stop)
{
    s_server_start ();
    rec_t r = {.destroy = true, .destroy_on = WSC_OPEN, .send_on_open = "x"};
    char *url = s_url ("ws", "127.0.0.1", "/frag");
    s_run (url, NULL, &r);
    cr_assert_eq (r.opened, 1);
    cr_assert_null (r.ws);
    rec_t r2 = {.destroy = true, .destroy_on = WSC_TEXT};
    s_run (url, NULL, &r2);
    cr_assert_eq (r2.ntexts, 1);
    rec_t r3 = {.destroy = true, .destroy_on = WSC_CLOSED};
    zstr_free (&url);
    url = s_url ("ws", "127.0.0.1", "/close");
    s_run (url, NULL, &r3);
    cr_assert_eq (r3.code, 4004);
    zstr_free (&url);
}

//  --------------------------------------------------------------------------
//  Failures before open, and a raw server

Test (wsclient, connect_refused_1006)
{
    int fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    cr_assert_eq (bind (fd, (struct sockaddr *) &sa, sizeof (sa)), 0);
    socklen_t sl = sizeof (sa);
    getsockname (fd, (struct sockaddr *) &sa, &sl);
    close (fd);
    char *url = zsys_sprintf ("ws://127.0.0.1:%d/", ntohs (sa.sin_port));
    rec_t r = {0};
    s_run (url, NULL, &r);
    zstr_free (&url);
    cr_assert_eq (r.opened, 0);
    cr_assert_eq (r.code, 1006);
    cr_assert_str_eq (r.reason, "connection refused");
}

Test (wsclient, urls_refused)
{
    zloop_t *loop = zloop_new ();
    rec_t r = {0};
    const char *bad[] = {"http://x/",     "ws://",     "ws:///path", "ws://h:0/",
                         "ws://h:99999/", "ws://u@h/", "ws://h:x/",  "ws://[::1/",
                         "ws://h/a b",    NULL};
    for (int i = 0; bad[i]; i++)
        cr_assert_null (wsc_connect (loop, bad[i], NULL, s_on_event, &r), "%s", bad[i]);
    zloop_destroy (&loop);
}

Test (wsclient, wrong_accept_fails)
{
    raw_t raw = {.bad_accept = true};
    s_raw_start (&raw);
    char *url = zsys_sprintf ("ws://127.0.0.1:%d/", raw.port);
    rec_t r = {0};
    s_run (url, NULL, &r);
    zstr_free (&url);
    s_raw_stop (&raw);
    cr_assert_eq (r.opened, 0);
    cr_assert_eq (r.code, 1006);
    cr_assert_str_eq (r.reason, "upgrade answered a wrong Sec-WebSocket-Accept");
}

Test (wsclient, drop_without_close_1006_and_frames_masked)
{
    raw_t raw = {0};
    s_raw_start (&raw);
    char *url = zsys_sprintf ("ws://127.0.0.1:%d/", raw.port);
    rec_t r = {.send_on_open = "masked text"};
    s_run (url, NULL, &r);
    zstr_free (&url);
    s_raw_stop (&raw);
    cr_assert_eq (r.opened, 1);
    cr_assert (raw.masked);
    cr_assert_str_eq (raw.got, "masked text");
    cr_assert_eq (r.ntexts, 1);
    cr_assert_str_eq (r.texts[0], "masked text");
    cr_assert_eq (r.code, 1006);
}

Test (wsclient, dns_failure_1006)
{
    rec_t r = {0};
    s_run ("ws://no-such-host.invalid/", NULL, &r);
    cr_assert_eq (r.code, 1006);
    cr_assert (strncmp (r.reason, "DNS: ", 5) == 0, "%s", r.reason);
}

//  --------------------------------------------------------------------------
//  wss://

TestSuite (wss, .init = s_certs_init, .fini = s_certs_fini);

//  Connects to host over TLS against a raw server with the certificate
//  name; the client sends a text and expects it back.
static void
s_wss (const char *name, const char *host, rec_t *r)
{
    char *pem = s_pem (name);
    raw_t raw = {.pem = pem};
    s_raw_start (&raw);
    char *url = zsys_sprintf ("wss://%s:%d/echo", host, raw.port);
    r->send_on_open = "over TLS";
    r->want_texts = 1;
    s_run (url, NULL, r);
    zstr_free (&url);
    s_raw_stop (&raw);
    zstr_free (&pem);
    if (r->opened)
        cr_assert_str_eq (raw.got, "over TLS");
}

Test (wss, right_ca_by_address_and_by_name)
{
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (int i = 0; i < 2; i++) {
        rec_t r = {0};
        s_wss ("good", hosts[i], &r);
        cr_assert_eq (r.opened, 1, "%s: %d %s", hosts[i], r.code, r.reason);
        cr_assert_str_eq (r.texts[0], "over TLS");
    }
}

Test (wss, other_ca_fails)
{
    rec_t r = {0};
    s_wss ("stranger", "127.0.0.1", &r);
    cr_assert_eq (r.opened, 0);
    cr_assert_eq (r.code, 1006);
    cr_assert (strstr (r.reason, "TLS: certificate verify failed"), "%s", r.reason);
}

Test (wss, host_name_mismatch_fails)
{
    const char *hosts[] = {"127.0.0.1", "localhost"};
    for (int i = 0; i < 2; i++) {
        rec_t r = {0};
        s_wss ("misnamed", hosts[i], &r);
        cr_assert_eq (r.opened, 0, "%s", hosts[i]);
        cr_assert_eq (r.code, 1006);
        cr_assert (strstr (r.reason, "TLS: certificate verify failed"), "%s: %s",
                   hosts[i], r.reason);
    }
}
