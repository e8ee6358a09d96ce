/*
 * Tests for agent_wire: the protocol's words are described once, and both
 * ends use them. The tables are consistent (capability bits by row, no name
 * twice), and what the guest agent writes (guest/agent/proto.c, compiled in
 * here) the host's parser (lib/agent.c) reads back whole: every key known,
 * every value in place, every capability and cause recognised. A key renamed
 * on one side only fails here. The other way, the host's hello is read by the
 * agent's parser within the length it is given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "agent.h"
#include "proto.h"

static void tables_are_consistent(void **state)
{
        for (unsigned i = 0; i < AGENT_N_CAPS; i++) {
                assert_int_equal(agent_caps_table[i].cap, 1u << i);
                for (unsigned j = 0; j < i; j++)
                        assert_true(strcmp(agent_caps_table[i].key, agent_caps_table[j].key) != 0);
        }
        for (unsigned i = 0; i < AGENT_R_N_KEYS; i++) {
                const struct agent_report_key_desc *k = &agent_report_keys[i];
                assert_non_null(k->key);
                assert_true(k->max > 0);
                assert_false(k->required && k->have); /* a required key is in no group */
                assert_true(strcmp(k->key, AGENT_CAUSE_KEY) != 0);
                for (unsigned j = 0; j < i; j++)
                        assert_true(strcmp(k->key, agent_report_keys[j].key) != 0);
        }
        for (unsigned i = 0; i < AGENT_HELLO_N_KEYS; i++) {
                assert_non_null(agent_hello_keys[i].key);
                for (unsigned j = 0; j < AGENT_N_CAPS; j++)
                        assert_true(strcmp(agent_hello_keys[i].key, agent_caps_table[j].key) != 0);
        }
        for (unsigned c = 0; c < AGENT_N_CAUSES; c++)
                assert_string_equal(agent_cause_name((enum agent_cause)c), agent_cause_names[c]);
}

static struct agent *connected(void)
{
        struct agent *a;
        char out[AGENT_LINE_MAX];

        assert_int_equal(agent_new(NULL, &a), 0);
        agent_connected(a, 1);
        assert_true(agent_output(a, 1, out, sizeof(out)) > 0);
        return a;
}

/* The guest's hello, every capability on and then off, as the host reads it. */
static void the_guests_hello_is_read_whole(void **state)
{
        for (unsigned caps = 0; caps <= (1u << AGENT_N_CAPS) - 1;
             caps += (1u << AGENT_N_CAPS) - 1) {
                struct proto_offer o = {.min = 1,
                                        .max = 1,
                                        .version = 1,
                                        .interval_ms = 1000,
                                        .caps = caps,
                                        .page_size = 16384,
                                        .software = "9.8.7"};
                char line[AGENT_LINE_MAX];
                size_t n = proto_hello(&o, line, sizeof(line));
                struct agent *a = connected();

                assert_true(n > 0);
                unsigned ev = agent_feed(a, line, n, 2);
                assert_true(ev & AGENT_EV_READY);
                assert_int_equal(agent_state(a), AGENT_READY);
                assert_int_equal(agent_caps(a), caps);
                assert_string_equal(agent_software(a), "9.8.7");
                assert_int_equal(agent_counters(a)->unknown_keys, 0);
                agent_free(a);
        }
}

/* A sample with every group present and distinct values: each lands in its field. */
static void the_guests_report_is_read_whole(void **state)
{
        struct sample s = {
            .time_ms = 5000,
            .have = AGENT_HAVE_AVAILABLE | AGENT_HAVE_PSI | AGENT_HAVE_PSI_FULL |
                    AGENT_HAVE_REFAULTS | AGENT_HAVE_BALLOON | AGENT_HAVE_SELF |
                    AGENT_HAVE_RECLAIM | AGENT_HAVE_SWAP,
            .mem_total = 1000 << 20,
            .mem_available = 500 << 20,
            .mem_free = 400 << 20,
            .cached = 300 << 20,
            .active_file = 200 << 20,
            .committed = 1234567,
            .swap_used = 7 << 20,
            .swap_free = 22ull << 30,
            .balloon = 100 << 20,
            .balloon_in_total = true,
            .psi = {.some_avg10_bp = 11,
                    .some_total_us = 12,
                    .have_full = true,
                    .full_avg10_bp = 13,
                    .full_total_us = 14},
            .pgmajfault = 15,
            .refaults = 16,
            .oom_kill = 17,
            .self_rss = 18 << 20,
            .self_cpu_us = 19,
            .file_reclaimed = 21,
        };

        for (unsigned c = 0; c < AGENT_N_CAUSES; c++) {
                struct proto_offer o = {
                    .min = 1, .max = 1, .version = 1, .page_size = 4096, .software = "x"};
                char line[AGENT_LINE_MAX];
                struct agent *a = connected();
                size_t n = proto_hello(&o, line, sizeof(line));

                assert_true(agent_feed(a, line, n, 2) & AGENT_EV_READY);
                n = proto_report(&s, 42, (enum agent_cause)c, 20, line, sizeof(line));
                assert_true(n > 0);
                unsigned ev = agent_feed(a, line, n, 3);
                if (!(ev & AGENT_EV_REPORT))
                        fail_msg("%s: %s", line, agent_last_error(a));
                assert_int_equal(!!(ev & AGENT_EV_URGENT), c == AGENT_CAUSE_PSI);
                assert_int_equal(agent_counters(a)->unknown_keys, 0);
                const struct agent_report *r = agent_last_report(a);
                assert_int_equal(r->cause, c);
                assert_int_equal(r->have, s.have);
                assert_int_equal(r->seq, 42);
                assert_int_equal(r->time_ms, s.time_ms);
                assert_int_equal(r->mem_total_bytes, s.mem_total);
                assert_int_equal(r->mem_available_bytes, s.mem_available);
                assert_int_equal(r->mem_free_bytes, s.mem_free);
                assert_int_equal(r->cached_bytes, s.cached);
                assert_int_equal(r->active_file_bytes, s.active_file);
                assert_int_equal(r->committed_bytes, s.committed);
                assert_int_equal(r->swap_used_bytes, s.swap_used);
                assert_int_equal(r->balloon_bytes, s.balloon);
                assert_int_equal(r->balloon_in_total, 1);
                assert_int_equal(r->psi_some_avg10_bp, 11);
                assert_int_equal(r->psi_some_total_us, 12);
                assert_int_equal(r->psi_full_avg10_bp, 13);
                assert_int_equal(r->psi_full_total_us, 14);
                assert_int_equal(r->pgmajfault, 15);
                assert_int_equal(r->refaults, 16);
                assert_int_equal(r->oom_kill, 17);
                assert_int_equal(r->onlined, 20);
                assert_int_equal(r->self_rss_bytes, s.self_rss);
                assert_int_equal(r->self_cpu_us, 19);
                assert_int_equal(r->file_reclaimed, 21);
                assert_int_equal(r->swap_free_bytes, s.swap_free);
                agent_free(a);
        }
}

/* Every key at the largest value the host accepts still fits one line, and is read back. */
static void the_longest_report_fits_a_line(void **state)
{
        const uint64_t bytes = AGENT_BYTES_MAX, count = AGENT_COUNT_MAX;
        struct sample s = {
            .time_ms = AGENT_TIME_MAX,
            .have = AGENT_HAVE_AVAILABLE | AGENT_HAVE_PSI | AGENT_HAVE_PSI_FULL |
                    AGENT_HAVE_REFAULTS | AGENT_HAVE_BALLOON | AGENT_HAVE_SELF |
                    AGENT_HAVE_ABSORBER | AGENT_HAVE_RECLAIM | AGENT_HAVE_SWAP,
            .mem_total = bytes,
            .mem_available = bytes,
            .mem_free = bytes,
            .cached = bytes,
            .active_file = bytes,
            .committed = count,
            .swap_used = bytes,
            .swap_free = bytes,
            .balloon = bytes,
            .balloon_in_total = true,
            .psi = {.some_avg10_bp = 10000,
                    .some_total_us = count,
                    .have_full = true,
                    .full_avg10_bp = 10000,
                    .full_total_us = count},
            .pgmajfault = count,
            .refaults = count,
            .oom_kill = count,
            .self_rss = bytes,
            .self_cpu_us = count,
            .absorber_stored = bytes,
            .absorber_ram = bytes,
            .absorber_capacity = bytes,
            .file_reclaimed = count,
        };
        char line[AGENT_LINE_MAX];
        size_t n = proto_report(&s, count, AGENT_CAUSE_HELLO, count, line, sizeof(line));

        assert_true(n > 0);
        assert_true(n <= AGENT_LINE_MAX);
        assert_non_null(strstr(line, " file_reclaimed="));
        assert_non_null(strstr(line, " swap_free_bytes="));
}

/*
 * A guest whose /proc/meminfo has no SwapFree sends no swap_free_bytes, and the host
 * reads its swap as unknown, as from an agent that predates the key.
 */
static void a_report_without_swap_free_leaves_swap_unknown(void **state)
{
        struct sample s = {.time_ms = 5000,
                           .have = AGENT_HAVE_AVAILABLE,
                           .mem_total = 1000 << 20,
                           .mem_available = 500 << 20,
                           .mem_free = 400 << 20,
                           .swap_free = 3 << 20}; /* not sent: not in have */
        struct proto_offer o = {
            .min = 1, .max = 1, .version = 1, .page_size = 4096, .software = "x"};
        char line[AGENT_LINE_MAX];
        struct agent_estimate e;
        struct agent *a = connected();
        size_t n = proto_hello(&o, line, sizeof(line));

        assert_true(agent_feed(a, line, n, 2) & AGENT_EV_READY);
        n = proto_report(&s, 1, AGENT_CAUSE_TICK, 0, line, sizeof(line));
        assert_null(strstr(line, "swap_free_bytes"));
        assert_true(agent_feed(a, line, n, 3) & AGENT_EV_REPORT);
        assert_int_equal(agent_estimate(a, 3, &e), 0);
        assert_false(e.swap_known);
        agent_free(a);
}

/*
 * The host's hello is read within the length the port gives: the agent's line buffer is not
 * NUL-terminated, and bytes a longer line left after it (here the "0" of interval_ms=20000)
 * are not part of it.
 */
static void the_hosts_hello_is_read_within_its_length(void **state)
{
        static const char longer[] = "DMG1 hello min=1 max=1 interval_ms=20000";
        struct proto_host_hello h;
        size_t n = sizeof(longer) - 2; /* "... interval_ms=2000", then a stale "0" */

        assert_int_equal(proto_parse_host(longer, n, &h), 1);
        assert_true(h.has_interval);
        assert_int_equal(h.interval_ms, 2000);
        assert_int_equal(h.min, 1);
        assert_int_equal(h.max, 1);
        n = strlen("DMG1 hello min=1 max=1"); /* then " interval_ms=...": another key */
        assert_int_equal(proto_parse_host(longer, n, &h), 1);
        assert_false(h.has_interval);
        /* max=1 with a stale digit after it would read as 10: still 1 */
        static const char versions[] = "DMG1 hello min=1 max=10";
        assert_int_equal(proto_parse_host(versions, sizeof(versions) - 2, &h), 1);
        assert_int_equal(h.max, 1);
        /* and the checks within the length still hold */
        static const char bad[][64] = {
            "DMG1 hello min=1 max=1 interval_ms=", "DMG1 hello min=1 max=x",
            "DMG1 hello min=1 max=1001", "DMG1 hello min=2 max=1",
            "DMG1 hello min=1 max=1 interval_ms=99999999999999999999"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_true(proto_parse_host(bad[i], strlen(bad[i]), &h) < 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(tables_are_consistent),
            cmocka_unit_test(the_guests_hello_is_read_whole),
            cmocka_unit_test(the_guests_report_is_read_whole),
            cmocka_unit_test(the_longest_report_fits_a_line),
            cmocka_unit_test(a_report_without_swap_free_leaves_swap_unknown),
            cmocka_unit_test(the_hosts_hello_is_read_within_its_length),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
