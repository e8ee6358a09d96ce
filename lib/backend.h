/*
 * backend: the one small interface between the balancer loop and whatever
 * runs the VMs (the simulator's model, QEMU processes, later libvirt). The
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
#include "vm.h"

struct backend;

struct backend_vm_description {
        const char *signal;      /* where demand comes from now: "agent", "balloon", "trace" or
                                    "none"; NULL: the backend does not say */
        const char *agent_state; /* the guest agent: "disconnected", "waiting", "ready",
                                    "refused" (agent_state_name()); NULL: no agent */
        uint32_t agent_version;  /* protocol version agreed, 0 before a handshake */
        unsigned agent_caps;     /* enum agent_cap bits the agent announced */
        long pid;                /* the VM's process, 0 when none */
        char accelerator[160];   /* "kvm", "tcg (/dev/kvm: ...)"; "" when it does not apply */
        char version[32];        /* the hypervisor's version ("8.2.1"), "" when unknown */
        bool resizing;           /* asked to resize, and the requests are not met yet */
};

#define BACKEND_START_PENDING 1 /* start(): under way, see start_result() */

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
         * when it runs or why it did not start; the caller does not wait.
         */
        int (*start)(struct backend *b, struct vm *vm, uint64_t now_ms, char *err, size_t errlen);

        /*
         * How a pending start ended: 0 while still under way, 1 once the VM
         * runs, or a negative errno with one sentence in err when it did not
         * start (nothing of it runs then). NULL when start() never pends.
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
};

struct backend {
        const struct backend_ops *ops;
        void *priv;
};

#endif
