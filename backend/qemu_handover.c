/*
 * qemu_handover: what dynmemd opens for a QEMU it starts, so that QEMU, as
 * its own user, needs no access to dynmemd's folders: the QMP and agent
 * sockets (bound here, owner-only, listening), the console log, kernel,
 * initrd and disk. QEMU gets the descriptors (qemu_launch.h); the command
 * line names them (qemu_argv.c). The kernel, initrd and backing files must be
 * readable by the QEMU user, which the launcher asks the kernel as that user.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "file_kind.h"
#include "qemu_int.h"
#include "qemu_launch.h"

#define LISTEN_BACKLOG 4 /* dynmemd is QMP's only client; the agent socket has one too */

static int hand(struct qemu_handover *h, int fd)
{
        h->fds[h->n] = fd;
        return QEMU_HANDOVER_FIRST + (int)h->n++;
}

int qemu_handover_listen(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd, e;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
                return -errno;
        unlink(path);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0 ||
            listen(fd, LISTEN_BACKLOG) < 0) {
                e = errno;
                close(fd);
                unlink(path);
                return -e;
        }
        return fd;
}

static bool in_groups(gid_t gid, const struct qemu_identity *id)
{
        if (gid == id->gid)
                return true;
        for (size_t i = 0; i < id->n_groups; i++)
                if (gid == id->groups[i])
                        return true;
        return false;
}

bool qemu_identity_allows(const struct stat *st, const struct qemu_identity *id, int want)
{
        mode_t bits;

        if (st->st_uid == id->uid)
                bits = st->st_mode >> 6;
        else if (in_groups(st->st_gid, id))
                bits = st->st_mode >> 3;
        else
                bits = st->st_mode;
        return (!(want & R_OK) || (bits & S_IROTH)) && (!(want & W_OK) || (bits & S_IWOTH));
}

/* The file at path is st, which is of the wrong kind: -EINVAL, saying so in err. */
static int refuse(const char *what, const char *path, const struct stat *st, bool block_ok,
                  char *err, size_t errlen)
{
        snprintf(err, errlen, "%s %s is %s, not a regular file%s", what, path,
                 file_kind(st->st_mode), block_ok ? " or a block device" : "");
        return -EINVAL;
}

static int open_checked(const char *what, const char *path, int flags, mode_t mode, bool block_ok,
                        char *err, size_t errlen)
{
        struct stat st;
        int e, fl, fd = open(path, flags | O_NONBLOCK | O_NOCTTY | O_CLOEXEC, mode);

        /* Not opened because of its kind (to write: a FIFO without a reader, a folder; a
         * symlink with O_NOFOLLOW): said as when it is opened. */
        if (fd < 0 && (errno == ENXIO || errno == EISDIR || errno == ELOOP) &&
            lstat(path, &st) == 0 && !S_ISREG(st.st_mode))
                return refuse(what, path, &st, block_ok, err, errlen);
        if (fd < 0)
                goto failed;
        if (fstat(fd, &st) < 0 || (fl = fcntl(fd, F_GETFL)) < 0)
                goto failed;
        if (!S_ISREG(st.st_mode) && !(block_ok && S_ISBLK(st.st_mode))) {
                close(fd);
                return refuse(what, path, &st, block_ok, err, errlen);
        }
        if (fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)
                goto failed;
        return fd;
failed:
        e = errno;
        if (fd >= 0)
                close(fd);
        snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
        return -e;
}

int qemu_open_file(const char *what, const char *path, int flags, bool block_ok, char *err,
                   size_t errlen)
{
        return open_checked(what, path, flags, 0, block_ok, err, errlen);
}

int qemu_open_console_log(const char *path, char *err, size_t errlen)
{
        return open_checked("console log", path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW,
                            QEMU_CONSOLE_LOG_MODE, false, err, errlen);
}

/*
 * Refuse a file the QEMU user could not read: QEMU gets dynmemd's descriptor
 * (through /proc/self/fd/N or an fdset), which skips the folders' permissions,
 * not the file's. When QEMU is dynmemd's own user, dynmemd's open said so
 * already; else the launcher asks the kernel as that user about this very
 * descriptor (mode bits, ACLs, security modules). what names the file in err.
 */
static int check_readable(int fd, const char *what, const char *path,
                          const struct qemu_identity *id, struct qemu_launch *ql, char *err,
                          size_t errlen)
{
        char name[2 * PATH_MAX + 64];
        struct stat st;
        int r;

        if (!id->switched)
                return 0;
        snprintf(name, sizeof(name), "%s %s", what, path);
        if ((r = qemu_launch_access_fd(ql, fd, name, R_OK, err, errlen)) != -ENOSYS)
                return r;
        /* A kernel without faccessat2: the mode bits alone, as dynmem judged before. */
        if (fstat(fd, &st) < 0) {
                int e = errno;
                snprintf(err, errlen, "%s: %s", name, strerror(e));
                return -e;
        }
        if (qemu_identity_allows(&st, id, R_OK))
                return 0;
        snprintf(err, errlen,
                 "%s (mode %04o, uid %u, gid %u) cannot be read by user %s, whom QEMU runs as",
                 name, (unsigned)(st.st_mode & 07777), (unsigned)st.st_uid, (unsigned)st.st_gid,
                 id->name);
        return -EACCES;
}

/* The kernel and initrd, which QEMU loads through /proc/self/fd/N: regular files. */
static int open_boot_file(const char *what, const char *path, const struct qemu_identity *id,
                          struct qemu_launch *ql, char *err, size_t errlen)
{
        int r, fd = qemu_open_file(what, path, O_RDONLY, false, err, errlen);

        if (fd < 0)
                return fd;
        if ((r = check_readable(fd, what, path, id, ql, err, errlen)) < 0) {
                close(fd);
                return r;
        }
        return fd;
}

void qemu_handover_close(struct qemu_handover *h, int log_fd)
{
        for (size_t i = 0; i < h->n; i++)
                if (h->fds[i] != log_fd)
                        close(h->fds[i]);
        h->n = 0;
        for (size_t i = 0; i < h->n_layers; i++)
                free(h->layer[i].path);
        h->n_layers = 0;
}

/*
 * A backing file's name comes from its image, which QEMU writes: a QEMU
 * taken over by its guest could name any file there. dynmemd opens it with
 * its own rights, so it hands it over only if the QEMU user may read it.
 */
static int check_backing(const char *disk, int fd, const char *path, const struct qemu_identity *id,
                         struct qemu_launch *ql, char *err, size_t errlen)
{
        char what[PATH_MAX + 32];

        snprintf(what, sizeof(what), "disk %s: backing file", disk);
        return check_readable(fd, what, path, id, ql, err, errlen);
}

/*
 * The disk, open read-write and read-only, and each backing file of a
 * qcow2 chain read-only, as the layers QEMU gets (qemu_argv.c names them).
 */
static int open_disk(const char *disk, const struct qemu_identity *id, struct qemu_launch *ql,
                     struct qemu_handover *h, char *err, size_t errlen)
{
        struct qemu_disk_layer *l = h->layer;
        int fd, r;

        if ((fd = qemu_disk_open(disk, O_RDWR, err, errlen)) < 0)
                return fd;
        h->disk = hand(h, fd);
        if ((fd = qemu_disk_open(disk, O_RDONLY, err, errlen)) < 0)
                return fd;
        h->disk_ro = hand(h, fd);
        *l = (struct qemu_disk_layer){
            .path = strdup(disk), .qcow2 = qemu_disk_is_qcow2(disk), .fd = h->disk};
        if (!l->path) {
                snprintf(err, errlen, "disk %s: out of memory", disk);
                return -ENOMEM;
        }
        h->n_layers = 1;
        while (l->qcow2) {
                struct qemu_disk_layer next;
                if ((r = qemu_disk_open_backing(disk, h->n_layers, fd, l->path, &next, &fd, err,
                                                errlen)) <= 0)
                        return r;
                l = &h->layer[h->n_layers++];
                *l = next;
                l->fd = hand(h, fd);
                if ((r = check_backing(disk, fd, l->path, id, ql, err, errlen)) < 0)
                        return r;
        }
        return 0;
}

int qemu_handover_open(const struct qemu_vm_config *c, const struct qemu_paths *p, int log_fd,
                       const struct qemu_identity *id, struct qemu_launch *ql,
                       struct qemu_handover *h, char *err, size_t errlen)
{
        int fd;

        *h = (struct qemu_handover){.qmp = -1,
                                    .agent = -1,
                                    .console = -1,
                                    .kernel = -1,
                                    .initrd = -1,
                                    .disk = -1,
                                    .disk_ro = -1};
        if ((fd = qemu_handover_listen(p->qmp)) < 0) {
                snprintf(err, errlen, "QMP socket %s: %s", p->qmp, strerror(-fd));
                goto fail;
        }
        h->qmp = hand(h, fd);
        if ((fd = qemu_handover_listen(p->agent)) < 0) {
                snprintf(err, errlen, "agent socket %s: %s", p->agent, strerror(-fd));
                goto fail;
        }
        h->agent = hand(h, fd);
        h->console = hand(h, log_fd);
        if ((fd = open_boot_file("kernel", c->kernel, id, ql, err, errlen)) < 0)
                goto fail;
        h->kernel = hand(h, fd);
        if (c->initrd) {
                if ((fd = open_boot_file("initrd", c->initrd, id, ql, err, errlen)) < 0)
                        goto fail;
                h->initrd = hand(h, fd);
        }
        if (c->disk && (fd = open_disk(c->disk, id, ql, h, err, errlen)) < 0)
                goto fail;
        return 0;
fail:
        qemu_handover_close(h, log_fd);
        if (h->qmp >= 0)
                unlink(p->qmp);
        if (h->agent >= 0)
                unlink(p->agent);
        return fd;
}
