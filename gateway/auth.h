/*  =========================================================================
    auth - who is asking: token, password, or nobody (docs/authentication.md#credentials)

    Pure functions over a request's headers and query; thread-safe.
    Secrets are compared in constant time for a given candidate length.
    =========================================================================
*/
#ifndef CG_AUTH_H
#define CG_AUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

typedef enum {
    AUTH_OK = 0,        //  Credential valid
    AUTH_MISSING = -1,  //  No credential offered
    AUTH_INVALID = -2,  //  Credential offered but wrong
} auth_rc_t;

typedef struct {
    unsigned scopes;     //  SCOPE_* bits granted
    char principal[64];  //  Who, for logs and limits (never a secret)
} auth_ctx_t;

//  The credential-bearing parts of a request.  All may be NULL.
typedef struct {
    const char *authorization;    //  Authorization header
    const char *password_header;  //  X-OpenClaw-Password header
    const char *query;            //  Raw query string (token= / password=)
} auth_input_t;

auth_rc_t
auth_check (const cg_config_t *cfg, const auth_input_t *in, auth_ctx_t *out);

//  Constant-time equality of a (length alen) and the NUL-terminated secret.
bool
auth_equal (const char *a, size_t alen, const char *secret);

//  Decodes standard base64 (padding optional) into out (cap bytes, NUL
//  terminated).  Returns the decoded length, or -1 if invalid or too long.
int
auth_base64_decode (const char *in, size_t len, char *out, size_t cap);

#endif
