/*
 * policy_history: what the dynmem kind learns from one VM's own demand, one
 * sample at a time, and nothing else: how much of a change carries on into
 * the next interval (persistence, for the projection), and how large the
 * rises were that the projection did not foresee (a histogram whose
 * quantile gives the VM its headroom). Every weight
 * halves each history_halflife_ms, so the VM's recent behaviour counts most.
 * A sample changes nothing it has not seen: the decision at time t depends
 * only on samples up to t (docs/policy.md).
 */
#include <math.h>
#include <string.h>

#include "policy_int.h"

/* Bucket 0 holds rises under 8 MiB; bucket b >= 1 starts at 8 MiB x sqrt(2)^(b-1). */
#define RISE_BASE_SHIFT 23 /* 8 MiB */

static uint64_t bucket_start(unsigned b)
{
        if (b == 0)
                return 0;
        unsigned k = (b - 1) / 2;
        uint64_t base = (1ull << RISE_BASE_SHIFT) << k;
        return (b - 1) % 2 ? (uint64_t)((double)base * M_SQRT2) : base;
}

static unsigned bucket_of(uint64_t rise)
{
        uint64_t x = rise >> RISE_BASE_SHIFT;

        if (x == 0)
                return 0;
        unsigned k = 63 - (unsigned)__builtin_clzll(x);
        unsigned b = 1 + 2 * k + (rise >= bucket_start(2 + 2 * k) ? 1 : 0);
        return b < POLICY_RISE_BUCKETS ? b : POLICY_RISE_BUCKETS - 1;
}

/* 2^(-dt / half-life), computed once for every VM sampled at the same interval. */
static double decay_for(struct policy_decay *cache, uint64_t dt_ms, const struct policy_tunables *t)
{
        if (t->history_halflife_ms == 0)
                return 0.0; /* remember only the latest */
        if (!cache->valid || cache->dt_ms != dt_ms) {
                cache->value = exp2(-(double)dt_ms / (double)t->history_halflife_ms);
                cache->dt_ms = dt_ms;
                cache->valid = true;
        }
        return cache->value;
}

/*
 * The projection over the next interval, signed: the smoothed rate of change
 * times the interval, times how much of it has carried on into the following
 * interval before (persistence, 0..persistence_max_permille). A rise is also
 * carried on for trend_lookahead, whatever its persistence: the time a grow
 * needs to land, during which a rising guest keeps rising.
 */
static double projection(const struct policy_history *h, uint64_t dt_ms,
                         const struct policy_tunables *t)
{
        double beta = h->persist_xx > 0.0 ? h->persist_xy / h->persist_xx : 0.0;
        double cap = (double)t->persistence_max_permille / 1000.0;
        double rate = h->trend_rate;

        beta = beta > cap ? cap : beta > 0.0 ? beta : 0.0;
        double p = beta * rate * (double)dt_ms;
        if (rate > 0.0)
                p += rate * (double)t->trend_lookahead_ms;
        return p;
}

/*
 * Count a surprise with weight 1 after every earlier weight decayed by
 * `decay`. Rather than multiplying every bucket at every sample, the weights
 * are kept in a unit that grows by 1/decay per sample (only their ratios
 * matter) and are scaled back when it grows large.
 */
static void add_surprise(struct policy_history *h, uint64_t surprise, double decay)
{
        unsigned b = bucket_of(surprise);

        if (!(decay > 0.0) || !(h->weight_unit > 0.0f)) {
                memset(h->rise_weight, 0, sizeof(h->rise_weight));
                h->weight_sum = 0.0f;
                h->weight_unit = 1.0f;
                h->top = 0;
        } else {
                h->weight_unit = (float)(h->weight_unit / decay);
        }
        if (h->weight_unit > 1e18f) {
                for (unsigned i = 0; i <= h->top; i++)
                        h->rise_weight[i] /= h->weight_unit;
                h->weight_sum /= h->weight_unit;
                h->weight_unit = 1.0f;
        }
        h->rise_weight[b] += h->weight_unit;
        h->weight_sum += h->weight_unit;
        if (b > h->top)
                h->top = (uint8_t)b;
}

/* Samples closer than this are one sample seen twice (the time of a report jitters). */
#define SAMPLE_GAP_MS 50

uint64_t policy_history_update(struct policy_history *h, uint64_t demand, uint64_t now,
                               struct policy_decay *cache, const struct policy_tunables *t)
{
        if (h->primed && now < h->last_ms + SAMPLE_GAP_MS)
                return h->expected; /* the same sample again */
        uint64_t dt = h->primed ? now - h->last_ms : 0;

        if (h->primed) {
                double decay = decay_for(cache, dt, t);
                double rate = ((double)demand - (double)h->last_demand) / (double)dt;
                uint64_t surprise = demand > h->expected ? demand - h->expected : 0;

                add_surprise(h, surprise, decay);
                /* How well the smoothed rate foretold this one. */
                h->persist_xy = h->persist_xy * decay + rate * h->trend_rate;
                h->persist_xx = h->persist_xx * decay + h->trend_rate * h->trend_rate;
                h->trend_rate = 0.5 * h->trend_rate + 0.5 * rate;
        }
        double p = projection(h, dt, t);
        /* The projection never more than doubles the demand, nor halves it. */
        double lo = -(double)demand / 2.0, hi = (double)demand;
        p = p < lo ? lo : p > hi ? hi : p;
        double expected = (double)demand + p;
        /* 2^64 as a double: anything at or above it saturates. */
        h->expected = expected >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)expected;
        h->last_demand = demand;
        h->last_dt_ms = dt;
        h->last_ms = now;
        h->primed = true;
        return h->expected;
}

/*
 * The rise that `permille` of the unforeseen rises stayed under, in bytes:
 * the histogram read from the top, interpolated inside the bucket. 0 with no
 * history, for a level of 0, or when it falls in the bottom bucket (rises
 * under 8 MiB are below any deadband).
 */
uint64_t policy_history_quantile(const struct policy_history *h, uint32_t permille)
{
        double sum = h->weight_sum, tail = sum * (1000.0 - (double)permille) / 1000.0;
        double above = 0.0;

        if (permille == 0 || !(sum > 0.0))
                return 0;
        for (unsigned b = h->top + 1u; b-- > 1;) {
                double w = h->rise_weight[b];
                if (w > 0.0 && above + w > tail) {
                        double lo = (double)bucket_start(b);
                        double hi = b + 1 < POLICY_RISE_BUCKETS ? (double)bucket_start(b + 1)
                                                                : lo * M_SQRT2;
                        double into = (tail - above) / w; /* 0 at the top of the bucket */
                        return (uint64_t)(hi - (hi - lo) * (into < 0.0 ? 0.0 : into));
                }
                above += w;
        }
        return 0;
}
