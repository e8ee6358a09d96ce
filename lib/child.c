/*
 * child: the signals of a child before exec. See child.h.
 */
#include "child.h"

#include <signal.h>

void child_default_signals(void)
{
        struct sigaction dfl = {.sa_handler = SIG_DFL};
        sigset_t none;

        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        for (int sig = 1; sig < NSIG; sig++)
                sigaction(sig, &dfl, NULL); /* fails harmlessly for SIGKILL, SIGSTOP */
}
