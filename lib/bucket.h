/*
 * bucket: the one token bucket dynmem rate-limits with: log messages
 * (log_ratelimit), the lines a guest agent may have parsed (lib/agent), the
 * extra cycles a guest's stall reports may ask for (daemon/wake and the QEMU
 * backend's share of them), and the guest agent's own log. It holds at most
 * `burst` tokens, starts full at its first use and refills at `per_s` tokens a
 * second; each event takes one. Pure: the caller passes the time
 * (mono.h, in milliseconds). libc only: the guest agent compiles it too.
 */
#ifndef DYNMEM_BUCKET_H
#define DYNMEM_BUCKET_H

#include <stdbool.h>

struct bucket {
        double per_s; /* tokens added a second */
        double burst; /* the most it holds */
        double tokens;
        double last_ms;
        bool started;
};

/* A bucket's initialiser: BUCKET(20, 40) refills 20 a second and holds 40. */
#define BUCKET(per_s_, burst_) ((struct bucket){.per_s = (per_s_), .burst = (burst_)})

/* Take a token at now_ms when there is one. */
bool bucket_take(struct bucket *b, double now_ms);

/* Milliseconds from now_ms until a token is there (0: there is one now). */
double bucket_wait_ms(struct bucket *b, double now_ms);

#endif
