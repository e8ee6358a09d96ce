/*
 * counters: the two Dynamic Memory counter sets, fed by the balancer loop's
 * events rather than recomputed by each reader.
 *
 * Dynamic Memory VM (per VM): added and removed memory and the operations
 * that did it, physical (assigned) and guest-visible memory, current,
 * average, minimum and maximum pressure, guest available memory.
 * Dynamic Memory Balancer (per host): available memory, available memory
 * for balancing, average and current system pressure, and host-wide added
 * and removed memory and operations. docs/counters.md defines each one.
 */
#ifndef DYNMEM_COUNTERS_H
#define DYNMEM_COUNTERS_H

#include <stdbool.h>
#include <stdint.h>

#define COUNTERS_AVERAGE_WINDOW_MS (60 * 1000) /* average pressure: exponential, ~1 minute */

struct vm_counters {
        uint64_t added_bytes;            /* memory added, summed over every grow observed */
        uint64_t removed_bytes;          /* memory removed, summed over every shrink observed */
        uint64_t add_operations;         /* grow requests issued */
        uint64_t remove_operations;      /* shrink requests issued */
        double current_pressure;         /* latest pressure %, -1 unknown */
        double average_pressure;         /* exponential average over ~1 minute, -1 unknown */
        double minimum_pressure;         /* lowest pressure seen since start, -1 unknown */
        double maximum_pressure;         /* highest pressure seen since start, -1 unknown */
        uint64_t last_update_ms;
        uint64_t alpha_dt_ms;            /* the averaging weight for this interval, cached */
        double alpha;
};

struct balancer_counters {
        uint64_t available_bytes;        /* host memory for VMs not held by any VM */
        uint64_t available_for_balancing_bytes; /* available + what VMs hold above their target */
        double average_pressure;         /* mean of running VMs' average pressure, -1 none */
        double current_pressure;         /* sum of demand / sum of assigned x 100, -1 none */
        uint64_t added_bytes;
        uint64_t removed_bytes;
        uint64_t add_operations;
        uint64_t remove_operations;
        uint64_t refused_starts;
        uint64_t crashes;
        uint64_t policy_refusals;        /* external proposals refused */
};

void vm_counters_reset(struct vm_counters *c);

/* Feed one pressure sample (percent, or < 0 when unknown) at now_ms. */
void vm_counters_pressure(struct vm_counters *c, double pressure, uint64_t now_ms);

#endif
