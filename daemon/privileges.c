/*
 * privileges: the daemon drops every capability once the QEMU launcher
 * exists. See privileges.h and docs/security.md.
 */
#include "privileges.h"

#include <errno.h>
#include <pwd.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "daemon.h"
#include "qemu.h"
#include "qemu_launch.h"

static void say_who_runs_qemu(struct daemon *d)
{
        const struct qemu_identity *id = d->backend && d->backend->ops == &qemu_backend_ops
                                             ? qemu_backend_identity(d->backend)
                                             : NULL;

        unsigned line = config_key_line(&d->cfg, "host", "qemu_user");

        if (!id)
                return;
        /* A user the file names is its problem, at its line; the default's is the host's. */
        if (id->problem[0] && line)
                log_msg(LOG_WARNING, "%s:%u: warning: no VM can start: %s", d->cfg.path, line,
                        id->problem);
        else if (id->problem[0])
                log_msg(LOG_WARNING, "no VM can start: %s", id->problem);
        else if (!id->switched)
                log_msg(LOG_NOTICE,
                        "QEMU runs as dynmemd's own user %s (uid %u): dynmemd can change users "
                        "only as root or with CAP_SETUID and CAP_SETGID",
                        id->name, (unsigned)id->uid);
        else
                log_msg(LOG_INFO, "QEMU runs as user %s (uid %u, gid %u, %zu groups)", id->name,
                        (unsigned)id->uid, (unsigned)id->gid, id->n_groups);
}

static int drop_all(void)
{
        cap_t none = cap_init();
        int r = 0;

        if (!none || cap_set_proc(none) < 0)
                r = -errno;
        cap_free(none);
        if (r == 0 && prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 &&
            errno != EINVAL)
                r = -errno;
        if (r == 0 && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                r = -errno;
        return r;
}

int privileges_drop(struct daemon *d)
{
        struct passwd *pw = getpwuid(geteuid());
        const char *me = pw ? pw->pw_name : "?";
        int r;

        say_who_runs_qemu(d);
        if (geteuid() == 0) {
                if (strcmp(d->cfg.host.backend, "libvirt") == 0)
                        log_msg(
                            LOG_NOTICE,
                            "running as root, which backend libvirt does not need: the shipped "
                            "unit runs dynmemd as user dynmem, given libvirt's socket group and "
                            "its QEMU user's group (the guest agents' sockets) in a drop-in "
                            "(systemctl edit dynmemd: [Service] SupplementaryGroups=kvm libvirt "
                            "libvirt-qemu, on Debian); docs/libvirt.md, Install");
                else
                        log_msg(LOG_NOTICE,
                                "running as root, which dynmemd does not need: the shipped unit "
                                "runs it as user dynmem, with CAP_SETUID and CAP_SETGID for "
                                "starting QEMU only");
                return 0;
        }
        if ((r = drop_all()) < 0) {
                log_msg(LOG_ERR, "cannot drop capabilities: %s", strerror(-r));
                return r;
        }
        log_msg(LOG_INFO, "running as user %s (uid %u) without capabilities", me,
                (unsigned)geteuid());
        return 0;
}
