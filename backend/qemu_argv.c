/*
 * qemu_argv: the QEMU command line of one VM, built word by word (never
 * through a shell): memory layout, dynmem's devices, the sockets, console
 * log, kernel and disk it is handed by descriptor, accelerator. See
 * docs/qemu-backend.md for what each part is for.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "qemu_int.h"
#include "qemu_launch.h"
#include "units.h"

/* ---- paths ---- */

void qemu_paths_free(struct qemu_paths *p)
{
        if (!p)
                return;
        free(p->qmp);
        free(p->agent);
        free(p->pid);
        free(p->probe);
        free(p->console);
        *p = (struct qemu_paths){0};
}

int qemu_paths_make(const char *run_dir, const char *state_dir, const char *name,
                    struct qemu_paths *ret, char *err, size_t errlen)
{
        struct qemu_paths p = {0};
        size_t sun_max = sizeof(((struct sockaddr_un *)0)->sun_path);

        if (asprintf(&p.qmp, "%s/%s.qmp", run_dir, name) < 0 ||
            asprintf(&p.agent, "%s/%s.agent", run_dir, name) < 0 ||
            asprintf(&p.pid, "%s/%s.pid", run_dir, name) < 0 ||
            asprintf(&p.probe, "%s/%s.probe", run_dir, name) < 0 ||
            asprintf(&p.console, "%s/%s.console.log", state_dir, name) < 0) {
                qemu_paths_free(&p);
                snprintf(err, errlen, "out of memory");
                return -ENOMEM;
        }
        if (strlen(p.qmp) >= sun_max || strlen(p.agent) >= sun_max || strlen(p.probe) >= sun_max) {
                snprintf(err, errlen, "socket path %s is longer than %zu bytes", p.agent,
                         sun_max - 1);
                qemu_paths_free(&p);
                return -ENAMETOOLONG;
        }
        *ret = p;
        return 0;
}

/* ---- layout and accelerator ---- */

void qemu_layout_from_settings(const struct vm_settings *s, struct qemu_layout *ret)
{
        uint64_t region = 0, first = settings_first_block(s);

        if (s->dynamic && s->maximum_bytes > s->startup_bytes)
                region = size_round_up(s->maximum_bytes - s->startup_bytes, s->block_bytes);
        /* The first device block is plugged rather than boot RAM (settings_first_block). */
        *ret = (struct qemu_layout){.startup = s->startup_bytes - first,
                                    .region = region + first,
                                    .block = s->block_bytes,
                                    .first = first};
}

bool qemu_kvm_usable_by(const char *path, struct qemu_launch *ql, const struct qemu_identity *id,
                        char *why, size_t len)
{
        int fd;

        if (!id->switched) {
                /* QEMU runs as dynmemd's own user, with its groups: an open says it all. */
                if ((fd = open(path, O_RDWR | O_CLOEXEC)) < 0) {
                        snprintf(why, len, "%s: %s (as user %s, whom QEMU runs as)", path,
                                 strerror(errno), id->name);
                        return false;
                }
                close(fd);
                snprintf(why, len, "%s opens for user %s, whom QEMU runs as", path, id->name);
                return true;
        }
        /* Another user: only the launcher can become it and ask the kernel (ACLs, LSMs). */
        if (qemu_launch_access(ql, path, R_OK | W_OK, why, len) < 0)
                return false;
        snprintf(why, len, "%s may be read and written by user %s, whom QEMU runs as", path,
                 id->name);
        return true;
}

/* The phrases below, each inside the next one's: they fit QEMU_ACCEL_WHY_MAX. */
#define DEVICE_WHY_MAX 168
#define KVM_WHY_MAX    200

static bool kvm_works(struct qemu_launch *ql, const struct qemu_identity *id, char *why, size_t len)
{
        char reason[DEVICE_WHY_MAX];

        if (access("/sys/module/kvm_intel", F_OK) < 0 && access("/sys/module/kvm_amd", F_OK) < 0) {
                snprintf(why, len, "no kvm_intel or kvm_amd module");
                return false;
        }
        if (!qemu_kvm_usable_by("/dev/kvm", ql, id, reason, sizeof(reason))) {
                snprintf(why, len, "%s", reason);
                return false;
        }
        snprintf(why, len, "kvm_intel or kvm_amd loaded and %s", reason);
        return true;
}

int qemu_accel_choose(enum qemu_accel accel, struct qemu_launch *ql, const struct qemu_identity *id,
                      bool *ret_kvm, char *why, size_t len)
{
        char reason[KVM_WHY_MAX];
        bool kvm;

        switch (accel) {
        case QEMU_ACCEL_TCG:
                *ret_kvm = false;
                snprintf(why, len, "tcg (accel = tcg)");
                return 0;
        case QEMU_ACCEL_KVM:
                if (!kvm_works(ql, id, reason, sizeof(reason))) {
                        snprintf(why, len, "accel = kvm, but KVM does not work here: %s", reason);
                        return -ENODEV;
                }
                *ret_kvm = true;
                snprintf(why, len, "kvm (accel = kvm)");
                return 0;
        default:
                kvm = kvm_works(ql, id, reason, sizeof(reason));
                *ret_kvm = kvm;
                snprintf(why, len, "%s (auto: %s)", kvm ? "kvm" : "tcg", reason);
                return 0;
        }
}

/* ---- argv ---- */

struct argv {
        char **v;
        size_t n, cap;
        bool failed;
};

static void add(struct argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(struct argv *a, const char *fmt, ...)
{
        va_list ap;
        char *s;

        if (a->failed)
                return;
        if (a->n + 2 > a->cap) {
                size_t cap = a->cap ? a->cap * 2 : 64;
                char **grown = realloc(a->v, cap * sizeof(*grown));
                if (!grown) {
                        a->failed = true;
                        return;
                }
                a->v = grown;
                a->cap = cap;
        }
        va_start(ap, fmt);
        int r = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (r < 0) {
                a->failed = true;
                return;
        }
        a->v[a->n++] = s;
        a->v[a->n] = NULL;
}

/* A value inside QEMU's key=value option syntax: commas are doubled. */
static char *opt_escape(const char *s)
{
        size_t n = strlen(s), commas = 0;
        char *out, *o;

        for (size_t i = 0; i < n; i++)
                commas += s[i] == ',';
        if (!(out = malloc(n + commas + 1)))
                return NULL;
        o = out;
        for (size_t i = 0; i < n; i++) {
                *o++ = s[i];
                if (s[i] == ',')
                        *o++ = ',';
        }
        *o = '\0';
        return out;
}

char *qemu_qmp_chardev_arg(const char *qmp_path)
{
        char *esc = opt_escape(qmp_path), *out = NULL;

        if (esc && asprintf(&out, "socket,id=" QEMU_ID_QMP ",path=%s,server=on,wait=off", esc) < 0)
                out = NULL;
        free(esc);
        return out;
}

/* ",name=on", ",name=off", or "" to leave QEMU's default. */
static const char *switch_option(const char *name, enum qemu_switch s, char *buf, size_t len)
{
        if (s == QEMU_SWITCH_UNSET)
                return "";
        snprintf(buf, len, ",%s=%s", name, s == QEMU_SWITCH_ON ? "on" : "off");
        return buf;
}

static void add_memory(struct argv *a, const struct qemu_layout *l, const struct qemu_features *f)
{
        char inaccessible[64];

        if (l->region == 0) {
                add(a, "-m");
                add(a, "size=%lluk", (unsigned long long)(l->startup / KIB));
                return;
        }
        /*
         * With the first block plugged, the region no longer ends on a guest memory block
         * (Linux uses only whole ones): the device is made larger, to the next block, and the
         * rest is never plugged (the memory behind it is never touched).
         */
        uint64_t device =
            l->first ? size_round_up(l->region, SETTINGS_GUEST_MEMORY_BLOCK) : l->region;
        add(a, "-m");
        add(a, "size=%lluk,slots=1,maxmem=%lluk", (unsigned long long)(l->startup / KIB),
            (unsigned long long)((l->startup + device) / KIB));
        add(a, "-object");
        add(a, "memory-backend-ram,id=" QEMU_ID_MEMDEV ",size=%llu", (unsigned long long)device);
        add(a, "-device");
        add(a,
            "virtio-mem-pci,id=" QEMU_ID_VMEM ",memdev=" QEMU_ID_MEMDEV
            ",block-size=%llu,requested-size=%llu%s%s",
            (unsigned long long)l->block, (unsigned long long)l->first,
            switch_option("unplugged-inaccessible", f->unplugged_inaccessible, inaccessible,
                          sizeof(inaccessible)),
            f->dynamic_memslots ? ",dynamic-memslots=on" : "");
}

char *qemu_name_arg(const char *name)
{
        char *esc = opt_escape(name), *out = NULL;

        if (esc && asprintf(&out, "guest=%s", esc) < 0)
                out = NULL;
        free(esc);
        return out;
}

/* fd into an fdset QEMU opens as /dev/fdset/SET; opaque names the file for `ps` readers. */
static void add_fdset(struct argv *a, int fd, int set, const char *path)
{
        char *esc = opt_escape(path);

        if (!esc) {
                a->failed = true;
                return;
        }
        add(a, "-add-fd");
        add(a, "fd=%d,set=%d,opaque=%s", fd, set, esc);
        free(esc);
}

static void add_devices(struct argv *a, const struct qemu_paths *p, const struct qemu_handover *h)
{
        add(a, "-device");
        add(a,
            "virtio-balloon-pci,id=" QEMU_ID_BALLOON ",deflate-on-oom=on,free-page-reporting=on");
        add(a, "-device");
        add(a, "virtio-serial-pci,id=" QEMU_ID_SERIAL);
        add(a, "-chardev");
        add(a, "socket,id=" QEMU_ID_AGENT ",fd=%d,server=on,wait=off", h->agent);
        add(a, "-device");
        add(a, "virtserialport,bus=" QEMU_ID_SERIAL ".0,chardev=" QEMU_ID_AGENT
               ",name=" QEMU_AGENT_PORT);
        add_fdset(a, h->console, QEMU_FDSET_CONSOLE, p->console);
        add(a, "-chardev");
        add(a, "file,id=" QEMU_ID_CONSOLE ",path=/dev/fdset/%d,append=on", QEMU_FDSET_CONSOLE);
        add(a, "-serial");
        add(a, "chardev:" QEMU_ID_CONSOLE);
}

/*
 * The disk's layers as one -drive: each in its own fdset (the disk's with
 * both access modes), the backing chain spelled out, as QEMU cannot find a
 * backing file by name from /dev/fdset/N.
 */
#define BACKING_PREFIXES "backing.backing.backing.backing."
_Static_assert(8 * (QEMU_DISK_LAYERS_MAX - 1) <= sizeof(BACKING_PREFIXES) - 1,
               "a backing. prefix for each layer under the disk");

static void add_disk(struct argv *a, const struct qemu_handover *h)
{
        char drive[1024];
        size_t len = 0;

        for (size_t i = 0; i < h->n_layers; i++) {
                const struct qemu_disk_layer *l = &h->layer[i];
                add_fdset(a, l->fd, QEMU_FDSET_DISK + (int)i, l->path);
                if (i == 0 && h->disk_ro >= 0)
                        add_fdset(a, h->disk_ro, QEMU_FDSET_DISK, l->path);
                len += (size_t)snprintf(drive + len, sizeof(drive) - len,
                                        "%.*sdriver=%s,%.*sfile.driver=file,%.*sfile.filename=/dev/"
                                        "fdset/%d,",
                                        (int)(8 * i), BACKING_PREFIXES, l->qcow2 ? "qcow2" : "raw",
                                        (int)(8 * i), BACKING_PREFIXES, (int)(8 * i),
                                        BACKING_PREFIXES, QEMU_FDSET_DISK + (int)i);
                if (len >= sizeof(drive)) {
                        a->failed = true; /* and no write past the buffer for the next layer */
                        break;
                }
        }
        if (len < sizeof(drive)) {
                add(a, "-drive");
                add(a, "%sif=virtio", drive);
        }
}

static void add_boot(struct argv *a, const struct qemu_vm_config *c, const struct qemu_handover *h)
{
        /* QEMU's loader opens the kernel by name: the name of the descriptor it was handed. */
        add(a, "-kernel");
        add(a, "/proc/self/fd/%d", h->kernel);
        if (h->initrd >= 0) {
                add(a, "-initrd");
                add(a, "/proc/self/fd/%d", h->initrd);
        }
        if (c->append) {
                add(a, "-append");
                add(a, "%s", c->append);
        }
        if (h->disk >= 0)
                add_disk(a, h);
}

static void add_sandbox(struct argv *a)
{
        add(a, "-sandbox");
        add(a, "on,obsolete=deny,elevateprivileges=deny,spawn=deny,resourcecontrol=deny");
}

int qemu_argv_build(const char *name, const struct qemu_vm_config *c, const struct qemu_layout *l,
                    const struct qemu_paths *p, const struct qemu_handover *h, bool kvm,
                    const struct qemu_features *f, char ***ret_argv)
{
        struct argv a = {0};
        char *guest = qemu_name_arg(name);

        if (!guest || h->qmp < 0 || h->agent < 0 || h->console < 0 || h->kernel < 0 ||
            (c->disk && (h->disk < 0 || h->n_layers == 0)))
                a.failed = true;
        add(&a, "%s", c->qemu);
        add(&a, "-name");
        add(&a, "%s", guest ? guest : "");
        add(&a, "-nodefaults");
        add(&a, "-no-user-config");
        add(&a, "-display");
        add(&a, "none");
        add(&a, "-machine");
        add(&a, "%s", f->machine[0] ? f->machine : QEMU_DEFAULT_MACHINE);
        add(&a, "-accel");
        add(&a, "%s", kvm ? "kvm" : "tcg");
        if (kvm) {
                add(&a, "-cpu");
                add(&a, "host");
        }
        add(&a, "-smp");
        add(&a, "%u", c->cpus);
        add_memory(&a, l, f);
        add_devices(&a, p, h);
        add(&a, "-chardev");
        add(&a, "socket,id=" QEMU_ID_QMP ",fd=%d,server=on,wait=off", h->qmp);
        add(&a, "-mon");
        add(&a, "chardev=" QEMU_ID_QMP ",mode=control");
        add(&a, "-msg");
        add(&a, "timestamp=on");
        add_sandbox(&a);
        add_boot(&a, c, h);
        for (size_t i = 0; i < c->n_extra; i++)
                add(&a, "%s", c->extra[i]);
        free(guest);
        if (a.failed) {
                qemu_strv_free(a.v);
                return -ENOMEM;
        }
        *ret_argv = a.v;
        return 0;
}

int qemu_argv_probe(const char *binary, int qmp_fd, char ***ret_argv)
{
        struct argv a = {0};

        add(&a, "%s", binary);
        add(&a, "-machine");
        add(&a, "none");
        add(&a, "-nodefaults");
        add(&a, "-no-user-config");
        add(&a, "-display");
        add(&a, "none");
        add(&a, "-chardev");
        add(&a, "socket,id=" QEMU_ID_QMP ",fd=%d,server=on,wait=off", qmp_fd);
        add(&a, "-mon");
        add(&a, "chardev=" QEMU_ID_QMP ",mode=control");
        add_sandbox(&a);
        if (a.failed) {
                qemu_strv_free(a.v);
                return -ENOMEM;
        }
        *ret_argv = a.v;
        return 0;
}
