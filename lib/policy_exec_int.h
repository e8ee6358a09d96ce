/*
 * policy_exec_int: what the parts of the exec: policy share and nothing
 * else includes. policy_exec.c owns the protocol (the request line, the
 * reply parser), the child process and the waiting mode dynmem-sim uses;
 * policy_exec_loop.c drives the same child from an event loop (dynmemd);
 * policy_exec_stderr.c relays the child's standard error to the log.
 */
#ifndef DYNMEM_POLICY_EXEC_INT_H
#define DYNMEM_POLICY_EXEC_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "child.h"
#include "log.h"
#include "policy_exec.h"

struct event;
struct event_base;
struct evbuffer;

/*
 * The program's standard error: read from a pipe and written to dynmem's log
 * line by line ("policy \"COMMAND\": LINE"), each line cut at
 * POLICY_EXEC_STDERR_LINE bytes, control characters as spaces. At most
 * POLICY_EXEC_STDERR_BURST lines at once; then none in the waiting mode (a
 * run of dynmem-sim: the first lines of the run), or
 * POLICY_EXEC_STDERR_PER_MINUTE a minute in the loop mode (dynmemd runs for
 * months, and the lines of a program failing now are news). The lines held
 * back are counted: the next line written says how many, and so does
 * policy_exec_stderr_final().
 */
#define POLICY_EXEC_STDERR_LINE       400
#define POLICY_EXEC_STDERR_BURST      10
#define POLICY_EXEC_STDERR_PER_MINUTE 10

struct policy_exec_stderr {
        int fd; /* the pipe's read end (non-blocking); -1: none */
        char line[POLICY_EXEC_STDERR_LINE + 1];
        size_t len;
        bool cut; /* the line is longer than line[]: the rest is dropped */
        struct log_ratelimit limit;
        uint64_t now_ms; /* the limit's clock: the time of the latest decision */
};

/* Empty, with the limit's rate after the burst (0: none, the waiting mode). */
void policy_exec_stderr_init(struct policy_exec_stderr *s, double per_minute);

/*
 * Read what the program wrote, without waiting, and relay its whole lines.
 * 1 at the end of the file (then policy_exec_stderr_close()), else 0.
 */
int policy_exec_stderr_read(struct policy_exec *pe);

/* Relay what is left, a last line without its newline too, and close the pipe. */
void policy_exec_stderr_close(struct policy_exec *pe);

/* Say how many lines the limit held back and not said yet (the policy is freed). */
void policy_exec_stderr_final(struct policy_exec *pe);

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
        struct event *stderr_ev; /* the program's standard error */
        unsigned kill_ms;        /* a request unanswered this long kills the process */
        struct evbuffer *out;    /* the request not yet written */
        char *in;                /* the reply read so far */
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
        int to_child;                  /* its stdin */
        int from_child;                /* its stdout */
        struct policy_exec_stderr err; /* its stderr */
        uint64_t failed_at_ms;
        bool failed;
        bool failure_said;              /* "waiting to be restarted" said for this failure */
        unsigned failures;              /* in a row, for the restart pause */
        struct policy_exec_tally tally; /* since policy_exec_new() */
        struct policy_exec_loop *loop;  /* NULL: the waiting mode */
        unsigned stop_wait_ms;          /* waiting mode: how long a killed child is waited for */
        struct child_strays strays;     /* waiting mode: killed children not yet reaped */
};

/*
 * Start the child (pipes, fork, exec of /bin/sh -c COMMAND, a pidfd). Its
 * standard error is a pipe too (pe->err), read by the caller's mode.
 */
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
