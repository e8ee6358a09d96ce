/*
 * load_plan: the load plan of dynmem-load, parsed from a spec such as
 * "ramp:200M:10s,hold:5s,ramp:50M:5s,loop", and the target it gives at any
 * time. Pure code (no I/O, no clock), so host tests can link it alone.
 *
 * Steps, separated by ',':
 *   ramp:SIZE:DURATION  move the held amount linearly to SIZE over DURATION
 *   hold:DURATION       keep the held amount for DURATION
 *   loop                only as the last step: start over from step 1
 * SIZE is a whole number of bytes with an optional suffix K, M, G or T
 * (powers of 1024). DURATION is a whole number with a suffix ms, s, m or h;
 * a bare number is seconds. The plan starts from 0 bytes; without "loop",
 * the last amount is held for ever once the plan is over.
 */
#ifndef DYNMEM_LOAD_PLAN_H
#define DYNMEM_LOAD_PLAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LOAD_PLAN_MAX_STEPS 64
#define LOAD_PLAN_MAX_SIZE  ((uint64_t)1 << 50)                /* 1 PiB */
#define LOAD_PLAN_MAX_MS    ((uint64_t)366 * 24 * 3600 * 1000) /* a year */

enum load_step_kind {
        LOAD_STEP_RAMP,
        LOAD_STEP_HOLD,
};

struct load_step {
        enum load_step_kind kind;
        uint64_t size; /* bytes; RAMP only */
        uint64_t duration_ms;
};

struct load_plan {
        size_t nsteps;
        bool loop;
        struct load_step steps[LOAD_PLAN_MAX_STEPS];
};

/*
 * Parse spec into *ret. Returns 0, or -1 with a one-line message naming the
 * bad step in err (always NUL-terminated when errlen > 0); *ret is written
 * only on success.
 */
int load_plan_parse(const char *spec, struct load_plan *ret, char *err, size_t errlen);

/* Parse a SIZE / a DURATION (whole string). Return 0 or -1; out written on success. */
int load_size_parse(const char *text, uint64_t *ret_bytes);
int load_duration_parse(const char *text, uint64_t *ret_ms);

/* Sum of the step durations (one pass), in ms. */
uint64_t load_plan_period_ms(const struct load_plan *plan);

/* Largest amount the plan ever asks for, in bytes. */
uint64_t load_plan_max_size(const struct load_plan *plan);

/* Amount the plan asks for t_ms after it started, in bytes. */
uint64_t load_plan_target(const struct load_plan *plan, uint64_t t_ms);

/*
 * Find the value of "key=" (e.g. "dynmem.load=") in a kernel command line and
 * copy it to buf; the last occurrence wins, as for kernel parameters.
 * Returns 0, or -1 if absent or longer than buflen - 1.
 */
int load_cmdline_find(const char *cmdline, const char *key, char *buf, size_t buflen);

#endif
