/*
 * agent_wire: the tables of the guest agent protocol's words. See
 * agent_wire.h. libc only: the static guest agent links this file too.
 */
#include "agent_wire.h"

#include <stdio.h>

const struct agent_hello_key_desc agent_hello_keys[AGENT_HELLO_N_KEYS] = {
    [AGENT_HELLO_MIN] = {"min", AGENT_VERSION_MAX},
    [AGENT_HELLO_MAX] = {"max", AGENT_VERSION_MAX},
    [AGENT_HELLO_VERSION] = {"version", AGENT_VERSION_MAX},
    [AGENT_HELLO_INTERVAL_MS] = {"interval_ms", AGENT_INTERVAL_MAX},
    [AGENT_HELLO_PAGE_SIZE] = {"page_size", AGENT_PAGE_SIZE_MAX},
    [AGENT_HELLO_SOFTWARE] = {"agent", 0},
};

_Static_assert(AGENT_CAP_ABSORBER == 1u << (AGENT_N_CAPS - 1),
               "AGENT_N_CAPS counts every capability bit");

const struct agent_cap_desc agent_caps_table[AGENT_N_CAPS] = {
    {AGENT_CAP_BALLOON, "balloon", "balloon"},
    {AGENT_CAP_VIRTIO_MEM, "virtio_mem", "virtio-mem"},
    {AGENT_CAP_PSI, "psi", "psi"},
    {AGENT_CAP_PSI_TRIGGER, "psi_trigger", "psi-trigger"},
    {AGENT_CAP_ONLINE_MOVABLE, "online_movable", "online-movable"},
    {AGENT_CAP_ABSORBER, "absorber", "absorber"},
};

const char *const agent_cause_names[AGENT_N_CAUSES] = {
    [AGENT_CAUSE_TICK] = "tick",
    [AGENT_CAUSE_PSI] = "psi",
    [AGENT_CAUSE_HELLO] = "hello",
};

#define BYTES AGENT_BYTES_MAX
#define COUNT AGENT_COUNT_MAX

const struct agent_report_key_desc agent_report_keys[AGENT_R_N_KEYS] = {
    [AGENT_R_SEQ] = {"seq", COUNT, 0, true},
    [AGENT_R_TIME_MS] = {"time_ms", AGENT_TIME_MAX, 0, true},
    [AGENT_R_MEM_TOTAL] = {"mem_total_bytes", BYTES, 0, true},
    [AGENT_R_MEM_FREE] = {"mem_free_bytes", BYTES, 0, true},
    [AGENT_R_MEM_AVAILABLE] = {"mem_available_bytes", BYTES, AGENT_HAVE_AVAILABLE, false},
    [AGENT_R_CACHED] = {"cached_bytes", BYTES, 0, false},
    [AGENT_R_ACTIVE_FILE] = {"active_file_bytes", BYTES, 0, false},
    [AGENT_R_COMMITTED] = {"committed_bytes", COUNT, 0, false},
    [AGENT_R_SWAP_USED] = {"swap_used_bytes", BYTES, 0, false},
    [AGENT_R_BALLOON] = {"balloon_bytes", BYTES, AGENT_HAVE_BALLOON, false},
    [AGENT_R_BALLOON_IN_TOTAL] = {"balloon_in_total", 1, AGENT_HAVE_BALLOON, false},
    [AGENT_R_PSI_SOME_AVG10] = {"psi_some_avg10_bp", 10000, AGENT_HAVE_PSI, false},
    [AGENT_R_PSI_SOME_TOTAL] = {"psi_some_total_us", COUNT, AGENT_HAVE_PSI, false},
    [AGENT_R_PSI_FULL_AVG10] = {"psi_full_avg10_bp", 10000, AGENT_HAVE_PSI_FULL, false},
    [AGENT_R_PSI_FULL_TOTAL] = {"psi_full_total_us", COUNT, AGENT_HAVE_PSI_FULL, false},
    [AGENT_R_PGMAJFAULT] = {"pgmajfault", COUNT, 0, false},
    [AGENT_R_REFAULTS] = {"refaults", COUNT, AGENT_HAVE_REFAULTS, false},
    [AGENT_R_OOM_KILL] = {"oom_kill", COUNT, 0, false},
    [AGENT_R_ONLINED] = {"onlined", COUNT, 0, false},
    [AGENT_R_SELF_RSS] = {"self_rss_bytes", BYTES, AGENT_HAVE_SELF, false},
    [AGENT_R_SELF_CPU] = {"self_cpu_us", COUNT, AGENT_HAVE_SELF, false},
    [AGENT_R_ABSORBER] = {"absorber_bytes", BYTES, AGENT_HAVE_ABSORBER, false},
    [AGENT_R_ABSORBER_RAM] = {"absorber_ram_bytes", BYTES, AGENT_HAVE_ABSORBER, false},
    [AGENT_R_ABSORBER_SIZE] = {"absorber_size_bytes", BYTES, AGENT_HAVE_ABSORBER, false},
    [AGENT_R_FILE_RECLAIMED] = {"file_reclaimed", COUNT, AGENT_HAVE_RECLAIM, false},
    [AGENT_R_SWAP_FREE] = {"swap_free_bytes", BYTES, AGENT_HAVE_SWAP, false},
};

char *agent_caps_format(unsigned caps, char *buf, size_t len)
{
        size_t used = 0;

        if (len == 0)
                return buf;
        buf[0] = '\0';
        for (unsigned i = 0; i < AGENT_N_CAPS; i++) {
                if (!(caps & agent_caps_table[i].cap))
                        continue;
                int n = snprintf(buf + used, len - used, "%s%s", used ? "," : "",
                                 agent_caps_table[i].label);
                if (n < 0 || (size_t)n >= len - used)
                        break;
                used += (size_t)n;
        }
        if (!used)
                snprintf(buf, len, "none");
        return buf;
}
