/*
 * libvirt_conn: the libvirt backend's connection. Opens it when it is time
 * (again with backoff after libvirtd went away: 1 s, doubling to 30 s),
 * says once that it is lost (when libvirt refuses this user, with the group
 * to give it) and once that it is back, registers the domain
 * events that mark domains for reloading, and takes the balloon statistics
 * of every running domain, read in one call per cycle. The connection is
 * opened and the cycle's reads made by the reader's thread (libvirt_reader.c,
 * one round at a time, libvirt_round.c): reads out for LV_ANSWER_MS mean
 * libvirt is not answering, which status says, with how long.
 */
#include <errno.h>
#include <pthread.h>
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

static void set_quiet(void)
{
        virSetErrorFunc(NULL, quiet);
}

void lv_conn_quiet_errors(void)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, set_quiet);
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
        /* the settings' element only: dynmemd's own writes of what the policy learned
         * (LIBVIRT_XML_LEARNED_NS, libvirt_carry.c) raise this event too, and reloading the
         * domain for each would read its XML again every time for nothing */
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
        if (reason == VIR_CONNECT_CLOSE_REASON_KEEPALIVE) /* libvirtd hangs, or its host */
                snprintf(lb->down_reason, sizeof(lb->down_reason),
                         "not answering: connection closed by a keepalive timeout (%d s x %d)",
                         LV_KEEPALIVE_S, LV_KEEPALIVE_COUNT);
        else
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

static int register_events(virConnectPtr conn, struct lv_backend *lb, int *callbacks)
{
        for (size_t i = 0; i < N_EVENTS; i++) {
                callbacks[i] = virConnectDomainEventRegisterAny(conn, NULL, events[i].id,
                                                                events[i].cb, lb, NULL);
                if (callbacks[i] < 0)
                        return -1;
        }
        return virConnectRegisterCloseCallback(conn, on_close, lb, NULL);
}

void lv_conn_forget(virConnectPtr conn, int *callbacks)
{
        for (size_t i = 0; i < N_EVENTS; i++) {
                if (callbacks[i] >= 0)
                        virConnectDomainEventDeregisterAny(conn, callbacks[i]);
                callbacks[i] = -1;
        }
        virConnectUnregisterCloseCallback(conn, on_close);
        virConnectClose(conn);
}

void lv_conn_close(struct lv_backend *lb)
{
        if (!lb->conn)
                return;
        int t = atomic_exchange(&lb->close_timer, 0);
        if (t > 0) /* a close the worker noticed, not yet taken: moot now */
                virEventRemoveTimeout(t);
        if (lb->work) /* resizes not begun on this connection are dropped (flags cleared) */
                lv_work_cancel(lb->work, NULL);
        for (size_t i = 0; i < lb->n; i++) {
                struct lv_domain *d = lb->doms[i];
                d->stats.known = false;
                d->job_read_ms = 0;
                if (d->dom)
                        virDomainFree(d->dom); /* of this connection */
                d->dom = NULL;
                d->dirty = true;
        }
        lv_conn_forget(lb->conn, lb->callbacks);
        lb->conn = NULL;
        lb->conn_serial++; /* a round out on it is dropped when it comes back */
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

bool lv_conn_hung(const struct lv_backend *lb, uint64_t now_ms, uint64_t *ms)
{
        uint64_t out = lb->reader ? lv_reader_busy_ms(lb->reader, now_ms) : 0;

        if (ms)
                *ms = out;
        return out >= LV_ANSWER_MS;
}

bool lv_conn_unreachable(const struct lv_backend *lb, char *buf, size_t len)
{
        uint64_t ms;

        if (lv_conn_hung(lb, mono_ms(), &ms)) {
                snprintf(buf, len,
                         "libvirt at %s: not answering for %llu s (%s); the VMs keep their "
                         "sizes until it answers again",
                         lb->uri, (unsigned long long)(ms / 1000),
                         lb->conn ? "its calls wait" : "a new connection waits");
                return true;
        }
        if ((lb->conn && !lb->lost) || !lb->down_reason[0])
                return false;
        down_text(lb, buf, len);
        return true;
}

static void say_up(struct lv_backend *lb, unsigned long lib, unsigned long hv)
{
        lb->hv_version[0] = '\0';
        if (hv)
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
static int set_keepalive(virConnectPtr conn)
{
        if (virConnectSetKeepAlive(conn, LV_KEEPALIVE_S, LV_KEEPALIVE_COUNT) >= 0)
                return 0;
        return virGetLastErrorCode() == VIR_ERR_NO_SUPPORT ? 0 : -1;
}

void lv_conn_open_round(struct lv_round *r)
{
        virConnectPtr conn = virConnectOpen(r->uri);

        if (!conn) {
                snprintf(r->open_error, sizeof(r->open_error), "%s", lv_error());
                r->open_hint = lv_refusal_hint(r->uri, virGetLastError());
                return;
        }
        if (set_keepalive(conn) < 0) {
                snprintf(r->open_error, sizeof(r->open_error), "no keepalive: %s", lv_error());
        } else if (register_events(conn, r->lb, r->callbacks) < 0) {
                /* said before closing: closing makes calls that replace libvirt's last error */
                snprintf(r->open_error, sizeof(r->open_error),
                         "cannot follow its domain events: %s", lv_error());
        } else {
                virConnectGetLibVersion(conn, &r->lib_version);
                if (virConnectGetVersion(conn, &r->hv_version) < 0)
                        r->hv_version = 0;
                r->opened = conn;
                return;
        }
        lv_conn_forget(conn, r->callbacks);
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
        return lb->conn != NULL;
}

bool lv_conn_due(const struct lv_backend *lb, uint64_t now_ms)
{
        return !lb->conn && now_ms >= lb->retry_at_ms;
}

void lv_conn_take_open(struct lv_backend *lb, struct lv_round *r)
{
        if (!r->opened || lb->conn) {
                snprintf(lb->down_reason, sizeof(lb->down_reason), "%s",
                         r->opened ? "connected twice" : r->open_error);
                lb->down_hint = r->open_hint;
                say_down(lb);
                schedule_retry(lb, mono_ms());
                return;
        }
        lb->conn = r->opened;
        r->opened = NULL;
        memcpy(lb->callbacks, r->callbacks, sizeof(lb->callbacks));
        lb->conn_serial++;
        lb->down_hint = NULL;
        say_up(lb, r->lib_version, r->hv_version);
        lb->backoff_ms = 0;
        lb->refresh_all = true;
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
 * hook stays locked until that hook has its answer from the loop.
 */
void lv_conn_take_stats(struct lv_backend *lb, struct lv_round *r)
{
        if (!r->n_stats_doms)
                return;
        lv_note_call_ms(lb, "virDomainListGetStats", NULL, r->stats_ms);
        if (r->n_recs < 0) {
                lv_conn_check_error_msg(lb, "reading balloon statistics", r->stats_err.message);
                return;
        }
        lb->stats_ms = mono_ms();
        for (int i = 0; i < r->n_recs; i++) {
                struct lv_domain *d = lv_dom_find(lb, virDomainGetName(r->recs[i]->dom));
                if (d)
                        lv_dom_take_stats(d, r->recs[i]->params, r->recs[i]->nparams);
        }
}

/* ---- the rounds of reads ---- */

static void run_round(void *round, void *userdata)
{
        (void)userdata;
        lv_round_run(round);
}

static void drop_round(void *round, void *userdata)
{
        (void)userdata;
        lv_round_free(round);
}

static void take_round(struct lv_backend *lb, struct lv_round *r, bool *opened, bool *more)
{
        bool open = !r->conn;
        *more = r->list_all || r->n_loads;
        if (lv_round_take(lb, r))
                lb->generation++;
        *opened = open && lb->conn;
        lv_list_infos(lb);
}

void lv_conn_round_done(void *round, void *userdata)
{
        struct lv_backend *lb = userdata;
        bool opened, more;

        if (lb->hang_logged) {
                log_msg(LOG_NOTICE, "libvirt at %s answers again", lb->uri);
                lb->hang_logged = false;
        }
        bool listed = ((struct lv_round *)round)->list_all;
        take_round(lb, round, &opened, &more);
        if (opened || listed) /* what follows (the list, the reloads) at once */
                wake(lb);
}

static struct lv_reader *reader_of(struct lv_backend *lb)
{
        if (!lb->reader && lb->env.base && !lb->reads_inline &&
            !(lb->reader =
                  lv_reader_new(lb->env.base, run_round, lv_conn_round_done, drop_round, lb))) {
                log_msg(LOG_ERR,
                        "libvirt: no thread for the reads: %s; they are made from the loop",
                        strerror(errno));
                lb->reads_inline = true;
        }
        return lb->reader;
}

void lv_conn_read(struct lv_backend *lb, uint64_t now_ms)
{
        struct lv_reader *reader = reader_of(lb);
        uint64_t ms;

        if (reader && lv_reader_busy(reader)) {
                if (lv_conn_hung(lb, now_ms, &ms) && !lb->hang_logged) {
                        log_msg(LOG_WARNING,
                                "libvirt at %s: not answering for %llu s; the VMs keep their "
                                "sizes until it answers again",
                                lb->uri, (unsigned long long)(ms / 1000));
                        lb->hang_logged = true;
                }
                return;
        }
        if (!lb->conn && !lv_conn_due(lb, now_ms))
                return;
        if (reader) {
                /* at dynmemd's start (nothing served yet) the first rounds are waited for, a
                 * few seconds at most: it starts with the domains listed when libvirt answers */
                uint64_t deadline = now_ms + LV_ANSWER_MS;
                for (int i = 0; i < 4; i++) {
                        struct lv_round *r = lv_round_build(lb, now_ms);
                        bool more = r && (!r->conn || r->list_all || r->n_loads);
                        if (r && lv_reader_submit(reader, r) < 0)
                                lv_round_free(r);
                        if (!r || !more || lb->started_reads || (now_ms = mono_ms()) >= deadline ||
                            !lv_reader_wait(reader, deadline - now_ms) || !lb->conn)
                                break;
                }
                lb->started_reads = true;
                return;
        }
        /* an in-process driver: nothing to wait for; what a connection or a listing
         * brings is read in the same cycle, as one would expect of it */
        bool chain = false; /* connected or listed just now: the reloads that follow too */
        for (int i = 0; i < 4; i++) {
                struct lv_round *r = lv_round_build(lb, now_ms);
                bool opened, more, listed;
                if (!r)
                        return;
                listed = !r->conn || r->list_all;
                lv_round_run(r);
                take_round(lb, r, &opened, &more);
                if (!(listed && (opened || lb->conn)) && !(chain && more))
                        return;
                chain = listed;
        }
}
