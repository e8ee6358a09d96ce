/*
 * libvirt_work: the libvirt backend's resize calls, made by one worker
 * thread so that dynmemd's loop never waits on them; also the write of what
 * the policy learned into the live metadata (libvirt_carry.c), a job of one
 * LV_STEP_METADATA step.
 *
 * libvirt's resize calls (virDomainSetMemoryFlags, virDomainUpdateDeviceFlags)
 * have no asynchronous form and take from a few to hundreds of milliseconds
 * (libvirtd waits for QEMU). The loop hands one domain's planned steps to the
 * worker as a job, holding references on the connection and the domain, and
 * goes on; the worker makes the calls in order and records each outcome, with
 * libvirt's error text (libvirt keeps the last error per thread) and how long
 * it took; the finished job comes back to the loop through an eventfd, and its
 * `done` callback runs there. The worker touches nothing but the job: the
 * loop alone reads and writes the backend's state, and it alone frees jobs,
 * so the last reference on a connection is dropped on the loop too.
 *
 * Jobs run one at a time, in the order submitted. A job with drop_after_ms
 * that waited longer than that for the worker is not run (ran false,
 * dropped_late): the write of what the policy learned, which a move waits
 * for no longer, and which made late could meet the move's own job on the
 * domain and hold the worker, and every domain's resize, for libvirt's wait
 * for that job. Stopping (lv_work_free)
 * lets the running call finish, joins the thread, and hands every job back
 * through `done`: those that never ran with `ran` false.
 */
#ifndef DYNMEM_LIBVIRT_WORK_H
#define DYNMEM_LIBVIRT_WORK_H

#include <libvirt/libvirt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vm.h"

struct event_base;

enum lv_step_kind {
        LV_STEP_BALLOON,   /* virDomainSetMemoryFlags(bytes, LIVE) */
        LV_STEP_REQUESTED, /* virDomainUpdateDeviceFlags(xml, LIVE): virtio-mem's <requested> */
        LV_STEP_METADATA,  /* virDomainSetMetadata(ELEMENT, xml, key, uri, LIVE) */
};

struct lv_step {
        enum lv_step_kind kind;
        uint64_t bytes;
        char *xml; /* LV_STEP_REQUESTED: the device element, LV_STEP_METADATA: the metadata
                      element; NULL fails the step (no memory) */
        const char *key, *uri; /* LV_STEP_METADATA: its namespace's prefix and URI (static) */
        /* the outcome, written by the worker */
        bool ok;
        int error_code;  /* libvirt's (virErrorNumber) when it failed */
        char error[256]; /* libvirt's message when it failed */
        double ms;       /* how long the call took */
};

#define LV_JOB_STEPS 2

/* One domain's planned steps, made in order. */
struct lv_job {
        struct lv_job *next;
        char name[VM_NAME_MAX];
        uint64_t serial;      /* which attachment of the domain it was planned for */
        virConnectPtr conn;   /* a reference the job holds */
        virDomainPtr dom;     /* likewise */
        double submitted_ms;  /* mono_ms_exact when it was handed over */
        double waited_ms;     /* from then until the worker took it */
        double drop_after_ms; /* not made when it waited longer than this for the worker (0: no
                                 limit) */
        bool ran;             /* the worker made its calls (false: dropped before) */
        bool dropped_late;    /* not made: it waited longer than drop_after_ms */
        int n_steps;
        struct lv_step steps[LV_JOB_STEPS];
};

/* A job for dom (references taken on it and on its connection); NULL on ENOMEM. */
struct lv_job *lv_job_new(virDomainPtr dom, const char *name, uint64_t serial);

/* Append a step; xml (LV_STEP_REQUESTED) becomes the job's. -ENOSPC when full. */
int lv_job_add(struct lv_job *j, enum lv_step_kind kind, uint64_t bytes, char *xml);

/* Append an LV_STEP_METADATA step; xml becomes the job's. -ENOSPC when full. */
int lv_job_add_metadata(struct lv_job *j, char *xml, const char *key, const char *uri);

/* Make the job's calls and note their outcomes (any thread). */
void lv_job_run(struct lv_job *j);

/* The libvirt call a step makes, for messages. */
const char *lv_step_call(const struct lv_step *s);

/* Drop the job's references and free it. */
void lv_job_free(struct lv_job *j);

typedef void (*lv_job_fn)(struct lv_job *j, void *userdata);

struct lv_work;

/*
 * A worker thread that runs each submitted job with run (in the worker;
 * lv_job_run, or a test's wrapper of it) and then calls done (on base's
 * loop) and frees it. NULL with errno set on failure.
 */
struct lv_work *lv_work_new(struct event_base *base, lv_job_fn run, lv_job_fn done, void *userdata);

/* Queue j (the worker owns it until done has run). -ESHUTDOWN once stopping. */
int lv_work_submit(struct lv_work *w, struct lv_job *j);

/*
 * Take back the queued jobs of the domain named name (all when name is NULL)
 * that the worker has not begun: each comes back through done, not run, at
 * the loop's next turn. Returns how many.
 */
size_t lv_work_cancel(struct lv_work *w, const char *name);

/* Jobs queued or running (for tests and status). */
size_t lv_work_pending(struct lv_work *w);

/* lv_work_free has begun: no job is taken from the queue any more (for tests). */
bool lv_work_stopping(struct lv_work *w);

/*
 * Stop: the call under way finishes, the thread is joined, then every job
 * not yet handed back goes through done (not run ones with ran false) and
 * the worker is freed. From the loop's thread.
 */
void lv_work_free(struct lv_work *w);

#endif
