/*  =========================================================================
    test_tgstandin - cg_tgstandin, the Telegram Bot API stand-in, checked on
    its own over real HTTP: getMe and the error shapes, getUpdates (offset,
    limit, long poll, 409s), sendMessage and its 400s, editMessageText,
    the fault script, the webhook pusher, the control API and the state
    file across a kill -9.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "telegram.h"

static tg_standin_t s_tg;
static char s_dir[256];

static void
s_setup (void)
{
    harness_tmpdir (s_dir, sizeof (s_dir));
    char state[300];
    snprintf (state, sizeof (state), "%s/tg.json", s_dir);
    cr_assert_eq (tg_start (&s_tg, state), 0, "cg_tgstandin did not start");
}

static void
s_teardown (void)
{
    tg_stop (&s_tg, SIGTERM);
    harness_rmtree (s_dir);
}

TestSuite (tgstandin, .init = s_setup, .fini = s_teardown, .timeout = 40);

//  Calls a Bot API method with a JSON body (NULL: a GET).  Returns the
//  parsed answer (caller owns it) and the status in *status.
static cJSON *
s_call (const char *method, const char *json, long *status)
{
    char url[512];
    snprintf (url, sizeof (url), "%s/bot%s/%s", s_tg.base, s_tg.token, method);
    const char *headers[] = {"Content-Type: application/json", NULL};
    http_resp_t r;
    http_do (json ? "POST" : "GET", url, json ? headers : NULL, json,
             json ? strlen (json) : 0, &r);
    *status = r.status;
    cr_assert (r.status == 0 || strstr (r.headers, "application/json"), "not JSON: %s",
               r.headers);
    cJSON *root = cJSON_Parse (r.body);
    http_resp_free (&r);
    return root;
}

//  Calls method and asserts the error it must give.
static void
s_expect_error (const char *method, const char *json, long code, const char *description)
{
    long status;
    cJSON *root = s_call (method, json, &status);
    cr_assert_eq (status, code, "%s: status %ld", method, status);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (root, "ok")));
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (root, "error_code")), code);
    const char *got = cJSON_GetStringValue (cJSON_GetObjectItem (root, "description"));
    cr_assert (got && strncmp (got, description, strlen (description)) == 0,
               "%s: description %s", method, got ? got : "(none)");
    cJSON_Delete (root);
}

//  The result array of a getUpdates call that must succeed.  Caller owns
//  return value (the whole answer).
static cJSON *
s_updates (const char *json)
{
    long status;
    cJSON *root = s_call ("getUpdates", json, &status);
    cr_assert_eq (status, 200, "getUpdates: %ld", status);
    cr_assert (cJSON_IsArray (cJSON_GetObjectItem (root, "result")));
    return root;
}

static long
s_update_id (cJSON *root, int i)
{
    cJSON *u = cJSON_GetArrayItem (cJSON_GetObjectItem (root, "result"), i);
    return (long) cJSON_GetNumberValue (cJSON_GetObjectItem (u, "update_id"));
}

Test (tgstandin, get_me_and_errors)
{
    long status;
    cJSON *root = s_call ("getMe", NULL, &status);
    cr_assert_eq (status, 200);
    cJSON *user = cJSON_GetObjectItem (root, "result");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (user, "id")), TG_BOT_ID);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (user, "is_bot")));
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (user, "username")),
                      TG_BOT_USERNAME);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (user, "can_join_groups")));
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItem (user, "can_read_all_group_messages")));
    cJSON_Delete (root);

    s_expect_error ("noSuchMethod", NULL, 404, "Not Found");
    char url[512];
    snprintf (url, sizeof (url), "%s/bot999:WRONG/getMe", s_tg.base);
    http_resp_t r;
    http_do ("GET", url, NULL, NULL, 0, &r);
    cr_assert_eq (r.status, 401);
    cr_assert (strstr (r.body, "\"description\":\"Unauthorized\""), "%s", r.body);
    http_resp_free (&r);
    cr_assert_eq (tg_calls (&s_tg, "getMe"), 1);
}

Test (tgstandin, get_updates_offset_and_limit)
{
    long first = tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"one\"}");
    cr_assert (first > 0);
    cr_assert_eq (tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"two\"}"), first + 1);
    cr_assert_eq (tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"three\"}"), first + 2);

    cJSON *root = s_updates ("{\"limit\":2}");
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (root, "result")), 2);
    cr_assert_eq (s_update_id (root, 0), first);
    cJSON *msg = cJSON_GetObjectItem (
        cJSON_GetArrayItem (cJSON_GetObjectItem (root, "result"), 0), "message");
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (msg, "text")), "one");
    cJSON_Delete (root);
    cr_assert_eq (tg_calls (&s_tg, "pending"), 3);

    //  offset confirms everything below it, form body this time.
    char url[512], body[64];
    snprintf (url, sizeof (url), "%s/bot%s/getUpdates", s_tg.base, s_tg.token);
    snprintf (body, sizeof (body), "offset=%ld", first + 2);
    http_resp_t r;
    http_do ("POST", url, NULL, body, strlen (body), &r);
    cr_assert_eq (r.status, 200);
    root = cJSON_Parse (r.body);
    http_resp_free (&r);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (root, "result")), 1);
    cr_assert_eq (s_update_id (root, 0), first + 2);
    cJSON_Delete (root);
    cr_assert_eq (tg_calls (&s_tg, "pending"), 1);

    //  A negative offset keeps only the last -offset updates.
    tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"four\"}");
    tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"five\"}");
    root = s_updates ("{\"offset\":-1}");
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (root, "result")), 1);
    cr_assert_eq (s_update_id (root, 0), first + 4);
    cJSON_Delete (root);
    cr_assert_eq (tg_calls (&s_tg, "pending"), 1);
}

typedef struct {
    const char *json;
    long status;
    cJSON *root;
    long long ms;
} poll_t;

static void *
s_poll (void *arg)
{
    poll_t *p = (poll_t *) arg;
    long long start = harness_now_ms ();
    p->root = s_call ("getUpdates", p->json, &p->status);
    p->ms = harness_now_ms () - start;
    return NULL;
}

Test (tgstandin, long_poll_and_conflicts)
{
    //  Nothing queued: held for the timeout, then an empty result.
    long long start = harness_now_ms ();
    cJSON *root = s_updates ("{\"timeout\":1}");
    cr_assert (harness_now_ms () - start >= 900);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (root, "result")), 0);
    cJSON_Delete (root);

    //  A held poll returns as soon as an update comes.
    poll_t held = {"{\"timeout\":10}", 0, NULL, 0};
    pthread_t thread;
    pthread_create (&thread, NULL, s_poll, &held);
    usleep (300000);
    long id = tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"wake\"}");
    pthread_join (thread, NULL);
    cr_assert_eq (held.status, 200);
    cr_assert (held.ms < 3000, "took %lld ms", held.ms);
    cr_assert_eq (s_update_id (held.root, 0), id);
    cJSON_Delete (held.root);

    //  A newer poll ends the older one with 409.
    char json[64];
    snprintf (json, sizeof (json), "{\"offset\":%ld,\"timeout\":10}", id + 1);
    poll_t older = {json, 0, NULL, 0};
    pthread_create (&thread, NULL, s_poll, &older);
    usleep (300000);
    poll_t newer = {"{\"timeout\":1}", 0, NULL, 0};
    pthread_t second;
    pthread_create (&second, NULL, s_poll, &newer);
    pthread_join (thread, NULL);
    cr_assert_eq (older.status, 409);
    cr_assert (older.ms < 3000);
    cr_assert_str_eq (
        cJSON_GetStringValue (cJSON_GetObjectItem (older.root, "description")),
        "Conflict: terminated by other getUpdates request; make sure that "
        "only one bot instance is running");
    cJSON_Delete (older.root);
    pthread_join (second, NULL);
    cr_assert_eq (newer.status, 200);
    cJSON_Delete (newer.root);

    //  No polling while a webhook is set.
    long status;
    root = s_call ("setWebhook", "{\"url\":\"http://127.0.0.1:9/hook\"}", &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    s_expect_error ("getUpdates", NULL, 409,
                    "Conflict: can't use getUpdates method while webhook is active");
    root = s_call ("deleteWebhook", "{}", &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    root = s_updates (NULL);
    cJSON_Delete (root);
}

Test (tgstandin, send_message)
{
    long status;
    cJSON *root = s_call ("sendMessage",
                          "{\"chat_id\":77,\"text\":\"hello\",\"parse_mode\":\"HTML\","
                          "\"reply_parameters\":{\"message_id\":5}}",
                          &status);
    cr_assert_eq (status, 200);
    cJSON *msg = cJSON_GetObjectItem (root, "result");
    long first = (long) cJSON_GetNumberValue (cJSON_GetObjectItem (msg, "message_id"));
    cJSON *chat = cJSON_GetObjectItem (msg, "chat");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (chat, "id")), 77);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (chat, "type")),
                      "private");
    cJSON *from = cJSON_GetObjectItem (msg, "from");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (from, "id")), TG_BOT_ID);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (
                      cJSON_GetObjectItem (msg, "reply_to_message"), "message_id")),
                  5);
    cJSON_Delete (root);

    //  Form body, reply_parameters as a JSON string; then the legacy id.
    char url[512];
    snprintf (url, sizeof (url), "%s/bot%s/sendMessage", s_tg.base, s_tg.token);
    const char *form = "chat_id=-100123&text=h%C3%A9&reply_parameters=%7B%22message_id"
                       "%22%3A7%7D&message_thread_id=3";
    http_resp_t r;
    http_do ("POST", url, NULL, form, strlen (form), &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    http_resp_free (&r);
    snprintf (url, sizeof (url),
              "%s/bot%s/sendMessage?chat_id=77&text=x"
              "&reply_to_message_id=9",
              s_tg.base, s_tg.token);
    http_do ("GET", url, NULL, NULL, 0, &r);
    cr_assert_eq (r.status, 200, "%s", r.body);
    http_resp_free (&r);

    cr_assert_eq (tg_wait_sent (&s_tg, "77", 2, 2000), 0);
    cJSON *sent = tg_sent (&s_tg, NULL);
    cJSON *all = cJSON_GetObjectItem (sent, "messages");
    cr_assert_eq (cJSON_GetArraySize (all), 3);
    cJSON *second = cJSON_GetArrayItem (all, 1);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (second, "chat_id")),
                      "-100123");
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (second, "text")), "hé");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (second, "reply_to")), 7);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (second, "message_id")),
                  first + 1);
    cr_assert_eq (cJSON_GetNumberValue (
                      cJSON_GetObjectItem (cJSON_GetArrayItem (all, 2), "reply_to")),
                  9);
    cr_assert (cJSON_GetNumberValue (cJSON_GetObjectItem (second, "at_ms")) > 0);
    cJSON_Delete (sent);
    sent = tg_sent (&s_tg, "77");
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (sent, "messages")), 2);
    cJSON_Delete (sent);

    //  The 400s.
    s_expect_error ("sendMessage", "{\"chat_id\":77,\"text\":\"\"}", 400,
                    "Bad Request: message text is empty");
    s_expect_error ("sendMessage",
                    "{\"chat_id\":77,\"text\":\"x\",\"parse_mode\":\"BB\"}", 400,
                    "Bad Request: unsupported parse_mode");
    //  4096 UTF-16 units pass; 2049 emoji are 4098 units.
    char *text = malloc (4 * 2049 + 64);
    char *json = malloc (4 * 2049 + 128);
    memset (text, 'a', 4096);
    text[4096] = 0;
    sprintf (json, "{\"chat_id\":77,\"text\":\"%s\"}", text);
    root = s_call ("sendMessage", json, &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    for (int i = 0; i < 2049; i++)
        memcpy (text + i * 4, "\xF0\x9F\x98\x80", 4);
    text[2049 * 4] = 0;
    sprintf (json, "{\"chat_id\":77,\"text\":\"%s\"}", text);
    s_expect_error ("sendMessage", json, 400, "Bad Request: message is too long");
    free (text);
    free (json);
    cr_assert_eq (tg_calls (&s_tg, "sendMessage"), 7);
    sent = tg_sent (&s_tg, NULL);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (sent, "messages")), 4);
    cJSON_Delete (sent);
}

Test (tgstandin, edit_and_chat_action)
{
    long status;
    cJSON *root = s_call ("sendMessage", "{\"chat_id\":5,\"text\":\"draft\"}", &status);
    long id = (long) cJSON_GetNumberValue (
        cJSON_GetObjectItem (cJSON_GetObjectItem (root, "result"), "message_id"));
    cJSON_Delete (root);
    char json[128];
    snprintf (json, sizeof (json),
              "{\"chat_id\":5,\"message_id\":%ld,\"text\":\"final\"}", id);
    root = s_call ("editMessageText", json, &status);
    cr_assert_eq (status, 200);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (
                          cJSON_GetObjectItem (root, "result"), "text")),
                      "final");
    cJSON_Delete (root);
    s_expect_error ("editMessageText", json, 400,
                    "Bad Request: message is not modified: ");
    cJSON *sent = tg_sent (&s_tg, "5");
    cJSON *only = cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (only, "text")), "final");
    cJSON_Delete (sent);

    root = s_call ("sendChatAction", "{\"chat_id\":5,\"action\":\"typing\"}", &status);
    cr_assert_eq (status, 200);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (root, "result")));
    cJSON_Delete (root);
    cr_assert_eq (tg_calls (&s_tg, "sendChatAction"), 1);
    cr_assert_eq (tg_calls (&s_tg, "editMessageText"), 2);
}

Test (tgstandin, faults)
{
    cr_assert_eq (tg_fault (&s_tg, "{\"method\":\"sendMessage\",\"kind\":\"429\","
                                   "\"retry_after\":3,\"count\":2}"),
                  0);
    const char *msg = "{\"chat_id\":8,\"text\":\"x\"}";
    for (int i = 0; i < 2; i++) {
        long status;
        cJSON *root = s_call ("sendMessage", msg, &status);
        cr_assert_eq (status, 429);
        cr_assert_str_eq (
            cJSON_GetStringValue (cJSON_GetObjectItem (root, "description")),
            "Too Many Requests: retry after 3");
        cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (
                          cJSON_GetObjectItem (root, "parameters"), "retry_after")),
                      3);
        cJSON_Delete (root);
    }
    tg_fault (&s_tg, "{\"method\":\"sendMessage\",\"kind\":\"migrate\","
                     "\"migrate_to_chat_id\":-1009876543210,\"chat_id\":-55}");
    long status;
    cJSON *root = s_call ("sendMessage", msg, &status);  //  Other chat: fine
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    root = s_call ("sendMessage", "{\"chat_id\":-55,\"text\":\"x\"}", &status);
    cr_assert_eq (status, 400);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (
                      cJSON_GetObjectItem (root, "parameters"), "migrate_to_chat_id")),
                  -1009876543210.0);
    cJSON_Delete (root);

    struct {
        const char *kind;
        long code;
        const char *description;
    } kinds[] = {
        {"409", 409, "Conflict: terminated by other getUpdates request"},
        {"500", 500, "Internal Server Error"},
        {"502", 502, "Bad Gateway"},
        {"403", 403, "Forbidden: bot was blocked by the user"},
        {"401", 401, "Unauthorized"},
        {"too_long", 400, "Bad Request: message is too long"},
    };
    for (size_t i = 0; i < sizeof (kinds) / sizeof (kinds[0]); i++) {
        char json[128];
        snprintf (json, sizeof (json), "{\"method\":\"*\",\"kind\":\"%s\"}",
                  kinds[i].kind);
        tg_fault (&s_tg, json);
        s_expect_error ("sendMessage", msg, kinds[i].code, kinds[i].description);
    }

    //  drop: the connection closes with no answer.
    tg_fault (&s_tg, "{\"method\":\"getMe\",\"kind\":\"drop\"}");
    root = s_call ("getMe", NULL, &status);
    cr_assert_eq (status, 0);
    cJSON_Delete (root);

    //  hang: no answer at all, while other calls go on.
    tg_fault (&s_tg, "{\"method\":\"getMe\",\"kind\":\"hang\"}");
    char url[512];
    snprintf (url, sizeof (url), "%s/bot%s/getMe", s_tg.base, s_tg.token);
    CURL *c = curl_easy_init ();
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 1500L);
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    long long start = harness_now_ms ();
    CURLcode rc = curl_easy_perform (c);
    curl_easy_cleanup (c);
    cr_assert_eq (rc, CURLE_OPERATION_TIMEDOUT);
    cr_assert (harness_now_ms () - start >= 1400);
    root = s_call ("getMe", NULL, &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);

    //  Faulted calls count but send nothing; reset clears both.
    cr_assert_eq (tg_calls (&s_tg, "sendMessage"), 10);
    cr_assert_eq (tg_calls (&s_tg, "getMe"), 3);
    cJSON *sent = tg_sent (&s_tg, NULL);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (sent, "messages")), 1);
    cJSON_Delete (sent);
    tg_message (&s_tg, "{\"chat_id\":8,\"text\":\"queued\"}");
    tg_fault (&s_tg, "{\"method\":\"getMe\",\"kind\":\"500\"}");
    char reset[256];
    snprintf (reset, sizeof (reset), "%s/control/reset", s_tg.base);
    http_resp_t r;
    http_do ("POST", reset, NULL, "{}", 2, &r);
    cr_assert_eq (r.status, 200);
    http_resp_free (&r);
    cr_assert_eq (tg_calls (&s_tg, "sendMessage"), 0);
    cr_assert_eq (tg_calls (&s_tg, "pending"), 1);
    root = s_call ("getMe", NULL, &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    sent = tg_sent (&s_tg, NULL);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (sent, "messages")), 0);
    cJSON_Delete (sent);
}

Test (tgstandin, control_message_shapes)
{
    long status;
    cJSON *root =
        s_call ("sendMessage", "{\"chat_id\":-4001,\"text\":\"earlier\"}", &status);
    long bot_msg = (long) cJSON_GetNumberValue (
        cJSON_GetObjectItem (cJSON_GetObjectItem (root, "result"), "message_id"));
    cJSON_Delete (root);
    long a =
        tg_message (&s_tg, "{\"chat_id\":-4001,\"chat_type\":\"group\",\"from_id\":9,"
                           "\"from_name\":\"Ann\",\"username\":\"ann\",\"text\":\"hi\","
                           "\"mention\":true,\"reply_to_bot\":true}");
    long b = tg_message (&s_tg, "{\"chat_id\":9,\"text\":\"fixed\",\"edited\":true,"
                                "\"message_id\":500}");
    cr_assert_eq (b, a + 1);
    //  A re-delivery keeps its id and comes once more.
    char dup[256];
    snprintf (dup, sizeof (dup),
              "{\"update_id\":%ld,\"message\":{\"message_id\":1,\"date\":1,"
              "\"chat\":{\"id\":9,\"type\":\"private\"},\"text\":\"again\"}}",
              a);
    cr_assert_eq (tg_update (&s_tg, dup), a);

    root = s_updates (NULL);
    cJSON *result = cJSON_GetObjectItem (root, "result");
    cr_assert_eq (cJSON_GetArraySize (result), 3);
    cJSON *msg = cJSON_GetObjectItem (cJSON_GetArrayItem (result, 0), "message");
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (msg, "text")),
                      "@" TG_BOT_USERNAME " hi");
    cJSON *entity = cJSON_GetArrayItem (cJSON_GetObjectItem (msg, "entities"), 0);
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (entity, "type")),
                      "mention");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (entity, "length")),
                  1 + strlen (TG_BOT_USERNAME));
    cJSON *chat = cJSON_GetObjectItem (msg, "chat");
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (chat, "type")), "group");
    cr_assert (cJSON_GetObjectItem (chat, "title"));
    cJSON *from = cJSON_GetObjectItem (msg, "from");
    cr_assert_str_eq (cJSON_GetStringValue (cJSON_GetObjectItem (from, "username")),
                      "ann");
    cJSON *reply = cJSON_GetObjectItem (msg, "reply_to_message");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (reply, "message_id")),
                  bot_msg);
    cr_assert_eq (cJSON_GetNumberValue (
                      cJSON_GetObjectItem (cJSON_GetObjectItem (reply, "from"), "id")),
                  TG_BOT_ID);
    cJSON *edited =
        cJSON_GetObjectItem (cJSON_GetArrayItem (result, 1), "edited_message");
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (edited, "message_id")), 500);
    cr_assert_eq (s_update_id (root, 2), a);
    cJSON_Delete (root);

    //  Confirming past them all leaves nothing.
    char json[64];
    snprintf (json, sizeof (json), "{\"offset\":%ld}", b + 1);
    root = s_updates (json);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (root, "result")), 0);
    cJSON_Delete (root);
    cr_assert_eq (tg_calls (&s_tg, "pending"), 0);
}

//  ---- Webhook receiver -----------------------------------------------------------

typedef struct {
    int fd;  //  Listening socket
    int port;
    int answers[8];      //  Status to give each request in turn (then 200)
    int count;           //  Requests seen
    char secret[8][64];  //  Secret header of each ("-" if none)
    char body[8][512];
} hook_t;

static void *
s_hook (void *arg)
{
    hook_t *h = (hook_t *) arg;
    while (atomic_load (&h->count) < 8) {
        int c = accept (h->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        char got[4096] = "";
        http_raw_read_until (c, "}", 3000, got, sizeof (got));
        int i = atomic_load (&h->count);
        char *secret = strcasestr (got, "X-Telegram-Bot-Api-Secret-Token: ");
        if (secret)
            sscanf (secret + 33, "%63[^\r]", h->secret[i]);
        else
            snprintf (h->secret[i], sizeof (h->secret[i]), "-");
        char *body = strstr (got, "\r\n\r\n");
        snprintf (h->body[i], sizeof (h->body[i]), "%s", body ? body + 4 : "");
        char answer[128];
        int n =
            snprintf (answer, sizeof (answer),
                      "HTTP/1.1 %d X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                      h->answers[i] ? h->answers[i] : 200);
        atomic_store (&h->count, i + 1);
        send (c, answer, (size_t) n, MSG_NOSIGNAL);
        close (c);
    }
    return NULL;
}

Test (tgstandin, webhook_push)
{
    static hook_t hook;
    memset (&hook, 0, sizeof (hook));
    hook.fd = socket (AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {0};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
    socklen_t len = sizeof (a);
    cr_assert_eq (bind (hook.fd, (struct sockaddr *) &a, sizeof (a)), 0);
    listen (hook.fd, 8);
    getsockname (hook.fd, (struct sockaddr *) &a, &len);
    hook.port = ntohs (a.sin_port);
    hook.answers[0] = 500;
    pthread_t thread;
    pthread_create (&thread, NULL, s_hook, &hook);

    char json[256];
    snprintf (json, sizeof (json),
              "{\"url\":\"http://127.0.0.1:%d/hook\",\"secret_token\":\"s3cret\"}",
              hook.port);
    long status;
    cJSON *root = s_call ("setWebhook", json, &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    long id = tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"pushed\"}");

    //  First push gets a 500, the retry 500 ms later a 200.
    long long deadline = harness_now_ms () + 5000;
    while (tg_calls (&s_tg, "pending") != 0 && harness_now_ms () < deadline)
        usleep (50000);
    cr_assert_eq (tg_calls (&s_tg, "pending"), 0);
    cr_assert_eq (atomic_load (&hook.count), 2);
    cr_assert_str_eq (hook.secret[0], "s3cret");
    cr_assert_str_eq (hook.secret[1], "s3cret");
    cJSON *update = cJSON_Parse (hook.body[1]);
    cr_assert_eq (cJSON_GetNumberValue (cJSON_GetObjectItem (update, "update_id")), id);
    cJSON_Delete (update);

    root = s_call ("getWebhookInfo", NULL, &status);
    cJSON *info = cJSON_GetObjectItem (root, "result");
    cr_assert (
        strstr (cJSON_GetStringValue (cJSON_GetObjectItem (info, "url")), "/hook"));
    cr_assert_eq (
        cJSON_GetNumberValue (cJSON_GetObjectItem (info, "pending_update_count")), 0);
    cr_assert (cJSON_GetObjectItem (info, "last_error_message"));
    cJSON_Delete (root);

    //  A forged secret, then none at all.
    char url[256];
    snprintf (url, sizeof (url), "%s/control/webhook", s_tg.base);
    http_resp_t r;
    const char *forge = "{\"secret_override\":\"wrong\"}";
    http_do ("POST", url, NULL, forge, strlen (forge), &r);
    http_resp_free (&r);
    tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"forged\"}");
    const char *none = "{\"secret_override\":\"\"}";
    deadline = harness_now_ms () + 5000;
    while (atomic_load (&hook.count) < 3 && harness_now_ms () < deadline)
        usleep (20000);
    http_do ("POST", url, NULL, none, strlen (none), &r);
    http_resp_free (&r);
    tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"bare\"}");
    while (atomic_load (&hook.count) < 4 && harness_now_ms () < deadline)
        usleep (20000);
    cr_assert_eq (atomic_load (&hook.count), 4);
    cr_assert_str_eq (hook.secret[2], "wrong");
    cr_assert_str_eq (hook.secret[3], "-");

    root = s_call ("deleteWebhook", "{\"drop_pending_updates\":true}", &status);
    cr_assert_eq (status, 200);
    cJSON_Delete (root);
    shutdown (hook.fd, SHUT_RDWR);
    close (hook.fd);
    pthread_join (thread, NULL);
}

Test (tgstandin, state_survives_kill)
{
    long first = tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"one\"}");
    tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"two\"}");
    long status;
    cJSON *root = s_call ("sendMessage", "{\"chat_id\":77,\"text\":\"out\"}", &status);
    long sent_id = (long) cJSON_GetNumberValue (
        cJSON_GetObjectItem (cJSON_GetObjectItem (root, "result"), "message_id"));
    cJSON_Delete (root);
    int port = s_tg.port;

    tg_stop (&s_tg, SIGKILL);
    cr_assert_eq (tg_restart (&s_tg), 0, "no restart");
    cr_assert_eq (s_tg.port, port);
    cr_assert_eq (tg_calls (&s_tg, "pending"), 2);
    cJSON *sent = tg_sent (&s_tg, "77");
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (sent, "messages")), 1);
    cJSON_Delete (sent);
    cr_assert_eq (tg_message (&s_tg, "{\"chat_id\":77,\"text\":\"three\"}"), first + 2);
    root = s_call ("sendMessage", "{\"chat_id\":77,\"text\":\"out2\"}", &status);
    cr_assert (cJSON_GetNumberValue (cJSON_GetObjectItem (
                   cJSON_GetObjectItem (root, "result"), "message_id"))
               > sent_id);
    cJSON_Delete (root);
    root = s_updates (NULL);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItem (root, "result")), 3);
    cJSON_Delete (root);
}
