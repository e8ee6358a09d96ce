/*
 * inventory: the registry kept in line with a backend that owns its VMs.
 * See inventory.h.
 */
#include "inventory.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "attach.h"
#include "daemon.h"
#include "log.h"
#include "mono.h"
#include "units.h"

/*
 * Started by someone else, or found running once the backend answered after
 * dynmemd started: running from now on, holding what the backend says. In
 * the second case running.json may have kept what was learned of it
 * (attach_claim()).
 */
static void adopt(struct daemon *d, struct registry_entry *e, const struct backend_vm_info *in)
{
        struct vm *vm = &e->vm;
        uint64_t held = in->assigned_bytes ? in->assigned_bytes : in->settings.startup_bytes;
        char a[32];

        vm->state = VM_RUNNING;
        vm->start_requested = false;
        vm->start_outside = false;
        vm->obs = (struct vm_observation){.alive = true, .assigned_bytes = held};
        vm->target_bytes = vm->ideal_bytes = held;
        vm->refusal[0] = '\0';
        vm->migration = VM_MIGRATION_NONE; /* migration_follow() says what it is */
        vm_counters_reset(&vm->counters);
        balancer_reset_vm(&d->bal, vm);
        if (attach_claim(d, e, daemon_now(d)))
                return;
        log_msg(LOG_INFO, "%s: running (started by %s), holding %s%s", vm->name,
                d->backend->ops->owner ? d->backend->ops->owner(d->backend) : "its owner",
                size_format(held, a, sizeof(a)), in->balanced ? "" : "; static: never resized");
}

/* Stopped by someone else (or by dynmem stop, now done), or migrated away. */
static void release(struct daemon *d, struct registry_entry *e, const struct backend_vm_info *in)
{
        struct vm *vm = &e->vm;
        char a[32];

        if (migration_gone(d, e, in->migrated_away))
                ; /* left, or its arrival failed: said */
        else if (vm->state == VM_RUNNING)
                log_msg(LOG_INFO, "%s: shut off outside dynmemd; its %s are free again", vm->name,
                        size_format(vm->obs.assigned_bytes, a, sizeof(a)));
        else
                log_msg(LOG_INFO, "%s: stopped", vm->name);
        vm->state = VM_OFF;
        vm->obs = (struct vm_observation){0};
        vm->target_bytes = vm->ideal_bytes = 0;
        vm->counters.current_pressure = -1.0;
}

static void follow_state(struct daemon *d, struct registry_entry *e,
                         const struct backend_vm_info *in, bool may_adopt)
{
        struct vm *vm = &e->vm;
        bool waiting = vm->state == VM_STARTING && vm->start_requested;

        switch (in->run) {
        case BACKEND_VM_RUNNING:
                if (may_adopt && (vm->state == VM_OFF || vm->state == VM_CRASHED ||
                                  (waiting && !vm->start_outside)))
                        adopt(d, e, in);
                break;
        case BACKEND_VM_OFF:
                if (vm_holds_memory(vm))
                        release(d, e, in);
                break;
        case BACKEND_VM_CRASHED: /* the balancer sees it dead and counts the crash */
                break;
        }
        migration_follow(d, e, in);
}

static void follow_settings(struct registry_entry *e, const struct backend_vm_info *in)
{
        struct vm *vm = &e->vm;

        if (settings_diff(&vm->settings, &in->settings)) {
                if (vm->settings.dynamic != in->settings.dynamic)
                        log_msg(LOG_INFO, "%s: %s", vm->name,
                                in->settings.dynamic ? "dynamic memory on" : "static");
                vm->settings = in->settings;
        }
        snprintf(e->problem, sizeof(e->problem), "%s", in->problem);
        snprintf(e->uuid, sizeof(e->uuid), "%s", in->uuid);
}

/* A VM the backend lists for the first time: its entry, or NULL (out of memory). */
static struct registry_entry *add(struct daemon *d, const struct backend_vm_info *in)
{
        struct registry_entry *e;

        if (registry_add(&d->reg, in->name, &e) < 0) {
                log_msg(LOG_ERR, "%s: cannot list the VM: out of memory", in->name);
                return NULL;
        }
        e->origin = REGISTRY_BACKEND;
        e->configured = true;
        e->seen = true;
        e->vm.settings = in->settings;
        snprintf(e->problem, sizeof(e->problem), "%s", in->problem);
        snprintf(e->uuid, sizeof(e->uuid), "%s", in->uuid);
        log_msg(LOG_INFO, "%s: found (%s)", in->name,
                in->balanced     ? "dynamic memory"
                : in->problem[0] ? "not balanced"
                                 : "static");
        return e;
}

static bool drop_unseen(struct daemon *d)
{
        bool changed = false;

        for (size_t i = d->reg.n; i-- > 0;) {
                struct registry_entry *e = d->reg.entries[i];
                if (e->origin != REGISTRY_BACKEND || e->seen)
                        continue;
                if (vm_holds_memory(&e->vm))
                        /* a domain that left (the backend lists one shut off during its
                         * migration once more, as off), or an arrival that never came */
                        migration_gone(d, e, true);
                log_msg(LOG_INFO, "%s: no longer defined", e->vm.name);
                registry_remove(&d->reg, e, d->backend);
                changed = true;
        }
        return changed;
}

/* A start its owner makes and asks admission for: refused once it waited too long. */
static void check_admissions(struct daemon *d)
{
        uint64_t now = mono_ms();

        for (size_t i = 0; i < d->reg.n; i++) {
                struct registry_entry *e = d->reg.entries[i];
                struct vm *vm = &e->vm;
                if (!e->admit_deadline_ms)
                        continue;
                if (vm->state != VM_STARTING || !vm->start_outside) {
                        e->admit_deadline_ms = 0;
                        continue;
                }
                if (now < e->admit_deadline_ms)
                        continue;
                e->admit_deadline_ms = 0;
                vm->state = VM_OFF;
                vm->start_requested = vm->start_outside = false;
                e->start_errno = ENOSPC;
                snprintf(vm->refusal, sizeof(vm->refusal),
                         "not admitted within %d s: the memory %s was not freed in time",
                         INVENTORY_ADMIT_WAIT_MS / 1000,
                         vm->migration == VM_MIGRATION_IN ? "it holds" : "its startup needs");
                if (vm->migration == VM_MIGRATION_IN) {
                        migration_refused_late(d, e);
                } else {
                        d->bal.counters.refused_starts++;
                        log_msg(LOG_NOTICE, "%s: start refused: %s", vm->name, vm->refusal);
                }
                registry_touch(e);
        }
}

bool inventory_listed(struct daemon *d)
{
        char why[8];

        return !d->backend->ops->inventory || !d->backend->ops->unreachable ||
               !d->backend->ops->unreachable(d->backend, why, sizeof(why));
}

void inventory_sync(struct daemon *d, bool may_adopt)
{
        const struct backend_vm_info *list = NULL;
        size_t n = 0;
        bool changed = false;

        if (!d->backend->ops->inventory)
                return;
        uint64_t gen = d->backend->ops->inventory(d->backend, daemon_now(d), &list, &n);
        check_admissions(d);
        if (gen == d->inventory_generation && (d->inventory_adopted || !may_adopt)) {
                if (may_adopt && inventory_listed(d))
                        attach_owner_listed(d);
                return;
        }
        for (size_t i = 0; i < d->reg.n; i++)
                d->reg.entries[i]->seen = false;
        for (size_t i = 0; i < n; i++)
                if (!registry_find(&d->reg, list[i].name) && add(d, &list[i]))
                        changed = true;
        /* the new ones are the balancer's before any is taken in (its policy memory) */
        if (changed)
                daemon_vms_changed(d);
        changed = false;
        for (size_t i = 0; i < n; i++) {
                struct registry_entry *e = registry_find(&d->reg, list[i].name);
                if (!e || e->origin != REGISTRY_BACKEND)
                        continue;
                e->seen = true;
                follow_settings(e, &list[i]);
                follow_state(d, e, &list[i], may_adopt);
                registry_touch(e);
        }
        if (drop_unseen(d))
                daemon_vms_changed(d);
        d->inventory_generation = gen;
        d->inventory_adopted = may_adopt;
        /* what running.json kept for VMs not found running by now is dropped */
        if (may_adopt && inventory_listed(d))
                attach_owner_listed(d);
}
