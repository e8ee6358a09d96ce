/*
 * balancer: one balancing cycle, shared by dynmemd and dynmem-sim. Gathers
 * observations, runs the policy (or an external one), applies the decision
 * with shrinks before grows, and keeps the counters. See balancer.h.
 */
#include "balancer.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy_exec.h"
#include "policy_save.h"
#include "units.h"

int balancer_init(struct balancer *b, const char *policy_spec,
                  const struct policy_tunables *tunables, struct backend *backend, char *err,
                  size_t errlen)
{
        const char *command = NULL;

        *b = (struct balancer){.backend = backend};
        if (policy_kind_parse(policy_spec, &b->policy.kind, &command) < 0) {
                snprintf(err, errlen,
                         "unknown policy \"%s\" (dynmem, static, hyperv or exec:COMMAND)",
                         policy_spec);
                return -EINVAL;
        }
        if (tunables)
                b->policy.tunables = *tunables;
        else
                policy_tunables_default(&b->policy.tunables);
        if (command) {
                int r = policy_exec_new(command, &b->exec, err, errlen);
                if (r < 0)
                        return r;
        }
        return 0;
}

int balancer_attach_loop(struct balancer *b, struct event_base *base,
                         void (*on_reply)(void *userdata), void *userdata)
{
        return b->exec ? policy_exec_attach(b->exec, base, on_reply, userdata) : 0;
}

void balancer_fini(struct balancer *b)
{
        policy_exec_free(b->exec);
        free(b->pv);
        policy_scratch_free(&b->scratch);
        *b = (struct balancer){0};
}

/* The VM's slot in the current set, or NULL when it is not in it. */
static struct policy_vm *slot_of(const struct balancer *b, const struct vm *vm)
{
        if (b->pv && vm->balancer_generation == b->generation && vm->balancer_slot < b->n_vms)
                return &b->pv[vm->balancer_slot];
        return NULL;
}

/*
 * The policy's per-VM memory lives in the balancer's slots between ticks.
 * A new set of VMs gets new slots; a VM that was in the old set keeps its
 * memory (its slot number and the set's generation are recorded in it).
 */
int balancer_set_vms(struct balancer *b, struct vm **vms, size_t n)
{
        struct policy_vm *pv = calloc(n ? n : 1, sizeof(*pv));

        if (!pv || policy_scratch_reserve(&b->scratch, n) < 0) {
                free(pv);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                struct vm *vm = vms[i];
                const struct policy_vm *old = slot_of(b, vm);
                if (old)
                        pv[i].memory = old->memory;
                vm->balancer_slot = i;
        }
        b->generation++;
        for (size_t i = 0; i < n; i++)
                vms[i]->balancer_generation = b->generation;
        free(b->pv);
        b->pv = pv;
        b->vms = vms;
        b->n_vms = n;
        return 0;
}

int balancer_replace_policy(struct balancer *b, const char *policy_spec,
                            const struct policy_tunables *tunables, struct vm **vms, size_t n,
                            struct event_base *base, void (*on_reply)(void *userdata),
                            void *userdata, char *err, size_t errlen)
{
        struct balancer nb;
        int r = balancer_init(&nb, policy_spec, tunables, b->backend, err, errlen);

        if (r < 0)
                return r;
        /* Every step that can fail comes before b changes (set_vms: before the VMs do). */
        if ((base && balancer_attach_loop(&nb, base, on_reply, userdata) < 0) ||
            balancer_set_vms(&nb, vms, n) < 0) {
                balancer_fini(&nb);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        nb.host = b->host;
        nb.counters = b->counters;
        nb.on_event = b->on_event;
        nb.event_userdata = b->event_userdata;
        nb.refused_starts_wait = b->refused_starts_wait;
        balancer_fini(b);
        *b = nb;
        return 0;
}

void balancer_request_start(struct balancer *b, struct vm *vm)
{
        (void)b;
        vm->state = VM_STARTING;
        vm->start_requested = true;
        vm->start_outside = false;
        vm->refusal[0] = '\0';
}

void balancer_reset_vm(struct balancer *b, struct vm *vm)
{
        struct policy_vm *pv = slot_of(b, vm);

        if (pv)
                pv->memory = (struct policy_vm_memory){0};
}

void balancer_forget_instant(struct balancer *b, struct vm *vm, uint64_t now_ms)
{
        struct policy_vm *pv = slot_of(b, vm);
        struct policy_learned learned;

        if (!pv)
                return;
        if (!policy_learned_take(&pv->memory, now_ms, &learned)) {
                pv->memory = (struct policy_vm_memory){0};
                return;
        }
        /* As a restart keeps it, with no time away: the history ages from its last sample. */
        policy_learned_apply(&learned, 0, now_ms, &b->policy.tunables, &pv->memory);
}

struct policy_vm_memory *balancer_memory(struct balancer *b, const struct vm *vm)
{
        struct policy_vm *pv = slot_of(b, vm);

        return pv ? &pv->memory : NULL;
}

const struct policy_vm_memory *balancer_memory_const(const struct balancer *b, const struct vm *vm)
{
        const struct policy_vm *pv = slot_of(b, vm);

        return pv ? &pv->memory : NULL;
}

/* What one VM keeps when a VM of `weight` asks for room (balancer_room_for). */
static uint64_t kept_by(const struct balancer *b, size_t i, uint32_t weight)
{
        const struct vm *vm = b->vms[i];
        const struct vm_settings *s = &vm->settings;
        const struct policy_vm *pv = slot_of(b, vm);
        uint64_t held = vm->obs.assigned_bytes, need;

        if (vm->state == VM_STARTING && vm->start_requested)
                return vm->migration == VM_MIGRATION_IN ? vm->migration_bytes : s->startup_bytes;
        if (!vm_holds_memory(vm))
                return 0;
        if (vm->target_bytes > held) /* a grow in flight may still land */
                held = vm->target_bytes < s->maximum_bytes ? vm->target_bytes : s->maximum_bytes;
        if (!s->dynamic || vm->state != VM_RUNNING || vm->migration != VM_MIGRATION_NONE)
                return held;
        if (s->weight < weight)
                return s->minimum_bytes;
        need = pv ? pv->need_bytes : 0;
        if (need > s->maximum_bytes)
                need = s->maximum_bytes;
        return held > need ? held : need;
}

uint64_t balancer_room_for(const struct balancer *b, uint32_t weight)
{
        uint64_t kept = 0;

        for (size_t i = 0; i < b->n_vms; i++)
                kept = add_sat(kept, kept_by(b, i, weight));
        return kept >= b->host.memory_bytes ? 0 : b->host.memory_bytes - kept;
}

static void emit(struct balancer *b, struct balancer_event ev)
{
        if (b->on_event)
                b->on_event(&ev, b->event_userdata);
}

/* ---- 1. observe ---- */

/*
 * The guest restarted. Like a Hyper-V VM it boots again with its startup
 * memory: the target goes back to it at once, before the new kernel plugs
 * memory asked for its previous boot (never up to it: a VM the host had
 * squeezed below startup stays there until memory is free), and nothing the
 * policy learnt of the previous boot carries over.
 */
static void rebooted(struct balancer *b, struct vm *vm, uint64_t now)
{
        uint64_t target = vm->target_bytes < vm->settings.startup_bytes && vm->target_bytes
                              ? vm->target_bytes
                              : vm->settings.startup_bytes;

        if (vm->state == VM_RUNNING &&
            b->backend->ops->set_target(b->backend, vm, target, now) == 0)
                vm->target_bytes = vm->ideal_bytes = target;
        balancer_reset_vm(b, vm);
        emit(b, (struct balancer_event){.kind = BALANCER_EVENT_REBOOTED,
                                        .vm = vm,
                                        .bytes = target,
                                        .pressure = -1.0,
                                        .time_ms = now});
}

/* STARTED, or ARRIVING for a VM that comes by live migration, holding held bytes. */
static void emit_started(struct balancer *b, struct vm *vm, uint64_t held, uint64_t now)
{
        emit(b, (struct balancer_event){.kind = vm->migration == VM_MIGRATION_IN
                                                    ? BALANCER_EVENT_ARRIVING
                                                    : BALANCER_EVENT_STARTED,
                                        .vm = vm,
                                        .bytes = held,
                                        .reason = REASON_STARTUP,
                                        .pressure = -1.0,
                                        .time_ms = now});
}

/* A start the backend finishes later: STARTED once it runs, START_FAILED if it did not. */
static bool start_still_pending(struct balancer *b, struct vm *vm, uint64_t now)
{
        int r = b->backend->ops->start_result(b->backend, vm, vm->refusal, sizeof(vm->refusal));

        if (r == 0)
                return true; /* it holds its startup size meanwhile */
        vm->start_pending = false;
        if (r > 0) {
                emit_started(b, vm, vm->target_bytes, now);
                return false;
        }
        bool stopping = vm->state == VM_STOPPING;
        vm->state = VM_OFF;
        vm->obs = (struct vm_observation){0};
        vm->target_bytes = vm->ideal_bytes = 0;
        if (!stopping)
                emit(b, (struct balancer_event){.kind = BALANCER_EVENT_START_FAILED,
                                                .vm = vm,
                                                .message = vm->refusal,
                                                .pressure = -1.0,
                                                .time_ms = now});
        return true;
}

static void observe_one(struct balancer *b, struct vm *vm, uint64_t now)
{
        struct vm_observation obs = {0};
        uint64_t before = vm->obs.assigned_bytes;

        if (!vm_holds_memory(vm))
                return;
        if (vm->start_pending && start_still_pending(b, vm, now))
                return;
        if (b->backend->ops->observe(b->backend, vm, now, &obs) < 0 || !obs.alive) {
                bool stopping = vm->state == VM_STOPPING;
                vm->state = stopping ? VM_OFF : VM_CRASHED;
                vm->obs = (struct vm_observation){0};
                vm->target_bytes = vm->ideal_bytes = 0;
                vm->counters.current_pressure = -1.0;
                if (!stopping) {
                        b->counters.crashes++;
                        emit(b, (struct balancer_event){.kind = BALANCER_EVENT_CRASHED,
                                                        .vm = vm,
                                                        .bytes = before,
                                                        .pressure = -1.0,
                                                        .time_ms = now});
                }
                return;
        }
        /* Never more than the VM's maximum: a backend that says otherwise is clamped. */
        if (obs.assigned_bytes > vm->settings.maximum_bytes && vm->settings.dynamic)
                obs.assigned_bytes = vm->settings.maximum_bytes;
        vm->obs = obs;
        if (obs.rebooted)
                rebooted(b, vm, now);
        if (obs.assigned_bytes > before) {
                vm->counters.added_bytes += obs.assigned_bytes - before;
                b->counters.added_bytes += obs.assigned_bytes - before;
        } else if (obs.assigned_bytes < before) {
                vm->counters.removed_bytes += before - obs.assigned_bytes;
                b->counters.removed_bytes += before - obs.assigned_bytes;
        }
        vm_counters_pressure(&vm->counters, vm_pressure_percent(vm), now);
}

/* ---- 2. decide ---- */

/* The VM's size is fixed at held for this decision: static, as the policy sees it. */
static void pin(struct policy_vm *pv, uint64_t held)
{
        pv->settings.dynamic = false;
        pv->settings.startup_bytes = pv->settings.minimum_bytes = pv->settings.maximum_bytes = held;
}

/* The policy's inputs for one VM; the outputs are all written by policy_decide(). */
static void fill_policy_vm(struct policy_vm *pv, struct vm *vm)
{
        pv->name = vm->name;
        pv->settings = vm->settings;
        pv->assigned_bytes = vm->obs.assigned_bytes;
        pv->requested_bytes = vm->target_bytes;
        pv->may_hold_bytes = vm->obs.may_hold_bytes;
        pv->demand_known = vm->obs.demand_known;
        pv->demand_bytes = vm->obs.demand_bytes;
        pv->demand_time_ms = vm->obs.demand_time_ms;
        pv->stall_known = vm->obs.stall_known;
        pv->stall_fraction = vm->obs.stall_fraction;
        pv->stall_urgent = vm->obs.stall_urgent;
        pv->cache_evicted_bytes = vm->obs.cache_evicted_bytes;
        pv->swap_known = vm->obs.swap_known;
        pv->swap_bytes = vm->obs.swap_bytes;
        pv->external_bytes = 0;
        switch (vm->state) {
        case VM_RUNNING:
                pv->phase = POLICY_PHASE_RUNNING;
                if (vm->migration != VM_MIGRATION_NONE) /* held where it is until it has moved */
                        pin(pv, vm->migration_bytes ? vm->migration_bytes : vm->obs.assigned_bytes);
                break;
        case VM_STOPPING:
                /* A stopping VM keeps what it holds until it is gone. */
                pv->phase = POLICY_PHASE_RUNNING;
                pin(pv, size_round_up(vm->obs.assigned_bytes, vm->settings.block_bytes));
                break;
        case VM_STARTING:
                pv->phase = vm->start_requested ? POLICY_PHASE_STARTING : POLICY_PHASE_OFF;
                if (vm->migration == VM_MIGRATION_IN) /* admitted with what it holds */
                        pin(pv, vm->migration_bytes);
                break;
        default:
                pv->phase = POLICY_PHASE_OFF;
                break;
        }
}

/*
 * No reply to apply (a request in flight, a process waiting to be
 * restarted) keeps every target; a failure is counted. Messages come once.
 */
static void run_external(struct balancer *b, uint64_t now)
{
        char err[320] = "";
        int r = policy_exec_decide(b->exec, &b->host, b->pv, b->n_vms, now, err, sizeof(err));

        if (r == 0)
                return;
        for (size_t i = 0; i < b->n_vms; i++)
                b->pv[i].external_bytes = 0; /* keep previous targets */
        if (r != -EINPROGRESS && r != -EAGAIN)
                b->counters.policy_refusals++;
        if (err[0])
                emit(b, (struct balancer_event){.kind = BALANCER_EVENT_POLICY,
                                                .message = err,
                                                .pressure = -1.0,
                                                .time_ms = now});
}

/* ---- 3. apply ---- */

static void apply_start(struct balancer *b, struct vm *vm, const struct policy_vm *pv, uint64_t now)
{
        char err[160] = "";

        int r;

        switch (pv->admission) {
        case ADMISSION_ADMIT:
                vm->start_requested = false;
                if ((r = b->backend->ops->start(b->backend, vm, now, err, sizeof(err))) < 0) {
                        vm->state = VM_OFF;
                        snprintf(vm->refusal, sizeof(vm->refusal), "%s", err);
                        emit(b, (struct balancer_event){.kind = BALANCER_EVENT_START_FAILED,
                                                        .vm = vm,
                                                        .message = vm->refusal,
                                                        .pressure = -1.0,
                                                        .time_ms = now});
                        return;
                }
                /* its startup size, or what an arriving VM holds (pinned) */
                uint64_t held = pv->settings.startup_bytes;
                vm->state = VM_RUNNING;
                vm->target_bytes = vm->ideal_bytes = held;
                vm->obs = (struct vm_observation){.alive = true, .assigned_bytes = held};
                b->pv[vm->balancer_slot].memory = (struct policy_vm_memory){0};
                vm_counters_reset(&vm->counters);
                vm->start_pending = r == BACKEND_START_PENDING && b->backend->ops->start_result;
                if (!vm->start_pending) /* else STARTED comes when the backend says it runs */
                        emit_started(b, vm, held, now);
                return;
        case ADMISSION_REFUSE: {
                char need[32], have[32];
                if (b->refused_starts_wait && vm->refusal[0])
                        return; /* still waiting: said once */
                uint64_t floors = b->last_summary.sum_floor_bytes;
                uint64_t mem = b->host.memory_bytes;
                snprintf(vm->refusal, sizeof(vm->refusal),
                         "not enough memory: startup %s does not fit (%s free for it even with "
                         "every VM at its minimum)",
                         size_format(vm->settings.startup_bytes, need, sizeof(need)),
                         size_format(mem > floors ? mem - floors : 0, have, sizeof(have)));
                if (b->refused_starts_wait)
                        return;
                vm->start_requested = false;
                vm->state = VM_OFF;
                b->counters.refused_starts++;
                emit(b, (struct balancer_event){.kind = BALANCER_EVENT_REFUSED,
                                                .vm = vm,
                                                .message = vm->refusal,
                                                .pressure = -1.0,
                                                .time_ms = now});
                return;
        }
        default:
                return;
        }
}

/* Issue one resize if the target changed; grows only in the second pass. */
static void apply_resize(struct balancer *b, struct vm *vm, const struct policy_vm *pv, bool grows,
                         uint64_t now)
{
        uint64_t target = pv->target_bytes, assigned = vm->obs.assigned_bytes;

        if (vm->state != VM_RUNNING || vm->start_pending || vm->migration != VM_MIGRATION_NONE ||
            target == vm->target_bytes)
                return;
        if (grows != (target > assigned))
                return;
        if (b->backend->ops->set_target(b->backend, vm, target, now) < 0)
                return;
        vm->target_bytes = target;
        if (target == assigned)
                return; /* a pending change cancelled: no operation */
        bool add = target > assigned;
        uint64_t bytes = add ? target - assigned : assigned - target;
        if (add) {
                vm->counters.add_operations++;
                b->counters.add_operations++;
        } else {
                vm->counters.remove_operations++;
                b->counters.remove_operations++;
        }
        emit(b, (struct balancer_event){.kind = add ? BALANCER_EVENT_ADD : BALANCER_EVENT_REMOVE,
                                        .vm = vm,
                                        .bytes = bytes,
                                        .from_bytes = assigned,
                                        .to_bytes = target,
                                        .reason = pv->reason,
                                        .pressure = vm_pressure_percent(vm),
                                        .time_ms = now});
}

static void update_host_counters(struct balancer *b)
{
        uint64_t held = 0, slack = 0, promised = 0, demand = 0, assigned_known = 0;
        double avg_sum = 0.0;
        size_t avg_n = 0;

        for (size_t i = 0; i < b->n_vms; i++) {
                const struct vm *vm = b->vms[i];
                const struct policy_vm *pv = &b->pv[i];
                if (vm->state == VM_STARTING && vm->start_requested) /* waits in admission */
                        promised = add_sat(promised, kept_by(b, i, 0));
                if (!vm_holds_memory(vm))
                        continue;
                held += vm->obs.assigned_bytes;
                if (vm->settings.dynamic && vm->obs.assigned_bytes > pv->need_bytes &&
                    pv->phase == POLICY_PHASE_RUNNING)
                        slack += vm->obs.assigned_bytes - pv->need_bytes;
                if (vm->obs.demand_known) {
                        demand += vm->obs.demand_bytes;
                        assigned_known += vm->obs.assigned_bytes;
                }
                if (vm->counters.average_pressure >= 0.0) {
                        avg_sum += vm->counters.average_pressure;
                        avg_n++;
                }
        }
        struct balancer_counters *c = &b->counters;
        c->available_bytes = held >= b->host.memory_bytes ? 0 : b->host.memory_bytes - held;
        /* memory promised to VMs waiting in admission is not there to hand out (nor to offer a
         * peer's VM: the relief rule reads this figure) */
        uint64_t room = add_sat(c->available_bytes, slack);
        c->available_for_balancing_bytes = room > promised ? room - promised : 0;
        c->current_pressure =
            assigned_known ? (double)demand * 100.0 / (double)assigned_known : -1.0;
        c->average_pressure = avg_n ? avg_sum / (double)avg_n : -1.0;
}

int balancer_tick(struct balancer *b, uint64_t now)
{
        for (size_t i = 0; i < b->n_vms; i++)
                observe_one(b, b->vms[i], now);
        for (size_t i = 0; i < b->n_vms; i++)
                fill_policy_vm(&b->pv[i], b->vms[i]);
        if (b->exec)
                run_external(b, now);
        int r = policy_decide(&b->policy, &b->host, b->pv, b->n_vms, now, &b->scratch,
                              &b->last_summary);
        if (r < 0)
                return r;
        if (b->last_summary.refused)
                b->counters.policy_refusals++;
        for (size_t i = 0; i < b->n_vms; i++) {
                struct vm *vm = b->vms[i];
                const struct policy_vm *pv = &b->pv[i];
                if (vm->state == VM_RUNNING) {
                        vm->ideal_bytes = pv->ideal_bytes;
                        vm->reason =
                            vm->migration != VM_MIGRATION_NONE ? REASON_MIGRATING : pv->reason;
                }
        }
        for (int pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < b->n_vms; i++)
                        apply_resize(b, b->vms[i], &b->pv[i], pass == 1, now);
        for (size_t i = 0; i < b->n_vms; i++) {
                struct vm *vm = b->vms[i];
                const struct policy_vm *pv = &b->pv[i];
                /* the loan in the target asked of the backend: none while a size is held */
                vm->lent_bytes = vm->state == VM_RUNNING && vm->migration == VM_MIGRATION_NONE &&
                                         vm->target_bytes == pv->target_bytes
                                     ? pv->lent_bytes
                                     : 0;
        }
        for (size_t i = 0; i < b->n_vms; i++)
                if (b->vms[i]->state == VM_STARTING && b->vms[i]->start_requested)
                        apply_start(b, b->vms[i], &b->pv[i], now);
        update_host_counters(b);
        return 0;
}
