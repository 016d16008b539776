/*  =========================================================================
    store - cg_slackstandin's state: ids and timestamps, the events kept
    for resends, the unacked envelopes and the state file

    Part of cg_slackstandin (see slstandin.c).  Every function here that
    touches sl_t expects the caller to hold self->lock, except store_load
    (called before the server starts).  The state file keeps what must
    survive a kill -9: the id counters, the last ts, the unacked envelopes,
    the events and the sent log.
    =========================================================================
*/
#include "slstandin.h"
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  ---- Ids ------------------------------------------------------------------

static void
s_random_bytes (unsigned char *buf, size_t len)
{
    int fd = open ("/dev/urandom", O_RDONLY | O_CLOEXEC);
    size_t have = 0;
    while (fd >= 0 && have < len) {
        ssize_t n = read (fd, buf + have, len - have);
        if (n <= 0)
            break;
        have += (size_t) n;
    }
    if (fd >= 0)
        close (fd);
    for (; have < len; have++)
        buf[have] = (unsigned char) rand ();
}

void
store_uuid (char out[40])
{
    unsigned char b[16];
    s_random_bytes (b, sizeof (b));
    b[6] = (unsigned char) ((b[6] & 0x0F) | 0x40);
    b[8] = (unsigned char) ((b[8] & 0x3F) | 0x80);
    snprintf (out, 40,
              "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
              b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
              b[12], b[13], b[14], b[15]);
}

void
store_random_text (char *out, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    unsigned char b[128];
    if (len > sizeof (b))
        len = sizeof (b);
    s_random_bytes (b, len);
    for (size_t i = 0; i < len; i++)
        out[i] = alphabet[b[i] % (sizeof (alphabet) - 1)];
    out[len] = 0;
}

void
store_ts (sl_t *self, char out[32])
{
    struct timespec now;
    clock_gettime (CLOCK_REALTIME, &now);
    long long sec = (long long) now.tv_sec, usec = now.tv_nsec / 1000;
    if (sec < self->ts_sec || (sec == self->ts_sec && usec <= self->ts_usec)) {
        sec = self->ts_sec;
        usec = self->ts_usec + 1;
        if (usec >= 1000000) {
            sec++;
            usec = 0;
        }
    }
    self->ts_sec = sec;
    self->ts_usec = usec;
    snprintf (out, 32, "%lld.%06lld", sec, usec);
}

void
store_event_id (sl_t *self, char out[24])
{
    snprintf (out, 24, "Ev%010lld", self->next_event++);
}

void
store_count (cJSON *counters, const char *name, int n)
{
    cJSON *item = cJSON_GetObjectItem (counters, name);
    if (item)
        cJSON_SetNumberValue (item, item->valuedouble + n);
    else
        cJSON_AddNumberToObject (counters, name, n);
}

//  ---- Events and envelopes -----------------------------------------------------

void
store_keep_event (sl_t *self, const char *event_id, const char *payload)
{
    cJSON *entry = cJSON_CreateObject ();
    cJSON_AddStringToObject (entry, "event_id", event_id);
    cJSON_AddStringToObject (entry, "payload", payload);
    cJSON_AddItemToArray (self->events, entry);
    while (cJSON_GetArraySize (self->events) > SL_MAX_EVENTS)
        cJSON_DeleteItemFromArray (self->events, 0);
}

const char *
store_find_event (sl_t *self, const char *event_id)
{
    cJSON *entry;
    cJSON_ArrayForEach (entry, self->events)
    {
        const char *id = cJSON_GetStringValue (cJSON_GetObjectItem (entry, "event_id"));
        if (id && strcmp (id, event_id) == 0)
            return cJSON_GetStringValue (cJSON_GetObjectItem (entry, "payload"));
    }
    return NULL;
}

static sl_envelope_t *
s_append (sl_t *self)
{
    if (self->envelope_len == self->envelope_cap) {
        size_t cap = self->envelope_cap ? self->envelope_cap * 2 : 32;
        sl_envelope_t *grown = realloc (self->envelopes, cap * sizeof (sl_envelope_t));
        if (!grown)
            return NULL;
        self->envelopes = grown;
        self->envelope_cap = cap;
    }
    sl_envelope_t *e = &self->envelopes[self->envelope_len++];
    memset (e, 0, sizeof (*e));
    return e;
}

void
store_enqueue (sl_t *self, const char *event_id, const char *payload, int want_socket,
               char id[40])
{
    store_uuid (id);
    sl_envelope_t *e = s_append (self);
    if (!e)
        return;
    snprintf (e->id, sizeof (e->id), "%s", id);
    snprintf (e->event_id, sizeof (e->event_id), "%s", event_id);
    e->payload = strdup (payload);
    e->want_socket = want_socket;
    store_save (self);
    pthread_cond_broadcast (&self->changed);
}

void
store_remove (sl_t *self, size_t i)
{
    free (self->envelopes[i].payload);
    memmove (&self->envelopes[i], &self->envelopes[i + 1],
             (self->envelope_len - i - 1) * sizeof (sl_envelope_t));
    self->envelope_len--;
}

//  ---- State file -------------------------------------------------------------

void
store_save (sl_t *self)
{
    if (!self->state_path)
        return;
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "next_event", (double) self->next_event);
    cJSON_AddNumberToObject (root, "ts_sec", (double) self->ts_sec);
    cJSON_AddNumberToObject (root, "ts_usec", (double) self->ts_usec);
    cJSON *list = cJSON_AddArrayToObject (root, "envelopes");
    for (size_t i = 0; i < self->envelope_len; i++) {
        sl_envelope_t *e = &self->envelopes[i];
        cJSON *entry = cJSON_CreateObject ();
        cJSON_AddStringToObject (entry, "envelope_id", e->id);
        cJSON_AddStringToObject (entry, "event_id", e->event_id);
        cJSON_AddStringToObject (entry, "payload", e->payload);
        cJSON_AddNumberToObject (entry, "sends", e->sends);
        cJSON_AddItemToArray (list, entry);
    }
    cJSON_AddItemReferenceToObject (root, "events", self->events);
    cJSON_AddItemReferenceToObject (root, "sent", self->sent);
    cJSON_AddItemReferenceToObject (root, "updates", self->updates);
    standin_save_json ("cg_slackstandin", self->state_path, root);
}

//  Replaces *slot with root's array name when it has one.
static void
s_take_array (cJSON *root, const char *name, cJSON **slot)
{
    cJSON *list = cJSON_DetachItemFromObject (root, name);
    if (cJSON_IsArray (list)) {
        cJSON_Delete (*slot);
        *slot = list;
    }
    else
        cJSON_Delete (list);
}

int
store_load (sl_t *self)
{
    if (!self->state_path)
        return 0;
    cJSON *root = NULL;
    if (standin_load_json (self->state_path, &root) != 0)
        return -1;
    if (!root)
        return 0;
    self->next_event =
        (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (root, "next_event"));
    if (self->next_event < 1)
        self->next_event = 1;
    self->ts_sec =
        (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (root, "ts_sec"));
    self->ts_usec =
        (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (root, "ts_usec"));
    cJSON *entry;
    cJSON_ArrayForEach (entry, cJSON_GetObjectItem (root, "envelopes"))
    {
        const char *id =
            cJSON_GetStringValue (cJSON_GetObjectItem (entry, "envelope_id"));
        const char *event_id =
            cJSON_GetStringValue (cJSON_GetObjectItem (entry, "event_id"));
        const char *payload =
            cJSON_GetStringValue (cJSON_GetObjectItem (entry, "payload"));
        if (!id || !event_id || !payload)
            continue;
        sl_envelope_t *e = s_append (self);
        if (!e)
            break;
        snprintf (e->id, sizeof (e->id), "%s", id);
        snprintf (e->event_id, sizeof (e->event_id), "%s", event_id);
        e->payload = strdup (payload);
        e->sends = (int) cJSON_GetNumberValue (cJSON_GetObjectItem (entry, "sends"));
    }
    s_take_array (root, "events", &self->events);
    s_take_array (root, "sent", &self->sent);
    s_take_array (root, "updates", &self->updates);
    cJSON_Delete (root);
    return 0;
}
