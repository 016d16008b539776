/*  =========================================================================
    route_browser - /v1/browser/status, /navigate and /screenshot

    GET  /v1/browser/status?profile=              -> BROWSER_STATUS
    POST /v1/browser/navigate {url, profile, timeoutMs}   -> BROWSER_NAVIGATE
    POST /v1/browser/screenshot {selector, fullPage, profile}
                                                  -> BROWSER_SCREENSHOT

    The browser actor answers; its msgpack replies map one to one onto the
    JSON bodies (schemas/messages.def).  Status waits controlTimeoutMs.
    Navigate and screenshot may have to start Chromium and wait for a page,
    so they wait the navigation budget (browser.navigateTimeoutMs, or the
    request's timeoutMs) plus a margin: the actor answers 503 at the budget
    itself, the margin only covers the trip.  The wait is sliced so a
    shutting-down front lets go of its thread (PITFALLS 4).
    =========================================================================
*/
#include "routes.h"
#include "msg_names.h"

#include "log.h"

#include <string.h>

#define BROWSER_WAIT_MARGIN_MS 5000

//  Sends type with body to the browser actor, waits up to timeout_ms and
//  relays its answer.  Returns the status sent.
static int
s_call (http_req_t *r, const char *type, mp_writer_t *w, int timeout_ms)
{
    bus_msg_t reply;
    int status = route_ask (r, "browser", type, w, timeout_ms, "browser actor", &reply);
    if (status)
        return status;
    status = http_send_bus_reply (r, &reply, "browser actor");
    bus_msg_fini (&reply);
    return status;
}

//  Packs key: value when value is a string; absent or null packs nothing.
//  Returns 1 if packed, 0 if not, -1 after sending 400 for another type.
static int
s_opt_string (http_req_t *r, const cJSON *req, const char *key, const cJSON **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive (req, key);
    *out = NULL;
    if (!v || cJSON_IsNull (v))
        return 0;
    if (!cJSON_IsString (v)) {
        char msg[96];
        snprintf (msg, sizeof (msg), "'%s' must be a string", key);
        http_send_error (r, 400, "invalid_request", msg, key);
        return -1;
    }
    *out = v;
    return 1;
}

int
route_browser_status (http_req_t *r)
{
    char profile[128] = "";
    const char *q = r->ri->query_string;
    int n = q ? mg_get_var (q, strlen (q), "profile", profile, sizeof (profile)) : -1;
    if (n == -2 || n == 0)
        return http_send_error (r, 400, "invalid_request",
                                "Invalid profile name: 1-64 of A-Z a-z 0-9 . _ -",
                                "profile");
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    if (n > 0)
        mp_kv_str (&w, MK_profile, profile);
    mp_map_end (&w);
    int status = s_call (r, MT_BROWSER_STATUS, &w, r->config->control_timeout_ms);
    mp_writer_fini (&w);
    return status;
}

int
route_browser_navigate (http_req_t *r)
{
    cJSON *req = http_parse_json (r);
    if (!req)
        return r->status;
    const cJSON *url = cJSON_GetObjectItemCaseSensitive (req, "url");
    const cJSON *timeout = cJSON_GetObjectItemCaseSensitive (req, "timeoutMs");
    const cJSON *profile = NULL;  //  Set by s_opt_string if it is reached
    int status = 0;
    int wait_ms = r->config->browser_navigate_timeout_ms;
    if (!cJSON_IsString (url) || !*url->valuestring)
        status =
            http_send_error (r, 400, "invalid_request",
                             "'url' is required and must be a non-empty string", "url");
    else if (timeout && !cJSON_IsNull (timeout)
             && (!cJSON_IsNumber (timeout) || timeout->valuedouble < 100
                 || timeout->valuedouble > 600000
                 || timeout->valuedouble != (double) (int) timeout->valuedouble))
        status = http_send_error (r, 400, "invalid_request",
                                  "'timeoutMs' must be an integer from 100 to 600000",
                                  "timeoutMs");
    else if (s_opt_string (r, req, "profile", &profile) < 0)
        status = r->status;
    if (status) {
        cJSON_Delete (req);
        return status;
    }
    bool has_timeout = timeout && cJSON_IsNumber (timeout);
    if (has_timeout)
        wait_ms = (int) timeout->valuedouble;
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    mp_kv_str (&w, MK_url, url->valuestring);
    if (profile)
        mp_kv_str (&w, MK_profile, profile->valuestring);
    if (has_timeout)
        mp_kv_int (&w, MK_timeoutMs, wait_ms);
    mp_map_end (&w);
    status = s_call (r, MT_BROWSER_NAVIGATE, &w, wait_ms + BROWSER_WAIT_MARGIN_MS);
    mp_writer_fini (&w);
    cJSON_Delete (req);
    return status;
}

int
route_browser_screenshot (http_req_t *r)
{
    //  Every field is optional: an empty body is the viewport.
    cJSON *req = r->body_len ? http_parse_json (r) : cJSON_CreateObject ();
    if (!req)
        return r->status;
    const cJSON *full = cJSON_GetObjectItemCaseSensitive (req, "fullPage");
    const cJSON *selector = NULL, *profile = NULL;
    int status = 0;
    if (s_opt_string (r, req, "selector", &selector) < 0
        || s_opt_string (r, req, "profile", &profile) < 0)
        status = r->status;
    else if (full && !cJSON_IsNull (full) && !cJSON_IsBool (full))
        status = http_send_error (r, 400, "invalid_request",
                                  "'fullPage' must be a boolean", "fullPage");
    if (status) {
        cJSON_Delete (req);
        return status;
    }
    bool has_full = full && cJSON_IsBool (full);
    mp_writer_t w;
    mp_writer_init (&w);
    mp_map_begin (&w);
    if (selector)
        mp_kv_str (&w, MK_selector, selector->valuestring);
    if (profile)
        mp_kv_str (&w, MK_profile, profile->valuestring);
    if (has_full)
        mp_kv_bool (&w, MK_fullPage, cJSON_IsTrue (full));
    mp_map_end (&w);
    status = s_call (r, MT_BROWSER_SCREENSHOT, &w,
                     r->config->browser_navigate_timeout_ms + BROWSER_WAIT_MARGIN_MS);
    mp_writer_fini (&w);
    cJSON_Delete (req);
    return status;
}
