/*
 * Tests for the QEMU backend's handling of QMP events (backend/qemu_monitor.c)
 * without QEMU: the test plays a QEMU that its guest has taken over, on the
 * VM's QMP socket. It greets, accepts qmp_capabilities, answers nothing else,
 * and sends events: the log takes a flood of SHUTDOWN and RESET events at its
 * rate, a reason that is not one of QEMU's words is not written to it, and a
 * flood of RESET events asks for extra cycles only within the VM's share.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <jansson.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "qemu_int.h"
#include "qmp.h"
#include "qtest.h"
#include "units.h"

#define WAIT_MS 5000

struct fixture {
        struct event_base *base;
        char *dir;
        struct qemu_backend qb;
        struct vm vm;
        struct qemu_vm qv;
        int listener, peer;
        char in[4096];
        size_t in_len;
        char log_path[300];
        int saved_stderr;
        unsigned wakeups; /* extra cycles the backend asked for */
};

static void on_wakeup(void *userdata)
{
        ((struct fixture *)userdata)->wakeups++;
}

static char *path_in(const char *dir, const char *name)
{
        char *p;

        assert_true(asprintf(&p, "%s/%s", dir, name) > 0);
        return p;
}

static bool accepted(void *arg)
{
        struct fixture *f = arg;

        f->peer = accept4(f->listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        return f->peer >= 0;
}

static void peer_write(struct fixture *f, const char *text)
{
        size_t n = strlen(text);

        while (n > 0) {
                ssize_t w = write(f->peer, text, n);
                if (w < 0 && errno == EAGAIN) {
                        event_base_loop(f->base, EVLOOP_NONBLOCK);
                        continue;
                }
                assert_true(w > 0);
                text += w;
                n -= (size_t)w;
        }
}

/* Answer qmp_capabilities when it has come; true once the client is ready. */
static bool negotiated(void *arg)
{
        struct fixture *f = arg;
        ssize_t r = read(f->peer, f->in + f->in_len, sizeof(f->in) - 1 - f->in_len);
        char *nl;

        if (r > 0)
                f->in_len += (size_t)r;
        f->in[f->in_len] = '\0';
        while ((nl = strchr(f->in, '\n'))) {
                json_t *cmd = json_loadb(f->in, (size_t)(nl - f->in), 0, NULL);
                const char *execute = json_string_value(json_object_get(cmd, "execute"));
                if (execute && strcmp(execute, "qmp_capabilities") == 0) {
                        char reply[64];
                        snprintf(reply, sizeof(reply), "{\"return\": {}, \"id\": %lld}\r\n",
                                 (long long)json_integer_value(json_object_get(cmd, "id")));
                        peer_write(f, reply);
                }
                json_decref(cmd);
                f->in_len -= (size_t)(nl + 1 - f->in);
                memmove(f->in, nl + 1, f->in_len + 1);
        }
        return qmp_is_ready(f->qv.qmp);
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        const struct qemu_layout l = {.startup = 512 * MIB, .block = 2 * MIB};

        f->base = event_base_new();
        f->dir = qt_tempdir();
        f->qb.env.base = f->base;
        f->qb.env.wakeup = on_wakeup;
        f->qb.env.wakeup_userdata = f;
        snprintf(f->vm.name, sizeof(f->vm.name), "t");
        f->vm.backend_data = &f->qv;
        f->qv.qb = &f->qb;
        f->qv.vm = &f->vm;
        f->qv.pidfd = -1;
        f->qv.rl = LOG_RATELIMIT(10, 6); /* as backend/qemu.c sets it */
        f->qv.wake = BUCKET(QEMU_WAKE_RATE, QEMU_WAKE_BURST);
        f->qv.paths.qmp = path_in(f->dir, "t.qmp");
        f->qv.paths.agent = path_in(f->dir, "t.agent");
        qemu_backend_instance_begins(&f->qv, &l, true);

        memcpy(sa.sun_path, f->qv.paths.qmp, strlen(f->qv.paths.qmp) + 1);
        f->listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(f->listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(f->listener, 1), 0);
        assert_int_equal(qemu_monitor_connect(&f->qv), 0);
        assert_true(qt_loop_until(f->base, accepted, f, WAIT_MS));
        peer_write(f, "{\"QMP\": {\"version\": {\"qemu\": {\"major\": 8, \"minor\": 0, \"micro\": "
                      "0}}, \"capabilities\": []}}\r\n");
        assert_true(qt_loop_until(f->base, negotiated, f, WAIT_MS));
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        qemu_backend_detach(&f->qv);
        close(f->peer);
        close(f->listener);
        free(f->qv.paths.qmp);
        free(f->qv.paths.agent);
        event_base_free(f->base);
        qt_rmtree(f->dir);
        free(f);
        return 0;
}

/* dynmemd's log (stderr) goes to a file from here ... */
static void log_capture(struct fixture *f)
{
        int fd;

        snprintf(f->log_path, sizeof(f->log_path), "%s/log", f->dir);
        fd = open(f->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        f->saved_stderr = dup(STDERR_FILENO);
        assert_true(f->saved_stderr >= 0);
        dup2(fd, STDERR_FILENO);
        close(fd);
}

/* ... to here. */
static void log_release(struct fixture *f)
{
        dup2(f->saved_stderr, STDERR_FILENO);
        close(f->saved_stderr);
}

struct resets {
        struct fixture *f;
        uint64_t want;
};

static bool resets_seen(void *arg)
{
        struct resets *r = arg;

        return r->f->qv.guest_resets >= r->want;
}

/*
 * Send n copies of each line, one after the other, and wait until the last
 * (a RESET) has been handled.
 */
static bool send_events(struct fixture *f, const char *const *lines, size_t n_lines, unsigned n)
{
        struct resets r = {.f = f, .want = f->qv.guest_resets};

        for (unsigned i = 0; i < n; i++) {
                for (size_t k = 0; k < n_lines; k++) {
                        peer_write(f, lines[k]);
                        r.want += strstr(lines[k], "\"RESET\"") != NULL;
                }
        }
        return qt_loop_until(f->base, resets_seen, &r, WAIT_MS);
}

static void a_flood_of_shutdown_and_reset_events_is_logged_at_the_rate(void **state)
{
        struct fixture *f = *state;
        static const char *const lines[] = {
            "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
            "\"guest-shutdown\"}}\r\n",
            "{\"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": \"guest-reset\"}}\r\n",
        };

        uint64_t t0 = mono_ms();
        log_capture(f);
        bool handled = send_events(f, lines, 2, 200);
        log_release(f);
        uint64_t took = mono_ms() - t0;
        assert_true(handled);
        assert_int_equal(f->qv.guest_resets, 200); /* every reset is handled ... */
        unsigned shutdowns = qt_file_count(f->log_path, "QEMU shuts down");
        unsigned resets = qt_file_count(f->log_path, "the machine was reset");
        print_message("# 200 SHUTDOWN and 200 RESET events: %u and %u lines logged\n", shutdowns,
                      resets);
        /* ... and the log takes them at the VM's rate: 10 at once, one more every 10 s. */
        assert_true(shutdowns >= 1 && resets >= 1);
        assert_true(shutdowns + resets <= 10 + took / 10000);
}

/*
 * QEMU's reasons are words of one enum ("guest-reset"); one with other
 * characters, a newline that would start a line of its own in the log, is
 * not written.
 */
static void a_reason_that_is_no_word_of_qemus_is_not_logged(void **state)
{
        struct fixture *f = *state;
        static const char *const lines[] = {
            "{\"event\": \"SHUTDOWN\", \"data\": {\"guest\": true, \"reason\": "
            "\"guest-shutdown\\nvm \\\"other\\\": forged\"}}\r\n",
            "{\"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": "
            "\"guest-reset\\u001b[2J\\nvm \\\"other\\\": forged\"}}\r\n",
            "{\"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": \"guest-reset\"}}\r\n",
        };

        log_capture(f);
        bool handled = send_events(f, lines, 3, 1);
        log_release(f);
        assert_true(handled);
        assert_int_equal(f->qv.guest_resets, 2);
        assert_int_equal(qt_file_count(f->log_path, "QEMU shuts down (no reason given)"), 1);
        assert_int_equal(qt_file_count(f->log_path, "the machine was reset (no reason given)"), 1);
        assert_int_equal(qt_file_count(f->log_path, "the machine was reset (guest-reset)"), 1);
        assert_int_equal(qt_file_count(f->log_path, "forged"), 0);
        assert_int_equal(qt_file_count(f->log_path, "\x1b"), 0);
}

/*
 * Each reset asks for a cycle, within the VM's share of them (QEMU_WAKE_RATE):
 * a flood of RESET events cannot take the host's whole budget of extra cycles.
 */
static void a_flood_of_reset_events_asks_for_cycles_within_the_vms_share(void **state)
{
        struct fixture *f = *state;
        static const char *const lines[] = {
            "{\"event\": \"RESET\", \"data\": {\"guest\": true, \"reason\": \"guest-reset\"}}\r\n",
        };
        uint64_t t0 = mono_ms();

        log_capture(f);
        bool handled = send_events(f, lines, 1, 200);
        log_release(f);
        assert_true(handled);
        uint64_t took = mono_ms() - t0;
        print_message("# 200 RESET events in %llu ms: %u cycles asked for\n",
                      (unsigned long long)took, f->wakeups);
        assert_int_equal(f->qv.guest_resets, 200);
        assert_true(f->wakeups >= 1);
        assert_true(f->wakeups <= QEMU_WAKE_BURST + (took / 1000 + 1) * QEMU_WAKE_RATE);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(
                a_flood_of_shutdown_and_reset_events_is_logged_at_the_rate, setup, teardown),
            cmocka_unit_test_setup_teardown(a_reason_that_is_no_word_of_qemus_is_not_logged, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                a_flood_of_reset_events_asks_for_cycles_within_the_vms_share, setup, teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
