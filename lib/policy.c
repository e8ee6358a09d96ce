/*
 * policy: the balancing decision, shared by dynmemd, dynmem-sim and the tests.
 * This file holds the decision itself (passes, allocation, grant); the
 * per-VM estimate and smoothing are in policy_estimate.c and policy_smooth.c.
 * Pure: no I/O, no clock, no globals. See policy.h for the three stages
 * (estimate, allocate, grant) and docs/policy.md for the reasoning.
 */
#include "policy.h"
#include "policy_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const reason_names[] = {
    [REASON_NONE] = "none",           [REASON_DEMAND] = "demand",
    [REASON_MINIMUM] = "minimum",     [REASON_MAXIMUM] = "maximum",
    [REASON_SCARCITY] = "scarcity",   [REASON_STALL] = "stall",
    [REASON_PROBE] = "probe",         [REASON_HOLD] = "hold",
    [REASON_WAITING] = "waiting",     [REASON_NO_SIGNAL] = "no-signal",
    [REASON_STATIC] = "static",       [REASON_STARTUP] = "startup",
    [REASON_EXTERNAL] = "external",   [REASON_OVERCOMMITTED] = "overcommitted",
    [REASON_MIGRATING] = "migrating", [REASON_LENT] = "lent",
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
                /* Only white space after the colon names no program. */
                if (text[5 + strspn(text + 5, " \t\n\v\f\r")] == '\0')
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
            .shrink_step_percent = 100,
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
            .history_halflife_ms = 6 * 3600 * MSEC_PER_SEC,
            .headroom_permille = 995,
            .headroom_pool_percent = 100,
            .headroom_kill_weight = 13,
            .headroom_period_ms = 30 * MSEC_PER_SEC,
            .persistence_max_permille = 1000,
            .grow_band_percent = 30,
            .shrink_band_percent = 50,
            .lend_hold_ms = 0, /* opt-in: docs/policy.md, "Cache lent from idle memory" */
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
        struct policy_level_item *levels = realloc(s->levels, n * sizeof(*levels));
        if (!levels)
                return -ENOMEM;
        s->levels = levels;
        uint32_t *index = realloc(s->index, n * sizeof(*index));
        if (!index)
                return -ENOMEM;
        s->index = index;
        index = realloc(s->shrinking, n * sizeof(*index));
        if (!index)
                return -ENOMEM;
        s->shrinking = index;
        s->capacity = n;
        return 0;
}

void policy_scratch_free(struct policy_scratch *s)
{
        if (!s)
                return;
        free(s->items);
        free(s->spare);
        free(s->levels);
        free(s->index);
        free(s->shrinking);
        *s = (struct policy_scratch){0};
}

/* ---- stage 2: allocate the host's memory ---- */

/* The levels memory is handed out by, in order: every VM reaches a level before any VM gets more.
 */
enum level {
        LEVEL_FLOOR,
        LEVEL_NOW, /* what it uses now: no VM gets its projected rise while another lacks this */
        LEVEL_NEED,
        LEVEL_WANT,
        LEVEL_LEND, /* what no VM wants, lent to those that evicted cache (policy_lend.c) */
        LEVELS,
};
_Static_assert(LEVELS == POLICY_LEVELS, "the levels the scratch knows of are these");

static uint64_t level_bytes(const struct policy_vm *vm, int level)
{
        switch (level) {
        case LEVEL_FLOOR:
                return vm->floor_bytes;
        case LEVEL_NOW: /* 0: the estimate projects nothing */
                if (!vm->now_bytes || vm->now_bytes >= vm->need_bytes)
                        return vm->need_bytes;
                return vm->now_bytes > vm->floor_bytes ? vm->now_bytes : vm->floor_bytes;
        case LEVEL_NEED:
                return vm->need_bytes;
        case LEVEL_WANT:
                return vm->want_bytes;
        default:
                return vm->lend_bytes > vm->want_bytes ? vm->lend_bytes : vm->want_bytes;
        }
}

#define SORT_KEY_BITS 32 /* sort_items() orders by a 32-bit key */

/*
 * Sort items by key, ascending, stable: LSD radix sort of the keys less the
 * smallest, in as few passes of at most 11 bits as the span of the keys
 * needs, the digits as narrow as those passes allow (fewer buckets stay in
 * the first-level cache: 10,000 keys that span 26 bits sort a third faster
 * in three passes of 9 bits than of 11), skipping digits every key shares.
 * Linear in n; `spare` holds n items.
 */
static void sort_items(struct policy_sort_item *items, struct policy_sort_item *spare, size_t n)
{
        enum { MAX_BITS = 11 };
        uint32_t count[1u << MAX_BITS];
        struct policy_sort_item *src = items, *dst = spare;

        if (n < 2)
                return;
        uint32_t lo = items[0].key, hi = items[0].key;
        for (size_t i = 1; i < n; i++) {
                lo = items[i].key < lo ? items[i].key : lo;
                hi = items[i].key > hi ? items[i].key : hi;
        }
        if (lo == hi)
                return; /* every key the same: the order stands */
        unsigned bits = 32 - (unsigned)__builtin_clz(hi - lo);
        unsigned passes = (bits + MAX_BITS - 1) / MAX_BITS;
        unsigned width = (bits + passes - 1) / passes;
        uint32_t mask = (1u << width) - 1;

        for (unsigned shift = 0; shift < bits; shift += width) {
                memset(count, 0, (mask + 1) * sizeof(count[0]));
                for (size_t i = 0; i < n; i++)
                        count[((src[i].key - lo) >> shift) & mask]++;
                if (count[((src[0].key - lo) >> shift) & mask] == n)
                        continue; /* every key has this digit */
                uint32_t pos = 0;
                for (size_t b = 0; b <= mask; b++) {
                        uint32_t c = count[b];
                        count[b] = pos;
                        pos += c;
                }
                for (size_t i = 0; i < n; i++)
                        dst[count[((src[i].key - lo) >> shift) & mask]++] = src[i];
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
static uint32_t double_key(double d)
{
        uint64_t k;

        if (!(d > 0.0))
                return 0;
        memcpy(&k, &d, sizeof(k));
        return (uint32_t)(k >> (64 - SORT_KEY_BITS));
}

/*
 * What a water-filling participant with `room` bytes below its upper level
 * is given at a share of what is left (`share` bytes): its room once the
 * share reaches it, else the share, never more than is left, rounded down
 * to its block. It never falls as the share rises (a share below the room
 * as a double truncates to at most the room).
 */
static inline uint64_t fill_give(uint64_t room, uint64_t block, double share, uint64_t left)
{
        uint64_t give = share >= (double)room ? room : (uint64_t)share;

        return block_down(give > left ? left : give, block);
}

/*
 * Weighted water-filling: hand out up to `budget` bytes on top of each of
 * the n participants' lower level, participant i receiving at most its room
 * (up to its upper level), in proportion to its weight. Weight-0
 * participants take part only in the zero pass, which shares equally what
 * the others could not use. Shares are rounded down to each VM's block. The
 * shares are added to levels[i].give (which the weighted pass sets to 0
 * first), for settle() to add to the lower level; returns what is left of
 * the budget. The participants are handed out to in sorted order from
 * their packed levels (40 bytes each).
 */
static uint64_t waterfill(struct policy_level_item *levels, size_t n, uint64_t budget,
                          struct policy_scratch *scr, bool zero_pass)
{
        struct policy_sort_item *items = scr->items;
        size_t m = 0;
        double wsum = 0.0;

        for (size_t k = 0; k < n; k++) {
                struct policy_level_item *l = &levels[k];
                uint64_t lo = l->lower, hi = l->upper;
                bool zero = l->weight == 0;

                if (!zero_pass)
                        l->give = 0; /* the first pass starts everyone at the base */
                if (hi <= lo || zero != zero_pass)
                        continue;
                double w = zero_pass ? 1.0 : (double)l->weight;
                items[m++] =
                    (struct policy_sort_item){double_key((double)(hi - lo) / w), (uint32_t)k};
                wsum += w;
        }
        /* Ascending room per unit of weight: the VMs that fill up first come first. */
        sort_items(items, scr->spare, m);

        uint64_t left = budget;
        for (size_t i = 0; i < m && left > 0; i++) {
                struct policy_level_item *l = &levels[items[i].index];
                uint64_t room = l->upper - l->lower;
                double w = zero_pass ? 1.0 : (double)l->weight;
                double part = (double)left * w;
                /*
                 * The share is part / wsum. Every participant waits for the
                 * one before, and a division takes long, so the product with
                 * 1 / wsum (which does not wait) comes first: it is within
                 * 2^-51 of the quotient, so where the gives 2^-50 below and
                 * above it agree, that is the give at the quotient
                 * (fill_give() never falls as the share rises); else the
                 * quotient decides. wsum > 0: it holds l's weight.
                 */
                double guess = part * (1.0 / wsum);
                uint64_t give = fill_give(room, l->block, guess, left);

                if (fill_give(room, l->block, guess * (1.0 - 0x1p-50), left) != give ||
                    fill_give(room, l->block, guess * (1.0 + 0x1p-50), left) != give)
                        give = fill_give(room, l->block, part / wsum, left);
                l->give += give; /* 0 before: its first share in either pass */
                left -= give;
                wsum -= w;
        }
        return left;
}

/*
 * The passes after the estimate read the first 240 bytes of each VM (four
 * cache lines: struct policy_vm) in an order the processor does not foresee
 * far enough (a pass over 10,000 VMs reads more than its second-level cache
 * holds; the grant and the release go in an order of their own), so each
 * asks for the VM it reaches PREFETCH_AHEAD VMs later: a pass waits for
 * memory a sixth less.
 */
#define PREFETCH_AHEAD 8

static inline void prefetch_vm(const struct policy_vm *vm)
{
        const char *p = (const char *)vm;

        __builtin_prefetch(p, 1);
        __builtin_prefetch(p + 64, 1);
        __builtin_prefetch(p + 128, 1);
        __builtin_prefetch(p + 192, 1);
}

/* The state of one decision, shared by its passes. */
struct decision {
        const struct policy_config *cfg;
        const struct policy_host *host;
        struct policy_vm *vms;
        struct policy_scratch *scr;
        uint64_t now;
        uint32_t *idx; /* participants: running VMs, then admitted starters */
        size_t k;
        size_t n_starters;          /* starting VMs, in order, in scr->spare[].index */
        size_t n_admitted;          /* of which take part (not refused) */
        uint64_t unprobed_want;     /* what the running VMs want before any probe cuts it */
        uint64_t sum_level[LEVELS]; /* what the participants hold at each level */
        struct policy_decay decay;  /* the history's decay factor, per interval */
        struct policy_pool pool;    /* the headroom pool, filled as the VMs are estimated */
        bool filled;                /* water-filling gave shares above base_level */
        bool packed;                /* the participants' levels are in scr->levels */
        int pack_level;             /* ... that level and the one above */
        int base_level;             /* the level everyone gets */
        uint64_t held;              /* memory the running VMs hold, or may take (committed()) */
        size_t growers;             /* VMs asking to grow, in scr->items */
        size_t shrinking;           /* smoothed VMs below what they hold, in scr->shrinking */
        uint64_t asked;             /* how much they ask in all */
        struct policy_summary sum;
};

/*
 * What a running VM may hold before the next read-back: what it holds, the
 * request already in flight when that is higher (the guest may still plug up
 * to it), and what the backend says it may hold (a request lowered so
 * recently that the read-back may not yet show what the guest took under the
 * previous one). Grows are granted only from memory that no VM holds or may
 * still take, so that the sum of assigned memory stays within the host's also
 * while a grow is cut short.
 */
static uint64_t committed(const struct policy_vm *vm)
{
        uint64_t r = vm->requested_bytes;

        if (r > vm->settings.maximum_bytes)
                r = vm->settings.maximum_bytes;
        if (r < vm->assigned_bytes)
                r = vm->assigned_bytes;
        return r > vm->may_hold_bytes ? r : vm->may_hold_bytes;
}

/*
 * Participant `at`'s levels d->pack_level and the one above (of its
 * level_bytes() of each), block and weight, packed for the water-filling.
 */
static void pack_levels(struct decision *d, const struct policy_vm *vm, const uint64_t *level,
                        size_t at)
{
        struct policy_level_item *item = &d->scr->levels[at];

        item->lower = level[d->pack_level];
        item->upper = level[d->pack_level + 1];
        item->block = vm->settings.block_bytes;
        item->weight = vm->settings.weight;
}

/*
 * Adds participant `at` to the sums, and packs its levels while they are at
 * hand when the decision expects to water-fill from the same level as the
 * last one did (a host short of memory stays so for a while); else the
 * allocation packs them if it does water-fill after all.
 */
static void add_levels(struct decision *d, const struct policy_vm *vm, size_t at)
{
        uint64_t level[LEVELS];

        for (int l = 0; l < LEVELS; l++) {
                level[l] = level_bytes(vm, l);
                d->sum_level[l] = add_sat(d->sum_level[l], level[l]);
        }
        if (d->packed)
                pack_levels(d, vm, level, at);
}

/*
 * Pass 1: estimate every VM; running VMs join the participants and the
 * sums; starting VMs are set aside for admission.
 */
static void estimate_all(struct decision *d, size_t n)
{
        const struct policy_tunables *t = &d->cfg->tunables;
        bool pool = d->cfg->kind == POLICY_DYNMEM && t->headroom_pool_percent > 0;

        if (pool)
                policy_pool_start(&d->pool, d->scr->price_bin);
        for (size_t i = 0; i < n; i++) {
                struct policy_vm *vm = &d->vms[i];

                vm->reason = REASON_NONE;
                vm->admission = ADMISSION_NONE;
                vm->probe_candidate = false;
                vm->pooled = false;
                vm->target_bytes = vm->ideal_bytes = 0;
                if (vm->phase != POLICY_PHASE_OFF)
                        policy_estimate_one(d->cfg, vm, d->now, &d->decay);
                if (pool && vm->pooled)
                        policy_pool_add(&d->pool, vm, t);
        }
        if (pool) {
                policy_pool_price(&d->pool, d->vms, n, t);
                d->scr->price_bin = (uint32_t)d->pool.bin;
        }
        for (size_t i = 0; i < n; i++) {
                struct policy_vm *vm = &d->vms[i];

                if (i + PREFETCH_AHEAD < n)
                        prefetch_vm(&d->vms[i + PREFETCH_AHEAD]);

                if (vm->phase == POLICY_PHASE_OFF)
                        continue;
                if (pool && vm->pooled)
                        policy_pool_share_one(&d->pool, vm, t);
                if (vm->phase == POLICY_PHASE_RUNNING)
                        d->unprobed_want = add_sat(d->unprobed_want, vm->want_bytes);
                if (vm->probe_candidate)
                        policy_probe_one(vm, d->now, t, d->scr->contended && !d->scr->scarce);
                vm->lend_bytes = 0;
                if (d->cfg->kind == POLICY_DYNMEM && vm->phase == POLICY_PHASE_RUNNING &&
                    vm->settings.dynamic && vm->demand_known)
                        policy_lend_one(vm, d->now, t);
                if (vm->phase == POLICY_PHASE_STARTING) {
                        d->scr->spare[d->n_starters++].index = (uint32_t)i;
                        continue;
                }
                d->held = add_sat(d->held, committed(vm));
                add_levels(d, vm, d->k);
                d->idx[d->k++] = (uint32_t)i;
        }
}

/* The summary's sums from the levels. */
static void sum_from_levels(struct decision *d)
{
        d->sum.sum_floor_bytes = d->sum_level[LEVEL_FLOOR];
        d->sum.sum_need_bytes = d->sum_level[LEVEL_NEED];
        d->sum.sum_want_bytes = d->sum_level[LEVEL_WANT];
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
                uint64_t floors = add_sat(d->sum_level[LEVEL_FLOOR], vm->floor_bytes);

                if (floors > d->host->memory_bytes) {
                        vm->admission = ADMISSION_REFUSE;
                        continue;
                }
                vm->admission = ADMISSION_WAIT;
                d->n_admitted++;
                add_levels(d, vm, d->k);
                d->idx[d->k++] = i;
        }
        sum_from_levels(d);
}

/*
 * Pass 2 (and water-filling): ideal sizes for the participants. Everyone
 * gets the highest level that fits for all, and what is left is shared
 * toward the next level by weight.
 */
static void allocate(struct decision *d)
{
        struct policy_summary *sum = &d->sum;
        uint64_t memory = d->host->memory_bytes;
        int level = LEVEL_LEND;

        while (level >= LEVEL_FLOOR && d->sum_level[level] > memory)
                level--;
        if (level == LEVEL_LEND) {
                d->base_level = LEVEL_LEND; /* settle() sets the ideals */
                return;
        }
        if (level < LEVEL_WANT)
                sum->scarcity = true;
        if (level < LEVEL_FLOOR) {
                sum->overcommitted = true;
                d->base_level = LEVEL_FLOOR;
                return;
        }
        d->filled = true;
        d->base_level = level;
        if (!d->packed || d->pack_level != level) {
                d->pack_level = level;
                for (size_t j = 0; j < d->k; j++) {
                        const struct policy_vm *vm = &d->vms[d->idx[j]];
                        uint64_t bytes[LEVELS];

                        for (int l = 0; l < LEVELS; l++)
                                bytes[l] = level_bytes(vm, l);
                        pack_levels(d, vm, bytes, j);
                }
                d->packed = true;
        }
        uint64_t left =
            waterfill(d->scr->levels, d->k, memory - d->sum_level[level], d->scr, false);
        if (left > 0)
                waterfill(d->scr->levels, d->k, left, d->scr, true);
}

/* ---- stage 3: settle (smoothing in policy_smooth.c), then grant ---- */

#define GROW_WEIGHT_BITS    14 /* the weight, heaviest first */
#define GROW_SHORTFALL_BITS 18 /* MiB below need, up to 256 GiB, furthest first */
_Static_assert(SETTINGS_WEIGHT_MAX < (1u << GROW_WEIGHT_BITS), "a weight fits its bits of the key");
_Static_assert(GROW_WEIGHT_BITS + GROW_SHORTFALL_BITS <= SORT_KEY_BITS,
               "the grant order's key fits what sort_items() sorts by");

/* Grant order: heavier first, then the one furthest below its need. */
static uint32_t grow_key(const struct policy_vm *vm)
{
        uint64_t shortfall =
            vm->need_bytes > vm->assigned_bytes ? (vm->need_bytes - vm->assigned_bytes) >> 20 : 0;
        const uint64_t mask = (1ull << GROW_SHORTFALL_BITS) - 1;

        if (shortfall > mask)
                shortfall = mask;
        return (uint32_t)(((uint64_t)(SETTINGS_WEIGHT_MAX - vm->settings.weight)
                           << GROW_SHORTFALL_BITS) |
                          (mask - shortfall));
}

/* Whether stage 3 smooths the VM's target (the dynmem kind, a running dynamic VM with a demand). */
static bool smoothed(const struct decision *d, const struct policy_vm *vm)
{
        return d->cfg->kind == POLICY_DYNMEM && vm->phase == POLICY_PHASE_RUNNING &&
               vm->settings.dynamic && vm->demand_known;
}

/*
 * Pass 3: reasons, smoothing (dynmem), and what the grant must look at: the
 * growers and how much they ask. The smoothed VMs whose ideal is below what
 * they hold are noted in scr->shrinking: only their targets depend on
 * whether the holds are released (release_holds()).
 */
static void settle(struct decision *d)
{
        struct policy_scratch *scr = d->scr;
        uint64_t asked = 0, total = 0;
        size_t growers = 0, shrinking = 0;
        /* With lending off no VM is lent anything (policy_lend_one()): no loan to settle. */
        bool lending = d->cfg->tunables.lend_hold_ms > 0;

        for (size_t j = 0; j < d->k; j++) {
                struct policy_vm *vm = &d->vms[d->idx[j]];

                if (j + PREFETCH_AHEAD < d->k)
                        prefetch_vm(&d->vms[d->idx[j + PREFETCH_AHEAD]]);

                if (d->filled) {
                        const struct policy_level_item *l = &scr->levels[j];
                        vm->ideal_bytes = l->lower + l->give;
                } else {
                        vm->ideal_bytes = level_bytes(vm, d->base_level);
                }
                if (vm->ideal_bytes < vm->want_bytes)
                        vm->reason = d->sum.overcommitted ? REASON_OVERCOMMITTED : REASON_SCARCITY;
                if (lending)
                        policy_lend_settle(vm);
                vm->ideal_reason = vm->reason;
                vm->memory.last_decision_ms = d->now;
                vm->memory.decided = true;
                vm->memory.last_target_bytes = vm->ideal_bytes;
                vm->memory.last_cut = vm->ideal_bytes < vm->want_bytes;
                vm->target_bytes = vm->ideal_bytes;
                if (smoothed(d, vm)) {
                        policy_smooth_one(vm, d->now, &d->cfg->tunables, d->sum.scarcity,
                                          RELEASE_NONE);
                        if (vm->ideal_bytes < vm->assigned_bytes)
                                scr->shrinking[shrinking++] = d->idx[j];
                }
                if (vm->phase == POLICY_PHASE_RUNNING && vm->target_bytes > vm->assigned_bytes) {
                        scr->items[growers++] = (struct policy_sort_item){grow_key(vm), d->idx[j]};
                        if (vm->target_bytes > committed(vm))
                                asked = add_sat(asked, vm->target_bytes - committed(vm));
                }
                total = add_sat(total, vm->target_bytes);
        }
        d->sum.sum_target_bytes = total;
        d->growers = growers;
        d->shrinking = shrinking;
        d->asked = asked;
}

/*
 * Someone waits for memory that a hold keeps: the smoothing of the VMs
 * settle() noted as shrinking is done again with the holds released.
 * Nothing else changes: a VM whose ideal is below what it holds is never a
 * grower, and shrinks free no memory the grant could hand out in this
 * decision, so the grant's choices stand as they were.
 */
static void release_holds(struct decision *d, enum policy_release release)
{
        for (size_t j = 0; j < d->shrinking; j++) {
                struct policy_vm *vm = &d->vms[d->scr->shrinking[j]];

                if (j + PREFETCH_AHEAD < d->shrinking)
                        prefetch_vm(&d->vms[d->scr->shrinking[j + PREFETCH_AHEAD]]);

                d->sum.sum_target_bytes -= vm->target_bytes;
                vm->target_bytes = vm->ideal_bytes;
                vm->reason = vm->ideal_reason;
                policy_smooth_one(vm, d->now, &d->cfg->tunables, d->sum.scarcity, release);
                d->sum.sum_target_bytes = add_sat(d->sum.sum_target_bytes, vm->target_bytes);
        }
}

/*
 * Grant: shrinks are free to go; starting VMs are admitted when their
 * startup size is free now; grows take only memory free now, heavier VMs
 * first. Returns which holds to release: all when a starter or a grower cut
 * below its need waits, those beyond the deadband when a grower waits for
 * headroom only, none when everyone got what it asked.
 */
static enum policy_release grant(struct decision *d)
{
        uint64_t memory = d->host->memory_bytes;
        uint64_t free_now = d->held >= memory ? 0 : memory - d->held;
        bool over = d->held > memory;
        enum policy_release short_of_memory = RELEASE_NONE;

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
                        short_of_memory = RELEASE_ALL;
                }
        }
        if (!over && d->asked <= free_now)
                return short_of_memory;
        sort_items(d->scr->items, d->scr->spare, d->growers);
        for (size_t g = 0; g < d->growers; g++) {
                struct policy_vm *vm = &d->vms[d->scr->items[g].index];

                if (g + PREFETCH_AHEAD < d->growers)
                        prefetch_vm(&d->vms[d->scr->items[g + PREFETCH_AHEAD].index]);
                /* Its own request in flight is already counted in held (none when over). */
                uint64_t own = over ? 0 : committed(vm) - vm->assigned_bytes;
                uint64_t grow = vm->target_bytes - vm->assigned_bytes;

                if (grow > add_sat(free_now, own)) {
                        uint64_t granted =
                            block_down(add_sat(free_now, own), vm->settings.block_bytes);
                        d->sum.sum_target_bytes -= grow - granted;
                        vm->target_bytes = vm->assigned_bytes + granted;
                        vm->reason = REASON_WAITING;
                        grow = granted;
                        if (vm->target_bytes < vm->need_bytes)
                                short_of_memory = RELEASE_ALL;
                        else if (short_of_memory == RELEASE_NONE)
                                short_of_memory = RELEASE_LARGE;
                }
                free_now -= grow > own ? grow - own : 0;
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
        memset(d->sum_level, 0, sizeof(d->sum_level));
        for (size_t j = 0; j < d->k; j++) {
                struct policy_vm *vm = &d->vms[d->idx[j]];
                uint64_t prev = vm->memory.last_target_bytes ? vm->memory.last_target_bytes
                                                             : vm->assigned_bytes;

                if (vm->phase == POLICY_PHASE_RUNNING && vm->settings.dynamic)
                        vm->need_bytes = vm->want_bytes =
                            clamp_u64(block_up(prev, vm->settings.block_bytes),
                                      vm->settings.minimum_bytes, vm->settings.maximum_bytes);
                add_levels(d, vm, j);
        }
        sum_from_levels(d);
}

int policy_decide(const struct policy_config *cfg, const struct policy_host *host,
                  struct policy_vm *vms, size_t n, uint64_t now_ms, struct policy_scratch *scratch,
                  struct policy_summary *ret_summary)
{
        struct decision d = {.cfg = cfg,
                             .host = host,
                             .vms = vms,
                             .scr = scratch,
                             .now = now_ms,
                             .idx = scratch->index,
                             /* a level past the want has no level above it to pack */
                             .packed = scratch->filled && scratch->fill_level < LEVEL_LEND,
                             .pack_level = scratch->fill_level};

        if (scratch->capacity < n)
                return -ENOMEM;
        estimate_all(&d, n);
        /* Probing in the next decision depends on how much the VMs want of the host now. */
        scratch->contended =
            d.unprobed_want >=
            scale_permille(host->memory_bytes, 10ull * cfg->tunables.probe_contention_percent);
        scratch->scarce = d.unprobed_want > host->memory_bytes;
        admit_starters(&d);
        if (cfg->kind == POLICY_EXTERNAL)
                external_check(&d);
        allocate(&d);
        scratch->filled = d.filled;
        if (d.filled)
                scratch->fill_level = (uint8_t)d.base_level;
        settle(&d);
        enum policy_release release = grant(&d);
        if (release != RELEASE_NONE)
                release_holds(&d, release);
        /* With lending off and nothing lent before, every figure stays 0: no pass needed. */
        if (cfg->tunables.lend_hold_ms > 0 || scratch->lent) {
                scratch->lent = false;
                for (size_t i = 0; i < n; i++) {
                        policy_lend_figure(&vms[i]);
                        scratch->lent |= vms[i].lent_bytes > 0;
                }
        }
        if (ret_summary)
                *ret_summary = d.sum;
        return 0;
}
