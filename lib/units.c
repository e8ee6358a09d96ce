/*
 * units: sizes in bytes, durations in milliseconds and switches, to and
 * from text.
 * See units.h for the accepted forms.
 */
#include "units.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <stdbool.h>
#include <strings.h>

struct unit_suffix {
        const char *suffix;
        uint64_t scale;
};

static const struct unit_suffix size_suffixes[] = {
    {"", 1},      {"B", 1},   {"K", KIB},  {"KB", KIB},  {"KiB", KIB}, {"M", MIB},  {"MB", MIB},
    {"MiB", MIB}, {"G", GIB}, {"GB", GIB}, {"GiB", GIB}, {"T", TIB},   {"TB", TIB}, {"TiB", TIB},
};

static const struct unit_suffix duration_suffixes[] = {
    {"", 1000}, {"ms", 1}, {"s", 1000}, {"m", 60 * 1000}, {"h", 3600 * 1000},
};

/*
 * Split "12.5G" into a whole part, a fraction (as numerator/denominator) and
 * the suffix. Only digits and one optional dot are accepted.
 */
static int number_split(const char *text, uint64_t *whole, uint64_t *frac_num, uint64_t *frac_den,
                        const char **suffix)
{
        const char *p = text;
        uint64_t w = 0, num = 0, den = 1;

        if (!isdigit((unsigned char)*p))
                return -EINVAL;
        for (; isdigit((unsigned char)*p); p++) {
                uint64_t digit = (uint64_t)(*p - '0');
                if (w > (UINT64_MAX - digit) / 10)
                        return -ERANGE;
                w = w * 10 + digit;
        }
        if (*p == '.') {
                p++;
                if (!isdigit((unsigned char)*p))
                        return -EINVAL;
                for (; isdigit((unsigned char)*p); p++) {
                        if (den >= 1000000000000ULL)
                                continue; /* ignore digits beyond 12 decimals */
                        num = num * 10 + (uint64_t)(*p - '0');
                        den *= 10;
                }
        }
        *whole = w;
        *frac_num = num;
        *frac_den = den;
        *suffix = p;
        return 0;
}

static int scaled_parse(const char *text, const struct unit_suffix *table, size_t n,
                        bool case_sensitive, uint64_t *ret)
{
        uint64_t whole, num, den, scale = 0, value;
        const char *suffix;
        int r;

        if (!text)
                return -EINVAL;
        r = number_split(text, &whole, &num, &den, &suffix);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                bool same = case_sensitive ? strcmp(suffix, table[i].suffix) == 0
                                           : strcasecmp(suffix, table[i].suffix) == 0;
                if (same) {
                        scale = table[i].scale;
                        break;
                }
        }
        if (scale == 0)
                return -EINVAL;
        if (whole > UINT64_MAX / scale)
                return -ERANGE;
        value = whole * scale;
        /* The fraction: num/den * scale, computed without overflow (den <= 1e12). */
        uint64_t frac = (uint64_t)((long double)num * (long double)scale / (long double)den);
        if (value > UINT64_MAX - frac)
                return -ERANGE;
        *ret = value + frac;
        return 0;
}

int size_parse(const char *text, uint64_t *ret_bytes)
{
        return scaled_parse(text, size_suffixes, sizeof(size_suffixes) / sizeof(size_suffixes[0]),
                            false, ret_bytes);
}

bool size_unit_missing(const char *text, uint64_t bytes, char *buf, size_t len)
{
        if (len)
                buf[0] = '\0';
        /* A zero ("0", "0.0") is meant: swap = 0, reserve = 0. */
        if (!text || bytes >= MIB || text[strspn(text, "0123456789.")] != '\0' ||
            text[strspn(text, "0.")] == '\0')
                return false;
        int n = snprintf(buf, len, "\"%s\" has no unit and would be %llu bytes; write %sM or %sMiB",
                         text, (unsigned long long)bytes, text, text);
        if (n >= 0 && (size_t)n < len && bytes % KIB == 0)
                snprintf(buf + n, len - (size_t)n, " (or %lluK for %llu KiB)",
                         (unsigned long long)(bytes / KIB), (unsigned long long)(bytes / KIB));
        return true;
}

bool size_blank_inside(const char *text, char *buf, size_t len)
{
        size_t number = strspn(text, "0123456789."), blanks = strspn(text + number, " \t");
        char joined[64];
        uint64_t bytes;

        if (len)
                buf[0] = '\0';
        if (number == 0 || blanks == 0 || !isalpha((unsigned char)text[number + blanks]) ||
            strlen(text) >= sizeof(joined))
                return false;
        snprintf(joined, sizeof(joined), "%.*s%s", (int)number, text, text + number + blanks);
        if (size_parse(joined, &bytes) < 0)
                return false;
        snprintf(buf, len, "\"%s\" has a blank between the number and its unit; write %s", text,
                 joined);
        return true;
}

int duration_parse(const char *text, uint64_t *ret_ms)
{
        /* Case matters: "m" is minutes, "M" would be ambiguous. */
        return scaled_parse(text, duration_suffixes,
                            sizeof(duration_suffixes) / sizeof(duration_suffixes[0]), true, ret_ms);
}

const char *duration_read_as(const char *text)
{
        static const char digits[] = "0123456789";

        if (!text || !isdigit((unsigned char)text[0]))
                return "";
        size_t n = strspn(text, digits);
        if (text[n] == '.') {
                size_t m = strspn(text + n + 1, digits);
                if (m == 0)
                        return "";
                n += 1 + m;
        }
        return text[n] == '\0' && text[strspn(text, "0.")] != '\0' ? " (seconds)" : "";
}

char *size_format(uint64_t bytes, char *buf, size_t len)
{
        static const char *names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
        uint64_t scale = 1;
        size_t i = 0;

        while (i + 1 < sizeof(names) / sizeof(names[0]) && bytes >= scale * 1024)
                scale *= 1024, i++;
        if (bytes % scale == 0)
                snprintf(buf, len, "%llu %s", (unsigned long long)(bytes / scale), names[i]);
        else
                snprintf(buf, len, "%.1f %s", (double)bytes / (double)scale, names[i]);
        return buf;
}

char *size_format_exact(uint64_t bytes, char *buf, size_t len)
{
        static const char *const names[] = {"B", "KiB", "MiB", "GiB", "TiB"};
        uint64_t unit = TIB;
        size_t i = 4;

        while (i > 0 && (bytes == 0 || bytes % unit != 0))
                unit /= 1024, i--;
        snprintf(buf, len, "%llu %s", (unsigned long long)(bytes / unit), names[i]);
        return buf;
}

char *duration_format(uint64_t ms, char *buf, size_t len)
{
        if (ms < 1000)
                snprintf(buf, len, "%llums", (unsigned long long)ms);
        else if (ms < 60 * 1000 || ms % 1000 != 0)
                snprintf(buf, len, "%gs", (double)ms / 1000.0);
        else if (ms % (3600 * 1000) == 0)
                snprintf(buf, len, "%lluh", (unsigned long long)(ms / (3600 * 1000)));
        else if (ms % (60 * 1000) == 0)
                snprintf(buf, len, "%llum", (unsigned long long)(ms / (60 * 1000)));
        else
                snprintf(buf, len, "%llus", (unsigned long long)(ms / 1000));
        return buf;
}

uint64_t size_round_up(uint64_t bytes, uint64_t align)
{
        uint64_t rem = bytes % align;

        if (rem == 0)
                return bytes;
        if (bytes > UINT64_MAX - (align - rem))
                return UINT64_MAX - UINT64_MAX % align;
        return bytes + (align - rem);
}

uint64_t size_round_down(uint64_t bytes, uint64_t align)
{
        return bytes - bytes % align;
}

int switch_parse(const char *text, bool *ret)
{
        static const char *const on[] = {"yes", "on", "true", "1"};
        static const char *const off[] = {"no", "off", "false", "0"};

        for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
                if (strcasecmp(text, on[i]) == 0)
                        return *ret = true, 0;
                if (strcasecmp(text, off[i]) == 0)
                        return *ret = false, 0;
        }
        return -EINVAL;
}
