/*
 * Tests for backend/qemu_probe.c with the QEMU in PATH (Debian 12's 7.2, or
 * bookworm-backports' 10.0 in the second set of real-guest tests): what the
 * probe reads agrees with the binary's version; the machine-type rule for
 * unplugged-inaccessible agrees with what QEMU itself does with each machine
 * type; answers are cached per binary and asked again when it changes; a
 * binary that exits, lies or hangs up fails the probe with the reason, and
 * is reaped. The probes run in an event loop, their QEMU
 * started by the launcher as the QEMU user, as in dynmemd.
 * No guest boots: every QEMU here runs with -S or no machine at all.
 */
#include <errno.h>
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
#include <event2/event.h>
#include <spawn.h>
#include <sys/un.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "qemu_int.h"
#include "qemu_launch.h"
#include "qtest.h"
#include "units.h"

extern char **environ;

struct fixture {
        char *dir;
        char qmp[256], log[256];
        int log_fd;
        char *binary;
        struct event_base *base;
        struct qemu_backend qb;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char err[256];

        f->dir = qt_tempdir();
        /* The QEMU user runs the wrappers written here. */
        assert_int_equal(chmod(f->dir, 0755), 0);
        snprintf(f->qmp, sizeof(f->qmp), "%s/probe.qmp", f->dir);
        snprintf(f->log, sizeof(f->log), "%s/probe.log", f->dir);
        f->log_fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        assert_true(f->log_fd >= 0);
        assert_int_equal(qemu_proc_find_binary("qemu-system-x86_64", &f->binary), 0);
        assert_non_null(f->base = event_base_new());
        f->qb.env.base = f->base;
        if (qemu_launch_new(NULL, &f->qb.launch, err, sizeof(err)) < 0)
                fail_msg("the QEMU launcher: %s", err);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        qemu_probe_cache_free(&f->qb);
        qemu_launch_free(f->qb.launch);
        event_base_free(f->base);
        close(f->log_fd);
        free(f->binary);
        qt_rmtree(f->dir);
        free(f);
        return 0;
}

struct outcome {
        bool over, again;
        struct qemu_caps caps; /* a copy of what was read (machines not kept) */
        char why[320];
};

static void on_done(const struct qemu_caps *caps, const char *why, bool again, void *arg)
{
        struct outcome *o = arg;

        o->over = true;
        o->again = again;
        if (caps) {
                o->caps = *caps;
                o->caps.machines = NULL;
        }
        snprintf(o->why, sizeof(o->why), "%s", why ? why : "");
}

static bool is_over(void *arg)
{
        return ((struct outcome *)arg)->over;
}

static bool nothing_runs(void *arg)
{
        return ((struct qemu_backend *)arg)->probing == NULL;
}

/*
 * Ask binary in the loop, as dynmemd does: 0 with what it read in o->caps
 * (and the full answer in the cache), or <0 with o->why. Its QEMU has
 * quit or been killed, and been reaped, when this returns.
 */
static int probe(struct fixture *f, const char *binary, struct outcome *o)
{
        struct qemu_probe *p;
        int r;

        *o = (struct outcome){0};
        r = qemu_probe_start(&f->qb, binary, f->qmp, f->log, f->log_fd, on_done, o, &p, o->why,
                             sizeof(o->why));
        if (r < 0) {
                print_message("# %s: not started: %s\n", binary, o->why);
                return r;
        }
        assert_true(qt_loop_until(f->base, is_over, o, 60 * 1000));
        /* its QEMU quit, or killed 3 s after it was asked to (late on a loaded machine) */
        assert_true(qt_loop_until(f->base, nothing_runs, &f->qb, 60 * 1000));
        print_message("# %s: %s\n", binary, o->why[0] ? o->why : "answered");
        return o->why[0] ? -EIO : 0;
}

/*
 * As dynmemd's start does (qemu_start.c): a probe that failed without QEMU's
 * own word (silent, or QMP broke off and it stayed) is asked once more.
 * *runs (unless NULL): how many times binary ran.
 */
static int probe_as_a_start(struct fixture *f, const char *binary, struct outcome *o,
                            unsigned *runs)
{
        int r = probe(f, binary, o);
        unsigned n = 1;

        if (r < 0 && o->again) {
                print_message("# %s: asking again, as a start would\n", binary);
                r = probe(f, binary, o);
                n = 2;
        }
        if (runs)
                *runs = n;
        return r;
}

static void the_probe_agrees_with_the_version(void **state)
{
        struct fixture *f = *state;
        struct outcome o;
        unsigned v[3];
        char pc[64];
        uint64_t t0 = mono_ms();

        assert_true(qt_qemu_version(v));
        if (probe_as_a_start(f, f->binary, &o, NULL) < 0)
                fail_msg("probe: %s", o.why);
        const struct qemu_caps *c = qemu_probe_cached(&f->qb, f->binary);
        assert_non_null(c);
        print_message("# QEMU %u.%u.%u (%s) answered in %llu ms: virtio-mem %d, "
                      "dynamic-memslots %d, unplugged-inaccessible %d, x-early-migration %d, "
                      "-run-with user= %d, hv-balloon %d, %zu machine types\n",
                      c->version[0], c->version[1], c->version[2], f->binary,
                      (unsigned long long)(mono_ms() - t0), c->virtio_mem, c->dynamic_memslots,
                      c->unplugged_inaccessible, c->early_migration, c->run_with_user,
                      c->hv_balloon, c->n_machines);
        assert_memory_equal(c->version, v, sizeof(v));
        assert_true(c->virtio_mem);
        assert_int_equal(c->unplugged_inaccessible, qt_version_at_least(v, 7, 0));
        assert_int_equal(c->early_migration, qt_version_at_least(v, 8, 0));
        assert_int_equal(c->dynamic_memslots, qt_version_at_least(v, 8, 2));
        assert_int_equal(qemu_caps_run_with_user(c), qt_version_at_least(v, 9, 1));
        /* "pc" is the newest pc-i440fx type of this version. */
        snprintf(pc, sizeof(pc), "pc-i440fx-%u.%u", v[0], v[1]);
        bool found = false;
        for (size_t i = 0; i < c->n_machines; i++)
                found |=
                    strcmp(c->machines[i].alias, "pc") == 0 && strcmp(c->machines[i].name, pc) == 0;
        assert_true(found);
        /* Nothing is left behind. */
        assert_int_equal(access(f->qmp, F_OK), -1);
}

/* ---- what QEMU itself does with unplugged-inaccessible per machine type ---- */

/* Send one command on a negotiated QMP socket and return its "return" (or NULL). */
static json_t *ask(int fd, const char *command)
{
        char buf[65536];
        size_t len = 0;

        assert_int_equal(send(fd, command, strlen(command), MSG_NOSIGNAL),
                         (ssize_t)strlen(command));
        for (;;) {
                ssize_t n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
                assert_true(n > 0);
                len += (size_t)n;
                buf[len] = '\0';
                char *nl;
                while ((nl = strchr(buf, '\n'))) {
                        *nl = '\0';
                        json_t *msg = json_loads(buf, 0, NULL);
                        size_t used = (size_t)(nl - buf) + 1;
                        memmove(buf, nl + 1, len - used + 1);
                        len -= used;
                        if (msg &&
                            (json_object_get(msg, "return") || json_object_get(msg, "error"))) {
                                json_t *ret = json_incref(json_object_get(msg, "return"));
                                json_decref(msg);
                                return ret;
                        }
                        json_decref(msg);
                }
        }
}

/* A negotiated QMP connection to the socket at path, once QEMU listens there (60 s). */
static int qmp_open(const char *path)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        uint64_t t0 = mono_ms();
        int fd;

        assert_true(strlen(path) < sizeof(sa.sun_path));
        memcpy(sa.sun_path, path, strlen(path) + 1);
        while (mono_ms() - t0 < 60000) {
                assert_true((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
                if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
                        json_decref(ask(fd, "{\"execute\": \"qmp_capabilities\"}\n"));
                        return fd;
                }
                close(fd);
                usleep(50 * 1000);
        }
        return -1;
}

/*
 * unplugged-inaccessible of a virtio-mem device left at its default on
 * machine type, from a QEMU this test runs itself (-S: no guest runs).
 */
static enum qemu_switch qemu_default(struct fixture *f, const char *machine)
{
        char qmp_arg[512], *argv[] = {f->binary,
                                      "-machine",
                                      (char *)machine,
                                      "-accel",
                                      "tcg",
                                      "-S",
                                      "-nodefaults",
                                      "-display",
                                      "none",
                                      "-m",
                                      "64M,slots=1,maxmem=128M",
                                      "-object",
                                      "memory-backend-ram,id=m,size=64M",
                                      "-device",
                                      "virtio-mem-pci,id=v,memdev=m",
                                      "-chardev",
                                      qmp_arg,
                                      "-mon",
                                      "chardev=dm-qmp,mode=control",
                                      NULL};
        posix_spawn_file_actions_t fa;
        pid_t pid;
        int fd;

        snprintf(qmp_arg, sizeof(qmp_arg), "socket,id=dm-qmp,path=%s,server=on,wait=off", f->qmp);
        unlink(f->qmp);
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, f->log_fd, 1);
        posix_spawn_file_actions_adddup2(&fa, f->log_fd, 2);
        assert_int_equal(posix_spawn(&pid, f->binary, &fa, NULL, argv, environ), 0);
        posix_spawn_file_actions_destroy(&fa);
        if ((fd = qmp_open(f->qmp)) < 0)
                fail_msg("QEMU with machine %s did not start (see %s)", machine, f->log);
        json_t *v =
            ask(fd, "{\"execute\": \"qom-get\", \"arguments\": {\"path\": "
                    "\"/machine/peripheral/v\", \"property\": \"unplugged-inaccessible\"}}\n");
        const char *s = json_string_value(v);
        enum qemu_switch r = s && strcmp(s, "on") == 0    ? QEMU_SWITCH_ON
                             : s && strcmp(s, "off") == 0 ? QEMU_SWITCH_OFF
                                                          : QEMU_SWITCH_UNSET;
        json_decref(v);
        close(fd);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        unlink(f->qmp);
        return r;
}

static void the_machine_type_rule_is_qemus_own(void **state)
{
        struct fixture *f = *state;
        struct qemu_features ft;
        struct outcome o;
        char err[256] = "";
        /* Around the boundary (8.1), the newest of each family, and one well before it. */
        const char *types[] = {"pc",         "q35",        "pc-i440fx-8.0", "pc-i440fx-8.1",
                               "pc-q35-8.0", "pc-q35-8.1", "pc-i440fx-7.2"};
        unsigned tried = 0;

        if (probe_as_a_start(f, f->binary, &o, NULL) < 0)
                fail_msg("probe: %s", o.why);
        const struct qemu_caps *c = qemu_probe_cached(&f->qb, f->binary);
        for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++) {
                if (qemu_caps_choose(c, types[i], true, &ft, err, sizeof(err)) < 0)
                        continue; /* this QEMU has no such machine type */
                enum qemu_switch own = qemu_default(f, ft.machine);
                print_message("# %s (%s): QEMU's default unplugged-inaccessible %s, dynmem "
                              "chooses %s, dynamic-memslots %s\n",
                              types[i], ft.machine, own == QEMU_SWITCH_ON ? "on" : "off",
                              ft.unplugged_inaccessible == QEMU_SWITCH_ON ? "on" : "off",
                              ft.dynamic_memslots ? "on" : "off");
                assert_int_equal(ft.unplugged_inaccessible, own);
                tried++;
        }
        assert_true(tried >= 3);
}

/* ---- the cache ---- */

static unsigned count_lines(const char *path)
{
        FILE *fp = fopen(path, "re");
        unsigned n = 0;
        int ch;

        if (!fp)
                return 0;
        while ((ch = fgetc(fp)) != EOF)
                n += ch == '\n';
        fclose(fp);
        return n;
}

/* An executable script in the test's folder that the QEMU user may run. */
static void write_script(const char *path, const char *text)
{
        FILE *fp = fopen(path, "w");

        assert_non_null(fp);
        fputs(text, fp);
        fclose(fp);
        assert_int_equal(chmod(path, 0755), 0);
}

static void answers_are_cached_per_binary(void **state)
{
        struct fixture *f = *state;
        struct outcome o;
        unsigned runs, all_runs;
        char wrapper[512], count[512], text[2048];
        unsigned v[3];
        int fd;

        /* A wrapper that counts its runs (as the QEMU user): the probe is all that runs it. */
        snprintf(wrapper, sizeof(wrapper), "%s/qemu", f->dir);
        snprintf(count, sizeof(count), "%s/runs", f->dir);
        assert_true((fd = open(count, O_WRONLY | O_CREAT | O_CLOEXEC, 0666)) >= 0);
        assert_int_equal(fchmod(fd, 0666), 0);
        close(fd);
        snprintf(text, sizeof(text), "#!/bin/sh\necho run >> '%s'\nexec '%s' \"$@\"\n", count,
                 f->binary);
        write_script(wrapper, text);

        assert_null(qemu_probe_cached(&f->qb, wrapper));
        if (probe_as_a_start(f, wrapper, &o, &runs) < 0)
                fail_msg("probe: %s", o.why);
        const struct qemu_caps *a = qemu_probe_cached(&f->qb, wrapper);
        assert_non_null(a);
        assert_ptr_equal(qemu_probe_cached(&f->qb, wrapper), a);
        assert_int_equal(count_lines(count), runs);
        all_runs = runs;
        memcpy(v, a->version, sizeof(v));

        /* The binary changes (an upgrade): not the same file, asked again. */
        struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1000000000}};
        assert_int_equal(utimensat(AT_FDCWD, wrapper, times, 0), 0);
        assert_null(qemu_probe_cached(&f->qb, wrapper));
        assert_int_equal(probe_as_a_start(f, wrapper, &o, &runs), 0);
        assert_int_equal(count_lines(count), all_runs + runs);
        assert_non_null(qemu_probe_cached(&f->qb, wrapper));

        /* Another binary is another entry. */
        assert_int_equal(probe_as_a_start(f, f->binary, &o, NULL), 0);
        assert_int_equal(f->qb.n_probes, 2);
        assert_memory_equal(qemu_probe_cached(&f->qb, f->binary)->version, v, sizeof(v));
        assert_memory_equal(qemu_probe_cached(&f->qb, wrapper)->version, v, sizeof(v));
}

/* ---- unhappy paths ---- */

static void exits_lies_and_hangups_fail_the_probe(void **state)
{
        struct fixture *f = *state;
        const char *src = getenv("DYNMEM_SOURCE_ROOT");
        const char *modes[] = {"version", "machines", "hangup", "linger", ""};
        char liar[512], text[1024];
        struct outcome o;

        assert_non_null(src);
        assert_true(probe(f, "/bin/false", &o) < 0);
        assert_non_null(strstr(o.why, "it exited"));

        /* The launcher keeps the environment it started with: one wrapper per mode. */
        for (size_t i = 0; i < sizeof(modes) / sizeof(*modes); i++) {
                snprintf(liar, sizeof(liar), "%s/liar-%s", f->dir, modes[i]);
                snprintf(
                    text, sizeof(text),
                    "#!/bin/sh\nLYING_QEMU_MODE='%s' exec python3 '%s/tests/qemu/lying-qemu.py' "
                    "\"$@\"\n",
                    modes[i], src);
                write_script(liar, text);
                int r = probe(f, liar, &o);
                if (!modes[i][0]) {
                        /* The truth-teller in between still works. */
                        assert_int_equal(r, 0);
                        continue;
                }
                assert_true(r < 0);
                assert_null(qemu_probe_cached(&f->qb, liar));
        }
        snprintf(liar, sizeof(liar), "%s/liar-version", f->dir);
        assert_int_equal(probe(f, liar, &o), -EIO);
        assert_non_null(strstr(o.why, "query-version: an answer of the wrong shape"));
        snprintf(liar, sizeof(liar), "%s/liar-machines", f->dir);
        assert_int_equal(probe(f, liar, &o), -EIO);
        assert_non_null(strstr(o.why, "query-machines: an answer of the wrong shape"));
        snprintf(liar, sizeof(liar), "%s/liar-hangup", f->dir);
        assert_int_equal(probe(f, liar, &o), -EIO);
        assert_non_null(strstr(o.why, "it exited"));
        assert_false(o.again);
        /* QMP ends and the QEMU stays: killed, with why it ended; asking again may help. */
        snprintf(liar, sizeof(liar), "%s/liar-linger", f->dir);
        assert_int_equal(probe(f, liar, &o), -EIO);
        assert_non_null(strstr(o.why, "ended (QMP connection failed: Broken pipe)") ||
                        strstr(o.why, "ended (QEMU closed the QMP connection)"));
        assert_non_null(strstr(o.why, "and it did not exit within 2 s; killed"));
        assert_true(o.again);

        /* A QEMU that never answers is killed after QEMU_START_WAIT_MS (20 s), and asking
         * again may help (again, as for linger): not waited for here.
         * tests/daemon/test_no_wait.py starts VMs through such probes: one whose QEMU is
         * silent once (asked again, the start goes on) and one whose QEMU never answers
         * (asked twice, then the start fails). */
        /* Nothing is left running: every probe's QEMU was reaped, none runs from here. */
        assert_null(f->qb.probing);
        /* "[/]tmp/...": a pattern that does not match the shell running pgrep. */
        snprintf(text, sizeof(text), "pgrep -f '[%c]%s/' >/dev/null", f->dir[0], f->dir + 1);
        assert_int_not_equal(system(text), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(the_probe_agrees_with_the_version, setup, teardown),
            cmocka_unit_test_setup_teardown(the_machine_type_rule_is_qemus_own, setup, teardown),
            cmocka_unit_test_setup_teardown(answers_are_cached_per_binary, setup, teardown),
            cmocka_unit_test_setup_teardown(exits_lies_and_hangups_fail_the_probe, setup, teardown),
        };
        char *binary = NULL;

        signal(SIGPIPE, SIG_IGN);
        if (qemu_proc_find_binary("qemu-system-x86_64", &binary) < 0) {
                printf("1..0 # SKIP qemu-system-x86_64 is not installed\n");
                return 0;
        }
        free(binary);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
