/*
 * Tests for the guest agent's parts that watch the guest's own devices and
 * files (guest/agent/, compiled in here), under a temporary root
 * (util_set_root) and with the agent's clock given by each case:
 *
 * - conn: the port as a FIFO at a path, unplugged (removed) and plugged again
 *   (made anew), as a hot-unplugged virtserialport looks to the guest: its
 *   old descriptor never comes back, its node goes;
 * - hotplug: the uevent socket's overflow, ENOBUFS from recv(), which this
 *   program hands out in place of the kernel (-Wl,--wrap=recv);
 * - sample: a /proc/meminfo that loses its MemTotal and gets it back, and its
 *   SwapFree, present or not.
 *
 * What the agent logs is taken here too (-Wl,--wrap=util_log), so that the
 * cases count its lines rather than read its rate-limited stderr.
 */
#include <errno.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent_wire.h"
#include "conn.h"
#include "hotplug.h"
#include "sample.h"
#include "util.h"

static char tmp_root[256];

/* The agent's log lines since the case began. */
static char logged[16][256];
static unsigned n_logged;

void __wrap_util_log(const char *fmt, ...);
void __wrap_util_log(const char *fmt, ...)
{
        va_list ap;

        if (n_logged >= sizeof(logged) / sizeof(logged[0]))
                fail_msg("more than %zu log lines", sizeof(logged) / sizeof(logged[0]));
        va_start(ap, fmt);
        vsnprintf(logged[n_logged++], sizeof(logged[0]), fmt, ap);
        va_end(ap);
}

static unsigned logged_with(const char *text)
{
        unsigned n = 0;

        for (unsigned i = 0; i < n_logged; i++)
                n += strstr(logged[i], text) != NULL;
        return n;
}

/*
 * recv() on the uevent socket (uevent_fd): the results queued by the case, one per call: a
 * message, or -errno; then EAGAIN. Every other socket gets the real recv().
 */
static int uevent_fd = -1;
static const char *uevent_script[8];
static int uevent_errno[8];
static unsigned uevent_next, uevent_count;

ssize_t __real_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t len, int flags)
{
        size_t n;

        if (fd != uevent_fd || uevent_fd < 0)
                return __real_recv(fd, buf, len, flags);
        if (uevent_next == uevent_count) {
                errno = EAGAIN;
                return -1;
        }
        if (uevent_errno[uevent_next]) {
                errno = uevent_errno[uevent_next++];
                return -1;
        }
        n = strlen(uevent_script[uevent_next]);
        n = n < len ? n : len;
        memcpy(buf, uevent_script[uevent_next++], n);
        return (ssize_t)n;
}

static void uevent_queue(const char *message, int err)
{
        assert_true(uevent_count < sizeof(uevent_script) / sizeof(uevent_script[0]));
        uevent_script[uevent_count] = message;
        uevent_errno[uevent_count++] = err;
}

/* tmp_root + rel into buf (512 bytes). */
static char *in_root(char *buf, const char *rel)
{
        snprintf(buf, 512, "%s/%s", tmp_root, rel);
        return buf;
}

/* root + rel, with its folders made, holding text. */
static void put(const char *rel, const char *text)
{
        char path[512];
        FILE *f;

        in_root(path, rel);
        for (char *p = path + strlen(tmp_root) + 1; (p = strchr(p, '/')); p++) {
                *p = '\0';
                mkdir(path, 0755);
                *p = '/';
        }
        f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void get(const char *rel, char *buf, size_t len)
{
        assert_true(util_read_file(rel, buf, len) > 0);
        buf[strcspn(buf, "\n")] = '\0';
}

static int make_root(void **state)
{
        (void)state;
        snprintf(tmp_root, sizeof(tmp_root), "/tmp/dynmem-guest-io-XXXXXX");
        assert_non_null(mkdtemp(tmp_root));
        util_set_root(tmp_root);
        n_logged = 0;
        uevent_fd = -1;
        uevent_next = uevent_count = 0;
        return 0;
}

static int remove_root(void **state)
{
        char cmd[300];

        (void)state;
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
        assert_int_equal(system(cmd), 0);
        util_set_root("");
        return 0;
}

static void no_line(void *arg, const char *line, size_t len)
{
        (void)arg, (void)line, (void)len;
        fail_msg("no line expected");
}

/* The inode of the node at path, and of what fd has open. */
static ino_t node_of(const char *path)
{
        struct stat st;

        assert_int_equal(stat(path, &st), 0);
        return st.st_ino;
}

static ino_t open_node(int fd)
{
        struct stat st;

        assert_int_equal(fstat(fd, &st), 0);
        return st.st_ino;
}

/* The port open and the host connected, then the host side gone (POLLHUP, as on unplug). */
static void port_up_then_hup(struct conn *c, const char *port, uint64_t now)
{
        assert_true(conn_service(c, now));
        assert_int_equal(c->state, CONN_UP);
        assert_int_equal(open_node(c->fd), node_of(port));
        assert_false(conn_io(c, POLLHUP, now, no_line, NULL));
        assert_int_equal(c->state, CONN_HOST_AWAY);
}

/*
 * The port unplugged: its node goes. The agent closes the old descriptor (which would
 * never work again), tries to open the port again, waiting longer after each failure up to
 * CONN_RETRY_MAX_MS, says so once, and opens the port again once it is plugged back; the
 * wait starts at CONN_RETRY_MS again for the next outage.
 */
static void port_unplugged_is_opened_again_when_back(void **state)
{
        static const int gaps[] = {1000, 2000, 4000, 8000, 10000, 10000, 10000};
        char port[512];
        struct conn c;
        uint64_t now = 5000;

        (void)state;
        in_root(port, "vport0p1");
        assert_int_equal(mkfifo(port, 0600), 0);
        conn_init(&c, port);
        port_up_then_hup(&c, port, now);

        assert_int_equal(unlink(port), 0);
        now += CONN_RETRY_MS;
        assert_false(conn_service(&c, now));
        assert_int_equal(c.state, CONN_CLOSED);
        assert_int_equal(c.fd, -1);
        for (unsigned i = 0; i < sizeof(gaps) / sizeof(gaps[0]); i++) {
                assert_int_equal(conn_timeout(&c, now), gaps[i]);
                now += (uint64_t)gaps[i];
                assert_false(conn_service(&c, now));
                assert_int_equal(c.state, CONN_CLOSED);
        }
        assert_int_equal(n_logged, 1);
        assert_int_equal(logged_with("gone: No such file or directory; reopening it"), 1);

        assert_int_equal(mkfifo(port, 0600), 0);
        now += (uint64_t)conn_timeout(&c, now);
        assert_true(conn_service(&c, now));
        assert_int_equal(open_node(c.fd), node_of(port));
        assert_int_equal(n_logged, 2);
        assert_int_equal(logged_with("open again"), 1);

        /* The next outage waits CONN_RETRY_MS first again. */
        assert_false(conn_io(&c, POLLHUP, now, no_line, NULL));
        assert_int_equal(unlink(port), 0);
        assert_false(conn_service(&c, now += CONN_RETRY_MS));
        assert_int_equal(conn_timeout(&c, now), CONN_RETRY_MS);
        conn_close(&c, now);
}

/* Unplugged and plugged again between two looks: the new node is opened, not the old kept. */
static void port_plugged_again_between_looks_is_opened_anew(void **state)
{
        char port[512];
        struct conn c;
        uint64_t now = 5000;

        (void)state;
        in_root(port, "vport0p1");
        assert_int_equal(mkfifo(port, 0600), 0);
        conn_init(&c, port);
        port_up_then_hup(&c, port, now);

        assert_int_equal(unlink(port), 0);
        assert_int_equal(mkfifo(port, 0600), 0);
        assert_true(conn_service(&c, now += CONN_RETRY_MS));
        assert_int_equal(open_node(c.fd), node_of(port));
        assert_int_equal(n_logged, 2);

        /* A host merely away (the same node there) keeps the port open and is looked for. */
        int fd = c.fd;
        assert_false(conn_io(&c, POLLHUP, now, no_line, NULL));
        assert_true(conn_service(&c, now += CONN_RETRY_MS));
        assert_int_equal(c.fd, fd);
        assert_int_equal(n_logged, 2);
        conn_close(&c, now);
}

/* A port by name whose sysfs entry is gone (unplugged): the same, found by its name again. */
static void port_by_name_unplugged_is_found_again(void **state)
{
        char node[512];
        struct conn c;
        uint64_t now = 5000;

        (void)state;
        put("sys/class/virtio-ports/vport0p1/name", "org.dynmem.agent.0\n");
        assert_int_equal(mkdir(in_root(node, "dev"), 0755), 0);
        in_root(node, "dev/vport0p1");
        assert_int_equal(mkfifo(node, 0600), 0);
        conn_init(&c, "org.dynmem.agent.0");
        port_up_then_hup(&c, node, now);

        /* Gone, then back on another device (the host plugged a new virtio-serial bus). */
        assert_int_equal(unlink(node), 0);
        in_root(node, "sys/class/virtio-ports/vport0p1/name");
        assert_int_equal(unlink(node), 0);
        assert_false(conn_service(&c, now += CONN_RETRY_MS));
        assert_int_equal(c.state, CONN_CLOSED);
        put("sys/class/virtio-ports/vport1p1/name", "org.dynmem.agent.0\n");
        in_root(node, "dev/vport1p1");
        assert_int_equal(mkfifo(node, 0600), 0);
        now += (uint64_t)conn_timeout(&c, now);
        assert_true(conn_service(&c, now));
        assert_int_equal(open_node(c.fd), node_of(node));
        assert_int_equal(logged_with("open again (" /* the new path */), 1);
        assert_int_equal(logged_with("/dev/vport1p1)"), 1);
        conn_close(&c, now);
}

/* No port at all: logged once, looked for with a bounded backoff. */
static void missing_port_is_logged_once_and_backs_off(void **state)
{
        char port[512];
        struct conn c;
        uint64_t now = 0;
        int last = 0;

        (void)state;
        conn_init(&c, in_root(port, "nothing-here"));
        for (unsigned i = 0; i < 20; i++) {
                assert_false(conn_service(&c, now));
                int t = conn_timeout(&c, now);
                assert_true(t >= last && t <= CONN_RETRY_MAX_MS);
                last = t;
                now += (uint64_t)t;
        }
        assert_int_equal(last, CONN_RETRY_MAX_MS);
        assert_int_equal(n_logged, 1);
        assert_int_equal(logged_with("No such file or directory; looking again every 1 s"), 1);
}

/* A fake memory tree: one online block, the state files writable. */
static void hotplug_ready(struct hotplug *h, uint64_t now)
{
        int sv[2];

        put("sys/devices/system/memory/auto_online_blocks", "offline\n");
        put("sys/devices/system/memory/memory0/state", "online\n");
        hotplug_open(h, now);
        assert_true(h->present && h->writable);
        hotplug_close(h); /* the kernel's socket, if it could be had: this program is the kernel */
        assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, sv), 0);
        close(sv[1]);
        h->uevent_fd = uevent_fd = sv[0];
        hotplug_run(h, 0, now); /* the scan at start */
        assert_int_equal(hotplug_timeout(h, now), HOTPLUG_SCAN_MS);
}

/*
 * The uevent socket overflowed while blocks were added (ENOBUFS, and the "add" of memory8
 * lost): the agent scans at once, not HOTPLUG_SCAN_MS later, and reads on past the error.
 */
static void uevent_overflow_scans_at_once(void **state)
{
        struct hotplug h;
        char st[32];
        uint64_t now = 1000;

        (void)state;
        hotplug_ready(&h, now);
        put("sys/devices/system/memory/memory8/state", "offline\n");
        uevent_queue(NULL, ENOBUFS);
        uevent_queue("change@/devices/virtual/net/lo", 0);
        now += 5000;
        hotplug_run(&h, POLLIN, now);
        assert_int_equal(uevent_next, uevent_count); /* read on after ENOBUFS */
        get("/sys/devices/system/memory/memory8/state", st, sizeof(st));
        assert_string_equal(st, "online_movable");
        assert_int_equal(h.onlined, 1);
        assert_int_equal(h.overflows, 1);
        assert_int_equal(logged_with("memory uevents lost"), 1);

        /* Another overflow a little later: a scan again (after the gap), no new line. */
        put("sys/devices/system/memory/memory9/state", "offline\n");
        uevent_queue(NULL, ENOBUFS);
        hotplug_run(&h, POLLIN, now += 200);
        assert_int_equal(hotplug_timeout(&h, now), HOTPLUG_MIN_GAP_MS - 200);
        hotplug_run(&h, 0, now += HOTPLUG_MIN_GAP_MS - 200);
        get("/sys/devices/system/memory/memory9/state", st, sizeof(st));
        assert_string_equal(st, "online_movable");
        assert_int_equal(logged_with("memory uevents lost"), 1);
        close(uevent_fd);
}

/* Other uevents ask for no scan; a memory block's does. */
static void memory_uevent_scans_others_do_not(void **state)
{
        struct hotplug h;
        uint64_t now = 1000;

        (void)state;
        hotplug_ready(&h, now);
        uevent_queue("add@/devices/virtual/block/zram1", 0);
        hotplug_run(&h, POLLIN, now += 5000);
        assert_false(h.scan_wanted);
        assert_int_equal(hotplug_timeout(&h, now), HOTPLUG_SCAN_MS - 5000);
        put("sys/devices/system/memory/memory8/state", "offline\n");
        uevent_queue("add@/devices/system/memory/memory8", 0);
        hotplug_run(&h, POLLIN, now += 1000);
        assert_int_equal(h.onlined, 1);
        close(uevent_fd);
}

#define MEMINFO_OK "MemTotal: 1048576 kB\nMemFree: 262144 kB\nMemAvailable: 524288 kB\n"

/*
 * MemTotal gone from /proc/meminfo, or the file gone: no sample, said once (not at every
 * try), tried again each time; back, said once, and samples again.
 */
static void meminfo_without_memtotal_is_logged_once_and_retried(void **state)
{
        struct sampler s;
        struct sample smp;
        char path[512];

        (void)state;
        put("proc/meminfo", MEMINFO_OK);
        assert_int_equal(sampler_open(&s), 0);
        assert_int_equal(sampler_read(&s, NULL, &smp), 0);
        assert_int_equal(smp.mem_total, 1048576ull * 1024);

        put("proc/meminfo", "MemFree: 262144 kB\nMemAvailable: 524288 kB\n");
        for (unsigned i = 0; i < 5; i++)
                assert_int_equal(sampler_read(&s, NULL, &smp), -EINVAL);
        assert_int_equal(n_logged, 1);
        assert_int_equal(logged_with("/proc/meminfo: no usable MemTotal"), 1);

        /* Replaced by a new file (not rewritten in place): read from the new one. */
        in_root(path, "proc/meminfo");
        assert_int_equal(unlink(path), 0);
        assert_int_equal(sampler_read(&s, NULL, &smp), -ENOENT);
        assert_int_equal(sampler_read(&s, NULL, &smp), -ENOENT);
        assert_int_equal(n_logged, 2);
        assert_int_equal(logged_with("/proc/meminfo: No such file or directory"), 1);
        put("proc/meminfo", MEMINFO_OK);
        assert_int_equal(sampler_read(&s, NULL, &smp), 0);
        assert_int_equal(smp.mem_total, 1048576ull * 1024);
        assert_int_equal(sampler_read(&s, NULL, &smp), 0);
        assert_int_equal(n_logged, 3);
        assert_int_equal(logged_with("/proc/meminfo: readable again"), 1);
        sampler_close(&s);
}

/*
 * SwapFree is reported as swap_free_bytes whenever /proc/meminfo has it (0: a guest
 * without swap); without the line the key is left out (the host: swap unknown). More
 * than the host accepts is sent as the most it accepts.
 */
static void meminfo_swap_free_is_sampled(void **state)
{
        static const struct {
                const char *text;
                bool have;
                uint64_t swap_free, swap_used;
        } cases[] = {
            {"MemTotal: 1048576 kB\nSwapTotal: 2097152 kB\nSwapFree: 1572864 kB\n", true,
             1572864ull * 1024, 524288ull * 1024},
            {"MemTotal: 1048576 kB\nSwapTotal: 0 kB\nSwapFree: 0 kB\n", true, 0, 0},
            {"MemTotal: 1048576 kB\n", false, 0, 0},
            {"MemTotal: 1048576 kB\nSwapTotal: 34359738368 kB\nSwapFree: 34359738368 kB\n", true,
             AGENT_BYTES_MAX, 0},
        };

        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct sample smp = {0};

                assert_int_equal(sample_parse_meminfo(cases[i].text, &smp), 0);
                assert_int_equal(!!(smp.have & AGENT_HAVE_SWAP), cases[i].have);
                assert_int_equal(smp.swap_free, cases[i].swap_free);
                assert_int_equal(smp.swap_used, cases[i].swap_used);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(port_unplugged_is_opened_again_when_back, make_root,
                                            remove_root),
            cmocka_unit_test_setup_teardown(port_plugged_again_between_looks_is_opened_anew,
                                            make_root, remove_root),
            cmocka_unit_test_setup_teardown(port_by_name_unplugged_is_found_again, make_root,
                                            remove_root),
            cmocka_unit_test_setup_teardown(missing_port_is_logged_once_and_backs_off, make_root,
                                            remove_root),
            cmocka_unit_test_setup_teardown(uevent_overflow_scans_at_once, make_root, remove_root),
            cmocka_unit_test_setup_teardown(memory_uevent_scans_others_do_not, make_root,
                                            remove_root),
            cmocka_unit_test_setup_teardown(meminfo_without_memtotal_is_logged_once_and_retried,
                                            make_root, remove_root),
            cmocka_unit_test(meminfo_swap_free_is_sampled),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
