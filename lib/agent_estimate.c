/*
 * agent_estimate: demand, stall share and fault rates from a guest agent's
 * reports. See agent_estimate.h and docs/demand.md.
 */
#include "agent_estimate.h"

#define REFAULT_MIN_PER_S 256.0 /* refaulted pages per second that mean "cache is short" */

/* Rate of counter `now` against `then` over dt_ms; false when it went backwards. */
static bool counter_rate(uint64_t then, uint64_t now, uint64_t dt_ms, double *ret)
{
        if (now < then)
                return false;
        *ret = (double)(now - then) * 1000.0 / (double)dt_ms;
        return true;
}

unsigned agent_estimator_add(struct agent_estimator *e, const struct agent_report *r,
                             uint64_t page_size, uint64_t now_ms)
{
        const struct agent_report *b = &e->base;
        unsigned resets = 0;
        uint64_t dt;
        double v;

        if (!e->have_base || r->seq <= b->seq || r->time_ms < b->time_ms) {
                resets = e->have_base; /* a restarted agent or guest */
                e->base = *r;
                e->have_base = true;
                e->stall_known = e->rates_known = false;
                return resets;
        }
        dt = r->time_ms - b->time_ms;
        if (dt < AGENT_STALL_MIN_WINDOW_MS)
                return 0; /* too short to measure: the next report measures from the same base */
        e->stall_known = false;
        if ((r->have & b->have & AGENT_HAVE_PSI)) {
                if (counter_rate(b->psi_some_total_us, r->psi_some_total_us, dt, &v)) {
                        v /= 1e6; /* us per s -> share */
                        e->stall = v < 0 ? 0 : v > 1 ? 1 : v;
                        e->stall_known = true;
                } else {
                        resets++;
                }
        }
        e->rates_known = counter_rate(b->pgmajfault, r->pgmajfault, dt, &e->majfault_rate);
        if (e->rates_known && (r->have & b->have & AGENT_HAVE_REFAULTS))
                e->rates_known = counter_rate(b->refaults, r->refaults, dt, &e->refault_rate);
        else if (e->rates_known)
                e->refault_rate = 0;
        if (!e->rates_known)
                resets++;
        else if (e->refault_rate >= REFAULT_MIN_PER_S * 4096.0 / (double)page_size) {
                e->refault_seen = true;
                e->refault_seen_ms = now_ms;
        }
        e->base = *r;
        return resets;
}

static uint64_t demand_of(const struct agent_estimator *e, const struct agent_report *r,
                          uint64_t limit_bytes, uint64_t now_ms)
{
        uint64_t used = r->mem_total_bytes - r->mem_available_bytes, cap;

        if ((r->have & AGENT_HAVE_BALLOON) && r->balloon_in_total)
                used -= r->balloon_bytes < used ? r->balloon_bytes : used;
        if (e->refault_seen && now_ms - e->refault_seen_ms <= AGENT_REFAULT_HOLD_MS)
                used += r->active_file_bytes;
        /*
         * Pages in the absorber belong in RAM: count them whole, not the RAM they hold there,
         * and the room the agent waits for before it drains them back (without it, a VM held
         * just above its need by the policy's bands would keep its pages in the absorber).
         */
        uint64_t absorbed = r->absorber_bytes;
        if (absorbed)
                absorbed += r->mem_total_bytes / AGENT_ABSORBER_ROOM_DIV;
        used -= r->absorber_ram_bytes < used ? r->absorber_ram_bytes : used;
        used += absorbed;
        cap = r->mem_total_bytes + r->mem_total_bytes / AGENT_DEMAND_MARGIN_DIV + absorbed;
        if (cap > limit_bytes)
                cap = limit_bytes;
        return used < cap ? used : cap;
}

void agent_estimator_get(const struct agent_estimator *e, const struct agent_report *r,
                         uint64_t limit_bytes, uint64_t interval_ms, uint64_t now_ms,
                         struct agent_estimate *ret)
{
        struct agent_estimate out = {0};

        out.report_ms = r->received_ms;
        out.committed_bytes = r->committed_bytes;
        out.fresh = now_ms >= r->received_ms &&
                    now_ms - r->received_ms <= AGENT_FRESH_INTERVALS * interval_ms;
        if (out.fresh) {
                out.visible_known = true;
                out.visible_bytes = r->mem_total_bytes;
                out.available_known = r->have & AGENT_HAVE_AVAILABLE;
                out.available_bytes = r->mem_available_bytes;
                out.demand_known = out.available_known;
                out.demand_bytes = out.demand_known ? demand_of(e, r, limit_bytes, now_ms) : 0;
                out.stall_known = e->stall_known;
                out.stall_fraction = e->stall_known ? e->stall : 0;
                out.rates_known = e->rates_known;
                out.refaults_per_s = e->rates_known ? e->refault_rate : 0;
                out.majfaults_per_s = e->rates_known ? e->majfault_rate : 0;
        }
        *ret = out;
}
