/*
 * counters: the two Dynamic Memory counter sets, fed by the balancer loop's
 * events rather than recomputed by each reader.
 *
 * Dynamic Memory VM (per VM): added and removed memory and the operations
 * that did it, physical (assigned) and guest-visible memory, current,
 * average, minimum and maximum pressure, guest available memory; and dynmem's
 * own, lent memory (policy_lend).
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
        uint64_t added_bytes;       /* memory added, summed over every grow observed */
        uint64_t removed_bytes;     /* memory removed, summed over every shrink observed */
        uint64_t add_operations;    /* grow requests issued */
        uint64_t remove_operations; /* shrink requests issued */
        double current_pressure;    /* latest pressure %, -1 unknown */
        double average_pressure;    /* exponential average over ~1 minute, -1 unknown */
        double minimum_pressure;    /* lowest pressure seen since start, -1 unknown */
        double maximum_pressure;    /* highest pressure seen since start, -1 unknown */
        uint64_t last_update_ms;
        uint64_t alpha_dt_ms; /* the averaging weight for this interval, cached */
        double alpha;
};

struct balancer_counters {
        uint64_t available_bytes;               /* host memory for VMs not held by any VM */
        uint64_t available_for_balancing_bytes; /* available + what VMs hold above their need - what
                                                   VMs waiting in admission are promised */
        double average_pressure;                /* mean of running VMs' average pressure, -1 none */
        double current_pressure;                /* sum of demand / sum of assigned x 100, -1 none */
        uint64_t added_bytes;
        uint64_t removed_bytes;
        uint64_t add_operations;
        uint64_t remove_operations;
        uint64_t refused_starts;
        uint64_t crashes;
        uint64_t policy_refusals; /* external proposals refused */
};

void vm_counters_reset(struct vm_counters *c);

/* Feed one pressure sample (percent, or < 0 when unknown) at now_ms. */
void vm_counters_pressure(struct vm_counters *c, double pressure, uint64_t now_ms);

/*
 * The two sets as tables, in Hyper-V's order, so that every reader (the
 * control socket's JSON, Prometheus, dynmem counters) names and scales a
 * counter alike. docs/counters.md defines each one.
 */
enum counters_unit {
        COUNTERS_BYTES,
        COUNTERS_PERCENT,
        COUNTERS_OPERATIONS,
};

struct counters_def {
        const char *title;  /* Hyper-V's name: "Added Memory" */
        const char *key;    /* JSON: "added_memory_bytes" */
        const char *metric; /* Prometheus, after "dynmem_balancer_" or "dynmem_vm_" */
        enum counters_unit unit;
        bool total;       /* only grows (a Prometheus counter); else a gauge */
        const char *help; /* one line, Prometheus HELP */
};

#define COUNTERS_BALANCER_N 8
#define COUNTERS_VM_N       12

extern const struct counters_def counters_balancer_defs[COUNTERS_BALANCER_N];
extern const struct counters_def counters_vm_defs[COUNTERS_VM_N];

/* One reading: bytes and operations in n, percentages in percent. */
struct counters_value {
        bool known;
        uint64_t n;
        double percent;
};

struct vm;

/* The Dynamic Memory Balancer set, in counters_balancer_defs' order. */
void counters_balancer_read(const struct balancer_counters *c,
                            struct counters_value ret[COUNTERS_BALANCER_N]);

/*
 * The Dynamic Memory VM set of one VM, in counters_vm_defs' order. Memory
 * and pressure are known only while the VM holds memory (running or
 * stopping); the sums count since the VM last started.
 */
void counters_vm_read(const struct vm *vm, struct counters_value ret[COUNTERS_VM_N]);

#endif
