/*
 * client: connect to dynmemd's control socket, send one JSON line, read one
 * back. See client.h.
 */
#include "client.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "file_kind.h"
#include "units.h"
#include "mono.h"

/* Who may connect: the socket's own group (dynmemd -g), or its directory is shut. */
static void denied(const char *path, char *err, size_t errlen)
{
        struct stat st;
        const struct group *g;

        if (stat(path, &st) < 0) {
                snprintf(err, errlen,
                         "permission denied on %s: this user may not reach it (its "
                         "directory's permissions)",
                         path);
                return;
        }
        g = getgrgid(st.st_gid);
        if (g)
                snprintf(err, errlen,
                         "permission denied on %s: reading needs root or membership in its "
                         "group, %s",
                         path, g->gr_name);
        else
                snprintf(err, errlen,
                         "permission denied on %s: reading needs root or membership in its "
                         "group, gid %u",
                         path, (unsigned)st.st_gid);
}

static int connect_socket(const char *path, uint64_t timeout_ms, char *err, size_t errlen)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = (time_t)(timeout_ms / 1000),
                             .tv_usec = (suseconds_t)(timeout_ms % 1000) * 1000};
        int fd;

        if (strlen(path) >= sizeof(sa.sun_path)) {
                snprintf(err, errlen, "socket path %s is too long", path);
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        /* a daemon that does not accept: connect waits at most the timeout */
        if (fd >= 0)
                setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int e = errno;
                struct stat st;
                if (fd >= 0)
                        close(fd);
                if (e == EACCES || e == EPERM)
                        denied(path, err, errlen);
                else if (e == ECONNREFUSED && stat(path, &st) == 0 && !S_ISSOCK(st.st_mode)) {
                        /* a file or folder there: "refused" would send one looking for dynmemd */
                        snprintf(err, errlen,
                                 "%s is not a socket but %s; point --socket or " CONTROL_SOCKET_ENV
                                 " at dynmemd's socket",
                                 path, file_kind(st.st_mode));
                        e = ENOTSOCK;
                } else
                        snprintf(err, errlen,
                                 "no dynmemd is listening on %s (%s); start it, or "
                                 "point --socket or " CONTROL_SOCKET_ENV " at its socket",
                                 path, strerror(e));
                return -e;
        }
        return fd;
}

/* Wait for fd to be ready for `events` until the deadline. Returns 0 or -ETIMEDOUT / -errno. */
static int wait_fd(int fd, short events, uint64_t deadline)
{
        for (;;) {
                uint64_t now = mono_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                struct pollfd p = {.fd = fd, .events = events};
                int r = poll(&p, 1, (int)(deadline - now > 60000 ? 60000 : deadline - now));
                if (r > 0)
                        return 0;
                if (r < 0 && errno != EINTR)
                        return -errno;
        }
}

static int send_all(int fd, const char *data, size_t len, uint64_t deadline)
{
        while (len > 0) {
                int r = wait_fd(fd, POLLOUT, deadline);
                if (r < 0)
                        return r;
                ssize_t w = send(fd, data, len, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (w < 0 && errno != EAGAIN && errno != EINTR)
                        return -errno;
                if (w > 0) {
                        data += w;
                        len -= (size_t)w;
                }
        }
        return 0;
}

/* Read one line (without the newline) of at most CONTROL_REPLY_MAX bytes. */
static int read_line(int fd, uint64_t deadline, char **ret_line, size_t *ret_len)
{
        size_t len = 0, cap = 0;
        char *buf = NULL;

        for (;;) {
                char *nl = len ? memchr(buf, '\n', len) : NULL;
                if (nl) {
                        *ret_len = (size_t)(nl - buf);
                        *ret_line = buf;
                        return 0;
                }
                if (len > CONTROL_REPLY_MAX) {
                        free(buf);
                        return -EMSGSIZE;
                }
                if (cap - len < 65536) {
                        char *grown = realloc(buf, cap = cap ? cap * 2 : 131072);
                        if (!grown) {
                                free(buf);
                                return -ENOMEM;
                        }
                        buf = grown;
                }
                int r = wait_fd(fd, POLLIN, deadline);
                ssize_t got = r < 0 ? -1 : recv(fd, buf + len, cap - len, MSG_DONTWAIT);
                if (r < 0 || got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                        free(buf);
                        return r < 0 ? r : got == 0 ? -ECONNRESET : -errno;
                }
                if (got > 0)
                        len += (size_t)got;
        }
}

static void io_error(const struct cli *cli, int r, char *err, size_t errlen)
{
        char t[32];

        if (r == -ETIMEDOUT)
                snprintf(err, errlen, "no reply from dynmemd on %s within %s", cli->socket,
                         duration_format(cli->timeout_ms, t, sizeof(t)));
        else if (r == -ECONNRESET)
                snprintf(err, errlen, "dynmemd on %s closed the connection without a reply",
                         cli->socket);
        else if (r == -EMSGSIZE)
                snprintf(err, errlen, "reply from dynmemd larger than %u bytes", CONTROL_REPLY_MAX);
        else
                snprintf(err, errlen, "talking to dynmemd on %s: %s", cli->socket, strerror(-r));
}

int client_call(const struct cli *cli, json_t **ret_reply, char *err, size_t errlen)
{
        bool answered;

        return client_call_answered(cli, ret_reply, &answered, err, errlen);
}

int client_call_answered(const struct cli *cli, json_t **ret_reply, bool *ret_answered, char *err,
                         size_t errlen)
{
        uint64_t deadline = mono_ms() + cli->timeout_ms;
        char *request = control_request_format(&cli->req), *line = NULL;
        size_t len = 0;
        int fd, r;

        *ret_answered = false;
        if (!request) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        fd = connect_socket(cli->socket, cli->timeout_ms, err, errlen);
        if (fd < 0) {
                free(request);
                return fd;
        }
        r = send_all(fd, request, strlen(request), deadline);
        if (r == 0)
                r = send_all(fd, "\n", 1, deadline);
        /* a daemon refusing the connection (too many clients) answers before reading */
        if (r == 0 || r == -EPIPE || r == -ECONNRESET) {
                int got = read_line(fd, deadline, &line, &len);
                r = got == 0 || r == 0 ? got : r;
        }
        close(fd);
        free(request);
        if (r < 0) {
                io_error(cli, r, err, errlen);
                return r;
        }
        r = control_reply_parse(line, len, ret_reply, err, errlen);
        *ret_answered = r != -EBADMSG && r != -EPROTO;
        free(line);
        return r;
}
