/*
 * conn: the agent's end of its virtio-serial port. The port is found by name
 * under /sys/class/virtio-ports (or given as a path: a character device, or
 * a unix socket to connect to, which the tests use), kept open, and watched:
 * while the host side is away the port reports POLLHUP and reads return 0,
 * so the agent stops polling it and looks again every CONN_RETRY_MS.
 *
 * A port hot-unplugged (the host removed its virtserialport device) looks the
 * same from an open descriptor, for good: so while the host side is away the
 * agent also checks that the port's name still leads to the device node it
 * opened, and when it does not (gone, or a new node: plugged again) closes
 * the old one and opens the port afresh. A failed read or write closes the
 * port too. Opening again is retried after CONN_RETRY_MS, the wait doubling
 * with each failure up to CONN_RETRY_MAX_MS until the host side is connected
 * again; one line is logged per outage, and one when the port is back.
 *
 * Input is cut into lines of at most AGENT_LINE_MAX bytes (longer ones are
 * discarded to their newline). Output goes through a small queue; a line
 * that does not fit is dropped (the host side is not reading).
 */
#ifndef DYNMEM_GUEST_CONN_H
#define DYNMEM_GUEST_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "agent_wire.h"
#include "util.h"

#define CONN_RETRY_MS     1000
#define CONN_RETRY_MAX_MS 10000
#define CONN_OUT_MAX      (4 * AGENT_LINE_MAX)

enum conn_state {
        CONN_CLOSED,    /* not open; retry at retry_ms */
        CONN_HOST_AWAY, /* open, the host side is not connected */
        CONN_UP,        /* open, the host side is connected */
};

struct conn {
        const char *spec; /* port name or path */
        enum conn_state state;
        int fd;
        bool socket;                 /* a unix socket (tests), not a virtio port */
        uint64_t retry_ms;           /* CLOSED: next open; HOST_AWAY: next look */
        uint64_t retry_gap_ms;       /* the wait after the next failure (backoff) */
        char path[UTIL_PATH_MAX];    /* what was opened (util_path() writes up to that) */
        uint64_t node_dev, node_ino; /* the node opened, to tell a new one from it */
        bool outage;                 /* logged that the port failed or is missing */
        char in[AGENT_LINE_MAX];
        size_t in_len;
        bool discarding;
        char out[CONN_OUT_MAX];
        size_t out_len;
        uint64_t dropped; /* lines not queued: the queue was full */
};

void conn_init(struct conn *c, const char *spec);

/*
 * Does the port exist: a virtio-serial port of that name, or the path given?
 * Whether it can be opened, or a host is on the other side, is not asked.
 */
bool conn_port_exists(const char *spec);
void conn_close(struct conn *c, uint64_t now_ms);

/*
 * Open the port or look for the host side when due. Returns true when the
 * host side has just become connected (the caller announces itself).
 */
bool conn_service(struct conn *c, uint64_t now_ms);

/* Events to poll the fd for (0: do not poll it). */
short conn_events(const struct conn *c);

/* Milliseconds until conn_service() has something to do; -1 = nothing. */
int conn_timeout(const struct conn *c, uint64_t now_ms);

/*
 * After poll(): read what arrived, calling on_line for each complete line
 * (without its newline), and flush the queue. Returns false when the host
 * side went away or the port failed (the caller forgets the handshake).
 */
bool conn_io(struct conn *c, short revents, uint64_t now_ms,
             void (*on_line)(void *arg, const char *line, size_t len), void *arg);

/* Queue one line (with its newline) and try to send it. False when it was dropped. */
bool conn_send(struct conn *c, const char *line, size_t len, uint64_t now_ms);

#endif
