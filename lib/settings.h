/*
 * settings: the per-VM Dynamic Memory settings and the rules that bind them.
 *
 * These are the numbers an operator sets (startup, minimum, maximum, buffer,
 * weight, dynamic) with their ranges and defaults, and the checks that every
 * entry point (config file, control socket, simulator scenario) applies the
 * same way. No I/O.
 */
#ifndef DYNMEM_SETTINGS_H
#define DYNMEM_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "units.h"

#define SETTINGS_MINIMUM_FLOOR   (32 * MIB) /* no VM may be set below this */
#define SETTINGS_BUFFER_MIN      5u         /* percent */
#define SETTINGS_BUFFER_MAX      2000u      /* percent */
#define SETTINGS_BUFFER_DEFAULT  20u        /* percent */
#define SETTINGS_WEIGHT_MAX      10000u
#define SETTINGS_WEIGHT_DEFAULT  5000u
#define SETTINGS_BLOCK_DEFAULT   (2 * MIB) /* virtio-mem device block on x86 */
#define SETTINGS_STARTUP_DEFAULT (1 * GIB)
#define SETTINGS_SIZE_MAX        (16 * TIB) /* sanity bound on any one VM */

struct vm_settings {
        bool dynamic;            /* Dynamic Memory on; off = fixed at startup */
        uint64_t startup_bytes;  /* what the guest boots with */
        uint64_t minimum_bytes;  /* floor of the balancer */
        uint64_t maximum_bytes;  /* ceiling of the balancer */
        uint32_t buffer_percent; /* memory kept above demand, % of demand */
        uint32_t weight;         /* 0..10000: who keeps memory under scarcity */
        uint64_t block_bytes;    /* resize granularity (power of two) */
};

/* Which settings were given explicitly (the others take defaults). */
enum settings_field {
        SETTINGS_DYNAMIC = 1u << 0,
        SETTINGS_STARTUP = 1u << 1,
        SETTINGS_MINIMUM = 1u << 2,
        SETTINGS_MAXIMUM = 1u << 3,
        SETTINGS_BUFFER = 1u << 4,
        SETTINGS_WEIGHT = 1u << 5,
        SETTINGS_BLOCK = 1u << 6,
};

/*
 * Fill the fields not marked in given_mask with defaults derived from the
 * given ones: startup 1 GiB, minimum = min(512 MiB, startup), maximum =
 * max(startup, 4 x startup) for dynamic VMs and startup for static ones,
 * buffer 20 %, weight 5000, block 2 MiB, dynamic off.
 */
void settings_complete(struct vm_settings *s, unsigned given_mask);

/*
 * Check a complete set of settings on its own: ranges, alignment to the
 * block size and minimum <= startup <= maximum. Returns 0 or -EINVAL with a
 * sentence (no trailing period) in err.
 */
int settings_check(const struct vm_settings *s, char *err, size_t errlen);

/*
 * Check a change to a VM's settings against Hyper-V's rules for what may
 * change while it runs: dynamic and startup only while off, minimum may only
 * be lowered and maximum only be raised while running, buffer and weight at
 * any time. `running` is true for any state other than off/crashed.
 * `assigned_bytes` is what the running VM holds now. Returns 0 or -EPERM /
 * -EINVAL with a reason in err ("cannot change startup while the VM is
 * running").
 */
int settings_check_change(const struct vm_settings *old, const struct vm_settings *new,
                          bool running, char *err, size_t errlen);

#endif
