/*  =========================================================================
    harness - run the real clawgate binary and talk HTTP to it, for tests

    Everything here is made inside a test (criterion forks each test), never
    at file scope.  Processes are killed in proc_stop; a test that fails an
    assertion before that leaves them to the kill in the fixture's fini.
    =========================================================================
*/
#ifndef CG_HARNESS_H
#define CG_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct {
    pid_t pid;        //  Child process
    int out_fd;       //  Its stdout (read end)
    char out[16384];  //  stdout read so far
    size_t out_len;
    char err_path[256];  //  Its stderr goes to this file
} proc_t;

//  Path of the binary under test ($CLAWGATE_BIN).
const char *
harness_bin (void);

//  Milliseconds on the monotonic clock.
long long
harness_now_ms (void);

//  Removes path and everything under it (it need not exist).
void
harness_rmtree (const char *path);

//  Starts the binary with args (NULL-terminated, without argv[0]) and extra
//  environment entries "K=V" (NULL-terminated, may be NULL).  stdout is
//  piped to us, stderr goes to a temp file.  Returns 0 or -1.
int
proc_start (proc_t *p, const char *const args[], const char *const env[]);

//  Waits up to timeout_ms for a stdout line containing needle; copies that
//  line into line.  Returns 0, or -1 on timeout or exit.
int
proc_wait_line (proc_t *p, const char *needle, int timeout_ms, char *line, size_t cap);

//  Sends sig and waits up to timeout_ms for exit; then SIGKILLs.  Returns
//  the exit status (WEXITSTATUS), 128+signal if killed, -1 on error.
int
proc_stop (proc_t *p, int sig, int timeout_ms);

//  Runs the binary to completion with args; captures stderr into err.
//  Returns the exit status.
int
proc_run (const char *const args[], const char *const env[], char *err, size_t cap,
          int timeout_ms);

//  Reads the child's stderr file so far into buf.
void
proc_stderr (proc_t *p, char *buf, size_t cap);

//  A free TCP port on 127.0.0.1 (probed by binding port 0).
int
harness_free_port (void);

//  A fresh temporary directory (mkdtemp); path into buf.
void
harness_tmpdir (char *buf, size_t cap);

//  Writes text to path.
void
harness_write (const char *path, const char *text);

typedef struct {
    long status;  //  HTTP status, 0 if no response
    char *body;   //  Response body, NUL-terminated (owned)
    size_t body_len;
    char headers[4096];  //  Raw response headers
} http_resp_t;

//  One HTTP request with libcurl.  headers: NULL-terminated "K: V" lines or
//  NULL.  body may be NULL.  Returns 0 if a response came back.
int
http_do (const char *method, const char *url, const char *const headers[],
         const char *body, size_t body_len, http_resp_t *resp);

void
http_resp_free (http_resp_t *resp);

//  GET base+path with token as Bearer (NULL: no Authorization header).
//  Returns the status (0: no answer).  The response lands in r when it is
//  not NULL (then http_resp_free it); otherwise it is freed here.
long
http_get_bearer (const char *base, const char *path, const char *token, http_resp_t *r);

//  The integer value of header name in raw response headers, or -1.
long
http_header_long (const char *headers, const char *name);

//  Starts `clawgate gateway --broker requests --port 0 --state-dir state
//  --config config` and waits until it listens; writes its
//  "http://127.0.0.1:PORT" into base.  Returns 0, or -1 with the child's
//  stderr so far in err.
int
gateway_start (proc_t *p, const char *requests, const char *state, const char *config,
               const char *const env[], char *base, size_t cap, char *err, size_t errcap);

//  Connects to 127.0.0.1:port and sends a POST of body (JSON) to path with
//  one extra header line (e.g. "Authorization: Bearer x", no CRLF; NULL
//  for none), for tests that must hang up mid-response.  Returns the
//  socket, or -1.
int
http_raw_post (int port, const char *path, const char *header, const char *body);

//  Reads fd into got (cap bytes, NUL ended) until what was read holds
//  needle.  Returns 0; -1 when timeout_ms pass, the peer closes or got is
//  full first (got then holds what came).
int
http_raw_read_until (int fd, const char *needle, int timeout_ms, char *got, size_t cap);

//  Starts `clawgate broker` on two free loopback ports (written as
//  "tcp://127.0.0.1:PORT" into requests and events, each of at least 32
//  bytes) and waits until it listens.  Returns 0 or -1.
int
broker_start (proc_t *p, const char *config, const char *const env[], char *requests,
              char *events);

//  Starts `clawgate worker --broker requests --actors actors` and waits
//  until it serves.  state_dir NULL: a temporary one (never the user's
//  ~/.clawgate).  Returns 0 or -1.
int
worker_start (proc_t *p, const char *requests, const char *actors, const char *config,
              const char *state_dir, const char *const env[]);

//  A running `clawgate serve` with its own state dir on a free port.
typedef struct {
    proc_t proc;
    int port;
    char state[256];
    char token[128];
    char base[64];  //  "http://127.0.0.1:PORT"
} served_t;

//  Starts serve with an optional config file text (NULL for none) and extra
//  env.  Waits until /health answers.  Returns 0 or -1.
int
served_start (served_t *s, const char *config_json, const char *const env[]);

//  SIGTERM and wait; returns the exit status.
int
served_stop (served_t *s);

//  GET base+path with the served token as Bearer (token may be NULL: none).
int
served_get (served_t *s, const char *path, const char *token, http_resp_t *r);

//  Polls url until it answers with status want or timeout_ms passes;
//  returns the elapsed ms, or -1 on timeout.
int
http_wait_status (const char *url, const char *const headers[], long want,
                  int timeout_ms);

#endif
