/*
 * savefile: the shape dynmemd's two saved files share, STATE_DIR/state.json
 * (state.c: what the control socket changed) and STATE_DIR/running.json
 * (attach.c: the VMs that hold memory), and the one parser of it:
 *
 *   {"version": N, "vms": [{"name": "web1", ...}, ...], other members}
 *
 * The parser checks the JSON (no duplicate members), the version, the
 * number of VMs (CONFIG_VMS_MAX), each VM's "name" (config_name_valid())
 * and that no VM is listed twice; the rest of each VM object is read by the
 * file's own function. Strict, one bad VM fails the file; or lenient, a bad
 * VM is left out and the rest kept.
 *
 * Compatibility (docs/daemon.md, "Upgrades and downgrades"): within one
 * version a newer dynmemd may add members, which an older one ignores. So a
 * member this dynmemd does not know, beside "version" and "vms" or in a
 * VM's object (or whatever the file's own function ignores in it, such as
 * a setting it does not know), is ignored and named in the parse's
 * ignored list; the VM is kept with what is known of it. The file's own
 * code may keep such members (savefile_unknown()) to write them back, as
 * state.c does. A change an older
 * dynmemd must not misread raises the version: a file of a higher version
 * than this one reads fails as a whole, its message saying a newer dynmemd
 * wrote it; one of a lower version is not a file of dynmemd.
 */
#ifndef DYNMEM_SAVEFILE_H
#define DYNMEM_SAVEFILE_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

struct savefile_spec {
        int version;
        const char *shape;          /* the expected shape, for the message */
        const char *const *extras;  /* optional members beside version and vms, NULL-terminated */
        const char *const *members; /* a VM's members, NULL-terminated: others are ignored */
        size_t vm_size;             /* bytes of one parsed VM */
        size_t name_offset;         /* where in it the name goes: char[name_size] */
        size_t name_size;
        /*
         * Read one VM object into vm (zeroed but for its name). 0, or -EINVAL
         * with a sentence in err. What of a known member it ignores (a
         * setting it does not know) it adds to ignored with savefile_note().
         */
        int (*parse_vm)(const json_t *obj, void *vm, char *ignored, size_t ignoredlen, char *err,
                        size_t errlen);
        /* Release what parse_vm took, also after it failed; NULL: nothing to release. */
        void (*free_vm)(void *vm);
};

/*
 * Parse a file's text. On success: 0, the VMs in *ret_vms (an array of n
 * vm_size items, caller frees, with free_vm on each) and, when ret_root is
 * not NULL, the root object for the file's other members (caller
 * json_decref()s). On failure: -EINVAL or -ENOMEM with one sentence in err,
 * and nothing taken.
 */
int savefile_parse(const char *text, size_t len, const struct savefile_spec *spec,
                   json_t **ret_root, void **ret_vms, size_t *ret_n, char *err, size_t errlen);

/*
 * The VMs a lenient parse left out, each as "vms[I]: why"; or what a parse
 * ignored, each as "vms[I] (NAME): member \"x\", setting \"y\"" or, beside
 * "vms", "member \"x\"".
 */
struct savefile_drops {
        char **messages;
        size_t n;
};

/*
 * Like savefile_parse(), but a VM that is wrong on its own (its name, its
 * members, listed twice: the second one) is left out and named in *drops
 * (zeroed by the caller; free with savefile_drops_free()), and the others
 * are kept; what was ignored is named in *ignored (the same; NULL: not
 * wanted). What is wrong with the file as a whole (not JSON, its version,
 * its shape, too many VMs) still fails it, with both empty.
 */
int savefile_parse_lenient(const char *text, size_t len, const struct savefile_spec *spec,
                           json_t **ret_root, void **ret_vms, size_t *ret_n,
                           struct savefile_drops *drops, struct savefile_drops *ignored, char *err,
                           size_t errlen);

void savefile_drops_free(struct savefile_drops *drops);

/*
 * The members of a VM's object (vm true: all but "name" and spec->members)
 * or of the file's root (vm false: all but "version", "vms" and
 * spec->extras) that the spec does not know, the ones a parse names as
 * ignored, in a new object sharing their values (empty when there are
 * none). NULL on ENOMEM.
 */
json_t *savefile_unknown(const json_t *obj, const struct savefile_spec *spec, bool vm);

/* Add "what" to a list of what was ignored ("a, b"), as far as it fits. */
void savefile_note(char *buf, size_t len, const char *what);

#endif
