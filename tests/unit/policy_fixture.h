/*
 * policy_fixture: what the policy's unit tests share: a host with up to
 * MAX_VMS VMs, settings for dynamic and fixed VMs, demand and stall inputs, a
 * decision, and a backend that does what it was asked (settle).
 */
#ifndef DYNMEM_POLICY_FIXTURE_H
#define DYNMEM_POLICY_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "policy.h"
#include "units.h"

#define MAX_VMS 8

struct fx {
        struct policy_config cfg;
        struct policy_host host;
        struct policy_scratch scratch;
        struct policy_vm vms[MAX_VMS];
        size_t n;
        struct policy_summary sum;
};

static inline int fx_setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        if (!f || policy_scratch_reserve(&f->scratch, MAX_VMS) < 0)
                return -1;
        f->cfg.kind = POLICY_DYNMEM;
        policy_tunables_default(&f->cfg.tunables);
        f->host.memory_bytes = 16 * GIB;
        *state = f;
        return 0;
}

static inline int fx_teardown(void **state)
{
        struct fx *f = *state;

        policy_scratch_free(&f->scratch);
        policy_scratch_free(&f->scratch);
        policy_scratch_free(NULL);
        free(f);
        return 0;
}

/* A dynamic VM's settings: buffer 20 %, weight 5000, block 2 MiB, lend on. */
static inline struct vm_settings dyn(uint64_t startup, uint64_t minimum, uint64_t maximum)
{
        return (struct vm_settings){
            .dynamic = true,
            .startup_bytes = startup,
            .minimum_bytes = minimum,
            .maximum_bytes = maximum,
            .buffer_percent = 20,
            .weight = 5000,
            .block_bytes = 2 * MIB,
            .lend = true,
        };
}

static inline struct vm_settings fixed(uint64_t startup)
{
        struct vm_settings s = dyn(startup, startup, startup);

        s.dynamic = false;
        return s;
}

static inline struct policy_vm *add(struct fx *f, const char *name, struct vm_settings s,
                                    uint64_t assigned)
{
        struct policy_vm *vm = &f->vms[f->n++];

        assert_true(f->n <= MAX_VMS);
        *vm = (struct policy_vm){
            .name = name,
            .settings = s,
            .phase = POLICY_PHASE_RUNNING,
            .assigned_bytes = assigned,
        };
        return vm;
}

static inline struct policy_vm *add_starting(struct fx *f, const char *name, struct vm_settings s)
{
        struct policy_vm *vm = add(f, name, s, 0);

        vm->phase = POLICY_PHASE_STARTING;
        return vm;
}

static inline void demand(struct policy_vm *vm, uint64_t bytes)
{
        vm->demand_known = true;
        vm->demand_bytes = bytes;
}

static inline void stall(struct policy_vm *vm, double fraction)
{
        vm->stall_known = true;
        vm->stall_fraction = fraction;
}

static inline void decide(struct fx *f, uint64_t now_ms)
{
        assert_int_equal(
            policy_decide(&f->cfg, &f->host, f->vms, f->n, now_ms, &f->scratch, &f->sum), 0);
}

/* The backend did what was asked: running VMs now hold their target. */
static inline void settle(struct fx *f)
{
        for (size_t i = 0; i < f->n; i++) {
                struct policy_vm *vm = &f->vms[i];
                if (vm->phase == POLICY_PHASE_STARTING && vm->admission == ADMISSION_ADMIT) {
                        vm->phase = POLICY_PHASE_RUNNING;
                        vm->memory = (struct policy_vm_memory){0};
                }
                if (vm->phase == POLICY_PHASE_RUNNING)
                        vm->assigned_bytes = vm->requested_bytes = vm->target_bytes;
        }
}

/* want = demand x (1 + buffer), rounded up to 2 MiB. */
static inline uint64_t want_of(uint64_t demand_bytes, unsigned buffer)
{
        long double w = (long double)demand_bytes * (100.0L + buffer) / 100.0L;
        return size_round_up((uint64_t)w, 2 * MIB);
}

static inline uint64_t sum_max_assigned_target(const struct fx *f)
{
        uint64_t s = 0;

        for (size_t i = 0; i < f->n; i++) {
                const struct policy_vm *vm = &f->vms[i];
                if (vm->phase == POLICY_PHASE_RUNNING)
                        s += vm->assigned_bytes > vm->target_bytes ? vm->assigned_bytes
                                                                   : vm->target_bytes;
                else if (vm->admission == ADMISSION_ADMIT)
                        s += vm->target_bytes;
        }
        return s;
}

#endif
