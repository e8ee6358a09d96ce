/*
 * config: the INI file shared by dynmemd's configuration and dynmem-sim's
 * scenarios. One parser (inih underneath) checks every key's type and range
 * and reports problems as "FILE:LINE: message"; unknown sections and keys are
 * errors. Keys that belong to a backend ([vm] trace for the simulator,
 * kernel for QEMU, ...) are kept with their line numbers for the backend to
 * check with config_check_backend_keys().
 *
 * Sections:
 *   [host]      memory, reserve, policy, backend, interval, socket, state_dir, http,
 *               http_allow_remote, web_dir, admin_group, qemu_user, libvirt_uri
 *   [policy]    the dynmem policy's tunables (see docs/policy.md)
 *   [sim]       duration, step, report_interval, grow_rate, shrink_rate, seed, speed
 *   [vm "NAME"] startup, minimum, maximum, buffer, weight, dynamic, block, lend, autostart,
 *               plus backend keys
 *   [cluster]   relief, shortage_for, cooldown, peer_timeout (docs/migration.md)
 *   [peer "NAME"] libvirt_uri, http: a host running dynmemd that may take VMs from this one
 */
#ifndef DYNMEM_CONFIG_H
#define DYNMEM_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "policy.h"
#include "settings.h"

#define CONFIG_NAME_MAX  64   /* VM names: 1..63 of [A-Za-z0-9_.-], not starting with '.' or '-' */
#define CONFIG_VALUE_MAX 4096 /* longest value, continuation lines included */
#define CONFIG_VMS_MAX   100000
#define CONFIG_FILE_MAX  (16u * 1024 * 1024)

/*
 * Problems found while reading; each message is complete ("FILE:LINE: ...").
 * The first CONFIG_DIAG_MAX are kept, the others only counted (a binary file
 * given as the configuration has a problem on nearly every line): whoever
 * shows the messages adds config_diag_more()'s line after them.
 */
#define CONFIG_DIAG_MAX 20

struct config_diag {
        char **messages;
        size_t count; /* messages kept, at most CONFIG_DIAG_MAX */
        size_t more;  /* problems after those, counted and not kept */
};

void config_diag_add(struct config_diag *d, const char *file, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/*
 * "... and 6,980 more problems" into buf, what being the noun ("problem" for
 * errors, "warning" for config.warnings); NULL when every message is in
 * d->messages.
 */
const char *config_diag_more(const struct config_diag *d, const char *what, char *buf, size_t len);

/*
 * Whether d holds a message at the FILE:LINE of message (which begins
 * "file:LINE: ") that already says where comments start (a value refused
 * with config_comment_hint()'s words): the warning of a text value there
 * would say it again. The warning of a value continued on indented lines
 * names the line of its " #" and, "KEY (continued from line N)", its key's
 * line, where the key's errors are: a message at either explains it.
 */
bool config_diag_explains(const struct config_diag *d, const char *file, const char *message);

/*
 * Drop the kept messages about file (at any of its lines, or none) whose text
 * after "FILE:LINE: " begins with start: a warning that is no longer true (a
 * value a running VM kept back, taken once it is off). Those only counted in
 * d->more stay counted. Returns how many went.
 */
size_t config_diag_drop(struct config_diag *d, const char *file, const char *start);

/* A count with its thousands grouped, "6,980", into buf (at least 27 bytes). */
char *config_count_format(size_t n, char *buf, size_t len);

/*
 * Opens a text file to read (configuration, trace): a directory, a FIFO or a
 * socket is refused at once, never waited on, with a line in d naming it.
 * The file, with *st filled; or NULL with *err a negative errno.
 */
FILE *config_open_text(const char *path, struct stat *st, struct config_diag *d, int *err);
void config_diag_free(struct config_diag *d);

struct config_kv {
        char *key;
        char *value;
        unsigned line;         /* of the key (0: not from a file) */
        unsigned comment_line; /* the reader's: the line of the value's first " #", or 0 */
};

struct config_vm {
        char name[CONFIG_NAME_MAX];
        unsigned line; /* of the section header */
        struct vm_settings settings;
        unsigned given;                   /* enum settings_field bits set explicitly */
        unsigned given_lines[SETTINGS_N]; /* line of each setting, by settings_table row */
        bool autostart;
        unsigned autostart_line; /* of the autostart key; 0: not given */
        struct config_kv *extra; /* backend keys, in file order */
        size_t n_extra;
};

struct config_host {
        uint64_t memory_bytes; /* memory the VMs may hold in all */
        bool memory_given;
        uint64_t reserve_bytes; /* kept for the host itself */
        bool reserve_given;
        char *policy;         /* "dynmem" unless given */
        char *backend;        /* "sim" unless given */
        uint64_t interval_ms; /* balancing cycle, 1 s */
        char *socket;
        char *state_dir;
        char *http;             /* NULL = off */
        bool http_allow_remote; /* http may listen beyond loopback */
        char *web_dir;          /* NULL = the page built into dynmemd */
        char *admin_group;      /* members may change settings through the socket; NULL: root */
        char *qemu_user;        /* QEMU runs as this user; NULL: dynmem-qemu */
        char *libvirt_uri;      /* backend libvirt: NULL = qemu:///system */
};

struct config_sim {
        uint64_t duration_ms;        /* 0 = until the last trace ends */
        uint64_t step_ms;            /* 1 s */
        uint64_t report_interval_ms; /* 1 s */
        uint64_t grow_rate;          /* bytes per second, 1 GiB */
        uint64_t shrink_rate;        /* bytes per second, 512 MiB */
        uint64_t seed;               /* read and checked, used by nothing: see config_warn_seed() */
        double speed;                /* simulated seconds per real second (daemon), 1 */
};

/* A peer host: where its libvirt takes migrations, where its dynmemd answers (read-only). */
struct config_peer {
        char name[CONFIG_NAME_MAX];
        unsigned line; /* of the section header */
        char *libvirt_uri;
        char *http; /* http://HOST:PORT of its dynmemd's HTTP API */
};

#define CONFIG_PEERS_MAX 64

/* Hosts that relieve each other (docs/migration.md, "The relief rule"). */
struct config_cluster {
        bool relief;          /* move a VM to a peer after a sustained shortage; off unless set */
        unsigned relief_line; /* of the relief key, for messages */
        uint64_t shortage_for_ms; /* the shortage must last this long (60 s) */
        uint64_t cooldown_ms;     /* after a move, none before this (5 min) */
        uint64_t peer_timeout_ms; /* a peer's answer (5 s) */
        struct config_peer *peers;
        size_t n_peers;
};

/* A key as the file gives it: its name (static text: the key table's) and line. */
struct config_key_at {
        const char *key;
        unsigned line;
        const char *section; /* static text: "host", "policy", "sim", "vm", "cluster", "peer" */
};

/* How many keys [sim] has (config_sim_differences()). */
#define CONFIG_SIM_KEYS 7

struct config {
        char *path;
        /*
         * Not errors, "FILE:LINE: warning: ..." (the first CONFIG_DIAG_MAX):
         * a text value (a name, a path, a URI, a command, a backend key) that
         * holds white space and '#', which may be meant as a comment and is
         * part of the value. Whoever shows errors shows these after them,
         * leaving out the ones an error at their line already explains
         * (config_diag_explains()).
         */
        struct config_diag warnings;
        struct config_host host;
        struct policy_tunables tunables;
        struct config_sim sim;
        struct config_vm *vms;
        size_t n_vms;
        struct config_cluster cluster;
        /*
         * The keys given that only dynmemd reads, in file order: [host]
         * backend, socket, state_dir, http, http_allow_remote, web_dir,
         * admin_group, qemu_user and libvirt_uri, [sim] speed, [vm] autostart,
         * and every key of [cluster] and [peer "NAME"]. dynmem-sim ignores
         * them and warns of each.
         */
        struct config_key_at *daemon_keys;
        size_t n_daemon_keys;
        /*
         * Every key given in [host], [policy], [sim] and [cluster], the
         * sections a file holds one of, in file order, for
         * config_key_line(): a reload's warning names the line of the key
         * that changed.
         */
        struct config_key_at *given_keys;
        size_t n_given_keys;
};

/*
 * Read and check a file. Returns 0 on success; -EINVAL when the file has
 * errors (all of them in diag), or another negative errno when it cannot be
 * read (also in diag). On failure *ret is left empty (config_free-able).
 */
int config_load(const char *path, struct config *ret, struct config_diag *diag);

/* Same, from a string (tests, fuzzing); `name` is used in messages. */
int config_load_string(const char *name, const char *text, struct config *ret,
                       struct config_diag *diag);

void config_free(struct config *c);

/*
 * Check that every backend key of every VM is in the NULL-terminated `allowed`
 * list. An unknown key near a VM key or an allowed key (a misspelling) is
 * reported with a "did you mean"; any other with both lists. Unknown keys of
 * the other sections get their "did you mean" from config_load().
 */
int config_check_backend_keys(const struct config *c, const char *backend,
                              const char *const *allowed, struct config_diag *diag);

/*
 * The line that gave key in section ("host", "policy", "sim" or "cluster"),
 * or 0 when the file does not give it (the key has its default).
 */
unsigned config_key_line(const struct config *c, const char *section, const char *key);

/*
 * The names (static text) of the [sim] keys whose values differ between a
 * and b, in the order config_load() knows them; returns how many, at most
 * max (CONFIG_SIM_KEYS holds them all).
 */
size_t config_sim_differences(const struct config_sim *a, const struct config_sim *b,
                              const char **keys, size_t max);

/*
 * Add to c's warnings, at its line, that the file gives [sim] seed, which
 * nothing reads: no part of program ("dynmem-sim", "dynmemd") is random, and
 * a generated trace takes its seed from dynmem-tracegen --seed. A warning,
 * not an error: files that set it still load.
 */
void config_warn_seed(struct config *c, const char *program);

/*
 * Add to c's warnings, at each VM's startup line (its section's when the
 * file leaves startup at its default), that its startup is more than memory
 * and so it never starts: "warning: vm "NAME": startup A is more than LIMIT:
 * CONSEQUENCE; lower its startup to B or less, or RAISE A or more", A and B
 * exact (a rounded figure may be above the limit it names). limit names
 * memory as the program has it ("[host] memory 4 GiB").
 */
void config_warn_startup_beyond(struct config *c, uint64_t memory, const char *limit,
                                const char *consequence, const char *raise);

/* The line that gave a setting (one settings_field bit), else the section's. */
unsigned config_setting_line(const struct config_vm *vm, unsigned bit);

/* The value of a backend key, or NULL. */
const struct config_kv *config_vm_key(const struct config_vm *vm, const char *key);

/*
 * text after the UTF-8 byte order mark some editors and spreadsheets write at
 * a file's start, or text itself when it has none.
 */
const char *config_skip_bom(const char *text);

/*
 * What to add to "KEY: VALUE is not a ..." when VALUE holds what was meant as
 * a comment, or "". inih (Debian's libinih, built with inline comments)
 * ends a value only at a ';' after white space; '#' starts a comment only
 * at the start of a line, so "1G   # note" and "1G; note" are the value.
 */
const char *config_comment_hint(const char *value);

/*
 * Whether a text value (a path, a name, a URI) holds white space followed
 * by '#', which is then part of it: config_load() warns of it.
 */
bool config_text_has_comment(const char *value);

/* True when `name` is a valid VM name. */
bool config_name_valid(const char *name);

#endif
