/*  =========================================================================
    common - what the stand-ins share (see the header)
    =========================================================================
*/
#include "common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

sigset_t
standin_signals (void)
{
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    signal (SIGPIPE, SIG_IGN);
    return signals;
}

struct mg_context *
standin_listen (const char *name, const char **options, void *user,
                mg_request_handler handler, int *port)
{
    struct mg_callbacks callbacks;
    memset (&callbacks, 0, sizeof (callbacks));
    struct mg_init_data init = {&callbacks, user, options};
    char cw_err[256] = "";
    unsigned code = 0;
    struct mg_error_data error = {&code, cw_err, sizeof (cw_err)};
    mg_init_library (0);
    struct mg_context *ctx = mg_start2 (&init, &error);
    if (!ctx) {
        const char *ports = "?";
        for (int i = 0; options[i] && options[i + 1]; i += 2)
            if (!strcmp (options[i], "listening_ports"))
                ports = options[i + 1];
        fprintf (stderr, "%s: cannot listen on %s: %s\n", name, ports,
                 cw_err[0] ? cw_err : "civetweb failed to start");
        mg_exit_library ();
        return NULL;
    }
    struct mg_server_port sp[4];
    if (mg_get_server_ports (ctx, 4, sp) > 0)
        *port = sp[0].port;
    mg_set_request_handler (ctx, "/", handler, user);
    return ctx;
}

int
standin_socket (struct mg_connection *conn, int port)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return -1;
    int found = -1;
    struct dirent *entry;
    while (found < 0 && (entry = readdir (dir)) != NULL) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        int fd = atoi (entry->d_name);
        struct sockaddr_storage local, peer;
        socklen_t local_len = sizeof (local), peer_len = sizeof (peer);
        if (getsockname (fd, (struct sockaddr *) &local, &local_len) != 0
            || getpeername (fd, (struct sockaddr *) &peer, &peer_len) != 0)
            continue;
        char addr[INET6_ADDRSTRLEN] = "";
        int local_port = -1, peer_port = -1;
        if (local.ss_family == AF_INET && peer.ss_family == AF_INET) {
            struct sockaddr_in *l = (struct sockaddr_in *) &local;
            struct sockaddr_in *p = (struct sockaddr_in *) &peer;
            local_port = ntohs (l->sin_port);
            peer_port = ntohs (p->sin_port);
            inet_ntop (AF_INET, &p->sin_addr, addr, sizeof (addr));
        }
        else if (local.ss_family == AF_INET6 && peer.ss_family == AF_INET6) {
            struct sockaddr_in6 *l = (struct sockaddr_in6 *) &local;
            struct sockaddr_in6 *p = (struct sockaddr_in6 *) &peer;
            local_port = ntohs (l->sin6_port);
            peer_port = ntohs (p->sin6_port);
            inet_ntop (AF_INET6, &p->sin6_addr, addr, sizeof (addr));
        }
        if (local_port == port && peer_port == ri->remote_port
            && strcmp (addr, ri->remote_addr) == 0)
            found = fd;
    }
    closedir (dir);
    return found;
}

//  ---- Answers --------------------------------------------------------------

static bool
s_keep_alive (struct mg_connection *conn, int status)
{
    if (status == 401)
        return false;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *header = mg_get_header (conn, "Connection");
    if (header)
        return strcasestr (header, "keep-alive") != NULL;
    return ri->http_version && strcmp (ri->http_version, "1.1") == 0;
}

int
standin_send (struct mg_connection *conn, int status, const char *type, const char *extra,
              const char *body)
{
    if (!body)
        body = "{}";
    size_t len = strlen (body);
    mg_printf (conn,
               "HTTP/1.1 %d %s\r\n"
               "Content-Type: %s\r\n"
               "Content-Length: %zu\r\n"
               "%s"
               "Connection: %s\r\n"
               "\r\n",
               status, mg_get_response_code_text (conn, status), type, len,
               extra ? extra : "", s_keep_alive (conn, status) ? "keep-alive" : "close");
    mg_write (conn, body, len);
    return status;
}

int
standin_send_root (struct mg_connection *conn, int status, const char *type,
                   const char *extra, cJSON *root)
{
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    status = standin_send (conn, status, type, extra, text);
    cJSON_free (text);
    return status;
}

int
standin_control_error (struct mg_connection *conn, int status, const char *error)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "error", error);
    return standin_send_root (conn, status, "application/json", NULL, root);
}

//  ---- Requests -------------------------------------------------------------

int
standin_read_body (struct mg_connection *conn, size_t max, char **body, size_t *len)
{
    size_t cap = 4096, have = 0;
    char *data = malloc (cap);
    if (!data)
        return -1;
    while (true) {
        if (have + 1 >= cap) {
            if (cap >= max) {
                free (data);
                return -1;
            }
            char *grown = realloc (data, cap * 2);
            if (!grown) {
                free (data);
                return -1;
            }
            data = grown;
            cap *= 2;
        }
        int got = mg_read (conn, data + have, cap - 1 - have);
        if (got < 0) {
            free (data);
            return -1;
        }
        if (got == 0)
            break;
        have += (size_t) got;
    }
    data[have] = 0;
    *body = data;
    *len = have;
    return 0;
}

//  Adds the pairs of a urlencoded text (query string or form body) to
//  params, as strings.
void
standin_add_form (cJSON *params, const char *text, size_t len)
{
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *amp = memchr (p, '&', (size_t) (end - p));
        const char *stop = amp ? amp : end;
        const char *eq = memchr (p, '=', (size_t) (stop - p));
        if (eq && eq > p) {
            int key_len = (int) (eq - p), value_len = (int) (stop - eq - 1);
            char *key = malloc ((size_t) key_len + 1);
            char *value = malloc ((size_t) value_len + 1);
            if (key && value && mg_url_decode (p, key_len, key, key_len + 1, 1) >= 0
                && mg_url_decode (eq + 1, value_len, value, value_len + 1, 1) >= 0) {
                cJSON_DeleteItemFromObject (params, key);
                cJSON_AddStringToObject (params, key, value);
            }
            free (key);
            free (value);
        }
        p = stop + 1;
    }
}

static long long
s_mono_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int
standin_pause (struct mg_connection *conn, int port, int *fd, atomic_bool *stopping,
               int ms, int slice_ms)
{
    if (*fd < 0)
        *fd = standin_socket (conn, port);
    long long deadline = s_mono_ms () + ms;
    short events = POLLIN | POLLRDHUP;
    while (!atomic_load (stopping)) {
        long long left = ms < 0 ? slice_ms : deadline - s_mono_ms ();
        if (left > slice_ms)
            left = slice_ms;
        if (left < 0)
            left = 0;
        if (*fd < 0) {
            if (left == 0)
                return 0;
            usleep ((useconds_t) left * 1000);
            continue;
        }
        struct pollfd item = {*fd, events, 0};
        int rc = poll (&item, 1, (int) left);
        if (rc > 0 && (item.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL)))
            return -1;
        if (rc > 0 && (item.revents & POLLIN)) {
            char byte;
            ssize_t got = recv (*fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (got == 0
                || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
                return -1;
            //  A pipelined request: from now on only a hang-up wakes us.
            events = POLLRDHUP;
        }
        if (left == 0 && ms >= 0)
            return 0;
    }
    return 0;
}

void
standin_hang_up (struct mg_connection *conn, int port, int *fd)
{
    if (*fd < 0)
        *fd = standin_socket (conn, port);
    if (*fd >= 0)
        shutdown (*fd, SHUT_RDWR);
}

//  ---- State file -----------------------------------------------------------

void
standin_save_json (const char *name, const char *path, cJSON *root)
{
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    if (!text)
        return;
    char tmp[1100];
    snprintf (tmp, sizeof (tmp), "%s.tmp", path);
    FILE *f = fopen (tmp, "w");
    if (f) {
        bool ok = fputs (text, f) >= 0;
        ok = fflush (f) == 0 && ok;
        ok = fsync (fileno (f)) == 0 && ok;
        ok = fclose (f) == 0 && ok;
        if (!ok || rename (tmp, path) != 0)
            fprintf (stderr, "%s: cannot write %s: %s\n", name, path, strerror (errno));
    }
    cJSON_free (text);
}

int
standin_load_json (const char *path, cJSON **root)
{
    *root = NULL;
    FILE *f = fopen (path, "r");
    if (!f)
        return errno == ENOENT ? 0 : -1;
    char *text = NULL;
    size_t len = 0, cap = 0;
    char chunk[65536];
    size_t n;
    while ((n = fread (chunk, 1, sizeof (chunk), f)) > 0) {
        if (len + n + 1 > cap) {
            cap = (len + n + 1) * 2;
            char *grown = realloc (text, cap);
            if (!grown) {
                free (text);
                fclose (f);
                return -1;
            }
            text = grown;
        }
        memcpy (text + len, chunk, n);
        len += n;
    }
    fclose (f);
    *root = text ? cJSON_ParseWithLength (text, len) : NULL;
    free (text);
    return *root ? 0 : -1;
}
