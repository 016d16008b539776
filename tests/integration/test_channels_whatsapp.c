/*  =========================================================================
    test_channels_whatsapp - the WhatsApp channel of the real `clawgate
    serve` against cg_wastandin, which plays both Meta (the verification
    GET, signed webhook POSTs retried until 200) and the Graph API (sends,
    read receipts with typing, its errors): verification, signatures,
    replies in context with typing, duplicates, batches, statuses, non-text
    and non-ASCII messages, split replies, the Graph errors (131047 by
    fault and by the closed window, 5xx retried then given up after
    sendAttempts, 130429, 190), pairing, allowlist and disabled DMs, and a push
    retried across a gateway restart.  The model is the built-in
    local/echo, so a reply's text is the message's.
    =========================================================================
*/
#include <criterion/criterion.h>
#include <ctype.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "channels.h"
#include "harness.h"
#include "whatsapp.h"

#define WAIT_MS 15000  //  Generous: the suite also runs under ASan
#define QUIET_MS 1500  //  How long "nothing more is sent" is watched

static wa_standin_t s_wa;
static ch_gw_t s_gw;
static char s_hook[160];  //  The gateway's webhook URL, for the stand-in

static void
s_setup (void)
{
    //  Short push retries: a gateway that is down is tried again soon,
    //  and for long enough to outlive a restart.
    const char *args[] = {"--retry-ms", "200,400,800",       "--push-attempts",
                          "40",         "--push-timeout-ms", "5000",
                          NULL};
    cr_assert_eq (wa_start (&s_wa, NULL, args), 0, "cg_wastandin did not start");
}

static void
s_teardown (void)
{
    //  A clean stop exits 0; under ASan a leak or a bad free makes it not.
    if (s_gw.proc.pid > 0)
        cr_expect_eq (ch_gw_stop (&s_gw, SIGTERM), 0, "clawgate serve did not exit 0");
    ch_gw_destroy (&s_gw);
    wa_stop (&s_wa, SIGTERM);
}

TestSuite (channels_whatsapp, .init = s_setup, .fini = s_teardown, .timeout = 60);

//  The WhatsApp channel's configuration pointed at the stand-in, with
//  extra key/value text (may be NULL).  Into buf.
static void
s_config (char *buf, size_t cap, const char *extra)
{
    snprintf (buf, cap,
              "{\"channels\":{\"whatsapp\":{\"accessToken\":\"%s\",\"phoneNumberId\":"
              "\"%s\",\"appSecret\":\"%s\",\"verifyToken\":\"%s\",\"baseUrl\":\"%s\","
              "\"retryMinMs\":100,\"retryMaxMs\":1000%s%s}}}",
              WA_ACCESS_TOKEN, WA_PHONE_NUMBER_ID, WA_APP_SECRET, WA_VERIFY_TOKEN,
              s_wa.graph, extra ? "," : "", extra ? extra : "");
}

static void
s_set_hook (void)
{
    snprintf (s_hook, sizeof (s_hook), "%s/v1/channels/whatsapp/webhook", s_gw.base);
}

//  Starts the gateway with the whatsapp channel (extra keys) and waits
//  until the channel is connected.
static void
s_start (const char *extra)
{
    char config[4096];
    s_config (config, sizeof (config), extra);
    cr_assert_eq (ch_gw_start (&s_gw, config), 0, "clawgate serve did not start");
    cr_assert_eq (ch_wait_status (&s_gw, "whatsapp", "connected", WAIT_MS), 0,
                  "whatsapp never connected");
    s_set_hook ();
}

//  A signed text from `from`, delivered; its wamid into wamid (96 bytes).
static void
s_text (const char *from, const char *text, char *wamid)
{
    long status = wa_inbound_text (&s_wa, s_hook, from, text, wamid, 96);
    cr_assert_eq (status, 200, "the push of '%.40s' from %s got %ld", text, from, status);
    cr_assert (*wamid, "no wamid for the push from %s", from);
}

//  One control inbound (json without target: it is added), waited for.
//  Caller owns return value: {push, ids, state, status, attempts, statuses}.
static cJSON *
s_inbound (const char *json)
{
    cJSON *body = cJSON_Parse (json);
    cr_assert_not_null (body, "bad test json: %s", json);
    cJSON_AddStringToObject (body, "target", s_hook);
    if (!cJSON_GetObjectItem (body, "wait"))
        cJSON_AddBoolToObject (body, "wait", true);
    char *text = cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    cJSON *answer = wa_control (&s_wa, "inbound", text);
    cJSON_free (text);
    cr_assert_not_null (answer, "/control/inbound failed for %s", json);
    return answer;
}

//  As s_inbound, asserting the gateway answered want; frees the answer.
static void
s_inbound_expect (const char *json, long want)
{
    cJSON *answer = s_inbound (json);
    long status = (long) ch_num (answer, "status");
    cJSON_Delete (answer);
    cr_assert_eq (status, want, "%s: the gateway answered %ld, not %ld", json, status,
                  want);
}

//  How many messages the stand-in sent to wa_id (NULL: anyone) in
//  reply to wamid (NULL: any, "": none).
static int
s_count (const char *wa_id, const char *wamid)
{
    cJSON *sent = wa_sent (&s_wa, wa_id);
    cr_assert_not_null (sent, "/control/sent failed");
    int n = 0;
    cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItem (sent, "messages"))
    {
        const char *context = ch_str (m, "context");
        if (!wamid || (context ? strcmp (context, wamid) == 0 : *wamid == 0))
            n++;
    }
    cJSON_Delete (sent);
    return n;
}

//  Polls until a message to wa_id replies to wamid; returns its body
//  (caller frees), NULL on timeout.
static char *
s_wait_reply (const char *wa_id, const char *wamid, int timeout_ms)
{
    long long deadline = harness_now_ms () + timeout_ms;
    while (true) {
        cJSON *sent = wa_sent (&s_wa, wa_id);
        char *body = NULL;
        cJSON *m;
        cJSON_ArrayForEach (m, cJSON_GetObjectItem (sent, "messages"))
        {
            const char *context = ch_str (m, "context");
            if (!body && context && strcmp (context, wamid) == 0)
                body = strdup (ch_str (m, "body") ? ch_str (m, "body") : "");
        }
        cJSON_Delete (sent);
        if (body || harness_now_ms () >= deadline)
            return body;
        usleep (50000);
    }
}

//  Waits for the echo of text to wa_id, in reply to wamid.
static void
s_expect_echo (const char *wa_id, const char *wamid, const char *text)
{
    char *got = s_wait_reply (wa_id, wamid, WAIT_MS);
    cr_assert_not_null (got, "no reply to %s in reply to %s", wa_id, wamid);
    cr_assert_str_eq (got, text, "reply to %s: '%s'", wamid, got);
    free (got);
}

//  Asserts that, over QUIET_MS, nothing more is sent to wa_id (NULL: any).
static void
s_assert_quiet (const char *wa_id, int have)
{
    usleep (QUIET_MS * 1000);
    int now = s_count (wa_id, NULL);
    cr_assert_eq (now, have, "expected %d messages to %s, got %d", have,
                  wa_id ? wa_id : "anyone", now);
}

//  The channel's lastError, "" if none.  Into buf.
static const char *
s_last_error (char *buf, size_t cap)
{
    cJSON *st = ch_status (&s_gw, "whatsapp");
    const char *e = ch_str (st, "lastError");
    snprintf (buf, cap, "%s", e ? e : "");
    cJSON_Delete (st);
    return buf;
}

//  Polls until the status field reaches at least want.
static long
s_wait_num (const char *field, long want)
{
    long long deadline = harness_now_ms () + WAIT_MS;
    long have;
    while ((have = ch_status_num (&s_gw, "whatsapp", field)) < want
           && harness_now_ms () < deadline)
        usleep (50000);
    return have;
}

//  ---- Webhook: verification and signatures ------------------------------------------

Test (channels_whatsapp, verification_get)
{
    s_start ("\"dmPolicy\":\"open\"");
    long status = 0;
    cr_assert_eq (wa_verify (&s_wa, s_hook, NULL, &status), 1,
                  "the right token did not get the challenge back (HTTP %ld)", status);
    cr_assert_eq (status, 200);

    char json[512];
    snprintf (json, sizeof (json),
              "{\"target\":\"%s\",\"token\":\"not-our-token\",\"challenge\":"
              "\"c-4711-xyz\"}",
              s_hook);
    cJSON *r = wa_control (&s_wa, "verify", json);
    cr_assert_not_null (r);
    cr_assert_eq ((long) ch_num (r, "status"), 403, "a wrong token got %ld",
                  (long) ch_num (r, "status"));
    const char *body = ch_str (r, "body");
    cr_assert (!body || !strstr (body, "c-4711-xyz"), "a wrong token got the challenge");
    cr_assert (!cJSON_IsTrue (cJSON_GetObjectItem (r, "echoed")));
    cJSON_Delete (r);

    //  The right token with another mode is refused too.
    snprintf (json, sizeof (json),
              "{\"target\":\"%s\",\"mode\":\"unsubscribe\",\"challenge\":\"c-99\"}",
              s_hook);
    r = wa_control (&s_wa, "verify", json);
    cr_assert_not_null (r);
    cr_assert_eq ((long) ch_num (r, "status"), 403, "mode unsubscribe got %ld",
                  (long) ch_num (r, "status"));
    cJSON_Delete (r);
    cr_assert_eq (wa_verify (&s_wa, s_hook, WA_VERIFY_TOKEN "x", &status), 0);
    cr_assert_eq (status, 403);
}

Test (channels_whatsapp, forged_and_unsigned_pushes_refused)
{
    s_start ("\"dmPolicy\":\"open\"");
    //  A forged signature, retried by the stand-in: 401 every time.
    cJSON *answer =
        s_inbound ("{\"from\":\"15550700001\",\"text\":\"forged\",\"forge\":true,"
                   "\"attempts\":3}");
    cJSON *statuses = cJSON_GetObjectItem (answer, "statuses");
    cr_assert_eq (cJSON_GetArraySize (statuses), 3, "attempts: %d",
                  cJSON_GetArraySize (statuses));
    cJSON *st;
    cJSON_ArrayForEach (st, statuses)
    {
        cr_assert_eq ((long) st->valuedouble, 401, "a forged push got %ld",
                      (long) st->valuedouble);
    }
    cr_assert_str_eq (ch_str (answer, "state"), "failed");
    cJSON_Delete (answer);
    //  No signature at all.
    s_inbound_expect ("{\"from\":\"15550700001\",\"text\":\"unsigned\","
                      "\"missing_sig\":true,\"attempts\":1}",
                      401);
    //  Nothing was read in.
    cJSON *status = ch_status (&s_gw, "whatsapp");
    cr_assert_eq ((long) ch_num (status, "inbound"), 0);
    cr_assert_null (cJSON_GetObjectItem (status, "lastInboundAt"));
    cJSON_Delete (status);

    //  A genuine one still goes through; the forged ones never do.
    char wamid[96];
    s_text ("15550700002", "genuine", wamid);
    s_expect_echo ("15550700002", wamid, "genuine");
    s_assert_quiet (NULL, 1);
    cr_assert_eq (s_count ("15550700001", NULL), 0, "a forged push was answered");
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "inbound"), 1);
}

//  ---- Messages and replies ----------------------------------------------------------

Test (channels_whatsapp, text_answered_in_context_with_typing)
{
    s_start ("\"dmPolicy\":\"open\"");
    char wamid[96];
    s_text ("15550100001", "hello whatsapp", wamid);
    char *got = s_wait_reply ("15550100001", wamid, WAIT_MS);
    cr_assert_not_null (got, "no reply in context of %s", wamid);
    cr_assert_str_eq (got, "hello whatsapp");
    free (got);
    cJSON *sent = wa_sent (&s_wa, "15550100001");
    cJSON *m = cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0);
    cr_assert_str_eq (ch_str (m, "type"), "text");
    cr_assert_str_eq (ch_str (m, "context"), wamid);
    cr_assert (!cJSON_IsTrue (cJSON_GetObjectItem (m, "preview_url")));
    cJSON_Delete (sent);

    //  The message was marked read with the typing indicator.
    cr_assert_eq (wa_wait_reads (&s_wa, 1, WAIT_MS), 0, "no read receipt");
    cJSON *reads = wa_reads (&s_wa);
    bool found = false;
    cJSON *r;
    cJSON_ArrayForEach (r, cJSON_GetObjectItem (reads, "reads"))
    {
        const char *id = ch_str (r, "message_id");
        if (id && strcmp (id, wamid) == 0) {
            found = true;
            cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (r, "typing")),
                       "the read receipt has no typing indicator");
            cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (r, "known")));
        }
    }
    cr_assert (found, "no read receipt for %s", wamid);
    cJSON_Delete (reads);

    //  Non-ASCII text: Meta escapes it as \uXXXX (and '/' as "\/"); the
    //  signature is over those raw bytes, and the reply is the text.
    const char *text = "h\xc3\xa9llo w\xc3\xb6rld \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac "
                       "\xf0\x9f\x98\x80 a/b \"q\"";
    char wamid2[96];
    s_text ("15550100001", text, wamid2);
    cJSON *pushes = wa_pushes (&s_wa);
    cJSON *push = NULL, *p;
    cJSON_ArrayForEach (p, cJSON_GetObjectItem (pushes, "pushes")) push = p;
    const char *wire = ch_str (push, "body");
    cr_assert (wire && strstr (wire, "\\u00e9") && strstr (wire, "\\ud83d")
                   && strstr (wire, "a\\/b"),
               "the push was not escaped as Meta does: %s", wire ? wire : "-");
    cJSON_Delete (pushes);
    s_expect_echo ("15550100001", wamid2, text);

    cJSON *st = ch_status (&s_gw, "whatsapp");
    cr_assert_str_eq (ch_str (st, "status"), "connected");
    cr_assert_str_eq (ch_str (st, "phoneNumberId"), WA_PHONE_NUMBER_ID);
    cr_assert_eq ((long) ch_num (st, "inbound"), 2);
    cr_assert (ch_str (st, "lastInboundAt"), "no lastInboundAt");
    cJSON_Delete (st);
    cr_assert_eq (s_wait_num ("outbound", 2), 2);
    s_assert_quiet ("15550100001", 2);
}

Test (channels_whatsapp, duplicates_answered_once)
{
    s_start ("\"dmPolicy\":\"open\"");
    char wamid[96];
    s_text ("15550200001", "say it once", wamid);
    s_expect_echo ("15550200001", wamid, "say it once");

    //  The same wamid in another post.
    char json[512];
    snprintf (json, sizeof (json),
              "{\"from\":\"15550200001\",\"text\":\"say it once\",\"id\":\"%s\"}", wamid);
    s_inbound_expect (json, 200);
    //  Meta's retry of the very same post (same bytes, same signature).
    cJSON *pushes = wa_pushes (&s_wa);
    cJSON *first = cJSON_GetArrayItem (cJSON_GetObjectItem (pushes, "pushes"), 0);
    cr_assert_not_null (ch_str (first, "body"));
    cJSON *raw = cJSON_CreateObject ();
    cJSON_AddStringToObject (raw, "raw", ch_str (first, "body"));
    char *raw_json = cJSON_PrintUnformatted (raw);
    cJSON_Delete (raw);
    cJSON_Delete (pushes);
    s_inbound_expect (raw_json, 200);
    cJSON_free (raw_json);
    //  One wamid twice in one post.
    s_inbound_expect ("{\"batch\":[{\"from\":\"15550200001\",\"text\":\"twice in one\","
                      "\"id\":\"wamid.cgtest.dup1\"},{\"from\":\"15550200001\",\"text\":"
                      "\"twice in one\",\"id\":\"wamid.cgtest.dup1\"}]}",
                      200);
    s_expect_echo ("15550200001", "wamid.cgtest.dup1", "twice in one");

    char wamid2[96];
    s_text ("15550200001", "a new one", wamid2);
    s_expect_echo ("15550200001", wamid2, "a new one");
    s_assert_quiet ("15550200001", 3);
    cr_assert_eq (s_count ("15550200001", wamid), 1);
    cr_assert_eq (s_count ("15550200001", "wamid.cgtest.dup1"), 1);
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "inbound"), 3);
}

Test (channels_whatsapp, batch_across_entries_and_senders)
{
    s_start ("\"dmPolicy\":\"open\"");
    cJSON *answer = s_inbound ("{\"batch\":["
                               "{\"from\":\"15550800001\",\"text\":\"a1\"},"
                               "{\"from\":\"15550800002\",\"text\":\"b1\"},"
                               "{\"from\":\"15550800001\",\"text\":\"a2\",\"change\":1},"
                               "{\"from\":\"15550800002\",\"text\":\"b2\",\"entry\":1},"
                               "{\"from\":\"15550800001\",\"text\":\"a3\",\"entry\":1,"
                               "\"change\":1}]}");
    cr_assert_eq ((long) ch_num (answer, "status"), 200);
    cJSON *ids = cJSON_GetObjectItem (answer, "ids");
    cr_assert_eq (cJSON_GetArraySize (ids), 5);
    const char *want_a[] = {"a1", "a2", "a3"}, *want_b[] = {"b1", "b2"};
    const char *ids_a[] = {cJSON_GetArrayItem (ids, 0)->valuestring,
                           cJSON_GetArrayItem (ids, 2)->valuestring,
                           cJSON_GetArrayItem (ids, 4)->valuestring};
    const char *ids_b[] = {cJSON_GetArrayItem (ids, 1)->valuestring,
                           cJSON_GetArrayItem (ids, 3)->valuestring};
    cr_assert_eq (wa_wait_sent (&s_wa, "15550800001", 3, WAIT_MS), 0,
                  "fewer than 3 to A");
    cr_assert_eq (wa_wait_sent (&s_wa, "15550800002", 2, WAIT_MS), 0,
                  "fewer than 2 to B");
    s_assert_quiet (NULL, 5);
    //  Each sender's replies in its order, each in reply to its message.
    for (int s = 0; s < 2; s++) {
        const char *to = s ? "15550800002" : "15550800001";
        const char **want = s ? want_b : want_a, **id = s ? ids_b : ids_a;
        cJSON *sent = wa_sent (&s_wa, to);
        cJSON *msgs = cJSON_GetObjectItem (sent, "messages");
        cr_assert_eq (cJSON_GetArraySize (msgs), s ? 2 : 3);
        double last_seq = -1;
        for (int i = 0; i < cJSON_GetArraySize (msgs); i++) {
            cJSON *m = cJSON_GetArrayItem (msgs, i);
            cr_assert_gt (ch_num (m, "seq"), last_seq);
            last_seq = ch_num (m, "seq");
            cr_assert_str_eq (ch_str (m, "body"), want[i], "reply %d to %s: %s", i, to,
                              ch_str (m, "body"));
            cr_assert_str_eq (ch_str (m, "context") ? ch_str (m, "context") : "-", id[i]);
        }
        cJSON_Delete (sent);
    }
    cJSON_Delete (answer);
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "inbound"), 5);
}

//  Status-only posts and non-text messages: 200, nothing stored, nothing
//  sent (no reply, no read receipt); a failed status is recorded.
Test (channels_whatsapp, statuses_and_images_store_nothing)
{
    s_start ("\"dmPolicy\":\"open\"");
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "failed"), 0);
    s_inbound_expect ("{\"status\":\"delivered\",\"id\":\"wamid.cgtest.out1\","
                      "\"recipient_id\":\"15550900001\"}",
                      200);
    s_inbound_expect ("{\"status_only\":true,\"batch\":[{\"status\":\"sent\",\"id\":"
                      "\"wamid.cgtest.out2\",\"recipient_id\":\"15550900001\"},"
                      "{\"status\":\"read\",\"id\":\"wamid.cgtest.out2\","
                      "\"recipient_id\":\"15550900001\",\"entry\":1}]}",
                      200);
    s_inbound_expect ("{\"from\":\"15550900001\",\"type\":\"image\",\"text\":"
                      "\"a caption\"}",
                      200);
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "inbound"), 0, "something stored");
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "failed"), 0);
    char err[512];
    cr_assert_eq (strstr (s_last_error (err, sizeof (err)), "131047"), NULL);

    //  A failed status about a message this gateway never sent (sent by
    //  other means): not one of its replies, not counted.
    s_inbound_expect ("{\"status\":\"failed\",\"id\":\"wamid.cgtest.out3\","
                      "\"recipient_id\":\"15550900001\",\"error_code\":131047}",
                      200);
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "failed"), 0);
    cJSON *st = ch_status (&s_gw, "whatsapp");
    cr_assert_str_eq (ch_str (st, "status"), "connected");
    cr_assert_eq ((long) ch_num (st, "inbound"), 0);
    cr_assert_eq ((long) ch_num (st, "pending"), 0);
    cJSON_Delete (st);
    usleep (QUIET_MS * 1000);
    cr_assert_eq (wa_calls (&s_wa, "messages"), 0, "the gateway called the Graph API");

    //  Meta accepts a reply (200, a wamid), then reports it failed: that
    //  one is counted, once, and named in lastError.
    char body[512];
    snprintf (body, sizeof (body), "{\"status_target\":\"%s\"}", s_hook);
    cJSON *ok = wa_control (&s_wa, "config", body);
    cr_assert_not_null (ok);
    cJSON_Delete (ok);
    cr_assert_eq (wa_fault (&s_wa, "{\"kind\":\"131047\",\"async\":true}"), 0);
    char wamid[96];
    s_text ("15550900002", "reported later", wamid);
    long long deadline = harness_now_ms () + WAIT_MS;
    while (ch_status_num (&s_gw, "whatsapp", "failed") < 1
           && harness_now_ms () < deadline)
        usleep (50000);
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "failed"), 1);
    cr_assert (strstr (s_last_error (err, sizeof (err)), "131047"), "lastError: %s", err);
    cr_assert (strstr (err, "15550900002"), "lastError names no recipient: %s", err);
    usleep (QUIET_MS * 1000);
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "failed"), 1);
}

//  The code points of UTF-8 text.
static size_t
s_code_points (const char *text)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *) text; *p; p++)
        n += (*p & 0xC0) != 0x80;
    return n;
}

Test (channels_whatsapp, long_reply_split_in_code_points)
{
    s_start ("\"dmPolicy\":\"open\"");
    //  9,000 characters, every fifth word with a two-byte one: split by
    //  bytes it would take five parts, by code points three.
    char *text = malloc (20000);
    size_t len = 0, cps = 0;
    for (int i = 0; cps < 9000; i++) {
        char word[32];
        int n =
            snprintf (word, sizeof (word), "w%d%s ", i, i % 5 ? "" : "\xc3\xa9\xc3\xa9");
        for (int k = 0; k < n && cps < 9000; k++) {
            text[len] = word[k];
            cps += ((unsigned char) word[k] & 0xC0) != 0x80;
            len++;
        }
    }
    while (len && ((unsigned char) text[len - 1] & 0xC0) == 0xC0)
        len--;  //  A lead byte cut off from its character
    text[len - 1] = 'z';
    text[len] = 0;
    char wamid[96];
    s_text ("15551000001", text, wamid);
    cr_assert_eq (wa_wait_sent (&s_wa, "15551000001", 3, WAIT_MS), 0,
                  "fewer than 3 parts");
    s_assert_quiet ("15551000001", 3);
    cJSON *sent = wa_sent (&s_wa, "15551000001");
    cJSON *msgs = cJSON_GetObjectItem (sent, "messages");
    char *joined = calloc (1, 40000), *want = calloc (1, 40000);
    size_t jl = 0, wl = 0;
    for (size_t i = 0; i < len; i++)
        if (!isspace ((unsigned char) text[i]))
            want[wl++] = text[i];
    double last_seq = -1;
    for (int i = 0; i < 3; i++) {
        cJSON *p = cJSON_GetArrayItem (msgs, i);
        const char *t = ch_str (p, "body");
        cr_assert (t && s_code_points (t) <= 4096, "part %d has %zu code points", i,
                   s_code_points (t));
        cr_assert_gt (ch_num (p, "seq"), last_seq);
        last_seq = ch_num (p, "seq");
        if (i == 0)
            cr_assert_str_eq (ch_str (p, "context") ? ch_str (p, "context") : "-", wamid,
                              "the first part is not in reply to the message");
        else
            cr_assert_null (ch_str (p, "context"), "part %d is in reply too", i);
        for (const char *c = t; *c; c++)
            if (!isspace ((unsigned char) *c))
                joined[jl++] = *c;
    }
    cr_assert_eq (jl, wl, "joined %zu bytes, want %zu", jl, wl);
    cr_assert (memcmp (joined, want, wl) == 0, "the parts are not the text in order");
    free (joined);
    free (want);
    free (text);
    cJSON_Delete (sent);

    //  5,000 emoji, no space anywhere: a hard cut, between characters
    //  (four bytes, two UTF-16 units each), at 4,096 of them.
    const char *emoji = "\xf0\x9f\x98\x80";
    text = malloc (5000 * 4 + 1);
    for (int i = 0; i < 5000; i++)
        memcpy (text + 4 * i, emoji, 4);
    text[5000 * 4] = 0;
    s_text ("15551000002", text, wamid);
    cr_assert_eq (wa_wait_sent (&s_wa, "15551000002", 2, WAIT_MS), 0,
                  "fewer than 2 parts");
    sent = wa_sent (&s_wa, "15551000002");
    msgs = cJSON_GetObjectItem (sent, "messages");
    cr_assert_eq (cJSON_GetArraySize (msgs), 2, "parts: %d", cJSON_GetArraySize (msgs));
    const char *p0 = ch_str (cJSON_GetArrayItem (msgs, 0), "body");
    const char *p1 = ch_str (cJSON_GetArrayItem (msgs, 1), "body");
    cr_assert (p0 && p1);
    cr_assert_eq (s_code_points (p0), 4096, "first part: %zu code points",
                  s_code_points (p0));
    cr_assert_eq (strlen (p0) + strlen (p1), strlen (text));
    cr_assert (strncmp (p0, text, strlen (p0)) == 0
                   && strcmp (p1, text + strlen (p0)) == 0,
               "the parts are not the text");
    free (text);
    cJSON_Delete (sent);
}

//  ---- Graph errors ------------------------------------------------------------------

Test (channels_whatsapp, send_errors_retried_or_given_up)
{
    s_start ("\"dmPolicy\":\"open\",\"sendAttempts\":3");
    //  131047 (the 24-hour window) is permanent: one try.  A 500 and a
    //  throughput limit are retried.
    cr_assert_eq (wa_fault (&s_wa, "{\"kind\":\"131047\",\"to\":\"15550300001\","
                                   "\"count\":3}"),
                  0);
    cr_assert_eq (wa_fault (&s_wa, "{\"kind\":\"500\",\"to\":\"15550300002\"}"), 0);
    cr_assert_eq (wa_fault (&s_wa, "{\"kind\":\"130429\",\"to\":\"15550300003\"}"), 0);
    char w1[96], w2[96], w3[96];
    s_text ("15550300001", "window closed", w1);
    s_text ("15550300002", "server hiccup", w2);
    s_text ("15550300003", "too fast", w3);
    s_expect_echo ("15550300002", w2, "server hiccup");
    s_expect_echo ("15550300003", w3, "too fast");
    cr_assert_eq (s_wait_num ("failed", 1), 1, "the 131047 reply was not given up");
    char err[512];
    cJSON *st = ch_status (&s_gw, "whatsapp");
    cr_assert_eq ((long) ch_num (st, "failed"), 1);
    cr_assert_str_eq (ch_str (st, "status"), "connected");
    cr_assert (strstr (s_last_error (err, sizeof (err)), "131047"), "lastError: %s", err);
    cJSON_Delete (st);

    //  A 5xx every time: given up after sendAttempts tries.
    cr_assert_eq (
        wa_fault (&s_wa, "{\"kind\":\"503\",\"to\":\"15550300006\",\"count\":10}"), 0);
    char w6[96];
    s_text ("15550300006", "never through", w6);
    cr_assert_eq (s_wait_num ("failed", 2), 2, "the reply never given up after 5xx");
    cr_assert (strstr (s_last_error (err, sizeof (err)), "503"), "lastError: %s", err);

    //  The real window: a message the stand-in did not see its sender
    //  write (posted raw, so it opens no window), e.g. answered a day late.
    char raw[1024];
    snprintf (raw, sizeof (raw),
              "{\"object\":\"whatsapp_business_account\",\"entry\":[{\"id\":\"%s\","
              "\"changes\":[{\"value\":{\"messaging_product\":\"whatsapp\","
              "\"metadata\":{\"display_phone_number\":\"%s\",\"phone_number_id\":"
              "\"%s\"},\"contacts\":[{\"profile\":{\"name\":\"Late\"},\"wa_id\":"
              "\"15550300005\"}],\"messages\":[{\"from\":\"15550300005\",\"id\":"
              "\"wamid.cgtest.late1\",\"timestamp\":\"1700000000\",\"type\":"
              "\"text\",\"text\":{\"body\":\"a day late\"}}]},\"field\":"
              "\"messages\"}]}]}",
              WA_WABA_ID, WA_DISPLAY_PHONE, WA_PHONE_NUMBER_ID);
    cJSON *body = cJSON_CreateObject ();
    cJSON_AddStringToObject (body, "raw", raw);
    char *json = cJSON_PrintUnformatted (body);
    cJSON_Delete (body);
    s_inbound_expect (json, 200);
    cJSON_free (json);
    cr_assert_eq (s_wait_num ("failed", 3), 3,
                  "the reply out of the window not given up");
    cr_assert (strstr (s_last_error (err, sizeof (err)), "131047"), "lastError: %s", err);
    //  Nothing more tried: 131047 once, the 500 and the 130429 once before
    //  their retry went through, the 503 sendAttempts times; the window once.
    usleep (QUIET_MS * 1000);
    cr_assert_eq (wa_calls (&s_wa, "faulted"), 6, "faulted sends: %ld, want 1+1+1+3",
                  wa_calls (&s_wa, "faulted"));
    cr_assert_eq (wa_calls (&s_wa, "rejected"), 1, "sends refused by the window: %ld",
                  wa_calls (&s_wa, "rejected"));
    cr_assert_eq (s_count ("15550300001", NULL), 0);
    cr_assert_eq (s_count ("15550300002", NULL), 1);
    cr_assert_eq (s_count ("15550300003", NULL), 1);
    cr_assert_eq (s_count ("15550300005", NULL), 0);
    cr_assert_eq (s_count ("15550300006", NULL), 0);
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "failed"), 3);

    //  An expired token (190): permanent, and the channel is in error.
    cr_assert_eq (
        wa_fault (&s_wa, "{\"kind\":\"190\",\"to\":\"15550300004\",\"count\":5}"), 0);
    char w4[96];
    s_text ("15550300004", "token gone", w4);
    cr_assert_eq (ch_wait_status (&s_gw, "whatsapp", "error", WAIT_MS), 0,
                  "status never went error after 190");
    cr_assert (strstr (s_last_error (err, sizeof (err)), "190"), "lastError: %s", err);
    cr_assert_eq (s_wait_num ("failed", 4), 4);
    usleep (QUIET_MS * 1000);
    cr_assert_eq (wa_calls (&s_wa, "faulted"), 7, "faulted sends: %ld (190 retried?)",
                  wa_calls (&s_wa, "faulted"));
    cr_assert_eq (s_count ("15550300004", NULL), 0);

    //  Sending works again (a new token, Meta healed): connected again, so
    //  /ready takes the gateway back.
    char w5[96];
    s_text ("15550300005", "token back", w5);
    cr_assert_eq (ch_wait_status (&s_gw, "whatsapp", "connected", WAIT_MS), 0,
                  "status stayed error after a send went through");
}

//  ---- Access ------------------------------------------------------------------------

Test (channels_whatsapp, pairing_code_approve_then_answered)
{
    s_start (NULL);  //  dmPolicy defaults to pairing
    char m1[96], m2[96], m3[96];
    s_text ("15550400001", "hello there", m1);
    cr_assert_eq (wa_wait_sent (&s_wa, "15550400001", 1, WAIT_MS), 0,
                  "no pairing notice");
    cJSON *sent = wa_sent (&s_wa, "15550400001");
    const char *notice =
        ch_str (cJSON_GetArrayItem (cJSON_GetObjectItem (sent, "messages"), 0), "body");
    char code[9];
    cr_assert (ch_code_in (notice, code), "no valid code in '%s'", notice ? notice : "-");
    cr_assert (strstr (notice, "15550400001"), "the notice does not name the sender");
    cr_assert (!strstr (notice, "hello there"), "the message was run");
    cJSON_Delete (sent);
    s_text ("15550400001", "again", m2);  //  No second code, no run

    //  Listed with the sender and the name WhatsApp gives.
    cJSON *list = NULL;
    cr_assert_eq (
        ch_http (&s_gw, "GET", "/v1/channels/whatsapp/pairing", NULL, true, NULL, &list),
        200);
    cJSON *reqs = cJSON_GetObjectItem (list, "requests");
    cr_assert_eq (cJSON_GetArraySize (reqs), 1, "requests: %d",
                  cJSON_GetArraySize (reqs));
    cJSON *req = cJSON_GetArrayItem (reqs, 0);
    cr_assert_str_eq (ch_str (req, "code"), code);
    cr_assert_str_eq (ch_str (req, "senderId"), "15550400001");
    cr_assert_str_eq (ch_str (req, "senderName") ? ch_str (req, "senderName") : "-",
                      "Test User");
    cJSON_Delete (list);

    char path[128];
    snprintf (path, sizeof (path), "/v1/channels/whatsapp/pairing/%s", code);
    cr_assert_eq (ch_http (&s_gw, "POST", path, NULL, false, NULL, NULL), 401);
    cJSON *ok = NULL;
    cr_assert_eq (ch_http (&s_gw, "POST", path, NULL, true, NULL, &ok), 200);
    cr_assert (cJSON_IsTrue (cJSON_GetObjectItem (ok, "approved")));
    cr_assert_str_eq (ch_str (ok, "senderId"), "15550400001");
    cJSON_Delete (ok);

    s_text ("15550400001", "now you know me", m3);
    s_expect_echo ("15550400001", m3, "now you know me");
    s_assert_quiet ("15550400001", 2);  //  The notice and the one reply
    //  The notice may answer the first message; nothing answers the second
    //  (no second code), and neither was run.
    cr_assert_eq (s_count ("15550400001", m2), 0);
    cJSON *all = wa_sent (&s_wa, "15550400001");
    cJSON *m;
    cJSON_ArrayForEach (m, cJSON_GetObjectItem (all, "messages"))
    {
        const char *body = ch_str (m, "body");
        cr_assert (body && strcmp (body, "hello there") && strcmp (body, "again"),
                   "a message sent before the approval was run: %s", body);
    }
    cJSON_Delete (all);
}

Test (channels_whatsapp, allowlist_numbers_as_written)
{
    s_start ("\"dmPolicy\":\"allowlist\",\"allowFrom\":[\"+15550500001\","
             "\"whatsapp:15550500003\"]");
    char other[96], a[96], b[96];
    s_text ("15550500002", "not listed", other);
    s_text ("15550500001", "listed as e164", a);
    s_text ("15550500003", "listed with prefix", b);
    s_expect_echo ("15550500001", a, "listed as e164");
    s_expect_echo ("15550500003", b, "listed with prefix");
    s_assert_quiet (NULL, 2);  //  Nothing to 15550500002, not even a code
    cr_assert_eq (s_count ("15550500002", NULL), 0);
}

Test (channels_whatsapp, disabled_answers_nobody)
{
    s_start ("\"dmPolicy\":\"disabled\",\"allowFrom\":[\"15550600001\"]");
    char a[96], b[96];
    s_text ("15550600001", "even me", a);
    s_text ("15550600002", "anyone there", b);
    usleep (QUIET_MS * 1000);
    cr_assert_eq (wa_calls (&s_wa, "messages"), 0, "the gateway called the Graph API");
    cr_assert_eq (ch_status_num (&s_gw, "whatsapp", "inbound"), 0);
}

//  ---- The gateway down --------------------------------------------------------------

Test (channels_whatsapp, push_retried_across_gateway_restart)
{
    s_start ("\"dmPolicy\":\"open\"");
    char w1[96];
    s_text ("15551100001", "before the outage", w1);
    s_expect_echo ("15551100001", w1, "before the outage");

    cr_assert_eq (ch_gw_stop (&s_gw, SIGTERM), 0, "clawgate serve did not exit 0");
    char json[512];
    snprintf (json, sizeof (json),
              "{\"target\":\"%s\",\"from\":\"15551100001\",\"text\":\"while you were "
              "down\",\"wait\":false}",
              s_hook);
    char w2[96];
    cr_assert_geq (wa_inbound (&s_wa, json, w2, sizeof (w2), NULL), 0);
    cr_assert (*w2);
    //  Refused (no answer) at least twice while down.
    long long deadline = harness_now_ms () + WAIT_MS;
    int attempts = 0;
    while (attempts < 2 && harness_now_ms () < deadline) {
        usleep (50000);
        cJSON *pushes = wa_pushes (&s_wa);
        cJSON *p;
        cJSON_ArrayForEach (p, cJSON_GetObjectItem (pushes, "pushes"))
        {
            cJSON *ids = cJSON_GetObjectItem (p, "ids");
            const char *id = cJSON_GetStringValue (cJSON_GetArrayItem (ids, 0));
            if (id && strcmp (id, w2) == 0)
                attempts = (int) ch_num (p, "attempts");
        }
        cJSON_Delete (pushes);
    }
    cr_assert_geq (attempts, 2, "the stand-in did not retry the push");

    //  On the same port: the stand-in goes on pushing to the same URL.
    cr_assert_eq (ch_gw_restart (&s_gw), 0, "clawgate serve did not start again");
    cr_assert_eq (ch_wait_status (&s_gw, "whatsapp", "connected", WAIT_MS), 0);
    s_expect_echo ("15551100001", w2, "while you were down");
    s_assert_quiet ("15551100001", 2);
    cJSON *pushes = wa_pushes (&s_wa);
    cJSON *p;
    cJSON_ArrayForEach (p, cJSON_GetObjectItem (pushes, "pushes"))
    {
        const char *id =
            cJSON_GetStringValue (cJSON_GetArrayItem (cJSON_GetObjectItem (p, "ids"), 0));
        if (id && strcmp (id, w2) == 0)
            cr_assert_str_eq (ch_str (p, "state"), "delivered");
    }
    cJSON_Delete (pushes);
}
