/*
 * qemu_disk: the layers of a VM's disk image, read from the qcow2 headers
 * of the files dynmemd opened, so that each layer can be handed to QEMU as
 * a descriptor. QEMU cannot follow a backing file name from an image it got
 * as /dev/fdset/N (it would look for /dev/fdset/<name>), so dynmemd opens
 * the chain and names every layer on the -drive (qemu_argv.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qemu_int.h"

#define QCOW2_MAGIC              0x514649fbu
#define QCOW2_V2_HEADER_LEN      72
#define QCOW2_EXT_END            0x00000000u
#define QCOW2_EXT_BACKING_FMT    0xe2792acau
#define QCOW2_EXT_DATA_FILE      0x44415441u
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_NAME_MAX           1023 /* QEMU's own limit on a backing file name */
#define QCOW2_EXT_SCAN_MAX       65536

static uint32_t be32(const unsigned char *b)
{
        return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

static uint64_t be64(const unsigned char *b)
{
        return (uint64_t)be32(b) << 32 | be32(b + 4);
}

static bool read_at(int fd, void *buf, size_t len, uint64_t off)
{
        return pread(fd, buf, len, (off_t)off) == (ssize_t)len;
}

/* The backing format extension's value, or "" when the image records none. */
static int backing_format(int fd, uint64_t ext_off, uint64_t end, char *fmt, size_t fmtlen)
{
        unsigned char eh[8];

        fmt[0] = '\0';
        while (ext_off + 8 <= end && read_at(fd, eh, 8, ext_off)) {
                uint32_t type = be32(eh), len = be32(eh + 4);
                if (type == QCOW2_EXT_END)
                        break;
                if (type == QCOW2_EXT_DATA_FILE)
                        return -ENOTSUP;
                if (type == QCOW2_EXT_BACKING_FMT && len < fmtlen) {
                        if (!read_at(fd, fmt, len, ext_off + 8))
                                return -EIO;
                        fmt[len] = '\0';
                }
                ext_off += 8 + (((uint64_t)len + 7) & ~7ull);
        }
        return 0;
}

/* The backing file's name as QEMU resolves it: relative to the image's folder. */
static char *backing_path(const char *image, const char *name)
{
        const char *slash = strrchr(image, '/');
        char *out;

        if (name[0] == '/' || !slash)
                return strdup(name);
        if (asprintf(&out, "%.*s/%s", (int)(slash - image), image, name) < 0)
                return NULL;
        return out;
}

int qemu_disk_backing(int fd, const char *path, char **ret_backing, bool *ret_qcow2, char *err,
                      size_t errlen)
{
        unsigned char h[104];
        char name[QCOW2_NAME_MAX + 1], fmt[32];
        uint64_t name_off, ext_off;
        uint32_t version, name_len;
        int r;

        *ret_backing = NULL;
        if (!read_at(fd, h, QCOW2_V2_HEADER_LEN, 0) || be32(h) != QCOW2_MAGIC) {
                snprintf(err, errlen, "disk %s: not a qcow2 image (its name ends in .qcow2)", path);
                return -EINVAL;
        }
        version = be32(h + 4);
        name_off = be64(h + 8);
        name_len = be32(h + 16);
        ext_off = QCOW2_V2_HEADER_LEN;
        if (version >= 3) {
                if (!read_at(fd, h + QCOW2_V2_HEADER_LEN, 32, QCOW2_V2_HEADER_LEN) ||
                    (be64(h + 72) & QCOW2_INCOMPAT_DATA_FILE)) {
                        snprintf(err, errlen, "disk %s: an external data file is not supported",
                                 path);
                        return -ENOTSUP;
                }
                ext_off = be32(h + 100);
        }
        r = backing_format(fd, ext_off, name_off ? name_off : ext_off + QCOW2_EXT_SCAN_MAX, fmt,
                           sizeof(fmt));
        if (r < 0) {
                snprintf(err, errlen, "disk %s: an external data file is not supported", path);
                return r;
        }
        if (name_off == 0)
                return 0;
        if (name_len == 0 || name_len > QCOW2_NAME_MAX || !read_at(fd, name, name_len, name_off)) {
                snprintf(err, errlen, "disk %s: unreadable backing file name", path);
                return -EINVAL;
        }
        name[name_len] = '\0';
        if (memchr(name, '\0', name_len) || strchr(name, ':')) {
                snprintf(err, errlen, "disk %s: backing file '%s' is not a plain file name", path,
                         name);
                return -ENOTSUP;
        }
        if (strcmp(fmt, "qcow2") != 0 && strcmp(fmt, "raw") != 0) {
                snprintf(err, errlen,
                         "disk %s: the format of backing file %s is %s; give it with "
                         "`qemu-img rebase -u -F qcow2|raw -b %s %s`",
                         path, name, fmt[0] ? fmt : "not recorded", name, path);
                return -ENOTSUP;
        }
        *ret_qcow2 = strcmp(fmt, "qcow2") == 0;
        if (!(*ret_backing = backing_path(path, name)))
                return -ENOMEM;
        return 0;
}

bool qemu_disk_is_qcow2(const char *path)
{
        size_t n = strlen(path);
        return n > 6 && strcmp(path + n - 6, ".qcow2") == 0;
}

int qemu_disk_check(const char *disk, char *err, size_t errlen)
{
        char *path = strdup(disk);
        bool qcow2 = qemu_disk_is_qcow2(disk);
        int r = path ? 0 : -ENOMEM;

        for (int layers = 1; r == 0 && path && qcow2; layers++) {
                char *next = NULL;
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        r = -errno;
                        snprintf(err, errlen, "disk %s: %s", path, strerror(-r));
                        break;
                }
                r = qemu_disk_backing(fd, path, &next, &qcow2, err, errlen);
                close(fd);
                free(path);
                path = next;
                if (r == 0 && path && layers == QEMU_DISK_LAYERS_MAX) {
                        snprintf(err, errlen, "disk %s: more than %d backing files", disk,
                                 QEMU_DISK_LAYERS_MAX - 1);
                        r = -ELOOP;
                }
        }
        free(path);
        return r;
}
