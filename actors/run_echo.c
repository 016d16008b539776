/*  =========================================================================
    run_echo - the built-in local/echo provider: the last user message, back
    word by word, paced by the provider's echoDelayMs
    =========================================================================
*/
#include "run_internal.h"

#include <string.h>

//  local/echo: the last user message, back word by word.
void
run_echo_prepare (run_t *run)
{
    const cJSON *last = NULL;
    int64_t prompt_words = 0;
    for (const cJSON *m = run->messages->child; m; m = m->next) {
        const cJSON *role = cJSON_GetObjectItem (m, "role");
        const cJSON *content = cJSON_GetObjectItem (m, "content");
        if (cJSON_IsString (content)) {
            bool in_word = false;
            for (const char *p = content->valuestring; *p; p++) {
                bool space = *p == ' ' || *p == '\n' || *p == '\t' || *p == '\r';
                prompt_words += !space && !in_word;
                in_word = !space;
            }
            if (cJSON_IsString (role) && !strcmp (role->valuestring, "user"))
                last = content;
        }
    }
    run->prompt_tokens = prompt_words;
    const char *text = last ? last->valuestring : "";
    //  Split on spaces; every word but the first keeps its leading space.
    size_t n = strlen (text);
    run->words = (char **) calloc (n / 2 + 2, sizeof (char *));
    const char *p = text;
    while (run->words && *p) {
        const char *start = p;
        while (*p == ' ')
            p++;
        while (*p && *p != ' ')
            p++;
        size_t len = (size_t) (p - start);
        if (!len)
            break;
        run->words[run->n_words] = strndup (start, len);
        if (!run->words[run->n_words])
            break;
        run->n_words++;
    }
    run->completion_tokens = run->n_words;
}

//  Emits the echo words that are due; finishes the run after the last one.
//  Returns false if the run ended.
bool
run_echo_step (run_t *run)
{
    int delay = run->provider->echo_delay_ms;
    while (run->next_word < run->n_words && zclock_mono () >= run->echo_next) {
        const char *w = run->words[run->next_word++];
        run_events_delta (run, w, strlen (w), NULL);
        run->echo_next = zclock_mono () + delay;
    }
    if (run->next_word < run->n_words)
        return true;
    run_finish (run, "stop");
    return false;
}
