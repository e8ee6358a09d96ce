/*
 * policy_save: what the dynmem kind learned about one VM, apart from its
 * policy_vm_memory, so that it outlives the program that learned it
 * (dynmemd keeps it in STATE_DIR/running.json across a restart). Pure: the
 * memory to and from a plain struct, and that struct to and from a JSON
 * object; no I/O, no clock.
 *
 * What is kept is about the workload: the histogram of the rises the
 * projection did not foresee (in units of one new sample's weight), the
 * persistence of its changes and the sums it is measured from, the interval
 * between its samples, and the probe's or a stall's correction of its
 * figure with its age and backoff. What is about the instant is not: the
 * last sample and its time, the rates measured up to it, the expectation
 * for the next one, a probe or a surplus under way, cache lent. A restored
 * memory is that of a VM not yet decided on, which has learned all that.
 *
 *   {"version": 1, "age_ms": 1200, "interval_ms": 1000,
 *    "persistence": 0.42, "persist_xy": 1.5e3, "persist_xx": 3.1e3,
 *    "rise_weights": [812.5, 0, 3.25, ... 24 numbers],
 *    "correction": {"permille": 870, "stall_floor_bytes": 0,
 *                   "stall_figure_bytes": 0, "age_ms": 60000, "backoff": 2}}
 *
 * "correction" is there only when one was learned.
 */
#ifndef DYNMEM_POLICY_SAVE_H
#define DYNMEM_POLICY_SAVE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define POLICY_SAVE_VERSION 1

struct policy_learned {
        uint64_t age_ms;      /* how long before the save the history last took a sample */
        uint64_t interval_ms; /* the interval between its last two samples (0: one sample) */
        double persistence;   /* 0..1 */
        double persist_xy, persist_xx;
        double rise_weight[POLICY_RISE_BUCKETS]; /* one new sample weighs 1 */

        bool correction;              /* the fields below hold one */
        uint32_t correction_permille; /* 1..1000 */
        uint64_t stall_floor_bytes;   /* 0, or with correction_permille 1000 */
        uint64_t stall_figure_bytes;
        uint64_t correction_age_ms; /* how long before the save it was learned */
        uint32_t stall_backoff;     /* 1..POLICY_SAVE_BACKOFF_MAX */
};

#define POLICY_SAVE_BACKOFF_MAX 128                         /* twice stall_backoff_max's top */
#define POLICY_SAVE_AGE_MAX     (366ull * 24 * 3600 * 1000) /* ages and intervals: a year */
#define POLICY_SAVE_WEIGHT_MAX  1e15                        /* a bucket's weight, in samples */

/*
 * What m learned, at now_ms on the decisions' clock. False when it learned
 * nothing yet (no sample taken): nothing worth keeping. A memory restored by
 * policy_learned_apply() and not sampled since gives back what it was
 * given, aged by the time since (a restart before its VM's first sample
 * loses nothing).
 */
bool policy_learned_take(const struct policy_vm_memory *m, uint64_t now_ms,
                         struct policy_learned *ret);

/*
 * A memory that knows l and nothing about the instant, at now_ms on the
 * decisions' clock, away_ms after l was taken: every weight of the history
 * and of its persistence is aged as the history ages them (halved every
 * history_halflife_ms) by the time from its last sample to now, and the
 * correction is as old as it would be had its VM been decided on all along.
 */
void policy_learned_apply(const struct policy_learned *l, uint64_t away_ms, uint64_t now_ms,
                          const struct policy_tunables *t, struct policy_vm_memory *ret);

/* l as a JSON object of version POLICY_SAVE_VERSION; NULL on ENOMEM. */
json_t *policy_learned_json(const struct policy_learned *l);

/*
 * Read what policy_learned_json() wrote, checking every field's type and
 * range and the histogram's shape; nothing is half-taken. 0; -EINVAL with
 * one sentence in err naming the field; -EPROTONOSUPPORT when a newer
 * version wrote it (err says which).
 */
int policy_learned_parse(const json_t *obj, struct policy_learned *ret, char *err, size_t errlen);

/* What the history learned, for display (dynmem show). */
struct policy_learned_summary {
        uint64_t cover_bytes; /* the rise headroom_permille of its unforeseen rises stayed under */
        double persistence;   /* how much of a change has carried on (0..1) */
        double samples;       /* how many samples' weight it holds, aged */
};

/* False when m has learned nothing yet. */
bool policy_learned_summarize(const struct policy_vm_memory *m, const struct policy_tunables *t,
                              struct policy_learned_summary *ret);

#endif
