/*
 * policy_estimate: stage 1 of a decision, for one VM: its floor, need and
 * want. The dynmem kind refines the demand figure here: trend projection,
 * learned corrections from stalls and probes (docs/policy.md).
 */
#include <math.h>

#include "policy_int.h"

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
        vm->need_bytes = vm->want_bytes = clamp_u64(block_up(vm->assigned_bytes, s->block_bytes),
                                                    s->minimum_bytes, s->maximum_bytes);
        vm->reason = REASON_NO_SIGNAL;
}

/* need = demand, want = demand + buffer; both rounded up to the block, clamped. */
static void estimate_from_demand(struct policy_vm *vm, uint64_t demand)
{
        const struct vm_settings *s = &vm->settings;
        uint64_t need = block_up(demand, s->block_bytes);
        uint64_t want =
            block_up(scale_up_permille(demand, 10ull * s->buffer_percent), s->block_bytes);

        vm->floor_bytes = s->minimum_bytes;
        vm->need_bytes = clamp_u64(need, s->minimum_bytes, s->maximum_bytes);
        vm->want_bytes = clamp_u64(want, s->minimum_bytes, s->maximum_bytes);
        vm->reason = want > s->maximum_bytes   ? REASON_MAXIMUM
                     : want < s->minimum_bytes ? REASON_MINIMUM
                                               : REASON_DEMAND;
}

/* Samples closer than this are one sample seen twice (the time of a report jitters). */
#define TREND_SAMPLE_GAP_MS 50

/*
 * Smoothed demand slope (bytes per ms, rises only count) for the trend
 * projection, measured between demand samples over the time between them
 * (the sample's own time where the backend gives one, else the decision's).
 * A decision without a new sample (an extra cycle another VM asked for) leaves
 * the slope alone: measured over the time since the last decision instead,
 * one report's rise seen 50 ms after the previous decision would look twenty
 * times as steep as it is.
 */
static uint64_t trend_projection(struct policy_vm *vm, uint64_t now,
                                 const struct policy_tunables *t)
{
        struct policy_vm_memory *m = &vm->memory;
        uint64_t demand = vm->demand_bytes;
        uint64_t at = vm->demand_time_ms && vm->demand_time_ms <= now ? vm->demand_time_ms : now;

        if (!m->has_demand || at < m->last_demand_ms) { /* the first sample, or a restart */
                m->demand_slope = 0.0;
                m->last_demand_bytes = demand;
                m->last_demand_ms = at;
                m->has_demand = true;
        } else if (at >= m->last_demand_ms + TREND_SAMPLE_GAP_MS) {
                double slope = ((double)demand - (double)m->last_demand_bytes) /
                               (double)(at - m->last_demand_ms);
                m->demand_slope = 0.5 * m->demand_slope + 0.5 * slope;
                m->last_demand_bytes = demand;
                m->last_demand_ms = at;
        }
        if (m->demand_slope <= 0.0)
                return 0;
        double extra = m->demand_slope * (double)t->trend_lookahead_ms;
        /* A projection never more than doubles the demand. */
        return extra >= (double)demand ? demand : (uint64_t)extra;
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
 * (assigned >= want) on two decisions in a row, or on the first decision
 * after it reported the stall as it began (stall_urgent), under-counts: it
 * gets at least its current size plus stall_grow_percent plus the stalled
 * share, and that size is remembered as too small. A guest that stalls below
 * its want is explained by the missing buffer (a rise not yet followed, or
 * scarcity): its figure is believed, so stalls cannot make VMs take memory
 * from each other in turn.
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
        /*
         * One stall at want may be a rise not yet reported; a second in a row is
         * not, nor one the guest reported as it began (its figure is current).
         */
        if ((++m->stall_streak < 2 && !vm->stall_urgent) || reported == 0)
                return;
        /* The working set is more than the VM holds: correct the figure upward. */
        double stall = vm->stall_fraction > 1.0 ? 1.0 : vm->stall_fraction;
        uint64_t permille = 10ull * t->stall_grow_percent + (uint64_t)(stall * 1000.0);
        uint64_t working = scale_up_permille(vm->assigned_bytes, permille);
        uint64_t share = working / (reported / 1000 ? reported / 1000 : 1);
        if (share > m->correction_permille || !correction_fresh(m, now, t))
                probe_learn(m, share, now, t);
        uint64_t short_need =
            clamp_u64(block_up(working, s->block_bytes), s->minimum_bytes, s->maximum_bytes);
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
        m->probe_permille =
            (uint32_t)(m->probe_permille + step > 1000 ? 1000 : m->probe_permille + step);
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
                probe_learn(
                    m, vm->assigned_bytes < reported ? vm->assigned_bytes * 1000 / reported : 1000,
                    now, t);
                return true;
        }
        probed = clamp_u64(block_up(probed, s->block_bytes), s->minimum_bytes, s->maximum_bytes);
        if (probed < vm->want_bytes) {
                vm->want_bytes = probed;
                if (vm->need_bytes > probed)
                        vm->need_bytes = probed;
                vm->reason = REASON_PROBE;
        }
        return false;
}

/*
 * A demand rising by PROBE_RISING_PERMILLE of itself a second or more: the
 * figure says nothing steady about the working set, and a cut to the fine
 * zone would leave a climbing guest less than one report's growth.
 */
#define PROBE_RISING_PERMILLE 10

static bool rising(const struct policy_vm *vm)
{
        return vm->memory.demand_slope * (double)MSEC_PER_SEC * 1000.0 >=
               (double)vm->demand_bytes * PROBE_RISING_PERMILLE;
}

/*
 * Probing costs a little (fine resizes, a VM briefly without its buffer), and
 * memory it reclaims is worth something only when the VMs want most of the
 * host: probes run while the running VMs wanted at least
 * probe_contention_percent of the host's memory at the previous decision, and
 * stop, learning nothing, when they no longer do, or while the VM's demand
 * rises.
 */
void policy_probe_one(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t,
                      bool contended)
{
        struct policy_vm_memory *m = &vm->memory;

        if (!contended || rising(vm)) {
                m->probing = false;
                m->probe_permille = 0;
                return;
        }
        if (estimate_probe(vm, vm->demand_bytes, now, t)) /* learned now: use it now */
                estimate_from_demand(
                    vm, add_sat(scale_permille(vm->demand_bytes, m->correction_permille),
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
                vm->probe_candidate = true; /* policy_probe_one() decides */
        }
}

void policy_estimate_one(const struct policy_config *cfg, struct policy_vm *vm, uint64_t now)
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

                want =
                    clamp_u64(block_up(want, s->block_bytes), s->minimum_bytes, s->maximum_bytes);
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
