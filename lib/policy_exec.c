/*
 * policy_exec: runs an external policy process and speaks its one-line JSON
 * protocol: the request line, the reply parser, the child process and its
 * restart pause, and the mode that waits for each reply (dynmem-sim). The
 * event-loop mode is in policy_exec_loop.c, the relay of the program's
 * standard error in policy_exec_stderr.c. See policy_exec.h and
 * docs/policy-exec.md.
 */
#include "policy_exec.h"
#include "mono.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "policy_exec_int.h"

int policy_exec_new(const char *command, struct policy_exec **ret, char *err, size_t errlen)
{
        struct policy_exec *pe = calloc(1, sizeof(*pe));

        if (!pe || !(pe->command = strdup(command))) {
                free(pe);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        pe->pid = -1;
        pe->pidfd = -1;
        pe->to_child = pe->from_child = -1;
        policy_exec_stderr_init(&pe->err, 0); /* the waiting mode's: the first lines of a run */
        pe->stop_wait_ms = POLICY_EXEC_STOP_WAIT_MS;
        *ret = pe;
        return 0;
}

void policy_exec_kill_child(struct policy_exec *pe)
{
        if (pe->to_child >= 0)
                close(pe->to_child);
        if (pe->from_child >= 0)
                close(pe->from_child);
        pe->to_child = pe->from_child = -1;
        if (pe->pidfd >= 0)
                pidfd_send_signal(pe->pidfd, SIGKILL, NULL, 0);
}

int policy_exec_reap(struct policy_exec *pe, char *how, size_t len)
{
        siginfo_t si = {0};

        if (pe->pid < 0)
                return 1;
        if (waitid((idtype_t)P_PIDFD, (id_t)pe->pidfd, &si, WEXITED | WNOHANG) < 0) {
                if (errno != ECHILD)
                        return 0;
                snprintf(how, len, "is gone"); /* reaped elsewhere */
        } else if (si.si_pid == 0) {
                return 0; /* still running */
        } else if (si.si_code == CLD_EXITED) {
                snprintf(how, len, "exited with status %d", si.si_status);
        } else {
                snprintf(how, len, "was killed by signal %d", si.si_status);
        }
        close(pe->pidfd);
        pe->pidfd = -1;
        pe->pid = -1;
        return 1;
}

/*
 * A child killed outside the loop (the waiting mode, or freeing): SIGKILL
 * ends it unless it is stuck in the kernel (or slow to free its memory), so
 * wait up to stop_wait_ms (1 s) for it rather than hang; one not gone by
 * then is kept among the strays, which the next decision reaps. What it
 * wrote to its standard error is relayed, and the pipe closed.
 */
static void stop_child_waiting(struct policy_exec *pe)
{
        char how[64];

        policy_exec_kill_child(pe);
        if (pe->pid >= 0) {
                poll(&(struct pollfd){.fd = pe->pidfd, .events = POLLIN}, 1, (int)pe->stop_wait_ms);
                if (!policy_exec_reap(pe, how, sizeof(how))) {
                        child_strays_add(&pe->strays, pe->pidfd);
                        pe->pidfd = -1;
                        pe->pid = -1;
                }
        }
        policy_exec_stderr_close(pe);
}

void policy_exec_set_stop_wait_ms(struct policy_exec *pe, unsigned ms)
{
        pe->stop_wait_ms = ms;
}

void policy_exec_abandon_child(struct policy_exec *pe, struct event_base *base)
{
        policy_exec_kill_child(pe);
        if (pe->pid >= 0)
                child_reap_later(base, pe->pidfd);
        pe->pidfd = -1;
        pe->pid = -1;
        policy_exec_stderr_close(pe); /* what it wrote so far */
}

void policy_exec_free(struct policy_exec *pe)
{
        if (!pe)
                return;
        if (pe->loop) { /* freed from the loop (a reload, the end): do not wait there */
                struct event_base *base = pe->loop->base;
                policy_exec_loop_free(pe);
                policy_exec_abandon_child(pe, base);
        } else {
                stop_child_waiting(pe);
        }
        /* The last chance to reap them: wait a moment, as for the child itself. */
        child_strays_reap(&pe->strays, POLICY_EXEC_STOP_WAIT_MS);
        child_strays_close(&pe->strays);
        policy_exec_stderr_final(pe);
        free(pe->command);
        free(pe);
}

/*
 * The child: the pipes as its standard input, output and error, no other
 * descriptor of dynmem's (one not marked close-on-exec
 * would otherwise stay open in it), and the signals as a new process has
 * them: none blocked, none ignored (dynmem ignores SIGPIPE; what its own
 * parent blocked or ignored is not the program's business). Only
 * async-signal-safe calls: dynmemd may have threads.
 */
static void __attribute__((noreturn)) exec_child(int in, int out, int err, const char *command)
{
        /* Above 2 first, so that no pipe is overwritten by another's dup2. */
        if ((in = fcntl(in, F_DUPFD, 3)) < 0 || (out = fcntl(out, F_DUPFD, 3)) < 0 ||
            (err = fcntl(err, F_DUPFD, 3)) < 0 || dup2(in, STDIN_FILENO) < 0 ||
            dup2(out, STDOUT_FILENO) < 0 || dup2(err, STDERR_FILENO) < 0)
                _exit(127);
        closefrom(3);
        child_default_signals();
        execl("/bin/sh", "sh", "-c", command, (char *)NULL);
        _exit(127);
}

/*
 * fork() and exec: called when a process must be (re)started, at most once
 * a second (the restart pause), never while one runs. The fork copies page
 * tables and returns at once; nothing here waits for the child.
 */
int policy_exec_start_child(struct policy_exec *pe, char *err, size_t errlen)
{
        int in[2], out[2], errs[2], pidfd;

        policy_exec_stderr_close(pe); /* a former child's, if still open */
        if (pipe2(in, O_CLOEXEC) < 0)
                goto fail;
        if (pipe2(out, O_CLOEXEC) < 0) {
                close(in[0]), close(in[1]);
                goto fail;
        }
        if (pipe2(errs, O_CLOEXEC) < 0) {
                close(in[0]), close(in[1]), close(out[0]), close(out[1]);
                goto fail;
        }
        pid_t pid = fork();
        if (pid < 0) {
                close(in[0]), close(in[1]), close(out[0]), close(out[1]);
                close(errs[0]), close(errs[1]);
                goto fail;
        }
        if (pid == 0)
                exec_child(in[0], out[1], errs[1], pe->command);
        close(in[0]);
        close(out[1]);
        close(errs[1]);
        if ((pidfd = pidfd_open(pid, 0)) < 0) {
                int e = errno;
                kill(pid, SIGKILL);
                waitpid(pid, NULL, WNOHANG); /* not waited for: a zombie at worst (EMFILE) */
                close(in[1]), close(out[0]), close(errs[0]);
                errno = e;
                goto fail;
        }
        fcntl(out[0], F_SETFL, O_NONBLOCK);
        fcntl(errs[0], F_SETFL, O_NONBLOCK);
        pe->pid = pid;
        pe->pidfd = pidfd;
        pe->to_child = in[1];
        pe->from_child = out[0];
        pe->err.fd = errs[0];
        return 0;
fail:
        snprintf(err, errlen, "policy \"%s\": cannot start: %s", pe->command, strerror(errno));
        return -errno;
}

void policy_exec_note_failure(struct policy_exec *pe, uint64_t now_ms)
{
        pe->failed = true;
        pe->failure_said = false;
        pe->failed_at_ms = now_ms;
        pe->tally.failures++;
        if (pe->failures < 16)
                pe->failures++;
}

static uint64_t restart_pause(const struct policy_exec *pe)
{
        uint64_t pause = POLICY_EXEC_RESTART_MS;

        for (unsigned i = 1; i < pe->failures && pause < POLICY_EXEC_RESTART_MAX_MS; i++)
                pause *= 2;
        return pause < POLICY_EXEC_RESTART_MAX_MS ? pause : POLICY_EXEC_RESTART_MAX_MS;
}

int policy_exec_restart_wait(struct policy_exec *pe, uint64_t now_ms, char *err, size_t errlen)
{
        uint64_t pause = restart_pause(pe);

        if (!pe->failed || now_ms < pe->failed_at_ms || now_ms - pe->failed_at_ms >= pause)
                return 0;
        if (!pe->failure_said)
                snprintf(err, errlen,
                         "policy \"%s\" will be restarted %llu ms after its failure (%u in a "
                         "row); the VMs keep their targets",
                         pe->command, (unsigned long long)pause, pe->failures);
        pe->failure_said = true;
        return -EAGAIN;
}

size_t policy_exec_line_cap(size_t n)
{
        return POLICY_EXEC_LINE_BASE + POLICY_EXEC_LINE_PER_VM * n;
}

/* Bytes as a JSON integer, saturated so that nothing turns negative. */
static json_t *json_bytes(uint64_t v)
{
        return json_integer(v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v);
}

static json_t *json_size_or_null(bool known, uint64_t v)
{
        return known ? json_bytes(v) : json_null();
}

/* NaN and infinities have no JSON form: such a share is unknown. */
static json_t *json_share_or_null(bool known, double v)
{
        return known && isfinite(v) ? json_real(v) : json_null();
}

char *policy_exec_request(const struct policy_host *host, const struct policy_vm *vms, size_t n,
                          uint64_t now_ms)
{
        json_t *list = json_array();

        for (size_t i = 0; i < n; i++) {
                const struct policy_vm *vm = &vms[i];
                if (vm->phase == POLICY_PHASE_OFF)
                        continue;
                json_t *o =
                    json_pack("{s:s, s:b, s:o, s:o, s:o, s:i, s:i, s:b, s:o, s:o, s:o}", "name",
                              vm->name, "running", vm->phase == POLICY_PHASE_RUNNING, "startup",
                              json_bytes(vm->settings.startup_bytes), "minimum",
                              json_bytes(vm->settings.minimum_bytes), "maximum",
                              json_bytes(vm->settings.maximum_bytes), "buffer",
                              (int)vm->settings.buffer_percent, "weight", (int)vm->settings.weight,
                              "lend", vm->settings.lend, "assigned", json_bytes(vm->assigned_bytes),
                              "demand", json_size_or_null(vm->demand_known, vm->demand_bytes),
                              "stall", json_share_or_null(vm->stall_known, vm->stall_fraction));
                json_array_append_new(list, o);
        }
        json_t *req = json_pack("{s:f, s:{s:I, s:I}, s:o}", "time", (double)now_ms / 1000.0, "host",
                                "memory", (json_int_t)host->memory_bytes, "reserve",
                                (json_int_t)host->reserve_bytes, "vms", list);
        char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        return text;
}

int policy_exec_parse_targets(const char *line, size_t len,
                              long (*find)(void *ctx, const char *name),
                              void (*set)(void *ctx, long slot, uint64_t bytes), void *ctx,
                              char *err, size_t errlen)
{
        json_error_t jerr;
        json_t *root = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr), *targets;
        const char *name;
        json_t *value;
        int r = -EINVAL;

        if (!root) {
                snprintf(err, errlen, "reply is not JSON: %s", jerr.text);
                return -EINVAL;
        }
        targets = json_object_get(root, "targets");
        if (!json_is_object(targets)) {
                snprintf(err, errlen, "reply has no \"targets\" object");
                goto out;
        }
        json_object_foreach(targets, name, value)
        {
                long slot = find(ctx, name);
                if (slot < 0) {
                        snprintf(err, errlen, "reply names an unknown VM \"%.64s\"", name);
                        goto out;
                }
                if (!json_is_integer(value) || json_integer_value(value) < 0) {
                        snprintf(err, errlen, "target for \"%.64s\" is not a byte count", name);
                        goto out;
                }
                /*
                 * 0 is a target like any other, below every minimum: the VM goes to
                 * its minimum. external_bytes 0 means "not named, keep", so it is
                 * stored as 1 byte, which rounds and clamps to the same.
                 */
                uint64_t bytes = (uint64_t)json_integer_value(value);
                set(ctx, slot, bytes ? bytes : 1);
        }
        r = 0;
out:
        json_decref(root);
        return r;
}

struct vms_ctx {
        struct policy_vm *vms;
        size_t n;
};

static long find_vm(void *ctx, const char *name)
{
        const struct vms_ctx *c = ctx;

        for (size_t i = 0; i < c->n; i++)
                if (strcmp(c->vms[i].name, name) == 0)
                        return c->vms[i].phase == POLICY_PHASE_OFF ? -1 : (long)i;
        return -1;
}

static void set_vm(void *ctx, long slot, uint64_t bytes)
{
        ((struct vms_ctx *)ctx)->vms[slot].external_bytes = bytes;
}

int policy_exec_parse_reply(const char *line, size_t len, struct policy_vm *vms, size_t n,
                            char *err, size_t errlen)
{
        struct vms_ctx c = {.vms = vms, .n = n};

        for (size_t i = 0; i < n; i++)
                vms[i].external_bytes = 0;
        int r = policy_exec_parse_targets(line, len, find_vm, set_vm, &c, err, errlen);
        if (r < 0)
                for (size_t i = 0; i < n; i++)
                        vms[i].external_bytes = 0;
        return r;
}

/* ---- the waiting mode (dynmem-sim) ---- */

/*
 * Wait up to ms for fd (-1: none) to have events, relaying the program's
 * standard error meanwhile: a program that fills that pipe must not stop
 * before it answers. Returns poll()'s count for fd (0: none in time; -1:
 * an error other than EINTR).
 */
static int poll_relaying(struct policy_exec *pe, int fd, short events, int ms)
{
        uint64_t until = mono_ms() + (uint64_t)(ms > 0 ? ms : 0);

        for (;;) {
                struct pollfd p[2] = {{.fd = fd, .events = events},
                                      {.fd = pe->err.fd, .events = POLLIN}};
                uint64_t now = mono_ms();
                int r = poll(p, 2, now >= until ? 0 : (int)(until - now));
                if (r < 0 && errno != EINTR)
                        return -1;
                if (r > 0 && p[1].revents && policy_exec_stderr_read(pe) == 1)
                        policy_exec_stderr_close(pe);
                if (r > 0 && p[0].revents)
                        return 1;
                if (mono_ms() >= until)
                        return 0;
        }
}

/* Read one line within the deadline. Returns its length, or a negative errno. */
static ssize_t read_line(struct policy_exec *pe, char *buf, size_t cap, uint64_t deadline)
{
        size_t used = 0;

        for (;;) {
                uint64_t now = mono_ms();
                if (now >= deadline)
                        return -ETIMEDOUT;
                int r = poll_relaying(pe, pe->from_child, POLLIN, (int)(deadline - now));
                if (r == 0)
                        return -ETIMEDOUT;
                ssize_t got = read(pe->from_child, buf + used, cap - used);
                if (got < 0 && (errno == EAGAIN || errno == EINTR))
                        continue;
                if (got <= 0)
                        return -EPIPE;
                char *nl = memchr(buf + used, '\n', (size_t)got);
                used += (size_t)got;
                if (nl)
                        return nl - buf;
                if (used == cap)
                        return -EMSGSIZE;
        }
}

static int fail(struct policy_exec *pe, uint64_t now_ms, int r)
{
        stop_child_waiting(pe);
        policy_exec_note_failure(pe, now_ms);
        return r;
}

/*
 * Write to the process's input (non-blocking) as it reads, until the
 * deadline: a request larger than a pipe holds must not wait for ever on a
 * process that does not read. 0, -ETIMEDOUT or the write's error.
 */
static int write_all(struct policy_exec *pe, const char *buf, size_t len, uint64_t deadline)
{
        int fd = pe->to_child;

        while (len > 0) {
                ssize_t w = write(fd, buf, len);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0 && errno == EAGAIN) {
                        uint64_t now = mono_ms();
                        if (now >= deadline)
                                return -ETIMEDOUT;
                        poll_relaying(pe, fd, POLLOUT, (int)(deadline - now));
                        continue;
                }
                if (w < 0)
                        return -errno;
                buf += w, len -= (size_t)w;
        }
        return 0;
}

/* How the child ended once its output closed: it is usually exiting, give it 100 ms. */
static void child_status(struct policy_exec *pe, char *how, size_t len)
{
        poll_relaying(pe, pe->pidfd, POLLIN, 100);
        if (!policy_exec_reap(pe, how, len))
                snprintf(how, len, "closed its output");
}

/* Send the request line by the deadline; 0, or the failure (reported in err). */
static int send_waiting(struct policy_exec *pe, const struct policy_host *host,
                        const struct policy_vm *vms, size_t n, uint64_t now_ms, int timeout,
                        uint64_t deadline, char *err, size_t errlen)
{
        char how[64];
        char *req = policy_exec_request(host, vms, n, now_ms);
        int r;

        if (!req) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        /*
         * Drop anything stale the process wrote since the last decision, up to
         * what it could have written meanwhile: one that writes without end
         * does not hold the decision here (its lines are then read as the reply).
         */
        char drain[4096];
        for (int i = 0; i < 256 && read(pe->from_child, drain, sizeof(drain)) > 0; i++)
                ;
        r = write_all(pe, req, strlen(req), deadline);
        if (r == 0)
                r = write_all(pe, "\n", 1, deadline);
        free(req);
        if (r == -ETIMEDOUT) {
                snprintf(err, errlen, "policy \"%s\" did not read its request within %d ms; killed",
                         pe->command, timeout);
                return fail(pe, now_ms, r);
        }
        if (r < 0) {
                child_status(pe, how, sizeof(how));
                snprintf(err, errlen, "policy \"%s\" %s", pe->command, how);
                return fail(pe, now_ms, -EPIPE);
        }
        return 0;
}

static int decide_waiting(struct policy_exec *pe, const struct policy_host *host,
                          struct policy_vm *vms, size_t n, uint64_t now_ms, char *err,
                          size_t errlen)
{
        char how[64];
        int r;

        child_strays_reap(&pe->strays, 0); /* the killed children that have gone since */
        if ((r = policy_exec_restart_wait(pe, now_ms, err, errlen)) < 0)
                return r;
        bool fresh = pe->pid < 0;
        if (fresh && (r = policy_exec_start_child(pe, err, errlen)) < 0)
                return fail(pe, now_ms, r);
        pe->failed = false;
        if (fresh)
                fcntl(pe->to_child, F_SETFL, O_NONBLOCK);
        /* A process just started may first need to load its interpreter. */
        int timeout = fresh ? POLICY_EXEC_START_TIMEOUT_MS : POLICY_EXEC_TIMEOUT_MS;
        uint64_t deadline = mono_ms() + (uint64_t)timeout;
        if ((r = send_waiting(pe, host, vms, n, now_ms, timeout, deadline, err, errlen)) < 0)
                return r;
        size_t cap = policy_exec_line_cap(n);
        char *buf = malloc(cap);
        if (!buf) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        ssize_t len = read_line(pe, buf, cap, deadline);
        if (len == -ETIMEDOUT) {
                snprintf(err, errlen, "policy \"%s\" did not answer within %d ms; killed",
                         pe->command, timeout);
        } else if (len == -EMSGSIZE) {
                snprintf(err, errlen, "policy \"%s\" answered more than %zu bytes; killed",
                         pe->command, cap);
        } else if (len < 0) {
                child_status(pe, how, sizeof(how));
                snprintf(err, errlen, "policy \"%s\" %s", pe->command, how);
        } else {
                char why[200] = "";
                r = policy_exec_parse_reply(buf, (size_t)len, vms, n, why, sizeof(why));
                free(buf);
                if (r < 0) {
                        snprintf(err, errlen, "policy \"%s\": %s; killed", pe->command, why);
                        return fail(pe, now_ms, r);
                }
                pe->failures = 0;
                pe->tally.answers++;
                return 0;
        }
        free(buf);
        return fail(pe, now_ms, (int)len);
}

struct policy_exec_tally policy_exec_tally(const struct policy_exec *pe)
{
        return pe->tally;
}

int policy_exec_decide(struct policy_exec *pe, const struct policy_host *host,
                       struct policy_vm *vms, size_t n, uint64_t now_ms, char *err, size_t errlen)
{
        if (errlen)
                err[0] = '\0';
        for (size_t i = 0; i < n; i++)
                vms[i].external_bytes = 0; /* nothing proposed unless a reply says so */
        /* What it wrote since the last decision counts against the limit then. */
        if (policy_exec_stderr_read(pe) == 1 && !pe->loop)
                policy_exec_stderr_close(pe);
        pe->err.now_ms = now_ms;
        if (pe->loop)
                return policy_exec_loop_decide(pe, host, vms, n, now_ms, err, errlen);
        return decide_waiting(pe, host, vms, n, now_ms, err, errlen);
}
