/*
 * Tests for the QEMU backend's guest agent connection (backend/qemu_agent.c)
 * without QEMU: a 10 MB flood of lines (and one without newlines) through a
 * socketpair is parsed at most at the rate limit while a 100 ms timer of
 * the same loop still fires; connecting to a socket that appears later,
 * reconnecting after either side closes; an agent freed from its own hook;
 * a refused agent and malformed lines give no reports; handshakes whose result
 * changes at every hello are logged at the log's rate; a socket this user may
 * not reach is said once, with the group its folder belongs to.
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "qemu_int.h"
#include "qtest.h"
#include "units.h"

#define FLOOD_BYTES (10u * 1000 * 1000)
#define WAIT_MS     60000

struct fixture {
        struct event_base *base;
        struct qemu_agent *qa;
        char *dir;
        char path[256];
        unsigned reports, urgent; /* hook calls, and those that brought a new urgent report */
        uint64_t urgent_reports;  /* the latest estimate's count of urgent reports */
        bool free_in_hook;
        bool fired;
        uint64_t armed_ms, fired_ms, read_at_fire;
};

/* As the backend does: a grown urgent_reports means a stall began (counted in f->urgent). */
static void on_report(void *userdata, const struct agent_estimate *e)
{
        struct fixture *f = userdata;

        assert_true(e->fresh);
        assert_true(e->urgent_reports >= f->urgent_reports);
        f->reports++;
        if (e->urgent_reports == f->urgent_reports)
                return;
        f->urgent_reports = e->urgent_reports;
        f->urgent++;
        if (f->free_in_hook) {
                qemu_agent_free(f->qa);
                f->qa = NULL;
        }
}

static const struct qemu_agent_hooks hooks = {.report = on_report};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        f->base = event_base_new();
        f->dir = qt_tempdir();
        snprintf(f->path, sizeof(f->path), "%s/t.agent", f->dir);
        assert_int_equal(qemu_agent_new(f->base, "t", f->path, 1 * GIB, &hooks, f, &f->qa), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        qemu_agent_free(f->qa);
        event_base_free(f->base);
        qt_rmtree(f->dir);
        free(f);
        return 0;
}

static struct qemu_agent_stats stats(const struct fixture *f)
{
        struct qemu_agent_stats st;

        qemu_agent_stats(f->qa, &st);
        return st;
}

/* ---- floods ---- */

static const char hello[] = "DMG1 hello min=1 max=1 version=1 interval_ms=1000\n";

/* Write all of buf to fd (blocking); false when the reader went away. */
static bool write_all(int fd, const char *buf, size_t n)
{
        while (n > 0) {
                ssize_t w = write(fd, buf, n);
                if (w <= 0)
                        return false;
                buf += w;
                n -= (size_t)w;
        }
        return true;
}

/* The child's side: the agent's hello answer, then FLOOD_BYTES of lines (or of one line). */
static void flood_child(int fd, bool newlines)
{
        static char chunk[64 * 1024];
        size_t sent = 0, seq = 1, n;

        if (!write_all(fd, hello, sizeof(hello) - 1))
                _exit(1);
        while (sent < FLOOD_BYTES) {
                n = 0;
                while (newlines && n + 200 < sizeof(chunk)) {
                        n += (size_t)snprintf(chunk + n, sizeof(chunk) - n,
                                              "DMG1 report seq=%zu time_ms=%zu cause=%s "
                                              "mem_total_bytes=536870912 mem_free_bytes=268435456 "
                                              "mem_available_bytes=268435456\n",
                                              seq, seq * 100, seq % 2 ? "psi" : "tick");
                        seq++;
                }
                if (!newlines)
                        memset(chunk, 'a', n = sizeof(chunk));
                if (!write_all(fd, chunk, n))
                        _exit(1);
                sent += n;
        }
        _exit(0);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        struct fixture *f = arg;

        (void)fd, (void)what;
        f->fired = true;
        f->fired_ms = mono_ms();
        f->read_at_fire = stats(f).read;
}

static bool flood_over(void *arg)
{
        struct fixture *f = arg;

        return f->fired && stats(f).disconnects == 1;
}

/* Flood the agent through a socketpair; returns the ms the flood took to read. */
static uint64_t flood(struct fixture *f, bool newlines)
{
        struct timeval tv = {.tv_sec = 0, .tv_usec = 100 * 1000};
        struct event *timer = evtimer_new(f->base, on_timer, f);
        int sv[2], status = -1;
        pid_t pid;

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(qemu_agent_adopt(f->qa, sv[0]), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                close(sv[0]);
                flood_child(sv[1], newlines);
        }
        close(sv[1]);
        uint64_t t0 = mono_ms();
        f->armed_ms = t0;
        evtimer_add(timer, &tv);
        bool over = qt_loop_until(f->base, flood_over, f, WAIT_MS);
        uint64_t took = mono_ms() - t0;
        event_free(timer);
        waitpid(pid, &status, 0);
        assert_true(over);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        struct qemu_agent_stats st = stats(f);
        print_message(
            "# %u MB in %llu ms (%u read callbacks, largest %llu bytes); the 100 ms timer "
            "fired after %llu ms with %llu bytes read\n",
            FLOOD_BYTES / 1000000, (unsigned long long)took, (unsigned)st.read_calls,
            (unsigned long long)st.largest_read, (unsigned long long)(f->fired_ms - f->armed_ms),
            (unsigned long long)f->read_at_fire);
        assert_true(f->fired_ms - f->armed_ms < 2000); /* generous: 100 ms asked */
        assert_true(st.read >= FLOOD_BYTES);
        assert_true(st.largest_read <= QEMU_AGENT_READ_MAX);
        assert_false(st.connected);
        assert_int_equal(agent_state(qemu_agent_parser(f->qa)), AGENT_DISCONNECTED);
        return took;
}

/* At most the token bucket's burst plus its rate over the time the flood took. */
static uint64_t rate_bound(uint64_t took_ms)
{
        return AGENT_BURST_DEFAULT + (took_ms + 999) / 1000 * AGENT_RATE_DEFAULT + 1;
}

static void a_flood_of_lines_is_parsed_at_most_at_the_rate(void **state)
{
        struct fixture *f = *state;
        uint64_t took = flood(f, true);
        const struct agent_counters *c = agent_counters(qemu_agent_parser(f->qa));

        print_message("# lines %llu, parsed %llu, rate-dropped %llu, reports %llu, urgent %u\n",
                      (unsigned long long)c->lines, (unsigned long long)c->parsed,
                      (unsigned long long)c->rate_dropped, (unsigned long long)c->reports,
                      f->urgent);
        assert_true(c->lines > FLOOD_BYTES / 200);
        assert_true(c->parsed <= rate_bound(took));
        assert_int_equal(c->rate_dropped, c->lines - c->parsed);
        assert_int_equal(c->handshakes, 1);
        assert_true(c->reports > 0 && c->reports < c->parsed);
        assert_true(f->reports <= c->reports);
        assert_true(f->urgent > 0 && f->urgent <= c->urgent);
}

static void a_flood_without_newlines_is_discarded(void **state)
{
        struct fixture *f = *state;

        flood(f, false);
        const struct agent_counters *c = agent_counters(qemu_agent_parser(f->qa));
        assert_int_equal(c->lines, 1); /* the hello; the rest is one endless line */
        assert_int_equal(c->too_long, 1);
        assert_int_equal(c->reports, 0);
        assert_int_equal(f->urgent, 0);
}

/* ---- connecting ---- */

struct server {
        struct fixture *f;
        int listener, conn;
        char got[256];
        size_t n;
};

static bool accepted(void *arg)
{
        struct server *s = arg;

        s->conn = accept4(s->listener, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        return s->conn >= 0;
}

static bool got_line(void *arg)
{
        struct server *s = arg;
        ssize_t r = read(s->conn, s->got + s->n, sizeof(s->got) - 1 - s->n);

        if (r > 0)
                s->n += (size_t)r;
        s->got[s->n] = '\0';
        return strchr(s->got, '\n') != NULL;
}

static bool disconnected(void *arg)
{
        return !stats(arg).connected;
}

/* Wait for the backend to connect and write its hello; closes the connection after. */
static void expect_hello(struct server *s)
{
        s->n = 0;
        assert_true(qt_loop_until(s->f->base, accepted, s, 5000));
        assert_true(qt_loop_until(s->f->base, got_line, s, 5000));
        assert_string_equal(s->got, "DMG1 hello min=1 max=1 interval_ms=1000\n");
}

static void connects_when_the_socket_appears_and_reconnects(void **state)
{
        struct fixture *f = *state;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct server s = {.f = f, .conn = -1};

        qemu_agent_connect_now(f->qa);
        assert_int_equal(stats(f).connect_failures, 1);
        assert_false(stats(f).connected);
        qt_loop_for(f->base, 1200); /* a second attempt, still no socket */
        assert_true(stats(f).connect_failures >= 2);

        memcpy(sa.sun_path, f->path, strlen(f->path) + 1);
        s.listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(s.listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(s.listener, 4), 0);
        expect_hello(&s);
        assert_int_equal(stats(f).connects, 1);

        /* QEMU's side closes: the backend notices and connects again within a second or so. */
        close(s.conn);
        assert_true(qt_loop_until(f->base, disconnected, f, 5000));
        expect_hello(&s);
        assert_int_equal(stats(f).connects, 2);
        assert_int_equal(stats(f).disconnects, 1);

        /* The backend's side closes (what qemu_backend_agent_drop() does). */
        qemu_agent_drop(f->qa);
        assert_false(stats(f).connected);
        close(s.conn);
        expect_hello(&s);
        assert_int_equal(stats(f).connects, 3);
        assert_int_equal(stats(f).disconnects, 2);
        close(s.conn);
        close(s.listener);
}

static bool urgent_seen(void *arg)
{
        return ((struct fixture *)arg)->urgent > 0;
}

static void an_agent_freed_from_its_hook_goes_quietly(void **state)
{
        struct fixture *f = *state;
        static const char lines[] =
            "DMG1 hello min=1 max=1 version=1\n"
            "DMG1 report seq=1 time_ms=100 cause=psi mem_total_bytes=536870912 "
            "mem_free_bytes=268435456 mem_available_bytes=268435456\n"
            "DMG1 report seq=2 time_ms=200 cause=psi mem_total_bytes=536870912 "
            "mem_free_bytes=268435456 mem_available_bytes=268435456\n";
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(qemu_agent_adopt(f->qa, sv[0]), 0);
        f->free_in_hook = true;
        assert_true(write_all(sv[1], lines, sizeof(lines) - 1));
        assert_true(qt_loop_until(f->base, urgent_seen, f, 5000));
        assert_null(f->qa);
        assert_int_equal(f->reports, 1);
        assert_int_equal(f->urgent, 1);         /* one callback for both reports, then gone */
        assert_int_equal(f->urgent_reports, 2); /* ... and it counted both */
        qt_loop_for(f->base, 1200);             /* its timer must not fire any more */
        close(sv[1]);
}

static bool parsed_all(void *arg)
{
        struct fixture *f = arg;

        return agent_counters(qemu_agent_parser(f->qa))->lines >= 4;
}

static void a_refused_agent_and_malformed_lines_give_no_reports(void **state)
{
        struct fixture *f = *state;
        static const char lines[] =
            "DMG1 hello min=5 max=6 version=5\n"
            "DMG1 report seq=1 time_ms=100 cause=psi mem_total_bytes=536870912 "
            "mem_free_bytes=268435456 mem_available_bytes=268435456\n"
            "DMG1 hello min=1 max=1 version=1 BAD\n"
            "\x01\x02 garbage\n";
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(qemu_agent_adopt(f->qa, sv[0]), 0);
        assert_true(write_all(sv[1], lines, sizeof(lines) - 1));
        assert_true(qt_loop_until(f->base, parsed_all, f, 5000));
        const struct agent *a = qemu_agent_parser(f->qa);
        assert_int_equal(agent_state(a), AGENT_REFUSED);
        assert_non_null(strstr(agent_refusal(a), "5-6"));
        assert_int_equal(agent_counters(a)->reports, 0);
        assert_int_equal(f->reports, 0);
        assert_int_equal(f->urgent, 0);
        close(sv[1]);
}

struct hellos {
        struct fixture *f;
        uint64_t want; /* handshakes */
};

static bool handshakes_parsed(void *arg)
{
        struct hellos *h = arg;

        return agent_counters(qemu_agent_parser(h->f->qa))->handshakes >= h->want;
}

/*
 * A guest whose every hello, each in a read of its own, names another agent
 * version: each handshake has a new result, and yet the log takes them at its
 * rate (5 at once, 6 a minute).
 */
static void handshakes_changing_at_every_hello_are_logged_at_the_rate(void **state)
{
        struct fixture *f = *state;
        struct hellos h = {.f = f};
        char line[64], log_path[300], text[16384];
        int sv[2], saved, fd;
        bool parsed = true;

        snprintf(log_path, sizeof(log_path), "%s/log", f->dir);
        fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        assert_true(fd >= 0);
        saved = dup(STDERR_FILENO);
        assert_true(saved >= 0);
        dup2(fd, STDERR_FILENO);
        close(fd);

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(qemu_agent_adopt(f->qa, sv[0]), 0);
        uint64_t t0 = mono_ms();
        for (unsigned i = 0; i < 30 && parsed; i++) {
                int n =
                    snprintf(line, sizeof(line), "DMG1 hello min=1 max=1 version=1 agent=v%u\n", i);
                parsed = write_all(sv[1], line, (size_t)n);
                h.want = i + 1;
                parsed = parsed && qt_loop_until(f->base, handshakes_parsed, &h, 5000);
        }
        uint64_t took = mono_ms() - t0;
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(sv[1]);
        assert_true(parsed);

        fd = open(log_path, O_RDONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        ssize_t got = read(fd, text, sizeof(text) - 1);
        close(fd);
        assert_true(got > 0);
        text[got] = '\0';
        unsigned logged = 0;
        for (const char *p = text; (p = strstr(p, " ready: protocol version")); p++)
                logged++;
        print_message("# 30 handshakes in %llu ms, %u logged\n", (unsigned long long)took, logged);
        assert_true(logged >= 1 && logged <= 5 + took / 10000); /* one more every 10 s */
}

/*
 * The agent's socket lies in a folder this user may not enter (a libvirt
 * domain's channel folder, libvirt-qemu's, to dynmemd's user dynmem): the
 * connection is refused at every attempt, and that is said once, naming the
 * folder's group. Run as root, the attempts are made as nobody, in no group.
 */
static void a_socket_this_user_may_not_reach_is_said_once_with_the_group(void **state)
{
        struct fixture *f = *state;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char dir[300], path[400], text[8192] = "", want[300];
        bool root = geteuid() == 0;
        int listener, out[2], status;
        size_t n = 0;
        ssize_t got;

        snprintf(dir, sizeof(dir), "%s/domain-1-t", f->dir);
        snprintf(path, sizeof(path), "%s/org.dynmem.agent.0", dir);
        assert_int_equal(mkdir(dir, 0750), 0);
        memcpy(sa.sun_path, path, strlen(path) + 1);
        listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        assert_int_equal(bind(listener, (struct sockaddr *)&sa, sizeof(sa)), 0);
        assert_int_equal(listen(listener, 4), 0);
        struct group *g = getgrgid(root ? 0 : getegid());
        assert_non_null(g);
        snprintf(want, sizeof(want),
                 "(its folder belongs to group %s: give the user dynmemd runs "
                 "as that group too; backend libvirt: docs/libvirt.md, Install)",
                 g->gr_name);
        if (root) { /* nobody may enter the test's folder, not the socket's */
                assert_int_equal(chmod(f->dir, 0711), 0);
                assert_int_equal(chown(dir, 0, 0), 0);
        } else {
                assert_int_equal(chmod(dir, 0), 0);
        }
        assert_int_equal(pipe(out), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                struct event_base *base = event_base_new();
                struct qemu_agent *qa = NULL;
                struct qemu_agent_stats st;

                dup2(out[1], STDERR_FILENO);
                if (root && (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                             setresuid(65534, 65534, 65534) < 0))
                        _exit(3);
                if (!base || qemu_agent_new(base, "t", path, 1 * GIB, &hooks, NULL, &qa) < 0)
                        _exit(4);
                qemu_agent_connect_now(qa);
                qt_loop_for(base, 2200); /* two more attempts */
                qemu_agent_stats(qa, &st);
                _exit(!st.connected && st.connect_failures >= 3 ? 0 : 5);
        }
        close(out[1]);
        while ((got = read(out[0], text + n, sizeof(text) - 1 - n)) > 0)
                n += (size_t)got;
        text[n] = '\0';
        close(out[0]);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        chmod(dir, 0700);
        close(listener);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                fail_msg("the attempts as another user failed (%d): %s", status, text);
        unsigned said = 0;
        for (const char *p = text; (p = strstr(p, ": Permission denied for user ")); p++)
                said++;
        if (said != 1 || !strstr(text, want) || !strstr(text, path) ||
            !strstr(text, "demand comes from the balloon statistics until it may connect"))
                fail_msg("said %u times; expected once, with \"%s\": %s", said, want, text);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(a_flood_of_lines_is_parsed_at_most_at_the_rate, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(a_flood_without_newlines_is_discarded, setup, teardown),
            cmocka_unit_test_setup_teardown(connects_when_the_socket_appears_and_reconnects, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(an_agent_freed_from_its_hook_goes_quietly, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(
                a_socket_this_user_may_not_reach_is_said_once_with_the_group, setup, teardown),
            cmocka_unit_test_setup_teardown(a_refused_agent_and_malformed_lines_give_no_reports,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                handshakes_changing_at_every_hello_are_logged_at_the_rate, setup, teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
