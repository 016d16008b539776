/*  =========================================================================
    test_actor_browser - the browser actor in-process, without Chromium

    BROWSER_STATUS and the checks of BROWSER_NAVIGATE and BROWSER_SCREENSHOT
    that come before any Chromium is started; browser.chromium points at a
    path that does not exist, so nothing here ever launches one (Chromium
    itself is test_browser.c's, through the binary).
    =========================================================================
*/
#include <criterion/criterion.h>
#include <sys/stat.h>

#include "fixture.h"

TestSuite (actor_browser, .fini = fixture_fini, .timeout = 60);

static const char *const s_browser[] = {"browser", NULL};

#define NO_CHROMIUM "{\"browser\":{\"chromium\":\"/nonexistent/chromium\"}}"

//  A BROWSER_STATUS that must succeed; its body as JSON (cJSON_Delete).
static cJSON *
s_status (fixture_t *fx, const char *body)
{
    return fixture_ask (fx, "browser", "BROWSER_STATUS", body, "BROWSER_STATUS_OK");
}

static void
s_assert_error (fixture_t *fx, const char *type, const char *body, int status,
                const char *code, const char *param)
{
    fixture_ask_error_param (fx, "browser", type, body, status, code, param);
}

//  Nothing started: not running, no page, and the profiles are the
//  user-data directories that exist, valid names only, sorted.
Test (actor_browser, status_without_chromium)
{
    fixture_t *fx = fixture_new (NO_CHROMIUM, s_browser);
    cJSON *j = s_status (fx, NULL);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItemCaseSensitive (j, "running")));
    cr_assert_str_eq (fixture_str (j, "profile"), "default");
    cr_assert (cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (j, "url")));
    cr_assert (cJSON_IsNull (cJSON_GetObjectItemCaseSensitive (j, "title")));
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (j, "profiles")),
                  0);
    cJSON_Delete (j);

    char dir[512];
    const char *made[] = {"work", "alpha", "bad name", NULL};
    snprintf (dir, sizeof (dir), "%s/browser", fixture_state_dir (fx));
    cr_assert_eq (mkdir (dir, 0700), 0);
    for (int i = 0; made[i]; i++) {
        snprintf (dir, sizeof (dir), "%s/browser/%s", fixture_state_dir (fx), made[i]);
        cr_assert_eq (mkdir (dir, 0700), 0);
    }
    j = s_status (fx, "{\"profile\":\"work\"}");
    cr_assert_str_eq (fixture_str (j, "profile"), "work");
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItemCaseSensitive (j, "running")));
    const cJSON *profiles = cJSON_GetObjectItemCaseSensitive (j, "profiles");
    cr_assert_eq (cJSON_GetArraySize (profiles), 2, "'bad name' is no profile");
    cr_assert_str_eq (cJSON_GetArrayItem (profiles, 0)->valuestring, "alpha");
    cr_assert_str_eq (cJSON_GetArrayItem (profiles, 1)->valuestring, "work");
    cJSON_Delete (j);
    fixture_destroy (&fx);
}

//  Bad requests are refused before a profile or a Chromium is touched.
Test (actor_browser, bad_requests_are_400)
{
    fixture_t *fx = fixture_new (NO_CHROMIUM, s_browser);
    s_assert_error (fx, "BROWSER_STATUS", "{\"profile\":\"a/b\"}", 400, "invalid_request",
                    "profile");
    s_assert_error (fx, "BROWSER_NAVIGATE", "{\"url\":\"file:///etc/passwd\"}", 400,
                    "invalid_request", "url");
    s_assert_error (fx, "BROWSER_NAVIGATE", "{\"url\":\"javascript:1\"}", 400,
                    "invalid_request", "url");
    s_assert_error (fx, "BROWSER_NAVIGATE",
                    "{\"url\":\"http://127.0.0.1/\",\"timeoutMs\":5}", 400,
                    "invalid_request", "timeoutMs");
    s_assert_error (fx, "BROWSER_NAVIGATE",
                    "{\"url\":\"http://127.0.0.1/\",\"profile\":\"\"}", 400,
                    "invalid_request", "profile");
    s_assert_error (fx, "BROWSER_SCREENSHOT", "{\"selector\":\"h1\",\"fullPage\":true}",
                    400, "invalid_request", "fullPage");
    //  None of it made a profile directory.
    cJSON *j = s_status (fx, NULL);
    cr_assert_eq (cJSON_GetArraySize (cJSON_GetObjectItemCaseSensitive (j, "profiles")),
                  0);
    cJSON_Delete (j);
    fixture_destroy (&fx);
}

//  browser.chromium missing: navigate and screenshot get 503 at once, and
//  the profile is still down.
Test (actor_browser, missing_chromium_is_503)
{
    fixture_t *fx = fixture_new (NO_CHROMIUM, s_browser);
    int64_t t0 = zclock_mono ();
    s_assert_error (fx, "BROWSER_NAVIGATE", "{\"url\":\"http://127.0.0.1/\"}", 503,
                    "service_unavailable", NULL);
    s_assert_error (fx, "BROWSER_SCREENSHOT", "{\"profile\":\"other\"}", 503,
                    "service_unavailable", NULL);
    cr_assert_lt (zclock_mono () - t0, 2000, "the 503s were not at once");
    cJSON *j = s_status (fx, NULL);
    cr_assert (cJSON_IsFalse (cJSON_GetObjectItemCaseSensitive (j, "running")));
    cJSON_Delete (j);
    fixture_destroy (&fx);
}
