/*  =========================================================================
    fuzz_sse - actors/sse.h, the incremental Server-Sent Events parser that
    reads every streamed provider reply

    The stream is parsed twice: whole, and cut into pieces whose sizes the
    first bytes choose (down to one byte, so a cut can fall between a CR
    and its LF).  Promises checked: both give the same events, in order,
    with the same feed result; every event's data is NUL-terminated and
    holds no CR; the error state is sticky until reset.
    =========================================================================
*/
#include <string.h>

#include "fuzz.h"
#include "sse.h"

#define MAX_EVENT 4096

typedef struct {
    char *log;  //  "event\0data\0..." of every event
    size_t len, cap;
    size_t count;
} s_log_t;

static int
s_collect (void *arg, const char *event, const char *data, size_t data_len)
{
    s_log_t *log = (s_log_t *) arg;
    FUZZ_CHECK (event && data);
    FUZZ_CHECK (data[data_len] == 0);
    FUZZ_CHECK (memchr (data, '\r', data_len) == NULL);
    size_t ev_len = strlen (event);
    size_t need = log->len + ev_len + data_len + 16;
    if (need > log->cap) {
        log->cap = need * 2;
        log->log = (char *) realloc (log->log, log->cap);
        FUZZ_CHECK (log->log != NULL);
    }
    memcpy (log->log + log->len, event, ev_len + 1);
    log->len += ev_len + 1;
    memcpy (log->log + log->len, &data_len, sizeof (data_len));
    log->len += sizeof (data_len);
    memcpy (log->log + log->len, data, data_len);
    log->len += data_len;
    log->count++;
    return 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t cuts[4];
    for (int i = 0; i < 4; i++)
        cuts[i] = fuzz_take (&data, &size);
    s_log_t whole = {0}, pieces = {0};
    sse_parser_t *a = sse_parser_new (MAX_EVENT, s_collect, &whole);
    sse_parser_t *b = sse_parser_new (MAX_EVENT, s_collect, &pieces);
    FUZZ_CHECK (a && b);

    //  Bytes are only read during the call: hand over exact-size copies.
    char *all = (char *) fuzz_copy (data, size);
    if (!all)
        return 0;
    int rc_a = sse_parser_feed (a, all, size);
    free (all);

    int rc_b = 0;
    size_t at = 0;
    for (int i = 0; at < size; i++) {
        size_t n = (size_t) (cuts[i % 4] % 17) + 1;
        if (n > size - at)
            n = size - at;
        char *piece = (char *) malloc (n);
        memcpy (piece, data + at, n);
        int rc = sse_parser_feed (b, piece, n);
        free (piece);
        at += n;
        if (rc) {
            rc_b = rc;
            break;
        }
    }
    FUZZ_CHECK (rc_a == rc_b);
    FUZZ_CHECK (whole.count == pieces.count);
    FUZZ_CHECK (whole.len == pieces.len);
    FUZZ_CHECK (whole.len == 0 || !memcmp (whole.log, pieces.log, whole.len));
    if (rc_a == -1) {
        FUZZ_CHECK (sse_parser_feed (a, "\n\n", 2) == -1);
        FUZZ_CHECK (sse_parser_finish (a) == 1);
        sse_parser_reset (a);
        FUZZ_CHECK (sse_parser_feed (a, "data: x\n\n", 9) == 0);
    }
    else
        FUZZ_CHECK (sse_parser_finish (a) == sse_parser_finish (b));
    sse_parser_destroy (&a);
    sse_parser_destroy (&b);
    FUZZ_CHECK (a == NULL && b == NULL);
    free (whole.log);
    free (pieces.log);
    return 0;
}
