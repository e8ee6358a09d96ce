/*
 * policy_smooth: stage 3 hysteresis of the dynmem kind, for one VM: hold
 * small changes, delay and step shrinks, take probing shrinks in fine steps,
 * and keep resizes already in flight (docs/policy.md).
 */
#include "policy_int.h"

/*
 * What "keep the current size" means while a resize is in flight: the
 * request stands if it moves toward the ideal without passing it; else the
 * VM stays where it is.
 */
static uint64_t hold_target(const struct policy_vm *vm)
{
        uint64_t a = vm->assigned_bytes, r = vm->requested_bytes, ideal = vm->ideal_bytes;
        uint64_t lo = a < ideal ? a : ideal, hi = a < ideal ? ideal : a;
        uint64_t keep = r && r >= lo && r <= hi ? r : a;

        /* Never hold more than the maximum, whatever the backend reports. */
        return keep > vm->settings.maximum_bytes ? vm->settings.maximum_bytes : keep;
}

static void hold(struct policy_vm *vm)
{
        vm->target_bytes = hold_target(vm);
        vm->reason = REASON_HOLD;
}

/*
 * One probing shrink. Above the fine zone (probe_fine_percent over the
 * reported demand) the demand figure itself says the memory is surplus, so
 * the probe goes there in one step; inside it, steps of probe_step_permille
 * of the VM, small enough that the first stall comes before shortness.
 */
static void probe_step(struct policy_vm *vm, const struct policy_tunables *t)
{
        uint64_t a = vm->assigned_bytes, ideal = vm->ideal_bytes, block = vm->settings.block_bytes;
        uint64_t zone = block_up(
            add_sat(scale_up_permille(vm->memory.probe_demand_bytes, 10ull * t->probe_fine_percent),
                    vm->memory.probe_cover_bytes),
            block);
        uint64_t step = scale_permille(a, t->probe_step_permille);

        if (step < block)
                step = block;
        if (a > zone + step) {
                vm->target_bytes = ideal > zone ? ideal : zone;
                return;
        }
        if (a - ideal < step) {
                hold(vm);
                return;
        }
        vm->target_bytes = block_down(a - step, block);
}

/*
 * The band a VM may drift in without a resize: it is grown once less than
 * grow_band_percent of its headroom is left above its need, and shrunk once
 * its surplus over its want exceeds shrink_band_percent of that headroom
 * (and the deadband). A VM whose headroom is large because its rises are
 * large is thus resized in large steps, rarely; a steady one in small ones.
 */
static uint64_t shrink_edge(const struct policy_vm *vm, const struct policy_tunables *t,
                            uint64_t db)
{
        uint64_t room = vm->want_bytes > vm->need_bytes ? vm->want_bytes - vm->need_bytes : 0;
        uint64_t band = scale_permille(room, 10ull * t->shrink_band_percent);

        return add_sat(vm->want_bytes, band > db ? band : db);
}

/*
 * Hysteresis of the dynmem kind: grow once the VM is below its grow edge
 * (at once when it is below its need, grows for a stall, has just said,
 * with stall_urgent, that it stalls, or is lent cache beyond the deadband), but never by less than
 * the deadband unless below its need; shrink only once it is above its shrink edge and the surplus
 * has lasted shrink_delay_ms, and then by at most shrink_step_percent of the VM per decision; a
 * probe shrinks by probing steps whatever else holds. Under scarcity shrinks skip the delay, the
 * band and the steps (the memory is wanted elsewhere) but still ignore changes within the deadband;
 * when someone waits for memory
 * (`release`), the holds are released (enum policy_release).
 */
void policy_smooth_one(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t,
                       bool scarcity, enum policy_release release)
{
        struct policy_vm_memory *m = &vm->memory;
        uint64_t a = vm->assigned_bytes, ideal = vm->ideal_bytes, db = deadband(t, a);

        /* A shrink starts beyond the shrink edge and, once started, goes down to the want. */
        if (a > (m->surplus ? add_sat(vm->want_bytes, db) : shrink_edge(vm, t, db))) {
                if (!m->surplus) {
                        m->surplus = true;
                        m->surplus_since_ms = now;
                }
        } else {
                m->surplus = false;
        }
        vm->target_bytes = ideal;
        if (ideal >= a) {
                /*
                 * The buffer is gone when the VM is below its need, grows for a
                 * stall, or has just said that it stalls now (stall_urgent): the
                 * grow is due. Otherwise it waits for the grow edge and the deadband.
                 */
                bool due = vm->need_bytes > a || vm->reason == REASON_STALL ||
                           (vm->stall_urgent && stalling(vm, t)) ||
                           (vm->reason == REASON_LENT && ideal - a >= db);
                /* Under scarcity the ideal is the VM's share: no band below it. */
                uint64_t edge = scarcity ? ideal : grow_edge(vm, ideal, t);
                if (!due && (a >= edge || ideal - a < db))
                        hold(vm);
                return;
        }
        /*
         * A probe's want is a test, never a share: it is taken one probing step
         * at a time, also when memory is awaited or scarce (the probe stops at
         * the next decision then), never all at once.
         */
        if (vm->reason == REASON_PROBE) {
                probe_step(vm, t);
                return;
        }
        if (release != RELEASE_NONE) {
                /* A change inside the deadband frees too little for a VM that only wants headroom.
                 */
                if (release == RELEASE_LARGE && a - ideal < db)
                        hold(vm);
                return;
        }
        if (a - ideal < db || (!scarcity && (!m->surplus || ms_since(now, m->surplus_since_ms) <
                                                                t->shrink_delay_ms))) {
                hold(vm);
                return;
        }
        if (scarcity)
                return;
        uint64_t step = scale_permille(a, 10ull * t->shrink_step_percent);
        if (step < db)
                step = db;
        /* Steps leave no remainder smaller than the deadband behind. */
        if (a - ideal > add_sat(step, db))
                vm->target_bytes = block_up(a - step, vm->settings.block_bytes);
}
