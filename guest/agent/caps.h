/*
 * caps: the capabilities the agent keeps once it is set up. Started as root
 * it holds what its starter gave it (under the unit CAP_SYS_RESOURCE and
 * CAP_SYS_ADMIN, by hand every one), and needs most of them only to start:
 * CAP_SYS_RESOURCE to open the PSI trigger (the kernel checks it when the file
 * is opened), CAP_SYS_ADMIN for the absorber's first swapon. After that it
 * keeps CAP_SYS_ADMIN only while it has an absorber (each drain's swapoff and
 * swapon; an absorber that goes off for good, its swapon failing after a
 * drain, takes CAP_SYS_ADMIN with it) and CAP_IPC_LOCK only when locking its
 * pages needed it; the rest leaves its permitted, effective and inheritable
 * sets (the ambient one with them), and no_new_privs keeps any program it
 * might run from gaining one back. Still uid 0, it owns what it goes on writing (memory block
 * states, memory.high, its port, /run/dynmem-guest). Plain capget/capset: the agent is libc only.
 * docs/guest-protocol.md, "What the agent does".
 */
#ifndef DYNMEM_GUEST_CAPS_H
#define DYNMEM_GUEST_CAPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A capability (CAP_SYS_ADMIN ...) as its bit in a set. */
#define CAPS_BIT(cap) ((uint64_t)1 << (cap))

/* The permitted and the effective set now; 0 when they cannot be read. */
uint64_t caps_permitted(void);
uint64_t caps_effective(void);

/* Raise cap in the effective set (it must be permitted) or lower it there. 0 or -errno. */
int caps_set_effective(int cap, bool on);

/*
 * Keep only keep of what is permitted, in the permitted and effective sets; nothing
 * inheritable nor ambient; then no_new_privs. 0 or -errno (the step that failed is
 * named in *what). What it takes away cannot come back: also how one capability is dropped.
 */
int caps_keep_only(uint64_t keep, const char **what);

#endif
