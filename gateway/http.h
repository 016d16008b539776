/*  =========================================================================
    http - one request's context and the JSON responses of docs/errors.md

    An http_req_t lives on the stack of the civetweb thread serving the
    request; nothing in it may be kept past the handler's return.
    =========================================================================
*/
#ifndef CG_HTTP_H
#define CG_HTTP_H

#include <civetweb.h>
#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>

#include "auth.h"
#include "config.h"
#include "bus_front.h"
#include "run_check.h"

typedef struct server_t server_t;

typedef struct {
    struct mg_connection *conn;        //  civetweb connection
    const struct mg_request_info *ri;  //  Its request line and headers
    const cg_config_t *config;         //  Read only
    server_t *server;                  //  The front that serves us
    bus_front_t *bus;                  //  This thread's broker socket
    auth_ctx_t auth;                   //  Who is asking
    char *body;                        //  Request body, NUL-terminated (owned)
    size_t body_len;                   //  Its length
    int status;                        //  Status sent, for the log
    bool close;                        //  Close the connection after this
    char *stream_head;                 //  Stream head not yet sent (owned)
    size_t stream_head_len;
    const char *limit_headers;  //  Header lines every response of
                                //  this request carries (the
                                //  X-RateLimit-* set), or NULL; lent
} http_req_t;

//  Sends body (len bytes) as application/json with status.  extra_headers
//  are whole "Name: value\r\n" lines, or NULL.  Returns status.
int
http_send_raw (http_req_t *r, int status, const char *body, size_t len,
               const char *extra_headers);

//  Sends body (len bytes) as text/plain with status.  Returns status.
int
http_send_text (http_req_t *r, int status, const char *body, size_t len);

//  Marks the connection to be closed after this response (the rest of a
//  refused body will never be read).
void
http_close (http_req_t *r);

//  Starts a chunked text/event-stream response.  The head is held back and
//  sent in the same write as the first chunk (one packet, not two).
void
http_stream_begin (http_req_t *r);

//  Sends len bytes as one chunk, in one write; len 0 ends the stream.
//  Returns false if the client is gone.
bool
http_stream_chunk (http_req_t *r, const char *data, size_t len);

//  Writes one server-sent event, "event: <event>\n" (none if event is
//  NULL) and "data: <data>\n\n", as one chunk.  *pending, a frame held
//  back (or NULL), goes first in the same write and is freed.  Returns
//  false if the client is gone.
bool
http_sse_write_after (http_req_t *r, char **pending, const char *event, const char *data);

//  The same with nothing held back.
bool
http_sse_write (http_req_t *r, const char *event, const char *data);

//  Serialises json as the event's data; takes json (cJSON_Delete).
bool
http_sse_json_after (http_req_t *r, char **pending, const char *event, cJSON *json);

bool
http_sse_json (http_req_t *r, const char *event, cJSON *json);

//  Ends the stream (the last, empty chunk).
void
http_sse_end (http_req_t *r);

//  Serialises json (not consumed) and sends it.  Returns status.
int
http_send_json (http_req_t *r, int status, const cJSON *json);

//  Sends {"error":{code,message,type,param}} (schemas/error.h builds the
//  object; type follows from status).  param may be NULL.  Returns status.
int
http_send_error (http_req_t *r, int status, const char *code, const char *message,
                 const char *param);

//  Same, with extra header lines.
int
http_send_error_h (http_req_t *r, int status, const char *code, const char *message,
                   const char *param, const char *extra_headers);

//  Sends an ERROR reply that came back over the bus as the HTTP error it
//  describes.  Returns status.
int
http_send_bus_error (http_req_t *r, const bus_msg_t *reply);

//  Sends a reply from the bus as the HTTP response: an ERROR as the error
//  it describes, a 200 body as its JSON mapping (500 naming `from` if it
//  is not an object).  Does not free reply.  Returns the status sent.
int
http_send_bus_reply (http_req_t *r, const bus_msg_t *reply, const char *from);

//  Reads the whole body into r->body, refusing (413) anything over the
//  configured limit.  Returns 0, or the status of the error response it
//  sent.
int
http_read_body (http_req_t *r);

//  Sends 413 for a body over the limit, then reads and discards what the
//  client goes on sending, within a bound of time and bytes, so that a
//  client that writes all before it reads still reads the 413; the
//  connection then closes.  Returns 413.
int
http_send_too_large (http_req_t *r);

//  Parses r->body as a JSON object.  Returns it (caller owns, cJSON_Delete)
//  or NULL after sending 400 (malformed JSON, broken UTF-8, not an object).
cJSON *
http_parse_json (http_req_t *r);

//  Parses text[len] as one JSON object through json_in (the pure part of
//  http_parse_json).  Returns the object (caller owns, cJSON_Delete), or
//  NULL with a sentence for the client in msg: empty, NUL, broken UTF-8,
//  nested deeper than 128, malformed, trailing data, or not an object.
cJSON *
http_json_object (const char *text, size_t len, char *msg, size_t cap);

//  The agents and models cfg (lent; it must outlive the catalog) names, as
//  run_check and run_call ask for them.
run_catalog_t
http_run_catalog (const cg_config_t *cfg);

#endif
