/*
 * log: one place where dynmem's programs write messages: stderr in the
 * foreground, syslog otherwise. Helpers do not log; the caller that decides
 * logs once, with a whole, greppable message. log_ratelimit() keeps a
 * misbehaving source (a flooding guest, a dying policy) from flooding the log.
 */
#ifndef DYNMEM_LOG_H
#define DYNMEM_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <syslog.h>

#include "bucket.h"

enum log_target {
        LOG_TARGET_STDERR,
        LOG_TARGET_SYSLOG,
};

/* Choose where messages go and the highest priority shown (LOG_INFO, LOG_DEBUG...). */
void log_setup(const char *ident, enum log_target target, int max_priority);

void log_msg(int priority, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Text from outside (a program's reply, a guest's, QEMU's) made fit for a
 * terminal or a log line: copied into out (len bytes, NUL-terminated), each
 * control character (C0, DEL, and C1 encoded in UTF-8) written as a space,
 * so that it can neither start a line of its own nor move a terminal's
 * cursor or start an escape sequence; text that does not fit is cut at a
 * character's boundary and ends in "...". out may be text itself. Returns
 * the length written.
 */
size_t log_clean(char *out, size_t len, const char *text);

/*
 * A token bucket (bucket.h) of messages: LOG_RATELIMIT(5, 6) allows bursts
 * of 5 and 6 a minute. log_ratelimit_ok() says whether one more may be
 * written now and counts the ones suppressed, which the next allowed message
 * should mention.
 */
struct log_ratelimit {
        struct bucket bucket;
        uint64_t suppressed;
};

#define LOG_RATELIMIT(burst_, per_minute_)                                                         \
        ((struct log_ratelimit){.bucket = BUCKET((per_minute_) / 60.0, (burst_))})

bool log_ratelimit_ok(struct log_ratelimit *rl, uint64_t now_ms);

/* The messages suppressed since this was last asked, for the one written now; the count starts
 * again. */
uint64_t log_ratelimit_take_suppressed(struct log_ratelimit *rl);

#endif
