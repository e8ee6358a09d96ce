/*
 * policy_exec_fuzz: libFuzzer target for the reply parser of external
 * policies (lib/policy_exec.c): what an exec: program writes back. After any
 * input, every proposal is either cleared (a refused reply) or a byte count
 * for a VM that takes part; then the policy's decision over those proposals
 * must keep every target within [minimum, maximum] and the host's budget.
 *
 * Build and run: fuzz/run.sh policy_exec SECONDS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "policy_exec.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond))                                                                       \
                        abort();                                                                   \
        } while (0)

#define N 3

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char *const names[N] = {"web1", "db", "off"};
        struct policy_vm vms[N];
        struct policy_config cfg = {.kind = POLICY_EXTERNAL};
        struct policy_host host = {.memory_bytes = 8 * GIB};
        struct policy_scratch scratch = {0};
        char err[256];

        policy_tunables_default(&cfg.tunables);
        for (size_t i = 0; i < N; i++) {
                vms[i] = (struct policy_vm){
                    .name = names[i],
                    .settings = {.dynamic = true,
                                 .startup_bytes = GIB,
                                 .minimum_bytes = 512 * MIB,
                                 .maximum_bytes = 4 * GIB,
                                 .buffer_percent = 20,
                                 .weight = 5000,
                                 .block_bytes = 2 * MIB,
                                 .lend = true},
                    .phase = i == 2 ? POLICY_PHASE_OFF : POLICY_PHASE_RUNNING,
                    .assigned_bytes = GIB,
                    .demand_known = true,
                    .demand_bytes = 700 * MIB,
                };
        }
        if (policy_exec_parse_reply((const char *)data, size, vms, N, err, sizeof(err)) < 0) {
                for (size_t i = 0; i < N; i++)
                        CHECK(vms[i].external_bytes == 0);
        }
        CHECK(vms[2].external_bytes == 0);
        if (policy_scratch_reserve(&scratch, N) < 0)
                return 0;
        policy_decide(&cfg, &host, vms, N, 1000, &scratch, NULL);
        uint64_t sum = 0;
        for (size_t i = 0; i < 2; i++) {
                CHECK(vms[i].target_bytes >= vms[i].settings.minimum_bytes);
                CHECK(vms[i].target_bytes <= vms[i].settings.maximum_bytes);
                sum += vms[i].target_bytes > vms[i].assigned_bytes ? vms[i].target_bytes
                                                                   : vms[i].assigned_bytes;
        }
        CHECK(sum <= host.memory_bytes);
        policy_scratch_free(&scratch);
        return 0;
}
