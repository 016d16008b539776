/*  =========================================================================
    run_curl - starting a run's current candidate, and its libcurl transfer

    Transfers run on the actor's curl_loop (actors/curl_loop.h): one libcurl
    multi handle whose sockets sit in one epoll set on the actor's loop.
    =========================================================================
*/
#include "run_internal.h"
#include "envelope.h"

#include <string.h>
#include <strings.h>

//  ---- libcurl glue ----------------------------------------------------------------

static size_t
s_on_write (char *data, size_t size, size_t nmemb, void *arg)
{
    run_t *run = (run_t *) arg;
    size_t len = size * nmemb;
    run->last_byte = zclock_mono ();
    if (!run->http_status)
        curl_easy_getinfo (run->easy, CURLINFO_RESPONSE_CODE, &run->http_status);
    if (run->http_status < 200 || run->http_status > 299) {
        //  Keep the start of an error body to explain the failure.
        size_t room = RUN_MAX_ERROR_BODY - run->error_len;
        size_t n = len < room ? len : room;
        char *grown = (char *) realloc (run->error_body, run->error_len + n + 1);
        if (grown) {
            run->error_body = grown;
            memcpy (run->error_body + run->error_len, data, n);
            run->error_len += n;
            run->error_body[run->error_len] = 0;
        }
        return len;
    }
    //  A parse failure stops the transfer at once (libcurl sees a short
    //  write and ends it with CURLE_WRITE_ERROR).
    return provider_parser_feed (run->parser, data, len) == 0 ? len : 0;
}

//  Keeps the upstream's Retry-After, so a 429 can pass it on.
static size_t
s_on_header (char *data, size_t size, size_t nmemb, void *arg)
{
    run_t *run = (run_t *) arg;
    size_t len = size * nmemb;
    run->last_byte = zclock_mono ();
    if (len > 12 && !strncasecmp (data, "Retry-After:", 12)) {
        long v = strtol (data + 12, NULL, 10);
        run->retry_after = v > 0 && v < 86400 ? (int) v : 0;
    }
    return len;
}

void
run_curl_transfer_end (run_t *run)
{
    if (run->easy) {
        self_t *self = run->self;
        curl_loop_remove (self->curl, run->easy);
        //  Keep the handle (and its receive buffer) for the next run: one
        //  handle made and freed per run showed up as malloc churn.
        if (self->n_spare < RUN_SPARE_EASY) {
            curl_easy_reset (run->easy);
            self->spare[self->n_spare++] = run->easy;
        }
        else
            curl_easy_cleanup (run->easy);
        run->easy = NULL;
    }
    curl_slist_free_all (run->headers);
    run->headers = NULL;
    free (run->url);
    free (run->body);
    run->url = run->body = NULL;
    provider_parser_destroy (&run->parser);
    free (run->error_body);
    run->error_body = NULL;
    run->error_len = 0;
    run->http_status = 0;
}

//  Starts the current candidate: echo runs at once, others on libcurl.
int
run_curl_start_transfer (run_t *run)
{
    const char *model = NULL;
    run->provider =
        catalog_find_model (run->self->catalog, run->candidates[run->candidate], &model);
    if (!run->provider) {
        run->err_status = ENVELOPE_NOT_FOUND;
        snprintf (run->err_code, sizeof (run->err_code), "not_found");
        snprintf (run->err_message, sizeof (run->err_message), "Unknown model %s",
                  run->candidates[run->candidate]);
        return -1;
    }
    run->err_status = 0;
    run->retry_after = 0;     //  A fallback must not inherit the last one's
    run->self->sweep_at = 0;  //  Its deadline, stall and echo timers start now
    run_schedule (run->self);
    if (run->provider->type == PROVIDER_ECHO) {
        run_echo_prepare (run);
        run->echo_next = zclock_mono ();
        return 0;
    }
    provider_request_t req = {
        .model = model,
        .system = run->agent ? run->agent->system : NULL,
        .thinking = run->thinking[0] ? run->thinking : NULL,
        .messages = run->messages,
        .tools = run->tools,
        .tool_choice = run->tool_choice,
        .temperature = run->temperature,
        .max_tokens = run->max_tokens,
        .agent_max_tokens = run->agent ? run->agent->max_tokens : 1024,
        .stream = run->stream,
    };
    char err[256];
    if (provider_build (run->provider, &req, &run->url, &run->headers, &run->body, err,
                        sizeof (err))) {
        run->err_status = ENVELOPE_BAD_REQUEST;
        snprintf (run->err_code, sizeof (run->err_code), "invalid_request");
        snprintf (run->err_message, sizeof (run->err_message), "%s", err);
        return -1;
    }
    if (!run_curl_ready (run->self)) {
        run->err_status = ENVELOPE_INTERNAL;
        snprintf (run->err_code, sizeof (run->err_code), "internal_error");
        snprintf (run->err_message, sizeof (run->err_message),
                  "libcurl could not be initialised");
        return -1;
    }
    run->parser =
        provider_parser_new (run->provider->type, run->stream, &run_events_sink, run);
    run->easy =
        run->self->n_spare ? run->self->spare[--run->self->n_spare] : curl_easy_init ();
    if (!run->parser || !run->easy) {
        run->err_status = ENVELOPE_INTERNAL;
        snprintf (run->err_code, sizeof (run->err_code), "internal_error");
        snprintf (run->err_message, sizeof (run->err_message), "Out of memory");
        return -1;
    }
    CURL *e = run->easy;
    curl_easy_setopt (e, CURLOPT_URL, run->url);
    curl_easy_setopt (e, CURLOPT_POSTFIELDS, run->body);
    curl_easy_setopt (e, CURLOPT_HTTPHEADER, run->headers);
    curl_easy_setopt (e, CURLOPT_WRITEFUNCTION, s_on_write);
    curl_easy_setopt (e, CURLOPT_WRITEDATA, run);
    curl_easy_setopt (e, CURLOPT_HEADERFUNCTION, s_on_header);
    curl_easy_setopt (e, CURLOPT_HEADERDATA, run);
    curl_easy_setopt (e, CURLOPT_PRIVATE, run);
    curl_easy_setopt (e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt (e, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
    curl_easy_setopt (e, CURLOPT_CONNECTTIMEOUT_MS,
                      (long) run->provider->connect_timeout_ms);
    //  Stalls (no byte for stallTimeoutMs) are watched by s_sweep (run.c),
    //  to the millisecond: libcurl's low-speed check counts whole seconds
    //  and averages, so it fires late.
    run->last_byte = zclock_mono ();
    curl_easy_setopt (e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt (e, CURLOPT_TCP_KEEPALIVE, 1L);
    if (curl_loop_add (run->self->curl, e)) {
        run->err_status = ENVELOPE_INTERNAL;
        snprintf (run->err_code, sizeof (run->err_code), "internal_error");
        snprintf (run->err_message, sizeof (run->err_message),
                  "Could not start the provider call");
        return -1;
    }
    return 0;
}

//  A libcurl transfer completed (well or not): curl_loop's done callback.
static void
s_transfer_done (void *arg, CURL *easy, CURLcode result)
{
    run_t *run = NULL;
    curl_easy_getinfo (easy, CURLINFO_PRIVATE, (char **) &run);
    if (!run)
        return;
    if (!run->http_status)
        curl_easy_getinfo (easy, CURLINFO_RESPONSE_CODE, &run->http_status);
    if (run->err_status) {
        //  The parser already explained the failure.
    }
    else if (result != CURLE_OK) {
        run->err_status = ENVELOPE_UNAVAILABLE;
        run->err_retry = true;
        snprintf (run->err_code, sizeof (run->err_code), "service_unavailable");
        snprintf (run->err_message, sizeof (run->err_message), "Provider %s %s: %s",
                  run->provider->name,
                  result == CURLE_OPERATION_TIMEDOUT ? "stalled or timed out"
                                                     : "unreachable",
                  curl_easy_strerror (result));
    }
    else if (run->http_status < 200 || run->http_status > 299) {
        run->err_retry = provider_map_error (
            run->provider, run->http_status, run->error_body, run->error_len,
            &run->err_status, run->err_code, sizeof (run->err_code), run->err_message,
            sizeof (run->err_message));
    }
    else
        provider_parser_finish (run->parser);
    if (run->err_status)
        run_next_or_fail (run);
    else if (!strcmp (run->finish, "tool_calls") && run_tools_wanted (run))
        run_tools_round (run);
    else
        run_finish (run, run->finish[0] ? run->finish : "stop");
}

//  libcurl is loaded (curl_lazy.c) and set up on the first provider call,
//  not at start: an idle or echo-only gateway never needs it.
//  curl_global_init is thread-safe from libcurl 7.84 on, which the build
//  requires.
bool
run_curl_ready (self_t *self)
{
    if (!self->curl)
        self->curl = curl_loop_new (self->loop, s_transfer_done, self);
    return self->curl != NULL;
}
