/*
 * libvirt_event: libvirt's handles and timeouts as libevent events on
 * dynmemd's loop. See libvirt_event.h.
 *
 * libevent is used from the loop's thread only. libvirt calls in from other
 * threads too (libvirt_work.c's resize calls: a thread that makes an RPC
 * call turns its connection's handle off while it reads the socket itself,
 * and on again after), so what libvirt asks is recorded under a lock at
 * once, and a call from another thread leaves the libevent side to the
 * loop, which an eventfd wakes. A handle callback checks under the lock
 * that the events are still wanted; callbacks and free callbacks run
 * without the lock held (they call back in).
 */
#include "libvirt_event.h"
#include "mono.h"

#include <errno.h>
#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct watch {
        int id;
        bool is_timer;
        int fd;           /* handles */
        int events;       /* handles: what libvirt wants watched, 0 nothing */
        int interval;     /* timers: ms, 0 every turn, -1 disabled */
        bool removed;     /* stopped; freed (and ff called) from the loop */
        bool pending;     /* changed from another thread: the loop applies it */
        struct event *ev; /* NULL until the loop armed it */
        virEventHandleCallback handle_cb;
        virEventTimeoutCallback timer_cb;
        void *opaque;
        virFreeCallback ff;
        struct watch *next_released;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* guards everything below */
static pthread_t loop_thread;
static struct event_base *loop_base;
static struct watch **watches; /* live ones */
static size_t n_watches, cap_watches;
static int last_id;
static struct watch *released;   /* removed, waiting for release() (linked by next_released) */
static struct event *release_ev; /* runs release() at the next turn of the loop */
static int wake_fd = -1;         /* another thread changed a watch */
static struct event *wake_ev;
static bool wake_sent;

static bool on_loop(void)
{
        return pthread_equal(pthread_self(), loop_thread);
}

bool libvirt_event_on_loop(void)
{
        return !loop_base || on_loop();
}

size_t libvirt_event_count(void)
{
        pthread_mutex_lock(&lock);
        size_t n = n_watches;
        pthread_mutex_unlock(&lock);
        return n;
}

static struct watch *find(int id, bool is_timer)
{
        for (size_t i = 0; i < n_watches; i++)
                if (watches[i]->id == id && watches[i]->is_timer == is_timer)
                        return watches[i];
        return NULL;
}

static int keep(struct watch *w)
{
        if (n_watches == cap_watches) {
                size_t cap = cap_watches ? 2 * cap_watches : 16;
                struct watch **grown = realloc(watches, cap * sizeof(*grown));
                if (!grown)
                        return -ENOMEM;
                watches = grown;
                cap_watches = cap;
        }
        watches[n_watches++] = w;
        return 0;
}

static void forget(struct watch *w)
{
        for (size_t i = 0; i < n_watches; i++) {
                if (watches[i] == w) {
                        watches[i] = watches[--n_watches];
                        return;
                }
        }
}

/* From the loop, after the remove calls returned: the free callbacks, then the watches. */
static void release(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what, (void)arg;
        libvirt_event_flush();
}

void libvirt_event_flush(void)
{
        pthread_mutex_lock(&lock);
        struct watch *list = released;
        released = NULL;
        pthread_mutex_unlock(&lock);
        while (list) {
                struct watch *w = list;
                list = w->next_released;
                if (w->ff)
                        w->ff(w->opaque);
                if (w->ev)
                        event_free(w->ev);
                free(w);
        }
}

/* Another thread changed a watch: wake the loop to apply it (lock held). */
static void wake_loop(struct watch *w)
{
        uint64_t one = 1;

        w->pending = true;
        if (!wake_sent && wake_fd >= 0)
                wake_sent = write(wake_fd, &one, sizeof(one)) == sizeof(one);
}

static void remove_watch(struct watch *w)
{
        static const struct timeval now = {0, 0};

        w->removed = true;
        forget(w);
        w->next_released = released;
        released = w;
        if (!on_loop()) {
                wake_loop(w);
                return;
        }
        if (w->ev)
                event_del(w->ev);
        event_add(release_ev, &now);
}

/* ---- handles ---- */

static short to_libevent(int events)
{
        return (short)(((events & VIR_EVENT_HANDLE_READABLE) ? EV_READ : 0) |
                       ((events & VIR_EVENT_HANDLE_WRITABLE) ? EV_WRITE : 0));
}

static void on_handle(evutil_socket_t fd, short what, void *arg)
{
        struct watch *w = arg;
        int events = ((what & EV_READ) ? VIR_EVENT_HANDLE_READABLE : 0) |
                     ((what & EV_WRITE) ? VIR_EVENT_HANDLE_WRITABLE : 0);

        pthread_mutex_lock(&lock);
        /* turned off meanwhile by another thread: the loop has not caught up yet */
        events = w->removed ? 0 : events & w->events;
        pthread_mutex_unlock(&lock);
        if (events)
                w->handle_cb(w->id, (int)fd, events, w->opaque);
}

/* Watch what w->events says (the loop, lock held). */
static int arm_handle(struct watch *w)
{
        short flags = to_libevent(w->events);

        if (!w->ev && !(w->ev = event_new(loop_base, w->fd, EV_READ | EV_PERSIST, on_handle, w)))
                return -1;
        event_del(w->ev);
        if (!flags)
                return 0;
        if (event_assign(w->ev, loop_base, w->fd, flags | EV_PERSIST, on_handle, w) < 0)
                return -1;
        return event_add(w->ev, NULL) < 0 ? -1 : 0;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        static const struct timeval now = {0, 0};
        struct watch *w = arg;

        (void)fd, (void)what;
        pthread_mutex_lock(&lock);
        bool live = !w->removed && w->interval >= 0;
        pthread_mutex_unlock(&lock);
        if (!live)
                return;
        w->timer_cb(w->id, w->opaque);
        /* libevent does not repeat a persistent timer of zero: "every turn" is done here. */
        pthread_mutex_lock(&lock);
        if (!w->removed && w->interval == 0 && !event_pending(w->ev, EV_TIMEOUT, NULL))
                event_add(w->ev, &now);
        pthread_mutex_unlock(&lock);
}

/* Fire as w->interval says (the loop, lock held). */
static int arm_timer(struct watch *w)
{
        if (!w->ev && !(w->ev = event_new(loop_base, -1, EV_PERSIST, on_timer, w)))
                return -1;
        event_del(w->ev);
        if (w->interval < 0)
                return 0;
        struct timeval tv = mono_timeval((uint64_t)w->interval);
        return event_add(w->ev, &tv) < 0 ? -1 : 0;
}

static int arm(struct watch *w)
{
        w->pending = false;
        return w->is_timer ? arm_timer(w) : arm_handle(w);
}

/* The loop: apply what other threads changed. */
static void on_wake(evutil_socket_t fd, short what, void *arg)
{
        uint64_t n;

        (void)what, (void)arg;
        (void)!read(fd, &n, sizeof(n));
        pthread_mutex_lock(&lock);
        wake_sent = false;
        for (size_t i = 0; i < n_watches; i++)
                if (watches[i]->pending)
                        arm(watches[i]);
        for (struct watch *w = released; w; w = w->next_released)
                if (w->ev)
                        event_del(w->ev);
        pthread_mutex_unlock(&lock);
        libvirt_event_flush();
}

/*
 * A new watch: armed at once on the loop (freed again when that fails),
 * else by the loop when it wakes. Returns its id or -1.
 */
static int add_watch(struct watch *w)
{
        pthread_mutex_lock(&lock);
        w->id = ++last_id;
        if (keep(w) < 0) {
                pthread_mutex_unlock(&lock);
                free(w);
                return -1;
        }
        if (!on_loop()) {
                wake_loop(w);
        } else if (arm(w) < 0) {
                forget(w);
                if (w->ev)
                        event_free(w->ev);
                free(w);
                pthread_mutex_unlock(&lock);
                return -1;
        }
        int id = w->id;
        pthread_mutex_unlock(&lock);
        return id;
}

/* libvirt changed what a watch wants (lock held). */
static void changed(struct watch *w)
{
        if (on_loop())
                arm(w);
        else
                wake_loop(w);
}

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
                      virFreeCallback ff)
{
        struct watch *w;

        if (fd < 0 || !(w = calloc(1, sizeof(*w))))
                return -1;
        *w =
            (struct watch){.fd = fd, .events = events, .handle_cb = cb, .opaque = opaque, .ff = ff};
        return add_watch(w);
}

/* A handle's events or a timer's interval changed (any thread). */
static void update(int id, bool is_timer, int value)
{
        pthread_mutex_lock(&lock);
        struct watch *w = find(id, is_timer);
        if (w) {
                if (is_timer)
                        w->interval = value;
                else
                        w->events = value;
                changed(w);
        }
        pthread_mutex_unlock(&lock);
}

static int remove_id(int id, bool is_timer)
{
        pthread_mutex_lock(&lock);
        struct watch *w = find(id, is_timer);
        if (w)
                remove_watch(w);
        pthread_mutex_unlock(&lock);
        return w ? 0 : -1;
}

static void update_handle(int id, int events)
{
        update(id, false, events);
}

static int remove_handle(int id)
{
        return remove_id(id, false);
}

/* ---- timeouts ---- */

static int add_timeout(int interval, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
        struct watch *w = calloc(1, sizeof(*w));

        if (!w)
                return -1;
        *w = (struct watch){.is_timer = true,
                            .fd = -1,
                            .interval = interval,
                            .timer_cb = cb,
                            .opaque = opaque,
                            .ff = ff};
        return add_watch(w);
}

static void update_timeout(int id, int interval)
{
        update(id, true, interval);
}

static int remove_timeout(int id)
{
        return remove_id(id, true);
}

int libvirt_event_register(struct event_base *base)
{
        if (loop_base)
                return loop_base == base ? 0 : -EALREADY;
        release_ev = evtimer_new(base, release, NULL);
        wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (wake_fd >= 0)
                wake_ev = event_new(base, wake_fd, EV_READ | EV_PERSIST, on_wake, NULL);
        if (!release_ev || !wake_ev || event_add(wake_ev, NULL) < 0) {
                if (wake_ev)
                        event_free(wake_ev);
                if (wake_fd >= 0)
                        close(wake_fd);
                if (release_ev)
                        event_free(release_ev);
                wake_ev = release_ev = NULL;
                wake_fd = -1;
                return -ENOMEM;
        }
        loop_base = base;
        loop_thread = pthread_self();
        virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout,
                             remove_timeout);
        return 0;
}
