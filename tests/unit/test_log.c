/*
 * Tests for log_clean: text from outside made fit for a terminal or a log
 * line (control characters as spaces, cut at a character with "...").
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"

static void controls_become_spaces(void **state)
{
        char out[64];

        (void)state;
        assert_int_equal(log_clean(out, sizeof(out), "a\x1b[31mred\x07\r\nb\x7f"), 14);
        assert_string_equal(out, "a [31mred   b ");
        /* C1 controls in UTF-8 (U+009B is a CSI of its own); other characters stay */
        log_clean(out, sizeof(out),
                  "x\xc2\x9b"
                  "2Jy \xc3\xa9t\xc3\xa9 \xc2\xa0z");
        assert_string_equal(out, "x 2Jy \xc3\xa9t\xc3\xa9 \xc2\xa0z");
        log_clean(out, sizeof(out), "");
        assert_string_equal(out, "");
}

static void long_text_is_cut_at_a_character(void **state)
{
        char out[10], in[64];

        (void)state;
        assert_int_equal(log_clean(out, sizeof(out), "123456789"), 9);
        assert_string_equal(out, "123456789");
        assert_int_equal(log_clean(out, sizeof(out), "1234567890"), 9);
        assert_string_equal(out, "123456...");
        /* é is two bytes: never half of it */
        log_clean(out, sizeof(out),
                  "12345\xc3\xa9"
                  "7890");
        assert_string_equal(out, "12345...");
        /* in place */
        strcpy(in, "ab\x1b"
                   "cdefghijklmnop");
        log_clean(in, 8, in);
        assert_string_equal(in, "ab c...");
}

/* A burst of 2, 1 a minute: what was held back is counted once, for the next line allowed. */
static void suppressed_lines_are_counted_for_the_next_one(void **state)
{
        struct log_ratelimit rl = LOG_RATELIMIT(2, 1);

        (void)state;
        assert_true(log_ratelimit_ok(&rl, 0));
        assert_true(log_ratelimit_ok(&rl, 0));
        assert_false(log_ratelimit_ok(&rl, 1000));
        assert_false(log_ratelimit_ok(&rl, 2000));
        assert_false(log_ratelimit_ok(&rl, 3000));
        assert_true(log_ratelimit_ok(&rl, 61000));
        assert_int_equal(log_ratelimit_take_suppressed(&rl), 3);
        assert_int_equal(log_ratelimit_take_suppressed(&rl), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(controls_become_spaces),
            cmocka_unit_test(long_text_is_cut_at_a_character),
            cmocka_unit_test(suppressed_lines_are_counted_for_the_next_one),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
