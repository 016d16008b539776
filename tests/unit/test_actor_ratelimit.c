/*  =========================================================================
    test_actor_ratelimit - the rate-limiter actor in-process, on the fixture

    RATELIMIT_LEASE (rate tokens, give-backs, concurrency slots and their
    lapse) and RATELIMIT_AUTH_FAIL (failed authentications per address),
    asked as a front would, with every reply checked against
    schemas/messages.def.  The buckets themselves are test_ratelimit_bucket.c's.
    =========================================================================
*/
#include <criterion/criterion.h>

#include "fixture.h"

TestSuite (actor_ratelimit, .fini = fixture_fini, .timeout = 60);

static const char *const s_ratelimit[] = {"ratelimit", NULL};

typedef struct {
    int granted, slots, ttl, remaining, reset, retry;
} lease_t;

//  One RATELIMIT_LEASE of holder on principal; returns what came back.
static lease_t
s_lease (fixture_t *fx, const char *holder, const char *principal, int rate, int burst,
         int conc, int take, int give, int slots)
{
    char body[512];
    snprintf (body, sizeof (body),
              "{\"holder\":\"%s\",\"principal\":\"%s\",\"rateLimit\":%d,"
              "\"burst\":%d,\"maxConcurrent\":%d,\"take\":%d,\"giveBack\":%d,"
              "\"slots\":%d}",
              holder, principal, rate, burst, conc, take, give, slots);
    cJSON *j =
        fixture_ask (fx, "ratelimit", "RATELIMIT_LEASE", body, "RATELIMIT_LEASE_OK");
    lease_t l = {(int) fixture_num (j, "granted"), (int) fixture_num (j, "slots"),
                 (int) fixture_num (j, "ttlMs"),   (int) fixture_num (j, "remaining"),
                 (int) fixture_num (j, "resetMs"), (int) fixture_num (j, "retryAfterMs")};
    cJSON_Delete (j);
    return l;
}

//  One RATELIMIT_AUTH_FAIL; returns blocked, with the retry in *retry_ms.
static bool
s_auth_fail (fixture_t *fx, const char *address, int limit, int *retry_ms)
{
    char body[256];
    snprintf (body, sizeof (body), "{\"address\":\"%s\",\"limit\":%d}", address, limit);
    bus_msg_t reply;
    fixture_call (fx, "ratelimit", "RATELIMIT_AUTH_FAIL", NULL, body, 3000, &reply);
    cr_assert_str_eq (reply.env.type, "RATELIMIT_AUTH_FAIL_OK");
    fixture_assert_valid (&reply);
    bool blocked = false;
    int64_t retry = -1;
    cr_assert (mp_get_bool (reply.body.root, "blocked", &blocked));
    cr_assert (mp_get_int (reply.body.root, "retryAfterMs", &retry));
    bus_msg_fini (&reply);
    if (retry_ms)
        *retry_ms = (int) retry;
    return blocked;
}

//  60 a minute, a bucket of 10: two holders together never get more than
//  the bucket (plus what drips in), each grant at most half of what is
//  left; an empty bucket says when the next token comes.
Test (actor_ratelimit, one_bucket_for_every_holder)
{
    fixture_t *fx = fixture_new ("{\"limits\":{\"leaseMs\":2000}}", s_ratelimit);
    lease_t l = s_lease (fx, "h1", "alice", 60, 10, 0, 4, 0, 0);
    cr_assert_eq (l.granted, 4);
    cr_assert_eq (l.remaining, 6);
    cr_assert_eq (l.ttl, 2000, "ttlMs is limits.leaseMs");
    cr_assert (l.reset > 3500 && l.reset <= 4000, "resetMs %d", l.reset);
    cr_assert_eq (l.retry, 0);
    //  Asking for more than half of what is left gets half.
    l = s_lease (fx, "h2", "alice", 60, 10, 0, 10, 0, 0);
    cr_assert_eq (l.granted, 3);
    cr_assert_eq (l.remaining, 3);
    int total = 4 + 3;
    int64_t start = zclock_mono ();
    for (int i = 0; i < 10 && l.granted > 0; i++) {
        l = s_lease (fx, i % 2 ? "h1" : "h2", "alice", 60, 10, 0, 10, 0, 0);
        total += l.granted;
    }
    int drip = (int) ((zclock_mono () - start) / 1000) + 1;
    cr_assert_eq (l.granted, 0, "the bucket never ran dry");
    cr_assert (total >= 10 && total <= 10 + drip,
               "%d tokens granted from a "
               "bucket of 10",
               total);
    cr_assert (l.retry > 0 && l.retry <= 1000, "retryAfterMs %d at 60/min", l.retry);
    //  Tokens given back can be taken again; another principal has its own
    //  full bucket.
    l = s_lease (fx, "h1", "alice", 60, 10, 0, 0, 4, 0);
    cr_assert_geq (l.remaining, 4);
    l = s_lease (fx, "h2", "alice", 60, 10, 0, 1, 0, 0);
    cr_assert_eq (l.granted, 1);
    l = s_lease (fx, "h1", "bob", 60, 10, 0, 4, 0, 0);
    cr_assert_eq (l.granted, 4);
    cr_assert_eq (l.remaining, 6);
    //  No rate limit: everything asked is granted.
    l = s_lease (fx, "h1", "carol", 0, 0, 0, 1000, 0, 0);
    cr_assert_eq (l.granted, 1000);
    fixture_destroy (&fx);
}

//  maxConcurrent is shared by all holders; what a holder asks for is what
//  it holds from now (absolute); a lease that lapses gives its slots back.
Test (actor_ratelimit, slots_are_shared_and_lapse)
{
    fixture_t *fx = fixture_new ("{\"limits\":{\"leaseMs\":300}}", s_ratelimit);
    cr_assert_eq (s_lease (fx, "h1", "p", 0, 0, 3, 0, 0, 2).slots, 2);
    cr_assert_eq (s_lease (fx, "h2", "p", 0, 0, 3, 0, 0, 2).slots, 1);
    cr_assert_eq (s_lease (fx, "h2", "p", 0, 0, 3, 0, 0, 3).slots, 1,
                  "h1's two slots were taken from it");
    //  h1 lets go: h2 may take all three.
    cr_assert_eq (s_lease (fx, "h1", "p", 0, 0, 3, 0, 0, 0).slots, 0);
    cr_assert_eq (s_lease (fx, "h2", "p", 0, 0, 3, 0, 0, 3).slots, 3);
    cr_assert_eq (s_lease (fx, "h1", "p", 0, 0, 3, 0, 0, 1).slots, 0);
    //  h2 goes silent: 300 ms later its lease has lapsed.
    zclock_sleep (450);
    cr_assert_eq (s_lease (fx, "h1", "p", 0, 0, 3, 0, 0, 3).slots, 3,
                  "the silent holder's slots did not come back");
    //  No limit: any number.
    cr_assert_eq (s_lease (fx, "h1", "q", 0, 0, 0, 0, 0, 50).slots, 50);
    fixture_destroy (&fx);
}

//  limit failures a minute per address, then blocked until a token drips
//  back (60 s / limit); other addresses are not touched; limit 0 is off.
Test (actor_ratelimit, auth_failures_block_an_address)
{
    fixture_t *fx = fixture_new (NULL, s_ratelimit);
    int retry = -1;
    for (int i = 0; i < 3; i++) {
        cr_assert_not (s_auth_fail (fx, "10.0.0.1", 3, &retry),
                       "blocked after %d failures of 3", i + 1);
        cr_assert_eq (retry, 0);
    }
    cr_assert (s_auth_fail (fx, "10.0.0.1", 3, &retry), "a 4th failure of 3 "
                                                        "passed");
    cr_assert (retry > 15000 && retry <= 20000, "retryAfterMs %d", retry);
    cr_assert (s_auth_fail (fx, "10.0.0.1", 3, NULL), "no longer blocked");
    cr_assert_not (s_auth_fail (fx, "10.0.0.2", 3, NULL));
    for (int i = 0; i < 20; i++)
        cr_assert_not (s_auth_fail (fx, "10.0.0.3", 0, NULL));
    fixture_destroy (&fx);
}

Test (actor_ratelimit, refusals)
{
    fixture_t *fx = fixture_new (NULL, s_ratelimit);
    //  Longer than the actor keeps.
    fixture_ask_error (fx, "ratelimit", "RATELIMIT_LEASE",
                       "{\"holder\":\"h\",\"principal\":\"0123456789012345678901"
                       "234567890123456789012345678901234567890123456789\","
                       "\"rateLimit\":1,\"burst\":1,\"maxConcurrent\":1,\"take\":1,"
                       "\"slots\":0}",
                       400, "invalid_request");
    fixture_ask_error (fx, "ratelimit", "RATELIMIT_AUTH_FAIL",
                       "{\"address\":\"0123456789012345678901234567890123456789012"
                       "34567890123456789012345\",\"limit\":1}",
                       400, "invalid_request");
    //  And it still serves.
    cr_assert_eq (s_lease (fx, "h", "p", 10, 0, 0, 1, 0, 0).granted, 1);
    fixture_destroy (&fx);
}
