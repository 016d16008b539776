/*  =========================================================================
    fuzz_envelope - schemas/envelope.h envelope_unpack, the header of every
    message that crosses the broker

    Promises checked: a failed unpack leaves the envelope zeroed; a
    successful one has NUL-terminated fields within their limits and packs
    back to bytes that unpack to the same envelope.
    =========================================================================
*/
#include <string.h>

#include "envelope.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    //  A frame's bytes are not terminated: copy them exactly.
    uint8_t *bytes = (uint8_t *) fuzz_copy (data, size);
    if (!bytes)
        return 0;
    envelope_t env;
    memset (&env, 0xa5, sizeof (env));
    if (envelope_unpack (&env, bytes, size)) {
        envelope_t zero;
        memset (&zero, 0, sizeof (zero));
        FUZZ_CHECK (memcmp (&env, &zero, sizeof (env)) == 0);
        free (bytes);
        return 0;
    }
    FUZZ_CHECK (strnlen (env.type, sizeof (env.type)) <= ENVELOPE_TYPE_MAX);
    FUZZ_CHECK (strnlen (env.session_key, sizeof (env.session_key)) <= ENVELOPE_KEY_MAX);
    msgpack_sbuffer buf;
    msgpack_sbuffer_init (&buf);
    if (envelope_pack (&env, &buf) == 0) {
        envelope_t back;
        FUZZ_CHECK (envelope_unpack (&back, buf.data, buf.size) == 0);
        FUZZ_CHECK (!strcmp (back.type, env.type));
        FUZZ_CHECK (!strcmp (back.session_key, env.session_key));
        FUZZ_CHECK (back.corr_id == env.corr_id);
        FUZZ_CHECK (back.status == env.status);
        FUZZ_CHECK (back.timeout_ms == env.timeout_ms);
    }
    msgpack_sbuffer_destroy (&buf);
    free (bytes);
    return 0;
}
