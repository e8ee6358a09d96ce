/*
 * throttle: slows the guest's workload down while it is short of memory and
 * the host is plugging more, instead of letting it fill the guest until the
 * kernel kills a process. Only while a host is there to plug it: a host
 * that has said hello on the live connection (a version agreed). Without
 * one nobody adds memory, and holding the workload would only put off the
 * guest's own OOM handling; a host that goes away lifts the throttle at
 * once. It sets cgroup v2 memory.high of the workload's
 * cgroups to what each holds when the guest starts to stall: a cgroup over
 * its memory.high reclaims its own pages (into the burst absorber) and its
 * tasks are made to sleep, never killed. While it holds, MemFree below the
 * share it engages at lowers the limits further (the workload's pages go into
 * the absorber, the RAM stays free for the kernel). It lifts the limits once
 * the guest has room again (memory came online, or the workload made room),
 * and after THROTTLE_MAX_MS in any case (a guest at its maximum gets
 * nothing more): then it stays off until the guest has had room again or
 * more memory, so that such a guest gets its usual OOM handling back.
 *
 * A limit never raises a memory.high someone else set, and the lift puts back
 * what each cgroup had. While engaged, the agent notes those values in
 * THROTTLE_STATE_FILE: an agent that starts and finds it (its predecessor
 * died throttling) puts them back first.
 *
 * The workload's cgroups: the children of the cgroup v2 root that have
 * memory.high, except the agent's own branch, into which it descends (so in
 * a systemd guest system.slice's other services, user.slice, machine.slice;
 * init.scope is left alone). docs/guest-protocol.md, "Throttling".
 */
#ifndef DYNMEM_GUEST_THROTTLE_H
#define DYNMEM_GUEST_THROTTLE_H

#include <stdbool.h>
#include <stdint.h>

#include "agent_wire.h"

#define THROTTLE_CGROUPS_MAX 32
#define THROTTLE_MAX_MS      10000 /* the longest a throttle is held */
/* engaged when MemAvailable < MemTotal / 32 (the room the absorber's drain keeps) ... */
#define THROTTLE_SHORT_DIV  AGENT_ABSORBER_ROOM_DIV
#define THROTTLE_ROOM_DIV   16  /* ... lifted when MemAvailable >= MemTotal / 16 */
#define THROTTLE_LOOK_MS    100 /* engaged: how often the agent looks */
#define THROTTLE_ROOT       "/sys/fs/cgroup"
#define THROTTLE_STATE_DIR  "/run/dynmem-guest"
#define THROTTLE_STATE_FILE THROTTLE_STATE_DIR "/throttle"
#define THROTTLE_HIGH_LEN   24 /* "max" or a byte count */

struct throttle {
        bool enabled;   /* cgroup v2 with memory.high found, and not turned off */
        unsigned count; /* workload cgroups */
        char paths[THROTTLE_CGROUPS_MAX][96];               /* relative to the cgroup root */
        char prev[THROTTLE_CGROUPS_MAX][THROTTLE_HIGH_LEN]; /* memory.high before ("" = unknown) */
        uint64_t high[THROTTLE_CGROUPS_MAX];  /* memory.high set now (0: left alone) */
        uint64_t floor[THROTTLE_CGROUPS_MAX]; /* never lowered below: half what it held */
        uint64_t lowered;                     /* bytes lowered by since engaged, in all */
        bool engaged;
        bool held_off; /* lifted in time with nothing come: not again until the guest had room */
        uint64_t since_ms, mem_total_then;
        unsigned restored; /* cgroups a predecessor left throttled, put back at open */
        char why_off[96];
};

/*
 * Put back what a predecessor left throttled (THROTTLE_STATE_FILE), then find the workload's
 * cgroups under root_dir (the cgroup v2 mount); off: turned off (the put-back still happens).
 */
bool throttle_open(struct throttle *t, const char *root_dir, bool off);

/*
 * One sample: host says a host is connected that can add memory, stalled that the guest
 * stalled since the last one. Engages when the guest stalls with a host there and
 * MemAvailable below mem_total / THROTTLE_SHORT_DIV; while engaged, lowers the
 * limits by what MemFree lacks of that share (the workload's own pages go into the
 * absorber, and the RAM they leave stays free for the kernel: the memory map of a block
 * being added); lifts at mem_total / THROTTLE_ROOM_DIV, in time, or at once without a host.
 * Lifted in time, it engages again only once a sample has found room or more memory.
 */
void throttle_run(struct throttle *t, bool host, bool stalled, uint64_t mem_total,
                  uint64_t mem_available, uint64_t mem_free, uint64_t now_ms);

/* The host went away (or has not said hello on a new connection): an engaged throttle is lifted. */
void throttle_host_gone(struct throttle *t, uint64_t now_ms);

/* The agent stops: an engaged throttle is lifted (what each cgroup had, put back). */
void throttle_close(struct throttle *t);

#endif
