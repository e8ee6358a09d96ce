/*
 * file_kind: what kind of file a mode is, for messages. See file_kind.h.
 */
#include "file_kind.h"

#include <sys/stat.h>

const char *file_kind(mode_t mode)
{
        if (S_ISREG(mode))
                return "a regular file";
        if (S_ISDIR(mode))
                return "a folder";
        if (S_ISFIFO(mode))
                return "a FIFO";
        if (S_ISCHR(mode))
                return "a character device";
        if (S_ISBLK(mode))
                return "a block device";
        if (S_ISSOCK(mode))
                return "a socket";
        if (S_ISLNK(mode))
                return "a symlink";
        return "another kind of file";
}
