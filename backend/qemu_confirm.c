/*
 * qemu_confirm: what the running QEMU of a VM says it is, over the VM's own
 * QMP once it is ready (once per QEMU: a QMP reconnect finds the same one):
 * its version (lib/qmp.c reads it from the greeting, or asks first on an
 * adopted socket), its machine type (qom-get /machine type) and virtio-mem's
 * unplugged-inaccessible and dynamic-memslots (qom-get on
 * dm-vmem). After a start this confirms what
 * qemu_caps_choose() chose (a difference is logged and QEMU's word taken);
 * after a reattach it is all the backend knows, logged once.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "qemu_int.h"
#include "qmp.h"

#define TYPE_SUFFIX "-machine" /* QOM type names of machines end so */

static void confirm_done(struct qemu_vm *qv);

static void step(struct qemu_vm *qv)
{
        if (qv->seen.left > 0 && --qv->seen.left == 0)
                confirm_done(qv);
}

static void on_machine(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        struct qemu_vm *qv = userdata;
        const char *type = json_string_value(reply->ret);
        size_t n = type ? strlen(type) : 0, suffix = strlen(TYPE_SUFFIX);
        unsigned major, minor;

        (void)q;
        if (reply->status == QMP_OK && n > suffix && n - suffix < QEMU_MACHINE_NAME_MAX &&
            strcmp(type + n - suffix, TYPE_SUFFIX) == 0) {
                char name[QEMU_MACHINE_NAME_MAX];
                snprintf(name, sizeof(name), "%.*s", (int)(n - suffix), type);
                if (qemu_machine_version(name, &major, &minor))
                        snprintf(qv->seen.machine, sizeof(qv->seen.machine), "%s", name);
        }
        step(qv);
}

static void on_inaccessible(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        struct qemu_vm *qv = userdata;
        const char *v = json_string_value(reply->ret);

        (void)q;
        if (reply->status == QMP_OK && v)
                qv->seen.inaccessible = strcmp(v, "on") == 0    ? QEMU_SWITCH_ON
                                        : strcmp(v, "off") == 0 ? QEMU_SWITCH_OFF
                                                                : QEMU_SWITCH_UNSET;
        step(qv);
}

static void on_memslots(struct qmp *q, const struct qmp_reply *reply, void *userdata)
{
        struct qemu_vm *qv = userdata;

        (void)q;
        /* QEMU before 8.2 has no such property: off. */
        qv->seen.memslots = reply->status == QMP_OK && json_is_true(reply->ret);
        step(qv);
}

static json_t *qom_get(const char *path, const char *property)
{
        return json_pack("{s:s, s:s}", "path", path, "property", property);
}

void qemu_confirm_features(struct qemu_vm *qv)
{
        const struct {
                const char *execute;
                json_t *args;
                qmp_reply_fn fn;
                bool vmem;
        } asks[] = {
            {"qom-get", qom_get("/machine", "type"), on_machine, false},
            {"qom-get", qom_get(QEMU_PATH_VMEM, "unplugged-inaccessible"), on_inaccessible, true},
            {"qom-get", qom_get(QEMU_PATH_VMEM, "dynamic-memslots"), on_memslots, true},
        };

        qv->seen = (struct qemu_seen){.left = 1}; /* held until every command is queued */
        for (size_t i = 0; i < sizeof(asks) / sizeof(*asks); i++) {
                if (asks[i].vmem && qv->mem.layout.region == 0) {
                        json_decref(asks[i].args);
                        continue;
                }
                if (qmp_command(qv->qmp, asks[i].execute, asks[i].args, asks[i].fn, qv) == 0)
                        qv->seen.left++;
        }
        step(qv);
}

/* After a reattach: what the running QEMU says is all there is to know. */
static void adopt(struct qemu_vm *qv)
{
        struct qemu_features *f = &qv->features;
        char line[sizeof(qv->features_logged)];

        *f = (struct qemu_features){.known = true, .confirmed = true};
        memcpy(f->version, qv->seen.version, sizeof(f->version));
        snprintf(f->machine, sizeof(f->machine), "%s", qv->seen.machine);
        f->vmem = qv->mem.layout.region > 0;
        f->unplugged_inaccessible = qv->seen.inaccessible;
        f->dynamic_memslots = qv->seen.memslots;
        snprintf(f->unplugged_inaccessible_why, sizeof(f->unplugged_inaccessible_why),
                 "as the running QEMU has it");
        snprintf(f->dynamic_memslots_why, sizeof(f->dynamic_memslots_why),
                 "as the running QEMU has it");
        qemu_features_choose_run_with(f, false);
        qemu_features_describe(f, line, sizeof(line));
        if (strcmp(line, qv->features_logged) != 0)
                log_msg(LOG_INFO, "vm \"%s\": found running: %s", qv->vm->name, line);
        snprintf(qv->features_logged, sizeof(qv->features_logged), "%s", line);
}

static void confirm_done(struct qemu_vm *qv)
{
        struct qemu_features *f = &qv->features;
        struct qemu_seen *s = &qv->seen;

        qmp_version(qv->qmp, &s->version[0], &s->version[1], &s->version[2]);
        if (!s->version[0] || !s->machine[0]) {
                log_msg(LOG_WARNING, "vm \"%s\": QEMU did not say its version and machine type",
                        qv->vm->name);
                return;
        }
        if (!f->known) {
                adopt(qv);
                return;
        }
        bool same = memcmp(f->version, s->version, sizeof(s->version)) == 0 &&
                    strcmp(f->machine, s->machine) == 0 &&
                    (!f->vmem || ((f->unplugged_inaccessible == QEMU_SWITCH_UNSET ||
                                   f->unplugged_inaccessible == s->inaccessible) &&
                                  f->dynamic_memslots == s->memslots));
        if (!same) {
                log_msg(LOG_WARNING,
                        "vm \"%s\": QEMU %u.%u.%u reports machine %s, unplugged-inaccessible "
                        "%s, dynamic-memslots %s, not what was chosen; going by what it reports",
                        qv->vm->name, s->version[0], s->version[1], s->version[2], s->machine,
                        s->inaccessible == QEMU_SWITCH_ON ? "on" : "off",
                        s->memslots ? "on" : "off");
                memcpy(f->version, s->version, sizeof(f->version));
                snprintf(f->machine, sizeof(f->machine), "%s", s->machine);
                if (f->vmem) {
                        f->unplugged_inaccessible = s->inaccessible;
                        f->dynamic_memslots = s->memslots;
                }
        }
        f->confirmed = true;
}
