/*  =========================================================================
    auth - credential extraction and checking
    =========================================================================
*/
#include "auth.h"
#include "ids.h"

#include <civetweb.h>
#include <string.h>
#include <strings.h>

#define AUTH_MAX_SECRET 512

bool
auth_equal (const char *a, size_t alen, const char *secret)
{
    return ids_secret_equal (a, alen, secret);
}

int
auth_base64_decode (const char *in, size_t len, char *out, size_t cap)
{
    static const char *alphabet =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    unsigned acc = 0;
    int bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (in[i] == '=') {
            //  Padding: only more padding may follow.
            for (size_t j = i; j < len; j++)
                if (in[j] != '=')
                    return -1;
            break;
        }
        const char *p = in[i] ? strchr (alphabet, in[i]) : NULL;
        if (!p)
            return -1;
        acc = (acc << 6) | (unsigned) (p - alphabet);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n + 1 >= cap)
                return -1;
            out[n++] = (char) ((acc >> bits) & 0xff);
        }
    }
    out[n] = 0;
    return (int) n;
}

//  Matches a token against the main token and the scoped ones.
static auth_rc_t
s_check_token (const cg_config_t *cfg, const char *tok, size_t len, auth_ctx_t *out)
{
    if (!(cfg->auth_mode & AUTH_TOKEN) || cfg->auth_mode == AUTH_NONE)
        return AUTH_INVALID;
    auth_rc_t rc = AUTH_INVALID;
    //  Compare against every configured token, not stopping at a match.
    if (cfg->token && auth_equal (tok, len, cfg->token)) {
        out->scopes = SCOPE_ALL;
        snprintf (out->principal, sizeof (out->principal), "token:main");
        rc = AUTH_OK;
    }
    for (size_t i = 0; i < cfg->n_tokens; i++)
        if (auth_equal (tok, len, cfg->tokens[i].token) && rc != AUTH_OK) {
            out->scopes = cfg->tokens[i].scopes;
            snprintf (out->principal, sizeof (out->principal), "token:%s",
                      cfg->tokens[i].name);
            rc = AUTH_OK;
        }
    return rc;
}

static auth_rc_t
s_check_password (const cg_config_t *cfg, const char *pw, size_t len, auth_ctx_t *out)
{
    if (!(cfg->auth_mode & AUTH_PASSWORD) || cfg->auth_mode == AUTH_NONE
        || !cfg->password)
        return AUTH_INVALID;
    if (!auth_equal (pw, len, cfg->password))
        return AUTH_INVALID;
    out->scopes = SCOPE_ALL;
    snprintf (out->principal, sizeof (out->principal), "password");
    return AUTH_OK;
}

auth_rc_t
auth_check (const cg_config_t *cfg, const auth_input_t *in, auth_ctx_t *out)
{
    memset (out, 0, sizeof (*out));
    if (cfg->auth_mode == AUTH_NONE) {
        out->scopes = SCOPE_ALL;
        snprintf (out->principal, sizeof (out->principal), "anonymous");
        return AUTH_OK;
    }
    //  Headers first, then the query.  The first credential offered decides:
    //  a wrong header is not rescued by a right query parameter.
    const char *h = in->authorization;
    if (h && *h) {
        while (*h == ' ')
            h++;
        if (strncasecmp (h, "Bearer ", 7) == 0) {
            const char *tok = h + 7;
            while (*tok == ' ')
                tok++;
            size_t len = strlen (tok);
            while (len && tok[len - 1] == ' ')
                len--;
            if (len == 0 || len > AUTH_MAX_SECRET)
                return AUTH_INVALID;
            return s_check_token (cfg, tok, len, out);
        }
        if (strncasecmp (h, "Basic ", 6) == 0) {
            const char *b64 = h + 6;
            while (*b64 == ' ')
                b64++;
            char decoded[AUTH_MAX_SECRET + 1];
            int n = auth_base64_decode (b64, strlen (b64), decoded, sizeof (decoded));
            const char *colon = n > 0 ? memchr (decoded, ':', (size_t) n) : NULL;
            if (!colon)
                return AUTH_INVALID;
            const char *pw = colon + 1;
            return s_check_password (cfg, pw, (size_t) (decoded + n - pw), out);
        }
        return AUTH_INVALID;
    }
    if (in->password_header && *in->password_header)
        return s_check_password (cfg, in->password_header, strlen (in->password_header),
                                 out);
    if (in->query && *in->query) {
        char value[AUTH_MAX_SECRET + 1];
        size_t qlen = strlen (in->query);
        int n = mg_get_var (in->query, qlen, "token", value, sizeof (value));
        if (n >= 0)
            return n == 0 ? AUTH_INVALID : s_check_token (cfg, value, (size_t) n, out);
        if (n == -2)
            return AUTH_INVALID;  //  Longer than any secret we hold
        n = mg_get_var (in->query, qlen, "password", value, sizeof (value));
        if (n >= 0)
            return n == 0 ? AUTH_INVALID : s_check_password (cfg, value, (size_t) n, out);
        if (n == -2)
            return AUTH_INVALID;
    }
    return AUTH_MISSING;
}
