/*
 * child: the signals of a child before exec, and reaping children nobody
 * waits for. See child.h.
 */
#include "child.h"

#include <errno.h>
#include <event2/event.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mono.h"

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

size_t child_strays_reap(struct child_strays *s, int wait_ms)
{
        uint64_t deadline = mono_ms() + (uint64_t)(wait_ms > 0 ? wait_ms : 0);

        for (;;) {
                struct pollfd p[CHILD_STRAYS_MAX];
                size_t k = 0;
                for (size_t i = 0; i < s->n; i++) {
                        if (reaped(s->pidfd[i]))
                                close(s->pidfd[i]);
                        else
                                s->pidfd[k++] = s->pidfd[i];
                }
                s->n = k;
                uint64_t now = mono_ms();
                if (s->n == 0 || now >= deadline)
                        return s->n;
                for (size_t i = 0; i < s->n; i++)
                        p[i] = (struct pollfd){.fd = s->pidfd[i], .events = POLLIN};
                poll(p, (nfds_t)s->n, (int)(deadline - now));
        }
}

void child_strays_add(struct child_strays *s, int pidfd)
{
        if (pidfd < 0)
                return;
        if (reaped(pidfd)) {
                close(pidfd);
                return;
        }
        if (s->n == CHILD_STRAYS_MAX && child_strays_reap(s, 0) == CHILD_STRAYS_MAX) {
                close(pidfd); /* left to whoever inherits it */
                return;
        }
        s->pidfd[s->n++] = pidfd;
}

void child_strays_close(struct child_strays *s)
{
        for (size_t i = 0; i < s->n; i++)
                close(s->pidfd[i]);
        s->n = 0;
}
