/*
 * sweep: capacity planning. One scenario replayed under several policies at
 * every host size of a range (dynmem-sim --sweep memory=FROM:TO:STEP), the
 * runs spread over worker processes, and the smallest host on which each
 * policy meets a service level (--slo short=0.1%, --slo oom=0).
 */
#ifndef DYNMEM_SIM_SWEEP_H
#define DYNMEM_SIM_SWEEP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define SWEEP_POINTS_MAX   1000 /* host sizes in one sweep */
#define SWEEP_POLICIES_MAX 8

struct sweep_range {
        uint64_t from, to, step; /* bytes; from <= to, step > 0 */
};

/* A service level: every VM started, and every part given holds. */
struct sweep_slo {
        bool short_given;
        double short_share; /* short VM-seconds / VM-seconds, at most (0.001 = 0.1 %) */
        bool oom_given;
        uint64_t oom_max; /* OOM kills, at most */
};

/* What one run yields: the figures of a simrun_result the sweep reports. */
struct sweep_figures {
        int status; /* 0, or a negative errno: the run failed */
        uint64_t vms, started, oom_kills, resize_ops, budget_violations;
        double vm_seconds, short_seconds, host_mean_bytes, reaction_p95_s;
        uint64_t policy_failures; /* an exec: policy's (simrun_result) */
        bool policy_failed;       /* an exec: policy that never answered: the run failed */
};

/* Whether a run counts: it completed, and its policy answered (an exec: one at least once). */
static inline bool sweep_point_ok(const struct sweep_figures *f)
{
        return f->status == 0 && !f->policy_failed;
}

struct sweep_result {
        size_t n_sizes, n_policies;
        const char *policies[SWEEP_POLICIES_MAX]; /* borrowed */
        uint64_t sizes[SWEEP_POINTS_MAX];
        struct sweep_figures *figures; /* [size * n_policies + policy], owned */
        struct sweep_slo slo;
        bool slo_given;
        /* per policy: the smallest size from which every larger size meets the SLO (0 = none) */
        uint64_t smallest[SWEEP_POLICIES_MAX];
        double wall_s;
        unsigned jobs;
};

/*
 * "memory=40G:96G:4G" (the upper end included when the steps reach it). Each
 * size is read as [host] memory is: with a unit, or plain bytes of at least
 * 1 MiB; FROM at least 32 MiB. Returns 0 or -EINVAL with the field and its
 * text in err.
 */
int sweep_range_parse(const char *text, struct sweep_range *ret, char *err, size_t errlen);

/* The largest size a range runs: TO, or the last step below it. */
uint64_t sweep_range_largest(const struct sweep_range *range);

/* "short=0.1%" or "oom=0", added to *slo (each at most once). Returns 0 or -EINVAL. */
int sweep_slo_parse(const char *text, struct sweep_slo *slo, char *err, size_t errlen);

/* Whether one run meets the service level. */
bool sweep_meets(const struct sweep_slo *slo, const struct sweep_figures *f);

static inline const struct sweep_figures *sweep_at(const struct sweep_result *r, size_t size,
                                                   size_t policy)
{
        return &r->figures[size * r->n_policies + policy];
}

/*
 * Run every (size, policy) of a loaded scenario on `jobs` worker processes
 * (0 = one per online processor). Returns 0, or a negative errno with a
 * sentence in err (a failed run is reported in its figures' status).
 */
int sweep_run(const struct config *cfg, const char *const *policies, size_t n_policies,
              const struct sweep_range *range, const struct sweep_slo *slo, bool slo_given,
              unsigned jobs, struct sweep_result *ret, char *err, size_t errlen);
void sweep_result_free(struct sweep_result *r);

#endif
