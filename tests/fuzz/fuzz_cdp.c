/*  =========================================================================
    fuzz_cdp - a Chrome DevTools Protocol message as the gateway reads it

    actors/cdp.c has no public parse entry: its civetweb data callback
    (s_on_data, static) reassembles fragments and calls s_parse_push, which
    is json_in_parse with JSON_IN_OBJECT | JSON_IN_NUL_OK; an oversized
    message's head is read with sscanf ("{\"id\":%d") by s_oversize.  The
    browser actor (actors/browser.c s_on_cdp, s_launch_reply, s_op_reply,
    s_op_event, all static) then reads the id through cdp_reply_id, and
    method, sessionId, params, result and error.  This target runs the same
    public steps on the bytes (the parse with CDP's flags, the head scan,
    cdp_reply_id, the field reads the actor makes); the reassembly and the
    actor's handling need extracting to be reached (tests/fuzz/README.md).
    =========================================================================
*/
#include <string.h>

#include "cdp.h"
#include "fuzz.h"
#include "json_in.h"

static const char *
s_jstr (const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (obj, key);
    return cJSON_IsString (v) ? v->valuestring : NULL;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    char *bytes = (char *) fuzz_copy (data, size);
    if (!bytes)
        return 0;
    //  s_oversize: the first 31 bytes, terminated, scanned for the id.
    char head[32];
    size_t n = size < sizeof (head) - 1 ? size : sizeof (head) - 1;
    memcpy (head, bytes, n);
    head[n] = 0;
    int id = 0;
    if (sscanf (head, "{\"id\":%d", &id) != 1)
        id = 0;

    cJSON *msg =
        json_in_parse (bytes, size, 0, JSON_IN_OBJECT | JSON_IN_NUL_OK, NULL, NULL);
    if (msg) {
        FUZZ_CHECK (cJSON_IsObject (msg));
        //  The reply id, as browser.c s_on_cdp reads it.
        int reply;
        if (cdp_reply_id (msg, &reply))
            FUZZ_CHECK (reply >= 1);
        const char *method = s_jstr (msg, "method");
        const char *sid = s_jstr (msg, "sessionId");
        const cJSON *params = cJSON_GetObjectItemCaseSensitive (msg, "params");
        const cJSON *result = cJSON_GetObjectItemCaseSensitive (msg, "result");
        const cJSON *error = cJSON_GetObjectItemCaseSensitive (msg, "error");
        const char *psid = s_jstr (params, "sessionId");
        const char *emsg = s_jstr (error, "message");
        const char *target = s_jstr (result, "targetId");
        const char *rsid = s_jstr (result, "sessionId");
        const char *shot = s_jstr (result, "data");
        const cJSON *frame = cJSON_GetObjectItemCaseSensitive (params, "frame");
        const char *url = s_jstr (frame, "url");
        size_t total = 0;
        const char *strs[] = {method, sid, psid, emsg, target, rsid, shot, url};
        for (size_t i = 0; i < sizeof (strs) / sizeof (strs[0]); i++)
            if (strs[i])
                total += strlen (strs[i]);
        (void) total;
        (void) id;
        cJSON_Delete (msg);
    }
    free (bytes);
    return 0;
}
