/*
 * libvirt_round: one round of the libvirt backend's reads, made off the loop
 * (libvirt_reader.c). The loop says what it needs (lv_round_build: a
 * connection, the list of domains, the domains marked for reloading, the
 * balloon statistics, libvirt's figures, the jobs); the reader makes the
 * calls and keeps every answer and error in the round (libvirt's error is
 * per thread); the loop takes the answers (lv_round_take) as the files that
 * own the state see fit. A round holds references on its connection and
 * domains; results of a connection closed meanwhile are dropped.
 */
#ifndef DYNMEM_LIBVIRT_ROUND_H
#define DYNMEM_LIBVIRT_ROUND_H

#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm.h"

struct lv_backend;
struct lv_domain;

/* What a failed call left: libvirt's error, read on the thread that made it. */
struct lv_call_error {
        int code; /* virErrorNumber, 0 none */
        char message[256];
};

/* A domain's job as virDomainGetJobStats says (1 a job runs, 0 none, -1 cannot say). */
struct lv_job_reading {
        int r;
        int operation; /* virDomainJobOperation, when one runs */
        struct lv_call_error err;
};

/* A domain reloaded by name. */
struct lv_round_load {
        char name[VM_NAME_MAX];
        uint64_t touched; /* the domain's touches when asked: a later one reloads it again */
        int r;            /* 1 read, 0 libvirt has no such domain, -1 failed */
        virDomainPtr dom; /* r 1: a reference */
        int state, reason, id;
        bool persistent;
        char *xml;
        struct lv_job_reading job; /* r 1 and active: its job */
        struct lv_call_error err;
};

/* A domain read by its handle: its job, libvirt's figure, its live XML. */
struct lv_round_dom {
        char name[VM_NAME_MAX];
        virDomainPtr dom; /* a reference */
        bool want_job, want_info, want_xml;
        struct lv_job_reading job;
        bool info_ok;
        uint64_t memory_kib;
        char *xml;
        struct lv_call_error err; /* of the figure or the XML */
        double info_ms, xml_ms, job_ms;
};

#define LV_ROUND_CALLBACKS 8

struct lv_round {
        struct lv_backend *lb; /* the events' opaque (dispatched on the loop only) */
        virConnectPtr conn;    /* a reference; NULL: open one */
        uint64_t conn_serial;  /* the backend's connection it was built for */
        char *uri;
        /* opening */
        virConnectPtr opened; /* its events registered; NULL: failed */
        int callbacks[LV_ROUND_CALLBACKS];
        char open_error[256];
        const char *open_hint;
        unsigned long lib_version, hv_version;
        /* every domain's name */
        bool list_all;
        int n_listed; /* -1 failed */
        char **listed;
        struct lv_call_error list_err;
        /* reloads */
        struct lv_round_load *loads;
        size_t n_loads;
        /* balloon statistics, in one call */
        virDomainPtr *stats_doms; /* references */
        size_t n_stats_doms;
        virDomainStatsRecordPtr *recs;
        int n_recs; /* -1 failed */
        struct lv_call_error stats_err;
        double stats_ms;
        /* domains read by handle */
        struct lv_round_dom *doms;
        size_t n_doms;
};

/* The round the loop needs now (references taken); NULL on ENOMEM or nothing to read. */
struct lv_round *lv_round_build(struct lv_backend *lb, uint64_t now_ms);

/* A round that reloads the one domain d (references taken); NULL on ENOMEM or not connected. */
struct lv_round *lv_round_build_reload(struct lv_backend *lb, struct lv_domain *d);

/* Make the round's calls (the reader's thread, or the loop for in-process drivers). */
void lv_round_run(struct lv_round *r);

/*
 * Take a made round's answers on the loop, then free it; true when the list
 * of domains changed. A round of a connection closed since is dropped.
 */
bool lv_round_take(struct lv_backend *lb, struct lv_round *r);

/* Free a round and what it holds (any thread). */
void lv_round_free(struct lv_round *r);

/* The error of the last call on this thread. */
void lv_call_error_take(struct lv_call_error *e);

/* The round's load of the domain named name, NULL none. */
struct lv_round_load *lv_round_load_of(struct lv_round *r, const char *name);

/* The same for a domain read by handle. */
struct lv_round_dom *lv_round_dom_of(struct lv_round *r, const char *name);

#endif
