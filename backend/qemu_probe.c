/*
 * qemu_probe: asks a QEMU binary what it offers before a VM's command line
 * is built. The binary runs once with no guest (-machine none, QMP on a
 * socket in the run directory); lib/qmp.c on a private event loop sends
 * query-version, device-list-properties (virtio-mem-pci, hv-balloon),
 * query-command-line-options (run-with) and query-machines, and
 * qemu_caps.c reads the replies. The answer is cached per binary (path,
 * device, inode, size, mtime) for the backend's life: a start costs one
 * probe only after QEMU was installed or upgraded.
 */
#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <poll.h>
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
#include "qmp.h"

#define QUIT_WAIT_MS 3000 /* after quit, SIGKILL */

struct qemu_probe_entry {
        char *path;
        dev_t dev;
        ino_t ino;
        off_t size;
        struct timespec mtime;
        bool valid; /* a probe of this very file succeeded */
        struct qemu_caps caps;
};

/* ---- one probe ---- */

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

struct probe;

struct pending {
        struct probe *p;
        const struct step *s;
};

struct probe {
        struct qemu_caps *caps;
        struct event_base *base;
        struct pending pending[N_STEPS];
        unsigned left;
        int error;
        char why[200];
};

static void on_reply(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        const struct pending *pend = userdata;
        const struct step *s = pend->s;
        struct probe *p = pend->p;
        int r;

        (void)q;
        if (p->error == 0) {
                if (reply->status == QMP_GONE || (reply->status == QMP_ERROR && !s->optional)) {
                        p->error = -EPROTO;
                        snprintf(p->why, sizeof(p->why), "%s: %s", s->execute,
                                 reply->error_desc ? reply->error_desc : "no answer");
                } else if ((r = s->read(p->caps, reply->status == QMP_OK ? reply->ret : NULL)) <
                           0) {
                        p->error = r;
                        snprintf(p->why, sizeof(p->why), "%s: an answer of the wrong shape",
                                 s->execute);
                }
        }
        if (--p->left == 0 || p->error)
                event_base_loopbreak(p->base);
}

static void on_closed(struct qmp *q, const char *why, void *userdata)
{
        struct probe *p = userdata;

        (void)q;
        if (p->error == 0 && p->left > 0) {
                p->error = -EPROTO;
                snprintf(p->why, sizeof(p->why), "QMP closed: %s", why);
        }
        event_base_loopbreak(p->base);
}

static int send_steps(struct qmp *q, struct probe *p)
{
        for (size_t i = 0; i < N_STEPS; i++) {
                json_t *args = steps[i].arg_key
                                   ? json_pack("{s:s}", steps[i].arg_key, steps[i].arg_value)
                                   : NULL;
                p->pending[i] = (struct pending){.p = p, .s = &steps[i]};
                int r = qmp_command(q, steps[i].execute, args, on_reply, &p->pending[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Ask over the connected, negotiated QMP socket fd; fd is taken over. */
static int ask(int fd, uint64_t timeout_ms, struct qemu_caps *caps, char *err, size_t errlen)
{
        struct probe p = {.caps = caps, .left = N_STEPS};
        const struct qmp_callbacks cb = {.closed = on_closed};
        struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
                             .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
        struct qmp *q = NULL;
        int r;

        if (!(p.base = event_base_new())) {
                close(fd);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        if ((r = qmp_adopt_fd(p.base, fd, &cb, &p, &q)) < 0 || (r = send_steps(q, &p)) < 0) {
                snprintf(err, errlen, "QMP: %s", strerror(-r));
        } else {
                event_base_loopexit(p.base, &tv);
                event_base_dispatch(p.base);
                r = p.error ? p.error : p.left ? -ETIMEDOUT : 0;
                if (p.error)
                        snprintf(err, errlen, "%s", p.why);
                else if (p.left)
                        snprintf(err, errlen, "no answer within %llu ms",
                                 (unsigned long long)timeout_ms);
                qmp_command(q, "quit", NULL, NULL, NULL);
                /* Let the quit go out (the loop ends when QEMU closes, or at once). */
                struct timeval brief = {.tv_sec = 0, .tv_usec = 100000};
                event_base_loopexit(p.base, &brief);
                event_base_dispatch(p.base);
        }
        qmp_free(q);
        event_base_free(p.base);
        return r;
}

/* Wait for the probe's QEMU to exit; SIGKILL it after QUIT_WAIT_MS. Reaps it. */
static void finish(pid_t pid, int pidfd)
{
        struct pollfd pfd = {.fd = pidfd, .events = POLLIN};

        if (poll(&pfd, 1, QUIT_WAIT_MS) <= 0)
                pidfd_send_signal(pidfd, SIGKILL, NULL, 0);
        waitpid(pid, NULL, 0);
        close(pidfd);
}

int qemu_probe_run(const char *binary, const char *qmp_path, int log_fd, struct qemu_caps *ret,
                   char *err, size_t errlen)
{
        struct qemu_caps caps = {0};
        char **argv = NULL;
        pid_t pid;
        int r, pidfd, fd;

        if ((r = qemu_argv_probe(binary, qmp_path, &argv)) < 0) {
                snprintf(err, errlen, "out of memory");
                return r;
        }
        unlink(qmp_path);
        r = qemu_proc_spawn(argv, log_fd, &pid);
        qemu_strv_free(argv);
        if (r < 0) {
                snprintf(err, errlen, "cannot run %s: %s", binary, strerror(-r));
                return r;
        }
        if ((pidfd = pidfd_open(pid, 0)) < 0) {
                r = -errno;
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0);
                snprintf(err, errlen, "pidfd_open: %s", strerror(-r));
                return r;
        }
        if ((fd = qemu_proc_qmp_handshake(qmp_path, pidfd, QEMU_PROBE_WAIT_MS)) < 0) {
                snprintf(err, errlen, "%s",
                         fd == -ECHILD      ? "QEMU exited"
                         : fd == -ETIMEDOUT ? "QEMU did not answer on QMP"
                                            : strerror(-fd));
                r = fd;
        } else {
                r = ask(fd, QEMU_PROBE_WAIT_MS, &caps, err, errlen);
        }
        finish(pid, pidfd);
        unlink(qmp_path);
        if (r < 0) {
                qemu_caps_free(&caps);
                return r;
        }
        *ret = caps;
        return 0;
}

/* ---- the cache ---- */

static bool same_file(const struct qemu_probe_entry *e, const char *path, const struct stat *st)
{
        return strcmp(e->path, path) == 0 && e->dev == st->st_dev && e->ino == st->st_ino &&
               e->size == st->st_size && e->mtime.tv_sec == st->st_mtim.tv_sec &&
               e->mtime.tv_nsec == st->st_mtim.tv_nsec;
}

int qemu_probe_cached(struct qemu_backend *qb, const char *binary, const char *qmp_path, int log_fd,
                      const struct qemu_caps **ret, char *err, size_t errlen)
{
        struct qemu_probe_entry *e = NULL, *grown;
        struct stat st;
        int r;

        if (stat(binary, &st) < 0) {
                r = -errno;
                snprintf(err, errlen, "%s: %s", binary, strerror(-r));
                return r;
        }
        for (size_t i = 0; i < qb->n_probes; i++) {
                if (strcmp(qb->probes[i].path, binary) != 0)
                        continue;
                e = &qb->probes[i];
                if (e->valid && same_file(e, binary, &st)) {
                        *ret = &e->caps;
                        return 0;
                }
                break; /* the binary changed: ask again */
        }
        if (!e) {
                if (!(grown = reallocarray(qb->probes, qb->n_probes + 1, sizeof(*grown)))) {
                        snprintf(err, errlen, "out of memory");
                        return -ENOMEM;
                }
                qb->probes = grown;
                e = &qb->probes[qb->n_probes];
                *e = (struct qemu_probe_entry){.path = strdup(binary)};
                if (!e->path) {
                        snprintf(err, errlen, "out of memory");
                        return -ENOMEM;
                }
                qb->n_probes++;
        }
        qemu_caps_free(&e->caps);
        e->valid = false;
        if ((r = qemu_probe_run(binary, qmp_path, log_fd, &e->caps, err, errlen)) < 0)
                return r;
        e->dev = st.st_dev;
        e->ino = st.st_ino;
        e->size = st.st_size;
        e->mtime = st.st_mtim;
        e->valid = true;
        *ret = &e->caps;
        return 0;
}

void qemu_probe_cache_free(struct qemu_backend *qb)
{
        for (size_t i = 0; i < qb->n_probes; i++) {
                free(qb->probes[i].path);
                qemu_caps_free(&qb->probes[i].caps);
        }
        free(qb->probes);
        qb->probes = NULL;
        qb->n_probes = 0;
}
