/*
 * proto: host hello parsing and the agent's lines. The host is the more
 * trusted side, but its lines are still bounded and range-checked.
 */
#include "proto.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "agent.h"
#include "util.h"

static bool word_char(char ch)
{
        return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '.' ||
               ch == '-' || ch == '=';
}

static int num(const char *s, size_t n, uint64_t max, uint64_t *ret)
{
        const char *end;
        uint64_t v;

        if (n == 0 || n > 20 || util_parse_u64(s, &end, &v) < 0 || (size_t)(end - s) != n ||
            v > max || s[0] == ' ')
                return -EINVAL;
        *ret = v;
        return 0;
}

/* "key=value" at s (n bytes): value into ret when key matches. 1 = matched, 0 = other key. */
static int field(const char *s, size_t n, const char *key, uint64_t max, uint64_t *ret)
{
        size_t k = strlen(key);

        if (n <= k + 1 || memcmp(s, key, k) != 0 || s[k] != '=')
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
        i = sizeof(prefix) - 1;
        if (len - i < 5 || memcmp(line + i, "hello", 5) != 0 || (len > i + 5 && line[i + 5] != ' '))
                return 0;
        for (i += 5; i < len;) { /* line[i] is the space before a key=value */
                size_t start = i + 1, n = 0;
                int r;

                while (start + n < len && line[start + n] != ' ')
                        n++;
                const char *w = line + start;
                if ((r = field(w, n, "min", 1000, &h.min)) > 0)
                        min = true;
                else if (r == 0 && (r = field(w, n, "max", 1000, &h.max)) > 0)
                        max = true;
                else if (r == 0 && (r = field(w, n, "interval_ms", UINT32_MAX, &h.interval_ms)) > 0)
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

size_t proto_hello(const struct proto_offer *o, char *buf, size_t len)
{
        static const struct {
                const char *key;
                unsigned cap;
        } caps[] = {
            {"balloon", AGENT_CAP_BALLOON},
            {"virtio_mem", AGENT_CAP_VIRTIO_MEM},
            {"psi", AGENT_CAP_PSI},
            {"psi_trigger", AGENT_CAP_PSI_TRIGGER},
            {"online_movable", AGENT_CAP_ONLINE_MOVABLE},
        };
        size_t used = 0;

        put(buf, len, &used, AGENT_MAGIC " hello min=%u max=%u", o->min, o->max);
        if (!o->announce)
                put(buf, len, &used, " version=%u interval_ms=%" PRIu64, o->version,
                    o->interval_ms);
        put(buf, len, &used, " agent=%s page_size=%" PRIu64, o->software, o->page_size);
        for (unsigned i = 0; i < sizeof(caps) / sizeof(caps[0]); i++)
                put(buf, len, &used, " %s=%d", caps[i].key, (o->caps & caps[i].cap) ? 1 : 0);
        if (!put(buf, len, &used, "\n") || used > AGENT_LINE_MAX)
                return 0;
        return used;
}

size_t proto_report(const struct sample *s, uint64_t seq, const char *cause, uint64_t onlined,
                    char *buf, size_t len)
{
        size_t used = 0;

        put(buf, len, &used,
            AGENT_MAGIC " report seq=%" PRIu64 " time_ms=%" PRIu64 " cause=%s"
                        " mem_total_bytes=%" PRIu64 " mem_free_bytes=%" PRIu64
                        " cached_bytes=%" PRIu64 " active_file_bytes=%" PRIu64
                        " committed_bytes=%" PRIu64 " swap_used_bytes=%" PRIu64,
            seq, s->time_ms, cause, s->mem_total, s->mem_free, s->cached, s->active_file,
            s->committed, s->swap_used);
        if (s->have & AGENT_HAVE_AVAILABLE)
                put(buf, len, &used, " mem_available_bytes=%" PRIu64, s->mem_available);
        if (s->have & AGENT_HAVE_BALLOON)
                put(buf, len, &used, " balloon_bytes=%" PRIu64 " balloon_in_total=%d", s->balloon,
                    s->balloon_in_total ? 1 : 0);
        if (s->have & AGENT_HAVE_PSI)
                put(buf, len, &used, " psi_some_avg10_bp=%" PRIu64 " psi_some_total_us=%" PRIu64,
                    s->psi.some_avg10_bp, s->psi.some_total_us);
        if (s->have & AGENT_HAVE_PSI_FULL)
                put(buf, len, &used, " psi_full_avg10_bp=%" PRIu64 " psi_full_total_us=%" PRIu64,
                    s->psi.full_avg10_bp, s->psi.full_total_us);
        put(buf, len, &used, " pgmajfault=%" PRIu64 " oom_kill=%" PRIu64 " onlined=%" PRIu64,
            s->pgmajfault, s->oom_kill, onlined);
        if (s->have & AGENT_HAVE_REFAULTS)
                put(buf, len, &used, " refaults=%" PRIu64, s->refaults);
        if (s->have & AGENT_HAVE_SELF)
                put(buf, len, &used, " self_rss_bytes=%" PRIu64 " self_cpu_us=%" PRIu64,
                    s->self_rss, s->self_cpu_us);
        if (!put(buf, len, &used, "\n") || used > AGENT_LINE_MAX)
                return 0;
        return used;
}
