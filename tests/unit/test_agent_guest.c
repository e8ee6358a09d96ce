/*
 * Tests for the guest agent's own parts (guest/agent/, compiled in here) that
 * need no port and no host: the throttle against a fake cgroup v2 tree under a
 * temporary root (util_set_root), as tests/agent/test_throttle_local.py lays it
 * out, but driven sample by sample with its own clock.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "throttle.h"
#include "util.h"

#define MIB ((uint64_t)1 << 20)

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

        throttle_run(&t, true, total, short_avail, free, now);
        assert_true(t.engaged);
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "314572800");

        for (now += THROTTLE_LOOK_MS; now < 1000 + THROTTLE_MAX_MS; now += THROTTLE_LOOK_MS)
                throttle_run(&t, true, total, short_avail, free, now);
        throttle_run(&t, true, total, short_avail, free, now);
        assert_false(t.engaged);
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "max");

        /* Still at its maximum, still stalling: not throttled again, however long. */
        for (unsigned i = 0; i < 300; i++) {
                now += THROTTLE_LOOK_MS;
                throttle_run(&t, true, total, short_avail, free, now);
                assert_false(t.engaged);
        }
        get("/sys/fs/cgroup/user.slice/memory.high", high, sizeof(high));
        assert_string_equal(high, "max");

        /* The guest has room again; a later shortage throttles as before. */
        throttle_run(&t, false, total, total / THROTTLE_ROOM_DIV, free, now += THROTTLE_LOOK_MS);
        assert_false(t.engaged);
        throttle_run(&t, true, total, short_avail, free, now += THROTTLE_LOOK_MS);
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
        throttle_run(&t, true, total, short_avail, free, now);
        assert_true(t.engaged);
        throttle_run(&t, true, total, short_avail, free, now += THROTTLE_MAX_MS);
        assert_false(t.engaged);
        throttle_run(&t, true, total + 128 * MIB, short_avail, free, now += THROTTLE_LOOK_MS);
        assert_true(t.engaged);
        throttle_close(&t);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(throttle_lifted_in_time_stays_off_until_room, make_root,
                                            remove_root),
            cmocka_unit_test_setup_teardown(throttle_engages_again_once_memory_came, make_root,
                                            remove_root),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
