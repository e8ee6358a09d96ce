/*
 * libvirt_conn: the libvirt backend's connection. Opens it when it is time
 * (again with backoff after libvirtd went away: 1 s, doubling to 30 s),
 * says once that it is lost (when libvirt refuses this user, with the group
 * to give it) and once that it is back, registers the domain
 * events that mark domains for reloading, and reads the balloon statistics
 * of every running domain in one call per cycle.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvirt_event.h"
#include "libvirt_int.h"
#include "units.h"

/* libvirt prints every error on stderr unless told otherwise: dynmem says what matters. */
static void quiet(void *userdata, virErrorPtr e)
{
        (void)userdata, (void)e;
}

void lv_note_call(struct lv_backend *lb, const char *call, const char *name, double started_ms)
{
        lv_note_call_ms(lb, call, name, mono_ms_exact() - started_ms);
}

void lv_note_call_ms(struct lv_backend *lb, const char *call, const char *name, double ms)
{
        lb->calls++;
        lb->call_ms += ms;
        if (ms > lb->call_max_ms)
                lb->call_max_ms = ms;
        if (ms >= LV_SLOW_CALL_MS)
                log_msg(LOG_DEBUG, "libvirt: %s%s%s took %.0f ms", call, name ? " of " : "",
                        name ? name : "", ms);
}

const char *lv_error(void)
{
        const char *m = virGetLastErrorMessage();

        return m && *m ? m : "unknown libvirt error";
}

static void wake(struct lv_backend *lb)
{
        if (lb->env.wakeup)
                lb->env.wakeup(lb->env.wakeup_userdata);
}

/* ---- events: each marks the domain for reloading before the next cycle ---- */

static int on_lifecycle(virConnectPtr conn, virDomainPtr dom, int event, int detail, void *opaque)
{
        struct lv_backend *lb = opaque;

        (void)conn;
        /* defined or started behind dynmemd's back with a name it cannot list: said, at a
         * rate (a guest that crashes at every boot restarts without end) */
        if (!lv_dom_touch(lb, dom) &&
            (event == VIR_DOMAIN_EVENT_DEFINED || event == VIR_DOMAIN_EVENT_STARTED))
                lv_dom_unlisted(lb, dom);
        lv_mig_lifecycle(lb, dom, event, detail);
        if (event == VIR_DOMAIN_EVENT_STARTED || event == VIR_DOMAIN_EVENT_STOPPED)
                lv_dom_started(lb, dom);
        /* Started or stopped by someone else: look at once, not at the next cycle. */
        if (event == VIR_DOMAIN_EVENT_STARTED || event == VIR_DOMAIN_EVENT_STOPPED ||
            event == VIR_DOMAIN_EVENT_CRASHED)
                wake(lb);
        return 0;
}

static int on_metadata(virConnectPtr conn, virDomainPtr dom, int type, const char *nsuri,
                       void *opaque)
{
        (void)conn;
        if (type == VIR_DOMAIN_METADATA_ELEMENT && nsuri && strcmp(nsuri, LIBVIRT_XML_NS) == 0)
                lv_dom_touch(opaque, dom);
        return 0;
}

static int on_device(virConnectPtr conn, virDomainPtr dom, const char *alias, void *opaque)
{
        (void)conn, (void)alias;
        lv_dom_touch(opaque, dom);
        return 0;
}

static int on_balloon(virConnectPtr conn, virDomainPtr dom, unsigned long long actual_kib,
                      void *opaque)
{
        struct lv_domain *d = lv_dom_find(opaque, virDomainGetName(dom));

        (void)conn;
        if (d)
                lv_dom_take_balloon(d, actual_kib);
        return 0;
}

static int on_vmem_size(virConnectPtr conn, virDomainPtr dom, const char *alias,
                        unsigned long long size_kib, void *opaque)
{
        struct lv_domain *d = lv_dom_find(opaque, virDomainGetName(dom));

        (void)conn;
        if (d && alias && strcmp(alias, LIBVIRT_XML_VMEM_ALIAS) == 0)
                lv_run_take_vmem_size(d, size_kib);
        return 0;
}

/* The guest restarted: QEMU reset the machine (libvirt keeps the same process). */
static int on_reboot(virConnectPtr conn, virDomainPtr dom, void *opaque)
{
        struct lv_domain *d = lv_dom_find(opaque, virDomainGetName(dom));

        (void)conn;
        if (d)
                lv_run_guest_reset(d); /* it asks for a cycle, within the domain's share */
        return 0;
}

/* The source of a live migration: a new pass over the guest's memory began. */
static int on_migration_iteration(virConnectPtr conn, virDomainPtr dom, int iteration, void *opaque)
{
        (void)conn, (void)iteration;
        lv_mig_iteration(opaque, dom);
        wake(opaque); /* held from now: the next cycle must not resize it */
        return 0;
}

static void take_close(struct lv_backend *lb, int reason)
{
        static const char *const why[] = {"an error", "end of file", "a keepalive timeout",
                                          "a client request"};

        lb->lost = true;
        snprintf(lb->down_reason, sizeof(lb->down_reason), "connection closed by %s",
                 (unsigned)reason < 4 ? why[reason] : "libvirt");
        wake(lb);
}

static void on_close_later(int timer, void *opaque)
{
        struct lv_backend *lb = opaque;

        virEventRemoveTimeout(timer);
        atomic_store(&lb->close_timer, 0);
        take_close(lb, atomic_load(&lb->close_reason));
}

/*
 * libvirt calls this on the thread that noticed the close: the loop's, or the
 * resize worker's in the middle of a call (libvirt_work.c). The worker's is
 * taken on the loop, through a timeout of libvirt's event loop (ours).
 */
static void on_close(virConnectPtr conn, int reason, void *opaque)
{
        struct lv_backend *lb = opaque;

        (void)conn;
        if (libvirt_event_on_loop()) {
                take_close(lb, reason);
                return;
        }
        atomic_store(&lb->close_reason, reason);
        int t = virEventAddTimeout(0, on_close_later, lb, NULL);
        if (t > 0) /* else the keepalive or the next failed call finds it */
                atomic_store(&lb->close_timer, t);
}

static const struct {
        int id;
        virConnectDomainEventGenericCallback cb;
} events[] = {
    {VIR_DOMAIN_EVENT_ID_LIFECYCLE, VIR_DOMAIN_EVENT_CALLBACK(on_lifecycle)},
    {VIR_DOMAIN_EVENT_ID_REBOOT, VIR_DOMAIN_EVENT_CALLBACK(on_reboot)},
    {VIR_DOMAIN_EVENT_ID_METADATA_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_metadata)},
    {VIR_DOMAIN_EVENT_ID_DEVICE_ADDED, VIR_DOMAIN_EVENT_CALLBACK(on_device)},
    {VIR_DOMAIN_EVENT_ID_DEVICE_REMOVED, VIR_DOMAIN_EVENT_CALLBACK(on_device)},
    {VIR_DOMAIN_EVENT_ID_BALLOON_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_balloon)},
    {VIR_DOMAIN_EVENT_ID_MEMORY_DEVICE_SIZE_CHANGE, VIR_DOMAIN_EVENT_CALLBACK(on_vmem_size)},
    {VIR_DOMAIN_EVENT_ID_MIGRATION_ITERATION, VIR_DOMAIN_EVENT_CALLBACK(on_migration_iteration)},
};
#define N_EVENTS (sizeof(events) / sizeof(events[0]))
_Static_assert(N_EVENTS <= sizeof(((struct lv_backend *)0)->callbacks) / sizeof(int),
               "every event has a callback id");

static int register_events(struct lv_backend *lb)
{
        for (size_t i = 0; i < N_EVENTS; i++) {
                lb->callbacks[i] = virConnectDomainEventRegisterAny(lb->conn, NULL, events[i].id,
                                                                    events[i].cb, lb, NULL);
                if (lb->callbacks[i] < 0)
                        return -1;
        }
        return virConnectRegisterCloseCallback(lb->conn, on_close, lb, NULL);
}

void lv_conn_close(struct lv_backend *lb)
{
        if (!lb->conn)
                return;
        for (size_t i = 0; i < N_EVENTS; i++) {
                if (lb->callbacks[i] >= 0)
                        virConnectDomainEventDeregisterAny(lb->conn, lb->callbacks[i]);
                lb->callbacks[i] = -1;
        }
        virConnectUnregisterCloseCallback(lb->conn, on_close);
        int t = atomic_exchange(&lb->close_timer, 0);
        if (t > 0) /* a close the worker noticed, not yet taken: moot now */
                virEventRemoveTimeout(t);
        if (lb->work) /* resizes not begun on this connection are dropped (flags cleared) */
                lv_work_cancel(lb->work, NULL);
        for (size_t i = 0; i < lb->n; i++) {
                struct lv_domain *d = lb->doms[i];
                d->stats.known = false;
                if (d->dom)
                        virDomainFree(d->dom); /* of this connection */
                d->dom = NULL;
                d->dirty = true;
        }
        virConnectClose(lb->conn);
        lb->conn = NULL;
}

static void schedule_retry(struct lv_backend *lb, uint64_t now_ms)
{
        lb->backoff_ms = lb->backoff_ms ? lb->backoff_ms * 2 : LV_BACKOFF_MIN_MS;
        if (lb->backoff_ms > LV_BACKOFF_MAX_MS)
                lb->backoff_ms = LV_BACKOFF_MAX_MS;
        lb->retry_at_ms = now_ms + lb->backoff_ms;
}

/* What a refused user needs, as docs/libvirt.md's Install says. */
#define LV_GROUP_FIX                                                                               \
        "give the user dynmemd runs as libvirt's group libvirt (under the shipped unit a "         \
        "drop-in, systemctl edit dynmemd: [Service] SupplementaryGroups=kvm libvirt "              \
        "libvirt-qemu, the last for the guest agents' sockets; docs/libvirt.md, Install)"

const char *lv_refusal_hint(const char *uri, const virError *e)
{
        if (!e || !uri || !strstr(uri, ":///"))
                return NULL; /* a remote host's users are not this one's to change */
        switch (e->code) {
        case VIR_ERR_SYSTEM_ERROR: /* connect(2) on the socket: errno in int1 */
                if ((e->domain == VIR_FROM_RPC || e->domain == VIR_FROM_REMOTE) &&
                    (e->int1 == EACCES || e->int1 == EPERM))
                        return "this user may not connect to libvirt's socket: " LV_GROUP_FIX;
                return NULL;
        case VIR_ERR_AUTH_FAILED:
        case VIR_ERR_AUTH_CANCELLED:
        case VIR_ERR_AUTH_UNAVAILABLE:
        case VIR_ERR_ACCESS_DENIED:
        case VIR_ERR_OPERATION_DENIED:
                return "libvirt refuses this user (its polkit rules let group libvirt manage "
                       "domains): " LV_GROUP_FIX;
        default:
                return NULL;
        }
}

/* Why libvirt cannot be reached, and what happens meanwhile, as said in the log. */
static void down_text(const struct lv_backend *lb, char *buf, size_t len)
{
        snprintf(buf, len,
                 "libvirt at %s: %s; the VMs keep their sizes until it answers again (retrying "
                 "every %d s at most)%s%s",
                 lb->uri, lb->down_reason, LV_BACKOFF_MAX_MS / 1000, lb->down_hint ? "; " : "",
                 lb->down_hint ? lb->down_hint : "");
}

static void say_down(struct lv_backend *lb)
{
        char text[LV_DOWN_TEXT_MAX];

        if (lb->down_logged)
                return;
        down_text(lb, text, sizeof(text));
        log_msg(LOG_ERR, "%s", text);
        lb->down_logged = true;
}

bool lv_conn_unreachable(const struct lv_backend *lb, char *buf, size_t len)
{
        if ((lb->conn && !lb->lost) || !lb->down_reason[0])
                return false;
        down_text(lb, buf, len);
        return true;
}

static void say_up(struct lv_backend *lb)
{
        unsigned long lib = 0, hv = 0;

        virConnectGetLibVersion(lb->conn, &lib);
        lb->hv_version[0] = '\0';
        if (virConnectGetVersion(lb->conn, &hv) == 0 && hv)
                snprintf(lb->hv_version, sizeof(lb->hv_version), "%lu.%lu.%lu", hv / 1000000,
                         hv / 1000 % 1000, hv % 1000);
        if (lb->down_logged || lb->ever_connected)
                log_msg(LOG_NOTICE, "libvirt at %s answers again (libvirt %lu.%lu.%lu)", lb->uri,
                        lib / 1000000, lib / 1000 % 1000, lib % 1000);
        else
                log_msg(LOG_INFO, "connected to libvirt at %s (libvirt %lu.%lu.%lu)", lb->uri,
                        lib / 1000000, lib / 1000 % 1000, lib % 1000);
        lb->down_logged = false;
        lb->ever_connected = true;
}

/*
 * libvirt's keepalive on the connection. A driver that runs in this process
 * (test:///, qemu:///embed) has no connection to watch and does not support
 * it: that is no reason to stay away.
 */
static int set_keepalive(struct lv_backend *lb)
{
        if (virConnectSetKeepAlive(lb->conn, LV_KEEPALIVE_S, LV_KEEPALIVE_COUNT) >= 0)
                return 0;
        if (virGetLastErrorCode() != VIR_ERR_NO_SUPPORT)
                return -1;
        log_msg(LOG_DEBUG, "libvirt at %s: no keepalive on this connection (%s)", lb->uri,
                lv_error());
        return 0;
}

bool lv_conn_ensure(struct lv_backend *lb, uint64_t now_ms)
{
        if (lb->lost) {
                lb->lost = false;
                lv_conn_close(lb);
                say_down(lb);
                lb->backoff_ms = 0;
                lb->retry_at_ms = now_ms; /* once at once: libvirtd may be back already */
        }
        if (lb->conn)
                return true;
        if (now_ms < lb->retry_at_ms)
                return false;
        virSetErrorFunc(NULL, quiet);
        lb->conn = virConnectOpen(lb->uri);
        lb->down_hint = lb->conn ? NULL : lv_refusal_hint(lb->uri, virGetLastError());
        if (!lb->conn) {
                snprintf(lb->down_reason, sizeof(lb->down_reason), "%s", lv_error());
        } else if (set_keepalive(lb) < 0) {
                snprintf(lb->down_reason, sizeof(lb->down_reason), "no keepalive: %s", lv_error());
                lv_conn_close(lb);
        } else if (register_events(lb) < 0) {
                /* said before closing: closing makes calls that replace libvirt's last error */
                snprintf(lb->down_reason, sizeof(lb->down_reason),
                         "cannot follow its domain events: %s", lv_error());
                lv_conn_close(lb);
        }
        if (!lb->conn) {
                say_down(lb);
                schedule_retry(lb, now_ms);
                return false;
        }
        say_up(lb);
        lb->backoff_ms = 0;
        lb->refresh_all = true;
        return true;
}

void lv_conn_check_error(struct lv_backend *lb, const char *what)
{
        lv_conn_check_error_msg(lb, what, lv_error());
}

void lv_conn_check_error_msg(struct lv_backend *lb, const char *what, const char *message)
{
        if (lb->conn && virConnectIsAlive(lb->conn) != 1) {
                lb->lost = true;
                snprintf(lb->down_reason, sizeof(lb->down_reason), "%s failed: %s", what, message);
        }
}

/*
 * Statistics of the domains known to run, named one by one: listing every
 * domain would lock each, and one whose start waits in libvirt's prepare
 * hook stays locked until that hook has its answer from this very loop.
 */
void lv_conn_read_stats(struct lv_backend *lb)
{
        virDomainStatsRecordPtr *recs = NULL;
        virDomainPtr *doms;
        size_t k = 0;
        int n;

        if (!lb->conn || !(doms = calloc(lb->n + 1, sizeof(*doms))))
                return;
        for (size_t i = 0; i < lb->n; i++) {
                struct lv_domain *d = lb->doms[i];
                if (d->attached && d->dom && lv_run_needs_stats(d))
                        doms[k++] = d->dom;
        }
        /* NOWAIT: a domain busy with a job gives what needs none (balloon.current) at once */
        double t0 = mono_ms_exact();
        n = k ? virDomainListGetStats(doms, VIR_DOMAIN_STATS_BALLOON, &recs,
                                      VIR_CONNECT_GET_ALL_DOMAINS_STATS_NOWAIT)
              : 0;
        if (k)
                lv_note_call(lb, "virDomainListGetStats", NULL, t0);
        free(doms);
        if (n < 0) {
                lv_conn_check_error(lb, "reading balloon statistics");
                return;
        }
        lb->stats_ms = mono_ms();
        for (int i = 0; i < n; i++) {
                struct lv_domain *d = lv_dom_find(lb, virDomainGetName(recs[i]->dom));
                if (d)
                        lv_dom_take_stats(d, recs[i]->params, recs[i]->nparams);
        }
        if (recs)
                virDomainStatsRecordListFree(recs);
}
