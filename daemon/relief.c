/*
 * relief: hosts that relieve each other. See relief.h, lib/relief_rule.h
 * (the rule) and docs/migration.md.
 */
#include "relief.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "carry.h"
#include "child.h"
#include "daemon.h"
#include "dynmem-config.h"
#include "events.h"
#include "metrics.h"
#include "peers.h"
#include "relief_rule.h"
#include "resolver.h"
#include "units.h"

#define ARRIVALS_MAX 256   /* VMs remembered as lately arrived */
#define OUTPUT_MAX   16384 /* what is kept of a move's output */
#define NO_MOVE      ((struct move){.fd = -1, .pidfd = -1})

struct arrival {
        char name[VM_NAME_MAX];
        uint64_t at_ms;
};

struct move {
        pid_t pid;             /* 0: none */
        int pidfd;             /* readable once it exited: the move is over */
        int fd;                /* its output, -1 once closed */
        struct event *ev;      /* on fd */
        struct event *exit_ev; /* on pidfd */
        char vm[VM_NAME_MAX];
        char peer[CONFIG_NAME_MAX];
        uint64_t bytes, started_ms;
        char out[OUTPUT_MAX];
        size_t out_len;
};

struct relief {
        struct daemon *d;
        bool enabled;
        struct relief_rule rule;
        struct relief_state st;
        struct peers *peers;
        bool deciding; /* a move is due: waiting for the peers' answers */
        bool is_short;
        uint64_t short_bytes; /* how much need exceeds memory */
        struct move move;
        /*
         * The move decided, waiting for what the policy learned of the VM to be
         * written into it (carry_fresh()) so that the peer gets it fresh; at most
         * CARRY_WAIT_MS, then it goes without.
         */
        struct {
                bool on;
                char vm[VM_NAME_MAX];
                size_t peer;
                uint64_t bytes, until_ms;
                char why[EVENTS_TEXT_MAX];
        } next;
        struct relief_counts count;
        struct arrival arrivals[ARRIVALS_MAX];
        size_t n_arrivals;
        char last[EVENTS_TEXT_MAX]; /* the last decision, for dynmem status */
};

/* An event (dynmem events, the web page) and a log line, under the relief rule's name. */
static void say(struct relief *r, struct vm *vm, uint64_t bytes, int priority, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void say(struct relief *r, struct vm *vm, uint64_t bytes, int priority, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(r->last, sizeof(r->last), fmt, ap);
        va_end(ap);
        if (r->d->events)
                events_add(r->d->events, &(struct balancer_event){.kind = BALANCER_EVENT_RELIEF,
                                                                  .vm = vm,
                                                                  .bytes = bytes,
                                                                  .message = r->last,
                                                                  .pressure = -1.0,
                                                                  .time_ms = daemon_now(r->d)});
        log_msg(priority, "relief: %s", r->last);
}

/* ---- the move: `dynmem migrate` in a child process ---- */

static const char *cli_path(void)
{
        const char *p = getenv("DYNMEM_CLI");

        return p && p[0] ? p : DYNMEM_BINDIR "/dynmem";
}

/* The child's last line starting with "dynmem: " (its error), or "". */
static void last_error(const struct move *m, char *buf, size_t len)
{
        const char *p = m->out, *found = NULL;

        buf[0] = '\0';
        while ((p = strstr(p, "dynmem: ")) != NULL) {
                if (p == m->out || p[-1] == '\n')
                        found = p;
                p++;
        }
        if (found) {
                size_t n = strcspn(found + 8, "\n");
                snprintf(buf, len, "%.*s", (int)(n < len ? n : len - 1), found + 8);
        }
}

/* What libvirt measured, from `dynmem migrate --json`: "4.2 s, 590 MiB sent, downtime 220 ms". */
static void summary(const struct move *m, char *buf, size_t len)
{
        const char *open = strchr(m->out, '{'), *close = strrchr(m->out, '}');
        json_t *o =
            open && close > open ? json_loadb(open, (size_t)(close - open + 1), 0, NULL) : NULL;
        json_t *st = json_object_get(o, "stats");
        json_int_t elapsed = json_integer_value(json_object_get(o, "elapsed_ms"));
        json_int_t sent = json_integer_value(json_object_get(st, "data_processed"));
        json_int_t down = json_integer_value(json_object_get(st, "downtime"));
        char a[32];

        if (o && elapsed >= 0 && sent >= 0 && down >= 0)
                snprintf(buf, len, "%.1f s, %s sent, downtime %lld ms", (double)elapsed / 1000.0,
                         size_format((uint64_t)sent, a, sizeof(a)), (long long)down);
        else
                snprintf(buf, len, "libvirt's figures unknown");
        json_decref(o);
}

/* Its output closed, or the move is over: no more reading. */
static void output_closed(struct move *m)
{
        if (m->ev)
                event_free(m->ev);
        if (m->fd >= 0)
                close(m->fd);
        m->ev = NULL;
        m->fd = -1;
}

static void move_over(struct relief *r, bool ok)
{
        struct move *m = &r->move;
        struct registry_entry *e = registry_find(&r->d->reg, m->vm);
        char text[200];

        if (ok) {
                r->count.done++;
                summary(m, text, sizeof(text));
                say(r, e ? &e->vm : NULL, m->bytes, LOG_NOTICE, "%s now runs on %s (%s)", m->vm,
                    m->peer, text);
        } else {
                r->count.failed++;
                last_error(m, text, sizeof(text));
                say(r, e ? &e->vm : NULL, m->bytes, LOG_WARNING, "moving %s to %s failed: %s",
                    m->vm, m->peer, text[0] ? text : "dynmem migrate did not say why");
        }
        output_closed(m);
        if (m->exit_ev)
                event_free(m->exit_ev);
        close(m->pidfd);
        *m = NO_MOVE;
        relief_ended(&r->st); /* the host was short all along the move: that does not count */
}

/* Read what the child wrote (the pipe does not block): 1 read, -1 nothing yet, 0 closed. */
static int read_output(struct move *m)
{
        char buf[4096];
        ssize_t n = read(m->fd, buf, sizeof(buf));

        if (n > 0) {
                size_t keep =
                    m->out_len + (size_t)n < OUTPUT_MAX ? (size_t)n : OUTPUT_MAX - 1 - m->out_len;
                memcpy(m->out + m->out_len, buf, keep);
                m->out_len += keep;
                m->out[m->out_len] = '\0';
                return 1;
        }
        return n < 0 && (errno == EINTR || errno == EAGAIN) ? -1 : 0;
}

static void on_output(evutil_socket_t fd, short what, void *arg)
{
        struct relief *r = arg;

        (void)fd, (void)what;
        if (read_output(&r->move) == 0)
                output_closed(&r->move); /* its exit, not this, ends the move */
}

/*
 * The child exited (its pidfd became readable): reaped here, without
 * waiting, and what it wrote before is read. A child that closed its output
 * early, or left it open to one of its own, is reaped all the same.
 */
static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
        struct relief *r = arg;
        struct move *m = &r->move;
        siginfo_t si = {0};

        (void)what;
        if (waitid((idtype_t)P_PIDFD, (id_t)fd, &si, WEXITED | WNOHANG) < 0) {
                if (errno == EINTR) {
                        event_add(m->exit_ev, NULL);
                        return;
                }
                si.si_code = 0; /* not ours to reap: a failure */
        } else if (si.si_pid == 0) {
                event_add(m->exit_ev, NULL); /* not yet */
                return;
        }
        /* What it wrote before it exited is in the pipe: read it all, without waiting. */
        for (int i = 0; m->fd >= 0 && i < OUTPUT_MAX / 4096 + 2 && read_output(m) == 1; i++) {
        }
        move_over(r, si.si_code == CLD_EXITED && si.si_status == 0);
}

static int spawn(struct relief *r, const char *vm, const struct peer_view *peer)
{
        struct daemon *d = r->d;
        const char *own = d->cfg.host.libvirt_uri ? d->cfg.host.libvirt_uri : "qemu:///system";
        /* --no-carry: what the VM carries was written just before (launch()) */
        const char *argv[] = {cli_path(),
                              "migrate",
                              "--connect",
                              own,
                              "--persistent",
                              "--undefinesource",
                              "--no-carry",
                              "--timeout",
                              RELIEF_MOVE_TIMEOUT,
                              "--json",
                              vm,
                              peer->libvirt_uri,
                              NULL};
        int fds[2];
        pid_t pid;

        if (pipe2(fds, O_CLOEXEC) < 0)
                return -errno;
        pid = fork();
        if (pid < 0) {
                int e = errno;
                close(fds[0]);
                close(fds[1]);
                return -e;
        }
        if (pid == 0) {
                /* Only async-signal-safe calls: dynmemd may have threads. */
                int null = open("/dev/null", O_RDONLY);
                if (null < 0 || dup2(null, 0) < 0 || dup2(fds[1], 1) < 0 || dup2(fds[1], 2) < 0)
                        _exit(127);
                closefrom(3);
                child_default_signals(); /* nothing blocked or ignored that dynmemd was */
                execv(argv[0], (char *const *)argv);
                dprintf(2, "dynmem: cannot run %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        close(fds[1]);
        fcntl(fds[0], F_SETFL, O_NONBLOCK);
        struct move *m = &r->move;
        *m = (struct move){
            .pid = pid, .pidfd = pidfd_open(pid, 0), .fd = fds[0], .started_ms = mono_ms()};
        int err = m->pidfd < 0 ? errno : ENOMEM;
        if (m->pidfd >= 0) {
                m->ev = event_new(d->base, m->fd, EV_READ | EV_PERSIST, on_output, r);
                m->exit_ev = event_new(d->base, m->pidfd, EV_READ, on_exit_ev, r);
        }
        if (!m->ev || !m->exit_ev || event_add(m->ev, NULL) < 0 ||
            event_add(m->exit_ev, NULL) < 0) {
                kill(pid, SIGKILL);
                waitpid(pid, NULL, 0); /* just started, killed: it goes at once */
                output_closed(m);
                if (m->exit_ev)
                        event_free(m->exit_ev);
                if (m->pidfd >= 0)
                        close(m->pidfd);
                *m = NO_MOVE;
                return -err;
        }
        snprintf(r->move.vm, sizeof(r->move.vm), "%s", vm);
        snprintf(r->move.peer, sizeof(r->move.peer), "%s", peer->name);
        return 0;
}

/* ---- the decision ---- */

static bool arrived_lately(struct relief *r, const char *name, uint64_t now)
{
        for (size_t i = 0; i < r->n_arrivals; i++)
                if (strcmp(r->arrivals[i].name, name) == 0 &&
                    now < r->arrivals[i].at_ms + r->rule.cooldown_ms)
                        return true;
        return false;
}

void relief_note_arrival(struct daemon *d, const char *name)
{
        struct relief *r = d->relief;

        if (!r)
                return;
        if (r->n_arrivals == ARRIVALS_MAX) { /* the oldest goes */
                memmove(r->arrivals, r->arrivals + 1, (ARRIVALS_MAX - 1) * sizeof(*r->arrivals));
                r->n_arrivals--;
        }
        struct arrival *a = &r->arrivals[r->n_arrivals++];
        snprintf(a->name, sizeof(a->name), "%s", name);
        a->at_ms = mono_ms();
}

static bool movable(struct relief *r, const struct registry_entry *e, uint64_t now)
{
        const struct vm *vm = &e->vm;

        return e->origin == REGISTRY_BACKEND && vm->state == VM_RUNNING &&
               vm->migration == VM_MIGRATION_NONE && vm->obs.assigned_bytes > 0 &&
               !arrived_lately(r, vm->name, now);
}

/* "hostb 200 MiB, hostc down" */
static void rooms_text(struct relief *r, char *buf, size_t len)
{
        size_t at = 0;
        char a[32];

        buf[0] = '\0';
        for (size_t j = 0; j < peers_count(r->peers) && at < len; j++) {
                struct peer_view v;
                peers_view(r->peers, j, &v);
                at += (size_t)snprintf(buf + at, len - at, "%s%s %s", j ? ", " : "", v.name,
                                       v.state == PEER_UP
                                           ? size_format(v.available_bytes, a, sizeof(a))
                                           : "does not answer");
        }
}

/* The move decided (r->next), once what the VM carries is written or the wait is over. */
static void launch(struct relief *r)
{
        struct registry_entry *e = registry_find(&r->d->reg, r->next.vm);
        struct peer_view v;
        int err;

        r->next.on = false;
        if (!e || r->next.peer >= peers_count(r->peers))
                return; /* gone meanwhile: the rule decides again */
        peers_view(r->peers, r->next.peer, &v);
        err = spawn(r, e->vm.name, &v);
        r->count.moves++;
        r->move.bytes = r->next.bytes;
        if (err < 0) {
                r->count.failed++;
                say(r, &e->vm, r->next.bytes, LOG_ERR, "cannot run %s: %s", cli_path(),
                    strerror(-err));
        } else {
                say(r, &e->vm, r->next.bytes, LOG_NOTICE, "%s", r->next.why);
        }
}

static void decide(struct relief *r)
{
        struct daemon *d = r->d;
        uint64_t now = mono_ms();
        size_t n = d->reg.n, np = peers_count(r->peers), vi, pj;
        struct relief_candidate *c = calloc(n ? n : 1, sizeof(*c));
        struct relief_peer_room *room = calloc(np ? np : 1, sizeof(*room));
        char need[32], mem[32], rooms[200], a[32], b[32];

        r->deciding = false;
        if (!c || !room) {
                free(c);
                free(room);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                const struct registry_entry *e = d->reg.entries[i];
                c[i] = (struct relief_candidate){.weight = e->vm.settings.weight,
                                                 .bytes = e->vm.obs.assigned_bytes,
                                                 .movable = movable(r, e, now)};
        }
        for (size_t j = 0; j < np; j++) {
                struct peer_view v;
                peers_view(r->peers, j, &v);
                room[j] = (struct relief_peer_room){.known = v.state == PEER_UP &&
                                                             now - v.answered_ms < PEERS_FRESH_MS,
                                                    .available_bytes = v.available_bytes};
        }
        size_format(d->bal.last_summary.sum_need_bytes, need, sizeof(need));
        size_format(d->bal.host.memory_bytes, mem, sizeof(mem));
        uint64_t lasted = relief_short_for(&r->st, now);
        relief_tried(&r->st, &r->rule, now);
        rooms_text(r, rooms, sizeof(rooms));
        if (relief_pick(c, n, room, np, &vi, &pj) < 0) {
                r->count.no_room++;
                say(r, NULL, 0, LOG_NOTICE,
                    "short of memory for %.0f s (the VMs need %s of %s), and no peer has room "
                    "for a VM that may move (%s); looking again in %.0f s",
                    (double)lasted / 1000.0, need, mem, rooms,
                    (double)r->rule.cooldown_ms / 1000.0);
        } else {
                struct registry_entry *e = d->reg.entries[vi];
                struct peer_view v;
                peers_view(r->peers, pj, &v);
                snprintf(r->next.vm, sizeof(r->next.vm), "%s", e->vm.name);
                r->next.peer = pj;
                r->next.bytes = c[vi].bytes;
                snprintf(r->next.why, sizeof(r->next.why),
                         "moving %s (weight %u, %s to copy) to %s (%s available for "
                         "balancing there): short of memory for %.0f s (the VMs need %s of %s)",
                         e->vm.name, e->vm.settings.weight, size_format(c[vi].bytes, a, sizeof(a)),
                         v.name, size_format(v.available_bytes, b, sizeof(b)),
                         (double)lasted / 1000.0, need, mem);
                r->next.until_ms = now + CARRY_WAIT_MS;
                r->next.on = true;
                if (carry_fresh(d, e) < 0) /* nothing to carry, or not now: it goes as it is */
                        launch(r);
        }
        free(c);
        free(room);
}

static void on_answered(void *userdata)
{
        struct relief *r = userdata;

        if (r->deciding)
                decide(r);
}

void relief_cycle(struct daemon *d)
{
        struct relief *r = d->relief;
        const struct policy_summary *s = &d->bal.last_summary;
        uint64_t mem = d->bal.host.memory_bytes;

        if (!r || !r->enabled)
                return;
        r->is_short = s->sum_need_bytes > mem;
        r->short_bytes = r->is_short ? s->sum_need_bytes - mem : 0;
        if (r->next.on) {
                struct registry_entry *e = registry_find(&d->reg, r->next.vm);
                if (!e || !carry_pending(d, e, NULL) || mono_ms() >= r->next.until_ms)
                        launch(r);
                return;
        }
        bool due = relief_due(&r->st, &r->rule, r->is_short, mono_ms());
        if (!due || r->deciding || r->move.pid)
                return;
        r->deciding = true;
        peers_ask(r->peers); /* decide() runs once they answered, or at once if none is asked */
        if (r->deciding && !peers_asking(r->peers))
                decide(r);
}

/* ---- set-up ---- */

int relief_init(struct daemon *d)
{
        const struct config_cluster *c = &d->cfg.cluster;
        struct relief *r;
        char err[256];
        int ret;

        d->relief = NULL;
        if (!c->relief && c->n_peers == 0)
                return 0;
        r = calloc(1, sizeof(*r));
        if (!r)
                return -ENOMEM;
        r->d = d;
        r->enabled = c->relief;
        r->rule = (struct relief_rule){c->shortage_for_ms, c->cooldown_ms};
        r->move = NO_MOVE;
        /* made with the first peers, and kept across reloads (resolver.h) */
        if (c->n_peers && !d->resolver &&
            resolver_new(d->base, RESOLVER_CONF, RESOLVER_HOSTS, &d->resolver) < 0) {
                log_msg(LOG_ERR,
                        "[cluster]: cannot set up the peers' name lookups (out of memory)");
                free(r);
                return -ENOMEM;
        }
        ret = peers_new(d->base, resolver_dns(d->resolver), c, on_answered, r, &r->peers, err,
                        sizeof(err));
        if (ret < 0) {
                log_msg(LOG_ERR, "[cluster]: %s", err);
                free(r);
                return ret;
        }
        d->relief = r;
        peers_ask(r->peers);
        if (r->enabled)
                log_msg(LOG_INFO,
                        "relief: on; a VM moves to one of %zu peers after %.0f s short of memory, "
                        "then none for %.0f s",
                        peers_count(r->peers), (double)c->shortage_for_ms / 1000.0,
                        (double)c->cooldown_ms / 1000.0);
        return 0;
}

void relief_free(struct daemon *d)
{
        struct relief *r = d->relief;

        if (!r)
                return;
        if (r->move.pid) { /* the migration itself is libvirt's: it goes on, reaped when over */
                output_closed(&r->move);
                event_free(r->move.exit_ev);
                child_reap_later(r->d->base, r->move.pidfd);
        }
        peers_free(r->peers);
        free(r);
        d->relief = NULL;
}

void relief_reload(struct daemon *d)
{
        struct relief_counts counts = d->relief ? d->relief->count : (struct relief_counts){0};

        if (d->relief && d->relief->move.pid) {
                log_msg(LOG_WARNING, "relief: [cluster] and [peer] changes apply once the move "
                                     "under way ends (reload again then)");
                return;
        }
        relief_free(d);
        if (relief_init(d) == 0 && d->relief)
                d->relief->count = counts;
}

/* ---- what it says ---- */

json_t *relief_json(struct daemon *d)
{
        struct relief *r = d->relief;
        uint64_t now = mono_ms();

        if (!r)
                return json_pack("{s:b}", "enabled", 0);
        return json_pack(
            "{s:b, s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "enabled", r->enabled,
            "short", r->is_short, "short_bytes", (json_int_t)r->short_bytes, "short_for_ms",
            (json_int_t)relief_short_for(&r->st, now), "shortage_for_ms",
            (json_int_t)r->rule.shortage_for_ms, "cooldown_ms", (json_int_t)r->rule.cooldown_ms,
            "moves", (json_int_t)r->count.moves, "done", (json_int_t)r->count.done, "failed",
            (json_int_t)r->count.failed, "no_room", (json_int_t)r->count.no_room, "moving",
            r->move.pid ? json_string(r->move.vm) : json_null(), "last",
            r->last[0] ? json_string(r->last) : json_null());
}

json_t *relief_peers_json(struct daemon *d)
{
        return d->relief ? peers_json(d->relief->peers) : json_array();
}

static void metric(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s %llu\n", name, help, name, type, name,
                (unsigned long long)v);
}

/* One gauge per peer: up (1 or 0), or what it last said it has available (peers that
 * never answered are left out). */
static void peer_metric(FILE *f, struct peers *peers, const char *name, const char *help,
                        bool available)
{
        fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
        for (size_t j = 0; j < peers_count(peers); j++) {
                struct peer_view v;
                peers_view(peers, j, &v);
                if (available && !v.answered_ms)
                        continue;
                fprintf(f, "%s{peer=\"", name);
                metrics_write_label(f, v.name);
                fprintf(f, "\"} %llu\n",
                        available ? (unsigned long long)v.available_bytes
                                  : (unsigned long long)(v.state == PEER_UP));
        }
}

void relief_metrics(FILE *f, struct daemon *d)
{
        struct relief *r = d->relief;

        if (!r)
                return;
        metric(f, "dynmem_relief_moves_total", "counter",
               "VMs the relief rule started moving to a peer.", r->count.moves);
        metric(f, "dynmem_relief_moves_done_total", "counter",
               "Relief moves that ended with the VM on the peer.", r->count.done);
        metric(f, "dynmem_relief_moves_failed_total", "counter",
               "Relief moves that did not (refused by the peer, failed).", r->count.failed);
        metric(f, "dynmem_relief_no_room_total", "counter",
               "Sustained shortages for which no peer had room.", r->count.no_room);
        metric(f, "dynmem_host_short", "gauge",
               "1 while the running VMs need more than the memory for VMs.", r->is_short);
        metric(f, "dynmem_host_shortage_bytes", "gauge",
               "How much the running VMs' need exceeds the memory for VMs.", r->short_bytes);
        peer_metric(f, r->peers, "dynmem_peer_up",
                    "1 when the peer's dynmemd answered its last question.", false);
        peer_metric(f, r->peers, "dynmem_peer_available_for_balancing_bytes",
                    "What the peer last said it has available for balancing.", true);
}
