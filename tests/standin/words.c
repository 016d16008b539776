/*  =========================================================================
    words - word counts and the text of messages, for replies and tokens

    Part of cg_standin (see standin.c for what it answers and how).
    =========================================================================
*/
#include "standin.h"

static bool
s_is_space (char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

long
words_count (const char *text, size_t len)
{
    long words = 0;
    bool in_word = false;
    for (size_t i = 0; i < len; i++) {
        bool space = s_is_space (text[i]);
        if (!space && !in_word)
            words++;
        in_word = !space;
    }
    return words;
}

//  Length of the next delta: leading whitespace, then one word.
size_t
words_token_len (const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && s_is_space (text[i]))
        i++;
    while (i < len && !s_is_space (text[i]))
        i++;
    return i;
}

//  Counts the words of a message content: a string, or an array of blocks
//  whose text sits in "text" or, for tool results, in "content".
long
words_count_content (const cJSON *content)
{
    if (cJSON_IsString (content))
        return words_count (content->valuestring, strlen (content->valuestring));
    long words = 0;
    const cJSON *part;
    if (cJSON_IsArray (content))
        cJSON_ArrayForEach (part, content)
        {
            if (cJSON_IsString (part)) {
                words += words_count_content (part);
                continue;
            }
            const cJSON *text = cJSON_GetObjectItemCaseSensitive (part, "text");
            if (cJSON_IsString (text))
                words += words_count_content (text);
            const cJSON *inner = cJSON_GetObjectItemCaseSensitive (part, "content");
            if (inner)
                words += words_count_content (inner);
        }
    return words;
}

//  Appends the text of a message content to buf, parts separated by a space.
//  With results_only, only tool_result blocks count, else only text blocks.
void
words_append_content (buf_t *buf, const cJSON *content, bool results_only)
{
    if (cJSON_IsString (content)) {
        buf_puts (buf, content->valuestring);
        return;
    }
    bool first = true;
    const cJSON *part;
    if (cJSON_IsArray (content))
        cJSON_ArrayForEach (part, content)
        {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive (part, "type");
            if (!cJSON_IsString (type)
                || strcmp (type->valuestring, results_only ? "tool_result" : "text") != 0)
                continue;
            const cJSON *text = cJSON_GetObjectItemCaseSensitive (
                part, results_only ? "content" : "text");
            if (!text)
                continue;
            if (!first)
                buf_append (buf, " ", 1);
            first = false;
            words_append_content (buf, text, false);
        }
}

//  True if an Anthropic content array holds a tool_result block.
bool
words_has_tool_result (const cJSON *content)
{
    const cJSON *part;
    if (cJSON_IsArray (content))
        cJSON_ArrayForEach (part, content)
        {
            const cJSON *type = cJSON_GetObjectItemCaseSensitive (part, "type");
            if (cJSON_IsString (type) && strcmp (type->valuestring, "tool_result") == 0)
                return true;
        }
    return false;
}
