/*
 * savefile: the parser of the saved VM lists. See savefile.h.
 */
#include "savefile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static bool listed(const char *key, const char *const *list)
{
        for (; list && *list; list++)
                if (strcmp(key, *list) == 0)
                        return true;
        return false;
}

void savefile_note(char *buf, size_t len, const char *what)
{
        size_t at = strnlen(buf, len);

        if (at + 1 < len)
                snprintf(buf + at, len - at, "%s%s", at ? ", " : "", what);
}

static const char *const name_member[] = {"name", NULL};
static const char *const base_members[] = {"version", "vms", NULL};

/* Whether the spec knows a member of a VM's object (vm) or of the file's. */
static bool known_member(const char *key, const struct savefile_spec *spec, bool vm)
{
        return vm ? listed(key, name_member) || listed(key, spec->members)
                  : listed(key, base_members) || listed(key, spec->extras);
}

/* The members of obj the spec does not know, into buf as "member \"x\", ...". */
static void note_unknown(const json_t *obj, const struct savefile_spec *spec, bool vm, char *buf,
                         size_t len)
{
        const char *key;
        json_t *v;
        char what[96];

        json_object_foreach((json_t *)obj, key, v)
        {
                if (known_member(key, spec, vm))
                        continue;
                snprintf(what, sizeof(what), "member \"%.64s\"", key);
                savefile_note(buf, len, what);
        }
}

json_t *savefile_unknown(const json_t *obj, const struct savefile_spec *spec, bool vm)
{
        json_t *unknown = json_object(), *v;
        const char *key;

        json_object_foreach((json_t *)obj, key, v)
        {
                if (known_member(key, spec, vm))
                        continue;
                if (!unknown || json_object_set(unknown, key, v) < 0) {
                        json_decref(unknown);
                        return NULL;
                }
        }
        return unknown;
}

static const char *name_of(const struct savefile_spec *spec, const char *vms, size_t i)
{
        return vms + i * spec->vm_size + spec->name_offset;
}

/* The VM's "name" into its place in vm. 0, or -EINVAL with a sentence in err. */
static int take_name(const json_t *obj, const struct savefile_spec *spec, char *vm, char *err,
                     size_t errlen)
{
        const char *name = json_string_value(json_object_get(obj, "name"));

        if (!name) {
                snprintf(err, errlen, "a VM without a \"name\" string");
                return -EINVAL;
        }
        if (!config_name_valid(name) || strlen(name) >= spec->name_size) {
                snprintf(err, errlen, "invalid VM name \"%.64s\"", name);
                return -EINVAL;
        }
        memcpy(vm + spec->name_offset, name, strlen(name) + 1);
        return 0;
}

static void free_vms(const struct savefile_spec *spec, char *vms, size_t n)
{
        for (size_t i = 0; spec->free_vm && i < n; i++)
                spec->free_vm(vms + i * spec->vm_size);
        free(vms);
}

void savefile_drops_free(struct savefile_drops *drops)
{
        if (!drops)
                return;
        for (size_t i = 0; i < drops->n; i++)
                free(drops->messages[i]);
        free(drops->messages);
        *drops = (struct savefile_drops){0};
}

/* Add a message to a list; false when out of memory. */
static bool list_add(struct savefile_drops *list, const char *msg)
{
        char *copy, **grown = realloc(list->messages, (list->n + 1) * sizeof(*grown));

        if (!grown)
                return false;
        list->messages = grown;
        if (!(copy = strdup(msg)))
                return false;
        list->messages[list->n++] = copy;
        return true;
}

/* Note a VM left out; false when out of memory. */
static bool drop_add(struct savefile_drops *drops, size_t i, const char *why)
{
        char msg[300];

        snprintf(msg, sizeof(msg), "vms[%zu]: %s", i, why);
        return list_add(drops, msg);
}

/* What a kept VM had that was ignored, into the list; false when out of memory. */
static bool ignored_add(struct savefile_drops *ignored, size_t i, const char *name,
                        const char *what)
{
        char msg[400];

        if (!ignored || !what[0])
                return true;
        snprintf(msg, sizeof(msg), "vms[%zu] (%s): %s", i, name, what);
        return list_add(ignored, msg);
}

static int parse_vms(const json_t *list, const struct savefile_spec *spec,
                     struct savefile_drops *drops, struct savefile_drops *ignored, char **ret_vms,
                     size_t *ret_n, char *err, size_t errlen)
{
        size_t n = json_array_size(list), kept = 0;
        char *vms, why[256] = "", what[256];

        if (n > CONFIG_VMS_MAX) {
                snprintf(err, errlen, "more than %d VMs", CONFIG_VMS_MAX);
                return -EINVAL;
        }
        vms = calloc(n ? n : 1, spec->vm_size);
        if (!vms) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++) {
                const json_t *obj = json_array_get(list, i);
                char *vm = vms + kept * spec->vm_size;
                why[0] = what[0] = '\0';
                int r = take_name(obj, spec, vm, why, sizeof(why));
                if (r == 0)
                        r = spec->parse_vm(obj, vm, what, sizeof(what), why, sizeof(why));
                for (size_t j = 0; r == 0 && j < kept; j++)
                        if (strcmp(name_of(spec, vms, kept), name_of(spec, vms, j)) == 0) {
                                snprintf(why, sizeof(why), "%s is listed twice",
                                         name_of(spec, vms, kept));
                                r = -EINVAL;
                        }
                if (r == 0) {
                        char unknown[256] = "";
                        note_unknown(obj, spec, true, unknown, sizeof(unknown));
                        if (what[0])
                                savefile_note(unknown, sizeof(unknown), what);
                        if (!ignored_add(ignored, i, name_of(spec, vms, kept), unknown)) {
                                snprintf(err, errlen, "out of memory");
                                free_vms(spec, vms, kept + 1);
                                return -ENOMEM;
                        }
                        kept++;
                        continue;
                }
                if (drops && drop_add(drops, i, why)) {
                        /* this one is left out, the others are kept */
                        if (spec->free_vm)
                                spec->free_vm(vm);
                        memset(vm, 0, spec->vm_size);
                        continue;
                }
                if (drops)
                        snprintf(err, errlen, "out of memory");
                else
                        snprintf(err, errlen, "vms[%zu]: %s", i, why);
                free_vms(spec, vms, kept + 1);
                return drops ? -ENOMEM : r;
        }
        *ret_vms = vms;
        *ret_n = kept;
        return 0;
}

/* The version: 0, or -EINVAL with a sentence in err. */
static int check_version(const json_t *version, const struct savefile_spec *spec, char *err,
                         size_t errlen)
{
        long long v = (long long)json_integer_value(version);

        if (v == spec->version)
                return 0;
        if (v > spec->version)
                snprintf(err, errlen,
                         "version %lld, written by a newer dynmemd (this one reads version %d)", v,
                         spec->version);
        else
                snprintf(err, errlen, "version %lld is not %d", v, spec->version);
        return -EINVAL;
}

int savefile_parse_lenient(const char *text, size_t len, const struct savefile_spec *spec,
                           json_t **ret_root, void **ret_vms, size_t *ret_n,
                           struct savefile_drops *drops, struct savefile_drops *ignored, char *err,
                           size_t errlen)
{
        char unknown[256] = "";
        json_error_t jerr;
        json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
        const json_t *version = json_object_get(root, "version");
        const json_t *list = json_object_get(root, "vms");
        char *vms = NULL;
        size_t n = 0;
        int r = -EINVAL;

        if (!root) {
                snprintf(err, errlen, "line %d: %s", jerr.line, jerr.text);
                return -EINVAL;
        }
        /* the version first: a newer file may have another shape */
        if (!json_is_object(root) || !json_is_integer(version))
                snprintf(err, errlen, "expected %s", spec->shape);
        else if (check_version(version, spec, err, errlen) < 0)
                ;
        else if (!json_is_array(list))
                snprintf(err, errlen, "expected %s", spec->shape);
        else
                r = parse_vms(list, spec, drops, ignored, &vms, &n, err, errlen);
        if (r == 0 && ignored) {
                note_unknown(root, spec, false, unknown, sizeof(unknown));
                if (unknown[0] && !list_add(ignored, unknown)) {
                        snprintf(err, errlen, "out of memory");
                        free_vms(spec, vms, n);
                        r = -ENOMEM;
                }
        }
        if (r < 0 || !ret_root)
                json_decref(root);
        if (r < 0) {
                savefile_drops_free(drops);
                savefile_drops_free(ignored);
                return r;
        }
        if (ret_root)
                *ret_root = root;
        *ret_vms = vms;
        *ret_n = n;
        return 0;
}

int savefile_parse(const char *text, size_t len, const struct savefile_spec *spec,
                   json_t **ret_root, void **ret_vms, size_t *ret_n, char *err, size_t errlen)
{
        return savefile_parse_lenient(text, len, spec, ret_root, ret_vms, ret_n, NULL, NULL, err,
                                      errlen);
}
