/*
 * Tests for the QEMU backend with real guests under TCG: start, plug and
 * unplug with virtio-mem, balloon below startup, QEMU killed, reattach from
 * a fresh backend, qcow2 (with a backing file) and raw disks, and starts
 * that must fail with a clear reason. Prints
 * the latencies it sees as TAP comments.
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
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "qemu.h"
#include "qemu_int.h"
#include "qemu_launch.h"
#include "qtest.h"
#include "units.h"

#define WAIT_MS (120 * 1000) /* generous: TCG on a shared, busy machine */

struct fixture {
        struct event_base *base;
        char *dir;
        char run[256], state[256];
        int wakeups;
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

        assert_int_equal(qemu_backend_new(NULL, &env, &b, err, sizeof(err)), 0);
        return b;
}

static int setup(void **state)
{
        struct fixture *f = calloc(1, sizeof(*f));

        f->base = event_base_new();
        f->dir = qt_tempdir();
        snprintf(f->run, sizeof(f->run), "%s/run", f->dir);
        snprintf(f->state, sizeof(f->state), "%s/state", f->dir);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fixture *f = *state;

        qt_kill_leftovers(f->run);
        event_base_free(f->base);
        qt_rmtree(f->dir);
        free(f);
        return 0;
}

/* ---- waiting for conditions ---- */

struct watch {
        struct backend *b;
        struct qt_vm *t;
        uint64_t bytes;
        struct vm_observation obs;
        struct qemu_vm_info info;
        const char *needle;
        uint64_t since_ms; /* sampled_since(): statistics the guest took from then on */
};

static void refresh(struct watch *w)
{
        w->b->ops->observe(w->b, &w->t->vm, mono_ms(), &w->obs);
        qemu_backend_vm_info(&w->t->vm, &w->info);
}

static bool assigned_is(void *arg)
{
        struct watch *w = arg;

        refresh(w);
        return w->obs.alive && w->info.memory_known && w->obs.assigned_bytes == w->bytes;
}

static bool is_dead(void *arg)
{
        struct watch *w = arg;

        refresh(w);
        return !w->obs.alive;
}

static bool demand_known(void *arg)
{
        struct watch *w = arg;

        refresh(w);
        return w->obs.demand_known && w->info.memory_known;
}

static bool features_confirmed(void *arg)
{
        struct watch *w = arg;

        refresh(w);
        return w->info.features.confirmed;
}

static bool console_has(void *arg)
{
        struct watch *w = arg;

        return qt_file_contains(w->info.console_log, w->needle);
}

static bool memtotal_at_least(void *arg)
{
        struct watch *w = arg;

        return qt_console_memtotal(w->info.console_log) >= w->bytes;
}

static bool memtotal_below(void *arg)
{
        struct watch *w = arg;
        uint64_t m = qt_console_memtotal(w->info.console_log);

        return m > 0 && m < w->bytes;
}

/* The backend said `rebooted`; counts the observations that did. */
static bool reboot_seen(void *arg)
{
        struct watch *w = arg;

        refresh(w);
        w->bytes += w->obs.rebooted;
        return w->bytes > 0;
}

static bool console_count_at_least(void *arg)
{
        struct watch *w = arg;

        return qt_file_count(w->info.console_log, w->needle) >= w->bytes;
}

static void wait_for(struct fixture *f, bool (*cond)(void *), struct watch *w, const char *what)
{
        if (!qt_loop_until(f->base, cond, w, WAIT_MS))
                fail_msg("timed out waiting for %s (assigned %llu, plugged %llu, actual %llu)",
                         what, (unsigned long long)w->obs.assigned_bytes,
                         (unsigned long long)w->info.plugged_bytes,
                         (unsigned long long)w->info.balloon_actual_bytes);
}

static bool sampled_since(void *arg)
{
        struct watch *w = arg;

        refresh(w);
        return w->obs.demand_known && w->obs.demand_time_ms >= w->since_ms;
}

/*
 * Run the loop for ms, and on until the backend has read balloon statistics the
 * guest took within that time: a window for what must not happen that a loaded
 * machine cannot leave without the backend at work in it.
 */
static void watch_for(struct fixture *f, struct watch *w, uint64_t ms)
{
        w->since_ms = mono_ms();
        qt_loop_for(f->base, ms);
        wait_for(f, sampled_since, w, "balloon statistics taken in the window");
}

/* Start a configured VM and wait for the guest's ready line; returns ms to ready. */
static uint64_t boot(struct fixture *f, struct backend *b, struct qt_vm *t, struct watch *w)
{
        uint64_t t0 = mono_ms(), t1;
        char err[256] = "";

        *w = (struct watch){.b = b, .t = t};
        if (qt_start(f->base, b, &t->vm, err, sizeof(err)) < 0)
                fail_msg("start: %s", err);
        t1 = mono_ms();
        refresh(w);
        assert_true(w->obs.alive);
        assert_int_equal(w->obs.assigned_bytes, t->vm.settings.startup_bytes);
        w->needle = "dynmem-guest-image: ready";
        wait_for(f, console_has, w, "the guest's ready line");
        print_message("# vm %s: start() returned in %llu ms, guest ready %llu ms after start\n",
                      t->vm.name, (unsigned long long)(t1 - t0),
                      (unsigned long long)(mono_ms() - t0));
        return mono_ms() - t0;
}

/*
 * What the VM's QEMU runs, as the QEMU in PATH should give it: the newest pc
 * machine type of its version, unplugged-inaccessible as that machine type
 * defaults it (on from 8.1), dynamic-memslots from 8.2 on.
 */
static void check_features(struct fixture *f, struct watch *w)
{
        const struct qemu_features *ft = &w->info.features;
        unsigned v[3];
        char machine[64];

        assert_true(qt_qemu_version(v));
        wait_for(f, features_confirmed, w, "QEMU to confirm its version and options");
        print_message("# QEMU %u.%u.%u: machine %s, unplugged-inaccessible %s, "
                      "dynamic-memslots %s\n",
                      ft->version[0], ft->version[1], ft->version[2], ft->machine,
                      ft->unplugged_inaccessible == QEMU_SWITCH_ON ? "on" : "off",
                      ft->dynamic_memslots ? "on" : "off");
        char version[32];
        snprintf(version, sizeof(version), "%u.%u.%u", v[0], v[1], v[2]);
        assert_string_equal(w->info.desc.version, version);
        assert_memory_equal(ft->version, v, sizeof(v));
        snprintf(machine, sizeof(machine), "pc-i440fx-%u.%u", v[0], v[1]);
        assert_string_equal(ft->machine, machine);
        assert_true(ft->vmem);
        assert_int_equal(ft->unplugged_inaccessible,
                         qt_version_at_least(v, 8, 1) ? QEMU_SWITCH_ON : QEMU_SWITCH_OFF);
        assert_int_equal(ft->dynamic_memslots, qt_version_at_least(v, 8, 2));
        assert_int_equal(ft->run_with_user, qt_version_at_least(v, 9, 1));
}

static bool settled(void *arg)
{
        struct watch *w = arg;

        refresh(w);
        return !w->info.desc.resizing;
}

/*
 * Ask for target and wait until assigned is there; returns the ms it took.
 * describe() says a resize is in flight from the request until its requests
 * are met.
 */
static uint64_t resize(struct fixture *f, struct watch *w, uint64_t target, const char *what)
{
        uint64_t t0 = mono_ms(), took;

        assert_int_equal(w->b->ops->set_target(w->b, &w->t->vm, target, t0), 0);
        refresh(w);
        assert_true(w->info.desc.resizing || w->obs.assigned_bytes == target);
        w->bytes = target;
        wait_for(f, assigned_is, w, what);
        took = mono_ms() - t0;
        wait_for(f, settled, w, "the resize's requests to be met");
        return took;
}

/* ---- tests ---- */

static const char grow_ini[] = "[vm \"grow\"]\n"
                               "dynamic = yes\n"
                               "startup = 256M\n"
                               "minimum = 128M\n"
                               "maximum = 1G\n"
                               "append = dynmem.debug=1\n";

static void grows_shrinks_balloons_and_dies(void **state)
{
        struct fixture *f = *state;
        struct backend *b = new_backend(f);
        struct qt_vm t;
        struct watch w;
        char err[256];
        struct stat st;

        assert_int_equal(qt_vm_configure(&t, b, grow_ini, err, sizeof(err)), 0);
        boot(f, b, &t, &w);
        assert_true(strstr(w.info.desc.accelerator, "tcg") ||
                    strstr(w.info.desc.accelerator, "kvm"));
        /* the first 2 MiB block is plugged from the start, not boot RAM (qemu_layout) */
        assert_int_equal(w.info.vmem_region_bytes, 770 * MIB);
        check_features(f, &w);
        wait_for(f, demand_known, &w, "balloon statistics");
        /* What describe() says of a running VM without an agent. */
        unsigned major, minor, micro;
        assert_true(w.info.desc.pid > 1);
        assert_int_equal(sscanf(w.info.desc.version, "%u.%u.%u", &major, &minor, &micro), 3);
        assert_true(major >= 7);
        assert_string_equal(w.info.desc.signal, "balloon");
        assert_non_null(w.info.desc.agent_state);
        assert_int_equal(w.info.desc.agent_version, 0);
        assert_false(w.info.desc.resizing);
        assert_true(w.obs.host_rss_bytes > 16 * MIB);
        assert_true(w.obs.demand_bytes > 0 && w.obs.demand_bytes < 256 * MIB);
        print_message("# balloon statistics: demand %llu MiB, MemTotal %llu MiB, available %llu "
                      "MiB; QEMU RSS %llu MiB\n",
                      (unsigned long long)(w.obs.demand_bytes / MIB),
                      (unsigned long long)(w.obs.guest_visible_bytes / MIB),
                      (unsigned long long)(w.obs.guest_available_bytes / MIB),
                      (unsigned long long)(w.obs.host_rss_bytes / MIB));
        assert_int_equal(w.obs.assigned_bytes, 256 * MIB);
        w.bytes = 1;
        wait_for(f, memtotal_at_least, &w, "the guest's MemTotal line");
        uint64_t memtotal = qt_console_memtotal(w.info.console_log);

        uint64_t plug = resize(f, &w, 768 * MIB, "plugging 512 MiB");
        assert_int_equal(w.info.plugged_bytes, 514 * MIB);
        assert_int_equal(w.info.balloon_actual_bytes, 254 * MIB);
        w.bytes = memtotal + 500 * MIB;
        wait_for(f, memtotal_at_least, &w, "MemTotal to grow by 512 MiB");

        uint64_t unplug = resize(f, &w, 256 * MIB, "unplugging 512 MiB");
        assert_int_equal(w.info.plugged_bytes, 2 * MIB);
        w.bytes = memtotal + 16 * MIB;
        wait_for(f, memtotal_below, &w, "MemTotal to shrink back");

        uint64_t inflate = resize(f, &w, 192 * MIB, "the balloon to take 64 MiB");
        assert_int_equal(w.info.balloon_actual_bytes, 192 * MIB);
        assert_int_equal(w.info.plugged_bytes, 0);
        assert_int_equal(w.info.requested_bytes, 0);
        uint64_t deflate = resize(f, &w, 256 * MIB, "the balloon to give it back");
        print_message("# plug 512 MiB %llu ms, unplug 512 MiB %llu ms, balloon -64 MiB %llu ms, "
                      "+64 MiB %llu ms (as the backend sees it)\n",
                      (unsigned long long)plug, (unsigned long long)unplug,
                      (unsigned long long)inflate, (unsigned long long)deflate);

        /* Targets beyond the layout are clamped, never reported above maximum. */
        resize(f, &w, 1 * GIB, "growing to maximum");
        assert_int_equal(b->ops->set_target(b, &t.vm, 64 * GIB, mono_ms()), 0);
        wait_for(f, settled, &w, "the clamped request to be met");
        watch_for(f, &w, 1500);
        assert_true(w.obs.assigned_bytes <= 1 * GIB);

        int before = f->wakeups;
        uint64_t killed = mono_ms();
        assert_int_equal(kill((pid_t)w.info.desc.pid, SIGKILL), 0);
        wait_for(f, is_dead, &w, "the backend to see QEMU die");
        print_message("# kill -9 seen after %llu ms\n", (unsigned long long)(mono_ms() - killed));
        assert_true(f->wakeups > before);
        assert_int_equal(b->ops->set_target(b, &t.vm, 512 * MIB, mono_ms()), -ESRCH);
        char qmp[512];
        snprintf(qmp, sizeof(qmp), "%s/grow.qmp", f->run);
        assert_int_equal(stat(qmp, &st), -1);
        qt_vm_release(&t, b);
        b->ops->destroy(b);
}

/*
 * system_reset through the backend's own QMP connection, as a guest reboot does
 * it; once the backend reports the reboot, the startup size is asked for (what
 * the balancer does then), and the new boot runs until its ready line.
 */
static void reset_guest(struct fixture *f, struct watch *w)
{
        unsigned ready = qt_file_count(w->info.console_log, "dynmem-guest-image: ready");
        uint64_t startup = w->t->vm.settings.startup_bytes;

        assert_int_equal(qemu_monitor_simple(w->t->vm.backend_data, "system_reset"), 0);
        w->bytes = 0;
        wait_for(f, reboot_seen, w, "the backend to report the reboot");
        assert_false(w->obs.demand_known); /* the previous boot's figures are gone */
        assert_true(w->obs.assigned_bytes <= startup);
        assert_int_equal(w->info.plugged_bytes, 0);
        assert_int_equal(w->b->ops->set_target(w->b, &w->t->vm, startup, mono_ms()), 0);
        w->needle = "dynmem-guest-image: ready";
        w->bytes = ready + 1;
        wait_for(f, console_count_at_least, w, "the guest's second ready line");
        refresh(w);
}

/* The guest's MemTotal once it has printed it twice more (dynmem.debug=1, every 2 s). */
static uint64_t fresh_memtotal(struct fixture *f, struct watch *w)
{
        w->needle = "MemTotal=";
        w->bytes = qt_file_count(w->info.console_log, "MemTotal=") + 2;
        wait_for(f, console_count_at_least, w, "two more MemTotal lines");
        return qt_console_memtotal(w->info.console_log);
}

static const char reset_ini[] = "[vm \"reset\"]\n"
                                "dynamic = yes\n"
                                "startup = 256M\n"
                                "minimum = 128M\n"
                                "maximum = 1G\n"
                                "append = dynmem.debug=1\n";

/*
 * A reset drops what the guest said of its previous boot and empties virtio-mem
 * (QEMU unplugs on a reset): the backend says `rebooted` once, with the startup
 * size. Asked for the startup size then (as the balancer does), the new boot
 * sees its boot memory only, not what was plugged into the old one; a balloon
 * inflated before the reset is let go.
 */
static void a_reset_reports_a_reboot_at_the_startup_size(void **state)
{
        struct fixture *f = *state;
        struct backend *b = new_backend(f);
        struct qt_vm t;
        struct watch w;
        char err[256];

        assert_int_equal(qt_vm_configure(&t, b, reset_ini, err, sizeof(err)), 0);
        boot(f, b, &t, &w);
        uint64_t memtotal = fresh_memtotal(f, &w);
        resize(f, &w, 768 * MIB, "plugging 512 MiB");
        w.bytes = memtotal + 500 * MIB;
        wait_for(f, memtotal_at_least, &w, "MemTotal to grow by 512 MiB");

        reset_guest(f, &w);
        /* SeaBIOS resets the machine once more after a reset: one reboot, RESET twice. */
        uint64_t resets = w.info.guest_resets;
        assert_true(resets >= 1);
        /* Nothing of the old boot's 512 MiB: the first block only, as at the first boot. */
        assert_int_equal(w.info.requested_bytes, 2 * MIB);
        assert_true(w.info.plugged_bytes <= 2 * MIB);
        assert_int_equal(w.obs.assigned_bytes, 256 * MIB);
        uint64_t after = fresh_memtotal(f, &w);
        print_message("# MemTotal %llu MiB at the first boot, %llu MiB after the reset\n",
                      (unsigned long long)(memtotal / MIB), (unsigned long long)(after / MIB));
        assert_int_equal(after, memtotal);

        resize(f, &w, 192 * MIB, "the balloon to take 64 MiB");
        reset_guest(f, &w);
        w.bytes = 256 * MIB;
        wait_for(f, assigned_is, &w, "the balloon let go after the reset");
        /* The balloon holds nothing of the base RAM (startup less the first block). */
        assert_int_equal(w.info.balloon_actual_bytes, 256 * MIB - 2 * MIB);
        assert_true(w.info.guest_resets > resets);
        assert_int_equal(b->ops->stop(b, &t.vm, true, mono_ms()), 0);
        wait_for(f, is_dead, &w, "a forced stop");
        qt_vm_release(&t, b);
        b->ops->destroy(b);
}

static const char again_ini[] = "[vm \"again\"]\n"
                                "dynamic = yes\n"
                                "startup = 256M\n"
                                "minimum = 128M\n"
                                "maximum = 512M\n";

static void reattaches_from_a_fresh_backend(void **state)
{
        struct fixture *f = *state;
        struct backend *a = new_backend(f), *b;
        struct qt_vm t;
        struct watch w;
        char err[256];

        assert_int_equal(qt_vm_configure(&t, a, again_ini, err, sizeof(err)), 0);
        boot(f, a, &t, &w);
        resize(f, &w, 384 * MIB, "plugging 128 MiB");
        pid_t pid = (pid_t)w.info.desc.pid;

        /* The daemon goes away; the guest keeps running. */
        a->ops->destroy(a);
        assert_null(t.vm.backend_data);
        assert_int_equal(kill(pid, 0), 0);

        b = new_backend(f);
        assert_int_equal(b->ops->configure_vm(b, &t.vm, &t.cfg, &t.cfg.vms[0], err, sizeof(err)),
                         0);
        t.vm.obs.assigned_bytes = 0;
        assert_int_equal(b->ops->reattach(b, &t.vm, mono_ms()), 0);
        w.b = b;
        w.bytes = 384 * MIB;
        wait_for(f, assigned_is, &w, "the reattached VM's memory");
        assert_int_equal((pid_t)w.info.desc.pid, pid);
        assert_true(w.info.qmp_ready);
        /* What it runs comes from the running QEMU alone (no probe before a reattach). */
        wait_for(f, features_confirmed, &w, "the reattached QEMU's version and options");
        unsigned v[3];
        assert_true(qt_qemu_version(v));
        assert_memory_equal(w.info.features.version, v, sizeof(v));
        assert_int_equal(w.info.features.dynamic_memslots, qt_version_at_least(v, 8, 2));
        assert_int_equal(w.info.features.unplugged_inaccessible,
                         qt_version_at_least(v, 8, 1) ? QEMU_SWITCH_ON : QEMU_SWITCH_OFF);
        assert_string_equal(w.info.features.run_with_why, QEMU_RUN_WITH_UNUSED);
        /* Found running, it keeps what it has until asked. */
        watch_for(f, &w, 2500);
        assert_int_equal(w.obs.assigned_bytes, 384 * MIB);
        assert_int_equal(b->ops->max_honourable(b, &t.vm), 512 * MIB);
        assert_int_equal(b->ops->reattach(b, &t.vm, mono_ms()), 0);

        resize(f, &w, 256 * MIB, "unplugging after reattach");
        assert_int_equal(b->ops->stop(b, &t.vm, true, mono_ms()), 0);
        wait_for(f, is_dead, &w, "a forced stop");
        assert_int_equal(b->ops->reattach(b, &t.vm, mono_ms()), -ENOENT);
        qt_vm_release(&t, b);
        b->ops->destroy(b);
}

/* Configure ini (the image's paths filled in) and return start()'s error. */
static int start_error(struct fixture *f, const char *ini, char *err, size_t len)
{
        struct backend *b = new_backend(f);
        struct qt_vm t;
        int r;

        assert_int_equal(qt_vm_configure(&t, b, ini, err, len), 0);
        r = qt_start(f->base, b, &t.vm, err, len);
        if (r == 0)
                b->ops->stop(b, &t.vm, true, mono_ms());
        qt_vm_release(&t, b);
        b->ops->destroy(b);
        return r;
}

/*
 * err begins with the cause (start) and names no VM: whoever shows it names
 * the VM ("web4: kernel ...").
 */
static void assert_cause_alone(const char *err, const char *start)
{
        print_message("# %s\n", err);
        if (strncmp(err, start, strlen(start)) != 0)
                fail_msg("\"%s\" does not begin with \"%s\"", err, start);
        assert_null(strstr(err, "vm \""));
}

static void start_failures_say_the_cause_without_the_vm(void **state)
{
        struct fixture *f = *state;
        char err[256];

        assert_true(start_error(f, "[vm \"nokernel\"]\nkernel = /nonexistent/vmlinuz\n", err,
                                sizeof(err)) < 0);
        assert_cause_alone(err, "kernel /nonexistent/vmlinuz: No such file or directory");

        assert_true(start_error(f, "[vm \"noqemu\"]\nqemu = /nonexistent/qemu-system-x86_64\n", err,
                                sizeof(err)) < 0);
        assert_cause_alone(err, "QEMU binary /nonexistent/qemu-system-x86_64: ");

        assert_true(
            start_error(f, "[vm \"oldmachine\"]\nmachine = pc-i440fx-1.0\n", err, sizeof(err)) < 0);
        assert_cause_alone(err, "QEMU ");
        assert_non_null(strstr(err, "has no machine type \"pc-i440fx-1.0\""));
        assert_null(strstr(err, "oldmachine"));

        assert_true(start_error(f, "[vm \"baddev\"]\nqemu_args = -device no-such-device\n", err,
                                sizeof(err)) < 0);
        assert_cause_alone(err, "QEMU exited at start: ");
        assert_non_null(strstr(err, "no-such-device"));
        assert_null(strstr(err, "baddev"));

        /* QEMU, as its own user, loads the kernel dynmemd opened: it must be able to read it. */
        struct backend *b = new_backend(f);
        const struct qemu_identity *id = qemu_backend_identity(b);
        bool switched = id && id->switched && !id->problem[0] && id->uid != 0;
        b->ops->destroy(b);
        if (!switched) {
                print_message("# not checked: QEMU runs as this test's own user here\n");
                return;
        }
        char ini[512], kernel[300];
        snprintf(kernel, sizeof(kernel), "%s/private-vmlinuz", f->dir);
        FILE *k = fopen(kernel, "w");
        assert_non_null(k);
        fputs("not a kernel: never read\n", k);
        fclose(k);
        assert_int_equal(chmod(kernel, 0600), 0);
        snprintf(ini, sizeof(ini), "[vm \"private\"]\nkernel = %s\n", kernel);
        assert_true(start_error(f, ini, err, sizeof(err)) < 0);
        assert_cause_alone(err, "kernel ");
        assert_non_null(strstr(err, ": Permission denied (as user "));
}

static void check_vm_reports_file_and_line(void **state)
{
        struct fixture *f = *state;
        struct backend *b = new_backend(f);
        struct config cfg;
        struct config_diag diag = {0};
        const char *ini = "[vm \"mem\"]\n"
                          "startup = 256M\n"
                          "qemu_args = -display none -m 4G\n"
                          "kernel = /nonexistent/vmlinuz\n"
                          "cpus = 0\n";

        assert_int_equal(config_load_string("test.ini", ini, &cfg, &diag), 0);
        assert_int_equal(b->ops->check_vm(b, &cfg, &cfg.vms[0], &diag), -EINVAL);
        bool args = false, kernel = false, cpus = false;
        for (size_t i = 0; i < diag.count; i++) {
                print_message("# %s\n", diag.messages[i]);
                args |= strstr(diag.messages[i], "test.ini:3: vm \"mem\": qemu_args") &&
                        strstr(diag.messages[i], "-m");
                kernel |= strstr(diag.messages[i], "test.ini:4: vm \"mem\": kernel "
                                                   "/nonexistent/vmlinuz") != NULL;
                cpus |= strstr(diag.messages[i], "test.ini:5: vm \"mem\": cpus") != NULL;
        }
        assert_true(args && kernel && cpus);
        config_diag_free(&diag);
        config_free(&cfg);
        b->ops->destroy(b);
}

static void stop_escalates_when_the_guest_ignores_power_off(void **state)
{
        struct fixture *f = *state;
        struct backend *b = new_backend(f);
        struct qt_vm t;
        struct watch w = {.b = b, .t = &t};
        char err[256];

        assert_int_equal(qt_vm_configure(&t, b, "[vm \"stubborn\"]\nshutdown_timeout = 500ms\n",
                                         err, sizeof(err)),
                         0);
        assert_int_equal(qt_start(f->base, b, &t.vm, err, sizeof(err)), 0);
        assert_int_equal(b->ops->stop(b, &t.vm, false, mono_ms()), 0);
        wait_for(f, is_dead, &w, "power-off, then quit");
        qt_vm_release(&t, b);
        b->ops->destroy(b);
}

/*
 * A qcow2 overlay: QEMU reopens the disk read-only while it opens the qcow2
 * and needs its backing file, which it cannot find by name from the fdset.
 */
static void qcow2_overlay_and_raw_disks_are_accepted(void **state)
{
        static const char *const disks[] = {"over.qcow2", "solo.qcow2", "disk.raw"};
        struct fixture *f = *state;
        char cmd[1024], ini[512], err[256];

        if (system("qemu-img --version >/dev/null 2>&1") != 0)
                skip();
        snprintf(
            cmd, sizeof(cmd),
            "cd '%s' && { qemu-img create -f qcow2 base.qcow2 64M && qemu-img create -f "
            "qcow2 -b base.qcow2 -F qcow2 over.qcow2 && qemu-img create -f qcow2 solo.qcow2 1M && "
            "qemu-img create -f raw disk.raw 1M; } >/dev/null 2>&1",
            f->dir);
        assert_int_equal(system(cmd), 0);
        for (size_t i = 0; i < sizeof(disks) / sizeof(*disks); i++) {
                snprintf(ini, sizeof(ini), "[vm \"disk%zu\"]\ndisk = %s/%s\n", i, f->dir, disks[i]);
                int r = start_error(f, ini, err, sizeof(err));
                if (r < 0)
                        print_message("# %s: %s\n", disks[i], err);
                assert_int_equal(r, 0);
        }
}

int main(void)
{
        char why[512] = "";
        struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(check_vm_reports_file_and_line, setup, teardown),
            cmocka_unit_test_setup_teardown(start_failures_say_the_cause_without_the_vm, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(qcow2_overlay_and_raw_disks_are_accepted, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(stop_escalates_when_the_guest_ignores_power_off, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(grows_shrinks_balloons_and_dies, setup, teardown),
            cmocka_unit_test_setup_teardown(reattaches_from_a_fresh_backend, setup, teardown),
            cmocka_unit_test_setup_teardown(a_reset_reports_a_reboot_at_the_startup_size, setup,
                                            teardown),
        };

        signal(SIGPIPE, SIG_IGN);
        if (!qt_guest_image(why, sizeof(why))) {
                printf("1..0 # SKIP %s\n", why);
                return 0;
        }
        /* The second QEMU's set runs a chosen few (DYNMEM_TEST_CASES, tests/meson.build). */
        size_t n = qt_select_cases(tests, sizeof(tests) / sizeof(*tests));
        return _cmocka_run_group_tests("tests", tests, n, NULL, NULL);
}
