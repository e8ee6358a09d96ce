/*
 * notify: dynmemd under systemd (Type=notify). READY=1 goes out once the
 * control socket listens, the state file is loaded and running guests are
 * reattached; WATCHDOG=1 is sent from the balancing cycle (at most every
 * quarter of WatchdogSec=), so a loop that stops cycling is restarted by
 * systemd. Without NOTIFY_SOCKET (not started by systemd) nothing is sent.
 */
#ifndef DYNMEM_NOTIFY_H
#define DYNMEM_NOTIFY_H

struct daemon;

/* Read the watchdog's period; warn when the cycle is too slow to feed it. */
void notify_init(struct daemon *d);

/* Set-up is done: READY=1 with a status line. */
void notify_ready(struct daemon *d);

/* A cycle ran: WATCHDOG=1 when a quarter of the period has passed since the last one. */
void notify_cycle(struct daemon *d);

/* SIGTERM: STOPPING=1. */
void notify_stopping(void);

#endif
