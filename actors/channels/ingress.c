/*  =========================================================================
    ingress - who may talk to the agent, durable ingress, and the runs

    chan_ingest takes what a platform received: each message passes the
    channel's access policy (SPEC 8: dmPolicy, allowFrom, pairing,
    groupPolicy, groups, requireMention), then every new one is stored in
    one transaction, unique by (channel, platform message id): a message
    the platform delivers twice is stored and answered once.  Only after
    the commit may the platform be told it was received.

    A stored message becomes a job: a run on the session
    "<channel>:<chat id>" through the session actor (which keeps one
    chat's runs in order and records them), started when fewer than
    max_runs go.  Its reply (or an error notice) is stored, then sent by
    outbound.c.  A job whose run the last stop cut short (a row left
    'queued' or 'running') runs again at start; one whose reply was being
    sent goes on from the first part not yet sent.
    =========================================================================
*/
#include "channel_internal.h"
#include "ids.h"
#include "log.h"
#include "msg_names.h"

#include <string.h>
#include <sys/random.h>

//  ---- Access policy -------------------------------------------------------------

typedef enum { S_DROP, S_ALLOW, S_PAIR } verdict_t;

//  True if id is in list, written as the platform writes it, as
//  "<channel>:<id>" (OpenClaw's "tg:<id>" too), or list holds "*".
static bool
s_listed (char **list, const char *channel, const char *id)
{
    size_t clen = strlen (channel);
    for (char **p = list; p && *p; p++) {
        const char *e = *p;
        if (streq (e, "*") || streq (e, id))
            return true;
        if (!strncmp (e, channel, clen) && e[clen] == ':' && streq (e + clen + 1, id))
            return true;
        if (streq (channel, "telegram") && !strncmp (e, "tg:", 3) && streq (e + 3, id))
            return true;
        //  WhatsApp numbers as people write them (E.164: "+15551234567").
        if (streq (channel, "whatsapp") && e[0] == '+' && streq (e + 1, id))
            return true;
    }
    return false;
}

static verdict_t
s_verdict (chan_t *ch, const inbound_t *in)
{
    const cfg_channel_t *c = ch->cfg;
    const char *id = ch->platform->id;
    if (in->group) {
        const char *gp = c->group_policy ? c->group_policy : "allowlist";
        if (streq (gp, "disabled"))
            return S_DROP;
        if (streq (gp, "allowlist") && !s_listed (c->groups, id, in->chat_id)
            && !(in->space && *in->space && s_listed (c->groups, id, in->space)))
            return S_DROP;
        if (c->require_mention && !in->mentioned)
            return S_DROP;
        return S_ALLOW;
    }
    const char *dp = c->dm_policy ? c->dm_policy : "pairing";
    if (streq (dp, "disabled"))
        return S_DROP;
    if (streq (dp, "open") || s_listed (c->allow_from, id, in->sender_id))
        return S_ALLOW;
    if (chanstore_allowed (ch->self->store, id, in->sender_id) == 1)
        return S_ALLOW;
    return streq (dp, "pairing") ? S_PAIR : S_DROP;
}

//  8 characters of A-Z and 2-9 without the look-alikes I, O (and 0, 1).
static void
s_pairing_code (char code[9])
{
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    unsigned char r[8];
    if (getrandom (r, sizeof (r), 0) != (ssize_t) sizeof (r))
        for (int i = 0; i < 8; i++)
            r[i] = (unsigned char) randof (256);
    for (int i = 0; i < 8; i++)
        code[i] = alphabet[r[i] % 32];
    code[8] = 0;
}

//  The pairing notice sent to an unknown sender, into buf.  NULL if no
//  code is sent: the sender has one pending, or too many are pending.
static const char *
s_pairing (chan_t *ch, const inbound_t *in, int64_t now, char *buf, size_t cap)
{
    const char *id = ch->platform->id;
    chanstore_t *store = ch->self->store;
    if (chanstore_pairing_count (store, id, in->sender_id, now) != 0)
        return NULL;  //  Sent once when the request was made
    if (chanstore_pairing_count (store, id, NULL, now) >= CHAN_PAIRING_PENDING) {
        log_warn ("channel", "%s: %d pairing requests pending; sender %s gets no code",
                  id, CHAN_PAIRING_PENDING, in->sender_id);
        return NULL;
    }
    char code[9];
    s_pairing_code (code);
    chan_pairing_t req = {code, in->sender_id, in->sender_name, now,
                          now + CHAN_PAIRING_MS};
    if (chanstore_pairing_add (store, id, &req))
        return NULL;
    log_info ("channel", "%s: pairing requested by sender %s", id, in->sender_id);
    snprintf (buf, cap,
              "clawgate: access not configured.\n\nYour %s user id: %s\nPairing code: "
              "%s\n\nAsk the bot owner to approve with:\nclawgate pairing approve %s %s",
              ch->platform->name, in->sender_id, code, id, code);
    return buf;
}

//  ---- Jobs ------------------------------------------------------------------------

static char *
s_dup (const char *s)
{
    return strdup (s ? s : "");
}

//  A job for a stored row (strings copied).  NULL if out of memory.
static job_t *
s_job_new (self_t *self, chan_t *ch, const chan_msg_t *m)
{
    job_t *job = (job_t *) calloc (1, sizeof (job_t));
    if (!job)
        return NULL;
    job->row = m->id;
    job->ch = ch;
    job->key = s_dup (m->key);
    job->chat_id = s_dup (m->chat_id);
    job->reply_to = s_dup (m->reply_to);
    job->session = s_dup (m->session);
    job->text = s_dup (m->text);
    job->notice = streq (m->kind, "notice");
    job->parts_sent = m->parts_sent;
    snprintf (job->run_id, sizeof (job->run_id), "%s", m->run_id ? m->run_id : "");
    if (m->reply && *m->reply)
        job->reply = strdup (m->reply);
    char key[24];
    snprintf (key, sizeof (key), "%lld", (long long) job->row);
    zhashx_insert (self->jobs, key, job);
    ch->pending++;
    return job;
}

void
chan_job_free (self_t *self, job_t *job)
{
    if (job->running) {
        zhashx_delete (self->runs, job->call.run_id);
        zhashx_delete (self->starts, job->corr);
        self->running--;
        run_call_fini (&job->call);
    }
    if (job->queued)
        zlistx_delete (self->queue, job->queued);
    if (job->waiters) {
        for (bus_request_t *r = (bus_request_t *) zlistx_first (job->waiters); r;
             r = (bus_request_t *) zlistx_next (job->waiters))
            free (r);
        zlistx_destroy (&job->waiters);
    }
    job->ch->pending--;
    char key[24];
    snprintf (key, sizeof (key), "%lld", (long long) job->row);
    zhashx_delete (self->jobs, key);
    split_free (&job->parts);
    free (job->key);
    free (job->chat_id);
    free (job->reply_to);
    free (job->session);
    free (job->text);
    free (job->reply);
    free (job->new_chat);
    free (job);
}

//  A job of a stored row: to the run queue, or (reply known) to its lane.
static void
s_job_go (self_t *self, job_t *job)
{
    if (job->reply)
        chan_reply (job->ch, job);
    else
        job->queued = zlistx_add_end (self->queue, job);
}

static chan_t *
s_chan (self_t *self, const char *id)
{
    //  A generic webhook's rows are "webhook" too.
    for (size_t i = 0; i < self->n_chans; i++)
        if (streq (self->chans[i].platform->id, id))
            return &self->chans[i];
    return NULL;
}

static int
s_recover_row (void *arg, const chan_msg_t *m)
{
    self_t *self = (self_t *) arg;
    chan_t *ch = s_chan (self, m->channel);
    if (!ch)
        return 0;
    if (streq (m->state, "running"))
        chanstore_requeue (self->store, m->id);
    //  Rows come oldest first, so each chat's replies keep their order.
    job_t *job = s_job_new (self, ch, m);
    if (!job)
        return -1;
    s_job_go (self, job);
    return 0;
}

int
chan_recover (self_t *self)
{
    if (chanstore_each_open (self->store, s_recover_row, self)) {
        log_error ("channel", "the channel store could not be read");
        return -1;
    }
    size_t n = zhashx_size (self->jobs);
    if (n)
        log_info ("channel", "%zu message(s) the last stop left unanswered carry on", n);
    return 0;
}

//  ---- Ingest ---------------------------------------------------------------------

static int
s_found (void *arg, const chan_msg_t *m)
{
    return 1;
}

int
chan_ingest (chan_t *ch, const inbound_t *in, size_t n, int64_t cursor, int *stored)
{
    self_t *self = ch->self;
    const char *id = ch->platform->id;
    int64_t now = chan_now ();
    //  The jobs of the new rows, made as they are stored (what a restart
    //  would read back), started once the transaction commits.
    job_t **jobs = (job_t **) calloc (n ? n : 1, sizeof (job_t *));
    if (!jobs || chanstore_begin (self->store)) {
        free (jobs);
        return -1;
    }
    int n_fresh = 0;
    for (size_t i = 0; i < n; i++) {
        verdict_t v = s_verdict (ch, &in[i]);
        if (v == S_DROP) {
            log_debug ("channel", "%s: message %s from %s is not for the agent (policy)",
                       id, in[i].key, in[i].sender_id);
            continue;
        }
        char notice[512];
        const char *reply = NULL;
        if (v == S_PAIR) {
            //  A message delivered twice gets one code: only a new one asks.
            int seen = chanstore_find (self->store, id, in[i].key, s_found, NULL);
            if (seen < 0)
                goto failed;
            if (seen || !(reply = s_pairing (ch, &in[i], now, notice, sizeof (notice))))
                continue;
        }
        char session[ENVELOPE_KEY_MAX + 1];
        snprintf (session, sizeof (session), "%s:%s", id, in[i].chat_id);
        chan_msg_t m = {.channel = id,
                        .key = in[i].key,
                        .chat_id = in[i].chat_id,
                        .sender_id = in[i].sender_id,
                        .sender_name = in[i].sender_name,
                        .reply_to = in[i].reply_to,
                        .text = in[i].text,
                        .kind = reply ? "notice" : "run",
                        .state = reply ? "replying" : "queued",
                        .session = session,
                        .reply = reply};
        int rc = chanstore_insert (self->store, &m, now, &m.id);
        if (rc == 1 && !(jobs[i] = s_job_new (self, ch, &m)))
            rc = -1;
        if (rc < 0)
            goto failed;
        if (rc == 0)
            log_debug ("channel", "%s: message %s delivered again: answered once", id,
                       in[i].key);
        n_fresh += rc == 1;
    }
    if (cursor >= 0 && chanstore_set_cursor (self->store, id, cursor))
        goto failed;
    if (chanstore_commit (self->store))
        goto failed_committed;
    if (n_fresh) {
        ch->inbound += n_fresh;
        ch->last_inbound_at = now;
    }
    //  Stored: now the jobs, in the order received.
    for (size_t i = 0; i < n; i++)
        if (jobs[i])
            s_job_go (self, jobs[i]);
    free (jobs);
    if (stored)
        *stored = n_fresh;
    chan_pump (self);
    return 0;
failed:
    chanstore_rollback (self->store);
failed_committed:
    for (size_t i = 0; i < n; i++)
        if (jobs[i])
            chan_job_free (self, jobs[i]);
    free (jobs);
    log_error ("channel", "%s: the channel store failed; the platform will deliver again",
               id);
    return -1;
}

job_t *
chan_ingest_one (chan_t *ch, const chan_msg_t *msg, bool *dup)
{
    self_t *self = ch->self;
    int64_t row = 0;
    *dup = false;
    int rc = chanstore_insert (self->store, msg, chan_now (), &row);
    if (rc < 0)
        return NULL;
    char key[24];
    snprintf (key, sizeof (key), "%lld", (long long) row);
    if (rc == 0) {
        *dup = true;
        return (job_t *) zhashx_lookup (self->jobs, key);
    }
    ch->inbound++;
    ch->last_inbound_at = chan_now ();
    chan_msg_t stored = *msg;
    stored.id = row;
    job_t *job = s_job_new (self, ch, &stored);
    if (job)
        s_job_go (self, job);
    chan_pump (self);
    //  Looked up again: a run refused at once has ended it already.
    return (job_t *) zhashx_lookup (self->jobs, key);
}

//  ---- Runs ----------------------------------------------------------------------

//  The run of job ended: its reply (or an error notice) is stored, then
//  sent.
static void
s_run_end (self_t *self, job_t *job, bool ok)
{
    chan_t *ch = job->ch;
    zhashx_delete (self->runs, job->call.run_id);
    zhashx_delete (self->starts, job->corr);
    job->running = false;
    self->running--;
    char *reply = NULL;
    if (ok && job->call.text && *job->call.text)
        reply = strdup (job->call.text);
    else if (ok)
        reply = strdup ("(The agent gave no answer.)");
    else {
        job->failed = true;
        char buf[700];
        snprintf (buf, sizeof (buf), "Sorry, the agent could not answer: %s",
                  job->call.err.message[0] ? job->call.err.message : "the run failed");
        reply = strdup (buf);
        log_warn ("channel", "%s: run %s for message %s failed: %s", ch->platform->id,
                  job->call.run_id, job->key, job->call.err.message);
    }
    run_call_fini (&job->call);
    job->reply = reply;
    if (!reply || chanstore_set_reply (self->store, job->row, reply))
        log_error ("channel", "%s: the reply to %s could not be stored", ch->platform->id,
                   job->key);
    chan_reply (ch, job);
    chan_pump (self);
}

static void
s_start_run (self_t *self, job_t *job)
{
    chan_t *ch = job->ch;
    cJSON *req = cJSON_CreateObject ();
    cJSON_AddStringToObject (req, "message", job->text);
    cJSON_AddStringToObject (req, "sessionKey", job->session);
    cJSON *agent =
        cJSON_CreateString (ch->platform->agent ? ch->platform->agent (job) : ch->agent);
    run_call_init (&job->call, self->front, self->settings->run_timeout_ms);
    run_check_t chk;
    int refused = run_call_agent (&job->call, &self->run_catalog, req, agent,
                                  ch->platform->id, false, &chk);
    cJSON_Delete (req);
    cJSON_Delete (agent);
    job->running = true;
    self->running++;
    snprintf (job->corr, sizeof (job->corr), "-");
    if (refused) {
        //  Nothing a retry would change (an empty message, an unknown agent).
        snprintf (job->call.err.message, sizeof (job->call.err.message), "%s",
                  chk.message);
        s_run_end (self, job, false);
        return;
    }
    if (chanstore_set_run (self->store, job->row, job->call.run_id)
        || run_call_send (&job->call, self->settings->run_timeout_ms)) {
        //  The store or the broker is not taking it now: again later.
        job->running = false;
        self->running--;
        run_call_fini (&job->call);
        job->retry_at = zclock_mono () + chan_backoff_ms (ch, ++job->attempts);
        job->queued = zlistx_add_end (self->queue, job);
        return;
    }
    job->attempts = 0;
    snprintf (job->run_id, sizeof (job->run_id), "%s", job->call.run_id);
    zhashx_insert (self->runs, job->call.run_id, job);
    snprintf (job->corr, sizeof (job->corr), "%llu",
              (unsigned long long) job->call.corr_id);
    zhashx_insert (self->starts, job->corr, job);
    if (ch->running) {
        chan_typing (ch, job->chat_id);
        job->typing_at = zclock_mono ();
    }
}

void
chan_pump (self_t *self)
{
    int64_t now = zclock_mono ();
    size_t room = self->running < (size_t) self->settings->max_runs
                      ? (size_t) self->settings->max_runs - self->running
                      : 0;
    zlistx_t *due = zlistx_new ();
    for (job_t *job = (job_t *) zlistx_first (self->queue);
         job && zlistx_size (due) < room; job = (job_t *) zlistx_next (self->queue))
        if (job->retry_at <= now && job->ch->enabled)
            zlistx_add_end (due, job);
    for (job_t *job = (job_t *) zlistx_first (due); job;
         job = (job_t *) zlistx_next (due)) {
        zlistx_delete (self->queue, job->queued);
        job->queued = NULL;
        s_start_run (self, job);
    }
    zlistx_destroy (&due);
}

static void
s_on_msg (void *arg, bus_msg_t *msg, const char *key, void *waiter)
{
    self_t *self = (self_t *) arg;
    job_t *job = (job_t *) waiter;
    if (!job) {
        size_t len;
        const char *id = mp_get_str (msg->body.root, MK_runId, &len);
        char run_id[80];
        if (!id || len >= sizeof (run_id))
            return;
        memcpy (run_id, id, len);
        run_id[len] = 0;
        job = (job_t *) zhashx_lookup (self->runs, run_id);
    }
    if (!job || !job->running)
        return;
    run_ev_t ev = run_call_take (&job->call, msg);
    if (ev == RUN_EV_DONE)
        s_run_end (self, job, true);
    else if (ev == RUN_EV_ERROR) {
        if (waiter
            && (msg->env.status == ENVELOPE_UNAVAILABLE
                || msg->env.status == ENVELOPE_RATE_LIMITED)) {
            //  No session actor took it, or the chat's queue is full: the
            //  message waits, stored, and asks again after a backoff.
            zhashx_delete (self->runs, job->call.run_id);
            zhashx_delete (self->starts, job->corr);
            job->running = false;
            self->running--;
            run_call_fini (&job->call);
            chanstore_requeue (self->store, job->row);
            job->retry_at = zclock_mono () + chan_backoff_ms (job->ch, ++job->attempts);
            job->queued = zlistx_add_end (self->queue, job);
            return;
        }
        s_run_end (self, job, false);
    }
}

int
chan_on_front (zloop_t *loop, zsock_t *sock, void *arg)
{
    self_t *self = (self_t *) arg;
    actor_front_drain (self->front, self->starts, s_on_msg, self);
    return 0;
}

void
chan_tick_runs (self_t *self)
{
    int64_t now = zclock_mono ();
    zlistx_t *late = zlistx_new ();
    for (job_t *job = (job_t *) zhashx_first (self->runs); job;
         job = (job_t *) zhashx_next (self->runs)) {
        if (run_call_left (&job->call) <= 0)
            zlistx_add_end (late, job);
        else if (job->ch->running && now - job->typing_at >= CHAN_TYPING_MS) {
            chan_typing (job->ch, job->chat_id);
            job->typing_at = now;
        }
    }
    for (job_t *job = (job_t *) zlistx_first (late); job;
         job = (job_t *) zlistx_next (late)) {
        run_call_fail (&job->call, ENVELOPE_GATEWAY_TIMEOUT, "timeout",
                       "the run did not finish in time");
        s_run_end (self, job, false);
    }
    zlistx_destroy (&late);
    chan_pump (self);
}
