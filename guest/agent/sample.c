/*
 * sample: reads the guest's memory figures. /proc files are kept open and
 * re-read with pread at offset 0, so a sample costs a few system calls.
 */
#include "sample.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "agent_wire.h"
#include "util.h"

#define VIRTIO_ID_BALLOON               5
#define VIRTIO_ID_MEM                   24
#define VIRTIO_BALLOON_F_DEFLATE_ON_OOM 2

static char meminfo_buf[4096], vmstat_buf[16384];

/* The fd, or a negative errno. */
static int open_ro(const char *path)
{
        char p[UTIL_PATH_MAX];
        int fd;

        if (!util_path(p, path))
                return -ENAMETOOLONG;
        fd = open(p, O_RDONLY | O_CLOEXEC);
        return fd < 0 ? -errno : fd;
}

int sampler_open(struct sampler *s)
{
        long ps = sysconf(_SC_PAGESIZE);

        memset(s, 0, sizeof(*s));
        s->page_size = ps > 0 ? (uint64_t)ps : 4096;
        s->meminfo_fd = open_ro("/proc/meminfo");
        if (s->meminfo_fd < 0) {
                int err = s->meminfo_fd;

                s->vmstat_fd = s->statm_fd = s->rollup_fd = -1;
                return err;
        }
        s->vmstat_fd = open_ro("/proc/vmstat");
        s->statm_fd = open_ro("/proc/self/statm");
        s->rollup_fd = open_ro("/proc/self/smaps_rollup");
        sampler_scan_devices(s);
        return 0;
}

void sampler_close(struct sampler *s)
{
        int *fds[] = {&s->meminfo_fd, &s->vmstat_fd, &s->statm_fd, &s->rollup_fd};

        for (unsigned i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
                if (*fds[i] >= 0)
                        close(*fds[i]);
                *fds[i] = -1;
        }
}

/* One virtio device: its id if a driver is bound, and its feature bits string. */
static void scan_one(const char *name, struct sample_devices *d)
{
        char path[UTIL_PATH_MAX], buf[160];
        uint64_t id;

        snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%s/driver", name);
        char full[UTIL_PATH_MAX];
        if (!util_path(full, path) || access(full, F_OK) != 0)
                return;
        snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%s/device", name);
        if (util_read_file(path, buf, sizeof(buf)) <= 0)
                return;
        id = (uint64_t)strtoul(buf, NULL, 16);
        if (id == VIRTIO_ID_MEM)
                d->virtio_mem = true;
        if (id != VIRTIO_ID_BALLOON)
                return;
        d->balloon = true;
        snprintf(path, sizeof(path), "/sys/bus/virtio/devices/%s/features", name);
        if (util_read_file(path, buf, sizeof(buf)) > VIRTIO_BALLOON_F_DEFLATE_ON_OOM)
                d->balloon_deflate_on_oom = buf[VIRTIO_BALLOON_F_DEFLATE_ON_OOM] == '1';
}

void sampler_scan_devices(struct sampler *s)
{
        char path[UTIL_PATH_MAX];
        struct dirent *e;
        DIR *dir;

        memset(&s->dev, 0, sizeof(s->dev));
        if (!util_path(path, "/sys/bus/virtio/devices") || !(dir = opendir(path)))
                return;
        while ((e = readdir(dir)))
                if (strncmp(e->d_name, "virtio", 6) == 0)
                        scan_one(e->d_name, &s->dev);
        closedir(dir);
}

int sample_parse_meminfo(const char *text, struct sample *ret)
{
        static const struct {
                const char *key;
                size_t off;
                uint32_t have;
        } keys[] = {
            {"MemFree", offsetof(struct sample, mem_free), 0},
            {"MemAvailable", offsetof(struct sample, mem_available), AGENT_HAVE_AVAILABLE},
            {"Cached", offsetof(struct sample, cached), 0},
            {"Active(file)", offsetof(struct sample, active_file), 0},
            {"Committed_AS", offsetof(struct sample, committed), 0},
        };
        uint64_t kb, swap_total = 0, swap_free = 0;

        if (util_find_u64(text, "MemTotal", &kb) < 0 || kb == 0 || kb > AGENT_BYTES_MAX / 1024)
                return -EINVAL;
        ret->mem_total = kb * 1024;
        for (unsigned i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                if (util_find_u64(text, keys[i].key, &kb) < 0 || kb > AGENT_BYTES_MAX / 1024)
                        continue;
                *(uint64_t *)((char *)ret + keys[i].off) = kb * 1024;
                ret->have |= keys[i].have;
        }
        util_find_u64(text, "SwapTotal", &swap_total);
        if (util_find_u64(text, "SwapFree", &swap_free) == 0) {
                /* More than the host takes is as much room as it needs to know of. */
                ret->swap_free =
                    swap_free <= AGENT_BYTES_MAX / 1024 ? swap_free * 1024 : AGENT_BYTES_MAX;
                ret->have |= AGENT_HAVE_SWAP;
        }
        ret->swap_used = swap_total > swap_free && swap_total <= AGENT_BYTES_MAX / 1024
                             ? (swap_total - swap_free) * 1024
                             : 0;
        return 0;
}

void sample_parse_vmstat(const char *text, uint64_t page_size, struct sample *ret)
{
        uint64_t v, anon, file, infl, defl;

        if (util_find_u64(text, "pgmajfault", &v) == 0)
                ret->pgmajfault = v;
        if (util_find_u64(text, "oom_kill", &v) == 0)
                ret->oom_kill = v;
        if (util_find_u64(text, "workingset_refault_anon", &anon) == 0 &&
            util_find_u64(text, "workingset_refault_file", &file) == 0) {
                ret->refaults = anon + file;
                ret->have |= AGENT_HAVE_REFAULTS;
        } else if (util_find_u64(text, "workingset_refault", &v) == 0) { /* before 5.9 */
                ret->refaults = v;
                ret->have |= AGENT_HAVE_REFAULTS;
        }
        if (util_find_u64(text, "pgsteal_file", &v) == 0) { /* Linux 5.8 on */
                ret->file_reclaimed = v;
                ret->have |= AGENT_HAVE_RECLAIM;
        }
        if (util_find_u64(text, "nr_balloon_pages", &v) == 0) {
                ret->balloon = v * page_size;
        } else if (util_find_u64(text, "balloon_inflate", &infl) == 0 &&
                   util_find_u64(text, "balloon_deflate", &defl) == 0) {
                ret->balloon = infl > defl ? (infl - defl) * page_size : 0;
        } else {
                return;
        }
        ret->have |= AGENT_HAVE_BALLOON;
}

/*
 * The agent's own resident memory and CPU time. smaps_rollup walks the page
 * tables, so it is exact; statm (the fallback) lags on kernels before 6.2,
 * which sync a thread's RSS counters only every 64 faults.
 */
static void sample_self(struct sampler *s, struct sample *ret)
{
        char buf[1024];
        const char *p;
        uint64_t kb, size, rss;
        struct rusage ru;

        if (getrusage(RUSAGE_SELF, &ru) < 0)
                return;
        if (s->rollup_fd >= 0 && util_pread_all(s->rollup_fd, buf, sizeof(buf)) > 0 &&
            (p = strstr(buf, "\nRss:")) && util_parse_u64(p + 5, NULL, &kb) == 0) {
                ret->self_rss = kb * 1024;
        } else if (s->statm_fd >= 0 && util_pread_all(s->statm_fd, buf, sizeof(buf)) > 0 &&
                   util_parse_u64(buf, &p, &size) == 0 && util_parse_u64(p, NULL, &rss) == 0) {
                ret->self_rss = rss * s->page_size;
        } else {
                return;
        }
        ret->self_cpu_us = (uint64_t)ru.ru_utime.tv_sec * 1000000 + (uint64_t)ru.ru_utime.tv_usec +
                           (uint64_t)ru.ru_stime.tv_sec * 1000000 + (uint64_t)ru.ru_stime.tv_usec;
        ret->have |= AGENT_HAVE_SELF;
}

/*
 * Read /proc/meminfo into smp. On a failure the file is closed, to be opened afresh next
 * time; a change between working and failing (or another failure) is logged, once.
 */
static int read_meminfo(struct sampler *s, struct sample *smp)
{
        int err;

        if (s->meminfo_fd < 0 && (s->meminfo_fd = open_ro("/proc/meminfo")) < 0) {
                err = s->meminfo_fd;
                s->meminfo_fd = -1;
        } else {
                long n = util_pread_all(s->meminfo_fd, meminfo_buf, sizeof(meminfo_buf));

                err = n < 0 ? (int)n : sample_parse_meminfo(meminfo_buf, smp) < 0 ? -EINVAL : 0;
                if (err < 0) {
                        close(s->meminfo_fd);
                        s->meminfo_fd = -1;
                }
        }
        if (err != s->meminfo_err && err < 0)
                util_log("/proc/meminfo: %s; no reports until it is readable again",
                         err == -EINVAL ? "no usable MemTotal" : strerror(-err));
        else if (err != s->meminfo_err)
                util_log("/proc/meminfo: readable again");
        s->meminfo_err = err;
        return err;
}

int sampler_read(struct sampler *s, struct psi *p, struct sample *ret)
{
        struct sample smp = {.time_ms = mono_ms()};
        int err = read_meminfo(s, &smp);

        if (err < 0)
                return err;
        if (s->vmstat_fd >= 0 && util_pread_all(s->vmstat_fd, vmstat_buf, sizeof(vmstat_buf)) > 0)
                sample_parse_vmstat(vmstat_buf, s->page_size, &smp);
        smp.balloon_in_total = s->dev.balloon_deflate_on_oom;
        /* Parts of MemTotal never above it, whatever a racing kernel prints. */
        uint64_t *parts[] = {&smp.mem_available, &smp.mem_free, &smp.cached, &smp.active_file,
                             smp.balloon_in_total ? &smp.balloon : NULL};
        for (unsigned i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
                if (parts[i] && *parts[i] > smp.mem_total)
                        *parts[i] = smp.mem_total;
        if (p && psi_read(p, &smp.psi) == 0)
                smp.have |= AGENT_HAVE_PSI | (smp.psi.have_full ? AGENT_HAVE_PSI_FULL : 0);
        sample_self(s, &smp);
        *ret = smp;
        return 0;
}
