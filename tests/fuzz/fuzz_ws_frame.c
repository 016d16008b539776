/*  =========================================================================
    fuzz_ws_frame - a WebSocket text frame on its way to a request

    gateway/ws.c s_on_data turns a text frame into a request with
    http_json_object (after the max_frame_bytes check); the hub then checks
    id, method and params (gateway/ws_methods.c ws_methods_dispatch) before
    it needs the broker.  Only http_json_object is reached here:
    ws_methods_dispatch and the per-method parameter checks (static in
    ws_methods.c) need a running hub (see tests/fuzz/README.md).  So this target runs the public part and
    then, for params that are an object, what every method does with them
    next: the msgpack mapping and msg_validate against the bus message the
    method becomes.

    Frames are not NUL-terminated in civetweb's data callback: the copy here
    has no terminator either, so a read past the frame is an ASan report.
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "http.h"
#include "ids.h"
#include "mp.h"
#include "mpjson.h"
#include "msg.h"

//  WebSocket method -> the bus message its params become.
static const struct {
    const char *method;
    const char *type;
} s_methods[] = {
    {"chat.run", "SESSION_RUN"},
    {"chat.abort", "SESSION_ABORT"},
    {"session.list", "SESSION_LIST"},
    {"session.get", "SESSION_GET"},
    {"browser.status", "BROWSER_STATUS"},
    {"browser.navigate", "BROWSER_NAVIGATE"},
    {"browser.screenshot", "BROWSER_SCREENSHOT"},
    {NULL, NULL},
};

#define MAX_FRAME (1 << 20)

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    if (size > MAX_FRAME)
        return 0;  //  s_on_data refuses it before parsing
    char *frame = (char *) fuzz_copy (data, size);
    if (!frame)
        return 0;
    char msg[160] = "";
    cJSON *req = http_json_object (frame, size, msg, sizeof (msg));
    if (!req) {
        FUZZ_CHECK (msg[0] != 0);
        free (frame);
        return 0;
    }
    const cJSON *id = cJSON_GetObjectItemCaseSensitive (req, "id");
    if (id && !cJSON_IsNumber (id) && !cJSON_IsString (id) && !cJSON_IsNull (id))
        id = NULL;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive (req, "method");
    const cJSON *params = cJSON_GetObjectItemCaseSensitive (req, "params");
    if (cJSON_IsString (m) && cJSON_IsObject (params)) {
        const char *type = NULL;
        for (int i = 0; s_methods[i].method; i++)
            if (!strcmp (s_methods[i].method, m->valuestring))
                type = s_methods[i].type;
        const cJSON *key = cJSON_GetObjectItemCaseSensitive (params, "sessionKey");
        if (cJSON_IsString (key))
            ids_session_key_valid (key->valuestring);
        mp_writer_t w;
        mp_writer_init (&w);
        if (type && mpjson_pack (&w.pk, params) == 0) {
            mp_reader_t r;
            FUZZ_CHECK (mp_reader_init (&r, w.buf.data, w.buf.size) == 0);
            char err[256], param[64];
            msg_validate (type, r.root, err, sizeof (err), param, sizeof (param));
            mp_reader_fini (&r);
        }
        mp_writer_fini (&w);
    }
    //  The reply echoes id: it must print.
    if (id) {
        char *printed = cJSON_PrintUnformatted (id);
        FUZZ_CHECK (printed != NULL);
        free (printed);
    }
    cJSON_Delete (req);
    free (frame);
    return 0;
}
