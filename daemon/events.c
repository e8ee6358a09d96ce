/*
 * events: the ring of recent balancer events and its readers. See events.h.
 */
#include "events.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "log.h"
#include "units.h"

struct events {
        struct events_entry *ring;
        size_t capacity;
        uint64_t last; /* sequence number of the newest event; 0 = none yet */
};

static const char *const kind_names[] = {
    [BALANCER_EVENT_ADD] = "add",
    [BALANCER_EVENT_REMOVE] = "remove",
    [BALANCER_EVENT_STARTED] = "started",
    [BALANCER_EVENT_REFUSED] = "refused",
    [BALANCER_EVENT_CRASHED] = "crashed",
    [BALANCER_EVENT_START_FAILED] = "start_failed",
    [BALANCER_EVENT_POLICY] = "policy",
    [BALANCER_EVENT_REBOOTED] = "rebooted",
    [BALANCER_EVENT_ARRIVING] = "arriving",
    [BALANCER_EVENT_ARRIVED] = "arrived",
    [BALANCER_EVENT_LEAVING] = "leaving",
    [BALANCER_EVENT_LEFT] = "left",
    [BALANCER_EVENT_MIGRATION_FAILED] = "migration_failed",
    [BALANCER_EVENT_MIGRATION_REFUSED] = "migration_refused",
    [BALANCER_EVENT_RELIEF] = "relief",
};

/* Why a resize happened, for people; NULL: the pressure says it all. */
static const char *const reason_words[] = {
    [REASON_NONE] = NULL,
    [REASON_DEMAND] = NULL,
    [REASON_MINIMUM] = "held at its minimum",
    [REASON_MAXIMUM] = "capped at its maximum",
    [REASON_SCARCITY] = "host short of memory",
    [REASON_STALL] = "guest stalling",
    [REASON_PROBE] = "probing its working set",
    [REASON_HOLD] = "holding",
    [REASON_WAITING] = "memory freed for it",
    [REASON_NO_SIGNAL] = "no demand known",
    [REASON_STATIC] = "static size",
    [REASON_STARTUP] = "startup size",
    [REASON_EXTERNAL] = "external policy",
    [REASON_OVERCOMMITTED] = "host overcommitted",
    [REASON_MIGRATING] = "migrating",
    [REASON_LENT] = "cache lent from idle memory",
};

const char *events_kind_name(enum balancer_event_kind kind)
{
        return (size_t)kind < sizeof(kind_names) / sizeof(kind_names[0]) && kind_names[kind]
                   ? kind_names[kind]
                   : "unknown";
}

int events_new(size_t capacity, struct events **ret)
{
        struct events *e = calloc(1, sizeof(*e));

        if (capacity == 0)
                capacity = EVENTS_RING_MAX;
        if (e)
                e->ring = calloc(capacity, sizeof(*e->ring));
        if (!e || !e->ring) {
                free(e);
                return -ENOMEM;
        }
        e->capacity = capacity;
        *ret = e;
        return 0;
}

void events_free(struct events *e)
{
        if (!e)
                return;
        free(e->ring);
        free(e);
}

static uint64_t wall_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void events_add(struct events *e, const struct balancer_event *ev)
{
        struct events_entry *x = &e->ring[e->last % e->capacity];

        *x = (struct events_entry){
            .seq = e->last + 1,
            .time_ms = wall_ms(),
            .kind = ev->kind,
            .bytes = ev->bytes,
            .from_bytes = ev->from_bytes,
            .to_bytes = ev->to_bytes,
            .reason = ev->reason,
            .pressure = ev->pressure >= 0.0 && isfinite(ev->pressure) ? ev->pressure : -1.0,
        };
        if (ev->vm)
                snprintf(x->vm, sizeof(x->vm), "%s", ev->vm->name);
        /*
         * A message may quote a program's words (an exec: policy's reply, QEMU's
         * error): cleaned here, where it enters the record, so that `dynmem
         * events`, --json and the HTTP API carry no control characters, then
         * made valid UTF-8 for JSON.
         */
        if (ev->message) {
                log_clean(x->message, sizeof(x->message), ev->message);
                control_text_scrub(x->message);
        }
        e->last++;
}

uint64_t events_last(const struct events *e)
{
        return e->last;
}

static void text_resize(const struct events_entry *x, char *buf, size_t len)
{
        const char *words = (size_t)x->reason < sizeof(reason_words) / sizeof(reason_words[0])
                                ? reason_words[x->reason]
                                : NULL;
        char size[32], pressure[32];

        size_format(x->bytes, size, sizeof(size));
        if (x->pressure >= 0.0)
                snprintf(pressure, sizeof(pressure), "pressure %.0f %%", x->pressure);
        else
                snprintf(pressure, sizeof(pressure), "pressure unknown");
        snprintf(buf, len, "%s %c%s: %s%s%s", x->vm, x->kind == BALANCER_EVENT_ADD ? '+' : '-',
                 size, words ? words : "", words ? ", " : "", pressure);
}

char *events_text(const struct events_entry *x, char *buf, size_t len)
{
        char size[32];

        switch (x->kind) {
        case BALANCER_EVENT_ADD:
        case BALANCER_EVENT_REMOVE:
                text_resize(x, buf, len);
                break;
        case BALANCER_EVENT_STARTED:
                snprintf(buf, len, "%s started with %s", x->vm,
                         size_format(x->bytes, size, sizeof(size)));
                break;
        case BALANCER_EVENT_REFUSED:
                snprintf(buf, len, "%s start refused: %s", x->vm, x->message);
                break;
        case BALANCER_EVENT_CRASHED:
                snprintf(buf, len, "%s crashed; its %s are free again", x->vm,
                         size_format(x->bytes, size, sizeof(size)));
                break;
        case BALANCER_EVENT_START_FAILED:
                snprintf(buf, len, "%s could not start: %s", x->vm, x->message);
                break;
        case BALANCER_EVENT_REBOOTED:
                snprintf(buf, len, "%s: the guest restarted; back to %s", x->vm,
                         size_format(x->bytes, size, sizeof(size)));
                break;
        case BALANCER_EVENT_ARRIVING:
                snprintf(buf, len, "%s admitted: arriving by live migration, %s counted here",
                         x->vm, size_format(x->bytes, size, sizeof(size)));
                break;
        case BALANCER_EVENT_ARRIVED: /* the daemon's own: the message says it all */
        case BALANCER_EVENT_LEAVING:
        case BALANCER_EVENT_LEFT:
        case BALANCER_EVENT_MIGRATION_FAILED:
        case BALANCER_EVENT_MIGRATION_REFUSED:
                snprintf(buf, len, "%s %s", x->vm, x->message);
                break;
        case BALANCER_EVENT_RELIEF:
                snprintf(buf, len, "relief: %s", x->message);
                break;
        default:
                snprintf(buf, len, "policy: %s", x->message);
                break;
        }
        return buf;
}

static json_t *entry_json(const struct events_entry *x)
{
        bool resize = x->kind == BALANCER_EVENT_ADD || x->kind == BALANCER_EVENT_REMOVE;
        char text[EVENTS_TEXT_MAX];
        json_t *o = json_pack("{s:I, s:I, s:s, s:o, s:s}", "seq", (json_int_t)x->seq, "time_ms",
                              (json_int_t)x->time_ms, "kind", events_kind_name(x->kind), "vm",
                              x->vm[0] ? json_string(x->vm) : json_null(), "text",
                              events_text(x, text, sizeof(text)));
        int bad = !o;

        if (!bad && x->kind != BALANCER_EVENT_POLICY)
                bad |= json_object_set_new(o, "bytes", json_integer((json_int_t)x->bytes));
        if (!bad && resize)
                bad |=
                    json_object_set_new(o, "from_bytes", json_integer((json_int_t)x->from_bytes)) |
                    json_object_set_new(o, "to_bytes", json_integer((json_int_t)x->to_bytes)) |
                    json_object_set_new(o, "reason", json_string(policy_reason_name(x->reason))) |
                    json_object_set_new(
                        o, "pressure_percent",
                        x->pressure < 0.0 ? json_null() : json_real(round(x->pressure * 10) / 10));
        if (!bad && x->message[0])
                bad |= json_object_set_new(o, "message", json_string(x->message));
        if (bad) {
                json_decref(o);
                return NULL;
        }
        return o;
}

json_t *events_json(const struct events *e, uint64_t since, size_t max)
{
        uint64_t oldest = e->last >= e->capacity ? e->last - e->capacity + 1 : 1;
        uint64_t from, dropped = 0, seq;
        json_t *list = json_array();

        if (since > e->last)
                since = 0; /* a number from before a restart */
        from = since + 1;
        if (from < oldest) {
                dropped = since ? oldest - from : 0;
                from = oldest;
        }
        for (seq = from; list && seq <= e->last && seq - from < max; seq++) {
                json_t *o = entry_json(&e->ring[(seq - 1) % e->capacity]);
                if (!o || json_array_append_new(list, o) < 0) {
                        json_decref(list);
                        list = NULL;
                }
        }
        if (!list)
                return NULL;
        return json_pack("{s:o, s:I, s:I, s:b}", "events", list, "next", (json_int_t)(seq - 1),
                         "dropped", (json_int_t)dropped, "more", seq <= e->last);
}
