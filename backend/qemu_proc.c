/*
 * qemu_proc: the QEMU process of a VM: finding the binary, spawning it in
 * its own session with its output appended to the console log, telling
 * whether it still runs (pidfd, so a reattached QEMU that is not our child
 * works too), its pid file and command line, its RSS, and keeping the
 * console log bounded. Nothing here waits for QEMU.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qemu_int.h"
#include "units.h"
#include "mono.h"

#define CMDLINE_MAX (1024 * 1024) /* /proc/PID/cmdline read at most */
#define STATUS_MAX  8192
#define TAIL_MAX    4096        /* bytes of log searched for the last line */
#define TRIM_KEEP   (256 * KIB) /* bytes of a trimmed log kept in PATH.old */

static int check_executable(const char *path)
{
        struct stat st;

        if (stat(path, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EACCES;
        return access(path, X_OK) < 0 ? -errno : 0;
}

int qemu_proc_find_binary(const char *name, char **ret_path)
{
        const char *env = getenv("PATH");
        char *dirs, *save = NULL, *out = NULL;
        int r = -ENOENT;

        if (strchr(name, '/')) {
                r = check_executable(name);
                if (r == 0 && !(*ret_path = strdup(name)))
                        return -ENOMEM;
                return r;
        }
        if (!(dirs = strdup(env && *env ? env : "/usr/local/bin:/usr/bin:/bin")))
                return -ENOMEM;
        for (char *d = strtok_r(dirs, ":", &save); d; d = strtok_r(NULL, ":", &save)) {
                /* A relative folder would be dynmemd's working folder's: never looked in. */
                if (d[0] != '/')
                        continue;
                if (asprintf(&out, "%s/%s", d, name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (check_executable(out) == 0) {
                        *ret_path = out;
                        r = 0;
                        break;
                }
                free(out);
                out = NULL;
        }
        free(dirs);
        return r;
}

int qemu_proc_exited(int pidfd, int *ret_status)
{
        struct pollfd pfd = {.fd = pidfd, .events = POLLIN};
        siginfo_t si = {0};

        if (poll(&pfd, 1, 0) < 0)
                return -errno;
        if (!(pfd.revents & (POLLIN | POLLHUP | POLLERR)))
                return 0;
        /* Reap it if it is our child; a reattached QEMU is someone else's (ECHILD). */
        if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid) {
                if (ret_status)
                        *ret_status = si.si_code == CLD_EXITED ? si.si_status : 128 + si.si_status;
        } else if (ret_status) {
                *ret_status = -1;
        }
        return 1;
}

int qemu_proc_read_pidfile(const char *path, pid_t *ret_pid, uint64_t *ret_start)
{
        char buf[64] = "", *end;
        int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        unsigned long long start = 0;
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return -EINVAL;
        buf[n] = '\0';
        long v = strtol(buf, &end, 10);
        if (end == buf || v < 2 || v > INT_MAX)
                return -EINVAL;
        if (*end == ' ') {
                char *p = end + 1;
                errno = 0;
                start = strtoull(p, &end, 10);
                if (end == p || errno)
                        return -EINVAL;
        }
        while (*end == '\n' || *end == ' ')
                end++;
        if (*end)
                return -EINVAL;
        *ret_pid = (pid_t)v;
        *ret_start = start;
        return 0;
}

int qemu_proc_write_pidfile(const char *path, pid_t pid, uint64_t start)
{
        char tmp[PATH_MAX], line[64];
        int len = snprintf(line, sizeof(line), "%d %llu\n", (int)pid, (unsigned long long)start);
        int fd, r = 0;

        if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
                return -ENAMETOOLONG;
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        if (write(fd, line, (size_t)len) != len)
                r = -EIO;
        if (close(fd) < 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0)
                unlink(tmp);
        return r;
}

/* Read a /proc file of at most max bytes. */
static int read_small(const char *path, size_t max, char **ret, size_t *ret_len)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        size_t len = 0;
        char *buf;

        if (fd < 0)
                return -errno;
        if (!(buf = malloc(max + 1))) {
                close(fd);
                return -ENOMEM;
        }
        for (;;) {
                ssize_t n = read(fd, buf + len, max - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                len += (size_t)n;
                if (len == max)
                        break;
        }
        close(fd);
        buf[len] = '\0';
        *ret = buf;
        *ret_len = len;
        return 0;
}

int qemu_proc_cmdline_has(pid_t pid, const char *word)
{
        char path[64], *buf;
        size_t len;
        int r;

        snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
        if ((r = read_small(path, CMDLINE_MAX, &buf, &len)) < 0)
                return r;
        r = -ENOENT;
        for (size_t i = 0; i < len; i += strlen(buf + i) + 1) {
                if (strcmp(buf + i, word) == 0) {
                        r = 0;
                        break;
                }
        }
        free(buf);
        return r;
}

/* /proc/PID/NAME, made by the kernel on read: no disk, nothing that waits on QEMU. */
static int read_proc(pid_t pid, const char *name, char **ret)
{
        char path[64];
        size_t len;

        snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
        return read_small(path, STATUS_MAX, ret, &len);
}

int qemu_proc_start_time(pid_t pid, uint64_t *ret)
{
        char *buf, *p;
        unsigned long long start;
        int r;

        if ((r = read_proc(pid, "stat", &buf)) < 0)
                return r;
        /* After the name in parentheses (which may hold anything): state is field 3. */
        r = -EINVAL;
        if ((p = strrchr(buf, ')'))) {
                for (int field = 2; p && field < 22; field++)
                        p = strchr(p + 1, ' ');
                if (p && sscanf(p + 1, "%llu", &start) == 1) {
                        *ret = start;
                        r = 0;
                }
        }
        free(buf);
        return r;
}

int qemu_proc_rss(pid_t pid, uint64_t *ret_bytes)
{
        char *buf, *line;
        unsigned long long kb;
        int r;

        if ((r = read_proc(pid, "status", &buf)) < 0)
                return r;
        line = strstr(buf, "\nVmRSS:");
        r = line && sscanf(line + 7, "%llu kB", &kb) == 1 && kb < SETTINGS_SIZE_MAX / KIB ? 0
                                                                                          : -EINVAL;
        if (r == 0)
                *ret_bytes = (uint64_t)kb * KIB;
        free(buf);
        return r;
}

int qemu_proc_log_last_line(const char *path, uint64_t from, char *buf, size_t len)
{
        char tail[TAIL_MAX + 1];
        struct stat st;
        int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC); /* a FIFO: no wait */
        ssize_t n;

        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size <= from) {
                close(fd);
                return -ENOENT;
        }
        uint64_t start =
            (uint64_t)st.st_size - from > TAIL_MAX ? (uint64_t)st.st_size - TAIL_MAX : from;
        n = pread(fd, tail, TAIL_MAX, (off_t)start);
        close(fd);
        if (n <= 0)
                return -ENOENT;
        tail[n] = '\0';
        /* Drop trailing blank lines, then take the last line. */
        while (n > 0 && strchr("\r\n \t", tail[n - 1]))
                tail[--n] = '\0';
        if (n == 0)
                return -ENOENT;
        char *line = strrchr(tail, '\n');
        line = line ? line + 1 : tail;
        size_t o = 0;
        for (; *line && o + 1 < len; line++)
                buf[o++] = (unsigned char)*line < 0x20 || *line == 0x7f ? ' ' : *line;
        buf[o] = '\0';
        return 0;
}

/*
 * Runs from the loop every 30 read-backs: a stat, and above the cap one copy of
 * at most 256 KiB and a truncate on the state directory's disk. Bounded by
 * the cap, never by the guest (QEMU holds the log with O_APPEND).
 */
int qemu_proc_log_trim(const char *path, uint64_t cap)
{
        struct stat st;
        char old[4096];
        int fd, out, r = 0;

        if (stat(path, &st) < 0)
                return -errno;
        if ((uint64_t)st.st_size <= cap)
                return 0;
        /* QEMU holds the log open for appending: copy the tail aside, then empty it in place. */
        if (snprintf(old, sizeof(old), "%s.old", path) >= (int)sizeof(old))
                return -ENAMETOOLONG;
        if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
                return -errno;
        out = open(old, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
        if (out >= 0) {
                char *buf = malloc(TRIM_KEEP);
                ssize_t n = buf ? pread(fd, buf, TRIM_KEEP, st.st_size - (off_t)TRIM_KEEP) : -1;
                if (n > 0 && write(out, buf, (size_t)n) != n)
                        r = -EIO;
                free(buf);
                close(out);
        }
        close(fd);
        if (truncate(path, 0) < 0)
                return -errno;
        return r;
}
