/*
 * bucket: a token bucket. See bucket.h.
 */
#include "bucket.h"

/* Add what the time since the last look brought, up to the burst. */
static void refill(struct bucket *b, double now_ms)
{
        if (!b->started) {
                b->started = true;
                b->tokens = b->burst;
                b->last_ms = now_ms;
        }
        if (now_ms > b->last_ms) {
                b->tokens += (now_ms - b->last_ms) * b->per_s / 1000.0;
                if (b->tokens > b->burst)
                        b->tokens = b->burst;
                b->last_ms = now_ms;
        }
}

bool bucket_take(struct bucket *b, double now_ms)
{
        refill(b, now_ms);
        if (b->tokens < 1.0)
                return false;
        b->tokens -= 1.0;
        return true;
}

double bucket_wait_ms(struct bucket *b, double now_ms)
{
        refill(b, now_ms);
        if (b->tokens >= 1.0)
                return 0.0;
        return b->per_s > 0 ? (1.0 - b->tokens) * 1000.0 / b->per_s : 1e18;
}
