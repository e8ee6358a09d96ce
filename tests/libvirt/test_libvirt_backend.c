/*
 * Tests for the libvirt backend through its interface (libvirt_backend_ops)
 * against libvirt's in-process test driver (test:///default): connecting,
 * listing. No libvirtd, no guests.
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

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(a_connection_without_keepalive_is_used),
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
