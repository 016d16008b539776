/*  =========================================================================
    fuzz_split - actors/channels/split.h, cutting a reply into parts under
    a chat platform's limit

    The first two bytes choose the limit (0 to 511, so 16 and below test
    the raised minimum) and the third the counting unit; the rest is the
    text.  Promises checked: an array comes back; each part is within the
    limit as split_units counts it, and neither empty nor blank; and the
    text's non-whitespace bytes, up to its first NUL, appear in order in
    the parts (the fence lines the splitter adds may come between them).
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "split.h"

//  Whitespace as the splitter sees it.
static int
s_space (unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    size_t limit = fuzz_take (&data, &size);
    limit = limit << 8 | fuzz_take (&data, &size);
    limit %= 512;
    split_unit_t unit = fuzz_take (&data, &size) & 1 ? SPLIT_UTF16 : SPLIT_CODEPOINTS;
    size_t effective = limit < 16 ? 16 : limit;

    //  Exactly the input's bytes, not terminated: a read past them is seen.
    char *text = (char *) fuzz_copy (data, size);
    if (!text)
        return 0;
    char **parts = split_text (text, size, limit, unit);
    FUZZ_CHECK (parts != NULL);

    const uint8_t *nul = (const uint8_t *) memchr (data, 0, size);
    size_t len = nul ? (size_t) (nul - data) : size;
    size_t at = 0;  //  Next byte of the text to find in the parts
    size_t count = 0;
    for (char **part = parts; *part; part++, count++) {
        size_t part_len = strlen (*part);
        FUZZ_CHECK (part_len > 0);
        FUZZ_CHECK (split_units (*part, part_len, unit) <= effective);
        int blank = 1;
        for (size_t i = 0; i < part_len; i++) {
            unsigned char c = (unsigned char) (*part)[i];
            if (s_space (c))
                continue;
            blank = 0;
            while (at < len && s_space (data[at]))
                at++;
            if (at < len && data[at] == c)
                at++;
        }
        FUZZ_CHECK (!blank);
    }
    while (at < len && s_space (data[at]))
        at++;
    FUZZ_CHECK (at == len);
    //  No parts exactly when the text is blank.
    size_t blanks = 0;
    while (blanks < len && s_space (data[blanks]))
        blanks++;
    FUZZ_CHECK ((count == 0) == (blanks == len));
    split_free (&parts);
    FUZZ_CHECK (parts == NULL);
    free (text);
    return 0;
}
