/*
 * psi: memory pressure figures and the "started to stall" event, from a PSI
 * trigger or, without one, from polling the file while pressure lasts.
 */
#include "psi.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "util.h"

#define PSI_PATH         "/proc/pressure/memory"
#define PROC_SUPER_MAGIC 0x9fa0

/* Arm the trigger on fd; false when this is not procfs (tests) or the kernel refuses. */
static bool arm_trigger(int fd)
{
        struct statfs fs;

        if (fstatfs(fd, &fs) < 0 || fs.f_type != PROC_SUPER_MAGIC)
                return false;
        /* The kernel takes the string with its NUL. */
        return write(fd, PSI_TRIGGER, sizeof(PSI_TRIGGER)) == (ssize_t)sizeof(PSI_TRIGGER);
}

void psi_open(struct psi *p, bool events)
{
        char path[UTIL_PATH_MAX];

        memset(p, 0, sizeof(*p));
        p->read_fd = p->trigger_fd = -1;
        p->events_off = !events;
        if (!util_path(path, PSI_PATH))
                return;
        p->read_fd = open(path, O_RDONLY | O_CLOEXEC);
        if (p->read_fd < 0 || p->events_off)
                return;
        p->trigger_fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
        if (p->trigger_fd < 0)
                return;
        if (!arm_trigger(p->trigger_fd)) {
                close(p->trigger_fd);
                p->trigger_fd = -1;
        }
}

void psi_close(struct psi *p)
{
        if (p->read_fd >= 0)
                close(p->read_fd);
        if (p->trigger_fd >= 0)
                close(p->trigger_fd);
        p->read_fd = p->trigger_fd = -1;
}

bool psi_available(const struct psi *p)
{
        return p->read_fd >= 0;
}

bool psi_has_trigger(const struct psi *p)
{
        return p->trigger_fd >= 0;
}

/* "avg10=12.34" -> 1234 basis points; "total=N" -> N. */
static int psi_line(const char *line, uint64_t *avg10_bp, uint64_t *total)
{
        const char *a = strstr(line, "avg10="), *t = strstr(line, "total="), *end;
        const char *nl = strchr(line, '\n');
        uint64_t whole, frac = 0;

        if (!a || !t || (nl && (a > nl || t > nl)))
                return -EINVAL;
        if (util_parse_u64(a + 6, &end, &whole) < 0 || whole > 100)
                return -EINVAL;
        if (*end == '.') {
                const char *f = end + 1;
                if (f[0] < '0' || f[0] > '9' || f[1] < '0' || f[1] > '9')
                        return -EINVAL;
                frac = (uint64_t)(f[0] - '0') * 10 + (uint64_t)(f[1] - '0');
        }
        *avg10_bp = whole * 100 + frac;
        if (*avg10_bp > 10000)
                *avg10_bp = 10000;
        return util_parse_u64(t + 6, NULL, total);
}

int psi_parse(const char *text, struct psi_values *ret)
{
        struct psi_values v = {0};
        const char *full;

        if (strncmp(text, "some ", 5) != 0 ||
            psi_line(text, &v.some_avg10_bp, &v.some_total_us) < 0)
                return -EINVAL;
        full = strstr(text, "\nfull ");
        if (full && psi_line(full + 1, &v.full_avg10_bp, &v.full_total_us) == 0)
                v.have_full = true;
        *ret = v;
        return 0;
}

int psi_read(struct psi *p, struct psi_values *ret)
{
        char buf[512];
        long n;

        if (p->read_fd < 0)
                return -ENOENT;
        n = util_pread_all(p->read_fd, buf, sizeof(buf));
        if (n < 0)
                return (int)n;
        return psi_parse(buf, ret);
}

int psi_poll_fd(const struct psi *p)
{
        return p->trigger_fd;
}

int psi_timeout(const struct psi *p, uint64_t now_ms)
{
        if (p->events_off || p->trigger_fd >= 0 || p->read_fd < 0 || !p->polling)
                return -1;
        return p->next_poll_ms > now_ms ? (int)(p->next_poll_ms - now_ms) : 0;
}

static bool psi_event(struct psi *p, uint64_t now_ms)
{
        if (p->last_event_ms && now_ms - p->last_event_ms < PSI_WINDOW_MS)
                return false;
        p->last_event_ms = now_ms;
        return true;
}

/* Fallback: the stall added within the current window crossed the threshold. */
static bool psi_poll_once(struct psi *p, uint64_t now_ms)
{
        struct psi_values v;

        p->next_poll_ms = now_ms + PSI_POLL_MS;
        if (psi_read(p, &v) < 0)
                return false;
        /*
         * A new window starts from the fallback's own previous reading, not from
         * the last periodic report's: a report that read the stall first must not
         * hide its growth from the poll that follows.
         */
        if (v.some_total_us < p->window_start_us || now_ms - p->window_start_ms >= PSI_WINDOW_MS) {
                p->window_start_ms = now_ms;
                p->window_start_us = p->poll_last_us && p->poll_last_us <= v.some_total_us
                                         ? p->poll_last_us
                                         : v.some_total_us;
        }
        p->poll_last_us = p->last_total_us = v.some_total_us;
        if (v.some_total_us - p->window_start_us >= PSI_THRESHOLD_US) {
                p->window_start_us = v.some_total_us;
                p->window_start_ms = now_ms;
                return psi_event(p, now_ms);
        }
        return false;
}

bool psi_check(struct psi *p, short trigger_revents, uint64_t now_ms)
{
        if (p->events_off)
                return false;
        if (p->trigger_fd >= 0) {
                if (trigger_revents & POLLERR) { /* the trigger is gone: fall back */
                        close(p->trigger_fd);
                        p->trigger_fd = -1;
                        util_log("PSI trigger failed, polling %s instead", PSI_PATH);
                        return false;
                }
                return (trigger_revents & POLLPRI) && psi_event(p, now_ms);
        }
        if (psi_timeout(p, now_ms) != 0)
                return false;
        return psi_poll_once(p, now_ms);
}

void psi_note(struct psi *p, const struct psi_values *v, uint64_t now_ms)
{
        bool pressure = v->some_avg10_bp > 0 || v->some_total_us != p->last_total_us;

        if (p->events_off || p->trigger_fd >= 0)
                return;
        if (pressure && !p->polling) {
                p->polling = true;
                p->next_poll_ms = now_ms + PSI_POLL_MS;
                p->window_start_ms = now_ms;
                p->window_start_us = p->last_total_us ? p->last_total_us : v->some_total_us;
                p->poll_last_us = p->window_start_us;
        }
        if (!pressure)
                p->polling = false;
        p->last_total_us = v->some_total_us;
}
