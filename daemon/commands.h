/*
 * commands: what dynmemd does for each control request, one function per
 * command in a table. The control server has already parsed the request and
 * checked that the caller may make it. Start and stop answer after the
 * balancing cycle that decides them: commands_run() says so through
 * *ret_wait, and commands_poll() gives the answer once it is known. A
 * carry request's wait is its own: over when the write is (the backend
 * says so, and the control server asks at once) or at its end,
 * commands_wait_limit_ms() after the request, whatever the cycles do.
 */
#ifndef DYNMEM_COMMANDS_H
#define DYNMEM_COMMANDS_H

#include <stdbool.h>
#include <stdint.h>

#include "control.h"

struct daemon;

enum commands_wait {
        COMMANDS_WAIT_NONE,
        COMMANDS_WAIT_START, /* until the VM leaves "starting" */
        COMMANDS_WAIT_STOP,  /* until the VM leaves "stopping" */
        COMMANDS_WAIT_ADMIT, /* until a start its owner makes is admitted or refused */
        COMMANDS_WAIT_CARRY, /* until what the VM carries is written, CARRY_WAIT_MS at most */
};

/* How long a wait of this kind lasts at most, from the request (ms); 0: until a cycle decides. */
unsigned commands_wait_limit_ms(enum commands_wait wait);

/*
 * Run a request. Returns the reply line (caller frees), or NULL: with
 * *ret_wait set when the answer waits for a cycle, else out of memory.
 */
char *commands_run(struct daemon *d, const struct control_request *req,
                   enum commands_wait *ret_wait);

/*
 * The bodies of the reading commands, as `dynmem list|show|status --json`
 * print them, for the HTTP API: the VMs as a JSON array (text), one VM
 * (text; NULL when there is no such VM) and the host object. Callers free;
 * NULL on ENOMEM.
 */
char *commands_vms_text(struct daemon *d);
char *commands_vm_text(struct daemon *d, const char *name);
json_t *commands_host_json(struct daemon *d);

/*
 * For a request waiting on VM `name`: true with the reply line in
 * *ret_reply (NULL when out of memory) once the wait is over, else false.
 * until_ms (mono_ms) is the request's own end of the wait, for the kinds
 * commands_wait_limit_ms() bounds (else 0).
 */
bool commands_poll(struct daemon *d, const char *name, enum commands_wait wait, uint64_t until_ms,
                   char **ret_reply);

#endif
