/*
 * Tests for policy_lend: page cache lent from memory no VM wants (docs/policy.md,
 * "Cache lent from idle memory"). A loan is the cache evicted, summed, on top of
 * the want; it is given only once every VM has its want, is cut when anyone needs
 * the memory, ends lend_hold after the last eviction, never passes the maximum,
 * follows the want down, belongs to the dynmem kind only, and goes only to VMs
 * whose `lend` setting is on. What of a VM's target is the loan is its lent_bytes.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "policy.h"
#include "policy_fixture.h"

#define SEC 1000u

#define LEND_HOLD_MS (30 * 60 * SEC)

/* A guest at 512 MiB holding 300 MiB, its stall taken as cache turnover (counted 0). */
static struct policy_vm *cache_guest(struct fx *f, const char *name)
{
        struct policy_vm *vm = add(f, name, dyn(512 * MIB, 512 * MIB, 2 * GIB), 512 * MIB);

        demand(vm, 300 * MIB);
        stall(vm, 0.0);
        return vm;
}

static void a_loan_follows_the_evictions_and_ends(void **state)
{
        struct fx *f = *state;
        struct policy_vm *a = cache_guest(f, "a");
        uint64_t t = 0;

        decide(f, t);
        settle(f);
        assert_int_equal(a->target_bytes, 512 * MIB); /* its want is below its minimum */

        a->cache_evicted_bytes = 100 * MIB;
        decide(f, t += SEC);
        assert_int_equal(a->target_bytes, 612 * MIB);
        assert_int_equal(a->reason, REASON_LENT);
        settle(f);

        /* The same size is kept without a new eviction... */
        a->cache_evicted_bytes = 0;
        decide(f, t += SEC);
        assert_int_equal(a->ideal_bytes, 612 * MIB);
        assert_int_equal(a->target_bytes, 612 * MIB);

        /* ... and rises with the next one. */
        a->cache_evicted_bytes = 50 * MIB;
        decide(f, t += SEC);
        assert_int_equal(a->target_bytes, 662 * MIB);
        settle(f);

        /* lend_hold after the last eviction the loan ends: the VM goes back to its want. */
        a->cache_evicted_bytes = 0;
        decide(f, t += f->cfg.tunables.lend_hold_ms - SEC);
        assert_int_equal(a->ideal_bytes, 662 * MIB);
        decide(f, t += SEC);
        assert_int_equal(a->ideal_bytes, 512 * MIB);
        assert_int_not_equal(a->reason, REASON_LENT);
        decide(f, t += f->cfg.tunables.shrink_delay_ms + SEC);
        assert_int_equal(a->target_bytes, 512 * MIB);
}

/*
 * Evictions add up, also while a grow is still arriving (each is cache lost), and the
 * loan sits on the want: when what the guest uses falls, the loan falls with it.
 */
static void a_loan_sits_on_the_want(void **state)
{
        struct fx *f = *state;
        f->cfg.tunables.persistence_max_permille = 0; /* want = demand and buffer */
        f->cfg.tunables.trend_lookahead_ms = 0;
        struct policy_vm *a = cache_guest(f, "a");

        a->settings.maximum_bytes = 4 * GIB;
        a->cache_evicted_bytes = 200 * MIB;
        decide(f, 0);
        assert_int_equal(a->target_bytes, 712 * MIB);
        /* Not settled: it still holds 512 MiB and evicts 100 MiB more meanwhile. */
        a->cache_evicted_bytes = 100 * MIB;
        decide(f, SEC);
        assert_int_equal(a->ideal_bytes, 812 * MIB);
        settle(f);

        /* Its use rises to 1 GiB and falls back: the loan rides on its want, whatever that is. */
        a->cache_evicted_bytes = 0;
        demand(a, GIB);
        decide(f, 2 * SEC);
        assert_true(a->want_bytes > GIB);
        assert_int_equal(a->ideal_bytes, a->want_bytes + 300 * MIB);
        settle(f);
        demand(a, 300 * MIB);
        decide(f, 3 * SEC);
        assert_int_equal(a->ideal_bytes, a->want_bytes + 300 * MIB);
}

/* Only memory no VM wants is lent; a VM that wants it takes it back. */
static void a_loan_comes_last_and_goes_first(void **state)
{
        struct fx *f = *state;
        f->host.memory_bytes = 1536 * MIB;
        /* b's want is its demand and buffer: no projection of its rise, no pool sharing
         * a's buffer with it. */
        f->cfg.tunables.persistence_max_permille = 0;
        f->cfg.tunables.trend_lookahead_ms = 0;
        f->cfg.tunables.headroom_pool_percent = 0;
        struct policy_vm *a = cache_guest(f, "a");
        struct policy_vm *b = add(f, "b", dyn(512 * MIB, 512 * MIB, 2 * GIB), 512 * MIB);
        demand(b, 300 * MIB);

        a->cache_evicted_bytes = 1 * GIB; /* would make 1.5 GiB: only 1 GiB is free of wants */
        decide(f, 0);
        assert_false(f->sum.scarcity);
        assert_int_equal(a->ideal_bytes, 1 * GIB);
        assert_int_equal(a->reason, REASON_LENT);
        assert_int_equal(b->ideal_bytes, 512 * MIB);
        settle(f);
        assert_int_equal(a->memory.lend_bytes, 512 * MIB); /* cut to what it was given */

        /* b's demand rises: its want comes first, a's loan shrinks at once to make room. */
        a->cache_evicted_bytes = 0;
        demand(b, 600 * MIB);
        decide(f, 2 * SEC);
        assert_false(f->sum.scarcity);
        assert_true(b->want_bytes > 600 * MIB && b->want_bytes < 1 * GIB);
        assert_int_equal(b->ideal_bytes, b->want_bytes);
        assert_int_equal(a->ideal_bytes, 1536 * MIB - b->ideal_bytes);
        assert_int_equal(a->target_bytes, a->ideal_bytes); /* no shrink delay: b waits for it */
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
        settle(f);

        /* When b's want takes everything the loan is gone, not held for later. */
        demand(b, 850 * MIB);
        decide(f, 3 * SEC);
        settle(f);
        assert_int_equal(a->ideal_bytes, 512 * MIB);
        assert_int_equal(a->memory.lend_bytes, 0);
        demand(b, 300 * MIB);
        decide(f, 4 * SEC);
        assert_int_equal(a->ideal_bytes, 512 * MIB);
}

/* A VM waiting to start takes the memory lent to others. */
static void a_starting_vm_takes_lent_memory(void **state)
{
        struct fx *f = *state;
        f->host.memory_bytes = 2 * GIB;
        struct policy_vm *a = cache_guest(f, "a");

        a->cache_evicted_bytes = 2 * GIB;
        decide(f, 0);
        settle(f);
        assert_int_equal(a->assigned_bytes, 2 * GIB);
        a->cache_evicted_bytes = 0;
        struct policy_vm *s = add_starting(f, "s", dyn(GIB, 512 * MIB, 2 * GIB));
        decide(f, SEC);
        assert_int_equal(s->admission, ADMISSION_WAIT);
        assert_int_equal(a->target_bytes, GIB);
        settle(f);
        decide(f, 2 * SEC);
        assert_int_equal(s->admission, ADMISSION_ADMIT);
}

/* Never past the maximum; nothing lent by the hyperv kind or with lend_hold = 0. */
static void a_loan_has_limits(void **state)
{
        struct fx *f = *state;
        struct policy_vm *a = cache_guest(f, "a");

        a->cache_evicted_bytes = 64 * GIB; /* a guest may claim anything */
        decide(f, 0);
        assert_int_equal(a->target_bytes, 2 * GIB);
        assert_int_equal(a->reason, REASON_LENT);

        f->n = 0;
        f->cfg.kind = POLICY_HYPERV;
        a = cache_guest(f, "a");
        a->cache_evicted_bytes = 100 * MIB;
        decide(f, 0);
        assert_int_equal(a->target_bytes, 512 * MIB);

        f->n = 0;
        f->cfg.kind = POLICY_DYNMEM;
        f->cfg.tunables.lend_hold_ms = 0;
        a = cache_guest(f, "a");
        a->cache_evicted_bytes = 100 * MIB;
        decide(f, 0);
        assert_int_equal(a->target_bytes, 512 * MIB);
        assert_int_equal(a->memory.lend_bytes, 0);
}

/*
 * Per VM: of two guests that lose the same cache, only the one with `lend` on
 * borrows; switched off, its loan ends at the next decision and is not kept
 * for later.
 */
static void only_a_vm_with_lend_on_borrows(void **state)
{
        struct fx *f = *state;
        struct policy_vm *a = cache_guest(f, "a");
        struct policy_vm *b = cache_guest(f, "b");
        uint64_t t = 0;

        b->settings.lend = false;
        a->cache_evicted_bytes = b->cache_evicted_bytes = 100 * MIB;
        decide(f, t);
        assert_int_equal(a->target_bytes, 612 * MIB);
        assert_int_equal(a->reason, REASON_LENT);
        assert_int_equal(b->target_bytes, 512 * MIB);
        assert_int_not_equal(b->reason, REASON_LENT);
        assert_int_equal(b->memory.lend_bytes, 0);
        settle(f);

        /* a switched off: its loan ends at the next decision, the memory goes by the shrink. */
        a->cache_evicted_bytes = b->cache_evicted_bytes = 0;
        a->settings.lend = false;
        decide(f, t += SEC);
        assert_int_equal(a->ideal_bytes, 512 * MIB);
        assert_int_not_equal(a->reason, REASON_LENT);
        assert_int_equal(a->memory.lend_bytes, 0);
        decide(f, t += f->cfg.tunables.shrink_delay_ms + SEC);
        assert_int_equal(a->target_bytes, 512 * MIB);
        settle(f);

        /* On again: nothing from before comes back; a new eviction is lent again. */
        a->settings.lend = true;
        decide(f, t += SEC);
        assert_int_equal(a->ideal_bytes, 512 * MIB);
        a->cache_evicted_bytes = 50 * MIB;
        decide(f, t += SEC);
        assert_int_equal(a->target_bytes, 562 * MIB);
        assert_int_equal(a->reason, REASON_LENT);
}

/*
 * lent_bytes is what of the target is lent: nothing while the grow waits for memory a
 * shrink frees, the loan once granted, what is left of it once a want takes memory
 * back, and nothing once the loan has ended (a shrink held back is no loan).
 */
static void lent_is_the_loan_in_the_target(void **state)
{
        struct fx *f = *state;
        f->host.memory_bytes = 1536 * MIB;
        f->cfg.tunables.persistence_max_permille = 0; /* b's want: demand and buffer */
        f->cfg.tunables.trend_lookahead_ms = 0;
        struct policy_vm *a = cache_guest(f, "a");
        /* b holds 1 GiB and wants 512 MiB: the room a's loan needs comes from its shrink. */
        struct policy_vm *b = add(f, "b", dyn(512 * MIB, 512 * MIB, 2 * GIB), GIB);
        demand(b, 300 * MIB);
        uint64_t t = 0;

        decide(f, t);
        assert_int_equal(a->lent_bytes, 0);
        assert_int_equal(b->lent_bytes, 0);

        a->cache_evicted_bytes = 1 * GIB; /* 512 MiB of it is free of wants */
        decide(f, t += SEC);
        assert_int_equal(a->ideal_bytes, GIB);
        assert_int_equal(a->target_bytes, 512 * MIB); /* b has not shrunk yet */
        assert_int_equal(a->reason, REASON_WAITING);
        assert_int_equal(a->lent_bytes, 0);
        assert_int_equal(b->target_bytes, 512 * MIB);
        assert_int_equal(b->lent_bytes, 0);
        settle(f);

        a->cache_evicted_bytes = 0;
        decide(f, t += SEC);
        assert_int_equal(a->target_bytes, GIB);
        assert_int_equal(a->reason, REASON_LENT);
        assert_int_equal(a->want_bytes, 512 * MIB);
        assert_int_equal(a->lent_bytes, a->target_bytes - a->want_bytes);
        assert_int_equal(a->lent_bytes, 512 * MIB);
        assert_int_equal(b->lent_bytes, 0);
        settle(f);

        /* b's want takes part of the loan back: what is left is lent. */
        demand(b, 600 * MIB);
        decide(f, t += SEC);
        assert_true(a->ideal_bytes > a->want_bytes && a->ideal_bytes < GIB);
        assert_int_equal(a->target_bytes, a->ideal_bytes);
        assert_int_equal(a->lent_bytes, a->target_bytes - a->want_bytes);
        assert_int_equal(a->lent_bytes, a->memory.lend_bytes);
        settle(f);

        /* The loan ends: a's size goes back to its want, nothing lent. */
        a->cache_evicted_bytes = 0;
        decide(f, t += f->cfg.tunables.lend_hold_ms);
        assert_int_equal(a->ideal_bytes, a->want_bytes);
        assert_int_equal(a->lent_bytes, 0);

        /* Alone on the host, a loan ends with the shrink held back: what is held is no loan. */
        f->n = 0;
        f->host.memory_bytes = 4 * GIB;
        a = cache_guest(f, "a");
        a->cache_evicted_bytes = 100 * MIB;
        decide(f, t = 0);
        assert_int_equal(a->lent_bytes, 100 * MIB);
        settle(f);
        a->cache_evicted_bytes = 0;
        decide(f, t += f->cfg.tunables.lend_hold_ms);
        assert_int_equal(a->ideal_bytes, 512 * MIB);
        assert_int_equal(a->reason, REASON_HOLD);
        assert_int_equal(a->target_bytes, 612 * MIB);
        assert_int_equal(a->lent_bytes, 0);
}

/* Lending is opt-in: these tests turn it on, with a hold of 30 min. */
static int lend_setup(void **state)
{
        int r = fx_setup(state);
        struct fx *f = *state;

        if (r == 0)
                f->cfg.tunables.lend_hold_ms = LEND_HOLD_MS;
        return r;
}

/* With the defaults nothing is lent. */
static void lending_is_off_by_default(void **state)
{
        struct fx *f = *state;
        struct policy_tunables defaults;

        policy_tunables_default(&defaults);
        assert_int_equal(defaults.lend_hold_ms, 0);
        f->cfg.tunables = defaults;
        struct policy_vm *a = cache_guest(f, "a");
        a->cache_evicted_bytes = 100 * MIB;
        decide(f, 0);
        assert_int_equal(a->target_bytes, 512 * MIB);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, lend_setup, fx_teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(a_loan_follows_the_evictions_and_ends),
            T(a_loan_sits_on_the_want),
            T(a_loan_comes_last_and_goes_first),
            T(a_starting_vm_takes_lent_memory),
            T(a_loan_has_limits),
            T(lending_is_off_by_default),
            T(only_a_vm_with_lend_on_borrows),
            T(lent_is_the_loan_in_the_target),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
