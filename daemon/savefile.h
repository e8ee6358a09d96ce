/*
 * savefile: the shape dynmemd's two saved files share, STATE_DIR/state.json
 * (state.c: what the control socket changed) and STATE_DIR/running.json
 * (attach.c: the VMs that hold memory), and the one parser of it:
 *
 *   {"version": N, "vms": [{"name": "web1", ...}, ...], other members}
 *
 * The parser checks the JSON (no duplicate members), the version, the
 * members allowed beside it, the number of VMs (CONFIG_VMS_MAX), each VM's
 * "name" (config_name_valid()) and that no VM is listed twice; the rest of
 * each VM object is read by the file's own function. Strict, one bad VM
 * fails the file; or lenient, a bad VM is left out and the rest kept.
 */
#ifndef DYNMEM_SAVEFILE_H
#define DYNMEM_SAVEFILE_H

#include <jansson.h>
#include <stddef.h>

struct savefile_spec {
        int version;
        const char *shape;         /* the expected shape, for the message */
        const char *const *extras; /* optional members beside version and vms, NULL-terminated */
        size_t vm_size;            /* bytes of one parsed VM */
        size_t name_offset;        /* where in it the name goes: char[name_size] */
        size_t name_size;
        /* Read one VM object into vm (zeroed but for its name). 0, or -EINVAL with a sentence. */
        int (*parse_vm)(const json_t *obj, void *vm, char *err, size_t errlen);
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

/* The VMs a lenient parse left out, each as "vms[I]: why". */
struct savefile_drops {
        char **messages;
        size_t n;
};

/*
 * Like savefile_parse(), but a VM that is wrong on its own (its name, its
 * members, listed twice: the second one) is left out and named in *drops
 * (zeroed by the caller; free with savefile_drops_free()), and the others
 * are kept. What is wrong with the file as a whole (not JSON, its version,
 * its shape, too many VMs) still fails it, with *drops empty.
 */
int savefile_parse_lenient(const char *text, size_t len, const struct savefile_spec *spec,
                           json_t **ret_root, void **ret_vms, size_t *ret_n,
                           struct savefile_drops *drops, char *err, size_t errlen);

void savefile_drops_free(struct savefile_drops *drops);

#endif
