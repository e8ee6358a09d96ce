/*
 * Tests for the QMP client: the protocol against a scripted peer on a
 * socketpair (negotiation, replies in order, events, errors, hostile and
 * oversized messages, timeouts, freeing from callbacks), and against a real
 * QEMU started with -machine none (no guest).
 */
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "qmp.h"
#include "qtest.h"

#define WAIT_MS (60 * 1000) /* generous: a QEMU started on a shared, busy machine */

extern char **environ;

struct fake {
        struct event_base *base;
        int peer;
        struct qmp *q;
        int ready, closed, events, replies;
        char why[256];
        char event_name[QMP_EVENT_NAME_MAX + 1];
        long long event_value;
        enum qmp_status status;
        char error_class[64], error_desc[256];
        json_t *ret;
        bool free_in_reply;
        char in[65536];
        size_t in_len;
};

static void on_ready(struct qmp *q, void *userdata)
{
        (void)q;
        ((struct fake *)userdata)->ready++;
}

static void on_event(struct qmp *q, const char *name, json_t *data, void *userdata)
{
        struct fake *f = userdata;
        uint64_t v = 0;

        (void)q;
        f->events++;
        snprintf(f->event_name, sizeof(f->event_name), "%s", name);
        f->event_value = qmp_get_u64(data, "actual", UINT64_MAX, &v) == 0 ? (long long)v : -1;
}

static void on_closed(struct qmp *q, const char *why, void *userdata)
{
        struct fake *f = userdata;

        (void)q;
        f->closed++;
        snprintf(f->why, sizeof(f->why), "%s", why);
}

static const struct qmp_callbacks callbacks = {on_ready, on_event, on_closed};

static void on_reply(struct qmp *q, const struct qmp_reply *r, void *userdata)
{
        struct fake *f = userdata;

        f->replies++;
        f->status = r->status;
        snprintf(f->error_class, sizeof(f->error_class), "%s",
                 r->error_class ? r->error_class : "");
        snprintf(f->error_desc, sizeof(f->error_desc), "%s", r->error_desc ? r->error_desc : "");
        json_decref(f->ret);
        f->ret = r->ret ? json_incref(r->ret) : NULL;
        if (f->free_in_reply) {
                qmp_free(q);
                f->q = NULL;
        }
}

static int setup(void **state)
{
        struct fake *f = calloc(1, sizeof(*f));
        int sv[2];

        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        f->base = event_base_new();
        f->peer = sv[1];
        fcntl(f->peer, F_SETFL, O_NONBLOCK);
        assert_int_equal(qmp_new_fd(f->base, sv[0], &callbacks, f, &f->q), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        struct fake *f = *state;

        qmp_free(f->q);
        json_decref(f->ret);
        if (f->peer >= 0)
                close(f->peer);
        event_base_free(f->base);
        free(f);
        return 0;
}

static void peer_send(struct fake *f, const char *text)
{
        size_t len = strlen(text), off = 0;

        while (off < len) {
                ssize_t n = write(f->peer, text + off, len - off);
                if (n < 0 && errno == EAGAIN) {
                        qt_loop_for(f->base, 10);
                        continue;
                }
                assert_true(n > 0);
                off += (size_t)n;
        }
}

static bool line_arrived(void *arg)
{
        struct fake *f = arg;
        ssize_t n = read(f->peer, f->in + f->in_len, sizeof(f->in) - 1 - f->in_len);

        if (n > 0)
                f->in_len += (size_t)n;
        return memchr(f->in, '\n', f->in_len) != NULL;
}

/* The next line the client sent, parsed. */
static json_t *peer_recv(struct fake *f)
{
        json_t *msg;
        char *nl;

        assert_true(qt_loop_until(f->base, line_arrived, f, WAIT_MS));
        nl = memchr(f->in, '\n', f->in_len);
        msg = json_loadb(f->in, (size_t)(nl - f->in), 0, NULL);
        f->in_len -= (size_t)(nl + 1 - f->in);
        memmove(f->in, nl + 1, f->in_len);
        assert_non_null(msg);
        return msg;
}

/* Expect a command named execute; returns its id. */
static long long expect(struct fake *f, const char *execute)
{
        json_t *msg = peer_recv(f);
        long long id = json_integer_value(json_object_get(msg, "id"));

        assert_string_equal(json_string_value(json_object_get(msg, "execute")), execute);
        assert_true(json_is_integer(json_object_get(msg, "id")));
        json_decref(msg);
        return id;
}

static void reply(struct fake *f, long long id, const char *ret)
{
        char buf[512];

        snprintf(buf, sizeof(buf), "{\"return\": %s, \"id\": %lld}\r\n", ret, id);
        peer_send(f, buf);
}

static bool is_ready(void *arg)
{
        return ((struct fake *)arg)->ready > 0;
}

static bool is_closed(void *arg)
{
        return ((struct fake *)arg)->closed > 0;
}

static bool got_reply(void *arg)
{
        return ((struct fake *)arg)->replies > 0;
}

static void negotiate(struct fake *f)
{
        peer_send(f,
                  "{\"QMP\": {\"version\": {\"qemu\": {\"micro\": 2, \"minor\": 2, \"major\": 7}}, "
                  "\"capabilities\": [\"oob\"]}}\r\n");
        reply(f, expect(f, "qmp_capabilities"), "{}");
        assert_true(qt_loop_until(f->base, is_ready, f, WAIT_MS));
}

/* Send a command, answer it with `text` verbatim, and run the loop until the client reacts. */
static void answer_with(struct fake *f, const char *text)
{
        f->replies = 0;
        assert_int_equal(qmp_command(f->q, "query-status", NULL, on_reply, f), 0);
        expect(f, "query-status");
        peer_send(f, text);
        qt_loop_until(f->base, is_closed, f, 300);
}

/* ---- protocol ---- */

static void negotiates_first_and_answers_in_order(void **state)
{
        struct fake *f = *state;
        unsigned major, minor, micro;

        assert_false(qmp_is_ready(f->q));
        /* Queued before the greeting: sent only after negotiation. */
        assert_int_equal(qmp_command(f->q, "query-balloon", NULL, on_reply, f), 0);
        negotiate(f);
        qmp_version(f->q, &major, &minor, &micro);
        assert_int_equal(major, 7);
        assert_int_equal(minor, 2);
        long long id = expect(f, "query-balloon");
        /* Several messages in one write, one split across two writes, blank lines, CRLF. */
        char buf[256];
        snprintf(buf, sizeof(buf),
                 "\r\n{\"event\": \"BALLOON_CHANGE\", \"data\": {\"actual\": 1048576}}\r\n"
                 "{\"return\": {\"actual\": 268435456}, \"id\": %lld}\r\n{\"event\": \"RES",
                 id);
        peer_send(f, buf);
        peer_send(f, "UME\"}\n");
        assert_true(qt_loop_until(f->base, got_reply, f, WAIT_MS));
        qt_loop_for(f->base, 50);
        assert_int_equal(f->status, QMP_OK);
        uint64_t actual;
        assert_int_equal(qmp_get_u64(f->ret, "actual", UINT64_MAX, &actual), 0);
        assert_int_equal(actual, 268435456);
        assert_int_equal(f->events, 2);
        assert_string_equal(f->event_name, "RESUME");

        f->replies = 0;
        assert_int_equal(qmp_command(f->q, "nope", json_pack("{s:i}", "x", 1), on_reply, f), 0);
        id = expect(f, "nope");
        snprintf(buf, sizeof(buf),
                 "{\"error\": {\"class\": \"CommandNotFound\", \"desc\": \"The command nope has "
                 "not been found\"}, \"id\": %lld}\n",
                 id);
        peer_send(f, buf);
        assert_true(qt_loop_until(f->base, got_reply, f, WAIT_MS));
        assert_int_equal(f->status, QMP_ERROR);
        assert_string_equal(f->error_class, "CommandNotFound");
        assert_int_equal(f->closed, 0);
}

static void pending_commands_see_the_connection_close(void **state)
{
        struct fake *f = *state;

        negotiate(f);
        assert_int_equal(qmp_command(f->q, "query-status", NULL, on_reply, f), 0);
        expect(f, "query-status");
        close(f->peer);
        f->peer = -1;
        assert_true(qt_loop_until(f->base, is_closed, f, WAIT_MS));
        assert_int_equal(f->replies, 1);
        assert_int_equal(f->status, QMP_GONE);
        assert_non_null(strstr(f->why, "closed"));
        assert_int_equal(qmp_command(f->q, "query-status", NULL, NULL, NULL), -ENOTCONN);
        assert_true(qmp_is_closed(f->q));
}

static void oversized_messages_close_the_connection(void **state)
{
        struct fake *f = *state;
        size_t n = QMP_LINE_MAX + 4096;
        char *big = malloc(n + 1);

        negotiate(f);
        assert_int_equal(qmp_command(f->q, "query-status", NULL, on_reply, f), 0);
        expect(f, "query-status");
        /* A string that never ends: no newline within the cap. */
        memset(big, 'x', n);
        memcpy(big, "{\"return\": \"", 12);
        big[n] = '\0';
        peer_send(f, big);
        free(big);
        assert_true(qt_loop_until(f->base, is_closed, f, WAIT_MS));
        assert_non_null(strstr(f->why, "longer than"));
        assert_int_equal(f->status, QMP_GONE);
}

static void an_oversized_line_with_its_newline_is_refused_too(void **state)
{
        struct fake *f = *state;
        size_t n = QMP_LINE_MAX + 100;
        char *big = malloc(n + 3);

        negotiate(f);
        memset(big, ' ', n);
        memcpy(big, "{\"event\": \"X\"}", 14);
        memcpy(big + n, "\r\n", 3);
        peer_send(f, big);
        free(big);
        assert_true(qt_loop_until(f->base, is_closed, f, WAIT_MS));
        assert_non_null(strstr(f->why, "longer than"));
        assert_int_equal(f->events, 0);
}

static void malformed_messages_close_the_connection(void **state)
{
        static const struct {
                const char *text, *why;
        } cases[] = {
            {"{\"return\": {}, \"id\": 99}\n", "not asked"},
            {"{\"return\": {}}\n", "neither a reply nor an event"},
            {"{\"error\": {\"class\": \"X\"}, \"id\": 2}\n", "without class or description"},
            {"{\"return\": {}, \"error\": {\"class\": \"X\", \"desc\": \"y\"}, \"id\": 2}\n",
             "neither or both"},
            {"{\"event\": \"bad name!\"}\n", "event name"},
            {"{\"event\": \"OK\", \"data\": [1]}\n", "malformed QMP event"},
            {"{\"event\": 5}\n", "malformed QMP event"},
            {"[1, 2]\n", "not a JSON object"},
            {"{\"return\": tru}\n", "not JSON"},
            {"{\"return\": {}, \"id\": 2, \"id\": 2}\n", "not JSON"},
            {"{\"return\": {}, \"id\": -2}\n", "not asked"},
            {"{\"return\": {}, \"id\": \"2\"}\n", "not asked"},
        };

        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                struct fake *f;
                setup((void **)&f);
                negotiate(f);
                answer_with(f, cases[i].text);
                if (!f->closed || !strstr(f->why, cases[i].why))
                        fail_msg("case %zu (%s): closed=%d why=\"%s\"", i, cases[i].text, f->closed,
                                 f->why);
                assert_int_equal(f->replies, 1);
                assert_int_equal(f->status, QMP_GONE);
                teardown((void **)&f);
        }
        (void)state;
}

static void a_greeting_that_is_not_qmp_closes(void **state)
{
        struct fake *f = *state;

        peer_send(f, "{\"hello\": 1}\n");
        assert_true(qt_loop_until(f->base, is_closed, f, WAIT_MS));
        assert_non_null(strstr(f->why, "greet"));
        assert_int_equal(f->ready, 0);
}

/* QEMU's monitor may emit an event before its greeting (a race in QEMU): checked and dropped. */
static void events_before_the_greeting_are_dropped(void **state)
{
        struct fake *f = *state;

        peer_send(f, "{\"timestamp\": {\"seconds\": 1, \"microseconds\": 2}, "
                     "\"event\": \"RESUME\"}\r\n");
        qt_loop_for(f->base, 50);
        assert_int_equal(f->closed, 0);
        negotiate(f);
        assert_int_equal(f->events, 0); /* not passed on: it came before negotiation */
        assert_int_equal(f->closed, 0);
}

/* ... but only a few, and only well-formed ones. */
static void a_flood_or_a_bad_event_before_the_greeting_closes(void **state)
{
        struct fake *f = *state;

        for (int i = 0; i < 17; i++)
                peer_send(f, "{\"event\": \"STOP\"}\n");
        assert_true(qt_loop_until(f->base, is_closed, f, WAIT_MS));
        assert_non_null(strstr(f->why, "before its greeting"));
        assert_int_equal(f->ready, 0);
        teardown(state);

        setup(state);
        f = *state;
        peer_send(f, "{\"event\": \"stop\\u001b[2J\"}\n");
        assert_true(qt_loop_until(f->base, is_closed, f, WAIT_MS));
        assert_non_null(strstr(f->why, "event name"));
        teardown(state);

        /* Something else first: named, control characters made harmless. */
        setup(state);
        f = *state;
        peer_send(f, "{\"ret\\u001burn\": {}, \"id\": 1}\n");
        assert_true(qt_loop_until(f->base, is_closed, f, WAIT_MS));
        assert_non_null(strstr(f->why, "did not greet"));
        assert_non_null(strstr(f->why, "\"ret urn\""));
        assert_null(strchr(f->why, '\x1b'));
}

static void silence_times_out(void **state)
{
        struct fake *f = *state;

        qmp_set_reply_timeout(f->q, 200);
        assert_true(qt_loop_until(f->base, is_closed, f, WAIT_MS));
        assert_non_null(strstr(f->why, "greeting"));
}

static void a_missing_reply_times_out(void **state)
{
        struct fake *f = *state;

        negotiate(f);
        qmp_set_reply_timeout(f->q, 200);
        assert_int_equal(qmp_command(f->q, "query-status", NULL, on_reply, f), 0);
        expect(f, "query-status");
        assert_true(qt_loop_until(f->base, is_closed, f, WAIT_MS));
        assert_non_null(strstr(f->why, "no reply to query-status"));
        assert_int_equal(f->status, QMP_GONE);
}

static void the_owner_may_free_from_a_callback(void **state)
{
        struct fake *f = *state;

        negotiate(f);
        f->free_in_reply = true;
        assert_int_equal(qmp_command(f->q, "query-status", NULL, on_reply, f), 0);
        assert_int_equal(qmp_command(f->q, "query-name", NULL, on_reply, f), 0);
        long long id = expect(f, "query-status");
        expect(f, "query-name");
        char buf[128];
        snprintf(buf, sizeof(buf),
                 "{\"return\": {}, \"id\": %lld}\n{\"return\": {}, \"id\": %lld}\n", id, id + 1);
        peer_send(f, buf);
        assert_true(qt_loop_until(f->base, got_reply, f, WAIT_MS));
        qt_loop_for(f->base, 50);
        assert_null(f->q);
        assert_int_equal(f->replies, 1); /* the second reply is dropped with the client */
        assert_int_equal(f->closed, 0);
}

static void commands_are_bounded(void **state)
{
        struct fake *f = *state;

        for (int i = 0; i < QMP_PENDING_MAX; i++)
                assert_int_equal(qmp_command(f->q, "query-status", NULL, NULL, NULL), 0);
        assert_int_equal(qmp_command(f->q, "query-status", NULL, NULL, NULL), -EBUSY);
        assert_int_equal(qmp_command(f->q, "", NULL, NULL, NULL), -EINVAL);
        assert_int_equal(qmp_command(f->q, "x", json_pack("[i]", 1), NULL, NULL), -EINVAL);
}

static void numbers_are_range_checked(void **state)
{
        json_t *v =
            json_loads("{\"int\": 5, \"real\": 268435456.0, \"huge\": 18446744073709551615,"
                       " \"neg\": -1, \"frac\": 1.5, \"str\": \"5\", \"big\": 9007199254740993}",
                       JSON_DECODE_INT_AS_REAL, NULL);
        uint64_t x = 7;

        (void)state;
        assert_non_null(v);
        assert_int_equal(qmp_get_u64(v, "int", 10, &x), 0);
        assert_int_equal(x, 5);
        assert_int_equal(qmp_get_u64(v, "real", UINT64_MAX, &x), 0);
        assert_int_equal(x, 268435456);
        assert_int_equal(qmp_get_u64(v, "int", 4, &x), -ERANGE);
        assert_int_equal(qmp_get_u64(v, "huge", UINT64_MAX, &x), -ERANGE);
        assert_int_equal(qmp_get_u64(v, "big", UINT64_MAX, &x), -ERANGE);
        assert_int_equal(qmp_get_u64(v, "neg", UINT64_MAX, &x), -ERANGE);
        assert_int_equal(qmp_get_u64(v, "frac", UINT64_MAX, &x), -EINVAL);
        assert_int_equal(qmp_get_u64(v, "str", UINT64_MAX, &x), -EINVAL);
        assert_int_equal(qmp_get_u64(v, "none", UINT64_MAX, &x), -ENOENT);
        assert_int_equal(x, 268435456);
        assert_null(qmp_get_string(v, "int", 10));
        json_decref(v);
}

/* ---- a real QEMU ---- */

struct real {
        struct fake f;
        pid_t pid;
        char *dir;
        char sock[256];
};

static bool socket_exists(void *arg)
{
        struct real *r = arg;

        return access(r->sock, F_OK) == 0;
}

static void talks_to_a_real_qemu(void **state)
{
        struct real r = {.f.peer = -1};
        char chardev[512];
        int status;

        (void)state;
        r.dir = qt_tempdir();
        snprintf(r.sock, sizeof(r.sock), "%s/q.sock", r.dir);
        snprintf(chardev, sizeof(chardev), "socket,id=m,path=%s,server=on,wait=off", r.sock);
        char *argv[] = {"qemu-system-x86_64",
                        "-S",
                        "-nodefaults",
                        "-no-user-config",
                        "-machine",
                        "none",
                        "-display",
                        "none",
                        "-chardev",
                        chardev,
                        "-mon",
                        "chardev=m,mode=control",
                        NULL};
        if (posix_spawnp(&r.pid, argv[0], NULL, NULL, argv, environ) != 0) {
                qt_rmtree(r.dir);
                skip();
        }
        r.f.base = event_base_new();
        assert_true(qt_loop_until(r.f.base, socket_exists, &r, WAIT_MS));
        int e = -1;
        for (uint64_t t0 = mono_ms();
             (e = qmp_connect(r.f.base, r.sock, &callbacks, &r.f, &r.f.q)) &&
             mono_ms() - t0 < WAIT_MS;)
                qt_loop_for(r.f.base, 50);
        assert_int_equal(e, 0);
        assert_true(qt_loop_until(r.f.base, is_ready, &r.f, WAIT_MS));

        assert_int_equal(qmp_command(r.f.q, "query-status", NULL, on_reply, &r.f), 0);
        assert_true(qt_loop_until(r.f.base, got_reply, &r.f, WAIT_MS));
        assert_int_equal(r.f.status, QMP_OK);
        assert_string_equal(qmp_get_string(r.f.ret, "status", 64), "prelaunch");

        r.f.replies = 0;
        assert_int_equal(qmp_command(r.f.q, "no-such-command", NULL, on_reply, &r.f), 0);
        assert_true(qt_loop_until(r.f.base, got_reply, &r.f, WAIT_MS));
        assert_int_equal(r.f.status, QMP_ERROR);
        assert_string_equal(r.f.error_class, "CommandNotFound");

        unsigned major, minor, micro;
        qmp_version(r.f.q, &major, &minor, &micro);
        assert_true(major >= 7);

        r.f.replies = 0;
        assert_int_equal(qmp_command(r.f.q, "quit", NULL, on_reply, &r.f), 0);
        assert_true(qt_loop_until(r.f.base, is_closed, &r.f, WAIT_MS));
        assert_int_equal(waitpid(r.pid, &status, 0), r.pid);
        assert_true(WIFEXITED(status));
        qmp_free(r.f.q);
        json_decref(r.f.ret);
        event_base_free(r.f.base);
        qt_rmtree(r.dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test_setup_teardown(negotiates_first_and_answers_in_order, setup, teardown),
            cmocka_unit_test_setup_teardown(pending_commands_see_the_connection_close, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(oversized_messages_close_the_connection, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(an_oversized_line_with_its_newline_is_refused_too,
                                            setup, teardown),
            cmocka_unit_test(malformed_messages_close_the_connection),
            cmocka_unit_test_setup_teardown(a_greeting_that_is_not_qmp_closes, setup, teardown),
            cmocka_unit_test_setup_teardown(events_before_the_greeting_are_dropped, setup,
                                            teardown),
            cmocka_unit_test_setup_teardown(a_flood_or_a_bad_event_before_the_greeting_closes,
                                            setup, teardown),
            cmocka_unit_test_setup_teardown(silence_times_out, setup, teardown),
            cmocka_unit_test_setup_teardown(a_missing_reply_times_out, setup, teardown),
            cmocka_unit_test_setup_teardown(the_owner_may_free_from_a_callback, setup, teardown),
            cmocka_unit_test_setup_teardown(commands_are_bounded, setup, teardown),
            cmocka_unit_test(numbers_are_range_checked),
            cmocka_unit_test(talks_to_a_real_qemu),
        };

        signal(SIGPIPE, SIG_IGN);
        return cmocka_run_group_tests(tests, NULL, NULL);
}
