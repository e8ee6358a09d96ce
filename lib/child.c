/*
 * child: the signals of a child before exec, and reaping children nobody
 * waits for. See child.h.
 */
#include "child.h"

#include <errno.h>
#include <event2/event.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

void child_default_signals(void)
{
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                sigaction(sig, &dfl, NULL); /* fails harmlessly for SIGKILL, SIGSTOP */
}

/* Reaped, or not ours to reap (ECHILD): the pidfd may go. */
static bool reaped(int pidfd)
{
        siginfo_t si = {0};

        if (waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED | WNOHANG) < 0)
                return errno != EINTR;
        return si.si_pid != 0;
}

static void on_exit_ev(evutil_socket_t fd, short what, void *arg)
{
        struct event_base *base = arg;

        (void)what;
        if (reaped((int)fd))
                close((int)fd);
        else if (event_base_once(base, fd, EV_READ, on_exit_ev, base, NULL) < 0)
                close((int)fd); /* out of memory: left to whoever inherits it */
}

void child_reap_later(struct event_base *base, int pidfd)
{
        if (pidfd < 0)
                return;
        if (reaped(pidfd) || !base ||
            event_base_once(base, pidfd, EV_READ, on_exit_ev, base, NULL) < 0)
                close(pidfd);
}
