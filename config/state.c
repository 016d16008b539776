/*  =========================================================================
    state - the state directory, the token file, and the serving checks

    What only makes sense once every source is merged: the state directory
    is created (0700) and, when token auth is on and no token is
    configured, <state>/token is read or generated (0600).
    =========================================================================
*/
#include "config.h"

#include "keys.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int
s_read_token (const char *path, char **token)
{
    FILE *f = fopen (path, "r");
    if (!f)
        return -1;
    char buf[256] = {0};
    size_t n = fread (buf, 1, sizeof (buf) - 1, f);
    fclose (f);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' '))
        buf[--n] = 0;
    if (n < 16)
        return -1;
    *token = strdup (buf);
    return 0;
}

static int
s_generate_token (const char *path, char **token, char *err, size_t errlen)
{
    unsigned char raw[32];
    int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
    if (fd < 0 || read (fd, raw, sizeof (raw)) != (ssize_t) sizeof (raw)) {
        if (fd >= 0)
            close (fd);
        keys_err (err, errlen, "cannot read /dev/urandom to generate a token");
        return -1;
    }
    close (fd);
    char hex[65];
    for (int i = 0; i < 32; i++)
        snprintf (hex + 2 * i, 3, "%02x", raw[i]);
    fd = open (path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        keys_err (err, errlen, "cannot create %s: %s", path, strerror (errno));
        return -1;
    }
    bool ok = write (fd, hex, 64) == 64 && write (fd, "\n", 1) == 1;
    ok = (fsync (fd) == 0) && ok;
    close (fd);
    if (!ok) {
        unlink (path);
        keys_err (err, errlen, "cannot write %s", path);
        return -1;
    }
    *token = strdup (hex);
    return 0;
}

//  ---------------------------------------------------------------------------
//  Creates the state directory and finds or makes the token.

int
config_prepare_state (cg_config_t *self, char *err, size_t errlen)
{
    if (mkdir (self->state_dir, 0700) && errno != EEXIST) {
        keys_err (err, errlen, "stateDir %s: %s", self->state_dir, strerror (errno));
        return -1;
    }
    if (self->token || !(self->auth_mode & AUTH_TOKEN) || self->auth_mode == AUTH_NONE)
        return 0;
    char path[PATH_MAX];
    snprintf (path, sizeof (path), "%s/token", self->state_dir);
    if (s_read_token (path, &self->token) == 0)
        return 0;
    if (access (path, F_OK) == 0) {
        keys_err (err, errlen, "%s: exists but holds no usable token", path);
        return -1;
    }
    if (s_generate_token (path, &self->token, err, errlen))
        return -1;
    self->token_generated = true;
    return 0;
}

//  ---------------------------------------------------------------------------
//  Refuses what must not serve: no auth off loopback, a mode without its
//  credential, a short token.

int
config_check_serving (const cg_config_t *self, char *err, size_t errlen)
{
    if (self->auth_mode == AUTH_NONE && !config_is_loopback (self->bind)) {
        keys_err (err, errlen,
                  "auth: mode 'none' is refused on non-loopback bind %s; set a "
                  "token or bind 127.0.0.1",
                  self->bind);
        return -1;
    }
    if ((self->auth_mode == AUTH_PASSWORD || self->auth_mode == AUTH_BOTH)
        && (!self->password || !*self->password)) {
        keys_err (err, errlen,
                  "auth.password: required by auth mode %s (or "
                  "CLAWGATE_PASSWORD)",
                  config_auth_name (self->auth_mode));
        return -1;
    }
    if (self->token && strlen (self->token) < 16) {
        keys_err (err, errlen, "auth.token: must be at least 16 characters");
        return -1;
    }
    return 0;
}
