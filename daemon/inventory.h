/*
 * inventory: the registry kept in line with a backend that owns its VMs
 * (lib/backend.h, inventory; the libvirt backend). Before every cycle the
 * backend's list is taken in:
 *
 *   - a VM new to the list gets an entry (origin "backend"), one gone from it
 *     loses its entry; settings follow the list (they live with the VM: no
 *     second copy here that could disagree with it);
 *   - a VM the list says runs while the registry has it off was started by
 *     someone else: it is running from this cycle on, holding what the
 *     backend says it holds (no memory counted as added for it);
 *   - a VM the list says is off while the registry has it running or
 *     stopping was stopped: off from this cycle on (a crash is left to the
 *     balancer, which sees it dead and counts it);
 *   - a start its owner makes and asks admission for (`dynmem admit`, the
 *     libvirt hook) waits at most INVENTORY_ADMIT_WAIT_MS for the memory to
 *     be freed; then it is refused.
 *
 * With adopt false (at start-up, before running.json is read) VMs are listed
 * but none is taken as running: reattaching them keeps their counters. When
 * the backend could not be reached then, running.json's entries wait
 * (attach.h): a VM the first list read afterwards has running is reattached
 * from its entry as it is taken in, and the entries left are dropped.
 */
#ifndef DYNMEM_INVENTORY_H
#define DYNMEM_INVENTORY_H

#include <stdbool.h>

#define INVENTORY_ADMIT_WAIT_MS 20000

struct daemon;

/* Take the backend's list in (nothing when the backend has none). */
void inventory_sync(struct daemon *d, bool adopt);

/* True when the backend has no list or its list is read: it can be reached. */
bool inventory_listed(struct daemon *d);

#endif
