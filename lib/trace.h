/*
 * trace: a recorded demand curve, CSV with the header "seconds,demand"
 * (seconds from the VM's start, whole or decimal; demand in bytes, or a
 * size with K, M, G or T). Seconds must increase strictly and stay within
 * 366 days (TRACE_MS_MAX, also the longest [sim] duration). Demand between
 * two rows is interpolated linearly; before the first row it is the first
 * value, after the last row the last value.
 */
#ifndef DYNMEM_TRACE_H
#define DYNMEM_TRACE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define TRACE_ROWS_MAX   (10u * 1000 * 1000)
#define TRACE_DEMAND_MAX (16 * TIB)
#define TRACE_MS_MAX     (366ull * 86400 * 1000)

struct trace {
        char *path;
        size_t n;
        uint64_t *t_ms;
        uint64_t *demand;
};

/* Read a trace; problems go to diag as FILE:LINE. Returns 0 or a negative errno. */
int trace_load(const char *path, struct trace *ret, struct config_diag *diag);
int trace_load_string(const char *name, const char *text, struct trace *ret,
                      struct config_diag *diag);
void trace_free(struct trace *t);

/*
 * Demand at t_ms. *cursor (start at 0) remembers the segment so that
 * increasing times cost O(1); any time is accepted.
 */
uint64_t trace_demand_at(const struct trace *t, uint64_t t_ms, size_t *cursor);

/* Time of the last row. */
uint64_t trace_end_ms(const struct trace *t);

/*
 * The narrowest peak: a row, or a run of rows of one demand, above the rows
 * on either side, which the demand exceeds only between those two rows
 * (*from_ms, *to_ms). Returns its width, to - from; 0 for none. The first
 * and last levels hold before and after the trace, so they make no peak;
 * nor do the corners of a step or a job (rows 1 ms or 1 s apart) alone.
 */
uint64_t trace_narrowest_peak_ms(const struct trace *t, uint64_t *from_ms, uint64_t *to_ms);

#endif
