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
 *
 * Finding the price: the covers summed over the VMs fall as the price rises
 * (a VM's cover is where the lower hull of its (cover, share missed) points
 * falls less steeply than the price), and the price is the lowest of
 * POLICY_PRICE_BINS steps at which they fit. The price moves little from one
 * decision to the next, so a decision sums the covers only at the
 * POLICY_PRICE_WINDOW steps around the previous one, each VM's with one pass
 * over its buckets for the window's two ends (most VMs cover the same across
 * the window; a VM whose cover changes inside it is bisected). When the price
 * has left the window, further passes over the VMs narrow it down over all
 * the steps. Each step's sum is the same whichever pass evaluates it, so the
 * price does not depend on where the search starts.
 */
#include <math.h>

#include "policy_int.h"

static uint64_t buffer_of(const struct policy_vm *vm)
{
        return scale_permille(vm->pool_next_bytes, 10ull * vm->settings.buffer_percent);
}

/*
 * The VM's figure in the history's bytes: divided by the correction
 * (pool_scale / 1000), which is most often none, 1000 permille: then the
 * quotient is the figure itself and no division is made.
 */
static double uncorrected(const struct policy_vm *vm, double bytes)
{
        return vm->pool_scale == 1000 ? bytes : bytes / ((double)vm->pool_scale / 1000.0);
}

/*
 * The VM's OOM kills as its history measures them: a rise past the cover
 * plus the guest's swap (none when unknown: without swap every rise past the
 * cover may be one), in the history's bytes.
 */
static struct policy_kill kill_of(const struct policy_vm *vm, const struct policy_tunables *t)
{
        double room =
            vm->swap_known && vm->pool_scale > 0 ? uncorrected(vm, (double)vm->swap_bytes) : 0.0;

        return (struct policy_kill){.room = room, .weight = (double)t->headroom_kill_weight};
}

/*
 * Prices per byte of cover, as logarithms: a share of rises per byte, from 1
 * per 2^50 bytes (everything worth covering) to 1 per 2^10 (nothing is), in
 * POLICY_PRICE_BINS steps; bin b's price is the lowest it holds.
 */
#define PRICE_LOG_LO (-50.0 * M_LN2)
#define PRICE_LOG_HI (-10.0 * M_LN2)
#define PRICE_BINS   POLICY_PRICE_BINS
#define PRICE_STEP   ((PRICE_LOG_HI - PRICE_LOG_LO) / PRICE_BINS)
#define WINDOW       POLICY_PRICE_WINDOW

static double price_of(int bin)
{
        return exp(PRICE_LOG_LO + bin * PRICE_STEP);
}

void policy_pool_start(struct policy_pool *pool, uint32_t hint)
{
        int first = (int)(hint < PRICE_BINS ? hint : PRICE_BINS) - WINDOW / 2;

        *pool = (struct policy_pool){.count = WINDOW};
        pool->first = first < 0 ? 0 : first > PRICE_BINS - WINDOW ? PRICE_BINS - WINDOW : first;
        for (int i = 0; i < WINDOW; i++)
                pool->prices[i] = price_of(pool->first + i);
}

/*
 * Adds a pooled VM's cover at each of `count` ascending prices to `steps`,
 * as the changes from one price to the next (steps[0]: its cover at the
 * first). Keeps in the VM the rise at each when there are few pieces.
 */
static void add_covers(struct policy_vm *vm, const struct policy_tunables *t, const double *prices,
                       int count, double *steps)
{
        uint8_t buckets[POLICY_RISE_BUCKETS + 1];
        int from[POLICY_RISE_BUCKETS + 1];
        double held = 0.0;

        vm->pool_pieces = 1;
        vm->pool_from[0] = 0;
        vm->pool_bucket[0] = 0;
        if (vm->cover_bytes == 0)
                return; /* it covers nothing at any price (and a scale of 0 covers nothing) */
        double scale = vm->pool_scale == 1000 ? 1.0 : (double)vm->pool_scale / 1000.0;
        double cap = uncorrected(vm, (double)vm->cover_bytes); /* in the history's bytes */
        struct policy_kill kill = kill_of(vm, t);
        int pieces =
            policy_history_priced_window(&vm->memory.history, prices, count, t->headroom_period_ms,
                                         &kill, &vm->memory.kill_lines, buckets, from);
        for (int k = 0; k < pieces; k++) {
                double edge = policy_history_edge(buckets[k]);
                double now = (edge < cap ? edge : cap) * scale;
                steps[from[k]] += now - held;
                held = now;
                if (k < POLICY_POOL_PIECES) {
                        vm->pool_from[k] = (uint8_t)from[k];
                        vm->pool_bucket[k] = buckets[k];
                }
        }
        vm->pool_pieces = pieces <= POLICY_POOL_PIECES ? (uint8_t)pieces : 0;
}

/* The covers summed at each price, from their changes. */
static void sum_steps(const double *steps, int count, double *sums)
{
        double sum = 0.0;

        for (int i = 0; i < count; i++)
                sums[i] = sum += steps[i];
}

/*
 * Adds the VM's buffer to the pool and its covers at the window's prices to
 * their sums (and keeps its rises there: the share needs no second look at
 * its history).
 */
void policy_pool_add(struct policy_pool *pool, struct policy_vm *vm,
                     const struct policy_tunables *t)
{
        pool->buffers = add_sat(pool->buffers, buffer_of(vm));
        add_covers(vm, t, pool->prices, pool->count, pool->steps);
}

/*
 * Narrows [*lo, *hi], the bins the price may be in, by the sums at `count`
 * ascending bins: the price is the lowest bin whose covers fit the pool
 * (*hi_covers: the sum at *hi; bin PRICE_BINS fits with none).
 */
static void narrow(const int *bins, const double *sums, int count, double pool_bytes, int *lo,
                   int *hi, double *hi_covers)
{
        for (int i = 0; i < count; i++) {
                if (sums[i] <= pool_bytes) {
                        if (bins[i] < *hi) {
                                *hi = bins[i];
                                *hi_covers = sums[i];
                        }
                        return;
                }
                if (bins[i] + 1 > *lo)
                        *lo = bins[i] + 1;
        }
}

/*
 * One more pass over the pooled VMs: the sums at up to WINDOW bins spread
 * over [a, b), narrowing [*lo, *hi].
 */
static void narrow_pass(struct policy_vm *vms, size_t n, const struct policy_tunables *t,
                        double pool_bytes, int a, int b, int *lo, int *hi, double *hi_covers)
{
        int bins[WINDOW], span = b - a, count = span < WINDOW ? span : WINDOW;
        double prices[WINDOW], steps[WINDOW] = {0}, sums[WINDOW];

        for (int i = 0; i < count; i++) {
                bins[i] = a + (int)((int64_t)i * span / count);
                prices[i] = price_of(bins[i]);
        }
        for (size_t v = 0; v < n; v++)
                if (vms[v].pooled)
                        add_covers(&vms[v], t, prices, count, steps);
        sum_steps(steps, count, sums);
        narrow(bins, sums, count, pool_bytes, lo, hi, hi_covers);
}

void policy_pool_price(struct policy_pool *pool, struct policy_vm *vms, size_t n,
                       const struct policy_tunables *t)
{
        uint64_t pool_whole = scale_permille(pool->buffers, 10ull * t->headroom_pool_percent);
        double pool_bytes = (double)pool_whole;
        int bins[WINDOW], lo = 0, hi = PRICE_BINS;
        double covers = 0.0, sums[WINDOW];

        for (int i = 0; i < pool->count; i++)
                bins[i] = pool->first + i;
        sum_steps(pool->steps, pool->count, sums);
        narrow(bins, sums, pool->count, pool_bytes, &lo, &hi, &covers);
        /*
         * Outside the window: the price is looked for next to it first, then
         * in spans four times as wide, then between the bins that bound it.
         */
        bool up = lo > pool->first, down = hi <= pool->first;
        for (int reach = WINDOW; lo < hi; reach *= 4) {
                int a = lo, b = hi;
                if (up && hi == PRICE_BINS && b - a > reach)
                        b = a + reach;
                else if (down && lo == 0 && b - a > reach)
                        a = b - reach;
                narrow_pass(vms, n, t, pool_bytes, a, b, &lo, &hi, &covers);
                pool->narrowed = true; /* the rises kept are no longer the window's */
        }
        pool->bin = lo;
        pool->price = price_of(lo);
        uint64_t covered = (uint64_t)covers;
        pool->left = covered < pool_whole ? (double)(pool_whole - covered) : 0.0;
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

/* The VM's rise worth covering at the price: kept from the window, or found again. */
static uint64_t rise_at(const struct policy_pool *pool, const struct policy_vm *vm,
                        const struct policy_tunables *t)
{
        int at = pool->bin - pool->first;

        if (at >= 0 && at < pool->count && vm->pool_pieces > 0 && !pool->narrowed) {
                int k = vm->pool_pieces - 1;
                while (k > 0 && vm->pool_from[k] > at)
                        k--;
                return (uint64_t)policy_history_edge(vm->pool_bucket[k]);
        }
        struct policy_kill kill = kill_of(vm, t);
        return policy_history_priced(&vm->memory.history, pool->price, t->headroom_period_ms,
                                     &kill);
}

/*
 * A pooled VM's headroom: its cover at the price, never above its cover at
 * headroom_permille (vm->cover_bytes), and its share of what the covers
 * leave of the pool, in proportion to its buffer.
 */
void policy_pool_share_one(const struct policy_pool *pool, struct policy_vm *vm,
                           const struct policy_tunables *t)
{
        uint64_t cover = scale_permille(rise_at(pool, vm, t), vm->pool_scale);

        if (cover > vm->cover_bytes)
                cover = vm->cover_bytes;
        uint64_t buffers = pool->buffers;
        double share = buffers ? pool->left * (double)buffer_of(vm) / (double)buffers : 0.0;
        set_want(vm, add_sat(cover, (uint64_t)share));
}
