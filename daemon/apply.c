/*
 * apply: changes to the VMs from the configuration file, the state file and
 * the control socket, under one set of rules. See apply.h.
 */
#include "apply.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "control.h"
#include "log.h"
#include "units.h"

static bool vm_is_off(const struct vm *vm)
{
        return vm->state == VM_OFF || vm->state == VM_CRASHED;
}

/* The largest maximum the VM can reach while it runs (its backend's); any while it is off. */
static uint64_t running_reach(struct daemon *d, const struct registry_entry *e)
{
        if (!vm_is_off(&e->vm) && e->vm.backend_data)
                return d->backend->ops->max_honourable(d->backend, &e->vm);
        return SETTINGS_SIZE_MAX;
}

/* A running VM's maximum raised beyond `honourable`: -EPERM with why in err; else 0. */
static int check_reach(const struct vm *vm, const struct vm_settings *new, uint64_t honourable,
                       char *err, size_t errlen)
{
        char a[32], b[32];

        if (new->maximum_bytes <= vm->settings.maximum_bytes || new->maximum_bytes <= honourable)
                return 0;
        snprintf(err, errlen,
                 "cannot raise maximum to %s while the VM is running: it can reach at most %s "
                 "while it runs; raise the maximum while it is off",
                 size_format(new->maximum_bytes, a, sizeof(a)),
                 size_format(honourable, b, sizeof(b)));
        return -EPERM;
}

int apply_check_change(const struct vm *vm, const struct vm_settings *new, uint64_t honourable,
                       char *err, size_t errlen)
{
        bool running = !vm_is_off(vm);
        int r = settings_check_change(&vm->settings, new, running, err, errlen);

        if (r < 0 || !running)
                return r;
        return check_reach(vm, new, honourable, err, errlen);
}

int apply_settings(struct daemon *d, struct registry_entry *e, const struct vm_settings *new,
                   char *err, size_t errlen)
{
        int r = apply_check_change(&e->vm, new, running_reach(d, e), err, errlen);

        if (r < 0)
                return r;
        e->vm.settings = *new;
        registry_touch(e);
        return 0;
}

int apply_configure(struct daemon *d, struct registry_entry *e, char *err, size_t errlen)
{
        struct config label = d->cfg;
        struct config_vm cvm;
        int r;

        registry_config_vm(e, &cvm);
        if (e->origin == REGISTRY_CREATED)
                label.path = e->vm.name; /* messages name the VM, not the file */
        err[0] = '\0';
        r = d->backend->ops->configure_vm(d->backend, &e->vm, &label, &cvm, err, errlen);
        if (r < 0 && !err[0])
                snprintf(err, errlen, "%s", strerror(-r));
        e->configured = r == 0;
        registry_touch(e);
        return r;
}

int apply_keys(struct daemon *d, struct registry_entry *e, const struct config_kv *keys, size_t n,
               char *err, size_t errlen)
{
        int r = registry_set_keys(e, keys, n);

        if (r < 0) {
                snprintf(err, errlen, "out of memory");
                return r;
        }
        return apply_configure(d, e, err, errlen);
}

static void define_from_config(struct daemon *d, const struct config *cfg,
                               const struct config_vm *cvm, bool initial)
{
        struct registry_entry *e;
        char err[512] = "";

        if (registry_add(&d->reg, cvm->name, &e) < 0) {
                log_msg(LOG_ERR, "%s: cannot define the VM: out of memory", cvm->name);
                return;
        }
        e->origin = REGISTRY_CONFIG;
        e->config_line = cvm->line;
        e->vm.settings = cvm->settings;
        e->autostart = cvm->autostart;
        e->seen = true;
        if (apply_keys(d, e, cvm->extra, cvm->n_extra, err, sizeof(err)) < 0) {
                log_msg(LOG_ERR, "%s: the backend does not accept it: %s", cvm->name, err);
                return;
        }
        if (!initial) {
                log_msg(LOG_INFO, "%s: defined by %s:%u", cvm->name, cfg->path, cvm->line);
                if (e->autostart)
                        balancer_request_start(&d->bal, &e->vm);
                registry_touch(e);
        }
}

/*
 * The line of the file that settings changed with dynmem set (overrides) no
 * longer fit: of the settings the problem names (settings_check_naming()),
 * the first the file sets and no override replaces; else the VM's section.
 */
static unsigned clash_line(const struct config_vm *cvm, const unsigned named[2], unsigned overrides)
{
        for (size_t i = 0; i < 2; i++)
                if (named[i] && !(overrides & named[i]) && (cvm->given & named[i]))
                        return config_setting_line(cvm, named[i]);
        return cvm->line;
}

/* The file's settings with the fields `dynmem set` overrode kept. */
static struct vm_settings wanted_settings(const struct config *cfg, const struct config_vm *cvm,
                                          struct registry_entry *e)
{
        struct vm_settings want = cvm->settings;
        unsigned named[2];
        char err[256] = "";

        settings_merge(&want, &e->vm.settings, e->overrides);
        if (e->overrides &&
            settings_check_naming(&want, SETTINGS_ALL, named, err, sizeof(err)) < 0) {
                log_msg(LOG_WARNING,
                        "%s: the settings changed with dynmem set no longer fit %s:%u (%s); "
                        "they are dropped",
                        e->vm.name, cfg->path, clash_line(cvm, named, e->overrides), err);
                e->overrides = 0;
                registry_drop_carried_settings(e); /* a newer dynmemd's overrides go with them */
                want = cvm->settings;
        }
        return want;
}

/*
 * The settings of want the running VM refuses, each on its own: those its
 * rules refuse (settings_running_refused()) and a maximum raised beyond what
 * it can reach (`honourable`). 0 while it is off.
 */
static unsigned running_refused(const struct vm *vm, const struct vm_settings *want,
                                uint64_t honourable)
{
        unsigned refused;
        char err[256];

        if (vm_is_off(vm))
                return 0;
        refused = settings_running_refused(&vm->settings, want);
        if (check_reach(vm, want, honourable, err, sizeof(err)) < 0)
                refused |= SETTINGS_MAXIMUM;
        return refused;
}

/* Why the running VM refuses the one setting `bit` of want, in apply_check_change()'s words. */
static void refusal_of(const struct vm *vm, const struct vm_settings *want, unsigned bit,
                       uint64_t honourable, char *err, size_t errlen)
{
        if (settings_running_why(&vm->settings, want, bit, err, errlen) == 0)
                check_reach(vm, want, honourable, err, errlen);
}

/*
 * How the warning of a value that waits for the VM to be off begins, after
 * its "FILE:LINE: ": `what` is a setting's key, or "settings" when the VM
 * kept them all. apply_set_pending() finds it again by these words.
 */
static void waiting_words(const char *vm, const char *what, char *out, size_t len)
{
        snprintf(out, len, "warning: vm \"%s\" takes this file's %s once it is off: ", vm, what);
}

/*
 * Where the warning of setting `bit` goes: the line of its key, or the VM's
 * section when the file leaves it at its default, which `unset` then says.
 */
static unsigned waiting_line(const struct config_vm *cvm, unsigned bit, char *unset, size_t len)
{
        bool given = bit && (cvm->given & bit);

        unset[0] = '\0';
        if (bit && !given)
                snprintf(unset, len, " (the file leaves %s at its default)",
                         settings_table[__builtin_ctz(bit)].name);
        return given ? config_setting_line(cvm, bit) : cvm->line;
}

/*
 * A setting the running VM refused waits for it to be off: said at the line
 * of its key, logged and one of cfg's warnings (dynmem status) until the VM
 * takes the file's value (apply_set_pending()) or a reload finds the file
 * changed.
 */
static void warn_waiting(struct config *cfg, const struct config_vm *cvm,
                         const struct registry_entry *e, unsigned bit, const char *why)
{
        const char *name = settings_table[__builtin_ctz(bit)].name;
        char unset[96], words[160];
        unsigned line = waiting_line(cvm, bit, unset, sizeof(unset));

        log_msg(LOG_WARNING, "%s:%u: %s: keeping the current %s until the VM is off: %s%s",
                cfg->path, line, e->vm.name, name, why, unset);
        waiting_words(e->vm.name, name, words, sizeof(words));
        config_diag_add(&cfg->warnings, cfg->path, line, "%s%s%s", words, why, unset);
}

/*
 * The running VM keeps all its settings: what it refused (why, of `first`)
 * and, in `misfit`, why the changes it could take do not fit on their own.
 * Said at the line of the first key it refused, as warn_waiting() says one.
 */
static void warn_all_kept(struct config *cfg, const struct config_vm *cvm,
                          const struct registry_entry *e, unsigned first, const char *why,
                          const char *misfit)
{
        char unset[96], words[160], alone[320] = "";
        unsigned line = waiting_line(cvm, first, unset, sizeof(unset));

        if (misfit[0])
                snprintf(alone, sizeof(alone),
                         "; the changes it can take now do not fit on their own (%s)", misfit);
        log_msg(LOG_WARNING, "%s:%u: %s: keeping the current settings until the VM is off: %s%s%s",
                cfg->path, line, e->vm.name, why, alone, unset);
        waiting_words(e->vm.name, "settings", words, sizeof(words));
        config_diag_add(&cfg->warnings, cfg->path, line, "%s%s%s%s", words, why, alone, unset);
}

/*
 * A running VM refused the file's new settings (want) as a whole, for err: it
 * takes now each change its state allows and keeps the current value of each
 * it refuses, which waits for the VM to be off (reset_pending, as a reset
 * does; apply_reset_pending() takes it), with a warning at its key's line.
 * When the changes it takes do not fit on their own (settings_check()), it
 * keeps every setting, all of them waiting, with one warning.
 */
static void take_what_runs(struct daemon *d, struct config *cfg, const struct config_vm *cvm,
                           struct registry_entry *e, const struct vm_settings *want,
                           const char *err)
{
        uint64_t honourable = running_reach(d, e);
        unsigned changed = settings_diff(want, &e->vm.settings);
        unsigned refused = running_refused(&e->vm, want, honourable);
        struct vm_settings now = *want;
        char why[256] = "", misfit[256] = "";

        settings_merge(&now, &e->vm.settings, refused);
        if (refused)
                refusal_of(&e->vm, want, refused & -refused, honourable, why, sizeof(why));
        if (!refused || apply_settings(d, e, &now, misfit, sizeof(misfit)) < 0) {
                e->reset_pending = refused ? changed : 0;
                warn_all_kept(cfg, cvm, e, refused & -refused, refused ? why : err, misfit);
                registry_touch(e);
                return;
        }
        e->reset_pending = refused;
        registry_touch(e);
        for (size_t i = 0; i < SETTINGS_N; i++) {
                unsigned bit = settings_table[i].bit;
                if (!(refused & bit))
                        continue;
                refusal_of(&e->vm, want, bit, honourable, why, sizeof(why));
                warn_waiting(cfg, cvm, e, bit, why);
        }
}

static void update_from_config(struct daemon *d, struct config *cfg, const struct config_vm *cvm,
                               struct registry_entry *e)
{
        char err[512] = "";

        if (e->origin == REGISTRY_CREATED) {
                log_msg(LOG_WARNING,
                        "%s: made with dynmem create, now defined by %s:%u; the "
                        "file's definition replaces it",
                        e->vm.name, cfg->path, cvm->line);
                e->origin = REGISTRY_CONFIG;
                e->overrides = 0;
                /* what a newer dynmemd wrote for the created VM goes with it */
                registry_drop_carried_settings(e);
                json_decref(e->carried);
                e->carried = NULL;
        }
        e->removed = false;
        e->seen = true;
        e->config_line = cvm->line;
        if (!e->autostart_override)
                e->autostart = cvm->autostart;
        registry_touch(e);
        struct vm_settings want = wanted_settings(cfg, cvm, e);
        if (settings_diff(&want, &e->vm.settings) != 0 &&
            apply_settings(d, e, &want, err, sizeof(err)) < 0)
                take_what_runs(d, cfg, cvm, e, &want, err);
        else
                e->reset_pending = 0; /* the file's values are in force */
        if (!registry_keys_equal(e, cvm->extra, cvm->n_extra) &&
            apply_keys(d, e, cvm->extra, cvm->n_extra, err, sizeof(err)) < 0)
                log_msg(LOG_ERR, "%s: the backend does not accept it: %s", e->vm.name, err);
}

static void drop_from_config(struct daemon *d, const struct config *cfg, struct registry_entry *e)
{
        if (vm_is_off(&e->vm)) {
                log_msg(LOG_INFO, "%s: removed: no longer in %s", e->vm.name, cfg->path);
                registry_remove(&d->reg, e, d->backend);
                return;
        }
        if (!e->removed)
                log_msg(LOG_NOTICE, "%s: no longer in %s; it is removed once it stops", e->vm.name,
                        cfg->path);
        e->removed = true;
        registry_touch(e);
}

void apply_config(struct daemon *d, struct config *cfg, bool initial)
{
        for (size_t i = 0; i < d->reg.n; i++)
                d->reg.entries[i]->seen = false;
        for (size_t i = 0; i < cfg->n_vms; i++) {
                const struct config_vm *cvm = &cfg->vms[i];
                struct registry_entry *e = registry_find(&d->reg, cvm->name);
                if (e)
                        update_from_config(d, cfg, cvm, e);
                else
                        define_from_config(d, cfg, cvm, initial);
        }
        for (size_t i = d->reg.n; i-- > 0;) {
                struct registry_entry *e = d->reg.entries[i];
                if (e->origin == REGISTRY_CONFIG && !e->seen)
                        drop_from_config(d, cfg, e);
        }
        daemon_vms_changed(d);
}

void apply_set_pending(struct daemon *d, struct registry_entry *e, unsigned pending)
{
        unsigned gone = e->reset_pending & ~pending;
        char words[160];

        e->reset_pending = pending;
        registry_touch(e);
        for (size_t i = 0; i < SETTINGS_N; i++) {
                if (!(gone & settings_table[i].bit))
                        continue;
                waiting_words(e->vm.name, settings_table[i].name, words, sizeof(words));
                config_diag_drop(&d->cfg.warnings, d->cfg.path, words);
        }
        if (gone && !pending) {
                waiting_words(e->vm.name, "settings", words, sizeof(words));
                config_diag_drop(&d->cfg.warnings, d->cfg.path, words);
        }
}

/* ---- dynmem set --reset ---- */

static const struct config_vm *config_section(const struct config *cfg, const char *name)
{
        for (size_t i = 0; i < cfg->n_vms; i++)
                if (strcmp(cfg->vms[i].name, name) == 0)
                        return &cfg->vms[i];
        return NULL;
}

/* "buffer, weight, autostart": the settings' option names in table order. */
static void name_list(unsigned mask, bool autostart, char *out, size_t len)
{
        size_t at = 0;

        out[0] = '\0';
        for (size_t i = 0; i < SETTINGS_N && at < len; i++)
                if (mask & settings_table[i].bit)
                        at += (size_t)snprintf(out + at, len - at, "%s%s", at ? ", " : "",
                                               settings_table[i].name);
        if (autostart && at < len)
                snprintf(out + at, len - at, "%sautostart", at ? ", " : "");
}

/* One value of the file: "weight (line 15)", or "weight (the default)" when not set there. */
static size_t cite_one(char *out, size_t len, size_t at, const char *name, unsigned line)
{
        if (at >= len)
                return at;
        if (line)
                return at + (size_t)snprintf(out + at, len - at, "%s%s (line %u)", at ? ", " : "",
                                             name, line);
        return at +
               (size_t)snprintf(out + at, len - at, "%s%s (the default)", at ? ", " : "", name);
}

/*
 * Where the file's values of these settings (and autostart) come from: "minimum
 * (line 14), buffer (the default), autostart (line 18) from /etc/dynmem/dynmem.conf",
 * each at the line of its key, not of the VM's section.
 */
static void cite_file_values(const struct config *cfg, const struct config_vm *cvm, unsigned mask,
                             bool autostart, char *out, size_t len)
{
        size_t at = 0;

        out[0] = '\0';
        for (size_t i = 0; i < SETTINGS_N; i++)
                if (mask & settings_table[i].bit)
                        at = cite_one(out, len, at, settings_table[i].name,
                                      (cvm->given & settings_table[i].bit) ? cvm->given_lines[i]
                                                                           : 0);
        if (autostart)
                at = cite_one(out, len, at, "autostart", cvm->autostart_line);
        if (at < len)
                snprintf(out + at, len - at, " from %s", cfg->path);
}

/*
 * The file's values of `reset` on the VM: all at once when its state allows
 * it, else one setting at a time in table order, each that the running VM
 * can take. Returns the settings left to wait, with the first refusal in err.
 */
static unsigned take_file_values(struct daemon *d, struct registry_entry *e,
                                 const struct config_vm *cvm, unsigned reset, char *err,
                                 size_t errlen)
{
        struct vm_settings want = e->vm.settings;
        char why[256] = "";
        unsigned left = 0;

        settings_merge(&want, &cvm->settings, reset);
        if (apply_settings(d, e, &want, why, sizeof(why)) == 0)
                return 0;
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *s = &settings_table[i];
                if (!(reset & s->bit) || !(settings_diff(&e->vm.settings, &cvm->settings) & s->bit))
                        continue;
                want = e->vm.settings;
                settings_merge(&want, &cvm->settings, s->bit);
                if (apply_settings(d, e, &want, why, sizeof(why)) < 0) {
                        if (!left)
                                snprintf(err, errlen, "%s", why);
                        left |= s->bit;
                }
        }
        return left;
}

/*
 * "a, b": the names of the settings a newer dynmemd wrote, printable ASCII
 * (anything else as '?'), as many as fit.
 */
static void carried_names(const json_t *carried, char *out, size_t len)
{
        const char *key;
        json_t *v;
        size_t at = 0;

        out[0] = '\0';
        json_object_foreach((json_t *)carried, key, v)
        {
                if (at && at + 2 < len)
                        out[at++] = ',', out[at++] = ' ';
                for (size_t i = 0; i < 40 && key[i] && at + 1 < len; i++)
                        out[at++] = key[i] >= 0x20 && key[i] < 0x7f ? key[i] : '?';
                out[at] = '\0';
        }
}

int apply_reset(struct daemon *d, struct registry_entry *e, unsigned reset, bool reset_autostart,
                char *note, size_t notelen, char *warn, size_t warnlen)
{
        const struct config_vm *cvm = e->removed ? NULL : config_section(&d->cfg, e->vm.name);
        unsigned was = e->overrides & reset;
        bool was_autostart = reset_autostart && e->autostart_override;
        char names[160], why[256] = "", cited[PATH_MAX + 512], newer[160] = "", dropped[200] = "";

        if (!cvm) {
                snprintf(note, notelen, "%s: no longer in %s; nothing to go back to", e->vm.name,
                         d->cfg.path);
                return -ENOENT;
        }
        unsigned left = take_file_values(d, e, cvm, reset, why, sizeof(why));
        e->overrides &= ~reset;
        apply_set_pending(d, e, (e->reset_pending & ~reset) | left);
        if (reset_autostart) {
                e->autostart = cvm->autostart;
                e->autostart_override = false;
        }
        /* every setting: also those of a newer dynmemd, which this one never applied */
        if ((reset & SETTINGS_ALL) == SETTINGS_ALL && e->carried_settings) {
                carried_names(e->carried_settings, newer, sizeof(newer));
                snprintf(dropped, sizeof(dropped), "%s (not known to this dynmemd) dropped", newer);
                registry_drop_carried_settings(e);
        }
        registry_touch(e);
        cite_file_values(&d->cfg, cvm, was, was_autostart, cited, sizeof(cited));
        if (was || was_autostart)
                snprintf(note, notelen, "%s: %s again%s%s", e->vm.name, cited,
                         dropped[0] ? "; " : "", dropped);
        else if (dropped[0])
                snprintf(note, notelen, "%s: %s", e->vm.name, dropped);
        else
                snprintf(note, notelen, "%s: nothing to reset: none of it was set with dynmem set",
                         e->vm.name);
        log_msg(LOG_INFO, "%s", note);
        if (left) {
                name_list(left, false, names, sizeof(names));
                cite_file_values(&d->cfg, cvm, left, false, cited, sizeof(cited));
                snprintf(warn, warnlen,
                         "%s kept while the VM runs (%s); %s %s taken once it is off", names, why,
                         cited, strchr(names, ',') ? "are" : "is");
                log_msg(LOG_NOTICE, "%s: %s", e->vm.name, warn);
        }
        return 0;
}

size_t apply_reset_pending(struct daemon *d)
{
        size_t taken = 0;

        for (size_t i = 0; i < d->reg.n; i++) {
                struct registry_entry *e = d->reg.entries[i];
                const struct config_vm *cvm;
                char err[256] = "", cited[PATH_MAX + 512];

                if (!e->reset_pending || !vm_is_off(&e->vm))
                        continue;
                cvm = e->removed || e->origin != REGISTRY_CONFIG
                          ? NULL
                          : config_section(&d->cfg, e->vm.name);
                if (cvm)
                        cite_file_values(&d->cfg, cvm, e->reset_pending, false, cited,
                                         sizeof(cited));
                if (cvm && take_file_values(d, e, cvm, e->reset_pending, err, sizeof(err)) == 0)
                        log_msg(LOG_INFO, "%s: off: %s now", e->vm.name, cited);
                else if (cvm)
                        log_msg(LOG_WARNING, "%s: %s not taken: %s", e->vm.name, cited, err);
                apply_set_pending(d, e, 0);
                taken++;
        }
        return taken;
}

static void state_override(const struct daemon *d, const struct state_vm *sv,
                           struct registry_entry *e)
{
        unsigned pending = sv->reset_pending, named[2];
        const struct config_vm *cvm;
        struct vm_settings want;
        char err[256] = "", names[160];

        if (sv->note[0])
                log_msg(LOG_WARNING, "state file: %s: reset_pending: %s; dropped", sv->name,
                        sv->note);
        if (!e || e->origin != REGISTRY_CONFIG) {
                log_msg(LOG_WARNING,
                        "state file: %s: settings for a VM no longer in the "
                        "configuration are dropped",
                        sv->name);
                return;
        }
        if (sv->autostart_given) {
                e->autostart = sv->autostart;
                e->autostart_override = true;
                registry_touch(e);
                log_msg(LOG_INFO,
                        "%s: autostart %s, set with dynmem set, overrides the "
                        "configuration",
                        sv->name, sv->autostart ? "on" : "off");
        }
        /* what a newer dynmemd wrote, to be written back; its settings only with the others */
        json_decref(e->carried);
        e->carried = json_incref(sv->carried);
        registry_touch(e);
        if (sv->given == 0) {
                registry_drop_carried_settings(e);
                e->carried_settings = json_incref(sv->carried_settings);
                return;
        }
        want = e->vm.settings;
        settings_merge(&want, &sv->settings, sv->given);
        cvm = config_section(&d->cfg, sv->name);
        if (settings_check_naming(&want, SETTINGS_ALL, named, err, sizeof(err)) < 0) {
                log_msg(LOG_WARNING,
                        "state file: %s: the settings changed with dynmem set no "
                        "longer fit %s:%u (%s); they are dropped",
                        sv->name, d->cfg.path,
                        cvm ? clash_line(cvm, named, sv->given) : e->config_line, err);
                return;
        }
        e->vm.settings = want;
        e->overrides = sv->given & ~pending;
        e->reset_pending = pending;
        registry_drop_carried_settings(e);
        e->carried_settings = json_incref(sv->carried_settings);
        registry_touch(e);
        if (e->overrides)
                log_msg(LOG_INFO, "%s: settings changed with dynmem set override the configuration",
                        sv->name);
        if (pending && cvm) {
                /* the VM may still run with them (reattached): as before the restart */
                char cited[PATH_MAX + 512];
                name_list(pending, false, names, sizeof(names));
                cite_file_values(&d->cfg, cvm, pending, false, cited, sizeof(cited));
                log_msg(LOG_INFO, "%s: %s kept until the VM is off; then %s %s taken", sv->name,
                        names, cited, strchr(names, ',') ? "are" : "is");
        }
}

static void state_created(struct daemon *d, const struct state_vm *sv)
{
        struct vm_settings s = sv->settings;
        struct registry_entry *e;
        char err[512] = "";

        settings_complete(&s, sv->given);
        if (settings_check_given(&s, sv->given, err, sizeof(err)) < 0) {
                log_msg(LOG_WARNING, "state file: %s: dropped: %s", sv->name, err);
                return;
        }
        if (registry_add(&d->reg, sv->name, &e) < 0) {
                log_msg(LOG_ERR, "state file: %s: cannot define the VM", sv->name);
                return;
        }
        e->origin = REGISTRY_CREATED;
        e->vm.settings = s;
        e->autostart = sv->autostart;
        e->carried = json_incref(sv->carried);
        e->carried_settings = json_incref(sv->carried_settings);
        if (apply_keys(d, e, sv->keys, sv->n_keys, err, sizeof(err)) < 0)
                log_msg(LOG_ERR,
                        "%s: the backend does not accept it: %s; it cannot start until "
                        "this is fixed",
                        sv->name, err);
}

void apply_state(struct daemon *d, const struct state *st)
{
        for (size_t i = 0; i < st->n; i++) {
                const struct state_vm *sv = &st->vms[i];
                struct registry_entry *e = registry_find(&d->reg, sv->name);

                if (sv->origin == REGISTRY_CONFIG)
                        state_override(d, sv, e);
                else if (e)
                        log_msg(LOG_WARNING,
                                "state file: %s: made with dynmem create, now "
                                "defined in the configuration, which wins",
                                sv->name);
                else
                        state_created(d, sv);
        }
        daemon_vms_changed(d);
}

void apply_autostart(struct daemon *d)
{
        for (size_t i = 0; i < d->reg.n; i++) {
                struct registry_entry *e = d->reg.entries[i];
                if (e->autostart && e->configured && vm_is_off(&e->vm)) {
                        log_msg(LOG_INFO, "%s: autostart", e->vm.name);
                        balancer_request_start(&d->bal, &e->vm);
                        registry_touch(e);
                }
        }
}

size_t apply_sweep(struct daemon *d)
{
        size_t dropped = 0;

        for (size_t i = d->reg.n; i-- > 0;) {
                struct registry_entry *e = d->reg.entries[i];
                if (e->removed && vm_is_off(&e->vm)) {
                        log_msg(LOG_INFO, "%s: removed: stopped after leaving the configuration",
                                e->vm.name);
                        registry_remove(&d->reg, e, d->backend);
                        dropped++;
                }
        }
        return dropped;
}
