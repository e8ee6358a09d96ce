/*
 * dconfig: the daemon's checks and defaults on top of lib/config. See
 * dconfig.h.
 */
#include "dconfig.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "address.h"
#include "backends.h"
#include "control.h"
#include "hostmem.h"
#include "peers.h"
#include "policy_exec.h"
#include "qemu_launch.h"
#include "units.h"

int dconfig_host_memory(struct config_host *h, int total_r, uint64_t total, char *err,
                        size_t errlen)
{
        char a[32], b[32];

        if (!h->reserve_given)
                h->reserve_bytes = total_r == 0 ? hostmem_reserve_default(total) : 0;
        if (h->memory_given)
                return 0;
        if (total_r < 0) {
                snprintf(err, errlen,
                         "[host] memory not given and MemTotal cannot be read from "
                         "%s (%s)",
                         HOSTMEM_MEMINFO, strerror(-total_r));
                return -EINVAL;
        }
        if (total <= h->reserve_bytes + SETTINGS_MINIMUM_FLOOR) {
                snprintf(err, errlen, "[host] reserve %s leaves nothing of the host's %s for VMs",
                         size_format(h->reserve_bytes, a, sizeof(a)),
                         size_format(total, b, sizeof(b)));
                return -EINVAL;
        }
        h->memory_bytes = size_round_down(total - h->reserve_bytes, 2 * MIB);
        return 0;
}

bool dconfig_host_memory_exceeds(const struct config_host *h, int total_r, uint64_t total,
                                 char *msg, size_t len)
{
        char mem[32], res[32], sum[32], tot[32], fit[32], what[128];
        uint64_t need = h->memory_bytes + h->reserve_bytes;

        if (!h->memory_given || total_r < 0 || (need >= h->memory_bytes && need <= total))
                return false;
        if (need < h->memory_bytes)
                need = UINT64_MAX;
        if (total > h->reserve_bytes + SETTINGS_MINIMUM_FLOOR)
                snprintf(what, sizeof(what),
                         "lower memory to %s or less, or leave it out (MemTotal less the reserve)",
                         size_format(size_round_down(total - h->reserve_bytes, 2 * MIB), fit,
                                     sizeof(fit)));
        else
                snprintf(what, sizeof(what), "lower the reserve and memory");
        snprintf(msg, len,
                 "warning: [host] memory %s and reserve %s (kept for the host outside memory) "
                 "make %s, more than the host's %s (MemTotal, %s): VMs may be given memory the "
                 "host does not have; %s, unless that memory is about to be added",
                 size_format(h->memory_bytes, mem, sizeof(mem)),
                 size_format(h->reserve_bytes, res, sizeof(res)),
                 size_format(need, sum, sizeof(sum)), size_format(total, tot, sizeof(tot)),
                 HOSTMEM_MEMINFO, what);
        return true;
}

bool dconfig_http_wanted(const char *http)
{
        return http && http[0] && strcmp(http, "off") != 0;
}

const char *dconfig_key_at(const struct config *cfg, const char *section, const char *key,
                           char *buf, size_t len)
{
        unsigned line = config_key_line(cfg, section, key);

        if (line)
                snprintf(buf, len, "%s:%u", cfg->path, line);
        else
                snprintf(buf, len, "%s", cfg->path);
        return buf;
}

/* The line of [host] key, or 0 when the file leaves it at its default. */
static unsigned host_line(const struct config *cfg, const char *key)
{
        return config_key_line(cfg, "host", key);
}

/* [host] http's address (loopback unless http_allow_remote) and web_dir. */
static int dconfig_check_http(const struct config *cfg, const char *path, struct config_diag *diag)
{
        const struct config_host *h = &cfg->host;
        struct sockaddr_storage ss;
        socklen_t len;
        char err[256] = "";
        int r = 0;

        if (dconfig_http_wanted(h->http) &&
            address_parse(h->http, h->http_allow_remote, &ss, &len, err, sizeof(err)) < 0) {
                config_diag_add(diag, path, host_line(cfg, "http"), "[host] http: %s", err);
                r = -EINVAL;
        }
        if (h->web_dir && h->web_dir[0] != '/') {
                config_diag_add(diag, path, host_line(cfg, "web_dir"),
                                "[host] web_dir \"%s\" must be an absolute path", h->web_dir);
                r = -EINVAL;
        }
        return r;
}

/* An exec: policy's program must exist and be executable (for this user). */
static int dconfig_check_policy(const struct config_host *h, char *err, size_t errlen)
{
        enum policy_kind kind;
        const char *command = NULL;

        if (policy_kind_parse(h->policy, &kind, &command) < 0 || kind != POLICY_EXTERNAL)
                return 0;
        return policy_exec_check_program(command, err, errlen);
}

static int fill_string(char **field, const char *value)
{
        if (*field)
                return 0;
        *field = strdup(value);
        return *field ? 0 : -ENOMEM;
}

int dconfig_load(const char *path, struct config *ret, struct config_diag *diag)
{
        struct config cfg;
        uint64_t total = 0;
        char err[256] = "", warn[448];
        int r, errors = 0;

        r = config_load(path, &cfg, diag);
        if (r < 0)
                return -EINVAL;
        config_warn_seed(&cfg, "dynmemd"); /* the simulated backend is not random either */
        if (fill_string(&cfg.host.socket, CONTROL_SOCKET_DEFAULT) < 0 ||
            fill_string(&cfg.host.state_dir, DCONFIG_STATE_DIR_DEFAULT) < 0) {
                config_diag_add(diag, path, 0, "out of memory");
                errors++;
        }
        if (cfg.host.socket && cfg.host.socket[0] != '/') {
                config_diag_add(diag, path, host_line(&cfg, "socket"),
                                "[host] socket \"%s\" must be an absolute path", cfg.host.socket);
                errors++;
        }
        if (cfg.host.state_dir && cfg.host.state_dir[0] != '/') {
                config_diag_add(diag, path, host_line(&cfg, "state_dir"),
                                "[host] state_dir \"%s\" must be an absolute path",
                                cfg.host.state_dir);
                errors++;
        }
        if (dconfig_check_http(&cfg, path, diag) < 0)
                errors++;
        if (cfg.host.admin_group && !getgrnam(cfg.host.admin_group)) {
                config_diag_add(diag, path, host_line(&cfg, "admin_group"),
                                "[host] admin_group: there is no group %s", cfg.host.admin_group);
                errors++;
        }
        if (dconfig_check_policy(&cfg.host, err, sizeof(err)) < 0) {
                config_diag_add(diag, path, host_line(&cfg, "policy"), "policy: %s", err);
                errors++;
        }
        if (backends_check(cfg.host.backend, err, sizeof(err)) < 0) {
                config_diag_add(diag, path, host_line(&cfg, "backend"), "[host] backend: %s", err);
                errors++;
        }
        /* Each peer's http as peers_new() will take it, so that a reload cannot lose them. */
        for (size_t i = 0; i < cfg.cluster.n_peers; i++) {
                if (peers_check_http(&cfg.cluster.peers[i], err, sizeof(err)) < 0) {
                        config_diag_add(diag, path, cfg.cluster.peers[i].line, "%s", err);
                        errors++;
                }
        }
        if (cfg.cluster.relief && strcmp(cfg.host.backend, "libvirt") != 0) {
                config_diag_add(diag, path, cfg.cluster.relief_line,
                                "[cluster] relief: VMs move through libvirt; it needs [host] "
                                "backend = libvirt");
                errors++;
        }
        r = hostmem_total(&total);
        if (dconfig_host_memory(&cfg.host, r, total, err, sizeof(err)) < 0) {
                /*
                 * MemTotal read: the reserve (given, or the default) leaves nothing;
                 * unread: memory, which the file does not give, cannot be filled.
                 */
                config_diag_add(diag, path, r == 0 ? host_line(&cfg, "reserve") : 0, "%s", err);
                errors++;
        } else {
                if (dconfig_host_memory_exceeds(&cfg.host, r, total, warn, sizeof(warn)))
                        config_diag_add(&cfg.warnings, path, host_line(&cfg, "memory"), "%s", warn);
                /* Each start of such a VM is refused: even with every other at its minimum. */
                char b[32], limit[64];
                snprintf(limit, sizeof(limit), "[host] memory %s",
                         size_format_exact(cfg.host.memory_bytes, b, sizeof(b)));
                config_warn_startup_beyond(&cfg, cfg.host.memory_bytes, limit,
                                           "it can never start (each start is refused)",
                                           "raise [host] memory to");
        }
        if (errors) {
                config_free(&cfg);
                return -EINVAL;
        }
        *ret = cfg;
        return 0;
}

int dconfig_check_vms(struct backend *b, const struct config *cfg, struct config_diag *diag)
{
        int r = config_check_backend_keys(cfg, b->ops->name, b->ops->vm_keys, diag);

        for (size_t i = 0; r == 0 && i < cfg->n_vms; i++)
                if (b->ops->check_vm(b, cfg, &cfg->vms[i], diag) < 0)
                        r = -EINVAL;
        return r;
}

/* What stops a directory from being used or made (dir_usable()). */
enum dir_problem {
        DIR_USABLE,
        DIR_STAT_FAILED, /* a folder on the way cannot be looked at */
        DIR_NOT_A_DIR,   /* the deepest that exists is not a directory */
        DIR_READ_ONLY,   /* the deepest that exists may not be written (by this user) */
};

/*
 * Whether directory dir exists and may be written, or can be created: the deepest
 * folder of it that exists is a directory this user may write. Nothing is created.
 * Returns DIR_USABLE, or the problem with the folder in question in at and the errno in
 * *err; *missing: whether dir itself is still to be created.
 */
static enum dir_problem dir_usable(const char *dir, char *at, size_t len, bool *missing, int *err)
{
        char walk[PATH_MAX];
        struct stat st;

        snprintf(at, len, "%s", dir);
        while (stat(at, &st) < 0) {
                *err = errno;
                if ((*err != ENOENT && *err != ENOTDIR) || strcmp(at, "/") == 0)
                        return DIR_STAT_FAILED;
                snprintf(walk, sizeof(walk), "%s", at);
                snprintf(at, len, "%s", dirname(walk));
        }
        *missing = strcmp(at, dir) != 0;
        *err = ENOTDIR;
        if (!S_ISDIR(st.st_mode))
                return DIR_NOT_A_DIR;
        *err = faccessat(AT_FDCWD, at, W_OK | X_OK, AT_EACCESS) < 0 ? errno : 0;
        return *err ? DIR_READ_ONLY : DIR_USABLE;
}

int dconfig_check_socket(const char *socket, char *err, size_t errlen)
{
        struct sockaddr_un sa;
        char dir[PATH_MAX], at[PATH_MAX];
        bool missing = false;
        int e = 0;

        if (strlen(socket) >= sizeof(sa.sun_path) || strlen(socket) >= sizeof(dir)) {
                snprintf(err, errlen, "control socket path %s is longer than %zu bytes", socket,
                         sizeof(sa.sun_path) - 1);
                return -ENAMETOOLONG;
        }
        memcpy(dir, socket, strlen(socket) + 1);
        switch (dir_usable(dirname(dir), at, sizeof(at), &missing, &e)) {
        case DIR_USABLE:
                return 0;
        case DIR_STAT_FAILED:
                snprintf(err, errlen, "the directory of %s: %s: %s", socket, at, strerror(e));
                break;
        case DIR_NOT_A_DIR:
                snprintf(err, errlen,
                         "the directory of %s cannot be created: %s is not a directory", socket,
                         at);
                break;
        case DIR_READ_ONLY:
                snprintf(err, errlen, "%s%s cannot be created in %s (by this user): %s",
                         missing ? "the directory of " : "", socket, at, strerror(e));
                break;
        }
        return -e;
}

bool dconfig_state_dir_unusable(const char *state_dir, bool qemu, char *msg, size_t len)
{
        const char *then = qemu ? "dynmemd would run, but keep nothing there (what dynmem set "
                                  "and create change would not survive a restart) and start no "
                                  "VM (a VM's console log goes there)"
                                : "dynmemd would run, but keep nothing there (what dynmem set "
                                  "and create change would not survive a restart)";
        char at[PATH_MAX];
        bool missing = false;
        int e = 0;

        switch (dir_usable(state_dir, at, sizeof(at), &missing, &e)) {
        case DIR_USABLE:
                return false;
        case DIR_STAT_FAILED:
                snprintf(msg, len, "warning: [host] state_dir %s: %s: %s; %s", state_dir, at,
                         strerror(e), then);
                break;
        case DIR_NOT_A_DIR:
                snprintf(msg, len,
                         "warning: [host] state_dir %s cannot be created: %s is not a "
                         "directory; %s",
                         state_dir, at, then);
                break;
        case DIR_READ_ONLY:
                if (missing)
                        snprintf(msg, len,
                                 "warning: [host] state_dir %s cannot be created in %s (by this "
                                 "user): %s; %s",
                                 state_dir, at, strerror(e), then);
                else
                        snprintf(msg, len,
                                 "warning: [host] state_dir %s may not be written (by this "
                                 "user): %s; %s",
                                 state_dir, strerror(e), then);
                break;
        }
        return true;
}

/* Whether this process may give a file it owns to group gid (chown(2)): as root, or
 * when gid is one of its groups. */
static bool group_is_own(gid_t gid)
{
        bool own = geteuid() == 0 || getegid() == gid;
        int n = own ? 0 : getgroups(0, NULL);
        gid_t *groups = n > 0 ? calloc((size_t)n, sizeof(*groups)) : NULL;

        if (groups)
                n = getgroups(n, groups);
        for (int i = 0; groups && i < n && !own; i++)
                own = groups[i] == gid;
        free(groups);
        return own;
}

int dconfig_socket_group(const char *group, bool named, gid_t *gid, char *msg, size_t len)
{
        struct group *gr = getgrnam(group);
        struct passwd *pw = getpwuid(geteuid());
        const char *me = pw ? pw->pw_name : "?";

        if (gr && group_is_own(gr->gr_gid)) {
                *gid = gr->gr_gid;
                return 1;
        }
        if (named && !gr) {
                snprintf(msg, len, "-g: there is no group %s", group);
                return -ENOENT;
        }
        if (named) {
                snprintf(msg, len,
                         "-g: user %s is not in group %s, so it cannot give the control socket to "
                         "that group (only root can); run dynmemd as a member of %s, or name one "
                         "of user %s's groups",
                         me, group, group, me);
                return -EPERM;
        }
        if (!gr)
                snprintf(msg, len, "no group %s", group);
        else
                snprintf(msg, len, "user %s is not in group %s", me, group);
        return 0;
}

int dconfig_check_group(const char *group, char *err, size_t errlen)
{
        gid_t gid;
        int r = group ? dconfig_socket_group(group, true, &gid, err, errlen) : 0;

        return r < 0 ? r : 0;
}

bool dconfig_empty_file(const char *path, char *msg, size_t len)
{
        struct stat st;

        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size != 0)
                return false;
        snprintf(msg, len,
                 "empty (being written?); a reload refuses it, as one caught between "
                 "truncating and writing; to run without VMs, leave the host's keys or a "
                 "comment in it");
        return true;
}

int dconfig_check_file(const char *path, const char *group, struct config_diag *diag,
                       struct config_diag *warnings, char *summary, size_t len)
{
        const struct backends_entry *be;
        struct backend_env env = {0};
        struct backend *b = NULL;
        struct config cfg;
        char err[256] = "", mem[32], res[32];
        int r, bad = 0;

        if (dconfig_check_group(group, err, sizeof(err)) < 0) {
                config_diag_add(diag, "dynmemd", 0, "%s", err);
                bad = -EINVAL;
        }
        if (dconfig_empty_file(path, err, sizeof(err))) {
                config_diag_add(diag, path, 0, "%s", err);
                return -EINVAL;
        }
        if (dconfig_load(path, &cfg, diag) < 0)
                return -EINVAL;
        if (dconfig_check_socket(cfg.host.socket, err, sizeof(err)) < 0) {
                config_diag_add(diag, path, host_line(&cfg, "socket"), "[host] socket: %s", err);
                bad = -EINVAL;
        }
        char warn[PATH_MAX * 2 + 256];
        if (dconfig_state_dir_unusable(cfg.host.state_dir, strcmp(cfg.host.backend, "qemu") == 0,
                                       warn, sizeof(warn)))
                config_diag_add(&cfg.warnings, path, host_line(&cfg, "state_dir"), "%s", warn);
        be = backends_find(cfg.host.backend);
        if (strcmp(be->name, "qemu") == 0) {
                /* What a start would warn of, and then refuse at every VM's start. */
                char problem[256];

                qemu_launch_user_problem(cfg.host.qemu_user, problem, sizeof(problem));
                if (problem[0]) {
                        config_diag_add(diag, path, host_line(&cfg, "qemu_user"),
                                        "no VM can start: %s", problem);
                        bad = -EINVAL;
                }
        }
        env.state_dir = cfg.host.state_dir;
        r = be->create(&cfg, &env, &b, err, sizeof(err));
        if (r < 0)
                config_diag_add(diag, path, 0, "backend %s: %s", be->name, err);
        else
                r = dconfig_check_vms(b, &cfg, diag);
        if (r == 0)
                r = bad;
        if (r == 0)
                snprintf(summary, len,
                         "%s: configuration OK: backend %s, policy %s, memory %s, "
                         "reserve %s, %zu VM%s",
                         path, be->name, cfg.host.policy,
                         size_format(cfg.host.memory_bytes, mem, sizeof(mem)),
                         size_format(cfg.host.reserve_bytes, res, sizeof(res)), cfg.n_vms,
                         cfg.n_vms == 1 ? "" : "s");
        if (b)
                b->ops->destroy(b);
        *warnings = cfg.warnings;
        cfg.warnings = (struct config_diag){0};
        config_free(&cfg);
        return r < 0 ? -EINVAL : 0;
}
