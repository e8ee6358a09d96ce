/*
 * policy: the balancing decision, shared by dynmemd, dynmem-sim and the tests.
 * Pure: no I/O, no clock, no globals. See policy.h for the three stages
 * (estimate, allocate, grant) and docs/policy.md for the reasoning.
 */
#include "policy.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[] = {
        [REASON_NONE] = "none",
        [REASON_DEMAND] = "demand",
        [REASON_MINIMUM] = "minimum",
        [REASON_MAXIMUM] = "maximum",
        [REASON_SCARCITY] = "scarcity",
        [REASON_STALL] = "stall",
        [REASON_PROBE] = "probe",
        [REASON_HOLD] = "hold",
        [REASON_WAITING] = "waiting",
        [REASON_NO_SIGNAL] = "no-signal",
        [REASON_STATIC] = "static",
        [REASON_STARTUP] = "startup",
        [REASON_EXTERNAL] = "external",
        [REASON_OVERCOMMITTED] = "overcommitted",
};

const char *policy_reason_name(enum policy_reason r)
{
        if ((size_t)r >= sizeof(reason_names) / sizeof(reason_names[0]) || !reason_names[r])
                return "unknown";
        return reason_names[r];
}

static const char *const kind_names[] = {
        [POLICY_DYNMEM] = "dynmem",
        [POLICY_STATIC] = "static",
        [POLICY_HYPERV] = "hyperv",
        [POLICY_EXTERNAL] = "exec",
};

const char *policy_kind_name(enum policy_kind kind)
{
        return (size_t)kind < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[kind]
                                                                          : "unknown";
}

int policy_kind_parse(const char *text, enum policy_kind *ret_kind, const char **ret_command)
{
        if (!text)
                return -EINVAL;
        if (strncmp(text, "exec:", 5) == 0) {
                if (text[5] == '\0')
                        return -EINVAL;
                *ret_kind = POLICY_EXTERNAL;
                if (ret_command)
                        *ret_command = text + 5;
                return 0;
        }
        for (size_t i = 0; i < sizeof(kind_names) / sizeof(kind_names[0]); i++) {
                if (i != POLICY_EXTERNAL && strcmp(text, kind_names[i]) == 0) {
                        *ret_kind = (enum policy_kind)i;
                        if (ret_command)
                                *ret_command = NULL;
                        return 0;
                }
        }
        return -EINVAL;
}

void policy_tunables_default(struct policy_tunables *t)
{
        *t = (struct policy_tunables){
                .min_change_bytes = 16 * MIB,
                .min_change_permille = 30,
                .shrink_delay_ms = 30 * MSEC_PER_SEC,
                .shrink_step_percent = 25,
                .trend_lookahead_ms = 5 * MSEC_PER_SEC,
                .stall_threshold_permille = 10,
                .stall_grow_percent = 10,
                .probe_after_ms = 60 * MSEC_PER_SEC,
                .probe_rate_permille = 2,
                .probe_max_percent = 25,
                .probe_step_permille = 10,
                .probe_fine_percent = 5,
                .stall_backoff_max = 8,
                .stall_memory_ms = 600 * MSEC_PER_SEC,
        };
}

int policy_scratch_reserve(struct policy_scratch *s, size_t n)
{
        if (n <= s->capacity)
                return 0;
        struct policy_sort_item *items = realloc(s->items, n * sizeof(*items));
        if (!items)
                return -ENOMEM;
        s->items = items;
        uint32_t *index = realloc(s->index, n * sizeof(*index));
        if (!index)
                return -ENOMEM;
        s->index = index;
        s->capacity = n;
        return 0;
}

void policy_scratch_free(struct policy_scratch *s)
{
        if (!s)
                return;
        free(s->items);
        free(s->index);
        *s = (struct policy_scratch){0};
}

/* ---- small arithmetic helpers (saturating, bytes) ---- */

static uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
        return v < lo ? lo : v > hi ? hi : v;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* v * (1000 + permille) / 1000, saturating; permille may be large (buffer 2000 % = 20000). */
static uint64_t scale_up_permille(uint64_t v, uint64_t permille)
{
        long double r = (long double)v * (1000.0L + (long double)permille) / 1000.0L;
        return r >= (long double)UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

static uint64_t scale_permille(uint64_t v, uint64_t permille)
{
        return (uint64_t)((long double)v * (long double)permille / 1000.0L);
}

static uint64_t deadband(const struct policy_tunables *t, uint64_t assigned)
{
        uint64_t rel = scale_permille(assigned, t->min_change_permille);
        return rel > t->min_change_bytes ? rel : t->min_change_bytes;
}

static uint64_t ms_since(uint64_t now, uint64_t then)
{
        return now > then ? now - then : 0;
}

/* ---- stage 1: estimate floor, need and want ---- */

static void estimate_fixed(struct policy_vm *vm, enum policy_reason reason)
{
        vm->floor_bytes = vm->need_bytes = vm->want_bytes = vm->settings.startup_bytes;
        vm->reason = reason;
}

/* Keep the clamped size when the guest says nothing we can use. */
static void estimate_no_signal(struct policy_vm *vm)
{
        const struct vm_settings *s = &vm->settings;

        vm->floor_bytes = s->minimum_bytes;
        vm->need_bytes = vm->want_bytes = clamp_u64(
                size_round_up(vm->assigned_bytes, s->block_bytes), s->minimum_bytes,
                s->maximum_bytes);
        vm->reason = REASON_NO_SIGNAL;
}

/* need = demand, want = demand + buffer; both rounded up to the block, clamped. */
static void estimate_from_demand(struct policy_vm *vm, uint64_t demand)
{
        const struct vm_settings *s = &vm->settings;
        uint64_t need = size_round_up(demand, s->block_bytes);
        uint64_t want = size_round_up(scale_up_permille(demand, 10ull * s->buffer_percent),
                                      s->block_bytes);

        vm->floor_bytes = s->minimum_bytes;
        vm->need_bytes = clamp_u64(need, s->minimum_bytes, s->maximum_bytes);
        vm->want_bytes = clamp_u64(want, s->minimum_bytes, s->maximum_bytes);
        vm->reason = want > s->maximum_bytes   ? REASON_MAXIMUM
                     : want < s->minimum_bytes ? REASON_MINIMUM
                                               : REASON_DEMAND;
}

/* Smoothed demand slope (bytes per ms, rises only count) for the trend projection. */
static uint64_t trend_projection(struct policy_vm *vm, uint64_t now,
                                 const struct policy_tunables *t)
{
        struct policy_vm_memory *m = &vm->memory;
        uint64_t demand = vm->demand_bytes;

        if (m->has_demand && now > m->last_demand_ms) {
                double slope = ((double)demand - (double)m->last_demand_bytes) /
                               (double)(now - m->last_demand_ms);
                m->demand_slope = 0.5 * m->demand_slope + 0.5 * slope;
        }
        if (!m->has_demand || now > m->last_demand_ms) {
                m->last_demand_bytes = demand;
                m->last_demand_ms = now;
                m->has_demand = true;
        }
        if (m->demand_slope <= 0.0)
                return 0;
        double extra = m->demand_slope * (double)t->trend_lookahead_ms;
        /* A projection never more than doubles the demand. */
        return extra >= (double)demand ? demand : (uint64_t)extra;
}

static bool stalling(const struct policy_vm *vm, const struct policy_tunables *t)
{
        /* NaN and negative shares compare false: no stall. */
        return vm->stall_known && vm->stall_fraction * 1000.0 >= t->stall_threshold_permille;
}

/* A figure is believed to under-count at most 4 times. */
#define CORRECTION_MAX 4000

static uint64_t backoff_ms(const struct policy_vm_memory *m, uint64_t base)
{
        return base * (m->stall_backoff ? m->stall_backoff : 1);
}

static bool correction_fresh(const struct policy_vm_memory *m, uint64_t now,
                             const struct policy_tunables *t)
{
        return m->correction_permille &&
               ms_since(now, m->correction_ms) < backoff_ms(m, t->stall_memory_ms);
}

/* A probe ends: the guest's true working set is `share` of its reported demand. */
static void probe_learn(struct policy_vm_memory *m, uint64_t share_permille, uint64_t now,
                        const struct policy_tunables *t)
{
        uint32_t c = (uint32_t)(share_permille > CORRECTION_MAX ? CORRECTION_MAX : share_permille);
        bool same = m->correction_permille && c * 10 >= m->correction_permille * 9 &&
                    c * 10 <= m->correction_permille * 11;

        if (!same)
                m->stall_backoff = 1;
        else if (m->stall_backoff < t->stall_backoff_max)
                m->stall_backoff *= 2;
        m->correction_permille = c ? c : 1;
        m->correction_ms = now;
        m->probing = false;
        m->probe_permille = 0;
}

/*
 * A stall. While probing it marks the edge: the size held now is about the
 * guest's true working set, and the reported demand is corrected by that
 * share. A guest that stalls while it holds everything its figure asks for
 * (assigned >= want) under-counts: it gets at least its current size plus
 * stall_grow_percent plus the stalled share, and that size is remembered as
 * too small. A guest that stalls below its want is explained by the missing
 * buffer (a rise not yet followed, or scarcity): its figure is believed, so
 * stalls cannot make VMs take memory from each other in turn.
 */
static void estimate_stall(struct policy_vm *vm, uint64_t reported, uint64_t now,
                           const struct policy_tunables *t)
{
        struct policy_vm_memory *m = &vm->memory;
        const struct vm_settings *s = &vm->settings;

        m->last_stall_ms = now;
        if (m->probing && reported > 0) {
                uint64_t share = vm->assigned_bytes * 1000 / reported;
                probe_learn(m, share > 1000 ? 1000 : share, now, t);
        }
        if (vm->assigned_bytes + s->block_bytes < vm->want_bytes) {
                m->stall_streak = 0;
                return;
        }
        /* One stall at want may be a rise not yet reported; a second in a row is not. */
        if (++m->stall_streak < 2 || reported == 0)
                return;
        /* The working set is more than the VM holds: correct the figure upward. */
        double stall = vm->stall_fraction > 1.0 ? 1.0 : vm->stall_fraction;
        uint64_t permille = 10ull * t->stall_grow_percent + (uint64_t)(stall * 1000.0);
        uint64_t working = scale_up_permille(vm->assigned_bytes, permille);
        uint64_t share = working / (reported / 1000 ? reported / 1000 : 1);
        if (share > m->correction_permille || !correction_fresh(m, now, t))
                probe_learn(m, share, now, t);
        uint64_t short_need = clamp_u64(size_round_up(working, s->block_bytes), s->minimum_bytes,
                                        s->maximum_bytes);
        if (short_need > vm->need_bytes)
                vm->need_bytes = short_need;
        if (vm->need_bytes > vm->want_bytes) {
                vm->want_bytes = vm->need_bytes;
                vm->reason = REASON_STALL;
        }
}

/*
 * A guest that reports stall information, has not stalled for
 * probe_after_ms and has no fresh correction is probed toward its true
 * working set: its target drops at once to the fine zone (probe_fine_percent
 * above its demand) and descends from there probe_rate_permille per second,
 * in fine steps, until the guest stalls (the edge) or the target reaches
 * probe_max_percent under the reported demand. Either way the share learned
 * corrects the reported demand for stall_memory_ms (doubled each time the
 * same share is found again, up to stall_backoff_max), and the buffer is
 * kept on top of the corrected demand.
 */
static void estimate_probe(struct policy_vm *vm, uint64_t reported, uint64_t now,
                           const struct policy_tunables *t)
{
        struct policy_vm_memory *m = &vm->memory;
        const struct vm_settings *s = &vm->settings;

        m->probe_demand_bytes = reported;
        if (!m->probing) {
                if (ms_since(now, m->last_stall_ms) < t->probe_after_ms ||
                    t->probe_max_percent == 0 || correction_fresh(m, now, t) || reported == 0)
                        return;
                m->probing = true;
                m->probe_permille = 0;
        }
        uint64_t dt = m->decided ? ms_since(now, m->last_decision_ms) : 0;
        uint64_t step = (uint64_t)t->probe_rate_permille * dt / MSEC_PER_SEC;
        m->probe_permille = (uint32_t)(m->probe_permille + step > 1000 ? 1000
                                                                        : m->probe_permille + step);
        uint64_t zone = scale_up_permille(reported, 10ull * t->probe_fine_percent);
        uint64_t probed = scale_permille(zone, 1000 - m->probe_permille);
        uint64_t floor = scale_permille(reported, 10ull * (100 - t->probe_max_percent));
        if (probed <= floor) {
                /*
                 * No stall down to the floor. Learn only what the VM really held without
                 * stalling: below its figure, the figure over-counts that much; at or above
                 * it (held up by its minimum), the figure stands.
                 */
                probe_learn(m, vm->assigned_bytes < reported ? vm->assigned_bytes * 1000 / reported
                                                             : 1000,
                            now, t);
                return;
        }
        probed = clamp_u64(size_round_up(probed, s->block_bytes), s->minimum_bytes,
                           s->maximum_bytes);
        if (probed < vm->want_bytes) {
                vm->want_bytes = probed;
                if (vm->need_bytes > probed)
                        vm->need_bytes = probed;
                vm->reason = REASON_PROBE;
        }
}

/* The dynmem estimate: trend, learned correction, stall, probe. */
static void estimate_dynmem(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t)
{
        struct policy_vm_memory *m = &vm->memory;
        uint64_t reported = vm->demand_bytes, demand = reported;
        uint64_t trend = trend_projection(vm, now, t);

        if (!m->decided)
                m->last_stall_ms = now; /* quiet time counts from the first decision */
        if (vm->stall_known && correction_fresh(m, now, t))
                demand = scale_permille(reported, m->correction_permille);
        estimate_from_demand(vm, add_sat(demand, trend));
        if (!vm->stall_known)
                return;
        if (stalling(vm, t)) {
                estimate_stall(vm, reported, now, t);
        } else {
                m->stall_streak = 0;
                estimate_probe(vm, reported, now, t);
        }
}

static void estimate_one(const struct policy_config *cfg, struct policy_vm *vm, uint64_t now)
{
        const struct policy_tunables *t = &cfg->tunables;

        if (vm->phase == POLICY_PHASE_STARTING) {
                estimate_fixed(vm, REASON_STARTUP);
                return;
        }
        if (cfg->kind == POLICY_STATIC || !vm->settings.dynamic) {
                estimate_fixed(vm, REASON_STATIC);
                return;
        }
        if (cfg->kind == POLICY_EXTERNAL) {
                const struct vm_settings *s = &vm->settings;
                uint64_t prev = vm->memory.last_target_bytes ? vm->memory.last_target_bytes
                                                             : vm->assigned_bytes;
                uint64_t want = vm->external_bytes ? vm->external_bytes : prev;

                want = clamp_u64(size_round_up(want, s->block_bytes), s->minimum_bytes,
                                 s->maximum_bytes);
                vm->floor_bytes = s->minimum_bytes;
                vm->need_bytes = vm->want_bytes = want;
                vm->reason = REASON_EXTERNAL;
                return;
        }
        if (!vm->demand_known) {
                estimate_no_signal(vm);
                return;
        }
        if (cfg->kind == POLICY_HYPERV) {
                estimate_from_demand(vm, vm->demand_bytes);
                return;
        }
        estimate_dynmem(vm, now, t);
}

/* ---- stage 2: allocate the host's memory ---- */

enum fill_stage {
        FILL_FLOOR_TO_NEED,
        FILL_NEED_TO_WANT,
};

static void fill_levels(const struct policy_vm *vm, enum fill_stage stage, uint64_t *lo,
                        uint64_t *hi)
{
        *lo = stage == FILL_FLOOR_TO_NEED ? vm->floor_bytes : vm->need_bytes;
        *hi = stage == FILL_FLOOR_TO_NEED ? vm->need_bytes : vm->want_bytes;
}

static int sort_item_ascending(const void *a, const void *b)
{
        const struct policy_sort_item *x = a, *y = b;

        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Weighted water-filling: hand out up to `budget` bytes on top of each VM's
 * lower level, VM i receiving at most its room (upper - lower), in proportion
 * to its weight. Weight-0 VMs take part only in the zero pass, which shares
 * equally what the others could not use. Shares are rounded down to each
 * VM's block. Adds to target_bytes; returns what is left of the budget.
 */
static uint64_t waterfill(struct policy_vm *vms, const uint32_t *idx, size_t n, uint64_t budget,
                          enum fill_stage stage, struct policy_scratch *scr, bool zero_pass)
{
        struct policy_sort_item *items = scr->items;
        size_t m = 0;
        double wsum = 0.0;

        for (size_t k = 0; k < n; k++) {
                const struct policy_vm *vm = &vms[idx[k]];
                uint64_t lo, hi;
                bool zero = vm->settings.weight == 0;

                fill_levels(vm, stage, &lo, &hi);
                if (hi <= lo || zero != zero_pass)
                        continue;
                double w = zero_pass ? 1.0 : (double)vm->settings.weight;
                items[m++] = (struct policy_sort_item){(double)(hi - lo) / w, idx[k]};
                wsum += w;
        }
        /* Ascending room per unit of weight: the VMs that fill up first come first. */
        qsort(items, m, sizeof(*items), sort_item_ascending);

        uint64_t left = budget;
        for (size_t i = 0; i < m && left > 0; i++) {
                struct policy_vm *vm = &vms[items[i].index];
                uint64_t lo, hi;
                double w = zero_pass ? 1.0 : (double)vm->settings.weight;

                fill_levels(vm, stage, &lo, &hi);
                double share = (double)left * w / wsum;
                uint64_t give = share >= (double)(hi - lo) ? hi - lo : (uint64_t)share;

                give = size_round_down(give > left ? left : give, vm->settings.block_bytes);
                vm->target_bytes += give;
                left -= give;
                wsum -= w;
        }
        return left;
}

static void set_targets(struct policy_vm *vms, const uint32_t *idx, size_t n, size_t level)
{
        for (size_t k = 0; k < n; k++) {
                struct policy_vm *vm = &vms[idx[k]];
                vm->target_bytes = level == 0   ? vm->floor_bytes
                                   : level == 1 ? vm->need_bytes
                                                : vm->want_bytes;
        }
}

/*
 * Decide who takes part: running VMs, and starting VMs whose startup size
 * fits next to everybody's floor (the others are refused). Returns the
 * number of participants written to idx.
 */
static size_t admit_candidates(struct policy_vm *vms, size_t n, uint64_t memory, uint32_t *idx,
                               struct policy_summary *sum)
{
        uint64_t floors = 0;
        size_t k = 0;

        for (size_t i = 0; i < n; i++)
                if (vms[i].phase == POLICY_PHASE_RUNNING)
                        floors = add_sat(floors, vms[i].floor_bytes);
        for (size_t i = 0; i < n; i++) {
                struct policy_vm *vm = &vms[i];

                vm->admission = ADMISSION_NONE;
                if (vm->phase == POLICY_PHASE_OFF) {
                        vm->target_bytes = vm->ideal_bytes = 0;
                        continue;
                }
                if (vm->phase == POLICY_PHASE_STARTING) {
                        if (add_sat(floors, vm->floor_bytes) > memory) {
                                vm->admission = ADMISSION_REFUSE;
                                vm->target_bytes = vm->ideal_bytes = 0;
                                continue;
                        }
                        floors = add_sat(floors, vm->floor_bytes);
                        vm->admission = ADMISSION_WAIT;
                }
                idx[k++] = (uint32_t)i;
        }
        sum->sum_floor_bytes = floors;
        return k;
}

static void allocate(const struct policy_host *host, struct policy_vm *vms, const uint32_t *idx,
                     size_t k, struct policy_scratch *scr, struct policy_summary *sum)
{
        uint64_t memory = host->memory_bytes;

        sum->sum_need_bytes = sum->sum_want_bytes = 0;
        for (size_t j = 0; j < k; j++) {
                sum->sum_need_bytes = add_sat(sum->sum_need_bytes, vms[idx[j]].need_bytes);
                sum->sum_want_bytes = add_sat(sum->sum_want_bytes, vms[idx[j]].want_bytes);
        }
        if (sum->sum_want_bytes <= memory) {
                set_targets(vms, idx, k, 2);
        } else if (sum->sum_need_bytes <= memory) {
                sum->scarcity = true;
                set_targets(vms, idx, k, 1);
                uint64_t left = waterfill(vms, idx, k, memory - sum->sum_need_bytes,
                                          FILL_NEED_TO_WANT, scr, false);
                waterfill(vms, idx, k, left, FILL_NEED_TO_WANT, scr, true);
        } else if (sum->sum_floor_bytes <= memory) {
                sum->scarcity = true;
                set_targets(vms, idx, k, 0);
                uint64_t left = waterfill(vms, idx, k, memory - sum->sum_floor_bytes,
                                          FILL_FLOOR_TO_NEED, scr, false);
                waterfill(vms, idx, k, left, FILL_FLOOR_TO_NEED, scr, true);
        } else {
                sum->scarcity = sum->overcommitted = true;
                set_targets(vms, idx, k, 0);
        }
        for (size_t j = 0; j < k; j++) {
                struct policy_vm *vm = &vms[idx[j]];

                vm->ideal_bytes = vm->target_bytes;
                if (vm->target_bytes < vm->want_bytes)
                        vm->reason = sum->overcommitted ? REASON_OVERCOMMITTED : REASON_SCARCITY;
                vm->ideal_reason = vm->reason;
        }
}

/* ---- stage 3: smooth (dynmem only), then grant ---- */

/*
 * What "keep the current size" means while a resize is in flight: the
 * request stands if it moves toward the ideal without passing it; else the
 * VM stays where it is.
 */
static uint64_t hold_target(const struct policy_vm *vm)
{
        uint64_t a = vm->assigned_bytes, r = vm->requested_bytes, ideal = vm->ideal_bytes;
        uint64_t lo = a < ideal ? a : ideal, hi = a < ideal ? ideal : a;

        return r && r >= lo && r <= hi ? r : a;
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
        uint64_t zone = size_round_up(scale_up_permille(vm->memory.probe_demand_bytes,
                                                        10ull * t->probe_fine_percent),
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
        vm->target_bytes = size_round_down(a - step, block);
}

/*
 * Hysteresis of the dynmem kind: grow at once; ignore changes smaller than
 * the deadband; shrink only after the surplus has lasted shrink_delay_ms, and
 * then by at most shrink_step_percent of the VM per decision. Under scarcity
 * shrinks skip the delay and the steps (the memory is wanted elsewhere) but
 * still ignore changes within the deadband; when someone waits for memory
 * (`release`), every hold is released.
 */
static void smooth_one(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t,
                       bool scarcity, bool release)
{
        struct policy_vm_memory *m = &vm->memory;
        uint64_t a = vm->assigned_bytes, ideal = vm->ideal_bytes, db = deadband(t, a);

        if (vm->want_bytes + db <= a) {
                if (!m->surplus) {
                        m->surplus = true;
                        m->surplus_since_ms = now;
                }
        } else {
                m->surplus = false;
        }
        vm->target_bytes = ideal;
        if (ideal >= a) {
                if (ideal - a < db && vm->need_bytes <= a && vm->reason != REASON_STALL)
                        hold(vm);
                return;
        }
        if (release)
                return;
        if (vm->reason == REASON_PROBE && !scarcity) {
                probe_step(vm, t);
                return;
        }
        if (a - ideal < db ||
            (!scarcity && (!m->surplus || ms_since(now, m->surplus_since_ms) < t->shrink_delay_ms))) {
                hold(vm);
                return;
        }
        if (scarcity)
                return;
        uint64_t step = scale_permille(a, 10ull * t->shrink_step_percent);
        if (step < db)
                step = db;
        if (a - ideal > step)
                vm->target_bytes = size_round_up(a - step, vm->settings.block_bytes);
}

static void smooth(const struct policy_config *cfg, struct policy_vm *vms, const uint32_t *idx,
                   size_t k, uint64_t now, bool scarcity, bool release)
{
        for (size_t j = 0; j < k; j++) {
                struct policy_vm *vm = &vms[idx[j]];

                vm->target_bytes = vm->ideal_bytes;
                vm->reason = vm->ideal_reason;
                if (cfg->kind != POLICY_DYNMEM || vm->phase != POLICY_PHASE_RUNNING ||
                    !vm->settings.dynamic || !vm->demand_known)
                        continue;
                smooth_one(vm, now, &cfg->tunables, scarcity, release);
        }
}

static int grow_first(const void *a, const void *b)
{
        const struct policy_sort_item *x = a, *y = b;

        /* key = -(weight * 2^40 + shortfall in MiB): heavier first, then the shortest */
        if (x->key != y->key)
                return x->key < y->key ? -1 : 1;
        return x->index < y->index ? -1 : x->index > y->index;
}

/*
 * Grant: shrinks are free to go; starting VMs are admitted when their
 * startup size is free now; grows take only memory free now, heavier VMs
 * first. Returns true when some starter or grower could not get all it asked.
 */
static bool grant(const struct policy_host *host, struct policy_vm *vms, const uint32_t *idx,
                  size_t k, struct policy_scratch *scr)
{
        uint64_t held = 0, asked = 0, free_now;
        size_t growers = 0;
        bool short_of_memory = false;

        for (size_t j = 0; j < k; j++)
                if (vms[idx[j]].phase == POLICY_PHASE_RUNNING)
                        held = add_sat(held, vms[idx[j]].assigned_bytes);
        free_now = held >= host->memory_bytes ? 0 : host->memory_bytes - held;

        for (size_t j = 0; j < k; j++) {
                struct policy_vm *vm = &vms[idx[j]];

                if (vm->phase == POLICY_PHASE_STARTING) {
                        if (vm->settings.startup_bytes <= free_now) {
                                vm->admission = ADMISSION_ADMIT;
                                vm->target_bytes = vm->settings.startup_bytes;
                                free_now -= vm->settings.startup_bytes;
                        } else {
                                vm->admission = ADMISSION_WAIT;
                                vm->target_bytes = 0;
                                short_of_memory = true;
                        }
                        continue;
                }
                if (vm->target_bytes > vm->assigned_bytes) {
                        uint64_t grow = vm->target_bytes - vm->assigned_bytes;
                        double w = (double)vm->settings.weight;
                        double shortfall = vm->need_bytes > vm->assigned_bytes
                                                   ? (double)(vm->need_bytes - vm->assigned_bytes)
                                                   : 0.0;
                        scr->items[growers++] = (struct policy_sort_item){
                                -(w * 1099511627776.0 + shortfall / (double)MIB), idx[j]};
                        asked = add_sat(asked, grow);
                }
        }
        if (asked <= free_now)
                return short_of_memory;
        qsort(scr->items, growers, sizeof(*scr->items), grow_first);
        for (size_t g = 0; g < growers; g++) {
                struct policy_vm *vm = &vms[scr->items[g].index];
                uint64_t grow = vm->target_bytes - vm->assigned_bytes;

                if (grow > free_now) {
                        grow = size_round_down(free_now, vm->settings.block_bytes);
                        vm->target_bytes = vm->assigned_bytes + grow;
                        vm->reason = REASON_WAITING;
                        short_of_memory = true;
                }
                free_now -= grow;
        }
        return short_of_memory;
}

/*
 * An external proposal that does not fit the host is refused as a whole:
 * every VM keeps its previous target, and the refusal is reported.
 */
static void external_check(const struct policy_host *host, struct policy_vm *vms,
                           const uint32_t *idx, size_t k, struct policy_summary *sum)
{
        uint64_t total = 0;

        for (size_t j = 0; j < k; j++)
                total = add_sat(total, vms[idx[j]].want_bytes);
        if (total <= host->memory_bytes)
                return;
        sum->refused = true;
        for (size_t j = 0; j < k; j++) {
                struct policy_vm *vm = &vms[idx[j]];
                uint64_t prev = vm->memory.last_target_bytes ? vm->memory.last_target_bytes
                                                             : vm->assigned_bytes;

                if (vm->phase != POLICY_PHASE_RUNNING || !vm->settings.dynamic)
                        continue;
                vm->need_bytes = vm->want_bytes =
                        clamp_u64(prev, vm->settings.minimum_bytes, vm->settings.maximum_bytes);
        }
}

int policy_decide(const struct policy_config *cfg, const struct policy_host *host,
                  struct policy_vm *vms, size_t n, uint64_t now_ms, struct policy_scratch *scratch,
                  struct policy_summary *ret_summary)
{
        struct policy_summary sum = {0};

        if (scratch->capacity < n)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                vms[i].reason = REASON_NONE;
                if (vms[i].phase != POLICY_PHASE_OFF)
                        estimate_one(cfg, &vms[i], now_ms);
        }
        uint32_t *idx = scratch->index;
        size_t k = admit_candidates(vms, n, host->memory_bytes, idx, &sum);

        if (cfg->kind == POLICY_EXTERNAL)
                external_check(host, vms, idx, k, &sum);

        allocate(host, vms, idx, k, scratch, &sum);
        smooth(cfg, vms, idx, k, now_ms, sum.scarcity, false);
        if (grant(host, vms, idx, k, scratch) && cfg->kind == POLICY_DYNMEM) {
                /* Someone waits for memory that a hold keeps: release the holds. */
                smooth(cfg, vms, idx, k, now_ms, sum.scarcity, true);
                grant(host, vms, idx, k, scratch);
        }
        for (size_t j = 0; j < k; j++) {
                struct policy_vm *vm = &vms[idx[j]];

                sum.sum_target_bytes = add_sat(sum.sum_target_bytes, vm->target_bytes);
                vm->memory.last_decision_ms = now_ms;
                vm->memory.decided = true;
                vm->memory.last_target_bytes = vm->ideal_bytes;
        }
        if (ret_summary)
                *ret_summary = sum;
        return 0;
}
