/*
 * hotplug: brings hot-added memory blocks online when the kernel has not
 * (no memhp_default_state, no udev rule): every block whose state is
 * "offline" is set to "online_movable" (so it can be unplugged again), or
 * "online" when the kernel refuses movable. Kernel uevents for memory
 * blocks (NETLINK_KOBJECT_UEVENT) start a scan at once; so does an overflow
 * of the uevent socket (ENOBUFS: uevents were lost, a block's "add" maybe
 * among them); a scan also runs every HOTPLUG_SCAN_MS. Scans run at most once
 * per HOTPLUG_MIN_GAP_MS.
 */
#ifndef DYNMEM_GUEST_HOTPLUG_H
#define DYNMEM_GUEST_HOTPLUG_H

#include <stdbool.h>
#include <stdint.h>

#define HOTPLUG_SCAN_MS    30000
#define HOTPLUG_MIN_GAP_MS 1000

struct hotplug {
        bool present;     /* /sys/devices/system/memory exists */
        bool writable;    /* and we may write its state files */
        int uevent_fd;    /* -1 without netlink */
        bool scan_wanted; /* a uevent (or lost uevents) asked for a scan */
        uint64_t next_scan_ms;
        uint64_t last_scan_ms;
        uint64_t onlined;   /* blocks brought online, movable or not */
        uint64_t movable;   /* ... of which movable */
        uint64_t failed;    /* blocks that would not come online */
        uint64_t overflows; /* times the uevent socket overflowed (the first is logged) */
};

void hotplug_open(struct hotplug *h, uint64_t now_ms);
void hotplug_close(struct hotplug *h);

/* The fd to poll for POLLIN (uevents), or -1. */
int hotplug_poll_fd(const struct hotplug *h);

/* Milliseconds until the next scan is due; -1 when there is nothing to scan. */
int hotplug_timeout(const struct hotplug *h, uint64_t now_ms);

/* After poll(): drain uevents (revents of the uevent fd) and scan when due. */
void hotplug_run(struct hotplug *h, short revents, uint64_t now_ms);

#endif
