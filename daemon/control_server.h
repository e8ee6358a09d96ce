/*
 * control_server: dynmemd's control socket. A Unix stream socket (mode
 * 0660, group dynmem when that group exists) served from the event loop
 * with non-blocking bufferevents, speaking lib/control's JSON lines.
 *
 * Who may do what is decided from SO_PEERCRED / SO_PEERGROUPS: root, the
 * daemon's own user and members of the admin group ([host] admin_group, none
 * by default) may read and change; members of the read group may read;
 * nobody else gets anything but "permission denied". (The socket's mode
 * lets the read group connect: admins who are not root need that group too.)
 *
 * No client can stall the daemon or make it hold much memory: a request
 * line is at most CONTROL_REQUEST_MAX bytes; a client's next request is not
 * read while its replies are unsent; a client idle (sending nothing, or
 * reading nothing) for CONTROL_SERVER_IDLE_MS is dropped; at most
 * CONTROL_SERVER_CLIENTS_MAX clients are served at once. Start and stop
 * requests are answered after the balancing cycle that decides them; a
 * carry request as soon as the backend says its write is over
 * (control_server_carried()), or at the end of its own wait, on a timer.
 *
 * Idle means idle: when the loop was held up for longer than that (a define
 * a slow libvirtd took 40 s to answer), a client whose request was being
 * served, who sent one meanwhile or whose reply waits is not dropped; its
 * reply is written first.
 */
#ifndef DYNMEM_CONTROL_SERVER_H
#define DYNMEM_CONTROL_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONTROL_SERVER_CLIENTS_MAX 128
#define CONTROL_SERVER_IDLE_MS     30000
#define CONTROL_SERVER_LINGER_MS   2000 /* input still read (and dropped) after a closing reply */
#define CONTROL_SERVER_OUTPUT_HIGH (256u * 1024)
#define CONTROL_SERVER_WRITE_MAX   (1024 * 1024) /* bytes handed to one write() */
#define CONTROL_SERVER_BACKLOG     CONTROL_SERVER_CLIENTS_MAX

struct daemon;
struct control_server;

struct control_server_options {
        const char *path;
        const char *readers; /* who may read besides root, for messages: "group dynmem" */
        gid_t read_gid;
        bool read_gid_valid;    /* false: no group, only root and the daemon's user ("user NAME") */
        const char *admin_name; /* for messages; NULL: no admin group */
        gid_t admin_gid;
        bool admin_gid_valid;
        unsigned idle_ms; /* a client's idle timeout; 0: CONTROL_SERVER_IDLE_MS (tests: less) */
};

/*
 * Create the socket (refusing when another dynmemd answers on it, replacing
 * a stale one) and serve it from d's event loop. Returns 0 or a negative
 * errno with one sentence in err.
 */
int control_server_new(struct daemon *d, const struct control_server_options *opt,
                       struct control_server **ret, char *err, size_t errlen);

/* A balancing cycle ended: answer the start and stop requests it decided. */
void control_server_after_cycle(struct control_server *s);

/*
 * A write a carry request may wait for is over (the backend environment's
 * carried()): the bounded waits are looked at on the loop's next turn. s may
 * be NULL.
 */
void control_server_carried(struct control_server *s);

/* Clients connected now. */
size_t control_server_clients(const struct control_server *s);

/* Requests served so far. */
uint64_t control_server_requests(const struct control_server *s);

/* Close every client (waiting ones are told the daemon stops), remove the socket. */
void control_server_free(struct control_server *s);

#endif
