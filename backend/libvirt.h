/*
 * libvirt backend: dynmemd balances the domains of a libvirt host through
 * libvirt's own API. libvirt owns the VMs: dynmemd never defines, starts or
 * stops a domain on its own (dynmem start/stop ask libvirt, and say so).
 * Domains with dynmem metadata (dynmem enable) are balanced; the others are
 * listed as static and never touched. docs/libvirt.md is the reference.
 *
 *   - Events and connection: libvirt's event loop is dynmemd's
 *     (libvirt_event.c); lifecycle, metadata, device, balloon and
 *     memory-device events mark domains for reloading before the next cycle.
 *     A lost libvirtd is tried again with backoff (1 s doubling to 30 s) and
 *     said once; meanwhile the VMs keep the size they have.
 *   - Reading back: what a domain holds from its live XML (libvirt's
 *     <currentMemory> already holds the virtio-mem plugged size) and the
 *     balloon-change and memory-device-size-change events; the guest's
 *     balloon statistics, of the dynamic domains without a fresh agent
 *     report, in one call per cycle (virDomainListGetStats).
 *   - Resizing: virDomainUpdateDeviceFlags with the live virtio-mem device
 *     where only <requested> changed, virDomainSetMemoryFlags for the
 *     balloon, both VIR_DOMAIN_AFFECT_LIVE; the plan is the QEMU backend's
 *     (qemu_mem.c). Never QMP behind libvirt's back.
 *   - The agent: the socket of the org.dynmem.agent.0 channel as the live
 *     XML names it (new at every start), the same lib/agent parser and
 *     limits as the QEMU backend (qemu_agent.c).
 *
 * [host] libvirt_uri chooses the connection (qemu:///system by default).
 * No [vm] sections: settings live in the domains.
 */
#ifndef DYNMEM_BACKEND_LIBVIRT_H
#define DYNMEM_BACKEND_LIBVIRT_H

#include <stdbool.h>
#include <stddef.h>

#include "backend.h"
#include "config.h"

#define LIBVIRT_URI_DEFAULT "qemu:///system"

/*
 * Create the backend (no connection yet: the first inventory connects).
 * env->base is needed to run (libvirt's events go through it); without it
 * the backend only checks a configuration.
 */
int libvirt_backend_new(const struct config *cfg, const struct backend_env *env,
                        struct backend **ret, char *err, size_t errlen);

extern const struct backend_ops libvirt_backend_ops;

#endif
