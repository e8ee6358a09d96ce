/*
 * sim backend: VMs whose demand follows recorded traces, behind the same
 * backend interface as QEMU. dynmem-sim drives it with a virtual clock;
 * dynmemd can drive it in real time ([host] backend = sim, [sim] speed).
 *
 * The model (docs/simulator.md): demand follows the VM's trace from its
 * start; the guest reports demand (times report_scale) and stall every
 * report_interval; assigned memory moves toward the target no faster than
 * grow_rate and shrink_rate, shrinks before grows, and a grow only takes
 * memory that is free on the host. Each step is judged before anything
 * moves: a VM whose demand exceeds what it held at the start of the step is
 * short for that step, and demand beyond held + swap is an OOM kill (one per
 * episode). dynmem-sim decides once more inside a step when a grow waits for
 * memory that shrinks free (sim/simrun.c).
 *
 * VM keys: trace (required), start, swap, report_scale, psi.
 */
#ifndef DYNMEM_BACKEND_SIM_H
#define DYNMEM_BACKEND_SIM_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "vm.h"

struct sim_vm_stats {
        uint64_t vm_ms;      /* time running */
        uint64_t short_ms;   /* time short */
        double short_byte_s; /* integral of (demand - held) while short, byte-seconds */
        uint64_t oom_kills;
        uint64_t *reactions_ms; /* duration of each short episode that ended */
        size_t n_reactions, cap_reactions;
        uint64_t demand_bytes; /* true demand at the last judgement */
        bool ever_started;
};

/* Create the backend from a loaded config; paths of traces are relative to the config file. */
int sim_backend_new(const struct config *cfg, struct backend **ret, char *err, size_t errlen);

/*
 * The file a VM's "trace =" value names: relative to the configuration's
 * directory. Returns a malloc'd path, or NULL when out of memory.
 */
char *sim_backend_trace_path(const struct config *cfg, const char *trace);

/* Judge every running VM at now_ms for the next dt_ms (shortness, OOM, stall). */
void sim_backend_judge(struct backend *b, uint64_t now_ms, uint64_t dt_ms);

/* Move every running VM's held memory toward its target over dt_ms. */
void sim_backend_move(struct backend *b, uint64_t dt_ms);

/*
 * How long the shrinks asked for take to land at shrink_rate (the largest
 * one's time, in ms rounded up); 0 when none is under way.
 */
uint64_t sim_backend_shrinks_land_ms(struct backend *b);

/*
 * While held, observing a VM returns its last report (a cycle between two
 * reports), however long ago that was taken.
 */
void sim_backend_hold_reports(struct backend *b, bool hold);

/* Advance by real elapsed time (daemon use): move, then judge, in steps. */
void sim_backend_advance(struct backend *b, uint64_t now_ms);

/* The VM's start offset in the scenario ([vm] start), and its statistics. */
uint64_t sim_backend_vm_start_ms(const struct vm *vm);
const struct sim_vm_stats *sim_backend_vm_stats(const struct vm *vm);

/* End of the VM's trace relative to its start. */
uint64_t sim_backend_vm_trace_end_ms(const struct vm *vm);

/* Change the host memory grows may take (dynmemd's config reload). */
void sim_backend_set_memory(struct backend *b, uint64_t bytes);

/* Sum of memory held by running VMs now. */
uint64_t sim_backend_held_bytes(struct backend *b);

extern const struct backend_ops sim_backend_ops;

#endif
