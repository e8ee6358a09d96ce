/*
 * dconfig: dynmemd's reading of the shared INI configuration (lib/config):
 * what the daemon adds on top of the parser. It fills the [host] defaults
 * (socket, state_dir, memory = MemTotal - reserve, reserve from
 * hostmem_reserve_default()), warns when a given memory and the reserve
 * exceed MemTotal, checks that the backend exists in this build,
 * checks that an exec: policy's program can be run, and has the backend
 * check every VM's backend keys; for `dynmemd -n` also -g's group, the
 * control socket's directory and (a warning) the state directory. Problems go to a
 * config_diag as "FILE:LINE: message" (or "FILE: message").
 */
#ifndef DYNMEM_DCONFIG_H
#define DYNMEM_DCONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend.h"
#include "config.h"

#define DCONFIG_PATH_DEFAULT      "/etc/dynmem/dynmem.conf"
#define DCONFIG_STATE_DIR_DEFAULT "/var/lib/dynmem"

/*
 * Fill memory and reserve that the file left out, given the host's MemTotal
 * (total_r is hostmem_total()'s result). Returns 0 or -EINVAL with a
 * sentence in err.
 */
int dconfig_host_memory(struct config_host *h, int total_r, uint64_t total, char *err,
                        size_t errlen);

/*
 * Whether a given [host] memory plus the reserve (given or computed: the
 * host keeps it outside memory) is more than the host's MemTotal (total_r
 * and total as above; nothing is known when MemTotal cannot be read). A
 * warning, not an error: memory may be added to the host later. Returns
 * true with "warning: ..." (the figures, what to do) in msg.
 */
bool dconfig_host_memory_exceeds(const struct config_host *h, int total_r, uint64_t total,
                                 char *msg, size_t len);

/*
 * Read a daemon configuration: parse, fill [host] defaults, check the
 * backend name and each [peer]'s http. The VMs' backend keys are checked
 * by dconfig_check_vms(). Returns 0 or -EINVAL (problems in diag); on
 * failure *ret is empty.
 */
int dconfig_load(const char *path, struct config *ret, struct config_diag *diag);

/*
 * Whether path is an empty regular file, which a reload refuses and
 * dynmemd -n with it: an editor or a deployment tool caught between
 * truncating the file and writing it would otherwise remove every VM and
 * drop their saved settings. True with the sentence in msg (without the path).
 */
bool dconfig_empty_file(const char *path, char *msg, size_t len);

/*
 * Where a message about [section] key of cfg begins: "FILE:LINE" of the key,
 * or "FILE" when the file leaves it at its default. Returns buf.
 */
const char *dconfig_key_at(const struct config *cfg, const char *section, const char *key,
                           char *buf, size_t len);

/* Whether [host] http asks for a server: set, not empty, not "off". */
bool dconfig_http_wanted(const char *http);

/* Check every VM's backend keys with the backend. Returns 0 or -EINVAL. */
int dconfig_check_vms(struct backend *b, const struct config *cfg, struct config_diag *diag);

/*
 * Whether dynmemd, as the user this runs as, can make its control socket:
 * the path fits a socket address, and its directory exists and may be
 * written, or can be created (the deepest folder of it that exists may be
 * written). Nothing is created. Returns 0 or a negative errno with a
 * sentence in err.
 */
int dconfig_check_socket(const char *socket, char *err, size_t errlen);

/*
 * The group the control socket is given: group, named with -g (named) or the default.
 * Unless dynmemd runs as root it may give its socket only to a group it is in. Returns 1
 * with *gid set; 0 when the socket keeps the group it was made with, so that only root
 * and dynmemd's user may use it (the default group does not exist, or this user is not
 * in it), with why in msg ("no group dynmem"); or, for
 * a group named with -g that does not exist or that this user is not in, -ENOENT or
 * -EPERM with a sentence in msg.
 */
int dconfig_socket_group(const char *group, bool named, gid_t *gid, char *msg, size_t len);

/*
 * For `dynmemd -n`: whether the state directory may not be written, or cannot be
 * created, by the user this runs as. dynmemd runs without it (its state is not saved;
 * with backend qemu, VMs cannot start), so this is a warning: true with "warning: ..."
 * (and what follows, for backend qemu when qemu) in msg.
 */
bool dconfig_state_dir_unusable(const char *state_dir, bool qemu, char *msg, size_t len);

/*
 * -g GROUP given (not NULL) must name a group this user may give the control socket to
 * (dconfig_socket_group()). Returns 0, or -ENOENT or -EPERM with a sentence in err.
 */
int dconfig_check_group(const char *group, char *err, size_t errlen);

/*
 * Everything `dynmemd -n` checks: -g's group (NULL: not given), load, the
 * control socket's directory, the state directory (a warning), create the backend,
 * check the VMs. On
 * success writes one line describing the config into summary. The file's
 * warnings (struct config's) are handed to warnings (empty when the file
 * could not be read).
 */
int dconfig_check_file(const char *path, const char *group, struct config_diag *diag,
                       struct config_diag *warnings, char *summary, size_t len);

#endif
