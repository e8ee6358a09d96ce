/*
 * qemu_disk: the layers of a VM's disk image, read from the qcow2 headers
 * of the files dynmemd opened, so that each layer can be handed to QEMU as
 * a descriptor. QEMU cannot follow a backing file name from an image it got
 * as /dev/fdset/N (it would look for /dev/fdset/<name>), so dynmemd opens
 * the chain and names every layer on the -drive (qemu_argv.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qemu_int.h"

#define QCOW2_MAGIC              0x514649fbu
#define QCOW2_V2_HEADER_LEN      72
#define QCOW2_V3_HEADER_LEN      104
#define QCOW2_EXT_END            0x00000000u
#define QCOW2_EXT_BACKING_FMT    0xe2792acau
#define QCOW2_EXT_DATA_FILE      0x44415441u
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_NAME_MAX           1023 /* QEMU's own limit on a backing file name */
#define QCOW2_CLUSTER_BITS_MIN   9    /* QEMU's cluster sizes: 512 bytes .. 2 MiB */
#define QCOW2_CLUSTER_BITS_MAX   21

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
        return off <= INT64_MAX && pread(fd, buf, len, (off_t)off) == (ssize_t)len;
}

/*
 * The backing format extension's value, or "" when the image records none,
 * from the extensions in [ext_off, end) (QEMU reads them from the header's
 * cluster only, up to the backing file's name).
 */
static int backing_format(int fd, const char *path, uint64_t ext_off, uint64_t end, char *fmt,
                          size_t fmtlen, char *err, size_t errlen)
{
        unsigned char eh[8];

        fmt[0] = '\0';
        while (ext_off + 8 <= end && read_at(fd, eh, 8, ext_off)) {
                uint32_t type = be32(eh), len = be32(eh + 4);
                if (type == QCOW2_EXT_END)
                        break;
                if (type == QCOW2_EXT_DATA_FILE) {
                        snprintf(err, errlen, "disk %s: an external data file is not supported",
                                 path);
                        return -ENOTSUP;
                }
                if (type == QCOW2_EXT_BACKING_FMT && len < fmtlen) {
                        if (!read_at(fd, fmt, len, ext_off + 8)) {
                                snprintf(err, errlen, "disk %s: unreadable backing format", path);
                                return -EINVAL;
                        }
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

/*
 * Where the header extensions start and end, checked as QEMU checks them:
 * version 2 or 3, a cluster size QEMU knows, a version 3 header as long as
 * its fields, it and the backing file's name within the first cluster, no
 * external data file.
 */
static int header_extensions(int fd, const char *path, unsigned char *h, uint64_t name_off,
                             uint64_t *ext_off, uint64_t *ext_end, char *err, size_t errlen)
{
        uint32_t version = be32(h + 4), cluster_bits = be32(h + 20);
        uint64_t cluster;

        if (version < 2 || version > 3) {
                snprintf(err, errlen, "disk %s: qcow2 version %u is not supported", path,
                         (unsigned)version);
                return -ENOTSUP;
        }
        cluster = cluster_bits >= QCOW2_CLUSTER_BITS_MIN && cluster_bits <= QCOW2_CLUSTER_BITS_MAX
                      ? 1ull << cluster_bits
                      : 0;
        if (!cluster || name_off > cluster) {
                snprintf(err, errlen, "disk %s: a corrupt qcow2 header", path);
                return -EINVAL;
        }
        *ext_off = QCOW2_V2_HEADER_LEN;
        if (version == 3) {
                if (!read_at(fd, h + QCOW2_V2_HEADER_LEN, 32, QCOW2_V2_HEADER_LEN) ||
                    be32(h + 100) < QCOW2_V3_HEADER_LEN || be32(h + 100) > cluster) {
                        snprintf(err, errlen, "disk %s: a corrupt qcow2 header", path);
                        return -EINVAL;
                }
                if (be64(h + 72) & QCOW2_INCOMPAT_DATA_FILE) {
                        snprintf(err, errlen, "disk %s: an external data file is not supported",
                                 path);
                        return -ENOTSUP;
                }
                *ext_off = be32(h + 100);
        }
        *ext_end = name_off ? name_off : cluster;
        return 0;
}

/*
 * The backing file of the qcow2 image open as fd (read from its header):
 * *ret_backing NULL when it has none, else its path (relative names are
 * taken from path's folder) and *ret_qcow2 its recorded format. -errno with
 * a sentence in err for what dynmemd cannot hand over: not qcow2, a corrupt
 * header, an external data file, a protocol or json: name, a backing format
 * not recorded.
 */
static int backing_of(int fd, const char *path, char **ret_backing, bool *ret_qcow2, char *err,
                      size_t errlen)
{
        unsigned char h[QCOW2_V3_HEADER_LEN];
        char name[QCOW2_NAME_MAX + 1], fmt[32];
        uint64_t name_off, ext_off, ext_end;
        uint32_t name_len;
        int r;

        *ret_backing = NULL;
        if (!read_at(fd, h, QCOW2_V2_HEADER_LEN, 0) || be32(h) != QCOW2_MAGIC) {
                snprintf(err, errlen, "disk %s: not a qcow2 image (its name ends in .qcow2)", path);
                return -EINVAL;
        }
        name_off = be64(h + 8);
        name_len = be32(h + 16);
        if ((r = header_extensions(fd, path, h, name_off, &ext_off, &ext_end, err, errlen)) < 0 ||
            (r = backing_format(fd, path, ext_off, ext_end, fmt, sizeof(fmt), err, errlen)) < 0)
                return r;
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
        if (!(*ret_backing = backing_path(path, name))) {
                snprintf(err, errlen, "disk %s: out of memory", path);
                return -ENOMEM;
        }
        return 0;
}

bool qemu_disk_is_qcow2(const char *path)
{
        size_t n = strlen(path);
        return n > 6 && strcmp(path + n - 6, ".qcow2") == 0;
}

int qemu_disk_open(const char *path, int flags, char *err, size_t errlen)
{
        return qemu_open_file("disk", path, flags, true, err, errlen);
}

int qemu_disk_open_backing(const char *disk, size_t n_layers, int fd, const char *path,
                           struct qemu_disk_layer *next, int *ret_fd, char *err, size_t errlen)
{
        char what[PATH_MAX + 32], *name;
        bool qcow2 = false;
        int r = backing_of(fd, path, &name, &qcow2, err, errlen);

        if (r < 0 || !name)
                return r;
        if (n_layers >= QEMU_DISK_LAYERS_MAX) {
                snprintf(err, errlen, "disk %s: more than %d backing files", disk,
                         QEMU_DISK_LAYERS_MAX - 1);
                free(name);
                return -ELOOP;
        }
        /* A name from the image is only trusted to be a plain file (not a device). */
        snprintf(what, sizeof(what), "disk %s: backing file", path);
        r = qemu_open_file(what, name, O_RDONLY, false, err, errlen);
        if (r < 0) {
                free(name);
                return r;
        }
        *next = (struct qemu_disk_layer){.path = name, .qcow2 = qcow2, .fd = -1};
        *ret_fd = r;
        return 1;
}

int qemu_disk_check(const char *disk, char *err, size_t errlen)
{
        struct qemu_disk_layer l = {.qcow2 = qemu_disk_is_qcow2(disk)}, next;
        size_t n_layers = 1;
        int fd, r;

        if (!l.qcow2)
                return 0;
        if ((fd = qemu_disk_open(disk, O_RDONLY, err, errlen)) < 0)
                return fd;
        if (!(l.path = strdup(disk))) {
                close(fd);
                return -ENOMEM;
        }
        for (;;) {
                int next_fd = -1;
                r = l.qcow2 ? qemu_disk_open_backing(disk, n_layers++, fd, l.path, &next, &next_fd,
                                                     err, errlen)
                            : 0;
                close(fd);
                if (r <= 0)
                        break;
                free(l.path);
                l = next;
                fd = next_fd;
        }
        free(l.path);
        return r;
}
