/*
 * histogram: fixed buckets for the daemon's cycle timing. See histogram.h.
 */
#include "histogram.h"

#include <math.h>

static unsigned bucket_of(double ms)
{
        if (!(ms > 0.0))
                return 0;
        if (ms < 100.0)
                return (unsigned)(ms * 10.0);
        if (ms < HISTOGRAM_LIMIT_MS)
                return HISTOGRAM_FINE_N + (unsigned)((ms - 100.0) / 10.0);
        return HISTOGRAM_BUCKETS - 1;
}

void histogram_add(struct histogram *h, double ms)
{
        if (!(ms > 0.0))
                ms = 0.0;
        h->buckets[bucket_of(ms)]++;
        h->count++;
        if (ms > h->max_ms)
                h->max_ms = ms;
}

double histogram_bucket_upper(const struct histogram *h, unsigned i)
{
        if (i < HISTOGRAM_FINE_N)
                return (double)(i + 1) / 10.0;
        if (i < HISTOGRAM_BUCKETS - 1)
                return 100.0 + (double)(i - HISTOGRAM_FINE_N + 1) * 10.0;
        return h->max_ms;
}

double histogram_percentile(const struct histogram *h, double p)
{
        uint64_t rank, seen = 0;

        if (h->count == 0)
                return 0.0;
        rank = (uint64_t)ceil(p * (double)h->count);
        if (rank < 1)
                rank = 1;
        for (unsigned i = 0; i < HISTOGRAM_BUCKETS; i++) {
                seen += h->buckets[i];
                if (seen >= rank) {
                        double upper = histogram_bucket_upper(h, i);
                        return upper < h->max_ms ? upper : h->max_ms;
                }
        }
        return h->max_ms;
}

json_t *histogram_json(const struct histogram *h)
{
        json_t *arr = json_array();

        for (unsigned i = 0; arr && i < HISTOGRAM_BUCKETS; i++) {
                if (h->buckets[i] == 0)
                        continue;
                double upper = round(histogram_bucket_upper(h, i) * 1000.0) / 1000.0;
                if (json_array_append_new(
                        arr, json_pack("[f, I]", upper, (json_int_t)h->buckets[i])) < 0) {
                        json_decref(arr);
                        return NULL;
                }
        }
        return arr;
}
