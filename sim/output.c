/*
 * output: the files dynmem-sim writes, whole or not at all. See output.h.
 *
 * The unnamed file is an O_TMPFILE in the path's directory, linked to its
 * name through /proc/self/fd at the end: nothing is left behind even when the
 * process is killed. An older file is replaced by linking beside it and
 * renaming over it, in one step.
 */
#include "output.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The directory path is in, opened as a path only; -1 when it cannot be. */
static int open_dir_of(const char *path)
{
        const char *slash = strrchr(path, '/');
        char dir[PATH_MAX];

        if (!slash)
                return open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        size_t n = slash == path ? 1 : (size_t)(slash - path);
        if (n >= sizeof(dir))
                return -1;
        memcpy(dir, path, n);
        dir[n] = '\0';
        return open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
}

/*
 * Whether path is written as an unnamed file: it does not exist yet or is a
 * regular file this user may write (a read-only one is refused by fopen() as
 * before), it names a file rather than a directory, and /proc/self/fd is
 * there to give the file its name.
 */
static bool written_unnamed(const char *path)
{
        const char *slash = strrchr(path, '/');
        struct stat st;

        if (!path[0] || (slash && !slash[1]) || access("/proc/self/fd", X_OK) < 0)
                return false;
        if (lstat(path, &st) < 0)
                return errno == ENOENT;
        return S_ISREG(st.st_mode) && access(path, W_OK) == 0;
}

int output_open(struct output *o, const char *path)
{
        *o = (struct output){.path = path, .dir_fd = -1};
        if (written_unnamed(path) && (o->dir_fd = open_dir_of(path)) >= 0) {
                int fd = openat(o->dir_fd, ".", O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
                if (fd >= 0 && (o->fp = fdopen(fd, "w")))
                        return 0;
                if (fd >= 0)
                        close(fd);
                close(o->dir_fd);
                o->dir_fd = -1; /* no unnamed files here: in place */
        }
        o->fp = fopen(path, "we");
        if (!o->fp) {
                fprintf(stderr, "dynmem-sim: %s: %s\n", path, strerror(errno));
                return -1;
        }
        return 0;
}

/* Give the unnamed file its name, replacing an older file in one step. Returns 0 or -errno. */
static int name_file(struct output *o)
{
        const char *slash = strrchr(o->path, '/');
        const char *name = slash ? slash + 1 : o->path;
        char proc[64], beside[64];

        snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fileno(o->fp));
        if (linkat(AT_FDCWD, proc, o->dir_fd, name, AT_SYMLINK_FOLLOW) == 0)
                return 0;
        if (errno != EEXIST)
                return -errno;
        for (unsigned i = 0; i < 100; i++) {
                snprintf(beside, sizeof(beside), ".dynmem-sim.%ld.%u", (long)getpid(), i);
                if (linkat(AT_FDCWD, proc, o->dir_fd, beside, AT_SYMLINK_FOLLOW) < 0) {
                        if (errno == EEXIST)
                                continue;
                        return -errno;
                }
                if (renameat(o->dir_fd, beside, o->dir_fd, name) == 0)
                        return 0;
                int r = -errno;
                unlinkat(o->dir_fd, beside, 0);
                return r;
        }
        return -EEXIST;
}

int output_commit(struct output *o)
{
        int r = 0;

        if (!o->fp)
                return 0;
        errno = 0;
        if (fflush(o->fp) != 0 || ferror(o->fp))
                r = errno ? -errno : -EIO;
        if (r == 0 && o->dir_fd >= 0)
                r = name_file(o);
        if (fclose(o->fp) != 0 && r == 0)
                r = errno ? -errno : -EIO;
        o->fp = NULL;
        if (o->dir_fd >= 0)
                close(o->dir_fd);
        o->dir_fd = -1;
        if (r < 0)
                fprintf(stderr, "dynmem-sim: cannot write %s: %s\n", o->path, strerror(-r));
        return r < 0 ? -1 : 0;
}

void output_discard(struct output *o)
{
        if (o->fp)
                fclose(o->fp); /* an unnamed file goes with it */
        if (o->dir_fd >= 0)
                close(o->dir_fd);
        o->fp = NULL;
        o->dir_fd = -1;
}
