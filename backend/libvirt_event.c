/*
 * libvirt_event: libvirt's handles and timeouts as libevent events on
 * dynmemd's loop. See libvirt_event.h.
 */
#include "libvirt_event.h"
#include "mono.h"

#include <errno.h>
#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct watch {
        int id;
        bool is_timer;
        int fd;       /* handles */
        int interval; /* timers: ms, 0 every turn, -1 disabled */
        bool removed; /* stopped; freed (and ff called) from the loop */
        struct event *ev;
        virEventHandleCallback handle_cb;
        virEventTimeoutCallback timer_cb;
        void *opaque;
        virFreeCallback ff;
        struct watch *next_released;
};

static struct event_base *loop_base;
static struct watch **watches; /* live ones */
static size_t n_watches, cap_watches;
static int last_id;
static struct watch *released;   /* removed, waiting for release() (linked by next_released) */
static struct event *release_ev; /* runs release() at the next turn of the loop */

size_t libvirt_event_count(void)
{
        return n_watches;
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

/* A new watch joins the live ones once its event is armed (armed == 0), else it is freed. */
static int admit(struct watch *w, int armed)
{
        if (armed == 0 && keep(w) == 0)
                return w->id;
        if (w->ev)
                event_free(w->ev);
        free(w);
        return -1;
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
        while (released) {
                struct watch *w = released;
                released = w->next_released;
                if (w->ff)
                        w->ff(w->opaque);
                event_free(w->ev);
                free(w);
        }
}

static int remove_watch(struct watch *w)
{
        static const struct timeval now = {0, 0};

        event_del(w->ev);
        w->removed = true;
        forget(w);
        w->next_released = released;
        released = w;
        event_add(release_ev, &now);
        return 0;
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

        if (!w->removed && events)
                w->handle_cb(w->id, (int)fd, events, w->opaque);
}

static int watch_handle(struct watch *w, int events)
{
        short flags = to_libevent(events);

        event_del(w->ev);
        if (!flags)
                return 0;
        if (event_assign(w->ev, loop_base, w->fd, flags | EV_PERSIST, on_handle, w) < 0)
                return -1;
        return event_add(w->ev, NULL) < 0 ? -1 : 0;
}

static int add_handle(int fd, int events, virEventHandleCallback cb, void *opaque,
                      virFreeCallback ff)
{
        struct watch *w = calloc(1, sizeof(*w));

        if (!w || fd < 0) {
                free(w);
                return -1;
        }
        *w = (struct watch){.id = ++last_id, .fd = fd, .handle_cb = cb, .opaque = opaque, .ff = ff};
        w->ev = event_new(loop_base, fd, EV_READ | EV_PERSIST, on_handle, w);
        return admit(w, w->ev ? watch_handle(w, events) : -1);
}

static void update_handle(int id, int events)
{
        struct watch *w = find(id, false);

        if (w)
                watch_handle(w, events);
}

static int remove_handle(int id)
{
        struct watch *w = find(id, false);

        return w ? remove_watch(w) : -1;
}

/* ---- timeouts ---- */

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
        static const struct timeval now = {0, 0};
        struct watch *w = arg;

        (void)fd, (void)what;
        if (w->removed)
                return;
        w->timer_cb(w->id, w->opaque);
        /* libevent does not repeat a persistent timer of zero: "every turn" is done here. */
        if (!w->removed && w->interval == 0 && !event_pending(w->ev, EV_TIMEOUT, NULL))
                event_add(w->ev, &now);
}

static int arm_timer(struct watch *w, int interval)
{
        w->interval = interval;
        event_del(w->ev);
        if (interval < 0)
                return 0;
        struct timeval tv = mono_timeval((uint64_t)interval);
        return event_add(w->ev, &tv) < 0 ? -1 : 0;
}

static int add_timeout(int interval, virEventTimeoutCallback cb, void *opaque, virFreeCallback ff)
{
        struct watch *w = calloc(1, sizeof(*w));

        if (!w)
                return -1;
        *w = (struct watch){.id = ++last_id,
                            .is_timer = true,
                            .fd = -1,
                            .timer_cb = cb,
                            .opaque = opaque,
                            .ff = ff};
        w->ev = event_new(loop_base, -1, EV_PERSIST, on_timer, w);
        return admit(w, w->ev ? arm_timer(w, interval) : -1);
}

static void update_timeout(int id, int interval)
{
        struct watch *w = find(id, true);

        if (w)
                arm_timer(w, interval);
}

static int remove_timeout(int id)
{
        struct watch *w = find(id, true);

        return w ? remove_watch(w) : -1;
}

int libvirt_event_register(struct event_base *base)
{
        if (loop_base)
                return loop_base == base ? 0 : -EALREADY;
        release_ev = evtimer_new(base, release, NULL);
        if (!release_ev)
                return -ENOMEM;
        loop_base = base;
        virEventRegisterImpl(add_handle, update_handle, remove_handle, add_timeout, update_timeout,
                             remove_timeout);
        return 0;
}
