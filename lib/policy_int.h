/*
 * policy_int: what the policy's files share and nobody else uses: saturating
 * byte arithmetic, and the per-VM steps of the estimate and smoothing stages
 * (policy_estimate.c, policy_smooth.c) that policy.c's decision calls.
 */
#ifndef DYNMEM_POLICY_INT_H
#define DYNMEM_POLICY_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy.h"
#include "units.h"

/* ---- saturating arithmetic on bytes ---- */

static inline uint64_t clamp_u64(uint64_t v, uint64_t lo, uint64_t hi)
{
        return v < lo ? lo : v > hi ? hi : v;
}

/* v * permille / 1000 in 128 bits, saturating. */
static inline uint64_t scale_permille(uint64_t v, uint64_t permille)
{
        uint64_t product;

        if (!__builtin_mul_overflow(v, permille, &product))
                return product / 1000; /* the common case, without 128-bit division */
        unsigned __int128 r = (unsigned __int128)v * permille / 1000;
        return r > UINT64_MAX ? UINT64_MAX : (uint64_t)r;
}

/* v * (1000 + permille) / 1000, saturating; permille may be large (buffer 2000 % = 20000). */
static inline uint64_t scale_up_permille(uint64_t v, uint64_t permille)
{
        return scale_permille(v, 1000 + permille);
}

/* Block sizes are powers of two (settings_check): round with masks. */
static inline uint64_t block_up(uint64_t v, uint64_t block)
{
        uint64_t mask = block - 1;
        return v > UINT64_MAX - mask ? UINT64_MAX & ~mask : (v + mask) & ~mask;
}

static inline uint64_t block_down(uint64_t v, uint64_t block)
{
        return v & ~(block - 1);
}

static inline uint64_t deadband(const struct policy_tunables *t, uint64_t assigned)
{
        uint64_t rel = scale_permille(assigned, t->min_change_permille);
        return rel > t->min_change_bytes ? rel : t->min_change_bytes;
}

static inline uint64_t ms_since(uint64_t now, uint64_t then)
{
        return now > then ? now - then : 0;
}

/* The VM stalled for stall_threshold_permille or more of the last interval. */
static inline bool stalling(const struct policy_vm *vm, const struct policy_tunables *t)
{
        /* NaN and negative shares compare false: no stall. */
        return vm->stall_known && vm->stall_fraction * 1000.0 >= t->stall_threshold_permille;
}

/* One decay factor per sampling interval, shared by the VMs of one decision. */
struct policy_decay {
        bool valid;
        uint64_t dt_ms;
        double value;
};

/*
 * Learn from a VM's demand sample taken at `now` (policy_history.c): the
 * first sample at a new time (at least 50 ms after the previous one) updates
 * the history, a sample seen again changes nothing; returns the demand
 * expected at the next sample (the sample plus the projection of its latest
 * change).
 */
uint64_t policy_history_update(struct policy_history *h, uint64_t demand, uint64_t now,
                               struct policy_decay *cache, const struct policy_tunables *t);

/*
 * The rise `permille` of the VM's unforeseen rises stayed under, counted per
 * period_ms of time (0: per decision), in bytes (0: none known).
 */
uint64_t policy_history_quantile(const struct policy_history *h, uint32_t permille,
                                 uint64_t period_ms);

/*
 * The same for the share `miss` of rises left uncovered (0..1; per period_ms
 * of time when that is set): 0 for a share of 1 or more.
 */
uint64_t policy_history_tail(const struct policy_history *h, double miss, uint64_t period_ms);

/*
 * What a cover's misses cost beyond their count: a rise larger than the
 * cover plus `room` (the guest's swap, in the history's bytes) is an OOM
 * kill, counted `weight` times more (weight 0: not counted).
 */
struct policy_kill {
        double room;
        double weight;
};

/*
 * The cover worth its price: the bucket edge h that makes the share of rises
 * above h (per period_ms of time), plus kill->weight x the share above h +
 * kill->room (NULL: none), plus `price` x h smallest, in bytes (the
 * higher edge of two that cost the same). Along the lower convex hull of the
 * points (cover, share missed) this is where the hull's slope falls to the
 * price: a higher price never buys more cover.
 */
uint64_t policy_history_priced(const struct policy_history *h, double price, uint64_t period_ms,
                               const struct policy_kill *kill);

/* The same edge as a double (the top edge is not a whole number of bytes). */
double policy_history_priced_edge(const struct policy_history *h, double price, uint64_t period_ms,
                                  const struct policy_kill *kill);

/*
 * The edge policy_history_priced_edge() gives at each of `count` ascending
 * prices, in one pass over the buckets: as pieces, highest edge first, piece
 * k holding the edge of bucket buckets[k] (policy_history_edge()) from
 * prices[from[k]] up to the next piece's start (the last up to the end). The
 * two ends are what priced_edge gives (for a history that covers anything:
 * one with every rise in the bottom bucket gives no cover, bucket 0); between
 * them the edge steps where the slope of the lower hull of the points
 * (cover, share missed) falls below the price. `lines` are the VM's kill
 * lines kept from before (worked out again here when they are not for
 * kill->room). Returns how many pieces (1 .. POLICY_RISE_BUCKETS + 1).
 */
int policy_history_priced_window(const struct policy_history *h, const double *prices, int count,
                                 uint64_t period_ms, const struct policy_kill *kill,
                                 struct policy_kill_lines *lines, uint8_t *buckets, int *from);

/*
 * The covers the edges stand for, by bucket b from 1: none for b = 1 (the
 * bottom bucket is no cover), the start of bucket b up to the last, whose
 * end is its start x sqrt(2); index 0: none.
 */
extern const double policy_history_edges[POLICY_RISE_BUCKETS + 1];

/* The cover of an edge policy_history_priced_window() gives, in bytes. */
static inline double policy_history_edge(unsigned bucket)
{
        return bucket <= POLICY_RISE_BUCKETS ? policy_history_edges[bucket] : 0.0;
}

/*
 * The headroom pool (policy_pool.c): the VMs whose want came from their
 * learned rises (vm->pooled) share the headroom the buffers would give them
 * in all, at one price per byte of cover. The price is one of
 * POLICY_PRICE_BINS steps; a decision first looks at POLICY_PRICE_WINDOW of
 * them around the previous decision's price (policy_scratch.price_bin).
 * Each VM is added right after its estimate, while its history is still in
 * the cache (its buffer summed, its covers at the window's prices);
 * policy_pool_price() then finds the price, with more passes over the VMs
 * only when it left the window, and each VM's headroom is set from it
 * (policy_pool_share_one()) before the allocation.
 */
#define POLICY_PRICE_BINS   4096
#define POLICY_PRICE_WINDOW 8

struct policy_pool {
        uint64_t buffers;                   /* the pooled VMs' buffers, summed */
        int first, count;                   /* the window: bins first .. first + count - 1 */
        double prices[POLICY_PRICE_WINDOW]; /* the price of each */
        double steps[POLICY_PRICE_WINDOW];  /* the pooled VMs' covers there, summed, as changes */
        int bin;                            /* the price found: its bin, 0..POLICY_PRICE_BINS */
        double price;                       /* ... and the price */
        double left;                        /* what the covers at that price leave of the pool */
        bool narrowed;                      /* found outside the window, by more passes */
};

void policy_pool_start(struct policy_pool *pool, uint32_t hint);
void policy_pool_add(struct policy_pool *pool, struct policy_vm *vm,
                     const struct policy_tunables *t);
void policy_pool_price(struct policy_pool *pool, struct policy_vm *vms, size_t n,
                       const struct policy_tunables *t);
void policy_pool_share_one(const struct policy_pool *pool, struct policy_vm *vm,
                           const struct policy_tunables *t);

/*
 * The grow edge: below it a VM is grown toward `top` (its want, or its ideal
 * under scarcity); above it, it may drift. It keeps the VM's cover for its own
 * unforeseen rises and grow_band_percent of the rest of its headroom.
 */
static inline uint64_t grow_edge(const struct policy_vm *vm, uint64_t top,
                                 const struct policy_tunables *t)
{
        uint64_t need = vm->need_bytes;
        uint64_t room = top > need ? top - need : 0;
        uint64_t band = scale_permille(room, 10ull * t->grow_band_percent);
        uint64_t cover = vm->cover_bytes < room ? vm->cover_bytes : room;

        return need + (band > cover ? band : cover);
}

/* Stage 1 for one VM: floor, need, want and reason (policy_estimate.c). */
void policy_estimate_one(const struct policy_config *cfg, struct policy_vm *vm, uint64_t now,
                         struct policy_decay *decay);

/* The cache lent to one VM, after its want is known (policy_lend.c). */
void policy_lend_one(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t);

/* Once its ideal is known: the reason `lent`, and a loan cut to what it was given. */
void policy_lend_settle(struct policy_vm *vm);

/* After the grant: what of the VM's target is lent (lent_bytes). */
void policy_lend_figure(struct policy_vm *vm);

/* Probing for one candidate, once the host's contention is known (policy_estimate.c). */
void policy_probe_one(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t,
                      bool contended);

/*
 * A VM waits for memory that holds keep: the holds are released, all of them
 * when it is below its need (or a VM waits to start), only those beyond the
 * deadband when it waits for headroom.
 */
enum policy_release {
        RELEASE_NONE,
        RELEASE_LARGE,
        RELEASE_ALL,
};

/* Stage 3 hysteresis for one running dynamic VM (policy_smooth.c). */
void policy_smooth_one(struct policy_vm *vm, uint64_t now, const struct policy_tunables *t,
                       bool scarcity, enum policy_release release);

#endif
