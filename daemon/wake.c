/*
 * wake: extra balancing cycles when a backend asks for one. See wake.h.
 */
#include "wake.h"

#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <stdlib.h>

#include "daemon.h"
#include "bucket.h"
#include "log.h"

#define WAKE_PRIORITY 0 /* the cycle timer's priority (daemon.c): before client traffic */

struct wake {
        struct event *ev;
        struct bucket bucket; /* WAKE_RATE, WAKE_BURST */
        bool pending;
        uint64_t requested_cycle; /* d->cycles when the pending request came */
        double requested_ms;
        struct wake_stats stats;
};

/* Arm the timer to run in delay_ms; false when it cannot be. */
static bool arm(struct wake *w, double delay_ms)
{
        struct timeval tv = {.tv_sec = (time_t)(delay_ms / 1000.0),
                             .tv_usec = (suseconds_t)(fmod(delay_ms, 1000.0) * 1000.0)};

        return evtimer_add(w->ev, &tv) == 0;
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
        struct daemon *d = arg;
        struct wake *w = d->wake;
        double now = mono_ms_exact();

        (void)fd, (void)what;
        if (d->cycles > w->requested_cycle) { /* a cycle ran since: it has seen the news */
                w->pending = false;
                w->stats.dropped++;
                return;
        }
        /* The timer may fire a hair before the token is whole: wait for the rest. */
        if (!bucket_take(&w->bucket, now)) {
                if (!arm(w, bucket_wait_ms(&w->bucket, now)))
                        w->pending = false;
                return;
        }
        w->pending = false;
        w->stats.cycles++;
        log_msg(LOG_DEBUG, "extra cycle %.1f ms after a wakeup", now - w->requested_ms);
        daemon_cycle(d);
}

void wake_request(void *userdata)
{
        struct daemon *d = userdata;
        struct wake *w = d->wake;
        double now, delay;

        if (!w)
                return;
        w->stats.requests++;
        if (w->pending) {
                w->stats.dropped++;
                return;
        }
        now = mono_ms_exact();
        delay = bucket_wait_ms(&w->bucket, now);
        if (d->deadline_ms - now <= delay) { /* the regular cycle comes first */
                w->stats.dropped++;
                return;
        }
        if (!arm(w, delay))
                return;
        w->pending = true;
        w->requested_cycle = d->cycles;
        w->requested_ms = now;
}

int wake_init(struct daemon *d)
{
        struct wake *w = calloc(1, sizeof(*w));

        if (!w)
                return -ENOMEM;
        w->ev = evtimer_new(d->base, wake_cb, d);
        if (!w->ev || event_priority_set(w->ev, WAKE_PRIORITY) < 0) {
                if (w->ev)
                        event_free(w->ev);
                free(w);
                return -ENOMEM;
        }
        w->bucket = BUCKET(WAKE_RATE, WAKE_BURST);
        d->wake = w;
        return 0;
}

void wake_stats(const struct daemon *d, struct wake_stats *ret)
{
        *ret = d->wake ? d->wake->stats : (struct wake_stats){0};
}

void wake_free(struct daemon *d)
{
        struct wake *w = d->wake;

        if (!w)
                return;
        event_free(w->ev);
        free(w);
        d->wake = NULL;
}
