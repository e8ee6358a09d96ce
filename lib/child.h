/*
 * child: what dynmem's programs do with the child processes they start
 * (exec: policies, dynmemd's relief moves, QEMU and its launcher): the
 * signals a child starts its program with, and the reaping of a child nobody
 * waits for any more.
 */
#ifndef DYNMEM_CHILD_H
#define DYNMEM_CHILD_H

#include <stddef.h>

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

/*
 * The same for a program that has no event loop (dynmem-sim's waiting
 * mode): children killed that had not yet exited, kept by their pidfds and
 * reaped by the owner's next child_strays_reap(), so that none stays a
 * zombie for the rest of the run. Zero-initialised is empty.
 */
#define CHILD_STRAYS_MAX 8

struct child_strays {
        int pidfd[CHILD_STRAYS_MAX];
        size_t n;
};

/*
 * Take over a killed child's pidfd: reaped now if it has exited, else kept.
 * With CHILD_STRAYS_MAX kept already (children stuck in the kernel), it is
 * left to be reaped by whoever inherits it.
 */
void child_strays_add(struct child_strays *s, int pidfd);

/*
 * Reap the kept children that have exited, waiting up to wait_ms in all
 * for the others (0: not at all). Returns how many are still kept.
 */
size_t child_strays_reap(struct child_strays *s, int wait_ms);

/* Forget the kept children (left to whoever inherits them) and close their pidfds. */
void child_strays_close(struct child_strays *s);

#endif
