/*
 * Tests for the balancer loop driving the real sim backend on small
 * in-memory scenarios (traces written to a temporary directory): starts,
 * the order of shrinks and grows, the counters, refused and waiting starts,
 * crashes, an external policy, a loan reaching the VM, and the host's memory
 * never exceeded.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "balancer.h"
#include "sim.h"
#include "testutil.h"

#define MAX_VMS    8
#define MAX_EVENTS 4096

struct event {
        enum balancer_event_kind kind;
        size_t vm; /* index, or SIZE_MAX */
        uint64_t bytes;
        uint64_t tick;
        char message[200];
};

struct rig {
        char *dir;
        struct config cfg;
        struct backend *backend;
        struct balancer bal;
        struct vm vms[MAX_VMS];
        struct vm *ptrs[MAX_VMS];
        size_t n;
        uint64_t tick, now, step;
        struct event events[MAX_EVENTS];
        size_t n_events;
        /* what the test saw of each VM's assigned memory, to check the counters */
        bool seen_holding[MAX_VMS];
        uint64_t seen_assigned[MAX_VMS], seen_added[MAX_VMS], seen_removed[MAX_VMS];
};

static void on_event(const struct balancer_event *ev, void *userdata)
{
        struct rig *r = userdata;

        assert_true(r->n_events < MAX_EVENTS);
        struct event *e = &r->events[r->n_events++];
        *e = (struct event){.kind = ev->kind, .vm = SIZE_MAX, .bytes = ev->bytes, .tick = r->tick};
        if (ev->vm)
                e->vm = (size_t)(ev->vm - r->vms);
        if (ev->message)
                snprintf(e->message, sizeof(e->message), "%s", ev->message);
        assert_int_equal(ev->time_ms, r->now);
}

static int rig_setup(void **state)
{
        struct rig *r = calloc(1, sizeof(*r));

        if (!r)
                return -1;
        r->dir = tu_tempdir();
        r->step = 1000;
        *state = r;
        return 0;
}

static int rig_teardown(void **state)
{
        struct rig *r = *state;

        balancer_fini(&r->bal);
        if (r->backend)
                r->backend->ops->destroy(r->backend);
        config_free(&r->cfg);
        tu_rmtree(r->dir);
        free(r);
        return 0;
}

/* Write a trace file; returns nothing, the scenario names it as @DIR@/name. */
static void trace(struct rig *r, const char *name, const char *rows)
{
        char *text = NULL;

        assert_true(asprintf(&text, "seconds,demand\n%s", rows) > 0);
        free(tu_write(r->dir, name, text, false));
        free(text);
}

/* Replace every @DIR@ in text with the rig's directory; caller frees. */
static char *with_dir(const struct rig *r, const char *text)
{
        size_t cap = strlen(text) * 2 + 64 * strlen(r->dir) + 1, len = 0;
        char *out = malloc(cap);

        assert_non_null(out);
        for (const char *p = text; *p;) {
                if (strncmp(p, "@DIR@", 5) == 0) {
                        len += (size_t)sprintf(out + len, "%s", r->dir);
                        p += 5;
                } else {
                        out[len++] = *p++;
                }
                assert_true(len + strlen(r->dir) < cap);
        }
        out[len] = '\0';
        return out;
}

/* Load a scenario, build the VMs and the loop like dynmem-sim does. */
static void rig_load(struct rig *r, const char *scenario, const char *policy, bool wait)
{
        struct config_diag d = {0};
        char err[256];
        char *text = with_dir(r, scenario);

        if (config_load_string("rig.ini", text, &r->cfg, &d) < 0) {
                tu_diag_print(&d);
                fail_msg("scenario does not load");
        }
        free(text);
        assert_int_equal(config_check_backend_keys(&r->cfg, "sim", sim_backend_ops.vm_keys, &d), 0);
        assert_int_equal(sim_backend_new(&r->cfg, &r->backend, err, sizeof(err)), 0);
        r->n = r->cfg.n_vms;
        assert_true(r->n <= MAX_VMS);
        for (size_t i = 0; i < r->n; i++) {
                struct vm *vm = &r->vms[i];
                snprintf(vm->name, sizeof(vm->name), "%s", r->cfg.vms[i].name);
                vm->settings = r->cfg.vms[i].settings;
                vm_counters_reset(&vm->counters);
                r->ptrs[i] = vm;
                if (r->backend->ops->configure_vm(r->backend, vm, &r->cfg, &r->cfg.vms[i], err,
                                                  sizeof(err)) < 0)
                        fail_msg("configure_vm: %s", err);
        }
        if (balancer_init(&r->bal, policy, &r->cfg.tunables, r->backend, err, sizeof(err)) < 0)
                fail_msg("balancer_init: %s", err);
        r->bal.host.memory_bytes = r->cfg.host.memory_bytes;
        r->bal.host.reserve_bytes = r->cfg.host.reserve_bytes;
        r->bal.refused_starts_wait = wait;
        r->bal.on_event = on_event;
        r->bal.event_userdata = r;
        assert_int_equal(balancer_set_vms(&r->bal, r->ptrs, r->n), 0);
        config_diag_free(&d);
}

static void check_held(struct rig *r)
{
        uint64_t held = sim_backend_held_bytes(r->backend);

        if (held > r->cfg.host.memory_bytes)
                fail_msg("tick %llu: VMs hold %llu bytes, more than the host's %llu",
                         (unsigned long long)r->tick, (unsigned long long)held,
                         (unsigned long long)r->cfg.host.memory_bytes);
}

/* One simulator step, in dynmem-sim's order: judge, decide, move. */
static void rig_step(struct rig *r)
{
        sim_backend_judge(r->backend, r->now, r->step);
        check_held(r);
        assert_int_equal(balancer_tick(&r->bal, r->now), 0);
        for (size_t i = 0; i < r->n; i++) {
                struct vm *vm = &r->vms[i];
                bool holding = vm_holds_memory(vm);
                uint64_t a = vm->obs.assigned_bytes;
                if (holding && r->seen_holding[i]) {
                        if (a > r->seen_assigned[i])
                                r->seen_added[i] += a - r->seen_assigned[i];
                        else
                                r->seen_removed[i] += r->seen_assigned[i] - a;
                }
                /* On a start the baseline is the startup size, which is not an add. */
                r->seen_holding[i] = holding;
                r->seen_assigned[i] = a;
        }
        sim_backend_move(r->backend, r->step);
        check_held(r);
        r->now += r->step;
        r->tick++;
}

static void rig_run(struct rig *r, uint64_t seconds)
{
        for (uint64_t s = 0; s < seconds; s++)
                rig_step(r);
}

static void start_all(struct rig *r)
{
        for (size_t i = 0; i < r->n; i++)
                balancer_request_start(&r->bal, &r->vms[i]);
}

static size_t count_events(const struct rig *r, enum balancer_event_kind kind, size_t vm)
{
        size_t c = 0;

        for (size_t i = 0; i < r->n_events; i++)
                c += r->events[i].kind == kind && (vm == SIZE_MAX || r->events[i].vm == vm);
        return c;
}

static const struct event *find_event(const struct rig *r, enum balancer_event_kind kind, size_t vm)
{
        for (size_t i = 0; i < r->n_events; i++)
                if (r->events[i].kind == kind && r->events[i].vm == vm)
                        return &r->events[i];
        return NULL;
}

/* ---- tests ---- */

static void start_makes_a_vm_run(void **state)
{
        struct rig *r = *state;

        trace(r, "a.csv", "0,700M\n60,700M\n");
        rig_load(r,
                 "[host]\nmemory = 4G\n"
                 "[vm \"a\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\nmaximum = 2G\n"
                 "trace = @DIR@/a.csv\n",
                 "dynmem", true);
        assert_int_equal(r->vms[0].state, VM_OFF);
        start_all(r);
        assert_int_equal(r->vms[0].state, VM_STARTING);
        rig_step(r);
        assert_int_equal(r->vms[0].state, VM_RUNNING);
        assert_int_equal(r->vms[0].obs.assigned_bytes, GIB);
        assert_int_equal(sim_backend_held_bytes(r->backend), GIB);
        const struct event *e = find_event(r, BALANCER_EVENT_STARTED, 0);
        assert_non_null(e);
        assert_int_equal(e->bytes, GIB);
        assert_true(sim_backend_vm_stats(&r->vms[0])->ever_started);

        /* It then settles at demand + buffer: 700 MiB x 1.2 = 840 MiB. */
        rig_run(r, 59);
        assert_int_equal(r->vms[0].obs.assigned_bytes, 840 * MIB);
        assert_int_equal(r->vms[0].target_bytes, 840 * MIB);
        assert_true(sim_backend_vm_stats(&r->vms[0])->vm_ms >= 59000);
        assert_int_equal(sim_backend_vm_stats(&r->vms[0])->short_ms, 0);
}

/* The sim backend, with starts that finish later, as QEMU's do (start_result). */
static int pending_result[2]; /* for VMs "a" and "b" */
static struct backend_ops pending_ops;

static int start_pends(struct backend *b, struct vm *vm, uint64_t now, char *err, size_t len)
{
        int r = sim_backend_ops.start(b, vm, now, err, len);

        return r < 0 ? r : BACKEND_START_PENDING;
}

static int pending_start_result(struct backend *b, struct vm *vm, char *err, size_t len)
{
        int r = pending_result[vm->name[0] == 'b'];

        (void)b;
        if (r < 0)
                snprintf(err, len, "QEMU exited at start: no such device");
        return r;
}

static void start_that_finishes_later(void **state)
{
        struct rig *r = *state;

        trace(r, "a.csv", "0,300M\n60,300M\n");
        rig_load(r,
                 "[host]\nmemory = 4G\n"
                 "[vm \"a\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\nmaximum = 2G\n"
                 "trace = @DIR@/a.csv\n"
                 "[vm \"b\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\nmaximum = 2G\n"
                 "trace = @DIR@/a.csv\n",
                 "dynmem", false);
        pending_ops = *r->backend->ops;
        pending_ops.start = start_pends;
        pending_ops.start_result = pending_start_result;
        r->backend->ops = &pending_ops;
        pending_result[0] = pending_result[1] = 0;
        start_all(r);
        rig_run(r, 5);
        /* Admitted and holding its startup size, but not said to run, and never resized. */
        for (size_t i = 0; i < 2; i++) {
                assert_int_equal(r->vms[i].state, VM_RUNNING);
                assert_true(r->vms[i].start_pending);
                assert_int_equal(r->vms[i].obs.assigned_bytes, GIB);
                assert_int_equal(r->vms[i].target_bytes, GIB);
        }
        assert_int_equal(count_events(r, BALANCER_EVENT_STARTED, SIZE_MAX), 0);
        assert_int_equal(r->bal.counters.remove_operations, 0);
        /* a comes up; b fails. */
        pending_result[0] = 1;
        rig_step(r);
        assert_false(r->vms[0].start_pending);
        assert_int_equal(count_events(r, BALANCER_EVENT_STARTED, 0), 1);
        assert_true(r->vms[1].start_pending);
        pending_result[1] = -EIO;
        rig_step(r);
        assert_int_equal(r->vms[1].state, VM_OFF);
        assert_false(r->vms[1].start_pending);
        assert_int_equal(r->vms[1].obs.assigned_bytes, 0);
        const struct event *e = find_event(r, BALANCER_EVENT_START_FAILED, 1);
        assert_non_null(e);
        assert_non_null(strstr(e->message, "no such device"));
        assert_non_null(strstr(r->vms[1].refusal, "no such device"));
        /* The one that runs is balanced as usual: toward 300 MiB + 20 %. */
        rig_run(r, 60);
        assert_true(r->vms[0].target_bytes < GIB);
        assert_int_equal(count_events(r, BALANCER_EVENT_STARTED, SIZE_MAX), 1);
}

static void shrinks_are_applied_before_grows(void **state)
{
        struct rig *r = *state;

        /* "up" comes first in the VM order, so a loop without the rule would grow first. */
        trace(r, "up.csv", "0,600M\n10,600M\n10.001,2G\n60,2G\n");
        trace(r, "down.csv", "0,2G\n10,2G\n10.001,600M\n60,600M\n");
        rig_load(r,
                 "[host]\nmemory = 16G\n"
                 "[vm \"up\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\nmaximum = 4G\n"
                 "trace = @DIR@/up.csv\n"
                 "[vm \"down\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\nmaximum = 4G\n"
                 "trace = @DIR@/down.csv\n",
                 "hyperv", true);
        start_all(r);
        rig_run(r, 30);
        bool both = false;
        for (uint64_t tick = 0; tick < r->tick; tick++) {
                bool grew = false, shrank = false;
                for (size_t i = 0; i < r->n_events; i++) {
                        const struct event *e = &r->events[i];
                        if (e->tick != tick)
                                continue;
                        if (e->kind == BALANCER_EVENT_ADD)
                                grew = true;
                        if (e->kind == BALANCER_EVENT_REMOVE) {
                                if (grew)
                                        fail_msg("tick %llu: a grow was issued before a shrink",
                                                 (unsigned long long)tick);
                                shrank = true;
                        }
                }
                both |= grew && shrank;
        }
        assert_true(both); /* the case was met */
        assert_true(r->vms[0].obs.assigned_bytes > 2 * GIB);
        assert_true(r->vms[1].obs.assigned_bytes < GIB);
}

/*
 * dynmem's libvirt end-to-end test in numbers: a static VM of 256 MiB and two
 * dynamic ones (weights 8000 and 2000) on 1280 MiB, under the test's reactive
 * policy. While their needs fit (demands of 475 and 472 MiB, measured there
 * with a 400 MiB load), each keeps its need and weight shares only the
 * 76 MiB above them toward the buffers: the heavier is 48 MiB ahead. Once
 * the needs do not fit (590 MiB each), weight decides: the heavier keeps its
 * need and the lighter gets what is left.
 */
static void weight_decides_once_the_needs_do_not_fit(void **state)
{
        struct rig *r = *state;
        const uint64_t mib = MIB;

        trace(r, "plain.csv", "0,100M\n");
        trace(r, "web.csv", "0,475M\n60,475M\n60.001,590M\n");
        trace(r, "db.csv", "0,472M\n60,472M\n60.001,590M\n");
        rig_load(r,
                 "[host]\nmemory = 1280M\n"
                 "[policy]\nshrink_delay = 2s\ntrend_lookahead = 0s\n"
                 "persistence_max_permille = 0\nheadroom_permille = 0\nstall_memory = 0s\n"
                 "[vm \"plain\"]\nstartup = 256M\ntrace = @DIR@/plain.csv\n"
                 "[vm \"web\"]\ndynamic = yes\nstartup = 256M\nminimum = 256M\nmaximum = 1G\n"
                 "weight = 8000\ntrace = @DIR@/web.csv\n"
                 "[vm \"db\"]\ndynamic = yes\nstartup = 256M\nminimum = 256M\nmaximum = 1G\n"
                 "weight = 2000\ntrace = @DIR@/db.csv\n",
                 "dynmem", true);
        start_all(r);
        rig_run(r, 55);
        struct vm *web = &r->vms[1], *db = &r->vms[2];
        assert_true(r->bal.last_summary.scarcity);
        assert_int_equal(r->bal.last_summary.sum_need_bytes, (256 + 476 + 472) * mib);
        assert_int_equal(web->obs.assigned_bytes, 536 * mib); /* need + 60 of the 76 MiB */
        assert_int_equal(db->obs.assigned_bytes, 488 * mib);  /* need + 16 */
        rig_run(r, 60);
        assert_true(r->bal.last_summary.sum_need_bytes > r->cfg.host.memory_bytes);
        assert_int_equal(web->obs.assigned_bytes, 590 * mib); /* its need, all of it */
        assert_int_equal(db->obs.assigned_bytes, (1024 - 590) * mib);
        assert_true(web->obs.assigned_bytes >= db->obs.assigned_bytes + 64 * mib);
}

static void counters_match_what_happened(void **state)
{
        static const char *const policies[] = {"dynmem", "hyperv"};

        for (size_t p = 0; p < 2; p++) {
                struct rig *r = *state;
                if (p) { /* a fresh rig for the second policy */
                        rig_teardown(state);
                        rig_setup(state);
                        r = *state;
                }
                trace(r, "a.csv", "0,300M\n20,1500M\n40,1500M\n60,400M\n100,900M\n150,300M\n");
                trace(r, "b.csv", "0,1G\n30,200M\n70,1800M\n120,600M\n");
                rig_load(r,
                         "[host]\nmemory = 4G\n"
                         "[policy]\nshrink_delay = 5s\n"
                         "[vm \"a\"]\ndynamic = yes\nstartup = 512M\nminimum = 256M\n"
                         "maximum = 2G\ntrace = @DIR@/a.csv\n"
                         "[vm \"b\"]\ndynamic = yes\nstartup = 1G\nminimum = 256M\n"
                         "maximum = 3G\ntrace = @DIR@/b.csv\n",
                         policies[p], true);
                start_all(r);
                rig_run(r, 180);
                uint64_t adds = 0, removes = 0, added = 0, removed = 0;
                for (size_t i = 0; i < r->n; i++) {
                        const struct vm_counters *c = &r->vms[i].counters;
                        assert_int_equal(c->add_operations, count_events(r, BALANCER_EVENT_ADD, i));
                        assert_int_equal(c->remove_operations,
                                         count_events(r, BALANCER_EVENT_REMOVE, i));
                        assert_int_equal(c->added_bytes, r->seen_added[i]);
                        assert_int_equal(c->removed_bytes, r->seen_removed[i]);
                        /* startup + added - removed = what it holds */
                        assert_int_equal(r->vms[i].settings.startup_bytes + c->added_bytes -
                                             c->removed_bytes,
                                         r->vms[i].obs.assigned_bytes);
                        assert_true(c->add_operations > 0 && c->remove_operations > 0);
                        adds += c->add_operations, removes += c->remove_operations;
                        added += c->added_bytes, removed += c->removed_bytes;
                }
                const struct balancer_counters *h = &r->bal.counters;
                assert_int_equal(h->add_operations, adds);
                assert_int_equal(h->remove_operations, removes);
                assert_int_equal(h->added_bytes, added);
                assert_int_equal(h->removed_bytes, removed);
                assert_int_equal(h->crashes, 0);
                assert_int_equal(h->refused_starts, 0);
                uint64_t held = r->vms[0].obs.assigned_bytes + r->vms[1].obs.assigned_bytes;
                assert_int_equal(h->available_bytes, 4 * GIB - held);
                assert_true(h->available_for_balancing_bytes >= h->available_bytes);
        }
}

static void refused_start_waits_or_is_refused(void **state)
{
        struct rig *r = *state;

        trace(r, "a.csv", "0,500M\n");
        trace(r, "b.csv", "0,300M\n");
        rig_load(r,
                 "[host]\nmemory = 1G\n"
                 "[vm \"a\"]\nstartup = 768M\ntrace = @DIR@/a.csv\n"
                 "[vm \"b\"]\nstartup = 512M\ntrace = @DIR@/b.csv\n",
                 "dynmem", true);
        start_all(r);
        rig_run(r, 5);
        /* a runs; b cannot fit next to a's 768 MiB and keeps waiting (the simulator's way). */
        assert_int_equal(r->vms[0].state, VM_RUNNING);
        assert_int_equal(r->vms[1].state, VM_STARTING);
        assert_true(r->vms[1].start_requested);
        assert_non_null(strstr(r->vms[1].refusal, "not enough memory"));
        assert_non_null(strstr(r->vms[1].refusal, "512 MiB"));
        assert_int_equal(r->bal.counters.refused_starts, 0);
        assert_int_equal(count_events(r, BALANCER_EVENT_REFUSED, SIZE_MAX), 0);

        /* a stops: b starts at the next cycle. */
        r->vms[0].state = VM_STOPPING;
        assert_int_equal(r->backend->ops->stop(r->backend, &r->vms[0], false, r->now), 0);
        rig_run(r, 2);
        assert_int_equal(r->vms[0].state, VM_OFF);
        assert_int_equal(r->vms[1].state, VM_RUNNING);
        assert_int_equal(r->bal.counters.crashes, 0);
        assert_int_equal(count_events(r, BALANCER_EVENT_CRASHED, SIZE_MAX), 0);
}

/*
 * Memory promised to a VM waiting in admission is not available for balancing:
 * a peer reads that figure to decide whether to send a VM here.
 */
static void memory_promised_to_a_waiting_start_is_not_available(void **state)
{
        struct rig *r = *state;

        trace(r, "a.csv", "0,500M\n");
        trace(r, "b.csv", "0,300M\n");
        rig_load(r,
                 "[host]\nmemory = 1G\n"
                 "[vm \"a\"]\nstartup = 640M\ntrace = @DIR@/a.csv\n"
                 "[vm \"b\"]\nstartup = 512M\ntrace = @DIR@/b.csv\n",
                 "dynmem", true);
        balancer_request_start(&r->bal, &r->vms[0]);
        rig_run(r, 2);
        assert_int_equal(r->bal.counters.available_bytes, 384 * MIB);
        assert_int_equal(r->bal.counters.available_for_balancing_bytes, 384 * MIB);
        balancer_request_start(&r->bal, &r->vms[1]);
        rig_run(r, 2);
        assert_int_equal(r->vms[1].state, VM_STARTING); /* waits: 512 MiB promised */
        assert_int_equal(r->bal.counters.available_bytes, 384 * MIB);
        assert_int_equal(r->bal.counters.available_for_balancing_bytes, 0);
}

static void refused_start_reports_a_reason(void **state)
{
        struct rig *r = *state;

        trace(r, "a.csv", "0,500M\n");
        trace(r, "b.csv", "0,300M\n");
        rig_load(r,
                 "[host]\nmemory = 1G\n"
                 "[vm \"a\"]\nstartup = 768M\ntrace = @DIR@/a.csv\n"
                 "[vm \"b\"]\nstartup = 512M\ntrace = @DIR@/b.csv\n",
                 "dynmem", false);
        start_all(r);
        rig_step(r);
        /* Refused at once (dynmemd's way), with the reason, and counted. */
        assert_int_equal(r->vms[0].state, VM_RUNNING);
        assert_int_equal(r->vms[1].state, VM_OFF);
        assert_false(r->vms[1].start_requested);
        assert_int_equal(r->bal.counters.refused_starts, 1);
        const struct event *e = find_event(r, BALANCER_EVENT_REFUSED, 1);
        assert_non_null(e);
        assert_non_null(strstr(e->message, "not enough memory: startup 512 MiB does not fit"));
        assert_string_equal(e->message, r->vms[1].refusal);
        rig_run(r, 3);
        assert_int_equal(r->vms[1].state, VM_OFF); /* not retried */
        assert_int_equal(r->bal.counters.refused_starts, 1);
        assert_false(sim_backend_vm_stats(&r->vms[1])->ever_started);
}

static void start_waits_until_memory_is_freed(void **state)
{
        struct rig *r = *state;

        trace(r, "big.csv", "0,600M\n");
        trace(r, "late.csv", "0,700M\n");
        rig_load(r,
                 "[host]\nmemory = 2G\n"
                 "[vm \"big\"]\ndynamic = yes\nstartup = 1792M\nminimum = 512M\nmaximum = 2G\n"
                 "trace = @DIR@/big.csv\n"
                 "[vm \"late\"]\nstartup = 1G\ntrace = @DIR@/late.csv\n",
                 "dynmem", true);
        balancer_request_start(&r->bal, &r->vms[0]);
        rig_run(r, 3);
        balancer_request_start(&r->bal, &r->vms[1]);
        rig_step(r);
        /* 1792 MiB are held: "late" waits while "big" gives memory back. */
        assert_int_equal(r->vms[1].state, VM_STARTING);
        rig_run(r, 20);
        assert_int_equal(r->vms[1].state, VM_RUNNING);
        const struct event *shrink = find_event(r, BALANCER_EVENT_REMOVE, 0);
        const struct event *started = find_event(r, BALANCER_EVENT_STARTED, 1);
        assert_non_null(shrink);
        assert_non_null(started);
        assert_true(shrink->tick < started->tick);
        assert_true(r->vms[0].obs.assigned_bytes + r->vms[1].obs.assigned_bytes <= 2 * GIB);
}

static void crash_is_noticed(void **state)
{
        struct rig *r = *state;

        trace(r, "a.csv", "0,500M\n");
        rig_load(r, "[host]\nmemory = 2G\n[vm \"a\"]\nstartup = 1G\ntrace = @DIR@/a.csv\n",
                 "dynmem", true);
        start_all(r);
        rig_run(r, 2);
        assert_int_equal(r->vms[0].state, VM_RUNNING);
        /* The model dies without being asked to stop. */
        r->backend->ops->stop(r->backend, &r->vms[0], true, r->now);
        rig_step(r);
        assert_int_equal(r->vms[0].state, VM_CRASHED);
        assert_false(vm_holds_memory(&r->vms[0]));
        assert_int_equal(r->bal.counters.crashes, 1);
        const struct event *e = find_event(r, BALANCER_EVENT_CRASHED, 0);
        assert_non_null(e);
        assert_int_equal(e->bytes, GIB);
        assert_int_equal(r->bal.counters.available_bytes, 2 * GIB);
}

/*
 * A backend that reports a guest reboot the way the QEMU backend does: the sim
 * backend's observation once with `rebooted`, what the guest said of its
 * previous boot gone, its memory back to at most its startup size (QEMU empties
 * virtio-mem on a reset). Every set_target is recorded.
 */
static struct backend_ops reboot_ops;
static const struct backend_ops *sim_ops;
static bool reboot_next;
static uint64_t last_set_target;

static int reboot_observe(struct backend *b, struct vm *vm, uint64_t now, struct vm_observation *o)
{
        int r = sim_ops->observe(b, vm, now, o);

        if (r == 0 && reboot_next) {
                reboot_next = false;
                o->rebooted = true;
                o->demand_known = o->stall_known = false;
                if (o->assigned_bytes > vm->settings.startup_bytes)
                        o->assigned_bytes = vm->settings.startup_bytes;
        }
        return r;
}

static int reboot_set_target(struct backend *b, struct vm *vm, uint64_t target, uint64_t now)
{
        last_set_target = target;
        return sim_ops->set_target(b, vm, target, now);
}

static void use_reboot_backend(struct rig *r)
{
        sim_ops = r->backend->ops;
        reboot_ops = *sim_ops;
        reboot_ops.observe = reboot_observe;
        reboot_ops.set_target = reboot_set_target;
        r->backend->ops = &reboot_ops;
        reboot_next = false;
}

/* VM "a" (startup 1G, minimum 512M, maximum 4G) replaying `csv` on the reboot backend. */
static void start_rebooting_vm(struct rig *r, const char *csv)
{
        trace(r, "a.csv", csv);
        rig_load(r,
                 "[host]\nmemory = 8G\n"
                 "[vm \"a\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\nmaximum = 4G\n"
                 "trace = @DIR@/a.csv\n",
                 "dynmem", true);
        use_reboot_backend(r);
        start_all(r);
}

static void a_rebooted_guest_goes_back_to_its_startup_size(void **state)
{
        struct rig *r = *state;

        start_rebooting_vm(r, "0,2G\n600,2G\n");
        rig_run(r, 30);
        struct vm *vm = &r->vms[0];
        assert_true(vm->target_bytes > 2 * GIB);
        r->bal.pv[vm->balancer_slot].memory.correction_permille = 3000; /* something learnt */

        reboot_next = true;
        rig_step(r);
        const struct event *e = find_event(r, BALANCER_EVENT_REBOOTED, 0);
        assert_non_null(e);
        assert_int_equal(e->bytes, GIB);
        assert_int_equal(last_set_target, GIB);
        assert_int_equal(vm->target_bytes, GIB);
        assert_int_equal(r->bal.pv[vm->balancer_slot].memory.correction_permille, 0);
        assert_int_equal(vm->state, VM_RUNNING);
        assert_int_equal(count_events(r, BALANCER_EVENT_REBOOTED, SIZE_MAX), 1);

        /* Once the new boot reports, it grows for its demand as any VM does. */
        rig_run(r, 30);
        assert_true(vm->target_bytes > 2 * GIB);
        assert_int_equal(count_events(r, BALANCER_EVENT_REBOOTED, SIZE_MAX), 1);
}

static void a_rebooted_guest_below_startup_stays_there(void **state)
{
        struct rig *r = *state;

        /* 300 MiB of demand: it holds its 512 MiB minimum, under its 1 GiB startup. */
        start_rebooting_vm(r, "0,300M\n600,300M\n");
        rig_run(r, 120);
        struct vm *vm = &r->vms[0];
        assert_int_equal(vm->target_bytes, 512 * MIB);
        reboot_next = true;
        rig_step(r);
        const struct event *e = find_event(r, BALANCER_EVENT_REBOOTED, 0);
        assert_non_null(e);
        assert_int_equal(e->bytes, 512 * MIB); /* never more than it held: no grab on a reboot */
        assert_int_equal(vm->target_bytes, 512 * MIB);
}

/* ---- a loan: what of the target is lent reaches the VM ---- */

static struct backend_ops evict_ops;
static uint64_t evict_next; /* cache the guest reports evicted at its next observation */

static int evict_observe(struct backend *b, struct vm *vm, uint64_t now, struct vm_observation *o)
{
        int r = sim_ops->observe(b, vm, now, o);

        if (r == 0 && evict_next) {
                o->cache_evicted_bytes = evict_next;
                evict_next = 0;
        }
        return r;
}

static void the_loan_in_the_target_reaches_the_vm(void **state)
{
        struct rig *r = *state;

        trace(r, "a.csv", "0,300M\n600,300M\n");
        rig_load(r,
                 "[host]\nmemory = 8G\n[policy]\nlend_hold = 30m\n"
                 "[vm \"a\"]\ndynamic = yes\nstartup = 512M\nminimum = 512M\nmaximum = 4G\n"
                 "trace = @DIR@/a.csv\n",
                 "dynmem", true);
        sim_ops = r->backend->ops;
        evict_ops = *sim_ops;
        evict_ops.observe = evict_observe;
        r->backend->ops = &evict_ops;
        start_all(r);
        rig_run(r, 10);
        struct vm *vm = &r->vms[0];
        const struct policy_vm *pv = &r->bal.pv[vm->balancer_slot];
        assert_int_equal(vm->target_bytes, 512 * MIB);
        assert_int_equal(vm->lent_bytes, 0);

        evict_next = 200 * MIB;
        rig_step(r);
        assert_int_equal(vm->reason, REASON_LENT);
        assert_int_equal(vm->target_bytes, 712 * MIB);
        assert_int_equal(vm->lent_bytes, 200 * MIB);
        assert_int_equal(vm->lent_bytes, vm->target_bytes - pv->want_bytes);

        /* While it migrates its size is held, and nothing of it counts as lent. */
        rig_run(r, 2);
        vm->migration = VM_MIGRATION_OUT;
        vm->migration_bytes = vm->obs.assigned_bytes;
        rig_step(r);
        assert_int_equal(vm->lent_bytes, 0);
        vm->migration = VM_MIGRATION_NONE;
        vm->migration_bytes = 0;
        rig_step(r);
        assert_int_equal(vm->lent_bytes, 200 * MIB);
}

/* Several VMs on a tight host under every built-in policy: the host is never exceeded. */
static void held_never_exceeds_memory(void **state)
{
        static const char *const policies[] = {"dynmem", "hyperv", "static"};

        for (size_t p = 0; p < 3; p++) {
                struct rig *r = *state;
                rig_teardown(state);
                rig_setup(state);
                r = *state;
                trace(r, "a.csv", "0,200M\n30,1900M\n60,300M\n90,1700M\n120,100M\n200,2G\n");
                trace(r, "b.csv", "0,1500M\n40,100M\n80,1900M\n160,200M\n");
                trace(r, "c.csv", "0,100M\n50,1800M\n55,100M\n130,1500M\n");
                trace(r, "d.csv", "0,700M\n300,700M\n");
                rig_load(r,
                         "[host]\nmemory = 3G\n"
                         "[sim]\ngrow_rate = 4G\nshrink_rate = 256M\n"
                         "[policy]\nshrink_delay = 3s\n"
                         "[vm \"a\"]\ndynamic = yes\nstartup = 512M\nminimum = 256M\n"
                         "maximum = 2G\nweight = 9000\ntrace = @DIR@/a.csv\n"
                         "[vm \"b\"]\ndynamic = yes\nstartup = 512M\nminimum = 256M\n"
                         "maximum = 2G\nweight = 100\ntrace = @DIR@/b.csv\n"
                         "[vm \"c\"]\ndynamic = yes\nstartup = 768M\nminimum = 512M\n"
                         "maximum = 2G\nweight = 0\ntrace = @DIR@/c.csv\nstart = 20s\n"
                         "[vm \"d\"]\nstartup = 768M\ntrace = @DIR@/d.csv\n",
                         policies[p], true);
                for (uint64_t s = 0; s < 300; s++) {
                        if (s == 0 || s == 20)
                                for (size_t i = 0; i < r->n; i++)
                                        if (r->vms[i].state == VM_OFF &&
                                            sim_backend_vm_start_ms(&r->vms[i]) <= r->now)
                                                balancer_request_start(&r->bal, &r->vms[i]);
                        rig_step(r);
                        uint64_t obs = 0;
                        for (size_t i = 0; i < r->n; i++)
                                if (vm_holds_memory(&r->vms[i]))
                                        obs += r->vms[i].obs.assigned_bytes;
                        assert_true(obs <= 3 * GIB);
                        assert_int_equal(r->bal.counters.available_bytes, 3 * GIB - obs);
                }
                size_t running = 0;
                for (size_t i = 0; i < r->n; i++)
                        running += r->vms[i].state == VM_RUNNING;
                assert_true(running >= 3);
                if (strcmp(policies[p], "static") == 0)
                        assert_int_equal(
                            r->bal.counters.add_operations + r->bal.counters.remove_operations, 0);
        }
}

static void external_policy_through_the_loop(void **state)
{
        struct rig *r = *state;
        char *good = tu_write(r->dir, "good.sh",
                              "while read -r line; do\n"
                              "    echo '{\"targets\": {\"a\": 1610612736}}'\n"
                              "done\n",
                              false);
        char *spec = NULL;

        trace(r, "a.csv", "0,500M\n");
        assert_true(asprintf(&spec, "exec:exec /bin/sh %s", good) > 0);
        rig_load(r,
                 "[host]\nmemory = 4G\n[vm \"a\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\n"
                 "maximum = 2G\ntrace = @DIR@/a.csv\n",
                 spec, true);
        start_all(r);
        rig_run(r, 4);
        assert_int_equal(r->vms[0].target_bytes, 1536 * MIB);
        assert_int_equal(r->vms[0].reason, REASON_EXTERNAL);
        assert_int_equal(r->bal.counters.policy_refusals, 0);
        free(spec);
        free(good);
}

static void failing_external_policy_is_reported(void **state)
{
        struct rig *r = *state;
        char *bad = tu_write(r->dir, "bad.sh", "while read line; do echo nonsense; done\n", false);
        char *spec = NULL;

        trace(r, "a.csv", "0,500M\n");
        assert_true(asprintf(&spec, "exec:exec /bin/sh %s", bad) > 0);
        rig_load(r,
                 "[host]\nmemory = 4G\n[vm \"a\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\n"
                 "maximum = 2G\ntrace = @DIR@/a.csv\n",
                 spec, true);
        start_all(r);
        rig_run(r, 3);
        /* Reported as an event and counted; the VM keeps its size meanwhile. */
        assert_true(r->bal.counters.policy_refusals >= 1);
        const struct event *e = find_event(r, BALANCER_EVENT_POLICY, SIZE_MAX);
        assert_non_null(e);
        assert_non_null(strstr(e->message, "not JSON"));
        assert_int_equal(r->vms[0].state, VM_RUNNING);
        assert_int_equal(r->vms[0].obs.assigned_bytes, GIB);
        assert_int_equal(r->bal.counters.add_operations + r->bal.counters.remove_operations, 0);
        free(spec);
        free(bad);
}

static void unknown_policy_is_refused(void **state)
{
        struct balancer b;
        char err[200];

        assert_int_equal(balancer_init(&b, "greedy", NULL, NULL, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "unknown policy \"greedy\""));
        assert_int_equal(balancer_init(&b, "exec:", NULL, NULL, err, sizeof(err)), -EINVAL);
        assert_int_equal(balancer_init(&b, "hyperv", NULL, NULL, err, sizeof(err)), 0);
        assert_int_equal(b.policy.kind, POLICY_HYPERV);
        balancer_fini(&b);
}

/* ---- live migration: a migrating VM is held where it is ---- */

static void a_migrating_vm_is_held_where_it_is(void **state)
{
        struct rig *r = *state;

        /* demand rises from 600 MiB to 1.5 GiB at 20 s: it would grow then */
        trace(r, "a.csv", "0,600M\n20,600M\n20.001,1536M\n90,1536M\n");
        rig_load(r,
                 "[host]\nmemory = 4G\n[vm \"a\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\n"
                 "maximum = 3G\ntrace = @DIR@/a.csv\n",
                 "dynmem", true);
        start_all(r);
        rig_run(r, 15);
        struct vm *vm = &r->vms[0];
        uint64_t held = vm->obs.assigned_bytes, target = vm->target_bytes;
        vm->migration = VM_MIGRATION_OUT; /* its owner migrates it (the daemon follows libvirt) */
        vm->migration_bytes = held;
        size_t adds = count_events(r, BALANCER_EVENT_ADD, 0);
        size_t removes = count_events(r, BALANCER_EVENT_REMOVE, 0);
        rig_run(r, 20);
        assert_int_equal(count_events(r, BALANCER_EVENT_ADD, 0), adds);
        assert_int_equal(count_events(r, BALANCER_EVENT_REMOVE, 0), removes);
        assert_int_equal(vm->target_bytes, target);
        assert_int_equal(vm->obs.assigned_bytes, held);
        assert_int_equal(vm->reason, REASON_MIGRATING);
        vm->migration = VM_MIGRATION_SWITCHOVER;
        rig_run(r, 3);
        assert_int_equal(count_events(r, BALANCER_EVENT_ADD, 0), adds);
        /* the migration failed: it is balanced where it is again */
        vm->migration = VM_MIGRATION_NONE;
        vm->migration_bytes = 0;
        rig_run(r, 5);
        assert_true(count_events(r, BALANCER_EVENT_ADD, 0) > adds);
        assert_true(vm->obs.assigned_bytes > held);
}

static void an_arriving_vm_is_admitted_for_what_it_holds(void **state)
{
        struct rig *r = *state;

        trace(r, "light.csv", "0,400M\n");
        trace(r, "in.csv", "0,1G\n");
        rig_load(r,
                 "[host]\nmemory = 3G\n"
                 "[vm \"light\"]\ndynamic = yes\nstartup = 2G\nminimum = 512M\nmaximum = 2G\n"
                 "weight = 1000\ntrace = @DIR@/light.csv\n"
                 /* the sim starts a model at its startup size: what it holds on arrival */
                 "[vm \"in\"]\ndynamic = yes\nstartup = 1536M\nminimum = 512M\nmaximum = 2G\n"
                 "weight = 8000\ntrace = @DIR@/in.csv\n",
                 "dynmem", true);
        balancer_request_start(&r->bal, &r->vms[0]);
        rig_step(r); /* light holds 2 GiB */
        /* room for weight 8000: 3 GiB less light's minimum */
        assert_int_equal(balancer_room_for(&r->bal, 8000), 3 * GIB - 512 * MIB);
        /* for weight 500 light keeps what it holds */
        assert_int_equal(balancer_room_for(&r->bal, 500), GIB);
        struct vm *in = &r->vms[1];
        balancer_request_start(&r->bal, in);
        in->migration = VM_MIGRATION_IN;
        in->migration_bytes = 1536 * MIB;
        rig_step(r);
        assert_int_equal(in->state, VM_STARTING); /* light must shrink first */
        assert_int_equal(in->reason, REASON_NONE);
        rig_run(r, 20);
        assert_int_equal(in->state, VM_RUNNING);
        assert_int_equal(in->obs.assigned_bytes, 1536 * MIB);
        const struct event *e = find_event(r, BALANCER_EVENT_ARRIVING, 1);
        assert_non_null(e);
        assert_int_equal(e->bytes, 1536 * MIB);
        assert_null(find_event(r, BALANCER_EVENT_STARTED, 1));
        assert_true(r->vms[0].obs.assigned_bytes <= 3 * GIB - 1536 * MIB);
        /* an arriving VM is counted at what it holds until it has arrived */
        assert_int_equal(in->reason, REASON_MIGRATING);
        assert_int_equal(balancer_room_for(&r->bal, 8000), 3 * GIB - 1536 * MIB - 512 * MIB);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, rig_setup, rig_teardown)

int main(void)
{
        const struct CMUnitTest tests[] = {
            T(start_makes_a_vm_run),
            T(start_that_finishes_later),
            T(shrinks_are_applied_before_grows),
            T(weight_decides_once_the_needs_do_not_fit),
            T(counters_match_what_happened),
            T(refused_start_waits_or_is_refused),
            T(memory_promised_to_a_waiting_start_is_not_available),
            T(refused_start_reports_a_reason),
            T(start_waits_until_memory_is_freed),
            T(crash_is_noticed),
            T(a_rebooted_guest_goes_back_to_its_startup_size),
            T(a_rebooted_guest_below_startup_stays_there),
            T(the_loan_in_the_target_reaches_the_vm),
            T(held_never_exceeds_memory),
            T(external_policy_through_the_loop),
            T(failing_external_policy_is_reported),
            T(a_migrating_vm_is_held_where_it_is),
            T(an_arriving_vm_is_admitted_for_what_it_holds),
            cmocka_unit_test(unknown_policy_is_refused),
        };

        signal(SIGPIPE, SIG_IGN); /* exec: policies */
        return cmocka_run_group_tests(tests, NULL, NULL);
}
