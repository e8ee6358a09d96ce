/*
 * libvirt_run: a running dynamic domain. Its memory layout comes from the
 * live XML (boot memory, dynmem's virtio-mem device); targets become
 * virtio-mem and balloon requests through libvirt (the QEMU backend's plan,
 * qemu_mem.c); what it holds is read back from libvirt's statistics and
 * events; demand comes from the guest agent on the channel socket the live
 * XML names (the QEMU backend's connection, qemu_agent.c, and lib/agent's
 * parser and limits), else from the balloon statistics.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvirt_int.h"
#include "units.h"

uint64_t lv_run_top(const struct lv_domain *d)
{
        return d->mem.layout.startup + d->mem.layout.region;
}

/*
 * A fresh estimate: lib/agent checked every figure against the VM's limit
 * (startup + virtio-mem region). A stall that began since the last one asks
 * for a cycle now, within this VM's share (QEMU_WAKE_RATE).
 */
static void on_agent_report(void *userdata, const struct agent_estimate *e)
{
        struct lv_domain *d = userdata;

        if (qemu_signal_agent(&d->sig, e) && bucket_take(&d->wake, (double)mono_ms()) &&
            d->lb->env.wakeup)
                d->lb->env.wakeup(d->lb->env.wakeup_userdata);
}

static const struct qemu_agent_hooks agent_hooks = {.report = on_agent_report};

static void start_agent(struct lv_domain *d)
{
        int r;

        if (!d->xml.agent_path[0] || !d->lb->env.base)
                return;
        r = qemu_agent_new(d->lb->env.base, d->name, d->xml.agent_path, lv_run_top(d), &agent_hooks,
                           d, &d->agent_conn);
        if (r < 0) {
                log_msg(LOG_WARNING, "vm \"%s\": no guest agent connection: %s", d->name,
                        strerror(-r));
                return;
        }
        qemu_agent_connect_now(d->agent_conn);
}

/* ---- attaching ---- */

void lv_dom_attach(struct lv_domain *d)
{
        const struct libvirt_xml_domain *x = &d->xml;
        struct libvirt_xml_layout xl;

        libvirt_xml_layout(x, &xl);
        struct qemu_layout l = {
            .startup = xl.boot, .region = xl.region, .block = xl.block, .first = xl.first};

        lv_dom_detach(d);
        qemu_mem_init(&d->mem, &l, false);
        d->target_set = false;
        d->reset_unseen = false;
        qemu_signal_reset(&d->sig);
        d->attached = true;
        d->attached_id = d->id;
        d->attach_serial = ++d->lb->attach_serials;
        lv_run_readback_xml(d);
        d->mem.requested_sent = d->mem.requested;
        start_agent(d);
        log_msg(LOG_INFO,
                "vm \"%s\": libvirt domain id %d: %llu MiB boot memory, %llu MiB of "
                "virtio-mem (%llu MiB plugged), agent %s",
                d->name, d->id, (unsigned long long)(l.startup / MIB),
                (unsigned long long)(l.region / MIB), (unsigned long long)(d->mem.plugged / MIB),
                x->agent_path[0] ? x->agent_path : "channel missing");
}

void lv_dom_detach(struct lv_domain *d)
{
        /* its resize, or the write of what the policy learned, not begun: not made (a resize's
         * result is dropped; the write answers ECANCELED, lv_carry_done) */
        if ((d->job_busy || d->carry_out) && d->lb->work)
                lv_work_cancel(d->lb->work, d->name);
        d->job_busy = false;
        qemu_agent_free(d->agent_conn);
        d->agent_conn = NULL;
        d->attached = false;
        d->attached_id = -1;
        qemu_signal_reset(&d->sig);
        d->stats = (struct lv_stats){0};
        d->check = (struct lv_check){0};
}

/*
 * A virtio-mem size QEMU reports (through libvirt): within the device and a
 * whole number of its blocks, else not taken (a buggy or hostile QEMU).
 */
static bool vmem_size_ok(struct lv_domain *d, uint64_t bytes, const char *what)
{
        const struct qemu_layout *l = &d->mem.layout;

        if (l->block && bytes <= l->region && bytes % l->block == 0)
                return true;
        if (log_ratelimit_ok(&d->rl, mono_ms()))
                log_msg(LOG_WARNING,
                        "vm \"%s\": ignoring a virtio-mem %s of %llu KiB: not a whole number of "
                        "its %llu KiB blocks within its %llu MiB",
                        d->name, what, (unsigned long long)(bytes / KIB),
                        (unsigned long long)(l->block / KIB),
                        (unsigned long long)(l->region / MIB));
        return false;
}

void lv_run_take_vmem_size(struct lv_domain *d, uint64_t size_kib)
{
        if (!d->attached || size_kib > SETTINGS_SIZE_MAX / KIB ||
            !vmem_size_ok(d, size_kib * KIB, "size"))
                return;
        qemu_mem_readback(&d->mem, d->mem.actual, size_kib * KIB, d->mem.requested, mono_ms());
}

/*
 * What a live XML x of the domain says it holds: <currentMemory> is
 * libvirt's balloon figure, which holds what virtio-mem plugged (its
 * <current>); the balloon's own is the difference. Events keep both up to
 * date in between (libvirt_conn.c); libvirt's own figure is checked against
 * them (lv_run_check_figures), for the times libvirt changes it without one.
 */
static void readback_from(struct lv_domain *d, const struct libvirt_xml_domain *x)
{
        const struct qemu_layout *l = &d->mem.layout;
        /* a figure not taken leaves the last one taken (none yet: nothing plugged) */
        uint64_t plugged = d->mem.known ? d->mem.plugged : 0;
        uint64_t requested = d->mem.known ? d->mem.requested : 0;
        bool first = !d->mem.known;

        if (!d->attached || !x->live)
                return;
        if (!x->vmem_current_known)
                plugged = 0;
        else if (vmem_size_ok(d, x->vmem_current, "size"))
                plugged = x->vmem_current;
        if (!x->vmem)
                requested = 0;
        else if (vmem_size_ok(d, x->vmem_requested, "requested size"))
                requested = x->vmem_requested;
        uint64_t actual = x->current_bytes > plugged ? x->current_bytes - plugged : 0;
        if (d->mem.requested_in_flight)
                requested = d->mem.requested; /* ours is newer */
        qemu_mem_readback(&d->mem, actual < l->startup ? actual : l->startup, plugged, requested,
                          mono_ms());
        if (first && !d->target_set) /* found running: hold what it has until asked */
                d->mem.target = qemu_mem_clamp_target(&d->mem, qemu_mem_assigned(&d->mem));
}

void lv_run_readback_xml(struct lv_domain *d)
{
        readback_from(d, &d->xml);
        d->check.watch_until_ms = mono_ms() + LV_CHECK_WINDOW_MS;
}

/* ---- libvirt's own figure against dynmemd's ---- */

uint64_t lv_run_assigned(const struct lv_domain *d)
{
        uint64_t ours = qemu_mem_assigned(&d->mem);

        /* differing, the larger: a figure below what the domain holds would hand its memory
         * to the other VMs (libvirt's is capped at what the domain's devices hold) */
        return d->check.differs && !d->check.since_reset && d->check.libvirt_bytes > ours
                   ? d->check.libvirt_bytes
                   : ours;
}

/* libvirt's figure (bytes, capped) is not dynmemd's: more than a block or LV_CHECK_SLACK apart. */
static bool figures_differ(const struct lv_domain *d, uint64_t theirs)
{
        uint64_t ours = qemu_mem_assigned(&d->mem);
        uint64_t slack =
            d->mem.layout.block > LV_CHECK_SLACK ? d->mem.layout.block : LV_CHECK_SLACK;

        return theirs > ours + slack || ours > theirs + slack;
}

/* Note libvirt's figure (<currentMemory>): capped at what the domain's devices hold. */
static void note_libvirt_figure(struct lv_domain *d, uint64_t current_kib, uint64_t now_ms)
{
        uint64_t theirs = current_kib < lv_run_top(d) / KIB ? current_kib * KIB : lv_run_top(d);
        bool differed = d->check.differs;

        d->check.libvirt_bytes = theirs;
        d->check.differs = figures_differ(d, theirs);
        d->check.checked_ms = now_ms ? now_ms : 1;
        if (d->check.differs && !differed)
                d->check.differs_ms = d->check.checked_ms;
        if (!d->check.differs)
                d->check.since_reset = d->check.said = false;
}

void lv_run_take_libvirt_figure(struct lv_domain *d, uint64_t current_kib, uint64_t now_ms)
{
        if (d->attached && d->mem.known)
                note_libvirt_figure(d, current_kib, now_ms);
}

/*
 * The live XML again, for a domain whose figures differ: libvirt refreshed
 * it from QEMU without an event, or an event is still on its way. Only the
 * memory it holds is taken (the rest is reloaded when an event marks the
 * domain), and only from the instance attached.
 */
static void take_live_xml(struct lv_domain *d, const char *xml, uint64_t now_ms)
{
        struct libvirt_xml_domain x;
        char err[256], was[32], held[32];
        uint64_t before = qemu_mem_assigned(&d->mem), plugged_before = d->mem.plugged;

        if (libvirt_xml_parse(xml, strlen(xml), &x, err, sizeof(err)) < 0)
                return;
        if (x.live && x.id == d->attached_id) {
                readback_from(d, &x);
                note_libvirt_figure(d, x.current_bytes / KIB, now_ms); /* the same snapshot's */
        }
        libvirt_xml_domain_free(&x);
        uint64_t after = qemu_mem_assigned(&d->mem);
        if (after != before || d->mem.plugged != plugged_before)
                log_msg(LOG_NOTICE,
                        "vm \"%s\": libvirt's figure was not dynmemd's; its live XML, read "
                        "again, says it holds %s (%llu MiB of virtio-mem plugged), not %s",
                        d->name, size_format(after, held, sizeof(held)),
                        (unsigned long long)(d->mem.plugged / MIB),
                        size_format(before, was, sizeof(was)));
        else if (d->check.differs && !d->check.since_reset && d->check.libvirt_bytes > after &&
                 !d->check.said) {
                d->check.said = true;
                log_msg(LOG_INFO,
                        "vm \"%s\": libvirt says it holds %s, its live XML %s: counted at %s "
                        "until they agree",
                        d->name, size_format(d->check.libvirt_bytes, held, sizeof(held)),
                        size_format(after, was, sizeof(was)), held);
        }
}

/* A domain libvirt is known to run, attached, and not moving: its figure may be read. */
static bool checkable(const struct lv_domain *d)
{
        return d->attached && d->mem.known && d->dom && !d->dirty && !d->locked_by_start &&
               d->run == BACKEND_VM_RUNNING && d->id == d->attached_id &&
               d->migration == VM_MIGRATION_NONE;
}

void lv_run_wants_figure(struct lv_domain *d, uint64_t now_ms, bool info, bool *ret_info,
                         bool *ret_xml)
{
        *ret_info = *ret_xml = false;
        if (!checkable(d))
                return;
        uint64_t every =
            now_ms < d->check.watch_until_ms || d->check.differs ? LV_CHECK_MS : LV_CHECK_IDLE_MS;
        *ret_info = info && (!d->check.checked_ms || now_ms >= d->check.checked_ms + every);
        if (d->check.differs && now_ms >= d->check.differs_ms + LV_CHECK_MS &&
            (!d->check.reread_ms || now_ms >= d->check.reread_ms + LV_REREAD_MS)) {
                d->check.reread_ms = now_ms ? now_ms : 1;
                *ret_xml = true;
        }
}

void lv_run_take_reading(struct lv_domain *d, struct lv_round_dom *rd, uint64_t now_ms)
{
        if (rd->want_info) {
                lv_note_call_ms(d->lb, "virDomainGetInfo", d->name, rd->info_ms);
                if (!rd->info_ok)
                        lv_conn_check_error_msg(d->lb, "reading a domain's memory",
                                                rd->err.message);
                else if (checkable(d))
                        lv_run_take_libvirt_figure(d, rd->memory_kib, now_ms);
        }
        if (rd->want_xml) {
                lv_note_call_ms(d->lb, "virDomainGetXMLDesc", d->name, rd->xml_ms);
                if (!rd->xml)
                        lv_conn_check_error_msg(d->lb, "reading a domain's XML", rd->err.message);
                else if (checkable(d))
                        take_live_xml(d, rd->xml, now_ms);
        }
}

uint64_t lv_run_rss_of(struct lv_qemu_pid *seen, const char *pidfile, int id)
{
        uint64_t rss = 0, recorded = 0, start = 0, again = 0;
        pid_t pid;

        if (qemu_proc_read_pidfile(pidfile, &pid, &recorded) < 0 ||
            qemu_proc_start_time(pid, &start) < 0 || (recorded && recorded != start))
                return 0;
        if (!seen->pid || seen->id != id) /* this instance's QEMU, first read */
                *seen = (struct lv_qemu_pid){.id = id, .pid = pid, .start = start};
        else if (seen->pid != pid || seen->start != start)
                return 0; /* not the process this instance started with */
        /* the start time once more: the pid may have been reused while it was read */
        if (qemu_proc_rss(pid, &rss) < 0 || qemu_proc_start_time(pid, &again) < 0 || again != start)
                return 0;
        return rss;
}

/*
 * The QEMU process's resident memory, from libvirt's pid file (local system
 * URIs). libvirt's pid file holds the pid alone: its start time is recorded
 * when the running instance is first read (lv_run_rss_of).
 */
uint64_t lv_run_rss(struct lv_domain *d)
{
        char path[128 + VM_NAME_MAX];

        if (strncmp(d->lb->uri, "qemu:///system", 14) != 0 || d->id < 0)
                return 0;
        snprintf(path, sizeof(path), "/run/libvirt/qemu/%s.pid", d->name);
        return lv_run_rss_of(&d->qemu_pid, path, d->id);
}

/* ---- resizing through libvirt: jobs for the worker (libvirt_work.c) ---- */

/* The plan could not be sent: asked again at the next cycle, as after a refused call. */
static void plan_not_sent(struct lv_domain *d, const struct qemu_mem_plan *p)
{
        if (p->set_requested)
                d->mem.requested_in_flight = false;
        if (p->set_balloon)
                d->mem.balloon_sent = false;
}

static void run_job(struct lv_job *j, void *userdata)
{
        (void)userdata;
        lv_job_run(j);
}

struct lv_work *lv_run_work(struct lv_backend *lb)
{
        if (!lb->work && lb->env.base && !lb->work_stopped &&
            !(lb->work = lv_work_new(lb->env.base, run_job, lv_run_job_done, lb)))
                log_msg(LOG_ERR,
                        "libvirt: no thread for the resize calls: %s; they are made "
                        "from the loop",
                        strerror(errno));
        return lb->work;
}

/* The job's steps in the plan's order: the balloon first when growing. */
static struct lv_job *job_of_plan(struct lv_domain *d, const struct qemu_mem_plan *p,
                                  virDomainPtr dom)
{
        struct lv_job *j = lv_job_new(dom, d->name, d->attach_serial);

        if (!j)
                return NULL;
        if (p->set_balloon && p->balloon_first)
                lv_job_add(j, LV_STEP_BALLOON, p->balloon_value, NULL);
        if (p->set_requested)
                lv_job_add(j, LV_STEP_REQUESTED, p->requested,
                           libvirt_xml_vmem_requested(d->xml.vmem_xml, p->requested));
        if (p->set_balloon && !p->balloon_first)
                lv_job_add(j, LV_STEP_BALLOON, p->balloon_value, NULL);
        return j;
}

bool lv_run_send(struct lv_domain *d, const struct qemu_mem_plan *p, virDomainPtr dom)
{
        struct lv_backend *lb = d->lb;
        struct lv_job *j = job_of_plan(d, p, dom);
        struct lv_work *w = j ? lv_run_work(lb) : NULL;

        if (!j) {
                plan_not_sent(d, p);
                log_msg(LOG_WARNING, "vm \"%s\": a resize is not sent: out of memory", d->name);
                return false;
        }
        if (w && lv_work_submit(w, j) == 0) {
                d->job_busy = true;
                return true;
        }
        if (lb->work_stopped) { /* shutting down */
                plan_not_sent(d, p);
                lv_job_free(j);
                return false;
        }
        /* no worker (no loop, or no thread): the calls are made here */
        d->job_busy = true;
        lv_job_run(j);
        lv_run_job_done(j, lb);
        lv_job_free(j);
        return true;
}

/* What the result of one step means for the domain's plan. */
static bool take_step(struct lv_domain *d, const struct lv_job *j, const struct lv_step *s)
{
        bool requested = s->kind == LV_STEP_REQUESTED;

        if (requested) {
                d->mem.requested_in_flight = false;
                if (s->ok)
                        d->mem.requested = s->bytes;
        } else if (!s->ok) {
                d->mem.balloon_sent = false; /* asked again at the next cycle */
        }
        if (s->ok || !j->ran)
                return s->ok;
        if (log_ratelimit_ok(&d->rl, mono_ms()))
                log_msg(LOG_WARNING, "vm \"%s\": libvirt refused a %s of %llu MiB: %s", d->name,
                        requested ? "virtio-mem request" : "balloon target",
                        (unsigned long long)(s->bytes / MIB), s->error);
        return false;
}

void lv_run_job_done(struct lv_job *j, void *userdata)
{
        struct lv_backend *lb = userdata;
        struct lv_domain *d;
        const struct lv_step *failed = NULL;

        if (j->n_steps && j->steps[0].kind == LV_STEP_METADATA) {
                lv_carry_done(j, lb);
                return;
        }
        d = lv_dom_find(lb, j->name);
        for (int i = 0; j->ran && i < j->n_steps; i++)
                lv_note_call_ms(lb, lv_step_call(&j->steps[i]), j->name, j->steps[i].ms);
        if (j->ran && j->waited_ms >= LV_SLOW_CALL_MS)
                log_msg(LOG_DEBUG, "libvirt: the resize of %s waited %.0f ms for the worker",
                        j->name, j->waited_ms);
        if (!d || !d->attached || d->attach_serial != j->serial) {
                log_msg(LOG_DEBUG,
                        "vm \"%s\": the result of a resize %s after the domain "
                        "was detached or restarted: dropped",
                        j->name, j->ran ? "came back" : "not made");
                return;
        }
        d->job_busy = false;
        for (int i = 0; i < j->n_steps; i++)
                if (!take_step(d, j, &j->steps[i]) && !failed)
                        failed = &j->steps[i];
        if (failed && j->ran && j->conn == lb->conn)
                lv_conn_check_error_msg(lb,
                                        failed->kind == LV_STEP_BALLOON ? "setting a balloon target"
                                                                        : "resizing virtio-mem",
                                        failed->error);
        if (!failed && j->ran && !lb->work_stopped)
                lv_run_apply(d); /* a target that moved while the calls were made goes now */
}

void lv_run_stop_work(struct lv_backend *lb)
{
        struct lv_work *w = lb->work;

        lb->work_stopped = true; /* no new job, no new worker */
        lb->work = NULL;
        lv_work_free(w);
}

/*
 * The plan's requests go to the worker as one job (libvirt_work.c): the
 * loop never waits on libvirt's resize calls (docs/libvirt.md measured
 * virDomainUpdateDeviceFlags at up to 636 ms). While the job is out, the
 * plan's in-flight flags hold what it asked for (qemu_mem_may_hold) and no
 * new plan is made; its result is taken on the loop (lv_run_job_done).
 */
void lv_run_apply(struct lv_domain *d)
{
        struct qemu_mem_plan p;
        virDomainPtr dom;

        /* not while libvirt does not answer: the figures may be stale, the call would wait */
        if (!d->attached || !d->mem.known || !d->target_set || !d->lb->conn ||
            d->migration != VM_MIGRATION_NONE || d->job_busy ||
            lv_conn_hung(d->lb, mono_ms(), NULL))
                return;
        qemu_mem_plan(&d->mem, mono_ms(), &p);
        if (!p.set_balloon && !p.set_requested)
                return;
        if (lv_mig_busy(d)) { /* a migration or another job: libvirt would hold the call */
                plan_not_sent(d, &p);
                return;
        }
        if (!(dom = lv_dom_lookup(d))) {
                plan_not_sent(d, &p);
                lv_conn_check_error(d->lb, "looking a domain up");
                return;
        }
        if (p.plug_refused && log_ratelimit_ok(&d->rl, mono_ms()))
                log_msg(LOG_WARNING,
                        "vm \"%s\": the guest plugged only %llu of %llu MiB of virtio-mem in %d s "
                        "(no virtio_mem driver?); growing pauses for %d s",
                        d->name, (unsigned long long)(d->mem.plugged / MIB),
                        (unsigned long long)(d->mem.requested / MIB), QEMU_PLUG_STALL_MS / 1000,
                        QEMU_PLUG_RETRY_MS / 1000);
        lv_run_send(d, &p, dom);
        virDomainFree(dom);
}

/* ---- what it holds and needs ---- */

void lv_run_observe(struct lv_domain *d, uint64_t now_ms, struct vm_observation *o)
{
        o->assigned_bytes = d->mem.known ? lv_run_assigned(d) : d->mem.layout.startup;
        o->may_hold_bytes = d->mem.known ? qemu_mem_may_hold(&d->mem, mono_ms()) : 0;
        if (d->mem.known && o->may_hold_bytes < o->assigned_bytes)
                o->may_hold_bytes = o->assigned_bytes;
        qemu_signal_observe(&d->sig, &d->mem, now_ms, mono_ms(), o);
        o->host_rss_bytes = lv_run_rss(d);
        o->rebooted = d->reset_unseen;
        d->reset_unseen = false;
}

void lv_run_guest_reset(struct lv_domain *d)
{
        if (!d->attached)
                return;
        d->reset_unseen = true;
        qemu_signal_reboot(&d->sig);
        qemu_mem_reset(&d->mem, mono_ms());
        /* libvirt's live XML has the old boot's virtio-mem until it has asked QEMU again (its
         * own reset handling, without an event): not read again for LV_REREAD_MS; and its
         * <currentMemory> may keep it until the next balloon change (lv_check.since_reset) */
        d->check.reread_ms = mono_ms();
        d->check.since_reset = true;
        d->check.watch_until_ms = mono_ms() + LV_CHECK_WINDOW_MS;
        /* A QEMU its guest took over may send RESET events without end: libvirt relays each. */
        if (log_ratelimit_ok(&d->rl, mono_ms()))
                log_msg(LOG_INFO, "vm \"%s\": the guest restarted (libvirt's reboot event)",
                        d->name);
        if (bucket_take(&d->wake, (double)mono_ms()) && d->lb->env.wakeup)
                d->lb->env.wakeup(d->lb->env.wakeup_userdata);
}

bool lv_run_needs_stats(const struct lv_domain *d)
{
        const struct qemu_guest_signal *sg = &d->sig;

        return !(sg->agent_have && sg->agent.demand_known &&
                 mono_ms() - sg->agent.report_ms < QEMU_AGENT_FRESH_MS / 2);
}
