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
 * each VM object is read by the file's own function.
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

#endif
