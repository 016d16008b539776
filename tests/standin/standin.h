/*  =========================================================================
    standin - what the modules of cg_standin share

    cg_standin is one small program in several files: standin.c (the
    server, its routes and test hooks, main), openai.c and anthropic.c (the
    two providers), request.c (a request's state and the knobs), wire.c
    (writing responses and streams), words.c and buf.c.  This header holds
    their shared types and what each offers the others; it is private to
    the program, like czmq's own umbrella header.
    =========================================================================
*/
#ifndef CG_STANDIN_H
#define CG_STANDIN_H

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

#define MAX_BODY (10 * 1024 * 1024)  //  Largest request body accepted
#define BUF_FIXED 16384              //  Inline bytes of a buf_t
#define HEAD_ROOM 1024               //  Room kept for response headers
#define CHUNK_ROOM 16                //  Room for a chunk-size line
#define STALL_MS 60000               //  How long "stall" holds on
#define SLOW_DELTA_MS 50             //  "slow": pause between deltas
#define SLOW_REPLY_MS 500            //  "slow": pause before a reply
#define LONG_DELTAS 200              //  "long": deltas per reply
#define POLL_SLICE_MS 250            //  Longest wait between checks
#define MAX_HEADER 512               //  Longest header /_last keeps

#define TOOL_CALL_ID "call_standin_1"
#define TOOL_USE_ID "toolu_standin_1"
#define TOOL_TOKENS 4  //  Completion tokens of a call
#define THINKING_TEXT "Thinking about it."
#define SIGNATURE "c3RhbmRpbi1zaWduYXR1cmU="

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

#define KEPT_HEADERS 4

typedef struct {
    bool present;            //  The request carried the header
    char value[MAX_HEADER];  //  Its value, truncated
} kept_header_t;

typedef struct {
    struct mg_context *ctx;                    //  civetweb
    const char *openai_key;                    //  Bearer key to require, or NULL
    const char *anthropic_key;                 //  x-api-key to require, or NULL
    int port;                                  //  Bound port
    atomic_bool stopping;                      //  Set on SIGINT/SIGTERM
    atomic_long requests;                      //  API requests received
    atomic_long active;                        //  API requests being served
    atomic_long completed;                     //  API requests served to the end
    atomic_long aborted;                       //  API requests whose client left
    atomic_long next_id;                       //  Numbers response ids
    pthread_mutex_t last_lock;                 //  Guards the last_* fields
    bool last_seen;                            //  A POST has been recorded
    char last_path[256];                       //  Its path
    char *last_body;                           //  Its raw body (owned), or NULL
    size_t last_len;                           //  Bytes in last_body
    kept_header_t last_headers[KEPT_HEADERS];  //  Its headers of interest
} self_t;

//  A byte buffer with inline storage and room to prepend headers.
typedef struct {
    char *data;             //  fixed, or a heap block
    size_t start;           //  First byte of the content
    size_t end;             //  One past its last byte
    size_t cap;             //  Bytes at data
    bool failed;            //  An allocation failed; content is cut
    char fixed[BUF_FIXED];  //  Storage for the common case
} buf_t;

//  One API request being served.
typedef struct {
    self_t *self;                //  Server state (not owned)
    struct mg_connection *conn;  //  civetweb connection
    int provider;                //  OPENAI or ANTHROPIC
    long id;                     //  Response number
    long created;                //  Unix time of the response
    cJSON *root;                 //  Parsed request body (owned)
    const char *model;           //  Requested model (in root)
    knob_t knob;                 //  Behaviour picked by the model
    int error_status;            //  Status for KNOB_ERROR
    bool stream;                 //  Answer with SSE
    bool include_usage;          //  OpenAI stream_options.include_usage
    bool thinking;               //  Anthropic thinking enabled
    bool tool_call;              //  Answer with a tool call
    const char *tool_name;       //  First tool's name (in root)
    bool tool_result;            //  Last message is a tool result
    char tool_args[1024];        //  Arguments of the tool call made
    bool custom_args;            //  ... taken from the user's message
    long prompt_tokens;          //  Words in the request's messages
    long completion_tokens;      //  Words in the answer
    bool keep_alive;             //  Connection stays open afterwards
    bool failed;                 //  The client went away
    int fd;                      //  Client socket, -1 until looked up
    unsigned split_at;           //  "split": position in the 1-2-3 cycle
    char head[HEAD_ROOM];        //  Stream headers not yet written
    size_t head_len;             //  Bytes in head, 0 once written
    buf_t reply;                 //  Assistant text
    buf_t out;                   //  Response bytes being assembled
} req_t;

//  Arguments of tool calls, in the pieces they are streamed in (request.c).
extern const char *req_tool_pieces[];

//  Request headers /_last reports, in lower case (request.c).
extern const char *req_kept_headers[];

//  ---- buf.c -------------------------------------------------------------------

//  Makes an empty buffer on its inline storage, room bytes kept in front.
void
buf_init (buf_t *self, size_t room);

//  Frees what the buffer allocated.
void
buf_fini (buf_t *self);

//  Empties the buffer, keeping room bytes in front for buf_prepend.
void
buf_reset (buf_t *self, size_t room);

//  Appends len bytes (on allocation failure, sets failed and drops them).
void
buf_append (buf_t *self, const char *bytes, size_t len);

//  Appends a NUL-terminated string.
void
buf_puts (buf_t *self, const char *text);

//  Appends a formatted line of at most 255 bytes.
void
buf_printf (buf_t *self, const char *format, ...) __attribute__ ((format (printf, 2, 3)));

//  Appends text as a JSON string, quotes included.
void
buf_json (buf_t *self, const char *text, size_t len);

//  buf_json of a NUL-terminated string.
void
buf_json_str (buf_t *self, const char *text);

//  Puts bytes in front of the content; the room was kept by init or reset.
void
buf_prepend (buf_t *self, const char *bytes, size_t len);

//  ---- words.c -----------------------------------------------------------------

//  Words in len bytes of text (runs of non-space).
long
words_count (const char *text, size_t len);

//  Length of the next delta: leading whitespace, then one word.
size_t
words_token_len (const char *text, size_t len);

//  Counts the words of a message content: a string, or an array of blocks
//  whose text sits in "text" or, for tool results, in "content".
long
words_count_content (const cJSON *content);

//  Appends the text of a message content to buf, parts separated by a space.
//  With results_only, only tool_result blocks count, else only text blocks.
void
words_append_content (buf_t *buf, const cJSON *content, bool results_only);

//  True if an Anthropic content array holds a tool_result block.
bool
words_has_tool_result (const cJSON *content);

//  ---- wire.c ------------------------------------------------------------------

//  Waits ms milliseconds, watching the client.  Returns 0 when the time is
//  up (or the server is stopping), -1 as soon as the client hangs up.
int
wire_pause (req_t *req, int ms);

//  Writes len bytes to the client; -1 (and req->failed) if it is gone.
int
wire_write (req_t *req, const char *bytes, size_t len);

//  Formats a response head into head.  A content_length below 0 means a
//  chunked body.  Returns the head's length.
size_t
wire_format_head (req_t *req, char *head, size_t size, int status,
                  const char *content_type, long long content_length, const char *extra);

//  Sends req->out as a whole JSON response with status; returns status.
int
wire_respond_json (req_t *req, int status, const char *extra);

//  Sends the whole reply in req->out (JSON, status 200); for the "stall"
//  knob, sends only its head and then stalls.  Returns 200.
int
wire_reply_json (req_t *req);

//  Prepares the head of a 200 SSE response; the first event carries it.
void
wire_stream_start (req_t *req);

//  Empties req->out for the next SSE event, with room for its chunk line.
void
wire_event_begin (req_t *req);

//  Sends the event in req->out as one chunk, with the head if it is still
//  pending, in one write.
int
wire_event_end (req_t *req);

//  Ends the chunked body.
int
wire_stream_end (req_t *req);

//  Holds the connection open without writing until the client leaves
//  (aborted) or STALL_MS pass (then we hang up).
void
wire_stall (req_t *req);

//  Runs after each delta: "stall" stops here, "slow" waits here.  Returns
//  -1 when the stream must not go on.
int
wire_delta_done (req_t *req);

//  "garbage": a 200 whose body no parser accepts.  A stream is cut after
//  one broken event, with Connection: close.
int
wire_garbage (req_t *req);

//  ---- request.c ---------------------------------------------------------------

//  Scripted tool calls: when the last user message is itself a JSON object,
//  the "tool" model calls its tool with that object as the arguments (so a
//  test can make the model ask for any page); otherwise with s_tool_args.
void
req_pick_tool_args (req_t *req, const cJSON *user_content);

//  Sends the error the knob error-NNN asks for, in the provider's format.
int
req_knob_error (req_t *req);

//  The behaviour a model name picks (the part after its last '/'); sets
//  *status for error-NNN.
knob_t
req_knob (const char *model, int *status);

//  Starts serving an API request of provider on conn.
void
req_init (req_t *req, self_t *self, struct mg_connection *conn, int provider);

//  Frees what the request holds.
void
req_fini (req_t *req);

//  Reads the request body into a fresh NUL-terminated buffer.  Returns 0,
//  -1 if the client went away, -2 if the body is larger than MAX_BODY.
int
req_read_body (struct mg_connection *conn, char **body_p, size_t *len_p);

//  Keeps the POST for /_last, taking the body (*body_p becomes NULL).
void
req_record (self_t *self, struct mg_connection *conn, const char *path, char **body_p,
            size_t len);

//  Builds the reply text and counts its tokens.  user_content is the last
//  user message's content (or the tool result's).
void
req_build_reply (req_t *req, const cJSON *user_content);

//  Takes the request's model (a string in req->root, checked by the
//  provider), the knob it names, and whether the body asks for a stream.
void
req_take_model (req_t *req, const cJSON *model);

//  Reads the conversation: adds each message's words to prompt_tokens,
//  sets tool_result if the last message is a tool result (OpenAI: role
//  "tool"; Anthropic: a user message holding a tool_result block).
//  Returns the last user message's content (or the tool result's), lent.
const cJSON *
req_read_messages (req_t *req, const cJSON *messages);

//  A provider's framing of the reply: as one stream of events, or whole.
typedef int (req_send_fn) (req_t *req);

//  Answers a request its provider has parsed (prompt_tokens, tool_name,
//  tool_result set; user_content the last user message's content, or the
//  tool result's): the knob's error or garbage, else the reply built by
//  req_build_reply and sent by stream (if req->stream) or reply.  Returns
//  the HTTP status sent.
int
req_answer (req_t *req, const cJSON *user_content, req_send_fn *stream,
            req_send_fn *reply);

//  True if the Authorization header is "Bearer <key>".
bool
req_bearer_ok (req_t *req, const char *key);

//  ---- openai.c ----------------------------------------------------------------

//  Sends {"error":{"message","type","param","code"}} as OpenAI does.
int
openai_error (req_t *req, int status, const char *message, const char *type,
              const char *code, const char *extra);

//  Answers POST /v1/chat/completions (body parsed in req->root); returns
//  the HTTP status sent.
int
openai_serve (req_t *req);

//  ---- anthropic.c -------------------------------------------------------------

//  Sends {"type":"error","error":{"type","message"}} as Anthropic does.
int
anthropic_error (req_t *req, int status, const char *type, const char *message,
                 const char *extra);

//  Answers POST /v1/messages (body parsed in req->root); returns the HTTP
//  status sent.
int
anthropic_serve (req_t *req);

#endif
