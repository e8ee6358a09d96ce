/*
 * policy_exec_loop: the exec: policy driven by an event loop (dynmemd). A
 * decision never waits: it applies a reply that has arrived, or sends a
 * request when none is in flight, and otherwise leaves every VM at its
 * target. The loop writes the request, reads the reply (bounded) and the
 * process's standard error (relayed to the log, rate-limited: see
 * policy_exec_int.h), reaps the process through its pidfd and kills it
 * when it hangs. See policy_exec.h.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "mono.h"
#include "policy_exec_int.h"

#define READS_PER_CALLBACK 16 /* reads taken per turn of the loop (64 KiB each at most) */
#define READ_CHUNK         (64 * 1024)
#define CLOSED_GRACE_MS    1000 /* after EOF on its output, the exit status is awaited this long */

static void timer_in(struct event *ev, uint64_t ms)
{
        struct timeval tv = mono_timeval(ms);

        evtimer_add(ev, &tv);
}

static void free_event(struct event **ev)
{
        if (*ev)
                event_free(*ev);
        *ev = NULL;
}

/* The process failed: report it at the next decision, kill it, reap it from the loop. */
static void __attribute__((format(printf, 3, 4)))
fail(struct policy_exec *pe, int r, const char *fmt, ...)
{
        struct policy_exec_loop *l = pe->loop;
        va_list ap;

        if (!l->fail_errno) {
                va_start(ap, fmt);
                vsnprintf(l->fail_msg, sizeof(l->fail_msg), fmt, ap);
                va_end(ap);
                l->fail_errno = -r;
        }
        free_event(&l->read_ev);
        free_event(&l->write_ev);
        event_del(l->deadline_ev);
        evbuffer_drain(l->out, evbuffer_get_length(l->out));
        l->in_flight = false;
        l->in_len = 0;
        l->killing = true;
        policy_exec_kill_child(pe); /* the pidfd event reaps it */
}

static int compare_targets(const void *a, const void *b)
{
        return strcmp(((const struct policy_exec_target *)a)->name,
                      ((const struct policy_exec_target *)b)->name);
}

static long find_target(void *ctx, const char *name)
{
        const struct policy_exec_loop *l = ctx;
        const struct policy_exec_target key = {.name = name};
        const struct policy_exec_target *t =
            bsearch(&key, l->targets, l->n_targets, sizeof(key), compare_targets);

        return t ? t - l->targets : -1;
}

static void set_target(void *ctx, long slot, uint64_t bytes)
{
        ((struct policy_exec_loop *)ctx)->targets[slot].bytes = bytes;
}

static void handle_line(struct policy_exec *pe, const char *line, size_t len)
{
        struct policy_exec_loop *l = pe->loop;
        char why[200];

        for (size_t i = 0; i < l->n_targets; i++)
                l->targets[i].bytes = 0;
        if (policy_exec_parse_targets(line, len, find_target, set_target, l, why, sizeof(why)) <
            0) {
                fail(pe, -EINVAL, "policy \"%s\": %s; killed", pe->command, why);
                return;
        }
        event_del(l->deadline_ev);
        l->in_flight = false;
        l->reply_ready = true;
        pe->failures = 0;
        pe->tally.answers++;
        if (l->on_reply)
                l->on_reply(l->userdata);
}

/* Bytes from the process. Those that come while no request is in flight are stale. */
static void on_readable(evutil_socket_t fd, short what, void *arg)
{
        struct policy_exec *pe = arg;
        struct policy_exec_loop *l = pe->loop;

        (void)what;
        for (int i = 0; i < READS_PER_CALLBACK; i++) {
                size_t room = l->in_cap - l->in_len;
                ssize_t got = read(fd, l->in + l->in_len, room < READ_CHUNK ? room : READ_CHUNK);
                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0)
                        return; /* EAGAIN: all read */
                if (got == 0) {
                        /* Its output is closed: the exit status says why (on_exit). */
                        free_event(&l->read_ev);
                        l->output_closed = true;
                        timer_in(l->deadline_ev, CLOSED_GRACE_MS);
                        return;
                }
                if (!l->in_flight)
                        continue; /* stale: dropped */
                char *nl = memchr(l->in + l->in_len, '\n', (size_t)got);
                l->in_len += (size_t)got;
                if (nl) {
                        handle_line(pe, l->in, (size_t)(nl - l->in));
                        l->in_len = 0;
                        return;
                }
                if (l->in_len == l->in_cap) {
                        fail(pe, -EMSGSIZE, "policy \"%s\" answered more than %zu bytes; killed",
                             pe->command, l->in_cap);
                        return;
                }
        }
}

static void on_writable(evutil_socket_t fd, short what, void *arg)
{
        struct policy_exec *pe = arg;
        struct policy_exec_loop *l = pe->loop;

        (void)what;
        if (evbuffer_write(l->out, fd) < 0 && errno != EAGAIN && errno != EINTR) {
                /* It does not read (it closed its input or died): the exit or the deadline tells.
                 */
                evbuffer_drain(l->out, evbuffer_get_length(l->out));
        }
        if (evbuffer_get_length(l->out) == 0 && l->write_ev)
                event_del(l->write_ev);
}

/* The program's standard error: its lines relayed; at its end, the pipe closed. */
static void on_stderr(evutil_socket_t fd, short what, void *arg)
{
        struct policy_exec *pe = arg;

        (void)fd, (void)what;
        if (policy_exec_stderr_read(pe) == 1) {
                free_event(&pe->loop->stderr_ev);
                policy_exec_stderr_close(pe);
        }
}

/* Stop reading the standard error: what is left of it is relayed, the pipe closed. */
static void close_stderr(struct policy_exec *pe)
{
        free_event(&pe->loop->stderr_ev);
        policy_exec_stderr_close(pe);
}

/* The process exited (its pidfd became readable): reap it, and report it if unexpected. */
static void on_process_exit(evutil_socket_t fd, short what, void *arg)
{
        struct policy_exec *pe = arg;
        struct policy_exec_loop *l = pe->loop;
        char how[64];

        (void)fd, (void)what;
        if (!policy_exec_reap(pe, how, sizeof(how))) {
                event_add(l->pid_ev, NULL); /* not yet: look again when it is readable */
                return;
        }
        close_stderr(pe); /* all it wrote before it went (relayed before the failure is said) */
        if (!l->killing)
                fail(pe, -EPIPE, "policy \"%s\" %s", pe->command, how);
        free_event(&l->read_ev);
        free_event(&l->write_ev);
        event_del(l->deadline_ev);
        l->killing = false;
        l->output_closed = false;
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
        struct policy_exec *pe = arg;
        struct policy_exec_loop *l = pe->loop;

        (void)fd, (void)what;
        if (l->output_closed)
                fail(pe, -EPIPE, "policy \"%s\" closed its output; killed", pe->command);
        else
                fail(pe, -ETIMEDOUT, "policy \"%s\" did not answer within %u ms; killed",
                     pe->command, l->kill_ms);
}

int policy_exec_attach(struct policy_exec *pe, struct event_base *base,
                       void (*on_reply)(void *userdata), void *userdata)
{
        struct policy_exec_loop *l = calloc(1, sizeof(*l));

        if (!l)
                return -ENOMEM;
        *l = (struct policy_exec_loop){.base = base,
                                       .on_reply = on_reply,
                                       .userdata = userdata,
                                       .kill_ms = POLICY_EXEC_KILL_MS};
        l->out = evbuffer_new();
        l->deadline_ev = evtimer_new(base, on_deadline, pe);
        l->in_cap = POLICY_EXEC_LINE_BASE;
        l->in = malloc(l->in_cap);
        pe->loop = l;
        /* dynmemd runs for months: so many lines a minute, not the first of a run */
        policy_exec_stderr_init(&pe->err, POLICY_EXEC_STDERR_PER_MINUTE);
        if (!l->out || !l->deadline_ev || !l->in) {
                policy_exec_loop_free(pe);
                return -ENOMEM;
        }
        return 0;
}

void policy_exec_set_kill_ms(struct policy_exec *pe, unsigned ms)
{
        if (pe->loop)
                pe->loop->kill_ms = ms;
}

void policy_exec_loop_free(struct policy_exec *pe)
{
        struct policy_exec_loop *l = pe->loop;

        if (!l)
                return;
        free_event(&l->read_ev);
        free_event(&l->write_ev);
        free_event(&l->pid_ev);
        free_event(&l->deadline_ev);
        free_event(&l->stderr_ev); /* policy_exec_free() relays what is left */
        if (l->out)
                evbuffer_free(l->out);
        free(l->in);
        free(l->names);
        free(l->targets);
        free(l);
        pe->loop = NULL;
}

/* Events for a new process's pipes and pidfd. */
static int start_process(struct policy_exec *pe, char *err, size_t errlen)
{
        struct policy_exec_loop *l = pe->loop;
        int r;

        free_event(&l->stderr_ev); /* a former process's (closed by the start) */
        if ((r = policy_exec_start_child(pe, err, errlen)) < 0)
                return r;
        /* A request is larger than a pipe holds: the loop writes it as the process reads. */
        fcntl(pe->to_child, F_SETFL, O_NONBLOCK);
        free_event(&l->pid_ev);
        l->read_ev = event_new(l->base, pe->from_child, EV_READ | EV_PERSIST, on_readable, pe);
        l->write_ev = event_new(l->base, pe->to_child, EV_WRITE | EV_PERSIST, on_writable, pe);
        l->pid_ev = event_new(l->base, pe->pidfd, EV_READ, on_process_exit, pe);
        l->stderr_ev = event_new(l->base, pe->err.fd, EV_READ | EV_PERSIST, on_stderr, pe);
        if (!l->read_ev || !l->write_ev || !l->pid_ev || !l->stderr_ev ||
            event_add(l->read_ev, NULL) < 0 || event_add(l->pid_ev, NULL) < 0 ||
            event_add(l->stderr_ev, NULL) < 0) {
                free_event(&l->read_ev);
                free_event(&l->write_ev);
                free_event(&l->pid_ev);
                free_event(&l->stderr_ev);
                policy_exec_abandon_child(pe, l->base);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        l->output_closed = l->killing = false;
        l->in_len = 0;
        return 0;
}

/* Remember which VMs the request describes, sorted, so that the reply can be checked. */
static int snapshot_names(struct policy_exec_loop *l, const struct policy_vm *vms, size_t n)
{
        size_t bytes = 0, count = 0;

        for (size_t i = 0; i < n; i++)
                if (vms[i].phase != POLICY_PHASE_OFF)
                        bytes += strlen(vms[i].name) + 1, count++;
        char *names = malloc(bytes ? bytes : 1);
        struct policy_exec_target *t = calloc(count ? count : 1, sizeof(*t));
        if (!names || !t) {
                free(names), free(t);
                return -ENOMEM;
        }
        char *p = names;
        for (size_t i = 0, k = 0; i < n; i++) {
                if (vms[i].phase == POLICY_PHASE_OFF)
                        continue;
                size_t len = strlen(vms[i].name) + 1;
                memcpy(p, vms[i].name, len);
                t[k++].name = p;
                p += len;
        }
        qsort(t, count, sizeof(*t), compare_targets);
        free(l->names), free(l->targets);
        l->names = names;
        l->targets = t;
        l->n_targets = count;
        return 0;
}

static int send_request(struct policy_exec *pe, const struct policy_host *host,
                        const struct policy_vm *vms, size_t n, uint64_t now_ms, bool fresh)
{
        struct policy_exec_loop *l = pe->loop;
        size_t cap = policy_exec_line_cap(n);
        char *req = policy_exec_request(host, vms, n, now_ms);

        if (cap != l->in_cap) {
                char *in = realloc(l->in, cap);
                if (!in) {
                        free(req);
                        return -ENOMEM;
                }
                l->in = in;
                l->in_cap = cap;
        }
        if (!req || snapshot_names(l, vms, n) < 0 || evbuffer_add(l->out, req, strlen(req)) < 0 ||
            evbuffer_add(l->out, "\n", 1) < 0) {
                free(req);
                evbuffer_drain(l->out, evbuffer_get_length(l->out));
                return -ENOMEM;
        }
        free(req);
        l->in_len = 0;
        l->in_flight = true;
        l->started_fresh = fresh;
        l->late_said = false;
        l->sent_mono_ms = mono_ms();
        timer_in(l->deadline_ev, l->kill_ms);
        on_writable(pe->to_child, EV_WRITE, pe); /* most requests fit the pipe at once */
        if (evbuffer_get_length(l->out) > 0 && l->write_ev)
                event_add(l->write_ev, NULL);
        return 0;
}

static void apply_reply(struct policy_exec_loop *l, struct policy_vm *vms, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                long slot = vms[i].phase == POLICY_PHASE_OFF ? -1 : find_target(l, vms[i].name);
                if (slot >= 0)
                        vms[i].external_bytes = l->targets[slot].bytes;
        }
        l->reply_ready = false;
}

/* A request in flight: say once when it is later than a reply is due. */
static void report_late(struct policy_exec *pe, char *err, size_t errlen)
{
        struct policy_exec_loop *l = pe->loop;
        uint64_t waited = mono_ms() - l->sent_mono_ms;
        uint64_t due = l->started_fresh ? POLICY_EXEC_START_TIMEOUT_MS : POLICY_EXEC_TIMEOUT_MS;

        if (l->late_said || waited < due)
                return;
        l->late_said = true;
        snprintf(err, errlen,
                 "policy \"%s\" has not answered for %llu ms (due within %llu ms); the VMs keep "
                 "their targets until it does",
                 pe->command, (unsigned long long)waited, (unsigned long long)due);
}

int policy_exec_loop_decide(struct policy_exec *pe, const struct policy_host *host,
                            struct policy_vm *vms, size_t n, uint64_t now_ms, char *err,
                            size_t errlen)
{
        struct policy_exec_loop *l = pe->loop;
        int r;

        if (l->fail_errno) {
                r = -l->fail_errno;
                snprintf(err, errlen, "%s", l->fail_msg);
                l->fail_errno = 0;
                policy_exec_note_failure(pe, now_ms);
                return r;
        }
        if (l->reply_ready) {
                apply_reply(l, vms, n);
                return 0; /* the next decision asks again, with what it observes then */
        }
        if (l->in_flight) {
                report_late(pe, err, errlen);
                return -EINPROGRESS;
        }
        if (l->killing)
                return -EAGAIN; /* killed, not reaped yet: the pidfd event comes soon */
        if ((r = policy_exec_restart_wait(pe, now_ms, err, errlen)) < 0)
                return r;
        bool fresh = pe->pid < 0;
        if (fresh && (r = start_process(pe, err, errlen)) < 0) {
                policy_exec_note_failure(pe, now_ms);
                return r;
        }
        pe->failed = false;
        if (send_request(pe, host, vms, n, now_ms, fresh) < 0) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        return -EINPROGRESS;
}
