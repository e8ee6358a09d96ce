/*
 * qemu_start: starting a VM's QEMU without waiting for it. start() checks
 * the files, opens what QEMU is handed, has the launcher run QEMU as its
 * user, writes the pid file and returns; the loop finishes the start when
 * QMP answers (qemu_monitor.c calls qemu_backend_start_done()), or reports
 * QEMU's exit, a 20 s silence or a QMP refusal. A binary's first start asks
 * it what it offers before that (qemu_probe.c), once more if the answer was
 * not QEMU's own word (it was silent, or QMP ended and it stayed). Also how
 * a running QEMU is recognised as this VM's (its pid file, its command line).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qemu.h"
#include "qemu_int.h"
#include "qemu_launch.h"
#include "units.h"

static int check_files(struct qemu_vm *qv, char **ret_binary, char *err, size_t errlen)
{
        const char *files[][2] = {
            {"kernel", qv->cfg.kernel}, {"initrd", qv->cfg.initrd}, {"disk", qv->cfg.disk}};
        int r;

        for (size_t i = 0; i < sizeof(files) / sizeof(*files); i++) {
                if (files[i][1] && access(files[i][1], R_OK) < 0) {
                        r = -errno;
                        snprintf(err, errlen, "%s %s: %s%s", files[i][0], files[i][1], strerror(-r),
                                 qv->cfg.bundled_image && i < 2 ? " (build the guest image)" : "");
                        return r;
                }
        }
        if ((r = qemu_proc_find_binary(qv->cfg.qemu, ret_binary)) < 0) {
                snprintf(err, errlen, "QEMU binary %s: %s", qv->cfg.qemu,
                         r == -ENOENT && !strchr(qv->cfg.qemu, '/') ? "not found in PATH"
                                                                    : strerror(-r));
                return r;
        }
        return 0;
}

/*
 * Is pid this VM's QEMU? dynmemd's pid file gives its start time, and its
 * command line has the VM's -name; a QEMU an older dynmemd started (as root,
 * writing its own pid file) has this VM's QMP socket path on its command line.
 */
bool qemu_start_is_ours(const struct qemu_vm *qv, pid_t pid, uint64_t start)
{
        char *word = start ? qemu_name_arg(qv->vm->name) : qemu_qmp_chardev_arg(qv->paths.qmp);
        uint64_t now_start = 0;
        bool ours = word && qemu_proc_cmdline_has(pid, word) == 0 &&
                    (!start || (qemu_proc_start_time(pid, &now_start) == 0 && now_start == start));

        free(word);
        return ours;
}

/* The pid of a QEMU of this VM that still runs (from an earlier daemon), or 0. */
pid_t qemu_start_leftover(struct qemu_vm *qv, uint64_t *ret_start)
{
        pid_t pid = 0;
        uint64_t start = 0;

        if (qemu_proc_read_pidfile(qv->paths.pid, &pid, &start) < 0 ||
            !qemu_start_is_ours(qv, pid, start))
                return 0;
        if (ret_start)
                *ret_start = start;
        return pid;
}

static int make_dir(const char *path)
{
        if (mkdir(path, 0750) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

/* A header in the console log (append); returns the log's size after it. */
static uint64_t log_header(struct qemu_vm *qv, int fd, char *const *argv)
{
        const struct qemu_identity *id = qemu_launch_identity(qv->qb->launch);
        time_t now = time(NULL);
        char when[64];
        struct tm tm;

        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", localtime_r(&now, &tm));
        dprintf(fd, "\n==== dynmem: starting vm \"%s\" at %s (%s), as user %s (uid %u), kernel %s",
                qv->vm->name, when, qv->accel, id->name, (unsigned)id->uid, qv->cfg.kernel);
        if (qv->cfg.initrd)
                dprintf(fd, ", initrd %s", qv->cfg.initrd);
        dprintf(fd, ":");
        for (char *const *a = argv; *a; a++)
                dprintf(fd, strpbrk(*a, " \t\"'") ? " '%s'" : " %s", *a);
        dprintf(fd, "\n");
        off_t end = lseek(fd, 0, SEEK_END);
        return end > 0 ? (uint64_t)end : 0;
}

/*
 * QEMU did not come up: the cause in one sentence, without the VM's name
 * (whoever shows it names the VM, as for every start error of the backend);
 * the log's line names it.
 */
void qemu_start_failed(struct qemu_vm *qv, int r, char *err, size_t errlen)
{
        char last[200] = "";

        qemu_proc_log_last_line(qv->paths.console, qv->log_start, last, sizeof(last));
        /* QEMU's messages start with a timestamp (-msg timestamp=on): not needed here. */
        const char *msg = last;
        if (strlen(msg) > 28 && msg[4] == '-' && msg[10] == 'T' && strchr(msg, 'Z') &&
            strchr(msg, 'Z')[1] == ' ')
                msg = strchr(msg, 'Z') + 2;
        if (r == -ECHILD)
                snprintf(err, errlen, "QEMU exited at start: %s",
                         msg[0] ? msg : "no message (see the console log)");
        else if (r == -ETIMEDOUT)
                snprintf(err, errlen, "QEMU did not answer on %s within %d s; killed",
                         qv->paths.qmp, QEMU_START_WAIT_MS / 1000);
        else if (r == -ECANCELED)
                snprintf(err, errlen, "stopped before QEMU finished starting");
        else if (r == -EPROTO)
                snprintf(err, errlen, "QEMU did not speak QMP on %s", qv->paths.qmp);
        else
                snprintf(err, errlen, "cannot talk to QEMU: %s", strerror(-r));
        log_msg(LOG_ERR, "vm \"%s\": %s (console log %s)", qv->vm->name, err, qv->paths.console);
}

/* QEMU, as its user, with what it is handed (the launcher waits for its exec). */
static int launch(struct qemu_vm *qv, const struct qemu_layout *l, char *binary, int log_fd,
                  char *err, size_t errlen)
{
        const struct qemu_identity *id = qemu_launch_identity(qv->qb->launch);
        struct qemu_vm_config c = qv->cfg;
        struct qemu_handover h;
        char **argv = NULL, why[320];
        int r;

        if ((r = qemu_handover_open(&qv->cfg, &qv->paths, log_fd, id, qv->qb->launch, &h, why,
                                    sizeof(why))) < 0) {
                snprintf(err, errlen, "%s", why);
                return r;
        }
        c.qemu = binary;
        if ((r = qemu_argv_build(qv->vm->name, &c, l, &qv->paths, &h, qv->kvm, &qv->features,
                                 &argv)) == 0) {
                qv->log_start = log_header(qv, log_fd, argv);
                r = qemu_launch_spawn(qv->qb->launch, argv, log_fd, h.fds, h.n, &qv->pid,
                                      &qv->pidfd, why, sizeof(why));
                if (r < 0)
                        snprintf(err, errlen, "%s", why);
        } else {
                snprintf(err, errlen, "out of memory");
        }
        qemu_handover_close(&h, log_fd);
        qemu_strv_free(argv);
        if (r < 0) {
                unlink(qv->paths.qmp);
                unlink(qv->paths.agent);
        }
        return r;
}

/* The VM's console log, opened to append what QEMU and dynmem write; -errno with err. */
static int open_console_log(const struct qemu_vm *qv, char *err, size_t errlen)
{
        char why[PATH_MAX + 96];
        int fd = qemu_open_console_log(qv->paths.console, why, sizeof(why));

        if (fd < 0)
                snprintf(err, errlen, "%s", why);
        return fd;
}

/* Spawn QEMU; the start goes on in the loop (QMP). On failure nothing is left running. */
static int spawn(struct qemu_vm *qv, const struct qemu_layout *l, char *binary, char *err,
                 size_t errlen)
{
        uint64_t start = 0;
        int r, log_fd;

        unlink(qv->paths.pid);
        if ((log_fd = open_console_log(qv, err, errlen)) < 0)
                return log_fd;
        r = launch(qv, l, binary, log_fd, err, errlen);
        close(log_fd);
        if (r < 0)
                return r;
        /* The pid file lets a later dynmemd find this QEMU (reattach), and no other. */
        if (qemu_proc_start_time(qv->pid, &start) < 0 ||
            (r = qemu_proc_write_pidfile(qv->paths.pid, qv->pid, start)) < 0)
                log_msg(LOG_WARNING,
                        "vm \"%s\": pid file %s: %s; a restarted dynmemd will not "
                        "find this QEMU",
                        qv->vm->name, qv->paths.pid, strerror(r < 0 ? -r : EINVAL));
        return 0;
}

/* The start's deadline: QEMU that has not answered on QMP by now is killed. */
static void on_start_timer(evutil_socket_t fd, short what, void *arg)
{
        struct qemu_vm *qv = arg;

        (void)fd, (void)what;
        if (qv->start_state != QEMU_START_PENDING)
                return;
        qv->start_killed = qv->start_closed ? -EPROTO : -ETIMEDOUT;
        /* instance_gone() reports it once the pidfd says it is gone. */
        qemu_backend_kill(qv, SIGKILL);
}

void qemu_backend_start_closed(struct qemu_vm *qv, const char *why)
{
        if (qv->start_state != QEMU_START_PENDING || qv->start_killed)
                return; /* killed by the start itself: its reason stands */
        /* QEMU that fails at start closes QMP first, then exits with its message: wait 2 s. */
        qv->start_closed = true;
        log_msg(LOG_DEBUG, "vm \"%s\": QMP closed while starting: %s", qv->vm->name, why);
        qemu_timer_in(qv->start_ev, 2000);
}

void qemu_backend_start_done(struct qemu_vm *qv)
{
        if (qv->start_state != QEMU_START_PENDING)
                return;
        qv->start_state = QEMU_START_DONE;
        event_del(qv->start_ev);
        log_msg(LOG_INFO,
                "vm \"%s\": QEMU pid %d started, accel %s, %llu MiB base + %llu MiB "
                "virtio-mem, console %s",
                qv->vm->name, (int)qv->pid, qv->accel,
                (unsigned long long)(qv->mem.layout.startup / MIB),
                (unsigned long long)(qv->mem.layout.region / MIB), qv->paths.console);
        qemu_backend_wake(qv);
}

int qemu_backend_start_result(struct backend *b, struct vm *vm, char *err, size_t errlen)
{
        struct qemu_vm *qv = vm->backend_data;
        enum qemu_start_state s = qv ? qv->start_state : QEMU_START_FAILED;

        (void)b;
        if (s == QEMU_START_PENDING)
                return 0;
        if (qv)
                qv->start_state = QEMU_START_NONE;
        if (s != QEMU_START_FAILED)
                return 1;
        snprintf(err, errlen, "%s", qv ? qv->start_error : "no QEMU state");
        return -EIO;
}

/* Nothing of the VM runs, its files and binary are there, the folders exist. */
static int check_can_start(struct qemu_backend *qb, struct qemu_vm *qv, char **ret_binary,
                           char *err, size_t errlen)
{
        const char *dir = NULL;
        pid_t old;
        int r;

        if (qv->running) {
                snprintf(err, errlen, "QEMU already runs (pid %d)", (int)qv->pid);
                return -EBUSY;
        }
        if ((old = qemu_start_leftover(qv, NULL)) > 0) {
                snprintf(err, errlen, "a QEMU of this VM still runs (pid %d)", (int)old);
                return -EEXIST;
        }
        if ((r = check_files(qv, ret_binary, err, errlen)) < 0)
                return r;
        if ((r = qemu_accel_choose(qv->cfg.accel, qb->launch, qemu_launch_identity(qb->launch),
                                   &qv->kvm, qv->accel, sizeof(qv->accel))) < 0)
                snprintf(err, errlen, "%s", qv->accel);
        else if ((r = make_dir(dir = qb->run_dir)) < 0 || (r = make_dir(dir = qb->state_dir)) < 0)
                snprintf(err, errlen, "directory %s: %s", dir, strerror(-r));
        if (r < 0) {
                free(*ret_binary);
                *ret_binary = NULL;
        }
        return r;
}

/* Log what was chosen and why: at info the first time and when it changes, else at debug. */
static void log_features(struct qemu_vm *qv, const char *binary)
{
        char line[sizeof(qv->features_logged)];

        qemu_features_describe(&qv->features, line, sizeof(line));
        log_msg(strcmp(line, qv->features_logged) == 0 ? LOG_DEBUG : LOG_INFO, "vm \"%s\": %s (%s)",
                qv->vm->name, line, binary);
        snprintf(qv->features_logged, sizeof(qv->features_logged), "%s", line);
}

/* Choose from what binary offers, launch it; the rest of the start happens in the loop. */
static int start_with(struct qemu_vm *qv, const struct qemu_caps *caps, char *binary, char *err,
                      size_t errlen)
{
        struct qemu_backend *qb = qv->qb;
        struct qemu_layout l;
        char why[256];
        int r;

        qemu_layout_from_settings(&qv->vm->settings, &l);
        if ((r = qemu_caps_choose(caps, qv->cfg.machine, l.region > 0, &qv->features, why,
                                  sizeof(why))) < 0) {
                snprintf(err, errlen, "%s", why);
                return r;
        }
        if ((r = spawn(qv, &l, binary, err, errlen)) < 0)
                return r;
        qemu_backend_instance_begins(qv, &l, true);
        qv->start_state = QEMU_START_PENDING;
        qv->start_closed = false;
        qv->start_killed = 0;
        if ((r = qemu_backend_arm(qv)) < 0 ||
            !(qv->start_ev = evtimer_new(qb->env.base, on_start_timer, qv))) {
                qemu_backend_kill(qv, SIGKILL);
                waitid((idtype_t)P_PIDFD, (id_t)qv->pidfd, &(siginfo_t){0}, WEXITED | WNOHANG);
                qv->start_state = QEMU_START_NONE;
                qemu_backend_detach(qv);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        log_features(qv, binary);
        /* The rest happens in the loop: QMP's greeting, its answer, or the deadline. */
        qemu_timer_in(qv->start_ev, QEMU_START_WAIT_MS);
        if (qemu_monitor_connect(qv) < 0)
                qemu_monitor_reconnect_later(qv);
        return BACKEND_START_PENDING;
}

/* A start that had to wait for a probe (or was stopped) fails: say why once it is asked. */
static void start_failed_later(struct qemu_vm *qv, const char *err)
{
        qv->start_state = QEMU_START_FAILED;
        snprintf(qv->start_error, sizeof(qv->start_error), "%s", err);
        qemu_backend_wake(qv);
}

static int probe_first(struct qemu_vm *qv, char *binary, char *err, size_t errlen);

static void on_probed(const struct qemu_caps *caps, const char *why, bool again, void *userdata)
{
        struct qemu_vm *qv = userdata;
        char err[sizeof(qv->start_error)];
        int r = -EIO;

        qv->probe = NULL;
        if (!caps && again && !qv->probe_asked_again) {
                /* Not QEMU's own word (it was silent, or QMP ended and it stayed): ask once
                 * more; it was killed, nothing of it is left. */
                char *binary = qv->probe_binary;
                log_msg(LOG_WARNING,
                        "vm \"%s\": QEMU %s did not answer what it offers (%s); asking again",
                        qv->vm->name, binary, why);
                qv->probe_binary = NULL;
                qv->probe_asked_again = true;
                if ((r = probe_first(qv, binary, err, sizeof(err))) >= 0)
                        return; /* probe_first() keeps binary */
                qv->probe_binary = binary;
                log_msg(LOG_ERR, "vm \"%s\": %s", qv->vm->name, err);
        } else if (caps) {
                r = start_with(qv, caps, qv->probe_binary, err, sizeof(err));
        } else {
                /* After asking again, the second answer's reason; the first one was logged. */
                snprintf(err, sizeof(err), "cannot ask QEMU %s what it offers%s: %s",
                         qv->probe_binary, qv->probe_asked_again ? " (asked twice)" : "", why);
                log_msg(LOG_ERR, "vm \"%s\": %s (console log %s)", qv->vm->name, err,
                        qv->paths.console);
        }
        free(qv->probe_binary);
        qv->probe_binary = NULL;
        if (r < 0)
                start_failed_later(qv, err);
}

/* Ask binary what it offers first (once per binary); the start goes on in on_probed(). */
static int probe_first(struct qemu_vm *qv, char *binary, char *err, size_t errlen)
{
        const struct qemu_identity *id = qemu_launch_identity(qv->qb->launch);
        char why[320];
        int r, log_fd;

        if ((log_fd = open_console_log(qv, err, errlen)) < 0)
                return log_fd;
        dprintf(log_fd, "\n==== dynmem: asking %s what it offers, as user %s (uid %u)\n", binary,
                id->name, (unsigned)id->uid);
        r = qemu_probe_start(qv->qb, binary, qv->paths.probe, qv->paths.console, log_fd, on_probed,
                             qv, &qv->probe, why, sizeof(why));
        close(log_fd);
        if (r < 0) {
                snprintf(err, errlen, "cannot ask QEMU %s what it offers: %s", binary, why);
                return r;
        }
        qv->probe_binary = binary;
        qv->start_state = QEMU_START_PENDING;
        return BACKEND_START_PENDING;
}

void qemu_start_cancel_probe(struct qemu_vm *qv, bool say)
{
        if (!qv->probe)
                return;
        qemu_probe_cancel(qv->probe);
        qv->probe = NULL;
        free(qv->probe_binary);
        qv->probe_binary = NULL;
        if (say) {
                char err[sizeof(qv->start_error)];
                snprintf(err, sizeof(err), "stopped before QEMU finished starting");
                start_failed_later(qv, err);
        } else {
                qv->start_state = QEMU_START_NONE;
        }
}

/*
 * Runs in the cycle: what it does before returning is local and bounded
 * (stat and access of the VM's files, the pid file and /proc/PID/cmdline, a
 * mkdir, binding two sockets, opening the files QEMU is handed, one header
 * appended to the console log, the launcher's clone and exec); everything
 * that waits for QEMU happens later in the loop (QMP, the deadline timer).
 * The first start with a binary asks it what it offers first, in the loop
 * too (qemu_probe.c): the same bounded steps for a QEMU with no guest.
 */
int qemu_backend_start(struct backend *b, struct vm *vm, uint64_t now_ms, char *err, size_t errlen)
{
        struct qemu_backend *qb = b->priv;
        struct qemu_vm *qv = vm->backend_data;
        const struct qemu_caps *caps;
        char *binary = NULL;
        int r;

        (void)now_ms;
        if (!qv || !qv->cfg_valid || !qv->paths.qmp || !qb->env.base || !qb->launch) {
                snprintf(err, errlen, "no QEMU configuration, event loop or run directory");
                return -EINVAL;
        }
        if (qv->probe) {
                snprintf(err, errlen, "already starting");
                return -EBUSY;
        }
        if ((r = check_can_start(qb, qv, &binary, err, errlen)) < 0)
                return r;
        qv->probe_asked_again = false;
        if (!(caps = qemu_probe_cached(qb, binary)))
                r = probe_first(qv, binary, err, errlen);
        else
                r = start_with(qv, caps, binary, err, errlen);
        if (r < 0 || caps)
                free(binary);
        return r;
}
