/*
 * Tests for libvirt_event: libvirt's handles and timeouts on a libevent
 * loop, called the way libvirt calls them (through virEventAddHandle and
 * friends, which dispatch to the registered implementation), and libvirt's
 * own in-process test driver (test:///default) delivering domain events
 * through it; calls made from another thread (libvirt_work's worker) take
 * effect, and every callback still runs on the loop.
 */
#include <errno.h>
#include <pthread.h>
#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "libvirt_event.h"

static struct event_base *base;
static pthread_t loop_thread;

struct probe {
        int fired;
        int last_events;
        int freed;
        int self_remove; /* the callback removes its own watch */
        int watch;
        int freed_during_remove;
        int in_remove;
        int off_loop; /* callbacks or free callbacks run off the loop's thread */
};

static void on_free(void *opaque)
{
        struct probe *p = opaque;

        p->freed++;
        p->off_loop += !pthread_equal(pthread_self(), loop_thread);
        if (p->in_remove)
                p->freed_during_remove++;
}

static void on_handle(int watch, int fd, int events, void *opaque)
{
        struct probe *p = opaque;
        char buf[16];

        p->fired++;
        p->off_loop += !pthread_equal(pthread_self(), loop_thread);
        p->last_events = events;
        if (events & VIR_EVENT_HANDLE_READABLE)
                (void)!read(fd, buf, sizeof(buf));
        if (p->self_remove) {
                p->in_remove = 1;
                assert_int_equal(virEventRemoveHandle(watch), 0);
                p->in_remove = 0;
        }
}

static void on_timer(int timer, void *opaque)
{
        struct probe *p = opaque;

        p->fired++;
        p->off_loop += !pthread_equal(pthread_self(), loop_thread);
        if (p->self_remove) {
                p->in_remove = 1;
                assert_int_equal(virEventRemoveTimeout(timer), 0);
                p->in_remove = 0;
        }
}

/* Run the loop for about ms milliseconds. */
static void run_for(int ms)
{
        struct timeval tv = {ms / 1000, (ms % 1000) * 1000};

        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
}

/* Run the loop in short turns until *counter reaches at least n (at most 10 s). */
static void run_until(const int *counter, int n)
{
        for (int i = 0; i < 1000 && *counter < n; i++)
                run_for(10);
        assert_true(*counter >= n);
}

static int setup(void **state)
{
        if (!base) {
                base = event_base_new();
                loop_thread = pthread_self();
                assert_non_null(base);
                assert_int_equal(libvirt_event_register(base), 0);
        }
        return 0;
}

static void register_is_once_per_process(void **state)
{
        struct event_base *other = event_base_new();

        assert_int_equal(libvirt_event_register(base), 0);
        assert_int_equal(libvirt_event_register(other), -EALREADY);
        event_base_free(other);
}

static void handle_reports_readable_and_writable(void **state)
{
        struct probe p = {0};
        int fds[2];

        assert_int_equal(pipe(fds), 0);
        int w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, on_free);
        assert_true(w > 0);
        run_for(20);
        assert_int_equal(p.fired, 0); /* nothing written yet */
        assert_int_equal(write(fds[1], "x", 1), 1);
        run_until(&p.fired, 1);
        assert_int_equal(p.fired, 1);
        assert_int_equal(p.last_events, VIR_EVENT_HANDLE_READABLE);

        struct probe q = {0};
        int w2 = virEventAddHandle(fds[1], VIR_EVENT_HANDLE_WRITABLE, on_handle, &q, NULL);
        assert_true(w2 > 0 && w2 != w);
        run_until(&q.fired, 1);
        assert_int_equal(q.last_events, VIR_EVENT_HANDLE_WRITABLE);
        assert_int_equal(virEventRemoveHandle(w2), 0);
        assert_int_equal(virEventRemoveHandle(w), 0);
        run_until(&p.freed, 1);
        close(fds[0]);
        close(fds[1]);
}

static void handle_update_to_none_stops_and_back_restarts(void **state)
{
        struct probe p = {0};
        int fds[2];

        assert_int_equal(pipe(fds), 0);
        int w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, on_free);
        virEventUpdateHandle(w, 0);
        assert_int_equal(write(fds[1], "x", 1), 1);
        run_for(20);
        assert_int_equal(p.fired, 0);
        virEventUpdateHandle(w, VIR_EVENT_HANDLE_READABLE);
        run_until(&p.fired, 1);
        assert_int_equal(p.fired, 1);
        assert_int_equal(virEventRemoveHandle(w), 0);
        run_for(5);
        close(fds[0]);
        close(fds[1]);
}

static void remove_frees_later_never_inside_the_call(void **state)
{
        struct probe p = {0};
        int fds[2];

        assert_int_equal(pipe(fds), 0);
        int w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, on_free);
        p.in_remove = 1;
        assert_int_equal(virEventRemoveHandle(w), 0);
        p.in_remove = 0;
        assert_int_equal(p.freed, 0);
        assert_int_equal(virEventRemoveHandle(w), -1); /* gone at once */
        assert_int_equal(write(fds[1], "x", 1), 1);
        run_until(&p.freed, 1);
        run_for(20);
        assert_int_equal(p.fired, 0); /* stopped at once */
        assert_int_equal(p.freed, 1);
        assert_int_equal(p.freed_during_remove, 0);
        close(fds[0]);
        close(fds[1]);
}

static void a_handle_may_remove_itself(void **state)
{
        struct probe p = {.self_remove = 1};
        int fds[2];

        assert_int_equal(pipe(fds), 0);
        virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, on_free);
        assert_int_equal(write(fds[1], "xy", 2), 2);
        run_until(&p.freed, 1);
        run_for(20);
        assert_int_equal(p.fired, 1);
        assert_int_equal(p.freed, 1);
        assert_int_equal(p.freed_during_remove, 0);
        close(fds[0]);
        close(fds[1]);
}

static void timer_repeats_until_disabled(void **state)
{
        struct probe p = {0};
        int t = virEventAddTimeout(10, on_timer, &p, on_free);

        assert_true(t > 0);
        run_until(&p.fired, 3);
        virEventUpdateTimeout(t, -1);
        int seen = p.fired;
        run_for(40);
        assert_int_equal(p.fired, seen);
        virEventUpdateTimeout(t, 0); /* every turn of the loop */
        run_until(&p.fired, seen + 2);
        assert_int_equal(virEventRemoveTimeout(t), 0);
        seen = p.fired;
        run_until(&p.freed, 1);
        run_for(20);
        assert_int_equal(p.fired, seen);
        assert_int_equal(virEventRemoveTimeout(t), -1);
}

static void disabled_timer_never_fires(void **state)
{
        struct probe p = {0};
        int t = virEventAddTimeout(-1, on_timer, &p, NULL);

        assert_true(t > 0);
        run_for(30);
        assert_int_equal(p.fired, 0);
        virEventUpdateTimeout(t, 1);
        run_until(&p.fired, 1);
        virEventRemoveTimeout(t);
}

static void a_timer_may_remove_itself(void **state)
{
        struct probe p = {.self_remove = 1};

        virEventAddTimeout(0, on_timer, &p, on_free);
        run_until(&p.freed, 1);
        run_for(20);
        assert_int_equal(p.fired, 1);
        assert_int_equal(p.freed, 1);
        assert_int_equal(p.freed_during_remove, 0);
}

static void handles_and_timers_have_separate_ids(void **state)
{
        struct probe p = {0};
        int fds[2];

        assert_int_equal(pipe(fds), 0);
        size_t before = libvirt_event_count();
        int h = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, NULL);
        int t = virEventAddTimeout(-1, on_timer, &p, NULL);
        assert_int_equal(libvirt_event_count(), before + 2);
        assert_int_equal(virEventRemoveTimeout(h), -1); /* a handle's id is no timer */
        assert_int_equal(virEventRemoveHandle(t), -1);
        assert_int_equal(virEventRemoveHandle(h), 0);
        assert_int_equal(virEventRemoveTimeout(t), 0);
        assert_int_equal(libvirt_event_count(), before);
        assert_int_equal(virEventAddHandle(-1, VIR_EVENT_HANDLE_READABLE, on_handle, &p, NULL), -1);
        run_for(5);
        close(fds[0]);
        close(fds[1]);
}

/* ---- calls from another thread (a libvirt call made by libvirt_work's worker) ---- */

struct cross_call {
        enum { ADD_TIMER, UPDATE_HANDLE, REMOVE_HANDLE, REMOVE_TIMER } op;
        int id, events;
        struct probe *p;
        int ret;
};

static void *cross_thread(void *arg)
{
        struct cross_call *c = arg;

        switch (c->op) {
        case ADD_TIMER:
                c->ret = virEventAddTimeout(1, on_timer, c->p, on_free);
                break;
        case UPDATE_HANDLE:
                virEventUpdateHandle(c->id, c->events);
                break;
        case REMOVE_HANDLE:
                c->ret = virEventRemoveHandle(c->id);
                break;
        case REMOVE_TIMER:
                c->ret = virEventRemoveTimeout(c->id);
                break;
        }
        return NULL;
}

/* Make the call on a thread of its own, while the loop is not running. */
static int from_thread(struct cross_call c)
{
        pthread_t t;

        assert_int_equal(pthread_create(&t, NULL, cross_thread, &c), 0);
        pthread_join(t, NULL);
        return c.ret;
}

static void calls_from_another_thread_take_effect_and_callbacks_stay_on_the_loop(void **state)
{
        struct probe p = {0}, q = {0};
        int fds[2];

        assert_int_equal(pipe(fds), 0);
        int w = virEventAddHandle(fds[0], VIR_EVENT_HANDLE_READABLE, on_handle, &p, on_free);
        from_thread((struct cross_call){.op = UPDATE_HANDLE, .id = w, .events = 0});
        assert_int_equal(write(fds[1], "x", 1), 1);
        run_for(30);
        assert_int_equal(p.fired, 0); /* turned off from the other thread */
        from_thread(
            (struct cross_call){.op = UPDATE_HANDLE, .id = w, .events = VIR_EVENT_HANDLE_READABLE});
        run_until(&p.fired, 1);

        int t = from_thread((struct cross_call){.op = ADD_TIMER, .p = &q});
        assert_true(t > 0 && t != w);
        run_until(&q.fired, 2); /* armed by the loop, repeating */
        assert_int_equal(from_thread((struct cross_call){.op = REMOVE_TIMER, .id = t}), 0);
        assert_int_equal(from_thread((struct cross_call){.op = REMOVE_HANDLE, .id = w}), 0);
        assert_int_equal(p.freed + q.freed, 0); /* freed by the loop, later */
        int seen = q.fired;
        assert_int_equal(write(fds[1], "y", 1), 1);
        run_until(&q.freed, 1);
        run_until(&p.freed, 1);
        run_for(20);
        assert_int_equal(q.fired, seen);
        assert_int_equal(p.fired, 1);
        assert_int_equal(p.off_loop + q.off_loop, 0);
        assert_int_equal(virEventRemoveHandle(w), -1);
        close(fds[0]);
        close(fds[1]);
}

struct toggler {
        int watch, timer;
        int done; /* read and written under toggle_lock */
};

static pthread_mutex_t toggle_lock = PTHREAD_MUTEX_INITIALIZER;

/* Turns a handle and a timer off and on many times, as a thread making libvirt calls does. */
static void *toggle(void *arg)
{
        struct toggler *tg = arg;

        for (int i = 0; i < 2000; i++) {
                virEventUpdateHandle(tg->watch, i % 2 ? VIR_EVENT_HANDLE_READABLE : 0);
                virEventUpdateTimeout(tg->timer, i % 2 ? 1 : -1);
        }
        virEventUpdateHandle(tg->watch, VIR_EVENT_HANDLE_READABLE);
        virEventUpdateTimeout(tg->timer, -1);
        pthread_mutex_lock(&toggle_lock);
        tg->done = 1;
        pthread_mutex_unlock(&toggle_lock);
        return NULL;
}

static int toggler_done(struct toggler *tg)
{
        pthread_mutex_lock(&toggle_lock);
        int done = tg->done;
        pthread_mutex_unlock(&toggle_lock);
        return done;
}

static void a_thread_turning_watches_on_and_off_while_the_loop_runs(void **state)
{
        struct probe p = {0}, q = {0};
        struct toggler tg = {0};
        pthread_t t;
        int fds[2];

        assert_int_equal(pipe(fds), 0);
        assert_int_equal(write(fds[1], "x", 1), 1); /* readable until the handle reads it */
        tg.watch = virEventAddHandle(fds[0], 0, on_handle, &p, on_free);
        tg.timer = virEventAddTimeout(-1, on_timer, &q, on_free);
        assert_int_equal(pthread_create(&t, NULL, toggle, &tg), 0);
        for (int i = 0; i < 2000 && !toggler_done(&tg); i++)
                run_for(1);
        pthread_join(t, NULL);
        int fired = p.fired;
        assert_int_equal(write(fds[1], "y", 1), 1);
        run_until(&p.fired, fired + 1); /* left on: the loop applied the last word */
        assert_int_equal(p.off_loop + q.off_loop, 0);
        assert_int_equal(virEventRemoveHandle(tg.watch), 0);
        assert_int_equal(virEventRemoveTimeout(tg.timer), 0);
        run_until(&p.freed, 1);
        run_until(&q.freed, 1);
        close(fds[0]);
        close(fds[1]);
}

/* ---- libvirt's own test driver delivers domain events through the loop ---- */

struct lifecycle {
        int started, stopped;
};

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
        struct lifecycle *l = opaque;

        (void)conn, (void)dom, (void)detail;
        if (event == VIR_DOMAIN_EVENT_STARTED)
                l->started++;
        if (event == VIR_DOMAIN_EVENT_STOPPED)
                l->stopped++;
        return 0;
}

static void test_driver_events_arrive_in_the_loop(void **state)
{
        struct lifecycle l = {0};
        virConnectPtr conn = virConnectOpen("test:///default");
        virDomainPtr dom;

        assert_non_null(conn);
        int id =
            virConnectDomainEventRegisterAny(conn, NULL, VIR_DOMAIN_EVENT_ID_LIFECYCLE,
                                             VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle), &l, NULL);
        assert_true(id >= 0);
        dom = virDomainLookupByName(conn, "test");
        assert_non_null(dom);
        assert_int_equal(virDomainDestroy(dom), 0);
        assert_int_equal(l.stopped, 0); /* queued, delivered by the loop */
        run_until(&l.stopped, 1);
        assert_int_equal(virDomainCreate(dom), 0);
        run_until(&l.started, 1);
        assert_int_equal(virConnectDomainEventDeregisterAny(conn, id), 0);
        virDomainFree(dom);
        assert_int_equal(virConnectClose(conn), 0);
        run_for(10);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup(register_is_once_per_process, setup),
            cmocka_unit_test_setup(handle_reports_readable_and_writable, setup),
            cmocka_unit_test_setup(handle_update_to_none_stops_and_back_restarts, setup),
            cmocka_unit_test_setup(remove_frees_later_never_inside_the_call, setup),
            cmocka_unit_test_setup(a_handle_may_remove_itself, setup),
            cmocka_unit_test_setup(timer_repeats_until_disabled, setup),
            cmocka_unit_test_setup(disabled_timer_never_fires, setup),
            cmocka_unit_test_setup(a_timer_may_remove_itself, setup),
            cmocka_unit_test_setup(handles_and_timers_have_separate_ids, setup),
            cmocka_unit_test_setup(
                calls_from_another_thread_take_effect_and_callbacks_stay_on_the_loop, setup),
            cmocka_unit_test_setup(a_thread_turning_watches_on_and_off_while_the_loop_runs, setup),
            cmocka_unit_test_setup(test_driver_events_arrive_in_the_loop, setup),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);

        event_base_free(base);
        return r;
}
