/*
 * Tests for backend/qemu_probe.c with the QEMU in PATH (Debian 12's 7.2, or
 * bookworm-backports' 10.0 in the second set of real-guest tests): what the
 * probe reads agrees with the binary's version; the machine-type rule for
 * unplugged-inaccessible agrees with what QEMU itself does with each machine
 * type; answers are cached per binary and asked again when it changes; a
 * binary that exits, lies or hangs up fails the probe with the reason.
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
#include <sys/pidfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "qemu_int.h"
#include "qtest.h"

struct fixture {
        char *dir;
        char qmp[256], log[256];
        int log_fd;
        char *binary;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        f->dir = qt_tempdir();
        snprintf(f->qmp, sizeof(f->qmp), "%s/probe.qmp", f->dir);
        snprintf(f->log, sizeof(f->log), "%s/probe.log", f->dir);
        f->log_fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        assert_true(f->log_fd >= 0);
        assert_int_equal(qemu_proc_find_binary("qemu-system-x86_64", &f->binary), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        close(f->log_fd);
        free(f->binary);
        qt_rmtree(f->dir);
        free(f);
        return 0;
}

static void the_probe_agrees_with_the_version(void **state)
{
        struct fixture *f = *state;
        struct qemu_caps c;
        unsigned v[3];
        char err[256] = "", pc[64];
        uint64_t t0 = mono_ms();

        assert_true(qt_qemu_version(v));
        if (qemu_probe_run(f->binary, f->qmp, f->log_fd, &c, err, sizeof(err)) < 0)
                fail_msg("probe: %s", err);
        print_message("# QEMU %u.%u.%u (%s) answered in %llu ms: virtio-mem %d, "
                      "dynamic-memslots %d, unplugged-inaccessible %d, x-early-migration %d, "
                      "-run-with user= %d, hv-balloon %d, %zu machine types\n",
                      c.version[0], c.version[1], c.version[2], f->binary,
                      (unsigned long long)(mono_ms() - t0), c.virtio_mem, c.dynamic_memslots,
                      c.unplugged_inaccessible, c.early_migration, c.run_with_user, c.hv_balloon,
                      c.n_machines);
        assert_memory_equal(c.version, v, sizeof(v));
        assert_true(c.virtio_mem);
        assert_int_equal(c.unplugged_inaccessible, qt_version_at_least(v, 7, 0));
        assert_int_equal(c.early_migration, qt_version_at_least(v, 8, 0));
        assert_int_equal(c.dynamic_memslots, qt_version_at_least(v, 8, 2));
        assert_int_equal(qemu_caps_run_with_user(&c), qt_version_at_least(v, 9, 1));
        /* "pc" is the newest pc-i440fx type of this version. */
        snprintf(pc, sizeof(pc), "pc-i440fx-%u.%u", v[0], v[1]);
        bool found = false;
        for (size_t i = 0; i < c.n_machines; i++)
                found |=
                    strcmp(c.machines[i].alias, "pc") == 0 && strcmp(c.machines[i].name, pc) == 0;
        assert_true(found);
        /* Nothing is left behind. */
        assert_int_equal(access(f->qmp, F_OK), -1);
        qemu_caps_free(&c);
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

/* unplugged-inaccessible of a virtio-mem device left at its default on machine type. */
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
        pid_t pid;
        int pidfd, fd;

        snprintf(qmp_arg, sizeof(qmp_arg), "socket,id=dm-qmp,path=%s,server=on,wait=off", f->qmp);
        unlink(f->qmp);
        assert_int_equal(qemu_proc_spawn(argv, f->log_fd, &pid), 0);
        assert_true((pidfd = pidfd_open(pid, 0)) >= 0);
        fd = qemu_proc_qmp_handshake(f->qmp, pidfd, 30000);
        if (fd < 0)
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
        close(pidfd);
        unlink(f->qmp);
        return r;
}

static void the_machine_type_rule_is_qemus_own(void **state)
{
        struct fixture *f = *state;
        struct qemu_caps c;
        struct qemu_features ft;
        char err[256] = "";
        /* Around the boundary (8.1), the newest of each family, and one well before it. */
        const char *types[] = {"pc",         "q35",        "pc-i440fx-8.0", "pc-i440fx-8.1",
                               "pc-q35-8.0", "pc-q35-8.1", "pc-i440fx-7.2"};
        unsigned tried = 0;

        if (qemu_probe_run(f->binary, f->qmp, f->log_fd, &c, err, sizeof(err)) < 0)
                fail_msg("probe: %s", err);
        for (size_t i = 0; i < sizeof(types) / sizeof(*types); i++) {
                if (qemu_caps_choose(&c, types[i], true, &ft, err, sizeof(err)) < 0)
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
        qemu_caps_free(&c);
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

static void answers_are_cached_per_binary(void **state)
{
        struct fixture *f = *state;
        struct qemu_backend qb = {0};
        const struct qemu_caps *a, *b;
        char wrapper[512], count[512], err[256] = "";
        FILE *fp;

        /* A wrapper that counts its runs: the probe is the only thing running it. */
        snprintf(wrapper, sizeof(wrapper), "%s/qemu", f->dir);
        snprintf(count, sizeof(count), "%s/runs", f->dir);
        assert_non_null(fp = fopen(wrapper, "w"));
        fprintf(fp, "#!/bin/sh\necho run >> '%s'\nexec '%s' \"$@\"\n", count, f->binary);
        fclose(fp);
        assert_int_equal(chmod(wrapper, 0755), 0);

        if (qemu_probe_cached(&qb, wrapper, f->qmp, f->log_fd, &a, err, sizeof(err)) < 0)
                fail_msg("probe: %s", err);
        assert_int_equal(qemu_probe_cached(&qb, wrapper, f->qmp, f->log_fd, &b, err, sizeof(err)),
                         0);
        assert_ptr_equal(a, b);
        assert_int_equal(count_lines(count), 1);

        /* The binary changes (an upgrade): asked again. */
        struct timespec times[2] = {{.tv_nsec = UTIME_OMIT}, {.tv_sec = 1000000000}};
        assert_int_equal(utimensat(AT_FDCWD, wrapper, times, 0), 0);
        assert_int_equal(qemu_probe_cached(&qb, wrapper, f->qmp, f->log_fd, &b, err, sizeof(err)),
                         0);
        assert_int_equal(count_lines(count), 2);
        assert_true(b->version[0] >= 7);

        /* Another binary is another entry. */
        assert_int_equal(qemu_probe_cached(&qb, f->binary, f->qmp, f->log_fd, &a, err, sizeof(err)),
                         0);
        assert_int_equal(qb.n_probes, 2);
        assert_memory_equal(a->version, b->version, sizeof(a->version));
        qemu_probe_cache_free(&qb);
}

/* ---- unhappy paths ---- */

static int probe_error(struct fixture *f, const char *binary, char *err, size_t len)
{
        struct qemu_caps c;
        int r = qemu_probe_run(binary, f->qmp, f->log_fd, &c, err, len);

        if (r == 0)
                qemu_caps_free(&c);
        print_message("# %s: %s\n", binary, r < 0 ? err : "answered");
        return r;
}

static void exits_lies_and_hangups_fail_the_probe(void **state)
{
        struct fixture *f = *state;
        const char *src = getenv("DYNMEM_SOURCE_ROOT");
        char liar[512], err[256];

        assert_non_null(src);
        snprintf(liar, sizeof(liar), "%s/tests/qemu/lying-qemu.py", src);

        assert_true(probe_error(f, "/bin/false", err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "QEMU exited"));

        setenv("LYING_QEMU_MODE", "version", 1);
        assert_int_equal(probe_error(f, liar, err, sizeof(err)), -EPROTO);
        assert_non_null(strstr(err, "query-version: an answer of the wrong shape"));

        setenv("LYING_QEMU_MODE", "machines", 1);
        assert_int_equal(probe_error(f, liar, err, sizeof(err)), -EPROTO);
        assert_non_null(strstr(err, "query-machines: an answer of the wrong shape"));

        setenv("LYING_QEMU_MODE", "hangup", 1);
        assert_true(probe_error(f, liar, err, sizeof(err)) < 0);
        assert_non_null(strstr(err, "query-version: QMP connection"));

        /* The truth-teller in between still works, and nothing is left running. */
        unsetenv("LYING_QEMU_MODE");
        assert_int_equal(probe_error(f, liar, err, sizeof(err)), 0);
        assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
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
