/*
 * log: messages to stderr or syslog, and their rate limit. See log.h.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static enum log_target log_target = LOG_TARGET_STDERR;
static int log_max_priority = LOG_INFO;
static const char *log_ident = "dynmem";

void log_setup(const char *ident, enum log_target target, int max_priority)
{
        log_ident = ident;
        log_target = target;
        log_max_priority = max_priority;
        if (target == LOG_TARGET_SYSLOG)
                openlog(ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

/*
 * Writing a message may wait: syslog's socket or stderr's pipe (the journal
 * under systemd) blocks when the reader falls behind. Every source a guest, a
 * client or a policy can make noisy goes through a log_ratelimit first, so
 * the loop's time in here stays bounded by the rate, not by them.
 *
 * Messages carry text from outside (a QEMU's error descriptions, what a parser
 * quotes of a message it refused): a control character in it is written as a
 * space, so that it can neither start a line that reads as a message of its
 * own nor move a terminal's cursor.
 */
void log_msg(int priority, const char *fmt, ...)
{
        char line[2048];
        va_list ap;

        if (priority > log_max_priority)
                return;
        va_start(ap, fmt);
        vsnprintf(line, sizeof(line), fmt, ap);
        va_end(ap);
        for (char *c = line; *c; c++)
                if ((unsigned char)*c < 0x20 || *c == 0x7f)
                        *c = ' ';
        if (log_target == LOG_TARGET_SYSLOG) {
                syslog(priority, "%s", line);
        } else {
                static const char *const names[] = {"emerg",   "alert",  "crit", "error",
                                                    "warning", "notice", "info", "debug"};
                fprintf(stderr, "%s: %s%s%s\n", log_ident,
                        priority <= LOG_WARNING ? names[priority & 7] : "",
                        priority <= LOG_WARNING ? ": " : "", line);
        }
}

bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms)
{
        if (bucket_take(&rl->bucket, (double)now_ms))
                return true;
        rl->suppressed++;
        return false;
}
