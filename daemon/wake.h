/*
 * wake: cycles on demand. A backend calls its environment's wakeup() when
 * something the loop should look at soon has happened (a guest agent
 * reported that the guest started to stall, a VM's process died); dynmemd
 * then runs a balancing cycle at once instead of at the next tick of
 * [host] interval. These extra cycles are rate-limited by a token bucket
 * (WAKE_RATE a second, bursts of WAKE_BURST), so a guest cannot make the
 * daemon spin: a wakeup beyond the budget runs its cycle once a token is
 * back, or not at all when the regular cycle comes first. A wakeup that a
 * cycle has already answered (one ran after it) is dropped.
 */
#ifndef DYNMEM_WAKE_H
#define DYNMEM_WAKE_H

#include <stdint.h>

#define WAKE_RATE  10 /* extra cycles a second, sustained */
#define WAKE_BURST 5

struct daemon;

struct wake_stats {
        uint64_t requests; /* wakeup() calls */
        uint64_t cycles;   /* extra cycles run */
        uint64_t dropped;  /* requests a cycle had already answered, or merged into another */
};

/* Set up (after the cycle timer exists). Returns 0 or -ENOMEM. */
int wake_init(struct daemon *d);

/* The backend environment's wakeup callback; userdata is the struct daemon. */
void wake_request(void *userdata);

void wake_stats(const struct daemon *d, struct wake_stats *ret);

/* d->wake may be NULL. */
void wake_free(struct daemon *d);

#endif
