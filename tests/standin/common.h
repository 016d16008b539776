/*  =========================================================================
    common - what the stand-ins under tests/standin share

    The stand-ins (cg_standin for the model providers, cg_tgstandin,
    cg_dcstandin, cg_slackstandin and cg_wastandin for the chat platforms)
    are civetweb servers on loopback that block SIGINT/SIGTERM for sigwait,
    print "listening on 127.0.0.1:PORT" once they listen, and, for their
    fault knobs that hang up or hold a call, need the socket of a request,
    which civetweb does not hand out.  The chat platforms' also share how
    they answer JSON, read a body, and keep a state file.
    =========================================================================
*/
#ifndef CG_STANDIN_COMMON_H
#define CG_STANDIN_COMMON_H

#include <cjson/cJSON.h>
#include <civetweb.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

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

//  ---- Answers --------------------------------------------------------------

//  Sends body (NULL: "{}") with status and Content-Type type; extra is more
//  header lines ("K: V\r\n") or NULL.  The Connection header follows
//  civetweb's keep-alive rule (it also closes after any 401), so it tells
//  the truth.  Returns status.
int
standin_send (struct mg_connection *conn, int status, const char *type, const char *extra,
              const char *body);

//  standin_send with root printed as the body; deletes root.
int
standin_send_root (struct mg_connection *conn, int status, const char *type,
                   const char *extra, cJSON *root);

//  A control API error: {"error":error} as application/json.
int
standin_control_error (struct mg_connection *conn, int status, const char *error);

//  ---- Requests -------------------------------------------------------------

//  Reads the request body (NUL ended).  Returns 0, or -1 on error or when
//  it is larger than max.  Caller owns *body.
int
standin_read_body (struct mg_connection *conn, size_t max, char **body, size_t *len);

//  Adds the name=value pairs of a urlencoded text (query string or form
//  body) to params as strings, each replacing one of the same name.
void
standin_add_form (cJSON *params, const char *text, size_t len);

//  Holds the call ms milliseconds (ms < 0: until stopping), waking every
//  slice_ms to look at stopping.  *fd caches the request's socket on
//  port (found on first use).  Returns -1 as soon as the client hangs up,
//  else 0.  A pipelined request does not end the wait.
int
standin_pause (struct mg_connection *conn, int port, int *fd, atomic_bool *stopping,
               int ms, int slice_ms);

//  Shuts the request's socket on port down both ways (*fd as above).
void
standin_hang_up (struct mg_connection *conn, int port, int *fd);

//  ---- State file -----------------------------------------------------------

//  Writes root (deleted here) to path through path.tmp and a rename, so a
//  kill leaves the old file or the new one.  On failure prints
//  "<name>: cannot write <path>: <why>".
void
standin_save_json (const char *name, const char *path, cJSON *root);

//  Reads path as JSON into *root.  Returns 0 (*root NULL when there is no
//  such file), or -1 when it cannot be read or parsed.  Caller owns *root.
int
standin_load_json (const char *path, cJSON **root);

#endif
