/*
 * dynmem-load: the load generator of dynmem's test guests.
 *
 * It follows a plan (see load_plan.h), holding a changing amount of anonymous
 * memory in 2 MiB mmap chunks: it maps chunks while the target goes up and
 * unmaps them while it goes down, giving the memory back to the guest. Every
 * page held is written at least every TOUCH_PERIOD_MS, a slice of the chunks
 * each tick, so the pages stay resident and the working set is real. Once a
 * second, also while it maps new chunks, it logs "dynmem-load: holding N MiB
 * (target M MiB), touched T KiB in B us, mapped X KiB" to stdout (the console of
 * the test image): T is how much of the memory it held it rewrote since the last
 * such line, X how much it newly mapped and wrote, B how long it was busy doing
 * both (not the sleeps between). Its progress (bench/qemu measures "back at
 * full speed" by it) falls while its pages must be swapped in or others
 * reclaimed first. With --fill PERCENT (or
 * dynmem.load.fill= on the kernel command line) each new page gets that share of pseudo-random
 * bytes, the rest zeros, so that it compresses like real data (50: about 2:1 with lzo) rather than
 * to almost nothing. A failed mmap is logged and retried a second later. Only libc; built static
 * for the guest image.
 */
#define _GNU_SOURCE
#include "load_plan.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "mono.h"

#define MIB             ((uint64_t)1 << 20)
#define CHUNK           (2 * MIB)
#define TICK_MS         100
#define TOUCH_PERIOD_MS 2000
#define LOG_PERIOD_MS   1000
#define CMDLINE_KEY     "dynmem.load="
#define CMDLINE_FILL    "dynmem.load.fill="
#define SPEC_MAX        4096

struct holder {
        void **chunks; /* chunks[0..n) are mapped */
        size_t n, cap;
        size_t cursor;     /* next chunk to touch */
        size_t page;       /* page size */
        unsigned char gen; /* value written, changes each touch pass */
        size_t fill;       /* pseudo-random bytes at the start of each new page */
        uint64_t rng;      /* xorshift64 state */
        uint64_t retry_ms; /* after a failed mmap, no new one before this time */
        uint64_t touched;  /* bytes of held pages rewritten since the last log line */
        uint64_t mapped;   /* bytes of new chunks mapped and written since then */
        uint64_t start_ms, next_log_ms, target;
        uint64_t busy_us, busy_since_us; /* busy since the last log line; this span's start */
};

static uint64_t mono_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void usage(FILE *f)
{
        fprintf(f, "usage: dynmem-load [--dry-run] STEP[,STEP...]\n"
                   "       dynmem-load [--dry-run] --cmdline\n"
                   "Hold and keep writing a changing amount of anonymous memory.\n"
                   "  ramp:SIZE:DURATION  move the held amount linearly to SIZE over DURATION\n"
                   "  hold:DURATION       keep the held amount for DURATION\n"
                   "  loop                last step only: start over\n"
                   "SIZE: bytes, or a number with K, M, G or T (powers of 1024).\n"
                   "DURATION: a number with ms, s, m or h (bare number: seconds).\n"
                   "Without loop the final amount is held until killed.\n"
                   "  --cmdline  read the spec from " CMDLINE_KEY " in /proc/cmdline\n"
                   "  --dry-run  print the parsed plan and its targets, then exit\n"
                   "  --fill PERCENT  fill that share of each new page with pseudo-random\n"
                   "             bytes, the rest zeros (default 0: one byte a page; with\n"
                   "             --cmdline also " CMDLINE_FILL "PERCENT)\n"
                   "Example: dynmem-load ramp:200M:10s,hold:5s,ramp:50M:5s,loop\n"
                   "Exit status: 2 on a bad spec or usage.\n");
}

static void sleep_until_ms(uint64_t ms)
{
        struct timespec ts = {.tv_sec = (time_t)(ms / 1000),
                              .tv_nsec = (long)(ms % 1000) * 1000000};

        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
                ;
}

/* Write one byte in each page of a chunk, making it resident and dirty. */
static void touch_chunk(struct holder *h, void *chunk)
{
        volatile unsigned char *p = chunk;

        for (size_t off = 0; off < CHUNK; off += h->page)
                p[off] = h->gen;
}

/* Fill the first h->fill bytes of each page of a new chunk with pseudo-random bytes. */
static void fill_chunk(struct holder *h, void *chunk)
{
        unsigned char *p = chunk;

        for (size_t off = 0; h->fill && off < CHUNK; off += h->page) {
                for (size_t i = 0; i < h->fill; i += sizeof(h->rng)) {
                        h->rng ^= h->rng << 13, h->rng ^= h->rng >> 7, h->rng ^= h->rng << 17;
                        memcpy(p + off + i, &h->rng, sizeof(h->rng));
                }
        }
}

/*
 * The line once a second (also while mapping chunks, which may take long when
 * the guest is short): what is held, what was rewritten and mapped since the
 * last line, and how long that kept the load busy.
 */
static void holder_log(struct holder *h)
{
        uint64_t now = mono_us(), t = now / 1000 - h->start_ms;

        if (t < h->next_log_ms)
                return;
        h->busy_us += now - h->busy_since_us;
        h->busy_since_us = now;
        printf("dynmem-load: holding %" PRIu64 " MiB (target %" PRIu64 " MiB), touched %" PRIu64
               " KiB in %" PRIu64 " us, mapped %" PRIu64 " KiB\n",
               (uint64_t)h->n * CHUNK / MIB, h->target / MIB, h->touched >> 10, h->busy_us,
               h->mapped >> 10);
        h->touched = 0, h->mapped = 0, h->busy_us = 0;
        h->next_log_ms = t - t % LOG_PERIOD_MS + LOG_PERIOD_MS;
}

/* Map, advise and touch one more chunk. Returns 0 or -1 (errno set). */
static int holder_add(struct holder *h)
{
        void *c;

        if (h->n == h->cap) {
                size_t cap = h->cap ? h->cap * 2 : 64;
                void **v = realloc(h->chunks, cap * sizeof(*v));

                if (v == NULL)
                        return -1;
                h->chunks = v;
                h->cap = cap;
        }
        c = mmap(NULL, CHUNK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (c == MAP_FAILED)
                return -1;
        (void)madvise(c, CHUNK, MADV_NOHUGEPAGE); /* 4 KiB pages: finer give-back */
        fill_chunk(h, c);
        touch_chunk(h, c);
        h->chunks[h->n++] = c;
        h->mapped += CHUNK;
        holder_log(h);
        return 0;
}

/* Move the number of chunks held toward want, mapping or unmapping. */
static void holder_adjust(struct holder *h, size_t want, uint64_t t)
{
        while (h->n > want)
                munmap(h->chunks[--h->n], CHUNK);
        if (h->n < want && t < h->retry_ms)
                return;
        while (h->n < want) {
                if (holder_add(h) < 0) {
                        printf("dynmem-load: cannot map 2 MiB (holding %zu MiB): %s; "
                               "retrying in 1 s\n",
                               h->n * (size_t)(CHUNK / MIB), strerror(errno));
                        h->retry_ms = t + 1000;
                        return;
                }
        }
}

/* Touch the next slice of chunks so that all are touched each TOUCH_PERIOD_MS. */
static void holder_touch_slice(struct holder *h)
{
        size_t k = (h->n * TICK_MS + TOUCH_PERIOD_MS - 1) / TOUCH_PERIOD_MS;

        for (size_t i = 0; i < k && h->n > 0; i++) {
                if (h->cursor >= h->n) {
                        h->cursor = 0;
                        h->gen++;
                }
                touch_chunk(h, h->chunks[h->cursor++]);
                h->touched += CHUNK;
        }
}

static size_t chunks_for(uint64_t bytes)
{
        return (size_t)((bytes + CHUNK - 1) / CHUNK);
}

static _Noreturn void run(const struct load_plan *plan, unsigned fill_pct)
{
        struct holder h = {
            .page = (size_t)sysconf(_SC_PAGESIZE), .gen = 1, .rng = 88172645463325252ull};

        h.fill = h.page * fill_pct / 100 / sizeof(h.rng) * sizeof(h.rng);
        uint64_t start = mono_ms();

        h.start_ms = start;
        for (uint64_t tick = 0;; tick++) {
                uint64_t t = mono_ms() - start;

                h.target = load_plan_target(plan, t);
                h.busy_since_us = mono_us();
                holder_adjust(&h, chunks_for(h.target), t);
                holder_touch_slice(&h);
                h.busy_us += mono_us() - h.busy_since_us;
                h.busy_since_us = mono_us();
                holder_log(&h);
                sleep_until_ms(start + (tick + 1) * TICK_MS);
        }
}

static void print_step(size_t i, const struct load_step *st)
{
        if (st->kind == LOAD_STEP_RAMP)
                printf("step %zu: ramp to %" PRIu64 " bytes (%" PRIu64 " MiB) over %" PRIu64
                       " ms\n",
                       i + 1, st->size, st->size / MIB, st->duration_ms);
        else
                printf("step %zu: hold for %" PRIu64 " ms\n", i + 1, st->duration_ms);
}

/* Print the plan, then its target at about 100 points of one period (two if it loops). */
static void dry_run(const struct load_plan *plan)
{
        uint64_t period = load_plan_period_ms(plan);
        uint64_t span = plan->loop ? 2 * period : period;
        uint64_t every = span / 100 > 1000 ? span / 100 : 1000;

        printf("plan: %zu steps, period %" PRIu64 " ms, %s, max %" PRIu64 " bytes\n", plan->nsteps,
               period, plan->loop ? "loop" : "no loop", load_plan_max_size(plan));
        for (size_t i = 0; i < plan->nsteps; i++)
                print_step(i, &plan->steps[i]);
        for (uint64_t t = 0; t <= span; t += every)
                printf("t=%" PRIu64 "ms target=%" PRIu64 "\n", t, load_plan_target(plan, t));
}

/* Read the spec from /proc/cmdline into buf. Returns 0 or -1 (message printed). */
static int spec_from_cmdline(char *buf, size_t len)
{
        static char cmdline[SPEC_MAX];
        FILE *f = fopen("/proc/cmdline", "r");
        size_t n;

        if (f == NULL) {
                fprintf(stderr, "dynmem-load: /proc/cmdline: %s\n", strerror(errno));
                return -1;
        }
        n = fread(cmdline, 1, sizeof(cmdline) - 1, f);
        cmdline[n] = '\0';
        fclose(f);
        if (load_cmdline_find(cmdline, CMDLINE_KEY, buf, len) < 0) {
                fprintf(stderr, "dynmem-load: no " CMDLINE_KEY "SPEC on the kernel command "
                                "line (or too long)\n");
                return -1;
        }
        return 0;
}

/* PERCENT, 0..100, or -1. */
static int parse_fill(const char *s)
{
        char *end;
        long v = strtol(s, &end, 10);

        return end != s && *end == '\0' && v >= 0 && v <= 100 ? (int)v : -1;
}

/* dynmem.load.fill= from /proc/cmdline, 0 when absent, -1 when wrong. */
static int fill_from_cmdline(void)
{
        static char cmdline[SPEC_MAX];
        char buf[16];
        FILE *f = fopen("/proc/cmdline", "r");
        size_t n;

        if (f == NULL)
                return 0;
        n = fread(cmdline, 1, sizeof(cmdline) - 1, f);
        cmdline[n] = '\0';
        fclose(f);
        return load_cmdline_find(cmdline, CMDLINE_FILL, buf, sizeof(buf)) < 0 ? 0 : parse_fill(buf);
}

int main(int argc, char **argv)
{
        static char spec[SPEC_MAX];
        bool dry = false, cmdline = false;
        int fill = 0;
        const char *arg = NULL;
        struct load_plan plan;
        char err[256];

        setvbuf(stdout, NULL, _IOLBF, 0);
        for (int i = 1; i < argc; i++) {
                if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
                        usage(stdout);
                        return 0;
                } else if (strcmp(argv[i], "--dry-run") == 0) {
                        dry = true;
                } else if (strcmp(argv[i], "--cmdline") == 0) {
                        cmdline = true;
                } else if (strcmp(argv[i], "--fill") == 0 && i + 1 < argc) {
                        if ((fill = parse_fill(argv[++i])) < 0) {
                                fprintf(stderr, "dynmem-load: --fill wants 0..100\n");
                                return 2;
                        }
                } else if (argv[i][0] == '-' || arg != NULL) {
                        fprintf(stderr, "dynmem-load: unexpected argument \"%s\"\n", argv[i]);
                        usage(stderr);
                        return 2;
                } else {
                        arg = argv[i];
                }
        }
        if (cmdline == (arg != NULL)) {
                fprintf(stderr, "dynmem-load: give either a spec or --cmdline\n");
                usage(stderr);
                return 2;
        }
        if (cmdline && spec_from_cmdline(spec, sizeof(spec)) < 0)
                return 2;
        if (cmdline && fill == 0 && (fill = fill_from_cmdline()) < 0) {
                fprintf(stderr, "dynmem-load: " CMDLINE_FILL " wants 0..100\n");
                return 2;
        }
        if (load_plan_parse(cmdline ? spec : arg, &plan, err, sizeof(err)) < 0) {
                fprintf(stderr, "dynmem-load: bad load spec: %s\n", err);
                return 2;
        }
        if (dry) {
                dry_run(&plan);
                return 0;
        }
        printf("dynmem-load: plan %s (%zu steps, period %" PRIu64 " ms%s)\n", cmdline ? spec : arg,
               plan.nsteps, load_plan_period_ms(&plan), plan.loop ? ", loop" : "");
        if (fill)
                printf("dynmem-load: filling %d %% of each page with pseudo-random bytes\n", fill);
        run(&plan, (unsigned)fill);
}
