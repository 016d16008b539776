/*  =========================================================================
    test_wastandin - cg_wastandin, the WhatsApp Cloud API stand-in, checked
    on its own over real HTTP: Graph sends and their errors (token, 4096
    code points, the 24-hour window), read receipts with typing, fault
    rules, and the webhook driver against a small civetweb receiver that
    plays the gateway: the verification GET, signatures checked with
    libcrypto's HMAC-SHA256, a 500 retried until 200, forged and missing
    signatures, batches and statuses; and the state file across a kill -9.
    =========================================================================
*/
#include <civetweb.h>
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "whatsapp.h"

static wa_standin_t s_wa;
static char s_dir[256];

static void
s_setup (void)
{
    harness_tmpdir (s_dir, sizeof (s_dir));
    char state[300];
    snprintf (state, sizeof (state), "%s/wa.json", s_dir);
    const char *args[] = {"--retry-ms", "200,300",           "--push-attempts",
                          "4",          "--push-timeout-ms", "2000",
                          NULL};
    cr_assert_eq (wa_start (&s_wa, state, args), 0, "cg_wastandin did not start");
}

static void
s_teardown (void)
{
    wa_stop (&s_wa, SIGTERM);
    harness_rmtree (s_dir);
}

TestSuite (wastandin, .init = s_setup, .fini = s_teardown, .timeout = 30);

//  ---- The gateway's side: a civetweb receiver --------------------------------------

#define HOOK_MAX 16

typedef struct {
    pthread_mutex_t lock;
    int answers[HOOK_MAX];    //  Status for each POST in turn (0: by signature)
    int posts;                //  POSTs seen
    char *bodies[HOOK_MAX];   //  Their raw bodies
    char sigs[HOOK_MAX][80];  //  Their X-Hub-Signature-256 ("-" if none)
    bool sig_ok[HOOK_MAX];    //  Whether it is our HMAC of the body
    char query[512];          //  The last GET's query string
} hook_t;

static hook_t s_hook = {.lock = PTHREAD_MUTEX_INITIALIZER};
static struct mg_context *s_ctx;
static char s_target[128];

static int
s_hook_handler (struct mg_connection *conn, void *cbdata)
{
    (void) cbdata;
    const struct mg_request_info *ri = mg_get_request_info (conn);
    if (strcmp (ri->request_method, "GET") == 0) {
        const char *q = ri->query_string ? ri->query_string : "";
        char mode[32] = "", token[64] = "", challenge[64] = "";
        mg_get_var (q, strlen (q), "hub.mode", mode, sizeof (mode));
        mg_get_var (q, strlen (q), "hub.verify_token", token, sizeof (token));
        mg_get_var (q, strlen (q), "hub.challenge", challenge, sizeof (challenge));
        pthread_mutex_lock (&s_hook.lock);
        snprintf (s_hook.query, sizeof (s_hook.query), "%s", q);
        pthread_mutex_unlock (&s_hook.lock);
        if (strcmp (mode, "subscribe") != 0 || strcmp (token, WA_VERIFY_TOKEN) != 0) {
            mg_send_http_error (conn, 403, "forbidden");
            return 403;
        }
        mg_send_http_ok (conn, "text/plain", (long long) strlen (challenge));
        mg_write (conn, challenge, strlen (challenge));
        return 200;
    }
    char *body = malloc (1 << 16);
    size_t len = 0;
    int n;
    while ((n = mg_read (conn, body + len, (1 << 16) - 1 - len)) > 0)
        len += (size_t) n;
    body[len] = 0;
    const char *sig = mg_get_header (conn, "X-Hub-Signature-256");
    char want[80];
    wa_signature (WA_APP_SECRET, body, len, want);
    pthread_mutex_lock (&s_hook.lock);
    int i = s_hook.posts < HOOK_MAX ? s_hook.posts++ : HOOK_MAX - 1;
    free (s_hook.bodies[i]);
    s_hook.bodies[i] = body;
    snprintf (s_hook.sigs[i], sizeof (s_hook.sigs[i]), "%s", sig ? sig : "-");
    s_hook.sig_ok[i] = sig && strcmp (sig, want) == 0;
    int status = s_hook.answers[i] ? s_hook.answers[i] : s_hook.sig_ok[i] ? 200 : 401;
    pthread_mutex_unlock (&s_hook.lock);
    mg_send_http_error (conn, status, "%s", status == 200 ? "ok" : "no");
    return status;
}

static void
s_hook_start (void)
{
    const char *options[] = {"listening_ports", "127.0.0.1:0", "num_threads", "4", NULL};
    struct mg_callbacks callbacks;
    memset (&callbacks, 0, sizeof (callbacks));
    s_ctx = mg_start (&callbacks, NULL, options);
    cr_assert (s_ctx, "receiver did not start");
    mg_set_request_handler (s_ctx, "/hook", s_hook_handler, NULL);
    struct mg_server_port port;
    cr_assert_eq (mg_get_server_ports (s_ctx, 1, &port), 1);
    snprintf (s_target, sizeof (s_target), "http://127.0.0.1:%d/hook", port.port);
}

//  Frees what the receiver kept.  Its civetweb is not stopped: mg_stop
//  took 2 s a test here, and the receiver dies with the test's process
//  (criterion forks one per test) anyway.
static void
s_hook_stop (void)
{
    pthread_mutex_lock (&s_hook.lock);
    for (int i = 0; i < HOOK_MAX; i++) {
        free (s_hook.bodies[i]);
        s_hook.bodies[i] = NULL;
    }
    pthread_mutex_unlock (&s_hook.lock);
}

static int
s_hook_posts (void)
{
    pthread_mutex_lock (&s_hook.lock);
    int n = s_hook.posts;
    pthread_mutex_unlock (&s_hook.lock);
    return n;
}

//  ---- Graph calls ------------------------------------------------------------------

//  POSTs json to the messages URL with token.  Returns the parsed answer
//  (caller owns it), the status in *status.
static cJSON *
s_graph (const char *json, const char *token, long *status)
{
    char auth[128];
    snprintf (auth, sizeof (auth), "Authorization: Bearer %s", token);
    const char *headers[] = {"Content-Type: application/json", auth, NULL};
    http_resp_t r;
    http_do ("POST", s_wa.messages, headers, json, strlen (json), &r);
    *status = r.status;
    cJSON *root = cJSON_Parse (r.body ? r.body : "");
    http_resp_free (&r);
    return root;
}

//  The error code of a Graph error answer.
static int
s_code (cJSON *root)
{
    return (int) cJSON_GetNumberValue (
        cJSON_GetObjectItem (cJSON_GetObjectItem (root, "error"), "code"));
}

static cJSON *
s_send_text (const char *to, const char *text, long *status)
{
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddStringToObject (body, "messaging_product", "whatsapp");
    cJSON_AddStringToObject (body, "recipient_type", "individual");
    cJSON_AddStringToObject (body, "to", to);
    cJSON_AddStringToObject (body, "type", "text");
    cJSON *t = cJSON_AddObjectToObject (body, "text");
    cJSON_AddStringToObject (t, "body", text);
    cJSON_AddBoolToObject (t, "preview_url", false);
    char *json = cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    cJSON *root = s_graph (json, WA_ACCESS_TOKEN, status);
    cJSON_free (json);
    return root;
}

Test (wastandin, hmac_matches_rfc4231)
{
    char out[72];
    const char *data = "what do ya want for nothing?";
    wa_signature ("Jefe", data, strlen (data), out);
    cr_assert_str_eq (out,
                      "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b9"
                      "64ec3843");
}

Test (wastandin, send_text_and_window)
{
    s_hook_start ();
    long status;
    //  Nobody wrote yet: the window is closed.
    cJSON *root = s_send_text ("15551234", "hello", &status);
    cr_assert_eq (status, 400);
    cr_assert_eq (s_code (root), 131047);
    cJSON *data = cJSON_GetObjectItem (cJSON_GetObjectItem (root, "error"), "error_data");
    cr_assert (strstr (cJSON_GetStringValue (cJSON_GetObjectItem (data, "details")),
                       "24 hours"));
    cJSON_Delete (root);

    char inbound[96];
    cr_assert_eq (
        wa_inbound_text (&s_wa, s_target, "15551234", "hi", inbound, sizeof (inbound)),
        200);
    cr_assert (strncmp (inbound, "wamid.", 6) == 0);

    //  Open now; a reply with context.
    char json[512];
    snprintf (json, sizeof (json),
              "{\"messaging_product\":\"whatsapp\",\"recipient_type\":\"individual\","
              "\"to\":\"15551234\",\"type\":\"text\",\"text\":{\"body\":\"h\xc3\xa9llo\","
              "\"preview_url\":false},\"context\":{\"message_id\":\"%s\"}}",
              inbound);
    root = s_graph (json, WA_ACCESS_TOKEN, &status);
    cr_assert_eq (status, 200);
    cr_assert_str_eq (
        cJSON_GetStringValue (cJSON_GetObjectItem (root, "messaging_product")),
        "whatsapp");
    cJSON *contact = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "contacts"), 0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (contact, "wa_id")),
                      "15551234");
    const char *wamid = cJSON_GetStringValue (cJSON_GetObjectItem (
        cJSON_GetArrayItem (cJSON_GetObjectItem (root, "messages"), 0), "id"));
    cr_assert (wamid && strncmp (wamid, "wamid.", 6) == 0);
    cr_assert_str_neq (wamid, inbound);
    cr_assert_eq (wa_wait_sent (&s_wa, "15551234", 1, 2000), 0);
    cJSON *sent = wa_sent (&s_wa, NULL);
    cJSON *only = cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (sent, "messages")), 1);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (only, "body")),
                      "h\xc3\xa9llo");
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (only, "context")),
                      inbound);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (only, "wamid")), wamid);
    cr_assert (cJSON_GetNumberValue (cJSON_GetObjectItem (only, "at_ms")) > 0);
    cJSON_Delete (sent);
    cJSON_Delete (root);

    //  4096 code points pass (emoji: 4 bytes each); 4097 do not.
    char *text = malloc (4 * 4097 + 1);
    for (int i = 0; i < 4096; i++)
        memcpy (text + 4 * i, "\xF0\x9F\x98\x80", 4);
    text[4 * 4096] = 0;
    root = s_send_text ("15551234", text, &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    strcat (text, "a");
    root = s_send_text ("15551234", text, &status);
    free (text);
    cr_assert_eq (status, 400);
    cr_assert_eq (s_code (root), 100);
    data = cJSON_GetObjectItem (cJSON_GetObjectItem (root, "error"), "error_data");
    cr_assert (
        strstr (cJSON_GetStringValue (cJSON_GetObjectItem (data, "details")), "4096"));
    cJSON_Delete (root);

    //  No messaging_product; a wrong token.
    root = s_graph ("{\"to\":\"15551234\",\"type\":\"text\",\"text\":{\"body\":\"x\"}}",
                    WA_ACCESS_TOKEN, &status);
    cr_assert_eq (status, 400);
    cr_assert_eq (s_code (root), 100);
    cJSON_Delete (root);
    root = s_graph ("{}", "wrong", &status);
    cr_assert_eq (status, 401);
    cr_assert_eq (s_code (root), 190);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (
                          cJSON_GetObjectItem (root, "error"), "type")),
                      "OAuthException");
    cJSON_Delete (root);
    cr_assert_eq (wa_calls (&s_wa, "text"), 2);
    cr_assert_eq (wa_calls (&s_wa, "rejected"), 1);
    cr_assert_eq (wa_calls (&s_wa, "denied"), 1);

    //  The clock moves past the window: closed again.
    cJSON_Delete (wa_control (&s_wa, "clock", "{\"advance_s\":86401}"));
    root = s_send_text ("15551234", "late", &status);
    cr_assert_eq (s_code (root), 131047);
    cJSON_Delete (root);
    s_hook_stop ();
}

Test (wastandin, read_receipt_and_faults)
{
    s_hook_start ();
    char inbound[96];
    cr_assert_eq (
        wa_inbound_text (&s_wa, s_target, "15557777", "yo", inbound, sizeof (inbound)),
        200);
    char json[256];
    snprintf (json, sizeof (json),
              "{\"messaging_product\":\"whatsapp\",\"status\":\"read\",\"message_id\":"
              "\"%s\",\"typing_indicator\":{\"type\":\"text\"}}",
              inbound);
    long status;
    cJSON *root = s_graph (json, WA_ACCESS_TOKEN, &status);
    cr_assert_eq (status, 200);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (root, "success")));
    cJSON_Delete (root);
    cr_assert_eq (wa_wait_reads (&s_wa, 1, 2000), 0);
    cJSON *reads = wa_reads (&s_wa);
    cJSON *read = cJSON_GetArrayItem (cJSON_GetObjectItem (reads, "reads"), 0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (read, "message_id")),
                      inbound);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (read, "typing")));
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (read, "wa_id")),
                      "15557777");
    cJSON_Delete (reads);
    cr_assert_eq (wa_calls (&s_wa, "typing"), 1);

    //  A per-recipient 130429: others go through.
    cr_assert_eq (wa_fault (&s_wa, "{\"kind\":\"130429\",\"to\":\"15557777\"}"), 0);
    cJSON_Delete (wa_control (&s_wa, "window", "{\"wa_id\":\"15550000\"}"));
    root = s_send_text ("15550000", "other", &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    root = s_send_text ("15557777", "x", &status);
    cr_assert_eq (status, 429);
    cr_assert_eq (s_code (root), 130429);
    cJSON_Delete (root);
    root = s_send_text ("15557777", "x", &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);

    struct {
        const char *kind;
        long status;
        int code;
    } kinds[] = {{"190", 401, 190}, {"131056", 429, 131056}, {"131026", 400, 131026},
                 {"100", 400, 100}, {"500", 500, 1},         {"502", 502, 1},
                 {"503", 503, 2},   {"131047", 400, 131047}, {"drop", 0, 0}};
    for (size_t i = 0; i < sizeof (kinds) / sizeof (kinds[0]); i++) {
        snprintf (json, sizeof (json), "{\"kind\":\"%s\"}", kinds[i].kind);
        cr_assert_eq (wa_fault (&s_wa, json), 0);
        root = s_send_text ("15557777", "x", &status);
        cr_assert_eq (status, kinds[i].status, "%s: %ld", kinds[i].kind, status);
        if (kinds[i].code)
            cr_assert_eq (s_code (root), kinds[i].code, "%s", kinds[i].kind);
        cJSON_Delete (root);
    }
    //  hang: no answer while other calls go on.
    cr_assert_eq (wa_fault (&s_wa, "{\"kind\":\"hang\",\"on\":\"any\"}"), 0);
    char auth[128] = "Authorization: Bearer " WA_ACCESS_TOKEN;
    CURL *c = curl_easy_init ();
    struct curl_slist *h = curl_slist_append (NULL, auth);
    curl_easy_setopt (c, CURLOPT_URL, s_wa.messages);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS,
                      "{\"messaging_product\":\"whatsapp\",\"to\":\"15557777\","
                      "\"text\":{\"body\":\"x\"}}");
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 700L);
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    cr_assert_eq (curl_easy_perform (c), CURLE_OPERATION_TIMEDOUT);
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
    root = s_send_text ("15557777", "after the hang", &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    cr_assert_eq (wa_calls (&s_wa, "faulted"), 11);
    cJSON *sent = wa_sent (&s_wa, "15557777");
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (sent, "messages")), 2);
    cJSON_Delete (sent);
    s_hook_stop ();
}

Test (wastandin, verification_get)
{
    s_hook_start ();
    long status;
    cr_assert_eq (wa_verify (&s_wa, s_target, NULL, &status), 1);
    cr_assert_eq (status, 200);
    char query[512];
    pthread_mutex_lock (&s_hook.lock);
    snprintf (query, sizeof (query), "%s", s_hook.query);
    pthread_mutex_unlock (&s_hook.lock);
    cr_assert (strstr (query, "hub.mode=subscribe"), "%s", query);
    cr_assert (strstr (query, "hub.verify_token=" WA_VERIFY_TOKEN), "%s", query);
    cr_assert (strstr (query, "hub.challenge="), "%s", query);
    cr_assert_eq (wa_verify (&s_wa, s_target, "wrong-token", &status), 0);
    cr_assert_eq (status, 403);
    s_hook_stop ();
}

Test (wastandin, signed_posts_and_retry)
{
    s_hook_start ();
    s_hook.answers[0] = 500;  //  The first try fails, the retry gets 200.
    char wamid[96];
    long status;
    int attempts = wa_inbound (&s_wa, "{\"target\":\"\"}", NULL, 0, NULL);
    cr_assert_eq (attempts, -1);  //  An empty target is refused.
    char json[512];
    snprintf (json, sizeof (json),
              "{\"target\":\"%s\",\"from\":\"15552222\",\"name\":\"Zo\xc3\xab\","
              "\"text\":\"caf\xc3\xa9 \xf0\x9f\x98\x80 a/b\"}",
              s_target);
    attempts = wa_inbound (&s_wa, json, wamid, sizeof (wamid), &status);
    cr_assert_eq (attempts, 2);
    cr_assert_eq (status, 200);
    cr_assert_eq (s_hook_posts (), 2);
    cr_assert (s_hook.sig_ok[0] && s_hook.sig_ok[1], "%s", s_hook.sigs[0]);
    cr_assert_str_eq (s_hook.bodies[0], s_hook.bodies[1]);
    //  Meta's spelling: \u escapes and "\/", signed as sent.
    cr_assert (strstr (s_hook.bodies[0], "caf\\u00e9 \\ud83d\\ude00 a\\/b"), "%s",
               s_hook.bodies[0]);
    cJSON *root = cJSON_Parse (s_hook.bodies[0]);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (root, "object")),
                      "whatsapp_business_account");
    cJSON *entry = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "entry"), 0);
    cJSON *change = cJSON_GetArrayItem (cJSON_GetObjectItem (entry, "changes"), 0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (change, "field")),
                      "messages");
    cJSON *value = cJSON_GetObjectItem (change, "value");
    cJSON *meta = cJSON_GetObjectItem (value, "metadata");
    cr_assert_str_eq (
        cJSON_GetStringValue (cJSON_GetObjectItem (meta, "phone_number_id")),
        WA_PHONE_NUMBER_ID);
    cJSON *msg = cJSON_GetArrayItem (cJSON_GetObjectItem (value, "messages"), 0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (msg, "id")), wamid);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (
                          cJSON_GetObjectItem (msg, "text"), "body")),
                      "caf\xc3\xa9 \xf0\x9f\x98\x80 a/b");
    cJSON *contact = cJSON_GetArrayItem (cJSON_GetObjectItem (value, "contacts"), 0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (
                          cJSON_GetObjectItem (contact, "profile"), "name")),
                      "Zo\xc3\xab");
    cr_assert (cJSON_IsString (cJSON_GetObjectItem (msg, "timestamp")));
    cJSON_Delete (root);

    //  Forged: a signature header, but not the app secret's; one try.
    snprintf (json, sizeof (json),
              "{\"target\":\"%s\",\"from\":\"15552222\",\"text\":\"x\",\"forge\":true,"
              "\"attempts\":1}",
              s_target);
    cr_assert_eq (wa_inbound (&s_wa, json, NULL, 0, &status), 1);
    cr_assert_eq (status, 401);
    cr_assert (strncmp (s_hook.sigs[2], "sha256=", 7) == 0);
    cr_assert_not (s_hook.sig_ok[2]);
    snprintf (json, sizeof (json),
              "{\"target\":\"%s\",\"from\":\"15552222\",\"text\":\"x\","
              "\"missing_sig\":true,\"attempts\":1}",
              s_target);
    cr_assert_eq (wa_inbound (&s_wa, json, NULL, 0, &status), 1);
    cr_assert_str_eq (s_hook.sigs[3], "-");

    //  A duplicate: the same wamid again.
    snprintf (
        json, sizeof (json),
        "{\"target\":\"%s\",\"from\":\"15552222\",\"text\":\"again\",\"id\":\"%s\"}",
        s_target, wamid);
    char again[96];
    cr_assert_eq (wa_inbound (&s_wa, json, again, sizeof (again), &status), 1);
    cr_assert_str_eq (again, wamid);

    //  A batch over two entries, an image, and a failed status.
    snprintf (json, sizeof (json),
              "{\"target\":\"%s\",\"batch\":[{\"from\":\"1555001\",\"text\":\"a\"},"
              "{\"from\":\"1555002\",\"text\":\"b\"},{\"from\":\"1555003\",\"type\":"
              "\"image\",\"text\":\"cap\",\"entry\":1},{\"status\":\"failed\",\"id\":"
              "\"wamid.out\",\"recipient_id\":\"1555001\",\"entry\":1,\"change\":1}]}",
              s_target);
    cr_assert_eq (wa_inbound (&s_wa, json, NULL, 0, &status), 1);
    cr_assert_eq (status, 200);
    root = cJSON_Parse (s_hook.bodies[5]);
    cJSON *entries = cJSON_GetObjectItem (root, "entry");
    cr_assert_eq (cJSON_GetArraySize (entries), 2);
    value = cJSON_GetObjectItem (
        cJSON_GetArrayItem (
            cJSON_GetObjectItem (cJSON_GetArrayItem (entries, 0), "changes"), 0),
        "value");
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (value, "messages")), 2);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (value, "contacts")), 2);
    cJSON *changes = cJSON_GetObjectItem (cJSON_GetArrayItem (entries, 1), "changes");
    cr_assert_eq (cJSON_GetArraySize (changes), 2);
    msg = cJSON_GetArrayItem (
        cJSON_GetObjectItem (
            cJSON_GetObjectItem (cJSON_GetArrayItem (changes, 0), "value"), "messages"),
        0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (msg, "type")), "image");
    cJSON *st = cJSON_GetArrayItem (
        cJSON_GetObjectItem (
            cJSON_GetObjectItem (cJSON_GetArrayItem (changes, 1), "value"), "statuses"),
        0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (st, "status")),
                      "failed");
    cr_assert_eq (
        cJSON_GetNumberValue (cJSON_GetObjectItem (
            cJSON_GetArrayItem (cJSON_GetObjectItem (st, "errors"), 0), "code")),
        131047);
    cJSON_Delete (root);

    //  Status only: a delivered receipt and nothing else.
    snprintf (json, sizeof (json),
              "{\"target\":\"%s\",\"status_only\":true,\"id\":\"wamid.out\","
              "\"recipient_id\":\"1555001\"}",
              s_target);
    cr_assert_eq (wa_inbound (&s_wa, json, NULL, 0, &status), 1);
    root = cJSON_Parse (s_hook.bodies[6]);
    value = cJSON_GetObjectItem (
        cJSON_GetArrayItem (
            cJSON_GetObjectItem (
                cJSON_GetArrayItem (cJSON_GetObjectItem (root, "entry"), 0), "changes"),
            0),
        "value");
    cr_assert_null (cJSON_GetObjectItem (value, "messages"));
    cr_assert_null (cJSON_GetObjectItem (value, "contacts"));
    st = cJSON_GetArrayItem (cJSON_GetObjectItem (value, "statuses"), 0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (st, "status")),
                      "delivered");
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (st, "id")), "wamid.out");
    cJSON_Delete (root);

    cJSON *pushes = wa_pushes (&s_wa);
    cJSON *first = cJSON_GetArrayItem (cJSON_GetObjectItem (pushes, "pushes"), 0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (first, "state")),
                      "delivered");
    cr_assert_eq (cJSON_GetNumberValue (
                      cJSON_GetArrayItem (cJSON_GetObjectItem (first, "statuses"), 0)),
                  500);
    cJSON_Delete (pushes);
    s_hook_stop ();
}

Test (wastandin, status_posts)
{
    s_hook_start ();
    char json[512];
    snprintf (json, sizeof (json),
              "{\"status_target\":\"%s\",\"auto_statuses\":[\"sent\",\"delivered\"]}",
              s_target);
    cJSON_Delete (wa_control (&s_wa, "config", json));
    cJSON_Delete (wa_control (&s_wa, "window", "{\"wa_id\":\"15553333\"}"));
    long status;
    cJSON *root = s_send_text ("15553333", "tracked", &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    //  An async 131026: accepted, then reported failed.
    cr_assert_eq (wa_fault (&s_wa, "{\"kind\":\"131026\",\"async\":true}"), 0);
    root = s_send_text ("15553333", "doomed", &status);
    cr_assert_eq (status, 200);
    const char *doomed = cJSON_GetStringValue (cJSON_GetObjectItem (
        cJSON_GetArrayItem (cJSON_GetObjectItem (root, "messages"), 0), "id"));
    long long deadline = harness_now_ms () + 5000;
    while (s_hook_posts () < 3 && harness_now_ms () < deadline)
        usleep (20000);
    cr_assert_eq (s_hook_posts (), 3);
    const char *want[] = {"sent", "delivered", "failed"};
    for (int i = 0; i < 3; i++) {
        cr_assert (s_hook.sig_ok[i]);
        cJSON *post = cJSON_Parse (s_hook.bodies[i]);
        cJSON *value = cJSON_GetObjectItem (
            cJSON_GetArrayItem (
                cJSON_GetObjectItem (
                    cJSON_GetArrayItem (cJSON_GetObjectItem (post, "entry"), 0),
                    "changes"),
                0),
            "value");
        cr_assert_null (cJSON_GetObjectItem (value, "messages"));
        cJSON *st = cJSON_GetArrayItem (cJSON_GetObjectItem (value, "statuses"), 0);
        cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (st, "status")),
                          want[i]);
        cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (st, "recipient_id")),
                          "15553333");
        if (i == 2) {
            cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (st, "id")),
                              doomed);
            cJSON *error = cJSON_GetArrayItem (cJSON_GetObjectItem (st, "errors"), 0);
            cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (error, "code")),
                          131026);
        }
        cJSON_Delete (post);
    }
    cJSON_Delete (root);
    s_hook_stop ();
}

Test (wastandin, state_survives_kill)
{
    cJSON_Delete (wa_control (&s_wa, "window", "{\"wa_id\":\"15559999\"}"));
    long status;
    cJSON *root = s_send_text ("15559999", "before", &status);
    cr_assert_eq (status, 200);
    char before[96];
    snprintf (before, sizeof (before), "%s",
              cJSON_GetStringValue (cJSON_GetObjectItem (
                  cJSON_GetArrayItem (cJSON_GetObjectItem (root, "messages"), 0), "id")));
    cJSON_Delete (root);
    //  A push to nobody stays pending (port 9: nothing listens).
    cJSON_Delete (wa_control (&s_wa, "inbound",
                              "{\"target\":\"http://127.0.0.1:9/hook\",\"from\":\"1555\","
                              "\"text\":\"x\",\"attempts\":100}"));
    int port = s_wa.port;

    wa_stop (&s_wa, SIGKILL);
    cr_assert_eq (wa_restart (&s_wa), 0, "no restart");
    cr_assert_eq (s_wa.port, port);
    cJSON *sent = wa_sent (&s_wa, "15559999");
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (sent, "messages")), 1);
    cJSON_Delete (sent);
    cr_assert_eq (wa_calls (&s_wa, "pending"), 1);
    //  The window is still open; ids do not repeat.
    root = s_send_text ("15559999", "after", &status);
    cr_assert_eq (status, 200);
    cr_assert_str_neq (
        cJSON_GetStringValue (cJSON_GetObjectItem (
            cJSON_GetArrayItem (cJSON_GetObjectItem (root, "messages"), 0), "id")),
        before);
    cJSON_Delete (root);
}
