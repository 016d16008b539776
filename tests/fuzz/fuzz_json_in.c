/*  =========================================================================
    fuzz_json_in - schemas/json_in.h, the intake of all outside JSON

    json_in_check and json_in_parse with every flag combination and a size
    bound chosen by the input.  Promises checked: a value comes back only
    when json_in_check says OK; a returned value prints and re-enters
    json_in_parse; the reason of every code is a sentence.
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "json_in.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t choice = fuzz_take (&data, &size);
    unsigned flags = choice & (JSON_IN_OBJECT | JSON_IN_NUL_OK);
    size_t max = (choice & 0x04) ? (size_t) (choice >> 3) * 16 : 0;
    //  Not NUL-terminated: json_in must never read past size.
    char *text = (char *) fuzz_copy (data, size);
    if (!text)
        return 0;

    json_in_rc_t checked = json_in_check (text, size, max, flags);
    json_in_rc_t rc = JSON_IN_OK;
    size_t at = 0;
    cJSON *json = json_in_parse (text, size, max, flags, &rc, &at);
    FUZZ_CHECK (json_in_reason (rc) != NULL);
    if (json) {
        FUZZ_CHECK (rc == JSON_IN_OK);
        FUZZ_CHECK (checked == JSON_IN_OK);
        FUZZ_CHECK (!(flags & JSON_IN_OBJECT) || cJSON_IsObject (json));
        char *printed = cJSON_PrintUnformatted (json);
        if (printed) {
            json_in_rc_t rc2;
            cJSON *again = json_in_parse (printed, strlen (printed), 0,
                                          flags | JSON_IN_NUL_OK, &rc2, NULL);
            FUZZ_CHECK (again != NULL);
            cJSON_Delete (again);
            free (printed);
        }
        cJSON_Delete (json);
    }
    else {
        FUZZ_CHECK (rc != JSON_IN_OK);
        FUZZ_CHECK (at <= size);
    }
    json_in_utf8_valid (text, size);
    free (text);
    return 0;
}
