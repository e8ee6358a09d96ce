/*
 * registry: dynmemd's VMs, sorted by name. See registry.h.
 */
#include "registry.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const origin_names[REGISTRY_N_ORIGINS] = {
    [REGISTRY_CONFIG] = "config",
    [REGISTRY_CREATED] = "created",
    [REGISTRY_BACKEND] = "backend",
};
#define N_ORIGINS (sizeof(origin_names) / sizeof(origin_names[0]))

const char *registry_origin_name(enum registry_origin o)
{
        return (unsigned)o < N_ORIGINS ? origin_names[o] : "unknown";
}

int registry_origin_parse(const char *text, enum registry_origin *ret)
{
        for (unsigned i = 0; i < N_ORIGINS; i++) {
                if (strcmp(text, origin_names[i]) == 0) {
                        *ret = (enum registry_origin)i;
                        return 0;
                }
        }
        return -EINVAL;
}

/* Index of name, or of where it would go (with *found false). */
static size_t position(const struct registry *r, const char *name, bool *found)
{
        size_t lo = 0, hi = r->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(r->entries[mid]->vm.name, name);
                if (c == 0) {
                        *found = true;
                        return mid;
                }
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        *found = false;
        return lo;
}

struct registry_entry *registry_find(const struct registry *r, const char *name)
{
        bool found;
        size_t i = position(r, name, &found);

        return found ? r->entries[i] : NULL;
}

static int grow(struct registry *r)
{
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct registry_entry **entries = realloc(r->entries, cap * sizeof(*entries));

        if (!entries)
                return -ENOMEM;
        r->entries = entries;
        struct vm **vms = realloc(r->vms, cap * sizeof(*vms));
        if (!vms)
                return -ENOMEM;
        r->vms = vms;
        r->cap = cap;
        return 0;
}

int registry_add(struct registry *r, const char *name, struct registry_entry **ret)
{
        struct registry_entry *e;
        bool found;
        size_t i = position(r, name, &found);

        if (found)
                return -EEXIST;
        if (strlen(name) >= VM_NAME_MAX)
                return -EINVAL;
        if (r->n == r->cap && grow(r) < 0)
                return -ENOMEM;
        e = calloc(1, sizeof(*e));
        if (!e)
                return -ENOMEM;
        memcpy(e->vm.name, name, strlen(name) + 1);
        e->vm.state = VM_OFF;
        e->vm.owner_data = e;
        e->reboot_rl = LOG_RATELIMIT(REGISTRY_REBOOT_LOG_BURST, REGISTRY_REBOOT_LOG_PER_MINUTE);
        vm_counters_reset(&e->vm.counters);
        memmove(&r->entries[i + 1], &r->entries[i], (r->n - i) * sizeof(*r->entries));
        memmove(&r->vms[i + 1], &r->vms[i], (r->n - i) * sizeof(*r->vms));
        r->entries[i] = e;
        r->vms[i] = &e->vm;
        r->n++;
        *ret = e;
        return 0;
}

void registry_touch(struct registry_entry *e)
{
        free(e->json_text);
        e->json_text = NULL;
        free(e->state_text);
        e->state_text = NULL;
}

void registry_drop_carried_settings(struct registry_entry *e)
{
        if (!e->carried_settings)
                return;
        json_decref(e->carried_settings);
        e->carried_settings = NULL;
        registry_touch(e);
}

static void entry_free(struct registry_entry *e, struct backend *b)
{
        if (b && e->vm.backend_data)
                b->ops->forget_vm(b, &e->vm);
        for (size_t i = 0; i < e->n_keys; i++) {
                free(e->keys[i].key);
                free(e->keys[i].value);
        }
        free(e->keys);
        free(e->json_text);
        free(e->state_text);
        json_decref(e->carried);
        json_decref(e->carried_settings);
        free(e);
}

void registry_remove(struct registry *r, struct registry_entry *e, struct backend *b)
{
        bool found;
        size_t i = position(r, e->vm.name, &found);

        if (!found || r->entries[i] != e)
                return;
        memmove(&r->entries[i], &r->entries[i + 1], (r->n - i - 1) * sizeof(*r->entries));
        memmove(&r->vms[i], &r->vms[i + 1], (r->n - i - 1) * sizeof(*r->vms));
        r->n--;
        entry_free(e, b);
}

int registry_set_keys(struct registry_entry *e, const struct config_kv *keys, size_t n)
{
        struct config_kv *copy = calloc(n ? n : 1, sizeof(*copy));

        if (!copy)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                copy[i] = keys[i];
                copy[i].key = strdup(keys[i].key);
                copy[i].value = strdup(keys[i].value);
                if (!copy[i].key || !copy[i].value) {
                        for (size_t j = 0; j <= i; j++) {
                                free(copy[j].key);
                                free(copy[j].value);
                        }
                        free(copy);
                        return -ENOMEM;
                }
        }
        for (size_t i = 0; i < e->n_keys; i++) {
                free(e->keys[i].key);
                free(e->keys[i].value);
        }
        free(e->keys);
        e->keys = copy;
        e->n_keys = n;
        registry_touch(e);
        return 0;
}

bool registry_keys_equal(const struct registry_entry *e, const struct config_kv *keys, size_t n)
{
        if (e->n_keys != n)
                return false;
        for (size_t i = 0; i < n; i++)
                if (strcmp(e->keys[i].key, keys[i].key) != 0 ||
                    strcmp(e->keys[i].value, keys[i].value) != 0)
                        return false;
        return true;
}

void registry_config_vm(const struct registry_entry *e, struct config_vm *ret)
{
        *ret = (struct config_vm){
            .line = e->config_line,
            .settings = e->vm.settings,
            .given = ~0u,
            .autostart = e->autostart,
            .extra = e->keys,
            .n_extra = e->n_keys,
        };
        memcpy(ret->name, e->vm.name, strlen(e->vm.name) + 1);
}

struct registry_entry *registry_entry_of(const struct vm *vm)
{
        return vm->owner_data;
}

void registry_free(struct registry *r, struct backend *b)
{
        if (!r)
                return;
        for (size_t i = 0; i < r->n; i++)
                entry_free(r->entries[i], b);
        free(r->entries);
        free(r->vms);
        *r = (struct registry){0};
}
