/*
 * trace: reads "seconds,demand" CSV files and interpolates them. See trace.h.
 */
#include "trace.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "log.h"
#include "units.h"

struct reader {
        const char *name;
        FILE *fp;
        const char *text;
        size_t pos;
};

/*
 * Next line without its newline; NULL at the end. Lines over `cap` are flagged with *overlong,
 * lines holding a NUL byte (which would end the line unseen) with *nul.
 */
static char *next_line(struct reader *rd, char *buf, size_t cap, bool *overlong, bool *nul)
{
        *overlong = false;
        *nul = false;
        if (rd->fp) {
                /* By character, not fgets(), so that a NUL byte cannot end the line unseen. */
                size_t n = 0;
                int c = EOF;
                while (n < cap - 1 && (c = getc_unlocked(rd->fp)) != EOF && c != '\n') {
                        *nul |= c == '\0';
                        buf[n++] = (char)c;
                }
                if (n == 0 && c == EOF)
                        return NULL;
                if (n == cap - 1) {
                        /* The buffer is full: a newline or the end next keeps it whole. */
                        c = getc_unlocked(rd->fp);
                        if (c != '\n' && c != EOF) {
                                *overlong = true;
                                while ((c = getc_unlocked(rd->fp)) != EOF && c != '\n')
                                        ;
                        }
                }
                buf[n] = '\0';
        } else {
                const char *s = rd->text + rd->pos;
                if (!*s)
                        return NULL;
                size_t n = strcspn(s, "\n");
                rd->pos += n + (s[n] == '\n');
                if (n >= cap) {
                        *overlong = true;
                        n = cap - 1;
                }
                memcpy(buf, s, n);
                buf[n] = '\0';
        }
        size_t n = strlen(buf);
        if (n && buf[n - 1] == '\r')
                buf[n - 1] = '\0';
        return buf;
}

static int parse_seconds(const char *s, uint64_t *ret_ms)
{
        /* Seconds as a plain decimal number: reuse the duration parser (bare = seconds). */
        for (const char *p = s; *p; p++)
                if (!isdigit((unsigned char)*p) && *p != '.')
                        return -EINVAL;
        return duration_parse(s, ret_ms);
}

static int append_row(struct trace *t, size_t *cap, uint64_t ms, uint64_t demand)
{
        if (t->n == *cap) {
                size_t ncap = *cap ? *cap * 2 : 256;
                uint64_t *a = realloc(t->t_ms, ncap * sizeof(*a));
                if (!a)
                        return -ENOMEM;
                t->t_ms = a;
                uint64_t *b = realloc(t->demand, ncap * sizeof(*b));
                if (!b)
                        return -ENOMEM;
                t->demand = b;
                *cap = ncap;
        }
        t->t_ms[t->n] = ms;
        t->demand[t->n] = demand;
        t->n++;
        return 0;
}

static int parse_row(struct reader *rd, unsigned line, char *text, struct trace *t, size_t *cap,
                     struct config_diag *diag)
{
        char *comma = strchr(text, ',');
        uint64_t ms, demand;

        if (!comma || strchr(comma + 1, ',')) {
                config_diag_add(diag, rd->name, line, "expected two fields: seconds,demand");
                return -EINVAL;
        }
        *comma = '\0';
        if (parse_seconds(text, &ms) < 0) {
                config_diag_add(diag, rd->name, line, "\"%s\" is not a number of seconds", text);
                return -EINVAL;
        }
        if (ms > TRACE_MS_MAX) {
                /* Unix times from a monitoring export would otherwise run for decades. */
                config_diag_add(diag, rd->name, line,
                                "%s seconds is more than 366 days (seconds count from the VM's "
                                "start, not Unix time)",
                                text);
                return -EINVAL;
        }
        /* A bare number is bytes, of any size (no "unit left out" here: traces are data). */
        int r = size_parse(comma + 1, &demand);
        if (r == -EINVAL && !comma[1]) {
                config_diag_add(diag, rd->name, line, "no demand after the comma");
                return -EINVAL;
        }
        char why[160];
        if (r == -EINVAL && size_blank_inside(comma + 1, why, sizeof(why))) {
                config_diag_add(diag, rd->name, line, "%s", why);
                return -EINVAL;
        }
        if (r == -EINVAL) {
                config_diag_add(diag, rd->name, line,
                                "\"%s\" is not a demand (bytes, or a size with K, M, G or T)",
                                comma + 1);
                return -EINVAL;
        }
        if (r < 0 || demand > TRACE_DEMAND_MAX) {
                config_diag_add(diag, rd->name, line, "demand \"%s\" is more than 16 TiB",
                                comma + 1);
                return -EINVAL;
        }
        if (t->n > 0 && ms <= t->t_ms[t->n - 1]) {
                config_diag_add(diag, rd->name, line, "seconds must increase (%s after %.3f)", text,
                                (double)t->t_ms[t->n - 1] / 1000.0);
                return -EINVAL;
        }
        if (t->n >= TRACE_ROWS_MAX) {
                config_diag_add(diag, rd->name, line, "more than %u rows", TRACE_ROWS_MAX);
                return -E2BIG;
        }
        return append_row(t, cap, ms, demand);
}

/*
 * The first line is not the header: say what it is instead, so that a blank
 * or a capital that looks right is seen, and that a comment or a blank line
 * may only follow the header.
 */
static void header_wrong(struct reader *rd, const char *first, struct config_diag *diag)
{
        char shown[64];

        log_clean(shown, sizeof(shown), first);
        config_diag_add(diag, rd->name, 1,
                        "expected the header \"seconds,demand\" as the first line, not \"%s\"%s",
                        shown,
                        first[0] == '\0' || first[0] == '#'
                            ? " (blank lines and comments may only follow the header)"
                            : "");
}

static int load(struct reader *rd, struct trace *t, struct config_diag *diag)
{
        char buf[256];
        bool overlong, nul;
        unsigned line = 0;
        size_t cap = 0;
        int r = 0;

        *t = (struct trace){.path = strdup(rd->name)};
        while (next_line(rd, buf, sizeof(buf), &overlong, &nul)) {
                line++;
                if (line == 1 && strchr(buf, '\r')) {
                        /* Classic Mac OS line ends: the whole file reads as one line. */
                        config_diag_add(diag, rd->name, 1,
                                        "lines end in a lone carriage return: use LF or CR LF");
                        r = -EINVAL;
                        break;
                }
                if (overlong) {
                        config_diag_add(diag, rd->name, line, "line too long");
                        r = -EINVAL;
                        break;
                }
                if (nul) {
                        config_diag_add(diag, rd->name, line,
                                        "a NUL byte in the line (not a text file?)");
                        r = -EINVAL;
                        break;
                }
                if (line == 1) {
                        /* A spreadsheet's "CSV UTF-8" starts with a byte order mark. */
                        if (strcmp(config_skip_bom(buf), "seconds,demand") != 0) {
                                header_wrong(rd, config_skip_bom(buf), diag);
                                r = -EINVAL;
                                break;
                        }
                        continue;
                }
                if (buf[0] == '\0' || buf[0] == '#')
                        continue;
                r = parse_row(rd, line, buf, t, &cap, diag);
                if (r < 0)
                        break;
        }
        if (r == 0 && rd->fp && ferror(rd->fp)) {
                config_diag_add(diag, rd->name, 0, "read error");
                r = -EIO;
        }
        if (r == 0 && t->n == 0) {
                config_diag_add(diag, rd->name, line ? line : 1, "no rows");
                r = -EINVAL;
        }
        if (r < 0)
                trace_free(t);
        return r;
}

int trace_load(const char *path, struct trace *ret, struct config_diag *diag)
{
        struct reader rd = {.name = path};
        struct stat st;
        int r;

        /* A directory, a FIFO or a socket: said at once, never "no rows" or a wait. */
        rd.fp = config_open_text(path, &st, diag, &r);
        if (!rd.fp) {
                *ret = (struct trace){0};
                return r;
        }
        r = load(&rd, ret, diag);
        fclose(rd.fp);
        return r;
}

int trace_load_string(const char *name, const char *text, struct trace *ret,
                      struct config_diag *diag)
{
        struct reader rd = {.name = name, .text = text};

        return load(&rd, ret, diag);
}

void trace_free(struct trace *t)
{
        if (!t)
                return;
        free(t->path);
        free(t->t_ms);
        free(t->demand);
        *t = (struct trace){0};
}

uint64_t trace_end_ms(const struct trace *t)
{
        return t->n ? t->t_ms[t->n - 1] : 0;
}

/* Linear between rows i and i + 1, for t_ms[i] <= ms < t_ms[i + 1]. */
static uint64_t interpolate(const struct trace *t, size_t i, uint64_t ms)
{
        uint64_t t0 = t->t_ms[i], t1 = t->t_ms[i + 1];
        uint64_t d0 = t->demand[i], d1 = t->demand[i + 1];
        uint64_t span = t1 - t0, at = ms - t0;

        /* Demands are at most 16 TiB (44 bits): 64-bit products do when spans are short. */
        if (at < (1ull << 19)) {
                if (d1 >= d0)
                        return d0 + (d1 - d0) * at / span;
                return d0 - (d0 - d1) * at / span;
        }
        if (d1 >= d0)
                return d0 + (uint64_t)((unsigned __int128)(d1 - d0) * at / span);
        return d0 - (uint64_t)((unsigned __int128)(d0 - d1) * at / span);
}

uint64_t trace_demand_at(const struct trace *t, uint64_t ms, size_t *cursor)
{
        size_t i = *cursor < t->n ? *cursor : 0;

        if (t->n == 0)
                return 0;
        /* Usually still in the segment of the last call: touch only that. */
        if (i + 1 < t->n && t->t_ms[i] <= ms && ms < t->t_ms[i + 1])
                return interpolate(t, i, ms);
        if (ms <= t->t_ms[0])
                return t->demand[0];
        if (ms >= t->t_ms[t->n - 1])
                return t->demand[t->n - 1];
        if (t->t_ms[i] > ms)
                i = 0;
        while (i + 1 < t->n && t->t_ms[i + 1] <= ms)
                i++;
        *cursor = i;
        return interpolate(t, i, ms);
}

uint64_t trace_narrowest_peak_ms(const struct trace *t, uint64_t *from_ms, uint64_t *to_ms)
{
        uint64_t least = 0;

        for (size_t i = 1; i + 1 < t->n; i++) {
                size_t j = i; /* the run of rows at i's demand ends at j */
                while (j + 1 < t->n && t->demand[j + 1] == t->demand[i])
                        j++;
                uint64_t width = j + 1 < t->n ? t->t_ms[j + 1] - t->t_ms[i - 1] : 0;
                if (width && t->demand[i - 1] < t->demand[i] && t->demand[j + 1] < t->demand[i] &&
                    (least == 0 || width < least)) {
                        least = width;
                        *from_ms = t->t_ms[i - 1];
                        *to_ms = t->t_ms[j + 1];
                }
                i = j;
        }
        return least;
}
