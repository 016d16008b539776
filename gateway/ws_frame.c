/*  =========================================================================
    ws_frame - a WebSocket frame as it goes on the wire (see ws_frame.h)
    =========================================================================
*/
#include "ws_frame.h"

#include "msg.h"

#include <civetweb.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

ws_frame_t *
ws_frame_new (int opcode, const char *data, size_t len)
{
    if (opcode == MG_WEBSOCKET_OPCODE_TEXT)
        msg_check_frame (data, len);  //  Checked builds: as declared
    ws_frame_t *f = (ws_frame_t *) malloc (sizeof (ws_frame_t) + 10 + len + 1);
    if (!f)
        return NULL;
    atomic_init (&f->refs, 1);
    f->opcode = opcode;
    f->len = len;
    unsigned char *h = (unsigned char *) f->wire;
    size_t hdr;
    h[0] = (unsigned char) (0x80 | (opcode & 0x0f));
    if (len < 126) {
        h[1] = (unsigned char) len;
        hdr = 2;
    }
    else if (len < 65536) {
        h[1] = 126;
        h[2] = (unsigned char) (len >> 8);
        h[3] = (unsigned char) len;
        hdr = 4;
    }
    else {
        h[1] = 127;
        for (int i = 0; i < 8; i++)
            h[2 + i] = (unsigned char) ((uint64_t) len >> (56 - 8 * i));
        hdr = 10;
    }
    memcpy (f->wire + hdr, data, len);
    f->wire[hdr + len] = 0;
    f->wire_len = hdr + len;
    return f;
}

ws_frame_t *
ws_frame_text (const char *text)
{
    return ws_frame_new (MG_WEBSOCKET_OPCODE_TEXT, text, strlen (text));
}

ws_frame_t *
ws_frame_json (const cJSON *json)
{
    char *text = cJSON_PrintUnformatted (json);
    ws_frame_t *f = text ? ws_frame_text (text) : NULL;
    cJSON_free (text);
    return f;
}

void
ws_frame_ref (ws_frame_t *f)
{
    atomic_fetch_add (&f->refs, 1);
}

void
ws_frame_unref (ws_frame_t *f)
{
    if (f && atomic_fetch_sub (&f->refs, 1) == 1)
        free (f);
}
