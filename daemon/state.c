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

static int parse_vm(const json_t *obj, void *vm, char *err, size_t errlen)
{
        struct state_vm *sv = vm;
        const char *name = NULL, *origin = NULL;
        json_t *settings = NULL, *backend = NULL;
        int autostart = -1;
        json_error_t jerr;

        if (json_unpack_ex((json_t *)obj, &jerr, JSON_STRICT, "{s:s, s:s, s?o, s?b, s?o}", "name",
                           &name, "origin", &origin, "settings", &settings, "autostart", &autostart,
                           "backend", &backend) < 0) {
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
        if (settings &&
            control_settings_parse(settings, &sv->settings, &sv->given, err, errlen) < 0)
                return -EINVAL;
        if (backend && control_keys_parse(backend, &sv->keys, &sv->n_keys, err, errlen) < 0)
                return -EINVAL;
        return 0;
}

static void free_vm_item(void *vm)
{
        struct state_vm *sv = vm;

        control_keys_free(sv->keys, sv->n_keys);
}

static const struct savefile_spec state_spec = {
    .version = STATE_VERSION,
    .shape = "{\"version\": 1, \"vms\": [...]}",
    .vm_size = sizeof(struct state_vm),
    .name_offset = offsetof(struct state_vm, name),
    .name_size = sizeof(((struct state_vm *)0)->name),
    .parse_vm = parse_vm,
    .free_vm = free_vm_item,
};

int state_parse(const char *text, size_t len, struct state *ret, char *err, size_t errlen)
{
        struct savefile_drops dropped = {0};
        void *vms;
        size_t n;
        int r =
            savefile_parse_lenient(text, len, &state_spec, NULL, &vms, &n, &dropped, err, errlen);

        if (r < 0)
                return r;
        *ret = (struct state){.vms = vms, .n = n, .dropped = dropped};
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
        else if (ret->dropped.n)
                snprintf(err, errlen, "%s", path);
        free(text);
        return r;
}

void state_free(struct state *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < s->n; i++)
                control_keys_free(s->vms[i].keys, s->vms[i].n_keys);
        free(s->vms);
        savefile_drops_free(&s->dropped);
        *s = (struct state){0};
}

/* The persisted part of one entry, or NULL when it has nothing to keep. */
static json_t *entry_json(const struct registry_entry *e, bool *ret_skip)
{
        bool created = e->origin == REGISTRY_CREATED;
        unsigned mask = created ? ~0u : e->overrides;

        *ret_skip = !created && ((e->overrides == 0 && !e->autostart_override) || e->removed);
        if (*ret_skip)
                return NULL;
        json_t *obj = json_pack("{s:s, s:s, s:o}", "name", e->vm.name, "origin",
                                registry_origin_name(e->origin), "settings",
                                control_settings_json(&e->vm.settings, mask));
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

char *state_format(struct registry *r)
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
                fputs(kept ? "\n]}\n" : "]}\n", f);
                bad |= ferror(f) != 0;
                bad |= fclose(f) != 0;
        }
        if (bad) {
                free(text);
                return NULL;
        }
        return text;
}

int state_save(const char *dir, struct registry *r)
{
        char *text = state_format(r);
        int ret;

        if (!text)
                return -ENOMEM;
        ret = fsutil_write_atomic(dir, STATE_FILE, text, strlen(text), 0640);
        free(text);
        return ret;
}
