/*
 * qemu_config: the QEMU backend's [vm] keys: parsing, checking with
 * FILE:LINE diagnostics, and the qemu_args rules (split without a shell,
 * refuse anything that touches memory or the devices dynmem owns).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qemu_int.h"
#include "units.h"

#define APPEND_MAX 2048 /* x86 kernel command line */

const char *const qemu_vm_keys[] = {"kernel", "initrd",  "append", "disk",      "cpus",
                                    "accel",  "machine", "qemu",   "qemu_args", "shutdown_timeout",
                                    NULL};

void qemu_strv_free(char **v)
{
        if (!v)
                return;
        for (char **p = v; *p; p++)
                free(*p);
        free(v);
}

void qemu_config_free(struct qemu_vm_config *c)
{
        if (!c)
                return;
        free(c->qemu);
        free(c->kernel);
        free(c->initrd);
        free(c->append);
        free(c->disk);
        free(c->machine);
        qemu_strv_free(c->extra);
        *c = (struct qemu_vm_config){0};
}

/* ---- qemu_args: splitting ---- */

struct words {
        char **v;
        size_t n;
};

static int words_add(struct words *w, const char *s, size_t len)
{
        char **grown;

        if (w->n >= QEMU_ARGS_MAX)
                return -E2BIG;
        grown = realloc(w->v, (w->n + 2) * sizeof(*grown));
        if (!grown)
                return -ENOMEM;
        w->v = grown;
        if (!(w->v[w->n] = strndup(s, len)))
                return -ENOMEM;
        w->v[++w->n] = NULL;
        return 0;
}

int qemu_args_split(const char *text, char ***ret_words, size_t *ret_n, char *err, size_t errlen)
{
        struct words w = {0};
        size_t len = text ? strlen(text) : 0;
        char *buf = malloc(len + 1);
        int r = 0;

        if (!buf) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        for (size_t i = 0; i < len && r == 0;) {
                size_t n = 0;
                bool word = false;
                while (i < len && strchr(" \t\r\n", text[i]))
                        i++;
                while (i < len && !strchr(" \t\r\n", text[i]) && r == 0) {
                        char c = text[i++], quote = 0;
                        word = true;
                        if (c == '\'' || c == '"') {
                                quote = c;
                                while (i < len && text[i] != quote) {
                                        if (quote == '"' && text[i] == '\\' && i + 1 < len)
                                                i++;
                                        buf[n++] = text[i++];
                                }
                                if (i >= len) {
                                        snprintf(err, errlen, "unterminated %c quote", quote);
                                        r = -EINVAL;
                                }
                                i++;
                        } else if (c == '\\') {
                                if (i >= len) {
                                        snprintf(err, errlen, "a backslash ends the text");
                                        r = -EINVAL;
                                } else {
                                        buf[n++] = text[i++];
                                }
                        } else {
                                buf[n++] = c;
                        }
                }
                if (r == 0 && word && (r = words_add(&w, buf, n)) == -E2BIG)
                        snprintf(err, errlen, "more than %d words", QEMU_ARGS_MAX);
                else if (r == -ENOMEM)
                        snprintf(err, errlen, "out of memory");
        }
        free(buf);
        if (r < 0) {
                qemu_strv_free(w.v);
                return r == -E2BIG ? -EINVAL : r;
        }
        if (!w.v && !(w.v = calloc(1, sizeof(*w.v)))) {
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        *ret_words = w.v;
        *ret_n = w.n;
        return 0;
}

/* ---- qemu_args: what they may not do ---- */

/* Options dynmem sets itself or that change memory, monitors or the process. */
static const struct {
        const char *option;
        const char *why;
} refused_options[] = {
    {"-m", "memory is set by startup and maximum"},
    {"-mem-path", "memory is dynmem's"},
    {"-mem-prealloc", "memory is dynmem's"},
    {"-numa", "memory is dynmem's"},
    {"-overcommit", "memory is dynmem's"},
    {"-qmp", "dynmem owns the QMP monitor"},
    {"-qmp-pretty", "dynmem owns the QMP monitor"},
    {"-monitor", "dynmem owns the monitor"},
    {"-mon", "dynmem owns the monitor"},
    {"-serial", "dynmem owns the serial console (its log)"},
    {"-nographic", "dynmem owns the serial console (its log)"},
    {"-daemonize", "dynmem runs QEMU itself"},
    {"-pidfile", "dynmem owns the pid file"},
    {"-name", "dynmem names the VM"},
    {"-runas", "QEMU must keep dynmem's sockets reachable"},
    {"-chroot", "QEMU must keep dynmem's sockets reachable"},
    {"-run-with", "QEMU must keep dynmem's sockets reachable"},
    {"-sandbox", "dynmem sets the sandbox"},
    {"-readconfig", "a config file could set anything"},
    {"-set", "it can change any device, dynmem's included"},
    {"-incoming", "dynmem starts VMs fresh"},
    {"-S", "dynmem expects the guest to run"},
    {"-preconfig", "dynmem expects the guest to run"},
    {"-no-shutdown", "dynmem expects QEMU to exit when the guest powers off"},
    {"-kernel", "use the kernel key"},
    {"-initrd", "use the initrd key"},
    {"-append", "use the append key"},
    {"-smp", "use the cpus key"},
    {"-accel", "use the accel key"},
    {"-enable-kvm", "use the accel key"},
    {"-machine", "use the machine key (dynmem chooses virtio-mem's options by machine type)"},
    {"-M", "use the machine key (dynmem chooses virtio-mem's options by machine type)"},
};

/* Anything naming these is refused wherever it appears. */
static const char *const refused_words[] = {
    "virtio-mem", "virtio-balloon", "memory-backend", "hv-balloon",     "pc-dimm",
    "nvdimm",     "virtio-pmem",    "org.dynmem.",    "memory_backend", "virtio_mem",
};

/* A key=value list (QEMU's option syntax, ",," escapes a comma) with a value dm-*. */
static bool names_dynmem_id(const char *word)
{
        if (word[0] == '{')
                return strstr(word, "\"dm-") != NULL;
        for (const char *p = word; *p;) {
                const char *end = p, *eq;
                while (*end && !(end[0] == ',' && end[1] != ','))
                        end += (end[0] == ',' && end[1] == ',') ? 2 : 1;
                eq = memchr(p, '=', (size_t)(end - p));
                if (eq && strncmp(eq + 1, "dm-", 3) == 0)
                        return true;
                p = *end ? end + 1 : end;
        }
        return false;
}

static int check_word(const char *w, char *err, size_t errlen)
{
        const char *opt = w;

        if (opt[0] == '-' && opt[1] == '-')
                opt++;
        for (size_t i = 0; opt[0] == '-' && i < sizeof(refused_options) / sizeof(*refused_options);
             i++) {
                if (strcmp(opt, refused_options[i].option) == 0) {
                        snprintf(err, errlen, "qemu_args may not use %s: %s", w,
                                 refused_options[i].why);
                        return -EPERM;
                }
        }
        for (size_t i = 0; i < sizeof(refused_words) / sizeof(*refused_words); i++) {
                if (strcasestr(w, refused_words[i])) {
                        snprintf(err, errlen,
                                 "qemu_args may not name %s (\"%.80s\"): dynmem owns the VM's "
                                 "memory devices",
                                 refused_words[i], w);
                        return -EPERM;
                }
        }
        if (names_dynmem_id(w)) {
                snprintf(err, errlen,
                         "qemu_args may not use ids or chardevs named dm-* (\"%.80s\"): "
                         "they are dynmem's",
                         w);
                return -EPERM;
        }
        return 0;
}

/* -action shutdown=pause is -no-shutdown (QEMU 6.0 and later). */
static bool pauses_at_shutdown(const char *option, const char *value)
{
        const char *p = value;

        if (strcmp(option, "-action") != 0 && strcmp(option, "--action") != 0)
                return false;
        while ((p = strstr(p, "shutdown=pause"))) {
                size_t end = strlen("shutdown=pause");
                if ((p == value || p[-1] == ',') && (p[end] == '\0' || p[end] == ','))
                        return true;
                p++;
        }
        return false;
}

int qemu_args_check(char *const *words, size_t n, char *err, size_t errlen)
{
        for (size_t i = 0; i < n; i++) {
                int r = check_word(words[i], err, errlen);
                if (r < 0)
                        return r;
                if (i + 1 < n && pauses_at_shutdown(words[i], words[i + 1])) {
                        snprintf(err, errlen,
                                 "qemu_args may not use %s %s: dynmem expects QEMU to exit when "
                                 "the guest powers off",
                                 words[i], words[i + 1]);
                        return -EPERM;
                }
        }
        return 0;
}

/* ---- keys ---- */

struct parse_ctx {
        const struct config *cfg;
        const struct config_vm *cvm;
        struct config_diag *diag;
        char *base_dir;
        bool check_files;
        int errors;
};

static void problem(struct parse_ctx *x, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct parse_ctx *x, unsigned line, const char *fmt, ...)
{
        char msg[768];
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(msg, sizeof(msg), fmt, ap);
        va_end(ap);
        config_diag_add(x->diag, x->cfg->path ? x->cfg->path : "config", line, "vm \"%s\": %s",
                        x->cvm->name, msg);
        x->errors++;
}

static char *resolve(const char *base_dir, const char *path)
{
        char *out = NULL;

        if (path[0] == '/')
                return strdup(path);
        if (asprintf(&out, "%s/%s", base_dir, path) < 0)
                return NULL;
        return out;
}

/* Check a file the VM needs; regular files (and block devices when allowed). */
static void check_file(struct parse_ctx *x, unsigned line, const char *key, const char *path,
                       bool block_ok)
{
        struct stat st;

        if (!x->check_files)
                return;
        if (stat(path, &st) < 0 || access(path, R_OK) < 0)
                problem(x, line, "%s %s: %s", key, path, strerror(errno));
        else if (!S_ISREG(st.st_mode) && !(block_ok && S_ISBLK(st.st_mode)))
                problem(x, line, "%s %s: not a regular file", key, path);
}

/*
 * The disk is handed to QEMU open read-write (qemu_handover.c): one dynmemd
 * cannot open so (read-only file or file system, no write permission) would
 * only fail the start. Opened, not access()ed, so that it is the same test.
 */
static void check_disk_writable(struct parse_ctx *x, unsigned line, const char *path)
{
        struct stat st;
        int fd;

        if (stat(path, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode)))
                return; /* said by check_file() */
        if ((fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC)) < 0)
                problem(x, line, "disk %s: %s (it is opened for writing, the guest's disk)", path,
                        strerror(errno));
        else
                close(fd);
}

/* A path key: resolved against the config's folder, or NULL when not given. */
static char *path_key(struct parse_ctx *x, const char *key, bool block_ok)
{
        const struct config_kv *kv = config_vm_key(x->cvm, key);
        char *path;

        if (!kv)
                return NULL;
        if (!kv->value[0]) {
                problem(x, kv->line, "%s is empty", key);
                return NULL;
        }
        if (!(path = resolve(x->base_dir, kv->value))) {
                problem(x, kv->line, "out of memory");
                return NULL;
        }
        check_file(x, kv->line, key, path, block_ok);
        return path;
}

/* The bundled image's command line (image_dir/cmdline), or a default. */
static char *image_cmdline(const char *image_dir)
{
        char path[4096], line[APPEND_MAX + 2] = "";
        FILE *f;

        snprintf(path, sizeof(path), "%s/cmdline", image_dir);
        if ((f = fopen(path, "re"))) {
                if (!fgets(line, sizeof(line), f))
                        line[0] = '\0';
                fclose(f);
        }
        line[strcspn(line, "\r\n")] = '\0';
        return strdup(line[0] ? line : "console=ttyS0 memhp_default_state=online_movable");
}

static bool printable(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

static void parse_images(struct parse_ctx *x, const char *image_dir, struct qemu_vm_config *c)
{
        const struct config_kv *app = config_vm_key(x->cvm, "append");
        char *base = NULL;

        c->kernel = path_key(x, "kernel", false);
        c->initrd = path_key(x, "initrd", false);
        c->disk = path_key(x, "disk", true);
        if (c->disk && x->check_files && access(c->disk, R_OK) == 0) {
                unsigned line = config_vm_key(x->cvm, "disk")->line;
                char why[512];
                if (qemu_disk_check(c->disk, why, sizeof(why)) < 0)
                        problem(x, line, "%s", why);
                else
                        check_disk_writable(x, line, c->disk);
        }
        if (!config_vm_key(x->cvm, "kernel")) {
                const struct config_kv *ini = config_vm_key(x->cvm, "initrd");
                c->bundled_image = true;
                if (asprintf(&c->kernel, "%s/vmlinuz", image_dir) < 0)
                        c->kernel = NULL;
                check_file(x, x->cvm->line, "kernel (the bundled guest image)", c->kernel, false);
                if (!ini) {
                        if (asprintf(&c->initrd, "%s/initrd.img", image_dir) < 0)
                                c->initrd = NULL;
                        check_file(x, x->cvm->line, "initrd (the bundled guest image)", c->initrd,
                                   false);
                }
                base = image_cmdline(image_dir);
        }
        if (app && !printable(app->value))
                problem(x, app->line, "append has control characters");
        if (base && app && app->value[0]) {
                if (asprintf(&c->append, "%s %s", base, app->value) < 0)
                        c->append = NULL;
        } else if (base || app) {
                c->append = strdup(base ? base : app->value);
        }
        free(base);
        if (c->append && strlen(c->append) >= APPEND_MAX)
                problem(x, app ? app->line : x->cvm->line,
                        "the kernel command line is longer than %d bytes", APPEND_MAX - 1);
}

/*
 * Whether a machine key names a type of the families dynmem runs (their
 * aliases pc and q35, or a versioned pc-i440fx-N.M, pc-q35-N.M), whose PCI
 * bus takes virtio-mem-pci: microvm, isapc, none and the like never can.
 * Known without QEMU; whether the binary has the type is a start's question.
 */
static bool machine_takes_virtio_mem(const char *name)
{
        unsigned major, minor;

        return strcmp(name, "pc") == 0 || strcmp(name, "q35") == 0 ||
               qemu_machine_version(name, &major, &minor);
}

static void parse_scalars(struct parse_ctx *x, struct qemu_vm_config *c)
{
        static const char *const accels[] = {"auto", "kvm", "tcg"};
        const struct config_kv *kv;
        char *end;

        c->cpus = 1;
        if ((kv = config_vm_key(x->cvm, "cpus"))) {
                unsigned long n = strtoul(kv->value, &end, 10);
                if (kv->value[0] < '0' || kv->value[0] > '9' || *end || n < 1 || n > QEMU_CPUS_MAX)
                        problem(x, kv->line, "cpus: \"%s\" is not a number in 1..%d%s", kv->value,
                                QEMU_CPUS_MAX, config_comment_hint(kv->value));
                else
                        c->cpus = (unsigned)n;
        }
        c->accel = QEMU_ACCEL_AUTO;
        if ((kv = config_vm_key(x->cvm, "accel"))) {
                size_t i = 0;
                while (i < 3 && strcmp(kv->value, accels[i]) != 0)
                        i++;
                if (i == 3)
                        problem(x, kv->line, "accel: \"%s\" is not auto, kvm or tcg%s", kv->value,
                                config_comment_hint(kv->value));
                else
                        c->accel = (enum qemu_accel)i;
        }
        kv = config_vm_key(x->cvm, "machine");
        c->machine = strdup(kv ? kv->value : QEMU_DEFAULT_MACHINE);
        if (kv &&
            (!kv->value[0] || strlen(kv->value) >= QEMU_MACHINE_NAME_MAX ||
             strspn(kv->value, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != strlen(kv->value)))
                problem(x, kv->line, "machine: \"%s\" is not a machine type name%s", kv->value,
                        config_comment_hint(kv->value));
        else if (kv && !machine_takes_virtio_mem(kv->value))
                problem(x, kv->line,
                        "machine: \"%s\" cannot take virtio-mem hot-plug: dynmem runs the pc "
                        "(pc, pc-i440fx-*) and q35 (q35, pc-q35-*) machine types",
                        kv->value);
        c->shutdown_timeout_ms = QEMU_SHUTDOWN_DEFAULT;
        if ((kv = config_vm_key(x->cvm, "shutdown_timeout")) &&
            (duration_parse(kv->value, &c->shutdown_timeout_ms) < 0 ||
             c->shutdown_timeout_ms < 100 || c->shutdown_timeout_ms > 3600 * MSEC_PER_SEC))
                problem(x, kv->line, "shutdown_timeout: \"%s\"%s is not a duration in 100ms..1h%s",
                        kv->value, duration_read_as(kv->value), config_comment_hint(kv->value));
}

static void parse_qemu(struct parse_ctx *x, struct qemu_vm_config *c)
{
        const struct config_kv *kv = config_vm_key(x->cvm, "qemu");
        const char *name = kv ? kv->value : QEMU_DEFAULT_BINARY;
        char err[256] = "";
        int r;

        if (kv && !kv->value[0])
                problem(x, kv->line, "qemu is empty");
        else if (strchr(name, '/'))
                c->qemu = resolve(x->base_dir, name);
        else
                c->qemu = strdup(name);
        if (x->check_files && c->qemu) {
                char *found = NULL;
                if ((r = qemu_proc_find_binary(c->qemu, &found)) < 0)
                        problem(x, kv ? kv->line : x->cvm->line, "QEMU binary %s: %s", c->qemu,
                                r == -ENOENT && !strchr(c->qemu, '/') ? "not found in PATH"
                                                                      : strerror(-r));
                free(found);
        }
        if ((kv = config_vm_key(x->cvm, "qemu_args"))) {
                r = qemu_args_split(kv->value, &c->extra, &c->n_extra, err, sizeof(err));
                if (r == 0)
                        r = qemu_args_check(c->extra, c->n_extra, err, sizeof(err));
                if (r < 0)
                        problem(x, kv->line, "qemu_args: %s", err);
        }
}

/* What QEMU can do with the sizes: virtio-mem blocks of 2 MiB or more, whole MiB of RAM. */
static void check_sizes(struct parse_ctx *x)
{
        const struct vm_settings *s = &x->cvm->settings;
        char a[32];

        if (s->dynamic && s->maximum_bytes > s->startup_bytes &&
            s->block_bytes < QEMU_VMEM_BLOCK_MIN)
                problem(x, config_setting_line(x->cvm, SETTINGS_BLOCK),
                        "block %s is below virtio-mem's 2 MiB on x86",
                        size_format(s->block_bytes, a, sizeof(a)));
        if (s->startup_bytes % MIB != 0)
                problem(x, config_setting_line(x->cvm, SETTINGS_STARTUP),
                        "startup %s is not a whole number of MiB",
                        size_format(s->startup_bytes, a, sizeof(a)));
}

int qemu_config_parse(const struct config *cfg, const struct config_vm *cvm, const char *image_dir,
                      bool check_files, struct qemu_vm_config *ret, struct config_diag *diag)
{
        struct parse_ctx x = {.cfg = cfg, .cvm = cvm, .diag = diag, .check_files = check_files};
        struct qemu_vm_config c = {0};
        char *copy = cfg->path ? strdup(cfg->path) : NULL;
        char cwd[4096];

        if (copy)
                x.base_dir = strdup(dirname(copy));
        else if (getcwd(cwd, sizeof(cwd)))
                x.base_dir = strdup(cwd);
        free(copy);
        if (!x.base_dir) {
                problem(&x, cvm->line, "out of memory");
                return -ENOMEM;
        }
        parse_images(&x, image_dir, &c);
        parse_scalars(&x, &c);
        parse_qemu(&x, &c);
        check_sizes(&x);
        free(x.base_dir);
        if (!x.errors && (!c.kernel || !c.qemu || !c.machine || (c.bundled_image && !c.initrd))) {
                problem(&x, cvm->line, "out of memory");
        }
        if (x.errors) {
                qemu_config_free(&c);
                return -EINVAL;
        }
        *ret = c;
        return 0;
}
