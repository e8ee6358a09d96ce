/*
 * sample: one snapshot of the guest's memory for a report: /proc/meminfo,
 * /proc/vmstat, PSI, the virtio devices present (balloon, virtio-mem) and the
 * agent's own footprint. Sizes in bytes, stall in microseconds, counters as
 * the kernel counts them since boot.
 *
 * A sample needs MemTotal. When /proc/meminfo cannot be read or has no usable
 * MemTotal, there is no sample: that is logged once (and once more when it
 * changes, or comes back), and every later sample tries again, opening the
 * file afresh.
 */
#ifndef DYNMEM_GUEST_SAMPLE_H
#define DYNMEM_GUEST_SAMPLE_H

#include <stdbool.h>
#include <stdint.h>

#include "psi.h"

struct sample {
        uint64_t time_ms;
        uint32_t have; /* AGENT_HAVE_* bits of lib/agent_wire.h */
        uint64_t mem_total, mem_available, mem_free, cached, active_file, committed, swap_used;
        uint64_t swap_free; /* SwapFree, the absorber's free room included (AGENT_HAVE_SWAP) */
        uint64_t balloon;
        bool balloon_in_total;
        struct psi_values psi;
        uint64_t pgmajfault, refaults, oom_kill, file_reclaimed;
        uint64_t self_rss, self_cpu_us;
        uint64_t absorber_stored, absorber_ram, absorber_capacity; /* absorber.h */
};

/* Virtio devices bound to a driver, found under /sys/bus/virtio/devices. */
struct sample_devices {
        bool balloon;
        bool balloon_deflate_on_oom; /* ballooned pages stay in MemTotal */
        bool virtio_mem;
};

struct sampler {
        int meminfo_fd, vmstat_fd, statm_fd, rollup_fd;
        uint64_t page_size;
        struct sample_devices dev;
        int meminfo_err; /* the last sample's failure (negative errno), 0 = none; logged */
};

/* Open the files kept open between samples. 0 or a negative errno (no /proc/meminfo). */
int sampler_open(struct sampler *s);
void sampler_close(struct sampler *s);

/* Look at the virtio devices again (at start, at each handshake, every DEVICE_SCAN_MS). */
void sampler_scan_devices(struct sampler *s);

/*
 * Take a sample; p may be NULL (no PSI). 0, or a negative errno when meminfo is unreadable
 * (-EINVAL: it has no usable MemTotal).
 */
int sampler_read(struct sampler *s, struct psi *p, struct sample *ret);

/* Parse /proc/meminfo and /proc/vmstat text into ret (page_size for page counts). */
int sample_parse_meminfo(const char *text, struct sample *ret);
void sample_parse_vmstat(const char *text, uint64_t page_size, struct sample *ret);

#endif
