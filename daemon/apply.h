/*
 * apply: changes to dynmemd's VMs, wherever they come from (the
 * configuration file at start and on reload, the state file at start, the
 * control socket): the settings rules, handing backend keys to the backend,
 * and defining and dropping VMs. Messages name the VM; callers log or reply.
 */
#ifndef DYNMEM_APPLY_H
#define DYNMEM_APPLY_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "daemon.h"
#include "registry.h"
#include "settings.h"
#include "state.h"

/*
 * Check a change of settings against Hyper-V's rules for the VM's state
 * (settings_check_change), and, while it runs, a raised maximum against
 * `honourable`, the largest the running VM can reach. Returns 0 or -EPERM /
 * -EINVAL with a reason in err.
 */
int apply_check_change(const struct vm *vm, const struct vm_settings *new, uint64_t honourable,
                       char *err, size_t errlen);

/* Check and make a change of settings. Returns 0 or a negative errno with a reason in err. */
int apply_settings(struct daemon *d, struct registry_entry *e, const struct vm_settings *new,
                   char *err, size_t errlen);

/*
 * Hand the entry's backend keys to the backend. Returns 0 or a negative errno
 * with a reason in err (the backend's, or the errno's when it gave none).
 */
int apply_configure(struct daemon *d, struct registry_entry *e, char *err, size_t errlen);

/* Take these backend keys for the entry (copied), then apply_configure(). */
int apply_keys(struct daemon *d, struct registry_entry *e, const struct config_kv *keys, size_t n,
               char *err, size_t errlen);

/*
 * Bring the registry in line with a configuration: define new VMs, update
 * changed ones, drop VMs gone from the file (once they are off). `initial` is
 * true at start. Logs what it does. A running VM takes each changed setting
 * its state allows and keeps the current value of each it refuses (Hyper-V's
 * rules, and a maximum beyond what it can reach); the file's value of those
 * waits for the VM to be off (reset_pending, taken by apply_reset_pending()),
 * each with a warning logged and added to cfg's warnings at the line of its
 * key. When the changes it can take do not fit on their own
 * (settings_check()), it keeps every setting, all waiting, with one warning.
 * The settings `dynmem set` overrode stay unless the file's new values no
 * longer fit them.
 */
void apply_config(struct daemon *d, struct config *cfg, bool initial);

/*
 * The settings of a VM of the file whose file values wait for it to be off
 * become `pending`. The warnings of the configuration in force about those
 * that no longer wait (taken, or set anew with dynmem set) go from
 * d->cfg.warnings, so that dynmem status shows only what still waits.
 */
void apply_set_pending(struct daemon *d, struct registry_entry *e, unsigned pending);

/*
 * `dynmem set --reset`: hand the settings in `reset` (and autostart) of a VM
 * of the configuration file back to the configuration in force, dropping
 * their overrides. Values a running VM cannot take now (Hyper-V's rules, as
 * at a reload) stay until it is off, then apply_reset_pending() takes them;
 * `warn` says which. A reset of every setting also drops the settings a
 * newer dynmemd wrote for the VM (carried), at once: this dynmemd never
 * applied them. `note` says what was handed back. Returns 0, or -ENOENT
 * with a reason in note when the configuration no longer defines the VM.
 */
int apply_reset(struct daemon *d, struct registry_entry *e, unsigned reset, bool reset_autostart,
                char *note, size_t notelen, char *warn, size_t warnlen);

/*
 * Take the configuration's values a reset left waiting, for the VMs that are
 * off now. Returns how many VMs no longer wait (the state file is then stale).
 */
size_t apply_reset_pending(struct daemon *d);

/*
 * Take the state file's overrides, the resets that were waiting (kept until the
 * VM is off: it may be reattached running) and created VMs (at start, after
 * apply_config), each with what a newer dynmemd wrote for it (carried). The
 * settings a newer dynmemd wrote go with the overrides when those no longer
 * fit the configuration.
 */
void apply_state(struct daemon *d, const struct state *st);

/* Ask for every VM marked autostart that is off to be started. */
void apply_autostart(struct daemon *d);

/* Drop the VMs gone from the configuration that are off now. Returns how many. */
size_t apply_sweep(struct daemon *d);

#endif
