/*
 * state: dynmemd's state file, STATE_DIR/state.json. It keeps what the
 * control socket changed so that it survives a restart: the settings
 * `dynmem set` overrode on VMs of the configuration file (only those
 * fields), and the VMs made with `dynmem create` (everything about them).
 * The file is replaced atomically on every change. docs/daemon.md
 * describes how it combines with the configuration file.
 *
 * `dynmem set` also overrides a configuration VM's autostart ("autostart" kept with it).
 * `dynmem set --reset` drops overrides: the entry loses those fields, or goes.
 * A value a running VM cannot take back yet (or a reload's value it refused)
 * stays in "settings" (the value in force) and is named in "reset_pending"
 * (JSON names): the file's value is taken once the VM is off, also after a
 * restart of dynmemd. A name there
 * that is not a setting, or has no value in "settings", is dropped alone
 * (state_vm.note says which); files without the member load as before.
 *
 * What a newer dynmemd added within version 1 and this one does not know (a
 * member of the file, of an entry, or a setting in an entry's "settings")
 * is carried: kept with the entry (registry_entry.carried and
 * .carried_settings) or the daemon, and written back beside what this
 * dynmemd writes, never over a member it knows nor twice. It goes with its
 * VM (removed, a reset of every setting drops the settings). It is never
 * added to: at most what the file held when read (STATE_FILE_MAX).
 *
 *   {"version": 1, "vms": [
 *     {"name": "web1", "origin": "config", "settings": {"buffer_percent": 30}},
 *     {"name": "db1", "origin": "config", "settings": {}, "autostart": true},
 *     {"name": "app1", "origin": "config", "settings": {"minimum_bytes": 268435456},
 *      "reset_pending": ["minimum_bytes"]},
 *     {"name": "web3", "origin": "created", "autostart": false,
 *      "settings": {...every setting...}, "backend": {"trace": "/srv/web3.csv"}}]}
 */
#ifndef DYNMEM_STATE_H
#define DYNMEM_STATE_H

#include <stdbool.h>
#include <stddef.h>

#include "registry.h"
#include "savefile.h"
#include "settings.h"

#define STATE_FILE      "state.json"
#define STATE_LOCK_FILE "dynmemd.lock" /* held by the dynmemd using the directory */
#define STATE_VERSION   1
#define STATE_FILE_MAX  (64u * 1024 * 1024)

struct state_vm {
        char name[VM_NAME_MAX];
        enum registry_origin origin;
        struct vm_settings settings; /* the fields marked in given */
        unsigned given;
        unsigned reset_pending; /* fields of given that wait for the file's value */
        char note[256];         /* "" or what of "reset_pending" was dropped, and why */
        bool autostart;
        bool autostart_given; /* "autostart" was in the entry */
        struct config_kv *keys;
        size_t n_keys;
        json_t *carried;          /* the entry's members this dynmemd does not know, or NULL */
        json_t *carried_settings; /* the same of its "settings", or NULL */
};

struct state {
        struct state_vm *vms;
        size_t n;
        json_t
            *carried; /* the file's members beside "version" and "vms" it does not know, or NULL */
        struct savefile_drops dropped; /* entries left out, each with its reason */
        struct savefile_drops ignored; /* what a newer dynmemd wrote that this one ignores */
};

/*
 * Parse a state file's text. Returns 0 or -EINVAL with a sentence in err
 * naming the problem; nothing is half-taken. An entry that is wrong on its
 * own is left out and named in ret->dropped, and the others are kept: one
 * bad VM does not cost the others their saved settings. Members and
 * settings this dynmemd does not know (a newer one's) are named in
 * ret->ignored and kept aside (ret->carried, each entry's carried and
 * carried_settings) to be written back; their entry is kept with what is
 * known of it. A file of
 * a higher version than STATE_VERSION is -EINVAL, its message saying so.
 */
int state_parse(const char *text, size_t len, struct state *ret, char *err, size_t errlen);

/* Read STATE_DIR/state.json. -ENOENT when there is none; -EINVAL when it is bad (err);
 * entries left out are in ret->dropped, what was ignored in ret->ignored (err then names
 * the file). */
int state_load(const char *dir, struct state *ret, char *err, size_t errlen);

void state_free(struct state *s);

/*
 * The state file's text for a registry (caller frees); NULL on ENOMEM. Each
 * entry's line is cached in the entry until registry_touch(). carried: the
 * file's members a newer dynmemd wrote (struct state's), or NULL.
 */
char *state_format(struct registry *r, const json_t *carried);

/* Write the registry's state to STATE_DIR/state.json atomically. Returns 0 or a negative errno. */
int state_save(const char *dir, struct registry *r, const json_t *carried);

#endif
