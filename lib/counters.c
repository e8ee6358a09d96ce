/*
 * counters: per-VM pressure statistics. Byte and operation counters are
 * plain sums kept by the balancer loop; see counters.h and docs/counters.md.
 */
#include "counters.h"

#include <math.h>

void vm_counters_reset(struct vm_counters *c)
{
        *c = (struct vm_counters){
                .current_pressure = -1.0,
                .average_pressure = -1.0,
                .minimum_pressure = -1.0,
                .maximum_pressure = -1.0,
        };
}

void vm_counters_pressure(struct vm_counters *c, double pressure, uint64_t now_ms)
{
        if (pressure < 0.0) {
                c->current_pressure = -1.0;
                return;
        }
        if (c->average_pressure < 0.0) {
                c->average_pressure = pressure;
        } else if (now_ms > c->last_update_ms) {
                /* Exponential average with a one-minute time constant. */
                uint64_t dt = now_ms - c->last_update_ms;
                if (dt != c->alpha_dt_ms) { /* the cycle rarely changes: keep its weight */
                        c->alpha_dt_ms = dt;
                        c->alpha = 1.0 - exp(-(double)dt / (double)COUNTERS_AVERAGE_WINDOW_MS);
                }
                c->average_pressure += c->alpha * (pressure - c->average_pressure);
        }
        if (c->minimum_pressure < 0.0 || pressure < c->minimum_pressure)
                c->minimum_pressure = pressure;
        if (pressure > c->maximum_pressure)
                c->maximum_pressure = pressure;
        c->current_pressure = pressure;
        c->last_update_ms = now_ms;
}
