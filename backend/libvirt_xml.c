/*
 * libvirt_xml: reading libvirt domain XML and dynmem's metadata in it, and
 * the libxml2 helpers libvirt_edit.c shares. See libvirt_xml.h.
 */
#include "libvirt_xml.h"

#include <errno.h>
#include <libxml/parser.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "libvirt_xml_int.h"
#include "units.h"

#define TEXT_MAX 64 /* characters in a number element */

/* ---- helpers ---- */

/*
 * The first element of root's that libvirt writes once but the XML holds
 * twice, or NULL: a second one would be read by one step and edited by
 * another.
 */
static const char *repeated_element(xmlNodePtr root);

xmlDocPtr lx_read(const char *xml, size_t len, char *err, size_t errlen)
{
        xmlDocPtr doc;
        xmlNodePtr root;
        const char *twice;

        if (!xml || len == 0 || len > LIBVIRT_XML_MAX || len > (size_t)INT32_MAX) {
                snprintf(err, errlen, "domain XML is empty or larger than %u bytes",
                         LIBVIRT_XML_MAX);
                return NULL;
        }
        doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOBLANKS | XML_PARSE_NOERROR |
                                XML_PARSE_NOWARNING);
        if (!doc) {
                const xmlError *e = xmlGetLastError();
                snprintf(err, errlen, "domain XML is not well-formed (line %d: %.80s)",
                         e ? e->line : 0, e && e->message ? e->message : "?");
                if (err[0] && err[strlen(err) - 1] == '\n')
                        err[strlen(err) - 1] = '\0';
                return NULL;
        }
        root = xmlDocGetRootElement(doc);
        if (doc->intSubset || doc->extSubset) {
                snprintf(err, errlen, "domain XML with a document type declaration is refused");
        } else if (!root || root->ns || strcmp((const char *)root->name, "domain") != 0) {
                snprintf(err, errlen, "not a domain XML (the root element is not <domain>)");
        } else if ((twice = repeated_element(root))) {
                snprintf(err, errlen,
                         "domain XML with more than one <%s>: not as libvirt writes it", twice);
        } else {
                return doc;
        }
        xmlFreeDoc(doc);
        return NULL;
}

static bool is_element(xmlNodePtr n, const char *name)
{
        return n->type == XML_ELEMENT_NODE && !n->ns && strcmp((const char *)n->name, name) == 0;
}

xmlNodePtr lx_child(xmlNodePtr parent, const char *name)
{
        for (xmlNodePtr n = parent ? parent->children : NULL; n; n = n->next)
                if (is_element(n, name))
                        return n;
        return NULL;
}

xmlNodePtr lx_next(xmlNodePtr after, const char *name)
{
        for (xmlNodePtr n = after ? after->next : NULL; n; n = n->next)
                if (is_element(n, name))
                        return n;
        return NULL;
}

static const char *repeated_element(xmlNodePtr root)
{
        static const char *const once[] = {"name",      "uuid",    "memory", "currentMemory",
                                           "maxMemory", "devices", "cpu",    "metadata"};

        for (size_t i = 0; i < sizeof(once) / sizeof(once[0]); i++)
                if (lx_next(lx_child(root, once[i]), once[i]))
                        return once[i];
        return NULL;
}

bool lx_attr_is(xmlNodePtr node, const char *name, const char *value)
{
        xmlChar *v = node ? xmlGetNoNsProp(node, (const xmlChar *)name) : NULL;
        bool same = v && strcmp((const char *)v, value) == 0;

        xmlFree(v);
        return same;
}

int lx_text(xmlNodePtr node, char *buf, size_t len)
{
        xmlChar *t = node ? xmlNodeGetContent(node) : NULL;
        const char *s = t ? (const char *)t : "";
        size_t n;

        while (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')
                s++;
        n = strlen(s);
        while (n > 0 &&
               (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\n' || s[n - 1] == '\r'))
                n--;
        if (n >= len) {
                xmlFree(t);
                return -EINVAL;
        }
        memcpy(buf, s, n);
        buf[n] = '\0';
        xmlFree(t);
        return 0;
}

int lx_uint(const char *text, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0;

        if (!text || !*text)
                return -EINVAL;
        for (const char *p = text; *p; p++) {
                if (*p < '0' || *p > '9')
                        return -EINVAL;
                uint64_t d = (uint64_t)(*p - '0');
                if (v > (max - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* libvirt's units (virScaleInteger), matched without case. */
static const struct {
        const char *name;
        uint64_t scale;
} units[] = {
    {"b", 1},
    {"bytes", 1},
    {"k", KIB},
    {"KiB", KIB},
    {"KB", 1000},
    {"m", MIB},
    {"MiB", MIB},
    {"MB", 1000ull * 1000},
    {"g", GIB},
    {"GiB", GIB},
    {"GB", 1000ull * 1000 * 1000},
    {"t", TIB},
    {"TiB", TIB},
    {"TB", 1000ull * 1000 * 1000 * 1000},
};

/* The scale of node's unit attribute: default_unit without one, 0 for one libvirt does not name. */
static uint64_t unit_scale(xmlNodePtr node, uint64_t default_unit)
{
        xmlChar *unit = xmlGetNoNsProp(node, (const xmlChar *)"unit");
        uint64_t scale = unit ? 0 : default_unit;

        for (size_t i = 0; unit && i < sizeof(units) / sizeof(units[0]); i++)
                if (strcasecmp((const char *)unit, units[i].name) == 0)
                        scale = units[i].scale;
        xmlFree(unit);
        return scale;
}

/* digits scaled by node's unit attribute (default_unit when absent). */
static int scaled(xmlNodePtr node, const char *text, uint64_t default_unit, uint64_t *ret)
{
        uint64_t scale = unit_scale(node, default_unit), v;

        if (!scale)
                return -EINVAL;
        if (lx_uint(text, SETTINGS_SIZE_MAX, &v) < 0 || v > SETTINGS_SIZE_MAX / scale)
                return -EINVAL;
        *ret = v * scale;
        return 0;
}

int lx_size(xmlNodePtr node, uint64_t default_unit, uint64_t *ret)
{
        char text[TEXT_MAX];

        if (!node || lx_text(node, text, sizeof(text)) < 0)
                return -EINVAL;
        return scaled(node, text, default_unit, ret);
}

int lx_cell_size(xmlNodePtr cell, uint64_t *ret)
{
        xmlChar *memory = cell ? xmlGetNoNsProp(cell, (const xmlChar *)"memory") : NULL;
        int r = memory ? scaled(cell, (const char *)memory, KIB, ret) : -EINVAL;

        xmlFree(memory);
        return r;
}

xmlNodePtr lx_add(xmlNodePtr parent, const char *name, const char *text)
{
        return xmlNewTextChild(parent, NULL, (const xmlChar *)name, (const xmlChar *)text);
}

void lx_set_kib(xmlNodePtr node, uint64_t bytes)
{
        char text[32];

        snprintf(text, sizeof(text), "%llu", (unsigned long long)((bytes + KIB - 1) / KIB));
        xmlNodeSetContent(node, (const xmlChar *)text);
        xmlSetProp(node, (const xmlChar *)"unit", (const xmlChar *)"KiB");
}

void lx_drop(xmlNodePtr node)
{
        if (!node)
                return;
        xmlUnlinkNode(node);
        xmlFreeNode(node);
}

char *lx_dump_node(xmlDocPtr doc, xmlNodePtr node)
{
        xmlBufferPtr buf = xmlBufferCreate();
        char *out = NULL;

        if (buf && xmlNodeDump(buf, doc, node, 0, 0) >= 0)
                out = strdup((const char *)xmlBufferContent(buf));
        xmlBufferFree(buf);
        return out;
}

char *lx_dump(xmlDocPtr doc)
{
        xmlChar *mem = NULL;
        int size = 0;
        char *out;

        xmlDocDumpFormatMemory(doc, &mem, &size, 1);
        out = mem ? strdup((const char *)mem) : NULL;
        xmlFree(mem);
        return out;
}

unsigned lx_meta_newer(xmlNodePtr domain)
{
        xmlNodePtr md = lx_child(domain, "metadata");
        size_t base = strlen(LIBVIRT_XML_NS_BASE);
        unsigned newest = 0;
        uint64_t v;

        for (xmlNodePtr n = md ? md->children : NULL; n; n = n->next) {
                const char *href = n->type == XML_ELEMENT_NODE && n->ns && n->ns->href
                                       ? (const char *)n->ns->href
                                       : "";
                if (strncmp(href, LIBVIRT_XML_NS_BASE, base) == 0 &&
                    lx_uint(href + base, 1000000, &v) == 0 && v > LIBVIRT_XML_NS_VERSION &&
                    v > newest)
                        newest = (unsigned)v;
        }
        return newest;
}

xmlNodePtr lx_meta_node(xmlNodePtr domain)
{
        xmlNodePtr md = lx_child(domain, "metadata");

        for (xmlNodePtr n = md ? md->children : NULL; n; n = n->next)
                if (n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
                    strcmp((const char *)n->ns->href, LIBVIRT_XML_NS) == 0)
                        return n;
        return NULL;
}

int lx_device_size(xmlNodePtr mem, uint64_t *ret)
{
        xmlNodePtr size = lx_child(lx_child(mem, "target"), "size");

        *ret = 0;
        return size ? lx_size(size, KIB, ret) : 0;
}

xmlNodePtr lx_vmem_node(xmlNodePtr devices)
{
        for (xmlNodePtr m = lx_child(devices, "memory"); m; m = lx_next(m, "memory"))
                if (lx_attr_is(lx_child(m, "alias"), "name", LIBVIRT_XML_VMEM_ALIAS))
                        return m;
        return NULL;
}

xmlNodePtr lx_agent_channel(xmlNodePtr devices)
{
        for (xmlNodePtr c = lx_child(devices, "channel"); c; c = lx_next(c, "channel")) {
                xmlNodePtr t = lx_child(c, "target");
                if (lx_attr_is(t, "type", "virtio") &&
                    lx_attr_is(t, "name", LIBVIRT_XML_AGENT_PORT))
                        return c;
        }
        return NULL;
}

/* ---- dynmem's metadata ---- */

static const char *const added_names[] = {
    "maxMemory", "cpu", "numa", "stats", "balloon", "channel", "controller", "deflate", "reporting",
};
#define N_ADDED (sizeof(added_names) / sizeof(added_names[0]))

const char *libvirt_xml_added_format(unsigned added, char *buf, size_t len)
{
        size_t at = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < N_ADDED; i++) {
                if (!(added & (1u << i)))
                        continue;
                int n = snprintf(buf + at, len - at, "%s%s", at ? " " : "", added_names[i]);
                if (n < 0 || (size_t)n >= len - at)
                        break;
                at += (size_t)n;
        }
        return buf;
}

static int added_parse(const char *text, unsigned *ret)
{
        char word[32];
        unsigned added = 0;

        for (const char *p = text; *p;) {
                size_t n = 0;
                while (*p == ' ')
                        p++;
                while (p[n] && p[n] != ' ')
                        n++;
                if (n == 0)
                        break;
                if (n >= sizeof(word))
                        return -EINVAL;
                memcpy(word, p, n);
                word[n] = '\0';
                size_t i = 0;
                while (i < N_ADDED && strcmp(word, added_names[i]) != 0)
                        i++;
                if (i == N_ADDED)
                        return -EINVAL;
                added |= 1u << i;
                p += n;
        }
        *ret = added;
        return 0;
}

enum {
        F_MIN = 1,
        F_MAX = 2,
        F_BUFFER = 4,
        F_WEIGHT = 8,
        F_ADDED = 16,
        F_MAXWAS = 32,
        F_FIRST = 64,
        F_LEND = 128
};

/* Drop the namespaces of a copied element and all under it: written back without any. */
static void strip_ns(xmlNodePtr n)
{
        for (; n; n = n->next) {
                if (n->type != XML_ELEMENT_NODE)
                        continue;
                n->ns = NULL;
                for (xmlAttrPtr a = n->properties; a; a = a->next)
                        a->ns = NULL;
                if (n->nsDef) {
                        xmlFreeNsList(n->nsDef);
                        n->nsDef = NULL;
                }
                strip_ns(n->children);
        }
}

/*
 * An element this dynmem does not know (a newer one's, in the same version):
 * named in m->ignored and kept in m->unknown as it was, to be written back.
 */
static int keep_unknown(xmlNodePtr n, struct libvirt_xml_meta *m, char *err, size_t errlen)
{
        size_t at = strlen(m->ignored), used = strlen(m->unknown);
        xmlDocPtr doc = xmlNewDoc((const xmlChar *)"1.0");
        xmlNodePtr copy = doc ? xmlDocCopyNode(n, doc, 1) : NULL;
        char *text;

        if (!copy) {
                xmlFreeDoc(doc);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        xmlDocSetRootElement(doc, copy);
        strip_ns(copy);
        text = lx_dump_node(doc, copy);
        xmlFreeDoc(doc);
        if (!text) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        /* the whole metadata is at most LIBVIRT_XML_META_MAX: so is what it does not know */
        if (used + strlen(text) < sizeof(m->unknown))
                memcpy(m->unknown + used, text, strlen(text) + 1);
        free(text);
        if (at + 1 < sizeof(m->ignored))
                snprintf(m->ignored + at, sizeof(m->ignored) - at, "%s<%.32s>", at ? ", " : "",
                         (const char *)n->name);
        return 0;
}

/* True when word is one of the space-separated words of list. */
static bool among(const char *list, const char *word)
{
        size_t len = strlen(word);

        for (const char *at = strstr(list, word); at; at = strstr(at + 1, word))
                if ((at == list || at[-1] == ' ') && (at[len] == ' ' || !at[len]))
                        return true;
        return false;
}

/* value as an XML attribute value between double quotes, appended to out (at most len). */
static void append_escaped(char *out, size_t len, const char *value)
{
        size_t used = strlen(out);

        for (const char *c = value; *c && used + 1 < len; c++) {
                const char *esc = *c == '&'    ? "&amp;"
                                  : *c == '<'  ? "&lt;"
                                  : *c == '>'  ? "&gt;"
                                  : *c == '"'  ? "&quot;"
                                  : *c == '\n' ? "&#10;"
                                  : *c == '\r' ? "&#13;"
                                  : *c == '\t' ? "&#9;"
                                               : NULL;
                int n = esc ? snprintf(out + used, len - used, "%s", esc)
                            : snprintf(out + used, len - used, "%c", *c);
                if (n < 0 || (size_t)n >= len - used) {
                        out[used] = '\0';
                        return;
                }
                used += (size_t)n;
        }
}

/*
 * The attributes of known element number el (LIBVIRT_XML_META_ELEMENT_NAMES)
 * other than those it takes ("a b"): named in m->ignored, and kept as they were
 * in m->attrs to be written back on that element. Those in a namespace are
 * not dynmem's (it writes none): named, and not kept.
 */
static void note_attributes(xmlNodePtr n, const char *takes, enum libvirt_xml_meta_element el,
                            struct libvirt_xml_meta *m)
{
        char kept[LIBVIRT_XML_META_MAX] = "";

        for (xmlAttrPtr a = n->properties; a; a = a->next) {
                const char *name = (const char *)a->name;
                size_t used = strlen(m->ignored), before = strlen(kept);
                if (!a->ns && among(takes, name))
                        continue;
                if (used + 1 < sizeof(m->ignored))
                        snprintf(
                            m->ignored + used, sizeof(m->ignored) - used,
                            "%s<%.32s %.16s%s%.32s=...>%s", used ? ", " : "", (const char *)n->name,
                            a->ns && a->ns->prefix ? (const char *)a->ns->prefix : "",
                            a->ns && a->ns->prefix ? ":" : "", name, a->ns ? " (not kept)" : "");
                if (a->ns)
                        continue;
                xmlChar *value = xmlNodeGetContent((xmlNodePtr)a);
                snprintf(kept + before, sizeof(kept) - before, " %s=\"", name);
                append_escaped(kept, sizeof(kept), value ? (const char *)value : "");
                xmlFree(value);
                if (strlen(kept) + 2 >= sizeof(kept))
                        kept[before] = '\0'; /* too long to keep whole: not kept */
                else
                        strcat(kept, "\"");
        }
        size_t at = strlen(m->attrs), len = strlen(kept);
        if (!len || at + len >= sizeof(m->attrs))
                return;
        memcpy(m->attrs + at, kept, len + 1);
        m->attr_spans[el] =
            (struct libvirt_xml_attr_span){.at = (uint16_t)at, .len = (uint16_t)len};
}

static int meta_field(xmlNodePtr n, struct libvirt_xml_meta *m, unsigned *seen, char *err,
                      size_t errlen)
{
        static const char *const names[] = LIBVIRT_XML_META_ELEMENT_NAMES;
        const char *name = (const char *)n->name;
        char text[TEXT_MAX * 2];
        uint64_t v = 0;
        unsigned bit = 0;
        enum libvirt_xml_meta_element el = LIBVIRT_XML_EL_META;

        /* names[0] is the metadata element itself: a field is bit 1 << (its number - 1) */
        for (unsigned i = LIBVIRT_XML_EL_MINIMUM; i < LIBVIRT_XML_META_ELEMENTS; i++)
                if (strcmp(name, names[i]) == 0) {
                        bit = 1u << (i - 1);
                        el = (enum libvirt_xml_meta_element)i;
                }
        if (!bit)
                return keep_unknown(n, m, err, errlen);
        if (*seen & bit) {
                snprintf(err, errlen, "<%s> given twice", name);
                return -EINVAL;
        }
        note_attributes(n,
                        bit == F_MAXWAS                                  ? "unit slots"
                        : bit == F_MIN || bit == F_MAX || bit == F_FIRST ? "unit"
                                                                         : "",
                        el, m);
        *seen |= bit;
        switch (bit) {
        case F_MIN:
        case F_MAX:
        case F_MAXWAS:
        case F_FIRST:
                if (lx_size(n, 1, &v) < 0) {
                        if (!unit_scale(n, 1))
                                snprintf(err, errlen,
                                         "<%s>'s unit is not one of libvirt's (bytes, KiB, MiB, "
                                         "GiB, TiB, KB, MB, GB, TB)",
                                         name);
                        else
                                snprintf(err, errlen,
                                         "<%s> is not a size: a whole number of bytes, or of its "
                                         "unit attribute's unit (unit=\"MiB\"), at most 16 TiB",
                                         name);
                        return -EINVAL;
                }
                if (bit == F_MIN)
                        m->minimum_bytes = v;
                else if (bit == F_MAX)
                        m->maximum_bytes = v;
                else if (bit == F_FIRST)
                        m->first_bytes = v;
                else {
                        xmlChar *slots = xmlGetNoNsProp(n, (const xmlChar *)"slots");
                        uint64_t s = 0;
                        int r = slots ? lx_uint((const char *)slots, 255, &s) : -EINVAL;
                        xmlFree(slots);
                        if (r < 0) {
                                snprintf(err, errlen, "<max-was> needs slots of 0..255");
                                return -EINVAL;
                        }
                        m->max_was_known = true;
                        m->max_was_bytes = v;
                        m->max_was_slots = (unsigned)s;
                }
                return 0;
        case F_BUFFER:
        case F_WEIGHT: {
                uint64_t lo = bit == F_BUFFER ? SETTINGS_BUFFER_MIN : 0;
                uint64_t hi = bit == F_BUFFER ? SETTINGS_BUFFER_MAX : SETTINGS_WEIGHT_MAX;
                if (lx_text(n, text, sizeof(text)) < 0 || lx_uint(text, hi, &v) < 0 || v < lo) {
                        snprintf(err, errlen, "<%s> is not a number of %llu..%llu", name,
                                 (unsigned long long)lo, (unsigned long long)hi);
                        return -EINVAL;
                }
                if (bit == F_BUFFER)
                        m->buffer_percent = (uint32_t)v;
                else
                        m->weight = (uint32_t)v;
                return 0;
        }
        case F_LEND:
                if (lx_text(n, text, sizeof(text)) < 0 || switch_parse(text, &m->lend) < 0) {
                        snprintf(err, errlen, "<lend> is not " SWITCH_WORDS);
                        return -EINVAL;
                }
                return 0;
        default:
                if (lx_text(n, text, sizeof(text)) < 0 || added_parse(text, &m->added) < 0) {
                        snprintf(err, errlen, "<added> names something dynmem never adds");
                        return -EINVAL;
                }
                return 0;
        }
}

int lx_meta_read(xmlDocPtr doc, xmlNodePtr node, struct libvirt_xml_meta *ret, char *err,
                 size_t errlen)
{
        struct libvirt_xml_meta m = {.buffer_percent = SETTINGS_BUFFER_DEFAULT,
                                     .weight = SETTINGS_WEIGHT_DEFAULT,
                                     .lend = true};
        char *text = lx_dump_node(doc, node);
        unsigned seen = 0;
        size_t len = text ? strlen(text) : 0;

        free(text);
        if (len > LIBVIRT_XML_META_MAX) {
                snprintf(err, errlen, "dynmem metadata is larger than %u bytes",
                         LIBVIRT_XML_META_MAX);
                return -EINVAL;
        }
        if (strcmp((const char *)node->name, LIBVIRT_XML_META) != 0) {
                snprintf(err, errlen, "dynmem metadata element is <%.32s>, not <%s>",
                         (const char *)node->name, LIBVIRT_XML_META);
                return -EINVAL;
        }
        note_attributes(node, "", LIBVIRT_XML_EL_META, &m);
        for (xmlNodePtr n = node->children; n; n = n->next) {
                if (n->type == XML_TEXT_NODE || n->type == XML_COMMENT_NODE)
                        continue;
                if (n->type != XML_ELEMENT_NODE) {
                        snprintf(err, errlen,
                                 "dynmem metadata holds something other than elements");
                        return -EINVAL;
                }
                if (meta_field(n, &m, &seen, err, errlen) < 0)
                        return -EINVAL;
        }
        if (!(seen & F_MIN) || !(seen & F_MAX)) {
                snprintf(err, errlen, "dynmem metadata lacks <%s>",
                         (seen & F_MIN) ? "maximum" : "minimum");
                return -EINVAL;
        }
        *ret = m;
        return 0;
}

/*
 * The element's text as libvirt keeps it: each tag with the namespace prefix
 * (at most "dynmem:"), and its declaration on the element.
 */
static size_t kept_length(const char *text)
{
        size_t tags = 0;

        for (const char *p = strchr(text, '<'); p; p = strchr(p + 1, '<'))
                tags++;
        return strlen(text) + tags * (strlen(LIBVIRT_XML_NS_PREFIX) + 1) +
               sizeof(" xmlns:" LIBVIRT_XML_NS_PREFIX "=\"" LIBVIRT_XML_NS "\"");
}

/* The kept attributes of element el (LIBVIRT_XML_META_ELEMENT_NAMES), "" when none or !with. */
static const char *attrs_of(const struct libvirt_xml_meta *m, enum libvirt_xml_meta_element el,
                            bool with, char *buf, size_t len)
{
        const struct libvirt_xml_attr_span *sp = &m->attr_spans[el];

        buf[0] = '\0';
        if (with && sp->len && (size_t)sp->at + sp->len < sizeof(m->attrs) && sp->len < len) {
                memcpy(buf, m->attrs + sp->at, sp->len);
                buf[sp->len] = '\0';
        }
        return buf;
}

/* One element: <name OWN KEPT>text</name>, kept being its attributes this dynmem does not know. */
static void put_element(FILE *f, const struct libvirt_xml_meta *m, bool with,
                        enum libvirt_xml_meta_element el, const char *own, const char *text)
{
        static const char *const names[] = LIBVIRT_XML_META_ELEMENT_NAMES;
        char kept[LIBVIRT_XML_META_MAX];

        fprintf(f, "<%s%s%s>%s</%s>", names[el], own, attrs_of(m, el, with, kept, sizeof(kept)),
                text, names[el]);
}

/* The metadata element; with: what this dynmem does not know goes back too. */
static char *meta_text(const struct libvirt_xml_meta *m, bool with)
{
        char added[160], num[32], slots[32], kept[LIBVIRT_XML_META_MAX], *out = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&out, &len);

        if (!f)
                return NULL;
        libvirt_xml_added_format(m->added, added, sizeof(added));
        fprintf(f, "<%s%s>", LIBVIRT_XML_META,
                attrs_of(m, LIBVIRT_XML_EL_META, with, kept, sizeof(kept)));
        snprintf(num, sizeof(num), "%llu", (unsigned long long)m->minimum_bytes);
        put_element(f, m, with, LIBVIRT_XML_EL_MINIMUM, " unit=\"bytes\"", num);
        snprintf(num, sizeof(num), "%llu", (unsigned long long)m->maximum_bytes);
        put_element(f, m, with, LIBVIRT_XML_EL_MAXIMUM, " unit=\"bytes\"", num);
        snprintf(num, sizeof(num), "%u", m->buffer_percent);
        put_element(f, m, with, LIBVIRT_XML_EL_BUFFER, "", num);
        snprintf(num, sizeof(num), "%u", m->weight);
        put_element(f, m, with, LIBVIRT_XML_EL_WEIGHT, "", num);
        put_element(f, m, with, LIBVIRT_XML_EL_ADDED, "", added);
        if (m->max_was_known) {
                snprintf(slots, sizeof(slots), " unit=\"bytes\" slots=\"%u\"", m->max_was_slots);
                snprintf(num, sizeof(num), "%llu", (unsigned long long)m->max_was_bytes);
                put_element(f, m, with, LIBVIRT_XML_EL_MAX_WAS, slots, num);
        }
        if (m->first_bytes) {
                snprintf(num, sizeof(num), "%llu", (unsigned long long)m->first_bytes);
                put_element(f, m, with, LIBVIRT_XML_EL_FIRST, " unit=\"bytes\"", num);
        }
        /* only when off: metadata without it means yes, as it did before the setting; and
         * when on, if it carries attributes of a newer dynmem's, which go back with it */
        if (!m->lend || attrs_of(m, LIBVIRT_XML_EL_LEND, with, kept, sizeof(kept))[0])
                put_element(f, m, with, LIBVIRT_XML_EL_LEND, "", m->lend ? "yes" : "no");
        fprintf(f, "%s</%s>", with ? m->unknown : "", LIBVIRT_XML_META);
        if (fclose(f) != 0) {
                free(out);
                return NULL;
        }
        return out;
}

char *libvirt_xml_meta_format(const struct libvirt_xml_meta *m)
{
        char *out = meta_text(m, true);

        /* what a newer dynmem added (m->unknown, m->attrs) goes back as it was, unless the
         * whole would no longer be read (over LIBVIRT_XML_META_MAX): then it goes */
        if (out && (m->unknown[0] || m->attrs[0]) && kept_length(out) > LIBVIRT_XML_META_MAX) {
                free(out);
                out = meta_text(m, false);
        }
        return out;
}

/* ---- the domain ---- */

static int read_devices(xmlDocPtr doc, xmlNodePtr devices, struct libvirt_xml_domain *d,
                        uint64_t *ret_devices, char *err, size_t errlen)
{
        xmlNodePtr vmem = lx_vmem_node(devices), chan = lx_agent_channel(devices);
        xmlNodePtr balloon = lx_child(devices, "memballoon");
        uint64_t sum = 0, size;

        for (xmlNodePtr m = lx_child(devices, "memory"); m; m = lx_next(m, "memory")) {
                if (lx_device_size(m, &size) < 0 || size > SETTINGS_SIZE_MAX - sum) {
                        snprintf(err, errlen, "a memory device has a bad size");
                        return -EINVAL;
                }
                sum += size;
        }
        *ret_devices = sum;
        if (vmem) {
                xmlNodePtr t = lx_child(vmem, "target");
                xmlNodePtr cur = lx_child(t, "current");
                d->vmem = lx_attr_is(vmem, "model", "virtio-mem");
                if (d->vmem && (lx_device_size(vmem, &d->vmem_size) < 0 ||
                                lx_size(lx_child(t, "block"), KIB, &d->vmem_block) < 0 ||
                                lx_size(lx_child(t, "requested"), KIB, &d->vmem_requested) < 0 ||
                                (cur && lx_size(cur, KIB, &d->vmem_current) < 0))) {
                        snprintf(err, errlen, "dynmem's virtio-mem device has bad sizes");
                        return -EINVAL;
                }
                d->vmem_current_known = cur != NULL;
                if (d->vmem && !(d->vmem_xml = lx_dump_node(doc, vmem))) {
                        snprintf(err, errlen, "out of memory");
                        return -ENOMEM;
                }
        }
        if (chan) {
                xmlChar *path = xmlGetNoNsProp(lx_child(chan, "source"), (const xmlChar *)"path");
                d->agent_channel = true;
                if (path && strlen((const char *)path) < sizeof(d->agent_path))
                        snprintf(d->agent_path, sizeof(d->agent_path), "%s", (const char *)path);
                xmlFree(path);
        }
        if (balloon && !lx_attr_is(balloon, "model", "none")) {
                uint64_t period = 0;
                xmlChar *p = xmlGetNoNsProp(lx_child(balloon, "stats"), (const xmlChar *)"period");
                d->balloon = true;
                if (p && lx_uint((const char *)p, 86400, &period) == 0)
                        d->stats_period = (unsigned)period;
                xmlFree(p);
        }
        return 0;
}

/*
 * The learned element's text (the first, should a hand-written XML hold
 * two): kept when it is at most LIBVIRT_XML_LEARNED_MAX, else only noted.
 * What the text says is checked by whoever reads it.
 */
static void read_learned(xmlNodePtr root, struct libvirt_xml_domain *d)
{
        xmlNodePtr md = lx_child(root, "metadata");

        for (xmlNodePtr n = md ? md->children : NULL; n; n = n->next) {
                if (n->type != XML_ELEMENT_NODE || !n->ns || !n->ns->href ||
                    strcmp((const char *)n->ns->href, LIBVIRT_XML_LEARNED_NS) != 0)
                        continue;
                xmlChar *text = xmlNodeGetContent(n);
                size_t len = text ? strlen((const char *)text) : 0;
                if (len > LIBVIRT_XML_LEARNED_MAX)
                        d->learned_oversize = true;
                else
                        d->learned = strdup(text ? (const char *)text : "");
                xmlFree(text);
                return;
        }
}

/*
 * The metadata, and the first block it records (a domain enabled before
 * dynmem plugged one at boot records none): it must lie in the device.
 */
static void read_meta(xmlDocPtr doc, xmlNodePtr root, struct libvirt_xml_domain *d)
{
        xmlNodePtr meta = lx_meta_node(root);
        unsigned newer = lx_meta_newer(root);
        uint64_t first;

        /* a newer dynmem's metadata may mean what this one would misread: left alone */
        if (newer) {
                d->meta_state = LIBVIRT_XML_META_NEWER;
                snprintf(d->meta_error, sizeof(d->meta_error),
                         "version %u (" LIBVIRT_XML_NS_BASE "%u), written by a newer dynmem "
                         "(this one reads version %d); the domain is left as it is",
                         newer, newer, LIBVIRT_XML_NS_VERSION);
                return;
        }
        if (!meta)
                return;
        d->meta_state = LIBVIRT_XML_META_BAD;
        if (lx_meta_read(doc, meta, &d->meta, d->meta_error, sizeof(d->meta_error)) < 0)
                return;
        first = d->meta.first_bytes;
        if (first && (!d->vmem || !d->vmem_block || first % d->vmem_block || first > d->vmem_size ||
                      first > d->boot_bytes)) {
                snprintf(d->meta_error, sizeof(d->meta_error),
                         "<first> %llu does not fit dynmem's virtio-mem device",
                         (unsigned long long)first);
                return;
        }
        d->first_bytes = first;
        d->meta_state = LIBVIRT_XML_META_OK;
}

int libvirt_xml_parse(const char *xml, size_t len, struct libvirt_xml_domain *ret, char *err,
                      size_t errlen)
{
        struct libvirt_xml_domain d = {0};
        xmlDocPtr doc = lx_read(xml, len, err, errlen);
        xmlNodePtr root, cur;
        uint64_t devices = 0;
        int r = -EINVAL;

        if (!doc)
                return -EINVAL;
        root = xmlDocGetRootElement(doc);
        d.live = xmlHasProp(root, (const xmlChar *)"id") != NULL;
        d.id = -1;
        xmlChar *id = xmlGetNoNsProp(root, (const xmlChar *)"id");
        uint64_t id_value;
        if (id && lx_uint((const char *)id, INT32_MAX, &id_value) == 0)
                d.id = (int)id_value;
        xmlFree(id);
        xmlChar *type = xmlGetNoNsProp(root, (const xmlChar *)"type");
        if (type && strlen((const char *)type) < sizeof(d.type))
                snprintf(d.type, sizeof(d.type), "%s", (const char *)type);
        xmlFree(type);
        if (lx_text(lx_child(root, "name"), d.name, sizeof(d.name)) < 0 || !d.name[0]) {
                snprintf(err, errlen, "domain XML without a name of at most %d characters",
                         VM_NAME_MAX - 1);
                goto out;
        }
        if (lx_text(lx_child(root, "uuid"), d.uuid, sizeof(d.uuid)) < 0) {
                snprintf(err, errlen, "%s: bad <uuid>", d.name);
                goto out;
        }
        if (lx_size(lx_child(root, "memory"), KIB, &d.total_bytes) < 0 || !d.total_bytes) {
                snprintf(err, errlen, "%s: bad or missing <memory>", d.name);
                goto out;
        }
        cur = lx_child(root, "currentMemory");
        d.current_bytes = d.total_bytes;
        if (cur && lx_size(cur, KIB, &d.current_bytes) < 0) {
                snprintf(err, errlen, "%s: bad <currentMemory>", d.name);
                goto out;
        }
        /* a running domain's is QEMU's balloon figure, which the guest (or a QEMU it took over)
         * sets: never more than the domain's memory */
        if (d.current_bytes > d.total_bytes)
                d.current_bytes = d.total_bytes;
        char why[160];
        if ((r = read_devices(doc, lx_child(root, "devices"), &d, &devices, why, sizeof(why))) <
            0) {
                snprintf(err, errlen, "%s: %s", d.name, why);
                goto out;
        }
        r = -EINVAL;
        if (devices >= d.total_bytes) {
                snprintf(err, errlen, "%s: its memory devices take all of <memory>", d.name);
                goto out;
        }
        d.boot_bytes = d.total_bytes - devices;
        read_meta(doc, root, &d);
        read_learned(root, &d);
        d.startup_bytes = d.boot_bytes + d.first_bytes;
        *ret = d;
        d.vmem_xml = NULL;
        d.learned = NULL;
        r = 0;
out:
        free(d.vmem_xml);
        free(d.learned);
        xmlFreeDoc(doc);
        return r;
}

void libvirt_xml_domain_free(struct libvirt_xml_domain *d)
{
        if (!d)
                return;
        free(d->vmem_xml);
        d->vmem_xml = NULL;
        free(d->learned);
        d->learned = NULL;
}

char *libvirt_xml_learned_format(const char *text)
{
        size_t len = strlen(text),
               cap = sizeof("<" LIBVIRT_XML_LEARNED "></" LIBVIRT_XML_LEARNED ">");
        char *out, *p;

        if (len > LIBVIRT_XML_LEARNED_MAX)
                return NULL;
        cap += len * 5; /* "&amp;" at worst */
        if (!(out = malloc(cap)))
                return NULL;
        p = out + sprintf(out, "<" LIBVIRT_XML_LEARNED ">");
        for (const char *c = text; *c; c++) {
                const char *esc = *c == '&'   ? "&amp;"
                                  : *c == '<' ? "&lt;"
                                  : *c == '>' ? "&gt;"
                                              : NULL;
                if (esc)
                        p += sprintf(p, "%s", esc);
                else
                        *p++ = *c;
        }
        sprintf(p, "</" LIBVIRT_XML_LEARNED ">");
        return out;
}

int libvirt_xml_settings(const struct libvirt_xml_domain *d, struct vm_settings *ret, char *err,
                         size_t errlen)
{
        struct vm_settings s = {
            .dynamic = true,
            .startup_bytes = d->startup_bytes,
            .minimum_bytes = d->meta.minimum_bytes,
            .maximum_bytes = d->meta.maximum_bytes,
            .buffer_percent = d->meta.buffer_percent,
            .weight = d->meta.weight,
            .block_bytes = d->vmem ? d->vmem_block : SETTINGS_BLOCK_DEFAULT,
            .lend = d->meta.lend,
        };
        uint64_t top = d->boot_bytes + (d->vmem ? d->vmem_size : 0);
        char a[32], b[32];

        if (d->meta_state != LIBVIRT_XML_META_OK) {
                snprintf(err, errlen, "%s",
                         d->meta_state == LIBVIRT_XML_META_NONE ? "no dynmem metadata"
                                                                : d->meta_error);
                return -EINVAL;
        }
        if (settings_check(&s, err, errlen) < 0)
                return -EINVAL;
        /* dynmem set cannot help: it refuses metadata that is bad; enable sizes the device */
        if (s.maximum_bytes > top) {
                snprintf(err, errlen,
                         "maximum %s is more than the domain can hold (%s%s); dynmem enable with "
                         "--maximum, while the domain is shut off, %s",
                         size_format(s.maximum_bytes, a, sizeof(a)), size_format(top, b, sizeof(b)),
                         d->vmem ? " with its virtio-mem device" : ", no virtio-mem device",
                         d->vmem ? "makes the device larger" : "adds one");
                return -EINVAL;
        }
        *ret = s;
        return 0;
}

void libvirt_xml_layout(const struct libvirt_xml_domain *x, struct libvirt_xml_layout *ret)
{
        struct libvirt_xml_layout l = {
            .boot = x->boot_bytes,
            .region = x->vmem ? x->vmem_size : 0,
            .block = x->vmem && x->vmem_block ? x->vmem_block : SETTINGS_BLOCK_DEFAULT,
            .first = x->vmem ? x->first_bytes : 0,
        };

        if (l.first && x->meta.maximum_bytes > l.boot) {
                uint64_t want = size_round_up(x->meta.maximum_bytes - l.boot, l.block);
                uint64_t has =
                    x->vmem_current > x->vmem_requested ? x->vmem_current : x->vmem_requested;
                want = want > has ? want : has; /* never below what it holds or was asked */
                l.region = want < l.region ? want : l.region;
        }
        *ret = l;
}

void libvirt_xml_static_settings(const struct libvirt_xml_domain *d, struct vm_settings *ret)
{
        uint64_t size = size_round_up(d->total_bytes, SETTINGS_BLOCK_DEFAULT);

        *ret = (struct vm_settings){.dynamic = false,
                                    .startup_bytes = size,
                                    .minimum_bytes = size,
                                    .maximum_bytes = size,
                                    .buffer_percent = SETTINGS_BUFFER_DEFAULT,
                                    .weight = SETTINGS_WEIGHT_DEFAULT,
                                    .block_bytes = SETTINGS_BLOCK_DEFAULT,
                                    .lend = true};
}

char *libvirt_xml_vmem_requested(const char *device_xml, uint64_t requested_bytes)
{
        xmlDocPtr doc;
        xmlNodePtr req;
        char *out = NULL;

        if (!device_xml)
                return NULL;
        doc = xmlReadMemory(device_xml, (int)strlen(device_xml), "device.xml", NULL,
                            XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
        if (!doc)
                return NULL;
        req = lx_child(lx_child(xmlDocGetRootElement(doc), "target"), "requested");
        if (req && !doc->intSubset) {
                lx_set_kib(req, requested_bytes);
                out = lx_dump_node(doc, xmlDocGetRootElement(doc));
        }
        xmlFreeDoc(doc);
        return out;
}
