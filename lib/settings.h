/*
 * settings: the per-VM Dynamic Memory settings, described once.
 *
 * A VM's settings are the numbers an operator sets: dynamic, startup,
 * minimum, maximum, buffer, weight, block and lend. settings_table[] has one row
 * per setting, and every place that reads or writes a setting works from
 * that row instead of a copy of its own: the INI reader (lib/config), the
 * JSON of the control protocol, the state file and the HTTP API
 * (lib/control), the options of `dynmem set` and `dynmem create`
 * (cli/main) and the daemon's comparison of old and new settings
 * (daemon/apply). A row says:
 *
 *   bit     its enum settings_field bit; row i describes bit 1u << i, so the
 *           bits of a "given" mask index the table
 *   name    the INI key in [vm "NAME"] and the CLI option (--NAME)
 *   json    the member in JSON objects ("startup_bytes")
 *   label   the words in messages ("startup", "block size")
 *   type    a switch (bool), a size (bytes, uint64_t) or a whole number
 *           (uint32_t): how it is read from text and from JSON
 *   offset  where it lives in struct vm_settings
 *   min,max the setting's own range; unit "bytes", "%" or "" for messages
 *   change  what may change while the VM runs (Hyper-V's rules)
 *
 * Reading a value (settings_parse_text, or JSON in lib/control) checks only
 * that it fits its type. The ranges and the rules between settings (minimum
 * <= startup <= maximum, every size a multiple of the block) are
 * settings_check()'s, so every entry point reports them alike; the INI
 * reader also checks a whole number's range on its own line. autostart is
 * not a setting: it belongs to a VM's definition (the file, `create`) and
 * `dynmem set` does not change it. No I/O.
 */
#ifndef DYNMEM_SETTINGS_H
#define DYNMEM_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "units.h"

#define SETTINGS_MINIMUM_FLOOR   (32 * MIB) /* no VM may be set below this */
#define SETTINGS_BUFFER_MIN      5u         /* percent */
#define SETTINGS_BUFFER_MAX      2000u      /* percent */
#define SETTINGS_BUFFER_DEFAULT  20u        /* percent */
#define SETTINGS_WEIGHT_MAX      10000u
#define SETTINGS_WEIGHT_DEFAULT  5000u
#define SETTINGS_BLOCK_MIN       (4 * KIB)
#define SETTINGS_BLOCK_MAX       GIB
#define SETTINGS_BLOCK_DEFAULT   (2 * MIB) /* virtio-mem device block on x86 */
#define SETTINGS_STARTUP_DEFAULT (1 * GIB)
#define SETTINGS_SIZE_MAX        (16 * TIB) /* sanity bound on any one VM */
#define SETTINGS_GUEST_MEMORY_BLOCK                                                                \
        (128 * MIB) /* Linux adds hot-plugged memory in these (x86-64) */

/* The sizes first, the flags last: 48 bytes, without holes (it sits in every VM's record). */
struct vm_settings {
        uint64_t startup_bytes;  /* what the guest boots with */
        uint64_t minimum_bytes;  /* floor of the balancer */
        uint64_t maximum_bytes;  /* ceiling of the balancer */
        uint64_t block_bytes;    /* resize granularity (power of two) */
        uint32_t buffer_percent; /* memory kept above demand, % of demand */
        uint32_t weight;         /* 0..10000: who keeps memory under scarcity */
        bool dynamic;            /* Dynamic Memory on; off = fixed at startup */
        bool lend;               /* may be lent idle memory as page cache (policy_lend) */
};

/* Which settings were given explicitly (the others take defaults). */
enum settings_field {
        SETTINGS_DYNAMIC = 1u << 0,
        SETTINGS_STARTUP = 1u << 1,
        SETTINGS_MINIMUM = 1u << 2,
        SETTINGS_MAXIMUM = 1u << 3,
        SETTINGS_BUFFER = 1u << 4,
        SETTINGS_WEIGHT = 1u << 5,
        SETTINGS_BLOCK = 1u << 6,
        SETTINGS_LEND = 1u << 7,
};
#define SETTINGS_N   8                         /* rows of settings_table */
#define SETTINGS_ALL ((1u << SETTINGS_N) - 1u) /* every settings_field bit */

enum setting_type {
        SETTING_SWITCH, /* bool: yes/no, on/off, true/false, 1/0 */
        SETTING_SIZE,   /* uint64_t bytes: 512M, 2G, 1.5G */
        SETTING_NUMBER, /* uint32_t: a whole number (a trailing % for percentages) */
};

enum setting_change {
        SETTING_ANY_TIME,   /* buffer, weight, lend */
        SETTING_WHILE_OFF,  /* dynamic, startup, block */
        SETTING_ONLY_LOWER, /* minimum, while running */
        SETTING_ONLY_RAISE, /* maximum, while running */
};

struct setting_desc {
        unsigned bit;
        const char *name;
        const char *json;
        const char *label;
        enum setting_type type;
        size_t offset;
        uint64_t min, max;
        const char *unit;
        enum setting_change change;
};

extern const struct setting_desc settings_table[SETTINGS_N];

/* The row for an INI key / CLI option name, or for a JSON member; NULL if none. */
const struct setting_desc *settings_find(const char *name);
const struct setting_desc *settings_find_json(const char *json);

/* A setting's value, widened to uint64_t (a switch is 0 or 1). */
uint64_t settings_get(const struct vm_settings *s, const struct setting_desc *d);

/* Store a value that fits the type (settings_type_max). */
void settings_set(struct vm_settings *s, const struct setting_desc *d, uint64_t v);

/* The largest value the type can carry in text and JSON (sizes: 2^63 - 1). */
uint64_t settings_type_max(const struct setting_desc *d);

/*
 * Read a value from text (the config file, the command line) by its type.
 * Checks only that it fits the type. Returns 0, or -EINVAL (not of the
 * type) or -ERANGE (a number too large for it), and leaves *ret alone.
 */
int settings_parse_text(const struct setting_desc *d, const char *text, uint64_t *ret);

/* What settings_parse_text() wants, for messages: "a size (bytes, or ...)". */
const char *settings_expected(const struct setting_desc *d);

/* The bits of the settings that differ between a and b (0: equal). */
unsigned settings_diff(const struct vm_settings *a, const struct vm_settings *b);

/* Copy the settings marked in mask from src to dst. */
void settings_merge(struct vm_settings *dst, const struct vm_settings *src, unsigned mask);

/*
 * A static VM's minimum and maximum do nothing while it stays static; when a
 * change (`given`) sets its startup but neither of them, they follow the new
 * startup as far as minimum <= startup <= maximum needs, so that
 * `dynmem set NAME --startup 2G` of a static VM is not refused for a maximum
 * its operator never set. Returns the bits of the fields moved (to be kept as
 * given), 0 for a dynamic VM.
 */
unsigned settings_follow_startup(struct vm_settings *s, unsigned given);

/*
 * Fill the fields not marked in given_mask with defaults derived from the
 * given ones: startup 1 GiB, minimum = min(512 MiB, startup), maximum =
 * max(startup, 4 x startup) for dynamic VMs and startup for static ones,
 * buffer 20 %, weight 5000, block 2 MiB, dynamic off, lend on.
 */
void settings_complete(struct vm_settings *s, unsigned given_mask);

/*
 * The virtio-mem block a dynamic VM boots with plugged instead of boot RAM, 0
 * for none: one device block when there is a device and startup holds two
 * blocks or more. The guest then adds the memory block it lies in (and
 * allocates that block's memory map) while it boots with room to spare, not
 * at the first grow, when it may be full. Both backends lay VMs out by it and
 * make the device as much larger, to a whole SETTINGS_GUEST_MEMORY_BLOCK
 * (docs/qemu-backend.md).
 */
uint64_t settings_first_block(const struct vm_settings *s);

/*
 * Check a complete set of settings on its own: every row's range, the
 * block a power of two, every size a multiple of it, and minimum <= startup
 * <= maximum. Returns 0 or -EINVAL with a sentence (no trailing period) in
 * err.
 */
int settings_check(const struct vm_settings *s, char *err, size_t errlen);

/*
 * settings_check() of settings completed by settings_complete(&s, given):
 * a size out of order is named as the operator wrote it. Of minimum,
 * startup and maximum, the pair out of order with the most sizes given is
 * named, and one not given is said to be a default: "minimum = 2G, maximum
 * = 1G" reads "minimum 2 GiB is above maximum 1 GiB", "minimum = 2G" alone
 * "minimum 2 GiB is above startup 1 GiB (startup is not set and defaults to
 * 1 GiB)". So is a size not given that another rule names ("block = 1G"
 * alone: "minimum 512 MiB is not a multiple of the 1 GiB block size (minimum
 * is not set and defaults to the smaller of 512 MiB and startup)").
 */
int settings_check_given(const struct vm_settings *s, unsigned given, char *err, size_t errlen);

/*
 * settings_check_given(), also saying which settings its message names, as
 * enum settings_field bits in the message's order, 0 where it names fewer:
 * named[0] the setting it is about ("minimum 2 GiB ..."), named[1] the one
 * it holds it against ("... is above maximum 1 GiB", "... is not a multiple
 * of the 2 MiB block size"). A size it names that was not given is said to be
 * a default. For a reader that knows where each setting came from: the
 * configuration file names the line of the key (lib/config).
 */
int settings_check_naming(const struct vm_settings *s, unsigned given, unsigned named[2], char *err,
                          size_t errlen);

/*
 * Check a change to a VM's settings against Hyper-V's rules for what may
 * change while it runs (each row's `change`): dynamic, startup and block
 * only while off, minimum may only be lowered and maximum only be raised
 * while running, buffer, weight and lend at any time. `running` is true for any
 * state other than off/crashed. Returns 0 or -EPERM / -EINVAL with a reason
 * in err ("cannot change startup while the VM is running").
 */
int settings_check_change(const struct vm_settings *old, const struct vm_settings *new,
                          bool running, char *err, size_t errlen);

/*
 * Every setting (enum settings_field bits) a running VM cannot take from old
 * to new, each by its own row's rule, whatever the others do: a reload
 * applies the rest (daemon/apply). 0 when a running VM can take every
 * change; the lowest bit is the setting settings_check_change() names.
 */
unsigned settings_running_refused(const struct vm_settings *old, const struct vm_settings *new);

/*
 * Why a running VM cannot take the one setting `bit` from old to new, in
 * settings_check_change()'s words ("maximum can only be raised while the VM
 * is running"). Returns -EPERM with the reason in err, or 0 when it can.
 */
int settings_running_why(const struct vm_settings *old, const struct vm_settings *new, unsigned bit,
                         char *err, size_t errlen);

#endif
