/*
 * conn: find, open, watch and reopen the agent's virtio-serial port (also
 * after it was unplugged and plugged again); line input and a small output
 * queue.
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
        c->retry_gap_ms = CONN_RETRY_MS;
}

/*
 * The device of the port named spec (/sys/class/virtio-ports/vportNpM/name == spec), or spec
 * itself when it is a path, into path (UTIL_PATH_MAX bytes). 0 or a negative errno.
 */
static int find_port(const char *spec, char *path)
{
        char dir_path[UTIL_PATH_MAX], rel[UTIL_PATH_MAX], name[128];
        struct dirent *e;
        DIR *dir;
        int r = -ENOENT;

        if (strchr(spec, '/')) {
                if (strlen(spec) >= UTIL_PATH_MAX)
                        return -ENAMETOOLONG;
                snprintf(path, UTIL_PATH_MAX, "%s", spec);
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
                if (strcmp(name, spec) != 0)
                        continue;
                snprintf(rel, sizeof(rel), "/dev/%s", e->d_name);
                if (util_path(path, rel))
                        r = 0;
        }
        closedir(dir);
        return r;
}

bool conn_port_exists(const char *spec)
{
        char path[UTIL_PATH_MAX];
        struct stat st;

        if (find_port(spec, path) < 0)
                return false;
        return !strchr(spec, '/') || stat(path, &st) == 0;
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
        int r = find_port(c->spec, c->path);

        if (r < 0)
                return r;
        c->socket = stat(c->path, &st) == 0 && S_ISSOCK(st.st_mode);
        c->fd = c->socket ? open_socket(c->path) : open(c->path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (c->fd < 0) {
                r = c->socket ? c->fd : -errno;
                c->fd = -1;
                return r;
        }
        if (fstat(c->fd, &st) == 0) {
                c->node_dev = (uint64_t)st.st_dev;
                c->node_ino = (uint64_t)st.st_ino;
        }
        return 0;
}

/*
 * Is the port still the one open? Its name must lead to the same node: an unplugged port's
 * node is removed, and a port plugged again gets a new one (even with the same name and
 * device number). 0, or a negative errno saying why not.
 */
static int port_still_there(const struct conn *c)
{
        char path[UTIL_PATH_MAX];
        struct stat st;
        int r = find_port(c->spec, path);

        if (r < 0)
                return r;
        if (strcmp(path, c->path) != 0)
                return -ENODEV; /* the name is now another port's */
        if (stat(path, &st) < 0)
                return -errno;
        if ((uint64_t)st.st_dev != c->node_dev || (uint64_t)st.st_ino != c->node_ino)
                return -ENODEV;
        return 0;
}

/* Try again after the current wait, and wait twice as long after the next failure. */
static void back_off(struct conn *c, uint64_t now_ms)
{
        c->retry_ms = now_ms + c->retry_gap_ms;
        c->retry_gap_ms =
            c->retry_gap_ms * 2 > CONN_RETRY_MAX_MS ? CONN_RETRY_MAX_MS : c->retry_gap_ms * 2;
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

/* The port failed (what: the call, err: its errno): close it. Logged once per outage. */
static void port_failed(struct conn *c, const char *what, int err, uint64_t now_ms)
{
        if (!c->outage)
                util_log("port %s: %s: %s; reopening it", c->path, what, strerror(err));
        c->outage = true;
        conn_close(c, now_ms);
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
        int r;

        if (c->state == CONN_UP || now_ms < c->retry_ms)
                return false;
        if (c->state == CONN_HOST_AWAY && !c->socket && (r = port_still_there(c)) < 0)
                port_failed(c, "gone", -r, now_ms); /* and open it now: plugged again already? */
        if (c->state == CONN_CLOSED) {
                r = conn_open(c);
                if (r < 0) {
                        if (!c->outage)
                                util_log("port %s: %s; looking again every %d s, then up to "
                                         "every %d s",
                                         c->spec, strerror(-r), CONN_RETRY_MS / 1000,
                                         CONN_RETRY_MAX_MS / 1000);
                        c->outage = true;
                        back_off(c, now_ms);
                        return false;
                }
                if (c->outage)
                        util_log("port %s: open again (%s)", c->spec, c->path);
                c->outage = false;
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
        c->retry_gap_ms = CONN_RETRY_MS;
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
                        port_failed(c, "write", n < 0 ? errno : EIO, now_ms);
                        back_off(c, now_ms);
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
                                port_failed(c, "read", errno, now_ms);
                                back_off(c, now_ms);
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
