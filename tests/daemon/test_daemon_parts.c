/*
 * Tests for dynmemd's parts that need no event loop: the reserve formula and
 * memory defaults, the cycle timing histogram, the settings rule for a
 * running VM's maximum, the registry, the state file (a reset that waits across a
 * restart among it), the backend table, a
 * peer's status reply, a peer that never finishes its answer.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "apply.h"
#include "attach.h"
#include "backends.h"
#include "carry.h"
#include "commands.h"
#include "daemon.h"
#include "dconfig.h"
#include "fsutil.h"
#include "histogram.h"
#include "mono.h"
#include "hostmem.h"
#include "peers.h"
#include "resolver.h"
#include "registry.h"
#include "state.h"
#include "units.h"

static void meminfo_parses(void **state)
{
        uint64_t v = 7;

        assert_int_equal(hostmem_parse_total("MemTotal:       24683680 kB\nMemFree: 1 kB\n", &v),
                         0);
        assert_true(v == 24683680ull * KIB);
        assert_int_equal(hostmem_parse_total("MemFree: 1 kB\nMemTotal: 1024 kB\n", &v), 0);
        assert_true(v == MIB);
        v = 7;
        assert_int_equal(hostmem_parse_total("MemTotal: lots\n", &v), -EINVAL);
        assert_int_equal(hostmem_parse_total("XMemTotal: 5 kB\n", &v), -EINVAL);
        assert_int_equal(hostmem_parse_total("MemTotal: 5 MB\n", &v), -EINVAL);
        assert_int_equal(hostmem_parse_total("MemTotal: 0 kB\n", &v), -ERANGE);
        assert_int_equal(hostmem_parse_total("", &v), -EINVAL);
        assert_true(v == 7);
}

static void reserve_formula(void **state)
{
        assert_true(hostmem_reserve_default(8 * GIB) == 896 * MIB);
        assert_true(hostmem_reserve_default(16 * GIB) == 1408 * MIB);
        assert_true(hostmem_reserve_default(24 * GIB) == 1536 * MIB);
        assert_true(hostmem_reserve_default(256 * GIB) == 5248 * MIB);
        assert_true(hostmem_reserve_default(1024 * GIB) == 17536 * MIB);
        assert_true(hostmem_reserve_default(GIB + 12345) % (2 * MIB) == 0);
}

static void memory_defaults(void **state)
{
        struct config_host h = {0};
        char err[256];

        assert_int_equal(dconfig_host_memory(&h, 0, 24 * GIB, err, sizeof(err)), 0);
        assert_true(h.reserve_bytes == 1536 * MIB);
        assert_true(h.memory_bytes == 24 * GIB - 1536 * MIB);
        h = (struct config_host){.memory_bytes = 4 * GIB, .memory_given = true};
        assert_int_equal(dconfig_host_memory(&h, 0, 24 * GIB, err, sizeof(err)), 0);
        assert_true(h.memory_bytes == 4 * GIB && h.reserve_bytes == 1536 * MIB);
        h = (struct config_host){.memory_bytes = 4 * GIB, .memory_given = true};
        assert_int_equal(dconfig_host_memory(&h, -ENOENT, 0, err, sizeof(err)), 0);
        assert_true(h.reserve_bytes == 0);
        h = (struct config_host){0};
        assert_int_equal(dconfig_host_memory(&h, -ENOENT, 0, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "MemTotal cannot be read"));
        h = (struct config_host){.reserve_bytes = 8 * GIB, .reserve_given = true};
        assert_int_equal(dconfig_host_memory(&h, 0, 8 * GIB, err, sizeof(err)), -EINVAL);
        assert_non_null(strstr(err, "leaves nothing"));
}

static void memory_beyond_memtotal_warns(void **state)
{
        struct config_host h = {.memory_bytes = 48 * GIB, .memory_given = true};
        char msg[448] = "";

        /* 48 GiB on a host of 24: a warning with the figures and what to do. */
        assert_int_equal(dconfig_host_memory(&h, 0, 24 * GIB, msg, sizeof(msg)), 0);
        assert_true(dconfig_host_memory_exceeds(&h, 0, 24 * GIB, msg, sizeof(msg)));
        assert_non_null(strstr(msg, "warning: [host] memory 48 GiB and reserve 1.5 GiB"));
        assert_non_null(strstr(msg, "make 49.5 GiB, more than the host's 24 GiB (MemTotal"));
        assert_non_null(strstr(msg, "lower memory to 22.5 GiB or less"));
        /* The reserve stays outside memory: 23 GiB and 1.5 GiB do not fit 24 GiB either. */
        h.memory_bytes = 23 * GIB;
        assert_true(dconfig_host_memory_exceeds(&h, 0, 24 * GIB, msg, sizeof(msg)));
        /* A reserve given smaller makes room. */
        h.reserve_bytes = 512 * MIB, h.reserve_given = true;
        assert_false(dconfig_host_memory_exceeds(&h, 0, 24 * GIB, msg, sizeof(msg)));
        h.memory_bytes = 24 * GIB - 512 * MIB;
        assert_false(dconfig_host_memory_exceeds(&h, 0, 24 * GIB, msg, sizeof(msg)));
        h.memory_bytes += 2 * MIB;
        assert_true(dconfig_host_memory_exceeds(&h, 0, 24 * GIB, msg, sizeof(msg)));
        /* A reserve that leaves nothing: no size to suggest. */
        h.reserve_bytes = 30 * GIB;
        assert_true(dconfig_host_memory_exceeds(&h, 0, 24 * GIB, msg, sizeof(msg)));
        assert_non_null(strstr(msg, "lower the reserve and memory"));
        /* Sums past 2^64 still warn. */
        h.memory_bytes = UINT64_MAX - GIB;
        assert_true(dconfig_host_memory_exceeds(&h, 0, 24 * GIB, msg, sizeof(msg)));
        /* MemTotal unknown, or memory not given (it is MemTotal less the reserve): no warning. */
        assert_false(dconfig_host_memory_exceeds(&h, -ENOENT, 0, msg, sizeof(msg)));
        h = (struct config_host){0};
        assert_int_equal(dconfig_host_memory(&h, 0, 24 * GIB, msg, sizeof(msg)), 0);
        assert_false(dconfig_host_memory_exceeds(&h, 0, 24 * GIB, msg, sizeof(msg)));
}

/* A file holding text. */
static void write_text(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");

        assert_non_null(f);
        assert_true(fputs(text, f) >= 0);
        assert_int_equal(fclose(f), 0);
}

/*
 * A message about a key begins at the key's line (the policy's problems at the start and
 * at a reload), or at the file alone for a key left at its default. A reserve that leaves
 * nothing is refused at the line of reserve; MemTotal less the default reserve is never
 * nothing here.
 */
static void messages_of_a_key_name_its_line(void **state)
{
        char dir[] = "/tmp/dynmem-at-XXXXXX", path[64], at[96], want[128];
        struct config_diag diag = {0};
        struct config cfg;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/dynmem.conf", dir);
        write_text(path, "[host]\nmemory = 4G\npolicy = hyperv\n");
        assert_int_equal(config_load(path, &cfg, &diag), 0);
        snprintf(want, sizeof(want), "%s:3", path);
        assert_string_equal(dconfig_key_at(&cfg, "host", "policy", at, sizeof(at)), want);
        assert_string_equal(dconfig_key_at(&cfg, "host", "interval", at, sizeof(at)), path);
        assert_string_equal(dconfig_key_at(&cfg, "sim", "policy", at, sizeof(at)), path);
        config_free(&cfg);

        write_text(path, "[host]\ninterval = 2s\nreserve = 16T\n");
        assert_int_equal(dconfig_load(path, &cfg, &diag), -EINVAL);
        assert_int_equal(diag.count, 1);
        snprintf(want, sizeof(want), "%s:3: [host] reserve 16 TiB leaves nothing of the host's ",
                 path);
        assert_memory_equal(diag.messages[0], want, strlen(want));
        config_diag_free(&diag);
        write_text(path, "[host]\ninterval = 2s\n");
        assert_int_equal(dconfig_load(path, &cfg, &diag), 0);
        config_free(&cfg);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

static void histogram_percentiles(void **state)
{
        struct histogram h = {0};

        assert_true(histogram_percentile(&h, 0.99) == 0.0);
        for (int i = 0; i < 990; i++)
                histogram_add(&h, 0.25);
        for (int i = 0; i < 10; i++)
                histogram_add(&h, 40.0);
        assert_true(histogram_percentile(&h, 0.50) <= 0.3 + 1e-9);
        assert_true(histogram_percentile(&h, 0.99) <= 0.3 + 1e-9);
        assert_true(histogram_percentile(&h, 0.999) >= 40.0 - 1e-9);
        assert_true(histogram_percentile(&h, 1.0) == 40.0);
        histogram_add(&h, 50000.0); /* overflow bucket reports the largest value */
        histogram_add(&h, -3.0);    /* early counts as on time */
        assert_true(histogram_percentile(&h, 1.0) == 50000.0);
        assert_true(h.count == 1002 && h.max_ms == 50000.0);
        json_t *j = histogram_json(&h);
        assert_int_equal(json_array_size(j), 4);
        json_decref(j);
}

static void running_maximum_is_bounded_by_the_backend(void **state)
{
        struct vm vm = {.state = VM_RUNNING};
        struct vm_settings want;
        char err[256];

        settings_complete(&vm.settings, 0);
        vm.settings.dynamic = true;
        vm.settings.maximum_bytes = 4 * GIB;
        want = vm.settings;
        want.maximum_bytes = 16 * GIB;
        assert_int_equal(apply_check_change(&vm, &want, 8 * GIB, err, sizeof(err)), -EPERM);
        assert_string_equal(err, "cannot raise maximum to 16 GiB while the VM is running: it "
                                 "can reach at most 8 GiB while it runs; raise the maximum while "
                                 "it is off");
        want.maximum_bytes = 8 * GIB;
        assert_int_equal(apply_check_change(&vm, &want, 8 * GIB, err, sizeof(err)), 0);
        want.maximum_bytes = 2 * GIB;
        assert_int_equal(apply_check_change(&vm, &want, 8 * GIB, err, sizeof(err)), -EPERM);
        vm.state = VM_OFF; /* off: anything consistent goes */
        want.maximum_bytes = 16 * GIB;
        assert_int_equal(apply_check_change(&vm, &want, 8 * GIB, err, sizeof(err)), 0);
        vm.state = VM_STARTING; /* starting counts as running */
        want = vm.settings;
        want.startup_bytes = 2 * GIB;
        assert_int_equal(apply_check_change(&vm, &want, 8 * GIB, err, sizeof(err)), -EPERM);
}

/* A backend that refuses every VM without saying why. */
static int silent_configure(struct backend *b, struct vm *vm, const struct config *cfg,
                            const struct config_vm *cvm, char *err, size_t errlen)
{
        return -EIO;
}

static const struct backend_ops silent_ops = {.name = "silent", .configure_vm = silent_configure};

/* Whatever the backend leaves unsaid, the reason is a sentence, never old bytes. */
static void a_refusal_always_has_a_reason(void **state)
{
        struct backend b = {.ops = &silent_ops};
        struct daemon d = {.backend = &b};
        struct registry_entry *e;
        struct config_kv key = {.key = "trace", .value = "/x.csv"};
        char err[64];

        assert_int_equal(registry_add(&d.reg, "a", &e), 0);
        memset(err, 'X', sizeof(err));
        assert_int_equal(apply_keys(&d, e, &key, 1, err, sizeof(err)), -EIO);
        assert_string_equal(err, strerror(EIO));
        assert_false(e->configured);
        assert_int_equal(e->n_keys, 1);
        registry_free(&d.reg, NULL);
}

/* Lines of the log file at path that hold text. */
static unsigned lines_with(const char *path, const char *text)
{
        FILE *f = fopen(path, "r");
        char line[512];
        unsigned n = 0;

        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                n += strstr(line, text) != NULL;
        fclose(f);
        return n;
}

/* The sum of N over the "(N more not logged)" of the log file at path. */
static unsigned long long more_not_logged(const char *path)
{
        FILE *f = fopen(path, "r");
        unsigned long long sum = 0, n;
        char line[512], *p;

        assert_non_null(f);
        while (fgets(line, sizeof(line), f))
                if ((p = strstr(line, " (")) && sscanf(p, " (%llu more not logged)", &n) == 1)
                        sum += n;
        fclose(f);
        return sum;
}

/*
 * A guest that reboots in a loop gets a few lines, then one every 10 s that
 * counts the others; another VM's first restart is still logged.
 */
static void a_guest_rebooting_in_a_loop_has_few_lines(void **state)
{
        char path[] = "/tmp/test-daemon-reboots-XXXXXX";
        int fd = mkstemp(path), saved = dup(STDERR_FILENO);
        struct daemon d = {0};
        struct registry_entry *loop, *calm;
        const unsigned reboots = 1000;
        uint64_t t;

        assert_true(fd >= 0 && saved >= 0);
        assert_int_equal(registry_add(&d.reg, "loop", &loop), 0);
        assert_int_equal(registry_add(&d.reg, "calm", &calm), 0);
        log_setup("test", LOG_TARGET_STDERR, LOG_INFO);
        dup2(fd, STDERR_FILENO);
        for (t = 0; t < reboots; t++) /* one a second: as fast as cycles see them */
                daemon_balancer_event(&(struct balancer_event){.kind = BALANCER_EVENT_REBOOTED,
                                                               .vm = &loop->vm,
                                                               .bytes = GIB,
                                                               .time_ms = t * 1000},
                                      &d);
        daemon_balancer_event(&(struct balancer_event){.kind = BALANCER_EVENT_REBOOTED,
                                                       .vm = &calm->vm,
                                                       .bytes = GIB,
                                                       .time_ms = t * 1000},
                              &d);
        fflush(stderr);
        dup2(saved, STDERR_FILENO);
        close(saved);
        close(fd);

        unsigned logged = lines_with(path, "loop: the guest restarted; back to 1 GiB");
        /* bursts of 5, then one per 10 s of the 1000 s */
        assert_true(logged >= REGISTRY_REBOOT_LOG_BURST);
        assert_true(logged <=
                    REGISTRY_REBOOT_LOG_BURST + reboots * REGISTRY_REBOOT_LOG_PER_MINUTE / 60 + 1);
        assert_int_equal(lines_with(path, "more not logged)"), logged - REGISTRY_REBOOT_LOG_BURST);
        /* every restart is either logged or counted in the next line */
        assert_int_equal(logged + more_not_logged(path), reboots - loop->reboot_rl.suppressed);
        assert_int_equal(lines_with(path, "calm: the guest restarted; back to 1 GiB"), 1);
        unlink(path);
        registry_free(&d.reg, NULL);
}

static void registry_keeps_names_sorted(void **state)
{
        static const char *const names[] = {"m", "b", "z", "a", "k"};
        struct registry r = {0};
        struct registry_entry *e;

        for (size_t i = 0; i < 5; i++)
                assert_int_equal(registry_add(&r, names[i], &e), 0);
        assert_int_equal(registry_add(&r, "k", &e), -EEXIST);
        assert_int_equal(r.n, 5);
        for (size_t i = 0; i + 1 < r.n; i++)
                assert_true(strcmp(r.entries[i]->vm.name, r.entries[i + 1]->vm.name) < 0);
        for (size_t i = 0; i < r.n; i++)
                assert_ptr_equal(r.vms[i], &r.entries[i]->vm);
        e = registry_find(&r, "k");
        assert_non_null(e);
        assert_ptr_equal(registry_entry_of(&e->vm), e);
        registry_remove(&r, e, NULL);
        assert_null(registry_find(&r, "k"));
        assert_non_null(registry_find(&r, "z"));
        assert_int_equal(r.n, 4);
        registry_free(&r, NULL);
}

static void state_round_trips(void **state)
{
        struct config_kv key = {.key = "trace", .value = "/srv/t.csv"};
        struct registry r = {0};
        struct registry_entry *cfg, *made, *plain, *auto_off;
        struct state st;
        char err[256], *text;

        assert_int_equal(registry_add(&r, "web1", &cfg), 0);
        settings_complete(&cfg->vm.settings, 0);
        cfg->vm.settings.weight = 77;
        cfg->vm.settings.lend = false;
        cfg->overrides = SETTINGS_WEIGHT | SETTINGS_LEND;
        assert_int_equal(registry_add(&r, "plain", &plain), 0);  /* nothing to keep */
        assert_int_equal(registry_add(&r, "db1", &auto_off), 0); /* only autostart */
        settings_complete(&auto_off->vm.settings, 0);
        auto_off->autostart_override = true;
        assert_int_equal(registry_add(&r, "made", &made), 0);
        made->origin = REGISTRY_CREATED;
        made->autostart = true;
        settings_complete(&made->vm.settings, 0);
        made->vm.settings.lend = false;
        assert_int_equal(registry_set_keys(made, &key, 1), 0);
        text = state_format(&r, NULL);
        assert_non_null(text);
        assert_int_equal(state_parse(text, strlen(text), &st, err, sizeof(err)), 0);
        assert_int_equal(st.n, 3);
        assert_string_equal(st.vms[0].name, "db1");
        assert_int_equal(st.vms[0].origin, REGISTRY_CONFIG);
        assert_int_equal(st.vms[0].given, 0);
        assert_true(st.vms[0].autostart_given);
        assert_false(st.vms[0].autostart);
        assert_string_equal(st.vms[1].name, "made");
        assert_int_equal(st.vms[1].origin, REGISTRY_CREATED);
        assert_true(st.vms[1].autostart);
        assert_int_equal(st.vms[1].given, SETTINGS_DYNAMIC | SETTINGS_STARTUP | SETTINGS_MINIMUM |
                                              SETTINGS_MAXIMUM | SETTINGS_BUFFER | SETTINGS_WEIGHT |
                                              SETTINGS_BLOCK | SETTINGS_LEND);
        assert_false(st.vms[1].settings.lend);
        assert_string_equal(st.vms[1].keys[0].value, "/srv/t.csv");
        assert_string_equal(st.vms[2].name, "web1");
        assert_false(st.vms[2].autostart_given);
        assert_int_equal(st.vms[2].given, SETTINGS_WEIGHT | SETTINGS_LEND);
        assert_int_equal(st.vms[2].settings.weight, 77);
        assert_false(st.vms[2].settings.lend);
        state_free(&st);
        free(text);
        registry_free(&r, NULL);
}

static const char *stand_in_owner(struct backend *b)
{
        (void)b;
        return "libvirt at qemu:///system";
}

static const struct backend_ops owning_ops = {.name = "libvirt", .owner = stand_in_owner};

/*
 * `dynmem set --autostart` on a VM its backend owns (a libvirt domain): refused with the
 * owner's command, and nothing changes (libvirt starts its domains itself).
 */
static void set_autostart_is_refused_on_an_owned_vm(void **state)
{
        struct backend b = {.ops = &owning_ops};
        struct daemon d = {.backend = &b};
        struct control_request req = {.command = CONTROL_SET, .autostart_given = true};
        struct registry_entry *e;
        enum commands_wait wait;
        json_t *reply;
        char err[256], *line;

        assert_int_equal(registry_add(&d.reg, "dom1", &e), 0);
        e->origin = REGISTRY_BACKEND;
        settings_complete(&e->vm.settings, 0);
        snprintf(req.name, sizeof(req.name), "dom1");
        for (int on = 0; on < 2; on++) {
                req.autostart = on;
                line = commands_run(&d, &req, &wait);
                assert_non_null(line);
                assert_int_equal(control_reply_parse(line, strlen(line), &reply, err, sizeof(err)),
                                 -EOPNOTSUPP);
                assert_string_equal(err, on ? "dom1: libvirt at qemu:///system starts its "
                                              "domains: virsh autostart dom1"
                                            : "dom1: libvirt at qemu:///system starts its "
                                              "domains: virsh autostart --disable dom1");
                free(line);
                assert_false(e->autostart);
        }
        registry_free(&d.reg, NULL);
}

/* A backend whose VMs carry what the policy learned: the write's state is the test's. */
static struct {
        bool pending; /* a write is out */
        int error;    /* how the last one went */
        int refuse;   /* the next write is refused at once with this (negative errno) */
} carrying;

static int carrying_write(struct backend *b, struct vm *vm, const char *text)
{
        if (carrying.refuse)
                return carrying.refuse;
        carrying.pending = true;
        return 0;
}

static bool carrying_pending(struct backend *b, const struct vm *vm, int *ret_error)
{
        if (ret_error)
                *ret_error = carrying.error;
        return carrying.pending;
}

static void carrying_describe(struct backend *b, const struct vm *vm,
                              struct backend_vm_description *out)
{
}

static const struct backend_ops carrying_ops = {.name = "libvirt",
                                                .owner = stand_in_owner,
                                                .describe = carrying_describe,
                                                .carry_learned = carrying_write,
                                                .carry_pending = carrying_pending};

/* The control command "carry" for dom1: its reply line's errno (0: ok), or -1 while it waits. */
static int carry_request(struct daemon *d, const char *name, char *err, size_t errlen)
{
        struct control_request req = {.command = CONTROL_CARRY};
        enum commands_wait wait;
        json_t *reply = NULL;
        char *line;
        int r;

        snprintf(req.name, sizeof(req.name), "%s", name);
        line = commands_run(d, &req, &wait);
        if (!line) {
                assert_int_equal(wait, COMMANDS_WAIT_CARRY);
                return -1;
        }
        assert_int_equal(wait, COMMANDS_WAIT_NONE);
        r = control_reply_parse(line, strlen(line), &reply, err, errlen);
        json_decref(reply);
        free(line);
        return -r;
}

/*
 * The waiting "carry" request, its wait ending at until_ms (mono_ms): its
 * errno as above, the note in err.
 */
static int carry_answer_until(struct daemon *d, const char *name, uint64_t until_ms, char *err,
                              size_t errlen)
{
        json_t *reply = NULL;
        char *line = NULL;
        int r;

        if (!commands_poll(d, name, COMMANDS_WAIT_CARRY, until_ms, &line))
                return -1;
        assert_non_null(line);
        r = control_reply_parse(line, strlen(line), &reply, err, errlen);
        if (r == 0)
                snprintf(err, errlen, "%s", json_string_value(json_object_get(reply, "note")));
        json_decref(reply);
        free(line);
        return -r;
}

/* The same, for a request whose wait ends in the future (as the control server keeps it). */
static int carry_answer(struct daemon *d, const char *name, char *err, size_t errlen)
{
        assert_int_equal(commands_wait_limit_ms(COMMANDS_WAIT_CARRY), CARRY_WAIT_MS);
        return carry_answer_until(d, name, mono_ms() + CARRY_WAIT_MS, err, errlen);
}

/*
 * The control command "carry" (`dynmem migrate`, before it moves the VM):
 * the answer waits for the write of what the policy learned of the VM and
 * says how it went: made, refused by libvirt, or not made in time. A VM
 * that is not there, not running, of a backend whose VMs carry nothing, or
 * of which nothing was learned, is answered at once, saying why.
 */
static void carry_waits_for_the_write_and_says_how_it_went(void **state)
{
        static const struct backend_ops qemu_ops = {.name = "qemu"};
        struct backend b = {.ops = &carrying_ops}, plain = {.ops = &qemu_ops};
        struct daemon d = {.backend = &b};
        struct registry_entry *e;
        char err[CONTROL_ERROR_MAX];

        carrying.pending = false;
        carrying.error = 0;
        assert_int_equal(registry_add(&d.reg, "dom1", &e), 0);
        e->origin = REGISTRY_BACKEND;
        settings_complete(&e->vm.settings, 0);

        assert_int_equal(carry_request(&d, "nosuch", err, sizeof(err)), ENOENT);
        assert_string_equal(err, "nosuch: no such VM");
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), ESRCH); /* off */
        assert_string_equal(err, "dom1: not running here: it carries nothing");
        e->vm.state = VM_RUNNING;
        /* not balanced (no policy memory): nothing learned, nothing written */
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), ENODATA);
        assert_string_equal(err, "dom1: dynmemd has learned nothing of it (not balanced here, or "
                                 "not yet): nothing to carry");
        assert_false(carrying.pending);
        e->vm.migration = VM_MIGRATION_OUT;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), EBUSY);
        e->vm.migration = VM_MIGRATION_NONE;

        /* a write out already (the timer's): the answer waits for it, then it is made */
        carrying.pending = true;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), -1);
        assert_int_equal(carry_answer(&d, "dom1", err, sizeof(err)), -1);
        assert_int_equal(carry_answer(&d, "dom1", err, sizeof(err)), -1);
        carrying.pending = false;
        assert_int_equal(carry_answer(&d, "dom1", err, sizeof(err)), 0);
        assert_string_equal(err, "dom1: what the policy learned of it is in its live metadata "
                                 "(libvirt at qemu:///system): a migration takes it along");

        /* libvirt refuses it */
        carrying.pending = true;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), -1);
        carrying.pending = false;
        carrying.error = -EIO;
        assert_int_equal(carry_answer(&d, "dom1", err, sizeof(err)), EIO);
        assert_string_equal(err, "dom1: libvirt at qemu:///system refused the write of what the "
                                 "policy learned of it (dynmemd's log says why)");

        /* taken back: the domain stopped, the connection was lost, dynmemd stops */
        carrying.pending = true;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), -1);
        carrying.pending = false;
        static const struct {
                int error;
                const char *why;
        } taken_back[] = {
            {ECANCELED, "it stopped (or restarted) here first"},
            {ENOTCONN, "the connection to libvirt at qemu:///system was lost"},
            {ESHUTDOWN, "dynmemd is stopping"},
        };
        for (size_t i = 0; i < sizeof(taken_back) / sizeof(taken_back[0]); i++) {
                char want[CONTROL_ERROR_MAX];
                snprintf(want, sizeof(want),
                         "dom1: the write of what the policy learned of it was not made: %s",
                         taken_back[i].why);
                carrying.error = -taken_back[i].error;
                assert_int_equal(carry_answer(&d, "dom1", err, sizeof(err)), taken_back[i].error);
                assert_string_equal(err, want);
        }
        /* dropped by the worker for having waited CARRY_WAIT_MS */
        carrying.error = -ETIMEDOUT;
        assert_int_equal(carry_answer(&d, "dom1", err, sizeof(err)), ETIMEDOUT);

        /* not made within CARRY_WAIT_MS: the wait is over at the request's own end */
        carrying.pending = true;
        carrying.error = 0;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), -1);
        assert_int_equal(carry_answer(&d, "dom1", err, sizeof(err)), -1);
        assert_int_equal(carry_answer_until(&d, "dom1", mono_ms(), err, sizeof(err)), ETIMEDOUT);
        assert_string_equal(err, "dom1: libvirt at qemu:///system did not make the write of what "
                                 "the policy learned of it within 5 s (a write not begun by then "
                                 "is dropped)");
        /* a second request for the VM does not move the first one's end, nor starts it over */
        uint64_t first_until = mono_ms();
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), -1);
        assert_int_equal(carry_answer(&d, "dom1", err, sizeof(err)), -1); /* the second waits */
        assert_int_equal(carry_answer_until(&d, "dom1", first_until, err, sizeof(err)), ETIMEDOUT);
        carrying.pending = false;

        /* refused at once: the owner busy with it, unreachable, too much, no memory */
        struct vm *vms[] = {&e->vm};
        assert_int_equal(balancer_set_vms(&d.bal, vms, 1), 0);
        balancer_memory(&d.bal, &e->vm)->correction_permille = 900; /* something learned */
        carrying.refuse = -EBUSY;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), EBUSY);
        assert_string_equal(err, "dom1: it cannot be written now: libvirt at qemu:///system has a "
                                 "job running on it or is starting it, or dynmemd has not read "
                                 "its jobs in the last seconds");
        carrying.refuse = -EAGAIN;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), ENOTCONN);
        carrying.refuse = -EFBIG;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), EFBIG);
        assert_string_equal(err, "dom1: what the policy learned of it is larger than the 4096 "
                                 "bytes a VM carries: nothing is written");
        carrying.refuse = -ENOMEM;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), ENOMEM);
        assert_string_equal(err, "dom1: dynmemd is out of memory: nothing is written");
        carrying.refuse = 0;
        balancer_fini(&d.bal);

        /* gone while it waits */
        carrying.pending = true;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), -1);
        registry_remove(&d.reg, e, NULL);
        assert_int_equal(carry_answer(&d, "dom1", err, sizeof(err)), ENOENT);

        /* a backend whose VMs carry nothing (sim, qemu) */
        d.backend = &plain;
        assert_int_equal(registry_add(&d.reg, "dom1", &e), 0);
        e->vm.state = VM_RUNNING;
        assert_int_equal(carry_request(&d, "dom1", err, sizeof(err)), EOPNOTSUPP);
        assert_string_equal(err, "dom1: backend qemu keeps nothing in its VMs that a migration "
                                 "takes along (backend libvirt does)");
        registry_free(&d.reg, NULL);
}

/*
 * A state file written before the `lend` setting: a created VM's settings
 * without it load, and the VM may borrow (the default), as state_created()
 * completes them.
 */
static void state_without_lend_means_yes(void **state)
{
        static const char old[] =
            "{\"version\":1,\"vms\":[{\"name\":\"old1\",\"origin\":\"created\","
            "\"autostart\":false,\"settings\":{\"dynamic\":true,\"startup_bytes\":1073741824,"
            "\"minimum_bytes\":536870912,\"maximum_bytes\":4294967296,\"buffer_percent\":20,"
            "\"weight\":5000,\"block_bytes\":2097152},\"backend\":{}}]}";
        struct state st;
        char err[256];

        assert_int_equal(state_parse(old, strlen(old), &st, err, sizeof(err)), 0);
        assert_int_equal(st.n, 1);
        assert_int_equal(st.vms[0].given, SETTINGS_ALL & ~SETTINGS_LEND);
        struct vm_settings s = st.vms[0].settings;
        settings_complete(&s, st.vms[0].given);
        assert_true(s.lend);
        assert_int_equal(settings_check(&s, err, sizeof(err)), 0);
        state_free(&st);
}

/*
 * "reset_pending": what is wrong in it is dropped alone and said in the note; the
 * entry, its settings and the entries around it stand. A file without it loads as
 * before: nothing waits.
 */
static void state_reset_pending_is_read_leniently(void **state)
{
        static const struct {
                const char *pending;
                unsigned kept;
                const char *note;
        } cases[] = {
            {"", 0, ""},
            {",\"reset_pending\":[]", 0, ""},
            {",\"reset_pending\":[\"minimum_bytes\"]", SETTINGS_MINIMUM, ""},
            {",\"reset_pending\":[\"minimum_bytes\",\"startup_bytes\"]",
             SETTINGS_MINIMUM | SETTINGS_STARTUP, ""},
            {",\"reset_pending\":[\"bogus\",\"minimum_bytes\"]", SETTINGS_MINIMUM,
             "\"bogus\" is not a setting"},
            {",\"reset_pending\":[\"minimum\",7,{},\"minimum_bytes\"]", SETTINGS_MINIMUM,
             "\"minimum\" is not a setting, a number is not a setting, a JSON object is not "
             "a setting"},
            {",\"reset_pending\":[\"weight\",\"minimum_bytes\"]", SETTINGS_MINIMUM,
             "\"weight\" without its value in \"settings\""},
            {",\"reset_pending\":[\"\\u0001x\"]", 0, "\"?x\" is not a setting"},
            {",\"reset_pending\":\"minimum_bytes\"", 0, "not a list of settings"},
            {",\"reset_pending\":null", 0, "not a list of settings"},
        };
        struct state st;
        char text[512], err[256];

        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                snprintf(
                    text, sizeof(text),
                    "{\"version\":1,\"vms\":[{\"name\":\"a\",\"origin\":\"config\","
                    "\"settings\":{\"weight\":7}},\n  {\"name\":\"b\",\"origin\":\"config\","
                    "\"settings\":{\"minimum_bytes\":268435456,\"startup_bytes\":536870912}%s},"
                    "\n  {\"name\":\"c\",\"origin\":\"config\",\"settings\":{\"weight\":9}}]}",
                    cases[i].pending);
                assert_int_equal(state_parse(text, strlen(text), &st, err, sizeof(err)), 0);
                assert_int_equal(st.dropped.n, 0);
                assert_int_equal(st.n, 3);
                assert_int_equal(st.vms[0].settings.weight, 7);
                assert_int_equal(st.vms[2].settings.weight, 9);
                assert_string_equal(st.vms[1].name, "b");
                assert_int_equal(st.vms[1].given, SETTINGS_MINIMUM | SETTINGS_STARTUP);
                assert_true(st.vms[1].settings.minimum_bytes == 256 * MIB);
                if (st.vms[1].reset_pending != cases[i].kept ||
                    strcmp(st.vms[1].note, cases[i].note) != 0)
                        fail_msg("%s: kept %#x, note \"%s\"", cases[i].pending,
                                 st.vms[1].reset_pending, st.vms[1].note);
                assert_int_equal(st.vms[0].reset_pending | st.vms[2].reset_pending, 0);
                state_free(&st);
        }
}

/* A backend that takes any VM's keys. */
static int accepting_configure(struct backend *b, struct vm *vm, const struct config *cfg,
                               const struct config_vm *cvm, char *err, size_t errlen)
{
        return 0;
}

static const struct backend_ops accepting_ops = {.name = "accepting",
                                                 .configure_vm = accepting_configure};

/* dynmemd's start as far as the VMs' settings go: the file, then the state file's text. */
static struct registry_entry *start_from(struct daemon *d, const char *state_text)
{
        struct state st;
        char err[256];

        apply_config(d, &d->cfg, true);
        if (state_text) {
                assert_int_equal(state_parse(state_text, strlen(state_text), &st, err, sizeof(err)),
                                 0);
                assert_int_equal(st.dropped.n, 0);
                apply_state(d, &st);
                state_free(&st);
        }
        return registry_find(&d->reg, "web1");
}

static void stop_daemon(struct daemon *d)
{
        registry_free(&d->reg, NULL);
        balancer_fini(&d->bal);
}

/*
 * `dynmem set --reset` of a value a running VM cannot take waits until the VM is
 * off, and so it does across a restart of dynmemd: the state file keeps the value in
 * force and the waiting reset; a VM found running again (reattached) keeps them, and
 * takes the file's value once it is off.
 */
static void a_waiting_reset_survives_a_restart(void **state)
{
        static const char conf[] = "[vm \"web1\"]\ndynamic = yes\nstartup = 1G\n"
                                   "minimum = 512M\nmaximum = 4G\nweight = 5000\n";
        struct backend b = {.ops = &accepting_ops};
        struct daemon d = {.backend = &b}, again = {.backend = &b};
        struct config_diag diag = {0};
        struct registry_entry *e;
        struct vm_settings want;
        char err[256], note[256], warn[512], *text, *after;

        assert_int_equal(config_load_string("dynmem.conf", conf, &d.cfg, &diag), 0);
        again.cfg = d.cfg;
        e = start_from(&d, NULL);
        assert_non_null(e);
        e->vm.state = VM_RUNNING;
        want = e->vm.settings;
        want.minimum_bytes = 256 * MIB; /* a running VM's minimum may be lowered */
        want.weight = 7;
        assert_int_equal(apply_settings(&d, e, &want, err, sizeof(err)), 0);
        e->overrides = SETTINGS_MINIMUM | SETTINGS_WEIGHT;
        assert_int_equal(
            apply_reset(&d, e, SETTINGS_MINIMUM, false, note, sizeof(note), warn, sizeof(warn)), 0);
        assert_int_equal(e->reset_pending, SETTINGS_MINIMUM);
        assert_int_equal(e->overrides, SETTINGS_WEIGHT);
        text = state_format(&d.reg, NULL);
        assert_non_null(text);
        assert_non_null(strstr(text, "{\"name\":\"web1\",\"origin\":\"config\",\"settings\":{"
                                     "\"minimum_bytes\":268435456,\"weight\":7},"
                                     "\"reset_pending\":[\"minimum_bytes\"]}"));
        stop_daemon(&d);

        /* the restart: the VM still runs, found again by the backend */
        e = start_from(&again, text);
        assert_non_null(e);
        assert_true(e->vm.settings.minimum_bytes == 256 * MIB);
        assert_int_equal(e->vm.settings.weight, 7);
        assert_int_equal(e->reset_pending, SETTINGS_MINIMUM);
        assert_int_equal(e->overrides, SETTINGS_WEIGHT);
        after = state_format(&again.reg, NULL);
        assert_string_equal(after, text); /* written back the same */
        free(after);
        e->vm.state = VM_RUNNING;
        assert_int_equal(apply_reset_pending(&again), 0);
        assert_true(e->vm.settings.minimum_bytes == 256 * MIB);
        assert_int_equal(e->reset_pending, SETTINGS_MINIMUM);
        e->vm.state = VM_OFF;
        assert_int_equal(apply_reset_pending(&again), 1);
        assert_true(e->vm.settings.minimum_bytes == 512 * MIB);
        assert_int_equal(e->vm.settings.weight, 7);
        assert_int_equal(e->reset_pending, 0);
        after = state_format(&again.reg, NULL);
        assert_null(strstr(after, "reset_pending"));
        assert_non_null(strstr(after, "\"settings\":{\"weight\":7}}"));
        free(after);
        free(text);
        stop_daemon(&again);
        config_free(&d.cfg);
        config_diag_free(&diag);
}

/* A backend whose running VMs can reach at most 8 GiB (a QEMU VM's virtio-mem device). */
static uint64_t reach_8g(struct backend *b, const struct vm *vm)
{
        return 8 * GIB;
}

static const struct backend_ops reach_8g_ops = {
    .name = "reach-8g", .configure_vm = accepting_configure, .max_honourable = reach_8g};

/*
 * A reload's maximum that the backend says the running VM cannot reach is kept
 * back with a warning at the line of the file's maximum, not the VM's section;
 * the weight changed with it is taken.
 */
static void a_maximum_beyond_reach_is_named_at_its_line(void **state)
{
        static const char conf[] = "[vm \"web1\"]\ndynamic = yes\nstartup = 1G\n"
                                   "minimum = 512M\nmaximum = 4G\n";
        struct backend b = {.ops = &reach_8g_ops};
        struct daemon d = {.backend = &b};
        struct config_diag diag = {0};
        struct config reload;
        struct registry_entry *e;
        char dummy;

        assert_int_equal(config_load_string("dynmem.conf", conf, &d.cfg, &diag), 0);
        e = start_from(&d, NULL);
        assert_non_null(e);
        e->vm.state = VM_RUNNING;
        e->vm.backend_data = &dummy; /* the backend holds the running VM */
        assert_int_equal(config_load_string("dynmem.conf",
                                            "[vm \"web1\"]\ndynamic = yes\nstartup = 1G\n"
                                            "minimum = 512M\nweight = 7\nmaximum = 16G\n",
                                            &reload, &diag),
                         0);
        apply_config(&d, &reload, false);
        assert_true(e->vm.settings.maximum_bytes == 4 * GIB);
        assert_int_equal(e->vm.settings.weight, 7); /* what it can take, it takes */
        assert_int_equal(e->reset_pending, SETTINGS_MAXIMUM);
        assert_int_equal(reload.warnings.count, 1);
        assert_string_equal(reload.warnings.messages[0],
                            "dynmem.conf:6: warning: vm \"web1\" takes this file's maximum once "
                            "it is off: cannot raise maximum to 16 GiB while the VM is running: it "
                            "can reach at most 8 GiB while it runs; raise the maximum while it is "
                            "off");
        e->vm.backend_data = NULL;
        stop_daemon(&d);
        config_free(&reload);
        config_free(&d.cfg);
        config_diag_free(&diag);
}

/* A reload as dynmemd makes it: the new configuration replaces the one in force, then applies. */
static void reload_with(struct daemon *d, const char *conf)
{
        struct config_diag diag = {0};
        struct config cfg;

        assert_int_equal(config_load_string("dynmem.conf", conf, &cfg, &diag), 0);
        config_diag_free(&diag);
        config_free(&d->cfg);
        d->cfg = cfg;
        apply_config(d, &d->cfg, false);
}

/*
 * A reload that changes a running VM's weight and buffer and lowers its
 * maximum: the VM takes the weight and the buffer at once and keeps its
 * maximum, which waits for the VM to be off (saved as a reset waits), with a
 * warning at the line of maximum; once off, the file's maximum is taken and the
 * warning goes from the configuration's warnings.
 */
static void a_reload_takes_what_a_running_vm_can_take(void **state)
{
        static const char conf[] = "[vm \"web1\"]\ndynamic = yes\nstartup = 1G\n"
                                   "minimum = 512M\nmaximum = 4G\nweight = 5000\n";
        struct backend b = {.ops = &accepting_ops};
        struct daemon d = {.backend = &b};
        struct config_diag diag = {0};
        struct registry_entry *e;
        char *text;

        assert_int_equal(config_load_string("dynmem.conf", conf, &d.cfg, &diag), 0);
        e = start_from(&d, NULL);
        assert_non_null(e);
        e->vm.state = VM_RUNNING;
        reload_with(&d, "[vm \"web1\"]\ndynamic = yes\nstartup = 1G\nminimum = 256M\n"
                        "maximum = 2G\nweight = 7\nbuffer = 40\n");
        assert_int_equal(e->vm.settings.weight, 7);
        assert_int_equal(e->vm.settings.buffer_percent, 40);
        assert_true(e->vm.settings.minimum_bytes == 256 * MIB); /* lowered: allowed */
        assert_true(e->vm.settings.maximum_bytes == 4 * GIB);
        assert_int_equal(e->reset_pending, SETTINGS_MAXIMUM);
        assert_int_equal(e->overrides, 0);
        assert_int_equal(d.cfg.warnings.count, 1);
        assert_string_equal(d.cfg.warnings.messages[0],
                            "dynmem.conf:5: warning: vm \"web1\" takes this file's maximum once "
                            "it is off: maximum can only be raised while the VM is running");
        text = state_format(&d.reg, NULL);
        assert_non_null(strstr(text, "{\"name\":\"web1\",\"origin\":\"config\",\"settings\":{"
                                     "\"maximum_bytes\":4294967296},\"reset_pending\":["
                                     "\"maximum_bytes\"]}"));
        free(text);

        /* still running: it waits, and so does the warning */
        assert_int_equal(apply_reset_pending(&d), 0);
        assert_int_equal(d.cfg.warnings.count, 1);
        /* off: the file's maximum, and nothing left to warn of */
        e->vm.state = VM_OFF;
        assert_int_equal(apply_reset_pending(&d), 1);
        assert_true(e->vm.settings.maximum_bytes == 2 * GIB);
        assert_int_equal(e->vm.settings.weight, 7);
        assert_int_equal(e->reset_pending, 0);
        assert_int_equal(d.cfg.warnings.count, 0);
        text = state_format(&d.reg, NULL);
        assert_null(strstr(text, "web1"));
        free(text);

        /* running again, a file that lowers maximum and changes startup: two warnings */
        e->vm.state = VM_RUNNING;
        reload_with(&d, "[vm \"web1\"]\ndynamic = yes\nstartup = 512M\nminimum = 256M\n"
                        "maximum = 1G\nweight = 8\n");
        assert_int_equal(e->vm.settings.weight, 8);
        assert_true(e->vm.settings.startup_bytes == GIB);
        assert_true(e->vm.settings.maximum_bytes == 2 * GIB);
        assert_int_equal(e->reset_pending, SETTINGS_STARTUP | SETTINGS_MAXIMUM);
        assert_int_equal(d.cfg.warnings.count, 2);
        assert_string_equal(d.cfg.warnings.messages[0],
                            "dynmem.conf:3: warning: vm \"web1\" takes this file's startup once "
                            "it is off: cannot change startup while the VM is running");
        assert_string_equal(d.cfg.warnings.messages[1],
                            "dynmem.conf:5: warning: vm \"web1\" takes this file's maximum once "
                            "it is off: maximum can only be raised while the VM is running");
        /* dynmem set of maximum: the file's maximum no longer waits, nor its warning */
        apply_set_pending(&d, e, e->reset_pending & ~SETTINGS_MAXIMUM);
        assert_int_equal(d.cfg.warnings.count, 1);
        assert_non_null(strstr(d.cfg.warnings.messages[0], "takes this file's startup"));
        /* the file changed back: nothing waits */
        reload_with(&d, "[vm \"web1\"]\ndynamic = yes\nstartup = 1G\nminimum = 256M\n"
                        "maximum = 2G\nweight = 8\n");
        assert_int_equal(e->reset_pending, 0);
        assert_int_equal(d.cfg.warnings.count, 0);
        stop_daemon(&d);
        config_free(&d.cfg);
        config_diag_free(&diag);
}

/*
 * When the changes a running VM could take do not fit on their own (a
 * minimum the file lowers to fit its new block, which the VM keeps), it keeps
 * every setting, the weight too; they all wait for it to be off, with one
 * warning that says why, at the line of the key it refused.
 */
static void a_reload_keeps_all_when_the_rest_does_not_fit(void **state)
{
        static const char conf[] = "[vm \"web1\"]\ndynamic = yes\nstartup = 1G\n"
                                   "minimum = 512M\nmaximum = 4G\nblock = 4M\n";
        struct backend b = {.ops = &accepting_ops};
        struct daemon d = {.backend = &b};
        struct config_diag diag = {0};
        struct registry_entry *e;

        assert_int_equal(config_load_string("dynmem.conf", conf, &d.cfg, &diag), 0);
        e = start_from(&d, NULL);
        assert_non_null(e);
        e->vm.state = VM_RUNNING;
        reload_with(&d, "[vm \"web1\"]\ndynamic = yes\nstartup = 1G\nminimum = 510M\n"
                        "maximum = 4G\nblock = 2M\nweight = 7\n");
        assert_true(e->vm.settings.block_bytes == 4 * MIB);
        assert_true(e->vm.settings.minimum_bytes == 512 * MIB);
        assert_int_equal(e->vm.settings.weight, SETTINGS_WEIGHT_DEFAULT);
        assert_int_equal(e->reset_pending, SETTINGS_MINIMUM | SETTINGS_WEIGHT | SETTINGS_BLOCK);
        assert_int_equal(d.cfg.warnings.count, 1);
        assert_string_equal(d.cfg.warnings.messages[0],
                            "dynmem.conf:6: warning: vm \"web1\" takes this file's settings once "
                            "it is off: cannot change block size while the VM is running; the "
                            "changes it can take now do not fit on their own (minimum 510 MiB is "
                            "not a multiple of the 4 MiB block size, as 508 MiB and 512 MiB "
                            "are)");
        e->vm.state = VM_OFF;
        assert_int_equal(apply_reset_pending(&d), 1);
        assert_true(e->vm.settings.block_bytes == 2 * MIB);
        assert_true(e->vm.settings.minimum_bytes == 510 * MIB);
        assert_int_equal(e->vm.settings.weight, 7);
        assert_int_equal(d.cfg.warnings.count, 0);
        stop_daemon(&d);
        config_free(&d.cfg);
        config_diag_free(&diag);
}

/* The state file's text of a daemon, parsed again (no member twice). */
static json_t *written(struct daemon *d, const json_t *carried)
{
        char *text = state_format(&d->reg, carried);
        json_error_t jerr;
        json_t *root;

        assert_non_null(text);
        root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
                fail_msg("%s: %s", text, jerr.text);
        free(text);
        return root;
}

/* The entry of the VM named name in a state file's JSON, or NULL. */
static json_t *entry_named(const json_t *root, const char *name)
{
        size_t i;
        json_t *v;

        json_array_foreach(json_object_get(root, "vms"), i, v)
        {
                if (strcmp(json_string_value(json_object_get(v, "name")), name) == 0)
                        return v;
        }
        return NULL;
}

static void assert_json(const json_t *got, const char *want)
{
        json_t *w = json_loads(want, JSON_DECODE_ANY, NULL);
        char *text = got ? json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

        assert_non_null(w);
        if (!got || !json_equal((json_t *)got, w))
                fail_msg("got %s, want %s", text ? text : "nothing", want);
        free(text);
        json_decref(w);
}

static const char carry_conf[] = "[vm \"web1\"]\ndynamic = yes\nstartup = 1G\nminimum = 512M\n"
                                 "maximum = 4G\nweight = 5000\n"
                                 "[vm \"db1\"]\nstartup = 512M\n"
                                 "[vm \"app1\"]\nstartup = 512M\n";

/*
 * A downgrade: what a newer dynmemd added within version 1 (members of the
 * file and of entries, settings of every JSON type) is carried with its entry
 * or the file and written back beside what this one writes, the same values;
 * an entry that has nothing else is kept for it. It goes with its VM.
 */
static void what_a_newer_dynmemd_added_is_written_back(void **state)
{
        static const char text[] =
            "{\"version\":1,\"later\":{\"a\":[1,\"x\"]},\"vms\":[\n"
            "  {\"name\":\"app1\",\"origin\":\"config\",\"settings\":{\"future_knob\":3}},\n"
            "  {\"name\":\"db1\",\"origin\":\"config\",\"settings\":{},\"colour\":\"red\"},\n"
            "  {\"name\":\"made\",\"origin\":\"created\",\"numa\":{\"node\":1},\"settings\":"
            "{\"startup_bytes\":268435456,\"future_list\":[1,2]},\"backend\":{}},\n"
            "  {\"name\":\"web1\",\"origin\":\"config\",\"colour\":\"blue\",\"settings\":"
            "{\"weight\":7,\"future_str\":\"s\",\"future_real\":2.5,\"future_obj\":{\"k\":null},"
            "\"future_list\":[true,\"x\"]}}],\n"
            "\"more\":\"x\"}";
        struct backend b = {.ops = &accepting_ops};
        struct daemon d = {.backend = &b};
        struct config_diag diag = {0};
        struct config gone = {0};
        struct state st;
        char err[256];
        json_t *root;

        assert_int_equal(config_load_string("dynmem.conf", carry_conf, &d.cfg, &diag), 0);
        apply_config(&d, &d.cfg, true);
        assert_int_equal(state_parse(text, strlen(text), &st, err, sizeof(err)), 0);
        assert_int_equal(st.dropped.n, 0);
        assert_int_equal(st.ignored.n, 5); /* the four entries and the file's */
        apply_state(&d, &st);
        root = written(&d, st.carried);
        assert_json(json_object_get(root, "version"), "1");
        assert_json(json_object_get(root, "later"), "{\"a\":[1,\"x\"]}");
        assert_json(json_object_get(root, "more"), "\"x\"");
        assert_int_equal(json_object_size(root), 4);
        assert_int_equal(json_array_size(json_object_get(root, "vms")), 4);
        assert_json(entry_named(root, "app1"),
                    "{\"name\":\"app1\",\"origin\":\"config\",\"settings\":{\"future_knob\":3}}");
        assert_json(entry_named(root, "db1"),
                    "{\"name\":\"db1\",\"origin\":\"config\",\"settings\":{},\"colour\":\"red\"}");
        assert_json(entry_named(root, "web1"),
                    "{\"name\":\"web1\",\"origin\":\"config\",\"colour\":\"blue\",\"settings\":"
                    "{\"weight\":7,\"future_str\":\"s\",\"future_real\":2.5,\"future_obj\":"
                    "{\"k\":null},\"future_list\":[true,\"x\"]}}");
        assert_json(json_object_get(entry_named(root, "made"), "numa"), "{\"node\":1}");
        assert_json(
            json_object_get(json_object_get(entry_named(root, "made"), "settings"), "future_list"),
            "[1,2]");
        assert_true(registry_find(&d.reg, "made")->vm.settings.startup_bytes == 256 * MIB);
        json_decref(root);

        /* gone from the configuration (off: removed at once), or deleted: all of it goes */
        assert_int_equal(config_load_string("dynmem.conf",
                                            "[vm \"web1\"]\nstartup = 1G\n"
                                            "minimum = 512M\ndynamic = yes\n"
                                            "[vm \"app1\"]\nstartup = 512M\n",
                                            &gone, &diag),
                         0);
        apply_config(&d, &gone, false);
        registry_remove(&d.reg, registry_find(&d.reg, "made"), NULL);
        root = written(&d, st.carried);
        assert_null(entry_named(root, "db1"));
        assert_null(entry_named(root, "made"));
        assert_non_null(entry_named(root, "app1"));
        json_decref(root);
        state_free(&st);
        stop_daemon(&d);
        config_free(&gone);
        config_free(&d.cfg);
        config_diag_free(&diag);
}

/*
 * A carried member never has a known member's name when read; were it to,
 * what this dynmemd writes stands and nothing is written twice.
 */
static void carried_members_never_replace_known_ones(void **state)
{
        struct registry r = {0};
        struct daemon d = {0};
        struct registry_entry *e;
        json_t *root, *file = json_pack("{s:i, s:i, s:i}", "version", 9, "vms", 3, "x", 1);

        assert_int_equal(registry_add(&r, "web1", &e), 0);
        settings_complete(&e->vm.settings, 0);
        e->vm.settings.weight = 77;
        e->overrides = SETTINGS_WEIGHT;
        e->autostart_override = true;
        e->carried = json_pack("{s:s, s:s, s:i, s:i, s:s}", "name", "other", "origin", "created",
                               "settings", 1, "autostart", 5, "colour", "red");
        e->carried_settings = json_pack("{s:i, s:i}", "weight", 1, "future_knob", 2);
        d.reg = r;
        root = written(&d, file);
        assert_json(root,
                    "{\"version\":1,\"x\":1,\"vms\":[{\"name\":\"web1\",\"origin\":\"config\","
                    "\"settings\":{\"weight\":77,\"future_knob\":2},\"autostart\":false,"
                    "\"colour\":\"red\"}]}");
        json_decref(root);
        json_decref(file);
        registry_free(&d.reg, NULL);
}

/*
 * A reset of every setting (--reset all) is back to the configuration's
 * values: the settings a newer dynmemd wrote go at once, also when a known
 * value waits for the VM to be off; the entry's other members stay. A reset
 * of some settings keeps them.
 */
static void a_reset_of_every_setting_drops_what_a_newer_dynmemd_set(void **state)
{
        static const char text[] =
            "{\"version\":1,\"vms\":[{\"name\":\"web1\",\"origin\":\"config\",\"colour\":\"red\","
            "\"settings\":{\"minimum_bytes\":268435456,\"weight\":7,\"future_knob\":[1]}}]}";
        struct backend b = {.ops = &accepting_ops};
        struct daemon d = {.backend = &b};
        struct config_diag diag = {0};
        struct registry_entry *e;
        char note[256], warn[512] = "";
        json_t *root;

        assert_int_equal(config_load_string("dynmem.conf", carry_conf, &d.cfg, &diag), 0);
        e = start_from(&d, text);
        assert_non_null(e->carried_settings);
        e->vm.state = VM_RUNNING;
        assert_int_equal(
            apply_reset(&d, e, SETTINGS_WEIGHT, false, note, sizeof(note), warn, sizeof(warn)), 0);
        assert_string_equal(note, "web1: weight (line 6) from dynmem.conf again");
        root = written(&d, NULL);
        assert_json(json_object_get(entry_named(root, "web1"), "settings"),
                    "{\"minimum_bytes\":268435456,\"future_knob\":[1]}");
        json_decref(root);

        /* the minimum cannot be raised while the VM runs: it waits, the rest goes now */
        assert_int_equal(
            apply_reset(&d, e, SETTINGS_ALL, true, note, sizeof(note), warn, sizeof(warn)), 0);
        assert_string_equal(note, "web1: minimum (line 4) from dynmem.conf again; future_knob (not "
                                  "known to this dynmemd) dropped");
        assert_int_equal(e->reset_pending, SETTINGS_MINIMUM);
        assert_null(e->carried_settings);
        root = written(&d, NULL);
        assert_json(entry_named(root, "web1"),
                    "{\"name\":\"web1\",\"origin\":\"config\",\"settings\":{\"minimum_bytes\":"
                    "268435456},\"reset_pending\":[\"minimum_bytes\"],\"colour\":\"red\"}");
        json_decref(root);

        /* off: the waiting value is taken; the entry stays for its other member */
        e->vm.state = VM_OFF;
        assert_int_equal(apply_reset_pending(&d), 1);
        root = written(&d, NULL);
        assert_json(entry_named(root, "web1"),
                    "{\"name\":\"web1\",\"origin\":\"config\",\"settings\":{},\"colour\":\"red\"}");
        json_decref(root);
        /* with nothing else set, a reset of all says what it dropped */
        e->carried_settings = json_pack("{s:b}", "future_flag", 1);
        assert_int_equal(
            apply_reset(&d, e, SETTINGS_ALL, true, note, sizeof(note), warn, sizeof(warn)), 0);
        assert_string_equal(note, "web1: future_flag (not known to this dynmemd) dropped");
        stop_daemon(&d);
        config_free(&d.cfg);
        config_diag_free(&diag);
}

/*
 * Overrides that no longer fit the configuration are dropped at start, and
 * the settings a newer dynmemd wrote with them; the entry's other members
 * stay. A created VM the configuration now defines loses all of it.
 */
static void carried_settings_go_with_overrides_that_no_longer_fit(void **state)
{
        static const char text[] =
            "{\"version\":1,\"vms\":[{\"name\":\"web1\",\"origin\":\"config\",\"colour\":\"red\","
            "\"settings\":{\"startup_bytes\":8589934592,\"future_knob\":3}}]}";
        struct backend b = {.ops = &accepting_ops};
        struct daemon d = {.backend = &b};
        struct config_diag diag = {0};
        struct registry_entry *e;
        json_t *root;

        assert_int_equal(config_load_string("dynmem.conf", carry_conf, &d.cfg, &diag), 0);
        e = start_from(&d, text);
        assert_int_equal(e->overrides, 0);
        assert_null(e->carried_settings);
        root = written(&d, NULL);
        assert_json(root, "{\"version\":1,\"vms\":[{\"name\":\"web1\",\"origin\":\"config\","
                          "\"settings\":{},\"colour\":\"red\"}]}");
        json_decref(root);

        /* a reload that defines a created VM of the same name: the file's definition replaces it */
        e->origin = REGISTRY_CREATED;
        e->carried_settings = json_pack("{s:i}", "future_knob", 3);
        apply_config(&d, &d.cfg, false);
        assert_null(e->carried);
        assert_null(e->carried_settings);
        root = written(&d, NULL);
        assert_json(root, "{\"version\":1,\"vms\":[]}");
        json_decref(root);
        stop_daemon(&d);
        config_free(&d.cfg);
        config_diag_free(&diag);
}

static void state_refuses_bad_files(void **state)
{
        static const char *const bad[] = {
            "",
            "[]",
            "{\"version\":2,\"vms\":[]}",
            "{\"version\":1}",
            "{\"version\":1,\"vms\":{}}",
            "{\"version\":0,\"vms\":[]}",
            "{\"version\":1,\"vms\":[{\"name\":\"a\",\"origin\":\"config\"}",
        };
        struct state st;
        char err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
                assert_int_equal(state_parse(bad[i], strlen(bad[i]), &st, err, sizeof(err)),
                                 -EINVAL);
        assert_int_equal(state_parse("{\"version\":1,\"vms\":[]}", 22, &st, err, sizeof(err)), 0);
        assert_int_equal(st.n, 0);
        assert_int_equal(st.dropped.n, 0);
        state_free(&st);
}

/* An entry that is wrong on its own is left out, named; the good ones around it are kept. */
static void state_drops_a_bad_entry_and_keeps_the_others(void **state)
{
        static const struct {
                const char *entry, *why;
        } bad[] = {
            {"{\"name\":\"b\"}", "item not found: origin"},
            {"{\"name\":\"b\",\"origin\":\"elsewhere\"}", "origin must be config or created"},
            /* a backend's VMs are its own: never in the state file, never made from it */
            {"{\"name\":\"b\",\"origin\":\"backend\"}", "origin must be config or created"},
            {"{\"name\":\"../b\",\"origin\":\"config\"}", "invalid VM name"},
            {"{\"origin\":\"config\"}", "without a \"name\""},
            {"7", "without a \"name\""},
            {"{\"name\":\"b\",\"origin\":\"config\",\"autostart\":\"yes\"}",
             "Expected true or false"},
            {"{\"name\":\"b\",\"origin\":\"config\",\"settings\":{\"weight\":\"x\"}}", "weight"},
            {"{\"name\":\"a\",\"origin\":\"config\"}", "a is listed twice"},
        };
        struct state st;
        char text[512], err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(text, sizeof(text),
                         "{\"version\":1,\"vms\":[{\"name\":\"a\",\"origin\":\"config\","
                         "\"settings\":{\"weight\":7}},\n  %s,\n  {\"name\":\"c\",\"origin\":"
                         "\"config\",\"settings\":{\"weight\":9}}]}",
                         bad[i].entry);
                err[0] = '\0';
                assert_int_equal(state_parse(text, strlen(text), &st, err, sizeof(err)), 0);
                assert_int_equal(st.n, 2);
                assert_string_equal(st.vms[0].name, "a");
                assert_int_equal(st.vms[0].settings.weight, 7);
                assert_string_equal(st.vms[1].name, "c");
                assert_int_equal(st.vms[1].settings.weight, 9);
                assert_int_equal(st.dropped.n, 1);
                if (strncmp(st.dropped.messages[0], "vms[1]: ", 8) != 0 ||
                    !strstr(st.dropped.messages[0], bad[i].why))
                        fail_msg("%s: \"vms[1]: ...%s\" not in \"%s\"", bad[i].entry, bad[i].why,
                                 st.dropped.messages[0]);
                state_free(&st);
        }
}

/* running.json the same way: a bad entry is left out, named; the VMs around it are kept. */
static void attach_drops_a_bad_entry_and_keeps_the_others(void **state)
{
        static const struct {
                const char *entry, *why;
        } bad[] = {
            {"{\"name\":\"b\",\"assigned_bytes\":1,\"target_bytes\":1}", "state"},
            {"{\"name\":\"b\",\"state\":\"off\",\"assigned_bytes\":1,\"target_bytes\":1}",
             "b: state \"off\" is not running or stopping"},
            {"{\"name\":\"b\",\"state\":\"running\",\"assigned_bytes\":-1,\"target_bytes\":1}",
             "b: sizes out of range"},
            {"{\"name\":\"b\",\"state\":\"running\",\"assigned_bytes\":\"1G\","
             "\"target_bytes\":1}",
             "Expected integer"},
            {"{\"name\":\"b\",\"state\":\"running\",\"assigned_bytes\":1,\"target_bytes\":1,"
             "\"counters\":{\"add_operations\":-3}}",
             "b: add_operations: not a count"},
            {"{\"name\":\"b\",\"state\":\"running\",\"assigned_bytes\":1,\"target_bytes\":1,"
             "\"counters\":7}",
             "b: counters: not an object"},
            {"{\"name\":\"../b\",\"state\":\"running\",\"assigned_bytes\":1,\"target_bytes\":1}",
             "invalid VM name"},
            {"{\"state\":\"running\",\"assigned_bytes\":1,\"target_bytes\":1}",
             "without a \"name\""},
            {"7", "without a \"name\""},
            {"{\"name\":\"a\",\"state\":\"running\",\"assigned_bytes\":1,\"target_bytes\":1}",
             "a is listed twice"},
        };
        struct attach_list l;
        char text[768], err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(text, sizeof(text),
                         "{\"version\":1,\"host\":{\"crashes\":4},\"vms\":[{\"name\":\"a\","
                         "\"state\":\"running\",\"assigned_bytes\":7,\"target_bytes\":8},\n  %s,\n"
                         "  {\"name\":\"c\",\"state\":\"stopping\",\"assigned_bytes\":9,"
                         "\"target_bytes\":9,\"counters\":{\"add_operations\":5}}]}",
                         bad[i].entry);
                err[0] = '\0';
                assert_int_equal(attach_parse(text, strlen(text), &l, err, sizeof(err)), 0);
                assert_int_equal(l.n, 2);
                assert_string_equal(l.vms[0].name, "a");
                assert_int_equal(l.vms[0].state, VM_RUNNING);
                assert_int_equal(l.vms[0].assigned_bytes, 7);
                assert_int_equal(l.vms[0].target_bytes, 8);
                assert_string_equal(l.vms[1].name, "c");
                assert_int_equal(l.vms[1].state, VM_STOPPING);
                assert_int_equal(l.vms[1].assigned_bytes, 9);
                assert_int_equal(l.vms[1].counters.add_operations, 5);
                assert_int_equal(l.host.crashes, 4);
                assert_int_equal(l.dropped.n, 1);
                if (strncmp(l.dropped.messages[0], "vms[1]: ", 8) != 0 ||
                    !strstr(l.dropped.messages[0], bad[i].why))
                        fail_msg("%s: \"vms[1]: ...%s\" not in \"%s\"", bad[i].entry, bad[i].why,
                                 l.dropped.messages[0]);
                attach_list_free(&l);
        }
}

/* Bad host counters in running.json start from zero; the VMs are kept all the same. */
static void attach_bad_host_counters_cost_only_themselves(void **state)
{
        static const struct {
                const char *host, *why;
        } bad[] = {
            {"{\"crashes\":-1}", "host: crashes: not a count of 0..2^62"},
            {"{\"add_operations\":\"many\",\"crashes\":4}", "add_operations: not a count"},
            {"{\"added_bytes\":1e30}", "added_bytes: not a count"},
            {"7", "host: not an object"},
            {"[]", "host: not an object"},
        };
        struct attach_list l;
        char text[512], err[256];

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                snprintf(text, sizeof(text),
                         "{\"version\":1,\"host\":%s,\"vms\":[{\"name\":\"a\","
                         "\"state\":\"running\",\"assigned_bytes\":7,\"target_bytes\":8,"
                         "\"counters\":{\"add_operations\":5}},{\"name\":\"c\",\"state\":"
                         "\"stopping\",\"assigned_bytes\":9,\"target_bytes\":9}]}",
                         bad[i].host);
                err[0] = '\0';
                assert_int_equal(attach_parse(text, strlen(text), &l, err, sizeof(err)), 0);
                assert_int_equal(l.n, 2);
                assert_string_equal(l.vms[0].name, "a");
                assert_int_equal(l.vms[0].counters.add_operations, 5);
                assert_string_equal(l.vms[1].name, "c");
                assert_int_equal(l.dropped.n, 0);
                assert_int_equal(l.host.crashes, 0);
                assert_int_equal(l.host.add_operations, 0);
                assert_true(l.host.added_bytes == 0);
                if (!strstr(l.host_problem, bad[i].why))
                        fail_msg("%s: \"%s\" not in \"%s\"", bad[i].host, bad[i].why,
                                 l.host_problem);
                attach_list_free(&l);
        }
        /* good counters: no problem said */
        snprintf(text, sizeof(text), "{\"version\":1,\"host\":{\"crashes\":4},\"vms\":[]}");
        assert_int_equal(attach_parse(text, strlen(text), &l, err, sizeof(err)), 0);
        assert_int_equal(l.host.crashes, 4);
        assert_string_equal(l.host_problem, "");
        attach_list_free(&l);
}

/* Both saved files go through one parser: the same shape problems, the same messages. */
static int parse_either(bool attach, const char *text, char *err, size_t errlen)
{
        struct attach_list l = {0};
        struct state st = {0};
        int r;

        if (attach) {
                r = attach_parse(text, strlen(text), &l, err, errlen);
                if (r == 0 && l.dropped.n) { /* left out alone: the same message */
                        snprintf(err, errlen, "%s", l.dropped.messages[0]);
                        r = -EINVAL;
                }
                if (r == 0 || l.dropped.n)
                        attach_list_free(&l);
        } else {
                r = state_parse(text, strlen(text), &st, err, errlen);
                if (r == 0 && st.dropped.n) { /* left out alone: the same message */
                        snprintf(err, errlen, "%s", st.dropped.messages[0]);
                        r = -EINVAL;
                }
                if (r == 0 || st.dropped.n)
                        state_free(&st);
        }
        return r;
}

static void saved_files_share_one_parser(void **state)
{
        static const struct {
                const char *text, *message;
        } bad[] = {
            {"{", "line 1:"},
            {"[]", "expected {\"version\": 1, "},
            {"{\"version\":1,\"vms\":{}}", "expected {\"version\": 1, "},
            {"{\"version\":\"1\",\"vms\":[]}", "expected {\"version\": 1, "},
            {"{\"version\":2,\"vms\":[]}",
             "version 2, written by a newer dynmemd (this one reads version 1)"},
            /* a newer version's shape is never judged by this one's */
            {"{\"version\":3,\"vms\":{}}",
             "version 3, written by a newer dynmemd (this one reads version 1)"},
            {"{\"version\":0,\"vms\":[]}", "version 0 is not 1"},
            {"{\"version\":1,\"vms\":[],\"vms\":[]}", "duplicate"},
            {"{\"version\":1,\"vms\":[{}]}", "vms[0]: a VM without a \"name\" string"},
            {"{\"version\":1,\"vms\":[{\"name\":\"../x\"}]}", "vms[0]: invalid VM name \"../x\""},
        };
        char err[512];

        for (int attach = 0; attach <= 1; attach++) {
                for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                        err[0] = '\0';
                        assert_int_equal(parse_either(attach, bad[i].text, err, sizeof(err)),
                                         -EINVAL);
                        if (!strstr(err, bad[i].message))
                                fail_msg("%s: \"%s\" not in \"%s\"", bad[i].text, bad[i].message,
                                         err);
                }
        }
        /* a VM listed twice, in either file */
        assert_int_equal(
            parse_either(false,
                         "{\"version\":1,\"vms\":[{\"name\":\"a\",\"origin\":\"config\"},"
                         "{\"name\":\"a\",\"origin\":\"config\"}]}",
                         err, sizeof(err)),
            -EINVAL);
        assert_non_null(strstr(err, "vms[1]: a is listed twice"));
        assert_int_equal(
            parse_either(true,
                         "{\"version\":1,\"vms\":[{\"name\":\"a\",\"state\":\"running\","
                         "\"assigned_bytes\":1,\"target_bytes\":1},{\"name\":\"a\","
                         "\"state\":\"running\",\"assigned_bytes\":1,\"target_bytes\":1}]}",
                         err, sizeof(err)),
            -EINVAL);
        assert_non_null(strstr(err, "vms[1]: a is listed twice"));
        /* "host" is running.json's own member (a bad one costs only the counters); in
         * state.json it is a member this version does not know: ignored
         * (saved_files_ignore_what_a_newer_dynmemd_added) */
        assert_int_equal(
            parse_either(true, "{\"version\":1,\"host\":{},\"vms\":[]}", err, sizeof(err)), 0);
        assert_int_equal(
            parse_either(false, "{\"version\":1,\"host\":{},\"vms\":[]}", err, sizeof(err)), 0);
        /* a failure after a VM with backend keys takes nothing (the sanitizer checks for leaks) */
        assert_int_equal(
            parse_either(false,
                         "{\"version\":1,\"vms\":[{\"name\":\"a\",\"origin\":\"created\","
                         "\"backend\":{\"trace\":\"/x\"}},{\"name\":\"b\"}]}",
                         err, sizeof(err)),
            -EINVAL);
        assert_non_null(strstr(err, "vms[1]:"));
}

/*
 * Within one version a newer dynmemd may add members (and settings): this one
 * keeps the entry with what it knows and names the rest once, in either file;
 * state.json's are kept aside to be written back.
 */
static void saved_files_ignore_what_a_newer_dynmemd_added(void **state)
{
        static const char st_text[] =
            "{\"version\":1,\"future\":{\"a\":1},\"vms\":[\n"
            "  {\"name\":\"a\",\"origin\":\"config\",\"colour\":\"red\","
            "\"settings\":{\"weight\":7,\"future_knob\":3},\"autostart\":true},\n"
            "  {\"name\":\"b\",\"origin\":\"created\",\"settings\":{\"startup_bytes\":268435456,"
            "\"future_knob\":{}},\"backend\":{\"trace\":\"/t.csv\"}},\n"
            "  {\"name\":\"c\",\"origin\":\"config\",\"settings\":{\"weight\":9}}]}";
        static const char at_text[] =
            "{\"version\":1,\"host\":{\"crashes\":4,\"future\":1},\"later\":[],\"vms\":[\n"
            "  {\"name\":\"a\",\"state\":\"running\",\"assigned_bytes\":7,\"target_bytes\":8,"
            "\"numa\":[1,2],\"counters\":{\"add_operations\":5,\"future\":1}}]}";
        struct state st;
        struct attach_list l;
        char err[256] = "";

        assert_int_equal(state_parse(st_text, strlen(st_text), &st, err, sizeof(err)), 0);
        assert_int_equal(st.n, 3);
        assert_int_equal(st.dropped.n, 0);
        assert_string_equal(st.vms[0].name, "a");
        assert_int_equal(st.vms[0].given, SETTINGS_WEIGHT);
        assert_int_equal(st.vms[0].settings.weight, 7);
        assert_true(st.vms[0].autostart && st.vms[0].autostart_given);
        assert_string_equal(st.vms[1].name, "b");
        assert_int_equal(st.vms[1].given, SETTINGS_STARTUP);
        assert_int_equal(st.vms[1].n_keys, 1);
        assert_int_equal(st.vms[2].settings.weight, 9);
        assert_int_equal(st.ignored.n, 3);
        assert_string_equal(st.ignored.messages[0],
                            "vms[0] (a): member \"colour\", setting \"future_knob\"");
        assert_string_equal(st.ignored.messages[1], "vms[1] (b): setting \"future_knob\"");
        assert_string_equal(st.ignored.messages[2], "member \"future\"");
        /* and kept, to be written back (what_a_newer_dynmemd_added_is_written_back) */
        assert_json(st.carried, "{\"future\":{\"a\":1}}");
        assert_json(st.vms[0].carried, "{\"colour\":\"red\"}");
        assert_json(st.vms[0].carried_settings, "{\"future_knob\":3}");
        assert_null(st.vms[1].carried);
        assert_json(st.vms[1].carried_settings, "{\"future_knob\":{}}");
        assert_null(st.vms[2].carried);
        assert_null(st.vms[2].carried_settings);
        state_free(&st);

        assert_int_equal(attach_parse(at_text, strlen(at_text), &l, err, sizeof(err)), 0);
        assert_int_equal(l.n, 1);
        assert_int_equal(l.dropped.n, 0);
        assert_int_equal(l.vms[0].assigned_bytes, 7);
        assert_int_equal(l.vms[0].counters.add_operations, 5);
        assert_int_equal(l.host.crashes, 4);
        assert_string_equal(l.host_problem, "");
        assert_int_equal(l.ignored.n, 2);
        assert_string_equal(l.ignored.messages[0], "vms[0] (a): member \"numa\"");
        assert_string_equal(l.ignored.messages[1], "member \"later\"");
        attach_list_free(&l);

        /* today's files name nothing, and nothing is carried */
        assert_int_equal(state_parse("{\"version\":1,\"vms\":[]}", 22, &st, err, sizeof(err)), 0);
        assert_int_equal(st.ignored.n, 0);
        assert_null(st.carried);
        state_free(&st);
}

/* A file of a higher version fails whole, saying a newer dynmemd wrote it (daemon.c sets it
 * aside); state_load names the file. */
static void saved_files_of_a_newer_version_fail_whole(void **state)
{
        char dir[] = "/tmp/dynmem-newer-XXXXXX", path[64], err[512] = "";
        static const char text[] =
            "{\"version\":2,\"vms\":[{\"name\":\"a\",\"origin\":\"config\",\"settings\":{}}]}";
        struct state st = {0};
        FILE *f;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
        assert_non_null(f = fopen(path, "w"));
        fputs(text, f);
        fclose(f);
        assert_int_equal(state_load(dir, &st, err, sizeof(err)), -EINVAL);
        assert_int_equal(st.n, 0);
        if (!strstr(err, STATE_FILE ": version 2, written by a newer dynmemd (this one reads "
                                    "version 1)"))
                fail_msg("\"%s\"", err);
        unlink(path);
        rmdir(dir);
}

/* Read a fixture of tests/daemon/fixtures (the tests run in the source tree). */
static char *fixture(const char *name, size_t *ret_len)
{
        char path[256], *text = NULL;

        snprintf(path, sizeof(path), "tests/daemon/fixtures/%s", name);
        if (fsutil_read_file(path, 1u << 20, &text, ret_len) < 0)
                fail_msg("cannot read %s", path);
        return text;
}

/*
 * state.json and running.json as dynmemd wrote them for version 1: every
 * later dynmemd must read them as they were meant, with nothing dropped or
 * ignored (a format change that cannot bumps the version and keeps a reader).
 */
static void saved_files_of_version_1_still_load(void **state)
{
        struct state st = {0};
        struct attach_list l = {0};
        char err[256] = "";
        size_t len;
        char *text = fixture("state-v1.json", &len);

        assert_int_equal(state_parse(text, len, &st, err, sizeof(err)), 0);
        free(text);
        assert_int_equal(st.n, 4);
        assert_int_equal(st.dropped.n, 0);
        assert_int_equal(st.ignored.n, 0);
        assert_null(st.carried); /* all of it is known: nothing carried */
        for (size_t i = 0; i < st.n; i++)
                assert_true(!st.vms[i].carried && !st.vms[i].carried_settings);
        const struct state_vm *app1 = &st.vms[0], *db1 = &st.vms[1], *new1 = &st.vms[2],
                              *web1 = &st.vms[3];
        assert_string_equal(app1->name, "app1");
        assert_int_equal(app1->origin, REGISTRY_CONFIG);
        assert_int_equal(app1->given, SETTINGS_MINIMUM | SETTINGS_WEIGHT);
        assert_true(app1->settings.minimum_bytes == 256 * MIB);
        assert_int_equal(app1->settings.weight, 7000);
        assert_int_equal(app1->reset_pending, SETTINGS_MINIMUM);
        assert_string_equal(app1->note, "");
        assert_false(app1->autostart_given);
        assert_string_equal(db1->name, "db1");
        assert_int_equal(db1->given, 0);
        assert_true(db1->autostart_given && db1->autostart);
        assert_string_equal(new1->name, "new1");
        assert_int_equal(new1->origin, REGISTRY_CREATED);
        assert_int_equal(new1->given, SETTINGS_ALL);
        assert_true(new1->settings.dynamic && new1->settings.lend);
        assert_true(new1->settings.startup_bytes == 256 * MIB);
        assert_true(new1->settings.minimum_bytes == 256 * MIB);
        assert_true(new1->settings.maximum_bytes == GIB);
        assert_int_equal(new1->settings.buffer_percent, 20);
        assert_int_equal(new1->settings.weight, 5000);
        assert_true(new1->settings.block_bytes == 2 * MIB);
        assert_true(new1->autostart_given && new1->autostart);
        assert_int_equal(new1->n_keys, 1);
        assert_string_equal(new1->keys[0].key, "trace");
        assert_string_equal(new1->keys[0].value, "/srv/dynmem/traces/small.csv");
        assert_string_equal(web1->name, "web1");
        assert_int_equal(web1->given, SETTINGS_BUFFER | SETTINGS_WEIGHT);
        assert_int_equal(web1->settings.buffer_percent, 40);
        assert_int_equal(web1->settings.weight, 100);
        state_free(&st);

        text = fixture("running-v1.json", &len);
        assert_int_equal(attach_parse(text, len, &l, err, sizeof(err)), 0);
        free(text);
        assert_int_equal(l.n, 3);
        assert_int_equal(l.dropped.n, 0);
        assert_int_equal(l.ignored.n, 0);
        assert_string_equal(l.host_problem, "");
        assert_true(l.host.removed_bytes == 1233125376);
        assert_int_equal(l.host.remove_operations, 2);
        assert_string_equal(l.vms[0].name, "app1");
        assert_int_equal(l.vms[0].state, VM_RUNNING);
        assert_true(l.vms[0].assigned_bytes == 377487360 && l.vms[0].target_bytes == 377487360);
        assert_true(l.vms[0].counters.removed_bytes == 696254464);
        assert_int_equal(l.vms[0].counters.remove_operations, 1);
        assert_true(l.vms[0].counters.average_pressure > 80.55 &&
                    l.vms[0].counters.average_pressure < 80.56);
        assert_true(l.vms[0].counters.minimum_pressure == 29.296875);
        assert_string_equal(l.vms[1].name, "new1");
        assert_true(l.vms[1].assigned_bytes == 256 * MIB);
        assert_true(l.vms[1].counters.maximum_pressure == 39.0625);
        assert_string_equal(l.vms[2].name, "web1");
        assert_true(l.vms[2].target_bytes == 512 * MIB);
        attach_list_free(&l);
}

/* One holder of a state directory at a time; the next is told who holds it. */
static void state_dir_lock_has_one_holder(void **state)
{
        char dir[] = "/tmp/dynmem-lock-XXXXXX", path[64];
        int fd = -1, fd2 = -1;
        long holder = -1;

        assert_non_null(mkdtemp(dir));
        assert_int_equal(fsutil_lock(dir, STATE_LOCK_FILE, 0640, &fd, &holder), 0);
        assert_true(fd >= 0);
        assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
        /* not open for writing: the file system can still be remounted read-only */
        assert_int_equal(fcntl(fd, F_GETFL) & O_ACCMODE, O_RDONLY);
        /* another open file description: what a second dynmemd would get */
        assert_int_equal(fsutil_lock(dir, STATE_LOCK_FILE, 0640, &fd2, &holder), -EWOULDBLOCK);
        assert_int_equal(fd2, -1);
        assert_int_equal(holder, (long)getpid());
        close(fd);
        assert_int_equal(fsutil_lock(dir, STATE_LOCK_FILE, 0640, &fd2, &holder), 0);
        close(fd2);
        snprintf(path, sizeof(path), "%s/%s", dir, STATE_LOCK_FILE);
        assert_int_equal(unlink(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

/* A temporary file left behind does not hand its mode to the file written. */
static void atomic_write_makes_a_fresh_file(void **state)
{
        char dir[] = "/tmp/dynmem-write-XXXXXX", tmp[64], final[64], *text;
        mode_t old = umask(022);
        struct stat st;
        size_t len;
        int fd;

        assert_non_null(mkdtemp(dir));
        snprintf(tmp, sizeof(tmp), "%s/f.tmp", dir);
        snprintf(final, sizeof(final), "%s/f", dir);
        fd = open(tmp, O_WRONLY | O_CREAT, 0600);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, "old and longer", 14), 14);
        assert_int_equal(fchmod(fd, 0666), 0);
        close(fd);
        assert_int_equal(fsutil_write_atomic(dir, "f", "new", 3, 0640), 0);
        assert_int_equal(stat(final, &st), 0);
        assert_int_equal(st.st_mode & 07777, 0640);
        assert_int_equal(fsutil_read_file(final, 100, &text, &len), 0);
        assert_string_equal(text, "new");
        free(text);
        assert_int_equal(access(tmp, F_OK), -1);
        assert_int_equal(unlink(final), 0);
        assert_int_equal(rmdir(dir), 0);
        umask(old);
}

/* A state file that is not one is said so, at once (a FIFO is not waited on). */
static void state_load_names_what_is_wrong(void **state)
{
        char dir[] = "/tmp/dynmem-load-XXXXXX", path[64], err[512] = "";
        struct state st;

        assert_non_null(mkdtemp(dir));
        snprintf(path, sizeof(path), "%s/%s", dir, STATE_FILE);
        assert_int_equal(mkfifo(path, 0600), 0);
        alarm(10); /* a hang fails the test */
        assert_int_equal(state_load(dir, &st, err, sizeof(err)), -EINVAL);
        alarm(0);
        assert_non_null(strstr(err, path));
        assert_non_null(strstr(err, "not a regular file"));
        assert_int_equal(unlink(path), 0);
        assert_int_equal(mkdir(path, 0700), 0);
        assert_int_equal(state_load(dir, &st, err, sizeof(err)), -EISDIR);
        assert_non_null(strstr(err, "Is a directory"));
        assert_int_equal(rmdir(path), 0);
        assert_int_equal(rmdir(dir), 0);
}

static void backend_table(void **state)
{
        char err[256];

        assert_int_equal(backends_check("sim", err, sizeof(err)), 0);
        assert_non_null(backends_find("sim")->create);
        assert_int_equal(backends_check("qemu", err, sizeof(err)), 0);
        assert_non_null(backends_find("qemu")->create);
        assert_int_equal(backends_check("xen", err, sizeof(err)), -ENOENT);
        assert_string_equal(err, "unknown backend \"xen\" (known: sim, qemu, libvirt)");
        /* in this build or not, libvirt is known: usable, or missing with the reason */
        int r = backends_check("libvirt", err, sizeof(err));
        if (r == 0)
                assert_non_null(backends_find("libvirt")->create);
        else
                assert_true(r == -EOPNOTSUPP && strstr(err, "without libvirt"));
}

/* A peer's status (GET /api/v1/status): input from another machine. */
static void peer_status_is_range_checked(void **state)
{
        const char *good = "{\"memory_bytes\":8589934592,\"assigned_bytes\":4294967296,"
                           "\"available_for_balancing_bytes\":3221225472,\"running\":3,"
                           "\"other\":[1,2]}";
        const char *bad[] = {
            "",
            "[]",
            "{\"memory_bytes\":1}",
            "{\"memory_bytes\":-1,\"assigned_bytes\":0,\"available_for_balancing_bytes\":0,"
            "\"running\":0}",
            "{\"memory_bytes\":1.5,\"assigned_bytes\":0,\"available_for_balancing_bytes\":0,"
            "\"running\":0}",
            "{\"memory_bytes\":1,\"assigned_bytes\":0,\"available_for_balancing_bytes\":"
            "\"lots\",\"running\":0}",
            "{\"memory_bytes\":1,\"assigned_bytes\":0,\"available_for_balancing_bytes\":0,"
            "\"running\":100001}",
            "{\"memory_bytes\":9223372036854775807,\"assigned_bytes\":0,"
            "\"available_for_balancing_bytes\":0,\"running\":0}",
            "{\"memory_bytes\":1,\"memory_bytes\":2,\"assigned_bytes\":0,"
            "\"available_for_balancing_bytes\":0,\"running\":0}",
        };
        struct peer_view v = {0};
        char err[160];
        char *huge = calloc(1, PEERS_BODY_MAX + 2);

        (void)state;
        assert_int_equal(peers_parse_status(good, strlen(good), &v, err, sizeof(err)), 0);
        assert_true(v.memory_bytes == 8 * GIB);
        assert_true(v.assigned_bytes == 4 * GIB);
        assert_true(v.available_bytes == 3 * GIB);
        assert_int_equal(v.running, 3);
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
                err[0] = '\0';
                if (peers_parse_status(bad[i], strlen(bad[i]), &v, err, sizeof(err)) != -EINVAL ||
                    !err[0])
                        fail_msg("accepted, or without a reason: %s", bad[i]);
        }
        assert_non_null(huge);
        memset(huge, ' ', PEERS_BODY_MAX + 1);
        assert_int_equal(peers_parse_status(huge, PEERS_BODY_MAX + 1, &v, err, sizeof(err)),
                         -EINVAL);
        assert_non_null(strstr(err, "longer than"));
        free(huge);
}

/* A peer that answers a byte at a time, never done: each read comes within the timeout. */
struct trickle {
        int listener, fd;
        struct event *tick;
        struct event_base *base;
        struct resolver *resolver;
        struct peers *peers;
        uint64_t until_ms;
};

static void trickle_tick(evutil_socket_t unused, short what, void *arg)
{
        struct trickle *t = arg;

        (void)unused, (void)what;
        if (t->fd < 0)
                t->fd = accept(t->listener, NULL, NULL);
        if (t->fd >= 0) {
                static const char head[] = "HTTP/1.1 200 OK\r\n";
                static size_t sent;
                if (sent < sizeof(head) - 1) {
                        sent += (size_t)(write(t->fd, head + sent, 1) == 1);
                } else if (write(t->fd, "X: y\r\n", 6) != 6) {
                        /* the peer's side closed: over */
                }
        }
        if (!peers_asking(t->peers) || mono_ms() >= t->until_ms)
                event_base_loopbreak(t->base);
}

/*
 * The peer's timeout bounds its whole answer, not only each wait for a byte:
 * a peer (or something in between) that sends a little now and then must
 * not keep a round of questions, and with it the relief rule, waiting.
 */
static void a_peer_that_never_finishes_is_down_after_its_timeout(void **state)
{
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof(a);
        char http[64];
        struct config_peer cp = {.name = "slow", .libvirt_uri = (char *)"test:///default"};
        struct config_cluster c = {.peer_timeout_ms = 300, .peers = &cp, .n_peers = 1};
        struct trickle t = {.fd = -1};
        struct peer_view v;
        char err[200];

        (void)state;
        t.base = event_base_new();
        t.listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        assert_true(t.base && t.listener >= 0);
        assert_int_equal(bind(t.listener, (struct sockaddr *)&a, sizeof(a)), 0);
        assert_int_equal(listen(t.listener, 4), 0);
        assert_int_equal(getsockname(t.listener, (struct sockaddr *)&a, &alen), 0);
        snprintf(http, sizeof(http), "http://127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
        cp.http = http;
        assert_int_equal(resolver_new(t.base, RESOLVER_CONF, RESOLVER_HOSTS, &t.resolver), 0);
        assert_int_equal(
            peers_new(t.base, resolver_dns(t.resolver), &c, NULL, NULL, &t.peers, err, sizeof(err)),
            0);
        struct timeval every = {0, 50 * 1000};
        t.tick = event_new(t.base, -1, EV_PERSIST, trickle_tick, &t);
        event_add(t.tick, &every);
        uint64_t t0 = mono_ms();
        t.until_ms = t0 + 4000;
        peers_ask(t.peers);
        event_base_dispatch(t.base);
        peers_view(t.peers, 0, &v);
        assert_false(peers_asking(t.peers));
        assert_int_equal(v.state, PEER_DOWN);
        assert_true(mono_ms() - t0 < 2000);
        assert_non_null(v.error);
        peers_free(t.peers);
        event_free(t.tick); /* before resolver_free(), whose loop passes would run it */
        resolver_free(t.resolver);
        if (t.fd >= 0)
                close(t.fd);
        close(t.listener);
        event_base_free(t.base);
}

/* A peer that answers its status once, and keeps the request it was sent. */
struct answering {
        int listener, fd;
        int listener6; /* the same port on ::1 too, or -1 */
        struct event *tick;
        struct event_base *base;
        struct resolver *resolver;
        struct peers *peers;
        uint64_t until_ms;
        char request[2048];
        size_t got;
        bool answered;
};

static void answering_tick(evutil_socket_t unused, short what, void *arg)
{
        struct answering *t = arg;

        (void)unused, (void)what;
        if (t->fd < 0)
                t->fd = accept4(t->listener, NULL, NULL, SOCK_NONBLOCK);
        if (t->fd < 0 && t->listener6 >= 0)
                t->fd = accept4(t->listener6, NULL, NULL, SOCK_NONBLOCK);
        if (t->fd >= 0 && !t->answered) {
                ssize_t n = read(t->fd, t->request + t->got, sizeof(t->request) - 1 - t->got);
                if (n > 0)
                        t->got += (size_t)n;
                if (strstr(t->request, "\r\n\r\n")) {
                        static const char body[] =
                            "{\"memory_bytes\":8589934592,\"assigned_bytes\":4294967296,"
                            "\"available_for_balancing_bytes\":3221225472,\"running\":3}";
                        char reply[512];
                        int len = snprintf(reply, sizeof(reply),
                                           "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                           "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                                           sizeof(body) - 1, body);
                        assert_int_equal(write(t->fd, reply, (size_t)len), len);
                        t->answered = true;
                }
        }
        if ((t->answered && !peers_asking(t->peers)) || mono_ms() >= t->until_ms)
                event_base_loopbreak(t->base);
}

/*
 * Ask the peer at `http` once, with t's listeners answering; the peer must be
 * up with the status sent, and t->request holds what it was asked.
 */
static void ask_answering_peer(struct answering *t, const char *http)
{
        struct config_peer cp = {
            .name = "peer", .libvirt_uri = (char *)"test:///default", .http = (char *)http};
        struct config_cluster c = {.peer_timeout_ms = 3000, .peers = &cp, .n_peers = 1};
        struct timeval every = {0, 20 * 1000};
        struct peer_view v;
        char err[200];

        t->fd = -1;
        assert_non_null(t->base = event_base_new());
        assert_int_equal(resolver_new(t->base, RESOLVER_CONF, RESOLVER_HOSTS, &t->resolver), 0);
        assert_int_equal(peers_new(t->base, resolver_dns(t->resolver), &c, NULL, NULL, &t->peers,
                                   err, sizeof(err)),
                         0);
        t->tick = event_new(t->base, -1, EV_PERSIST, answering_tick, t);
        event_add(t->tick, &every);
        t->until_ms = mono_ms() + 10000;
        peers_ask(t->peers);
        event_base_dispatch(t->base);
        peers_view(t->peers, 0, &v);
        if (v.state != PEER_UP)
                fail_msg("peer %s: %s", http, v.error ? v.error : "not up");
        assert_true(v.memory_bytes == 8 * GIB);
        peers_free(t->peers);
        event_free(t->tick); /* before resolver_free(), whose loop passes would run it */
        resolver_free(t->resolver);
        if (t->fd >= 0)
                close(t->fd);
        event_base_free(t->base);
}

/* A listening socket on the loopback of `family`, at `port` (0: any); -1 if there is none. */
static int loopback_listener(int family, unsigned *port)
{
        struct sockaddr_storage ss = {0};
        struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
        struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
        socklen_t len = family == AF_INET ? sizeof(*a4) : sizeof(*a6);
        int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);

        if (family == AF_INET)
                *a4 = (struct sockaddr_in){.sin_family = AF_INET,
                                           .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                                           .sin_port = htons((uint16_t)*port)};
        else
                *a6 = (struct sockaddr_in6){.sin6_family = AF_INET6,
                                            .sin6_addr = IN6ADDR_LOOPBACK_INIT,
                                            .sin6_port = htons((uint16_t)*port)};
        if (fd < 0 || bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 4) < 0 ||
            getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
                if (fd >= 0)
                        close(fd);
                return -1;
        }
        *port = ntohs(family == AF_INET ? a4->sin_port : a6->sin6_port);
        return fd;
}

/* A peer named by an IPv6 address: reached, and asked with "Host: [addr]:port" (RFC 7230). */
static void a_peer_at_an_ipv6_address_is_asked_with_its_host_and_port(void **state)
{
        struct answering t = {.listener6 = -1};
        unsigned port = 0;
        char http[64], host[64];

        (void)state;
        if ((t.listener = loopback_listener(AF_INET6, &port)) < 0)
                skip(); /* no IPv6 loopback here */
        snprintf(http, sizeof(http), "http://[::1]:%u", port);
        ask_answering_peer(&t, http);
        snprintf(host, sizeof(host), "\r\nHost: [::1]:%u\r\n", port);
        if (!strstr(t.request, host))
                fail_msg("request without %s: %s", host + 2, t.request);
        close(t.listener);
}

/* A peer named by a host name (here "localhost", from /etc/hosts): resolved in the loop. */
static void a_peer_named_by_a_host_name_is_reached(void **state)
{
        struct answering t = {0};
        unsigned port = 0;
        char http[64];

        (void)state;
        assert_true((t.listener = loopback_listener(AF_INET, &port)) >= 0);
        /* /etc/hosts may give localhost as ::1 as well, first or only: listen there too. */
        t.listener6 = loopback_listener(AF_INET6, &port);
        snprintf(http, sizeof(http), "http://localhost:%u", port);
        ask_answering_peer(&t, http);
        if (!strstr(t.request, "\r\nHost: localhost:"))
                fail_msg("request without its Host: %s", t.request);
        if (t.listener6 >= 0)
                close(t.listener6);
        close(t.listener);
}

/* A name server that takes questions and never answers; the loop's ticks are counted. */
struct silent_dns {
        int udp;
        unsigned questions, ticks_while_asked;
        struct event_base *base;
        struct resolver *resolver;
        struct peers *peers;
        uint64_t until_ms;
};

static void silent_dns_tick(evutil_socket_t unused, short what, void *arg)
{
        struct silent_dns *t = arg;
        char buf[512];

        (void)unused, (void)what;
        while (recv(t->udp, buf, sizeof(buf), MSG_DONTWAIT) > 0)
                t->questions++;
        if (t->questions && peers_asking(t->peers))
                t->ticks_while_asked++;
        if (t->ticks_while_asked >= 5 || !peers_asking(t->peers) || mono_ms() >= t->until_ms)
                event_base_loopbreak(t->base);
}

/*
 * A resolver that does not answer must not stop the loop: with a blocking
 * getaddrinfo() the question arrives while the loop waits inside it, and the
 * loop ticks again only once the lookup failed and the peer is down. Here the
 * loop ticks on while the peer is still being asked. /etc/resolv.conf is
 * replaced for this process only (a mount namespace; root, else skipped).
 */
static void a_resolver_that_does_not_answer_does_not_stop_the_loop(void **state)
{
        struct sockaddr_in ns = {.sin_family = AF_INET,
                                 .sin_port = htons(53),
                                 .sin_addr.s_addr = htonl(0x7f00004d)}; /* 127.0.0.77 */
        char conf[] = "/tmp/dynmem-resolv-XXXXXX";
        struct config_peer cp = {.name = "far",
                                 .libvirt_uri = (char *)"test:///default",
                                 .http = (char *)"http://peer.dynmem-test.invalid:9100"};
        struct config_cluster c = {.peer_timeout_ms = 20000, .peers = &cp, .n_peers = 1};
        struct silent_dns t = {0};
        struct timeval every = {0, 20 * 1000};
        char err[200];
        int fd;

        (void)state;
        if (geteuid() != 0 || unshare(CLONE_NEWNS) < 0 ||
            mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
                skip(); /* needs a mount namespace of its own */
        t.udp = socket(AF_INET, SOCK_DGRAM, 0);
        assert_true(t.udp >= 0);
        if (bind(t.udp, (struct sockaddr *)&ns, sizeof(ns)) < 0) {
                close(t.udp);
                skip(); /* a name server of this machine's holds port 53 on every address */
        }
        assert_true((fd = mkstemp(conf)) >= 0);
        assert_true(dprintf(fd, "nameserver 127.0.0.77\noptions timeout:30 attempts:1\n") > 0);
        close(fd);
        assert_int_equal(mount(conf, "/etc/resolv.conf", NULL, MS_BIND, NULL), 0);

        assert_non_null(t.base = event_base_new());
        assert_int_equal(resolver_new(t.base, RESOLVER_CONF, RESOLVER_HOSTS, &t.resolver), 0);
        assert_int_equal(
            peers_new(t.base, resolver_dns(t.resolver), &c, NULL, NULL, &t.peers, err, sizeof(err)),
            0);
        struct event *tick = event_new(t.base, -1, EV_PERSIST, silent_dns_tick, &t);
        event_add(tick, &every);
        t.until_ms = mono_ms() + 60000;
        peers_ask(t.peers);
        event_base_dispatch(t.base);
        assert_true(t.questions > 0);          /* the name was asked of the resolver */
        assert_true(t.ticks_while_asked >= 5); /* and the loop ran on meanwhile */
        /*
         * dynmemd stops with the lookup under way, in daemon_fini()'s order:
         * the peers, the resolver, the loop. Nothing may be left (the sanitized
         * build's LeakSanitizer checks at exit).
         */
        assert_true(peers_asking(t.peers));
        peers_free(t.peers);
        event_free(tick);
        resolver_free(t.resolver);
        assert_int_equal(event_base_get_num_events(t.base, EVENT_BASE_COUNT_ACTIVE), 0);
        event_base_free(t.base);
        umount("/etc/resolv.conf");
        unlink(conf);
        close(t.udp);
}

/*
 * A peer removed (a reload frees the peers) while its name is being looked
 * up: the lookup is cancelled with it, so nothing of it is left on the loop
 * (no timeout to wait for, no name server socket kept), and a new set of
 * peers starts afresh. The name server is the test's, named in a resolv.conf
 * of its own, and never answers.
 */
static void a_removed_peer_leaves_no_lookup_behind(void **state)
{
        struct sockaddr_in ns = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t nslen = sizeof(ns);
        char dir[] = "/tmp/dynmem-peers-XXXXXX", conf[64], hosts[64], err[200];
        struct config_peer cp = {.name = "far",
                                 .libvirt_uri = (char *)"test:///default",
                                 .http = (char *)"http://peer.dynmem-test.invalid:9100"};
        struct config_cluster c = {.peer_timeout_ms = 20000, .peers = &cp, .n_peers = 1};
        struct silent_dns t = {0};
        struct timeval every = {0, 20 * 1000};
        FILE *f;

        (void)state;
        assert_non_null(mkdtemp(dir));
        snprintf(conf, sizeof(conf), "%s/resolv.conf", dir);
        snprintf(hosts, sizeof(hosts), "%s/hosts", dir);
        assert_true((t.udp = socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
        assert_int_equal(bind(t.udp, (struct sockaddr *)&ns, sizeof(ns)), 0);
        assert_int_equal(getsockname(t.udp, (struct sockaddr *)&ns, &nslen), 0);
        assert_non_null(f = fopen(conf, "w"));
        fprintf(f, "nameserver 127.0.0.1:%u\noptions timeout:30 attempts:1\n",
                (unsigned)ntohs(ns.sin_port));
        assert_int_equal(fclose(f), 0);
        assert_non_null(f = fopen(hosts, "w"));
        assert_int_equal(fclose(f), 0);

        assert_non_null(t.base = event_base_new());
        assert_int_equal(resolver_new(t.base, conf, hosts, &t.resolver), 0);
        struct event *tick = event_new(t.base, -1, EV_PERSIST, silent_dns_tick, &t);
        event_add(tick, &every);
        int before = event_base_get_num_events(t.base, EVENT_BASE_COUNT_ADDED);

        for (int round = 0; round < 2; round++) { /* removed, then a new set in its slot */
                t.questions = t.ticks_while_asked = 0;
                assert_int_equal(peers_new(t.base, resolver_dns(t.resolver), &c, NULL, NULL,
                                           &t.peers, err, sizeof(err)),
                                 0);
                peers_ask(t.peers);
                t.until_ms = mono_ms() + 60000;
                event_base_dispatch(t.base);
                assert_true(t.questions > 0); /* the lookup is under way */
                assert_true(peers_asking(t.peers));
                peers_free(t.peers);
                for (int i = 0; i < 16; i++)
                        event_base_loop(t.base, EVLOOP_NONBLOCK);
                /* the tick alone is left, as before the peers */
                assert_int_equal(event_base_get_num_events(t.base, EVENT_BASE_COUNT_ADDED), before);
        }
        event_free(tick);
        resolver_free(t.resolver);
        assert_int_equal(event_base_get_num_events(t.base, EVENT_BASE_COUNT_ACTIVE), 0);
        event_base_free(t.base);
        close(t.udp);
        unlink(conf);
        unlink(hosts);
        rmdir(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(meminfo_parses),
            cmocka_unit_test(reserve_formula),
            cmocka_unit_test(memory_defaults),
            cmocka_unit_test(memory_beyond_memtotal_warns),
            cmocka_unit_test(messages_of_a_key_name_its_line),
            cmocka_unit_test(histogram_percentiles),
            cmocka_unit_test(running_maximum_is_bounded_by_the_backend),
            cmocka_unit_test(a_refusal_always_has_a_reason),
            cmocka_unit_test(a_guest_rebooting_in_a_loop_has_few_lines),
            cmocka_unit_test(registry_keeps_names_sorted),
            cmocka_unit_test(state_round_trips),
            cmocka_unit_test(set_autostart_is_refused_on_an_owned_vm),
            cmocka_unit_test(carry_waits_for_the_write_and_says_how_it_went),
            cmocka_unit_test(state_without_lend_means_yes),
            cmocka_unit_test(state_refuses_bad_files),
            cmocka_unit_test(state_reset_pending_is_read_leniently),
            cmocka_unit_test(a_waiting_reset_survives_a_restart),
            cmocka_unit_test(a_maximum_beyond_reach_is_named_at_its_line),
            cmocka_unit_test(a_reload_takes_what_a_running_vm_can_take),
            cmocka_unit_test(a_reload_keeps_all_when_the_rest_does_not_fit),
            cmocka_unit_test(what_a_newer_dynmemd_added_is_written_back),
            cmocka_unit_test(carried_members_never_replace_known_ones),
            cmocka_unit_test(a_reset_of_every_setting_drops_what_a_newer_dynmemd_set),
            cmocka_unit_test(carried_settings_go_with_overrides_that_no_longer_fit),
            cmocka_unit_test(saved_files_share_one_parser),
            cmocka_unit_test(saved_files_ignore_what_a_newer_dynmemd_added),
            cmocka_unit_test(saved_files_of_a_newer_version_fail_whole),
            cmocka_unit_test(saved_files_of_version_1_still_load),
            cmocka_unit_test(state_dir_lock_has_one_holder),
            cmocka_unit_test(atomic_write_makes_a_fresh_file),
            cmocka_unit_test(state_load_names_what_is_wrong),
            cmocka_unit_test(state_drops_a_bad_entry_and_keeps_the_others),
            cmocka_unit_test(attach_drops_a_bad_entry_and_keeps_the_others),
            cmocka_unit_test(attach_bad_host_counters_cost_only_themselves),
            cmocka_unit_test(backend_table),
            cmocka_unit_test(peer_status_is_range_checked),
            cmocka_unit_test(a_peer_that_never_finishes_is_down_after_its_timeout),
            cmocka_unit_test(a_peer_at_an_ipv6_address_is_asked_with_its_host_and_port),
            cmocka_unit_test(a_peer_named_by_a_host_name_is_reached),
            cmocka_unit_test(a_resolver_that_does_not_answer_does_not_stop_the_loop),
            cmocka_unit_test(a_removed_peer_leaves_no_lookup_behind),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
