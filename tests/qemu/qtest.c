/*
 * qtest: helpers for the QEMU tests. See qtest.h.
 */
#include "qtest.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <cmocka.h>

#include "qemu.h"

extern char **environ;

char *qt_tempdir(void)
{
        const char *tmp = getenv("TMPDIR");
        char *dir;

        if (asprintf(&dir, "%s/dmq.XXXXXX", tmp && *tmp && strlen(tmp) < 40 ? tmp : "/tmp") < 0)
                abort();
        if (!mkdtemp(dir))
                abort();
        return dir;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st, (void)flag, (void)ftw;
        return remove(path);
}

void qt_rmtree(char *dir)
{
        if (!dir)
                return;
        nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
        free(dir);
}

static char *read_file(const char *path)
{
        FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t cap = 0, n = 0, got;

        if (!f)
                return NULL;
        do {
                if (n + 4096 + 1 > cap && !(buf = realloc(buf, cap = cap * 2 + 8192)))
                        abort();
                got = fread(buf + n, 1, 4096, f);
                n += got;
        } while (got > 0);
        fclose(f);
        buf[n] = '\0';
        return buf;
}

void qt_kill_leftovers(const char *run_dir)
{
        DIR *d = opendir(run_dir);
        struct dirent *e;
        char top[4096];

        if (!d)
                return;
        /* The test's folder: QEMU's command line names its console log there. */
        snprintf(top, sizeof(top), "%s", run_dir);
        if (strrchr(top, '/'))
                *strrchr(top, '/') = '\0';
        while ((e = readdir(d))) {
                size_t n = strlen(e->d_name);
                char path[4096], buf[32] = "";
                FILE *f;
                if (n < 5 || strcmp(e->d_name + n - 4, ".pid") != 0)
                        continue;
                snprintf(path, sizeof(path), "%s/%s", run_dir, e->d_name);
                if (!(f = fopen(path, "re")))
                        continue;
                pid_t pid = fgets(buf, sizeof(buf), f) ? (pid_t)atoi(buf) : 0;
                char proc[64], all[65536];
                size_t len = 0;
                FILE *c;
                snprintf(proc, sizeof(proc), "/proc/%d/cmdline", (int)pid);
                if (pid > 1 && (c = fopen(proc, "re"))) {
                        len = fread(all, 1, sizeof(all) - 1, c);
                        fclose(c);
                }
                all[len] = '\0';
                for (size_t i = 0; i < len; i++)
                        all[i] = all[i] ? all[i] : ' ';
                /* Only a process whose command line names this folder: pids get reused. */
                if (len && strstr(all, top) && kill(pid, SIGKILL) == 0)
                        waitpid(pid, NULL, 0);
                fclose(f);
        }
        closedir(d);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
        (void)fd, (void)what, (void)arg;
}

bool qt_loop_until(struct event_base *base, bool (*cond)(void *), void *arg, uint64_t timeout_ms)
{
        uint64_t deadline = mono_ms() + timeout_ms;
        struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, NULL);
        struct timeval tv = {.tv_sec = 0, .tv_usec = 50000};
        bool ok;

        event_add(tick, &tv);
        while (!(ok = cond(arg)) && mono_ms() < deadline)
                event_base_loop(base, EVLOOP_ONCE);
        event_free(tick);
        return ok;
}

struct start_wait {
        struct backend *b;
        struct vm *vm;
        char *err;
        size_t len;
        int r;
};

static bool start_ended(void *arg)
{
        struct start_wait *w = arg;

        w->r = w->b->ops->start_result(w->b, w->vm, w->err, w->len);
        return w->r != 0;
}

int qt_start(struct event_base *base, struct backend *b, struct vm *vm, char *err, size_t len)
{
        struct start_wait w = {.b = b, .vm = vm, .err = err, .len = len};
        int r = b->ops->start(b, vm, mono_ms(), err, len);

        if (r != BACKEND_START_PENDING)
                return r;
        if (!qt_loop_until(base, start_ended, &w, 120 * 1000)) {
                snprintf(err, len, "the start did not end within 120 s");
                return -ETIMEDOUT;
        }
        return w.r < 0 ? w.r : 0;
}

static bool never(void *arg)
{
        (void)arg;
        return false;
}

void qt_loop_for(struct event_base *base, uint64_t ms)
{
        qt_loop_until(base, never, NULL, ms);
}

static bool image_in(const char *dir)
{
        char k[4096], i[4096];

        snprintf(k, sizeof(k), "%s/vmlinuz", dir);
        snprintf(i, sizeof(i), "%s/initrd.img", dir);
        return access(k, R_OK) == 0 && access(i, R_OK) == 0;
}

/* Run guest/image/build.sh OUT PROGRAMS..., its output into OUT.log. */
static int build_image(const char *src, const char *out, char *const *programs, char *why,
                       size_t len)
{
        char script[4096], log[4096];
        posix_spawn_file_actions_t fa;
        char *argv[16] = {script, (char *)out};
        size_t n = 2;
        pid_t pid;
        int status = 0, r;

        snprintf(script, sizeof(script), "%s/guest/image/build.sh", src);
        snprintf(log, sizeof(log), "%s.log", out);
        for (; programs && *programs && n < sizeof(argv) / sizeof(*argv) - 1; programs++)
                argv[n++] = *programs;
        argv[n] = NULL;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        r = posix_spawn(&pid, script, &fa, NULL, argv, environ);
        posix_spawn_file_actions_destroy(&fa);
        if (r != 0) {
                snprintf(why, len, "cannot run %s: %s", script, strerror(r));
                return -r;
        }
        waitpid(pid, &status, 0);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !image_in(out)) {
                snprintf(why, len, "the guest image could not be built (%s failed, see %s)", script,
                         log);
                return -EIO;
        }
        return 0;
}

const char *qt_guest_image(char *why, size_t len)
{
        static char dir[4096];
        const char *env = getenv(QEMU_GUEST_IMAGE_ENV), *build = getenv("DYNMEM_BUILD_ROOT");
        const char *src = getenv("DYNMEM_SOURCE_ROOT"), *own = getenv("DYNMEM_TEST_IMAGE_DIR");

        if (dir[0])
                return dir;
        if (env && *env && image_in(env))
                snprintf(dir, sizeof(dir), "%s", env);
        else if (build && snprintf(dir, sizeof(dir), "%s/guest", build) > 0 && image_in(dir))
                ;
        else if (own && image_in(own))
                snprintf(dir, sizeof(dir), "%s", own);
        else if (!src || !own) {
                snprintf(why, len,
                         "no guest image and DYNMEM_SOURCE_ROOT/DYNMEM_TEST_IMAGE_DIR "
                         "unset (run through meson test)");
                return NULL;
        } else if (build_image(src, own, NULL, why, len) == 0) {
                snprintf(dir, sizeof(dir), "%s", own);
        } else {
                dir[0] = '\0';
                return NULL;
        }
        setenv(QEMU_GUEST_IMAGE_ENV, dir, 1);
        return dir;
}

/* Give out/cache a hard link to the kernel package another image folder already fetched. */
static void share_kernel(const char *out, const char *other)
{
        char dir[4096], from[8192], to[8192];
        struct dirent *e;
        DIR *d;

        snprintf(dir, sizeof(dir), "%s/cache", out);
        mkdir(out, 0755);
        mkdir(dir, 0755);
        if (!other || !(d = opendir(dir)))
                return;
        while ((e = readdir(d)))
                if (strstr(e->d_name, ".deb")) {
                        closedir(d);
                        return;
                }
        closedir(d);
        snprintf(dir, sizeof(dir), "%s/cache", other);
        if (!(d = opendir(dir)))
                return;
        while ((e = readdir(d))) {
                if (strncmp(e->d_name, "linux-image-", 12) != 0 || !strstr(e->d_name, ".deb"))
                        continue;
                snprintf(from, sizeof(from), "%s/%s", dir, e->d_name);
                snprintf(to, sizeof(to), "%s/cache/%s", out, e->d_name);
                link(from, to);
        }
        closedir(d);
}

const char *qt_guest_image_built(bool with_programs, char *why, size_t len)
{
        static char dirs[2][4096];
        const char *src = getenv("DYNMEM_SOURCE_ROOT"), *plain = getenv("DYNMEM_TEST_IMAGE_DIR");
        const char *agent = getenv("DYNMEM_TEST_AGENT_IMAGE_DIR");
        const char *list = getenv("DYNMEM_TEST_GUEST_PROGRAMS");
        const char *out = with_programs ? agent : plain;
        char *dir = dirs[with_programs], *copy = NULL, *programs[8] = {NULL}, *save = NULL;
        size_t n = 0;

        if (dir[0])
                return dir;
        if (!src || !out || (with_programs && !list)) {
                snprintf(why, len,
                         "DYNMEM_SOURCE_ROOT, DYNMEM_TEST_IMAGE_DIR, DYNMEM_TEST_AGENT_IMAGE_DIR "
                         "or DYNMEM_TEST_GUEST_PROGRAMS unset (run through meson test)");
                return NULL;
        }
        if (with_programs && (copy = strdup(list)))
                for (char *p = strtok_r(copy, ":", &save); p && n < 7;
                     p = strtok_r(NULL, ":", &save))
                        programs[n++] = p;
        share_kernel(out, with_programs ? plain : agent);
        int r = build_image(src, out, programs, why, len);
        free(copy);
        if (r < 0)
                return NULL;
        snprintf(dir, sizeof(dirs[0]), "%s", out);
        return dir;
}

bool qt_file_contains(const char *path, const char *needle)
{
        char *text = read_file(path);
        bool found = text && strstr(text, needle);

        free(text);
        return found;
}

unsigned qt_file_count(const char *path, const char *needle)
{
        char *text = read_file(path);
        unsigned n = 0;

        for (const char *p = text; p && (p = strstr(p, needle)); p += strlen(needle))
                n++;
        free(text);
        return n;
}

uint64_t qt_console_memtotal(const char *path)
{
        char *text = read_file(path), *p, *last = NULL;
        unsigned long long kb = 0;

        for (p = text; p && (p = strstr(p, "MemTotal=")); p++)
                last = p;
        if (last)
                sscanf(last, "MemTotal=%llu kB", &kb);
        free(text);
        return (uint64_t)kb * 1024;
}

int qt_console_load(const char *path, uint64_t *ret_held, uint64_t *ret_target,
                    unsigned *ret_repeats)
{
        static const char tag[] = "dynmem-load: holding ";
        char *text = read_file(path), *p;
        unsigned long long held = 0, target = 0, h, t;
        unsigned repeats = 0;
        bool any = false;

        for (p = text; p && (p = strstr(p, tag)); p++) {
                if (sscanf(p + sizeof(tag) - 1, "%llu MiB (target %llu MiB)", &h, &t) != 2)
                        continue;
                repeats = any && h == held && t == target ? repeats + 1 : 1;
                held = h, target = t, any = true;
        }
        free(text);
        if (!any)
                return -ENOENT;
        *ret_held = (uint64_t)held << 20;
        *ret_target = (uint64_t)target << 20;
        *ret_repeats = repeats;
        return 0;
}

int qt_vm_configure(struct qt_vm *t, struct backend *b, const char *ini, char *err, size_t len)
{
        struct config_diag diag = {0};
        int r;

        memset(t, 0, sizeof(*t));
        r = config_load_string("test.ini", ini, &t->cfg, &diag);
        if (r == 0 && t->cfg.n_vms < 1)
                r = -EINVAL;
        if (r < 0) {
                snprintf(err, len, "%s", diag.count ? diag.messages[0] : "bad config");
                config_diag_free(&diag);
                return r;
        }
        config_diag_free(&diag);
        snprintf(t->vm.name, sizeof(t->vm.name), "%s", t->cfg.vms[0].name);
        t->vm.settings = t->cfg.vms[0].settings;
        return b->ops->configure_vm(b, &t->vm, &t->cfg, &t->cfg.vms[0], err, len);
}

void qt_vm_release(struct qt_vm *t, struct backend *b)
{
        if (b)
                b->ops->forget_vm(b, &t->vm);
        config_free(&t->cfg);
}

bool qt_qemu_version(unsigned ret[3])
{
        FILE *p = popen("qemu-system-x86_64 --version 2>/dev/null", "r");
        char line[256] = "";
        bool ok;

        if (!p)
                return false;
        if (!fgets(line, sizeof(line), p))
                line[0] = '\0';
        pclose(p);
        ok = sscanf(line, "QEMU emulator version %u.%u.%u", &ret[0], &ret[1], &ret[2]) == 3;
        return ok;
}

bool qt_version_at_least(const unsigned v[3], unsigned major, unsigned minor)
{
        return v[0] > major || (v[0] == major && v[1] >= minor);
}

size_t qt_select_cases(struct CMUnitTest *tests, size_t n)
{
        const char *env = getenv("DYNMEM_TEST_CASES");
        char *names, *save = NULL;
        size_t kept = 0;

        if (!env || !*env)
                return n;
        if (!(names = strdup(env)))
                abort();
        for (char *name = strtok_r(names, ",", &save); name; name = strtok_r(NULL, ",", &save)) {
                size_t i = 0;
                while (i < n && strcmp(tests[i].name, name) != 0)
                        i++;
                if (i == n) {
                        fprintf(stderr, "DYNMEM_TEST_CASES names no such test: %s\n", name);
                        abort();
                }
        }
        free(names);
        char *list = NULL;
        if (asprintf(&list, ",%s,", env) < 0)
                abort();
        for (size_t i = 0; i < n; i++) {
                char pattern[256];
                snprintf(pattern, sizeof(pattern), ",%s,", tests[i].name);
                if (strstr(list, pattern))
                        tests[kept++] = tests[i];
        }
        free(list);
        return kept;
}
