/*
 * libvirt_carry: what the policy learned of a running domain, kept in the
 * live domain's metadata so that a live migration takes it along
 * (docs/migration.md, "What travels"). libvirt migrates the live XML, and
 * with it every metadata element: dynmem adds no transport of its own.
 *
 * The element is dynmem's but not the settings' (LIBVIRT_XML_LEARNED_NS,
 * libvirt_xml.h): virsh metadata of the settings, dynmem set and an older
 * dynmem never see it, and the metadata-change event it raises is not one
 * the backend reloads a domain for (libvirt_conn.c looks at the namespace).
 * It is written with virDomainSetMetadata(VIR_DOMAIN_AFFECT_LIVE) only:
 * the persistent definition, the next cold start's, never holds it. The
 * call takes a job on the domain and waits for libvirtd, so the resize
 * worker (libvirt_work.c) makes it, after the resizes queued before it;
 * none is handed over while a migration or another job runs on the domain,
 * nor while the last one is out.
 *
 * Reading is the XML parser's (libvirt_xml.c keeps the element's text from
 * the domain's XML as last loaded); what the text says is checked by the
 * daemon (daemon/carry.c), which also decides when to write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "libvirt_int.h"

_Static_assert(LIBVIRT_XML_LEARNED_MAX == BACKEND_LEARNED_MAX,
               "the element dynmemd writes is the one it reads");

/*
 * A job runs on the domain, or its job was not read lately: not now. Unlike
 * a resize, a driver without job statistics (libvirt cannot say) does not
 * stop the write: libvirt would only make it wait for a job, and QEMU has no
 * part in it.
 */
static bool job_in_the_way(struct lv_domain *d)
{
        bool fresh = d->job_read_ms && mono_ms() < d->job_read_ms + LV_ANSWER_MS;

        if (!lv_mig_busy(d)) /* also notes a migration its job shows */
                return false;
        return d->migration != VM_MIGRATION_NONE || !fresh || d->job_read.r > 0;
}

int lv_carry_write(struct backend *b, struct vm *vm, const char *text)
{
        struct lv_backend *lb = b->priv;
        struct lv_domain *d = lv_dom_find(lb, vm->name);
        struct lv_job *j;
        virDomainPtr dom;
        char *xml;

        if (!d || d->run != BACKEND_VM_RUNNING || !d->attached)
                return -ENOENT;
        if (!lb->conn || lv_conn_hung(lb, mono_ms(), NULL) || lb->work_stopped)
                return -EAGAIN;
        /* libvirt would hold the call until a migration ends (and QEMU's job with it) */
        if (d->carry_out || d->migration != VM_MIGRATION_NONE || d->locked_by_start ||
            job_in_the_way(d))
                return -EBUSY;
        if (strlen(text) > LIBVIRT_XML_LEARNED_MAX)
                return -EFBIG;
        if (!(xml = libvirt_xml_learned_format(text)))
                return -ENOMEM;
        if (!(dom = lv_dom_lookup(d))) {
                free(xml);
                return -EAGAIN;
        }
        j = lv_job_new(dom, d->name, d->attach_serial);
        virDomainFree(dom);
        if (!j) {
                free(xml);
                return -ENOMEM;
        }
        /* made later, it could meet the move's own job and hold the worker for it */
        j->drop_after_ms = BACKEND_CARRY_WAIT_MS;
        lv_job_add_metadata(j, xml, LIBVIRT_XML_LEARNED_PREFIX, LIBVIRT_XML_LEARNED_NS);
        d->carry_out = true;
        struct lv_work *w = lv_run_work(lb);
        if (w && lv_work_submit(w, j) == 0)
                return 0;
        /* no worker (no loop, or no thread): made here */
        lv_job_run(j);
        lv_carry_done(j, lb);
        lv_job_free(j);
        return 0;
}

bool lv_carry_pending(struct backend *b, const struct vm *vm, int *ret_error)
{
        struct lv_domain *d = lv_dom_find(b->priv, vm->name);

        if (ret_error)
                *ret_error = d ? d->carry_error : -ENOENT;
        return d && d->carry_out;
}

/* How a write that came back went (lv_carry_pending's *ret_error). */
static int outcome(const struct lv_job *j, const struct lv_backend *lb, const struct lv_domain *d)
{
        if (j->ran && j->steps[0].ok)
                return 0;
        if (j->dropped_late)
                return -ETIMEDOUT;
        if (!j->ran && lb->work_stopped)
                return -ESHUTDOWN;
        if (j->conn != lb->conn) /* taken back with the connection (lv_conn_close), or lost */
                return -ENOTCONN;
        if (!d || !d->attached || d->attach_serial != j->serial || !j->ran)
                return -ECANCELED; /* the domain stopped or restarted: not its write any more */
        return -EIO;
}

void lv_carry_done(struct lv_job *j, struct lv_backend *lb)
{
        struct lv_domain *d = lv_dom_find(lb, j->name);
        const struct lv_step *s = &j->steps[0];
        int error = outcome(j, lb, d);

        if (d) {
                d->carry_out = false;
                d->carry_error = error;
        }
        if (j->ran)
                lv_note_call_ms(lb, lv_step_call(s), j->name, s->ms);
        if (error == 0)
                log_msg(LOG_DEBUG, "vm \"%s\": what the policy learned is in its live metadata",
                        j->name);
        else if (error == -ETIMEDOUT)
                log_msg(LOG_INFO,
                        "vm \"%s\": the write of what the policy learned of it waited %.0f s "
                        "for the resize worker: dropped",
                        j->name, j->waited_ms / 1000.0);
        else if (error != -EIO)
                log_msg(LOG_DEBUG,
                        "vm \"%s\": the write of what the policy learned of it is taken back: %s",
                        j->name, strerror(-error));
        else if (log_ratelimit_ok(&d->rl, mono_ms()))
                log_msg(LOG_WARNING,
                        "vm \"%s\": libvirt refused the metadata that carries what the policy "
                        "learned of it: %s",
                        j->name, s->error);
        if (error == -EIO)
                lv_conn_check_error_msg(lb, "setting metadata", s->error);
        if (lb->env.carried)
                lb->env.carried(lb->env.wakeup_userdata);
}

int lv_carry_read(struct backend *b, const struct vm *vm, char **ret)
{
        struct lv_domain *d = lv_dom_find(b->priv, vm->name);

        *ret = NULL;
        if (!d)
                return -ENOENT;
        if (d->xml.learned_oversize)
                return -EFBIG;
        if (!d->xml.learned)
                return -ENOENT;
        return (*ret = strdup(d->xml.learned)) ? 0 : -ENOMEM;
}
