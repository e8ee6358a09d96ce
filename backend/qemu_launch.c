/*
 * qemu_launch: the launcher process that starts QEMU as its own user and
 * signals it, and dynmemd's side of it. See qemu_launch.h.
 *
 * The protocol is one SOCK_SEQPACKET message each way: a request (start:
 * argv and the descriptors to hand over; kill: a pidfd and a signal; access:
 * an absolute path, or a descriptor, and R_OK/W_OK) and a reply (an errno and
 * the step that failed; on a start, the pid and a pidfd). Each request has a
 * number the reply repeats: a reply that comes after dynmemd stopped waiting
 * for it is told apart from the next request's and set aside (a QEMU it
 * started is killed), never taken for another answer. The launcher trusts
 * nothing in a request it has not checked, and can only ever become the one
 * user it was made for.
 */
#include "qemu_launch.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/close_range.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"

#define REQUEST_MAX (256 * 1024) /* argv of one start, bytes */
#define ARGS_MAX    4096
/* The launcher answers after one clone and exec, or one fork and faccessat. */
#define REPLY_WAIT_MS 10000
/* At the end, how long programs killed after a late reply are waited for in all. */
#define KILLED_WAIT_MS 1000

enum op { OP_SPAWN = 1, OP_KILL = 2, OP_ACCESS = 3, OP_ACCESS_FD = 4 };

struct request {
        uint32_t op;
        int32_t sig;    /* kill */
        uint32_t mode;  /* access: R_OK, W_OK or both */
        uint32_t argc;  /* spawn */
        uint32_t n_fds; /* SCM_RIGHTS: spawn: log fd, then the handed ones; kill: the pidfd;
                           access by descriptor: the file's */
        uint32_t seq;   /* repeated in the reply */
};

struct reply {
        int32_t err; /* 0 or an errno */
        int32_t pid;
        uint32_t seq;  /* the request's */
        char step[48]; /* what failed */
};

/* What the launcher becomes for a start: fixed when it is made. */
struct who {
        bool switched;
        uid_t uid, own_euid;
        gid_t gid;
        gid_t groups[QEMU_LAUNCH_GROUPS_MAX];
        int n_groups;
        cap_t no_caps; /* the empty set, made before any fork */
        char **envp;
};

#define ORPHANS_MAX 8

struct qemu_launch {
        int sock;
        pid_t pid;
        uint32_t seq; /* the last request's number */
        /* Programs started after their start was given up on (a late reply): to kill. */
        int orphans[ORPHANS_MAX];
        size_t n_orphans;
        struct child_strays killed; /* orphans killed and not yet reaped */
        struct qemu_identity id;
};

/* ---- the child that becomes QEMU (async-signal-safe calls only) ---- */

struct failure {
        int err;
        char step[48];
};

static void __attribute__((noreturn)) fail_child(int errfd, const char *step)
{
        struct failure f = {.err = errno};

        strncpy(f.step, step, sizeof(f.step) - 1);
        (void)!write(errfd, &f, sizeof(f));
        _exit(127);
}

/* Descriptors: 0 /dev/null, 1 and 2 the log, fds[i] at 3 + i, nothing else past exec. */
static void place_fds(int errfd, int log_fd, const int *fds, size_t n)
{
        int high = 3 + QEMU_LAUNCH_FDS_MAX + 1, tmp[QEMU_LAUNCH_FDS_MAX], log, null;

        /* First out of the way of the numbers they go to, then into place. */
        if ((log = fcntl(log_fd, F_DUPFD_CLOEXEC, high)) < 0)
                fail_child(errfd, "dup");
        for (size_t i = 0; i < n; i++)
                if ((tmp[i] = fcntl(fds[i], F_DUPFD_CLOEXEC, high)) < 0)
                        fail_child(errfd, "dup");
        if ((null = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0 || dup2(null, 0) < 0 ||
            dup2(log, 1) < 0 || dup2(log, 2) < 0)
                fail_child(errfd, "/dev/null and the console log");
        for (size_t i = 0; i < n; i++)
                if (dup2(tmp[i], 3 + (int)i) < 0)
                        fail_child(errfd, "dup2");
        if (close_range(3 + (unsigned)n, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
                fail_child(errfd, "close_range");
}

static void become(int errfd, const struct who *w)
{
        if (w->switched) {
                if (setgroups((size_t)w->n_groups, w->groups) < 0)
                        fail_child(errfd, "setgroups");
                if (setresgid(w->gid, w->gid, w->gid) < 0)
                        fail_child(errfd, "setresgid");
                if (setresuid(w->uid, w->uid, w->uid) < 0)
                        fail_child(errfd, "setresuid");
        }
        /* From one unprivileged uid to another the kernel keeps capabilities: drop them all. */
        if (cap_set_proc(w->no_caps) < 0)
                fail_child(errfd, "capset");
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
                fail_child(errfd, "clearing ambient capabilities");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                fail_child(errfd, "no_new_privs");
        if (w->switched && (getuid() != w->uid || geteuid() != w->uid || getegid() != w->gid))
                fail_child(errfd, "checking the new identity");
}

/*
 * dynmemd's unit protects it from the OOM killer (OOMScoreAdjust=-900: it is
 * what gives memory back), and a fork inherits that. A QEMU keeps none of it:
 * a value below 0 is raised to 0, the kernel's own rule for every process
 * (raising needs no privilege). A value above 0, set on purpose, is kept.
 * Not fatal: a guest that cannot start over it would be worse.
 */
static void oom_score_adj_unprotected(void)
{
        char buf[16] = "";
        int fd = open("/proc/self/oom_score_adj", O_RDWR | O_CLOEXEC);

        if (fd < 0)
                return;
        ssize_t got = read(fd, buf, sizeof(buf) - 1);
        if (got > 0 && buf[0] == '-' && lseek(fd, 0, SEEK_SET) == 0)
                (void)!write(fd, "0", 1);
        close(fd);
}

static void __attribute__((noreturn))
child(int errfd, const struct who *w, char *const argv[], int log_fd, const int *fds, size_t n)
{
        place_fds(errfd, log_fd, fds, n);
        oom_score_adj_unprotected();
        /* Its own session: a Ctrl-C at dynmemd's terminal does not reach the guests. */
        if (setsid() < 0)
                fail_child(errfd, "setsid");
        child_default_signals();
        if (chdir("/") < 0)
                fail_child(errfd, "chdir /");
        become(errfd, w);
        execve(argv[0], argv, w->envp);
        fail_child(errfd, "exec");
}

/* ---- the launcher ---- */

/* Start argv; the child is dynmemd's (CLONE_PARENT), so dynmemd reaps it. */
static struct reply do_spawn(const struct who *w, char *const argv[], const int *fds, size_t n,
                             int *ret_pidfd)
{
        struct reply rep = {0};
        struct failure f = {0};
        int errpipe[2];

        if (pipe2(errpipe, O_CLOEXEC) < 0)
                return (struct reply){.err = errno, .step = "pipe"};
        pid_t pid = (pid_t)syscall(SYS_clone, CLONE_PARENT | SIGCHLD, NULL, NULL, NULL, NULL);
        if (pid == 0) {
                close(errpipe[0]);
                child(errpipe[1], w, argv, fds[0], fds + 1, n - 1);
        }
        close(errpipe[1]);
        if (pid < 0) {
                close(errpipe[0]);
                return (struct reply){.err = errno, .step = "clone"};
        }
        /* EOF: exec succeeded (the pipe is close-on-exec); a record: what failed. */
        ssize_t got;
        do
                got = read(errpipe[0], &f, sizeof(f));
        while (got < 0 && errno == EINTR);
        close(errpipe[0]);
        rep.pid = pid;
        if (got == (ssize_t)sizeof(f)) {
                rep.err = f.err ? f.err : EIO;
                memcpy(rep.step, f.step, sizeof(rep.step));
                rep.step[sizeof(rep.step) - 1] = '\0';
        }
        if ((*ret_pidfd = pidfd_open(pid, 0)) < 0 && !rep.err) {
                rep.err = errno;
                snprintf(rep.step, sizeof(rep.step), "pidfd_open");
        }
        return rep;
}

/*
 * May the QEMU user open path (or, path NULL, the file open at fd) with mode?
 * A child becomes that user (as for a start) and asks the kernel: faccessat
 * with AT_EACCESS judges its effective ids, groups, ACLs and security modules
 * as an open would, and opens nothing. For a descriptor (faccessat2's
 * AT_EMPTY_PATH, Linux 5.8) the file itself is judged, not the folders on the
 * way to it: QEMU gets dynmemd's descriptor, not the name.
 */
static struct reply do_access(const struct who *w, const char *path, int fd, int mode)
{
        struct failure f = {0};
        int errpipe[2];

        if (pipe2(errpipe, O_CLOEXEC) < 0)
                return (struct reply){.err = errno, .step = "pipe"};
        pid_t pid = fork();
        if (pid == 0) {
                close(errpipe[0]);
                become(errpipe[1], w);
                if (path && faccessat(AT_FDCWD, path, mode, AT_EACCESS) < 0)
                        fail_child(errpipe[1], "access");
                if (!path && syscall(SYS_faccessat2, fd, "", mode, AT_EACCESS | AT_EMPTY_PATH) < 0)
                        fail_child(errpipe[1], "access");
                _exit(0);
        }
        close(errpipe[1]);
        if (pid < 0) {
                close(errpipe[0]);
                return (struct reply){.err = errno, .step = "fork"};
        }
        /* EOF: allowed; a record: refused, or the step of becoming the user that failed. */
        ssize_t got;
        do
                got = read(errpipe[0], &f, sizeof(f));
        while (got < 0 && errno == EINTR);
        close(errpipe[0]);
        int status = 0;
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
                ;
        struct reply rep = {0};
        if (got == (ssize_t)sizeof(f)) {
                rep.err = f.err ? f.err : EIO;
                memcpy(rep.step, f.step, sizeof(rep.step));
                rep.step[sizeof(rep.step) - 1] = '\0';
        } else if (got != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
                rep = (struct reply){.err = EIO, .step = "the asking process"};
        }
        return rep;
}

/* The path of an access request: one NUL-terminated absolute path, nothing after it. */
static const char *unpack_path(const char *p, size_t len)
{
        if (len < 2 || len > PATH_MAX || p[0] != '/' || memchr(p, '\0', len) != p + len - 1)
                return NULL;
        return p;
}

/* As the launcher, and failing that as the QEMU user (whom the launcher may signal then). */
static struct reply do_kill(const struct who *w, int pidfd, int sig)
{
        if (pidfd_send_signal(pidfd, sig, NULL, 0) == 0)
                return (struct reply){0};
        if (errno != EPERM || !w->switched)
                return (struct reply){.err = errno, .step = "kill"};
        if (setresuid((uid_t)-1, w->uid, (uid_t)-1) < 0)
                return (struct reply){.err = errno, .step = "seteuid"};
        int r = pidfd_send_signal(pidfd, sig, NULL, 0) == 0 ? 0 : errno;
        if (setresuid((uid_t)-1, w->own_euid, (uid_t)-1) < 0)
                _exit(1); /* cannot be itself again: better gone */
        return (struct reply){.err = r, .step = "kill"};
}

/* argv from the request's payload: NUL-terminated strings, exactly argc of them. */
static int unpack_argv(char *p, size_t len, uint32_t argc, char **argv)
{
        size_t at = 0;

        if (argc == 0 || argc > ARGS_MAX)
                return -1;
        for (uint32_t i = 0; i < argc; i++) {
                char *end = memchr(p + at, '\0', len - at);
                if (!end)
                        return -1;
                argv[i] = p + at;
                at = (size_t)(end - p) + 1;
        }
        argv[argc] = NULL;
        return at == len && argv[0][0] == '/' ? 0 : -1;
}

static size_t take_fds(struct msghdr *m, int *fds, size_t max)
{
        size_t n = 0;

        for (struct cmsghdr *c = CMSG_FIRSTHDR(m); c; c = CMSG_NXTHDR(m, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                        continue;
                size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
                int *in = (int *)CMSG_DATA(c);
                for (size_t i = 0; i < k; i++) {
                        if (n < max)
                                fds[n++] = in[i];
                        else
                                close(in[i]);
                }
        }
        return n;
}

static void send_reply(int sock, const struct reply *rep, int fd)
{
        union {
                char buf[CMSG_SPACE(sizeof(int))];
                struct cmsghdr align;
        } u = {0};
        struct iovec iov = {.iov_base = (void *)rep, .iov_len = sizeof(*rep)};
        struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};

        if (fd >= 0) {
                m.msg_control = u.buf;
                m.msg_controllen = sizeof(u.buf);
                struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int));
                memcpy(CMSG_DATA(c), &fd, sizeof(int));
        }
        if (sendmsg(sock, &m, MSG_NOSIGNAL) < 0)
                _exit(0); /* dynmemd is gone */
}

static void handle(int sock, const struct who *w, char *buf, size_t len, int *fds, size_t n_fds)
{
        static char *argv[ARGS_MAX + 1];
        struct request req;
        struct reply rep = {.err = EINVAL, .step = "request"};
        const char *path = NULL;
        int pidfd = -1;

        if (len < sizeof(req))
                goto out;
        memcpy(&req, buf, sizeof(req));
        rep.seq = req.seq;
        if (req.n_fds != n_fds)
                goto out;
        if (req.op == OP_SPAWN && n_fds >= 1 &&
            unpack_argv(buf + sizeof(req), len - sizeof(req), req.argc, argv) == 0)
                rep = do_spawn(w, argv, fds, n_fds, &pidfd);
        else if (req.op == OP_KILL && n_fds == 1 && len == sizeof(req) && req.sig > 0 &&
                 req.sig < NSIG)
                rep = do_kill(w, fds[0], req.sig);
        else if (req.op == OP_ACCESS && n_fds == 0 && req.mode != 0 &&
                 (req.mode & ~(uint32_t)(R_OK | W_OK)) == 0 &&
                 (path = unpack_path(buf + sizeof(req), len - sizeof(req))))
                rep = do_access(w, path, -1, (int)req.mode);
        else if (req.op == OP_ACCESS_FD && n_fds == 1 && len == sizeof(req) && req.mode != 0 &&
                 (req.mode & ~(uint32_t)(R_OK | W_OK)) == 0)
                rep = do_access(w, NULL, fds[0], (int)req.mode);
        rep.seq = req.seq;
out:
        for (size_t i = 0; i < n_fds; i++)
                close(fds[i]);
        send_reply(sock, &rep, pidfd);
        if (pidfd >= 0)
                close(pidfd);
}

static void __attribute__((noreturn)) launcher_main(int sock, const struct who *w)
{
        char *buf = malloc(REQUEST_MAX);
        union {
                char buf[CMSG_SPACE(sizeof(int) * (QEMU_LAUNCH_FDS_MAX + 1))];
                struct cmsghdr align;
        } u;

        if (!buf)
                _exit(1);
        for (;;) {
                struct iovec iov = {.iov_base = buf, .iov_len = REQUEST_MAX};
                struct msghdr m = {.msg_iov = &iov,
                                   .msg_iovlen = 1,
                                   .msg_control = u.buf,
                                   .msg_controllen = sizeof(u.buf)};
                int fds[QEMU_LAUNCH_FDS_MAX + 1];
                ssize_t len = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
                if (len < 0 && errno == EINTR)
                        continue;
                if (len <= 0)
                        _exit(0); /* dynmemd closed its end: it stopped */
                size_t n = take_fds(&m, fds, QEMU_LAUNCH_FDS_MAX + 1);
                if (m.msg_flags & (MSG_TRUNC | MSG_CTRUNC))
                        len = 0; /* refused below */
                handle(sock, w, buf, (size_t)len, fds, n);
        }
}

/* QEMU's environment: dynmemd's, without what only concerns dynmemd and systemd. */
static char **qemu_environment(void)
{
        extern char **environ;
        static const char *const drop[] = {"NOTIFY_SOCKET=", "WATCHDOG_", "LISTEN_"};
        size_t n = 0;

        while (environ[n])
                n++;
        char **envp = calloc(n + 1, sizeof(*envp));
        for (size_t i = 0, k = 0; envp && i < n; i++) {
                bool keep = true;
                for (size_t d = 0; d < sizeof(drop) / sizeof(*drop); d++)
                        keep &= strncmp(environ[i], drop[d], strlen(drop[d])) != 0;
                if (keep)
                        envp[k++] = environ[i];
        }
        return envp;
}

static void __attribute__((noreturn)) run_launcher(int sock, struct who *w)
{
        /* Only its socket stays open; a terminal's Ctrl-C or hang-up is dynmemd's to handle. */
        if (dup2(sock, 3) < 0)
                _exit(1);
        close_range(4, ~0U, 0);
        child_default_signals(); /* nothing blocked or ignored that dynmemd's parent chose */
        signal(SIGINT, SIG_IGN);
        signal(SIGHUP, SIG_IGN);
        signal(SIGPIPE, SIG_IGN);
        prctl(PR_SET_NAME, "dynmem-launcher", 0, 0, 0); /* as ps shows it */
        prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
        w->envp = qemu_environment();
        if (!w->envp)
                _exit(1);
        launcher_main(3, w);
}

/* ---- dynmemd's side ---- */

static bool can_change_users(void)
{
        cap_t caps = cap_get_proc();
        cap_flag_value_t uid = CAP_CLEAR, gid = CAP_CLEAR;

        if (caps) {
                cap_get_flag(caps, CAP_SETUID, CAP_PERMITTED, &uid);
                cap_get_flag(caps, CAP_SETGID, CAP_PERMITTED, &gid);
                cap_free(caps);
        }
        return geteuid() == 0 || (uid == CAP_SET && gid == CAP_SET);
}

/* Who QEMU runs as; any problem is left in id->problem for every start to report. */
static void resolve(const char *user, struct qemu_identity *id, struct who *w)
{
        struct passwd *pw;

        w->own_euid = geteuid();
        if (!can_change_users()) {
                pw = getpwuid(geteuid());
                *id = (struct qemu_identity){.switched = false, .uid = geteuid(), .gid = getegid()};
                snprintf(id->name, sizeof(id->name), "%s", pw ? pw->pw_name : "(this user)");
                int n = getgroups(QEMU_LAUNCH_GROUPS_MAX, id->groups);
                id->n_groups = n > 0 ? (size_t)n : 0;
                return;
        }
        *id = (struct qemu_identity){.switched = true};
        snprintf(id->name, sizeof(id->name), "%s", user);
        if (!(pw = getpwnam(user))) {
                snprintf(id->problem, sizeof(id->problem),
                         "there is no user %s for QEMU, which never runs as root (install "
                         "dynmem's sysusers.d file, or set [host] qemu_user)",
                         user);
                return;
        }
        if (pw->pw_uid == 0 || pw->pw_gid == 0) {
                snprintf(id->problem, sizeof(id->problem),
                         "QEMU never runs as root, and user %s is root or in its group", user);
                return;
        }
        id->uid = w->uid = pw->pw_uid;
        id->gid = w->gid = pw->pw_gid;
        w->switched = true;
        w->n_groups = QEMU_LAUNCH_GROUPS_MAX;
        if (getgrouplist(user, pw->pw_gid, w->groups, &w->n_groups) < 0)
                w->n_groups = 0; /* too many: its primary group only */
        for (int i = 0; i < w->n_groups; i++) {
                id->groups[id->n_groups++] = w->groups[i];
                if (w->groups[i] == 0)
                        snprintf(id->problem, sizeof(id->problem),
                                 "QEMU never runs as root, and user %s is in group root", user);
        }
}

void qemu_launch_user_problem(const char *user, char *problem, size_t len)
{
        struct qemu_identity id;
        struct who w = {0};

        resolve(user ? user : QEMU_LAUNCH_USER_DEFAULT, &id, &w);
        snprintf(problem, len, "%s", id.problem);
}

int qemu_launch_new(const char *user, struct qemu_launch **ret, char *err, size_t errlen)
{
        struct qemu_launch *ql = calloc(1, sizeof(*ql));
        struct who w = {0};
        int sv[2];

        if (!ql || !(w.no_caps = cap_init())) {
                free(ql);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        resolve(user ? user : QEMU_LAUNCH_USER_DEFAULT, &ql->id, &w);
        if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0)
                goto fail;
        ql->pid = fork();
        if (ql->pid == 0) {
                close(sv[0]);
                free(ql); /* dynmemd's, not the launcher's (valgrind counts it lost there) */
                run_launcher(sv[1], &w);
        }
        close(sv[1]);
        if (ql->pid < 0) {
                close(sv[0]);
                goto fail;
        }
        cap_free(w.no_caps);
        ql->sock = sv[0];
        *ret = ql;
        return 0;
fail:
        snprintf(err, errlen, "cannot start the QEMU launcher: %s", strerror(errno));
        cap_free(w.no_caps);
        free(ql);
        return -errno;
}

const struct qemu_identity *qemu_launch_identity(const struct qemu_launch *ql)
{
        return &ql->id;
}

static int ms_left(const struct timespec *deadline)
{
        struct timespec now;

        clock_gettime(CLOCK_MONOTONIC, &now);
        int64_t ms = (int64_t)(deadline->tv_sec - now.tv_sec) * 1000 +
                     (deadline->tv_nsec - now.tv_nsec) / 1000000;
        return ms < 0 ? 0 : (int)ms;
}

/*
 * A reply to a request dynmemd stopped waiting for. Only a start's carries a
 * descriptor: a child that failed before its exec is reaped; a program that
 * runs, with nobody to look after it, is killed once the launcher is free.
 */
static void set_aside(struct qemu_launch *ql, const struct reply *rep, int fd)
{
        if (fd < 0)
                return;
        if (rep->err) {
                waitid((idtype_t)P_PIDFD, (id_t)fd, &(siginfo_t){0}, WEXITED);
                close(fd);
        } else if (ql->n_orphans < ORPHANS_MAX) {
                ql->orphans[ql->n_orphans++] = fd;
        } else {
                close(fd); /* left to whoever inherits it */
        }
}

/*
 * Send a request (numbered here) and wait for its reply: the launcher's
 * clone and exec, or fork and faccessat, no more. Replies to earlier requests
 * that come meanwhile are set aside, whatever they say.
 */
static int exchange(struct qemu_launch *ql, struct request *req, const void *payload, size_t len,
                    const int *fds, size_t n_fds, struct reply *rep, int *ret_fd)
{
        union {
                char buf[CMSG_SPACE(sizeof(int) * (QEMU_LAUNCH_FDS_MAX + 1))];
                struct cmsghdr align;
        } u = {0};
        struct iovec iov[2] = {{req, sizeof(*req)}, {(void *)payload, len}};
        struct msghdr m = {.msg_iov = iov, .msg_iovlen = payload ? 2 : 1};
        struct timespec deadline;

        if (++ql->seq == 0)
                ql->seq = 1;
        req->seq = ql->seq;
        if (n_fds > 0) {
                m.msg_control = u.buf;
                m.msg_controllen = CMSG_SPACE(sizeof(int) * n_fds);
                struct cmsghdr *c = CMSG_FIRSTHDR(&m);
                c->cmsg_level = SOL_SOCKET;
                c->cmsg_type = SCM_RIGHTS;
                c->cmsg_len = CMSG_LEN(sizeof(int) * n_fds);
                memcpy(CMSG_DATA(c), fds, sizeof(int) * n_fds);
        }
        if (sendmsg(ql->sock, &m, MSG_NOSIGNAL) < 0)
                return -errno;
        clock_gettime(CLOCK_MONOTONIC, &deadline);
        deadline.tv_sec += REPLY_WAIT_MS / 1000;
        deadline.tv_nsec += (REPLY_WAIT_MS % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
                deadline.tv_sec++;
                deadline.tv_nsec -= 1000000000L;
        }
        for (;;) {
                struct pollfd p = {.fd = ql->sock, .events = POLLIN};
                int ready = poll(&p, 1, ms_left(&deadline));
                if (ready < 0 && errno == EINTR)
                        continue;
                if (ready <= 0)
                        return -ETIMEDOUT;
                struct iovec in = {.iov_base = rep, .iov_len = sizeof(*rep)};
                struct msghdr r = {.msg_iov = &in, .msg_iovlen = 1, .msg_control = u.buf};
                r.msg_controllen = sizeof(u.buf);
                ssize_t got = recvmsg(ql->sock, &r, MSG_CMSG_CLOEXEC);
                int fd = -1;
                if (got > 0)
                        take_fds(&r, &fd, 1); /* more than one: closed there */
                if (got != (ssize_t)sizeof(*rep) || (r.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
                        if (fd >= 0)
                                close(fd);
                        return got < 0 ? -errno : -EPIPE;
                }
                rep->step[sizeof(rep->step) - 1] = '\0';
                if (rep->seq != req->seq) {
                        set_aside(ql, rep, fd);
                        continue;
                }
                if (ret_fd)
                        *ret_fd = fd;
                else if (fd >= 0)
                        close(fd);
                return 0;
        }
}

/* Kill what was started after its start was given up on; reap what has exited. */
static void kill_orphans(struct qemu_launch *ql)
{
        while (ql->n_orphans > 0) {
                int pidfd = ql->orphans[--ql->n_orphans];
                struct request req = {.op = OP_KILL, .sig = SIGKILL, .n_fds = 1};
                struct reply rep = {0};
                if (exchange(ql, &req, NULL, 0, &pidfd, 1, &rep, NULL) < 0) {
                        set_aside(ql, &(struct reply){0}, pidfd); /* the next request tries again */
                        break;
                }
                child_strays_add(&ql->killed, pidfd); /* exited already (ESRCH) or killed now */
        }
        child_strays_reap(&ql->killed, 0);
}

/* A request and its reply; then the launcher kills what late replies left running. */
static int roundtrip(struct qemu_launch *ql, struct request *req, const void *payload, size_t len,
                     const int *fds, size_t n_fds, struct reply *rep, int *ret_fd)
{
        int r = exchange(ql, req, payload, len, fds, n_fds, rep, ret_fd);

        kill_orphans(ql);
        return r;
}

/* argv packed for the request: the strings, NUL after each. */
static char *pack_argv(char *const argv[], uint32_t *ret_argc, size_t *ret_len)
{
        size_t len = 0, argc = 0;

        for (; argv[argc]; argc++)
                len += strlen(argv[argc]) + 1;
        if (argc > ARGS_MAX || len + sizeof(struct request) > REQUEST_MAX)
                return NULL;
        char *p = malloc(len ? len : 1), *at = p;
        for (size_t i = 0; p && i < argc; i++)
                at = stpcpy(at, argv[i]) + 1;
        *ret_argc = (uint32_t)argc;
        *ret_len = len;
        return p;
}

int qemu_launch_spawn(struct qemu_launch *ql, char *const argv[], int log_fd, const int *fds,
                      size_t n_fds, pid_t *ret_pid, int *ret_pidfd, char *err, size_t errlen)
{
        struct request req = {.op = OP_SPAWN, .n_fds = (uint32_t)n_fds + 1};
        struct reply rep = {0};
        int all[QEMU_LAUNCH_FDS_MAX + 1] = {log_fd}, pidfd = -1, r;
        size_t len;

        if (ql->id.problem[0]) {
                snprintf(err, errlen, "%s", ql->id.problem);
                return -EPERM;
        }
        if (n_fds > QEMU_LAUNCH_FDS_MAX || argv[0][0] != '/') {
                snprintf(err, errlen, "cannot hand QEMU %zu descriptors or a relative path", n_fds);
                return -EINVAL;
        }
        if (n_fds > 0) /* fds may be NULL when there are none */
                memcpy(all + 1, fds, n_fds * sizeof(int));
        char *packed = pack_argv(argv, &req.argc, &len);
        if (!packed) {
                snprintf(err, errlen, "QEMU's command line is too long");
                return -E2BIG;
        }
        r = roundtrip(ql, &req, packed, len, all, n_fds + 1, &rep, &pidfd);
        free(packed);
        if (r < 0) {
                snprintf(err, errlen, "the QEMU launcher: %s", strerror(-r));
                return r;
        }
        if (rep.err) {
                /* The child failed before its exec and exited: reap it here. */
                if (pidfd >= 0)
                        waitid((idtype_t)P_PIDFD, (id_t)pidfd, &(siginfo_t){0}, WEXITED);
                else if (rep.pid > 0)
                        waitpid(rep.pid, NULL, 0);
                if (pidfd >= 0)
                        close(pidfd);
                snprintf(err, errlen, "cannot run %s as user %s: %s: %s", argv[0], ql->id.name,
                         rep.step, strerror(rep.err));
                return -rep.err;
        }
        *ret_pid = rep.pid;
        *ret_pidfd = pidfd;
        return 0;
}

int qemu_launch_kill(struct qemu_launch *ql, int pidfd, int sig)
{
        struct request req = {.op = OP_KILL, .sig = sig, .n_fds = 1};
        struct reply rep = {0};
        int r = roundtrip(ql, &req, NULL, 0, &pidfd, 1, &rep, NULL);

        return r < 0 ? r : -rep.err;
}

/* An access question asked and its answer said: "NAME: REASON (as user ...)" on a refusal. */
static int ask(struct qemu_launch *ql, struct request *req, const char *path, const int *fd,
               const char *name, char *err, size_t errlen)
{
        struct reply rep = {0};
        int r = roundtrip(ql, req, path, path ? strlen(path) + 1 : 0, fd, fd ? 1 : 0, &rep, NULL);

        if (r < 0) {
                snprintf(err, errlen, "the QEMU launcher: %s", strerror(-r));
                return r;
        }
        if (rep.err && strcmp(rep.step, "access") == 0)
                snprintf(err, errlen, "%s: %s (as user %s, whom QEMU runs as)", name,
                         strerror(rep.err), ql->id.name);
        else if (rep.err)
                snprintf(err, errlen, "cannot ask as user %s about %s: %s: %s", ql->id.name, name,
                         rep.step, strerror(rep.err));
        return -rep.err;
}

static bool mode_ok(int mode)
{
        return mode != 0 && (mode & ~(R_OK | W_OK)) == 0;
}

int qemu_launch_access(struct qemu_launch *ql, const char *path, int mode, char *err, size_t errlen)
{
        struct request req = {.op = OP_ACCESS, .mode = (uint32_t)mode};

        if (ql->id.problem[0]) {
                snprintf(err, errlen, "%s", ql->id.problem);
                return -EPERM;
        }
        if (path[0] != '/' || strlen(path) + 1 > PATH_MAX || !mode_ok(mode)) {
                snprintf(err, errlen, "cannot ask about %s: not an absolute path, or mode %d", path,
                         mode);
                return -EINVAL;
        }
        return ask(ql, &req, path, NULL, path, err, errlen);
}

int qemu_launch_access_fd(struct qemu_launch *ql, int fd, const char *name, int mode, char *err,
                          size_t errlen)
{
        struct request req = {.op = OP_ACCESS_FD, .mode = (uint32_t)mode, .n_fds = 1};

        if (ql->id.problem[0]) {
                snprintf(err, errlen, "%s", ql->id.problem);
                return -EPERM;
        }
        if (fd < 0 || !mode_ok(mode)) {
                snprintf(err, errlen, "cannot ask about %s: descriptor %d, mode %d", name, fd,
                         mode);
                return -EINVAL;
        }
        return ask(ql, &req, NULL, &fd, name, err, errlen);
}

void qemu_launch_free(struct qemu_launch *ql)
{
        if (!ql)
                return;
        kill_orphans(ql);
        close(ql->sock); /* the launcher sees EOF and exits at once */
        waitpid(ql->pid, NULL, 0);
        for (size_t i = 0; i < ql->n_orphans; i++)
                close(ql->orphans[i]);
        child_strays_reap(&ql->killed, KILLED_WAIT_MS);
        child_strays_close(&ql->killed);
        free(ql);
}
