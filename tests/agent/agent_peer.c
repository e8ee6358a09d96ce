/*
 * agent-peer: the host side of the guest agent protocol as a test and
 * benchmark tool. It connects to a VM's agent socket (or, with --listen,
 * waits for an agent to connect to it), drives lib/agent.c exactly as a
 * backend does, and prints one line per thing that happened:
 *
 *   connected | closed
 *   sent DMG1 hello ...
 *   ready version=1 caps=balloon,psi agent=0.1.0
 *   refused <sentence>
 *   error <sentence>
 *   report seq=3 cause=tick time_ms=... total=... avail=... demand=... stall=0.0123|- ...
 *   counters lines=... unknown_keys=... (at exit)
 *
 * Exit status: 0 when the goal (--reports N, --until-refused: a refusal, then the
 * agent closing or 10 s) was reached, 1 on timeout, 2 on usage errors, 3 when the
 * other side closed first.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "mono.h"

struct peer {
        const char *path;
        bool listen;
        struct agent_options opt;
        uint64_t reports_goal;
        bool until_refused;
        uint64_t deadline_ms;
        uint64_t refused_at_ms;
        int fd;
};

static int unix_addr(const char *path, struct sockaddr_un *sa)
{
        memset(sa, 0, sizeof(*sa));
        sa->sun_family = AF_UNIX;
        if (strlen(path) >= sizeof(sa->sun_path))
                return -ENAMETOOLONG;
        memcpy(sa->sun_path, path, strlen(path));
        return 0;
}

/* Connect (retrying until the deadline) or accept one agent. The fd, or -1. */
static int open_peer(struct peer *p)
{
        struct sockaddr_un sa;
        int fd;

        if (unix_addr(p->path, &sa) < 0)
                return -1;
        if (p->listen) {
                int l = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                unlink(p->path);
                if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(l, 1) < 0)
                        return -1;
                struct pollfd pfd = {.fd = l, .events = POLLIN};
                while (mono_ms() < p->deadline_ms)
                        if (poll(&pfd, 1, 200) > 0)
                                break;
                fd = pfd.revents & POLLIN ? accept4(l, NULL, NULL, SOCK_CLOEXEC) : -1;
                close(l);
                unlink(p->path);
                return fd;
        }
        while (mono_ms() < p->deadline_ms) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
                        return fd;
                if (fd >= 0)
                        close(fd);
                usleep(100 * 1000);
        }
        return -1;
}

static void send_output(struct peer *p, struct agent *a, uint64_t now)
{
        char out[AGENT_LINE_MAX];
        size_t n = agent_output(a, now, out, sizeof(out));

        if (n == 0)
                return;
        if (send(p->fd, out, n, MSG_NOSIGNAL) != (ssize_t)n)
                printf("write-failed %s\n", strerror(errno));
        printf("sent %.*s", (int)n, out);
}

static void print_report(struct agent *a, uint64_t now)
{
        const struct agent_report *r = agent_last_report(a);
        struct agent_estimate e;
        char stall[32] = "-";

        if (!r || agent_estimate(a, now, &e) < 0)
                return;
        if (e.stall_known)
                snprintf(stall, sizeof(stall), "%.6f", e.stall_fraction);
        printf(
            "report seq=%" PRIu64 " cause=%s time_ms=%" PRIu64 " total=%" PRIu64 " avail=%" PRIu64
            " free=%" PRIu64 " committed=%" PRIu64 " balloon=%" PRIu64 " demand=%s%" PRIu64
            " swap=%s%" PRIu64 " stall=%s some_avg10_bp=%" PRIu64 " some_total_us=%" PRIu64
            " refaults_per_s=%.1f oom_kill=%" PRIu64 " onlined=%" PRIu64 " self_rss=%" PRIu64
            " self_cpu_us=%" PRIu64 " unknown_keys=%" PRIu64 " rx_ms=%" PRIu64 "\n",
            r->seq, agent_cause_name(r->cause), r->time_ms, r->mem_total_bytes,
            r->mem_available_bytes, r->mem_free_bytes, r->committed_bytes, r->balloon_bytes,
            e.demand_known ? "" : "?", e.demand_bytes, e.swap_known ? "" : "?", e.swap_free_bytes,
            stall, r->psi_some_avg10_bp, r->psi_some_total_us, e.refaults_per_s, r->oom_kill,
            r->onlined, r->self_rss_bytes, r->self_cpu_us, agent_counters(a)->unknown_keys, now);
}

static void print_events(struct peer *p, struct agent *a, unsigned ev, uint64_t now)
{
        char caps[128];

        if (ev & AGENT_EV_READY)
                printf("ready version=%u caps=%s agent=%s\n", agent_version(a),
                       agent_caps_format(agent_caps(a), caps, sizeof(caps)), agent_software(a));
        if (ev & AGENT_EV_REFUSED) {
                printf("refused %s\n", agent_refusal(a));
                p->refused_at_ms = now;
        }
        if (ev & AGENT_EV_ERROR)
                printf("error %s\n", agent_last_error(a));
        if (ev & AGENT_EV_REPORT)
                print_report(a, now);
}

static void print_counters(const struct agent *a)
{
        const struct agent_counters *c = agent_counters(a);

        printf("counters lines=%" PRIu64 " parsed=%" PRIu64 " rate_dropped=%" PRIu64
               " too_long=%" PRIu64 " malformed=%" PRIu64 " unknown_types=%" PRIu64
               " unknown_keys=%" PRIu64 " rejected=%" PRIu64 " out_of_state=%" PRIu64
               " reports=%" PRIu64 " urgent=%" PRIu64 "\n",
               c->lines, c->parsed, c->rate_dropped, c->too_long, c->malformed, c->unknown_types,
               c->unknown_keys, c->rejected, c->out_of_state, c->reports, c->urgent);
}

/* Run until the goal, the deadline or EOF. Returns the exit status. */
static int run(struct peer *p, struct agent *a)
{
        char buf[4096];

        agent_connected(a, mono_ms());
        printf("connected\n");
        send_output(p, a, mono_ms());
        for (;;) {
                uint64_t now = mono_ms();
                struct pollfd pfd = {.fd = p->fd, .events = POLLIN};

                if (p->reports_goal && agent_counters(a)->reports >= p->reports_goal)
                        return 0;
                /*
                 * After a refusal the host side stays until the agent closes (it has read
                 * the versions and logged why) or 10 s: gone after a fixed second, a host
                 * side on a loaded machine closed with its versions unread, and the agent
                 * saw a reset instead.
                 */
                if (p->until_refused && p->refused_at_ms && now - p->refused_at_ms >= 10000)
                        return 0;
                if (now >= p->deadline_ms)
                        return 1;
                if (poll(&pfd, 1, 200) < 0 && errno != EINTR)
                        return 1;
                now = mono_ms();
                if (pfd.revents) {
                        ssize_t n = read(p->fd, buf, sizeof(buf));
                        if (n <= 0) {
                                printf("closed\n");
                                agent_disconnected(a);
                                return p->until_refused && p->refused_at_ms ? 0 : 3;
                        }
                        print_events(p, a, agent_feed(a, buf, (size_t)n, now), now);
                }
                send_output(p, a, now);
        }
}

static int parse_args(int argc, char **argv, struct peer *p)
{
        static const struct option opts[] = {
            {"listen", no_argument, NULL, 'l'},         {"versions", required_argument, NULL, 'v'},
            {"interval", required_argument, NULL, 'i'}, {"limit", required_argument, NULL, 'm'},
            {"reports", required_argument, NULL, 'n'},  {"until-refused", no_argument, NULL, 'r'},
            {"timeout", required_argument, NULL, 't'},  {NULL, 0, NULL, 0},
        };
        unsigned lo, hi;
        int c;

        while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
                switch (c) {
                case 'l':
                        p->listen = true;
                        break;
                case 'v':
                        if (sscanf(optarg, "%u-%u", &lo, &hi) != 2)
                                return -1;
                        p->opt.proto_min = lo, p->opt.proto_max = hi;
                        break;
                case 'i':
                        p->opt.interval_ms = strtoull(optarg, NULL, 10);
                        break;
                case 'm':
                        p->opt.limit_bytes = strtoull(optarg, NULL, 10);
                        break;
                case 'n':
                        p->reports_goal = strtoull(optarg, NULL, 10);
                        break;
                case 'r':
                        p->until_refused = true;
                        break;
                case 't':
                        p->deadline_ms = mono_ms() + strtoull(optarg, NULL, 10) * 1000;
                        break;
                default:
                        return -1;
                }
        }
        if (optind + 1 != argc)
                return -1;
        p->path = argv[optind];
        return 0;
}

int main(int argc, char **argv)
{
        struct peer p = {.fd = -1};
        struct agent *a;
        int status;

        setvbuf(stdout, NULL, _IOLBF, 0);
        signal(SIGPIPE, SIG_IGN);
        agent_options_default(&p.opt);
        p.deadline_ms = mono_ms() + 60000;
        if (parse_args(argc, argv, &p) < 0) {
                fprintf(stderr, "usage: agent-peer [--listen] [--versions MIN-MAX] [--interval MS] "
                                "[--limit BYTES] [--reports N] [--until-refused] [--timeout S] "
                                "SOCKET\n");
                return 2;
        }
        if (agent_new(&p.opt, &a) < 0) {
                fprintf(stderr, "agent-peer: bad options\n");
                return 2;
        }
        p.fd = open_peer(&p);
        if (p.fd < 0) {
                printf("no-connection %s\n", p.path);
                agent_free(a);
                return 1;
        }
        status = run(&p, a);
        print_counters(a);
        close(p.fd);
        agent_free(a);
        return status;
}
