/*
 * libvirt_xml: the libvirt domain XML dynmem reads and writes, as pure
 * functions on strings (libxml2 underneath; no libvirt calls, no I/O).
 *
 * Reading (libvirt_xml_parse): what the backend needs to know of a domain
 * from its live or persistent XML: name, UUID, memory sizes, dynmem's
 * virtio-mem device, the agent channel's socket and dynmem's settings in
 * <metadata>. Settings a user wrote by hand (virsh metadata, virsh edit)
 * are untrusted input: every number is range-checked and a bad element is
 * reported for that domain alone.
 *
 * Writing: libvirt_xml_enable() turns a shut-off domain's persistent XML
 * into a dynamic one; libvirt_xml_disable() takes out exactly what enable
 * added, as recorded in the metadata (docs/libvirt.md shows the XML). Both
 * return the whole new XML for virDomainDefineXML.
 *
 *   <metadata>
 *     <dynmem:memory xmlns:dynmem="urn:dynmem:domain:1">
 *       <dynmem:minimum unit="bytes">268435456</dynmem:minimum>
 *       <dynmem:maximum unit="bytes">4294967296</dynmem:maximum>
 *       <dynmem:buffer>20</dynmem:buffer>
 *       <dynmem:weight>5000</dynmem:weight>
 *       <dynmem:added>maxMemory numa stats channel controller deflate reporting</dynmem:added>
 *       <dynmem:first unit="bytes">2097152</dynmem:first>
 *       <dynmem:lend>no</dynmem:lend>
 *     </dynmem:memory>
 *   </metadata>
 *
 * Startup is the domain's own boot memory (<memory> less its memory
 * devices) plus <first>: the device block enable takes out of boot memory
 * and has plugged at boot (requested one block), as the QEMU backend does
 * (absent on domains enabled before dynmem did). The block size is the
 * virtio-mem device's. Sizes are bytes. <lend> is written only when the VM
 * may not borrow (the `lend` setting off): metadata without it, as every
 * dynmem before the setting wrote it, means yes.
 *
 * Compatibility (docs/libvirt.md): the metadata travels with the domain, on
 * live migration to hosts whose dynmem may be older or newer. The version is
 * the namespace's last number. Within a version a newer dynmem may add
 * elements, which must be safe to ignore: an element this dynmem does not
 * know is ignored and named (meta.ignored), the rest of the metadata used,
 * and it is written back as it was whenever dynmem writes the metadata
 * again. A change older dynmems must not misread takes a new namespace
 * (urn:dynmem:domain:2): metadata of a higher version than this dynmem
 * reads leaves the domain unbalanced (LIBVIRT_XML_META_NEWER), and neither
 * enable nor disable nor new settings rewrite it.
 */
#ifndef DYNMEM_LIBVIRT_XML_H
#define DYNMEM_LIBVIRT_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "settings.h"
#include "vm.h"

#define LIBVIRT_XML_NS         "urn:dynmem:domain:1"
#define LIBVIRT_XML_NS_BASE    "urn:dynmem:domain:" /* and the version */
#define LIBVIRT_XML_NS_VERSION 1
#define LIBVIRT_XML_NS_PREFIX  "dynmem"
#define LIBVIRT_XML_META       "memory" /* the metadata element's name */
#define LIBVIRT_XML_VMEM_ALIAS "ua-dynmem-vmem"
#define LIBVIRT_XML_AGENT_PORT "org.dynmem.agent.0"
#define LIBVIRT_XML_MAX        (16u * 1024 * 1024) /* larger domain XML is refused */
#define LIBVIRT_XML_META_MAX   4096u               /* larger dynmem metadata is refused */
#define LIBVIRT_XML_PATH_MAX   512u                /* agent socket paths */
#define LIBVIRT_XML_STATS_S    1                   /* balloon statistics period set by enable */

/*
 * What the policy learned of a running domain, kept by dynmemd in the live
 * domain's metadata so that a live migration takes it along: its own element
 * in its own namespace, apart from the settings (virsh metadata of the
 * settings, dynmem set and an older dynmem never see it). Its text is JSON
 * that dynmemd writes and reads (daemon/carry.c); here it is only text.
 *
 *   <dynmemlearned:learned xmlns:dynmemlearned="urn:dynmem:learned:1">{"written_at_ms":...,
 *     "policy":{...}}</dynmemlearned:learned>
 */
#define LIBVIRT_XML_LEARNED_NS     "urn:dynmem:learned:1"
#define LIBVIRT_XML_LEARNED_PREFIX "dynmemlearned"
#define LIBVIRT_XML_LEARNED        "learned" /* the element's name */
#define LIBVIRT_XML_LEARNED_MAX    4096u     /* a larger text is not kept (BACKEND_LEARNED_MAX) */

/* What enable added to a domain (recorded in the metadata for disable). */
enum libvirt_xml_added {
        LIBVIRT_XML_ADDED_MAXMEMORY = 1u << 0,  /* <maxMemory> was absent */
        LIBVIRT_XML_ADDED_CPU = 1u << 1,        /* <cpu> was absent (with its <numa>) */
        LIBVIRT_XML_ADDED_NUMA = 1u << 2,       /* <numa> with one cell */
        LIBVIRT_XML_ADDED_STATS = 1u << 3,      /* the balloon's <stats period> */
        LIBVIRT_XML_ADDED_BALLOON = 1u << 4,    /* the <memballoon> itself */
        LIBVIRT_XML_ADDED_CHANNEL = 1u << 5,    /* the agent channel */
        LIBVIRT_XML_ADDED_CONTROLLER = 1u << 6, /* no virtio-serial controller before */
        LIBVIRT_XML_ADDED_DEFLATE = 1u << 7,    /* the balloon's autodeflate='on' */
        LIBVIRT_XML_ADDED_REPORTING = 1u << 8,  /* the balloon's freePageReporting='on' */
};

/*
 * The elements of the metadata this dynmem knows: the metadata element itself,
 * then the settings' and records' elements in it, by number and by name.
 */
enum libvirt_xml_meta_element {
        LIBVIRT_XML_EL_META,
        LIBVIRT_XML_EL_MINIMUM,
        LIBVIRT_XML_EL_MAXIMUM,
        LIBVIRT_XML_EL_BUFFER,
        LIBVIRT_XML_EL_WEIGHT,
        LIBVIRT_XML_EL_ADDED,
        LIBVIRT_XML_EL_MAX_WAS,
        LIBVIRT_XML_EL_FIRST,
        LIBVIRT_XML_EL_LEND,
        LIBVIRT_XML_META_ELEMENTS
};
#define LIBVIRT_XML_META_ELEMENT_NAMES                                                             \
        {                                                                                          \
                LIBVIRT_XML_META, "minimum", "maximum", "buffer", "weight", "added", "max-was",    \
                    "first", "lend"                                                                \
        }

/* dynmem's settings as the metadata holds them. */
struct libvirt_xml_meta {
        uint64_t minimum_bytes;
        uint64_t maximum_bytes;
        uint32_t buffer_percent;
        uint32_t weight;
        unsigned added;     /* enum libvirt_xml_added */
        bool max_was_known; /* <maxMemory> was raised: what it was */
        uint64_t max_was_bytes;
        unsigned max_was_slots;
        uint64_t first_bytes; /* the device block plugged at boot instead of boot RAM, 0 none */
        bool lend;            /* the `lend` setting; <lend> absent: yes */
        char ignored[160];    /* "<a>, <b>": the elements this dynmem does not know, or "" */
        /* those elements as they were (without namespace), written back with the rest */
        char unknown[LIBVIRT_XML_META_MAX];
        /*
         * The attributes this dynmem does not know on the elements it knows, as they
         * were (' a="1" b="2"', without namespace), written back on those elements:
         * attrs holds them one after the other, attr_spans says whose each is.
         */
        char attrs[LIBVIRT_XML_META_MAX];
        struct libvirt_xml_attr_span {
                uint16_t at, len;
        } attr_spans[LIBVIRT_XML_META_ELEMENTS]; /* by element: LIBVIRT_XML_META_ELEMENT_NAMES */
};

enum libvirt_xml_meta_state {
        LIBVIRT_XML_META_NONE, /* no dynmem metadata: a static domain */
        LIBVIRT_XML_META_OK,
        LIBVIRT_XML_META_BAD, /* present but unusable (reason in meta_error) */
        /* of a higher version than this dynmem reads (meta_error says which): left alone */
        LIBVIRT_XML_META_NEWER,
};

/* What dynmem reads of a domain. */
struct libvirt_xml_domain {
        char name[VM_NAME_MAX];
        char uuid[40];
        char type[16];          /* <domain type=...>: "kvm", "qemu" (TCG) */
        bool live;              /* the XML has an id: the domain runs */
        int id;                 /* that id (libvirt's instance), -1 none or not a number */
        uint64_t total_bytes;   /* <memory>: boot memory plus memory devices */
        uint64_t current_bytes; /* <currentMemory> */
        uint64_t boot_bytes;    /* boot memory: total less every memory device */
        uint64_t first_bytes;   /* the metadata's <first> (checked against the device), 0 none */
        uint64_t startup_bytes; /* the user's startup size: boot memory + first */
        bool balloon;           /* a virtio <memballoon> */
        unsigned stats_period;  /* its <stats period>, 0 none */

        bool vmem; /* dynmem's virtio-mem device (alias LIBVIRT_XML_VMEM_ALIAS) */
        uint64_t vmem_size, vmem_block, vmem_requested, vmem_current;
        bool vmem_current_known; /* live XML only */
        char *vmem_xml;          /* the device element, for virDomainUpdateDeviceFlags */

        bool agent_channel;                    /* a channel named LIBVIRT_XML_AGENT_PORT */
        char agent_path[LIBVIRT_XML_PATH_MAX]; /* its socket (live XML), "" unknown */

        enum libvirt_xml_meta_state meta_state;
        struct libvirt_xml_meta meta;
        char meta_error[200];

        char *learned;         /* the learned element's text (LIBVIRT_XML_LEARNED_NS), NULL none */
        bool learned_oversize; /* ... there, but over LIBVIRT_XML_LEARNED_MAX: not kept */
};

/*
 * Parse a domain's XML. Returns 0, or -EINVAL with a sentence in err when it
 * is not a domain XML dynmem can read (malformed, no name, sizes out of
 * range, over LIBVIRT_XML_MAX). A bad dynmem metadata element is not an
 * error: meta_state says BAD with the reason (NEWER: of a higher version).
 * Free with libvirt_xml_domain_free.
 */
int libvirt_xml_parse(const char *xml, size_t len, struct libvirt_xml_domain *ret, char *err,
                      size_t errlen);
void libvirt_xml_domain_free(struct libvirt_xml_domain *d);

/*
 * The settings of a domain with good metadata: startup from the domain,
 * block from its virtio-mem device (SETTINGS_BLOCK_DEFAULT without one),
 * the rest from the metadata, checked with settings_check() and against
 * what the device can hold. Returns 0, or -EINVAL with the reason in err.
 */
int libvirt_xml_settings(const struct libvirt_xml_domain *d, struct vm_settings *ret, char *err,
                         size_t errlen);

/*
 * The memory layout a running domain's XML shows (the QEMU backend's
 * qemu_layout): boot memory, the virtio-mem device's block, and what it
 * may plug. A domain enabled with a first block (<first>) has it plugged
 * from the start and plugs no more than maximum less boot memory (its
 * device is larger, to a whole guest memory block; never below what it
 * holds or was asked); one enabled before dynmem did that has no first
 * block and its whole device to plug.
 */
struct libvirt_xml_layout {
        uint64_t boot, region, block, first;
};
void libvirt_xml_layout(const struct libvirt_xml_domain *x, struct libvirt_xml_layout *ret);

/* A domain without usable dynmem settings: static, fixed at its memory. */
void libvirt_xml_static_settings(const struct libvirt_xml_domain *d, struct vm_settings *ret);

/* What enable is asked to set. startup 0 keeps the domain's. */
struct libvirt_xml_request {
        uint64_t startup_bytes;
        uint64_t minimum_bytes;
        uint64_t maximum_bytes;
        uint32_t buffer_percent;
        uint32_t weight;
        uint64_t block_bytes; /* virtio-mem block, 0: SETTINGS_BLOCK_DEFAULT */
        bool lend;
};

/*
 * A shut-off domain's persistent XML made dynamic (see the top of this
 * file), or re-sized when it is dynamic already. Returns 0 with the new
 * XML in *ret_xml (caller frees), or -EINVAL / -EPERM / -ENOMEM with a
 * sentence in err (settings that break the rules, a domain dynmem cannot
 * make dynamic and why).
 */
int libvirt_xml_enable(const char *xml, size_t len, const struct libvirt_xml_request *req,
                       char **ret_xml, char *err, size_t errlen);

/*
 * The persistent XML without what enable added. -ENOENT when the domain is
 * not dynamic (no dynmem metadata and no dynmem device).
 */
int libvirt_xml_disable(const char *xml, size_t len, char **ret_xml, char *err, size_t errlen);

/* The metadata element for virDomainSetMetadata (no namespace: libvirt adds it). */
char *libvirt_xml_meta_format(const struct libvirt_xml_meta *m);

/*
 * The learned element for virDomainSetMetadata (no namespace: libvirt adds
 * it) holding text, escaped (caller frees); NULL on ENOMEM or when text is
 * over LIBVIRT_XML_LEARNED_MAX.
 */
char *libvirt_xml_learned_format(const char *text);

/* The virtio-mem device's XML with only <requested> changed (caller frees); NULL on error. */
char *libvirt_xml_vmem_requested(const char *device_xml, uint64_t requested_bytes);

/* "maxMemory numa ..." for an added mask. */
const char *libvirt_xml_added_format(unsigned added, char *buf, size_t len);

#endif
