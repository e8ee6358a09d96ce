/*
 * simrun: one simulator run of a scenario under one policy, driving the
 * shared balancer loop with a virtual clock over the sim backend, and the
 * figures it yields. Used by dynmem-sim and by the benchmarks.
 */
#ifndef DYNMEM_SIMRUN_H
#define DYNMEM_SIMRUN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "balancer.h"
#include "config.h"
#include "vm.h"

#define SIMRUN_SERIES_POINTS   600   /* samples kept per VM for charts */
#define SIMRUN_TIMELINE_POINTS 20000 /* timeline rows per VM at most */

struct simrun_series {
        size_t n;
        uint64_t t_ms[SIMRUN_SERIES_POINTS];
        uint64_t demand[SIMRUN_SERIES_POINTS];
        uint64_t assigned[SIMRUN_SERIES_POINTS];
};

struct simrun_vm_result {
        char name[VM_NAME_MAX];
        bool started;
        uint64_t vm_ms, short_ms, oom_kills, add_ops, remove_ops;
        double short_byte_s;
        uint64_t peak_assigned, mean_assigned;
        struct simrun_series *series; /* NULL unless charts were asked for */
};

struct simrun_result {
        char *policy; /* owned */
        /*
         * An exec: policy's failures (policy_exec_tally): it could not be
         * started, exited, hung or replied nonsense, and the VMs kept their
         * targets. 0 for the built-in policies.
         */
        uint64_t policy_failures;
        bool policy_failed;       /* an exec: policy that never answered: the run failed */
        uint64_t policy_messages; /* its failure messages, for the limit on stderr */
        uint64_t duration_ms;
        size_t vms, started, refused;
        double vm_seconds, short_seconds, short_byte_seconds;
        uint64_t oom_kills;
        double host_mean_bytes;
        uint64_t host_peak_bytes;
        uint64_t budget_violations;
        uint64_t resize_ops;
        uint64_t grow_ops_by_reason[REASON_LENT + 1];
        uint64_t shrink_ops_by_reason[REASON_LENT + 1];
        double reaction_p50_s, reaction_p95_s;
        uint64_t memory_bytes;
        struct simrun_vm_result *per_vm;
        struct simrun_series *host_series; /* demand = sum of demand, assigned = sum held */
};

struct simrun_options {
        const char *policy;       /* NULL = the scenario's */
        FILE *timeline;           /* CSV rows, or NULL */
        bool series;              /* keep chart series */
        uint64_t memory_override; /* 0 = the scenario's */
};

/*
 * Run a loaded and checked scenario. Returns 0, or a negative errno with a
 * sentence in err.
 */
int simrun(const struct config *cfg, const struct simrun_options *opt, struct simrun_result *ret,
           char *err, size_t errlen);
void simrun_result_free(struct simrun_result *r);

/*
 * Load a scenario and check everything (keys, traces), printing every
 * problem to stderr as FILE:LINE: message, and the warnings after them (a
 * VM whose startup is more than the host's memory: [host] memory, or swept,
 * the largest host of a sweep, when not 0). Returns 0 or -EINVAL.
 */
int simrun_load_scenario(const char *path, uint64_t swept, struct config *ret);

#endif
