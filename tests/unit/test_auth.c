/*  =========================================================================
    test_auth - credential checks of docs/authentication.md#credentials

    auth_base64_decode and auth_equal directly; auth_check against configs
    loaded from temporary JSON files, for every way a credential arrives.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "config.h"
#include "harness.h"

#define MAIN_TOKEN "main-token-0123456789/+=x"
#define MAIN_TOKEN_QUERY "main-token-0123456789%2F%2B%3Dx"
#define SCOPED_TOKEN "scoped-token-abcdefghij"
#define PASSWORD "s3cret:pass word"

//  The environment must not leak into the configs these tests build.
static void
s_clean_env (void)
{
    const char *vars[] = {"CLAWGATE_CONFIG",
                          "CLAWGATE_TOKEN",
                          "CLAWGATE_PASSWORD",
                          "CLAWGATE_AUTH",
                          "CLAWGATE_BIND",
                          "CLAWGATE_PORT",
                          NULL};
    for (int i = 0; vars[i]; i++)
        unsetenv (vars[i]);
}

TestSuite (auth, .init = s_clean_env);

//  Loads a config from json (auth block with the given mode, the main token,
//  the password and one scoped token).  Caller owns the return value.
static cg_config_t *
s_config (const char *mode)
{
    char dir[64], path[96], json[512], err[256] = "";
    harness_tmpdir (dir, sizeof (dir));
    cr_assert_neq (dir[0], 0);
    snprintf (path, sizeof (path), "%s/config.json", dir);
    snprintf (json, sizeof (json),
              "{\"auth\":{\"mode\":\"%s\",\"token\":\"%s\",\"password\":\"%s\","
              "\"tokens\":[{\"token\":\"%s\",\"name\":\"ci\","
              "\"scopes\":[\"chat\",\"sessions\"]}]}}",
              mode, MAIN_TOKEN, PASSWORD, SCOPED_TOKEN);
    harness_write (path, json);
    cfg_flags_t flags = {.config_path = path, .port = -1};
    cg_config_t *cfg = config_load (&flags, err, sizeof (err));
    unlink (path);
    rmdir (dir);
    cr_assert_not_null (cfg, "config_load: %s", err);
    return cfg;
}

//  Runs auth_check on the three inputs.
static auth_rc_t
s_check (const cg_config_t *cfg, const char *authorization, const char *password,
         const char *query, auth_ctx_t *ctx)
{
    auth_input_t in = {authorization, password, query};
    return auth_check (cfg, &in, ctx);
}

//  "Basic " plus base64 of user:pass, into buf.
static const char *
s_basic (char *buf, size_t cap, const char *userpass)
{
    static const char *digits =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t len = strlen (userpass), at = (size_t) snprintf (buf, cap, "Basic ");
    const unsigned char *s = (const unsigned char *) userpass;
    for (size_t i = 0; i < len; i += 3) {
        unsigned v =
            s[i] << 16 | (i + 1 < len ? s[i + 1] << 8 : 0) | (i + 2 < len ? s[i + 2] : 0);
        buf[at++] = digits[(v >> 18) & 63];
        buf[at++] = digits[(v >> 12) & 63];
        buf[at++] = i + 1 < len ? digits[(v >> 6) & 63] : '=';
        buf[at++] = i + 2 < len ? digits[v & 63] : '=';
    }
    buf[at] = 0;
    cr_assert_lt (at, cap);
    return buf;
}

//  ---- Helpers ----------------------------------------------------------------

Test (auth, base64_decode)
{
    char out[64];
    cr_assert_eq (auth_base64_decode ("aGVsbG8=", 8, out, sizeof (out)), 5);
    cr_assert_str_eq (out, "hello");
    cr_assert_eq (auth_base64_decode ("aGVsbG8", 7, out, sizeof (out)), 5,
                  "padding is optional");
    cr_assert_str_eq (out, "hello");
    cr_assert_eq (auth_base64_decode ("aGk=", 4, out, sizeof (out)), 2);
    cr_assert_str_eq (out, "hi");
    cr_assert_eq (auth_base64_decode ("YWJj", 4, out, sizeof (out)), 3);
    cr_assert_str_eq (out, "abc");
    cr_assert_eq (auth_base64_decode ("", 0, out, sizeof (out)), 0);
    cr_assert_str_eq (out, "");
    cr_assert_eq (auth_base64_decode ("Pz8/Pj4+", 8, out, sizeof (out)), 6);
    cr_assert_str_eq (out, "\x3f\x3f\x3f>>>");  //  Uses + and /

    //  Invalid characters, data after padding, a NUL inside.
    cr_assert_eq (auth_base64_decode ("aGV!bG8=", 8, out, sizeof (out)), -1);
    cr_assert_eq (auth_base64_decode ("aGVs bG8", 8, out, sizeof (out)), -1);
    cr_assert_eq (auth_base64_decode ("aG-_", 4, out, sizeof (out)), -1);
    cr_assert_eq (auth_base64_decode ("aGk=aGk=", 8, out, sizeof (out)), -1);
    cr_assert_eq (auth_base64_decode ("aG\0k", 4, out, sizeof (out)), -1);

    //  Output must fit cap including the terminator.
    cr_assert_eq (auth_base64_decode ("aGVsbG8=", 8, out, 5), -1);
    cr_assert_eq (auth_base64_decode ("aGVsbG8=", 8, out, 6), 5);
    cr_assert_str_eq (out, "hello");
}

Test (auth, constant_time_equal)
{
    cr_assert (auth_equal ("secret", 6, "secret"));
    cr_assert_not (auth_equal ("secreT", 6, "secret"));
    cr_assert_not (auth_equal ("xecret", 6, "secret"));
    cr_assert_not (auth_equal ("secre", 5, "secret"), "prefix");
    cr_assert_not (auth_equal ("secrets", 7, "secret"), "longer");
    cr_assert_not (auth_equal ("secretsecret", 12, "secret"), "repeated");
    cr_assert_not (auth_equal ("", 0, "secret"));
    cr_assert_not (auth_equal ("x", 1, ""));
    cr_assert (auth_equal ("", 0, ""));
    //  alen, not the NUL, bounds the candidate.
    cr_assert (auth_equal ("secret-and-more", 6, "secret"));
}

//  ---- auth_check ---------------------------------------------------------------

Test (auth, bearer_token)
{
    cg_config_t *cfg = s_config ("token");
    auth_ctx_t ctx;
    cr_assert_eq (s_check (cfg, "Bearer " MAIN_TOKEN, NULL, NULL, &ctx), AUTH_OK);
    cr_assert_eq (ctx.scopes, SCOPE_ALL);
    cr_assert_str_eq (ctx.principal, "token:main");
    cr_assert_eq (s_check (cfg, "bearer   " MAIN_TOKEN "  ", NULL, NULL, &ctx), AUTH_OK,
                  "scheme is case-insensitive, spaces trimmed");

    cr_assert_eq (s_check (cfg, "Bearer wrong-token-0123456789", NULL, NULL, &ctx),
                  AUTH_INVALID);
    cr_assert_eq (ctx.scopes, 0, "a refused check granted scopes");
    cr_assert_eq (s_check (cfg, "Bearer " MAIN_TOKEN "x", NULL, NULL, &ctx),
                  AUTH_INVALID);
    cr_assert_eq (s_check (cfg, "Bearer ", NULL, NULL, &ctx), AUTH_INVALID);
    cr_assert_eq (s_check (cfg, "Token " MAIN_TOKEN, NULL, NULL, &ctx), AUTH_INVALID);
    cr_assert_eq (s_check (cfg, MAIN_TOKEN, NULL, NULL, &ctx), AUTH_INVALID);
    config_destroy (&cfg);
}

Test (auth, missing_credentials)
{
    cg_config_t *cfg = s_config ("token+password");
    auth_ctx_t ctx;
    cr_assert_eq (s_check (cfg, NULL, NULL, NULL, &ctx), AUTH_MISSING);
    cr_assert_eq (s_check (cfg, "", "", "", &ctx), AUTH_MISSING);
    cr_assert_eq (s_check (cfg, NULL, NULL, "stream=true&tok=x", &ctx), AUTH_MISSING);
    cr_assert_eq (ctx.scopes, 0);
    config_destroy (&cfg);
}

Test (auth, query_token)
{
    cg_config_t *cfg = s_config ("token");
    auth_ctx_t ctx;
    cr_assert_eq (s_check (cfg, NULL, NULL, "token=" MAIN_TOKEN_QUERY, &ctx), AUTH_OK);
    cr_assert_str_eq (ctx.principal, "token:main");
    cr_assert_eq (s_check (cfg, NULL, NULL, "a=1&token=" MAIN_TOKEN_QUERY "&b=2", &ctx),
                  AUTH_OK);
    //  Undecoded, the token is wrong.
    cr_assert_eq (s_check (cfg, NULL, NULL, "token=main-token-0123456789/+=x", &ctx),
                  AUTH_INVALID);
    cr_assert_eq (s_check (cfg, NULL, NULL, "token=", &ctx), AUTH_INVALID);
    config_destroy (&cfg);
}

Test (auth, wrong_header_not_rescued_by_query)
{
    cg_config_t *cfg = s_config ("token+password");
    auth_ctx_t ctx;
    cr_assert_eq (s_check (cfg, "Bearer nope-nope-nope-nope", NULL,
                           "token=" MAIN_TOKEN_QUERY, &ctx),
                  AUTH_INVALID);
    cr_assert_eq (ctx.scopes, 0);
    cr_assert_eq (s_check (cfg, NULL, "wrong password", "token=" MAIN_TOKEN_QUERY, &ctx),
                  AUTH_INVALID);
    cr_assert_eq (
        s_check (cfg, NULL, NULL, "token=nope&password=s3cret%3Apass+word", &ctx),
        AUTH_INVALID);
    config_destroy (&cfg);
}

Test (auth, basic_password)
{
    const char *modes[] = {"password", "token+password"};
    for (int i = 0; i < 2; i++) {
        cg_config_t *cfg = s_config (modes[i]);
        auth_ctx_t ctx;
        char header[128];
        cr_assert_eq (s_check (cfg, s_basic (header, sizeof (header), "alice:" PASSWORD),
                               NULL, NULL, &ctx),
                      AUTH_OK, "mode %s", modes[i]);
        cr_assert_eq (ctx.scopes, SCOPE_ALL);
        cr_assert_str_eq (ctx.principal, "password");
        //  An empty user name is fine; the password decides.
        cr_assert_eq (s_check (cfg, s_basic (header, sizeof (header), ":" PASSWORD), NULL,
                               NULL, &ctx),
                      AUTH_OK);
        cr_assert_eq (s_check (cfg, s_basic (header, sizeof (header), "alice:wrong"),
                               NULL, NULL, &ctx),
                      AUTH_INVALID);
        cr_assert_eq (s_check (cfg, s_basic (header, sizeof (header), "no-colon-here"),
                               NULL, NULL, &ctx),
                      AUTH_INVALID);
        cr_assert_eq (s_check (cfg, "Basic !!!!", NULL, NULL, &ctx), AUTH_INVALID);
        config_destroy (&cfg);
    }
}

Test (auth, password_header_and_query)
{
    cg_config_t *cfg = s_config ("password");
    auth_ctx_t ctx;
    cr_assert_eq (s_check (cfg, NULL, PASSWORD, NULL, &ctx), AUTH_OK);
    cr_assert_str_eq (ctx.principal, "password");
    cr_assert_eq (s_check (cfg, NULL, PASSWORD "!", NULL, &ctx), AUTH_INVALID);
    cr_assert_eq (s_check (cfg, NULL, NULL, "password=s3cret%3Apass+word", &ctx),
                  AUTH_OK);
    cr_assert_eq (ctx.scopes, SCOPE_ALL);
    cr_assert_eq (s_check (cfg, NULL, NULL, "password=s3cret", &ctx), AUTH_INVALID);
    //  Tokens are not accepted in password mode.
    cr_assert_eq (s_check (cfg, "Bearer " MAIN_TOKEN, NULL, NULL, &ctx), AUTH_INVALID);
    cr_assert_eq (s_check (cfg, NULL, NULL, "token=" MAIN_TOKEN_QUERY, &ctx),
                  AUTH_INVALID);
    config_destroy (&cfg);
}

Test (auth, password_refused_in_token_mode)
{
    cg_config_t *cfg = s_config ("token");
    auth_ctx_t ctx;
    char header[128];
    cr_assert_eq (s_check (cfg, NULL, PASSWORD, NULL, &ctx), AUTH_INVALID);
    cr_assert_eq (s_check (cfg, s_basic (header, sizeof (header), "alice:" PASSWORD),
                           NULL, NULL, &ctx),
                  AUTH_INVALID);
    cr_assert_eq (s_check (cfg, NULL, NULL, "password=s3cret%3Apass+word", &ctx),
                  AUTH_INVALID);
    cr_assert_eq (ctx.scopes, 0);
    config_destroy (&cfg);
}

Test (auth, scoped_token)
{
    cg_config_t *cfg = s_config ("token");
    auth_ctx_t ctx;
    cr_assert_eq (s_check (cfg, "Bearer " SCOPED_TOKEN, NULL, NULL, &ctx), AUTH_OK);
    cr_assert_eq (ctx.scopes, SCOPE_CHAT | SCOPE_SESSIONS);
    cr_assert_str_eq (ctx.principal, "token:ci");
    cr_assert_eq (s_check (cfg, NULL, NULL, "token=" SCOPED_TOKEN, &ctx), AUTH_OK);
    cr_assert_eq (ctx.scopes, SCOPE_CHAT | SCOPE_SESSIONS);
    //  The main token still gets everything after a scoped check.
    cr_assert_eq (s_check (cfg, "Bearer " MAIN_TOKEN, NULL, NULL, &ctx), AUTH_OK);
    cr_assert_eq (ctx.scopes, SCOPE_ALL);
    config_destroy (&cfg);
}

Test (auth, mode_none_is_anonymous)
{
    cg_config_t *cfg = s_config ("none");
    auth_ctx_t ctx;
    cr_assert_eq (s_check (cfg, NULL, NULL, NULL, &ctx), AUTH_OK);
    cr_assert_eq (ctx.scopes, SCOPE_ALL);
    cr_assert_str_eq (ctx.principal, "anonymous");
    //  Whatever is offered, even a wrong credential.
    cr_assert_eq (s_check (cfg, "Bearer wrong", "wrong", "token=x", &ctx), AUTH_OK);
    cr_assert_str_eq (ctx.principal, "anonymous");
    config_destroy (&cfg);
}
