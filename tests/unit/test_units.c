/*
 * Tests for units: sizes and durations to and from text.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "units.h"

static void size_parse_accepts_suffixes(void **state)
{
        uint64_t v;

        assert_int_equal(size_parse("0", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(size_parse("4096", &v), 0);
        assert_int_equal(v, 4096);
        assert_int_equal(size_parse("512M", &v), 0);
        assert_int_equal(v, 512 * MIB);
        assert_int_equal(size_parse("2G", &v), 0);
        assert_int_equal(v, 2 * GIB);
        assert_int_equal(size_parse("1.5G", &v), 0);
        assert_int_equal(v, 3 * GIB / 2);
        assert_int_equal(size_parse("3GiB", &v), 0);
        assert_int_equal(v, 3 * GIB);
        assert_int_equal(size_parse("1t", &v), 0);
        assert_int_equal(v, TIB);
        assert_int_equal(size_parse("64k", &v), 0);
        assert_int_equal(v, 64 * KIB);
}

static void size_parse_rejects_garbage(void **state)
{
        uint64_t v = 7;

        assert_int_equal(size_parse("", &v), -EINVAL);
        assert_int_equal(size_parse("M", &v), -EINVAL);
        assert_int_equal(size_parse("-1", &v), -EINVAL);
        assert_int_equal(size_parse("+1", &v), -EINVAL);
        assert_int_equal(size_parse(" 1", &v), -EINVAL);
        assert_int_equal(size_parse("1 G", &v), -EINVAL);
        assert_int_equal(size_parse("1X", &v), -EINVAL);
        assert_int_equal(size_parse("1.", &v), -EINVAL);
        assert_int_equal(size_parse("1.5.5G", &v), -EINVAL);
        assert_int_equal(size_parse(NULL, &v), -EINVAL);
        assert_int_equal(v, 7); /* untouched on failure */
}

/* The size text an operator writes: a plain number below 1 MiB is a unit left out. */
static void size_unit_missing_below_one_mib(void **state)
{
        char buf[160];

        assert_true(size_unit_missing("512", 512, buf, sizeof(buf)));
        assert_string_equal(buf,
                            "\"512\" has no unit and would be 512 bytes; write 512M or 512MiB");
        assert_true(size_unit_missing("4096", 4096, buf, sizeof(buf)));
        assert_non_null(
            strstr(buf, "would be 4096 bytes; write 4096M or 4096MiB (or 4K for 4 KiB)"));
        assert_true(size_unit_missing("1048575", MIB - 1, buf, sizeof(buf)));
        assert_true(size_unit_missing("0.5", 0, buf, sizeof(buf))); /* not a zero */
        assert_non_null(strstr(buf, "would be 0 bytes"));
        /* Plain bytes from 1 MiB on, 0, and anything with a unit are what they say. */
        assert_false(size_unit_missing("1048576", MIB, buf, sizeof(buf)));
        assert_string_equal(buf, "");
        assert_false(size_unit_missing("4294967296", 4 * GIB, buf, sizeof(buf)));
        assert_false(size_unit_missing("0", 0, buf, sizeof(buf)));
        assert_false(size_unit_missing("0.0", 0, buf, sizeof(buf)));
        assert_false(size_unit_missing("512B", 512, buf, sizeof(buf)));
        assert_false(size_unit_missing("4K", 4 * KIB, buf, sizeof(buf)));
        assert_false(size_unit_missing("0.5M", MIB / 2, buf, sizeof(buf)));
        /* A short buffer is cut, still a string. */
        assert_true(size_unit_missing("512", 512, buf, 8));
        assert_int_equal(strlen(buf), 7);
}

/* "2 G": refused as every size with a blank is, and named for what it is. */
static void size_blank_inside_names_the_blank(void **state)
{
        char buf[160];

        assert_true(size_blank_inside("2 G", buf, sizeof(buf)));
        assert_string_equal(buf, "\"2 G\" has a blank between the number and its unit; write 2G");
        assert_true(size_blank_inside("1.5  GiB", buf, sizeof(buf)));
        assert_non_null(strstr(buf, "; write 1.5GiB"));
        assert_true(size_blank_inside("512\tmb", buf, sizeof(buf)));
        assert_non_null(strstr(buf, "; write 512mb"));
        /* Anything else is no blank that alone is wrong. */
        const char *others[] = {"2G", "2 X",  "2 G B", " 2G",  "2G ", "G 2",
                                "2 ", "lots", "-2 G",  "2 1G", ""};
        for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
                assert_false(size_blank_inside(others[i], buf, sizeof(buf)));
                assert_string_equal(buf, "");
        }
        /* A short buffer is cut, still a string. */
        assert_true(size_blank_inside("2 G", buf, 8));
        assert_int_equal(strlen(buf), 7);
}

static void size_parse_detects_overflow(void **state)
{
        uint64_t v = 7;

        assert_int_equal(size_parse("18446744073709551615", &v), 0);
        assert_true(v == UINT64_MAX);
        assert_int_equal(size_parse("18446744073709551616", &v), -ERANGE);
        assert_int_equal(size_parse("17179869184G", &v), -ERANGE);
        assert_int_equal(size_parse("99999999999999999999999", &v), -ERANGE);
}

static void duration_parse_units(void **state)
{
        uint64_t v;

        assert_int_equal(duration_parse("250ms", &v), 0);
        assert_int_equal(v, 250);
        assert_int_equal(duration_parse("2", &v), 0);
        assert_int_equal(v, 2000);
        assert_int_equal(duration_parse("1.5s", &v), 0);
        assert_int_equal(v, 1500);
        assert_int_equal(duration_parse("3m", &v), 0);
        assert_int_equal(v, 180000);
        assert_int_equal(duration_parse("2h", &v), 0);
        assert_int_equal(v, 7200000);
        assert_int_equal(duration_parse("2M", &v), -EINVAL); /* minutes are lower case */
        assert_int_equal(duration_parse("s", &v), -EINVAL);
        assert_int_equal(duration_parse("1d", &v), -EINVAL);
}

static void duration_read_as_names_seconds(void **state)
{
        assert_string_equal(duration_read_as("200"), " (seconds)");
        assert_string_equal(duration_read_as("0.5"), " (seconds)");
        assert_string_equal(duration_read_as("99999999999999999999"), " (seconds)");
        assert_string_equal(duration_read_as("200ms"), "");
        assert_string_equal(duration_read_as("2m"), "");
        assert_string_equal(duration_read_as("0"), "");
        assert_string_equal(duration_read_as("0.0"), "");
        assert_string_equal(duration_read_as("1."), "");
        assert_string_equal(duration_read_as("1.2.3"), "");
        assert_string_equal(duration_read_as(".5"), "");
        assert_string_equal(duration_read_as(""), "");
        assert_string_equal(duration_read_as("soon"), "");
        assert_string_equal(duration_read_as(NULL), "");
}

static void size_format_is_readable(void **state)
{
        char buf[32];

        assert_string_equal(size_format(0, buf, sizeof(buf)), "0 B");
        assert_string_equal(size_format(512 * MIB, buf, sizeof(buf)), "512 MiB");
        assert_string_equal(size_format(3 * GIB / 2, buf, sizeof(buf)), "1.5 GiB");
        assert_string_equal(size_format(2 * TIB, buf, sizeof(buf)), "2 TiB");
        assert_string_equal(size_format(1023, buf, sizeof(buf)), "1023 B");
}

static void size_format_exact_never_rounds(void **state)
{
        char buf[32];

        assert_string_equal(size_format_exact(1792 * MIB, buf, sizeof(buf)), "1792 MiB");
        assert_string_equal(size_format_exact(2 * GIB, buf, sizeof(buf)), "2 GiB");
        assert_string_equal(size_format_exact(GIB + 1, buf, sizeof(buf)), "1073741825 B");
        assert_string_equal(size_format_exact(3 * TIB, buf, sizeof(buf)), "3 TiB");
        assert_string_equal(size_format_exact(0, buf, sizeof(buf)), "0 B");
}

static void duration_format_is_readable(void **state)
{
        char buf[32];

        assert_string_equal(duration_format(250, buf, sizeof(buf)), "250ms");
        assert_string_equal(duration_format(1500, buf, sizeof(buf)), "1.5s");
        assert_string_equal(duration_format(180000, buf, sizeof(buf)), "3m");
        assert_string_equal(duration_format(7200000, buf, sizeof(buf)), "2h");
}

static void rounding(void **state)
{
        assert_int_equal(size_round_up(1, 2 * MIB), 2 * MIB);
        assert_int_equal(size_round_up(2 * MIB, 2 * MIB), 2 * MIB);
        assert_int_equal(size_round_down(3 * MIB, 2 * MIB), 2 * MIB);
        assert_true(size_round_up(UINT64_MAX, 2 * MIB) <= UINT64_MAX);
        assert_int_equal(size_round_up(UINT64_MAX, 2 * MIB) % (2 * MIB), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(size_parse_accepts_suffixes),
            cmocka_unit_test(size_parse_rejects_garbage),
            cmocka_unit_test(size_parse_detects_overflow),
            cmocka_unit_test(size_unit_missing_below_one_mib),
            cmocka_unit_test(size_blank_inside_names_the_blank),
            cmocka_unit_test(duration_parse_units),
            cmocka_unit_test(duration_read_as_names_seconds),
            cmocka_unit_test(size_format_is_readable),
            cmocka_unit_test(size_format_exact_never_rounds),
            cmocka_unit_test(duration_format_is_readable),
            cmocka_unit_test(rounding),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
