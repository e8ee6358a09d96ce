/*
 * Tests for libvirt_xml and libvirt_edit: reading domains and dynmem's
 * metadata, enable and disable as pure functions on XML strings, on many
 * shapes of domain (libvirt's own output, hand-written XML, odd and hostile
 * XML). Disable after enable must give back the domain as it was.
 */
#include <errno.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "libvirt_xml.h"
#include "units.h"

/* What libvirt 9.0 writes for a small TCG domain (virsh dumpxml --inactive). */
static const char *const plain =
    "<domain type='qemu'>\n"
    "  <name>web</name>\n"
    "  <uuid>d6460e07-1a8a-4660-b782-24e173f01146</uuid>\n"
    "  <memory unit='KiB'>262144</memory>\n"
    "  <currentMemory unit='KiB'>262144</currentMemory>\n"
    "  <vcpu placement='static'>2</vcpu>\n"
    "  <os>\n"
    "    <type arch='x86_64' machine='pc-i440fx-7.2'>hvm</type>\n"
    "    <kernel>/tmp/vmlinuz</kernel>\n"
    "  </os>\n"
    "  <cpu mode='custom' match='exact' check='none'>\n"
    "    <model fallback='forbid'>qemu64</model>\n"
    "  </cpu>\n"
    "  <on_poweroff>destroy</on_poweroff>\n"
    "  <devices>\n"
    "    <emulator>/usr/bin/qemu-system-x86_64</emulator>\n"
    "    <controller type='pci' index='0' model='pci-root'/>\n"
    "    <memballoon model='virtio'>\n"
    "      <address type='pci' domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>\n"
    "    </memballoon>\n"
    "  </devices>\n"
    "</domain>\n";

static const struct libvirt_xml_request req_1g = {
    .minimum_bytes = 128 * MIB,
    .maximum_bytes = 1 * GIB,
    .buffer_percent = 25,
    .weight = 7000,
    .lend = true,
};

/* The document re-serialised by libxml2 without blanks: two XMLs compare equal as trees. */
static char *canonical(const char *xml)
{
        xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), "x.xml", NULL, XML_PARSE_NOBLANKS);
        xmlChar *mem = NULL;
        int size = 0;
        char *out;

        assert_non_null(doc);
        xmlDocDumpFormatMemory(doc, &mem, &size, 1);
        out = strdup((const char *)mem);
        xmlFree(mem);
        xmlFreeDoc(doc);
        return out;
}

static void assert_same_xml(const char *a, const char *b)
{
        char *ca = canonical(a), *cb = canonical(b);

        if (strcmp(ca, cb) != 0)
                fail_msg("XML differs:\n--- expected\n%s\n--- got\n%s", ca, cb);
        free(ca);
        free(cb);
}

/*
 * How often needle occurs in s (without overlaps). Not inlined: GCC 12 at -O3 takes a string
 * that enable() returned through its local `out` for a pointer to that local (a false
 * -Wdangling-pointer that breaks the release build).
 */
__attribute__((noinline)) static int occurrences(const char *s, const char *needle)
{
        int n = 0;

        for (const char *p = strstr(s, needle); p; p = strstr(p + strlen(needle), needle))
                n++;
        return n;
}

static char *enable(const char *xml, const struct libvirt_xml_request *req)
{
        char err[256] = "", *out = NULL;
        int r = libvirt_xml_enable(xml, strlen(xml), req, &out, err, sizeof(err));

        if (r != 0)
                fail_msg("enable failed: %d %s", r, err);
        return out;
}

static char *disable(const char *xml)
{
        char err[256] = "", *out = NULL;
        int r = libvirt_xml_disable(xml, strlen(xml), &out, err, sizeof(err));

        if (r != 0)
                fail_msg("disable failed: %d %s", r, err);
        return out;
}

static void parse_ok(const char *xml, struct libvirt_xml_domain *d)
{
        char err[256] = "";

        if (libvirt_xml_parse(xml, strlen(xml), d, err, sizeof(err)) != 0)
                fail_msg("parse failed: %s", err);
}

static int enable_fails(const char *xml, const struct libvirt_xml_request *req, const char *needle)
{
        char err[256] = "", *out = NULL;
        int r = libvirt_xml_enable(xml, strlen(xml), req, &out, err, sizeof(err));

        assert_true(r < 0);
        assert_null(out);
        if (needle && !strstr(err, needle))
                fail_msg("expected \"%s\" in \"%s\"", needle, err);
        return r;
}

/* plain with `from` replaced by `to` (once). */
static char *variant(const char *base, const char *from, const char *to)
{
        const char *at = strstr(base, from);
        char *out;

        assert_non_null(at);
        out = malloc(strlen(base) - strlen(from) + strlen(to) + 1);
        memcpy(out, base, (size_t)(at - base));
        strcpy(out + (at - base), to);
        strcat(out, at + strlen(from));
        return out;
}

/* ---- reading ---- */

/*
 * A round trip through enable (req_1g) and disable: round_trip_enable()
 * enables `mine` (which the round trip then owns) and reads the result into
 * t->x and t->d; round_trip_disable() checks that disabling t->x gives `mine`
 * back, and frees it all.
 */
struct round_trip {
        char *mine, *x;
        struct libvirt_xml_domain d;
};

static void round_trip_enable(struct round_trip *t, char *mine)
{
        t->mine = mine;
        t->x = enable(mine, &req_1g);
        parse_ok(t->x, &t->d);
}

static void round_trip_disable(struct round_trip *t)
{
        char *y = disable(t->x);

        assert_same_xml(t->mine, y);
        libvirt_xml_domain_free(&t->d);
        free(t->mine);
        free(t->x);
        free(y);
}

static void reads_a_static_domain(void **state)
{
        struct libvirt_xml_domain d;
        struct vm_settings s;
        char err[128];

        parse_ok(plain, &d);
        assert_string_equal(d.name, "web");
        assert_string_equal(d.uuid, "d6460e07-1a8a-4660-b782-24e173f01146");
        assert_false(d.live);
        assert_int_equal(d.id, -1);
        assert_int_equal(d.total_bytes, 256 * MIB);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        assert_true(d.balloon);
        assert_int_equal(d.stats_period, 0);
        assert_false(d.vmem);
        assert_false(d.agent_channel);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_NONE);
        assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), -EINVAL);
        libvirt_xml_domain_free(&d);
}

static void enable_adds_what_libvirt_9_needs(void **state)
{
        char *x = enable(plain, &req_1g), err[128];
        struct libvirt_xml_domain d;
        struct vm_settings s;

        parse_ok(x, &d);
        assert_true(d.vmem);
        /*
         * As the QEMU backend's VMs: the first block is plugged at boot rather than boot RAM
         * (254 MiB boot memory, requested 2 MiB), and the device, 768 + 2 MiB, is made larger
         * to the next 128 MiB.
         */
        assert_int_equal(d.vmem_size, 896 * MIB);
        assert_int_equal(d.vmem_block, 2 * MIB);
        assert_int_equal(d.vmem_requested, 2 * MIB);
        assert_int_equal(d.total_bytes, 254 * MIB + 896 * MIB);
        assert_int_equal(d.boot_bytes, 254 * MIB);
        assert_int_equal(d.first_bytes, 2 * MIB);
        assert_int_equal(d.meta.first_bytes, 2 * MIB);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        assert_int_equal(d.current_bytes, 256 * MIB);
        assert_true(d.agent_channel);
        assert_int_equal(d.stats_period, LIBVIRT_XML_STATS_S);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_int_equal(d.meta.added, LIBVIRT_XML_ADDED_MAXMEMORY | LIBVIRT_XML_ADDED_NUMA |
                                           LIBVIRT_XML_ADDED_STATS | LIBVIRT_XML_ADDED_CHANNEL |
                                           LIBVIRT_XML_ADDED_CONTROLLER |
                                           LIBVIRT_XML_ADDED_DEFLATE | LIBVIRT_XML_ADDED_REPORTING);
        assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), 0);
        assert_true(s.dynamic);
        assert_int_equal(s.startup_bytes, 256 * MIB);
        assert_int_equal(s.minimum_bytes, 128 * MIB);
        assert_int_equal(s.maximum_bytes, 1 * GIB);
        assert_int_equal(s.buffer_percent, 25);
        assert_int_equal(s.weight, 7000);
        assert_int_equal(s.block_bytes, 2 * MIB);
        assert_true(s.lend);
        assert_null(strstr(x, "lend")); /* the default is not written */
        assert_non_null(strstr(x, "<maxMemory slots=\"1\" unit=\"KiB\">1177600</maxMemory>"));
        assert_non_null(strstr(x, "<cell id=\"0\" cpus=\"0-1\" memory=\"260096\" unit=\"KiB\"/>"));
        assert_non_null(strstr(x, "<requested unit=\"KiB\">2048</requested>"));
        assert_non_null(strstr(x, "<dynmem:first unit=\"bytes\">2097152</dynmem:first>"));
        assert_non_null(strstr(x, "<node>0</node>"));
        assert_non_null(strstr(x, "<alias name=\"" LIBVIRT_XML_VMEM_ALIAS "\"/>"));
        assert_non_null(strstr(x, "xmlns:dynmem=\"" LIBVIRT_XML_NS "\""));
        /* <stats> before the balloon's <address>, as libvirt's schema has it */
        assert_true(strstr(x, "<stats period=\"1\"/>") < strstr(x, "slot=\"0x02\""));
        assert_non_null(strstr(x, "autodeflate=\"on\""));
        assert_non_null(strstr(x, "freePageReporting=\"on\""));
        libvirt_xml_domain_free(&d);
        free(x);
}

static void disable_gives_the_domain_back(void **state)
{
        char *x = enable(plain, &req_1g), *y = disable(x);

        assert_same_xml(plain, y);
        free(x);
        free(y);
}

static void disable_removes_the_controller_libvirt_added_for_the_channel(void **state)
{
        char *x = enable(plain, &req_1g);
        /* what virDomainDefineXML adds for a virtio channel */
        char *defined = variant(x, "<memballoon",
                                "<controller type=\"virtio-serial\" index=\"0\"/><memballoon");
        char *y = disable(defined);

        assert_same_xml(plain, y);
        free(x);
        free(defined);
        free(y);
}

static void a_users_own_channel_and_controller_stay(void **state)
{
        char *mine = variant(plain, "<memballoon",
                             "<controller type='virtio-serial' index='0'/>"
                             "<channel type='unix'><source mode='bind'/>"
                             "<target type='virtio' name='org.qemu.guest_agent.0'/></channel>"
                             "<memballoon");
        struct round_trip t;

        round_trip_enable(&t, mine);
        assert_false(t.d.meta.added & LIBVIRT_XML_ADDED_CONTROLLER);
        assert_true(t.d.meta.added & LIBVIRT_XML_ADDED_CHANNEL);
        round_trip_disable(&t);
}

static void an_existing_agent_channel_is_used_and_kept(void **state)
{
        char *mine = variant(plain, "<memballoon",
                             "<channel type='unix'><source mode='bind'/>"
                             "<target type='virtio' name='org.dynmem.agent.0'/></channel>"
                             "<memballoon");
        struct round_trip t;

        round_trip_enable(&t, mine);
        assert_false(t.d.meta.added & LIBVIRT_XML_ADDED_CHANNEL);
        assert_int_equal(occurrences(t.x, "org.dynmem.agent.0"), 1);
        round_trip_disable(&t);
}

static void existing_numa_cells_are_used_not_added(void **state)
{
        char *mine = variant(plain, "<model fallback='forbid'>qemu64</model>",
                             "<model fallback='forbid'>qemu64</model><numa>"
                             "<cell id='3' cpus='0-1' memory='262144' unit='KiB'/></numa>");
        struct round_trip t;

        round_trip_enable(&t, mine);
        assert_false(t.d.meta.added & (LIBVIRT_XML_ADDED_NUMA | LIBVIRT_XML_ADDED_CPU));
        assert_non_null(strstr(t.x, "<node>3</node>"));
        /* the cell is boot memory: the first block moved into the device, and back on disable */
        assert_non_null(
            strstr(t.x, "<cell id=\"3\" cpus=\"0-1\" memory=\"260096\" unit=\"KiB\"/>"));
        assert_int_equal(t.d.first_bytes, 2 * MIB);
        assert_int_equal(t.d.startup_bytes, 256 * MIB);
        round_trip_disable(&t);
}

static void a_domain_without_cpu_gets_one_and_loses_it(void **state)
{
        char *mine = variant(plain,
                             "<cpu mode='custom' match='exact' check='none'>\n"
                             "    <model fallback='forbid'>qemu64</model>\n  </cpu>",
                             "");
        struct round_trip t;

        round_trip_enable(&t, mine);
        assert_true(t.d.meta.added & LIBVIRT_XML_ADDED_CPU);
        round_trip_disable(&t);
}

static void a_small_maxmemory_is_raised_and_restored(void **state)
{
        char *mine = variant(plain, "<memory unit='KiB'>262144</memory>",
                             "<maxMemory slots='1' unit='KiB'>524288</maxMemory>"
                             "<memory unit='KiB'>262144</memory>");
        struct round_trip t;

        round_trip_enable(&t, mine);
        assert_false(t.d.meta.added & LIBVIRT_XML_ADDED_MAXMEMORY);
        assert_true(t.d.meta.max_was_known);
        assert_int_equal(t.d.meta.max_was_bytes, 512 * MIB);
        assert_non_null(strstr(t.x, ">1177600</maxMemory>"));
        round_trip_disable(&t);
}

static void a_large_maxmemory_is_left_alone(void **state)
{
        char *mine = variant(plain, "<memory unit='KiB'>262144</memory>",
                             "<maxMemory slots='4' unit='GiB'>8</maxMemory>"
                             "<memory unit='KiB'>262144</memory>");
        struct round_trip t;

        round_trip_enable(&t, mine);
        assert_false(t.d.meta.max_was_known);
        assert_non_null(strstr(t.x, "<maxMemory slots=\"4\" unit=\"GiB\">8</maxMemory>"));
        round_trip_disable(&t);
}

static void dimms_count_in_slots_and_startup(void **state)
{
        char *mine = variant(plain, "<memory unit='KiB'>262144</memory>",
                             "<maxMemory slots='2' unit='KiB'>1048576</maxMemory><memory "
                             "unit='KiB'>393216</memory>");
        char *mine2 = variant(mine, "<memballoon",
                              "<memory model='dimm'><target><size unit='KiB'>131072</size>"
                              "<node>0</node></target></memory><memballoon");
        char *mine3 = variant(mine2, "<model fallback='forbid'>qemu64</model>",
                              "<model fallback='forbid'>qemu64</model><numa>"
                              "<cell id='0' cpus='0-1' memory='262144' unit='KiB'/></numa>");
        struct libvirt_xml_domain d;
        char *x, *y;

        parse_ok(mine3, &d);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        libvirt_xml_domain_free(&d);
        x = enable(mine3, &req_1g);
        parse_ok(x, &d);
        assert_int_equal(d.total_bytes, 254 * MIB + 896 * MIB + 128 * MIB);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        assert_int_equal(d.boot_bytes, 254 * MIB);
        assert_int_equal(d.vmem_size, 896 * MIB);
        assert_non_null(strstr(x, "<maxMemory slots=\"2\" unit=\"KiB\">1308672</maxMemory>"));
        assert_non_null(strstr(x, "memory=\"260096\""));
        y = disable(x);
        assert_same_xml(mine3, y);
        libvirt_xml_domain_free(&d);
        free(mine);
        free(mine2);
        free(mine3);
        free(x);
        free(y);
}

static void enabling_again_resizes_and_keeps_the_record(void **state)
{
        struct libvirt_xml_request more = req_1g;
        struct libvirt_xml_domain d;
        char *x, *x2, *y;

        more.maximum_bytes = 2 * GIB;
        more.weight = 100;
        x = enable(plain, &req_1g);
        x2 = enable(x, &more);
        parse_ok(x2, &d);
        assert_int_equal(d.vmem_size, 1920 * MIB); /* 1792 + 2 MiB, to the next 128 MiB */
        assert_int_equal(d.total_bytes, 254 * MIB + 1920 * MIB);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        assert_int_equal(d.first_bytes, 2 * MIB);
        assert_int_equal(d.meta.weight, 100);
        assert_int_equal(d.meta.added, LIBVIRT_XML_ADDED_MAXMEMORY | LIBVIRT_XML_ADDED_NUMA |
                                           LIBVIRT_XML_ADDED_STATS | LIBVIRT_XML_ADDED_CHANNEL |
                                           LIBVIRT_XML_ADDED_CONTROLLER |
                                           LIBVIRT_XML_ADDED_DEFLATE | LIBVIRT_XML_ADDED_REPORTING);
        assert_non_null(strstr(x2, ">2226176</maxMemory>"));
        /* one device, one channel, one metadata element */
        assert_int_equal(occurrences(x2, LIBVIRT_XML_VMEM_ALIAS), 1);
        assert_int_equal(occurrences(x2, "<dynmem:memory"), 1);
        y = disable(x2);
        assert_same_xml(plain, y);
        libvirt_xml_domain_free(&d);
        free(x);
        free(x2);
        free(y);
}

/* lend = no is kept in the metadata, survives enabling again, and is gone when on again. */
static void lend_off_is_kept_in_the_metadata(void **state)
{
        struct libvirt_xml_request off = req_1g;
        struct libvirt_xml_domain d;
        struct vm_settings s;
        char *x, *x2, *x3, *y, err[128];

        off.lend = false;
        x = enable(plain, &off);
        assert_non_null(strstr(x, "<dynmem:lend>no</dynmem:lend>"));
        parse_ok(x, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_false(d.meta.lend);
        assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), 0);
        assert_false(s.lend);
        libvirt_xml_domain_free(&d);

        /* enabling again with other settings: still off; then on again: the element goes */
        off.weight = 100;
        x2 = enable(x, &off);
        assert_int_equal(occurrences(x2, "<dynmem:lend>"), 1);
        x3 = enable(x2, &req_1g);
        assert_null(strstr(x3, "lend"));
        parse_ok(x3, &d);
        assert_true(d.meta.lend);
        libvirt_xml_domain_free(&d);
        y = disable(x);
        assert_same_xml(plain, y);
        free(x);
        free(x2);
        free(x3);
        free(y);
}

static void startup_can_change_while_off(void **state)
{
        struct libvirt_xml_request r = req_1g;
        struct libvirt_xml_domain d;
        char *x, *x2;

        x = enable(plain, &req_1g);
        r.startup_bytes = 512 * MIB;
        x2 = enable(x, &r);
        parse_ok(x2, &d);
        assert_int_equal(d.startup_bytes, 512 * MIB);
        assert_int_equal(d.boot_bytes, 510 * MIB);
        assert_int_equal(d.current_bytes, 512 * MIB);
        assert_int_equal(d.vmem_size, 640 * MIB);
        assert_non_null(strstr(x2, "memory=\"522240\""));
        libvirt_xml_domain_free(&d);
        free(x);
        free(x2);
}

static void maximum_equal_to_startup_needs_no_device(void **state)
{
        struct libvirt_xml_request r = req_1g;
        struct libvirt_xml_domain d;
        char *x, *y;

        r.maximum_bytes = 256 * MIB;
        x = enable(plain, &r);
        parse_ok(x, &d);
        assert_false(d.vmem);
        assert_int_equal(d.first_bytes, 0);
        assert_null(strstr(x, "dynmem:first"));
        assert_null(strstr(x, "maxMemory"));
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        y = disable(x);
        assert_same_xml(plain, y);
        libvirt_xml_domain_free(&d);
        free(x);
        free(y);
}

static void a_startup_of_one_block_gets_no_first_block(void **state)
{
        struct libvirt_xml_request r = req_1g;
        struct libvirt_xml_layout l;
        struct round_trip t;

        r.block_bytes = 256 * MIB; /* startup is one block: boot RAM cannot give one up */
        r.minimum_bytes = 256 * MIB;
        t.mine = strdup(plain);
        t.x = enable(plain, &r);
        parse_ok(t.x, &t.d);
        assert_int_equal(t.d.first_bytes, 0);
        assert_int_equal(t.d.meta.first_bytes, 0);
        assert_null(strstr(t.x, "dynmem:first"));
        assert_int_equal(t.d.vmem_size, 768 * MIB);
        assert_int_equal(t.d.vmem_requested, 0);
        assert_int_equal(t.d.boot_bytes, 256 * MIB);
        assert_int_equal(t.d.startup_bytes, 256 * MIB);
        assert_non_null(strstr(t.x, "memory=\"262144\""));
        libvirt_xml_layout(&t.d, &l);
        assert_int_equal(l.first, 0);
        assert_int_equal(l.boot, 256 * MIB);
        assert_int_equal(l.region, 768 * MIB);
        round_trip_disable(&t);
}

/* A startup of exactly two blocks: one is boot memory, one the first block; enabling again keeps
 * it. */
static void a_startup_of_two_blocks_gives_one_up(void **state)
{
        struct libvirt_xml_request r = req_1g;
        struct round_trip t;
        char *x2;
        struct libvirt_xml_domain d;

        r.block_bytes = 128 * MIB;
        t.mine = strdup(plain);
        t.x = enable(plain, &r);
        parse_ok(t.x, &t.d);
        assert_int_equal(t.d.first_bytes, 128 * MIB);
        assert_int_equal(t.d.boot_bytes, 128 * MIB);
        assert_int_equal(t.d.startup_bytes, 256 * MIB);
        assert_int_equal(t.d.vmem_size, 896 * MIB); /* 768 + 128 MiB: whole guest blocks already */
        x2 = enable(t.x, &r);
        parse_ok(x2, &d);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        assert_int_equal(d.boot_bytes, 128 * MIB);
        libvirt_xml_domain_free(&d);
        free(x2);
        round_trip_disable(&t);
}

/* What an older dynmem's enable wrote for plain and req_1g: no first block, no <first>. */
static char *enabled_without_first_block(void)
{
        static const char *const changes[][2] = {
            {"<dynmem:first unit=\"bytes\">2097152</dynmem:first>", ""},
            {"memory=\"260096\"", "memory=\"262144\""},
            {"<size unit=\"KiB\">917504</size>", "<size unit=\"KiB\">786432</size>"},
            {"<requested unit=\"KiB\">2048</requested>", "<requested unit=\"KiB\">0</requested>"},
            {"<memory unit=\"KiB\">1177600</memory>", "<memory unit=\"KiB\">1048576</memory>"},
            {">1177600</maxMemory>", ">1048576</maxMemory>"},
        };
        char *x = enable(plain, &req_1g);

        for (size_t i = 0; i < sizeof(changes) / sizeof(changes[0]); i++) {
                char *next = variant(x, changes[i][0], changes[i][1]);
                free(x);
                x = next;
        }
        return x;
}

static void a_domain_enabled_without_a_first_block_keeps_its_layout(void **state)
{
        char *old = enabled_without_first_block(), *y, *x2, *y2, err[128];
        struct libvirt_xml_domain d;
        struct libvirt_xml_layout l;
        struct vm_settings s;

        parse_ok(old, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_int_equal(d.first_bytes, 0);
        assert_int_equal(d.boot_bytes, 256 * MIB);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), 0);
        assert_int_equal(s.startup_bytes, 256 * MIB);
        assert_int_equal(s.maximum_bytes, 1 * GIB);
        assert_true(s.lend); /* written before the lend setting: may borrow */
        libvirt_xml_layout(&d, &l);
        assert_int_equal(l.boot, 256 * MIB);
        assert_int_equal(l.first, 0);
        assert_int_equal(l.region, 768 * MIB);
        libvirt_xml_domain_free(&d);
        /* disable gives it back as before; enabling it again moves to the first-block layout */
        y = disable(old);
        assert_same_xml(plain, y);
        x2 = enable(old, &req_1g);
        parse_ok(x2, &d);
        assert_int_equal(d.first_bytes, 2 * MIB);
        assert_int_equal(d.boot_bytes, 254 * MIB);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        assert_int_equal(d.vmem_size, 896 * MIB);
        assert_non_null(strstr(x2, "memory=\"260096\""));
        y2 = disable(x2);
        assert_same_xml(plain, y2);
        libvirt_xml_domain_free(&d);
        free(old);
        free(y);
        free(x2);
        free(y2);
}

static void a_missing_balloon_is_added_and_removed(void **state)
{
        char *mine = variant(plain,
                             "<memballoon model='virtio'>\n      <address type='pci' "
                             "domain='0x0000' bus='0x00' slot='0x02' function='0x0'/>\n    "
                             "</memballoon>",
                             "");
        struct round_trip t;

        round_trip_enable(&t, mine);
        assert_true(t.d.balloon);
        assert_true(t.d.meta.added & LIBVIRT_XML_ADDED_BALLOON);
        round_trip_disable(&t);
}

/* ---- refusals ---- */

static void enable_refuses_settings_against_the_rules(void **state)
{
        struct libvirt_xml_request r = req_1g;

        r.maximum_bytes = 128 * MIB; /* below startup */
        enable_fails(plain, &r, "maximum");
        r = req_1g;
        r.minimum_bytes = 512 * MIB; /* above startup */
        enable_fails(plain, &r, "minimum");
        r = req_1g;
        r.weight = 10001;
        enable_fails(plain, &r, "weight");
        r = req_1g;
        r.block_bytes = 3 * MIB;
        enable_fails(plain, &r, NULL);
        r = req_1g;
        r.maximum_bytes = 1 * GIB + 1; /* not a whole block */
        enable_fails(plain, &r, NULL);
}

static void enable_refuses_what_it_cannot_drive(void **state)
{
        char *none = variant(plain, "<memballoon model='virtio'>", "<memballoon model='none'>");
        char *live = variant(plain, "<domain type='qemu'>", "<domain type='qemu' id='3'>");
        char *vmem = variant(plain, "<memballoon",
                             "<memory model='virtio-mem'><target><size unit='KiB'>131072</size>"
                             "<node>0</node><block unit='KiB'>2048</block></target></memory>"
                             "<memballoon");

        assert_int_equal(enable_fails(none, &req_1g, "memballoon model='none'"), -EPERM);
        assert_int_equal(enable_fails(live, &req_1g, "running"), -EPERM);
        assert_int_equal(enable_fails(vmem, &req_1g, "virtio-mem device of its own"), -EPERM);
        free(none);
        free(live);
        free(vmem);
}

static void disable_refuses_a_static_domain(void **state)
{
        char err[128] = "", *out = NULL;

        assert_int_equal(libvirt_xml_disable(plain, strlen(plain), &out, err, sizeof(err)),
                         -ENOENT);
        assert_null(out);
        assert_non_null(strstr(err, "not dynamic"));
}

static void disable_refuses_a_running_domain(void **state)
{
        char *live = variant(plain, "<domain type='qemu'>", "<domain type='qemu' id='3'>");
        char err[128] = "", *out = NULL;

        assert_int_equal(libvirt_xml_disable(live, strlen(live), &out, err, sizeof(err)), -EPERM);
        assert_null(out);
        assert_non_null(strstr(err, "running"));
        free(live);
}

static void hostile_xml_is_refused(void **state)
{
        static const char *const bad[] = {
            "",
            "<",
            "not xml at all",
            "<domain>",
            "<vm><name>x</name><memory>1</memory></vm>",
            "<domain><memory>262144</memory></domain>",             /* no name */
            "<domain><name>x</name></domain>",                      /* no memory */
            "<domain><name>x</name><memory>-5</memory></domain>",   /* negative */
            "<domain><name>x</name><memory>0x10</memory></domain>", /* not decimal */
            "<domain><name>x</name><memory unit='parsecs'>5</memory></domain>",
            "<domain><name>x</name><memory>99999999999999999999999</memory></domain>",
            "<domain><name>x</name><memory unit='TiB'>17</memory></domain>", /* over 16 TiB */
            "<domain><name>x</name><memory>1 2</memory></domain>",
            "<!DOCTYPE domain [<!ENTITY x SYSTEM 'file:///etc/passwd'>]>"
            "<domain><name>&x;</name><memory>1024</memory></domain>",
            "<!DOCTYPE d [<!ENTITY a 'aaaaaaaaaa'><!ENTITY b '&a;&a;&a;&a;&a;&a;&a;'>]>"
            "<domain><name>&b;</name><memory>1024</memory></domain>",
            "<domain><name>x</name><memory>1024</memory><devices><memory model='dimm'><target>"
            "<size unit='KiB'>2048</size></target></memory></devices></domain>", /* devices>all */
            "<domain><name>0123456789012345678901234567890123456789012345678901234567890123456789"
            "</name><memory>1024</memory></domain>",
            "<x:domain xmlns:x='urn:x'><name>x</name><memory>1024</memory></x:domain>",
        };
        struct libvirt_xml_domain d;
        char err[256], *out;

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                size_t len = strlen(bad[i]);
                err[0] = '\0';
                if (libvirt_xml_parse(bad[i], len, &d, err, sizeof(err)) == 0)
                        fail_msg("parse accepted case %zu: %s", i, bad[i]);
                assert_true(err[0] != '\0');
                out = NULL;
                assert_true(libvirt_xml_enable(bad[i], len, &req_1g, &out, err, sizeof(err)) < 0);
                assert_null(out);
                assert_true(libvirt_xml_disable(bad[i], len, &out, err, sizeof(err)) < 0);
                assert_null(out);
        }
        assert_int_equal(libvirt_xml_parse(plain, LIBVIRT_XML_MAX + 1, &d, err, sizeof(err)),
                         -EINVAL);
}

/* ---- metadata written by hand ---- */

static char *with_meta(const char *body)
{
        char *meta, *out;

        assert_true(asprintf(&meta,
                             "<metadata><dm:memory xmlns:dm='" LIBVIRT_XML_NS "'>%s</dm:memory>"
                             "</metadata></domain>",
                             body) > 0);
        out = variant(plain, "</domain>", meta);
        free(meta);
        return out;
}

/*
 * libvirt writes each element dynmem reads or edits once: a domain with a
 * second one (<metadata>, <devices>, ...) would be read by one step and
 * edited by another, so it is refused (found by the fuzz target: dynmem's
 * metadata in a second <metadata> stayed after disable).
 */
static void a_domain_with_an_element_twice_is_refused(void **state)
{
        static const char *const twice[] = {"metadata", "devices", "memory", "name"};
        char *x = enable(plain, &req_1g), err[256], needle[96];
        struct libvirt_xml_domain d;

        for (size_t i = 0; i < sizeof(twice) / sizeof(twice[0]); i++) {
                char *extra;
                assert_true(asprintf(&extra, "<%s/></domain>", twice[i]) > 0);
                char *bad = variant(x, "</domain>", extra);
                free(extra);
                snprintf(needle, sizeof(needle), "more than one <%s>", twice[i]);
                assert_int_equal(libvirt_xml_parse(bad, strlen(bad), &d, err, sizeof(err)),
                                 -EINVAL);
                if (!strstr(err, needle))
                        fail_msg("expected \"%s\" in \"%s\"", needle, err);
                enable_fails(bad, &req_1g, needle);
                free(bad);
        }
        free(x);
}

static void bad_metadata_is_reported_for_that_domain(void **state)
{
        static const struct {
                const char *body, *why;
        } cases[] = {
            {"<dm:maximum unit='bytes'>1073741824</dm:maximum>", "lacks <minimum>"},
            {"<dm:minimum unit='bytes'>1</dm:minimum>", "lacks <maximum>"},
            {"<dm:minimum>1</dm:minimum><dm:minimum>2</dm:minimum><dm:maximum>3</dm:maximum>",
             "twice"},
            /* an element it does not know is ignored (metadata_a_newer_dynmem_added_to_...),
             * but not one it knows that is wrong */
            {"<dm:minimum>1</dm:minimum><dm:maximum>3</dm:maximum><dm:color>red</dm:color>"
             "<dm:buffer>x</dm:buffer>",
             "<buffer>"},
            {"<dm:minimum>1</dm:minimum><dm:maximum>3</dm:maximum><dm:weight>10001</dm:weight>",
             "<weight>"},
            {"<dm:minimum>1</dm:minimum><dm:maximum>3</dm:maximum><dm:buffer>4</dm:buffer>",
             "<buffer>"},
            {"<dm:minimum>1</dm:minimum><dm:maximum>3</dm:maximum><dm:weight>-1</dm:weight>",
             "<weight>"},
            {"<dm:minimum unit='furlongs'>1</dm:minimum><dm:maximum>3</dm:maximum>",
             "<minimum>'s unit is not one of libvirt's (bytes, KiB, MiB, GiB, TiB"},
            /* the size as dynmem's command line takes it, not as libvirt writes one */
            {"<dm:minimum>256M</dm:minimum><dm:maximum>3</dm:maximum>",
             "<minimum> is not a size: a whole number of bytes, or of its unit attribute's unit "
             "(unit=\"MiB\")"},
            {"<dm:minimum>1</dm:minimum><dm:maximum>99999999999999999999</dm:maximum>",
             "<maximum>"},
            {"<dm:minimum>1</dm:minimum><dm:maximum>3</dm:maximum><dm:added>rm -rf</dm:added>",
             "<added>"},
            {"<dm:minimum>1</dm:minimum><dm:maximum>3</dm:maximum><dm:max-was>5</dm:max-was>",
             "slots"},
            {"<dm:minimum>1</dm:minimum><dm:maximum>3</dm:maximum><dm:lend>maybe</dm:lend>",
             "<lend> is not yes/no, on/off, true/false or 1/0"},
            {"<dm:minimum>1</dm:minimum><dm:maximum>3</dm:maximum><dm:lend/>", "<lend>"},
            {"<dm:minimum>1</dm:minimum><dm:maximum>3</dm:maximum><dm:lend>no</dm:lend>"
             "<dm:lend>no</dm:lend>",
             "<lend> given twice"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                char *x = with_meta(cases[i].body);
                struct libvirt_xml_domain d;
                struct vm_settings s;
                char err[256];

                parse_ok(x, &d); /* the domain is read; its metadata is bad */
                assert_int_equal(d.meta_state, LIBVIRT_XML_META_BAD);
                if (!strstr(d.meta_error, cases[i].why))
                        fail_msg("case %zu: expected \"%s\" in \"%s\"", i, cases[i].why,
                                 d.meta_error);
                assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), -EINVAL);
                libvirt_xml_domain_free(&d);
                free(x);
        }
}

static void good_metadata_that_breaks_the_rules_is_refused(void **state)
{
        /* readable, but minimum above startup, and maximum beyond what the domain holds */
        char *x = with_meta("<dm:minimum unit='MiB'>512</dm:minimum><dm:maximum "
                            "unit='GiB'>1</dm:maximum>");
        char *y = with_meta("<dm:minimum unit='MiB'>128</dm:minimum><dm:maximum "
                            "unit='GiB'>4</dm:maximum>");
        struct libvirt_xml_domain d;
        struct vm_settings s;
        char err[256];

        parse_ok(x, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "minimum"));
        libvirt_xml_domain_free(&d);
        /* dynmem set refuses bad metadata: what to run is enable, which sizes the device */
        parse_ok(y, &d);
        assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "maximum 4 GiB is more than the domain can hold (256 MiB, no "
                                 "virtio-mem device); dynmem enable with --maximum, while the "
                                 "domain is shut off, adds one");
        libvirt_xml_domain_free(&d);
        free(x);
        free(y);

        /* a domain enabled for 1 GiB whose maximum was raised by hand */
        struct libvirt_xml_request req = req_1g;
        char *e = enable(plain, &req), *raised;
        raised = variant(e, "<dynmem:maximum unit=\"bytes\">1073741824<",
                         "<dynmem:maximum unit=\"GiB\">4<");
        parse_ok(raised, &d);
        assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "with its virtio-mem device); dynmem enable with --maximum, "
                                    "while the domain is shut off, makes the device larger"));
        assert_null(strstr(err, "dynmem set"));
        libvirt_xml_domain_free(&d);
        free(e);
        free(raised);
}

static void metadata_of_other_namespaces_is_ignored(void **state)
{
        char *x = variant(plain, "</domain>",
                          "<metadata><o:memory xmlns:o='urn:other'><o:minimum>1</o:minimum>"
                          "</o:memory></metadata></domain>");
        struct libvirt_xml_domain d;

        parse_ok(x, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_NONE);
        libvirt_xml_domain_free(&d);
        free(x);
}

/* The metadata formatted with unknown elements of its own (<z/>) filling `length` characters. */
static char *format_with_filler(const struct libvirt_xml_meta *m, size_t length)
{
        struct libvirt_xml_meta big = *m;

        big.unknown[0] = '\0';
        while (strlen(big.unknown) + 5 < length)
                strcat(big.unknown, "<z/>");
        return libvirt_xml_meta_format(&big);
}

/*
 * Within version 1 a newer dynmem may add elements (and attributes): this one
 * uses what it knows, names the rest, and writes the elements and attributes
 * back as they were whenever it writes the metadata (new settings, enabling
 * again).
 */
static void metadata_a_newer_dynmem_added_to_is_used_and_kept(void **state)
{
        struct libvirt_xml_request off = req_1g;
        struct libvirt_xml_domain d, d2;
        char *x, *x2, *meta, *added, *with;

        off.lend = false;
        x = enable(plain, &off);
        added =
            variant(x, "</dynmem:memory>",
                    "<dynmem:color shade='dark'>red<dynmem:tone>warm</dynmem:tone></dynmem:color>"
                    "<dynmem:later/></dynmem:memory>");
        with = variant(added, "<dynmem:lend>", "<dynmem:lend since='2'>");
        free(added);
        parse_ok(with, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_false(d.meta.lend);
        assert_int_equal(d.meta.weight, 7000);
        assert_string_equal(d.meta.ignored, "<lend since=...>, <color>, <later>");
        assert_string_equal(d.meta.unknown,
                            "<color shade=\"dark\">red<tone>warm</tone></color><later/>");

        /* new settings of a running domain: the element libvirt is given keeps them */
        meta = libvirt_xml_meta_format(&d.meta);
        assert_non_null(strstr(meta, "<lend since=\"2\">no</lend><color shade=\"dark\">red"
                                     "<tone>warm</tone></color><later/></memory>"));
        free(meta);

        /* unless the whole would be too large to be read again: then they go */
        meta = format_with_filler(&d.meta, 3000);
        assert_null(strstr(meta, "<z/>"));
        assert_non_null(strstr(meta, "<lend>no</lend></memory>"));
        free(meta);

        /* enabling again (a shut-off domain's new settings): the same */
        x2 = enable(with, &off);
        parse_ok(x2, &d2);
        assert_string_equal(d2.meta.unknown, d.meta.unknown);
        assert_string_equal(d2.meta.ignored, "<lend since=...>, <color>, <later>");
        assert_int_equal(occurrences(x2, "<dynmem:color shade=\"dark\">red<dynmem:tone>warm"), 1);
        assert_int_equal(occurrences(x2, "<dynmem:lend since=\"2\">no</dynmem:lend>"), 1);
        libvirt_xml_domain_free(&d);
        libvirt_xml_domain_free(&d2);
        free(x);
        free(x2);
        free(with);

        /* today's metadata names nothing */
        x = enable(plain, &req_1g);
        parse_ok(x, &d);
        assert_string_equal(d.meta.ignored, "");
        assert_string_equal(d.meta.unknown, "");
        libvirt_xml_domain_free(&d);
        free(x);
}

/*
 * Attributes a newer dynmem put on the elements this one knows are kept on
 * those elements, with their values as they were (escaped again), whatever the
 * element: the metadata element itself, a size beside its unit, <lend> when on
 * (written then, as "yes", to carry them). Attributes in a namespace are not
 * dynmem's (it writes none): named, not kept.
 */
static void unknown_attributes_on_known_elements_are_kept(void **state)
{
        struct libvirt_xml_domain d, d2;
        char *x = enable(plain, &req_1g), *a, *b, *c, *meta, *x2;

        a = variant(x, "<dynmem:memory xmlns:dynmem=\"urn:dynmem:domain:1\">",
                    "<dynmem:memory xmlns:dynmem=\"urn:dynmem:domain:1\" xmlns:o=\"urn:other\" "
                    "rev=\"3\">");
        b = variant(a, "<dynmem:weight>",
                    "<dynmem:weight note='a&amp;b &quot;q&quot; &lt;&gt;&#10;' o:note='other' "
                    "o:unit='x'>");
        c = variant(b, "<dynmem:minimum unit=\"bytes\">",
                    "<dynmem:minimum unit=\"bytes\" step=\"2M\">");
        free(a);
        a = variant(c, "</dynmem:memory>",
                    "<dynmem:lend mode=\"cache\">yes</dynmem:lend>"
                    "</dynmem:memory>");
        parse_ok(a, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_true(d.meta.lend);
        assert_int_equal(d.meta.weight, 7000);
        assert_string_equal(d.meta.ignored,
                            "<memory rev=...>, <minimum step=...>, <weight note=...>, "
                            "<weight o:note=...> (not kept), <weight o:unit=...> (not kept), "
                            "<lend mode=...>");

        meta = libvirt_xml_meta_format(&d.meta);
        assert_non_null(strstr(meta, "<memory rev=\"3\"><minimum unit=\"bytes\" step=\"2M\">"));
        assert_non_null(strstr(meta, "<weight note=\"a&amp;b &quot;q&quot; &lt;&gt;&#10;\">7000"
                                     "</weight>"));
        assert_non_null(strstr(meta, "<lend mode=\"cache\">yes</lend></memory>"));
        assert_null(strstr(meta, "other"));
        free(meta);

        /* written into the domain (enabling again) and read back: the same, once */
        x2 = enable(a, &req_1g);
        parse_ok(x2, &d2);
        assert_int_equal(occurrences(x2, "<dynmem:weight note=\"a&amp;b &quot;q&quot; "
                                         "&lt;&gt;&#10;\">7000</dynmem:weight>"),
                         1);
        assert_int_equal(occurrences(x2, " rev=\"3\""), 1);
        assert_int_equal(occurrences(x2, "<dynmem:lend mode=\"cache\">yes</dynmem:lend>"), 1);
        assert_true(d2.meta.lend);
        libvirt_xml_domain_free(&d2);
        free(x2);

        /* too large to be read again with them: they go, as unknown elements do */
        meta = format_with_filler(&d.meta, 3900);
        assert_null(strstr(meta, "rev="));
        assert_null(strstr(meta, "note="));
        assert_null(strstr(meta, "<lend"));
        free(meta);

        libvirt_xml_domain_free(&d);
        free(a);
        free(b);
        free(c);
        free(x);
}

/*
 * Metadata of a higher version (a newer namespace) may mean what this dynmem
 * would misread: the domain is not balanced, and neither enable nor disable
 * rewrites it; alone or beside version 1's.
 */
static void metadata_of_a_newer_version_leaves_the_domain_alone(void **state)
{
        static const char v2[] = "<dynmem2:memory xmlns:dynmem2='urn:dynmem:domain:2'>"
                                 "<dynmem2:range low='1' high='3'/></dynmem2:memory>";
        char *x = enable(plain, &req_1g), *meta, *empty, *alone, *beside, *out = NULL, err[256];
        struct libvirt_xml_domain d;
        struct vm_settings s;

        assert_true(asprintf(&meta, "<metadata>%s", v2) > 0);
        empty = variant(plain, "</domain>", "<metadata></metadata></domain>");
        alone = variant(empty, "<metadata>", meta);
        free(empty);
        beside = variant(x, "<metadata>", meta);
        const char *const cases[] = {alone, beside};
        for (size_t i = 0; i < 2; i++) {
                parse_ok(cases[i], &d);
                assert_int_equal(d.meta_state, LIBVIRT_XML_META_NEWER);
                assert_string_equal(d.meta_error,
                                    "version 2 (urn:dynmem:domain:2), written by a newer dynmem "
                                    "(this one reads version 1); the domain is left as it is");
                assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), -EINVAL);
                assert_string_equal(err, d.meta_error);
                libvirt_xml_domain_free(&d);
                enable_fails(cases[i], &req_1g,
                             "its dynmem metadata is of version 2, written by "
                             "a newer dynmem (this one reads version 1); it is "
                             "left as it is");
                assert_int_equal(
                    libvirt_xml_disable(cases[i], strlen(cases[i]), &out, err, sizeof(err)),
                    -EPERM);
                assert_null(out);
        }
        /* not a version: another namespace */
        free(beside);
        beside = variant(x, "<metadata>", "<metadata><o:m xmlns:o='urn:dynmem:domain:2b'/>");
        parse_ok(beside, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        libvirt_xml_domain_free(&d);
        free(beside);
        free(alone);
        free(meta);
        free(x);
}

/*
 * A domain as this dynmem defines it for metadata version 1
 * (tests/libvirt/fixtures/domain-v1.xml, never rewritten): every later
 * dynmem must read its settings and layout and disable it back to the
 * domain it was.
 */
static void a_domain_enabled_by_metadata_version_1_still_reads(void **state)
{
        FILE *f = fopen("tests/libvirt/fixtures/domain-v1.xml", "r");
        static char xml[16384];
        struct libvirt_xml_domain d;
        struct libvirt_xml_layout l;
        struct vm_settings s;
        char err[256] = "", *y;
        size_t n;

        assert_non_null(f);
        n = fread(xml, 1, sizeof(xml) - 1, f);
        fclose(f);
        xml[n] = '\0';
        parse_ok(xml, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_string_equal(d.meta.ignored, "");
        assert_true(d.meta.minimum_bytes == 128 * MIB && d.meta.maximum_bytes == GIB);
        assert_int_equal(d.meta.buffer_percent, 25);
        assert_int_equal(d.meta.weight, 7000);
        assert_false(d.meta.lend);
        assert_int_equal(d.meta.added, LIBVIRT_XML_ADDED_MAXMEMORY | LIBVIRT_XML_ADDED_NUMA |
                                           LIBVIRT_XML_ADDED_STATS | LIBVIRT_XML_ADDED_CHANNEL |
                                           LIBVIRT_XML_ADDED_CONTROLLER |
                                           LIBVIRT_XML_ADDED_DEFLATE | LIBVIRT_XML_ADDED_REPORTING);
        assert_true(d.first_bytes == 2 * MIB);
        assert_true(d.startup_bytes == 256 * MIB);
        assert_true(d.vmem && d.vmem_size == 896 * MIB && d.vmem_block == 2 * MIB);
        assert_true(d.agent_channel && d.balloon);
        assert_int_equal(d.stats_period, 1);
        if (libvirt_xml_settings(&d, &s, err, sizeof(err)) != 0)
                fail_msg("%s", err);
        assert_true(s.dynamic && !s.lend);
        assert_true(s.startup_bytes == 256 * MIB && s.minimum_bytes == 128 * MIB &&
                    s.maximum_bytes == GIB && s.block_bytes == 2 * MIB);
        libvirt_xml_layout(&d, &l);
        assert_true(l.boot == 254 * MIB && l.first == 2 * MIB && l.block == 2 * MIB);
        libvirt_xml_domain_free(&d);
        y = disable(xml);
        assert_same_xml(plain, y);
        free(y);
}

static void metadata_format_reads_back(void **state)
{
        struct libvirt_xml_meta m = {.minimum_bytes = 256 * MIB,
                                     .maximum_bytes = 4 * GIB,
                                     .buffer_percent = 30,
                                     .weight = 9000,
                                     .added = LIBVIRT_XML_ADDED_NUMA | LIBVIRT_XML_ADDED_CHANNEL,
                                     .max_was_known = true,
                                     .max_was_bytes = 2 * GIB,
                                     .max_was_slots = 3,
                                     .first_bytes = 0,
                                     .lend = false};
        char *body = libvirt_xml_meta_format(&m), *x, *inner;
        struct libvirt_xml_domain d;

        assert_non_null(body);
        /* libvirt stores it under its namespace: do the same by hand */
        assert_true(asprintf(&inner, "<metadata><memory xmlns='%s'%s</metadata></domain>",
                             LIBVIRT_XML_NS, body + strlen("<memory")) > 0);
        x = variant(plain, "</domain>", inner);
        parse_ok(x, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_int_equal(d.meta.minimum_bytes, m.minimum_bytes);
        assert_int_equal(d.meta.maximum_bytes, m.maximum_bytes);
        assert_int_equal(d.meta.buffer_percent, m.buffer_percent);
        assert_int_equal(d.meta.weight, m.weight);
        assert_int_equal(d.meta.added, m.added);
        assert_true(d.meta.max_was_known);
        assert_int_equal(d.meta.max_was_bytes, m.max_was_bytes);
        assert_int_equal(d.meta.max_was_slots, m.max_was_slots);
        assert_int_equal(d.meta.first_bytes, 0); /* written only when there is one */
        assert_null(strstr(body, "first"));
        assert_false(d.meta.lend);
        assert_non_null(strstr(body, "<lend>no</lend>"));
        libvirt_xml_domain_free(&d);
        free(body);
        free(inner);
        free(x);

        /* lend on, the default, is not written: such metadata reads as every older one */
        m.lend = true;
        body = libvirt_xml_meta_format(&m);
        assert_non_null(body);
        assert_null(strstr(body, "lend"));
        free(body);
        x = with_meta("<dm:minimum unit='MiB'>128</dm:minimum><dm:maximum "
                      "unit='MiB'>256</dm:maximum><dm:lend>yes</dm:lend>");
        parse_ok(x, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_true(d.meta.lend);
        libvirt_xml_domain_free(&d);
        free(x);
        x = with_meta("<dm:minimum unit='MiB'>128</dm:minimum><dm:maximum "
                      "unit='MiB'>256</dm:maximum>");
        parse_ok(x, &d);
        assert_true(d.meta.lend); /* absent: yes */
        libvirt_xml_domain_free(&d);
        free(x);
}

/* ---- the live XML ---- */

static const char *const live_tail =
    "<channel type='unix'><source mode='bind' "
    "path='/var/lib/libvirt/qemu/channel/target/domain-4-web/org.dynmem.agent.0'/>"
    "<target type='virtio' name='org.dynmem.agent.0' state='connected'/>"
    "<alias name='channel0'/></channel>"
    "<memory model='virtio-mem'><target><size unit='KiB'>786432</size><node>0</node>"
    "<block unit='KiB'>2048</block><requested unit='KiB'>524288</requested>"
    "<current unit='KiB'>262144</current></target><alias name='ua-dynmem-vmem'/>"
    "<address type='pci' domain='0x0000' bus='0x00' slot='0x04' function='0x0'/></memory>"
    "</devices>";

static void reads_the_live_xml(void **state)
{
        char *a = variant(plain, "<domain type='qemu'>", "<domain type='qemu' id='4'>");
        char *b = variant(a, "</devices>", live_tail);
        char *c =
            variant(b, "<memory unit='KiB'>262144</memory>", "<memory unit='KiB'>1048576</memory>");
        struct libvirt_xml_domain d;

        parse_ok(c, &d);
        assert_true(d.live);
        assert_int_equal(d.id, 4); /* the instance: a live XML read again is checked by it */
        assert_true(d.vmem);
        assert_int_equal(d.vmem_requested, 512 * MIB);
        assert_true(d.vmem_current_known);
        assert_int_equal(d.vmem_current, 256 * MIB);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        assert_string_equal(d.agent_path,
                            "/var/lib/libvirt/qemu/channel/target/domain-4-web/org.dynmem.agent.0");
        assert_non_null(d.vmem_xml);

        char *upd = libvirt_xml_vmem_requested(d.vmem_xml, 768 * MIB);
        assert_non_null(upd);
        assert_non_null(strstr(upd, "<requested unit=\"KiB\">786432</requested>"));
        assert_non_null(strstr(upd, "slot=\"0x04\""));
        assert_non_null(strstr(upd, LIBVIRT_XML_VMEM_ALIAS));
        char *back = variant(upd, "786432</requested>", "524288</requested>");
        assert_same_xml(d.vmem_xml, back);
        assert_null(libvirt_xml_vmem_requested("<memory", 0));
        assert_null(libvirt_xml_vmem_requested("<memory/>", 0));
        libvirt_xml_domain_free(&d);
        free(a);
        free(b);
        free(c);
        free(upd);
        free(back);

        /* an id that is not a number is no instance dynmem attached */
        static const char *const bad_ids[] = {"x", "-1", "99999999999", ""};
        for (size_t i = 0; i < sizeof(bad_ids) / sizeof(bad_ids[0]); i++) {
                char id[64];
                snprintf(id, sizeof(id), "<domain type='qemu' id='%s'>", bad_ids[i]);
                a = variant(plain, "<domain type='qemu'>", id);
                parse_ok(a, &d);
                assert_true(d.live);
                assert_int_equal(d.id, -1);
                libvirt_xml_domain_free(&d);
                free(a);
        }
}

/* A started domain enabled with a first block: boot memory, the block, and what it may plug. */
static void the_live_layout_counts_the_first_block(void **state)
{
        char *x = enable(plain, &req_1g);
        char *a = variant(x, "<domain type=\"qemu\">", "<domain type=\"qemu\" id=\"4\">");
        char *b = variant(a, "<requested unit=\"KiB\">2048</requested>",
                          "<requested unit=\"KiB\">2048</requested><current "
                          "unit=\"KiB\">2048</current>");
        struct libvirt_xml_domain d;
        struct libvirt_xml_layout l;

        parse_ok(b, &d);
        assert_true(d.live);
        assert_int_equal(d.vmem_current, 2 * MIB);
        libvirt_xml_layout(&d, &l);
        assert_int_equal(l.boot, 254 * MIB);
        assert_int_equal(l.first, 2 * MIB);
        assert_int_equal(l.block, 2 * MIB);
        /* maximum less boot memory: the device's last 126 MiB are never plugged */
        assert_int_equal(l.region, 770 * MIB);
        assert_int_equal(l.boot + l.region, 1 * GIB);
        libvirt_xml_domain_free(&d);
        free(x);
        free(a);
        free(b);
}

static void a_first_block_that_does_not_fit_is_bad_metadata(void **state)
{
        static const char *const firsts[] = {
            "<dynmem:first unit=\"bytes\">3145728</dynmem:first>",    /* not a block multiple */
            "<dynmem:first unit=\"bytes\">2147483648</dynmem:first>", /* beyond the device */
            "<dynmem:first unit=\"furlongs\">1</dynmem:first>",
        };
        char *x = enable(plain, &req_1g), *no_vmem, err[256];
        struct libvirt_xml_domain d;
        struct vm_settings s;

        for (size_t i = 0; i < sizeof(firsts) / sizeof(firsts[0]); i++) {
                char *bad =
                    variant(x, "<dynmem:first unit=\"bytes\">2097152</dynmem:first>", firsts[i]);
                parse_ok(bad, &d);
                assert_int_equal(d.meta_state, LIBVIRT_XML_META_BAD);
                assert_non_null(strstr(d.meta_error, "first"));
                assert_int_equal(d.first_bytes, 0);
                assert_int_equal(libvirt_xml_settings(&d, &s, err, sizeof(err)), -EINVAL);
                libvirt_xml_domain_free(&d);
                free(bad);
        }
        /* <first> without dynmem's device */
        no_vmem = with_meta("<dm:minimum unit='MiB'>128</dm:minimum><dm:maximum "
                            "unit='MiB'>256</dm:maximum><dm:first unit='MiB'>2</dm:first>");
        parse_ok(no_vmem, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_BAD);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        libvirt_xml_domain_free(&d);
        free(no_vmem);
        free(x);
}

/* Enabling again mends bad metadata; the block taken at the first enable is not taken twice. */
static void enabling_again_over_bad_metadata_keeps_the_startup(void **state)
{
        char *x = enable(plain, &req_1g);
        char *bad = variant(x, "<dynmem:weight>7000</dynmem:weight>",
                            "<dynmem:weight>70000</dynmem:weight>");
        char *x2, *y;
        struct libvirt_xml_domain d;

        parse_ok(bad, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_BAD);
        libvirt_xml_domain_free(&d);
        x2 = enable(bad, &req_1g);
        parse_ok(x2, &d);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_OK);
        assert_int_equal(d.startup_bytes, 256 * MIB);
        assert_int_equal(d.boot_bytes, 254 * MIB);
        assert_int_equal(d.first_bytes, 2 * MIB);
        libvirt_xml_domain_free(&d);
        /* disabling it with its metadata bad gives the block back too */
        y = disable(bad);
        parse_ok(y, &d);
        assert_int_equal(d.total_bytes, 256 * MIB);
        assert_false(d.vmem);
        assert_non_null(strstr(y, "<memory unit=\"KiB\">262144</memory>"));
        libvirt_xml_domain_free(&d);
        free(x);
        free(bad);
        free(x2);
        free(y);
}

/* Every prefix and many corrupted copies of a dynamic domain: never a crash or a leak. */
static void mangled_xml_never_crashes(void **state)
{
        char *x = enable(plain, &req_1g), err[256], *out;
        size_t len = strlen(x);
        unsigned seed = 12345;
        struct libvirt_xml_domain d;

        for (size_t cut = 0; cut < len; cut += 7) {
                if (libvirt_xml_parse(x, cut, &d, err, sizeof(err)) == 0)
                        libvirt_xml_domain_free(&d);
        }
        for (int round = 0; round < 400; round++) {
                char *m = strdup(x);
                for (int k = 0; k < 4; k++) {
                        seed = seed * 1103515245u + 12345u;
                        size_t at = (seed >> 8) % len;
                        seed = seed * 1103515245u + 12345u;
                        m[at] = "<>/='\"0 9aZ&;"[(seed >> 8) % 13];
                }
                if (libvirt_xml_parse(m, len, &d, err, sizeof(err)) == 0)
                        libvirt_xml_domain_free(&d);
                out = NULL;
                if (libvirt_xml_enable(m, len, &req_1g, &out, err, sizeof(err)) == 0)
                        free(out);
                out = NULL;
                if (libvirt_xml_disable(m, len, &out, err, sizeof(err)) == 0)
                        free(out);
                free(m);
        }
        free(x);
}

static void added_names_round_trip(void **state)
{
        char buf[160];

        assert_string_equal(libvirt_xml_added_format(0, buf, sizeof(buf)), "");
        assert_string_equal(
            libvirt_xml_added_format(LIBVIRT_XML_ADDED_MAXMEMORY | LIBVIRT_XML_ADDED_CONTROLLER,
                                     buf, sizeof(buf)),
            "maxMemory controller");
}

/* plain with text put into a <metadata> before </domain>. */
static char *plain_with_metadata(const char *text)
{
        const char *end = strstr(plain, "</domain>");
        char *xml = malloc(strlen(plain) + strlen(text) + 32);

        assert_non_null(end);
        assert_non_null(xml);
        sprintf(xml, "%.*s<metadata>%s</metadata>\n</domain>\n", (int)(end - plain), plain, text);
        return xml;
}

/*
 * The learned element's text is read back as it was written (escaped in the
 * element); one larger than LIBVIRT_XML_LEARNED_MAX is noted, not kept; an
 * element of another namespace, or a settings element, is not it, and it does
 * not make the domain's settings anything but absent.
 */
static void the_learned_element_round_trips(void **state)
{
        const char *text = "{\"written_at_ms\":1,\"policy\":{\"note\":\"<a & b>\"}}";
        char *element = libvirt_xml_learned_format(text), *xml, *big;
        char meta[LIBVIRT_XML_LEARNED_MAX + 200];
        struct libvirt_xml_domain d;
        char err[256];

        (void)state;
        assert_non_null(element);
        assert_null(strstr(element, "<a &")); /* escaped */
        /* as libvirt keeps it: the namespace on the element */
        snprintf(meta, sizeof(meta),
                 "<l:learned xmlns:l='" LIBVIRT_XML_LEARNED_NS "'>%s</l:learned>"
                 "<o:learned xmlns:o='urn:example:other'>not ours</o:learned>",
                 element + strlen("<learned>"));
        char *close = strstr(meta, "</learned></l:learned>");
        assert_non_null(close);
        memmove(close, close + strlen("</learned>"), strlen(close + strlen("</learned>")) + 1);
        xml = plain_with_metadata(meta);
        assert_int_equal(libvirt_xml_parse(xml, strlen(xml), &d, err, sizeof(err)), 0);
        assert_non_null(d.learned);
        assert_string_equal(d.learned, text);
        assert_false(d.learned_oversize);
        assert_int_equal(d.meta_state, LIBVIRT_XML_META_NONE);
        libvirt_xml_domain_free(&d);
        assert_null(d.learned);
        free(xml);

        /* too large */
        big = malloc(LIBVIRT_XML_LEARNED_MAX + 100);
        assert_non_null(big);
        memset(big, 'x', LIBVIRT_XML_LEARNED_MAX + 99);
        big[LIBVIRT_XML_LEARNED_MAX + 99] = '\0';
        assert_null(libvirt_xml_learned_format(big)); /* never written */
        char *huge = malloc(LIBVIRT_XML_LEARNED_MAX + 300);
        assert_non_null(huge);
        sprintf(huge, "<l:learned xmlns:l='" LIBVIRT_XML_LEARNED_NS "'>%s</l:learned>", big);
        xml = plain_with_metadata(huge);
        assert_int_equal(libvirt_xml_parse(xml, strlen(xml), &d, err, sizeof(err)), 0);
        assert_null(d.learned);
        assert_true(d.learned_oversize);
        libvirt_xml_domain_free(&d);
        free(xml);
        free(huge);
        free(big);
        free(element);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(reads_a_static_domain),
            cmocka_unit_test(enable_adds_what_libvirt_9_needs),
            cmocka_unit_test(disable_gives_the_domain_back),
            cmocka_unit_test(disable_removes_the_controller_libvirt_added_for_the_channel),
            cmocka_unit_test(a_users_own_channel_and_controller_stay),
            cmocka_unit_test(an_existing_agent_channel_is_used_and_kept),
            cmocka_unit_test(existing_numa_cells_are_used_not_added),
            cmocka_unit_test(a_domain_without_cpu_gets_one_and_loses_it),
            cmocka_unit_test(a_small_maxmemory_is_raised_and_restored),
            cmocka_unit_test(a_large_maxmemory_is_left_alone),
            cmocka_unit_test(dimms_count_in_slots_and_startup),
            cmocka_unit_test(enabling_again_resizes_and_keeps_the_record),
            cmocka_unit_test(lend_off_is_kept_in_the_metadata),
            cmocka_unit_test(startup_can_change_while_off),
            cmocka_unit_test(maximum_equal_to_startup_needs_no_device),
            cmocka_unit_test(a_startup_of_one_block_gets_no_first_block),
            cmocka_unit_test(a_startup_of_two_blocks_gives_one_up),
            cmocka_unit_test(a_domain_enabled_without_a_first_block_keeps_its_layout),
            cmocka_unit_test(a_missing_balloon_is_added_and_removed),
            cmocka_unit_test(enable_refuses_settings_against_the_rules),
            cmocka_unit_test(enable_refuses_what_it_cannot_drive),
            cmocka_unit_test(disable_refuses_a_static_domain),
            cmocka_unit_test(disable_refuses_a_running_domain),
            cmocka_unit_test(hostile_xml_is_refused),
            cmocka_unit_test(bad_metadata_is_reported_for_that_domain),
            cmocka_unit_test(a_domain_with_an_element_twice_is_refused),
            cmocka_unit_test(good_metadata_that_breaks_the_rules_is_refused),
            cmocka_unit_test(metadata_of_other_namespaces_is_ignored),
            cmocka_unit_test(metadata_format_reads_back),
            cmocka_unit_test(metadata_a_newer_dynmem_added_to_is_used_and_kept),
            cmocka_unit_test(unknown_attributes_on_known_elements_are_kept),
            cmocka_unit_test(metadata_of_a_newer_version_leaves_the_domain_alone),
            cmocka_unit_test(a_domain_enabled_by_metadata_version_1_still_reads),
            cmocka_unit_test(reads_the_live_xml),
            cmocka_unit_test(the_live_layout_counts_the_first_block),
            cmocka_unit_test(a_first_block_that_does_not_fit_is_bad_metadata),
            cmocka_unit_test(enabling_again_over_bad_metadata_keeps_the_startup),
            cmocka_unit_test(mangled_xml_never_crashes),
            cmocka_unit_test(added_names_round_trip),
            cmocka_unit_test(the_learned_element_round_trips),
        };
        int r = cmocka_run_group_tests(tests, NULL, NULL);

        xmlCleanupParser();
        return r;
}
