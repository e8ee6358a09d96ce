/*
 * hostmem: the host's own memory: its total from /proc/meminfo and the
 * default reserve kept for the host (the kernel, dynmemd, QEMU's own
 * overhead, page tables) outside the memory the VMs may hold.
 *
 * Default reserve: 384 MiB, plus 64 MiB per GiB of the first 16 GiB of host
 * memory, plus 16 MiB per GiB above 16 GiB, rounded up to 2 MiB. It starts
 * from Hyper-V 2008 R2 SP1's 384 MiB + 64 MiB per GiB and flattens above
 * 16 GiB, where a flat 6 % would waste many gigabytes on large hosts:
 * 8 GiB -> 896 MiB, 24 GiB -> 1.5 GiB, 64 GiB -> 2.1 GiB, 256 GiB -> 5.1 GiB,
 * 1 TiB -> 17.1 GiB.
 */
#ifndef DYNMEM_HOSTMEM_H
#define DYNMEM_HOSTMEM_H

#include <stddef.h>
#include <stdint.h>

#define HOSTMEM_MEMINFO "/proc/meminfo"

/* MemTotal from a /proc/meminfo text. Returns 0 or -EINVAL / -ERANGE. */
int hostmem_parse_total(const char *text, uint64_t *ret_bytes);

/* MemTotal of this host. Returns 0 or a negative errno. */
int hostmem_total(uint64_t *ret_bytes);

/* The default reserve for a host of total bytes (the formula above). */
uint64_t hostmem_reserve_default(uint64_t total_bytes);

#endif
