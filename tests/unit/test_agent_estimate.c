/*
 * Tests for agent_estimate's stall attribution (docs/demand.md, "Stall"): a PSI stall counts as
 * the guest being short of memory it uses only when its kernel shows working-set pressure in the
 * same interval (refaults at 1 MiB/s or more, or enough to explain the stall, or pages in use
 * pushed to swap at 1 MiB/s, judged
 * over a second at least); a stall that only turned over page cache nobody reads again counts 0;
 * and the file working set, Active(file) as refaults prove it, held until the kernel lets it go.
 * Pure functions, reports built here: no protocol, no clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "agent_estimate.h"
#include "units.h"

#define PAGE       4096u
#define LIMIT      (4 * GIB)
#define INTERVAL   1000u
#define ALL_SIGNAL (AGENT_HAVE_AVAILABLE | AGENT_HAVE_PSI | AGENT_HAVE_REFAULTS)

/* A 1 GiB guest holding 300 MiB, 500 MiB of cache (200 MiB active), at second `sec`. */
static struct agent_report at(uint64_t seq, uint64_t sec)
{
        struct agent_report r = {
            .seq = seq,
            .time_ms = sec * 1000,
            .have = ALL_SIGNAL,
            .mem_total_bytes = GIB,
            .mem_available_bytes = GIB - 300 * MIB,
            .cached_bytes = 500 * MIB,
            .active_file_bytes = 200 * MIB,
            .received_ms = sec * 1000,
        };
        return r;
}

/* Feed base then r (one second later); the estimate at r. */
static struct agent_estimate interval(struct agent_report base, struct agent_report r,
                                      uint64_t page_size)
{
        struct agent_estimator e = {0};
        struct agent_estimate out;

        assert_int_equal(agent_estimator_add(&e, &base, page_size), 0);
        assert_int_equal(agent_estimator_add(&e, &r, page_size), 0);
        agent_estimator_get(&e, &r, LIMIT, INTERVAL, r.received_ms, &out);
        assert_true(out.fresh && out.stall_known);
        return out;
}

/* A cache being filled by data read once: PSI says 20 %, nothing is short. */
static void a_stall_turning_over_cache_counts_zero(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 200000;
        r.cached_bytes = b.cached_bytes; /* full: each new page replaced an old one */
        r.pgmajfault = 5000;             /* read from disk, never seen before */
        struct agent_estimate e = interval(b, r, PAGE);
        assert_float_equal(e.psi_fraction, 0.2, 1e-9);
        assert_float_equal(e.stall_fraction, 0.0, 1e-9);
        assert_true(e.stall_turnover);
        assert_int_equal(e.demand_bytes, 300 * MIB); /* no refaults: no hot cache either */
}

/* The same stall while the guest reads back pages it lost: its working set does not fit. */
static void a_stall_with_refaults_counts(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 200000;
        r.refaults = 256; /* 1 MiB in 1 s */
        struct agent_estimate e = interval(b, r, PAGE);
        assert_float_equal(e.stall_fraction, 0.2, 1e-9);
        assert_false(e.stall_turnover);
        assert_float_equal(e.refaults_per_s, 256.0, 1e-9);
        assert_int_equal(e.demand_bytes, 500 * MIB); /* and the active file cache is demand */
}

/*
 * A stall the memory relieved: the guest refaulted and stalled in the interval, and at
 * its end has MemFree of MemTotal / 16 or more (the memory that came, not yet filled):
 * it is not short now, so the stall counts 0, the file working set still counts.
 */
static void a_stall_with_free_memory_at_its_end_is_relieved(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 200000;
        r.refaults = 256;
        r.mem_free_bytes = GIB / 16;
        struct agent_estimate e = interval(b, r, PAGE);
        assert_true(e.stall_relieved);
        assert_false(e.stall_turnover);
        assert_float_equal(e.stall_fraction, 0.0, 1e-9);
        assert_float_equal(e.psi_fraction, 0.2, 1e-9);
        assert_int_equal(e.demand_bytes, 500 * MIB);

        r.mem_free_bytes = GIB / 16 - PAGE; /* short of it: still short now */
        e = interval(b, r, PAGE);
        assert_false(e.stall_relieved);
        assert_float_equal(e.stall_fraction, 0.2, 1e-9);

        /* Free memory at the interval's start says nothing about its end. */
        b.mem_free_bytes = GIB / 2;
        e = interval(b, r, PAGE);
        assert_false(e.stall_relieved);
        assert_float_equal(e.stall_fraction, 0.2, 1e-9);

        /* Without a stall nothing is relieved. */
        r.psi_some_total_us = 0;
        r.mem_free_bytes = GIB / 2;
        assert_false(interval(b, r, PAGE).stall_relieved);
}

/*
 * A trickle of refaults (pages evicted long ago) under 1 MiB/s is not a working set that
 * does not fit when it cannot explain the stall: fewer than a page per 4 ms of it, or
 * fewer than 16 pages a second.
 */
static void refaults_below_a_mib_a_second_that_cannot_explain_the_stall_do_not(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 200000;
        r.refaults = 49; /* 196 ms of reads at 4 ms each: less than the 200 ms stalled */
        struct agent_estimate e = interval(b, r, PAGE);
        assert_true(e.stall_turnover);
        assert_float_equal(e.stall_fraction, 0.0, 1e-9);
        assert_float_equal(e.psi_fraction, 0.2, 1e-9);
        assert_int_equal(e.demand_bytes, 300 * MIB); /* no hot cache proved */

        r.psi_some_total_us = 20000;
        r.refaults = 15; /* would explain 60 ms, but under 16 a second */
        assert_true(interval(b, r, PAGE).stall_turnover);

        r.psi_some_total_us = 0; /* no stall: nothing to explain, whatever the count */
        r.refaults = 200;
        e = interval(b, r, PAGE);
        assert_float_equal(e.stall_fraction, 0.0, 1e-9);
        assert_int_equal(e.demand_bytes, 300 * MIB);
}

/*
 * Under 1 MiB/s, refaults that can explain the stall count (a guest on a slow disk, or
 * under TCG, reads fewer pages back in the same stall): a page per 4 ms of it.
 */
static void fewer_refaults_that_explain_the_stall_count(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 200000;
        r.refaults = 50; /* 200 ms of reads at 4 ms each */
        struct agent_estimate e = interval(b, r, PAGE);
        assert_false(e.stall_turnover);
        assert_float_equal(e.stall_fraction, 0.2, 1e-9);
        assert_int_equal(e.demand_bytes, 500 * MIB); /* the active file cache is demand */

        r.psi_some_total_us = 50000;
        r.refaults = 16; /* the least that counts: 16 a second, 64 ms of reads */
        assert_false(interval(b, r, PAGE).stall_turnover);

        /* Without PSI in one of the two reports there is no stall to explain. */
        b.have &= ~AGENT_HAVE_PSI;
        struct agent_estimator est = {0};
        assert_int_equal(agent_estimator_add(&est, &b, PAGE), 0);
        assert_int_equal(agent_estimator_add(&est, &r, PAGE), 0);
        agent_estimator_get(&est, &r, LIMIT, INTERVAL, r.received_ms, &e);
        assert_false(e.stall_known);
        assert_int_equal(e.demand_bytes, 300 * MIB);
}

/* The rate is in bytes: 16 refaulted pages of 64 KiB are 1 MiB. */
static void the_refault_rate_is_in_bytes(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 100000;
        r.refaults = 16;
        assert_false(interval(b, r, 65536).stall_turnover);
        assert_true(interval(b, r, 4096).stall_turnover);
}

/*
 * What the guest holds rising while the kernel serves it from cache nobody reads again
 * (PostgreSQL's shared buffers filling in a guest full of cache read once): turnover.
 */
static void a_rise_served_from_cache_is_turnover(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 300000;
        r.mem_available_bytes = b.mem_available_bytes - 8 * MIB;
        struct agent_estimate e = interval(b, r, PAGE);
        assert_true(e.stall_turnover);
        assert_float_equal(e.stall_fraction, 0.0, 1e-9);
        assert_int_equal(e.demand_bytes, 308 * MIB); /* the rise itself is demand */
}

/*
 * Pages in the absorber are in the demand figure already (counted whole): a steady
 * absorber is no sign the figure under-counts, pages pushed into it are.
 */
static void the_absorber_counts_as_a_rise(void **state)
{
        struct agent_report b = at(1, 10), r;

        b.have |= AGENT_HAVE_ABSORBER;
        b.absorber_bytes = 64 * MIB;
        b.absorber_ram_bytes = 16 * MIB;
        b.absorber_size_bytes = 512 * MIB;
        r = b;
        r.seq = 2;
        r.time_ms = r.received_ms = 11000;
        r.psi_some_total_us = 100000;
        struct agent_estimate e = interval(b, r, PAGE);
        assert_true(e.stall_turnover);
        assert_int_equal(e.demand_bytes, 300 * MIB - 16 * MIB + 64 * MIB + GIB / 32);
        /* pages in use pushed into it at 1 MiB/s or more: short of room */
        b.absorber_bytes = b.absorber_ram_bytes = 0;
        r.absorber_bytes = 4 * MIB;
        r.absorber_ram_bytes = 1 * MIB;
        r.mem_available_bytes = b.mem_available_bytes - 1 * MIB;
        assert_false(interval(b, r, PAGE).stall_turnover);
        /* and pages read back from it are refaults of swapped pages */
        r = b;
        r.seq = 2;
        r.time_ms = r.received_ms = 11000;
        r.psi_some_total_us = 100000;
        r.refaults = 300;
        assert_false(interval(b, r, PAGE).stall_turnover);
}

/*
 * The host inflating a deflate-on-oom balloon makes MemTotal − MemAvailable rise by
 * what it takes: the guest giving up cache for it is not short of what it uses.
 */
static void a_balloon_taking_cache_is_no_rise(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        b.have |= AGENT_HAVE_BALLOON;
        r.have |= AGENT_HAVE_BALLOON;
        b.balloon_in_total = r.balloon_in_total = 1;
        r.balloon_bytes = 128 * MIB;
        r.mem_available_bytes = b.mem_available_bytes - 128 * MIB;
        r.psi_some_total_us = 100000;
        assert_true(interval(b, r, PAGE).stall_turnover);
}

/* Pages in use pushed out to the guest's own swap at 1 MiB/s or more: it is short of room. */
static void pages_pushed_to_swap_count(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 100000;
        r.mem_available_bytes = b.mem_available_bytes + 50 * MIB;
        r.swap_used_bytes = 50 * MIB;
        assert_false(interval(b, r, PAGE).stall_turnover);
        r.swap_used_bytes = 1 * MIB - 4096;
        assert_true(interval(b, r, PAGE).stall_turnover);
        /* swap emptying (pages read back are refaults, counted as such) is no push */
        b.swap_used_bytes = 60 * MIB;
        r.swap_used_bytes = 10 * MIB;
        assert_true(interval(b, r, PAGE).stall_turnover);
}

/* Without the kernel's evidence the estimate cannot tell, and believes the stall. */
static void without_evidence_the_stall_is_believed(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 100000;
        b.have &= ~AGENT_HAVE_REFAULTS;
        r.have &= ~AGENT_HAVE_REFAULTS;
        struct agent_estimate e = interval(b, r, PAGE);
        assert_false(e.stall_turnover);
        assert_float_equal(e.stall_fraction, 0.1, 1e-9);
        /* nor with the major fault count going backwards (no rates for the interval) */
        b = at(1, 10);
        r = at(2, 11);
        b.pgmajfault = 10;
        r.psi_some_total_us = 100000;
        struct agent_estimator est = {0};
        agent_estimator_add(&est, &b, PAGE);
        assert_int_equal(agent_estimator_add(&est, &r, PAGE), 1);
        agent_estimator_get(&est, &r, LIMIT, INTERVAL, 11000, &e);
        assert_false(e.rates_known || e.stall_turnover);
        assert_float_equal(e.stall_fraction, 0.1, 1e-9);
}

/* No stall is no turnover either; the next interval judges again from its own evidence. */
static void each_interval_is_judged_alone(void **state)
{
        struct agent_estimator e = {0};
        struct agent_estimate out;
        struct agent_report r1 = at(1, 10), r2 = at(2, 11), r3 = at(3, 12), r4 = at(4, 13);

        r2.psi_some_total_us = r3.psi_some_total_us = 100000; /* none in 11..12 */
        r3.refaults = 0;
        r4.psi_some_total_us = 150000;
        r4.refaults = 1000;
        agent_estimator_add(&e, &r1, PAGE);
        agent_estimator_add(&e, &r2, PAGE);
        agent_estimator_get(&e, &r2, LIMIT, INTERVAL, 11000, &out);
        assert_true(out.stall_turnover);
        agent_estimator_add(&e, &r3, PAGE);
        agent_estimator_get(&e, &r3, LIMIT, INTERVAL, 12000, &out);
        assert_false(out.stall_turnover);
        assert_float_equal(out.psi_fraction, 0.0, 1e-9);
        agent_estimator_add(&e, &r4, PAGE);
        agent_estimator_get(&e, &r4, LIMIT, INTERVAL, 13000, &out);
        assert_false(out.stall_turnover);
        assert_float_equal(out.stall_fraction, 0.05, 1e-9);
}

/*
 * A report the guest sent as a stall began comes 50 ms or more after the previous one:
 * what changed in it is judged over a second, or a few pages would make a rate.
 */
static void a_short_interval_is_judged_over_a_second(void **state)
{
        struct agent_report b = at(1, 10), r = b;

        r.seq = 2;
        r.time_ms = r.received_ms = b.time_ms + 100;
        r.cause = AGENT_CAUSE_PSI;
        r.psi_some_total_us = 20000;
        r.mem_available_bytes = b.mem_available_bytes - 512 * 1024;
        r.refaults = 15; /* 150 pages/s for 100 ms, 15 over a second: under 16 */
        struct agent_estimate e = interval(b, r, PAGE);
        assert_float_equal(e.psi_fraction, 0.2, 1e-9);
        assert_true(e.stall_turnover);
        assert_int_equal(e.demand_bytes, 300 * MIB + 512 * 1024); /* no hot cache from it */
        r.refaults = 16; /* and 16 that explain the 20 ms stalled are 16 in a second too */
        assert_false(interval(b, r, PAGE).stall_turnover);
        r.refaults = 256; /* a MiB in 100 ms is a MiB in a second too */
        assert_false(interval(b, r, PAGE).stall_turnover);
        r.refaults = 0;
        r.absorber_bytes = 512 * 1024; /* pushed out at 5 MiB/s for 100 ms: 0.5 MiB */
        assert_true(interval(b, r, PAGE).stall_turnover);
        r.absorber_bytes = MIB;
        assert_false(interval(b, r, PAGE).stall_turnover);
}

/*
 * Memory plugged or unplugged in the interval: onlining costs the kernel 64 bytes of
 * page structures a page, offlining isolates free pages first; neither is the guest's.
 */
static void a_change_of_memtotal_is_no_rise(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        r.psi_some_total_us = 100000;
        r.mem_total_bytes = b.mem_total_bytes + 256 * MIB;
        r.mem_available_bytes = r.mem_total_bytes - 304 * MIB; /* +4 MiB of memmap */
        assert_true(interval(b, r, PAGE).stall_turnover);
        r.refaults = 1000; /* but refaults still count */
        assert_false(interval(b, r, PAGE).stall_turnover);
}

/* A refault count that appears (the report before had none) is a count since boot, no burst. */
static void a_refault_count_appearing_is_no_refaulting(void **state)
{
        struct agent_report b = at(1, 10), r = at(2, 11);

        b.have &= ~AGENT_HAVE_REFAULTS;
        r.refaults = 100000;
        struct agent_estimate e = interval(b, r, PAGE);
        assert_float_equal(e.refaults_per_s, 0.0, 1e-9);
        assert_int_equal(e.demand_bytes, 300 * MIB); /* no hot cache from it */
}

/* Feed r into e; the demand figure after it. */
static uint64_t demand_after(struct agent_estimator *e, const struct agent_report *r)
{
        struct agent_estimate out;

        agent_estimator_add(e, r, PAGE);
        agent_estimator_get(e, r, LIMIT, INTERVAL, r->received_ms, &out);
        assert_true(out.demand_known);
        return out.demand_bytes;
}

/*
 * The file working set: Active(file) counts from the first interval the guest refaults at
 * 1 MiB/s, stays when the refaults stop (the memory that stopped them), rises only with
 * refaults, falls with Active(file) when the kernel lets pages go without refaults, and
 * starts again from nothing after a restart.
 */
static void the_file_working_set_follows_the_kernels_evidence(void **state)
{
        struct agent_estimator e = {0};
        struct agent_report r = at(1, 10);
        uint64_t refaults = 0, seq = 1, sec = 10;

        assert_int_equal(demand_after(&e, &r), 300 * MIB); /* no interval yet */
#define NEXT(active_mib, refaulted)                                                                \
        (r = at(++seq, ++sec), r.active_file_bytes = (active_mib)*MIB,                             \
         r.refaults = refaults += (refaulted), demand_after(&e, &r))
        assert_int_equal(NEXT(200, 100), 300 * MIB);  /* 100 pages/s: background */
        assert_int_equal(NEXT(200, 2560), 500 * MIB); /* 10 MiB/s: the cache is short */
        assert_int_equal(NEXT(260, 0), 500 * MIB);    /* grown: held, not raised */
        assert_int_equal(NEXT(260, 0), 500 * MIB);
        assert_int_equal(NEXT(240, 512), 540 * MIB); /* refaulting again: raised to it */
        assert_int_equal(NEXT(120, 0), 420 * MIB);   /* the kernel let 140 MiB go */
        assert_int_equal(NEXT(200, 0), 420 * MIB);   /* read twice since, but never missed */
        /* the agent restarts: a new boot's cache proves nothing yet */
        r = at(1, ++sec);
        assert_int_equal(demand_after(&e, &r), 300 * MIB);
        seq = 1;
        refaults = 0;
        assert_int_equal(NEXT(200, 0), 300 * MIB);
#undef NEXT
}

/*
 * Page cache evicted under a stall (docs/demand.md, "Cache evicted under a stall"): summed
 * over the intervals where the guest stalled and reclaimed file pages at 1 MiB/s or more,
 * not where it did not stall, reclaimed less, or had free memory at the end (relieved);
 * a counter going backwards adds nothing, and one interval adds at most MemTotal.
 */
static void cache_evicted_under_a_stall_is_summed(void **state)
{
        struct agent_estimator e = {0};
        struct agent_estimate out;
        struct agent_report r = at(1, 10);
        uint64_t psi = 0, reclaimed = 1000;

        r.have |= AGENT_HAVE_RECLAIM;
        r.file_reclaimed = reclaimed;
        agent_estimator_add(&e, &r, PAGE);
        struct {
                uint64_t stall_us, pages, free_bytes;
                uint64_t expect_total;
        } steps[] = {
            {200000, 25600, 0, 100 * MIB},         /* 100 MiB under a 20 % stall: counts */
            {0, 25600, 0, 100 * MIB},              /* no stall: the kernel's routine */
            {200000, 200, 0, 100 * MIB},           /* under 1 MiB/s: not an eviction that matters */
            {200000, 256, 0, 101 * MIB},           /* 1 MiB/s: counts */
            {200000, 25600, 200 * MIB, 101 * MIB}, /* relieved: memory came */
            {200000, 1u << 30, 0, 101 * MIB + GIB}, /* 4 TiB claimed: MemTotal at most */
        };
        for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
                psi += steps[i].stall_us;
                reclaimed += steps[i].pages;
                r = at(2 + i, 11 + i);
                r.have |= AGENT_HAVE_RECLAIM;
                r.psi_some_total_us = psi;
                r.file_reclaimed = reclaimed;
                r.mem_free_bytes = steps[i].free_bytes;
                agent_estimator_add(&e, &r, PAGE);
                agent_estimator_get(&e, &r, LIMIT, INTERVAL, r.received_ms, &out);
                if (out.evicted_total_bytes != steps[i].expect_total)
                        fail_msg("step %u: %llu MiB evicted, %llu expected", i,
                                 (unsigned long long)(out.evicted_total_bytes / MIB),
                                 (unsigned long long)(steps[i].expect_total / MIB));
        }
        /* A counter that went backwards (a new boot) starts over without adding. */
        r = at(9, 20);
        r.have |= AGENT_HAVE_RECLAIM;
        r.psi_some_total_us = psi + 200000;
        r.file_reclaimed = 5;
        agent_estimator_add(&e, &r, PAGE);
        agent_estimator_get(&e, &r, LIMIT, INTERVAL, r.received_ms, &out);
        assert_int_equal(out.evicted_total_bytes, 101 * MIB + GIB);
        /* Without the key (a kernel before 5.8) nothing is evicted. */
        struct agent_report b = at(1, 10), n = at(2, 11);
        n.psi_some_total_us = 200000;
        n.file_reclaimed = 25600;
        assert_int_equal(interval(b, n, PAGE).evicted_total_bytes, 0);
}

/*
 * Cache read into memory about to run out counts as well, stall or not: Cached rising at
 * 1 MiB/s or more, at a rate that takes what is free within 5 s. Not with memory to spare
 * for longer, not below the rate, not when the cache shrinks.
 */
static void cache_filling_the_last_free_memory_is_summed(void **state)
{
        struct agent_estimator e = {0};
        struct agent_estimate out;
        struct agent_report r = at(1, 10);
        uint64_t cached = r.cached_bytes;

        r.mem_free_bytes = 10 * MIB;
        agent_estimator_add(&e, &r, PAGE);
        struct {
                int64_t grow;
                uint64_t free_bytes;
                uint64_t expect_total;
        } steps[] = {
            {30 * MIB, 10 * MIB, 30 * MIB},            /* 30 MiB/s with 10 MiB free: gone at once */
            {30 * MIB, 200 * MIB, 30 * MIB},           /* 200 MiB free last longer than 5 s */
            {40 * MIB, 190 * MIB, 70 * MIB},           /* 40 MiB/s takes 190 MiB in under 5 s */
            {512 * 1024, 1 * MIB, 70 * MIB},           /* under 1 MiB/s */
            {-(int64_t)(50 * MIB), 1 * MIB, 70 * MIB}, /* the cache shrank */
            {1 * MIB, 6 * MIB, 70 * MIB},              /* 1 MiB/s lasts 6 s in 6 MiB */
            {1 * MIB, 4 * MIB, 71 * MIB},              /* ... not in 4 MiB */
        };
        for (unsigned i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
                cached = (uint64_t)((int64_t)cached + steps[i].grow);
                r = at(2 + i, 11 + i);
                r.cached_bytes = cached;
                r.mem_free_bytes = steps[i].free_bytes;
                agent_estimator_add(&e, &r, PAGE);
                agent_estimator_get(&e, &r, LIMIT, INTERVAL, r.received_ms, &out);
                if (out.evicted_total_bytes != steps[i].expect_total)
                        fail_msg("step %u: %llu KiB, %llu expected", i,
                                 (unsigned long long)(out.evicted_total_bytes / 1024),
                                 (unsigned long long)(steps[i].expect_total / 1024));
        }
}

/* A report at second `sec` of a guest with 10 MiB free and the reclaim counter. */
static struct agent_report reclaim_at(uint64_t seq, uint64_t sec, uint64_t stall_us,
                                      uint64_t reclaimed, uint64_t refaults)
{
        struct agent_report r = at(seq, sec);

        r.have |= AGENT_HAVE_RECLAIM;
        r.mem_free_bytes = 10 * MIB;
        r.psi_some_total_us = stall_us;
        r.file_reclaimed = reclaimed;
        r.refaults = refaults;
        return r;
}

/* Feed r to e; what the estimate says was lost so far. */
static uint64_t lost_after(struct agent_estimator *e, const struct agent_report *r)
{
        struct agent_estimate out;

        agent_estimator_add(e, r, PAGE);
        agent_estimator_get(e, r, LIMIT, INTERVAL, r->received_ms, &out);
        return out.evicted_total_bytes;
}

/*
 * What the guest reads back is not lost twice: refaults come off what an interval lost
 * (data evicted, counted, read back and evicted again is the same data). Memory that came
 * counts as free memory like any other: a cache that fills it as fast as it came is
 * still about to run out.
 */
static void cache_read_back_or_filling_new_memory_is_not_lost_again(void **state)
{
        struct agent_estimator e = {0};
        struct agent_report r = reclaim_at(1, 10, 0, 0, 0);

        agent_estimator_add(&e, &r, PAGE);
        /* 40 MiB evicted under a stall, 10 MiB of it read back in the same interval. */
        r = reclaim_at(2, 11, 200000, 40 * 256, 10 * 256);
        assert_int_equal(lost_after(&e, &r), 30 * MIB);
        /* Reading back more than was lost takes nothing off what was lost before. */
        r = reclaim_at(3, 12, 400000, 45 * 256, 30 * 256);
        assert_int_equal(lost_after(&e, &r), 30 * MIB);
        /* 128 MiB came and the cache grew 150 MiB, leaving 10 MiB free: all of it counts. */
        r = reclaim_at(4, 13, 400000, 45 * 256, 30 * 256);
        r.mem_total_bytes = GIB + 128 * MIB;
        r.mem_available_bytes = r.mem_total_bytes - 300 * MIB;
        r.cached_bytes = 650 * MIB;
        assert_int_equal(lost_after(&e, &r), 180 * MIB);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_stall_turning_over_cache_counts_zero),
            cmocka_unit_test(a_stall_with_refaults_counts),
            cmocka_unit_test(a_stall_with_free_memory_at_its_end_is_relieved),
            cmocka_unit_test(refaults_below_a_mib_a_second_that_cannot_explain_the_stall_do_not),
            cmocka_unit_test(fewer_refaults_that_explain_the_stall_count),
            cmocka_unit_test(the_refault_rate_is_in_bytes),
            cmocka_unit_test(a_rise_served_from_cache_is_turnover),
            cmocka_unit_test(the_absorber_counts_as_a_rise),
            cmocka_unit_test(a_balloon_taking_cache_is_no_rise),
            cmocka_unit_test(pages_pushed_to_swap_count),
            cmocka_unit_test(without_evidence_the_stall_is_believed),
            cmocka_unit_test(each_interval_is_judged_alone),
            cmocka_unit_test(a_short_interval_is_judged_over_a_second),
            cmocka_unit_test(a_change_of_memtotal_is_no_rise),
            cmocka_unit_test(a_refault_count_appearing_is_no_refaulting),
            cmocka_unit_test(the_file_working_set_follows_the_kernels_evidence),
            cmocka_unit_test(cache_evicted_under_a_stall_is_summed),
            cmocka_unit_test(cache_filling_the_last_free_memory_is_summed),
            cmocka_unit_test(cache_read_back_or_filling_new_memory_is_not_lost_again),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
