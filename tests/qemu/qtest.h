/*
 * qtest: helpers the QEMU tests share: temporary folders, running a
 * libevent loop until a condition holds, the guest image (found or built),
 * and VMs configured from INI text.
 */
#ifndef DYNMEM_QTEST_H
#define DYNMEM_QTEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "mono.h"
#include "vm.h"

struct event_base;

/* A fresh folder under $TMPDIR or /tmp (short: sockets live there); caller frees. */
char *qt_tempdir(void);
void qt_rmtree(char *dir);

/*
 * Kill (SIGKILL) and reap every QEMU whose pid file is in run_dir and whose
 * command line names run_dir's parent folder: a failed test's leftovers.
 */
void qt_kill_leftovers(const char *run_dir);

/* Run the loop until cond(arg) is true or timeout_ms pass; returns cond's last value. */
bool qt_loop_until(struct event_base *base, bool (*cond)(void *), void *arg, uint64_t timeout_ms);

/*
 * Start vm and run the loop until the start has ended (QMP answered, or
 * QEMU failed): 0, or a negative errno with the reason in err.
 */
int qt_start(struct event_base *base, struct backend *b, struct vm *vm, char *err, size_t len);

/* Run the loop for ms milliseconds. */
void qt_loop_for(struct event_base *base, uint64_t ms);

/*
 * The bundled guest image's folder: $DYNMEM_GUEST_IMAGE_DIR, the build's
 * guest/ folder, or one built here with guest/image/build.sh. NULL with the
 * reason in why when no image can be had.
 */
const char *qt_guest_image(char *why, size_t len);

/*
 * A guest image built here with guest/image/build.sh (cached by its inputs):
 * with_programs, into $DYNMEM_TEST_AGENT_IMAGE_DIR with the static programs
 * in $DYNMEM_TEST_GUEST_PROGRAMS (':'-separated: dynmem-guest, dynmem-load);
 * else into $DYNMEM_TEST_IMAGE_DIR with none (a guest without an agent).
 * NULL with the reason in why when it cannot be built.
 */
const char *qt_guest_image_built(bool with_programs, char *why, size_t len);

/*
 * The last "dynmem-load: holding N MiB (target M MiB)" console line: N and M
 * in bytes, and how many lines in a row at the end said the same.
 * -ENOENT when there is none.
 */
int qt_console_load(const char *path, uint64_t *ret_held, uint64_t *ret_target,
                    unsigned *ret_repeats);

/* True when the file contains needle. */
bool qt_file_contains(const char *path, const char *needle);

/* How many times needle occurs in the file (0 when it cannot be read). */
unsigned qt_file_count(const char *path, const char *needle);

/* The last "MemTotal=N kB" the guest image printed (dynmem.debug=1), in bytes; 0 if none. */
uint64_t qt_console_memtotal(const char *path);

/* A VM as the daemon would hold it, configured from `[vm "NAME"]` INI text. */
struct qt_vm {
        struct config cfg;
        struct vm vm;
};

/* Load ini, take its first VM, configure it on backend b (no check_vm). 0 or -errno. */
int qt_vm_configure(struct qt_vm *t, struct backend *b, const char *ini, char *err, size_t len);
void qt_vm_release(struct qt_vm *t, struct backend *b);

/*
 * The version `qemu-system-x86_64 --version` prints (the QEMU in PATH, the
 * one the tests' VMs run): true and the three numbers, or false.
 */
bool qt_qemu_version(unsigned ret[3]);

/*
 * Keep only the tests DYNMEM_TEST_CASES names (comma-separated; all without
 * it), in their order; returns how many are left. A name that matches no
 * test aborts: a typo must not shrink a test set silently.
 */
struct CMUnitTest;
size_t qt_select_cases(struct CMUnitTest *tests, size_t n);

/* Whether version v is at least major.minor. */
bool qt_version_at_least(const unsigned v[3], unsigned major, unsigned minor);

#endif
