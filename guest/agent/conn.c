/*
 * conn: find, open, watch and reopen the agent's virtio-serial port; line
 * input and a small output queue.
 */
#include "conn.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util.h"

void conn_init(struct conn *c, const char *spec)
{
        memset(c, 0, sizeof(*c));
        c->spec = spec;
        c->fd = -1;
        c->state = CONN_CLOSED;
}

/* The device of the port named c->spec: /sys/class/virtio-ports/vportNpM/name == spec. */
static int find_port(struct conn *c)
{
        char dir_path[UTIL_PATH_MAX], rel[UTIL_PATH_MAX], name[128];
        struct dirent *e;
        DIR *dir;
        int r = -ENOENT;

        if (strchr(c->spec, '/')) {
                if (strlen(c->spec) >= sizeof(c->path))
                        return -ENAMETOOLONG;
                snprintf(c->path, sizeof(c->path), "%s", c->spec);
                return 0;
        }
        if (!util_path(dir_path, "/sys/class/virtio-ports") || !(dir = opendir(dir_path)))
                return -ENOENT;
        while (r < 0 && (e = readdir(dir))) {
                if (e->d_name[0] == '.')
                        continue;
                snprintf(rel, sizeof(rel), "/sys/class/virtio-ports/%s/name", e->d_name);
                if (util_read_file(rel, name, sizeof(name)) <= 0)
                        continue;
                name[strcspn(name, "\n")] = '\0';
                if (strcmp(name, c->spec) != 0)
                        continue;
                snprintf(rel, sizeof(rel), "/dev/%s", e->d_name);
                if (util_path(c->path, rel))
                        r = 0;
        }
        closedir(dir);
        return r;
}

static int open_socket(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
                int err = -errno;
                close(fd);
                return err;
        }
        return fd;
}

static int conn_open(struct conn *c)
{
        struct stat st;
        int r = find_port(c);

        if (r < 0)
                return r;
        c->socket = stat(c->path, &st) == 0 && S_ISSOCK(st.st_mode);
        c->fd = c->socket ? open_socket(c->path) : open(c->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (c->fd < 0) {
                r = c->socket ? c->fd : -errno;
                c->fd = -1;
                return r;
        }
        return 0;
}

void conn_close(struct conn *c, uint64_t now_ms)
{
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        c->state = CONN_CLOSED;
        c->retry_ms = now_ms + CONN_RETRY_MS;
        c->in_len = c->out_len = 0;
        c->discarding = false;
}

/* Is the host side there? A virtio port says POLLHUP while it is not. */
static bool host_present(const struct conn *c)
{
        struct pollfd p = {.fd = c->fd, .events = POLLOUT};

        if (poll(&p, 1, 0) < 0)
                return false;
        return !(p.revents & (POLLHUP | POLLERR | POLLNVAL));
}

bool conn_service(struct conn *c, uint64_t now_ms)
{
        if (c->state == CONN_UP || now_ms < c->retry_ms)
                return false;
        if (c->state == CONN_CLOSED) {
                int r = conn_open(c);
                if (r < 0) {
                        if (!c->told_missing)
                                util_log("port %s: %s; looking again every second", c->spec,
                                         strerror(-r));
                        c->told_missing = true;
                        c->retry_ms = now_ms + CONN_RETRY_MS;
                        return false;
                }
                c->told_missing = false;
                c->state = CONN_HOST_AWAY;
        }
        if (!host_present(c)) {
                if (c->socket) { /* a refused or closed socket: connect again later */
                        conn_close(c, now_ms);
                        return false;
                }
                c->retry_ms = now_ms + CONN_RETRY_MS;
                return false;
        }
        c->state = CONN_UP;
        c->in_len = c->out_len = 0;
        c->discarding = false;
        return true;
}

short conn_events(const struct conn *c)
{
        if (c->state != CONN_UP)
                return 0;
        return (short)(POLLIN | (c->out_len ? POLLOUT : 0));
}

int conn_timeout(const struct conn *c, uint64_t now_ms)
{
        if (c->state == CONN_UP)
                return -1;
        return c->retry_ms > now_ms ? (int)(c->retry_ms - now_ms) : 0;
}

/* The host side went away: a socket is closed, a virtio port waits for the host. */
static void host_gone(struct conn *c, uint64_t now_ms)
{
        if (c->socket) {
                conn_close(c, now_ms);
                return;
        }
        c->state = CONN_HOST_AWAY;
        c->retry_ms = now_ms + CONN_RETRY_MS;
        c->in_len = c->out_len = 0;
        c->discarding = false;
}

static void take_bytes(struct conn *c, const char *p, size_t n,
                       void (*on_line)(void *, const char *, size_t), void *arg)
{
        const char *end = p + n;

        while (p < end && c->state == CONN_UP) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = (size_t)((nl ? nl : end) - p);

                if (c->discarding) {
                        c->discarding = !nl;
                } else if (c->in_len + len > AGENT_LINE_MAX - 1) {
                        c->in_len = 0;
                        c->discarding = !nl;
                } else {
                        memcpy(c->in + c->in_len, p, len);
                        c->in_len += len;
                        if (nl) {
                                size_t total = c->in_len;

                                c->in_len = 0;
                                on_line(arg, c->in, total);
                        }
                }
                p = nl ? nl + 1 : end;
        }
}

/* Write what is queued. False when the port failed. */
static bool flush(struct conn *c, uint64_t now_ms)
{
        while (c->out_len) {
                ssize_t n = c->socket ? send(c->fd, c->out, c->out_len, MSG_NOSIGNAL)
                                      : write(c->fd, c->out, c->out_len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        return true;
                if (n <= 0) {
                        int err = n < 0 ? errno : EIO;
                        util_log("port %s: write: %s; reopening", c->path, strerror(err));
                        conn_close(c, now_ms);
                        return false;
                }
                memmove(c->out, c->out + n, c->out_len - (size_t)n);
                c->out_len -= (size_t)n;
        }
        return true;
}

bool conn_io(struct conn *c, short revents, uint64_t now_ms,
             void (*on_line)(void *arg, const char *line, size_t len), void *arg)
{
        char buf[2048];

        if (c->state != CONN_UP)
                return false;
        if (revents & (POLLIN | POLLHUP | POLLERR)) {
                for (;;) {
                        ssize_t n = read(c->fd, buf, sizeof(buf));
                        if (n < 0 && errno == EINTR)
                                continue;
                        if (n < 0 && errno == EAGAIN)
                                break;
                        if (n == 0) {
                                host_gone(c, now_ms);
                                return false;
                        }
                        if (n < 0) {
                                util_log("port %s: read: %s; reopening", c->path, strerror(errno));
                                conn_close(c, now_ms);
                                return false;
                        }
                        take_bytes(c, buf, (size_t)n, on_line, arg);
                        if (c->state != CONN_UP)
                                return false;
                }
        }
        if (revents & POLLHUP) {
                host_gone(c, now_ms);
                return false;
        }
        return flush(c, now_ms);
}

bool conn_send(struct conn *c, const char *line, size_t len, uint64_t now_ms)
{
        if (c->state != CONN_UP)
                return false;
        if (len > sizeof(c->out) - c->out_len) {
                c->dropped++;
                return false;
        }
        memcpy(c->out + c->out_len, line, len);
        c->out_len += len;
        return flush(c, now_ms);
}
