/*
 * Tests for the QEMU backend's parts that need no QEMU: qemu_args split and
 * refused, the command line, VM keys with FILE:LINE diagnostics and the
 * bundled image, the accelerator choice (the KVM device judged for the QEMU
 * user by the launcher, ACLs included), and the memory arithmetic (grow
 * order, shrink order, balloon below startup, stuck unplug, refused plug), and
 * the signals of the launcher and of what it starts.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "agent.h"
#include "qemu.h"
#include "qemu_int.h"
#include "qemu_launch.h"
#include "qtest.h"
#include "units.h"

/* ---- qemu_args ---- */

static void split(const char *text, char ***words, size_t *n)
{
        char err[128];

        if (qemu_args_split(text, words, n, err, sizeof(err)) < 0)
                fail_msg("split \"%s\": %s", text, err);
}

static void args_split_like_a_shell_without_one(void **state)
{
        char **w, err[128];
        size_t n;

        (void)state;
        split("  -device  virtio-net-pci,netdev=n0\t-name 'a b' \"c \\\"d\\\"\" e\\ f $HOME `x`",
              &w, &n);
        assert_int_equal(n, 8);
        assert_string_equal(w[0], "-device");
        assert_string_equal(w[1], "virtio-net-pci,netdev=n0");
        assert_string_equal(w[3], "a b");
        assert_string_equal(w[4], "c \"d\"");
        assert_string_equal(w[5], "e f");
        assert_string_equal(w[6], "$HOME");
        assert_string_equal(w[7], "`x`");
        assert_null(w[8]);
        qemu_strv_free(w);
        split("", &w, &n);
        assert_int_equal(n, 0);
        assert_null(w[0]);
        qemu_strv_free(w);
        split("''", &w, &n);
        assert_int_equal(n, 1);
        assert_string_equal(w[0], "");
        qemu_strv_free(w);
        assert_int_equal(qemu_args_split("-a 'open", &w, &n, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "unterminated"));
        assert_int_equal(qemu_args_split("-a \\", &w, &n, err, sizeof(err)), -EINVAL);
        char many[4096] = "";
        for (int i = 0; i <= QEMU_ARGS_MAX; i++)
                strcat(many, "x ");
        assert_int_equal(qemu_args_split(many, &w, &n, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "words"));
}

static void args_touching_memory_or_dynmem_devices_are_refused(void **state)
{
        static const char *const refused[] = {
            "-m 4G",
            "--m 4G",
            "-object memory-backend-file,id=x,size=1G,mem-path=/dev/shm/x",
            "-device virtio-mem-pci,id=x,memdev=y",
            "-device virtio-balloon-pci,id=b2",
            "-device pc-dimm,id=d,memdev=m",
            "-device nvdimm,id=d",
            "-global virtio-balloon-device.free-page-hint=on",
            "-machine pc,memory-backend=foo",
            "-qmp unix:/tmp/x,server=on",
            "-monitor stdio",
            "-mon chardev=c",
            "-chardev socket,id=dm-agent,path=/tmp/y",
            "-device virtserialport,bus=dm-serial.0,chardev=c,name=x",
            "-device virtserialport,chardev=c0,name=org.dynmem.agent.0",
            "-device '{\"driver\":\"virtio-net-pci\",\"id\": \"dm-net\"}'",
            "-netdev user,id=dm-n",
            "-daemonize",
            "-pidfile /tmp/p",
            "-serial stdio",
            "-nographic",
            "-kernel /boot/vmlinuz",
            "-smp 4",
            "-accel kvm",
            "-enable-kvm",
            "-name other",
            "-readconfig /etc/x.cfg",
            "-set device.dm-vmem.requested-size=1G",
            "-mem-prealloc",
            "-numa node,memdev=m",
            "-overcommit mem-lock=on",
            "-sandbox off",
            "-S",
            "-no-shutdown",
            "-action shutdown=pause",
            "--action reboot=shutdown,shutdown=pause",
            "-preconfig",
            "--preconfig",
            "-runas nobody",
            "-machine q35",
            "-M pc-i440fx-8.0",
        };
        static const char *const allowed[] = {
            "-netdev user,id=n0 -device virtio-net-pci,netdev=n0",
            "-drive file=/var/lib/dm-1.img,if=virtio,format=raw",
            "-no-reboot -cpu max",
            "-action reboot=shutdown,panic=exit-failure",
            "-device virtio-rng-pci -rtc base=utc",
            "-chardev socket,id=mon1,path=/tmp/x,,dm-1,server=on,wait=off",
        };
        char **w, err[256];
        size_t n;

        (void)state;
        for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
                split(refused[i], &w, &n);
                if (qemu_args_check(w, n, err, sizeof(err)) != -EPERM)
                        fail_msg("\"%s\" was not refused", refused[i]);
                assert_non_null(strstr(err, "qemu_args may not"));
                qemu_strv_free(w);
        }
        for (size_t i = 0; i < sizeof(allowed) / sizeof(*allowed); i++) {
                split(allowed[i], &w, &n);
                if (qemu_args_check(w, n, err, sizeof(err)) != 0)
                        fail_msg("\"%s\" was refused: %s", allowed[i], err);
                qemu_strv_free(w);
        }
}

/* ---- the command line ---- */

static bool has_pair(char **argv, const char *opt, const char *value)
{
        for (size_t i = 0; argv[i] && argv[i + 1]; i++)
                if (strcmp(argv[i], opt) == 0 && strcmp(argv[i + 1], value) == 0)
                        return true;
        return false;
}

static bool has_word_with(char **argv, const char *needle)
{
        for (size_t i = 0; argv[i]; i++)
                if (strstr(argv[i], needle))
                        return true;
        return false;
}

static void argv_has_the_memory_layout_and_dynmem_devices(void **state)
{
        char *extra[] = {"-no-reboot", NULL};
        struct qemu_vm_config c = {.qemu = "/usr/bin/qemu-system-x86_64",
                                   .kernel = "/img/vmlinuz",
                                   .initrd = "/img/initrd.img",
                                   .append = "console=ttyS0 quiet",
                                   .cpus = 2,
                                   .extra = extra,
                                   .n_extra = 1};
        struct qemu_paths p = {.qmp = "/run/dm/web.qmp",
                               .agent = "/run/dm/web.agent",
                               .pid = "/run/dm/web.pid",
                               .console = "/var/lib/dm,x/web.console.log"};
        struct qemu_handover h = {
            .n = 5, .qmp = 3, .agent = 4, .console = 5, .kernel = 6, .initrd = 7, .disk = -1};
        struct qemu_layout l = {.startup = 256 * MIB, .region = 768 * MIB, .block = 2 * MIB};
        struct qemu_features old = {.known = true,
                                    .machine = "pc-i440fx-7.2",
                                    .vmem = true,
                                    .unplugged_inaccessible = QEMU_SWITCH_OFF};
        char **argv;

        (void)state;
        assert_int_equal(qemu_argv_build("web", &c, &l, &p, &h, false, &old, &argv), 0);
        assert_string_equal(argv[0], "/usr/bin/qemu-system-x86_64");
        assert_true(has_pair(argv, "-m", "size=262144k,slots=1,maxmem=1048576k"));
        assert_true(has_pair(argv, "-object", "memory-backend-ram,id=dm-mem-ram,size=805306368"));
        assert_true(has_pair(argv, "-device",
                             "virtio-mem-pci,id=dm-vmem,memdev=dm-mem-ram,"
                             "block-size=2097152,requested-size=0,unplugged-inaccessible=off"));
        assert_true(has_pair(argv, "-machine", "pc-i440fx-7.2"));
        assert_true(has_pair(argv, "-device",
                             "virtio-balloon-pci,id=dm-balloon,"
                             "deflate-on-oom=on,free-page-reporting=on"));
        assert_true(has_pair(argv, "-device",
                             "virtserialport,bus=dm-serial.0,chardev=dm-agent,"
                             "name=org.dynmem.agent.0"));
        /* QEMU opens nothing of dynmemd's: sockets, log, kernel and initrd are handed over. */
        assert_true(has_pair(argv, "-chardev", "socket,id=dm-agent,fd=4,server=on,wait=off"));
        assert_true(has_pair(argv, "-chardev", "socket,id=dm-qmp,fd=3,server=on,wait=off"));
        /* Commas in paths are doubled inside option strings. */
        assert_true(has_pair(argv, "-add-fd", "fd=5,set=1,opaque=/var/lib/dm,,x/web.console.log"));
        assert_true(has_pair(argv, "-chardev", "file,id=dm-console,path=/dev/fdset/1,append=on"));
        assert_true(has_pair(argv, "-kernel", "/proc/self/fd/6"));
        assert_true(has_pair(argv, "-initrd", "/proc/self/fd/7"));
        assert_false(has_word_with(argv, "/run/dm"));
        assert_false(has_word_with(argv, "-pidfile"));
        assert_false(has_word_with(argv, "-drive"));
        assert_true(has_pair(argv, "-accel", "tcg"));
        assert_true(has_pair(argv, "-smp", "2"));
        assert_true(has_pair(argv, "-append", "console=ttyS0 quiet"));
        assert_true(has_pair(argv, "-name", "guest=web"));
        assert_false(has_word_with(argv, "host"));
        size_t n = 0;
        while (argv[n])
                n++;
        assert_string_equal(argv[n - 1], "-no-reboot");
        qemu_strv_free(argv);

        /* A QEMU of 8.2 or later, a machine type of 8.1 or later. */
        struct qemu_features new = {.known = true,
                                    .machine = "pc-q35-10.0",
                                    .vmem = true,
                                    .unplugged_inaccessible = QEMU_SWITCH_ON,
                                    .dynamic_memslots = true};
        assert_int_equal(qemu_argv_build("web", &c, &l, &p, &h, false, &new, &argv), 0);
        assert_true(has_pair(argv, "-device",
                             "virtio-mem-pci,id=dm-vmem,memdev=dm-mem-ram,block-size=2097152,"
                             "requested-size=0,unplugged-inaccessible=on,dynamic-memslots=on"));
        assert_true(has_pair(argv, "-machine", "pc-q35-10.0"));
        qemu_strv_free(argv);

        /* The first block plugged from the start: the device reaches the next whole guest
         * memory block (128 MiB) beyond what may be plugged. */
        l = (struct qemu_layout){
            .startup = 254 * MIB, .region = 770 * MIB, .block = 2 * MIB, .first = 2 * MIB};
        assert_int_equal(qemu_argv_build("web", &c, &l, &p, &h, false, &old, &argv), 0);
        assert_true(has_pair(argv, "-m", "size=260096k,slots=1,maxmem=1177600k"));
        assert_true(has_pair(argv, "-object", "memory-backend-ram,id=dm-mem-ram,size=939524096"));
        assert_true(
            has_pair(argv, "-device",
                     "virtio-mem-pci,id=dm-vmem,memdev=dm-mem-ram,"
                     "block-size=2097152,requested-size=2097152,unplugged-inaccessible=off"));
        qemu_strv_free(argv);

        /* No room above startup: no virtio-mem at all; KVM brings -cpu host; a disk by fdset. */
        l = (struct qemu_layout){.startup = 256 * MIB, .block = 2 * MIB};
        c.n_extra = 0;
        c.disk = "/srv/web.qcow2";
        h.disk = 8;
        h.disk_ro = 9;
        h.layer[0] = (struct qemu_disk_layer){.path = "/srv/web.qcow2", .qcow2 = true, .fd = 8};
        h.layer[1] = (struct qemu_disk_layer){.path = "/srv/base.raw", .qcow2 = false, .fd = 10};
        h.n_layers = 2;
        assert_int_equal(qemu_argv_build("web", &c, &l, &p, &h, true, &old, &argv), 0);
        assert_true(has_pair(argv, "-add-fd", "fd=8,set=2,opaque=/srv/web.qcow2"));
        assert_true(has_pair(argv, "-add-fd", "fd=9,set=2,opaque=/srv/web.qcow2"));
        assert_true(has_pair(argv, "-add-fd", "fd=10,set=3,opaque=/srv/base.raw"));
        assert_true(has_pair(argv, "-drive",
                             "driver=qcow2,file.driver=file,file.filename=/dev/fdset/2,"
                             "backing.driver=raw,backing.file.driver=file,"
                             "backing.file.filename=/dev/fdset/3,if=virtio"));
        assert_true(has_pair(argv, "-m", "size=262144k"));
        assert_false(has_word_with(argv, "virtio-mem"));
        assert_false(has_word_with(argv, "memory-backend"));
        assert_true(has_word_with(argv, "virtio-balloon-pci"));
        assert_true(has_pair(argv, "-accel", "kvm"));
        assert_true(has_pair(argv, "-cpu", "host"));
        qemu_strv_free(argv);
}

/* ---- the disk's layers, opened for QEMU ---- */

static bool sh(const char *dir, const char *cmd)
{
        char *line;
        int r;

        if (asprintf(&line, "cd '%s' && { %s; } >/dev/null 2>&1", dir, cmd) < 0)
                abort();
        r = system(line);
        free(line);
        return r == 0;
}

static int open_disk_as(const char *dir, const char *disk, const struct qemu_identity *id,
                        struct qemu_launch *ql, struct qemu_handover *h, char *err, size_t errlen)
{
        struct qemu_vm_config c = {0};
        struct qemu_paths p = {0};
        char *kernel, *path;
        int r;

        if (asprintf(&kernel, "%s/kernel", dir) < 0 || asprintf(&path, "%s/%s", dir, disk) < 0 ||
            asprintf(&p.qmp, "%s/q.qmp", dir) < 0 || asprintf(&p.agent, "%s/q.agent", dir) < 0)
                abort();
        c.kernel = kernel;
        c.disk = path;
        r = qemu_handover_open(&c, &p, -1, id, ql, h, err, errlen);
        unlink(p.qmp);
        unlink(p.agent);
        free(kernel), free(path), free(p.qmp), free(p.agent);
        return r;
}

static int open_disk(const char *dir, const char *disk, struct qemu_handover *h, char *err,
                     size_t errlen)
{
        struct qemu_identity id = {.switched = false};

        return open_disk_as(dir, disk, &id, NULL, h, err, errlen);
}

/* Each layer's fd must be of the layer's file, with the access mode QEMU asks for, blocking. */
static void assert_layer(const struct qemu_handover *h, size_t i, const char *name, int mode)
{
        int fd = h->fds[h->layer[i].fd - QEMU_HANDOVER_FIRST];
        struct stat a, b;

        assert_non_null(strstr(h->layer[i].path, name));
        assert_int_equal(fstat(fd, &a), 0);
        assert_int_equal(stat(h->layer[i].path, &b), 0);
        assert_true(a.st_ino == b.st_ino);
        assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, mode);
        assert_false(fcntl(fd, F_GETFL) & O_NONBLOCK); /* QEMU reads it in blocking mode */
}

/* A launcher for user nobody, or a skip saying why (root only, and setfacl). */
static struct qemu_launch *launcher_for_nobody(void)
{
        struct qemu_launch *ql = NULL;
        char err[256];

        if (geteuid() != 0) {
                print_message("# skipped: the launcher changes users only as root\n");
                skip();
        }
        if (system("command -v setfacl >/dev/null 2>&1") != 0) {
                print_message("# skipped: setfacl is not installed (package acl)\n");
                skip();
        }
        if (!getpwnam("nobody")) {
                print_message("# skipped: there is no user nobody\n");
                skip();
        }
        if (qemu_launch_new("nobody", &ql, err, sizeof(err)) < 0)
                fail_msg("qemu_launch_new: %s", err);
        assert_true(qemu_launch_identity(ql)->switched);
        assert_string_equal(qemu_launch_identity(ql)->problem, "");
        return ql;
}

/*
 * An image names its backing file, and QEMU writes the image: a backing file
 * that the QEMU user could not open itself is refused, the kernel and initrd's
 * rule, and nothing is left open. The kernel judges it as that user, ACLs
 * included, and the file itself, not the folders on the way to it (QEMU gets
 * dynmemd's descriptor): the test's folder is root's alone.
 */
static void a_backing_file_the_qemu_user_cannot_read_is_not_handed_over(void **state)
{
        struct qemu_launch *ql = launcher_for_nobody();
        const struct qemu_identity *id = qemu_launch_identity(ql);
        char *dir = qt_tempdir(), err[512];
        struct qemu_handover h;

        (void)state;
        if (!sh(dir, "qemu-img --version")) {
                qemu_launch_free(ql);
                qt_rmtree(dir);
                skip();
        }
        assert_true(sh(dir, "chmod 0700 . && touch kernel && chmod 0644 kernel && "
                            "qemu-img create -f raw secret.raw 1M && chmod 0600 secret.raw && "
                            "qemu-img create -f qcow2 -b secret.raw -F raw over.qcow2"));
        assert_int_equal(open_disk_as(dir, "over.qcow2", id, ql, &h, err, sizeof(err)), -EACCES);
        print_message("# %s\n", err);
        assert_non_null(strstr(err, "backing file "));
        assert_non_null(
            strstr(err, "secret.raw: Permission denied (as user nobody, whom QEMU runs as)"));
        assert_int_equal(h.n, 0);

        /* Readable by others: handed over. */
        assert_true(sh(dir, "chmod 0644 secret.raw"));
        assert_int_equal(open_disk_as(dir, "over.qcow2", id, ql, &h, err, sizeof(err)), 0);
        assert_int_equal(h.n_layers, 2);
        qemu_handover_close(&h, -1);

        /* Mode 0600 and an ACL entry for nobody (the mode bits alone would refuse it). */
        assert_true(sh(dir, "chmod 0600 secret.raw && setfacl -m u:nobody:r secret.raw"));
        assert_int_equal(open_disk_as(dir, "over.qcow2", id, ql, &h, err, sizeof(err)), 0);
        assert_int_equal(h.n_layers, 2);
        qemu_handover_close(&h, -1);

        /* Mode 0644 and an entry that gives nobody nothing (the mode bits alone would allow it). */
        assert_true(sh(dir, "setfacl -b secret.raw && chmod 0644 secret.raw && "
                            "setfacl -m u:nobody:--- secret.raw"));
        assert_int_equal(open_disk_as(dir, "over.qcow2", id, ql, &h, err, sizeof(err)), -EACCES);
        assert_non_null(strstr(err, "secret.raw: Permission denied (as user nobody"));
        assert_int_equal(h.n, 0);
        qemu_launch_free(ql);
        qt_rmtree(dir);
}

/* The kernel and initrd the same way: as the QEMU user, ACLs included. */
static void the_kernel_and_initrd_are_judged_for_the_qemu_user_acls_included(void **state)
{
        struct qemu_launch *ql = launcher_for_nobody();
        const struct qemu_identity *id = qemu_launch_identity(ql);
        char *dir = qt_tempdir(), err[512];
        struct qemu_vm_config c = {0};
        struct qemu_paths p = {0};
        struct qemu_handover h;
        char *kernel, *initrd;

        (void)state;
        if (asprintf(&kernel, "%s/vmlinuz", dir) < 0 || asprintf(&initrd, "%s/initrd", dir) < 0 ||
            asprintf(&p.qmp, "%s/q.qmp", dir) < 0 || asprintf(&p.agent, "%s/q.agent", dir) < 0)
                abort();
        c.kernel = kernel, c.initrd = initrd;
        assert_true(sh(dir, "chmod 0700 . && touch vmlinuz initrd && chmod 0600 vmlinuz initrd"));
        assert_int_equal(qemu_handover_open(&c, &p, -1, id, ql, &h, err, sizeof(err)), -EACCES);
        print_message("# %s\n", err);
        char want[PATH_MAX + 100];
        snprintf(want, sizeof(want), "kernel %s: %s (as user nobody, whom QEMU runs as)", kernel,
                 strerror(EACCES));
        assert_string_equal(err, want);
        assert_true(sh(dir, "setfacl -m u:nobody:r vmlinuz"));
        assert_int_equal(qemu_handover_open(&c, &p, -1, id, ql, &h, err, sizeof(err)), -EACCES);
        assert_non_null(strstr(err, "initrd "));
        char grant[64];
        snprintf(grant, sizeof(grant), "setfacl -m g:%u:r initrd", (unsigned)id->gid);
        assert_true(sh(dir, grant));
        assert_int_equal(qemu_handover_open(&c, &p, -1, id, ql, &h, err, sizeof(err)), 0);
        qemu_handover_close(&h, -1);
        /* Write alone is not read. */
        assert_true(sh(dir, "setfacl -b vmlinuz && chmod 0602 vmlinuz"));
        assert_int_equal(qemu_handover_open(&c, &p, -1, id, ql, &h, err, sizeof(err)), -EACCES);
        assert_non_null(strstr(err, "kernel "));
        unlink(p.qmp);
        unlink(p.agent);
        free(kernel), free(initrd), free(p.qmp), free(p.agent);
        qemu_launch_free(ql);
        qt_rmtree(dir);
}

static void a_qcow2_chain_is_handed_over_layer_by_layer(void **state)
{
        char *dir = qt_tempdir(), err[512];
        struct qemu_handover h;

        (void)state;
        if (!sh(dir, "qemu-img --version")) {
                qt_rmtree(dir);
                skip();
        }
        assert_true(sh(dir, "touch kernel && qemu-img create -f raw base.raw 1M && "
                            "qemu-img create -f qcow2 -b base.raw -F raw mid.qcow2 && "
                            "mkdir top && qemu-img create -f qcow2 -b ../mid.qcow2 -F qcow2 "
                            "top/over.qcow2 && qemu-img create -f qcow2 solo.qcow2 1M && "
                            "cp base.raw fake.qcow2"));

        /* The disk read-write and read-only; backing files read-only, relative to their image. */
        assert_int_equal(open_disk(dir, "top/over.qcow2", &h, err, sizeof(err)), 0);
        assert_int_equal(h.n_layers, 3);
        assert_layer(&h, 0, "/top/over.qcow2", O_RDWR);
        assert_int_equal(fcntl(h.fds[h.disk_ro - QEMU_HANDOVER_FIRST], F_GETFL) & O_ACCMODE,
                         O_RDONLY);
        assert_layer(&h, 1, "/mid.qcow2", O_RDONLY);
        assert_true(h.layer[1].qcow2);
        assert_layer(&h, 2, "/base.raw", O_RDONLY);
        assert_false(h.layer[2].qcow2);
        qemu_handover_close(&h, -1);

        assert_int_equal(open_disk(dir, "solo.qcow2", &h, err, sizeof(err)), 0);
        assert_int_equal(h.n_layers, 1);
        qemu_handover_close(&h, -1);
        assert_int_equal(open_disk(dir, "base.raw", &h, err, sizeof(err)), 0);
        assert_int_equal(h.n_layers, 1);
        assert_false(h.layer[0].qcow2);
        qemu_handover_close(&h, -1);

        /* What cannot be handed over is said, and nothing is left open. */
        assert_int_equal(open_disk(dir, "fake.qcow2", &h, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "not a qcow2 image"));
        assert_true(sh(dir, "qemu-img create -f qcow2 -b mid.qcow2 -F qcow2 l3.qcow2 && "
                            "qemu-img create -f qcow2 -b l3.qcow2 -F qcow2 l4.qcow2 && "
                            "qemu-img create -f qcow2 -b l4.qcow2 -F qcow2 l5.qcow2 && "
                            "qemu-img create -f qcow2 -u -b /dev/null -F host_device "
                            "dev.qcow2 1M"));
        assert_int_equal(open_disk(dir, "l4.qcow2", &h, err, sizeof(err)), 0);
        assert_int_equal(h.n_layers, 4);
        qemu_handover_close(&h, -1);
        assert_int_equal(open_disk(dir, "l5.qcow2", &h, err, sizeof(err)), -ELOOP);
        assert_non_null(strstr(err, "more than 3 backing files"));
        assert_int_equal(open_disk(dir, "dev.qcow2", &h, err, sizeof(err)), -ENOTSUP);
        assert_non_null(strstr(err, "host_device"));
        assert_int_equal(open_disk(dir, "missing.qcow2", &h, err, sizeof(err)), -ENOENT);

        /* The same verdicts when the config is read. */
        char *path;
        const char *const verdicts[][2] = {{"top/over.qcow2", "0"},
                                           {"l4.qcow2", "0"},
                                           {"l5.qcow2", "more than 3"},
                                           {"dev.qcow2", "host_device"},
                                           {"fake.qcow2", "not a qcow2"}};
        for (size_t i = 0; i < sizeof(verdicts) / sizeof(*verdicts); i++) {
                if (asprintf(&path, "%s/%s", dir, verdicts[i][0]) < 0)
                        abort();
                int r = qemu_disk_check(path, err, sizeof(err));
                assert_true(strcmp(verdicts[i][1], "0") == 0
                                ? r == 0
                                : r < 0 && strstr(err, verdicts[i][1]));
                free(path);
        }
        qt_rmtree(dir);
}

static int open_fds(void)
{
        DIR *d = opendir("/proc/self/fd");
        int n = 0;

        assert_non_null(d);
        while (readdir(d))
                n++;
        closedir(d);
        return n;
}

/* printf's octal bytes written into an image's header at an offset. */
#define PATCH(image, offset, bytes)                                                                \
        "cp solo.qcow2 " image " && printf '" bytes "' | dd of=" image " bs=1 seek=" #offset       \
        " conv=notrunc"

/*
 * A corrupt or hostile image (its header, its backing file's name) is
 * refused with a reason, by the config check and the handover alike, and
 * leaves nothing open: no hang on a FIFO, no loop, no read past the header.
 */
static void a_hostile_qcow2_image_is_refused(void **state)
{
        char *dir = qt_tempdir(), *path, err[512];
        struct qemu_handover h;
        static const struct {
                const char *image, *make;
                int error;
                const char *why;
        } cases[] = {
            {"v1.qcow2", PATCH("v1.qcow2", 4, "\\000\\000\\000\\001"), -ENOTSUP, "version 1"},
            {"bits.qcow2", PATCH("bits.qcow2", 20, "\\000\\000\\000\\077"), -EINVAL, "corrupt"},
            {"short.qcow2", PATCH("short.qcow2", 100, "\\000\\000\\000\\010"), -EINVAL, "corrupt"},
            {"far.qcow2",
             PATCH("far.qcow2", 8, "\\177\\377\\377\\377\\000\\000\\000\\000\\000\\000\\000\\004"),
             -EINVAL, "corrupt"},
            {"long.qcow2",
             "qemu-img create -f qcow2 -b base.raw -F raw long.qcow2 && printf "
             "'\\000\\000\\020\\000' "
             "| dd of=long.qcow2 bs=1 seek=16 conv=notrunc",
             -EINVAL, "unreadable backing file name"},
            {"fifo.qcow2",
             "mkfifo pipe && qemu-img create -f qcow2 -u -b pipe -F raw fifo.qcow2 1M", -EINVAL,
             "not a regular file"},
            {"dir.qcow2", "mkdir sub && qemu-img create -f qcow2 -u -b sub -F raw dir.qcow2 1M",
             -EINVAL, "not a regular file"},
            {"loop-a.qcow2",
             "qemu-img create -f qcow2 -u -b loop-b.qcow2 -F qcow2 loop-a.qcow2 1M && "
             "qemu-img create -f qcow2 -u -b loop-a.qcow2 -F qcow2 loop-b.qcow2 1M",
             -ELOOP, "more than 3"},
            {"up.qcow2",
             "qemu-img create -f qcow2 -u -b ../../../../../../../../../../dynmem-none.raw -F raw "
             "up.qcow2 1M",
             -ENOENT, "/dynmem-none.raw"},
        };

        (void)state;
        if (!sh(dir, "qemu-img --version")) {
                qt_rmtree(dir);
                skip();
        }
        assert_true(sh(dir, "touch kernel && qemu-img create -f raw base.raw 1M && "
                            "qemu-img create -f qcow2 solo.qcow2 1M"));
        int fds = open_fds();
        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                assert_true(sh(dir, cases[i].make));
                err[0] = '\0';
                assert_int_equal(open_disk(dir, cases[i].image, &h, err, sizeof(err)),
                                 cases[i].error);
                if (!strstr(err, cases[i].why))
                        fail_msg("%s: \"%s\" does not say \"%s\"", cases[i].image, err,
                                 cases[i].why);
                if (asprintf(&path, "%s/%s", dir, cases[i].image) < 0)
                        abort();
                err[0] = '\0';
                assert_int_equal(qemu_disk_check(path, err, sizeof(err)), cases[i].error);
                assert_non_null(strstr(err, cases[i].why));
                free(path);
                assert_int_equal(open_fds(), fds);
        }
        qt_rmtree(dir);
}

/* The handover of a kernel (and optional initrd and disk) named relative to dir. */
static int hand_over(const char *dir, const char *kernel, const char *initrd, const char *disk,
                     struct qemu_handover *h, char *err, size_t errlen)
{
        struct qemu_identity id = {.switched = false};
        struct qemu_vm_config c = {0};
        struct qemu_paths p = {0};
        char *k = NULL, *i = NULL, *d = NULL;
        int r;

        if (asprintf(&k, "%s/%s", dir, kernel) < 0 || asprintf(&p.qmp, "%s/q.qmp", dir) < 0 ||
            asprintf(&p.agent, "%s/q.agent", dir) < 0 ||
            (initrd && asprintf(&i, "%s/%s", dir, initrd) < 0) ||
            (disk && asprintf(&d, "%s/%s", dir, disk) < 0))
                abort();
        c.kernel = k, c.initrd = i, c.disk = d;
        r = qemu_handover_open(&c, &p, -1, &id, NULL, h, err, errlen);
        unlink(p.qmp);
        unlink(p.agent);
        free(k), free(i), free(d), free(p.qmp), free(p.agent);
        return r;
}

static bool is_blocking(int fd)
{
        int fl = fcntl(fd, F_GETFL);

        assert_true(fl >= 0);
        return !(fl & O_NONBLOCK);
}

/*
 * A kernel, initrd or disk replaced by a FIFO (or a device, a folder) after
 * the config was read: the start is refused at once, naming the file and
 * what it is, rather than dynmemd waiting in open() for a writer that never
 * comes. What is handed over is a regular file, in blocking mode.
 */
static void a_fifo_in_place_of_a_file_is_refused_without_waiting(void **state)
{
        char *dir = qt_tempdir(), err[512];
        struct qemu_handover h;
        static const struct {
                const char *kernel, *initrd, *disk, *what, *file, *is;
        } cases[] = {
            {"pipe", NULL, NULL, "kernel", "pipe", "a FIFO, not a regular file"},
            {"kernel", "pipe", NULL, "initrd", "pipe", "a FIFO, not a regular file"},
            {"kernel", NULL, "pipe", "disk", "pipe",
             "a FIFO, not a regular file or a block device"},
            {"kernel", NULL, "pipe.qcow2", "disk", "pipe.qcow2",
             "a FIFO, not a regular file or a block device"},
            {"null", NULL, NULL, "kernel", "null", "a character device, not a regular file"},
            {"kernel", "sub", NULL, "initrd", "sub", "a folder, not a regular file"},
        };
        char want[PATH_MAX + 128];

        (void)state;
        /* Without the fix, open() waits for a writer: fail then, rather than hang. */
        alarm(60);
        assert_true(sh(dir,
                       "touch kernel initrd disk.raw && mkfifo pipe pipe.qcow2 && mkdir sub && "
                       "ln -s /dev/null null"));
        int fds = open_fds();
        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                err[0] = '\0';
                assert_int_equal(hand_over(dir, cases[i].kernel, cases[i].initrd, cases[i].disk, &h,
                                           err, sizeof(err)),
                                 -EINVAL);
                snprintf(want, sizeof(want), "%s %s/%s is %s", cases[i].what, dir, cases[i].file,
                         cases[i].is);
                assert_string_equal(err, want);
                assert_int_equal(h.n, 0);
                assert_int_equal(open_fds(), fds);
        }

        /* Regular files are handed over, in blocking mode as QEMU expects them. */
        assert_int_equal(hand_over(dir, "kernel", "initrd", "disk.raw", &h, err, sizeof(err)), 0);
        assert_true(is_blocking(h.fds[h.kernel - QEMU_HANDOVER_FIRST]));
        assert_true(is_blocking(h.fds[h.initrd - QEMU_HANDOVER_FIRST]));
        assert_true(is_blocking(h.fds[h.disk - QEMU_HANDOVER_FIRST]));
        assert_true(is_blocking(h.fds[h.disk_ro - QEMU_HANDOVER_FIRST]));
        qemu_handover_close(&h, -1);
        alarm(0);
        qt_rmtree(dir);
}

/*
 * The console log replaced by a FIFO (or a device, a folder, a symlink): the
 * start is refused at once, naming it, rather than dynmemd waiting in open()
 * for a reader that never comes; reading its last line does not wait either.
 * A regular one is appended to, in blocking mode; a missing one is made with
 * QEMU_CONSOLE_LOG_MODE.
 */
static void a_fifo_in_place_of_the_console_log_is_refused_without_waiting(void **state)
{
        char *dir = qt_tempdir(), err[512], want[PATH_MAX + 128], path[PATH_MAX], line[64];
        static const struct {
                const char *file, *is;
        } cases[] = {
            {"pipe", "is a FIFO, not a regular file"},
            {"null", "is a symlink, not a regular file"}, /* never through one */
            {"sub", "is a folder, not a regular file"},
        };
        struct stat st;
        int fd;

        (void)state;
        alarm(60); /* without the fix open() waits for a reader: fail then, rather than hang */
        assert_true(sh(dir, "mkfifo pipe && mkdir sub && ln -s /dev/null null && "
                            "printf 'booted\\n' > old.log"));
        int fds = open_fds();
        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                snprintf(path, sizeof(path), "%s/%s", dir, cases[i].file);
                err[0] = '\0';
                assert_true(qemu_open_console_log(path, err, sizeof(err)) < 0);
                snprintf(want, sizeof(want), "console log %s %s", path, cases[i].is);
                assert_string_equal(err, want);
                assert_int_equal(open_fds(), fds);
        }
        snprintf(path, sizeof(path), "%s/pipe", dir);
        assert_int_equal(qemu_proc_log_last_line(path, 0, line, sizeof(line)), -ENOENT);

        /* A regular one: appended to, blocking, its mode kept. */
        snprintf(path, sizeof(path), "%s/old.log", dir);
        assert_int_equal(chmod(path, 0600), 0);
        assert_true((fd = qemu_open_console_log(path, err, sizeof(err))) >= 0);
        assert_true(is_blocking(fd));
        assert_true(fcntl(fd, F_GETFL) & O_APPEND);
        assert_int_equal(write(fd, "again\n", 6), 6);
        close(fd);
        assert_int_equal(qemu_proc_log_last_line(path, 0, line, sizeof(line)), 0);
        assert_string_equal(line, "again");
        assert_int_equal(stat(path, &st), 0);
        assert_int_equal(st.st_size, 13);
        assert_int_equal(st.st_mode & 07777, 0600);

        /* A missing one: made, owner read-write and group read (less the umask). */
        mode_t mask = umask(022);
        snprintf(path, sizeof(path), "%s/new.log", dir);
        assert_true((fd = qemu_open_console_log(path, err, sizeof(err))) >= 0);
        close(fd);
        umask(mask);
        assert_int_equal(stat(path, &st), 0);
        assert_true(S_ISREG(st.st_mode));
        assert_int_equal(st.st_mode & 07777, QEMU_CONSOLE_LOG_MODE);
        alarm(0);
        qt_rmtree(dir);
}

static void layout_follows_the_settings(void **state)
{
        struct vm_settings s = {.dynamic = true,
                                .startup_bytes = 512 * MIB,
                                .minimum_bytes = 256 * MIB,
                                .maximum_bytes = 2 * GIB,
                                .block_bytes = 2 * MIB};
        struct qemu_layout l;

        (void)state;
        qemu_layout_from_settings(&s, &l);
        /* the first block is plugged from the start, not boot RAM */
        assert_int_equal(l.startup, 510 * MIB);
        assert_int_equal(l.region, 1538 * MIB);
        assert_int_equal(l.first, 2 * MIB);
        s.dynamic = false;
        qemu_layout_from_settings(&s, &l);
        assert_int_equal(l.startup, 512 * MIB);
        assert_int_equal(l.region, 0);
        assert_int_equal(l.first, 0);
}

static void paths_fit_in_a_socket_address(void **state)
{
        struct qemu_paths p;
        char err[256], longdir[200];

        (void)state;
        assert_int_equal(
            qemu_paths_make("/run/dynmem", "/var/lib/dynmem", "web", &p, err, sizeof(err)), 0);
        assert_string_equal(p.qmp, "/run/dynmem/web.qmp");
        assert_string_equal(p.agent, "/run/dynmem/web.agent");
        assert_string_equal(p.pid, "/run/dynmem/web.pid");
        assert_string_equal(p.console, "/var/lib/dynmem/web.console.log");
        qemu_paths_free(&p);
        memset(longdir, 'd', sizeof(longdir) - 1);
        longdir[0] = '/';
        longdir[sizeof(longdir) - 1] = '\0';
        assert_int_equal(qemu_paths_make(longdir, "/var", "web", &p, err, sizeof(err)),
                         -ENAMETOOLONG);
        assert_non_null(strstr(err, "longer than"));
}

static void accel_is_chosen_and_explained(void **state)
{
        struct qemu_identity own = {.switched = false, .uid = geteuid(), .gid = getegid()};
        char why[QEMU_ACCEL_WHY_MAX];
        bool kvm = true;

        (void)state;
        snprintf(own.name, sizeof(own.name), "me");
        assert_int_equal(qemu_accel_choose(QEMU_ACCEL_TCG, NULL, &own, &kvm, why, sizeof(why)), 0);
        assert_false(kvm);
        assert_string_equal(why, "tcg (accel = tcg)");
        assert_int_equal(qemu_accel_choose(QEMU_ACCEL_AUTO, NULL, &own, &kvm, why, sizeof(why)), 0);
        assert_non_null(strstr(why, kvm ? "kvm (auto: " : "tcg (auto: "));
        bool auto_kvm = kvm;
        int r = qemu_accel_choose(QEMU_ACCEL_KVM, NULL, &own, &kvm, why, sizeof(why));
        /* Demanding KVM works exactly where auto would choose it. */
        assert_int_equal(r == 0, auto_kvm);
        if (r < 0) {
                assert_int_equal(r, -ENODEV);
                assert_non_null(strstr(why, "KVM does not work here"));
        }
}

/* Whether QEMU may open a KVM device (a file made here), after shell commands on it. */
static bool usable(const char *path, const char *cmd, struct qemu_launch *ql,
                   const struct qemu_identity *id, char *why, size_t len)
{
        char *line;

        assert_true(asprintf(&line, "f='%s'; %s", path, cmd) > 0);
        assert_int_equal(system(line), 0);
        free(line);
        return qemu_kvm_usable_by(path, ql, id, why, len);
}

/* A QEMU that runs as dynmemd's own user: dynmemd's own open decides. */
static void the_kvm_device_opens_for_dynmemds_own_user(void **state)
{
        char path[] = "/tmp/test-qemu-kvm-XXXXXX", why[QEMU_ACCEL_WHY_MAX];
        int fd = mkstemp(path);
        struct qemu_identity own = {
            .switched = false, .uid = geteuid(), .gid = getegid(), .name = "me"};

        (void)state;
        assert_true(fd >= 0);
        close(fd);
        assert_true(usable(path, "chmod 0600 \"$f\"", NULL, &own, why, sizeof(why)));
        assert_non_null(strstr(why, "opens for user me, whom QEMU runs as"));
        assert_int_equal(unlink(path), 0);
        assert_false(qemu_kvm_usable_by(path, NULL, &own, why, sizeof(why)));
        assert_non_null(strstr(why, strerror(ENOENT)));
        assert_non_null(strstr(why, "as user me"));
}

/*
 * Another QEMU user: the launcher becomes it and the kernel judges, so an
 * ACL counts as it does for QEMU's open (a grant to the user or its group, a
 * mask that takes back what the mode bits seem to give), and so does the
 * refusal's errno. Needs root (the launcher changes users) and setfacl.
 */
static void the_kvm_device_is_judged_for_the_qemu_user_acls_included(void **state)
{
        char path[] = "/tmp/test-qemu-kvm-XXXXXX", why[QEMU_ACCEL_WHY_MAX], err[256], want[256];
        struct qemu_launch *ql = NULL;
        struct passwd *pw;

        (void)state;
        if (geteuid() != 0) {
                print_message("# skipped: the launcher changes users only as root\n");
                skip();
        }
        if (system("command -v setfacl >/dev/null 2>&1") != 0) {
                print_message("# skipped: setfacl is not installed (package acl)\n");
                skip();
        }
        assert_non_null(pw = getpwnam("nobody"));
        if (qemu_launch_new("nobody", &ql, err, sizeof(err)) < 0)
                fail_msg("qemu_launch_new: %s", err);
        const struct qemu_identity *id = qemu_launch_identity(ql);
        assert_true(id->switched);
        assert_string_equal(id->problem, "");
        int fd = mkstemp(path);
        assert_true(fd >= 0);
        close(fd);
        assert_int_equal(chown(path, 0, 0), 0);

        /* Root's alone: refused, with the kernel's reason. */
        assert_false(usable(path, "chmod 0600 \"$f\"", ql, id, why, sizeof(why)));
        snprintf(want, sizeof(want), "%s: %s (as user nobody, whom QEMU runs as)", path,
                 strerror(EACCES));
        assert_string_equal(why, want);
        /* The mode bits alone still count: the others' bits for nobody, not the group's. */
        assert_true(usable(path, "chmod 0606 \"$f\"", ql, id, why, sizeof(why)));
        assert_non_null(strstr(why, "may be read and written by user nobody, whom QEMU runs as"));
        assert_false(usable(path, "chmod 0660 \"$f\"", ql, id, why, sizeof(why)));
        /* Read alone is not enough. */
        assert_false(usable(path, "chmod 0604 \"$f\"", ql, id, why, sizeof(why)));

        /* Mode 0600, but an ACL entry for the user (as udev's uaccess gives): usable. */
        char cmd[160];
        snprintf(cmd, sizeof(cmd), "chmod 0600 \"$f\" && setfacl -m u:%u:rw \"$f\"",
                 (unsigned)pw->pw_uid);
        assert_true(usable(path, cmd, ql, id, why, sizeof(why)));
        /* ... or for its group. */
        snprintf(cmd, sizeof(cmd),
                 "setfacl -b \"$f\" && chmod 0600 \"$f\" && setfacl -m g:%u:rw \"$f\"",
                 (unsigned)pw->pw_gid);
        assert_true(usable(path, cmd, ql, id, why, sizeof(why)));

        /*
         * Mode bits that seem to allow it, an ACL that takes it back: unusable. A
         * mask without write over the user's entry (mode 0646), and an entry
         * that grants the user nothing (mode 0666). (A mask of --- would not do:
         * with no group bits Linux reads no ACL, and the others' bits apply.)
         */
        snprintf(cmd, sizeof(cmd),
                 "setfacl -b \"$f\" && chmod 0666 \"$f\" && setfacl -m u:%u:rw,m::r \"$f\"",
                 (unsigned)pw->pw_uid);
        assert_false(usable(path, cmd, ql, id, why, sizeof(why)));
        assert_string_equal(why, want);
        snprintf(cmd, sizeof(cmd),
                 "setfacl -b \"$f\" && chmod 0666 \"$f\" && setfacl -m u:%u:--- \"$f\"",
                 (unsigned)pw->pw_uid);
        assert_false(usable(path, cmd, ql, id, why, sizeof(why)));
        assert_string_equal(why, want);

        /* Gone: the kernel's ENOENT. */
        assert_int_equal(unlink(path), 0);
        assert_false(qemu_kvm_usable_by(path, ql, id, why, sizeof(why)));
        snprintf(want, sizeof(want), "%s: %s (as user nobody, whom QEMU runs as)", path,
                 strerror(ENOENT));
        assert_string_equal(why, want);
        qemu_launch_free(ql);
}

/*
 * The launcher answers only well-formed questions: an absolute path, read or
 * write or both; a user that cannot be QEMU's is said instead of asked.
 */
static void the_launcher_asks_only_well_formed_questions(void **state)
{
        struct qemu_launch *ql = NULL;
        char err[256];

        (void)state;
        if (qemu_launch_new(NULL, &ql, err, sizeof(err)) < 0)
                fail_msg("qemu_launch_new: %s", err);
        if (!qemu_launch_identity(ql)->problem[0]) {
                assert_int_equal(qemu_launch_access(ql, "dev/kvm", R_OK, err, sizeof(err)),
                                 -EINVAL);
                assert_int_equal(qemu_launch_access(ql, "/", X_OK, err, sizeof(err)), -EINVAL);
                assert_int_equal(qemu_launch_access(ql, "/", 0, err, sizeof(err)), -EINVAL);
                assert_int_equal(qemu_launch_access(ql, "/", R_OK, err, sizeof(err)), 0);
        }
        qemu_launch_free(ql);
        if (geteuid() != 0)
                return; /* only root can be asked for another user */
        if (qemu_launch_new("root", &ql, err, sizeof(err)) < 0)
                fail_msg("qemu_launch_new: %s", err);
        assert_int_equal(qemu_launch_access(ql, "/", R_OK, err, sizeof(err)), -EPERM);
        assert_non_null(strstr(err, "QEMU never runs as root"));
        qemu_launch_free(ql);
}

/* ---- keys ---- */

struct keys {
        char *dir;
        char *image;
        struct config cfg;
        struct config_diag diag;
};

static void write_file(const char *dir, const char *name, const char *text)
{
        char path[PATH_MAX];
        FILE *f;

        snprintf(path, sizeof(path), "%s/%s", dir, name);
        assert_non_null(f = fopen(path, "w"));
        fputs(text, f);
        fclose(f);
}

static int keys_setup(void **state)
{
        struct keys *k = calloc(1, sizeof(*k));

        k->dir = qt_tempdir();
        assert_true(asprintf(&k->image, "%s/image", k->dir) > 0);
        assert_int_equal(mkdir(k->image, 0755), 0);
        write_file(k->image, "vmlinuz", "kernel");
        write_file(k->image, "initrd.img", "initrd");
        write_file(k->image, "cmdline", "console=ttyS0 memhp_default_state=online_movable\n");
        write_file(k->dir, "own-kernel", "kernel");
        *state = k;
        return 0;
}

static int keys_teardown(void **state)
{
        struct keys *k = *state;

        config_free(&k->cfg);
        config_diag_free(&k->diag);
        free(k->image);
        qt_rmtree(k->dir);
        free(k);
        return 0;
}

/* Load ini as DIR/vm.ini and parse its first VM's keys. */
static int parse(struct keys *k, const char *ini, bool check_files, struct qemu_vm_config *c)
{
        char path[512];

        write_file(k->dir, "vm.ini", ini);
        snprintf(path, sizeof(path), "%s/vm.ini", k->dir);
        config_free(&k->cfg);
        config_diag_free(&k->diag);
        if (config_load(path, &k->cfg, &k->diag) < 0) {
                for (size_t i = 0; i < k->diag.count; i++)
                        print_message("# %s\n", k->diag.messages[i]);
                fail_msg("config did not load");
        }
        return qemu_config_parse(&k->cfg, &k->cfg.vms[0], k->image, check_files, c, &k->diag);
}

/* The diag message for line `line` of vm.ini containing needle. */
static bool diag_has(struct keys *k, unsigned line, const char *needle)
{
        char prefix[512];

        snprintf(prefix, sizeof(prefix), "%s/vm.ini:%u: vm \"", k->dir, line);
        for (size_t i = 0; i < k->diag.count; i++)
                if (strncmp(k->diag.messages[i], prefix, strlen(prefix)) == 0 &&
                    strstr(k->diag.messages[i], needle))
                        return true;
        for (size_t i = 0; i < k->diag.count; i++)
                print_message("# %s\n", k->diag.messages[i]);
        return false;
}

static void the_bundled_image_is_the_default(void **state)
{
        struct keys *k = *state;
        struct qemu_vm_config c;
        char want[512];

        assert_int_equal(parse(k, "[vm \"web\"]\nappend = dynmem.load=ramp:100M:10s\n", true, &c),
                         0);
        assert_true(c.bundled_image);
        snprintf(want, sizeof(want), "%s/vmlinuz", k->image);
        assert_string_equal(c.kernel, want);
        snprintf(want, sizeof(want), "%s/initrd.img", k->image);
        assert_string_equal(c.initrd, want);
        assert_string_equal(c.append, "console=ttyS0 memhp_default_state=online_movable "
                                      "dynmem.load=ramp:100M:10s");
        assert_string_equal(c.qemu, QEMU_DEFAULT_BINARY);
        assert_int_equal(c.cpus, 1);
        assert_int_equal(c.accel, QEMU_ACCEL_AUTO);
        assert_int_equal(c.shutdown_timeout_ms, QEMU_SHUTDOWN_DEFAULT);
        qemu_config_free(&c);
}

static void own_kernel_paths_are_relative_to_the_config(void **state)
{
        struct keys *k = *state;
        struct qemu_vm_config c;
        char want[512];

        assert_int_equal(parse(k,
                               "[vm \"web\"]\nkernel = own-kernel\nappend = console=ttyS0\n"
                               "cpus = 4\naccel = tcg\nshutdown_timeout = 5s\nmachine = q35\n"
                               "qemu_args = -no-reboot -device virtio-rng-pci\n",
                               true, &c),
                         0);
        assert_false(c.bundled_image);
        snprintf(want, sizeof(want), "%s/own-kernel", k->dir);
        assert_string_equal(c.kernel, want);
        assert_null(c.initrd);
        assert_string_equal(c.append, "console=ttyS0");
        assert_int_equal(c.cpus, 4);
        assert_int_equal(c.accel, QEMU_ACCEL_TCG);
        assert_string_equal(c.machine, "q35");
        assert_int_equal(c.shutdown_timeout_ms, 5000);
        assert_int_equal(c.n_extra, 3);
        assert_string_equal(c.extra[2], "virtio-rng-pci");
        qemu_config_free(&c);
}

static void bad_keys_are_reported_with_file_and_line(void **state)
{
        struct keys *k = *state;
        struct qemu_vm_config c;

        assert_int_equal(parse(k,
                               "[vm \"web\"]\n"                           /* 1 */
                               "dynamic = yes\n"                          /* 2 */
                               "startup = 256M\n"                         /* 3 */
                               "maximum = 1G\n"                           /* 4 */
                               "block = 1M\n"                             /* 5 */
                               "kernel = missing-kernel\n"                /* 6 */
                               "cpus = many\n"                            /* 7 */
                               "accel = hvf\n"                            /* 8 */
                               "qemu_args = -object memory-backend-ram\n" /* 9 */
                               "qemu = /nonexistent/qemu\n"               /* 10 */
                               "shutdown_timeout = 2h\n"                  /* 11 */
                               "disk = 'unterminated\n"                   /* 12 */
                               "append = a\tb\n"                          /* 13 */
                               "machine = pc i440fx\n",                   /* 14 */
                               true, &c),
                         -EINVAL);
        assert_true(diag_has(k, 5, "block 1 MiB is below virtio-mem's 2 MiB"));
        assert_true(diag_has(k, 6, "missing-kernel: No such file or directory"));
        assert_true(diag_has(k, 7, "cpus: \"many\""));
        assert_true(diag_has(k, 8, "accel: \"hvf\" is not auto, kvm or tcg"));
        assert_true(diag_has(k, 9, "memory-backend"));
        assert_true(diag_has(k, 10, "QEMU binary /nonexistent/qemu"));
        assert_true(diag_has(k, 11, "shutdown_timeout"));
        assert_true(diag_has(k, 12, "disk"));
        assert_true(diag_has(k, 13, "control characters"));
        assert_true(diag_has(k, 14, "machine: \"pc i440fx\" is not a machine type name"));
        /* Without the file checks (configure_vm), only the file problems go away. */
        config_diag_free(&k->diag);
        assert_int_equal(parse(k, "[vm \"web\"]\nkernel = missing-kernel\ncpus = 2\n", false, &c),
                         0);
        assert_string_equal(c.machine, "pc");
        qemu_config_free(&c);
        /* A disk whose layers cannot be handed to QEMU is refused when the config is read. */
        config_diag_free(&k->diag);
        write_file(k->dir, "fake.qcow2", "raw bytes, no qcow2 header");
        assert_int_equal(parse(k, "[vm \"web\"]\ndisk = fake.qcow2\n", true, &c), -EINVAL);
        assert_true(diag_has(k, 2, "fake.qcow2: not a qcow2 image"));
}

/*
 * A comment after a value is " ;" in this INI dialect: '#' there, or a ';'
 * right after the value, is part of the value, and the QEMU backend's keys
 * say so as the host's keys do.
 */
static void a_comment_in_a_value_is_explained(void **state)
{
#define HINT "(a comment after a value starts with \" ;\""
        static const struct {
                const char *line, *said;
        } cases[] = {
            {"cpus = 2 # two", "cpus: \"2 # two\" is not a number in 1.."},
            {"cpus = 2; two", "cpus: \"2; two\" is not a number"},
            {"accel = kvm # fast", "accel: \"kvm # fast\" is not auto, kvm or tcg"},
            {"machine = q35 # new", "machine: \"q35 # new\" is not a machine type name"},
            {"machine = q35;new", "machine: \"q35;new\" is not a machine type name"},
            {"shutdown_timeout = 30s # grace", "shutdown_timeout: \"30s # grace\" is not a"},
        };
        struct keys *k = *state;
        struct qemu_vm_config c;
        char ini[256];

        for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
                config_diag_free(&k->diag);
                snprintf(ini, sizeof(ini), "[vm \"web\"]\n%s\n", cases[i].line);
                assert_int_equal(parse(k, ini, false, &c), -EINVAL);
                bool found = false;
                for (size_t j = 0; j < k->diag.count; j++)
                        found = found || (strstr(k->diag.messages[j], cases[i].said) &&
                                          strstr(k->diag.messages[j], HINT));
                if (!found)
                        fail_msg("%s: \"%s\" without the comment hint", cases[i].line,
                                 k->diag.count ? k->diag.messages[0] : "(nothing said)");
        }
        /* A value without a comment says nothing of comments. */
        config_diag_free(&k->diag);
        assert_int_equal(parse(k, "[vm \"web\"]\ncpus = many\n", false, &c), -EINVAL);
        assert_non_null(strstr(k->diag.messages[0], "cpus: \"many\""));
        assert_null(strstr(k->diag.messages[0], "comment"));
#undef HINT
}

/* shutdown_timeout = 7200 is two hours: the refusal says the bare number was read as seconds. */
static void a_bare_shutdown_timeout_is_said_to_be_seconds(void **state)
{
        struct keys *k = *state;
        struct qemu_vm_config c;

        config_diag_free(&k->diag);
        assert_int_equal(parse(k, "[vm \"web\"]\nshutdown_timeout = 7200\n", false, &c), -EINVAL);
        assert_true(diag_has(k, 2,
                             "shutdown_timeout: \"7200\" (seconds) is not a duration in "
                             "100ms..1h"));
        config_diag_free(&k->diag);
        assert_int_equal(parse(k, "[vm \"web\"]\nshutdown_timeout = 2h\n", false, &c), -EINVAL);
        assert_true(diag_has(k, 2, "shutdown_timeout: \"2h\" is not a duration in 100ms..1h"));
}

/* A machine type that cannot take virtio-mem is the config's problem, not a start's. */
static void machines_without_virtio_mem_are_refused_when_read(void **state)
{
        static const char *const refused[] = {"microvm",  "isapc",  "none",
                                              "x-remote", "ubuntu", "pc-i440fx-latest"};
        static const char *const taken[] = {"pc", "q35", "pc-i440fx-7.2", "pc-q35-10.0",
                                            "pc-i440fx-1.0"};
        struct keys *k = *state;
        struct qemu_vm_config c;
        char ini[256], want[256];

        for (size_t i = 0; i < sizeof(refused) / sizeof(*refused); i++) {
                /* Without the file checks too: nothing but the name is needed. */
                for (int files = 0; files <= 1; files++) {
                        config_diag_free(&k->diag);
                        snprintf(ini, sizeof(ini), "[vm \"web\"]\nmachine = %s\n", refused[i]);
                        assert_int_equal(parse(k, ini, files, &c), -EINVAL);
                        snprintf(want, sizeof(want),
                                 "web\": machine: \"%s\" cannot take virtio-mem hot-plug: "
                                 "dynmem runs the pc",
                                 refused[i]);
                        assert_true(diag_has(k, 2, want));
                }
        }
        for (size_t i = 0; i < sizeof(taken) / sizeof(*taken); i++) {
                config_diag_free(&k->diag);
                snprintf(ini, sizeof(ini), "[vm \"web\"]\nmachine = %s\n", taken[i]);
                assert_int_equal(parse(k, ini, true, &c), 0);
                assert_string_equal(c.machine, taken[i]);
                qemu_config_free(&c);
        }
}

/*
 * The disk is opened read-write at each start: one dynmemd may read but not
 * write is a problem when the config is read. Checked without capabilities
 * (as dynmemd runs), in a child, so that root's override does not apply.
 */
static void a_disk_that_cannot_be_written_is_refused(void **state)
{
        struct keys *k = *state;
        struct qemu_vm_config c;
        char path[512];
        int status;
        pid_t pid;

        write_file(k->dir, "ro.img", "raw disk");
        write_file(k->dir, "rw.img", "raw disk");
        snprintf(path, sizeof(path), "%s/ro.img", k->dir);
        assert_int_equal(chmod(path, 0444), 0);
        assert_int_equal(parse(k, "[vm \"web\"]\ndisk = rw.img\n", true, &c), 0);
        qemu_config_free(&c);
        if ((pid = fork()) == 0) {
                cap_t none = cap_init();
                bool ok = none && cap_set_proc(none) == 0 &&
                          parse(k, "[vm \"web\"]\n\ndisk = ro.img\n", true, &c) == -EINVAL &&
                          diag_has(k, 3, "ro.img: Permission denied");
                _exit(ok ? 0 : 1);
        }
        assert_true(pid > 0);
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

/* A name is looked up in PATH's absolute folders only: the launcher takes no relative path. */
static void a_binary_is_found_in_absolute_path_folders_only(void **state)
{
        struct keys *k = *state;
        char *old = getenv("PATH") ? strdup(getenv("PATH")) : NULL, *found = NULL, cwd[512],
             path[600];

        assert_non_null(getcwd(cwd, sizeof(cwd)));
        snprintf(path, sizeof(path), "%s/bin", k->dir);
        assert_int_equal(mkdir(path, 0755), 0);
        write_file(path, "fake-qemu", "#!/bin/sh\n");
        snprintf(path, sizeof(path), "%s/bin/fake-qemu", k->dir);
        assert_int_equal(chmod(path, 0755), 0);
        assert_int_equal(chdir(k->dir), 0);
        setenv("PATH", "bin:.", 1);
        assert_int_equal(qemu_proc_find_binary("fake-qemu", &found), -ENOENT);
        snprintf(path, sizeof(path), "bin:%s/bin", k->dir);
        setenv("PATH", path, 1);
        assert_int_equal(qemu_proc_find_binary("fake-qemu", &found), 0);
        snprintf(path, sizeof(path), "%s/bin/fake-qemu", k->dir);
        assert_string_equal(found, path);
        free(found);
        assert_int_equal(chdir(cwd), 0);
        if (old)
                setenv("PATH", old, 1);
        else
                unsetenv("PATH");
        free(old);
}

static void a_missing_bundled_image_says_so(void **state)
{
        struct keys *k = *state;
        struct qemu_vm_config c;
        char path[512];

        snprintf(path, sizeof(path), "%s/vmlinuz", k->image);
        unlink(path);
        assert_int_equal(parse(k, "[vm \"web\"]\n", true, &c), -EINVAL);
        assert_true(diag_has(k, 1, "the bundled guest image"));
}

static void a_backend_without_directories_only_checks(void **state)
{
        struct keys *k = *state;
        struct backend *b;
        struct vm vm = {.name = "web"};
        char err[256];

        write_file(k->dir, "vm.ini", "[vm \"web\"]\nkernel = own-kernel\n");
        char path[512];
        snprintf(path, sizeof(path), "%s/vm.ini", k->dir);
        assert_int_equal(config_load(path, &k->cfg, &k->diag), 0);
        assert_int_equal(qemu_backend_new(&k->cfg, &(struct backend_env){0}, &b, err, sizeof(err)),
                         0);
        assert_int_equal(b->ops->check_vm(b, &k->cfg, &k->cfg.vms[0], &k->diag), 0);
        vm.settings = k->cfg.vms[0].settings;
        assert_int_equal(b->ops->configure_vm(b, &vm, &k->cfg, &k->cfg.vms[0], err, sizeof(err)),
                         0);
        assert_int_equal(b->ops->start(b, &vm, 0, err, sizeof(err)), -EINVAL);
        assert_string_equal(err, "no QEMU configuration, event loop or run directory");
        assert_int_equal(b->ops->reattach(b, &vm, 0), -EINVAL);
        assert_null(qemu_backend_agent_socket(&vm));
        b->ops->destroy(b);
        assert_null(vm.backend_data);
}

/* ---- memory arithmetic ---- */

static struct qemu_mem mem(uint64_t startup, uint64_t region)
{
        struct qemu_layout l = {.startup = startup, .region = region, .block = 2 * MIB};
        struct qemu_mem m;

        qemu_mem_init(&m, &l, true);
        return m;
}

/* Plan at now and pretend the requests went through QEMU (replies arrived). */
static struct qemu_mem_plan plan(struct qemu_mem *m, uint64_t now)
{
        struct qemu_mem_plan p;

        qemu_mem_plan(m, now, &p);
        m->requested_in_flight = false;
        if (p.set_requested)
                m->requested = p.requested;
        return p;
}

static void growing_deflates_first_then_plugs(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 768 * MIB);
        struct qemu_mem_plan p;

        (void)state;
        assert_int_equal(qemu_mem_assigned(&m), 256 * MIB);
        p = plan(&m, 0);
        assert_true(p.set_balloon); /* the first plan states the balloon once */
        assert_int_equal(p.balloon_value, 256 * MIB);
        assert_false(p.set_requested);
        /* Ballooned down to 192 MiB, then asked for 768 MiB. */
        m.target = 192 * MIB;
        p = plan(&m, 1000);
        assert_int_equal(p.balloon_value, 192 * MIB);
        qemu_mem_readback(&m, 192 * MIB, 0, 0, 2000);
        m.target = 768 * MIB;
        p = plan(&m, 3000);
        assert_true(p.set_balloon && p.set_requested && p.balloon_first);
        assert_int_equal(p.balloon_value, 256 * MIB);
        assert_int_equal(p.requested, 512 * MIB);
        qemu_mem_readback(&m, 256 * MIB, 512 * MIB, 512 * MIB, 4000);
        assert_int_equal(qemu_mem_assigned(&m), 768 * MIB);
        p = plan(&m, 5000);
        assert_false(p.set_balloon || p.set_requested);
}

static void shrinking_unplugs_first_then_balloons(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 768 * MIB);
        struct qemu_mem_plan p;

        (void)state;
        plan(&m, 0);
        m.target = 768 * MIB;
        plan(&m, 0);
        qemu_mem_readback(&m, 256 * MIB, 512 * MIB, 512 * MIB, 1000);
        m.target = 192 * MIB;
        p = plan(&m, 2000);
        assert_true(p.set_requested);
        assert_int_equal(p.requested, 0);
        assert_false(p.set_balloon); /* the balloon waits for the unplug */
        assert_false(p.balloon_first);
        qemu_mem_readback(&m, 256 * MIB, 256 * MIB, 0, 3000);
        p = plan(&m, 4000);
        assert_false(p.set_balloon || p.set_requested);
        qemu_mem_readback(&m, 256 * MIB, 0, 0, 5000);
        p = plan(&m, 6000);
        assert_true(p.set_balloon);
        assert_int_equal(p.balloon_value, 192 * MIB);
        qemu_mem_readback(&m, 192 * MIB, 0, 0, 7000);
        assert_int_equal(qemu_mem_assigned(&m), 192 * MIB);
}

/*
 * A reset empties virtio-mem and the balloon. QEMU keeps the balloon's old
 * "actual" until the new boot's driver writes one: the stale figure is not
 * believed (base RAM counts as the guest's) until it moves.
 */
static void a_reset_starts_from_empty_devices(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 768 * MIB);
        struct qemu_mem_plan p;

        (void)state;
        plan(&m, 0);
        m.target = 512 * MIB;
        plan(&m, 0);
        qemu_mem_readback(&m, 256 * MIB, 256 * MIB, 256 * MIB, 1000);
        qemu_mem_reset(&m, 2000);
        assert_int_equal(qemu_mem_assigned(&m), 256 * MIB);
        m.target = 256 * MIB;
        p = plan(&m, 2000);
        assert_true(p.set_requested && p.set_balloon); /* both stated again for the new boot */
        assert_int_equal(p.requested, 0);
        assert_int_equal(p.balloon_value, 256 * MIB);

        /* Ballooned to 192 MiB, reset, asked for 256 MiB: the guest inflates nothing. */
        m.target = 192 * MIB;
        plan(&m, 3000);
        qemu_mem_readback(&m, 192 * MIB, 0, 0, 4000);
        assert_int_equal(qemu_mem_assigned(&m), 192 * MIB);
        qemu_mem_reset(&m, 5000);
        m.target = 256 * MIB;
        plan(&m, 5000);
        qemu_mem_readback(&m, 192 * MIB, 0, 0, 6000); /* QEMU's stale figure */
        assert_int_equal(qemu_mem_assigned(&m), 256 * MIB);
        /* The new boot's driver writes a figure: believed again from then on. */
        qemu_mem_readback(&m, 224 * MIB, 0, 0, 7000);
        assert_int_equal(qemu_mem_assigned(&m), 224 * MIB);
        qemu_mem_readback(&m, 192 * MIB, 0, 0, 8000);
        assert_int_equal(qemu_mem_assigned(&m), 192 * MIB);
}

/*
 * A guest reboot drops the previous boot's estimate and balloon statistics: no
 * demand until the new boot reports. The agent connection goes on counting
 * urgent reports: the new boot's first report is not taken for a new stall.
 */
static void a_reboot_forgets_the_previous_boot(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 768 * MIB);
        struct qemu_guest_signal sg;
        struct agent_estimate e = {.report_ms = 1000,
                                   .demand_known = true,
                                   .demand_bytes = 300 * MIB,
                                   .stall_known = true,
                                   .urgent_reports = 3};
        struct vm_observation o = {0};

        (void)state;
        qemu_signal_reset(&sg);
        sg.reserve_known = true; /* measured before (the reboot keeps it): no wait for it */
        assert_true(qemu_signal_agent(&sg, &e));
        qemu_signal_stats(&sg, 250 * MIB, 100 * MIB, 7, 1000);
        qemu_signal_observe(&sg, &m, 1000, 1000, &o);
        assert_true(o.demand_known && o.stall_urgent);

        qemu_signal_reboot(&sg);
        o = (struct vm_observation){0};
        qemu_signal_observe(&sg, &m, 1100, 1100, &o);
        assert_false(o.demand_known);
        assert_false(o.guest_visible_known);
        assert_int_equal(sg.source, QEMU_SIGNAL_NONE);
        /* The old boot's statistics arriving late are not this boot's, */
        qemu_signal_stats(&sg, 250 * MIB, 100 * MIB, 7, 1100);
        qemu_signal_observe(&sg, &m, 1100, 1100, &o);
        assert_false(o.demand_known);
        assert_false(o.guest_visible_known);
        /* nor after a second reset before new figures (SeaBIOS resets once more). */
        qemu_signal_reboot(&sg);
        qemu_signal_stats(&sg, 250 * MIB, 100 * MIB, 7, 1150);
        qemu_signal_observe(&sg, &m, 1150, 1150, &o);
        assert_false(o.demand_known);
        assert_false(o.guest_visible_known);
        /*
         * nor, after another reset, figures QEMU stamped later than any read (while the
         * agent was fresh they were not read): the first ones since a reboot are not
         * believed, the next other stamp is.
         */
        qemu_signal_reboot(&sg);
        qemu_signal_stats(&sg, 250 * MIB, 100 * MIB, 9, 1160);
        qemu_signal_observe(&sg, &m, 1160, 1160, &o);
        assert_false(o.demand_known);
        qemu_signal_stats(&sg, 200 * MIB, 150 * MIB, 11, 1170);
        qemu_signal_observe(&sg, &m, 1170, 1170, &o);
        assert_true(o.demand_known);
        assert_true(o.guest_visible_known);
        qemu_signal_reboot(&sg);

        e.report_ms = 1200;
        e.demand_bytes = 120 * MIB;
        assert_false(qemu_signal_agent(&sg, &e)); /* the same count: no stall began */
        qemu_signal_observe(&sg, &m, 1200, 1200, &o);
        assert_true(o.demand_known);
        assert_false(o.stall_urgent);
        assert_int_equal(sg.source, QEMU_SIGNAL_AGENT);
        e.urgent_reports++;
        assert_true(qemu_signal_agent(&sg, &e));
}

/* An agent that has connected and reported `line` at mono 1000 ms; its estimate in e. */
static void agent_reported(const char *line, struct agent_estimate *e)
{
        static const char hello[] = "DMG1 hello min=1 max=1 version=1 interval_ms=1000 "
                                    "agent=0.1.0 page_size=4096\n";
        struct agent *a;

        assert_int_equal(agent_new(NULL, &a), 0);
        agent_connected(a, 1000);
        assert_true(agent_feed(a, hello, strlen(hello), 1000) & AGENT_EV_READY);
        assert_true(agent_feed(a, line, strlen(line), 1000) & AGENT_EV_REPORT);
        assert_int_equal(agent_estimate(a, 1000, e), 0);
        agent_free(a);
}

/*
 * The guest's swap room (the policy weighs a rise past it as an OOM kill) is the
 * agent's swap_free_bytes, which holds the burst absorber's free room already:
 * it is not added again. An agent that does not report it, balloon statistics
 * and a reboot leave it unknown.
 */
static void the_swap_room_comes_from_the_agent(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 768 * MIB);
        struct qemu_guest_signal sg;
        struct agent_estimate e;
        struct vm_observation o = {0};

        (void)state;
        /* 2 GiB of swap free, 100 MiB of it the absorber's (200 MiB, 100 MiB used). */
        agent_reported("DMG1 report seq=1 time_ms=5 mem_total_bytes=268435456 "
                       "mem_free_bytes=0 mem_available_bytes=16777216 "
                       "absorber_bytes=104857600 absorber_ram_bytes=33554432 "
                       "absorber_size_bytes=209715200 swap_free_bytes=2147483648\n",
                       &e);
        qemu_signal_reset(&sg);
        qemu_signal_agent(&sg, &e);
        qemu_signal_observe(&sg, &m, 1000, 1000, &o);
        assert_int_equal(sg.source, QEMU_SIGNAL_AGENT);
        assert_true(o.swap_known);
        assert_int_equal(o.swap_bytes, 2 * GIB);

        /* A guest without swap has no room: known, 0. */
        agent_reported("DMG1 report seq=1 time_ms=5 mem_total_bytes=268435456 "
                       "mem_free_bytes=0 mem_available_bytes=16777216 swap_free_bytes=0\n",
                       &e);
        qemu_signal_agent(&sg, &e);
        o = (struct vm_observation){0};
        qemu_signal_observe(&sg, &m, 1000, 1000, &o);
        assert_true(o.swap_known);
        assert_int_equal(o.swap_bytes, 0);

        /* An agent that does not report swap_free_bytes: unknown, whatever else it says. */
        agent_reported("DMG1 report seq=1 time_ms=5 mem_total_bytes=268435456 "
                       "mem_free_bytes=0 mem_available_bytes=16777216 swap_used_bytes=0 "
                       "absorber_bytes=0 absorber_ram_bytes=0 absorber_size_bytes=209715200\n",
                       &e);
        qemu_signal_agent(&sg, &e);
        o = (struct vm_observation){0};
        qemu_signal_observe(&sg, &m, 1000, 1000, &o);
        assert_int_equal(sg.source, QEMU_SIGNAL_AGENT);
        assert_false(o.swap_known);
        assert_int_equal(o.swap_bytes, 0);

        /* The agent gone stale, demand from the balloon's statistics: unknown. */
        agent_reported("DMG1 report seq=1 time_ms=5 mem_total_bytes=268435456 "
                       "mem_free_bytes=0 mem_available_bytes=16777216 swap_free_bytes=1048576\n",
                       &e);
        qemu_signal_agent(&sg, &e);
        qemu_signal_stats(&sg, 250 * MIB, 100 * MIB, 7, 1000 + QEMU_AGENT_FRESH_MS);
        o = (struct vm_observation){0};
        qemu_signal_observe(&sg, &m, 1000 + QEMU_AGENT_FRESH_MS, 1000 + QEMU_AGENT_FRESH_MS, &o);
        assert_int_equal(sg.source, QEMU_SIGNAL_BALLOON);
        assert_false(o.swap_known);

        /* A reboot forgets it until the new boot's agent reports. */
        qemu_signal_reset(&sg);
        qemu_signal_agent(&sg, &e);
        qemu_signal_reboot(&sg);
        o = (struct vm_observation){0};
        qemu_signal_observe(&sg, &m, 1000, 1000, &o);
        assert_false(o.swap_known);
}

/* The agent's estimate at mono t: MemTotal 217 MiB, demand 150 MiB in the guest's terms. */
static struct agent_estimate guest_figures(uint64_t t, uint64_t mem_total)
{
        return (struct agent_estimate){.fresh = true,
                                       .report_ms = t,
                                       .visible_known = true,
                                       .visible_bytes = mem_total,
                                       .available_known = true,
                                       .available_bytes = mem_total - 150 * MIB,
                                       .demand_known = true,
                                       .demand_bytes = 150 * MIB};
}

/* Observe at t, the agent having reported e at t; the observation. */
static struct vm_observation observe_at(struct qemu_guest_signal *sg, const struct qemu_mem *m,
                                        struct agent_estimate e, uint64_t t)
{
        struct vm_observation o = {0};

        e.report_ms = t;
        qemu_signal_agent(sg, &e);
        qemu_signal_observe(sg, m, t, t, &o);
        return o;
}

/*
 * A new instance (a start, a reattach after dynmemd restarted, a VM arrived by live
 * migration) has not measured the guest kernel's reservation yet: until it has, its
 * demand is unknown (the VM keeps its size). The guest's figure alone would read the
 * reservation low and then step up by all of it when measured: 42 MiB for a VM just
 * arrived, which the policy, with no history, took for a rise and grew past its want.
 */
static void a_new_instance_waits_for_the_guest_reserve(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 768 * MIB);
        struct agent_estimate e = guest_figures(0, 217 * MIB);
        struct qemu_guest_signal sg;
        struct vm_observation o;

        (void)state;
        m.known = false; /* as at a reattach: nothing read back yet */
        qemu_signal_reset(&sg);
        o = observe_at(&sg, &m, e, 500);
        assert_false(o.demand_known);
        qemu_mem_readback(&m, 256 * MIB, 0, 0, 1000);
        for (uint64_t t = 1000; t < 1000 + QEMU_RESERVE_SETTLE_MS; t += 250) {
                o = observe_at(&sg, &m, e, t);
                assert_false(o.demand_known);
                assert_int_equal(o.demand_bytes, 0);
                /* What the guest sees and its stall are the agent's, as ever. */
                assert_int_equal(sg.source, QEMU_SIGNAL_AGENT);
                assert_true(o.guest_visible_known);
                assert_int_equal(o.guest_visible_bytes, 217 * MIB);
        }
        /* Measured (256 - 217 MiB): the first demand known is in the host's terms. */
        o = observe_at(&sg, &m, e, 1000 + QEMU_RESERVE_SETTLE_MS);
        assert_true(o.demand_known);
        assert_int_equal(o.demand_bytes, (150 + 39) * MIB);
        /* From then on, even while virtio-mem moves again, it stays in those terms. */
        m.target = 512 * MIB;
        plan(&m, 4000);
        o = observe_at(&sg, &m, e, 4500);
        assert_true(o.demand_known);
        assert_int_equal(o.demand_bytes, (150 + 39) * MIB);

        /* The balloon's statistics wait for it as well, and hand over to the agent. */
        m = mem(256 * MIB, 768 * MIB);
        m.known = false;
        qemu_signal_reset(&sg);
        qemu_mem_readback(&m, 256 * MIB, 0, 0, 1000);
        qemu_signal_stats(&sg, 217 * MIB, 67 * MIB, 7, 1000);
        o = (struct vm_observation){0};
        qemu_signal_observe(&sg, &m, 1000, 1000, &o);
        assert_int_equal(sg.source, QEMU_SIGNAL_BALLOON);
        assert_false(o.demand_known);
        qemu_signal_stats(&sg, 217 * MIB, 67 * MIB, 8, 1000 + QEMU_RESERVE_SETTLE_MS);
        qemu_signal_observe(&sg, &m, 1000 + QEMU_RESERVE_SETTLE_MS, 1000 + QEMU_RESERVE_SETTLE_MS,
                            &o);
        assert_true(o.demand_known);
        assert_int_equal(o.demand_bytes, (150 + 39) * MIB);
        o = observe_at(&sg, &m, e, 1000 + QEMU_RESERVE_SETTLE_MS + 500);
        assert_int_equal(sg.source, QEMU_SIGNAL_AGENT);
        assert_int_equal(o.demand_bytes, (150 + 39) * MIB);
}

/*
 * A guest whose reservation cannot be measured (virtio-mem never plugs its first block:
 * no driver; a MemTotal above what the VM holds: a lie) gets its demand in its own terms
 * QEMU_RESERVE_WAIT_MS after its first figure, as before the wait, and never more.
 */
static void a_reserve_never_measured_is_waited_for_a_while(void **state)
{
        struct qemu_layout l = {
            .startup = 256 * MIB, .region = 768 * MIB, .block = 2 * MIB, .first = 128 * MIB};
        struct qemu_mem m;
        struct qemu_guest_signal sg;
        struct vm_observation o;
        const uint64_t t0 = 5000;

        (void)state;
        /* The first block asked for at the start and never plugged. */
        qemu_mem_init(&m, &l, true);
        qemu_mem_readback(&m, 256 * MIB, 0, 128 * MIB, 1000);
        qemu_signal_reset(&sg);
        o = observe_at(&sg, &m, guest_figures(0, 217 * MIB), t0);
        assert_false(o.demand_known);
        o = observe_at(&sg, &m, guest_figures(0, 217 * MIB), t0 + QEMU_RESERVE_WAIT_MS - 1);
        assert_false(o.demand_known);
        o = observe_at(&sg, &m, guest_figures(0, 217 * MIB), t0 + QEMU_RESERVE_WAIT_MS);
        assert_true(o.demand_known);
        assert_int_equal(o.demand_bytes, 150 * MIB);
        assert_false(sg.reserve_known);

        /* A MemTotal of more than the VM holds measures nothing: its own figure, no more. */
        m = mem(256 * MIB, 768 * MIB);
        qemu_signal_reset(&sg);
        o = observe_at(&sg, &m, guest_figures(0, 300 * MIB), t0);
        assert_false(o.demand_known);
        o = observe_at(&sg, &m, guest_figures(0, 300 * MIB), t0 + QEMU_RESERVE_WAIT_MS);
        assert_true(o.demand_known);
        assert_int_equal(o.demand_bytes, 150 * MIB);
        assert_false(sg.reserve_known);

        /* A reboot before it was measured: the new boot's figures wait again. */
        qemu_signal_reboot(&sg);
        o = observe_at(&sg, &m, guest_figures(0, 300 * MIB), t0 + QEMU_RESERVE_WAIT_MS + 100);
        assert_false(o.demand_known);
}

/* The guest kernel's reservation is measured only while virtio-mem stands still. */
static void the_guest_reserve_is_measured_when_settled(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 768 * MIB);
        uint64_t r = 0;

        (void)state;
        m.known = false; /* as after a reattach: nothing read back yet */
        assert_false(qemu_mem_guest_reserve(&m, 217 * MIB, 500, &r));
        qemu_mem_readback(&m, 256 * MIB, 0, 0, 1000);
        /* Too soon after the first read-back. */
        assert_false(qemu_mem_guest_reserve(&m, 217 * MIB, 1000 + QEMU_RESERVE_SETTLE_MS - 1, &r));
        assert_true(qemu_mem_guest_reserve(&m, 217 * MIB, 1000 + QEMU_RESERVE_SETTLE_MS, &r));
        assert_int_equal(r, 39 * MIB);
        /* A balloon (deflate-on-oom) leaves MemTotal as it was: the same reservation. */
        qemu_mem_readback(&m, 192 * MIB, 0, 0, 4000);
        assert_true(qemu_mem_guest_reserve(&m, 217 * MIB, 5000, &r));
        assert_int_equal(r, 39 * MIB);
        /* A plug under way: plugged memory is not online yet. */
        m.target = 512 * MIB;
        plan(&m, 6000);
        assert_false(qemu_mem_guest_reserve(&m, 217 * MIB, 6500, &r));
        qemu_mem_readback(&m, 256 * MIB, 256 * MIB, 256 * MIB, 7000);
        assert_false(qemu_mem_guest_reserve(&m, 217 * MIB, 8000, &r));
        assert_true(qemu_mem_guest_reserve(&m, 473 * MIB, 7000 + QEMU_RESERVE_SETTLE_MS, &r));
        assert_int_equal(r, 39 * MIB);
        /* Impossible figures: more than is there, a reservation of half the startup size. */
        assert_false(qemu_mem_guest_reserve(&m, 600 * MIB, 20000, &r));
        assert_false(qemu_mem_guest_reserve(&m, 384 * MIB, 20000, &r));
        assert_false(qemu_mem_guest_reserve(&m, 0, 20000, &r));
}

static void a_stuck_unplug_is_made_up_by_the_balloon(void **state)
{
        struct qemu_mem m = mem(512 * MIB, 512 * MIB);
        struct qemu_mem_plan p;

        (void)state;
        plan(&m, 0);
        m.target = 1 * GIB;
        plan(&m, 0);
        qemu_mem_readback(&m, 512 * MIB, 512 * MIB, 512 * MIB, 1000);
        m.target = 640 * MIB; /* 128 MiB above startup */
        p = plan(&m, 2000);
        assert_int_equal(p.requested, 128 * MIB);
        /* The guest unplugs nothing for a long time. */
        qemu_mem_readback(&m, 512 * MIB, 512 * MIB, 128 * MIB, 3000);
        p = plan(&m, 2000 + QEMU_UNPLUG_STALL_MS - 1);
        assert_false(p.set_balloon);
        p = plan(&m, 2000 + QEMU_UNPLUG_STALL_MS);
        assert_false(p.set_balloon); /* target above startup: nothing to balloon */

        m.target = 384 * MIB; /* below startup now */
        p = plan(&m, 20000);
        assert_int_equal(p.requested, 0);
        qemu_mem_readback(&m, 512 * MIB, 512 * MIB, 0, 21000);
        p = plan(&m, 20000 + QEMU_UNPLUG_STALL_MS);
        assert_true(p.set_balloon && p.unplug_stalled);
        assert_int_equal(p.balloon_value, QEMU_BALLOON_FLOOR); /* 384 - 512 < floor */
        /* Part of it unplugs after all: the balloon gives back as much. */
        qemu_mem_readback(&m, QEMU_BALLOON_FLOOR, 128 * MIB, 0, 40000);
        p = plan(&m, 40001);
        assert_true(p.set_balloon);
        assert_int_equal(p.balloon_value, 256 * MIB);
        qemu_mem_readback(&m, 256 * MIB, 0, 0, 41000);
        p = plan(&m, 41001);
        assert_int_equal(p.balloon_value, 384 * MIB);
}

static void a_refused_plug_is_cut_back_and_retried_later(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 256 * MIB);
        struct qemu_mem_plan p;

        (void)state;
        plan(&m, 0);
        m.target = 512 * MIB;
        p = plan(&m, 1000);
        assert_int_equal(p.requested, 256 * MIB);
        qemu_mem_readback(&m, 256 * MIB, 0, 256 * MIB, 2000);
        p = plan(&m, 1000 + QEMU_PLUG_STALL_MS - 1);
        assert_false(p.set_requested || p.plug_refused);
        uint64_t t = 1000 + QEMU_PLUG_STALL_MS;
        p = plan(&m, t);
        assert_true(p.plug_refused && p.set_requested);
        assert_int_equal(p.requested, 0);
        qemu_mem_readback(&m, 256 * MIB, 0, 0, t + 1);
        p = plan(&m, t + QEMU_PLUG_RETRY_MS - 1);
        assert_false(p.set_requested);
        p = plan(&m, t + QEMU_PLUG_RETRY_MS);
        assert_true(p.set_requested);
        assert_int_equal(p.requested, 256 * MIB);
}

static void without_virtio_mem_the_balloon_works_alone(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 0);
        struct qemu_mem_plan p;

        (void)state;
        assert_int_equal(qemu_mem_clamp_target(&m, 1 * GIB), 256 * MIB);
        plan(&m, 0);
        m.target = qemu_mem_clamp_target(&m, 128 * MIB);
        p = plan(&m, 1000);
        assert_false(p.set_requested);
        assert_true(p.set_balloon);
        assert_int_equal(p.balloon_value, 128 * MIB);
        qemu_mem_readback(&m, 128 * MIB, 0, 0, 2000);
        assert_int_equal(qemu_mem_assigned(&m), 128 * MIB);
        m.target = qemu_mem_clamp_target(&m, 1 * GIB);
        p = plan(&m, 3000);
        assert_false(p.set_requested);
        assert_int_equal(p.balloon_value, 256 * MIB);
}

/*
 * A lowered request: the guest may have plugged up to the previous one just
 * before, and QEMU's rate-limited events (libvirt's too) may not show it for a
 * second or more. For QEMU_READBACK_LAG_MS the VM may hold what the previous
 * request allowed; then what is read back and asked counts again.
 */
static void a_lowered_request_may_still_hold_the_previous_one(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 768 * MIB);
        const uint64_t lag = QEMU_READBACK_LAG_MS;

        (void)state;
        plan(&m, 0);
        m.target = 768 * MIB;
        plan(&m, 0);
        assert_int_equal(m.requested, 512 * MIB);
        /* Plugging: 256 MiB read back; the request lets it take 512. */
        qemu_mem_readback(&m, 256 * MIB, 256 * MIB, 512 * MIB, 1000);
        assert_int_equal(qemu_mem_assigned(&m), 512 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 1000), 768 * MIB);
        /* Cut to 640 MiB: requested 384 MiB, but 512 may be plugged already. */
        m.target = 640 * MIB;
        plan(&m, 2000);
        assert_int_equal(m.requested, 384 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 2000), 768 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 2000 + lag - 1), 768 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 2000 + lag), 640 * MIB);
        /* A second cut inside the window: each cut's high lasts its own window. */
        m.target = 512 * MIB;
        plan(&m, 3000);
        assert_int_equal(qemu_mem_may_hold(&m, 3000), 768 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 2000 + lag - 1), 768 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 2000 + lag), 640 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 3000 + lag - 1), 640 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 3000 + lag), 512 * MIB);

        /* The balloon: inflating to 160 MiB, the guest may still hold its 256 MiB. */
        qemu_mem_readback(&m, 256 * MIB, 0, 0, 10000);
        m.target = 256 * MIB;
        plan(&m, 10000);
        m.target = 160 * MIB;
        plan(&m, 11000);
        assert_int_equal(m.balloon_value, 160 * MIB);
        qemu_mem_readback(&m, 160 * MIB, 0, 0, 12000);
        assert_int_equal(qemu_mem_assigned(&m), 160 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 12000), 256 * MIB);
        assert_int_equal(qemu_mem_may_hold(&m, 11000 + lag), 160 * MIB);
        /* Deflating again: the balloon's target counts at once. */
        m.target = 256 * MIB;
        plan(&m, 20000);
        assert_int_equal(qemu_mem_may_hold(&m, 20000), 256 * MIB);
}

/*
 * A target that moves by a block each second, down and up again (a VM at its
 * share under scarcity): every cut notes what the previous request allowed,
 * but the high of a cut long past never comes back. It once did: each cut
 * inside the window kept the window's highest and restarted it, so the VM
 * was counted at the most it ever held, and the host's other VMs waited.
 */
static void a_target_moving_each_second_keeps_no_old_high(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 768 * MIB);
        const uint64_t lag = QEMU_READBACK_LAG_MS;

        (void)state;
        m.target = 1024 * MIB;
        plan(&m, 0);
        qemu_mem_readback(&m, 256 * MIB, 768 * MIB, 768 * MIB, 1000);
        m.target = 480 * MIB; /* the cut: it may hold 1024 MiB for the window */
        plan(&m, 2000);
        assert_int_equal(qemu_mem_may_hold(&m, 2000), 1024 * MIB);
        for (uint64_t t = 3000; t < 60000; t += 1000) {
                /* The guest did what was asked; then the target moves by a block. */
                qemu_mem_readback(&m, 256 * MIB, m.requested, m.requested, t - 500);
                m.target = (t / 1000) % 2 ? 478 * MIB : 480 * MIB;
                plan(&m, t);
                if (t >= 2000 + lag)
                        assert_true(qemu_mem_may_hold(&m, t) <= 480 * MIB);
                assert_true(qemu_mem_may_hold(&m, t) >= qemu_mem_assigned(&m));
        }
}

static void requests_in_flight_are_not_repeated(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 256 * MIB);
        struct qemu_mem_plan p;

        (void)state;
        m.target = 512 * MIB;
        qemu_mem_plan(&m, 0, &p);
        assert_true(p.set_requested);
        qemu_mem_plan(&m, 10, &p);
        assert_false(p.set_requested || p.set_balloon);
        struct qemu_mem unknown = mem(256 * MIB, 0);
        unknown.known = false;
        unknown.target = 128 * MIB;
        qemu_mem_plan(&unknown, 0, &p);
        assert_false(p.set_requested || p.set_balloon);
}

static void what_is_read_back_is_clamped(void **state)
{
        struct qemu_mem m = mem(256 * MIB, 256 * MIB);

        (void)state;
        /* A balloon "actual" above base RAM (a QEMU counting plugged memory in it). */
        qemu_mem_readback(&m, 512 * MIB, 256 * MIB, 256 * MIB, 0);
        assert_int_equal(qemu_mem_assigned(&m), 512 * MIB);
        assert_int_equal(qemu_mem_clamp_target(&m, 64 * GIB), 512 * MIB);
        assert_int_equal(qemu_mem_clamp_target(&m, 300 * MIB + 1), 302 * MIB);
        assert_int_equal(qemu_mem_clamp_target(&m, 0), SETTINGS_MINIMUM_FLOOR);
        assert_int_equal(qemu_mem_clamp_target(&m, UINT64_MAX), 512 * MIB);
}

/* ---- the launcher ---- */

/* The Sig... lines of a /proc/PID/status, or "" when it cannot be read. */
static void signal_lines(const char *status_path, char *out, size_t len)
{
        char line[256];
        size_t used = 0;
        FILE *f = fopen(status_path, "r");

        out[0] = '\0';
        while (f && fgets(line, sizeof(line), f))
                if ((strncmp(line, "SigBlk:", 7) == 0 || strncmp(line, "SigIgn:", 7) == 0) &&
                    used + strlen(line) < len)
                        used += (size_t)snprintf(out + used, len - used, "%s", line);
        if (f)
                fclose(f);
}

/* The launcher: this process's child that calls itself dynmem-launcher. */
static pid_t find_launcher(void)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        pid_t found = -1;

        while (d && (e = readdir(d)) && found < 0) {
                char path[300], comm[64] = "";
                int ppid = 0;
                snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
                FILE *f = fopen(path, "r");
                if (!f)
                        continue;
                if (fscanf(f, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2 && ppid == getpid() &&
                    strcmp(comm, "dynmem-launcher") == 0)
                        found = (pid_t)atoi(e->d_name);
                fclose(f);
        }
        if (d)
                closedir(d);
        return found;
}

/* This process's children whose command is comm (running or not yet reaped). */
static int children_named(const char *comm)
{
        DIR *d = opendir("/proc");
        struct dirent *e;
        int n = 0;

        while (d && (e = readdir(d))) {
                char path[300], name[64] = "";
                int ppid = 0;
                snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
                FILE *f = fopen(path, "r");
                if (!f)
                        continue;
                if (fscanf(f, "%*d (%63[^)]) %*c %d", name, &ppid) == 2 && ppid == getpid() &&
                    strcmp(name, comm) == 0)
                        n++;
                fclose(f);
        }
        if (d)
                closedir(d);
        return n;
}

/*
 * A reply that comes after dynmemd stopped waiting for it (10 s: the launcher
 * is stopped here meanwhile) is never taken for the next request's: a start's
 * late "started" is not an access check's "allowed". And what that start ran,
 * which nobody looks after, is killed and reaped.
 */
static void a_late_reply_is_never_taken_for_the_next_ones(void **state)
{
        char *argv[] = {"/bin/sleep", "1000", NULL}, err[256];
        struct qemu_launch *ql = NULL;
        pid_t launcher, pid;
        int pidfd = -1;

        (void)state;
        assert_int_equal(children_named("dynmem-launcher"), 0);
        if (qemu_launch_new(geteuid() == 0 ? "nobody" : NULL, &ql, err, sizeof(err)) < 0)
                fail_msg("qemu_launch_new: %s", err);
        if (qemu_launch_identity(ql)->problem[0]) {
                print_message("# skipped: %s\n", qemu_launch_identity(ql)->problem);
                qemu_launch_free(ql);
                skip();
        }
        /* Once it answers, the launcher is this process's one child named so. */
        assert_int_equal(qemu_launch_access(ql, "/", R_OK, err, sizeof(err)), 0);
        assert_int_equal(children_named("dynmem-launcher"), 1);
        launcher = find_launcher();
        assert_true(launcher > 0);
        int log_fd = open("/dev/null", O_WRONLY | O_CLOEXEC);
        assert_true(log_fd >= 0);

        assert_int_equal(kill(launcher, SIGSTOP), 0);
        int r = qemu_launch_spawn(ql, argv, log_fd, NULL, 0, &pid, &pidfd, err, sizeof(err));
        /* Go on before any check: a stopped launcher keeps the test's output open. */
        assert_int_equal(kill(launcher, SIGCONT), 0);
        assert_int_equal(r, -ETIMEDOUT);
        /* The start's reply ("started") comes first; this question gets its own answer. */
        r = qemu_launch_access(ql, "/nonexistent-dynmem-test", R_OK, err, sizeof(err));
        assert_int_equal(r, -ENOENT);
        assert_int_equal(qemu_launch_access(ql, "/", R_OK, err, sizeof(err)), 0);
        qemu_launch_free(ql);
        /* The sleep the late start ran was killed and reaped. */
        assert_int_equal(children_named("sleep"), 0);
        close(log_fd);
}

/*
 * Whatever the process that made the launcher blocked or ignored, the
 * launcher blocks nothing and ignores only SIGHUP, SIGINT and SIGPIPE, and
 * what it starts (QEMU) blocks and ignores nothing (lib/child.c's reset).
 */
static void the_launcher_and_what_it_starts_have_default_signals(void **state)
{
        struct qemu_launch *ql = NULL;
        struct sigaction ign = {.sa_handler = SIG_IGN}, old_usr2;
        sigset_t usr1, old_mask;
        char err[256] = "", got[256], path[64];
        int pipefd[2], pidfd = -1;
        pid_t pid = -1;

        (void)state;
        sigemptyset(&usr1);
        sigaddset(&usr1, SIGUSR1);
        sigprocmask(SIG_BLOCK, &usr1, &old_mask);
        sigaction(SIGUSR2, &ign, &old_usr2);
        int r = qemu_launch_new(NULL, &ql, err, sizeof(err));
        sigprocmask(SIG_SETMASK, &old_mask, NULL);
        sigaction(SIGUSR2, &old_usr2, NULL);
        if (r < 0)
                fail_msg("qemu_launch_new: %s", err);
        if (qemu_launch_identity(ql)->problem[0]) {
                print_message("# not checked: %s\n", qemu_launch_identity(ql)->problem);
                qemu_launch_free(ql);
                return;
        }

        assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
        /* grep reads its own status: a shell in between may block signals while it forks. */
        char *const argv[] = {"/bin/grep", "^Sig", "/proc/self/status", NULL};
        const int no_fds[1] = {-1};
        r = qemu_launch_spawn(ql, argv, pipefd[1], no_fds, 0, &pid, &pidfd, err, sizeof(err));
        close(pipefd[1]);
        if (r < 0)
                fail_msg("qemu_launch_spawn: %s", err);
        ssize_t n = read(pipefd[0], got, sizeof(got) - 1);
        close(pipefd[0]);
        waitid(P_PIDFD, (id_t)pidfd, &(siginfo_t){0}, WEXITED);
        close(pidfd);
        assert_true(n > 0);
        got[n] = '\0';
        assert_non_null(strstr(got, "SigBlk:\t0000000000000000\n"));
        assert_non_null(strstr(got, "SigIgn:\t0000000000000000\n"));

        /* It answered a start: it is set up. */
        pid_t launcher = find_launcher();
        assert_true(launcher > 0);
        snprintf(path, sizeof(path), "/proc/%d/status", (int)launcher);
        signal_lines(path, got, sizeof(got));
        qemu_launch_free(ql);
        /* SIGHUP, SIGINT and SIGPIPE: bits 0, 1 and 12 */
        assert_string_equal(got, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000001003\n");
}

/*
 * In a child process with oom_score_adj `own`: what a program its launcher
 * starts reads as its own. INT_MIN when the child may not set `own`
 * (lowering it needs CAP_SYS_RESOURCE); the test's own value is untouched.
 */
static int launched_oom_score_adj(const char *own)
{
        int result[2];

        assert_int_equal(pipe2(result, O_CLOEXEC), 0);
        pid_t child = fork();
        assert_true(child >= 0);
        if (child == 0) {
                char *const argv[] = {"/bin/cat", "/proc/self/oom_score_adj", NULL};
                char err[256] = "", got[32] = "";
                struct qemu_launch *ql = NULL;
                int out[2], pidfd = -1, value = INT_MIN;
                pid_t pid = -1;
                FILE *f = fopen("/proc/self/oom_score_adj", "we");

                if (!f || fputs(own, f) < 0 || fclose(f) != 0) {
                        (void)!write(result[1], &value, sizeof(value));
                        _exit(0);
                }
                if (qemu_launch_new(geteuid() == 0 ? "nobody" : NULL, &ql, err, sizeof(err)) < 0 ||
                    qemu_launch_identity(ql)->problem[0] || pipe2(out, O_CLOEXEC) < 0 ||
                    qemu_launch_spawn(ql, argv, out[1], NULL, 0, &pid, &pidfd, err, sizeof(err)) <
                        0) {
                        fprintf(stderr, "# launching cat: %s%s\n", err,
                                ql ? qemu_launch_identity(ql)->problem : "");
                        _exit(1);
                }
                close(out[1]);
                ssize_t n = read(out[0], got, sizeof(got) - 1);
                waitid(P_PIDFD, (id_t)pidfd, &(siginfo_t){0}, WEXITED);
                qemu_launch_free(ql);
                if (n <= 0)
                        _exit(1);
                value = atoi(got);
                (void)!write(result[1], &value, sizeof(value));
                _exit(0);
        }
        close(result[1]);
        int value = 0, status = 0;
        ssize_t n = read(result[0], &value, sizeof(value));
        close(result[0]);
        assert_int_equal(waitpid(child, &status, 0), child);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(n, (ssize_t)sizeof(value));
        return value;
}

/*
 * dynmemd's unit protects it from the OOM killer (OOMScoreAdjust=-900); the
 * launcher, forked from it, inherits that, and what it starts (QEMU) must
 * not: a host short of memory would kill its own services before a guest of
 * many GiB. A value above 0, set on purpose, is kept.
 */
static void what_the_launcher_starts_is_not_protected_from_the_oom_killer(void **state)
{
        (void)state;
        assert_int_equal(launched_oom_score_adj("300"), 300);
        int protected_ = launched_oom_score_adj("-900");
        /* cmocka's skip is a failure to meson: the part that can run here has run. */
        if (protected_ == INT_MIN)
                print_message("# not checked: a value below 0 (lowering oom_score_adj needs "
                              "CAP_SYS_RESOURCE, which this process has not)\n");
        else
                assert_int_equal(protected_, 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(args_split_like_a_shell_without_one),
            cmocka_unit_test(args_touching_memory_or_dynmem_devices_are_refused),
            cmocka_unit_test(argv_has_the_memory_layout_and_dynmem_devices),
            cmocka_unit_test(a_qcow2_chain_is_handed_over_layer_by_layer),
            cmocka_unit_test(a_hostile_qcow2_image_is_refused),
            cmocka_unit_test(a_fifo_in_place_of_a_file_is_refused_without_waiting),
            cmocka_unit_test(a_fifo_in_place_of_the_console_log_is_refused_without_waiting),
            cmocka_unit_test(a_backing_file_the_qemu_user_cannot_read_is_not_handed_over),
            cmocka_unit_test(the_kernel_and_initrd_are_judged_for_the_qemu_user_acls_included),
            cmocka_unit_test(layout_follows_the_settings),
            cmocka_unit_test(paths_fit_in_a_socket_address),
            cmocka_unit_test(accel_is_chosen_and_explained),
            cmocka_unit_test(the_kvm_device_opens_for_dynmemds_own_user),
            cmocka_unit_test(the_kvm_device_is_judged_for_the_qemu_user_acls_included),
            cmocka_unit_test(the_launcher_asks_only_well_formed_questions),
            cmocka_unit_test(a_late_reply_is_never_taken_for_the_next_ones),
            cmocka_unit_test_setup_teardown(the_bundled_image_is_the_default, keys_setup,
                                            keys_teardown),
            cmocka_unit_test_setup_teardown(own_kernel_paths_are_relative_to_the_config, keys_setup,
                                            keys_teardown),
            cmocka_unit_test_setup_teardown(bad_keys_are_reported_with_file_and_line, keys_setup,
                                            keys_teardown),
            cmocka_unit_test_setup_teardown(a_bare_shutdown_timeout_is_said_to_be_seconds,
                                            keys_setup, keys_teardown),
            cmocka_unit_test_setup_teardown(a_comment_in_a_value_is_explained, keys_setup,
                                            keys_teardown),
            cmocka_unit_test_setup_teardown(machines_without_virtio_mem_are_refused_when_read,
                                            keys_setup, keys_teardown),
            cmocka_unit_test_setup_teardown(a_disk_that_cannot_be_written_is_refused, keys_setup,
                                            keys_teardown),
            cmocka_unit_test_setup_teardown(a_binary_is_found_in_absolute_path_folders_only,
                                            keys_setup, keys_teardown),
            cmocka_unit_test_setup_teardown(a_missing_bundled_image_says_so, keys_setup,
                                            keys_teardown),
            cmocka_unit_test_setup_teardown(a_backend_without_directories_only_checks, keys_setup,
                                            keys_teardown),
            cmocka_unit_test(growing_deflates_first_then_plugs),
            cmocka_unit_test(shrinking_unplugs_first_then_balloons),
            cmocka_unit_test(the_guest_reserve_is_measured_when_settled),
            cmocka_unit_test(a_new_instance_waits_for_the_guest_reserve),
            cmocka_unit_test(a_reserve_never_measured_is_waited_for_a_while),
            cmocka_unit_test(a_stuck_unplug_is_made_up_by_the_balloon),
            cmocka_unit_test(a_refused_plug_is_cut_back_and_retried_later),
            cmocka_unit_test(without_virtio_mem_the_balloon_works_alone),
            cmocka_unit_test(a_reset_starts_from_empty_devices),
            cmocka_unit_test(a_reboot_forgets_the_previous_boot),
            cmocka_unit_test(the_swap_room_comes_from_the_agent),
            cmocka_unit_test(a_target_moving_each_second_keeps_no_old_high),
            cmocka_unit_test(requests_in_flight_are_not_repeated),
            cmocka_unit_test(a_lowered_request_may_still_hold_the_previous_one),
            cmocka_unit_test(what_is_read_back_is_clamped),
            cmocka_unit_test(the_launcher_and_what_it_starts_have_default_signals),
            cmocka_unit_test(what_the_launcher_starts_is_not_protected_from_the_oom_killer),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}
