/*
 * policy: decides how much memory each VM should have. Pure: samples, settings
 * and the time come in, targets with reasons go out; no I/O, no clock, no
 * globals. The daemon, the simulator and the tests all call this same code.
 *
 * A decision has three stages:
 *   1. estimate  each running dynamic VM's floor (minimum), need (demand
 *                without headroom) and want (demand with headroom), all clamped
 *                to [minimum, maximum]. The `dynmem` kind learns from the VM's
 *                own history how far its changes carry on and how large the
 *                rises it did not foresee were (policy_history.c), and refines
 *                the estimate with pressure-stall information, probing and
 *                hysteresis; `hyperv` uses the last demand and the buffer as
 *                they are; `static` pins every VM to its startup size.
 *   2. allocate  the host's memory: plenty -> everyone gets want, and
 *                (opt-in, lend_hold) what no VM wants is lent, by weight, to
 *                VMs whose guests lost page cache and whose `lend` setting is
 *                on (policy_lend.c); scarcity
 *                -> headroom goes first, then weight decides (weighted
 *                water-filling above each VM's floor, never more than a VM
 *                needs).
 *   3. grant     what may be requested now without the sum of assigned memory
 *                exceeding the host's memory during transitions: shrinks are
 *                always allowed, grows only take memory that is free now
 *                (memory freed by a shrink is handed out only once it has
 *                happened). Starting VMs are admitted here.
 *
 * Every size is in bytes, every time in milliseconds.
 */
#ifndef DYNMEM_POLICY_H
#define DYNMEM_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"

enum policy_kind {
        POLICY_DYNMEM,   /* default: Hyper-V's rules plus trend, stall, probing, hysteresis */
        POLICY_STATIC,   /* every VM keeps its startup size: no dynamic memory */
        POLICY_HYPERV,   /* documented Hyper-V behaviour: buffer target, weights, no more */
        POLICY_EXTERNAL, /* targets come from elsewhere (exec: policies), checked here */
};

/*
 * The dynmem kind's tunables. Defaults come from policy_tunables_default();
 * docs/policy.md explains each one.
 */
struct policy_tunables {
        uint64_t min_change_bytes;    /* changes smaller than this are ignored (16 MiB) */
        uint32_t min_change_permille; /* ... or smaller than this share of assigned (30 = 3 %) */
        uint64_t shrink_delay_ms;     /* a surplus must last this long before a shrink (30 s) */
        uint32_t shrink_step_percent; /* one shrink takes at most this % of assigned (100 %) */
        uint64_t trend_lookahead_ms;  /* rising demand is projected this far ahead (5 s) */
        uint32_t
            stall_threshold_permille; /* stall share of an interval that means short (10 = 1 %) */
        uint32_t stall_grow_percent;  /* a stalling VM grows by at least this % (10 %) */
        uint64_t probe_after_ms;      /* no stall for this long before probing starts (60 s) */
        uint32_t
            probe_rate_permille; /* probing lowers the target this much per second (2 = 0.2 %/s) */
        uint32_t probe_max_percent; /* probing goes at most this % below reported demand (25 %) */
        uint32_t
            probe_step_permille; /* one probing shrink near demand takes this much (10 = 1 %) */
        uint32_t
            probe_fine_percent; /* fine probing steps start this % above reported demand (5 %) */
        uint32_t probe_contention_percent; /* probe only while VMs want this % of the host (70 %) */
        uint32_t stall_backoff_max; /* the same correction learned again multiplies stall_memory, up
                                       to this (8) */
        uint64_t stall_memory_ms;   /* a learned demand correction holds this long (10 min) */
        uint64_t history_halflife_ms;   /* what the history learned weighs half after this (6 h) */
        uint32_t headroom_permille;     /* headroom covers this share of unforeseen rises (995) */
        uint32_t headroom_pool_percent; /* the VMs share this % of their buffers' sum (100; 0: each
                                           VM max(its cover, its buffer)) */
        uint32_t headroom_kill_weight;  /* the pool counts a rise past a VM's cover and its swap
                                           (an OOM kill) this many times more (0: not apart) */
        uint64_t headroom_period_ms; /* ... counted per this much time, not per decision (30 s) */
        uint32_t persistence_max_permille; /* changes carry on at most this much (1000; 0 = off) */
        uint32_t grow_band_percent;   /* grow once less than this % of the headroom is left (30) */
        uint32_t shrink_band_percent; /* shrink once the surplus exceeds this % of it (50) */
        uint64_t lend_hold_ms; /* cache lent from idle memory ends this long after the guest's
                                  last eviction (0 = no lending, the default) */
};

void policy_tunables_default(struct policy_tunables *ret);

enum policy_phase {
        POLICY_PHASE_OFF,      /* not running: ignored, holds nothing */
        POLICY_PHASE_STARTING, /* asks for admission with its startup size */
        POLICY_PHASE_RUNNING,  /* holds assigned_bytes */
};

enum policy_reason {
        REASON_NONE,
        REASON_DEMAND,        /* demand plus buffer, within [minimum, maximum] */
        REASON_MINIMUM,       /* held at the minimum */
        REASON_MAXIMUM,       /* capped at the maximum */
        REASON_SCARCITY,      /* cut below its target because the host is short; by weight */
        REASON_STALL,         /* the guest stalls: short whatever its demand says */
        REASON_PROBE,         /* no stall for a while: probing toward the true working set */
        REASON_HOLD,          /* surplus not old enough yet, or a small change ignored */
        REASON_WAITING,       /* grow limited to memory that is free now */
        REASON_NO_SIGNAL,     /* no demand known: keeps its size */
        REASON_STATIC,        /* dynamic memory off, or the static policy */
        REASON_STARTUP,       /* admitted with its startup size */
        REASON_EXTERNAL,      /* target from an external policy */
        REASON_OVERCOMMITTED, /* even the minimums do not fit the host */
        REASON_MIGRATING,     /* set by the balancer, never the policy: its owner migrates it
                                 to or from another host, and its size is held until it has moved */
        REASON_LENT,          /* above its want: cache it evicted, lent from memory no VM wants */
};

const char *policy_reason_name(enum policy_reason r);

enum policy_admission {
        ADMISSION_NONE,   /* not starting */
        ADMISSION_ADMIT,  /* start now with startup_bytes: the memory is free */
        ADMISSION_WAIT,   /* room is being made: others are shrinking */
        ADMISSION_REFUSE, /* cannot fit even with every VM at its minimum */
};

/*
 * What the policy learns from one VM's demand, sample by sample (policy_history.c):
 * how much of a change carries on into the next interval (persistence), and a
 * histogram of the rises it did not foresee, by size, whose weights halve every
 * history_halflife_ms. Both only ever look at samples already seen.
 */
#define POLICY_RISE_BUCKETS 24

struct policy_history {
        float rise_weight[POLICY_RISE_BUCKETS]; /* bucket 0: < 8 MiB; then x sqrt(2) each */
        float weight_sum;
        float weight_unit;             /* what one new sample weighs in rise_weight (0: none yet) */
        float persistence;             /* how much of a change has carried on (0..1) */
        uint8_t top;                   /* the highest bucket with any weight */
        bool primed;                   /* last_demand holds a sample */
        uint64_t last_demand;          /* the previous sample (bytes) */
        uint64_t last_ms;              /* when it was seen */
        uint64_t last_dt_ms;           /* the interval before it */
        uint64_t expected;             /* what the previous decision expected now (bytes) */
        double trend_rate;             /* bytes per ms, smoothed over the latest samples */
        double last_rate;              /* bytes per ms over the latest interval */
        double persist_xy, persist_xx; /* decayed sums: rate x previous trend, trend^2 */
};

/*
 * Which bucket the OOM-kill line of each of a history's edges falls in, for
 * one room (the guest's swap in the history's bytes): edge b's line, edge b
 * plus the room, lies in bucket bucket[b]. They depend on the room alone, so
 * a VM keeps them from one decision to the next and works them out again
 * only when its room changes (policy_history_priced_window()).
 */
struct policy_kill_lines {
        double room; /* the room they are for */
        /* bucket[0]: POLICY_RISE_BUCKETS once worked out, 0 before (edge 0 is never a cover) */
        uint8_t bucket[POLICY_RISE_BUCKETS];
};

/* What the policy remembers about one VM between decisions; kept by the caller, zeroed at start. */
struct policy_vm_memory {
        /* what every decision's smoothing and lending read first */
        bool decided;  /* a decision has been made for this VM */
        bool surplus;  /* assigned has been above its shrink edge since surplus_since_ms */
        bool last_cut; /* the previous ideal was below its want (scarcity) */
        bool probing;  /* a probe is descending toward the working set */
        uint32_t probe_permille; /* how far the probe is below its start */
        uint64_t last_decision_ms;
        uint64_t surplus_since_ms;
        uint64_t last_target_bytes; /* the ideal of the previous decision */
        uint64_t lend_bytes;        /* lent above the want: cache evicted, summed (0 = none) */
        uint64_t lend_ms;           /* when the guest last evicted cache under a stall */

        uint64_t last_stall_ms;
        uint64_t probe_start_bytes;   /* where the probe started: the fine zone, or lower */
        uint64_t probe_demand_bytes;  /* corrected demand when the probe last looked */
        uint64_t probe_cover_bytes;   /* the headroom for unforeseen rises the probe kept */
        uint32_t correction_permille; /* learned: working set / reported demand, 1..1000
                                         (0 = none; 1000 with a stall's floor) */
        uint32_t stall_backoff;       /* multiplier of stall_memory_ms, doubled per same edge */
        uint32_t stall_streak;        /* consecutive decisions stalling at want */
        uint32_t correction_aged_ms;  /* how old it already was then (restored: policy_save.h) */
        uint64_t stall_floor_bytes;   /* learned at a stall: the working set is at least this */
        uint64_t stall_figure_bytes;  /* the reported demand the floor was learned against */
        uint64_t correction_ms;       /* when either was learned */
        struct policy_history history;
        struct policy_kill_lines kill_lines; /* beside the buckets they index */
};

#define POLICY_POOL_PIECES 4

/*
 * One VM as the policy sees it. The fields every pass reads or writes come
 * first, then the cover, the scratch of the pool's share and of lending, and
 * the part of the memory the smoothing reads: the passes after the estimate
 * read these 240 bytes and nothing else of the VM. What only the estimate
 * needs comes after. 576 bytes, nine cache lines, without holes: in an array
 * every VM's fields lie at the same place in their lines, and a pass over
 * the VMs reads fewer lines.
 */
struct policy_vm {
        /* inputs read by every pass */
        enum policy_phase phase;
        bool demand_known;
        bool stall_known;
        /*
         * The stall share came in a report the guest sent because it started to
         * stall, received since the previous decision: its demand figure is as
         * fresh as the stall (set for that one decision only).
         */
        bool stall_urgent;
        /* outputs and the allocator's scratch */
        bool probe_candidate;
        enum policy_reason reason;
        enum policy_reason ideal_reason;
        enum policy_admission admission;
        uint32_t pool_scale;      /* scratch: the correction of the figure, permille */
        uint64_t assigned_bytes;  /* input: what the VM really holds now (read back) */
        uint64_t requested_bytes; /* input: target the backend is moving toward (0 = none) */
        uint64_t may_hold_bytes;  /* input: the most it may hold until read back (0 = assigned) */
        uint64_t floor_bytes, need_bytes, want_bytes;
        uint64_t now_bytes;          /* what it uses now, without the projection (floor..need) */
        uint64_t ideal_bytes;        /* output: what the VM should reach once memory is free */
        uint64_t target_bytes;       /* output: what to request now (after grant) */
        struct vm_settings settings; /* input */
        uint64_t cover_bytes;        /* scratch: headroom its unforeseen rises call for */
        uint64_t lend_bytes;         /* scratch: the want plus what is lent (0 = nothing lent) */
        uint64_t pool_next_bytes;    /* scratch: the corrected figure expected next */
        bool pooled; /* scratch: want = next + headroom from the pool (policy_pool.c) */
        /*
         * scratch: the rise worth covering across the pool's window, in up to
         * POLICY_POOL_PIECES pieces, each from an index of the window on, as
         * a bucket's edge (0 pieces: found again at the price)
         */
        uint8_t pool_pieces;
        uint8_t pool_from[POLICY_POOL_PIECES];
        uint8_t pool_bucket[POLICY_POOL_PIECES]; /* ... its edge (policy_history_edge()) */
        bool swap_known;                         /* input for the estimate: swap_bytes below */
        struct policy_vm_memory memory;          /* in and out */

        /* inputs for the estimate */
        const char *name;
        uint64_t demand_bytes;        /* latest demand sample, without buffer */
        uint64_t demand_time_ms;      /* when it was sampled, on the decisions' clock (0 = now) */
        double stall_fraction;        /* share of the last interval spent stalled, 0..1 */
        uint64_t cache_evicted_bytes; /* page cache evicted under a stall since the last decision */
        uint64_t swap_bytes;     /* room the guest has past its memory before its OOM killer runs
                                    (swap free, a burst absorber); unknown: none */
        uint64_t lent_bytes;     /* output: what of target_bytes is lent above the want
                                    (0 = nothing lent) */
        uint64_t external_bytes; /* POLICY_EXTERNAL: proposed target (0 = keep) */
};
_Static_assert(sizeof(struct policy_vm) % 64 == 0,
               "a whole number of cache lines a VM: every VM's fields fall in the same lines");

struct policy_host {
        uint64_t memory_bytes;  /* memory the VMs may hold in all */
        uint64_t reserve_bytes; /* kept for the host itself, outside memory_bytes; reported only */
};

/* Per-decision summary, for counters and logs. */
struct policy_summary {
        uint64_t sum_floor_bytes, sum_need_bytes, sum_want_bytes;
        uint64_t sum_target_bytes;
        bool scarcity;      /* not every VM gets its want */
        bool overcommitted; /* the floors alone exceed memory */
        bool refused;       /* POLICY_EXTERNAL: proposal exceeded memory; targets kept */
};

/*
 * Scratch space the allocator sorts in, and what one decision tells the next
 * about the host as a whole. Owned by the caller so a decision does not
 * allocate; policy_scratch_reserve() grows it (returns -ENOMEM).
 */
struct policy_sort_item {
        uint32_t key;
        uint32_t index;
};

#define POLICY_LEVELS 5 /* the levels the allocation hands memory out by (policy.c) */

/*
 * One participant of a decision as the allocation sees it, in the
 * participants' order: the level the water-filling hands memory out above
 * and the next one, its block and weight, copied as its levels are summed,
 * so that the water-filling and the settling read these and not the VMs.
 */
struct policy_level_item {
        uint64_t lower, upper; /* its levels at the water-filling's base and the next */
        uint64_t block;
        uint64_t give; /* what the water-filling gave it above its lower level */
        uint32_t weight;
};

struct policy_scratch {
        bool contended;     /* the last decision's VMs wanted most of the host (probing) */
        bool scarce;        /* ... or more than all of it (no probing: scarcity cuts instead) */
        bool lent;          /* some VM's lent_bytes was not 0 after the last decision */
        bool filled;        /* the last decision water-filled (its levels were packed) */
        uint8_t fill_level; /* ... from this level: the next packs this one and the one above */
        uint32_t price_bin; /* the headroom pool's price: where the next decision looks first */
        size_t capacity;
        struct policy_sort_item *items;
        struct policy_sort_item *spare;   /* radix sort's second buffer */
        struct policy_level_item *levels; /* the participants' levels, in their order */
        uint32_t *index;
        uint32_t *shrinking; /* VMs whose smoothing a release may change (settle()) */
};

int policy_scratch_reserve(struct policy_scratch *s, size_t n);
void policy_scratch_free(struct policy_scratch *s);

struct policy_config {
        enum policy_kind kind;
        struct policy_tunables tunables;
};

/*
 * Decide targets for n VMs at time now_ms. Fills every VM's outputs and
 * updates its memory. scratch must hold at least n entries. ret_summary may
 * be NULL. Returns 0, or -ENOMEM when scratch is too small.
 */
int policy_decide(const struct policy_config *cfg, const struct policy_host *host,
                  struct policy_vm *vms, size_t n, uint64_t now_ms, struct policy_scratch *scratch,
                  struct policy_summary *ret_summary);

/*
 * Parse a policy name: "dynmem", "static", "hyperv" (and "exec:..." as
 * POLICY_EXTERNAL, with *ret_command pointing after the colon; "exec:"
 * followed by nothing or only white space is refused). Returns 0 or -EINVAL.
 */
int policy_kind_parse(const char *text, enum policy_kind *ret_kind, const char **ret_command);
const char *policy_kind_name(enum policy_kind kind);

#endif
