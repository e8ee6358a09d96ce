/*
 * attach: STATE_DIR/running.json and reattaching to the VMs it lists when
 * dynmemd starts. See attach.h.
 */
#include "attach.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "daemon.h"
#include "fsutil.h"
#include "inventory.h"
#include "savefile.h"
#include "log.h"
#include "policy_save.h"
#include "units.h"

#define PRESSURE_LIMIT 1e9 /* percent; anything above is not a pressure */

struct attach {
        bool enabled; /* the file is ours to keep (set once attach_init ran) */
        bool failing; /* the last write failed (logged once) */
        uint64_t sig; /* which VMs held memory, in which state, at the last write */
        double written_ms;
        char *written; /* the text last written */
        bool learned;  /* it holds what the policy learned of a VM: refreshed less often */
        /*
         * The file's entries while the backend that owns the VMs has not been
         * reached since the start (waiting): each VM its first list has
         * running claims its own (attach_claim()); the file is not written
         * meanwhile, so nothing of it is lost should dynmemd stop first.
         */
        struct attach_list pending;
        bool waiting;
};

/* ---- the file's text ---- */

static json_t *pressure_json(double p)
{
        return p < 0.0 ? json_null() : json_real(p);
}

static json_t *vm_counters_json(const struct vm_counters *c)
{
        return json_pack("{s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "added_bytes",
                         (json_int_t)c->added_bytes, "removed_bytes", (json_int_t)c->removed_bytes,
                         "add_operations", (json_int_t)c->add_operations, "remove_operations",
                         (json_int_t)c->remove_operations, "average_pressure",
                         pressure_json(c->average_pressure), "minimum_pressure",
                         pressure_json(c->minimum_pressure), "maximum_pressure",
                         pressure_json(c->maximum_pressure));
}

static json_t *host_counters_json(const struct balancer_counters *c)
{
        return json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "added_bytes",
                         (json_int_t)c->added_bytes, "removed_bytes", (json_int_t)c->removed_bytes,
                         "add_operations", (json_int_t)c->add_operations, "remove_operations",
                         (json_int_t)c->remove_operations, "refused_starts",
                         (json_int_t)c->refused_starts, "crashes", (json_int_t)c->crashes,
                         "policy_refusals", (json_int_t)c->policy_refusals);
}

uint64_t attach_wall_ms(void)
{
        struct timespec ts;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0 || ts.tv_sec < 0)
                return 0;
        return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* What the policy learned of the VM ("policy"), when it learned anything; false on ENOMEM. */
static bool put_learned(const struct daemon *d, const struct vm *vm, json_t *obj, bool *learned)
{
        const struct policy_vm_memory *m = balancer_memory_const(&d->bal, vm);
        struct policy_learned l;

        if (!m || !policy_learned_take(m, daemon_now(d), &l))
                return true;
        *learned = true;
        return json_object_set_new(obj, "policy", policy_learned_json(&l)) == 0;
}

static json_t *vm_json(const struct daemon *d, const struct vm *vm, bool *learned)
{
        const struct registry_entry *e = registry_entry_of(vm);
        json_t *obj = json_pack(
            "{s:s, s:s, s:I, s:I, s:o}", "name", vm->name, "state", vm_state_name(vm->state),
            "assigned_bytes", (json_int_t)vm->obs.assigned_bytes, "target_bytes",
            (json_int_t)vm->target_bytes, "counters", vm_counters_json(&vm->counters));

        if (obj && e && e->uuid[0] && json_object_set_new(obj, "uuid", json_string(e->uuid)) < 0) {
                json_decref(obj);
                return NULL;
        }
        if (obj && !put_learned(d, vm, obj, learned)) {
                json_decref(obj);
                return NULL;
        }
        return obj;
}

/* The file's text; *learned says whether it holds what the policy learned of any VM. */
static char *format(const struct daemon *d, bool *learned)
{
        json_t *vms = json_array(), *root;
        char *text = NULL;

        *learned = false;
        for (size_t i = 0; vms && i < d->reg.n; i++) {
                const struct vm *vm = d->reg.vms[i];
                if (vm_holds_memory(vm) &&
                    json_array_append_new(vms, vm_json(d, vm, learned)) < 0) {
                        json_decref(vms);
                        return NULL;
                }
        }
        root = vms ? json_pack("{s:i, s:o, s:o}", "version", ATTACH_VERSION, "host",
                               host_counters_json(&d->bal.counters), "vms", vms)
                   : NULL;
        /* when the histories are aged from: only with one (else an unchanged file is not written)
         */
        if (root && *learned &&
            json_object_set_new(root, "written_at_ms", json_integer((json_int_t)attach_wall_ms())) <
                0) {
                json_decref(root);
                return NULL;
        }
        /* 17 digits: a learned weight read back is the one written, to the bit */
        if (root)
                text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
        json_decref(root);
        return text;
}

char *attach_format(const struct daemon *d)
{
        bool learned;

        return format(d, &learned);
}

/* ---- parsing ---- */

/* obj[key] as an integer 0..ATTACH_BYTES_LIMIT; a missing key leaves *ret alone. */
static int get_count(const json_t *obj, const char *key, uint64_t *ret, char *err, size_t errlen)
{
        const json_t *v = json_object_get(obj, key);

        if (!v)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < 0 ||
            (uint64_t)json_integer_value(v) > ATTACH_BYTES_LIMIT) {
                snprintf(err, errlen, "%s: not a count of 0..2^62", key);
                return -EINVAL;
        }
        *ret = (uint64_t)json_integer_value(v);
        return 0;
}

static int get_pressure(const json_t *obj, const char *key, double *ret, char *err, size_t errlen)
{
        const json_t *v = json_object_get(obj, key);

        if (!v || json_is_null(v)) {
                *ret = -1.0;
                return 0;
        }
        if (!json_is_number(v) || !(json_number_value(v) >= 0.0) ||
            json_number_value(v) > PRESSURE_LIMIT) {
                snprintf(err, errlen, "%s: not a pressure", key);
                return -EINVAL;
        }
        *ret = json_number_value(v);
        return 0;
}

static int parse_counters(const json_t *obj, struct vm_counters *c, char *err, size_t errlen)
{
        static const struct {
                const char *key;
                size_t off;
        } counts[] =
            {
                {"added_bytes", offsetof(struct vm_counters, added_bytes)},
                {"removed_bytes", offsetof(struct vm_counters, removed_bytes)},
                {"add_operations", offsetof(struct vm_counters, add_operations)},
                {"remove_operations", offsetof(struct vm_counters, remove_operations)},
            },
          pressures[] = {
              {"average_pressure", offsetof(struct vm_counters, average_pressure)},
              {"minimum_pressure", offsetof(struct vm_counters, minimum_pressure)},
              {"maximum_pressure", offsetof(struct vm_counters, maximum_pressure)},
          };

        vm_counters_reset(c);
        if (!obj)
                return 0;
        if (!json_is_object(obj)) {
                snprintf(err, errlen, "counters: not an object");
                return -EINVAL;
        }
        for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++)
                if (get_count(obj, counts[i].key, (uint64_t *)((char *)c + counts[i].off), err,
                              errlen) < 0)
                        return -EINVAL;
        for (size_t i = 0; i < sizeof(pressures) / sizeof(pressures[0]); i++)
                if (get_pressure(obj, pressures[i].key, (double *)((char *)c + pressures[i].off),
                                 err, errlen) < 0)
                        return -EINVAL;
        return 0;
}

static int parse_host(const json_t *obj, struct balancer_counters *c, char *err, size_t errlen)
{
        static const struct {
                const char *key;
                size_t off;
        } fields[] = {
            {"added_bytes", offsetof(struct balancer_counters, added_bytes)},
            {"removed_bytes", offsetof(struct balancer_counters, removed_bytes)},
            {"add_operations", offsetof(struct balancer_counters, add_operations)},
            {"remove_operations", offsetof(struct balancer_counters, remove_operations)},
            {"refused_starts", offsetof(struct balancer_counters, refused_starts)},
            {"crashes", offsetof(struct balancer_counters, crashes)},
            {"policy_refusals", offsetof(struct balancer_counters, policy_refusals)},
        };

        *c = (struct balancer_counters){0};
        if (!obj)
                return 0;
        if (!json_is_object(obj)) {
                snprintf(err, errlen, "host: not an object");
                return -EINVAL;
        }
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
                char why[128];
                if (get_count(obj, fields[i].key, (uint64_t *)((char *)c + fields[i].off), why,
                              sizeof(why)) < 0) {
                        snprintf(err, errlen, "host: %s", why);
                        return -EINVAL;
                }
        }
        return 0;
}

static const char *const attach_members[] = {
    "state", "assigned_bytes", "target_bytes", "counters", "policy", "uuid", NULL};

static int parse_vm(const json_t *obj, void *vm, char *ignored, size_t ignoredlen, char *err,
                    size_t errlen)
{
        struct attach_vm *av = vm;
        const char *name = NULL, *state = NULL, *uuid = NULL;
        json_t *counters = NULL, *policy = NULL;
        json_int_t assigned = -1, target = -1;
        json_error_t jerr;

        if (json_unpack_ex((json_t *)obj, &jerr, 0, "{s:s, s:s, s:I, s:I, s?o, s?o, s?s}", "name",
                           &name, "state", &state, "assigned_bytes", &assigned, "target_bytes",
                           &target, "counters", &counters, "policy", &policy, "uuid", &uuid) < 0) {
                snprintf(err, errlen, "%s", jerr.text);
                return -EINVAL;
        }
        if (vm_state_parse(state, &av->state) < 0 ||
            (av->state != VM_RUNNING && av->state != VM_STOPPING)) {
                snprintf(err, errlen, "%s: state \"%.32s\" is not running or stopping", name,
                         state);
                return -EINVAL;
        }
        if (assigned < 0 || (uint64_t)assigned > SETTINGS_SIZE_MAX || target < 0 ||
            (uint64_t)target > SETTINGS_SIZE_MAX) {
                snprintf(err, errlen, "%s: sizes out of range", name);
                return -EINVAL;
        }
        av->assigned_bytes = (uint64_t)assigned;
        av->target_bytes = (uint64_t)target;
        char why[128] = "";
        (void)ignored, (void)ignoredlen; /* counters it does not know are not worth a line */
        if (parse_counters(counters, &av->counters, why, sizeof(why)) < 0) {
                snprintf(err, errlen, "%s: %s", name, why);
                return -EINVAL;
        }
        if (uuid && strlen(uuid) >= sizeof(av->uuid)) {
                snprintf(err, errlen, "%s: uuid: longer than %zu characters", name,
                         sizeof(av->uuid) - 1);
                return -EINVAL;
        }
        snprintf(av->uuid, sizeof(av->uuid), "%s", uuid ? uuid : "");
        /* read when the VM is reattached: one that does not hold costs only itself */
        av->policy = json_incref(policy);
        return 0;
}

static void free_vm_item(void *vm)
{
        json_decref(((struct attach_vm *)vm)->policy);
}

static const char *const attach_extras[] = {"host", "written_at_ms", NULL};

static const struct savefile_spec attach_spec = {
    .version = ATTACH_VERSION,
    .shape = "{\"version\": 1, \"host\": {...}, \"vms\": [...]}",
    .extras = attach_extras,
    .members = attach_members,
    .vm_size = sizeof(struct attach_vm),
    .name_offset = offsetof(struct attach_vm, name),
    .name_size = sizeof(((struct attach_vm *)0)->name),
    .parse_vm = parse_vm,
    .free_vm = free_vm_item,
};

int attach_parse(const char *text, size_t len, struct attach_list *ret, char *err, size_t errlen)
{
        struct attach_list l = {0};
        json_t *root;
        void *vms;
        char why[384] = "";
        int r = savefile_parse_lenient(text, len, &attach_spec, &root, &vms, &l.n, &l.dropped,
                                       &l.ignored, err, errlen);

        if (r < 0)
                return r;
        l.vms = vms;
        const json_t *at = json_object_get(root, "written_at_ms");
        if (json_is_integer(at) && json_integer_value(at) >= 0) {
                l.written_at_known = true;
                l.written_at_ms = (uint64_t)json_integer_value(at);
        }
        /* Counters are cheap to lose, the VMs are not: bad ones start from zero. */
        if (parse_host(json_object_get(root, "host"), &l.host, why, sizeof(why)) < 0) {
                l.host = (struct balancer_counters){0};
                snprintf(l.host_problem, sizeof(l.host_problem), "%s", why);
        }
        json_decref(root);
        *ret = l;
        return 0;
}

void attach_list_free(struct attach_list *l)
{
        if (!l)
                return;
        for (size_t i = 0; i < l->n; i++)
                free_vm_item(&l->vms[i]);
        free(l->vms);
        savefile_drops_free(&l->dropped);
        savefile_drops_free(&l->ignored);
        *l = (struct attach_list){0};
}

/* ---- writing ---- */

/* Which VMs hold memory and in which state: changes when one starts, stops or crashes. */
static uint64_t holding_signature(const struct daemon *d)
{
        uint64_t h = 1469598103934665603ull; /* FNV-1a */

        for (size_t i = 0; i < d->reg.n; i++) {
                const struct vm *vm = d->reg.vms[i];
                if (!vm_holds_memory(vm))
                        continue;
                h = (h ^ (uint64_t)(uintptr_t)vm) * 1099511628211ull;
                h = (h ^ (uint64_t)vm->state) * 1099511628211ull;
        }
        return h;
}

static void save(struct daemon *d, struct attach *a)
{
        if (a->waiting) /* the file holds what the owner's VMs wait for: kept as it is */
                return;

        bool learned;
        char *text = format(d, &learned);
        int r = text ? 0 : -ENOMEM;

        a->sig = holding_signature(d);
        a->written_ms = mono_ms_exact();
        a->learned = learned;
        if (text && !a->failing && a->written && strcmp(text, a->written) == 0) {
                free(text);
                return;
        }
        if (text)
                r = fsutil_write_atomic(d->state_dir, ATTACH_FILE, text, strlen(text), 0640);
        if (r < 0) {
                if (!a->failing)
                        log_msg(LOG_ERR,
                                "cannot write %s/%s: %s; a restarted dynmemd will not find the "
                                "running VMs",
                                d->state_dir, ATTACH_FILE, strerror(-r));
                a->failing = true;
                free(text);
                return;
        }
        if (a->failing)
                log_msg(LOG_NOTICE, "%s/%s written again", d->state_dir, ATTACH_FILE);
        a->failing = false;
        free(a->written);
        a->written = text;
}

void attach_after_cycle(struct daemon *d)
{
        struct attach *a = d->attach;

        if (!a || !a->enabled)
                return;
        /* at 10,000 VMs the learned part makes the text 11 MB and a third of a second's work */
        uint64_t every = a->learned && !a->failing ? ATTACH_LEARNED_REFRESH_MS : ATTACH_REFRESH_MS;
        if (holding_signature(d) != a->sig || mono_ms_exact() - a->written_ms >= (double)every)
                save(d, a);
}

/* ---- reattaching ---- */

static void restore_counters(struct vm_counters *c, const struct vm_counters *saved, uint64_t now)
{
        vm_counters_reset(c);
        c->added_bytes = saved->added_bytes;
        c->removed_bytes = saved->removed_bytes;
        c->add_operations = saved->add_operations;
        c->remove_operations = saved->remove_operations;
        c->average_pressure = saved->average_pressure;
        c->minimum_pressure = saved->minimum_pressure;
        c->maximum_pressure = saved->maximum_pressure;
        c->last_update_ms = now;
}

int attach_learned_apply(struct daemon *d, struct vm *vm, const json_t *policy,
                         uint64_t written_at_ms, const char *where, uint64_t *ret_aged_ms)
{
        struct policy_vm_memory *m = balancer_memory(&d->bal, vm);
        struct policy_learned learned;
        uint64_t wall = attach_wall_ms();
        char why[256] = "";
        int r;

        if (!m)
                return -ENOENT;
        r = policy_learned_parse(policy, &learned, why, sizeof(why));
        if (r == -EPROTONOSUPPORT) {
                log_msg(LOG_WARNING,
                        "%s: what the policy learned of it%s was written by a newer dynmemd (%s); "
                        "ignored, it learns again from nothing",
                        vm->name, where, why);
                return r;
        }
        if (r < 0) {
                log_msg(LOG_WARNING,
                        "%s: what the policy learned of it%s is dropped: policy: %s; it learns "
                        "again from nothing",
                        vm->name, where, why);
                return r;
        }
        double away = wall > written_at_ms ? (double)(wall - written_at_ms) * d->speed : 0.0;
        uint64_t away_ms =
            away < (double)POLICY_SAVE_AGE_MAX ? (uint64_t)away : POLICY_SAVE_AGE_MAX;
        policy_learned_apply(&learned, away_ms, daemon_now(d), &d->bal.policy.tunables, m);
        *ret_aged_ms = away_ms + learned.age_ms;
        return 0;
}

/*
 * What the policy had learned of a reattached VM, aged by the time since the
 * file was written (on the decisions' clock). One that does not hold is
 * dropped with a line saying why: the VM learns again from nothing.
 */
static void restore_learned(struct daemon *d, struct vm *vm, const struct attach_list *l,
                            const struct attach_vm *av)
{
        struct registry_entry *e = registry_find(&d->reg, vm->name);
        char away_text[32];
        uint64_t aged_ms;
        int r;

        if (!av->policy)
                return;
        if (!l->written_at_known) {
                log_msg(LOG_WARNING,
                        "%s: what the policy learned of it is dropped: policy: the file has no "
                        "written_at_ms to age it from; it learns again from nothing",
                        vm->name);
                return;
        }
        r = attach_learned_apply(d, vm, av->policy, l->written_at_ms, "", &aged_ms);
        if (r == -ENOENT) {
                log_msg(LOG_WARNING,
                        "%s: what the policy learned of it cannot be kept: not "
                        "balanced; it learns again from nothing",
                        vm->name);
                return;
        }
        if (r < 0)
                return;
        if (e) /* what its domain may carry is taken over this only when newer (carry.c) */
                e->learned_wall_ms = l->written_at_ms ? l->written_at_ms : 1;
        log_msg(LOG_INFO, "%s: what the policy learned of it is kept, aged by %s", vm->name,
                duration_format(aged_ms, away_text, sizeof(away_text)));
}

/*
 * A running VM gets back what its entry kept: its counters and what the
 * policy learned of it (and it stops again if it was stopping).
 */
static void restore_entry(struct daemon *d, struct vm *vm, const struct attach_list *l,
                          const struct attach_vm *av, uint64_t now)
{
        char a[32];

        restore_counters(&vm->counters, &av->counters, now);
        log_msg(LOG_INFO, "%s: reattached: running, holding %s", vm->name,
                size_format(vm->obs.assigned_bytes, a, sizeof(a)));
        restore_learned(d, vm, l, av);
        if (av->state == VM_STOPPING) {
                if (d->backend->ops->stop(d->backend, vm, false, now) == 0) {
                        vm->state = VM_STOPPING;
                        log_msg(LOG_INFO, "%s: it was stopping when dynmemd stopped: stopping",
                                vm->name);
                } else {
                        log_msg(LOG_WARNING, "%s: it was stopping, but cannot be stopped again",
                                vm->name);
                }
        }
}

/* The backend found the VM running: it runs again as it was. */
static void reattached(struct daemon *d, struct registry_entry *e, const struct attach_list *l,
                       const struct attach_vm *av, uint64_t now)
{
        struct vm *vm = &e->vm;

        vm->state = VM_RUNNING;
        vm->target_bytes = vm->ideal_bytes = av->assigned_bytes;
        restore_entry(d, vm, l, av, now);
}

/* Another VM now has the entry's name (its owner's id differs): it gets nothing of it. */
static bool another_vm(const struct registry_entry *e, const struct attach_vm *av)
{
        if (!e->uuid[0] || !av->uuid[0] || strcmp(e->uuid, av->uuid) == 0)
                return false;
        log_msg(LOG_WARNING,
                "%s: was running when dynmemd stopped, but the VM of that name is another now "
                "(uuid %s, was %s); it starts from nothing",
                av->name, e->uuid, av->uuid);
        return true;
}

static void reattach_one(struct daemon *d, const struct attach_list *l, const struct attach_vm *av,
                         uint64_t now)
{
        struct registry_entry *e = registry_find(&d->reg, av->name);
        struct vm *vm = e ? &e->vm : NULL;
        int r;

        if (!e) {
                log_msg(LOG_WARNING,
                        "%s: was running when dynmemd stopped but is no longer defined; "
                        "whatever of it still runs is left alone",
                        av->name);
                return;
        }
        if (!e->configured || vm->state != VM_OFF) {
                log_msg(LOG_WARNING, "%s: was running when dynmemd stopped; cannot reattach: %s",
                        av->name, e->configured ? "not off" : "the backend refused its keys");
                return;
        }
        if (another_vm(e, av))
                return;
        vm->obs = (struct vm_observation){.alive = true, .assigned_bytes = av->assigned_bytes};
        r = d->backend->ops->reattach(d->backend, vm, now);
        registry_touch(e);
        if (r == 0) {
                reattached(d, e, l, av, now);
                return;
        }
        vm->obs = (struct vm_observation){0};
        if (r == -ENOENT) {
                log_msg(LOG_INFO,
                        "%s: was running when dynmemd stopped; nothing of it runs now: off",
                        vm->name);
                return;
        }
        vm->state = VM_CRASHED;
        d->bal.counters.crashes++;
        log_msg(LOG_WARNING, "%s: was running when dynmemd stopped; cannot reattach (%s): crashed",
                vm->name, strerror(-r));
}

static void restore_host(struct balancer_counters *c, const struct balancer_counters *saved)
{
        c->added_bytes = saved->added_bytes;
        c->removed_bytes = saved->removed_bytes;
        c->add_operations = saved->add_operations;
        c->remove_operations = saved->remove_operations;
        c->refused_starts = saved->refused_starts;
        c->crashes = saved->crashes;
        c->policy_refusals = saved->policy_refusals;
}

/* Read the file; 0 with *ret, -ENOENT when there is none, another error logged. */
static int load(const struct daemon *d, struct attach_list *ret)
{
        char path[PATH_MAX - 8], bad[PATH_MAX], err[512] = "", *text = NULL;
        int aside;
        size_t len;
        int r;

        if (snprintf(path, sizeof(path), "%s/%s", d->state_dir, ATTACH_FILE) >= (int)sizeof(path))
                return -ENAMETOOLONG;
        r = fsutil_read_file(path, ATTACH_FILE_MAX, &text, &len);
        if (r == -ENOENT)
                return r;
        if (r < 0) {
                log_msg(LOG_ERR, "%s: %s; no VM is reattached", path, strerror(-r));
                return r;
        }
        r = attach_parse(text, len, ret, err, sizeof(err));
        free(text);
        if (r < 0) {
                /* Never over one set aside before: each bad file is kept for a look. */
                aside = fsutil_set_aside(path, bad, sizeof(bad));
                if (aside == 0)
                        log_msg(LOG_ERR, "%s: %s; set aside as %s, no VM is reattached", path, err,
                                bad);
                else
                        log_msg(LOG_ERR, "%s: %s; cannot set it aside (%s), no VM is reattached",
                                path, err, strerror(-aside));
                return r;
        }
        /* a newer dynmemd's additions: the VMs are reattached with what this one knows */
        for (size_t i = 0; i < ret->ignored.n; i++)
                log_msg(LOG_WARNING,
                        "%s: %s: not known to this dynmemd (written by a newer one?); ignored",
                        path, ret->ignored.messages[i]);
        if (!ret->dropped.n && !ret->host_problem[0])
                return 0;
        /* the entries that are good are reattached; the file as it was, for a look */
        if (ret->host_problem[0])
                log_msg(LOG_ERR,
                        "%s: %s; the host's counters start from zero, the VMs are still "
                        "reattached",
                        path, ret->host_problem);
        for (size_t i = 0; i < ret->dropped.n; i++)
                log_msg(LOG_ERR, "%s: %s; this entry is dropped", path, ret->dropped.messages[i]);
        const char *kept = ret->dropped.n ? "the other" : "its";
        aside = fsutil_set_aside(path, bad, sizeof(bad));
        if (aside == 0)
                log_msg(LOG_ERR, "%s set aside as %s; %s %zu entries are kept", path, bad, kept,
                        ret->n);
        else
                log_msg(LOG_ERR, "cannot set %s aside: %s; %s %zu entries are kept", path,
                        strerror(-aside), kept, ret->n);
        return 0;
}

bool attach_claim(struct daemon *d, struct registry_entry *e, uint64_t now)
{
        struct attach *a = d->attach;

        if (!a || !a->waiting)
                return false;
        for (size_t i = 0; i < a->pending.n; i++) {
                struct attach_vm *av = &a->pending.vms[i];
                if (av->claimed || strcmp(av->name, e->vm.name) != 0)
                        continue;
                av->claimed = true;
                if (another_vm(e, av))
                        return false;
                restore_entry(d, &e->vm, &a->pending, av, now);
                return true;
        }
        return false;
}

void attach_owner_listed(struct daemon *d)
{
        struct attach *a = d->attach;

        if (!a || !a->waiting)
                return;
        for (size_t i = 0; i < a->pending.n; i++) {
                const struct attach_vm *av = &a->pending.vms[i];
                if (av->claimed)
                        continue;
                if (registry_find(&d->reg, av->name))
                        log_msg(LOG_INFO,
                                "%s: was running when dynmemd stopped; not running now: off",
                                av->name);
                else
                        log_msg(LOG_WARNING,
                                "%s: was running when dynmemd stopped but is no longer defined; "
                                "whatever of it still runs is left alone",
                                av->name);
        }
        attach_list_free(&a->pending);
        a->pending = (struct attach_list){0};
        a->waiting = false;
        if (a->enabled)
                save(d, a);
}

int attach_init(struct daemon *d)
{
        struct attach_list l = {0};
        uint64_t now = daemon_now(d);

        d->attach = calloc(1, sizeof(*d->attach));
        if (!d->attach)
                return -ENOMEM;
        int loaded = load(d, &l);
        if (loaded == 0)
                restore_host(&d->bal.counters, &l.host);
        if (loaded == 0 && l.n && !inventory_listed(d)) {
                /* the owner of the VMs cannot say which run: its list is waited for */
                log_msg(LOG_NOTICE,
                        "%s cannot be reached: the %zu VMs %s/%s names are reattached once it "
                        "lists them running",
                        d->backend->ops->owner ? d->backend->ops->owner(d->backend) : "the backend",
                        l.n, d->state_dir, ATTACH_FILE);
                d->attach->pending = l;
                d->attach->waiting = true;
        } else if (loaded == 0) {
                for (size_t i = 0; i < l.n; i++)
                        reattach_one(d, &l, &l.vms[i], now);
                attach_list_free(&l);
        }
        d->attach->enabled = true;
        save(d, d->attach);
        return 0;
}

void attach_free(struct daemon *d)
{
        struct attach *a = d->attach;

        if (!a)
                return;
        if (a->enabled)
                save(d, a);
        attach_list_free(&a->pending);
        free(a->written);
        free(a);
        d->attach = NULL;
}
