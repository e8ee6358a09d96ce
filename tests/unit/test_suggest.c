/*
 * Tests for suggest: the nearest known name to a misspelt key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "suggest.h"

static const char *nearest(const char *word, const char *const *names)
{
        struct suggest s;

        suggest_init(&s, word);
        for (; *names; names++)
                suggest_offer(&s, *names);
        return suggest_best(&s);
}

static void distances(void **state)
{
        assert_int_equal(suggest_distance("weight", "weight"), 0);
        assert_int_equal(suggest_distance("wieght", "weight"), 1); /* a swap is one edit */
        assert_int_equal(suggest_distance("weigth", "weight"), 1);
        assert_int_equal(suggest_distance("wight", "weight"), 1);
        assert_int_equal(suggest_distance("weightt", "weight"), 1);
        assert_int_equal(suggest_distance("maxmum", "maximum"), 1);
        assert_int_equal(suggest_distance("Startup", "startup"), 0);
        assert_int_equal(suggest_distance("strat", "start"), 1);
        assert_int_equal(suggest_distance("", "abc"), 3);
        assert_int_equal(suggest_distance("abc", ""), 3);
        assert_int_equal(suggest_distance("kitten", "sitting"), 3);
        char longer[SUGGEST_NAME_MAX + 2];
        memset(longer, 'a', sizeof(longer) - 1);
        longer[sizeof(longer) - 1] = '\0';
        assert_int_equal(suggest_distance(longer, "a"), SIZE_MAX);
}

static void the_nearest_name_within_two_edits(void **state)
{
        static const char *const vm[] = {
            "dynamic",   "startup", "minimum", "maximum", "buffer",       "weight", "block", "lend",
            "autostart", "trace",   "start",   "swap",    "report_scale", "psi",    NULL};

        assert_string_equal(nearest("wieght", vm), "weight");
        assert_string_equal(nearest("Weight", vm), "weight");
        assert_string_equal(nearest("dynamc", vm), "dynamic");
        assert_string_equal(nearest("minimun", vm), "minimum");
        assert_string_equal(nearest("buffre", vm), "buffer");
        assert_string_equal(nearest("tarce", vm), "trace");
        assert_string_equal(nearest("reportscale", vm), "report_scale");
        /* start is 1 from "strat", startup 3: the nearer wins. */
        assert_string_equal(nearest("strat", vm), "start");
        /* Nothing near. */
        assert_null(nearest("colour", vm));
        assert_null(nearest("kernel", vm));
        assert_null(nearest("memory", vm));
        /* A short word is not a name with all its letters replaced. */
        assert_null(nearest("ps", (const char *const[]){"ab", NULL}));
        assert_string_equal(nearest("pi", vm), "psi");
        /* Ties go to the first offered. */
        assert_string_equal(nearest("abd", (const char *const[]){"abc", "abe", NULL}), "abc");
        /* A NULL word or name is no suggestion. */
        struct suggest s;
        suggest_init(&s, NULL);
        suggest_offer(&s, "weight");
        assert_null(suggest_best(&s));
        suggest_init(&s, "weight");
        suggest_offer(&s, NULL);
        assert_null(suggest_best(&s));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(distances),
            cmocka_unit_test(the_nearest_name_within_two_edits),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
