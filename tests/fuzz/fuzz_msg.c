/*  =========================================================================
    fuzz_msg - schemas/msg.h msg_validate, the check of every body against
    its declaration in schemas/messages.def

    The first byte picks the message type (every declared one, plus an
    unknown one); the rest is the msgpack body.  Promises checked: a
    refusal comes with a sentence, NUL-terminated within errlen, and param
    NUL-terminated within paramlen.
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "mp.h"
#include "msg.h"

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t choice = fuzz_take (&data, &size);
    const msg_def_t *const *all = msg_all ();
    size_t n = 0;
    while (all[n])
        n++;
    const char *type =
        choice % (n + 1) < n ? all[choice % (n + 1)]->type : "NO_SUCH_MESSAGE";
    uint8_t *bytes = (uint8_t *) fuzz_copy (data, size);
    if (!bytes)
        return 0;
    mp_reader_t r;
    const msgpack_object *body = NULL;
    bool decoded = size > 0 && mp_reader_init (&r, bytes, size) == 0;
    if (decoded)
        body = r.root;
    //  Small buffers: the sentences must be cut, never overrun.
    char err[24], param[8];
    memset (err, 'x', sizeof (err));
    memset (param, 'x', sizeof (param));
    if (msg_validate (type, body, err, sizeof (err), param, sizeof (param))) {
        FUZZ_CHECK (memchr (err, 0, sizeof (err)) != NULL);
        FUZZ_CHECK (err[0] != 0);
        FUZZ_CHECK (memchr (param, 0, sizeof (param)) != NULL);
    }
    if (size > 0)
        mp_reader_fini (&r);
    free (bytes);
    return 0;
}
