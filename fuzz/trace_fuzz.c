/*
 * trace_fuzz: libFuzzer target for the "seconds,demand" trace reader
 * (lib/trace.c). The input is a whole file. After a successful load it checks
 * that rows are strictly increasing in time and bounded in demand, and that
 * interpolation at many times (forward, backward, before, between, after)
 * always lies between the smallest and largest demand of the trace.
 *
 * Build and run: fuzz/run.sh trace SECONDS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "trace.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond))                                                                       \
                        abort();                                                                   \
        } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *text = malloc(size + 1);
        struct trace t;
        struct config_diag diag = {0};

        if (!text)
                return 0;
        memcpy(text, data, size);
        text[size] = '\0';
        if (trace_load_string("fuzz.csv", text, &t, &diag) == 0) {
                uint64_t lo = UINT64_MAX, hi = 0, end = trace_end_ms(&t);
                CHECK(t.n > 0);
                for (size_t i = 0; i < t.n; i++) {
                        CHECK(i == 0 || t.t_ms[i] > t.t_ms[i - 1]);
                        CHECK(t.demand[i] <= TRACE_DEMAND_MAX);
                        lo = t.demand[i] < lo ? t.demand[i] : lo;
                        hi = t.demand[i] > hi ? t.demand[i] : hi;
                }
                size_t cursor = 0;
                uint64_t step = end / 64 + 1;
                for (uint64_t ms = 0; ms <= end + step; ms += step) {
                        uint64_t d = trace_demand_at(&t, ms, &cursor);
                        CHECK(d >= lo && d <= hi);
                }
                for (uint64_t k = 0; k < 64; k++) { /* backward */
                        uint64_t d = trace_demand_at(&t, end - (end / 64) * k, &cursor);
                        CHECK(d >= lo && d <= hi);
                }
                trace_free(&t);
        } else {
                CHECK(diag.count > 0);
        }
        config_diag_free(&diag);
        free(text);
        return 0;
}
