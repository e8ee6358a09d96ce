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
 * The cases: "plenty" (64 GiB per VM) and "scarcity" (1 GiB per VM), where
 * every VM's demand is drawn afresh at every decision, uniformly up to its
 * maximum: the worst case for the learned headroom, whose every history
 * changes by a rise of any size at every decision. With --traces DIR, also
 * "traces-plenty" and "traces-scarcity" (the same hosts): VM i follows
 * DIR's CSV traces (lib/trace.h) in turn, each from its own offset, a minute
 * of the trace per decision: demand that moves as recorded workloads move.
 * The share of decisions that met scarcity is printed per case.
 *
 *   policy_bench [--traces DIR] [VMS] [DECISIONS] [ROUNDS]   defaults 10000, 200 and 1
 */
#include <glob.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mono.h"
#include "policy.h"
#include "trace.h"
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

/* The traces of --traces, loaded once. */
static struct trace *traces;
static size_t n_traces;

static int load_traces(const char *dir)
{
        char pattern[4096];
        glob_t g;

        if (snprintf(pattern, sizeof(pattern), "%s/*.csv", dir) >= (int)sizeof(pattern))
                return -1;
        if (glob(pattern, 0, NULL, &g) != 0) {
                fprintf(stderr, "policy_bench: no CSV traces in %s\n", dir);
                return -1;
        }
        traces = calloc(g.gl_pathc, sizeof(*traces));
        for (size_t k = 0; traces && k < g.gl_pathc; k++) {
                struct config_diag diag = {0};
                if (trace_load(g.gl_pathv[k], &traces[n_traces], &diag) == 0 &&
                    traces[n_traces].n > 0)
                        n_traces++;
                else
                        fprintf(stderr, "policy_bench: %s: %s\n", g.gl_pathv[k],
                                diag.count ? diag.messages[0] : "no rows");
                config_diag_free(&diag);
        }
        globfree(&g);
        return n_traces > 0 ? 0 : -1;
}

/*
 * The demand of VM i at decision d: drawn afresh (traces off), or its trace
 * a minute further on, from an offset of its own, within its maximum.
 */
static uint64_t demand_of(const struct policy_vm *vm, size_t i, int d, bool from_traces)
{
        if (!from_traces)
                return 128 * MIB + rng() % vm->settings.maximum_bytes;
        const struct trace *t = &traces[i % n_traces];
        uint64_t length = trace_end_ms(t) + 1;
        uint64_t at = ((uint64_t)(i / n_traces) * 7919 * 1000 + (uint64_t)d * 60 * 1000) % length;
        size_t cursor = 0;
        uint64_t demand = trace_demand_at(t, at, &cursor);

        return demand < vm->settings.maximum_bytes ? demand : vm->settings.maximum_bytes;
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
                size_t n, uint64_t memory, bool from_traces, int decisions, double *ret_median,
                double *ret_p99, double *ret_cpu, int *ret_scarce)
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
        if (!t || !c || policy_scratch_reserve(&scratch, n) < 0) {
                fprintf(stderr, "policy_bench: out of memory for %zu VMs\n", n);
                exit(1);
        }
        for (int d = 0; d < decisions; d++) {
                struct policy_summary summary;

                for (size_t i = 0; i < n; i++) {
                        vms[i].demand_bytes = demand_of(&vms[i], i, d, from_traces);
                        vms[i].stall_fraction = (rng() % 100) < 2 ? 0.05 : 0.0;
                }
                double start = mono_ms_exact(), cpu_start = cpu_ms();
                policy_decide(&cfg, &host, vms, n, (uint64_t)d * 1000, &scratch, &summary);
                c[d] = cpu_ms() - cpu_start;
                t[d] = mono_ms_exact() - start;
                *ret_scarce += summary.scarcity;
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
        const char *traces_dir = NULL;

        if (argc > 2 && strcmp(argv[1], "--traces") == 0) {
                traces_dir = argv[2];
                argv += 2;
                argc -= 2;
        }
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
        int decisions = argc > 2 ? atoi(argv[2]) : 200;
        int rounds = argc > 3 ? atoi(argv[3]) : 1;
        struct policy_vm *vms = calloc(n, sizeof(*vms));
        const struct {
                const char *name;
                uint64_t memory_per_vm;
                bool from_traces;
        } cases[] = {{"plenty", 64 * GIB, false},
                     {"scarcity", 1 * GIB, false},
                     {"traces-plenty", 64 * GIB, true},
                     {"traces-scarcity", 1 * GIB, true}};

        if (!vms || n == 0 || decisions < 10 || rounds < 1 || rounds > 100 || argc > 4 ||
            (argc > 1 && argv[1][0] == '-')) {
                fprintf(stderr, "usage: policy_bench [--traces DIR] [VMS] [DECISIONS>=10] "
                                "[ROUNDS 1..100]\n");
                free(vms);
                return 2;
        }
        if (traces_dir && load_traces(traces_dir) < 0) {
                free(traces);
                free(vms);
                return 1;
        }
        printf("%zu VMs, %d decisions per case, %d round(s), one core\n", n, decisions, rounds);
        printf("%-15s %-14s %10s %10s %14s %10s %10s %10s %8s  %s\n", "case", "policy", "median_ms",
               "p99_ms", "vs_hyperv_p50", "vs_dynmem", "cpu_ms", "vs_dynmem", "scarce",
               "median_ms by round");
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
                double med[POLICIES][100], p99[POLICIES][100], cpu[POLICIES][100];
                double m[POLICIES], p[POLICIES], u[POLICIES];
                int scarce[POLICIES] = {0};

                if (cases[c].from_traces && !traces_dir)
                        continue;
                for (int r = 0; r < rounds; r++)
                        for (size_t k = 0; k < POLICIES; k++) {
                                rng_state = 42;
                                make_vms(vms, n);
                                run(policies[k].kind, policies[k].pool_percent,
                                    policies[k].kill_weight, vms, n, cases[c].memory_per_vm * n,
                                    cases[c].from_traces, decisions, &med[k][r], &p99[k][r],
                                    &cpu[k][r], &scarce[k]);
                        }
                double by_round[POLICIES][100];
                for (size_t k = 0; k < POLICIES; k++) {
                        memcpy(by_round[k], med[k], sizeof(double) * (size_t)rounds);
                        m[k] = median_of(med[k], rounds);
                        p[k] = median_of(p99[k], rounds);
                        u[k] = median_of(cpu[k], rounds);
                }
                for (size_t k = 0; k < POLICIES; k++) {
                        printf("%-15s %-14s %10.3f %10.3f %13.2fx %9.2fx %10.3f %9.2fx %7.0f%% ",
                               cases[c].name, policies[k].name, m[k], p[k], m[k] / m[0],
                               m[k] / m[1], u[k], u[k] / u[1],
                               100.0 * scarce[k] / ((double)decisions * rounds));
                        for (int r = 0; r < rounds; r++)
                                printf(" %.2f", by_round[k][r]);
                        printf("\n");
                }
        }
        for (size_t k = 0; k < n_traces; k++)
                trace_free(&traces[k]);
        free(traces);
        free(vms);
        return 0;
}
