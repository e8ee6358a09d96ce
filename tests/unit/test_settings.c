/*
 * Tests for settings: the table (one row per bit, names found back, values
 * read by type), defaults, the checks on one set of settings, and the rules
 * for what may change while a VM runs, row by row.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "settings.h"

/* A valid dynamic VM: startup 1 GiB in [512 MiB, 4 GiB]. */
static struct vm_settings valid(void)
{
        struct vm_settings s = {.dynamic = true};

        settings_complete(&s, SETTINGS_DYNAMIC);
        return s;
}

static void expect_invalid(const struct vm_settings *s, const char *needle)
{
        char err[256] = "";

        assert_int_equal(settings_check(s, err, sizeof(err)), -EINVAL);
        if (!strstr(err, needle))
                fail_msg("error \"%s\" does not mention \"%s\"", err, needle);
}

static void complete_all_defaults(void **state)
{
        struct vm_settings s;

        memset(&s, 0xA5, sizeof(s));
        settings_complete(&s, 0);
        assert_false(s.dynamic);
        assert_int_equal(s.startup_bytes, 1 * GIB);
        assert_int_equal(s.minimum_bytes, 512 * MIB);
        assert_int_equal(s.maximum_bytes, 1 * GIB); /* static: maximum = startup */
        assert_int_equal(s.buffer_percent, 20);
        assert_int_equal(s.weight, 5000);
        assert_int_equal(s.block_bytes, 2 * MIB);
        assert_true(s.lend); /* may borrow; lending itself is the host's lend_hold */
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
}

static void complete_derives_from_given(void **state)
{
        struct vm_settings s = {.dynamic = true, .startup_bytes = 256 * MIB};

        settings_complete(&s, SETTINGS_DYNAMIC | SETTINGS_STARTUP);
        assert_true(s.dynamic);
        assert_int_equal(s.startup_bytes, 256 * MIB);
        assert_int_equal(s.minimum_bytes, 256 * MIB); /* min(512 MiB, startup) */
        assert_int_equal(s.maximum_bytes, 1 * GIB);   /* 4 x startup for dynamic VMs */

        s = (struct vm_settings){.dynamic = true, .startup_bytes = 2 * GIB};
        settings_complete(&s, SETTINGS_DYNAMIC | SETTINGS_STARTUP);
        assert_int_equal(s.minimum_bytes, 512 * MIB);
        assert_int_equal(s.maximum_bytes, 8 * GIB);

        /* 4 x startup saturates at the sanity bound. */
        s = (struct vm_settings){.dynamic = true, .startup_bytes = SETTINGS_SIZE_MAX};
        settings_complete(&s, SETTINGS_DYNAMIC | SETTINGS_STARTUP);
        assert_int_equal(s.maximum_bytes, SETTINGS_SIZE_MAX);
        s = (struct vm_settings){.dynamic = true, .startup_bytes = UINT64_MAX / 2};
        settings_complete(&s, SETTINGS_DYNAMIC | SETTINGS_STARTUP);
        assert_int_equal(s.maximum_bytes, SETTINGS_SIZE_MAX);
}

static void complete_keeps_given_fields(void **state)
{
        struct vm_settings s = {
            .dynamic = true,
            .startup_bytes = 3 * GIB,
            .minimum_bytes = 64 * MIB,
            .maximum_bytes = 5 * GIB,
            .buffer_percent = 77,
            .weight = 0,
            .block_bytes = 4 * MIB,
            .lend = false,
        };

        settings_complete(&s, SETTINGS_DYNAMIC | SETTINGS_STARTUP | SETTINGS_MINIMUM |
                                  SETTINGS_MAXIMUM | SETTINGS_BUFFER | SETTINGS_WEIGHT |
                                  SETTINGS_BLOCK | SETTINGS_LEND);
        assert_true(s.dynamic);
        assert_int_equal(s.startup_bytes, 3 * GIB);
        assert_int_equal(s.minimum_bytes, 64 * MIB);
        assert_int_equal(s.maximum_bytes, 5 * GIB);
        assert_int_equal(s.buffer_percent, 77);
        assert_int_equal(s.weight, 0);
        assert_int_equal(s.block_bytes, 4 * MIB);
        assert_false(s.lend);
}

static void check_block_size(void **state)
{
        struct vm_settings s = valid();

        s.block_bytes = 3 * MIB;
        expect_invalid(&s, "block size");
        s.block_bytes = 2048; /* below 4 KiB */
        expect_invalid(&s, "block size");
        s.block_bytes = 2 * GIB; /* above 1 GiB */
        expect_invalid(&s, "block size");
        s.block_bytes = 0;
        expect_invalid(&s, "block size");
        s.block_bytes = 4096;
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
        s.block_bytes = 512 * MIB;
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
        s.block_bytes = GIB;
        expect_invalid(&s, "minimum 512 MiB is not a multiple of the 1 GiB block size");
        s.minimum_bytes = GIB;
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
}

static void check_alignment(void **state)
{
        struct vm_settings s = valid();

        s.startup_bytes += 4096;
        expect_invalid(&s, "startup");
        expect_invalid(&s, "multiple of the 2 MiB block");
        /* Shown exactly, not as "1.0 GiB", which would look like a multiple. */
        expect_invalid(&s, "startup 1048580 KiB is not a multiple of the 2 MiB block size");
        s.startup_bytes = GIB + 100;
        /* bytes alone, "1073741924 B", were no size an operator wrote: MiB, and the exact bytes */
        expect_invalid(&s, "startup 1024.0 MiB (1073741924 B) is not a multiple of the 2 MiB "
                           "block size, as 1 GiB and 1026 MiB are");
        s.startup_bytes = 1395864371; /* 1.3G */
        expect_invalid(&s, "startup 1331.2 MiB (1395864371 B) is not a multiple of the 2 MiB "
                           "block size, as 1330 MiB and 1332 MiB are");
        /* a multiple below the least startup is no value to suggest */
        s.startup_bytes = 33 * MIB;
        expect_invalid(&s, "startup 33 MiB is not a multiple of the 2 MiB block size, as "
                           "32 MiB and 34 MiB are");
        s.startup_bytes = 31 * MIB;
        expect_invalid(&s, "startup 31 MiB is not a multiple of the 2 MiB block size, as "
                           "32 MiB is");
        s.startup_bytes = 1025 * MIB;
        expect_invalid(&s, "startup 1025 MiB is not a multiple");
        s = valid();
        s.minimum_bytes += MIB;
        expect_invalid(&s, "minimum");
        s = valid();
        s.maximum_bytes -= MIB;
        expect_invalid(&s, "maximum");
        s = valid();
        s.block_bytes = 64 * MIB;
        s.minimum_bytes = 96 * MIB; /* a multiple of 32 MiB, not of 64 MiB */
        expect_invalid(&s, "minimum");
}

static void check_ranges(void **state)
{
        struct vm_settings s = valid();

        s.maximum_bytes = SETTINGS_SIZE_MAX + 2 * MIB;
        expect_invalid(&s, "larger than 16 TiB");
        s.maximum_bytes = SETTINGS_SIZE_MAX;
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);

        s = valid();
        s.minimum_bytes = SETTINGS_MINIMUM_FLOOR - 2 * MIB;
        expect_invalid(&s, "below 32 MiB");
        s.minimum_bytes = 0;
        expect_invalid(&s, "below");
        s.minimum_bytes = SETTINGS_MINIMUM_FLOOR;
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);

        /* A startup below the floor is named, not the minimum that follows it by default. */
        s = valid();
        s.startup_bytes = 16 * MIB;
        settings_complete(&s, SETTINGS_ALL & ~SETTINGS_MINIMUM);
        expect_invalid(&s, "startup 16 MiB is below 32 MiB");
        s.startup_bytes = s.minimum_bytes = 0;
        expect_invalid(&s, "startup 0 B is below 32 MiB");

        s = valid();
        s.buffer_percent = SETTINGS_BUFFER_MIN - 1;
        expect_invalid(&s, "buffer");
        s.buffer_percent = SETTINGS_BUFFER_MAX + 1;
        expect_invalid(&s, "buffer");
        s.buffer_percent = SETTINGS_BUFFER_MIN;
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
        s.buffer_percent = SETTINGS_BUFFER_MAX;
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);

        s = valid();
        s.weight = SETTINGS_WEIGHT_MAX + 1;
        expect_invalid(&s, "weight");
        s.weight = UINT32_MAX;
        expect_invalid(&s, "weight");
        s.weight = SETTINGS_WEIGHT_MAX;
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
        s.weight = 0;
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
}

static void check_ordering(void **state)
{
        struct vm_settings s = valid();

        s.minimum_bytes = s.startup_bytes + 2 * MIB;
        expect_invalid(&s, "is above startup 1 GiB");
        s = valid();
        s.maximum_bytes = s.startup_bytes - 2 * MIB;
        expect_invalid(&s, "startup 1 GiB is above maximum");
        s = valid();
        s.minimum_bytes = s.startup_bytes = s.maximum_bytes = 64 * MIB; /* all equal is fine */
        assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
}

/* The settings as a file or `dynmem create` gives them, completed: the sizes in mib, 0 not given.
 */
static void expect_order_error(bool dynamic, uint64_t startup, uint64_t minimum, uint64_t maximum,
                               const char *want)
{
        struct vm_settings s = {.dynamic = dynamic,
                                .startup_bytes = startup * MIB,
                                .minimum_bytes = minimum * MIB,
                                .maximum_bytes = maximum * MIB};
        unsigned given = SETTINGS_DYNAMIC | (startup ? SETTINGS_STARTUP : 0) |
                         (minimum ? SETTINGS_MINIMUM : 0) | (maximum ? SETTINGS_MAXIMUM : 0);
        char err[256] = "";

        settings_complete(&s, given);
        assert_int_equal(settings_check_given(&s, given, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, want);
}

static void check_ordering_names_what_was_given(void **state)
{
        /* startup defaults to 1 GiB: this named it before ("above startup 1 GiB"). */
        expect_order_error(false, 0, 2048, 1024, "minimum 2 GiB is above maximum 1 GiB");
        expect_order_error(true, 0, 2048, 1024, "minimum 2 GiB is above maximum 1 GiB");
        /* A default the message has to name is said to be one. */
        expect_order_error(true, 0, 2048, 8192,
                           "minimum 2 GiB is above startup 1 GiB (startup is not set and "
                           "defaults to 1 GiB)");
        expect_order_error(true, 0, 0, 256,
                           "startup 1 GiB is above maximum 256 MiB (startup is not set and "
                           "defaults to 1 GiB)");
        expect_order_error(true, 0, 2048, 0,
                           "minimum 2 GiB is above startup 1 GiB (startup is not set and "
                           "defaults to 1 GiB)");
        /* All given: as settings_check() says it. */
        expect_order_error(true, 1024, 2048, 4096, "minimum 2 GiB is above startup 1 GiB");
        expect_order_error(true, 4096, 1024, 2048, "startup 4 GiB is above maximum 2 GiB");
        expect_order_error(true, 1024, 4096, 2048, "minimum 4 GiB is above startup 1 GiB");
        /* Given sizes in order are not blamed on a default. */
        struct vm_settings s = {.dynamic = true, .minimum_bytes = 512 * MIB};
        settings_complete(&s, SETTINGS_DYNAMIC | SETTINGS_MINIMUM);
        assert_int_equal(
            settings_check_given(&s, SETTINGS_DYNAMIC | SETTINGS_MINIMUM, (char[64]){0}, 64), 0);
}

/* The settings a message names, in its order, for a reader that points at their keys. */
static void check_names_the_settings_of_its_message(void **state)
{
        static const struct {
                unsigned given;
                struct vm_settings s;
                unsigned first, second;
        } cases[] = {
            /* minimum = 2G, maximum = 1G: "minimum 2 GiB is above maximum 1 GiB" */
            {SETTINGS_MINIMUM | SETTINGS_MAXIMUM,
             {.minimum_bytes = 2 * GIB, .maximum_bytes = GIB},
             SETTINGS_MINIMUM,
             SETTINGS_MAXIMUM},
            /* a default named is named too: "... above startup 1 GiB (startup is not set ...)" */
            {SETTINGS_DYNAMIC | SETTINGS_MINIMUM,
             {.dynamic = true, .minimum_bytes = 2 * GIB},
             SETTINGS_MINIMUM,
             SETTINGS_STARTUP},
            /* "startup 1026 MiB is not a multiple of the 4 MiB block size" */
            {SETTINGS_STARTUP | SETTINGS_BLOCK,
             {.startup_bytes = 1026 * MIB, .block_bytes = 4 * MIB},
             SETTINGS_STARTUP,
             SETTINGS_BLOCK},
            /* one setting on its own */
            {SETTINGS_BLOCK, {.block_bytes = 3 * MIB}, SETTINGS_BLOCK, 0},
            {SETTINGS_STARTUP, {.startup_bytes = 16 * MIB}, SETTINGS_STARTUP, 0},
            {SETTINGS_WEIGHT, {.weight = 10001}, SETTINGS_WEIGHT, 0},
        };
        char err[256];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                struct vm_settings s = cases[i].s;
                unsigned named[2] = {~0u, ~0u};

                settings_complete(&s, cases[i].given);
                assert_int_equal(settings_check_naming(&s, cases[i].given, named, err, sizeof(err)),
                                 -EINVAL);
                assert_int_equal(named[0], cases[i].first);
                assert_int_equal(named[1], cases[i].second);
        }
        /* minimum not given, named by another rule: said to be a default */
        struct vm_settings s = {.block_bytes = GIB};
        settings_complete(&s, SETTINGS_BLOCK);
        assert_int_equal(settings_check_given(&s, SETTINGS_BLOCK, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "minimum 512 MiB is not a multiple of the 1 GiB block size, "
                                 "as 1 GiB is (minimum is not set and defaults to the smaller of "
                                 "512 MiB and startup)");
}

static void check_error_text_fits(void **state)
{
        struct vm_settings s = valid();
        char err[8];

        s.weight = 99999;
        assert_int_equal(settings_check(&s, err, sizeof(err)), -EINVAL);
        assert_true(strlen(err) < sizeof(err));
}

static void change_while_off_allows_anything_valid(void **state)
{
        struct vm_settings old = valid(), new = old;
        char err[256];

        new.dynamic = false;
        new.startup_bytes = 2 * GIB;
        new.maximum_bytes = 2 * GIB;
        new.minimum_bytes = 1 * GIB;
        new.block_bytes = 4 * MIB;
        assert_int_equal(settings_check_change(&old, &new, false, err, sizeof(err)), 0);

        new.minimum_bytes = 4 * GIB; /* invalid on its own: refused even while off */
        assert_int_equal(settings_check_change(&old, &new, false, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "minimum"));
}

static void change_while_running(void **state)
{
        struct vm_settings old = valid(), new;
        char err[256];

        new = old;
        new.dynamic = false;
        new.maximum_bytes = new.startup_bytes;
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), -EPERM);
        assert_non_null(strstr(err, "dynamic"));

        new = old;
        new.startup_bytes = 2 * GIB;
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), -EPERM);
        assert_string_equal(err, "cannot change startup while the VM is running");

        new = old;
        new.block_bytes = 4 * MIB;
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), -EPERM);

        new = old;
        new.minimum_bytes = old.minimum_bytes + 2 * MIB; /* raising the minimum */
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), -EPERM);
        assert_non_null(strstr(err, "minimum"));
        new.minimum_bytes = old.minimum_bytes - 2 * MIB; /* lowering it */
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), 0);

        new = old;
        new.maximum_bytes = old.maximum_bytes - 2 * MIB; /* lowering the maximum */
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), -EPERM);
        assert_non_null(strstr(err, "maximum"));
        new.maximum_bytes = old.maximum_bytes + 2 * MIB; /* raising it */
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), 0);

        new = old;
        new.buffer_percent = 500;
        new.weight = 0;
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), 0);
        new.weight = 10000;
        new.buffer_percent = 5;
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), 0);
        new.lend = !old.lend; /* switched at any time: a loan ends at the next decision */
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), 0);
        assert_int_equal(settings_check_change(&new, &old, true, err, sizeof(err)), 0);

        /* An unchanged set is always fine. */
        assert_int_equal(settings_check_change(&old, &old, true, err, sizeof(err)), 0);

        /* A lowered minimum must still respect the floor; a raised maximum the bound. */
        new = old;
        new.minimum_bytes = 16 * MIB;
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), -EINVAL);
        new = old;
        new.maximum_bytes = SETTINGS_SIZE_MAX * 2;
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), -EINVAL);
        new = old;
        new.buffer_percent = 1;
        assert_int_equal(settings_check_change(&old, &new, true, err, sizeof(err)), -EINVAL);
}

/*
 * What a running VM refuses is named by its setting, every one on its own
 * rule whatever the others change (a reload applies the rest), each with
 * its reason; the first in table order is the one settings_check_change()
 * names.
 */
static void running_refusals_are_named_by_setting(void **state)
{
        struct vm_settings old = valid(), new = old;
        char err[128] = "";

        assert_int_equal(settings_running_refused(&old, &old), 0);
        new.weight = 100;
        new.buffer_percent = 50;
        new.lend = !old.lend;
        new.minimum_bytes = old.minimum_bytes - 2 * MIB;
        new.maximum_bytes = old.maximum_bytes + 2 * MIB;
        assert_int_equal(settings_running_refused(&old, &new), 0);
        assert_int_equal(settings_running_why(&old, &new, SETTINGS_MAXIMUM, err, sizeof(err)), 0);
        new.maximum_bytes = old.maximum_bytes - 2 * MIB;
        assert_int_equal(settings_running_refused(&old, &new), SETTINGS_MAXIMUM);
        assert_int_equal(settings_running_why(&old, &new, SETTINGS_MAXIMUM, err, sizeof(err)),
                         -EPERM);
        assert_string_equal(err, "maximum can only be raised while the VM is running");
        new.startup_bytes = 2 * GIB;
        new.block_bytes = 4 * MIB;
        new.dynamic = !old.dynamic;
        assert_int_equal(settings_running_refused(&old, &new),
                         SETTINGS_DYNAMIC | SETTINGS_STARTUP | SETTINGS_MAXIMUM | SETTINGS_BLOCK);
        assert_int_equal(settings_running_why(&old, &new, SETTINGS_DYNAMIC, err, sizeof(err)),
                         -EPERM);
        assert_string_equal(err, "cannot change dynamic while the VM is running");
        assert_int_equal(settings_running_why(&old, &new, SETTINGS_BLOCK, err, sizeof(err)),
                         -EPERM);
        assert_string_equal(err, "cannot change block size while the VM is running");
        new = old;
        new.minimum_bytes = old.minimum_bytes + 2 * MIB;
        new.weight = 1;
        assert_int_equal(settings_running_refused(&old, &new), SETTINGS_MINIMUM);
        assert_int_equal(settings_running_why(&old, &new, SETTINGS_MINIMUM, err, sizeof(err)),
                         -EPERM);
        assert_string_equal(err, "minimum can only be lowered while the VM is running");
        assert_int_equal(settings_running_why(&old, &new, SETTINGS_WEIGHT, err, sizeof(err)), 0);
}

/* Row i is bit i; every name finds its row back; no two rows share a name or a field. */
static void table_rows_match_bits_and_names(void **state)
{
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                assert_int_equal(d->bit, 1u << i);
                assert_ptr_equal(settings_find(d->name), d);
                assert_ptr_equal(settings_find_json(d->json), d);
                assert_true(d->offset < sizeof(struct vm_settings));
                assert_true(d->min <= d->max && d->max <= settings_type_max(d));
                for (size_t j = 0; j < i; j++) {
                        assert_true(strcmp(d->name, settings_table[j].name) != 0);
                        assert_true(strcmp(d->json, settings_table[j].json) != 0);
                        assert_true(d->offset != settings_table[j].offset);
                }
        }
        assert_null(settings_find("autostart")); /* a definition's, not a setting */
        assert_null(settings_find("startup_bytes"));
        assert_null(settings_find_json("startup"));
        assert_int_equal(SETTINGS_ALL, (1u << SETTINGS_N) - 1);
}

/* Each row reads and writes its own field and no other: set, get, diff, merge. */
static void table_rows_own_their_field(void **state)
{
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                struct vm_settings a = valid(), b = a, merged = a;
                uint64_t v = settings_get(&a, d) == d->max ? d->min : d->max;

                settings_set(&b, d, v);
                assert_int_equal(settings_get(&b, d), v);
                assert_int_equal(settings_diff(&a, &b), d->bit);
                assert_int_equal(settings_diff(&a, &a), 0);
                settings_merge(&merged, &b, SETTINGS_ALL & ~d->bit);
                assert_int_equal(settings_diff(&merged, &a), 0);
                settings_merge(&merged, &b, d->bit);
                assert_int_equal(settings_diff(&merged, &b), 0);
        }
}

static void parse_text_by_type(void **state)
{
        const struct setting_desc *dynamic = settings_find("dynamic");
        const struct setting_desc *startup = settings_find("startup");
        const struct setting_desc *buffer = settings_find("buffer");
        const struct setting_desc *weight = settings_find("weight");
        const struct setting_desc *block = settings_find("block");
        const struct setting_desc *lend = settings_find("lend");
        uint64_t v = 77;

        assert_non_null(lend);
        assert_int_equal(lend->type, SETTING_SWITCH);
        assert_int_equal(lend->change, SETTING_ANY_TIME);
        assert_ptr_equal(settings_find_json("lend"), lend);
        assert_int_equal(settings_parse_text(lend, "no", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(settings_parse_text(lend, "yes", &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(settings_parse_text(lend, "sometimes", &v), -EINVAL);
        assert_int_equal(v, 1);

        assert_int_equal(settings_parse_text(dynamic, "On", &v), 0);
        assert_int_equal(v, 1);
        assert_int_equal(settings_parse_text(dynamic, "no", &v), 0);
        assert_int_equal(v, 0);
        assert_int_equal(settings_parse_text(dynamic, "maybe", &v), -EINVAL);
        assert_int_equal(settings_parse_text(startup, "1.5G", &v), 0);
        assert_int_equal(v, 1536 * MIB);
        assert_int_equal(settings_parse_text(block, "4M", &v), 0);
        assert_int_equal(v, 4 * MIB);
        assert_int_equal(settings_parse_text(startup, "lots", &v), -EINVAL);
        /* A number too large for the type is -ERANGE, apart from what is not a number. */
        assert_int_equal(settings_parse_text(startup, "16777216T", &v), -ERANGE); /* 2^64 */
        assert_int_equal(settings_parse_text(startup, "8388608T", &v), -ERANGE);  /* 2^63 */
        assert_int_equal(settings_parse_text(startup, "17T", &v),
                         0); /* the range is checked later */
        assert_int_equal(settings_parse_text(startup, "17X", &v), -EINVAL);
        assert_int_equal(settings_parse_text(buffer, "35%", &v), 0);
        assert_int_equal(v, 35);
        assert_int_equal(settings_parse_text(buffer, "4", &v), 0); /* the range is checked later */
        assert_int_equal(v, 4);
        assert_int_equal(settings_parse_text(weight, "35%", &v), -EINVAL); /* not a percentage */
        assert_int_equal(settings_parse_text(weight, "4294967295", &v), 0);
        assert_int_equal(settings_parse_text(weight, "4294967296", &v), -ERANGE);
        assert_int_equal(settings_parse_text(weight, "99999999999999999999999", &v), -ERANGE);
        assert_int_equal(settings_parse_text(buffer, "99999999999999999999999%", &v), -ERANGE);
        assert_int_equal(settings_parse_text(weight, "4294967296x", &v), -EINVAL);
        assert_int_equal(settings_parse_text(weight, "-1", &v), -EINVAL);
        assert_int_equal(settings_parse_text(weight, "", &v), -EINVAL);
        v = 77;
        assert_int_equal(settings_parse_text(weight, "1.5", &v), -EINVAL);
        assert_int_equal(v, 77); /* untouched on failure */
        assert_non_null(strstr(settings_expected(startup), "size"));
        assert_non_null(strstr(settings_expected(weight), "whole number"));
        assert_non_null(strstr(settings_expected(dynamic), "yes/no, on/off, true/false or 1/0"));
}

/* Every whole-number row: its bounds pass settings_check, one beyond fails naming it. */
static void check_number_rows_at_their_bounds(void **state)
{
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                struct vm_settings s = valid();

                if (d->type != SETTING_NUMBER)
                        continue;
                settings_set(&s, d, d->min);
                assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
                settings_set(&s, d, d->max);
                assert_int_equal(settings_check(&s, (char[64]){0}, 64), 0);
                settings_set(&s, d, d->max + 1);
                expect_invalid(&s, d->label);
                if (d->min > 0) {
                        settings_set(&s, d, d->min - 1);
                        expect_invalid(&s, "is outside");
                }
        }
}

/* Every row's change rule, applied to a running VM one row at a time. */
static void change_rules_row_by_row(void **state)
{
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                struct vm_settings old = valid(), up;
                char err[256] = "";

                /* `up` holds a valid other value of this row alone (larger, or a switch flipped) */
                old.dynamic = false; /* valid either way: startup 1 GiB <= maximum 4 GiB */
                old.lend = false;    /* on by default: off, so that `up` is on */
                up = old;
                uint64_t was = settings_get(&old, d);
                uint64_t step = d->type != SETTING_SIZE    ? 1
                                : d->bit == SETTINGS_BLOCK ? was /* the next power of two */
                                                           : old.block_bytes;
                settings_set(&up, d, was + step);
                assert_int_equal(settings_diff(&old, &up), d->bit);
                assert_int_equal(settings_check(&up, err, sizeof(err)), 0);

                int r_up = settings_check_change(&old, &up, true, err, sizeof(err));
                int r_down = settings_check_change(&up, &old, true, err, sizeof(err));
                switch (d->change) {
                case SETTING_ANY_TIME:
                        assert_int_equal(r_up, 0);
                        assert_int_equal(r_down, 0);
                        break;
                case SETTING_WHILE_OFF:
                        assert_int_equal(r_up, -EPERM);
                        assert_int_equal(r_down, -EPERM);
                        assert_non_null(strstr(err, d->label));
                        break;
                case SETTING_ONLY_LOWER:
                        assert_int_equal(r_up, -EPERM);
                        assert_int_equal(r_down, 0);
                        break;
                case SETTING_ONLY_RAISE:
                        assert_int_equal(r_up, 0);
                        assert_int_equal(r_down, -EPERM);
                        break;
                }
                /* while off, anything valid goes */
                assert_int_equal(settings_check_change(&old, &up, false, err, sizeof(err)), 0);
                assert_int_equal(settings_check_change(&up, &old, false, err, sizeof(err)), 0);
        }
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(complete_all_defaults),
            cmocka_unit_test(complete_derives_from_given),
            cmocka_unit_test(complete_keeps_given_fields),
            cmocka_unit_test(check_block_size),
            cmocka_unit_test(check_alignment),
            cmocka_unit_test(check_ranges),
            cmocka_unit_test(check_ordering),
            cmocka_unit_test(check_ordering_names_what_was_given),
            cmocka_unit_test(check_names_the_settings_of_its_message),
            cmocka_unit_test(check_error_text_fits),
            cmocka_unit_test(change_while_off_allows_anything_valid),
            cmocka_unit_test(change_while_running),
            cmocka_unit_test(running_refusals_are_named_by_setting),
            cmocka_unit_test(table_rows_match_bits_and_names),
            cmocka_unit_test(table_rows_own_their_field),
            cmocka_unit_test(parse_text_by_type),
            cmocka_unit_test(check_number_rows_at_their_bounds),
            cmocka_unit_test(change_rules_row_by_row),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
