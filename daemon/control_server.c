/*
 * control_server: the control socket, served from the event loop. See
 * control_server.h and docs/control-protocol.md.
 */
#include "control_server.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "commands.h"
#include "control.h"
#include "daemon.h"
#include "fsutil.h"
#include "log.h"
#include "mono.h"

#ifndef SO_PEERGROUPS
#define SO_PEERGROUPS 59
#endif

#define PRIORITY_CLIENTS 1 /* after the cycle's timer */
#define PEER_GROUPS_MAX  65536
#define ACCEPT_RETRY_MS  100

struct conn {
        struct control_server *srv;
        struct bufferevent *bev;
        struct conn *prev, *next;
        uid_t uid;
        pid_t pid;
        bool may_read, may_change;
        enum commands_wait wait;
        char wait_name[VM_NAME_MAX];
        uint64_t wait_until_ms; /* the wait's own end (mono_ms), for the kinds it bounds */
        struct event *wait_ev;  /* fires then; NULL until a bounded wait */
        bool closing;           /* close once every reply is written */
        bool lingering;         /* replies written, our side shut: discarding input until EOF */
        bool eof;               /* the client will send nothing more */
};

struct control_server {
        struct daemon *d;
        struct evconnlistener *listener;
        struct event *resume_ev;
        struct event *poll_ev; /* the bounded waits are looked at (control_server_carried) */
        char *path;
        char *readers;
        gid_t read_gid;
        bool read_gid_valid;
        gid_t admin_gid;
        bool admin_gid_valid;
        char *admin_name;
        uid_t own_uid;
        struct timeval idle; /* a client's idle timeout */
        struct conn *conns;
        size_t n_conns;
        uint64_t requests;
        struct log_ratelimit rl;        /* refused clients, accept errors */
        struct log_ratelimit denied_rl; /* changes refused for want of root: a flood of
                                           connections cannot hide them */
};

/* ---- the socket ---- */

/* Remove a stale socket; refuse when a live daemon answers on it. */
static int clear_stale(const char *path, const struct sockaddr_un *sa, char *err, size_t errlen)
{
        struct stat st;
        int fd, r;

        if (lstat(path, &st) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (!S_ISSOCK(st.st_mode)) {
                snprintf(err, errlen, "%s exists and is not a socket", path);
                return -EEXIST;
        }
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        r = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
        bool live = r == 0 || errno == EAGAIN;
        close(fd);
        if (live) {
                snprintf(err, errlen, "another dynmemd is listening on %s", path);
                return -EADDRINUSE;
        }
        return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static int bind_socket(const struct control_server_options *opt, const struct sockaddr_un *sa,
                       char *err, size_t errlen)
{
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        mode_t old;
        int r;

        if (fd < 0)
                return -errno;
        old = umask(0117);
        r = bind(fd, (const struct sockaddr *)sa, sizeof(*sa));
        umask(old);
        if (r < 0) {
                r = -errno;
                snprintf(err, errlen, "control socket %s: %s", opt->path, strerror(errno));
                close(fd);
                return r;
        }
        if (opt->read_gid_valid && chown(opt->path, (uid_t)-1, opt->read_gid) < 0) {
                r = -errno;
                snprintf(err, errlen, "control socket %s: cannot give it to %s: %s", opt->path,
                         opt->readers, strerror(-r));
        } else if (chmod(opt->path, 0660) < 0 || listen(fd, CONTROL_SERVER_BACKLOG) < 0) {
                r = -errno;
                snprintf(err, errlen, "control socket %s: %s", opt->path, strerror(-r));
        } else {
                return fd;
        }
        unlink(opt->path); /* bound here, of use to no one */
        close(fd);
        return r;
}

static int make_socket(const struct control_server_options *opt, char *err, size_t errlen)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char dir[PATH_MAX];
        int r;

        if (strlen(opt->path) >= sizeof(sa.sun_path) || strlen(opt->path) >= sizeof(dir)) {
                snprintf(err, errlen, "control socket path %s is longer than %zu bytes", opt->path,
                         sizeof(sa.sun_path) - 1);
                return -ENAMETOOLONG;
        }
        memcpy(sa.sun_path, opt->path, strlen(opt->path) + 1);
        memcpy(dir, opt->path, strlen(opt->path) + 1);
        r = fsutil_mkdir_p(dirname(dir), 0755);
        if (r < 0) {
                snprintf(err, errlen, "cannot create the directory of %s: %s", opt->path,
                         strerror(-r));
                return r;
        }
        err[0] = '\0';
        r = clear_stale(opt->path, &sa, err, errlen);
        if (r < 0) {
                if (!err[0])
                        snprintf(err, errlen, "control socket %s: %s", opt->path, strerror(-r));
                return r;
        }
        return bind_socket(opt, &sa, err, errlen);
}

/* ---- connections ---- */

static void conn_free(struct conn *c)
{
        struct control_server *srv = c->srv;

        if (c->prev)
                c->prev->next = c->next;
        else
                srv->conns = c->next;
        if (c->next)
                c->next->prev = c->prev;
        srv->n_conns--;
        if (c->wait_ev)
                event_free(c->wait_ev);
        bufferevent_free(c->bev);
        free(c);
}

static void free_line(const void *data, size_t len, void *arg)
{
        (void)len, (void)arg;
        free((void *)data);
}

/* Queue a reply line (taking it: no copy) and its newline. */
static void send_line(struct conn *c, char *line)
{
        struct evbuffer *out = bufferevent_get_output(c->bev);

        if (!line || evbuffer_add_reference(out, line, strlen(line), free_line, NULL) < 0) {
                free(line);
                c->closing = true; /* out of memory: give up on this client */
                return;
        }
        if (evbuffer_add(out, "\n", 1) < 0)
                c->closing = true;
}

/*
 * Closing with unread input would reset the connection and could lose the
 * last reply: shut our side, then discard input until the client's EOF or
 * a short timeout.
 */
static void linger(struct conn *c)
{
        struct timeval tv = {CONTROL_SERVER_LINGER_MS / 1000,
                             (CONTROL_SERVER_LINGER_MS % 1000) * 1000};

        c->lingering = true;
        shutdown(bufferevent_getfd(c->bev), SHUT_WR);
        evbuffer_drain(bufferevent_get_input(c->bev),
                       evbuffer_get_length(bufferevent_get_input(c->bev)));
        bufferevent_set_timeouts(c->bev, &tv, NULL);
        bufferevent_enable(c->bev, EV_READ);
}

/* The last thing every callback does: close when done, else read only when ready. */
static void settle(struct conn *c)
{
        size_t pending = evbuffer_get_length(bufferevent_get_output(c->bev));
        bool idle = c->wait == COMMANDS_WAIT_NONE && pending == 0;

        if (c->lingering)
                return;
        if ((c->closing || c->eof) && idle) {
                if (c->eof)
                        conn_free(c);
                else
                        linger(c);
                return;
        }
        if (c->closing || c->eof || c->wait != COMMANDS_WAIT_NONE ||
            pending >= CONTROL_SERVER_OUTPUT_HIGH)
                bufferevent_disable(c->bev, EV_READ);
        else
                bufferevent_enable(c->bev, EV_READ);
}

static void refuse(struct conn *c, const struct control_request *req)
{
        const struct control_command_info *info = control_command_info(req->command);

        const char *admin = c->srv->admin_name;

        if (log_ratelimit_ok(&c->srv->denied_rl, daemon_now(c->srv->d)))
                log_msg(LOG_NOTICE, "control: %s %s by uid %u (pid %d) refused: needs root%s%s",
                        info->name, req->name, (unsigned)c->uid, (int)c->pid,
                        admin ? " or group " : "", admin ? admin : "");
        send_line(c, control_reply_error(EACCES, "%s%spermission denied: %s needs root%s%s",
                                         req->name, req->name[0] ? ": " : "", info->name,
                                         admin ? " or group " : "", admin ? admin : ""));
}

/*
 * Look at c's wait: when it is over, its reply is sent, and c may be freed.
 * True while it still waits (c is left as it was).
 */
static bool poll_wait(struct conn *c)
{
        char *reply = NULL;

        if (c->wait == COMMANDS_WAIT_NONE)
                return false;
        if (!commands_poll(c->srv->d, c->wait_name, c->wait, c->wait_until_ms, &reply))
                return true;
        c->wait = COMMANDS_WAIT_NONE;
        if (c->wait_ev)
                event_del(c->wait_ev);
        send_line(c, reply);
        settle(c);
        return false;
}

static void arm_wait(struct conn *c)
{
        uint64_t now = mono_ms();
        /* a millisecond late: the end has come when it fires */
        uint64_t us = ((c->wait_until_ms > now ? c->wait_until_ms - now : 0) + 1) * 1000;
        struct timeval tv = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};

        event_add(c->wait_ev, &tv);
}

/* The end of a bounded wait: the answer it has then (a timeout, mostly). */
static void wait_end_cb(evutil_socket_t fd, short what, void *arg)
{
        struct conn *c = arg;

        (void)fd, (void)what;
        if (poll_wait(c)) /* the clocks' rounding: not quite over yet */
                arm_wait(c);
}

/*
 * A wait that ends limit_ms after the request whatever the cycles do (carry):
 * its end kept with the request, a timer set for it. -ENOMEM.
 */
static int wait_bounded(struct conn *c, unsigned limit_ms)
{
        c->wait_until_ms = 0;
        if (!limit_ms)
                return 0;
        c->wait_until_ms = mono_ms() + limit_ms;
        if (!c->wait_ev && !(c->wait_ev = evtimer_new(c->srv->d->base, wait_end_cb, c)))
                return -ENOMEM;
        arm_wait(c);
        return 0;
}

static void handle_request(struct conn *c, const struct control_request *req)
{
        const struct control_command_info *info = control_command_info(req->command);
        enum commands_wait wait;
        char *reply;

        if (info->changes && !c->may_change) {
                refuse(c, req);
                return;
        }
        reply = commands_run(c->srv->d, req, &wait);
        if (wait != COMMANDS_WAIT_NONE) {
                c->wait = wait;
                snprintf(c->wait_name, sizeof(c->wait_name), "%s", req->name);
                if (wait_bounded(c, commands_wait_limit_ms(wait)) < 0) {
                        c->wait = COMMANDS_WAIT_NONE;
                        send_line(c, control_reply_error(ENOMEM, "%s: out of memory", req->name));
                }
                return;
        }
        send_line(c, reply);
}

static void handle_line(struct conn *c, const char *line, size_t len)
{
        struct control_request req;
        char err[CONTROL_ERROR_MAX] = "";
        int r;

        if (len == 0 || (len == 1 && line[0] == '\r'))
                return; /* blank lines are ignored */
        c->srv->requests++;
        if (!c->may_read) {
                send_line(c, control_reply_error(EACCES,
                                                 "permission denied: the control socket "
                                                 "serves root and %s only",
                                                 c->srv->readers));
                c->closing = true;
                return;
        }
        r = control_request_parse(line, len, &req, err, sizeof(err));
        if (r < 0) {
                send_line(c, control_reply_error(-r, "%s", err));
                c->closing |= r == -EMSGSIZE;
                return;
        }
        handle_request(c, &req);
        control_request_free(&req);
}

/* Serve the complete request lines received, one at a time. */
static void process(struct conn *c)
{
        struct evbuffer *in = bufferevent_get_input(c->bev);
        struct evbuffer *out = bufferevent_get_output(c->bev);

        while (!c->closing && c->wait == COMMANDS_WAIT_NONE &&
               evbuffer_get_length(out) < CONTROL_SERVER_OUTPUT_HIGH) {
                size_t len, left;
                char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_LF);

                if (!line) {
                        left = evbuffer_get_length(in);
                        if (left > CONTROL_REQUEST_MAX) {
                                send_line(c, control_reply_error(EMSGSIZE,
                                                                 "request longer than "
                                                                 "%u bytes",
                                                                 CONTROL_REQUEST_MAX));
                                evbuffer_drain(in, left);
                                c->closing = true;
                        } else if (c->eof && left > 0 && (line = malloc(left + 1))) {
                                evbuffer_remove(in, line, left); /* a last line without newline */
                                line[left] = '\0';
                                handle_line(c, line, left);
                                free(line);
                        }
                        break;
                }
                handle_line(c, line, len);
                free(line);
        }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
        struct conn *c = arg;
        struct evbuffer *in = bufferevent_get_input(bev);

        if (c->lingering) {
                evbuffer_drain(in, evbuffer_get_length(in));
                return;
        }
        process(c);
        settle(c);
}

static void write_cb(struct bufferevent *bev, void *arg)
{
        struct conn *c = arg;

        (void)bev;
        if (c->lingering)
                return;
        if (!c->closing)
                process(c); /* requests that waited for the replies to go out */
        settle(c);
}

/* The client sent bytes that are still in the socket, unread. */
static bool input_waiting(const struct conn *c)
{
        int n = 0;

        return ioctl(bufferevent_getfd(c->bev), FIONREAD, &n) == 0 && n > 0;
}

/* The socket takes more of the client's replies now. */
static bool output_room(const struct conn *c)
{
        struct pollfd p = {.fd = bufferevent_getfd(c->bev), .events = POLLOUT};

        return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT);
}

/*
 * Whether a client whose timer expired is really idle. libevent counts the
 * timeouts from when the loop last woke, a time that stands still while a
 * callback runs: when the loop was held up for longer than the timeout (a
 * define a slow libvirtd took 40 s to answer), every client's timer expires
 * at once and libevent reports the timeout instead of the socket being
 * ready, for the client whose reply was just made as for one that sent a
 * request meanwhile. Idle when reading: nothing left unread in the socket,
 * no request being served, no reply to write (a client that takes none is
 * the writing timer's). Idle when writing: the socket still takes none of
 * its replies.
 */
static bool really_idle(const struct conn *c, short what)
{
        size_t pending = evbuffer_get_length(bufferevent_get_output(c->bev));

        if (what & BEV_EVENT_WRITING)
                return pending > 0 && !output_room(c);
        return pending == 0 && c->wait == COMMANDS_WAIT_NONE && !input_waiting(c);
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
        struct conn *c = arg;

        (void)bev;
        if (c->lingering || (what & BEV_EVENT_ERROR) ||
            ((what & BEV_EVENT_TIMEOUT) && really_idle(c, what))) {
                conn_free(c);
                return;
        }
        if (what & BEV_EVENT_TIMEOUT) {
                /* libevent stopped the side that timed out: its timer starts again from now */
                if (what & BEV_EVENT_WRITING)
                        bufferevent_enable(c->bev, EV_WRITE);
                settle(c);
                return;
        }
        if (what & BEV_EVENT_EOF) {
                c->eof = true;
                process(c);
                settle(c);
        }
}

/* ---- accepting ---- */

static bool in_group(int fd, gid_t gid, gid_t wanted)
{
        socklen_t len = 64 * sizeof(gid_t);
        gid_t *groups = NULL;
        bool found = gid == wanted;

        for (int tries = 0; !found && tries < 2; tries++) {
                gid_t *grown = realloc(groups, len);
                if (!grown)
                        break;
                groups = grown;
                if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len) == 0) {
                        for (size_t i = 0; i < len / sizeof(gid_t) && !found; i++)
                                found = groups[i] == wanted;
                        break;
                }
                if (errno != ERANGE || len > PEER_GROUPS_MAX * sizeof(gid_t))
                        break;
        }
        free(groups);
        return found;
}

static void reject(struct control_server *srv, int fd, const char *why)
{
        char *line = control_reply_error(EAGAIN, "%s", why), drop[4096];

        if (line) {
                size_t n = strlen(line);
                line[n] = '\n'; /* replaces the NUL; the length is known */
                if (send(fd, line, n + 1, MSG_DONTWAIT | MSG_NOSIGNAL) < 0) {
                        /* the client is gone or not reading: nothing more to do */
                }
        }
        free(line);
        /* what the client sent already would turn the close into a reset, losing the reply */
        shutdown(fd, SHUT_WR);
        for (int i = 0; i < 16 && recv(fd, drop, sizeof(drop), MSG_DONTWAIT) > 0; i++)
                ;
        close(fd);
        if (log_ratelimit_ok(&srv->rl, daemon_now(srv->d)))
                log_msg(LOG_WARNING, "control: client refused: %s", why);
}

static int conn_setup(struct control_server *srv, struct conn *c, int fd)
{
        c->bev = bufferevent_socket_new(srv->d->base, fd, BEV_OPT_CLOSE_ON_FREE);
        if (!c->bev)
                return -ENOMEM;
        bufferevent_priority_set(c->bev, PRIORITY_CLIENTS);
        bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
        bufferevent_setwatermark(c->bev, EV_READ, 0, CONTROL_REQUEST_MAX + 2);
        bufferevent_set_max_single_write(c->bev, CONTROL_SERVER_WRITE_MAX); /* fewer wakeups */
        bufferevent_set_timeouts(c->bev, &srv->idle, &srv->idle);
        return bufferevent_enable(c->bev, EV_READ | EV_WRITE);
}

static void accept_cb(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *addr,
                      int socklen, void *arg)
{
        struct control_server *srv = arg;
        struct ucred cred;
        socklen_t len = sizeof(cred);
        struct conn *c;

        (void)l, (void)addr, (void)socklen;
        if (srv->n_conns >= CONTROL_SERVER_CLIENTS_MAX) {
                reject(srv, fd, "too many clients; try again later");
                return;
        }
        if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0 ||
            !(c = calloc(1, sizeof(*c)))) {
                close(fd);
                return;
        }
        *c = (struct conn){.srv = srv, .uid = cred.uid, .pid = cred.pid};
        c->may_change = cred.uid == 0 || cred.uid == srv->own_uid ||
                        (srv->admin_gid_valid && in_group(fd, cred.gid, srv->admin_gid));
        c->may_read =
            c->may_change || (srv->read_gid_valid && in_group(fd, cred.gid, srv->read_gid));
        if (conn_setup(srv, c, fd) < 0) {
                if (c->bev)
                        bufferevent_free(c->bev);
                else
                        close(fd);
                free(c);
                return;
        }
        c->next = srv->conns;
        if (srv->conns)
                srv->conns->prev = c;
        srv->conns = c;
        srv->n_conns++;
}

static void resume_cb(evutil_socket_t fd, short what, void *arg)
{
        struct control_server *srv = arg;

        (void)fd, (void)what;
        evconnlistener_enable(srv->listener);
}

static void accept_error_cb(struct evconnlistener *l, void *arg)
{
        struct control_server *srv = arg;
        int e = EVUTIL_SOCKET_ERROR();
        struct timeval retry = {0, ACCEPT_RETRY_MS * 1000};

        if (log_ratelimit_ok(&srv->rl, daemon_now(srv->d)))
                log_msg(LOG_WARNING, "control: accept: %s", strerror(e));
        /* Out of descriptors or memory: pause instead of spinning on the ready socket. */
        evconnlistener_disable(l);
        event_add(srv->resume_ev, &retry);
}

/* ---- the server ---- */

/* The loop's turn after control_server_carried(): the bounded waits are looked at. */
static void poll_bounded_cb(evutil_socket_t fd, short what, void *arg)
{
        struct control_server *s = arg;
        struct conn *next;

        (void)fd, (void)what;
        for (struct conn *c = s->conns; c; c = next) {
                next = c->next;
                if (c->wait_until_ms)
                        poll_wait(c);
        }
}

int control_server_new(struct daemon *d, const struct control_server_options *opt,
                       struct control_server **ret, char *err, size_t errlen)
{
        struct control_server init = {.d = d,
                                      .path = strdup(opt->path),
                                      .readers = strdup(opt->readers),
                                      .admin_name =
                                          opt->admin_name ? strdup(opt->admin_name) : NULL,
                                      .read_gid = opt->read_gid,
                                      .read_gid_valid = opt->read_gid_valid,
                                      .admin_gid = opt->admin_gid,
                                      .admin_gid_valid = opt->admin_gid_valid,
                                      .own_uid = geteuid(),
                                      .rl = LOG_RATELIMIT(10, 10),
                                      .denied_rl = LOG_RATELIMIT(10, 10)};
        struct control_server *srv = NULL;
        unsigned idle_ms = opt->idle_ms ? opt->idle_ms : CONTROL_SERVER_IDLE_MS;
        int fd;

        if (init.path && init.readers && (init.admin_name || !opt->admin_name))
                srv = malloc(sizeof(*srv));
        if (!srv) {
                /* Not control_server_free(): the socket at path is not ours to remove. */
                free(init.path);
                free(init.readers);
                free(init.admin_name);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        *srv = init;
        srv->idle = (struct timeval){idle_ms / 1000, (idle_ms % 1000) * 1000};
        fd = make_socket(opt, err, errlen);
        if (fd < 0) {
                free(srv->path);
                srv->path = NULL; /* not ours to remove */
                control_server_free(srv);
                return fd;
        }
        srv->listener = evconnlistener_new(d->base, accept_cb, srv,
                                           LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
        srv->resume_ev = evtimer_new(d->base, resume_cb, srv);
        srv->poll_ev = evtimer_new(d->base, poll_bounded_cb, srv);
        if (!srv->listener || !srv->resume_ev || !srv->poll_ev) {
                if (!srv->listener)
                        close(fd);
                control_server_free(srv);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        evconnlistener_set_error_cb(srv->listener, accept_error_cb);
        *ret = srv;
        return 0;
}

void control_server_after_cycle(struct control_server *s)
{
        struct conn *next;

        for (struct conn *c = s->conns; c; c = next) {
                next = c->next;
                poll_wait(c);
        }
}

void control_server_carried(struct control_server *s)
{
        if (s && s->poll_ev)
                event_active(s->poll_ev, EV_TIMEOUT, 0);
}

size_t control_server_clients(const struct control_server *s)
{
        return s ? s->n_conns : 0;
}

uint64_t control_server_requests(const struct control_server *s)
{
        return s ? s->requests : 0;
}

void control_server_free(struct control_server *s)
{
        if (!s)
                return;
        while (s->conns) {
                struct conn *c = s->conns;
                if (c->wait != COMMANDS_WAIT_NONE) {
                        /* best effort, without blocking: the loop is gone */
                        char *line =
                            control_reply_error(ESHUTDOWN, "%s: dynmemd is stopping", c->wait_name);
                        int fd = bufferevent_getfd(c->bev);
                        if (line && send(fd, line, strlen(line), MSG_DONTWAIT | MSG_NOSIGNAL) > 0)
                                (void)!send(fd, "\n", 1, MSG_DONTWAIT | MSG_NOSIGNAL);
                        free(line);
                }
                conn_free(c);
        }
        if (s->listener)
                evconnlistener_free(s->listener);
        if (s->resume_ev)
                event_free(s->resume_ev);
        if (s->poll_ev)
                event_free(s->poll_ev);
        if (s->path)
                unlink(s->path);
        free(s->path);
        free(s->readers);
        free(s->admin_name);
        free(s);
}
