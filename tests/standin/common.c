/*  =========================================================================
    common - what the stand-ins share (see the header)
    =========================================================================
*/
#include "common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

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
