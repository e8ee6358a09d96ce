/*
 * Tests for bucket, the one token bucket (log rate limits, agent lines,
 * extra cycles), for mono, the one clock, and for the log's lines.
 */
#include <setjmp.h>
#include <stdbool.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <cmocka.h>

#include "bucket.h"
#include "log.h"
#include "mono.h"

static void starts_full_and_holds_its_burst(void **state)
{
        struct bucket b = BUCKET(10, 3);
        int taken = 0;

        while (bucket_take(&b, 1000.0))
                taken++;
        assert_int_equal(taken, 3);
        /* a long pause refills it to its burst, not beyond */
        taken = 0;
        while (bucket_take(&b, 1000.0 + 3600e3))
                taken++;
        assert_int_equal(taken, 3);
}

static void refills_at_its_rate(void **state)
{
        struct bucket b = BUCKET(20, 1);
        int taken = 0;

        /* 20 a second: over 10 s of steady asking, 1 + 200 */
        for (double t = 0; t <= 10000.0; t += 1.0)
                taken += bucket_take(&b, t);
        assert_int_equal(taken, 201);
}

static bool near(double a, double b)
{
        return a > b - 1e-6 && a < b + 1e-6;
}

static void says_how_long_until_a_token(void **state)
{
        struct bucket b = BUCKET(4, 1);

        assert_true(near(bucket_wait_ms(&b, 0.0), 0.0));
        assert_true(bucket_take(&b, 0.0));
        assert_true(near(bucket_wait_ms(&b, 0.0), 250.0));
        assert_true(near(bucket_wait_ms(&b, 100.0), 150.0));
        assert_false(bucket_take(&b, 249.0));
        assert_true(bucket_take(&b, 250.0));
        /* time going backwards takes nothing away and adds nothing */
        assert_false(bucket_take(&b, 10.0));
        struct bucket never = BUCKET(0, 1);
        assert_true(bucket_take(&never, 0.0));
        assert_true(bucket_wait_ms(&never, 1e9) > 1e9);
}

static void log_ratelimit_counts_what_it_suppresses(void **state)
{
        struct log_ratelimit rl = LOG_RATELIMIT(2, 6); /* bursts of 2, one every 10 s */

        assert_true(log_ratelimit_ok(&rl, 0));
        assert_true(log_ratelimit_ok(&rl, 0));
        assert_false(log_ratelimit_ok(&rl, 5000));
        assert_false(log_ratelimit_ok(&rl, 9000));
        assert_int_equal(rl.suppressed, 2);
        assert_true(log_ratelimit_ok(&rl, 10000));
}

/*
 * Text from outside (a QEMU's error description, a parser's complaint about
 * what it sent) cannot start a line of its own in the log, nor carry terminal
 * escapes: control characters are written as spaces.
 */
static void a_message_is_one_line_whatever_its_arguments_hold(void **state)
{
        char path[] = "/tmp/test-bucket-log-XXXXXX", text[512];
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);

        (void)state;
        assert_true(fd >= 0 && saved >= 0);
        log_setup("test", LOG_TARGET_STDERR, LOG_INFO);
        dup2(fd, STDERR_FILENO);
        log_msg(LOG_WARNING, "vm \"%s\": QEMU refused %s: %s", "t", "a balloon target",
                "no\nvm \"other\": forged\r\x1b[2J\x7f");
        dup2(saved, STDERR_FILENO);
        close(saved);
        ssize_t n = pread(fd, text, sizeof(text) - 1, 0);
        close(fd);
        unlink(path);
        assert_true(n > 0);
        text[n] = '\0';
        assert_string_equal(text, "test: warning: vm \"t\": QEMU refused a balloon target: no vm "
                                  "\"other\": forged  [2J \n");
}

static void the_clock_moves_forward(void **state)
{
        uint64_t a = mono_ms();
        double b = mono_ms_exact();
        uint64_t c = mono_ms();

        assert_true(a <= c);
        assert_true(b >= (double)a && b < (double)c + 1.0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(starts_full_and_holds_its_burst),
            cmocka_unit_test(refills_at_its_rate),
            cmocka_unit_test(says_how_long_until_a_token),
            cmocka_unit_test(log_ratelimit_counts_what_it_suppresses),
            cmocka_unit_test(a_message_is_one_line_whatever_its_arguments_hold),
            cmocka_unit_test(the_clock_moves_forward),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
