/*
 * suggest: the known name nearest to a misspelt one, for a "did you mean"
 * in a message about an unknown key. Names are offered one at a time (they
 * come from different tables); the nearest within an edit distance of 2
 * (insertions, deletions, substitutions, and a swap of two neighbouring
 * letters counted as one edit, case ignored) wins, the first offered on a tie.
 * A word is never matched to a name by replacing all its letters: a
 * 2-letter word needs a distance of 1. A name that differs only in case
 * (distance 0) is suggested too: keys are case-sensitive.
 */
#ifndef DYNMEM_SUGGEST_H
#define DYNMEM_SUGGEST_H

#include <stddef.h>

/* Names longer than this are never suggested (nor is anything for a longer word). */
#define SUGGEST_NAME_MAX 64

struct suggest {
        const char *word;
        const char *best; /* NULL: nothing near enough yet */
        size_t distance;
};

void suggest_init(struct suggest *s, const char *word);

/* Consider `name` (NULL is ignored). */
void suggest_offer(struct suggest *s, const char *name);

/* The nearest name offered, or NULL when none was near enough. */
const char *suggest_best(const struct suggest *s);

/* The edit distance suggest uses (adjacent swaps count 1), or SIZE_MAX past SUGGEST_NAME_MAX. */
size_t suggest_distance(const char *a, const char *b);

#endif
