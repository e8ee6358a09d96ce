/*
 * Tests for agent: the host side of the guest agent protocol (framing,
 * handshake, report validation, rate limit) and the demand/stall estimate.
 */
#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "agent.h"
#include "units.h"

#define GUEST_HELLO                                                                                \
        "DMG1 hello min=1 max=1 version=1 interval_ms=1000 agent=0.1.0 "                           \
        "page_size=4096 balloon=1 virtio_mem=1 psi=1 psi_trigger=1 online_movable=0\n"

static unsigned feed(struct agent *a, const char *s, uint64_t now)
{
        return agent_feed(a, s, strlen(s), now);
}

/* A report line: seq, time, MemTotal/MemAvailable in MiB, PSI some total (us), extra fields. */
static char *report(char *buf, size_t len, uint64_t seq, uint64_t time_ms, uint64_t total_mib,
                    uint64_t avail_mib, uint64_t some_us, const char *extra)
{
        snprintf(buf, len,
                 "DMG1 report seq=%" PRIu64 " time_ms=%" PRIu64
                 " cause=tick mem_total_bytes=%" PRIu64 " mem_free_bytes=%" PRIu64
                 " mem_available_bytes=%" PRIu64 " cached_bytes=0 committed_bytes=%" PRIu64
                 " psi_some_avg10_bp=0 psi_some_total_us=%" PRIu64 " pgmajfault=%" PRIu64
                 " refaults=0%s%s\n",
                 seq, time_ms, total_mib * MIB, avail_mib * MIB / 2, avail_mib * MIB,
                 2 * total_mib * MIB, some_us, seq, extra ? " " : "", extra ? extra : "");
        return buf;
}

/* A report with 256 MiB used, 200 MiB of active file cache and a refault count. */
static void refault_report(char *buf, size_t len, int seq, int time_ms, int refaults)
{
        snprintf(buf, len,
                 "DMG1 report seq=%d time_ms=%d mem_total_bytes=1073741824 mem_free_bytes=0 "
                 "mem_available_bytes=805306368 active_file_bytes=209715200 refaults=%d\n",
                 seq, time_ms, refaults);
}

/* A connected, handshaken agent with default options. */
static struct agent *ready_agent(uint64_t now)
{
        struct agent *a;

        assert_int_equal(agent_new(NULL, &a), 0);
        agent_connected(a, now);
        assert_true(feed(a, GUEST_HELLO, now) & AGENT_EV_READY);
        assert_int_equal(agent_state(a), AGENT_READY);
        return a;
}

static void options_are_checked(void **state)
{
        struct agent_options o;
        struct agent *a = NULL;

        agent_options_default(&o);
        assert_int_equal(o.interval_ms, 1000);
        assert_int_equal(o.rate_per_s, 20);
        assert_int_equal(o.burst, 40);
        o.interval_ms = 50;
        assert_int_equal(agent_new(&o, &a), -EINVAL);
        agent_options_default(&o);
        o.proto_min = 3, o.proto_max = 2;
        assert_int_equal(agent_new(&o, &a), -EINVAL);
        agent_options_default(&o);
        o.limit_bytes = 17 * TIB;
        assert_int_equal(agent_new(&o, &a), -EINVAL);
        assert_null(a);
        agent_free(NULL);
}

static void handshake_reports_version_and_caps(void **state)
{
        struct agent *a;
        char out[AGENT_LINE_MAX], caps[128];
        size_t n;

        assert_int_equal(agent_new(NULL, &a), 0);
        assert_int_equal(agent_state(a), AGENT_DISCONNECTED);
        assert_int_equal(agent_output(a, 0, out, sizeof(out)), 0);
        agent_connected(a, 1000);
        n = agent_output(a, 1000, out, sizeof(out));
        assert_string_equal(out, "DMG1 hello min=1 max=1 interval_ms=1000\n");
        assert_int_equal(n, strlen(out));
        assert_int_equal(agent_output(a, 1001, out, sizeof(out)), 0); /* sent once */
        assert_int_equal(agent_state(a), AGENT_WAITING);
        unsigned ev = feed(a, GUEST_HELLO, 1100);
        assert_true(ev & AGENT_EV_READY);
        assert_false(ev & AGENT_EV_REFUSED);
        assert_int_equal(agent_version(a), 1);
        assert_string_equal(agent_software(a), "0.1.0");
        assert_string_equal(agent_caps_format(agent_caps(a), caps, sizeof(caps)),
                            "balloon,virtio-mem,psi,psi-trigger");
        assert_string_equal(agent_caps_format(0, caps, sizeof(caps)), "none");
        assert_int_equal(agent_counters(a)->handshakes, 1);
        assert_string_equal(agent_refusal(a), "");
        /* the same answer again (to a re-sent hello) is no news; other caps are */
        ev = feed(a, GUEST_HELLO, 1200);
        assert_false(ev & AGENT_EV_READY);
        assert_int_equal(agent_counters(a)->handshakes, 2);
        ev = feed(a, "DMG1 hello min=1 max=1 version=1 agent=0.1.0 psi=1\n", 1300);
        assert_true(ev & AGENT_EV_READY);
        assert_int_equal(agent_caps(a), AGENT_CAP_PSI);
        agent_free(a);
}

static void announcement_is_answered(void **state)
{
        struct agent *a;
        char out[AGENT_LINE_MAX];

        assert_int_equal(agent_new(NULL, &a), 0);
        agent_connected(a, 0);
        assert_true(agent_output(a, 0, out, sizeof(out)) > 0);
        /* the agent (re)starts and announces itself: the host says hello again */
        unsigned ev = feed(a, "DMG1 hello min=1 max=4 agent=x psi=1\n", 10);
        assert_true(ev & AGENT_EV_OUTPUT);
        assert_false(ev & AGENT_EV_READY);
        assert_true(agent_output(a, 10, out, sizeof(out)) > 0);
        assert_string_equal(out, "DMG1 hello min=1 max=1 interval_ms=1000\n");
        assert_true(feed(a, "DMG1 hello min=1 max=4 version=1 psi=1\n", 20) & AGENT_EV_READY);
        assert_int_equal(agent_caps(a), AGENT_CAP_PSI);
        /* too small a buffer: nothing written, the hello stays due */
        feed(a, "DMG1 hello min=1 max=1\n", 30);
        assert_int_equal(agent_output(a, 30, out, 8), 0);
        assert_true(agent_output(a, 30, out, sizeof(out)) > 0);
        agent_free(a);
}

static void incompatible_agent_is_refused(void **state)
{
        struct agent *a;
        char out[AGENT_LINE_MAX], line[AGENT_LINE_MAX];

        assert_int_equal(agent_new(NULL, &a), 0);
        agent_connected(a, 0);
        agent_output(a, 0, out, sizeof(out));
        unsigned ev = feed(a, "DMG1 hello min=2 max=3\n", 10);
        assert_true(ev & AGENT_EV_REFUSED);
        assert_int_equal(agent_state(a), AGENT_REFUSED);
        assert_non_null(strstr(agent_refusal(a), "speaks protocol versions 2-3, the host 1-1"));
        /* it is told our versions once so that it can log too, then nothing more */
        assert_true(agent_output(a, 10, out, sizeof(out)) > 0);
        assert_int_equal(agent_output(a, 100000, out, sizeof(out)), 0);
        ev = feed(a, report(line, sizeof(line), 1, 10, 512, 256, 0, NULL), 20);
        assert_int_equal(ev, 0);
        assert_int_equal(agent_counters(a)->out_of_state, 1);
        assert_int_equal(agent_estimate(a, 20, &(struct agent_estimate){0}), -ENODATA);
        /* a hello within a minute is not heard; a compatible one later is */
        feed(a, "DMG1 hello min=1 max=1 version=1\n", 30000);
        assert_int_equal(agent_state(a), AGENT_REFUSED);
        assert_true(feed(a, "DMG1 hello min=1 max=1 version=1\n", 70000) & AGENT_EV_READY);
        agent_free(a);
}

static void agent_refusal_and_wrong_choice(void **state)
{
        struct agent_options o;
        struct agent *a;

        assert_int_equal(agent_new(NULL, &a), 0);
        agent_connected(a, 0);
        /*
         * "Incompatible" from an agent whose versions meet ours is an answer meant for an
         * earlier host, left in the port: not believed; the answer to our hello follows.
         */
        assert_int_equal(feed(a, "DMG1 hello min=1 max=1 version=0\n", 1) & AGENT_EV_REFUSED, 0);
        assert_int_equal(agent_state(a), AGENT_WAITING);
        assert_int_equal(agent_counters(a)->out_of_state, 1);
        assert_true(feed(a, "DMG1 hello min=1 max=1 version=1\n", 2) & AGENT_EV_READY);
        assert_true(feed(a, "DMG1 hello min=2 max=3\n", 3) & AGENT_EV_REFUSED);
        assert_non_null(strstr(agent_refusal(a), "speaks protocol versions 2-3, the host 1-1"));
        agent_connected(a, 4); /* a new connection starts over */
        assert_int_equal(agent_state(a), AGENT_WAITING);
        assert_string_equal(agent_refusal(a), "");
        agent_free(a);

        agent_options_default(&o);
        o.proto_min = 1, o.proto_max = 3;
        assert_int_equal(agent_new(&o, &a), 0);
        agent_connected(a, 0);
        /* both speak 1..2: 2 is due, an agent choosing 1 is refused */
        assert_true(feed(a, "DMG1 hello min=1 max=2 version=1\n", 1) & AGENT_EV_REFUSED);
        assert_non_null(strstr(agent_refusal(a), "chose protocol version 1 where 2 was due"));
        agent_connected(a, 2);
        assert_true(feed(a, "DMG1 hello min=1 max=2 version=2\n", 3) & AGENT_EV_READY);
        assert_int_equal(agent_version(a), 2);
        agent_free(a);
}

static void bad_hellos_are_rejected(void **state)
{
        static const char *const bad[] = {
            "DMG1 hello max=1 version=1\n",
            "DMG1 hello min=2 max=1\n",
            "DMG1 hello min=0 max=1\n",
            "DMG1 hello min=1 max=1001\n",
            "DMG1 hello min=1 max=1 min=1\n",
            "DMG1 hello min=1 max=1 psi=2\n",
            "DMG1 hello min=1 max=1 page_size=4097\n",
            "DMG1 hello min=1 max=1 page_size=2048\n",
            "DMG1 hello min=1 max=1 agent=a agent=b\n",
        };
        struct agent *a;

        assert_int_equal(agent_new(NULL, &a), 0);
        agent_connected(a, 0);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                unsigned ev = feed(a, bad[i], 1);
                if (!(ev & AGENT_EV_ERROR))
                        print_message("# accepted: %s", bad[i]);
                assert_true(ev & AGENT_EV_ERROR);
                assert_int_equal(agent_state(a), AGENT_WAITING);
        }
        assert_int_equal(agent_counters(a)->rejected, sizeof(bad) / sizeof(bad[0]));
        assert_true(strlen(agent_last_error(a)) > 0);
        agent_free(a);
}

static void report_is_parsed_and_estimated(void **state)
{
        struct agent *a = ready_agent(0);
        struct agent_estimate e;
        char line[AGENT_LINE_MAX];

        unsigned ev = feed(a, report(line, sizeof(line), 1, 5000, 1024, 768, 1000000, NULL), 100);
        assert_true(ev & AGENT_EV_REPORT);
        assert_false(ev & AGENT_EV_URGENT);
        const struct agent_report *r = agent_last_report(a);
        assert_non_null(r);
        assert_int_equal(r->seq, 1);
        assert_int_equal(r->mem_total_bytes, GIB);
        assert_int_equal(r->mem_available_bytes, 768 * MIB);
        assert_int_equal(r->committed_bytes, 2 * GIB);
        assert_int_equal(r->cause, AGENT_CAUSE_TICK);
        assert_int_equal(r->received_ms, 100);
        assert_int_equal(agent_estimate(a, 100, &e), 0);
        assert_true(e.fresh && e.demand_known && e.visible_known && e.available_known);
        assert_int_equal(e.demand_bytes, 256 * MIB);
        assert_int_equal(e.visible_bytes, GIB);
        assert_false(e.stall_known); /* one report: no interval yet */
        /* 250 ms of stall in a 1 s interval, 1 major fault */
        feed(a, report(line, sizeof(line), 2, 6000, 1024, 512, 1250000, NULL), 1100);
        assert_int_equal(agent_estimate(a, 1100, &e), 0);
        assert_true(e.stall_known);
        assert_float_equal(e.psi_fraction, 0.25, 1e-9);
        /* no refault, nothing pushed to swap: cache turned over (test_agent_estimate.c) */
        assert_true(e.stall_turnover);
        assert_float_equal(e.stall_fraction, 0.0, 1e-9);
        assert_true(e.rates_known);
        assert_float_equal(e.majfaults_per_s, 1.0, 1e-9);
        assert_int_equal(e.demand_bytes, 512 * MIB);
        /* stale after three intervals */
        assert_int_equal(agent_estimate(a, 1100 + 3000, &e), 0);
        assert_true(e.fresh);
        assert_int_equal(agent_estimate(a, 1100 + 3001, &e), 0);
        assert_false(e.fresh || e.demand_known || e.stall_known || e.visible_known);
        assert_int_equal(agent_counters(a)->reports, 2);
        agent_free(a);
}

/*
 * swap_free_bytes is the guest's swap room, up to 16 TiB, its own figure (not held to
 * MemTotal). An agent that leaves it out (one that predates it) has swap unknown; an
 * estimate gone stale knows none either.
 */
static void swap_free_is_known_only_when_reported(void **state)
{
        struct agent *a = ready_agent(0);
        struct agent_estimate e;
        char line[AGENT_LINE_MAX];

        assert_true(feed(a, report(line, sizeof(line), 1, 1000, 1024, 512, 0, NULL), 10) &
                    AGENT_EV_REPORT);
        assert_int_equal(agent_estimate(a, 10, &e), 0);
        assert_false(e.swap_known);
        assert_int_equal(e.swap_free_bytes, 0);
        assert_false(agent_last_report(a)->have & AGENT_HAVE_SWAP);

        assert_true(feed(a,
                         report(line, sizeof(line), 2, 2000, 1024, 512, 0,
                                "swap_free_bytes=17592186044416"),
                         1010) &
                    AGENT_EV_REPORT);
        assert_int_equal(agent_estimate(a, 1010, &e), 0);
        assert_true(e.swap_known);
        assert_int_equal(e.swap_free_bytes, AGENT_BYTES_MAX);

        assert_true(
            feed(a, report(line, sizeof(line), 3, 3000, 1024, 512, 0, "swap_free_bytes=0"), 2010) &
            AGENT_EV_REPORT);
        assert_int_equal(agent_estimate(a, 2010, &e), 0);
        assert_true(e.swap_known);
        assert_int_equal(e.swap_free_bytes, 0);

        /* the next report leaves it out: unknown again, not the last figure */
        assert_true(feed(a, report(line, sizeof(line), 4, 4000, 1024, 512, 0, NULL), 3010) &
                    AGENT_EV_REPORT);
        assert_int_equal(agent_estimate(a, 3010, &e), 0);
        assert_false(e.swap_known);

        feed(a, report(line, sizeof(line), 5, 5000, 1024, 512, 0, "swap_free_bytes=1048576"), 4010);
        assert_int_equal(agent_estimate(a, 4010 + 3001, &e), 0);
        assert_false(e.fresh || e.swap_known);
        assert_int_equal(agent_counters(a)->unknown_keys, 0);
        agent_free(a);
}

static void psi_report_is_urgent(void **state)
{
        struct agent *a = ready_agent(0);

        unsigned ev = feed(a,
                           "DMG1 report seq=1 time_ms=1 cause=psi mem_total_bytes=1073741824 "
                           "mem_free_bytes=0\n",
                           1);
        assert_true(ev & AGENT_EV_REPORT);
        assert_true(ev & AGENT_EV_URGENT);
        assert_int_equal(agent_counters(a)->urgent, 1);
        /* a cause this side does not know is an ordinary report */
        ev = feed(a,
                  "DMG1 report seq=2 time_ms=2 cause=future mem_total_bytes=1073741824 "
                  "mem_free_bytes=0\n",
                  2);
        assert_true(ev & AGENT_EV_REPORT);
        assert_false(ev & AGENT_EV_URGENT);
        /* no MemAvailable: no demand, but what the guest sees is known */
        struct agent_estimate e;
        assert_int_equal(agent_estimate(a, 2, &e), 0);
        assert_false(e.demand_known);
        assert_true(e.visible_known);
        /* the estimate counts urgent reports: one, although the latest was ordinary */
        assert_int_equal(e.urgent_reports, 1);
        /* an urgent report and an ordinary one in the same read still count */
        ev = feed(a,
                  "DMG1 report seq=3 time_ms=3 cause=psi mem_total_bytes=1073741824 "
                  "mem_free_bytes=0\n"
                  "DMG1 report seq=4 time_ms=4 cause=tick mem_total_bytes=1073741824 "
                  "mem_free_bytes=0\n",
                  4);
        assert_true(ev & AGENT_EV_URGENT);
        assert_int_equal(agent_estimate(a, 4, &e), 0);
        assert_int_equal(e.urgent_reports, 2);
        agent_free(a);
}

static void partial_and_batched_lines(void **state)
{
        struct agent *one = ready_agent(0), *all = ready_agent(0);
        char text[4 * AGENT_LINE_MAX], line[AGENT_LINE_MAX];
        size_t len = 0;

        for (uint64_t s = 1; s <= 3; s++) {
                report(line, sizeof(line), s, s * 1000, 1024, 512, s * 1000, NULL);
                memcpy(text + len, line, strlen(line));
                len += strlen(line);
        }
        for (size_t i = 0; i < len; i++)
                agent_feed(one, text + i, 1, 10);
        assert_true(agent_feed(all, text, len, 10) & AGENT_EV_REPORT);
        assert_int_equal(agent_counters(one)->reports, 3);
        assert_int_equal(agent_counters(all)->reports, 3);
        assert_int_equal(agent_last_report(one)->seq, 3);
        assert_memory_equal(agent_last_report(one), agent_last_report(all),
                            sizeof(struct agent_report));
        agent_free(one);
        agent_free(all);
}

static void long_lines_are_discarded(void **state)
{
        struct agent *a = ready_agent(0);
        char big[3 * AGENT_LINE_MAX], line[AGENT_LINE_MAX];
        size_t base;

        /* exactly AGENT_LINE_MAX with the newline: accepted (unknown key padding) */
        report(line, sizeof(line), 1, 1000, 1024, 512, 0, NULL);
        base = strlen(line) - 1;
        memcpy(big, line, base);
        size_t n = base, room = AGENT_LINE_MAX - 1 - base;
        while (room > 0) { /* unknown keys " p=yyy" of at most 3 + AGENT_WORD_MAX bytes */
                size_t most = 3 + AGENT_WORD_MAX;
                size_t chunk = room <= most ? room : room - most >= 4 ? most : room - 4;

                assert_true(chunk >= 4);
                memcpy(big + n, " p=", 3);
                memset(big + n + 3, 'y', chunk - 3);
                n += chunk;
                room -= chunk;
        }
        big[n++] = '\n';
        assert_int_equal(n, AGENT_LINE_MAX);
        unsigned ev = agent_feed(a, big, n, 10);
        if (!(ev & AGENT_EV_REPORT))
                print_message("# %s\n", agent_last_error(a));
        assert_true(ev & AGENT_EV_REPORT);

        /* one byte more, in two pieces: discarded up to its newline, counted once */
        memset(big, 'a', 2 * AGENT_LINE_MAX);
        assert_int_equal(agent_feed(a, big, 1500, 20), 0);
        big[0] = '\n';
        report(big + 1, sizeof(big) - 1, 2, 2000, 1024, 512, 0, NULL);
        memset(line, 'a', 600);
        assert_int_equal(agent_feed(a, line, 600, 20), 0);
        ev = agent_feed(a, big, 1 + strlen(big + 1), 20);
        assert_true(ev & AGENT_EV_REPORT);
        assert_int_equal(agent_last_report(a)->seq, 2);
        assert_int_equal(agent_counters(a)->too_long, 1);
        agent_free(a);
}

static void malformed_lines_are_counted(void **state)
{
        static const char *const bad[] = {
            "\n",
            "DMG2 report seq=1\n",
            "dmg1 report seq=1\n",
            "DMG1\n",
            "DMG1 \n",
            "DMG1 report  seq=1\n",
            "DMG1 report seq=1 \n",
            " DMG1 report seq=1\n",
            "DMG1 Report seq=1\n",
            "DMG1 report seq=1\r\n",
            "DMG1 report seq\n",
            "DMG1 report =1\n",
            "DMG1 report seq=\n",
            "DMG1 report seq=1=2\n",
            "DMG1 report seq=%41\n",
            "DMG1 report se\xc3\xa9=1\n",
            ("DMG1 report seq=1 "
             "key=xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"),
        };
        struct agent *a = ready_agent(0);

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                unsigned ev = feed(a, bad[i], 1 + i * 100);
                if (!(ev & AGENT_EV_ERROR))
                        print_message("# accepted: %s", bad[i]);
                assert_true(ev & AGENT_EV_ERROR);
        }
        /* an embedded NUL is a character outside the set too */
        assert_true(agent_feed(a, "DMG1 report s\0q=1\n", 18, 5000) & AGENT_EV_ERROR);
        assert_int_equal(agent_counters(a)->malformed, sizeof(bad) / sizeof(bad[0]) + 1);
        assert_null(agent_last_report(a));
        agent_free(a);
}

static void unknown_types_and_keys_are_ignored(void **state)
{
        struct agent *a = ready_agent(0);
        char line[AGENT_LINE_MAX];

        assert_int_equal(feed(a, "DMG1 gossip weather=fine\n", 1), 0);
        unsigned ev =
            feed(a, report(line, sizeof(line), 1, 1, 1024, 512, 0, "future_thing=7 x=y"), 2);
        assert_true(ev & AGENT_EV_REPORT);
        assert_int_equal(agent_counters(a)->unknown_types, 1);
        assert_int_equal(agent_counters(a)->unknown_keys, 2);
        agent_free(a);
}

static void out_of_range_reports_are_rejected(void **state)
{
        static const char *const extra[] = {
            "balloon_bytes=1 balloon_in_total=2",
            "balloon_bytes=2147483648 balloon_in_total=1", /* above MemTotal */
            "balloon_bytes=1",                             /* group incomplete */
            "psi_full_avg10_bp=10001 psi_full_total_us=0",
            "psi_full_avg10_bp=1",
            "cached_bytes=5",                      /* repeated */
            "active_file_bytes=1073741825",        /* above MemTotal */
            "swap_used_bytes=17592186044417",      /* above 16 TiB */
            "swap_free_bytes=17592186044417",      /* above 16 TiB */
            "swap_free_bytes=1 swap_free_bytes=1", /* repeated */
            "swap_free_bytes=12k",                 /* not a number */
            "oom_kill=99999999999999999999",       /* overflow */
            "oom_kill=01",                         /* leading zero */
            "pgmajfault=-1",                       /* sign */
            "self_rss_bytes=1",                    /* group incomplete */
        };
        struct agent *a = ready_agent(0);
        char line[AGENT_LINE_MAX];
        uint64_t t = 1;

        for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) {
                unsigned ev =
                    feed(a, report(line, sizeof(line), 1, 1, 1024, 512, 0, extra[i]), t += 100);
                if (!(ev & AGENT_EV_ERROR))
                        print_message("# accepted: %s\n", extra[i]);
                assert_true(ev & AGENT_EV_ERROR);
        }
        /* MemAvailable above MemTotal, MemTotal above 16 TiB or below 1 MiB, no seq */
        assert_true(feed(a, report(line, sizeof(line), 1, 1, 1024, 1025, 0, NULL), t += 100) &
                    AGENT_EV_ERROR);
        assert_non_null(strstr(agent_last_error(a), "mem_available_bytes is above mem_total"));
        assert_true(
            feed(a, report(line, sizeof(line), 1, 1, 16 * 1024 * 1024 + 1, 1, 0, NULL), t += 100) &
            AGENT_EV_ERROR);
        assert_true(feed(a,
                         "DMG1 report seq=1 time_ms=1 mem_total_bytes=1048575 "
                         "mem_free_bytes=0\n",
                         t += 100) &
                    AGENT_EV_ERROR);
        assert_true(feed(a, "DMG1 report time_ms=1 mem_total_bytes=1073741824 mem_free_bytes=0\n",
                         t += 100) &
                    AGENT_EV_ERROR);
        assert_non_null(strstr(agent_last_error(a), "seq is missing"));
        assert_true(feed(a,
                         "DMG1 report seq=0 time_ms=1 mem_total_bytes=1073741824 "
                         "mem_free_bytes=0\n",
                         t += 100) &
                    AGENT_EV_ERROR);
        assert_null(agent_last_report(a));
        assert_int_equal(agent_counters(a)->rejected, sizeof(extra) / sizeof(extra[0]) + 5);
        agent_free(a);
}

static void limit_bounds_mem_total_and_demand(void **state)
{
        struct agent_options o;
        struct agent_estimate e;
        struct agent *a;
        char line[AGENT_LINE_MAX];

        agent_options_default(&o);
        o.limit_bytes = 2 * GIB;
        assert_int_equal(agent_new(&o, &a), 0);
        agent_connected(a, 0);
        feed(a, GUEST_HELLO, 0);
        /* a guest claiming more memory than the VM can have is lying */
        assert_true(feed(a, report(line, sizeof(line), 1, 1, 4096, 0, 0, NULL), 1) &
                    AGENT_EV_ERROR);
        assert_true(feed(a, report(line, sizeof(line), 1, 1, 2048, 0, 0, NULL), 2) &
                    AGENT_EV_REPORT);
        assert_int_equal(agent_estimate(a, 2, &e), 0);
        assert_int_equal(e.demand_bytes, 2 * GIB);
        agent_free(a);
}

static void counters_going_backwards_reset_deltas(void **state)
{
        struct agent *a = ready_agent(0);
        struct agent_estimate e;
        char line[AGENT_LINE_MAX];

        feed(a, report(line, sizeof(line), 1, 1000, 1024, 512, 5000000, NULL), 10);
        feed(a, report(line, sizeof(line), 2, 2000, 1024, 512, 5500000, NULL), 20);
        assert_int_equal(agent_estimate(a, 20, &e), 0);
        assert_float_equal(e.psi_fraction, 0.5, 1e-9);
        /* the stall total goes backwards: no stall figure for this interval */
        feed(a, report(line, sizeof(line), 3, 3000, 1024, 512, 100, NULL), 30);
        assert_int_equal(agent_estimate(a, 30, &e), 0);
        assert_false(e.stall_known);
        assert_true(agent_counters(a)->counter_resets >= 1);
        /* and measures again from there */
        feed(a, report(line, sizeof(line), 4, 4000, 1024, 512, 100100, NULL), 40);
        assert_int_equal(agent_estimate(a, 40, &e), 0);
        assert_true(e.stall_known);
        assert_float_equal(e.psi_fraction, 0.1, 1e-9);
        /* the agent restarts: seq and time start over */
        uint64_t resets = agent_counters(a)->counter_resets;
        feed(a, report(line, sizeof(line), 1, 4500, 1024, 512, 100200, NULL), 50);
        assert_int_equal(agent_counters(a)->counter_resets, resets + 1);
        assert_int_equal(agent_estimate(a, 50, &e), 0);
        assert_false(e.stall_known || e.rates_known);
        /* more stall than wall time is clamped to 1 */
        feed(a, report(line, sizeof(line), 2, 5500, 1024, 512, 9000000, NULL), 60);
        assert_int_equal(agent_estimate(a, 60, &e), 0);
        assert_float_equal(e.psi_fraction, 1.0, 1e-9);
        /* a clock going backwards restarts the deltas too */
        feed(a, report(line, sizeof(line), 3, 10, 1024, 512, 9000001, NULL), 70);
        assert_int_equal(agent_estimate(a, 70, &e), 0);
        assert_false(e.stall_known);
        assert_true(e.refaults_per_s >= 0 && e.majfaults_per_s >= 0);
        agent_free(a);
}

static void short_gaps_keep_the_base(void **state)
{
        struct agent *a = ready_agent(0);
        struct agent_estimate e;
        char line[AGENT_LINE_MAX];

        feed(a, report(line, sizeof(line), 1, 1000, 1024, 512, 0, NULL), 10);
        feed(a, report(line, sizeof(line), 2, 2000, 1024, 512, 100000, NULL), 20);
        assert_int_equal(agent_estimate(a, 20, &e), 0);
        assert_float_equal(e.psi_fraction, 0.1, 1e-9);
        /* 10 ms later: too short to measure, the figure stays */
        feed(a, report(line, sizeof(line), 3, 2010, 1024, 512, 110000, NULL), 30);
        assert_int_equal(agent_estimate(a, 30, &e), 0);
        assert_float_equal(e.psi_fraction, 0.1, 1e-9);
        /* the next one measures from report 2: 40 ms of stall in 100 ms */
        feed(a, report(line, sizeof(line), 4, 2100, 1024, 512, 140000, NULL), 40);
        assert_int_equal(agent_estimate(a, 40, &e), 0);
        assert_float_equal(e.psi_fraction, 0.4, 1e-9);
        agent_free(a);
}

static void balloon_and_refaults_shape_demand(void **state)
{
        struct agent *a = ready_agent(0);
        struct agent_estimate e;
        char line[AGENT_LINE_MAX];

        /* deflate-on-oom: 300 MiB of ballooned pages count as used in MemTotal */
        feed(a,
             report(line, sizeof(line), 1, 1000, 1024, 424, 0,
                    "balloon_bytes=314572800 balloon_in_total=1 active_file_bytes=104857600"),
             10);
        assert_int_equal(agent_estimate(a, 10, &e), 0);
        assert_int_equal(e.demand_bytes, 300 * MIB);
        /* without deflate-on-oom MemTotal already shrank: nothing to take off */
        feed(a,
             report(line, sizeof(line), 2, 2000, 1024, 424, 0,
                    "balloon_bytes=314572800 balloon_in_total=0 active_file_bytes=104857600"),
             20);
        assert_int_equal(agent_estimate(a, 20, &e), 0);
        assert_int_equal(e.demand_bytes, 600 * MIB);
        /* a balloon larger than what is used cannot make demand negative */
        feed(a,
             report(line, sizeof(line), 3, 3000, 1024, 1000, 0,
                    "balloon_bytes=314572800 balloon_in_total=1"),
             30);
        assert_int_equal(agent_estimate(a, 30, &e), 0);
        assert_int_equal(e.demand_bytes, 0);
        agent_free(a);

        /*
         * refaulting: the active file cache is part of the working set, held while the
         * refaults stop and lowered with Active(file) when it falls without them
         */
        a = ready_agent(0);
        refault_report(line, sizeof(line), 1, 1000, 0);
        feed(a, line, 1000);
        refault_report(line, sizeof(line), 2, 2000, 100); /* 100/s: noise */
        feed(a, line, 2000);
        assert_int_equal(agent_estimate(a, 2000, &e), 0);
        assert_float_equal(e.refaults_per_s, 100, 1e-9);
        assert_int_equal(e.demand_bytes, 256 * MIB);
        refault_report(line, sizeof(line), 3, 3000, 10100); /* 10000/s */
        feed(a, line, 3000);
        assert_int_equal(agent_estimate(a, 3000, &e), 0);
        assert_int_equal(e.demand_bytes, 456 * MIB);
        refault_report(line, sizeof(line), 4, 62000, 10100);
        feed(a, line, 62000);
        assert_int_equal(agent_estimate(a, 62000, &e), 0);
        assert_int_equal(e.demand_bytes, 456 * MIB); /* no refaults for a minute: still held */
        snprintf(line, sizeof(line),
                 "DMG1 report seq=5 time_ms=63000 mem_total_bytes=1073741824 mem_free_bytes=0 "
                 "mem_available_bytes=805306368 active_file_bytes=52428800 refaults=10100\n");
        feed(a, line, 63000);
        assert_int_equal(agent_estimate(a, 63000, &e), 0);
        assert_int_equal(e.demand_bytes, 306 * MIB); /* the kernel let 150 MiB go */
        refault_report(line, sizeof(line), 6, 64000, 10100);
        feed(a, line, 64000);
        assert_int_equal(agent_estimate(a, 64000, &e), 0);
        assert_int_equal(e.demand_bytes,
                         306 * MIB); /* and it does not come back without refaults */
        /* whatever it adds, never above MemTotal + 1/8 */
        snprintf(line, sizeof(line),
                 "DMG1 report seq=7 time_ms=65000 mem_total_bytes=1073741824 mem_free_bytes=0 "
                 "mem_available_bytes=0 active_file_bytes=1073741824 refaults=99999999\n");
        feed(a, line, 65000);
        assert_int_equal(agent_estimate(a, 65000, &e), 0);
        assert_int_equal(e.demand_bytes, GIB + GIB / 8);
        agent_free(a);
}

static void flood_is_rate_limited(void **state)
{
        struct agent *a = ready_agent(0);
        char line[AGENT_LINE_MAX], text[200 * 300];
        size_t len = 0;

        /* the handshake took one token at t=0 */
        for (int i = 1; i <= 100; i++) {
                report(line, sizeof(line), (uint64_t)i, (uint64_t)i * 1000, 1024, 512, 0, NULL);
                assert_true(len + strlen(line) < sizeof(text));
                memcpy(text + len, line, strlen(line));
                len += strlen(line);
        }
        agent_feed(a, text, len, 0);
        const struct agent_counters *c = agent_counters(a);
        assert_int_equal(c->reports, 39);
        assert_int_equal(c->rate_dropped, 61);
        assert_int_equal(c->lines, 101);
        /* a second later, 20 more */
        agent_feed(a, text, len, 1000);
        assert_int_equal(c->reports, 39 + 20);
        agent_free(a);
}

static void silent_agent_gets_hello_again(void **state)
{
        struct agent *a;
        char out[AGENT_LINE_MAX], line[AGENT_LINE_MAX];

        assert_int_equal(agent_new(NULL, &a), 0);
        agent_connected(a, 1000);
        assert_true(agent_output(a, 1000, out, sizeof(out)) > 0);
        /* never heard: a guest without an agent is not written to again */
        assert_int_equal(agent_output(a, 100000, out, sizeof(out)), 0);
        feed(a, GUEST_HELLO, 101000);
        feed(a, report(line, sizeof(line), 1, 1, 1024, 512, 0, NULL), 102000);
        /* heard, then silent: 5 s, then 10 s, ... */
        assert_int_equal(agent_output(a, 106999, out, sizeof(out)), 0);
        assert_true(agent_output(a, 107000, out, sizeof(out)) > 0);
        assert_int_equal(agent_output(a, 116999, out, sizeof(out)), 0);
        assert_true(agent_output(a, 117000, out, sizeof(out)) > 0);
        assert_int_equal(agent_output(a, 136999, out, sizeof(out)), 0);
        assert_true(agent_output(a, 137000, out, sizeof(out)) > 0);
        /* a line resets the gap */
        feed(a, report(line, sizeof(line), 2, 2, 1024, 512, 0, NULL), 140000);
        assert_int_equal(agent_output(a, 144999, out, sizeof(out)), 0);
        assert_true(agent_output(a, 145000, out, sizeof(out)) > 0);
        assert_int_equal(agent_counters(a)->hellos_sent, 5);
        /* disconnected: nothing is read or written; the last report goes stale */
        agent_disconnected(a);
        assert_int_equal(agent_state(a), AGENT_DISCONNECTED);
        assert_int_equal(feed(a, GUEST_HELLO, 146000), 0);
        assert_int_equal(agent_output(a, 300000, out, sizeof(out)), 0);
        assert_non_null(agent_last_report(a));
        struct agent_estimate e;
        assert_int_equal(agent_estimate(a, 300000, &e), 0);
        assert_false(e.fresh);
        agent_free(a);
}

/* Every field at its largest value still fits a line: the protocol's size bound holds. */
/* What sits in the guest's burst absorber counts whole, within bounds. */
static void absorber_counts_what_the_guest_is_short_of(void **state)
{
        struct agent_options o = {.limit_bytes = 3 * GIB / 2};
        struct agent_estimate e;
        char line[AGENT_LINE_MAX];
        struct agent *a = ready_agent(0);

        (void)state;
        /*
         * 600 MiB used, of which 60 MiB hold 200 MiB of absorbed pages: 740 MiB, and the
         * drain's room (MemTotal / 32)
         */
        feed(a,
             report(line, sizeof(line), 1, 1000, 1024, 424, 0,
                    "absorber_bytes=209715200 absorber_ram_bytes=62914560 "
                    "absorber_size_bytes=1073741824"),
             10);
        assert_int_equal(agent_estimate(a, 10, &e), 0);
        assert_int_equal(e.demand_bytes, 740 * MIB + 1024 * MIB / AGENT_ABSORBER_ROOM_DIV);
        assert_int_equal(agent_last_report(a)->have & AGENT_HAVE_ABSORBER, AGENT_HAVE_ABSORBER);
        /* a full guest with a full absorber of twice its MemTotal: 3 GiB and the room, not
         * MemTotal + 1/8 */
        feed(a,
             report(line, sizeof(line), 2, 2000, 1024, 0, 0,
                    "absorber_bytes=2147483648 absorber_ram_bytes=0 "
                    "absorber_size_bytes=2147483648"),
             20);
        assert_int_equal(agent_estimate(a, 20, &e), 0);
        assert_int_equal(e.demand_bytes, 3 * GIB + 1024 * MIB / AGENT_ABSORBER_ROOM_DIV);
        /* an empty absorber asks for no room */
        feed(a,
             report(line, sizeof(line), 3, 2500, 1024, 424, 0,
                    "absorber_bytes=0 absorber_ram_bytes=0 absorber_size_bytes=1073741824"),
             25);
        assert_int_equal(agent_estimate(a, 25, &e), 0);
        assert_int_equal(e.demand_bytes, 600 * MIB);
        /* each of these is a lie and drops the report whole; the previous one stays */
        static const char *const lies[] = {
            "absorber_bytes=1 absorber_ram_bytes=0 absorber_size_bytes=2147483649",
            "absorber_bytes=2 absorber_ram_bytes=0 absorber_size_bytes=1",
            "absorber_bytes=0 absorber_ram_bytes=1073741825 absorber_size_bytes=1",
            "absorber_bytes=1",
        };
        for (unsigned i = 0; i < sizeof(lies) / sizeof(lies[0]); i++) {
                unsigned ev = feed(
                    a, report(line, sizeof(line), 4 + i, 3000 + i, 1024, 0, 0, lies[i]), 30 + i);
                assert_false(ev & AGENT_EV_REPORT);
                assert_non_null(strstr(agent_last_error(a), "absorber"));
        }
        assert_int_equal(agent_last_report(a)->seq, 3);
        agent_free(a);

        /* never above the VM's limit, whatever it claims */
        assert_int_equal(agent_new(&o, &a), 0);
        agent_connected(a, 0);
        assert_true(feed(a, GUEST_HELLO, 0) & AGENT_EV_READY);
        feed(a,
             report(line, sizeof(line), 1, 1000, 1024, 0, 0,
                    "absorber_bytes=2147483648 absorber_ram_bytes=0 "
                    "absorber_size_bytes=2147483648"),
             10);
        assert_int_equal(agent_estimate(a, 10, &e), 0);
        assert_int_equal(e.demand_bytes, 3 * GIB / 2);
        agent_free(a);
}

static void largest_report_fits_a_line(void **state)
{
        struct agent *a = ready_agent(0);
        char line[2 * AGENT_LINE_MAX];
        int n = snprintf(line, sizeof(line),
                         "DMG1 report seq=4611686018427387904 time_ms=9007199254740992 cause=hello "
                         "mem_total_bytes=17592186044416 mem_free_bytes=17592186044416 "
                         "cached_bytes=17592186044416 active_file_bytes=17592186044416 "
                         "committed_bytes=4611686018427387904 swap_used_bytes=17592186044416 "
                         "mem_available_bytes=17592186044416 balloon_bytes=17592186044416 "
                         "balloon_in_total=1 psi_some_avg10_bp=10000 "
                         "psi_some_total_us=4611686018427387904 psi_full_avg10_bp=10000 "
                         "psi_full_total_us=4611686018427387904 pgmajfault=4611686018427387904 "
                         "oom_kill=4611686018427387904 onlined=4611686018427387904 "
                         "refaults=4611686018427387904 self_rss_bytes=17592186044416 "
                         "self_cpu_us=4611686018427387904 absorber_bytes=17592186044416 "
                         "absorber_ram_bytes=17592186044416 absorber_size_bytes=17592186044416 "
                         "file_reclaimed=4611686018427387904 swap_free_bytes=17592186044416\n");

        assert_true(n > 0 && n <= AGENT_LINE_MAX);
        print_message("# the largest report is %d bytes\n", n);
        unsigned ev = feed(a, line, 1);
        if (!(ev & AGENT_EV_REPORT))
                print_message("# %s\n", agent_last_error(a));
        assert_true(ev & AGENT_EV_REPORT);
        assert_int_equal(agent_counters(a)->unknown_keys, 0);
        assert_int_equal(agent_last_report(a)->have,
                         AGENT_HAVE_AVAILABLE | AGENT_HAVE_PSI | AGENT_HAVE_PSI_FULL |
                             AGENT_HAVE_REFAULTS | AGENT_HAVE_BALLOON | AGENT_HAVE_SELF |
                             AGENT_HAVE_ABSORBER | AGENT_HAVE_RECLAIM | AGENT_HAVE_SWAP);
        struct agent_estimate e;
        assert_int_equal(agent_estimate(a, 1, &e), 0);
        assert_int_equal(e.demand_bytes, AGENT_BYTES_MAX); /* a full absorber, at the limit */
        agent_free(a);
}

static void names_are_stable(void **state)
{
        assert_string_equal(agent_state_name(AGENT_REFUSED), "refused");
        assert_string_equal(agent_state_name((enum agent_state)42), "?");
        assert_string_equal(agent_cause_name(AGENT_CAUSE_PSI), "psi");
        assert_string_equal(agent_cause_name((enum agent_cause)9), "?");
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(options_are_checked),
            cmocka_unit_test(handshake_reports_version_and_caps),
            cmocka_unit_test(announcement_is_answered),
            cmocka_unit_test(incompatible_agent_is_refused),
            cmocka_unit_test(agent_refusal_and_wrong_choice),
            cmocka_unit_test(bad_hellos_are_rejected),
            cmocka_unit_test(report_is_parsed_and_estimated),
            cmocka_unit_test(swap_free_is_known_only_when_reported),
            cmocka_unit_test(psi_report_is_urgent),
            cmocka_unit_test(partial_and_batched_lines),
            cmocka_unit_test(long_lines_are_discarded),
            cmocka_unit_test(malformed_lines_are_counted),
            cmocka_unit_test(unknown_types_and_keys_are_ignored),
            cmocka_unit_test(out_of_range_reports_are_rejected),
            cmocka_unit_test(limit_bounds_mem_total_and_demand),
            cmocka_unit_test(counters_going_backwards_reset_deltas),
            cmocka_unit_test(short_gaps_keep_the_base),
            cmocka_unit_test(balloon_and_refaults_shape_demand),
            cmocka_unit_test(flood_is_rate_limited),
            cmocka_unit_test(silent_agent_gets_hello_again),
            cmocka_unit_test(absorber_counts_what_the_guest_is_short_of),
            cmocka_unit_test(largest_report_fits_a_line),
            cmocka_unit_test(names_are_stable),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
