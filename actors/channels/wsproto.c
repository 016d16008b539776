/*  =========================================================================
    wsproto - the WebSocket wire as the client reads and writes it (RFC
    6455): server frame headers, the answer to the upgrade, the accept key.
    Pure functions, no I/O: wsclient.c drives them, and the fuzz target
    tests/fuzz/fuzz_wsclient.c too.  Declared in wsclient.h.
    =========================================================================
*/
#include "wsclient.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ssl_lazy.h"

#define S_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

static const char s_b64[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

void
wsc_base64 (const unsigned char *src, size_t len, char *dst)
{
    size_t i = 0;
    for (; i + 2 < len; i += 3) {
        unsigned v = (unsigned) src[i] << 16 | (unsigned) src[i + 1] << 8 | src[i + 2];
        *dst++ = s_b64[v >> 18 & 63];
        *dst++ = s_b64[v >> 12 & 63];
        *dst++ = s_b64[v >> 6 & 63];
        *dst++ = s_b64[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned) src[i] << 16;
        if (i + 1 < len)
            v |= (unsigned) src[i + 1] << 8;
        *dst++ = s_b64[v >> 18 & 63];
        *dst++ = s_b64[v >> 12 & 63];
        *dst++ = i + 1 < len ? s_b64[v >> 6 & 63] : '=';
        *dst++ = '=';
    }
    *dst = 0;
}

//  --------------------------------------------------------------------------
//  Writes into accept the Sec-WebSocket-Accept for key.

int
wsc_accept_for (const char *key, char accept[29])
{
    char joined[128];
    int n = snprintf (joined, sizeof (joined), "%s%s", key, S_GUID);
    if (n < 0 || (size_t) n >= sizeof (joined))
        return -1;
    unsigned char digest[20];
    if (ssl_sha1 (joined, (size_t) n, digest))
        return -1;
    wsc_base64 (digest, sizeof (digest), accept);
    return 0;
}

//  --------------------------------------------------------------------------
//  Reads the server frame at buf[len].

int
wsc_parse_frame (const unsigned char *buf, size_t len, size_t max, wsc_frame_t *out)
{
    if (max > WSC_MAX_MESSAGE_LIMIT)
        max = WSC_MAX_MESSAGE_LIMIT;
    if (len < 2)
        return 0;
    memset (out, 0, sizeof (*out));
    out->fin = (buf[0] & 0x80) != 0;
    out->opcode = buf[0] & 0x0F;
    bool masked = (buf[1] & 0x80) != 0;
    uint64_t length = buf[1] & 0x7F;
    size_t header = 2;
    if (length == 126) {
        if (len < 4)
            return 0;
        length = (uint64_t) buf[2] << 8 | buf[3];
        header = 4;
    }
    else if (length == 127) {
        if (len < 10)
            return 0;
        length = 0;
        for (int i = 0; i < 8; i++)
            length = length << 8 | buf[2 + i];
        header = 10;
    }
    out->length = length;
    out->header = header;
    bool control = out->opcode >= 8;
    if ((buf[0] & 0x70) != 0  //  Reserved bits: no extension was agreed
        || (out->opcode > 2 && out->opcode < 8) || out->opcode > 10
        || masked  //  A server never masks (RFC 6455 5.1)
        || (control && (!out->fin || length > 125)) || (length >> 63) != 0)
        return -1;
    if (length > max)
        return -2;
    if (len - header < length)
        return 0;
    return (int) (header + length);
}

//  True if the header value (len bytes) holds token, case aside, in its
//  comma-separated list.
static bool
s_has_token (const char *value, size_t len, const char *token)
{
    size_t tlen = strlen (token);
    size_t i = 0;
    while (i < len) {
        while (i < len && (value[i] == ' ' || value[i] == '\t' || value[i] == ','))
            i++;
        size_t start = i;
        while (i < len && value[i] != ',')
            i++;
        size_t end = i;
        while (end > start && (value[end - 1] == ' ' || value[end - 1] == '\t'))
            end--;
        if (end - start == tlen && strncasecmp (value + start, token, tlen) == 0)
            return true;
    }
    return false;
}

//  --------------------------------------------------------------------------
//  Reads the server's answer to the upgrade.

int
wsc_parse_upgrade (const char *buf, size_t len, const char *accept, char *err,
                   size_t errlen)
{
    size_t scan = len < WSC_MAX_HEAD ? len : WSC_MAX_HEAD;
    const char *end = (const char *) memmem (buf, scan, "\r\n\r\n", 4);
    if (!end) {
        if (len >= WSC_MAX_HEAD) {
            snprintf (err, errlen, "upgrade response over %d bytes", WSC_MAX_HEAD);
            return -1;
        }
        return 0;
    }
    size_t head = (size_t) (end - buf) + 4;
    //  Status line: HTTP/1.x NNN reason
    const char *line = buf;
    const char *eol = (const char *) memmem (line, head, "\r\n", 2);
    size_t line_len = (size_t) (eol - line);
    if (line_len < 12 || memcmp (line, "HTTP/1.", 7) != 0 || line[8] != ' '
        || line[9] < '0' || line[9] > '9' || line[10] < '0' || line[10] > '9'
        || line[11] < '0' || line[11] > '9' || (line_len > 12 && line[12] != ' ')) {
        snprintf (err, errlen, "upgrade answered with no HTTP status line");
        return -1;
    }
    int status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
    if (status != 101) {
        snprintf (err, errlen, "upgrade answered HTTP %d", status);
        return -1;
    }
    bool upgrade = false, connection = false, accepted = false;
    const char *at = eol + 2;
    const char *stop = buf + head - 2;  //  The blank line's CRLF
    while (at < stop) {
        eol = (const char *) memmem (at, (size_t) (stop + 2 - at), "\r\n", 2);
        const char *colon = (const char *) memchr (at, ':', (size_t) (eol - at));
        if (!colon || colon == at) {
            snprintf (err, errlen, "upgrade answered a malformed header line");
            return -1;
        }
        size_t name_len = (size_t) (colon - at);
        const char *value = colon + 1;
        while (value < eol && (*value == ' ' || *value == '\t'))
            value++;
        size_t value_len = (size_t) (eol - value);
        while (value_len > 0
               && (value[value_len - 1] == ' ' || value[value_len - 1] == '\t'))
            value_len--;
#define S_IS(name) (name_len == strlen (name) && strncasecmp (at, name, name_len) == 0)
        if (S_IS ("Upgrade"))
            upgrade = s_has_token (value, value_len, "websocket");
        else if (S_IS ("Connection"))
            connection = s_has_token (value, value_len, "upgrade");
        else if (S_IS ("Sec-WebSocket-Accept"))
            accepted =
                value_len == strlen (accept) && memcmp (value, accept, value_len) == 0;
        else if (S_IS ("Sec-WebSocket-Extensions") || S_IS ("Sec-WebSocket-Protocol")) {
            snprintf (err, errlen, "upgrade answered %.*s we did not offer",
                      (int) name_len, at);
            return -1;
        }
#undef S_IS
        at = eol + 2;
    }
    if (!upgrade || !connection) {
        snprintf (err, errlen, "upgrade answered without Upgrade: websocket");
        return -1;
    }
    if (!accepted) {
        snprintf (err, errlen, "upgrade answered a wrong Sec-WebSocket-Accept");
        return -1;
    }
    return (int) head;
}
