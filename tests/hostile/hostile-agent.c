/*
 * hostile-agent: a guest agent that misbehaves, for the hostile-guest tests.
 * Test-only; libc only, linked statically and installed in the test guest
 * image as /bin/dynmem-guest, so that the image's init starts it (and restarts
 * it) in place of the real agent.
 *
 * It opens the virtio-serial port org.dynmem.agent.0 (found under
 * /sys/class/virtio-ports) and follows the schedule given on the kernel
 * command line:
 *
 *     dynmem.hostile=MODE:SECONDS,MODE:SECONDS,...,MODE
 *
 * each mode for its seconds, the last one for ever (a last MODE:SECONDS is
 * kept for ever too). Modes:
 *
 *   max        claims it needs everything for ever: handshake, then a report
 *              every 100 ms with cause=psi, MemFree = MemAvailable = 0 of its
 *              real MemTotal, 100 % of the time stalled (some and full), and
 *              short by the most a burst absorber may say (twice MemTotal)
 *   flood      handshake, then valid-looking reports as fast as the port takes
 *              them (10,000+ a second when it can)
 *   reconnect  close and reopen the port in a loop: each time an announcement,
 *              a handshake answer and one report
 *   garbage    random bytes, oversized lines, malformed lines, JSON, huge,
 *              negative and inconsistent numbers, a valid handshake now and
 *              then; and at half the mode's time wrong versions (which make
 *              the host refuse the agent), sent cleanly: the line before
 *              ended, then for 3 s no garbage and a trick every 250 ms, so
 *              that the host has read what it still had and its line budget
 *              has refilled, and a trick is parsed rather than lost among
 *              the garbage
 *   quiet      keeps the port open and says nothing
 *
 * On the console (stdout) it prints "hostile-agent: mode NAME" at each switch
 * and, every 5 s, what it sent: "hostile-agent: NAME: LINES lines, BYTES
 * bytes, OPENS opens in SECS s (RATE lines/s)".
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define PORT_NAME "org.dynmem.agent.0"
#define MODES_MAX 16
#define BATCH     (32 * 1024)

enum mode { M_MAX, M_FLOOD, M_RECONNECT, M_GARBAGE, M_QUIET };

static const char *const mode_names[] = {"max", "flood", "reconnect", "garbage", "quiet"};

struct step {
        enum mode mode;
        double seconds; /* < 0: for ever */
};

static struct step steps[MODES_MAX];
static int nsteps;
static char port_path[64];
static int fd = -1;

/* What was sent since the last summary. */
static uint64_t sent_lines, sent_bytes, opens;
static double summary_at;

static uint64_t seq;
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t mem_total = 200ull << 20, mem_free = 100ull << 20, mem_avail = 150ull << 20;

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ms(void)
{
        return (uint64_t)(now_s() * 1000.0);
}

static uint64_t rnd(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return rng;
}

__attribute__((format(printf, 1, 2))) static void say(const char *fmt, ...)
{
        va_list ap;

        printf("hostile-agent: ");
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
        fflush(stdout);
}

/* ---- the schedule ---- */

static int parse_mode(const char *s, size_t n, enum mode *ret)
{
        for (size_t i = 0; i < sizeof(mode_names) / sizeof(mode_names[0]); i++) {
                if (strlen(mode_names[i]) == n && strncmp(s, mode_names[i], n) == 0) {
                        *ret = (enum mode)i;
                        return 0;
                }
        }
        return -1;
}

static void read_schedule(void)
{
        char buf[4096] = "", *p, *end;
        FILE *f = fopen("/proc/cmdline", "r");

        if (f) {
                if (!fgets(buf, sizeof(buf), f))
                        buf[0] = '\0';
                fclose(f);
        }
        p = strstr(buf, "dynmem.hostile=");
        if (p) {
                p += strlen("dynmem.hostile=");
                end = p + strcspn(p, " \n");
                while (p < end && nsteps < MODES_MAX) {
                        char *comma = memchr(p, ',', (size_t)(end - p));
                        char *item_end = comma ? comma : end;
                        char *colon = memchr(p, ':', (size_t)(item_end - p));
                        struct step s = {.seconds = -1};

                        if (parse_mode(p, (size_t)((colon ? colon : item_end) - p), &s.mode) == 0) {
                                if (colon)
                                        s.seconds = strtod(colon + 1, NULL);
                                steps[nsteps++] = s;
                        } else {
                                say("unknown mode in %.*s", (int)(item_end - p), p);
                        }
                        p = comma ? comma + 1 : end;
                }
        }
        if (nsteps == 0)
                steps[nsteps++] = (struct step){M_MAX, -1};
        steps[nsteps - 1].seconds = -1;
}

/* ---- the port ---- */

static int find_port(void)
{
        DIR *d = opendir("/sys/class/virtio-ports");
        struct dirent *e;
        int found = -1;

        if (!d)
                return -1;
        while ((e = readdir(d)) && found < 0) {
                char path[300], name[128] = "";
                FILE *f;

                if (e->d_name[0] == '.')
                        continue;
                snprintf(path, sizeof(path), "/sys/class/virtio-ports/%s/name", e->d_name);
                if (!(f = fopen(path, "r")))
                        continue;
                if (fgets(name, sizeof(name), f) &&
                    strncmp(name, PORT_NAME, strlen(PORT_NAME)) == 0 &&
                    (name[strlen(PORT_NAME)] == '\n' || name[strlen(PORT_NAME)] == '\0')) {
                        snprintf(port_path, sizeof(port_path), "/dev/%.40s", e->d_name);
                        found = 0;
                }
                fclose(f);
        }
        closedir(d);
        return found;
}

static void port_close(void)
{
        if (fd >= 0)
                close(fd);
        fd = -1;
}

static int port_open(void)
{
        if (fd >= 0)
                return 0;
        if (!port_path[0] && find_port() < 0)
                return -1;
        fd = open(port_path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (fd < 0)
                return -1;
        opens++;
        return 0;
}

/* Read and forget what the host wrote; true when it sent a hello. */
static bool drain(void)
{
        char buf[4096];
        bool hello = false;
        ssize_t n;

        if (fd < 0)
                return false;
        while ((n = read(fd, buf, sizeof(buf))) > 0)
                if (memmem(buf, (size_t)n, "DMG1 hello", 10))
                        hello = true;
        return hello;
}

/* Write all of buf, waiting at most wait_ms for room; false when the host is away. */
static bool put(const char *buf, size_t len, int wait_ms)
{
        double deadline = now_s() + wait_ms / 1000.0;

        while (len > 0) {
                ssize_t n;

                if (fd < 0)
                        return false;
                n = write(fd, buf, len);
                if (n > 0) {
                        buf += n;
                        len -= (size_t)n;
                        sent_bytes += (uint64_t)n;
                        continue;
                }
                if (n < 0 && errno != EAGAIN && errno != EINTR) {
                        port_close();
                        return false;
                }
                int left = (int)((deadline - now_s()) * 1000.0);
                if (left <= 0)
                        return false;
                struct pollfd p = {.fd = fd, .events = POLLOUT};
                if (poll(&p, 1, left > 100 ? 100 : left) > 0 && (p.revents & POLLHUP)) {
                        /* no host connected: what is left is lost */
                        return false;
                }
        }
        return true;
}

static void line(const char *s, int wait_ms)
{
        if (put(s, strlen(s), wait_ms))
                sent_lines++;
}

/* ---- what it says ---- */

static void sample_meminfo(void)
{
        char key[64];
        unsigned long long v;
        FILE *f = fopen("/proc/meminfo", "r");

        if (!f)
                return;
        while (fscanf(f, "%63s %llu kB\n", key, &v) == 2) {
                if (strcmp(key, "MemTotal:") == 0)
                        mem_total = v * 1024;
                else if (strcmp(key, "MemFree:") == 0)
                        mem_free = v * 1024;
                else if (strcmp(key, "MemAvailable:") == 0)
                        mem_avail = v * 1024;
        }
        fclose(f);
}

static void handshake(void)
{
        line("DMG1 hello min=1 max=1 agent=hostile page_size=4096 balloon=1 virtio_mem=1 psi=1 "
             "psi_trigger=1\n",
             200);
        line("DMG1 hello min=1 max=1 version=1 interval_ms=1000 agent=hostile page_size=4096 "
             "balloon=1 virtio_mem=1 psi=1 psi_trigger=1\n",
             200);
}

/* A report that claims every byte in use and every microsecond stalled. */
static void report_max(void)
{
        static uint64_t stall_us;
        static double last;
        char buf[1024];
        double t = now_s();

        if (last > 0)
                stall_us += (uint64_t)((t - last) * 1e6);
        last = t;
        seq++;
        snprintf(buf, sizeof(buf),
                 "DMG1 report seq=%" PRIu64 " time_ms=%" PRIu64
                 " cause=psi mem_total_bytes=%" PRIu64
                 " mem_free_bytes=0 mem_available_bytes=0 cached_bytes=0 active_file_bytes=0 "
                 "psi_some_avg10_bp=10000 psi_some_total_us=%" PRIu64
                 " psi_full_avg10_bp=10000 psi_full_total_us=%" PRIu64 " pgmajfault=%" PRIu64
                 " refaults=%" PRIu64 " absorber_bytes=%" PRIu64
                 " absorber_ram_bytes=0 absorber_size_bytes=%" PRIu64 "\n",
                 seq, now_ms(), mem_total, stall_us, stall_us, seq * 1000, seq * 100000,
                 2 * mem_total, 2 * mem_total);
        line(buf, 100);
}

static size_t report_plain(char *buf, size_t size)
{
        int n = snprintf(buf, size,
                         "DMG1 report seq=%" PRIu64 " time_ms=%" PRIu64 " mem_total_bytes=%" PRIu64
                         " mem_free_bytes=%" PRIu64 " mem_available_bytes=%" PRIu64 "\n",
                         ++seq, now_ms(), mem_total, mem_free, mem_avail);
        return n > 0 && (size_t)n < size ? (size_t)n : 0;
}

/* As many valid-looking reports as the port takes, a batch at a time. */
static void flood_batch(void)
{
        static char buf[BATCH];
        size_t len = 0, lines = 0, n;

        while ((n = report_plain(buf + len, sizeof(buf) - len)) > 0 && len + n < BATCH - 256) {
                len += n;
                lines++;
        }
        if (put(buf, len, 200))
                sent_lines += lines;
}

static const char *const garbage_lines[] = {
    "DMG1  report seq=1\n",
    "DMG1 report seq=1 \n",
    "DMG1 hello min=1 max=1 version=0\n",
    " DMG1 report seq=1\n",
    "DMG1 REPORT seq=1\n",
    "DMG1 report\tseq=1\n",
    "DMG1 report seq=1\r\n",
    "DMG2 report seq=1\n",
    "dmg1 report seq=1\n",
    "DMG1\n",
    "\n",
    "DMG1 report seq=\n",
    "DMG1 report =1\n",
    "DMG1 report seq==1\n",
    "{\"type\": \"report\", \"mem_total_bytes\": 1099511627776}\n",
    "{\"jsonrpc\": \"2.0\", \"method\": \"report\", \"params\": [1, 2, 3]\n",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n",
    "DMG1 report seq=1 time_ms=1 mem_total_bytes=99999999999999999999999 mem_free_bytes=1\n",
    "DMG1 report seq=1 time_ms=1 mem_total_bytes=18446744073709551615 mem_free_bytes=0\n",
    "DMG1 report seq=1 time_ms=1 mem_total_bytes=18446744073709551616 mem_free_bytes=0\n",
    "DMG1 report seq=1 time_ms=1 mem_total_bytes=17592186044417 mem_free_bytes=0\n",
    "DMG1 report seq=2 time_ms=2 mem_total_bytes=-1 mem_free_bytes=-1\n",
    "DMG1 report seq=-5 time_ms=-5 mem_total_bytes=268435456 mem_free_bytes=0\n",
    "DMG1 report seq=3 time_ms=3 mem_total_bytes=268435456 mem_free_bytes=-268435456\n",
    "DMG1 report seq=4 time_ms=4 mem_total_bytes=0268435456 mem_free_bytes=0\n",
    "DMG1 report seq=5 time_ms=5 mem_total_bytes=+268435456 mem_free_bytes=0\n",
    "DMG1 report seq=6 time_ms=6 mem_total_bytes=2.5e9 mem_free_bytes=0\n",
    "DMG1 report seq=7 time_ms=7 mem_total_bytes=0x10000000 mem_free_bytes=0\n",
    "DMG1 report seq=8 time_ms=8 mem_total_bytes=268435456 mem_free_bytes=536870912\n",
    "DMG1 report seq=9 time_ms=9 mem_total_bytes=268435456 mem_free_bytes=0 "
    "mem_available_bytes=536870912\n",
    "DMG1 report seq=10 time_ms=10 mem_total_bytes=268435456 mem_total_bytes=1 "
    "mem_free_bytes=0\n",
    "DMG1 report seq=11 time_ms=11 mem_total_bytes=1099511627776 mem_free_bytes=0\n",
    "DMG1 report seq=12 time_ms=12 mem_total_bytes=268435456 mem_free_bytes=0 "
    "psi_some_avg10_bp=10001 psi_some_total_us=1\n",
    "DMG1 report seq=13 time_ms=13 mem_total_bytes=268435456 mem_free_bytes=0 "
    "psi_some_avg10_bp=50\n",
    "DMG1 report seq=14 time_ms=14 mem_total_bytes=268435456 mem_free_bytes=0 "
    "balloon_bytes=1099511627776 balloon_in_total=1\n",
    "DMG1 report seq=16 time_ms=16 mem_total_bytes=268435456 mem_free_bytes=0 "
    "absorber_bytes=536870913 absorber_ram_bytes=0 absorber_size_bytes=536870913\n",
    "DMG1 report seq=17 time_ms=17 mem_total_bytes=268435456 mem_free_bytes=0 "
    "absorber_bytes=2 absorber_ram_bytes=0 absorber_size_bytes=1\n",
    "DMG1 report seq=18 time_ms=18 mem_total_bytes=268435456 mem_free_bytes=0 "
    "absorber_bytes=1\n",
    "DMG1 report seq=0 time_ms=0 mem_total_bytes=268435456 mem_free_bytes=0\n",
    "DMG1 report seq=4611686018427387905 time_ms=9007199254740993 "
    "mem_total_bytes=268435456 mem_free_bytes=0\n",
    "DMG1 report time_ms=1 mem_total_bytes=268435456\n",
    "DMG1 hello min=0 max=0\n",
    "DMG1 hello min=2 max=1\n",
    "DMG1 hello min=1 max=1 page_size=4097\n",
    "DMG1 hello min=1 max=1 page_size=0\n",
    "DMG1 hello min=1 max=1 psi=2\n",
    "DMG1 hello min=1 max=99999999999999999999\n",
    "DMG1 frobnicate a=1 b=2\n",
    "DMG1 report seq=15 time_ms=15 mem_total_bytes=268435456 mem_free_bytes=0 "
    "unknown_key=1 another_unknown=2\n",
};

/*
 * Version tricks: each makes the host refuse the agent (versions that do not meet the
 * host's, or a choice other than the one due). ("version=0" is not one: the host takes it
 * for an old answer left in the port, garbage_lines has it.)
 */
static const char *const version_lines[] = {
    "DMG1 hello min=7 max=9\n",
    "DMG1 hello min=1 max=1 version=5\n",
    "DMG1 hello min=1000 max=1000 version=1000\n",
};

/*
 * Wrong versions, sent so that the host parses one (see "garbage" above): the line a
 * batch left unfinished ended, then no garbage for 3 s, a trick every 250 ms; what the
 * host still had of the garbage is read meanwhile, and its line budget (20 a second)
 * refills. The first trick parsed is refused; the rest, like any line from a refused
 * agent that is not a hello 60 s later, are not heard.
 */
static void version_tricks(void)
{
        put("\n", 1, 1000);
        for (size_t i = 0; i < 12; i++) {
                usleep(250000);
                line(version_lines[i % (sizeof(version_lines) / sizeof(version_lines[0]))], 1000);
        }
}

static void garbage_batch(void)
{
        static char buf[BATCH];
        size_t len = 0;
        int kind = (int)(rnd() % 100);

        if (kind < 20) { /* random bytes, newlines included */
                len = 512 + rnd() % 4096;
                for (size_t i = 0; i < len; i++)
                        buf[i] = (char)rnd();
        } else if (kind < 30) { /* one oversized line: 2 KiB to 32 KiB, newline or not */
                len = 2048 + rnd() % (BATCH - 2048);
                memcpy(buf, "DMG1 report seq=1 mem_total_bytes=", 34);
                memset(buf + 34, '9', len - 34);
                if (rnd() % 2)
                        buf[len - 1] = '\n';
        } else if (kind < 33) { /* a valid handshake now and then, so that reports are parsed */
                handshake();
                return;
        } else {
                for (int i = 0; i < 32; i++) {
                        const char *s = garbage_lines[rnd() % (sizeof(garbage_lines) /
                                                               sizeof(garbage_lines[0]))];
                        size_t n = strlen(s);

                        if (len + n > sizeof(buf))
                                break;
                        memcpy(buf + len, s, n);
                        len += n;
                }
        }
        if (put(buf, len, 100))
                sent_lines++;
}

static void reconnect_once(void)
{
        char buf[512];

        port_close();
        if (port_open() < 0) {
                usleep(100000);
                return;
        }
        handshake();
        if (report_plain(buf, sizeof(buf)) > 0)
                line(buf, 100);
        port_close();
}

/* ---- the loop ---- */

static void summary(const char *mode, bool force)
{
        double t = now_s(), dt = t - summary_at;

        if (!force && dt < 5.0)
                return;
        if (dt > 0)
                say("%s: %" PRIu64 " lines, %" PRIu64 " bytes, %" PRIu64
                    " opens in %.1f s (%.0f lines/s)",
                    mode, sent_lines, sent_bytes, opens, dt, (double)sent_lines / dt);
        sent_lines = sent_bytes = opens = 0;
        summary_at = t;
}

static void run_mode(const struct step *s)
{
        double start = now_s(), end = s->seconds < 0 ? 1e300 : start + s->seconds;
        double next_sample = 0;
        const char *name = mode_names[s->mode];
        bool tricked = false;

        say("mode %s", name);
        summary(name, true);
        if (s->mode != M_RECONNECT && port_open() == 0 && s->mode != M_GARBAGE &&
            s->mode != M_QUIET)
                handshake();
        while (now_s() < end) {
                double t = now_s();

                if (t >= next_sample) {
                        sample_meminfo();
                        next_sample = t + 1.0;
                }
                if (s->mode != M_RECONNECT && port_open() < 0) {
                        usleep(200000);
                        continue;
                }
                if (s->mode != M_RECONNECT && drain() && s->mode != M_GARBAGE && s->mode != M_QUIET)
                        handshake(); /* the host (re)connected: answer it */
                switch (s->mode) {
                case M_MAX:
                        report_max();
                        usleep(100000);
                        break;
                case M_FLOOD:
                        flood_batch();
                        break;
                case M_RECONNECT:
                        reconnect_once();
                        usleep(5000);
                        break;
                case M_GARBAGE:
                        /* The tricks at half its time. */
                        if (!tricked && s->seconds > 0 && t - start >= s->seconds / 2) {
                                version_tricks();
                                tricked = true;
                        }
                        garbage_batch();
                        usleep(1000);
                        break;
                case M_QUIET:
                        usleep(200000);
                        break;
                }
                summary(name, false);
        }
        summary(name, true);
}

int main(void)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        read_schedule();
        rng ^= (uint64_t)now_ms() * 0x2545f4914f6cdd1dull;
        for (int tries = 0; find_port() < 0; tries++) {
                if (tries == 50) {
                        say("no port %s under /sys/class/virtio-ports", PORT_NAME);
                        return 1;
                }
                usleep(100000);
        }
        say("port %s is %s", PORT_NAME, port_path);
        summary_at = now_s();
        for (int i = 0; i < nsteps; i++)
                run_mode(&steps[i]);
        return 0;
}
