/*
 * qemu_probe: asks a QEMU binary what it offers before a VM's command line
 * is built, without waiting for it. The launcher runs the binary as the
 * QEMU user with no guest (-machine none) and QMP on a listening socket
 * dynmemd bound in the run directory and hands it; lib/qmp.c in the
 * backend's loop sends query-version, device-list-properties (virtio-mem-pci,
 * hv-balloon), query-command-line-options (run-with) and query-machines,
 * qemu_caps.c reads the replies, and the QEMU is told to quit (killed 3 s
 * later if it does not) and reaped through its pidfd. A QEMU that did not
 * answer in time, or whose QMP ended before it answered and that stayed, is
 * killed and said to be worth asking again. The answer is cached
 * per binary (path, device, inode, size, mtime) for the backend's life: a
 * start costs one probe only after QEMU was installed or upgraded.
 */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu_int.h"
#include "qemu_launch.h"
#include "qmp.h"

#define QUIT_WAIT_MS 3000 /* after quit, SIGKILL */
#define GONE_WAIT_MS 2000 /* QMP closed before the answers: its exit, or SIGKILL */

struct qemu_probe_entry {
        char *path;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime;
        bool valid; /* a probe of this very file succeeded */
        struct qemu_caps caps;
};

struct step {
        const char *execute;
        const char *arg_key, *arg_value; /* one string argument, or NULL */
        int (*read)(struct qemu_caps *c, const json_t *ret);
        bool optional; /* QEMU refusing it means "not offered" */
};

static const struct step steps[] = {
    {"query-version", NULL, NULL, qemu_caps_read_version, false},
    {"device-list-properties", "typename", "virtio-mem-pci", qemu_caps_read_vmem, true},
    {"query-command-line-options", "option", "run-with", qemu_caps_read_run_with, true},
    {"query-machines", NULL, NULL, qemu_caps_read_machines, false},
    {"device-list-properties", "typename", "hv-balloon", qemu_caps_read_hv_balloon, true},
};

#define N_STEPS (sizeof(steps) / sizeof(*steps))

struct pending {
        struct qemu_probe *p;
        const struct step *s;
};

struct qemu_probe {
        struct qemu_backend *qb;
        struct qemu_probe *next; /* qb->probing */
        char *binary, *qmp_path, *console;
        struct stat st; /* the binary when it was asked */
        uint64_t log_start;
        struct qemu_caps caps;
        struct qmp *q;
        pid_t pid;
        int pidfd;
        struct event *pid_ev, *timer;
        struct pending pending[N_STEPS];
        unsigned left;
        bool gone;          /* QMP closed before every answer came */
        char gone_why[160]; /* why, as lib/qmp.c says it */
        bool over;          /* done() was called, or the probe was cancelled */
        qemu_probe_done_fn done;
        void *userdata;
};

/* ---- the cache ---- */

static bool same_file(const struct qemu_probe_entry *e, const struct stat *st)
{
        return e->dev == st->st_dev && e->ino == st->st_ino && e->size == st->st_size &&
               e->mtime.tv_sec == st->st_mtim.tv_sec && e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

static struct qemu_probe_entry *entry_of(struct qemu_backend *qb, const char *binary)
{
        for (size_t i = 0; i < qb->n_probes; i++)
                if (strcmp(qb->probes[i].path, binary) == 0)
                        return &qb->probes[i];
        return NULL;
}

const struct qemu_caps *qemu_probe_cached(struct qemu_backend *qb, const char *binary)
{
        struct qemu_probe_entry *e = entry_of(qb, binary);
        struct stat st;

        if (!e || !e->valid || stat(binary, &st) < 0 || !same_file(e, &st))
                return NULL;
        return &e->caps;
}

/* Keep what p read for its binary; the caps move into the cache. NULL: out of memory. */
static const struct qemu_caps *keep(struct qemu_probe *p)
{
        struct qemu_backend *qb = p->qb;
        struct qemu_probe_entry *e = entry_of(qb, p->binary), *grown;

        if (!e) {
                if (!(grown = reallocarray(qb->probes, qb->n_probes + 1, sizeof(*grown))))
                        return NULL;
                qb->probes = grown;
                e = &qb->probes[qb->n_probes];
                *e = (struct qemu_probe_entry){.path = strdup(p->binary)};
                if (!e->path)
                        return NULL;
                qb->n_probes++;
        }
        qemu_caps_free(&e->caps);
        e->caps = p->caps;
        p->caps = (struct qemu_caps){0};
        e->dev = p->st.st_dev;
        e->ino = p->st.st_ino;
        e->size = p->st.st_size;
        e->mtime = p->st.st_mtim;
        e->valid = true;
        return &e->caps;
}

/* ---- one probe ---- */

static void kill_it(struct qemu_probe *p, int sig)
{
        if (p->pidfd >= 0 && p->qb->launch)
                qemu_launch_kill(p->qb->launch, p->pidfd, sig);
}

/* The end, once: the answer or why not. A failed probe's QEMU is killed. */
static void finish(struct qemu_probe *p, const struct qemu_caps *caps, const char *why, bool again)
{
        if (p->over)
                return;
        p->over = true;
        if (!caps)
                kill_it(p, SIGKILL);
        p->done(caps, why, again, p->userdata);
}

__attribute__((format(printf, 3, 4))) static void fail(struct qemu_probe *p, bool again,
                                                       const char *fmt, ...)
{
        char why[320];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        finish(p, NULL, why, again);
}

static void on_reply(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        const struct pending *pend = userdata;
        const struct step *s = pend->s;
        struct qemu_probe *p = pend->p;

        (void)q;
        if (p->over)
                return;
        if (reply->status == QMP_GONE) {
                /* QEMU that fails closes QMP, then exits with its message: wait for that. */
                if (!p->gone) {
                        p->gone = true;
                        snprintf(p->gone_why, sizeof(p->gone_why), "%s",
                                 reply->error_desc ? reply->error_desc : "closed");
                        qemu_timer_in(p->timer, GONE_WAIT_MS);
                }
                return;
        }
        if (reply->status == QMP_ERROR && !s->optional) {
                fail(p, false, "%s: %s", s->execute,
                     reply->error_desc ? reply->error_desc : "no answer");
                return;
        }
        if (s->read(&p->caps, reply->status == QMP_OK ? reply->ret : NULL) < 0) {
                fail(p, false, "%s: an answer of the wrong shape", s->execute);
                return;
        }
        if (--p->left > 0)
                return;
        const struct qemu_caps *kept = keep(p);
        if (!kept) {
                fail(p, false, "out of memory");
                return;
        }
        finish(p, kept, NULL, false);
        /* Done with it: quit, or be killed. */
        qmp_command(p->q, "quit", NULL, NULL, NULL);
        qemu_timer_in(p->timer, QUIT_WAIT_MS);
}

static void on_closed(struct qmp *q, const char *why, void *userdata)
{
        (void)q, (void)why, (void)userdata;
        /* Its exit (the pidfd) says why, with QEMU's own last words. */
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        struct qemu_probe *p = arg;

        (void)fd, (void)what;
        if (!p->over && p->gone)
                fail(p, true, "QMP on %s ended (%s) and it did not exit within %d s; killed",
                     p->qmp_path, p->gone_why, GONE_WAIT_MS / 1000);
        else if (!p->over) /* a busy host's QEMU may answer when asked again */
                fail(p, true, "it did not answer on %s within %d s; killed", p->qmp_path,
                     QEMU_START_WAIT_MS / 1000);
        else
                kill_it(p, SIGKILL); /* it did not quit */
}

static void unlink_probe(struct qemu_probe *p)
{
        for (struct qemu_probe **pp = &p->qb->probing; *pp; pp = &(*pp)->next) {
                if (*pp == p) {
                        *pp = p->next;
                        break;
                }
        }
}

static void probe_free(struct qemu_probe *p)
{
        unlink_probe(p);
        qmp_free(p->q);
        if (p->pid_ev)
                event_free(p->pid_ev);
        if (p->timer)
                event_free(p->timer);
        if (p->pidfd >= 0)
                close(p->pidfd);
        qemu_caps_free(&p->caps);
        free(p->binary);
        free(p->qmp_path);
        free(p->console);
        free(p);
}

/* Its QEMU exited: reaped here; a probe not over yet fails with QEMU's last words. */
static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
        struct qemu_probe *p = arg;
        int status;
        char last[200] = "";

        (void)fd, (void)what;
        if (qemu_proc_exited(p->pidfd, &status) != 1)
                return;
        if (!p->over) {
                qemu_proc_log_last_line(p->console, p->log_start, last, sizeof(last));
                fail(p, false, "it exited: %s",
                     last[0] ? last : "no message (see the console log)");
        }
        probe_free(p);
}

/*
 * Run it with the QMP socket bound and listening at p->qmp_path; the
 * socket stays open here too (*ret_fd) until the client has connected, so
 * that connecting never depends on how soon QEMU exits.
 */
static int launch(struct qemu_probe *p, int log_fd, int *ret_fd, char *err, size_t errlen)
{
        char **argv = NULL, why[320];
        int fd, r;

        if ((fd = qemu_handover_listen(p->qmp_path)) < 0) {
                snprintf(err, errlen, "QMP socket %s: %s", p->qmp_path, strerror(-fd));
                return fd;
        }
        *ret_fd = fd;
        if ((r = qemu_argv_probe(p->binary, QEMU_HANDOVER_FIRST, &argv)) < 0) {
                snprintf(err, errlen, "out of memory");
        } else {
                off_t end = lseek(log_fd, 0, SEEK_END);
                p->log_start = end > 0 ? (uint64_t)end : 0;
                r = qemu_launch_spawn(p->qb->launch, argv, log_fd, &fd, 1, &p->pid, &p->pidfd, why,
                                      sizeof(why));
                if (r < 0)
                        snprintf(err, errlen, "%s", why);
        }
        qemu_strv_free(argv);
        if (r < 0) {
                close(fd);
                *ret_fd = -1;
        }
        return r;
}

static int ask(struct qemu_probe *p)
{
        const struct qmp_callbacks cb = {.closed = on_closed};
        int r;

        if ((r = qmp_connect(p->qb->env.base, p->qmp_path, &cb, p, &p->q)) < 0)
                return r;
        for (size_t i = 0; i < N_STEPS; i++) {
                json_t *args = steps[i].arg_key
                                   ? json_pack("{s:s}", steps[i].arg_key, steps[i].arg_value)
                                   : NULL;
                p->pending[i] = (struct pending){.p = p, .s = &steps[i]};
                if ((r = qmp_command(p->q, steps[i].execute, args, on_reply, &p->pending[i])) < 0)
                        return r;
        }
        return 0;
}

int qemu_probe_start(struct qemu_backend *qb, const char *binary, const char *qmp_path,
                     const char *console, int log_fd, qemu_probe_done_fn done, void *userdata,
                     struct qemu_probe **ret, char *err, size_t errlen)
{
        struct qemu_probe init = {.qb = qb,
                                  .binary = strdup(binary),
                                  .qmp_path = strdup(qmp_path),
                                  .console = strdup(console),
                                  .pid = -1,
                                  .pidfd = -1,
                                  .left = N_STEPS,
                                  .done = done,
                                  .userdata = userdata};
        struct qemu_probe *p = NULL;
        int r, listen_fd = -1;

        if (init.binary && init.qmp_path && init.console)
                p = malloc(sizeof(*p));
        if (!p) {
                /* Not probe_free(): nothing is bound at qmp_path yet. */
                free(init.binary);
                free(init.qmp_path);
                free(init.console);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        *p = init;
        p->next = qb->probing;
        qb->probing = p;
        if (stat(binary, &p->st) < 0) {
                r = -errno;
                snprintf(err, errlen, "%s: %s", binary, strerror(-r));
                goto fail;
        }
        if ((r = launch(p, log_fd, &listen_fd, err, errlen)) < 0)
                goto fail;
        p->pid_ev = event_new(qb->env.base, p->pidfd, EV_READ | EV_PERSIST, on_exit_ev, p);
        p->timer = evtimer_new(qb->env.base, on_timer, p);
        if (!p->pid_ev || !p->timer || event_add(p->pid_ev, NULL) < 0) {
                snprintf(err, errlen, "out of memory");
                r = -ENOMEM;
                goto kill;
        }
        qemu_timer_in(p->timer, QEMU_START_WAIT_MS);
        if ((r = ask(p)) < 0) {
                snprintf(err, errlen, "QMP on %s: %s", qmp_path, strerror(-r));
                goto kill;
        }
        close(listen_fd);
        /* Connected: the name is no longer needed, and a later probe may bind it again. */
        unlink(p->qmp_path);
        *ret = p;
        return 0;
kill:
        close(listen_fd);
        kill_it(p, SIGKILL);
        waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &(siginfo_t){0}, WEXITED);
fail:
        unlink(p->qmp_path);
        p->over = true;
        probe_free(p);
        return r;
}

void qemu_probe_cancel(struct qemu_probe *p)
{
        if (!p || p->over)
                return;
        p->over = true;
        kill_it(p, SIGKILL); /* reaped by on_exit_ev() */
}

void qemu_probe_cache_free(struct qemu_backend *qb)
{
        while (qb->probing) {
                struct qemu_probe *p = qb->probing;
                p->over = true;
                kill_it(p, SIGKILL);
                if (p->pidfd >= 0)
                        waitid((idtype_t)P_PIDFD, (id_t)p->pidfd, &(siginfo_t){0}, WEXITED);
                probe_free(p);
        }
        for (size_t i = 0; i < qb->n_probes; i++) {
                free(qb->probes[i].path);
                qemu_caps_free(&qb->probes[i].caps);
        }
        free(qb->probes);
        qb->probes = NULL;
        qb->n_probes = 0;
}
