/*
 * Tests for what dynmemd shows of itself without an event loop: the ring
 * of balancer events (order, wrap-around, dropped counts, text), the
 * counter sets read from a VM, Prometheus label escaping, [host] http
 * addresses (loopback only unless allowed), and the control protocol's
 * counters and events requests.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "address.h"
#include "control.h"
#include "dconfig.h"
#include "counters.h"
#include "events.h"
#include "http.h"
#include "metrics.h"
#include "units.h"
#include "vm.h"

static struct vm test_vm(const char *name)
{
        struct vm vm = {.state = VM_RUNNING};

        snprintf(vm.name, sizeof(vm.name), "%s", name);
        vm_counters_reset(&vm.counters);
        return vm;
}

static void add(struct events *e, enum balancer_event_kind kind, struct vm *vm, uint64_t bytes)
{
        events_add(e, &(struct balancer_event){.kind = kind,
                                               .vm = vm,
                                               .bytes = bytes,
                                               .reason = REASON_DEMAND,
                                               .pressure = 118.0});
}

static uint64_t seq_at(json_t *reply, size_t i)
{
        return (uint64_t)json_integer_value(
            json_object_get(json_array_get(json_object_get(reply, "events"), i), "seq"));
}

static json_int_t member(json_t *reply, const char *key)
{
        return json_integer_value(json_object_get(reply, key));
}

static void events_keep_order_and_say_what_was_dropped(void **state)
{
        struct events *e = NULL;
        struct vm vm = test_vm("web1");
        json_t *r;

        assert_int_equal(events_new(4, &e), 0);
        r = events_json(e, 0, 10);
        assert_int_equal(json_array_size(json_object_get(r, "events")), 0);
        assert_int_equal(member(r, "next"), 0);
        json_decref(r);
        for (int i = 0; i < 6; i++)
                add(e, BALANCER_EVENT_ADD, &vm, 256 * MIB);
        assert_true(events_last(e) == 6);

        /* from the start: what the ring holds (3..6), nothing counted as dropped */
        r = events_json(e, 0, 10);
        assert_int_equal(json_array_size(json_object_get(r, "events")), 4);
        assert_true(seq_at(r, 0) == 3 && seq_at(r, 3) == 6);
        assert_int_equal(member(r, "dropped"), 0);
        assert_int_equal(member(r, "next"), 6);
        assert_true(json_is_false(json_object_get(r, "more")));
        json_decref(r);

        /* a follower that saw 1 missed event 2 */
        r = events_json(e, 1, 10);
        assert_int_equal(member(r, "dropped"), 1);
        assert_true(seq_at(r, 0) == 3);
        json_decref(r);

        /* in pieces of two */
        r = events_json(e, 4, 1);
        assert_int_equal(json_array_size(json_object_get(r, "events")), 1);
        assert_true(seq_at(r, 0) == 5);
        assert_int_equal(member(r, "next"), 5);
        assert_true(json_is_true(json_object_get(r, "more")));
        json_decref(r);

        /* up to date, and a number from before a restart */
        r = events_json(e, 6, 10);
        assert_int_equal(json_array_size(json_object_get(r, "events")), 0);
        assert_int_equal(member(r, "next"), 6);
        json_decref(r);
        r = events_json(e, 1000, 10);
        assert_true(seq_at(r, 0) == 3);
        json_decref(r);
        events_free(e);
        events_free(NULL);
}

/* A message longer than the ring's record is cut between characters, not through one. */
static void event_messages_cut_stay_utf8(void **state)
{
        struct events *e = NULL;
        char message[400] = "reply names an unknown VM \"x"; /* 28 bytes: 159 cut in a character */
        const char *text;
        json_t *r, *ev;

        for (int i = 0; i < 100; i++)
                strcat(message, "\xc3\xa9");
        assert_int_equal(events_new(0, &e), 0);
        events_add(e, &(struct balancer_event){
                          .kind = BALANCER_EVENT_POLICY, .message = message, .pressure = -1});
        r = events_json(e, 0, 10);
        assert_non_null(r);
        ev = json_array_get(json_object_get(r, "events"), 0);
        text = json_string_value(json_object_get(ev, "message"));
        assert_non_null(text);
        /* Cut at a character's boundary (log_clean), marked with "...": no '?' in its place. */
        size_t len = strlen(text);
        assert_true(len > 3 && len < strlen(message));
        assert_string_equal(text + len - 3, "...");
        assert_true(strncmp(text, message, len - 3) == 0);
        assert_null(strchr(text, '?'));
        assert_true((text[len - 4] & 0xc0) != 0xc0); /* no lead byte left without its tail */
        json_decref(r);
        events_free(e);
}

static void event_json_has_the_details(void **state)
{
        struct events *e = NULL;
        struct vm vm = test_vm("web1");
        json_t *r, *ev;

        assert_int_equal(events_new(0, &e), 0);
        events_add(e, &(struct balancer_event){.kind = BALANCER_EVENT_REMOVE,
                                               .vm = &vm,
                                               .bytes = 128 * MIB,
                                               .from_bytes = GIB,
                                               .to_bytes = GIB - 128 * MIB,
                                               .reason = REASON_SCARCITY,
                                               .pressure = -1});
        events_add(e, &(struct balancer_event){.kind = BALANCER_EVENT_POLICY,
                                               .message = "exec policy timed out",
                                               .pressure = -1});
        r = events_json(e, 0, 10);
        ev = json_array_get(json_object_get(r, "events"), 0);
        assert_string_equal(json_string_value(json_object_get(ev, "kind")), "remove");
        assert_string_equal(json_string_value(json_object_get(ev, "vm")), "web1");
        assert_string_equal(json_string_value(json_object_get(ev, "reason")), "scarcity");
        assert_true(json_is_null(json_object_get(ev, "pressure_percent")));
        assert_true(json_integer_value(json_object_get(ev, "to_bytes")) ==
                    (json_int_t)(GIB - 128 * MIB));
        assert_true(json_integer_value(json_object_get(ev, "time_ms")) > 0);
        assert_string_equal(json_string_value(json_object_get(ev, "text")),
                            "web1 -128 MiB: host short of memory, pressure unknown");
        ev = json_array_get(json_object_get(r, "events"), 1);
        assert_true(json_is_null(json_object_get(ev, "vm")));
        assert_null(json_object_get(ev, "bytes"));
        assert_string_equal(json_string_value(json_object_get(ev, "text")),
                            "policy: exec policy timed out");
        json_decref(r);
        events_free(e);
}

static void event_texts(void **state)
{
        struct events_entry x = {.kind = BALANCER_EVENT_ADD,
                                 .vm = "web1",
                                 .bytes = 256 * MIB,
                                 .reason = REASON_DEMAND,
                                 .pressure = 118.2};
        char buf[EVENTS_TEXT_MAX];

        assert_string_equal(events_text(&x, buf, sizeof(buf)), "web1 +256 MiB: pressure 118 %");
        x.kind = BALANCER_EVENT_REMOVE, x.reason = REASON_MINIMUM, x.pressure = 40;
        assert_string_equal(events_text(&x, buf, sizeof(buf)),
                            "web1 -256 MiB: held at its minimum, pressure 40 %");
        x.kind = BALANCER_EVENT_CRASHED, x.bytes = 2 * GIB;
        assert_string_equal(events_text(&x, buf, sizeof(buf)),
                            "web1 crashed; its 2 GiB are free again");
        x.kind = BALANCER_EVENT_STARTED, x.bytes = GIB;
        assert_string_equal(events_text(&x, buf, sizeof(buf)), "web1 started with 1 GiB");
        x.kind = BALANCER_EVENT_REFUSED;
        snprintf(x.message, sizeof(x.message), "not enough memory");
        assert_string_equal(events_text(&x, buf, sizeof(buf)),
                            "web1 start refused: not enough memory");
        x.kind = BALANCER_EVENT_START_FAILED;
        assert_string_equal(events_text(&x, buf, sizeof(buf)),
                            "web1 could not start: not enough memory");
        x.kind = (enum balancer_event_kind)99;
        assert_string_equal(events_kind_name(x.kind), "unknown");
}

static void vm_counters_are_unknown_while_off(void **state)
{
        struct vm vm = test_vm("web1");
        struct counters_value v[COUNTERS_VM_N];

        vm.obs = (struct vm_observation){.alive = true,
                                         .assigned_bytes = 2 * GIB,
                                         .demand_known = true,
                                         .demand_bytes = GIB,
                                         .guest_visible_known = true,
                                         .guest_visible_bytes = 2 * GIB};
        vm.counters.added_bytes = GIB;
        vm.counters.add_operations = 3;
        vm.lent_bytes = 256 * MIB;
        vm_counters_pressure(&vm.counters, 50.0, 1000);
        counters_vm_read(&vm, v);
        assert_true(v[0].known && v[0].n == GIB);
        assert_true(v[2].known && v[2].n == 3);
        assert_true(v[4].known && v[4].n == 2 * GIB);
        assert_true(v[5].known && v[5].n == 2 * GIB);
        assert_true(v[6].known && v[6].percent == 50.0);
        assert_false(v[10].known); /* no MemAvailable reported */
        assert_true(v[11].known && v[11].n == 256 * MIB);
        vm.state = VM_OFF;
        counters_vm_read(&vm, v);
        assert_true(v[0].known && v[0].n == GIB); /* sums since the VM last started */
        assert_true(v[4].known && v[4].n == 0);
        assert_false(v[5].known);
        for (int i = 6; i <= 10; i++)
                assert_false(v[i].known);
        assert_true(v[11].known && v[11].n == 0); /* an off VM is lent nothing */
}

static void counter_tables_name_every_counter(void **state)
{
        for (size_t i = 0; i < COUNTERS_BALANCER_N; i++) {
                const struct counters_def *d = &counters_balancer_defs[i];
                assert_non_null(d->title);
                assert_non_null(d->help);
                assert_int_equal(d->total, strstr(d->metric, "_total") != NULL);
        }
        for (size_t i = 0; i < COUNTERS_VM_N; i++) {
                const struct counters_def *d = &counters_vm_defs[i];
                const char *suffix = d->unit == COUNTERS_BYTES     ? "_bytes"
                                     : d->unit == COUNTERS_PERCENT ? "_percent"
                                                                   : "_operations";
                size_t n = strlen(d->key), m = strlen(suffix);
                assert_true(n > m && strcmp(d->key + n - m, suffix) == 0);
                assert_int_equal(d->total, strstr(d->metric, "_total") != NULL);
        }
        assert_string_equal(counters_balancer_defs[3].title, "System Current Pressure");
        assert_string_equal(counters_vm_defs[5].key, "guest_visible_physical_memory_bytes");
        assert_string_equal(counters_vm_defs[11].key, "lent_memory_bytes");
}

static void label_values_are_escaped(void **state)
{
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        assert_non_null(f);
        metrics_write_label(f, "a\"b\\c\nd.e-f");
        fclose(f);
        assert_string_equal(text, "a\\\"b\\\\c\\nd.e-f");
        free(text);
}

static int parse(const char *text, bool remote, struct sockaddr_storage *ss)
{
        socklen_t len;
        char err[256] = "";
        int r = address_parse(text, remote, ss, &len, err, sizeof(err));

        if (r < 0)
                assert_true(err[0] != '\0');
        return r;
}

static void http_addresses(void **state)
{
        struct sockaddr_storage ss;
        const struct sockaddr_in *in = (const struct sockaddr_in *)&ss;
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&ss;

        assert_int_equal(parse("127.0.0.1:9100", false, &ss), 0);
        assert_int_equal(ss.ss_family, AF_INET);
        assert_int_equal(ntohs(in->sin_port), 9100);
        assert_int_equal(parse("localhost:0", false, &ss), 0);
        assert_int_equal(ntohl(in->sin_addr.s_addr), 0x7f000001);
        assert_int_equal(parse("127.1.2.3:80", false, &ss), 0);
        assert_int_equal(parse("[::1]:9100", false, &ss), 0);
        assert_int_equal(ss.ss_family, AF_INET6);
        assert_int_equal(ntohs(in6->sin6_port), 9100);

        /* beyond loopback only when the operator says so */
        assert_int_equal(parse("0.0.0.0:9100", false, &ss), -EINVAL);
        assert_int_equal(parse("*:9100", false, &ss), -EINVAL);
        assert_int_equal(parse("192.168.1.5:9100", false, &ss), -EINVAL);
        assert_int_equal(parse("[::]:9100", false, &ss), -EINVAL);
        assert_int_equal(parse("0.0.0.0:9100", true, &ss), 0);
        assert_int_equal(parse("*:9100", true, &ss), 0);
        assert_int_equal(ss.ss_family, AF_INET6);

        /* malformed */
        static const char *const bad[] = {
            "",
            "9100",
            ":9100",
            "127.0.0.1",
            "127.0.0.1:",
            "127.0.0.1:65536",
            "127.0.0.1:-1",
            "127.0.0.1:9x",
            "example.com:80",
            "[::1:80",
            "::1:80",
            "127.0.0.1:123456",
            "[]:80",
            "127.0.0.1 :80",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(parse(bad[i], true, &ss), -EINVAL);
        char url[ADDRESS_URL_MAX];
        assert_int_equal(parse("127.0.0.1:9100", false, &ss), 0);
        address_url(&ss, url, sizeof(url));
        assert_string_equal(url, "http://127.0.0.1:9100/");
        assert_int_equal(parse("[::1]:80", false, &ss), 0);
        address_url(&ss, url, sizeof(url));
        assert_string_equal(url, "http://[::1]:80/");
        assert_true(dconfig_http_wanted("127.0.0.1:1"));
        assert_false(dconfig_http_wanted(NULL));
        assert_false(dconfig_http_wanted(""));
        assert_false(dconfig_http_wanted("off"));
}

static int parse_request(const char *line, struct control_request *req)
{
        char err[CONTROL_ERROR_MAX];

        return control_request_parse(line, strlen(line), req, err, sizeof(err));
}

static void counters_and_events_requests(void **state)
{
        struct control_request req;
        char *line;

        assert_int_equal(parse_request("{\"version\":1,\"command\":\"counters\"}", &req), 0);
        assert_int_equal(req.command, CONTROL_COUNTERS);
        assert_string_equal(req.name, "");
        assert_int_equal(
            parse_request("{\"version\":1,\"command\":\"counters\",\"name\":\"web1\"}", &req), 0);
        assert_string_equal(req.name, "web1");
        line = control_request_format(&req);
        assert_string_equal(line, "{\"version\":1,\"command\":\"counters\",\"name\":\"web1\"}");
        free(line);
        assert_int_equal(
            parse_request("{\"version\":1,\"command\":\"counters\",\"name\":\"-x\"}", &req),
            -EINVAL);
        assert_int_equal(
            parse_request("{\"version\":1,\"command\":\"counters\",\"since\":1}", &req), -EINVAL);

        assert_int_equal(parse_request("{\"version\":1,\"command\":\"events\",\"since\":42}", &req),
                         0);
        assert_int_equal(req.command, CONTROL_EVENTS);
        assert_true(req.since == 42);
        line = control_request_format(&req);
        assert_string_equal(line, "{\"version\":1,\"command\":\"events\",\"since\":42}");
        free(line);
        static const char *const bad[] = {
            "{\"version\":1,\"command\":\"events\",\"since\":-1}",
            "{\"version\":1,\"command\":\"events\",\"since\":1.5}",
            "{\"version\":1,\"command\":\"events\",\"since\":\"7\"}",
            "{\"version\":1,\"command\":\"events\",\"name\":\"web1\"}",
            "{\"version\":1,\"command\":\"list\",\"since\":1}",
            "{\"version\":1,\"command\":\"list\",\"name\":\"web1\"}",
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(parse_request(bad[i], &req), -EINVAL);
        assert_false(control_command_info(CONTROL_COUNTERS)->changes);
        assert_false(control_command_info(CONTROL_EVENTS)->changes);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(events_keep_order_and_say_what_was_dropped),
            cmocka_unit_test(event_json_has_the_details),
            cmocka_unit_test(event_messages_cut_stay_utf8),
            cmocka_unit_test(event_texts),
            cmocka_unit_test(vm_counters_are_unknown_while_off),
            cmocka_unit_test(counter_tables_name_every_counter),
            cmocka_unit_test(label_values_are_escaped),
            cmocka_unit_test(http_addresses),
            cmocka_unit_test(counters_and_events_requests),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
