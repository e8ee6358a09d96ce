/*
 * log: one place where dynmem's programs write messages: stderr in the
 * foreground, syslog otherwise. Helpers do not log; the caller that decides
 * logs once, with a whole, greppable message. log_ratelimit() keeps a
 * misbehaving source (a flooding guest, a dying policy) from flooding the log.
 */
#ifndef DYNMEM_LOG_H
#define DYNMEM_LOG_H

#include <stdbool.h>
#include <stdint.h>
#include <syslog.h>

enum log_target {
        LOG_TARGET_STDERR,
        LOG_TARGET_SYSLOG,
};

/* Choose where messages go and the highest priority shown (LOG_INFO, LOG_DEBUG...). */
void log_setup(const char *ident, enum log_target target, int max_priority);

void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * A token bucket: at most `burst` messages, refilled at `per_minute`.
 * log_ratelimit_ok() says whether one more may be written now and counts
 * the ones suppressed, which the next allowed message should mention.
 */
struct log_ratelimit {
        uint32_t burst;
        uint32_t per_minute;
        double tokens;
        uint64_t last_ms;
        uint64_t suppressed;
        bool started;
};

bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms);

#endif
