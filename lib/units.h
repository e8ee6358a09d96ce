/*
 * units: parsing and printing of the two quantities dynmem speaks in, and
 * of switches.
 *
 * Sizes are bytes in a uint64_t. Text form: a whole or decimal number with
 * an optional suffix K, M, G or T (powers of 1024; "KiB", "MiB"... and a
 * trailing "B" are accepted too), or plain bytes.
 *
 * Durations are milliseconds in a uint64_t, the one time unit of the
 * project. Text form: a whole or decimal number with a suffix ms, s, m or h;
 * a bare number is seconds.
 *
 * Switches are bools. Text form: yes/no, on/off, true/false or 1/0, in any
 * case.
 *
 * The parsers accept the whole string or nothing: trailing garbage, signs,
 * empty strings and overflow are errors (-EINVAL / -ERANGE), and the
 * out-parameter is written only on success.
 */
#ifndef DYNMEM_UNITS_H
#define DYNMEM_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KIB ((uint64_t)1024)
#define MIB (KIB * 1024)
#define GIB (MIB * 1024)
#define TIB (GIB * 1024)

#define MSEC_PER_SEC ((uint64_t)1000)

/* Parse a size. Returns 0, -EINVAL (not a size) or -ERANGE (too large). */
int size_parse(const char *text, uint64_t *ret_bytes);

/*
 * A size an operator writes (a config key, a command-line option) that
 * size_parse() read as `bytes`: a plain number without a unit that comes out
 * below 1 MiB ("512" for startup) is a unit left out, not a size
 * anyone means. Then returns true and writes to buf, for a message after the
 * key's name: "\"512\" has no unit and would be 512 bytes; write 512M or
 * 512MiB". Plain bytes of 1 MiB and more, a zero ("0"), and any number with a unit
 * ("512B", "4K") return false. Always NUL-terminates buf.
 */
bool size_unit_missing(const char *text, uint64_t bytes, char *buf, size_t len);

/*
 * A size that size_parse() refused only for blanks between its number and
 * its unit ("2 G", "512 MiB"): returns true and writes to buf, for a message
 * after the key's name: "\"2 G\" has a blank between the number and its
 * unit; write 2G". Returns false for anything else. Always NUL-terminates buf.
 */
bool size_blank_inside(const char *text, char *buf, size_t len);

/* Parse a duration. Returns 0, -EINVAL or -ERANGE. */
int duration_parse(const char *text, uint64_t *ret_ms);

/*
 * How a message about the duration `text` says it was read: " (seconds)" for
 * a bare number ("200", "0.5"), which duration_parse() reads as seconds, and
 * "" for anything else (a zero is zero in any unit). For example:
 * "interval: 200 (seconds) is outside 10ms..1m".
 */
const char *duration_read_as(const char *text);

/* Parse a switch. Returns 0 or -EINVAL. */
int switch_parse(const char *text, bool *ret);

/* What switch_parse() accepts, for messages: "\"maybe\" is not " SWITCH_WORDS. */
#define SWITCH_WORDS "yes/no, on/off, true/false or 1/0"

/*
 * Print a size for people: "512 MiB", "1.5 GiB", "0 B". Whole units are
 * printed without decimals. Always NUL-terminates; returns buf.
 */
char *size_format(uint64_t bytes, char *buf, size_t len);

/*
 * A size in the largest unit it is a whole number of ("1025 MiB"): where
 * size_format() rounds ("1.0 GiB"), a figure to write down or compare
 * with a limit must be exact.
 */
char *size_format_exact(uint64_t bytes, char *buf, size_t len);

/* Print a duration for people: "250ms", "1.5s", "3m", "2h". Returns buf. */
char *duration_format(uint64_t ms, char *buf, size_t len);

/* a + b, saturating at UINT64_MAX (byte counts and sums of them). */
static inline uint64_t add_sat(uint64_t a, uint64_t b)
{
        return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* Round up to a multiple of align (align > 0); saturates at UINT64_MAX rounded down. */
uint64_t size_round_up(uint64_t bytes, uint64_t align);

/* Round down to a multiple of align (align > 0). */
uint64_t size_round_down(uint64_t bytes, uint64_t align);

#endif
