/*
 * qemu_caps: what a QEMU binary offers, read from its QMP replies (version,
 * virtio-mem's properties, -run-with, machine types, hv-balloon), and the
 * choices dynmem makes from it for one VM: the versioned machine type,
 * unplugged-inaccessible and dynamic-memslots, and how they read in a log
 * line and in describe(). Pure: no I/O; qemu_probe.c asks QEMU, qemu.c logs
 * and applies. See docs/qemu-backend.md, "QEMU
 * versions".
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qemu_int.h"
#include "qmp.h"

#define VERSION_PART_MAX 9999 /* a version number part above this is not QEMU's */
#define PROPERTIES_MAX   4096 /* properties looked at in device-list-properties */
#define OPTIONS_MAX      256  /* options and parameters in query-command-line-options */
#define NAME_MAX_LEN     (QEMU_MACHINE_NAME_MAX - 1)

/* The first x86 machine types that make unplugged-inaccessible their default. */
#define INACCESSIBLE_MAJOR 8
#define INACCESSIBLE_MINOR 1

void qemu_caps_free(struct qemu_caps *c)
{
        if (!c)
                return;
        free(c->machines);
        *c = (struct qemu_caps){0};
}

int qemu_caps_read_version(struct qemu_caps *c, const json_t *ret)
{
        const json_t *v = json_is_object(ret) ? json_object_get(ret, "qemu") : NULL;
        static const char *const parts[] = {"major", "minor", "micro"};
        uint64_t n[3];

        for (size_t i = 0; i < 3; i++)
                if (qmp_get_u64(v, parts[i], VERSION_PART_MAX, &n[i]) < 0)
                        return -EPROTO;
        if (n[0] == 0)
                return -EPROTO;
        for (size_t i = 0; i < 3; i++)
                c->version[i] = (unsigned)n[i];
        return 0;
}

/*
 * Visit each object of an array (at most max) with its string member key;
 * -EPROTO on a bad shape or when fn says so.
 */
static int each_named(const json_t *array, const char *key, size_t max,
                      int (*fn)(void *, const char *, const json_t *), void *arg)
{
        size_t i;
        json_t *item;

        if (!json_is_array(array) || json_array_size(array) > max)
                return -EPROTO;
        json_array_foreach(array, i, item)
        {
                const char *name = qmp_get_string(item, key, 128);
                if (!name || fn(arg, name, item) < 0)
                        return -EPROTO;
        }
        return 0;
}

static int vmem_property(void *arg, const char *name, const json_t *item)
{
        struct qemu_caps *c = arg;

        (void)item;
        c->dynamic_memslots |= strcmp(name, "dynamic-memslots") == 0;
        c->unplugged_inaccessible |= strcmp(name, "unplugged-inaccessible") == 0;
        c->early_migration |= strcmp(name, "x-early-migration") == 0;
        return 0;
}

int qemu_caps_read_vmem(struct qemu_caps *c, const json_t *ret)
{
        struct qemu_caps found = {0};
        int r;

        if (!ret) {
                c->virtio_mem = c->dynamic_memslots = false;
                c->unplugged_inaccessible = c->early_migration = false;
                return 0;
        }
        if ((r = each_named(ret, "name", PROPERTIES_MAX, vmem_property, &found)) < 0)
                return r;
        c->virtio_mem = true;
        c->dynamic_memslots = found.dynamic_memslots;
        c->unplugged_inaccessible = found.unplugged_inaccessible;
        c->early_migration = found.early_migration;
        return 0;
}

static int user_parameter(void *arg, const char *name, const json_t *item)
{
        (void)item;
        *(bool *)arg |= strcmp(name, "user") == 0;
        return 0;
}

static int run_with_option(void *arg, const char *name, const json_t *opt)
{
        if (strcmp(name, "run-with") != 0)
                return 0;
        return each_named(json_object_get(opt, "parameters"), "name", OPTIONS_MAX, user_parameter,
                          arg);
}

int qemu_caps_read_run_with(struct qemu_caps *c, const json_t *ret)
{
        bool user = false;

        if (!ret) {
                c->run_with_user = false;
                return 0;
        }
        if (each_named(ret, "option", OPTIONS_MAX, run_with_option, &user) < 0)
                return -EPROTO;
        c->run_with_user = user;
        return 0;
}

/* Machine type names as QEMU writes them: letters, digits, '.', '-' and '_'. */
static bool machine_name_ok(const char *s)
{
        size_t n = s ? strlen(s) : 0;

        if (n == 0 || n > NAME_MAX_LEN)
                return false;
        return strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_") == n;
}

int qemu_caps_read_machines(struct qemu_caps *c, const json_t *ret)
{
        struct qemu_machine_type *m;
        size_t i, n = 0;
        json_t *item;

        if (!json_is_array(ret) || json_array_size(ret) > QEMU_MACHINES_MAX)
                return -EPROTO;
        if (!(m = calloc(json_array_size(ret) + 1, sizeof(*m))))
                return -ENOMEM;
        json_array_foreach(ret, i, item)
        {
                const char *name = qmp_get_string(item, "name", NAME_MAX_LEN);
                const char *alias = qmp_get_string(item, "alias", NAME_MAX_LEN);
                if (!machine_name_ok(name) ||
                    (json_object_get(item, "alias") && !machine_name_ok(alias))) {
                        free(m);
                        return -EPROTO;
                }
                snprintf(m[n].name, sizeof(m[n].name), "%s", name);
                snprintf(m[n].alias, sizeof(m[n].alias), "%s", alias ? alias : "");
                n++;
        }
        free(c->machines);
        c->machines = m;
        c->n_machines = n;
        return 0;
}

int qemu_caps_read_hv_balloon(struct qemu_caps *c, const json_t *ret)
{
        if (ret && !json_is_array(ret))
                return -EPROTO;
        c->hv_balloon = ret != NULL;
        return 0;
}

bool qemu_caps_run_with_user(const struct qemu_caps *c)
{
        return c && c->run_with_user;
}

bool qemu_machine_version(const char *machine, unsigned *ret_major, unsigned *ret_minor)
{
        static const char *const families[] = {"pc-i440fx-", "pc-q35-"};
        unsigned major, minor;
        int end = 0;

        for (size_t i = 0; i < sizeof(families) / sizeof(*families); i++) {
                size_t n = strlen(families[i]);
                if (strncmp(machine, families[i], n) != 0)
                        continue;
                const char *v = machine + n;
                if (v[0] < '0' || v[0] > '9' || sscanf(v, "%3u.%3u%n", &major, &minor, &end) != 2 ||
                    v[end] != '\0')
                        return false;
                *ret_major = major;
                *ret_minor = minor;
                return true;
        }
        return false;
}

/* The machine type that name (a type or an alias) stands for, or NULL. */
static const char *resolve_machine(const struct qemu_caps *c, const char *name)
{
        for (size_t i = 0; i < c->n_machines; i++)
                if (strcmp(c->machines[i].alias, name) == 0)
                        return c->machines[i].name;
        for (size_t i = 0; i < c->n_machines; i++)
                if (strcmp(c->machines[i].name, name) == 0)
                        return c->machines[i].name;
        return NULL;
}

static void choose_inaccessible(const struct qemu_caps *c, unsigned major, unsigned minor,
                                struct qemu_features *f)
{
        bool on = major > INACCESSIBLE_MAJOR ||
                  (major == INACCESSIBLE_MAJOR && minor >= INACCESSIBLE_MINOR);

        if (!c->unplugged_inaccessible) {
                f->unplugged_inaccessible = QEMU_SWITCH_UNSET;
                snprintf(f->unplugged_inaccessible_why, sizeof(f->unplugged_inaccessible_why),
                         "QEMU %u.%u has no such property, 7.0 and later do", c->version[0],
                         c->version[1]);
        } else if (on) {
                f->unplugged_inaccessible = QEMU_SWITCH_ON;
                snprintf(f->unplugged_inaccessible_why, sizeof(f->unplugged_inaccessible_why),
                         "machine type %s: its default from %d.%d on", f->machine,
                         INACCESSIBLE_MAJOR, INACCESSIBLE_MINOR);
        } else {
                f->unplugged_inaccessible = QEMU_SWITCH_OFF;
                snprintf(f->unplugged_inaccessible_why, sizeof(f->unplugged_inaccessible_why),
                         "machine type %s keeps it off for guests without the feature, "
                         "on from %d.%d",
                         f->machine, INACCESSIBLE_MAJOR, INACCESSIBLE_MINOR);
        }
}

static void choose_memslots(const struct qemu_caps *c, struct qemu_features *f)
{
        char *why = f->dynamic_memslots_why;
        size_t len = sizeof(f->dynamic_memslots_why);

        f->dynamic_memslots = false;
        if (!c->dynamic_memslots)
                snprintf(why, len, "QEMU %u.%u has no dynamic-memslots, 8.2 and later do",
                         c->version[0], c->version[1]);
        else if (f->unplugged_inaccessible != QEMU_SWITCH_ON)
                snprintf(why, len, "it needs unplugged-inaccessible, off for machine type %s",
                         f->machine);
        else {
                f->dynamic_memslots = true;
                snprintf(why, len, "QEMU %u.%u has it: only memory slots in use are mapped",
                         c->version[0], c->version[1]);
        }
}

void qemu_features_choose_run_with(struct qemu_features *f, bool known)
{
        char *why = f->run_with_why;
        size_t len = sizeof(f->run_with_why);

        if (!known)
                snprintf(why, len, "%s", QEMU_RUN_WITH_UNUSED);
        else if (f->run_with_user)
                snprintf(why, len, "QEMU %u.%u offers it; %s", f->version[0], f->version[1],
                         QEMU_RUN_WITH_UNUSED);
        else
                snprintf(why, len, "QEMU %u.%u has no -run-with user=, 9.1 and later do",
                         f->version[0], f->version[1]);
}

int qemu_caps_choose(const struct qemu_caps *c, const char *machine, bool vmem,
                     struct qemu_features *ret, char *err, size_t errlen)
{
        struct qemu_features f = {.known = true, .vmem = vmem && c->virtio_mem};
        const char *type = resolve_machine(c, machine);
        unsigned major, minor;

        if (!type) {
                snprintf(err, errlen, "QEMU %u.%u.%u has no machine type \"%s\"", c->version[0],
                         c->version[1], c->version[2], machine);
                return -EINVAL;
        }
        if (!qemu_machine_version(type, &major, &minor)) {
                snprintf(err, errlen,
                         "machine \"%s\" is %s: dynmem runs the pc (pc-i440fx-*) and q35 "
                         "(pc-q35-*) machine types",
                         machine, type);
                return -EINVAL;
        }
        if (vmem && !c->virtio_mem) {
                snprintf(err, errlen, "QEMU %u.%u.%u has no virtio-mem-pci device", c->version[0],
                         c->version[1], c->version[2]);
                return -EINVAL;
        }
        memcpy(f.version, c->version, sizeof(f.version));
        snprintf(f.machine, sizeof(f.machine), "%s", type);
        f.run_with_user = c->run_with_user;
        f.hv_balloon = c->hv_balloon;
        f.early_migration = c->early_migration;
        qemu_features_choose_run_with(&f, true);
        if (f.vmem) {
                choose_inaccessible(c, major, minor, &f);
                choose_memslots(c, &f);
        }
        *ret = f;
        return 0;
}

static const char *switch_name(enum qemu_switch s)
{
        return s == QEMU_SWITCH_ON ? "on" : s == QEMU_SWITCH_OFF ? "off" : "unset";
}

void qemu_features_describe(const struct qemu_features *f, char *buf, size_t len)
{
        int n = snprintf(buf, len, "QEMU %u.%u.%u, machine %s", f->version[0], f->version[1],
                         f->version[2], f->machine[0] ? f->machine : "unknown");

        if (n < 0 || (size_t)n >= len)
                return;
        if (!f->vmem)
                n += snprintf(buf + n, len - (size_t)n, ", no virtio-mem device");
        else
                n += snprintf(buf + n, len - (size_t)n,
                              ", virtio-mem unplugged-inaccessible=%s (%s), dynamic-memslots=%s "
                              "(%s)",
                              switch_name(f->unplugged_inaccessible), f->unplugged_inaccessible_why,
                              f->dynamic_memslots ? "on" : "off", f->dynamic_memslots_why);
        if (n < 0 || (size_t)n >= len)
                return;
        snprintf(buf + n, len - (size_t)n, ", -run-with user= not used (%s)", f->run_with_why);
}

void qemu_features_offers(const struct qemu_features *f, char *buf, size_t len)
{
        const struct {
                bool offered;
                const char *what;
        } offers[] = {
            {f->hv_balloon, "hv-balloon"},
            {f->early_migration, "virtio-mem x-early-migration"},
        };
        size_t n = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < sizeof(offers) / sizeof(*offers); i++) {
                if (!offers[i].offered)
                        continue;
                int r = snprintf(buf + n, len - n, "%s%s", n ? ", " : "", offers[i].what);
                if (r < 0 || (size_t)r >= len - n)
                        break;
                n += (size_t)r;
        }
}

static void add_choice(struct backend_vm_description *ret, const char *name, const char *value,
                       const char *why)
{
        struct backend_vm_choice *c = &ret->choices[ret->n_choices++];

        c->name = name;
        snprintf(c->value, sizeof(c->value), "%s", value);
        snprintf(c->why, sizeof(c->why), "%s", why);
}

void qemu_features_to_description(const struct qemu_features *f, struct backend_vm_description *ret)
{
        if (!f->known)
                return;
        snprintf(ret->machine, sizeof(ret->machine), "%s", f->machine);
        if (f->vmem) {
                add_choice(ret, "virtio-mem unplugged-inaccessible",
                           switch_name(f->unplugged_inaccessible), f->unplugged_inaccessible_why);
                add_choice(ret, "virtio-mem dynamic-memslots", f->dynamic_memslots ? "on" : "off",
                           f->dynamic_memslots_why);
        }
        add_choice(ret, "-run-with user=", "not used", f->run_with_why);
        qemu_features_offers(f, ret->offers, sizeof(ret->offers));
}
