/*
 * libvirt_reader: the thread that makes the libvirt backend's reads. See
 * libvirt_reader.h.
 */
#include "libvirt_reader.h"

#include <errno.h>
#include <event2/event.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "mono.h"

struct lv_reader {
        pthread_t thread;
        pthread_mutex_t lock; /* guards what follows */
        pthread_cond_t wake;
        pthread_cond_t finished_cv; /* the thread finished work (lv_reader_wait) */
        void *queued;               /* for the thread */
        void *finished;             /* for the loop */
        bool stop;                  /* the loop is done with it */
        bool running;               /* the thread holds work */
        /* the loop's side */
        uint64_t out_since_ms; /* when the work out was submitted, 0 none */
        int efd;
        struct event *done_ev;
        lv_reader_fn run, done, drop;
        void *userdata;
};

static void destroy(struct lv_reader *r)
{
        if (r->done_ev)
                event_free(r->done_ev);
        if (r->efd >= 0)
                close(r->efd);
        pthread_cond_destroy(&r->wake);
        pthread_cond_destroy(&r->finished_cv);
        pthread_mutex_destroy(&r->lock);
        free(r);
}

static void *reader(void *arg)
{
        struct lv_reader *r = arg;

        pthread_mutex_lock(&r->lock);
        for (;;) {
                while (!r->stop && !r->queued)
                        pthread_cond_wait(&r->wake, &r->lock);
                if (r->stop)
                        break;
                void *work = r->queued;
                r->queued = NULL;
                r->running = true;
                pthread_mutex_unlock(&r->lock);

                r->run(work, r->userdata);

                pthread_mutex_lock(&r->lock);
                r->running = false;
                if (r->stop) { /* left behind: nobody takes it */
                        pthread_mutex_unlock(&r->lock);
                        r->drop(work, r->userdata);
                        return NULL;
                }
                r->finished = work;
                pthread_cond_signal(&r->finished_cv);
                uint64_t one = 1;
                (void)!write(r->efd, &one, sizeof(one));
        }
        pthread_mutex_unlock(&r->lock);
        return NULL;
}

static void deliver(struct lv_reader *r)
{
        void *work;

        pthread_mutex_lock(&r->lock);
        work = r->finished;
        r->finished = NULL;
        pthread_mutex_unlock(&r->lock);
        if (!work)
                return;
        r->out_since_ms = 0;
        r->done(work, r->userdata);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
        uint64_t n;

        (void)what;
        (void)!read(fd, &n, sizeof(n));
        deliver(arg);
}

bool lv_reader_wait(struct lv_reader *r, uint64_t timeout_ms)
{
        struct timespec until;
        bool finished;

        if (!r->out_since_ms)
                return true;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += (time_t)(timeout_ms / 1000);
        until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&r->lock);
        while (!r->finished &&
               pthread_cond_timedwait(&r->finished_cv, &r->lock, &until) != ETIMEDOUT)
                ;
        finished = r->finished != NULL;
        pthread_mutex_unlock(&r->lock);
        if (finished)
                deliver(r);
        return finished;
}

struct lv_reader *lv_reader_new(struct event_base *base, lv_reader_fn run, lv_reader_fn done,
                                lv_reader_fn drop, void *userdata)
{
        struct lv_reader *r = calloc(1, sizeof(*r));
        sigset_t all, old;
        int e = ENOMEM;

        if (!r)
                goto fail;
        *r = (struct lv_reader){
            .efd = -1, .run = run, .done = done, .drop = drop, .userdata = userdata};
        pthread_mutex_init(&r->lock, NULL);
        pthread_cond_init(&r->wake, NULL);
        pthread_cond_init(&r->finished_cv, NULL);
        if ((r->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0) {
                e = errno;
                goto fail;
        }
        if (!(r->done_ev = event_new(base, r->efd, EV_READ | EV_PERSIST, on_done, r)) ||
            event_add(r->done_ev, NULL) < 0)
                goto fail;
        /* signals stay the loop's: the thread blocks them all */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        e = pthread_create(&r->thread, NULL, reader, r);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        if (e)
                goto fail;
        return r;
fail:
        if (r)
                destroy(r);
        errno = e;
        return NULL;
}

int lv_reader_submit(struct lv_reader *r, void *work)
{
        if (r->out_since_ms)
                return -EBUSY;
        r->out_since_ms = mono_ms();
        if (!r->out_since_ms)
                r->out_since_ms = 1;
        pthread_mutex_lock(&r->lock);
        r->queued = work;
        pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->lock);
        return 0;
}

bool lv_reader_busy(const struct lv_reader *r)
{
        return r->out_since_ms != 0;
}

uint64_t lv_reader_busy_ms(const struct lv_reader *r, uint64_t now_ms)
{
        if (!r->out_since_ms)
                return 0;
        return now_ms > r->out_since_ms ? now_ms - r->out_since_ms : 1;
}

void lv_reader_free(struct lv_reader *r)
{
        void *queued, *finished;

        if (!r)
                return;
        pthread_mutex_lock(&r->lock);
        r->stop = true;
        bool running = r->running;
        queued = r->queued;
        finished = r->finished;
        r->queued = r->finished = NULL;
        pthread_cond_signal(&r->wake);
        pthread_mutex_unlock(&r->lock);
        if (queued)
                r->drop(queued, r->userdata);
        if (finished)
                r->drop(finished, r->userdata);
        if (running) {
                /* in a call that may never return: it drops its work when it does; the
                 * thread and this structure are left to the process's end */
                pthread_detach(r->thread);
                event_del(r->done_ev);
                return;
        }
        pthread_join(r->thread, NULL);
        destroy(r);
}
