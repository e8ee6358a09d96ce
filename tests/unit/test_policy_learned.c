/*
 * Tests for what the dynmem policy learns from each VM and how it shares a
 * short host: the cover counted per unit of time (the same whether decisions
 * come every second or every 30 s), the lookahead only while a VM rises, the
 * current use served before anyone's projected rise under deep scarcity, and
 * holds kept for a VM that waits only for headroom; the headroom pool: the
 * buffers' sum shared by the VMs' rises, at a price that does not depend on
 * where its search starts, and rises past a VM's cover and its swap (OOM
 * kills) counted apart, with the kill lines a VM keeps following its swap.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy.h"
#include "policy_fixture.h"

/*
 * A VM at 1 GiB that jumps by 64 MiB for 30 s every 10 minutes, for three
 * hours, decided on every `step_ms`; returns its headroom above its demand
 * at the end, at its base level. Its buffer (5 %) is smaller than the jump.
 */
static uint64_t headroom_after_jumps(struct fx *f, uint64_t step_ms)
{
        struct vm_settings s = dyn(GIB, 512 * MIB, 4 * GIB);

        s.buffer_percent = 5;
        struct policy_vm *a = add(f, "a", s, GIB);
        uint64_t end = 3 * 3600 * 1000 + 60000;
        for (uint64_t now = 0; now <= end; now += step_ms) {
                demand(a, now % 600000 < 30000 && now > 0 ? GIB + 64 * MIB : GIB);
                decide(f, now);
                settle(f);
        }
        assert_int_equal(a->demand_bytes, GIB);
        return a->want_bytes - GIB;
}

static void cover_counts_rises_per_time(void **state)
{
        struct fx *f = *state;

        f->cfg.tunables.headroom_pool_percent = 0; /* the cover alone, not the shared pool */
        /* Every 30 s: one decision in 20 rises 64 MiB, well beyond 0.5 %. */
        assert_true(headroom_after_jumps(f, 30000) >= 64 * MIB);
        f->n = 0;
        f->scratch.contended = f->scratch.scarce = false;
        /* Every second: one decision in 600, but as often per minute: covered the same. */
        assert_true(headroom_after_jumps(f, 1000) >= 64 * MIB);

        /* Counted per decision instead, the 1 s VM would keep only its buffer. */
        f->n = 0;
        f->cfg.tunables.headroom_period_ms = 0;
        assert_true(headroom_after_jumps(f, 1000) < 64 * MIB);
}

static void lookahead_only_while_rising(void **state)
{
        struct fx *f = *state;

        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), GIB);
        for (uint64_t now = 0; now <= 20000; now += 2000) {
                demand(a, now < 10000 ? GIB : 1536 * MIB);
                decide(f, now);
                settle(f);
                if (now == 10000) /* it rose over the last interval: carried on */
                        assert_true(a->need_bytes > 1536 * MIB);
                if (now >= 12000) /* flat since: nothing is projected any more */
                        assert_int_equal(a->need_bytes, 1536 * MIB);
        }
}

static void deep_scarcity_serves_current_use_first(void **state)
{
        struct fx *f = *state;

        f->host.memory_bytes = 3000 * MIB;
        f->cfg.tunables.persistence_max_permille = 0; /* b's rises have never carried on */
        struct policy_vm *a = add(f, "a", dyn(GIB, 256 * MIB, 4 * GIB), 1600 * MIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 256 * MIB, 4 * GIB), 1000 * MIB);
        for (uint64_t now = 0, d = 1000; d <= 1400; now += 1000, d += 50) {
                demand(a, 1600 * MIB);
                demand(b, d * MIB);
                decide(f, now);
        }
        /* b still rises: its need holds the lookahead, more than the host has. */
        assert_true(b->need_bytes > 1400 * MIB);
        assert_true(f->sum.sum_need_bytes > f->host.memory_bytes);
        /* a keeps what it uses now; b's projected rise waits. */
        assert_int_equal(a->ideal_bytes, 1600 * MIB);
        assert_int_equal(b->ideal_bytes, 1400 * MIB);
        assert_true(f->sum.scarcity);
}

static void waiting_for_headroom_keeps_small_holds(void **state)
{
        struct fx *f = *state;

        /* Everyone's want fits, but a's small surplus is not free yet. */
        f->host.memory_bytes = 4310 * MIB;
        struct policy_vm *a = add(f, "a", dyn(GIB, 512 * MIB, 8 * GIB), 1250 * MIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 512 * MIB, 8 * GIB), 2 * GIB);
        demand(a, GIB);        /* want 1230 MiB: 20 MiB over, inside the deadband */
        demand(b, 2560 * MIB); /* want 3072 MiB: 1024 MiB more, 1012 MiB free */
        decide(f, 0);
        assert_false(f->sum.scarcity);
        assert_int_equal(b->reason, REASON_WAITING);
        assert_true(b->target_bytes >= b->need_bytes); /* only its headroom waits */
        assert_int_equal(a->target_bytes, 1250 * MIB); /* a resize for 20 MiB is not made */
        assert_int_equal(a->reason, REASON_HOLD);
        assert_true(sum_max_assigned_target(f) <= f->host.memory_bytes);
}

/*
 * Two VMs at 1 GiB with a 20 % buffer for two hours, decided every 30 s: a
 * steady, b rising by 160 MiB on every 5th decision (and back). Returns the
 * headroom each holds above its expected figure at the end.
 */
static void headrooms_after_bursts(struct fx *f, uint64_t *ret_a, uint64_t *ret_b)
{
        struct policy_vm *a = add(f, "a", dyn(GIB, 256 * MIB, 4 * GIB), GIB);
        struct policy_vm *b = add(f, "b", dyn(GIB, 256 * MIB, 4 * GIB), GIB);

        for (uint64_t k = 0; k <= 240; k++) {
                demand(a, GIB);
                demand(b, k % 5 == 4 ? GIB + 160 * MIB : GIB);
                decide(f, k * 30000);
                settle(f);
        }
        assert_int_equal(b->demand_bytes, GIB);
        *ret_a = a->want_bytes - a->pool_next_bytes;
        *ret_b = b->want_bytes - b->pool_next_bytes;
}

static void pool_gives_headroom_where_rises_are(void **state)
{
        struct fx *f = *state;
        uint64_t ha, hb, buffer = want_of(GIB, 20) - GIB;

        f->cfg.tunables.headroom_pool_percent = 100; /* opt-in (off by default) */
        headrooms_after_bursts(f, &ha, &hb);
        /* b's rises are covered; a, which never rose, gives it part of its buffer. */
        assert_true(hb >= 160 * MIB);
        assert_true(ha < buffer && ha > 0);
        /* Together they hold no more than their two buffers (and a block each). */
        assert_true(ha + hb <= 2 * buffer + 4 * MIB);
        assert_true(ha + hb + 4 * MIB >= 2 * buffer);

        /* Without the pool each keeps at least its own buffer. */
        f->n = 0;
        f->scratch.contended = f->scratch.scarce = false;
        f->cfg.tunables.headroom_pool_percent = 0;
        headrooms_after_bursts(f, &ha, &hb);
        assert_true(ha >= buffer && hb >= 160 * MIB);
}

static void pool_scarce_covers_the_likeliest_rises(void **state)
{
        struct fx *f = *state;
        uint64_t ha, hb, buffer = want_of(GIB, 20) - GIB;

        /* A pool of a tenth of the buffers cannot cover b's 160 MiB rises. */
        f->cfg.tunables.headroom_pool_percent = 10;
        headrooms_after_bursts(f, &ha, &hb);
        assert_true(ha + hb <= buffer / 5 + 4 * MIB);
}

/*
 * Two VMs at 2 GiB with a 20 % buffer, sharing the pool, decided every 30 s
 * for four hours: a rises by 96 MiB on every 3rd decision, b by 300 to 700
 * MiB on every 7th. b has `b_swap` of swap, a 1 GiB. Returns the headroom
 * each holds above its expected figure at the end.
 */
static void headrooms_with_swap(struct fx *f, uint32_t kill_weight, uint64_t b_swap,
                                uint64_t *ret_a, uint64_t *ret_b)
{
        f->n = 0;
        f->scratch.contended = f->scratch.scarce = false;
        f->scratch.price_bin = 0;
        f->cfg.tunables.headroom_pool_percent = 100;
        f->cfg.tunables.headroom_kill_weight = kill_weight;
        struct policy_vm *a = add(f, "a", dyn(2 * GIB, 256 * MIB, 8 * GIB), 2 * GIB);
        struct policy_vm *b = add(f, "b", dyn(2 * GIB, 256 * MIB, 8 * GIB), 2 * GIB);
        a->swap_known = b->swap_known = true;
        a->swap_bytes = GIB;
        b->swap_bytes = b_swap;
        for (uint64_t k = 0; k <= 480; k++) {
                demand(a, k % 3 == 2 ? 2 * GIB + 96 * MIB : 2 * GIB);
                demand(b, k % 7 == 6 ? 2 * GIB + (300 + (k / 7) % 5 * 100) * MIB : 2 * GIB);
                decide(f, k * 30000);
                settle(f);
        }
        *ret_a = a->want_bytes - a->pool_next_bytes;
        *ret_b = b->want_bytes - b->pool_next_bytes;
}

static void pool_counts_kills_past_swap_apart(void **state)
{
        struct fx *f = *state;
        uint64_t a0, b0, ak, bk, buffer = want_of(2 * GIB, 20) - 2 * GIB;

        /* Counted by their number alone, b's rare wide rises lose to a's frequent ones... */
        headrooms_with_swap(f, 0, 64 * MIB, &a0, &b0);
        /* ... and with most of them past b's cover and its 64 MiB of swap, b is killed. */
        assert_true(b0 + 64 * MIB < 600 * MIB);
        /* A kill counted 20 times more than a miss takes the cover to where b's swap ends its
         * likelier kills, from a's part of the same pool. */
        headrooms_with_swap(f, 20, 64 * MIB, &ak, &bk);
        assert_true(bk > b0 + 64 * MIB);
        assert_true(ak < a0);
        assert_true(ak + bk <= 2 * buffer + 4 * MIB);
        /* With swap larger than any rise of b, no rise kills: the weight changes nothing. */
        headrooms_with_swap(f, 0, 2 * GIB, &a0, &b0);
        headrooms_with_swap(f, 20, 2 * GIB, &ak, &bk);
        assert_int_equal(ak, a0);
        assert_int_equal(bk, b0);
}

/*
 * The pool's price is searched from where the previous decision found it;
 * searched from the other end of the scale instead, every decision is the
 * same. Eight VMs rise by different sizes, some often, some rarely, on a
 * pool too small to cover every rise (a price well inside the scale).
 */
static void pool_price_wherever_the_search_starts(void **state)
{
        struct fx *f = *state;
        struct policy_scratch far = {0};
        struct policy_vm copy[MAX_VMS];
        uint32_t highest_bin = 0;

        assert_int_equal(policy_scratch_reserve(&far, MAX_VMS), 0);
        f->cfg.tunables.headroom_pool_percent = 40;
        f->host.memory_bytes = 64 * GIB;
        for (size_t i = 0; i < MAX_VMS; i++)
                add(f, "vm", dyn(GIB, 256 * MIB, 8 * GIB), GIB);
        for (uint64_t k = 0; k <= 200; k++) {
                for (size_t i = 0; i < MAX_VMS; i++) {
                        bool rises = (k + i) % (2 + i) == 0;
                        demand(&f->vms[i], GIB + (rises ? (uint64_t)(i + 1) * 48 * MIB : 0));
                }
                memcpy(copy, f->vms, sizeof(copy));
                far.contended = f->scratch.contended;
                far.scarce = f->scratch.scarce;
                far.price_bin = f->scratch.price_bin < 2048 ? 4000 : 0;
                assert_int_equal(
                    policy_decide(&f->cfg, &f->host, copy, f->n, k * 30000, &far, NULL), 0);
                decide(f, k * 30000);
                for (size_t i = 0; i < MAX_VMS; i++) {
                        assert_int_equal(copy[i].want_bytes, f->vms[i].want_bytes);
                        assert_int_equal(copy[i].ideal_bytes, f->vms[i].ideal_bytes);
                        assert_int_equal(copy[i].target_bytes, f->vms[i].target_bytes);
                        assert_int_equal(copy[i].reason, f->vms[i].reason);
                }
                assert_int_equal(far.price_bin, f->scratch.price_bin);
                if (f->scratch.price_bin > highest_bin)
                        highest_bin = f->scratch.price_bin;
                settle(f);
        }
        /* The covers did not all fit at the lowest price: the search had a price to find. */
        assert_true(highest_bin > 0);
        policy_scratch_free(&far);
}

/*
 * Each VM keeps where its kill lines fall from one decision to the next, and
 * its swap moves them. Two VMs rise as in headrooms_with_swap(), b's swap
 * changing every 5th decision (64 MiB, 1 GiB, 300 MiB, ..., unknown): decided
 * with the lines kept, and again from copies whose lines are worked out
 * afresh, every decision is the same, and the swap changes b's headroom.
 */
static void kill_lines_follow_the_swap(void **state)
{
        struct fx *f = *state;
        struct policy_scratch fresh = {0};
        struct policy_vm copy[MAX_VMS];
        const uint64_t swaps[] = {64 * MIB, GIB, 300 * MIB, 0, 2 * GIB};
        uint64_t lowest = UINT64_MAX, highest = 0;

        assert_int_equal(policy_scratch_reserve(&fresh, MAX_VMS), 0);
        f->cfg.tunables.headroom_kill_weight = 20;
        struct policy_vm *a = add(f, "a", dyn(2 * GIB, 256 * MIB, 8 * GIB), 2 * GIB);
        struct policy_vm *b = add(f, "b", dyn(2 * GIB, 256 * MIB, 8 * GIB), 2 * GIB);
        a->swap_known = true;
        a->swap_bytes = GIB;
        for (uint64_t k = 0; k <= 480; k++) {
                demand(a, k % 3 == 2 ? 2 * GIB + 96 * MIB : 2 * GIB);
                demand(b, k % 7 == 6 ? 2 * GIB + (300 + (k / 7) % 5 * 100) * MIB : 2 * GIB);
                b->swap_bytes = swaps[(k / 5) % 5];
                b->swap_known = b->swap_bytes > 0;
                memcpy(copy, f->vms, sizeof(copy));
                for (size_t i = 0; i < f->n; i++)
                        copy[i].memory.kill_lines = (struct policy_kill_lines){0};
                fresh.contended = f->scratch.contended;
                fresh.scarce = f->scratch.scarce;
                fresh.price_bin = f->scratch.price_bin;
                assert_int_equal(
                    policy_decide(&f->cfg, &f->host, copy, f->n, k * 30000, &fresh, NULL), 0);
                decide(f, k * 30000);
                for (size_t i = 0; i < f->n; i++) {
                        assert_int_equal(copy[i].want_bytes, f->vms[i].want_bytes);
                        assert_int_equal(copy[i].target_bytes, f->vms[i].target_bytes);
                }
                if (k >= 240) {
                        uint64_t headroom = b->want_bytes - b->pool_next_bytes;
                        lowest = headroom < lowest ? headroom : lowest;
                        highest = headroom > highest ? headroom : highest;
                }
                settle(f);
        }
        /* The swap moved b's cover: the lines did matter. */
        assert_true(highest > lowest);
        policy_scratch_free(&fresh);
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
        const struct CMUnitTest tests[] = {
            T(cover_counts_rises_per_time),
            T(lookahead_only_while_rising),
            T(deep_scarcity_serves_current_use_first),
            T(waiting_for_headroom_keeps_small_holds),
            T(pool_gives_headroom_where_rises_are),
            T(pool_scarce_covers_the_likeliest_rises),
            T(pool_price_wherever_the_search_starts),
            T(pool_counts_kills_past_swap_apart),
            T(kill_lines_follow_the_swap),
        };
#undef T
        return cmocka_run_group_tests(tests, NULL, NULL);
}
