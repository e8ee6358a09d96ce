/*
 * libvirt_xml_fuzz: libFuzzer target for the libvirt backend's XML
 * (backend/libvirt_xml.c, libvirt_edit.c): a domain's XML as libvirt returns
 * it, with dynmem metadata anyone allowed to `virsh metadata` may have
 * written. The input is parsed; when it reads, its settings are checked,
 * and it is made dynamic and static again. What enable writes must read
 * back as dynamic with good metadata, and what disable writes must read as
 * static; the live device's XML with a new <requested> must still be a
 * device. Nothing may crash or leak (ASan).
 *
 * Build and run: fuzz/run.sh libvirt_xml SECONDS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "libvirt_xml.h"
#include "units.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond))                                                                       \
                        abort();                                                                   \
        } while (0)

static const struct libvirt_xml_request request = {
    .minimum_bytes = 64 * MIB,
    .maximum_bytes = 4 * GIB,
    .buffer_percent = 20,
    .weight = 5000,
    .lend = true,
};

static void round_trip(const char *xml, size_t len)
{
        char err[256], *on = NULL, *off = NULL;
        struct libvirt_xml_domain d;

        if (libvirt_xml_enable(xml, len, &request, &on, err, sizeof(err)) != 0)
                return;
        CHECK(libvirt_xml_parse(on, strlen(on), &d, err, sizeof(err)) == 0);
        CHECK(d.meta_state == LIBVIRT_XML_META_OK);
        CHECK(d.meta.maximum_bytes == request.maximum_bytes);
        CHECK(d.meta.lend == request.lend);
        libvirt_xml_domain_free(&d);
        if (libvirt_xml_disable(on, strlen(on), &off, err, sizeof(err)) == 0) {
                CHECK(libvirt_xml_parse(off, strlen(off), &d, err, sizeof(err)) == 0);
                CHECK(d.meta_state == LIBVIRT_XML_META_NONE && !d.vmem);
                libvirt_xml_domain_free(&d);
        }
        free(on);
        free(off);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char *xml = malloc(size + 1), err[256];
        struct libvirt_xml_domain d;
        struct vm_settings s;

        if (!xml)
                return 0;
        memcpy(xml, data, size);
        xml[size] = '\0';
        if (size && libvirt_xml_parse(xml, size, &d, err, sizeof(err)) == 0) {
                if (libvirt_xml_settings(&d, &s, err, sizeof(err)) == 0)
                        CHECK(s.minimum_bytes <= s.startup_bytes &&
                              s.startup_bytes <= s.maximum_bytes);
                if (d.vmem_xml) {
                        char *upd = libvirt_xml_vmem_requested(d.vmem_xml, 64 * MIB);
                        free(upd);
                }
                libvirt_xml_domain_free(&d);
                round_trip(xml, size);
        }
        free(xml);
        return 0;
}
