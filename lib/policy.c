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
                .probe_contention_percent = 70,
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
        items = realloc(s->spare, n * sizeof(*items));
        if (!items)
                return -ENOMEM;
        s->spare = items;
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
        free(s->spare);
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

/* v * permille / 1000 in 128 bits, saturating. */
static uint64_t scale_permille(uint64_t v, uint64_t permille)
{
        if (permille == 0 || v <= UINT64_MAX / permille)
                return v * permille / 1000; /* the common case, without 128-bit division */
        unsigned __int128 r = (unsigned __int128)v * permille / 1000;
        return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

/* v * (1000 + permille) / 1000, saturating; permille may be large (buffer 2000 % = 20000). */
static uint64_t scale_up_permille(uint64_t v, uint64_t permille)
{
        return scale_permille(v, 1000 + permille);
}

/* Block sizes are powers of two (settings_check): round with masks. */
static uint64_t block_up(uint64_t v, uint64_t block)
{
        uint64_t mask = block - 1;
        return v > UINT64_MAX - mask ? UINT64_MAX & ~mask : (v + mask) & ~mask;
}

static uint64_t block_down(uint64_t v, uint64_t block)
{
        return v & ~(block - 1);
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
                block_up(vm->assigned_bytes, s->block_bytes), s->minimum_bytes,
                s->maximum_bytes);
        vm->reason = REASON_NO_SIGNAL;
}

/* need = demand, want = demand + buffer; both rounded up to the block, clamped. */
static void estimate_from_demand(struct policy_vm *vm, uint64_t demand)
{
        const struct vm_settings *s = &vm->settings;
        uint64_t need = block_up(demand, s->block_bytes);
        uint64_t want = block_up(scale_up_permille(demand, 10ull * s->buffer_percent),
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
        uint64_t short_need = clamp_u64(block_up(working, s->block_bytes), s->minimum_bytes,
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
static bool estimate_probe(struct policy_vm *vm, uint64_t reported, uint64_t now,
                           const struct policy_tunables *t)
{
        struct policy_vm_memory *m = &vm->memory;
        const struct vm_settings *s = &vm->settings;

        m->probe_demand_bytes = reported;
        if (!m->probing) {
                if (ms_since(now, m->last_stall_ms) < t->probe_after_ms ||
                    t->probe_max_percent == 0 || correction_fresh(m, now, t) || reported == 0)
                        return false;
                m->probing = true;
                m->probe_permille = 0;
                /* Start from the fine zone, or from where the VM is if that is lower. */
                uint64_t zone = scale_up_permille(reported, 10ull * t->probe_fine_percent);
                m->probe_start_bytes = vm->assigned_bytes < zone ? vm->assigned_bytes : zone;
        }
        uint64_t dt = m->decided ? ms_since(now, m->last_decision_ms) : 0;
        uint64_t step = (uint64_t)t->probe_rate_permille * dt / MSEC_PER_SEC;
        m->probe_permille = (uint32_t)(m->probe_permille + step > 1000 ? 1000
                                                                        : m->probe_permille + step);
        uint64_t zone = scale_up_permille(reported, 10ull * t->probe_fine_percent);
        uint64_t start = m->probe_start_bytes < zone ? m->probe_start_bytes : zone;
        uint64_t probed = scale_permille(start, 1000 - m->probe_permille);
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
                return true;
        }
        probed = clamp_u64(block_up(probed, s->block_bytes), s->minimum_bytes,
                           s->maximum_bytes);
        if (probed < vm->want_bytes) {
                vm->want_bytes = probed;
                if (vm->need_bytes > probed)
                        vm->need_bytes = probed;
                vm->reason = REASON_PROBE;
        }
        return false;
}

/*
 * Probing costs a little (fine resizes, a VM briefly without its buffer), and
 * memory it reclaims is worth something only when the VMs want most of the
 * host: probes run while the running VMs want at least probe_contention_percent
 * of the host's memory, and stop, learning nothing, when they no longer do.
 */
static void probe_one(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t,
                      bool contended)
{
        struct policy_vm_memory *m = &vm->memory;

        if (!contended) {
                m->probing = false;
                m->probe_permille = 0;
                return;
        }
        if (estimate_probe(vm, vm->demand_bytes, now, t)) /* learned now: use it now */
                estimate_from_demand(vm, add_sat(scale_permille(vm->demand_bytes,
                                                                m->correction_permille),
                                                 vm->trend_bytes));
}

/* The dynmem estimate: trend, learned correction, stall; probing comes after the sums. */
static void estimate_dynmem(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t)
{
        struct policy_vm_memory *m = &vm->memory;

        /* A share of time is 0..1: NaN says nothing, above 1 is all of it, below 0 none. */
        if (vm->stall_known && isnan(vm->stall_fraction))
                vm->stall_known = false;
        else if (vm->stall_fraction > 1.0)
                vm->stall_fraction = 1.0;
        else if (vm->stall_fraction < 0.0)
                vm->stall_fraction = 0.0;
        uint64_t reported = vm->demand_bytes, demand = reported;
        uint64_t trend = trend_projection(vm, now, t);

        if (!m->decided)
                m->last_stall_ms = now; /* quiet time counts from the first decision */
        if (vm->stall_known && correction_fresh(m, now, t))
                demand = scale_permille(reported, m->correction_permille);
        estimate_from_demand(vm, add_sat(demand, trend));
        if (!vm->stall_known)
                return;
        vm->trend_bytes = trend;
        if (stalling(vm, t)) {
                estimate_stall(vm, reported, now, t);
        } else {
                m->stall_streak = 0;
                vm->probe_candidate = true; /* probe_all() decides, once the sums are known */
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

                want = clamp_u64(block_up(want, s->block_bytes), s->minimum_bytes,
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

/*
 * Sort items by key (32 significant bits), ascending, stable: LSD radix sort
 * with 11-bit digits, skipping digits every key shares. Linear in n; `spare`
 * holds n items.
 */
static void sort_items(struct policy_sort_item *items, struct policy_sort_item *spare, size_t n)
{
        enum { BITS = 11, BUCKETS = 1 << BITS };
        uint32_t count[BUCKETS];
        struct policy_sort_item *src = items, *dst = spare;

        for (unsigned shift = 0; shift < 32; shift += BITS) {
                memset(count, 0, sizeof(count));
                for (size_t i = 0; i < n; i++)
                        count[(src[i].key >> shift) & (BUCKETS - 1)]++;
                if (n == 0 || count[(src[0].key >> shift) & (BUCKETS - 1)] == n)
                        continue; /* every key has this digit */
                uint32_t pos = 0;
                for (size_t b = 0; b < BUCKETS; b++) {
                        uint32_t c = count[b];
                        count[b] = pos;
                        pos += c;
                }
                for (size_t i = 0; i < n; i++)
                        dst[count[(src[i].key >> shift) & (BUCKETS - 1)]++] = src[i];
                struct policy_sort_item *t = src;
                src = dst;
                dst = t;
        }
        if (src != items)
                memcpy(items, src, n * sizeof(*items));
}

/*
 * Non-negative doubles keep their order as bit patterns; the top 32 bits
 * (exponent and 20 bits of mantissa: one part in a million) order the
 * water-filling well enough.
 */
static uint64_t double_key(double d)
{
        uint64_t k;

        if (!(d > 0.0))
                return 0;
        memcpy(&k, &d, sizeof(k));
        return k >> 32;
}

/*
 * Weighted water-filling: hand out up to `budget` bytes on top of each VM's
 * lower level, VM i receiving at most its room (upper - lower), in proportion
 * to its weight. Weight-0 VMs take part only in the zero pass, which shares
 * equally what the others could not use. Shares are rounded down to each
 * VM's block. The weighted pass sets every ideal to its lower level, then adds
 * the shares; returns what is left of the budget.
 */
static uint64_t waterfill(struct policy_vm *vms, const uint32_t *idx, size_t n, uint64_t budget,
                          enum fill_stage stage, struct policy_scratch *scr, bool zero_pass)
{
        struct policy_sort_item *items = scr->items;
        size_t m = 0;
        double wsum = 0.0;

        for (size_t k = 0; k < n; k++) {
                struct policy_vm *vm = &vms[idx[k]];
                uint64_t lo, hi;
                bool zero = vm->settings.weight == 0;

                fill_levels(vm, stage, &lo, &hi);
                if (!zero_pass)
                        vm->ideal_bytes = lo; /* the first pass sets everyone's base */
                if (hi <= lo || zero != zero_pass)
                        continue;
                double w = zero_pass ? 1.0 : (double)vm->settings.weight;
                items[m++] = (struct policy_sort_item){double_key((double)(hi - lo) / w), idx[k]};
                wsum += w;
        }
        /* Ascending room per unit of weight: the VMs that fill up first come first. */
        sort_items(items, scr->spare, m);

        uint64_t left = budget;
        for (size_t i = 0; i < m && left > 0; i++) {
                struct policy_vm *vm = &vms[items[i].index];
                uint64_t lo, hi;
                double w = zero_pass ? 1.0 : (double)vm->settings.weight;

                fill_levels(vm, stage, &lo, &hi);
                double share = (double)left * w / wsum;
                uint64_t give = share >= (double)(hi - lo) ? hi - lo : (uint64_t)share;

                give = block_down(give > left ? left : give, vm->settings.block_bytes);
                vm->ideal_bytes += give;
                left -= give;
                wsum -= w;
        }
        return left;
}

/* The state of one decision, shared by its passes. */
struct decision {
        const struct policy_config *cfg;
        const struct policy_host *host;
        struct policy_vm *vms;
        struct policy_scratch *scr;
        uint64_t now;
        uint32_t *idx;          /* participants: running VMs, then admitted starters */
        size_t k;
        size_t n_starters;      /* starting VMs, in order, in scr->spare[].index */
        size_t n_admitted;      /* of which take part (not refused) */
        size_t probing;         /* running VMs with a probe under way */
        bool filled;            /* water-filling set the ideals */
        int base_level;         /* else: 0 floor, 1 need, 2 want */
        uint64_t held;          /* memory the running VMs hold now */
        size_t growers;         /* VMs asking to grow, in scr->items */
        uint64_t asked;         /* how much they ask in all */
        struct policy_summary sum;
};

/* The level every participant gets when there is nothing to share out. */
static uint64_t base_ideal(const struct policy_vm *vm, int level)
{
        return level == 0 ? vm->floor_bytes : level == 1 ? vm->need_bytes : vm->want_bytes;
}

/*
 * Pass 1: estimate every VM; running VMs join the participants and the
 * sums; starting VMs are set aside for admission.
 */
static void estimate_all(struct decision *d, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                struct policy_vm *vm = &d->vms[i];

                vm->reason = REASON_NONE;
                vm->admission = ADMISSION_NONE;
                vm->probe_candidate = false;
                vm->target_bytes = vm->ideal_bytes = 0;
                if (vm->phase == POLICY_PHASE_OFF)
                        continue;
                estimate_one(d->cfg, vm, d->now);
                if (vm->phase == POLICY_PHASE_STARTING) {
                        d->scr->spare[d->n_starters++].index = (uint32_t)i;
                        continue;
                }
                d->idx[d->k++] = (uint32_t)i;
                d->probing += vm->memory.probing;
                d->held = add_sat(d->held, vm->assigned_bytes);
                d->sum.sum_floor_bytes = add_sat(d->sum.sum_floor_bytes, vm->floor_bytes);
                d->sum.sum_need_bytes = add_sat(d->sum.sum_need_bytes, vm->need_bytes);
                d->sum.sum_want_bytes = add_sat(d->sum.sum_want_bytes, vm->want_bytes);
        }
}

static void probe_all(struct decision *d)
{
        const struct policy_tunables *t = &d->cfg->tunables;
        bool contended = d->sum.sum_want_bytes >=
                         scale_permille(d->host->memory_bytes, 10ull * t->probe_contention_percent);

        if (!contended && d->probing == 0)
                return; /* nothing to start, nothing to stop */
        for (size_t j = 0; j < d->k; j++) {
                struct policy_vm *vm = &d->vms[d->idx[j]];
                if (!vm->probe_candidate)
                        continue;
                uint64_t need = vm->need_bytes, want = vm->want_bytes;
                probe_one(vm, d->now, t, contended);
                d->sum.sum_need_bytes += vm->need_bytes - need;
                d->sum.sum_want_bytes += vm->want_bytes - want;
        }
}

/*
 * Starting VMs, in the order they come: each joins if its startup size fits
 * next to everybody's floor (it then waits for the memory to be free, or is
 * admitted in the grant), and is refused otherwise.
 */
static void admit_starters(struct decision *d)
{
        for (size_t b = 0; b < d->n_starters; b++) {
                uint32_t i = d->scr->spare[b].index;
                struct policy_vm *vm = &d->vms[i];
                uint64_t floors = add_sat(d->sum.sum_floor_bytes, vm->floor_bytes);

                if (floors > d->host->memory_bytes) {
                        vm->admission = ADMISSION_REFUSE;
                        continue;
                }
                vm->admission = ADMISSION_WAIT;
                d->n_admitted++;
                d->sum.sum_floor_bytes = floors;
                d->sum.sum_need_bytes = add_sat(d->sum.sum_need_bytes, vm->need_bytes);
                d->sum.sum_want_bytes = add_sat(d->sum.sum_want_bytes, vm->want_bytes);
                d->idx[d->k++] = i;
        }
}

/* Pass 2 (and water-filling): ideal sizes for the participants. */
static void allocate(struct decision *d)
{
        struct policy_summary *sum = &d->sum;
        uint64_t memory = d->host->memory_bytes;

        if (sum->sum_want_bytes <= memory) {
                d->base_level = 2; /* settle() sets the ideals */
        } else if (sum->sum_need_bytes <= memory) {
                sum->scarcity = true;
                d->filled = true;
                uint64_t left = waterfill(d->vms, d->idx, d->k, memory - sum->sum_need_bytes,
                                          FILL_NEED_TO_WANT, d->scr, false);
                if (left > 0)
                        waterfill(d->vms, d->idx, d->k, left, FILL_NEED_TO_WANT, d->scr, true);
        } else if (sum->sum_floor_bytes <= memory) {
                sum->scarcity = true;
                d->filled = true;
                uint64_t left = waterfill(d->vms, d->idx, d->k, memory - sum->sum_floor_bytes,
                                          FILL_FLOOR_TO_NEED, d->scr, false);
                if (left > 0)
                        waterfill(d->vms, d->idx, d->k, left, FILL_FLOOR_TO_NEED, d->scr, true);
        } else {
                sum->scarcity = sum->overcommitted = true;
                d->base_level = 0;
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
        uint64_t zone = block_up(scale_up_permille(vm->memory.probe_demand_bytes,
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
        vm->target_bytes = block_down(a - step, block);
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
                vm->target_bytes = block_up(a - step, vm->settings.block_bytes);
}

/* Grant order: heavier first, then the one furthest below its need. */
static uint64_t grow_key(const struct policy_vm *vm)
{
        uint64_t shortfall = vm->need_bytes > vm->assigned_bytes
                                     ? (vm->need_bytes - vm->assigned_bytes) >> 20
                                     : 0;
        const uint64_t mask = (1ull << 18) - 1; /* MiB, up to 256 GiB */

        if (shortfall > mask)
                shortfall = mask;
        /* 14 bits of weight above 18 of shortfall: 32 bits in all. */
        return ((uint64_t)(SETTINGS_WEIGHT_MAX - vm->settings.weight) << 18) | (mask - shortfall);
}

/*
 * Pass 3: reasons, smoothing (dynmem), and what the grant must look at: the
 * growers and how much they ask. On the release pass every hold is dropped.
 */
static void settle(struct decision *d, bool release)
{
        struct policy_scratch *scr = d->scr;
        uint64_t asked = 0, total = 0;
        size_t growers = 0;

        for (size_t j = 0; j < d->k; j++) {
                struct policy_vm *vm = &d->vms[d->idx[j]];

                if (!release) {
                        if (!d->filled)
                                vm->ideal_bytes = base_ideal(vm, d->base_level);
                        if (vm->ideal_bytes < vm->want_bytes)
                                vm->reason = d->sum.overcommitted ? REASON_OVERCOMMITTED
                                                                  : REASON_SCARCITY;
                        vm->ideal_reason = vm->reason;
                        vm->memory.last_decision_ms = d->now;
                        vm->memory.decided = true;
                        vm->memory.last_target_bytes = vm->ideal_bytes;
                }
                vm->target_bytes = vm->ideal_bytes;
                vm->reason = vm->ideal_reason;
                if (d->cfg->kind == POLICY_DYNMEM && vm->phase == POLICY_PHASE_RUNNING &&
                    vm->settings.dynamic && vm->demand_known)
                        smooth_one(vm, d->now, &d->cfg->tunables, d->sum.scarcity, release);
                if (vm->phase == POLICY_PHASE_RUNNING && vm->target_bytes > vm->assigned_bytes) {
                        scr->items[growers++] = (struct policy_sort_item){grow_key(vm), d->idx[j]};
                        asked = add_sat(asked, vm->target_bytes - vm->assigned_bytes);
                }
                total = add_sat(total, vm->target_bytes);
        }
        d->sum.sum_target_bytes = total;
        d->growers = growers;
        d->asked = asked;
}

/*
 * Grant: shrinks are free to go; starting VMs are admitted when their
 * startup size is free now; grows take only memory free now, heavier VMs
 * first. Returns true when a starter or a grower could not get all it asked.
 */
static bool grant(struct decision *d)
{
        uint64_t memory = d->host->memory_bytes;
        uint64_t free_now = d->held >= memory ? 0 : memory - d->held;
        bool short_of_memory = false;

        /* Admitted starters were appended after the running VMs. */
        for (size_t j = d->k - d->n_admitted; j < d->k; j++) {
                struct policy_vm *vm = &d->vms[d->idx[j]];
                if (vm->phase != POLICY_PHASE_STARTING)
                        continue;
                if (vm->settings.startup_bytes <= free_now) {
                        vm->admission = ADMISSION_ADMIT;
                        vm->target_bytes = vm->settings.startup_bytes;
                        free_now -= vm->settings.startup_bytes;
                } else {
                        vm->admission = ADMISSION_WAIT;
                        d->sum.sum_target_bytes -= vm->target_bytes;
                        vm->target_bytes = 0;
                        short_of_memory = true;
                }
        }
        if (d->asked <= free_now)
                return short_of_memory;
        sort_items(d->scr->items, d->scr->spare, d->growers);
        for (size_t g = 0; g < d->growers; g++) {
                struct policy_vm *vm = &d->vms[d->scr->items[g].index];
                uint64_t grow = vm->target_bytes - vm->assigned_bytes;

                if (grow > free_now) {
                        uint64_t granted = block_down(free_now, vm->settings.block_bytes);
                        d->sum.sum_target_bytes -= grow - granted;
                        vm->target_bytes = vm->assigned_bytes + granted;
                        vm->reason = REASON_WAITING;
                        grow = granted;
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
static void external_check(struct decision *d)
{
        if (d->sum.sum_want_bytes <= d->host->memory_bytes)
                return;
        d->sum.refused = true;
        d->sum.sum_need_bytes = d->sum.sum_want_bytes = 0;
        for (size_t j = 0; j < d->k; j++) {
                struct policy_vm *vm = &d->vms[d->idx[j]];
                uint64_t prev = vm->memory.last_target_bytes ? vm->memory.last_target_bytes
                                                             : vm->assigned_bytes;

                if (vm->phase == POLICY_PHASE_RUNNING && vm->settings.dynamic)
                        vm->need_bytes = vm->want_bytes =
                                clamp_u64(block_up(prev, vm->settings.block_bytes),
                                          vm->settings.minimum_bytes, vm->settings.maximum_bytes);
                d->sum.sum_need_bytes = add_sat(d->sum.sum_need_bytes, vm->need_bytes);
                d->sum.sum_want_bytes = add_sat(d->sum.sum_want_bytes, vm->want_bytes);
        }
}

int policy_decide(const struct policy_config *cfg, const struct policy_host *host,
                  struct policy_vm *vms, size_t n, uint64_t now_ms, struct policy_scratch *scratch,
                  struct policy_summary *ret_summary)
{
        struct decision d = {.cfg = cfg, .host = host, .vms = vms, .scr = scratch,
                             .now = now_ms, .idx = scratch->index};

        if (scratch->capacity < n)
                return -ENOMEM;
        estimate_all(&d, n);
        if (cfg->kind == POLICY_DYNMEM)
                probe_all(&d);
        admit_starters(&d);
        if (cfg->kind == POLICY_EXTERNAL)
                external_check(&d);
        allocate(&d);
        settle(&d, false);
        if (grant(&d) && cfg->kind == POLICY_DYNMEM) {
                /* Someone waits for memory that a hold keeps: release the holds. */
                settle(&d, true);
                grant(&d);
        }
        if (ret_summary)
                *ret_summary = d.sum;
        return 0;
}
