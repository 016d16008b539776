/*  =========================================================================
    fuzz - what the libFuzzer targets in tests/fuzz share

    Each target is one file with one LLVMFuzzerTestOneInput.  Some targets
    read a few leading bytes of the input as choices (which message type,
    where to cut a stream) and the rest as the bytes under test; fuzz_take
    does that without ever reading past the input.  A broken promise of the
    code under test (a contract in its header) is reported with FUZZ_CHECK,
    which aborts, so libFuzzer keeps the input as a crash.
    =========================================================================
*/
#ifndef CG_FUZZ_H
#define CG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size);

//  Every UBSan report stops the target, as libFuzzer needs, unless
//  UBSAN_OPTIONS suppresses it (run.sh: tests/fuzz/ubsan.supp).  The build
//  keeps UBSan recoverable only so that suppressions work.
const char *
__ubsan_default_options (void);
const char *
__ubsan_default_options (void)
{
    return "halt_on_error=1:print_stacktrace=1";
}

//  Aborts, naming the broken promise, when cond is false.
#define FUZZ_CHECK(cond)                                                                 \
    do {                                                                                 \
        if (!(cond)) {                                                                   \
            fprintf (stderr, "%s:%d: broken promise: %s\n", __FILE__, __LINE__, #cond);  \
            abort ();                                                                    \
        }                                                                                \
    } while (0)

//  A heap copy of exactly the input's bytes, not terminated, so ASan sees
//  any read past them (libFuzzer's own buffer may have slack).  NULL if
//  memory runs out.  Caller frees.
static inline void *
fuzz_copy (const uint8_t *data, size_t size)
{
    void *copy = malloc (size ? size : 1);
    if (copy && size)
        memcpy (copy, data, size);
    return copy;
}

//  Reads one choice byte from the front of the input (0 once it is used up).
static inline uint8_t
fuzz_take (const uint8_t **data, size_t *size)
{
    if (*size == 0)
        return 0;
    uint8_t b = **data;
    (*data)++;
    (*size)--;
    return b;
}

//  A private NUL-terminated copy of data[size] (caller frees): the code
//  under test may rely on a terminator, and ASan then sees a read past the
//  input's end as the overflow it is.
static inline char *
fuzz_strndup (const uint8_t *data, size_t size)
{
    char *s = (char *) malloc (size + 1);
    if (!s)
        abort ();
    for (size_t i = 0; i < size; i++)
        s[i] = (char) data[i];
    s[size] = 0;
    return s;
}

#endif
