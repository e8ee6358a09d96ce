/*
 * libvirt_edit: enable and disable, the two edits of a shut-off domain's
 * persistent XML. Enable adds dynmem's virtio-mem device (sized for the
 * maximum), what libvirt 9.0 needs beside it (<maxMemory slots>, a guest
 * NUMA cell), the agent channel, balloon statistics and the metadata that
 * records all of it; disable takes out exactly what the metadata says enable
 * added. As the QEMU backend's VMs, a domain boots with its first device
 * block plugged rather than as boot RAM (qemu_layout_from_settings): enable
 * moves one block from boot memory into the device and records it as
 * <first>; disable moves it back. See libvirt_xml.h and docs/libvirt.md.
 */
#include <errno.h>
#include <libxml/tree.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "libvirt_xml.h"
#include "libvirt_xml_int.h"
#include "units.h"

struct edit {
        xmlDocPtr doc;
        xmlNodePtr root, devices, cpu, numa, vmem, balloon;
        struct libvirt_xml_meta meta; /* what will be written */
        bool had_meta;
        uint64_t total, others; /* <memory>, and the memory devices that are not dynmem's */
        unsigned n_others;
        uint64_t old_region, old_first; /* dynmem's device, and the block it took from boot */
        bool foreign_vmem;              /* a virtio-mem device that is not dynmem's */
        char *err;
        size_t errlen;
};

static int fail(struct edit *e, int r, const char *why)
{
        snprintf(e->err, e->errlen, "%s", why);
        return r;
}

static xmlNodePtr child_or_add(xmlNodePtr parent, const char *name)
{
        xmlNodePtr n = lx_child(parent, name);

        return n ? n : lx_add(parent, name, NULL);
}

/*
 * The block enable took from boot memory: the metadata's <first>, read alone
 * when the rest of the metadata is bad (enabling again is how a user mends
 * it, and must not take a second block), and only when it fits the domain.
 */
static uint64_t survey_first(struct edit *e, xmlNodePtr meta)
{
        uint64_t first = e->had_meta ? e->meta.first_bytes : 0;

        for (xmlNodePtr n = xmlFirstElementChild(meta); n && !e->had_meta;
             n = xmlNextElementSibling(n))
                if (strcmp((const char *)n->name, "first") == 0 && lx_size(n, 1, &first) < 0)
                        first = 0;
        if (!e->vmem || first > e->old_region || first > e->total - e->others - e->old_region)
                return 0;
        return first;
}

/* Read what enable and disable both look at. */
static int survey(struct edit *e)
{
        uint64_t size;
        char why[200];

        e->root = xmlDocGetRootElement(e->doc);
        e->devices = lx_child(e->root, "devices");
        e->cpu = lx_child(e->root, "cpu");
        e->numa = lx_child(e->cpu, "numa");
        e->vmem = lx_vmem_node(e->devices);
        e->balloon = lx_child(e->devices, "memballoon");
        if (!lx_child(e->root, "name"))
                return fail(e, -EINVAL, "domain XML without a name");
        if (lx_size(lx_child(e->root, "memory"), KIB, &e->total) < 0 || e->total == 0)
                return fail(e, -EINVAL, "bad or missing <memory>");
        for (xmlNodePtr m = lx_child(e->devices, "memory"); m; m = lx_next(m, "memory")) {
                if (lx_device_size(m, &size) < 0 || size > SETTINGS_SIZE_MAX)
                        return fail(e, -EINVAL, "a memory device has a bad size");
                if (m == e->vmem) {
                        e->old_region = size;
                        continue;
                }
                e->foreign_vmem |= lx_attr_is(m, "model", "virtio-mem");
                e->others += size;
                e->n_others++;
        }
        if (e->others + e->old_region >= e->total)
                return fail(e, -EINVAL, "its memory devices take all of <memory>");
        unsigned newer = lx_meta_newer(e->root);
        if (newer) {
                /* a newer dynmem's metadata may mean what this one would undo wrongly */
                snprintf(e->err, e->errlen,
                         "its dynmem metadata is of version %u, written by a newer dynmem (this "
                         "one reads version %d); it is left as it is",
                         newer, LIBVIRT_XML_NS_VERSION);
                return -EPERM;
        }
        xmlNodePtr meta = lx_meta_node(e->root);
        if (meta && lx_meta_read(e->doc, meta, &e->meta, why, sizeof(why)) == 0)
                e->had_meta = true;
        e->old_first = meta ? survey_first(e, meta) : 0;
        return 0;
}

/* Enable and disable edit a definition, never a running domain's XML. */
static int survey_definition(struct edit *e)
{
        if (xmlHasProp(xmlDocGetRootElement(e->doc), (const xmlChar *)"id"))
                return fail(e, -EPERM, "this is a running domain's XML");
        return survey(e);
}

/* ---- enable ---- */

static int check_request(struct edit *e, const struct libvirt_xml_request *req, uint64_t startup,
                         struct vm_settings *ret)
{
        struct vm_settings s = {
            .dynamic = true,
            .startup_bytes = startup,
            .minimum_bytes = req->minimum_bytes,
            .maximum_bytes = req->maximum_bytes,
            .buffer_percent = req->buffer_percent,
            .weight = req->weight,
            .block_bytes = req->block_bytes ? req->block_bytes : SETTINGS_BLOCK_DEFAULT,
            .lend = req->lend,
        };

        if (settings_check(&s, e->err, e->errlen) < 0)
                return -EINVAL;
        if (startup % MIB)
                return fail(e, -EINVAL, "startup must be a whole number of MiB");
        if (s.maximum_bytes - startup > SETTINGS_SIZE_MAX - e->others - startup)
                return fail(e, -EINVAL, "maximum too large");
        *ret = s;
        return 0;
}

static int ensure_balloon(struct edit *e)
{
        if (e->balloon && lx_attr_is(e->balloon, "model", "none"))
                return fail(e, -EPERM,
                            "its <memballoon model='none'> cannot shrink it below startup; set "
                            "model='virtio' (virsh edit) and enable it again");
        if (!e->balloon) {
                e->balloon = lx_add(e->devices, "memballoon", NULL);
                xmlSetProp(e->balloon, (const xmlChar *)"model", (const xmlChar *)"virtio");
                e->meta.added |= LIBVIRT_XML_ADDED_BALLOON;
        }
        if (!lx_child(e->balloon, "stats")) {
                char period[16];
                xmlNodePtr stats = xmlNewNode(NULL, (const xmlChar *)"stats");
                snprintf(period, sizeof(period), "%d", LIBVIRT_XML_STATS_S);
                xmlSetProp(stats, (const xmlChar *)"period", (const xmlChar *)period);
                /* <stats> goes first: libvirt's schema wants it before <address> */
                if (e->balloon->children)
                        xmlAddPrevSibling(e->balloon->children, stats);
                else
                        xmlAddChild(e->balloon, stats);
                e->meta.added |= LIBVIRT_XML_ADDED_STATS;
        }
        /* As the QEMU backend's balloon: it gives pages back to a guest about to OOM, and
         * the guest reports the pages it freed (the host drops them). */
        if (!xmlHasProp(e->balloon, (const xmlChar *)"autodeflate")) {
                xmlSetProp(e->balloon, (const xmlChar *)"autodeflate", (const xmlChar *)"on");
                e->meta.added |= LIBVIRT_XML_ADDED_DEFLATE;
        }
        if (!xmlHasProp(e->balloon, (const xmlChar *)"freePageReporting")) {
                xmlSetProp(e->balloon, (const xmlChar *)"freePageReporting", (const xmlChar *)"on");
                e->meta.added |= LIBVIRT_XML_ADDED_REPORTING;
        }
        return 0;
}

static void ensure_channel(struct edit *e)
{
        bool controller = false;

        for (xmlNodePtr c = lx_child(e->devices, "controller"); c; c = lx_next(c, "controller"))
                controller |= lx_attr_is(c, "type", "virtio-serial");
        if (lx_agent_channel(e->devices))
                return;
        xmlNodePtr ch = lx_add(e->devices, "channel", NULL);
        xmlSetProp(ch, (const xmlChar *)"type", (const xmlChar *)"unix");
        xmlSetProp(lx_add(ch, "source", NULL), (const xmlChar *)"mode", (const xmlChar *)"bind");
        xmlNodePtr t = lx_add(ch, "target", NULL);
        xmlSetProp(t, (const xmlChar *)"type", (const xmlChar *)"virtio");
        xmlSetProp(t, (const xmlChar *)"name", (const xmlChar *)LIBVIRT_XML_AGENT_PORT);
        e->meta.added |= LIBVIRT_XML_ADDED_CHANNEL;
        if (!controller)
                e->meta.added |= LIBVIRT_XML_ADDED_CONTROLLER;
}

static unsigned vcpus(struct edit *e)
{
        char text[16];
        uint64_t n = 1;

        if (lx_text(lx_child(e->root, "vcpu"), text, sizeof(text)) < 0 ||
            lx_uint(text, 4096, &n) < 0 || n == 0)
                n = 1;
        return (unsigned)n;
}

/* A NUMA cell for the device, of boot memory: the first one there is, or one added for all vCPUs.
 */
static int ensure_numa(struct edit *e, uint64_t boot, bool boot_changed, char *node, size_t len)
{
        xmlNodePtr cell = lx_child(e->numa, "cell");
        char kib[32], cpus[32];
        unsigned n = vcpus(e);

        snprintf(kib, sizeof(kib), "%llu", (unsigned long long)(boot / KIB));
        if (cell) {
                xmlChar *id = xmlGetNoNsProp(cell, (const xmlChar *)"id");
                snprintf(node, len, "%s", id ? (const char *)id : "0");
                xmlFree(id);
                if (!boot_changed)
                        return 0;
                if (lx_next(cell, "cell"))
                        return fail(e, -EPERM,
                                    "startup cannot change on a domain with several NUMA cells "
                                    "(change them with virsh edit)");
                xmlSetProp(cell, (const xmlChar *)"memory", (const xmlChar *)kib);
                xmlSetProp(cell, (const xmlChar *)"unit", (const xmlChar *)"KiB");
                return 0;
        }
        if (!e->cpu) {
                e->cpu = lx_add(e->root, "cpu", NULL);
                e->meta.added |= LIBVIRT_XML_ADDED_CPU;
        }
        if (!e->numa) {
                e->numa = lx_add(e->cpu, "numa", NULL);
                e->meta.added |= LIBVIRT_XML_ADDED_NUMA;
        }
        if (n == 1)
                snprintf(cpus, sizeof(cpus), "0");
        else
                snprintf(cpus, sizeof(cpus), "0-%u", n - 1);
        cell = lx_add(e->numa, "cell", NULL);
        xmlSetProp(cell, (const xmlChar *)"id", (const xmlChar *)"0");
        xmlSetProp(cell, (const xmlChar *)"cpus", (const xmlChar *)cpus);
        xmlSetProp(cell, (const xmlChar *)"memory", (const xmlChar *)kib);
        xmlSetProp(cell, (const xmlChar *)"unit", (const xmlChar *)"KiB");
        snprintf(node, len, "0");
        return 0;
}

/* <maxMemory> at least total, with a slot for every memory device. */
static int ensure_max(struct edit *e, uint64_t total)
{
        xmlNodePtr max = lx_child(e->root, "maxMemory");
        unsigned need_slots = e->n_others + 1;
        uint64_t have = 0, slots = 0;
        char text[16];

        if (!max) {
                max = xmlNewNode(NULL, (const xmlChar *)"maxMemory");
                xmlAddPrevSibling(lx_child(e->root, "memory"), max);
                e->meta.added |= LIBVIRT_XML_ADDED_MAXMEMORY;
        } else {
                xmlChar *s = xmlGetNoNsProp(max, (const xmlChar *)"slots");
                int r = s ? lx_uint((const char *)s, 255, &slots) : -EINVAL;
                xmlFree(s);
                if (r < 0 || lx_size(max, KIB, &have) < 0)
                        return fail(e, -EINVAL, "bad <maxMemory>");
                if (have >= total && slots >= need_slots)
                        return 0;
                if (!(e->meta.added & LIBVIRT_XML_ADDED_MAXMEMORY) && !e->meta.max_was_known) {
                        e->meta.max_was_known = true;
                        e->meta.max_was_bytes = have;
                        e->meta.max_was_slots = (unsigned)slots;
                }
        }
        if (slots > need_slots)
                need_slots = (unsigned)slots;
        snprintf(text, sizeof(text), "%u", need_slots);
        xmlSetProp(max, (const xmlChar *)"slots", (const xmlChar *)text);
        lx_set_kib(max, have > total ? have : total);
        return 0;
}

static void set_vmem(struct edit *e, uint64_t size, uint64_t block, uint64_t first,
                     const char *node)
{
        xmlNodePtr t;

        if (!e->vmem) {
                e->vmem = lx_add(e->devices, "memory", NULL);
                t = lx_add(e->vmem, "target", NULL);
                xmlSetProp(lx_add(e->vmem, "alias", NULL), (const xmlChar *)"name",
                           (const xmlChar *)LIBVIRT_XML_VMEM_ALIAS);
        }
        /* dynmem's device (its alias) is virtio-mem, whatever a hand edit made of it */
        xmlSetProp(e->vmem, (const xmlChar *)"model", (const xmlChar *)"virtio-mem");
        t = child_or_add(e->vmem, "target");
        lx_set_kib(child_or_add(t, "size"), size);
        xmlNodeSetContent(child_or_add(t, "node"), (const xmlChar *)node);
        lx_set_kib(child_or_add(t, "block"), block);
        lx_set_kib(child_or_add(t, "requested"), first);
        lx_drop(lx_child(t, "current"));
}

/* The namespace on an element and every element under it (a newer dynmem's nest). */
static void set_ns(xmlNodePtr node, xmlNsPtr ns)
{
        xmlSetNs(node, ns);
        for (xmlNodePtr n = node->children; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE)
                        set_ns(n, ns);
}

static int write_meta(struct edit *e)
{
        xmlNodePtr md = child_or_add(e->root, "metadata"), old;
        char *text = libvirt_xml_meta_format(&e->meta);
        xmlDocPtr doc;

        while ((old = lx_meta_node(e->root)))
                lx_drop(old);
        if (!text)
                return fail(e, -ENOMEM, "out of memory");
        doc = xmlReadMemory(text, (int)strlen(text), "meta.xml", NULL, XML_PARSE_NONET);
        free(text);
        if (!doc)
                return fail(e, -ENOMEM, "out of memory");
        xmlNodePtr node = xmlDocCopyNode(xmlDocGetRootElement(doc), e->doc, 1);
        xmlFreeDoc(doc);
        if (!node)
                return fail(e, -ENOMEM, "out of memory");
        xmlNsPtr ns =
            xmlNewNs(node, (const xmlChar *)LIBVIRT_XML_NS, (const xmlChar *)LIBVIRT_XML_NS_PREFIX);
        set_ns(node, ns);
        xmlAddChild(md, node);
        return 0;
}

/*
 * The first device block is plugged at boot rather than boot RAM as in the
 * QEMU backend (settings_first_block), on a domain with at most one NUMA cell
 * (boot memory is that cell's).
 */
static uint64_t first_block(struct edit *e, const struct vm_settings *s)
{
        xmlNodePtr cell = lx_child(e->numa, "cell");

        return cell && lx_next(cell, "cell") ? 0 : settings_first_block(s);
}

static int apply_enable(struct edit *e, const struct libvirt_xml_request *req)
{
        uint64_t old_boot = e->total - e->others - e->old_region;
        uint64_t startup = old_boot + e->old_first;
        bool startup_changed = req->startup_bytes && req->startup_bytes != startup;
        struct vm_settings s;
        char node[16] = "0";
        int r;

        if (startup_changed)
                startup = req->startup_bytes;
        if (e->foreign_vmem)
                return fail(e, -EPERM,
                            "it has a virtio-mem device of its own; dynmem adds and drives its "
                            "own (remove the other one first)");
        if ((r = check_request(e, req, startup, &s)) < 0 || (r = ensure_balloon(e)) < 0)
                return r;
        uint64_t region = s.maximum_bytes - startup, first = first_block(e, &s);
        uint64_t device =
            first ? size_round_up(region + first, SETTINGS_GUEST_MEMORY_BLOCK) : region;
        uint64_t boot = startup - first, total = boot + e->others + device;
        /* a cell there is follows boot memory even when no device is left */
        if ((region > 0 || lx_child(e->numa, "cell")) &&
            (r = ensure_numa(e, boot, boot != old_boot, node, sizeof(node))) < 0)
                return r;
        if (region > 0 && (r = ensure_max(e, total)) < 0)
                return r;
        if (region > 0) {
                set_vmem(e, device, s.block_bytes, first, node);
        } else if (e->vmem) {
                lx_drop(e->vmem);
                e->vmem = NULL;
        }
        lx_set_kib(lx_child(e->root, "memory"), total);
        xmlNodePtr cur = lx_child(e->root, "currentMemory");
        uint64_t current = 0;
        if (cur && (lx_size(cur, KIB, &current) < 0 || current > total || startup_changed))
                lx_set_kib(cur, startup);
        ensure_channel(e);
        e->meta.minimum_bytes = s.minimum_bytes;
        e->meta.maximum_bytes = s.maximum_bytes;
        e->meta.buffer_percent = s.buffer_percent;
        e->meta.weight = s.weight;
        e->meta.lend = s.lend;
        e->meta.first_bytes = first;
        return write_meta(e);
}

static int finish(struct edit *e, int r, char **ret_xml)
{
        if (r == 0) {
                *ret_xml = lx_dump(e->doc);
                if (!*ret_xml)
                        r = fail(e, -ENOMEM, "out of memory");
        }
        xmlFreeDoc(e->doc);
        return r;
}

int libvirt_xml_enable(const char *xml, size_t len, const struct libvirt_xml_request *req,
                       char **ret_xml, char *err, size_t errlen)
{
        struct edit e = {.err = err, .errlen = errlen};
        int r;

        if (!(e.doc = lx_read(xml, len, err, errlen)))
                return -EINVAL;
        r = survey_definition(&e);
        if (r == 0 && !e.had_meta)
                e.meta = (struct libvirt_xml_meta){0};
        if (r == 0 && !e.devices)
                e.devices = lx_add(e.root, "devices", NULL);
        return finish(&e, r < 0 ? r : apply_enable(&e, req), ret_xml);
}

/* ---- disable ---- */

static bool virtio_serial_used(struct edit *e)
{
        for (xmlNodePtr c = lx_child(e->devices, "channel"); c; c = lx_next(c, "channel"))
                if (lx_attr_is(lx_child(c, "target"), "type", "virtio"))
                        return true;
        for (xmlNodePtr c = lx_child(e->devices, "console"); c; c = lx_next(c, "console"))
                if (lx_attr_is(lx_child(c, "target"), "type", "virtio"))
                        return true;
        return false;
}

static void restore_max(struct edit *e)
{
        xmlNodePtr max = lx_child(e->root, "maxMemory");
        unsigned added = e->had_meta ? e->meta.added : 0;
        char slots[16];

        if (!max)
                return;
        if ((added & LIBVIRT_XML_ADDED_MAXMEMORY) && e->n_others == 0) {
                lx_drop(max);
        } else if (e->had_meta && e->meta.max_was_known) {
                snprintf(slots, sizeof(slots), "%u", e->meta.max_was_slots);
                xmlSetProp(max, (const xmlChar *)"slots", (const xmlChar *)slots);
                lx_set_kib(max, e->meta.max_was_bytes);
        }
}

/* The block enable took out of boot memory goes back into it (and into its NUMA cell). */
static void restore_first(struct edit *e)
{
        xmlNodePtr cell = lx_child(e->numa, "cell");
        uint64_t size;

        if (e->old_first && lx_cell_size(cell, &size) == 0 && !lx_next(cell, "cell") &&
            size <= SETTINGS_SIZE_MAX - e->old_first) {
                char kib[32];
                snprintf(kib, sizeof(kib), "%llu",
                         (unsigned long long)((size + e->old_first) / KIB));
                xmlSetProp(cell, (const xmlChar *)"memory", (const xmlChar *)kib);
                xmlSetProp(cell, (const xmlChar *)"unit", (const xmlChar *)"KiB");
        }
}

static void apply_disable(struct edit *e)
{
        unsigned added = e->had_meta ? e->meta.added : 0;
        uint64_t total = e->total - e->old_region + e->old_first, current = 0;
        xmlNodePtr cur = lx_child(e->root, "currentMemory");

        restore_first(e);
        lx_drop(e->vmem);
        lx_set_kib(lx_child(e->root, "memory"), total);
        if (cur && (lx_size(cur, KIB, &current) < 0 || current > total))
                lx_set_kib(cur, total);
        restore_max(e);
        if ((added & LIBVIRT_XML_ADDED_CPU) && e->n_others == 0)
                lx_drop(e->cpu);
        else if ((added & LIBVIRT_XML_ADDED_NUMA) && e->n_others == 0)
                lx_drop(e->numa);
        if (added & LIBVIRT_XML_ADDED_BALLOON) {
                lx_drop(e->balloon);
        } else if (e->balloon) {
                if (added & LIBVIRT_XML_ADDED_STATS)
                        lx_drop(lx_child(e->balloon, "stats"));
                if (added & LIBVIRT_XML_ADDED_DEFLATE)
                        xmlUnsetProp(e->balloon, (const xmlChar *)"autodeflate");
                if (added & LIBVIRT_XML_ADDED_REPORTING)
                        xmlUnsetProp(e->balloon, (const xmlChar *)"freePageReporting");
        }
        if (added & LIBVIRT_XML_ADDED_CHANNEL)
                lx_drop(lx_agent_channel(e->devices));
        if ((added & LIBVIRT_XML_ADDED_CONTROLLER) && !virtio_serial_used(e)) {
                xmlNodePtr c = lx_child(e->devices, "controller"), next;
                for (; c; c = next) {
                        next = lx_next(c, "controller");
                        if (lx_attr_is(c, "type", "virtio-serial"))
                                lx_drop(c);
                }
        }
        xmlNodePtr meta;
        while ((meta = lx_meta_node(e->root)))
                lx_drop(meta);
        xmlNodePtr md = lx_child(e->root, "metadata");
        if (md && !xmlFirstElementChild(md))
                lx_drop(md);
}

int libvirt_xml_disable(const char *xml, size_t len, char **ret_xml, char *err, size_t errlen)
{
        struct edit e = {.err = err, .errlen = errlen};
        int r;

        if (!(e.doc = lx_read(xml, len, err, errlen)))
                return -EINVAL;
        r = survey_definition(&e);
        if (r == 0 && !e.vmem && !lx_meta_node(e.root))
                r = fail(&e, -ENOENT, "it is not dynamic (no dynmem metadata or device)");
        if (r == 0)
                apply_disable(&e);
        return finish(&e, r, ret_xml);
}
