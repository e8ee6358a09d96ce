/*
 * histogram: a fixed-size histogram of durations in milliseconds, for the
 * daemon's own timing (how late each balancing cycle starts, how long it
 * takes). Buckets are 0.1 ms wide up to 100 ms and 10 ms wide up to 10 s;
 * longer values land in one overflow bucket. Adding is O(1) and never
 * allocates.
 */
#ifndef DYNMEM_HISTOGRAM_H
#define DYNMEM_HISTOGRAM_H

#include <jansson.h>
#include <stdint.h>

#define HISTOGRAM_FINE_N   1000 /* 0.1 ms buckets: 0 .. 100 ms */
#define HISTOGRAM_COARSE_N 990  /* 10 ms buckets: 100 ms .. 10 s */
#define HISTOGRAM_BUCKETS  (HISTOGRAM_FINE_N + HISTOGRAM_COARSE_N + 1)
#define HISTOGRAM_LIMIT_MS 10000.0

struct histogram {
        uint64_t count;
        double max_ms;
        uint64_t buckets[HISTOGRAM_BUCKETS];
};

/* Count one value (negative values count as 0). */
void histogram_add(struct histogram *h, double ms);

/*
 * The p-quantile (0 < p <= 1) as the upper bound of the bucket it falls in,
 * never above the largest value seen; 0 when empty.
 */
double histogram_percentile(const struct histogram *h, double p);

/* Upper bound of bucket i in ms (the overflow bucket: the largest value seen). */
double histogram_bucket_upper(const struct histogram *h, unsigned i);

/* The non-empty buckets as [[upper_ms, count], ...]. */
json_t *histogram_json(const struct histogram *h);

#endif
