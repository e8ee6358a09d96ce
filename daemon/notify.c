/*
 * notify: systemd's readiness and watchdog protocol through libsystemd's
 * sd_notify(). See notify.h.
 *
 * sd_notify() sends one datagram to systemd's notification socket. It can
 * only wait if systemd stops reading its socket (whose buffer systemd makes
 * large); then the service manager itself is stuck, and with it the
 * watchdog that would restart dynmemd.
 */
#include "notify.h"

#include <limits.h>
#include <stdio.h>
#include <systemd/sd-daemon.h>

#include "daemon.h"
#include "dconfig.h"
#include "mono.h"
#include "units.h"

void notify_init(struct daemon *d)
{
        uint64_t usec = 0;
        char iv[32], wd[32], at[PATH_MAX + 16];

        d->watchdog_ms = 0;
        if (sd_watchdog_enabled(0, &usec) <= 0 || usec < 1000)
                return;
        d->watchdog_ms = usec / 1000;
        if (d->cfg.host.interval_ms * 2 > d->watchdog_ms)
                log_msg(LOG_WARNING,
                        "%s: warning: [host] interval %s is more than half the watchdog's %s: "
                        "systemd will restart dynmemd between two cycles; raise WatchdogSec= to "
                        "twice the interval or more",
                        dconfig_key_at(&d->cfg, "host", "interval", at, sizeof(at)),
                        duration_format(d->cfg.host.interval_ms, iv, sizeof(iv)),
                        duration_format(d->watchdog_ms, wd, sizeof(wd)));
}

void notify_ready(struct daemon *d)
{
        char status[128];

        snprintf(status, sizeof(status), "READY=1\nSTATUS=balancing %zu VMs, %zu holding memory",
                 d->reg.n, d->holding_vms);
        sd_notify(0, status);
        d->watchdog_sent_ms = mono_ms_exact();
}

void notify_cycle(struct daemon *d)
{
        double now;

        if (!d->watchdog_ms)
                return;
        now = mono_ms_exact();
        if (now - d->watchdog_sent_ms < (double)d->watchdog_ms / 4.0)
                return;
        sd_notify(0, "WATCHDOG=1");
        d->watchdog_sent_ms = now;
}

void notify_stopping(void)
{
        sd_notify(0, "STOPPING=1");
}
