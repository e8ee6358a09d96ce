/*
 * qemu_signal: where a guest's demand comes from, for the backends that run
 * QEMU guests (qemu, and libvirt, whose guests are the same QEMU with the
 * same devices and agent): the agent's estimate while fresh, else the
 * balloon's statistics while they move, else nothing (the VM keeps its size).
 * The guest's swap room comes from the agent only (balloon statistics do not
 * say it): without a fresh agent report it is unknown.
 * Demand is in the host's terms, as assigned memory is: the guest's figure
 * plus what its kernel keeps out of MemTotal (docs/demand.md), and unknown
 * until that is measured (QEMU_RESERVE_WAIT_MS at most). Pure: the caller
 * passes the time.
 */
#include "qemu_int.h"

static const char *const signal_names[] = {
    [QEMU_SIGNAL_NONE] = "none",
    [QEMU_SIGNAL_AGENT] = "agent",
    [QEMU_SIGNAL_BALLOON] = "balloon",
};

const char *qemu_signal_name(enum qemu_signal s)
{
        return (unsigned)s < sizeof(signal_names) / sizeof(signal_names[0]) ? signal_names[s]
                                                                            : "none";
}

void qemu_signal_reset(struct qemu_guest_signal *sg)
{
        *sg = (struct qemu_guest_signal){.source = QEMU_SIGNAL_NONE};
}

void qemu_signal_reboot(struct qemu_guest_signal *sg)
{
        uint64_t urgent = sg->agent.urgent_reports, evicted = sg->agent.evicted_total_bytes;
        bool reserve_known = sg->reserve_known;
        uint64_t reserve = sg->reserve;

        qemu_signal_reset(sg);
        /* The agent connection outlives the boot: its count goes on, and is seen. */
        sg->agent.urgent_reports = sg->urgent_observed = urgent;
        sg->agent.evicted_total_bytes = sg->evicted_observed = evicted;
        sg->reserve_known = reserve_known;
        sg->reserve = reserve;
        /* A read-back in flight, or QEMU itself, may still give the old boot's figures. */
        sg->stale_pending = true;
}

bool qemu_signal_agent(struct qemu_guest_signal *sg, const struct agent_estimate *e)
{
        bool urgent = e->urgent_reports != sg->agent.urgent_reports;

        sg->agent = *e;
        sg->agent_have = true;
        return urgent;
}

void qemu_signal_stats(struct qemu_guest_signal *sg, uint64_t total, uint64_t available,
                       uint64_t last_update, uint64_t now_ms)
{
        struct qemu_stats *s = &sg->stats;

        if (sg->stale_pending) {
                /*
                 * The first figures since the reboot: QEMU may still hold the old
                 * boot's (while the agent was fresh they were not read, so their
                 * stamp may be newer than any seen). Their stamp becomes the mark;
                 * the new boot's driver sends another within its statistics period.
                 */
                sg->stale_pending = false;
                sg->stale_known = true;
                sg->stale_update = last_update;
                return;
        }
        if (sg->stale_known) {
                if (last_update == sg->stale_update)
                        return; /* the previous boot's: not this one's */
                sg->stale_known = false;
        }
        if (!s->known || last_update != s->last_update)
                s->sampled_ms = now_ms;
        s->known = true;
        s->total = total;
        s->available = available;
        s->last_update = last_update;
}

/* Measure the guest kernel's reservation again from a MemTotal sampled at sampled_ms. */
static void note_mem_total(struct qemu_guest_signal *sg, const struct qemu_mem *m,
                           uint64_t mem_total, uint64_t sampled_ms)
{
        uint64_t reserve;

        if (qemu_mem_guest_reserve(m, mem_total, sampled_ms, &reserve)) {
                sg->reserve = reserve;
                sg->reserve_known = true;
        }
}

/*
 * Whether the demand waits for the reservation's first measurement. A figure without it is
 * in the guest's terms, that much below the host's: a new instance (a start, a reattach, a
 * VM arrived by migration) would read low for its first seconds, and the first measured
 * figure would step up by the whole reservation, which the policy takes for a rise of the
 * guest's own and covers. The wait is QEMU_RESERVE_WAIT_MS at most from the first figure:
 * a guest whose reservation cannot be measured then has its demand in its own terms.
 */
static bool reserve_awaited(struct qemu_guest_signal *sg, uint64_t mono)
{
        if (sg->reserve_known)
                return false;
        if (!sg->unmeasured_seen) {
                sg->unmeasured_seen = true;
                sg->unmeasured_ms = mono;
        }
        return mono < sg->unmeasured_ms + QEMU_RESERVE_WAIT_MS;
}

/*
 * The guest's demand as the host holds it: plus what its kernel keeps out of MemTotal.
 * False while the reservation is awaited.
 */
static bool host_demand(struct qemu_guest_signal *sg, uint64_t guest_demand, uint64_t mono,
                        uint64_t *ret)
{
        uint64_t reserve = sg->reserve_known ? sg->reserve : 0;

        *ret = 0;
        if (reserve_awaited(sg, mono))
                return false;
        *ret = guest_demand > UINT64_MAX - reserve ? UINT64_MAX : guest_demand + reserve;
        return true;
}

static void from_agent(struct qemu_guest_signal *sg, const struct qemu_mem *m, uint64_t now_ms,
                       uint64_t mono, struct vm_observation *o)
{
        const struct agent_estimate *r = &sg->agent;
        uint64_t age = mono - r->report_ms;

        if (r->visible_known)
                note_mem_total(sg, m, r->visible_bytes, r->report_ms);
        o->demand_known = host_demand(sg, r->demand_bytes, mono, &o->demand_bytes);
        o->demand_time_ms = now_ms > age ? now_ms - age : 0;
        o->stall_known = r->stall_known;
        o->stall_fraction = r->stall_fraction;
        o->stall_urgent = r->stall_known && r->urgent_reports != sg->urgent_observed;
        /* Evicted since the previous observation (a new connection counts from 0). */
        o->cache_evicted_bytes = r->evicted_total_bytes >= sg->evicted_observed
                                     ? r->evicted_total_bytes - sg->evicted_observed
                                     : r->evicted_total_bytes;
        /*
         * The room past its memory before its OOM killer runs: SwapFree, the burst
         * absorber's free room inside it (the absorber is one of its swap areas; adding
         * absorber_size_bytes - absorber_bytes again would count that room twice).
         */
        o->swap_known = r->swap_known;
        o->swap_bytes = r->swap_known ? r->swap_free_bytes : 0;
        o->guest_visible_known = r->visible_known;
        o->guest_visible_bytes = r->visible_bytes;
        o->guest_available_known = r->available_known;
        o->guest_available_bytes = r->available_bytes;
        sg->source = QEMU_SIGNAL_AGENT;
}

/* With deflate-on-oom the balloon stays in MemTotal and counts as used: take it out. */
static void from_balloon(struct qemu_guest_signal *sg, const struct qemu_mem *m, uint64_t now_ms,
                         uint64_t mono, struct vm_observation *o)
{
        const struct qemu_stats *s = &sg->stats;
        uint64_t balloon = m->actual < m->layout.startup ? m->layout.startup - m->actual : 0;
        uint64_t used = s->total - s->available, age = mono - s->sampled_ms;

        note_mem_total(sg, m, s->total, s->sampled_ms);
        o->demand_known =
            host_demand(sg, used > balloon ? used - balloon : 0, mono, &o->demand_bytes);
        o->demand_time_ms = now_ms > age ? now_ms - age : 0;
        o->guest_visible_known = true;
        o->guest_visible_bytes = s->total;
        o->guest_available_known = true;
        o->guest_available_bytes = s->available;
        sg->source = QEMU_SIGNAL_BALLOON;
}

void qemu_signal_observe(struct qemu_guest_signal *sg, const struct qemu_mem *m, uint64_t now_ms,
                         uint64_t mono, struct vm_observation *o)
{
        sg->source = QEMU_SIGNAL_NONE;
        if (sg->agent_have && sg->agent.demand_known &&
            mono - sg->agent.report_ms < QEMU_AGENT_FRESH_MS)
                from_agent(sg, m, now_ms, mono, o);
        else if (sg->stats.known && mono - sg->stats.sampled_ms < QEMU_STATS_FRESH_MS)
                from_balloon(sg, m, now_ms, mono, o);
        sg->urgent_observed = sg->agent.urgent_reports; /* one observation per urgent report */
        sg->evicted_observed = sg->agent.evicted_total_bytes; /* ... and per eviction */
}
