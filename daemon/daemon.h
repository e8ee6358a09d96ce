/*
 * daemon: dynmemd's core. It owns the configuration in force, the backend,
 * the balancer, the registry of VMs, the control server and the event loop,
 * and runs one balancing cycle every [host] interval on a libevent timer.
 * The cycle's clock is the monotonic clock, scaled by the backend's speed
 * ([sim] speed for the simulated backend). docs/daemon.md describes it.
 */
#ifndef DYNMEM_DAEMON_H
#define DYNMEM_DAEMON_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "backends.h"
#include "balancer.h"
#include "config.h"
#include "histogram.h"
#include "log.h"
#include "migration.h"
#include "mono.h"
#include "registry.h"

#define DAEMON_GROUP_DEFAULT "dynmem"

struct attach;
struct relief;
struct resolver;
struct control_server;
struct events;
struct http_server;
struct wake;
struct event;
struct event_base;

struct daemon_options {
        const char *config_path;
        const char *group; /* group that may read through the socket; NULL = dynmem */
};

struct daemon {
        struct event_base *base;
        char *config_path;
        struct config cfg; /* the configuration in force */
        const struct backends_entry *backend_entry;
        struct backend *backend;
        struct backend_env env;
        struct balancer bal;
        struct registry reg;
        struct control_server *server;
        struct event *cycle_ev;
        struct event *signal_ev[3];

        /* fixed for the daemon's life; a reload that changes them warns */
        char *socket_path;
        char *state_dir;
        char *run_dir;
        char *group;

        /* clock */
        double mono_base_ms; /* monotonic ms when the clock (re)started */
        double speed;        /* clock ms per real ms */
        double deadline_ms;  /* monotonic ms the next cycle is due */
        double started_ms;

        uint64_t host_total_bytes; /* MemTotal, 0 when unknown */

        /* summed at the end of each cycle: memory is only taken or freed by a cycle */
        uint64_t held_bytes; /* memory held by VMs */
        size_t holding_vms;  /* VMs holding memory (running, stopping, migrating) */
        size_t running_vms;  /* VMs whose guest runs here (vm_runs_here) */

        struct migration_counters migrations; /* live migrations to and from here (migration.c) */
        struct relief *relief;                /* [cluster]: peers and the relief rule (relief.c) */
        struct resolver
            *resolver; /* the peers' name lookups, from the first peer on (resolver.c) */

        /* persistence */
        int state_lock_fd; /* STATE_DIR/dynmemd.lock, held for the daemon's life; -1: none */
        bool state_saved;
        char state_error[256];
        double state_retry_ms; /* monotonic ms of the last failed save */
        json_t *state_carried; /* the state file's members a newer dynmemd wrote, or NULL */

        /* the last reload failed: its first problem (the log has them all); "" when it worked */
        char reload_error[512];

        /* the running VMs' minimums exceed memory (a reload lowered it): said once */
        bool overcommitted;
        char overcommit_error[256];

        /* timing of the cycle */
        struct histogram lateness;
        struct histogram duration;
        uint64_t cycles; /* cycles run; also the age of cached JSON */
        uint64_t cycles_skipped;

        struct log_ratelimit tick_errors;

        /* systemd's watchdog (notify.c): its period (0: off) and the last ping */
        uint64_t watchdog_ms;
        double watchdog_sent_ms;
        /* the backend's list of VMs last taken in (inventory.c) */
        uint64_t inventory_generation;
        bool inventory_adopted;

        struct attach *attach; /* running.json and reattaching (attach.c) */
        struct wake *wake;     /* extra cycles a backend asks for (wake.c) */

        struct events *events;    /* recent balancer events (events.c) */
        struct http_server *http; /* [host] http; NULL when off (http.c) */
};

/*
 * Set everything up: read and check the configuration (problems are logged
 * as FILE:LINE), create the backend, define the VMs from the configuration
 * and the state file, open the control socket, arm the timer and signals.
 * Returns 0, -EINVAL (bad configuration) or another negative errno (logged).
 */
int daemon_init(struct daemon *d, const struct daemon_options *opt);

/* Run until SIGTERM or SIGINT. Returns 0. */
int daemon_run(struct daemon *d);

void daemon_fini(struct daemon *d);

/* The cycle clock now: what the balancer and the backend are given. */
uint64_t daemon_now(const struct daemon *d);

/* The registry's VMs changed (added or removed): tell the balancer. */
int daemon_vms_changed(struct daemon *d);

/*
 * Save the state file. Returns 0, or a negative errno with a warning for
 * the operator in warn ("not saved: ...").
 */
int daemon_save(struct daemon *d, char *warn, size_t len);

/* Re-read the configuration file (SIGHUP). Problems are logged; the old one stays. */
void daemon_reload(struct daemon *d);

/*
 * What the daemon does with a balancer event (the balancer's on_event,
 * userdata the daemon): record it, set the VM's start result, log it, a
 * guest's restarts and the policy's complaints rate-limited.
 */
void daemon_balancer_event(const struct balancer_event *ev, void *userdata);

/* One balancing cycle now (the timer's, or an extra one a backend asked for: wake.c). */
void daemon_cycle(struct daemon *d);

#endif
