/*
 * qmp: non-blocking QMP client on a libevent bufferevent, with a size cap
 * on every line and a shape check on every message. See qmp.h.
 */
#include "qmp.h"
#include "log.h"
#include "mono.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define EXACT_MAX ((uint64_t)1 << 53) /* largest integer a double holds exactly */
/*
 * QEMU may send an event ahead of its greeting: its monitor learns that a
 * client connected in one thread and may emit an event from another before
 * it has set up the negotiation (a race QEMU's own list discussed in 2025).
 * Up to this many are checked and dropped; more is not a QEMU.
 */
#define EARLY_EVENTS_MAX 16

enum qmp_state {
        QMP_GREETING,    /* waiting for {"QMP": ...} */
        QMP_NEGOTIATING, /* qmp_capabilities sent */
        QMP_READY,
        QMP_CLOSED,
};

struct qmp_pending {
        uint64_t id;
        char *line;       /* the command, until sent */
        char execute[64]; /* for messages */
        qmp_reply_fn fn;
        void *userdata;
        uint64_t sent_ms; /* 0 = not sent yet */
};

struct qmp {
        struct event_base *base;
        struct bufferevent *bev;
        struct event *timer;
        struct qmp_callbacks cb;
        void *userdata;
        enum qmp_state state;
        uint64_t next_id;
        uint64_t timeout_ms;
        uint64_t connected_ms;
        struct qmp_pending pending[QMP_PENDING_MAX]; /* FIFO ring */
        size_t head, count;
        unsigned version[3];
        int dispatching;       /* > 0 while callbacks run */
        bool doomed;           /* qmp_free() called during a callback */
        unsigned early_events; /* events ahead of the greeting */
};

static struct qmp_pending *pending_at(struct qmp *q, size_t i)
{
        return &q->pending[(q->head + i) % QMP_PENDING_MAX];
}

static void pending_clear(struct qmp_pending *p)
{
        free(p->line);
        *p = (struct qmp_pending){0};
}

static void destroy(struct qmp *q)
{
        for (size_t i = 0; i < q->count; i++)
                pending_clear(pending_at(q, i));
        if (q->bev)
                bufferevent_free(q->bev);
        if (q->timer)
                event_free(q->timer);
        free(q);
}

void qmp_free(struct qmp *q)
{
        if (!q)
                return;
        if (q->dispatching > 0) {
                q->doomed = true;
                q->cb = (struct qmp_callbacks){0};
                return;
        }
        destroy(q);
}

/* Leave a callback section; returns true when the client was freed meanwhile. */
static bool leave(struct qmp *q)
{
        if (--q->dispatching == 0 && q->doomed) {
                destroy(q);
                return true;
        }
        return q->doomed;
}

/* Arm the timer for the oldest deadline: the greeting, or the oldest sent command. */
static void arm_timer(struct qmp *q)
{
        uint64_t since = 0, now = mono_ms();

        if (q->state == QMP_CLOSED) {
                evtimer_del(q->timer);
                return;
        }
        if (q->state == QMP_GREETING)
                since = q->connected_ms;
        else if (q->count > 0 && pending_at(q, 0)->sent_ms)
                since = pending_at(q, 0)->sent_ms;
        if (!since) {
                evtimer_del(q->timer);
                return;
        }
        uint64_t left = since + q->timeout_ms > now ? since + q->timeout_ms - now : 0;
        struct timeval tv = mono_timeval(left);
        evtimer_add(q->timer, &tv);
}

/* Close the connection: answer everything pending with QMP_GONE, then tell the owner. */
static void fail(struct qmp *q, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(struct qmp *q, const char *fmt, ...)
{
        char why[256] = "";
        va_list ap;

        if (q->state == QMP_CLOSED)
                return;
        va_start(ap, fmt);
        vsnprintf(why, sizeof(why), fmt, ap);
        va_end(ap);
        q->state = QMP_CLOSED;
        if (q->bev) {
                bufferevent_free(q->bev);
                q->bev = NULL;
        }
        evtimer_del(q->timer);
        q->dispatching++;
        while (q->count > 0) {
                struct qmp_pending p = *pending_at(q, 0);
                *pending_at(q, 0) = (struct qmp_pending){0};
                q->head = (q->head + 1) % QMP_PENDING_MAX;
                q->count--;
                if (p.fn && !q->doomed)
                        p.fn(q, &(struct qmp_reply){.status = QMP_GONE, .error_desc = why},
                             p.userdata);
                free(p.line);
        }
        if (q->cb.closed && !q->doomed)
                q->cb.closed(q, why, q->userdata);
        leave(q);
}

/* Write every queued command (all of them once negotiated). */
static void flush(struct qmp *q)
{
        struct evbuffer *out;

        if (q->state != QMP_READY && q->state != QMP_NEGOTIATING)
                return;
        out = bufferevent_get_output(q->bev);
        for (size_t i = 0; i < q->count; i++) {
                struct qmp_pending *p = pending_at(q, i);
                if (!p->line)
                        continue;
                /* Only qmp_capabilities (the first) may go before negotiation ends. */
                if (q->state == QMP_NEGOTIATING && i > 0)
                        break;
                if (evbuffer_add(out, p->line, strlen(p->line)) < 0) {
                        fail(q, "cannot queue a command: out of memory");
                        return;
                }
                free(p->line);
                p->line = NULL;
                p->sent_ms = mono_ms();
        }
        arm_timer(q);
}

/* Build a command line into p. arguments is stolen. */
static int make_pending(struct qmp *q, const char *execute, json_t *arguments, qmp_reply_fn fn,
                        void *userdata, struct qmp_pending *p)
{
        json_t *msg = json_pack("{s:s, s:I}", "execute", execute, "id", (json_int_t)q->next_id);
        char *text, *line;

        if (!msg || (arguments && json_object_set_new(msg, "arguments", arguments) < 0)) {
                if (!msg)
                        json_decref(arguments);
                json_decref(msg);
                return -ENOMEM;
        }
        text = json_dumps(msg, JSON_COMPACT);
        json_decref(msg);
        if (!text || asprintf(&line, "%s\r\n", text) < 0) {
                free(text);
                return -ENOMEM;
        }
        free(text);
        *p = (struct qmp_pending){.id = q->next_id++, .line = line, .fn = fn, .userdata = userdata};
        snprintf(p->execute, sizeof(p->execute), "%s", execute);
        return 0;
}

int qmp_command(struct qmp *q, const char *execute, json_t *arguments, qmp_reply_fn fn,
                void *userdata)
{
        int r;

        if (!q || q->state == QMP_CLOSED || q->doomed) {
                json_decref(arguments);
                return -ENOTCONN;
        }
        if (!execute || !*execute ||
            strlen(execute) >= sizeof(((struct qmp_pending *)0)->execute) ||
            (arguments && !json_is_object(arguments))) {
                json_decref(arguments);
                return -EINVAL;
        }
        if (q->count == QMP_PENDING_MAX) {
                json_decref(arguments);
                return -EBUSY;
        }
        r = make_pending(q, execute, arguments, fn, userdata, pending_at(q, q->count));
        if (r < 0)
                return r;
        q->count++;
        if (q->state == QMP_READY)
                flush(q);
        return 0;
}

static void capabilities_done(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        (void)userdata;
        if (reply->status == QMP_GONE)
                return;
        if (reply->status != QMP_OK) {
                fail(q, "QEMU refused qmp_capabilities: %s", reply->error_desc);
                return;
        }
        q->state = QMP_READY;
        flush(q);
        if (q->state == QMP_READY && q->cb.ready)
                q->cb.ready(q, q->userdata);
}

/* {"major": M, "minor": N, "micro": P}: from the greeting, or from query-version. */
static void read_version(struct qmp *q, const json_t *v)
{
        static const char *const keys[] = {"major", "minor", "micro"};
        _Static_assert(sizeof(keys) / sizeof(keys[0]) == sizeof(q->version) / sizeof(q->version[0]),
                       "a name for each part of the version");

        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                uint64_t n;
                if (qmp_get_u64(v, keys[i], 100000, &n) == 0)
                        q->version[i] = (unsigned)n;
        }
}

/* The greeting: put qmp_capabilities ahead of anything the owner queued. */
static void on_event(struct qmp *q, json_t *msg);

static void on_greeting(struct qmp *q, json_t *msg)
{
        if (!json_object_get(msg, "QMP") && json_is_string(json_object_get(msg, "event"))) {
                if (++q->early_events > EARLY_EVENTS_MAX)
                        fail(q, "QEMU sent more than %d events before its greeting",
                             EARLY_EVENTS_MAX);
                else
                        on_event(q, msg); /* checked; not passed on before negotiation */
                return;
        }
        if (!json_is_object(json_object_get(msg, "QMP"))) {
                /* Name what came instead, made fit for a log line. */
                const char *key = json_object_iter_key(json_object_iter(msg));
                char shown[40];
                log_clean(shown, sizeof(shown), key ? key : "");
                fail(q, "QEMU did not greet with a QMP object (its first message %s%s%s)",
                     key ? "has the key \"" : "is empty", shown, key ? "\"" : "");
                return;
        }
        read_version(
            q, json_object_get(json_object_get(json_object_get(msg, "QMP"), "version"), "qemu"));
        if (q->count == QMP_PENDING_MAX) {
                fail(q, "too many commands queued before the greeting");
                return;
        }
        /* Negotiation goes ahead of anything the owner queued. */
        struct qmp_pending p;
        int r = make_pending(q, "qmp_capabilities", NULL, capabilities_done, NULL, &p);
        if (r < 0) {
                fail(q, "cannot send qmp_capabilities: %s", strerror(-r));
                return;
        }
        q->head = (q->head + QMP_PENDING_MAX - 1) % QMP_PENDING_MAX;
        q->count++;
        *pending_at(q, 0) = p;
        q->state = QMP_NEGOTIATING;
        flush(q);
}

static void on_event(struct qmp *q, json_t *msg)
{
        const char *name = qmp_get_string(msg, "event", QMP_EVENT_NAME_MAX);
        json_t *data = json_object_get(msg, "data");

        if (!name || (data && !json_is_object(data))) {
                fail(q, "malformed QMP event");
                return;
        }
        for (const char *c = name; *c; c++) {
                if (!((*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '_')) {
                        fail(q, "malformed QMP event name");
                        return;
                }
        }
        if (q->state == QMP_READY && q->cb.event)
                q->cb.event(q, name, data, q->userdata);
}

static void on_reply(struct qmp *q, json_t *msg)
{
        uint64_t id;
        json_t *ret = json_object_get(msg, "return"), *error = json_object_get(msg, "error");
        struct qmp_reply reply = {.status = QMP_OK, .ret = ret};

        /* Without out-of-band execution QEMU answers in order: the reply is for the head. */
        if (qmp_get_u64(msg, "id", EXACT_MAX, &id) < 0 || q->count == 0 ||
            pending_at(q, 0)->sent_ms == 0 || pending_at(q, 0)->id != id) {
                fail(q, "QMP reply to a command that was not asked");
                return;
        }
        if (!ret == !error) {
                fail(q, "QMP reply with neither or both of return and error");
                return;
        }
        if (error) {
                reply.status = QMP_ERROR;
                reply.error_class = qmp_get_string(error, "class", 128);
                reply.error_desc = qmp_get_string(error, "desc", 4096);
                if (!reply.error_class || !reply.error_desc) {
                        fail(q, "QMP error without class or description");
                        return;
                }
        }
        struct qmp_pending p = *pending_at(q, 0);
        *pending_at(q, 0) = (struct qmp_pending){0};
        q->head = (q->head + 1) % QMP_PENDING_MAX;
        q->count--;
        arm_timer(q);
        if (p.fn)
                p.fn(q, &reply, p.userdata);
        free(p.line);
}

/* One message; the caller holds a dispatch reference. */
static void dispatch(struct qmp *q, json_t *msg)
{
        if (!json_is_object(msg)) {
                fail(q, "QMP message is not a JSON object");
                return;
        }
        if (q->state == QMP_GREETING) {
                on_greeting(q, msg);
                return;
        }
        if (json_object_get(msg, "event"))
                on_event(q, msg);
        else if (json_object_get(msg, "id"))
                on_reply(q, msg);
        else
                fail(q, "QMP message is neither a reply nor an event");
}

static void on_read(struct bufferevent *bev, void *arg)
{
        struct qmp *q = arg;
        struct evbuffer *in = bufferevent_get_input(bev);

        q->dispatching++;
        while (q->state != QMP_CLOSED && !q->doomed) {
                struct evbuffer_ptr eol = evbuffer_search(in, "\n", 1, NULL);
                size_t len = evbuffer_get_length(in);
                if (eol.pos < 0) {
                        if (len > QMP_LINE_MAX)
                                fail(q, "QMP message longer than %d bytes", QMP_LINE_MAX);
                        break;
                }
                if ((size_t)eol.pos > QMP_LINE_MAX) {
                        fail(q, "QMP message longer than %d bytes", QMP_LINE_MAX);
                        break;
                }
                size_t n = (size_t)eol.pos;
                const char *line = (const char *)evbuffer_pullup(in, (ssize_t)n + 1);
                json_error_t jerr;
                json_t *msg = NULL;
                bool blank = strspn(line, " \t\r") >= n;
                if (!blank)
                        msg = json_loadb(line, n, JSON_REJECT_DUPLICATES | JSON_DECODE_INT_AS_REAL,
                                         &jerr);
                evbuffer_drain(in, n + 1);
                if (blank)
                        continue;
                if (!msg) {
                        fail(q, "QMP message is not JSON: %s", jerr.text);
                        break;
                }
                dispatch(q, msg);
                json_decref(msg);
        }
        leave(q);
}

static void on_bev_event(struct bufferevent *bev, short what, void *arg)
{
        struct qmp *q = arg;
        int e = errno;

        (void)bev;
        q->dispatching++;
        if (what & BEV_EVENT_EOF)
                fail(q, "QEMU closed the QMP connection");
        else if (what & BEV_EVENT_ERROR)
                fail(q, "QMP connection failed: %s", strerror(e));
        leave(q);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        struct qmp *q = arg;

        (void)fd, (void)what;
        q->dispatching++;
        if (q->state == QMP_GREETING)
                fail(q, "no QMP greeting within %llu ms", (unsigned long long)q->timeout_ms);
        else if (q->count > 0)
                fail(q, "no reply to %s within %llu ms", pending_at(q, 0)->execute,
                     (unsigned long long)q->timeout_ms);
        leave(q);
}

int qmp_new_fd(struct event_base *base, int fd, const struct qmp_callbacks *cb, void *userdata,
               struct qmp **ret)
{
        struct qmp *q = calloc(1, sizeof(*q));

        if (!q) {
                close(fd);
                return -ENOMEM;
        }
        q->base = base;
        q->cb = cb ? *cb : (struct qmp_callbacks){0};
        q->userdata = userdata;
        q->next_id = 1;
        q->timeout_ms = QMP_REPLY_TIMEOUT_MS;
        q->connected_ms = mono_ms();
        q->bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
        q->timer = evtimer_new(base, on_timer, q);
        if (!q->bev || !q->timer) {
                if (!q->bev)
                        close(fd);
                destroy(q);
                return -ENOMEM;
        }
        evutil_make_socket_nonblocking(fd);
        /* Stop reading once a whole line could not fit: on_read then rejects it. */
        bufferevent_setwatermark(q->bev, EV_READ, 0, QMP_LINE_MAX + 2);
        bufferevent_setcb(q->bev, on_read, NULL, on_bev_event, q);
        if (bufferevent_enable(q->bev, EV_READ | EV_WRITE) < 0) {
                destroy(q);
                return -EIO;
        }
        arm_timer(q);
        *ret = q;
        return 0;
}

int qmp_connect(struct event_base *base, const char *path, const struct qmp_callbacks *cb,
                void *userdata, struct qmp **ret)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int fd;

        if (!path || strlen(path) >= sizeof(sa.sun_path))
                return -ENAMETOOLONG;
        memcpy(sa.sun_path, path, strlen(path) + 1);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return -errno;
        if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
                int e = errno;
                close(fd);
                return -e;
        }
        return qmp_new_fd(base, fd, cb, userdata, ret);
}

void qmp_set_reply_timeout(struct qmp *q, uint64_t ms)
{
        q->timeout_ms = ms ? ms : 1;
        arm_timer(q);
}

bool qmp_is_ready(const struct qmp *q)
{
        return q && q->state == QMP_READY && !q->doomed;
}

bool qmp_is_closed(const struct qmp *q)
{
        return !q || q->state == QMP_CLOSED || q->doomed;
}

void qmp_version(const struct qmp *q, unsigned *ret_major, unsigned *ret_minor, unsigned *ret_micro)
{
        *ret_major = q->version[0];
        *ret_minor = q->version[1];
        *ret_micro = q->version[2];
}

int qmp_get_u64(const json_t *obj, const char *key, uint64_t max, uint64_t *ret)
{
        const json_t *v = key ? json_object_get(obj, key) : obj;
        double d;

        if (!v)
                return -ENOENT;
        if (json_is_integer(v)) {
                json_int_t i = json_integer_value(v);
                if (i < 0 || (uint64_t)i > max)
                        return -ERANGE;
                *ret = (uint64_t)i;
                return 0;
        }
        if (!json_is_real(v))
                return -EINVAL;
        d = json_real_value(v);
        if (!isfinite(d) || d != floor(d))
                return -EINVAL;
        if (d < 0.0 || d >= (double)EXACT_MAX || (uint64_t)d > max)
                return -ERANGE;
        *ret = (uint64_t)d;
        return 0;
}

const char *qmp_get_string(const json_t *obj, const char *key, size_t maxlen)
{
        const json_t *v = json_object_get(obj, key);

        if (!json_is_string(v) || json_string_length(v) > maxlen ||
            strlen(json_string_value(v)) != json_string_length(v))
                return NULL;
        return json_string_value(v);
}
