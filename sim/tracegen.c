/*
 * dynmem-tracegen: writes seeded, synthetic demand traces ("seconds,demand"
 * CSV) for the simulator's bundled scenarios. Same arguments, same output.
 *
 * Shapes (docs/simulator.md describes each one):
 *   diurnal  a day's cycle between base and peak (web tier)
 *   batch    idle at base, jobs arriving at random that jump toward peak
 *   leak     grows linearly from base at --rate per hour, restarts at peak
 *   idle     flat at base with small noise and rare blips
 *   warmup   rises from base toward peak as caches warm (1 - e^(-t/tau))
 *   office   business hours: morning ramp, lunch dip, evening fall, nightly job
 * Every shape gets multiplicative AR(1) noise (--noise percent).
 */
#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dynmem-config.h"
#include "trace.h"
#include "units.h"

#define POINTS_MAX 2000000      /* rows: half for the grid, half for the corners of jobs */
#define DEMAND_MAX (16.0 * TIB) /* the most a dynmem-sim trace takes */

struct rng {
        uint64_t s[4];
};

static uint64_t splitmix64(uint64_t *x)
{
        uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
}

static void rng_seed(struct rng *r, uint64_t seed)
{
        for (int i = 0; i < 4; i++)
                r->s[i] = splitmix64(&seed);
}

static uint64_t rotl(uint64_t x, int k)
{
        return (x << k) | (x >> (64 - k));
}

/* xoshiro256** */
static uint64_t rng_next(struct rng *r)
{
        uint64_t *s = r->s, result = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
        s[2] ^= s[0], s[3] ^= s[1], s[1] ^= s[2], s[0] ^= s[3], s[2] ^= t, s[3] = rotl(s[3], 45);
        return result;
}

/* Uniform in [0, 1). */
static double rng_uniform(struct rng *r)
{
        return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

static double rng_normal(struct rng *r)
{
        double u = rng_uniform(r), v = rng_uniform(r);
        return sqrt(-2.0 * log(u + 1e-300)) * cos(2.0 * M_PI * v);
}

static double rng_exponential(struct rng *r, double mean)
{
        return -mean * log(1.0 - rng_uniform(r));
}

struct params {
        const char *shape;
        uint64_t seed;
        double duration_s, interval_s;
        double base, peak;              /* bytes */
        double noise;                   /* fraction */
        double period_s, phase_s;       /* diurnal */
        double every_s, rise_s, hold_s; /* batch */
        double rate;                    /* leak, bytes per hour */
        double tau_s;                   /* warmup */
};

/* A spike of the batch shape: [start, start+rise] up, hold, then down within 10 s. */
struct spike {
        double start, rise, end, level;
};

struct shape_state {
        struct spike *spikes;
        size_t n_spikes;
};

static double day_fraction(double t, double period, double phase)
{
        return 0.5 - 0.5 * cos(2.0 * M_PI * (t - phase) / period);
}

static double smoothstep(double x)
{
        x = x < 0 ? 0 : x > 1 ? 1 : x;
        return x * x * (3 - 2 * x);
}

/* Office hours on a 24 h clock starting at midnight. */
static double office_level(const struct params *p, double t)
{
        double h = fmod(t / 3600.0, 24.0), day;

        day = smoothstep(h - 8.0) * (1.0 - smoothstep(h - 17.0));
        day *= 1.0 - 0.3 * exp(-pow((h - 12.5) / 0.5, 2.0)); /* lunch dip */
        double night = exp(-pow((h - 2.0) / 0.4, 2.0));      /* nightly job */
        double x = fmax(day, 0.8 * night);
        return p->base + (p->peak - p->base) * x;
}

static double level_at(const struct params *p, const struct shape_state *st, double t)
{
        const char *s = p->shape;

        if (strcmp(s, "diurnal") == 0)
                return p->base + (p->peak - p->base) * day_fraction(t, p->period_s, p->phase_s);
        if (strcmp(s, "leak") == 0) {
                double cycle = (p->peak - p->base) / p->rate * 3600.0;
                if (!(cycle > 0)) /* peak = base: nothing to grow into */
                        return p->base;
                return p->base + p->rate * fmod(t, cycle) / 3600.0;
        }
        if (strcmp(s, "warmup") == 0)
                return p->base + (p->peak - p->base) * (1.0 - exp(-t / p->tau_s));
        if (strcmp(s, "office") == 0)
                return office_level(p, t + p->phase_s);
        double level = p->base; /* batch and idle: spikes over a flat base */
        for (size_t i = 0; i < st->n_spikes; i++) {
                const struct spike *k = &st->spikes[i];
                if (t < k->start || t > k->end + 10.0)
                        continue;
                double x = t < k->start + k->rise ? (t - k->start) / k->rise
                           : t <= k->end          ? 1.0
                                                  : 1.0 - (t - k->end) / 10.0;
                double v = p->base + (k->level - p->base) * x;
                if (v > level)
                        level = v;
        }
        return level;
}

static int plan_spikes(const struct params *p, struct rng *r, struct shape_state *st)
{
        bool idle = strcmp(p->shape, "idle") == 0;
        double every = idle ? 6 * 3600.0 : p->every_s;
        double t = rng_exponential(r, every);

        while (t < p->duration_s) {
                if (st->n_spikes >= POINTS_MAX / 8)
                        return -E2BIG; /* their four corners each would not fit */
                size_t n = st->n_spikes;
                if ((n & (n - 1)) == 0) { /* full at 0 and at every power of two */
                        struct spike *grown = realloc(st->spikes, (n ? 2 * n : 1) * sizeof(*grown));
                        if (!grown)
                                return -ENOMEM;
                        st->spikes = grown;
                }
                struct spike *k = &st->spikes[st->n_spikes++];
                k->start = t;
                k->rise = idle ? 5.0 : p->rise_s;
                k->end = t + k->rise + (idle ? 60.0 : p->hold_s * (0.5 + rng_uniform(r)));
                k->level = idle ? p->base * 1.2
                                : p->base + (p->peak - p->base) * (0.6 + 0.4 * rng_uniform(r));
                t = k->end + 10.0 + rng_exponential(r, every);
        }
        return 0;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

/*
 * The grid plus every spike's corners, so sudden changes stay sudden; all in
 * whole seconds, as they are written, so that no two rows share a time.
 */
static size_t sample_times(const struct params *p, const struct shape_state *st, double *times)
{
        size_t n = 0;

        for (double t = 0; t <= p->duration_s && n < POINTS_MAX / 2; t += p->interval_s)
                times[n++] = floor(t);
        for (size_t i = 0; i < st->n_spikes && n + 4 <= POINTS_MAX; i++) {
                const struct spike *k = &st->spikes[i];
                double corners[4] = {k->start, k->start + k->rise, k->end, k->end + 10.0};
                for (int c = 0; c < 4; c++)
                        if (corners[c] <= p->duration_s)
                                times[n++] = floor(corners[c]);
        }
        qsort(times, n, sizeof(*times), cmp_double);
        size_t u = 0;
        for (size_t i = 0; i < n; i++)
                if (u == 0 || times[i] > times[u - 1])
                        times[u++] = times[i];
        return u;
}

static int generate(const struct params *p, FILE *out)
{
        struct shape_state st = {0};
        struct rng r;
        double *times = malloc(POINTS_MAX * sizeof(*times)), noise = 0.0;
        const double phi = 0.9;

        if (!times)
                return -ENOMEM;
        rng_seed(&r, p->seed);
        if (strcmp(p->shape, "batch") == 0 || strcmp(p->shape, "idle") == 0) {
                int rc = plan_spikes(p, &r, &st);
                if (rc < 0) {
                        free(st.spikes);
                        free(times);
                        return rc;
                }
        }
        size_t n = sample_times(p, &st, times);
        fprintf(out, "seconds,demand\n");
        for (size_t i = 0; i < n; i++) {
                noise = phi * noise + p->noise * sqrt(1.0 - phi * phi) * rng_normal(&r);
                double v = level_at(p, &st, times[i]) * (1.0 + noise);
                if (v < 16.0 * MIB)
                        v = 16.0 * MIB;
                if (v > DEMAND_MAX)
                        v = DEMAND_MAX;
                fprintf(out, "%.0f,%.0f\n", times[i], v);
        }
        free(st.spikes);
        free(times);
        /* The last rows may still be buffered: a full disk shows only when they go out. */
        if (fflush(out) != 0)
                return errno ? -errno : -EIO;
        return ferror(out) ? -EIO : 0;
}

static void usage(FILE *out)
{
        fputs("Usage: dynmem-tracegen SHAPE [options] > trace.csv\n"
              "\n"
              "Write a seeded synthetic demand trace (seconds,demand CSV).\n"
              "Shapes: diurnal, batch, leak, idle, warmup, office.\n"
              "\n"
              "  --seed N          random seed (default 1)\n"
              "  --duration D      length (default 24h, at most 8784h)\n"
              "  --interval D      sample spacing (default 60s)\n"
              "  --base SIZE       low level (default 256M)\n"
              "  --peak SIZE       high level (default 1G)\n"
              "  --noise PERCENT   AR(1) noise, % of the level (default 5)\n"
              "  --period D        diurnal: cycle length (default 24h)\n"
              "  --phase D         diurnal, office: shift of the cycle (default 0)\n"
              "  --every D         batch: mean time between jobs (default 2h)\n"
              "  --rise D          batch: time to reach a job's level (default 30s)\n"
              "  --hold D          batch: mean job length (default 20m)\n"
              "  --rate SIZE       leak: growth per hour (default 128M)\n"
              "  --tau D           warmup: time constant (default 30m)\n"
              "  -h, --help        show this help\n"
              "  -V, --version     show the version\n",
              out);
}

/* The options of some shapes alone: given for another, they would change nothing. */
static const struct {
        int key;
        const char *name, *shapes[2];
} shape_options[] = {
    {'P', "period", {"diurnal"}}, {'H', "phase", {"diurnal", "office"}},
    {'e', "every", {"batch"}},    {'r', "rise", {"batch"}},
    {'o', "hold", {"batch"}},     {'R', "rate", {"leak"}},
    {'t', "tau", {"warmup"}},
};
#define N_SHAPE_OPTIONS (sizeof(shape_options) / sizeof(shape_options[0]))

/* An option given that shape does not use: its index in shape_options, else -1. */
static int option_unused(const bool given[N_SHAPE_OPTIONS], const char *shape)
{
        for (size_t i = 0; i < N_SHAPE_OPTIONS; i++) {
                bool used = false;
                for (size_t j = 0; j < 2 && shape_options[i].shapes[j]; j++)
                        used |= strcmp(shape, shape_options[i].shapes[j]) == 0;
                if (given[i] && !used)
                        return (int)i;
        }
        return -1;
}

static int opt_duration(const char *v, double *ret)
{
        uint64_t ms;
        if (duration_parse(v, &ms) < 0)
                return -1;
        *ret = (double)ms / 1000.0;
        return 0;
}

/*
 * A size as the rest of dynmem reads one: a unit, or plain bytes of at least
 * 1 MiB. Returns 0, or -1 with what is wrong (after "--NAME: ") in why.
 */
static int opt_size(const char *v, double *ret, char *why, size_t len)
{
        uint64_t b;
        int r = size_parse(v, &b);

        if (r == -ERANGE) {
                snprintf(why, len, "\"%s\" is too large", v);
                return -1;
        }
        if (r < 0 && size_blank_inside(v, why, len))
                return -1;
        if (r < 0) {
                snprintf(why, len, "\"%s\" is not a size (e.g. 256M)", v);
                return -1;
        }
        if (size_unit_missing(v, b, why, len))
                return -1;
        *ret = (double)b;
        return 0;
}

int main(int argc, char **argv)
{
        static const struct option options[] = {
            {"seed", required_argument, NULL, 's'},     {"duration", required_argument, NULL, 'd'},
            {"interval", required_argument, NULL, 'i'}, {"base", required_argument, NULL, 'b'},
            {"peak", required_argument, NULL, 'p'},     {"noise", required_argument, NULL, 'n'},
            {"period", required_argument, NULL, 'P'},   {"phase", required_argument, NULL, 'H'},
            {"every", required_argument, NULL, 'e'},    {"rise", required_argument, NULL, 'r'},
            {"hold", required_argument, NULL, 'o'},     {"rate", required_argument, NULL, 'R'},
            {"tau", required_argument, NULL, 't'},      {"help", no_argument, NULL, 'h'},
            {"version", no_argument, NULL, 'V'},        {NULL, 0, NULL, 0},
        };
        struct params p = {
            .seed = 1,
            .duration_s = 86400,
            .interval_s = 60,
            .base = 256.0 * MIB,
            .peak = 1024.0 * MIB,
            .noise = 0.05,
            .period_s = 86400,
            .every_s = 7200,
            .rise_s = 30,
            .hold_s = 1200,
            .rate = 128.0 * MIB,
            .tau_s = 1800,
        };
        bool base_given = false, peak_given = false, shape_given[N_SHAPE_OPTIONS] = {false};
        int c, li = 0;

        while ((c = getopt_long(argc, argv, "hV", options, &li)) != -1) {
                const char *kind = NULL; /* what the value should have been */
                char why[200] = "", *end;
                switch (c) {
                case 's': {
                        unsigned long long v;
                        errno = 0;
                        v = strtoull(optarg, &end, 10);
                        if (!isdigit((unsigned char)optarg[0]) || *end || errno == ERANGE)
                                kind = "a whole number";
                        p.seed = v;
                        break;
                }
                case 'n':
                        p.noise = strtod(optarg, &end) / 100.0;
                        if (end == optarg || *end || !isfinite(p.noise))
                                kind = "a percentage";
                        break;
                case 'b':
                case 'p':
                case 'R': {
                        double *v = c == 'b' ? &p.base : c == 'p' ? &p.peak : &p.rate;
                        base_given |= c == 'b';
                        peak_given |= c == 'p';
                        opt_size(optarg, v, why, sizeof(why));
                        break;
                }
                case 'd':
                case 'i':
                case 'P':
                case 'H':
                case 'e':
                case 'r':
                case 'o':
                case 't': {
                        double *v = c == 'd'   ? &p.duration_s
                                    : c == 'i' ? &p.interval_s
                                    : c == 'P' ? &p.period_s
                                    : c == 'H' ? &p.phase_s
                                    : c == 'e' ? &p.every_s
                                    : c == 'r' ? &p.rise_s
                                    : c == 'o' ? &p.hold_s
                                               : &p.tau_s;
                        if (opt_duration(optarg, v) < 0)
                                kind = "a duration (e.g. 30s, 20m, 24h)";
                        break;
                }
                case 'h':
                        usage(stdout);
                        return 0;
                case 'V':
                        printf("dynmem-tracegen %s\n", DYNMEM_VERSION);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
                if (kind)
                        snprintf(why, sizeof(why), "\"%s\" is not %s", optarg, kind);
                if (why[0]) {
                        fprintf(stderr, "dynmem-tracegen: --%s: %s\n", options[li].name, why);
                        return 2;
                }
                for (size_t i = 0; i < N_SHAPE_OPTIONS; i++)
                        shape_given[i] |= shape_options[i].key == c;
        }
        static const char *const shapes[] = {"diurnal", "batch",  "leak",
                                             "idle",    "warmup", "office"};
        bool known = false;
        if (optind == argc - 1)
                for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
                        known |= strcmp(argv[optind], shapes[i]) == 0;
        if (!known) {
                fprintf(stderr, "dynmem-tracegen: expected one shape: diurnal, batch, leak, idle, "
                                "warmup or office\n");
                return 2;
        }
        p.shape = argv[optind];
        int unused = option_unused(shape_given, p.shape);
        if (unused >= 0) { /* the same trace with it or without: a mistake, said */
                const char *const *on = shape_options[unused].shapes;
                fprintf(stderr, "dynmem-tracegen: --%s is for %s%s%s only; %s does not use it\n",
                        shape_options[unused].name, on[0], on[1] ? " and " : "", on[1] ? on[1] : "",
                        p.shape);
                return 2;
        }
        /* idle is flat at --base: a --peak would change nothing, and no default may refuse it. */
        bool flat = strcmp(p.shape, "idle") == 0;
        if (flat && peak_given) {
                fprintf(stderr, "dynmem-tracegen: --peak is not for idle, which stays at --base "
                                "(with small blips over it)\n");
                return 2;
        }
        /* Both sizes, and which is a default: --peak alone may be below the default base. */
        char peak_base[160], a[32], b[32];
        snprintf(peak_base, sizeof(peak_base), "--peak %s%s must be at least --base %s%s",
                 size_format((uint64_t)p.peak, a, sizeof(a)), peak_given ? "" : " (the default)",
                 size_format((uint64_t)p.base, b, sizeof(b)), base_given ? "" : " (the default)");
        const char *wrong = p.interval_s < 1              ? "--interval must be at least 1s"
                            : p.duration_s < p.interval_s ? "--duration must be at least --interval"
                            : p.duration_s > TRACE_MS_MAX / 1000
                                ? "--duration must be at most 8784h (366 days), the longest trace "
                                  "dynmem-sim takes"
                            : p.base > DEMAND_MAX        ? "--base must be at most 16T"
                            : !flat && p.peak < p.base   ? peak_base
                            : p.peak > DEMAND_MAX        ? "--peak must be at most 16T"
                            : p.noise < 0 || p.noise > 1 ? "--noise must be 0..100"
                            : p.rate <= 0                ? "--rate must be positive"
                            : p.period_s <= 0            ? "--period must be positive"
                            : p.every_s <= 0             ? "--every must be positive"
                            : p.rise_s <= 0              ? "--rise must be positive"
                            : p.tau_s <= 0               ? "--tau must be positive"
                                                         : NULL;
        if (wrong) {
                fprintf(stderr, "dynmem-tracegen: %s\n", wrong);
                return 2;
        }
        if (p.duration_s / p.interval_s >= POINTS_MAX / 2) {
                fprintf(stderr, "dynmem-tracegen: more than %d rows: use a longer --interval\n",
                        POINTS_MAX / 2);
                return 2;
        }
        int r = generate(&p, stdout);
        if (r == -E2BIG) {
                fprintf(stderr, "dynmem-tracegen: more than %d jobs: use a longer --every\n",
                        POINTS_MAX / 8);
                return 2;
        }
        if (r < 0) {
                fprintf(stderr, "dynmem-tracegen: %s%s\n",
                        r == -ENOMEM ? "" : "cannot write the trace: ", strerror(-r));
                return 1;
        }
        return 0;
}
