/*
 * qemu_launch: QEMU runs as its own unprivileged user, never as root, and
 * dynmemd itself keeps no privilege for it.
 *
 * When the QEMU backend is created, a launcher process is forked from
 * dynmemd. It is the only part of dynmemd that keeps CAP_SETUID and
 * CAP_SETGID (given by the unit, or by running as root); the daemon drops
 * every capability after it exists (daemon/privileges.c). The launcher
 * reads requests from a socketpair and does three things: start a program
 * as the QEMU user (its groups, gid and uid set, every capability dropped,
 * no_new_privs set, without dynmemd's protection from the OOM killer (a
 * negative oom_score_adj raised to 0), in its own session, with the
 * descriptors it was handed at 3, 4, ...: QEMU opens none of dynmemd's
 * files itself), send a signal
 * to such a process, and ask, as the QEMU user, whether it may read or
 * write a path (/dev/kvm) or a file dynmemd opened for it (the kernel, a
 * backing file): its ACLs and security modules count, which dynmemd,
 * without a capability, cannot judge for another user. The programs it
 * starts are children of dynmemd (CLONE_PARENT), which reaps them and reads
 * their exit status. Each reply names its request: one that comes after
 * dynmemd stopped waiting (10 s) is never taken for a later request's, and a
 * QEMU it says was started then is killed.
 *
 * Where dynmemd cannot change users (an ordinary user without those
 * capabilities), QEMU runs as dynmemd's own user; qemu_launch_identity()
 * says so. A user that does not exist, or is root, makes every start fail
 * with the reason.
 */
#ifndef DYNMEM_QEMU_LAUNCH_H
#define DYNMEM_QEMU_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define QEMU_LAUNCH_USER_DEFAULT "dynmem-qemu"
#define QEMU_LAUNCH_FDS_MAX      8  /* descriptors one start may hand over */
#define QEMU_LAUNCH_GROUPS_MAX   64 /* supplementary groups QEMU keeps (kvm, ...) */

struct qemu_launch;

struct qemu_identity {
        bool switched; /* false: QEMU runs as dynmemd's own user */
        uid_t uid;
        gid_t gid;
        gid_t groups[QEMU_LAUNCH_GROUPS_MAX]; /* its supplementary groups */
        size_t n_groups;
        char name[64];
        char problem[200]; /* not empty: no start can succeed, and why */
};

/* Fork the launcher for user (NULL: QEMU_LAUNCH_USER_DEFAULT). 0 or -errno with err. */
int qemu_launch_new(const char *user, struct qemu_launch **ret, char *err, size_t errlen);

/*
 * Why no QEMU could start as user (NULL: QEMU_LAUNCH_USER_DEFAULT), as the
 * launcher qemu_launch_new() makes here would find it, without making one:
 * into problem (empty when it could, or when this process cannot change
 * users and QEMU would run as its own). For dynmemd -n.
 */
void qemu_launch_user_problem(const char *user, char *problem, size_t len);
/* Ends the launcher (running QEMUs are not touched). Accepts NULL. */
void qemu_launch_free(struct qemu_launch *ql);

const struct qemu_identity *qemu_launch_identity(const struct qemu_launch *ql);

/*
 * Start argv[0] (a path) as the QEMU user: stdin /dev/null, stdout and
 * stderr log_fd, fds[i] at descriptor 3 + i, nothing else open, working
 * folder /. Returns once it has called exec (or failed to): 0 with its pid
 * and a pidfd, or -errno with the reason in err.
 */
int qemu_launch_spawn(struct qemu_launch *ql, char *const argv[], int log_fd, const int *fds,
                      size_t n_fds, pid_t *ret_pid, int *ret_pidfd, char *err, size_t errlen);

/*
 * May the QEMU user open path (absolute) with mode (R_OK, W_OK or both)? A
 * child of the launcher becomes that user as for a start and calls
 * faccessat(AT_EACCESS): owner, groups, mode bits, ACLs and security modules
 * are judged by the kernel, and nothing is opened. 0, or -errno with err: on
 * a refusal "PATH: REASON (as user NAME, whom QEMU runs as)", else why it
 * could not be asked (the user's problem, the launcher's failure).
 */
int qemu_launch_access(struct qemu_launch *ql, const char *path, int mode, char *err,
                       size_t errlen);

/*
 * The same for the file open at fd (dynmemd's descriptor, handed to QEMU):
 * the file itself is judged, not the folders on the way to its name, and no
 * rename can swap it for another. name says which file in err ("NAME:
 * REASON (as user NAME, whom QEMU runs as)"). -ENOSYS (with step "access")
 * where the kernel cannot be asked so (before Linux 5.8: no faccessat2).
 */
int qemu_launch_access_fd(struct qemu_launch *ql, int fd, const char *name, int mode, char *err,
                          size_t errlen);

/* Send sig to the process behind pidfd (one started here, or a QEMU found running). */
int qemu_launch_kill(struct qemu_launch *ql, int pidfd, int sig);

#endif
