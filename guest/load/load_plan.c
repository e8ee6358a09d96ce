/*
 * load_plan: parser of dynmem-load's spec and the target amount over time.
 * See load_plan.h for the syntax. No I/O, no clock, no allocation.
 */
#include "load_plan.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define STEP_TEXT_MAX 128
#define SIZE_HINT     "bytes or a number with K, M, G or T, at most 1024T"
#define DURATION_HINT "a number with ms, s, m or h, at most a year"

/* Parse leading decimal digits of *s into *ret (no sign, no overflow). */
static int parse_digits(const char **s, uint64_t *ret)
{
        uint64_t v = 0;
        const char *p = *s;

        if (*p < '0' || *p > '9')
                return -1;
        for (; *p >= '0' && *p <= '9'; p++) {
                if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
                        return -1;
                v = v * 10 + (uint64_t)(*p - '0');
        }
        *s = p;
        *ret = v;
        return 0;
}

/* Multiply with a limit; -1 if v * mult > max. */
static int scale(uint64_t v, uint64_t mult, uint64_t max, uint64_t *ret)
{
        if (v > max / mult)
                return -1;
        *ret = v * mult;
        return 0;
}

int load_size_parse(const char *text, uint64_t *ret_bytes)
{
        static const char suffixes[] = "KMGT";
        uint64_t v, mult = 1;
        const char *p = text, *s;

        if (parse_digits(&p, &v) < 0)
                return -1;
        if (*p != '\0') {
                s = strchr(suffixes, *p);
                if (s == NULL || p[1] != '\0')
                        return -1;
                mult = (uint64_t)1 << (10 * (s - suffixes + 1));
        }
        return scale(v, mult, LOAD_PLAN_MAX_SIZE, ret_bytes);
}

int load_duration_parse(const char *text, uint64_t *ret_ms)
{
        uint64_t v, mult;
        const char *p = text;

        if (parse_digits(&p, &v) < 0)
                return -1;
        if (strcmp(p, "") == 0 || strcmp(p, "s") == 0)
                mult = 1000;
        else if (strcmp(p, "ms") == 0)
                mult = 1;
        else if (strcmp(p, "m") == 0)
                mult = 60 * 1000;
        else if (strcmp(p, "h") == 0)
                mult = 3600 * 1000;
        else
                return -1;
        return scale(v, mult, LOAD_PLAN_MAX_MS, ret_ms);
}

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        if (errlen == 0)
                return;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
}

/* Split "a:b:c" in place into at most max fields; returns the field count. */
static size_t split_fields(char *text, char **fields, size_t max)
{
        size_t n = 0;
        char *p = text;

        for (;;) {
                char *colon = strchr(p, ':');

                if (n == max)
                        return max + 1;
                fields[n++] = p;
                if (colon == NULL)
                        return n;
                *colon = '\0';
                p = colon + 1;
        }
}

/* Parse one step text into *st; on error write the reason to why. */
static int parse_step(char *text, struct load_step *st, char *why, size_t whylen)
{
        char *f[3];
        size_t n = split_fields(text, f, 3);

        if (n == 3 && strcmp(f[0], "ramp") == 0) {
                st->kind = LOAD_STEP_RAMP;
                if (load_size_parse(f[1], &st->size) < 0) {
                        seterr(why, whylen, "bad size \"%s\" (want %s)", f[1], SIZE_HINT);
                        return -1;
                }
                text = f[2];
        } else if (n == 2 && strcmp(f[0], "hold") == 0) {
                st->kind = LOAD_STEP_HOLD;
                st->size = 0;
                text = f[1];
        } else {
                seterr(why, whylen, "not ramp:SIZE:DURATION, hold:DURATION or a final loop");
                return -1;
        }
        if (load_duration_parse(text, &st->duration_ms) < 0) {
                seterr(why, whylen, "bad duration \"%s\" (want %s)", text, DURATION_HINT);
                return -1;
        }
        return 0;
}

/* Parse the step at spec[0..len) as step number idx (from 0) into plan. */
static int parse_one(const char *spec, size_t len, size_t idx, bool last, struct load_plan *plan,
                     char *err, size_t errlen)
{
        char text[STEP_TEXT_MAX], orig[STEP_TEXT_MAX], why[160];

        if (len >= sizeof(text)) {
                seterr(err, errlen, "step %zu is too long (%zu characters)", idx + 1, len);
                return -1;
        }
        memcpy(text, spec, len);
        text[len] = '\0';
        memcpy(orig, text, len + 1);
        if (strcmp(text, "loop") == 0) {
                if (last && idx > 0) {
                        plan->loop = true;
                        return 0;
                }
                seterr(err, errlen, "step %zu \"loop\": %s", idx + 1,
                       idx == 0 ? "nothing to loop over" : "loop must be the last step");
                return -1;
        }
        if (plan->nsteps == LOAD_PLAN_MAX_STEPS) {
                seterr(err, errlen, "step %zu: too many steps (at most %d)", idx + 1,
                       LOAD_PLAN_MAX_STEPS);
                return -1;
        }
        if (parse_step(text, &plan->steps[plan->nsteps], why, sizeof(why)) < 0) {
                seterr(err, errlen, "step %zu \"%s\": %s", idx + 1, orig, why);
                return -1;
        }
        plan->nsteps++;
        return 0;
}

int load_plan_parse(const char *spec, struct load_plan *ret, char *err, size_t errlen)
{
        struct load_plan plan = {0};
        const char *p = spec;
        size_t idx = 0;

        seterr(err, errlen, "%s", "");
        if (spec == NULL || *spec == '\0') {
                seterr(err, errlen, "empty load spec");
                return -1;
        }
        for (;; idx++) {
                const char *comma = strchr(p, ',');
                size_t len = comma ? (size_t)(comma - p) : strlen(p);

                if (parse_one(p, len, idx, comma == NULL, &plan, err, errlen) < 0)
                        return -1;
                if (comma == NULL)
                        break;
                p = comma + 1;
        }
        if (plan.loop && load_plan_period_ms(&plan) == 0) {
                seterr(err, errlen, "step %zu \"loop\": the steps before it last 0 ms", idx + 1);
                return -1;
        }
        *ret = plan;
        return 0;
}

uint64_t load_plan_period_ms(const struct load_plan *plan)
{
        uint64_t sum = 0;

        for (size_t i = 0; i < plan->nsteps; i++)
                sum += plan->steps[i].duration_ms; /* <= 64 years, no overflow */
        return sum;
}

uint64_t load_plan_max_size(const struct load_plan *plan)
{
        uint64_t max = 0;

        for (size_t i = 0; i < plan->nsteps; i++)
                if (plan->steps[i].kind == LOAD_STEP_RAMP && plan->steps[i].size > max)
                        max = plan->steps[i].size;
        return max;
}

/* Amount at the end of the plan (the last ramp's size, or 0). */
static uint64_t final_size(const struct load_plan *plan)
{
        for (size_t i = plan->nsteps; i > 0; i--)
                if (plan->steps[i - 1].kind == LOAD_STEP_RAMP)
                        return plan->steps[i - 1].size;
        return 0;
}

/* Linear interpolation from a to b at t out of d (t < d), without overflow. */
static uint64_t lerp(uint64_t a, uint64_t b, uint64_t t, uint64_t d)
{
        long double f = (long double)t / (long double)d;

        if (b >= a)
                return a + (uint64_t)((long double)(b - a) * f);
        return a - (uint64_t)((long double)(a - b) * f);
}

uint64_t load_plan_target(const struct load_plan *plan, uint64_t t_ms)
{
        uint64_t period = load_plan_period_ms(plan), cur = 0;

        if (plan->loop && period > 0) {
                cur = t_ms >= period ? final_size(plan) : 0;
                t_ms %= period;
        }
        for (size_t i = 0; i < plan->nsteps; i++) {
                const struct load_step *st = &plan->steps[i];

                if (t_ms < st->duration_ms)
                        return st->kind == LOAD_STEP_RAMP
                                   ? lerp(cur, st->size, t_ms, st->duration_ms)
                                   : cur;
                t_ms -= st->duration_ms;
                if (st->kind == LOAD_STEP_RAMP)
                        cur = st->size;
        }
        return cur;
}

int load_cmdline_find(const char *cmdline, const char *key, char *buf, size_t buflen)
{
        size_t klen = strlen(key);
        const char *p = cmdline;
        int found = -1;

        /* Like the kernel's own parameters, the last occurrence wins. */
        while (*p != '\0') {
                size_t len;

                p += strspn(p, " \t\n");
                len = strcspn(p, " \t\n");
                if (len >= klen && strncmp(p, key, klen) == 0) {
                        if (len - klen >= buflen)
                                return -1;
                        memcpy(buf, p + klen, len - klen);
                        buf[len - klen] = '\0';
                        found = 0;
                }
                p += len;
        }
        return found;
}
