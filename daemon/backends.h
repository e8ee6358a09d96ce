/*
 * backends: the table of backends dynmemd knows by the name [host] backend
 * gives, and what the daemon needs from each beyond lib/backend.h: how to
 * create it, how fast its clock runs, and what to do before each cycle.
 * A backend that this build lacks stays in the table with the reason, so
 * the error names it instead of calling it unknown.
 */
#ifndef DYNMEM_BACKENDS_H
#define DYNMEM_BACKENDS_H

#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"

struct backends_entry {
        const char *name;
        const struct backend_ops *ops; /* NULL when missing */
        const char *missing;           /* why this build cannot use it, or NULL */

        int (*create)(const struct config *cfg, const struct backend_env *env, struct backend **ret,
                      char *err, size_t errlen);
        /* Simulated milliseconds per real millisecond (1 for real VMs). */
        double (*clock_speed)(const struct config *cfg);
        /* Called at the start of every cycle with the cycle's time; may be NULL. */
        void (*advance)(struct backend *b, uint64_t now_ms);
        /* The host memory changed on reload; may be NULL. */
        void (*set_memory)(struct backend *b, uint64_t bytes);
};

/* The entry for a name, or NULL when no such backend exists at all. */
const struct backends_entry *backends_find(const char *name);

/*
 * Check that a backend can be used: 0, -ENOENT (unknown; err lists the
 * known ones) or -EOPNOTSUPP (known but missing from this build).
 */
int backends_check(const char *name, char *err, size_t errlen);

#endif
