/*
 * Tests for the QEMU backend with the guest agent, real guests under TCG:
 * two VMs booted once for all tests, "agent" from the bundled image built
 * with dynmem-guest and dynmem-load, "plain" from the same image without
 * them (its port is there, nobody answers). The backend's observation
 * switches to agent-sourced demand that tracks what dynmem-load holds, the
 * stall share stays within 0..1, a PSI-triggered report wakes the loop and
 * marks the next observation (stall_urgent), a closed connection is made
 * again, a daemon restart (a fresh backend reattaching) reconnects the agent,
 * and the plain guest stays on the balloon statistics throughout.
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

#include "qemu.h"
#include "qtest.h"
#include "units.h"

#define WAIT_MS (150 * 1000) /* generous: two TCG guests on a shared, busy machine */

/* Up to 100 MiB, hold it 10 s, then climb toward the OOM killer (the guest stalls first). */
#define LOAD     "dynmem.load=ramp:100M:3s,hold:10s,ramp:240M:6s,hold:2s,ramp:40M:1s,loop"
#define HOLD_MIB 100

enum { AGENT, PLAIN, N_VMS };

struct fixture {
        struct event_base *base;
        char *dir;
        char run[256], state[256];
        char agent_image[1024];
        struct backend *b;
        struct qt_vm t[N_VMS];
        int wakeups;

        /* every observation checked as it is taken */
        struct vm_observation obs[N_VMS];
        struct qemu_vm_info info[N_VMS];
        unsigned stall_seen, stall_bad, plain_balloon, plain_not_balloon;
        char plain_bad_source[16];
        uint64_t since;                    /* a condition's reference count */
        unsigned hold_lines, hold_repeats; /* load_settled(): the console's load lines then */
};

static void on_wakeup(void *userdata)
{
        ((struct fixture *)userdata)->wakeups++;
}

static struct backend *new_backend(struct fixture *f)
{
        struct backend_env env = {.base = f->base,
                                  .run_dir = f->run,
                                  .state_dir = f->state,
                                  .wakeup = on_wakeup,
                                  .wakeup_userdata = f};
        struct backend *b = NULL;
        char err[256];

        setenv(QEMU_GUEST_IMAGE_ENV, f->agent_image, 1);
        assert_int_equal(qemu_backend_new(NULL, &env, &b, err, sizeof(err)), 0);
        return b;
}

static void configure(struct fixture *f, int i)
{
        char err[256];

        assert_int_equal(f->b->ops->configure_vm(f->b, &f->t[i].vm, &f->t[i].cfg,
                                                 &f->t[i].cfg.vms[0], err, sizeof(err)),
                         0);
}

/* Observe both VMs and check what must hold at every observation. */
static void refresh(struct fixture *f)
{
        for (int i = 0; i < N_VMS; i++) {
                f->b->ops->observe(f->b, &f->t[i].vm, mono_ms(), &f->obs[i]);
                qemu_backend_vm_info(&f->t[i].vm, &f->info[i]);
                if (f->obs[i].stall_known) {
                        f->stall_seen++;
                        f->stall_bad +=
                            !(f->obs[i].stall_fraction >= 0.0 && f->obs[i].stall_fraction <= 1.0);
                }
        }
        const char *src = f->info[PLAIN].desc.signal;
        if (strcmp(src, "balloon") == 0) {
                f->plain_balloon++;
        } else if (f->obs[PLAIN].demand_known) {
                f->plain_not_balloon++;
                snprintf(f->plain_bad_source, sizeof(f->plain_bad_source), "%s", src);
        }
}

static void wait_for(struct fixture *f, bool (*cond)(void *), const char *what)
{
        if (!qt_loop_until(f->base, cond, f, WAIT_MS))
                fail_msg("timed out waiting for %s (agent: source %s, state %s, %llu reports, "
                         "%llu connects)",
                         what, f->info[AGENT].desc.signal, f->info[AGENT].desc.agent_state,
                         (unsigned long long)f->info[AGENT].agent.reports,
                         (unsigned long long)f->info[AGENT].agent_connects);
}

/* ---- conditions ---- */

static bool both_ready(void *arg)
{
        struct fixture *f = arg;

        refresh(f);
        return qt_file_contains(f->info[AGENT].console_log, "dynmem-guest-image: ready") &&
               qt_file_contains(f->info[PLAIN].console_log, "dynmem-guest-image: ready");
}

static bool agent_sourced(void *arg)
{
        struct fixture *f = arg;

        refresh(f);
        return strcmp(f->info[AGENT].desc.signal, "agent") == 0 && f->obs[AGENT].demand_known;
}

/* dynmem-load has held HOLD_MIB for 3 console lines; f->since = the reports so far. */
static bool load_settled(void *arg)
{
        struct fixture *f = arg;
        uint64_t held, target;
        unsigned repeats;

        refresh(f);
        f->since = f->info[AGENT].agent.reports;
        f->hold_lines = qt_file_count(f->info[AGENT].console_log, "dynmem-load: holding ");
        /* Early in the 10 s hold, so that it still holds when the next reports come. */
        return qt_console_load(f->info[AGENT].console_log, &held, &target, &repeats) == 0 &&
               held == (uint64_t)HOLD_MIB * MIB && target == held &&
               (f->hold_repeats = repeats) >= 3 && repeats <= 6;
}

/*
 * The hold load_settled() saw goes on: every load line since is one more of it.
 * On a loaded machine the reports can come after its 10 s.
 */
static bool still_the_same_hold(struct fixture *f, uint64_t *held, uint64_t *target)
{
        unsigned repeats,
            lines = qt_file_count(f->info[AGENT].console_log, "dynmem-load: holding ");

        assert_int_equal(qt_console_load(f->info[AGENT].console_log, held, target, &repeats), 0);
        return repeats >= f->hold_repeats && repeats - f->hold_repeats == lines - f->hold_lines;
}

/* Two reports newer than f->since, the observation agent-sourced. */
static bool reports_after(void *arg)
{
        struct fixture *f = arg;

        refresh(f);
        return f->info[AGENT].agent.reports >= f->since + 2 &&
               strcmp(f->info[AGENT].desc.signal, "agent") == 0;
}

static bool urgent_after(void *arg)
{
        struct fixture *f = arg;

        refresh(f);
        return f->info[AGENT].agent.urgent > f->since;
}

static bool plain_on_balloon(void *arg)
{
        struct fixture *f = arg;

        refresh(f);
        return f->plain_balloon > 0 && f->info[PLAIN].agent_connected;
}

/* ---- the two VMs, booted once ---- */

static const char agent_ini[] = "[vm \"agent\"]\n"
                                "dynamic = yes\n"
                                "startup = 256M\n"
                                "minimum = 128M\n"
                                "maximum = 512M\n"
                                "append = " LOAD "\n";

static int group_teardown(void **state);

/* A failed setup leaves nothing running: cmocka runs no teardown after it. */
static int setup_failed(struct fixture *f, const char *what, const char *why)
{
        printf("# %s: %s\n", what, why);
        group_teardown((void **)&f);
        return -1;
}

static int group_setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));
        char why[512] = "", cmdline[512] = "", path[2048], ini[4096], err[256];
        const char *agent = qt_guest_image_built(true, why, sizeof(why));
        const char *plain = agent ? qt_guest_image_built(false, why, sizeof(why)) : NULL;
        FILE *c;

        if (!agent || !plain) {
                printf("# no guest image: %s\n", why);
                free(f);
                return -1;
        }
        snprintf(f->agent_image, sizeof(f->agent_image), "%s", agent);
        snprintf(path, sizeof(path), "%s/cmdline", plain);
        if ((c = fopen(path, "re"))) {
                if (fgets(cmdline, sizeof(cmdline), c))
                        cmdline[strcspn(cmdline, "\n")] = '\0';
                fclose(c);
        }
        snprintf(ini, sizeof(ini),
                 "[vm \"plain\"]\ndynamic = yes\nstartup = 256M\nminimum = 128M\n"
                 "maximum = 512M\nkernel = %s/vmlinuz\ninitrd = %s/initrd.img\nappend = %s\n",
                 plain, plain, cmdline);
        f->base = event_base_new();
        f->dir = qt_tempdir();
        snprintf(f->run, sizeof(f->run), "%s/run", f->dir);
        snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
        f->b = new_backend(f);
        if (qt_vm_configure(&f->t[AGENT], f->b, agent_ini, err, sizeof(err)) < 0 ||
            qt_vm_configure(&f->t[PLAIN], f->b, ini, err, sizeof(err)) < 0)
                return setup_failed(f, "configure", err);
        uint64_t t0 = mono_ms();
        for (int i = 0; i < N_VMS; i++)
                if (f->b->ops->start(f->b, &f->t[i].vm, t0, err, sizeof(err)) < 0)
                        return setup_failed(f, "start", err);
        if (!qt_loop_until(f->base, both_ready, f, WAIT_MS))
                return setup_failed(f, "boot", "the guests did not print their ready line");
        *state = f;
        printf("# both guests ready %llu ms after start\n", (unsigned long long)(mono_ms() - t0));
        return 0;
}

static int group_teardown(void **state)
{
        struct fixture *f = *state;

        if (!f)
                return 0;
        for (int i = 0; i < N_VMS; i++)
                if (f->t[i].vm.name[0])
                        qt_vm_release(&f->t[i], f->b);
        if (f->b)
                f->b->ops->destroy(f->b);
        qt_kill_leftovers(f->run);
        event_base_free(f->base);
        qt_rmtree(f->dir);
        free(f);
        return 0;
}

/* ---- tests, in order, on the same two guests ---- */

static void demand_switches_to_the_agent_and_tracks_the_load(void **state)
{
        struct fixture *f = *state;
        uint64_t t0 = mono_ms(), held, target;

        wait_for(f, agent_sourced, "agent-sourced demand");
        print_message("# agent-sourced demand %llu ms after both guests were ready: %llu MiB, "
                      "agent %s, caps 0x%x\n",
                      (unsigned long long)(mono_ms() - t0),
                      (unsigned long long)(f->obs[AGENT].demand_bytes / MIB),
                      f->info[AGENT].desc.agent_state, f->info[AGENT].desc.agent_caps);
        assert_string_equal(f->info[AGENT].desc.agent_state, "ready");
        assert_int_equal(f->info[AGENT].desc.agent_version, 1);
        assert_true(f->info[AGENT].desc.agent_caps & AGENT_CAP_PSI);
        assert_true(f->obs[AGENT].guest_visible_known &&
                    f->obs[AGENT].guest_visible_bytes <= 256 * MIB);

        /* Two reports within one hold: the next hold of the plan's loop when they came late. */
        for (uint64_t t1 = mono_ms();; assert_true(mono_ms() - t1 < WAIT_MS)) {
                wait_for(f, load_settled, "dynmem-load to hold 100 MiB");
                wait_for(f, reports_after, "reports while the load holds");
                if (still_the_same_hold(f, &held, &target))
                        break;
                print_message("# the hold ended before two reports came: the next hold\n");
        }
        uint64_t demand = f->obs[AGENT].demand_bytes;
        print_message("# dynmem-load holds %llu MiB; agent demand %llu MiB, MemTotal %llu MiB, "
                      "MemAvailable %llu MiB\n",
                      (unsigned long long)(held / MIB), (unsigned long long)(demand / MIB),
                      (unsigned long long)(f->obs[AGENT].guest_visible_bytes / MIB),
                      (unsigned long long)(f->obs[AGENT].guest_available_bytes / MIB));
        assert_int_equal(held, HOLD_MIB * MIB); /* still in the hold */
        assert_int_equal(target, held);
        /*
         * The guest's own use (kernel, RAM-disk root, init, the agent) comes on top, ~30 MiB,
         * and so does what its kernel keeps out of MemTotal (at most 256 MiB - MemTotal).
         */
        assert_true(demand >= held);
        assert_true(demand <= held + 64 * MIB + (256 * MIB - f->obs[AGENT].guest_visible_bytes));
}

static void a_psi_report_wakes_the_loop(void **state)
{
        struct fixture *f = *state;
        uint64_t t0 = mono_ms();

        refresh(f);
        f->since = f->info[AGENT].agent.urgent;
        int before = f->wakeups;
        wait_for(f, urgent_after, "a PSI-triggered report (the load climbs toward OOM)");
        print_message("# PSI-triggered report after %llu ms; stall %s%.4f\n",
                      (unsigned long long)(mono_ms() - t0),
                      f->obs[AGENT].stall_known ? "" : "unknown ", f->obs[AGENT].stall_fraction);
        /* Nothing else wakes the loop while both QEMUs run. */
        assert_true(f->wakeups > before);
        assert_true((uint64_t)(f->wakeups - before) <= f->info[AGENT].agent.urgent - f->since);
        /* The observation after it says the stall was reported as it began; the next does not. */
        assert_true(f->obs[AGENT].stall_urgent == f->obs[AGENT].stall_known);
        refresh(f);
        assert_false(f->obs[AGENT].stall_urgent);
}

static void the_stall_share_is_within_0_and_1(void **state)
{
        struct fixture *f = *state;

        refresh(f);
        print_message("# %u observations with a stall share, %u outside 0..1\n", f->stall_seen,
                      f->stall_bad);
        assert_true(f->stall_seen > 0);
        assert_int_equal(f->stall_bad, 0);
}

static void a_closed_connection_is_made_again(void **state)
{
        struct fixture *f = *state;

        refresh(f);
        uint64_t connects = f->info[AGENT].agent_connects;
        uint64_t reports = f->info[AGENT].agent.reports;
        assert_int_equal(qemu_backend_agent_drop(&f->t[AGENT].vm), 0);
        refresh(f);
        assert_false(f->info[AGENT].agent_connected);
        assert_string_equal(f->info[AGENT].desc.agent_state, "disconnected");
        f->since = reports;
        wait_for(f, reports_after, "reports on a new connection");
        assert_int_equal(f->info[AGENT].agent_connects, connects + 1);
        assert_string_equal(f->info[AGENT].desc.agent_state, "ready");
        print_message("# reconnected; %llu reports in all\n",
                      (unsigned long long)f->info[AGENT].agent.reports);
}

static void a_guest_without_an_agent_stays_on_balloon_statistics(void **state)
{
        struct fixture *f = *state;

        wait_for(f, plain_on_balloon, "the plain guest's balloon statistics");
        print_message("# plain guest: %u balloon-sourced observations, %u otherwise (%s); "
                      "hellos sent %llu, lines heard %llu\n",
                      f->plain_balloon, f->plain_not_balloon, f->plain_bad_source,
                      (unsigned long long)f->info[PLAIN].agent.hellos_sent,
                      (unsigned long long)f->info[PLAIN].agent.lines);
        assert_int_equal(f->plain_not_balloon, 0);
        assert_true(f->obs[PLAIN].demand_known);
        assert_string_equal(f->info[PLAIN].desc.agent_state, "waiting");
        assert_int_equal(f->info[PLAIN].agent.lines, 0);
        assert_int_equal(f->info[PLAIN].agent.hellos_sent, 1); /* never written to again */
}

static void a_restarted_daemon_reconnects_the_agent(void **state)
{
        struct fixture *f = *state;

        /* The daemon goes away; the guests keep running. A new one reattaches. */
        f->b->ops->destroy(f->b);
        f->b = new_backend(f);
        for (int i = 0; i < N_VMS; i++) {
                configure(f, i);
                assert_int_equal(f->b->ops->reattach(f->b, &f->t[i].vm, mono_ms()), 0);
        }
        f->plain_balloon = 0;
        f->since = 0;
        wait_for(f, reports_after, "the reattached VM's agent reports");
        assert_int_equal(f->info[AGENT].agent_connects, 1);
        wait_for(f, plain_on_balloon, "the reattached plain guest's balloon statistics");
        assert_int_equal(f->plain_not_balloon, 0);
        print_message("# after reattach: agent demand %llu MiB, plain guest on %s\n",
                      (unsigned long long)(f->obs[AGENT].demand_bytes / MIB),
                      f->info[PLAIN].desc.signal);
}

int main(void)
{
        struct CMUnitTest tests[] = {
            cmocka_unit_test(demand_switches_to_the_agent_and_tracks_the_load),
            cmocka_unit_test(a_psi_report_wakes_the_loop),
            cmocka_unit_test(the_stall_share_is_within_0_and_1),
            cmocka_unit_test(a_closed_connection_is_made_again),
            cmocka_unit_test(a_guest_without_an_agent_stays_on_balloon_statistics),
            cmocka_unit_test(a_restarted_daemon_reconnects_the_agent),
        };
        char why[512] = "";

        signal(SIGPIPE, SIG_IGN);
        if (!qt_guest_image_built(true, why, sizeof(why)) ||
            !qt_guest_image_built(false, why, sizeof(why))) {
                printf("1..0 # SKIP %s\n", why);
                return 0;
        }
        /* The second QEMU's set runs a chosen few (DYNMEM_TEST_CASES, tests/meson.build). */
        size_t n = qt_select_cases(tests, sizeof(tests) / sizeof(*tests));
        return _cmocka_run_group_tests("tests", tests, n, group_setup, group_teardown);
}
