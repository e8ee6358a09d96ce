/*
 * policy_exec: an external policy process ("exec:COMMAND"). For every
 * decision it writes one JSON line describing the host and the VMs to the
 * process's standard input and reads one line of targets back within 1 s
 * (5 s for the first answer after the process starts).
 * A process that dies, hangs or answers garbage is reported, killed and
 * restarted after a pause; meanwhile the previous targets stand. The
 * protocol is documented in docs/policy-exec.md.
 *
 * The caller must ignore SIGPIPE.
 */
#ifndef DYNMEM_POLICY_EXEC_H
#define DYNMEM_POLICY_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "policy.h"

#define POLICY_EXEC_TIMEOUT_MS       1000
#define POLICY_EXEC_START_TIMEOUT_MS 5000  /* the first answer after a (re)start */
#define POLICY_EXEC_RESTART_MS       10000 /* pause before restarting a failed process */
#define POLICY_EXEC_LINE_BASE        4096  /* reply limit: base + per VM */
#define POLICY_EXEC_LINE_PER_VM      256

struct policy_exec;

/* Prepare (the process is started at the first decision). */
int policy_exec_new(const char *command, struct policy_exec **ret, char *err, size_t errlen);
void policy_exec_free(struct policy_exec *pe);

/*
 * Ask for targets. On success sets vms[i].external_bytes for every VM named
 * in the reply (others 0 = keep). On failure returns a negative errno with
 * one sentence in err.
 */
int policy_exec_decide(struct policy_exec *pe, const struct policy_host *host,
                       struct policy_vm *vms, size_t n, uint64_t now_ms, char *err, size_t errlen);

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
