/*
 * policy_pool: the headroom of the dynmem kind, shared between the VMs. The
 * buffers say how much memory the operator gives to headroom in all (the sum
 * of each VM's buffer over its expected use, headroom_pool_percent of it);
 * the pool hands it out by each VM's learned unforeseen rises
 * (policy_history.c): every VM gets the rise it exceeds with the same
 * probability, that probability as small as the pool allows (down to the
 * 1 - headroom_permille of the cover), and what is left once every cover is
 * met goes in proportion to the buffers. A VM whose rises are small thus
 * gives its headroom to one whose rises are large, where a flat buffer gives
 * the steady VM more than it needs and the bursty one less.
 */
#include <math.h>

#include "policy_int.h"

/* Halvings of the log-range of shares; 2^-16 of it is well inside a bucket. */
#define POOL_STEPS 20

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

static uint64_t covers_at(const struct policy_vm *vms, size_t n, double price,
                          const struct policy_tunables *t)
{
        uint64_t sum = 0;

        for (size_t i = 0; i < n; i++) {
                const struct policy_vm *vm = &vms[i];
                if (!vm->pooled)
                        continue;
                sum = add_sat(sum, cover_at(vm, price, t));
        }
        return sum;
}

/* Prices per byte of cover: a share of rises per byte, from 1 per 2^50 bytes to 1 per 2^10. */
#define PRICE_LOG_LO (-50.0 * M_LN2)
#define PRICE_LOG_HI (-10.0 * M_LN2)

/* The lowest price whose covers fit `pool`. */
static double price_for(const struct policy_vm *vms, size_t n, uint64_t pool,
                        const struct policy_tunables *t)
{
        double lo = PRICE_LOG_LO, hi = PRICE_LOG_HI;

        if (covers_at(vms, n, exp(lo), t) <= pool)
                return exp(lo);
        for (int s = 0; s < POOL_STEPS; s++) {
                double mid = 0.5 * (lo + hi);
                if (covers_at(vms, n, exp(mid), t) <= pool)
                        hi = mid;
                else
                        lo = mid;
        }
        return exp(hi);
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

void policy_pool_share(struct policy_vm *vms, size_t n, const struct policy_tunables *t)
{
        uint64_t buffers = 0;

        if (!t->headroom_pool_percent)
                return;
        for (size_t i = 0; i < n; i++)
                if (vms[i].pooled)
                        buffers = add_sat(buffers, buffer_of(&vms[i]));
        uint64_t pool = scale_permille(buffers, 10ull * t->headroom_pool_percent);
        double price = price_for(vms, n, pool, t);
        uint64_t covers = covers_at(vms, n, price, t);
        double left = covers < pool ? (double)(pool - covers) : 0.0;

        for (size_t i = 0; i < n; i++) {
                struct policy_vm *vm = &vms[i];
                if (!vm->pooled)
                        continue;
                double share = buffers ? left * (double)buffer_of(vm) / (double)buffers : 0.0;
                set_want(vm, add_sat(cover_at(vm, price, t), (uint64_t)share));
        }
}
