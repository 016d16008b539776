/*  =========================================================================
    fuzz_mp - schemas/mp.h, the bounded msgpack reader every body goes
    through (mp_check, mp_reader_init, the typed map look-ups)

    Promises checked: mp_reader_init succeeds only on bytes mp_check
    accepts; look-ups on whatever decodes stay inside the object and
    mp_copy_str always terminates.
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "mp.h"

static const char *const s_keys[] = {"text",  "session",  "model", "stream",
                                     "limit", "messages", "",      NULL};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t *bytes = (uint8_t *) fuzz_copy (data, size);
    if (!bytes)
        return 0;
    int checked = mp_check (bytes, size);
    mp_reader_t r;
    int rc = mp_reader_init (&r, bytes, size);
    if (rc == 0) {
        FUZZ_CHECK (checked == 0);
        FUZZ_CHECK (r.root != NULL);
        for (int i = 0; s_keys[i]; i++) {
            size_t len = 0;
            const char *s = mp_get_str (r.root, s_keys[i], &len);
            if (s && len) {
                //  The string lies inside the input.
                FUZZ_CHECK ((const uint8_t *) s >= bytes
                            && (const uint8_t *) s + len <= bytes + size);
            }
            int64_t n;
            bool b;
            mp_get_int (r.root, s_keys[i], &n);
            mp_get_bool (r.root, s_keys[i], &b);
            mp_get (r.root, s_keys[i]);
            char small[8];
            memset (small, 'x', sizeof (small));
            if (mp_copy_str (r.root, s_keys[i], small, sizeof (small)) == 0)
                FUZZ_CHECK (memchr (small, 0, sizeof (small)) != NULL);
        }
        //  Map keys that are not strings must not trip the look-ups.
        if (r.root->type == MSGPACK_OBJECT_MAP)
            for (uint32_t i = 0; i < r.root->via.map.size; i++)
                if (r.root->via.map.ptr[i].key.type == MSGPACK_OBJECT_STR) {
                    const msgpack_object_str *k = &r.root->via.map.ptr[i].key.via.str;
                    char *key = fuzz_strndup ((const uint8_t *) k->ptr, k->size);
                    FUZZ_CHECK (mp_get (r.root, key) != NULL
                                || memchr (k->ptr, 0, k->size) != NULL);
                    free (key);
                }
    }
    mp_reader_fini (&r);
    free (bytes);
    return 0;
}
