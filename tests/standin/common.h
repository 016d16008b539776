/*  =========================================================================
    common - what the stand-ins under tests/standin share

    Both stand-ins (cg_standin for the model providers, cg_tgstandin for
    Telegram) are civetweb servers on loopback that block SIGINT/SIGTERM
    for sigwait, print "listening on 127.0.0.1:PORT" once they listen, and,
    for their fault knobs that hang up or hold a call, need the socket of a
    request, which civetweb does not hand out.
    =========================================================================
*/
#ifndef CG_STANDIN_COMMON_H
#define CG_STANDIN_COMMON_H

#include <civetweb.h>
#include <signal.h>

//  Blocks SIGINT and SIGTERM in this thread and those it starts (civetweb's
//  inherit the mask, so only sigwait on the returned set sees them) and
//  ignores SIGPIPE.
sigset_t
standin_signals (void);

//  Starts civetweb with options (name, value pairs, NULL-terminated), user
//  for its handlers, and one handler for every path.  On failure prints
//  "<name>: cannot listen on <ports>: <why>" and returns NULL.  *port gets
//  the port bound (for a listening_ports of port 0).  Caller owns the
//  return value (mg_stop it, then mg_exit_library).
struct mg_context *
standin_listen (const char *name, const char **options, void *user,
                mg_request_handler handler, int *port);

//  The socket of conn: the one whose local port is port and whose peer is
//  this request's client.  -1 if none.
int
standin_socket (struct mg_connection *conn, int port);

#endif
