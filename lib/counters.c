/*
 * counters: per-VM pressure statistics, and the two counter sets as tables
 * that every reader shares. Byte and operation counters are plain sums kept
 * by the balancer loop; see counters.h and docs/counters.md.
 */
#include "counters.h"

#include <math.h>

#include "vm.h"

void vm_counters_reset(struct vm_counters *c)
{
        *c = (struct vm_counters){
            .current_pressure = -1.0,
            .average_pressure = -1.0,
            .minimum_pressure = -1.0,
            .maximum_pressure = -1.0,
        };
}

void vm_counters_pressure(struct vm_counters *c, double pressure, uint64_t now_ms)
{
        if (pressure < 0.0) {
                c->current_pressure = -1.0;
                return;
        }
        if (c->average_pressure < 0.0) {
                c->average_pressure = pressure;
        } else if (now_ms > c->last_update_ms) {
                /* Exponential average with a one-minute time constant. */
                uint64_t dt = now_ms - c->last_update_ms;
                if (dt != c->alpha_dt_ms) { /* the cycle rarely changes: keep its weight */
                        c->alpha_dt_ms = dt;
                        c->alpha = 1.0 - exp(-(double)dt / (double)COUNTERS_AVERAGE_WINDOW_MS);
                }
                c->average_pressure += c->alpha * (pressure - c->average_pressure);
        }
        if (c->minimum_pressure < 0.0 || pressure < c->minimum_pressure)
                c->minimum_pressure = pressure;
        if (pressure > c->maximum_pressure)
                c->maximum_pressure = pressure;
        c->current_pressure = pressure;
        c->last_update_ms = now_ms;
}

/* ---- the two sets as tables ---- */

const struct counters_def counters_balancer_defs[COUNTERS_BALANCER_N] = {
    {"Available Memory", "available_memory_bytes", "available_memory_bytes", COUNTERS_BYTES, false,
     "Memory for VMs that no VM holds, as of the last balancing cycle."},
    {"Available Memory For Balancing", "available_memory_for_balancing_bytes",
     "available_memory_for_balancing_bytes", COUNTERS_BYTES, false,
     "Available memory plus what running dynamic VMs hold above their need."},
    {"Average Pressure", "average_pressure_percent", "average_pressure_ratio", COUNTERS_PERCENT,
     false, "Mean of the running VMs' one-minute average pressure."},
    {"System Current Pressure", "system_current_pressure_percent", "system_current_pressure_ratio",
     COUNTERS_PERCENT, false,
     "Sum of demand over sum of assigned memory of the VMs whose demand is known."},
    {"Added Memory", "added_memory_bytes", "added_memory_bytes_total", COUNTERS_BYTES, true,
     "Memory added to VMs since dynmemd started, as observed."},
    {"Removed Memory", "removed_memory_bytes", "removed_memory_bytes_total", COUNTERS_BYTES, true,
     "Memory removed from VMs since dynmemd started, as observed."},
    {"Memory Add Operations", "memory_add_operations", "memory_add_operations_total",
     COUNTERS_OPERATIONS, true, "Grow requests issued since dynmemd started."},
    {"Memory Remove Operations", "memory_remove_operations", "memory_remove_operations_total",
     COUNTERS_OPERATIONS, true, "Shrink requests issued since dynmemd started."},
};

const struct counters_def counters_vm_defs[COUNTERS_VM_N] = {
    {"Added Memory", "added_memory_bytes", "added_memory_bytes_total", COUNTERS_BYTES, true,
     "Memory added to the VM since it last started, as observed."},
    {"Removed Memory", "removed_memory_bytes", "removed_memory_bytes_total", COUNTERS_BYTES, true,
     "Memory removed from the VM since it last started, as observed."},
    {"Memory Add Operations", "memory_add_operations", "memory_add_operations_total",
     COUNTERS_OPERATIONS, true, "Grow requests issued for the VM since it last started."},
    {"Memory Remove Operations", "memory_remove_operations", "memory_remove_operations_total",
     COUNTERS_OPERATIONS, true, "Shrink requests issued for the VM since it last started."},
    {"Physical Memory", "physical_memory_bytes", "physical_memory_bytes", COUNTERS_BYTES, false,
     "Memory the VM holds now (assigned)."},
    {"Guest Visible Physical Memory", "guest_visible_physical_memory_bytes",
     "guest_visible_physical_memory_bytes", COUNTERS_BYTES, false,
     "Memory the guest sees (its MemTotal), as last reported."},
    {"Current Pressure", "current_pressure_percent", "current_pressure_ratio", COUNTERS_PERCENT,
     false, "Demand over assigned memory at the last cycle."},
    {"Average Pressure", "average_pressure_percent", "average_pressure_ratio", COUNTERS_PERCENT,
     false, "Exponential average of pressure, one-minute time constant."},
    {"Minimum Pressure", "minimum_pressure_percent", "minimum_pressure_ratio", COUNTERS_PERCENT,
     false, "Lowest pressure since the VM last started."},
    {"Maximum Pressure", "maximum_pressure_percent", "maximum_pressure_ratio", COUNTERS_PERCENT,
     false, "Highest pressure since the VM last started."},
    {"Guest Available Memory", "guest_available_memory_bytes", "guest_available_memory_bytes",
     COUNTERS_BYTES, false, "Memory the guest could use without swapping (MemAvailable)."},
    {"Lent Memory", "lent_memory_bytes", "lent_memory_bytes", COUNTERS_BYTES, false,
     "Memory of the VM's target lent above its want as page cache (0 when nothing is lent)."},
};

static struct counters_value count(uint64_t n)
{
        return (struct counters_value){.known = true, .n = n};
}

static struct counters_value maybe_bytes(bool known, uint64_t n)
{
        return (struct counters_value){.known = known, .n = known ? n : 0};
}

static struct counters_value percent(bool known, double p)
{
        return (struct counters_value){.known = known && p >= 0.0, .percent = p >= 0.0 ? p : 0.0};
}

void counters_balancer_read(const struct balancer_counters *c,
                            struct counters_value ret[COUNTERS_BALANCER_N])
{
        ret[0] = count(c->available_bytes);
        ret[1] = count(c->available_for_balancing_bytes);
        ret[2] = percent(true, c->average_pressure);
        ret[3] = percent(true, c->current_pressure);
        ret[4] = count(c->added_bytes);
        ret[5] = count(c->removed_bytes);
        ret[6] = count(c->add_operations);
        ret[7] = count(c->remove_operations);
}

void counters_vm_read(const struct vm *vm, struct counters_value ret[COUNTERS_VM_N])
{
        const struct vm_counters *c = &vm->counters;
        const struct vm_observation *o = &vm->obs;
        bool holds = vm_holds_memory(vm);

        ret[0] = count(c->added_bytes);
        ret[1] = count(c->removed_bytes);
        ret[2] = count(c->add_operations);
        ret[3] = count(c->remove_operations);
        ret[4] = count(holds ? o->assigned_bytes : 0);
        ret[5] = maybe_bytes(holds && o->guest_visible_known, o->guest_visible_bytes);
        ret[6] = percent(holds, c->current_pressure);
        ret[7] = percent(holds, c->average_pressure);
        ret[8] = percent(holds, c->minimum_pressure);
        ret[9] = percent(holds, c->maximum_pressure);
        ret[10] = maybe_bytes(holds && o->guest_available_known, o->guest_available_bytes);
        ret[11] = count(holds ? vm->lent_bytes : 0);
}
