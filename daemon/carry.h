/*
 * carry: what the policy learned of a VM travels with it when its owner
 * moves it to another host by live migration (docs/migration.md, "What
 * travels"). dynmemd adds no transport: the backend keeps a short text in
 * the running VM where its owner migrates it along (libvirt: an element of
 * the live domain's metadata, backend/libvirt_carry.c), and the destination's
 * dynmemd reads it when it takes the VM in.
 *
 * Writing: every CARRY_PERIOD_MS for each balanced running VM that learned
 * something, at a moment of its own within the period (its name's hash), so
 * that many VMs do not write together; at most CARRY_PER_CYCLE writes a
 * cycle. A VM that migrates, or whose owner has a job running on it or does
 * not answer, is tried again CARRY_RETRY_MS later. The relief rule, and
 * `dynmem migrate` through the control command "carry", have a VM's written
 * just before it moves (carry_fresh()).
 *
 *   {"written_at_ms": 1796000000000, "policy": {"version": 1, ...}}
 *
 * "written_at_ms" is the wall clock (the hosts' clocks are one clock
 * enough: NTP), "policy" lib/policy_save.h's object.
 *
 * Reading: once for each VM that runs here from when it is taken in running
 * (found running, started by someone else, or arrived) and is not migrating:
 * what it carries is given to its policy memory through the restore of
 * running.json (attach_learned_apply(): every field checked, aged by the
 * time since it was written). running.json's entry of the VM (a restart
 * here) goes first when it was written later. The text is whatever anyone
 * with access to the owner wrote: over BACKEND_LEARNED_MAX, not JSON, a time
 * more than CARRY_SKEW_MS ahead of this host's clock or older than
 * POLICY_SAVE_AGE_MAX, or a policy that does not hold, and it is dropped with
 * one warning naming the VM, which is balanced all the same.
 */
#ifndef DYNMEM_CARRY_H
#define DYNMEM_CARRY_H

#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

/*
 * Every 5 minutes: what the history learns changes slowly (its half-life is
 * hours), and each write is a libvirt call that takes the domain's job and
 * changes its live XML; a migration loses at most the last 5 minutes of it.
 * The tests set DYNMEM_TEST_CARRY_PERIOD_MS (read once at start) to run in
 * seconds.
 */
#define CARRY_PERIOD_MS (5 * 60 * 1000)
#define CARRY_RETRY_MS  10000       /* busy or unreachable: tried again then */
#define CARRY_PER_CYCLE 8           /* writes handed over in one cycle at most */
#define CARRY_SKEW_MS   (60 * 1000) /* a time this far ahead of our clock is the hosts' skew */
#define CARRY_WAIT_MS   BACKEND_CARRY_WAIT_MS /* a move waits this long for a write (carry_fresh) */

struct daemon;
struct registry_entry;

/*
 * Once a cycle, after the inventory: what the VMs just taken in carry, and
 * the writes that are due.
 */
void carry_cycle(struct daemon *d);

/*
 * Write what the policy learned of e's VM now. 0 when the write is on its
 * way (carry_pending() says when it is made), or a negative errno: nothing
 * to write (-ENODATA), not now (-EBUSY, -EAGAIN), or no such write
 * (-EOPNOTSUPP: the backend keeps nothing in its VMs, or the VM is not
 * running).
 */
int carry_now(struct daemon *d, struct registry_entry *e);

/*
 * Just before the VM moves (the relief rule; `dynmem migrate` through the
 * control command "carry"): carry_now(), or 0 when a write is out already,
 * made from what the policy knows now. The caller waits for carry_pending()
 * at most CARRY_WAIT_MS.
 */
int carry_fresh(struct daemon *d, struct registry_entry *e);

/*
 * A write handed over is not made yet. Once it is over (false), *ret_error
 * (when not NULL) says how it went: 0 made, -EIO refused by the VM's owner,
 * -ECANCELED taken back (the VM stopped), -ENOTCONN the connection to the
 * owner was lost, -ETIMEDOUT dropped after waiting CARRY_WAIT_MS for the
 * worker, -ESHUTDOWN dynmemd stops, -EOPNOTSUPP no write of this backend.
 */
bool carry_pending(struct daemon *d, struct registry_entry *e, int *ret_error);

#endif
