/*
 * libvirt_reader: one thread that makes the libvirt backend's reads, so that
 * dynmemd's loop never waits on libvirtd.
 *
 * Every libvirt call that goes to libvirtd can wait as long as libvirtd does
 * not answer: up to libvirt's keepalive (5 s x 3) on an open connection,
 * without bound while a connection is opened. The loop hands the thread one
 * piece of work at a time (a round of reads, libvirt_round.c) and goes on;
 * the thread runs it and the finished work comes back to the loop through an
 * eventfd, where `done` takes it. The loop asks how long the work out has
 * been running (lv_reader_busy_ms): past a few seconds libvirt is not
 * answering.
 *
 * Stopping (lv_reader_free) joins an idle thread. A thread still in a call is
 * left to finish on its own: its work is dropped with `drop` on that thread,
 * and nothing of the loop's is touched any more (the process is ending).
 */
#ifndef DYNMEM_LIBVIRT_READER_H
#define DYNMEM_LIBVIRT_READER_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct lv_reader;

typedef void (*lv_reader_fn)(void *work, void *userdata);

/*
 * A reader thread: run(work) on the thread, then done(work) on base's loop
 * (done owns the work then); drop(work) frees work that will never be done.
 * NULL with errno set on failure.
 */
struct lv_reader *lv_reader_new(struct event_base *base, lv_reader_fn run, lv_reader_fn done,
                                lv_reader_fn drop, void *userdata);

/* Hand work over; -EBUSY while other work is out (not yet through done). */
int lv_reader_submit(struct lv_reader *r, void *work);

/* Work is out (submitted, not yet through done). */
bool lv_reader_busy(const struct lv_reader *r);

/* How long the work out has been out (mono_ms), 0 when none is. */
uint64_t lv_reader_busy_ms(const struct lv_reader *r, uint64_t now_ms);

/*
 * Wait at most timeout_ms for the work out, and hand it to done if it came
 * back (true; true too when none is out). For dynmemd's start only: its loop
 * serves nothing yet.
 */
bool lv_reader_wait(struct lv_reader *r, uint64_t timeout_ms);

/* Stop the thread (see above). From the loop's thread. */
void lv_reader_free(struct lv_reader *r);

#endif
