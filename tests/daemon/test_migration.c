/*
 * Tests for dynmemd's part in live migrations (daemon/migration.c) on a
 * daemon of its own, no loop and a stand-in backend: the settings an
 * arriving VM is admitted with, how a VM that stops holding memory here
 * in the middle of its migration is counted, and what the policy keeps of a
 * VM whose migration ended.
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

/* A memory that learned: rises in bucket 5, a correction, and a sample of the moment. */
static void learned_something(struct policy_vm_memory *m, uint64_t now)
{
        assert_non_null(m);
        m->history.rise_weight[5] = 3.0f;
        m->history.weight_sum = 3.0f;
        m->history.weight_unit = 1.0f;
        m->history.top = 5;
        m->history.primed = true;
        m->history.last_demand = GIB;
        m->history.last_ms = now;
        m->history.expected = GIB + 64 * MIB;
        m->history.trend_rate = 1e3;
        m->correction_permille = 870;
        m->correction_ms = now;
        m->stall_backoff = 2;
}

/*
 * A VM whose outgoing migration failed ran here all along, held: the policy
 * keeps what it learned of its workload and forgets only the moment (the
 * last sample, the rate, what it expected). One that arrived keeps nothing
 * from here: what it learned comes carried in it (carry.c).
 */
static void a_failed_outgoing_migration_keeps_what_the_policy_learned(void **state)
{
        struct daemon *d = daemon_new();
        char err[256];

        (void)state;
        assert_int_equal(balancer_init(&d->bal, "dynmem", NULL, NULL, err, sizeof(err)), 0);
        struct registry_entry *out = leaving(d, "web");
        struct registry_entry *in = leaving(d, "db");
        in->vm.migration = VM_MIGRATION_IN;
        assert_int_equal(balancer_set_vms(&d->bal, d->reg.vms, d->reg.n), 0);
        out = registry_find(&d->reg, "web");
        in = registry_find(&d->reg, "db");
        learned_something(balancer_memory(&d->bal, &out->vm), daemon_now(d));
        learned_something(balancer_memory(&d->bal, &in->vm), daemon_now(d));

        struct backend_vm_info still_here = {.migration = VM_MIGRATION_NONE, .assigned_bytes = GIB};
        migration_follow(d, out, &still_here);
        assert_int_equal(out->vm.migration, VM_MIGRATION_NONE);
        assert_int_equal(d->migrations.failed_out, 1);
        const struct policy_vm_memory *m = balancer_memory(&d->bal, &out->vm);
        assert_true(m->history.weight_sum > 0.0f);
        assert_int_equal(m->history.top, 5);
        assert_true(m->history.rise_weight[5] > 0.0f);
        assert_int_equal(m->correction_permille, 870);
        assert_int_equal(m->stall_backoff, 2);
        assert_false(m->history.primed); /* the moment is gone */
        assert_int_equal(m->history.expected, 0);
        assert_true(m->history.trend_rate == 0.0);

        migration_follow(d, in, &still_here);
        assert_int_equal(d->migrations.arrived, 1);
        m = balancer_memory(&d->bal, &in->vm);
        assert_true(m->history.weight_sum == 0.0f);
        assert_int_equal(m->correction_permille, 0);
        daemon_free(d);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(an_arriving_vm_has_the_settings_it_arrives_with),
            cmocka_unit_test(a_vm_shut_off_during_its_migration_has_not_left),
            cmocka_unit_test(a_failed_outgoing_migration_keeps_what_the_policy_learned),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
