/*
 * fsutil: the few file-system operations dynmemd needs done carefully:
 * making directories, replacing a file atomically and durably, and reading
 * a whole file with a size limit.
 */
#ifndef DYNMEM_FSUTIL_H
#define DYNMEM_FSUTIL_H

#include <stddef.h>
#include <sys/types.h>

/* mkdir -p; existing directories are fine. Returns 0 or a negative errno. */
int fsutil_mkdir_p(const char *path, mode_t mode);

/*
 * Replace dir/name with data: write a new dir/name.tmp (one left over is
 * removed first: the file gets this process's owner and mode, less the
 * umask), fsync it, rename it over dir/name, fsync dir. Readers see the old
 * or the new file, never a part.
 * Returns 0 or a negative errno.
 */
int fsutil_write_atomic(const char *dir, const char *name, const char *data, size_t len,
                        mode_t mode);

/*
 * Read a whole regular file of at most max bytes into a NUL-terminated
 * buffer (caller frees). Returns 0, -EFBIG when larger, -EISDIR for a
 * directory, -EINVAL for anything else not a regular file (never waited on:
 * a FIFO), or another negative errno (a failed read too).
 */
int fsutil_read_file(const char *path, size_t max, char **ret_data, size_t *ret_len);

/*
 * Rename path to path.bad, or path.bad.1, .2, ... up to .99 when taken: a
 * file set aside before is never replaced. Returns 0 with the new name in
 * ret (len bytes), or a negative errno.
 */
int fsutil_set_aside(const char *path, char *ret, size_t len);

/*
 * Take an exclusive lock on dir/name (created with mode when missing) for as
 * long as the returned descriptor stays open (close-on-exec: QEMUs started
 * later do not keep it). The holder writes its pid into the file. Returns 0
 * with the descriptor in *ret_fd; -EWOULDBLOCK when another process holds
 * it, with that process's pid in *ret_holder (0 when it cannot be read); or
 * another negative errno.
 */
int fsutil_lock(const char *dir, const char *name, mode_t mode, int *ret_fd, long *ret_holder);

#endif
