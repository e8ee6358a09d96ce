/*
 * Tests for dynmemd's extra cycles (daemon/wake.c) on a whole daemon set up
 * by daemon_init() from a configuration with a one-minute interval, so that
 * any cycle seen within the test is an extra one: a backend's wakeup runs a
 * cycle before the regular one; requests made while one is pending are
 * merged; a request a cycle has answered in the meantime is dropped; a
 * flood of requests runs no more cycles than the token bucket allows.
 */
#include <errno.h>
#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon.h"
#include "log.h"
#include "wake.h"

#define WAIT_MS 10000.0 /* generous: the machine is shared */

struct fixture {
        char dir[64];
        struct daemon d;
};

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char path[128];
        FILE *fp;

        assert_non_null(f);
        snprintf(f->dir, sizeof(f->dir), "/tmp/dynmem-wake-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(path, sizeof(path), "%s/dynmem.conf", f->dir);
        fp = fopen(path, "w");
        assert_non_null(fp);
        fprintf(fp,
                "[host]\nsocket = %s/run/s.sock\nstate_dir = %s/state\nmemory = 8G\n"
                "interval = 60s\n",
                f->dir, f->dir);
        fclose(fp);
        log_setup("test-wake", LOG_TARGET_STDERR, LOG_WARNING);
        struct daemon_options opt = {.config_path = path};
        assert_int_equal(daemon_init(&f->d, &opt), 0);
        /* the first cycle runs at once */
        while (f->d.cycles == 0)
                event_base_loop(f->d.base, EVLOOP_ONCE);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;
        char cmd[128];

        daemon_fini(&f->d);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        assert_int_equal(system(cmd), 0);
        free(f);
        return 0;
}

/* Run the loop until the cycle count passes `after` or WAIT_MS pass. */
static void loop_until_cycle(struct daemon *d, uint64_t after)
{
        double end = mono_ms_exact() + WAIT_MS;

        while (d->cycles <= after && mono_ms_exact() < end)
                event_base_loop(d->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
}

static void a_wakeup_runs_a_cycle_before_the_regular_one(void **state)
{
        struct fixture *f = *state;
        struct daemon *d = &f->d;
        uint64_t before = d->cycles;
        struct wake_stats s;

        wake_request(d);
        loop_until_cycle(d, before);
        assert_true(d->cycles == before + 1);
        assert_true(mono_ms_exact() < d->deadline_ms); /* the regular one is a minute away */
        wake_stats(d, &s);
        assert_true(s.requests == 1 && s.cycles == 1 && s.dropped == 0);
}

static void requests_while_one_is_pending_are_merged(void **state)
{
        struct fixture *f = *state;
        struct daemon *d = &f->d;
        uint64_t before = d->cycles;
        struct wake_stats s;

        for (int i = 0; i < 10; i++)
                wake_request(d);
        loop_until_cycle(d, before);
        /* one more turn of the loop: nothing else is due */
        event_base_loop(d->base, EVLOOP_NONBLOCK);
        assert_true(d->cycles == before + 1);
        wake_stats(d, &s);
        assert_true(s.requests == 10 && s.cycles == 1 && s.dropped == 9);
}

static void a_request_a_cycle_answered_is_dropped(void **state)
{
        struct fixture *f = *state;
        struct daemon *d = &f->d;
        struct wake_stats s;

        wake_request(d);
        daemon_cycle(d); /* e.g. the regular cycle got there first */
        uint64_t after = d->cycles;
        double end = mono_ms_exact() + 500.0;
        while (mono_ms_exact() < end) /* the pending request fires and is dropped */
                event_base_loop(d->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        assert_true(d->cycles == after);
        wake_stats(d, &s);
        assert_true(s.requests == 1 && s.cycles == 0 && s.dropped == 1);
}

static void a_flood_is_rate_limited(void **state)
{
        struct fixture *f = *state;
        struct daemon *d = &f->d;
        double start = mono_ms_exact(), elapsed;
        uint64_t before = d->cycles, requests = 0;
        struct wake_stats s;

        while ((elapsed = mono_ms_exact() - start) < 1000.0) {
                wake_request(d);
                requests++;
                event_base_loop(d->base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        }
        wake_stats(d, &s);
        uint64_t extra = d->cycles - before;
        print_message("# %llu requests in %.0f ms ran %llu extra cycles\n",
                      (unsigned long long)requests, elapsed, (unsigned long long)extra);
        assert_true(requests > 100);
        assert_true(extra >= 1);
        /* the bucket: at most a burst plus the sustained rate over the time it ran */
        assert_true((double)extra <= WAKE_BURST + WAKE_RATE * (elapsed + 1.0) / 1000.0 + 1.0);
        assert_true(s.cycles == extra && s.requests == requests);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(a_wakeup_runs_a_cycle_before_the_regular_one, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(requests_while_one_is_pending_are_merged, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(a_request_a_cycle_answered_is_dropped, setup, teardown),
            cmocka_unit_test_setup_teardown(a_flood_is_rate_limited, setup, teardown),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
