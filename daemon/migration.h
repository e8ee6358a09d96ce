/*
 * migration: dynmemd's part in the live migrations its backend's owner
 * (libvirt) makes between hosts (docs/migration.md). dynmem moves nothing
 * itself; it keeps each host's accounting true while a VM moves:
 *
 *   - following: as the backend reports a VM leaving, switched over,
 *     arriving, arrived or back (inventory.c calls in), the VM's size is held
 *     where it is (the balancer pins a migrating VM), and each step is an
 *     event with its reason, a log line and a counter;
 *   - admission of an arriving VM (the owner's hook on the destination, the
 *     `admit` request with an incoming size): it must fit by shrinking only
 *     VMs of lower weight than its own to their minimum; then it waits in
 *     admission like a start while those shrink, and is counted from the
 *     moment it is admitted; otherwise it is refused at once with the reason,
 *     which libvirt shows to whoever migrates it;
 *   - status: the VMs arriving and leaving, and the counters.
 */
#ifndef DYNMEM_MIGRATION_H
#define DYNMEM_MIGRATION_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backend.h"
#include "registry.h"

struct daemon;

struct migration_counters {
        uint64_t arrived;    /* migrations here completed */
        uint64_t left;       /* migrations away completed */
        uint64_t failed_in;  /* migrations here that failed (nothing is left counted here) */
        uint64_t failed_out; /* migrations away that ended with the VM still running here */
        uint64_t refused;    /* incoming migrations refused by admission here */
        uint64_t arriving;   /* now: VMs arriving */
        uint64_t leaving;    /* now: VMs leaving (switched over or not) */
};

/*
 * The backend's report on a listed VM (inventory.c, after its life-cycle
 * state is followed): migration steps become events.
 */
void migration_follow(struct daemon *d, struct registry_entry *e, const struct backend_vm_info *in);

/*
 * The VM no longer holds memory here (off, or no longer listed). If it was
 * leaving: it has left when migrated_away (the backend says it went off
 * because it migrated), else it was shut off in the middle of its migration,
 * which failed. If it was arriving its migration failed. True when any of
 * these was said.
 */
bool migration_gone(struct daemon *d, struct registry_entry *e, bool migrated_away);

/*
 * Admission of a VM arriving with `bytes` and settings s (already checked).
 * Returns 0 when the caller may wait for the room to be made (the VM is then
 * listed, arriving), or a negative errno with the reason in err (-ENOSPC: no
 * room even by shrinking lighter VMs).
 */
int migration_admit(struct daemon *d, const char *name, const struct vm_settings *s, uint64_t bytes,
                    char *err, size_t errlen);

/* An arrival that waited too long in admission is refused (counted, an event). */
void migration_refused_late(struct daemon *d, struct registry_entry *e);

/* Count the VMs arriving and leaving (after each cycle). */
void migration_count(struct daemon *d);

/* {"arriving": N, "leaving": N, "arrived": N, "left": N, "failed_in": N, ...} */
json_t *migration_status_json(const struct daemon *d);

/* Prometheus: dynmem_migrations_total{direction,result}, VMs arriving and leaving. */
void migration_metrics(FILE *f, const struct daemon *d);

#endif
