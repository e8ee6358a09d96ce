/*
 * libvirt_work: the worker thread that makes the libvirt backend's resize
 * calls, and its jobs. See libvirt_work.h.
 */
#include "libvirt_work.h"

#include <errno.h>
#include <event2/event.h>
#include <libvirt/virterror.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mono.h"
#include "units.h"

/* ---- jobs ---- */

struct lv_job *lv_job_new(virDomainPtr dom, const char *name, uint64_t serial)
{
        struct lv_job *j = calloc(1, sizeof(*j));
        virConnectPtr conn = dom ? virDomainGetConnect(dom) : NULL;

        if (!j || !conn || virConnectRef(conn) < 0) {
                free(j);
                return NULL;
        }
        if (virDomainRef(dom) < 0) {
                virConnectClose(conn);
                free(j);
                return NULL;
        }
        j->conn = conn;
        j->dom = dom;
        j->serial = serial;
        snprintf(j->name, sizeof(j->name), "%s", name);
        return j;
}

int lv_job_add(struct lv_job *j, enum lv_step_kind kind, uint64_t bytes, char *xml)
{
        if (j->n_steps >= LV_JOB_STEPS) {
                free(xml);
                return -ENOSPC;
        }
        j->steps[j->n_steps++] = (struct lv_step){.kind = kind, .bytes = bytes, .xml = xml};
        return 0;
}

int lv_job_add_metadata(struct lv_job *j, char *xml, const char *key, const char *uri)
{
        int r = lv_job_add(j, LV_STEP_METADATA, 0, xml);

        if (r == 0) {
                j->steps[j->n_steps - 1].key = key;
                j->steps[j->n_steps - 1].uri = uri;
        }
        return r;
}

const char *lv_step_call(const struct lv_step *s)
{
        switch (s->kind) {
        case LV_STEP_BALLOON:
                return "virDomainSetMemoryFlags";
        case LV_STEP_REQUESTED:
                return "virDomainUpdateDeviceFlags";
        case LV_STEP_METADATA:
                return "virDomainSetMetadata";
        }
        return "?";
}

static void run_step(struct lv_job *j, struct lv_step *s)
{
        double t0 = mono_ms_exact();
        int r;

        if (s->kind == LV_STEP_BALLOON)
                r = virDomainSetMemoryFlags(j->dom, (unsigned long)(s->bytes / KIB),
                                            VIR_DOMAIN_AFFECT_LIVE);
        else if (s->kind == LV_STEP_METADATA)
                /* the live domain only: what the policy learned is not the next start's */
                r = s->xml ? virDomainSetMetadata(j->dom, VIR_DOMAIN_METADATA_ELEMENT, s->xml,
                                                  s->key, s->uri, VIR_DOMAIN_AFFECT_LIVE)
                           : -1;
        else
                r = s->xml ? virDomainUpdateDeviceFlags(j->dom, s->xml, VIR_DOMAIN_AFFECT_LIVE)
                           : -1;
        s->ms = mono_ms_exact() - t0;
        s->ok = r == 0;
        if (s->ok)
                return;
        if (!s->xml && s->kind != LV_STEP_BALLOON) {
                snprintf(s->error, sizeof(s->error), "out of memory");
                return;
        }
        /* libvirt's last error is this thread's: read here, said on the loop */
        const char *m = virGetLastErrorMessage();
        s->error_code = virGetLastErrorCode();
        snprintf(s->error, sizeof(s->error), "%s", m && *m ? m : "unknown libvirt error");
}

void lv_job_run(struct lv_job *j)
{
        for (int i = 0; i < j->n_steps; i++)
                run_step(j, &j->steps[i]);
        j->ran = true;
}

void lv_job_free(struct lv_job *j)
{
        if (!j)
                return;
        for (int i = 0; i < j->n_steps; i++)
                free(j->steps[i].xml);
        if (j->dom)
                virDomainFree(j->dom);
        if (j->conn)
                virConnectClose(j->conn); /* the job's reference */
        free(j);
}

/* ---- the worker ---- */

struct job_list {
        struct lv_job *head, *tail;
};

struct lv_work {
        pthread_t thread;
        bool thread_started;
        pthread_mutex_t lock; /* guards what follows */
        pthread_cond_t wake;
        struct job_list queue;    /* for the worker */
        struct job_list finished; /* for the loop */
        bool running_job;         /* the worker holds one */
        bool stop;
        /* the loop's side */
        int efd; /* the worker (or a cancel) says the finished list grew */
        struct event *done_ev;
        lv_job_fn run, done;
        void *userdata;
};

static void push(struct job_list *l, struct lv_job *j)
{
        j->next = NULL;
        if (l->tail)
                l->tail->next = j;
        else
                l->head = j;
        l->tail = j;
}

static struct lv_job *pop(struct job_list *l)
{
        struct lv_job *j = l->head;

        if (j && !(l->head = j->next))
                l->tail = NULL;
        return j;
}

static void signal_loop(struct lv_work *w)
{
        uint64_t one = 1;

        /* a full counter (never, in practice) still leaves the fd readable */
        (void)!write(w->efd, &one, sizeof(one));
}

static void *worker(void *arg)
{
        struct lv_work *w = arg;

        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->stop && !w->queue.head)
                        pthread_cond_wait(&w->wake, &w->lock);
                if (w->stop)
                        break;
                struct lv_job *j = pop(&w->queue);
                w->running_job = true;
                pthread_mutex_unlock(&w->lock);

                j->waited_ms = mono_ms_exact() - j->submitted_ms;
                if (j->drop_after_ms > 0 && j->waited_ms > j->drop_after_ms)
                        j->dropped_late = true; /* not run */
                else
                        w->run(j, w->userdata);

                pthread_mutex_lock(&w->lock);
                w->running_job = false;
                push(&w->finished, j);
                signal_loop(w);
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* Hand every job on the finished list to done, then free it (the loop's thread). */
static void deliver(struct lv_work *w)
{
        struct job_list l;

        pthread_mutex_lock(&w->lock);
        l = w->finished;
        w->finished = (struct job_list){0};
        pthread_mutex_unlock(&w->lock);
        for (struct lv_job *j; (j = pop(&l));) {
                w->done(j, w->userdata);
                lv_job_free(j);
        }
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
        uint64_t n;

        (void)what;
        (void)!read(fd, &n, sizeof(n));
        deliver(arg);
}

static int start_thread(struct lv_work *w)
{
        sigset_t all, old;
        int r;

        /* signals stay the loop's: the worker blocks them all */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        r = pthread_create(&w->thread, NULL, worker, w);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        w->thread_started = r == 0;
        return -r;
}

struct lv_work *lv_work_new(struct event_base *base, lv_job_fn run, lv_job_fn done, void *userdata)
{
        struct lv_work *w = calloc(1, sizeof(*w));
        int r = -ENOMEM;

        if (!w)
                goto fail;
        *w = (struct lv_work){.efd = -1, .run = run, .done = done, .userdata = userdata};
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->wake, NULL);
        if ((w->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
                r = -errno;
                goto fail;
        }
        if (!(w->done_ev = event_new(base, w->efd, EV_READ | EV_PERSIST, on_done, w)) ||
            event_add(w->done_ev, NULL) < 0)
                goto fail;
        if ((r = start_thread(w)) < 0)
                goto fail;
        return w;
fail:
        lv_work_free(w);
        errno = -r;
        return NULL;
}

int lv_work_submit(struct lv_work *w, struct lv_job *j)
{
        int r = 0;

        j->submitted_ms = mono_ms_exact();
        pthread_mutex_lock(&w->lock);
        if (w->stop)
                r = -ESHUTDOWN;
        else
                push(&w->queue, j);
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        return r;
}

size_t lv_work_cancel(struct lv_work *w, const char *name)
{
        struct job_list keep = {0};
        size_t n = 0;

        pthread_mutex_lock(&w->lock);
        for (struct lv_job *j; (j = pop(&w->queue));) {
                if (name && strcmp(j->name, name) != 0) {
                        push(&keep, j);
                        continue;
                }
                push(&w->finished, j);
                n++;
        }
        w->queue = keep;
        if (n)
                signal_loop(w);
        pthread_mutex_unlock(&w->lock);
        return n;
}

size_t lv_work_pending(struct lv_work *w)
{
        size_t n = 0;

        pthread_mutex_lock(&w->lock);
        for (struct lv_job *j = w->queue.head; j; j = j->next)
                n++;
        n += w->running_job;
        pthread_mutex_unlock(&w->lock);
        return n;
}

bool lv_work_stopping(struct lv_work *w)
{
        pthread_mutex_lock(&w->lock);
        bool stop = w->stop;
        pthread_mutex_unlock(&w->lock);
        return stop;
}

void lv_work_free(struct lv_work *w)
{
        if (!w)
                return;
        pthread_mutex_lock(&w->lock);
        w->stop = true;
        pthread_cond_signal(&w->wake);
        pthread_mutex_unlock(&w->lock);
        if (w->thread_started)
                pthread_join(w->thread, NULL);
        /* what ran comes back first, then what never did (not run), in order */
        pthread_mutex_lock(&w->lock);
        for (struct lv_job *j; (j = pop(&w->queue));)
                push(&w->finished, j);
        pthread_mutex_unlock(&w->lock);
        if (w->done_ev)
                deliver(w);
        if (w->done_ev)
                event_free(w->done_ev);
        if (w->efd >= 0)
                close(w->efd);
        pthread_cond_destroy(&w->wake);
        pthread_mutex_destroy(&w->lock);
        free(w);
}
