/*
 * Property tests for policy: many random hosts and VMs (seeded, so every run
 * is the same), decided again and again while the VMs move, start and stop,
 * and the invariants checked after every decision:
 *   - the sum over running VMs of max(assigned, target), plus what admitted
 *     VMs start with, never exceeds the host's memory (when the VMs held no
 *     more than that to begin with; otherwise nothing grows and nothing
 *     starts);
 *   - a running dynamic VM's target stays within [minimum, maximum] (under
 *     overcommitment its allocation is its minimum);
 *   - admission is granted, deferred and refused by the documented rules;
 *   - hyperv's allocation under plenty is demand + buffer, clamped.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "policy.h"

#define MAX_VMS   8    /* per host in the main properties */
#define MANY_VMS  1500 /* per host in the large one */
#define SCENARIOS 500
#define DECISIONS 30 /* per scenario: 15,000 decisions per property */

struct rng {
        uint64_t s;
};

static uint64_t rnd(struct rng *r)
{
        /* xorshift64* */
        r->s ^= r->s >> 12;
        r->s ^= r->s << 25;
        r->s ^= r->s >> 27;
        return r->s * 2685821657736338717ull;
}

static uint64_t rnd_below(struct rng *r, uint64_t n)
{
        return n ? rnd(r) % n : 0;
}

static uint64_t rnd_range(struct rng *r, uint64_t lo, uint64_t hi) /* inclusive */
{
        return lo + rnd_below(r, hi - lo + 1);
}

static bool chance(struct rng *r, unsigned percent)
{
        return rnd_below(r, 100) < percent;
}

static double rnd_unit(struct rng *r)
{
        return (double)(rnd(r) >> 11) / 9007199254740992.0;
}

struct world {
        struct rng rng;
        bool hostile;
        uint64_t seed;
        int decision;
        struct policy_config cfg;
        struct policy_host host;
        struct policy_vm vms[MANY_VMS];
        char names[MANY_VMS][24];
        size_t n;
        uint64_t now;
        struct policy_scratch scratch;
        struct policy_summary sum;
        /* what the decisions covered */
        uint64_t decisions, scarce, overcommitted, over_memory, refused;
        uint64_t admitted, waiting, refused_starts, grows, shrinks;
};

static void dump(const struct world *w)
{
        printf("# seed %llu decision %d kind %s memory %llu now %llu%s%s\n",
               (unsigned long long)w->seed, w->decision, policy_kind_name(w->cfg.kind),
               (unsigned long long)w->host.memory_bytes, (unsigned long long)w->now,
               w->sum.scarcity ? " scarcity" : "", w->sum.overcommitted ? " overcommitted" : "");
        for (size_t i = 0; i < w->n; i++) {
                const struct policy_vm *v = &w->vms[i];
                printf("#  %s phase %d dyn %d min %llu st %llu max %llu buf %u w %u blk %llu "
                       "assigned %llu demand %s%llu stall %s%g%s ext %llu -> target %llu "
                       "ideal %llu %s adm %d\n",
                       v->name, v->phase, v->settings.dynamic,
                       (unsigned long long)v->settings.minimum_bytes,
                       (unsigned long long)v->settings.startup_bytes,
                       (unsigned long long)v->settings.maximum_bytes, v->settings.buffer_percent,
                       v->settings.weight, (unsigned long long)v->settings.block_bytes,
                       (unsigned long long)v->assigned_bytes, v->demand_known ? "" : "?",
                       (unsigned long long)v->demand_bytes, v->stall_known ? "" : "?",
                       v->stall_fraction, v->stall_urgent ? " urgent" : "",
                       (unsigned long long)v->external_bytes, (unsigned long long)v->target_bytes,
                       (unsigned long long)v->ideal_bytes, policy_reason_name(v->reason),
                       v->admission);
        }
}

#define CHECK(w, cond, ...)                                                                        \
        do {                                                                                       \
                if (!(cond)) {                                                                     \
                        dump(w);                                                                   \
                        fail_msg(__VA_ARGS__);                                                     \
                }                                                                                  \
        } while (0)

/* ---- building random worlds ---- */

static struct vm_settings random_settings(struct rng *r)
{
        static const uint64_t blocks[] = {2 * MIB, 2 * MIB, 2 * MIB, 4 * MIB, 64 * MIB, 128 * MIB};
        uint64_t block = blocks[rnd_below(r, 6)];
        uint64_t floor_blocks = (SETTINGS_MINIMUM_FLOOR + block - 1) / block;
        uint64_t min = rnd_range(r, floor_blocks, 2 * GIB / block) * block;
        uint64_t startup = rnd_range(r, min / block, (min + 4 * GIB) / block) * block;
        uint64_t max = rnd_range(r, startup / block, (startup + 8 * GIB) / block) * block;
        struct vm_settings s = {
            .dynamic = chance(r, 85),
            .startup_bytes = startup,
            .minimum_bytes = min,
            .maximum_bytes = max,
            .buffer_percent =
                chance(r, 70) ? (uint32_t)rnd_range(r, 5, 100) : (uint32_t)rnd_range(r, 5, 2000),
            .weight = chance(r, 10) ? 0 : (uint32_t)rnd_range(r, 0, 10000),
            .block_bytes = block,
        };
        assert_int_equal(settings_check(&s, (char[128]){0}, 128), 0);
        return s;
}

static uint64_t random_assigned(struct world *w, const struct vm_settings *s)
{
        struct rng *r = &w->rng;
        uint64_t top = w->hostile ? 3 * s->maximum_bytes : s->maximum_bytes;
        uint64_t a = rnd_range(r, s->minimum_bytes / 2, top);

        if (chance(r, 20))
                a = s->startup_bytes;
        if (chance(r, 90))
                a = size_round_down(a, s->block_bytes);
        return a;
}

static void random_signals(struct world *w, struct policy_vm *v)
{
        struct rng *r = &w->rng;
        const struct vm_settings *s = &v->settings;

        if (chance(r, 30)) {
                v->demand_known = !chance(r, 10);
                v->demand_bytes = rnd_range(r, 0, s->maximum_bytes + s->maximum_bytes / 2);
                if (chance(r, 5))
                        v->demand_bytes = chance(r, 50) ? UINT64_MAX : 0;
        }
        if (chance(r, 40)) {
                v->stall_known = chance(r, 60);
                v->stall_fraction = chance(r, 70) ? 0.0 : rnd_unit(r);
                if (w->hostile && chance(r, 10)) {
                        static const double odd[] = {NAN, -1.0, 5.0, INFINITY, -INFINITY};
                        v->stall_fraction = odd[rnd_below(r, 5)];
                }
        }
        /* A stall reported as it began: for one decision, any VM (a hostile one at will). */
        v->stall_urgent = chance(r, w->hostile ? 50 : 10);
        if (w->cfg.kind == POLICY_EXTERNAL)
                v->external_bytes = chance(r, 30) ? 0 : rnd_range(r, 0, 2 * s->maximum_bytes);
}

static void world_init(struct world *w, uint64_t seed, bool hostile, size_t min_n, size_t max_n)
{
        static const enum policy_kind kinds[] = {POLICY_DYNMEM, POLICY_DYNMEM, POLICY_DYNMEM,
                                                 POLICY_HYPERV, POLICY_STATIC, POLICY_EXTERNAL};
        struct rng *r = &w->rng;
        uint64_t startups = 0;

        w->seed = seed;
        w->rng.s = seed * 0x9E3779B97F4A7C15ull + 1;
        w->hostile = hostile;
        w->cfg.kind = kinds[rnd_below(r, 6)];
        policy_tunables_default(&w->cfg.tunables);
        if (chance(r, 30)) { /* faster hysteresis, to reach the interesting states sooner */
                w->cfg.tunables.shrink_delay_ms = rnd_range(r, 0, 5000);
                w->cfg.tunables.probe_after_ms = rnd_range(r, 0, 5000);
                w->cfg.tunables.probe_rate_permille = (uint32_t)rnd_range(r, 0, 100);
        }
        if (chance(r, 30)) { /* the learned parts over their whole ranges, 0 included */
                w->cfg.tunables.history_halflife_ms = rnd_range(r, 0, 7200000);
                w->cfg.tunables.headroom_permille = (uint32_t)rnd_range(r, 0, 1000);
                w->cfg.tunables.headroom_period_ms = rnd_range(r, 0, 86400000);
                w->cfg.tunables.shrink_step_percent = (uint32_t)rnd_range(r, 1, 100);
                w->cfg.tunables.persistence_max_permille = (uint32_t)rnd_range(r, 0, 1000);
                w->cfg.tunables.grow_band_percent = (uint32_t)rnd_range(r, 0, 100);
                w->cfg.tunables.shrink_band_percent = (uint32_t)rnd_range(r, 0, 1000);
        }
        w->n = rnd_range(r, min_n, max_n);
        memset(w->vms, 0, w->n * sizeof(w->vms[0]));
        w->now = rnd_range(r, 0, 1000000);
        for (size_t i = 0; i < w->n; i++) {
                struct policy_vm *v = &w->vms[i];
                snprintf(w->names[i], sizeof(w->names[i]), "vm%zu", i);
                v->name = w->names[i];
                v->settings = random_settings(r);
                unsigned p = (unsigned)rnd_below(r, 100);
                v->phase = p < 70   ? POLICY_PHASE_RUNNING
                           : p < 85 ? POLICY_PHASE_STARTING
                                    : POLICY_PHASE_OFF;
                if (v->phase == POLICY_PHASE_RUNNING)
                        v->assigned_bytes = random_assigned(w, &v->settings);
                if (v->phase != POLICY_PHASE_OFF)
                        startups += v->settings.startup_bytes;
                v->demand_known = true;
                v->demand_bytes = rnd_range(r, 0, v->settings.maximum_bytes);
                random_signals(w, v);
        }
        /* From a host far too small to one with room to spare. */
        w->host.memory_bytes = (uint64_t)((double)startups * (0.3 + 1.2 * rnd_unit(r)));
        w->host.reserve_bytes = rnd_range(r, 0, 4 * GIB);
}

/* ---- the invariants ---- */

static uint64_t floor_of(const struct world *w, const struct policy_vm *v)
{
        if (w->cfg.kind == POLICY_STATIC || !v->settings.dynamic)
                return v->settings.startup_bytes;
        return v->settings.minimum_bytes;
}

static bool fixed_size(const struct world *w, const struct policy_vm *v)
{
        return w->cfg.kind == POLICY_STATIC || !v->settings.dynamic;
}

static uint64_t deadband(const struct world *w, uint64_t assigned)
{
        uint64_t rel =
            (uint64_t)((long double)assigned * w->cfg.tunables.min_change_permille / 1000);
        return rel > w->cfg.tunables.min_change_bytes ? rel : w->cfg.tunables.min_change_bytes;
}

static uint64_t hyperv_want(const struct policy_vm *v)
{
        const struct vm_settings *s = &v->settings;
        long double want = (long double)v->demand_bytes * (100.0L + s->buffer_percent) / 100.0L;
        uint64_t w = want >= 18446744073709551615.0L ? UINT64_MAX : (uint64_t)want;

        w = size_round_up(w, s->block_bytes);
        return w < s->minimum_bytes   ? s->minimum_bytes
               : w > s->maximum_bytes ? s->maximum_bytes
                                      : w;
}

static void check_memory(struct world *w, uint64_t held)
{
        uint64_t total = 0;

        for (size_t i = 0; i < w->n; i++) {
                const struct policy_vm *v = &w->vms[i];
                if (v->phase == POLICY_PHASE_RUNNING) {
                        total += v->assigned_bytes > v->target_bytes ? v->assigned_bytes
                                                                     : v->target_bytes;
                        if (held > w->host.memory_bytes)
                                CHECK(w, v->target_bytes <= v->assigned_bytes,
                                      "%s grows on a host already over its memory", v->name);
                } else if (v->admission == ADMISSION_ADMIT) {
                        total += v->settings.startup_bytes;
                        CHECK(w, held <= w->host.memory_bytes,
                              "%s admitted on a host already over its memory", v->name);
                }
        }
        if (held <= w->host.memory_bytes)
                CHECK(w, total <= w->host.memory_bytes,
                      "sum of max(assigned, target) %llu exceeds memory %llu",
                      (unsigned long long)total, (unsigned long long)w->host.memory_bytes);
}

static void check_admission(struct world *w)
{
        uint64_t floors = 0;

        for (size_t i = 0; i < w->n; i++)
                if (w->vms[i].phase == POLICY_PHASE_RUNNING)
                        floors += floor_of(w, &w->vms[i]);
        for (size_t i = 0; i < w->n; i++) {
                const struct policy_vm *v = &w->vms[i];
                if (v->phase == POLICY_PHASE_OFF) {
                        CHECK(w, v->target_bytes == 0 && v->admission == ADMISSION_NONE,
                              "%s is off but has a target or an admission", v->name);
                        continue;
                }
                if (v->phase == POLICY_PHASE_RUNNING) {
                        CHECK(w, v->admission == ADMISSION_NONE, "%s runs but was admitted",
                              v->name);
                        continue;
                }
                bool fits = floors + v->settings.startup_bytes <= w->host.memory_bytes;
                CHECK(w, (v->admission == ADMISSION_REFUSE) == !fits,
                      "%s: admission %d but its startup %s next to everybody's floor", v->name,
                      v->admission, fits ? "fits" : "does not fit");
                if (fits)
                        floors += v->settings.startup_bytes;
                if (v->admission == ADMISSION_ADMIT)
                        CHECK(w, v->target_bytes == v->settings.startup_bytes,
                              "%s admitted with %llu, not its startup size", v->name,
                              (unsigned long long)v->target_bytes);
                else
                        CHECK(w, v->target_bytes == 0, "%s not admitted but has a target", v->name);
        }
}

static void check_running_vm(struct world *w, const struct policy_vm *v)
{
        const struct vm_settings *s = &v->settings;

        CHECK(w, strcmp(policy_reason_name(v->reason), "unknown") != 0, "%s: bad reason", v->name);
        if (fixed_size(w, v)) {
                CHECK(w, v->ideal_bytes == s->startup_bytes, "%s: fixed VM's ideal is not startup",
                      v->name);
                return;
        }
        CHECK(w, v->ideal_bytes >= s->minimum_bytes && v->ideal_bytes <= s->maximum_bytes,
              "%s: ideal %llu outside [minimum, maximum]", v->name,
              (unsigned long long)v->ideal_bytes);
        /* Aligned, unless it keeps an unaligned size the backend reported. */
        CHECK(w, v->ideal_bytes % s->block_bytes == 0 || v->ideal_bytes == v->assigned_bytes,
              "%s: ideal not a multiple of the block", v->name);
        if (w->sum.overcommitted)
                CHECK(w, v->ideal_bytes == s->minimum_bytes,
                      "%s: overcommitted but its allocation is not its minimum", v->name);
        /* Never shrunk below the minimum. */
        uint64_t low = v->assigned_bytes < s->minimum_bytes ? v->assigned_bytes : s->minimum_bytes;
        CHECK(w, v->target_bytes >= low, "%s: target %llu below its minimum", v->name,
              (unsigned long long)v->target_bytes);
        if (w->hostile)
                return; /* assigned may exceed the maximum: see test_policy.c */
        CHECK(w, v->target_bytes <= s->maximum_bytes, "%s: target %llu above its maximum", v->name,
              (unsigned long long)v->target_bytes);
        if (w->sum.overcommitted)
                CHECK(w,
                      v->target_bytes <= s->minimum_bytes ||
                          (v->target_bytes <= v->assigned_bytes &&
                           v->target_bytes - s->minimum_bytes < deadband(w, v->assigned_bytes)),
                      "%s: overcommitted host, target %llu above its minimum", v->name,
                      (unsigned long long)v->target_bytes);
        if (w->cfg.kind == POLICY_HYPERV && v->demand_known && !w->sum.scarcity)
                CHECK(w, v->ideal_bytes == hyperv_want(v),
                      "%s: hyperv under plenty gives %llu, not demand + buffer %llu", v->name,
                      (unsigned long long)v->ideal_bytes, (unsigned long long)hyperv_want(v));
}

static void check_allocation_fits(struct world *w)
{
        uint64_t total = 0;

        if (w->sum.overcommitted)
                return;
        for (size_t i = 0; i < w->n; i++) {
                const struct policy_vm *v = &w->vms[i];
                if (v->phase == POLICY_PHASE_RUNNING)
                        total += v->ideal_bytes;
                else if (v->phase == POLICY_PHASE_STARTING && v->admission != ADMISSION_REFUSE)
                        total += v->settings.startup_bytes;
        }
        CHECK(w, total <= w->host.memory_bytes, "allocation %llu exceeds memory %llu",
              (unsigned long long)total, (unsigned long long)w->host.memory_bytes);
}

static void check_all(struct world *w, uint64_t held)
{
        check_memory(w, held);
        check_admission(w);
        check_allocation_fits(w);
        CHECK(w, !w->sum.refused || w->cfg.kind == POLICY_EXTERNAL,
              "a proposal was refused under a built-in policy");
        for (size_t i = 0; i < w->n; i++)
                if (w->vms[i].phase == POLICY_PHASE_RUNNING)
                        check_running_vm(w, &w->vms[i]);
}

/* ---- moving the world on, as a backend would ---- */

static void move_vm(struct world *w, struct policy_vm *v)
{
        struct rng *r = &w->rng;

        if (v->phase == POLICY_PHASE_RUNNING) {
                uint64_t a = v->assigned_bytes, t = v->target_bytes;
                /* Part of the way, or all of it: never past the target. */
                uint64_t moved = chance(r, 50) ? (t > a ? t - a : a - t)
                                               : rnd_below(r, (t > a ? t - a : a - t) + 1);
                v->assigned_bytes = t > a ? a + moved : a - moved;
                v->requested_bytes = t;
                if (chance(r, 2)) { /* stopped */
                        v->phase = POLICY_PHASE_OFF;
                        v->assigned_bytes = v->requested_bytes = 0;
                }
        } else if (v->phase == POLICY_PHASE_STARTING) {
                if (v->admission == ADMISSION_ADMIT) {
                        v->phase = POLICY_PHASE_RUNNING;
                        v->assigned_bytes = v->requested_bytes = v->settings.startup_bytes;
                        v->memory = (struct policy_vm_memory){0};
                } else if (v->admission == ADMISSION_REFUSE && chance(r, 50)) {
                        v->phase = POLICY_PHASE_OFF;
                }
        } else if (chance(r, 5)) {
                v->phase = POLICY_PHASE_STARTING;
        }
        random_signals(w, v);
}

static void step(struct world *w)
{
        uint64_t held = 0;

        for (size_t i = 0; i < w->n; i++)
                if (w->vms[i].phase == POLICY_PHASE_RUNNING)
                        held += w->vms[i].assigned_bytes;
        assert_int_equal(
            policy_decide(&w->cfg, &w->host, w->vms, w->n, w->now, &w->scratch, &w->sum), 0);
        check_all(w, held);
        w->decisions++;
        w->scarce += w->sum.scarcity;
        w->overcommitted += w->sum.overcommitted;
        w->over_memory += held > w->host.memory_bytes;
        w->refused += w->sum.refused;
        for (size_t i = 0; i < w->n; i++) {
                const struct policy_vm *v = &w->vms[i];
                w->admitted += v->admission == ADMISSION_ADMIT;
                w->waiting += v->admission == ADMISSION_WAIT;
                w->refused_starts += v->admission == ADMISSION_REFUSE;
                w->grows += v->phase == POLICY_PHASE_RUNNING && v->target_bytes > v->assigned_bytes;
                w->shrinks +=
                    v->phase == POLICY_PHASE_RUNNING && v->target_bytes < v->assigned_bytes;
        }
        for (size_t i = 0; i < w->n; i++)
                move_vm(w, &w->vms[i]);
        if (chance(&w->rng, 5)) /* the operator lowers (or raises) the host's memory */
                w->host.memory_bytes =
                    (uint64_t)((double)w->host.memory_bytes * (0.5 + 0.7 * rnd_unit(&w->rng)));
        w->now += chance(&w->rng, 5) ? 0 : rnd_range(&w->rng, 100, 5000);
        if (w->hostile && chance(&w->rng, 3)) /* a clock that jumps back */
                w->now -= rnd_range(&w->rng, 0, w->now);
}

static void print_coverage(const struct world *w)
{
        printf("# %llu decisions: %llu scarce, %llu overcommitted, %llu on a host over its memory, "
               "%llu external proposals refused; %llu admissions, %llu waits, %llu refusals, "
               "%llu grows, %llu shrinks\n",
               (unsigned long long)w->decisions, (unsigned long long)w->scarce,
               (unsigned long long)w->overcommitted, (unsigned long long)w->over_memory,
               (unsigned long long)w->refused, (unsigned long long)w->admitted,
               (unsigned long long)w->waiting, (unsigned long long)w->refused_starts,
               (unsigned long long)w->grows, (unsigned long long)w->shrinks);
        /* Every kind of situation was met. */
        assert_true(w->scarce > 0 && w->overcommitted > 0 && w->over_memory > 0);
        assert_true(w->admitted > 0 && w->waiting > 0 && w->refused_starts > 0);
        assert_true(w->grows > 0 && w->shrinks > 0);
}

static void run_property(bool hostile, uint64_t first_seed)
{
        struct world *w = calloc(1, sizeof(*w));

        assert_non_null(w);
        assert_int_equal(policy_scratch_reserve(&w->scratch, MAX_VMS), 0);
        for (uint64_t seed = first_seed; seed < first_seed + SCENARIOS; seed++) {
                world_init(w, seed, hostile, 1, MAX_VMS);
                for (w->decision = 0; w->decision < DECISIONS; w->decision++)
                        step(w);
        }
        print_coverage(w);
        assert_true(w->refused > 0);
        policy_scratch_free(&w->scratch);
        free(w);
}

static void invariants_hold_on_random_hosts(void **state)
{
        run_property(false, 1);
}

static void invariants_hold_on_hostile_inputs(void **state)
{
        run_property(true, 100001);
}

/* A long life of one world: many decisions on the same VMs. */
static void invariants_hold_over_a_long_run(void **state)
{
        struct world *w = calloc(1, sizeof(*w));

        assert_non_null(w);
        assert_int_equal(policy_scratch_reserve(&w->scratch, MAX_VMS), 0);
        for (uint64_t seed = 7; seed < 12; seed++) {
                world_init(w, seed, false, 1, MAX_VMS);
                w->cfg.kind = POLICY_DYNMEM;
                for (w->decision = 0; w->decision < 3000; w->decision++)
                        step(w);
        }
        policy_scratch_free(&w->scratch);
        free(w);
}

/* Hosts with hundreds of VMs: the sorts and the water-filling at scale. */
static void invariants_hold_with_many_vms(void **state)
{
        struct world *w = calloc(1, sizeof(*w));

        assert_non_null(w);
        assert_int_equal(policy_scratch_reserve(&w->scratch, MANY_VMS), 0);
        for (uint64_t seed = 500; seed < 512; seed++) {
                world_init(w, seed, seed % 2, 200, MANY_VMS);
                for (w->decision = 0; w->decision < 10; w->decision++)
                        step(w);
        }
        policy_scratch_free(&w->scratch);
        free(w);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(invariants_hold_on_random_hosts),
            cmocka_unit_test(invariants_hold_on_hostile_inputs),
            cmocka_unit_test(invariants_hold_over_a_long_run),
            cmocka_unit_test(invariants_hold_with_many_vms),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
