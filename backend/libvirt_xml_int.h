/*
 * libvirt_xml_int: the libxml2 helpers libvirt_xml.c (reading) and
 * libvirt_edit.c (enable, disable) share; nothing else includes it.
 * Elements of libvirt's own schema have no namespace; dynmem's metadata
 * element is found by its namespace URI.
 */
#ifndef DYNMEM_LIBVIRT_XML_INT_H
#define DYNMEM_LIBVIRT_XML_INT_H

#include <libxml/tree.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "libvirt_xml.h"

/* Parse a domain document: well-formed, no DTD, root <domain>, at most LIBVIRT_XML_MAX. */
xmlDocPtr lx_read(const char *xml, size_t len, char *err, size_t errlen);

/* The first (next) element child named name without a namespace, or NULL. */
xmlNodePtr lx_child(xmlNodePtr parent, const char *name);
xmlNodePtr lx_next(xmlNodePtr after, const char *name);

/* True when the element's attribute name equals value. */
bool lx_attr_is(xmlNodePtr node, const char *name, const char *value);

/* The element's text with surrounding white space trimmed, into buf. -EINVAL when too long. */
int lx_text(xmlNodePtr node, char *buf, size_t len);

/*
 * A size element: digits, scaled by its unit attribute (libvirt's units;
 * default_unit when absent), at most SETTINGS_SIZE_MAX bytes. 0 or -EINVAL.
 */
int lx_size(xmlNodePtr node, uint64_t default_unit, uint64_t *ret);

/* A NUMA <cell>'s memory attribute (scaled by its unit, KiB when absent). 0 or -EINVAL. */
int lx_cell_size(xmlNodePtr cell, uint64_t *ret);

/* Plain decimal digits up to max. 0 or -EINVAL. */
int lx_uint(const char *text, uint64_t max, uint64_t *ret);

/* A new element child with text (NULL: none). */
xmlNodePtr lx_add(xmlNodePtr parent, const char *name, const char *text);

/* Set a size element to bytes (written in KiB, rounded up). */
void lx_set_kib(xmlNodePtr node, uint64_t bytes);

/* Unlink and free. Accepts NULL. */
void lx_drop(xmlNodePtr node);

/* The element with its children as a string (caller frees), NULL on ENOMEM. */
char *lx_dump_node(xmlDocPtr doc, xmlNodePtr node);

/* The whole document as a string (caller frees), NULL on ENOMEM. */
char *lx_dump(xmlDocPtr doc);

/* dynmem's metadata element under <metadata>, or NULL. */
xmlNodePtr lx_meta_node(xmlNodePtr domain);

/* The highest version of dynmem metadata under <metadata> above LIBVIRT_XML_NS_VERSION, or 0. */
unsigned lx_meta_newer(xmlNodePtr domain);

/*
 * Read dynmem's metadata element: 0, or -EINVAL / -ENOMEM with the reason in
 * err. Elements it does not know are named in ret->ignored and kept in
 * ret->unknown.
 */
int lx_meta_read(xmlDocPtr doc, xmlNodePtr node, struct libvirt_xml_meta *ret, char *err,
                 size_t errlen);

/* dynmem's virtio-mem device (a <memory> under <devices> with its alias), or NULL. */
xmlNodePtr lx_vmem_node(xmlNodePtr devices);

/* The size of a <memory> device's <target><size>, 0 when it has none. -EINVAL when bad. */
int lx_device_size(xmlNodePtr mem, uint64_t *ret);

/* The agent channel (target virtio, name LIBVIRT_XML_AGENT_PORT), or NULL. */
xmlNodePtr lx_agent_channel(xmlNodePtr devices);

#endif
