/*
 * qemu backend: each VM is one qemu-system-x86_64 process that dynmem
 * starts itself (argv built word by word, never through a shell), with a
 * QMP socket (run_dir/NAME.qmp), a pid file (run_dir/NAME.pid), a guest
 * agent port org.dynmem.agent.0 behind run_dir/NAME.agent, and a console
 * log (state_dir/NAME.console.log) that also receives QEMU's own messages.
 *
 * Memory layout: base RAM = startup; a virtio-mem device of maximum -
 * startup (absent when they are equal) plugs memory above it; a
 * virtio-balloon (deflate-on-oom, free page reporting, statistics) takes
 * the VM below startup. Assigned = balloon "actual" + virtio-mem "size",
 * both read back from QEMU, never assumed. See docs/qemu-backend.md.
 *
 * VM keys: kernel, initrd, append, disk, cpus, accel, machine, qemu,
 * qemu_args, shutdown_timeout. Without kernel, the bundled guest image in
 * DYNMEM_GUEST_IMAGE_DIR (the build's guest/ folder; the environment
 * variable of the same name overrides it) is used.
 *
 * The program that drives this backend must ignore SIGPIPE (a QEMU that
 * dies while dynmem writes to its socket would otherwise kill it).
 */
#ifndef DYNMEM_BACKEND_QEMU_H
#define DYNMEM_BACKEND_QEMU_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent.h"
#include "backend.h"
#include "config.h"
#include "vm.h"

#define QEMU_GUEST_IMAGE_ENV "DYNMEM_GUEST_IMAGE_DIR"

/*
 * Create the backend. env->base, run_dir and state_dir (copied) are needed to
 * run VMs; without them the backend can only check and configure VMs.
 */
int qemu_backend_new(const struct config *cfg, const struct backend_env *env, struct backend **ret,
                     char *err, size_t errlen);

extern const struct backend_ops qemu_backend_ops;

/* The folder the bundled guest image is taken from. */
const char *qemu_backend_image_dir(struct backend *b);

/* Who QEMU runs as (qemu_launch.h); NULL for a backend that runs no VM. */
struct qemu_identity;
const struct qemu_identity *qemu_backend_identity(struct backend *b);

/*
 * The guest agent's estimate (lib/agent.h; backend/qemu_agent.c holds the
 * connection) is used instead of the balloon statistics for
 * QEMU_AGENT_FRESH_MS after it arrives, when it knows the demand.
 */
#define QEMU_AGENT_FRESH_MS 10000

/* run_dir/NAME.agent: the unix socket behind the guest's org.dynmem.agent.0 port. */
const char *qemu_backend_agent_socket(const struct vm *vm);

/* Where the demand of a VM's latest observe() came from. */
enum qemu_signal {
        QEMU_SIGNAL_NONE,    /* neither: demand unknown, the VM keeps its size */
        QEMU_SIGNAL_AGENT,   /* the guest agent's report */
        QEMU_SIGNAL_BALLOON, /* the balloon driver's statistics */
};

/*
 * For tests: close the VM's agent connection as if it had failed; the
 * backend reconnects within QEMU_AGENT_TICK_MS (1 s). -ESRCH when the VM
 * has no agent connection.
 */
int qemu_backend_agent_drop(struct vm *vm);

/*
 * What a VM's QEMU offers and what dynmem chose from it: asked of the QEMU
 * binary before the VM starts (backend/qemu_probe.c, cached per binary),
 * then read back from the VM's own QMP. See docs/qemu-backend.md, "QEMU
 * versions".
 */
#define QEMU_MACHINE_NAME_MAX 64
#define QEMU_WHY_MAX          160

/*
 * Why dynmem does not pass -run-with user=, even to a QEMU that offers it:
 * the option drops privileges in a QEMU started with them, and the launcher
 * (qemu_launch.h) starts every QEMU without (docs/security.md).
 */
#define QEMU_RUN_WITH_UNUSED                                                                       \
        "dynmem-launcher starts QEMU unprivileged; -run-with user= is for a QEMU started as "      \
        "root, which dynmem never runs"

enum qemu_switch {
        QEMU_SWITCH_UNSET, /* not on the command line: QEMU's default (or no such property) */
        QEMU_SWITCH_OFF,
        QEMU_SWITCH_ON,
};

struct qemu_features {
        bool known;     /* chosen at start, or read back after a reattach */
        bool confirmed; /* the running VM's QMP said the same */
        unsigned version[3];
        char machine[QEMU_MACHINE_NAME_MAX]; /* the versioned machine type, e.g. pc-i440fx-10.0 */
        bool vmem;                           /* the VM has a virtio-mem device */
        enum qemu_switch unplugged_inaccessible;
        char unplugged_inaccessible_why[QEMU_WHY_MAX];
        bool dynamic_memslots; /* virtio-mem maps only the memory slots in use (QEMU >= 8.2) */
        char dynamic_memslots_why[QEMU_WHY_MAX];
        /* What this QEMU offers that the backend does not use. */
        bool run_with_user; /* -run-with user= (QEMU >= 9.1; -runas before, gone in 10.0) */
        char run_with_why[QEMU_WHY_MAX]; /* why dynmem does not use it */
        bool hv_balloon;      /* the hv-balloon device (QEMU >= 8.2 with KVM's Hyper-V SynIC) */
        bool early_migration; /* virtio-mem's x-early-migration (QEMU >= 8.0) */
};

/*
 * A VM's QEMU as the backend sees it, for tests: what describe() says
 * (signal, agent, pid, accelerator, version, resizing) plus the memory read
 * back and the agent connection's counters.
 */
struct qemu_vm_info {
        struct backend_vm_description desc;
        bool running;
        bool kvm;
        bool qmp_ready;
        bool memory_known;          /* read back from QEMU at least once */
        uint64_t startup_bytes;     /* base RAM */
        uint64_t vmem_region_bytes; /* virtio-mem device size, 0 = none */
        uint64_t balloon_actual_bytes;
        uint64_t plugged_bytes;
        uint64_t requested_bytes;
        uint64_t guest_resets;         /* guest reboots (QMP RESET) of the running instance */
        struct qemu_features features; /* what QEMU offers and what dynmem chose */
        const char *console_log;
        bool agent_connected;
        uint64_t agent_connects;     /* connections made to the agent socket by this backend */
        struct agent_counters agent; /* what the parser counted, over all connections */
};

int qemu_backend_vm_info(const struct vm *vm, struct qemu_vm_info *ret);

#endif
