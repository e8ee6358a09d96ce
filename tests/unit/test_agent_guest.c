/*
 * Tests for the guest agent's own parts (guest/agent/, compiled in here) that
 * need no port and no host: the throttle against a fake cgroup v2 tree under a
 * temporary root (util_set_root), as tests/agent/test_throttle_local.py lays it
 * out, but driven sample by sample with its own clock; the absorber's drains
 * (under a test root a drain's child runs no swapoff and exits at once); and
 * dropping a capability for good (caps.h), in a child of this test.
 */
#include <errno.h>
#include <linux/capability.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "absorber.h"
#include "caps.h"
#include "throttle.h"
#include "util.h"

#define MIB     ((uint64_t)1 << 20)
#define HOST    true  /* throttle_run(): a host is connected that can plug memory */
#define NO_HOST false /* ... none is */

static char tmp_root[256];

/* root + rel, with its folders made, holding text. */
static void put(const char *rel, const char *text)
{
        char path[512];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", tmp_root, rel);
        for (char *p = path + strlen(tmp_root) + 1; (p = strchr(p, '/')); p++) {
                *p = '\0';
                mkdir(path, 0755);
                *p = '/';
        }
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void get(const char *rel, char *buf, size_t len)
{
        assert_true(util_read_file(rel, buf, len) > 0);
        buf[strcspn(buf, "\n")] = '\0';
}

static int make_root(void **state)
{
        (void)state;
        snprintf(tmp_root, sizeof(tmp_root), "/tmp/dynmem-guest-unit-XXXXXX");
        assert_non_null(mkdtemp(tmp_root));
        util_set_root(tmp_root);
        return 0;
}

static int remove_root(void **state)
{
        char cmd[300];

        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
        assert_int_equal(system(cmd), 0);
        util_set_root("");
        return 0;
}

/* A systemd guest's tree: the agent in its service, one workload cgroup holding 300 MiB. */
static void make_cgroups(void)
{
        put("proc/self/cgroup", "0::/system.slice/dynmem-guest.service\n");
        put("sys/fs/cgroup/cgroup.subtree_control", "cpu memory pids\n");
        put("sys/fs/cgroup/system.slice/dynmem-guest.service/memory.high", "max\n");
        put("sys/fs/cgroup/system.slice/dynmem-guest.service/memory.current", "5242880\n");
        put("sys/fs/cgroup/user.slice/memory.high", "max\n");
        put("sys/fs/cgroup/user.slice/memory.current", "314572800\n");
}

/*
 * A guest at its maximum: the throttle is lifted after THROTTLE_MAX_MS with nothing come,
 * and a stall that follows, still short, does not engage it again (the guest gets its usual
 * OOM handling back); once the guest has had room, a new shortage engages it again.
 */
static void throttle_lifted_in_time_stays_off_until_room(void **state)
{
        const uint64_t total = 1024 * MIB, short_avail = 8 * MIB, free = 40 * MIB;
        struct throttle t;
        char high[32];
        uint64_t now = 1000;

        (void)state;
        make_cgroups();
        assert_true(throttle_open(&t, THROTTLE_ROOT, false));
        assert_int_equal(t.count, 1);

        throttle_run(&t, HOST, true, total, short_avail, free, now);
        assert_true(t.engaged);
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "314572800");

        for (now += THROTTLE_LOOK_MS; now < 1000 + THROTTLE_MAX_MS; now += THROTTLE_LOOK_MS)
                throttle_run(&t, HOST, true, total, short_avail, free, now);
        throttle_run(&t, HOST, true, total, short_avail, free, now);
        assert_false(t.engaged);
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "max");

        /* Still at its maximum, still stalling: not throttled again, however long. */
        for (unsigned i = 0; i < 300; i++) {
                now += THROTTLE_LOOK_MS;
                throttle_run(&t, HOST, true, total, short_avail, free, now);
                assert_false(t.engaged);
        }
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "max");

        /* The guest has room again; a later shortage throttles as before. */
        throttle_run(&t, HOST, false, total, total / THROTTLE_ROOM_DIV, free,
                     now += THROTTLE_LOOK_MS);
        assert_false(t.engaged);
        throttle_run(&t, HOST, true, total, short_avail, free, now += THROTTLE_LOOK_MS);
        assert_true(t.engaged);
        throttle_close(&t);
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "max");
}

/* Lifted in time with nothing come, then memory is plugged: a new shortage engages at once. */
static void throttle_engages_again_once_memory_came(void **state)
{
        const uint64_t total = 1024 * MIB, short_avail = 8 * MIB, free = 40 * MIB;
        struct throttle t;
        uint64_t now = 1000;

        (void)state;
        make_cgroups();
        assert_true(throttle_open(&t, THROTTLE_ROOT, false));
        throttle_run(&t, HOST, true, total, short_avail, free, now);
        assert_true(t.engaged);
        throttle_run(&t, HOST, true, total, short_avail, free, now += THROTTLE_MAX_MS);
        assert_false(t.engaged);
        throttle_run(&t, HOST, true, total + 128 * MIB, short_avail, free, now += THROTTLE_LOOK_MS);
        assert_true(t.engaged);
        throttle_close(&t);
}

/*
 * The throttle on the fake cgroup tree, with the folder its note for a successor goes
 * in; note: that note's path.
 */
static void open_noting(struct throttle *t, char *note)
{
        make_cgroups();
        assert_non_null(util_path(note, "/run"));
        assert_int_equal(mkdir(note, 0755), 0);
        assert_true(throttle_open(t, THROTTLE_ROOT, false));
        assert_non_null(util_path(note, THROTTLE_STATE_FILE));
}

/*
 * No host connected (none has said hello, or it went away): nobody will plug memory, so a
 * guest that stalls short of it is not throttled, however long; a host that connects and
 * the next stall throttle as before.
 */
static void throttle_only_with_a_host(void **state)
{
        const uint64_t total = 1024 * MIB, short_avail = 8 * MIB, free = 40 * MIB;
        struct throttle t;
        char high[32], note[UTIL_PATH_MAX];
        uint64_t now = 1000;

        (void)state;
        open_noting(&t, note);
        for (unsigned i = 0; i < 300; i++) {
                throttle_run(&t, NO_HOST, true, total, short_avail, free, now += THROTTLE_LOOK_MS);
                assert_false(t.engaged);
        }
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "max");
        assert_int_not_equal(access(note, F_OK), 0); /* nothing noted: nothing limited */

        throttle_run(&t, HOST, true, total, short_avail, free, now += THROTTLE_LOOK_MS);
        assert_true(t.engaged);
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "314572800");
        throttle_close(&t);
}

/*
 * The host goes away while the throttle holds: lifted at once, the limits put back and the
 * note for a successor gone, not 10 s later; the next stall with a host engages again (not
 * held off as after a lift in time).
 */
static void throttle_lifted_at_once_when_the_host_goes(void **state)
{
        const uint64_t total = 1024 * MIB, short_avail = 8 * MIB, free = 40 * MIB;
        struct throttle t;
        char high[32], note[UTIL_PATH_MAX];
        uint64_t now = 1000;

        (void)state;
        open_noting(&t, note);
        throttle_run(&t, HOST, true, total, short_avail, free, now);
        assert_true(t.engaged);
        assert_int_equal(access(note, F_OK), 0);

        throttle_host_gone(&t, now += THROTTLE_LOOK_MS);
        assert_false(t.engaged);
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "max");
        assert_int_not_equal(access(note, F_OK), 0);
        throttle_host_gone(&t, now += THROTTLE_LOOK_MS); /* nothing engaged: nothing to do */
        assert_false(t.engaged);

        /* Back, and the guest still stalls short: throttled again at once. */
        throttle_run(&t, HOST, true, total, short_avail, free, now += THROTTLE_LOOK_MS);
        assert_true(t.engaged);
        /* A sample that finds no host (the agent forgot it) lifts it too. */
        throttle_run(&t, NO_HOST, true, total, short_avail, free, now += THROTTLE_LOOK_MS);
        assert_false(t.engaged);
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "max");
        throttle_close(&t);
}

/* A drain's child that has failed (swapoff refused): reaped by absorber_run() at now_ms. */
static void drain_fails(struct absorber *a, uint64_t now_ms)
{
        pid_t pid = fork();

        assert_true(pid >= 0);
        if (pid == 0)
                _exit(1);
        a->drain_pid = pid;
        a->drain_started_ms = now_ms;
        waitid(P_PID, (id_t)pid, &(siginfo_t){0}, WEXITED | WNOWAIT); /* exited, not reaped */
        absorber_run(a, NULL, 0, 0, now_ms);
        assert_int_equal(a->drain_pid, 0);
}

/* Reap a drain absorber_run() started (under the test root its child exits 0 at once). */
static void drain_done(struct absorber *a, uint64_t now_ms)
{
        assert_true(a->drain_pid > 0);
        waitid(P_PID, (id_t)a->drain_pid, &(siginfo_t){0}, WEXITED | WNOWAIT);
        absorber_run(a, NULL, 0, 0, now_ms);
        assert_int_equal(a->drain_pid, 0);
}

/*
 * A swapoff that keeps failing (say, one an administrator's swapoff beat): each failure in a
 * row doubles the wait before the next drain, up to ABSORBER_RETRY_MAX_MS, instead of a fork
 * and a log line every second for as long as the absorber holds pages; a drain that works
 * starts the count again.
 */
static void failed_drains_back_off(void **state)
{
        const uint64_t total = 1024 * MIB, room = 512 * MIB;
        struct absorber_fill f = {.stored = 10 * MIB, .ram = 2 * MIB, .capacity = 1024 * MIB};
        struct absorber a = {.dev = 0, .active = true, .mm_stat_fd = -1, .page_size = 4096};
        uint64_t now = 10000;

        (void)state;
        assert_false(util_root_is_real());
        drain_fails(&a, now);
        assert_int_equal(a.drain_failures, 1);
        drain_fails(&a, now += ABSORBER_DRAIN_GAP_MS);
        /* The second failure in a row: the next drain waits two gaps, not one. */
        absorber_run(&a, &f, total, room, now + ABSORBER_DRAIN_GAP_MS);
        assert_int_equal(a.drain_pid, 0);
        absorber_run(&a, &f, total, room, now + 2 * ABSORBER_DRAIN_GAP_MS);
        drain_done(&a, now += 2 * ABSORBER_DRAIN_GAP_MS);
        assert_int_equal(a.drains, 1);

        /* Failing on and on: never more often than ABSORBER_RETRY_MAX_MS apart in the end. */
        for (unsigned i = 0; i < 12; i++) {
                drain_fails(&a, now);
                now = a.next_drain_ms;
        }
        drain_fails(&a, now);
        assert_int_equal(a.next_drain_ms - now, ABSORBER_RETRY_MAX_MS);
        absorber_run(&a, &f, total, room, now + ABSORBER_RETRY_MAX_MS - 1);
        assert_int_equal(a.drain_pid, 0);
        absorber_run(&a, &f, total, room, now + ABSORBER_RETRY_MAX_MS);
        drain_done(&a, now + ABSORBER_RETRY_MAX_MS);

        /* After a drain that worked, a failure waits one gap again. */
        drain_fails(&a, now += 2 * ABSORBER_RETRY_MAX_MS);
        assert_int_equal(a.next_drain_ms - now, ABSORBER_DRAIN_GAP_MS);
}

/*
 * caps_keep_only() of all but CAP_SYS_ADMIN, as the agent drops it when its absorber goes off
 * for good: it leaves the permitted and effective sets, the others stay as they were, and it
 * cannot be raised again. In a child, which holds what this test holds (as root: CAP_SYS_ADMIN
 * among them); skipped without it. The child's exit status names the first step that went wrong.
 */
static void a_dropped_capability_does_not_come_back(void **state)
{
        const uint64_t admin = CAPS_BIT(CAP_SYS_ADMIN);
        uint64_t permitted = caps_permitted(), effective = caps_effective();
        const char *what;
        int status;
        pid_t pid;

        (void)state;
        if (!(permitted & admin) || !(effective & admin))
                skip();
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0)
                _exit(caps_keep_only(permitted & ~admin, &what) != 0      ? 1
                      : caps_permitted() != (permitted & ~admin)          ? 2
                      : caps_effective() != (effective & ~admin)          ? 3
                      : caps_set_effective(CAP_SYS_ADMIN, true) != -EPERM ? 4
                      : caps_keep_only(permitted & ~admin, &what) != 0    ? 5 /* again: no-op */
                      : caps_permitted() != (permitted & ~admin)          ? 6
                                                                          : 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_true(caps_permitted() & admin); /* this process still holds it */
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(throttle_lifted_in_time_stays_off_until_room, make_root,
                                            remove_root),
            cmocka_unit_test_setup_teardown(throttle_engages_again_once_memory_came, make_root,
                                            remove_root),
            cmocka_unit_test_setup_teardown(throttle_only_with_a_host, make_root, remove_root),
            cmocka_unit_test_setup_teardown(throttle_lifted_at_once_when_the_host_goes, make_root,
                                            remove_root),
            cmocka_unit_test_setup_teardown(failed_drains_back_off, make_root, remove_root),
            cmocka_unit_test(a_dropped_capability_does_not_come_back),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
