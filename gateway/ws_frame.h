/*  =========================================================================
    ws_frame - a WebSocket frame as it goes on the wire, reference-counted
    and shared by every client that gets it

    The frame is kept as it goes on the wire (RFC 6455 section 5.2: FIN and
    opcode, the length, then the payload; a server's frames are not
    masked), so a writer sends it in one write, and a fan-out to N clients
    builds it once.  (mg_websocket_write makes two writes of every frame:
    its header, then its payload.)  Any thread: the count is atomic.
    =========================================================================
*/
#ifndef CG_WS_FRAME_H
#define CG_WS_FRAME_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stddef.h>

typedef struct {
    atomic_int refs;
    int opcode;       //  MG_WEBSOCKET_OPCODE_*
    size_t len;       //  Payload bytes
    size_t wire_len;  //  Header and payload bytes
    char wire[];      //  Header, payload, NUL
} ws_frame_t;

//  A frame of opcode carrying data[len].  Caller owns the return value
//  (one reference); NULL if out of memory.
ws_frame_t *
ws_frame_new (int opcode, const char *data, size_t len);

//  A text frame of text (NUL-terminated).  Caller owns the return value.
ws_frame_t *
ws_frame_text (const char *text);

//  json serialised into a text frame (json is not consumed).  Caller owns
//  the return value.
ws_frame_t *
ws_frame_json (const cJSON *json);

//  Takes one more reference.
void
ws_frame_ref (ws_frame_t *f);

//  Drops one reference (NULL is ignored); the last frees the frame.
void
ws_frame_unref (ws_frame_t *f);

#endif
