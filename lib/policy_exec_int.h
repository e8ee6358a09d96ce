/*
 * policy_exec_int: what the two halves of the exec: policy share and nothing
 * else includes. policy_exec.c owns the protocol (the request line, the
 * reply parser), the child process and the waiting mode dynmem-sim uses;
 * policy_exec_loop.c drives the same child from an event loop (dynmemd).
 */
#ifndef DYNMEM_POLICY_EXEC_INT_H
#define DYNMEM_POLICY_EXEC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "child.h"
#include "policy_exec.h"

struct event;
struct event_base;
struct evbuffer;

/* One target of a reply that arrived, by VM name (loop mode). */
struct policy_exec_target {
        const char *name; /* points into policy_exec.names */
        uint64_t bytes;   /* 0: keep */
};

struct policy_exec_loop {
        struct event_base *base;
        void (*on_reply)(void *userdata);
        void *userdata;
        struct event *read_ev, *write_ev, *pid_ev, *deadline_ev;
        unsigned kill_ms;     /* a request unanswered this long kills the process */
        struct evbuffer *out; /* the request not yet written */
        char *in;             /* the reply read so far */
        size_t in_len, in_cap;
        bool in_flight;        /* a request was sent and no reply came yet */
        bool started_fresh;    /* the request in flight is the first to a new process */
        uint64_t sent_mono_ms; /* when it was sent */
        bool late_said;        /* its lateness was reported */
        bool output_closed;    /* EOF seen: waiting for the exit status */
        bool killing;          /* a failure killed it; its exit only needs reaping */
        char *names;           /* the VM names the request described, NUL-separated */
        struct policy_exec_target *targets; /* sorted by name */
        size_t n_targets;
        bool reply_ready; /* targets hold a reply not yet applied */
        int fail_errno;   /* a failure waiting to be reported, 0: none */
        char fail_msg[300];
};

struct policy_exec {
        char *command;
        pid_t pid;
        int pidfd;
        int to_child;   /* its stdin */
        int from_child; /* its stdout */
        uint64_t failed_at_ms;
        bool failed;
        bool failure_said;              /* "waiting to be restarted" said for this failure */
        unsigned failures;              /* in a row, for the restart pause */
        struct policy_exec_tally tally; /* since policy_exec_new() */
        struct policy_exec_loop *loop;  /* NULL: the waiting mode */
        unsigned stop_wait_ms;          /* waiting mode: how long a killed child is waited for */
        struct child_strays strays;     /* waiting mode: killed children not yet reaped */
};

/* Start the child (pipes, fork, exec of /bin/sh -c COMMAND, a pidfd). */
int policy_exec_start_child(struct policy_exec *pe, char *err, size_t errlen);

/* Close the pipes and SIGKILL the child; it still has to be reaped (pe->pid stays). */
void policy_exec_kill_child(struct policy_exec *pe);

/*
 * Kill the child and forget it without waiting: reaped now if it went at
 * once, else by base's loop when it goes (child_reap_later).
 */
void policy_exec_abandon_child(struct policy_exec *pe, struct event_base *base);

/*
 * Reap the child if it has exited, without waiting: 1 and a phrase in how
 * ("exited with status 3") when reaped, 0 while it runs.
 */
int policy_exec_reap(struct policy_exec *pe, char *how, size_t len);

/* Record a failure at now_ms: the pause before the next start grows with each in a row. */
void policy_exec_note_failure(struct policy_exec *pe, uint64_t now_ms);

/* -EAGAIN (err said once per failure) while the restart pause runs; 0 when it may start. */
int policy_exec_restart_wait(struct policy_exec *pe, uint64_t now_ms, char *err, size_t errlen);

/* The reply limit for n VMs, newline included. */
size_t policy_exec_line_cap(size_t n);

/*
 * Parse a reply, looking each name up with find (returns the slot, or -1
 * for a VM the request did not describe) and storing its bytes with set.
 */
int policy_exec_parse_targets(const char *line, size_t len,
                              long (*find)(void *ctx, const char *name),
                              void (*set)(void *ctx, long slot, uint64_t bytes), void *ctx,
                              char *err, size_t errlen);

/* The loop mode's decide (policy_exec_loop.c). */
int policy_exec_loop_decide(struct policy_exec *pe, const struct policy_host *host,
                            struct policy_vm *vms, size_t n, uint64_t now_ms, char *err,
                            size_t errlen);
void policy_exec_loop_free(struct policy_exec *pe);

#endif
