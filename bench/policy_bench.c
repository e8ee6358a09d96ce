/*
 * policy_bench: how long one policy decision takes for many VMs, on one core.
 * Runs the dynmem and hyperv kinds over the same seeded VMs (plenty and
 * scarcity) and prints the median and p99 per decision, with dynmem's cost
 * as a ratio of hyperv's measured in the same run.
 *
 *   policy_bench [VMS] [DECISIONS]      defaults 10000 and 200
 */
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
                                 .block_bytes = 2 * MIB},
                    .phase = POLICY_PHASE_RUNNING,
                    .assigned_bytes = startup,
                    .demand_known = true,
                    .stall_known = true,
                };
        }
}

/* Time `decisions` decisions with demands drifting; returns median and p99 in ms. */
static void run(enum policy_kind kind, struct policy_vm *vms, size_t n, uint64_t memory,
                int decisions, double *ret_median, double *ret_p99)
{
        struct policy_config cfg = {.kind = kind};
        struct policy_host host = {.memory_bytes = memory};
        struct policy_scratch scratch = {0};
        double *t = calloc((size_t)decisions, sizeof(*t));

        policy_tunables_default(&cfg.tunables);
        policy_scratch_reserve(&scratch, n);
        for (int d = 0; d < decisions; d++) {
                for (size_t i = 0; i < n; i++) {
                        vms[i].demand_bytes = 128 * MIB + rng() % (vms[i].settings.maximum_bytes);
                        vms[i].stall_fraction = (rng() % 100) < 2 ? 0.05 : 0.0;
                }
                double start = mono_ms_exact();
                policy_decide(&cfg, &host, vms, n, (uint64_t)d * 1000, &scratch, NULL);
                t[d] = mono_ms_exact() - start;
                for (size_t i = 0; i < n; i++) /* the backend follows at once */
                        vms[i].assigned_bytes = vms[i].target_bytes;
        }
        qsort(t, (size_t)decisions, sizeof(*t), cmp_double);
        *ret_median = t[decisions / 2];
        *ret_p99 = t[(decisions * 99) / 100];
        free(t);
        policy_scratch_free(&scratch);
}

int main(int argc, char **argv)
{
        size_t n = argc > 1 ? strtoul(argv[1], NULL, 10) : 10000;
        int decisions = argc > 2 ? atoi(argv[2]) : 200;
        struct policy_vm *vms = calloc(n, sizeof(*vms));
        const struct {
                const char *name;
                uint64_t memory_per_vm;
        } cases[] = {{"plenty", 64 * GIB}, {"scarcity", 1 * GIB}};

        if (!vms || n == 0 || decisions < 10) {
                fprintf(stderr, "usage: policy_bench [VMS] [DECISIONS>=10]\n");
                return 2;
        }
        printf("%zu VMs, %d decisions per case, one core\n", n, decisions);
        printf("%-9s %-7s %10s %10s %14s\n", "case", "policy", "median_ms", "p99_ms",
               "vs_hyperv_p50");
        for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
                double hm, hp, dm, dp;
                rng_state = 42;
                make_vms(vms, n);
                run(POLICY_HYPERV, vms, n, cases[c].memory_per_vm * n, decisions, &hm, &hp);
                rng_state = 42;
                make_vms(vms, n);
                run(POLICY_DYNMEM, vms, n, cases[c].memory_per_vm * n, decisions, &dm, &dp);
                printf("%-9s %-7s %10.3f %10.3f %14s\n", cases[c].name, "hyperv", hm, hp, "1.00");
                printf("%-9s %-7s %10.3f %10.3f %13.2fx\n", cases[c].name, "dynmem", dm, dp,
                       dm / hm);
        }
        free(vms);
        return 0;
}
