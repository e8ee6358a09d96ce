/*
 * output: the files dynmem-sim writes (--timeline, --report), whole or not at
 * all. A new file, or one that replaces a regular file, is written as an
 * unnamed file in its directory and given its name only once everything is
 * written: a run that fails, is interrupted or cannot write leaves no
 * half-written file behind and an older file as it was. Anything else at the
 * path (/dev/stdout, a pipe, a symbolic link), and a file system without
 * unnamed files, is written in place.
 */
#ifndef DYNMEM_SIM_OUTPUT_H
#define DYNMEM_SIM_OUTPUT_H

#include <stdio.h>

struct output {
        const char *path; /* borrowed */
        FILE *fp;         /* NULL when closed */
        int dir_fd;       /* the directory the unnamed file is in, or -1: written in place */
};

/*
 * Open path for writing. Returns 0, or -1 after "dynmem-sim: PATH: error"
 * on stderr.
 */
int output_open(struct output *o, const char *path);

/*
 * Close the output and give the file its name. Returns 0, or -1 after
 * "dynmem-sim: cannot write PATH: error" on stderr (an unnamed file is then
 * not kept).
 * Does nothing to an output that is not open.
 */
int output_commit(struct output *o);

/* Close the output without keeping what was written. Does nothing when not open. */
void output_discard(struct output *o);

#endif
