/*
 * registry: the VMs dynmemd owns, kept sorted by name. Each entry embeds
 * its struct vm (which the balancer borrows through registry.vms, an array
 * in the same order) and what the daemon knows beyond the balancer: where
 * the VM was defined, which settings `dynmem set` overrode, its backend
 * keys, autostart, why its last start failed, and what a newer dynmemd
 * wrote in its state file entry.
 */
#ifndef DYNMEM_REGISTRY_H
#define DYNMEM_REGISTRY_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "log.h"
#include "vm.h"

enum registry_origin {
        REGISTRY_CONFIG,  /* a [vm "NAME"] section of the configuration file */
        REGISTRY_CREATED, /* made with `dynmem create`; lives in the state file */
        REGISTRY_BACKEND, /* the backend's own (a libvirt domain): daemon/inventory.c */
        REGISTRY_N_ORIGINS,
};

const char *registry_origin_name(enum registry_origin o);
int registry_origin_parse(const char *text, enum registry_origin *ret);

/* Lines about one VM's guest restarting: bursts of 5, then one every 10 s. */
#define REGISTRY_REBOOT_LOG_BURST      5
#define REGISTRY_REBOOT_LOG_PER_MINUTE 6

struct registry_entry {
        struct vm vm; /* vm.owner_data points back here */
        enum registry_origin origin;
        unsigned config_line; /* REGISTRY_CONFIG: line of the section */
        unsigned overrides;   /* REGISTRY_CONFIG: settings fields `dynmem set` changed */
        bool autostart;
        bool autostart_override;     /* REGISTRY_CONFIG: autostart set with `dynmem set` */
        unsigned reset_pending;      /* REGISTRY_CONFIG: settings whose file values wait for the
                                        VM to be off: handed back by `dynmem set --reset`, or
                                        changed by a reload, while it ran */
        bool configured;             /* the backend accepted the keys */
        bool removed;                /* gone from the configuration: dropped once off */
        int start_errno;             /* why the last start failed (0: it did not) */
        bool seen;                   /* scratch for apply_config() and inventory_sync() */
        char problem[200];           /* REGISTRY_BACKEND: why its settings cannot be used, or "" */
        char uuid[BACKEND_UUID_MAX]; /* REGISTRY_BACKEND: the owner's lasting id of it, or "" */
        uint64_t admit_deadline_ms;  /* a start its owner makes waits for admission until then */
        struct log_ratelimit reboot_rl; /* "the guest restarted": a guest may reboot in a loop */
        /* what the policy learned, carried in the VM by its owner (carry.c) */
        bool carry_looked;        /* what it carried in was looked at, since it holds memory */
        uint64_t carry_at_ms;     /* the next write is due then (daemon_now), 0 unscheduled */
        uint64_t learned_wall_ms; /* running.json gave it what was learned, written then */
        char *json_text;          /* cached reply JSON, valid during cycle json_cycle */
        size_t json_len;
        uint64_t json_cycle;
        char *state_text; /* cached state file entry ("" when none), or NULL */
        /*
         * REGISTRY_CONFIG and REGISTRY_CREATED: what a newer dynmemd wrote in
         * the VM's state file entry that this one does not know, written back
         * with it (state.c): the entry's members, and the settings in its
         * "settings". Objects, or NULL when there is none.
         */
        json_t *carried;
        json_t *carried_settings;
        struct config_kv *keys; /* backend keys, owned */
        size_t n_keys;
};

struct registry {
        struct registry_entry **entries; /* sorted by name */
        struct vm **vms;                 /* &entries[i]->vm, for the balancer */
        size_t n, cap;
};

/* The entry named name, or NULL. O(log n). */
struct registry_entry *registry_find(const struct registry *r, const char *name);

/*
 * Add a VM named name (settings zeroed, state off). Returns 0 with the entry
 * in *ret, -EEXIST or -ENOMEM. Pointers into entries stay valid; r->vms
 * changes (hand it to the balancer again).
 */
int registry_add(struct registry *r, const char *name, struct registry_entry **ret);

/* Remove an entry: the backend forgets it, the entry is freed. */
void registry_remove(struct registry *r, struct registry_entry *e, struct backend *b);

/*
 * Something about the entry changed outside a cycle (settings, state,
 * overrides, origin, keys, autostart, removal): drop what is cached.
 */
void registry_touch(struct registry_entry *e);

/* Let go of the settings a newer dynmemd wrote for the entry (a reset, a new definition). */
void registry_drop_carried_settings(struct registry_entry *e);

/* Replace an entry's backend keys with copies. Returns 0 or -ENOMEM. */
int registry_set_keys(struct registry_entry *e, const struct config_kv *keys, size_t n);

/* True when the entry's backend keys are exactly these, in order. */
bool registry_keys_equal(const struct registry_entry *e, const struct config_kv *keys, size_t n);

/* A config_vm view of the entry for the backend (borrows the keys). */
void registry_config_vm(const struct registry_entry *e, struct config_vm *ret);

/* The entry owning vm. */
struct registry_entry *registry_entry_of(const struct vm *vm);

/* Free everything; the backend forgets every VM. b may be NULL. */
void registry_free(struct registry *r, struct backend *b);

#endif
