/*  =========================================================================
    graph - the Graph API calls cg_wastandin answers: POST /<version>/
    <phone-number-id>/messages with a text (or other) message, or with a
    read receipt that may carry a typing indicator

    Part of cg_wastandin (see wastandin.c).  Order of checks, as Graph
    does them: the access token (401 code 190), the path (400 code 2500 or
    100/33), the body (400 code 100), then fault rules, then the 24-hour
    window (400 code 131047; templates are exempt).
    =========================================================================
*/
#include "wastandin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define BAD_TOKEN "Invalid OAuth access token - Cannot parse access token"
#define WINDOW_DETAILS                                                                   \
    "Message failed to send because more than 24 hours have passed since the "           \
    "customer last replied to this number."

int
graph_error (wa_req_t *req, int status, int code, const char *message,
             const char *details, int subcode)
{
    cJSON *root = cJSON_CreateObject ();
    cJSON *error = cJSON_AddObjectToObject (root, "error");
    cJSON_AddStringToObject (error, "message", message);
    cJSON_AddStringToObject (error, "type", "OAuthException");
    cJSON_AddNumberToObject (error, "code", code);
    if (subcode)
        cJSON_AddNumberToObject (error, "error_subcode", subcode);
    if (details && *details) {
        cJSON *data = cJSON_AddObjectToObject (error, "error_data");
        cJSON_AddStringToObject (data, "messaging_product", "whatsapp");
        cJSON_AddStringToObject (data, "details", details);
    }
    if (status >= 500)
        cJSON_AddBoolToObject (error, "is_transient", true);
    char trace[32];
    static const char letters[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    trace[0] = 'A';
    for (int i = 1; i < 23; i++)
        trace[i] = letters[rand () % 62];
    trace[23] = 0;
    cJSON_AddStringToObject (error, "fbtrace_id", trace);
    char *text = cJSON_PrintUnformatted (root);
    cJSON_Delete (root);
    char extra[256] = "";
    if (status == 401)
        snprintf (extra, sizeof (extra),
                  "WWW-Authenticate: OAuth \"Facebook Platform\" \"invalid_token\" "
                  "\"%s\"\r\n",
                  code == 190 && subcode == 0 ? BAD_TOKEN : "Session has expired");
    status = wa_send_json (req, status, extra, text);
    cJSON_free (text);
    return status;
}

static int
s_bad_param (wa_req_t *req, const char *message, const char *details)
{
    return graph_error (req, 400, 100, message, details, 0);
}

//  Code points in UTF-8 text.
static size_t
s_code_points (const char *text)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        if ((*p & 0xC0) != 0x80)
            n++;
    return n;
}

//  Answers a call as a fault rule says.
static int
s_fault (wa_req_t *req, fault_t *f)
{
    int http = f->http;
    switch (f->kind) {
    case FAULT_131047:
        return graph_error (req, http ? http : 400, 131047,
                            "(#131047) Re-engagement message", WINDOW_DETAILS, 0);
    case FAULT_130429:
        return graph_error (req, http ? http : 429, 130429, "(#130429) Rate limit hit",
                            "Cloud API message throughput has been reached.", 0);
    case FAULT_131056:
        return graph_error (req, http ? http : 429, 131056,
                            "(#131056) (Business Account, Consumer Account) pair rate "
                            "limit hit",
                            "Message failed to send because there were too many "
                            "messages sent from this phone number to the same phone "
                            "number in a short period of time.",
                            0);
    case FAULT_190:
        return graph_error (req, http ? http : 401, 190,
                            "Error validating access token: Session has expired on "
                            "Thursday, 01-Jan-26 00:00:00 PST.",
                            NULL, 463);
    case FAULT_131026:
        return graph_error (req, http ? http : 400, 131026,
                            "(#131026) Message Undeliverable.",
                            "Message failed to send because the recipient is not a "
                            "WhatsApp user or has not accepted the latest terms.",
                            0);
    case FAULT_100:
        return graph_error (req, http ? http : 400, 100, "(#100) Invalid parameter",
                            "Invalid parameter", 0);
    case FAULT_500:
        return graph_error (req, http ? http : 500, 1, "An unknown error has occurred.",
                            NULL, 0);
    case FAULT_502:
        return graph_error (req, http ? http : 502, 1, "An unknown error occurred", NULL,
                            0);
    case FAULT_503:
        return graph_error (req, http ? http : 503, 2,
                            "(#2) Service temporarily unavailable", NULL, 0);
    case FAULT_HANG:
        wa_pause (req, -1);
        wa_hang_up (req);
        return 499;
    case FAULT_DROP:
    default: wa_hang_up (req); return 499;
    }
}

//  The code and title of the failed status an async fault of kind posts.
static int
s_async_error (fault_kind_t kind, const char **title)
{
    switch (kind) {
    case FAULT_131047: *title = "Re-engagement message"; return 131047;
    case FAULT_130429: *title = "Rate limit hit"; return 130429;
    case FAULT_131056:
        *title = "(Business Account, Consumer Account) pair rate limit hit";
        return 131056;
    case FAULT_131026: *title = "Message undeliverable"; return 131026;
    case FAULT_100: *title = "Invalid parameter"; return 100;
    default: *title = "Something went wrong"; return 131000;
    }
}

//  Takes a fault for this call, if one applies, and counts it.  Lock not
//  held.
static bool
s_faulted (wa_t *self, const char *on, const char *to, fault_t *fault)
{
    pthread_mutex_lock (&self->lock);
    bool faulted = store_take_fault (self, on, to, fault);
    if (faulted)
        store_count (self, "faulted");
    pthread_mutex_unlock (&self->lock);
    return faulted;
}

static int
s_read (wa_req_t *req, cJSON *body)
{
    wa_t *self = req->self;
    if (strcmp (wa_str (body, "status", ""), "read") != 0)
        return s_bad_param (req, "(#100) Invalid parameter",
                            "Param status must be one of {READ}");
    const char *message_id = wa_str (body, "message_id", NULL);
    if (!message_id || !*message_id)
        return s_bad_param (req, "(#100) The parameter message_id is required.", NULL);
    cJSON *typing = cJSON_GetObjectItem (body, "typing_indicator");
    if (typing
        && (!cJSON_IsObject (typing)
            || strcmp (wa_str (typing, "type", ""), "text") != 0))
        return s_bad_param (req, "(#100) Invalid parameter",
                            "Param typing_indicator['type'] must be one of {TEXT}");
    pthread_mutex_lock (&self->lock);
    const char *from = wa_str (self->inbound, message_id, "");
    char to[64];
    snprintf (to, sizeof (to), "%s", from);
    pthread_mutex_unlock (&self->lock);
    fault_t fault;
    if (s_faulted (self, "read", to, &fault))
        return s_fault (req, &fault);

    pthread_mutex_lock (&self->lock);
    store_count (self, "read");
    if (typing)
        store_count (self, "typing");
    cJSON *entry = cJSON_CreateObject ();
    cJSON_AddNumberToObject (entry, "seq", (double) self->next_seq++);
    cJSON_AddStringToObject (entry, "message_id", message_id);
    cJSON_AddBoolToObject (entry, "typing", typing != NULL);
    cJSON_AddBoolToObject (entry, "known", *to != 0);
    cJSON_AddStringToObject (entry, "wa_id", to);
    cJSON_AddNumberToObject (entry, "at_ms", (double) store_now_ms (self));
    cJSON_AddItemToArray (self->reads, entry);
    store_save (self);
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    return wa_send_json (req, 200, NULL, "{\"success\":true}");
}

static int
s_message (wa_req_t *req, cJSON *body)
{
    wa_t *self = req->self;
    const char *to = wa_str (body, "to", NULL);
    if (!to || !*to)
        return s_bad_param (req, "(#100) The parameter to is required.", NULL);
    char wa_id[64];
    size_t n = 0;
    for (const char *p = to; *p && n + 1 < sizeof (wa_id); p++)
        if (isdigit ((unsigned char) *p))
            wa_id[n++] = *p;
    wa_id[n] = 0;
    if (n == 0)
        return s_bad_param (req, "(#100) Invalid parameter",
                            "Param to must be a valid phone number");
    const char *type = wa_str (body, "type", "text");
    const char *text = NULL;
    if (strcmp (type, "text") == 0) {
        cJSON *t = cJSON_GetObjectItem (body, "text");
        text = wa_str (t, "body", NULL);
        if (!text || !*text)
            return s_bad_param (req, "(#100) The parameter text['body'] is required.",
                                NULL);
        if (s_code_points (text) > WA_MAX_TEXT)
            return s_bad_param (req, "(#100) Invalid parameter",
                                "Param text['body'] must be at most 4096 characters "
                                "long.");
    }
    else if (!cJSON_IsObject (cJSON_GetObjectItem (body, type)))
        return s_bad_param (req, "(#100) Invalid parameter",
                            "Message of this type needs an object of the same name");
    const char *context =
        wa_str (cJSON_GetObjectItem (body, "context"), "message_id", NULL);
    fault_t fault;
    bool faulted = s_faulted (self, "send", wa_id, &fault);
    if (faulted && !fault.async)
        return s_fault (req, &fault);

    pthread_mutex_lock (&self->lock);
    if (!faulted && strcmp (type, "template") != 0 && !store_window_open (self, wa_id)) {
        store_count (self, "rejected");
        pthread_mutex_unlock (&self->lock);
        return graph_error (req, 400, 131047, "(#131047) Re-engagement message",
                            WINDOW_DETAILS, 0);
    }
    char wamid[96];
    store_wamid (self, wamid, sizeof (wamid));
    store_count (self, text ? "text" : "other");
    cJSON *entry = cJSON_CreateObject ();
    cJSON_AddNumberToObject (entry, "seq", (double) self->next_seq++);
    cJSON_AddStringToObject (entry, "to", wa_id);
    cJSON_AddStringToObject (entry, "input", to);
    cJSON_AddStringToObject (entry, "type", type);
    if (text)
        cJSON_AddStringToObject (entry, "body", text);
    else
        cJSON_AddItemToObject (entry, type,
                               cJSON_Duplicate (cJSON_GetObjectItem (body, type), true));
    if (context)
        cJSON_AddStringToObject (entry, "context", context);
    else
        cJSON_AddNullToObject (entry, "context");
    cJSON_AddBoolToObject (entry, "preview_url",
                           cJSON_IsTrue (cJSON_GetObjectItem (
                               cJSON_GetObjectItem (body, "text"), "preview_url")));
    cJSON_AddNumberToObject (entry, "at_ms", (double) store_now_ms (self));
    cJSON_AddStringToObject (entry, "wamid", wamid);
    cJSON_AddItemToArray (self->sent, entry);
    if (faulted) {
        const char *title;
        int code = s_async_error (fault.kind, &title);
        cJSON_AddNumberToObject (entry, "failed", code);
        push_statuses (self, wamid, wa_id, code, title);
    }
    else
        push_statuses (self, wamid, wa_id, 0, NULL);
    store_save (self);
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);

    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "messaging_product", "whatsapp");
    cJSON *contact = cJSON_CreateObject ();
    cJSON_AddStringToObject (contact, "input", to);
    cJSON_AddStringToObject (contact, "wa_id", wa_id);
    cJSON_AddItemToArray (cJSON_AddArrayToObject (root, "contacts"), contact);
    cJSON *message = cJSON_CreateObject ();
    cJSON_AddStringToObject (message, "id", wamid);
    cJSON_AddItemToArray (cJSON_AddArrayToObject (root, "messages"), message);
    return wa_send_root (req, 200, root);
}

//  Whether the Authorization header carries our token as a Bearer.
static bool
s_authorized (wa_req_t *req)
{
    const char *header = mg_get_header (req->conn, "Authorization");
    if (!header || strncasecmp (header, "Bearer ", 7) != 0)
        return false;
    const char *token = header + 7;
    while (*token == ' ')
        token++;
    return strcmp (token, req->self->token) == 0;
}

int
graph_call (wa_req_t *req, const char *path, const char *raw, cJSON *body)
{
    wa_t *self = req->self;
    const struct mg_request_info *ri = mg_get_request_info (req->conn);
    pthread_mutex_lock (&self->lock);
    store_count (self, "messages");
    bool authorized = s_authorized (req);
    if (!authorized)
        store_count (self, "denied");
    pthread_mutex_unlock (&self->lock);
    if (!authorized)
        return graph_error (req, 401, 190, BAD_TOKEN, NULL, 0);

    //  /<version>/<id>/<edge>
    char version[32] = "", id[64] = "", edge[64] = "";
    if (sscanf (path, "/%31[^/]/%63[^/]/%63s", version, id, edge) != 3
        || strcmp (version, self->version) != 0) {
        char message[300];
        snprintf (message, sizeof (message), "Unknown path components: %.200s", path);
        return graph_error (req, 400, 2500, message, NULL, 0);
    }
    if (strcmp (id, self->phone_id) != 0 || strcmp (edge, "messages") != 0
        || strcmp (ri->request_method, "POST") != 0) {
        char message[400];
        snprintf (message, sizeof (message),
                  "Unsupported %s request. Object with ID '%s' does not exist, cannot "
                  "be loaded due to missing permissions, or does not support this "
                  "operation. Please read the Graph API documentation at "
                  "https://developers.facebook.com/docs/graph-api",
                  strcmp (ri->request_method, "POST") == 0 ? "post" : "get", id);
        return graph_error (req, 400, 100, message, NULL, 33);
    }
    (void) raw;
    if (!cJSON_IsObject (body))
        return s_bad_param (req, "(#100) Invalid parameter",
                            "The request body is not a JSON object");
    const char *product = wa_str (body, "messaging_product", NULL);
    if (!product)
        return s_bad_param (req, "(#100) The parameter messaging_product is required.",
                            NULL);
    if (strcmp (product, "whatsapp") != 0) {
        char message[200];
        snprintf (message, sizeof (message),
                  "(#100) Param messaging_product must be one of {WHATSAPP} - got "
                  "\"%.100s\".",
                  product);
        return s_bad_param (req, message, NULL);
    }
    if (cJSON_GetObjectItem (body, "status"))
        return s_read (req, body);
    return s_message (req, body);
}
