/*
 * Tests for policy_exec driven by an event loop (dynmemd's mode), with real
 * child processes: a decision never waits for the process; a reply is
 * applied by the first decision after it arrived; a slow reply is reported
 * once and applied when it comes; garbage, exits and hangs are reported,
 * the process is killed, reaped and restarted with a growing pause; a reply
 * naming a VM that went away meanwhile is not an error; the program's
 * standard error reaches the log, so many lines a minute.
 */
#include <errno.h>
#include <event2/event.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "mono.h"
#include "policy_exec.h"
#include "testutil.h"

#define N_VMS   3
#define WAIT_MS 30000 /* generous: a busy machine with sanitizers */

struct fx {
        char *dir;
        struct event_base *base;
        struct event *tick;
        struct policy_exec *pe;
        struct policy_host host;
        struct policy_vm vms[N_VMS];
        int replies;
        char err[512];
};

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what, (void)arg;
}

static void on_reply(void *userdata)
{
        ((struct fx *)userdata)->replies++;
}

static struct vm_settings settings(void)
{
        return (struct vm_settings){.dynamic = true,
                                    .startup_bytes = GIB,
                                    .minimum_bytes = 512 * MIB,
                                    .maximum_bytes = 8 * GIB,
                                    .buffer_percent = 25,
                                    .weight = 5000,
                                    .block_bytes = 2 * MIB};
}

static int fx_setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));
        static const char *const names[N_VMS] = {"web", "db", "new"};

        f->dir = tu_tempdir();
        f->base = event_base_new();
        /* the loop wakes every 10 ms, so run_until() looks at its condition often */
        f->tick = event_new(f->base, -1, EV_PERSIST, on_tick, NULL);
        event_add(f->tick, &(struct timeval){.tv_usec = 10000});
        f->host = (struct policy_host){.memory_bytes = 16 * GIB, .reserve_bytes = GIB};
        for (size_t i = 0; i < N_VMS; i++)
                f->vms[i] = (struct policy_vm){.name = names[i],
                                               .settings = settings(),
                                               .phase = POLICY_PHASE_RUNNING,
                                               .assigned_bytes = GIB};
        *state = f;
        return 0;
}

static int fx_teardown(void **state)
{
        struct fx *f = *state;

        policy_exec_free(f->pe);
        event_free(f->tick);
        event_base_free(f->base);
        tu_rmtree(f->dir);
        free(f);
        return 0;
}

static void start(struct fx *f, const char *name, const char *script)
{
        char *path = tu_write(f->dir, name, script, true), *command = NULL;

        assert_true(asprintf(&command, "exec /bin/sh %s %s", path, f->dir) > 0);
        policy_exec_free(f->pe);
        assert_int_equal(policy_exec_new(command, &f->pe, f->err, sizeof(f->err)), 0);
        assert_int_equal(policy_exec_attach(f->pe, f->base, on_reply, f), 0);
        free(command);
        free(path);
}

/*
 * One decision. That it never waits shows in what it returns, not in how long
 * it took: -EINPROGRESS while the process has not answered (a decision that
 * waited would return the reply, or the process's failure).
 */
static int decide(struct fx *f, uint64_t now_ms)
{
        f->err[0] = '\0';
        for (size_t i = 0; i < N_VMS; i++)
                f->vms[i].external_bytes = 77; /* must be overwritten */
        int r = policy_exec_decide(f->pe, &f->host, f->vms, N_VMS, now_ms, f->err, sizeof(f->err));
        if (r != 0)
                for (size_t i = 0; i < N_VMS; i++)
                        assert_int_equal(f->vms[i].external_bytes,
                                         0); /* every VM keeps its target */
        return r;
}

/* Run the loop until cond holds. */
static void run_until(struct fx *f, bool (*cond)(struct fx *), const char *what)
{
        uint64_t deadline = mono_ms() + WAIT_MS;

        while (!cond(f)) {
                if (mono_ms() > deadline)
                        fail_msg("timed out waiting for %s", what);
                event_base_loop(f->base, EVLOOP_ONCE);
        }
}

static void run_for(struct fx *f, uint64_t ms)
{
        uint64_t until = mono_ms() + ms;

        while (mono_ms() < until)
                event_base_loop(f->base, EVLOOP_ONCE);
}

static int want_replies;
static bool got_replies(struct fx *f)
{
        return f->replies >= want_replies;
}

/* Decide (running the loop between decisions) until something else than "in flight" comes. */
static int decide_settled(struct fx *f, uint64_t now_ms)
{
        uint64_t deadline = mono_ms() + WAIT_MS;
        int r;

        while ((r = decide(f, now_ms)) == -EINPROGRESS || (r == -EAGAIN && !f->err[0])) {
                if (mono_ms() > deadline)
                        fail_msg("no outcome after %d ms", WAIT_MS);
                event_base_loop(f->base, EVLOOP_ONCE);
        }
        return r;
}

/* Decide once the killed process has been reaped (until then a decision says nothing). */
static int decide_reaped(struct fx *f, uint64_t now_ms)
{
        uint64_t deadline = mono_ms() + WAIT_MS;
        int r;

        while ((r = decide(f, now_ms)) == -EAGAIN && !f->err[0]) {
                if (mono_ms() > deadline)
                        fail_msg("not reaped after %d ms", WAIT_MS);
                event_base_loop(f->base, EVLOOP_ONCE);
        }
        return r;
}

static const char good_sh[] = "n=0\n"
                              "while read -r line; do\n"
                              "    n=$((n + 1))\n"
                              "    t=$((1073741824 + n * 2097152))\n"
                              "    echo \"{\\\"targets\\\": {\\\"web\\\": $t, \\\"db\\\": $t}}\"\n"
                              "done\n";

static void reply_applied_by_the_next_decision(void **state)
{
        struct fx *f = *state;

        start(f, "good.sh", good_sh);
        assert_int_equal(decide(f, 1000), -EINPROGRESS); /* sent; nothing to apply yet */
        assert_string_equal(f->err, "");
        want_replies = 1;
        run_until(f, got_replies, "the first reply");
        assert_int_equal(decide(f, 1100), 0);
        assert_int_equal(f->vms[0].external_bytes, GIB + 2 * MIB);
        assert_int_equal(f->vms[1].external_bytes, GIB + 2 * MIB);
        assert_int_equal(f->vms[2].external_bytes, 0); /* not named: keeps its target */
        /* Applied once: the next decision asks again. */
        assert_int_equal(decide(f, 2000), -EINPROGRESS);
        want_replies = 2;
        run_until(f, got_replies, "the second reply");
        assert_int_equal(decide(f, 2100), 0);
        assert_int_equal(f->vms[0].external_bytes, GIB + 4 * MIB);
        assert_int_equal(policy_exec_tally(f->pe).answers, 2);
        assert_int_equal(policy_exec_tally(f->pe).failures, 0);
}

static void slow_reply_is_late_once_and_applied(void **state)
{
        struct fx *f = *state;
        static const char script[] = "while read -r line; do\n"
                                     "    sleep 1.5\n"
                                     "    echo '{\"targets\": {\"db\": 2147483648}}'\n"
                                     "done\n";

        start(f, "slow.sh", script);
        assert_int_equal(decide(f, 0), -EINPROGRESS);
        want_replies = 1;
        run_until(f, got_replies, "the first reply"); /* within the 5 s a new process has */
        assert_int_equal(decide(f, 1000), 0);
        assert_int_equal(f->vms[1].external_bytes, 2 * GIB);
        assert_int_equal(decide(f, 2000), -EINPROGRESS);
        run_for(f, POLICY_EXEC_TIMEOUT_MS + 50);
        /* Late: said once, every VM keeps its target, nothing counted as a failure. */
        assert_int_equal(decide(f, 3000), -EINPROGRESS);
        assert_non_null(strstr(f->err, "has not answered for"));
        assert_non_null(strstr(f->err, "keep their targets"));
        assert_int_equal(decide(f, 3100), -EINPROGRESS);
        assert_string_equal(f->err, "");
        want_replies = 2;
        run_until(f, got_replies, "the late reply");
        assert_int_equal(decide(f, 4000), 0);
        assert_int_equal(f->vms[1].external_bytes, 2 * GIB);
}

static void garbage_is_killed_and_restarted(void **state)
{
        struct fx *f = *state;

        start(f, "garbage.sh", "while read line; do echo 'hello there'; done\n");
        assert_int_equal(decide(f, 0), -EINPROGRESS);
        assert_int_equal(decide_settled(f, 10), -EINVAL);
        assert_non_null(strstr(f->err, "reply is not JSON"));
        assert_non_null(strstr(f->err, "killed"));
        /* The pause: said once, then quiet. */
        assert_int_equal(decide_settled(f, 11), -EAGAIN);
        assert_non_null(strstr(f->err, "will be restarted"));
        assert_int_equal(decide(f, 10 + POLICY_EXEC_RESTART_MS - 1), -EAGAIN);
        assert_string_equal(f->err, "");
        /* Started again after it (and it fails again; the next pause is twice as long). */
        assert_int_equal(decide(f, 10 + POLICY_EXEC_RESTART_MS), -EINPROGRESS);
        uint64_t again = 20 + POLICY_EXEC_RESTART_MS;
        assert_int_equal(decide_settled(f, again), -EINVAL);
        assert_int_equal(decide_settled(f, again + 2 * POLICY_EXEC_RESTART_MS - 1), -EAGAIN);
        assert_int_equal(decide(f, again + 2 * POLICY_EXEC_RESTART_MS), -EINPROGRESS);
        /* Two failures (the pauses are none), and no answer. */
        assert_int_equal(policy_exec_tally(f->pe).failures, 2);
        assert_int_equal(policy_exec_tally(f->pe).answers, 0);
}

static void exits_are_reported_with_their_status(void **state)
{
        struct fx *f = *state;

        start(f, "exit.sh", "read line\nexit 3\n");
        assert_int_equal(decide(f, 0), -EINPROGRESS);
        assert_int_equal(decide_settled(f, 0), -EPIPE);
        assert_non_null(strstr(f->err, "exited with status 3"));

        start(f, "killed.sh", "read line\nkill -9 $$\n");
        assert_int_equal(decide(f, 0), -EINPROGRESS);
        assert_int_equal(decide_settled(f, 0), -EPIPE);
        assert_non_null(strstr(f->err, "was killed by signal 9"));
}

/* The pid a script wrote to DIR/pid ("echo $$ > $1/pid"), once it is there. */
static pid_t pid_written(struct fx *f)
{
        char *pidfile = NULL, *text = NULL;
        uint64_t deadline = mono_ms() + WAIT_MS;

        assert_true(asprintf(&pidfile, "%s/pid", f->dir) > 0);
        while (!((text = tu_read(pidfile)) && strchr(text, '\n')) && mono_ms() < deadline) {
                free(text);
                text = NULL;
                usleep(10000);
        }
        assert_non_null(text);
        pid_t pid = (pid_t)atoi(text);
        assert_true(pid > 1);
        free(text);
        free(pidfile);
        return pid;
}

static void hang_is_killed_and_reaped(void **state)
{
        struct fx *f = *state;
        static const char script[] = "echo $$ > \"$1/pid\"\n"
                                     "read -r line\n"
                                     "echo '{\"targets\": {}}'\n"
                                     "read -r line\n"
                                     "exec sleep 60\n";

        start(f, "hang.sh", script);
        policy_exec_set_kill_ms(f->pe, 300);
        assert_int_equal(decide(f, 0), -EINPROGRESS);
        assert_int_equal(decide_settled(f, 0), 0);
        assert_int_equal(decide(f, 1), -EINPROGRESS);
        assert_int_equal(decide_settled(f, 2), -ETIMEDOUT);
        assert_non_null(strstr(f->err, "did not answer within 300 ms; killed"));
        pid_t pid = pid_written(f);
        /* The loop reaps it: the pid goes away. */
        uint64_t deadline = mono_ms() + WAIT_MS;
        while (kill(pid, 0) == 0 && mono_ms() < deadline)
                event_base_loop(f->base, EVLOOP_ONCE);
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
}

/*
 * A policy replaced (a reload) or freed is killed without waiting for it,
 * and reaped by the loop once it is gone: no zombie stays behind.
 */
static void a_policy_freed_is_reaped_by_the_loop(void **state)
{
        struct fx *f = *state;
        static const char script[] = "echo $$ > \"$1/pid\"\n"
                                     "exec sleep 60\n";

        start(f, "replaced.sh", script);
        assert_int_equal(decide(f, 0), -EINPROGRESS);
        pid_t pid = pid_written(f);
        policy_exec_free(f->pe);
        f->pe = NULL;
        uint64_t deadline = mono_ms() + 5000;
        while (kill(pid, 0) == 0 && mono_ms() < deadline)
                event_base_loop(f->base, EVLOOP_ONCE);
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
}

/*
 * A request larger than a pipe holds, to a process that never reads it: the
 * decision still comes back while the process lives (the loop writes as the
 * process reads; a blocking write would return only once it died), and the
 * process is killed when its reply is overdue.
 */
static void a_process_that_does_not_read_blocks_nothing(void **state)
{
        struct fx *f = *state;
        enum { MANY = 2000 };
        struct policy_vm *many = calloc(MANY, sizeof(*many));
        char(*names)[16] = calloc(MANY, sizeof(*names));

        for (size_t i = 0; i < MANY; i++) {
                snprintf(names[i], sizeof(names[i]), "vm%05zu", i);
                many[i] = (struct policy_vm){.name = names[i],
                                             .settings = settings(),
                                             .phase = POLICY_PHASE_RUNNING,
                                             .assigned_bytes = GIB};
        }
        char *line = policy_exec_request(&f->host, many, MANY, 0);
        assert_true(strlen(line) > 4 * 65536); /* more than a pipe holds */
        free(line);
        start(f, "deaf.sh", "echo $$ > \"$1/pid\"\nexec sleep 60\n");
        policy_exec_set_kill_ms(f->pe, 300);
        assert_int_equal(policy_exec_decide(f->pe, &f->host, many, MANY, 0, f->err, sizeof(f->err)),
                         -EINPROGRESS);
        /* Still alive: the kill is the loop's, and the loop has not run yet. */
        pid_t pid = pid_written(f);
        assert_int_equal(kill(pid, 0), 0);
        uint64_t deadline = mono_ms() + WAIT_MS;
        int r;
        while ((r = policy_exec_decide(f->pe, &f->host, many, MANY, 1, f->err, sizeof(f->err))) ==
                   -EINPROGRESS &&
               mono_ms() < deadline)
                event_base_loop(f->base, EVLOOP_ONCE);
        assert_int_equal(r, -ETIMEDOUT);
        assert_non_null(strstr(f->err, "did not answer within 300 ms; killed"));
        free(names);
        free(many);
}

static void vm_gone_before_the_reply(void **state)
{
        struct fx *f = *state;

        start(f, "db.sh", "while read line; do echo '{\"targets\": {\"db\": 3221225472}}'; done\n");
        assert_int_equal(decide(f, 0), -EINPROGRESS);
        want_replies = 1;
        run_until(f, got_replies, "the reply");
        f->vms[1].phase = POLICY_PHASE_OFF; /* db stopped while the policy thought */
        assert_int_equal(decide(f, 1), 0);
        for (size_t i = 0; i < N_VMS; i++)
                assert_int_equal(f->vms[i].external_bytes, 0);
        /* A VM the request did not describe is still an error. */
        start(f, "nosuch.sh", "while read line; do echo '{\"targets\": {\"nosuch\": 1}}'; done\n");
        assert_int_equal(decide(f, 0), -EINPROGRESS);
        assert_int_equal(decide_settled(f, 0), -EINVAL);
        assert_non_null(strstr(f->err, "unknown VM \"nosuch\""));
}

static void stale_lines_are_dropped(void **state)
{
        struct fx *f = *state;
        /* Two lines for every request: only the first answers it. */
        static const char script[] = "while read line; do\n"
                                     "    echo '{\"targets\": {\"web\": 1073741824}}'\n"
                                     "    echo '{\"targets\": {\"web\": 2147483648}}'\n"
                                     "done\n";

        start(f, "twice.sh", script);
        for (int i = 0; i < 3; i++) {
                assert_int_equal(decide(f, (uint64_t)i), -EINPROGRESS);
                assert_int_equal(decide_settled(f, (uint64_t)i), 0);
                assert_int_equal(f->vms[0].external_bytes, GIB);
                run_for(f, 50); /* let the second line come, and go */
        }
}

static void oversized_reply_is_refused(void **state)
{
        struct fx *f = *state;
        static const char script[] = "while read -r line; do\n"
                                     "    printf '{\"targets\": {}, \"pad\": \"'\n"
                                     "    head -c 100000 /dev/zero | tr '\\0' x\n"
                                     "    printf '\"}\\n'\n"
                                     "done\n";

        start(f, "big.sh", script);
        assert_int_equal(decide(f, 0), -EINPROGRESS);
        assert_int_equal(decide_settled(f, 0), -EMSGSIZE);
        assert_non_null(strstr(f->err, "answered more than"));
}

/* After a good reply the pause starts from 1 s again. */
/* 25 lines on its standard error for each request, then an answer. */
static const char chatty_sh[] = "n=0\n"
                                "while read -r line; do\n"
                                "    n=$((n + 1)); i=0\n"
                                "    while [ $i -lt 25 ]; do\n"
                                "        i=$((i + 1)); echo \"request $n line $i\" >&2\n"
                                "    done\n"
                                "    echo '{\"targets\": {}}'\n"
                                "done\n";

/*
 * dynmemd runs for months: a limit for the whole run would say nothing of a
 * policy failing now. 10 lines at once, then 10 a minute (by the decisions'
 * clock), the first line after some were held back saying how many, and
 * what is still held back said when the policy is freed (a reload, the end).
 */
static void stderr_relayed_so_many_a_minute(void **state)
{
        struct fx *f = *state;
        char *path = NULL;

        assert_true(asprintf(&path, "%s/log.txt", f->dir) > 0);
        start(f, "chatty.sh", chatty_sh);
        int saved = tu_stderr_capture(path);
        int r[4];
        r[0] = decide(f, 0);
        want_replies = 1;
        run_until(f, got_replies, "the first reply");
        r[1] = decide(f, 100); /* its lines were all written before it: relayed at 0 */
        r[2] = decide(f, 60000);
        want_replies = 2;
        run_until(f, got_replies, "the second reply");
        r[3] = decide(f, 60100);
        policy_exec_free(f->pe);
        f->pe = NULL;
        char *text = tu_stderr_release(saved, path);
        free(path);
        assert_non_null(text);
        assert_int_equal(r[0], -EINPROGRESS);
        assert_int_equal(r[1], 0);
        assert_int_equal(r[2], -EINPROGRESS);
        assert_int_equal(r[3], 0);
        assert_int_equal(tu_count(text, "\n"), 21);
        for (int i = 1; i <= 10; i++) {
                char line[80];
                snprintf(line, sizeof(line), "\": request 1 line %d\n", i);
                assert_non_null(strstr(text, line));
                snprintf(line, sizeof(line), "\": request 2 line %d%s\n", i,
                         i == 1 ? " (after 15 lines not shown)" : "");
                assert_non_null(strstr(text, line));
        }
        assert_null(strstr(text, "line 11"));
        assert_non_null(strstr(text, "\": 15 more lines of its standard error not shown\n"));
        free(text);
}

static void success_resets_the_pause(void **state)
{
        struct fx *f = *state;
        /* First start: garbage. Second: one good reply, then garbage. */
        static const char script[] =
            "if [ -e \"$1/ran\" ]; then\n"
            "    read -r line; echo '{\"targets\": {}}'\n"
            "    while read -r line; do echo nonsense; done\n"
            "else : > \"$1/ran\"; while read -r line; do echo nonsense; done; fi\n";
        uint64_t t = 0;

        start(f, "flaky.sh", script);
        assert_int_equal(decide(f, t), -EINPROGRESS);
        assert_int_equal(decide_settled(f, t), -EINVAL);
        t += POLICY_EXEC_RESTART_MS;
        assert_int_equal(decide_reaped(f, t), -EINPROGRESS);
        assert_int_equal(decide_settled(f, t), 0);
        assert_int_equal(decide(f, t), -EINPROGRESS);
        assert_int_equal(decide_settled(f, t), -EINVAL);
        assert_int_equal(decide_settled(f, t + POLICY_EXEC_RESTART_MS - 1), -EAGAIN);
        assert_int_equal(decide(f, t + POLICY_EXEC_RESTART_MS), -EINPROGRESS);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(reply_applied_by_the_next_decision),
            T(slow_reply_is_late_once_and_applied),
            T(garbage_is_killed_and_restarted),
            T(exits_are_reported_with_their_status),
            T(hang_is_killed_and_reaped),
            T(a_policy_freed_is_reaped_by_the_loop),
            T(a_process_that_does_not_read_blocks_nothing),
            T(vm_gone_before_the_reply),
            T(stale_lines_are_dropped),
            T(oversized_reply_is_refused),
            T(success_resets_the_pause),
            T(stderr_relayed_so_many_a_minute),
        };

        signal(SIGPIPE, SIG_IGN); /* as policy_exec.h asks of its callers */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
