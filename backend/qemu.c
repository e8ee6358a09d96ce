/*
 * qemu backend: the backend interface over QEMU processes: keys, start
 * (with a clear error when QEMU cannot run), stop, targets, observations,
 * reattach after a daemon restart, and noticing QEMU's death. QMP lives in
 * qemu_monitor.c, the command line in qemu_argv.c, the process in
 * qemu_proc.c. See qemu.h and docs/qemu-backend.md.
 */
#include "qemu.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qemu_int.h"
#include "qemu_launch.h"
#include "mono.h"
#include "qmp.h"
#include "units.h"

#ifndef DYNMEM_GUEST_IMAGE_DIR
#define DYNMEM_GUEST_IMAGE_DIR "/usr/local/lib/dynmem/guest"
#endif

#define QUIT_WAIT_MS   5000 /* after quit (or SIGTERM), SIGKILL */
#define LOG_CAP        (16 * MIB)
#define LOG_TRIM_POLLS 30

static struct qemu_backend *priv(struct backend *b)
{
        return b->priv;
}

void qemu_backend_wake(struct qemu_vm *qv)
{
        if (qv->qb->env.wakeup)
                qv->qb->env.wakeup(qv->qb->env.wakeup_userdata);
}

void qemu_timer_in(struct event *ev, uint64_t ms)
{
        struct timeval tv = mono_timeval(ms);

        evtimer_add(ev, &tv);
}

/* ---- the end of an instance ---- */

static void free_events(struct qemu_vm *qv)
{
        struct event **evs[] = {&qv->pid_ev, &qv->poll_ev, &qv->stop_ev, &qv->reconnect_ev,
                                &qv->start_ev};

        for (size_t i = 0; i < sizeof(evs) / sizeof(*evs); i++) {
                if (*evs[i])
                        event_free(*evs[i]);
                *evs[i] = NULL;
        }
}

/* Forget the instance without touching the process (daemon shutdown, forget_vm). */
void qemu_backend_detach(struct qemu_vm *qv)
{
        qemu_start_cancel_probe(qv, false);
        qemu_agent_free(qv->agent_conn);
        qv->agent_conn = NULL;
        qemu_monitor_close(qv);
        free_events(qv);
        if (qv->pidfd >= 0)
                close(qv->pidfd);
        qv->pidfd = -1;
        qv->running = false;
}

/* QEMU is gone: say why, clean its files, tell the loop. */
static void instance_gone(struct qemu_vm *qv, int status)
{
        char last[200] = "";

        if (qv->start_state == QEMU_START_PENDING) {
                int why = qv->stop_phase != STOP_NONE ? -ECANCELED
                          : qv->start_killed          ? qv->start_killed
                                                      : -ECHILD;
                qemu_start_failed(qv, why, qv->start_error, sizeof(qv->start_error));
                qv->start_state = QEMU_START_FAILED;
        } else if (qv->stop_phase != STOP_NONE) {
                log_msg(LOG_INFO, "vm \"%s\": QEMU (pid %d) stopped", qv->vm->name, (int)qv->pid);
        } else {
                qemu_proc_log_last_line(qv->paths.console, qv->log_start, last, sizeof(last));
                char how[32] = "";
                if (status >= 128)
                        snprintf(how, sizeof(how), " (signal %d)", status - 128);
                else if (status >= 0)
                        snprintf(how, sizeof(how), " (status %d)", status);
                log_msg(LOG_WARNING, "vm \"%s\": QEMU (pid %d) exited%s%s%s%s", qv->vm->name,
                        (int)qv->pid, how, last[0] ? "; last console line: \"" : "", last,
                        last[0] ? "\"" : "");
        }
        qemu_backend_detach(qv);
        unlink(qv->paths.qmp);
        unlink(qv->paths.agent);
        unlink(qv->paths.pid);
        qemu_backend_wake(qv);
}

/* Returns true when the process has exited (and handles it). */
static bool check_exit(struct qemu_vm *qv)
{
        int status = -1;

        if (!qv->running || qv->pidfd < 0)
                return !qv->running;
        if (qemu_proc_exited(qv->pidfd, &status) != 1)
                return false;
        instance_gone(qv, status);
        return true;
}

static void on_pidfd(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what;
        check_exit(arg);
}

void qemu_backend_schedule_poll(struct qemu_vm *qv)
{
        bool settled = qemu_mem_settled(&qv->mem);

        if (qv->poll_ev)
                qemu_timer_in(qv->poll_ev, !settled && mono_ms() < qv->busy_until_ms
                                               ? QEMU_POLL_BUSY_MS
                                               : QEMU_POLL_MS);
}

static void on_poll(evutil_socket_t fd, short what, void *arg)
{
        struct qemu_vm *qv = arg;

        (void)fd, (void)what;
        if (check_exit(qv))
                return;
        if (++qv->polls % LOG_TRIM_POLLS == 0)
                qemu_proc_log_trim(qv->paths.console, LOG_CAP);
        qemu_monitor_readback(qv);
        qemu_backend_schedule_poll(qv);
}

/* As the QEMU user (through the launcher): dynmemd itself may signal no other user. */
void qemu_backend_kill(struct qemu_vm *qv, int sig)
{
        int r;

        if (qv->pidfd < 0 || !qv->qb->launch)
                return;
        r = qemu_launch_kill(qv->qb->launch, qv->pidfd, sig);
        if (r < 0 && log_ratelimit_ok(&qv->rl, mono_ms()))
                log_msg(LOG_ERR, "vm \"%s\": cannot send signal %d to QEMU pid %d: %s%s",
                        qv->vm->name, sig, (int)qv->pid, strerror(-r),
                        r == -EPERM ? " (started as root by an older dynmemd? quit it over QMP, "
                                      "or as root)"
                                    : "");
}

static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
        struct qemu_vm *qv = arg;

        (void)fd, (void)what;
        if (check_exit(qv))
                return;
        if (qv->stop_phase == STOP_POWERDOWN) {
                log_msg(LOG_NOTICE, "vm \"%s\": the guest did not power off in %llu ms; quitting",
                        qv->vm->name, (unsigned long long)qv->cfg.shutdown_timeout_ms);
                qv->stop_phase = STOP_QUIT;
                if (qemu_monitor_simple(qv, "quit") < 0)
                        qemu_backend_kill(qv, SIGTERM);
                qemu_timer_in(qv->stop_ev, QUIT_WAIT_MS);
        } else {
                qv->stop_phase = STOP_KILL;
                qemu_backend_kill(qv, SIGKILL);
        }
}

/* ---- an instance's events ---- */

void qemu_backend_instance_begins(struct qemu_vm *qv, const struct qemu_layout *l, bool started)
{
        qemu_mem_init(&qv->mem, l, started);
        qv->layout_verified = started;
        qv->target_set = false;
        qemu_signal_reset(&qv->sig);
        qv->guest_resets = 0;
        qv->reset_unseen = false;
        qv->stop_phase = STOP_NONE;
        qv->running = true;
}

int qemu_backend_arm(struct qemu_vm *qv)
{
        struct event_base *base = qv->qb->env.base;

        qv->pid_ev = event_new(base, qv->pidfd, EV_READ | EV_PERSIST, on_pidfd, qv);
        qv->poll_ev = evtimer_new(base, on_poll, qv);
        qv->stop_ev = evtimer_new(base, on_stop_timer, qv);
        if (!qv->pid_ev || !qv->poll_ev || !qv->stop_ev || event_add(qv->pid_ev, NULL) < 0)
                return -ENOMEM;
        qemu_backend_schedule_poll(qv);
        return 0;
}

/* ---- keys ---- */

static int qemu_check_vm(struct backend *b, const struct config *cfg, const struct config_vm *cvm,
                         struct config_diag *diag)
{
        struct qemu_vm_config c;
        int r = qemu_config_parse(cfg, cvm, priv(b)->image_dir, true, &c, diag);

        if (r == 0)
                qemu_config_free(&c);
        return r;
}

static struct qemu_vm *vm_new(struct qemu_backend *qb, struct vm *vm, char *err, size_t errlen)
{
        struct qemu_vm *qv = calloc(1, sizeof(*qv));

        if (!qv || (qb->n == qb->cap &&
                    !(qb->vms = reallocarray(qb->vms, qb->cap = qb->cap ? qb->cap * 2 : 16,
                                             sizeof(*qb->vms))))) {
                free(qv);
                snprintf(err, errlen, "out of memory");
                return NULL;
        }
        /* Without directories (a backend made only to check a config) VMs cannot run. */
        if (qb->run_dir && qb->state_dir &&
            qemu_paths_make(qb->run_dir, qb->state_dir, vm->name, &qv->paths, err, errlen) < 0) {
                free(qv);
                return NULL;
        }
        qv->qb = qb;
        qv->vm = vm;
        qv->pidfd = -1;
        qv->rl = LOG_RATELIMIT(10, 6);
        qv->wake = BUCKET(QEMU_WAKE_RATE, QEMU_WAKE_BURST);
        qb->vms[qb->n++] = qv;
        vm->backend_data = qv;
        return qv;
}

static int qemu_configure_vm(struct backend *b, struct vm *vm, const struct config *cfg,
                             const struct config_vm *cvm, char *err, size_t errlen)
{
        struct qemu_backend *qb = priv(b);
        struct config_diag diag = {0};
        struct qemu_vm_config c;
        struct qemu_vm *qv = vm->backend_data;

        /* Files are checked at start, where a missing one is the start's error. */
        if (qemu_config_parse(cfg, cvm, qb->image_dir, false, &c, &diag) < 0) {
                snprintf(err, errlen, "%s", diag.count ? diag.messages[0] : "bad QEMU keys");
                config_diag_free(&diag);
                return -EINVAL;
        }
        config_diag_free(&diag);
        if (!qv && !(qv = vm_new(qb, vm, err, errlen))) {
                qemu_config_free(&c);
                return -ENOMEM;
        }
        qemu_config_free(&qv->cfg);
        qv->cfg = c; /* a running VM uses it from its next start */
        qv->cfg_valid = true;
        return 0;
}

/* ---- stop, targets, observations ---- */

static int qemu_stop(struct backend *b, struct vm *vm, bool force, uint64_t now_ms)
{
        struct qemu_vm *qv = vm->backend_data;

        (void)b, (void)now_ms;
        if (qv && qv->probe) { /* still asking the binary what it offers: no QEMU of the VM yet */
                qemu_start_cancel_probe(qv, true);
                return 0;
        }
        if (!qv || !qv->running || check_exit(qv))
                return 0;
        if (qv->start_state == QEMU_START_PENDING) { /* nothing booted yet to shut down */
                qv->stop_phase = STOP_KILL;
                qemu_backend_kill(qv, SIGKILL);
                return 0;
        }
        if (force) {
                qv->stop_phase = STOP_QUIT;
                if (qemu_monitor_simple(qv, "quit") < 0) {
                        qv->stop_phase = STOP_KILL;
                        qemu_backend_kill(qv, SIGKILL);
                        return 0;
                }
                qemu_timer_in(qv->stop_ev, QUIT_WAIT_MS);
                return 0;
        }
        if (qv->stop_phase != STOP_NONE)
                return 0; /* already on its way */
        qv->stop_phase = STOP_POWERDOWN;
        if (qemu_monitor_simple(qv, "system_powerdown") < 0)
                log_msg(LOG_NOTICE, "vm \"%s\": no QMP connection to ask for a power-off",
                        vm->name);
        qemu_timer_in(qv->stop_ev, qv->cfg.shutdown_timeout_ms);
        return 0;
}

static int qemu_set_target(struct backend *b, struct vm *vm, uint64_t target_bytes, uint64_t now_ms)
{
        struct qemu_vm *qv = vm->backend_data;

        (void)b, (void)now_ms;
        if (!qv || !qv->running)
                return -ESRCH;
        qv->mem.target = qemu_mem_clamp_target(&qv->mem, target_bytes);
        qv->target_set = true;
        qemu_monitor_apply(qv);
        return 0;
}

static int qemu_observe(struct backend *b, struct vm *vm, uint64_t now_ms,
                        struct vm_observation *ret)
{
        struct qemu_vm *qv = vm->backend_data;
        struct vm_observation o = {.alive = true};
        uint64_t rss;

        (void)b;
        if (!qv || check_exit(qv)) {
                *ret = (struct vm_observation){.alive = false};
                return 0;
        }
        o.assigned_bytes = qv->mem.known ? qemu_mem_assigned(&qv->mem) : qv->guess_assigned;
        o.may_hold_bytes = qv->mem.known ? qemu_mem_may_hold(&qv->mem, mono_ms()) : 0;
        o.rebooted = qv->reset_unseen;
        qv->reset_unseen = false;
        qemu_signal_observe(&qv->sig, &qv->mem, now_ms, mono_ms(), &o);
        if (qemu_proc_rss(qv->pid, &rss) == 0)
                o.host_rss_bytes = rss;
        *ret = o;
        return 0;
}

static uint64_t qemu_max_honourable(struct backend *b, const struct vm *vm)
{
        const struct qemu_vm *qv = vm->backend_data;

        (void)b;
        if (!qv || !qv->running)
                return SETTINGS_SIZE_MAX; /* devices are sized at the next start */
        return qv->mem.layout.startup + qv->mem.layout.region;
}

/* ---- reattach ---- */

static int qemu_reattach(struct backend *b, struct vm *vm, uint64_t now_ms)
{
        struct qemu_vm *qv = vm->backend_data;
        struct qemu_layout l;
        uint64_t start = 0;
        pid_t pid;
        int r;

        (void)now_ms;
        if (!qv || !qv->paths.qmp || !priv(b)->env.base)
                return -EINVAL;
        if (qv->running)
                return 0;
        if ((pid = qemu_start_leftover(qv, &start)) <= 0)
                return -ENOENT;
        if ((qv->pidfd = pidfd_open(pid, 0)) < 0)
                return errno == ESRCH ? -ENOENT : -errno;
        /* The pidfd pins the process: check again that it is the one we looked at. */
        r = qemu_start_is_ours(qv, pid, start) ? 0 : -ENOENT;
        if (r < 0 || qemu_proc_exited(qv->pidfd, NULL) == 1) {
                close(qv->pidfd);
                qv->pidfd = -1;
                return -ENOENT;
        }
        qv->pid = pid;
        qv->kvm = qemu_proc_cmdline_has(pid, "kvm") == 0;
        snprintf(qv->accel, sizeof(qv->accel), "%s (found running)", qv->kvm ? "kvm" : "tcg");
        struct stat st;
        qv->log_start = stat(qv->paths.console, &st) == 0 ? (uint64_t)st.st_size : 0;
        qemu_layout_from_settings(&vm->settings, &l);
        qemu_backend_instance_begins(qv, &l, false);
        qv->features = (struct qemu_features){0}; /* the running QEMU will say */
        qv->guess_assigned = vm->obs.assigned_bytes ? vm->obs.assigned_bytes : l.startup;
        if ((r = qemu_backend_arm(qv)) < 0) {
                qemu_backend_detach(qv);
                return r;
        }
        if ((r = qemu_monitor_connect(qv)) < 0) {
                log_msg(LOG_WARNING,
                        "vm \"%s\": QEMU pid %d runs but its QMP socket %s: %s; "
                        "retrying",
                        vm->name, (int)pid, qv->paths.qmp, strerror(-r));
                qemu_monitor_reconnect_later(qv);
        }
        log_msg(LOG_INFO, "vm \"%s\": reattached to QEMU pid %d", vm->name, (int)pid);
        return 0;
}

/* ---- the guest restarting ---- */

void qemu_backend_guest_reset(struct qemu_vm *qv, const char *reason)
{
        if (!qv->running)
                return;
        qv->guest_resets++;
        qv->reset_unseen = true;
        qemu_signal_reboot(&qv->sig);
        qemu_mem_reset(&qv->mem, mono_ms());
        /* A QEMU its guest took over may send RESET events without end. */
        if (log_ratelimit_ok(&qv->rl, mono_ms()))
                log_msg(LOG_INFO, "vm \"%s\": the machine was reset (%s)", qv->vm->name,
                        reason ? reason : "no reason given");
        qemu_monitor_readback(qv);
        /* Within this VM's share of extra cycles, as a stall report's. */
        if (bucket_take(&qv->wake, (double)mono_ms()))
                qemu_backend_wake(qv);
}

/* ---- the guest agent ---- */

const char *qemu_backend_agent_socket(const struct vm *vm)
{
        const struct qemu_vm *qv = vm->backend_data;

        return qv ? qv->paths.agent : NULL;
}

/* ---- the agent's connection ---- */

/*
 * A fresh estimate: lib/agent has checked every figure against the VM's limit
 * (startup + virtio-mem region), so it is taken as it is. A stall that began
 * since the last one asks for a cycle now, within this VM's share
 * (QEMU_WAKE_RATE), after the estimate is in place for it.
 */
static void on_agent_report(void *userdata, const struct agent_estimate *e)
{
        struct qemu_vm *qv = userdata;
        bool urgent = qemu_signal_agent(&qv->sig, e);

        if (urgent && bucket_take(&qv->wake, (double)mono_ms()))
                qemu_backend_wake(qv);
}

static const struct qemu_agent_hooks agent_hooks = {.report = on_agent_report};

void qemu_backend_agent_start(struct qemu_vm *qv)
{
        uint64_t limit = qv->mem.layout.startup + qv->mem.layout.region;
        int r;

        if (qv->agent_conn || !qv->running)
                return;
        /* A new parser counts urgent reports from 0. */
        qv->sig.agent = (struct agent_estimate){0};
        qv->sig.agent_have = false;
        qv->sig.urgent_observed = 0;
        qv->sig.evicted_observed = 0;
        r = qemu_agent_new(qv->qb->env.base, qv->vm->name, qv->paths.agent, limit, &agent_hooks, qv,
                           &qv->agent_conn);
        if (r < 0) {
                log_msg(LOG_WARNING, "vm \"%s\": no guest agent connection: %s", qv->vm->name,
                        strerror(-r));
                return;
        }
        qemu_agent_connect_now(qv->agent_conn);
}

static const char *signal_source(const struct vm *vm)
{
        const struct qemu_vm *qv = vm->backend_data;

        return qemu_signal_name(qv && qv->running ? qv->sig.source : QEMU_SIGNAL_NONE);
}

int qemu_backend_agent_drop(struct vm *vm)
{
        struct qemu_vm *qv = vm->backend_data;
        struct qemu_agent_stats st;

        if (!qv || !qv->agent_conn)
                return -ESRCH;
        qemu_agent_stats(qv->agent_conn, &st);
        if (!st.connected)
                return -ESRCH;
        qemu_agent_drop(qv->agent_conn);
        return 0;
}

static void qemu_describe(struct backend *b, const struct vm *vm,
                          struct backend_vm_description *ret)
{
        const struct qemu_vm *qv = vm->backend_data;

        (void)b;
        ret->signal = signal_source(vm);
        if (!qv || !qv->running)
                return;
        ret->pid = qv->pid;
        snprintf(ret->accelerator, sizeof(ret->accelerator), "%s", qv->accel);
        unsigned v[3] = {0};
        if (qv->qmp)
                qmp_version(qv->qmp, &v[0], &v[1], &v[2]);
        if (!v[0] && qv->features.known) /* QMP reconnecting: what was chosen or seen */
                memcpy(v, qv->features.version, sizeof(v));
        if (v[0])
                snprintf(ret->version, sizeof(ret->version), "%u.%u.%u", v[0], v[1], v[2]);
        qemu_features_to_description(&qv->features, ret);
        ret->resizing = qv->target_set && !qemu_mem_settled(&qv->mem);
        ret->agent_state = agent_state_name(AGENT_DISCONNECTED);
        if (qv->agent_conn) {
                const struct agent *a = qemu_agent_parser(qv->agent_conn);
                ret->agent_state = agent_state_name(agent_state(a));
                ret->agent_version = agent_version(a);
                ret->agent_caps = agent_caps(a);
        }
}

int qemu_backend_vm_info(const struct vm *vm, struct qemu_vm_info *ret)
{
        const struct qemu_vm *qv = vm->backend_data;
        struct qemu_agent_stats st = {0};

        if (!qv)
                return -ESRCH;
        *ret = (struct qemu_vm_info){
            .running = qv->running,
            .kvm = qv->kvm,
            .qmp_ready = qmp_is_ready(qv->qmp),
            .memory_known = qv->mem.known,
            .startup_bytes = qv->mem.layout.startup,
            .vmem_region_bytes = qv->mem.layout.region,
            .balloon_actual_bytes = qv->mem.actual,
            .plugged_bytes = qv->mem.plugged,
            .requested_bytes = qv->mem.requested,
            .guest_resets = qv->guest_resets,
            .features = qv->features,
            .console_log = qv->paths.console,
        };
        qemu_describe(NULL, vm, &ret->desc);
        if (qv->agent_conn) {
                qemu_agent_stats(qv->agent_conn, &st);
                ret->agent_connected = st.connected;
                ret->agent_connects = st.connects;
                ret->agent = *agent_counters(qemu_agent_parser(qv->agent_conn));
        }
        return 0;
}

/* ---- the backend ---- */

static void qemu_forget_vm(struct backend *b, struct vm *vm)
{
        struct qemu_backend *qb = priv(b);
        struct qemu_vm *qv = vm->backend_data;

        if (!qv)
                return;
        qemu_backend_detach(qv);
        for (size_t i = 0; i < qb->n; i++) {
                if (qb->vms[i] == qv) {
                        qb->vms[i] = qb->vms[--qb->n];
                        break;
                }
        }
        qemu_config_free(&qv->cfg);
        qemu_paths_free(&qv->paths);
        free(qv);
        vm->backend_data = NULL;
}

/* Guests keep running: a new backend reattaches to them. */
static void qemu_destroy(struct backend *b)
{
        struct qemu_backend *qb;

        if (!b)
                return;
        qb = priv(b);
        while (qb->n > 0)
                qemu_forget_vm(b, qb->vms[0]->vm);
        qemu_probe_cache_free(qb); /* its QEMUs are killed through the launcher */
        qemu_launch_free(qb->launch);
        free(qb->vms);
        free(qb->run_dir);
        free(qb->state_dir);
        free(qb->image_dir);
        free(qb);
        free(b);
}

const struct backend_ops qemu_backend_ops = {
    .name = "qemu",
    .vm_keys = qemu_vm_keys,
    .check_vm = qemu_check_vm,
    .configure_vm = qemu_configure_vm,
    .start = qemu_backend_start,
    .start_result = qemu_backend_start_result,
    .stop = qemu_stop,
    .set_target = qemu_set_target,
    .observe = qemu_observe,
    .max_honourable = qemu_max_honourable,
    .describe = qemu_describe,
    .reattach = qemu_reattach,
    .forget_vm = qemu_forget_vm,
    .destroy = qemu_destroy,
};

const char *qemu_backend_image_dir(struct backend *b)
{
        return priv(b)->image_dir;
}

int qemu_backend_new(const struct config *cfg, const struct backend_env *env, struct backend **ret,
                     char *err, size_t errlen)
{
        struct backend *b = calloc(1, sizeof(*b));
        struct qemu_backend *qb = calloc(1, sizeof(*qb));
        const char *image = getenv(QEMU_GUEST_IMAGE_ENV);
        const struct backend_env none = {0};

        if (!env)
                env = &none;
        if (!b || !qb || (env->run_dir && !(qb->run_dir = strdup(env->run_dir))) ||
            (env->state_dir && !(qb->state_dir = strdup(env->state_dir))) ||
            !(qb->image_dir = strdup(image && *image ? image : DYNMEM_GUEST_IMAGE_DIR))) {
                if (qb)
                        free(qb->run_dir), free(qb->state_dir);
                free(b), free(qb);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        qb->env = *env;
        qb->env.run_dir = qb->run_dir;
        qb->env.state_dir = qb->state_dir;
        b->ops = &qemu_backend_ops;
        b->priv = qb;
        /* A backend that runs VMs (not one made to check a file) starts QEMU as its user. */
        if (qb->run_dir && qb->env.base) {
                int r = qemu_launch_new(cfg ? cfg->host.qemu_user : NULL, &qb->launch, err, errlen);
                if (r < 0) {
                        qemu_destroy(b);
                        return r;
                }
        }
        *ret = b;
        return 0;
}

const struct qemu_identity *qemu_backend_identity(struct backend *b)
{
        return priv(b)->launch ? qemu_launch_identity(priv(b)->launch) : NULL;
}
