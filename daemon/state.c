/*
 * state: reading and writing dynmemd's state file. See state.h.
 */
#include "state.h"

#include <errno.h>
#include <stddef.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.h"
#include "fsutil.h"
#include "savefile.h"

/* A saved name for a message: quoted, at most 40 bytes, anything unprintable as '?'. */
static void quote_name(const json_t *v, char *out, size_t len)
{
        const char *text = json_string_value(v);
        size_t n = 0;

        if (!text) {
                snprintf(out, len, "a %s",
                         json_is_object(v)   ? "JSON object"
                         : json_is_array(v)  ? "JSON array"
                         : json_is_number(v) ? "number"
                                             : "non-string");
                return;
        }
        out[n++] = '"';
        for (; *text && n + 2 < len && n < 41; text++)
                out[n++] = *text >= 0x20 && *text < 0x7f ? *text : '?';
        out[n++] = '"';
        out[n] = '\0';
}

/*
 * "reset_pending": the settings whose reset waits for the VM to be off, each
 * by its JSON name and with its value in force in "settings". What is wrong
 * is dropped alone and named in sv->note; the entry and the file stand.
 */
static void parse_pending(const json_t *list, struct state_vm *sv)
{
        const json_t *v;
        size_t i;
        char what[64], why[96];

        if (!json_is_array(list)) {
                savefile_note(sv->note, sizeof(sv->note), "not a list of settings");
                return;
        }
        json_array_foreach(list, i, v)
        {
                const struct setting_desc *s =
                    json_is_string(v) ? settings_find_json(json_string_value(v)) : NULL;
                if (s && (sv->given & s->bit)) {
                        sv->reset_pending |= s->bit;
                        continue;
                }
                quote_name(v, what, sizeof(what));
                snprintf(why, sizeof(why), "%s %s", what,
                         s ? "without its value in \"settings\"" : "is not a setting");
                savefile_note(sv->note, sizeof(sv->note), why);
        }
}

/* An object with members, or NULL (what was empty is let go). */
static json_t *unless_empty(json_t *obj)
{
        if (json_object_size(obj) > 0)
                return obj;
        json_decref(obj);
        return NULL;
}

/*
 * "settings" split in two: those this dynmemd knows into *ret_known, the
 * others (a newer one's) into *ret_unknown (NULL when none), each of them
 * named in ignored. 0, or -ENOMEM with nothing taken.
 */
static int split_settings(json_t *settings, json_t **ret_known, json_t **ret_unknown, char *ignored,
                          size_t ignoredlen)
{
        json_t *known, *unknown, *v;
        const char *key;
        char what[96];

        if (!json_is_object(settings)) { /* control_settings_parse() says what is wrong */
                *ret_known = json_incref(settings);
                *ret_unknown = NULL;
                return 0;
        }
        known = json_object();
        unknown = json_object();
        json_object_foreach(settings, key, v)
        {
                bool is_known = settings_find_json(key) != NULL;
                if (!known || !unknown || json_object_set(is_known ? known : unknown, key, v) < 0) {
                        json_decref(known);
                        json_decref(unknown);
                        return -ENOMEM;
                }
                if (is_known)
                        continue;
                snprintf(what, sizeof(what), "setting \"%.64s\"", key);
                savefile_note(ignored, ignoredlen, what);
        }
        if (!known || !unknown) {
                json_decref(known);
                json_decref(unknown);
                return -ENOMEM;
        }
        *ret_known = known;
        *ret_unknown = unless_empty(unknown);
        return 0;
}

static const char *const state_members[] = {"origin",  "settings",      "autostart",
                                            "backend", "reset_pending", NULL};

static const struct savefile_spec state_spec;

static int parse_vm(const json_t *obj, void *vm, char *ignored, size_t ignoredlen, char *err,
                    size_t errlen)
{
        struct state_vm *sv = vm;
        const char *name = NULL, *origin = NULL;
        json_t *settings = NULL, *backend = NULL, *pending = NULL;
        int autostart = -1;
        json_error_t jerr;

        /* not JSON_STRICT: members of a newer dynmemd are ignored (savefile names them) */
        if (json_unpack_ex((json_t *)obj, &jerr, 0, "{s:s, s:s, s?o, s?b, s?o, s?o}", "name", &name,
                           "origin", &origin, "settings", &settings, "autostart", &autostart,
                           "backend", &backend, "reset_pending", &pending) < 0) {
                snprintf(err, errlen, "%s", jerr.text);
                return -EINVAL;
        }
        /* "backend" is an origin too, but such VMs are never saved here (their owner keeps them) */
        if (registry_origin_parse(origin, &sv->origin) < 0 || sv->origin == REGISTRY_BACKEND) {
                snprintf(err, errlen, "%s: origin must be config or created", name);
                return -EINVAL;
        }
        sv->autostart = autostart == 1;
        sv->autostart_given = autostart != -1;
        /* what a newer dynmemd added is kept to be written back (savefile names it) */
        sv->carried = savefile_unknown(obj, &state_spec, true);
        if (!sv->carried) {
                snprintf(err, errlen, "out of memory");
                return -EINVAL;
        }
        sv->carried = unless_empty(sv->carried);
        if (settings) {
                json_t *known = NULL;
                int r =
                    split_settings(settings, &known, &sv->carried_settings, ignored, ignoredlen);
                if (r == 0)
                        r = control_settings_parse(known, &sv->settings, &sv->given, err, errlen);
                json_decref(known);
                if (r == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
                if (r < 0)
                        return -EINVAL;
        }
        if (backend && control_keys_parse(backend, &sv->keys, &sv->n_keys, err, errlen) < 0)
                return -EINVAL;
        /* only a VM of the file has values to go back to */
        if (pending && sv->origin == REGISTRY_CONFIG)
                parse_pending(pending, sv);
        else if (pending)
                savefile_note(sv->note, sizeof(sv->note),
                              "a created VM has no file values to wait for");
        return 0;
}

static void free_vm_item(void *vm)
{
        struct state_vm *sv = vm;

        control_keys_free(sv->keys, sv->n_keys);
        json_decref(sv->carried);
        json_decref(sv->carried_settings);
}

static const struct savefile_spec state_spec = {
    .version = STATE_VERSION,
    .shape = "{\"version\": 1, \"vms\": [...]}",
    .members = state_members,
    .vm_size = sizeof(struct state_vm),
    .name_offset = offsetof(struct state_vm, name),
    .name_size = sizeof(((struct state_vm *)0)->name),
    .parse_vm = parse_vm,
    .free_vm = free_vm_item,
};

int state_parse(const char *text, size_t len, struct state *ret, char *err, size_t errlen)
{
        struct savefile_drops dropped = {0}, ignored = {0};
        json_t *root, *carried;
        void *vms;
        size_t n;
        int r = savefile_parse_lenient(text, len, &state_spec, &root, &vms, &n, &dropped, &ignored,
                                       err, errlen);

        if (r < 0)
                return r;
        carried = savefile_unknown(root, &state_spec, false);
        json_decref(root);
        *ret = (struct state){.vms = vms, .n = n, .dropped = dropped, .ignored = ignored};
        if (!carried) {
                state_free(ret);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        ret->carried = unless_empty(carried);
        return 0;
}

int state_load(const char *dir, struct state *ret, char *err, size_t errlen)
{
        char path[PATH_MAX], *text = NULL;
        size_t len;
        int r;

        if (snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE) >= (int)sizeof(path)) {
                snprintf(err, errlen, "%s/%s: %s", dir, STATE_FILE, strerror(ENAMETOOLONG));
                return -ENAMETOOLONG;
        }
        r = fsutil_read_file(path, STATE_FILE_MAX, &text, &len);
        if (r == -ENOENT)
                return r;
        if (r == -EINVAL)
                snprintf(err, errlen, "%s: not a regular file", path);
        else if (r == -EFBIG)
                snprintf(err, errlen, "%s: larger than %u MiB", path, STATE_FILE_MAX >> 20);
        else if (r < 0)
                snprintf(err, errlen, "%s: %s", path, strerror(-r));
        if (r < 0)
                return r;
        char why[384] = "";
        r = state_parse(text, len, ret, why, sizeof(why));
        if (r < 0)
                snprintf(err, errlen, "%s: %s", path, why);
        else if (ret->dropped.n || ret->ignored.n)
                snprintf(err, errlen, "%s", path);
        free(text);
        return r;
}

void state_free(struct state *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++)
                free_vm_item(&s->vms[i]);
        free(s->vms);
        savefile_drops_free(&s->dropped);
        savefile_drops_free(&s->ignored);
        json_decref(s->carried);
        *s = (struct state){0};
}

/* ["minimum_bytes", ...]: the settings in mask by their JSON names; NULL on ENOMEM. */
static json_t *pending_json(unsigned mask)
{
        json_t *a = json_array();

        for (size_t i = 0; a && i < SETTINGS_N; i++)
                if ((mask & settings_table[i].bit) &&
                    json_array_append_new(a, json_string(settings_table[i].json)) < 0) {
                        json_decref(a);
                        return NULL;
                }
        return a;
}

/*
 * Add what a newer dynmemd wrote (carried, or NULL) to obj beside what this
 * one writes: a member obj has is never replaced. 0, or -ENOMEM.
 */
static int add_carried(json_t *obj, const json_t *carried)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)carried, key, v)
        {
                if (!json_object_get(obj, key) && json_object_set(obj, key, v) < 0)
                        return -ENOMEM;
        }
        return 0;
}

/* The persisted part of one entry; NULL when it has nothing to keep (*ret_skip) or on ENOMEM. */
static json_t *entry_json(const struct registry_entry *e, bool *ret_skip)
{
        bool created = e->origin == REGISTRY_CREATED;
        bool carried = e->carried || e->carried_settings;
        unsigned pending = created ? 0 : e->reset_pending;
        unsigned mask = created ? ~0u : e->overrides | pending;
        json_t *settings, *obj;

        *ret_skip = !created && ((mask == 0 && !e->autostart_override && !carried) || e->removed);
        if (*ret_skip)
                return NULL;
        settings = control_settings_json(&e->vm.settings, mask);
        if (settings && add_carried(settings, e->carried_settings) < 0) {
                json_decref(settings);
                return NULL;
        }
        obj = json_pack("{s:s, s:s, s:o}", "name", e->vm.name, "origin",
                        registry_origin_name(e->origin), "settings", settings);
        if (obj && (created || e->autostart_override) &&
            json_object_set_new(obj, "autostart", json_boolean(e->autostart)) < 0) {
                json_decref(obj);
                return NULL;
        }
        if (obj && created &&
            json_object_set_new(obj, "backend", control_keys_json(e->keys, e->n_keys)) < 0) {
                json_decref(obj);
                return NULL;
        }
        if (obj && pending &&
            json_object_set_new(obj, "reset_pending", pending_json(pending)) < 0) {
                json_decref(obj);
                return NULL;
        }
        /* last: a member of this dynmemd's is never one carried, nor written twice */
        if (obj && add_carried(obj, e->carried) < 0) {
                json_decref(obj);
                return NULL;
        }
        return obj;
}

/* The entry's line in the state file ("" when it has none), cached until touched. */
static const char *entry_text(struct registry_entry *e)
{
        bool skip;
        json_t *obj;

        if (e->state_text)
                return e->state_text;
        obj = entry_json(e, &skip);
        e->state_text = skip ? strdup("") : obj ? json_dumps(obj, JSON_COMPACT) : NULL;
        json_decref(obj);
        return e->state_text;
}

/*
 * The file's members a newer dynmemd wrote, after "vms": ", \"x\":1" (nothing
 * when none). False on ENOMEM.
 */
static bool put_carried(FILE *f, const json_t *carried)
{
        json_t *copy;
        char *text;
        size_t len;

        if (json_object_size(carried) == 0)
                return true;
        copy = json_copy((json_t *)carried);
        if (!copy)
                return false;
        /* never this dynmemd's own members, nor twice */
        json_object_del(copy, "version");
        json_object_del(copy, "vms");
        text = json_dumps(copy, JSON_COMPACT);
        json_decref(copy);
        if (!text)
                return false;
        len = strlen(text);
        if (len > 2) /* {"x":1} without its braces */
                fprintf(f, ", %.*s", (int)(len - 2), text + 1);
        free(text);
        return true;
}

char *state_format(struct registry *r, const json_t *carried)
{
        char *text = NULL;
        size_t len = 0, kept = 0;
        FILE *f = open_memstream(&text, &len);
        bool bad = !f;

        if (f)
                fprintf(f, "{\"version\": %d, \"vms\": [", STATE_VERSION);
        for (size_t i = 0; !bad && i < r->n; i++) {
                const char *line = entry_text(r->entries[i]);
                if (!line)
                        bad = true;
                else if (line[0])
                        fprintf(f, "%s\n  %s", kept++ ? "," : "", line);
        }
        if (f) {
                fputs(kept ? "\n]" : "]", f);
                bad |= !put_carried(f, carried);
                fputs("}\n", f);
                bad |= ferror(f) != 0;
                bad |= fclose(f) != 0;
        }
        if (bad) {
                free(text);
                return NULL;
        }
        return text;
}

int state_save(const char *dir, struct registry *r, const json_t *carried)
{
        char *text = state_format(r, carried);
        int ret;

        if (!text)
                return -ENOMEM;
        ret = fsutil_write_atomic(dir, STATE_FILE, text, strlen(text), 0640);
        free(text);
        return ret;
}
