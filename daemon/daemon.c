/*
 * daemon: dynmemd's core: set-up, the balancing cycle on a libevent timer,
 * reload, persistence and shutdown. See daemon.h and docs/daemon.md.
 */
#include "daemon.h"
#include "relief.h"

#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "apply.h"
#include "attach.h"
#include "carry.h"
#include "dynmem-config.h"
#include "control_server.h"
#include "dconfig.h"
#include "events.h"
#include "fsutil.h"
#include "hostmem.h"
#include "http.h"
#include "notify.h"
#include "privileges.h"
#include "resolver.h"
#include "inventory.h"
#include "state.h"
#include "units.h"
#include "wake.h"

/* Event priorities: the cycle's timer before client traffic. */
#define PRIORITY_CYCLE 0
#define PRIORITIES     2

/* A state file that could not be written is tried again this often (real ms). */
#define STATE_RETRY_MS 2000.0

uint64_t daemon_now(const struct daemon *d)
{
        double elapsed = mono_ms_exact() - d->mono_base_ms;

        return elapsed > 0 ? (uint64_t)(elapsed * d->speed) : 0;
}

int daemon_vms_changed(struct daemon *d)
{
        int r = balancer_set_vms(&d->bal, d->reg.vms, d->reg.n);

        if (r < 0)
                log_msg(LOG_ERR, "cannot hand %zu VMs to the balancer: out of memory", d->reg.n);
        return r;
}

int daemon_save(struct daemon *d, char *warn, size_t len)
{
        int r = state_save(d->state_dir, &d->reg, d->state_carried);

        if (r < 0) {
                d->state_retry_ms = mono_ms_exact();
                snprintf(d->state_error, sizeof(d->state_error), "cannot write %s/%s: %s",
                         d->state_dir, STATE_FILE, strerror(-r));
                if (d->state_saved)
                        log_msg(LOG_ERR,
                                "%s; changes made with dynmem set and dynmem create "
                                "will not survive a restart",
                                d->state_error);
                d->state_saved = false;
                if (warn)
                        snprintf(warn, len, "not saved (%s); the change lasts until dynmemd stops",
                                 d->state_error);
                return r;
        }
        if (!d->state_saved)
                log_msg(LOG_NOTICE, "state saved to %s/%s again", d->state_dir, STATE_FILE);
        d->state_saved = true;
        d->state_error[0] = '\0';
        return 0;
}

/* ---- the balancing cycle ---- */

/*
 * A guest that reboots in a loop (broken, or hostile) would write a line per
 * reboot for ever: each VM's lines are rate-limited, and the next one written
 * says how many were not. The event ring (events.c) keeps every restart.
 */
static void log_rebooted(struct registry_entry *e, const struct balancer_event *ev)
{
        char a[32], more[48] = "";
        uint64_t suppressed;

        if (!log_ratelimit_ok(&e->reboot_rl, ev->time_ms))
                return;
        if ((suppressed = log_ratelimit_take_suppressed(&e->reboot_rl)))
                snprintf(more, sizeof(more), " (%llu more not logged)",
                         (unsigned long long)suppressed);
        log_msg(LOG_INFO, "%s: the guest restarted; back to %s%s", ev->vm->name,
                size_format(ev->bytes, a, sizeof(a)), more);
}

void daemon_balancer_event(const struct balancer_event *ev, void *userdata)
{
        struct daemon *d = userdata;
        struct registry_entry *e = ev->vm ? registry_entry_of(ev->vm) : NULL;
        char a[32];

        if (d->events)
                events_add(d->events, ev);
        switch (ev->kind) {
        case BALANCER_EVENT_ADD:
        case BALANCER_EVENT_REMOVE:
                log_msg(LOG_DEBUG, "%s %c%s: %s", ev->vm->name,
                        ev->kind == BALANCER_EVENT_ADD ? '+' : '-',
                        size_format(ev->bytes, a, sizeof(a)), policy_reason_name(ev->reason));
                break;
        case BALANCER_EVENT_STARTED:
                e->start_errno = 0;
                log_msg(LOG_INFO, "%s: started with %s", ev->vm->name,
                        size_format(ev->bytes, a, sizeof(a)));
                break;
        case BALANCER_EVENT_REFUSED:
                e->start_errno = ENOSPC;
                log_msg(LOG_NOTICE, "%s: start refused: %s", ev->vm->name, ev->message);
                break;
        case BALANCER_EVENT_START_FAILED:
                e->start_errno = EIO;
                log_msg(LOG_ERR, "%s: cannot start: %s", ev->vm->name, ev->message);
                break;
        case BALANCER_EVENT_CRASHED:
                log_msg(LOG_WARNING, "%s: crashed; its %s are free again", ev->vm->name,
                        size_format(ev->bytes, a, sizeof(a)));
                break;
        case BALANCER_EVENT_REBOOTED:
                log_rebooted(e, ev);
                break;
        case BALANCER_EVENT_POLICY:
                if (log_ratelimit_ok(&d->tick_errors, ev->time_ms))
                        log_msg(LOG_WARNING, "policy: %s", ev->message);
                break;
        case BALANCER_EVENT_ARRIVING:
                e->start_errno = 0;
                log_msg(LOG_INFO, "%s: admitted: arriving by live migration, %s counted here",
                        ev->vm->name, size_format(ev->bytes, a, sizeof(a)));
                break;
        case BALANCER_EVENT_ARRIVED: /* the daemon's own (migration.c): said there */
        case BALANCER_EVENT_LEAVING:
        case BALANCER_EVENT_LEFT:
        case BALANCER_EVENT_MIGRATION_FAILED:
        case BALANCER_EVENT_MIGRATION_REFUSED:
        case BALANCER_EVENT_RELIEF:
                break;
        }
}

static void sum_held(struct daemon *d)
{
        d->held_bytes = 0;
        d->holding_vms = d->running_vms = 0;
        for (size_t i = 0; i < d->reg.n; i++) {
                const struct vm *vm = d->reg.vms[i];
                if (vm_holds_memory(vm)) {
                        d->held_bytes += vm->obs.assigned_bytes;
                        d->holding_vms++;
                }
                d->running_vms += vm_runs_here(vm);
        }
        migration_count(d);
}

static void schedule_next(struct daemon *d)
{
        double now = mono_ms_exact(), interval = (double)d->cfg.host.interval_ms;

        d->deadline_ms += interval;
        if (d->deadline_ms < now) { /* whole cycles missed: skip them, keep the cadence */
                double missed = floor((now - d->deadline_ms) / interval) + 1;
                d->cycles_skipped += (uint64_t)missed;
                d->deadline_ms += missed * interval;
        }
        double wait = d->deadline_ms - now;
        struct timeval tv = {
            .tv_sec = (time_t)(wait / 1000.0),
            .tv_usec = (suseconds_t)(fmod(wait, 1000.0) * 1000.0),
        };
        evtimer_add(d->cycle_ev, &tv);
}

/* A state file that could not be written is written again once it can be. */
static void retry_save(struct daemon *d)
{
        if (!d->state_saved && mono_ms_exact() - d->state_retry_ms >= STATE_RETRY_MS)
                daemon_save(d, NULL, 0);
}

/* Say once when the running VMs' minimums no longer fit memory, and once when they fit again. */
static void check_overcommit(struct daemon *d)
{
        const struct policy_summary *s = &d->bal.last_summary;
        char mem[32], floors[32];

        if (s->overcommitted && !d->overcommitted) {
                snprintf(d->overcommit_error, sizeof(d->overcommit_error),
                         "the running VMs' minimums (%s in all) exceed memory (%s): no VM is "
                         "taken below its minimum; raise memory, lower a minimum or stop a VM",
                         size_format(s->sum_floor_bytes, floors, sizeof(floors)),
                         size_format(d->bal.host.memory_bytes, mem, sizeof(mem)));
                log_msg(LOG_ERR, "overcommitted: %s", d->overcommit_error);
        } else if (!s->overcommitted && d->overcommitted) {
                log_msg(LOG_NOTICE, "the running VMs' minimums fit memory (%s) again",
                        size_format(d->bal.host.memory_bytes, mem, sizeof(mem)));
                d->overcommit_error[0] = '\0';
        }
        d->overcommitted = s->overcommitted;
}

void daemon_cycle(struct daemon *d)
{
        uint64_t now = daemon_now(d);

        if (d->backend_entry->advance)
                d->backend_entry->advance(d->backend, now);
        inventory_sync(d, true);
        carry_cycle(d); /* what an arrival carries, before the policy decides on it */
        if (balancer_tick(&d->bal, now) < 0 && log_ratelimit_ok(&d->tick_errors, now))
                log_msg(LOG_ERR, "balancing cycle failed: out of memory");
        d->cycles++; /* before anything is read: what was cached is stale now */
        sum_held(d);
        check_overcommit(d);
        relief_cycle(d);
        attach_after_cycle(d); /* before replies: a started VM is on disk first */
        control_server_after_cycle(d->server);
        /* before a start: a VM that stopped takes the file's values */
        bool changed = apply_reset_pending(d) > 0;
        if (apply_sweep(d) > 0) {
                daemon_vms_changed(d);
                changed = true;
        }
        if (changed)
                daemon_save(d, NULL, 0);
        retry_save(d);
        notify_cycle(d); /* the watchdog is fed by cycles that run, nothing else */
}

static void cycle_cb(evutil_socket_t fd, short what, void *arg)
{
        struct daemon *d = arg;
        double start = mono_ms_exact();

        (void)fd, (void)what;
        histogram_add(&d->lateness, start - d->deadline_ms);
        daemon_cycle(d);
        histogram_add(&d->duration, mono_ms_exact() - start);
        schedule_next(d);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
        struct daemon *d = arg;

        (void)what;
        if (sig == SIGHUP) {
                daemon_reload(d);
                return;
        }
        log_msg(LOG_INFO, "%s: stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
        notify_stopping();
        event_base_loopbreak(d->base);
}

/* ---- set-up ---- */

/* The first CONFIG_DIAG_MAX problems, then one line for the rest. */
static void log_diag(struct config_diag *diag)
{
        char more[64];

        for (size_t i = 0; i < diag->count; i++)
                log_msg(LOG_ERR, "%s", diag->messages[i]);
        if (config_diag_more(diag, "problem", more, sizeof(more)))
                log_msg(LOG_ERR, "%s", more);
        config_diag_free(diag);
}

/* What the file holds that may not be what was meant (a '#' in a path): logged, not refused. */
static void log_warnings(const struct config *cfg)
{
        char more[64];

        for (size_t i = 0; i < cfg->warnings.count; i++)
                log_msg(LOG_WARNING, "%s", cfg->warnings.messages[i]);
        if (config_diag_more(&cfg->warnings, "warning", more, sizeof(more)))
                log_msg(LOG_WARNING, "%s", more);
}

/* The policy's problems name the line of [host] policy, or the file alone for the default. */
static int setup_balancer(struct daemon *d, const struct config *cfg, struct balancer *ret)
{
        char err[256] = "", at[PATH_MAX + 16];
        int r = balancer_init(ret, cfg->host.policy, &cfg->tunables, d->backend, err, sizeof(err));

        if (r < 0) {
                log_msg(LOG_ERR, "%s: [host] policy: %s",
                        dconfig_key_at(cfg, "host", "policy", at, sizeof(at)), err);
                return r;
        }
        /* An exec: policy is read from the loop; its reply runs an extra cycle. */
        if (balancer_attach_loop(ret, d->base, wake_request, d) < 0) {
                balancer_fini(ret);
                log_msg(LOG_ERR, "%s: [host] policy: out of memory",
                        dconfig_key_at(cfg, "host", "policy", at, sizeof(at)));
                return -ENOMEM;
        }
        ret->host.memory_bytes = cfg->host.memory_bytes;
        ret->host.reserve_bytes = cfg->host.reserve_bytes;
        ret->refused_starts_wait = false;
        ret->on_event = daemon_balancer_event;
        ret->event_userdata = d;
        return 0;
}

/* The backend's carried(): a write a carry request may wait for is over, answered now. */
static void on_carried(void *userdata)
{
        struct daemon *d = userdata;

        control_server_carried(d->server);
}

static int setup_config(struct daemon *d, const char *path)
{
        struct config_diag diag = {0};
        char err[256] = "";
        int r;

        d->config_path = strdup(path);
        if (!d->config_path)
                return -ENOMEM;
        if (dconfig_load(path, &d->cfg, &diag) < 0) {
                log_diag(&diag);
                return -EINVAL;
        }
        log_warnings(&d->cfg);
        d->backend_entry = backends_find(d->cfg.host.backend);
        d->socket_path = strdup(d->cfg.host.socket);
        d->state_dir = strdup(d->cfg.host.state_dir);
        d->run_dir = strdup(d->cfg.host.socket);
        if (!d->socket_path || !d->state_dir || !d->run_dir)
                return -ENOMEM;
        d->env = (struct backend_env){.base = d->base,
                                      .run_dir = dirname(d->run_dir),
                                      .state_dir = d->state_dir,
                                      .wakeup = wake_request,
                                      .wakeup_userdata = d,
                                      .carried = on_carried};
        r = d->backend_entry->create(&d->cfg, &d->env, &d->backend, err, sizeof(err));
        if (r < 0) {
                log_msg(LOG_ERR, "%s: backend %s: %s", path, d->backend_entry->name, err);
                return r;
        }
        if (dconfig_check_vms(d->backend, &d->cfg, &diag) < 0) {
                log_diag(&diag);
                return -EINVAL;
        }
        config_diag_free(&diag);
        return setup_balancer(d, &d->cfg, &d->bal);
}

static void set_aside(const char *dir)
{
        char from[PATH_MAX], to[PATH_MAX];
        int r = snprintf(from, sizeof(from), "%s/%s", dir, STATE_FILE) >= (int)sizeof(from)
                    ? -ENAMETOOLONG
                    : fsutil_set_aside(from, to, sizeof(to));

        if (r == 0)
                log_msg(LOG_ERR,
                        "state file set aside as %s; starting from the configuration "
                        "alone",
                        to);
        else
                log_msg(LOG_ERR,
                        "cannot set the state file %s aside: %s; starting from the "
                        "configuration alone",
                        from, strerror(-r));
}

/*
 * A state file with entries left out: the whole file is set aside (the next
 * save would lose them), the other entries kept. What a newer dynmemd added
 * is not a reason: it is written back (state.c).
 */
static void keep_aside(const char *dir, size_t kept)
{
        char from[PATH_MAX], to[PATH_MAX];
        int r = snprintf(from, sizeof(from), "%s/%s", dir, STATE_FILE) >= (int)sizeof(from)
                    ? -ENAMETOOLONG
                    : fsutil_set_aside(from, to, sizeof(to));

        if (r == 0)
                log_msg(LOG_ERR, "state file set aside as %s; the other %zu entries are kept", to,
                        kept);
        else
                log_msg(LOG_ERR,
                        "cannot set the state file %s aside: %s; the other %zu entries are kept",
                        from, strerror(-r), kept);
}

/*
 * One dynmemd per state directory: a second one (another socket, the same
 * state_dir) would overwrite state.json and running.json and reattach the
 * first one's VMs. A directory that cannot be created or written is not an
 * error here (dynmemd runs on, unsaved, and says so): nothing can be
 * overwritten there.
 */
static int lock_state_dir(struct daemon *d)
{
        long holder;
        int r = fsutil_mkdir_p(d->state_dir, 0750); /* nothing in it is for others to read */

        if (r < 0) {
                log_msg(LOG_ERR, "state directory %s: %s", d->state_dir, strerror(-r));
                return 0;
        }
        r = fsutil_lock(d->state_dir, STATE_LOCK_FILE, 0640, &d->state_lock_fd, &holder);
        if (r == -EWOULDBLOCK) {
                if (holder)
                        log_msg(LOG_ERR,
                                "another dynmemd (pid %ld) uses the state directory %s "
                                "(%s/%s is locked)",
                                holder, d->state_dir, d->state_dir, STATE_LOCK_FILE);
                else
                        log_msg(LOG_ERR,
                                "another dynmemd uses the state directory %s (%s/%s is "
                                "locked)",
                                d->state_dir, d->state_dir, STATE_LOCK_FILE);
                return -EBUSY;
        }
        if (r < 0)
                log_msg(LOG_WARNING, "cannot lock %s/%s: %s", d->state_dir, STATE_LOCK_FILE,
                        strerror(-r));
        return 0;
}

static void setup_state(struct daemon *d)
{
        struct state st = {0};
        char err[512] = "";
        int r;

        d->state_saved = true;
        r = state_load(d->state_dir, &st, err, sizeof(err));
        /* the entries that are good are kept; the file as it was, for a look */
        for (size_t i = 0; r == 0 && i < st.dropped.n; i++)
                log_msg(LOG_ERR, "%s: %s; this entry is dropped", err, st.dropped.messages[i]);
        /* a newer dynmemd's additions: the entries are kept with what this one knows, and the
         * additions are carried to be written back */
        for (size_t i = 0; r == 0 && i < st.ignored.n; i++)
                log_msg(LOG_WARNING,
                        "%s: %s: not known to this dynmemd (written by a newer one?); ignored, "
                        "and written back with the state file",
                        err, st.ignored.messages[i]);
        if (r == 0 && st.dropped.n)
                keep_aside(d->state_dir, st.n);
        if (r == 0) {
                apply_state(d, &st);
                d->state_carried = st.carried;
                st.carried = NULL;
                state_free(&st);
        } else if (r != -ENOENT) {
                log_msg(LOG_ERR, "%s", err);
                set_aside(d->state_dir);
        }
        daemon_save(d, NULL, 0);
}

/* The control socket, given to group (named: with -g) when dynmemd may give it. */
static int setup_server(struct daemon *d, const char *group, bool named)
{
        struct control_server_options opt = {.path = d->socket_path};
        const char *admin = d->cfg.host.admin_group;
        char err[512] = "", readers[128];
        struct passwd *pw;
        struct group *gr;
        int r;

        r = dconfig_socket_group(group, named, &opt.read_gid, err, sizeof(err));
        if (r < 0) { /* main() checked -g: the group went away since */
                log_msg(LOG_ERR, "%s", err);
                return -EINVAL;
        }
        opt.read_gid_valid = r > 0;
        pw = getpwuid(geteuid());
        if (opt.read_gid_valid)
                snprintf(readers, sizeof(readers), "group %s", group);
        else
                snprintf(readers, sizeof(readers), "user %s", pw ? pw->pw_name : "?");
        opt.readers = readers;
        if (!opt.read_gid_valid)
                log_msg(LOG_INFO,
                        "%s: only root and %s may use %s (-g gives it to a group of this user's)",
                        err, readers, d->socket_path);
        if (admin && (gr = getgrnam(admin))) { /* dconfig checked that it exists */
                opt.admin_name = admin;
                opt.admin_gid = gr->gr_gid;
                opt.admin_gid_valid = true;
        }
        r = control_server_new(d, &opt, &d->server, err, sizeof(err));
        if (r < 0)
                log_msg(LOG_ERR, "%s", err);
        return r;
}

/* The signals dynmemd handles, one event each (d->signal_ev). */
static const int handled_signals[] = {SIGHUP, SIGTERM, SIGINT};
#define N_SIGNALS (sizeof(handled_signals) / sizeof(handled_signals[0]))
_Static_assert(N_SIGNALS == sizeof(((struct daemon *)0)->signal_ev) / sizeof(struct event *),
               "an event for each handled signal");

/* Signals are caught from the start; they are handled once the loop runs. */
static int setup_signals(struct daemon *d)
{
        for (size_t i = 0; i < N_SIGNALS; i++) {
                d->signal_ev[i] = evsignal_new(d->base, handled_signals[i], signal_cb, d);
                if (!d->signal_ev[i] || event_add(d->signal_ev[i], NULL) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The first cycle runs at once, then every interval. */
static int setup_cycle(struct daemon *d)
{
        struct timeval now = {0, 0};

        d->cycle_ev = evtimer_new(d->base, cycle_cb, d);
        if (!d->cycle_ev || event_priority_set(d->cycle_ev, PRIORITY_CYCLE) < 0)
                return -ENOMEM;
        d->deadline_ms = mono_ms_exact();
        return evtimer_add(d->cycle_ev, &now) < 0 ? -ENOMEM : 0;
}

static void log_started(const struct daemon *d)
{
        char mem[32], res[32], iv[32];

        if (d->http)
                log_msg(LOG_INFO, "serving HTTP on %s", http_server_url(d->http));
        log_msg(LOG_INFO,
                "started (version %s): backend %s, policy %s, memory %s, reserve %s, "
                "interval %s, %zu VM%s, listening on %s",
                DYNMEM_VERSION, d->backend_entry->name, d->cfg.host.policy,
                size_format(d->cfg.host.memory_bytes, mem, sizeof(mem)),
                size_format(d->cfg.host.reserve_bytes, res, sizeof(res)),
                duration_format(d->cfg.host.interval_ms, iv, sizeof(iv)), d->reg.n,
                d->reg.n == 1 ? "" : "s", d->socket_path);
}

int daemon_init(struct daemon *d, const struct daemon_options *opt)
{
        const char *group = opt->group ? opt->group : DAEMON_GROUP_DEFAULT;
        struct event_config *ec = event_config_new();
        int r;

        *d = (struct daemon){.tick_errors = LOG_RATELIMIT(5, 6), .state_lock_fd = -1};
        d->started_ms = mono_ms_exact();
        /* coalesce epoll changes within a loop iteration: fewer system calls per client */
        if (ec)
                event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
        d->base = ec ? event_base_new_with_config(ec) : NULL;
        event_config_free(ec);
        d->group = strdup(group);
        if (!d->base || !d->group || event_base_priority_init(d->base, PRIORITIES) < 0 ||
            setup_signals(d) < 0)
                return -ENOMEM;
        if (hostmem_total(&d->host_total_bytes) < 0)
                d->host_total_bytes = 0;
        r = setup_config(d, opt->config_path);
        if (r < 0 || (r = privileges_drop(d)) < 0)
                return r;
        d->speed = d->backend_entry->clock_speed ? d->backend_entry->clock_speed(&d->cfg) : 1.0;
        d->mono_base_ms = mono_ms_exact();
        r = setup_server(d, group, opt->group != NULL);
        if (r < 0 || (r = events_new(0, &d->events)) < 0 || (r = http_setup(d)) < 0)
                return r;
        apply_config(d, &d->cfg, true);
        inventory_sync(d, false); /* VMs its backend owns, listed before reattaching */
        if ((r = lock_state_dir(d)) < 0)
                return r;
        setup_state(d);
        r = setup_cycle(d);
        if (r < 0 || (r = wake_init(d)) < 0 || (r = attach_init(d)) < 0 || (r = relief_init(d)) < 0)
                return r;
        /* a reset that waited before the restart: taken now by the VMs not found running */
        if (apply_reset_pending(d) > 0)
                daemon_save(d, NULL, 0);
        apply_autostart(d);
        log_started(d);
        notify_init(d);
        notify_ready(d);
        return 0;
}

int daemon_run(struct daemon *d)
{
        event_base_dispatch(d->base);
        return 0;
}

void daemon_fini(struct daemon *d)
{
        relief_free(d);
        attach_free(d);
        wake_free(d);
        http_server_free(d->http);
        events_free(d->events);
        control_server_free(d->server);
        d->server = NULL; /* the backend's carried() may come while it stops */
        if (d->cycle_ev)
                event_free(d->cycle_ev);
        for (size_t i = 0; i < N_SIGNALS; i++)
                if (d->signal_ev[i])
                        event_free(d->signal_ev[i]);
        balancer_fini(&d->bal);
        registry_free(&d->reg, d->backend);
        json_decref(d->state_carried);
        if (d->backend)
                d->backend->ops->destroy(d->backend);
        config_free(&d->cfg);
        resolver_free(d->resolver); /* after the peers, before the loop: see resolver.h */
        if (d->base)
                event_base_free(d->base);
        free(d->config_path);
        free(d->socket_path);
        free(d->state_dir);
        free(d->run_dir);
        free(d->group);
        if (d->state_lock_fd >= 0)
                close(d->state_lock_fd); /* last: the files are written and the VMs let go */
        *d = (struct daemon){0};
}

/* ---- reload ---- */

/*
 * A key of the file whose value waits for a restart: logged, and added to
 * cfg's warnings, which dynmem status and the live page show while cfg is
 * in force: until a reload reads the file again (back at what runs, it says
 * nothing) or dynmemd restarts. The warning names the key's line; a key the
 * file no longer gives went back to its default and has none.
 */
static void warn_restart(struct config *cfg, const char *section, const char *key)
{
        unsigned line = config_key_line(cfg, section, key);
        char what[160];

        snprintf(what, sizeof(what), "warning: [%s] %s%s changes when dynmemd restarts", section,
                 key, line ? "" : " (no longer given)");
        if (line)
                log_msg(LOG_WARNING, "%s:%u: %s", cfg->path, line, what);
        else
                log_msg(LOG_WARNING, "%s: %s", cfg->path, what);
        config_diag_add(&cfg->warnings, cfg->path, line, "%s", what);
}

static bool text_differs(const char *a, const char *b)
{
        return (a || b) && (!a || !b || strcmp(a, b) != 0);
}

static void warn_fixed(const struct daemon *d, struct config *cfg)
{
        const struct config_host *now = &cfg->host, *then = &d->cfg.host;
        /* Taken when the socket, the HTTP server, the QEMU launcher or libvirt were set up. */
        const struct {
                const char *key;
                bool changed;
        } host[] = {
            {"socket", strcmp(now->socket, d->socket_path) != 0},
            {"state_dir", strcmp(now->state_dir, d->state_dir) != 0},
            {"http", text_differs(now->http, then->http)},
            {"http_allow_remote", now->http_allow_remote != then->http_allow_remote},
            {"web_dir", text_differs(now->web_dir, then->web_dir)},
            {"admin_group", text_differs(now->admin_group, then->admin_group)},
            {"qemu_user", text_differs(now->qemu_user, then->qemu_user)},
            {"libvirt_uri", text_differs(now->libvirt_uri, then->libvirt_uri)},
        };
        const char *sim[CONFIG_SIM_KEYS];
        size_t n_sim = 0;

        for (size_t i = 0; i < sizeof(host) / sizeof(host[0]); i++)
                if (host[i].changed)
                        warn_restart(cfg, "host", host[i].key);
        /*
         * The simulated backend's, taken when it was made: nothing else reads
         * [sim] (the backend in force is the file's, reload_read() sees to
         * that). Not duration, which only dynmem-sim reads, nor seed, which
         * nothing reads.
         */
        if (strcmp(d->backend_entry->name, "sim") == 0)
                n_sim = config_sim_differences(&cfg->sim, &d->cfg.sim, sim, CONFIG_SIM_KEYS);
        for (size_t i = 0; i < n_sim; i++)
                if (strcmp(sim[i], "duration") != 0 && strcmp(sim[i], "seed") != 0)
                        warn_restart(cfg, "sim", sim[i]);
}

#define SWAP(a, b)                                                                                 \
        do {                                                                                       \
                __typeof__(a) swap_tmp_ = (a);                                                     \
                (a) = (b);                                                                         \
                (b) = swap_tmp_;                                                                   \
        } while (0)

/*
 * What warn_fixed() said waits for a restart stays as it was taken at the
 * start in the configuration in force (cfg, from old), so that the next
 * reload compares with what is in force, and nothing reads a value that is
 * not. old gets cfg's values, to be freed with it.
 */
static void keep_fixed(struct config *cfg, struct config *old)
{
        SWAP(cfg->host.socket, old->host.socket);
        SWAP(cfg->host.state_dir, old->host.state_dir);
        SWAP(cfg->host.http, old->host.http);
        SWAP(cfg->host.http_allow_remote, old->host.http_allow_remote);
        SWAP(cfg->host.web_dir, old->host.web_dir);
        SWAP(cfg->host.admin_group, old->host.admin_group);
        SWAP(cfg->host.qemu_user, old->host.qemu_user);
        SWAP(cfg->host.libvirt_uri, old->host.libvirt_uri);
        SWAP(cfg->sim, old->sim);
}

/*
 * A failed reload's problems, logged, and the first kept for dynmem status
 * with how many more there are and how many of those the log shows.
 */
static void reload_diag(struct daemon *d, struct config_diag *diag)
{
        char n[32];

        if (diag->count == 1 && !diag->more)
                snprintf(d->reload_error, sizeof(d->reload_error), "%s", diag->messages[0]);
        else if (diag->count > 1 && !diag->more)
                snprintf(d->reload_error, sizeof(d->reload_error), "%s (and %zu more in the log)",
                         diag->messages[0], diag->count - 1);
        else if (diag->count > 0)
                snprintf(d->reload_error, sizeof(d->reload_error),
                         "%s (and %s more; the next %zu in the log)", diag->messages[0],
                         config_count_format(diag->count - 1 + diag->more, n, sizeof(n)),
                         diag->count - 1);
        log_diag(diag);
}

/* Load and check the file; 0 with *ret filled, or a negative errno (logged). */
static int reload_read(struct daemon *d, struct config *ret)
{
        struct config_diag diag = {0};
        struct config cfg;

        /* A file meant to hold no VM still holds the host's keys or a comment. */
        char why[256];

        if (dconfig_empty_file(d->config_path, why, sizeof(why))) {
                snprintf(d->reload_error, sizeof(d->reload_error), "%s: %s", d->config_path, why);
                log_msg(LOG_ERR, "%s", d->reload_error);
                return -EINVAL;
        }
        if (dconfig_load(d->config_path, &cfg, &diag) < 0) {
                reload_diag(d, &diag);
                return -EINVAL;
        }
        if (strcmp(cfg.host.backend, d->cfg.host.backend) != 0) {
                char at[PATH_MAX + 16];
                bool given = config_key_line(&cfg, "host", "backend") != 0;

                snprintf(d->reload_error, sizeof(d->reload_error),
                         "%s: [host] backend%s changes only when dynmemd restarts",
                         dconfig_key_at(&cfg, "host", "backend", at, sizeof(at)),
                         given ? "" : " (no longer given)");
                log_msg(LOG_ERR, "%s", d->reload_error);
                config_free(&cfg);
                return -EINVAL;
        }
        if (dconfig_check_vms(d->backend, &cfg, &diag) < 0) {
                reload_diag(d, &diag);
                config_free(&cfg);
                return -EINVAL;
        }
        config_diag_free(&diag);
        *ret = cfg;
        return 0;
}

/*
 * The new policy, or the new tunables of the one in force. A new policy is
 * built whole (its program, its loop, the VMs) before it replaces the one in
 * force, so that a failure leaves the policy in force as it was and running:
 * what the log says is what runs. No later step of a reload refuses it.
 */
static int reload_policy(struct daemon *d, const struct config *cfg)
{
        char err[256] = "", at[PATH_MAX + 16];

        if (strcmp(cfg->host.policy, d->cfg.host.policy) == 0) {
                d->bal.policy.tunables = cfg->tunables;
                return 0;
        }
        if (balancer_replace_policy(&d->bal, cfg->host.policy, &cfg->tunables, d->reg.vms, d->reg.n,
                                    d->base, wake_request, d, err, sizeof(err)) < 0) {
                snprintf(d->reload_error, sizeof(d->reload_error), "%s: [host] policy %s: %s",
                         dconfig_key_at(cfg, "host", "policy", at, sizeof(at)), cfg->host.policy,
                         err);
                log_msg(LOG_ERR, "%s", d->reload_error);
                return -EINVAL;
        }
        log_msg(LOG_INFO, "policy %s replaces %s", cfg->host.policy, d->cfg.host.policy);
        return 0;
}

void daemon_reload(struct daemon *d)
{
        struct config cfg = {0};

        log_msg(LOG_INFO, "SIGHUP: reloading %s", d->config_path);
        snprintf(d->reload_error, sizeof(d->reload_error), "%s: cannot be read",
                 d->config_path); /* each failure below says better */
        if (reload_read(d, &cfg) < 0 || reload_policy(d, &cfg) < 0) {
                log_msg(LOG_ERR, "reload failed: the configuration in force stays (policy %s)",
                        d->cfg.host.policy);
                config_free(&cfg);
                return;
        }
        d->reload_error[0] = '\0';
        log_warnings(&cfg);
        warn_fixed(d, &cfg);
        keep_fixed(&cfg, &d->cfg);
        d->bal.host.memory_bytes = cfg.host.memory_bytes;
        d->bal.host.reserve_bytes = cfg.host.reserve_bytes;
        if (d->backend_entry->set_memory)
                d->backend_entry->set_memory(d->backend, cfg.host.memory_bytes);
        config_free(&d->cfg);
        d->cfg = cfg;
        apply_config(d, &d->cfg, false);
        if (d->resolver)
                resolver_reload(d->resolver); /* a changed resolv.conf or hosts, even mid-move */
        relief_reload(d);
        daemon_save(d, NULL, 0);
        log_msg(LOG_INFO, "reloaded %s: %zu VM%s", d->config_path, d->reg.n,
                d->reg.n == 1 ? "" : "s");
}
