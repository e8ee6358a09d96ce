/*
 * policy_exec: an external policy process ("exec:COMMAND"). For a decision
 * it writes one JSON line describing the host and the VMs to the process's
 * standard input and reads one line of targets back. The protocol is
 * documented in docs/policy-exec.md.
 *
 * Two modes. By default (dynmem-sim, whose clock waits for nobody) a
 * decision waits for its reply: within 1 s, 5 s for the first answer after
 * the process starts. Attached to an event loop (dynmemd), nothing waits: a
 * decision sends the request if none is in flight, and the reply is read
 * by the loop and applied by the first decision after it arrived; until
 * then the VMs keep their targets, and a reply later than 1 s is reported
 * once. A process with a request unanswered for POLICY_EXEC_KILL_MS is
 * killed.
 *
 * In both modes a process that dies, hangs or answers garbage is reported,
 * killed and restarted after a pause that doubles with each failure in a
 * row (1 s up to 64 s); meanwhile the previous targets stand. Its standard
 * error is written to the log (log_msg()) a line each, with a limit: the
 * first 10 lines in the waiting mode, 10 at once and then 10 a minute in
 * the loop mode; how many were held back is said too.
 *
 * The caller must ignore SIGPIPE.
 */
#ifndef DYNMEM_POLICY_EXEC_H
#define DYNMEM_POLICY_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define POLICY_EXEC_TIMEOUT_MS       1000  /* a reply is due (late after that) */
#define POLICY_EXEC_START_TIMEOUT_MS 5000  /* the first answer after a (re)start */
#define POLICY_EXEC_KILL_MS          10000 /* loop mode: unanswered this long, killed */
#define POLICY_EXEC_STOP_WAIT_MS     1000  /* waiting mode: a killed process, waited for */
#define POLICY_EXEC_RESTART_MS       1000  /* pause before restarting a failed process... */
#define POLICY_EXEC_RESTART_MAX_MS   64000 /* ... doubled with each failure in a row */
#define POLICY_EXEC_LINE_BASE        4096  /* reply limit: base + per VM */
#define POLICY_EXEC_LINE_PER_VM      256

struct policy_exec;

/*
 * Whether COMMAND's program can be run, before any start: its first plain
 * word (after VAR=value words and exec), a path or a name in PATH, must be
 * an executable file for this process. A command that needs a shell to
 * judge (quotes, expansions, a builtin) passes. Returns 0, or a negative
 * errno with a sentence in err naming the program.
 */
int policy_exec_check_program(const char *command, char *err, size_t errlen);

/* Prepare (the process is started at the first decision). */
int policy_exec_new(const char *command, struct policy_exec **ret, char *err, size_t errlen);
void policy_exec_free(struct policy_exec *pe);

struct event_base;

/*
 * Drive the process from base instead of waiting for it (before the first
 * decision). on_reply (may be NULL) runs from the loop when a reply has
 * arrived, so that the owner can run a decision soon. Returns 0 or -ENOMEM.
 */
int policy_exec_attach(struct policy_exec *pe, struct event_base *base,
                       void (*on_reply)(void *userdata), void *userdata);

/*
 * Waiting mode: how long a killed process is waited for before the decision
 * goes on (default POLICY_EXEC_STOP_WAIT_MS; tests). One not gone by then is
 * reaped at a later decision, or when pe is freed.
 */
void policy_exec_set_stop_wait_ms(struct policy_exec *pe, unsigned ms);

/* Loop mode: kill a process whose reply is this late (default POLICY_EXEC_KILL_MS; tests). */
void policy_exec_set_kill_ms(struct policy_exec *pe, unsigned ms);

/*
 * Ask for targets. Sets vms[i].external_bytes for every VM named in the
 * reply applied now (others 0 = keep) and returns 0. Otherwise every VM
 * keeps its target and it returns a negative errno: -EAGAIN while a failed
 * process waits to be restarted, -EINPROGRESS while a request is in flight
 * (loop mode), any other for a failure (-ETIMEDOUT, -EINVAL, -EPIPE,
 * -EMSGSIZE...). err gets one sentence for every failure, once when a
 * restart pause begins and once when a reply is late; it is empty when
 * there is nothing new to say.
 */
int policy_exec_decide(struct policy_exec *pe, const struct policy_host *host,
                       struct policy_vm *vms, size_t n, uint64_t now_ms, char *err, size_t errlen);

/*
 * What the program did since policy_exec_new(): its usable replies, and its
 * failures (it could not be started, exited or closed its output, did not
 * read or answer in time, answered something that is not a reply). No
 * answer at all: it never worked.
 */
struct policy_exec_tally {
        uint64_t answers, failures;
};

struct policy_exec_tally policy_exec_tally(const struct policy_exec *pe);

/* Build the request line (without newline); caller frees. Exposed for tests. */
char *policy_exec_request(const struct policy_host *host, const struct policy_vm *vms, size_t n,
                          uint64_t now_ms);

/*
 * Parse a reply line into vms[].external_bytes. Returns 0 or -EINVAL with a
 * reason in err. Exposed for tests and fuzzing.
 */
int policy_exec_parse_reply(const char *line, size_t len, struct policy_vm *vms, size_t n,
                            char *err, size_t errlen);

#endif
