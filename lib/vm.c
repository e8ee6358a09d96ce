/*
 * vm: names of states and statuses, and the derived numbers operators read
 * (pressure, memory status). See vm.h.
 */
#include "vm.h"

#include <errno.h>
#include <string.h>

static const char *const state_names[] = {
    [VM_OFF] = "off",           [VM_STARTING] = "starting", [VM_RUNNING] = "running",
    [VM_STOPPING] = "stopping", [VM_CRASHED] = "crashed",
};

const char *vm_state_name(enum vm_state s)
{
        return (size_t)s < sizeof(state_names) / sizeof(state_names[0]) ? state_names[s]
                                                                        : "unknown";
}

int vm_state_parse(const char *text, enum vm_state *ret)
{
        for (size_t i = 0; i < sizeof(state_names) / sizeof(state_names[0]); i++) {
                if (strcmp(text, state_names[i]) == 0) {
                        *ret = (enum vm_state)i;
                        return 0;
                }
        }
        return -EINVAL;
}

const char *vm_migration_name(enum vm_migration m)
{
        static const char *const names[] = {
            [VM_MIGRATION_NONE] = NULL,
            [VM_MIGRATION_OUT] = "outgoing",
            [VM_MIGRATION_SWITCHOVER] = "switchover",
            [VM_MIGRATION_IN] = "incoming",
        };

        return (size_t)m < sizeof(names) / sizeof(names[0]) ? names[m] : NULL;
}

bool vm_runs_here(const struct vm *vm)
{
        return vm_holds_memory(vm) && vm->migration != VM_MIGRATION_IN &&
               vm->migration != VM_MIGRATION_SWITCHOVER;
}

static const char *const status_names[] = {
    [VM_STATUS_UNKNOWN] = "unknown", [VM_STATUS_OK] = "ok",     [VM_STATUS_LOW] = "low",
    [VM_STATUS_WARNING] = "warning", [VM_STATUS_NONE] = "none",
};

const char *vm_status_name(enum vm_status s)
{
        return (size_t)s < sizeof(status_names) / sizeof(status_names[0]) ? status_names[s]
                                                                          : "unknown";
}

bool vm_holds_memory(const struct vm *vm)
{
        return vm->state == VM_RUNNING || vm->state == VM_STOPPING;
}

double vm_pressure_percent(const struct vm *vm)
{
        if (!vm_holds_memory(vm) || !vm->obs.demand_known || vm->obs.assigned_bytes == 0)
                return -1.0;
        return (double)vm->obs.demand_bytes * 100.0 / (double)vm->obs.assigned_bytes;
}

enum vm_status vm_status(const struct vm *vm)
{
        if (!vm_holds_memory(vm))
                return VM_STATUS_NONE;
        if (!vm->obs.demand_known)
                return VM_STATUS_UNKNOWN;
        uint64_t demand = vm->obs.demand_bytes, assigned = vm->obs.assigned_bytes;
        if (assigned < demand)
                return VM_STATUS_WARNING;
        /* The target is demand plus buffer, limited by the maximum. */
        long double target = (long double)demand * (100.0L + vm->settings.buffer_percent) / 100.0L;
        if (target > (long double)vm->settings.maximum_bytes)
                target = (long double)vm->settings.maximum_bytes;
        /* One block of slack: targets are rounded to blocks. */
        if ((long double)assigned + (long double)vm->settings.block_bytes < target)
                return VM_STATUS_LOW;
        return VM_STATUS_OK;
}
