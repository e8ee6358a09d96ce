/*
 * agent_estimate: demand, stall share and fault rates from a guest agent's
 * reports. See agent_estimate.h and docs/demand.md.
 */
#include "agent_estimate.h"
#include "units.h"

/*
 * The rate at which the guest's kernel shows it is short of memory it uses: 1 MiB/s
 * (256 pages of 4 KiB) refaulted, or that much more held (docs/demand.md).
 */
#define WORKING_SET_MIN_BYTES_PER_S (256.0 * 4096.0)

/* MemTotal − MemAvailable without the balloon's pages when they are part of MemTotal. */
static uint64_t used_of(const struct agent_report *r)
{
        uint64_t used = r->mem_total_bytes - r->mem_available_bytes;

        if ((r->have & AGENT_HAVE_BALLOON) && r->balloon_in_total)
                used -= r->balloon_bytes < used ? r->balloon_bytes : used;
        return used;
}

/* Pages the guest pushed out of RAM to make room: in its absorber and its own swap. */
static uint64_t swapped_of(const struct agent_report *r)
{
        return r->absorber_bytes + r->swap_used_bytes;
}

/*
 * Whether `amount` over dt_ms is at least `per_s` a second, judged over a second at
 * least: over a shorter interval (a report the guest sent as a stall began, 50 ms
 * after the previous one) a few pages would make a rate.
 */
static bool at_rate(double amount, uint64_t dt_ms, double per_s)
{
        return amount * 1000.0 / (double)(dt_ms < 1000 ? 1000 : dt_ms) >= per_s;
}

/*
 * Fewer refaults count too when they can explain the interval's stall: a page read
 * back for each STALL_US_PER_REFAULT of PSI `some` stall (a read from disk takes 0.1 to
 * 10 ms), and REFAULTS_MIN_PER_S a second at least, so that a few pages never explain
 * a short stall (docs/demand.md).
 */
#define STALL_US_PER_REFAULT 4000.0
#define REFAULTS_MIN_PER_S   16.0

/*
 * Whether the guest refaulted at the rate that matters between b and r: 1 MiB/s, or
 * enough to explain its stall.
 */
static bool refaulting(const struct agent_report *b, const struct agent_report *r, uint64_t dt_ms,
                       uint64_t page_size)
{
        if (r->refaults < b->refaults)
                return false;
        double pages = (double)(r->refaults - b->refaults);
        if (at_rate(pages * (double)page_size, dt_ms, WORKING_SET_MIN_BYTES_PER_S))
                return true;
        if (!(r->have & b->have & AGENT_HAVE_PSI) || r->psi_some_total_us <= b->psi_some_total_us)
                return false;
        double stalled_us = (double)(r->psi_some_total_us - b->psi_some_total_us);
        return at_rate(pages, dt_ms, REFAULTS_MIN_PER_S) &&
               pages * STALL_US_PER_REFAULT >= stalled_us;
}

/*
 * Whether, between base b and report r (dt_ms apart), the guest's kernel showed it short of
 * memory it uses: pages it lost and read back (refaulted: refaulting() over the interval, of
 * file pages or of swapped ones), or pages in use pushed out to swap (the absorber or its own)
 * to make room. A rise of what it holds is no such sign while the kernel serves it from cache
 * nobody reads again, and pages sitting in the absorber are in the demand figure already.
 * Without refault counts it cannot tell, and says so (true: the stall is believed).
 */
static bool working_set_short(const struct agent_estimator *e, const struct agent_report *b,
                              const struct agent_report *r, uint64_t dt_ms, bool refaulted)
{
        uint64_t before = swapped_of(b), after = swapped_of(r);

        if (!e->rates_known || !(r->have & b->have & AGENT_HAVE_REFAULTS))
                return true;
        return refaulted || (after > before &&
                             at_rate((double)(after - before), dt_ms, WORKING_SET_MIN_BYTES_PER_S));
}

/*
 * The file working set (docs/demand.md): Active(file) as soon as the guest refaults at
 * the rate that matters, never lowered while it does; held when the refaults stop (the
 * memory that stopped them must stay), and lowered with Active(file) when that falls
 * without refaults: the kernel let those pages go, and nobody asked for them again.
 */
static void hot_update(struct agent_estimator *e, const struct agent_report *r, bool refaulting)
{
        if (refaulting ? r->active_file_bytes > e->hot_bytes : r->active_file_bytes < e->hot_bytes)
                e->hot_bytes = r->active_file_bytes;
}

/*
 * MemFree at a report of at least MemTotal / RELIEVED_FREE_DIV: the guest has memory
 * it does not use, so whatever it stalled on in the interval, more memory is not what
 * it waits for now (docs/demand.md, "A stall the memory relieved").
 */
#define RELIEVED_FREE_DIV 16

static bool relieved(const struct agent_report *r)
{
        return r->mem_free_bytes >= r->mem_total_bytes / RELIEVED_FREE_DIV;
}

/*
 * Page cache reclaimed between b and r (dt_ms apart) that counts as evicted under a stall:
 * the guest stalled in the interval (psi_share > 0, not relieved by memory that came) and
 * reclaimed file pages at WORKING_SET_MIN_BYTES_PER_S or more. At most r's MemTotal.
 */
static uint64_t evicted_under_stall(const struct agent_report *b, const struct agent_report *r,
                                    uint64_t dt_ms, uint64_t page_size, bool stalled)
{
        if (!stalled || !page_size || !(r->have & b->have & AGENT_HAVE_RECLAIM) ||
            r->file_reclaimed < b->file_reclaimed)
                return 0;
        uint64_t pages = r->file_reclaimed - b->file_reclaimed;
        uint64_t bytes =
            pages > r->mem_total_bytes / page_size ? r->mem_total_bytes : pages * page_size;
        return at_rate((double)bytes, dt_ms, WORKING_SET_MIN_BYTES_PER_S) ? bytes : 0;
}

/*
 * How long before its free memory runs out a filling cache counts as about to evict: a
 * report (1 s), a decision (1 s), and the plug and the onlining of the memory lent for
 * it (1–2 s under TCG here), with room to spare.
 */
#define CACHE_LEAD_MS 5000.0

/*
 * Page cache the guest read into memory it is about to run out of, between b and r:
 * Cached grew at WORKING_SET_MIN_BYTES_PER_S or more, and at that rate MemFree at r is
 * gone within CACHE_LEAD_MS: what it reads next evicts unless memory comes first.
 */
static uint64_t cache_filling(const struct agent_report *b, const struct agent_report *r,
                              uint64_t dt_ms)
{
        if (r->cached_bytes <= b->cached_bytes)
                return 0;
        uint64_t grown = r->cached_bytes - b->cached_bytes;
        double per_ms = (double)grown / (double)(dt_ms < 1000 ? 1000 : dt_ms);

        if (!at_rate((double)grown, dt_ms, WORKING_SET_MIN_BYTES_PER_S) ||
            (double)r->mem_free_bytes >= per_ms * CACHE_LEAD_MS)
                return 0;
        return grown;
}

/* Rate of counter `now` against `then` over dt_ms; false when it went backwards. */
static bool counter_rate(uint64_t then, uint64_t now, uint64_t dt_ms, double *ret)
{
        if (now < then)
                return false;
        *ret = (double)(now - then) * 1000.0 / (double)dt_ms;
        return true;
}

unsigned agent_estimator_add(struct agent_estimator *e, const struct agent_report *r,
                             uint64_t page_size)
{
        const struct agent_report *b = &e->base;
        unsigned resets = 0;
        uint64_t dt;
        double v;
        bool refaulted = false;

        if (!e->have_base || r->seq <= b->seq || r->time_ms < b->time_ms) {
                resets = e->have_base; /* a restarted agent or guest */
                e->base = *r;
                e->have_base = true;
                e->stall_known = e->rates_known = false;
                e->hot_bytes = 0; /* a new boot's cache proves nothing yet */
                return resets;
        }
        dt = r->time_ms - b->time_ms;
        if (dt < AGENT_STALL_MIN_WINDOW_MS)
                return 0; /* too short to measure: the next report measures from the same base */
        e->stall_known = false;
        e->rates_known = counter_rate(b->pgmajfault, r->pgmajfault, dt, &e->majfault_rate);
        if (e->rates_known && (r->have & b->have & AGENT_HAVE_REFAULTS))
                e->rates_known = counter_rate(b->refaults, r->refaults, dt, &e->refault_rate);
        else if (e->rates_known)
                e->refault_rate = 0;
        if (!e->rates_known) {
                resets++;
        } else {
                refaulted =
                    (r->have & b->have & AGENT_HAVE_REFAULTS) && refaulting(b, r, dt, page_size);
                hot_update(e, r, refaulted);
        }
        if ((r->have & b->have & AGENT_HAVE_PSI)) {
                if (counter_rate(b->psi_some_total_us, r->psi_some_total_us, dt, &v)) {
                        v /= 1e6; /* us per s -> share */
                        e->psi = v < 0 ? 0 : v > 1 ? 1 : v;
                        /* A stall that only turned over cache nobody reads again: not short. */
                        e->turnover = e->psi > 0 && !working_set_short(e, b, r, dt, refaulted);
                        /* A stall the memory that came has ended: not short now. */
                        e->relieved = e->psi > 0 && !e->turnover && relieved(r);
                        e->stall = e->turnover || e->relieved ? 0 : e->psi;
                        e->stall_known = true;
                } else {
                        resets++;
                }
        }
        /*
         * Cache read into the last free memory, and cache evicted under a stall, less
         * what the guest read back (refaults): pages counted when they were evicted, and
         * evicted again, are the same data.
         */
        uint64_t lost = cache_filling(b, r, dt);
        if (e->stall_known)
                lost = add_sat(
                    lost, evicted_under_stall(b, r, dt, page_size, e->psi > 0 && !relieved(r)));
        if (lost && page_size && (r->have & b->have & AGENT_HAVE_REFAULTS) &&
            r->refaults > b->refaults) {
                uint64_t pages = r->refaults - b->refaults;
                uint64_t back = pages > lost / page_size ? lost : pages * page_size;
                lost -= back;
        }
        e->evicted_total = add_sat(e->evicted_total, lost);
        e->base = *r;
        return resets;
}

static uint64_t demand_of(const struct agent_estimator *e, const struct agent_report *r,
                          uint64_t limit_bytes)
{
        uint64_t used = used_of(r) + e->hot_bytes, cap;

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
                out.demand_bytes = out.demand_known ? demand_of(e, r, limit_bytes) : 0;
                out.stall_known = e->stall_known;
                out.stall_fraction = e->stall_known ? e->stall : 0;
                out.psi_fraction = e->stall_known ? e->psi : 0;
                out.stall_turnover = e->stall_known && e->turnover;
                out.stall_relieved = e->stall_known && e->relieved;
                out.rates_known = e->rates_known;
                out.refaults_per_s = e->rates_known ? e->refault_rate : 0;
                out.evicted_total_bytes = e->evicted_total;
                out.majfaults_per_s = e->rates_known ? e->majfault_rate : 0;
                out.swap_known = r->have & AGENT_HAVE_SWAP;
                out.swap_free_bytes = out.swap_known ? r->swap_free_bytes : 0;
        }
        *ret = out;
}
