/*
 * dynmem-bench-probe: the guest side of bench/qemu. Installed in the
 * benchmark's guest image as /bin/dynmem-load (so that the image's init runs
 * it as it runs the load), it starts the real load, /bin/dynmem-load-real,
 * with the same arguments, and prints to the console, each line stamped with
 * the guest's CLOCK_MONOTONIC in microseconds:
 *
 *   probe: t=12345678 start pid=97           the load was started
 *   probe: t=12345901 | dynmem-load: ...     a line of the load's output
 *   probe: t=12350012 stall total=81234      PSI memory "some" total grew
 *   probe: t=12350200 memtotal kb=512344     MemTotal grew (or shrank: at most
 *                                            one such line every 100 ms)
 *   probe: t=12351000 tick memtotal kb=...   once a second (clock mapping)
 *   probe: t=12351200 swap kb=81234          swap in use changed (dynmem-guest's
 *                                            absorber filling or draining; at most
 *                                            one line every 100 ms, and at once
 *                                            when it is back to 0)
 *
 * It samples /proc/pressure/memory and /proc/meminfo every PROBE_SAMPLE_MS;
 * stall lines are printed when the total grows, at most one every
 * PROBE_STALL_GAP_MS (the first one after a quiet spell is the start of a
 * stall). The probe keeps itself from the OOM killer (the load stays
 * killable); when the load
 * exits, the probe exits with its status (128 + signal when it was killed),
 * so the image's init restarts both as it would restart the load alone.
 * Only libc, static.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PROBE_LOAD         "/bin/dynmem-load-real"
#define PROBE_SAMPLE_MS    5
#define PROBE_STALL_GAP_MS 100
#define PROBE_TICK_MS      1000

static uint64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Read a small /proc file from offset 0 into buf. Length, or -1. */
static long read_at0(int fd, char *buf, size_t len)
{
        ssize_t n = pread(fd, buf, len - 1, 0);

        if (n < 0)
                return -1;
        buf[n] = '\0';
        return n;
}

/* The number after key in text, or -1. */
static long long number_after(const char *text, const char *key)
{
        const char *p = strstr(text, key);

        return p ? strtoll(p + strlen(key), NULL, 10) : -1;
}

/* "-1000" keeps the probe from the OOM killer; its child must be killable again ("0"). */
static void set_oom_score_adj(const char *value)
{
        int fd = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);

        if (fd >= 0) {
                (void)!write(fd, value, strlen(value));
                close(fd);
        }
}

/* Start the load with stdout and stderr into a pipe; its pid, or -1. */
static pid_t start_load(char **argv, int *ret_fd)
{
        int p[2];
        pid_t pid;

        if (pipe2(p, O_CLOEXEC) < 0)
                return -1;
        pid = fork();
        if (pid == 0) {
                dup2(p[1], 1);
                dup2(p[1], 2);
                set_oom_score_adj("0");
                argv[0] = PROBE_LOAD;
                execv(PROBE_LOAD, argv);
                fprintf(stderr, "probe: cannot run %s: %s\n", PROBE_LOAD, strerror(errno));
                _exit(127);
        }
        close(p[1]);
        if (pid < 0) {
                close(p[0]);
                return -1;
        }
        *ret_fd = p[0];
        return pid;
}

struct sampler {
        int psi_fd, mem_fd;
        long long last_total, last_memtotal, last_swap;
        uint64_t last_stall_print, last_mem_print, last_swap_print, next_tick;
};

/* Swap in use from /proc/meminfo text: a line when it changed (0 at once). */
static void sample_swap(struct sampler *s, uint64_t t, const char *meminfo)
{
        long long total = number_after(meminfo, "SwapTotal:");
        long long used = total - number_after(meminfo, "SwapFree:");

        if (total < 0 || used < 0 || used == s->last_swap)
                return;
        if (used > 0 && t - s->last_swap_print < PROBE_STALL_GAP_MS * 1000ull)
                return;
        printf("probe: t=%" PRIu64 " swap kb=%lld\n", t, used);
        s->last_swap_print = t;
        s->last_swap = used;
}

static void sample(struct sampler *s, uint64_t t)
{
        char buf[2048];

        if (s->psi_fd >= 0 && read_at0(s->psi_fd, buf, sizeof(buf)) > 0) {
                long long total = number_after(buf, "total=");
                if (s->last_total >= 0 && total > s->last_total &&
                    t - s->last_stall_print >= PROBE_STALL_GAP_MS * 1000ull) {
                        printf("probe: t=%" PRIu64 " stall total=%lld\n", t, total);
                        s->last_stall_print = t;
                }
                if (total >= 0)
                        s->last_total = total;
        }
        if (s->mem_fd >= 0 && read_at0(s->mem_fd, buf, sizeof(buf)) > 0) {
                long long kb = number_after(buf, "MemTotal:");
                /* growth at once; shrinking (block by block) at most every gap */
                if (kb > 0 && (kb > s->last_memtotal ||
                               (kb < s->last_memtotal &&
                                t - s->last_mem_print >= PROBE_STALL_GAP_MS * 1000ull))) {
                        printf("probe: t=%" PRIu64 " memtotal kb=%lld\n", t, kb);
                        s->last_mem_print = t;
                }
                if (kb > 0)
                        s->last_memtotal = kb;
                sample_swap(s, t, buf);
        }
        if (t >= s->next_tick) {
                printf("probe: t=%" PRIu64 " tick memtotal kb=%lld\n", t, s->last_memtotal);
                s->next_tick = t + PROBE_TICK_MS * 1000ull;
        }
}

/* Copy whole lines from the load's pipe, stamped. Returns 0 at EOF. */
static int relay(int fd, char *line, size_t *used, size_t cap)
{
        ssize_t n = read(fd, line + *used, cap - 1 - *used);
        char *nl;

        if (n <= 0)
                return n < 0 && errno == EINTR ? 1 : 0;
        *used += (size_t)n;
        while ((nl = memchr(line, '\n', *used))) {
                *nl = '\0';
                printf("probe: t=%" PRIu64 " | %s\n", now_us(), line);
                *used -= (size_t)(nl + 1 - line);
                memmove(line, nl + 1, *used);
        }
        if (*used == cap - 1) /* a line too long: print what there is */
                *used = 0;
        return 1;
}

int main(int argc, char **argv)
{
        struct sampler s = {.last_total = -1, .last_memtotal = -1, .last_swap = 0};
        char line[1024];
        size_t used = 0;
        int fd = -1, status = 0;
        pid_t pid;

        (void)argc;
        setvbuf(stdout, NULL, _IOLBF, 0);
        set_oom_score_adj("-1000");
        s.psi_fd = open("/proc/pressure/memory", O_RDONLY | O_CLOEXEC);
        s.mem_fd = open("/proc/meminfo", O_RDONLY | O_CLOEXEC);
        pid = start_load(argv, &fd);
        if (pid < 0) {
                printf("probe: cannot start %s: %s\n", PROBE_LOAD, strerror(errno));
                return 1;
        }
        printf("probe: t=%" PRIu64 " start pid=%d\n", now_us(), (int)pid);
        for (;;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};
                int r = poll(&p, fd >= 0 ? 1 : 0, PROBE_SAMPLE_MS);
                if (r > 0 && relay(fd, line, &used, sizeof(line)) == 0) {
                        close(fd);
                        fd = -1;
                }
                sample(&s, now_us());
                if (fd < 0 && waitpid(pid, &status, WNOHANG) == pid)
                        break;
        }
        printf("probe: t=%" PRIu64 " load exited\n", now_us());
        if (WIFSIGNALED(status))
                return 128 + WTERMSIG(status);
        return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
