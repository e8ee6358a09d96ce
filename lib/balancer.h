/*
 * balancer: the balancing loop every program shares. One call to
 * balancer_tick() is one cycle: gather observations from the backend, let
 * the policy decide, apply the decision (shrinks before grows, starts when
 * admitted), and update the counters from what really happened. The caller
 * owns the clock: dynmemd passes the real time, dynmem-sim a virtual one.
 */
#ifndef DYNMEM_BALANCER_H
#define DYNMEM_BALANCER_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "counters.h"
#include "policy.h"
#include "vm.h"

struct policy_exec;

enum balancer_event_kind {
        BALANCER_EVENT_ADD,          /* a grow was requested: bytes, reason */
        BALANCER_EVENT_REMOVE,       /* a shrink was requested */
        BALANCER_EVENT_STARTED,      /* admitted and started */
        BALANCER_EVENT_REFUSED,      /* a start was refused (reason in vm->refusal) */
        BALANCER_EVENT_CRASHED,      /* the VM's process died */
        BALANCER_EVENT_START_FAILED, /* the backend could not start it */
        BALANCER_EVENT_POLICY,       /* a message about the policy (external failures) */
        BALANCER_EVENT_REBOOTED,     /* the guest restarted: back to bytes (its startup size) */
        /* live migration (docs/migration.md); the daemon emits all but ARRIVING */
        BALANCER_EVENT_ARRIVING,          /* admitted: migrating in, its memory reserved here */
        BALANCER_EVENT_ARRIVED,           /* migrated in: balanced here from now on */
        BALANCER_EVENT_LEAVING,           /* its owner migrates it away: its size is held */
        BALANCER_EVENT_LEFT,              /* migrated away: its memory here is free again */
        BALANCER_EVENT_MIGRATION_FAILED,  /* a migration from or to here failed (message) */
        BALANCER_EVENT_MIGRATION_REFUSED, /* an incoming migration refused by admission */
        BALANCER_EVENT_RELIEF,            /* the relief rule moves a VM to a peer (message) */
};

struct balancer_event {
        enum balancer_event_kind kind;
        struct vm *vm;  /* NULL for policy events */
        uint64_t bytes; /* size of the change */
        uint64_t from_bytes, to_bytes;
        enum policy_reason reason;
        double pressure; /* the VM's pressure when it happened, -1 unknown */
        const char *message;
        uint64_t time_ms;
};

typedef void (*balancer_event_fn)(const struct balancer_event *ev, void *userdata);

struct balancer {
        struct policy_config policy;
        struct policy_exec *exec; /* set for exec: policies */
        struct policy_host host;
        struct backend *backend;
        struct vm **vms; /* borrowed; the owner adds and removes */
        size_t n_vms;
        struct balancer_counters counters;
        struct policy_summary last_summary;
        balancer_event_fn on_event;
        void *event_userdata;
        /* refuse starts at once (daemon) or keep waiting and retrying (simulator) */
        bool refused_starts_wait;

        /* the policy's view of each VM, and its memory between ticks */
        struct policy_vm *pv;
        uint64_t generation; /* of the current set of VMs */
        struct policy_scratch scratch;
};

/* Prepare a balancer; policy_spec is "dynmem", "static", "hyperv" or "exec:COMMAND". */
int balancer_init(struct balancer *b, const char *policy_spec,
                  const struct policy_tunables *tunables, struct backend *backend, char *err,
                  size_t errlen);
void balancer_fini(struct balancer *b);

struct event_base;

/*
 * Run an exec: policy from base (dynmemd) instead of waiting for each reply:
 * its replies are applied by the first tick after they arrive, and
 * on_reply runs when one has, so that the owner can tick soon. Nothing for
 * the built-in policies. Returns 0 or -ENOMEM.
 */
int balancer_attach_loop(struct balancer *b, struct event_base *base,
                         void (*on_reply)(void *userdata), void *userdata);

/*
 * Replace b's policy (a reload), all or nothing: a new balancer is built
 * with policy_spec and tunables, attached to base (when base is set, as
 * balancer_attach_loop) and handed the VMs (as balancer_set_vms); only when every step succeeded
 * does it take b's place, keeping b's host, counters and event callback, and
 * the old one is freed. On any failure the new one is freed and b runs on as
 * it was; err says why. The new policy starts from a fresh memory of the VMs.
 * Returns 0, -EINVAL (an unknown policy) or -ENOMEM.
 */
int balancer_replace_policy(struct balancer *b, const char *policy_spec,
                            const struct policy_tunables *tunables, struct vm **vms, size_t n,
                            struct event_base *base, void (*on_reply)(void *userdata),
                            void *userdata, char *err, size_t errlen);

/*
 * Replace the set of VMs the balancer looks at (the array is borrowed). VMs
 * that were in the previous set keep what the policy remembers of them.
 */
int balancer_set_vms(struct balancer *b, struct vm **vms, size_t n);

/* One cycle at now_ms. Returns 0 or -ENOMEM. */
int balancer_tick(struct balancer *b, uint64_t now_ms);

/* Ask for a VM to be started at the next cycle (goes through admission). */
void balancer_request_start(struct balancer *b, struct vm *vm);

/* A VM started outside the loop (its owner started it): the policy forgets its past. */
void balancer_reset_vm(struct balancer *b, struct vm *vm);

/*
 * The policy forgets the moment but keeps what it learned of the VM's
 * workload (policy_save.h: its rises, their persistence, its correction), at
 * now_ms on the decisions' clock: for a VM that ran here all along but was
 * held while a live migration of it failed.
 */
void balancer_forget_instant(struct balancer *b, struct vm *vm, uint64_t now_ms);

/*
 * What the policy remembers of a VM between ticks, or NULL when the VM is
 * not in the balancer's set. Replacing it (a restart's saved history,
 * policy_save.h) is for a VM not yet decided on since it was reattached.
 */
struct policy_vm_memory *balancer_memory(struct balancer *b, const struct vm *vm);
const struct policy_vm_memory *balancer_memory_const(const struct balancer *b, const struct vm *vm);

/*
 * Memory that could be made free for a VM of this weight arriving by live
 * migration, by shrinking only VMs of lower weight, to their minimum: the
 * host's memory less what every other VM keeps. A dynamic VM of that weight
 * or more keeps what it holds (or may still take: a grow in flight) and what
 * it needs by the last decision; a lighter one keeps its minimum; a static,
 * stopping or migrating VM keeps what it holds; a VM waiting to start or
 * arrive keeps its startup (or arriving) size.
 */
uint64_t balancer_room_for(const struct balancer *b, uint32_t weight);

#endif
