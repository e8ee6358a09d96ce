/*
 * Tests for backend/qemu_caps.c without a QEMU: reading probe replies of
 * QEMU 7.2 and 10.0 (the shapes those binaries send, trimmed), the choices
 * made from them per machine type, the -run-with capability, and replies of
 * the wrong shape, which must be refused without changing anything.
 */
#include <errno.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "qemu_int.h"

static json_t *parse(const char *text)
{
        json_error_t e;
        json_t *j = json_loads(text, JSON_DECODE_INT_AS_REAL, &e);

        if (!j)
                fail_msg("bad test JSON: %s: %s", e.text, text);
        return j;
}

/* Feed reply text (NULL: QEMU refused the command) to a reader; returns its result. */
static int feed(int (*read)(struct qemu_caps *, const json_t *), struct qemu_caps *c,
                const char *text)
{
        json_t *j = text ? parse(text) : NULL;
        int r = read(c, j);

        json_decref(j);
        return r;
}

static const char machines_72[] =
    "[{\"name\": \"pc-i440fx-7.2\", \"alias\": \"pc\", \"is-default\": true},"
    " {\"name\": \"pc-q35-7.2\", \"alias\": \"q35\"},"
    " {\"name\": \"pc-i440fx-6.2\"}, {\"name\": \"microvm\"}, {\"name\": \"none\"}]";

static const char machines_100[] =
    "[{\"name\": \"pc-i440fx-10.0\", \"alias\": \"pc\", \"is-default\": true},"
    " {\"name\": \"pc-q35-10.0\", \"alias\": \"q35\"}, {\"name\": \"pc-q35-8.1\"},"
    " {\"name\": \"pc-i440fx-8.1\"}, {\"name\": \"pc-i440fx-8.0\"}, {\"name\": \"isapc\"}]";

/* What one QEMU answers to each probe (NULL: it refuses the command). */
struct probe_replies {
        const char *version, *vmem, *run_with, *machines, *hv_balloon;
};

static const struct probe_replies replies_72 = {
    .version = "{\"qemu\": {\"major\": 7, \"minor\": 2, \"micro\": 22},"
               " \"package\": \"Debian 1:7.2+dfsg-7+deb12u18+b3\"}",
    .vmem = "[{\"name\": \"memaddr\", \"type\": \"uint64\"},"
            " {\"name\": \"unplugged-inaccessible\", \"type\": \"OnOffAuto\","
            "  \"default-value\": \"auto\"},"
            " {\"name\": \"prealloc\", \"type\": \"bool\"}]",
    .machines = machines_72,
};

static const struct probe_replies replies_100 = {
    .version = "{\"qemu\": {\"major\": 10, \"minor\": 0, \"micro\": 2},"
               " \"package\": \"Debian 1:10.0.2+ds-2+deb13u1~bpo12+1\"}",
    .vmem = "[{\"name\": \"x-early-migration\", \"type\": \"bool\"},"
            " {\"name\": \"unplugged-inaccessible\", \"type\": \"OnOffAuto\"},"
            " {\"name\": \"dynamic-memslots\", \"type\": \"bool\"}]",
    .run_with = "[{\"option\": \"run-with\", \"parameters\": ["
                "  {\"name\": \"user\", \"type\": \"string\"},"
                "  {\"name\": \"chroot\", \"type\": \"string\"},"
                "  {\"name\": \"async-teardown\", \"type\": \"boolean\"}]}]",
    .machines = machines_100,
    .hv_balloon = "[{\"name\": \"memdev\"}]",
};

/* Capabilities read from every reply of one QEMU, each reply accepted. */
static void probed(struct qemu_caps *c, const struct probe_replies *q)
{
        *c = (struct qemu_caps){0};
        assert_int_equal(feed(qemu_caps_read_version, c, q->version), 0);
        assert_int_equal(feed(qemu_caps_read_vmem, c, q->vmem), 0);
        assert_int_equal(feed(qemu_caps_read_run_with, c, q->run_with), 0);
        assert_int_equal(feed(qemu_caps_read_machines, c, q->machines), 0);
        assert_int_equal(feed(qemu_caps_read_hv_balloon, c, q->hv_balloon), 0);
}

static void qemu_72_keeps_unplugged_memory_accessible_and_one_memslot(void **state)
{
        struct qemu_caps c;
        struct qemu_features f;
        char err[256], line[512];

        (void)state;
        probed(&c, &replies_72);
        assert_true(c.virtio_mem && c.unplugged_inaccessible);
        assert_false(c.dynamic_memslots || c.early_migration || c.hv_balloon);
        assert_false(qemu_caps_run_with_user(&c));
        assert_int_equal(qemu_caps_choose(&c, "pc", true, &f, err, sizeof(err)), 0);
        assert_string_equal(f.machine, "pc-i440fx-7.2");
        assert_int_equal(f.unplugged_inaccessible, QEMU_SWITCH_OFF);
        assert_false(f.dynamic_memslots);
        assert_non_null(strstr(f.dynamic_memslots_why, "8.2"));
        assert_int_equal(qemu_caps_choose(&c, "q35", true, &f, err, sizeof(err)), 0);
        assert_string_equal(f.machine, "pc-q35-7.2");
        qemu_features_describe(&f, line, sizeof(line));
        print_message("# %s\n", line);
        assert_non_null(strstr(line, "QEMU 7.2.22, machine pc-q35-7.2"));
        assert_non_null(strstr(line, "unplugged-inaccessible=off"));
        assert_non_null(strstr(line, "dynamic-memslots=off"));
        assert_non_null(strstr(line, "-run-with user= not used (QEMU 7.2 has no -run-with user="));
        qemu_caps_free(&c);
}

static void qemu_100_uses_dynamic_memslots_on_new_machine_types_only(void **state)
{
        struct qemu_caps c;
        struct qemu_features f;
        char err[256];

        (void)state;
        probed(&c, &replies_100);
        assert_true(c.dynamic_memslots && c.early_migration && c.hv_balloon);
        assert_true(qemu_caps_run_with_user(&c));
        assert_int_equal(qemu_caps_choose(&c, "pc", true, &f, err, sizeof(err)), 0);
        assert_string_equal(f.machine, "pc-i440fx-10.0");
        assert_int_equal(f.unplugged_inaccessible, QEMU_SWITCH_ON);
        assert_true(f.dynamic_memslots);
        assert_true(f.run_with_user && f.hv_balloon && f.early_migration);
        /* 8.1 is the first machine type with unplugged-inaccessible on. */
        assert_int_equal(qemu_caps_choose(&c, "pc-q35-8.1", true, &f, err, sizeof(err)), 0);
        assert_int_equal(f.unplugged_inaccessible, QEMU_SWITCH_ON);
        assert_true(f.dynamic_memslots);
        /* An older machine type keeps it off, and so cannot have dynamic memslots. */
        assert_int_equal(qemu_caps_choose(&c, "pc-i440fx-8.0", true, &f, err, sizeof(err)), 0);
        assert_int_equal(f.unplugged_inaccessible, QEMU_SWITCH_OFF);
        assert_false(f.dynamic_memslots);
        assert_non_null(strstr(f.dynamic_memslots_why, "pc-i440fx-8.0"));
        /* Without a virtio-mem device there is nothing to choose for it. */
        assert_int_equal(qemu_caps_choose(&c, "pc", false, &f, err, sizeof(err)), 0);
        assert_false(f.vmem || f.dynamic_memslots);
        assert_int_equal(f.unplugged_inaccessible, QEMU_SWITCH_UNSET);
        qemu_caps_free(&c);
}

static void machine_types_must_exist_and_be_pc_or_q35(void **state)
{
        struct qemu_caps c;
        struct qemu_features f = {0};
        char err[256];

        (void)state;
        probed(&c, &replies_72);
        assert_int_equal(qemu_caps_choose(&c, "pc-i440fx-10.0", true, &f, err, sizeof(err)),
                         -EINVAL);
        print_message("# %s\n", err);
        assert_non_null(strstr(err, "QEMU 7.2.22 has no machine type \"pc-i440fx-10.0\""));
        assert_false(f.known);
        assert_int_equal(qemu_caps_choose(&c, "microvm", true, &f, err, sizeof(err)), -EINVAL);
        print_message("# %s\n", err);
        assert_non_null(
            strstr(err, "dynmem runs the pc (pc-i440fx-*) and q35 (pc-q35-*) machine types"));
        /* A QEMU without virtio-mem cannot run a VM that needs it. */
        assert_int_equal(feed(qemu_caps_read_vmem, &c, NULL), 0);
        assert_false(c.virtio_mem || c.unplugged_inaccessible);
        assert_int_equal(qemu_caps_choose(&c, "pc", true, &f, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "virtio-mem-pci"));
        assert_int_equal(qemu_caps_choose(&c, "pc", false, &f, err, sizeof(err)), 0);
        qemu_caps_free(&c);
}

static void machine_versions_are_read_from_pc_and_q35_names_only(void **state)
{
        unsigned major = 0, minor = 0;

        (void)state;
        assert_true(qemu_machine_version("pc-i440fx-10.0", &major, &minor));
        assert_true(major == 10 && minor == 0);
        assert_true(qemu_machine_version("pc-q35-8.1", &major, &minor));
        assert_true(major == 8 && minor == 1);
        const char *bad[] = {"pc",          "q35",         "pc-i440fx-",       "pc-i440fx-10",
                             "pc-q35-8.1x", "pc-q35-+8.1", "pc-i440fx-1000.0", "microvm",
                             "pc-q35-8.1 ", "xpc-q35-8.1"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
                assert_false(qemu_machine_version(bad[i], &major, &minor));
}

static void describe_shows_the_choices_and_what_else_is_offered(void **state)
{
        struct qemu_caps c;
        struct qemu_features f;
        struct backend_vm_description d = {0};
        char err[256];

        (void)state;
        probed(&c, &replies_100);
        assert_int_equal(qemu_caps_choose(&c, "pc", true, &f, err, sizeof(err)), 0);
        qemu_features_to_description(&f, &d);
        assert_string_equal(d.machine, "pc-i440fx-10.0");
        assert_int_equal(d.n_choices, 3);
        assert_string_equal(d.choices[0].name, "virtio-mem unplugged-inaccessible");
        assert_string_equal(d.choices[0].value, "on");
        assert_string_equal(d.choices[1].name, "virtio-mem dynamic-memslots");
        assert_string_equal(d.choices[1].value, "on");
        assert_non_null(strstr(d.choices[1].why, "QEMU 10.0"));
        /* Offered, and why it is not used. */
        assert_string_equal(d.choices[2].name, "-run-with user=");
        assert_string_equal(d.choices[2].value, "not used");
        assert_string_equal(d.choices[2].why, "QEMU 10.0 offers it; " QEMU_RUN_WITH_UNUSED);
        assert_string_equal(d.offers, "hv-balloon, virtio-mem x-early-migration");
        qemu_caps_free(&c);

        probed(&c, &replies_72);
        d = (struct backend_vm_description){0};
        assert_int_equal(qemu_caps_choose(&c, "pc", false, &f, err, sizeof(err)), 0);
        qemu_features_to_description(&f, &d);
        assert_string_equal(d.machine, "pc-i440fx-7.2");
        /* No virtio-mem device, nothing chosen for it; QEMU 7.2 has no -run-with. */
        assert_int_equal(d.n_choices, 1);
        assert_string_equal(d.choices[0].name, "-run-with user=");
        assert_string_equal(d.choices[0].why, "QEMU 7.2 has no -run-with user=, 9.1 and later do");
        assert_string_equal(d.offers, "");
        /* A VM found running: what its QEMU offers is not known, the reason stands. */
        f.run_with_user = true;
        qemu_features_choose_run_with(&f, false);
        assert_string_equal(f.run_with_why, QEMU_RUN_WITH_UNUSED);
        /* Nothing known (a VM that never ran): nothing said. */
        d = (struct backend_vm_description){0};
        qemu_features_to_description(&(struct qemu_features){0}, &d);
        assert_string_equal(d.machine, "");
        assert_int_equal(d.n_choices, 0);
        qemu_caps_free(&c);
}

/* A reply of the wrong shape is -EPROTO and leaves what was read before. */
static void wrong_shapes_are_refused_and_change_nothing(void **state)
{
        struct qemu_caps c, before;
        const struct {
                int (*read)(struct qemu_caps *, const json_t *);
                const char *text;
        } cases[] = {
            {qemu_caps_read_version, "{}"},
            {qemu_caps_read_version, "{\"qemu\": {\"major\": -1, \"minor\": 0, \"micro\": 0}}"},
            {qemu_caps_read_version, "{\"qemu\": {\"major\": 10, \"minor\": 0.5, \"micro\": 0}}"},
            {qemu_caps_read_version, "{\"qemu\": {\"major\": 1e30, \"minor\": 0, \"micro\": 0}}"},
            {qemu_caps_read_version, "{\"qemu\": {\"major\": \"10\", \"minor\": 0, \"micro\": 0}}"},
            {qemu_caps_read_version, "{\"qemu\": {\"major\": 0, \"minor\": 0, \"micro\": 0}}"},
            {qemu_caps_read_version, "[]"},
            {qemu_caps_read_vmem, "{}"},
            {qemu_caps_read_vmem, "[{\"name\": 5}]"},
            {qemu_caps_read_vmem, "[{\"type\": \"bool\"}, {\"name\": \"dynamic-memslots\"}]"},
            {qemu_caps_read_run_with, "{\"option\": \"run-with\"}"},
            {qemu_caps_read_run_with, "[{\"option\": \"run-with\", \"parameters\": {}}]"},
            {qemu_caps_read_run_with, "[{\"parameters\": []}]"},
            {qemu_caps_read_machines, "{}"},
            {qemu_caps_read_machines, "[{\"name\": \"pc-i440fx-10.0\", \"alias\": 3}]"},
            {qemu_caps_read_machines, "[{\"name\": \"pc i440fx\"}]"},
            {qemu_caps_read_machines, "[{\"name\": \"\"}]"},
            {qemu_caps_read_machines, "[{\"alias\": \"pc\"}]"},
            {qemu_caps_read_machines,
             "[{\"name\": \"a-name-far-too-long-for-any-machine-type-qemu-has-"
             "ever-had-or-will-have\"}]"},
            {qemu_caps_read_hv_balloon, "{}"},
        };

        (void)state;
        probed(&c, &replies_100);
        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                before = c;
                if (feed(cases[i].read, &c, cases[i].text) != -EPROTO)
                        fail_msg("accepted: %s", cases[i].text);
                before.machines = c.machines; /* the same list, not a copy */
                assert_memory_equal(&before, &c, sizeof(c));
        }
        assert_string_equal(c.machines[0].name, "pc-i440fx-10.0");
        qemu_caps_free(&c);
}

/* More than any QEMU sends is refused: lists are bounded. */
static void oversized_lists_are_refused(void **state)
{
        struct qemu_caps c = {0};
        json_t *many = json_array();

        (void)state;
        for (int i = 0; i <= QEMU_MACHINES_MAX; i++) {
                char name[32];
                snprintf(name, sizeof(name), "pc-i440fx-%d.0", i % 100);
                json_array_append_new(many, json_pack("{s:s}", "name", name));
        }
        assert_int_equal(qemu_caps_read_machines(&c, many), -EPROTO);
        assert_int_equal(c.n_machines, 0);
        json_array_remove(many, 0);
        assert_int_equal(qemu_caps_read_machines(&c, many), 0);
        assert_int_equal(c.n_machines, QEMU_MACHINES_MAX);
        json_decref(many);
        qemu_caps_free(&c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(qemu_72_keeps_unplugged_memory_accessible_and_one_memslot),
            cmocka_unit_test(qemu_100_uses_dynamic_memslots_on_new_machine_types_only),
            cmocka_unit_test(machine_types_must_exist_and_be_pc_or_q35),
            cmocka_unit_test(machine_versions_are_read_from_pc_and_q35_names_only),
            cmocka_unit_test(describe_shows_the_choices_and_what_else_is_offered),
            cmocka_unit_test(wrong_shapes_are_refused_and_change_nothing),
            cmocka_unit_test(oversized_lists_are_refused),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
