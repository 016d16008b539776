/*  =========================================================================
    store - cg_wastandin's state: ids, the clock, the 24-hour windows, the
    counters, fault rules and the state file

    Part of cg_wastandin (see wastandin.c).  Every function here that
    touches wa_t expects the caller to hold self->lock, except store_load
    (called before the server starts).
    =========================================================================
*/
#include "wastandin.h"
#include "common.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

//  ---- Ids, clock, windows --------------------------------------------------

void
store_wamid (wa_t *self, char *buf, size_t cap)
{
    //  Real wamids are base64 of a protobuf ("wamid.HBgL..."); ours keep
    //  the prefix and are unique across restarts of one state file.
    snprintf (buf, cap, "wamid.HBgL%sFQIAEhg%06lld", self->salt, self->next_id++);
}

long long
store_now_ms (wa_t *self)
{
    struct timespec ts;
    clock_gettime (CLOCK_REALTIME, &ts);
    return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + self->clock_offset_ms;
}

void
store_open_window (wa_t *self, const char *wa_id)
{
    cJSON_DeleteItemFromObject (self->windows, wa_id);
    cJSON_AddNumberToObject (self->windows, wa_id, (double) store_now_ms (self));
}

bool
store_window_open (wa_t *self, const char *wa_id)
{
    cJSON *last = cJSON_GetObjectItem (self->windows, wa_id);
    return cJSON_IsNumber (last)
           && store_now_ms (self) - (long long) last->valuedouble <= self->window_ms;
}

//  ---- Counters and faults ----------------------------------------------------

static const char *s_counters[] = {"messages", "text",   "other",    "read",
                                   "typing",   "denied", "rejected", "faulted",
                                   "verify",   "posts",  "attempts", NULL};

void
store_count (wa_t *self, const char *name)
{
    cJSON *n = cJSON_GetObjectItem (self->calls, name);
    if (n)
        cJSON_SetNumberValue (n, n->valuedouble + 1);
    else
        cJSON_AddNumberToObject (self->calls, name, 1);
}

void
store_zero_calls (wa_t *self)
{
    cJSON_Delete (self->calls);
    self->calls = cJSON_CreateObject ();
    for (int i = 0; s_counters[i]; i++)
        cJSON_AddNumberToObject (self->calls, s_counters[i], 0);
}

static const char *s_fault_names[] = {"",    "131047", "130429", "131056",
                                      "190", "131026", "100",    "500",
                                      "502", "503",    "hang",   "drop"};

fault_kind_t
store_fault_kind (const char *name)
{
    for (int i = 1; name && i <= FAULT_DROP; i++)
        if (strcmp (name, s_fault_names[i]) == 0)
            return (fault_kind_t) i;
    return FAULT_NONE;
}

bool
store_take_fault (wa_t *self, const char *on, const char *to, fault_t *fault)
{
    for (int i = 0; i < self->fault_count; i++) {
        fault_t *f = &self->faults[i];
        if (strcmp (f->on, "any") != 0 && strcmp (f->on, on) != 0)
            continue;
        if (f->to[0] && strcmp (f->to, to) != 0)
            continue;
        *fault = *f;
        if (--f->count <= 0) {
            memmove (f, f + 1, (size_t) (self->fault_count - i - 1) * sizeof (fault_t));
            self->fault_count--;
        }
        return true;
    }
    return false;
}

//  ---- State file -------------------------------------------------------------

void
store_save (wa_t *self)
{
    if (!self->state_path)
        return;
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddStringToObject (root, "salt", self->salt);
    cJSON_AddNumberToObject (root, "next_id", (double) self->next_id);
    cJSON_AddNumberToObject (root, "next_seq", (double) self->next_seq);
    cJSON_AddNumberToObject (root, "clock_offset_ms", (double) self->clock_offset_ms);
    cJSON_AddItemReferenceToObject (root, "sent", self->sent);
    cJSON_AddItemReferenceToObject (root, "reads", self->reads);
    cJSON_AddItemReferenceToObject (root, "windows", self->windows);
    cJSON_AddItemReferenceToObject (root, "inbound", self->inbound);
    cJSON_AddItemReferenceToObject (root, "pushes", self->pushes);
    standin_save_json ("cg_wastandin", self->state_path, root);
}

//  Replaces *slot with root's member name when it has type check.
static void
s_take (cJSON *root, const char *name, cJSON **slot, cJSON_bool (*check) (const cJSON *))
{
    cJSON *item = cJSON_DetachItemFromObject (root, name);
    if (check (item)) {
        cJSON_Delete (*slot);
        *slot = item;
    }
    else
        cJSON_Delete (item);
}

int
store_load (wa_t *self)
{
    if (!self->state_path)
        return 0;
    cJSON *root = NULL;
    if (standin_load_json (self->state_path, &root) != 0)
        return -1;
    if (!root)
        return 0;
    const char *salt = wa_str (root, "salt", NULL);
    if (salt)
        snprintf (self->salt, sizeof (self->salt), "%s", salt);
    cJSON *item = cJSON_GetObjectItem (root, "next_id");
    if (cJSON_IsNumber (item))
        self->next_id = (long long) item->valuedouble;
    item = cJSON_GetObjectItem (root, "next_seq");
    if (cJSON_IsNumber (item))
        self->next_seq = (long long) item->valuedouble;
    item = cJSON_GetObjectItem (root, "clock_offset_ms");
    if (cJSON_IsNumber (item))
        self->clock_offset_ms = (long long) item->valuedouble;
    s_take (root, "sent", &self->sent, cJSON_IsArray);
    s_take (root, "reads", &self->reads, cJSON_IsArray);
    s_take (root, "windows", &self->windows, cJSON_IsObject);
    s_take (root, "inbound", &self->inbound, cJSON_IsObject);
    s_take (root, "pushes", &self->pushes, cJSON_IsArray);
    cJSON_Delete (root);
    return 0;
}
