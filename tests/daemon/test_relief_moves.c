/*
 * Tests for dynmemd's relief moves (daemon/relief.c) in an event loop of
 * their own: a host short of memory for one VM, a peer (a small HTTP server
 * in the same loop) with room for it, and a stand-in for `dynmem migrate`
 * ($DYNMEM_CLI, a shell script). The loop must never wait for the move's
 * child, the child starts with default signals, the shortage counts anew
 * once a move ended, however long it took, and a move left running when
 * relief is freed is reaped once over.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "daemon.h"
#include "mono.h"
#include "registry.h"
#include "relief.h"
#include "resolver.h"
#include "units.h"

static const char peer_reply[] =
    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n"
    "Content-Length: 101\r\n\r\n"
    "{\"memory_bytes\":8589934592,\"assigned_bytes\":0,"
    "\"available_for_balancing_bytes\":8589934592,\"running\":0}";

struct fixture {
        struct daemon *d;
        struct config_peer peer;
        char http[64], dir[64], script[128];
        int listener;
        struct event *accept_ev, *tick_ev;
        uint64_t last_tick_ms, longest_gap_ms;     /* the loop's longest pause between ticks */
        uint64_t moves, failed, ended_ms, next_ms; /* what the ticks saw */
        uint64_t until_ms;
        bool (*done)(const struct fixture *f); /* stops the run before until_ms (NULL: never) */
};

/* The peer: answers every request with its status, then closes. */
static void on_request(evutil_socket_t fd, short what, void *arg)
{
        char buf[2048];

        (void)what, (void)arg;
        if (read(fd, buf, sizeof(buf)) > 0 && write(fd, peer_reply, sizeof(peer_reply) - 1) < 0) {
                /* the asker gave up: nothing to do */
        }
        close(fd);
}

static void on_accept(evutil_socket_t fd, short what, void *arg)
{
        struct fixture *f = arg;
        int c = accept(fd, NULL, NULL);

        (void)what;
        if (c >= 0)
                event_base_once(f->d->base, c, EV_READ, on_request, NULL, NULL);
}

static uint64_t json_count(struct daemon *d, const char *key)
{
        json_t *j = relief_json(d);
        uint64_t v = (uint64_t)json_integer_value(json_object_get(j, key));

        json_decref(j);
        return v;
}

/* Every 50 ms: a cycle (the host is short), and what happened since the last. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
        struct fixture *f = arg;
        uint64_t now = mono_ms();

        (void)fd, (void)what;
        if (f->last_tick_ms && now - f->last_tick_ms > f->longest_gap_ms)
                f->longest_gap_ms = now - f->last_tick_ms;
        f->last_tick_ms = now;
        relief_cycle(f->d);
        uint64_t moves = json_count(f->d, "moves"), failed = json_count(f->d, "failed");
        if (failed > f->failed && !f->ended_ms)
                f->ended_ms = now;
        if (moves > f->moves && f->moves == 1 && !f->next_ms)
                f->next_ms = now;
        f->moves = moves;
        f->failed = failed;
        if (now >= f->until_ms || (f->done && f->done(f)))
                event_base_loopbreak(f->d->base);
}

/*
 * Run the loop until `done` says so or `ms` have passed: a loaded machine
 * delays the child and the ticks, so the tests wait for what they look for
 * rather than for a time.
 */
static void run_for(struct fixture *f, uint64_t ms)
{
        f->until_ms = mono_ms() + ms;
        f->last_tick_ms = 0;
        event_base_dispatch(f->d->base);
}

/* The host (1 GiB for VMs, its VMs need 2 GiB), one VM that may move, the peer, the script. */
static struct fixture *setup(const char *script, uint64_t shortage_for_ms, uint64_t cooldown_ms)
{
        struct fixture *f = calloc(1, sizeof(*f));
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof(a);
        struct registry_entry *e;
        FILE *fp;

        assert_non_null(f);
        f->d = calloc(1, sizeof(*f->d));
        assert_non_null(f->d);
        f->d->base = event_base_new();
        assert_non_null(f->d->base);
        f->listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(f->listener >= 0);
        assert_int_equal(bind(f->listener, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(f->listener, 8), 0);
        assert_int_equal(getsockname(f->listener, (struct sockaddr *)&a, &alen), 0);
        snprintf(f->http, sizeof(f->http), "http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
        f->accept_ev = event_new(f->d->base, f->listener, EV_READ | EV_PERSIST, on_accept, f);
        assert_int_equal(event_add(f->accept_ev, NULL), 0);

        snprintf(f->dir, sizeof(f->dir), "/tmp/dynmem-relief-XXXXXX");
        assert_non_null(mkdtemp(f->dir));
        snprintf(f->script, sizeof(f->script), "%s/dynmem", f->dir);
        fp = fopen(f->script, "w");
        assert_non_null(fp);
        fprintf(fp, "#!/bin/sh\n%s", script);
        fclose(fp);
        assert_int_equal(chmod(f->script, 0700), 0);
        setenv("DYNMEM_CLI", f->script, 1);

        snprintf(f->peer.name, sizeof(f->peer.name), "b");
        f->peer.libvirt_uri = (char *)"test:///b";
        f->peer.http = f->http;
        f->d->cfg.cluster = (struct config_cluster){.relief = true,
                                                    .shortage_for_ms = shortage_for_ms,
                                                    .cooldown_ms = cooldown_ms,
                                                    .peer_timeout_ms = 2000,
                                                    .peers = &f->peer,
                                                    .n_peers = 1};
        f->d->bal.host.memory_bytes = GIB;
        f->d->bal.last_summary.sum_need_bytes = 2 * GIB;
        assert_int_equal(registry_add(&f->d->reg, "web", &e), 0);
        e->origin = REGISTRY_BACKEND;
        e->vm.state = VM_RUNNING;
        e->vm.migration = VM_MIGRATION_NONE;
        e->vm.settings.weight = 1000;
        e->vm.obs.assigned_bytes = GIB;
        assert_int_equal(relief_init(f->d), 0);
        assert_non_null(f->d->relief);

        struct timeval every = {0, 50 * 1000};
        f->tick_ev = event_new(f->d->base, -1, EV_PERSIST, on_tick, f);
        assert_int_equal(event_add(f->tick_ev, &every), 0);
        return f;
}

static void teardown(struct fixture *f)
{
        char cmd[128];

        relief_free(f->d);
        event_free(f->tick_ev);
        event_free(f->accept_ev);
        close(f->listener);
        registry_free(&f->d->reg, NULL);
        resolver_free(f->d->resolver); /* kept across relief_free(), as in dynmemd */
        f->d->resolver = NULL;
        event_base_free(f->d->base);
        snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
        assert_int_equal(system(cmd), 0);
        unsetenv("DYNMEM_CLI");
        free(f->d);
        free(f);
}

static char *last_said(struct daemon *d)
{
        json_t *j = relief_json(d);
        char *s = strdup(json_string_value(json_object_get(j, "last")) ?: "");

        json_decref(j);
        return s;
}

static bool move_failed(const struct fixture *f)
{
        return f->failed >= 1;
}

static bool next_move_started(const struct fixture *f)
{
        return f->next_ms != 0;
}

/*
 * A move whose child closes its output and runs on: the loop goes on
 * meanwhile, the move ends when the child exits. The child's signals are a
 * new process's, not what dynmemd blocked or ignored.
 */
static void the_loop_never_waits_for_the_move(void **state)
{
        sigset_t usr1, old_mask;
        struct sigaction ign = {.sa_handler = SIG_IGN}, old_usr2;
        struct fixture *f;

        (void)state;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        sigprocmask(SIG_BLOCK, &usr1, &old_mask);
        sigaction(SIGUSR2, &ign, &old_usr2);
        f = setup("blk=$(sed -n 's/^SigBlk:[[:space:]]*//p' /proc/$$/status)\n"
                  "ign=$(sed -n 's/^SigIgn:[[:space:]]*//p' /proc/$$/status)\n"
                  "echo \"dynmem: blocked $blk ignored $ign\"\n"
                  "exec >&- 2>&-\n"
                  "sleep 2\n"
                  "exit 3\n",
                  1000, 60000);
        f->done = move_failed;
        run_for(f, 60000);
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        sigaction(SIGUSR2, &old_usr2, NULL);

        char *last = last_said(f->d);
        assert_int_equal(f->moves, 1);
        assert_int_equal(f->failed, 1);
        assert_true(f->longest_gap_ms < 1000);
        if (!strstr(last, "failed: blocked 0000000000000000 ignored 0000000000000000"))
                fail_msg("what the move said: %s", last);
        free(last);
        teardown(f);
}

/*
 * A move that takes longer than both cooldown and shortage_for: the host is
 * short all along, but the next move waits for shortage_for after it ended.
 */
static void the_shortage_counts_anew_after_a_move(void **state)
{
        struct fixture *f;

        (void)state;
        f = setup("sleep 3\necho 'dynmem: refused'\nexit 1\n", 1000, 1000);
        f->done = next_move_started;
        run_for(f, 60000);
        assert_true(f->ended_ms && f->next_ms);
        if (f->next_ms - f->ended_ms < 950)
                fail_msg("the next move %llu ms after the first ended",
                         (unsigned long long)(f->next_ms - f->ended_ms));
        teardown(f);
}

/* Stop at the first tick that sees a move under way. */
static void on_moving(evutil_socket_t fd, short what, void *arg)
{
        struct fixture *f = arg;
        json_t *j = relief_json(f->d);

        (void)fd, (void)what;
        if (json_is_string(json_object_get(j, "moving")))
                event_base_loopbreak(f->d->base);
        json_decref(j);
}

/*
 * dynmemd stops while a move runs: the migration is libvirt's and goes on,
 * its child is left to finish, and reaped by the loop when it does (no
 * zombie while the loop runs).
 */
static void a_move_left_running_is_reaped_when_over(void **state)
{
        struct fixture *f;
        char path[160], text[32] = "";
        FILE *fp;

        (void)state;
        f = setup("echo $$ > \"${0%/*}/pid\"\nexec sleep 1\n", 1000, 60000);
        struct event *watch = event_new(f->d->base, -1, EV_PERSIST, on_moving, f);
        event_add(watch, &(struct timeval){0, 20 * 1000});
        f->until_ms = mono_ms() + 10000;
        event_base_dispatch(f->d->base);
        event_free(watch);
        snprintf(path, sizeof(path), "%s/pid", f->dir);
        uint64_t deadline = mono_ms() + 2000;
        while (!(fp = fopen(path, "r")) && mono_ms() < deadline)
                usleep(10000);
        assert_non_null(fp);
        assert_non_null(fgets(text, sizeof(text), fp));
        fclose(fp);
        pid_t pid = (pid_t)atoi(text);
        assert_true(pid > 0);

        relief_free(f->d);
        deadline = mono_ms() + 5000;
        while (kill(pid, 0) == 0 && mono_ms() < deadline)
                event_base_loop(f->d->base, EVLOOP_ONCE);
        assert_int_equal(kill(pid, 0), -1);
        assert_int_equal(errno, ESRCH);
        teardown(f);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(the_loop_never_waits_for_the_move),
            cmocka_unit_test(the_shortage_counts_anew_after_a_move),
            cmocka_unit_test(a_move_left_running_is_reaped_when_over),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
