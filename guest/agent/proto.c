/*
 * proto: host hello parsing and the agent's lines. The host is the more
 * trusted side, but its lines are still bounded and range-checked. Every
 * key, capability and cause is named by lib/agent_wire.c, which the host's
 * parser reads too.
 */
#include "proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent_wire.h"

static bool word_char(char ch)
{
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
               ch == '-' || ch == '=';
}

/*
 * The n bytes at s as a plain decimal up to max. Nothing past them is read: the line is not
 * NUL-terminated, and what follows it in the buffer is what a longer line left there.
 */
static int num(const char *s, size_t n, uint64_t max, uint64_t *ret)
{
        uint64_t v = 0;

        if (n == 0 || n > 20)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return -EINVAL;
                unsigned d = (unsigned)(s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        if (v > max)
                return -EINVAL;
        *ret = v;
        return 0;
}

/*
 * "key=value" at s (n bytes): value into ret when key matches. 1 = matched, 0 = other key,
 * -EINVAL = the key with a value that is no number up to max (an empty one too).
 */
static int field(const char *s, size_t n, const char *key, uint64_t max, uint64_t *ret)
{
        size_t k = strlen(key);

        if (n < k + 1 || memcmp(s, key, k) != 0 || s[k] != '=')
                return 0;
        return num(s + k + 1, n - k - 1, max, ret) < 0 ? -EINVAL : 1;
}

int proto_parse_host(const char *line, size_t len, struct proto_host_hello *ret)
{
        static const char prefix[] = AGENT_MAGIC " ";
        struct proto_host_hello h = {0};
        bool min = false, max = false;
        size_t i;

        if (len < sizeof(prefix) || memcmp(line, prefix, sizeof(prefix) - 1) != 0)
                return -EINVAL;
        for (i = sizeof(prefix) - 1; i < len; i++)
                if (!word_char(line[i]) && line[i] != ' ')
                        return -EINVAL;
        const size_t type_len = strlen(AGENT_TYPE_HELLO);
        i = sizeof(prefix) - 1;
        if (len - i < type_len || memcmp(line + i, AGENT_TYPE_HELLO, type_len) != 0 ||
            (len > i + type_len && line[i + type_len] != ' '))
                return 0;
        for (i += type_len; i < len;) { /* line[i] is the space before a key=value */
                size_t start = i + 1, n = 0;
                int r;

                while (start + n < len && line[start + n] != ' ')
                        n++;
                const char *w = line + start;
                /* The interval is clamped by the caller: any 32-bit number is read. */
                if ((r = field(w, n, agent_hello_keys[AGENT_HELLO_MIN].key, AGENT_VERSION_MAX,
                               &h.min)) > 0)
                        min = true;
                else if (r == 0 && (r = field(w, n, agent_hello_keys[AGENT_HELLO_MAX].key,
                                              AGENT_VERSION_MAX, &h.max)) > 0)
                        max = true;
                else if (r == 0 && (r = field(w, n, agent_hello_keys[AGENT_HELLO_INTERVAL_MS].key,
                                              UINT32_MAX, &h.interval_ms)) > 0)
                        h.has_interval = true;
                if (r < 0)
                        return r;
                i = start + n;
        }
        if (!min || !max || h.min < 1 || h.min > h.max)
                return -EINVAL;
        *ret = h;
        return 1;
}

uint32_t proto_choose(uint32_t my_min, uint32_t my_max, uint64_t host_min, uint64_t host_max)
{
        uint64_t hi = host_max < my_max ? host_max : my_max;
        uint64_t lo = host_min > my_min ? host_min : my_min;

        return hi >= lo ? (uint32_t)hi : 0;
}

/* Append to buf at *used; false (and nothing more appended) once it does not fit. */
static bool put(char *buf, size_t len, size_t *used, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static bool put(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
        va_list ap;
        int n;

        if (*used >= len)
                return false;
        va_start(ap, fmt);
        n = vsnprintf(buf + *used, len - *used, fmt, ap);
        va_end(ap);
        if (n < 0 || (size_t)n >= len - *used) {
                *used = len;
                return false;
        }
        *used += (size_t)n;
        return true;
}

/* " key=value" for a hello key. */
static bool put_hello_key(char *buf, size_t len, size_t *used, enum agent_hello_key k, uint64_t v)
{
        return put(buf, len, used, " %s=%" PRIu64, agent_hello_keys[k].key, v);
}

size_t proto_hello(const struct proto_offer *o, char *buf, size_t len)
{
        size_t used = 0;

        put(buf, len, &used, AGENT_MAGIC " " AGENT_TYPE_HELLO);
        put_hello_key(buf, len, &used, AGENT_HELLO_MIN, o->min);
        put_hello_key(buf, len, &used, AGENT_HELLO_MAX, o->max);
        if (!o->announce) {
                put_hello_key(buf, len, &used, AGENT_HELLO_VERSION, o->version);
                put_hello_key(buf, len, &used, AGENT_HELLO_INTERVAL_MS, o->interval_ms);
        }
        put(buf, len, &used, " %s=%s", agent_hello_keys[AGENT_HELLO_SOFTWARE].key, o->software);
        put_hello_key(buf, len, &used, AGENT_HELLO_PAGE_SIZE, o->page_size);
        for (unsigned i = 0; i < AGENT_N_CAPS; i++)
                put(buf, len, &used, " %s=%d", agent_caps_table[i].key,
                    (o->caps & agent_caps_table[i].cap) ? 1 : 0);
        if (!put(buf, len, &used, "\n") || used > AGENT_LINE_MAX)
                return 0;
        return used;
}

/* " key=value" for a report key. */
static bool put_key(char *buf, size_t len, size_t *used, enum agent_report_key k, uint64_t v)
{
        return put(buf, len, used, " %s=%" PRIu64, agent_report_keys[k].key, v);
}

/* The keys of one group, present together or not at all. */
static void put_group(char *buf, size_t len, size_t *used, bool present, enum agent_report_key a,
                      uint64_t va, enum agent_report_key b, uint64_t vb)
{
        if (!present)
                return;
        put_key(buf, len, used, a, va);
        put_key(buf, len, used, b, vb);
}

size_t proto_report(const struct sample *s, uint64_t seq, enum agent_cause cause, uint64_t onlined,
                    char *buf, size_t len)
{
        const struct psi_values *p = &s->psi;
        size_t used = 0;

        put(buf, len, &used, AGENT_MAGIC " " AGENT_TYPE_REPORT);
        put_key(buf, len, &used, AGENT_R_SEQ, seq);
        put_key(buf, len, &used, AGENT_R_TIME_MS, s->time_ms);
        put(buf, len, &used, " %s=%s", AGENT_CAUSE_KEY, agent_cause_names[cause]);
        put_key(buf, len, &used, AGENT_R_MEM_TOTAL, s->mem_total);
        put_key(buf, len, &used, AGENT_R_MEM_FREE, s->mem_free);
        put_key(buf, len, &used, AGENT_R_CACHED, s->cached);
        put_key(buf, len, &used, AGENT_R_ACTIVE_FILE, s->active_file);
        put_key(buf, len, &used, AGENT_R_COMMITTED, s->committed);
        put_key(buf, len, &used, AGENT_R_SWAP_USED, s->swap_used);
        if (s->have & AGENT_HAVE_SWAP)
                put_key(buf, len, &used, AGENT_R_SWAP_FREE, s->swap_free);
        if (s->have & AGENT_HAVE_AVAILABLE)
                put_key(buf, len, &used, AGENT_R_MEM_AVAILABLE, s->mem_available);
        put_group(buf, len, &used, s->have & AGENT_HAVE_BALLOON, AGENT_R_BALLOON, s->balloon,
                  AGENT_R_BALLOON_IN_TOTAL, s->balloon_in_total ? 1 : 0);
        put_group(buf, len, &used, s->have & AGENT_HAVE_PSI, AGENT_R_PSI_SOME_AVG10,
                  p->some_avg10_bp, AGENT_R_PSI_SOME_TOTAL, p->some_total_us);
        put_group(buf, len, &used, s->have & AGENT_HAVE_PSI_FULL, AGENT_R_PSI_FULL_AVG10,
                  p->full_avg10_bp, AGENT_R_PSI_FULL_TOTAL, p->full_total_us);
        put_key(buf, len, &used, AGENT_R_PGMAJFAULT, s->pgmajfault);
        put_key(buf, len, &used, AGENT_R_OOM_KILL, s->oom_kill);
        put_key(buf, len, &used, AGENT_R_ONLINED, onlined);
        if (s->have & AGENT_HAVE_REFAULTS)
                put_key(buf, len, &used, AGENT_R_REFAULTS, s->refaults);
        if (s->have & AGENT_HAVE_RECLAIM)
                put_key(buf, len, &used, AGENT_R_FILE_RECLAIMED, s->file_reclaimed);
        put_group(buf, len, &used, s->have & AGENT_HAVE_SELF, AGENT_R_SELF_RSS, s->self_rss,
                  AGENT_R_SELF_CPU, s->self_cpu_us);
        if (s->have & AGENT_HAVE_ABSORBER) {
                put_key(buf, len, &used, AGENT_R_ABSORBER, s->absorber_stored);
                put_key(buf, len, &used, AGENT_R_ABSORBER_RAM, s->absorber_ram);
                put_key(buf, len, &used, AGENT_R_ABSORBER_SIZE, s->absorber_capacity);
        }
        if (!put(buf, len, &used, "\n") || used > AGENT_LINE_MAX)
                return 0;
        return used;
}
