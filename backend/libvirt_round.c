/*
 * libvirt_round: one round of the libvirt backend's reads: what the loop
 * asks (built on the loop), the calls (on the reader's thread), and handing
 * the answers to the files that own the state (on the loop). See
 * libvirt_round.h.
 */
#include "libvirt_round.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvirt_int.h"

void lv_call_error_take(struct lv_call_error *e)
{
        const char *m = virGetLastErrorMessage();

        e->code = virGetLastErrorCode();
        if (!e->code)
                e->code = VIR_ERR_INTERNAL_ERROR;
        snprintf(e->message, sizeof(e->message), "%s", m && *m ? m : "unknown libvirt error");
}

/* ---- built on the loop ---- */

static virDomainPtr ref(virDomainPtr dom)
{
        return dom && virDomainRef(dom) == 0 ? dom : NULL;
}

struct lv_round *lv_round_build(struct lv_backend *lb, uint64_t now_ms)
{
        struct lv_round *r = calloc(1, sizeof(*r));
        size_t n = lb->n ? lb->n : 1;

        if (!r)
                return NULL;
        r->lb = lb;
        r->conn_serial = lb->conn_serial;
        for (int i = 0; i < LV_ROUND_CALLBACKS; i++)
                r->callbacks[i] = -1;
        if (!lb->conn) { /* a round that opens the connection, and nothing more */
                if (!(r->uri = strdup(lb->uri))) {
                        free(r);
                        return NULL;
                }
                return r;
        }
        if (virConnectRef(lb->conn) < 0) {
                free(r);
                return NULL;
        }
        r->conn = lb->conn;
        r->loads = calloc(n, sizeof(*r->loads));
        r->doms = calloc(n, sizeof(*r->doms));
        r->stats_doms = calloc(n + 1, sizeof(*r->stats_doms)); /* NULL-terminated */
        if (!r->loads || !r->doms || !r->stats_doms) {
                lv_round_free(r);
                return NULL;
        }
        r->list_all = lb->refresh_all;
        lb->refresh_all = false;
        for (size_t i = 0; i < lb->n; i++) {
                struct lv_domain *d = lb->doms[i];
                if (d->dirty && !d->locked_by_start) {
                        struct lv_round_load *l = &r->loads[r->n_loads++];
                        snprintf(l->name, sizeof(l->name), "%s", d->name);
                        l->touched = d->touched;
                }
                bool stats = d->attached && d->dom && lv_run_needs_stats(d);
                if (stats && (r->stats_doms[r->n_stats_doms] = ref(d->dom)))
                        r->n_stats_doms++;
                struct lv_round_dom rd = {.want_job = lv_mig_wants_job(d)};
                lv_run_wants_figure(d, now_ms, true, &rd.want_info, &rd.want_xml);
                if (!(rd.want_job || rd.want_info || rd.want_xml) || !(rd.dom = ref(d->dom)))
                        continue;
                snprintf(rd.name, sizeof(rd.name), "%s", d->name);
                r->doms[r->n_doms++] = rd;
        }
        return r;
}

struct lv_round *lv_round_build_reload(struct lv_backend *lb, struct lv_domain *d)
{
        struct lv_round *r = calloc(1, sizeof(*r));

        if (!r || !lb->conn || virConnectRef(lb->conn) < 0 ||
            !(r->loads = calloc(1, sizeof(*r->loads)))) {
                if (r && r->conn)
                        virConnectClose(r->conn);
                free(r);
                return NULL;
        }
        r->lb = lb;
        r->conn = lb->conn;
        r->conn_serial = lb->conn_serial;
        for (int i = 0; i < LV_ROUND_CALLBACKS; i++)
                r->callbacks[i] = -1;
        snprintf(r->loads[0].name, sizeof(r->loads[0].name), "%s", d->name);
        r->loads[0].touched = d->touched;
        r->n_loads = 1;
        return r;
}

/* ---- made on the reader's thread ---- */

/* A domain's job (libvirt_migrate.c says what it means). */
static void read_job(virDomainPtr dom, struct lv_job_reading *j, double *ms)
{
        virTypedParameterPtr p = NULL;
        int type = VIR_DOMAIN_JOB_NONE, n = 0, op = 0;
        double t0 = mono_ms_exact();

        *j = (struct lv_job_reading){0};
        int rc = virDomainGetJobStats(dom, &type, &p, &n, 0);
        *ms = mono_ms_exact() - t0;
        if (rc < 0) {
                virErrorPtr e = virGetLastError();
                int code = e ? e->code : 0;
                if (code == VIR_ERR_NO_DOMAIN || code == VIR_ERR_OPERATION_INVALID)
                        return; /* gone, or no longer running: no job */
                j->r = -1;
                if (code == VIR_ERR_OPERATION_UNSUPPORTED) {
                        /* libvirt 9.0 on the destination of a migration: "migration statistics
                         * are available only on the source host", the domain paused for it;
                         * any other domain (a driver without job statistics): unknown */
                        int state = 0, reason = 0;
                        if (virDomainGetState(dom, &state, &reason, 0) == 0 &&
                            state == VIR_DOMAIN_PAUSED && reason == VIR_DOMAIN_PAUSED_MIGRATION) {
                                j->r = 1;
                                j->operation = VIR_DOMAIN_JOB_OPERATION_MIGRATION_IN;
                        }
                        return;
                }
                j->err.code = code ? code : VIR_ERR_INTERNAL_ERROR;
                snprintf(j->err.message, sizeof(j->err.message), "%s",
                         e && e->message ? e->message : "unknown libvirt error");
                return;
        }
        if (type != VIR_DOMAIN_JOB_NONE)
                virTypedParamsGetInt(p, n, VIR_DOMAIN_JOB_OPERATION, &op);
        virTypedParamsFree(p, n);
        j->operation = op;
        j->r = type != VIR_DOMAIN_JOB_NONE;
}

static bool active_state(int state)
{
        return state == VIR_DOMAIN_RUNNING || state == VIR_DOMAIN_BLOCKED ||
               state == VIR_DOMAIN_PAUSED || state == VIR_DOMAIN_SHUTDOWN ||
               state == VIR_DOMAIN_PMSUSPENDED;
}

static void run_load(virConnectPtr conn, struct lv_round_load *l)
{
        virDomainPtr dom = virDomainLookupByName(conn, l->name);
        double ms;

        l->r = -1;
        if (!dom) {
                lv_call_error_take(&l->err);
                if (l->err.code == VIR_ERR_NO_DOMAIN)
                        l->r = 0;
                return;
        }
        if (virDomainGetState(dom, &l->state, &l->reason, 0) < 0 ||
            !(l->xml = virDomainGetXMLDesc(dom, 0))) {
                lv_call_error_take(&l->err);
                if (l->err.code == VIR_ERR_NO_DOMAIN)
                        l->r = 0;
                virDomainFree(dom);
                return;
        }
        l->persistent = virDomainIsPersistent(dom) == 1;
        l->id = active_state(l->state) ? (int)virDomainGetID(dom) : -1;
        if (active_state(l->state))
                read_job(dom, &l->job, &ms);
        l->dom = dom;
        l->r = 1;
}

static void run_list(struct lv_round *r)
{
        virDomainPtr *doms = NULL;
        int n = virConnectListAllDomains(r->conn, &doms, 0);

        r->n_listed = -1;
        if (n < 0) {
                lv_call_error_take(&r->list_err);
                return;
        }
        r->listed = calloc((size_t)n + 1, sizeof(*r->listed));
        for (int i = 0; i < n; i++) {
                const char *name = virDomainGetName(doms[i]);
                if (r->listed && name && !(r->listed[i] = strdup(name))) {
                        for (int k = 0; k < i; k++)
                                free(r->listed[k]);
                        free(r->listed);
                        r->listed = NULL;
                }
                virDomainFree(doms[i]);
        }
        free(doms);
        if (!r->listed) {
                snprintf(r->list_err.message, sizeof(r->list_err.message), "out of memory");
                return;
        }
        r->n_listed = n;
}

static void run_dom(struct lv_round_dom *rd)
{
        virDomainInfo info;
        double t0;

        if (rd->want_job)
                read_job(rd->dom, &rd->job, &rd->job_ms);
        if (rd->want_info) {
                t0 = mono_ms_exact();
                rd->info_ok = virDomainGetInfo(rd->dom, &info) == 0;
                rd->info_ms = mono_ms_exact() - t0;
                if (rd->info_ok)
                        rd->memory_kib = info.memory;
                else
                        lv_call_error_take(&rd->err);
        }
        if (rd->want_xml) {
                t0 = mono_ms_exact();
                rd->xml = virDomainGetXMLDesc(rd->dom, 0);
                rd->xml_ms = mono_ms_exact() - t0;
                if (!rd->xml)
                        lv_call_error_take(&rd->err);
        }
}

void lv_round_run(struct lv_round *r)
{
        if (!r->conn) {
                lv_conn_open_round(r);
                return;
        }
        if (r->list_all)
                run_list(r);
        for (size_t i = 0; i < r->n_loads; i++)
                run_load(r->conn, &r->loads[i]);
        if (r->n_stats_doms) {
                /* NOWAIT: a domain busy with a job gives what needs none (balloon.current) */
                double t0 = mono_ms_exact();
                r->n_recs = virDomainListGetStats(r->stats_doms, VIR_DOMAIN_STATS_BALLOON, &r->recs,
                                                  VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT);
                r->stats_ms = mono_ms_exact() - t0;
                if (r->n_recs < 0)
                        lv_call_error_take(&r->stats_err);
        }
        for (size_t i = 0; i < r->n_doms; i++)
                run_dom(&r->doms[i]);
}

/* ---- taken on the loop ---- */

bool lv_round_take(struct lv_backend *lb, struct lv_round *r)
{
        uint64_t now = mono_ms();
        bool changed = false;

        if (!r->conn) {
                lv_conn_take_open(lb, r);
        } else if (r->conn_serial == lb->conn_serial && lb->conn && !lb->lost) {
                if (r->list_all)
                        lv_dom_take_list(lb, r);
                for (size_t i = 0; i < r->n_doms; i++) {
                        struct lv_domain *d = lv_dom_find(lb, r->doms[i].name);
                        if (d && r->doms[i].want_job)
                                lv_mig_take_job(d, &r->doms[i].job, r->doms[i].job_ms, now);
                }
                changed = lv_dom_reload_dirty(lb, now, r);
                lv_conn_take_stats(lb, r);
                for (size_t i = 0; i < r->n_doms; i++) {
                        struct lv_domain *d = lv_dom_find(lb, r->doms[i].name);
                        if (d)
                                lv_run_take_reading(d, &r->doms[i], now);
                }
        } /* else: read on a connection closed since */
        lv_round_free(r);
        return changed;
}

struct lv_round_load *lv_round_load_of(struct lv_round *r, const char *name)
{
        for (size_t i = 0; r && i < r->n_loads; i++)
                if (strcmp(r->loads[i].name, name) == 0)
                        return &r->loads[i];
        return NULL;
}

struct lv_round_dom *lv_round_dom_of(struct lv_round *r, const char *name)
{
        for (size_t i = 0; r && i < r->n_doms; i++)
                if (strcmp(r->doms[i].name, name) == 0)
                        return &r->doms[i];
        return NULL;
}

void lv_round_free(struct lv_round *r)
{
        if (!r)
                return;
        if (r->opened)
                lv_conn_forget(r->opened, r->callbacks);
        for (int i = 0; r->listed && i < r->n_listed; i++)
                free(r->listed[i]);
        free(r->listed);
        for (size_t i = 0; r->loads && i < r->n_loads; i++) {
                free(r->loads[i].xml);
                if (r->loads[i].dom)
                        virDomainFree(r->loads[i].dom);
        }
        free(r->loads);
        for (size_t i = 0; i < r->n_stats_doms; i++)
                virDomainFree(r->stats_doms[i]);
        free(r->stats_doms);
        if (r->recs)
                virDomainStatsRecordListFree(r->recs);
        for (size_t i = 0; r->doms && i < r->n_doms; i++) {
                free(r->doms[i].xml);
                virDomainFree(r->doms[i].dom);
        }
        free(r->doms);
        if (r->conn)
                virConnectClose(r->conn); /* the round's reference */
        free(r->uri);
        free(r);
}
