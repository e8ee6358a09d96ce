/*
 * policy_exec_stderr: an exec: policy's standard error, read from its pipe
 * and written to dynmem's log line by line, with a limit: a program that
 * writes without end, or one restarted every minute for months that says
 * each time that it cannot be found, must not flood the log (dynmemd) or
 * the terminal (dynmem-sim). Plumbing only: nothing here bears on a
 * decision. See policy_exec_int.h.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "policy_exec_int.h"

#define READ_CHUNK    4096
#define READS_MAX     64 /* per call, 256 KiB: the caller comes back for more */
#define COMMAND_SHOWN 81 /* bytes of the command that name the policy, "..." included */

void policy_exec_stderr_init(struct policy_exec_stderr *s, double per_minute)
{
        *s = (struct policy_exec_stderr){
            .fd = -1, .limit = LOG_RATELIMIT(POLICY_EXEC_STDERR_BURST, per_minute)};
}

/* The line held, written to the log unless the limit holds it back. */
static void relay(struct policy_exec *pe)
{
        struct policy_exec_stderr *s = &pe->err;
        char command[COMMAND_SHOWN], text[POLICY_EXEC_STDERR_LINE + 1], before[64] = "";

        s->line[s->len] = '\0';
        /* A line cut holds exactly POLICY_EXEC_STDERR_LINE bytes: one less fits, with "...". */
        log_clean(text, s->cut ? POLICY_EXEC_STDERR_LINE : sizeof(text), s->line);
        s->len = 0;
        s->cut = false;
        if (!log_ratelimit_ok(&s->limit, s->now_ms))
                return;
        uint64_t suppressed = log_ratelimit_take_suppressed(&s->limit);
        if (suppressed)
                snprintf(before, sizeof(before), " (after %llu lines not shown)",
                         (unsigned long long)suppressed);
        log_clean(command, sizeof(command), pe->command);
        log_msg(LOG_NOTICE, "policy \"%s\": %s%s", command, text, before);
}

static void take(struct policy_exec *pe, const char *buf, size_t n)
{
        struct policy_exec_stderr *s = &pe->err;

        for (size_t i = 0; i < n; i++) {
                if (buf[i] == '\n')
                        relay(pe);
                else if (s->len < POLICY_EXEC_STDERR_LINE)
                        s->line[s->len++] = buf[i];
                else
                        s->cut = true;
        }
}

int policy_exec_stderr_read(struct policy_exec *pe)
{
        struct policy_exec_stderr *s = &pe->err;
        char buf[READ_CHUNK];

        for (int i = 0; s->fd >= 0 && i < READS_MAX; i++) {
                ssize_t got = read(s->fd, buf, sizeof(buf));
                if (got < 0 && errno == EINTR)
                        continue;
                if (got < 0)
                        return 0; /* EAGAIN: all read */
                if (got == 0)
                        return 1;
                take(pe, buf, (size_t)got);
        }
        return 0;
}

void policy_exec_stderr_close(struct policy_exec *pe)
{
        struct policy_exec_stderr *s = &pe->err;

        if (s->fd < 0)
                return;
        policy_exec_stderr_read(pe); /* what is left of what it wrote */
        if (s->len || s->cut)
                relay(pe); /* a last line without its newline */
        close(s->fd);
        s->fd = -1;
}

void policy_exec_stderr_final(struct policy_exec *pe)
{
        char command[COMMAND_SHOWN];
        uint64_t suppressed = log_ratelimit_take_suppressed(&pe->err.limit);

        if (!suppressed)
                return;
        log_clean(command, sizeof(command), pe->command);
        log_msg(LOG_NOTICE, "policy \"%s\": %llu more lines of its standard error not shown",
                command, (unsigned long long)suppressed);
}
