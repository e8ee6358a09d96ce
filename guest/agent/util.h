/*
 * util: the small helpers the guest agent's modules share: paths under the
 * (test-replaceable) root, reading a small file in one go, "Key: value"
 * parsing, and rate-limited logging to stderr (the console). The clock and
 * the rate limit are lib/mono.c's and lib/bucket.c's, which the agent
 * compiles (libc only).
 */
#ifndef DYNMEM_GUEST_UTIL_H
#define DYNMEM_GUEST_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mono.h"

#define UTIL_PATH_MAX 512

/* Set the prefix that util_path() puts before /proc and /sys paths ("" = the real ones). */
void util_set_root(const char *root);

/* True when /proc and /sys are the real ones (no test root): the agent may change the system. */
bool util_root_is_real(void);

/* root + path into buf (UTIL_PATH_MAX bytes). Returns buf, or NULL when it does not fit. */
char *util_path(char *buf, const char *path);

/*
 * Read at most len - 1 bytes of fd from offset 0 (pread: /proc files are
 * regenerated) and NUL-terminate. Returns the length or a negative errno.
 */
long util_pread_all(int fd, char *buf, size_t len);

/* Read the small file root+path into buf, NUL-terminated. Length or negative errno. */
long util_read_file(const char *path, char *buf, size_t len);

/* Write text to root+path (one write). 0 or negative errno. */
int util_write_file(const char *path, const char *text);

/* Parse a decimal at s (leading blanks skipped); *end after it. 0 or -EINVAL/-ERANGE. */
int util_parse_u64(const char *s, const char **end, uint64_t *ret);

/*
 * Find "key" at the start of a line of text, followed by a blank or ':'
 * and a decimal. 0 and *ret, or -ENOENT.
 */
int util_find_u64(const char *text, const char *key, uint64_t *ret);

/* Log one line "dynmem-guest: ..." to stderr, at most 10 a minute (suppressed ones are counted). */
void util_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
