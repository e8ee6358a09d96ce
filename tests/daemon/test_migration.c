/*
 * Tests for dynmemd's part in live migrations (daemon/migration.c) on a
 * daemon of its own, no loop and a stand-in backend: the settings an
 * arriving VM is admitted with, and how a VM that stops holding memory here
 * in the middle of its migration is counted.
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

#include "daemon.h"
#include "migration.h"
#include "registry.h"
#include "units.h"

static struct vm_settings expected_settings; /* what the backend was told */

static int expect_incoming(struct backend *b, const char *name, const struct vm_settings *s,
                           uint64_t bytes, char *err, size_t errlen)
{
        (void)b, (void)name, (void)bytes, (void)err, (void)errlen;
        expected_settings = *s;
        return 0;
}

static const struct backend_ops ops = {.name = "stand-in", .expect_incoming = expect_incoming};

static struct daemon *daemon_new(void)
{
        struct daemon *d = calloc(1, sizeof(*d));
        struct backend *b = calloc(1, sizeof(*b));

        assert_non_null(d);
        assert_non_null(b);
        b->ops = &ops;
        d->backend = b;
        d->speed = 1.0;
        d->bal.host.memory_bytes = 8 * GIB;
        return d;
}

static void daemon_free(struct daemon *d)
{
        registry_free(&d->reg, NULL);
        balancer_fini(&d->bal);
        free(d->backend);
        free(d);
}

static struct vm_settings dynamic(uint64_t minimum, uint64_t maximum, uint32_t weight)
{
        return (struct vm_settings){.dynamic = true,
                                    .startup_bytes = minimum,
                                    .minimum_bytes = minimum,
                                    .maximum_bytes = maximum,
                                    .buffer_percent = 20,
                                    .weight = weight};
}

/*
 * A VM arrives under a name this host knows already (a definition of it here,
 * shut off): it is admitted, counted and balanced with the settings it
 * arrives with, those of the domain XML that libvirt runs here.
 */
static void an_arriving_vm_has_the_settings_it_arrives_with(void **state)
{
        struct daemon *d = daemon_new();
        struct registry_entry *e;
        struct vm_settings here = dynamic(256 * MIB, GIB, 1000);
        struct vm_settings arriving = dynamic(512 * MIB, 4 * GIB, 8000);
        char err[256];

        (void)state;
        assert_int_equal(registry_add(&d->reg, "web", &e), 0);
        e->origin = REGISTRY_BACKEND;
        e->vm.settings = here;
        assert_int_equal(migration_admit(d, "web", &arriving, GIB, err, sizeof(err)), 0);
        e = registry_find(&d->reg, "web");
        assert_non_null(e);
        assert_int_equal(e->vm.migration, VM_MIGRATION_IN);
        assert_int_equal(e->vm.migration_bytes, GIB);
        assert_false(settings_diff(&e->vm.settings, &arriving));
        assert_false(settings_diff(&expected_settings, &arriving));

        /* a name not known here: the same */
        assert_int_equal(migration_admit(d, "db", &arriving, GIB, err, sizeof(err)), 0);
        assert_false(settings_diff(&registry_find(&d->reg, "db")->vm.settings, &arriving));
        daemon_free(d);
}

static struct registry_entry *leaving(struct daemon *d, const char *name)
{
        struct registry_entry *e;

        assert_int_equal(registry_add(&d->reg, name, &e), 0);
        e->origin = REGISTRY_BACKEND;
        e->vm.settings = dynamic(512 * MIB, 2 * GIB, 5000);
        e->vm.state = VM_RUNNING;
        e->vm.obs.assigned_bytes = GIB;
        e->vm.migration = VM_MIGRATION_OUT;
        e->vm.migration_bytes = GIB;
        return e;
}

/*
 * A VM shut off in the middle of its outgoing migration did not migrate: its
 * migration failed. Only one its backend says went off by migrating has left.
 */
static void a_vm_shut_off_during_its_migration_has_not_left(void **state)
{
        struct daemon *d = daemon_new();

        (void)state;
        assert_true(migration_gone(d, leaving(d, "shut"), false));
        assert_int_equal(d->migrations.left, 0);
        assert_int_equal(d->migrations.failed_out, 1);
        assert_int_equal(registry_find(&d->reg, "shut")->vm.migration, VM_MIGRATION_NONE);

        struct registry_entry *e = leaving(d, "moved");
        e->vm.migration = VM_MIGRATION_SWITCHOVER;
        assert_true(migration_gone(d, e, true));
        assert_int_equal(d->migrations.left, 1);
        assert_int_equal(d->migrations.failed_out, 1);
        daemon_free(d);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(an_arriving_vm_has_the_settings_it_arrives_with),
            cmocka_unit_test(a_vm_shut_off_during_its_migration_has_not_left),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
