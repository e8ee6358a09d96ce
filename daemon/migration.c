/*
 * migration: dynmemd's part in live migrations. See migration.h and
 * docs/migration.md.
 */
#include "migration.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "daemon.h"
#include "events.h"
#include "log.h"
#include "mono.h"
#include "relief.h"
#include "units.h"

/* One migration step: in the event ring (dynmem events, the web page) and the log. */
static void say(struct daemon *d, struct vm *vm, enum balancer_event_kind kind, uint64_t bytes,
                int priority, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void say(struct daemon *d, struct vm *vm, enum balancer_event_kind kind, uint64_t bytes,
                int priority, const char *fmt, ...)
{
        char message[160];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(message, sizeof(message), fmt, ap);
        va_end(ap);
        if (d->events)
                events_add(d->events, &(struct balancer_event){.kind = kind,
                                                               .vm = vm,
                                                               .bytes = bytes,
                                                               .message = message,
                                                               .pressure = -1.0,
                                                               .time_ms = daemon_now(d)});
        log_msg(priority, "%s: %s", vm->name, message);
}

bool migration_gone(struct daemon *d, struct registry_entry *e, bool migrated_away)
{
        struct vm *vm = &e->vm;
        char a[32];
        bool said = true;

        switch (vm->migration) {
        case VM_MIGRATION_OUT:
        case VM_MIGRATION_SWITCHOVER:
                if (!migrated_away) {
                        d->migrations.failed_out++;
                        say(d, vm, BALANCER_EVENT_MIGRATION_FAILED, vm->obs.assigned_bytes,
                            LOG_NOTICE,
                            "shut off during its migration to another host, which failed; its "
                            "%s here are free again",
                            size_format(vm->obs.assigned_bytes, a, sizeof(a)));
                        break;
                }
                d->migrations.left++;
                say(d, vm, BALANCER_EVENT_LEFT, vm->obs.assigned_bytes, LOG_INFO,
                    "migrated to another host; its %s here are free again",
                    size_format(vm->obs.assigned_bytes, a, sizeof(a)));
                break;
        case VM_MIGRATION_IN:
                d->migrations.failed_in++;
                say(d, vm, BALANCER_EVENT_MIGRATION_FAILED, vm->obs.assigned_bytes, LOG_NOTICE,
                    "its migration here failed; the %s reserved for it are free again",
                    size_format(vm->obs.assigned_bytes, a, sizeof(a)));
                break;
        default:
                said = false;
                break;
        }
        vm->migration = VM_MIGRATION_NONE;
        vm->migration_bytes = 0;
        return said;
}

/* A running VM's migration changed from `was` to what the backend says now. */
static void step(struct daemon *d, struct vm *vm, enum vm_migration was,
                 const struct backend_vm_info *in)
{
        enum vm_migration now = in->migration;
        char a[32];

        if (now != VM_MIGRATION_NONE && was == VM_MIGRATION_NONE)
                vm->migration_bytes =
                    vm->obs.assigned_bytes ? vm->obs.assigned_bytes : in->assigned_bytes;
        size_format(vm->migration_bytes, a, sizeof(a));
        if ((now == VM_MIGRATION_OUT || now == VM_MIGRATION_SWITCHOVER) &&
            was == VM_MIGRATION_NONE) {
                say(d, vm, BALANCER_EVENT_LEAVING, vm->migration_bytes, LOG_INFO,
                    "migrating to another host; held at %s until it has left", a);
        } else if (now == VM_MIGRATION_NONE && was == VM_MIGRATION_IN) {
                d->migrations.arrived++;
                relief_note_arrival(d, vm->name);
                say(d, vm, BALANCER_EVENT_ARRIVED, in->assigned_bytes, LOG_INFO,
                    "migrated here with %s; balanced here from now on",
                    size_format(in->assigned_bytes, a, sizeof(a)));
        } else if (now == VM_MIGRATION_NONE) {
                d->migrations.failed_out++;
                say(d, vm, BALANCER_EVENT_MIGRATION_FAILED, vm->obs.assigned_bytes, LOG_NOTICE,
                    "its migration to another host ended with it still running here; balanced "
                    "here again, with what the policy learned of it");
        } else if (now == VM_MIGRATION_IN && was == VM_MIGRATION_NONE) {
                say(d, vm, BALANCER_EVENT_ARRIVING, vm->migration_bytes, LOG_NOTICE,
                    "arriving by live migration with %s, unannounced (no admission hook ran "
                    "here); counted from now",
                    a);
        }
        vm->migration = now;
        if (now == VM_MIGRATION_NONE) {
                vm->migration_bytes = 0;
                if (was == VM_MIGRATION_IN) /* its past here, if any, says nothing now */
                        balancer_reset_vm(&d->bal, vm);
                else /* it ran here all along, held: only the moment is stale */
                        balancer_forget_instant(&d->bal, vm, daemon_now(d));
        }
}

void migration_follow(struct daemon *d, struct registry_entry *e, const struct backend_vm_info *in)
{
        struct vm *vm = &e->vm;
        enum vm_migration was = vm->migration;

        if (vm->state == VM_STARTING) /* an arrival in admission keeps what admit set */
                return;
        if (!vm_holds_memory(vm)) {
                vm->migration = VM_MIGRATION_NONE;
                vm->migration_bytes = 0;
                return;
        }
        if (in->migration != was) {
                step(d, vm, was, in);
                registry_touch(e);
        }
}

int migration_admit(struct daemon *d, const char *name, const struct vm_settings *s, uint64_t bytes,
                    char *err, size_t errlen)
{
        struct registry_entry *e = registry_find(&d->reg, name);
        uint64_t room = balancer_room_for(&d->bal, s->weight);
        struct vm shown = {0};
        char a[32], b[32], c[32];
        int r;

        snprintf(shown.name, sizeof(shown.name), "%s", name);
        if (bytes > room) {
                snprintf(err, errlen,
                         "not enough memory here for it: it holds %s, and %s can be made free by "
                         "shrinking the VMs of lower weight than its %u to their minimum (memory "
                         "for VMs: %s)",
                         size_format(bytes, a, sizeof(a)), size_format(room, b, sizeof(b)),
                         s->weight, size_format(d->bal.host.memory_bytes, c, sizeof(c)));
                d->migrations.refused++;
                say(d, e ? &e->vm : &shown, BALANCER_EVENT_MIGRATION_REFUSED, bytes, LOG_NOTICE,
                    "incoming migration refused: %s", err);
                return -ENOSPC;
        }
        if (!d->backend->ops->expect_incoming) {
                snprintf(err, errlen, "backend %s does not take migrations", d->backend->ops->name);
                return -EOPNOTSUPP;
        }
        r = d->backend->ops->expect_incoming(d->backend, name, s, bytes, err, errlen);
        if (r < 0)
                return r;
        if (!e) {
                if (registry_add(&d->reg, name, &e) < 0) {
                        snprintf(err, errlen, "out of memory");
                        return -ENOMEM;
                }
                e->origin = REGISTRY_BACKEND;
                e->configured = e->seen = true;
                daemon_vms_changed(d);
        }
        /* the settings it arrives with, in the domain XML libvirt is about to run here, not
         * those of a definition of the same name here (docs/migration.md) */
        e->vm.settings = *s;
        e->problem[0] = '\0';
        e->vm.migration = VM_MIGRATION_IN;
        e->vm.migration_bytes = bytes;
        registry_touch(e);
        log_msg(LOG_INFO, "%s: incoming migration: %s to place, %s can be made free for it", name,
                size_format(bytes, a, sizeof(a)), size_format(room, b, sizeof(b)));
        return 0;
}

void migration_refused_late(struct daemon *d, struct registry_entry *e)
{
        d->migrations.refused++;
        say(d, &e->vm, BALANCER_EVENT_MIGRATION_REFUSED, e->vm.migration_bytes, LOG_NOTICE,
            "incoming migration refused: %s", e->vm.refusal);
}

void migration_count(struct daemon *d)
{
        d->migrations.arriving = d->migrations.leaving = 0;
        for (size_t i = 0; i < d->reg.n; i++) {
                const struct vm *vm = d->reg.vms[i];
                if (vm->migration == VM_MIGRATION_IN &&
                    (vm_holds_memory(vm) || vm->state == VM_STARTING))
                        d->migrations.arriving++;
                else if (vm->migration != VM_MIGRATION_NONE && vm_holds_memory(vm))
                        d->migrations.leaving++;
        }
}

json_t *migration_status_json(const struct daemon *d)
{
        const struct migration_counters *m = &d->migrations;

        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "arriving", (json_int_t)m->arriving,
                         "leaving", (json_int_t)m->leaving, "arrived", (json_int_t)m->arrived,
                         "left", (json_int_t)m->left, "failed_in", (json_int_t)m->failed_in,
                         "failed_out", (json_int_t)m->failed_out, "refused",
                         (json_int_t)m->refused);
}

void migration_metrics(FILE *f, const struct daemon *d)
{
        const struct migration_counters *m = &d->migrations;
        const struct {
                const char *direction, *result;
                uint64_t n;
        } rows[] = {
            {"in", "done", m->arrived},       {"in", "failed", m->failed_in},
            {"in", "refused", m->refused},    {"out", "done", m->left},
            {"out", "failed", m->failed_out},
        };

        fputs("# HELP dynmem_migrations_total Live migrations to (in) and from (out) this host "
              "since dynmemd started, by how they ended.\n"
              "# TYPE dynmem_migrations_total counter\n",
              f);
        for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++)
                fprintf(f, "dynmem_migrations_total{direction=\"%s\",result=\"%s\"} %llu\n",
                        rows[i].direction, rows[i].result, (unsigned long long)rows[i].n);
        fprintf(f,
                "# HELP dynmem_vms_migrating VMs arriving here or leaving by live migration now.\n"
                "# TYPE dynmem_vms_migrating gauge\n"
                "dynmem_vms_migrating{direction=\"in\"} %llu\n"
                "dynmem_vms_migrating{direction=\"out\"} %llu\n",
                (unsigned long long)m->arriving, (unsigned long long)m->leaving);
}
