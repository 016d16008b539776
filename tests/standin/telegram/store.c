/*  =========================================================================
    store - cg_tgstandin's state: the update queue, the sent log, the call
    counters, fault rules, the state file and the webhook pusher

    Part of cg_tgstandin (see tgstandin.c).  Every function here that
    touches tg_t expects the caller to hold self->lock, except the pusher's
    own thread and store_load (called before the server starts).
    =========================================================================
*/
#include "tgstandin.h"
#include "common.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

//  ---- Queue ----------------------------------------------------------------

//  The Update's kind: its first member other than update_id.
static char *
s_update_type (cJSON *update)
{
    cJSON *item;
    cJSON_ArrayForEach (item, update)
    {
        if (item->string && strcmp (item->string, "update_id") != 0)
            return strdup (item->string);
    }
    return strdup ("unknown");
}

static void
s_push_entry (tg_t *self, cJSON *update, bool dup, bool delivered)
{
    if (self->queue_len == self->queue_cap) {
        size_t cap = self->queue_cap ? self->queue_cap * 2 : 64;
        update_t *grown = realloc (self->queue, cap * sizeof (update_t));
        if (!grown) {
            cJSON_Delete (update);
            return;
        }
        self->queue = grown;
        self->queue_cap = cap;
    }
    update_t *u = &self->queue[self->queue_len++];
    u->id = (long long) cJSON_GetNumberValue (cJSON_GetObjectItem (update, "update_id"));
    u->seq = self->next_seq++;
    u->type = s_update_type (update);
    u->json = cJSON_PrintUnformatted (update);
    u->dup = dup;
    u->delivered = delivered;
    u->attempts = 0;
    cJSON_Delete (update);
}

long long
store_enqueue (tg_t *self, cJSON *update)
{
    cJSON *id = cJSON_GetObjectItem (update, "update_id");
    bool dup = cJSON_IsNumber (id);
    long long update_id;
    if (dup) {
        update_id = (long long) id->valuedouble;
        if (update_id >= self->next_update_id)
            self->next_update_id = update_id + 1;
    }
    else {
        update_id = self->next_update_id++;
        cJSON_DeleteItemFromObject (update, "update_id");
        //  update_id first, as Telegram sends it.
        cJSON *first = cJSON_CreateNumber ((double) update_id);
        first->string = strdup ("update_id");
        first->next = update->child;
        if (update->child) {
            first->prev = update->child->prev;
            update->child->prev = first;
        }
        else
            first->prev = first;
        update->child = first;
    }
    s_push_entry (self, update, dup, false);
    store_save (self);
    pthread_cond_broadcast (&self->changed);
    return update_id;
}

void
store_remove (tg_t *self, size_t i)
{
    free (self->queue[i].type);
    free (self->queue[i].json);
    memmove (&self->queue[i], &self->queue[i + 1],
             (self->queue_len - i - 1) * sizeof (update_t));
    self->queue_len--;
}

void
store_clear_queue (tg_t *self)
{
    while (self->queue_len)
        store_remove (self, self->queue_len - 1);
}

//  ---- Counters and faults ----------------------------------------------------

void
store_count (tg_t *self, const char *method)
{
    cJSON *n = cJSON_GetObjectItem (self->calls, method);
    if (n)
        cJSON_SetNumberValue (n, n->valuedouble + 1);
    else
        cJSON_AddNumberToObject (self->calls, method, 1);
}

static const char *s_fault_names[] = {"",    "429",      "409",     "500",  "502", "403",
                                      "401", "too_long", "migrate", "hang", "drop"};

fault_kind_t
store_fault_kind (const char *name)
{
    for (int i = 1; name && i <= FAULT_DROP; i++)
        if (strcmp (name, s_fault_names[i]) == 0)
            return (fault_kind_t) i;
    return FAULT_NONE;
}

bool
store_take_fault (tg_t *self, const char *method, const char *chat, fault_t *fault)
{
    for (int i = 0; i < self->fault_count; i++) {
        fault_t *f = &self->faults[i];
        if (strcmp (f->method, "*") != 0 && strcasecmp (f->method, method) != 0)
            continue;
        if (f->chat_id[0] && strcmp (f->chat_id, chat) != 0)
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
store_save (tg_t *self)
{
    if (!self->state_path)
        return;
    cJSON *root = cJSON_CreateObject ();
    cJSON_AddNumberToObject (root, "next_update_id", (double) self->next_update_id);
    cJSON_AddNumberToObject (root, "next_message_id", (double) self->next_message_id);
    cJSON_AddNumberToObject (root, "next_seq", (double) self->next_seq);
    cJSON *queue = cJSON_AddArrayToObject (root, "queue");
    for (size_t i = 0; i < self->queue_len; i++) {
        cJSON *entry = cJSON_CreateObject ();
        cJSON_AddItemToObject (entry, "update", cJSON_Parse (self->queue[i].json));
        cJSON_AddBoolToObject (entry, "dup", self->queue[i].dup);
        cJSON_AddBoolToObject (entry, "delivered", self->queue[i].delivered);
        cJSON_AddItemToArray (queue, entry);
    }
    cJSON_AddItemReferenceToObject (root, "sent", self->sent);
    standin_save_json ("cg_tgstandin", self->state_path, root);
}

int
store_load (tg_t *self)
{
    if (!self->state_path)
        return 0;
    cJSON *root = NULL;
    if (standin_load_json (self->state_path, &root) != 0)
        return -1;
    if (!root)
        return 0;
    cJSON *item = cJSON_GetObjectItem (root, "next_update_id");
    if (cJSON_IsNumber (item))
        self->next_update_id = (long long) item->valuedouble;
    item = cJSON_GetObjectItem (root, "next_message_id");
    if (cJSON_IsNumber (item))
        self->next_message_id = (long long) item->valuedouble;
    item = cJSON_GetObjectItem (root, "next_seq");
    if (cJSON_IsNumber (item))
        self->next_seq = (long long) item->valuedouble;
    cJSON *entry;
    cJSON_ArrayForEach (entry, cJSON_GetObjectItem (root, "queue"))
    {
        cJSON *update = cJSON_DetachItemFromObject (entry, "update");
        if (cJSON_IsObject (update))
            s_push_entry (self, update, cJSON_IsTrue (cJSON_GetObjectItem (entry, "dup")),
                          cJSON_IsTrue (cJSON_GetObjectItem (entry, "delivered")));
        else
            cJSON_Delete (update);
    }
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

//  ---- Webhook pusher ---------------------------------------------------------

static size_t
s_discard (char *ptr, size_t size, size_t nmemb, void *arg)
{
    return size * nmemb;
}

//  POSTs one update; returns the HTTP status, or 0 with error filled.
static long
s_push (const char *url, const char *secret, const char *json, char *error, size_t cap)
{
    CURL *c = curl_easy_init ();
    if (!c) {
        snprintf (error, cap, "curl_easy_init failed");
        return 0;
    }
    struct curl_slist *h = curl_slist_append (NULL, "Content-Type: application/json");
    char line[400];
    if (secret && *secret) {
        snprintf (line, sizeof (line), "X-Telegram-Bot-Api-Secret-Token: %s", secret);
        h = curl_slist_append (h, line);
    }
    curl_easy_setopt (c, CURLOPT_URL, url);
    curl_easy_setopt (c, CURLOPT_POST, 1L);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, json);
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, s_discard);
    curl_easy_setopt (c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
    long status = 0;
    CURLcode rc = curl_easy_perform (c);
    if (rc == CURLE_OK) {
        curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299)
            snprintf (error, cap, "Wrong response from the webhook: %ld", status);
    }
    else
        snprintf (error, cap, "Connection failed: %s", curl_easy_strerror (rc));
    curl_slist_free_all (h);
    curl_easy_cleanup (c);
    return status;
}

static void
s_wait_ms (tg_t *self, int ms)
{
    struct timespec until;
    clock_gettime (CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (long) (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_cond_timedwait (&self->changed, &self->lock, &until);
}

//  Pushes the head of the queue while a webhook is set, one at a time.
static void *
s_pusher (void *arg)
{
    tg_t *self = (tg_t *) arg;
    pthread_mutex_lock (&self->lock);
    while (!atomic_load (&self->stopping)) {
        if (!self->webhook_url || self->queue_len == 0) {
            s_wait_ms (self, TG_SLICE_MS);
            continue;
        }
        char *url = strdup (self->webhook_url);
        const char *secret =
            self->has_override ? self->secret_override : self->webhook_secret;
        char *secret_copy = secret ? strdup (secret) : NULL;
        char *json = strdup (self->queue[0].json);
        long long seq = self->queue[0].seq;
        pthread_mutex_unlock (&self->lock);

        char error[256] = "";
        long status = s_push (url, secret_copy, json, error, sizeof (error));
        free (url);
        free (secret_copy);
        free (json);

        pthread_mutex_lock (&self->lock);
        size_t at = 0;
        while (at < self->queue_len && self->queue[at].seq != seq)
            at++;
        bool ok = status >= 200 && status <= 299;
        if (!ok) {
            snprintf (self->webhook_error, sizeof (self->webhook_error), "%s", error);
            self->webhook_error_date = (long long) time (NULL);
        }
        if (at < self->queue_len
            && (ok || ++self->queue[at].attempts >= TG_PUSH_ATTEMPTS)) {
            store_remove (self, at);
            store_save (self);
        }
        if (!ok) {
            //  Enqueues wake us early: wait out the whole pause.
            struct timespec now;
            clock_gettime (CLOCK_MONOTONIC, &now);
            long long until =
                (long long) now.tv_sec * 1000 + now.tv_nsec / 1000000 + TG_PUSH_RETRY_MS;
            long long left = TG_PUSH_RETRY_MS;
            while (left > 0 && !atomic_load (&self->stopping)) {
                s_wait_ms (self, (int) left);
                clock_gettime (CLOCK_MONOTONIC, &now);
                left = until - ((long long) now.tv_sec * 1000 + now.tv_nsec / 1000000);
            }
        }
    }
    pthread_mutex_unlock (&self->lock);
    return NULL;
}

int
store_pusher_start (tg_t *self)
{
    return pthread_create (&self->pusher, NULL, s_pusher, self) == 0 ? 0 : -1;
}

void
store_pusher_stop (tg_t *self)
{
    pthread_mutex_lock (&self->lock);
    pthread_cond_broadcast (&self->changed);
    pthread_mutex_unlock (&self->lock);
    pthread_join (self->pusher, NULL);
}
