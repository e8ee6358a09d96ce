/*
 * qemu_int: what the QEMU backend's files (and its tests) share and nothing
 * else includes: a VM's parsed keys (qemu_config.c), the QEMU command line
 * (qemu_argv.c), the QEMU process (qemu_proc.c), the pure memory
 * arithmetic that turns a target into balloon and virtio-mem requests
 * (qemu_mem.c), the guest agent's connection (qemu_agent.c), and what a
 * QEMU binary offers (qemu_caps.c, qemu_probe.c).
 * backend/qemu.c ties them to the backend interface.
 */
#ifndef DYNMEM_QEMU_INT_H
#define DYNMEM_QEMU_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "log.h"
#include "mono.h"
#include "qemu.h"
#include "settings.h"

/* ---- ids of what dynmem owns inside QEMU ---- */
#define QEMU_ID_MEMDEV    "dm-mem-ram"
#define QEMU_ID_VMEM      "dm-vmem"
#define QEMU_ID_BALLOON   "dm-balloon"
#define QEMU_ID_SERIAL    "dm-serial"
#define QEMU_ID_AGENT     "dm-agent"
#define QEMU_ID_QMP       "dm-qmp"
#define QEMU_ID_CONSOLE   "dm-console"
#define QEMU_AGENT_PORT   "org.dynmem.agent.0"
#define QEMU_PATH_VMEM    "/machine/peripheral/" QEMU_ID_VMEM
#define QEMU_PATH_BALLOON "/machine/peripheral/" QEMU_ID_BALLOON

#define QEMU_DEFAULT_BINARY   "qemu-system-x86_64"
#define QEMU_DEFAULT_MACHINE  "pc"
#define QEMU_ARGS_MAX         256 /* words in qemu_args */
#define QEMU_CPUS_MAX         256
#define QEMU_VMEM_BLOCK_MIN   (2 * MIB) /* virtio-mem's smallest block on x86 */
#define QEMU_SHUTDOWN_DEFAULT (30 * MSEC_PER_SEC)

/* ---- a VM's keys (qemu_config.c) ---- */

enum qemu_accel {
        QEMU_ACCEL_AUTO,
        QEMU_ACCEL_KVM,
        QEMU_ACCEL_TCG,
};

struct qemu_vm_config {
        char *qemu;         /* binary: a path, or a name looked up in PATH */
        char *kernel;       /* absolute paths */
        char *initrd;       /* NULL: none */
        char *append;       /* full kernel command line, NULL: none */
        char *disk;         /* NULL: none */
        bool bundled_image; /* kernel and initrd are the bundled guest image */
        unsigned cpus;
        enum qemu_accel accel;
        char *machine; /* machine type or alias (pc, q35, pc-i440fx-8.0 ...) */
        char **extra;  /* qemu_args split into words, NULL-terminated */
        size_t n_extra;
        uint64_t shutdown_timeout_ms;
};

extern const char *const qemu_vm_keys[];

/*
 * Parse and check one VM's keys. Paths are made absolute against the
 * config file's folder; kernel and initrd default to image_dir/vmlinuz and
 * image_dir/initrd.img, and the bundled image's own command line
 * (image_dir/cmdline) goes before `append`. Every problem goes to diag as
 * "FILE:LINE: vm "NAME": ..."; with check_files, missing files are problems
 * too. Returns 0 or -EINVAL; *ret is filled only on success.
 */
int qemu_config_parse(const struct config *cfg, const struct config_vm *cvm, const char *image_dir,
                      bool check_files, struct qemu_vm_config *ret, struct config_diag *diag);
void qemu_config_free(struct qemu_vm_config *c);

/*
 * Split qemu_args into words like a shell would without running one:
 * blanks separate words, '...' and "..." quote, backslash escapes one
 * character (not inside '...'). No expansion of any kind. Returns 0, or
 * -EINVAL with a reason in err (unterminated quote, too many words).
 */
int qemu_args_split(const char *text, char ***ret_words, size_t *ret_n, char *err, size_t errlen);

/*
 * Refuse words that would touch memory or what dynmem owns: -m, memory
 * backends, virtio-mem, balloons, monitors/QMP, ids and chardevs named
 * dm-*, the agent port, -daemonize, -pidfile, -serial... Returns 0 or
 * -EPERM with the reason in err.
 */
int qemu_args_check(char *const *words, size_t n, char *err, size_t errlen);

void qemu_strv_free(char **v);

/* ---- the command line (qemu_argv.c) ---- */

struct qemu_layout {
        uint64_t startup; /* base RAM: what firmware sees */
        uint64_t region;  /* virtio-mem memory it may plug: maximum - startup, 0 = no device */
        uint64_t block;   /* virtio-mem block size */
        uint64_t first;   /* plugged from the start (requested-size at start): 0 or one block */
};

struct qemu_paths {
        char *qmp;     /* run_dir/NAME.qmp */
        char *agent;   /* run_dir/NAME.agent */
        char *pid;     /* run_dir/NAME.pid */
        char *probe;   /* run_dir/NAME.probe: QMP of the QEMU asked what it offers */
        char *console; /* state_dir/NAME.console.log */
};

int qemu_paths_make(const char *run_dir, const char *state_dir, const char *name,
                    struct qemu_paths *ret, char *err, size_t errlen);

/*
 * What dynmemd opens for QEMU and hands it (QEMU opens none of these
 * itself, and can write nothing of dynmemd's): the QMP and agent sockets,
 * bound and listening; the console log; kernel, initrd and disk. fds[i] is
 * descriptor QEMU_HANDOVER_FIRST + i in QEMU; the other fields are those
 * numbers, -1 for what this VM does not have.
 */
#define QEMU_HANDOVER_FIRST  3
#define QEMU_DISK_LAYERS_MAX 4 /* the disk and up to 3 backing files */
#define QEMU_HANDOVER_MAX    (5 + 1 + QEMU_DISK_LAYERS_MAX)
#define QEMU_FDSET_CONSOLE   1 /* -add-fd sets: the console log; disk layer i in DISK + i */
#define QEMU_FDSET_DISK      2

/*
 * Disk layer 0 is the disk itself, handed open read-write (disk) and
 * read-only (disk_ro): QEMU's file driver reopens an image with the access
 * mode its users need at that moment (read-only while a qcow2 is probed or
 * no device is attached yet), and an fdset only yields a descriptor of that
 * exact mode. Backing files are read-only; layer[i].qcow2 says its format.
 */
struct qemu_disk_layer {
        char *path; /* owned */
        bool qcow2;
        int fd; /* QEMU's number; -1: none */
};

struct qemu_handover {
        int fds[QEMU_HANDOVER_MAX];
        size_t n;
        int qmp, agent, console, kernel, initrd, disk, disk_ro;
        struct qemu_disk_layer layer[QEMU_DISK_LAYERS_MAX]; /* layer[0].fd == disk */
        size_t n_layers;
};

/* Does the disk key name a qcow2 image (by its .qcow2 ending, never by content)? */
bool qemu_disk_is_qcow2(const char *path);

/*
 * A file QEMU is handed (or dynmemd reads for it), opened with flags without
 * ever waiting in open(): O_NONBLOCK for the open, so that a FIFO or a device
 * put in the file's place does not hold up the event loop, then refused
 * unless it is a regular file (or a block device when block_ok), then back
 * to blocking I/O, as QEMU expects of it. O_CLOEXEC and O_NOCTTY are added.
 * The descriptor, or -errno with what, path and the reason in err (-EINVAL:
 * not a file of that kind; nothing left open). qemu_handover.c.
 */
int qemu_open_file(const char *what, const char *path, int flags, bool block_ok, char *err,
                   size_t errlen);

/*
 * The VM's console log at path, for QEMU and dynmem to append to: created
 * (QEMU_CONSOLE_LOG_MODE) when missing, never through a symlink, and opened
 * as qemu_open_file() does, so that a FIFO or device there is refused
 * ("console log PATH is a FIFO, not a regular file") rather than waited on.
 */
#define QEMU_CONSOLE_LOG_MODE 0640
int qemu_open_console_log(const char *path, char *err, size_t errlen);

/* The disk layer at path as qemu_open_file("disk", ...), a block device allowed. */
int qemu_disk_open(const char *path, int flags, char *err, size_t errlen);

/*
 * The layer under layer n_layers - 1 of disk (path, a qcow2 image open as
 * fd), as its backing file names it (qemu_disk.c): 0 when it has none, else 1
 * with its path (owned) and format in *next and a read-only descriptor of it
 * in *ret_fd. -errno with a sentence in err for what dynmemd cannot hand
 * over: not qcow2, a corrupt header, an external data file, a protocol or
 * json: name, a backing format not recorded, a backing file that is not a
 * regular file, more than QEMU_DISK_LAYERS_MAX layers (-ELOOP, which also
 * ends a chain that loops).
 */
int qemu_disk_open_backing(const char *disk, size_t n_layers, int fd, const char *path,
                           struct qemu_disk_layer *next, int *ret_fd, char *err, size_t errlen);

/* Can the disk's layers be handed over (checked when the config is read)? 0 or -errno, err. */
int qemu_disk_check(const char *disk, char *err, size_t errlen);
void qemu_paths_free(struct qemu_paths *p);

/* The memory layout for settings (startup, maximum, block; dynamic VMs only grow). */
void qemu_layout_from_settings(const struct vm_settings *s, struct qemu_layout *ret);

struct qemu_launch;

#define QEMU_ACCEL_WHY_MAX 256 /* the phrase below, with a user name and a device's mode */

/*
 * Choose KVM or TCG for a QEMU that runs as id, whom the launcher ql
 * becomes; why gets a phrase for the log ("tcg (auto: no kvm_intel or
 * kvm_amd module)"). -ENODEV when kvm is demanded but does not work here.
 */
int qemu_accel_choose(enum qemu_accel accel, struct qemu_launch *ql, const struct qemu_identity *id,
                      bool *ret_kvm, char *why, size_t len);

/*
 * May a QEMU running as id open the KVM device at path (/dev/kvm) read-write?
 * When QEMU is dynmemd's own user, dynmemd opens it (ql is not used and may
 * be NULL); otherwise the launcher ql asks as that user
 * (qemu_launch_access: the kernel's answer, ACLs and security modules
 * included). why names the user checked and, when it may not, the errno.
 */
bool qemu_kvm_usable_by(const char *path, struct qemu_launch *ql, const struct qemu_identity *id,
                        char *why, size_t len);

/*
 * The `-chardev` word of the QMP socket as dynmemd wrote it before QEMU got
 * its sockets handed over: a QEMU an older dynmemd started is recognised by
 * it in /proc/PID/cmdline.
 */
char *qemu_qmp_chardev_arg(const char *qmp_path);

/* The `-name` word: with the pid file's start time, it recognises this VM's QEMU. */
char *qemu_name_arg(const char *name);

/*
 * The whole argv (NULL-terminated, free with qemu_strv_free). The paths
 * only name what h hands over (in -add-fd's opaque strings, for people
 * reading `ps`). The machine type and virtio-mem's options are those of f
 * (qemu_caps_choose()).
 */
int qemu_argv_build(const char *name, const struct qemu_vm_config *c, const struct qemu_layout *l,
                    const struct qemu_paths *p, const struct qemu_handover *h, bool kvm,
                    const struct qemu_features *f, char ***ret_argv);

/*
 * The argv that asks a QEMU binary what it offers: no machine, QMP on the
 * listening socket it is handed as descriptor qmp_fd.
 */
int qemu_argv_probe(const char *binary, int qmp_fd, char ***ret_argv);

struct qemu_identity;

/*
 * Open and bind what QEMU is handed for this start (qemu_handover.c); the
 * kernel, initrd and backing files must be readable by id: dynmemd's own
 * open says so when QEMU is dynmemd's user, else the launcher ql asks as id
 * (qemu_launch_access_fd: ACLs and security modules count; ql may be NULL
 * when id is not switched). 0, or -errno with the file and the reason in
 * err (nothing left open or bound).
 */
int qemu_handover_open(const struct qemu_vm_config *c, const struct qemu_paths *p, int log_fd,
                       const struct qemu_identity *id, struct qemu_launch *ql,
                       struct qemu_handover *h, char *err, size_t errlen);

/* Close what was opened (log_fd, the caller's, stays). */
void qemu_handover_close(struct qemu_handover *h, int log_fd);

/* A unix socket bound at path (replacing what was there), mode 0600, listening; or -errno. */
int qemu_handover_listen(const char *path);

struct stat;

/*
 * Would the kernel give a process of id (its uid, gid and groups) the access
 * want (R_OK, W_OK or both) to a file with this owner, group and mode? POSIX
 * ACLs and security modules are not read: only where the kernel cannot be
 * asked as id (qemu_launch_access_fd's -ENOSYS, before Linux 5.8). id is
 * taken as it is, switched or not.
 */
bool qemu_identity_allows(const struct stat *st, const struct qemu_identity *id, int want);

/* ---- what a QEMU binary offers (qemu_caps.c: pure; qemu_probe.c: asking it) ---- */

#define QEMU_MACHINES_MAX 1024 /* machine types read from query-machines */

struct json_t;
struct qemu_backend;

struct qemu_machine_type {
        char name[QEMU_MACHINE_NAME_MAX];  /* pc-i440fx-10.0 */
        char alias[QEMU_MACHINE_NAME_MAX]; /* pc, or "" */
};

struct qemu_caps {
        unsigned version[3];
        bool virtio_mem;             /* the virtio-mem-pci device */
        bool dynamic_memslots;       /* ... its dynamic-memslots property (QEMU >= 8.2) */
        bool unplugged_inaccessible; /* ... its unplugged-inaccessible property (QEMU >= 7.0) */
        bool early_migration;        /* ... its x-early-migration property (QEMU >= 8.0) */
        bool run_with_user;          /* -run-with user= (QEMU >= 9.1) */
        bool hv_balloon;             /* the hv-balloon device */
        struct qemu_machine_type *machines;
        size_t n_machines;
};

void qemu_caps_free(struct qemu_caps *c);

/*
 * Fill c from one QMP reply's "return" (NULL when QEMU refused the command,
 * which for the optional ones means "not offered"). Every name and number is
 * checked; a reply of the wrong shape is -EPROTO and changes nothing.
 */
int qemu_caps_read_version(struct qemu_caps *c, const struct json_t *ret); /* query-version */
int qemu_caps_read_vmem(struct qemu_caps *c, const struct json_t *ret); /* device-list-properties */
int qemu_caps_read_run_with(struct qemu_caps *c,
                            const struct json_t *ret); /* query-command-line-options */
int qemu_caps_read_machines(struct qemu_caps *c, const struct json_t *ret); /* query-machines */
int qemu_caps_read_hv_balloon(struct qemu_caps *c, const struct json_t *ret);

/*
 * Does this QEMU take -run-with user= to drop privileges (QEMU >= 9.1)?
 * Older ones take -runas, which QEMU 10.0 no longer knows.
 */
bool qemu_caps_run_with_user(const struct qemu_caps *c);

/*
 * Say in f->run_with_why why -run-with user= is not used, from whether QEMU
 * f->version offers it (f->run_with_user); !known: what QEMU offers is not
 * known (a VM found running).
 */
void qemu_features_choose_run_with(struct qemu_features *f, bool known);

/* "pc-i440fx-8.1" and "pc-q35-10.0": true and the version; anything else false. */
bool qemu_machine_version(const char *machine, unsigned *ret_major, unsigned *ret_minor);

/*
 * Choose for a VM whose machine key is `machine` (a type or an alias) and
 * that has a virtio-mem device when vmem: the versioned machine type,
 * unplugged-inaccessible as that machine type defaults to it (on for x86
 * types 8.1 and later, off before: guests without the feature keep working),
 * dynamic-memslots on where QEMU has it and unplugged-inaccessible is on
 * (QEMU refuses it otherwise). -EINVAL with the reason in err when QEMU has
 * no such machine type or it is not a pc or q35 type.
 */
int qemu_caps_choose(const struct qemu_caps *c, const char *machine, bool vmem,
                     struct qemu_features *ret, char *err, size_t errlen);

/*
 * What else the binary offers that the backend does not use, for people:
 * "hv-balloon, virtio-mem x-early-migration" ("" none).
 */
void qemu_features_offers(const struct qemu_features *f, char *buf, size_t len);

/*
 * For describe(): the machine type, virtio-mem's options and -run-with user=
 * with why, what is offered besides.
 */
void qemu_features_to_description(const struct qemu_features *f,
                                  struct backend_vm_description *ret);

/* One line for the log: "QEMU 10.0.2, machine pc-i440fx-10.0, virtio-mem ...". */
void qemu_features_describe(const struct qemu_features *f, char *buf, size_t len);

/*
 * Asking a QEMU binary what it offers (qemu_probe.c), in the loop: the
 * launcher runs it as the QEMU user with no guest (-machine none) and QMP
 * on a socket bound at qmp_path that it is handed; the loop sends the
 * questions, reads the answers (qemu_caps.c) and quits it. The answer is
 * kept per binary (path, device, inode, size, mtime) for the backend's life.
 */
struct qemu_probe;

/*
 * The probe's end: caps (kept in the cache) or NULL and why, in one sentence.
 * again: it failed without QEMU's own word (it did not answer within
 * QEMU_START_WAIT_MS, or QMP ended before every answer came and QEMU did
 * not exit) and was killed, so asking once more may answer.
 */
typedef void (*qemu_probe_done_fn)(const struct qemu_caps *caps, const char *why, bool again,
                                   void *userdata);

/* What binary offered when it was last asked, if it is still the same file; or NULL. */
const struct qemu_caps *qemu_probe_cached(struct qemu_backend *qb, const char *binary);

/*
 * Start asking binary (a path). Its messages go to log_fd (the console log
 * at console, whose last line after this point is the reason when it
 * exits). done() is called once, from the loop, unless the probe is
 * cancelled first; it must not cancel. 0 with *ret, or -errno with err.
 * A QEMU that has not answered within QEMU_START_WAIT_MS is killed.
 */
int qemu_probe_start(struct qemu_backend *qb, const char *binary, const char *qmp_path,
                     const char *console, int log_fd, qemu_probe_done_fn done, void *userdata,
                     struct qemu_probe **ret, char *err, size_t errlen);

/* Stop waiting for it (done() is not called); its QEMU is killed and reaped. */
void qemu_probe_cancel(struct qemu_probe *p);

/* Kill the probes under way and forget what was asked (the backend's end). */
void qemu_probe_cache_free(struct qemu_backend *qb);

/* ---- the process (qemu_proc.c) ---- */

/*
 * Resolve a binary name through PATH's absolute folders (or check a path):
 * 0 with an absolute path for a name, or -ENOENT/-EACCES.
 */
int qemu_proc_find_binary(const char *name, char **ret_path);

/* 1 when the process behind pidfd has exited (reaped if it was our child), 0 if alive. */
int qemu_proc_exited(int pidfd, int *ret_status);

/*
 * The pid file: "PID STARTTIME", written by dynmemd (the start time, from
 * /proc/PID/stat, tells the process from a later one with the same pid); a
 * QEMU of an older dynmemd wrote "PID" alone, read with *ret_start 0.
 */
int qemu_proc_read_pidfile(const char *path, pid_t *ret_pid, uint64_t *ret_start);
int qemu_proc_write_pidfile(const char *path, pid_t pid, uint64_t start);

/* The process's start time (clock ticks after boot, /proc/PID/stat field 22). */
int qemu_proc_start_time(pid_t pid, uint64_t *ret);

/* 0 when /proc/PID/cmdline has the exact word, -ENOENT when not, other errors. */
int qemu_proc_cmdline_has(pid_t pid, const char *word);

int qemu_proc_rss(pid_t pid, uint64_t *ret_bytes);

/* The last non-empty line of path after offset `from`, cleaned for a message. */
int qemu_proc_log_last_line(const char *path, uint64_t from, char *buf, size_t len);

/* Keep a console log under cap bytes: copy its tail to PATH.old and empty it. */
int qemu_proc_log_trim(const char *path, uint64_t cap);

/* ---- memory arithmetic (qemu_mem.c), pure ---- */

#define QEMU_PLUG_STALL_MS   30000 /* a plug that does not move for this long is refused */
#define QEMU_PLUG_RETRY_MS   60000 /* then plugging pauses this long */
#define QEMU_UNPLUG_STALL_MS 10000 /* an unplug stuck this long is made up by the balloon */
#define QEMU_BALLOON_FLOOR   (64 * MIB)
/*
 * How long what is read back may lag the devices: QEMU sends BALLOON_CHANGE
 * and MEMORY_DEVICE_SIZE_CHANGE at most once a second each (the figure they
 * carry may be up to a second old), then libvirt or the next poll delivers
 * them. For this long after a lower request, the VM may still hold what the
 * previous one let it take (qemu_mem_may_hold).
 */
#define QEMU_READBACK_LAG_MS 3000

/*
 * What lowered requests let a VM take, each for QEMU_READBACK_LAG_MS after its
 * lowering: one slot per second of the window, so that a request lowered again
 * and again (a target that moves by a block each decision) never keeps an old
 * high alive past its own window.
 */
#define QEMU_HIGH_SLOTS (QEMU_READBACK_LAG_MS / 1000 + 1)
struct qemu_highs {
        uint64_t bytes[QEMU_HIGH_SLOTS]; /* the most the slot's second's lowerings let it take */
        uint64_t until_ms[QEMU_HIGH_SLOTS];
        size_t newest; /* the slot of the last lowering */
};

struct qemu_mem {
        struct qemu_layout layout;
        bool known;         /* read back at least once */
        uint64_t actual;    /* balloon "actual": base RAM minus the balloon */
        uint64_t plugged;   /* virtio-mem "size" */
        uint64_t requested; /* virtio-mem "requested-size" */
        uint64_t target;    /* what set_target asked, clamped and rounded */
        bool balloon_sent;
        uint64_t balloon_value;  /* last balloon target sent */
        uint64_t requested_sent; /* last requested-size sent */
        bool requested_in_flight;
        uint64_t plugged_moved_ms;     /* when plugged last changed or a change was asked */
        uint64_t plug_paused_until_ms; /* plugging refused by the guest: wait */
        bool actual_stale;             /* since a reset QEMU still says stale_actual ... */
        uint64_t stale_actual;         /* ... for a balloon the new boot has not filled */
        /* Lowered requests: what the previous ones let the VM take, until read back. */
        struct qemu_highs plugged_high, actual_high;
};

struct qemu_mem_plan {
        bool set_balloon;
        uint64_t balloon_value;
        bool set_requested;
        uint64_t requested;
        bool balloon_first;  /* growing: deflate, then plug */
        bool plug_refused;   /* the guest stopped plugging: requested cut back */
        bool unplug_stalled; /* the balloon makes up for blocks that do not unplug */
};

void qemu_mem_init(struct qemu_mem *m, const struct qemu_layout *l, bool known);

/* Memory the VM holds: min(actual, startup) + plugged, never above startup + region. */
uint64_t qemu_mem_assigned(const struct qemu_mem *m);

/*
 * The most the VM may hold before the next read-back can say so: what it
 * holds, what its requests let it take (a deflating balloon, a plug under
 * way), and for QEMU_READBACK_LAG_MS after a request was lowered, what the
 * previous request let it take (the guest may have plugged up to it just
 * before, and the read-back not yet show it). Never below qemu_mem_assigned.
 */
uint64_t qemu_mem_may_hold(const struct qemu_mem *m, uint64_t now_ms);

/* Every request sent was met: virtio-mem plugged what was asked, the balloon is where sent. */
bool qemu_mem_settled(const struct qemu_mem *m);

/* Round and clamp a target to what the layout can hold. */
uint64_t qemu_mem_clamp_target(const struct qemu_mem *m, uint64_t target);

/* Record a read-back (values already range-checked). */
void qemu_mem_readback(struct qemu_mem *m, uint64_t actual, uint64_t plugged, uint64_t requested,
                       uint64_t now_ms);

/*
 * The machine was reset: virtio-mem is empty (QEMU unplugs on a reset) and so
 * is the balloon, which the new kernel fills again only up to the target. QEMU
 * does not clear the balloon's "actual" on a reset, and a guest that inflates
 * nothing never writes it: until the value moves, the base RAM counts as the
 * guest's (the figure errs toward more, never toward less).
 */
void qemu_mem_reset(struct qemu_mem *m, uint64_t now_ms);

/* What to ask of QEMU now to move toward m->target; records what it plans as sent. */
void qemu_mem_plan(struct qemu_mem *m, uint64_t now_ms, struct qemu_mem_plan *ret);

#define QEMU_RESERVE_SETTLE_MS 2000 /* virtio-mem still this long before MemTotal counts */

/*
 * What the guest's kernel keeps out of MemTotal (its image, the memory map of
 * its boot memory, firmware and crash-kernel reservations): startup + plugged
 * - MemTotal, from a MemTotal sampled at sampled_ms. Only when virtio-mem had
 * been still for QEMU_RESERVE_SETTLE_MS by then (memory plugged but not yet
 * online would count as kept) and the figure is below half the startup size.
 * The balloon does not enter: with deflate-on-oom its pages stay in MemTotal.
 * True and *ret set, or false.
 */
bool qemu_mem_guest_reserve(const struct qemu_mem *m, uint64_t mem_total, uint64_t sampled_ms,
                            uint64_t *ret);

/*
 * How long a new instance's demand waits, at most, for the reservation's first
 * measurement (qemu_signal.c): it is unknown meanwhile. Most take one settle
 * period and a figure after it; a guest whose virtio-mem never settles (no
 * driver for it) or whose MemTotal never gives a figure has its demand in its
 * own terms after this.
 */
#define QEMU_RESERVE_WAIT_MS 10000

/* ---- the guest agent's connection (qemu_agent.c) ---- */

#define QEMU_AGENT_TICK_MS  1000        /* connect attempts and due output, this often */
#define QEMU_AGENT_READ_MAX (64 * 1024) /* bytes taken from the socket per turn of the loop */
/*
 * Extra cycles one VM's stall reports may ask for: QEMU_WAKE_RATE a second,
 * bursts of QEMU_WAKE_BURST. The daemon's own budget (daemon/wake.h) is the
 * host's; this share keeps one guest that reports stalls without end from
 * using it all up, so another guest's stall still wakes the balancer at once.
 */
#define QEMU_WAKE_RATE  2
#define QEMU_WAKE_BURST 2

struct event_base;
struct qemu_agent;

struct qemu_agent_hooks {
        /*
         * A report was accepted and the estimate is fresh. When e->urgent_reports grew,
         * the guest started to stall: the owner runs a cycle now.
         */
        void (*report)(void *userdata, const struct agent_estimate *e);
};

struct qemu_agent_stats {
        bool connected;
        uint64_t connects;         /* connections made (or adopted) */
        uint64_t disconnects;      /* closed by EOF, an error or qemu_agent_drop() */
        uint64_t connect_failures; /* attempts that did not connect */
        uint64_t read, written;    /* bytes */
        uint64_t read_calls;       /* read callbacks */
        uint64_t largest_read;     /* most bytes one read callback took (<= QEMU_AGENT_READ_MAX) */
};

/*
 * A VM's agent connection: a lib/agent.c parser with limit_bytes (the most
 * memory the VM can have) and a timer that connects to path every
 * QEMU_AGENT_TICK_MS while not connected (the first attempt one tick after
 * this call, or at qemu_agent_connect_now()) and writes the parser's output.
 * Hooks run from the event loop; name is the VM's, for messages.
 */
int qemu_agent_new(struct event_base *base, const char *name, const char *path,
                   uint64_t limit_bytes, const struct qemu_agent_hooks *hooks, void *userdata,
                   struct qemu_agent **ret);

/* Try to connect now if not connected. */
void qemu_agent_connect_now(struct qemu_agent *qa);

/* Take fd (a connected stream socket; closed on failure) as the connection. */
int qemu_agent_adopt(struct qemu_agent *qa, int fd);

/* Close the connection as if it had failed; the next tick reconnects (tests). */
void qemu_agent_drop(struct qemu_agent *qa);

/* Accepts NULL; may be called from a hook (then freed when the callback returns). */
void qemu_agent_free(struct qemu_agent *qa);

void qemu_agent_stats(const struct qemu_agent *qa, struct qemu_agent_stats *ret);
const struct agent *qemu_agent_parser(const struct qemu_agent *qa);

/* ---- per-VM state (qemu.c: life cycle; qemu_monitor.c: QMP) ---- */

#define QEMU_POLL_MS          1000  /* read back memory and statistics */
#define QEMU_POLL_BUSY_MS     200   /* ... while a resize is under way */
#define QEMU_BUSY_MS          30000 /* how long after a request to look that often */
#define QEMU_RECONNECT_MS     1000  /* QMP lost while QEMU runs: try again */
#define QEMU_START_RETRY_MS   20    /* ... while it starts and has no socket yet */
#define QEMU_START_WAIT_MS    20000 /* QEMU must answer on QMP within this of its start */
#define QEMU_STATS_INTERVAL_S 1     /* guest-stats-polling-interval */
#define QEMU_STATS_FRESH_MS   10000 /* balloon statistics older than this are unknown */

struct event;
struct qmp;
struct vm;
struct qemu_backend;

struct qemu_stats {
        bool known;
        uint64_t total;       /* stat-total-memory (MemTotal) */
        uint64_t available;   /* stat-available-memory (MemAvailable) */
        uint64_t last_update; /* QEMU's "last-update" */
        uint64_t sampled_ms;  /* monotonic time last-update last moved */
};

/* One round of read-backs: the replies fill this, the last one applies it. */
struct qemu_batch {
        unsigned left;
        bool balloon_ok, vmem_ok, summary_ok;
        uint64_t actual, plugged, requested, region, block, base;
};

/* What the running QEMU says it is (qemu_confirm.c). */
struct qemu_seen {
        unsigned left; /* replies still to come */
        unsigned version[3];
        char machine[QEMU_MACHINE_NAME_MAX];
        enum qemu_switch inaccessible;
        bool memslots;
};

/* How far a stop went (qemu.c). */
enum stop_phase { STOP_NONE, STOP_POWERDOWN, STOP_QUIT, STOP_KILL };

/* A start under way: QEMU spawned, QMP not answered yet (qemu_start.c). */
enum qemu_start_state {
        QEMU_START_NONE,
        QEMU_START_PENDING,
        QEMU_START_DONE,   /* QMP answered: the machine exists */
        QEMU_START_FAILED, /* nothing of it runs; start_error says why */
};

/* ---- where demand comes from (qemu_signal.c), pure ---- */

struct qemu_guest_signal {
        bool agent_have;
        struct agent_estimate agent; /* the latest fresh one; report_ms is monotonic */
        uint64_t urgent_observed;    /* agent.urgent_reports at the last observation */
        uint64_t evicted_observed;   /* agent.evicted_total_bytes at the last observation */
        struct qemu_stats stats;     /* the balloon's statistics */
        bool stale_pending;          /* after a reboot: the first statistics read are ... */
        bool stale_known;            /* ... taken for the previous boot's: their last-update ... */
        uint64_t stale_update;       /* ... marks figures that are not believed */
        bool reserve_known;          /* the guest kernel's reservation was measured */
        uint64_t reserve;            /* memory the VM holds outside its MemTotal (qemu_mem) */
        bool unmeasured_seen;        /* a figure came before it was: the demand waits ... */
        uint64_t unmeasured_ms;      /* ... from then (monotonic), QEMU_RESERVE_WAIT_MS at most */
        enum qemu_signal source;     /* where the latest observation's demand came from */
};

/* A new instance of the VM: nothing known. */
void qemu_signal_reset(struct qemu_guest_signal *sg);

/*
 * The guest rebooted (QMP RESET): the previous boot's estimate and balloon
 * statistics are dropped. The agent's connection, and with it its count of
 * urgent reports, goes on; the kernel's reservation stays as measured until
 * the new boot's MemTotal measures it again (one not measured yet is waited
 * for again, as at a start).
 */
void qemu_signal_reboot(struct qemu_guest_signal *sg);

/* A fresh estimate (lib/agent checked it against the VM's limit); true when a stall began. */
bool qemu_signal_agent(struct qemu_guest_signal *sg, const struct agent_estimate *e);

/* Balloon statistics read back (range-checked); their clock moved if last_update did. */
void qemu_signal_stats(struct qemu_guest_signal *sg, uint64_t total, uint64_t available,
                       uint64_t last_update, uint64_t now_ms);

/*
 * Fill demand, stall and what the guest sees into o: the agent's estimate when
 * fresh (QEMU_AGENT_FRESH_MS) and it knows the demand, else the balloon's
 * statistics when they moved within QEMU_STATS_FRESH_MS, else nothing. Until
 * the guest kernel's reservation is measured the demand is unknown, for at most
 * QEMU_RESERVE_WAIT_MS from the first figure. now_ms is the loop's clock, mono
 * the monotonic one the reports were stamped with.
 */
void qemu_signal_observe(struct qemu_guest_signal *sg, const struct qemu_mem *m, uint64_t now_ms,
                         uint64_t mono, struct vm_observation *o);

/* "agent", "balloon" or "none". */
const char *qemu_signal_name(enum qemu_signal s);

struct qemu_vm {
        struct qemu_backend *qb;
        struct vm *vm;
        struct qemu_vm_config cfg;
        bool cfg_valid;
        struct qemu_paths paths;

        /* the running instance */
        bool running;
        pid_t pid;
        int pidfd;
        bool kvm;
        char accel[QEMU_ACCEL_WHY_MAX];
        uint64_t log_start; /* console log size when this instance started */
        struct event *pid_ev, *poll_ev, *stop_ev, *reconnect_ev, *start_ev;
        enum qemu_start_state start_state;
        bool start_closed;      /* QMP closed before it answered (and before a kill) */
        int start_killed;       /* why the start killed QEMU: -ETIMEDOUT, -EPROTO; 0 it did not */
        char start_error[320];  /* QEMU_START_FAILED: one sentence */
        int stop_phase;         /* enum stop_phase */
        uint64_t busy_until_ms; /* poll fast until then (monotonic) */
        unsigned polls;

        struct qmp *qmp;
        char qmp_lost[160];      /* why the last connection closed */
        bool layout_verified;    /* the layout is what QEMU reports (reattach) */
        uint64_t guess_assigned; /* reported until the first read-back */
        bool target_set;         /* set_target was called for this instance */
        struct qemu_batch batch;
        bool reread;
        struct qemu_mem mem;
        struct qemu_agent *agent_conn; /* the guest agent's connection, once QMP was ready */
        struct qemu_guest_signal sig;  /* the agent's estimate, balloon statistics: demand */
        struct qemu_probe *probe;      /* asking the binary what it offers, before the start */
        char *probe_binary;            /* ... that binary */
        bool probe_asked_again;        /* ... a second time, after one silent or broken off */
        struct qemu_features features; /* chosen at start; confirmed from QMP (qemu_confirm.c) */
        struct qemu_seen seen;
        uint64_t guest_resets;     /* RESET events of this instance (guest reboots) */
        bool reset_unseen;         /* one since the last observation */
        char features_logged[768]; /* the last line logged about them: each choice once */
        struct log_ratelimit rl;
        struct bucket wake; /* this VM's share of extra cycles (QEMU_WAKE_RATE) */
};

struct qemu_launch;

struct qemu_backend {
        struct backend_env env;
        struct qemu_launch *launch; /* starts and signals QEMU as its user (qemu_launch.h) */
        char *run_dir, *state_dir, *image_dir;
        struct qemu_vm **vms;
        size_t n, cap;
        struct qemu_probe_entry *probes; /* qemu_probe_cached() */
        size_t n_probes;
        struct qemu_probe *probing; /* probes whose QEMU has not been reaped yet */
};

/* Connect to the VM's QMP socket. */
int qemu_monitor_connect(struct qemu_vm *qv);
void qemu_monitor_close(struct qemu_vm *qv);

/* Try to connect again in QEMU_RECONNECT_MS (QEMU_START_RETRY_MS while it starts). */
void qemu_monitor_reconnect_later(struct qemu_vm *qv);

/* Read memory and statistics back (again, if a round is under way). */
void qemu_monitor_readback(struct qemu_vm *qv);

/* Move toward qv->mem.target now if the state is known. */
void qemu_monitor_apply(struct qemu_vm *qv);

/*
 * Ask the running QEMU its version, machine type and virtio-mem options;
 * confirm qv->features with the answers (or, after a reattach, take them).
 */
void qemu_confirm_features(struct qemu_vm *qv);

/* Send a command whose reply only matters for the log. */
int qemu_monitor_simple(struct qemu_vm *qv, const char *execute);

/* Schedule the next read-back: soon while a resize is under way, else in QEMU_POLL_MS. */
void qemu_backend_schedule_poll(struct qemu_vm *qv);

/* Tell the owner's loop to look soon. */
void qemu_backend_wake(struct qemu_vm *qv);

/* ---- an instance's life (qemu.c), shared with its start (qemu_start.c) ---- */

void qemu_timer_in(struct event *ev, uint64_t ms);

/* Signal QEMU through the launcher (as its user); failures are logged. */
void qemu_backend_kill(struct qemu_vm *qv, int sig);

/*
 * A QEMU of the VM runs from now on, with layout l: started here (its
 * layout is the command line's) or found running (QEMU will say). Nothing
 * of an earlier instance carries over.
 */
void qemu_backend_instance_begins(struct qemu_vm *qv, const struct qemu_layout *l, bool started);

/* The instance's events: its pidfd, read-backs, stop timer. 0 or -ENOMEM. */
int qemu_backend_arm(struct qemu_vm *qv);

/* Forget the instance without touching the process (daemon shutdown, forget_vm). */
void qemu_backend_detach(struct qemu_vm *qv);

/* The backend operations start and start_result (qemu_start.c). */
int qemu_backend_start(struct backend *b, struct vm *vm, uint64_t now_ms, char *err, size_t errlen);
int qemu_backend_start_result(struct backend *b, struct vm *vm, char *err, size_t errlen);

/*
 * Stop asking the binary what it offers for a start that waits for it (no
 * probe: nothing): say: the start fails ("stopped before QEMU finished
 * starting"); !say: it is forgotten (forget_vm, the backend's end).
 */
void qemu_start_cancel_probe(struct qemu_vm *qv, bool say);

/* A start that failed (r: -ECHILD exited, -ETIMEDOUT, -EPROTO, -ECANCELED): err, logged. */
void qemu_start_failed(struct qemu_vm *qv, int r, char *err, size_t errlen);

/* Is pid this VM's QEMU (start: from the pid file, 0 for one an older dynmemd started)? */
bool qemu_start_is_ours(const struct qemu_vm *qv, pid_t pid, uint64_t start);

/* The pid of a QEMU of this VM that still runs (pid file and command line), or 0. */
pid_t qemu_start_leftover(struct qemu_vm *qv, uint64_t *ret_start);

/* QMP answered a starting QEMU (on_ready): its machine exists, the start is done. */
void qemu_backend_start_done(struct qemu_vm *qv);

/* QMP closed while QEMU starts: it fails unless it runs and answers again soon. */
void qemu_backend_start_closed(struct qemu_vm *qv, const char *why);

/*
 * QEMU reset the machine (RESET: the guest rebooted, or a system_reset):
 * what the guest said of its previous boot is dropped, virtio-mem is empty
 * again (QEMU unplugs everything on a reset; a read-back follows at once),
 * and the next observation says `rebooted`, so that the loop sends the VM
 * back to its startup size before the new kernel plugs anything.
 */
void qemu_backend_guest_reset(struct qemu_vm *qv, const char *reason);

/* Start the VM's agent connection (QMP is ready); nothing when it exists. Logs a failure. */
void qemu_backend_agent_start(struct qemu_vm *qv);

#endif
