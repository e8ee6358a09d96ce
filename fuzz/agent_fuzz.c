/*
 * agent_fuzz: libFuzzer target for the host's guest agent parser
 * (lib/agent.c). The input is what a hostile guest could write on its agent
 * port, preceded by two control bytes:
 *   byte 0: bits 0-5 chunk size - 1 (how the stream is split into feeds),
 *           bits 6-7 the host's options (default, versions 1-3, a 1 GiB
 *           limit, a 200 ms interval with a low rate);
 *   byte 1: milliseconds that pass between feeds, times 10.
 * After every feed it checks what the policy relies on: demand within the
 * guest's MemTotal + 1/8 and the VM's limit, a stall share in 0..1, rates
 * finite and never negative, reports within their documented ranges, swap
 * room known only from a report that gave it, and counters that add up. A
 * violation aborts (a finding).
 *
 * Build and run: fuzz/run.sh agent SECONDS (see docs/guest-protocol.md).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "agent.h"

#define CHECK(cond)                                                                                \
        do {                                                                                       \
                if (!(cond))                                                                       \
                        abort();                                                                   \
        } while (0)

static void options_for(unsigned variant, struct agent_options *o)
{
        agent_options_default(o);
        switch (variant) {
        case 1:
                o->proto_min = 1, o->proto_max = 3;
                break;
        case 2:
                o->limit_bytes = (uint64_t)1 << 30;
                break;
        case 3:
                o->interval_ms = 200, o->rate_per_s = 5, o->burst = 5;
                break;
        default:
                break;
        }
}

static void check(struct agent *a, const struct agent_options *o, uint64_t now)
{
        const struct agent_counters *c = agent_counters(a);
        const struct agent_report *r = agent_last_report(a);
        struct agent_estimate e;
        char out[AGENT_LINE_MAX];
        size_t n = agent_output(a, now, out, sizeof(out));

        CHECK(n < sizeof(out));
        CHECK(n == 0 || (out[n - 1] == '\n' && memchr(out, '\n', n) == out + n - 1));
        CHECK(c->parsed + c->rate_dropped == c->lines);
        CHECK(c->reports <= c->parsed && c->urgent <= c->reports);
        if (agent_estimate(a, now, &e) < 0) {
                CHECK(r == NULL);
                return;
        }
        CHECK(r != NULL);
        CHECK(r->seq >= 1 && r->mem_total_bytes <= o->limit_bytes);
        CHECK(r->mem_available_bytes <= r->mem_total_bytes);
        CHECK(r->mem_free_bytes <= r->mem_total_bytes);
        CHECK(r->psi_some_avg10_bp <= 10000 && r->psi_full_avg10_bp <= 10000);
        CHECK(r->balloon_in_total <= 1);
        if (e.demand_known) {
                CHECK(e.demand_bytes <= o->limit_bytes);
                /* With pages in the absorber, also the room the agent waits for to drain them. */
                uint64_t room =
                    r->absorber_bytes ? r->mem_total_bytes / AGENT_ABSORBER_ROOM_DIV : 0;
                CHECK(e.demand_bytes <= r->mem_total_bytes +
                                            r->mem_total_bytes / AGENT_DEMAND_MARGIN_DIV +
                                            r->absorber_bytes + room);
                CHECK(r->absorber_bytes <= r->absorber_size_bytes &&
                      r->absorber_size_bytes <= 2 * r->mem_total_bytes &&
                      r->absorber_ram_bytes <= r->mem_total_bytes);
        }
        if (e.swap_known)
                CHECK(e.fresh && (r->have & AGENT_HAVE_SWAP) &&
                      e.swap_free_bytes <= AGENT_BYTES_MAX);
        else
                CHECK(e.swap_free_bytes == 0);
        if (e.stall_known)
                CHECK(isfinite(e.stall_fraction) && e.stall_fraction >= 0 && e.stall_fraction <= 1);
        CHECK(isfinite(e.refaults_per_s) && e.refaults_per_s >= 0);
        CHECK(isfinite(e.majfaults_per_s) && e.majfaults_per_s >= 0);
        CHECK(agent_state(a) != AGENT_READY || agent_version(a) >= o->proto_min);
        CHECK(agent_version(a) <= o->proto_max);
        CHECK(strlen(agent_software(a)) <= AGENT_WORD_MAX);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        struct agent_options o;
        struct agent *a;
        uint64_t now = 1000, step;
        size_t chunk;

        if (size < 2)
                return 0;
        options_for(data[0] >> 6, &o);
        chunk = (size_t)(data[0] & 63) + 1;
        step = (uint64_t)data[1] * 10;
        data += 2, size -= 2;
        if (agent_new(&o, &a) < 0)
                abort();
        agent_connected(a, now);
        check(a, &o, now);
        for (size_t off = 0; off < size; off += chunk) {
                size_t n = size - off < chunk ? size - off : chunk;

                agent_feed(a, data + off, n, now);
                check(a, &o, now);
                now += step;
        }
        agent_disconnected(a);
        CHECK(agent_feed(a, "x\n", 2, now) == 0);
        agent_free(a);
        return 0;
}
