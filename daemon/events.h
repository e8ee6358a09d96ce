/*
 * events: what the balancer did lately, for `dynmem events` and GET
 * /api/v1/events. Every balancer event (a grow or shrink with its size and
 * reason, a start, a refused start, a crash, a failed start, a policy
 * failure) is copied into a bounded ring with a sequence number (1, 2, ...)
 * and the wall-clock time. A message's control characters become spaces
 * (log_clean) as it is recorded: it may quote an outside program.
 *
 * Readers follow by asking for the events after the last number they saw.
 * The daemon keeps nothing per reader and never waits for one: a reader
 * that falls behind by more than the ring holds gets what is left and the
 * number of events it missed ("dropped"), so a slow follower costs the
 * daemon nothing.
 */
#ifndef DYNMEM_EVENTS_H
#define DYNMEM_EVENTS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "balancer.h"
#include "vm.h"

#define EVENTS_RING_MAX 4096 /* events kept */
#define EVENTS_READ_MAX 1024 /* events in one reply; "more" says when others follow */
#define EVENTS_TEXT_MAX 256

struct events_entry {
        uint64_t seq;
        uint64_t time_ms; /* wall clock, Unix milliseconds */
        enum balancer_event_kind kind;
        char vm[VM_NAME_MAX]; /* "" for policy events */
        uint64_t bytes, from_bytes, to_bytes;
        enum policy_reason reason;
        double pressure; /* percent, -1 unknown */
        char message[160];
};

struct events;

/* A ring of `capacity` events (0: EVENTS_RING_MAX). Returns 0 or -ENOMEM. */
int events_new(size_t capacity, struct events **ret);

/* Accepts NULL. */
void events_free(struct events *e);

/* Record one balancer event now. Never allocates; overwrites the oldest when full. */
void events_add(struct events *e, const struct balancer_event *ev);

/* The newest sequence number (0 before the first event). */
uint64_t events_last(const struct events *e);

/*
 * The events after `since` (0: every event kept), oldest first, at most
 * `max` of them, as {"events": [...], "next": N, "dropped": K, "more": B}:
 * pass N as the next `since`; K counts the events after `since` that the
 * ring no longer holds; B is true when more events wait. A `since` beyond
 * the newest event (the daemon restarted) reads from the oldest kept.
 * NULL when out of memory.
 */
json_t *events_json(const struct events *e, uint64_t since, size_t max);

/* One event for people: "web1 +256 MiB: pressure 118 %". Returns buf. */
char *events_text(const struct events_entry *entry, char *buf, size_t len);

/* The event kind's name in JSON: "add", "remove", "started", ... */
const char *events_kind_name(enum balancer_event_kind kind);

#endif
