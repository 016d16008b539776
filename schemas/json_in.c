/*  =========================================================================
    json_in - the one way in for JSON from outside the process
    =========================================================================
*/
#include "json_in.h"

#include <string.h>

bool
json_in_utf8_valid (const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *) s;
    size_t i = 0;
    while (i < len) {
        unsigned c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp;
        if (c >= 0xc2 && c <= 0xdf)
            n = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            n = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            n = 3, cp = c & 0x07;
        else
            return false;
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (p[i + k] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && (cp < 0x10000 || cp > 0x10ffff))
            || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += n + 1;
    }
    return true;
}

//  One pass over the bytes: strings (with their escapes) are skipped, and
//  brackets outside them counted.  Unbalanced closers are the grammar's
//  business (cJSON refuses them); only the depth matters here.
static json_in_rc_t
s_scan (const unsigned char *p, size_t len, unsigned flags)
{
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c == 0)
            return JSON_IN_NUL;
        if (in_string) {
            if (c == '"')
                in_string = false;
            else if (c == '\\' && i + 1 < len) {
                i++;
                if (p[i] == 'u' && i + 4 < len && !(flags & JSON_IN_NUL_OK)
                    && memcmp (p + i + 1, "0000", 4) == 0)
                    return JSON_IN_NUL;
            }
        }
        else if (c == '"')
            in_string = true;
        else if (c == '[' || c == '{') {
            if (++depth > JSON_IN_MAX_DEPTH)
                return JSON_IN_TOO_DEEP;
        }
        else if ((c == ']' || c == '}') && depth > 0)
            depth--;
    }
    return JSON_IN_OK;
}

static bool
s_space (char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

json_in_rc_t
json_in_check (const char *text, size_t len, size_t max, unsigned flags)
{
    if (max && len > max)
        return JSON_IN_TOO_LARGE;
    size_t at = 0;
    while (text && at < len && s_space (text[at]))
        at++;
    if (!text || at == len)
        return JSON_IN_EMPTY;
    json_in_rc_t rc = s_scan ((const unsigned char *) text, len, flags);
    if (rc != JSON_IN_OK)
        return rc;
    return json_in_utf8_valid (text, len) ? JSON_IN_OK : JSON_IN_UTF8;
}

cJSON *
json_in_parse (const char *text, size_t len, size_t max, unsigned flags,
               json_in_rc_t *rc_p, size_t *at_p)
{
    json_in_rc_t rc = json_in_check (text, len, max, flags);
    cJSON *json = NULL;
    size_t at = 0;
    if (rc == JSON_IN_OK) {
        const char *end = NULL;
        json = cJSON_ParseWithLengthOpts (text, len, &end, false);
        if (!json) {
            rc = JSON_IN_MALFORMED;
            //  cJSON reports the failure through a global (not
            //  thread-safe); with the Opts call, end says where.
            at = end && end >= text ? (size_t) (end - text) : 0;
        }
        else {
            at = (size_t) (end - text);
            while (at < len && s_space (text[at]))
                at++;
            if (at < len)
                rc = JSON_IN_TRAILING;
            else if ((flags & JSON_IN_OBJECT) && !cJSON_IsObject (json))
                rc = JSON_IN_NOT_OBJECT;
            if (rc != JSON_IN_OK) {
                cJSON_Delete (json);
                json = NULL;
            }
        }
    }
    if (rc_p)
        *rc_p = rc;
    if (at_p)
        *at_p = at;
    return json;
}

bool
json_in_deeper_than (const cJSON *json, int max)
{
    if (!json || !(cJSON_IsArray (json) || cJSON_IsObject (json)))
        return false;
    if (max <= 0)
        return true;
    for (const cJSON *c = json->child; c; c = c->next)
        if (json_in_deeper_than (c, max - 1))
            return true;
    return false;
}

const char *
json_in_reason (json_in_rc_t rc)
{
    switch (rc) {
    case JSON_IN_OK: return "is valid";
    case JSON_IN_EMPTY: return "is empty";
    case JSON_IN_TOO_LARGE: return "is larger than the size limit";
    case JSON_IN_NUL: return "contains a NUL byte";
    case JSON_IN_UTF8: return "is not valid UTF-8";
    case JSON_IN_TOO_DEEP: return "is nested deeper than 128 levels";
    case JSON_IN_MALFORMED: return "is not valid JSON";
    case JSON_IN_TRAILING: return "has data after the JSON value";
    case JSON_IN_NOT_OBJECT: return "must be a JSON object";
    }
    return "is not acceptable";
}
