/*
 * child: what dynmem's programs do with the child processes they start
 * (exec: policies, dynmemd's relief moves): the signals a child starts its
 * program with.
 */
#ifndef DYNMEM_CHILD_H
#define DYNMEM_CHILD_H

/*
 * In a child between fork and exec: the signals as a new process has them,
 * none blocked and none ignored (what the parent blocked or ignored, e.g.
 * SIGPIPE, is not the program's business). Async-signal-safe.
 */
void child_default_signals(void);

#endif
