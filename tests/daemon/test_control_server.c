/*
 * Tests for control_server: the control socket's clients when dynmemd's loop
 * is held up for longer than their idle timeout, as a slow libvirtd holds it
 * in a define. The server runs on a loop of the test's with a short idle
 * timeout; the commands are stand-ins (commands_run and commands_poll are the
 * test's, by the linker's --wrap) that hold the loop up, wait for a cycle or
 * make a reply longer than the socket holds. The client is a socket on the
 * same loop. A client is never dropped while its request is served or its
 * reply waits; an idle one still is. A carry request is answered without a
 * cycle: when its write is over, or at the end of its own wait.
 */
#include <errno.h>
#include <event2/event.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "commands.h"
#include "control_server.h"
#include "daemon.h"
#include "mono.h"

#define IDLE_MS    200
#define HELD_MS    (3 * IDLE_MS) /* the loop held up: longer than the idle timeout */
#define GIVE_UP_MS 30000         /* neither a reply nor the end by then: the test failed */
#define LONG_REPLY (4u << 20)    /* more than the socket holds */
#define REQUEST    "{\"version\":1,\"command\":\"list\"}\n"

/* ---- the stand-in commands ---- */

static struct {
        unsigned held_ms;        /* how long the next request holds the loop */
        enum commands_wait wait; /* the next request waits for a cycle */
        size_t reply_bytes;      /* the size of the replies' padding */
        bool decided;            /* commands_poll: the cycle decided the wait */
        unsigned runs;           /* requests run */
        unsigned limit_ms;       /* commands_wait_limit_ms of a carry wait */
        unsigned timed_out;      /* commands_poll: waits answered for their end */
} stand_in;

static void hold_loop(unsigned ms)
{
        struct timespec left = {ms / 1000, (long)(ms % 1000) * 1000000};

        while (nanosleep(&left, &left) < 0 && errno == EINTR)
                ;
}

/* The reply to the n-th request: {"ok":true,"n":N,"pad":"xx..."} (stand_in.reply_bytes of x). */
static char *reply_line(unsigned n)
{
        size_t len = stand_in.reply_bytes + 64;
        char *line = malloc(len);
        int head;

        assert_non_null(line);
        head = snprintf(line, len, "{\"ok\":true,\"n\":%u,\"pad\":\"", n);
        memset(line + head, 'x', stand_in.reply_bytes);
        snprintf(line + head + stand_in.reply_bytes, len - (size_t)head - stand_in.reply_bytes,
                 "\"}");
        return line;
}

char *__wrap_commands_run(struct daemon *d, const struct control_request *req,
                          enum commands_wait *ret_wait);
bool __wrap_commands_poll(struct daemon *d, const char *name, enum commands_wait wait,
                          uint64_t until_ms, char **ret_reply);
unsigned __wrap_commands_wait_limit_ms(enum commands_wait wait);

char *__wrap_commands_run(struct daemon *d, const struct control_request *req,
                          enum commands_wait *ret_wait)
{
        (void)d, (void)req;
        stand_in.runs++;
        hold_loop(stand_in.held_ms);
        *ret_wait = stand_in.wait;
        return stand_in.wait == COMMANDS_WAIT_NONE ? reply_line(stand_in.runs) : NULL;
}

bool __wrap_commands_poll(struct daemon *d, const char *name, enum commands_wait wait,
                          uint64_t until_ms, char **ret_reply)
{
        (void)d, (void)name;
        if (!stand_in.decided) {
                if (wait != COMMANDS_WAIT_CARRY || mono_ms() < until_ms)
                        return false;
                stand_in.timed_out++;
        }
        *ret_reply = reply_line(stand_in.runs);
        return true;
}

unsigned __wrap_commands_wait_limit_ms(enum commands_wait wait)
{
        return wait == COMMANDS_WAIT_CARRY ? stand_in.limit_ms : 0;
}

/* ---- the server and its client ---- */

struct harness {
        struct daemon d;
        struct control_server *srv;
        char dir[64], path[128];
        int client;
        struct event *client_ev, *give_up_ev, *gone_ev, *held_ev;
        void (*before_hold)(struct harness *h); /* what the loop held up does first */
        void (*after_hold)(struct harness *h);  /* and last */
        char *got;                              /* what the client received */
        size_t got_len;
        bool eof, gave_up;
};

/* Read what the client has; false when the server closed the connection. */
static bool client_take(struct harness *h)
{
        char buf[65536];
        ssize_t n;

        while ((n = recv(h->client, buf, sizeof(buf), 0)) > 0) {
                char *grown = realloc(h->got, h->got_len + (size_t)n + 1);
                assert_non_null(grown);
                h->got = grown;
                memcpy(h->got + h->got_len, buf, (size_t)n);
                h->got_len += (size_t)n;
                h->got[h->got_len] = '\0';
        }
        return n < 0 && errno == EAGAIN;
}

static void client_cb(evutil_socket_t fd, short what, void *arg)
{
        struct harness *h = arg;

        (void)fd, (void)what;
        h->eof = !client_take(h);
        if (h->eof || (h->got && strchr(h->got, '\n')))
                event_base_loopbreak(h->d.base);
}

static void give_up_cb(evutil_socket_t fd, short what, void *arg)
{
        struct harness *h = arg;

        (void)fd, (void)what;
        h->gave_up = true;
        event_base_loopbreak(h->d.base);
}

/* Checks, on a short timer, whether the server dropped its clients. */
static void gone_cb(evutil_socket_t fd, short what, void *arg)
{
        struct harness *h = arg;
        struct timeval again = {0, 10 * 1000};

        (void)fd, (void)what;
        if (control_server_clients(h->srv) == 0)
                event_base_loopbreak(h->d.base);
        else
                evtimer_add(h->gone_ev, &again);
}

/* The loop held up by something else than the client's request (the cycle's timer). */
static void held_cb(evutil_socket_t fd, short what, void *arg)
{
        struct harness *h = arg;

        (void)fd, (void)what;
        if (h->before_hold)
                h->before_hold(h);
        hold_loop(HELD_MS);
        if (h->after_hold)
                h->after_hold(h);
}

static int setup(void **state)
{
        struct harness *h = calloc(1, sizeof(*h));
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char err[256] = "";

        assert_non_null(h);
        memset(&stand_in, 0, sizeof(stand_in));
        snprintf(h->dir, sizeof(h->dir), "/tmp/dynmem-control-XXXXXX");
        assert_non_null(mkdtemp(h->dir));
        snprintf(h->path, sizeof(h->path), "%s/control.sock", h->dir);
        assert_non_null(h->d.base = event_base_new());
        assert_int_equal(event_base_priority_init(h->d.base, 2), 0);
        struct control_server_options opt = {
            .path = h->path, .readers = "user test", .idle_ms = IDLE_MS};
        if (control_server_new(&h->d, &opt, &h->srv, err, sizeof(err)) < 0)
                fail_msg("control_server_new: %s", err);

        h->client = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        assert_true(h->client >= 0);
        memcpy(sa.sun_path, h->path, strlen(h->path) + 1);
        assert_int_equal(connect(h->client, (struct sockaddr *)&sa, sizeof(sa)), 0);
        h->client_ev = event_new(h->d.base, h->client, EV_READ | EV_PERSIST, client_cb, h);
        h->give_up_ev = evtimer_new(h->d.base, give_up_cb, h);
        h->gone_ev = evtimer_new(h->d.base, gone_cb, h);
        h->held_ev = evtimer_new(h->d.base, held_cb, h);
        assert_true(h->client_ev && h->give_up_ev && h->gone_ev && h->held_ev);
        /* before the clients, as the cycle's timer is */
        assert_int_equal(event_priority_set(h->held_ev, 0), 0);
        while (control_server_clients(h->srv) == 0)
                event_base_loop(h->d.base, EVLOOP_ONCE);
        *state = h;
        return 0;
}

static int teardown(void **state)
{
        struct harness *h = *state;

        control_server_free(h->srv);
        event_free(h->client_ev);
        event_free(h->give_up_ev);
        event_free(h->gone_ev);
        event_free(h->held_ev);
        event_base_free(h->d.base);
        close(h->client);
        rmdir(h->dir);
        free(h->got);
        free(h);
        return 0;
}

static void send_text(struct harness *h, const char *text)
{
        assert_int_equal(send(h->client, text, strlen(text), MSG_NOSIGNAL), (ssize_t)strlen(text));
}

/* Run the loop until the client has a whole reply line or the server closed it. */
static void await_reply(struct harness *h)
{
        struct timeval give_up = {GIVE_UP_MS / 1000, 0};

        free(h->got);
        h->got = NULL;
        h->got_len = 0;
        event_add(h->client_ev, NULL);
        evtimer_add(h->give_up_ev, &give_up);
        event_base_dispatch(h->d.base);
        event_del(h->client_ev);
        evtimer_del(h->give_up_ev);
        assert_false(h->gave_up);
}

/* Run the loop until the server dropped the client. */
static void await_drop(struct harness *h)
{
        struct timeval give_up = {GIVE_UP_MS / 1000, 0}, now = {0, 0};

        evtimer_add(h->gone_ev, &now);
        evtimer_add(h->give_up_ev, &give_up);
        event_base_dispatch(h->d.base);
        evtimer_del(h->gone_ev);
        evtimer_del(h->give_up_ev);
        assert_false(h->gave_up);
        assert_int_equal(control_server_clients(h->srv), 0);
}

/* Hold the loop up (before the clients' events) at its next turn. */
static void hold_next_turn(struct harness *h, void (*before)(struct harness *h),
                           void (*after)(struct harness *h))
{
        struct timeval now = {0, 0};

        h->before_hold = before;
        h->after_hold = after;
        evtimer_add(h->held_ev, &now);
}

static void expect_reply(struct harness *h, unsigned n)
{
        char *line = reply_line(n);

        if (h->eof && !h->got)
                fail_msg("the connection was closed without a reply");
        assert_non_null(h->got);
        assert_int_equal(h->got_len, strlen(line) + 1);
        assert_memory_equal(h->got, line, strlen(line));
        assert_int_equal(h->got[h->got_len - 1], '\n');
        free(line);
}

/* A `dynmem set` whose define libvirtd took longer than the idle timeout to answer. */
static void a_reply_made_while_the_loop_was_held_up_is_written(void **state)
{
        struct harness *h = *state;

        stand_in.held_ms = HELD_MS;
        send_text(h, REQUEST);
        await_reply(h);
        expect_reply(h, 1);
        /* and the connection serves the next request */
        stand_in.held_ms = 0;
        send_text(h, REQUEST);
        await_reply(h);
        expect_reply(h, 2);
}

static void send_request(struct harness *h)
{
        send_text(h, REQUEST);
}

/* The request comes while the cycle holds the loop up (a define on an event, a reload). */
static void a_request_sent_while_the_loop_was_held_up_is_served(void **state)
{
        struct harness *h = *state;

        hold_next_turn(h, send_request, NULL);
        await_reply(h);
        expect_reply(h, 1);
}

/* The end of a cycle that decided the start waited for. */
static void cycle_ends(struct harness *h)
{
        stand_in.decided = true;
        control_server_after_cycle(h->srv);
}

/*
 * A request that waits (`wait`), taken in; then, in the loop's next turn,
 * what ends its wait (`ends`): its reply is written.
 */
static void answered_once(struct harness *h, enum commands_wait wait,
                          void (*ends)(struct harness *h))
{
        stand_in.wait = wait;
        send_text(h, REQUEST);
        while (stand_in.runs == 0)
                event_base_loop(h->d.base, EVLOOP_ONCE);
        hold_next_turn(h, NULL, ends);
        await_reply(h);
        expect_reply(h, 1);
}

/* A start answered after the cycle that decides it: the cycle took longer than the timeout. */
static void a_reply_that_waited_for_a_long_cycle_is_written(void **state)
{
        answered_once(*state, COMMANDS_WAIT_START, cycle_ends);
}

/* The backend says the write a carry request waits for is over: no cycle comes. */
static void carried(struct harness *h)
{
        stand_in.decided = true;
        control_server_carried(h->srv);
}

/*
 * A carry request is answered as soon as its write is over, without waiting
 * for a cycle ([host] interval may be 30 s).
 */
static void a_carry_is_answered_when_its_write_is_over(void **state)
{
        struct harness *h = *state;

        stand_in.limit_ms = 10 * GIVE_UP_MS;
        answered_once(h, COMMANDS_WAIT_CARRY, carried);
        assert_int_equal(stand_in.timed_out, 0);
}

/* ... and at its own end (a timer), when the write is not over by then: still no cycle. */
static void a_carry_is_answered_at_the_end_of_its_wait(void **state)
{
        struct harness *h = *state;

        stand_in.wait = COMMANDS_WAIT_CARRY;
        stand_in.limit_ms = IDLE_MS / 2;
        send_text(h, REQUEST);
        await_reply(h);
        expect_reply(h, 1);
        assert_int_equal(stand_in.timed_out, 1);
        /* the connection serves the next request */
        stand_in.wait = COMMANDS_WAIT_NONE;
        send_text(h, REQUEST);
        await_reply(h);
        expect_reply(h, 2);
}

static void client_reads(struct harness *h)
{
        assert_true(client_take(h));
        assert_true(h->got_len > 0);
}

/*
 * A reply longer than the socket holds, half written when the loop is held
 * up; the client reads what it has meanwhile: the rest follows.
 */
static void a_long_reply_goes_on_after_the_loop_was_held_up(void **state)
{
        struct harness *h = *state;
        int queued = 0;

        stand_in.reply_bytes = LONG_REPLY;
        send_text(h, REQUEST);
        while (queued == 0) {
                event_base_loop(h->d.base, EVLOOP_ONCE);
                assert_int_equal(ioctl(h->client, FIONREAD, &queued), 0);
        }
        hold_next_turn(h, client_reads, NULL);
        event_base_loop(h->d.base, EVLOOP_ONCE);
        char *before = h->got;
        size_t before_len = h->got_len;
        h->got = NULL;
        await_reply(h);
        char *all = malloc(before_len + h->got_len + 1);
        assert_non_null(all);
        memcpy(all, before, before_len);
        memcpy(all + before_len, h->got ? h->got : "", h->got_len + 1);
        free(before);
        free(h->got);
        h->got = all;
        h->got_len += before_len;
        expect_reply(h, 1);
}

/* ---- idle clients are still dropped ---- */

static void an_idle_client_is_dropped(void **state)
{
        struct harness *h = *state;

        await_drop(h);
        await_reply(h);
        assert_true(h->eof);
        assert_null(h->got);
}

static void an_idle_client_is_dropped_after_the_loop_was_held_up(void **state)
{
        struct harness *h = *state;

        hold_next_turn(h, NULL, NULL);
        await_drop(h);
        await_reply(h);
        assert_true(h->eof);
        assert_null(h->got);
}

static void a_client_that_stops_halfway_through_a_request_is_dropped(void **state)
{
        struct harness *h = *state;

        send_text(h, "{\"version\":1,");
        await_drop(h);
        assert_int_equal(stand_in.runs, 0);
}

static void a_client_that_reads_no_reply_is_dropped(void **state)
{
        struct harness *h = *state;

        stand_in.reply_bytes = LONG_REPLY;
        send_text(h, REQUEST);
        await_drop(h);
        /* what the socket held, not the whole reply */
        await_reply(h);
        assert_true(h->eof);
        assert_true(h->got_len > 0 && h->got_len < LONG_REPLY);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(a_reply_made_while_the_loop_was_held_up_is_written,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(a_request_sent_while_the_loop_was_held_up_is_served,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(a_reply_that_waited_for_a_long_cycle_is_written, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(a_carry_is_answered_when_its_write_is_over, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(a_carry_is_answered_at_the_end_of_its_wait, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(a_long_reply_goes_on_after_the_loop_was_held_up, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(an_idle_client_is_dropped, setup, teardown),
            cmocka_unit_test_setup_teardown(an_idle_client_is_dropped_after_the_loop_was_held_up,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(
                a_client_that_stops_halfway_through_a_request_is_dropped, setup, teardown),
            cmocka_unit_test_setup_teardown(a_client_that_reads_no_reply_is_dropped, setup,
                                            teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
