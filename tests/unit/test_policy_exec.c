/*
 * Tests for policy_exec: the exec: external policy, with real child
 * processes (small sh scripts in a temporary directory): the
 * request line, good replies, garbage, unknown VMs, bad targets, processes
 * that exit, hang or talk too much, the restart pause, and the program's
 * standard error, relayed to the log with a limit.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
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

#define N_VMS 4

struct fx {
        char *dir;
        struct policy_exec *pe;
        struct policy_host host;
        struct policy_vm vms[N_VMS];
        char err[512];
};

static struct vm_settings settings(uint64_t startup)
{
        return (struct vm_settings){
            .dynamic = true,
            .startup_bytes = startup,
            .minimum_bytes = 512 * MIB,
            .maximum_bytes = 8 * GIB,
            .buffer_percent = 25,
            .weight = 7000,
            .block_bytes = 2 * MIB,
            .lend = true,
        };
}

static int fx_setup(void **state)
{
        struct fx *f = calloc(1, sizeof(*f));

        if (!f)
                return -1;
        f->dir = tu_tempdir();
        f->host = (struct policy_host){.memory_bytes = 16 * GIB, .reserve_bytes = GIB};
        f->vms[0] = (struct policy_vm){.name = "web",
                                       .settings = settings(GIB),
                                       .phase = POLICY_PHASE_RUNNING,
                                       .assigned_bytes = 1500 * MIB,
                                       .demand_known = true,
                                       .demand_bytes = 900 * MIB,
                                       .stall_known = true,
                                       .stall_fraction = 0.25};
        f->vms[1] = (struct policy_vm){.name = "db",
                                       .settings = settings(2 * GIB),
                                       .phase = POLICY_PHASE_RUNNING,
                                       .assigned_bytes = 2 * GIB};
        f->vms[2] = (struct policy_vm){
            .name = "new", .settings = settings(GIB), .phase = POLICY_PHASE_STARTING};
        f->vms[3] =
            (struct policy_vm){.name = "off", .settings = settings(GIB), .phase = POLICY_PHASE_OFF};
        f->vms[1].settings.lend = false; /* may not borrow: the request says so */
        *state = f;
        return 0;
}

static int fx_teardown(void **state)
{
        struct fx *f = *state;

        policy_exec_free(f->pe);
        tu_rmtree(f->dir);
        free(f);
        return 0;
}

static void start_command(struct fx *f, const char *command)
{
        policy_exec_free(f->pe);
        f->pe = NULL;
        assert_int_equal(policy_exec_new(command, &f->pe, f->err, sizeof(f->err)), 0);
}

/*
 * Write a script into the fixture's directory and prepare a policy_exec
 * running "RUNNER SCRIPT DIR".
 */
static void start(struct fx *f, const char *name, const char *script, const char *runner)
{
        char *path = tu_write(f->dir, name, script, true), *command = NULL;

        assert_true(asprintf(&command, "%s %s %s", runner, path, f->dir) > 0);
        start_command(f, command);
        free(command);
        free(path);
}

static int decide(struct fx *f, uint64_t now_ms)
{
        f->err[0] = '\0';
        for (size_t i = 0; i < N_VMS; i++)
                f->vms[i].external_bytes = 77; /* must be overwritten */
        return policy_exec_decide(f->pe, &f->host, f->vms, N_VMS, now_ms, f->err, sizeof(f->err));
}

static void expect_failure(struct fx *f, uint64_t now_ms, int expected, const char *needle)
{
        int r = decide(f, now_ms);

        if (r != expected || !strstr(f->err, needle))
                fail_msg("expected %d \"...%s...\", got %d \"%s\"", expected, needle, r, f->err);
        for (size_t i = 0; i < N_VMS; i++)
                assert_int_equal(f->vms[i].external_bytes, 0); /* nothing proposed */
}

/*
 * A policy that logs each request and answers 1 GiB + n x 2 MiB for the two
 * running VMs. (sh rather than python3: it starts at once even on a busy
 * machine, and the first answer is due within 1 s of the start.)
 */
static const char good_sh[] = "n=0\n"
                              "while read -r line; do\n"
                              "    n=$((n + 1))\n"
                              "    printf '%s\\n' \"$line\" >> \"$1/requests.log\"\n"
                              "    t=$((1073741824 + n * 2097152))\n"
                              "    echo \"{\\\"targets\\\": {\\\"web\\\": $t, \\\"db\\\": $t}}\"\n"
                              "done\n";

static void good_policy_targets_arrive(void **state)
{
        struct fx *f = *state;

        start(f, "good.sh", good_sh, "exec /bin/sh");
        assert_int_equal(decide(f, 12500), 0);
        assert_int_equal(f->vms[0].external_bytes, GIB + 2 * MIB);
        assert_int_equal(f->vms[1].external_bytes, GIB + 2 * MIB);
        assert_int_equal(f->vms[2].external_bytes, 0); /* not named: keeps its target */
        assert_int_equal(f->vms[3].external_bytes, 0);
        /* The same process answers the next decision. */
        assert_int_equal(decide(f, 13500), 0);
        assert_int_equal(f->vms[0].external_bytes, GIB + 4 * MIB);
        assert_int_equal(decide(f, 14500), 0);
        assert_int_equal(f->vms[1].external_bytes, GIB + 6 * MIB);
        assert_int_equal(policy_exec_tally(f->pe).answers, 3);
        assert_int_equal(policy_exec_tally(f->pe).failures, 0);
}

static void check_vm_object(json_t *o, const struct policy_vm *vm)
{
        static const char *const keys[] = {"name",     "running", "startup", "minimum",
                                           "maximum",  "buffer",  "weight",  "lend",
                                           "assigned", "demand",  "stall"};
        const size_t n = sizeof(keys) / sizeof(keys[0]);
        assert_true(json_is_object(o));
        assert_int_equal(json_object_size(o), n);
        for (size_t i = 0; i < n; i++)
                assert_non_null(json_object_get(o, keys[i]));
        assert_string_equal(json_string_value(json_object_get(o, "name")), vm->name);
        assert_true(json_is_boolean(json_object_get(o, "running")));
        assert_int_equal(json_is_true(json_object_get(o, "running")),
                         vm->phase == POLICY_PHASE_RUNNING);
        assert_int_equal(json_integer_value(json_object_get(o, "startup")),
                         vm->settings.startup_bytes);
        assert_int_equal(json_integer_value(json_object_get(o, "minimum")),
                         vm->settings.minimum_bytes);
        assert_int_equal(json_integer_value(json_object_get(o, "maximum")),
                         vm->settings.maximum_bytes);
        assert_int_equal(json_integer_value(json_object_get(o, "buffer")),
                         vm->settings.buffer_percent);
        assert_int_equal(json_integer_value(json_object_get(o, "weight")), vm->settings.weight);
        assert_true(json_is_boolean(json_object_get(o, "lend")));
        assert_int_equal(json_is_true(json_object_get(o, "lend")), vm->settings.lend);
        assert_int_equal(json_integer_value(json_object_get(o, "assigned")), vm->assigned_bytes);
        json_t *demand = json_object_get(o, "demand"), *stall = json_object_get(o, "stall");
        if (vm->demand_known)
                assert_int_equal(json_integer_value(demand), vm->demand_bytes);
        else
                assert_true(json_is_null(demand));
        if (vm->stall_known) {
                assert_true(json_is_real(stall));
                assert_true(json_real_value(stall) == vm->stall_fraction);
        } else {
                assert_true(json_is_null(stall));
        }
}

static void check_request(const char *line, const struct fx *f, double time_s)
{
        json_error_t jerr;
        json_t *req = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);

        if (!req)
                fail_msg("request is not JSON (%s): %s", jerr.text, line);
        assert_int_equal(json_object_size(req), 3);
        assert_true(json_is_number(json_object_get(req, "time")));
        assert_true(json_number_value(json_object_get(req, "time")) == time_s);
        json_t *host = json_object_get(req, "host");
        assert_true(json_is_object(host));
        assert_int_equal(json_object_size(host), 2);
        assert_int_equal(json_integer_value(json_object_get(host, "memory")), 16 * GIB);
        assert_int_equal(json_integer_value(json_object_get(host, "reserve")), GIB);
        json_t *vms = json_object_get(req, "vms");
        assert_true(json_is_array(vms));
        assert_int_equal(json_array_size(vms), 3); /* the VM that is off is left out */
        for (size_t i = 0; i < 3; i++)
                check_vm_object(json_array_get(vms, i), &f->vms[i]);
        json_decref(req);
}

static void request_has_the_documented_fields(void **state)
{
        struct fx *f = *state;
        char *log = NULL;

        /* As the child reads it... */
        start(f, "good.sh", good_sh, "exec /bin/sh");
        assert_int_equal(decide(f, 12500), 0);
        assert_true(asprintf(&log, "%s/requests.log", f->dir) > 0);
        char *text = tu_read(log);
        assert_non_null(text);
        /* Exactly one line per decision. */
        assert_true(strlen(text) > 0);
        assert_ptr_equal(strchr(text, '\n'), text + strlen(text) - 1);
        text[strlen(text) - 1] = '\0';
        check_request(text, f, 12.5);
        free(text);
        free(log);

        /* ... and as built. */
        char *line = policy_exec_request(&f->host, f->vms, N_VMS, 12500);
        assert_non_null(line);
        assert_null(strchr(line, '\n'));
        check_request(line, f, 12.5);
        free(line);
}

static void request_survives_odd_values(void **state)
{
        struct fx *f = *state;
        static const double stalls[] = {NAN, INFINITY, -INFINITY};

        for (size_t i = 0; i < 3; i++) {
                f->vms[0].stall_fraction = stalls[i];
                f->vms[1].demand_known = true;
                f->vms[1].demand_bytes = UINT64_MAX;
                char *line = policy_exec_request(&f->host, f->vms, N_VMS, 0);
                json_t *req = line ? json_loads(line, 0, NULL) : NULL;
                assert_non_null(req);
                json_t *vms = json_object_get(req, "vms");
                /* Every VM is still described; an impossible number becomes null or a bound. */
                assert_int_equal(json_array_size(vms), 3);
                json_t *stall = json_object_get(json_array_get(vms, 0), "stall");
                assert_true(json_is_null(stall) ||
                            (json_is_real(stall) && isfinite(json_real_value(stall))));
                json_t *d = json_object_get(json_array_get(vms, 1), "demand");
                assert_true(json_is_null(d) || json_integer_value(d) >= 0);
                json_decref(req);
                free(line);
        }
}

static void garbage_reply(void **state)
{
        struct fx *f = *state;

        start(f, "garbage.sh", "#!/bin/sh\nwhile read line; do echo 'hello there'; done\n",
              "exec /bin/sh");
        expect_failure(f, 50000, -EINVAL, "reply is not JSON");
        assert_non_null(strstr(f->err, "killed"));
        assert_non_null(strstr(f->err, "garbage.sh")); /* the message names the policy */
        /* Not restarted at once: the previous targets stand meanwhile, said once. */
        expect_failure(f, 50001, -EAGAIN, "will be restarted");
        expect_failure(f, 50000 + POLICY_EXEC_RESTART_MS - 1, -EAGAIN, "");
        assert_string_equal(f->err, "");
        /* After the pause it is started again (and fails again). */
        expect_failure(f, 50000 + POLICY_EXEC_RESTART_MS, -EINVAL, "reply is not JSON");
}

/* Each failure in a row doubles the pause, up to POLICY_EXEC_RESTART_MAX_MS. */
static void restart_pause_doubles(void **state)
{
        struct fx *f = *state;
        uint64_t now = 0, pause = POLICY_EXEC_RESTART_MS;

        start(f, "garbage.sh", "#!/bin/sh\nwhile read line; do echo nonsense; done\n",
              "exec /bin/sh");
        for (int i = 0; i < 9; i++) {
                expect_failure(f, now, -EINVAL, "not JSON");
                expect_failure(f, now + pause - 1, -EAGAIN, "will be restarted");
                now += pause;
                pause =
                    pause * 2 < POLICY_EXEC_RESTART_MAX_MS ? pause * 2 : POLICY_EXEC_RESTART_MAX_MS;
        }
        assert_int_equal(pause, POLICY_EXEC_RESTART_MAX_MS);
}

static void restarted_policy_recovers(void **state)
{
        struct fx *f = *state;
        /* Garbage the first time it runs, good answers once restarted. */
        static const char script[] =
            "marker=\"$1/started-once\"\n"
            "if [ -e \"$marker\" ]; then reply='{\"targets\": {\"db\": 3221225472}}'\n"
            "else : > \"$marker\"; reply='{oops'; fi\n"
            "while read -r line; do echo \"$reply\"; done\n";

        start(f, "flaky.sh", script, "exec /bin/sh");
        expect_failure(f, 1000, -EINVAL, "not JSON");
        expect_failure(f, 1001, -EAGAIN, "will be restarted");
        assert_int_equal(decide(f, 1000 + POLICY_EXEC_RESTART_MS), 0);
        assert_int_equal(f->vms[1].external_bytes, 3 * GIB);
        assert_int_equal(f->vms[0].external_bytes, 0);
}

static void bad_replies(void **state)
{
        static const struct {
                const char *reply, *needle;
        } cases[] = {
            {"{\"targets\": {\"nosuch\": 1073741824}}", "unknown VM \"nosuch\""},
            {"{\"targets\": {\"off\": 1073741824}}", "unknown VM \"off\""},
            {"{\"targets\": {\"web\": -5}}", "\"web\" is not a byte count"},
            {"{\"targets\": {\"web\": 1.5}}", "is not a byte count"},
            {"{\"targets\": {\"web\": \"1G\"}}", "is not a byte count"},
            {"{\"targets\": {\"web\": true}}", "is not a byte count"},
            {"{\"targets\": {\"web\": null}}", "is not a byte count"},
            {"{\"targets\": {\"web\": 99999999999999999999999}}", "not JSON"},
            {"{\"targets\": [1, 2]}", "no \"targets\" object"},
            {"{\"target\": {}}", "no \"targets\" object"},
            {"[1, 2, 3]", "no \"targets\" object"},
            {"{\"targets\": {\"web\": 1, \"web\": 2}}", "not JSON"},
            {"{\"targets\": {}} trailing", "not JSON"},
            {"", "not JSON"},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct fx *f = *state;
                char script[512], name[32];

                snprintf(name, sizeof(name), "bad%zu.sh", i);
                snprintf(script, sizeof(script), "#!/bin/sh\nwhile read line; do echo '%s'; done\n",
                         cases[i].reply);
                start(f, name, script, "exec /bin/sh");
                expect_failure(f, 0, -EINVAL, cases[i].needle);

                /* The parser on its own says the same. */
                char why[200];
                for (size_t v = 0; v < N_VMS; v++)
                        f->vms[v].external_bytes = 5;
                assert_int_equal(policy_exec_parse_reply(cases[i].reply, strlen(cases[i].reply),
                                                         f->vms, N_VMS, why, sizeof(why)),
                                 -EINVAL);
                assert_non_null(strstr(why, cases[i].needle));
                for (size_t v = 0; v < N_VMS; v++)
                        assert_int_equal(f->vms[v].external_bytes, 0);
        }
}

static void parse_reply_accepts_good_lines(void **state)
{
        struct fx *f = *state;
        char why[200];
        const char *line = "{\"targets\": {\"db\": 3221225472, \"new\": 0}, \"note\": \"x\"}";

        assert_int_equal(
            policy_exec_parse_reply(line, strlen(line), f->vms, N_VMS, why, sizeof(why)), 0);
        assert_int_equal(f->vms[1].external_bytes, 3 * GIB);
        assert_int_equal(f->vms[0].external_bytes, 0);
        /* 0 is proposed (the policy clamps it to the minimum); only a VM not named keeps. */
        assert_int_not_equal(f->vms[2].external_bytes, 0);
        assert_true(f->vms[2].external_bytes <= f->vms[2].settings.block_bytes);
        line = "{\"targets\": {}}";
        assert_int_equal(
            policy_exec_parse_reply(line, strlen(line), f->vms, N_VMS, why, sizeof(why)), 0);
        assert_int_equal(f->vms[1].external_bytes, 0);
        /* A NUL inside the line is not hidden by C string handling. */
        assert_int_equal(
            policy_exec_parse_reply("{\"targets\": {}}\0x", 17, f->vms, N_VMS, why, sizeof(why)),
            -EINVAL);
        /* A very long unknown name is cut in the message. */
        char big[400];
        memset(big, 'n', sizeof(big));
        snprintf(big, sizeof(big), "{\"targets\": {\"%0300d\": 1}}", 0);
        assert_int_equal(policy_exec_parse_reply(big, strlen(big), f->vms, N_VMS, why, sizeof(why)),
                         -EINVAL);
        assert_true(strlen(why) < 120);
}

static void reply_in_pieces(void **state)
{
        struct fx *f = *state;
        static const char script[] = "while read -r line; do\n"
                                     "    printf '{\"targets\": '; sleep 0.05\n"
                                     "    printf '{\"web\": 2147483648}'; sleep 0.05\n"
                                     "    printf '}\\n'\n"
                                     "done\n";

        start(f, "pieces.sh", script, "exec /bin/sh");
        assert_int_equal(decide(f, 0), 0);
        assert_int_equal(f->vms[0].external_bytes, 2 * GIB);
}

static void process_that_exits(void **state)
{
        struct fx *f = *state;

        start_command(f, "exit 3");
        expect_failure(f, 0, -EPIPE, "exited with status 3");

        start(f, "reads.sh", "#!/bin/sh\nread line\nexit 0\n", "exec /bin/sh");
        expect_failure(f, 0, -EPIPE, "exited with status 0");

        start(f, "killed.sh", "#!/bin/sh\nread line\nkill -9 $$\n", "exec /bin/sh");
        expect_failure(f, 0, -EPIPE, "was killed by signal 9");

        start_command(f, "exec /nonexistent/dynmem-policy");
        expect_failure(f, 0, -EPIPE, "exited with status 127");
        /* Each failure counted, the pause not (it is no decision of the program's). */
        assert_int_equal(decide(f, 1), -EAGAIN);
        expect_failure(f, POLICY_EXEC_RESTART_MS, -EPIPE, "exited with status 127");
        assert_int_equal(policy_exec_tally(f->pe).failures, 2);
        assert_int_equal(policy_exec_tally(f->pe).answers, 0); /* it never answered */
}

static void process_that_hangs_is_killed(void **state)
{
        struct fx *f = *state;
        /* Answers its first request, then hangs on the second. */
        static const char script[] = "echo $$ > \"$1/pid\"\n"
                                     "read -r line\n"
                                     "echo '{\"targets\": {}}'\n"
                                     "read -r line\n"
                                     "exec sleep 60\n";
        char *pidfile = NULL;

        start(f, "hang.sh", script, "exec /bin/sh");
        assert_int_equal(decide(f, 0), 0);
        expect_failure(f, 1000, -ETIMEDOUT, "did not answer within 1000 ms; killed");
        /* One answer, one failure: what dynmem-sim reports of the program. */
        assert_int_equal(policy_exec_tally(f->pe).answers, 1);
        assert_int_equal(policy_exec_tally(f->pe).failures, 1);
        assert_true(asprintf(&pidfile, "%s/pid", f->dir) > 0);
        char *text = tu_read(pidfile);
        assert_non_null(text);
        pid_t pid = (pid_t)atoi(text);
        assert_true(pid > 1);
        /* Killed and reaped: the pid is gone. */
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
        free(text);
        free(pidfile);
}

/*
 * A killed process not gone when the waiting mode goes on (stuck, or slow
 * to free its memory; here: not waited for at all) does not stay a zombie:
 * a later decision reaps it.
 */
static void a_killed_process_not_yet_gone_is_reaped_later(void **state)
{
        struct fx *f = *state;
        static const char script[] = "echo $$ > \"$1/pid\"\n"
                                     "read -r line\n"
                                     "echo nonsense\n"
                                     "exec sleep 60\n";
        char *pidfile = NULL;

        start(f, "slow-to-go.sh", script, "exec /bin/sh");
        policy_exec_set_stop_wait_ms(f->pe, 0);
        expect_failure(f, 0, -EINVAL, "not JSON");
        assert_true(asprintf(&pidfile, "%s/pid", f->dir) > 0);
        char *text = tu_read(pidfile);
        assert_non_null(text);
        pid_t pid = (pid_t)atoi(text);
        assert_true(pid > 1);
        /* In the restart pause: no new process, but the killed one is reaped once gone. */
        uint64_t deadline = mono_ms() + 10000;
        while (kill(pid, 0) == 0 && mono_ms() < deadline) {
                assert_int_equal(decide(f, 1), -EAGAIN);
                usleep(10000);
        }
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
        free(text);
        free(pidfile);
}

/*
 * The program gets its pipes and standard error, nothing else of the
 * caller's: no other descriptor (one not close-on-exec here), no blocked or
 * ignored signal. It answers with a good reply when that holds and names
 * what it inherited otherwise.
 */
static void child_inherits_nothing_else(void **state)
{
        struct fx *f = *state;
        int leaked = open("/dev/null", O_RDONLY); /* not close-on-exec */
        char script[1024];
        sigset_t usr1, old_mask;
        struct sigaction ign = {.sa_handler = SIG_IGN}, old_usr2;

        assert_true(leaked > 2);
        snprintf(script, sizeof(script),
                 "while read -r line; do\n"
                 "    blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/$$/status)\n"
                 "    ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status)\n"
                 "    fd=closed; [ -e /proc/$$/fd/%d ] && fd=open\n"
                 "    if [ \"$blk $ign $fd\" = '0000000000000000 0000000000000000 closed' ]; then\n"
                 "        echo '{\"targets\": {\"web\": 1073741824}}'\n"
                 "    else echo \"{\\\"targets\\\": {\\\"blocked $blk ignored $ign fd $fd\\\": "
                 "1}}\"; fi\n"
                 "done\n",
                 leaked);
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        sigprocmask(SIG_BLOCK, &usr1, &old_mask);
        sigaction(SIGUSR2, &ign, &old_usr2);
        start(f, "clean.sh", script, "exec /bin/sh");
        int r = decide(f, 0);
        if (r != 0)
                fail_msg("the policy inherited too much: %d %s", r, f->err);
        assert_int_equal(f->vms[0].external_bytes, GIB);

        /* With no standard input of its own the caller's pipes may take fds 0 and 1. */
        int saved_in = dup(STDIN_FILENO), saved_out = dup(STDOUT_FILENO);
        assert_true(saved_in > 2 && saved_out > 2);
        fflush(stdout); /* the test's own output (TAP) goes nowhere meanwhile */
        close(STDIN_FILENO);
        close(STDOUT_FILENO);
        start(f, "clean2.sh", script, "exec /bin/sh");
        r = decide(f, 0);
        uint64_t got = f->vms[0].external_bytes;
        policy_exec_free(f->pe); /* its pipes are fds 0 and 1 here */
        f->pe = NULL;
        dup2(saved_in, STDIN_FILENO);
        dup2(saved_out, STDOUT_FILENO);
        close(saved_in);
        close(saved_out);
        if (r != 0)
                fail_msg("the policy got the wrong pipes: %d %s", r, f->err);
        assert_int_equal(got, GIB);

        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        sigaction(SIGUSR2, &old_usr2, NULL);
        close(leaked);
}

/* A request larger than a pipe holds, to a process that never reads it: not waited for. */
static void process_that_does_not_read_is_killed(void **state)
{
        struct fx *f = *state;
        enum { MANY = 1000 };
        struct policy_vm *vms = calloc(MANY, sizeof(*vms));
        char(*names)[100] = calloc(MANY, sizeof(*names));

        assert_non_null(vms);
        assert_non_null(names);
        for (size_t i = 0; i < MANY; i++) {
                snprintf(names[i], sizeof(names[i]), "a-vm-with-a-long-name-%070zu", i);
                vms[i] = f->vms[0];
                vms[i].name = names[i];
        }
        char *req = policy_exec_request(&f->host, vms, MANY, 0);
        assert_true(strlen(req) > 2 * 65536); /* more than a pipe holds */
        free(req);
        start_command(f, "exec sleep 30");
        uint64_t t0 = mono_ms();
        int r = policy_exec_decide(f->pe, &f->host, vms, MANY, 0, f->err, sizeof(f->err));
        assert_int_equal(r, -ETIMEDOUT);
        assert_non_null(strstr(f->err, "did not read its request"));
        assert_true(mono_ms() - t0 < POLICY_EXEC_START_TIMEOUT_MS + 2000);
        free(vms);
        free(names);
}

static void slow_start_gets_more_time(void **state)
{
        struct fx *f = *state;
        /* Takes longer than 1 s to start (an interpreter loading), then answers. */
        static const char script[] = "sleep 1.5\n"
                                     "while read -r line; do echo '{\"targets\": {}}'; done\n";

        start(f, "slow.sh", script, "exec /bin/sh");
        assert_int_equal(decide(f, 0), 0);
}

static void oversized_reply_is_refused(void **state)
{
        struct fx *f = *state;
        static const char script[] = "while read -r line; do\n"
                                     "    printf '{\"targets\": {}, \"pad\": \"'\n"
                                     "    head -c 100000 /dev/zero | tr '\\0' x\n"
                                     "    printf '\"}\\n'\n"
                                     "done\n";

        start(f, "big.sh", script, "exec /bin/sh");
        expect_failure(f, 0, -EMSGSIZE, "answered more than");
        assert_non_null(strstr(f->err, "killed"));
}

/* A reply line of `len` bytes before its newline; the padding is JSON white space. */
static int reply_of_length(struct fx *f, size_t len)
{
        char script[512];
        size_t pad = len - strlen("{\"targets\": {\"web\": 1073741824}}");

        snprintf(script, sizeof(script),
                 "pad=$(head -c %zu /dev/zero | tr '\\0' ' ')\n"
                 "while read -r line; do\n"
                 "    printf '%%s%%s}\\n' '{\"targets\": {\"web\": 1073741824}' \"$pad\"\n"
                 "done\n",
                 pad);
        start(f, "edge.sh", script, "exec /bin/sh");
        return decide(f, 0);
}

static void reply_at_the_size_limit(void **state)
{
        struct fx *f = *state;
        size_t cap = POLICY_EXEC_LINE_BASE + POLICY_EXEC_LINE_PER_VM * N_VMS;

        /* cap bytes with the newline fit... */
        assert_int_equal(reply_of_length(f, cap - 1), 0);
        assert_int_equal(f->vms[0].external_bytes, GIB);
        /* ... one more does not. */
        assert_int_equal(reply_of_length(f, cap), -EMSGSIZE);
        assert_int_equal(f->vms[0].external_bytes, 0);
}

/* The program is judged before any start where no shell is needed to judge it. */
static void the_program_is_checked_before_a_start(void **state)
{
        struct fx *f = *state;
        char *good = tu_write(f->dir, "good.sh", "#!/bin/sh\n", true);
        char *flat = tu_write(f->dir, "flat.sh", "#!/bin/sh\n", false);
        char cmd[1024], err[512];

        static const char *const fine[] = {
            "sh -c 'exit 0'",
            "/bin/sh /x.sh",
            "exec /bin/sh",
            "LANG=C exec env python3 x",
            "exit 3",
            "cd /tmp && ./policy",
            "\"$HOME/policy\"",
            "exec -a x y",
            "A=1",
        };
        for (size_t i = 0; i < sizeof(fine) / sizeof(*fine); i++) {
                err[0] = '\0';
                if (policy_exec_check_program(fine[i], err, sizeof(err)) != 0)
                        fail_msg("\"%s\" refused: %s", fine[i], err);
        }
        snprintf(cmd, sizeof(cmd), "%s --fast", good);
        assert_int_equal(policy_exec_check_program(cmd, err, sizeof(err)), 0);

        assert_int_equal(policy_exec_check_program("/nonexistent/policy x", err, sizeof(err)),
                         -ENOENT);
        assert_string_equal(err, "program /nonexistent/policy: No such file or directory");
        snprintf(cmd, sizeof(cmd), "  X=1 exec %s", flat);
        assert_true(policy_exec_check_program(cmd, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "flat.sh is not executable"));
        assert_int_equal(policy_exec_check_program(f->dir, err, sizeof(err)), -EISDIR);
        assert_int_equal(policy_exec_check_program("no-such-dynmem-policy --x", err, sizeof(err)),
                         -ENOENT);
        assert_non_null(strstr(err, "program no-such-dynmem-policy is not in PATH ("));
        free(good);
        free(flat);
}

static void new_and_free(void **state)
{
        struct policy_exec *pe = NULL;
        char err[64];

        assert_int_equal(policy_exec_new("true", &pe, err, sizeof(err)), 0);
        assert_non_null(pe);
        policy_exec_free(pe); /* never started */
        policy_exec_free(NULL);
}

/* 25 lines on its standard error for each request, then an answer. */
static const char chatty_sh[] = "n=0\n"
                                "while read -r line; do\n"
                                "    n=$((n + 1)); i=0\n"
                                "    while [ $i -lt 25 ]; do\n"
                                "        i=$((i + 1)); echo \"request $n line $i\" >&2\n"
                                "    done\n"
                                "    echo '{\"targets\": {}}'\n"
                                "done\n";

/* What the log (standard error here) got while f->pe ran decisions at these times. */
static char *logged_over(struct fx *f, const uint64_t *at, size_t n, int *results)
{
        char *path = NULL;

        assert_true(asprintf(&path, "%s/log.txt", f->dir) > 0);
        int saved = tu_stderr_capture(path);
        for (size_t i = 0; i < n; i++)
                results[i] = decide(f, at[i]);
        policy_exec_free(f->pe); /* what is left is relayed, and the count */
        f->pe = NULL;
        char *text = tu_stderr_release(saved, path);
        free(path);
        assert_non_null(text);
        return text;
}

/*
 * Each line it wrote went to dynmem-sim's stderr, 1,350 a simulated day for
 * one that cannot be found. Now the first lines of a run only, however long
 * (an hour later is no different), each naming the policy, and how many more
 * there were once the run is over.
 */
static void stderr_relayed_first_lines_of_a_run(void **state)
{
        struct fx *f = *state;
        const uint64_t at[] = {0, 60000, 3600000};
        int r[3];

        start(f, "chatty.sh", chatty_sh, "exec /bin/sh");
        char *text = logged_over(f, at, 3, r);
        for (size_t i = 0; i < 3; i++)
                assert_int_equal(r[i], 0);
        assert_int_equal(tu_count(text, "\n"), 11);
        assert_int_equal(tu_count(text, "dynmem: policy \"exec /bin/sh "), 11);
        for (int i = 1; i <= 10; i++) {
                char line[64];
                snprintf(line, sizeof(line), "\": request 1 line %d\n", i);
                assert_non_null(strstr(text, line));
        }
        assert_null(strstr(text, "line 11"));
        assert_null(strstr(text, "request 2"));
        assert_non_null(strstr(text, "\": 65 more lines of its standard error not shown\n"));
        free(text);
}

/*
 * Lines as text for one line of the log: control characters as spaces, a long
 * one cut, and the last one relayed without its newline when the program
 * exits.
 */
static void stderr_lines_cleaned_and_cut(void **state)
{
        struct fx *f = *state;
        static const char script[] = "read -r line\n"
                                     "printf 'a bell\\a and an escape\\033[2J here\\n' >&2\n"
                                     "head -c 1000 /dev/zero | tr '\\0' x >&2; echo >&2\n"
                                     "printf 'no newline at the end' >&2\n"
                                     "exit 3\n";
        const uint64_t at[] = {0};
        int r;

        start(f, "odd.sh", script, "exec /bin/sh");
        char *text = logged_over(f, at, 1, &r);
        assert_int_equal(r, -EPIPE);
        assert_non_null(strstr(text, "\": a bell  and an escape [2J here\n"));
        assert_null(strchr(text, '\a'));
        assert_null(strchr(text, '\033'));
        const char *xs = strstr(text, "xxx");
        assert_non_null(xs);
        size_t run = strspn(xs, "x");
        assert_true(run >= 300 && run < 400);
        assert_memory_equal(xs + run, "...\n", 4);
        assert_non_null(strstr(text, "\": no newline at the end\n"));
        free(text);
}

/* 180 KiB on its standard error before it answers: the pipe is read as it fills. */
static void stderr_filled_before_the_answer(void **state)
{
        struct fx *f = *state;
        static const char script[] =
            "while read -r line; do\n"
            "    yes 'a line of the program, long enough to fill a pipe in a while' |\n"
            "        head -n 3000 >&2\n"
            "    echo '{\"targets\": {\"web\": 1073741824}}'\n"
            "done\n";
        const uint64_t at[] = {0, 1000};
        int r[2];

        start(f, "loud.sh", script, "exec /bin/sh");
        char *text = logged_over(f, at, 2, r);
        assert_int_equal(r[0], 0);
        assert_int_equal(r[1], 0);
        assert_int_equal(tu_count(text, "\n"), 11);
        assert_non_null(strstr(text, "\": 5990 more lines of its standard error not shown\n"));
        free(text);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(good_policy_targets_arrive),
            T(request_has_the_documented_fields),
            T(request_survives_odd_values),
            T(garbage_reply),
            T(restart_pause_doubles),
            T(restarted_policy_recovers),
            T(bad_replies),
            T(parse_reply_accepts_good_lines),
            T(reply_in_pieces),
            T(process_that_exits),
            T(child_inherits_nothing_else),
            T(process_that_does_not_read_is_killed),
            T(slow_start_gets_more_time),
            T(process_that_hangs_is_killed),
            T(a_killed_process_not_yet_gone_is_reaped_later),
            T(oversized_reply_is_refused),
            T(reply_at_the_size_limit),
            T(new_and_free),
            T(the_program_is_checked_before_a_start),
            T(stderr_relayed_first_lines_of_a_run),
            T(stderr_lines_cleaned_and_cut),
            T(stderr_filled_before_the_answer),
        };

        signal(SIGPIPE, SIG_IGN); /* as policy_exec.h asks of its callers */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
