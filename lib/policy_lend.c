/*
 * policy_lend: page cache lent from memory no VM wants (docs/policy.md, "Cache
 * lent from idle memory"); opt-in, lend_hold_ms is 0 by default, and a VM whose
 * `lend` setting is off never borrows (a loan ends at the next decision). A guest whose
 * page cache is evicted under a stall, or fills its last free memory (the
 * estimate's evicted_total_bytes, docs/demand.md), would have kept that cache
 * with as much more memory. Its demand figure does not count such cache (a file
 * read once is not a working set), so the want does not grow; the loan is the
 * cache lost, summed, on top of the want, and the VM is given it only from
 * memory left once every VM has its want: the last level of the allocation,
 * shared by weight, cut first whenever anyone needs the memory. A loan cut is
 * cut for good (what the VM could not keep is gone), and a loan ends
 * lend_hold_ms after the last loss. Once the grant is done, lent_bytes says
 * what of the VM's target is the loan (what operators see as `lent`).
 */
#include "policy_int.h"

void policy_lend_one(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t)
{
        struct policy_vm_memory *m = &vm->memory;
        const struct vm_settings *s = &vm->settings;

        vm->lend_bytes = 0;
        if (!t->lend_hold_ms || !s->lend) {
                m->lend_bytes = 0;
                return;
        }
        if (vm->cache_evicted_bytes) {
                m->lend_bytes = add_sat(m->lend_bytes, vm->cache_evicted_bytes);
                m->lend_ms = now;
        } else if (m->lend_bytes && ms_since(now, m->lend_ms) >= t->lend_hold_ms) {
                m->lend_bytes = 0;
        }
        /* Never more than could be given: the loan above the want stays within the maximum. */
        if (m->lend_bytes > s->maximum_bytes)
                m->lend_bytes = s->maximum_bytes;
        if (m->lend_bytes)
                vm->lend_bytes =
                    clamp_u64(block_up(add_sat(vm->want_bytes, m->lend_bytes), s->block_bytes),
                              vm->want_bytes, s->maximum_bytes);
}

void policy_lend_settle(struct policy_vm *vm)
{
        struct policy_vm_memory *m = &vm->memory;

        if (vm->lend_bytes <= vm->want_bytes)
                return;
        if (vm->ideal_bytes > vm->want_bytes)
                vm->reason = REASON_LENT;
        /* What the host could not give is evicted by now: not lent again without a new eviction. */
        if (vm->ideal_bytes < vm->lend_bytes)
                m->lend_bytes =
                    vm->ideal_bytes > vm->want_bytes ? vm->ideal_bytes - vm->want_bytes : 0;
}

void policy_lend_figure(struct policy_vm *vm)
{
        /* The loan is the part above the want of what the VM is given, up to its ideal: a shrink
         * held back (reason hold) keeps more, which is no loan; a grow not granted yet gives less.
         */
        uint64_t given = vm->target_bytes < vm->ideal_bytes ? vm->target_bytes : vm->ideal_bytes;

        vm->lent_bytes =
            vm->lend_bytes > vm->want_bytes && given > vm->want_bytes ? given - vm->want_bytes : 0;
}
