/*
 * file_kind: what kind of file a mode is, in the words a message uses when a
 * path is not the kind it should be ("... is a folder, not a regular file").
 */
#ifndef DYNMEM_FILE_KIND_H
#define DYNMEM_FILE_KIND_H

#include <sys/types.h>

/* "a regular file", "a folder", "a FIFO", "a character device", ... (static text). */
const char *file_kind(mode_t mode);

#endif
