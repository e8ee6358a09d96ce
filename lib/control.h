/*
 * control: the control protocol between dynmemd and its clients (the dynmem
 * CLI, tests, scripts). JSON lines over a Unix socket: one request object per
 * line, one reply object per line, both carrying "version". This module
 * encodes and checks both sides; it does no I/O. docs/control-protocol.md is
 * the reference.
 *
 *   {"version":1,"command":"show","name":"web1"}
 *   {"version":1,"ok":true,"vm":{...}}
 *   {"version":1,"ok":false,"error":"web1: cannot change startup while the VM is
 * running","errno":1}
 *
 * Limits: a request line is at most CONTROL_REQUEST_MAX bytes (newline not
 * counted); a create request carries at most CONTROL_KEYS_MAX backend keys;
 * a client accepts replies of at most CONTROL_REPLY_MAX bytes.
 */
#ifndef DYNMEM_CONTROL_H
#define DYNMEM_CONTROL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "config.h"
#include "settings.h"
#include "vm.h"

#define CONTROL_SOCKET_DEFAULT "/run/dynmem/dynmemd.sock"
#define CONTROL_SOCKET_ENV     "DYNMEM_SOCKET" /* the CLI's socket when --socket is not given */

#define CONTROL_VERSION     1
#define CONTROL_REQUEST_MAX (64u * 1024)        /* bytes in one request line */
#define CONTROL_REPLY_MAX   (64u * 1024 * 1024) /* bytes in one reply line */
#define CONTROL_KEYS_MAX    64                  /* backend keys in one create request */
#define CONTROL_KEY_MAX     64                  /* length of a backend key name */
#define CONTROL_ERROR_MAX   512                 /* length of an error message */
#define CONTROL_JSON_FLAGS  (JSON_COMPACT | JSON_REAL_PRECISION(12)) /* how lines are encoded */

enum control_command {
        CONTROL_LIST,
        CONTROL_SHOW,
        CONTROL_STATUS,
        CONTROL_START,
        CONTROL_STOP,
        CONTROL_SET,
        CONTROL_CREATE,
        CONTROL_DELETE,
        CONTROL_COUNTERS,
        CONTROL_EVENTS,
        CONTROL_ENABLE,  /* a VM its backend owns (libvirt): dynamic memory on */
        CONTROL_DISABLE, /* ... and off */
        CONTROL_ADMIT,   /* its owner starts it: may it? (the libvirt hook) */
        CONTROL_CARRY,   /* it moves now: what the policy learned, written into it fresh */
        CONTROL_N_COMMANDS,
};

struct control_command_info {
        const char *name;
        bool changes;    /* changes something: only privileged callers */
        bool needs_name; /* names one VM */
        unsigned fields; /* optional request fields allowed (CONTROL_FIELD_*) */
};

/* Optional fields of a request, beyond version, command and name. */
enum {
        CONTROL_FIELD_FORCE = 1u << 0,     /* stop: "force": bool */
        CONTROL_FIELD_SETTINGS = 1u << 1,  /* set, create: "settings": {...} */
        CONTROL_FIELD_BACKEND = 1u << 2,   /* create: "backend": {"KEY": "VALUE"} */
        CONTROL_FIELD_AUTOSTART = 1u << 3, /* set, create: "autostart": bool */
        CONTROL_FIELD_NAME = 1u << 4,      /* counters: "name" (one VM), optional */
        CONTROL_FIELD_SINCE = 1u << 5,     /* events: "since": sequence number */
        CONTROL_FIELD_INCOMING = 1u << 6,  /* admit: "incoming_bytes": a VM arriving by live
                                              migration holding that much (with "settings") */
        CONTROL_FIELD_RESET = 1u << 7,     /* set: "reset": ["weight", "autostart", ...] or
                                              ["all"]: hand these back to the configuration */
};

/* The command's description, or NULL when out of range. */
const struct control_command_info *control_command_info(enum control_command c);

/* Look a command up by name. Returns 0 or -EOPNOTSUPP. */
int control_command_parse(const char *name, enum control_command *ret);

struct control_request {
        enum control_command command;
        char name[VM_NAME_MAX]; /* "" when the command names no VM */
        bool force;
        struct vm_settings settings; /* fields marked in `given` */
        unsigned given;              /* enum settings_field bits */
        bool autostart;
        bool autostart_given;   /* "autostart" was in the request */
        unsigned reset;         /* set: settings to hand back to the configuration file */
        bool reset_autostart;   /* set: ... and autostart */
        struct config_kv *keys; /* create: backend keys (line = 0) */
        size_t n_keys;
        uint64_t since;          /* events: the last sequence number seen (0: all) */
        uint64_t incoming_bytes; /* admit: arriving by live migration with this much (0: a start) */
};

/*
 * Parse and check one request line (without its newline). Returns 0, or a
 * negative errno with one sentence in err: -EMSGSIZE (over the limit),
 * -EPROTO (missing or unsupported version), -EOPNOTSUPP (unknown command),
 * -EINVAL (anything else malformed). Settings are checked for their JSON
 * type and to fit their C type; their ranges and consistency are
 * settings_check()'s, which the caller applies.
 */
int control_request_parse(const char *line, size_t len, struct control_request *ret, char *err,
                          size_t errlen);

/*
 * One word of a reset (the CLI's --reset KEY, the request's "reset" member):
 * a setting's option name ("buffer") or JSON name ("buffer_percent"),
 * "autostart", or "all" (every setting and autostart). Adds to *reset and
 * *reset_autostart. Returns 0 or -EINVAL.
 */
int control_reset_word(const char *word, unsigned *reset, bool *reset_autostart);

/* Release what a parsed request holds (not the struct). Accepts NULL. */
void control_request_free(struct control_request *r);

/* Encode a request as one line without newline; caller frees. NULL on ENOMEM. */
char *control_request_format(const struct control_request *r);

/*
 * Settings as JSON, each under its settings_table row's json name
 * ("startup_bytes", "minimum_bytes", "maximum_bytes", "buffer_percent",
 * "weight", "dynamic", "block_bytes"): only the fields in mask. Used by
 * requests, replies and the daemon's state file.
 */
json_t *control_settings_json(const struct vm_settings *s, unsigned mask);

/*
 * Read settings from a JSON object into s, marking what was there in
 * *ret_given. Unknown keys, wrong types and values that do not fit the
 * field (negative, over 2^63 - 1 bytes, over 2^32 - 1) are errors (-EINVAL
 * with a sentence in err). The caller applies settings_check().
 */
int control_settings_parse(const json_t *obj, struct vm_settings *s, unsigned *ret_given, char *err,
                           size_t errlen);

/*
 * Backend keys as a JSON object of strings, and back. The parser checks
 * names ([a-z0-9_], under CONTROL_KEY_MAX), values (non-empty strings under
 * CONFIG_VALUE_MAX, no NUL) and the count (CONTROL_KEYS_MAX); it appends to
 * *keys / *n_keys, which the caller frees with control_keys_free() even on
 * failure.
 */
json_t *control_keys_json(const struct config_kv *keys, size_t n);
int control_keys_parse(const json_t *obj, struct config_kv **keys, size_t *n_keys, char *err,
                       size_t errlen);
void control_keys_free(struct config_kv *keys, size_t n);

/*
 * One VM as replies show it (docs/control-protocol.md lists the fields), with
 * what its backend (named backend_name) describes as the member "backend";
 * desc NULL: no such member.
 */
json_t *control_vm_json(const struct vm *vm, const char *backend_name,
                        const struct backend_vm_description *desc);

/* A success reply: body's members plus version and ok. Steals body (may be NULL). */
char *control_reply_ok(json_t *body);

/*
 * Make text valid UTF-8 in place: what a message quotes is often cut to a
 * length, maybe through a multibyte character, or holds bytes that are not
 * UTF-8; each byte of those becomes '?', so that the text can be a JSON
 * string.
 */
void control_text_scrub(char *text);

/* An error reply with a positive errno and a message (made valid UTF-8). */
char *control_reply_error(int errnum, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Parse a reply line. Success: returns 0 and the whole reply object in
 * *ret_reply (caller json_decref()s). An error reply: returns minus its
 * errno (EIO when it has none or an odd one) with its message in err. A
 * malformed reply: -EBADMSG; another version: -EPROTO.
 */
int control_reply_parse(const char *line, size_t len, json_t **ret_reply, char *err, size_t errlen);

#endif
