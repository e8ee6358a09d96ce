/*
 * settings: defaults and consistency rules for one VM's Dynamic Memory
 * settings. See settings.h.
 */
#include "settings.h"

#include <errno.h>
#include <stdio.h>

void settings_complete(struct vm_settings *s, unsigned given)
{
        if (!(given & SETTINGS_DYNAMIC))
                s->dynamic = false;
        if (!(given & SETTINGS_BLOCK))
                s->block_bytes = SETTINGS_BLOCK_DEFAULT;
        if (!(given & SETTINGS_STARTUP))
                s->startup_bytes = SETTINGS_STARTUP_DEFAULT;
        if (!(given & SETTINGS_MINIMUM))
                s->minimum_bytes = s->startup_bytes < 512 * MIB ? s->startup_bytes : 512 * MIB;
        if (!(given & SETTINGS_MAXIMUM)) {
                uint64_t four = s->startup_bytes > SETTINGS_SIZE_MAX / 4 ? SETTINGS_SIZE_MAX
                                                                         : 4 * s->startup_bytes;
                s->maximum_bytes = s->dynamic ? four : s->startup_bytes;
        }
        if (!(given & SETTINGS_BUFFER))
                s->buffer_percent = SETTINGS_BUFFER_DEFAULT;
        if (!(given & SETTINGS_WEIGHT))
                s->weight = SETTINGS_WEIGHT_DEFAULT;
}

static int check_size(const char *what, uint64_t v, uint64_t block, char *err, size_t errlen)
{
        char a[32], b[32];

        if (v > SETTINGS_SIZE_MAX) {
                snprintf(err, errlen, "%s %s is larger than %s", what, size_format(v, a, sizeof(a)),
                         size_format(SETTINGS_SIZE_MAX, b, sizeof(b)));
                return -EINVAL;
        }
        if (v % block != 0) {
                snprintf(err, errlen, "%s %s is not a multiple of the %s block size", what,
                         size_format(v, a, sizeof(a)), size_format(block, b, sizeof(b)));
                return -EINVAL;
        }
        return 0;
}

int settings_check(const struct vm_settings *s, char *err, size_t errlen)
{
        char a[32], b[32];

        if (s->block_bytes < 4096 || (s->block_bytes & (s->block_bytes - 1)) != 0 ||
            s->block_bytes > GIB) {
                snprintf(err, errlen, "block size %s is not a power of two between 4 KiB and 1 GiB",
                         size_format(s->block_bytes, a, sizeof(a)));
                return -EINVAL;
        }
        if (check_size("startup", s->startup_bytes, s->block_bytes, err, errlen) < 0 ||
            check_size("minimum", s->minimum_bytes, s->block_bytes, err, errlen) < 0 ||
            check_size("maximum", s->maximum_bytes, s->block_bytes, err, errlen) < 0)
                return -EINVAL;
        if (s->minimum_bytes < SETTINGS_MINIMUM_FLOOR) {
                snprintf(err, errlen, "minimum %s is below %s",
                         size_format(s->minimum_bytes, a, sizeof(a)),
                         size_format(SETTINGS_MINIMUM_FLOOR, b, sizeof(b)));
                return -EINVAL;
        }
        if (s->minimum_bytes > s->startup_bytes) {
                snprintf(err, errlen, "minimum %s is above startup %s",
                         size_format(s->minimum_bytes, a, sizeof(a)),
                         size_format(s->startup_bytes, b, sizeof(b)));
                return -EINVAL;
        }
        if (s->startup_bytes > s->maximum_bytes) {
                snprintf(err, errlen, "startup %s is above maximum %s",
                         size_format(s->startup_bytes, a, sizeof(a)),
                         size_format(s->maximum_bytes, b, sizeof(b)));
                return -EINVAL;
        }
        if (s->buffer_percent < SETTINGS_BUFFER_MIN || s->buffer_percent > SETTINGS_BUFFER_MAX) {
                snprintf(err, errlen, "buffer %u %% is outside %u..%u %%", s->buffer_percent,
                         SETTINGS_BUFFER_MIN, SETTINGS_BUFFER_MAX);
                return -EINVAL;
        }
        if (s->weight > SETTINGS_WEIGHT_MAX) {
                snprintf(err, errlen, "weight %u is outside 0..%u", s->weight, SETTINGS_WEIGHT_MAX);
                return -EINVAL;
        }
        return 0;
}

int settings_check_change(const struct vm_settings *old, const struct vm_settings *new,
                          bool running, char *err, size_t errlen)
{
        if (settings_check(new, err, errlen) < 0)
                return -EINVAL;
        if (!running)
                return 0;
        if (new->dynamic != old->dynamic) {
                snprintf(err, errlen, "cannot change dynamic while the VM is running");
                return -EPERM;
        }
        if (new->startup_bytes != old->startup_bytes) {
                snprintf(err, errlen, "cannot change startup while the VM is running");
                return -EPERM;
        }
        if (new->block_bytes != old->block_bytes) {
                snprintf(err, errlen, "cannot change the block size while the VM is running");
                return -EPERM;
        }
        if (new->minimum_bytes > old->minimum_bytes) {
                snprintf(err, errlen, "minimum can only be lowered while the VM is running");
                return -EPERM;
        }
        if (new->maximum_bytes < old->maximum_bytes) {
                snprintf(err, errlen, "maximum can only be raised while the VM is running");
                return -EPERM;
        }
        return 0;
}
