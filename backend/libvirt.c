/*
 * libvirt backend: lib/backend.h over libvirt's API. See libvirt.h and
 * docs/libvirt.md. The connection is libvirt_conn.c, the domains
 * libvirt_dom.c, a running dynamic domain libvirt_run.c, the XML
 * libvirt_xml.c and libvirt_edit.c.
 */
#include "libvirt.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libvirt_event.h"
#include "libvirt_int.h"
#include "units.h"

#define STOP_GRACE_MS 60000 /* a graceful stop not done by then is forced */

static struct lv_backend *priv(struct backend *b)
{
        return b->priv;
}

static const char *const no_keys[] = {NULL};

/* ---- configuration: libvirt owns the VMs ---- */

static int lv_check_vm(struct backend *b, const struct config *cfg, const struct config_vm *cvm,
                       struct config_diag *diag)
{
        (void)b;
        config_diag_add(diag, cfg->path, cvm->line,
                        "vm \"%s\": with backend libvirt the VMs are libvirt's domains; remove "
                        "this section and use: dynmem enable %s",
                        cvm->name, cvm->name);
        return -EINVAL;
}

static int lv_configure_vm(struct backend *b, struct vm *vm, const struct config *cfg,
                           const struct config_vm *cvm, char *err, size_t errlen)
{
        (void)b, (void)vm, (void)cfg, (void)cvm, (void)err, (void)errlen;
        return 0;
}

static const char *lv_owner(struct backend *b)
{
        static char text[300];

        snprintf(text, sizeof(text), "libvirt at %s", priv(b)->uri);
        return text;
}

static bool lv_unreachable(struct backend *b, char *buf, size_t len)
{
        return lv_conn_unreachable(priv(b), buf, len);
}

/*
 * libvirt is not answering (lv_conn_hung): a call from the loop would wait
 * with it, so none is made; err says so. True then.
 */
static bool refused_while_hung(struct lv_backend *lb, char *err, size_t errlen)
{
        uint64_t ms;

        if (!lv_conn_hung(lb, mono_ms(), &ms))
                return false;
        if (err)
                snprintf(err, errlen,
                         "libvirt at %s is not answering (for %llu s); try again "
                         "once it does",
                         lb->uri, (unsigned long long)(ms / 1000));
        return true;
}

/* ---- life cycle: through libvirt ---- */

/* run_dir/starting/NAME while dynmemd itself starts NAME (lib/backend.h). */
static int mark_starting(struct lv_backend *lb, const char *name, char *path, size_t len)
{
        char dir[512], pid[24];
        int fd, n;

        if (!lb->run_dir)
                return -ENOENT;
        snprintf(dir, sizeof(dir), "%s/%s", lb->run_dir, BACKEND_STARTING_DIR);
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return -errno;
        if (snprintf(path, len, "%s/%s", dir, name) >= (int)len)
                return -ENAMETOOLONG;
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
        if (fd < 0)
                return -errno;
        n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
        if (write(fd, pid, (size_t)n) != n)
                n = -1;
        close(fd);
        return n < 0 ? -EIO : 0;
}

static int lv_start(struct backend *b, struct vm *vm, uint64_t now_ms, char *err, size_t errlen)
{
        struct lv_backend *lb = priv(b);
        struct lv_domain *d = lv_dom_find(lb, vm->name);
        char marker[600] = "";
        virDomainPtr dom;
        int r;

        (void)now_ms;
        if (!d) {
                snprintf(err, errlen, "libvirt has no domain %s", vm->name);
                return -ENOENT;
        }
        if (vm->start_outside) {
                /* libvirt is starting it and its hook waits for this answer, with the domain
                 * locked: nothing touches it until libvirt says it started (an event) */
                d->pending_until_ms = mono_ms() + LV_START_PENDING_MS;
                return 0;
        }
        if (refused_while_hung(lb, err, errlen))
                return -EAGAIN;
        if (!(dom = lv_dom_lookup(d))) {
                snprintf(err, errlen, "libvirt at %s: %s", lb->uri,
                         lb->conn ? lv_error() : "not connected");
                return -ENOTCONN;
        }
        bool marked = mark_starting(lb, vm->name, marker, sizeof(marker)) == 0;
        r = virDomainCreate(dom);
        if (marked)
                unlink(marker);
        if (r < 0) {
                snprintf(err, errlen, "libvirt: %s", lv_error());
                lv_conn_check_error(lb, "starting a domain");
        } else {
                d->pending_until_ms = mono_ms() + LV_START_PENDING_MS;
                lv_dom_mark(d);
                log_msg(LOG_INFO, "%s: started through libvirt", vm->name);
        }
        virDomainFree(dom);
        return r < 0 ? -EIO : 0;
}

static void lv_admitting(struct backend *b, struct vm *vm, bool waiting)
{
        struct lv_domain *d = lv_dom_find(priv(b), vm->name);

        if (!d)
                return;
        if (waiting) {
                d->locked_by_start = true;
        } else if (!d->pending_until_ms) { /* refused: libvirt gives the start up */
                d->locked_by_start = false;
                lv_mig_refused(d);
        }
}

static int lv_stop(struct backend *b, struct vm *vm, bool force, uint64_t now_ms)
{
        struct lv_backend *lb = priv(b);
        struct lv_domain *d = lv_dom_find(lb, vm->name);
        virDomainPtr dom = d ? lv_dom_lookup(d) : NULL;
        int r;

        (void)now_ms;
        if (dom && refused_while_hung(lb, NULL, 0)) {
                virDomainFree(dom);
                return -EAGAIN;
        }
        if (!dom)
                return lb->conn ? -ENOENT : -ENOTCONN;
        r = force ? virDomainDestroy(dom) : virDomainShutdown(dom);
        if (r < 0) {
                log_msg(LOG_WARNING, "%s: libvirt cannot %s it: %s", vm->name,
                        force ? "destroy" : "shut down", lv_error());
                lv_conn_check_error(lb, "stopping a domain");
        } else {
                d->stop_by_ms = force ? 0 : mono_ms() + STOP_GRACE_MS;
                d->stop_id = d->id;
                lv_dom_mark(d);
        }
        virDomainFree(dom);
        return r < 0 ? -EIO : 0;
}

/*
 * A graceful stop the guest ignored: forced, as dynmem stop does for QEMU
 * guests. Only the instance asked to stop: one that went off and was started
 * again meanwhile (a new id) is left alone.
 */
static void check_stops(struct lv_backend *lb)
{
        uint64_t now = mono_ms();

        for (size_t i = 0; i < lb->n; i++) {
                struct lv_domain *d = lb->doms[i];
                if (d->run != BACKEND_VM_RUNNING || d->id != d->stop_id)
                        d->stop_by_ms = 0; /* it stopped */
                if (!d->stop_by_ms || now < d->stop_by_ms || lv_conn_hung(lb, now, NULL))
                        continue; /* (not while libvirt does not answer: later) */
                d->stop_by_ms = 0;
                virDomainPtr dom = lv_dom_lookup(d);
                if (dom && virDomainDestroy(dom) == 0) {
                        log_msg(LOG_NOTICE, "%s: not shut down after %d s: destroyed", d->name,
                                STOP_GRACE_MS / 1000);
                } else {
                        log_msg(LOG_WARNING,
                                "%s: not shut down after %d s, and libvirt cannot destroy it: %s",
                                d->name, STOP_GRACE_MS / 1000,
                                !lb->conn ? "not connected"
                                : dom     ? lv_error()
                                          : "no handle on the domain");
                        if (dom)
                                lv_conn_check_error(lb, "destroying a domain");
                }
                if (dom)
                        virDomainFree(dom);
        }
}

/* ---- balancing ---- */

static int lv_set_target(struct backend *b, struct vm *vm, uint64_t target_bytes, uint64_t now_ms)
{
        struct lv_backend *lb = priv(b);
        struct lv_domain *d = lv_dom_find(lb, vm->name);

        (void)now_ms;
        if (!lb->conn)
                return -ENOTCONN;
        if (!d || !d->attached)
                return -ESRCH;
        if (lv_conn_hung(lb, mono_ms(), NULL))
                return -EBUSY; /* its figures may be stale: no resize until libvirt answers */
        if (!d->info.balanced)
                return -EPERM; /* static: never touched */
        /* migrating (held where it is until it has moved), or a job; while our own resize
         * job is out libvirt is not asked (the question would wait behind that job): the
         * target goes out with the next plan, once the job is back (lv_run_job_done) */
        if (d->migration != VM_MIGRATION_NONE || (!d->job_busy && lv_mig_busy(d)))
                return -EBUSY;
        d->mem.target = qemu_mem_clamp_target(&d->mem, target_bytes);
        d->target_set = true;
        lv_run_apply(d);
        return 0;
}

static int lv_observe(struct backend *b, struct vm *vm, uint64_t now_ms, struct vm_observation *ret)
{
        struct lv_backend *lb = priv(b);
        struct lv_domain *d = lv_dom_find(lb, vm->name);
        struct vm_observation o = {.alive = true};

        if (!lb->conn) { /* cannot see it: it keeps what it had, nothing is decided for it */
                o.assigned_bytes = vm->obs.assigned_bytes;
                *ret = o;
                return 0;
        }
        if (!d || d->info.run != BACKEND_VM_RUNNING) {
                *ret = (struct vm_observation){.alive = false};
                return 0;
        }
        if (d->attached) {
                lv_run_observe(d, now_ms, &o);
                lv_run_apply(d);
        } else if (d->migration == VM_MIGRATION_IN) { /* arriving: what it holds on the source */
                o.assigned_bytes = lv_mig_incoming_bytes(d);
        } else if (d->run != BACKEND_VM_RUNNING) { /* admitted, libvirt still starting it */
                o.assigned_bytes = vm->settings.startup_bytes;
        } else {
                o.assigned_bytes = d->stats.known ? d->stats.current : d->xml.current_bytes;
                o.host_rss_bytes = lv_run_rss(d);
        }
        *ret = o;
        return 0;
}

static uint64_t lv_max_honourable(struct backend *b, const struct vm *vm)
{
        struct lv_domain *d = lv_dom_find(priv(b), vm->name);

        if (!d || !d->attached)
                return SETTINGS_SIZE_MAX; /* sized at the next start */
        return lv_run_top(d);
}

static int lv_reattach(struct backend *b, struct vm *vm, uint64_t now_ms)
{
        struct lv_domain *d = lv_dom_find(priv(b), vm->name);

        (void)now_ms;
        return d && d->info.run == BACKEND_VM_RUNNING ? 0 : -ENOENT;
}

static void lv_forget_vm(struct backend *b, struct vm *vm)
{
        (void)b;
        vm->backend_data = NULL; /* the domain table is the backend's, by name */
}

/* ---- the list of domains ---- */

static uint64_t assigned_now(const struct lv_domain *d)
{
        if (d->info.run != BACKEND_VM_RUNNING)
                return 0;
        if (d->migration == VM_MIGRATION_IN)
                return lv_mig_incoming_bytes(d);
        if (d->attached && d->mem.known)
                return lv_run_assigned(d);
        return d->stats.known ? d->stats.current : d->xml.current_bytes;
}

/* The table as the daemon reads it; out of memory, the previous list stands. */
void lv_list_infos(struct lv_backend *lb)
{
        if (lb->n > lb->n_infos || !lb->infos) {
                struct backend_vm_info *grown =
                    realloc(lb->infos, (lb->n ? lb->n : 1) * sizeof(*grown));
                if (!grown)
                        return;
                lb->infos = grown;
        }
        for (size_t i = 0; i < lb->n; i++) {
                lb->infos[i] = lb->doms[i]->info;
                lb->infos[i].assigned_bytes = assigned_now(lb->doms[i]);
        }
        lb->n_infos = lb->n;
}

static uint64_t lv_inventory(struct backend *b, uint64_t now_ms, const struct backend_vm_info **ret,
                             size_t *ret_n)
{
        struct lv_backend *lb = priv(b);
        uint64_t now = mono_ms();

        (void)now_ms;
        lv_conn_ensure(lb, now);
        /* the reads go to the reader; their answers are taken when they come back */
        lv_conn_read(lb, now);
        if (lb->conn) {
                if (lv_dom_reload_dirty(lb, now, NULL))
                        lb->generation++;
                check_stops(lb);
                if (lb->n != lb->n_infos)
                        lb->generation++;
                lv_list_infos(lb);
        }
        *ret = lb->infos;
        *ret_n = lb->n_infos;
        return lb->generation;
}

/* ---- settings in the domains ---- */

/*
 * A domain dynmemd just changed is read again at once, from the loop (which
 * has just made the change's own call, libvirt answering): dynmem show
 * right after dynmem enable or set has the new settings.
 */
static void reload_now(struct lv_backend *lb, const char *name)
{
        struct lv_domain *d = lv_dom_find(lb, name);
        struct lv_round *r = d ? lv_round_build_reload(lb, d) : NULL;

        if (!r)
                return;
        lv_round_run(r);
        if (lv_round_take(lb, r))
                lb->generation++;
        lv_list_infos(lb);
}

static int define(struct lv_backend *lb, const char *xml, char *err, size_t errlen)
{
        virDomainPtr dom = virDomainDefineXML(lb->conn, xml);

        if (!dom) {
                snprintf(err, errlen, "libvirt refused the new definition: %s", lv_error());
                lv_conn_check_error(lb, "defining a domain");
                return -EIO;
        }
        lv_dom_touch(lb, dom);
        char name[VM_NAME_MAX];
        snprintf(name, sizeof(name), "%s", virDomainGetName(dom));
        virDomainFree(dom);
        reload_now(lb, name);
        return 0;
}

/* The persistent XML of a shut-off domain, with secrets (redefining must keep them). */
static char *offline_xml(struct lv_backend *lb, const char *name, char *err, size_t errlen,
                         int *ret_errno)
{
        virDomainPtr dom;
        char *xml = NULL;

        *ret_errno = 0;
        if (refused_while_hung(lb, err, errlen)) {
                *ret_errno = EAGAIN;
                return NULL;
        }
        dom = lb->conn ? virDomainLookupByName(lb->conn, name) : NULL;
        if (!dom) {
                *ret_errno = lb->conn ? ENOENT : ENOTCONN;
                snprintf(err, errlen, "%s",
                         lb->conn ? "libvirt has no such domain" : "libvirt cannot be reached");
                return NULL;
        }
        if (virDomainIsActive(dom) == 1) {
                *ret_errno = EBUSY;
                snprintf(err, errlen,
                         "it is running; dynamic memory is turned on or off only while it is shut "
                         "off");
        } else if (virDomainIsPersistent(dom) != 1) {
                *ret_errno = EPERM;
                snprintf(err, errlen, "it is a transient domain; define it first (virsh define)");
        } else if (!(xml = virDomainGetXMLDesc(dom,
                                               VIR_DOMAIN_XML_INACTIVE | VIR_DOMAIN_XML_SECURE))) {
                *ret_errno = EIO;
                snprintf(err, errlen, "libvirt: %s", lv_error());
        }
        virDomainFree(dom);
        return xml;
}

/*
 * The settings enable writes: a dynamic domain keeps what is not given; a
 * static one takes settings_complete()'s defaults around its boot memory.
 */
static int enable_request(const char *xml, const struct vm_settings *s, unsigned given,
                          struct libvirt_xml_request *ret, char *err, size_t errlen)
{
        struct libvirt_xml_domain x;
        struct vm_settings c;
        char why[200];

        if (libvirt_xml_parse(xml, strlen(xml), &x, err, errlen) < 0)
                return -EINVAL;
        if (libvirt_xml_settings(&x, &c, why, sizeof(why)) < 0) {
                c = (struct vm_settings){.dynamic = true, .startup_bytes = x.startup_bytes};
                settings_merge(&c, s, given);
                c.dynamic = true;
                settings_complete(&c, given | SETTINGS_STARTUP | SETTINGS_DYNAMIC);
        } else {
                settings_merge(&c, s, given);
                c.dynamic = true;
        }
        libvirt_xml_domain_free(&x);
        *ret = (struct libvirt_xml_request){
            .startup_bytes = (given & SETTINGS_STARTUP) ? c.startup_bytes : 0,
            .minimum_bytes = c.minimum_bytes,
            .maximum_bytes = c.maximum_bytes,
            .buffer_percent = c.buffer_percent,
            .weight = c.weight,
            .block_bytes = c.block_bytes,
            .lend = c.lend,
        };
        return 0;
}

static int lv_enable(struct backend *b, const char *name, const struct vm_settings *s,
                     unsigned given, char *err, size_t errlen)
{
        struct lv_backend *lb = priv(b);
        struct libvirt_xml_request req;
        char *xml, *out = NULL;
        int e, r;

        if (!(xml = offline_xml(lb, name, err, errlen, &e)))
                return -e;
        r = enable_request(xml, s, given, &req, err, errlen);
        if (r == 0)
                r = libvirt_xml_enable(xml, strlen(xml), &req, &out, err, errlen);
        free(xml);
        if (r == 0)
                r = define(lb, out, err, errlen);
        free(out);
        return r;
}

static int lv_disable(struct backend *b, const char *name, char *err, size_t errlen)
{
        struct lv_backend *lb = priv(b);
        char *xml, *out = NULL;
        int e, r;

        if (!(xml = offline_xml(lb, name, err, errlen, &e)))
                return -e;
        r = libvirt_xml_disable(xml, strlen(xml), &out, err, errlen);
        free(xml);
        if (r == 0)
                r = define(lb, out, err, errlen);
        free(out);
        return r;
}

/*
 * New settings: the metadata of a running domain (live, and persistent when
 * it is); a shut-off one is defined again, since startup and maximum size
 * its boot memory and virtio-mem device.
 */
static int lv_store_settings(struct backend *b, struct vm *vm, const struct vm_settings *s,
                             char *err, size_t errlen)
{
        struct lv_backend *lb = priv(b);
        struct lv_domain *d = lv_dom_find(lb, vm->name);
        virDomainPtr dom;
        char *meta;
        int r;

        if (!lb->conn) {
                snprintf(err, errlen, "libvirt at %s cannot be reached", lb->uri);
                return -ENOTCONN;
        }
        if (refused_while_hung(lb, err, errlen))
                return -EAGAIN;
        if (d && d->xml.meta_state == LIBVIRT_XML_META_NEWER) {
                snprintf(err, errlen, "dynmem metadata of %s", d->xml.meta_error);
                return -EPERM;
        }
        if (!d || d->xml.meta_state != LIBVIRT_XML_META_OK) {
                snprintf(err, errlen, "not dynamic; use dynmem enable");
                return -EPERM;
        }
        if (d->run != BACKEND_VM_RUNNING)
                return lv_enable(b, vm->name, s, ~0u, err, errlen);
        struct libvirt_xml_meta m = d->xml.meta;
        m.minimum_bytes = s->minimum_bytes;
        m.maximum_bytes = s->maximum_bytes;
        m.buffer_percent = s->buffer_percent;
        m.weight = s->weight;
        m.lend = s->lend;
        if (!(meta = libvirt_xml_meta_format(&m)) || !(dom = lv_dom_lookup(d))) {
                free(meta);
                snprintf(err, errlen, "libvirt: %s", meta ? lv_error() : "out of memory");
                return -EIO;
        }
        unsigned flags = VIR_DOMAIN_AFFECT_LIVE | (d->persistent ? VIR_DOMAIN_AFFECT_CONFIG : 0);
        r = virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, meta, LIBVIRT_XML_NS_PREFIX,
                                 LIBVIRT_XML_NS, flags);
        if (r < 0) {
                snprintf(err, errlen, "libvirt refused the metadata: %s", lv_error());
                lv_conn_check_error(lb, "setting metadata");
        }
        lv_dom_mark(d);
        virDomainFree(dom);
        free(meta);
        if (r == 0)
                reload_now(lb, vm->name);
        return r < 0 ? -EIO : 0;
}

/* ---- what it knows of a VM ---- */

static void lv_describe(struct backend *b, const struct vm *vm, struct backend_vm_description *ret)
{
        struct lv_backend *lb = priv(b);
        struct lv_domain *d = lv_dom_find(lb, vm->name);

        if (!d || d->run != BACKEND_VM_RUNNING)
                return;
        ret->signal = qemu_signal_name(d->attached ? d->sig.source : QEMU_SIGNAL_NONE);
        snprintf(ret->accelerator, sizeof(ret->accelerator), "%s (libvirt domain type)",
                 d->xml.type[0] ? d->xml.type : "?");
        snprintf(ret->version, sizeof(ret->version), "%s", lb->hv_version);
        if (!d->attached)
                return;
        ret->resizing = d->target_set && !qemu_mem_settled(&d->mem);
        ret->agent_state = agent_state_name(AGENT_DISCONNECTED);
        if (d->agent_conn) {
                const struct agent *a = qemu_agent_parser(d->agent_conn);
                ret->agent_state = agent_state_name(agent_state(a));
                ret->agent_version = agent_version(a);
                ret->agent_caps = agent_caps(a);
        }
}

/* ---- the backend ---- */

static void lv_destroy(struct backend *b)
{
        struct lv_backend *lb;

        if (!b)
                return;
        lb = priv(b);
        bool hung = lv_conn_hung(lb, mono_ms(), NULL);
        lv_reader_free(lb->reader); /* a round in a call is left to finish on its own */
        lb->reader = NULL;
        lv_run_stop_work(lb); /* the call under way ends; queued resizes are dropped */
        if (!hung)            /* else closing would wait on libvirt too: the process is ending */
                lv_conn_close(lb);
        libvirt_event_flush(); /* what the closed connection handed back, now */
        for (size_t i = 0; i < lb->n; i++)
                lv_dom_free(lb->doms[i]);
        free(lb->doms);
        free(lb->infos);
        free(lb->uri);
        free(lb->run_dir);
        free(lb);
        free(b);
}

const struct backend_ops libvirt_backend_ops = {
    .name = "libvirt",
    .vm_keys = no_keys,
    .check_vm = lv_check_vm,
    .configure_vm = lv_configure_vm,
    .start = lv_start,
    .stop = lv_stop,
    .set_target = lv_set_target,
    .observe = lv_observe,
    .max_honourable = lv_max_honourable,
    .describe = lv_describe,
    .reattach = lv_reattach,
    .forget_vm = lv_forget_vm,
    .destroy = lv_destroy,
    .inventory = lv_inventory,
    .store_settings = lv_store_settings,
    .enable = lv_enable,
    .disable = lv_disable,
    .owner = lv_owner,
    .unreachable = lv_unreachable,
    .admitting = lv_admitting,
    .expect_incoming = lv_mig_expect,
    .carry_learned = lv_carry_write,
    .carry_pending = lv_carry_pending,
    .carried_learned = lv_carry_read,
};

int libvirt_backend_new(const struct config *cfg, const struct backend_env *env,
                        struct backend **ret, char *err, size_t errlen)
{
        struct backend *b = calloc(1, sizeof(*b));
        struct lv_backend *lb = calloc(1, sizeof(*lb));
        const char *uri =
            cfg && cfg->host.libvirt_uri ? cfg->host.libvirt_uri : LIBVIRT_URI_DEFAULT;

        if (!b || !lb || !(lb->uri = strdup(uri)) ||
            (env && env->run_dir && !(lb->run_dir = strdup(env->run_dir)))) {
                if (lb)
                        free(lb->uri);
                free(lb);
                free(b);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        if (env)
                lb->env = *env;
        lb->env.run_dir = lb->run_dir;
        /* libvirt's test driver runs in this process: nothing to wait for */
        lb->reads_inline = strncmp(lb->uri, "test:", 5) == 0;
        lb->unlisted_rl = LOG_RATELIMIT(5, 6);
        for (size_t i = 0; i < sizeof(lb->callbacks) / sizeof(lb->callbacks[0]); i++)
                lb->callbacks[i] = -1;
        lv_conn_quiet_errors();
        if (env && env->base && libvirt_event_register(env->base) < 0) {
                snprintf(err, errlen, "libvirt's events already run on another loop");
                free(lb->uri);
                free(lb->run_dir);
                free(lb);
                free(b);
                return -EALREADY;
        }
        b->ops = &libvirt_backend_ops;
        b->priv = lb;
        *ret = b;
        return 0;
}
