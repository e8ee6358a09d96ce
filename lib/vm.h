/*
 * vm: one virtual machine as the balancer loop knows it: its settings, its
 * life-cycle state, the last thing its backend observed, what the policy
 * decided for it, and its counters. Owned by the daemon's registry or by the
 * simulator; the loop and the backends only borrow it.
 */
#ifndef DYNMEM_VM_H
#define DYNMEM_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "counters.h"
#include "policy.h"
#include "settings.h"

#define VM_NAME_MAX 64

enum vm_state {
        VM_OFF,
        VM_STARTING, /* waiting for admission or for the backend to come up */
        VM_RUNNING,
        VM_STOPPING,
        VM_CRASHED, /* the backend process died; holds no memory */
};

const char *vm_state_name(enum vm_state s);
int vm_state_parse(const char *text, enum vm_state *ret);

/*
 * A live migration its owner (libvirt) makes between two hosts, as each end
 * sees it. While it lasts the VM's size is held where it is (QEMU refuses
 * virtio-mem changes then): the source keeps it counted until it has left,
 * the destination counts it from the moment it starts to arrive
 * (docs/migration.md).
 */
enum vm_migration {
        VM_MIGRATION_NONE,
        VM_MIGRATION_OUT,        /* leaving this host: runs and holds its memory here */
        VM_MIGRATION_SWITCHOVER, /* leaving, paused for the switchover: it runs on the
                                    destination next, and holds its memory here until gone */
        VM_MIGRATION_IN,         /* arriving: memory reserved for it here, not running here yet */
};

/* NULL for none, else "outgoing", "switchover", "incoming". */
const char *vm_migration_name(enum vm_migration m);

/* Its guest runs on this host now: it holds memory, and is neither arriving nor switched over. */
bool vm_runs_here(const struct vm *vm);

/* Memory status as Hyper-V shows it. */
enum vm_status {
        VM_STATUS_UNKNOWN, /* holds memory, no demand known (yet) */
        VM_STATUS_OK,      /* target (demand + buffer) met */
        VM_STATUS_LOW,     /* demand met, buffer not */
        VM_STATUS_WARNING, /* assigned below demand */
        VM_STATUS_NONE,    /* holds no memory (off, crashed, starting): nothing to judge */
};

const char *vm_status_name(enum vm_status s);

/* What a backend saw of a VM at one moment. Every field is range-checked by the backend. */
struct vm_observation {
        bool alive;              /* the VM's process/model runs */
        uint64_t assigned_bytes; /* memory the VM holds now */
        uint64_t may_hold_bytes; /* the most it may hold before a read-back can say so (a
                                    lowered request not yet read back), 0 = assigned */
        bool demand_known;
        uint64_t demand_bytes;   /* guest demand estimate, without buffer */
        uint64_t demand_time_ms; /* when the demand was sampled */
        bool stall_known;
        double stall_fraction;        /* share of the last interval stalled, 0..1 */
        bool stall_urgent;            /* the guest reported a stall as it began, since the
                                         previous observation: the figures are current */
        uint64_t cache_evicted_bytes; /* page cache the guest evicted under a stall since the
                                         previous observation (docs/demand.md) */
        bool swap_known;
        uint64_t swap_bytes; /* room past its memory before the guest's OOM killer runs */
        bool guest_visible_known;
        uint64_t guest_visible_bytes; /* memory the guest sees (MemTotal) */
        bool guest_available_known;
        uint64_t guest_available_bytes; /* MemAvailable */
        uint64_t host_rss_bytes;        /* real host memory of the VM's process, 0 if unknown */
        bool rebooted; /* the guest restarted (a reboot, a reset) since the previous
                          observation: it boots again from its startup memory */
};

struct vm {
        char name[VM_NAME_MAX];
        struct vm_settings settings;
        enum vm_state state;
        bool start_requested; /* STARTING: waiting for admission */
        bool start_pending;   /* RUNNING: admitted, the backend is still bringing it up */
        bool start_outside;   /* ... for a start its owner makes (a libvirt hook asked):
                                 the backend's start() only takes note */
        char refusal[320];    /* why the last start was refused or failed */
        enum vm_migration migration;
        uint64_t migration_bytes; /* held while it migrates (its size pinned at that) */

        struct vm_observation obs; /* latest observation */
        uint64_t target_bytes;     /* last target asked of the backend */
        uint64_t ideal_bytes;      /* what the policy would give once memory is free */
        uint64_t lent_bytes;       /* what of target_bytes is lent above its want (policy_lend) */
        enum policy_reason reason;
        size_t balancer_slot;         /* the balancer's index for this VM */
        uint64_t balancer_generation; /* of the balancer's set it belongs to */
        struct vm_counters counters;

        void *backend_data; /* owned by the backend */
        void *owner_data;   /* owned by whoever owns the vm (registry, simulator) */
};

/* Pressure = demand / assigned x 100, or -1 when unknown. */
double vm_pressure_percent(const struct vm *vm);
enum vm_status vm_status(const struct vm *vm);

/* True while the VM holds memory (running, or stopping). */
bool vm_holds_memory(const struct vm *vm);

#endif
