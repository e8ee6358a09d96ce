/*
 * qemu_agent: one VM's connection to its guest agent. Connects without
 * blocking to run_dir/NAME.agent (QEMU's end of the org.dynmem.agent.0
 * port), again every second while it is not connected, feeds lib/agent.c
 * with what arrives (at most QEMU_AGENT_READ_MAX bytes per turn of the event
 * loop), writes the parser's hellos, logs what the parser saw, and hands
 * fresh estimates (which count the urgent reports) to its owner through a
 * hook. A socket this user may not reach (a libvirt domain's, whose folder
 * belongs to libvirt's QEMU user) is said once, with the group it needs.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <grp.h>
#include <pwd.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "qemu_int.h"

#define OUT_MAX   (4 * AGENT_LINE_MAX) /* unsent output above this: QEMU is not taking it */
#define SILENT_MS 30000                /* connected this long and nothing heard: say so once */

struct qemu_agent {
        struct event_base *base;
        char *name; /* the VM's, for messages */
        char *path;
        struct agent *a;
        struct bufferevent *bev; /* NULL while not connected */
        struct event *tick;      /* every second: connect, or write what is due */
        struct qemu_agent_hooks hooks;
        void *userdata;
        struct qemu_agent_stats st;
        char lost[80]; /* why the last connection closed; logged at the reconnect */
        uint64_t connected_ms;
        uint64_t lines_at_connect;
        bool silence_logged;
        struct log_ratelimit rl;
        struct log_ratelimit rl_same; /* a handshake the same as the one logged */
        struct log_ratelimit rl_new;  /* a new result: a guest may change it at every hello */
        unsigned busy;                /* inside a callback: qemu_agent_free() waits */
        bool doomed;

        /* What was logged last, so that a handshake repeated at every reconnect is logged once. */
        bool ready_logged;
        uint32_t ready_version;
        unsigned ready_caps;
        char ready_software[AGENT_WORD_MAX + 1];
        bool refusal_logged;
        bool denied_logged; /* the socket refused this user: said until a connection is made */
};

static void destroy(struct qemu_agent *qa)
{
        if (qa->bev)
                bufferevent_free(qa->bev);
        if (qa->tick)
                event_free(qa->tick);
        agent_free(qa->a);
        free(qa->name);
        free(qa->path);
        free(qa);
}

/* Leave a callback; the last one out frees an agent its owner let go of meanwhile. */
static bool leave(struct qemu_agent *qa)
{
        if (--qa->busy == 0 && qa->doomed) {
                destroy(qa);
                return false;
        }
        return !qa->doomed;
}

/* ---- logging: once per new result, errors rate-limited ---- */

static bool rl_ok(struct qemu_agent *qa, uint64_t now_ms, uint64_t *ret_suppressed)
{
        if (!log_ratelimit_ok(&qa->rl, now_ms))
                return false;
        *ret_suppressed = log_ratelimit_take_suppressed(&qa->rl);
        return true;
}

/*
 * A new handshake result at info; the same one again (a reconnect, or an agent
 * that handshakes in a loop) at debug. Both rate-limited like the errors, each
 * on its own: an agent may name another version or capabilities at every hello.
 */
static void log_ready(struct qemu_agent *qa, uint64_t now_ms)
{
        const char *sw = agent_software(qa->a);
        char caps[128], more[48] = "";
        uint64_t suppressed;
        bool same = qa->ready_logged && qa->ready_version == agent_version(qa->a) &&
                    qa->ready_caps == agent_caps(qa->a) && strcmp(qa->ready_software, sw) == 0;
        struct log_ratelimit *rl = same ? &qa->rl_same : &qa->rl_new;

        if (!log_ratelimit_ok(rl, now_ms))
                return;
        suppressed = log_ratelimit_take_suppressed(rl);
        if (suppressed)
                snprintf(more, sizeof(more), " (%llu more not logged)",
                         (unsigned long long)suppressed);
        log_msg(same ? LOG_DEBUG : LOG_INFO,
                "vm \"%s\": guest agent %s ready: protocol version %u, capabilities %s%s", qa->name,
                sw[0] ? sw : "(no version)", agent_version(qa->a),
                agent_caps_format(agent_caps(qa->a), caps, sizeof(caps)), more);
        qa->ready_logged = true;
        qa->ready_version = agent_version(qa->a);
        qa->ready_caps = agent_caps(qa->a);
        snprintf(qa->ready_software, sizeof(qa->ready_software), "%s", sw);
        qa->refusal_logged = false;
}

static void log_refused(struct qemu_agent *qa)
{
        if (!qa->refusal_logged)
                log_msg(LOG_WARNING, "vm \"%s\": %s; demand comes from the balloon statistics",
                        qa->name, agent_refusal(qa->a));
        qa->refusal_logged = true;
        qa->ready_logged = false;
}

/* A guest without an agent (or one that never starts) is normal, but worth one line. */
static void log_silence(struct qemu_agent *qa, uint64_t now_ms)
{
        if (qa->silence_logged || now_ms - qa->connected_ms < SILENT_MS ||
            agent_counters(qa->a)->lines != qa->lines_at_connect)
                return;
        qa->silence_logged = true;
        log_msg(LOG_INFO,
                "vm \"%s\": no guest agent answers on %s after %d s; demand comes from the "
                "balloon statistics until one does",
                qa->name, AGENT_PORT_NAME, SILENT_MS / 1000);
}

static void log_error(struct qemu_agent *qa, uint64_t now_ms)
{
        char more[48] = "";
        uint64_t suppressed;

        if (!rl_ok(qa, now_ms, &suppressed))
                return;
        if (suppressed)
                snprintf(more, sizeof(more), " (%llu more not logged)",
                         (unsigned long long)suppressed);
        log_msg(LOG_WARNING, "vm \"%s\": guest agent: %s%s", qa->name, agent_last_error(qa->a),
                more);
}

/* ---- the connection ---- */

static void flush_output(struct qemu_agent *qa, uint64_t now_ms)
{
        char line[AGENT_LINE_MAX];
        size_t n;

        /* A guest without an agent does not read its port: never pile up behind it. */
        if (!qa->bev || evbuffer_get_length(bufferevent_get_output(qa->bev)) > OUT_MAX)
                return;
        if ((n = agent_output(qa->a, now_ms, line, sizeof(line))) > 0 &&
            bufferevent_write(qa->bev, line, n) == 0)
                qa->st.written += n;
}

static void disconnect(struct qemu_agent *qa, const char *why)
{
        if (!qa->bev)
                return;
        bufferevent_free(qa->bev);
        qa->bev = NULL;
        agent_disconnected(qa->a);
        qa->st.disconnects++;
        snprintf(qa->lost, sizeof(qa->lost), "%s", why);
}

static void act(struct qemu_agent *qa, unsigned ev, uint64_t now_ms)
{
        struct agent_estimate e;

        if (ev & AGENT_EV_READY)
                log_ready(qa, now_ms);
        if (ev & AGENT_EV_REFUSED)
                log_refused(qa);
        if (ev & AGENT_EV_ERROR)
                log_error(qa, now_ms);
        if ((ev & AGENT_EV_REPORT) && agent_estimate(qa->a, now_ms, &e) == 0 && e.fresh &&
            qa->hooks.report)
                qa->hooks.report(qa->userdata, &e);
}

/* The input never holds more than QEMU_AGENT_READ_MAX bytes (watermark and read size). */
static void on_read(struct bufferevent *bev, void *arg)
{
        struct qemu_agent *qa = arg;
        struct evbuffer *in = bufferevent_get_input(bev);
        uint64_t now = mono_ms(), total = 0;
        unsigned ev = 0;
        size_t n;

        qa->busy++;
        while ((n = evbuffer_get_contiguous_space(in)) > 0) {
                ev |= agent_feed(qa->a, evbuffer_pullup(in, (ev_ssize_t)n), n, now);
                evbuffer_drain(in, n);
                total += n;
        }
        qa->st.read += total;
        qa->st.read_calls++;
        if (total > qa->st.largest_read)
                qa->st.largest_read = total;
        act(qa, ev, now);
        if (leave(qa))
                flush_output(qa, now);
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
        struct qemu_agent *qa = arg;
        int e = errno;

        (void)bev;
        if (what & BEV_EVENT_EOF)
                disconnect(qa, "closed by QEMU");
        else if (what & BEV_EVENT_ERROR)
                disconnect(qa, strerror(e));
}

int qemu_agent_adopt(struct qemu_agent *qa, int fd)
{
        uint64_t now = mono_ms();

        disconnect(qa, "replaced");
        qa->lost[0] = '\0';
        if (evutil_make_socket_nonblocking(fd) < 0 ||
            !(qa->bev = bufferevent_socket_new(qa->base, fd, BEV_OPT_CLOSE_ON_FREE))) {
                close(fd);
                return -ENOMEM;
        }
        /* At most QEMU_AGENT_READ_MAX per read and buffered: a flood cannot hold the loop. */
        bufferevent_setwatermark(qa->bev, EV_READ, 0, QEMU_AGENT_READ_MAX);
        bufferevent_set_max_single_read(qa->bev, QEMU_AGENT_READ_MAX);
        bufferevent_setcb(qa->bev, on_read, NULL, on_event, qa);
        if (bufferevent_enable(qa->bev, EV_READ | EV_WRITE) < 0) {
                bufferevent_free(qa->bev);
                qa->bev = NULL;
                return -EIO;
        }
        agent_connected(qa->a, now);
        qa->denied_logged = false;
        qa->st.connects++;
        qa->connected_ms = now;
        qa->lines_at_connect = agent_counters(qa->a)->lines;
        flush_output(qa, now);
        return 0;
}

static int try_connect(struct qemu_agent *qa)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd, r;

        if (strlen(qa->path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, qa->path, strlen(qa->path) + 1);
        if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)) < 0)
                return -errno;
        /* A unix socket connects at once or fails (EAGAIN: QEMU's backlog is full). */
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                r = -errno;
                close(fd);
                return r;
        }
        return qemu_agent_adopt(qa, fd);
}

/*
 * The socket refused this user (EACCES, EPERM): say so once, with the group
 * that owns the socket, or its folder when the socket cannot be seen.
 */
static void log_denied(struct qemu_agent *qa, int err)
{
        char dir[sizeof(((struct sockaddr_un *)0)->sun_path)], group[96] = "", user[64];
        struct passwd pw, *pwp = NULL;
        struct group gr, *grp = NULL;
        char buf[1024];
        struct stat st;
        const char *what = "the socket", *slash;

        if (qa->denied_logged)
                return;
        qa->denied_logged = true;
        if (stat(qa->path, &st) < 0) {
                slash = strrchr(qa->path, '/');
                snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - qa->path) : 1,
                         slash ? qa->path : ".");
                what = "its folder";
                if (stat(dir, &st) < 0)
                        what = NULL;
        }
        if (what && getgrgid_r(st.st_gid, &gr, buf, sizeof(buf), &grp) == 0 && grp)
                snprintf(group, sizeof(group), "%s", grp->gr_name);
        else if (what)
                snprintf(group, sizeof(group), "%u", (unsigned)st.st_gid);
        if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &pwp) == 0 && pwp)
                snprintf(user, sizeof(user), "%s", pwp->pw_name);
        else
                snprintf(user, sizeof(user), "uid %u", (unsigned)geteuid());
        if (what)
                snprintf(buf, sizeof(buf),
                         " (%s belongs to group %s: give the user dynmemd runs as that group too; "
                         "backend libvirt: docs/libvirt.md, Install)",
                         what, group);
        log_msg(LOG_WARNING,
                "vm \"%s\": guest agent socket %s: %s for user %s%s; demand comes from the "
                "balloon statistics until it may connect",
                qa->name, qa->path, strerror(err), user, what ? buf : "");
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
        struct qemu_agent *qa = arg;
        uint64_t now = mono_ms(), suppressed;
        int r;

        (void)fd, (void)what;
        if (qa->bev) {
                flush_output(qa, now);
                log_silence(qa, now);
                return;
        }
        if (qa->lost[0] && rl_ok(qa, now, &suppressed))
                log_msg(LOG_NOTICE, "vm \"%s\": guest agent connection lost (%s); reconnecting",
                        qa->name, qa->lost);
        qa->lost[0] = '\0';
        if ((r = try_connect(qa)) < 0) {
                qa->st.connect_failures++;
                log_msg(LOG_DEBUG, "vm \"%s\": guest agent socket %s: %s", qa->name, qa->path,
                        strerror(-r));
                if (r == -EACCES || r == -EPERM)
                        log_denied(qa, -r);
        }
}

/* ---- life cycle ---- */

int qemu_agent_new(struct event_base *base, const char *name, const char *path,
                   uint64_t limit_bytes, const struct qemu_agent_hooks *hooks, void *userdata,
                   struct qemu_agent **ret)
{
        struct qemu_agent *qa = calloc(1, sizeof(*qa));
        struct timeval second = {.tv_sec = QEMU_AGENT_TICK_MS / 1000,
                                 .tv_usec = (QEMU_AGENT_TICK_MS % 1000) * 1000};
        struct agent_options o;
        int r;

        if (!qa)
                return -ENOMEM;
        agent_options_default(&o);
        o.limit_bytes = limit_bytes;
        if ((r = agent_new(&o, &qa->a)) < 0) {
                free(qa);
                return r;
        }
        qa->base = base;
        qa->hooks = hooks ? *hooks : (struct qemu_agent_hooks){0};
        qa->userdata = userdata;
        qa->rl = LOG_RATELIMIT(5, 6);
        qa->rl_same = LOG_RATELIMIT(5, 6);
        qa->rl_new = LOG_RATELIMIT(5, 6);
        qa->name = strdup(name);
        qa->path = strdup(path);
        qa->tick = event_new(base, -1, EV_PERSIST, on_tick, qa);
        if (!qa->name || !qa->path || !qa->tick || event_add(qa->tick, &second) < 0) {
                destroy(qa);
                return -ENOMEM;
        }
        *ret = qa;
        return 0;
}

void qemu_agent_connect_now(struct qemu_agent *qa)
{
        if (qa && !qa->bev)
                on_tick(-1, EV_TIMEOUT, qa);
}

void qemu_agent_drop(struct qemu_agent *qa)
{
        if (qa)
                disconnect(qa, "closed by dynmem");
}

void qemu_agent_free(struct qemu_agent *qa)
{
        if (!qa)
                return;
        if (qa->busy) {
                /* Called from a hook: stop reading now, free when the callback returns. */
                qa->doomed = true;
                if (qa->bev)
                        bufferevent_disable(qa->bev, EV_READ | EV_WRITE);
                event_del(qa->tick);
                return;
        }
        destroy(qa);
}

void qemu_agent_stats(const struct qemu_agent *qa, struct qemu_agent_stats *ret)
{
        *ret = qa->st;
        ret->connected = qa->bev != NULL;
}

const struct agent *qemu_agent_parser(const struct qemu_agent *qa)
{
        return qa->a;
}
