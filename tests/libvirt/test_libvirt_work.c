/*
 * Tests for libvirt_work and the libvirt backend's resize path over it:
 * jobs run on the worker thread against libvirt's in-process test driver
 * (test:///default, whose virDomainSetMemoryFlags changes the domain's
 * memory), their results come back on the loop and are taken by the
 * domain's attachment, or dropped when the domain went away or restarted
 * while its job ran; shutdown with jobs queued; the write of what the policy
 * learned, taken back when its domain stops and dropped when it waited too
 * long; a flood of reboot events. A
 * gate in the worker's run function holds a job "running" for as long as a
 * test needs.
 */
#include <errno.h>
#include <limits.h>
#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "libvirt_event.h"
#include "libvirt_int.h"
#include "units.h"

static struct event_base *base;
static pthread_t main_thread;

/* ---- the gate: lets `allowed` jobs through the worker's run function, holds the rest ---- */

static struct {
        pthread_mutex_t lock;
        pthread_cond_t cond;
        int allowed;      /* jobs let through so far */
        int entered;      /* jobs that reached the gate */
        int ran_off_main; /* jobs run on a thread other than the loop's */
} gate = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, INT_MAX, 0, 0};

static void gate_allow(int n)
{
        pthread_mutex_lock(&gate.lock);
        gate.allowed = n;
        pthread_cond_broadcast(&gate.cond);
        pthread_mutex_unlock(&gate.lock);
}

static void gate_wait_entered(int n)
{
        pthread_mutex_lock(&gate.lock);
        while (gate.entered < n)
                pthread_cond_wait(&gate.cond, &gate.lock);
        pthread_mutex_unlock(&gate.lock);
}

static void gated_run(struct lv_job *j, void *userdata)
{
        (void)userdata;
        pthread_mutex_lock(&gate.lock);
        int me = ++gate.entered;
        gate.ran_off_main += !pthread_equal(pthread_self(), main_thread);
        pthread_cond_broadcast(&gate.cond);
        while (me > gate.allowed)
                pthread_cond_wait(&gate.cond, &gate.lock);
        pthread_mutex_unlock(&gate.lock);
        lv_job_run(j);
}

/* ---- what came back ---- */

#define MAX_DONE 16
static struct {
        int n;
        char name[MAX_DONE][VM_NAME_MAX];
        bool ran[MAX_DONE], ok[MAX_DONE];
        int off_main; /* done callbacks run off the loop's thread (must stay 0) */
} back;

static void counted_done(struct lv_job *j, void *userdata)
{
        if (back.n < MAX_DONE) {
                snprintf(back.name[back.n], VM_NAME_MAX, "%s", j->name);
                back.ran[back.n] = j->ran;
                back.ok[back.n] = j->ran && j->n_steps > 0 && j->steps[0].ok;
        }
        back.n++;
        back.off_main += !pthread_equal(pthread_self(), main_thread);
        if (userdata)
                lv_run_job_done(j, userdata);
}

static void run_for(int ms)
{
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
}

/* Run the loop in short turns until n jobs came back (at most 20 s). */
static void run_until_back(int n)
{
        for (int i = 0; i < 2000 && back.n < n; i++)
                run_for(10);
        assert_int_equal(back.n, n);
}

/* ---- domains of the test driver ---- */

static virConnectPtr conn;

/* A running domain of kib KiB, balanced by dynmem (its metadata), no virtio-mem. */
static virDomainPtr define_running(const char *name, unsigned kib)
{
        char xml[1500];
        virDomainPtr dom;

        snprintf(xml, sizeof(xml),
                 "<domain type='test'><name>%s</name>"
                 "<memory unit='KiB'>%u</memory><currentMemory unit='KiB'>%u</currentMemory>"
                 "<vcpu>1</vcpu><os><type>hvm</type></os>"
                 "<devices><memballoon model='virtio'/></devices>"
                 "<metadata><dynmem:memory xmlns:dynmem='urn:dynmem:domain:1'>"
                 "<dynmem:minimum unit='bytes'>268435456</dynmem:minimum>"
                 "<dynmem:maximum unit='bytes'>%llu</dynmem:maximum>"
                 "<dynmem:buffer>20</dynmem:buffer><dynmem:weight>5000</dynmem:weight>"
                 "</dynmem:memory></metadata></domain>",
                 name, kib, kib, (unsigned long long)kib * KIB);
        dom = virDomainDefineXML(conn, xml);
        assert_non_null(dom);
        assert_int_equal(virDomainCreate(dom), 0);
        return dom;
}

static void undefine(virDomainPtr dom)
{
        if (virDomainIsActive(dom) == 1)
                virDomainDestroy(dom);
        virDomainUndefine(dom);
        virDomainFree(dom);
}

static unsigned long memory_kib(virDomainPtr dom)
{
        virDomainInfo info;

        assert_int_equal(virDomainGetInfo(dom, &info), 0);
        return info.memory;
}

/* ---- a backend on the test driver, its domains loaded and attached as dynmemd does ---- */

static struct lv_backend *backend_new(void)
{
        struct lv_backend *lb = calloc(1, sizeof(*lb));

        assert_non_null(lb);
        lb->uri = "test:///default";
        lb->env.base = base;
        lb->conn = conn;
        virConnectRef(conn);
        for (size_t i = 0; i < sizeof(lb->callbacks) / sizeof(lb->callbacks[0]); i++)
                lb->callbacks[i] = -1;
        /* the worker with the gate in its run function */
        lb->work = lv_work_new(base, gated_run, counted_done, lb);
        assert_non_null(lb->work);
        return lb;
}

static void backend_free(struct lv_backend *lb)
{
        lv_run_stop_work(lb);
        for (size_t i = 0; i < lb->n; i++)
                lv_dom_free(lb->doms[i]);
        free(lb->doms);
        virConnectClose(lb->conn);
        free(lb);
}

/* The domain named name, (re)loaded from libvirt and attached when it runs. */
static struct lv_domain *load(struct lv_backend *lb, const char *name)
{
        struct lv_domain *d = lv_dom_get(lb, name);

        assert_non_null(d);
        d->dirty = true;
        struct lv_round *r = lv_round_build(lb, mono_ms());
        assert_non_null(r);
        lv_round_run(r);
        lv_round_take(lb, r);
        return lv_dom_find(lb, name);
}

/* Ask for target bytes: the plan's steps go to the worker (no job query: see below). */
static void resize(struct lv_domain *d, uint64_t target)
{
        struct qemu_mem_plan p;

        /* lv_run_apply asks libvirt for the domain's job first, which the test driver
         * cannot answer; the rest of the path is the same */
        d->mem.target = qemu_mem_clamp_target(&d->mem, target);
        d->target_set = true;
        qemu_mem_plan(&d->mem, mono_ms(), &p);
        assert_true(p.set_balloon);
        assert_true(lv_run_send(d, &p, d->dom));
}

static int setup(void **state)
{
        (void)state;
        gate_allow(INT_MAX);
        gate.entered = gate.ran_off_main = 0;
        memset(&back, 0, sizeof(back));
        return 0;
}

/* ---- the worker alone ---- */

static void a_job_runs_on_the_worker_and_comes_back_on_the_loop(void **state)
{
        virDomainPtr dom = define_running("wk-a", 1048576);
        struct lv_work *w = lv_work_new(base, gated_run, counted_done, NULL);
        struct lv_job *j = lv_job_new(dom, "wk-a", 1);

        assert_non_null(w);
        assert_non_null(j);
        assert_int_equal(lv_job_add(j, LV_STEP_BALLOON, 512 * MIB, NULL), 0);
        assert_int_equal(lv_work_submit(w, j), 0);
        gate_wait_entered(1);
        assert_int_equal(back.n, 0); /* results are the loop's: none before it runs */
        run_until_back(1);
        assert_true(back.ran[0] && back.ok[0]);
        assert_int_equal(gate.ran_off_main, 1);
        assert_int_equal(back.off_main, 0);
        assert_int_equal(memory_kib(dom), 512 * 1024);
        assert_int_equal(lv_work_pending(w), 0);
        lv_work_free(w);
        undefine(dom);
}

static void a_refused_call_brings_libvirts_error_back(void **state)
{
        virDomainPtr dom = define_running("wk-b", 1048576);
        struct lv_job *j = lv_job_new(dom, "wk-b", 1);

        assert_non_null(j);
        lv_job_add(j, LV_STEP_BALLOON, 64 * GIB, NULL);    /* above its maximum */
        lv_job_add(j, LV_STEP_REQUESTED, 256 * MIB, NULL); /* no XML: out of memory */
        assert_int_equal(lv_job_add(j, LV_STEP_BALLOON, 512 * MIB, NULL), -ENOSPC);
        lv_job_run(j);
        assert_true(j->ran);
        assert_false(j->steps[0].ok);
        assert_int_equal(j->steps[0].error_code, VIR_ERR_INVALID_ARG);
        assert_non_null(strstr(j->steps[0].error, "max memory"));
        assert_false(j->steps[1].ok);
        assert_string_equal(j->steps[1].error, "out of memory");
        assert_string_equal(lv_step_call(&j->steps[0]), "virDomainSetMemoryFlags");
        assert_int_equal(memory_kib(dom), 1048576);
        lv_job_free(j);
        undefine(dom);
}

/* ---- through the backend: the plan's flags, and domains that change meanwhile ---- */

static void a_result_is_taken_by_its_domain_and_flags_held_until_then(void **state)
{
        virDomainPtr dom = define_running("wk-c", 1048576);
        struct lv_backend *lb = backend_new();
        struct lv_domain *d = load(lb, "wk-c");

        assert_true(d && d->attached && d->info.balanced);
        gate_allow(0);
        resize(d, 512 * MIB);
        gate_wait_entered(1);
        assert_true(d->job_busy);
        assert_true(d->mem.balloon_sent);
        /* while the job is out: no new plan, and what it may hold counts the old size */
        assert_true(qemu_mem_may_hold(&d->mem, mono_ms()) >= GIB);
        lv_run_apply(d);
        assert_int_equal(lv_work_pending(lb->work), 1);
        gate_allow(INT_MAX);
        run_until_back(1);
        assert_false(d->job_busy);
        assert_true(d->mem.balloon_sent);
        assert_int_equal(d->mem.balloon_value, 512 * MIB);
        assert_int_equal(memory_kib(dom), 512 * 1024);
        assert_true(lb->calls >= 1);

        /* refused: the flag drops, so that the next cycle asks again */
        d->mem.target = SETTINGS_MINIMUM_FLOOR;
        struct qemu_mem_plan p = {.set_balloon = true, .balloon_value = 64 * GIB};
        d->mem.balloon_sent = true;
        assert_true(lv_run_send(d, &p, d->dom));
        run_until_back(2);
        assert_false(back.ok[1]);
        assert_false(d->mem.balloon_sent);
        assert_false(d->job_busy);
        backend_free(lb);
        undefine(dom);
}

static void a_domain_undefined_while_its_job_runs_drops_the_result(void **state)
{
        virDomainPtr dom = define_running("wk-d", 1048576);
        struct lv_backend *lb = backend_new();
        struct lv_domain *d = load(lb, "wk-d");

        assert_true(d && d->attached);
        gate_allow(0);
        resize(d, 512 * MIB);
        gate_wait_entered(1);
        undefine(dom);                 /* destroyed and undefined while the call waits */
        assert_null(load(lb, "wk-d")); /* gone from the table, its memory freed */
        gate_allow(INT_MAX);
        run_until_back(1);
        assert_true(back.ran[0]);
        assert_false(back.ok[0]); /* libvirt: no such domain */
        assert_null(lv_dom_find(lb, "wk-d"));
        backend_free(lb);
}

static void a_domain_restarted_while_its_job_runs_keeps_its_new_plan(void **state)
{
        virDomainPtr dom = define_running("wk-e", 1048576);
        struct lv_backend *lb = backend_new();
        struct lv_domain *d = load(lb, "wk-e");

        assert_true(d && d->attached);
        uint64_t first = d->attach_serial;
        gate_allow(0);
        resize(d, 512 * MIB);
        gate_wait_entered(1);
        assert_int_equal(virDomainDestroy(dom), 0);
        assert_int_equal(virDomainCreate(dom), 0); /* a new id */
        d = load(lb, "wk-e");
        assert_true(d && d->attached && d->attach_serial != first);
        assert_false(d->job_busy);
        resize(d, 768 * MIB); /* the new attachment's own job, queued behind the old one */
        assert_true(d->job_busy);
        gate_allow(1);
        run_until_back(1);
        /* the old attachment's result is not the new one's: its job is still out */
        assert_true(d->job_busy);
        assert_true(d->mem.balloon_sent);
        assert_int_equal(d->mem.balloon_value, 768 * MIB);
        gate_allow(INT_MAX);
        run_until_back(2);
        assert_false(d->job_busy);
        assert_int_equal(memory_kib(dom), 768 * 1024);
        backend_free(lb);
        undefine(dom);
}

static void a_queued_job_of_a_stopped_domain_is_not_made(void **state)
{
        virDomainPtr a = define_running("wk-f", 1048576), b = define_running("wk-g", 1048576);
        struct lv_backend *lb = backend_new();
        struct lv_domain *da = load(lb, "wk-f"), *db = load(lb, "wk-g");

        assert_true(da && db && da->attached && db->attached);
        gate_allow(0);
        resize(da, 512 * MIB);
        gate_wait_entered(1);
        resize(db, 512 * MIB); /* queued behind wk-f's */
        assert_int_equal(lv_work_pending(lb->work), 2);
        assert_int_equal(virDomainDestroy(b), 0);
        db = load(lb, "wk-g"); /* stopped: detached, its queued job taken back */
        assert_false(db->attached);
        assert_int_equal(lv_work_pending(lb->work), 1);
        gate_allow(INT_MAX);
        run_until_back(2);
        int g = strcmp(back.name[0], "wk-g") == 0 ? 0 : 1;
        assert_string_equal(back.name[g], "wk-g");
        assert_false(back.ran[g]);
        assert_true(back.ran[1 - g] && back.ok[1 - g]);
        assert_int_equal(gate.entered, 1); /* wk-g's call was never made */
        assert_int_equal(memory_kib(a), 512 * 1024);
        backend_free(lb);
        undefine(a);
        undefine(b);
}

static void without_a_loop_the_calls_are_made_in_place(void **state)
{
        virDomainPtr dom = define_running("wk-j", 1048576);
        struct lv_backend *lb = backend_new();
        struct lv_domain *d = load(lb, "wk-j");

        lv_work_free(lb->work); /* a program with no event loop: no worker */
        lb->work = NULL;
        lb->env.base = NULL;
        resize(d, 512 * MIB);
        assert_null(lb->work);
        assert_false(d->job_busy); /* taken at once */
        assert_true(d->mem.balloon_sent);
        assert_int_equal(memory_kib(dom), 512 * 1024);
        assert_int_equal(gate.entered, 0);
        backend_free(lb);
        undefine(dom);
}

/* Opens the gate once the worker is told to stop (from another thread: the loop's waits). */
static void *open_when_stopping(void *arg)
{
        struct lv_work *w = arg;

        while (!lv_work_stopping(w))
                usleep(1000);
        gate_allow(INT_MAX);
        return NULL;
}

static void stopping_with_jobs_queued_drops_them_and_clears_their_flags(void **state)
{
        virDomainPtr a = define_running("wk-h", 1048576), b = define_running("wk-i", 1048576);
        struct lv_backend *lb = backend_new();
        struct lv_domain *da = load(lb, "wk-h"), *db = load(lb, "wk-i");
        pthread_t opener;

        gate_allow(0);
        resize(da, 512 * MIB);
        gate_wait_entered(1);
        resize(db, 512 * MIB);
        assert_true(db->job_busy && db->mem.balloon_sent);
        assert_int_equal(pthread_create(&opener, NULL, open_when_stopping, lb->work), 0);
        lv_run_stop_work(lb); /* joins once wk-h's call is done; wk-i's is dropped */
        pthread_join(opener, NULL);
        assert_int_equal(back.n, 2);
        assert_int_equal(back.off_main, 0);
        assert_false(da->job_busy);
        assert_true(da->mem.balloon_sent); /* made */
        assert_false(db->job_busy);
        assert_false(db->mem.balloon_sent); /* dropped: to be asked again */
        assert_int_equal(memory_kib(a), 512 * 1024);
        assert_int_equal(memory_kib(b), 1048576); /* never called */
        /* stopped: a new plan is not sent, and no new worker is made */
        struct qemu_mem_plan p = {.set_balloon = true, .balloon_value = 256 * MIB};
        assert_false(lv_run_send(db, &p, db->dom));
        assert_null(lb->work);
        backend_free(lb);
        undefine(a);
        undefine(b);
}

/* ---- the write of what the policy learned (libvirt_carry.c) ---- */

static unsigned carried_calls;

static void on_carried(void *userdata)
{
        (void)userdata;
        carried_calls++;
}

/* lv_carry_write for d, its job read just now (none running), and how it went once back. */
static int carry_write(struct lv_backend *lb, struct lv_domain *d)
{
        struct backend b = {.priv = lb};
        struct vm vm = {0};

        snprintf(vm.name, sizeof(vm.name), "%s", d->name);
        d->job_read_ms = mono_ms();
        d->job_read.r = 0;
        return lv_carry_write(&b, &vm, "{\"written_at_ms\":1}");
}

static int carry_error(struct lv_backend *lb, struct lv_domain *d)
{
        struct backend b = {.priv = lb};
        struct vm vm = {0};
        int error = 1;

        snprintf(vm.name, sizeof(vm.name), "%s", d->name);
        assert_false(lv_carry_pending(&b, &vm, &error));
        return error;
}

/*
 * A write queued behind another domain's resize, of a domain that stops
 * meanwhile: taken back, never made on the stopped domain (libvirt would
 * refuse it), and answered "taken back" (ECANCELED), the daemon told at once.
 */
static void a_queued_carry_write_of_a_stopped_domain_is_taken_back(void **state)
{
        virDomainPtr a = define_running("wk-k", 1048576), b = define_running("wk-l", 1048576);
        struct lv_backend *lb = backend_new();
        struct lv_domain *da = load(lb, "wk-k"), *db = load(lb, "wk-l");

        carried_calls = 0;
        lb->env.carried = on_carried;
        assert_true(da && db && da->attached && db->attached);
        gate_allow(0);
        resize(da, 512 * MIB);
        gate_wait_entered(1);
        assert_int_equal(carry_write(lb, db), 0);
        assert_true(db->carry_out);
        assert_int_equal(lv_work_pending(lb->work), 2);
        assert_int_equal(virDomainDestroy(b), 0);
        db = load(lb, "wk-l"); /* stopped: detached, its queued write taken back */
        assert_false(db->attached);
        assert_int_equal(lv_work_pending(lb->work), 1);
        gate_allow(INT_MAX);
        run_until_back(2);
        assert_int_equal(gate.entered, 1); /* the write was never made */
        assert_false(db->carry_out);
        assert_int_equal(carry_error(lb, db), -ECANCELED);
        assert_int_equal(carried_calls, 1);
        backend_free(lb);
        undefine(a);
        undefine(b);
}

/*
 * A write that waited longer than its limit for the worker (BACKEND_CARRY_WAIT_MS;
 * here 50 ms) is dropped, not made: made late it could meet a migration's job.
 */
static void a_carry_write_that_waited_too_long_is_dropped(void **state)
{
        virDomainPtr a = define_running("wk-m", 1048576), b = define_running("wk-n", 1048576);
        struct lv_backend *lb = backend_new();
        struct lv_domain *da = load(lb, "wk-m"), *db = load(lb, "wk-n");
        struct lv_job *j;

        carried_calls = 0;
        lb->env.carried = on_carried;
        gate_allow(0);
        resize(da, 512 * MIB);
        gate_wait_entered(1);
        /* lv_carry_write's job, with a short limit */
        assert_non_null(j = lv_job_new(db->dom, db->name, db->attach_serial));
        assert_int_equal(lv_job_add_metadata(j, libvirt_xml_learned_format("{}"),
                                             LIBVIRT_XML_LEARNED_PREFIX, LIBVIRT_XML_LEARNED_NS),
                         0);
        j->drop_after_ms = 50;
        db->carry_out = true;
        assert_int_equal(lv_work_submit(lb->work, j), 0);
        usleep(200 * 1000);
        gate_allow(INT_MAX);
        run_until_back(2);
        assert_int_equal(gate.entered, 1); /* not made */
        assert_false(back.ran[1]);
        assert_int_equal(carry_error(lb, db), -ETIMEDOUT);
        assert_int_equal(carried_calls, 1);
        /* one that did not wait that long is made */
        assert_int_equal(carry_write(lb, db), 0);
        run_until_back(3);
        assert_int_equal(carry_error(lb, db), 0);
        assert_int_equal(carried_calls, 2);
        backend_free(lb);
        undefine(a);
        undefine(b);
}

/* ---- reboot events ---- */

static unsigned wakeups;

static void on_wakeup(void *userdata)
{
        (void)userdata;
        wakeups++;
}

/*
 * libvirt relays every RESET its QEMU sends as a reboot event, and a QEMU its
 * guest took over may send them without end: each is handled, but the log
 * takes them at the domain's rate and the extra cycles they ask for stay
 * within its share (QEMU_WAKE_RATE).
 */
static void a_flood_of_reboot_events_is_logged_and_woken_for_at_the_rate(void **state)
{
        virDomainPtr dom = define_running("wk-k", 1048576);
        struct lv_backend *lb = backend_new();
        struct lv_domain *d = load(lb, "wk-k");
        char path[] = "/tmp/test-libvirt-work-log-XXXXXX", text[65536];
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);

        (void)state;
        assert_true(d && d->attached);
        assert_true(fd >= 0 && saved >= 0);
        lb->env.wakeup = on_wakeup;
        wakeups = 0;
        uint64_t t0 = mono_ms();
        dup2(fd, STDERR_FILENO);
        for (int i = 0; i < 200; i++)
                lv_run_guest_reset(d);
        dup2(saved, STDERR_FILENO);
        close(saved);
        uint64_t took = mono_ms() - t0;
        ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
        close(fd);
        unlink(path);
        text[n > 0 ? n : 0] = '\0';
        unsigned logged = 0;
        for (const char *p = text; (p = strstr(p, "the guest restarted")); p++)
                logged++;
        print_message("# 200 reboot events in %llu ms: %u lines logged, %u cycles asked for\n",
                      (unsigned long long)took, logged, wakeups);
        assert_true(d->reset_unseen);
        /* the domain's log rate: 3 at once, one more every 10 s */
        assert_true(logged >= 1 && logged <= 3 + took / 10000);
        assert_true(wakeups >= 1 &&
                    wakeups <= QEMU_WAKE_BURST + (took / 1000 + 1) * QEMU_WAKE_RATE);
        backend_free(lb);
        undefine(dom);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(a_job_runs_on_the_worker_and_comes_back_on_the_loop, setup),
            cmocka_unit_test_setup(a_refused_call_brings_libvirts_error_back, setup),
            cmocka_unit_test_setup(a_result_is_taken_by_its_domain_and_flags_held_until_then,
                                   setup),
            cmocka_unit_test_setup(a_domain_undefined_while_its_job_runs_drops_the_result, setup),
            cmocka_unit_test_setup(a_domain_restarted_while_its_job_runs_keeps_its_new_plan, setup),
            cmocka_unit_test_setup(a_queued_job_of_a_stopped_domain_is_not_made, setup),
            cmocka_unit_test_setup(without_a_loop_the_calls_are_made_in_place, setup),
            cmocka_unit_test_setup(a_queued_carry_write_of_a_stopped_domain_is_taken_back, setup),
            cmocka_unit_test_setup(a_carry_write_that_waited_too_long_is_dropped, setup),
            cmocka_unit_test_setup(stopping_with_jobs_queued_drops_them_and_clears_their_flags,
                                   setup),
            cmocka_unit_test_setup(a_flood_of_reboot_events_is_logged_and_woken_for_at_the_rate,
                                   setup),
        };
        int r;

        main_thread = pthread_self();
        base = event_base_new();
        assert_non_null(base);
        assert_int_equal(libvirt_event_register(base), 0);
        conn = virConnectOpen("test:///default");
        assert_non_null(conn);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        virConnectClose(conn);
        libvirt_event_flush();
        event_base_free(base);
        return r;
}
