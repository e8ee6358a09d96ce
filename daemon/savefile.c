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

/* version and vms, plus the spec's extras; anything else is an error. */
static bool members_known(const json_t *root, const struct savefile_spec *spec)
{
        const char *key;
        json_t *v;

        json_object_foreach((json_t *)root, key, v)
        {
                bool known = strcmp(key, "version") == 0 || strcmp(key, "vms") == 0;
                for (const char *const *x = spec->extras; x && *x && !known; x++)
                        known = strcmp(key, *x) == 0;
                if (!known)
                        return false;
        }
        return true;
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

/* Note a VM left out; false when out of memory. */
static bool drop_add(struct savefile_drops *drops, size_t i, const char *why)
{
        char *msg = NULL, **grown = realloc(drops->messages, (drops->n + 1) * sizeof(*grown));

        if (!grown)
                return false;
        drops->messages = grown;
        if (asprintf(&msg, "vms[%zu]: %s", i, why) < 0)
                return false;
        drops->messages[drops->n++] = msg;
        return true;
}

static int parse_vms(const json_t *list, const struct savefile_spec *spec,
                     struct savefile_drops *drops, char **ret_vms, size_t *ret_n, char *err,
                     size_t errlen)
{
        size_t n = json_array_size(list), kept = 0;
        char *vms, why[256] = "";

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
                why[0] = '\0';
                int r = take_name(obj, spec, vm, why, sizeof(why));
                if (r == 0)
                        r = spec->parse_vm(obj, vm, why, sizeof(why));
                for (size_t j = 0; r == 0 && j < kept; j++)
                        if (strcmp(name_of(spec, vms, kept), name_of(spec, vms, j)) == 0) {
                                snprintf(why, sizeof(why), "%s is listed twice",
                                         name_of(spec, vms, kept));
                                r = -EINVAL;
                        }
                if (r == 0) {
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

int savefile_parse_lenient(const char *text, size_t len, const struct savefile_spec *spec,
                           json_t **ret_root, void **ret_vms, size_t *ret_n,
                           struct savefile_drops *drops, char *err, size_t errlen)
{
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
        if (!json_is_object(root) || !json_is_integer(version) || !json_is_array(list) ||
            !members_known(root, spec))
                snprintf(err, errlen, "expected %s", spec->shape);
        else if (json_integer_value(version) != spec->version)
                snprintf(err, errlen, "version %lld is not %d",
                         (long long)json_integer_value(version), spec->version);
        else
                r = parse_vms(list, spec, drops, &vms, &n, err, errlen);
        if (r < 0 || !ret_root)
                json_decref(root);
        if (r < 0) {
                savefile_drops_free(drops);
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
        return savefile_parse_lenient(text, len, spec, ret_root, ret_vms, ret_n, NULL, err, errlen);
}
