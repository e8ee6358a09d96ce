/*
 * Tests for trace: reading "seconds,demand" CSV (from strings and files),
 * the FILE:LINE errors, and linear interpolation.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "testutil.h"
#include "trace.h"

static void load_ok(const char *text, struct trace *t)
{
        struct config_diag d = {0};

        if (trace_load_string("t.csv", text, t, &d) != 0) {
                tu_diag_print(&d);
                fail_msg("trace did not load:\n%s", text);
        }
        assert_int_equal(d.count, 0);
        config_diag_free(&d);
}

static void expect_error_at(const char *text, unsigned line, const char *needle)
{
        struct config_diag d = {0};
        struct trace t;
        char prefix[64];

        memset(&t, 0x5A, sizeof(t));
        int r = trace_load_string("t.csv", text, &t, &d);
        snprintf(prefix, sizeof(prefix), "t.csv:%u: ", line);
        if (r >= 0 || !tu_diag_find(&d, prefix, needle)) {
                tu_diag_print(&d);
                fail_msg("expected an error \"%s...%s\", got %d for:\n%s", prefix, needle, r, text);
        }
        assert_int_equal(d.count, 1); /* the first error stops the read */
        assert_null(t.t_ms);
        assert_null(t.demand);
        assert_int_equal(t.n, 0);
        trace_free(&t);
        config_diag_free(&d);
}

static void parses_rows(void **state)
{
        struct trace t;

        load_ok("seconds,demand\n0,1073741824\n10,2G\n25,512M\n", &t);
        assert_string_equal(t.path, "t.csv");
        assert_int_equal(t.n, 3);
        assert_int_equal(t.t_ms[0], 0);
        assert_int_equal(t.t_ms[1], 10000);
        assert_int_equal(t.t_ms[2], 25000);
        assert_int_equal(t.demand[0], GIB);
        assert_int_equal(t.demand[1], 2 * GIB);
        assert_int_equal(t.demand[2], 512 * MIB);
        assert_int_equal(trace_end_ms(&t), 25000);
        trace_free(&t);
        trace_free(&t);
        trace_free(NULL);
}

static void decimals_and_sizes(void **state)
{
        struct trace t;

        load_ok("seconds,demand\n0.5,1.5G\n1.25,1000\n2.001,64KiB\n3,1T\n", &t);
        assert_int_equal(t.n, 4);
        assert_int_equal(t.t_ms[0], 500);
        assert_int_equal(t.t_ms[1], 1250);
        assert_int_equal(t.t_ms[2], 2001);
        assert_int_equal(t.t_ms[3], 3000);
        assert_int_equal(t.demand[0], 3 * GIB / 2);
        assert_int_equal(t.demand[1], 1000);
        assert_int_equal(t.demand[2], 64 * KIB);
        assert_int_equal(t.demand[3], TIB);
        trace_free(&t);

        /* The largest demand allowed, and one byte more. */
        load_ok("seconds,demand\n0,16T\n", &t);
        assert_int_equal(t.demand[0], TRACE_DEMAND_MAX);
        trace_free(&t);
        expect_error_at("seconds,demand\n0,17592186044417\n", 2,
                        "demand \"17592186044417\" is more than 16 TiB");
        expect_error_at("seconds,demand\n0,16.000001T\n", 2, "is more than 16 TiB");
        /* Beyond 64 bits: too large, not "not a demand" (and never wrapped). */
        expect_error_at("seconds,demand\n0,18446744073709551616\n", 2,
                        "demand \"18446744073709551616\" is more than 16 TiB");
        expect_error_at("seconds,demand\n0,99999999999999999999999\n", 2, "is more than 16 TiB");
        expect_error_at("seconds,demand\n0,17179869184G\n", 2, "is more than 16 TiB");
}

/* A bare demand is bytes, as it always was: small ones too (traces are data, not settings). */
static void bare_demand_is_bytes(void **state)
{
        struct trace t;

        load_ok("seconds,demand\n0,0\n1,512\n2,1048576\n3,536870912\n4,512M\n5,0.5K\n", &t);
        assert_int_equal(t.n, 6);
        assert_int_equal(t.demand[0], 0);
        assert_int_equal(t.demand[1], 512);
        assert_int_equal(t.demand[2], MIB);
        assert_int_equal(t.demand[3], 512 * MIB);
        assert_int_equal(t.demand[4], 512 * MIB);
        assert_int_equal(t.demand[5], 512);
        trace_free(&t);
        /* Units in any case and spelling dynmem takes elsewhere. */
        load_ok("seconds,demand\n0,2g\n1,2GiB\n2,2GB\n3,2048m\n4,2097152k\n5,2147483648B\n", &t);
        for (size_t i = 0; i < t.n; i++)
                assert_int_equal(t.demand[i], 2 * GIB);
        trace_free(&t);
}

static void crlf_comments_blank_lines(void **state)
{
        struct trace t;

        load_ok("seconds,demand\r\n# warm-up\r\n\r\n0,1G\r\n\n# peak\n5,2G\r\n10,1G", &t);
        assert_int_equal(t.n, 3);
        assert_int_equal(t.t_ms[1], 5000);
        assert_int_equal(t.demand[1], 2 * GIB);
        assert_int_equal(t.demand[2], GIB); /* last line without a newline */
        trace_free(&t);

        /* Line numbers count comments and blank lines. */
        expect_error_at("seconds,demand\r\n# a\r\n\r\n0,1G\r\n# b\r\nx,1G\r\n", 6,
                        "\"x\" is not a number of seconds");
}

static void header_required(void **state)
{
        /* What the first line is instead is quoted: a blank or a capital that looks right. */
        expect_error_at("0,1G\n1,2G\n", 1,
                        "expected the header \"seconds,demand\" as the first line, not \"0,1G\"");
        expect_error_at("time,demand\n0,1G\n", 1, "not \"time,demand\"");
        expect_error_at("seconds, demand\n0,1G\n", 1, "not \"seconds, demand\"");
        expect_error_at("Seconds,Demand\r\n0,1G\r\n", 1, "not \"Seconds,Demand\"");
        /* Comments and blank lines are skipped only after the header. */
        expect_error_at("# comment first\nseconds,demand\n0,1G\n", 1,
                        "not \"# comment first\" (blank lines and comments may only follow "
                        "the header)");
        expect_error_at("\nseconds,demand\n0,1G\n", 1,
                        "not \"\" (blank lines and comments may only follow the header)");
        /* A control character is quoted as a space, a long line cut. */
        expect_error_at("time\x1b[2J,demand\n0,1G\n", 1, "not \"time [2J,demand\"");
        expect_error_at("0123456789012345678901234567890123456789012345678901234567890123456789"
                        ",x\n",
                        1, "...\"");

        /* A byte order mark before the header (a spreadsheet's "CSV UTF-8") is no part of it. */
        struct trace t;
        load_ok("\xEF\xBB\xBFseconds,demand\r\n0,1G\r\n", &t);
        assert_int_equal(t.n, 1);
        assert_int_equal(t.demand[0], GIB);
        trace_free(&t);
        expect_error_at("\xEF\xBB\xBFtime,demand\n0,1G\n", 1, "not \"time,demand\"");
}

/* Line ends of classic Mac OS, as some exports still write them. */
static void lone_carriage_returns(void **state)
{
        char text[1024] = "seconds,demand";

        expect_error_at("seconds,demand\r0,1G\r10,2G\r", 1, "lone carriage return");
        for (int i = 0; i < 60; i++)
                snprintf(text + strlen(text), sizeof(text) - strlen(text), "\r%d,1G", i);
        expect_error_at(text, 1, "lone carriage return");
}

static void empty_traces(void **state)
{
        expect_error_at("", 1, "no rows");
        expect_error_at("seconds,demand\n", 1, "no rows");
        expect_error_at("seconds,demand\n# nothing\n\n", 3, "no rows");
}

static void seconds_must_increase(void **state)
{
        expect_error_at("seconds,demand\n0,1G\n5,1G\n5,2G\n", 4, "seconds must increase");
        expect_error_at("seconds,demand\n0,1G\n5,1G\n4.999,2G\n", 4, "seconds must increase");
        expect_error_at("seconds,demand\n1,1G\n0,1G\n", 3, "(0 after 1.000)");
}

/* A Unix time in the first column would make a scenario run for decades. */
static void seconds_at_most_366_days(void **state)
{
        struct trace t;

        load_ok("seconds,demand\n0,1G\n31622400,2G\n", &t);
        assert_int_equal(trace_end_ms(&t), TRACE_MS_MAX);
        trace_free(&t);
        expect_error_at("seconds,demand\n0,1G\n31622400.001,2G\n", 3, "more than 366 days");
        expect_error_at("seconds,demand\n1733472000,1G\n", 2, "not Unix time");
}

static void bad_fields(void **state)
{
        expect_error_at("seconds,demand\nabc,1G\n", 2, "\"abc\" is not a number of seconds");
        expect_error_at("seconds,demand\n-1,1G\n", 2, "is not a number of seconds");
        expect_error_at("seconds,demand\n1s,1G\n", 2, "is not a number of seconds");
        expect_error_at("seconds,demand\n 1,1G\n", 2, "is not a number of seconds");
        expect_error_at("seconds,demand\n,1G\n", 2, "is not a number of seconds");
        expect_error_at("seconds,demand\n1.,1G\n", 2, "is not a number of seconds");
        expect_error_at("seconds,demand\n.5,1G\n", 2, "is not a number of seconds");
        expect_error_at("seconds,demand\n99999999999999999999,1G\n", 2,
                        "is not a number of seconds");
        expect_error_at("seconds,demand\n1,lots\n", 2,
                        "\"lots\" is not a demand (bytes, or a size with K, M, G or T)");
        expect_error_at("seconds,demand\n1,-5\n", 2, "\"-5\" is not a demand");
        expect_error_at("seconds,demand\n1,+5\n", 2, "\"+5\" is not a demand");
        expect_error_at("seconds,demand\n1,\n", 2, "no demand after the comma");
        expect_error_at("seconds,demand\n1, 5G\n", 2, "\" 5G\" is not a demand");
        expect_error_at("seconds,demand\n1,5G \n", 2, "\"5G \" is not a demand");
        expect_error_at("seconds,demand\n1,5Gx\n", 2, "\"5Gx\" is not a demand");
        expect_error_at("seconds,demand\n1,1e9\n", 2, "\"1e9\" is not a demand");
        expect_error_at("seconds,demand\n1,0x100000\n", 2, "is not a demand");
        expect_error_at("seconds,demand\n1,5.\n", 2, "\"5.\" is not a demand");
        /* A blank before the unit is named as such. */
        expect_error_at("seconds,demand\n0,2 G\n", 2,
                        "\"2 G\" has a blank between the number and its unit; write 2G");
        expect_error_at("seconds,demand\n0,1G\n1,2G\n2,1G,3\n", 4, "expected two fields");
        expect_error_at("seconds,demand\n1\n", 2, "expected two fields");
        expect_error_at("seconds,demand\n1;1G\n", 2, "expected two fields");
}

static void overlong_line(void **state)
{
        char text[600];

        snprintf(text, sizeof(text), "seconds,demand\n0,1G\n1,%0400d\n", 5);
        expect_error_at(text, 3, "line too long");
}

static void files(void **state)
{
        char *dir = tu_tempdir();
        char *good = tu_write(dir, "good.csv", "seconds,demand\r\n0,1G\r\n60,2G\r\n", false);
        char *bad = tu_write(dir, "bad.csv", "seconds,demand\n0,1G\n\n60,2G,\n", false);
        char long_line[600], prefix[512], *missing = NULL;
        struct trace t;
        struct config_diag d = {0};

        assert_int_equal(trace_load(good, &t, &d), 0);
        assert_string_equal(t.path, good);
        assert_int_equal(t.n, 2);
        assert_int_equal(t.demand[1], 2 * GIB);
        trace_free(&t);

        assert_true(trace_load(bad, &t, &d) < 0);
        snprintf(prefix, sizeof(prefix), "%s:4: ", bad);
        assert_non_null(tu_diag_find(&d, prefix, "expected two fields"));
        config_diag_free(&d);

        snprintf(long_line, sizeof(long_line), "seconds,demand\n0,%0400d\n1,1G\n", 7);
        char *lng = tu_write(dir, "long.csv", long_line, false);
        assert_true(trace_load(lng, &t, &d) < 0);
        snprintf(prefix, sizeof(prefix), "%s:2: ", lng);
        assert_non_null(tu_diag_find(&d, prefix, "line too long"));
        config_diag_free(&d);

        assert_true(asprintf(&missing, "%s/missing.csv", dir) > 0);
        memset(&t, 0x5A, sizeof(t));
        assert_int_equal(trace_load(missing, &t, &d), -ENOENT);
        assert_null(t.t_ms);
        snprintf(prefix, sizeof(prefix), "%s: ", missing);
        assert_non_null(tu_diag_find(&d, prefix, "cannot open"));
        config_diag_free(&d);

        free(good), free(bad), free(lng), free(missing);
        tu_rmtree(dir);
}

static void files_and_strings_agree_on_the_line_limit(void **state)
{
        char *dir = tu_tempdir();
        char text[1024], line[600];
        struct trace tf, ts;
        struct config_diag d = {0};

        for (size_t len = 250; len <= 260; len++) {
                /* "0," + zero-padded demand: a line of exactly len characters */
                snprintf(line, sizeof(line), "0,%0*d", (int)(len - 2), 5);
                snprintf(text, sizeof(text), "seconds,demand\n%s\n1,1G\n", line);
                char *path = tu_write(dir, "l.csv", text, false);
                int rf = trace_load(path, &tf, &d);
                int rs = trace_load_string("l.csv", text, &ts, &d);
                if ((rf == 0) != (rs == 0))
                        fail_msg("a line of %zu characters: file %d, string %d", len, rf, rs);
                if (rf == 0)
                        trace_free(&tf), trace_free(&ts);
                config_diag_free(&d);
                free(path);
        }
        tu_rmtree(dir);
}

static void interpolation(void **state)
{
        struct trace t;
        size_t cursor = 0;

        load_ok("seconds,demand\n10,1G\n20,3G\n30,3G\n40,1G\n", &t);
        assert_int_equal(trace_demand_at(&t, 0, &cursor), GIB);         /* before the first */
        assert_int_equal(trace_demand_at(&t, 10000, &cursor), GIB);     /* on the first */
        assert_int_equal(trace_demand_at(&t, 15000, &cursor), 2 * GIB); /* between */
        assert_int_equal(trace_demand_at(&t, 12500, &cursor), 3 * GIB / 2);
        assert_int_equal(trace_demand_at(&t, 20000, &cursor), 3 * GIB); /* on a row */
        assert_int_equal(trace_demand_at(&t, 25000, &cursor), 3 * GIB); /* flat */
        assert_int_equal(trace_demand_at(&t, 35000, &cursor), 2 * GIB); /* falling */
        assert_int_equal(trace_demand_at(&t, 40000, &cursor), GIB);     /* the last */
        assert_int_equal(trace_demand_at(&t, 41000, &cursor), GIB);     /* after the last */
        assert_int_equal(trace_demand_at(&t, UINT64_MAX, &cursor), GIB);
        trace_free(&t);

        /* One row: constant. */
        load_ok("seconds,demand\n5,700M\n", &t);
        cursor = 0;
        assert_int_equal(trace_demand_at(&t, 0, &cursor), 700 * MIB);
        assert_int_equal(trace_demand_at(&t, 5000, &cursor), 700 * MIB);
        assert_int_equal(trace_demand_at(&t, 99000, &cursor), 700 * MIB);
        trace_free(&t);

        /* Large values do not overflow, rising or falling. */
        load_ok("seconds,demand\n0,0\n1,16T\n2,0\n", &t);
        cursor = 0;
        assert_int_equal(trace_demand_at(&t, 500, &cursor), 8 * TIB);
        assert_int_equal(trace_demand_at(&t, 1500, &cursor), 8 * TIB);
        trace_free(&t);

        /* Over long spans too (a day-long segment, the largest demand). */
        load_ok("seconds,demand\n0,0\n86400,16T\n172800,0\n", &t);
        cursor = 0;
        assert_int_equal(trace_demand_at(&t, 43200 * 1000, &cursor), 8 * TIB);
        assert_int_equal(trace_demand_at(&t, 129600 * 1000, &cursor), 8 * TIB);
        uint64_t before = trace_demand_at(&t, 86400 * 1000 - 1, &cursor);
        assert_true(before < 16 * TIB && before > 16 * TIB - 16 * TIB / 86400000 - 2);
        assert_int_equal(trace_demand_at(&t, 86400 * 1000, &cursor), 16 * TIB);
        trace_free(&t);
}

/* Straightforward reference: linear search, no cursor, long double arithmetic. */
static uint64_t reference_at(const struct trace *t, uint64_t ms)
{
        if (ms <= t->t_ms[0])
                return t->demand[0];
        for (size_t i = 0; i + 1 < t->n; i++) {
                if (ms < t->t_ms[i + 1]) {
                        long double d0 = (long double)t->demand[i],
                                    d1 = (long double)t->demand[i + 1];
                        return (uint64_t)(d0 + (d1 - d0) * (long double)(ms - t->t_ms[i]) /
                                                   (long double)(t->t_ms[i + 1] - t->t_ms[i]));
                }
        }
        return t->demand[t->n - 1];
}

static void cursor_reuse_and_random_access(void **state)
{
        char *text = NULL;
        size_t len = 0, cursor = 0;
        FILE *f = open_memstream(&text, &len);
        uint64_t x = 0x9E3779B97F4A7C15ull;
        struct trace t;

        fprintf(f, "seconds,demand\n");
        for (int i = 0; i < 500; i++) /* uneven steps, demand up and down */
                fprintf(f, "%d.%d,%dM\n", i * 3 + (i % 2), i % 10, 256 + (i * 37) % 1500);
        fclose(f);
        load_ok(text, &t);
        free(text);

        /* Forward in small steps with one cursor: the reference, to a byte of rounding. */
        for (uint64_t ms = 0; ms <= trace_end_ms(&t) + 2000; ms += 77)
                assert_in_range(trace_demand_at(&t, ms, &cursor), reference_at(&t, ms) - 1,
                                reference_at(&t, ms) + 1);
        /* Random times, backward and forward, with the same cursor. */
        for (int i = 0; i < 20000; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                uint64_t ms = x % (trace_end_ms(&t) + 5000);
                assert_in_range(trace_demand_at(&t, ms, &cursor), reference_at(&t, ms) - 1,
                                reference_at(&t, ms) + 1);
                assert_true(cursor < t.n);
        }
        /* A stale cursor from a longer trace is accepted. */
        cursor = 1000000;
        assert_in_range(trace_demand_at(&t, 1234, &cursor), reference_at(&t, 1234) - 1,
                        reference_at(&t, 1234) + 1);
        /* Going back right after the end. */
        cursor = 0;
        trace_demand_at(&t, trace_end_ms(&t) - 1, &cursor);
        assert_int_equal(trace_demand_at(&t, 1, &cursor), reference_at(&t, 1));
        /* Every row itself is exact. */
        for (size_t i = 0; i < t.n; i++)
                assert_int_equal(trace_demand_at(&t, t.t_ms[i], &cursor), t.demand[i]);
        trace_free(&t);
}

static void empty_trace_demand_is_zero(void **state)
{
        struct trace t = {0};
        size_t cursor = 3;

        assert_int_equal(trace_demand_at(&t, 1000, &cursor), 0);
        assert_int_equal(trace_end_ms(&t), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(parses_rows),
            cmocka_unit_test(decimals_and_sizes),
            cmocka_unit_test(bare_demand_is_bytes),
            cmocka_unit_test(crlf_comments_blank_lines),
            cmocka_unit_test(header_required),
            cmocka_unit_test(lone_carriage_returns),
            cmocka_unit_test(empty_traces),
            cmocka_unit_test(seconds_must_increase),
            cmocka_unit_test(seconds_at_most_366_days),
            cmocka_unit_test(bad_fields),
            cmocka_unit_test(overlong_line),
            cmocka_unit_test(files),
            cmocka_unit_test(files_and_strings_agree_on_the_line_limit),
            cmocka_unit_test(interpolation),
            cmocka_unit_test(cursor_reuse_and_random_access),
            cmocka_unit_test(empty_trace_demand_is_zero),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
