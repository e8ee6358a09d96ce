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
        log_clean(line, sizeof(line), line);
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

size_t log_clean(char *out, size_t len, const char *text)
{
        const unsigned char *s = (const unsigned char *)text;
        size_t o = 0;
        bool cut = false;

        if (len == 0)
                return 0;
        for (; *s; s++) {
                unsigned char c = *s;
                if (c == 0xc2 && s[1] >= 0x80 && s[1] <= 0x9f) /* U+0080..U+009F */
                        c = ' ', s++;
                else if (c < 0x20 || c == 0x7f)
                        c = ' ';
                if (o + 1 >= len) {
                        cut = true;
                        break;
                }
                out[o++] = (char)c;
        }
        if (cut && len > 4) {
                o = o < len - 4 ? o : len - 4;
                while (o > 0 && ((unsigned char)out[o] & 0xc0) == 0x80)
                        o--; /* not inside a character */
                memcpy(out + o, "...", 3);
                o += 3;
        }
        out[o] = '\0';
        return o;
}

bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms)
{
        if (bucket_take(&rl->bucket, (double)now_ms))
                return true;
        rl->suppressed++;
        return false;
}

uint64_t log_ratelimit_take_suppressed(struct log_ratelimit *rl)
{
        uint64_t n = rl->suppressed;

        rl->suppressed = 0;
        return n;
}
