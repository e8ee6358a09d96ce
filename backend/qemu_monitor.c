/*
 * qemu_monitor: the QEMU backend's side of QMP for one VM. Reads memory
 * back (query-balloon, query-memory-devices, balloon statistics) every
 * second and whenever QEMU hints that it moved (BALLOON_CHANGE,
 * MEMORY_DEVICE_SIZE_CHANGE), range-checks every number, and sends the
 * balloon and virtio-mem requests that qemu_mem plans.
 */
#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_int.h"
#include "qmp.h"
#include "units.h"

#define MEMDEVS_MAX 64 /* memory devices looked at in query-memory-devices */

static bool rl_ok(struct qemu_vm *qv)
{
        return log_ratelimit_ok(&qv->rl, mono_ms());
}

/* ---- read-back ---- */

static void batch_done(struct qemu_vm *qv);

static void batch_step(struct qemu_vm *qv)
{
        if (qv->batch.left > 0 && --qv->batch.left == 0)
                batch_done(qv);
}

static void reply_problem(struct qemu_vm *qv, const char *what, const struct qmp_reply *reply)
{
        if (reply->status == QMP_ERROR && rl_ok(qv))
                log_msg(LOG_WARNING, "vm \"%s\": QEMU refused %s: %s", qv->vm->name, what,
                        reply->error_desc);
}

static void on_balloon(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        struct qemu_vm *qv = userdata;
        const struct qemu_layout *l = &qv->mem.layout;
        uint64_t actual;

        (void)q;
        if (reply->status == QMP_OK) {
                if (qmp_get_u64(reply->ret, "actual", l->startup + l->region, &actual) == 0) {
                        qv->batch.actual = actual;
                        qv->batch.balloon_ok = true;
                } else if (rl_ok(qv)) {
                        log_msg(LOG_WARNING, "vm \"%s\": ignoring an impossible balloon size",
                                qv->vm->name);
                }
        }
        reply_problem(qv, "query-balloon", reply);
        batch_step(qv);
}

/* The virtio-mem device's numbers from one query-memory-devices entry. */
static int parse_vmem(const json_t *data, struct qemu_batch *b)
{
        uint64_t size, requested, max, block;

        if (qmp_get_u64(data, "block-size", GIB, &block) < 0 || block < 4096 ||
            (block & (block - 1)) != 0 ||
            qmp_get_u64(data, "max-size", SETTINGS_SIZE_MAX, &max) < 0 || max % block != 0 ||
            qmp_get_u64(data, "size", max, &size) < 0 || size % block != 0 ||
            qmp_get_u64(data, "requested-size", max, &requested) < 0)
                return -EINVAL;
        b->plugged = size;
        b->requested = requested;
        b->region = max;
        b->block = block;
        return 0;
}

static int find_vmem(const json_t *list, struct qemu_batch *b)
{
        size_t i;
        json_t *dev;

        if (!json_is_array(list) || json_array_size(list) > MEMDEVS_MAX)
                return -EINVAL;
        json_array_foreach(list, i, dev)
        {
                const json_t *data = json_object_get(dev, "data");
                const char *type = qmp_get_string(dev, "type", 64);
                const char *id = qmp_get_string(data, "id", 128);
                if (type && id && strcmp(type, "virtio-mem") == 0 && strcmp(id, QEMU_ID_VMEM) == 0)
                        return parse_vmem(data, b);
        }
        b->plugged = b->requested = b->region = 0;
        return -ENOENT;
}

static void on_memdevs(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        struct qemu_vm *qv = userdata;
        int r;

        (void)q;
        if (reply->status == QMP_OK) {
                r = find_vmem(reply->ret, &qv->batch);
                /* No device is right when the layout has none. */
                if (r == 0 || (r == -ENOENT && (!qv->layout_verified || !qv->mem.layout.region)))
                        qv->batch.vmem_ok = true;
                else if (rl_ok(qv))
                        log_msg(LOG_WARNING, "vm \"%s\": ignoring malformed virtio-mem state",
                                qv->vm->name);
        }
        reply_problem(qv, "query-memory-devices", reply);
        batch_step(qv);
}

static void on_summary(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        struct qemu_vm *qv = userdata;
        uint64_t base;

        (void)q;
        if (reply->status == QMP_OK &&
            qmp_get_u64(reply->ret, "base-memory", SETTINGS_SIZE_MAX, &base) == 0 && base > 0 &&
            base % MIB == 0) {
                qv->batch.base = base;
                qv->batch.summary_ok = true;
        }
        reply_problem(qv, "query-memory-size-summary", reply);
        batch_step(qv);
}

static void on_stats(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        struct qemu_vm *qv = userdata;
        const struct qemu_layout *l = &qv->mem.layout;
        const json_t *stats = json_object_get(reply->ret, "stats");
        uint64_t total, avail, updated;

        (void)q;
        /* Unknown statistics are 2^64-1: out of range, so unknown here too. */
        if (reply->status == QMP_OK &&
            qmp_get_u64(reply->ret, "last-update", UINT64_MAX, &updated) == 0 &&
            qmp_get_u64(stats, "stat-total-memory", l->startup + l->region, &total) == 0 &&
            qmp_get_u64(stats, "stat-available-memory", total, &avail) == 0 && updated > 0) {
                qemu_signal_stats(&qv->sig, total, avail, updated, mono_ms());
        }
        batch_step(qv);
}

/* Take QEMU's own numbers for the layout of a VM found running (reattach). */
static void adopt_layout(struct qemu_vm *qv)
{
        struct qemu_batch *b = &qv->batch;
        /* the device may be larger than what the VM may plug (qemu_argv.c) */
        uint64_t usable = qv->mem.layout.region && qv->mem.layout.region < b->region
                              ? qv->mem.layout.region
                              : b->region;
        struct qemu_layout l = {.startup = b->base,
                                .region = usable,
                                .block = b->block ? b->block : qv->mem.layout.block,
                                .first = qv->mem.layout.first};

        if (!b->summary_ok || !b->vmem_ok || !b->balloon_ok)
                return;
        if (l.startup != qv->mem.layout.startup || l.region != qv->mem.layout.region ||
            l.block != qv->mem.layout.block)
                log_msg(LOG_NOTICE,
                        "vm \"%s\": the running QEMU has %llu MiB base RAM and %llu MiB of "
                        "virtio-mem; managing it with those",
                        qv->vm->name, (unsigned long long)(l.startup / MIB),
                        (unsigned long long)(l.region / MIB));
        uint64_t target = qv->mem.target;
        qemu_mem_init(&qv->mem, &l, false);
        qv->mem.target = qemu_mem_clamp_target(&qv->mem, target);
        qv->layout_verified = true;
}

static void batch_done(struct qemu_vm *qv)
{
        struct qemu_batch *b = &qv->batch;

        if (!qv->layout_verified)
                adopt_layout(qv);
        /* QEMU's machine (so its agent socket) exists and the VM's size limit is known. */
        if (qv->layout_verified)
                qemu_backend_agent_start(qv);
        if (qv->layout_verified && b->balloon_ok && b->vmem_ok) {
                bool first = !qv->mem.known;
                qemu_mem_readback(&qv->mem, b->actual, b->plugged, b->requested, mono_ms());
                /* Found running: hold what it has until someone asks for a target. */
                if (first && !qv->target_set)
                        qv->mem.target =
                            qemu_mem_clamp_target(&qv->mem, qemu_mem_assigned(&qv->mem));
        }
        qemu_monitor_apply(qv);
        if (qv->reread && qv->batch.left == 0) {
                qv->reread = false;
                qemu_monitor_readback(qv);
        }
}

static int queue(struct qemu_vm *qv, const char *execute, json_t *args, qmp_reply_fn fn)
{
        int r = qmp_command(qv->qmp, execute, args, fn, qv);

        if (r == 0 && fn)
                qv->batch.left++;
        return r;
}

static json_t *qom_get(const char *path, const char *property)
{
        return json_pack("{s:s, s:s}", "path", path, "property", property);
}

void qemu_monitor_readback(struct qemu_vm *qv)
{
        if (!qmp_is_ready(qv->qmp))
                return;
        if (qv->batch.left > 0) {
                qv->reread = true;
                return;
        }
        qv->batch = (struct qemu_batch){0};
        qv->batch.left = 1; /* held until every command is queued */
        queue(qv, "query-balloon", NULL, on_balloon);
        if (qv->mem.layout.region > 0 || !qv->layout_verified)
                queue(qv, "query-memory-devices", NULL, on_memdevs);
        else
                qv->batch.vmem_ok = true;
        if (!qv->layout_verified)
                queue(qv, "query-memory-size-summary", NULL, on_summary);
        queue(qv, "qom-get", qom_get(QEMU_PATH_BALLOON, "guest-stats"), on_stats);
        batch_step(qv);
}

/* ---- requests ---- */

static void on_requested_set(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        struct qemu_vm *qv = userdata;

        (void)q;
        qv->mem.requested_in_flight = false;
        reply_problem(qv, "a virtio-mem resize", reply);
}

static void on_balloon_set(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        struct qemu_vm *qv = userdata;

        (void)q;
        if (reply->status != QMP_OK)
                qv->mem.balloon_sent = false; /* ask again at the next read-back */
        reply_problem(qv, "a balloon target", reply);
}

static bool send_requested(struct qemu_vm *qv, uint64_t bytes)
{
        json_t *args = json_pack("{s:s, s:s, s:I}", "path", QEMU_PATH_VMEM, "property",
                                 "requested-size", "value", (json_int_t)bytes);

        if (qmp_command(qv->qmp, "qom-set", args, on_requested_set, qv) < 0) {
                qv->mem.requested_in_flight = false;
                return false;
        }
        return true;
}

static bool send_balloon(struct qemu_vm *qv, uint64_t bytes)
{
        json_t *args = json_pack("{s:I}", "value", (json_int_t)bytes);

        if (qmp_command(qv->qmp, "balloon", args, on_balloon_set, qv) < 0) {
                qv->mem.balloon_sent = false;
                return false;
        }
        return true;
}

static void log_plan(struct qemu_vm *qv, const struct qemu_mem_plan *p)
{
        if (p->plug_refused && rl_ok(qv))
                log_msg(LOG_WARNING,
                        "vm \"%s\": the guest plugged only %llu of %llu MiB of virtio-mem in "
                        "%d s (no virtio_mem driver?); growing pauses for %d s",
                        qv->vm->name, (unsigned long long)(qv->mem.plugged / MIB),
                        (unsigned long long)(qv->mem.requested / MIB), QEMU_PLUG_STALL_MS / 1000,
                        QEMU_PLUG_RETRY_MS / 1000);
        if (p->unplug_stalled && p->set_balloon && rl_ok(qv))
                log_msg(LOG_NOTICE,
                        "vm \"%s\": the guest cannot unplug %llu MiB now; the balloon makes "
                        "up for it",
                        qv->vm->name, (unsigned long long)(qv->mem.plugged / MIB));
}

void qemu_monitor_apply(struct qemu_vm *qv)
{
        struct qemu_mem_plan p;
        bool sent = false;

        if (!qmp_is_ready(qv->qmp) || !qv->mem.known)
                return;
        qemu_mem_plan(&qv->mem, mono_ms(), &p);
        log_plan(qv, &p);
        if (p.set_balloon && p.balloon_first)
                sent |= send_balloon(qv, p.balloon_value);
        if (p.set_requested)
                sent |= send_requested(qv, p.requested);
        if (p.set_balloon && !p.balloon_first)
                sent |= send_balloon(qv, p.balloon_value);
        if (sent) {
                qv->busy_until_ms = mono_ms() + QEMU_BUSY_MS;
                qemu_monitor_readback(qv);
                qemu_backend_schedule_poll(qv);
        }
}

int qemu_monitor_simple(struct qemu_vm *qv, const char *execute)
{
        return qmp_command(qv->qmp, execute, NULL, NULL, NULL);
}

/* ---- connection ---- */

static void on_ready(struct qmp *q, void *userdata)
{
        struct qemu_vm *qv = userdata;
        json_t *args = json_pack("{s:s, s:s, s:i}", "path", QEMU_PATH_BALLOON, "property",
                                 "guest-stats-polling-interval", "value", QEMU_STATS_INTERVAL_S);

        qemu_backend_start_done(qv);
        qmp_command(q, "qom-set", args, NULL, NULL);
        if (!qv->features.confirmed) /* a QMP reconnect finds the same QEMU */
                qemu_confirm_features(qv);
        qemu_monitor_readback(qv);
}

/*
 * A SHUTDOWN's or RESET's reason, for the log: a word of QEMU's ShutdownCause
 * ("guest-reset"), or `none` for anything else or none at all.
 */
static const char *event_reason(const json_t *data, const char *none)
{
        const char *reason = qmp_get_string(data, "reason", 64);

        for (const char *c = reason; c && *c; c++)
                if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-'))
                        return none;
        return reason ? reason : none;
}

static void on_event(struct qmp *q, const char *name, json_t *data, void *userdata)
{
        struct qemu_vm *qv = userdata;

        (void)q;
        if (strcmp(name, "BALLOON_CHANGE") == 0 || strcmp(name, "MEMORY_DEVICE_SIZE_CHANGE") == 0)
                qemu_monitor_readback(qv); /* a hint: read the real state */
        else if (strcmp(name, "SHUTDOWN") == 0 && rl_ok(qv))
                log_msg(LOG_INFO, "vm \"%s\": QEMU shuts down (%s)", qv->vm->name,
                        event_reason(data, "no reason given"));
        else if (strcmp(name, "RESET") == 0)
                qemu_backend_guest_reset(qv, event_reason(data, NULL));
        else if (strcmp(name, "GUEST_PANICKED") == 0 && rl_ok(qv))
                log_msg(LOG_WARNING, "vm \"%s\": the guest kernel panicked", qv->vm->name);
}

static bool process_exited(const struct qemu_vm *qv)
{
        struct pollfd p = {.fd = qv->pidfd, .events = POLLIN};

        return qv->pidfd < 0 || poll(&p, 1, 0) != 0;
}

static void on_reconnect(evutil_socket_t fd, short what, void *arg)
{
        struct qemu_vm *qv = arg;

        (void)fd, (void)what;
        /* QEMU exiting closes the socket first: then the exit is what gets logged. */
        if (!qv->running || qv->qmp || process_exited(qv))
                return;
        if (qv->qmp_lost[0] && qv->stop_phase == 0 && rl_ok(qv))
                log_msg(LOG_WARNING, "vm \"%s\": QMP connection lost (%s); reconnecting",
                        qv->vm->name, qv->qmp_lost);
        qv->qmp_lost[0] = '\0';
        if (qemu_monitor_connect(qv) < 0)
                qemu_monitor_reconnect_later(qv);
}

void qemu_monitor_reconnect_later(struct qemu_vm *qv)
{
        if (!qv->reconnect_ev)
                qv->reconnect_ev = evtimer_new(qv->qb->env.base, on_reconnect, qv);
        if (qv->running && qv->reconnect_ev)
                qemu_timer_in(qv->reconnect_ev, qv->start_state == QEMU_START_PENDING
                                                    ? QEMU_START_RETRY_MS
                                                    : QEMU_RECONNECT_MS);
}

static void on_closed(struct qmp *q, const char *why, void *userdata)
{
        struct qemu_vm *qv = userdata;

        snprintf(qv->qmp_lost, sizeof(qv->qmp_lost), "%s", why);
        qmp_free(q);
        qv->qmp = NULL;
        qv->batch = (struct qemu_batch){0};
        qv->reread = false;
        qv->mem.requested_in_flight = false;
        if (qv->start_state == QEMU_START_PENDING)
                qemu_backend_start_closed(qv, why); /* no second try: it fails or exits */
        else
                qemu_monitor_reconnect_later(qv);
}

static const struct qmp_callbacks callbacks = {
    .ready = on_ready,
    .event = on_event,
    .closed = on_closed,
};

int qemu_monitor_connect(struct qemu_vm *qv)
{
        return qmp_connect(qv->qb->env.base, qv->paths.qmp, &callbacks, qv, &qv->qmp);
}

void qemu_monitor_close(struct qemu_vm *qv)
{
        qmp_free(qv->qmp);
        qv->qmp = NULL;
        qv->batch = (struct qemu_batch){0};
        qv->reread = false;
}
