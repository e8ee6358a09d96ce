/*
 * policy_pool: the headroom of the dynmem kind, shared between the VMs. The
 * buffers say how much memory the operator gives to headroom in all (the sum
 * of each VM's buffer over its expected use, headroom_pool_percent of it);
 * the pool hands it out by each VM's learned unforeseen rises
 * (policy_history.c), as a price per byte of cover: every VM covers the
 * rises that are likelier per byte than the price, never more than its cover
 * at headroom_permille, and the price is the lowest at which the covers fit
 * the pool. What is left once every cover is met goes in proportion to the
 * buffers. A VM whose rises are small thus gives its headroom to one whose
 * rises are frequent, where a flat buffer gives the steady VM more than it
 * needs and the bursty one less; a lone VM, or VMs with no history yet, get
 * their buffers.
 */
#include <math.h>

#include "policy_int.h"

static uint64_t buffer_of(const struct policy_vm *vm)
{
        return scale_permille(vm->pool_next_bytes, 10ull * vm->settings.buffer_percent);
}

/* The VM's cover at `price`, never above its cover at headroom_permille (vm->cover_bytes). */
static uint64_t cover_at(const struct policy_vm *vm, double price, const struct policy_tunables *t)
{
        uint64_t rise = policy_history_priced(&vm->memory.history, price, t->headroom_period_ms);
        uint64_t cover = scale_permille(rise, vm->pool_scale);

        return cover < vm->cover_bytes ? cover : vm->cover_bytes;
}

/*
 * Prices per byte of cover, as logarithms: a share of rises per byte, from 1
 * per 2^50 bytes (everything worth covering) to 1 per 2^10 (nothing is), in
 * POLICY_PRICE_BINS steps.
 */
#define PRICE_LOG_LO (-50.0 * M_LN2)
#define PRICE_LOG_HI (-10.0 * M_LN2)
#define PRICE_BINS   POLICY_PRICE_BINS
#define PRICE_STEP   ((PRICE_LOG_HI - PRICE_LOG_LO) / PRICE_BINS)

/*
 * Adds the VM's buffer to the pool, and the bytes of cover each segment of
 * its hull is worth to the bin of the segment's slope.
 */
void policy_pool_add(struct policy_pool *pool, const struct policy_vm *vm,
                     const struct policy_tunables *t)
{
        double x[POLICY_RISE_BUCKETS + 1], y[POLICY_RISE_BUCKETS + 1];
        double scale = (double)vm->pool_scale / 1000.0, at = 0.0;
        double cap = (double)vm->cover_bytes / scale; /* in the history's bytes */

        pool->buffers = add_sat(pool->buffers, buffer_of(vm));
        if (vm->cover_bytes == 0)
                return; /* no cover to bin (cap is 0, or NaN with a scale of 0) */
        size_t m = policy_history_hull(&vm->memory.history, t->headroom_period_ms, x, y);
        for (size_t i = 0; i + 1 < m && at < cap; i++) {
                if (!(y[i] > y[i + 1]))
                        break; /* nothing more is missed above: no cover beyond is worth a byte */
                double bytes = x[i + 1] - x[i], slope = (y[i] - y[i + 1]) / bytes;
                double lx = log(slope);
                if (lx < PRICE_LOG_LO)
                        break; /* the slopes fall along the hull: none further is worth it */
                int bin =
                    lx >= PRICE_LOG_HI ? PRICE_BINS - 1 : (int)((lx - PRICE_LOG_LO) / PRICE_STEP);
                double len = at + bytes > cap ? cap - at : bytes;
                pool->bins[bin] += len * scale;
                at += bytes;
        }
}

/*
 * The lowest price (to PRICE_STEP) whose covers fit the pool: the bins are
 * summed from the steepest down until the pool is spent. Returns the price;
 * *ret_covers is what the covers hold at it.
 */
static double price_for(const struct policy_pool *pool, const struct policy_tunables *t,
                        uint64_t *ret_covers)
{
        double pool_bytes = (double)scale_permille(pool->buffers, 10ull * t->headroom_pool_percent);
        double price = exp(PRICE_LOG_LO), sum = 0.0;

        for (int b = PRICE_BINS - 1; b >= 0; b--) {
                if (sum + pool->bins[b] > pool_bytes) {
                        price = exp(PRICE_LOG_LO + (b + 1) * PRICE_STEP);
                        break;
                }
                sum += pool->bins[b];
        }
        *ret_covers = (uint64_t)sum;
        return price;
}

/*
 * want = the figure expected next + the headroom, never below need, clamped;
 * the reason as estimate_levels() gives it.
 */
static void set_want(struct policy_vm *vm, uint64_t headroom)
{
        const struct vm_settings *s = &vm->settings;
        uint64_t want = block_up(add_sat(vm->pool_next_bytes, headroom), s->block_bytes);
        bool below = want < s->minimum_bytes && vm->need_bytes <= s->minimum_bytes;

        if (want < vm->need_bytes)
                want = vm->need_bytes;
        if (vm->reason == REASON_DEMAND || vm->reason == REASON_MAXIMUM ||
            vm->reason == REASON_MINIMUM)
                vm->reason = want > s->maximum_bytes ? REASON_MAXIMUM
                             : below                 ? REASON_MINIMUM
                                                     : REASON_DEMAND;
        vm->want_bytes = clamp_u64(want, s->minimum_bytes, s->maximum_bytes);
}

void policy_pool_share(const struct policy_pool *pool, struct policy_vm *vms, size_t n,
                       const struct policy_tunables *t)
{
        uint64_t covers, buffers = pool->buffers;

        if (!t->headroom_pool_percent)
                return;
        double price = price_for(pool, t, &covers);
        uint64_t pool_bytes = scale_permille(buffers, 10ull * t->headroom_pool_percent);
        double left = covers < pool_bytes ? (double)(pool_bytes - covers) : 0.0;

        for (size_t i = 0; i < n; i++) {
                struct policy_vm *vm = &vms[i];
                if (!vm->pooled)
                        continue;
                double share = buffers ? left * (double)buffer_of(vm) / (double)buffers : 0.0;
                set_want(vm, add_sat(cover_at(vm, price, t), (uint64_t)share));
        }
}
