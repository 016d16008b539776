/*  =========================================================================
    fuzz_mpjson - schemas/mpjson.h, a message body turned into the JSON a
    client reads (mpjson_to_json, mpjson_write) and back (mpjson_pack)

    Promises checked: whatever mp_reader_init accepts, mpjson_write prints
    as JSON that cJSON reads back, with *len its exact length; mpjson_to_json
    gives a tree, and that tree packs again (the depth stays within
    MPJSON_MAX_DEPTH) into bytes mp_check accepts.
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "mp.h"
#include "mpjson.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t *bytes = (uint8_t *) fuzz_copy (data, size);
    if (!bytes)
        return 0;
    mp_reader_t r;
    if (mp_reader_init (&r, bytes, size) == 0) {
        size_t len = 0;
        char *text = mpjson_write (r.root, &len);
        FUZZ_CHECK (text != NULL);
        FUZZ_CHECK (strlen (text) == len);
        cJSON *parsed = cJSON_ParseWithLength (text, len);
        FUZZ_CHECK (parsed != NULL);
        cJSON_Delete (parsed);
        free (text);

        cJSON *tree = mpjson_to_json (r.root);
        FUZZ_CHECK (tree != NULL);
        mp_writer_t w;
        mp_writer_init (&w);
        FUZZ_CHECK (mpjson_pack (&w.pk, tree) == 0);
        FUZZ_CHECK (mp_check (w.buf.data, w.buf.size) == 0);
        mp_writer_fini (&w);
        cJSON_Delete (tree);
    }
    mp_reader_fini (&r);
    free (bytes);
    return 0;
}
