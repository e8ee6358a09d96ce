/*
 * settings: the table of a VM's settings, their defaults and the rules that
 * bind them. See settings.h.
 */
#include "settings.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AT(field) offsetof(struct vm_settings, field)

const struct setting_desc settings_table[SETTINGS_N] = {
    {SETTINGS_DYNAMIC, "dynamic", "dynamic", "dynamic", SETTING_SWITCH, AT(dynamic), 0, 1, "",
     SETTING_WHILE_OFF},
    /* minimum <= startup <= maximum: startup's floor is minimum's, maximum's follows. */
    {SETTINGS_STARTUP, "startup", "startup_bytes", "startup", SETTING_SIZE, AT(startup_bytes),
     SETTINGS_MINIMUM_FLOOR, SETTINGS_SIZE_MAX, "bytes", SETTING_WHILE_OFF},
    {SETTINGS_MINIMUM, "minimum", "minimum_bytes", "minimum", SETTING_SIZE, AT(minimum_bytes),
     SETTINGS_MINIMUM_FLOOR, SETTINGS_SIZE_MAX, "bytes", SETTING_ONLY_LOWER},
    {SETTINGS_MAXIMUM, "maximum", "maximum_bytes", "maximum", SETTING_SIZE, AT(maximum_bytes), 0,
     SETTINGS_SIZE_MAX, "bytes", SETTING_ONLY_RAISE},
    {SETTINGS_BUFFER, "buffer", "buffer_percent", "buffer", SETTING_NUMBER, AT(buffer_percent),
     SETTINGS_BUFFER_MIN, SETTINGS_BUFFER_MAX, "%", SETTING_ANY_TIME},
    {SETTINGS_WEIGHT, "weight", "weight", "weight", SETTING_NUMBER, AT(weight), 0,
     SETTINGS_WEIGHT_MAX, "", SETTING_ANY_TIME},
    {SETTINGS_BLOCK, "block", "block_bytes", "block size", SETTING_SIZE, AT(block_bytes),
     SETTINGS_BLOCK_MIN, SETTINGS_BLOCK_MAX, "bytes", SETTING_WHILE_OFF},
    /* Whether the VM may borrow: lending itself is the host's lend_hold (off by default). */
    {SETTINGS_LEND, "lend", "lend", "lend", SETTING_SWITCH, AT(lend), 0, 1, "", SETTING_ANY_TIME},
};

_Static_assert(SETTINGS_ALL ==
                   (SETTINGS_DYNAMIC | SETTINGS_STARTUP | SETTINGS_MINIMUM | SETTINGS_MAXIMUM |
                    SETTINGS_BUFFER | SETTINGS_WEIGHT | SETTINGS_BLOCK | SETTINGS_LEND),
               "settings_table has a row for every settings_field bit");

static const struct setting_desc *find_by(size_t member, const char *key)
{
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const char *name =
                    *(const char *const *)((const char *)&settings_table[i] + member);
                if (strcmp(name, key) == 0)
                        return &settings_table[i];
        }
        return NULL;
}

const struct setting_desc *settings_find(const char *name)
{
        return find_by(offsetof(struct setting_desc, name), name);
}

const struct setting_desc *settings_find_json(const char *json)
{
        return find_by(offsetof(struct setting_desc, json), json);
}

uint64_t settings_get(const struct vm_settings *s, const struct setting_desc *d)
{
        const char *p = (const char *)s + d->offset;

        switch (d->type) {
        case SETTING_SWITCH:
                return *(const bool *)p;
        case SETTING_SIZE:
                return *(const uint64_t *)p;
        case SETTING_NUMBER:
                return *(const uint32_t *)p;
        }
        return 0;
}

void settings_set(struct vm_settings *s, const struct setting_desc *d, uint64_t v)
{
        char *p = (char *)s + d->offset;

        switch (d->type) {
        case SETTING_SWITCH:
                *(bool *)p = v != 0;
                break;
        case SETTING_SIZE:
                *(uint64_t *)p = v;
                break;
        case SETTING_NUMBER:
                *(uint32_t *)p = (uint32_t)v;
                break;
        }
}

uint64_t settings_type_max(const struct setting_desc *d)
{
        switch (d->type) {
        case SETTING_SWITCH:
                return 1;
        case SETTING_SIZE:
                return (uint64_t)INT64_MAX;
        case SETTING_NUMBER:
                return UINT32_MAX;
        }
        return 0;
}

static int parse_number(const char *text, bool percent, uint64_t *ret)
{
        char *end;

        if (text[0] < '0' || text[0] > '9')
                return -EINVAL;
        errno = 0;
        unsigned long long v = strtoull(text, &end, 10);
        if (percent && *end == '%')
                end++;
        if (*end)
                return -EINVAL;
        if (errno || v > UINT32_MAX)
                return -ERANGE;
        *ret = v;
        return 0;
}

int settings_parse_text(const struct setting_desc *d, const char *text, uint64_t *ret)
{
        uint64_t v;

        switch (d->type) {
        case SETTING_SWITCH: {
                bool on;
                if (switch_parse(text, &on) < 0)
                        return -EINVAL;
                *ret = on;
                return 0;
        }
        case SETTING_NUMBER:
                return parse_number(text, strcmp(d->unit, "%") == 0, ret);
        case SETTING_SIZE: {
                int r = size_parse(text, &v);
                if (r < 0)
                        return r;
                if (v > settings_type_max(d))
                        return -ERANGE;
                *ret = v;
                return 0;
        }
        }
        return -EINVAL;
}

const char *settings_expected(const struct setting_desc *d)
{
        switch (d->type) {
        case SETTING_SWITCH:
                return SWITCH_WORDS;
        case SETTING_SIZE:
                return "a size (bytes, or a number with K, M, G or T)";
        case SETTING_NUMBER:
                return "a whole number";
        }
        return "";
}

unsigned settings_diff(const struct vm_settings *a, const struct vm_settings *b)
{
        unsigned mask = 0;

        for (size_t i = 0; i < SETTINGS_N; i++)
                if (settings_get(a, &settings_table[i]) != settings_get(b, &settings_table[i]))
                        mask |= settings_table[i].bit;
        return mask;
}

void settings_merge(struct vm_settings *dst, const struct vm_settings *src, unsigned mask)
{
        for (size_t i = 0; i < SETTINGS_N; i++)
                if (mask & settings_table[i].bit)
                        settings_set(dst, &settings_table[i],
                                     settings_get(src, &settings_table[i]));
}

unsigned settings_follow_startup(struct vm_settings *s, unsigned given)
{
        unsigned moved = 0;

        if (s->dynamic || !(given & SETTINGS_STARTUP))
                return 0;
        if (!(given & SETTINGS_MAXIMUM) && s->maximum_bytes < s->startup_bytes) {
                s->maximum_bytes = s->startup_bytes;
                moved |= SETTINGS_MAXIMUM;
        }
        if (!(given & SETTINGS_MINIMUM) && s->minimum_bytes > s->startup_bytes &&
            s->startup_bytes >= SETTINGS_MINIMUM_FLOOR) {
                s->minimum_bytes = s->startup_bytes;
                moved |= SETTINGS_MINIMUM;
        }
        return moved;
}

uint64_t settings_first_block(const struct vm_settings *s)
{
        if (!s->dynamic || s->maximum_bytes <= s->startup_bytes ||
            s->startup_bytes < 2 * s->block_bytes)
                return 0;
        return s->block_bytes;
}

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
        if (!(given & SETTINGS_LEND))
                s->lend = true;
}

/* A size as size_format() prints it, with its exact bytes where that rounds ("4.0 KiB (4097 B)").
 */
static char *size_shown(uint64_t v, char *buf, size_t len)
{
        char a[32];

        size_format(v, a, sizeof(a));
        if (strchr(a, '.'))
                snprintf(buf, len, "%s (%llu B)", a, (unsigned long long)v);
        else
                snprintf(buf, len, "%s", a);
        return buf;
}

/* The block is every other size's unit: a power of two in its range. */
static int check_block(const struct vm_settings *s, unsigned named[2], char *err, size_t errlen)
{
        const struct setting_desc *d = &settings_table[__builtin_ctz(SETTINGS_BLOCK)];
        uint64_t v = s->block_bytes;
        char a[64], b[32], c[32];

        if (v >= d->min && v <= d->max && (v & (v - 1)) == 0)
                return 0;
        named[0] = SETTINGS_BLOCK;
        snprintf(err, errlen, "%s %s is not a power of two between %s and %s", d->label,
                 size_shown(v, a, sizeof(a)), size_format(d->min, b, sizeof(b)),
                 size_format(d->max, c, sizeof(c)));
        return -EINVAL;
}

/* What a size not given defaults to, for a message about it (settings_complete's rules). */
static const char *default_text(const struct vm_settings *s, unsigned bit, char *buf, size_t len)
{
        char a[32];

        switch (bit) {
        case SETTINGS_STARTUP:
                snprintf(buf, len, "%s", size_format(SETTINGS_STARTUP_DEFAULT, a, sizeof(a)));
                break;
        case SETTINGS_MINIMUM:
                snprintf(buf, len, "the smaller of 512 MiB and startup");
                break;
        default:
                snprintf(buf, len, "%s", s->dynamic ? "4 x startup" : "startup");
                break;
        }
        return buf;
}

/* " (minimum is not set and defaults to ...)" for a size of d not given, else "". */
static const char *default_note(const struct vm_settings *s, const struct setting_desc *d,
                                unsigned given, char *buf, size_t len)
{
        char dflt[48];

        if (given & d->bit)
                buf[0] = '\0';
        else
                snprintf(buf, len, " (%s is not set and defaults to %s)", d->label,
                         default_text(s, d->bit, dflt, sizeof(dflt)));
        return buf;
}

/*
 * A size that is not a multiple of the block, shown so that the problem shows:
 * exactly when it is a whole number of KiB or more ("1025 MiB", "1048580 KiB"),
 * else in MiB with its exact bytes ("1331.2 MiB (1395864371 B)"), where "1.3 GiB"
 * alone would look like a multiple.
 */
static char *misaligned_format(uint64_t v, char *buf, size_t len)
{
        if (v % KIB == 0)
                return size_format_exact(v, buf, len);
        snprintf(buf, len, "%.1f MiB (%llu B)", (double)v / (double)MIB, (unsigned long long)v);
        return buf;
}

/* ", as 1330 MiB and 1332 MiB are": the multiples of d's range nearest to v. */
static char *nearest_multiples(const struct setting_desc *d, uint64_t v, uint64_t block, char *buf,
                               size_t len)
{
        uint64_t below = v - v % block, above = below + block;
        bool lo = below >= d->min && below > 0, hi = above <= d->max && above > below;
        char a[32], b[32];

        size_format_exact(below, a, sizeof(a));
        size_format_exact(above, b, sizeof(b));
        if (lo && hi)
                snprintf(buf, len, ", as %s and %s are", a, b);
        else if (lo || hi)
                snprintf(buf, len, ", as %s is", lo ? a : b);
        else
                buf[0] = '\0';
        return buf;
}

static int check_size(const struct vm_settings *s, const struct setting_desc *d, unsigned given,
                      unsigned named[2], char *err, size_t errlen)
{
        uint64_t v = settings_get(s, d);
        char a[64], b[32], note[96], near[112];

        size_shown(v, a, sizeof(a));
        default_note(s, d, given, note, sizeof(note));
        if (v > d->max)
                snprintf(err, errlen, "%s %s is larger than %s%s", d->label, a,
                         size_format(d->max, b, sizeof(b)), note);
        else if (v % s->block_bytes != 0) {
                named[1] = SETTINGS_BLOCK;
                snprintf(err, errlen, "%s %s is not a multiple of the %s block size%s%s", d->label,
                         misaligned_format(v, a, sizeof(a)),
                         size_format(s->block_bytes, b, sizeof(b)),
                         nearest_multiples(d, v, s->block_bytes, near, sizeof(near)), note);
        } else if (v < d->min)
                snprintf(err, errlen, "%s %s is below %s%s", d->label, a,
                         size_format(d->min, b, sizeof(b)), note);
        else
                return 0;
        named[0] = d->bit;
        return -EINVAL;
}

static int check_number(const struct vm_settings *s, const struct setting_desc *d,
                        unsigned named[2], char *err, size_t errlen)
{
        uint64_t v = settings_get(s, d);
        const char *sp = d->unit[0] ? " " : "";

        if (v >= d->min && v <= d->max)
                return 0;
        named[0] = d->bit;
        snprintf(err, errlen, "%s %llu%s%s is outside %llu..%llu%s%s", d->label,
                 (unsigned long long)v, sp, d->unit, (unsigned long long)d->min,
                 (unsigned long long)d->max, sp, d->unit);
        return -EINVAL;
}

/*
 * minimum <= startup <= maximum. Of the pairs out of order, the one with the
 * most sizes the operator gave is named (in the order minimum/startup,
 * startup/maximum, minimum/maximum), so that "minimum = 2G, maximum = 1G"
 * says so rather than naming a startup nobody set; a size not given that the
 * message names is said to be a default.
 */
static int check_order(const struct vm_settings *s, unsigned given, unsigned named[2], char *err,
                       size_t errlen)
{
        static const unsigned pairs[][2] = {{SETTINGS_MINIMUM, SETTINGS_STARTUP},
                                            {SETTINGS_STARTUP, SETTINGS_MAXIMUM},
                                            {SETTINGS_MINIMUM, SETTINGS_MAXIMUM}};
        const struct setting_desc *worst[2] = {NULL, NULL};
        int worst_given = -1;
        char a[32], b[32], note[96] = "";

        for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
                const struct setting_desc *lo = &settings_table[__builtin_ctz(pairs[i][0])];
                const struct setting_desc *hi = &settings_table[__builtin_ctz(pairs[i][1])];
                int n = !!(given & lo->bit) + !!(given & hi->bit);
                if (settings_get(s, lo) > settings_get(s, hi) && n > worst_given) {
                        worst[0] = lo, worst[1] = hi;
                        worst_given = n;
                }
        }
        if (!worst[0])
                return 0;
        for (size_t i = 0; i < 2 && !note[0]; i++)
                default_note(s, worst[i], given, note, sizeof(note));
        named[0] = worst[0]->bit, named[1] = worst[1]->bit;
        snprintf(err, errlen, "%s %s is above %s %s%s", worst[0]->label,
                 size_format(settings_get(s, worst[0]), a, sizeof(a)), worst[1]->label,
                 size_format(settings_get(s, worst[1]), b, sizeof(b)), note);
        return -EINVAL;
}

int settings_check_naming(const struct vm_settings *s, unsigned given, unsigned named[2], char *err,
                          size_t errlen)
{
        named[0] = named[1] = 0;
        if (check_block(s, named, err, errlen) < 0)
                return -EINVAL;
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                if (d->type == SETTING_SIZE && d->bit != SETTINGS_BLOCK &&
                    check_size(s, d, given, named, err, errlen) < 0)
                        return -EINVAL;
        }
        if (check_order(s, given, named, err, errlen) < 0)
                return -EINVAL;
        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                if (d->type == SETTING_NUMBER && check_number(s, d, named, err, errlen) < 0)
                        return -EINVAL;
        }
        return 0;
}

int settings_check_given(const struct vm_settings *s, unsigned given, char *err, size_t errlen)
{
        unsigned named[2];

        return settings_check_naming(s, given, named, err, errlen);
}

int settings_check(const struct vm_settings *s, char *err, size_t errlen)
{
        return settings_check_given(s, SETTINGS_ALL, err, errlen);
}

/* Whether a running VM may take `now` for the setting it holds as `was`; if not, why. */
static int check_running_change(const struct setting_desc *d, uint64_t was, uint64_t now, char *err,
                                size_t errlen)
{
        switch (d->change) {
        case SETTING_ANY_TIME:
                return 0;
        case SETTING_WHILE_OFF:
                if (now == was)
                        return 0;
                snprintf(err, errlen, "cannot change %s while the VM is running", d->label);
                return -EPERM;
        case SETTING_ONLY_LOWER:
                if (now <= was)
                        return 0;
                snprintf(err, errlen, "%s can only be lowered while the VM is running", d->label);
                return -EPERM;
        case SETTING_ONLY_RAISE:
                if (now >= was)
                        return 0;
                snprintf(err, errlen, "%s can only be raised while the VM is running", d->label);
                return -EPERM;
        }
        return -EPERM;
}

/* The first setting (its bit) a running VM cannot take from old to new, with why; or 0. */
static unsigned first_refused(const struct vm_settings *old, const struct vm_settings *new,
                              char *err, size_t errlen)
{
        unsigned refused = settings_running_refused(old, new);

        if (refused)
                settings_running_why(old, new, refused & -refused, err, errlen);
        return refused & -refused;
}

unsigned settings_running_refused(const struct vm_settings *old, const struct vm_settings *new)
{
        unsigned refused = 0;
        char err[128];

        for (size_t i = 0; i < SETTINGS_N; i++) {
                const struct setting_desc *d = &settings_table[i];
                if (check_running_change(d, settings_get(old, d), settings_get(new, d), err,
                                         sizeof(err)) < 0)
                        refused |= d->bit;
        }
        return refused;
}

int settings_running_why(const struct vm_settings *old, const struct vm_settings *new, unsigned bit,
                         char *err, size_t errlen)
{
        const struct setting_desc *d = &settings_table[__builtin_ctz(bit)];

        return check_running_change(d, settings_get(old, d), settings_get(new, d), err, errlen);
}

int settings_check_change(const struct vm_settings *old, const struct vm_settings *new,
                          bool running, char *err, size_t errlen)
{
        if (settings_check(new, err, errlen) < 0)
                return -EINVAL;
        return running && first_refused(old, new, err, errlen) ? -EPERM : 0;
}
