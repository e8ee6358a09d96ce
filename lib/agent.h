/*
 * agent: the host side of the guest agent protocol (docs/guest-protocol.md)
 * for one VM: a line parser fed with whatever bytes arrive from the VM's
 * agent socket, the version handshake and the latest validated report. The
 * protocol's words are agent_wire.h's (shared with the guest agent); each
 * accepted report feeds the demand and stall estimate of agent_estimate.h
 * (docs/demand.md), which agent_estimate() returns.
 *
 * No I/O, no clock, no logging: the caller owns the socket, passes the
 * monotonic time in milliseconds, writes what agent_output() returns, and
 * logs what agent_feed() says happened (once, rate-limited).
 *
 * Everything the guest sends is hostile. Lines are at most AGENT_LINE_MAX
 * bytes (longer ones are discarded up to the next newline and counted), keys
 * and values are [a-z0-9_.-], numbers are plain decimals checked against a
 * range per field, a report that breaks any rule is dropped whole, counters
 * that go backwards restart the deltas (never a negative rate), unknown types
 * and keys are ignored and counted, and a token bucket bounds how many lines
 * per second are parsed. The demand estimate is never above the guest's own
 * MemTotal plus AGENT_DEMAND_MARGIN_DIV-th of it, nor above the VM's limit.
 *
 * How a backend drives it (one struct agent per running VM):
 *
 *   agent_new(&opts, &a)                      when the VM starts
 *   connected to run_dir/NAME.agent:          agent_connected(a, now);
 *                                             write agent_output(a, now, ...)
 *   bytes arrived:                            ev = agent_feed(a, buf, n, now);
 *     ev & AGENT_EV_READY      log: agent_version(), agent_caps_format() (only
 *                              when the handshake is new or its result changed)
 *     ev & AGENT_EV_REFUSED    log agent_refusal(a) once; keep the VM on
 *                              balloon statistics (the agent is ignored)
 *     ev & AGENT_EV_REPORT     agent_estimate(a, now, &e) -> observation; when
 *                              e.urgent_reports grew, the guest started to stall:
 *                              wake the loop now (also ev & AGENT_EV_URGENT)
 *     ev & AGENT_EV_ERROR      log agent_last_error(a), rate-limited
 *     then write agent_output(a, now, ...) when it returns > 0
 *   once a second:                            write agent_output(a, now, ...)
 *                                             (re-sends the hello to an agent gone silent)
 *   EOF or error on the socket:               agent_disconnected(a); reconnect later
 *   the VM stops:                             agent_free(a)
 */
#ifndef DYNMEM_AGENT_H
#define DYNMEM_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_estimate.h"
#include "agent_wire.h"

/* ---- host-side limits ---- */

#define AGENT_RATE_DEFAULT     20   /* lines parsed per second ... */
#define AGENT_BURST_DEFAULT    40   /* ... with this burst */
#define AGENT_REHELLO_MS       5000 /* an agent heard, then silent this long, gets the hello again */
#define AGENT_REHELLO_MAX_MS   60000 /* ... the silence doubles after each, up to this */
#define AGENT_REFUSED_RETRY_MS 60000 /* after a refusal, a new agent hello is heard this late */

enum agent_state {
        AGENT_DISCONNECTED,
        AGENT_WAITING, /* connected, no handshake yet */
        AGENT_READY,   /* version agreed: reports are accepted */
        AGENT_REFUSED, /* incompatible or misbehaving agent: ignored */
};

/* What agent_feed() saw, a bit mask. */
enum agent_event {
        AGENT_EV_READY = 1u << 0,   /* a handshake completed with a new result */
        AGENT_EV_REFUSED = 1u << 1, /* the agent was refused; agent_refusal() says why */
        AGENT_EV_REPORT = 1u << 2,  /* a new report was accepted */
        AGENT_EV_URGENT = 1u << 3,  /* ... and it was sent because the guest started to stall */
        AGENT_EV_OUTPUT = 1u << 4,  /* agent_output() has a line to send */
        AGENT_EV_ERROR = 1u << 5,   /* a line was rejected; agent_last_error() says why */
};

struct agent_options {
        uint64_t interval_ms; /* report interval asked of the agent; 0 = AGENT_INTERVAL_DEFAULT */
        uint64_t limit_bytes; /* the most memory the VM can have; 0 = AGENT_BYTES_MAX */
        uint32_t rate_per_s;  /* lines parsed per second; 0 = AGENT_RATE_DEFAULT */
        uint32_t burst;       /* 0 = AGENT_BURST_DEFAULT */
        uint32_t proto_min;   /* versions the host offers; 0 = AGENT_PROTO_MIN/MAX */
        uint32_t proto_max;
};

struct agent_counters {
        uint64_t bytes;          /* bytes fed */
        uint64_t lines;          /* complete lines seen */
        uint64_t parsed;         /* lines parsed (within the rate) */
        uint64_t rate_dropped;   /* lines dropped by the token bucket */
        uint64_t too_long;       /* lines over AGENT_LINE_MAX, discarded */
        uint64_t malformed;      /* bad magic, characters, spacing, numbers, duplicate keys */
        uint64_t unknown_types;  /* well-formed lines of a type this side does not know */
        uint64_t unknown_keys;   /* keys this side does not know (ignored) */
        uint64_t rejected;       /* hellos and reports with a missing or out-of-range field */
        uint64_t out_of_state;   /* reports before the handshake, lines while refused,
                                    a stale version=0 answer */
        uint64_t reports;        /* reports accepted */
        uint64_t urgent;         /* accepted reports sent because the guest started to stall */
        uint64_t counter_resets; /* a guest counter or the guest clock went backwards */
        uint64_t hellos_sent;
        uint64_t handshakes; /* hellos accepted */
};

struct agent;

/* Fill opts with the defaults. */
void agent_options_default(struct agent_options *ret);

/* A new agent state (disconnected). 0, -EINVAL (options out of range), -ENOMEM. */
int agent_new(const struct agent_options *opts, struct agent **ret);
void agent_free(struct agent *a);

/* The socket connected: forget any partial line and the handshake; the hello is queued. */
void agent_connected(struct agent *a, uint64_t now_ms);

/* The socket closed. The last report is kept (it goes stale by itself). */
void agent_disconnected(struct agent *a);

/*
 * Bytes that arrived (any split: partial lines, many lines). Returns the
 * enum agent_event bits of what happened. Never fails: bad input is counted.
 */
unsigned agent_feed(struct agent *a, const void *buf, size_t len, uint64_t now_ms);

/*
 * The line to write to the agent now, if any: the hello after
 * agent_connected(), in answer to an agent's announcement, and again when
 * an agent heard on this connection has been silent for AGENT_REHELLO_MS
 * (then 10, 20, 40, 60, 60... s; any line resets it). An agent never heard
 * is not written to again: a guest without an agent does not read its port,
 * and what is written would only pile up. Nothing once the agent is refused. Writes at most len
 * bytes (AGENT_LINE_MAX is enough), returns the length, 0 when there is nothing to send (or len is
 * too small).
 */
size_t agent_output(struct agent *a, uint64_t now_ms, char *buf, size_t len);

/* The latest derived values. 0, or -ENODATA before the first accepted report. */
int agent_estimate(const struct agent *a, uint64_t now_ms, struct agent_estimate *ret);

/* The latest accepted report, or NULL. */
const struct agent_report *agent_last_report(const struct agent *a);

enum agent_state agent_state(const struct agent *a);
const char *agent_state_name(enum agent_state s);

/* Agreed protocol version (0 before the handshake) and the agent's capabilities. */
uint32_t agent_version(const struct agent *a);
unsigned agent_caps(const struct agent *a);

/* The agent's own version string as announced ("" when none), [a-z0-9_.-] only. */
const char *agent_software(const struct agent *a);

/* One sentence: why the agent was refused ("" when it was not). */
const char *agent_refusal(const struct agent *a);

/* One sentence: why the latest rejected line was rejected ("" when none). */
const char *agent_last_error(const struct agent *a);

const struct agent_counters *agent_counters(const struct agent *a);

const char *agent_cause_name(enum agent_cause c);

#endif
