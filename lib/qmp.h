/*
 * qmp: a non-blocking client for QEMU's machine protocol (QMP) on a unix
 * socket, driven by the caller's libevent loop.
 *
 * The client reads the greeting, negotiates capabilities, then sends
 * commands with numeric ids and hands each reply to the callback given with
 * the command. Commands issued before negotiation finishes are queued.
 * Asynchronous events go to the event callback.
 *
 * QEMU is only as trustworthy as the guest it runs, so every line is capped
 * at QMP_LINE_MAX bytes and every message is shape-checked: a line that is
 * too long, is not a JSON object, or fits no QMP message (greeting, reply to
 * a pending id, error with class and description, named event) closes the
 * connection with a reason. Numbers are decoded as doubles
 * (JSON_DECODE_INT_AS_REAL) so that QEMU's 2^64-1 "unknown" markers parse;
 * read them back with qmp_get_u64(), which accepts only exact, in-range,
 * non-negative integers.
 *
 * Callbacks may call qmp_free() on their own client; freeing is deferred
 * until the dispatch returns. qmp_free() drops pending commands without
 * calling their callbacks; a connection that closes by itself first answers
 * every pending command with QMP_GONE, then calls `closed`.
 */
#ifndef DYNMEM_QMP_H
#define DYNMEM_QMP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QMP_LINE_MAX         (1024 * 1024) /* longest message accepted, bytes */
#define QMP_PENDING_MAX      64            /* commands queued or awaiting replies */
#define QMP_REPLY_TIMEOUT_MS 30000         /* no reply (or greeting) by then closes */
#define QMP_EVENT_NAME_MAX   64

struct event_base;
struct qmp;

enum qmp_status {
        QMP_OK,    /* QEMU returned a value */
        QMP_ERROR, /* QEMU refused the command */
        QMP_GONE,  /* the connection closed before a reply came */
};

struct qmp_reply {
        enum qmp_status status;
        json_t *ret;             /* QMP_OK: the "return" member (borrowed) */
        const char *error_class; /* QMP_ERROR: e.g. "GenericError" */
        const char *error_desc;  /* QMP_ERROR: QEMU's sentence; QMP_GONE: why it closed */
};

typedef void (*qmp_reply_fn)(struct qmp *q, const struct qmp_reply *reply, void *userdata);

struct qmp_callbacks {
        /* Capabilities negotiated; queued commands have been sent. May be NULL. */
        void (*ready)(struct qmp *q, void *userdata);
        /* An asynchronous event; data is its "data" object or NULL. May be NULL. */
        void (*event)(struct qmp *q, const char *name, json_t *data, void *userdata);
        /* The connection closed (EOF, error, protocol violation, timeout). May be NULL. */
        void (*closed)(struct qmp *q, const char *why, void *userdata);
};

/*
 * Connect to the QMP socket at path. The connect itself is immediate (unix
 * socket): -ENOENT, -ECONNREFUSED... are returned at once. Everything after
 * it happens in the loop.
 */
int qmp_connect(struct event_base *base, const char *path, const struct qmp_callbacks *cb,
                void *userdata, struct qmp **ret);

/* Same over a connected stream socket, which the client takes over (tests use socketpairs). */
int qmp_new_fd(struct event_base *base, int fd, const struct qmp_callbacks *cb, void *userdata,
               struct qmp **ret);

void qmp_free(struct qmp *q);

/* Replies or greetings slower than this close the connection (default QMP_REPLY_TIMEOUT_MS). */
void qmp_set_reply_timeout(struct qmp *q, uint64_t ms);

/*
 * Send `execute` with `arguments` (an object, or NULL; the reference is
 * stolen, also on failure). fn may be NULL. Returns 0, -ENOTCONN when the
 * connection is closed, -EBUSY when QMP_PENDING_MAX commands are pending,
 * -EINVAL or -ENOMEM.
 */
int qmp_command(struct qmp *q, const char *execute, json_t *arguments, qmp_reply_fn fn,
                void *userdata);

bool qmp_is_ready(const struct qmp *q);
bool qmp_is_closed(const struct qmp *q);

/* QEMU's version from the greeting (0.0.0 before it arrived). */
void qmp_version(const struct qmp *q, unsigned *ret_major, unsigned *ret_minor,
                 unsigned *ret_micro);

/*
 * Read an exact non-negative integer no larger than max from member `key`
 * of obj (or from obj itself when key is NULL). Returns 0, -ENOENT (no such
 * member), -EINVAL (not an integral number) or -ERANGE (negative, above max,
 * or 2^53 and beyond, where doubles are no longer exact).
 */
int qmp_get_u64(const json_t *obj, const char *key, uint64_t max, uint64_t *ret);

/* A string member no longer than maxlen bytes, or NULL. */
const char *qmp_get_string(const json_t *obj, const char *key, size_t maxlen);

#endif
