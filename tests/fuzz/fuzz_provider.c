/*  =========================================================================
    fuzz_provider - actors/provider.h, a provider's 2xx answer turned into
    deltas, usage and a finish: OpenAI chat.completion bodies and
    chat.completion.chunk streams, Anthropic message bodies and event
    streams, fed in pieces the way libcurl hands them over

    The first byte picks the provider type and streamed or not, the next
    ones where the body is cut.  Promises checked (provider.h): the sink
    gets at most one finish and at most one error, never both, and nothing
    after an error; provider_parser_finish returns 0 exactly when the sink
    got its finish, -1 after an error; every delta's text is len bytes
    long and its tool_calls, if any, an array.
    =========================================================================
*/
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "config.h"
#include "fuzz.h"
#include "provider.h"

typedef struct {
    int finishes, errors, after;  //  Calls counted
    size_t text;                  //  Delta bytes
} s_sink_t;

static void
s_delta (void *arg, const char *text, size_t len, const cJSON *tool_calls)
{
    s_sink_t *s = (s_sink_t *) arg;
    FUZZ_CHECK (text != NULL);
    FUZZ_CHECK (strlen (text) >= len);
    FUZZ_CHECK (!tool_calls || cJSON_IsArray (tool_calls));
    if (tool_calls) {
        char *printed = cJSON_PrintUnformatted (tool_calls);
        free (printed);
    }
    //  OpenAI may still send content after the finish_reason chunk (the run
    //  actor's sink only records it); after an error nothing may come.
    if (s->errors)
        s->after++;
    s->text += len;
}

static void
s_usage (void *arg, int64_t prompt, int64_t completion)
{
    FUZZ_CHECK (prompt >= 0 && completion >= 0);
}

static void
s_finish (void *arg, const char *reason)
{
    s_sink_t *s = (s_sink_t *) arg;
    FUZZ_CHECK (reason != NULL);
    s->finishes++;
}

static void
s_error (void *arg, int status, const char *code, const char *message)
{
    s_sink_t *s = (s_sink_t *) arg;
    FUZZ_CHECK (status >= 400 && status < 600);
    FUZZ_CHECK (code && message);
    s->errors++;
}

static const provider_sink_t s_sink = {s_delta, s_usage, s_finish, s_error};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t how = fuzz_take (&data, &size);
    uint8_t cut = fuzz_take (&data, &size);
    provider_type_t type = (how & 1) ? PROVIDER_ANTHROPIC : PROVIDER_OPENAI;
    bool stream = (how & 2) != 0;
    s_sink_t s = {0};
    provider_parser_t *p = provider_parser_new (type, stream, &s_sink, &s);
    FUZZ_CHECK (p != NULL);
    size_t at = 0;
    int fed = 0;
    while (at < size && fed == 0) {
        size_t n = cut ? (size_t) cut : size;
        if (n > size - at)
            n = size - at;
        char *piece = (char *) malloc (n);
        memcpy (piece, data + at, n);
        fed = provider_parser_feed (p, piece, n);
        free (piece);
        at += n;
    }
    int rc = provider_parser_finish (p);
    FUZZ_CHECK (s.finishes <= 1 && s.errors <= 1);
    FUZZ_CHECK (!(s.finishes && s.errors));
    FUZZ_CHECK (s.after == 0);
    if (rc == 0)
        FUZZ_CHECK (s.finishes == 1);
    else
        FUZZ_CHECK (rc == -1 && s.errors == 1);
    if (fed == -1)
        FUZZ_CHECK (rc == -1);
    provider_parser_destroy (&p);
    FUZZ_CHECK (p == NULL);
    return 0;
}
