/*
 * attach: what keeps running when dynmemd does not. The VMs that hold
 * memory (running or stopping) are listed in STATE_DIR/running.json with
 * what they hold, their last target and their counters; the file is
 * replaced atomically (write, fsync, rename, fsync the folder) at the end of
 * every cycle in which a VM started, stopped, crashed or changed state,
 * every ATTACH_REFRESH_MS while something else in it changed (every
 * ATTACH_LEARNED_REFRESH_MS once it holds what the policy learned, which
 * changes with every sample: at 10,000 VMs the text is about 11 MB and a
 * third of a second of the loop's time), and when dynmemd stops. So after
 * `kill -9 dynmemd` it still says which VMs run.
 *
 * At start (after the configuration and the state file are applied, before
 * autostart) every VM the file lists is handed to the backend's reattach():
 * 0 and the VM is running again with nothing restarted, its settings and
 * the counters the file kept; -ENOENT and it is off (nothing of it runs any
 * more); another error and it is crashed. Each outcome is logged once.
 * A VM that is reattached gets back what the policy had learned of it (its
 * entry's "policy" member, lib/policy_save.h), aged by the time since it was
 * written ("written_at_ms", the wall clock, beside "vms"); a "policy" member
 * that does not hold, or of a newer version, costs only itself: a warning
 * naming the VM and why, and the VM learns again from nothing.
 * A VM entry that is wrong on its own is dropped with a line naming it and
 * the others are reattached; bad host counters start from zero, with a line
 * saying why, and the VMs are reattached; either way the file as it was is
 * set aside (.bad).
 *
 *   {"version": 1, "written_at_ms": 1796000000000,
 *    "host": {"added_bytes": 0, "removed_bytes": 0, "add_operations": 0, ...},
 *    "vms": [{"name": "web1", "state": "running", "assigned_bytes": 805306368,
 *             "target_bytes": 805306368, "counters": {"added_bytes": 0, ...},
 *             "policy": {"version": 1, "rise_weights": [...], ...}}]}
 */
#ifndef DYNMEM_ATTACH_H
#define DYNMEM_ATTACH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "counters.h"
#include "savefile.h"
#include "vm.h"

#define ATTACH_FILE               "running.json"
#define ATTACH_VERSION            1
#define ATTACH_FILE_MAX           (128u * 1024 * 1024) /* CONFIG_VMS_MAX VMs of ~1.2 KB */
#define ATTACH_REFRESH_MS         10000
#define ATTACH_LEARNED_REFRESH_MS 60000
#define ATTACH_BYTES_LIMIT        (1ull << 62) /* sizes and counts above this are refused */

struct daemon;
struct registry_entry;

/* One VM of the file. */
struct attach_vm {
        char name[VM_NAME_MAX];
        enum vm_state state; /* VM_RUNNING or VM_STOPPING */
        uint64_t assigned_bytes;
        uint64_t target_bytes;
        struct vm_counters counters; /* the cumulative fields and pressures */
        json_t *policy;              /* what the policy learned (read when reattached), or NULL */
        char uuid[BACKEND_UUID_MAX]; /* the owner's lasting id of the VM ("uuid"), or "" */
        bool claimed;                /* given back to its VM (entries waiting for the owner) */
};

struct attach_list {
        struct attach_vm *vms;
        size_t n;
        struct balancer_counters host; /* the cumulative fields */
        bool written_at_known;         /* "written_at_ms" was a time */
        uint64_t written_at_ms;        /* when it was written, ms since the epoch */
        char host_problem[256];        /* why the host's counters are zero: bad in the file */
        struct savefile_drops dropped; /* entries left out, each with its reason */
        struct savefile_drops ignored; /* what a newer dynmemd wrote that this one ignores */
};

/*
 * Parse the file's text. Returns 0, or -EINVAL with one sentence in err and
 * nothing taken when the file as a whole is wrong (not JSON, its version,
 * its shape). A VM entry that is wrong on its own (wrong types, sizes out of
 * range, unknown states, a name listed a second time) is left out and named
 * in ret->dropped, and the others are kept: one bad entry does not cost the
 * other VMs their reattachment. Bad host counters cost only themselves: they
 * are zero, with the reason in ret->host_problem, and the VMs are kept.
 * Members this dynmemd does not know (a newer one's) are ignored and named in
 * ret->ignored; a file of a higher version than ATTACH_VERSION is -EINVAL.
 * Caller frees with attach_list_free().
 */
int attach_parse(const char *text, size_t len, struct attach_list *ret, char *err, size_t errlen);
void attach_list_free(struct attach_list *l);

/* The file's text for the daemon's VMs now (caller frees); NULL on ENOMEM. */
char *attach_format(const struct daemon *d);

/*
 * Read STATE_DIR/running.json and reattach the VMs it lists; from now on the
 * file is kept. Logs what it does. Returns 0 or -ENOMEM.
 */
int attach_init(struct daemon *d);

/*
 * With a backend that owns its VMs (libvirt) and could not be reached when
 * dynmemd started, the file's entries wait for its list instead of being
 * taken as gone, and the file is left as it was. The inventory hands each
 * VM it finds running in that list to attach_claim() (after taking it in
 * afresh): true when an entry of that name (and the same uuid, where both
 * have one) was waiting, which the VM then gets back as a reattached one
 * gets it (counters, what the policy learned, logged as a reattach).
 * attach_owner_listed(), after an inventory that read the list, drops the
 * entries left, each with a line saying why, and the file is kept again.
 * A VM whose uuid is not its entry's is another VM of that name: it gets
 * nothing of the entry, with or without waiting.
 */
bool attach_claim(struct daemon *d, struct registry_entry *e, uint64_t now);
void attach_owner_listed(struct daemon *d);

/* End of a cycle: write the file if what it holds changed (see above). */
void attach_after_cycle(struct daemon *d);

/*
 * What the policy learned of a running VM (policy: a policy_learned_json()
 * object, checked field by field) given to its policy memory, aged by the
 * time since written_at_ms on the wall clock (a clock set back, or hosts'
 * clocks a little apart: no time; on the decisions' clock, times the sim's
 * speed) beside the age it holds; *ret_aged_ms says by how much in all.
 * `where` names the source in the warnings (", carried in the VM," or "").
 * 0; -ENOENT when the VM is not balanced (nothing said); else
 * policy_learned_parse()'s error, said in one warning naming the VM, and
 * nothing given.
 */
int attach_learned_apply(struct daemon *d, struct vm *vm, const json_t *policy,
                         uint64_t written_at_ms, const char *where, uint64_t *ret_aged_ms);

/* The wall clock in ms since the epoch (0 unknown): what outlives dynmemd's own clock. */
uint64_t attach_wall_ms(void);

/* Write the file one last time (when attach_init ran) and free. d->attach may be NULL. */
void attach_free(struct daemon *d);

#endif
