/*
 * suggest: the nearest known name to an unknown one, by the optimal string
 * alignment distance (Levenshtein plus adjacent transpositions). See
 * suggest.h.
 */
#include "suggest.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>

#define SUGGEST_MAX_DISTANCE 2

static size_t min3(size_t a, size_t b, size_t c)
{
        size_t m = a < b ? a : b;
        return m < c ? m : c;
}

size_t suggest_distance(const char *a, const char *b)
{
        /* Three rows of the distance table: two back for a transposition. */
        size_t rows[3][SUGGEST_NAME_MAX + 1];
        size_t n = strlen(a), m = strlen(b);

        if (n > SUGGEST_NAME_MAX || m > SUGGEST_NAME_MAX)
                return SIZE_MAX;
        for (size_t j = 0; j <= m; j++)
                rows[0][j] = j;
        for (size_t i = 1; i <= n; i++) {
                size_t *cur = rows[i % 3], *prev = rows[(i - 1) % 3], *prev2 = rows[(i + 1) % 3];
                int ca = tolower((unsigned char)a[i - 1]);

                cur[0] = i;
                for (size_t j = 1; j <= m; j++) {
                        int cb = tolower((unsigned char)b[j - 1]);
                        size_t cost = ca == cb ? 0 : 1;

                        cur[j] = min3(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
                        if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
                            tolower((unsigned char)a[i - 2]) == cb && prev2[j - 2] + 1 < cur[j])
                                cur[j] = prev2[j - 2] + 1;
                }
        }
        return rows[n % 3][m];
}

void suggest_init(struct suggest *s, const char *word)
{
        *s = (struct suggest){.word = word, .best = NULL, .distance = SIZE_MAX};
}

void suggest_offer(struct suggest *s, const char *name)
{
        if (!name || !s->word)
                return;
        size_t d = suggest_distance(s->word, name);
        /* 0: the name in other case. Nothing at all in common is no suggestion. */
        if (d > SUGGEST_MAX_DISTANCE || d >= strlen(s->word) || d >= s->distance)
                return;
        s->best = name;
        s->distance = d;
}

const char *suggest_best(const struct suggest *s)
{
        return s->best;
}
