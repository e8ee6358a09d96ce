/*
 * policy_bench: how long one policy decision takes for many VMs, on one core.
 * Runs the hyperv kind, the dynmem kind with its defaults (the headroom pool
 * on, OOM kills weighed apart), dynmem with the pool but no kill weight
 * (headroom_kill_weight = 0) and dynmem without the pool
 * (headroom_pool_percent = 0) over the same seeded VMs (plenty and scarcity;
 * each VM with 0 to 2 GiB of guest swap), in turn, ROUNDS times, and prints
 * the median and p99 per decision (the median over the rounds of each round's
 * figure), with the cost as a ratio of hyperv's and of dynmem's with its
 * defaults, measured in the same run.
 * Each decision is timed on the wall clock and on the thread's CPU clock: on
 * a loaded machine the wall clock also counts the time other processes ran.
 *
 *   policy_bench [VMS] [DECISIONS] [ROUNDS]      defaults 10000, 200 and 1
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mono.h"
#include "policy.h"
#include "units.h"

static uint64_t rng_state = 42;

static uint64_t rng(void)
{
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static int cmp_double(const void *a, const void *b)
{
        double x = *(const double *)a, y = *(const double *)b;
        return x < y ? -1 : x > y;
}

static void make_vms(struct policy_vm *vms, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                uint64_t startup = (1 + rng() % 8) * 512 * MIB;
                vms[i] = (struct policy_vm){
                    .name = "vm",
                    .settings = {.dynamic = true,
                                 .startup_bytes = startup,
                                 .minimum_bytes = 256 * MIB,
                                 .maximum_bytes = 4 * startup,
                                 .buffer_percent = 20,
                                 .weight = (uint32_t)(rng() % 10001),
                                 .block_bytes = 2 * MIB,
                                 .lend = true},
                    .phase = POLICY_PHASE_RUNNING,
                    .assigned_bytes = startup,
                    .demand_known = true,
                    .stall_known = true,
                    .swap_known = true,
                    .swap_bytes = (rng() % 5) * 512 * MIB,
                };
        }
}

/* The CPU time this thread has used, in ms. */
static double cpu_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
        return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Time `decisions` decisions with demands drifting; returns the median and
 * p99 in ms, on the wall clock, and the median on the CPU clock.
 */
static void run(enum policy_kind kind, int pool_percent, int kill_weight, struct policy_vm *vms,
                size_t n, uint64_t memory, int decisions, double *ret_median, double *ret_p99,
                double *ret_cpu)
{
        struct policy_config cfg = {.kind = kind};
        struct policy_host host = {.memory_bytes = memory};
        struct policy_scratch scratch = {0};
        double *t = calloc((size_t)decisions, sizeof(*t));
        double *c = calloc((size_t)decisions, sizeof(*c));

        policy_tunables_default(&cfg.tunables);
        if (pool_percent >= 0)
                cfg.tunables.headroom_pool_percent = (uint32_t)pool_percent;
        if (kill_weight >= 0)
                cfg.tunables.headroom_kill_weight = (uint32_t)kill_weight;
        policy_scratch_reserve(&scratch, n);
        for (int d = 0; d < decisions; d++) {
                for (size_t i = 0; i < n; i++) {
                        vms[i].demand_bytes = 128 * MIB + rng() % (vms[i].settings.maximum_bytes);
                        vms[i].stall_fraction = (rng() % 100) < 2 ? 0.05 : 0.0;
                }
                double start = mono_ms_exact(), cpu_start = cpu_ms();
                policy_decide(&cfg, &host, vms, n, (uint64_t)d * 1000, &scratch, NULL);
                c[d] = cpu_ms() - cpu_start;
                t[d] = mono_ms_exact() - start;
                for (size_t i = 0; i < n; i++) /* the backend follows at once */
                        vms[i].assigned_bytes = vms[i].target_bytes;
        }
        qsort(t, (size_t)decisions, sizeof(*t), cmp_double);
        *ret_median = t[decisions / 2];
        *ret_p99 = t[(decisions * 99) / 100];
        qsort(c, (size_t)decisions, sizeof(*c), cmp_double);
        *ret_cpu = c[decisions / 2];
        free(t);
        free(c);
        policy_scratch_free(&scratch);
}

/* The policies timed, in the order they run in each round. */
static const struct {
        const char *name;
        enum policy_kind kind;
        int pool_percent, kill_weight; /* -1: the default */
} policies[] = {
    {"hyperv", POLICY_HYPERV, -1, -1},
    {"dynmem", POLICY_DYNMEM, -1, -1},
    {"dynmem-nokill", POLICY_DYNMEM, -1, 0},
    {"dynmem-nopool", POLICY_DYNMEM, 0, -1},
};
#define POLICIES (sizeof(policies) / sizeof(policies[0]))

static double median_of(double *v, int k)
{
        qsort(v, (size_t)k, sizeof(*v), cmp_double);
        return v[k / 2];
}

int main(int argc, char **argv)
{
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
        int decisions = argc > 2 ? atoi(argv[2]) : 200;
        int rounds = argc > 3 ? atoi(argv[3]) : 1;
        struct policy_vm *vms = calloc(n, sizeof(*vms));
        const struct {
                const char *name;
                uint64_t memory_per_vm;
        } cases[] = {{"plenty", 64 * GIB}, {"scarcity", 1 * GIB}};

        if (!vms || n == 0 || decisions < 10 || rounds < 1 || rounds > 100) {
                fprintf(stderr, "usage: policy_bench [VMS] [DECISIONS>=10] [ROUNDS 1..100]\n");
                return 2;
        }
        printf("%zu VMs, %d decisions per case, %d round(s), one core\n", n, decisions, rounds);
        printf("%-9s %-14s %10s %10s %14s %10s %10s %10s  %s\n", "case", "policy", "median_ms",
               "p99_ms", "vs_hyperv_p50", "vs_dynmem", "cpu_ms", "vs_dynmem", "median_ms by round");
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
                double med[POLICIES][100], p99[POLICIES][100], cpu[POLICIES][100];
                double m[POLICIES], p[POLICIES], u[POLICIES];

                for (int r = 0; r < rounds; r++)
                        for (size_t k = 0; k < POLICIES; k++) {
                                rng_state = 42;
                                make_vms(vms, n);
                                run(policies[k].kind, policies[k].pool_percent,
                                    policies[k].kill_weight, vms, n, cases[c].memory_per_vm * n,
                                    decisions, &med[k][r], &p99[k][r], &cpu[k][r]);
                        }
                double by_round[POLICIES][100];
                for (size_t k = 0; k < POLICIES; k++) {
                        memcpy(by_round[k], med[k], sizeof(double) * (size_t)rounds);
                        m[k] = median_of(med[k], rounds);
                        p[k] = median_of(p99[k], rounds);
                        u[k] = median_of(cpu[k], rounds);
                }
                for (size_t k = 0; k < POLICIES; k++) {
                        printf("%-9s %-14s %10.3f %10.3f %13.2fx %9.2fx %10.3f %9.2fx ",
                               cases[c].name, policies[k].name, m[k], p[k], m[k] / m[0],
                               m[k] / m[1], u[k], u[k] / u[1]);
                        for (int r = 0; r < rounds; r++)
                                printf(" %.2f", by_round[k][r]);
                        printf("\n");
                }
        }
        free(vms);
        return 0;
}
