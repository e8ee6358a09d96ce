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
#include <stdlib.h>
#include <string.h>

#include "policy_int.h"

/* Bucket 0 holds rises under 8 MiB; bucket b >= 1 starts at 8 MiB x sqrt(2)^(b-1). */
#define RISE_BASE_SHIFT 23 /* 8 MiB */

#define EVEN(k) ((uint64_t)1 << (RISE_BASE_SHIFT + (k)))
#define ODD(k)  ((uint64_t)((double)EVEN(k) * M_SQRT2))
#define PAIR(k) EVEN(k), ODD(k)
static const uint64_t bucket_starts[] = {
    0,       PAIR(0), PAIR(1), PAIR(2), PAIR(3),  PAIR(4),  PAIR(5),
    PAIR(6), PAIR(7), PAIR(8), PAIR(9), PAIR(10), PAIR(11),
};
/*
 * The covers policy_history_priced() weighs, by bucket b from 1: none for
 * b = 1 (the bottom bucket is no cover), the start of bucket b up to the
 * last, whose end is its start x sqrt(2).
 */
#define DPAIR(k) (double)EVEN(k), (double)ODD(k)
const double policy_history_edges[] = {
    0.0,      0.0,      (double)ODD(0), DPAIR(1),         DPAIR(2),
    DPAIR(3), DPAIR(4), DPAIR(5),       DPAIR(6),         DPAIR(7),
    DPAIR(8), DPAIR(9), DPAIR(10),      (double)EVEN(11), (double)EVEN(11) * M_SQRT2,
};
#undef DPAIR
#undef PAIR
#undef ODD
#undef EVEN
_Static_assert(sizeof(bucket_starts) / sizeof(bucket_starts[0]) >= POLICY_RISE_BUCKETS + 1,
               "every bucket has a start, and the last an end");
_Static_assert(sizeof(policy_history_edges) / sizeof(policy_history_edges[0]) ==
                   POLICY_RISE_BUCKETS + 1,
               "a cover per bucket from 1 (index 0: none), the last at its top");

static uint64_t bucket_start(unsigned b)
{
        return bucket_starts[b];
}

/*
 * Without a branch: half the samples of a steady VM are no rise at all, and
 * which half is anybody's guess.
 */
static unsigned bucket_of(uint64_t rise)
{
        uint64_t x = rise >> RISE_BASE_SHIFT;
        unsigned k = 63 - (unsigned)__builtin_clzll(x | 1); /* 0 for no rise or a small one */
        unsigned last_pair = (POLICY_RISE_BUCKETS - 2) / 2; /* k past it: the last bucket */
        unsigned in = k < last_pair ? k : last_pair;
        unsigned b = 1 + 2 * in + (rise >= bucket_start(2 + 2 * in) ? 1 : 0);

        b = k > last_pair || b > POLICY_RISE_BUCKETS - 1 ? POLICY_RISE_BUCKETS - 1 : b;
        return b & -(unsigned)(x != 0); /* under 8 MiB: bucket 0 */
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
static double projection(struct policy_history *h, uint64_t dt_ms, const struct policy_tunables *t)
{
        double beta = h->persist_xx > 0.0 ? h->persist_xy / h->persist_xx : 0.0;
        double cap = (double)t->persistence_max_permille / 1000.0;
        double rate = h->trend_rate;

        double positive = beta > 0.0 ? beta : 0.0; /* NaN: 0 */

        beta = cap < positive ? cap : positive;
        h->persistence = (float)beta;
        double p = beta * rate * (double)dt_ms;
        /*
         * Only a guest that rose over the last interval is still rising. The
         * sign of a rate is anybody's guess, so the sum is made without a
         * branch: adding a +0 changes at most a -0 into +0, which the caller
         * adds to the demand.
         */
        double ahead = (rate < h->last_rate ? rate : h->last_rate) * (double)t->trend_lookahead_ms;
        uint64_t bits;

        memcpy(&bits, &ahead, sizeof(bits));
        bits &= -(uint64_t)((rate > 0.0) & (h->last_rate > 0.0));
        memcpy(&ahead, &bits, sizeof(bits));
        return p + ahead;
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
                h->last_rate = rate;
        }
        double p = projection(h, dt, t);
        /* The projection never more than doubles the demand, nor halves it. */
        double lo = -(double)demand / 2.0, hi = (double)demand;
        p = p < lo ? lo : p > hi ? hi : p;
        double expected = (double)demand + p;
        /* 2^64 as a double: anything at or above it saturates. */
        h->expected = expected >= 18446744073709551616.0 ? UINT64_MAX : (uint64_t)expected;
        h->last_demand = demand;
        if (h->primed) /* a first sample keeps the interval a restored history knows */
                h->last_dt_ms = dt;
        h->last_ms = now;
        h->primed = true;
        return h->expected;
}

/*
 * The rise that `permille` of the unforeseen rises stayed under, counted per
 * headroom_period_ms of time rather than per decision, in bytes: a VM
 * decided on every second misses its cover no more often than one decided
 * on every 30 s (the share of decisions left out is scaled by the VM's
 * interval over the period). The histogram is read from the top,
 * interpolated inside the bucket. 0 with no history, for a level of 0, or
 * when it falls in the bottom bucket (rises under 8 MiB are below any
 * deadband).
 */
/*
 * What a decision's share of rises counts for per period_ms of time: the
 * VM's interval over the period (1 when the interval is as long, or no
 * period or interval is known).
 */
static double period_share(const struct policy_history *h, uint64_t period_ms)
{
        if (period_ms && h->last_dt_ms && h->last_dt_ms < period_ms)
                return (double)h->last_dt_ms / (double)period_ms;
        return 1.0;
}

uint64_t policy_history_quantile(const struct policy_history *h, uint32_t permille,
                                 uint64_t period_ms)
{
        if (permille == 0)
                return 0;
        return policy_history_tail(h, (1000.0 - (double)permille) / 1000.0, period_ms);
}

uint64_t policy_history_tail(const struct policy_history *h, double miss, uint64_t period_ms)
{
        double sum = h->weight_sum, share = miss;
        double above = 0.0;

        if (!(sum > 0.0) || !(share < 1.0))
                return 0;
        share *= period_share(h, period_ms);
        double tail = sum * share;
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

/*
 * The share of rises a cover misses per period, per unit of weight, and the
 * cover when it covers everything (the top of the highest bucket): what
 * policy_history_priced_edge() and policy_history_priced_window() start
 * from. False with no history.
 */
static bool priced_start(const struct policy_history *h, uint64_t period_ms, double *unit,
                         double *top_bytes)
{
        double sum = h->weight_sum;

        if (!(sum > 0.0))
                return false;
        *unit = 1.0 / sum;
        *unit *= period_share(h, period_ms);
        unsigned top = h->top;
        *top_bytes = top + 1 < POLICY_RISE_BUCKETS ? (double)bucket_start(top + 1)
                                                   : (double)bucket_start(top) * M_SQRT2;
        return true;
}

/* What a cover costs: the share it misses plus the price of its bytes. */
static inline double cost_of(double missed, double price, double bytes)
{
        return missed + price * bytes;
}

/*
 * What a cover at edges[b] is charged for, while the buckets are read from
 * the top down: `missed`, the share of rises past it, plus kill->weight x
 * the share past it and kill->room (an OOM kill; kill NULL or weight 0:
 * none). suffix[i] holds the weight of the rises in buckets i and up for
 * every i >= b already read (suffix[top + 1] = 0), and *j the bucket the
 * previous, higher cover's kill line fell in (top + 1 at first: the lines
 * only fall). Inside a bucket the rises are taken as spread evenly.
 * kill_lines_work_out() finds the same buckets and parts for every edge at
 * once.
 */
/* The charge of a cover at edges[b] whose kill line falls in bucket j (top + 1: none). */
static inline double charged_in(const struct policy_history *h, const struct policy_kill *kill,
                                const double *suffix, unsigned b, unsigned j, double missed,
                                double unit)
{
        const double *x = policy_history_edges;

        if (j > h->top)
                return missed;
        double line = x[b] + kill->room;
        double part = (x[j + 1] - line) / (x[j + 1] - x[j]);
        return missed + kill->weight * (suffix[j + 1] + h->rise_weight[j] * part) * unit;
}

static double charged_share(const struct policy_history *h, const struct policy_kill *kill,
                            const double *suffix, unsigned b, unsigned *j, double missed,
                            double unit)
{
        const double *x = policy_history_edges;

        if (!kill || !(kill->weight > 0.0))
                return missed;
        double line = x[b] + kill->room;
        while (*j > b && x[*j] > line)
                (*j)--;
        return charged_in(h, kill, suffix, b, *j, missed, unit);
}

/*
 * The buckets are read from the top down, each lower edge a cover that
 * misses the rises above it; the search stops once the share missed alone
 * (with its kills, counted kill->weight times more)
 * costs as much as the best cover found: every lower edge misses at least
 * as much, and rounding keeps that order, so none can cost less. Of two
 * edges that cost the same the higher is kept.
 */
double policy_history_priced_edge(const struct policy_history *h, double price, uint64_t period_ms,
                                  const struct policy_kill *kill)
{
        double unit, best, above = 0.0, suffix[POLICY_RISE_BUCKETS + 1];
        unsigned j = h->top + 1u;

        if (!priced_start(h, period_ms, &unit, &best))
                return 0.0;
        suffix[h->top + 1] = 0.0;
        double best_cost = cost_of(0.0, price, best);
        for (unsigned b = h->top + 1u; b-- > 1;) {
                above += h->rise_weight[b];
                suffix[b] = above;
                double missed = above * unit, lower = policy_history_edges[b];
                double charged = charged_share(h, kill, suffix, b, &j, missed, unit);
                double cost = cost_of(charged, price, lower);
                if (cost < best_cost) {
                        best_cost = cost;
                        best = lower;
                }
                if (charged >= best_cost)
                        break;
        }
        return best;
}

uint64_t policy_history_priced(const struct policy_history *h, double price, uint64_t period_ms,
                               const struct policy_kill *kill)
{
        return (uint64_t)policy_history_priced_edge(h, price, period_ms, kill);
}

/* The first of `count` ascending prices above `slope` (count when none is), without branches. */
static int first_above(const double *prices, int count, double slope)
{
        int at = 0, step = 1;

        while (step * 2 <= count)
                step *= 2;
        for (; step > 0; step /= 2) {
                int probe = at + step;
                at = probe <= count && prices[probe - 1] <= slope ? probe : at;
        }
        return at;
}

/*
 * Between the edges the window's two ends choose (buckets lo < hi, their
 * shares missed in missed[]), the cover steps down where the lower hull of
 * the points (cover, share missed) falls less steeply than the price: the
 * hull's vertices become the pieces, highest cover first, each from the
 * first price above the slope of the segment that leads to it.
 */
static int priced_steps(const double *missed, unsigned lo, unsigned hi, const double *prices,
                        int count, uint8_t *buckets, int *from)
{
        const double *x = policy_history_edges;
        unsigned v[POLICY_RISE_BUCKETS + 1];
        int m = 0;

        for (unsigned b = lo; b <= hi; b++) {
                /* The lower hull: drop points on or above the line from the one before to this one.
                 */
                while (m >= 2 && (missed[v[m - 1]] - missed[v[m - 2]]) * (x[b] - x[v[m - 2]]) >=
                                     (missed[b] - missed[v[m - 2]]) * (x[v[m - 1]] - x[v[m - 2]]))
                        m--;
                v[m++] = b;
        }
        /* From the largest cover (the lowest price, index 0) down to the smallest (the last). */
        int pieces = 0, start = 0;
        for (int k = m - 1; k >= 1; k--) {
                double slope = (missed[v[k - 1]] - missed[v[k]]) / (x[v[k]] - x[v[k - 1]]);
                int until = first_above(prices, count, slope);
                /* The two ends are the priced edges whatever the rounding of a slope. */
                until = until < start ? start : until;
                until = until < 1 ? 1 : until > count - 1 ? count - 1 : until;
                if (until > start) {
                        buckets[pieces] = (uint8_t)v[k];
                        from[pieces++] = start;
                        start = until;
                }
        }
        buckets[pieces] = (uint8_t)v[0];
        from[pieces++] = start;
        return pieces;
}

/*
 * Which bucket every edge's kill line falls in for a room, as
 * charged_share() finds it (the same walk from the top edge down): a line at
 * or above the top edge is in bucket POLICY_RISE_BUCKETS, past every
 * history's top.
 */
static void kill_lines_work_out(struct policy_kill_lines *lines, double room)
{
        const double *x = policy_history_edges;
        unsigned j = POLICY_RISE_BUCKETS;

        lines->bucket[0] = POLICY_RISE_BUCKETS; /* worked out */
        for (unsigned b = POLICY_RISE_BUCKETS; b-- > 1;) {
                double line = x[b] + room;
                while (j > b && x[j] > line)
                        j--;
                lines->bucket[b] = (uint8_t)j;
        }
        lines->room = room;
}

/* Both ends of the price window while the buckets are read: the best edge and its cost at each. */
struct window_ends {
        double p_lo, p_hi;
        double cost_lo, cost_hi;
        unsigned lo_b, hi_b;
};

/*
 * Weighs the cover at edge b, charged `charged`, at both ends; true once the
 * search is over for both: once the share alone costs as much as the higher
 * price's best. At every edge the higher price costs at least as much as the
 * lower (its product with the same bytes rounds no lower), so its best is
 * never below the lower's, and one test does for both (one branch fewer to
 * foretell per bucket).
 */
static inline bool window_weigh(struct window_ends *e, unsigned b, double charged)
{
        double lower = policy_history_edges[b];
        double c_lo = cost_of(charged, e->p_lo, lower), c_hi = cost_of(charged, e->p_hi, lower);

        e->lo_b = c_lo < e->cost_lo ? b : e->lo_b;
        e->cost_lo = c_lo < e->cost_lo ? c_lo : e->cost_lo;
        e->hi_b = c_hi < e->cost_hi ? b : e->hi_b;
        e->cost_hi = c_hi < e->cost_hi ? c_hi : e->cost_hi;
        return charged >= e->cost_hi;
}

int policy_history_priced_window(const struct policy_history *h, const double *prices, int count,
                                 uint64_t period_ms, const struct policy_kill *kill,
                                 struct policy_kill_lines *lines, uint8_t *buckets, int *from)
{
        double unit, top_bytes, above = 0.0, missed_at[POLICY_RISE_BUCKETS + 1];
        double suffix[POLICY_RISE_BUCKETS + 1];

        from[0] = 0;
        buckets[0] = 0; /* no cover */
        if (!priced_start(h, period_ms, &unit, &top_bytes) || h->top == 0)
                return 1; /* no history, or every rise in the bottom bucket: no cover */
        unsigned top = h->top, lo_b = top + 1, hi_b = top + 1;
        double p_lo = prices[0], p_hi = prices[count - 1];
        double cost_lo = cost_of(0.0, p_lo, top_bytes), cost_hi = cost_of(0.0, p_hi, top_bytes);
        bool kills = kill && kill->weight > 0.0;

        /* The lines kept hold for the same room, to the bit (a NaN room matches none). */
        if (kills && !(lines->bucket[0] == POLICY_RISE_BUCKETS && lines->room == kill->room))
                kill_lines_work_out(lines, kill->room);
        missed_at[top + 1] = 0.0;
        suffix[top + 1] = 0.0;
        /*
         * policy_history_priced_edge() at both ends at once: past the point
         * where one end's search would stop no edge costs it less, so reading
         * on for the other changes nothing. The top edge is
         * policy_history_edges[top + 1].
         */
        struct window_ends e = {p_lo, p_hi, cost_lo, cost_hi, lo_b, hi_b};
        const float *w = h->rise_weight;
        unsigned b = top;
        /*
         * First the edges whose kill line lies past the top bucket: their
         * misses are charged as they are. The lines only fall as the edges
         * do, so once one lies inside the history every lower one does.
         */
        for (; b >= 1 && !(kills && lines->bucket[b] <= top); b--) {
                above += w[b];
                suffix[b] = above;
                double charged = above * unit;
                missed_at[b] = charged;
                if (window_weigh(&e, b, charged))
                        goto found;
        }
        /*
         * Then the edges whose kill line falls in bucket j <= top: the
         * misses plus kill->weight x the kills among them, as charged_in()
         * counts them (in the bucket its walk would find, kept from before).
         */
        const double *x = policy_history_edges;
        double room = kills ? kill->room : 0.0, weight = kills ? kill->weight : 0.0;
        for (; b >= 1; b--) {
                above += w[b];
                suffix[b] = above;
                unsigned j = lines->bucket[b];
                double line = x[b] + room;
                double part = (x[j + 1] - line) / (x[j + 1] - x[j]);
                double charged = above * unit + weight * (suffix[j + 1] + w[j] * part) * unit;
                missed_at[b] = charged;
                if (window_weigh(&e, b, charged))
                        break;
        }
found:
        lo_b = e.lo_b;
        hi_b = e.hi_b;
        if (lo_b == hi_b || count < 2) {
                buckets[0] = (uint8_t)lo_b;
                return 1;
        }
        /* A higher price never buys more cover: hi_b < lo_b. */
        return priced_steps(missed_at, hi_b, lo_b, prices, count, buckets, from);
}
