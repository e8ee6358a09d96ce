/*
 * libvirt_migrate: live migration as the libvirt backend sees it
 * (docs/migration.md). libvirt and QEMU move the domain; this file only
 * knows when one moves, so that nothing resizes it meanwhile and each host
 * counts it as it should:
 *
 *   - leaving (the source): libvirt's migration-iteration event, or the
 *     domain paused for a migration, or (after dynmemd restarted, and before
 *     any resize) the job libvirt runs on it (virDomainGetJobStats: the
 *     operation "outgoing migration"). It stays counted here until libvirt
 *     says it stopped; if the job ends with the domain still running here,
 *     the migration failed and it is balanced here again. When it stops,
 *     libvirt's shut-off reason (or, for a transient domain libvirt no
 *     longer has, its stopped event) says whether it migrated away or was
 *     shut off during its migration (lv_mig_vanished lists such a domain
 *     once more, off, to say which).
 *   - arriving (the destination): announced by the admission hook (the
 *     qemu hook's migrate operation) before libvirt creates the domain, with
 *     what it holds on the source; then libvirt's domain, paused, with an
 *     incoming-migration job. It is counted at that size, never resized and
 *     not attached (its guest is not here yet) until libvirt resumes it here
 *     (its lifecycle event, or its state when dynmemd finds it); a domain that
 *     goes away instead was a failed migration. It is listed with the settings
 *     it arrives with, even over a shut-off definition of the same name.
 *
 * While a domain migrates, a resize would wait for libvirt's lock on it
 * (up to 30 s, stalling the cycle) and QEMU would refuse it anyway: every
 * resize first asks libvirt whether a job runs on the domain.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "libvirt_int.h"
#include "units.h"

const char *lv_mig_name(enum vm_migration m)
{
        const char *n = vm_migration_name(m);

        return n ? n : "none";
}

/* libvirt paused it for a migration (its state as last loaded): the switchover on the source,
 * the whole arrival here. */
static bool paused_for_migration(const struct lv_domain *d)
{
        return d->state == VIR_DOMAIN_PAUSED && d->reason == VIR_DOMAIN_PAUSED_MIGRATION;
}

/* What a job's operation (struct lv_job_reading) says of a migration. */
static enum vm_migration migration_of_job(int operation)
{
        if (operation == VIR_DOMAIN_JOB_OPERATION_MIGRATION_OUT)
                return VM_MIGRATION_OUT;
        if (operation == VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN)
                return VM_MIGRATION_IN;
        return VM_MIGRATION_NONE;
}

static void set_migration(struct lv_domain *d, enum vm_migration m, const char *why)
{
        if (d->migration == m)
                return;
        log_msg(LOG_DEBUG, "vm \"%s\": migration %s -> %s (%s)", d->name, lv_mig_name(d->migration),
                lv_mig_name(m), why);
        bool was_leaving =
            d->migration == VM_MIGRATION_OUT || d->migration == VM_MIGRATION_SWITCHOVER;
        d->migration = m;
        d->dirty = true;
        if (m == VM_MIGRATION_NONE)
                d->incoming_bytes = 0;
        if (m == VM_MIGRATION_SWITCHOVER && d->agent_conn) {
                /* the guest goes on on the destination: its channel here closes, not worth a
                 * word or a reconnection */
                qemu_agent_free(d->agent_conn);
                d->agent_conn = NULL;
        }
        if (m == VM_MIGRATION_NONE && was_leaving && d->attached)
                d->attached_id = -1; /* still here: attached afresh (the agent reconnects) */
}

bool lv_mig_busy(struct lv_domain *d)
{
        const struct lv_job_reading *j = &d->job_read;

        if (d->migration != VM_MIGRATION_NONE)
                return true;
        if (!d->job_read_ms || mono_ms() >= d->job_read_ms + LV_ANSWER_MS)
                return true; /* not read lately: libvirt may not be answering */
        if (j->r > 0 && migration_of_job(j->operation) != VM_MIGRATION_NONE) {
                set_migration(d, migration_of_job(j->operation), "its job");
                if (d->lb->env.wakeup)
                        d->lb->env.wakeup(d->lb->env.wakeup_userdata);
        }
        return j->r != 0; /* a job of any kind, or libvirt cannot say: not now */
}

bool lv_mig_wants_job(const struct lv_domain *d)
{
        if (!d->dom || d->locked_by_start)
                return false;
        /* leaving: has its job ended? (an arrival ends with libvirt's events, not its job) */
        if (d->migration != VM_MIGRATION_NONE)
                return d->migration != VM_MIGRATION_IN;
        /* may be resized: asked before each plan (lv_mig_busy); not behind our own resize */
        return d->attached && d->info.balanced && !d->job_busy;
}

void lv_mig_take_job(struct lv_domain *d, const struct lv_job_reading *j, double ms,
                     uint64_t now_ms)
{
        lv_note_call_ms(d->lb, "virDomainGetJobStats", d->name, ms);
        if (j->r < 0 && j->err.code)
                lv_conn_check_error_msg(d->lb, "reading a domain's job", j->err.message);
        if (d->migration != VM_MIGRATION_NONE && d->migration != VM_MIGRATION_IN) {
                /* over: reload it (off, gone, or running here). Not lv_dom_mark(): that
                 * would also set aside the load read in this same round, and the next
                 * round's job, over again, the one after, for ever */
                if (j->r == 0)
                        d->dirty = true;
                return;
        }
        d->job_read = *j;
        d->job_read_ms = now_ms ? now_ms : 1;
}

/* Running, not paused (its state as last loaded): an arrival is over. */
static bool running_here(const struct lv_domain *d)
{
        return d->state == VIR_DOMAIN_RUNNING;
}

static bool leaving(const struct lv_domain *d)
{
        return d->migration == VM_MIGRATION_OUT || d->migration == VM_MIGRATION_SWITCHOVER;
}

/*
 * A domain of that name defined here, shut off, that an arrival is announced
 * for: it is listed with the settings the VM arrives with (the domain XML
 * libvirt runs here), not its definition's.
 */
static void show_incoming_settings(struct lv_domain *d)
{
        d->info.settings = d->incoming_settings;
        d->info.balanced = d->incoming_settings.dynamic;
        d->info.problem[0] = '\0';
}

void lv_mig_loaded(struct lv_domain *d, const struct lv_job_reading *job, uint64_t now_ms)
{
        enum vm_migration m;

        if (d->run != BACKEND_VM_RUNNING) {
                /* it left, or was shut off during its migration (libvirt's reason says which) */
                if (leaving(d))
                        d->info.migrated_away = d->state == VIR_DOMAIN_SHUTOFF &&
                                                d->reason == VIR_DOMAIN_SHUTOFF_MIGRATED;
                /* defined here and shut off: an announced arrival may still come */
                if (lv_mig_expected(d, now_ms))
                        show_incoming_settings(d);
                else
                        set_migration(d, VM_MIGRATION_NONE, "not running");
                d->dirty = false;
                return;
        }
        d->incoming_until_ms = 0; /* libvirt runs it: it leaves with libvirt's domain */
        if (d->migration == VM_MIGRATION_IN) {
                /* arriving until it runs here: libvirt resumes it at the end of the migration
                 * (the job is not always visible at the start, nor asked on the destination) */
                if (running_here(d))
                        set_migration(d, VM_MIGRATION_NONE, "running here");
                d->dirty = false;
                return;
        }
        if (job->r < 0) {
                if (job->err.code)
                        lv_conn_check_error_msg(d->lb, "reading a domain's job", job->err.message);
                return; /* keep what was known */
        }
        m = job->r > 0 ? migration_of_job(job->operation) : VM_MIGRATION_NONE;
        if (m == VM_MIGRATION_OUT && paused_for_migration(d))
                m = VM_MIGRATION_SWITCHOVER;
        set_migration(d, m, m == VM_MIGRATION_NONE ? "no migration job" : "its job");
        d->dirty = false; /* just loaded */
}

bool lv_mig_vanished(struct lv_domain *d)
{
        if (!leaving(d))
                return false;
        d->run = d->info.run = BACKEND_VM_OFF;
        d->id = -1;
        /* no stopped event seen (the connection was lost meanwhile): it went as it was going */
        d->info.migrated_away = !d->stop_seen || d->stop_migrated;
        set_migration(d, VM_MIGRATION_NONE, "no longer defined here"); /* dirty: dropped next */
        if (d->dom) {
                virDomainFree(d->dom);
                d->dom = NULL;
        }
        return true;
}

/* ---- libvirt's events ---- */

static struct lv_domain *domain_of(struct lv_backend *lb, virDomainPtr dom)
{
        return lv_dom_find(lb, virDomainGetName(dom));
}

void lv_mig_iteration(struct lv_backend *lb, virDomainPtr dom)
{
        struct lv_domain *d = domain_of(lb, dom);

        if (d && d->migration == VM_MIGRATION_NONE && d->run == BACKEND_VM_RUNNING)
                set_migration(d, VM_MIGRATION_OUT, "migration-iteration event");
}

void lv_mig_lifecycle(struct lv_backend *lb, virDomainPtr dom, int event, int detail)
{
        struct lv_domain *d = domain_of(lb, dom);

        if (!d)
                return;
        if (event == VIR_DOMAIN_EVENT_STARTED || event == VIR_DOMAIN_EVENT_STOPPED) {
                d->stop_seen = event == VIR_DOMAIN_EVENT_STOPPED;
                d->stop_migrated = d->stop_seen && detail == VIR_DOMAIN_EVENT_STOPPED_MIGRATED;
        }
        if (event == VIR_DOMAIN_EVENT_SUSPENDED && detail == VIR_DOMAIN_EVENT_SUSPENDED_MIGRATED)
                set_migration(d, VM_MIGRATION_SWITCHOVER, "paused for its switchover");
        else if (event == VIR_DOMAIN_EVENT_STARTED && detail == VIR_DOMAIN_EVENT_STARTED_MIGRATED)
                set_migration(d, VM_MIGRATION_IN, "started for an incoming migration");
        /* resumed, stopped: the reload that follows asks libvirt's job */
}

/* ---- a domain announced by the admission hook ---- */

bool lv_mig_expected(const struct lv_domain *d, uint64_t now_ms)
{
        return d->incoming_until_ms && now_ms < d->incoming_until_ms;
}

void lv_mig_placeholder_info(struct lv_domain *d)
{
        struct backend_vm_info *in = &d->info;

        *in = (struct backend_vm_info){.run = BACKEND_VM_OFF, .migration = VM_MIGRATION_IN};
        snprintf(in->name, sizeof(in->name), "%s", d->name);
        in->settings = d->incoming_settings;
        in->balanced = d->incoming_settings.dynamic;
}

void lv_mig_refused(struct lv_domain *d)
{
        if (!d->incoming_until_ms)
                return;
        d->incoming_until_ms = 0;
        d->dirty = true; /* without libvirt's domain it is dropped, with it listed as it is */
        if (d->run != BACKEND_VM_RUNNING)
                set_migration(d, VM_MIGRATION_NONE, "refused");
}

uint64_t lv_mig_incoming_bytes(const struct lv_domain *d)
{
        if (d->incoming_bytes)
                return d->incoming_bytes;
        return d->stats.known ? d->stats.current : d->xml.current_bytes;
}

int lv_mig_expect(struct backend *b, const char *name, const struct vm_settings *s, uint64_t bytes,
                  char *err, size_t errlen)
{
        struct lv_backend *lb = b->priv;
        struct lv_domain *d = lv_dom_find(lb, name);
        bool is_new = !d;

        if (d && d->run == BACKEND_VM_RUNNING && d->migration != VM_MIGRATION_IN) {
                snprintf(err, errlen, "a domain of that name runs here already");
                return -EEXIST;
        }
        if (!d && !(d = lv_dom_get(lb, name))) {
                snprintf(err, errlen, "cannot list it (out of memory, or too many domains)");
                return -ENOMEM;
        }
        d->incoming_settings = *s;
        d->incoming_bytes = bytes;
        d->migration = VM_MIGRATION_IN;
        d->incoming_until_ms = mono_ms() + LV_INCOMING_WAIT_MS;
        if (is_new) { /* no libvirt domain yet: listed from what the hook said */
                d->dirty = false;
                lv_mig_placeholder_info(d);
                lb->generation++;
        } else if (d->run != BACKEND_VM_RUNNING) {
                show_incoming_settings(d);
                lb->generation++;
        }
        log_msg(LOG_INFO, "vm \"%s\": arriving by live migration with %llu MiB", name,
                (unsigned long long)(bytes / MIB));
        return 0;
}
