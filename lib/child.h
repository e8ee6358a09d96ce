/*
 * child: what dynmem's programs do with the child processes they start
 * (exec: policies, dynmemd's relief moves, QEMU and its launcher): the
 * signals a child starts its program with, and the reaping of a child nobody
 * waits for any more.
 */
#ifndef DYNMEM_CHILD_H
#define DYNMEM_CHILD_H

struct event_base;

/*
 * In a child between fork and exec: the signals as a new process has them,
 * none blocked and none ignored (what the parent blocked or ignored, e.g.
 * SIGPIPE, is not the program's business). Async-signal-safe.
 */
void child_default_signals(void);

/*
 * A child of ours nobody waits for any more (killed, or left to finish on
 * its own), given by its pidfd, which this takes over: reaped now if it has
 * exited, else by base's loop when it does, and the pidfd closed then. It
 * never waits, and the child never stays a zombie while the loop runs. If
 * base is freed first, the child is left to be reaped by whoever inherits it.
 */
void child_reap_later(struct event_base *base, int pidfd);

#endif
