/*
 * testutil: small helpers the unit tests share: temporary directories and
 * files, and searching a config_diag for a message.
 */
#ifndef DYNMEM_TESTUTIL_H
#define DYNMEM_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

/* Create a fresh directory under $TMPDIR (or /tmp); caller frees. Aborts on failure. */
char *tu_tempdir(void);

/* Remove a directory tree made by tu_tempdir(); accepts NULL. */
void tu_rmtree(char *dir);

/* Write text to dir/name (mode 0755 when exec); returns the full path, caller frees. */
char *tu_write(const char *dir, const char *name, const char *text, bool exec);

/* Read a whole file into a NUL-terminated string, or NULL; caller frees. */
char *tu_read(const char *path);

/*
 * Standard error (fd 2: what log_msg() writes) into the file at path until
 * tu_stderr_release(), which puts it back and returns what was written
 * (caller frees). Aborts on failure.
 */
int tu_stderr_capture(const char *path);
char *tu_stderr_release(int saved, const char *path);

/* How many times needle occurs in text. */
size_t tu_count(const char *text, const char *needle);

/* The first message starting with prefix and containing needle (NULL = any), or NULL. */
const char *tu_diag_find(const struct config_diag *d, const char *prefix, const char *needle);

/* Print every message of d as TAP comments (for failing tests). */
void tu_diag_print(const struct config_diag *d);

#endif
