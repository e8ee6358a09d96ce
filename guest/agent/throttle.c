/*
 * throttle: memory.high on the workload's cgroups while the guest is short
 * and a host is there to plug more (throttle.h). The cgroups are looked up again at
 * every engagement (a service or session may have started since), with
 * getdents64 on a static buffer: the agent allocates nothing after start.
 */
#include "throttle.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "util.h"

#define DEPTH_MAX 4

struct linux_dirent64 {
        uint64_t d_ino;
        int64_t d_off;
        unsigned short d_reclen;
        unsigned char d_type;
        char d_name[];
};

static char root[UTIL_PATH_MAX - 128]; /* the cgroup v2 mount, as given */
static char own[256];                  /* the agent's cgroup, relative ("" = the root) */

/* root + "/" + rel + "/" + file (file may be NULL), as util_read_file() takes it. */
static char *cg_file(char *buf, size_t len, const char *rel, const char *file)
{
        int n = snprintf(buf, len, "%s%s%s%s%s", root, *rel ? "/" : "", rel, file ? "/" : "",
                         file ? file : "");

        return n > 0 && (size_t)n < len ? buf : NULL;
}

static bool cg_has(const char *rel, const char *file)
{
        char f[UTIL_PATH_MAX], p[UTIL_PATH_MAX];

        return cg_file(f, sizeof(f), rel, file) && util_path(p, f) && access(p, F_OK) == 0;
}

/* Whether rel is the agent's cgroup or one of its ancestors. */
static bool on_own_branch(const char *rel)
{
        size_t n = strlen(rel);

        return strncmp(own, rel, n) == 0 && (own[n] == '\0' || own[n] == '/');
}

static void add(struct throttle *t, const char *rel)
{
        if (t->count < THROTTLE_CGROUPS_MAX && strlen(rel) < sizeof(t->paths[0]))
                snprintf(t->paths[t->count++], sizeof(t->paths[0]), "%s", rel);
}

/* The children of rel: each off the agent's branch with memory.high, and into the branch. */
static void walk(struct throttle *t, const char *rel, int depth)
{
        static char bufs[DEPTH_MAX + 1][4096]; /* one a level: the walk recurses mid-listing */
        char *buf = bufs[depth < DEPTH_MAX ? depth : DEPTH_MAX];
        char f[UTIL_PATH_MAX], p[UTIL_PATH_MAX], child[256];
        int fd;
        long n;

        if (depth > DEPTH_MAX || !cg_file(f, sizeof(f), rel, NULL) || !util_path(p, f) ||
            (fd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
                return;
        while ((n = syscall(SYS_getdents64, fd, buf, sizeof(bufs[0]))) > 0) {
                for (long off = 0; off < n;) {
                        struct linux_dirent64 *d = (struct linux_dirent64 *)(buf + off);
                        off += d->d_reclen;
                        if (d->d_type != DT_DIR || d->d_name[0] == '.')
                                continue;
                        if (snprintf(child, sizeof(child), "%s%s%s", rel, *rel ? "/" : "",
                                     d->d_name) >= (int)sizeof(child))
                                continue;
                        if (on_own_branch(child))
                                walk(t, child, depth + 1);
                        else if (!(depth == 0 && strcmp(d->d_name, "init.scope") == 0) &&
                                 cg_has(child, "memory.high"))
                                add(t, child);
                }
        }
        close(fd);
}

/* The agent's cgroup from /proc/self/cgroup ("0::/path"); false without cgroup v2. */
static bool find_own(void)
{
        char buf[1024], *p;

        if (util_read_file("/proc/self/cgroup", buf, sizeof(buf)) <= 0 ||
            !(p = strstr(buf, "0::/")))
                return false;
        p += 4;
        p[strcspn(p, "\n")] = '\0';
        snprintf(own, sizeof(own), "%s", p);
        return true;
}

/* Look the workload's cgroups up (again). */
static void rescan(struct throttle *t)
{
        t->count = 0;
        walk(t, "", 0);
}

/* A memory.high value as the kernel writes it: "max" or digits. */
static bool high_ok(const char *v)
{
        return strcmp(v, "max") == 0 || (*v && strspn(v, "0123456789") == strlen(v));
}

/* Note each cgroup's memory.high before the limit, for a successor should this agent die. */
static void save_state(const struct throttle *t)
{
        static char text[THROTTLE_CGROUPS_MAX * (THROTTLE_HIGH_LEN + 98)];
        char path[UTIL_PATH_MAX];
        size_t n = 0;
        int fd;

        for (unsigned i = 0; i < t->count; i++)
                if (t->prev[i][0])
                        n += (size_t)snprintf(text + n, sizeof(text) - n, "%s %s\n", t->prev[i],
                                              t->paths[i]);
        if (util_path(path, THROTTLE_STATE_DIR))
                mkdir(path, 0755); /* systemd's RuntimeDirectory= may have made it */
        if (!util_path(path, THROTTLE_STATE_FILE) ||
            (fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
                return;
        if (write(fd, text, n) != (ssize_t)n)
                util_log("throttle: cannot write " THROTTLE_STATE_FILE);
        close(fd);
}

static void drop_state(void)
{
        char path[UTIL_PATH_MAX];

        if (util_path(path, THROTTLE_STATE_FILE))
                unlink(path);
}

/* Put back the memory.high values a predecessor noted ("VALUE PATH" lines); how many. */
static unsigned restore_state(void)
{
        static char text[THROTTLE_CGROUPS_MAX * (THROTTLE_HIGH_LEN + 98) + 1];
        char f[UTIL_PATH_MAX];
        unsigned n = 0;

        if (util_read_file(THROTTLE_STATE_FILE, text, sizeof(text)) <= 0)
                return 0;
        for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
                char *rel = strchr(line, ' ');
                if (!rel)
                        continue;
                *rel++ = '\0';
                if (!high_ok(line) || !*rel || strstr(rel, "..") || rel[0] == '/' ||
                    !cg_file(f, sizeof(f), rel, "memory.high"))
                        continue;
                if (util_write_file(f, line) == 0)
                        n++;
        }
        drop_state();
        return n;
}

bool throttle_open(struct throttle *t, const char *root_dir, bool off)
{
        char ctl[256], f[UTIL_PATH_MAX];

        memset(t, 0, sizeof(*t));
        snprintf(root, sizeof(root), "%s", root_dir);
        t->restored = restore_state();
        if (t->restored)
                util_log("throttle: put back memory.high of %u cgroup%s a previous run left "
                         "throttled",
                         t->restored, t->restored == 1 ? "" : "s");
        if (off)
                snprintf(t->why_off, sizeof(t->why_off), "turned off");
        else if (!cg_file(f, sizeof(f), "", "cgroup.subtree_control") ||
                 util_read_file(f, ctl, sizeof(ctl)) < 0)
                snprintf(t->why_off, sizeof(t->why_off), "no cgroup v2 at %s", root_dir);
        else if (!strstr(ctl, "memory"))
                snprintf(t->why_off, sizeof(t->why_off),
                         "no memory controller for the children of %s", root_dir);
        else if (!find_own())
                snprintf(t->why_off, sizeof(t->why_off), "no cgroup v2 line in /proc/self/cgroup");
        else
                t->enabled = true;
        if (t->enabled) {
                rescan(t);
                if (!t->count) {
                        snprintf(t->why_off, sizeof(t->why_off), "no workload cgroup under %s",
                                 root_dir);
                        t->enabled = false;
                }
        }
        return t->enabled;
}

/* The number in a small cgroup file, or false. */
static bool read_u64(const char *rel, const char *file, uint64_t *ret)
{
        char f[UTIL_PATH_MAX], buf[32];

        return cg_file(f, sizeof(f), rel, file) && util_read_file(f, buf, sizeof(buf)) > 0 &&
               util_parse_u64(buf, NULL, ret) == 0;
}

/*
 * memory.high of every workload cgroup to what it holds now, never above what it was (someone
 * else's limit stays); what it was is kept for the lift, and noted for a successor before the
 * first write (an agent killed among the writes leaves none unnoted).
 */
static void limit_all(struct throttle *t)
{
        char f[UTIL_PATH_MAX], buf[THROTTLE_HIGH_LEN];
        uint64_t cur, high;

        t->lowered = 0;
        for (unsigned i = 0; i < t->count; i++) {
                const char *rel = t->paths[i];
                t->prev[i][0] = '\0';
                t->high[i] = 0;
                if (!cg_file(f, sizeof(f), rel, "memory.high") ||
                    util_read_file(f, buf, sizeof(buf)) <= 0)
                        continue;
                buf[strcspn(buf, "\n")] = '\0';
                if (!high_ok(buf) || !read_u64(rel, "memory.current", &cur))
                        continue;
                if (util_parse_u64(buf, NULL, &high) == 0 && high <= cur)
                        continue; /* at or below what it holds already: left alone */
                snprintf(t->prev[i], sizeof(t->prev[i]), "%s", buf);
                t->high[i] = cur;
                t->floor[i] = cur / 2;
        }
        save_state(t);
        for (unsigned i = 0; i < t->count; i++)
                if (t->prev[i][0] && cg_file(f, sizeof(f), t->paths[i], "memory.high")) {
                        snprintf(buf, sizeof(buf), "%" PRIu64, t->high[i]);
                        util_write_file(f, buf);
                }
}

/*
 * While engaged: MemFree below mem_total / THROTTLE_SHORT_DIV lowers the limits we set by
 * what it lacks, shared out by what each holds (never below half of that), so that the
 * workload puts that much more of its own pages into the absorber and the RAM they leave
 * stays free for the kernel (a block being added needs its memory map from it; zram's own
 * pages come from it too). With the absorber full nothing more can leave, and the lower
 * limit only holds the workload harder. The write makes the kernel reclaim in this process:
 * at most the deficit, a share of MemTotal.
 */
static void keep_free(struct throttle *t, uint64_t mem_total, uint64_t mem_free)
{
        uint64_t want = mem_total / THROTTLE_SHORT_DIV, sum = 0, cut;
        char f[UTIL_PATH_MAX], buf[THROTTLE_HIGH_LEN];

        if (mem_free >= want)
                return;
        for (unsigned i = 0; i < t->count; i++)
                sum += t->high[i];
        for (unsigned i = 0; i < t->count && sum; i++) {
                if (!t->high[i] || t->high[i] <= t->floor[i])
                        continue;
                cut = (uint64_t)((unsigned __int128)(want - mem_free) * t->high[i] / sum);
                if (cut > t->high[i] - t->floor[i])
                        cut = t->high[i] - t->floor[i];
                if (!cut || !cg_file(f, sizeof(f), t->paths[i], "memory.high"))
                        continue;
                t->high[i] -= cut;
                t->lowered += cut;
                snprintf(buf, sizeof(buf), "%" PRIu64, t->high[i]);
                util_write_file(f, buf);
        }
}

/* memory.high of every cgroup limited back to what it was. */
static void lift_all(struct throttle *t)
{
        char f[UTIL_PATH_MAX];

        for (unsigned i = 0; i < t->count; i++)
                if (t->prev[i][0] && cg_file(f, sizeof(f), t->paths[i], "memory.high"))
                        util_write_file(f, t->prev[i]);
        drop_state();
}

/* Lift an engaged throttle; the log says after how long and why. */
static void lift(struct throttle *t, uint64_t now_ms, const char *why)
{
        lift_all(t);
        t->engaged = false;
        util_log("throttle: lifted after %" PRIu64 " ms (%s; lowered by %" PRIu64
                 " MiB to keep RAM free)",
                 now_ms - t->since_ms, why, t->lowered >> 20);
}

void throttle_run(struct throttle *t, bool host, bool stalled, uint64_t mem_total,
                  uint64_t mem_available, uint64_t mem_free, uint64_t now_ms)
{
        if (!t->enabled)
                return;
        if (!t->engaged) {
                if (t->held_off && (mem_available >= mem_total / THROTTLE_ROOM_DIV ||
                                    mem_total > t->mem_total_then))
                        t->held_off = false;
                if (!host || t->held_off || !stalled ||
                    mem_available >= mem_total / THROTTLE_SHORT_DIV)
                        return;
                rescan(t);
                limit_all(t);
                t->engaged = true;
                t->since_ms = now_ms;
                t->mem_total_then = mem_total;
                keep_free(t, mem_total, mem_free);
                return;
        }
        if (!host) {
                throttle_host_gone(t, now_ms);
                return;
        }
        bool room = mem_available >= mem_total / THROTTLE_ROOM_DIV;
        if (!room && now_ms < t->since_ms + THROTTLE_MAX_MS) {
                keep_free(t, mem_total, mem_free);
                return;
        }
        t->held_off = !room && mem_total <= t->mem_total_then;
        lift(t, now_ms,
             !room                           ? "nothing came"
             : mem_total > t->mem_total_then ? "memory came"
                                             : "room again");
}

void throttle_host_gone(struct throttle *t, uint64_t now_ms)
{
        if (t->engaged)
                lift(t, now_ms, "the host went away");
}

void throttle_close(struct throttle *t)
{
        if (!t->engaged)
                return;
        lift_all(t);
        t->engaged = false;
        util_log("throttle: lifted (the agent stops)");
}
