/*  =========================================================================
    store - cg_dcstandin's state: snowflakes, the session's event log, the
    REST fault rules and the state file

    Part of cg_dcstandin (see dcstandin.c).  Every function here that
    touches dc_t expects the caller to hold self->lock, except store_load
    (called before the server starts).  The state file holds what must
    survive a kill -9: the last id, the session (id, seq, intents, events),
    the messages held for the next session and the sent log.  Counters,
    faults and connections do not survive.
    =========================================================================
*/
#include "dcstandin.h"
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

//  ---- Ids and times ----------------------------------------------------------

long long
store_wall_ms (void)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

const char *
store_snowflake (dc_t *self, char *buf)
{
    //  Discord's layout: ms since 2015 in the top 42 bits; the low bits a
    //  counter.  Always above the last one, even if the clock steps back.
    long long id = (store_wall_ms () - DC_EPOCH_MS) << 22;
    if (id <= self->last_id)
        id = self->last_id + 1;
    self->last_id = id;
    sprintf (buf, "%lld", id);
    return buf;
}

const char *
store_timestamp (char *buf)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r (&ts.tv_sec, &tm);
    char date[32];
    strftime (date, sizeof (date), "%Y-%m-%dT%H:%M:%S", &tm);
    sprintf (buf, "%s.%06ld+00:00", date, ts.tv_nsec / 1000);
    return buf;
}

//  ---- Event log --------------------------------------------------------------

void
store_clear_events (dc_t *self)
{
    for (size_t i = 0; i < self->events_len; i++)
        free (self->events[i].frame);
    self->events_len = 0;
}

void
store_add_event (dc_t *self, long long s, char *frame)
{
    if (self->events_len == DC_MAX_EVENTS) {
        free (self->events[0].frame);
        memmove (self->events, self->events + 1,
                 (self->events_len - 1) * sizeof (dc_event_t));
        self->events_len--;
    }
    if (self->events_len == self->events_cap) {
        size_t cap = self->events_cap ? self->events_cap * 2 : 64;
        dc_event_t *grown = realloc (self->events, cap * sizeof (dc_event_t));
        if (!grown) {
            free (frame);
            return;
        }
        self->events = grown;
        self->events_cap = cap;
    }
    self->events[self->events_len].s = s;
    self->events[self->events_len].frame = frame;
    self->events_len++;
}

//  ---- REST faults ------------------------------------------------------------

static const char *s_fault_names[] = {"", "429", "500", "502", "403", "400", "404"};

dc_fault_kind_t
store_fault_kind (const char *name)
{
    for (int i = 1; name && i <= DC_FAULT_404; i++)
        if (strcmp (name, s_fault_names[i]) == 0)
            return (dc_fault_kind_t) i;
    return DC_FAULT_NONE;
}

bool
store_take_fault (dc_t *self, const char *route, const char *channel, dc_fault_t *fault)
{
    for (int i = 0; i < self->fault_count; i++) {
        dc_fault_t *f = &self->faults[i];
        if (strcmp (f->route, "*") != 0 && strcmp (f->route, route) != 0)
            continue;
        if (f->channel_id[0] && strcmp (f->channel_id, channel) != 0)
            continue;
        *fault = *f;
        if (--f->count <= 0) {
            memmove (f, f + 1,
                     (size_t) (self->fault_count - i - 1) * sizeof (dc_fault_t));
            self->fault_count--;
        }
        return true;
    }
    return false;
}

//  ---- State file -------------------------------------------------------------

void
store_save (dc_t *self)
{
    if (!self->state_path)
        return;
    cJSON *root = cJSON_CreateObject ();
    char id[32];
    sprintf (id, "%lld", self->last_id);
    cJSON_AddStringToObject (root, "last_id", id);
    cJSON *session = cJSON_AddObjectToObject (root, "session");
    cJSON_AddStringToObject (session, "id", self->session_id);
    cJSON_AddBoolToObject (session, "valid", self->session_valid);
    cJSON_AddNumberToObject (session, "seq", (double) self->seq);
    cJSON_AddNumberToObject (session, "intents", self->intents);
    cJSON *events = cJSON_AddArrayToObject (session, "events");
    for (size_t i = 0; i < self->events_len; i++) {
        cJSON *event = cJSON_CreateObject ();
        cJSON_AddNumberToObject (event, "s", (double) self->events[i].s);
        cJSON_AddStringToObject (event, "frame", self->events[i].frame);
        cJSON_AddItemToArray (events, event);
    }
    cJSON_AddItemReferenceToObject (root, "pending", self->pending);
    cJSON_AddItemReferenceToObject (root, "sent", self->sent);
    standin_save_json ("cg_dcstandin", self->state_path, root);
}

int
store_load (dc_t *self)
{
    if (!self->state_path)
        return 0;
    cJSON *root = NULL;
    if (standin_load_json (self->state_path, &root) != 0)
        return -1;
    if (!root)
        return 0;
    const char *id = cJSON_GetStringValue (cJSON_GetObjectItem (root, "last_id"));
    if (id)
        self->last_id = strtoll (id, NULL, 10);
    cJSON *session = cJSON_GetObjectItem (root, "session");
    const char *sid = cJSON_GetStringValue (cJSON_GetObjectItem (session, "id"));
    snprintf (self->session_id, sizeof (self->session_id), "%s", sid ? sid : "");
    self->session_valid = cJSON_IsTrue (cJSON_GetObjectItem (session, "valid"));
    self->seq = (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (session, "seq"));
    if (self->seq < 0)
        self->seq = 0;
    self->intents = (int) cJSON_GetNumberValue (cJSON_GetObjectItem (session, "intents"));
    cJSON *event;
    cJSON_ArrayForEach (event, cJSON_GetObjectItem (session, "events"))
    {
        const char *frame = cJSON_GetStringValue (cJSON_GetObjectItem (event, "frame"));
        if (frame)
            store_add_event (
                self, (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (event, "s")),
                strdup (frame));
    }
    cJSON *pending = cJSON_DetachItemFromObject (root, "pending");
    if (cJSON_IsArray (pending)) {
        cJSON_Delete (self->pending);
        self->pending = pending;
    }
    else
        cJSON_Delete (pending);
    cJSON *sent = cJSON_DetachItemFromObject (root, "sent");
    if (cJSON_IsArray (sent)) {
        cJSON_Delete (self->sent);
        self->sent = sent;
    }
    else
        cJSON_Delete (sent);
    cJSON_Delete (root);
    return 0;
}
