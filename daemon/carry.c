/*
 * carry: what the policy learned of a VM, kept in the VM by its owner so
 * that a live migration takes it along, and taken from a VM that arrives.
 * See carry.h.
 */
#include "carry.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attach.h"
#include "daemon.h"
#include "log.h"
#include "policy_save.h"
#include "units.h"

/* The period, DYNMEM_TEST_CARRY_PERIOD_MS for the tests (read once). */
static uint64_t period_ms(void)
{
        static uint64_t period;
        const char *env;
        char *end;

        if (period)
                return period;
        period = CARRY_PERIOD_MS;
        if ((env = getenv("DYNMEM_TEST_CARRY_PERIOD_MS")) && *env) {
                unsigned long long v = strtoull(env, &end, 10);
                if (!*end && v >= 100 && v <= CARRY_PERIOD_MS)
                        period = v;
        }
        return period;
}

/* Where in the period the VM's writes come: its name's hash (FNV-1a). */
static uint64_t offset_of(const char *name)
{
        uint64_t h = 1469598103934665603ull;

        for (const unsigned char *p = (const unsigned char *)name; *p; p++)
                h = (h ^ *p) * 1099511628211ull;
        return h % period_ms();
}

/* ---- writing ---- */

/* The text the VM carries: NULL when the policy learned nothing of it (or ENOMEM). */
static char *text_of(struct daemon *d, struct vm *vm)
{
        const struct policy_vm_memory *m = balancer_memory_const(&d->bal, vm);
        struct policy_learned l;
        json_t *root;
        char *text;

        if (!m || !policy_learned_take(m, daemon_now(d), &l))
                return NULL;
        root = json_pack("{s:I, s:o}", "written_at_ms", (json_int_t)attach_wall_ms(), "policy",
                         policy_learned_json(&l));
        /* 17 digits: a weight read back is the one written, to the bit */
        text = root ? json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
        json_decref(root);
        return text;
}

static int write_one(struct daemon *d, struct registry_entry *e)
{
        char *text;
        int r;

        if (!(text = text_of(d, &e->vm)))
                return -ENODATA;
        r = strlen(text) > BACKEND_LEARNED_MAX
                ? -EFBIG
                : d->backend->ops->carry_learned(d->backend, &e->vm, text);
        free(text);
        return r;
}

int carry_now(struct daemon *d, struct registry_entry *e)
{
        if (!d->backend || !d->backend->ops->carry_learned || e->vm.state != VM_RUNNING)
                return -EOPNOTSUPP;
        int r = write_one(d, e);
        if (r == 0)
                e->carry_at_ms = daemon_now(d) + period_ms();
        return r;
}

bool carry_pending(struct daemon *d, struct registry_entry *e, int *ret_error)
{
        if (ret_error)
                *ret_error = -EOPNOTSUPP;
        return d->backend && d->backend->ops->carry_pending &&
               d->backend->ops->carry_pending(d->backend, &e->vm, ret_error);
}

int carry_fresh(struct daemon *d, struct registry_entry *e)
{
        /* the write already out (the timer's) was made from what the policy knows now */
        if (e->vm.state == VM_RUNNING && carry_pending(d, e, NULL))
                return 0;
        return carry_now(d, e);
}

/* ---- reading ---- */

static void dropped(const struct vm *vm, const char *why)
{
        log_msg(LOG_WARNING,
                "%s: what the policy learned of it, carried in the VM, is dropped: %s; it "
                "learns again from nothing",
                vm->name, why);
}

/* "written_at_ms" as a time that can be aged from, or false with why. */
static bool written_at(const json_t *root, uint64_t wall, uint64_t *ret, char *why, size_t len)
{
        const json_t *w = json_object_get(root, "written_at_ms");
        char a[32];

        if (!json_is_integer(w) || json_integer_value(w) < 0) {
                snprintf(why, len, "written_at_ms: not a time");
                return false;
        }
        *ret = (uint64_t)json_integer_value(w);
        if (*ret > wall + CARRY_SKEW_MS) {
                snprintf(why, len, "written_at_ms: %s ahead of this host's clock",
                         duration_format(*ret - wall, a, sizeof(a)));
                return false;
        }
        if (wall > *ret && wall - *ret > POLICY_SAVE_AGE_MAX) {
                snprintf(why, len, "written_at_ms: %s ago, longer than this dynmem keeps any",
                         duration_format(wall - *ret, a, sizeof(a)));
                return false;
        }
        return true;
}

static void take(struct daemon *d, struct registry_entry *e, const char *text)
{
        struct vm *vm = &e->vm;
        json_error_t jerr;
        json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        uint64_t wall = attach_wall_ms(), at, aged_ms;
        char why[256], a[32], b[32];
        int r;

        if (!json_is_object(root)) {
                if (root)
                        snprintf(why, sizeof(why), "not a JSON object");
                else
                        snprintf(why, sizeof(why), "not JSON: %s", jerr.text);
                dropped(vm, why);
                json_decref(root);
                return;
        }
        if (!written_at(root, wall, &at, why, sizeof(why))) {
                dropped(vm, why);
                json_decref(root);
                return;
        }
        if (e->learned_wall_ms && e->learned_wall_ms >= at) {
                log_msg(LOG_DEBUG,
                        "%s: what the policy learned of it, carried in the VM, is older than "
                        "running.json's: not taken",
                        vm->name);
                json_decref(root);
                return;
        }
        r = attach_learned_apply(d, vm, json_object_get(root, "policy"), at, ", carried in the VM,",
                                 &aged_ms);
        json_decref(root);
        if (r < 0) /* said; or a static VM (-ENOENT): nothing of the policy's applies */
                return;
        log_msg(LOG_INFO,
                "%s: what the policy learned of it came carried in the VM (written %s ago), "
                "aged by %s",
                vm->name, duration_format(wall > at ? wall - at : 0, a, sizeof(a)),
                duration_format(aged_ms, b, sizeof(b)));
}

static void look(struct daemon *d, struct registry_entry *e)
{
        char *text = NULL, why[64];
        int r;

        if (!d->backend->ops->carried_learned || !balancer_memory(&d->bal, &e->vm))
                return;
        r = d->backend->ops->carried_learned(d->backend, &e->vm, &text);
        if (r == -EFBIG) {
                snprintf(why, sizeof(why), "larger than %d bytes", BACKEND_LEARNED_MAX);
                dropped(&e->vm, why);
        } else if (r == 0) {
                take(d, e, text);
        }
        free(text);
}

/* ---- once a cycle ---- */

void carry_cycle(struct daemon *d)
{
        uint64_t now = daemon_now(d);
        unsigned written = 0;

        for (size_t i = 0; i < d->reg.n; i++) {
                struct registry_entry *e = d->reg.entries[i];
                struct vm *vm = &e->vm;
                if (!vm_holds_memory(vm)) {
                        e->carry_looked = false;
                        e->carry_at_ms = 0;
                        e->learned_wall_ms = 0;
                        continue;
                }
                if (vm->state != VM_RUNNING || vm->migration != VM_MIGRATION_NONE)
                        continue;
                if (!e->carry_looked) {
                        e->carry_looked = true;
                        look(d, e);
                }
                if (!d->backend->ops->carry_learned)
                        continue;
                if (!e->carry_at_ms)
                        e->carry_at_ms = now + offset_of(vm->name) + 1;
                if (now < e->carry_at_ms || written >= CARRY_PER_CYCLE)
                        continue;
                int r = write_one(d, e);
                if (r == 0)
                        written++;
                bool later = r == -EBUSY || r == -EAGAIN || r == -ENOMEM;
                e->carry_at_ms = now + (later ? CARRY_RETRY_MS : period_ms());
        }
}
