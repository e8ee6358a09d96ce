/*
 * absorber: compressed swap in RAM (zram) that the agent sets up, reports
 * and drains. Setup: /sys/class/zram-control/hot_add gives a new device,
 * its disksize is set, a swap header written, and swapon(2) enables it.
 * Draining runs swapoff(2) + swapon(2) in a child process so that the
 * agent keeps reporting while the pages come back. Under a test root
 * (util_set_root) everything but those two system calls runs; there a
 * drain's child stands in for them and reports a drain that worked, or,
 * when the environment has DYNMEM_GUEST_TEST_DRAIN=swapoff-fails or
 * swapon-fails, that failure (honoured under a test root only).
 */
#include "absorber.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agent_wire.h"
#include "util.h"

#define ZRAM_CONTROL "/sys/class/zram-control"
#define SWAP_MAGIC   "SWAPSPACE2"

/* How a drain's child exits. */
#define DRAIN_DONE           0
#define DRAIN_SWAPOFF_FAILED 1 /* still swapped on: the next drain tries again */
#define DRAIN_SWAPON_FAILED  2 /* swapped off, not on again: the absorber is gone */

static unsigned char header_page[65536];

int absorber_parse_mm_stat(const char *text, uint64_t capacity, struct absorber_fill *ret)
{
        uint64_t orig, compr, used;
        const char *p = text;

        if (util_parse_u64(p, &p, &orig) < 0 || util_parse_u64(p, &p, &compr) < 0 ||
            util_parse_u64(p, &p, &used) < 0)
                return -EINVAL;
        ret->stored = orig;
        ret->ram = used;
        ret->capacity = capacity;
        return 0;
}

bool absorber_other_swap(const char *swaps, int own_dev, bool *own_listed)
{
        char own[32];
        bool other = false;

        snprintf(own, sizeof(own), "/dev/zram%d", own_dev);
        *own_listed = false;
        for (const char *line = strchr(swaps, '\n'); line && line[1]; line = strchr(line, '\n')) {
                size_t n;

                line++;
                n = strcspn(line, " \t\n");
                if (n == 0)
                        continue;
                if (own_dev >= 0 && n == strlen(own) && memcmp(line, own, n) == 0)
                        *own_listed = true;
                else
                        other = true;
        }
        return other;
}

int absorber_swap_header(unsigned char *page, uint64_t page_size, uint64_t size)
{
        uint32_t version = 1, last_page, bad = 0;

        if (page_size < 4096 || page_size > sizeof(header_page) || size / page_size < 2 ||
            size / page_size - 1 > UINT32_MAX)
                return -EINVAL;
        last_page = (uint32_t)(size / page_size - 1);
        memset(page, 0, page_size);
        memcpy(page + 1024, &version, 4); /* union swap_header: info.version */
        memcpy(page + 1028, &last_page, 4);
        memcpy(page + 1032, &bad, 4);
        memcpy(page + page_size - 10, SWAP_MAGIC, 10);
        return 0;
}

/* Not active, and why: what, and the error behind it (0: none). */
static void off(struct absorber *a, const char *what, int err)
{
        snprintf(a->why_off, sizeof(a->why_off), "%s%s%s%s", what, err ? " (" : "",
                 err ? strerror(err) : "", err ? ")" : "");
        a->active = false;
}

/* sysfs attribute of our zram device. */
static int dev_write(const struct absorber *a, const char *attr, const char *text)
{
        char path[96];

        snprintf(path, sizeof(path), "/sys/block/zram%d/%s", a->dev, attr);
        return util_write_file(path, text);
}

/* modprobe zram, on a guest whose kernel has it as a module not yet loaded. */
static void load_module(void)
{
        static const char *const tools[] = {"/sbin/modprobe", "/usr/sbin/modprobe"};
        pid_t pid;
        int status;

        if (!util_root_is_real())
                return;
        for (unsigned i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
                if (access(tools[i], X_OK) != 0)
                        continue;
                pid = fork();
                if (pid == 0) {
                        int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
                        if (null >= 0)
                                dup2(null, 2);
                        execl(tools[i], "modprobe", "-q", "zram", "num_devices=0", (char *)NULL);
                        _exit(127);
                }
                if (pid > 0)
                        waitpid(pid, &status, 0);
                return;
        }
}

/* Write the swap header to /dev/zramN and swap on it. 0 or a negative errno. */
static int arm(struct absorber *a)
{
        char dev[32], path[UTIL_PATH_MAX];
        long ps = sysconf(_SC_PAGESIZE);
        int fd, err = 0;

        snprintf(dev, sizeof(dev), "/dev/zram%d", a->dev);
        if (!util_path(path, dev))
                return -ENAMETOOLONG;
        if (absorber_swap_header(header_page, (uint64_t)ps, a->capacity) < 0)
                return -EINVAL;
        fd = open(path, O_WRONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (pwrite(fd, header_page, (size_t)ps, 0) != (ssize_t)ps || fsync(fd) < 0)
                err = errno ? -errno : -EIO;
        close(fd);
        if (err)
                return err;
        if (!util_root_is_real()) /* a test root: swapon acts on the whole machine */
                return 0;
        if (swapon(path, SWAP_FLAG_PREFER | (ABSORBER_PRIORITY & SWAP_FLAG_PRIO_MASK)) < 0)
                return -errno;
        return 0;
}

/* Add a zram device and size it. 0 or a negative errno. */
static int add_device(struct absorber *a)
{
        char buf[32];
        uint64_t n;
        long r;

        r = util_read_file(ZRAM_CONTROL "/hot_add", buf, sizeof(buf));
        if (r < 0)
                return (int)r;
        if (util_parse_u64(buf, NULL, &n) < 0 || n > 1000)
                return -EINVAL;
        a->dev = (int)n;
        snprintf(buf, sizeof(buf), "%" PRIu64, a->capacity);
        return dev_write(a, "disksize", buf);
}

static void open_stat(struct absorber *a)
{
        char rel[64], path[UTIL_PATH_MAX];

        snprintf(rel, sizeof(rel), "/sys/block/zram%d/mm_stat", a->dev);
        a->mm_stat_fd = util_path(path, rel) ? open(path, O_RDONLY | O_CLOEXEC) : -1;
}

/* Note the device in ABSORBER_STATE_FILE, for a restarted agent to adopt. */
static void remember(int dev)
{
        char path[UTIL_PATH_MAX], text[16];
        int fd, n = snprintf(text, sizeof(text), "%d\n", dev);

        if (util_path(path, ABSORBER_STATE_DIR))
                mkdir(path, 0755); /* systemd's RuntimeDirectory= may have made it */
        if (!util_path(path, ABSORBER_STATE_FILE) ||
            (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
                return;
        if (write(fd, text, (size_t)n) != n)
                util_log("absorber: cannot write " ABSORBER_STATE_FILE);
        close(fd);
}

/* The device a previous run of the agent set up, if it is still swapped on. */
static bool adopt(struct absorber *a, const char *swaps)
{
        char buf[32], size[32];
        uint64_t n, cap;
        bool listed;

        if (util_read_file(ABSORBER_STATE_FILE, buf, sizeof(buf)) <= 0 ||
            util_parse_u64(buf, NULL, &n) < 0 || n > 1000)
                return false;
        absorber_other_swap(swaps, (int)n, &listed);
        snprintf(buf, sizeof(buf), "/sys/block/zram%d/disksize", (int)n);
        if (!listed || util_read_file(buf, size, sizeof(size)) <= 0 ||
            util_parse_u64(size, NULL, &cap) < 0 || cap == 0)
                return false;
        a->dev = (int)n;
        a->capacity = cap;
        return true;
}

bool absorber_open(struct absorber *a, enum absorber_mode mode, unsigned size_pct,
                   uint64_t mem_total)
{
        static char swaps[8192];
        long ps = sysconf(_SC_PAGESIZE);
        bool listed;
        int err;

        memset(a, 0, sizeof(*a));
        a->mode = mode, a->size_pct = size_pct, a->dev = -1, a->mm_stat_fd = -1;
        a->page_size = ps > 0 ? (uint64_t)ps : 4096;
        if (mode == ABSORBER_OFF)
                return off(a, "turned off", 0), false;
        if (util_read_file("/proc/swaps", swaps, sizeof(swaps)) < 0)
                return off(a, "no /proc/swaps (a kernel without swap)", 0), false;
        if (adopt(a, swaps)) {
                open_stat(a);
                return a->active = true;
        }
        if (mode == ABSORBER_AUTO && absorber_other_swap(swaps, -1, &listed))
                return off(a, "the guest has swap of its own", 0), false;
        a->capacity = mem_total * size_pct / 100;
        a->capacity -= a->capacity % a->page_size;
        char probe[UTIL_PATH_MAX];
        if (access(util_path(probe, ZRAM_CONTROL) ? probe : "", F_OK) != 0)
                load_module();
        if ((err = add_device(a)) < 0)
                return off(a, "no zram device", -err), false;
        if ((err = arm(a)) < 0) {
                snprintf(probe, sizeof(probe), "%d", a->dev);
                util_write_file(ZRAM_CONTROL "/hot_remove", probe); /* give the device back */
                return off(a, "swapon of the zram device failed", -err), false;
        }
        remember(a->dev);
        open_stat(a);
        return a->active = true;
}

bool absorber_read(struct absorber *a, struct absorber_fill *ret)
{
        char buf[256];

        memset(ret, 0, sizeof(*ret));
        if (!a->active || a->mm_stat_fd < 0 || util_pread_all(a->mm_stat_fd, buf, sizeof(buf)) <= 0)
                return false;
        if (absorber_parse_mm_stat(buf, a->capacity, ret) < 0)
                return false;
        /* the swap header is data in the device too, and stays: not a page the guest lacks */
        ret->stored -= ret->stored < a->page_size ? ret->stored : a->page_size;
        return true;
}

/* A test root's drain: swapoff and swapon act on the whole machine; the test says how it ends. */
static _Noreturn void test_drain_child(void)
{
        const char *how = getenv("DYNMEM_GUEST_TEST_DRAIN");

        if (how && strcmp(how, "swapoff-fails") == 0)
                _exit(DRAIN_SWAPOFF_FAILED);
        if (how && strcmp(how, "swapon-fails") == 0)
                _exit(DRAIN_SWAPON_FAILED);
        _exit(DRAIN_DONE);
}

/* The drain's child: every page back into RAM, then the empty device back on. */
static _Noreturn void drain_child(const struct absorber *a)
{
        char dev[32], path[UTIL_PATH_MAX];

        snprintf(dev, sizeof(dev), "/dev/zram%d", a->dev);
        if (!util_root_is_real())
                test_drain_child();
        if (!util_path(path, dev) || swapoff(path) < 0)
                _exit(DRAIN_SWAPOFF_FAILED);
        _exit(swapon(path, SWAP_FLAG_PREFER | (ABSORBER_PRIORITY & SWAP_FLAG_PRIO_MASK)) < 0
                  ? DRAIN_SWAPON_FAILED
                  : DRAIN_DONE);
}

static void reap(struct absorber *a, uint64_t now_ms)
{
        int status;

        if (!a->drain_pid || waitpid(a->drain_pid, &status, WNOHANG) != a->drain_pid)
                return;
        a->drain_pid = 0;
        a->last_drain_ms = now_ms - a->drain_started_ms;
        if (WIFEXITED(status) && WEXITSTATUS(status) == DRAIN_DONE) {
                a->drains++;
                a->failing = 0;
                util_log("absorber: drained %" PRIu64 " MiB back into RAM in %" PRIu64 " ms",
                         a->drain_stored >> 20, a->last_drain_ms);
                return;
        }
        a->drain_failures++;
        if (WIFEXITED(status) && WEXITSTATUS(status) == DRAIN_SWAPON_FAILED) { /* for good */
                off(a, "swapon failed after a drain", 0);
                util_log("absorber: swapon failed after a drain; absorber off");
                return;
        }
        /* Say so once, and wait longer each time: a swapoff that keeps failing costs a fork. */
        uint64_t gap = ABSORBER_DRAIN_GAP_MS;
        for (unsigned i = 0; i < a->failing && gap < ABSORBER_RETRY_MAX_MS; i++)
                gap *= 2;
        if (gap > ABSORBER_RETRY_MAX_MS)
                gap = ABSORBER_RETRY_MAX_MS;
        if (!a->failing)
                util_log("absorber: a drain failed (swapoff); retrying later, less and less often");
        a->failing++;
        a->next_drain_ms = now_ms + gap;
}

void absorber_note_stall(struct absorber *a, uint64_t some_total_us, uint64_t now_ms)
{
        if (!a->psi_seen || some_total_us != a->stall_total_us)
                a->last_stall_ms = now_ms;
        a->psi_seen = true;
        a->stall_total_us = some_total_us;
}

void absorber_run(struct absorber *a, const struct absorber_fill *f, uint64_t mem_total,
                  uint64_t mem_available, uint64_t now_ms)
{
        pid_t pid;

        reap(a, now_ms);
        if (f && !a->drain_pid && f->stored == 0 && a->held_most) {
                util_log("absorber: empty again without a drain (%" PRIu64
                         " MiB at most; its pages came back into RAM as they were used)",
                         a->held_most >> 20);
                a->held_most = 0;
        } else if (f && !a->drain_pid && f->stored > a->held_most) {
                a->held_most = f->stored;
        }
        if (!a->active || a->drain_pid || !f || f->stored == 0 || now_ms < a->next_drain_ms ||
            (a->psi_seen && now_ms < a->last_stall_ms + ABSORBER_CALM_MS) ||
            mem_available + f->ram < f->stored + mem_total / AGENT_ABSORBER_ROOM_DIV)
                return;
        a->next_drain_ms = now_ms + ABSORBER_DRAIN_GAP_MS;
        pid = fork();
        if (pid == 0)
                drain_child(a);
        if (pid < 0) {
                util_log("absorber: fork: %s", strerror(errno));
                return;
        }
        a->drain_pid = pid;
        a->drain_started_ms = now_ms;
        a->drain_stored = f->stored;
        a->held_most = 0; /* what it holds now is the drain's to bring back */
}

int absorber_timeout(const struct absorber *a, uint64_t now_ms)
{
        (void)now_ms;
        return a->drain_pid ? 50 : -1;
}
