/*
 * wake: extra balancing cycles when a backend asks for one. See wake.h.
 */
#include "wake.h"

#include <errno.h>
#include <event2/event.h>
#include <stdlib.h>

#include "daemon.h"
#include "log.h"

#define WAKE_PRIORITY 0 /* the cycle timer's priority (daemon.c): before client traffic */

struct wake {
        struct event *ev;
        double tokens;
        double refilled_ms;
        bool pending;
        uint64_t requested_cycle; /* d->cycles when the pending request came */
        double requested_ms;
        struct wake_stats stats;
};

static void refill(struct wake *w, double now)
{
        if (now > w->refilled_ms) {
                w->tokens += (now - w->refilled_ms) * WAKE_RATE / 1000.0;
                if (w->tokens > WAKE_BURST)
                        w->tokens = WAKE_BURST;
        }
        w->refilled_ms = now;
}

static void wake_cb(evutil_socket_t fd, short what, void *arg)
{
        struct daemon *d = arg;
        struct wake *w = d->wake;
        double now = daemon_mono_ms();

        (void)fd, (void)what;
        w->pending = false;
        if (d->cycles > w->requested_cycle) { /* a cycle ran since: it has seen the news */
                w->stats.dropped++;
                return;
        }
        refill(w, now);
        w->tokens -= 1.0;
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
        now = daemon_mono_ms();
        refill(w, now);
        delay = w->tokens >= 1.0 ? 0.0 : (1.0 - w->tokens) * 1000.0 / WAKE_RATE;
        if (d->deadline_ms - now <= delay) { /* the regular cycle comes first */
                w->stats.dropped++;
                return;
        }
        struct timeval tv = {.tv_sec = 0, .tv_usec = (suseconds_t)(delay * 1000.0)};
        if (evtimer_add(w->ev, &tv) < 0)
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
        w->tokens = WAKE_BURST;
        w->refilled_ms = daemon_mono_ms();
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
