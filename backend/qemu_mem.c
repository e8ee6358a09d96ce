/*
 * qemu_mem: the QEMU backend's memory arithmetic, without I/O. A VM holds
 * base RAM (startup) minus the balloon, plus what its virtio-mem device has
 * plugged. Growing deflates the balloon first, then plugs; shrinking
 * unplugs first, and the balloon takes the VM below startup, or makes up
 * for blocks the guest cannot unplug. See docs/qemu-backend.md.
 */
#include <string.h>

#include "qemu_int.h"
#include "units.h"

void qemu_mem_init(struct qemu_mem *m, const struct qemu_layout *l, bool known)
{
        *m = (struct qemu_mem){.layout = *l,
                               .known = known,
                               .actual = l->startup,
                               .requested = l->first,
                               .target = l->startup + l->first};
}

uint64_t qemu_mem_assigned(const struct qemu_mem *m)
{
        const struct qemu_layout *l = &m->layout;
        uint64_t base = m->actual < l->startup ? m->actual : l->startup;
        uint64_t plugged = m->plugged < l->region ? m->plugged : l->region;
        uint64_t first = m->requested < l->first ? m->requested : l->first;

        /* The first block belongs to the VM from the start, before its driver plugs it. */
        return base + (plugged > first ? plugged : first);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
        return a > b ? a : b;
}

/* A request lowered from `bytes` at now_ms: it may hold that for QEMU_READBACK_LAG_MS. */
static void high_note(struct qemu_highs *h, uint64_t bytes, uint64_t now_ms)
{
        size_t i = (size_t)(now_ms / 1000 % QEMU_HIGH_SLOTS);

        /*
         * The slot's last use was this second or QEMU_HIGH_SLOTS seconds ago or more;
         * then its window (QEMU_READBACK_LAG_MS, shorter) has ended.
         */
        if (h->until_ms[i] <= now_ms)
                h->bytes[i] = 0;
        h->bytes[i] = max_u64(h->bytes[i], bytes);
        h->until_ms[i] = now_ms + QEMU_READBACK_LAG_MS;
        h->newest = i;
}

/*
 * The most the lowerings whose windows have not ended let it take; with the
 * last request still in flight, its window has not begun: the newest counts.
 */
static uint64_t high_now(const struct qemu_highs *h, uint64_t now_ms, bool in_flight)
{
        uint64_t high = 0;

        for (size_t i = 0; i < QEMU_HIGH_SLOTS; i++)
                if (now_ms < h->until_ms[i] || (in_flight && i == h->newest))
                        high = max_u64(high, h->bytes[i]);
        return high;
}

uint64_t qemu_mem_may_hold(const struct qemu_mem *m, uint64_t now_ms)
{
        const struct qemu_layout *l = &m->layout;
        uint64_t base = m->actual, plug = max_u64(m->plugged, m->requested);

        if (m->balloon_sent)
                base = max_u64(base, m->balloon_value);
        base = max_u64(base, high_now(&m->actual_high, now_ms, false));
        if (m->requested_in_flight)
                plug = max_u64(plug, m->requested_sent);
        plug = max_u64(plug, high_now(&m->plugged_high, now_ms, m->requested_in_flight));
        if (base > l->startup)
                base = l->startup;
        if (plug > l->region)
                plug = l->region;
        return max_u64(base + plug, qemu_mem_assigned(m));
}

bool qemu_mem_settled(const struct qemu_mem *m)
{
        return m->known && !m->requested_in_flight && m->requested == m->plugged &&
               (!m->balloon_sent || m->actual == m->balloon_value);
}

uint64_t qemu_mem_clamp_target(const struct qemu_mem *m, uint64_t target)
{
        const struct qemu_layout *l = &m->layout;
        uint64_t top = l->startup + l->region;
        uint64_t block = l->block ? l->block : SETTINGS_BLOCK_DEFAULT;

        if (target > top)
                target = top;
        target = size_round_up(target, block);
        if (target > top)
                target = top;
        if (target < SETTINGS_MINIMUM_FLOOR)
                target = SETTINGS_MINIMUM_FLOOR < top ? SETTINGS_MINIMUM_FLOOR : top;
        return target;
}

void qemu_mem_readback(struct qemu_mem *m, uint64_t actual, uint64_t plugged, uint64_t requested,
                       uint64_t now_ms)
{
        if (!m->known || plugged != m->plugged)
                m->plugged_moved_ms = now_ms;
        if (m->actual_stale && actual == m->stale_actual)
                actual = m->layout.startup;
        else
                m->actual_stale = false;
        m->actual = actual;
        m->plugged = plugged;
        m->requested = requested;
        m->known = true;
}

void qemu_mem_reset(struct qemu_mem *m, uint64_t now_ms)
{
        if (!m->known)
                return;
        if (m->actual < m->layout.startup) {
                m->actual_stale = true;
                m->stale_actual = m->actual;
        }
        m->actual = m->layout.startup;
        m->plugged = 0;
        m->plugged_moved_ms = now_ms;
        m->plug_paused_until_ms = 0;
        m->balloon_sent = false; /* the new boot's driver starts from an empty balloon */
}

/* The requested-size the target calls for, with refused plugs taken into account. */
static uint64_t wanted_requested(struct qemu_mem *m, uint64_t now_ms, struct qemu_mem_plan *plan)
{
        const struct qemu_layout *l = &m->layout;
        uint64_t want = m->target > l->startup ? m->target - l->startup : 0;

        if (want > l->region)
                want = l->region;
        /*
         * A plug that has not moved for a long time: the guest cannot or will not. The first
         * block is asked for at start and taken when the guest's driver loads, however late.
         */
        if (m->requested > m->plugged && m->requested > l->first &&
            now_ms >= m->plugged_moved_ms + QEMU_PLUG_STALL_MS &&
            now_ms >= m->plug_paused_until_ms) {
                m->plug_paused_until_ms = now_ms + QEMU_PLUG_RETRY_MS;
                plan->plug_refused = true;
        }
        if (now_ms < m->plug_paused_until_ms && want > m->plugged)
                want = m->plugged;
        return want;
}

/* The balloon target (base RAM the guest keeps), or false to leave the balloon alone. */
static bool wanted_balloon(const struct qemu_mem *m, uint64_t now_ms, uint64_t *ret,
                           struct qemu_mem_plan *plan)
{
        const struct qemu_layout *l = &m->layout;
        uint64_t floor = QEMU_BALLOON_FLOOR < m->target ? QEMU_BALLOON_FLOOR : m->target;

        if (m->target >= l->startup) {
                *ret = l->startup; /* fully deflated */
                return true;
        }
        if (m->plugged == 0) {
                *ret = m->target;
                return true;
        }
        bool stalled =
            m->requested < m->plugged && now_ms >= m->plugged_moved_ms + QEMU_UNPLUG_STALL_MS;
        bool inflated = m->balloon_sent && m->balloon_value < l->startup;
        if (!stalled && !inflated)
                return false; /* an unplug is under way: the balloon waits for it */
        /* Blocks the guest cannot unplug (now): the balloon makes up for them. */
        uint64_t v = m->target > m->plugged ? m->target - m->plugged : 0;
        *ret = v > floor ? v : floor;
        plan->unplug_stalled = stalled;
        return true;
}

void qemu_mem_plan(struct qemu_mem *m, uint64_t now_ms, struct qemu_mem_plan *ret)
{
        struct qemu_mem_plan plan = {0};
        uint64_t balloon;

        if (!m->known) {
                *ret = plan;
                return;
        }
        uint64_t want = wanted_requested(m, now_ms, &plan);
        if (m->layout.region > 0 && want != m->requested && !m->requested_in_flight) {
                uint64_t before = max_u64(m->requested, m->plugged);
                if (want < before) /* see qemu_mem_may_hold */
                        high_note(&m->plugged_high, before, now_ms);
                plan.set_requested = true;
                plan.requested = want;
                m->requested_in_flight = true;
                m->requested_sent = want;
                m->plugged_moved_ms = now_ms; /* stalls count from the request */
        }
        if (wanted_balloon(m, now_ms, &balloon, &plan) &&
            (!m->balloon_sent || balloon != m->balloon_value)) {
                uint64_t before =
                    max_u64(m->balloon_sent ? m->balloon_value : m->layout.startup, m->actual);
                if (balloon < before) /* see qemu_mem_may_hold */
                        high_note(&m->actual_high, before, now_ms);
                plan.set_balloon = true;
                plan.balloon_value = balloon;
                m->balloon_sent = true;
                m->balloon_value = balloon;
        }
        plan.balloon_first = m->target > qemu_mem_assigned(m);
        *ret = plan;
}

bool qemu_mem_guest_reserve(const struct qemu_mem *m, uint64_t mem_total, uint64_t sampled_ms,
                            uint64_t *ret)
{
        const struct qemu_layout *l = &m->layout;
        uint64_t plugged = m->plugged < l->region ? m->plugged : l->region;
        uint64_t present = l->startup + plugged;

        if (!m->known || m->requested_in_flight || m->requested != m->plugged ||
            sampled_ms < m->plugged_moved_ms + QEMU_RESERVE_SETTLE_MS || mem_total == 0 ||
            mem_total > present || present - mem_total >= l->startup / 2)
                return false;
        *ret = present - mem_total;
        return true;
}
