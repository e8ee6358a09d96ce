/*
 * mono: the one clock dynmem's programs measure time with, CLOCK_MONOTONIC
 * in milliseconds (the project's time unit). Intervals, timeouts, rate
 * limits and ages are taken from it; wall-clock time is used only where a
 * date is shown (events, counters). libc only: the static guest agent and
 * load generator compile this file too.
 */
#ifndef DYNMEM_MONO_H
#define DYNMEM_MONO_H

#include <stdint.h>
#include <sys/time.h>

/* Milliseconds since an arbitrary point (boot), whole. */
uint64_t mono_ms(void);

/* The same with the fraction of a millisecond (latencies, lateness). */
double mono_ms_exact(void);

/* A delay of ms milliseconds, as libevent's timers take it. */
struct timeval mono_timeval(uint64_t ms);

#endif
