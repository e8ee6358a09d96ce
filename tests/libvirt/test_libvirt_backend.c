/*
 * Tests for the libvirt backend through its interface (libvirt_backend_ops)
 * against libvirt's in-process test driver (test:///default): connecting,
 * listing, stopping. No libvirtd, no guests.
 */
#include <errno.h>
#include <event2/event.h>
#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "libvirt_event.h"
#include "libvirt_int.h"
#include "units.h"

static struct event_base *base;
static virConnectPtr conn; /* the test's own connection to the same driver */

/*
 * virDomainGetJobStats, wrapped at link time (meson.build): the test driver
 * has no job statistics; a case may answer in a QEMU driver's place, its
 * error read once with virGetLastError (wrapped too).
 */
static enum {
        JOBS_LIBVIRT,      /* the driver's own answer */
        JOBS_UNSUPPORTED,  /* VIR_ERR_OPERATION_UNSUPPORTED */
        JOBS_NO_OPERATION, /* a job, without its operation */
        JOBS_NONE          /* no job: QEMU's driver once a migration has ended */
} job_answer;

static virError job_error = {.code = VIR_ERR_OPERATION_UNSUPPORTED,
                             .domain = VIR_FROM_QEMU,
                             .level = VIR_ERR_ERROR,
                             .message = (char *)"this function is not supported"};
static bool job_error_pending;

virErrorPtr __real_virGetLastError(void);
virErrorPtr __wrap_virGetLastError(void);

virErrorPtr __wrap_virGetLastError(void)
{
        if (!job_error_pending)
                return __real_virGetLastError();
        job_error_pending = false;
        return &job_error;
}

int __real_virDomainGetJobStats(virDomainPtr dom, int *type, virTypedParameterPtr *params,
                                int *nparams, unsigned int flags);
int __wrap_virDomainGetJobStats(virDomainPtr dom, int *type, virTypedParameterPtr *params,
                                int *nparams, unsigned int flags);

int __wrap_virDomainGetJobStats(virDomainPtr dom, int *type, virTypedParameterPtr *params,
                                int *nparams, unsigned int flags)
{
        switch (job_answer) {
        case JOBS_UNSUPPORTED:
                job_error_pending = true;
                return -1;
        case JOBS_NO_OPERATION:
        case JOBS_NONE:
                *type = job_answer == JOBS_NONE ? VIR_DOMAIN_JOB_NONE : VIR_DOMAIN_JOB_UNBOUNDED;
                *params = NULL;
                *nparams = 0;
                return 0;
        default:
                return __real_virDomainGetJobStats(dom, type, params, nparams, flags);
        }
}

/*
 * virDomainGetXMLDesc, wrapped too: a case may serve a domain's live XML in
 * libvirt's place (the test driver never writes a virtio-mem device's
 * <current>, which libvirt's QEMU driver does once it has asked QEMU).
 */
static struct {
        const char *name; /* the domain's, NULL: libvirt's own XML for every domain */
        char *xml;
} served;

char *__real_virDomainGetXMLDesc(virDomainPtr dom, unsigned int flags);
char *__wrap_virDomainGetXMLDesc(virDomainPtr dom, unsigned int flags);

char *__wrap_virDomainGetXMLDesc(virDomainPtr dom, unsigned int flags)
{
        const char *name = virDomainGetName(dom);

        if (served.name && name && strcmp(name, served.name) == 0)
                return strdup(served.xml);
        return __real_virDomainGetXMLDesc(dom, flags);
}

/* Serve libvirt's live XML of dom with text put in after `after`; NULL text: stop serving. */
static void serve_xml(virDomainPtr dom, const char *after, const char *text)
{
        free(served.xml);
        served.xml = NULL;
        served.name = NULL;
        if (!text)
                return;
        char *xml = __real_virDomainGetXMLDesc(dom, 0);
        assert_non_null(xml);
        char *at = strstr(xml, after);
        assert_non_null(at);
        at += strlen(after);
        served.xml = malloc(strlen(xml) + strlen(text) + 1);
        assert_non_null(served.xml);
        sprintf(served.xml, "%.*s%s%s", (int)(at - xml), xml, text, at);
        served.name = virDomainGetName(dom);
        free(xml);
}

static struct backend *backend_open(void)
{
        struct config cfg = {.host = {.libvirt_uri = (char *)"test:///default"}};
        struct backend_env env = {.base = base};
        struct backend *b = NULL;
        char err[256];

        assert_int_equal(libvirt_backend_new(&cfg, &env, &b, err, sizeof(err)), 0);
        return b;
}

static const struct backend_vm_info *listed(struct backend *b, const char *name)
{
        const struct backend_vm_info *infos = NULL;
        size_t n = 0;

        b->ops->inventory(b, mono_ms(), &infos, &n);
        for (size_t i = 0; i < n; i++)
                if (strcmp(infos[i].name, name) == 0)
                        return &infos[i];
        return NULL;
}

static virDomainPtr define_running(const char *name)
{
        char xml[600];
        virDomainPtr dom;

        snprintf(xml, sizeof(xml),
                 "<domain type='test'><name>%s</name>"
                 "<memory unit='KiB'>1048576</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
                 "<devices><memballoon model='virtio'/></devices></domain>",
                 name);
        dom = virDomainDefineXML(conn, xml);
        assert_non_null(dom);
        assert_int_equal(virDomainCreate(dom), 0);
        return dom;
}

static void undefine(virDomainPtr dom)
{
        if (virDomainIsActive(dom) == 1)
                virDomainDestroy(dom);
        virDomainUndefine(dom);
        virDomainFree(dom);
}

/* Run fn with the log (stderr) going to a buffer. */
static void capture_log(void (*fn)(void *), void *arg, char *text, size_t len)
{
        char path[] = "/tmp/test-libvirt-backend-log-XXXXXX";
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);

        assert_true(fd >= 0 && saved >= 0);
        fflush(stderr);
        dup2(fd, STDERR_FILENO);
        fn(arg);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        ssize_t n = pread(fd, text, len - 1, 0);
        close(fd);
        unlink(path);
        text[n > 0 ? n : 0] = '\0';
}

/*
 * A driver that runs in the process has no keepalive: the backend connects
 * all the same (it used to give up, "not supported", at every retry).
 */
static void a_connection_without_keepalive_is_used(void **state)
{
        virDomainPtr dom = define_running("bk-a");
        struct backend *b = backend_open();

        (void)state;
        const struct backend_vm_info *in = listed(b, "bk-a");
        assert_non_null(in);
        assert_int_equal(in->run, BACKEND_VM_RUNNING);
        assert_false(in->balanced); /* no dynmem metadata: static */
        assert_non_null(((struct lv_backend *)b->priv)->conn);
        b->ops->destroy(b);
        undefine(dom);
}

static void take_inventory(void *arg)
{
        struct backend *b = arg;
        const struct backend_vm_info *infos;
        size_t n;

        b->ops->inventory(b, mono_ms(), &infos, &n);
}

/*
 * While libvirt cannot be reached the backend says why, as the log did
 * (dynmem status shows it), until it answers again; a libvirt that answers
 * is not said to be unreachable.
 */
static void an_unreachable_libvirt_is_said_until_it_answers(void **state)
{
        struct config cfg = {
            .host = {.libvirt_uri = (char *)"qemu:///system?socket=/nonexistent-dynmem/sock"}};
        struct backend_env env = {.base = base};
        struct backend *b = backend_open(), *down = NULL;
        char why[LV_DOWN_TEXT_MAX], log[4096], err[256];

        (void)state;
        take_inventory(b);
        assert_false(b->ops->unreachable(b, why, sizeof(why)));
        b->ops->destroy(b);

        assert_int_equal(libvirt_backend_new(&cfg, &env, &down, err, sizeof(err)), 0);
        capture_log(take_inventory, down, log, sizeof(log));
        assert_true(down->ops->unreachable(down, why, sizeof(why)));
        assert_non_null(strstr(why, "libvirt at qemu:///system?socket=/nonexistent-dynmem/sock: "));
        assert_non_null(strstr(why, "No such file or directory"));
        assert_non_null(strstr(why, "the VMs keep their sizes until it answers again"));
        assert_non_null(strstr(log, why)); /* what the log said */

        /* libvirt answers again (here: another URI, tried at once) */
        struct lv_backend *lb = down->priv;
        free(lb->uri);
        lb->uri = strdup("test:///default");
        lb->retry_at_ms = 0;
        /* the reads are the reader thread's (the URI was not the test driver's): its
         * round comes back through the loop */
        for (int i = 0; i < 100 && !lb->conn; i++) {
                take_inventory(down);
                event_base_loop(base, EVLOOP_ONCE);
        }
        assert_non_null(lb->conn);
        assert_false(down->ops->unreachable(down, why, sizeof(why)));
        down->ops->destroy(down);
}

/* The domain named name in the backend's table. */
static struct lv_domain *domain(struct backend *b, const char *name)
{
        struct lv_domain *d = lv_dom_find(b->priv, name);

        assert_non_null(d);
        return d;
}

/*
 * A graceful stop that is not done in time is forced, but only on the
 * instance that was asked to stop: a domain that went off and was started
 * again meanwhile (a new id) is not destroyed.
 */
static void a_domain_started_again_after_a_stop_is_not_destroyed(void **state)
{
        virDomainPtr dom = define_running("bk-b");
        struct backend *b = backend_open();
        struct vm vm = {0};

        (void)state;
        assert_non_null(listed(b, "bk-b"));
        snprintf(vm.name, sizeof(vm.name), "bk-b");
        int old_id = domain(b, "bk-b")->id;
        assert_int_equal(b->ops->stop(b, &vm, false, mono_ms()), 0); /* the test driver: off */
        assert_int_equal(virDomainIsActive(dom), 0);
        assert_int_equal(virDomainCreate(dom), 0); /* started again by someone else */
        domain(b, "bk-b")->stop_by_ms = 1;         /* the grace period is over */
        assert_non_null(listed(b, "bk-b"));
        assert_int_not_equal(domain(b, "bk-b")->id, old_id);
        assert_int_equal(virDomainIsActive(dom), 1); /* not destroyed */
        assert_int_equal(domain(b, "bk-b")->stop_by_ms, 0);

        /* the same instance still running after the grace period is destroyed */
        assert_int_equal(b->ops->stop(b, &vm, false, mono_ms()), 0);
        assert_int_equal(virDomainCreate(dom), 0);
        assert_non_null(listed(b, "bk-b"));
        domain(b, "bk-b")->stop_id = domain(b, "bk-b")->id; /* as if it ignored the stop */
        domain(b, "bk-b")->stop_by_ms = 1;
        assert_non_null(listed(b, "bk-b"));
        assert_int_equal(virDomainIsActive(dom), 0);
        b->ops->destroy(b);
        undefine(dom);
}

struct inventory_arg {
        struct backend *b;
};

static void inventory(void *arg)
{
        struct inventory_arg *a = arg;

        listed(a->b, "");
}

/* A forced stop that libvirt refuses is said, with libvirt's reason. */
static void a_failed_forced_stop_is_logged(void **state)
{
        virDomainPtr dom = define_running("bk-c");
        struct backend *b = backend_open();
        struct inventory_arg a = {b};
        struct vm vm = {0};
        char text[8192];

        (void)state;
        assert_non_null(listed(b, "bk-c"));
        snprintf(vm.name, sizeof(vm.name), "bk-c");
        assert_int_equal(b->ops->stop(b, &vm, false, mono_ms()), 0);
        /* libvirt's domain is off, the table not reloaded yet: destroy fails */
        struct lv_domain *d = domain(b, "bk-c");
        d->dirty = false;
        d->stop_by_ms = 1;
        capture_log(inventory, &a, text, sizeof(text));
        assert_non_null(strstr(text, "bk-c: not shut down after 60 s, and libvirt cannot destroy"));
        assert_int_equal(d->stop_by_ms, 0);
        b->ops->destroy(b);
        undefine(dom);
}

static void run_loop(void *arg)
{
        struct timeval tv = {0, 200 * 1000};

        (void)arg;
        event_base_loopexit(base, &tv);
        event_base_dispatch(base);
}

/*
 * A domain defined after dynmemd connected, with a name dynmem cannot list,
 * is named in a warning, as one found when connecting is (it was counted
 * and never said).
 */
static void a_domain_defined_with_a_name_dynmem_cannot_use_is_said(void **state)
{
        struct backend *b = backend_open();
        char text[8192];

        (void)state;
        assert_null(listed(b, "bk-d")); /* connected, events followed */
        virDomainPtr dom = virDomainDefineXML(
            conn, "<domain type='test'><name>bk d</name><memory unit='KiB'>1048576</memory>"
                  "<vcpu>1</vcpu><os><type>hvm</type></os></domain>");
        assert_non_null(dom);
        capture_log(run_loop, NULL, text, sizeof(text)); /* the defined event */
        assert_non_null(strstr(text, "libvirt domain \"bk d\" is not listed"));
        assert_null(listed(b, "bk d"));
        b->ops->destroy(b);
        undefine(dom);
}

static void set_ull(virTypedParameter *p, const char *field, unsigned long long v)
{
        *p = (virTypedParameter){.type = VIR_TYPED_PARAM_ULLONG};
        snprintf(p->field, sizeof(p->field), "%s", field);
        p->value.ul = v;
}

/*
 * The balloon driver's statistics come from the guest: a MemTotal above what
 * the domain may hold (boot memory and what it may plug) is not taken, even
 * when its <memory> (with the whole virtio-mem device) is larger.
 */
static void guest_statistics_above_what_the_domain_may_hold_are_not_taken(void **state)
{
        struct lv_domain *d = calloc(1, sizeof(*d));
        virTypedParameter p[3];

        (void)state;
        assert_non_null(d);
        d->attached = true;
        d->mem.layout = (struct qemu_layout){
            .startup = 510 * MIB, .region = 514 * MIB, .block = 2 * MIB, .first = 2 * MIB};
        d->xml.total_bytes = 1534 * MIB; /* the device is 1024 MiB: to a whole memory block */
        qemu_signal_reset(&d->sig);
        set_ull(&p[0], "balloon.last-update", 100);
        set_ull(&p[1], "balloon.available", 1500 * 1024); /* KiB, above 1024 MiB */
        set_ull(&p[2], "balloon.usable", 100 * 1024);
        lv_dom_take_stats(d, p, 3);
        assert_false(d->sig.stats.known);
        set_ull(&p[1], "balloon.available", 1000 * 1024);
        lv_dom_take_stats(d, p, 3);
        assert_true(d->sig.stats.known);
        assert_int_equal(d->sig.stats.total, 1000 * MIB);
        free(d);
}

/*
 * QEMU's balloon figure is set by the guest (and anything by a QEMU it took
 * over): a static domain is never counted above its memory, a dynamic one's
 * balloon never above its boot memory.
 */
static void a_balloon_size_above_the_domains_memory_is_not_taken(void **state)
{
        struct lv_domain *d = calloc(1, sizeof(*d));

        (void)state;
        assert_non_null(d);
        lv_dom_take_balloon(d, 512 * 1024); /* not loaded yet: nothing to check it against */
        assert_false(d->stats.known);
        d->xml.total_bytes = GIB;
        lv_dom_take_balloon(d, 512 * 1024);
        assert_true(d->stats.known);
        assert_int_equal(d->stats.current, 512 * MIB);
        lv_dom_take_balloon(d, 8ull * 1024 * 1024 * 1024); /* 8 TiB */
        assert_int_equal(d->stats.current, GIB);
        lv_dom_take_balloon(d, UINT64_MAX / 2);
        assert_int_equal(d->stats.current, GIB);

        d->attached = true;
        d->mem.layout = (struct qemu_layout){.startup = 510 * MIB, .region = 514 * MIB};
        d->mem.known = true;
        lv_dom_take_balloon(d, 8ull * 1024 * 1024 * 1024);
        assert_int_equal(d->mem.actual, 510 * MIB);
        free(d);
}

/* The same figure in a running domain's XML (<currentMemory>). */
static void a_current_memory_above_the_domains_memory_is_not_taken(void **state)
{
        static const char xml[] =
            "<domain type='kvm' id='3'><name>web</name><memory unit='KiB'>1048576</memory>"
            "<currentMemory unit='KiB'>8589934592</currentMemory><devices/></domain>";
        struct libvirt_xml_domain x;
        char err[200];

        (void)state;
        assert_int_equal(libvirt_xml_parse(xml, strlen(xml), &x, err, sizeof(err)), 0);
        assert_int_equal(x.total_bytes, GIB);
        assert_int_equal(x.current_bytes, GIB);
        libvirt_xml_domain_free(&x);
}

/*
 * An arrival announced by the hook and admitted, whose domain libvirt then
 * never creates (QEMU could not start on this host, the source gave up):
 * no lifecycle event comes for it, and once the admitted start's wait is
 * over it is no longer listed, so that what was reserved for it is free.
 */
static void an_admitted_arrival_libvirt_never_makes_is_dropped(void **state)
{
        struct backend *b = backend_open();
        struct vm_settings s = {.dynamic = true,
                                .startup_bytes = 512 * MIB,
                                .minimum_bytes = 512 * MIB,
                                .maximum_bytes = 2 * GIB,
                                .weight = 5000,
                                .lend = true};
        struct vm vm = {.settings = s, .start_outside = true};
        char err[256];

        (void)state;
        assert_null(listed(b, "bk-gone"));
        snprintf(vm.name, sizeof(vm.name), "bk-gone");
        assert_int_equal(b->ops->expect_incoming(b, "bk-gone", &s, GIB, err, sizeof(err)), 0);
        b->ops->admitting(b, &vm, true);
        assert_int_equal(b->ops->start(b, &vm, mono_ms(), err, sizeof(err)), 0);
        b->ops->admitting(b, &vm, false); /* admitted: the hook returns, libvirt goes on */
        const struct backend_vm_info *in = listed(b, "bk-gone");
        assert_non_null(in);
        assert_int_equal(in->run, BACKEND_VM_RUNNING);
        assert_int_equal(in->migration, VM_MIGRATION_IN);

        /* the announcement's and the admitted start's waits are over, no event came */
        domain(b, "bk-gone")->incoming_until_ms = 1;
        domain(b, "bk-gone")->pending_until_ms = 1;
        listed(b, "");
        assert_null(listed(b, "bk-gone"));
        b->ops->destroy(b);
}

/*
 * An arrival announced for a name defined here and shut off: listed with the
 * settings the VM arrives with (the domain XML libvirt runs here), not with
 * those of the definition here, also once the domain is read again.
 */
static void an_arrival_over_a_definition_here_has_the_arriving_settings(void **state)
{
        struct backend *b = backend_open();
        struct vm_settings s = {.dynamic = true,
                                .startup_bytes = 512 * MIB,
                                .minimum_bytes = 512 * MIB,
                                .maximum_bytes = 2 * GIB,
                                .buffer_percent = 20,
                                .weight = 7000,
                                .block_bytes = 2 * MIB,
                                .lend = false}; /* not the default: kept as it arrives */
        char err[256];

        (void)state;
        virDomainPtr dom = virDomainDefineXML(
            conn, "<domain type='test'><name>bk-arr</name><memory unit='KiB'>1048576</memory>"
                  "<vcpu>1</vcpu><os><type>hvm</type></os></domain>");
        assert_non_null(dom);
        const struct backend_vm_info *in = listed(b, "bk-arr");
        assert_non_null(in);
        assert_false(in->balanced); /* static here */
        assert_int_equal(b->ops->expect_incoming(b, "bk-arr", &s, GIB, err, sizeof(err)), 0);
        in = listed(b, "bk-arr");
        assert_non_null(in);
        assert_int_equal(in->migration, VM_MIGRATION_IN);
        assert_true(in->balanced);
        assert_false(settings_diff(&in->settings, &s));
        domain(b, "bk-arr")->dirty = true; /* read from libvirt again */
        in = listed(b, "bk-arr");
        assert_non_null(in);
        assert_true(in->balanced);
        assert_false(settings_diff(&in->settings, &s));
        b->ops->destroy(b);
        undefine(dom);
}

static virDomainPtr create_transient(const char *name)
{
        char xml[600];
        virDomainPtr dom;

        snprintf(xml, sizeof(xml),
                 "<domain type='test'><name>%s</name>"
                 "<memory unit='KiB'>1048576</memory><vcpu>1</vcpu><os><type>hvm</type></os>"
                 "</domain>",
                 name);
        dom = virDomainCreateXML(conn, xml, 0);
        assert_non_null(dom);
        run_loop(NULL); /* the started event */
        return dom;
}

/*
 * A domain shut off in the middle of its outgoing migration did not migrate
 * away: listed off (once more, for a transient one libvirt no longer has)
 * with migrated_away false; one libvirt stopped because it migrated, with it
 * true.
 */
static void a_domain_shut_off_while_leaving_is_not_said_to_have_migrated(void **state)
{
        struct backend *b = backend_open();
        const struct backend_vm_info *in;

        (void)state;
        /* persistent: libvirt's shut-off reason says it */
        virDomainPtr dom = define_running("bk-off");
        assert_non_null(listed(b, "bk-off"));
        domain(b, "bk-off")->migration = VM_MIGRATION_OUT; /* its migration-iteration event */
        assert_int_equal(virDomainDestroy(dom), 0);
        run_loop(NULL); /* the stopped event */
        in = listed(b, "bk-off");
        assert_non_null(in);
        assert_int_equal(in->run, BACKEND_VM_OFF);
        assert_false(in->migrated_away);
        assert_int_equal(in->migration, VM_MIGRATION_NONE);
        undefine(dom);

        /* transient, destroyed: listed off once, then dropped */
        dom = create_transient("bk-gone-off");
        assert_non_null(listed(b, "bk-gone-off"));
        domain(b, "bk-gone-off")->migration = VM_MIGRATION_SWITCHOVER;
        assert_int_equal(virDomainDestroy(dom), 0);
        virDomainFree(dom);
        run_loop(NULL);
        in = listed(b, "bk-gone-off");
        assert_non_null(in);
        assert_int_equal(in->run, BACKEND_VM_OFF);
        assert_false(in->migrated_away);
        assert_null(listed(b, "bk-gone-off"));

        /* transient, stopped by libvirt as it migrated away */
        dom = create_transient("bk-left");
        assert_non_null(listed(b, "bk-left"));
        domain(b, "bk-left")->migration = VM_MIGRATION_SWITCHOVER;
        assert_int_equal(virDomainDestroy(dom), 0);
        run_loop(NULL);
        lv_mig_lifecycle(b->priv, dom, VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_MIGRATED);
        virDomainFree(dom);
        in = listed(b, "bk-left");
        assert_non_null(in);
        assert_int_equal(in->run, BACKEND_VM_OFF);
        assert_true(in->migrated_away);
        assert_null(listed(b, "bk-left"));
        b->ops->destroy(b);
}

/*
 * A domain leaving this host whose job ends (libvirt's QEMU driver answers
 * "no job") in the same round that reloads it after its stopped event is
 * taken off from that reload: the job's end does not set the reload aside
 * as one read before a newer mark (it did, at every round, and the source
 * counted a domain that had left for ever).
 */
static void a_domain_whose_migration_ended_is_taken_off_at_once(void **state)
{
        struct backend *b = backend_open();
        struct lv_backend *lb = b->priv;

        (void)state;
        virDomainPtr dom = define_running("bk-moved");
        assert_non_null(listed(b, "bk-moved"));
        struct lv_domain *d = domain(b, "bk-moved");
        d->migration = VM_MIGRATION_SWITCHOVER; /* paused for its switchover */
        assert_int_equal(virDomainDestroy(dom), 0);
        lv_mig_lifecycle(lb, dom, VIR_DOMAIN_EVENT_STOPPED, VIR_DOMAIN_EVENT_STOPPED_MIGRATED);
        lv_dom_touch(lb, dom); /* what its stopped event does */
        job_answer = JOBS_NONE;
        for (int round = 0; round < 3; round++) {
                struct lv_round *r = lv_round_build(lb, mono_ms());
                assert_non_null(r);
                assert_true(round > 0 ||
                            (lv_round_load_of(r, "bk-moved") && lv_round_dom_of(r, "bk-moved") &&
                             lv_round_dom_of(r, "bk-moved")->want_job));
                lv_round_run(r);
                lv_round_take(lb, r);
                if (round == 0) { /* the round that asked both: taken off from it */
                        assert_int_equal(d->run, BACKEND_VM_OFF);
                        assert_int_equal(d->migration, VM_MIGRATION_NONE);
                }
        }
        job_answer = JOBS_LIBVIRT;
        const struct backend_vm_info *in = listed(b, "bk-moved");
        assert_non_null(in);
        assert_int_equal(in->run, BACKEND_VM_OFF); /* and stays so */
        undefine(dom);
        run_loop(NULL); /* its events, before the next case's */
        b->ops->destroy(b);
}

/*
 * A driver that has no job statistics for a domain (the call unsupported, or
 * a job without its operation) says nothing of a migration: the domain is
 * not taken for an arriving one, nor resized while libvirt cannot say.
 */
static void a_domain_without_job_statistics_is_not_taken_for_an_arrival(void **state)
{
        virDomainPtr dom = define_running("bk-job");
        struct backend *b = backend_open();
        const struct backend_vm_info *in;

        (void)state;
        job_answer = JOBS_UNSUPPORTED;
        in = listed(b, "bk-job");
        assert_non_null(in);
        assert_int_equal(in->run, BACKEND_VM_RUNNING);
        assert_int_equal(in->migration, VM_MIGRATION_NONE);
        assert_true(lv_mig_busy(domain(b, "bk-job"))); /* unknown: not now */
        assert_int_equal(domain(b, "bk-job")->migration, VM_MIGRATION_NONE);
        assert_int_equal(listed(b, "bk-job")->migration, VM_MIGRATION_NONE);

        job_answer = JOBS_NO_OPERATION;
        domain(b, "bk-job")->dirty = true;
        in = listed(b, "bk-job");
        assert_non_null(in);
        assert_int_equal(in->migration, VM_MIGRATION_NONE);
        assert_true(lv_mig_busy(domain(b, "bk-job"))); /* a job of some kind */
        assert_int_equal(domain(b, "bk-job")->migration, VM_MIGRATION_NONE);
        job_answer = JOBS_LIBVIRT;
        b->ops->destroy(b);
        undefine(dom);
}

static void write_pidfile(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void write_pidfile(const char *path, const char *fmt, ...)
{
        FILE *f = fopen(path, "w");
        va_list ap;

        assert_non_null(f);
        va_start(ap, fmt);
        vfprintf(f, fmt, ap);
        va_end(ap);
        assert_int_equal(fclose(f), 0);
}

/*
 * QEMU's resident memory comes from the process libvirt's pid file names,
 * only while it is the process the domain's instance was first seen with
 * (its start time, /proc/PID/stat): a pid reused by another process gives
 * none. This process stands in for QEMU.
 */
static void a_reused_pid_gives_no_resident_memory(void **state)
{
        char path[] = "/tmp/test-libvirt-backend-pid-XXXXXX";
        int fd = mkstemp(path);
        struct lv_qemu_pid seen = {0};
        uint64_t start;

        (void)state;
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(qemu_proc_start_time(getpid(), &start), 0);
        write_pidfile(path, "%d\n", (int)getpid());
        assert_true(lv_run_rss_of(&seen, path, 5) > 0);
        assert_int_equal(seen.pid, getpid());
        assert_int_equal(seen.start, start);
        assert_true(lv_run_rss_of(&seen, path, 5) > 0);

        /* the instance's QEMU started at another time: this process has its pid now */
        seen.start = start - 1;
        assert_int_equal(lv_run_rss_of(&seen, path, 5), 0);
        /* another pid for the same instance */
        seen = (struct lv_qemu_pid){.id = 5, .pid = getppid(), .start = start};
        assert_int_equal(lv_run_rss_of(&seen, path, 5), 0);
        /* a new instance (started again): recorded afresh */
        assert_true(lv_run_rss_of(&seen, path, 6) > 0);
        assert_int_equal(seen.pid, getpid());

        /* a pid file that records a start time: it must be the process's */
        seen = (struct lv_qemu_pid){0};
        write_pidfile(path, "%d %llu\n", (int)getpid(), (unsigned long long)start + 1);
        assert_int_equal(lv_run_rss_of(&seen, path, 7), 0);
        write_pidfile(path, "%d %llu\n", (int)getpid(), (unsigned long long)start);
        assert_true(lv_run_rss_of(&seen, path, 7) > 0);
        unlink(path);
}

/*
 * virtio-mem's sizes come from QEMU (libvirt's size-change event, the live
 * XML's <current> and <requested>): one that is not a whole number of the
 * device's blocks is not taken; the last one taken stands.
 */
static void a_virtio_mem_size_not_in_whole_blocks_is_not_taken(void **state)
{
        struct lv_domain *d = calloc(1, sizeof(*d));

        (void)state;
        assert_non_null(d);
        snprintf(d->name, sizeof(d->name), "bk-vmem");
        d->rl = LOG_RATELIMIT(6, 5);
        d->attached = true;
        qemu_mem_init(
            &d->mem,
            &(struct qemu_layout){
                .startup = 510 * MIB, .region = 1024 * MIB, .block = 2 * MIB, .first = 2 * MIB},
            true);
        lv_run_take_vmem_size(d, 256 * 1024);
        assert_int_equal(d->mem.plugged, 256 * MIB);
        lv_run_take_vmem_size(d, 257 * 1024); /* 257 MiB: half a block over */
        assert_int_equal(d->mem.plugged, 256 * MIB);
        lv_run_take_vmem_size(d, 4); /* 4 KiB */
        assert_int_equal(d->mem.plugged, 256 * MIB);
        lv_run_take_vmem_size(d, 2048 * 1024); /* beyond the device */
        assert_int_equal(d->mem.plugged, 256 * MIB);

        d->xml = (struct libvirt_xml_domain){.live = true,
                                             .vmem = true,
                                             .vmem_current_known = true,
                                             .vmem_current = 300 * MIB + 512 * KIB,
                                             .vmem_requested = 300 * MIB + 4 * KIB,
                                             .current_bytes = 810 * MIB};
        d->mem.requested = 256 * MIB;
        lv_run_readback_xml(d);
        assert_int_equal(d->mem.plugged, 256 * MIB);
        assert_int_equal(d->mem.requested, 256 * MIB);
        d->xml.vmem_current = d->xml.vmem_requested = 300 * MIB;
        lv_run_readback_xml(d);
        assert_int_equal(d->mem.plugged, 300 * MIB);
        assert_int_equal(d->mem.requested, 300 * MIB);
        free(d);
}

/* Run fn with the log captured, and say whether it has text. */
static bool logged(void (*fn)(void *), void *arg, const char *text)
{
        static char buf[16384];

        capture_log(fn, arg, buf, sizeof(buf));
        return strstr(buf, text) != NULL;
}

/*
 * A running dynamic domain on the test driver: boot_kib of boot memory (its
 * NUMA cell) and a virtio-mem device of vmem_kib (none when 0) of which
 * requested_kib is asked, current_kib in all (<currentMemory>); minimum
 * 256 MiB, maximum 1 GiB, first block 2 MiB.
 */
static virDomainPtr define_dynamic(const char *name, unsigned boot_kib, unsigned vmem_kib,
                                   unsigned requested_kib, unsigned current_kib)
{
        char xml[3000], vmem[600] = "";
        virDomainPtr dom;

        if (vmem_kib)
                snprintf(vmem, sizeof(vmem),
                         "<memory model='virtio-mem'><target><size unit='KiB'>%u</size>"
                         "<node>0</node><block unit='KiB'>2048</block>"
                         "<requested unit='KiB'>%u</requested></target>"
                         "<alias name='" LIBVIRT_XML_VMEM_ALIAS "'/></memory>",
                         vmem_kib, requested_kib);
        snprintf(xml, sizeof(xml),
                 "<domain type='test'><name>%s</name>"
                 "<maxMemory slots='1' unit='KiB'>%u</maxMemory>"
                 "<memory unit='KiB'>%u</memory><currentMemory unit='KiB'>%u</currentMemory>"
                 "<vcpu>1</vcpu><os><type>hvm</type></os>"
                 "<cpu><numa><cell id='0' cpus='0' memory='%u' unit='KiB'/></numa></cpu>"
                 "<devices><memballoon model='virtio'/>%s</devices>"
                 "<metadata><dynmem:memory xmlns:dynmem='" LIBVIRT_XML_NS "'>"
                 "<dynmem:minimum unit='bytes'>268435456</dynmem:minimum>"
                 "<dynmem:maximum unit='bytes'>1073741824</dynmem:maximum>"
                 "<dynmem:buffer>20</dynmem:buffer><dynmem:weight>5000</dynmem:weight>%s"
                 "</dynmem:memory></metadata></domain>",
                 name, 2 * 1048576, boot_kib + vmem_kib, current_kib, boot_kib, vmem,
                 vmem_kib ? "<dynmem:first unit='bytes'>2097152</dynmem:first>" : "");
        dom = virDomainDefineXML(conn, xml);
        assert_non_null(dom);
        assert_int_equal(virDomainCreate(dom), 0);
        return dom;
}

static struct vm_observation observed(struct backend *b, const char *name)
{
        struct vm_observation o = {0};
        struct vm vm = {0};

        snprintf(vm.name, sizeof(vm.name), "%s", name);
        assert_int_equal(b->ops->observe(b, &vm, mono_ms(), &o), 0);
        return o;
}

/* As if ms had passed for d's check of libvirt's figure (its rate limits). */
static void pass_time(struct lv_domain *d, uint64_t ms)
{
        uint64_t *stamps[] = {&d->check.checked_ms, &d->check.reread_ms, &d->check.differs_ms,
                              &d->check.watch_until_ms};

        for (size_t i = 0; i < sizeof(stamps) / sizeof(stamps[0]); i++)
                if (*stamps[i])
                        *stamps[i] = *stamps[i] > ms ? *stamps[i] - ms : 1;
}

/*
 * libvirt 9.0 does not read a virtio-mem device's <current> back from the
 * status XML it keeps (it only writes it): after libvirtd restarts, a
 * domain's live XML says 0 plugged until libvirt has asked QEMU again, which
 * it does without an event, while <currentMemory> still has the whole. The
 * test driver serves such an XML (it drops <current> too): the domain holds
 * 504 MiB (254 MiB of boot memory, 248 plugged, and 2 MiB more in libvirt's
 * figure, as in the e2e test), and dynmemd read 0 plugged. It is counted at
 * libvirt's figure, never below: counted at 256 MiB, its memory would be
 * handed to the other VMs. Once libvirt's XML has the device's <current>,
 * the XML read again gives dynmemd's figure. After a guest reset, the XML
 * (the old boot's until libvirt asked QEMU) is not read again at once.
 */
static void a_domain_whose_xml_says_less_than_libvirts_figure_is_counted_at_libvirts(void **state)
{
        virDomainPtr dom = define_dynamic("bk-restart", 260096, 788480, 253952, 516096);
        struct backend *b = backend_open();
        struct inventory_arg a = {b};

        (void)state;
        const struct backend_vm_info *in = listed(b, "bk-restart");
        assert_non_null(in);
        assert_true(in->balanced);
        struct lv_domain *d = domain(b, "bk-restart");
        assert_true(d->attached);
        assert_int_equal(d->mem.plugged, 0); /* what the live XML says */
        assert_int_equal(qemu_mem_assigned(&d->mem), 256 * MIB);
        assert_int_equal(in->assigned_bytes, 504 * MIB); /* listed at libvirt's figure */
        struct vm_observation o = observed(b, "bk-restart");
        assert_int_equal(o.assigned_bytes, 504 * MIB);
        assert_true(o.may_hold_bytes >= 504 * MIB);
        assert_true(d->check.differs);
        assert_int_equal(d->check.reread_ms, 0); /* not read again within the second */

        /* a second on: its XML is read again, in vain, and that is said, once */
        pass_time(d, LV_CHECK_MS);
        assert_true(logged(inventory, &a,
                           "vm \"bk-restart\": libvirt says it holds 504 MiB, its live XML "
                           "256 MiB: counted at 504 MiB until they agree"));
        assert_true(d->check.reread_ms > 0);
        pass_time(d, LV_REREAD_MS);
        uint64_t reread = d->check.reread_ms;
        assert_false(logged(inventory, &a, "libvirt says it holds"));
        assert_true(d->check.reread_ms > reread); /* read again */
        assert_int_equal(observed(b, "bk-restart").assigned_bytes, 504 * MIB);

        /* libvirt asked QEMU: its XML has the device's <current> (248 MiB), no event */
        serve_xml(dom, "</requested>", "<current unit='KiB'>253952</current>");
        pass_time(d, LV_CHECK_MS);
        assert_non_null(listed(b, "bk-restart"));
        assert_int_equal(d->mem.plugged, 0); /* not read again within LV_REREAD_MS */
        pass_time(d, LV_REREAD_MS);
        assert_true(logged(inventory, &a,
                           "vm \"bk-restart\": libvirt's figure was not dynmemd's; its live XML, "
                           "read again, says it holds 502 MiB (248 MiB of virtio-mem plugged), "
                           "not 256 MiB"));
        assert_int_equal(d->mem.plugged, 248 * MIB);
        assert_false(d->check.differs); /* 504 and 502 MiB: a block apart */
        assert_int_equal(listed(b, "bk-restart")->assigned_bytes, 502 * MIB);

        /* the guest restarted (QEMU emptied virtio-mem); libvirt's XML is still the old
         * boot's: not taken at once; and libvirt 9.0's <currentMemory> keeps the old boot's
         * virtio-mem when it refreshed the device before QEMU's size-change event came (it
         * recomputes it only at a balloon change): not counted until the figures agree */
        pass_time(d, LV_CHECK_WINDOW_MS); /* out of the window its XML opened */
        assert_non_null(listed(b, "bk-restart"));
        lv_run_guest_reset(d); /* a new one */
        pass_time(d, LV_CHECK_MS);
        assert_non_null(listed(b, "bk-restart"));
        pass_time(d, LV_CHECK_MS);
        assert_non_null(listed(b, "bk-restart"));
        assert_int_equal(d->mem.plugged, 0);
        assert_true(d->check.differs);
        assert_int_equal(observed(b, "bk-restart").assigned_bytes, 256 * MIB);
        serve_xml(dom, NULL, NULL); /* libvirt asked QEMU: 0 plugged */
        pass_time(d, LV_REREAD_MS);
        assert_int_equal(listed(b, "bk-restart")->assigned_bytes, 256 * MIB);
        /* a balloon change: libvirt's figure is right again, and counts from then on */
        assert_int_equal(virDomainSetMemoryFlags(dom, 256 * 1024, VIR_DOMAIN_AFFECT_LIVE), 0);
        pass_time(d, LV_CHECK_MS);
        assert_int_equal(listed(b, "bk-restart")->assigned_bytes, 256 * MIB);
        assert_false(d->check.differs || d->check.since_reset);
        assert_int_equal(virDomainSetMemoryFlags(dom, 400 * 1024, VIR_DOMAIN_AFFECT_LIVE), 0);
        pass_time(d, LV_CHECK_MS);
        assert_int_equal(listed(b, "bk-restart")->assigned_bytes, 400 * MIB);
        b->ops->destroy(b);
        undefine(dom);
}

/*
 * libvirt's figure changes without an event (the test driver's
 * virDomainSetMemoryFlags raises none, as libvirt's refresh from QEMU after
 * it restarts raises none): once the figures have differed for a second (not
 * an event on its way), the live XML is read again and dynmemd's figure
 * becomes libvirt's, up and down, at most every LV_REREAD_MS; in between the
 * larger of the two is counted.
 */
static void a_figure_libvirt_changed_without_an_event_is_read_again(void **state)
{
        virDomainPtr dom = define_dynamic("bk-quiet", 1048576, 0, 0, 524288);
        struct backend *b = backend_open();
        struct inventory_arg a = {b};

        (void)state;
        assert_non_null(listed(b, "bk-quiet"));
        struct lv_domain *d = domain(b, "bk-quiet");
        assert_true(d->attached);
        assert_int_equal(qemu_mem_assigned(&d->mem), 512 * MIB);
        assert_false(d->check.differs);

        assert_int_equal(virDomainSetMemoryFlags(dom, 768 * 1024, VIR_DOMAIN_AFFECT_LIVE), 0);
        assert_int_equal(listed(b, "bk-quiet")->assigned_bytes, 512 * MIB); /* read < 1 s ago */
        pass_time(d, LV_CHECK_MS);
        assert_int_equal(listed(b, "bk-quiet")->assigned_bytes, 768 * MIB); /* the larger */
        assert_int_equal(d->mem.actual, 512 * MIB); /* an event may be on its way */
        pass_time(d, LV_CHECK_MS);
        assert_true(logged(inventory, &a, "libvirt's figure was not dynmemd's"));
        assert_int_equal(d->mem.actual, 768 * MIB);
        assert_int_equal(listed(b, "bk-quiet")->assigned_bytes, 768 * MIB);
        assert_false(d->check.differs);

        /* lower again at once: the XML is not read again before LV_REREAD_MS, and meanwhile
         * the larger figure counts, never the lower */
        assert_int_equal(virDomainSetMemoryFlags(dom, 300 * 1024, VIR_DOMAIN_AFFECT_LIVE), 0);
        pass_time(d, LV_CHECK_MS);
        assert_non_null(listed(b, "bk-quiet"));
        pass_time(d, LV_CHECK_MS);
        assert_non_null(listed(b, "bk-quiet"));
        assert_true(d->check.differs);
        assert_int_equal(d->check.libvirt_bytes, 300 * MIB);
        assert_int_equal(d->mem.actual, 768 * MIB);
        assert_int_equal(observed(b, "bk-quiet").assigned_bytes, 768 * MIB);
        pass_time(d, LV_REREAD_MS); /* its time has come */
        assert_non_null(listed(b, "bk-quiet"));
        assert_int_equal(d->mem.actual, 300 * MIB);
        assert_int_equal(observed(b, "bk-quiet").assigned_bytes, 300 * MIB);
        assert_false(d->check.differs);

        /* a minute after its XML was read, libvirt's figure is read every LV_CHECK_IDLE_MS */
        pass_time(d, LV_CHECK_WINDOW_MS);
        assert_non_null(listed(b, "bk-quiet")); /* read now, as before */
        assert_int_equal(virDomainSetMemoryFlags(dom, 600 * 1024, VIR_DOMAIN_AFFECT_LIVE), 0);
        pass_time(d, LV_CHECK_MS);
        assert_non_null(listed(b, "bk-quiet"));
        assert_false(d->check.differs);
        pass_time(d, LV_CHECK_IDLE_MS);
        assert_non_null(listed(b, "bk-quiet"));
        assert_true(d->check.differs);
        assert_int_equal(observed(b, "bk-quiet").assigned_bytes, 600 * MIB);
        b->ops->destroy(b);
        undefine(dom);
}

/* Turn the loop until the domain's write of what the policy learned is made. */
static void carry_made(struct backend *b, struct vm *vm)
{
        int error = 1;

        for (int i = 0; i < 200 && b->ops->carry_pending(b, vm, NULL); i++)
                event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(5000);
        assert_false(b->ops->carry_pending(b, vm, &error));
        assert_int_equal(error, 0); /* made */
}

/*
 * What the policy learned goes into the live domain's metadata, in its own
 * namespace (escaped), made by the worker; not into the persistent
 * definition, and the settings' element is as it was. libvirt's
 * metadata-change event for it does not have the domain reloaded. After a
 * reload the text is given back as written; one too large is said to be;
 * nothing is written while the domain migrates.
 */
static void what_the_policy_learned_is_carried_in_the_live_metadata(void **state)
{
        virDomainPtr dom = define_dynamic("bk-carry", 1048576, 0, 0, 524288);
        struct backend *b = backend_open();
        const char *text = "{\"written_at_ms\":1,\"policy\":{\"note\":\"<a & b>\"}}";
        char *meta, *config, *back = NULL, big[LIBVIRT_XML_LEARNED_MAX + 64];
        struct vm vm = {0};

        (void)state;
        snprintf(vm.name, sizeof(vm.name), "bk-carry");
        assert_non_null(listed(b, "bk-carry"));
        struct lv_domain *d = domain(b, "bk-carry");
        assert_true(d->attached);
        assert_int_equal(b->ops->carried_learned(b, &vm, &back), -ENOENT); /* none yet */
        char *settings_before = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                                                     LIBVIRT_XML_NS, VIR_DOMAIN_AFFECT_LIVE);
        assert_non_null(settings_before);

        assert_int_equal(b->ops->carry_learned(b, &vm, text), 0);
        assert_int_equal(b->ops->carry_learned(b, &vm, text), -EBUSY); /* one at a time */
        carry_made(b, &vm);
        meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, LIBVIRT_XML_LEARNED_NS,
                                    VIR_DOMAIN_AFFECT_LIVE);
        assert_non_null(meta);
        assert_non_null(strstr(meta, "&lt;a &amp; b&gt;"));
        config = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, LIBVIRT_XML_LEARNED_NS,
                                      VIR_DOMAIN_AFFECT_CONFIG);
        assert_null(config); /* the next cold start's definition never holds it */
        char *settings_after = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
                                                    LIBVIRT_XML_NS, VIR_DOMAIN_AFFECT_LIVE);
        assert_string_equal(settings_after, settings_before);

        /* libvirt's event for it has come through the loop: not a reason to reload */
        for (int i = 0; i < 20; i++)
                event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        assert_false(d->dirty);

        /* its XML read again: the text as written */
        lv_dom_mark(d);
        assert_non_null(listed(b, "bk-carry"));
        assert_int_equal(b->ops->carried_learned(b, &vm, &back), 0);
        assert_string_equal(back, text);
        free(back);

        /* written by someone else, too large: said so, not kept */
        memset(big, 'x', sizeof(big));
        memcpy(big, "<learned>", 9);
        snprintf(big + sizeof(big) - 12, 12, "</learned>");
        assert_int_equal(virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, big, "other",
                                              LIBVIRT_XML_LEARNED_NS, VIR_DOMAIN_AFFECT_LIVE),
                         0);
        lv_dom_mark(d);
        assert_non_null(listed(b, "bk-carry"));
        assert_int_equal(b->ops->carried_learned(b, &vm, &back), -EFBIG);
        assert_null(back);

        /* not while it migrates, nor more than the element may hold */
        d->migration = VM_MIGRATION_OUT;
        assert_int_equal(b->ops->carry_learned(b, &vm, text), -EBUSY);
        d->migration = VM_MIGRATION_NONE;
        big[LIBVIRT_XML_LEARNED_MAX + 1] = '\0';
        assert_non_null(listed(b, "bk-carry"));
        assert_int_equal(b->ops->carry_learned(b, &vm, big), -EFBIG);

        free(meta);
        free(settings_before);
        free(settings_after);
        b->ops->destroy(b);
        undefine(dom);
}

/*
 * virSetErrorFunc, wrapped too: libvirt keeps the handler in globals that a
 * failed call reads on whichever thread made it, unlocked. A set while the
 * backend's reader or worker exists could race with their calls.
 */
static struct lv_backend *threads_of; /* the backend whose threads are looked at */
static int error_func_sets_beside_threads;

void __real_virSetErrorFunc(void *userdata, virErrorFunc handler);
void __wrap_virSetErrorFunc(void *userdata, virErrorFunc handler);

void __wrap_virSetErrorFunc(void *userdata, virErrorFunc handler)
{
        if (threads_of && (threads_of->reader || threads_of->work))
                error_func_sets_beside_threads++;
        __real_virSetErrorFunc(userdata, handler);
}

/*
 * libvirt's error handler is set before the backend's threads call libvirt,
 * never beside them: here the reads are the reader thread's (as for any
 * driver outside the process) and a write of what the policy learned is the
 * worker's, with cycles going on around both. It used to be set again at
 * every cycle.
 */
static void libvirts_error_handler_is_not_set_beside_the_threads(void **state)
{
        virDomainPtr dom = define_dynamic("bk-threads", 1048576, 0, 0, 524288);
        struct backend *b = backend_open();
        struct lv_backend *lb = b->priv;
        struct vm vm = {0};

        (void)state;
        snprintf(vm.name, sizeof(vm.name), "bk-threads");
        lb->reads_inline = false;
        threads_of = lb;
        error_func_sets_beside_threads = 0;
        /* listed, attached, and its job read (a write waits for that) by rounds of the reader */
        for (int i = 0; i < 200; i++) {
                if (listed(b, "bk-threads")) {
                        struct lv_domain *d = domain(b, "bk-threads");
                        if (d->attached && d->job_read_ms)
                                break;
                }
                event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(5000);
        }
        assert_non_null(lb->reader);
        assert_int_equal(b->ops->carry_learned(b, &vm, "{\"written_at_ms\":1}"), 0);
        carry_made(b, &vm);
        assert_non_null(lb->work);
        for (int i = 0; i < 5; i++) {
                take_inventory(b);
                event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
        }
        assert_int_equal(error_func_sets_beside_threads, 0);
        threads_of = NULL;
        /* the last round back, so that the reader is joined, not left to end on its own */
        for (int i = 0; i < 200 && lv_reader_busy(lb->reader); i++)
                event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK), usleep(5000);
        b->ops->destroy(b);
        undefine(dom);
}

/*
 * libvirt's figure is QEMU's, whose guest may be hostile: never counted
 * above what the domain's devices hold, never counted below dynmemd's own,
 * and one within a block or LV_CHECK_SLACK of it does not count.
 */
static void a_hostile_libvirt_figure_is_bounded(void **state)
{
        struct lv_domain *d = calloc(1, sizeof(*d));

        (void)state;
        assert_non_null(d);
        d->attached = true;
        qemu_mem_init(
            &d->mem,
            &(struct qemu_layout){
                .startup = 254 * MIB, .region = 258 * MIB, .block = 2 * MIB, .first = 2 * MIB},
            false);
        qemu_mem_readback(&d->mem, 254 * MIB, 0, 2 * MIB, mono_ms());
        assert_int_equal(lv_run_assigned(d), 256 * MIB);
        lv_run_take_libvirt_figure(d, 8ull << 30, mono_ms()); /* 8 TiB, in KiB */
        assert_true(d->check.differs);
        assert_int_equal(lv_run_assigned(d), 512 * MIB); /* its boot memory and whole device */
        lv_run_take_libvirt_figure(d, UINT64_MAX, mono_ms());
        assert_int_equal(lv_run_assigned(d), 512 * MIB);
        lv_run_take_libvirt_figure(d, 100 * 1024, mono_ms()); /* less than ours */
        assert_true(d->check.differs);
        assert_int_equal(lv_run_assigned(d), 256 * MIB);
        lv_run_take_libvirt_figure(d, 0, mono_ms());
        assert_int_equal(lv_run_assigned(d), 256 * MIB);
        lv_run_take_libvirt_figure(d, 258 * 1024, mono_ms()); /* QEMU's rounding: the same */
        assert_false(d->check.differs);
        assert_int_equal(lv_run_assigned(d), 256 * MIB);
        d->attached = false; /* detached: nothing taken */
        lv_run_take_libvirt_figure(d, 400 * 1024, mono_ms());
        assert_false(d->check.differs);
        free(d);
}

/* A refused connection names the group to give; other failures are left as libvirt says them. */
static void a_refused_user_is_told_the_group(void **state)
{
        const char *local = "qemu:///system";
        virError e = {.code = VIR_ERR_SYSTEM_ERROR, .domain = VIR_FROM_RPC, .int1 = EACCES};
        const char *h = lv_refusal_hint(local, &e);

        (void)state;
        /* as libvirt 9.0 says a socket of mode 0600 to another user: code 38, domain 7, int1 13 */
        assert_non_null(h);
        assert_non_null(strstr(h, "may not connect to libvirt's socket"));
        assert_non_null(strstr(h, "group libvirt"));
        assert_non_null(strstr(h, "SupplementaryGroups=kvm libvirt libvirt-qemu"));
        assert_non_null(strstr(h, "docs/libvirt.md"));
        e.int1 = EPERM;
        assert_non_null(lv_refusal_hint(local, &e));
        e.domain = VIR_FROM_REMOTE;
        assert_non_null(lv_refusal_hint(local, &e));
        /* libvirtd not running, or another system error: no hint */
        e.int1 = ENOENT;
        assert_null(lv_refusal_hint(local, &e));
        e.int1 = ECONNREFUSED;
        assert_null(lv_refusal_hint(local, &e));
        e = (virError){.code = VIR_ERR_SYSTEM_ERROR, .domain = VIR_FROM_QEMU, .int1 = EACCES};
        assert_null(lv_refusal_hint(local, &e));
        /* polkit and access control */
        static const int refusals[] = {VIR_ERR_AUTH_FAILED, VIR_ERR_AUTH_CANCELLED,
                                       VIR_ERR_AUTH_UNAVAILABLE, VIR_ERR_ACCESS_DENIED,
                                       VIR_ERR_OPERATION_DENIED};
        for (size_t i = 0; i < sizeof(refusals) / sizeof(refusals[0]); i++) {
                e = (virError){.code = refusals[i], .domain = VIR_FROM_REMOTE};
                h = lv_refusal_hint(local, &e);
                assert_non_null(h);
                assert_non_null(strstr(h, "libvirt refuses this user"));
                assert_non_null(strstr(h, "SupplementaryGroups=kvm libvirt libvirt-qemu"));
                /* a remote host's refusal is not this host's group to give */
                assert_null(lv_refusal_hint("qemu+ssh://b/system", &e));
        }
        e = (virError){.code = VIR_ERR_NO_CONNECT, .domain = VIR_FROM_REMOTE};
        assert_null(lv_refusal_hint(local, &e));
        assert_null(lv_refusal_hint(local, NULL));
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_connection_without_keepalive_is_used),
            cmocka_unit_test(a_refused_user_is_told_the_group),
            cmocka_unit_test(an_unreachable_libvirt_is_said_until_it_answers),
            cmocka_unit_test(a_domain_started_again_after_a_stop_is_not_destroyed),
            cmocka_unit_test(a_failed_forced_stop_is_logged),
            cmocka_unit_test(a_domain_defined_with_a_name_dynmem_cannot_use_is_said),
            cmocka_unit_test(guest_statistics_above_what_the_domain_may_hold_are_not_taken),
            cmocka_unit_test(a_balloon_size_above_the_domains_memory_is_not_taken),
            cmocka_unit_test(a_current_memory_above_the_domains_memory_is_not_taken),
            cmocka_unit_test(an_admitted_arrival_libvirt_never_makes_is_dropped),
            cmocka_unit_test(an_arrival_over_a_definition_here_has_the_arriving_settings),
            cmocka_unit_test(a_domain_shut_off_while_leaving_is_not_said_to_have_migrated),
            cmocka_unit_test(a_domain_whose_migration_ended_is_taken_off_at_once),
            cmocka_unit_test(a_domain_without_job_statistics_is_not_taken_for_an_arrival),
            cmocka_unit_test(a_reused_pid_gives_no_resident_memory),
            cmocka_unit_test(a_virtio_mem_size_not_in_whole_blocks_is_not_taken),
            cmocka_unit_test(
                a_domain_whose_xml_says_less_than_libvirts_figure_is_counted_at_libvirts),
            cmocka_unit_test(a_figure_libvirt_changed_without_an_event_is_read_again),
            cmocka_unit_test(a_hostile_libvirt_figure_is_bounded),
            cmocka_unit_test(what_the_policy_learned_is_carried_in_the_live_metadata),
            cmocka_unit_test(libvirts_error_handler_is_not_set_beside_the_threads),
        };
        int r;

        base = event_base_new();
        assert_non_null(base);
        assert_int_equal(libvirt_event_register(base), 0);
        conn = virConnectOpen("test:///default");
        assert_non_null(conn);
        r = cmocka_run_group_tests(tests, NULL, NULL);
        virConnectClose(conn);
        libvirt_event_flush();
        event_base_free(base);
        return r;
}
