/*
 * policy_estimate: stage 1 of a decision, for one VM: its floor, need and
 * want. The dynmem kind refines them here: the figure expected at the next
 * decision and the headroom its history calls for (policy_history.c),
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

/*
 * need = what the VM uses, want = what it is expected to use + headroom
 * (never below need): rounded up to the block, clamped.
 */
static void estimate_levels(struct policy_vm *vm, uint64_t now, uint64_t need, uint64_t expected,
                            uint64_t headroom)
{
        const struct vm_settings *s = &vm->settings;
        uint64_t want = block_up(add_sat(expected, headroom), s->block_bytes);

        if (want < need)
                want = block_up(need, s->block_bytes);
        vm->floor_bytes = s->minimum_bytes;
        vm->need_bytes =
            clamp_u64(block_up(need, s->block_bytes), s->minimum_bytes, s->maximum_bytes);
        vm->now_bytes = clamp_u64(block_up(now, s->block_bytes), s->minimum_bytes, vm->need_bytes);
        vm->want_bytes = clamp_u64(want, s->minimum_bytes, s->maximum_bytes);
        vm->reason = want > s->maximum_bytes   ? REASON_MAXIMUM
                     : want < s->minimum_bytes ? REASON_MINIMUM
                                               : REASON_DEMAND;
}

/* Hyper-V's estimate: need = demand, want = demand + buffer. */
static void estimate_from_demand(struct policy_vm *vm, uint64_t demand)
{
        uint64_t want = scale_up_permille(demand, 10ull * vm->settings.buffer_percent);

        estimate_levels(vm, demand, demand, demand, want - demand);
}

/*
 * The dynmem estimate from a (corrected) demand figure: need is what the VM
 * uses now or is expected to use at the next decision (its recent rate of
 * change carried on as far as its changes have carried on before), whichever
 * is more; want is the expected use plus the headroom: the buffer, or more
 * when the VM's unforeseen rises have been larger. With the headroom pool
 * (policy_pool.c) this want is provisional: the pool sets the headroom once
 * every VM is estimated. `scale` is the probe's correction of the figure,
 * permille (at most 1000), `floor` what a stall proved the working set to be
 * at least (0: nothing): the corrected figure is the larger of the two.
 * Returns the learned headroom, uncorrected.
 */
static uint64_t estimate_learned(struct policy_vm *vm, uint64_t expected, uint64_t scale,
                                 uint64_t floor, const struct policy_tunables *t)
{
        uint64_t next = scale_permille(expected, scale);
        uint64_t now = scale_permille(vm->demand_bytes, scale);

        if (next < floor)
                next = floor;
        if (now < floor)
                now = floor;

        uint64_t buffer = scale_permille(next, 10ull * vm->settings.buffer_percent);
        uint64_t learned = policy_history_quantile(&vm->memory.history, t->headroom_permille,
                                                   t->headroom_period_ms);
        uint64_t headroom = scale_permille(learned, scale);

        /*
         * What it uses now, and as much of the projection as has carried on
         * before (without a branch: whether the projection rises is anybody's
         * guess; none gives 0 x the persistence, 0).
         */
        uint64_t rise = next > now ? next - now : 0;
        uint64_t sure = now + (uint64_t)((double)rise * vm->memory.history.persistence);
        estimate_levels(vm, sure, now > next ? now : next, next,
                        headroom > buffer ? headroom : buffer);
        /* With a pool, the headroom is set once every VM is estimated (policy_pool.c). */
        vm->pooled = t->headroom_pool_percent > 0;
        vm->pool_scale = (uint32_t)scale;
        vm->pool_next_bytes = next;
        return learned;
}

static uint64_t backoff_ms(const struct policy_vm_memory *m, uint64_t base)
{
        return base * (m->stall_backoff ? m->stall_backoff : 1);
}

static bool correction_fresh(const struct policy_vm_memory *m, uint64_t now,
                             const struct policy_tunables *t)
{
        return m->correction_permille && ms_since(now, m->correction_ms) + m->correction_aged_ms <
                                             backoff_ms(m, t->stall_memory_ms);
}

/* Whether a and b are within 10 % of each other (and a is something). */
static bool about_the_same(uint64_t a, uint64_t b)
{
        return a && (double)b * 10.0 >= (double)a * 9.0 && (double)b * 10.0 <= (double)a * 11.0;
}

/*
 * A correction is learned: `same` when it is the one learned before, which
 * keeps it fresh twice as long (up to stall_backoff_max), else from the start.
 */
static void correction_learned(struct policy_vm_memory *m, bool same, uint64_t now,
                               const struct policy_tunables *t)
{
        if (!same)
                m->stall_backoff = 1;
        else if (m->stall_backoff < t->stall_backoff_max)
                m->stall_backoff *= 2;
        m->correction_ms = now;
        m->correction_aged_ms = 0;
        m->probing = false;
        m->probe_permille = 0;
}

/* A probe ends: the guest's true working set is `share` of its reported demand (at most all). */
static void probe_learn(struct policy_vm_memory *m, uint64_t share_permille, uint64_t now,
                        const struct policy_tunables *t)
{
        uint32_t c = (uint32_t)(share_permille > 1000 ? 1000 : share_permille);

        correction_learned(m, !m->stall_floor_bytes && about_the_same(m->correction_permille, c),
                           now, t);
        m->correction_permille = c ? c : 1;
        m->stall_floor_bytes = 0;
}

/*
 * A stall at want: the working set is at least `floor` bytes, whatever the figure
 * says. It is a floor, not a ratio of the figure: what the figure missed (often the
 * cache the guest reads back) may enter the figure later, and a ratio would then
 * count it twice, and scale the headroom learned from the figure's own rises too.
 */
static void stall_learn(struct policy_vm_memory *m, uint64_t floor, uint64_t reported, uint64_t now,
                        const struct policy_tunables *t)
{
        correction_learned(m, about_the_same(m->stall_floor_bytes, floor), now, t);
        m->correction_permille = 1000;
        m->stall_floor_bytes = floor;
        m->stall_figure_bytes = reported;
}

/*
 * The floor for a figure of `reported`: whole while the figure is at or above the
 * one it was learned against, and in proportion below it: a figure that falls has
 * lost part of the working set the stall measured (a job that ended), and a floor
 * that stayed whole would hold its memory for as long as it is fresh.
 */
static uint64_t stall_floor(const struct policy_vm_memory *m, uint64_t reported)
{
        if (!m->stall_floor_bytes || reported >= m->stall_figure_bytes)
                return m->stall_floor_bytes;
        return (uint64_t)((double)m->stall_floor_bytes * (double)reported /
                          (double)m->stall_figure_bytes);
}

/* The figure as the fresh correction has it: the probe's share, or the stall's floor if more. */
static uint64_t corrected_figure(const struct policy_vm_memory *m, uint64_t figure)
{
        uint64_t scaled = scale_permille(figure, m->correction_permille);
        uint64_t floor = stall_floor(m, figure);

        return scaled > floor ? scaled : floor;
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
        if (m->probing && (m->last_cut || reported > add_sat(m->probe_demand_bytes,
                                                             deadband(t, m->probe_demand_bytes)))) {
                /*
                 * Scarcity, not the probe, took it there, or the figure rose past
                 * the one the probe last cut against (by more than the deadband):
                 * the rise explains the stall, and the stall says nothing of how
                 * far the figure over-counts. Nothing learned.
                 */
                m->probing = false;
                m->probe_permille = 0;
        } else if (m->probing && reported > 0) {
                uint64_t share = vm->assigned_bytes * 1000 / reported;
                probe_learn(m, share > 1000 ? 1000 : share, now, t);
        }
        if (m->last_cut || vm->assigned_bytes + s->block_bytes < grow_edge(vm, vm->want_bytes, t)) {
                m->stall_streak = 0;
                return;
        }
        /*
         * One stall at want may be a rise not yet reported; a second in a row is
         * not, nor one the guest reported as it began (its figure is current).
         */
        if ((++m->stall_streak < 2 && !vm->stall_urgent) || reported == 0)
                return;
        /*
         * The working set is more than the VM holds: it grows now by
         * stall_grow_percent plus the stalled share, and the corrected figure is
         * at least what is sure, stall_grow_percent over what it holds (a stall
         * at the corrected size corrects again).
         */
        double stall = vm->stall_fraction > 1.0 ? 1.0 : vm->stall_fraction;
        uint64_t permille = 10ull * t->stall_grow_percent + (uint64_t)(stall * 1000.0);
        uint64_t working = scale_up_permille(vm->assigned_bytes, permille);
        uint64_t sure =
            clamp_u64(scale_up_permille(vm->assigned_bytes, 10ull * t->stall_grow_percent), 0,
                      s->maximum_bytes);
        if (!correction_fresh(m, now, t) || sure > corrected_figure(m, reported))
                stall_learn(m, sure, reported, now, t);
        uint64_t short_need =
            clamp_u64(block_up(working, s->block_bytes), s->minimum_bytes, s->maximum_bytes);
        if (short_need > vm->need_bytes)
                vm->need_bytes = short_need;
        vm->now_bytes = vm->need_bytes; /* short now, not later */
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
        uint64_t cover = vm->cover_bytes;

        m->probe_demand_bytes = reported;
        m->probe_cover_bytes = cover;
        if (!m->probing) {
                if (ms_since(now, m->last_stall_ms) < t->probe_after_ms ||
                    t->probe_max_percent == 0 || correction_fresh(m, now, t) || reported == 0)
                        return false;
                m->probing = true;
                m->probe_permille = 0;
                /* Start from the fine zone, or from where the VM is if that is lower. */
                uint64_t zone = scale_up_permille(reported, 10ull * t->probe_fine_percent);
                uint64_t held = vm->assigned_bytes > cover ? vm->assigned_bytes - cover : 0;
                m->probe_start_bytes = held < zone ? held : zone;
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
                 * it (held up by its minimum or its cover), the figure stands.
                 */
                probe_learn(
                    m, vm->assigned_bytes < reported ? vm->assigned_bytes * 1000 / reported : 1000,
                    now, t);
                return true;
        }
        /* The probe tests the figure, never the cover for the VM's own unforeseen rises. */
        probed = clamp_u64(block_up(add_sat(probed, cover), s->block_bytes), s->minimum_bytes,
                           s->maximum_bytes);
        if (probed < vm->want_bytes) {
                vm->want_bytes = probed;
                if (vm->need_bytes > probed)
                        vm->need_bytes = probed;
                if (vm->now_bytes > probed)
                        vm->now_bytes = probed;
                vm->reason = REASON_PROBE;
        }
        return false;
}

/*
 * A demand expected to rise by PROBE_RISING_PERMILLE of itself or more by the
 * next decision, or rising that much a second now: the figure says nothing
 * steady about the working set, and a cut to the fine zone would leave a
 * climbing guest less than one report's growth.
 */
#define PROBE_RISING_PERMILLE 10

static bool rising(const struct policy_vm *vm)
{
        const struct policy_history *h = &vm->memory.history;
        uint64_t d = vm->demand_bytes, threshold = scale_permille(d, PROBE_RISING_PERMILLE);
        uint64_t expected = h->expected; /* what the estimate expects next */

        if (expected >= add_sat(d, threshold) && expected > d)
                return true;
        return h->trend_rate * (double)MSEC_PER_SEC >= (double)threshold;
}

/*
 * Probing costs a little (fine resizes, a VM briefly without its buffer), and
 * memory it reclaims is worth something only when the VMs want most of the
 * host: probes run while the running VMs wanted at least
 * probe_contention_percent of the host's memory at the previous decision, but
 * not more than all of it (under scarcity the allocation cuts VMs below their
 * want, and a stall there says nothing about the figure), and stop, learning
 * nothing, when that no longer holds, or while the VM's demand rises.
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
                estimate_learned(vm, m->history.expected, m->correction_permille, 0, t);
}

/*
 * A VM whose unforeseen rises outgrow its buffer (or the probe's fine zone
 * when that is larger) is not probed: what it holds above its figure is
 * headroom it uses, not a figure that over-counts.
 */
static bool steady(const struct policy_vm *vm, uint64_t learned_headroom,
                   const struct policy_tunables *t)
{
        uint64_t d = vm->demand_bytes;
        uint64_t buffer = scale_permille(d, 10ull * vm->settings.buffer_percent);
        uint64_t fine = scale_permille(d, 10ull * t->probe_fine_percent);

        return learned_headroom <= (buffer > fine ? buffer : fine);
}

/* The dynmem estimate: history, learned correction, stall; probing comes after the sums. */
static void estimate_dynmem(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t,
                            struct policy_decay *decay)
{
        struct policy_vm_memory *m = &vm->memory;

        /* A share of time is 0..1: NaN says nothing, above 1 is all of it, below 0 none. */
        if (vm->stall_known && isnan(vm->stall_fraction))
                vm->stall_known = false;
        else if (vm->stall_fraction > 1.0)
                vm->stall_fraction = 1.0;
        else if (vm->stall_fraction < 0.0)
                vm->stall_fraction = 0.0;
        uint64_t reported = vm->demand_bytes, scale = 1000, floor = 0;

        /*
         * The history learns between samples, over the time between them (the
         * sample's own time where the backend gives one): a decision between two
         * reports (an extra cycle another VM asked for) is not a new sample, and
         * one report's rise seen 50 ms after the previous decision is not twenty
         * times as steep as it is.
         */
        uint64_t sampled =
            vm->demand_time_ms && vm->demand_time_ms <= now ? vm->demand_time_ms : now;
        uint64_t expected = policy_history_update(&m->history, reported, sampled, decay, t);
        if (!m->decided)
                m->last_stall_ms = now; /* quiet time counts from the first decision */
        if (vm->stall_known && correction_fresh(m, now, t)) {
                scale = m->correction_permille;
                floor = stall_floor(m, reported);
        }
        uint64_t learned = estimate_learned(vm, expected, scale, floor, t);
        vm->cover_bytes = scale_permille(learned, scale);
        if (!vm->stall_known)
                return;
        if (stalling(vm, t)) {
                estimate_stall(vm, reported, now, t);
        } else {
                m->stall_streak = 0;
                vm->probe_candidate = steady(vm, learned, t); /* policy_probe_one() decides */
        }
}

void policy_estimate_one(const struct policy_config *cfg, struct policy_vm *vm, uint64_t now,
                         struct policy_decay *decay)
{
        const struct policy_tunables *t = &cfg->tunables;

        vm->cover_bytes = 0;
        vm->now_bytes = 0; /* the estimates that project nothing leave it at need */
        vm->pooled = false;
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
        estimate_dynmem(vm, now, t, decay);
}
