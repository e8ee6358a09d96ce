/*
 * Tests for config: the INI reader shared by dynmemd and dynmem-sim. A full
 * valid file, then every kind of error with its FILE:LINE, from strings and
 * from real files.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <cmocka.h>

#include "config.h"
#include "testutil.h"

static const char full_file[] = "# a full configuration\n"            /* 1 */
                                "; another comment style\n"           /* 2 */
                                "[host]\n"                            /* 3 */
                                "memory = 8G\n"                       /* 4 */
                                "reserve = 1536M ; inline comment\n"  /* 5 */
                                "policy = hyperv\n"                   /* 6 */
                                "backend = sim\n"                     /* 7 */
                                "interval = 500ms\n"                  /* 8 */
                                "socket = /run/dynmem/control.sock\n" /* 9 */
                                "state_dir = /var/lib/dynmem\n"       /* 10 */
                                "http = 127.0.0.1:8080\n"             /* 11 */
                                "\n"                                  /* 12 */
                                "[policy]\n"                          /* 13 */
                                "min_change = 32M\n"                  /* 14 */
                                "min_change_permille = 50\n"          /* 15 */
                                "shrink_delay = 45s\n"                /* 16 */
                                "shrink_step_percent = 10\n"          /* 17 */
                                "trend_lookahead = 2s\n"              /* 18 */
                                "stall_threshold_permille = 20\n"     /* 19 */
                                "stall_grow_percent = 15\n"           /* 20 */
                                "probe_after = 2m\n"                  /* 21 */
                                "probe_rate_permille = 3\n"           /* 22 */
                                "probe_max_percent = 30\n"            /* 23 */
                                "probe_step_permille = 5\n"           /* 24 */
                                "stall_memory = 1h\n"                 /* 25 */
                                "\n"                                  /* 26 */
                                "[sim]\n"                             /* 27 */
                                "duration = 1h\n"                     /* 28 */
                                "step = 500ms\n"                      /* 29 */
                                "report_interval = 2s\n"              /* 30 */
                                "grow_rate = 2G\n"                    /* 31 */
                                "shrink_rate = 256M\n"                /* 32 */
                                "seed = 42\n"                         /* 33 */
                                "speed = 10.5\n"                      /* 34 */
                                "\n"                                  /* 35 */
                                "[vm \"web-1\"]\n"                    /* 36 */
                                "dynamic = yes\n"                     /* 37 */
                                "startup = 512M\n"                    /* 38 */
                                "minimum = 256M\n"                    /* 39 */
                                "maximum = 2G\n"                      /* 40 */
                                "buffer = 50\n"                       /* 41 */
                                "weight = 8000\n"                     /* 42 */
                                "block = 4M\n"                        /* 43 */
                                "autostart = true\n"                  /* 44 */
                                "trace = traces/web.csv\n"            /* 45 */
                                "start = 30s\n"                       /* 46 */
                                "\n"                                  /* 47 */
                                "[vm \"db_2.x\"]\n"                   /* 48 */
                                "startup = 1G\n";                     /* 49 */

static void full_file_parses(void **state)
{
        struct config c;
        struct config_diag d = {0};

        assert_int_equal(config_load_string("full.ini", full_file, &c, &d), 0);
        assert_int_equal(d.count, 0);
        assert_string_equal(c.path, "full.ini");
        assert_int_equal(c.host.memory_bytes, 8 * GIB);
        assert_true(c.host.memory_given);
        assert_int_equal(c.host.reserve_bytes, 1536 * MIB);
        assert_true(c.host.reserve_given);
        assert_string_equal(c.host.policy, "hyperv");
        assert_string_equal(c.host.backend, "sim");
        assert_int_equal(c.host.interval_ms, 500);
        assert_string_equal(c.host.socket, "/run/dynmem/control.sock");
        assert_string_equal(c.host.state_dir, "/var/lib/dynmem");
        assert_string_equal(c.host.http, "127.0.0.1:8080");

        assert_int_equal(c.tunables.min_change_bytes, 32 * MIB);
        assert_int_equal(c.tunables.min_change_permille, 50);
        assert_int_equal(c.tunables.shrink_delay_ms, 45000);
        assert_int_equal(c.tunables.shrink_step_percent, 10);
        assert_int_equal(c.tunables.trend_lookahead_ms, 2000);
        assert_int_equal(c.tunables.stall_threshold_permille, 20);
        assert_int_equal(c.tunables.stall_grow_percent, 15);
        assert_int_equal(c.tunables.probe_after_ms, 120000);
        assert_int_equal(c.tunables.probe_rate_permille, 3);
        assert_int_equal(c.tunables.probe_max_percent, 30);
        assert_int_equal(c.tunables.probe_step_permille, 5);
        assert_int_equal(c.tunables.stall_memory_ms, 3600000);

        assert_int_equal(c.sim.duration_ms, 3600000);
        assert_int_equal(c.sim.step_ms, 500);
        assert_int_equal(c.sim.report_interval_ms, 2000);
        assert_int_equal(c.sim.grow_rate, 2 * GIB);
        assert_int_equal(c.sim.shrink_rate, 256 * MIB);
        assert_int_equal(c.sim.seed, 42);
        assert_int_equal(config_key_line(&c, "sim", "seed"), 33); /* for the seed's warning */
        assert_true(c.sim.speed == 10.5);

        assert_int_equal(c.n_vms, 2);
        const struct config_vm *w = &c.vms[0], *db = &c.vms[1];
        assert_string_equal(w->name, "web-1");
        assert_int_equal(w->line, 36);
        assert_true(w->settings.dynamic);
        assert_int_equal(w->settings.startup_bytes, 512 * MIB);
        assert_int_equal(w->settings.minimum_bytes, 256 * MIB);
        assert_int_equal(w->settings.maximum_bytes, 2 * GIB);
        assert_int_equal(w->settings.buffer_percent, 50);
        assert_int_equal(w->settings.weight, 8000);
        assert_int_equal(w->settings.block_bytes, 4 * MIB);
        assert_true(w->autostart);
        assert_int_equal(w->given, SETTINGS_DYNAMIC | SETTINGS_STARTUP | SETTINGS_MINIMUM |
                                       SETTINGS_MAXIMUM | SETTINGS_BUFFER | SETTINGS_WEIGHT |
                                       SETTINGS_BLOCK);
        assert_int_equal(w->given_lines[__builtin_ctz(SETTINGS_STARTUP)], 38);
        assert_int_equal(w->given_lines[__builtin_ctz(SETTINGS_WEIGHT)], 42);
        assert_int_equal(w->n_extra, 2);
        assert_string_equal(w->extra[0].key, "trace");
        assert_string_equal(w->extra[0].value, "traces/web.csv");
        assert_int_equal(w->extra[0].line, 45);
        assert_string_equal(w->extra[1].key, "start");
        assert_string_equal(w->extra[1].value, "30s");
        assert_int_equal(w->extra[1].line, 46);
        assert_ptr_equal(config_vm_key(w, "start"), &w->extra[1]);
        assert_null(config_vm_key(w, "swap"));

        /* Defaults filled in for what was not given. */
        assert_string_equal(db->name, "db_2.x");
        assert_int_equal(db->line, 48);
        assert_false(db->settings.dynamic);
        assert_int_equal(db->settings.startup_bytes, GIB);
        assert_int_equal(db->settings.minimum_bytes, 512 * MIB);
        assert_int_equal(db->settings.maximum_bytes, GIB);
        assert_int_equal(db->settings.buffer_percent, 20);
        assert_int_equal(db->settings.weight, 5000);
        assert_int_equal(db->settings.block_bytes, 2 * MIB);
        assert_true(db->settings.lend); /* may borrow when the host lends */
        assert_false(db->autostart);
        assert_int_equal(db->n_extra, 0);

        /* The keys only dynmemd reads, where they are given (dynmem-sim warns of each). */
        static const struct config_key_at daemon_keys[] = {
            {"backend", 7, "host"}, {"socket", 9, "host"}, {"state_dir", 10, "host"},
            {"http", 11, "host"},   {"speed", 34, "sim"},  {"autostart", 44, "vm"},
        };
        assert_int_equal(c.n_daemon_keys, sizeof(daemon_keys) / sizeof(daemon_keys[0]));
        for (size_t i = 0; i < c.n_daemon_keys; i++) {
                assert_string_equal(c.daemon_keys[i].key, daemon_keys[i].key);
                assert_int_equal(c.daemon_keys[i].line, daemon_keys[i].line);
                assert_string_equal(c.daemon_keys[i].section, daemon_keys[i].section);
        }
        /* Every key of the one-of sections, where it is given (a reload's warnings). */
        assert_int_equal(c.n_given_keys, 8 + 12 + 7);
        assert_int_equal(config_key_line(&c, "host", "socket"), 9);
        assert_int_equal(config_key_line(&c, "host", "http"), 11);
        assert_int_equal(config_key_line(&c, "policy", "stall_memory"), 25);
        assert_int_equal(config_key_line(&c, "sim", "duration"), 28);
        assert_int_equal(config_key_line(&c, "sim", "speed"), 34);
        assert_int_equal(config_key_line(&c, "host", "qemu_user"), 0); /* not given */
        assert_int_equal(config_key_line(&c, "sim", "socket"), 0);     /* [host]'s */
        assert_int_equal(config_key_line(&c, "vm", "autostart"), 0);   /* one VM's, not kept */
        assert_int_equal(config_key_line(&c, "host", "startup"), 0);
        config_free(&c);
        config_free(&c); /* twice is harmless */
        config_free(NULL);
        config_diag_free(&d);
}

static void empty_file_takes_defaults(void **state)
{
        struct config c;
        struct config_diag d = {0};
        struct policy_tunables t;

        assert_int_equal(config_load_string("empty.ini", "", &c, &d), 0);
        assert_int_equal(d.count, 0);
        assert_false(c.host.memory_given);
        assert_false(c.host.reserve_given);
        assert_string_equal(c.host.policy, "dynmem");
        assert_string_equal(c.host.backend, "sim");
        assert_int_equal(c.host.interval_ms, 1000);
        assert_null(c.host.http);
        assert_int_equal(c.sim.duration_ms, 0);
        assert_int_equal(config_key_line(&c, "sim", "seed"), 0);
        assert_int_equal(c.n_given_keys, 0);
        assert_int_equal(c.sim.step_ms, 1000);
        assert_int_equal(c.sim.report_interval_ms, 1000);
        assert_int_equal(c.sim.grow_rate, GIB);
        assert_int_equal(c.sim.shrink_rate, 512 * MIB);
        assert_true(c.sim.speed == 1.0);
        policy_tunables_default(&t);
        assert_int_equal(c.tunables.min_change_bytes, t.min_change_bytes);
        assert_int_equal(c.tunables.shrink_delay_ms, t.shrink_delay_ms);
        assert_int_equal(c.tunables.probe_after_ms, t.probe_after_ms);
        assert_int_equal(c.tunables.stall_memory_ms, t.stall_memory_ms);
        assert_int_equal(c.tunables.probe_max_percent, t.probe_max_percent);
        assert_int_equal(c.n_vms, 0);
        config_free(&c);

        /* Comments and blank lines only: the same. */
        assert_int_equal(config_load_string("c.ini", "# nothing\n\n; here\n   \n", &c, &d), 0);
        assert_int_equal(c.n_vms, 0);
        config_free(&c);
        config_diag_free(&d);
}

/*
 * A warning no longer true goes by the words it begins with, after its
 * "FILE:LINE: " or "FILE: ", for that file only; the others keep their order.
 */
static void diag_drop_takes_only_the_words_given(void **state)
{
        struct config_diag d = {0};

        config_diag_add(&d, "a.conf", 5, "warning: vm \"web1\" takes this file's maximum: x");
        config_diag_add(&d, "a.conf", 0, "warning: vm \"web1\" takes this file's maximum: y");
        config_diag_add(&d, "a.conf", 3, "warning: vm \"web10\" takes this file's maximum: z");
        config_diag_add(&d, "a.conf.old", 5, "warning: vm \"web1\" takes this file's maximum");
        config_diag_add(&d, "b.conf", 7, "warning: [host] http changes when dynmemd restarts");
        assert_int_equal(config_diag_drop(&d, "a.conf",
                                          "warning: vm \"web1\" takes this file's "
                                          "maximum"),
                         2);
        assert_int_equal(d.count, 3);
        assert_string_equal(d.messages[0], "a.conf:3: warning: vm \"web10\" takes this file's "
                                           "maximum: z");
        assert_string_equal(d.messages[1], "a.conf.old:5: warning: vm \"web1\" takes this "
                                           "file's maximum");
        assert_string_equal(d.messages[2], "b.conf:7: warning: [host] http changes when dynmemd "
                                           "restarts");
        assert_int_equal(config_diag_drop(&d, "a.conf", "warning: vm \"web1\""), 0);
        assert_int_equal(config_diag_drop(NULL, "a.conf", "x"), 0);
        config_diag_free(&d);
}

/*
 * Load text that must fail and check that some message reads
 * "NAME:LINE: ..." containing needle. Returns the number of messages.
 */
static size_t expect_error_at(const char *text, unsigned line, const char *needle)
{
        struct config c;
        struct config_diag d = {0};
        char prefix[64];

        memset(&c, 0x5A, sizeof(c));
        int r = config_load_string("t.ini", text, &c, &d);
        snprintf(prefix, sizeof(prefix), "t.ini:%u: ", line);
        if (r != -EINVAL || !tu_diag_find(&d, prefix, needle)) {
                tu_diag_print(&d);
                fail_msg("expected -EINVAL and \"%s...%s\", got %d for:\n%s", prefix, needle, r,
                         text);
        }
        /* A failed load leaves an empty config. */
        assert_null(c.vms);
        assert_null(c.path);
        assert_int_equal(c.n_vms, 0);
        config_free(&c);
        size_t n = d.count;
        config_diag_free(&d);
        return n;
}

static void unknown_section(void **state)
{
        expect_error_at("[hots]\nmemory = 1G\n", 1, "unknown section [hots]");
        expect_error_at("[host]\nmemory = 4G\n\n[VM \"a\"]\n", 4, "unknown section");
        expect_error_at("[host]\n[vms \"a\"]\n", 2, "unknown section");
        /* Keys in a bad section are not reported again. */
        assert_int_equal(expect_error_at("[nope]\na = 1\nb = 2\n", 1, "unknown section"), 1);
}

static void unknown_keys(void **state)
{
        expect_error_at("[host]\nmemory = 1G\nmemroy = 1G\n", 3,
                        "unknown key \"memroy\" in [host]");
        expect_error_at("[sim]\nstep = 1s\nstpe = 1s\n", 3, "unknown key \"stpe\" in [sim]");
        expect_error_at("[policy]\nshrink_delay = 1s\nshrink = 1\n", 3,
                        "unknown key \"shrink\" in [policy]");
        /* Keys are case-sensitive. */
        expect_error_at("[host]\nMemory = 1G\n", 2, "unknown key \"Memory\"");
}

/* A plain number below 1 MiB is a unit left out: every size key says so, naming it. */
static void size_without_unit(void **state)
{
        static const char *const keys[][2] = {
            {"host", "memory"},      {"host", "reserve"},     {"policy", "min_change"},
            {"sim", "grow_rate"},    {"sim", "shrink_rate"},  {"vm \"a\"", "startup"},
            {"vm \"a\"", "minimum"}, {"vm \"a\"", "maximum"}, {"vm \"a\"", "block"},
        };
        char text[128], needle[160];

        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                snprintf(text, sizeof(text), "[%s]\n%s = 512\n", keys[i][0], keys[i][1]);
                snprintf(needle, sizeof(needle),
                         "%s: \"512\" has no unit and would be 512 bytes; write 512M or 512MiB",
                         keys[i][1]);
                expect_error_at(text, 2, needle);
        }
        expect_error_at("[vm \"a\"]\nblock = 4096\n", 2,
                        "block: \"4096\" has no unit and would be 4096 bytes; write 4096M or "
                        "4096MiB (or 4K for 4 KiB)");
        expect_error_at("[host]\nmemory = 1048575\n", 2, "has no unit");

        /* Plain bytes from 1 MiB on are bytes, a zero is zero, and a unit is a unit. */
        struct config c;
        struct config_diag d = {0};
        assert_int_equal(config_load_string("t.ini",
                                            "[host]\nmemory = 8589934592\nreserve = 0\n"
                                            "[policy]\nmin_change = 0\n"
                                            "[vm \"a\"]\nstartup = 1073741824\n"
                                            "minimum = 33554432\nblock = 4K\n",
                                            &c, &d),
                         0);
        assert_true(c.host.memory_bytes == 8 * GIB);
        assert_true(c.host.reserve_given && c.host.reserve_bytes == 0);
        assert_true(c.tunables.min_change_bytes == 0);
        assert_true(c.vms[0].settings.startup_bytes == GIB);
        assert_true(c.vms[0].settings.minimum_bytes == 32 * MIB);
        config_free(&c);
        config_diag_free(&d);
}

static void key_outside_section(void **state)
{
        expect_error_at("memory = 1G\n[host]\n", 1, "memory: key outside any section");
        expect_error_at("# comment\n\nfoo = bar\n", 3, "key outside any section");
}

static void bad_values(void **state)
{
        expect_error_at("[host]\nmemory = lots\n", 2, "memory: \"lots\" is not a size");
        expect_error_at("[host]\nmemory = -1G\n", 2, "is not a size");
        /* A blank between the number and the unit is named, in keys and in a VM's settings. */
        expect_error_at("[host]\nmemory = 1 G\n", 2,
                        "memory: \"1 G\" has a blank between the number and its unit; write 1G");
        expect_error_at("[vm \"a\"]\nstartup = 512 MiB\n", 2,
                        "startup: \"512 MiB\" has a blank between the number and its unit; "
                        "write 512MiB");
        /* A size or duration too large to hold is named so, not "not a size". */
        expect_error_at("[host]\nmemory = 99999999999T\n", 2,
                        "memory: \"99999999999T\" is too large");
        expect_error_at("[host]\ninterval = 99999999999999999999h\n", 2,
                        "interval: 99999999999999999999h is outside 10ms..1m");
        expect_error_at("[sim]\nseed = 18446744073709551616\n", 2,
                        "seed: \"18446744073709551616\" is too large");
        expect_error_at("[host]\ninterval = 5x\n", 2, "interval: \"5x\" is not a duration");
        expect_error_at("[sim]\nstep = 1M\n", 2, "is not a duration"); /* minutes are "m" */
        expect_error_at("[vm \"a\"]\nbuffer = abc\n", 2, "buffer: \"abc\" is not a whole number");
        expect_error_at("[vm \"a\"]\nweight = -1\n", 2, "weight: \"-1\" is not a whole number");
        expect_error_at("[vm \"a\"]\nweight = 1.5\n", 2, "is not a whole number");
        expect_error_at("[vm \"a\"]\nweight = 99999999999999999999999\n", 2,
                        "is not a whole number in 0..10000");
        expect_error_at("[vm \"a\"]\nstartup = 99999999999T\n", 2,
                        "startup: \"99999999999T\" is larger than 16 TiB");
        expect_error_at("[vm \"a\"]\nblock = 9000000000G\n", 2,
                        "block: \"9000000000G\" is larger than 1 GiB");
        expect_error_at("[vm \"a\"]\ndynamic = maybe\n", 2,
                        "dynamic: \"maybe\" is not yes/no, on/off, true/false or 1/0");
        expect_error_at("[vm \"a\"]\nautostart = 2\n", 2,
                        "is not yes/no, on/off, true/false or 1/0");
        expect_error_at("[sim]\nseed = x\n", 2, "seed: \"x\" is not a whole number");
        expect_error_at("[sim]\nseed = -4\n", 2, "is not a whole number");
        expect_error_at("[sim]\nspeed = fast\n", 2, "speed: \"fast\" is not a number");
        expect_error_at("[sim]\nspeed = nan\n", 2, "is not a number");
        /* Memory for VMs that holds no VM is a mistake; 0 is not a unit left out. */
        expect_error_at("[host]\nmemory = 0\n", 2, "memory: 0 is below 32 MiB");
        expect_error_at("[host]\nmemory = 16M\n", 2, "memory: 16M is below 32 MiB");
        /* A rate of 0 never moves: it is a size, below the smallest allowed. */
        expect_error_at("[sim]\ngrow_rate = 0\n", 2, "grow_rate: 0 is below 1 B");
        /*
         * "#" after a value is part of it, and so is a ';' right after it (inih
         * ends a value at white space and ';'); the error says what happened.
         */
        expect_error_at("[host]\nmemory = 4G   # for the VMs\n", 2,
                        "memory: \"4G   # for the VMs\" is not a size (bytes, or a number with K, "
                        "M, G or T) (a comment after a value starts with \" ;\", white space and "
                        "';'; '#' starts a comment only at the start of a line)");
        expect_error_at("[vm \"a\"]\nstartup = 1G; for now\n", 2,
                        "startup: \"1G; for now\" is not a size (bytes, or a number with K, M, G "
                        "or T) (a comment after a value starts with \" ;\": white space before "
                        "the ';')");
        expect_error_at("[host]\npolicy = hyperv # for now\n", 2,
                        "is not dynmem, static, hyperv or exec:COMMAND (a comment after a value");
        expect_error_at("[host]\ninterval = 1s\t# often\n", 2,
                        "is not a duration (a number with ms, s, m or h) (a comment after");
        expect_error_at("[vm \"a\"]\nweight = 5000 # default\n", 2, "at the start of a line)");
        expect_error_at("[vm \"a\"]\ndynamic = yes # on\n", 2, "or 1/0 (a comment");
        expect_error_at("[sim]\nseed = 4 # fixed\n", 2, "is not a whole number (a comment");
        expect_error_at("[sim]\nspeed = 2 # x\n", 2, "in 0.001..100000 (a comment");
        /* The comment forms dynmem.conf(5) names, as the installed inih reads them. */
        {
                struct config c;
                struct config_diag d = {0};
                assert_int_equal(config_load_string("t.ini",
                                                    "# a comment\n"
                                                    "  ; indented, a comment too\n"
                                                    "[host] ; after a section\n"
                                                    "memory = 4G ; after white space\n"
                                                    "reserve = 1G\t; after a tab\n"
                                                    "\t# indented\n"
                                                    "interval = 2s\n",
                                                    &c, &d),
                                 0);
                assert_true(c.host.memory_bytes == 4 * GIB && c.host.reserve_bytes == GIB);
                assert_true(c.host.interval_ms == 2000);
                config_free(&c);
                config_diag_free(&d);
        }
        /* A "#" inside a word is no comment, and no hint is given. */
        {
                struct config c;
                struct config_diag d = {0};
                assert_int_equal(config_load_string("t.ini", "[host]\nmemory = 4#G\n", &c, &d),
                                 -EINVAL);
                const char *m = tu_diag_find(&d, "t.ini:2: ", "is not a size");
                assert_non_null(m);
                assert_null(strstr(m, "comment"));
                config_free(&c);
                config_diag_free(&d);
        }
}

static void good_value_spellings(void **state)
{
        struct config c;
        struct config_diag d = {0};
        const char *text = "[vm \"a\"]\ndynamic = ON\nautostart = 0\nstartup = 1GiB\n"
                           "maximum = 4294967296\n[sim]\nseed = 18446744073709551615\n";

        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_true(c.vms[0].settings.dynamic);
        assert_false(c.vms[0].autostart);
        assert_int_equal(c.vms[0].autostart_line, 3); /* its key's, as a setting's */
        assert_int_equal(c.vms[0].settings.startup_bytes, GIB);
        assert_int_equal(c.vms[0].settings.maximum_bytes, 4 * GIB);
        assert_true(c.sim.seed == UINT64_MAX);
        config_free(&c);
        config_diag_free(&d);
}

static void out_of_range_values(void **state)
{
        expect_error_at("[vm \"a\"]\nweight = 10001\n", 2,
                        "weight: \"10001\" is not a whole number in 0..10000");
        expect_error_at("[vm \"a\"]\nbuffer = 4\n", 2, "in 5..2000");
        expect_error_at("[vm \"a\"]\nbuffer = 2001\n", 2, "in 5..2000");
        expect_error_at("[host]\ninterval = 5ms\n", 2, "interval: 5ms is outside");
        expect_error_at("[host]\ninterval = 2m\n", 2, "is outside");
        expect_error_at("[sim]\nstep = 0\n", 2, "step: 0 is outside");
        expect_error_at("[sim]\nreport_interval = 2h\n", 2, "is outside");
        expect_error_at("[sim]\nduration = 400d\n", 2, "is not a duration");
        expect_error_at("[sim]\nduration = 10000h\n", 2, "is outside");
        expect_error_at("[sim]\nspeed = 0\n", 2, "speed");
        expect_error_at("[sim]\nspeed = 1e9\n", 2, "speed");
        expect_error_at("[policy]\nshrink_step_percent = 0\n", 2, "shrink_step_percent");
        expect_error_at("[policy]\nshrink_step_percent = 101\n", 2, "in 1..100");
        expect_error_at("[policy]\nprobe_max_percent = 91\n", 2, "in 0..90");
        /* Probing needs the VMs to want this share of the host and no more than all of it. */
        expect_error_at("[policy]\nprobe_contention_percent = 101\n", 2, "in 0..100");
        expect_error_at("[policy]\nstall_threshold_permille = 0\n", 2, "in 1..1000");
        expect_error_at("[policy]\nprobe_step_permille = 501\n", 2, "in 1..500");
        expect_error_at("[policy]\nshrink_delay = 25h\n", 2, "is outside");
        expect_error_at("[policy]\ntrend_lookahead = 2h\n", 2, "is outside");
}

/* A bare number is seconds, and a duration out of range says it was read so. */
static void bare_durations_are_said_to_be_seconds(void **state)
{
        static const char *const keys[] = {
            "[host]\ninterval",
            "[policy]\nshrink_delay",
            "[policy]\ntrend_lookahead",
            "[policy]\nprobe_after",
            "[policy]\nstall_memory",
            "[policy]\nlend_hold",
            "[policy]\nhistory_halflife",
            "[policy]\nheadroom_period",
            "[sim]\nduration",
            "[sim]\nstep",
            "[sim]\nreport_interval",
            "[cluster]\nshortage_for",
            "[cluster]\ncooldown",
            "[cluster]\npeer_timeout",
        };
        char text[128];

        expect_error_at("[host]\ninterval = 200\n", 2,
                        "interval: 200 (seconds) is outside 10ms..1m");
        expect_error_at("[host]\ninterval = 0.005\n", 2, "interval: 0.005 (seconds) is outside");
        /* A unit given, or a zero, is read as written. */
        expect_error_at("[host]\ninterval = 200m\n", 2, "interval: 200m is outside 10ms..1m");
        expect_error_at("[sim]\nstep = 0\n", 2, "step: 0 is outside 10ms..1h");
        for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
                snprintf(text, sizeof(text), "%s = 99999999\n", keys[i]);
                expect_error_at(text, 2, "99999999 (seconds) is outside");
        }
}

/* Every row of settings_table is a [vm] key, recorded with its line. */
static void every_setting_is_a_vm_key(void **state)
{
        struct vm_settings defaults;

        settings_complete(&defaults, 0);
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                char text[128];
                struct config c;
                struct config_diag diag = {0};

                snprintf(text, sizeof(text), "[vm \"a\"]\n%s = %llu\n", d->name,
                         (unsigned long long)settings_get(&defaults, d));
                assert_int_equal(config_load_string("t.ini", text, &c, &diag), 0);
                assert_int_equal(c.vms[0].given, d->bit);
                assert_int_equal(config_setting_line(&c.vms[0], d->bit), 2);
                assert_int_equal(settings_diff(&c.vms[0].settings, &defaults), 0);
                config_free(&c);
                config_diag_free(&diag);
                if (d->type == SETTING_NUMBER) { /* a whole number's range, on its line */
                        char want[64];
                        snprintf(text, sizeof(text), "[vm \"a\"]\n%s = %llu\n", d->name,
                                 (unsigned long long)d->max + 1);
                        snprintf(want, sizeof(want),
                                 "%s: \"%llu\" is not a whole number in %llu..%llu", d->name,
                                 (unsigned long long)d->max + 1, (unsigned long long)d->min,
                                 (unsigned long long)d->max);
                        expect_error_at(text, 2, want);
                }
        }
}

/* lend, per VM: a switch, default yes; anything else is refused on its line. */
static void lend_is_a_vm_switch(void **state)
{
        struct config c;
        struct config_diag d = {0};

        assert_int_equal(config_load_string("t.ini",
                                            "[policy]\nlend_hold = 30m\n"
                                            "[vm \"db\"]\nlend = yes\n"
                                            "[vm \"build\"]\nlend = no\n"
                                            "[vm \"web\"]\nweight = 100\n",
                                            &c, &d),
                         0);
        assert_int_equal(c.n_vms, 3);
        assert_true(c.vms[0].settings.lend);
        assert_int_equal(c.vms[0].given, SETTINGS_LEND);
        assert_false(c.vms[1].settings.lend);
        assert_int_equal(config_setting_line(&c.vms[1], SETTINGS_LEND), 6);
        assert_true(c.vms[2].settings.lend); /* not given: yes */
        assert_int_equal(c.vms[2].given & SETTINGS_LEND, 0);
        config_free(&c);
        config_diag_free(&d);
        expect_error_at("[vm \"a\"]\nlend = sometimes\n", 2,
                        "lend: \"sometimes\" is not yes/no, on/off, true/false or 1/0");
        expect_error_at("[vm \"a\"]\nlend = 2\n", 2, "lend: \"2\" is not yes/no, on/off");
        expect_error_at("[vm \"a\"]\nlend = no\nlend = yes\n", 3, "lend: given twice");
        expect_error_at("[host]\nlend = no\n", 2, "unknown key \"lend\" in [host]");
}

static void percent_sign_on_percentages(void **state)
{
        struct config c;
        struct config_diag d = {0};

        assert_int_equal(config_load_string("t.ini", "[vm \"a\"]\nbuffer = 35%\n", &c, &d), 0);
        assert_int_equal(c.vms[0].settings.buffer_percent, 35);
        assert_int_equal(config_setting_line(&c.vms[0], SETTINGS_WEIGHT), 1); /* not given */
        config_free(&c);
        expect_error_at("[vm \"a\"]\nweight = 35%\n", 2, "is not a whole number");
}

static void duplicate_key(void **state)
{
        expect_error_at("[host]\nmemory = 1G\nreserve = 1G\nmemory = 2G\n", 4,
                        "memory: given twice in [host]");
        expect_error_at("[vm \"a\"]\ntrace = x.csv\ntrace = y.csv\n", 3,
                        "trace: given twice in [vm \"a\"]");
        /* The same key in two sections is fine; a section given twice is the same section. */
        struct config c;
        struct config_diag d = {0};
        assert_int_equal(
            config_load_string("t.ini", "[vm \"a\"]\nweight = 1\n[vm \"b\"]\nweight = 2\n", &c, &d),
            0);
        config_free(&c);
        assert_int_equal(
            config_load_string("t.ini", "[host]\nmemory = 1G\n[host]\nreserve = 2G\n", &c, &d), 0);
        assert_int_equal(c.host.memory_bytes, GIB);
        assert_int_equal(c.host.reserve_bytes, 2 * GIB);
        config_free(&c);
        config_diag_free(&d);
        /* So a key in it twice is given twice, however many sections lie between. */
        expect_error_at("[host]\nmemory = 1G\n[policy]\nmin_change = 8M\n[host]\nmemory = 2G\n", 6,
                        "memory: given twice in [host] (first at line 2)");
        expect_error_at("[sim]\nseed = 1\n[vm \"a\"]\ntrace = x.csv\n[sim]\nseed = 2\n", 6,
                        "seed: given twice in [sim]");
        expect_error_at("[policy]\nshrink_delay = 1s\n\n[policy]\nshrink_delay = 2s\n", 5,
                        "shrink_delay: given twice in [policy]");
        expect_error_at("[cluster]\ncooldown = 1m\n[cluster]\ncooldown = 2m\n", 4,
                        "cooldown: given twice in [cluster]");
}

static void duplicate_vm(void **state)
{
        expect_error_at("[vm \"a\"]\nstartup = 1G\n\n[vm \"a\"]\nstartup = 2G\n", 4,
                        "VM \"a\" is defined twice (first at line 1)");
}

static void bad_vm_names(void **state)
{
        expect_error_at("[vm \"bad name\"]\n", 1, "invalid VM name \"bad name\"");
        expect_error_at("[vm \"-x\"]\n", 1, "invalid VM name");
        expect_error_at("[vm \".x\"]\n", 1, "invalid VM name");
        expect_error_at("[vm \"a/b\"]\n", 1, "invalid VM name");
        expect_error_at("[vm \"\"]\n", 1, "invalid VM name");
        expect_error_at("[vm \"\xc3\xa9t\xc3\xa9\"]\n", 1, "invalid VM name");
        expect_error_at("[vm noquotes]\n", 1, "expected [vm \"NAME\"]");
        expect_error_at("[vm \"open]\n", 1, "expected [vm \"NAME\"]");
        expect_error_at("[vm ]\n", 1, "expected [vm \"NAME\"]");
        /* A name error at line 3 after a good VM. */
        expect_error_at("[vm \"ok\"]\n\n[vm \"no good\"]\nweight = 1\n", 3, "invalid VM name");

        assert_true(config_name_valid("a"));
        assert_true(config_name_valid("web-01.example_x"));
        assert_true(config_name_valid("0start"));
        assert_false(config_name_valid(""));
        assert_false(config_name_valid("-a"));
        assert_false(config_name_valid(".a"));
        assert_false(config_name_valid("a b"));
        assert_false(config_name_valid("a\n"));
}

static void vm_name_length_limit(void **state)
{
        char name63[64], name64[65], text[256];
        struct config c;
        struct config_diag d = {0};

        memset(name63, 'n', 63);
        name63[63] = '\0';
        memset(name64, 'n', 64);
        name64[64] = '\0';
        name63[0] = 'A'; /* a distinct first character, to see the name is kept whole */
        name63[62] = 'Z';
        assert_true(config_name_valid(name63));
        assert_false(config_name_valid(name64));

        /* inih cuts section names at 50 characters: the whole 63 must survive. */
        snprintf(text, sizeof(text), "[vm \"%s\"]\nstartup = 1G\nweight = 7\n", name63);
        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(c.n_vms, 1);
        assert_string_equal(c.vms[0].name, name63);
        assert_int_equal(c.vms[0].settings.weight, 7);
        config_free(&c);

        /* Two long names equal in their first 50 characters are two VMs. */
        char other[64];
        memcpy(other, name63, sizeof(other));
        other[60] = 'q';
        snprintf(text, sizeof(text), "[vm \"%s\"]\n[vm \"%s\"]\n", name63, other);
        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(c.n_vms, 2);
        config_free(&c);
        config_diag_free(&d);

        snprintf(text, sizeof(text), "[vm \"%s\"]\nstartup = 1G\n", name64);
        expect_error_at(text, 1, "VM name");

        snprintf(text, sizeof(text), "[vm \"%s%s\"]\n", name64, name64);
        expect_error_at(text, 1, "VM name longer than 63 characters");
}

static void empty_value(void **state)
{
        expect_error_at("[host]\nmemory =\n", 2, "memory: empty value");
        expect_error_at("[vm \"a\"]\ntrace = \n", 2, "trace: empty value");
        expect_error_at("[host]\npolicy = ; only a comment\n", 2, "empty value");
}

static void bad_policy_name(void **state)
{
        expect_error_at("[host]\nmemory = 1G\npolicy = fancy\n", 3, "policy");
        expect_error_at("[host]\npolicy = exec:\n", 2, "policy");
}

static void syntax_errors(void **state)
{
        expect_error_at("[host]\nmemory 1G\n", 2, "syntax error");
        expect_error_at("[host\nmemory = 1G\n", 1, "syntax error");
        /* A header without ']' is said first, in its place, and once; the keys after it are
         * neither keys of no section nor of the section before. */
        assert_int_equal(expect_error_at("[host]\nmemory = 1G\n[vm \"a\"\nstartup = 512M\n"
                                         "[sim]\nseed = 3\n",
                                         3,
                                         "syntax error: \"[vm \"a\"\" has no ']' closing the "
                                         "section name; the keys after it are ignored up to "
                                         "the next section"),
                         1);
        struct config_diag unclosed = {0};
        struct config ignored;
        assert_int_equal(config_load_string("t.ini", "[host\r\nmemory = 1G\nbackend = sim\n",
                                            &ignored, &unclosed),
                         -EINVAL);
        assert_int_equal(unclosed.count, 1);
        assert_non_null(tu_diag_find(&unclosed, "t.ini:1: ", "\"[host\" has no ']'"));
        config_diag_free(&unclosed);
        /* What follows a section header on its line would be dropped unseen. */
        expect_error_at("[host] memory = 1G\n", 1,
                        "\"memory = 1G\" after [host] (a key goes on a line of its own)");
        expect_error_at("[vm \"a\"]]\n", 1, "\"]\" after [vm \"a\"]");

        struct config c;
        struct config_diag d = {0};
        assert_int_equal(config_load_string("t.ini",
                                            "[host] ; memory for VMs\n"
                                            "memory = 1G\n"
                                            "[sim]  # the model\r\n"
                                            "seed = 3\n",
                                            &c, &d),
                         0);
        assert_int_equal(c.host.memory_bytes, GIB);
        assert_int_equal(c.sim.seed, 3);
        config_free(&c);
        config_diag_free(&d);
}

static void overlong_line(void **state)
{
        char text[1024], value[400];
        struct config c;
        struct config_diag d = {0};

        /* Just at the limit: "trace = " + value makes a 199-character line. */
        memset(value, 'v', sizeof(value));
        value[199 - 8] = '\0';
        snprintf(text, sizeof(text), "[vm \"a\"]\ntrace = %s\nweight = 3\n", value);
        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(strlen(c.vms[0].extra[0].value), 191);
        assert_int_equal(c.vms[0].settings.weight, 3);
        config_free(&c);

        /* One more is refused with its line, and the next line is read normally. */
        value[199 - 8] = 'v';
        value[200 - 8] = '\0';
        snprintf(text, sizeof(text), "[vm \"a\"]\n\ntrace = %s\nweight = 99999\n", value);
        expect_error_at(text, 3, "line longer than 199 characters");
        expect_error_at(text, 4, "weight");

        memset(value, 'v', sizeof(value));
        value[sizeof(value) - 1] = '\0';
        snprintf(text, sizeof(text), "[vm \"a\"]\ntrace = %s\n", value);
        expect_error_at(text, 2, "line longer than");
        config_diag_free(&d);
}

/* " #" in a text value is part of it: a warning at load, not an error. */
static void comment_in_a_text_value_is_warned_of(void **state)
{
        struct config c;
        struct config_diag d = {0};
        const char *text = "[host]\n"
                           "socket = /run/dynmem/s # the socket\n"
                           "policy = exec:/usr/bin/pol\t# mine\n"
                           "libvirt_uri = qemu:///system#x\n"
                           "[vm \"a\"]\n"
                           "kernel = /boot/vmlinuz # the cloud kernel\n"
                           "append = console=ttyS0\n"
                           "  quiet # x\n"
                           "initrd = /boot/initrd ; a comment\n";

        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(d.count, 0);
        /* The value is kept as written: a path may hold " #". */
        assert_string_equal(c.host.socket, "/run/dynmem/s # the socket");
        assert_string_equal(config_vm_key(&c.vms[0], "kernel")->value,
                            "/boot/vmlinuz # the cloud kernel");
        assert_int_equal(c.warnings.count, 4);
        assert_string_equal(
            c.warnings.messages[0],
            "t.ini:2: warning: socket: \"/run/dynmem/s # the socket\" holds \" # the "
            "socket\" as part of the value (a comment after a value starts with "
            "\" ;\", white space and ';'; '#' starts a comment only at the start of "
            "a line)");
        assert_non_null(strstr(c.warnings.messages[1], "t.ini:3: warning: policy: "));
        assert_non_null(strstr(c.warnings.messages[2],
                               "t.ini:6: warning: kernel: \"/boot/vmlinuz # the cloud kernel\" "
                               "holds \" # the cloud kernel\""));
        /* A continued value, at the line of its " #"; "#x" inside a word and ';' are no concern. */
        assert_non_null(
            strstr(c.warnings.messages[3], "t.ini:8: warning: append (continued from line 7): "));
        assert_non_null(strstr(c.warnings.messages[3], "\"console=ttyS0 quiet # x\""));
        config_free(&c);
        assert_int_equal(c.warnings.count, 0);

        /* A long value is cut in the message, which stays one line of sane length. */
        char long_text[1200];
        snprintf(long_text, sizeof(long_text), "[vm \"a\"]\nkernel = /%0150d\n  %010d # %0150d\n",
                 0, 0, 0);
        assert_int_equal(config_load_string("t.ini", long_text, &c, &d), 0);
        assert_int_equal(c.warnings.count, 1);
        assert_true(strlen(c.warnings.messages[0]) < 512);
        assert_non_null(strstr(c.warnings.messages[0], "...\" holds \" # 000"));
        assert_non_null(strstr(c.warnings.messages[0], "...\" as part of the value (a comment"));
        config_free(&c);
        config_diag_free(&d);
}

/*
 * A value continued on indented lines: its warning names the line that holds the
 * first " #" (comment lines may come between), and the key's line beside it.
 */
static void comment_on_a_continuation_line_is_warned_at_its_line(void **state)
{
        struct config c;
        struct config_diag d = {0};
        const char *text = "[vm \"a\"]\n"                         /* 1 */
                           "append = console=ttyS0\n"             /* 2 */
                           "  quiet\n"                            /* 3 */
                           "; the noisy one\n"                    /* 4 */
                           "  loglevel=3 # the quiet one\n"       /* 5 */
                           "  panic=1 # again\n"                  /* 6 */
                           "kernel = /boot/vmlinuz # the cloud\n" /* 7 */
                           "  one\n"                              /* 8 */
                           "initrd = /boot/initrd\n"              /* 9 */
                           "  # a comment line, not a value\n";   /* 10 */

        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(d.count, 0);
        assert_string_equal(config_vm_key(&c.vms[0], "append")->value,
                            "console=ttyS0 quiet loglevel=3 # the quiet one panic=1 # again");
        assert_int_equal(config_vm_key(&c.vms[0], "append")->line, 2);
        assert_string_equal(config_vm_key(&c.vms[0], "initrd")->value, "/boot/initrd");
        assert_int_equal(c.warnings.count, 2);
        assert_string_equal(c.warnings.messages[0],
                            "t.ini:5: warning: append (continued from line 2): \"console=ttyS0 "
                            "quiet loglevel=3 # the quiet one panic=1 # again\" holds \" # the "
                            "quiet one panic=1 # again\" as part of the value (a comment after a "
                            "value starts with \" ;\", white space and ';'; '#' starts a comment "
                            "only at the start of a line)");
        /* on the key's own line: that line alone, as for a value on one line */
        assert_non_null(strstr(c.warnings.messages[1], "t.ini:7: warning: kernel: \"/boot/vmlinuz "
                                                       "# the cloud one\" holds"));
        config_free(&c);
        config_diag_free(&d);
}

/* An error at a line that already says where comments start makes the warning there redundant. */
static void warning_explained_by_an_error(void **state)
{
        struct config_diag e = {0};

        config_diag_add(&e, "t.ini", 7, "swap: \"1G # x\" is not a size%s",
                        config_comment_hint("1G # x"));
        config_diag_add(&e, "t.ini", 9, "trace: a.csv # x: cannot open");
        assert_true(config_diag_explains(&e, "t.ini", "t.ini:7: warning: swap: ..."));
        /* An error that does not explain it leaves the warning useful. */
        assert_false(config_diag_explains(&e, "t.ini", "t.ini:9: warning: trace: ..."));
        assert_false(config_diag_explains(&e, "t.ini", "t.ini:70: warning: x"));
        assert_false(config_diag_explains(&e, "t.ini", "t.ini: warning: x"));
        assert_false(config_diag_explains(&e, "u.ini", "t.ini:7: warning: swap: ..."));
        assert_false(config_diag_explains(NULL, "t.ini", "t.ini:7: warning: swap: ..."));
        /* A continued value's warning, at its " #": an error at its key's line explains it too. */
        assert_true(config_diag_explains(&e, "t.ini",
                                         "t.ini:8: warning: swap (continued from line 7): ..."));
        assert_false(config_diag_explains(&e, "t.ini",
                                          "t.ini:8: warning: swap (continued from line 9): ..."));
        /* words of the value are no line of the key */
        assert_false(config_diag_explains(
            &e, "t.ini", "t.ini:8: warning: swap: \"x (continued from line 7): y\" holds ..."));
        config_diag_free(&e);
}

static void continuation_lines(void **state)
{
        struct config c;
        struct config_diag d = {0};
        const char *text = "[vm \"a\"]\n"
                           "append = console=ttyS0\n"
                           "  quiet loglevel=3\n"
                           "\tpanic=1\n"
                           "weight = 9\n";

        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(c.vms[0].n_extra, 1);
        assert_string_equal(c.vms[0].extra[0].key, "append");
        assert_string_equal(c.vms[0].extra[0].value, "console=ttyS0 quiet loglevel=3 panic=1");
        assert_int_equal(c.vms[0].extra[0].line, 2);
        assert_int_equal(c.vms[0].settings.weight, 9);
        config_free(&c);
        config_diag_free(&d);

        /* Settings keys do not continue. */
        expect_error_at("[vm \"a\"]\nweight = 1\n  000\n", 3,
                        "weight: only backend keys may continue on indented lines");
        expect_error_at("[host]\nmemory = 1G\n  512M\n", 3, "only backend keys may continue");
}

static void continuation_value_limit(void **state)
{
        char *text = NULL, chunk[200];
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);

        memset(chunk, 'c', 180);
        chunk[180] = '\0';
        fprintf(f, "[vm \"a\"]\nappend = x\n");
        for (int i = 0; i < 30; i++) /* 30 x 181 > 4096 */
                fprintf(f, "  %s\n", chunk);
        fclose(f);
        /* value = "x" + 22 x " cccc..." = 1 + 22 x 181 = 3983; the 23rd (line 25) overflows. */
        expect_error_at(text, 25, "append: value longer than 4095 characters");
        free(text);
}

static void cross_key_settings_errors(void **state)
{
        /*
         * Reported at the line of the key the message is about, with the VM's name; the
         * other key it holds it against, when the section gives it, is cited with its line.
         */
        expect_error_at("[host]\nmemory = 4G\n[vm \"a\"]\nstartup = 1G\nminimum = 2G\n", 5,
                        "vm \"a\": minimum 2 GiB is above startup 1 GiB (startup at line 4)");
        expect_error_at("[vm \"a\"]\nstartup = 3G\nmaximum = 2G\n", 2,
                        "vm \"a\": startup 3 GiB is above maximum 2 GiB (maximum at line 3)");
        /* the key named first, wherever the section gives it */
        expect_error_at("[vm \"a\"]\nmaximum = 2G\nweight = 1\nstartup = 3G\n", 4,
                        "startup 3 GiB is above maximum 2 GiB (maximum at line 2)");
        /* startup not set: named what the file says, not the default startup (1 GiB). */
        expect_error_at("[vm \"a\"]\nminimum = 2G\nmaximum = 1G\n", 2,
                        "vm \"a\": minimum 2 GiB is above maximum 1 GiB (maximum at line 3)");
        /* a default it names: at the line of the key the section gives, said to be a default */
        expect_error_at("[vm \"a\"]\ndynamic = yes\nminimum = 2G\nmaximum = 8G\n", 3,
                        "vm \"a\": minimum 2 GiB is above startup 1 GiB (startup is not set and "
                        "defaults to 1 GiB)");
        expect_error_at("[vm \"a\"]\ndynamic = yes\nmaximum = 256M\n", 3,
                        "vm \"a\": startup 1 GiB is above maximum 256 MiB (startup is not set and "
                        "defaults to 1 GiB)");
        expect_error_at("[vm \"a\"]\nweight = 1\nstartup = 1025M\n", 3,
                        "vm \"a\": startup 1025 MiB is not a multiple of the 2 MiB block size, "
                        "as 1 GiB and 1026 MiB are");
        /* 1.3G is no whole number of KiB: in MiB with its bytes, never in bytes alone */
        expect_error_at("[vm \"a\"]\nweight = 1\nstartup = 1.3G\n", 3,
                        "vm \"a\": startup 1331.2 MiB (1395864371 B) is not a multiple of the "
                        "2 MiB block size, as 1330 MiB and 1332 MiB are");
        expect_error_at("[vm \"a\"]\nblock = 4M\nstartup = 1026M\n", 3,
                        "vm \"a\": startup 1026 MiB is not a multiple of the 4 MiB block size, "
                        "as 1 GiB and 1028 MiB are (block at line 2)");
        expect_error_at("[vm \"a\"]\nweight = 1\nblock = 3M\n", 3, "block size 3 MiB");
        expect_error_at("[vm \"a\"]\nweight = 1\nblock = 1G\n", 3,
                        "vm \"a\": minimum 512 MiB is not a multiple of the 1 GiB block size, "
                        "as 1 GiB is (minimum is not set and defaults to the smaller of 512 MiB "
                        "and startup)");
        expect_error_at("[vm \"a\"]\nminimum = 16M\nstartup = 16M\n", 3,
                        "startup 16 MiB is below 32 MiB");
        expect_error_at("[vm \"a\"]\nweight = 1\nstartup = 16M\n", 3,
                        "vm \"a\": startup 16 MiB is below 32 MiB");
        expect_error_at("[vm \"b\"]\nstartup = 1G\n[vm \"a\"]\nstartup = 64M\nminimum = 128M\n", 5,
                        "vm \"a\": minimum 128 MiB is above startup 64 MiB (startup at line 4)");
}

static void several_errors_all_reported(void **state)
{
        struct config c;
        struct config_diag d = {0};
        const char *text = "[host]\n"         /* 1 */
                           "memory = much\n"  /* 2 */
                           "bogus = 1\n"      /* 3 */
                           "[sim]\n"          /* 4 */
                           "step = forever\n" /* 5 */
                           "[vm \"a\"]\n"     /* 6 */
                           "weight = 20000\n" /* 7 */
                           "[vm \"a\"]\n"     /* 8 */
                           "[vm \"b\"]\n"     /* 9 */
                           "startup = 1G\n"   /* 10 */
                           "minimum = 2G\n"   /* 11 */
                           "[what]\n";        /* 12 */

        assert_int_equal(config_load_string("t.ini", text, &c, &d), -EINVAL);
        assert_non_null(tu_diag_find(&d, "t.ini:2: ", "memory"));
        assert_non_null(tu_diag_find(&d, "t.ini:3: ", "bogus"));
        assert_non_null(tu_diag_find(&d, "t.ini:5: ", "step"));
        assert_non_null(tu_diag_find(&d, "t.ini:7: ", "weight"));
        assert_non_null(tu_diag_find(&d, "t.ini:8: ", "defined twice"));
        assert_non_null(tu_diag_find(&d, "t.ini:11: ", "minimum"));
        assert_non_null(tu_diag_find(&d, "t.ini:12: ", "unknown section"));
        assert_int_equal(d.count, 7);
        config_diag_free(&d);
}

static void syntax_error_reported_with_others(void **state)
{
        struct config c;
        struct config_diag d = {0};
        const char *text = "[host]\nmemory = much\njust words\n";

        assert_int_equal(config_load_string("t.ini", text, &c, &d), -EINVAL);
        assert_non_null(tu_diag_find(&d, "t.ini:2: ", "memory"));
        assert_non_null(tu_diag_find(&d, "t.ini:3: ", "syntax error"));
        config_diag_free(&d);
}

static void crlf_lines(void **state)
{
        struct config c;
        struct config_diag d = {0};
        const char *text = "[host]\r\nmemory = 2G\r\n\r\n[vm \"a\"]\r\ntrace = a.csv\r\n";

        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(c.host.memory_bytes, 2 * GIB);
        assert_string_equal(c.vms[0].name, "a");
        assert_string_equal(c.vms[0].extra[0].value, "a.csv");
        config_free(&c);
        expect_error_at("[host]\r\nmemory = 2G\r\nnope = 1\r\n", 3, "unknown key \"nope\"");
        config_diag_free(&d);
}

/* A file that starts with a UTF-8 byte order mark reads as one without it, from disk too. */
static void byte_order_mark(void **state)
{
        const char *text = "\xEF\xBB\xBF[host]\nmemory = 2G\n";
        char *dir = tu_tempdir(), *path = tu_write(dir, "bom.ini", text, false);
        struct config c;
        struct config_diag d = {0};

        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(c.host.memory_bytes, 2 * GIB);
        config_free(&c);
        assert_int_equal(config_load(path, &c, &d), 0);
        assert_int_equal(c.host.memory_bytes, 2 * GIB);
        config_free(&c);
        assert_int_equal(d.count, 0);
        expect_error_at("\xEF\xBB\xBF[vm \"a\"]\nweight = 20000\n", 2, "weight");
        /* Only at the start of the file. */
        expect_error_at("[host]\n\xEF\xBB\xBF[sim]\n", 2, "syntax error");
        free(path);
        tu_rmtree(dir);
}

static void backend_keys(void **state)
{
        static const char *const allowed[] = {"trace", "start", NULL};
        struct config c;
        struct config_diag d = {0};
        const char *text = "[vm \"a\"]\n"
                           "trace = a.csv\n"
                           "start = 5s\n"
                           "[vm \"b\"]\n"
                           "trace = b.csv\n"
                           "kernel = /boot/vmlinuz\n"
                           "colour = blue\n";

        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(c.vms[1].n_extra, 3);
        assert_int_equal(c.vms[1].extra[2].line, 7);
        assert_int_equal(config_check_backend_keys(&c, "sim", allowed, &d), -EINVAL);
        assert_int_equal(d.count, 2);
        /* Nothing near: where [vm] keys come from, both lists. */
        assert_non_null(tu_diag_find(&d, "t.ini:6: ",
                                     "unknown key \"kernel\" in [vm \"b\"]: neither a VM key "
                                     "(dynamic, startup, minimum, maximum, buffer, weight, block, "
                                     "lend, autostart) nor a key of backend sim (trace, start)"));
        assert_non_null(tu_diag_find(&d, "t.ini:7: ", "\"colour\""));
        config_diag_free(&d);

        static const char *const all[] = {"trace", "start", "kernel", "colour", NULL};
        assert_int_equal(config_check_backend_keys(&c, "qemu", all, &d), 0);
        assert_int_equal(d.count, 0);
        static const char *const none[] = {NULL};
        assert_int_equal(config_check_backend_keys(&c, "none", none, &d), -EINVAL);
        assert_int_equal(d.count, 5);
        assert_non_null(tu_diag_find(&d, "t.ini:7: ", "nor a key of backend none (it takes none)"));
        config_free(&c);
        config_diag_free(&d);
}

/*
 * A misspelt key is named with the key meant, a VM setting's as a backend's:
 * "wieght" is no business of the backend's.
 */
static void a_misspelt_key_is_named_with_the_key_meant(void **state)
{
        static const char *const allowed[] = {"trace", "start", "report_scale", NULL};
        struct config c;
        struct config_diag d = {0};
        const char *text = "[vm \"x\"]\n"
                           "wieght = 5000\n"
                           "maxmum = 2G\n"
                           "Dynamic = yes\n"
                           "tarce = x.csv\n"
                           "strat = 5s\n"
                           "autostrat = yes\n"
                           "reportscale = 2\n";

        assert_int_equal(config_load_string("t.ini", text, &c, &d), 0);
        assert_int_equal(config_check_backend_keys(&c, "sim", allowed, &d), -EINVAL);
        assert_int_equal(d.count, 7);
        assert_non_null(tu_diag_find(&d, "t.ini:2: ",
                                     "unknown key \"wieght\" in [vm \"x\"] (did you mean "
                                     "\"weight\"?)"));
        assert_non_null(tu_diag_find(&d, "t.ini:3: ", "(did you mean \"maximum\"?)"));
        assert_non_null(tu_diag_find(&d, "t.ini:4: ", "(did you mean \"dynamic\"?)"));
        assert_non_null(tu_diag_find(&d, "t.ini:5: ", "(did you mean \"trace\"?)"));
        assert_non_null(tu_diag_find(&d, "t.ini:6: ", "(did you mean \"start\"?)"));
        assert_non_null(tu_diag_find(&d, "t.ini:7: ", "(did you mean \"autostart\"?)"));
        assert_non_null(tu_diag_find(&d, "t.ini:8: ", "(did you mean \"report_scale\"?)"));
        for (size_t i = 0; i < d.count; i++)
                assert_null(strstr(d.messages[i], "backend"));
        config_free(&c);
        config_diag_free(&d);

        /* The other sections, each from its own keys. */
        expect_error_at("[host]\nintervall = 1s\n", 2,
                        "unknown key \"intervall\" in [host] (did you mean \"interval\"?)");
        expect_error_at(
            "[policy]\nshrink_dealy = 1m\n", 2,
            "unknown key \"shrink_dealy\" in [policy] (did you mean \"shrink_delay\"?)");
        expect_error_at("[sim]\nspede = 2\n", 2, "(did you mean \"speed\"?)");
        expect_error_at("[cluster]\ncooldwon = 5m\n", 2, "(did you mean \"cooldown\"?)");
        expect_error_at("[peer \"b\"]\nhtp = http://b:8080\n", 2, "(did you mean \"http\"?)");
        /* Nothing near: the message as before. */
        struct config_diag none = {0};
        assert_int_equal(config_load_string("t.ini", "[host]\nflavour = big\n", &c, &none),
                         -EINVAL);
        assert_non_null(tu_diag_find(&none, "t.ini:2: ", "unknown key \"flavour\" in [host]"));
        assert_null(strstr(none.messages[0], "did you mean"));
        config_diag_free(&none);
}

static void real_files(void **state)
{
        char *dir = tu_tempdir();
        char *good = tu_write(dir, "good.ini", full_file, false);
        char *bad = tu_write(dir, "bad.ini", "[host]\nmemory = 1G\n\nnope = 2\n", false);
        char *missing = NULL, prefix[512];
        struct config c;
        struct config_diag d = {0};

        assert_int_equal(config_load(good, &c, &d), 0);
        assert_string_equal(c.path, good);
        assert_int_equal(c.n_vms, 2);
        assert_int_equal(c.vms[0].extra[1].line, 46);
        config_free(&c);

        assert_int_equal(config_load(bad, &c, &d), -EINVAL);
        snprintf(prefix, sizeof(prefix), "%s:4: ", bad);
        assert_non_null(tu_diag_find(&d, prefix, "unknown key \"nope\" in [host]"));
        config_diag_free(&d);

        assert_true(asprintf(&missing, "%s/missing.ini", dir) > 0);
        memset(&c, 0x5A, sizeof(c));
        assert_int_equal(config_load(missing, &c, &d), -ENOENT);
        assert_null(c.path);
        snprintf(prefix, sizeof(prefix), "%s: ", missing);
        assert_non_null(tu_diag_find(&d, prefix, "cannot open: No such file or directory"));
        config_diag_free(&d);

        /* a FIFO in the file's place is refused at once, not waited on */
        char *fifo = NULL;
        assert_true(asprintf(&fifo, "%s/fifo.ini", dir) > 0);
        assert_int_equal(mkfifo(fifo, 0600), 0);
        alarm(10); /* a hang fails the test */
        assert_int_equal(config_load(fifo, &c, &d), -EINVAL);
        alarm(0);
        snprintf(prefix, sizeof(prefix), "%s: ", fifo);
        assert_non_null(tu_diag_find(&d, prefix, "cannot read: a FIFO or socket, not a file"));
        config_diag_free(&d);
        unlink(fifo);
        free(fifo);

        char *empty = tu_write(dir, "empty.ini", "", false);
        assert_int_equal(config_load(empty, &c, &d), 0);
        assert_int_equal(c.n_vms, 0);
        config_free(&c);

        free(good), free(bad), free(missing), free(empty);
        tu_rmtree(dir);
}

static void real_file_line_limits(void **state)
{
        char *dir = tu_tempdir();
        char text[1024], value[300];
        struct config c, cs;
        struct config_diag d = {0}, ds = {0};

        /* A file and the same string agree on where the line limit is. */
        for (size_t len = 190; len <= 210; len++) {
                memset(value, 'v', sizeof(value));
                value[len - 8] = '\0'; /* "trace = " + value = len characters */
                snprintf(text, sizeof(text), "[vm \"a\"]\ntrace = %s\nweight = 3\n", value);
                char *path = tu_write(dir, "l.ini", text, false);
                int rf = config_load(path, &c, &d);
                int rs = config_load_string("l.ini", text, &cs, &ds);
                if (rf != rs || (len <= 199) != (rf == 0))
                        fail_msg("line of %zu characters: file %d, string %d", len, rf, rs);
                config_free(&c), config_free(&cs);
                config_diag_free(&d), config_diag_free(&ds);
                free(path);
        }
        tu_rmtree(dir);
}

/* Load bytes that may hold NUL bytes from a real file: -EINVAL with the diag, or 0. */
static int load_bytes(const char *dir, const char *bytes, size_t len, struct config_diag *d)
{
        char *path = tu_write(dir, "nul.ini", "", false);
        FILE *f = fopen(path, "we");
        struct config c;

        assert_non_null(f);
        assert_int_equal(fwrite(bytes, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
        int r = config_load(path, &c, d);
        if (r == 0)
                config_free(&c);
        free(path);
        return r;
}

/* A NUL byte is named with its line; it neither cuts a value short nor hides the next line. */
static void nul_bytes(void **state)
{
        static const char cut[] = "[vm \"a\"]\nweight = 50\0"
                                  "0\n\n";
        static const char hides[] = "[host]\nmemory = 1G\0junk\nreserve = lots\n";
        char *dir = tu_tempdir();
        struct config_diag d = {0};

        assert_int_equal(load_bytes(dir, cut, sizeof(cut) - 1, &d), -EINVAL);
        assert_int_equal(d.count, 1);
        assert_non_null(strstr(d.messages[0], "nul.ini:2: a NUL byte in the line"));
        config_diag_free(&d);
        assert_int_equal(load_bytes(dir, hides, sizeof(hides) - 1, &d), -EINVAL);
        assert_non_null(strstr(d.messages[0], "nul.ini:2: a NUL byte in the line"));
        assert_int_equal(d.count, 2);
        assert_non_null(strstr(d.messages[1], "nul.ini:3: reserve: \"lots\" is not a size"));
        config_diag_free(&d);
        tu_rmtree(dir);
}

static void not_a_regular_file(void **state)
{
        char *dir = tu_tempdir();
        struct config c;
        struct config_diag d = {0};

        /* A directory is not an empty configuration. */
        assert_true(config_load(dir, &c, &d) < 0);
        assert_int_equal(d.count, 1);
        assert_non_null(strstr(d.messages[0], dir));
        config_diag_free(&d);

        /* Nor is a file larger than the limit (sparse, so this is cheap). */
        char *big = tu_write(dir, "big.ini", "[host]\n", false);
        assert_int_equal(truncate(big, CONFIG_FILE_MAX + 1), 0);
        assert_true(config_load(big, &c, &d) < 0);
        assert_int_equal(d.count, 1);
        config_diag_free(&d);
        free(big);
        tu_rmtree(dir);
}

static void diag_helpers(void **state)
{
        struct config_diag d = {0};

        config_diag_add(&d, "f.ini", 12, "bad %s", "thing");
        config_diag_add(&d, "f.ini", 0, "whole file");
        config_diag_add(NULL, "f.ini", 1, "ignored");
        assert_int_equal(d.count, 2);
        assert_string_equal(d.messages[0], "f.ini:12: bad thing");
        assert_string_equal(d.messages[1], "f.ini: whole file");
        config_diag_free(&d);
        assert_int_equal(d.count, 0);
        config_diag_free(&d);
        config_diag_free(NULL);
}

/*
 * A file with a problem on every line (a binary file given as the
 * configuration): the first CONFIG_DIAG_MAX are kept with their lines, the
 * rest counted for one closing line.
 */
static void many_problems_are_capped(void **state)
{
        enum { LINES = 7000 };
        char *dir = tu_tempdir(), more[64], want[32];
        size_t len = 0;
        char *text = malloc(LINES * 16);
        struct config_diag d = {0};

        assert_non_null(text);
        for (int i = 1; i <= LINES; i++) {
                static const char line[] = "\x7f"
                                           "ELF\x02\x01\x01\0\0\n";
                memcpy(text + len, line, sizeof(line) - 1);
                len += sizeof(line) - 1;
        }
        assert_int_equal(load_bytes(dir, text, len, &d), -EINVAL);
        assert_int_equal(d.count, CONFIG_DIAG_MAX);
        assert_int_equal(d.more, LINES - CONFIG_DIAG_MAX);
        assert_non_null(strstr(d.messages[0], "nul.ini:1: a NUL byte"));
        snprintf(want, sizeof(want), "nul.ini:%d: a NUL byte", CONFIG_DIAG_MAX);
        assert_non_null(strstr(d.messages[CONFIG_DIAG_MAX - 1], want));
        assert_non_null(config_diag_more(&d, "problem", more, sizeof(more)));
        assert_string_equal(more, "... and 6,980 more problems");
        config_diag_free(&d);
        assert_int_equal(d.more, 0);
        assert_null(config_diag_more(&d, "problem", more, sizeof(more)));

        /* one past the cap: said in the singular */
        for (int i = 0; i <= CONFIG_DIAG_MAX; i++)
                config_diag_add(&d, "f.ini", (unsigned)i + 1, "bad");
        assert_int_equal(d.count, CONFIG_DIAG_MAX);
        assert_string_equal(config_diag_more(&d, "problem", more, sizeof(more)),
                            "... and 1 more problem");
        config_diag_free(&d);
        free(text);
        tu_rmtree(dir);
}

/*
 * Warnings past the cap are counted as warnings: after the problems of a file,
 * "... and 3 more problems" would count errors that were never there.
 */
static void many_warnings_are_counted_as_warnings(void **state)
{
        struct config c;
        struct config_diag d = {0};
        char text[4096] = "[host]\nmemory = 4G\n", more[64];
        size_t len = strlen(text);

        (void)state;
        for (int i = 0; i < CONFIG_DIAG_MAX + 3; i++)
                len += (size_t)snprintf(text + len, sizeof(text) - len,
                                        "[vm \"v%d\"]\ntrace = t.csv # mine\n", i);
        assert_int_equal(config_load_string("w.ini", text, &c, &d), 0);
        assert_int_equal(d.count, 0);
        assert_int_equal(c.warnings.count, CONFIG_DIAG_MAX);
        assert_int_equal(c.warnings.more, 3);
        assert_string_equal(config_diag_more(&c.warnings, "warning", more, sizeof(more)),
                            "... and 3 more warnings");
        config_free(&c);
        config_diag_free(&d);
}

static void counts_are_grouped(void **state)
{
        static const struct {
                size_t n;
                const char *text;
        } cases[] = {
            {0, "0"},
            {7, "7"},
            {999, "999"},
            {1000, "1,000"},
            {6980, "6,980"},
            {123456, "123,456"},
            {1234567, "1,234,567"},
        };
        char buf[32];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
                assert_string_equal(config_count_format(cases[i].n, buf, sizeof(buf)),
                                    cases[i].text);
        /* a short buffer is cut, never overrun */
        assert_string_equal(config_count_format(1234567, buf, 4), "1,2");
}

/* [cluster] and [peer "NAME"]: hosts that relieve each other. */
static void cluster_and_peers(void **state)
{
        struct config c;
        struct config_diag d = {0};

        (void)state;
        assert_int_equal(config_load_string("c.ini", "", &c, &d), 0);
        assert_false(c.cluster.relief);
        assert_int_equal(c.cluster.shortage_for_ms, 60000);
        assert_int_equal(c.cluster.cooldown_ms, 300000);
        assert_int_equal(c.cluster.peer_timeout_ms, 5000);
        assert_int_equal(c.cluster.n_peers, 0);
        config_free(&c);
        assert_int_equal(
            config_load_string("c.ini",
                               "[cluster]\nrelief = yes\nshortage_for = 2m\n"
                               "cooldown = 10m\npeer_timeout = 2s\n"
                               "[peer \"b\"]\nlibvirt_uri = qemu+ssh://b/system\n"
                               "http = http://10.0.0.2:9100\n"
                               "[peer \"c.example\"]\nlibvirt_uri = qemu+tls://c/system\n"
                               "http = http://c.example:9100\n",
                               &c, &d),
            0);
        assert_true(c.cluster.relief);
        assert_int_equal(c.cluster.shortage_for_ms, 120000);
        assert_int_equal(c.cluster.cooldown_ms, 600000);
        assert_int_equal(c.cluster.peer_timeout_ms, 2000);
        assert_int_equal(c.cluster.n_peers, 2);
        assert_string_equal(c.cluster.peers[1].name, "c.example");
        assert_string_equal(c.cluster.peers[0].libvirt_uri, "qemu+ssh://b/system");
        assert_string_equal(c.cluster.peers[0].http, "http://10.0.0.2:9100");
        config_free(&c);
        config_diag_free(&d);

        expect_error_at("[cluster]\nrelief = yes\n", 2, "relief: no [peer");
        expect_error_at("[cluster]\nrelief = maybe\n", 2,
                        "relief: \"maybe\" is not yes/no, on/off");
        expect_error_at("[cluster]\nshortage_for = 10ms\n", 2, "shortage_for: 10ms is outside");
        expect_error_at("[cluster]\npeers = b\n", 2, "unknown key \"peers\" in [cluster]");
        expect_error_at("[peer \"b\"]\nhttp = http://b:1\n", 1, "needs libvirt_uri and http");
        expect_error_at("[peer b]\n", 1, "expected [peer \"NAME\"]");
        expect_error_at("[peer \"-b\"]\n", 1, "invalid peer name");
        expect_error_at("[peer \"b\"]\nlibvirt_uri = x\nhttp = y\n[peer \"b\"]\n", 4,
                        "peer \"b\" is defined twice");
        expect_error_at("[peer \"b\"]\nlibvirt_uri = x\nlibvirt_uri = y\nhttp = z\n", 3,
                        "given twice");
}

/* A [peer]'s keys are not [host]'s, though they share names: their lines are not looked up. */
static void key_lines_are_by_section(void **state)
{
        struct config c;
        struct config_diag d = {0};

        (void)state;
        assert_int_equal(config_load_string("k.ini",
                                            "[peer \"b\"]\n"                      /* 1 */
                                            "libvirt_uri = qemu+ssh://b/system\n" /* 2 */
                                            "http = http://b:9100\n"              /* 3 */
                                            "[host]\n"                            /* 4 */
                                            "libvirt_uri = qemu:///system\n"      /* 5 */
                                            "[cluster]\n"                         /* 6 */
                                            "cooldown = 10m\n"                    /* 7 */
                                            "[host]\n"                            /* 8 */
                                            "http = 127.0.0.1:0\n",               /* 9 */
                                            &c, &d),
                         0);
        assert_int_equal(config_key_line(&c, "host", "libvirt_uri"), 5);
        assert_int_equal(config_key_line(&c, "host", "http"), 9); /* [host] again: one section */
        assert_int_equal(config_key_line(&c, "cluster", "cooldown"), 7);
        assert_int_equal(config_key_line(&c, "peer", "http"), 0);
        assert_int_equal(c.n_given_keys, 3);
        config_free(&c);
        assert_int_equal(c.n_given_keys, 0);
        config_diag_free(&d);
}

/* The [sim] keys whose values differ, by name, each key of the table compared. */
static void sim_differences_name_each_key(void **state)
{
        struct config a, b;
        struct config_diag d = {0};
        const char *keys[CONFIG_SIM_KEYS];

        (void)state;
        assert_int_equal(config_load_string("a.ini", "", &a, &d), 0);
        assert_int_equal(config_load_string("b.ini", "", &b, &d), 0);
        assert_int_equal(config_sim_differences(&a.sim, &b.sim, keys, CONFIG_SIM_KEYS), 0);
        config_free(&b);
        assert_int_equal(config_load_string("b.ini",
                                            "[sim]\nduration = 1h\nstep = 2s\n"
                                            "report_interval = 2s\ngrow_rate = 2G\n"
                                            "shrink_rate = 1G\nseed = 9\nspeed = 2\n",
                                            &b, &d),
                         0);
        static const char *const all[] = {
            "duration", "step", "report_interval", "grow_rate", "shrink_rate", "seed", "speed"};
        assert_int_equal(config_sim_differences(&a.sim, &b.sim, keys, CONFIG_SIM_KEYS),
                         CONFIG_SIM_KEYS);
        for (size_t i = 0; i < CONFIG_SIM_KEYS; i++)
                assert_string_equal(keys[i], all[i]);
        assert_int_equal(config_sim_differences(&a.sim, &b.sim, keys, 2), 2); /* at most max */
        assert_string_equal(keys[1], "step");
        config_free(&b);
        /* the default given: no difference; one value changed: that key alone */
        assert_int_equal(config_load_string("b.ini", "[sim]\nstep = 1s\nspeed = 0.5\n", &b, &d), 0);
        assert_int_equal(config_sim_differences(&a.sim, &b.sim, keys, CONFIG_SIM_KEYS), 1);
        assert_string_equal(keys[0], "speed");
        config_free(&b);
        config_free(&a);
        config_diag_free(&d);
}

/* [sim] seed is read by nothing: a warning at its line, naming the program. */
static void seed_is_warned_of_at_its_line(void **state)
{
        struct config c;
        struct config_diag d = {0};

        (void)state;
        assert_int_equal(config_load_string("s.ini", "[sim]\nstep = 1s\nseed = 7\n", &c, &d), 0);
        assert_int_equal(c.warnings.count, 0); /* config_load() leaves it to the program */
        config_warn_seed(&c, "dynmemd");
        assert_int_equal(c.warnings.count, 1);
        assert_string_equal(c.warnings.messages[0],
                            "s.ini:3: warning: seed: nothing in dynmemd is random, so it ignores "
                            "the seed (a generated trace takes its seed from dynmem-tracegen "
                            "--seed)");
        config_free(&c);
        assert_int_equal(config_load_string("s.ini", "[sim]\nstep = 1s\n", &c, &d), 0);
        config_warn_seed(&c, "dynmem-sim");
        assert_int_equal(c.warnings.count, 0);
        config_free(&c);
        config_diag_free(&d);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(full_file_parses),
            cmocka_unit_test(empty_file_takes_defaults),
            cmocka_unit_test(diag_drop_takes_only_the_words_given),
            cmocka_unit_test(unknown_section),
            cmocka_unit_test(unknown_keys),
            cmocka_unit_test(size_without_unit),
            cmocka_unit_test(key_outside_section),
            cmocka_unit_test(bad_values),
            cmocka_unit_test(good_value_spellings),
            cmocka_unit_test(out_of_range_values),
            cmocka_unit_test(a_misspelt_key_is_named_with_the_key_meant),
            cmocka_unit_test(bare_durations_are_said_to_be_seconds),
            cmocka_unit_test(every_setting_is_a_vm_key),
            cmocka_unit_test(lend_is_a_vm_switch),
            cmocka_unit_test(percent_sign_on_percentages),
            cmocka_unit_test(duplicate_key),
            cmocka_unit_test(duplicate_vm),
            cmocka_unit_test(bad_vm_names),
            cmocka_unit_test(vm_name_length_limit),
            cmocka_unit_test(empty_value),
            cmocka_unit_test(bad_policy_name),
            cmocka_unit_test(syntax_errors),
            cmocka_unit_test(overlong_line),
            cmocka_unit_test(continuation_lines),
            cmocka_unit_test(comment_on_a_continuation_line_is_warned_at_its_line),
            cmocka_unit_test(comment_in_a_text_value_is_warned_of),
            cmocka_unit_test(warning_explained_by_an_error),
            cmocka_unit_test(continuation_value_limit),
            cmocka_unit_test(cross_key_settings_errors),
            cmocka_unit_test(several_errors_all_reported),
            cmocka_unit_test(syntax_error_reported_with_others),
            cmocka_unit_test(crlf_lines),
            cmocka_unit_test(byte_order_mark),
            cmocka_unit_test(nul_bytes),
            cmocka_unit_test(backend_keys),
            cmocka_unit_test(real_files),
            cmocka_unit_test(real_file_line_limits),
            cmocka_unit_test(not_a_regular_file),
            cmocka_unit_test(diag_helpers),
            cmocka_unit_test(many_problems_are_capped),
            cmocka_unit_test(many_warnings_are_counted_as_warnings),
            cmocka_unit_test(counts_are_grouped),
            cmocka_unit_test(cluster_and_peers),
            cmocka_unit_test(key_lines_are_by_section),
            cmocka_unit_test(sim_differences_name_each_key),
            cmocka_unit_test(seed_is_warned_of_at_its_line),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
