/*
 * libvirt_dom: the libvirt backend's table of domains, sorted by name, and
 * what it knows of each: its state, its XML (live while it runs), the
 * settings its metadata holds or why they cannot be used, and for a running
 * dynamic domain the memory read back and the agent connection. Domains are
 * reloaded when an event marks them, never on a guess.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvirt_int.h"
#include "units.h"

/* ---- the table ---- */

static size_t position(const struct lv_backend *lb, const char *name, bool *found)
{
        size_t lo = 0, hi = lb->n;

        *found = false;
        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(lb->doms[mid]->name, name);
                if (c == 0) {
                        *found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo;
}

struct lv_domain *lv_dom_find(struct lv_backend *lb, const char *name)
{
        bool found;
        size_t i;

        if (!name)
                return NULL;
        i = position(lb, name, &found);
        return found ? lb->doms[i] : NULL;
}

struct lv_domain *lv_dom_get(struct lv_backend *lb, const char *name)
{
        bool found;
        size_t i = position(lb, name, &found);
        struct lv_domain *d;

        if (found)
                return lb->doms[i];
        if (lb->n >= LV_DOMAINS_MAX || !config_name_valid(name))
                return NULL;
        if (lb->n == lb->cap) {
                size_t cap = lb->cap ? 2 * lb->cap : 16;
                struct lv_domain **grown = realloc(lb->doms, cap * sizeof(*grown));
                if (!grown)
                        return NULL;
                lb->doms = grown;
                lb->cap = cap;
        }
        d = calloc(1, sizeof(*d));
        if (!d)
                return NULL;
        d->lb = lb;
        snprintf(d->name, sizeof(d->name), "%s", name);
        d->dirty = true;
        d->id = -1;
        d->rl = LOG_RATELIMIT(3, 6);
        d->wake = BUCKET(QEMU_WAKE_RATE, QEMU_WAKE_BURST);
        memmove(lb->doms + i + 1, lb->doms + i, (lb->n - i) * sizeof(*lb->doms));
        lb->doms[i] = d;
        lb->n++;
        return d;
}

void lv_dom_free(struct lv_domain *d)
{
        if (!d)
                return;
        if (d->dom)
                virDomainFree(d->dom);
        lv_dom_detach(d);
        libvirt_xml_domain_free(&d->xml);
        free(d);
}

static void drop(struct lv_backend *lb, size_t i)
{
        lv_dom_free(lb->doms[i]);
        memmove(lb->doms + i, lb->doms + i + 1, (lb->n - i - 1) * sizeof(*lb->doms));
        lb->n--;
}

void lv_dom_started(struct lv_backend *lb, virDomainPtr dom)
{
        struct lv_domain *d = lv_dom_find(lb, virDomainGetName(dom));

        if (d)
                d->locked_by_start = false;
}

/* Why a domain libvirt has is not in the table (lv_dom_get gave none). */
static void say_unlisted(const char *name)
{
        if (!config_name_valid(name))
                log_msg(LOG_WARNING,
                        "libvirt domain \"%.80s\" is not listed: dynmem names are 1..63 of "
                        "[A-Za-z0-9_.-]",
                        name);
        else
                log_msg(LOG_WARNING,
                        "libvirt domain \"%s\" is not listed: dynmem lists at most %d domains "
                        "(or is out of memory)",
                        name, LV_DOMAINS_MAX);
}

void lv_dom_mark(struct lv_domain *d)
{
        d->dirty = true;
        d->touched++;
}

bool lv_dom_touch(struct lv_backend *lb, virDomainPtr dom)
{
        const char *name = virDomainGetName(dom);
        struct lv_domain *d = name ? lv_dom_get(lb, name) : NULL;

        if (d)
                lv_dom_mark(d);
        else if (name) /* not in the table, and it has no room or the name is not valid */
                lb->dropped_names++;
        return d != NULL;
}

void lv_dom_unlisted(struct lv_backend *lb, virDomainPtr dom)
{
        const char *name = virDomainGetName(dom);

        if (name && log_ratelimit_ok(&lb->unlisted_rl, mono_ms()))
                say_unlisted(name);
}

void lv_dom_take_list(struct lv_backend *lb, struct lv_round *r)
{
        if (r->n_listed < 0) {
                lb->refresh_all = true;
                lv_conn_check_error_msg(lb, "listing the domains", r->list_err.message);
                return;
        }
        for (size_t i = 0; i < lb->n; i++)
                lb->doms[i]->dirty = true; /* those no longer there are found undefined */
        for (int i = 0; i < r->n_listed; i++)
                if (r->listed[i] && !lv_dom_get(lb, r->listed[i]))
                        say_unlisted(r->listed[i]);
}

virDomainPtr lv_dom_lookup(struct lv_domain *d)
{
        if (!d->lb->conn || !d->dom || virDomainRef(d->dom) < 0)
                return NULL;
        return d->dom;
}

/* ---- what a domain is ---- */

static enum backend_vm_run run_of(int state, int reason)
{
        switch (state) {
        case VIR_DOMAIN_RUNNING:
        case VIR_DOMAIN_BLOCKED:
        case VIR_DOMAIN_PAUSED:
        case VIR_DOMAIN_SHUTDOWN: /* being shut down: still holds its memory */
        case VIR_DOMAIN_PMSUSPENDED:
                return BACKEND_VM_RUNNING;
        case VIR_DOMAIN_CRASHED:
                return BACKEND_VM_CRASHED;
        case VIR_DOMAIN_SHUTOFF:
                return reason == VIR_DOMAIN_SHUTOFF_CRASHED ? BACKEND_VM_CRASHED : BACKEND_VM_OFF;
        default:
                return BACKEND_VM_OFF;
        }
}

static void fill_info(struct lv_domain *d)
{
        struct backend_vm_info *in = &d->info;
        char why[200];

        *in = (struct backend_vm_info){.run = d->run};
        snprintf(in->name, sizeof(in->name), "%s", d->name);
        snprintf(in->uuid, sizeof(in->uuid), "%s", d->uuid);
        if (d->xml.meta_state == LIBVIRT_XML_META_NONE) {
                libvirt_xml_static_settings(&d->xml, &in->settings);
        } else if (libvirt_xml_settings(&d->xml, &in->settings, why, sizeof(why)) == 0) {
                in->balanced = true;
        } else {
                libvirt_xml_static_settings(&d->xml, &in->settings);
                snprintf(in->problem, sizeof(in->problem), "dynmem metadata: %.180s", why);
        }
        if (strcmp(in->problem, d->problem_logged) != 0) {
                if (in->problem[0])
                        log_msg(LOG_WARNING, "%s: not balanced: %s", d->name, in->problem);
                else if (d->problem_logged[0])
                        log_msg(LOG_NOTICE, "%s: its dynmem metadata is good again", d->name);
                snprintf(d->problem_logged, sizeof(d->problem_logged), "%s", in->problem);
        }
        /* a newer dynmem's additions: said once for each new set, the rest is used */
        const char *ignored = d->xml.meta_state == LIBVIRT_XML_META_OK ? d->xml.meta.ignored : "";
        if (strcmp(ignored, d->ignored_logged) != 0) {
                if (ignored[0])
                        log_msg(LOG_WARNING,
                                "%s: dynmem metadata: %s not known to this dynmem (written by a "
                                "newer one?); ignored, and kept when dynmem writes the metadata",
                                d->name, ignored);
                snprintf(d->ignored_logged, sizeof(d->ignored_logged), "%s", ignored);
        }
}

/* Take one domain's reload. 1 changed, 0 gone from libvirt, -1 failed (kept dirty). */
static int take_load(struct lv_domain *d, struct lv_round_load *l)
{
        struct lv_backend *lb = d->lb;
        char err[256];

        if (l->r <= 0) {
                if (l->r < 0)
                        lv_conn_check_error_msg(lb, "reading a domain", l->err.message);
                return l->r;
        }
        struct libvirt_xml_domain x;
        if (libvirt_xml_parse(l->xml, strlen(l->xml), &x, err, sizeof(err)) < 0) {
                if (log_ratelimit_ok(&d->rl, mono_ms()))
                        log_msg(LOG_WARNING, "%s: cannot read its XML: %s", d->name, err);
                return -1;
        }
        log_msg(LOG_DEBUG, "vm \"%s\": its XML read again", d->name);
        libvirt_xml_domain_free(&d->xml);
        d->xml = x;
        snprintf(d->uuid, sizeof(d->uuid), "%s", x.uuid);
        d->run = run_of(l->state, l->reason);
        d->state = l->state;
        d->reason = l->reason;
        d->persistent = l->persistent;
        d->id = d->run == BACKEND_VM_RUNNING ? l->id : -1;
        fill_info(d);
        d->stats.current = x.live ? x.current_bytes : 0;
        d->stats.known = x.live;
        if (d->attached && d->attached_id == d->id)
                lv_run_readback_xml(d);
        if (d->dom)
                virDomainFree(d->dom);
        d->dom = l->dom; /* kept: later calls need no lookup */
        l->dom = NULL;
        return 1;
}

/* A start libvirt is making after admission: counted as running until seen or given up. */
static void note_pending(struct lv_domain *d, uint64_t now_ms)
{
        if (d->run == BACKEND_VM_RUNNING || !d->pending_until_ms)
                d->pending_until_ms = 0;
        else if (now_ms < d->pending_until_ms)
                d->info.run = BACKEND_VM_RUNNING;
        else {
                log_msg(LOG_WARNING, "%s: admitted %d s ago but libvirt has not started it",
                        d->name, LV_START_PENDING_MS / 1000);
                d->pending_until_ms = 0;
        }
}

bool lv_dom_reload_dirty(struct lv_backend *lb, uint64_t now_ms, struct lv_round *round)
{
        bool changed = false;

        for (size_t i = lb->n; i-- > 0;) {
                struct lv_domain *d = lb->doms[i];
                enum backend_vm_run was = d->info.run;
                enum vm_migration mig = d->info.migration;
                if (d->incoming_until_ms && now_ms >= d->incoming_until_ms)
                        d->dirty = true; /* announced, and libvirt never made it: look */
                if (d->locked_by_start && d->pending_until_ms && now_ms >= d->pending_until_ms) {
                        /* admitted, and neither started nor stopped: libvirt gave the start
                         * (or the arrival) up without an event, and holds no lock now */
                        d->locked_by_start = false;
                        d->dirty = true;
                }
                struct lv_round_load *l = lv_round_load_of(round, d->name);
                /* one read before the domain was marked again may be older than what the
                 * mark is for (a definition dynmemd just wrote): read again instead */
                if (l && d->touched != l->touched)
                        l = NULL;
                if (l && d->dirty && lb->conn && !d->locked_by_start) {
                        int r = take_load(d, l);
                        if (r == 0 && lv_mig_expected(d, now_ms)) {
                                lv_mig_placeholder_info(d); /* libvirt has none yet */
                                d->dirty = false;
                        } else if (r == 0 && lv_mig_vanished(d)) {
                                changed = true; /* listed once more, off: dropped next time */
                        } else if (r == 0) {
                                drop(lb, i);
                                changed = true;
                                continue;
                        }
                        if (r > 0) {
                                lv_mig_loaded(d, &l->job, now_ms);
                                d->dirty = false;
                                changed = true;
                        }
                }
                d->info.migration = d->migration;
                if (d->migration == VM_MIGRATION_IN)
                        d->info.assigned_bytes = lv_mig_incoming_bytes(d);
                note_pending(d, now_ms);
                changed |= d->info.run != was || d->info.migration != mig;
                /* an arriving domain is attached once it runs here: its guest is not here yet */
                bool balanced_running = d->run == BACKEND_VM_RUNNING && d->info.balanced &&
                                        d->migration != VM_MIGRATION_IN;
                if (!balanced_running && d->attached)
                        lv_dom_detach(d);
                else if (balanced_running && (!d->attached || d->attached_id != d->id))
                        lv_dom_attach(d);
        }
        return changed;
}

/* ---- statistics ---- */

void lv_dom_take_balloon(struct lv_domain *d, uint64_t actual_kib)
{
        if (actual_kib > SETTINGS_SIZE_MAX / KIB)
                return;
        uint64_t actual = actual_kib * KIB;
        /* The balloon's own size: libvirt adds virtio-mem to it only in its XML and stats. */
        if (d->attached && d->mem.known) {
                if (actual > d->mem.layout.startup)
                        actual = d->mem.layout.startup;
                qemu_mem_readback(&d->mem, actual, d->mem.plugged, d->mem.requested, mono_ms());
        } else if (!d->attached && d->xml.total_bytes) {
                /* what it holds (a static domain, once loaded), never more than its memory */
                d->stats.current = actual < d->xml.total_bytes ? actual : d->xml.total_bytes;
                d->stats.known = true;
        }
}

static bool param_ull(const virTypedParameter *p, int n, const char *name, uint64_t max,
                      uint64_t *ret)
{
        for (int i = 0; i < n; i++) {
                if (strcmp(p[i].field, name) != 0)
                        continue;
                if (p[i].type != VIR_TYPED_PARAM_ULLONG || p[i].value.ul > max)
                        return false;
                *ret = p[i].value.ul;
                return true;
        }
        return false;
}

/*
 * The guest's own statistics (its balloon driver's), checked as the QEMU
 * backend checks QEMU's: a MemTotal above what the domain may hold (boot
 * memory and what its virtio-mem device may plug; the device itself is
 * larger, to a whole guest memory block) is not taken. libvirt's
 * balloon.current is checked against dynmemd's figure (lv_run_check_figures).
 */
void lv_dom_take_stats(struct lv_domain *d, const virTypedParameter *params, int n)
{
        const uint64_t top_kib = lv_run_top(d) / KIB;
        uint64_t total, avail, updated = 0, current;

        /* libvirt's own figure, which lv_run_check_figures would otherwise ask for */
        if (param_ull(params, n, "balloon.current", UINT64_MAX, &current))
                lv_run_take_libvirt_figure(d, current, mono_ms());

        if (d->attached && param_ull(params, n, "balloon.last-update", UINT64_MAX, &updated) &&
            updated > 0 && param_ull(params, n, "balloon.available", top_kib, &total) &&
            param_ull(params, n, "balloon.usable", total, &avail))
                qemu_signal_stats(&d->sig, total * KIB, avail * KIB, updated, mono_ms());
}
