/*
 * dynmem-guest: dynmem's guest agent. It tells the host, over the
 * virtio-serial port org.dynmem.agent.0, how much memory the guest uses and
 * whether it stalls: a report every interval the host asks for, and one at
 * once when a PSI trigger says the guest has started to stall (unless
 * --no-trigger or dynmem.agent.trigger=0 on the kernel command line turn
 * that off, for comparisons). It also
 * brings hot-added memory blocks online when the kernel has not, and sets
 * up a burst absorber (compressed swap in RAM, absorber.h) that holds a
 * sudden burst while the host plugs memory, and drains it afterwards; and it
 * throttles the workload's cgroups (memory.high, throttle.h) while the guest
 * is short of memory and a host is connected to plug more.
 *
 * Nothing of the machine is touched until the port exists (wait_port: a
 * machine without it is no dynmem guest). One agent runs at a time
 * (wait_turn: a second waits for the first to stop).
 * Once set up it drops the capabilities it no longer needs (caps.h), and
 * CAP_SYS_ADMIN later should its absorber go off for good.
 * One thread, one poll() loop, no allocation after start; it never
 * busy-loops (every wait is a poll on a descriptor or a timer) and logs to
 * stderr sparingly. The protocol: docs/guest-protocol.md. Only libc;
 * built static so that it runs in any Linux guest.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/capability.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "absorber.h"
#include "agent_wire.h"
#include "caps.h"
#include "conn.h"
#include "dynmem-config.h"
#include "hotplug.h"
#include "proto.h"
#include "psi.h"
#include "sample.h"
#include "throttle.h"
#include "util.h"

#define PSI_REPORT_GAP_MS 100 /* stall-triggered reports at most this often */
/*
 * The virtio devices are looked at again this often while a host listens: under
 * systemd the agent starts before udev has loaded the balloon and virtio-mem
 * drivers, and a balloon found late changes what reports say (balloon_in_total).
 */
#define DEVICE_SCAN_MS 5000
/* One agent at a time (wait_turn): the lock, next to the absorber's and the throttle's notes. */
#define LOCK_DIR  "/run/dynmem-guest"
#define LOCK_FILE LOCK_DIR "/lock"

struct run {
        struct conn conn;
        struct psi psi;
        struct sampler smp;
        struct hotplug hp;
        struct absorber absorber;
        struct throttle throttle;
        bool throttle_off;
        uint64_t throttle_psi_total; /* PSI some total at the last sample */
        bool throttle_psi_taken;     /* ... taken with this host (forget_host() clears it) */
        uint64_t next_throttle_ms;   /* engaged: the next look */
        enum absorber_mode absorber_mode;
        unsigned absorber_pct;
        uint32_t my_min, my_max;
        uint32_t version;       /* agreed with the host; 0 = none */
        bool told_incompatible; /* logged on this connection */
        uint64_t interval_ms;
        uint64_t next_report_ms;
        uint64_t last_psi_report_ms;
        uint64_t next_device_scan_ms;
        uint64_t seq;
        uint64_t now;
        bool verbose;
        bool no_trigger; /* no stall-triggered reports: every interval only */
};

static unsigned caps_of(struct run *r)
{
        return (r->smp.dev.balloon ? AGENT_CAP_BALLOON : 0) |
               (r->smp.dev.virtio_mem ? AGENT_CAP_VIRTIO_MEM : 0) |
               (psi_available(&r->psi) ? AGENT_CAP_PSI : 0) |
               (psi_has_trigger(&r->psi) ? AGENT_CAP_PSI_TRIGGER : 0) |
               (r->hp.writable ? AGENT_CAP_ONLINE_MOVABLE : 0) |
               (r->absorber.active ? AGENT_CAP_ABSORBER : 0);
}

static void send_hello(struct run *r, bool announce, uint32_t version)
{
        struct proto_offer o = {
            .min = r->my_min,
            .max = r->my_max,
            .version = version,
            .announce = announce,
            .interval_ms = r->interval_ms,
            .caps = caps_of(r),
            .page_size = r->smp.page_size,
            .software = DYNMEM_VERSION,
        };
        char line[AGENT_LINE_MAX];
        size_t n = proto_hello(&o, line, sizeof(line));

        if (n)
                conn_send(&r->conn, line, n, r->now);
}

/* Look at the virtio devices now, and again in DEVICE_SCAN_MS. */
static void scan_devices(struct run *r)
{
        sampler_scan_devices(&r->smp);
        r->next_device_scan_ms = r->now + DEVICE_SCAN_MS;
}

/*
 * Look at the devices again; when the capabilities changed, announce them
 * (a hello without a version): the host answers with its hello and the
 * handshake that follows carries the new capabilities.
 */
static void rescan_devices(struct run *r)
{
        unsigned before = caps_of(r);

        scan_devices(r);
        if (caps_of(r) == before || !r->version)
                return;
        util_log("virtio devices changed: balloon %s, virtio-mem %s; announcing again",
                 r->smp.dev.balloon ? "present" : "absent",
                 r->smp.dev.virtio_mem ? "present" : "absent");
        send_hello(r, true, 0);
}

/*
 * Throttle the workload while the guest stalls short of memory and a host that can plug more
 * is connected (a version agreed on this connection); lift it once it has room. Stalled: PSI
 * some grew since the last sample taken with this host; the first one only takes the figure,
 * so that a stall over before the host came (nothing may have sampled since) does not count.
 */
static void sample_throttle(struct run *r, const struct sample *s)
{
        bool stalled = r->throttle_psi_taken && (s->have & AGENT_HAVE_PSI) &&
                       s->psi.some_total_us > r->throttle_psi_total;

        if (s->have & AGENT_HAVE_PSI) {
                r->throttle_psi_total = s->psi.some_total_us;
                r->throttle_psi_taken = r->version != 0;
        }
        if (!(s->have & AGENT_HAVE_AVAILABLE))
                return;
        throttle_run(&r->throttle, r->version != 0, stalled, s->mem_total, s->mem_available,
                     s->mem_free, r->now);
        r->next_throttle_ms = r->now + THROTTLE_LOOK_MS;
}

/*
 * The absorber has gone off for good (a drain's swapon failed, absorber.h): nothing will run
 * swapoff or swapon again, so the agent keeps what it holds but CAP_SYS_ADMIN (caps_keep_only(),
 * whose no_new_privs keeps it from coming back). After drop_capabilities() only CAP_IPC_LOCK
 * can be left. An agent that does not hold it says nothing.
 */
static void drop_sys_admin(void)
{
        uint64_t held = caps_permitted();
        const char *what;
        int err;

        if (!(held & CAPS_BIT(CAP_SYS_ADMIN)))
                return;
        if ((err = caps_keep_only(held & ~CAPS_BIT(CAP_SYS_ADMIN), &what)) < 0) {
                util_log("capabilities: dropping CAP_SYS_ADMIN failed (%s: %s); the agent keeps it",
                         what, strerror(-err));
                return;
        }
        util_log("capabilities: CAP_SYS_ADMIN dropped, the absorber being off for good; left: %s",
                 caps_permitted() & CAPS_BIT(CAP_IPC_LOCK) ? "CAP_IPC_LOCK (the memory lock)"
                                                           : "none");
}

/* absorber_run(); an absorber it turns off for good takes CAP_SYS_ADMIN with it. */
static void run_absorber(struct run *r, const struct absorber_fill *f, uint64_t mem_total,
                         uint64_t mem_available)
{
        bool was_active = r->absorber.active;

        absorber_run(&r->absorber, f, mem_total, mem_available, r->now);
        if (was_active && !r->absorber.active)
                drop_sys_admin();
}

/* Add the absorber's fill to a sample, and drain it when the guest has room again. */
static void sample_absorber(struct run *r, struct sample *s)
{
        struct absorber_fill f;

        if (!absorber_read(&r->absorber, &f)) {
                run_absorber(r, NULL, s->mem_total, s->mem_available);
                return;
        }
        s->absorber_stored = f.stored;
        s->absorber_ram = f.ram > s->mem_total ? s->mem_total : f.ram;
        s->absorber_capacity = f.capacity;
        s->have |= AGENT_HAVE_ABSORBER;
        if (s->have & AGENT_HAVE_PSI)
                absorber_note_stall(&r->absorber, s->psi.some_total_us, r->now);
        if (s->have & AGENT_HAVE_AVAILABLE)
                run_absorber(r, &f, s->mem_total, s->mem_available);
}

/* A sample not sent to the host (there is none, or the throttle looks between reports). */
static void sample_unreported(struct run *r)
{
        struct sample s;

        if (sampler_read(&r->smp, &r->psi, &s) == 0) {
                sample_absorber(r, &s);
                sample_throttle(r, &s);
        }
}

static void send_report(struct run *r, enum agent_cause cause)
{
        char line[AGENT_LINE_MAX];
        struct sample s;
        size_t n;

        if (sampler_read(&r->smp, &r->psi, &s) < 0)
                return;
        sample_absorber(r, &s);
        if (s.have & AGENT_HAVE_PSI)
                psi_note(&r->psi, &s.psi, r->now);
        n = proto_report(&s, ++r->seq, cause, r->hp.onlined, line, sizeof(line));
        if (n)
                conn_send(&r->conn, line, n, r->now);
        sample_throttle(r, &s); /* after the report: a lower limit may reclaim in here */
}

/*
 * No host to report to: it went away, a new connection has not said hello yet, or it speaks
 * no version of ours. Nobody will plug memory now: the throttle is lifted at once.
 */
static void forget_host(struct run *r)
{
        r->version = 0;
        r->throttle_psi_taken = false;
        throttle_host_gone(&r->throttle, r->now);
}

static void on_host_hello(struct run *r, const struct proto_host_hello *h)
{
        uint32_t v = proto_choose(r->my_min, r->my_max, h->min, h->max);
        uint64_t interval = h->has_interval ? h->interval_ms : AGENT_INTERVAL_DEFAULT;

        if (interval < AGENT_INTERVAL_MIN)
                interval = AGENT_INTERVAL_MIN;
        if (interval > AGENT_INTERVAL_MAX)
                interval = AGENT_INTERVAL_MAX;
        r->interval_ms = interval;
        scan_devices(r);
        send_hello(r, false, v);
        if (!v) {
                if (!r->told_incompatible)
                        util_log("host speaks protocol versions %" PRIu64 "-%" PRIu64
                                 ", this agent %u-%u: incompatible; not reporting until a "
                                 "compatible host connects",
                                 h->min, h->max, r->my_min, r->my_max);
                r->told_incompatible = true;
                forget_host(r);
                return;
        }
        if (r->version != v || r->verbose)
                util_log("host connected: protocol %u, a report every %" PRIu64 " ms", v, interval);
        r->version = v;
        send_report(r, AGENT_CAUSE_HELLO);
        r->next_report_ms = r->now + r->interval_ms;
}

static void on_line(void *arg, const char *line, size_t len)
{
        struct run *r = arg;
        struct proto_host_hello h;
        int k = proto_parse_host(line, len, &h);

        if (k > 0)
                on_host_hello(r, &h);
        else if (k < 0)
                util_log("ignored a malformed line from the host");
}

static int min_timeout(int a, int b)
{
        return a < 0 ? b : b < 0 ? a : a < b ? a : b;
}

static int loop_timeout(struct run *r)
{
        int t = conn_timeout(&r->conn, r->now);

        t = min_timeout(t, hotplug_timeout(&r->hp, r->now));
        t = min_timeout(t, absorber_timeout(&r->absorber, r->now));
        if (r->throttle.engaged)
                t = min_timeout(
                    t, r->next_throttle_ms > r->now ? (int)(r->next_throttle_ms - r->now) : 0);
        if (r->version || r->absorber.active)
                t = min_timeout(t,
                                r->next_report_ms > r->now ? (int)(r->next_report_ms - r->now) : 0);
        if (r->version)
                t = min_timeout(t, psi_timeout(&r->psi, r->now));
        return t;
}

/*
 * SIGTERM, SIGINT or SIGHUP came: stop, the throttle lifted first. SIGHUP too: an agent run by
 * hand whose terminal goes away would otherwise die with the workload still throttled, and
 * nothing would start it again to put the limits back.
 */
static volatile sig_atomic_t stop_signal;

static void on_stop_signal(int sig)
{
        stop_signal = sig;
}

/*
 * poll() that a stop signal always ends: the stop signals are blocked but inside ppoll(), so
 * one that comes after run_forever() looked and before the wait began is not left to wait
 * for the timeout (none at all without a host). 0 (nothing) when one came already.
 */
static int wait_events(struct pollfd *fds, nfds_t n, int timeout_ms)
{
        struct timespec ts = {.tv_sec = timeout_ms / 1000,
                              .tv_nsec = (long)(timeout_ms % 1000) * 1000000L};
        sigset_t stops, open;
        int rc = 0;

        sigemptyset(&stops);
        sigaddset(&stops, SIGTERM);
        sigaddset(&stops, SIGINT);
        sigaddset(&stops, SIGHUP);
        sigprocmask(SIG_BLOCK, &stops, &open);
        if (!stop_signal)
                rc = ppoll(fds, n, timeout_ms < 0 ? NULL : &ts, &open);
        sigprocmask(SIG_SETMASK, &open, NULL);
        return rc;
}

/*
 * Wait until no other agent runs, then hold LOCK_FILE for as long as this one does (flock:
 * released however the agent ends). Two agents would both drain the absorber and both
 * throttle the workload, each putting back what the other set; an administrator who starts
 * one by hand while the service runs gets one line saying which holds the lock, and the
 * wait. Without a writable /run/dynmem-guest (not root) there is no lock, and nothing the
 * two could fight over. False when a stop signal came while waiting.
 */
static bool wait_turn(void)
{
        char path[UTIL_PATH_MAX], pid[24];
        long n;
        int fd;

        if (util_path(path, LOCK_DIR))
                mkdir(path, 0755); /* systemd's RuntimeDirectory= may have made it */
        if (!util_path(path, LOCK_FILE) ||
            (fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
                return true;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
                n = util_pread_all(fd, pid, sizeof(pid));
                pid[n > 0 ? strcspn(pid, "\n") : 0] = '\0';
                util_log("another dynmem-guest runs (pid %s holds " LOCK_FILE
                         "); waiting until it stops",
                         pid[0] ? pid : "unknown");
                while (flock(fd, LOCK_EX | LOCK_NB) < 0 && errno == EWOULDBLOCK) {
                        wait_events(NULL, 0, 1000);
                        if (stop_signal)
                                return false;
                }
        }
        n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
        if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n) {
                /* the lock holds; only the pid in it is missing */
        }
        return true; /* fd stays open: the lock */
}

/*
 * Wait until the port exists before anything of the machine is touched (the
 * absorber's swap, the cgroups' memory.high, memory blocks brought online,
 * the PSI trigger): a machine without it is not a dynmem guest (a host the
 * agent was installed on, a VM without dynmem's channel), and is left as it
 * is. False when a stop signal ended the wait.
 */
static bool wait_port(const char *spec)
{
        if (conn_port_exists(spec))
                return true;
        util_log("port %s: not found; looking again every %d s, and nothing is set up until "
                 "it exists (dynmem's guests have it)",
                 spec, CONN_RETRY_MS / 1000);
        while (!conn_port_exists(spec)) {
                wait_events(NULL, 0, CONN_RETRY_MS);
                if (stop_signal)
                        return false;
        }
        util_log("port %s: found", spec);
        return true;
}

/* mlockall(): 0 or the errno. */
static int lock_pages(void)
{
        if (mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) == 0)
                return 0;
        if (errno == EINVAL && mlockall(MCL_CURRENT | MCL_FUTURE) == 0) /* before Linux 4.4 */
                return 0;
        return errno;
}

/*
 * Keep the agent's pages in RAM. It must report when the guest is short of memory, and a
 * guest short of memory reclaims what it can, the agent's own code and data too: in the
 * bundled image, under a load that filled it, the agent's resident memory fell from 750 to
 * 220 KiB, and every wakeup had to fault its pages back in (from the absorber, or from disk
 * in a guest with one). MCL_ONFAULT locks the pages as they are touched, so the agent keeps
 * what it uses (under 1 MiB), not the whole static binary. Needs RLIMIT_MEMLOCK above the
 * agent's mappings (about 1.2 MiB): 8 MiB by default from Linux 5.16, and in the unit.
 *
 * Tried without CAP_IPC_LOCK first (an agent started by hand as root holds it), then with it:
 * true when the lock needed it, which the agent then keeps (a locked stack that grows past
 * RLIMIT_MEMLOCK without it would fault).
 */
static bool lock_memory(void)
{
        bool had = caps_effective() & CAPS_BIT(CAP_IPC_LOCK);
        bool without = !had || caps_set_effective(CAP_IPC_LOCK, false) == 0;
        int err = lock_pages();

        if (err == 0)
                return !without;
        if (had && without && caps_set_effective(CAP_IPC_LOCK, true) == 0 &&
            (err = lock_pages()) == 0)
                return true;
        util_log("memory not locked (%s): when the guest is short the kernel may reclaim the "
                 "agent's own pages",
                 strerror(err));
        return false;
}

/*
 * Set up: keep only the capabilities the agent still needs (caps.h), CAP_SYS_ADMIN while it
 * has an absorber and CAP_IPC_LOCK when the lock needed it; one line says what stays. An
 * agent started without any says nothing.
 */
static void drop_capabilities(const struct run *r, bool lock_needs_it)
{
        uint64_t before = caps_permitted(), keep = 0, after;
        const char *what;
        int err;

        if (r->absorber.active)
                keep |= CAPS_BIT(CAP_SYS_ADMIN);
        if (lock_needs_it)
                keep |= CAPS_BIT(CAP_IPC_LOCK);
        if ((err = caps_keep_only(keep, &what)) < 0) {
                util_log("capabilities: %s failed (%s); the agent keeps what it has", what,
                         strerror(-err));
                return;
        }
        after = caps_permitted();
        if (!before)
                return;
        util_log("capabilities after start-up: %s%s%s%s; %d dropped", !after ? "none" : "",
                 after & CAPS_BIT(CAP_SYS_ADMIN) ? "CAP_SYS_ADMIN (the absorber's drains)" : "",
                 (after & CAPS_BIT(CAP_SYS_ADMIN)) && (after & CAPS_BIT(CAP_IPC_LOCK)) ? ", " : "",
                 after & CAPS_BIT(CAP_IPC_LOCK) ? "CAP_IPC_LOCK (the memory lock)" : "",
                 __builtin_popcountll(before & ~after));
}

static void loop_once(struct run *r)
{
        struct pollfd fds[3] = {
            {.fd = r->conn.fd, .events = conn_events(&r->conn)},
            {.fd = psi_poll_fd(&r->psi), .events = POLLPRI},
            {.fd = hotplug_poll_fd(&r->hp), .events = POLLIN},
        };

        if (!fds[0].events)
                fds[0].fd = -1;
        if (wait_events(fds, 3, loop_timeout(r)) < 0 && errno != EINTR) {
                util_log("poll: %s", strerror(errno));
                return;
        }
        r->now = mono_ms();
        if (fds[0].revents && !conn_io(&r->conn, fds[0].revents, r->now, on_line, r)) {
                if (r->version && r->verbose)
                        util_log("host side went away");
                forget_host(r);
        }
        if (psi_check(&r->psi, fds[1].revents, r->now) && r->version &&
            r->now - r->last_psi_report_ms >= PSI_REPORT_GAP_MS) {
                r->last_psi_report_ms = r->now;
                send_report(r, AGENT_CAUSE_PSI);
        }
        hotplug_run(&r->hp, fds[2].revents, r->now);
        if (absorber_timeout(&r->absorber, r->now) >= 0) /* a drain runs: reap it when done */
                run_absorber(r, NULL, 0, 0);
        if (r->throttle.engaged && r->now >= r->next_throttle_ms) /* is the memory there yet? */
                sample_unreported(r);
}

static void run_forever(struct run *r)
{
        for (;;) {
                if (stop_signal) { /* the wait returns EINTR (wait_events) */
                        throttle_close(&r->throttle);
                        util_log("stopping (signal %d)", (int)stop_signal);
                        return;
                }
                r->now = mono_ms();
                if (conn_service(&r->conn, r->now)) {
                        forget_host(r);
                        r->told_incompatible = false;
                        send_hello(r, true, 0);
                }
                if (r->version && r->now >= r->next_device_scan_ms)
                        rescan_devices(r);
                if ((r->version || r->absorber.active) && r->now >= r->next_report_ms) {
                        if (r->version)
                                send_report(r, AGENT_CAUSE_TICK);
                        else /* no host: the absorber still drains */
                                sample_unreported(r);
                        r->next_report_ms += r->interval_ms;
                        if (r->next_report_ms <= r->now) /* late (suspended): no catching up */
                                r->next_report_ms = r->now + r->interval_ms;
                }
                loop_once(r);
        }
}

static void usage(FILE *f)
{
        fprintf(f,
                "usage: dynmem-guest [-v] [-p PORT] [-r ROOT] [OPTION...]\n"
                "dynmem's guest agent: memory and stall reports to the host.\n"
                "  -p, --port PORT   virtio-serial port name (default " AGENT_PORT_NAME "),\n"
                "                    or a path (a character device, a FIFO, or a unix\n"
                "                    socket)\n"
                "  -r, --root DIR    read /proc and /sys under DIR (tests)\n"
                "  -v, --verbose     also log the host going away, and each of its hellos\n"
                "      --no-trigger  no report when the guest starts to stall, only every\n"
                "                    interval (also: dynmem.agent.trigger=0 on the kernel\n"
                "                    command line)\n"
                "      --absorber=MODE  the burst absorber (compressed swap in RAM): auto (on\n"
                "                    unless the guest has swap), off, force (also: dynmem.agent.\n"
                "                    absorber=0 on the kernel command line turns it off)\n"
                "      --absorber-size PERCENT  its size, %% of MemTotal (default 100; also\n"
                "                    dynmem.agent.absorber_size=PERCENT on the kernel\n"
                "                    command line)\n"
                "      --no-throttle no cgroup memory.high on the workload while the guest is\n"
                "                    short and a connected host can plug more (also:\n"
                "                    dynmem.agent.throttle=0 on the kernel command line)\n"
                "      --versions MIN-MAX  protocol versions to offer (tests)\n"
                "  -V, --version     print the version and exit\n"
                "  -h, --help        print this help and exit\n");
}

/* A plain decimal, digits only (no sign, no blank, nothing after it), within lo..hi. */
static bool parse_number(const char *s, unsigned lo, unsigned hi, unsigned *ret)
{
        const char *end;
        uint64_t v;

        if (*s < '0' || *s > '9' || util_parse_u64(s, &end, &v) < 0 || *end || v < lo || v > hi)
                return false;
        *ret = (unsigned)v;
        return true;
}

/* --versions MIN-MAX: two plain decimals, 1 <= MIN <= MAX <= AGENT_VERSION_MAX. */
static bool parse_versions(const char *s, unsigned *lo, unsigned *hi)
{
        char min[16];
        const char *dash = strchr(s, '-');

        if (!dash || (size_t)(dash - s) >= sizeof(min))
                return false;
        snprintf(min, sizeof(min), "%.*s", (int)(dash - s), s);
        return parse_number(min, 1, AGENT_VERSION_MAX, lo) &&
               parse_number(dash + 1, *lo, AGENT_VERSION_MAX, hi);
}

/*
 * --port PATH, when the path is there: a character device, a FIFO or a unix socket. A regular
 * file would take a hello every second, for ever (it reads as a host that connects, says
 * nothing and goes); a path not there yet is waited for.
 */
static bool port_path_ok(const char *port)
{
        struct stat st;

        if (!strchr(port, '/') || stat(port, &st) < 0 || S_ISCHR(st.st_mode) ||
            S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))
                return true;
        fprintf(stderr,
                "dynmem-guest: --port %s: %s; wants a character device, a FIFO or a unix "
                "socket\n",
                port,
                S_ISREG(st.st_mode)   ? "a regular file"
                : S_ISDIR(st.st_mode) ? "a directory"
                : S_ISBLK(st.st_mode) ? "a block device"
                                      : "no such thing");
        return false;
}

/* --absorber (c = 3) and --absorber-size (c = 4). False, with a message, when arg is wrong. */
static bool absorber_option(int c, const char *arg, struct run *r)
{
        static const char *const modes[] = {
            [ABSORBER_AUTO] = "auto", [ABSORBER_OFF] = "off", [ABSORBER_FORCE] = "force"};
        unsigned pct;

        if (c == 4) {
                if (parse_number(arg, 1, ABSORBER_SIZE_PCT_MAX, &pct)) {
                        r->absorber_pct = pct;
                        return true;
                }
                fprintf(stderr,
                        "dynmem-guest: --absorber-size %s: wants a whole percent of MemTotal, "
                        "1..%d\n",
                        arg, ABSORBER_SIZE_PCT_MAX);
                return false;
        }
        for (unsigned i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
                if (strcmp(arg, modes[i]) == 0) {
                        r->absorber_mode = (enum absorber_mode)i;
                        return true;
                }
        }
        fprintf(stderr, "dynmem-guest: --absorber=%s: wants auto, off or force\n", arg);
        return false;
}

static int parse_args(int argc, char **argv, struct run *r, const char **port, const char **root)
{
        static const struct option opts[] = {
            {"port", required_argument, NULL, 'p'},
            {"root", required_argument, NULL, 'r'},
            {"verbose", no_argument, NULL, 'v'},
            {"versions", required_argument, NULL, 1},
            {"no-trigger", no_argument, NULL, 2},
            {"version", no_argument, NULL, 'V'},
            {"help", no_argument, NULL, 'h'},
            {"absorber", required_argument, NULL, 3},
            {"absorber-size", required_argument, NULL, 4},
            {"no-throttle", no_argument, NULL, 5},
            {NULL, 0, NULL, 0},
        };
        unsigned lo, hi;
        int c;

        while ((c = getopt_long(argc, argv, "p:r:vVh", opts, NULL)) != -1) {
                switch (c) {
                case 'p':
                        *port = optarg;
                        break;
                case 'r':
                        *root = optarg;
                        break;
                case 'v':
                        r->verbose = true;
                        break;
                case 1:
                        if (!parse_versions(optarg, &lo, &hi)) {
                                fprintf(stderr,
                                        "dynmem-guest: --versions %s: wants MIN-MAX, "
                                        "1 <= MIN <= MAX <= %d\n",
                                        optarg, AGENT_VERSION_MAX);
                                return 2;
                        }
                        r->my_min = lo, r->my_max = hi;
                        break;
                case 2:
                        r->no_trigger = true;
                        break;
                case 5:
                        r->throttle_off = true;
                        break;
                case 3:
                case 4:
                        if (!absorber_option(c, optarg, r))
                                return 2;
                        break;
                case 'V':
                        printf("dynmem-guest %s\n", DYNMEM_VERSION);
                        return 0;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind != argc) {
                fprintf(stderr, "dynmem-guest: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return 2;
        }
        return port_path_ok(*port) ? -1 : 2;
}

/* True when the kernel command line (root + path) has word as a whole word. */
static bool cmdline_has(const char *path, const char *word)
{
        char buf[4096];
        size_t n = strlen(word);

        if (util_read_file(path, buf, sizeof(buf)) <= 0)
                return false;
        for (const char *p = buf; (p = strstr(p, word)); p += n)
                if ((p == buf || p[-1] == ' ') && (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
                        return true;
        return false;
}

/* dynmem.agent.absorber_size=PERCENT on the kernel command line (the last one counts). */
static void cmdline_absorber_size(struct run *r)
{
        static const char key[] = "dynmem.agent.absorber_size=";
        char buf[4096], value[16];
        const char *p, *last = NULL;
        unsigned pct;
        size_t n;

        if (util_read_file("/proc/cmdline", buf, sizeof(buf)) <= 0)
                return;
        for (p = buf; (p = strstr(p, key)); p += sizeof(key) - 1)
                if (p == buf || p[-1] == ' ')
                        last = p + sizeof(key) - 1;
        if (!last)
                return;
        n = strcspn(last, " \n");
        snprintf(value, sizeof(value), "%.*s", (int)(n < sizeof(value) ? n : sizeof(value) - 1),
                 last);
        if (n < sizeof(value) && parse_number(value, 1, ABSORBER_SIZE_PCT_MAX, &pct))
                r->absorber_pct = pct;
        else
                util_log("ignored %s%s%s: wants a whole percent of MemTotal, 1..%d", key, value,
                         n < sizeof(value) ? "" : "...", ABSORBER_SIZE_PCT_MAX);
}

static void open_absorber(struct run *r)
{
        struct sample s;

        if (sampler_read(&r->smp, NULL, &s) < 0)
                return;
        if (absorber_open(&r->absorber, r->absorber_mode, r->absorber_pct, s.mem_total))
                util_log("absorber: /dev/zram%d, %" PRIu64 " MiB of compressed swap in RAM",
                         r->absorber.dev, r->absorber.capacity >> 20);
        else
                util_log("absorber: none: %s", r->absorber.why_off);
}

int main(int argc, char **argv)
{
        static struct run r = {.my_min = AGENT_PROTO_MIN,
                               .my_max = AGENT_PROTO_MAX,
                               .interval_ms = AGENT_INTERVAL_DEFAULT,
                               .absorber_pct = ABSORBER_SIZE_PCT_DEFAULT};
        const char *port = AGENT_PORT_NAME, *root = "";
        int rc = parse_args(argc, argv, &r, &port, &root);

        if (rc >= 0)
                return rc;
        signal(SIGPIPE, SIG_IGN);
        struct sigaction stop = {.sa_handler = on_stop_signal};
        sigaction(SIGTERM, &stop, NULL);
        sigaction(SIGINT, &stop, NULL);
        sigaction(SIGHUP, &stop, NULL);
        util_set_root(root);
        if (!wait_turn()) {
                util_log("stopping (signal %d)", (int)stop_signal);
                return 0;
        }
        bool lock_needs_ipc_lock = lock_memory();
        r.now = mono_ms();
        if ((rc = sampler_open(&r.smp)) < 0) {
                util_log("cannot read %s/proc/meminfo: %s", root, strerror(-rc));
                return 1;
        }
        if (cmdline_has("/proc/cmdline", "dynmem.agent.trigger=0"))
                r.no_trigger = true;
        if (cmdline_has("/proc/cmdline", "dynmem.agent.absorber=0"))
                r.absorber_mode = ABSORBER_OFF;
        if (cmdline_has("/proc/cmdline", "dynmem.agent.throttle=0"))
                r.throttle_off = true;
        cmdline_absorber_size(&r);
        if (!wait_port(port)) {
                util_log("stopping (signal %d)", (int)stop_signal);
                return 0;
        }
        psi_open(&r.psi, !r.no_trigger);
        open_absorber(&r);
        if (throttle_open(&r.throttle, THROTTLE_ROOT, r.throttle_off))
                util_log("throttle: memory.high on %u workload cgroup%s (%s%s) while short",
                         r.throttle.count, r.throttle.count == 1 ? "" : "s", r.throttle.paths[0],
                         r.throttle.count > 1 ? ", ..." : "");
        else
                util_log("throttle: none: %s", r.throttle.why_off);
        hotplug_open(&r.hp, r.now);
        conn_init(&r.conn, port);
        drop_capabilities(&r, lock_needs_ipc_lock);
        util_log("%s: port %s, %s, memory hotplug %s", DYNMEM_VERSION, port,
                 psi_has_trigger(&r.psi)                 ? "PSI trigger (" PSI_TRIGGER ")"
                 : psi_available(&r.psi) && r.no_trigger ? "PSI read, no stall reports"
                 : psi_available(&r.psi)                 ? "PSI polled"
                                                         : "no PSI",
                 !r.hp.present   ? "absent"
                 : r.hp.writable ? "onlined here"
                                 : "not writable");
        run_forever(&r);
        return 0;
}
