/*
 * backends: the backend table of dynmemd. See backends.h.
 */
#include "backends.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "dynmem-config.h"
#include "qemu.h"
#include "sim.h"
#if DYNMEM_HAVE_LIBVIRT
#include "libvirt.h"
#endif

static int sim_create(const struct config *cfg, const struct backend_env *env, struct backend **ret,
                      char *err, size_t errlen)
{
        (void)env;
        return sim_backend_new(cfg, ret, err, errlen);
}

static double sim_clock_speed(const struct config *cfg)
{
        return cfg->sim.speed;
}

static const struct backends_entry backends[] = {
    {
        .name = "sim",
        .ops = &sim_backend_ops,
        .create = sim_create,
        .clock_speed = sim_clock_speed,
        .advance = sim_backend_advance,
        .set_memory = sim_backend_set_memory,
    },
    {
        .name = "qemu",
        .ops = &qemu_backend_ops,
        .create = qemu_backend_new,
    },
#if DYNMEM_HAVE_LIBVIRT
    {
        .name = "libvirt",
        .ops = &libvirt_backend_ops,
        .create = libvirt_backend_new,
    },
#else
    {
        .name = "libvirt",
        .missing = "this dynmemd was built without libvirt (install libvirt-dev and "
                   "libxml2-dev, then build again)",
    },
#endif
};

const struct backends_entry *backends_find(const char *name)
{
        for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
                if (strcmp(backends[i].name, name) == 0)
                        return &backends[i];
        return NULL;
}

int backends_check(const char *name, char *err, size_t errlen)
{
        const struct backends_entry *e = backends_find(name);

        if (!e) {
                char known[128] = "";
                for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
                        snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
                                 i ? ", " : "", backends[i].name);
                snprintf(err, errlen, "unknown backend \"%.64s\" (known: %s)", name, known);
                return -ENOENT;
        }
        if (e->missing) {
                snprintf(err, errlen, "%s", e->missing);
                return -EOPNOTSUPP;
        }
        return 0;
}
