/*
 * libvirt_int: what the libvirt backend's files share and nothing else
 * includes: the connection and its events (libvirt_conn.c), the table of
 * domains and what each holds (libvirt_dom.c), and the backend interface
 * on top (libvirt.c). The memory arithmetic (qemu_mem) and the guest
 * agent's connection (qemu_agent) are the QEMU backend's, shared: behind
 * libvirt the VM is the same QEMU with the same devices.
 */
#ifndef DYNMEM_LIBVIRT_INT_H
#define DYNMEM_LIBVIRT_INT_H

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "libvirt.h"
#include "libvirt_reader.h"
#include "libvirt_round.h"
#include "libvirt_work.h"
#include "libvirt_xml.h"
#include "log.h"
#include "mono.h"
#include "qemu_int.h"

#define LV_BACKOFF_MIN_MS   1000      /* first retry after the connection is lost */
#define LV_BACKOFF_MAX_MS   30000     /* retries at most this far apart */
#define LV_KEEPALIVE_S      5         /* libvirt keepalive: a probe every 5 s ... */
#define LV_KEEPALIVE_COUNT  3         /* ... and the connection is dead after 3 unanswered */
#define LV_STATS_FRESH_MS   10000     /* balloon statistics older than this are unknown */
#define LV_AGENT_FRESH_MS   10000     /* an agent report is used this long */
#define LV_START_PENDING_MS 120000    /* an admitted start not seen running by then is off */
#define LV_DOMAINS_MAX      4096      /* domains one host may have */
#define LV_INCOMING_WAIT_MS 60000     /* a migration the hook announced: libvirt's domain by then */
#define LV_SLOW_CALL_MS     100       /* a libvirt call this slow is logged (debug) */
#define LV_CHECK_MS         1000      /* libvirt's figure for a balanced domain: read this often */
#define LV_CHECK_WINDOW_MS  60000     /* ... for this long after its XML was read or it restarted */
#define LV_CHECK_IDLE_MS    30000     /* ... and this often otherwise */
#define LV_REREAD_MS        5000      /* figures differing: the live XML read again this often */
#define LV_CHECK_SLACK      (4 * MIB) /* figures closer than this (or a block) agree */
#define LV_ANSWER_MS        5000      /* reads out this long: libvirt is not answering */

/* What libvirt says a domain holds: balloon.current, virtio-mem plugged included. */
struct lv_stats {
        bool known;
        uint64_t current;
};

/*
 * libvirt's own figure for what a balanced running domain holds (its
 * <currentMemory>, balloon.current: virDomainGetInfo or the statistics),
 * checked against dynmemd's (lv_run_check_figures). libvirt changes its
 * figures without an event when it refreshes a domain from QEMU: when
 * libvirtd restarts (dynmemd reconnects and reads every domain again), on a
 * guest reset, at the end of an arrival; so the check is made every second
 * for a while after dynmemd read the live XML or the guest restarted, and
 * seldom otherwise.
 */
struct lv_check {
        uint64_t libvirt_bytes; /* at the last check, at most what the domain's devices hold */
        bool differs;           /* ... and it was not dynmemd's (LV_CHECK_SLACK or a block apart) */
        uint64_t differs_ms;    /* since when they differ (an event on its way: a second) */
        uint64_t checked_ms;    /* when it was read, 0 never */
        uint64_t watch_until_ms; /* read every LV_CHECK_MS until then (and while they differ) */
        uint64_t reread_ms;      /* when the live XML was last read again for it, 0 never */
        /* the guest restarted and the figures have not agreed since: libvirt's may still
         * hold the old boot's virtio-mem (it refreshes the device's size on a reset, and
         * its <currentMemory> only at the next balloon change), so it does not count */
        bool since_reset;
        bool said; /* counting libvirt's figure was logged: once until they agree */
};

/* The QEMU process of a domain's running instance, as first seen. */
struct lv_qemu_pid {
        int id;         /* the instance (libvirt's id) */
        pid_t pid;      /* 0: none recorded */
        uint64_t start; /* its start time (clock ticks after boot) */
};

/* One libvirt domain the backend knows, by name (sorted). */
struct lv_domain {
        struct lv_backend *lb;
        char name[VM_NAME_MAX];
        char uuid[40];
        virDomainPtr dom; /* libvirt's handle, from the last reload; NULL unknown */
        bool dirty;       /* reload at the next inventory */
        uint64_t touched; /* marked for reloading this many times (a reload under way misses it) */
        bool undefined;   /* gone from libvirt: dropped at the next inventory */
        enum backend_vm_run run;
        bool persistent;
        int id;                        /* libvirt's id while it runs, -1 otherwise */
        int state, reason;             /* libvirt's state and its reason, at the last reload */
        struct libvirt_xml_domain xml; /* live XML while it runs, persistent XML when off */
        struct backend_vm_info info;
        char problem_logged[200];
        char ignored_logged[160]; /* the metadata's elements unknown here, as last logged */

        /* the running instance (balanced domains) */
        bool attached; /* mem and agent set up for this id */
        int attached_id;
        uint64_t attach_serial;         /* this attachment's number (lv_backend.attach_serials) */
        bool job_busy;                  /* a resize job of this attachment is out: no new plan */
        bool carry_out;                 /* a write of what the policy learned is out */
        int carry_error;                /* how the last one went (lv_carry_pending) */
        struct lv_job_reading job_read; /* its job, as the last round read it ... */
        uint64_t job_read_ms;           /* ... then (mono_ms), 0 never */
        struct qemu_mem mem;
        struct lv_stats stats;
        struct lv_check check;       /* libvirt's figure against ours (attached domains) */
        struct lv_qemu_pid qemu_pid; /* for its resident memory (lv_run_rss) */
        struct qemu_agent *agent_conn;
        struct qemu_guest_signal sig; /* the agent's estimate, balloon statistics: demand */
        uint64_t pending_until_ms;    /* an admitted start libvirt runs: alive until then */
        bool locked_by_start;         /* libvirt starts it with the domain locked: not touched until
                                         its start (or stop) is seen */
        uint64_t stop_by_ms;          /* a graceful stop not done by then is forced */
        int stop_id;                  /* ... if the instance of this id still runs */
        bool target_set;
        bool reset_unseen; /* the guest restarted since the last observation */
        struct log_ratelimit rl;
        struct bucket wake; /* this VM's share of extra cycles (QEMU_WAKE_RATE) */

        /* live migration (libvirt_migrate.c) */
        enum vm_migration migration;
        uint64_t incoming_bytes; /* what an arriving domain holds (the hook's figure), 0 unknown */
        uint64_t incoming_until_ms; /* announced by the hook: listed without libvirt's domain until
                                       then */
        struct vm_settings incoming_settings; /* ... with these settings */
        bool stop_seen;     /* libvirt said it stopped since it last started ... */
        bool stop_migrated; /* ... because it migrated away */
};

struct lv_backend {
        struct backend_env env;
        char *uri;
        char *run_dir;
        virConnectPtr conn;
        uint64_t conn_serial; /* connections opened and closed: a round's is still this one */
        int callbacks[LV_ROUND_CALLBACKS]; /* event callback ids, -1 none */
        bool lost;                /* the close callback ran: reconnect at the next inventory */
        _Atomic int close_reason; /* the close the resize worker noticed, for the loop */
        _Atomic int close_timer;  /* the timeout that takes it on the loop, 0 none */
        uint64_t retry_at_ms, backoff_ms;
        bool down_logged; /* said once that libvirt cannot be reached */
        char down_reason[256];
        const char *down_hint; /* lv_refusal_hint() of a refused connection, or NULL */
        bool ever_connected;
        char hv_version[32]; /* the hypervisor's (QEMU's) version, "" unknown */
        bool refresh_all;    /* list every domain again */
        uint64_t generation;
        uint64_t stats_ms;       /* when bulk statistics were last read */
        struct lv_domain **doms; /* sorted by name */
        size_t n, cap;
        struct backend_vm_info *infos;
        size_t n_infos;
        uint64_t infos_generation;
        uint64_t dropped_names;           /* domains whose names dynmem cannot use */
        struct log_ratelimit unlisted_rl; /* saying so (lv_dom_unlisted) */
        struct lv_work *work;     /* the resize calls' thread (libvirt_work.c), made when needed */
        bool work_stopped;        /* shutting down: no more jobs */
        struct lv_reader *reader; /* the reads' thread (libvirt_reader.c), made when needed */
        bool reads_inline;        /* an in-process driver (test:///): read on the loop */
        bool hang_logged;         /* said that libvirt is not answering */
        bool started_reads;       /* the first rounds (waited for, at dynmemd's start) are made */
        uint64_t attach_serials;  /* attachments made (lv_domain.attach_serial) */
        uint64_t calls;           /* timed libvirt calls (statistics and resizes) */
        double call_ms, call_max_ms;
};

/* ---- the connection (libvirt_conn.c) ---- */

/*
 * libvirt's errors are not printed on stderr: set once per process, before
 * any libvirt call. libvirt keeps its error handler in globals that every
 * thread's failed call reads, unlocked: setting it while the reader or the
 * worker is in a call would be a data race.
 */
void lv_conn_quiet_errors(void);

/* A lost connection is closed (a new one is opened by a round); true while one is open. */
bool lv_conn_ensure(struct lv_backend *lb, uint64_t now_ms);

/* Time to open a connection (none, and the backoff is over). */
bool lv_conn_due(const struct lv_backend *lb, uint64_t now_ms);

/* Open the round's connection (the reader's thread): keepalive, events, versions. */
void lv_conn_open_round(struct lv_round *r);

/* Take the connection a round opened, or why it could not; logs it once. */
void lv_conn_take_open(struct lv_backend *lb, struct lv_round *r);

/* Deregister a connection's events and drop the reference (any thread). */
void lv_conn_forget(virConnectPtr conn, int *callbacks);

/* Take a round's balloon statistics. */
void lv_conn_take_stats(struct lv_backend *lb, struct lv_round *r);

/*
 * Reads are out for LV_ANSWER_MS or more: libvirt is not answering. Then
 * nothing is asked of it from the loop and no resize is planned; ms: how
 * long so far.
 */
bool lv_conn_hung(const struct lv_backend *lb, uint64_t now_ms, uint64_t *ms);

/* Once a cycle: the round of reads, when none is out (made at once for in-process drivers). */
void lv_conn_read(struct lv_backend *lb, uint64_t now_ms);

/* A round's answers came back (the reader's `done`). */
void lv_conn_round_done(void *round, void *userdata);

/*
 * What to do when the local libvirt at uri refused to connect this user
 * (error e of virConnectOpen): permission denied on its socket (a system
 * error of errno EACCES or EPERM while connecting), or a refusal by its
 * authentication (polkit) or access control. NULL for any other error, for
 * none, and for a remote URI (qemu+ssh://HOST/system).
 */
const char *lv_refusal_hint(const char *uri, const virError *e);

/*
 * True, with what the log said of it (at most LV_DOWN_TEXT_MAX), while libvirt
 * cannot be reached: the connection failed or was lost, and is not back.
 */
#define LV_DOWN_TEXT_MAX 1024
bool lv_conn_unreachable(const struct lv_backend *lb, char *buf, size_t len);

/* Note a failed call: when libvirt says the connection is gone, drop it. */
void lv_conn_check_error(struct lv_backend *lb, const char *what);

/* The same for a call whose error (message) another thread read. */
void lv_conn_check_error_msg(struct lv_backend *lb, const char *what, const char *message);

/* Close and forget the connection (events deregistered). */
void lv_conn_close(struct lv_backend *lb);

/* Count a libvirt call that began at started_ms (mono_ms_exact); a slow one is logged. */
void lv_note_call(struct lv_backend *lb, const char *call, const char *name, double started_ms);

/* Count a libvirt call that took ms (made by the worker); a slow one is logged. */
void lv_note_call_ms(struct lv_backend *lb, const char *call, const char *name, double ms);

/* The last libvirt error as a sentence. */
const char *lv_error(void);

/* ---- the domains (libvirt_dom.c) ---- */

struct lv_domain *lv_dom_find(struct lv_backend *lb, const char *name);

/* The domain named name, added (dirty) when new; NULL on ENOMEM or too many. */
struct lv_domain *lv_dom_get(struct lv_backend *lb, const char *name);

/* A round listed every domain (after connecting): each is marked for reloading. */
void lv_dom_take_list(struct lv_backend *lb, struct lv_round *r);

/* Mark the domain for reloading. */
void lv_dom_mark(struct lv_domain *d);

/*
 * Once a cycle (round NULL) and with each round's reloads: take what was
 * reloaded, drop the undefined domains, attach and detach; true when anything
 * changed.
 */
bool lv_dom_reload_dirty(struct lv_backend *lb, uint64_t now_ms, struct lv_round *round);

/* The list as the daemon reads it (libvirt.c). */
void lv_list_infos(struct lv_backend *lb);

/*
 * libvirt's balloon-change event: the size QEMU reports, which the guest
 * sets (checked against the domain's memory).
 */
void lv_dom_take_balloon(struct lv_domain *d, uint64_t actual_kib);

/* Take the statistics of one domain (lv_conn_take_stats). */
void lv_dom_take_stats(struct lv_domain *d, const virTypedParameter *params, int n);

/* A libvirt event about a domain: mark it for reloading. False when it is not listed. */
bool lv_dom_touch(struct lv_backend *lb, virDomainPtr dom);

/* Say (rate-limited) why a domain libvirt defined or started is not listed. */
void lv_dom_unlisted(struct lv_backend *lb, virDomainPtr dom);

/* libvirt says the domain started or stopped: its start no longer holds it locked. */
void lv_dom_started(struct lv_backend *lb, virDomainPtr dom);

void lv_dom_free(struct lv_domain *d);

/* ---- a running dynamic domain (libvirt_run.c) ---- */

/* Set up the running instance (memory layout from the live XML, the agent). */
void lv_dom_attach(struct lv_domain *d);

/* Stop the agent connection and forget the running instance. */
void lv_dom_detach(struct lv_domain *d);

/*
 * Take what the (reloaded) live XML says the domain holds. A virtio-mem size
 * outside the device or not a whole number of its blocks is not taken.
 * libvirt's own figure is then checked every LV_CHECK_MS for
 * LV_CHECK_WINDOW_MS (libvirt may still be refreshing it from QEMU).
 */
void lv_run_readback_xml(struct lv_domain *d);

/* The size virtio-mem plugged (libvirt's event), checked as in the XML. */
void lv_run_take_vmem_size(struct lv_domain *d, uint64_t size_kib);

/*
 * What the domain holds as dynmemd counts it: its own figure (the XML and
 * the events), or libvirt's when that differs and is larger (lv_check),
 * never above what the domain's devices hold, and not since a guest reset
 * until the two have agreed again.
 */
uint64_t lv_run_assigned(const struct lv_domain *d);
/* The most the domain's memory can reach: its boot memory and its virtio-mem device. */
uint64_t lv_run_top(const struct lv_domain *d);

/* libvirt's figure for the domain (<currentMemory>, KiB), read at now_ms: checked against ours. */
void lv_run_take_libvirt_figure(struct lv_domain *d, uint64_t current_kib, uint64_t now_ms);

/*
 * For the round: libvirt's figure of an attached domain whose turn has come
 * (every LV_CHECK_MS in its window or while the figures differ, else every
 * LV_CHECK_IDLE_MS; virDomainGetInfo: no job, no call into QEMU; not when
 * info is false, the statistics bring it), and its live XML again
 * (virDomainGetXMLDesc, which takes no job either), at most every
 * LV_REREAD_MS, when the figures have differed for LV_CHECK_MS (not an event
 * still on its way).
 */
void lv_run_wants_figure(struct lv_domain *d, uint64_t now_ms, bool info, bool *ret_info,
                         bool *ret_xml);

/* Take what the round read of the domain's figure and live XML. */
void lv_run_take_reading(struct lv_domain *d, struct lv_round_dom *rd, uint64_t now_ms);

/* The QEMU process's resident memory (libvirt's pid file), 0 unknown. */
uint64_t lv_run_rss(struct lv_domain *d);

/*
 * The same from pidfile for the domain's instance `id`: the pid's process
 * start time (/proc/PID/stat) is recorded in *seen when the instance is
 * first read; a process of another pid, or of that pid started at another
 * time (the pid reused once QEMU exited), is not its QEMU: 0. So is one
 * whose start time differs from what a pid file holding one ("PID START")
 * records.
 */
uint64_t lv_run_rss_of(struct lv_qemu_pid *seen, const char *pidfile, int id);

/* The balloon's statistics are wanted: no fresh report from the agent. */
bool lv_run_needs_stats(const struct lv_domain *d);

/*
 * Move toward d->mem.target through libvirt (balloon, virtio-mem): the plan's
 * steps go to the worker as one job; nothing is planned while the last job's
 * result is not back.
 */
void lv_run_apply(struct lv_domain *d);

/*
 * Hand the plan's steps to the worker as one job for dom (the plan's in-flight
 * flags stay set until its result is taken, lv_run_job_done). False when it
 * could not be handed over (the flags are cleared, as for a failed call).
 */
bool lv_run_send(struct lv_domain *d, const struct qemu_mem_plan *p, virDomainPtr dom);

/* A job's result, on the loop: taken by the attachment it was planned for, else dropped. */
void lv_run_job_done(struct lv_job *j, void *userdata);

/* The worker (made when first needed), or NULL: no loop, no thread, or stopping. */
struct lv_work *lv_run_work(struct lv_backend *lb);

/* Stop the worker: the call under way finishes, queued jobs are dropped (flags cleared). */
void lv_run_stop_work(struct lv_backend *lb);

/* Assigned memory, demand and stall as the domain's agent or balloon tell them. */
void lv_run_observe(struct lv_domain *d, uint64_t now_ms, struct vm_observation *o);

/*
 * The guest restarted (libvirt's reboot event: QEMU reset the machine, which
 * unplugs its virtio-mem memory): what was known of the previous boot goes,
 * and the next observation says `rebooted`, which brings the target back to
 * the startup size (lib/balancer.c), as with the QEMU backend. Asks for an
 * extra cycle within the domain's share of them (d->wake).
 */
void lv_run_guest_reset(struct lv_domain *d);

/* The domain's libvirt handle, a reference the caller frees (virDomainFree); NULL unknown. */
virDomainPtr lv_dom_lookup(struct lv_domain *d);

/* ---- what the policy learned, carried in the live metadata (libvirt_carry.c) ---- */

/* lib/backend.h carry_learned, carry_pending and carried_learned. */
int lv_carry_write(struct backend *b, struct vm *vm, const char *text);
bool lv_carry_pending(struct backend *b, const struct vm *vm, int *ret_error);
int lv_carry_read(struct backend *b, const struct vm *vm, char **ret);

/* A write's result (a job of one LV_STEP_METADATA step), on the loop. */
void lv_carry_done(struct lv_job *j, struct lv_backend *lb);

/* ---- live migration (libvirt_migrate.c) ---- */

/* "outgoing", "incoming" or "none", for messages. */
const char *lv_mig_name(enum vm_migration m);

/*
 * A job runs on the domain (a migration noted as such), or the last round did
 * not read it lately (LV_ANSWER_MS): no resize now.
 */
bool lv_mig_busy(struct lv_domain *d);

/* The round should read the domain's job: it migrates (has it ended?), or may be resized. */
bool lv_mig_wants_job(const struct lv_domain *d);

/* The round's reading of the domain's job. */
void lv_mig_take_job(struct lv_domain *d, const struct lv_job_reading *j, double ms,
                     uint64_t now_ms);

/* The domain was just loaded, its job read with it: which migration, if any, its job is. */
void lv_mig_loaded(struct lv_domain *d, const struct lv_job_reading *job, uint64_t now_ms);

/*
 * libvirt no longer has the domain (a transient one stopped, or one undefined
 * as it left). One that was leaving is listed once more, off, saying whether
 * it migrated away (libvirt's stopped event) or was shut off during its
 * migration: true then, and it is dropped at the next reload.
 */
bool lv_mig_vanished(struct lv_domain *d);

/* libvirt's events: a migration iteration (source), a lifecycle change. */
void lv_mig_iteration(struct lv_backend *lb, virDomainPtr dom);
void lv_mig_lifecycle(struct lv_backend *lb, virDomainPtr dom, int event, int detail);

/* Announced by the admission hook and not yet (or never) created by libvirt. */
bool lv_mig_expected(const struct lv_domain *d, uint64_t now_ms);

/* The listing of a domain known only from the hook. */
void lv_mig_placeholder_info(struct lv_domain *d);

/* What an arriving domain holds: the hook's figure, else libvirt's. */
uint64_t lv_mig_incoming_bytes(const struct lv_domain *d);

/* The admission refused (or gave up on) an announced arrival: forget it. */
void lv_mig_refused(struct lv_domain *d);

/* lib/backend.h expect_incoming. */
int lv_mig_expect(struct backend *b, const char *name, const struct vm_settings *s, uint64_t bytes,
                  char *err, size_t errlen);

#endif
