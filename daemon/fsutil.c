/*
 * fsutil: mkdir -p, atomic durable file replacement, bounded reads.
 * See fsutil.h.
 */
#include "fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

int fsutil_mkdir_p(const char *path, mode_t mode)
{
        char buf[PATH_MAX];
        size_t n = strlen(path);

        if (n == 0 || n >= sizeof(buf))
                return -ENAMETOOLONG;
        memcpy(buf, path, n + 1);
        for (char *p = buf + 1;; p++) {
                if (*p != '/' && *p != '\0')
                        continue;
                char saved = *p;
                *p = '\0';
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = saved;
                if (saved == '\0')
                        break;
        }
        struct stat st;
        if (stat(path, &st) < 0)
                return -errno;
        return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

static int write_all(int fd, const char *data, size_t len)
{
        while (len > 0) {
                ssize_t w = write(fd, data, len);
                if (w < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                data += w;
                len -= (size_t)w;
        }
        return 0;
}

static int fsync_dir(const char *dir)
{
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int r = 0;

        if (fd < 0)
                return -errno;
        if (fsync(fd) < 0)
                r = -errno;
        close(fd);
        return r;
}

/*
 * The cycle writes state.json and running.json through here (after a change,
 * before its reply), so these fsync() calls wait for the disk: a few KiB on
 * the state directory's file system. That wait is the price of a reply that
 * is true after a crash; it is bounded by the disk, not by a guest, a client
 * or a policy. Everything else the cycle does is in memory or non-blocking.
 */
int fsutil_write_atomic(const char *dir, const char *name, const char *data, size_t len,
                        mode_t mode)
{
        char tmp[PATH_MAX], final[PATH_MAX];
        int fd, r;

        if (snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, name) >= (int)sizeof(tmp) ||
            snprintf(final, sizeof(final), "%s/%s", dir, name) >= (int)sizeof(final))
                return -ENAMETOOLONG;
        /* A fresh file, ours and of mode: one left behind (by a crash, another user, by
         * hand) would keep its owner and mode through O_TRUNC and the rename. */
        if (unlink(tmp) < 0 && errno != ENOENT)
                return -errno;
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        r = write_all(fd, data, len);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, final) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        return fsync_dir(dir);
}

int fsutil_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len)
{
        /* O_NONBLOCK: a FIFO put in the file's place is refused below, not waited on */
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        struct stat st;
        char *buf;
        size_t n = 0;

        if (fd < 0)
                return -errno;
        int r = fstat(fd, &st) < 0           ? -errno
                : S_ISDIR(st.st_mode)        ? -EISDIR
                : !S_ISREG(st.st_mode)       ? -EINVAL
                : (uint64_t)st.st_size > max ? -EFBIG
                                             : 0;
        if (r < 0) {
                close(fd);
                return r;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (n < (size_t)st.st_size) {
                ssize_t got = read(fd, buf + n, (size_t)st.st_size - n);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0) {
                        r = -errno;
                        close(fd);
                        free(buf);
                        return r;
                }
                if (got == 0)
                        break;
                n += (size_t)got;
        }
        close(fd);
        buf[n] = '\0';
        *ret_data = buf;
        *ret_len = n;
        return 0;
}

int fsutil_set_aside(const char *path, char *ret, size_t len)
{
        for (int i = 0; i < 100; i++) {
                int n = i ? snprintf(ret, len, "%s.bad.%d", path, i)
                          : snprintf(ret, len, "%s.bad", path);
                if (n < 0 || (size_t)n >= len)
                        return -ENAMETOOLONG;
                if (renameat2(AT_FDCWD, path, AT_FDCWD, ret, RENAME_NOREPLACE) == 0)
                        return 0;
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

/* The pid a lock holder wrote into its file, or 0. */
static long holder_of(int fd)
{
        char buf[32];
        ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);
        char *end;
        long pid;

        if (n <= 0)
                return 0;
        buf[n] = '\0';
        errno = 0;
        pid = strtol(buf, &end, 10);
        return errno == 0 && end != buf && pid > 0 ? pid : 0;
}

int fsutil_lock(const char *dir, const char *name, mode_t mode, int *ret_fd, long *ret_holder)
{
        char path[PATH_MAX], pid[32];
        int fd, r, len;

        *ret_holder = 0;
        if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        /* held read-only: a file open for writing would keep the file system from being
         * remounted read-only under a running dynmemd */
        fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return -errno;
        while ((r = flock(fd, LOCK_EX | LOCK_NB)) < 0 && errno == EINTR)
                ;
        if (r < 0) {
                r = -errno;
                if (r == -EWOULDBLOCK)
                        *ret_holder = holder_of(fd);
                close(fd);
                return r;
        }
        /* the pid is for the message of the next one only: a full disk does not stop us */
        len = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        int wfd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC | O_NOFOLLOW);
        if (wfd >= 0) {
                if (write(wfd, pid, (size_t)len) != len) {
                        /* the next one is told of no pid */
                }
                close(wfd);
        }
        *ret_fd = fd;
        return 0;
}
