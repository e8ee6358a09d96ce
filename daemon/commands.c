/*
 * commands: the control requests dynmemd answers. See commands.h and
 * docs/control-protocol.md.
 */
#include "commands.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "apply.h"
#include "carry.h"
#include "control_server.h"
#include "daemon.h"
#include "dynmem-config.h"
#include "events.h"
#include "http.h"
#include "inventory.h"
#include "log.h"
#include "metrics.h"
#include "mono.h"
#include "policy_save.h"
#include "relief.h"
#include "suggest.h"
#include "wake.h"

typedef char *(*command_fn)(struct daemon *d, const struct control_request *req,
                            enum commands_wait *ret_wait);

static bool vm_is_off(const struct vm *vm)
{
        return vm->state == VM_OFF || vm->state == VM_CRASHED;
}

/* Where the VM is defined: "config", "created", or the backend that owns it ("libvirt"). */
static const char *origin_of(const struct daemon *d, const struct registry_entry *e)
{
        return e->origin == REGISTRY_BACKEND ? d->backend->ops->name
                                             : registry_origin_name(e->origin);
}

/* Settings' JSON names in mask, and "autostart" when autostart is true. */
static json_t *names_json(unsigned mask, bool autostart)
{
        json_t *a = json_array();
        int bad = !a;

        for (size_t i = 0; !bad && i < SETTINGS_N; i++)
                if (mask & settings_table[i].bit)
                        bad |= json_array_append_new(a, json_string(settings_table[i].json));
        if (!bad && autostart)
                bad |= json_array_append_new(a, json_string("autostart"));
        if (bad) {
                json_decref(a);
                return NULL;
        }
        return a;
}

/* A VM of the file: what `dynmem set` overrode, and what a reset left waiting. */
static int put_overrides(json_t *obj, const struct registry_entry *e)
{
        if (e->origin != REGISTRY_CONFIG)
                return 0;
        return json_object_set_new(obj, "overrides",
                                   names_json(e->overrides, e->autostart_override)) < 0 ||
               json_object_set_new(obj, "reset_pending", names_json(e->reset_pending, false)) < 0;
}

/*
 * What the policy learned of the VM (lib/policy_save.h): its cover for
 * unforeseen rises, the persistence of its changes and how many samples'
 * weight that rests on; null while it holds no memory or learned nothing.
 */
static json_t *learned_json(const struct daemon *d, const struct vm *vm)
{
        const struct policy_vm_memory *m = balancer_memory_const(&d->bal, vm);
        struct policy_learned_summary sum;

        if (!vm_holds_memory(vm) || !m ||
            !policy_learned_summarize(m, &d->bal.policy.tunables, &sum))
                return json_null();
        return json_pack("{s:I, s:f, s:f}", "cover_bytes", (json_int_t)sum.cover_bytes,
                         "persistence", round(sum.persistence * 1000.0) / 1000.0, "samples",
                         round(sum.samples * 10.0) / 10.0);
}

static json_t *vm_json(struct daemon *d, const struct registry_entry *e)
{
        struct backend_vm_description desc = {0};

        d->backend->ops->describe(d->backend, &e->vm, &desc);
        json_t *obj = control_vm_json(&e->vm, d->backend->ops->name, &desc);

        if (obj &&
            (json_object_set_new(obj, "origin", json_string(origin_of(d, e))) < 0 ||
             json_object_set_new(obj, "autostart", json_boolean(e->autostart)) < 0 ||
             json_object_set_new(obj, "learned", learned_json(d, &e->vm)) < 0 ||
             put_overrides(obj, e) ||
             (e->problem[0] && json_object_set_new(obj, "problem", json_string(e->problem)) < 0))) {
                json_decref(obj);
                return NULL;
        }
        return obj;
}

/* The VM as reply JSON text, cached until the next cycle or a change (registry_touch). */
static const char *vm_text(struct daemon *d, struct registry_entry *e)
{
        json_t *obj;

        if (e->json_text && e->json_cycle == d->cycles)
                return e->json_text;
        registry_touch(e);
        obj = vm_json(d, e);
        e->json_text = obj ? json_dumps(obj, CONTROL_JSON_FLAGS) : NULL;
        e->json_len = e->json_text ? strlen(e->json_text) : 0;
        e->json_cycle = d->cycles;
        json_decref(obj);
        return e->json_text;
}

struct piece {
        const char *text;
        size_t len;
};

/* Concatenate pieces into one NUL-terminated string; NULL on ENOMEM. */
static char *join(const struct piece *pieces, size_t n)
{
        size_t total = 1, at = 0;
        char *out;

        for (size_t i = 0; i < n; i++)
                total += pieces[i].len;
        out = malloc(total);
        for (size_t i = 0; out && i < n; i++) {
                memcpy(out + at, pieces[i].text, pieces[i].len);
                at += pieces[i].len;
        }
        if (out)
                out[at] = '\0';
        return out;
}

/* head, the VMs' cached texts (in [ ] when array), tail: one string, or NULL on ENOMEM. */
static char *join_texts(const char *head, struct registry_entry *const *entries, size_t n,
                        bool array, const char *tail)
{
        struct piece *p = calloc(2 * n + 4, sizeof(*p));
        size_t k = 0;
        char *line;

        if (!p)
                return NULL;
        p[k++] = (struct piece){head, strlen(head)};
        p[k++] = (struct piece){array ? "[" : "", array ? 1 : 0};
        for (size_t i = 0; i < n; i++) {
                if (i)
                        p[k++] = (struct piece){",", 1};
                p[k++] = (struct piece){entries[i]->json_text, entries[i]->json_len};
        }
        p[k++] = (struct piece){array ? "]" : "", array ? 1 : 0};
        p[k++] = (struct piece){tail, strlen(tail)};
        line = join(p, k);
        free(p);
        return line;
}

/*
 * An ok reply whose member `key` holds VM objects already encoded: one, or
 * an array of them. Assembled from the cached pieces, `list` stays cheap.
 */
static char *reply_texts(const char *key, struct registry_entry *const *entries, size_t n,
                         bool array, const char *warn)
{
        char head[64], *tail = NULL, *line = NULL;
        json_t *w = warn && warn[0] ? json_pack("{s:s}", "warning", warn) : NULL;

        if (w && (tail = json_dumps(w, CONTROL_JSON_FLAGS)))
                tail[0] = ','; /* {"warning":...} becomes ,"warning":...} */
        json_decref(w);
        if (!w || tail) {
                snprintf(head, sizeof(head), "{\"version\":%d,\"ok\":true,\"%s\":", CONTROL_VERSION,
                         key);
                line = join_texts(head, entries, n, array, tail ? tail : "}");
        }
        free(tail);
        return line;
}

/* {"vm": {...}} plus "warning" when warn is not empty. */
static char *reply_vm(struct daemon *d, struct registry_entry *e, const char *warn)
{
        return vm_text(d, e) ? reply_texts("vm", &e, 1, false, warn) : NULL;
}

/* {"vm": {...}, "note": "..."}: what was done, and by whom. */
static char *reply_vm_note(struct daemon *d, struct registry_entry *e, const char *note)
{
        json_t *vm = vm_text(d, e) ? json_loads(e->json_text, 0, NULL) : NULL;

        return vm ? control_reply_ok(json_pack("{s:o, s:s}", "vm", vm, "note", note)) : NULL;
}

/* Whether the backend owns its VMs (libvirt): no create, delete or [vm] sections. */
static bool backend_owns_vms(const struct daemon *d)
{
        return d->backend->ops->inventory != NULL;
}

static struct registry_entry *find(struct daemon *d, const char *name, char **ret_reply)
{
        struct registry_entry *e = registry_find(&d->reg, name);

        if (!e)
                *ret_reply = control_reply_error(ENOENT, "%s: no such VM", name);
        return e;
}

/* ---- reading ---- */

/* Every VM's text up to date in its cache; false on ENOMEM. */
static bool vm_texts(struct daemon *d)
{
        for (size_t i = 0; i < d->reg.n; i++)
                if (!vm_text(d, d->reg.entries[i]))
                        return false;
        return true;
}

static char *cmd_list(struct daemon *d, const struct control_request *req,
                      enum commands_wait *ret_wait)
{
        return vm_texts(d) ? reply_texts("vms", d->reg.entries, d->reg.n, true, NULL) : NULL;
}

char *commands_vms_text(struct daemon *d)
{
        return vm_texts(d) ? join_texts("", d->reg.entries, d->reg.n, true, "") : NULL;
}

char *commands_vm_text(struct daemon *d, const char *name)
{
        struct registry_entry *e = registry_find(&d->reg, name);
        const char *text = e ? vm_text(d, e) : NULL;

        return text ? strdup(text) : NULL;
}

static char *cmd_show(struct daemon *d, const struct control_request *req,
                      enum commands_wait *ret_wait)
{
        char *reply = NULL;
        struct registry_entry *e = find(d, req->name, &reply);

        return e ? reply_vm(d, e, NULL) : reply;
}

static int put(json_t *obj, const char *key, json_t *value)
{
        return json_object_set_new(obj, key, value) < 0 ? 1 : 0;
}

static json_t *nullable_percent(double p)
{
        return p < 0 ? json_null() : json_real((double)(long long)(p * 10.0 + 0.5) / 10.0);
}

static int put_memory(json_t *h, const struct daemon *d)
{
        const struct balancer_counters *c = &d->bal.counters;
        uint64_t held = d->held_bytes, memory = d->bal.host.memory_bytes;

        return put(h, "host_total_bytes",
                   d->host_total_bytes ? json_integer((json_int_t)d->host_total_bytes)
                                       : json_null()) |
               put(h, "memory_bytes", json_integer((json_int_t)memory)) |
               put(h, "reserve_bytes", json_integer((json_int_t)d->bal.host.reserve_bytes)) |
               put(h, "assigned_bytes", json_integer((json_int_t)held)) |
               put(h, "available_bytes",
                   json_integer(held < memory ? (json_int_t)(memory - held) : 0)) |
               put(h, "available_for_balancing_bytes",
                   json_integer((json_int_t)c->available_for_balancing_bytes)) |
               put(h, "pressure_percent", nullable_percent(c->current_pressure)) |
               put(h, "average_pressure_percent", nullable_percent(c->average_pressure)) |
               put(h, "vms", json_integer((json_int_t)d->reg.n)) |
               put(h, "running", json_integer((json_int_t)d->running_vms)) |
               put(h, "holding", json_integer((json_int_t)d->holding_vms)) |
               put(h, "migrations", migration_status_json(d)) |
               put(h, "refused_starts", json_integer((json_int_t)c->refused_starts)) |
               put(h, "crashes", json_integer((json_int_t)c->crashes));
}

/*
 * The warnings of the configuration in force (read at the start or by the
 * last reload that worked): the first COMMANDS_CONFIG_WARNINGS, and how
 * many there are in all (the log has up to CONFIG_DIAG_MAX of them).
 */
#define COMMANDS_CONFIG_WARNINGS 5

/*
 * A message about the configuration as a JSON string: it quotes the file,
 * cut to a length (maybe through a character), so it is made valid UTF-8
 * first. NULL when out of memory.
 */
static json_t *config_text_json(const char *message)
{
        char *text = strdup(message);
        json_t *j = NULL;

        if (text) {
                control_text_scrub(text);
                j = json_string(text);
        }
        free(text);
        return j;
}

static int put_config_warnings(json_t *h, const struct daemon *d)
{
        const struct config_diag *w = &d->cfg.warnings;
        json_t *list = json_array();
        int bad = !list;

        for (size_t i = 0; list && i < w->count && i < COMMANDS_CONFIG_WARNINGS; i++)
                bad |= json_array_append_new(list, config_text_json(w->messages[i])) < 0;
        return bad | put(h, "config_warnings", list) |
               put(h, "config_warning_count", json_integer((json_int_t)(w->count + w->more)));
}

/* Why the VMs' owner (libvirt) cannot be reached now, or null. */
static json_t *backend_error_json(struct daemon *d)
{
        char why[1024];

        if (!d->backend || !d->backend->ops->unreachable ||
            !d->backend->ops->unreachable(d->backend, why, sizeof(why)))
                return json_null();
        return config_text_json(why);
}

static json_t *ms(double v)
{
        return json_real((double)(long long)(v * 1000.0 + 0.5) / 1000.0);
}

static int put_timing(json_t *h, const struct daemon *d)
{
        return put(h, "uptime_ms", json_integer((json_int_t)(mono_ms_exact() - d->started_ms))) |
               put(h, "cycles", json_integer((json_int_t)d->cycles)) |
               put(h, "cycles_skipped", json_integer((json_int_t)d->cycles_skipped)) |
               put(h, "cycle_lateness_p50_ms", ms(histogram_percentile(&d->lateness, 0.50))) |
               put(h, "cycle_lateness_p99_ms", ms(histogram_percentile(&d->lateness, 0.99))) |
               put(h, "cycle_lateness_max_ms", ms(d->lateness.max_ms)) |
               put(h, "cycle_duration_p99_ms", ms(histogram_percentile(&d->duration, 0.99))) |
               put(h, "cycle_duration_max_ms", ms(d->duration.max_ms)) |
               put(h, "cycle_lateness_histogram", histogram_json(&d->lateness)) |
               put(h, "clients", json_integer((json_int_t)control_server_clients(d->server))) |
               put(h, "requests", json_integer((json_int_t)control_server_requests(d->server)));
}

json_t *commands_host_json(struct daemon *d)
{
        json_t *h = json_object();
        int bad = !h;

        bad =
            bad ||
            put(h, "version", json_string(DYNMEM_VERSION)) |
                put(h, "config", json_string(d->config_path)) |
                put(h, "backend", json_string(d->backend_entry->name)) |
                put(h, "backend_error", backend_error_json(d)) |
                put(h, "policy", json_string(d->cfg.host.policy)) |
                put(h, "interval_ms", json_integer((json_int_t)d->cfg.host.interval_ms)) |
                put(h, "clock_speed", json_real(d->speed)) |
                put(h, "socket", json_string(d->socket_path)) |
                put(h, "state_dir", json_string(d->state_dir)) |
                put(h, "state_saved", json_boolean(d->state_saved)) |
                put(h, "state_error", d->state_saved ? json_null() : json_string(d->state_error)) |
                put(h, "reload_error",
                    d->reload_error[0] ? config_text_json(d->reload_error) : json_null()) |
                put(h, "overcommitted", json_boolean(d->overcommitted)) |
                put(h, "overcommit_error",
                    d->overcommitted ? json_string(d->overcommit_error) : json_null()) |
                put(h, "http_url", d->http ? json_string(http_server_url(d->http)) : json_null());
        bad = bad || put_config_warnings(h, d) || put_memory(h, d) || put_timing(h, d) ||
              put(h, "relief", relief_json(d)) | put(h, "peers", relief_peers_json(d));
        if (bad) {
                json_decref(h);
                return NULL;
        }
        return h;
}

static char *cmd_status(struct daemon *d, const struct control_request *req,
                        enum commands_wait *ret_wait)
{
        json_t *h = commands_host_json(d);

        return h ? control_reply_ok(json_pack("{s:o}", "host", h)) : NULL;
}

/* ---- life cycle ---- */

static char *cmd_start(struct daemon *d, const struct control_request *req,
                       enum commands_wait *ret_wait)
{
        char *reply = NULL, err[512] = "";
        struct registry_entry *e = find(d, req->name, &reply);

        if (!e)
                return reply;
        switch (e->vm.state) {
        case VM_RUNNING:
                if (e->vm.start_pending) { /* still coming up: answered with the first start */
                        *ret_wait = COMMANDS_WAIT_START;
                        return NULL;
                }
                return control_reply_error(EALREADY, "%s: already running", e->vm.name);
        case VM_STOPPING:
                return control_reply_error(EBUSY, "%s: still stopping; start it once it is off",
                                           e->vm.name);
        case VM_STARTING:
                *ret_wait = COMMANDS_WAIT_START;
                return NULL;
        default:
                break;
        }
        if (e->removed)
                return control_reply_error(ENOENT, "%s: no longer in the configuration",
                                           e->vm.name);
        if (!e->configured && apply_configure(d, e, err, sizeof(err)) < 0)
                return control_reply_error(EINVAL, "%s: cannot start: %s", e->vm.name, err);
        e->start_errno = 0;
        balancer_request_start(&d->bal, &e->vm);
        registry_touch(e);
        log_msg(LOG_INFO, "%s: start requested", e->vm.name);
        *ret_wait = COMMANDS_WAIT_START;
        return NULL;
}

static char *cmd_stop(struct daemon *d, const struct control_request *req,
                      enum commands_wait *ret_wait)
{
        char *reply = NULL;
        struct registry_entry *e = find(d, req->name, &reply);
        int r;

        if (!e)
                return reply;
        switch (e->vm.state) {
        case VM_OFF:
                return control_reply_error(EALREADY, "%s: not running", e->vm.name);
        case VM_CRASHED:
                e->vm.state = VM_OFF;
                registry_touch(e);
                return reply_vm(d, e, NULL);
        case VM_STARTING:
                e->vm.start_requested = false;
                e->vm.state = VM_OFF;
                e->start_errno = ECANCELED;
                snprintf(e->vm.refusal, sizeof(e->vm.refusal), "start cancelled by a stop");
                registry_touch(e);
                wake_request(d); /* the waiting start is answered after a cycle: run one now */
                return reply_vm(d, e, NULL);
        case VM_STOPPING:
                if (!req->force)
                        break;
                __attribute__((fallthrough)); /* a forced stop of a VM already stopping */
        case VM_RUNNING:
                r = d->backend->ops->stop(d->backend, &e->vm, req->force, daemon_now(d));
                if (r < 0)
                        return control_reply_error(-r, "%s: cannot stop: %s", e->vm.name,
                                                   strerror(-r));
                e->vm.state = VM_STOPPING;
                registry_touch(e);
                log_msg(LOG_INFO, "%s: stop%s requested", e->vm.name,
                        req->force ? " (forced)" : "");
                break;
        }
        *ret_wait = COMMANDS_WAIT_STOP;
        return NULL;
}

/* ---- settings ---- */

/*
 * A VM its backend owns keeps its settings there (libvirt's metadata): the
 * rules are checked here, the backend stores them, the registry follows.
 */
static char *set_owned(struct daemon *d, struct registry_entry *e,
                       const struct control_request *req)
{
        struct vm_settings want = e->vm.settings;
        uint64_t honourable = SETTINGS_SIZE_MAX;
        char err[512];
        int r;

        if (e->problem[0])
                return control_reply_error(EPERM,
                                           "%s: %s; fix it (virsh metadata) or run dynmem enable "
                                           "%s once it is shut off",
                                           e->vm.name, e->problem, e->vm.name);
        if (!e->vm.settings.dynamic)
                return control_reply_error(EPERM,
                                           "%s: static (no dynmem settings); make it dynamic with "
                                           "dynmem enable %s while it is shut off",
                                           e->vm.name, e->vm.name);
        settings_merge(&want, &req->settings, req->given);
        if (!want.dynamic)
                return control_reply_error(EPERM, "%s: use dynmem disable %s while it is shut off",
                                           e->vm.name, e->vm.name);
        if (!vm_is_off(&e->vm))
                honourable = d->backend->ops->max_honourable(d->backend, &e->vm);
        r = apply_check_change(&e->vm, &want, honourable, err, sizeof(err));
        if (r == 0)
                r = d->backend->ops->store_settings(d->backend, &e->vm, &want, err, sizeof(err));
        if (r < 0)
                return control_reply_error(-r, "%s: %s", e->vm.name, err);
        e->vm.settings = want;
        registry_touch(e);
        log_msg(LOG_INFO, "%s: settings changed (kept by %s)", e->vm.name,
                d->backend->ops->owner(d->backend));
        return reply_vm(d, e, NULL);
}

/*
 * dynmem set --reset: a VM of the file goes back to the file's values; the
 * others have no file values to go back to.
 */
static char *set_reset(struct daemon *d, struct registry_entry *e,
                       const struct control_request *req)
{
        char note[512] = "", warn[512] = "", saved[512] = "";
        json_t *vm;

        if (e->origin == REGISTRY_BACKEND)
                return control_reply_error(EOPNOTSUPP,
                                           "%s: its settings live in its definition at %s, not "
                                           "in %s: nothing to reset; change them with dynmem set",
                                           e->vm.name, d->backend->ops->owner(d->backend),
                                           d->config_path);
        if (e->origin == REGISTRY_CREATED)
                return control_reply_error(EPERM,
                                           "%s: made with dynmem create, so %s has no values to "
                                           "go back to; change them with dynmem set, or delete "
                                           "and create it again",
                                           e->vm.name, d->config_path);
        if (apply_reset(d, e, req->reset, req->reset_autostart, note, sizeof(note), warn,
                        sizeof(warn)) < 0)
                return control_reply_error(ENOENT, "%s", note);
        daemon_save(d, saved, sizeof(saved));
        if (saved[0]) /* not saved: that matters more than what waits for the VM */
                snprintf(warn, sizeof(warn), "%s", saved);
        vm = vm_text(d, e) ? json_loads(e->json_text, 0, NULL) : NULL;
        if (!vm)
                return NULL;
        return control_reply_ok(
            warn[0] ? json_pack("{s:o, s:s, s:s}", "vm", vm, "note", note, "warning", warn)
                    : json_pack("{s:o, s:s}", "vm", vm, "note", note));
}

static char *cmd_set(struct daemon *d, const struct control_request *req,
                     enum commands_wait *ret_wait)
{
        char *reply = NULL, err[512] = "", warn[512] = "";
        struct registry_entry *e = find(d, req->name, &reply);
        struct vm_settings want;
        unsigned given;
        int r;

        if (!e)
                return reply;
        /* Its settings are in the domain's XML, which libvirt is migrating: a change now
         * would wait for libvirt's migration job (stalling the cycle) or miss the copy. */
        if (e->vm.migration != VM_MIGRATION_NONE)
                return control_reply_error(EBUSY,
                                           "%s: migrating; change its settings once it has "
                                           "arrived",
                                           e->vm.name);
        if (req->reset || req->reset_autostart)
                return set_reset(d, e, req);
        if (e->origin == REGISTRY_BACKEND && req->autostart_given)
                return control_reply_error(EOPNOTSUPP,
                                           "%s: %s starts its domains: virsh autostart %s%s",
                                           e->vm.name, d->backend->ops->owner(d->backend),
                                           req->autostart ? "" : "--disable ", e->vm.name);
        if (e->origin == REGISTRY_BACKEND)
                return set_owned(d, e, req);
        if (req->given) {
                want = e->vm.settings;
                settings_merge(&want, &req->settings, req->given);
                given = req->given | settings_follow_startup(&want, req->given);
                r = apply_settings(d, e, &want, err, sizeof(err));
                if (r < 0)
                        return control_reply_error(-r, "%s: %s", e->vm.name, err);
                if (e->origin == REGISTRY_CONFIG)
                        e->overrides |= given;
                /* set anew: nothing of the file waits for them */
                apply_set_pending(d, e, e->reset_pending & ~given);
                log_msg(LOG_INFO, "%s: settings changed", e->vm.name);
        }
        /* Taken at dynmemd's next start (and by a reload that defines the VM anew), as
         * virsh autostart: a VM that is off is not started now. */
        if (req->autostart_given) {
                e->autostart = req->autostart;
                e->autostart_override = e->origin == REGISTRY_CONFIG;
                log_msg(LOG_INFO, "%s: autostart %s", e->vm.name, req->autostart ? "on" : "off");
        }
        registry_touch(e);
        daemon_save(d, warn, sizeof(warn));
        return reply_vm(d, e, warn);
}

static bool key_allowed(const struct backend *b, const char *key)
{
        for (const char *const *k = b->ops->vm_keys; *k; k++)
                if (strcmp(*k, key) == 0)
                        return true;
        return false;
}

/* A key the backend does not take, with the nearest backend key or setting (--NAME) if one is near.
 */
static char *refuse_key(const struct backend *b, const char *vm, const char *key)
{
        struct suggest s;

        suggest_init(&s, key);
        for (size_t i = 0; i < SETTINGS_N; i++)
                suggest_offer(&s, settings_table[i].name);
        for (const char *const *k = b->ops->vm_keys; *k; k++)
                suggest_offer(&s, *k);
        const char *best = suggest_best(&s);
        if (!best)
                return control_reply_error(EINVAL, "%s: backend %s takes no key \"%s\"", vm,
                                           b->ops->name, key);
        if (settings_find(best))
                return control_reply_error(
                    EINVAL, "%s: backend %s takes no key \"%s\" (did you mean --%s?)", vm,
                    b->ops->name, key, best);
        return control_reply_error(EINVAL,
                                   "%s: backend %s takes no key \"%s\" (did you mean \"%s\"?)", vm,
                                   b->ops->name, key, best);
}

/* "NAME: message", naming the VM once (backend messages may name it already). */
static char *fail_named(int errnum, const char *name, const char *msg)
{
        char quoted[VM_NAME_MAX + 8];
        size_t n = strlen(name);

        if (strncmp(msg, name, n) == 0 && msg[n] == ':' && msg[n + 1] == ' ')
                msg += n + 2;
        snprintf(quoted, sizeof(quoted), "vm \"%s\": ", name);
        if (strncmp(msg, quoted, strlen(quoted)) == 0)
                msg += strlen(quoted);
        return control_reply_error(errnum, "%s: %s", name, msg);
}

static char *check_create(struct daemon *d, const struct control_request *req,
                          struct vm_settings *ret)
{
        struct vm_settings s = req->settings;
        char err[512] = "";

        if (backend_owns_vms(d))
                return control_reply_error(EPERM,
                                           "%s: %s owns the VMs here: define it there (virsh "
                                           "define), then dynmem enable %s",
                                           req->name, d->backend->ops->owner(d->backend),
                                           req->name);
        if (registry_find(&d->reg, req->name))
                return control_reply_error(EEXIST, "%s: already exists", req->name);
        settings_complete(&s, req->given);
        if (settings_check_given(&s, req->given, err, sizeof(err)) < 0)
                return control_reply_error(EINVAL, "%s: %s", req->name, err);
        for (size_t i = 0; i < req->n_keys; i++)
                if (!key_allowed(d->backend, req->keys[i].key))
                        return refuse_key(d->backend, req->name, req->keys[i].key);
        *ret = s;
        return NULL;
}

static char *cmd_create(struct daemon *d, const struct control_request *req,
                        enum commands_wait *ret_wait)
{
        char err[512] = "", warn[512] = "";
        struct registry_entry *e;
        struct vm_settings s;
        char *refused = check_create(d, req, &s);
        int r;

        if (refused)
                return refused;
        if (registry_add(&d->reg, req->name, &e) < 0)
                return NULL;
        e->origin = REGISTRY_CREATED;
        e->vm.settings = s;
        e->autostart = req->autostart;
        r = apply_keys(d, e, req->keys, req->n_keys, err, sizeof(err));
        if (r == 0 && daemon_vms_changed(d) < 0) {
                snprintf(err, sizeof(err), "out of memory");
                r = -ENOMEM;
        }
        if (r < 0) {
                registry_remove(&d->reg, e, d->backend);
                daemon_vms_changed(d);
                return fail_named(EINVAL, req->name, err);
        }
        daemon_save(d, warn, sizeof(warn));
        log_msg(LOG_INFO, "%s: created", e->vm.name);
        return reply_vm(d, e, warn);
}

static char *cmd_delete(struct daemon *d, const struct control_request *req,
                        enum commands_wait *ret_wait)
{
        char *reply = NULL, warn[512] = "";
        struct registry_entry *e = find(d, req->name, &reply);

        if (!e)
                return reply;
        if (e->origin == REGISTRY_BACKEND)
                return control_reply_error(EPERM,
                                           "%s: defined by %s; remove it there (virsh "
                                           "undefine)",
                                           e->vm.name, d->backend->ops->owner(d->backend));
        if (e->origin == REGISTRY_CONFIG)
                return control_reply_error(EPERM,
                                           "%s: defined in %s:%u; remove it there and "
                                           "reload dynmemd",
                                           e->vm.name, d->config_path, e->config_line);
        if (!vm_is_off(&e->vm))
                return control_reply_error(EBUSY, "%s: %s; stop it first", e->vm.name,
                                           vm_state_name(e->vm.state));
        /* the VM as it was, as stop replies with the VM it stopped */
        json_t *vm = vm_text(d, e) ? json_loads(e->json_text, 0, NULL) : NULL;
        if (!vm)
                return NULL;
        log_msg(LOG_INFO, "%s: deleted", e->vm.name);
        registry_remove(&d->reg, e, d->backend);
        daemon_vms_changed(d);
        daemon_save(d, warn, sizeof(warn));
        return control_reply_ok(warn[0] ? json_pack("{s:o, s:s}", "vm", vm, "warning", warn)
                                        : json_pack("{s:o}", "vm", vm));
}

/* ---- VMs a backend owns: dynamic memory on and off, admission of their starts ---- */

/* A backend whose VMs' [vm] sections decide: dynmem set is the way. */
static char *reply_not_owned(struct daemon *d, const char *name, bool on)
{
        return control_reply_error(EOPNOTSUPP,
                                   "%s: backend %s: set dynamic = %s in the VM's [vm] section, or "
                                   "dynmem set %s --dynamic %s",
                                   name, d->backend->ops->name, on ? "yes" : "no", name,
                                   on ? "on" : "off");
}

/*
 * The owner's definition changed (r == 0): the registry takes the change in
 * now, so that the reply shows it.
 */
static char *reply_owned(struct daemon *d, const char *name, int r, const char *err,
                         const char *note)
{
        struct registry_entry *e;

        if (r < 0)
                return control_reply_error(-r, "%s: %s", name, err);
        inventory_sync(d, true);
        e = registry_find(&d->reg, name);
        return e ? reply_vm_note(d, e, note) : control_reply_ok(json_pack("{s:s}", "note", note));
}

static char *cmd_enable(struct daemon *d, const struct control_request *req,
                        enum commands_wait *ret_wait)
{
        char err[512], note[512];
        int r;

        if (!d->backend->ops->enable)
                return reply_not_owned(d, req->name, true);
        r = d->backend->ops->enable(d->backend, req->name, &req->settings, req->given, err,
                                    sizeof(err));
        snprintf(note, sizeof(note), "%s: dynamic memory on in its definition at %s", req->name,
                 d->backend->ops->owner(d->backend));
        return reply_owned(d, req->name, r, err, note);
}

static char *cmd_disable(struct daemon *d, const struct control_request *req,
                         enum commands_wait *ret_wait)
{
        char err[512], note[512];
        int r;

        if (!d->backend->ops->disable)
                return reply_not_owned(d, req->name, false);
        r = d->backend->ops->disable(d->backend, req->name, err, sizeof(err));
        snprintf(note, sizeof(note), "%s: static again; what dynmem enable added is removed",
                 req->name);
        return reply_owned(d, req->name, r, err, note);
}

/* Admission waits (bounded) while the room is made; the backend only takes note of it. */
static void wait_admission(struct daemon *d, struct registry_entry *e, const char *what)
{
        balancer_request_start(&d->bal, &e->vm);
        e->vm.start_outside = true;
        if (d->backend->ops->admitting)
                d->backend->ops->admitting(d->backend, &e->vm, true);
        e->admit_deadline_ms = mono_ms() + INVENTORY_ADMIT_WAIT_MS;
        e->start_errno = 0;
        registry_touch(e);
        log_msg(LOG_INFO, "%s: %s %s it: admission", e->vm.name, d->backend->ops->owner(d->backend),
                what);
}

/*
 * A VM arriving by live migration (the owner's hook on this host, before the
 * owner creates it): admitted for what it holds if that fits by shrinking
 * lighter VMs (migration.c), and counted from then on; else refused now.
 */
static char *admit_incoming(struct daemon *d, const struct control_request *req,
                            enum commands_wait *ret_wait)
{
        struct registry_entry *e = registry_find(&d->reg, req->name);
        struct vm_settings s = {.lend = true}; /* a hook that does not name it: the default */
        char err[512];
        int r;

        if (e && e->vm.state == VM_STARTING && e->vm.migration == VM_MIGRATION_IN) {
                *ret_wait = COMMANDS_WAIT_ADMIT; /* the same arrival asked again: wait with it */
                return NULL;
        }
        if (e && (vm_holds_memory(&e->vm) || e->vm.state == VM_STARTING))
                return control_reply_error(EEXIST, "%s: a VM of that name %s here already",
                                           req->name,
                                           e->vm.state == VM_STARTING ? "is starting" : "runs");
        settings_merge(&s, &req->settings, req->given);
        if (settings_check(&s, err, sizeof(err)) < 0)
                return control_reply_error(EINVAL, "%s: its settings: %s", req->name, err);
        r = migration_admit(d, req->name, &s, req->incoming_bytes, err, sizeof(err));
        if (r < 0)
                return control_reply_error(-r, "%s: %s", req->name, err);
        wait_admission(d, registry_find(&d->reg, req->name), "migrates");
        *ret_wait = COMMANDS_WAIT_ADMIT;
        return NULL;
}

/*
 * The VM's owner is starting it and asks whether the host has room (the
 * libvirt hook): it goes through admission like dynmem start, but the
 * backend only takes note, and the wait is bounded (inventory.c).
 */
static char *cmd_admit(struct daemon *d, const struct control_request *req,
                       enum commands_wait *ret_wait)
{
        struct registry_entry *e = registry_find(&d->reg, req->name);
        char note[512];

        if (req->incoming_bytes)
                return admit_incoming(d, req, ret_wait);
        if (!e) {
                /* one defined while dynmemd could not reach its owner is not listed yet */
                char why[1024], down[400] = "";
                if (d->backend->ops->unreachable &&
                    d->backend->ops->unreachable(d->backend, why, sizeof(why)))
                        snprintf(down, sizeof(down),
                                 " (%s cannot be reached now: a VM defined meanwhile is not "
                                 "known yet)",
                                 d->backend->ops->owner(d->backend));
                log_msg(LOG_NOTICE, "%s: a start dynmemd does not know of: admitted unchecked%s",
                        req->name, down);
                snprintf(note, sizeof(note), "%s: not known to dynmemd%s; admitted unchecked",
                         req->name, down);
                return control_reply_ok(json_pack("{s:s}", "note", note));
        }
        /* A VM dynmemd runs itself: only dynmem start admits it. Another owner's
         * start of the same name (a libvirt domain beside backend qemu) is not
         * one dynmemd counts, so it goes ahead, but the note must not call the
         * VM unknown or its start admitted. */
        if (e->origin != REGISTRY_BACKEND) {
                log_msg(LOG_NOTICE,
                        "%s: admit asked for a VM dynmemd runs itself: another owner's start "
                        "of that name is not counted",
                        req->name);
                snprintf(note, sizeof(note),
                         "%s: dynmemd runs this VM itself and admits it at dynmem start %s; a "
                         "start by another owner is not counted: unchecked",
                         req->name, req->name);
                return reply_vm_note(d, e, note);
        }
        switch (e->vm.state) {
        case VM_RUNNING:
        case VM_STOPPING:
                return reply_vm_note(d, e, "already holds its memory");
        case VM_STARTING:
                break; /* a dynmem start waits for admission already: wait with it */
        default:
                wait_admission(d, e, "starts");
                break;
        }
        *ret_wait = COMMANDS_WAIT_ADMIT;
        return NULL;
}

/* ---- what a VM carries when it moves ---- */

/*
 * `dynmem migrate` is about to move the VM: what the policy learned of it is
 * written into it now (carry_fresh(), as the relief rule does), so that it
 * goes along fresh rather than as the timer last wrote it. The write is the
 * resize worker's; the answer comes as soon as the backend says the write is
 * over, or CARRY_WAIT_MS after the request (the control server's timer):
 * never a cycle later.
 */
static char *cmd_carry(struct daemon *d, const struct control_request *req,
                       enum commands_wait *ret_wait)
{
        const char *owner = d->backend->ops->owner ? d->backend->ops->owner(d->backend) : "";
        char *reply = NULL;
        struct registry_entry *e = find(d, req->name, &reply);
        int r;

        if (!e)
                return reply;
        if (!d->backend->ops->carry_learned)
                return control_reply_error(EOPNOTSUPP,
                                           "%s: backend %s keeps nothing in its VMs that a "
                                           "migration takes along (backend libvirt does)",
                                           e->vm.name, d->backend->ops->name);
        bool running = e->vm.state == VM_RUNNING;
        if (running && e->vm.migration != VM_MIGRATION_NONE)
                return control_reply_error(EBUSY, "%s: migrating already", e->vm.name);
        r = running ? carry_fresh(d, e) : -EOPNOTSUPP; /* not running: as carry_now() says */
        switch (r) {
        case 0:
                *ret_wait = COMMANDS_WAIT_CARRY;
                return NULL;
        case -ENODATA:
                return control_reply_error(ENODATA,
                                           "%s: dynmemd has learned nothing of it (not balanced "
                                           "here, or not yet): nothing to carry",
                                           e->vm.name);
        case -EBUSY:
                return control_reply_error(EBUSY,
                                           "%s: it cannot be written now: %s has a job running "
                                           "on it or is starting it, or dynmemd has not read its "
                                           "jobs in the last seconds",
                                           e->vm.name, owner);
        case -EAGAIN:
                return control_reply_error(ENOTCONN, "%s: %s cannot be reached now", e->vm.name,
                                           owner);
        case -ENOENT: /* running, but its owner's view of it is not balanced (static) */
                return control_reply_error(ENODATA, "%s: not balanced here: nothing to carry",
                                           e->vm.name);
        case -EOPNOTSUPP:
                return control_reply_error(ESRCH, "%s: not running here: it carries nothing",
                                           e->vm.name);
        case -EFBIG:
                return control_reply_error(EFBIG,
                                           "%s: what the policy learned of it is larger than "
                                           "the %d bytes a VM carries: nothing is written",
                                           e->vm.name, BACKEND_LEARNED_MAX);
        case -ENOMEM:
                return control_reply_error(ENOMEM,
                                           "%s: dynmemd is out of memory: nothing is "
                                           "written",
                                           e->vm.name);
        default:
                return control_reply_error(-r,
                                           "%s: what the policy learned of it cannot be "
                                           "written into it: %s",
                                           e->vm.name, strerror(-r));
        }
}

/*
 * A "carry" request's wait: over once the write is made, refused or taken
 * back, or at until_ms, the request's own end of the wait (CARRY_WAIT_MS).
 */
static bool carry_poll(struct daemon *d, struct registry_entry *e, uint64_t until_ms,
                       char **ret_reply)
{
        const char *owner = d->backend->ops->owner(d->backend);
        char note[300];
        int error;

        if (carry_pending(d, e, &error)) {
                if (mono_ms() < until_ms)
                        return false;
                error = -ETIMEDOUT;
        }
        switch (error) {
        case 0:
                snprintf(note, sizeof(note),
                         "%s: what the policy learned of it is in its live metadata (%s): a "
                         "migration takes it along",
                         e->vm.name, owner);
                *ret_reply = reply_vm_note(d, e, note);
                break;
        case -ETIMEDOUT: /* still out, or dropped for having waited that long (the worker) */
                *ret_reply = control_reply_error(ETIMEDOUT,
                                                 "%s: %s did not make the write of what the "
                                                 "policy learned of it within %d s (a write not "
                                                 "begun by then is dropped)",
                                                 e->vm.name, owner, CARRY_WAIT_MS / 1000);
                break;
        case -EIO:
                *ret_reply = control_reply_error(EIO,
                                                 "%s: %s refused the write of what the policy "
                                                 "learned of it (dynmemd's log says why)",
                                                 e->vm.name, owner);
                break;
        case -ENOTCONN:
                *ret_reply = control_reply_error(ENOTCONN,
                                                 "%s: the write of what the policy learned of it "
                                                 "was not made: the connection to %s was lost",
                                                 e->vm.name, owner);
                break;
        case -ESHUTDOWN:
                *ret_reply = control_reply_error(ESHUTDOWN,
                                                 "%s: the write of what the policy learned of it "
                                                 "was not made: dynmemd is stopping",
                                                 e->vm.name);
                break;
        default: /* -ECANCELED */
                *ret_reply = control_reply_error(ECANCELED,
                                                 "%s: the write of what the policy learned of it "
                                                 "was not made: it stopped (or restarted) here "
                                                 "first",
                                                 e->vm.name);
                break;
        }
        return true;
}

/* ---- counters and events ---- */

static char *cmd_counters(struct daemon *d, const struct control_request *req,
                          enum commands_wait *ret_wait)
{
        json_t *counters;
        int r = metrics_counters_json(d, req->name[0] ? req->name : NULL, &counters);

        if (r == -ENOENT)
                return control_reply_error(ENOENT, "%s: no such VM", req->name);
        return r < 0 ? NULL : control_reply_ok(json_pack("{s:o}", "counters", counters));
}

static char *cmd_events(struct daemon *d, const struct control_request *req,
                        enum commands_wait *ret_wait)
{
        json_t *body = events_json(d->events, req->since, EVENTS_READ_MAX);

        return body ? control_reply_ok(body) : NULL;
}

static const command_fn handlers[CONTROL_N_COMMANDS] = {
    [CONTROL_LIST] = cmd_list,     [CONTROL_SHOW] = cmd_show,     [CONTROL_STATUS] = cmd_status,
    [CONTROL_START] = cmd_start,   [CONTROL_STOP] = cmd_stop,     [CONTROL_SET] = cmd_set,
    [CONTROL_CREATE] = cmd_create, [CONTROL_DELETE] = cmd_delete, [CONTROL_COUNTERS] = cmd_counters,
    [CONTROL_EVENTS] = cmd_events, [CONTROL_ENABLE] = cmd_enable, [CONTROL_DISABLE] = cmd_disable,
    [CONTROL_ADMIT] = cmd_admit,   [CONTROL_CARRY] = cmd_carry,
};

char *commands_run(struct daemon *d, const struct control_request *req,
                   enum commands_wait *ret_wait)
{
        *ret_wait = COMMANDS_WAIT_NONE;
        if ((unsigned)req->command >= CONTROL_N_COMMANDS)
                return control_reply_error(EOPNOTSUPP, "unknown command");
        return handlers[req->command](d, req, ret_wait);
}

unsigned commands_wait_limit_ms(enum commands_wait wait)
{
        return wait == COMMANDS_WAIT_CARRY ? CARRY_WAIT_MS : 0;
}

bool commands_poll(struct daemon *d, const char *name, enum commands_wait wait, uint64_t until_ms,
                   char **ret_reply)
{
        struct registry_entry *e = registry_find(&d->reg, name);

        if (!e) {
                *ret_reply = control_reply_error(ENOENT, "%s: no longer defined", name);
                return true;
        }
        if (wait == COMMANDS_WAIT_CARRY)
                return carry_poll(d, e, until_ms, ret_reply);
        bool starting = wait == COMMANDS_WAIT_START || wait == COMMANDS_WAIT_ADMIT;
        char note[300];

        if ((starting && (e->vm.state == VM_STARTING || e->vm.start_pending)) ||
            (wait == COMMANDS_WAIT_STOP && e->vm.state == VM_STOPPING))
                return false;
        if (wait == COMMANDS_WAIT_ADMIT && d->backend->ops->admitting)
                d->backend->ops->admitting(d->backend, &e->vm, false);
        if (starting && e->vm.state != VM_RUNNING) {
                *ret_reply =
                    control_reply_error(e->start_errno ? e->start_errno : EIO, "%s: %s", name,
                                        e->vm.refusal[0] ? e->vm.refusal : "did not start");
        } else if (e->origin == REGISTRY_BACKEND) {
                /* what dynmemd asked of the VM's owner, and who did it */
                snprintf(note, sizeof(note), "%s by %s",
                         wait == COMMANDS_WAIT_ADMIT ? "admitted"
                         : starting                  ? "started"
                                                     : "stopped",
                         d->backend->ops->owner(d->backend));
                *ret_reply = reply_vm_note(d, e, note);
        } else {
                *ret_reply = reply_vm(d, e, NULL);
        }
        return true;
}
