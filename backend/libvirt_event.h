/*
 * libvirt_event: libvirt's event loop on dynmemd's own libevent loop.
 *
 * libvirt's client library needs an event loop for its connection sockets,
 * keepalives and the domain events it delivers. Rather than a second loop in
 * a thread racing the balancer (virEventRegisterDefaultImpl plus a thread
 * running virEventRunDefaultImpl), dynmem registers an implementation
 * (virEventRegisterImpl) whose handles and timeouts are libevent events on
 * the daemon's event_base, so every libvirt callback runs in the same thread
 * and loop as the balancing cycle.
 *
 * The semantics are libvirt's (include/libvirt/libvirt-event.h):
 *   - a handle watches one fd for READABLE and/or WRITABLE; events 0 stops
 *     watching without removing it; the callback gets the events that fired;
 *   - a timeout of N > 0 ms fires every N ms until changed, 0 fires at every
 *     turn of the loop, -1 is disabled;
 *   - removing a handle or timeout stops it at once, but its free callback
 *     runs later from the loop, never from inside the remove call (libvirt
 *     would deadlock), and also when it is removed from its own callback.
 *
 * libvirt allows one implementation per process, registered before the first
 * connection is opened; it cannot be taken back.
 */
#ifndef DYNMEM_LIBVIRT_EVENT_H
#define DYNMEM_LIBVIRT_EVENT_H

#include <stdbool.h>
#include <stddef.h>

struct event_base;

/*
 * Register the implementation on base. Returns 0, -EALREADY when it was
 * registered on another base before (once per process), or -ENOMEM.
 * Registering again on the same base is a no-op.
 */
int libvirt_event_register(struct event_base *base);

/*
 * True on the thread that registered the implementation (the loop's), and
 * before any was registered (a program without a loop makes every libvirt
 * call from one thread).
 */
bool libvirt_event_on_loop(void);

/* Handles and timeouts registered now (for tests and status). */
size_t libvirt_event_count(void);

/*
 * Run the free callbacks of what was removed and not yet released (the loop
 * does it at its next turn). For a program that stops its loop after
 * closing its connection, so that nothing libvirt handed over is left.
 */
void libvirt_event_flush(void);

#endif
