/*
 * backend: the one small interface between the balancer loop and whatever
 * runs the VMs (the simulator's model, QEMU processes, libvirt domains). The
 * loop never knows which backend it drives.
 *
 * A backend never assumes a request succeeded: observe() reports what the
 * VM really holds, and the loop feeds that to the policy. Everything a
 * backend reads from a guest or from a process the guest can influence is
 * range-checked before it reaches struct vm_observation.
 *
 * Calls return 0 or a negative errno; those that can fail for a reason an
 * operator must read write one sentence into err.
 *
 * describe() says what the backend knows about a VM beyond its observation,
 * for people (`dynmem show`, /api/v1/vms/NAME: the "backend" member, see
 * docs/control-protocol.md) and tests. A backend fills what applies to it
 * and leaves the rest as the caller zeroed it.
 */
#ifndef DYNMEM_BACKEND_H
#define DYNMEM_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "settings.h"
#include "vm.h"

struct backend;

#define BACKEND_CHOICES_MAX 4

struct backend_vm_description {
        const char *signal;      /* where demand comes from now: "agent", "balloon", "trace" or
                                    "none"; NULL: the backend does not say */
        const char *agent_state; /* the guest agent: "disconnected", "waiting", "ready",
                                    "refused" (agent_state_name()); NULL: no agent */
        uint32_t agent_version;  /* protocol version agreed, 0 before a handshake */
        unsigned agent_caps;     /* enum agent_cap bits the agent announced */
        long pid;                /* the VM's process, 0 when none */
        char accelerator[256];   /* "kvm", "tcg (/dev/kvm: ...)"; "" when it does not apply */
        char version[32];        /* the hypervisor's version ("8.2.1"), "" when unknown */
        bool resizing;           /* asked to resize, and the requests are not met yet */
        char machine[64];        /* the machine type the VM runs ("pc-i440fx-10.0"), or "" */
        /* What the backend chose for the VM from what its hypervisor offers, and why. */
        struct backend_vm_choice {
                const char *name; /* "virtio-mem dynamic-memslots" */
                char value[16];   /* "on", "off", "unset" (the hypervisor's default) */
                char why[160];
        } choices[BACKEND_CHOICES_MAX];
        unsigned n_choices;
        char offers[160]; /* what the hypervisor offers that the backend does not use, or "" */
};

#define BACKEND_START_PENDING 1 /* start(): under way, see start_result() */
/*
 * Backends that own their VMs. The sim and qemu backends run the VMs
 * dynmemd defines (configuration file, dynmem create). A backend whose VMs
 * exist outside dynmemd (libvirt's domains, defined and started with virsh,
 * virt-manager or Nova) lists them instead through inventory(), and the
 * daemon keeps its registry in line with that list before every cycle
 * (daemon/inventory.c): VMs appear, change and disappear with it, and a VM
 * started or stopped by someone else is picked up or released there. VMs
 * without dynmem settings are listed as static and never resized.
 */
enum backend_vm_run {
        BACKEND_VM_OFF,     /* shut off, or not started */
        BACKEND_VM_RUNNING, /* running, paused or starting: it holds memory */
        BACKEND_VM_CRASHED, /* stopped by a crash (observe() then says not alive) */
};

#define BACKEND_UUID_MAX 40

/* The most text a VM carries of what the policy learned of it (carry_learned below). */
#define BACKEND_LEARNED_MAX 4096

/*
 * A write of it that has not begun this long after it was handed over is
 * dropped: a move waits no longer for it (the control command "carry", the
 * relief rule), and made late it could meet the move's own job on the VM.
 */
#define BACKEND_CARRY_WAIT_MS 5000

struct backend_vm_info {
        char name[VM_NAME_MAX];
        bool balanced;               /* it has dynmem settings and they are good */
        struct vm_settings settings; /* balanced: its own; static: fixed at its memory */
        enum backend_vm_run run;
        uint64_t assigned_bytes;     /* memory it holds now when running, 0 unknown */
        char problem[200];           /* why a VM with dynmem settings is not balanced, or "" */
        enum vm_migration migration; /* a live migration to or from here under way */
        bool migrated_away; /* off here because it migrated to another host (its owner says so) */
        char uuid[BACKEND_UUID_MAX]; /* the owner's lasting id of the VM (libvirt: its UUID), or ""
                                      */
};

/*
 * Where a backend that owns its VMs notes a start it makes itself, which
 * dynmemd has admitted already: run_dir/BACKEND_STARTING_DIR/NAME exists
 * (holding dynmemd's pid) while the call runs. An admission hook that the
 * owner runs during that start (libvirt's qemu hook) finds it and does not
 * ask dynmemd, which is busy making that very call.
 */
#define BACKEND_STARTING_DIR    "starting"
#define BACKEND_STARTING_MAX_MS 120000 /* an older note is stale */

struct backend_ops {
        const char *name;
        const char *const *vm_keys; /* backend keys allowed in [vm "NAME"], NULL-terminated */

        /* Check one VM's backend keys (files exist, values parse). Messages go to diag. */
        int (*check_vm)(struct backend *b, const struct config *cfg, const struct config_vm *cvm,
                        struct config_diag *diag);

        /* Take a VM's backend keys; called when a VM is defined or its config reloaded. */
        int (*configure_vm)(struct backend *b, struct vm *vm, const struct config *cfg,
                            const struct config_vm *cvm, char *err, size_t errlen);

        /*
         * Start a VM with its startup size. 0: it runs. BACKEND_START_PENDING:
         * it is coming up (holding its startup size) and start_result() says
         * when it runs or why it did not start; the caller does not wait. A
         * negative errno with one sentence in err, which does not name the VM
         * (whoever shows it does: "web4: kernel ...: No such file").
         */
        int (*start)(struct backend *b, struct vm *vm, uint64_t now_ms, char *err, size_t errlen);

        /*
         * How a pending start ended: 0 while still under way, 1 once the VM
         * runs, or a negative errno with one sentence in err when it did not
         * start (nothing of it runs then), not naming the VM, as for start().
         * NULL when start() never pends.
         */
        int (*start_result)(struct backend *b, struct vm *vm, char *err, size_t errlen);

        /* Stop a VM: gracefully, or at once with force. */
        int (*stop)(struct backend *b, struct vm *vm, bool force, uint64_t now_ms);

        /* Ask the VM to move toward target bytes (asynchronous). */
        int (*set_target)(struct backend *b, struct vm *vm, uint64_t target_bytes, uint64_t now_ms);

        /* Report what the VM holds and what its guest says now. */
        int (*observe)(struct backend *b, struct vm *vm, uint64_t now_ms,
                       struct vm_observation *ret);

        /* Largest maximum the running VM can honour (device sizes fixed at start). */
        uint64_t (*max_honourable)(struct backend *b, const struct vm *vm);

        /* Fill what the backend knows about the VM (ret comes zeroed); any state. */
        void (*describe)(struct backend *b, const struct vm *vm,
                         struct backend_vm_description *ret);

        /* Reattach to a VM left running by an earlier daemon; -ENOENT when it is gone. */
        int (*reattach)(struct backend *b, struct vm *vm, uint64_t now_ms);

        /* Release a VM's backend data (the VM is off or being deleted). */
        void (*forget_vm)(struct backend *b, struct vm *vm);

        void (*destroy)(struct backend *b);

        /* ---- backends that own their VMs (see above); NULL for the others ---- */

        /*
         * Take in what changed (events, a lost connection, fresh statistics)
         * and list the VMs. Called before every cycle; *ret stays valid until
         * the next call. Returns a generation that changes whenever the list
         * does, so the caller can skip an unchanged list.
         */
        uint64_t (*inventory)(struct backend *b, uint64_t now_ms,
                              const struct backend_vm_info **ret, size_t *ret_n);

        /*
         * Keep a VM's new settings where the VM's owner keeps them (libvirt:
         * the domain's metadata, live and persistent); the caller checked the
         * rules. 0, or a negative errno with a sentence in err.
         */
        int (*store_settings)(struct backend *b, struct vm *vm, const struct vm_settings *s,
                              char *err, size_t errlen);

        /*
         * Make a shut-off VM dynamic with these settings (those not in
         * `given` take the defaults of settings_complete(); startup is the
         * VM's own unless given), or again when it is (re-sized); disable
         * makes it static again. -EBUSY while it runs, -ENOENT when there is
         * no such VM, other negative errnos; a sentence in err.
         */
        int (*enable)(struct backend *b, const char *name, const struct vm_settings *s,
                      unsigned given, char *err, size_t errlen);
        int (*disable)(struct backend *b, const char *name, char *err, size_t errlen);

        /* Who runs the VMs, for replies ("libvirt at qemu:///system"). */
        const char *(*owner)(struct backend *b);

        /*
         * True, with one sentence in buf, while the owner cannot be reached (the
         * VMs keep their sizes meanwhile); false while it can. NULL: always can.
         */
        bool (*unreachable)(struct backend *b, char *buf, size_t len);

        /*
         * The owner is starting the VM and waits for dynmemd's admission
         * (vm->start_outside; libvirt's prepare hook, which runs with the
         * domain locked): until its start is seen, the backend must not call
         * into the owner about it, or the loop would wait for itself. waiting
         * false: the admission is decided (start() was called if admitted).
         */
        void (*admitting)(struct backend *b, struct vm *vm, bool waiting);

        /*
         * A VM is about to arrive by live migration from another host (the
         * owner's admission hook on this host says so before the owner creates
         * it), holding `bytes`, with settings s: list it as arriving (migration
         * VM_MIGRATION_IN, off until start() is called for it) until the owner
         * shows it, or for a bounded time. -EEXIST when a VM of that name runs
         * here; other negative errnos; a sentence in err. NULL: no migration.
         */
        int (*expect_incoming)(struct backend *b, const char *name, const struct vm_settings *s,
                               uint64_t bytes, char *err, size_t errlen);

        /*
         * What the policy learned of a running VM travels with it when its
         * owner moves it to another host (libvirt: an element of the live
         * domain's metadata, which a live migration takes along; never the
         * persistent definition). carry_learned() keeps text (at most
         * BACKEND_LEARNED_MAX) in the running VM without waiting: the write
         * is made off the loop, and not while the VM migrates or another job
         * of its owner runs on it. 0 when the write is on its way; -EBUSY
         * (migrating, a job, the last write not made yet), -EAGAIN (the owner
         * cannot be reached or is not answering), -ENOENT (not running here),
         * -EFBIG, -ENOMEM. carry_pending(): a write handed over is not made
         * yet; once it is over (false), *ret_error (when not NULL) says how
         * the last one went: 0 made, -EIO the owner refused it, -ECANCELED
         * taken back (the VM stopped or restarted first), -ENOTCONN taken
         * back (the connection to the owner was lost), -ETIMEDOUT dropped
         * (not begun within BACKEND_CARRY_WAIT_MS), -ESHUTDOWN taken back
         * (dynmemd stops), -ENOENT no such VM. When a write handed over is
         * over, the backend calls its environment's carried() (below).
         * carried_learned(): the text the VM holds, as the owner last
         * showed it (caller frees *ret): 0; -ENOENT when it holds none;
         * -EFBIG when it holds more than BACKEND_LEARNED_MAX. The text is
         * whatever anyone with access to the owner wrote: the caller checks
         * it. NULL: this backend's VMs do not travel.
         */
        int (*carry_learned)(struct backend *b, struct vm *vm, const char *text);
        bool (*carry_pending)(struct backend *b, const struct vm *vm, int *ret_error);
        int (*carried_learned)(struct backend *b, const struct vm *vm, char **ret);
};

struct event_base;

/* What a backend gets from the program that creates it. */
struct backend_env {
        struct event_base *base; /* the daemon's libevent loop; NULL in the simulator */
        const char *run_dir;     /* sockets, pid files (e.g. /run/dynmem) */
        const char *state_dir;   /* logs and state that survive a restart (e.g. /var/lib/dynmem) */
        /* Called by asynchronous backends when something changed that the loop
         * should look at soon (a VM died, a guest reported stall). May be NULL. */
        void (*wakeup)(void *userdata);
        void *wakeup_userdata;
        /* Called (on the loop) when a write carry_learned() handed over is
         * over, however it went: who waits for it is answered now. With
         * wakeup_userdata. May be NULL. */
        void (*carried)(void *userdata);
};

struct backend {
        const struct backend_ops *ops;
        void *priv;
};

#endif
