/*  =========================================================================
    cg_standin - stand-in for the OpenAI and Anthropic chat APIs

    Answers POST /v1/chat/completions (OpenAI Chat Completions) and
    POST /v1/messages (Anthropic Messages) in the providers' own wire
    formats, streaming (SSE over chunked transfer encoding) or not, so the
    gateway and its HTTP client cannot tell it from the real services.
    Replies are deterministic:

        "Hello from the <openai|anthropic> stand-in. You said: <last user text>"

    split into one delta per word, or "Tool said: <result>" when the last
    message is a tool result.  Token counts are word counts.

    The requested model name picks a behaviour (the part after the last
    '/', so "openai/stall" works too):
        error-NNN   that HTTP status with the provider's error body
                    (error-429 also sends Retry-After: 7)
        garbage     200 with a body that is not JSON / not valid SSE
        stall       headers (and the first delta), then silence until the
                    client leaves (counted as aborted) or 60 s pass
        slow        50 ms between deltas, 500 ms before a non-streamed reply
        split       body written 1-3 bytes at a time; reply has "héllo→"
        long        200 deltas, no delay
        tool        a call to the first tool in "tools" (arguments: the last
                    user message when it is a JSON object, else a fixed url)
        anything else: the normal reply

    Test hooks: GET /_last returns the last POST (path, parsed body and the
    headers a gateway sets), GET /_stats the request counters, POST /_reset
    zeroes them.

    usage: cg_standin --port N [--threads N] [--openai-key K]
                      [--anthropic-key K]
    Prints "listening on 127.0.0.1:PORT" and serves until SIGINT or SIGTERM.
    =========================================================================
*/
#include <civetweb.h>
#include <cjson/cJSON.h>

#include <arpa/inet.h>
#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_BODY      (10 * 1024 * 1024)  //  Largest request body accepted
#define BUF_FIXED     16384               //  Inline bytes of a buf_t
#define HEAD_ROOM     1024                //  Room kept for response headers
#define CHUNK_ROOM    16                  //  Room for a chunk-size line
#define STALL_MS      60000               //  How long "stall" holds on
#define SLOW_DELTA_MS 50                  //  "slow": pause between deltas
#define SLOW_REPLY_MS 500                 //  "slow": pause before a reply
#define LONG_DELTAS   200                 //  "long": deltas per reply
#define POLL_SLICE_MS 250                 //  Longest wait between checks
#define MAX_HEADER    512                 //  Longest header /_last keeps

#define TOOL_CALL_ID  "call_standin_1"
#define TOOL_USE_ID   "toolu_standin_1"
#define TOOL_TOKENS   4                   //  Completion tokens of a call
#define THINKING_TEXT "Thinking about it."
#define SIGNATURE     "c3RhbmRpbi1zaWduYXR1cmU="

enum { OPENAI, ANTHROPIC };

typedef enum {
    KNOB_NORMAL,
    KNOB_ERROR,
    KNOB_GARBAGE,
    KNOB_STALL,
    KNOB_SLOW,
    KNOB_SPLIT,
    KNOB_LONG,
    KNOB_TOOL
} knob_t;

//  Arguments of every tool call, and the pieces they are streamed in.
static const char *s_tool_args = "{\"url\":\"http://127.0.0.1/\"}";
static const char *s_tool_pieces[] = {"{\"url\":", "\"http://127.0.0.1/",
                                      "\"}", NULL};
static const char *s_thinking_pieces[] = {"Thinking", " about", " it.", NULL};

//  Request headers /_last reports, in lower case as they appear there.
static const char *s_kept_headers[] = {"authorization", "x-api-key",
                                       "anthropic-version", "anthropic-beta",
                                       NULL};
#define KEPT_HEADERS 4

typedef struct {
    bool present;                    //  The request carried the header
    char value[MAX_HEADER];          //  Its value, truncated
} kept_header_t;

typedef struct {
    struct mg_context *ctx;          //  civetweb
    const char *openai_key;          //  Bearer key to require, or NULL
    const char *anthropic_key;       //  x-api-key to require, or NULL
    int port;                        //  Bound port
    atomic_bool stopping;            //  Set on SIGINT/SIGTERM
    atomic_long requests;            //  API requests received
    atomic_long active;              //  API requests being served
    atomic_long completed;           //  API requests served to the end
    atomic_long aborted;             //  API requests whose client left
    atomic_long next_id;             //  Numbers response ids
    pthread_mutex_t last_lock;       //  Guards the last_* fields
    bool last_seen;                  //  A POST has been recorded
    char last_path[256];             //  Its path
    char *last_body;                 //  Its raw body (owned), or NULL
    size_t last_len;                 //  Bytes in last_body
    kept_header_t last_headers[KEPT_HEADERS];  //  Its headers of interest
} self_t;

//  A byte buffer with inline storage and room to prepend headers.
typedef struct {
    char *data;                      //  fixed, or a heap block
    size_t start;                    //  First byte of the content
    size_t end;                      //  One past its last byte
    size_t cap;                      //  Bytes at data
    bool failed;                     //  An allocation failed; content is cut
    char fixed[BUF_FIXED];           //  Storage for the common case
} buf_t;

//  One API request being served.
typedef struct {
    self_t *self;                    //  Server state (not owned)
    struct mg_connection *conn;      //  civetweb connection
    int provider;                    //  OPENAI or ANTHROPIC
    long id;                         //  Response number
    long created;                    //  Unix time of the response
    cJSON *root;                     //  Parsed request body (owned)
    const char *model;               //  Requested model (in root)
    knob_t knob;                     //  Behaviour picked by the model
    int error_status;                //  Status for KNOB_ERROR
    bool stream;                     //  Answer with SSE
    bool include_usage;              //  OpenAI stream_options.include_usage
    bool thinking;                   //  Anthropic thinking enabled
    bool tool_call;                  //  Answer with a tool call
    const char *tool_name;           //  First tool's name (in root)
    bool tool_result;                //  Last message is a tool result
    char tool_args[1024];            //  Arguments of the tool call made
    bool custom_args;                //  ... taken from the user's message
    long prompt_tokens;              //  Words in the request's messages
    long completion_tokens;          //  Words in the answer
    bool keep_alive;                 //  Connection stays open afterwards
    bool failed;                     //  The client went away
    int fd;                          //  Client socket, -1 until looked up
    unsigned split_at;               //  "split": position in the 1-2-3 cycle
    char head[HEAD_ROOM];            //  Stream headers not yet written
    size_t head_len;                 //  Bytes in head, 0 once written
    buf_t reply;                     //  Assistant text
    buf_t out;                       //  Response bytes being assembled
} req_t;

//  Scripted tool calls: when the last user message is itself a JSON object,
//  the "tool" model calls its tool with that object as the arguments (so a
//  test can make the model ask for any page); otherwise with s_tool_args.
static void
s_pick_tool_args (req_t *req, const cJSON *user_content)
{
    snprintf (req->tool_args, sizeof (req->tool_args), "%s", s_tool_args);
    req->custom_args = false;
    if (!cJSON_IsString (user_content) || user_content->valuestring[0] != '{')
        return;
    cJSON *j = cJSON_Parse (user_content->valuestring);
    char *text = cJSON_IsObject (j) ? cJSON_PrintUnformatted (j) : NULL;
    if (text && strlen (text) < sizeof (req->tool_args)) {
        snprintf (req->tool_args, sizeof (req->tool_args), "%s", text);
        req->custom_args = true;
    }
    cJSON_free (text);
    cJSON_Delete (j);
}

static int64_t
s_now_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_MONOTONIC, &ts);
    return (int64_t) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

//  ---- Buffers ----------------------------------------------------------------

static void
s_buf_init (buf_t *self, size_t room)
{
    self->data = self->fixed;
    self->cap = sizeof (self->fixed);
    self->start = self->end = room;
    self->failed = false;
}

static void
s_buf_fini (buf_t *self)
{
    if (self->data != self->fixed)
        free (self->data);
    self->data = self->fixed;
}

//  Empties the buffer, keeping room bytes in front for s_buf_prepend.
static void
s_buf_reset (buf_t *self, size_t room)
{
    self->start = self->end = room;
}

static bool
s_buf_reserve (buf_t *self, size_t more)
{
    if (self->failed)
        return false;
    if (self->end + more <= self->cap)
        return true;
    size_t cap = self->cap * 2;
    if (cap < self->end + more)
        cap = self->end + more + 4096;
    char *data = self->data == self->fixed ? malloc (cap)
                                           : realloc (self->data, cap);
    if (!data) {
        self->failed = true;
        return false;
    }
    if (self->data == self->fixed)
        memcpy (data, self->fixed, self->end);
    self->data = data;
    self->cap = cap;
    return true;
}

static void
s_buf_append (buf_t *self, const char *bytes, size_t len)
{
    if (s_buf_reserve (self, len)) {
        memcpy (self->data + self->end, bytes, len);
        self->end += len;
    }
}

static void
s_buf_puts (buf_t *self, const char *text)
{
    s_buf_append (self, text, strlen (text));
}

static void
s_buf_printf (buf_t *self, const char *format, ...)
    __attribute__ ((format (printf, 2, 3)));

static void
s_buf_printf (buf_t *self, const char *format, ...)
{
    char line[256];
    va_list args;
    va_start (args, format);
    int len = vsnprintf (line, sizeof (line), format, args);
    va_end (args);
    assert (len >= 0 && (size_t) len < sizeof (line));
    s_buf_append (self, line, (size_t) len);
}

//  Appends text as a JSON string, quotes included.
static void
s_buf_json (buf_t *self, const char *text, size_t len)
{
    s_buf_append (self, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char) text[i];
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        s_buf_append (self, text + run, i - run);
        run = i + 1;
        switch (c) {
            case '"':  s_buf_append (self, "\\\"", 2); break;
            case '\\': s_buf_append (self, "\\\\", 2); break;
            case '\n': s_buf_append (self, "\\n", 2); break;
            case '\r': s_buf_append (self, "\\r", 2); break;
            case '\t': s_buf_append (self, "\\t", 2); break;
            default:   s_buf_printf (self, "\\u%04x", c); break;
        }
    }
    s_buf_append (self, text + run, len - run);
    s_buf_append (self, "\"", 1);
}

static void
s_buf_json_str (buf_t *self, const char *text)
{
    s_buf_json (self, text, strlen (text));
}

//  Puts bytes in front of the content; the room was kept by init or reset.
static void
s_buf_prepend (buf_t *self, const char *bytes, size_t len)
{
    assert (len <= self->start);
    self->start -= len;
    memcpy (self->data + self->start, bytes, len);
}

//  ---- Words ------------------------------------------------------------------

static bool
s_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v'
           || c == '\f';
}

static long
s_count_words (const char *text, size_t len)
{
    long words = 0;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        bool space = s_is_space (text[i]);
        if (!space && !in_word)
            words++;
        in_word = !space;
    }
    return words;
}

//  Length of the next delta: leading whitespace, then one word.
static size_t
s_token_len (const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && s_is_space (text[i]))
        i++;
    while (i < len && !s_is_space (text[i]))
        i++;
    return i;
}

//  Counts the words of a message content: a string, or an array of blocks
//  whose text sits in "text" or, for tool results, in "content".
static long
s_count_content (const cJSON *content)
{
    if (cJSON_IsString (content))
        return s_count_words (content->valuestring,
                              strlen (content->valuestring));
    long words = 0;
    const cJSON *part;
    if (cJSON_IsArray (content))
        cJSON_ArrayForEach (part, content) {
            if (cJSON_IsString (part)) {
                words += s_count_content (part);
                continue;
            }
            const cJSON *text = cJSON_GetObjectItemCaseSensitive (part, "text");
            if (cJSON_IsString (text))
                words += s_count_content (text);
            const cJSON *inner
                = cJSON_GetObjectItemCaseSensitive (part, "content");
            if (inner)
                words += s_count_content (inner);
        }
    return words;
}

//  Appends the text of a message content to buf, parts separated by a space.
//  With results_only, only tool_result blocks count, else only text blocks.
static void
s_append_content (buf_t *buf, const cJSON *content, bool results_only)
{
    if (cJSON_IsString (content)) {
        s_buf_puts (buf, content->valuestring);
        return;
    }
    bool first = true;
    const cJSON *part;
    if (cJSON_IsArray (content))
        cJSON_ArrayForEach (part, content) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive (part, "type");
            if (!cJSON_IsString (type)
                || strcmp (type->valuestring,
                           results_only ? "tool_result" : "text")
                       != 0)
                continue;
            const cJSON *text = cJSON_GetObjectItemCaseSensitive (
                part, results_only ? "content" : "text");
            if (!text)
                continue;
            if (!first)
                s_buf_append (buf, " ", 1);
            first = false;
            s_append_content (buf, text, false);
        }
}

//  True if an Anthropic content array holds a tool_result block.
static bool
s_has_tool_result (const cJSON *content)
{
    const cJSON *part;
    if (cJSON_IsArray (content))
        cJSON_ArrayForEach (part, content) {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive (part, "type");
            if (cJSON_IsString (type)
                && strcmp (type->valuestring, "tool_result") == 0)
                return true;
        }
    return false;
}

//  ---- Client socket ----------------------------------------------------------

//  civetweb does not hand out a connection's socket, so find it: the one
//  socket whose local port is ours and whose peer is this request's client.
//  Only the knobs that wait or hang up need it.
static int
s_find_socket (req_t *req)
{
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    DIR *dir = opendir ("/proc/self/fd");
    if (!dir)
        return -1;
    int found = -1;
    struct dirent *entry;
    while (found < 0 && (entry = readdir (dir)) != NULL) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9')
            continue;
        int fd = atoi (entry->d_name);
        struct sockaddr_storage local, peer;
        socklen_t local_len = sizeof (local), peer_len = sizeof (peer);
        if (getsockname (fd, (struct sockaddr *) &local, &local_len) != 0
            || getpeername (fd, (struct sockaddr *) &peer, &peer_len) != 0)
            continue;
        char addr[INET6_ADDRSTRLEN] = "";
        int local_port = -1, peer_port = -1;
        if (local.ss_family == AF_INET && peer.ss_family == AF_INET) {
            struct sockaddr_in *l = (struct sockaddr_in *) &local;
            struct sockaddr_in *p = (struct sockaddr_in *) &peer;
            local_port = ntohs (l->sin_port);
            peer_port = ntohs (p->sin_port);
            inet_ntop (AF_INET, &p->sin_addr, addr, sizeof (addr));
        }
        else if (local.ss_family == AF_INET6 && peer.ss_family == AF_INET6) {
            struct sockaddr_in6 *l = (struct sockaddr_in6 *) &local;
            struct sockaddr_in6 *p = (struct sockaddr_in6 *) &peer;
            local_port = ntohs (l->sin6_port);
            peer_port = ntohs (p->sin6_port);
            inet_ntop (AF_INET6, &p->sin6_addr, addr, sizeof (addr));
        }
        if (local_port == req->self->port && peer_port == ri->remote_port
            && strcmp (addr, ri->remote_addr) == 0)
            found = fd;
    }
    closedir (dir);
    return found;
}

//  Waits ms milliseconds, watching the client.  Returns 0 when the time is
//  up (or the server is stopping), -1 as soon as the client hangs up.
static int
s_pause (req_t *req, int ms)
{
    if (req->fd < 0)
        req->fd = s_find_socket (req);
    int64_t deadline = s_now_ms () + ms;
    short events = POLLIN | POLLRDHUP;
    while (!atomic_load (&req->self->stopping)) {
        int64_t left = deadline - s_now_ms ();
        if (left <= 0)
            return 0;
        if (left > POLL_SLICE_MS)
            left = POLL_SLICE_MS;
        if (req->fd < 0) {
            usleep ((useconds_t) left * 1000);
            continue;
        }
        struct pollfd item = {req->fd, events, 0};
        if (poll (&item, 1, (int) left) <= 0)
            continue;
        if (item.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
            return -1;
        if (item.revents & POLLIN) {
            char byte;
            ssize_t rc = recv (req->fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
            if (rc == 0
                || (rc < 0 && errno != EAGAIN && errno != EWOULDBLOCK
                    && errno != EINTR))
                return -1;
            //  The client sent more (a pipelined request): from now on only
            //  a hang-up wakes us, or poll would return at once forever.
            events = POLLRDHUP;
        }
    }
    return 0;
}

//  Ends the connection from our side, after what has been written.
static void
s_hang_up (req_t *req)
{
    if (req->fd < 0)
        req->fd = s_find_socket (req);
    if (req->fd >= 0)
        shutdown (req->fd, SHUT_RDWR);
}

//  ---- Writing ----------------------------------------------------------------

static int
s_write (req_t *req, const char *bytes, size_t len)
{
    if (req->failed)
        return -1;
    if (len && mg_write (req->conn, bytes, len) != (int) len) {
        req->failed = true;
        return -1;
    }
    return 0;
}

//  Formats a response head into head.  A content_length below 0 means a
//  chunked body.  Returns the head's length.
static size_t
s_format_head (req_t *req, char *head, size_t size, int status,
               const char *content_type, long long content_length,
               const char *extra)
{
    //  Hooks (/_stats, /_last) have no response id and send no id header.
    char length[48], id[32] = "";
    const char *id_name = "";
    if (req->id) {
        snprintf (id, sizeof (id), "req_standin_%ld", req->id);
        id_name = req->provider == ANTHROPIC ? "request-id: "
                                             : "x-request-id: ";
    }
    if (content_length >= 0)
        snprintf (length, sizeof (length), "Content-Length: %lld\r\n",
                  content_length);
    else
        snprintf (length, sizeof (length), "Transfer-Encoding: chunked\r\n");
    int len = snprintf (
        head, size,
        "HTTP/1.1 %d %s\r\n"
        "Content-Type: %s\r\n"
        "%s"
        "%s"
        "%s%s%s"
        "%s"
        "Connection: %s\r\n"
        "\r\n",
        status, mg_get_response_code_text (req->conn, status), content_type,
        length, content_length < 0 ? "Cache-Control: no-cache\r\n" : "",
        id_name, id, req->id ? "\r\n" : "", extra ? extra : "",
        req->keep_alive ? "keep-alive" : "close");
    assert (len > 0 && (size_t) len < size);
    return (size_t) len;
}

//  Writes bytes 1, 2 or 3 at a time, each piece its own chunk if chunked.
static int
s_write_split (req_t *req, const char *bytes, size_t len, bool chunked)
{
    size_t done = 0;
    while (done < len) {
        size_t piece = 1 + req->split_at++ % 3;
        //  Cut every multi-byte character after its first byte, so the
        //  reader always sees a character split across reads.
        if ((unsigned char) bytes[done] >= 0xc0)
            piece = 1;
        if (piece > len - done)
            piece = len - done;
        char frame[16];
        int frame_len = 0;
        if (chunked)
            frame_len = snprintf (frame, sizeof (frame), "%zx\r\n%.*s\r\n",
                                  piece, (int) piece, bytes + done);
        else {
            memcpy (frame, bytes + done, piece);
            frame_len = (int) piece;
        }
        if (s_write (req, frame, (size_t) frame_len) != 0)
            return -1;
        done += piece;
    }
    return 0;
}

//  Sends req->out as the whole body of a response, headers and body in one
//  write.  Returns status.
static int
s_respond (req_t *req, int status, const char *content_type,
           const char *extra)
{
    buf_t *out = &req->out;
    if (out->failed) {
        s_buf_fini (out);
        s_buf_init (out, HEAD_ROOM);
        s_buf_puts (out, "{\"error\":\"out of memory\"}");
        status = 500;
    }
    char head[HEAD_ROOM];
    size_t head_len
        = s_format_head (req, head, sizeof (head), status, content_type,
                         (long long) (out->end - out->start), extra);
    if (req->knob == KNOB_SPLIT) {
        if (s_write (req, head, head_len) == 0)
            s_write_split (req, out->data + out->start, out->end - out->start,
                           false);
        return status;
    }
    s_buf_prepend (out, head, head_len);
    s_write (req, out->data + out->start, out->end - out->start);
    return status;
}

static int
s_respond_json (req_t *req, int status, const char *extra)
{
    return s_respond (req, status, "application/json", extra);
}

//  Prepares the head of a 200 SSE response; the first event carries it.
static void
s_stream_start (req_t *req)
{
    req->head_len
        = s_format_head (req, req->head, sizeof (req->head), 200,
                         "text/event-stream; charset=utf-8", -1, NULL);
}

static void
s_event_begin (req_t *req)
{
    s_buf_reset (&req->out, HEAD_ROOM + CHUNK_ROOM);
}

//  Sends the event in req->out as one chunk, with the head if it is still
//  pending, in one write.
static int
s_event_end (req_t *req)
{
    buf_t *out = &req->out;
    if (req->failed)
        return -1;
    if (out->failed) {
        req->failed = true;
        return -1;
    }
    if (req->knob == KNOB_SPLIT) {
        if (req->head_len && s_write (req, req->head, req->head_len) != 0)
            return -1;
        req->head_len = 0;
        return s_write_split (req, out->data + out->start,
                              out->end - out->start, true);
    }
    char line[CHUNK_ROOM];
    int line_len
        = snprintf (line, sizeof (line), "%zx\r\n", out->end - out->start);
    s_buf_prepend (out, line, (size_t) line_len);
    s_buf_append (out, "\r\n", 2);
    if (req->head_len) {
        s_buf_prepend (out, req->head, req->head_len);
        req->head_len = 0;
    }
    return s_write (req, out->data + out->start, out->end - out->start);
}

//  Ends the chunked body.
static int
s_stream_end (req_t *req)
{
    return s_write (req, "0\r\n\r\n", 5);
}

//  Holds the connection open without writing until the client leaves
//  (aborted) or STALL_MS pass (then we hang up).
static void
s_stall (req_t *req)
{
    if (s_pause (req, STALL_MS) != 0)
        req->failed = true;
    else
        s_hang_up (req);
}

//  Runs after each delta: "stall" stops here, "slow" waits here.  Returns
//  -1 when the stream must not go on.
static int
s_delta_done (req_t *req)
{
    if (req->failed)
        return -1;
    if (req->knob == KNOB_STALL) {
        s_stall (req);
        return -1;
    }
    if (req->knob == KNOB_SLOW && s_pause (req, SLOW_DELTA_MS) != 0) {
        req->failed = true;
        return -1;
    }
    return 0;
}

//  "garbage": a 200 whose body no parser accepts.  A stream is cut after
//  one broken event, with Connection: close.
static int
s_garbage (req_t *req)
{
    buf_t *out = &req->out;
    s_buf_reset (out, HEAD_ROOM);
    if (!req->stream) {
        s_buf_puts (out, "{\"id\":\"garbage\",\"choices\":[{not json");
        return s_respond_json (req, 200, NULL);
    }
    if (req->provider == ANTHROPIC)
        s_buf_puts (out, "event: message_start\n");
    s_buf_puts (out, "data: {not json\n\n");
    req->fd = s_find_socket (req);
    if (req->fd < 0) {
        //  Cannot hang up: send the broken event in a well-framed stream.
        s_stream_start (req);
        s_event_begin (req);
        s_buf_puts (out, "data: {not json\n\n");
        if (s_event_end (req) == 0)
            s_stream_end (req);
        return 200;
    }
    req->keep_alive = false;
    char head[HEAD_ROOM];
    int len = snprintf (head, sizeof (head),
                        "HTTP/1.1 200 OK\r\n"
                        "Content-Type: text/event-stream; charset=utf-8\r\n"
                        "Cache-Control: no-cache\r\n"
                        "Connection: close\r\n\r\n");
    s_buf_prepend (out, head, (size_t) len);
    s_write (req, out->data + out->start, out->end - out->start);
    s_hang_up (req);
    return 200;
}

//  ---- Errors -----------------------------------------------------------------

//  Sends {"error":{"message","type","param","code"}} as OpenAI does.
static int
s_openai_error (req_t *req, int status, const char *message, const char *type,
                const char *code, const char *extra)
{
    buf_t *out = &req->out;
    s_buf_reset (out, HEAD_ROOM);
    s_buf_puts (out, "{\"error\":{\"message\":");
    s_buf_json_str (out, message);
    s_buf_puts (out, ",\"type\":");
    s_buf_json_str (out, type);
    s_buf_puts (out, ",\"param\":null,\"code\":");
    if (code)
        s_buf_json_str (out, code);
    else
        s_buf_puts (out, "null");
    s_buf_puts (out, "}}");
    return s_respond_json (req, status, extra);
}

//  Sends {"type":"error","error":{"type","message"}} as Anthropic does.
static int
s_anthropic_error (req_t *req, int status, const char *type,
                   const char *message, const char *extra)
{
    buf_t *out = &req->out;
    s_buf_reset (out, HEAD_ROOM);
    s_buf_puts (out, "{\"type\":\"error\",\"error\":{\"type\":");
    s_buf_json_str (out, type);
    s_buf_puts (out, ",\"message\":");
    s_buf_json_str (out, message);
    s_buf_puts (out, "}}");
    return s_respond_json (req, status, extra);
}

//  Sends the error the knob error-NNN asks for, in the provider's format.
static int
s_knob_error (req_t *req)
{
    int status = req->error_status;
    const char *extra = status == 429 ? "Retry-After: 7\r\n" : NULL;
    if (status == 401)
        req->keep_alive = false;     //  civetweb closes after any 401
    if (req->provider == OPENAI) {
        switch (status) {
            case 400:
                return s_openai_error (req, status,
                                       "Invalid request (stand-in error-400)",
                                       "invalid_request_error", NULL, extra);
            case 401:
                return s_openai_error (req, status,
                                       "Incorrect API key provided",
                                       "invalid_request_error",
                                       "invalid_api_key", extra);
            case 429:
                return s_openai_error (
                    req, status,
                    "Rate limit reached for requests (stand-in error-429)",
                    "requests", "rate_limit_exceeded", extra);
            case 500:
                return s_openai_error (req, status,
                                       "The server had an error while "
                                       "processing your request. Sorry "
                                       "about that!",
                                       "server_error", NULL, extra);
            case 503:
                return s_openai_error (req, status,
                                       "The server is overloaded or not "
                                       "ready yet.",
                                       "server_error", NULL, extra);
            default:
                return s_openai_error (req, status,
                                       "Stand-in error", status >= 500
                                           ? "server_error"
                                           : "invalid_request_error",
                                       NULL, extra);
        }
    }
    switch (status) {
        case 400:
            return s_anthropic_error (req, status, "invalid_request_error",
                                      "Invalid request (stand-in error-400)",
                                      extra);
        case 401:
            return s_anthropic_error (req, status, "authentication_error",
                                      "invalid x-api-key", extra);
        case 403:
            return s_anthropic_error (req, status, "permission_error",
                                      "Permission denied", extra);
        case 404:
            return s_anthropic_error (req, status, "not_found_error",
                                      "Not found", extra);
        case 429:
            return s_anthropic_error (
                req, status, "rate_limit_error",
                "Number of requests has exceeded your rate limit "
                "(stand-in error-429)",
                extra);
        case 503:
        case 529:
            return s_anthropic_error (req, status, "overloaded_error",
                                      "Overloaded", extra);
        default:
            return s_anthropic_error (
                req, status,
                status >= 500 ? "api_error" : "invalid_request_error",
                status >= 500 ? "Internal server error" : "Stand-in error",
                extra);
    }
}

//  ---- Requests ---------------------------------------------------------------

static knob_t
s_knob (const char *model, int *status)
{
    const char *name = strrchr (model, '/');
    name = name ? name + 1 : model;
    if (strncmp (name, "error-", 6) == 0) {
        int code = atoi (name + 6);
        if (code >= 400 && code <= 599) {
            *status = code;
            return KNOB_ERROR;
        }
    }
    if (strcmp (name, "garbage") == 0)
        return KNOB_GARBAGE;
    if (strcmp (name, "stall") == 0)
        return KNOB_STALL;
    if (strcmp (name, "slow") == 0)
        return KNOB_SLOW;
    if (strcmp (name, "split") == 0)
        return KNOB_SPLIT;
    if (strcmp (name, "long") == 0)
        return KNOB_LONG;
    if (strcmp (name, "tool") == 0)
        return KNOB_TOOL;
    return KNOB_NORMAL;
}

//  Mirrors civetweb's keep-alive rule, so the Connection header we write
//  tells the truth.
static bool
s_keep_alive (struct mg_connection *conn)
{
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *header = mg_get_header (conn, "Connection");
    if (header)
        return strcasestr (header, "keep-alive") != NULL;
    return ri->http_version && strcmp (ri->http_version, "1.1") == 0;
}

static void
s_req_init (req_t *req, self_t *self, struct mg_connection *conn,
            int provider)
{
    req->self = self;
    req->conn = conn;
    req->provider = provider;
    req->id = 0;
    req->created = (long) time (NULL);
    req->root = NULL;
    req->model = "";
    req->knob = KNOB_NORMAL;
    req->error_status = 0;
    req->stream = req->include_usage = req->thinking = false;
    req->tool_call = req->tool_result = false;
    req->tool_name = NULL;
    req->prompt_tokens = req->completion_tokens = 0;
    req->keep_alive = s_keep_alive (conn);
    req->failed = false;
    req->fd = -1;
    req->split_at = 0;
    req->head_len = 0;
    s_buf_init (&req->reply, 0);
    s_buf_init (&req->out, HEAD_ROOM);
}

static void
s_req_fini (req_t *req)
{
    cJSON_Delete (req->root);
    req->root = NULL;
    s_buf_fini (&req->reply);
    s_buf_fini (&req->out);
}

//  Reads the request body into a fresh NUL-terminated buffer.  Returns 0,
//  -1 if the client went away, -2 if the body is larger than MAX_BODY.
static int
s_read_body (struct mg_connection *conn, char **body_p, size_t *len_p)
{
    long long expected = mg_get_request_info (conn)->content_length;
    if (expected > MAX_BODY)
        return -2;
    size_t cap = expected >= 0 ? (size_t) expected + 1 : 4096;
    size_t len = 0;
    char *body = malloc (cap);
    if (!body)
        return -1;
    while (expected < 0 || len < (size_t) expected) {
        if (len + 1 == cap) {
            if (cap > MAX_BODY) {
                free (body);
                return -2;
            }
            char *bigger = realloc (body, cap * 2);
            if (!bigger) {
                free (body);
                return -1;
            }
            body = bigger;
            cap *= 2;
        }
        int got = mg_read (conn, body + len, cap - 1 - len);
        if (got <= 0) {
            if (expected < 0)
                break;
            free (body);
            return -1;
        }
        len += (size_t) got;
    }
    if (len > MAX_BODY) {
        free (body);
        return -2;
    }
    body[len] = '\0';
    *body_p = body;
    *len_p = len;
    return 0;
}

//  Keeps the POST for /_last, taking the body (*body_p becomes NULL).
static void
s_record (self_t *self, struct mg_connection *conn, const char *path,
          char **body_p, size_t len)
{
    kept_header_t headers[KEPT_HEADERS];
    for (int i = 0; i < KEPT_HEADERS; i++) {
        const char *value = mg_get_header (conn, s_kept_headers[i]);
        headers[i].present = value != NULL;
        if (value)
            snprintf (headers[i].value, sizeof (headers[i].value), "%s",
                      value);
    }
    char *old = NULL;
    pthread_mutex_lock (&self->last_lock);
    self->last_seen = true;
    snprintf (self->last_path, sizeof (self->last_path), "%s", path);
    old = self->last_body;
    self->last_body = body_p ? *body_p : NULL;
    self->last_len = body_p ? len : 0;
    for (int i = 0; i < KEPT_HEADERS; i++) {
        self->last_headers[i].present = headers[i].present;
        if (headers[i].present)
            memcpy (self->last_headers[i].value, headers[i].value,
                    strlen (headers[i].value) + 1);
    }
    pthread_mutex_unlock (&self->last_lock);
    if (body_p)
        *body_p = NULL;
    free (old);
}

//  Builds the reply text and counts its tokens.  user_content is the last
//  user message's content (or the tool result's).
static void
s_build_reply (req_t *req, const cJSON *user_content)
{
    buf_t *reply = &req->reply;
    if (req->tool_result) {
        s_buf_puts (reply, "Tool said: ");
        s_append_content (reply, user_content,
                          req->provider == ANTHROPIC);
    }
    else {
        s_buf_puts (reply, req->provider == OPENAI
                               ? "Hello from the openai stand-in. "
                               : "Hello from the anthropic stand-in. ");
        if (req->knob == KNOB_SPLIT)
            s_buf_puts (reply, "h\xc3\xa9llo\xe2\x86\x92 ");
        s_buf_puts (reply, "You said: ");
        if (user_content)
            s_append_content (reply, user_content, false);
    }
    long words = s_count_words (reply->data + reply->start,
                                reply->end - reply->start);
    if (req->knob == KNOB_LONG)
        for (; words < LONG_DELTAS; words++)
            s_buf_printf (reply, " w%ld", words + 1);
    req->completion_tokens = req->tool_call ? TOOL_TOKENS : words;
    if (req->thinking)
        req->completion_tokens += s_count_words (THINKING_TEXT,
                                                 strlen (THINKING_TEXT));
}

//  ---- OpenAI -----------------------------------------------------------------

//  Appends the start of a chunk object, up to "delta":.
static void
s_openai_chunk_head (req_t *req)
{
    buf_t *out = &req->out;
    s_buf_printf (out,
                  "data: {\"id\":\"chatcmpl-standin-%ld\","
                  "\"object\":\"chat.completion.chunk\",\"created\":%ld,"
                  "\"model\":",
                  req->id, req->created);
    s_buf_json_str (out, req->model);
}

//  Sends one chunk whose delta is the JSON given (ending with a brace).
static int
s_openai_delta (req_t *req, const char *delta_open, const char *text,
                size_t len, const char *delta_close, const char *finish)
{
    buf_t *out = &req->out;
    s_event_begin (req);
    s_openai_chunk_head (req);
    s_buf_puts (out, ",\"choices\":[{\"index\":0,\"delta\":");
    s_buf_puts (out, delta_open);
    if (text)
        s_buf_json (out, text, len);
    s_buf_puts (out, delta_close);
    s_buf_puts (out, ",\"logprobs\":null,\"finish_reason\":");
    s_buf_puts (out, finish);
    s_buf_puts (out, "}]}\n\n");
    return s_event_end (req);
}

static void
s_openai_usage (req_t *req)
{
    s_buf_printf (&req->out,
                  "\"usage\":{\"prompt_tokens\":%ld,\"completion_tokens\":%ld,"
                  "\"total_tokens\":%ld}",
                  req->prompt_tokens, req->completion_tokens,
                  req->prompt_tokens + req->completion_tokens);
}

static void
s_openai_tool_call (req_t *req, bool with_arguments)
{
    buf_t *out = &req->out;
    s_buf_puts (out, "\"tool_calls\":[{");
    if (!with_arguments)
        s_buf_puts (out, "\"index\":0,");
    s_buf_puts (out, "\"id\":\"" TOOL_CALL_ID "\",\"type\":\"function\","
                     "\"function\":{\"name\":");
    s_buf_json_str (out, req->tool_name);
    s_buf_puts (out, ",\"arguments\":");
    if (with_arguments)
        s_buf_json_str (out, req->tool_args);
    else
        s_buf_puts (out, "\"\"");
    s_buf_puts (out, "}}]");
}

static int
s_openai_reply (req_t *req)
{
    buf_t *out = &req->out;
    s_buf_reset (out, HEAD_ROOM);
    s_buf_printf (out,
                  "{\"id\":\"chatcmpl-standin-%ld\","
                  "\"object\":\"chat.completion\",\"created\":%ld,"
                  "\"model\":",
                  req->id, req->created);
    s_buf_json_str (out, req->model);
    s_buf_puts (out, ",\"choices\":[{\"index\":0,\"message\":"
                     "{\"role\":\"assistant\",\"content\":");
    if (req->tool_call) {
        s_buf_puts (out, "null,");
        s_openai_tool_call (req, true);
    }
    else
        s_buf_json (out, req->reply.data + req->reply.start,
                    req->reply.end - req->reply.start);
    s_buf_puts (out, "},\"logprobs\":null,\"finish_reason\":");
    s_buf_puts (out, req->tool_call ? "\"tool_calls\"}]," : "\"stop\"}],");
    s_openai_usage (req);
    s_buf_puts (out, "}");
    if (req->knob == KNOB_STALL) {
        char head[HEAD_ROOM];
        size_t head_len = s_format_head (req, head, sizeof (head), 200,
                                         "application/json",
                                         (long long) (out->end - out->start),
                                         NULL);
        if (s_write (req, head, head_len) == 0)
            s_stall (req);
        return 200;
    }
    return s_respond_json (req, 200, NULL);
}

static int
s_openai_stream (req_t *req)
{
    s_stream_start (req);
    if (req->tool_call) {
        s_event_begin (req);
        s_openai_chunk_head (req);
        s_buf_puts (&req->out, ",\"choices\":[{\"index\":0,\"delta\":"
                               "{\"role\":\"assistant\",\"content\":null,");
        s_openai_tool_call (req, false);
        s_buf_puts (&req->out, "},\"logprobs\":null,\"finish_reason\":null}]}"
                               "\n\n");
        if (s_event_end (req) != 0 || s_delta_done (req) != 0)
            return 200;
        const char *mine[] = {req->tool_args, NULL};
        const char **pieces = req->custom_args ? mine : s_tool_pieces;
        for (int i = 0; pieces[i]; i++) {
            const char *piece = pieces[i];
            if (s_openai_delta (req,
                                "{\"tool_calls\":[{\"index\":0,\"function\":"
                                "{\"arguments\":",
                                piece, strlen (piece), "}}]}", "null")
                    != 0
                || s_delta_done (req) != 0)
                return 200;
        }
    }
    else {
        if (s_openai_delta (req, "{\"role\":\"assistant\",\"content\":\"\"}",
                            NULL, 0, "", "null")
            != 0)
            return 200;
        const char *text = req->reply.data + req->reply.start;
        size_t len = req->reply.end - req->reply.start;
        while (len) {
            size_t token = s_token_len (text, len);
            if (s_openai_delta (req, "{\"content\":", text, token, "}",
                                "null")
                    != 0
                || s_delta_done (req) != 0)
                return 200;
            text += token;
            len -= token;
        }
    }
    if (s_openai_delta (req, "{}", NULL, 0, "",
                        req->tool_call ? "\"tool_calls\"" : "\"stop\"")
        != 0)
        return 200;
    if (req->include_usage) {
        s_event_begin (req);
        s_openai_chunk_head (req);
        s_buf_puts (&req->out, ",\"choices\":[],");
        s_openai_usage (req);
        s_buf_puts (&req->out, "}\n\n");
        if (s_event_end (req) != 0)
            return 200;
    }
    s_event_begin (req);
    s_buf_puts (&req->out, "data: [DONE]\n\n");
    if (s_event_end (req) == 0)
        s_stream_end (req);
    return 200;
}

//  True if the Authorization header is "Bearer <key>".
static bool
s_bearer_ok (req_t *req, const char *key)
{
    const char *header = mg_get_header (req->conn, "Authorization");
    if (!header || strncasecmp (header, "Bearer ", 7) != 0)
        return false;
    header += 7;
    while (*header == ' ')
        header++;
    size_t len = strlen (header);
    while (len && header[len - 1] == ' ')
        len--;
    return len == strlen (key) && memcmp (header, key, len) == 0;
}

static int
s_openai_serve (req_t *req)
{
    const char *key = req->self->openai_key;
    if (key && !s_bearer_ok (req, key)) {
        req->keep_alive = false;     //  civetweb closes after any 401
        return s_openai_error (req, 401, "Incorrect API key provided",
                               "invalid_request_error", "invalid_api_key",
                               NULL);
    }
    cJSON *root = req->root;
    if (!cJSON_IsObject (root))
        return s_openai_error (
            req, 400,
            "We could not parse the JSON body of your request. (HINT: This "
            "likely means you aren't using your HTTP library correctly. The "
            "OpenAI API expects a JSON payload, but what was sent was not "
            "valid JSON.)",
            "invalid_request_error", NULL, NULL);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (root, "model");
    if (!cJSON_IsString (model))
        return s_openai_error (req, 400, "you must provide a model parameter",
                               "invalid_request_error", NULL, NULL);
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive (root, "messages");
    if (!cJSON_IsArray (messages))
        return s_openai_error (req, 400,
                               "Missing required parameter: 'messages'.",
                               "invalid_request_error", NULL, NULL);
    if (cJSON_GetArraySize (messages) == 0)
        return s_openai_error (req, 400,
                               "Invalid 'messages': empty array. Expected an "
                               "array with minimum length 1, but got an "
                               "empty array instead.",
                               "invalid_request_error", NULL, NULL);
    req->model = model->valuestring;
    req->knob = s_knob (req->model, &req->error_status);
    req->stream = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (root,
                                                                  "stream"));
    const cJSON *options
        = cJSON_GetObjectItemCaseSensitive (root, "stream_options");
    req->include_usage = cJSON_IsTrue (
        cJSON_GetObjectItemCaseSensitive (options, "include_usage"));

    //  Tokens, the last user message, and whether a tool result ends it.
    const cJSON *message, *user_content = NULL;
    cJSON_ArrayForEach (message, messages) {
        const cJSON *content
            = cJSON_GetObjectItemCaseSensitive (message, "content");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive (message, "role");
        req->prompt_tokens += s_count_content (content);
        req->tool_result = cJSON_IsString (role)
                           && strcmp (role->valuestring, "tool") == 0;
        if (cJSON_IsString (role)
            && (strcmp (role->valuestring, "user") == 0 || req->tool_result))
            user_content = content;
    }
    const cJSON *tools = cJSON_GetObjectItemCaseSensitive (root, "tools");
    const cJSON *function = cJSON_GetObjectItemCaseSensitive (
        cJSON_GetArrayItem (tools, 0), "function");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive (function, "name");
    if (cJSON_IsString (name))
        req->tool_name = name->valuestring;
    req->tool_call = req->knob == KNOB_TOOL && req->tool_name
                     && !req->tool_result;
    s_pick_tool_args (req, user_content);

    if (req->knob == KNOB_ERROR)
        return s_knob_error (req);
    if (req->knob == KNOB_GARBAGE)
        return s_garbage (req);
    s_build_reply (req, user_content);
    if (req->reply.failed)
        return s_openai_error (req, 500, "Out of memory", "server_error",
                               NULL, NULL);
    if (req->stream)
        return s_openai_stream (req);
    if (req->knob == KNOB_SLOW && s_pause (req, SLOW_REPLY_MS) != 0) {
        req->failed = true;
        return 200;
    }
    return s_openai_reply (req);
}

//  ---- Anthropic --------------------------------------------------------------

static void
s_anthropic_event_begin (req_t *req, const char *name)
{
    s_event_begin (req);
    s_buf_puts (&req->out, "event: ");
    s_buf_puts (&req->out, name);
    s_buf_puts (&req->out, "\ndata: ");
}

static int
s_anthropic_event_end (req_t *req)
{
    s_buf_puts (&req->out, "\n\n");
    return s_event_end (req);
}

static int
s_anthropic_delta (req_t *req, int index, const char *type,
                   const char *field, const char *text, size_t len)
{
    s_anthropic_event_begin (req, "content_block_delta");
    s_buf_printf (&req->out,
                  "{\"type\":\"content_block_delta\",\"index\":%d,"
                  "\"delta\":{\"type\":\"%s\",\"%s\":",
                  index, type, field);
    s_buf_json (&req->out, text, len);
    s_buf_puts (&req->out, "}}");
    return s_anthropic_event_end (req);
}

static int
s_anthropic_block_stop (req_t *req, int index)
{
    s_anthropic_event_begin (req, "content_block_stop");
    s_buf_printf (&req->out, "{\"type\":\"content_block_stop\",\"index\":%d}",
                  index);
    return s_anthropic_event_end (req);
}

//  Sends content_block_start, followed by a ping after the first block.
static int
s_anthropic_block_start (req_t *req, int index, const char *block)
{
    s_anthropic_event_begin (req, "content_block_start");
    s_buf_printf (&req->out,
                  "{\"type\":\"content_block_start\",\"index\":%d,"
                  "\"content_block\":",
                  index);
    s_buf_puts (&req->out, block);
    s_buf_puts (&req->out, "}");
    if (s_anthropic_event_end (req) != 0)
        return -1;
    if (index > 0)
        return 0;
    s_anthropic_event_begin (req, "ping");
    s_buf_puts (&req->out, "{\"type\": \"ping\"}");
    return s_anthropic_event_end (req);
}

static int
s_anthropic_stream (req_t *req)
{
    buf_t *out = &req->out;
    s_stream_start (req);
    s_anthropic_event_begin (req, "message_start");
    s_buf_printf (out,
                  "{\"type\":\"message_start\",\"message\":"
                  "{\"id\":\"msg_standin_%ld\",\"type\":\"message\","
                  "\"role\":\"assistant\",\"model\":",
                  req->id);
    s_buf_json_str (out, req->model);
    s_buf_printf (out,
                  ",\"content\":[],\"stop_reason\":null,"
                  "\"stop_sequence\":null,\"usage\":{\"input_tokens\":%ld,"
                  "\"output_tokens\":1}}}",
                  req->prompt_tokens);
    if (s_anthropic_event_end (req) != 0)
        return 200;

    int index = 0;
    if (req->thinking) {
        if (s_anthropic_block_start (req, index,
                                     "{\"type\":\"thinking\","
                                     "\"thinking\":\"\"}")
            != 0)
            return 200;
        for (int i = 0; s_thinking_pieces[i]; i++) {
            const char *piece = s_thinking_pieces[i];
            if (s_anthropic_delta (req, index, "thinking_delta", "thinking",
                                   piece, strlen (piece))
                    != 0
                || s_delta_done (req) != 0)
                return 200;
        }
        if (s_anthropic_delta (req, index, "signature_delta", "signature",
                               SIGNATURE, strlen (SIGNATURE))
                != 0
            || s_anthropic_block_stop (req, index) != 0)
            return 200;
        index++;
    }
    if (req->tool_call) {
        s_anthropic_event_begin (req, "content_block_start");
        s_buf_printf (out,
                      "{\"type\":\"content_block_start\",\"index\":%d,"
                      "\"content_block\":{\"type\":\"tool_use\","
                      "\"id\":\"" TOOL_USE_ID "\",\"name\":",
                      index);
        s_buf_json_str (out, req->tool_name);
        s_buf_puts (out, ",\"input\":{}}}");
        if (s_anthropic_event_end (req) != 0)
            return 200;
        if (index == 0) {
            s_anthropic_event_begin (req, "ping");
            s_buf_puts (out, "{\"type\": \"ping\"}");
            if (s_anthropic_event_end (req) != 0)
                return 200;
        }
        if (s_anthropic_delta (req, index, "input_json_delta", "partial_json",
                               "", 0)
            != 0)
            return 200;
        const char *mine[] = {req->tool_args, NULL};
        const char **pieces = req->custom_args ? mine : s_tool_pieces;
        for (int i = 0; pieces[i]; i++) {
            const char *piece = pieces[i];
            if (s_anthropic_delta (req, index, "input_json_delta",
                                   "partial_json", piece, strlen (piece))
                    != 0
                || s_delta_done (req) != 0)
                return 200;
        }
    }
    else {
        if (s_anthropic_block_start (req, index,
                                     "{\"type\":\"text\",\"text\":\"\"}")
            != 0)
            return 200;
        const char *text = req->reply.data + req->reply.start;
        size_t len = req->reply.end - req->reply.start;
        while (len) {
            size_t token = s_token_len (text, len);
            if (s_anthropic_delta (req, index, "text_delta", "text", text,
                                   token)
                    != 0
                || s_delta_done (req) != 0)
                return 200;
            text += token;
            len -= token;
        }
    }
    if (s_anthropic_block_stop (req, index) != 0)
        return 200;
    s_anthropic_event_begin (req, "message_delta");
    s_buf_printf (out,
                  "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                  "\"%s\",\"stop_sequence\":null},\"usage\":"
                  "{\"output_tokens\":%ld}}",
                  req->tool_call ? "tool_use" : "end_turn",
                  req->completion_tokens);
    if (s_anthropic_event_end (req) != 0)
        return 200;
    s_anthropic_event_begin (req, "message_stop");
    s_buf_puts (out, "{\"type\":\"message_stop\"}");
    if (s_anthropic_event_end (req) == 0)
        s_stream_end (req);
    return 200;
}

static int
s_anthropic_reply (req_t *req)
{
    buf_t *out = &req->out;
    s_buf_reset (out, HEAD_ROOM);
    s_buf_printf (out,
                  "{\"id\":\"msg_standin_%ld\",\"type\":\"message\","
                  "\"role\":\"assistant\",\"model\":",
                  req->id);
    s_buf_json_str (out, req->model);
    s_buf_puts (out, ",\"content\":[");
    if (req->thinking)
        s_buf_puts (out, "{\"type\":\"thinking\",\"thinking\":\"" THINKING_TEXT
                         "\",\"signature\":\"" SIGNATURE "\"},");
    if (req->tool_call) {
        s_buf_puts (out, "{\"type\":\"tool_use\",\"id\":\"" TOOL_USE_ID
                         "\",\"name\":");
        s_buf_json_str (out, req->tool_name);
        s_buf_puts (out, ",\"input\":");
        s_buf_puts (out, req->tool_args);
        s_buf_puts (out, "}");
    }
    else {
        s_buf_puts (out, "{\"type\":\"text\",\"text\":");
        s_buf_json (out, req->reply.data + req->reply.start,
                    req->reply.end - req->reply.start);
        s_buf_puts (out, "}");
    }
    s_buf_printf (out,
                  "],\"stop_reason\":\"%s\",\"stop_sequence\":null,"
                  "\"usage\":{\"input_tokens\":%ld,\"output_tokens\":%ld}}",
                  req->tool_call ? "tool_use" : "end_turn",
                  req->prompt_tokens, req->completion_tokens);
    if (req->knob == KNOB_STALL) {
        char head[HEAD_ROOM];
        size_t head_len = s_format_head (req, head, sizeof (head), 200,
                                         "application/json",
                                         (long long) (out->end - out->start),
                                         NULL);
        if (s_write (req, head, head_len) == 0)
            s_stall (req);
        return 200;
    }
    return s_respond_json (req, 200, NULL);
}

static int
s_anthropic_serve (req_t *req)
{
    //  Anthropic's own SDK sends the key as x-api-key or, in its newer
    //  releases, as "Authorization: Bearer <key>"; the API takes both.
    const char *key = req->self->anthropic_key;
    if (key) {
        const char *given = mg_get_header (req->conn, "x-api-key");
        if (!(given && strcmp (given, key) == 0) && !s_bearer_ok (req, key)) {
            req->keep_alive = false; //  civetweb closes after any 401
            return s_anthropic_error (req, 401, "authentication_error",
                                      "invalid x-api-key", NULL);
        }
    }
    if (!mg_get_header (req->conn, "anthropic-version"))
        return s_anthropic_error (req, 400, "invalid_request_error",
                                  "anthropic-version: header is required",
                                  NULL);
    cJSON *root = req->root;
    if (!cJSON_IsObject (root))
        return s_anthropic_error (req, 400, "invalid_request_error",
                                  "There was an issue with your request body: "
                                  "it is not valid JSON",
                                  NULL);
    const cJSON *model = cJSON_GetObjectItemCaseSensitive (root, "model");
    if (!cJSON_IsString (model))
        return s_anthropic_error (req, 400, "invalid_request_error",
                                  "model: Field required", NULL);
    const cJSON *messages = cJSON_GetObjectItemCaseSensitive (root, "messages");
    if (!cJSON_IsArray (messages))
        return s_anthropic_error (req, 400, "invalid_request_error",
                                  "messages: Field required", NULL);
    if (!cJSON_IsNumber (cJSON_GetObjectItemCaseSensitive (root,
                                                           "max_tokens")))
        return s_anthropic_error (req, 400, "invalid_request_error",
                                  "max_tokens: Field required", NULL);
    req->model = model->valuestring;
    req->knob = s_knob (req->model, &req->error_status);
    req->stream = cJSON_IsTrue (cJSON_GetObjectItemCaseSensitive (root,
                                                                  "stream"));
    const cJSON *thinking = cJSON_GetObjectItemCaseSensitive (root, "thinking");
    const cJSON *thinking_type
        = cJSON_GetObjectItemCaseSensitive (thinking, "type");
    req->thinking = cJSON_IsString (thinking_type)
                    && strcmp (thinking_type->valuestring, "disabled") != 0;

    req->prompt_tokens
        = s_count_content (cJSON_GetObjectItemCaseSensitive (root, "system"));
    const cJSON *message, *user_content = NULL;
    cJSON_ArrayForEach (message, messages) {
        const cJSON *content
            = cJSON_GetObjectItemCaseSensitive (message, "content");
        const cJSON *role = cJSON_GetObjectItemCaseSensitive (message, "role");
        req->prompt_tokens += s_count_content (content);
        bool user = cJSON_IsString (role)
                    && strcmp (role->valuestring, "user") == 0;
        req->tool_result = user && s_has_tool_result (content);
        if (user)
            user_content = content;
    }
    const cJSON *name = cJSON_GetObjectItemCaseSensitive (
        cJSON_GetArrayItem (cJSON_GetObjectItemCaseSensitive (root, "tools"),
                            0),
        "name");
    if (cJSON_IsString (name))
        req->tool_name = name->valuestring;
    req->tool_call = req->knob == KNOB_TOOL && req->tool_name
                     && !req->tool_result;
    s_pick_tool_args (req, user_content);

    if (req->knob == KNOB_ERROR)
        return s_knob_error (req);
    if (req->knob == KNOB_GARBAGE)
        return s_garbage (req);
    s_build_reply (req, user_content);
    if (req->reply.failed)
        return s_anthropic_error (req, 500, "api_error", "Out of memory",
                                  NULL);
    if (req->stream)
        return s_anthropic_stream (req);
    if (req->knob == KNOB_SLOW && s_pause (req, SLOW_REPLY_MS) != 0) {
        req->failed = true;
        return 200;
    }
    return s_anthropic_reply (req);
}

//  ---- API routes -------------------------------------------------------------

static int
s_api_serve (req_t *req, const char *path)
{
    char *body = NULL;
    size_t len = 0;
    int rc = s_read_body (req->conn, &body, &len);
    if (rc == -2) {
        s_record (req->self, req->conn, path, NULL, 0);
        req->keep_alive = false;
        if (req->provider == OPENAI)
            return s_openai_error (req, 413,
                                   "Request body too large (limit 10 MB)",
                                   "invalid_request_error", NULL, NULL);
        return s_anthropic_error (req, 413, "request_too_large",
                                  "Request exceeds the maximum allowed "
                                  "number of bytes.",
                                  NULL);
    }
    if (rc != 0) {
        req->failed = true;
        return 400;
    }
    req->root = cJSON_ParseWithLength (body, len);
    s_record (req->self, req->conn, path, &body, len);
    if (req->provider == OPENAI)
        return s_openai_serve (req);
    return s_anthropic_serve (req);
}

static int
s_api (self_t *self, struct mg_connection *conn, const char *path,
       int provider)
{
    req_t req;
    s_req_init (&req, self, conn, provider);
    req.id = atomic_fetch_add (&self->next_id, 1) + 1;
    atomic_fetch_add (&self->requests, 1);
    atomic_fetch_add (&self->active, 1);
    int status = s_api_serve (&req, path);
    atomic_fetch_add (req.failed ? &self->aborted : &self->completed, 1);
    atomic_fetch_sub (&self->active, 1);
    s_req_fini (&req);
    return status;
}

//  ---- Test hooks -------------------------------------------------------------

static int
s_last (self_t *self, req_t *req)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON *headers = cJSON_CreateObject ();
    pthread_mutex_lock (&self->last_lock);
    if (self->last_seen)
        cJSON_AddStringToObject (root, "path", self->last_path);
    else
        cJSON_AddNullToObject (root, "path");
    cJSON *body = NULL;
    if (self->last_body) {
        body = cJSON_ParseWithLength (self->last_body, self->last_len);
        if (!body)
            body = cJSON_CreateString (self->last_body);
    }
    cJSON_AddItemToObject (root, "body", body ? body : cJSON_CreateNull ());
    for (int i = 0; i < KEPT_HEADERS; i++)
        if (self->last_seen && self->last_headers[i].present)
            cJSON_AddStringToObject (headers, s_kept_headers[i],
                                     self->last_headers[i].value);
        else
            cJSON_AddNullToObject (headers, s_kept_headers[i]);
    pthread_mutex_unlock (&self->last_lock);
    cJSON_AddItemToObject (root, "headers", headers);
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    s_buf_puts (&req->out, text ? text : "{}");
    cJSON_free (text);
    return s_respond_json (req, 200, NULL);
}

static int
s_stats (self_t *self, req_t *req)
{
    s_buf_printf (&req->out,
                  "{\"requests\":%ld,\"active\":%ld,\"completed\":%ld,"
                  "\"aborted\":%ld}",
                  atomic_load (&self->requests), atomic_load (&self->active),
                  atomic_load (&self->completed), atomic_load (&self->aborted));
    return s_respond_json (req, 200, NULL);
}

//  Zeroes the counters; "active" is a gauge of what is running and stays.
static int
s_reset (self_t *self, req_t *req)
{
    atomic_store (&self->requests, 0);
    atomic_store (&self->completed, 0);
    atomic_store (&self->aborted, 0);
    return s_stats (self, req);
}

static int
s_handler (struct mg_connection *conn, void *cbdata)
{
    self_t *self = (self_t *) cbdata;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    const char *path = ri->local_uri ? ri->local_uri : "/";
    bool get = strcmp (ri->request_method, "GET") == 0;
    bool post = strcmp (ri->request_method, "POST") == 0;
    int provider = strcmp (path, "/v1/chat/completions") == 0 ? OPENAI
                   : strcmp (path, "/v1/messages") == 0       ? ANTHROPIC
                                                              : -1;
    if (provider >= 0 && post)
        return s_api (self, conn, path, provider);

    req_t *req = malloc (sizeof (req_t));
    if (!req) {
        mg_send_http_error (conn, 500, "Out of memory");
        return 500;
    }
    s_req_init (req, self, conn, provider == ANTHROPIC ? ANTHROPIC : OPENAI);
    int status;
    if (provider >= 0)
        status = s_openai_error (req, 405, "Method not allowed",
                                 "invalid_request_error", NULL,
                                 "Allow: POST\r\n");
    else if (get && strcmp (path, "/_last") == 0)
        status = s_last (self, req);
    else if (get && strcmp (path, "/_stats") == 0)
        status = s_stats (self, req);
    else if (post && strcmp (path, "/_reset") == 0)
        status = s_reset (self, req);
    else {
        if (post) {
            char *body = NULL;
            size_t len = 0;
            if (s_read_body (conn, &body, &len) == 0)
                s_record (self, conn, path, &body, len);
            else
                s_record (self, conn, path, NULL, 0);
            free (body);
        }
        char message[320];
        snprintf (message, sizeof (message), "Invalid URL (%s %.256s)",
                  ri->request_method, path);
        status = s_openai_error (req, 404, message, "invalid_request_error",
                                 NULL, NULL);
    }
    s_req_fini (req);
    free (req);
    return status;
}

//  ---- Main -------------------------------------------------------------------

static int
s_usage (void)
{
    fprintf (stderr, "usage: cg_standin --port N [--threads N] "
                     "[--openai-key K] [--anthropic-key K]\n");
    return 2;
}

int
main (int argc, char **argv)
{
    int port = -1, threads = 64;
    const char *openai_key = NULL, *anthropic_key = NULL;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return s_usage ();
        if (strcmp (argv[i], "--port") == 0)
            port = atoi (argv[++i]);
        else if (strcmp (argv[i], "--threads") == 0)
            threads = atoi (argv[++i]);
        else if (strcmp (argv[i], "--openai-key") == 0)
            openai_key = argv[++i];
        else if (strcmp (argv[i], "--anthropic-key") == 0)
            anthropic_key = argv[++i];
        else
            return s_usage ();
    }
    if (port < 0 || port > 65535 || threads < 1 || threads > 4096) {
        fprintf (stderr, "cg_standin: need --port 0-65535 and 1-4096 "
                         "threads\n");
        return s_usage ();
    }

    //  Civetweb's threads inherit this mask, so only sigwait sees the signals.
    sigset_t signals;
    sigemptyset (&signals);
    sigaddset (&signals, SIGINT);
    sigaddset (&signals, SIGTERM);
    pthread_sigmask (SIG_BLOCK, &signals, NULL);
    signal (SIGPIPE, SIG_IGN);

    self_t *self = calloc (1, sizeof (self_t));
    if (!self)
        return 1;
    self->openai_key = openai_key;
    self->anthropic_key = anthropic_key;
    pthread_mutex_init (&self->last_lock, NULL);

    //  tcp_nodelay matters: without it Nagle holds back each SSE event
    //  (and the body after the head) for up to 40 ms.
    char ports[32], nthreads[16];
    snprintf (ports, sizeof (ports), "127.0.0.1:%d", port);
    snprintf (nthreads, sizeof (nthreads), "%d", threads);
    const char *options[] = {"listening_ports", ports,
                             "num_threads", nthreads,
                             "enable_keep_alive", "yes",
                             "keep_alive_timeout_ms", "30000",
                             "request_timeout_ms", "30000",
                             "listen_backlog", "1024",
                             "connection_queue", "1024",
                             "decode_url", "yes",
                             "tcp_nodelay", "1",
                             NULL};
    struct mg_callbacks callbacks;
    memset (&callbacks, 0, sizeof (callbacks));
    struct mg_init_data init = {&callbacks, self, options};
    char cw_err[256] = "";
    unsigned code = 0;
    struct mg_error_data error = {&code, cw_err, sizeof (cw_err)};
    mg_init_library (0);
    self->ctx = mg_start2 (&init, &error);
    if (!self->ctx) {
        fprintf (stderr, "cg_standin: cannot listen on %s: %s\n", ports,
                 cw_err[0] ? cw_err : "civetweb failed to start");
        mg_exit_library ();
        pthread_mutex_destroy (&self->last_lock);
        free (self);
        return 1;
    }
    struct mg_server_port sp[4];
    int n = mg_get_server_ports (self->ctx, 4, sp);
    self->port = n > 0 ? sp[0].port : port;
    mg_set_request_handler (self->ctx, "/", s_handler, self);
    printf ("listening on 127.0.0.1:%d\n", self->port);
    fflush (stdout);

    int sig = 0;
    sigwait (&signals, &sig);
    atomic_store (&self->stopping, true);
    mg_stop (self->ctx);
    mg_exit_library ();
    pthread_mutex_destroy (&self->last_lock);
    free (self->last_body);
    free (self);
    return 0;
}
