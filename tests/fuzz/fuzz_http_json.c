/*  =========================================================================
    fuzz_http_json - an HTTP request body on its way to the bus

    What every JSON endpoint does with a body before its route-specific
    checks: gateway/http.h http_json_object, then (as the routes do for the
    fields they forward) the JSON -> msgpack mapping (mpjson_pack) and the
    bus-side validation of the body against schemas/messages.def
    (msg_validate) for the request type the first byte picks.  String
    values under the keys that carry session keys go through
    ids_session_key_valid.

    The routes' own checks (route_browser.c's navigate/screenshot checks,
    route_sessions.c's query parsing) are static functions that send their
    400 through civetweb, so they are not reachable from here (the runs'
    checks are runs/run_check.c's, fuzzed by fuzz_run_check); see
    tests/fuzz/README.md.

    Promises checked: NULL comes with a message and an object otherwise;
    an object mpjson_pack accepts packs to bytes mp_check and
    mp_reader_init accept, and mpjson_write prints them as JSON cJSON reads.
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "ids.h"
#include "mp.h"
#include "mpjson.h"
#include "msg.h"

static const char *const s_types[] = {
    "RUN_START",          "SESSION_RUN",    "SESSION_ABORT",  "SESSION_LIST",
    "SESSION_GET",        "SESSION_DELETE", "BROWSER_STATUS", "BROWSER_NAVIGATE",
    "BROWSER_SCREENSHOT", "RUN_ABORT",
};
#define N_TYPES (sizeof (s_types) / sizeof (s_types[0]))

static const char *const s_key_fields[] = {"user", "sessionKey", "session",
                                           "key",  "profile",    NULL};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t choice = fuzz_take (&data, &size);
    //  civetweb hands the body NUL-terminated (r->body).
    char *body = fuzz_strndup (data, size);
    char msg[128] = "";
    cJSON *req = http_json_object (body, size, msg, sizeof (msg));
    if (!req) {
        FUZZ_CHECK (msg[0] != 0);
        FUZZ_CHECK (strnlen (msg, sizeof (msg)) < sizeof (msg));
        free (body);
        return 0;
    }
    FUZZ_CHECK (cJSON_IsObject (req));
    for (int i = 0; s_key_fields[i]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive (req, s_key_fields[i]);
        if (cJSON_IsString (v))
            ids_session_key_valid (v->valuestring);
    }
    mp_writer_t w;
    mp_writer_init (&w);
    if (mpjson_pack (&w.pk, req) == 0) {
        FUZZ_CHECK (mp_check (w.buf.data, w.buf.size) == 0);
        mp_reader_t r;
        FUZZ_CHECK (mp_reader_init (&r, w.buf.data, w.buf.size) == 0);
        char err[256], param[64];
        msg_validate (s_types[choice % N_TYPES], r.root, err, sizeof (err), param,
                      sizeof (param));
        size_t len = 0;
        char *text = mpjson_write (r.root, &len);
        FUZZ_CHECK (text != NULL);
        FUZZ_CHECK (strlen (text) == len);
        cJSON *back = cJSON_ParseWithLength (text, len);
        FUZZ_CHECK (back != NULL);
        cJSON_Delete (back);
        free (text);
        mp_reader_fini (&r);
    }
    mp_writer_fini (&w);
    cJSON_Delete (req);
    free (body);
    return 0;
}
