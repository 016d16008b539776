/*  =========================================================================
    fuzz_wsclient - a WebSocket server's bytes as actors/channels/wsclient.c
    reads them: frames (wsc_parse_frame) and the upgrade's answer
    (wsc_parse_upgrade)

    The first byte chooses: even, a stream of frames with a size bound
    from the next two bytes (0 to 65535), parsed one after the other as
    the client does; odd, the head of an upgrade answer.  Promises
    checked, for a frame: a size only once it is all there (header plus
    payload, within the input and the bound; a known opcode; a control
    frame final and at most 125 bytes), and "need more" for every shorter
    prefix of it; -2 only over the bound.  For a head: its size ends with
    the blank line and lies within the input and WSC_MAX_HEAD; a refusal
    comes with a sentence; "need more" only below WSC_MAX_HEAD.
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "wsclient.h"

static void
s_frames (const unsigned char *buf, size_t len, size_t max)
{
    size_t at = 0;
    while (at < len) {
        wsc_frame_t f;
        int rc = wsc_parse_frame (buf + at, len - at, max, &f);
        FUZZ_CHECK (rc >= -2);
        if (rc == -2)
            FUZZ_CHECK (f.length > max);
        if (rc <= 0)
            return;
        FUZZ_CHECK ((size_t) rc <= len - at);
        FUZZ_CHECK (f.header == 2 || f.header == 4 || f.header == 10);
        FUZZ_CHECK ((uint64_t) rc == f.header + f.length);
        FUZZ_CHECK (f.length <= max);
        FUZZ_CHECK (f.opcode <= 2 || (f.opcode >= 8 && f.opcode <= 10));
        if (f.opcode >= 8)
            FUZZ_CHECK (f.fin && f.length <= 125);
        //  Every shorter prefix of a whole frame needs more bytes.
        wsc_frame_t g;
        FUZZ_CHECK (wsc_parse_frame (buf + at, (size_t) rc - 1, max, &g) == 0);
        at += (size_t) rc;
    }
}

static void
s_upgrade (const char *buf, size_t len)
{
    char err[128] = "";
    int rc =
        wsc_parse_upgrade (buf, len, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", err, sizeof (err));
    if (rc > 0) {
        FUZZ_CHECK ((size_t) rc <= len && rc <= WSC_MAX_HEAD && rc >= 4);
        FUZZ_CHECK (memcmp (buf + rc - 4, "\r\n\r\n", 4) == 0);
    }
    else if (rc < 0)
        FUZZ_CHECK (rc == -1 && err[0] != 0);
    else
        FUZZ_CHECK (len < WSC_MAX_HEAD);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t mode = fuzz_take (&data, &size);
    if (mode & 1) {
        char *head = (char *) fuzz_copy (data, size);
        if (!head)
            return 0;
        s_upgrade (head, size);
        free (head);
        return 0;
    }
    size_t max = fuzz_take (&data, &size);
    max = max << 8 | fuzz_take (&data, &size);
    unsigned char *buf = (unsigned char *) fuzz_copy (data, size);
    if (!buf)
        return 0;
    s_frames (buf, size, max);
    free (buf);
    return 0;
}
