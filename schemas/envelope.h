/*  =========================================================================
    envelope - the header every request and reply carries

    Encoded as a msgpack array of five items:
      [type:str, corr_id:uint, session_key:str|nil, status:int, timeout_ms:int]
    type is a message of schemas/messages.def (at most ENVELOPE_TYPE_MAX
    bytes), session_key at most ENVELOPE_KEY_MAX; status is 0 in requests
    and one of ENVELOPE_* in replies.
    Pure encode/decode: no ZeroMQ here.
    =========================================================================
*/
#ifndef CG_ENVELOPE_H
#define CG_ENVELOPE_H

#include <msgpack.h>
#include <stdbool.h>
#include <stdint.h>

#define ENVELOPE_TYPE_MAX 48
#define ENVELOPE_KEY_MAX 128

//  HTTP-like statuses carried in replies (0 in requests): the status the
//  front answers with.
#define ENVELOPE_OK 200
#define ENVELOPE_BAD_REQUEST 400
#define ENVELOPE_UNAUTHORIZED 401
#define ENVELOPE_FORBIDDEN 403
#define ENVELOPE_NOT_FOUND 404
#define ENVELOPE_TIMEOUT 408
#define ENVELOPE_CONFLICT 409
#define ENVELOPE_TOO_LARGE 413
#define ENVELOPE_RATE_LIMITED 429
#define ENVELOPE_INTERNAL 500
#define ENVELOPE_BAD_GATEWAY 502
#define ENVELOPE_UNAVAILABLE 503
#define ENVELOPE_GATEWAY_TIMEOUT 504

typedef struct {
    char type[ENVELOPE_TYPE_MAX + 1];        //  Message type, e.g. SYSTEM_STATUS
    uint64_t corr_id;                        //  Matches a reply to its request
    char session_key[ENVELOPE_KEY_MAX + 1];  //  Empty when none
    int status;                              //  0 in requests, HTTP-like in replies
    int64_t timeout_ms;                      //  Caller's deadline budget, 0 = none
} envelope_t;

//  Appends the packed envelope to buf.  Returns 0, or -1 when a field does
//  not fit its limits.
int
envelope_pack (const envelope_t *self, msgpack_sbuffer *buf);

//  Decodes size bytes at data into self.  Returns 0, or -1 when the bytes
//  are not a well-formed envelope (self is then zeroed).  Never reads past
//  size, never allocates more than msgpack's zone for these few items.
int
envelope_unpack (envelope_t *self, const void *data, size_t size);

//  Sets type (truncated to its limit) and zeroes the rest.
void
envelope_init (envelope_t *self, const char *type);

#endif
