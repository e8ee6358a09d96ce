/*
 * util: clock, paths, small-file I/O, number parsing and rate-limited
 * logging for the guest agent. Only libc; nothing here allocates.
 */
#include "util.h"

#include "bucket.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * A start-up and a few reconnects fit the burst; past it, ten a minute, so a host
 * that floods junk or flaps the port cannot flood the guest's journal.
 */
#define LOG_BURST      30
#define LOG_PER_MINUTE 10

static char root_prefix[UTIL_PATH_MAX / 2];

void util_set_root(const char *root)
{
        snprintf(root_prefix, sizeof(root_prefix), "%s", root ? root : "");
}

bool util_root_is_real(void)
{
        return root_prefix[0] == '\0';
}

char *util_path(char *buf, const char *path)
{
        int n = snprintf(buf, UTIL_PATH_MAX, "%s%s", root_prefix, path);

        return n < 0 || n >= UTIL_PATH_MAX ? NULL : buf;
}

long util_pread_all(int fd, char *buf, size_t len)
{
        size_t got = 0;

        while (got + 1 < len) {
                ssize_t n = pread(fd, buf + got, len - 1 - got, (off_t)got);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                got += (size_t)n;
        }
        buf[got] = '\0';
        return (long)got;
}

long util_read_file(const char *path, char *buf, size_t len)
{
        char p[UTIL_PATH_MAX];
        long n;
        int fd;

        if (!util_path(p, path))
                return -ENAMETOOLONG;
        fd = open(p, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = util_pread_all(fd, buf, len);
        close(fd);
        return n;
}

int util_write_file(const char *path, const char *text)
{
        char p[UTIL_PATH_MAX];
        size_t len = strlen(text);
        ssize_t n;
        int fd;

        if (!util_path(p, path))
                return -ENAMETOOLONG;
        fd = open(p, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        n = write(fd, text, len);
        int err = n < 0 ? -errno : (size_t)n == len ? 0 : -EIO;
        close(fd);
        return err;
}

int util_parse_u64(const char *s, const char **end, uint64_t *ret)
{
        uint64_t v = 0;
        const char *p = s;

        while (*p == ' ' || *p == '\t')
                p++;
        if (*p < '0' || *p > '9')
                return -EINVAL;
        for (; *p >= '0' && *p <= '9'; p++) {
                unsigned d = (unsigned)(*p - '0');

                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        if (end)
                *end = p;
        *ret = v;
        return 0;
}

int util_find_u64(const char *text, const char *key, uint64_t *ret)
{
        size_t klen = strlen(key);

        for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
                if (strncmp(p, key, klen) != 0 || (p[klen] != ' ' && p[klen] != ':'))
                        continue;
                const char *v = p + klen + (p[klen] == ':');
                return util_parse_u64(v, NULL, ret) == 0 ? 0 : -EINVAL;
        }
        return -ENOENT;
}

void util_log(const char *fmt, ...)
{
        static struct bucket rate = BUCKET(LOG_PER_MINUTE / 60.0, LOG_BURST);
        static uint64_t suppressed;
        char line[512];
        va_list ap;
        int n;

        if (!bucket_take(&rate, (double)mono_ms())) {
                suppressed++;
                return;
        }
        n = snprintf(line, sizeof(line), "dynmem-guest: ");
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
        va_end(ap);
        if (suppressed) {
                size_t l = strlen(line);
                snprintf(line + l, sizeof(line) - l, " (%llu messages suppressed)",
                         (unsigned long long)suppressed);
                suppressed = 0;
        }
        size_t l = strlen(line);
        if (l + 1 < sizeof(line)) {
                line[l++] = '\n';
                line[l] = '\0';
        }
        if (write(STDERR_FILENO, line, l) < 0) {
                /* nowhere left to say it */
        }
}
