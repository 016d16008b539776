/*  =========================================================================
    test_chanstore - the channels' durable state (actors/channels/chanstore.h)
    on a real SQLite file: ingress unique by platform id, the state walk a
    restart resumes from, pairing codes that expire and approve once
    =========================================================================
*/
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "chanstore.h"
#include "harness.h"

static char s_dir[256];
static char s_path[512];
static chanstore_t *s_store;

static void
s_setup (void)
{
    harness_tmpdir (s_dir, sizeof (s_dir));
    chanstore_path (s_dir, s_path, sizeof (s_path));
    char err[512] = "";
    s_store = chanstore_open (s_path, err, sizeof (err));
    cr_assert_not_null (s_store, "open: %s", err);
}

static void
s_teardown (void)
{
    chanstore_close (&s_store);
    harness_rmtree (s_dir);
}

TestSuite (chanstore, .init = s_setup, .fini = s_teardown, .timeout = 30);

static chan_msg_t
s_msg (const char *key, const char *text)
{
    chan_msg_t m = {.channel = "telegram",
                    .key = key,
                    .chat_id = "77",
                    .sender_id = "77",
                    .sender_name = "Ann",
                    .reply_to = "5",
                    .text = text,
                    .kind = "run",
                    .state = "queued",
                    .session = "telegram:77",
                    .reply = ""};
    return m;
}

typedef struct {
    int n;
    char keys[8][32];
    char states[8][16];
    int parts[8];
    char replies[8][64];
} rows_t;

static int
s_collect (void *arg, const chan_msg_t *m)
{
    rows_t *r = (rows_t *) arg;
    if (r->n < 8) {
        snprintf (r->keys[r->n], sizeof (r->keys[0]), "%s", m->key);
        snprintf (r->states[r->n], sizeof (r->states[0]), "%s", m->state);
        snprintf (r->replies[r->n], sizeof (r->replies[0]), "%s", m->reply);
        r->parts[r->n] = m->parts_sent;
    }
    r->n++;
    return 0;
}

Test (chanstore, a_message_is_stored_once_by_its_platform_id)
{
    chan_msg_t m = s_msg ("77:5", "hello");
    int64_t id1 = 0, id2 = 0;
    cr_assert_eq (chanstore_insert (s_store, &m, 1000, &id1), 1);
    cr_assert_gt (id1, 0);
    //  Delivered again (a redelivery, a restart before the offset moved).
    m.text = "hello again";
    cr_assert_eq (chanstore_insert (s_store, &m, 2000, &id2), 0);
    cr_assert_eq (id2, id1, "the duplicate names the first row");
    //  Another channel may use the same platform id.
    m.channel = "webhook";
    cr_assert_eq (chanstore_insert (s_store, &m, 2000, NULL), 1);
    rows_t r = {0};
    cr_assert_eq (chanstore_find (s_store, "telegram", "77:5", s_collect, &r), 0);
    cr_assert_eq (r.n, 1);
    cr_assert_eq (chanstore_open_count (s_store, "telegram"), 1);
}

Test (chanstore, open_rows_carry_their_state_across_a_reopen)
{
    chan_msg_t a = s_msg ("77:1", "one"), b = s_msg ("77:2", "two"),
               c = s_msg ("77:3", "three");
    int64_t ia, ib, ic;
    cr_assert_eq (chanstore_begin (s_store), 0);
    cr_assert_eq (chanstore_insert (s_store, &a, 1, &ia), 1);
    cr_assert_eq (chanstore_insert (s_store, &b, 2, &ib), 1);
    cr_assert_eq (chanstore_insert (s_store, &c, 3, &ic), 1);
    cr_assert_eq (chanstore_commit (s_store), 0);
    cr_assert_eq (chanstore_set_run (s_store, ia, "run-a"), 0);
    cr_assert_eq (chanstore_set_run (s_store, ib, "run-b"), 0);
    cr_assert_eq (chanstore_set_reply (s_store, ib, "the reply"), 0);
    cr_assert_eq (chanstore_set_sent (s_store, ib, 2), 0);
    cr_assert_eq (chanstore_end (s_store, ic, "done", NULL), 0);
    //  As a kill -9 leaves it: reopen and read what is open.
    chanstore_close (&s_store);
    char err[256];
    s_store = chanstore_open (s_path, err, sizeof (err));
    cr_assert_not_null (s_store, "%s", err);
    rows_t r = {0};
    cr_assert_eq (chanstore_each_open (s_store, s_collect, &r), 0);
    cr_assert_eq (r.n, 2, "the done row is not open");
    cr_assert_str_eq (r.keys[0], "77:1");
    cr_assert_str_eq (r.states[0], "running");
    cr_assert_str_eq (r.keys[1], "77:2");
    cr_assert_str_eq (r.states[1], "replying");
    cr_assert_str_eq (r.replies[1], "the reply");
    cr_assert_eq (r.parts[1], 2);
    cr_assert_eq (chanstore_requeue (s_store, ia), 0);
    memset (&r, 0, sizeof (r));
    chanstore_find (s_store, "telegram", "77:1", s_collect, &r);
    cr_assert_str_eq (r.states[0], "queued");
}

Test (chanstore, a_rolled_back_batch_stores_nothing)
{
    chan_msg_t a = s_msg ("9:1", "x");
    cr_assert_eq (chanstore_begin (s_store), 0);
    cr_assert_eq (chanstore_insert (s_store, &a, 1, NULL), 1);
    chanstore_rollback (s_store);
    cr_assert_eq (chanstore_open_count (s_store, "telegram"), 0);
}

static int
s_count_pairing (void *arg, const chan_pairing_t *p)
{
    (*(int *) arg)++;
    cr_assert_eq (strlen (p->code), 8);
    return 0;
}

Test (chanstore, pairing_codes_expire_and_approve_once)
{
    chan_pairing_t req = {"ABCD2345", "77", "Ann", 1000, 1000 + 3600000};
    cr_assert_eq (chanstore_pairing_add (s_store, "telegram", &req), 0);
    cr_assert_eq (chanstore_pairing_count (s_store, "telegram", NULL, 2000), 1);
    cr_assert_eq (chanstore_pairing_count (s_store, "telegram", "77", 2000), 1);
    cr_assert_eq (chanstore_pairing_count (s_store, "telegram", "78", 2000), 0);
    int n = 0;
    cr_assert_eq (chanstore_pairing_list (s_store, "telegram", 2000, s_count_pairing, &n),
                  0);
    cr_assert_eq (n, 1);
    //  Past its hour it is gone, and cannot be approved.
    char sender[64] = "";
    cr_assert_eq (chanstore_pairing_count (s_store, "telegram", NULL, 1000 + 3600000), 0);
    cr_assert_eq (chanstore_pairing_approve (s_store, "telegram", "ABCD2345",
                                             1000 + 3600001, sender, sizeof (sender)),
                  0);
    //  In time: approved once, the sender allowed, the code spent.
    cr_assert_eq (chanstore_allowed (s_store, "telegram", "77"), 0);
    cr_assert_eq (chanstore_pairing_approve (s_store, "telegram", "ABCD2345", 5000,
                                             sender, sizeof (sender)),
                  1);
    cr_assert_str_eq (sender, "77");
    cr_assert_eq (chanstore_allowed (s_store, "telegram", "77"), 1);
    cr_assert_eq (chanstore_allowed (s_store, "discord", "77"), 0, "per channel");
    cr_assert_eq (chanstore_pairing_approve (s_store, "telegram", "ABCD2345", 5000,
                                             sender, sizeof (sender)),
                  0);
    cr_assert_eq (chanstore_pairing_approve (s_store, "discord", "ABCD2345", 5000, sender,
                                             sizeof (sender)),
                  0);
}

Test (chanstore, enabled_flags_and_cursors_persist)
{
    bool on = true;
    int64_t cur = 0;
    cr_assert_eq (chanstore_enabled (s_store, "telegram", &on), 0, "never set");
    cr_assert_eq (chanstore_cursor (s_store, "telegram", &cur), 0);
    cr_assert_eq (chanstore_set_enabled (s_store, "telegram", false), 0);
    cr_assert_eq (chanstore_set_cursor (s_store, "telegram", 4242), 0);
    chanstore_close (&s_store);
    char err[256];
    s_store = chanstore_open (s_path, err, sizeof (err));
    cr_assert_eq (chanstore_enabled (s_store, "telegram", &on), 1);
    cr_assert_not (on);
    cr_assert_eq (chanstore_cursor (s_store, "telegram", &cur), 1);
    cr_assert_eq (cur, 4242);
    cr_assert_eq (chanstore_set_enabled (s_store, "telegram", true), 0);
    cr_assert_eq (chanstore_enabled (s_store, "telegram", &on), 1);
    cr_assert (on);
    cr_assert_eq (chanstore_cursor (s_store, "telegram", &cur), 1, "cursor kept");
}
