/*
 * cli: what the dynmem command's parts share: the parsed command line. Each
 * command is one function (commands.c; counters.c, events.c and top.c for
 * the live views) in main.c's table; client.c talks to dynmemd; output.c
 * prints replies for people.
 */
#ifndef DYNMEM_CLI_H
#define DYNMEM_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "control.h"

#define CLI_TIMEOUT_DEFAULT_MS (120 * 1000)

struct cli {
        const char *socket;         /* --socket, else $DYNMEM_SOCKET, else the default */
        bool json;                  /* --json: print the daemon's JSON */
        uint64_t timeout_ms;        /* --timeout: how long to wait for a reply */
        const char *name;           /* the VM named on the command line, or NULL */
        struct control_request req; /* options that go into the request */
        const char *set;            /* counters --set: "balancer", "vm", or NULL for both */
        const char *vm;             /* counters --vm NAME */
        uint64_t interval_ms;       /* counters --interval: 0 = one sample */
        uint64_t count;             /* counters --count: samples in a series, 0 = until stopped */
        bool follow;                /* events --follow */
        bool names_only;            /* list --name: the VM names, one a line */
        bool timeout_given;         /* --timeout was given (migrate: abort after it) */
        const char *operand;        /* migrate: DEST_URI */
        const char *connect;        /* migrate --connect: the source's libvirt URI */
        const char *migrate_uri;    /* migrate --migrate-uri: where QEMU sends the data */
        bool persistent;            /* migrate --persistent: defined on the destination */
        bool undefine_source;       /* migrate --undefinesource */
        uint64_t bandwidth_mib;     /* migrate --bandwidth: MiB/s at most, 0 = libvirt's */
        bool no_carry;              /* migrate --no-carry: dynmemd is not asked to write first */
};

/* Exit statuses. */
enum {
        CLI_OK = 0,
        CLI_FAILED = 1, /* dynmemd refused, or could not be reached */
        CLI_USAGE = 2,  /* bad usage, or a value dynmemd refuses as invalid (EINVAL) */
};

#endif
