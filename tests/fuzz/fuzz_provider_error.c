/*  =========================================================================
    fuzz_provider_error - actors/provider.h provider_map_error, a non-2xx
    answer from OpenAI or Anthropic (its error body) turned into the
    gateway's status, code and message

    The first two bytes pick the upstream HTTP status; the rest is the body,
    handed over without a terminator as libcurl's buffer would be.  Promises
    checked: status is one the gateway answers with, code and message are
    NUL-terminated within their (small, so cut) buffers, and request errors
    (400, 413, 422) are never retried.
    =========================================================================
*/
#include <string.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "config.h"
#include "fuzz.h"
#include "provider.h"

static const long s_statuses[] = {400, 401, 403, 404, 408, 409, 413, 422,
                                  429, 500, 502, 503, 504, 529, 302, 0};

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
    uint8_t a = fuzz_take (&data, &size);
    uint8_t b = fuzz_take (&data, &size);
    long http = (a & 0x80) ? (long) (((a & 0x7f) << 8) | b) - 1000
                           : s_statuses[a % (sizeof (s_statuses) / sizeof (long))];
    cfg_provider_t provider = {0};
    provider.name = (char *) ((b & 1) ? "anthropic" : "openai");
    provider.type = (b & 1) ? PROVIDER_ANTHROPIC : PROVIDER_OPENAI;
    char *body = (char *) fuzz_copy (data, size);
    if (!body)
        return 0;
    int status = 0;
    char code[16], message[96];
    memset (code, 'x', sizeof (code));
    memset (message, 'x', sizeof (message));
    bool retry = provider_map_error (&provider, http, size ? body : NULL, size, &status,
                                     code, sizeof (code), message, sizeof (message));
    FUZZ_CHECK (status == 400 || status == 404 || status == 429 || status == 503);
    FUZZ_CHECK (memchr (code, 0, sizeof (code)) != NULL);
    FUZZ_CHECK (memchr (message, 0, sizeof (message)) != NULL);
    if (http == 400 || http == 413 || http == 422)
        FUZZ_CHECK (!retry);
    free (body);
    return 0;
}
